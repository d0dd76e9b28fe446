/**
 * One SIP-plugin handle (janus_sip.c's session): its account (or its
 * master's, for a helper), the client's requests and the events it gets, and
 * its one call slot, whose call (SipCall.ts) bridges the handle's
 * PeerConnection to a SIP dialog.
 *
 * Lessons §1 (Janus #3332) by construction:
 * - the slot is the explicit table in CallStateTable.ts;
 * - `terminate()` is the only way a call ends. It is idempotent, always
 *   returns the slot to idle and always releases the RTP legs, whether or
 *   not an SDP, a PeerConnection or a leg ever existed. Every ending path
 *   (BYE either side, CANCEL, decline, failure, no ACK, `hangup`, the
 *   PeerConnection closing, session destroy, detach) goes through it;
 * - an offerless INVITE gives `incomingcall` without jsep; `accept` then
 *   carries the browser's JSEP offer, ferry puts its SIP-side offer in the
 *   200 OK, and the SIP answer in the ACK completes the call (`accepted`,
 *   with the JSEP answer for the browser).
 *
 * The call itself (SDP both ways, media, re-offers): see SipCall.ts; what a
 * `register` body means: requests.ts; SDES keys: Sdes.ts; REFER, Replaces and
 * the referrals a transfer leaves: Transfer.ts.
 *
 * Why this file stays whole (about 900 lines): every client request and every
 * SIP event of the handle is checked against its one call slot and answered
 * with events in order here; split, the slot's transitions and the event order
 * would be spread over files.
 */
import type { Logger } from 'pino';
import type { JsonObject } from '../../core/Json.js';
import { field } from '../../core/Json.js';
import type { HandleMedia, Jsep } from '../../core/Media.js';
import type { MediaServices } from '../../media/Routing.js';
import type { Call, InDialogRequestEvent } from '../../sip/Call.js';
import { headerNameAddr, parseNameAddr, reasonPhrase, type SipMessage } from '../../sip/SipMessage.js';
import { parseSipUri } from '../../sip/SipUri.js';
import type { IncomingMessageEvent } from '../../sip/UserAgent.js';
import type { PluginContext, PluginHandle, PluginMessage, PluginReply } from '../../core/Plugin.js';
import { RequestQueue } from '../../core/RequestQueue.js';
import { CALL_STATUS, CallSlot } from './CallStateTable.js';
import { SipErrorCode, SipPluginError, invalid, missing, wrongState } from './errors.js';
import { MediaBridge } from './MediaBridge.js';
import { REQUEST_TABLES, accountSettings, customHeaders, digestCredentials, dtmfMethodOf, validate } from './requests.js';
import { SipAccount, type AccountEnvironment } from './SipAccount.js';
import { SIP_BRIDGE_EXTENSIONS, SIP_BRIDGE_TELEPHONE_EVENT, SipCall } from './SipCall.js';
import { SdpBridgeError, type Direction } from './SdpBridge.js';
import { SDES_SUITES, SdesError, offerSuites, type SrtpPolicy } from './Sdes.js';
import { parseReferTo, referToReplacing, replacesCallId, type Referral, type Referrals } from './Transfer.js';

/** Settings every handle shares (from the plugin configuration). */
export interface SipHandleEnvironment extends AccountEnvironment {
  /** c= address of ferry's SIP-side SDP. */
  sdpAddress: string;
  registerTtl: number;
  userAgent: string;
  /** Time a closing account keeps its sockets so a final BYE/CANCEL leaves. */
  closeGraceMs: number;
  /** The plugin's counters (Admin `stats`). */
  counters: SipCounters;
}

/** What went wrong at the plugin level and was answered rather than crashing. */
export interface SipCounters {
  /** SIP peers' offers and answers refused (no codec, bad transport, bad or missing crypto). */
  sdpRefused: number;
}

/**
 * What a handle needs of the plugin (SipPlugin.ts): the handles that own an
 * account, by master id (a helper joins one), and notice of handles closing
 * and accounts opening (the plugin's counters).
 */
export interface SipHandleDirectory {
  nextMasterId(): number;
  master(id: number): SipHandle | undefined;
  addMaster(id: number, handle: SipHandle): void;
  removeMaster(id: number, handle: SipHandle): void;
  handleClosed(handle: SipHandle): void;
  accountOpened(account: SipAccount): void;
  /** Transfers received and not yet followed or declined, by `refer_id` (Transfer.ts). */
  readonly referrals: Referrals;
}

interface EndInfo {
  code: number;
  reason: string;
  headers?: JsonObject;
  /** More fields for the hangup event (Janus's reason_header*). */
  extra?: JsonObject;
}

