/**
 * Per-session queue of outgoing events for clients that fetch them by HTTP
 * long poll (or whose WebSocket is gone, awaiting a `claim`). Events stay
 * queued until a poll takes them, so nothing is lost between polls; the queue
 * is bounded so a client that never polls cannot exhaust memory.
 */
import type { Clock, Timer } from '../time/Clock.js';
import type { JsonObject } from './Json.js';

interface Waiter {
  maxev: number;
  done: (events: JsonObject[]) => void;
  timer: Timer;
}

export class EventQueue {
  private events: JsonObject[] = [];
  private waiters: Waiter[] = [];
  private flushScheduled = false;
  private closed = false;

  constructor(
    private readonly clock: Clock,
    private readonly limit: number,
    /** Called once per event dropped because the queue was full (oldest first). */
    private readonly onDrop: () => void,
  ) {}

  get length(): number {
    return this.events.length;
  }

  get waiterCount(): number {
    return this.waiters.length;
  }

  push(event: JsonObject): void {
    if (this.closed) return;
    this.events.push(event);
    while (this.events.length > this.limit) {
      this.events.shift();
      this.onDrop();
    }
    this.scheduleFlush();
  }

  /**
   * Long poll: `done` gets 1..maxev events as soon as any are queued, or an
   * empty list after `keepaliveMs` (the transport then answers a keepalive).
   * Returns a cancel function for when the HTTP client goes away first.
   */
  poll(maxev: number, keepaliveMs: number, done: (events: JsonObject[]) => void): () => void {
    if (this.closed) {
      done([]);
      return () => {};
    }
    if (this.events.length > 0 && this.waiters.length === 0) {
      done(this.events.splice(0, maxev));
      return () => {};
    }
    const waiter: Waiter = {
      maxev,
      done,
      timer: this.clock.setTimeout(() => {
        this.removeWaiter(waiter);
        done([]);
      }, keepaliveMs),
    };
    this.waiters.push(waiter);
    return () => {
      if (this.removeWaiter(waiter)) waiter.timer.cancel();
    };
  }

  /** Takes every queued event (used to hand the backlog to a claiming WebSocket). */
  drain(): JsonObject[] {
    return this.events.splice(0, this.events.length);
  }

  /**
   * Session over: pending polls are answered now, with `finalEvent` (e.g. the
   * `timeout` notification) if given, so no poll hangs on a dead session.
   */
  close(finalEvent?: JsonObject): void {
    if (this.closed) return;
    if (finalEvent) this.events.push(finalEvent);
    this.flush();
    this.closed = true;
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) {
      w.timer.cancel();
      w.done([]);
    }
    this.events = [];
  }

  private removeWaiter(waiter: Waiter): boolean {
    const i = this.waiters.indexOf(waiter);
    if (i < 0) return false;
    this.waiters.splice(i, 1);
    return true;
  }

  private scheduleFlush(): void {
    if (this.flushScheduled || this.waiters.length === 0) return;
    this.flushScheduled = true;
    // A microtask lets a burst of synchronous pushes reach one poll together (maxev > 1).
    queueMicrotask(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    while (this.waiters.length > 0 && this.events.length > 0) {
      const w = this.waiters.shift();
      if (!w) break;
      w.timer.cancel();
      w.done(this.events.splice(0, w.maxev));
    }
  }
}
