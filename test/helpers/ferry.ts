// A whole ferry (engine, ports, WebRTC, plugins, API) on loopback for end-to-end tests.
import { applyEnv, makeConfig, type ConfigOverrides, type FerryConfig } from '../../src/config/Config.js';
import { createFerry, type Ferry, type FerryOptions } from '../../src/Ferry.js';
import { createLogger } from '../../src/log/logger.js';
import { JanusHttp, loopbackOverrides } from './http.js';

export interface TestFerry {
  ferry: Ferry;
  config: FerryConfig;
  http: JanusHttp;
  admin: JanusHttp;
  wsUrl: string;
  /** http://127.0.0.1:<port> of the Janus HTTP listener (demo pages live under config.demos.path). */
  origin: string;
  stop(): Promise<void>;
}

let nextRange = 0;

/**
 * FERRY_MEDIA_WORKERS / _PLACEMENT / _PIN_THREADS from the environment: `npm test` sets them
 * for the end-to-end suites so every route crosses media threads.
 */
function mediaThreadEnv(): NodeJS.ProcessEnv {
  const keys = ['FERRY_MEDIA_WORKERS', 'FERRY_MEDIA_PLACEMENT', 'FERRY_MEDIA_PIN_THREADS'];
  return Object.fromEntries(keys.filter((k) => process.env[k] !== undefined).map((k) => [k, process.env[k]]));
}

/** Ports for this test process's media: a small range, distinct per call so leftovers never collide. */
export function mediaRange(size = 50): { rtp_port_min: number; rtp_port_max: number } {
  const base = 42000 + ((process.pid * 7) % 200) * 100 + (nextRange++ % 2) * 50;
  return { rtp_port_min: base, rtp_port_max: base + size - 1 };
}

/** The SIP plugin's pool for this test process, below the media ranges. */
export function sipRange(size = 50): { rtp_port_min: number; rtp_port_max: number } {
  const base = 10000 + ((process.pid * 7) % 180) * 50;
  return { rtp_port_min: base, rtp_port_max: base + size - 1 };
}

export async function startFerry(
  overrides: ConfigOverrides = {},
  plugins?: FerryOptions['plugins'],
  clock?: FerryOptions['clock'],
): Promise<TestFerry> {
  const config = applyEnv(
    makeConfig({
      ...loopbackOverrides(overrides),
      media: { bind: '127.0.0.1', candidate_addresses: '127.0.0.1', ...mediaRange(), ...overrides.media },
      sip: { ...sipRange(), ...overrides.sip },
    }),
    mediaThreadEnv(),
  );
  const ferry = await createFerry({ config, logger: createLogger(config.log.level), plugins, clock });
  const addr = await ferry.start();
  return {
    ferry,
    config,
    http: new JanusHttp(`http://127.0.0.1:${addr.http?.port}${config.http.base_path}`),
    admin: new JanusHttp(`http://127.0.0.1:${addr.adminHttp?.port}${config.admin_http.base_path}`),
    wsUrl: `ws://127.0.0.1:${addr.websocket?.port}/`,
    origin: `http://127.0.0.1:${addr.http?.port}`,
    stop: () => ferry.stop(),
  };
}

/** `ferry_status` from the Admin API. */
export async function ferryStatus(gw: TestFerry): Promise<Record<string, any>> {
  const r = (await gw.admin.post('', { janus: 'ferry_status', admin_secret: gw.config.auth.admin_secret })) as Record<string, any>;
  return r['status'] as Record<string, any>;
}

/**
 * Waits (bounded) until ferry holds no session, PeerConnection or port lease,
 * as after every client has left; returns the last status for assertions.
 */
export async function waitUntilIdle(gw: TestFerry, timeoutMs = 10_000): Promise<Record<string, any>> {
  const deadline = Date.now() + timeoutMs;
  let status = await ferryStatus(gw);
  while ((status['sessions'] !== 0 || status['peer_connections'] !== 0 || gw.ferry.leasedPorts() !== 0) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 200));
    status = await ferryStatus(gw);
  }
  return status;
}