const DTMF_DIGITS = /^[0-9*#A-Da-d]$/;

/** Janus's `srtp` / `srtp_profile` of a call, accept or progress (validated by requests.ts). */
function srtpOf(body: JsonObject): { policy: SrtpPolicy | null; profile: string | undefined } {
  const policy = (field(body, 'srtp') as SrtpPolicy | undefined) ?? null;
  const profile = field(body, 'srtp_profile') as string | undefined;
  if (profile !== undefined) {
    try {
      offerSuites(profile);
    } catch (err) {
      throw invalid('srtp_profile', `one of ${Object.keys(SDES_SUITES).join(', ')} (${(err as Error).message})`);
    }
  }
  return { policy, profile };
}

/** Text inside a quoted-string (RFC 3261 §25.1): no quotes, backslashes or line breaks, bounded. */
function quoted(text: string): string {
  return text.replace(/[\\"\r\n]/g, ' ').slice(0, 500);
}

/** An incoming INVITE's Referred-By (RFC 3892) and Replaces (RFC 3891) as Janus's incomingcall fields. */
function referredCall(call: Call): { referred_by?: string; replaces?: string } {
  const referredBy = call.invite.headers.get('Referred-By');
  const replaces = call.invite.headers.get('Replaces');
  return {
    ...(referredBy ? { referred_by: parseNameAddr(referredBy)?.uri ?? referredBy } : {}),
    ...(replaces ? { replaces: replacesCallId(replaces) } : {}),
  };
}

/** A Warning header value (RFC 3261 §20.43), code 399 (miscellaneous). */
function warning(text: string): string {
  return `399 ferry "${quoted(text)}"`;
}

export class SipHandle implements PluginHandle {
  readonly slot = new CallSlot();
  private current: SipCall | null = null;
  /** The account this handle registered (it owns the UserAgent). */
  private account: SipAccount | null = null;
  /** For a helper: the master whose account it shares. */
  private master: SipHandle | null = null;
  readonly helpers = new Set<SipHandle>();
  private destroyed = false;
  private readonly requests = new RequestQueue((err, message) => {
    if (err instanceof SipPluginError) {
      this.pushError(err, message.transaction);
    } else {
      this.logger.error({ err }, 'sip request failed');
      this.pushError(new SipPluginError(SipErrorCode.UNKNOWN_ERROR, err instanceof Error ? err.message : String(err)), message.transaction);
    }
    // A jsep that came with a refused request opened a PeerConnection no call uses.
    if (message.jsep && this.slot.idle && this.ctx.media && !this.destroyed) this.ctx.closePeerConnection('SIP request refused');
  });
  private readonly logger: Logger;

  constructor(
    private readonly ctx: PluginContext,
    private readonly services: MediaServices,
    private readonly env: SipHandleEnvironment,
    private readonly directory: SipHandleDirectory,
  ) {
    this.logger = ctx.logger;
  }

  get busy(): boolean {
    return !this.slot.idle;
  }

  get isDestroyed(): boolean {
    return this.destroyed;
  }

  /** The account calls use: our own, or the master's for a helper. */
  private get callAccount(): SipAccount | null {
    const account = this.master ? this.master.account : this.account;
    return account && !account.closed ? account : null;
  }

  // ------------------------------------------------------------------ events to the client

  private push(result: JsonObject, options: { transaction?: string; jsep?: Jsep; callId?: string } = {}): void {
    const data: JsonObject = { sip: 'event' };
    if (options.callId !== undefined) data['call_id'] = options.callId;
    data['result'] = result;
    this.ctx.pushEvent(data, { transaction: options.transaction, jsep: options.jsep });
  }

  private pushError(err: SipPluginError, transaction?: string): void {
    this.ctx.pushEvent({ sip: 'event', error_code: err.code, error: err.message }, { transaction });
  }

  // ------------------------------------------------------------------ requests

  handleMessage(message: PluginMessage): PluginReply {
    this.requests.push(message, (m) => this.process(m));
    return { kind: 'wait', hint: 'I\'m taking my time!' };
  }

  private async process(message: PluginMessage): Promise<void> {
    if (this.destroyed) return;
    const { body, jsep, transaction } = message;
    const request = field(body, 'request');
    if (request === undefined || request === null) throw missing('request');
    if (typeof request !== 'string') throw invalid('request', 'a string');
    const name = request.toLowerCase();
    const table = REQUEST_TABLES[name];
    if (!table) throw new SipPluginError(SipErrorCode.INVALID_REQUEST, `Unknown request '${request}'`);
    validate(body, table);
    switch (name) {
      case 'register': return this.register(body, transaction);
      case 'unregister': return this.unregister(transaction);
      case 'call': return this.call(body, jsep, transaction);
      case 'accept': return this.accept(body, jsep, transaction, false);
      case 'progress': return this.accept(body, jsep, transaction, true);
      case 'decline': return this.decline(body, transaction);
      case 'hangup': return this.hangup(body, transaction);
      case 'hold': return this.hold(body, transaction, (field(body, 'direction') as Direction | undefined) ?? 'sendonly');
      case 'unhold': return this.hold(body, transaction, null);
      case 'update': return this.update(body, jsep, transaction);
      case 'info': return this.info(body, transaction);
      case 'message': return this.message(body, transaction);
      case 'dtmf_info': return this.dtmfInfo(body, transaction);
      case 'keyframe': return this.keyframe(body, transaction);
      case 'transfer': return this.transfer(body, transaction);
      case 'recording':
        throw new SipPluginError(SipErrorCode.RECORDING_ERROR, 'recording is not supported by ferry');
      default:
        throw new SipPluginError(SipErrorCode.INVALID_REQUEST, `'${name}' is not supported by ferry (no SUBSCRIBE in its SIP stack)`);
    }
  }

  // ------------------------------------------------------------------ registration

  private async register(body: JsonObject, transaction: string): Promise<void> {
    const type = field(body, 'type') as string | undefined;
    if (type === 'helper') return this.registerHelper(body, transaction);
    if (this.master) throw new SipPluginError(SipErrorCode.HELPER_ERROR, 'Helper sessions cannot register');
    if (this.account && !this.account.closed) {
      if (field(body, 'refresh') === true) {
        if (!this.account.refresh()) throw wrongState('not registered, nothing to refresh');
        this.push({ event: 'registering' }, { transaction });
        return;
      }
      if (this.account.status !== 'failed' && this.account.status !== 'unregistered') {
        throw new SipPluginError(SipErrorCode.ALREADY_REGISTERED, 'Already registered (use "refresh" to refresh)');
      }
    }
    if (!this.slot.idle) throw wrongState('cannot register again during a call');
    const settings = accountSettings(body, type === 'guest', this.env);

    // A failed or unregistered account is replaced.
    if (settings.transport === 'tls' && !this.env.tls) {
      throw new SipPluginError(SipErrorCode.INVALID_ELEMENT, 'SIPS (TLS) is not configured: the SIP plugin needs tls_cert and tls_key (or sips_certs_dir)');
    }
    this.closeAccount();
    const masterId = this.directory.nextMasterId();
    const account = await SipAccount.open(
      settings,
      this.env,
      masterId,
      {
        accountEvent: (result) => {
          if (this.account === account) this.push(result);
        },
        incomingCall: (call) => this.dispatchIncoming(account, call),
        incomingMessage: (ev) => this.onOutOfDialogMessage(account, ev),
      },
    );
    this.directory.accountOpened(account);
    if (this.destroyed) {
      void account.close(0);
      return;
    }
    this.account = account;
    this.directory.addMaster(masterId, this);
    account.start();
  }

  private registerHelper(body: JsonObject, transaction: string): void {
    const masterId = field(body, 'master_id');
    if (typeof masterId !== 'number') throw missing('master_id');
    if (this.account) throw new SipPluginError(SipErrorCode.HELPER_ERROR, 'This session is already registered as a master');
    const master = this.directory.master(masterId);
    if (!master || master === this || master.master || !master.account) throw new SipPluginError(SipErrorCode.HELPER_ERROR, `No such master session ${masterId}`);
    this.master = master;
    master.helpers.add(this);
    this.push({ event: 'registered', username: master.account.settings.username, register_sent: false, helper: true, master_id: masterId }, { transaction });
  }

  private unregister(transaction: string): void {
    if (this.master) throw wrongState('helper sessions are not registered');
    const account = this.account;
    if (!account || account.closed) throw wrongState('not registered');
    // The account's events (`unregistering`, `unregistered`) follow; its sockets close once the call slot is idle.
    void transaction;
    account.unregister();
    this.closeAccountWhenIdle();
  }

  private closeAccountWhenIdle(): void {
    const account = this.account;
    if (!account) return;
    if (!this.slot.idle) return; // terminate() calls back here
    if (account.status === 'unregistering') {
      // Let the REGISTER with expires 0 finish first (bounded by the transaction timeout).
      const done = () => {
        if (this.account === account) this.closeAccount();
      };
      account.ua.once('unregistered', done);
      const timer = setTimeout(done, 64 * this.env.t1Ms);
      timer.unref?.();
      return;
    }
    if (account.status === 'unregistered') this.closeAccount();
  }

  /** Releases our account (and every helper's use of it). */
  private closeAccount(): void {
    const account = this.account;
    if (!account) return;
    this.account = null;
    this.directory.removeMaster(account.masterId, this);
    for (const helper of [...this.helpers]) helper.masterGone();
    this.helpers.clear();
    void account.close(this.env.closeGraceMs);
  }

  /** Our master unregistered or went away: our call ends, we are no longer a helper. */
  masterGone(): void {
    if (this.current) this.terminate(this.current, { code: 503, reason: 'Master session ended' });
    this.master = null;
    if (!this.destroyed) this.push({ event: 'unregistered', register_sent: false, helper: true });
  }

  get accountForTests(): SipAccount | null {
    return this.account;
  }

  // ------------------------------------------------------------------ incoming calls

  /** An INVITE on our account: to us when free, else to a free helper, else 486 and `missed_call` (Janus). */
  private dispatchIncoming(account: SipAccount, call: Call): void {
    const caller = headerNameAddr(call.invite, 'From');
    const callee = headerNameAddr(call.invite, 'To')?.uri ?? '';
    const target = [this, ...this.helpers].find((s) => !s.destroyed && s.slot.idle);
    if (!target || this.account !== account || account.status === 'unregistering') {
      try {
        account.ua.answer(call, 486);
      } catch (err) {
        this.logger.debug({ err }, 'sip: could not answer 486');
      }
      this.push({ event: 'missed_call', caller: caller?.uri ?? '', ...(caller?.display ? { displayname: caller.display } : {}), callee });
      return;
    }
    void target.onIncomingCall(account, call).catch((err: unknown) => this.logger.error({ err }, 'sip: incoming call failed'));
  }

  private async onIncomingCall(account: SipAccount, call: Call): Promise<void> {
    const ua = account.ua;
    const active = new SipCall(ua, account, 'incoming', call.callId, this.newBridge(), this.env.sdpAddress);
    active.bridge.onDtmf = (side, signal, ms) => this.onBridgeDtmf(active, side, signal, ms);
    active.sip = call;
    active.offerless = call.offerless;
    const caller = headerNameAddr(call.invite, 'From');
    active.peerUri = caller?.uri ?? '';
    active.peerDisplay = caller?.display;
    active.callee = headerNameAddr(call.invite, 'To')?.uri ?? '';
    this.slot.apply('recvInvite');
    this.current = active;
    this.listenInDialog(active, call);
    active.listen(call, 'confirmed', (_ack, sdp) => void this.onAck(active, sdp).catch((err: unknown) => this.failCall(active, err)));

    let jsep: Jsep | undefined;
    if (!call.offerless) {
      try {
        jsep = await active.offerToBrowser(call.remoteSdp ?? '', () => this.openMedia());
      } catch (err) {
        // RFC 3261 §21.4.26: nothing in the offer ferry can bridge; the Warning (§20.43) says why.
        const detail = err instanceof Error ? err.message : String(err);
        this.logger.info({ err: detail }, 'sip: incoming offer not acceptable');
        this.env.counters.sdpRefused++;
        this.terminate(active, { code: 488, reason: reasonPhrase(488) }, { notify: false, endSip: () => ua.answer(call, 488, null, [['Warning', warning(detail)]]) });
        return;
      }
      if (this.current !== active) return; // cancelled meanwhile
    }
    if (account.settings.automaticRinging && call.state === 'incoming') ua.answer(call, 180);
    this.push(
      {
        event: 'incomingcall',
        username: active.peerUri,
        ...(active.peerDisplay ? { displayname: active.peerDisplay } : {}),
        callee: active.callee,
        call_id: active.callId,
        ...referredCall(call),
        ...(active.peerSrtp ? { srtp: active.peerSrtp } : {}),
        ...account.headersOf(call.invite),
      },
      { callId: active.callId, ...(jsep ? { jsep } : {}) },
    );
  }

  private openMedia(): HandleMedia {
    const media = this.ctx.openMedia();
    if (!media || !media.createOffer || !media.streams || !media.onStreamsChanged) {
      throw new SipPluginError(SipErrorCode.UNKNOWN_ERROR, 'WebRTC media is not available in this build');
    }
    return media;
  }

  /** `accept` (200) and `progress` (183). */
  private async accept(body: JsonObject, jsep: Jsep | undefined, transaction: string, early: boolean): Promise<void> {
    const active = this.requireCall(body);
    if (active.direction !== 'incoming' || !this.slot.can(early ? 'sendProgress' : 'accept') || !active.sip) {
      throw wrongState(early ? 'no incoming call to send progress for' : 'no incoming call to accept');
    }
    const srtp = srtpOf(body);
    const headers = customHeaders(body);
    const call = active.sip;
    if (!active.localSipSdp) active.dtmfMethod = dtmfMethodOf(body);
    if (active.offerless) {
      if (early) {
        throw wrongState('progress on an offerless INVITE needs reliable provisional responses (RFC 3262), which ferry does not support');
      }
      if (!jsep || jsep.type !== 'offer') throw new SipPluginError(SipErrorCode.MISSING_SDP, 'An offerless INVITE is accepted with a JSEP offer');
      // ferry's 200 OK carries the offer: the client's `srtp` keys it as for `call`.
      active.srtp = srtp.policy;
      active.srtpProfile = srtp.profile;
      active.webrtcOffer = jsep;
      const sdp = active.sipOfferFromBrowser(jsep);
      active.ua.answer(call, 200, sdp, headers);
      this.slot.apply('accept');
      this.push({ event: 'accepting' }, { transaction, callId: active.callId });
      return;
    }
    // The peer's offer decided the keying (Sdes.ts): SRTP whenever it offered a suite ferry runs.
    if (srtp.policy === 'sdes_mandatory' && !active.peerSrtp) {
      throw new SipPluginError(SipErrorCode.TOO_STRICT, 'Cannot accept with sdes_mandatory: the caller did not offer SDES-SRTP');
    }
    if (!active.localSipSdp) {
      if (!jsep || jsep.type !== 'answer') throw new SipPluginError(SipErrorCode.MISSING_SDP, 'Missing SDP (a JSEP answer to the offer in incomingcall)');
      active.localSipSdp = active.sipAnswerFromBrowser(jsep);
    }
    active.ua.answer(call, early ? 183 : 200, active.localSipSdp, headers);
    this.slot.apply(early ? 'sendProgress' : 'accept');
    this.push({ event: early ? 'progressed' : 'accepted', username: active.peerUri }, { transaction, callId: active.callId });
  }

  /** Where the ACK completes an incoming call; for an offerless INVITE it carries the SIP answer. */
  private async onAck(active: SipCall, sdp: string | null): Promise<void> {
    if (this.current !== active) return;
    if (!active.offerless) {
      this.slot.apply('recvAck');
      return;
    }
    if (!sdp) throw new SdpBridgeError('the ACK carried no SDP answer');
    const jsep = await active.answerBrowser(sdp, this.ctx.media);
    if (this.current !== active) return;
    this.slot.apply('recvAck');
    this.push({ event: 'accepted', username: active.peerUri }, { callId: active.callId, jsep });
  }

  private decline(body: JsonObject, transaction: string): void {
    const referId = field(body, 'refer_id') as number | undefined;
    if (referId !== undefined) {
      // Janus: declining a transfer tells the transferor in a final NOTIFY (603 unless a failure code is given).
      const referral = this.directory.referrals.get(referId);
      if (!referral) throw invalid('refer_id', 'a transfer received and not yet followed or declined');
      let code = (field(body, 'code') as number | undefined) ?? 603;
      if (code <= 399) code = 603;
      this.directory.referrals.notify(referral, code);
      this.push({ event: 'declining', code, refer_id: referId }, { transaction });
      return;
    }
    const active = this.requireCall(body);
    if (active.direction !== 'incoming' || !active.sip || (this.slot.state !== 'incoming' && this.slot.state !== 'early')) {
      throw wrongState('no incoming call to decline');
    }
    // Janus (#3339): 603 by default; a code that is not a failure falls back to 486.
    let code = (field(body, 'code') as number | undefined) ?? 603;
    if (code <= 399) code = 486;
    const headers = customHeaders(body);
    const call = active.sip;
    this.push({ event: 'declining', code }, { transaction, callId: active.callId });
    this.terminate(active, { code, reason: reasonPhrase(code) }, { endSip: () => active.ua.answer(call, code, null, headers) });
  }

  // ------------------------------------------------------------------ outgoing calls

  private async call(body: JsonObject, jsep: Jsep | undefined, transaction: string): Promise<void> {
    const account = this.callAccount;
    if (!account) throw wrongState('register first');
    if (!this.slot.idle) throw wrongState('already in a call');
    const uri = field(body, 'uri') as string;
    if (!parseSipUri(uri)) throw new SipPluginError(SipErrorCode.INVALID_ADDRESS, `Invalid user address ${uri}`);
    if (!jsep) throw new SipPluginError(SipErrorCode.MISSING_SDP, 'Missing SDP (outgoing offerless calls are not supported)');
    if (jsep.type !== 'offer') throw new SipPluginError(SipErrorCode.MISSING_SDP, 'A call needs a JSEP offer');
    const srtp = srtpOf(body);
    const referId = field(body, 'refer_id') as number | undefined;
    const referral = referId !== undefined ? this.directory.referrals.get(referId) : undefined;
    if (referId !== undefined && !referral) throw invalid('refer_id', 'a transfer received and not yet followed or declined');
    const headers = customHeaders(body);
    // RFC 3892 / RFC 3891: the referred call names who referred it, and what it replaces.
    if (referral?.referredBy) headers.push(['Referred-By', `<${referral.referredBy}>`]);
    if (referral?.replaces) headers.push(['Replaces', referral.replaces]);
    const credentials = digestCredentials(body, account.settings.credentials?.username ?? account.settings.user);
    const requestedCallId = field(body, 'call_id') as string | undefined;

    const ua = account.ua;
    const bridge = this.newBridge();
    const active = new SipCall(ua, account, 'outgoing', requestedCallId ?? '', bridge, this.env.sdpAddress);
    bridge.onDtmf = (side, signal, ms) => this.onBridgeDtmf(active, side, signal, ms);
    active.peerUri = uri;
    active.webrtcOffer = jsep;
    active.srtp = srtp.policy;
    active.srtpProfile = srtp.profile;
    active.dtmfMethod = dtmfMethodOf(body);
    this.slot.apply('sendInvite');
    this.current = active;
    let sdp: string;
    try {
      sdp = active.sipOfferFromBrowser(jsep);
    } catch (err) {
      this.terminate(active, { code: 488, reason: reasonPhrase(488) }, { notify: false });
      throw err;
    }
    const call = ua.invite(uri, sdp, {
      headers,
      from: account.settings.username,
      ...(account.settings.displayName ? { displayName: account.settings.displayName } : {}),
      ...(requestedCallId ? { callId: requestedCallId } : {}),
      ...(credentials ? { credentials } : {}),
    });
    active.sip = call;
    const callId = call.callId;
    active.callId = callId;
    this.listenInDialog(active, call);
    active.listen(call, 'provisional', (res) => void this.onProvisional(active, res).catch((err: unknown) => this.failCall(active, err)));
    active.listen(call, 'accepted', (res, answer) => void this.onAnswered(active, res, answer).catch((err: unknown) => this.failCall(active, err)));
    active.listen(call, 'failed', (code, reason, res) => this.terminate(active, { code, reason, ...account.headersOf(res) }));
    if (referral) this.reportToTransferor(referral, call);
    this.push({ event: 'calling', call_id: callId }, { transaction, callId });
  }

  private async onProvisional(active: SipCall, res: SipMessage & { status: number }): Promise<void> {
    if (this.current !== active || res.status === 100) return;
    this.slot.apply('recvProvisional');
    const headers = active.account.headersOf(res);
    if (res.status === 180) {
      this.push({ event: 'ringing', ...headers }, { callId: active.callId });
      return;
    }
    if (res.status === 183 && res.body.length > 0 && !active.browserAnswered) {
      const jsep = await active.answerBrowser(res.body.toString('utf8'), this.ctx.media);
      if (this.current !== active) return;
      this.push({ event: 'progress', username: active.peerUri, ...headers }, { callId: active.callId, jsep });
      return;
    }
    this.push({ event: 'proceeding', code: res.status, ...headers }, { callId: active.callId });
  }

  private async onAnswered(active: SipCall, res: SipMessage, sdp: string | null): Promise<void> {
    if (this.current !== active) return;
    let jsep: Jsep | undefined;
    if (!active.browserAnswered) {
      if (!sdp) throw new SdpBridgeError('the 200 OK carried no SDP answer');
      jsep = await active.answerBrowser(sdp, this.ctx.media);
      if (this.current !== active) return;
    }
    this.slot.apply('recvAnswer');
    this.push({ event: 'accepted', username: active.peerUri, ...active.account.headersOf(res) }, { callId: active.callId, ...(jsep ? { jsep } : {}) });
  }

  // ------------------------------------------------------------------ in-dialog requests

  private listenInDialog(active: SipCall, call: Call): void {
    // Deferred one microtask: a failed outgoing INVITE emits `terminated` and then `failed` with the
    // response (whose headers the hangup event carries); whichever runs first ends the call.
    active.listen(call, 'terminated', (info) => queueMicrotask(() => this.terminate(active, { code: info.code, reason: info.reason })));
    active.listen(call, 'reinvite', (ev) => this.onReoffer(active, ev));
    active.listen(call, 'update', (ev) => this.onReoffer(active, ev));
    active.listen(call, 'info', (ev) => this.onInfo(active, ev));
    active.listen(call, 'refer', (ev) => this.onRefer(active, ev));
    active.listen(call, 'notify', (ev) => this.onNotify(active, ev));
    active.listen(call, 'message', (ev) => {
      const from = headerNameAddr(ev.request, 'From');
      this.push(
        { event: 'message', sender: from?.uri ?? '', ...(from?.display ? { displayname: from.display } : {}), content_type: ev.contentType ?? 'text/plain', content: ev.body ?? '', ...active.account.headersOf(ev.request) },
        { callId: active.callId },
      );
    });
  }

  /** A re-INVITE or UPDATE from the SIP peer: the call answers it, if it is still ours (else 491). */
  private onReoffer(active: SipCall, ev: InDialogRequestEvent): void {
    if (this.current !== active) return ev.respond(491);
    active.answerReoffer(ev);
  }

  private onInfo(active: SipCall, ev: InDialogRequestEvent): void {
    const from = headerNameAddr(ev.request, 'From');
    const sender = { sender: from?.uri ?? '', ...(from?.display ? { displayname: from.display } : {}) };
    const type = (ev.contentType ?? '').toLowerCase();
    if (type.startsWith('application/dtmf-relay')) {
      // application/dtmf-relay: "Signal=5\r\nDuration=160"
      const signal = /^\s*Signal\s*=\s*(\S+)/im.exec(ev.body ?? '')?.[1];
      const duration = Number(/^\s*Duration\s*=\s*(\d+)/im.exec(ev.body ?? '')?.[1] ?? NaN);
      if (signal !== undefined) {
        this.push({ event: 'dtmf', ...sender, signal, ...(Number.isFinite(duration) ? { duration } : {}) }, { callId: active.callId });
        return;
      }
    }
    this.push({ event: 'info', ...sender, type: ev.contentType ?? '', content: ev.body ?? '', ...active.account.headersOf(ev.request) }, { callId: active.callId });
  }

  // ------------------------------------------------------------------ transfers (Transfer.ts)

  /** Transferee: a REFER in our call is accepted (202, NOTIFY 100) and handed to the client as `transfer`. */
  private onRefer(active: SipCall, ev: InDialogRequestEvent): void {
    if (this.current !== active || !active.sip || active.sip.terminated) return ev.respond(481);
    // RFC 3515 §2.4.1: exactly one Refer-To, here a SIP URI.
    const target = ev.request.headers.getAll('Refer-To').length === 1 ? parseReferTo(ev.request.headers.get('Refer-To')) : null;
    if (!target) return ev.respond(400);
    const referral = this.directory.referrals.accept(active.ua, active.sip, ev.request, target, (code) => ev.respond(code));
    this.push({
      event: 'transfer',
      refer_id: referral.id,
      refer_to: referral.referTo,
      ...(referral.referredBy ? { referred_by: referral.referredBy } : {}),
      ...(referral.replaces ? { replaces: replacesCallId(referral.replaces) } : {}),
      ...active.account.headersOf(ev.request),
    }, { callId: active.callId });
  }

  /** The call that follows a transfer tells the transferor how it ends: 200, or its failure (RFC 3515 §2.4.5). */
  private reportToTransferor(referral: Referral, call: Call): void {
    const referrals = this.directory.referrals;
    call.once('accepted', () => referrals.notify(referral, 200));
    call.once('failed', (code, reason) => referrals.notify(referral, code, reason));
    // Ended otherwise (hung up or cancelled before an answer): after 'failed', which follows 'terminated'.
    call.once('terminated', () => queueMicrotask(() => referrals.notify(referral, 487)));
  }

  /** Transferor: a NOTIFY in our call (the progress of our REFER) as Janus's `notify` event. */
  private onNotify(active: SipCall, ev: InDialogRequestEvent): void {
    const event = (ev.request.headers.get('Event') ?? '').split(';')[0]!.trim();
    const substate = (ev.request.headers.get('Subscription-State') ?? '').split(';')[0]!.trim();
    ev.respond(200);
    if (this.current !== active) return;
    this.push({ event: 'notify', notify: event, substate, 'content-type': ev.contentType ?? '', content: ev.body ?? '', ...active.account.headersOf(ev.request) }, { callId: active.callId });
  }

  /** `transfer{uri, replace?}`: REFER the peer to `uri`, replacing our call `replace` there for an attended transfer. */
  private transfer(body: JsonObject, transaction: string): void {
    const active = this.established(body, 'transfer');
    const uri = field(body, 'uri') as string;
    if (!parseSipUri(uri) || /[<>"\s]/.test(uri)) throw new SipPluginError(SipErrorCode.INVALID_ADDRESS, `Invalid transfer address ${uri}`);
    const replace = field(body, 'replace') as string | undefined;
    let referTo = `<${uri}>`;
    if (replace !== undefined) {
      const replaced = this.accountCall(replace);
      if (!replaced?.sip?.dialog) throw new SipPluginError(SipErrorCode.NO_SUCH_CALLID, `No such call-ID ${replace} to replace`);
      referTo = referToReplacing(uri, replaced.sip.dialog);
    }
    this.push({ event: 'transferring' }, { transaction, callId: active.callId });
    void active.ua.refer(active.sip, referTo, [['Referred-By', `<${active.account.settings.username}>`]]).then((outcome) => {
      if (outcome.code < 300 || this.current !== active) return;
      // Refused: the client hears it as the subscription's end, the way a final NOTIFY would say it.
      this.push({ event: 'notify', notify: 'refer', substate: 'terminated', 'content-type': 'message/sipfrag;version=2.0', content: `SIP/2.0 ${outcome.code} ${outcome.reason}\r\n` }, { callId: active.callId });
    });
  }

  /** A call of this account (ours, our master's or a fellow helper's) by its Call-ID. */
  private accountCall(callId: string): SipCall | null {
    const root = this.master ?? this;
    for (const handle of [root, ...root.helpers]) if (handle.current?.callId === callId) return handle.current;
    return null;
  }

  private established(body: JsonObject, what: string): SipCall & { sip: Call } {
    const active = this.requireCall(body);
    if (this.slot.state !== 'established' || !active.sip) throw wrongState(`not in a call (${what})`);
    return active as SipCall & { sip: Call };
  }

  private hold(body: JsonObject, transaction: string, direction: Direction | null): void {
    const active = this.established(body, direction ? 'hold' : 'unhold');
    const sdp = active.holdOffer(direction);
    this.push(direction ? { event: 'holding', direction } : { event: 'resuming' }, { transaction, callId: active.callId });
    void active.ua.reinvite(active.sip, sdp).then((outcome) => {
      if (this.current !== active || outcome.code < 300) return;
      this.logger.info({ code: outcome.code }, 'sip: hold/unhold re-INVITE refused');
    });
  }

  /** `update` with a JSEP offer: the browser renegotiates; ferry answers it and refreshes the SIP session. */
  private async update(body: JsonObject, jsep: Jsep | undefined, transaction: string): Promise<void> {
    const active = this.established(body, 'update');
    if (!jsep || jsep.type !== 'offer') throw new SipPluginError(SipErrorCode.MISSING_SDP, 'update needs a JSEP offer');
    const media = this.ctx.media;
    if (!media) throw wrongState('no PeerConnection');
    const codecs = active.bridgedCodecs();
    const answer = await media.createAnswer(jsep, { audio: !!codecs.audio, video: !!codecs.video, data: false, codecs, extensions: SIP_BRIDGE_EXTENSIONS, telephoneEvent: SIP_BRIDGE_TELEPHONE_EVENT });
    active.webrtcOffer = jsep;
    active.bridge.rewire();
    this.push({ event: 'updating' }, { transaction, callId: active.callId, jsep: answer });
    const outcome = await active.ua.reinvite(active.sip, active.refreshedOffer());
    if (this.current !== active) return;
    this.push({ event: 'updated', code: outcome.code, reason: outcome.reason }, { callId: active.callId });
  }

  private info(body: JsonObject, transaction: string): void {
    const active = this.established(body, 'info');
    const type = field(body, 'type') as string;
    if (/[\r\n]/.test(type)) throw invalid('type', 'a content type on one line');
    void active.ua.info(active.sip, type, field(body, 'content') as string, customHeaders(body));
    this.push({ event: 'infosent' }, { transaction, callId: active.callId });
  }

  private dtmfInfo(body: JsonObject, transaction: string): void {
    const active = this.established(body, 'dtmf_info');
    const digit = field(body, 'digit') as string;
    if (!DTMF_DIGITS.test(digit)) throw invalid('digit', 'one of 0-9, *, #, A-D');
    const duration = (field(body, 'duration') as number | undefined) ?? 160;
    void active.ua.info(active.sip, 'application/dtmf-relay', `Signal=${digit}\r\nDuration=${duration}\r\n`, customHeaders(body));
    this.push({ event: 'dtmfsent' }, { transaction, callId: active.callId });
  }

  private async message(body: JsonObject, transaction: string): Promise<void> {
    const content = field(body, 'content') as string;
    const contentType = (field(body, 'content_type') as string | undefined) ?? 'text/plain';
    if (/[\r\n]/.test(contentType)) throw invalid('content_type', 'a content type on one line');
    const uri = field(body, 'uri') as string | undefined;
    const headers = customHeaders(body);
    let send: Promise<{ code: number; reason: string }>;
    let callId: string | undefined;
    if (uri === undefined) {
      const active = this.established(body, 'message without uri');
      callId = active.callId;
      send = active.ua.message(active.sip, contentType, content, headers);
    } else {
      const account = this.callAccount;
      if (!account) throw wrongState('register first');
      if (!parseSipUri(uri)) throw new SipPluginError(SipErrorCode.INVALID_ADDRESS, `Invalid address ${uri}`);
      send = account.ua.message(uri, contentType, content, headers);
    }
    this.push({ event: 'messagesent' }, { transaction, ...(callId ? { callId } : {}) });
    const outcome = await send;
    if (!this.destroyed) this.push({ event: 'messagedelivery', code: outcome.code, reason: outcome.reason }, callId ? { callId } : {});
  }

  private onOutOfDialogMessage(account: SipAccount, ev: IncomingMessageEvent): void {
    const from = headerNameAddr(ev.request, 'From');
    this.push({
      event: 'message',
      sender: ev.from,
      ...(from?.display ? { displayname: from.display } : {}),
      content_type: ev.contentType ?? 'text/plain',
      content: ev.body ?? '',
      ...account.headersOf(ev.request),
    });
  }

  private keyframe(body: JsonObject, transaction: string): void {
    const active = this.established(body, 'keyframe');
    if (field(body, 'user') === true) active.bridge.requestKeyframe('webrtc');
    if (field(body, 'peer') === true) active.bridge.requestKeyframe('sip');
    this.push({ event: 'keyframesent' }, { transaction, callId: active.callId });
  }

  // ------------------------------------------------------------------ ending

  private hangup(body: JsonObject, transaction: string): void {
    const active = this.requireCall(body);
    this.push({ event: 'hangingup' }, { transaction, callId: active.callId });
    this.terminate(active, null, { sipHeaders: customHeaders(body) });
  }

  private requireCall(body: JsonObject): SipCall {
    const active = this.current;
    if (!active) throw wrongState('not in a call');
    const callId = field(body, 'call_id');
    if (typeof callId === 'string' && callId !== active.callId) throw new SipPluginError(SipErrorCode.NO_SUCH_CALLID, `No such call-ID ${callId}`);
    return active;
  }

  private failCall(active: SipCall, err: unknown): void {
    const detail = err instanceof Error ? err.message : String(err);
    this.logger.warn({ err: detail }, 'sip: call failed');
    if (err instanceof SdpBridgeError || err instanceof SdesError) this.env.counters.sdpRefused++;
    // RFC 3261 §13.2.2.4 / §15: an answer ferry cannot use ends the call (BYE, or CANCEL/480 if
    // still early); the Reason header (RFC 3326) and the hangup event say why.
    const reasonHeader = `SIP;cause=488;text="${quoted(detail)}"`;
    this.terminate(
      active,
      { code: 488, reason: reasonPhrase(488), extra: { reason_header: detail, reason_header_protocol: 'SIP', reason_header_cause: '488' } },
      { sipHeaders: [['Reason', reasonHeader]] },
    );
  }

  /**
   * The one ending of a call (see the file header). Idempotent: a second call
   * for the same (or an older) call does nothing. `info` null means "as the
   * SIP stack ended it" (BYE 200, CANCEL 487, unanswered 480).
   */
  private terminate(
    active: SipCall,
    info: EndInfo | null,
    options: { notify?: boolean; endSip?: () => void; sipHeaders?: Array<[string, string]> } = {},
  ): void {
    if (this.current !== active) return;
    this.current = null;
    this.slot.apply('terminate');
    active.end(this.logger, options.endSip, options.sipHeaders);
    const call = active.sip;
    const end = info ?? (call?.termination ? { code: call.termination.code, reason: call.termination.reason } : { code: 487, reason: reasonPhrase(487) });
    if (options.notify !== false && !this.destroyed) {
      this.push({ event: 'hangup', code: end.code, reason: end.reason, ...('extra' in end ? end.extra : {}), ...(end.headers ? { headers: end.headers } : {}) }, { callId: active.callId });
    }
    // Janus close_pc: the PeerConnection of this call goes too (its hangupMedia finds the slot idle).
    if (this.ctx.media && !this.destroyed) this.ctx.closePeerConnection(`SIP call ended (${end.code} ${end.reason})`);
    if (!this.master) this.closeAccountWhenIdle();
  }

  private newBridge(): MediaBridge {
    return new MediaBridge(this.services, `sip:${this.ctx.sessionId}:${this.ctx.handleId}`, this.logger);
  }

  /**
   * A digit the engine saw end on the call's audio (MediaBridge.ts): the SIP peer's RFC 4733
   * events give Janus's `dtmf` event; the browser's, when the peer has no events (or
   * dtmf_method is info), go to the peer as SIP INFO application/dtmf-relay.
   */
  private onBridgeDtmf(active: SipCall, side: 'sip' | 'webrtc', signal: string, durationMs: number): void {
    if (this.current !== active || this.destroyed) return;
    if (side === 'sip') {
      this.push({ event: 'dtmf', sender: active.peerUri, signal, duration: durationMs }, { callId: active.callId });
      return;
    }
    const call = active.sip;
    if (!call?.dialog || call.terminated) return;
    void active.ua.info(call, 'application/dtmf-relay', `Signal=${signal}\r\nDuration=${durationMs}\r\n`);
  }

  // ------------------------------------------------------------------ PluginHandle

  setupMedia(): void {
    this.current?.bridge.setWebRtcUp();
  }

  hangupMedia(reason: string): void {
    // The browser's PeerConnection is gone: the call it carried ends too (BYE, CANCEL or 480).
    const active = this.current;
    if (active) this.terminate(active, null);
    void reason;
  }

  destroy(reason: string): void {
    if (this.destroyed) return;
    this.destroyed = true;
    const active = this.current;
    if (active) this.terminate(active, null, { notify: false });
    if (this.master) {
      this.master.helpers.delete(this);
      this.master = null;
    }
    const account = this.account;
    if (account && (account.status === 'registered' || account.status === 'registering')) account.ua.unregister();
    this.closeAccount();
    this.directory.handleClosed(this);
    void reason;
  }

  /** Admin `handle_info` → `plugin_specific`, after janus_sip.c's query_session. */
  query(): JsonObject {
    const account = this.master?.account ?? this.account;
    const active = this.current;
    const ua = account?.ua;
    return {
      username: account?.settings.username ?? null,
      display_name: account?.settings.displayName ?? null,
      user_agent: account?.settings.userAgent ?? null,
      identity: account?.settings.username ?? null,
      registration_status: this.master ? 'helper' : account?.status ?? 'unregistered',
      master_id: account?.masterId ?? null,
      helper: this.master !== null,
      helpers: [...this.helpers].length,
      call_status: CALL_STATUS[this.slot.state],
      slot: this.slot.state,
      call_id: active?.callId ?? null,
      contact: ua ? ua.contact(ua.udp ? 'udp' : 'tcp') : null,
      sip_udp_port: ua?.udp?.local.port ?? null,
      sip_tcp_port: ua?.tcp?.local.port ?? null,
      sip_tls_port: ua?.tls?.local.port ?? null,
      media: active ? active.bridge.describe() : [],
      destroyed: this.destroyed,
    };
  }
}
