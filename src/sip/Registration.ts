/**
 * Registration of one address-of-record (RFC 3261 §10.2) as an explicit state
 * table, sans-IO: REGISTER requests leave through an injected `send`, time
 * comes from an injected `Clock`.
 *
 * Lesson §2 (PJSIP #4066) by construction: every REGISTER's Route comes from
 * `AccountRoutes.forRegister()` (configured proxy only); the learned
 * Service-Route is updated on each 2xx and cleared on a 2xx without one, on
 * failure, on expiry, on unregistration and on transport loss (RFC 3608 §6.1).
 *
 * Events mirror the Janus SIP plugin: `registering`, `registered`,
 * `registration_failed`, `unregistering`, `unregistered` (+ `refreshed`, `state`).
 */
import type { Clock, Timer } from '../time/Clock.js';
import { answerChallenges, type DigestCredentials } from './DigestAuth.js';
import { Emitter } from './Emitter.js';
import { applyRoutes, type AccountRoutes } from './RouteSet.js';
import {
  SipHeaders, formatNameAddr, headerNameAddr, newCallId, newTag, parseNameAddr,
  type SipRequest, type SipResponse,
} from './SipMessage.js';
import { parseSipUri } from './SipUri.js';

export type RegistrationState = 'unregistered' | 'registering' | 'registered' | 'refreshing' | 'retrying' | 'unregistering' | 'failed';
export type RegistrationInput = 'register' | 'unregister' | 'ok' | 'challenge' | 'rejected' | 'timeout' | 'transportLost' | 'refreshDue' | 'retryDue' | 'expired';
type RegistrationAction =
  | 'sendRegister' | 'sendAuthRegister' | 'sendUnregister' | 'acceptOk' | 'clearServiceRoute' | 'scheduleRetry' | 'cancelTimers'
  | 'emitRegistering' | 'emitRegistered' | 'emitRefreshed' | 'emitFailed' | 'emitUnregistering' | 'emitUnregistered';

type Row = { to: RegistrationState; do: readonly RegistrationAction[] };
const unregisterRow: Row = { to: 'unregistering', do: ['cancelTimers', 'emitUnregistering', 'sendUnregister'] };
const failRow: Row = { to: 'failed', do: ['cancelTimers', 'clearServiceRoute', 'emitFailed'] };
const retryRow: Row = { to: 'retrying', do: ['clearServiceRoute', 'scheduleRetry'] };
const doneUnregisteringRow: Row = { to: 'unregistered', do: ['cancelTimers', 'clearServiceRoute', 'emitUnregistered'] };

export const REGISTRATION_TABLE: Record<RegistrationState, Partial<Record<RegistrationInput, Row>>> = {
  unregistered: {
    register: { to: 'registering', do: ['emitRegistering', 'sendRegister'] },
  },
  failed: {
    register: { to: 'registering', do: ['emitRegistering', 'sendRegister'] },
  },
  registering: {
    ok: { to: 'registered', do: ['acceptOk', 'emitRegistered'] },
    challenge: { to: 'registering', do: ['sendAuthRegister'] },
    rejected: failRow,
    timeout: failRow,
    transportLost: failRow,
    unregister: unregisterRow,
  },
  registered: {
    refreshDue: { to: 'refreshing', do: ['sendRegister'] },
    // The outage case of #4066: forget the Service-Route, re-register at once (via the proxy only).
    transportLost: { to: 'refreshing', do: ['clearServiceRoute', 'sendRegister'] },
    expired: { to: 'refreshing', do: ['clearServiceRoute', 'sendRegister'] },
    unregister: unregisterRow,
  },
  refreshing: {
    ok: { to: 'registered', do: ['acceptOk', 'emitRefreshed'] },
    challenge: { to: 'refreshing', do: ['sendAuthRegister'] },
    rejected: failRow,
    timeout: retryRow,
    transportLost: retryRow,
    expired: { to: 'refreshing', do: ['clearServiceRoute'] },
    unregister: unregisterRow,
  },
  retrying: {
    retryDue: { to: 'refreshing', do: ['sendRegister'] },
    transportLost: { to: 'retrying', do: ['clearServiceRoute'] },
    expired: { to: 'retrying', do: ['clearServiceRoute'] },
    unregister: unregisterRow,
  },
  unregistering: {
    ok: doneUnregisteringRow,
    challenge: { to: 'unregistering', do: ['sendAuthRegister'] },
    rejected: doneUnregisteringRow,
    timeout: doneUnregisteringRow,
    transportLost: doneUnregisteringRow,
  },
};

