/**
 * ferry's SIP user agent: transports + transactions + dialogs + registration
 * (RFC 3261 §8, §12–§18). One UserAgent is one SIP account (as one Sofia-SIP
 * NUA per Janus SIP-plugin handle). Its parts: TransportLayer.ts (the wire,
 * §18), Transactions.ts (§17), InviteClient.ts and InviteServer.ts (the two
 * sides of a call, §13), DialogRequests.ts (requests within a dialog, §12.2)
 * and Registration.ts (§10). This file is the core that ties them together:
 * the calls by dialog, requests outside a dialog, and the API below. About
 * 630 lines, kept whole: what is left is the routing of every message to its
 * transaction, dialog or call, which is one table of lookups over one state.
 *
 * API (used by the SIP plugin):
 *
 *   const ua = await UserAgent.create({ host: '127.0.0.1', udpPort: 0, tcpPort: 0, user: 'alice',
 *     outboundProxy: 'sip:127.0.0.1:5070', credentials: { username, password | ha1 }, clock?, timers? });
 *   ua.udp / ua.tcp                        bound transports (local endpoints)
 *   ua.contact(transport?)                 our Contact name-addr
 *   ua.register({ aor, registrar?, expires?, credentials?, displayName?, headers?,
 *                 outboundProxy?, transport? }): Registration
 *       events on ua: 'registering', 'registered' {expires, serviceRoute, response},
 *       'registration_failed' {code, reason, response?}, 'unregistering', 'unregistered'
 *   ua.unregister(): void
 *   ua.invite(target, sdp | null, { headers?, from?, displayName?, callId? }): Call   (outgoing)
 *       call events: 'provisional'(res), 'accepted'(res, sdp), 'failed'(code, reason, res?),
 *       'terminated'({by, code, reason}); an offerless outgoing INVITE needs ua.ack(call, sdp)
 *   ua.on('incomingCall', (call: Call) => …)   call.offerless tells whether the INVITE had SDP;
 *       call.remoteSdp is the offer; 'confirmed'(ack, sdp) when the ACK arrives (sdp = answer
 *       for an offerless INVITE)
 *   ua.answer(call, code, sdp?, headers?)   1xx (180/183, ringing/progress), 2xx (sdp required:
 *       the answer, or the offer for an offerless INVITE; retransmitted until ACK), or >= 300
 *   ua.ack(call, sdp)                       ACK with answer after an offerless outgoing INVITE
 *   ua.cancel(call)                         CANCEL an outgoing call (sent once a 1xx arrived, §9.1)
 *   ua.bye(call, headers?)                  ends any call: BYE when established, CANCEL when
 *       outgoing and unanswered, 480 when incoming and unanswered
 *   ua.info(call, contentType, content, headers?)     → Promise<RequestOutcome>
 *   ua.refer(call, referTo, headers?) / ua.notify(call, event, subscriptionState, contentType,
 *       content, headers?) → Promise<RequestOutcome>   (RFC 3515 transfers; 'refer' and
 *       'notify' call events the other way: REFER defaults to 603, NOTIFY to 200)
 *   ua.message(call | targetUri, contentType, content, headers?) → Promise<RequestOutcome>
 *   ua.reinvite(call, sdp, headers?) / ua.update(call, sdp, headers?) → Promise<RequestOutcome>
 *       in-dialog requests from the peer arrive as call events 'reinvite', 'update', 'info',
 *       'message' with respond(code, body?, headers?) (INFO/MESSAGE default to 200;
 *       re-INVITE/UPDATE without a listener get 488)
 *   ua.on('message', (ev) => …)             out-of-dialog MESSAGE (ev.respond, default 200)
 *   ua.transportLost()                      report a network change/outage (re-registers)
 *   ua.close()                              stops timers, closes sockets
 *
 * Wire taps for tests and logs: 'sent' (msg, to), 'received' (msg, from), 'parseError'.
 */
