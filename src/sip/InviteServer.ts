/**
 * The UAS side of one INVITE (RFC 3261 §13.3): an incoming call, its INVITE
 * server transaction (§17.2.1; a CANCEL finds the call by it, §9.2) and the
 * answer: 1xx, a 2xx that the core sends again until the ACK (§13.3.1.4),
 * or a failure.
 *
 * The UserAgent receives the INVITE and owns the wire; this class answers it
 * through the UA core it is given (`InviteServerCore`).
 */
import { Call } from './Call.js';
import { InviteOkRetransmitter } from './InviteOkRetransmitter.js';
import { makeResponse, type SipRequest, type SipResponse } from './SipMessage.js';
import type { Clock } from '../time/Clock.js';
import type { ServerTransaction, ServerTransactionUser, TimerConfig } from './Transactions.js';
import type { Headers } from './UserAgent.js';

/** What an incoming call needs from the UA core. */
export interface InviteServerCore {
  readonly clock: Clock;
  readonly timers: TimerConfig;
  /** The methods we allow (the Allow header of a 2xx). */
  readonly allow: string;
  /** A server transaction answering `req` back where it came from (§18.2.2). */
  serverTransaction(req: SipRequest, tu: ServerTransactionUser): ServerTransaction;
  /** Sends a response to `req` outside any transaction (the 2xx retransmissions). */
  respond(req: SipRequest, res: SipResponse): void;
  reliableFor(req: SipRequest): boolean;
  /** Sends BYE in the call's dialog (no-op without one). */
  sendBye(call: Call): void;
}

export class InviteServer extends Call {
  /** The INVITE server transaction: every 1xx and final response goes through it. */
  readonly transaction: ServerTransaction;

  constructor(private readonly core: InviteServerCore, invite: SipRequest, callId: string, localTag: string) {
    super('incoming', invite, callId, localTag);
    this.transaction = core.serverTransaction(invite, {
      onFailure: (why) => this.transition(why === 'timeout' ? 'noAck' : 'transportError', { by: 'remote', code: 408, reason: why }),
    });
  }

  /** Answers the INVITE: 1xx, 2xx with SDP (the answer, or the offer of an offerless INVITE), or a failure. */
  answer(code: number, sdp?: string | null, headers: Headers = []): void {
    const dialog = this.dialog;
    if (!dialog) throw new Error('answer() needs an incoming call');
    if (code < 101 || code > 699) throw new Error(`invalid status code ${code}`);
    const req = this.invite;
    const input = code < 200 ? 'send1xx' : code < 300 ? 'send2xx' : 'sendFailure';
    if (code >= 200 && code < 300 && !sdp) throw new Error('a 2xx to INVITE needs SDP (answer, or offer for an offerless INVITE)');
    if (!this.transition(input, code >= 300 ? { by: 'local', code, reason: 'declined' } : undefined)) {
      throw new Error(`cannot answer ${code} in state ${this.state}`);
    }
    const res = makeResponse(req, code, undefined, this.localTag);
    if (code < 300) res.headers.add('Contact', dialog.localContact);
    if (code >= 200 && code < 300) res.headers.add('Allow', this.core.allow);
    for (const [n, v] of headers) res.headers.add(n, v);
    if (sdp && code < 300) {
      res.body = Buffer.from(sdp, 'utf8');
      res.headers.set('Content-Type', 'application/sdp');
      this.localSdp = sdp;
    }
    if (code >= 200 && code < 300) {
      dialog.state = 'confirmed';
      this.transaction.respond(res);
      // §13.3.1.4: the core, not the transaction, retransmits the 2xx until the ACK.
      const { core } = this;
      this.okRetransmitter = new InviteOkRetransmitter(res, (m) => core.respond(req, m), core.clock, core.timers, core.reliableFor(req), () => {
        if (this.state === 'accepting') {
          core.sendBye(this);
          this.transition('noAck', { by: 'local', code: 408, reason: 'no ACK' });
        }
      });
    } else {
      this.transaction.respond(res);
    }
  }
}