export type RegisterOutcome =
  | { kind: 'response'; response: SipResponse }
  | { kind: 'timeout' }
  | { kind: 'transportError' };

export interface RegistrationOptions {
  /** Address-of-record, e.g. `sip:alice@example.com` (Janus `username`). */
  aor: string;
  /** Request-URI of REGISTER; default `sip:<aor host>[:port]` (§10.2). */
  registrar?: string;
  /** Our Contact as a name-addr (`<sip:alice@127.0.0.1:5062>`), given by the UA. */
  contact: string;
  displayName?: string;
  /** Requested binding lifetime in seconds (Janus `register_ttl`). */
  expires?: number;
  credentials?: DigestCredentials;
  /** Extra headers on every REGISTER. */
  headers?: ReadonlyArray<readonly [string, string]>;
  /** Bounded exponential backoff for re-registration after transport failure. */
  backoffBaseMs?: number;
  backoffMaxMs?: number;
}

export type RegistrationEvents = {
  registering: [];
  registered: [info: { expires: number; serviceRoute: readonly string[]; response: SipResponse }];
  refreshed: [info: { expires: number; serviceRoute: readonly string[]; response: SipResponse }];
  registration_failed: [info: { code: number; reason: string; response?: SipResponse }];
  unregistering: [];
  unregistered: [];
  state: [from: RegistrationState, input: RegistrationInput, to: RegistrationState];
};

/** Sends a REGISTER (Route already set) and reports its outcome exactly once. */
export type RegisterSender = (request: SipRequest, nextHop: string, done: (outcome: RegisterOutcome) => void) => void;

export class Registration extends Emitter<RegistrationEvents> {
  state: RegistrationState = 'unregistered';
  readonly callId: string;
  private readonly fromTag = newTag();
  private cseq = 0;
  private readonly registrar: string;
  private readonly expiresRequested: number;
  private grantedExpires = 0;
  private pending = 0; // id of the REGISTER whose outcome we wait for; older outcomes are stale
  private lastRequest: SipRequest | undefined;
  private lastResponse: SipResponse | undefined;
  private authTries = 0;
  private retryCount = 0;
  private refreshTimer: Timer | undefined;
  private expiryTimer: Timer | undefined;
  private retryTimer: Timer | undefined;
  private failure: { code: number; reason: string; response?: SipResponse } = { code: 0, reason: '' };
  /** Every REGISTER sent, with its next hop (tests check the route of each). */
  readonly sent: Array<{ request: SipRequest; nextHop: string }> = [];

  constructor(
    private readonly options: RegistrationOptions,
    readonly routes: AccountRoutes,
    private readonly send: RegisterSender,
    private readonly clock: Clock,
  ) {
    super();
    const aor = parseSipUri(options.aor);
    if (!aor) throw new Error(`invalid AOR: ${options.aor}`);
    this.registrar = options.registrar ?? `sip:${aor.host.includes(':') ? `[${aor.host}]` : aor.host}${aor.port ? `:${aor.port}` : ''}`;
    if (!parseSipUri(this.registrar)) throw new Error(`invalid registrar URI: ${this.registrar}`);
    this.expiresRequested = options.expires ?? 3600;
    this.callId = newCallId(aor.host);
  }

  get expires(): number {
    return this.grantedExpires;
  }

  register(): void {
    this.input('register');
  }

  unregister(): void {
    this.input('unregister');
  }

  /** Refreshes the binding now (Janus `register` with `refresh: true`); only while registered. */
  refresh(): void {
    this.input('refreshDue');
  }

  /** The UA reports transport loss (TCP close, ICMP/send error, network change). */
  transportLost(): void {
    this.input('transportLost');
  }

  /** Stops every timer without sending anything (UA shutdown). */
  dispose(): void {
    this.cancelTimers();
    this.pending++;
  }