import { SystemClock, type Clock, type Timer } from '../time/Clock.js';
import type { Call, InDialogRequestEvent } from './Call.js';
import { answerChallenges, type DigestCredentials } from './DigestAuth.js';
import { Dialog, dialogKey } from './Dialog.js';
import { DialogRequests, requestEvent } from './DialogRequests.js';
import { Emitter } from './Emitter.js';
import { InviteClient, type InviteClientCore } from './InviteClient.js';
import { InviteServer, type InviteServerCore } from './InviteServer.js';
import { Registration, type RegistrationEvents } from './Registration.js';
import { AccountRoutes, applyRoutes } from './RouteSet.js';
import {
  SipHeaders, cseqOf, formatNameAddr, headerNameAddr, makeResponse, newCallId, newTag,
  parseNameAddr, tagOf, topVia, type SipMessage, type SipRequest, type SipResponse,
} from './SipMessage.js';
import type { SipParseError } from './SipParser.js';
import { TcpTransport, TlsTransport, UdpTransport, type SipEndpoint, type TlsOptions, type TransportProtocol } from './SipTransport.js';
import { parseSipUri } from './SipUri.js';
import { TransportLayer } from './TransportLayer.js';
import { DEFAULT_TIMERS, IGNORE_OUTCOME, TransactionLayer, type TimerConfig } from './Transactions.js';

export const ALLOWED_METHODS = ['INVITE', 'ACK', 'CANCEL', 'BYE', 'OPTIONS', 'INFO', 'MESSAGE', 'UPDATE', 'REFER', 'NOTIFY'] as const;
const ALLOW = ALLOWED_METHODS.join(', ');
/** Extensions we support (§8.2.2.3): an INVITE may Require them. RFC 3891 Replaces. */
export const SUPPORTED_EXTENSIONS = ['replaces'] as const;

export interface UserAgentOptions {
  /** Address to bind and advertise (tests: 127.0.0.1). */
  host: string;
  /** UDP port (0 = ephemeral); null disables UDP. Default 0. */
  udpPort?: number | null;
  /** TCP port (0 = ephemeral); null/undefined disables TCP. */
  tcpPort?: number | null;
  /** TLS port (0 = ephemeral) with `tls`; null/undefined disables TLS. */
  tlsPort?: number | null;
  /** Certificate and trust for TLS (RFC 3261 §26.2.1). */
  tls?: TlsOptions;
  /** User part of our Contact. */
  user?: string;
  userAgent?: string;
  outboundProxy?: string;
  credentials?: DigestCredentials;
  clock?: Clock;
  timers?: Partial<TimerConfig>;
  /**
   * While registered, keep the path to the registrar open (NAT bindings, idle
   * connections) every this many ms: a double-CRLF ping on TCP/TLS (RFC 5626
   * §4.4.1), an OPTIONS on UDP, whose timeout re-registers. 0/absent: off.
   */
  keepaliveIntervalMs?: number;
}

export type Headers = ReadonlyArray<readonly [string, string]>;

export interface RegisterOptions {
  aor: string;
  registrar?: string;
  expires?: number;
  credentials?: DigestCredentials;
  displayName?: string;
  headers?: Headers;
  /** Replaces the UA's configured outbound proxy (still kept apart from the Service-Route). */
  outboundProxy?: string;
  /** Transport for our Contact and default next hop; 'udp' unless given. */
  transport?: TransportProtocol;
  backoffBaseMs?: number;
  backoffMaxMs?: number;
}

export interface InviteOptions {
  headers?: Headers;
  /** From URI; default: the registered AOR, else our contact URI. */
  from?: string;
  displayName?: string;
  callId?: string;
  credentials?: DigestCredentials;
}

export interface RequestOutcome {
  code: number;
  reason: string;
  response?: SipResponse;
}

export interface IncomingMessageEvent extends InDialogRequestEvent {
  from: string;
}

export type UserAgentEvents = RegistrationEvents & {
  incomingCall: [call: Call];
  message: [ev: IncomingMessageEvent];
  sent: [msg: SipMessage, to: SipEndpoint, transport: TransportProtocol];
  received: [msg: SipMessage, from: SipEndpoint, transport: TransportProtocol];
  parseError: [error: SipParseError, from: SipEndpoint, answered: boolean];
  error: [err: unknown];
};

