/**
 * The UA core's retransmission of a 2xx to an INVITE (RFC 3261 §13.3.1.4).
 * It lives outside the INVITE server transaction (Transactions.ts) because a
 * 2xx terminates that transaction (§17.2.1); the core keeps sending the 2xx
 * until the ACK, which has a branch of its own, arrives.
 */
import type { Clock, Timer } from '../time/Clock.js';
import type { SipResponse } from './SipMessage.js';
import type { TimerConfig } from './Transactions.js';

export type OkRetransmitState = 'waitingAck' | 'acked' | 'timedOut';
export type OkRetransmitInput = 'timer' | 'ack' | 'giveUp';
export const OK_RETRANSMIT_TABLE: Record<OkRetransmitState, Partial<Record<OkRetransmitInput, OkRetransmitState>>> = {
  waitingAck: { timer: 'waitingAck', ack: 'acked', giveUp: 'timedOut' },
  acked: {},
  timedOut: {},
};

/**
 * §13.3.1.4: the UAS core retransmits its 2xx at T1, doubling up to T2, until
 * the ACK arrives; after 64*T1 without ACK it gives up (and should send BYE).
 * On a reliable transport the 2xx is sent once but the ACK is still awaited.
 */
export class InviteOkRetransmitter {
  state: OkRetransmitState = 'waitingAck';
  private interval: number;
  private retransmitTimer?: Timer;
  private giveUpTimer: Timer;

  constructor(
    private readonly ok: SipResponse,
    private readonly transmit: (res: SipResponse) => void,
    private readonly clock: Clock,
    private readonly config: TimerConfig,
    reliable: boolean,
    private readonly onNoAck: () => void,
  ) {
    this.interval = config.t1;
    transmit(ok);
    if (!reliable) this.retransmitTimer = clock.setTimeout(() => this.step('timer'), this.interval);
    this.giveUpTimer = clock.setTimeout(() => this.step('giveUp'), 64 * config.t1);
  }

  /** The ACK for this 2xx arrived. */
  acked(): void {
    this.step('ack');
  }

  /** Stops without an ACK (e.g. the call was torn down). */
  cancel(): void {
    this.retransmitTimer?.cancel();
    this.giveUpTimer.cancel();
  }

  private step(input: OkRetransmitInput): void {
    const next = OK_RETRANSMIT_TABLE[this.state][input];
    if (!next) return;
    this.state = next;
    if (input === 'timer') {
      this.transmit(this.ok);
      this.interval = Math.min(2 * this.interval, this.config.t2);
      this.retransmitTimer = this.clock.setTimeout(() => this.step('timer'), this.interval);
      return;
    }
    this.cancel();
    if (input === 'giveUp') this.onNoAck();
  }
}
