/**
 * Time source for everything that expires (session timeouts, long-poll
 * keepalives, reclaim windows). Injected so tests drive time explicitly
 * instead of sleeping against wall-clock thresholds.
 */
export interface Timer {
  cancel(): void;
}

export interface Clock {
  /** Milliseconds on a monotonic-enough scale; only differences matter. */
  now(): number;
  setTimeout(fn: () => void, ms: number): Timer;
  setInterval(fn: () => void, ms: number): Timer;
}

/** Real time. Timers are unref'd: a pending timeout must never keep the process alive. */
export class SystemClock implements Clock {
  now(): number {
    return performance.now();
  }

  setTimeout(fn: () => void, ms: number): Timer {
    const t = globalThis.setTimeout(fn, ms);
    t.unref();
    return { cancel: () => globalThis.clearTimeout(t) };
  }

  setInterval(fn: () => void, ms: number): Timer {
    const t = globalThis.setInterval(fn, ms);
    t.unref();
    return { cancel: () => globalThis.clearInterval(t) };
  }
}

interface ManualTimer {
  due: number;
  seq: number;
  period: number; // 0 for one-shot
  fn: () => void;
  cancelled: boolean;
}

/**
 * Test clock: time moves only when `advance()` is called; due timers fire in
 * due-time order (ties in creation order), including timers they schedule.
 */
export class ManualClock implements Clock {
  private current: number;
  private seq = 0;
  private timers: ManualTimer[] = [];

  constructor(start = 1_000_000) {
    this.current = start;
  }

  now(): number {
    return this.current;
  }

  setTimeout(fn: () => void, ms: number): Timer {
    return this.add(fn, ms, 0);
  }

  setInterval(fn: () => void, ms: number): Timer {
    return this.add(fn, ms, Math.max(1, ms));
  }

  /** Number of live timers, so tests can assert nothing leaks. */
  get pendingTimers(): number {
    return this.timers.filter((t) => !t.cancelled).length;
  }

  /** Moves time forward by `ms`, firing every timer that falls due on the way. */
  advance(ms: number): void {
    const target = this.current + Math.max(0, ms);
    // Bounded: each iteration fires one timer; a periodic timer with period >= 1
    // can fire at most ms times, so cap generously and fail loudly if exceeded.
    for (let guard = 0; guard < 10_000_000; guard++) {
      this.timers = this.timers.filter((t) => !t.cancelled);
      let next: ManualTimer | undefined;
      for (const t of this.timers) {
        if (t.due <= target && (!next || t.due < next.due || (t.due === next.due && t.seq < next.seq))) next = t;
      }
      if (!next) break;
      this.current = Math.max(this.current, next.due);
      if (next.period > 0) {
        next.due += next.period;
        next.seq = this.seq++;
      } else {
        next.cancelled = true;
      }
      next.fn();
    }
    this.current = target;
  }

  private add(fn: () => void, ms: number, period: number): Timer {
    const timer: ManualTimer = { due: this.current + Math.max(0, ms), seq: this.seq++, period, fn, cancelled: false };
    this.timers.push(timer);
    return { cancel: () => { timer.cancelled = true; } };
  }
}