export class UserAgent extends Emitter<UserAgentEvents> {
  readonly clock: Clock;
  readonly timers: TimerConfig;
  readonly transactions: TransactionLayer;
  readonly routes: AccountRoutes;
  registration: Registration | undefined;
  private registrationTransport: TransportProtocol = 'udp';
  private aor: string | undefined;
  /** The last REGISTER sent and where it went: keep-alives follow it. */
  private lastRegister: { request: SipRequest; nextHop: string } | undefined;
  private keepaliveTimer: Timer | undefined;
  /** Keep-alives sent (CRLF pings and OPTIONS), for tests and diagnostics. */
  keepalivesSent = 0;
  /** By dialog key, and by `pending|callId|localTag` before a dialog exists. */
  private readonly calls = new Map<string, InviteClient | InviteServer>();
  /** Incoming INVITEs by Call-ID, From tag and CSeq (§8.2.2.2), to recognise one arriving again. */
  private readonly incomingInvites = new Map<string, InviteServer>();
  private readonly transportLayer: TransportLayer;
  private readonly dialogRequests: DialogRequests;
  /** What the two sides of a call use of this UA (InviteClient.ts, InviteServer.ts). */
  private readonly inviteCore: InviteClientCore & InviteServerCore;

  private constructor(
    readonly options: UserAgentOptions,
    readonly udp: UdpTransport | undefined,
    readonly tcp: TcpTransport | undefined,
    readonly tls: TlsTransport | undefined,
  ) {
    super();
    this.clock = options.clock ?? new SystemClock();
    this.timers = { ...DEFAULT_TIMERS, ...options.timers };
    this.transactions = new TransactionLayer(this.clock, this.timers);
    this.routes = new AccountRoutes(options.outboundProxy);
    this.onListenerError = (err) => this.emit('error', err);
    this.transportLayer = new TransportLayer(udp, tcp, tls, this.transactions, options.userAgent, {
      receiveRequest: (req) => this.receiveRequest(req),
      receiveResponse: (res) => this.receiveResponse(res),
      transportLost: () => this.onTransportLoss(),
      sent: (msg, to, protocol) => this.emit('sent', msg, to, protocol),
      received: (msg, from, protocol) => this.emit('received', msg, from, protocol),
      parseError: (error, from, answered) => this.emit('parseError', error, from, answered),
    });
    const wire = this.transportLayer;
    this.inviteCore = {
      clock: this.clock,
      timers: this.timers,
      allow: ALLOW,
      contact: (protocol) => this.contact(protocol),
      sendRequest: (req, nextHop, fallback, tu, branch) => wire.sendRequest(req, nextHop, fallback, tu, branch),
      sendAck: (ack, fallback) => wire.sendAck(ack, fallback),
      sendBye: (call) => this.sendBye(call),
      flowOf: (request) => wire.flowOf(request),
      callOfDialog: (key) => this.calls.get(key),
      addDialog: (key, call) => void this.calls.set(key, call),
      serverTransaction: (req, tu) => wire.serverTransaction(req, tu),
      respond: (req, res) => wire.respond(req, res),
      reliableFor: (req) => wire.reliableFor(req),
    };
    this.dialogRequests = new DialogRequests({
      clock: this.clock,
      timers: this.timers,
      transportLayer: wire,
      allow: ALLOW,
      credentials: () => this.options.credentials,
      callOfDialog: (key) => this.calls.get(key),
      replyNew: (req, status, extra) => this.replyNew(req, status, extra),
      protocolFor: (call) => this.protocolFor(call),
    });
  }

  static async create(options: UserAgentOptions): Promise<UserAgent> {
    const udp = options.udpPort === null ? undefined : await UdpTransport.open(options.host, options.udpPort ?? 0);
    let tcp: TcpTransport | undefined;
    let tls: TlsTransport | undefined;
    try {
      tcp = options.tcpPort === null || options.tcpPort === undefined ? undefined : await TcpTransport.open(options.host, options.tcpPort);
      if (options.tlsPort !== null && options.tlsPort !== undefined) {
        if (!options.tls) throw new Error('a TLS transport needs a certificate and key (tls)');
        tls = await TlsTransport.open(options.host, options.tlsPort, options.tls);
      }
    } catch (err) {
      await udp?.close();
      await tcp?.close();
      throw err;
    }
    if (!udp && !tcp && !tls) throw new Error('UserAgent needs at least one transport');
    return new UserAgent(options, udp, tcp, tls);
  }

