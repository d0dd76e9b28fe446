/**
 * Requests within a dialog (RFC 3261 §12.2), both ways, for every call of one
 * UserAgent: BYE, re-INVITE, UPDATE, INFO, MESSAGE, REFER (RFC 3515), NOTIFY
 * and OPTIONS from the peer (§12.2.2; the application answers re-INVITE/UPDATE
 * and REFER, INFO, MESSAGE and NOTIFY default to 200), the ACK for our 2xx,
 * and ours to the peer (§12.2.1) with one digest retry (§22.2) and the ACK for
 * a re-INVITE's 2xx (§13.2.2.4).
 */
import type { Clock } from '../time/Clock.js';
import type { Call, InDialogRequestEvent } from './Call.js';
import { answerChallenges, type DigestCredentials } from './DigestAuth.js';
import { dialogKey } from './Dialog.js';
import type { RoutedAck } from './InviteClient.js';
import { InviteOkRetransmitter } from './InviteOkRetransmitter.js';
import { cseqOf, headerNameAddr, makeResponse, tagOf, type SipRequest } from './SipMessage.js';
import type { TransportProtocol } from './SipTransport.js';
import type { TimerConfig } from './Transactions.js';
import type { TransportLayer } from './TransportLayer.js';
import type { Headers, RequestOutcome } from './UserAgent.js';

/** What requests within dialogs need from the UA core. */
export interface DialogRequestsCore {
  readonly clock: Clock;
  readonly timers: TimerConfig;
  readonly transportLayer: TransportLayer;
  /** The methods we allow (the Allow header of 405 and OPTIONS answers). */
  readonly allow: string;
  /** The UA's own credentials, for a challenged in-dialog request. */
  credentials(): DigestCredentials | undefined;
  callOfDialog(key: string): Call | undefined;
  /** A final response in a fresh server transaction. */
  replyNew(req: SipRequest, status: number, extra?: Headers): void;
  /** The transport a call's requests use (the one its INVITE took). */
  protocolFor(call: Call): TransportProtocol;
}

export class DialogRequests {
  /** ACKs sent for re-INVITE 2xx, by dialog key and CSeq, to send again when the 2xx is (§13.2.2.4). */
  private readonly reinviteAcks = new Map<string, RoutedAck>();

  constructor(private readonly core: DialogRequestsCore) {}

  /** The ACK sent for the 2xx to our re-INVITE `seq` in a dialog, if any. */
  reinviteAck(key: string, seq: number): RoutedAck | undefined {
    return this.reinviteAcks.get(`${key}|${seq}`);
  }

  /** An ACK for one of our 2xx (§13.3.1.4), which carries the answer after an offerless INVITE. */
  receiveAck(ack: SipRequest): void {
    const key = this.inDialogKey(ack);
    const call = key ? this.core.callOfDialog(key) : undefined;
    if (!call) return; // §17.2.3: a stray ACK is never answered
    const retransmitter = call.okRetransmitter;
    if (retransmitter && retransmitter.state === 'waitingAck') retransmitter.acked();
    const sdp = ack.body.length > 0 ? ack.body.toString('utf8') : null;
    if (sdp !== null && call.offerless) call.remoteSdp = sdp;
    if (call.transition('ack')) call.emit('confirmed', ack, sdp);
  }

  private inDialogKey(req: SipRequest): string | null {
    const toTag = tagOf(headerNameAddr(req, 'To'));
    const fromTag = tagOf(headerNameAddr(req, 'From')) ?? '';
    const callId = req.headers.get('Call-ID');
    if (!toTag || !callId) return null;
    return dialogKey({ callId, localTag: toTag, remoteTag: fromTag });
  }

