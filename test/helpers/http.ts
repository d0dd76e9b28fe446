/**
 * Test clients for ferry's Janus API: a gateway on ephemeral loopback ports,
 * an HTTP client (fetch) and a WebSocket client that matches replies to
 * transactions and collects events.
 */
import WebSocket from 'ws';
import { ManualClock } from '../../src/time/Clock.js';
import type { JsonObject } from '../../src/core/Json.js';
import { makeConfig, type ConfigOverrides, type FerryConfig } from '../../src/config/Config.js';
import { createLogger } from '../../src/log/logger.js';
import { Gateway, type GatewayOptions } from '../../src/Gateway.js';

export type Json = JsonObject & Record<string, any>;

export interface TestGateway {
  gw: Gateway;
  clock: ManualClock;
  config: FerryConfig;
  http: JanusHttp;
  admin: JanusHttp;
  httpBase: string;
  adminBase: string;
  wsUrl: string;
  adminWsUrl: string;
  stop(): Promise<void>;
}

/** Every listener on 127.0.0.1, ephemeral port, silent logs, no per-client quotas — unless the test says otherwise. */
export function loopbackOverrides(overrides: ConfigOverrides): ConfigOverrides {
  const local = { bind: '127.0.0.1', port: 0 };
  return {
    ...overrides,
    http: { ...local, ...overrides.http },
    websocket: { ...local, ...overrides.websocket },
    admin_http: { ...local, ...overrides.admin_http },
    admin_websocket: { ...local, ...overrides.admin_websocket },
    log: { level: 'silent', ...overrides.log },
    // No sample mountpoint: its two ports would count in every test's "no lease left" check.
    streaming: { demo_mountpoint: false, ...overrides.streaming },
    // Every test client comes from 127.0.0.1, so one address stands for many clients here: the
    // per-client quotas are off unless a test sets them (test/core/quotas.test.ts, …).
    quotas: { session_create_rate: 0, sessions_per_client: 0, peer_connections_per_client: 0, rooms_per_client: 0, max_rooms: 0, ...overrides.quotas },
  };
}

/** Starts a gateway on 127.0.0.1 port 0 for every listener, silent logs and a manual clock. */
export async function startGateway(overrides: ConfigOverrides = {}, extra: Partial<GatewayOptions> = {}): Promise<TestGateway> {
  const config = makeConfig(loopbackOverrides(overrides));
  const clock = extra.clock instanceof ManualClock ? extra.clock : new ManualClock();
  const gw = new Gateway({ config, clock, logger: createLogger(config.log.level), ...extra });
  const addr = await gw.start();
  const httpBase = `http://127.0.0.1:${addr.http?.port}`;
  const adminBase = `http://127.0.0.1:${addr.adminHttp?.port}`;
  return {
    gw,
    clock,
    config,
    httpBase,
    adminBase,
    http: new JanusHttp(`${httpBase}${config.http.base_path}`),
    admin: new JanusHttp(`${adminBase}${config.admin_http.base_path}`),
    wsUrl: `ws://127.0.0.1:${addr.websocket?.port}/`,
    adminWsUrl: `ws://127.0.0.1:${addr.adminWebsocket?.port}/`,
    stop: () => gw.stop(),
  };
}

let txCounter = 0;
export function tx(): string {
  return `tx-${++txCounter}`;
}

export interface HttpResult {
  status: number;
  body: any;
  headers: Headers;
  text: string;
}

export class JanusHttp {
  constructor(readonly base: string) {}

  async raw(path: string, init: RequestInit = {}): Promise<HttpResult> {
    const res = await fetch(`${this.base}${path}`, { redirect: 'manual', ...init });
    const text = await res.text();
    let body: any = undefined;
    try {
      body = text.length ? JSON.parse(text) : undefined;
    } catch {
      body = undefined;
    }
    return { status: res.status, body, headers: res.headers, text };
  }