  /** Our Contact (name-addr) for a transport (§8.1.1.8). */
  contact(protocol: TransportProtocol = 'udp'): string {
    const t = this.transportLayer.transportFor(protocol);
    const user = this.options.user ?? 'ferry';
    const host = t.local.host.includes(':') ? `[${t.local.host}]` : t.local.host;
    return `<sip:${user}@${host}:${t.local.port}${t.protocol === 'udp' ? '' : `;transport=${t.protocol}`}>`;
  }

  // ------------------------------------------------------------------ registration
  register(opts: RegisterOptions): Registration {
    if (this.registration && this.registration.state !== 'unregistered' && this.registration.state !== 'failed') {
      throw new Error('already registered');
    }
    this.registration?.dispose();
    if (opts.outboundProxy !== undefined) this.routes.setOutboundProxy(opts.outboundProxy);
    this.registrationTransport = opts.transport ?? 'udp';
    const regOptions = {
      aor: opts.aor,
      contact: this.contact(this.registrationTransport),
      credentials: opts.credentials ?? this.options.credentials,
      ...(opts.registrar !== undefined ? { registrar: opts.registrar } : {}),
      ...(opts.expires !== undefined ? { expires: opts.expires } : {}),
      ...(opts.displayName !== undefined ? { displayName: opts.displayName } : {}),
      ...(opts.headers !== undefined ? { headers: opts.headers } : {}),
      ...(opts.backoffBaseMs !== undefined ? { backoffBaseMs: opts.backoffBaseMs } : {}),
      ...(opts.backoffMaxMs !== undefined ? { backoffMaxMs: opts.backoffMaxMs } : {}),
    };
    const reg = new Registration(regOptions, this.routes, (req, nextHop, done) => {
      this.lastRegister = { request: req, nextHop };
      this.transportLayer.sendRequest(req, nextHop, this.registrationTransport, {
        onResponse: (res) => done({ kind: 'response', response: res }),
        onTimeout: () => done({ kind: 'timeout' }),
        onTransportError: () => done({ kind: 'transportError' }),
      });
    }, this.clock);
    this.aor = opts.aor;
    this.registration = reg;
    reg.on('registering', () => this.emit('registering'));
    reg.on('registered', (i) => this.emit('registered', i));
    reg.on('refreshed', (i) => this.emit('refreshed', i));
    reg.on('registration_failed', (i) => this.emit('registration_failed', i));
    reg.on('unregistering', () => this.emit('unregistering'));
    reg.on('unregistered', () => this.emit('unregistered'));
    reg.on('state', (a, b, c) => this.emit('state', a, b, c));
    reg.on('state', (_from, _input, to) => this.scheduleKeepalive(to === 'registered' || to === 'refreshing'));
    reg.register();
    return reg;
  }

  /** Keep-alives run while the binding stands (see `keepaliveIntervalMs`). */
  private scheduleKeepalive(registered: boolean): void {
    const interval = this.options.keepaliveIntervalMs ?? 0;
    if (!registered || interval <= 0) {
      this.keepaliveTimer?.cancel();
      this.keepaliveTimer = undefined;
      return;
    }
    if (this.keepaliveTimer) return;
    const tick = () => {
      this.keepaliveTimer = this.clock.setTimeout(tick, interval);
      this.sendKeepalive();
    };
    this.keepaliveTimer = this.clock.setTimeout(tick, interval);
  }

  private sendKeepalive(): void {
    const last = this.lastRegister;
    const reg = this.registration;
    if (!last || !reg || this.transportLayer.isClosed) return;
    const flow = this.transportLayer.flowOf(last.request);
    if (flow && flow.transport.reliable) {
      // RFC 5626 §4.4.1: a double CRLF on the registration's connection (the server answers CRLF).
      this.keepalivesSent++;
      flow.transport.send(Buffer.from('\r\n\r\n'), flow.remote);
      return;
    }
    // UDP: an OPTIONS along the REGISTER's path refreshes NAT bindings; no answer at all means the
    // path is gone, and the registration is made again (lessons §2: the Service-Route is relearned).
    const h = new SipHeaders();
    for (const r of last.request.headers.getAll('Route')) h.add('Route', r);
    h.add('From', this.fromFor({}));
    h.add('To', formatNameAddr({ uri: this.aor ?? last.request.uri, params: new Map() }));
    h.add('Call-ID', newCallId(this.transportLayer.transportFor(this.registrationTransport).local.host));
    h.add('CSeq', '1 OPTIONS');
    h.add('Accept', 'application/sdp');
    this.keepalivesSent++;
    this.transportLayer.sendRequest({ kind: 'request', method: 'OPTIONS', uri: last.request.uri, headers: h, body: Buffer.alloc(0) }, last.nextHop, this.registrationTransport, {
      onResponse: () => {},
      onTimeout: () => this.onTransportLoss(),
      onTransportError: () => this.onTransportLoss(),
    });
  }

