/**
 * One SIP account: a UserAgent of ferry's own SIP stack (its own UDP/TCP
 * sockets) plus its registration, as Janus keeps one Sofia NUA per
 * registered handle. The handle that registered owns it; helper handles
 * (`type: "helper"`) share it and take the calls that arrive while the
 * owner is busy.
 *
 * Registration events are turned into Janus's (`registering`, `registered`,
 * `registration_failed`, `unregistering`, `unregistered`). A refresh that
 * fails while ferry keeps retrying in the background is reported as
 * `registration_failed`, and the recovery as `registered` again, as Janus
 * does when its registration status drops below "registered" and comes back.
 */
import type { JsonObject } from '../../core/Json.js';
import type { Call } from '../../sip/Call.js';
import type { DigestCredentials } from '../../sip/DigestAuth.js';
import type { RegistrationInput, RegistrationState } from '../../sip/Registration.js';
import type { TlsOptions, TransportProtocol } from '../../sip/SipTransport.js';
import { UserAgent, type IncomingMessageEvent } from '../../sip/UserAgent.js';

export interface AccountSettings {
  /** Address-of-record (Janus `username`), a SIP URI. */
  username: string;
  /** User part of the AOR (our Contact's user). */
  user: string;
  displayName?: string;
  credentials?: DigestCredentials;
  userAgent: string;
  /** Janus `proxy`: where REGISTER goes (its Request-URI). */
  registrar?: string;
  /** Janus `outbound_proxy`: the first hop of every request; kept apart from the Service-Route. */
  outboundProxy?: string;
  transport: TransportProtocol;
  registerTtl: number;
  headers: Array<[string, string]>;
  /** False for guests: no REGISTER is ever sent. */
  sendRegister: boolean;
  incomingHeaderPrefixes: string[];
  automaticRinging: boolean;
}

export interface AccountEnvironment {
  /** Address the account's sockets bind to and advertise. */
  host: string;
  /** The plugin's certificate: with it every account also listens on TLS (sips:, transport=tls). */
  tls: TlsOptions | undefined;
  /** Keep-alives towards the registrar while registered (UserAgent keepaliveIntervalMs); 0: none. */
  keepaliveMs: number;
  t1Ms: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
}

/** What the owning handle hears from its account. */
export interface AccountListener {
  accountEvent(result: JsonObject): void;
  incomingCall(call: Call): void;
  incomingMessage(ev: IncomingMessageEvent): void;
}

export type AccountStatus = 'guest' | 'unregistered' | 'registering' | 'registered' | 'failed' | 'unregistering';

export class SipAccount {
  status: AccountStatus = 'unregistered';
  /** A `registered` event was sent and no failure since (so a recovery is announced again). */
  private announced = false;
  private closing: Promise<void> | null = null;
  private markClosed: () => void = () => {};
  /** Resolves once the sockets are closed. */
  readonly whenClosed = new Promise<void>((resolve) => {
    this.markClosed = resolve;
  });

  private constructor(
    readonly ua: UserAgent,
    readonly settings: AccountSettings,
    readonly masterId: number,
    private readonly listener: AccountListener,
    private readonly env: AccountEnvironment,
  ) {
    ua.on('incomingCall', (call) => listener.incomingCall(call));
    ua.on('message', (ev) => listener.incomingMessage(ev));
    ua.on('registering', () => {
      this.status = 'registering';
    });
    ua.on('registered', () => this.onRegistered());
    ua.on('refreshed', () => this.onRegistered());
    ua.on('registration_failed', (info) => {
      this.status = 'failed';
      this.announced = false;
      listener.accountEvent({ event: 'registration_failed', code: info.code, reason: info.reason, ...this.headersOf(info.response) });
    });
    ua.on('state', (from, input, to) => this.onRegistrationState(from, input, to));
    ua.on('unregistering', () => {
      this.status = 'unregistering';
    });
    ua.on('unregistered', () => {
      if (this.status !== 'unregistering') return;
      this.status = 'unregistered';
      this.announced = false;
      listener.accountEvent({ event: 'unregistered', username: settings.username, register_sent: true });
    });
  }

