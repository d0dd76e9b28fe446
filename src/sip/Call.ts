/**
 * One INVITE session as the UA sees it, incoming or outgoing, as an explicit
 * state table. Lesson §1 (Janus #3332): every path — declined, cancelled,
 * failed, timed out, hung up, offerless or not — ends in `terminated`, and no
 * step depends on an SDP having been exchanged. An offerless incoming INVITE
 * (RFC 3261 §13.2.1) is first-class: `offerless` is true, our 2xx carries the
 * offer and the answer arrives in the ACK (`confirmed` event).
 *
 * The UA creates each call as one of its two sides, which keep what only
 * that side knows: InviteClient.ts (outgoing, RFC 3261 §13.2) and
 * InviteServer.ts (incoming, §13.3).
 */
import { Emitter } from './Emitter.js';
import type { Dialog } from './Dialog.js';
import type { InviteOkRetransmitter } from './InviteOkRetransmitter.js';
import type { SipRequest, SipResponse } from './SipMessage.js';

export type CallDirection = 'incoming' | 'outgoing';
export type CallState = 'calling' | 'incoming' | 'early' | 'accepting' | 'established' | 'terminated';
export type CallInput =
  | 'recv1xx' | 'recv2xx' | 'recvFailure'
  | 'send1xx' | 'send2xx' | 'sendFailure'
  | 'ack' | 'cancelled' | 'bye' | 'noAck' | 'transportError';

/** calling/… for outgoing, incoming/… for incoming; 'early' serves both with disjoint inputs. */
export const CALL_TABLE: Record<CallState, Partial<Record<CallInput, CallState>>> = {
  calling: { recv1xx: 'early', recv2xx: 'established', recvFailure: 'terminated', transportError: 'terminated', bye: 'terminated' },
  incoming: { send1xx: 'early', send2xx: 'accepting', sendFailure: 'terminated', cancelled: 'terminated', transportError: 'terminated', bye: 'terminated' },
  early: {
    recv1xx: 'early', recv2xx: 'established', recvFailure: 'terminated',
    send1xx: 'early', send2xx: 'accepting', sendFailure: 'terminated', cancelled: 'terminated',
    transportError: 'terminated', bye: 'terminated',
  },
  accepting: { ack: 'established', noAck: 'terminated', bye: 'terminated', transportError: 'terminated' },
  established: { bye: 'terminated', noAck: 'terminated' },
  terminated: {},
};

export interface TerminationInfo {
  by: 'local' | 'remote';
  /** SIP status that ended the call when there was one (e.g. 603 decline, 487 cancel, 408 timeout, 200 BYE). */
  code: number;
  reason: string;
}

/** An in-dialog request the application may answer (re-INVITE, UPDATE); unanswered ones get the UA's default. */
export interface InDialogRequestEvent {
  request: SipRequest;
  /** Body as UTF-8 text (the SDP offer for re-INVITE/UPDATE), null when empty. */
  body: string | null;
  contentType: string | undefined;
  respond(code: number, body?: string | null, headers?: ReadonlyArray<readonly [string, string]>, contentType?: string): void;
}

export type CallEvents = {
  /** Outgoing: a 1xx arrived. */
  provisional: [res: SipResponse];
  /** Outgoing: the 2xx arrived; `sdp` is the answer (or an offer, after an offerless INVITE). */
  accepted: [res: SipResponse, sdp: string | null];
  /** Outgoing: a final failure (>= 300, or 408 timeout / 503 transport error synthesised). */
  failed: [code: number, reason: string, res?: SipResponse];
  /** Incoming: the ACK for our 2xx arrived; `sdp` is the answer after an offerless INVITE. */
  confirmed: [ack: SipRequest, sdp: string | null];
  reinvite: [ev: InDialogRequestEvent];
  update: [ev: InDialogRequestEvent];
  info: [ev: InDialogRequestEvent];
  message: [ev: InDialogRequestEvent];
  /** RFC 3515 REFER in the dialog: answer 202 (then NOTIFY the progress) or refuse. */
  refer: [ev: InDialogRequestEvent];
  /** A NOTIFY in the dialog (RFC 6665), e.g. the progress of a REFER we sent (RFC 3515 §2.4.4). */
  notify: [ev: InDialogRequestEvent];
  /** Always emitted exactly once, whatever ended the call. */
  terminated: [info: TerminationInfo];
  state: [from: CallState, input: CallInput, to: CallState];
};

export class Call extends Emitter<CallEvents> {
  state: CallState;
  dialog: Dialog | undefined;
  /** Incoming INVITE without a body (§13.2.1 delayed offer). */
  readonly offerless: boolean;
  remoteSdp: string | null;
  localSdp: string | null = null;
  termination: TerminationInfo | undefined;
  /** The UA's latest 2xx to an INVITE or re-INVITE on this call, sent again until its ACK (§13.3.1.4). */
  okRetransmitter: InviteOkRetransmitter | undefined;

  constructor(
    readonly direction: CallDirection,
    /** The initial INVITE (sent or received). */
    public invite: SipRequest,
    readonly callId: string,
    readonly localTag: string,
  ) {
    super();
    this.state = direction === 'incoming' ? 'incoming' : 'calling';
    const hasBody = invite.body.length > 0;
    this.offerless = !hasBody;
    this.remoteSdp = direction === 'incoming' && hasBody ? invite.body.toString('utf8') : null;
  }

  /** Applies one input; false when the state table has no row for it (ignored). */
  transition(input: CallInput, termination?: TerminationInfo): boolean {
    const next = CALL_TABLE[this.state][input];
    if (!next) return false;
    const from = this.state;
    this.state = next;
    this.emit('state', from, input, next);
    if (next === 'terminated' && !this.termination) {
      this.termination = termination ?? { by: 'local', code: 0, reason: input };
      if (this.dialog) this.dialog.state = 'terminated';
      this.emit('terminated', this.termination);
    }
    return true;
  }

  get terminated(): boolean {
    return this.state === 'terminated';
  }
}