  /** A request with a To tag (§12.2.2), ACK aside: in a dialog we know, or 481. */
  receive(req: SipRequest): void {
    const key = this.inDialogKey(req);
    const call = key ? this.core.callOfDialog(key) : undefined;
    const dialog = call?.dialog;
    if (!call || !dialog || (call.terminated && req.method !== 'BYE')) return this.core.replyNew(req, 481);
    if (call.terminated) return this.core.replyNew(req, 200); // BYE retransmission after we ended
    // §12.2.2: out-of-order CSeq → 500.
    if (!dialog.acceptRemoteCseq(req)) return this.core.replyNew(req, 500);
    const tx = this.core.transportLayer.serverTransaction(req);
    const reply = (code: number, body?: string | null, headers: Headers = [], contentType?: string) => {
      const res = makeResponse(req, code, undefined, call.localTag);
      if (req.method === 'INVITE' || req.method === 'UPDATE') res.headers.add('Contact', dialog.localContact);
      for (const [n, v] of headers) res.headers.add(n, v);
      if (body) {
        res.body = Buffer.from(body, 'utf8');
        res.headers.set('Content-Type', contentType ?? 'application/sdp');
      }
      if (req.method === 'INVITE' && code >= 200 && code < 300) {
        tx.respond(res);
        // §13.3.1.4 applies to re-INVITE 2xx as well.
        call.okRetransmitter?.cancel();
        call.okRetransmitter = new InviteOkRetransmitter(res, (m) => this.core.transportLayer.respond(req, m), this.core.clock, this.core.timers, this.core.transportLayer.reliableFor(req), () => {});
      } else tx.respond(res);
    };
    switch (req.method) {
      case 'BYE': {
        reply(200);
        call.transition('bye', { by: 'remote', code: 200, reason: 'BYE' });
        return;
      }
      case 'INVITE':
      case 'UPDATE': {
        if (req.method === 'INVITE') tx.respond(makeResponse(req, 100));
        dialog.refreshTarget(req);
        const ev = requestEvent(req, reply);
        const name = req.method === 'INVITE' ? 'reinvite' : 'update';
        if (call.listenerCount(name) === 0) return reply(488);
        call.emit(name, ev);
        if (!ev.answered()) return; // answered later by the application
        return;
      }
      case 'INFO':
      case 'MESSAGE':
      case 'NOTIFY': {
        const ev = requestEvent(req, reply);
        call.emit(req.method === 'INFO' ? 'info' : req.method === 'MESSAGE' ? 'message' : 'notify', ev);
        if (!ev.answered()) reply(200);
        return;
      }
      case 'REFER': {
        // RFC 3515 §2.4.2: accepting a REFER (202) is the application's to decide.
        if (call.listenerCount('refer') === 0) return reply(603);
        const ev = requestEvent(req, reply);
        call.emit('refer', ev);
        if (!ev.answered()) reply(603);
        return;
      }
      case 'OPTIONS':
        return reply(200, null, [['Allow', this.core.allow]]);
      default:
        return reply(405, null, [['Allow', this.core.allow]]);
    }
  }

  /**
   * Sends an in-dialog request and resolves with its final outcome; a 401/407
   * is answered once with the UA's credentials (§22.2).
   */
  send(call: Call, method: string, body: string | null, contentType: string | undefined, headers: Headers): Promise<RequestOutcome> {
    const dialog = call.dialog;
    if (!dialog || call.terminated) return Promise.resolve({ code: 481, reason: 'Call/Transaction Does Not Exist' });
    return new Promise((resolve) => {
      let authTries = 0;
      const attempt = (auth: Headers) => {
        const { request, nextHop } = dialog.createRequest(method, { body: body ?? undefined, contentType, headers: [...headers, ...auth] });
        this.core.transportLayer.sendRequest(request, nextHop, this.core.protocolFor(call), {
          onResponse: (res) => {
            if (res.status < 200) return;
            const credentials = this.core.credentials();
            if ((res.status === 401 || res.status === 407) && authTries < 1 && credentials) {
              const answers = answerChallenges(res, credentials, method, request.uri);
              if (answers.length > 0) {
                authTries++;
                return attempt(answers.map((a) => [a.header, a.value] as const));
              }
            }
            if (method === 'INVITE' && res.status < 300) {
              dialog.refreshTarget(res);
              const ack = dialog.createAck(cseqOf(request)?.seq ?? 0);
              this.reinviteAcks.set(`${dialog.key}|${cseqOf(request)?.seq ?? 0}`, ack);
              this.core.transportLayer.sendAck(ack, this.core.protocolFor(call));
            }
            if (method === 'UPDATE' && res.status < 300) dialog.refreshTarget(res);
            // §12.2.1.2: 481/408 to an in-dialog request ends the dialog.
            if (res.status === 481 || res.status === 408) call.transition('bye', { by: 'remote', code: res.status, reason: res.reason });
            resolve({ code: res.status, reason: res.reason, response: res });
          },
          onTimeout: () => resolve({ code: 408, reason: 'Request Timeout' }),
          onTransportError: () => resolve({ code: 503, reason: 'Transport Error' }),
        });
      };
      attempt([]);
    });
  }
}

/** A received request as the application sees it; its first final response wins, later ones are dropped. */
export function requestEvent(req: SipRequest, reply: (code: number, body?: string | null, headers?: Headers, contentType?: string) => void): InDialogRequestEvent & { answered(): boolean } {
  let answered = false;
  return {
    request: req,
    body: req.body.length > 0 ? req.body.toString('utf8') : null,
    contentType: req.headers.get('Content-Type'),
    respond: (code, body, headers, contentType) => {
      if (answered && code >= 200) return;
      if (code >= 200) answered = true;
      reply(code, body, headers, contentType);
    },
    answered: () => answered,
  };
}
