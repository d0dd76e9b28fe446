// What every delivering handler shares: a bounded backlog of serialised events, a pump that
// sends them in batches (one JSON array per batch when grouping, else one event per
// message), and retries with back-off while the other end is away. Memory is bounded by the
// backlog: an event that finds it full is dropped and counted, never queued.
import type { Logger } from 'pino';

import type { JanusEvent } from './JanusEvents.js';
import { eventMaskNames } from './JanusEvents.js';
import type { EventHandler, EventHandlerStatus } from './EventBus.js';

/** First retry after a failed delivery (Janus sampleevh's retransmissions_backoff), doubled each time. */
const INITIAL_BACKOFF_MS = 100;
/**
 * Retries never wait longer: a collector back after an outage gets its backlog within this,
 * and an attempt on a closed port costs one refused connection.
 */
const MAX_BACKOFF_MS = 2000;
/** Events per delivery: one POST or one MQTT message when grouping. */
export const MAX_BATCH_EVENTS = 100;

/**
 * The pump's states:
 * - idle: nothing waiting.
 * - sending: a batch is out; its result decides what comes next.
 * - backing-off: the last attempt failed; a timer brings the next.
 * - closed: terminal; nothing is sent any more.
 */
type PumpState = 'idle' | 'sending' | 'backing-off' | 'closed';
type PumpInput = 'queued' | 'empty' | 'failed' | 'retry' | 'close';

const PUMP_TRANSITIONS: Readonly<Record<PumpState, Readonly<Partial<Record<PumpInput, PumpState>>>>> = {
  idle: { queued: 'sending', close: 'closed' },
  sending: { queued: 'sending', empty: 'idle', failed: 'backing-off', close: 'closed' },
  'backing-off': { retry: 'sending', close: 'closed' },
  closed: {},
};

/** A FIFO with a fixed capacity; taking from the front is O(1) (the array is compacted now and then). */
export class Backlog<T> {
  private items: T[] = [];
  private head = 0;

  constructor(readonly capacity: number) {}

  get length(): number {
    return this.items.length - this.head;
  }

  /** False (and nothing kept) when full. */
  push(item: T): boolean {
    if (this.length >= this.capacity) return false;
    this.items.push(item);
    return true;
  }

  /** The first `n` items, left in place. */
  peek(n: number): T[] {
    return this.items.slice(this.head, this.head + n);
  }

  /** Removes the first `n` items. */
  drop(n: number): void {
    this.head = Math.min(this.items.length, this.head + n);
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
  }

  clear(): number {
    const n = this.length;
    this.items = [];
    this.head = 0;
    return n;
  }
}

export interface QueuedHandlerOptions {
  handler: string;
  target: string;
  mask: number;
  grouping: boolean;
  maxBacklog: number;
  logger: Logger;
}

/** How far one delivery attempt got: the first `delivered` events of the batch are through. */
export interface DeliveryResult {
  delivered: number;
  error?: string;
}

export abstract class QueuedEventHandler implements EventHandler {
  readonly mask: number;
  private state: PumpState = 'idle';
  private readonly backlog: Backlog<string>;
  private backoffMs = INITIAL_BACKOFF_MS;
  private retryTimer: NodeJS.Timeout | null = null;
  private sent = 0;
  private dropped = 0;
  private failedAttempts = 0;
  private lastError: string | null = null;
  private lastAttemptOk = true;
  /** Resolved when the backlog empties (close waits on it). */
  private drainedWaiters: Array<() => void> = [];
  protected readonly logger: Logger;

  protected constructor(protected readonly options: QueuedHandlerOptions) {
    this.mask = options.mask;
    this.backlog = new Backlog(options.maxBacklog);
    this.logger = options.logger;
  }

  /** Sends a batch of serialised events: as one JSON array when grouping, else one message each, in order. */
  protected abstract deliver(batch: string[], grouping: boolean): Promise<DeliveryResult>;

  /** Whether the other end can be reached now (a broker connection, say); default: the last attempt went through. */
  protected reachable(): boolean {
    return this.lastAttemptOk;
  }

  /** Stops anything in flight (closing). */
  protected abstract abort(): void;