  unregister(): void {
    this.registration?.unregister();
  }

  /** A network change or outage reported from outside (e.g. interface down/up). */
  transportLost(): void {
    this.registration?.transportLost();
  }

  /** A connection or transport failed (its transactions failed with it): re-register (lessons §2). */
  private onTransportLoss(): void {
    const reg = this.registration;
    if (reg && (reg.state === 'registered' || reg.state === 'refreshing' || reg.state === 'retrying')) {
      reg.transportLost();
    }
  }

  // ------------------------------------------------------------------ receiving
  private receiveResponse(res: SipResponse): void {
    // §8.1.3.3: more than one Via means the response was misrouted to us.
    if (res.headers.getAll('Via').length !== 1) return;
    if (this.transactions.receiveResponse(res)) return;
    // A 2xx retransmission after the INVITE transaction ended (§13.2.2.4): resend our ACK.
    const cseq = cseqOf(res);
    if (cseq?.method === 'INVITE' && res.status >= 200 && res.status < 300) {
      const key = dialogKey({ callId: res.headers.get('Call-ID') ?? '', localTag: tagOf(headerNameAddr(res, 'From')) ?? '', remoteTag: tagOf(headerNameAddr(res, 'To')) ?? '' });
      const call = this.calls.get(key);
      const ack = this.dialogRequests.reinviteAck(key, cseq.seq) ?? (call instanceof InviteClient ? call.ackSent : undefined);
      if (ack) this.transportLayer.sendAck(ack, 'udp');
    }
  }

  private receiveRequest(req: SipRequest): void {
    // Retransmissions and ACKs for non-2xx finals are absorbed by their transactions (§17.2.3).
    if (this.transactions.receiveRequest(req)) return;
    if (req.method === 'ACK') return this.dialogRequests.receiveAck(req);

    const scheme = req.uri.slice(0, req.uri.indexOf(':')).toLowerCase();
    if (scheme !== 'sip' && scheme !== 'sips') return this.replyNew(req, 416);
    // §8.2.2.3: a Require naming an extension we do not support (except on CANCEL) is refused.
    const unsupported = req.headers.getAll('Require').flatMap((v) => v.split(',')).map((v) => v.trim()).filter((v) => v && !SUPPORTED_EXTENSIONS.includes(v.toLowerCase() as never));
    if (unsupported.length > 0 && req.method !== 'CANCEL') return this.replyNew(req, 420, [['Unsupported', unsupported.join(', ')]]);

    if (tagOf(headerNameAddr(req, 'To')) !== undefined) return this.dialogRequests.receive(req);
    switch (req.method) {
      case 'INVITE': return this.receiveInvite(req);
      case 'CANCEL': return this.receiveCancel(req);
      case 'OPTIONS': return this.replyNew(req, 200, [['Allow', ALLOW], ['Accept', 'application/sdp']]);
      case 'MESSAGE': return this.receiveOutOfDialogMessage(req);
      case 'BYE': return this.replyNew(req, 481);
      default: return this.replyNew(req, ALLOWED_METHODS.includes(req.method as never) ? 481 : 405, [['Allow', ALLOW]]);
    }
  }

  /** A final response in a fresh server transaction (so retransmissions get the same answer). */
  private replyNew(req: SipRequest, status: number, extra: Headers = []): void {
    const tx = this.transportLayer.serverTransaction(req);
    const res = makeResponse(req, status, undefined, newTag());
    for (const [n, v] of extra) res.headers.add(n, v);
    tx.respond(res);
  }