  /** POSTs a request object (a transaction is added unless present). */
  async post(path: string, request: Record<string, unknown>): Promise<Json> {
    const body = 'transaction' in request ? request : { ...request, transaction: tx() };
    const r = await this.raw(path, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
    if (r.status !== 200) throw new Error(`HTTP ${r.status}: ${r.text}`);
    return r.body as Json;
  }

  async get(path: string): Promise<HttpResult> {
    return this.raw(path);
  }

  async createSession(extra: Record<string, unknown> = {}): Promise<number> {
    const r = await this.post('', { janus: 'create', ...extra });
    if (r['janus'] !== 'success') throw new Error(`create failed: ${JSON.stringify(r)}`);
    return r['data'].id as number;
  }

  async attach(sessionId: number, plugin = 'janus.plugin.echotest', extra: Record<string, unknown> = {}): Promise<number> {
    const r = await this.post(`/${sessionId}`, { janus: 'attach', plugin, ...extra });
    if (r['janus'] !== 'success') throw new Error(`attach failed: ${JSON.stringify(r)}`);
    return r['data'].id as number;
  }
}

const REPLY_KINDS = new Set(['success', 'error', 'ack', 'pong', 'server_info']);

/** A WebSocket API client: replies resolved by transaction, everything else kept as events. */
export class JanusWs {
  readonly events: Json[] = [];
  private readonly pending = new Map<string, (msg: Json) => void>();
  private readonly rawWaiters: Array<(msg: Json) => void> = [];
  private readonly eventWaiters: Array<{ match: (e: Json) => boolean; resolve: (e: Json) => void }> = [];
  closed = false;

  private constructor(readonly socket: WebSocket) {
    socket.on('message', (data) => {
      let msg: Json;
      try {
        msg = JSON.parse(String(data)) as Json;
      } catch {
        msg = { janus: 'unparseable', text: String(data) } as Json;
      }
      const t = typeof msg['transaction'] === 'string' ? (msg['transaction'] as string) : undefined;
      if (REPLY_KINDS.has(String(msg['janus']))) {
        const waiter = t !== undefined ? this.pending.get(t) : undefined;
        if (waiter && t !== undefined) {
          this.pending.delete(t);
          waiter(msg);
          return;
        }
        const raw = this.rawWaiters.shift();
        if (raw) {
          raw(msg);
          return;
        }
      }
      const i = this.eventWaiters.findIndex((w) => w.match(msg));
      if (i >= 0) {
        const [w] = this.eventWaiters.splice(i, 1);
        w?.resolve(msg);
        return;
      }
      this.events.push(msg);
    });
    socket.on('close', () => { this.closed = true; });
  }

  /** `localAddress`: connect from another loopback address (e.g. 127.0.0.2), as a different client. */
  static connect(url: string, protocol: string | string[] = 'janus-protocol', options: { localAddress?: string } = {}): Promise<JanusWs> {
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(url, protocol, options);
      socket.once('open', () => resolve(new JanusWs(socket)));
      socket.once('error', reject);
    });
  }

  /** Sends a request and resolves with the reply carrying its transaction. */
  request(request: Record<string, unknown>): Promise<Json> {
    const body = 'transaction' in request ? request : { ...request, transaction: tx() };
    const t = String(body['transaction']);
    return new Promise((resolve) => {
      this.pending.set(t, resolve);
      this.socket.send(JSON.stringify(body));
    });
  }

  /** Sends text and resolves with the next reply that matched no pending transaction. */
  sendRaw(text: string | Buffer): Promise<Json> {
    return new Promise((resolve) => {
      this.rawWaiters.push(resolve);
      this.socket.send(text);
    });
  }

  /** Sends without waiting (pipelining); pair with `request` promises collected by the caller. */
  requestNoWait(request: Record<string, unknown>): Promise<Json> {
    return this.request(request);
  }

  /** Next event (already received or future) that matches; rejects after `ms` of real time. */
  nextEvent(match: (e: Json) => boolean, ms = 5000): Promise<Json> {
    const i = this.events.findIndex(match);
    if (i >= 0) {
      const [e] = this.events.splice(i, 1);
      return Promise.resolve(e as Json);
    }
    return new Promise((resolve, reject) => {
      const waiter = { match, resolve: (e: Json) => { clearTimeout(timer); resolve(e); } };
      const timer = setTimeout(() => {
        const k = this.eventWaiters.indexOf(waiter);
        if (k >= 0) this.eventWaiters.splice(k, 1);
        reject(new Error(`no matching event within ${ms} ms; have ${JSON.stringify(this.events).slice(0, 500)}`));
      }, ms);
      this.eventWaiters.push(waiter);
    });
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      this.socket.once('close', () => resolve());
      this.socket.close();
    });
  }
}

/** Lets pending I/O and timers of real time settle (a few event-loop turns). */
export function settle(ms = 20): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `cond` on real time, bounded; for waiting on socket-close side effects. */
export async function waitFor(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await settle(1);
  }
}

export const OFFER_SDP = [
  'v=0', 'o=- 1 2 IN IP4 127.0.0.1', 's=-', 't=0 0', 'a=group:BUNDLE 0',
  'm=audio 9 UDP/TLS/RTP/SAVPF 111', 'c=IN IP4 0.0.0.0', 'a=mid:0', 'a=rtpmap:111 opus/48000/2', 'a=sendrecv', '',
].join('\r\n');