  start(): void {}

  accept(event: JanusEvent): void {
    if (this.state === 'closed') return;
    let text: string;
    try {
      text = JSON.stringify(event);
    } catch (err) {
      // Bodies are JSON already; should one not be, it is counted, never thrown into the core.
      this.dropped++;
      this.logger.warn({ handler: this.options.handler, err }, 'event not serialisable: dropped');
      return;
    }
    if (!this.backlog.push(text)) {
      // The first drop of an outage is worth a line; the rest are counted.
      if (this.dropped++ === 0 || this.dropped % 10_000 === 0) {
        this.logger.warn({ handler: this.options.handler, dropped: this.dropped, max_backlog: this.options.maxBacklog }, 'event handler backlog full: events dropped');
      }
      return;
    }
    if (this.state === 'idle') this.sendNext('queued');
  }

  private apply(input: PumpInput): boolean {
    const next = PUMP_TRANSITIONS[this.state][input];
    if (next === undefined) return false;
    this.state = next;
    return true;
  }

  /** Takes the next batch out (the pump is in `sending` afterwards until it settles). */
  private sendNext(input: 'queued' | 'retry'): void {
    if (!this.apply(input)) return;
    const batch = this.backlog.peek(MAX_BATCH_EVENTS);
    this.deliver(batch, this.options.grouping).then(
      (result) => this.settle(batch.length, result),
      (err: unknown) => this.settle(batch.length, { delivered: 0, error: err instanceof Error ? err.message : String(err) }),
    );
  }

  private settle(batchSize: number, result: DeliveryResult): void {
    if (this.state !== 'sending') return; // closed meanwhile: the batch was counted then
    const delivered = Math.max(0, Math.min(batchSize, result.delivered));
    this.backlog.drop(delivered);
    this.sent += delivered;
    if (delivered === batchSize && result.error === undefined) {
      this.lastAttemptOk = true;
      this.backoffMs = INITIAL_BACKOFF_MS;
      if (this.backlog.length > 0) {
        this.sendNext('queued');
      } else {
        this.apply('empty');
        this.notifyDrained();
      }
      return;
    }
    this.failedAttempts++;
    if (this.lastAttemptOk) this.logger.warn({ handler: this.options.handler, target: this.options.target, error: result.error }, 'event handler cannot deliver; retrying with back-off');
    this.lastAttemptOk = false;
    this.lastError = result.error ?? 'partial delivery';
    this.apply('failed');
    const wait = this.backoffMs;
    this.backoffMs = Math.min(MAX_BACKOFF_MS, this.backoffMs * 2);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.sendNext('retry');
    }, wait);
    this.retryTimer.unref();
  }

  private notifyDrained(): void {
    const waiters = this.drainedWaiters;
    this.drainedWaiters = [];
    for (const w of waiters) w();
  }

  status(): EventHandlerStatus {
    return {
      handler: this.options.handler,
      target: this.options.target,
      events: eventMaskNames(this.mask),
      grouping: this.options.grouping,
      connected: this.state !== 'closed' && this.reachable(),
      backlog: this.backlog.length,
      max_backlog: this.options.maxBacklog,
      sent: this.sent,
      dropped: this.dropped,
      failed_attempts: this.failedAttempts,
      last_error: this.lastError,
    };
  }

  async close(graceMs: number): Promise<void> {
    if (this.state === 'closed') return;
    if (this.backlog.length > 0 && graceMs > 0) {
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        this.drainedWaiters.push(resolve);
        // Not unref'd: a process shutting down waits this long (at most) for the last events.
        timer = setTimeout(resolve, graceMs);
        // Waiting out a back-off would spend the grace doing nothing: try now.
        if (this.state === 'backing-off' && this.retryTimer) {
          clearTimeout(this.retryTimer);
          this.retryTimer = null;
          this.sendNext('retry');
        }
      });
      clearTimeout(timer);
    }
    this.apply('close');
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    const left = this.backlog.clear();
    if (left > 0) {
      this.dropped += left;
      this.logger.warn({ handler: this.options.handler, dropped: left }, 'event handler closed with events undelivered');
    }
    this.notifyDrained();
    this.abort();
  }
}