  private receiveInvite(req: SipRequest): void {
    const callId = req.headers.get('Call-ID') ?? '';
    const requestKey = `${callId}|${tagOf(headerNameAddr(req, 'From')) ?? ''}|${cseqOf(req)?.seq ?? ''}`;
    const earlier = this.incomingInvites.get(requestKey);
    if (earlier) {
      // The same INVITE again after its transaction ended with our 2xx (§17.2.1: the 2xx ends the
      // server transaction; the core keeps retransmitting the 2xx itself, §13.3.1.4): absorbed.
      // The same request by another path (another branch) is a merged request: 482 (§8.2.2.2).
      if (topVia(earlier.invite)?.params.get('branch') !== topVia(req)?.params.get('branch')) this.replyNew(req, 482);
      return;
    }
    const localTag = newTag();
    const call = new InviteServer(this.inviteCore, req, callId, localTag);
    const tx = call.transaction;
    // §17.2.1: 100 Trying at once, so the caller stops retransmitting.
    tx.respond(makeResponse(req, 100));
    const dialog = Dialog.asUas(req, localTag, this.contact(this.transportLayer.flowOf(req)?.transport.protocol ?? 'udp'), 'early');
    if (!dialog) {
      tx.respond(makeResponse(req, 400, 'Bad Request (no Contact)', localTag));
      return;
    }
    call.dialog = dialog;
    this.calls.set(dialog.key, call);
    this.incomingInvites.set(requestKey, call);
    call.on('terminated', () => {
      this.forget(call);
      this.clock.setTimeout(() => { if (this.incomingInvites.get(requestKey) === call) this.incomingInvites.delete(requestKey); }, 64 * this.timers.t1);
    });
    if (this.listenerCount('incomingCall') === 0) {
      this.answer(call, 480);
      return;
    }
    this.emit('incomingCall', call);
  }

  private forget(call: Call): void {
    call.okRetransmitter?.cancel();
    // Keep the dialog entry briefly so late retransmissions (BYE, 2xx) still match; drop it after 64*T1.
    const key = call.dialog?.key;
    if (key) this.clock.setTimeout(() => { if (this.calls.get(key) === call) this.calls.delete(key); }, 64 * this.timers.t1);
  }

  private receiveCancel(req: SipRequest): void {
    const inviteTx = this.transactions.findInviteForCancel(req);
    const cancelTx = this.transportLayer.serverTransaction(req);
    if (!inviteTx) return void cancelTx.respond(makeResponse(req, 481, undefined, newTag()));
    // §9.2: 200 to the CANCEL; if no final response was sent yet, 487 to the INVITE.
    const call = [...this.calls.values()].find((c) => c instanceof InviteServer && c.transaction === inviteTx);
    cancelTx.respond(makeResponse(req, 200, undefined, call?.localTag ?? newTag()));
    if (inviteTx.state === 'proceeding') {
      inviteTx.respond(makeResponse(inviteTx.request, 487, undefined, call?.localTag ?? newTag()));
      call?.transition('cancelled', { by: 'remote', code: 487, reason: 'Request Terminated' });
    }
  }

  private receiveOutOfDialogMessage(req: SipRequest): void {
    if (this.listenerCount('message') === 0) return this.replyNew(req, 405, [['Allow', ALLOW]]);
    const tx = this.transportLayer.serverTransaction(req);
    const reply = (code: number, body?: string | null, headers: Headers = [], contentType?: string) => {
      const res = makeResponse(req, code, undefined, newTag());
      for (const [n, v] of headers) res.headers.add(n, v);
      if (body) {
        res.body = Buffer.from(body, 'utf8');
        res.headers.set('Content-Type', contentType ?? 'text/plain');
      }
      tx.respond(res);
    };
    const ev = requestEvent(req, reply);
    this.emit('message', { ...ev, from: headerNameAddr(req, 'From')?.uri ?? '' });
    if (!ev.answered()) reply(200);
  }

  // ------------------------------------------------------------------ incoming call API
  /** Answers an incoming INVITE (1xx, 2xx with SDP, or a failure). */
  answer(call: Call, code: number, sdp?: string | null, headers: Headers = []): void {
    if (!(call instanceof InviteServer)) throw new Error('answer() needs an incoming call');
    call.answer(code, sdp, headers);
  }

