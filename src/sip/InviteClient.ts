/**
 * The UAC side of one INVITE (RFC 3261 §13.2): an outgoing call and what
 * only its caller knows: the INVITE as last sent (a CANCEL copies it, §9.1),
 * the ACK for the 2xx (sent again when the 2xx is, §13.2.2.4), the one digest
 * retry (§22.2), and where a CANCEL stands, as the table CANCEL_TABLE.
 *
 * The UserAgent builds the INVITE and owns the wire; this class reacts to the
 * INVITE's responses through the UA core it is given (`InviteClientCore`).
 */
import { Call } from './Call.js';
import { answerChallenges, type DigestCredentials } from './DigestAuth.js';
import { Dialog } from './Dialog.js';
import { SipHeaders, cseqOf, topVia, type SipRequest, type SipResponse } from './SipMessage.js';
import type { SipFlow, TransportProtocol } from './SipTransport.js';
import { IGNORE_OUTCOME, type ClientTransactionUser } from './Transactions.js';

/** A request sent outside any transaction, with where it goes first (an ACK for a 2xx, §17.1.1.3). */
export interface RoutedAck {
  request: SipRequest;
  nextHop: string;
}

/** What an outgoing call needs from the UA core. */
export interface InviteClientCore {
  /** Our Contact (name-addr) for a transport (§8.1.1.8). */
  contact(protocol: TransportProtocol): string;
  /** Sends a request in a new client transaction (Via, resolution, transmission). */
  sendRequest(req: SipRequest, nextHop: string, fallback: TransportProtocol, tu: ClientTransactionUser, branch?: string): void;
  /** Sends an ACK for a 2xx, outside any transaction (§13.2.2.4). */
  sendAck(ack: RoutedAck, fallback: TransportProtocol): void;
  /** Sends BYE in the call's dialog (no-op without one). */
  sendBye(call: Call): void;
  /** The transport and peer a request went to, once it was sent. */
  flowOf(request: SipRequest): SipFlow | undefined;
  /** The call already holding a dialog, and the recording of a new one (§12.1.2). */
  callOfDialog(key: string): Call | undefined;
  addDialog(key: string, call: InviteClient): void;
}

/**
 * §9.1: a CANCEL may only be sent once a provisional response arrived; one
 * asked for earlier waits for it. It is sent at most once. Inputs a state
 * does not list change nothing.
 */
export type CancelState = 'unanswered' | 'provisional' | 'cancelWaiting' | 'cancelSent';
export type CancelInput = 'provisional' | 'cancel';
export const CANCEL_TABLE: Record<CancelState, Partial<Record<CancelInput, { to: CancelState; sendCancel: boolean }>>> = {
  unanswered: { provisional: { to: 'provisional', sendCancel: false }, cancel: { to: 'cancelWaiting', sendCancel: false } },
  provisional: { cancel: { to: 'cancelSent', sendCancel: true } },
  cancelWaiting: { provisional: { to: 'cancelSent', sendCancel: true } },
  cancelSent: {},
};

export class InviteClient extends Call {
  cancelState: CancelState = 'unanswered';
  /** The ACK sent for the 2xx; sent again when a 2xx retransmission arrives (§13.2.2.4). */
  ackSent: RoutedAck | undefined;
  /** INVITE as last sent (with Via), for CANCEL (§9.1). */
  private sentInvite: SipRequest;
  private authTries = 0;

  constructor(
    private readonly core: InviteClientCore,
    invite: SipRequest,
    callId: string,
    localTag: string,
    private readonly credentials: DigestCredentials | undefined,
  ) {
    super('outgoing', invite, callId, localTag);
    this.sentInvite = invite;
  }

  /** Whether the caller asked for a CANCEL (sent or waiting for a provisional response). */
  get cancelRequested(): boolean {
    return this.cancelState === 'cancelWaiting' || this.cancelState === 'cancelSent';
  }

  /** Sends the INVITE in a new client transaction; again, with credentials, after a challenge (§22.2). */
  send(request: SipRequest, nextHop: string, protocol: TransportProtocol): void {
    this.sentInvite = request;
    this.core.sendRequest(request, nextHop, protocol, {
      onResponse: (res) => this.onResponse(request, nextHop, protocol, res),
      onTimeout: () => {
        if (this.transition('recvFailure', { by: 'remote', code: 408, reason: 'Request Timeout' })) this.emit('failed', 408, 'Request Timeout');
      },
      onTransportError: () => {
        if (this.transition('transportError', { by: 'local', code: 503, reason: 'Transport Error' })) this.emit('failed', 503, 'Transport Error');
      },
    });
  }

  /** After an offerless INVITE: the ACK carries our SDP answer (§13.2.2.4). */
  sendAckWithAnswer(sdp: string): void {
    if (!this.dialog || this.ackSent) throw new Error('ack() needs an accepted offerless outgoing call not yet ACKed');
    const seq = cseqOf(this.invite)?.seq ?? 1;
    this.ackSent = this.dialog.createAck(seq, { body: sdp, contentType: 'application/sdp' });
    this.localSdp = sdp;
    this.core.sendAck(this.ackSent, this.core.flowOf(this.invite)?.transport.protocol ?? 'udp');
  }

