/**
 * The call slot of one SIP-plugin handle as an explicit state table
 * (lessons.md §1, Janus #3332). Every way a call ends is the one input
 * `terminate`, valid in every state and always leading to `idle`, whether
 * or not an SDP, a PeerConnection or an RTP leg ever existed. Nothing else
 * (no "hangup already signalled" flag, no SDP bookkeeping) decides whether
 * the slot is free.
 *
 *   idle ──sendInvite──▶ calling ──recvProvisional──▶ ringing ──recvAnswer──▶ established
 *   idle ──recvInvite──▶ incoming ──sendProgress──▶ early ──accept──▶ accepting ──recvAck──▶ established
 *   any  ──terminate──▶ idle
 */
export type SlotState = 'idle' | 'calling' | 'ringing' | 'incoming' | 'early' | 'accepting' | 'established';
export type SlotInput = 'sendInvite' | 'recvInvite' | 'recvProvisional' | 'recvAnswer' | 'sendProgress' | 'accept' | 'recvAck' | 'terminate';

export const SLOT_TABLE: Readonly<Record<SlotState, Readonly<Partial<Record<SlotInput, SlotState>>>>> = {
  idle: { sendInvite: 'calling', recvInvite: 'incoming', terminate: 'idle' },
  calling: { recvProvisional: 'ringing', recvAnswer: 'established', terminate: 'idle' },
  ringing: { recvProvisional: 'ringing', recvAnswer: 'established', terminate: 'idle' },
  incoming: { sendProgress: 'early', accept: 'accepting', terminate: 'idle' },
  early: { sendProgress: 'early', accept: 'accepting', terminate: 'idle' },
  accepting: { recvAck: 'established', terminate: 'idle' },
  established: { terminate: 'idle' },
};

/** Janus's `call_status` names for Admin `handle_info`. */
export const CALL_STATUS: Readonly<Record<SlotState, string>> = {
  idle: 'idle',
  calling: 'calling',
  ringing: 'calling',
  incoming: 'ringing',
  early: 'ringing',
  accepting: 'incall',
  established: 'incall',
};

export class CallSlot {
  private current: SlotState = 'idle';

  get state(): SlotState {
    return this.current;
  }

  get idle(): boolean {
    return this.current === 'idle';
  }

  /** Whether `input` is valid now (without applying it). */
  can(input: SlotInput): boolean {
    return SLOT_TABLE[this.current][input] !== undefined;
  }

  /** Applies `input`; false (and no change) when the table has no row for it. */
  apply(input: SlotInput): boolean {
    const next = SLOT_TABLE[this.current][input];
    if (next === undefined) return false;
    this.current = next;
    return true;
  }
}