  private input(input: RegistrationInput, res?: SipResponse): void {
    const row = REGISTRATION_TABLE[this.state][input];
    if (!row) return;
    const from = this.state;
    this.lastInput = input;
    this.state = row.to;
    for (const a of row.do) this.perform(a, res);
    this.emit('state', from, input, row.to);
  }

  private perform(action: RegistrationAction, res?: SipResponse): void {
    switch (action) {
      case 'sendRegister':
        this.authTries = 0;
        this.transmit(this.buildRegister(this.expiresRequested));
        break;
      case 'sendUnregister':
        this.authTries = 0;
        this.transmit(this.buildRegister(0));
        break;
      case 'sendAuthRegister': {
        // Retry the same REGISTER with credentials and a new CSeq (§22.2, §8.1.3.5).
        const prev = this.lastRequest;
        if (!prev || !res) break;
        const expiresValue = Number(prev.headers.get('Expires') ?? this.expiresRequested);
        const next = this.buildRegister(expiresValue);
        for (const a of answerChallenges(res, this.options.credentials ?? { username: '' }, 'REGISTER', next.request.uri)) {
          next.request.headers.add(a.header, a.value);
        }
        this.transmit(next);
        break;
      }
      case 'acceptOk':
        if (!res) break;
        this.routes.updateFromRegisterOk(res);
        this.grantedExpires = this.expiresFrom(res);
        this.retryCount = 0;
        this.scheduleRefresh();
        break;
      case 'clearServiceRoute':
        this.routes.clearServiceRoute(
          this.state === 'unregistered' ? 'unregistered'
            : this.state === 'failed' ? 'register-failed'
            : this.lastInput === 'expired' ? 'expired' : 'transport-lost',
        );
        break;
      case 'scheduleRetry': {
        // Bounded exponential backoff: base * 2^n, capped.
        const base = this.options.backoffBaseMs ?? 1000;
        const max = this.options.backoffMaxMs ?? 30_000;
        const delay = Math.min(max, base * 2 ** Math.min(this.retryCount, 20));
        this.pending++; // the REGISTER in flight is given up: its late outcome must not count
        this.retryCount++;
        this.retryTimer?.cancel();
        this.retryTimer = this.clock.setTimeout(() => this.input('retryDue'), delay);
        break;
      }
      case 'cancelTimers':
        this.cancelTimers();
        break;
      case 'emitRegistering':
        this.emit('registering');
        break;
      case 'emitRegistered':
      case 'emitRefreshed':
        if (res) this.emit(action === 'emitRegistered' ? 'registered' : 'refreshed', { expires: this.grantedExpires, serviceRoute: this.routes.serviceRoute, response: res });
        break;
      case 'emitFailed':
        this.emit('registration_failed', this.failure);
        break;
      case 'emitUnregistering':
        this.emit('unregistering');
        break;
      case 'emitUnregistered':
        this.emit('unregistered');
        break;
    }
  }

  private lastInput: RegistrationInput | undefined;

  private cancelTimers(): void {
    this.refreshTimer?.cancel();
    this.expiryTimer?.cancel();
    this.retryTimer?.cancel();
    this.refreshTimer = this.expiryTimer = this.retryTimer = undefined;
  }

  /** Refresh halfway, but at least 5 s before expiry (§10.2.1 leaves the policy to the UA). */
  private scheduleRefresh(): void {
    this.refreshTimer?.cancel();
    this.expiryTimer?.cancel();
    const e = this.grantedExpires;
    const refreshIn = Math.max(1, Math.min(e / 2, e - 5)) * 1000;
    this.refreshTimer = this.clock.setTimeout(() => this.input('refreshDue'), refreshIn);
    this.expiryTimer = this.clock.setTimeout(() => this.input('expired'), e * 1000);
  }