  /** CANCEL (§9.1): sent now if a provisional response arrived, else when one does. */
  cancel(): void {
    if (this.state !== 'calling' && this.state !== 'early') return;
    this.cancelInput('cancel', this.core.flowOf(this.invite)?.transport.protocol ?? 'udp');
  }

  private cancelInput(input: CancelInput, protocol: TransportProtocol): void {
    const row = CANCEL_TABLE[this.cancelState][input];
    if (!row) return;
    this.cancelState = row.to;
    if (row.sendCancel) this.sendCancel(protocol);
  }

  private sendCancel(protocol: TransportProtocol): void {
    const invite = this.sentInvite;
    // §9.1: same Request-URI, Call-ID, From, To (no tag), CSeq number, Route and top Via branch as the INVITE.
    const headers = new SipHeaders();
    for (const name of ['Route', 'Max-Forwards', 'From', 'To', 'Call-ID'] as const) for (const v of invite.headers.getAll(name)) headers.add(name, v);
    headers.add('CSeq', `${cseqOf(invite)?.seq ?? 1} CANCEL`);
    const cancel: SipRequest = { kind: 'request', method: 'CANCEL', uri: invite.uri, headers, body: Buffer.alloc(0) };
    const branch = topVia(invite)?.params.get('branch') ?? undefined;
    const src = this.core.flowOf(invite);
    const nextHop = src ? `sip:${src.remote.host.includes(':') ? `[${src.remote.host}]` : src.remote.host}:${src.remote.port}${src.transport.protocol === 'udp' ? '' : `;transport=${src.transport.protocol}`}` : invite.uri;
    this.core.sendRequest(cancel, nextHop, protocol, IGNORE_OUTCOME, branch);
  }

  private onResponse(request: SipRequest, nextHop: string, protocol: TransportProtocol, res: SipResponse): void {
    this.invite = request;
    if (res.status < 200) {
      // §9.1: a CANCEL waits for a provisional response.
      if (res.status > 100) this.cancelInput('provisional', protocol);
      if (res.status > 100 && this.transition('recv1xx')) this.emit('provisional', res);
      else if (res.status === 100) this.emit('provisional', res);
      return;
    }
    if (res.status < 300) return this.onSuccess(request, protocol, res);
    if ((res.status === 401 || res.status === 407) && this.credentials && this.authTries < 1 && !this.terminated) {
      const answers = answerChallenges(res, this.credentials, 'INVITE', request.uri);
      if (answers.length > 0) {
        // §22.2: same Call-ID, From tag and To; CSeq + 1; fresh branch.
        this.authTries++;
        const retry: SipRequest = { ...request, headers: request.headers.clone() };
        retry.headers.remove('Via');
        retry.headers.remove('Authorization');
        retry.headers.remove('Proxy-Authorization');
        const seq = (cseqOf(request)?.seq ?? 1) + 1;
        retry.headers.set('CSeq', `${seq} INVITE`);
        for (const a of answers) retry.headers.add(a.header, a.value);
        this.send(retry, nextHop, protocol);
        return;
      }
    }
    if (this.transition('recvFailure', { by: 'remote', code: res.status, reason: res.reason })) this.emit('failed', res.status, res.reason, res);
  }

  private onSuccess(request: SipRequest, protocol: TransportProtocol, res: SipResponse): void {
    const dialog = Dialog.asUac(request, res, this.core.contact(protocol));
    if (!dialog) return;
    dialog.refreshTarget(res);
    const seq = cseqOf(request)?.seq ?? 1;
    const existing = this.core.callOfDialog(dialog.key);
    if (existing && existing !== this) return; // §13.2.2.4 forked 2xx for another call: ignore
    if (this.dialog && this.dialog.key !== dialog.key) {
      // A second 2xx from another fork (§13.2.2.4): ACK it and hang it up.
      const extra = dialog.createAck(seq);
      this.core.sendAck(extra, protocol);
      const bye = dialog.createRequest('BYE');
      this.core.sendRequest(bye.request, bye.nextHop, protocol, IGNORE_OUTCOME);
      return;
    }
    this.dialog = dialog;
    this.core.addDialog(dialog.key, this);
    const sdp = res.body.length > 0 ? res.body.toString('utf8') : null;
    this.remoteSdp = sdp;
    // §13.2.2.4: ACK the 2xx; an offerless INVITE's ACK must carry our answer (ua.ack()).
    if (this.localSdp !== null || this.cancelRequested) {
      this.ackSent = dialog.createAck(seq);
      this.core.sendAck(this.ackSent, protocol);
    }
    if (this.cancelRequested) {
      // The 2xx crossed our CANCEL: the call was established anyway, so end it with BYE (§9.1).
      this.transition('recv2xx');
      this.core.sendBye(this);
      this.transition('bye', { by: 'local', code: 487, reason: 'cancelled' });
      return;
    }
    if (this.transition('recv2xx')) this.emit('accepted', res, sdp);
  }
}
