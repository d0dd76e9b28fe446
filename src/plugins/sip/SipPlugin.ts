/**
 * `janus.plugin.sip` over ferry's own SIP stack (src/sip): the Janus SIP
 * plugin API (janus_sip.c) for WebRTC clients, each handle bridged to SIP
 * peers through plain RTP legs in the native media engine.
 *
 * Per handle: SipHandle.ts (account + one call slot). Per account:
 * SipAccount.ts (one UserAgent with its own sockets). Per call: SipCall.ts,
 * with a MediaBridge.ts and the SIP-side SDP of SdpBridge.ts.
 *
 * Configuration (`SipPluginConfig`, all optional):
 *   bind            address the accounts' SIP sockets bind to and advertise (default 127.0.0.1)
 *   local_ip        overrides `bind` (Janus `local_ip`)
 *   sdp_ip          c= address of ferry's SIP-side SDP (Janus `sdp_ip`; default local_ip/bind)
 *   register_ttl    default REGISTER expiry in seconds (Janus: 3600)
 *   user_agent      User-Agent/Server header (default "ferry")
 *   sip_timer_t1x64 64×T1 in ms (Janus `sip_timer_t1x64`, default 32000, RFC 3261 §17.1.1.2)
 *   registration_backoff_ms  {base, max} re-registration backoff after failures
 *   close_grace_ms  how long a closing account keeps its sockets for a last BYE (default 500)
 *   tls_cert, tls_key  PEM files of the certificate every account presents on its TLS
 *                   transport (sips:, transport=tls); tls_ca trusts more than the system's
 *                   CAs (a self-signed peer), tls_verify false skips checking servers
 *   sips_certs_dir  Janus's alternative: a directory with agent.pem (certificate and key)
 *                   and, optionally, cafile.pem
 *   keepalive_interval  seconds between keep-alives to the registrar while registered
 *                   (Janus; default 120, 0 off): CRLF pings on TCP/TLS, OPTIONS on UDP
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { pino } from 'pino';
import type { TlsOptions } from '../../sip/SipTransport.js';
import type { JsonObject } from '../../core/Json.js';
import type { MediaServices } from '../../media/Routing.js';
import type { Plugin, PluginContext, PluginHandle, PluginInfo } from '../../core/Plugin.js';
import type { SipAccount } from './SipAccount.js';
import { SipHandle, type SipHandleDirectory, type SipHandleEnvironment } from './SipHandle.js';
import { Referrals } from './Transfer.js';

export interface SipPluginConfig {
  bind?: string;
  local_ip?: string;
  sdp_ip?: string;
  register_ttl?: number;
  user_agent?: string;
  sip_timer_t1x64?: number;
  registration_backoff_ms?: { base: number; max: number };
  close_grace_ms?: number;
  tls_cert?: string;
  tls_key?: string;
  tls_ca?: string;
  tls_verify?: boolean;
  sips_certs_dir?: string;
  keepalive_interval?: number;
}

/** The TLS certificate and trust the configuration names, read once at start; none without a certificate. */
function tlsOptions(c: SipPluginConfig): TlsOptions | undefined {
  const verify = c.tls_verify === false ? { verifyPeer: false } : {};
  if (c.tls_cert !== undefined || c.tls_key !== undefined) {
    if (c.tls_cert === undefined || c.tls_key === undefined) throw new Error('sip: tls_cert and tls_key go together');
    return { cert: readFileSync(c.tls_cert), key: readFileSync(c.tls_key), ...(c.tls_ca !== undefined ? { ca: readFileSync(c.tls_ca) } : {}), ...verify };
  }
  if (c.sips_certs_dir !== undefined) {
    const agent = readFileSync(join(c.sips_certs_dir, 'agent.pem'));
    const cafile = join(c.sips_certs_dir, 'cafile.pem');
    return { cert: agent, key: agent, ...(existsSync(cafile) ? { ca: readFileSync(cafile) } : {}), ...verify };
  }
  return undefined;
}

