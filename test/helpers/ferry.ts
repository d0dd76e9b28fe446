// A whole ferry (engine, ports, WebRTC, plugins, API) on loopback for end-to-end tests.
import { makeConfig, type ConfigOverrides, type FerryConfig } from '../../src/config/Config.js';
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
  const config = makeConfig({
    ...loopbackOverrides(overrides),
    media: { bind: '127.0.0.1', candidate_addresses: '127.0.0.1', ...mediaRange(), ...overrides.media },
    sip: { ...sipRange(), ...overrides.sip },
  });
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