  /** Binding lifetime granted (§10.2.4): our Contact's expires param, else Expires, else what we asked. */
  private expiresFrom(res: SipResponse): number {
    const ours = parseNameAddr(this.options.contact);
    const ourUri = ours ? parseSipUri(ours.uri) : null;
    for (const c of res.headers.getAll('Contact')) {
      const na = parseNameAddr(c);
      const uri = na ? parseSipUri(na.uri) : null;
      const exp = na?.params.get('expires');
      if (uri && ourUri && exp && /^\d+$/.test(exp) && uri.host === ourUri.host && (uri.port ?? 5060) === (ourUri.port ?? 5060) && uri.user === ourUri.user) {
        return Number(exp);
      }
    }
    const header = res.headers.get('Expires');
    if (header !== undefined && /^\d+$/.test(header.trim())) return Number(header.trim());
    return this.expiresRequested;
  }

  private buildRegister(expires: number): { request: SipRequest; nextHop: string } {
    const routed = applyRoutes(this.registrar, this.routes.forRegister());
    const headers = new SipHeaders();
    for (const r of routed.routeHeaders) headers.add('Route', r);
    headers.add('Max-Forwards', '70');
    const aorNa = { uri: this.options.aor, params: new Map<string, string | null>() };
    const fromNa = { ...aorNa, params: new Map<string, string | null>([['tag', this.fromTag]]) };
    if (this.options.displayName !== undefined) {
      Object.assign(aorNa, { display: this.options.displayName });
      Object.assign(fromNa, { display: this.options.displayName });
    }
    headers.add('From', formatNameAddr(fromNa));
    headers.add('To', formatNameAddr(aorNa));
    // §10.2: the same Call-ID for every REGISTER of this registration, CSeq increasing.
    headers.add('Call-ID', this.callId);
    headers.add('CSeq', `${++this.cseq} REGISTER`);
    headers.add('Contact', this.options.contact);
    headers.add('Expires', String(expires));
    for (const [n, v] of this.options.headers ?? []) headers.add(n, v);
    const request: SipRequest = { kind: 'request', method: 'REGISTER', uri: routed.requestUri, headers, body: Buffer.alloc(0) };
    return { request, nextHop: routed.nextHop };
  }

  private transmit({ request: req, nextHop }: { request: SipRequest; nextHop: string }): void {
    const id = ++this.pending;
    this.lastRequest = req;
    this.sent.push({ request: req, nextHop });
    this.send(req, nextHop, (outcome) => {
      if (id !== this.pending) return; // a newer REGISTER superseded this one
      this.onOutcome(outcome, req);
    });
  }

  private onOutcome(outcome: RegisterOutcome, req: SipRequest): void {
    if (outcome.kind === 'timeout') {
      this.failure = { code: 408, reason: 'Request Timeout' };
      return this.input('timeout');
    }
    if (outcome.kind === 'transportError') {
      this.failure = { code: 503, reason: 'Transport Error' };
      return this.input('transportLost');
    }
    const res = outcome.response;
    this.lastResponse = res;
    if (res.status < 200) return;
    if (res.status < 300) {
      return this.input('ok', res);
    }
    if ((res.status === 401 || res.status === 407) && this.canAnswerChallenge(res, req)) {
      this.authTries++;
      return this.input('challenge', res);
    }
    this.failure = { code: res.status, reason: res.reason, response: res };
    this.input('rejected', res);
  }

  /**
   * Answer each challenge once (§22.2): a challenge to a request that already
   * carried credentials means they were refused, unless the server says the
   * nonce was merely stale (RFC 2617 §3.2.1). Bounded to two answers in a row.
   */
  private canAnswerChallenge(res: SipResponse, req: SipRequest): boolean {
    if (!this.options.credentials) return false;
    if (this.authTries >= 2) return false;
    const answers = answerChallenges(res, this.options.credentials, 'REGISTER', req.uri);
    if (answers.length === 0) return false;
    const hadCredentials = req.headers.has('Authorization') || req.headers.has('Proxy-Authorization');
    return !hadCredentials || answers.every((a) => a.stale);
  }

  /** Last response seen (for the plugin's `headers` in events). */
  get lastResponseSeen(): SipResponse | undefined {
    return this.lastResponse;
  }

  /** The AOR's From as sent (display + tag), for logs. */
  get fromHeader(): string | undefined {
    return this.lastRequest ? headerNameAddr(this.lastRequest, 'From')?.uri : undefined;
  }
}