  // ------------------------------------------------------------------ outgoing call API
  private fromFor(opts: { from?: string; displayName?: string }): string {
    const uri = opts.from ?? this.aor ?? parseNameAddr(this.contact())?.uri ?? 'sip:ferry@invalid';
    const na = { uri, params: new Map<string, string | null>([['tag', newTag()]]) };
    return formatNameAddr(opts.displayName ? { ...na, display: opts.displayName } : na);
  }

  /** Sends an INVITE (with `sdp` as the offer, or offerless when null). */
  invite(target: string, sdp: string | null, opts: InviteOptions = {}): Call {
    if (!parseSipUri(target)) throw new Error(`invalid target URI: ${target}`);
    const from = this.fromFor(opts);
    const localTag = tagOf(parseNameAddr(from)) ?? '';
    const callId = opts.callId ?? newCallId(this.transportLayer.transportFor('udp').local.host);
    const routed = applyRoutes(target, this.routes.forInitialRequest());
    const headers = new SipHeaders();
    for (const r of routed.routeHeaders) headers.add('Route', r);
    headers.add('Max-Forwards', '70');
    headers.add('From', from);
    headers.add('To', formatNameAddr({ uri: target, params: new Map() }));
    headers.add('Call-ID', callId);
    headers.add('CSeq', '1 INVITE');
    const protocol = protocolOf(routed.nextHop) ?? this.registrationTransport;
    headers.add('Contact', this.contact(protocol));
    headers.add('Allow', ALLOW);
    for (const [n, v] of opts.headers ?? []) headers.add(n, v);
    if (sdp) headers.add('Content-Type', 'application/sdp');
    const request: SipRequest = { kind: 'request', method: 'INVITE', uri: routed.requestUri, headers, body: Buffer.from(sdp ?? '', 'utf8') };
    const call = new InviteClient(this.inviteCore, request, callId, localTag, opts.credentials ?? this.options.credentials);
    call.localSdp = sdp;
    this.calls.set(`pending|${callId}|${localTag}`, call);
    call.on('terminated', () => {
      this.calls.delete(`pending|${callId}|${localTag}`);
      this.forget(call);
    });
    call.send(request, routed.nextHop, protocol);
    return call;
  }

  /** After an offerless outgoing INVITE: the ACK carries our SDP answer (§13.2.2.4). */
  ack(call: Call, sdp: string): void {
    if (!(call instanceof InviteClient)) throw new Error('ack() needs an accepted offerless outgoing call not yet ACKed');
    call.sendAckWithAnswer(sdp);
  }

  /** CANCEL an outgoing call (§9.1); sent now if a provisional arrived, else when one does. */
  cancel(call: Call): void {
    if (call instanceof InviteClient) call.cancel();
  }

  /** Ends a call whatever its state (idempotent): BYE, CANCEL, or 480 for an unanswered incoming call. */
  bye(call: Call, headers: Headers = []): void {
    if (call.terminated) return;
    if (call.direction === 'outgoing' && (call.state === 'calling' || call.state === 'early')) {
      this.cancel(call);
      return;
    }
    if (call.direction === 'incoming' && (call.state === 'incoming' || call.state === 'early')) {
      this.answer(call, 480, null, headers);
      return;
    }
    call.okRetransmitter?.cancel();
    this.sendBye(call, headers);
    call.transition('bye', { by: 'local', code: 200, reason: 'BYE' });
  }

  private sendBye(call: Call, headers: Headers = []): void {
    if (!call.dialog) return;
    const { request, nextHop } = call.dialog.createRequest('BYE', { headers });
    this.transportLayer.sendRequest(request, nextHop, this.protocolFor(call), IGNORE_OUTCOME);
  }

  private protocolFor(call: Call): TransportProtocol {
    return this.transportLayer.flowOf(call.invite)?.transport.protocol ?? 'udp';
  }

  info(call: Call, contentType: string, content: string, headers: Headers = []): Promise<RequestOutcome> {
    return this.dialogRequests.send(call, 'INFO', content, contentType, headers);
  }