export interface SipPluginOptions {
  media: MediaServices;
  logger?: Logger;
  config?: SipPluginConfig;
}

export class SipPlugin implements Plugin, SipHandleDirectory {
  readonly info: PluginInfo = {
    package: 'janus.plugin.sip',
    name: 'JANUS SIP plugin',
    description: 'Janus SIP plugin API over ferry\'s own SIP stack, bridging WebRTC to plain RTP in the native engine.',
    author: 'ferry',
    version: 9,
    versionString: '0.0.9',
  };

  readonly env: SipHandleEnvironment;
  /** Every handle, with its handle id. */
  private readonly handles = new Map<SipHandle, number>();
  private readonly masters = new Map<number, SipHandle>();
  private readonly accounts = new Set<SipAccount>();
  private masterIds = 0;
  private readonly logger: Logger;
  readonly referrals = new Referrals();

  constructor(private readonly options: SipPluginOptions) {
    const c = options.config ?? {};
    const host = c.local_ip ?? c.bind ?? '127.0.0.1';
    const t1x64 = c.sip_timer_t1x64 ?? 32_000;
    if (!Number.isInteger(t1x64) || t1x64 < 64) throw new Error('sip: sip_timer_t1x64 must be an integer >= 64 (ms)');
    this.env = {
      host,
      tls: tlsOptions(c),
      keepaliveMs: Math.max(0, c.keepalive_interval ?? 120) * 1000,
      sdpAddress: c.sdp_ip ?? host,
      registerTtl: c.register_ttl ?? 3600,
      userAgent: c.user_agent ?? 'ferry',
      t1Ms: Math.floor(t1x64 / 64),
      backoffBaseMs: c.registration_backoff_ms?.base ?? 1000,
      backoffMaxMs: c.registration_backoff_ms?.max ?? 30_000,
      closeGraceMs: c.close_grace_ms ?? 500,
      counters: { sdpRefused: 0 },
    };
    this.logger = options.logger ?? pino({ level: 'silent' });
  }

  attach(context: PluginContext): PluginHandle {
    const handle = new SipHandle(context, this.options.media, this.env, this);
    this.handles.set(handle, context.handleId);
    return handle;
  }

  // ---- SipHandleDirectory
  nextMasterId(): number {
    return ++this.masterIds;
  }

  master(id: number): SipHandle | undefined {
    return this.masters.get(id);
  }

  addMaster(id: number, handle: SipHandle): void {
    this.masters.set(id, handle);
  }

  removeMaster(id: number, handle: SipHandle): void {
    if (this.masters.get(id) === handle) this.masters.delete(id);
  }

  handleClosed(handle: SipHandle): void {
    this.handles.delete(handle);
  }

  accountOpened(account: SipAccount): void {
    this.accounts.add(account);
    void account.whenClosed.then(() => this.accounts.delete(account));
  }

  /** Counters for tests, Admin and leak checks: handles, busy call slots, open accounts (UserAgents). */
  stats(): { sessions: number; activeCalls: number; accounts: number; masters: number; sdpRefused: number; referrals: number } {
    let activeCalls = 0;
    for (const h of this.handles.keys()) if (h.busy) activeCalls++;
    return {
      sessions: this.handles.size, activeCalls, accounts: this.accounts.size, masters: this.masters.size,
      sdpRefused: this.env.counters.sdpRefused, referrals: this.referrals.size,
    };
  }

  /** The account a handle registered (its UserAgent is the wire tap tests and diagnostics use). */
  accountOf(handleId: number): SipAccount | null {
    for (const [handle, id] of this.handles) if (id === handleId) return handle.accountForTests;
    return null;
  }

  handleAdminMessage(request: JsonObject): JsonObject {
    if (request['request'] === 'stats') return { sip: 'stats', ...this.stats() };
    return { sip: 'event', error_code: 442, error: 'Unknown request (supported: stats)' };
  }

  destroy(): void {
    // Every handle was destroyed first (each closed its own account); close what a late open left.
    for (const account of this.accounts) void account.close(0);
    this.logger.debug('sip plugin destroyed');
  }
}