  static async open(settings: AccountSettings, env: AccountEnvironment, masterId: number, listener: AccountListener): Promise<SipAccount> {
    const tcp = settings.transport === 'tcp' || /;transport=tcp/i.test(`${settings.registrar ?? ''}${settings.outboundProxy ?? ''}`);
    if (settings.transport === 'tls' && !env.tls) throw new Error('SIPS/TLS needs the plugin\'s certificate (tls_cert/tls_key or sips_certs_dir)');
    const ua = await UserAgent.create({
      host: env.host,
      udpPort: settings.transport === 'udp' ? 0 : null,
      tcpPort: tcp ? 0 : null,
      ...(env.tls ? { tlsPort: 0, tls: env.tls } : {}),
      user: settings.user,
      userAgent: settings.userAgent,
      ...(settings.outboundProxy ? { outboundProxy: settings.outboundProxy } : {}),
      ...(settings.credentials ? { credentials: settings.credentials } : {}),
      timers: { t1: env.t1Ms },
      keepaliveIntervalMs: env.keepaliveMs,
    });
    return new SipAccount(ua, settings, masterId, listener, env);
  }

  /** Sends the first REGISTER (events follow), or announces a guest at once. */
  start(): void {
    const env = this.env;
    if (!this.settings.sendRegister) {
      this.status = 'guest';
      this.announced = true;
      this.listener.accountEvent({ event: 'registered', username: this.settings.username, register_sent: false, master_id: this.masterId });
      return;
    }
    this.listener.accountEvent({ event: 'registering' });
    this.ua.register({
      aor: this.settings.username,
      ...(this.settings.registrar ? { registrar: this.settings.registrar } : {}),
      expires: this.settings.registerTtl,
      ...(this.settings.displayName ? { displayName: this.settings.displayName } : {}),
      headers: this.settings.headers,
      transport: this.settings.transport,
      backoffBaseMs: env.backoffBaseMs,
      backoffMaxMs: env.backoffMaxMs,
    });
  }

  private onRegistered(): void {
    this.status = 'registered';
    if (this.announced) return;
    this.announced = true;
    this.listener.accountEvent({ event: 'registered', username: this.settings.username, register_sent: true, master_id: this.masterId });
  }

  /** A refresh failed and the stack retries on its own (RFC 3261 §10.2.4 re-registration with backoff). */
  private onRegistrationState(from: RegistrationState, input: RegistrationInput, to: RegistrationState): void {
    if (to !== 'retrying' || from === 'retrying') return;
    if (!this.announced) return;
    this.announced = false;
    this.status = 'registering';
    const [code, reason] = input === 'timeout' ? [408, 'Request Timeout'] : [503, 'Service Unavailable (transport lost)'];
    this.listener.accountEvent({ event: 'registration_failed', code, reason: `${reason}; retrying` });
  }

  /** Janus `register` with `refresh: true`: a REGISTER now, same binding. */
  refresh(): boolean {
    if (this.status !== 'registered' || !this.ua.registration) return false;
    this.ua.registration.refresh();
    return true;
  }

  /** Janus `unregister`: REGISTER with expires 0 (events follow), or nothing to send for a guest. */
  unregister(): void {
    if (this.status === 'guest') {
      this.status = 'unregistered';
      this.listener.accountEvent({ event: 'unregistered', username: this.settings.username, register_sent: false });
      return;
    }
    this.listener.accountEvent({ event: 'unregistering' });
    if (this.status === 'registered' || this.status === 'registering') {
      this.ua.unregister();
      return;
    }
    this.status = 'unregistered';
    this.listener.accountEvent({ event: 'unregistered', username: this.settings.username, register_sent: false });
  }

  /** SIP headers matching the account's `incoming_header_prefixes`, as Janus's `headers` object. */
  headersOf(msg: { headers: { list: ReadonlyArray<{ name: string; value: string }> } } | undefined): { headers?: JsonObject } {
    const prefixes = this.settings.incomingHeaderPrefixes.map((p) => p.toLowerCase());
    if (!msg || prefixes.length === 0) return {};
    const out: JsonObject = {};
    for (const h of msg.headers.list) {
      if (prefixes.some((p) => h.name.toLowerCase().startsWith(p))) out[h.name] = h.value;
    }
    return Object.keys(out).length ? { headers: out } : {};
  }

  get closed(): boolean {
    return this.closing !== null;
  }

  /**
   * Closes the sockets. `graceMs` lets a just-sent BYE or CANCEL leave first
   * (requests are sent asynchronously); nothing new is accepted meanwhile.
   */
  close(graceMs: number): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      this.ua.registration?.dispose();
      const timer = setTimeout(() => void this.ua.close().finally(() => {
        this.markClosed();
        resolve();
      }), graceMs);
      timer.unref?.();
    });
    return this.closing;
  }
}