  /** RFC 3515 REFER in a call's dialog; `referTo` is the Refer-To header value (a name-addr). */
  refer(call: Call, referTo: string, headers: Headers = []): Promise<RequestOutcome> {
    return this.dialogRequests.send(call, 'REFER', null, undefined, [['Refer-To', referTo], ...headers]);
  }

  /** A NOTIFY in a call's dialog (RFC 6665), e.g. a REFER's progress as message/sipfrag (RFC 3515 §2.4.5). */
  notify(call: Call, event: string, subscriptionState: string, contentType: string, content: string, headers: Headers = []): Promise<RequestOutcome> {
    return this.dialogRequests.send(call, 'NOTIFY', content, contentType, [['Event', event], ['Subscription-State', subscriptionState], ...headers]);
  }

  reinvite(call: Call, sdp: string, headers: Headers = []): Promise<RequestOutcome> {
    call.localSdp = sdp;
    return this.dialogRequests.send(call, 'INVITE', sdp, 'application/sdp', headers);
  }

  update(call: Call, sdp: string, headers: Headers = []): Promise<RequestOutcome> {
    call.localSdp = sdp;
    return this.dialogRequests.send(call, 'UPDATE', sdp, 'application/sdp', headers);
  }

  /** MESSAGE in a call's dialog, or out of dialog to a URI (routed via proxy + Service-Route). */
  message(to: Call | string, contentType: string, content: string, headers: Headers = []): Promise<RequestOutcome> {
    if (typeof to !== 'string') return this.dialogRequests.send(to, 'MESSAGE', content, contentType, headers);
    if (!parseSipUri(to)) return Promise.resolve({ code: 400, reason: 'invalid target URI' });
    const routed = applyRoutes(to, this.routes.forInitialRequest());
    const from = this.fromFor({});
    const callId = newCallId(this.transportLayer.transportFor('udp').local.host);
    return new Promise((resolve) => {
      let seq = 1;
      let authTries = 0;
      const attempt = (auth: Headers) => {
        const h = new SipHeaders();
        for (const r of routed.routeHeaders) h.add('Route', r);
        h.add('Max-Forwards', '70');
        h.add('From', from);
        h.add('To', formatNameAddr({ uri: to, params: new Map() }));
        h.add('Call-ID', callId);
        h.add('CSeq', `${seq} MESSAGE`);
        for (const [n, v] of [...headers, ...auth]) h.add(n, v);
        h.add('Content-Type', contentType);
        const request: SipRequest = { kind: 'request', method: 'MESSAGE', uri: routed.requestUri, headers: h, body: Buffer.from(content, 'utf8') };
        this.transportLayer.sendRequest(request, routed.nextHop, this.registrationTransport, {
          onResponse: (res) => {
            if (res.status < 200) return;
            if ((res.status === 401 || res.status === 407) && authTries < 1 && this.options.credentials) {
              const answers = answerChallenges(res, this.options.credentials, 'MESSAGE', request.uri);
              if (answers.length > 0) {
                authTries++;
                seq++;
                return attempt(answers.map((a) => [a.header, a.value] as const));
              }
            }
            resolve({ code: res.status, reason: res.reason, response: res });
          },
          onTimeout: () => resolve({ code: 408, reason: 'Request Timeout' }),
          onTransportError: () => resolve({ code: 503, reason: 'Transport Error' }),
        });
      };
      attempt([]);
    });
  }

  /** Stops everything: registration timers, 2xx retransmissions, sockets. Sends nothing. */
  async close(): Promise<void> {
    if (this.transportLayer.isClosed) return;
    this.keepaliveTimer?.cancel();
    this.keepaliveTimer = undefined;
    const closing = this.transportLayer.close(); // sends nothing from here on
    this.registration?.dispose();
    for (const call of new Set(this.calls.values())) call.okRetransmitter?.cancel();
    await closing;
  }
}

/** The transport a URI names (transport= or the sips scheme, RFC 3261 §19.1.2), if any. */
function protocolOf(uri: string): TransportProtocol | null {
  const parsed = parseSipUri(uri);
  if (!parsed) return null;
  const t = parsed.params.get('transport')?.toLowerCase();
  if (parsed.scheme === 'sips' || t === 'tls') return 'tls';
  return t === 'tcp' || t === 'udp' ? t : null;
}
