//! When a media thread that is handed packets by other threads asks them to wake it, and when
//! it wakes on its own instead.
//!
//! Waking a thread that sleeps in `epoll_wait` costs both threads: the producer's eventfd write
//! sends an inter-processor interrupt and the sleeper's CPU leaves its idle state. Measured on
//! the 2-vCPU KVM guest this project is built on, that is 10–16 µs of CPU on each side per
//! wake (a few µs on bare metal). A thread handed packets in more than one burst per
//! millisecond therefore pays less by waking itself once per [`COALESCE_MS`]: producers then
//! skip the wake unless its queue holds [`WAKE_AT_DEPTH`] packets, and a handed-over packet
//! waits at most one window. A thread handed packets rarely keeps being woken at once, so
//! quiet rooms add no latency and no idle wake-ups.
//!
//! Sans-IO: the worker reports each sleep's outcome with the time; this decides the mode.

/// How long a coalescing thread sleeps at most, in ms (epoll's unit).
pub const COALESCE_MS: i32 = 1;
/// A producer wakes a coalescing thread anyway once its queue holds this many packets, so a
/// burst is not held back (the queue holds 4096).
pub const WAKE_AT_DEPTH: usize = 256;
/// Sleeps are counted over periods this long: short, so a load step changes the mode within
/// a few tens of ms; the gap between the two thresholds keeps it from flapping.
const PERIOD_US: u64 = 20_000;
/// Entering: more than 1.5 sleeps per ms ended with packets handed over (a coalescing thread
/// wakes about once per ms, so it would be woken less).
const ENTER_AT: u32 = 30;
/// Leaving: fewer than one sleep in two ms ended with packets handed over.
const LEAVE_BELOW: u32 = 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WakeMode {
    /// Producers wake the thread as soon as they hand it packets.
    Immediate,
    /// The thread wakes itself every [`COALESCE_MS`]; producers wake it only for a deep queue.
    Coalescing,
}

/// The transition table, applied at the end of each period to the count of sleeps that ended
/// with packets waiting.
fn next_mode(mode: WakeMode, handed_wakes: u32) -> WakeMode {
    match mode {
        WakeMode::Immediate if handed_wakes > ENTER_AT => WakeMode::Coalescing,
        WakeMode::Coalescing if handed_wakes < LEAVE_BELOW => WakeMode::Immediate,
        unchanged => unchanged,
    }
}

#[derive(Debug)]
pub struct HandoverWakes {
    mode: WakeMode,
    period_start_us: u64,
    handed_wakes: u32,
    /// Mode changes so far (for stats).
    pub switches: u64,
}

impl HandoverWakes {
    pub fn new(now_us: u64) -> Self {
        Self { mode: WakeMode::Immediate, period_start_us: now_us, handed_wakes: 0, switches: 0 }
    }

    pub fn mode(&self) -> WakeMode {
        self.mode
    }

    /// The longest sleep this thread may take when nothing is queued for it.
    pub fn sleep_ms(&self, idle_ms: i32) -> i32 {
        match self.mode {
            WakeMode::Immediate => idle_ms,
            WakeMode::Coalescing => COALESCE_MS.min(idle_ms),
        }
    }

    /// The thread slept (a wait that could block) and woke at `now_us`; `handed` says whether
    /// packets from other threads were waiting.
    pub fn after_sleep(&mut self, handed: bool, now_us: u64) {
        if handed {
            self.handed_wakes = self.handed_wakes.saturating_add(1);
        }
        if now_us.saturating_sub(self.period_start_us) >= PERIOD_US {
            let next = next_mode(self.mode, self.handed_wakes);
            if next != self.mode {
                self.switches += 1;
                self.mode = next;
            }
            self.period_start_us = now_us;
            self.handed_wakes = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `wakes_per_ms` sleeps per ms for `ms` ms, each ending with packets when `handed`.
    fn run(w: &mut HandoverWakes, start_us: u64, ms: u64, wakes_per_ms: u64, handed: bool) -> u64 {
        let mut now = start_us;
        for _ in 0..ms * wakes_per_ms {
            now += 1000 / wakes_per_ms;
            w.after_sleep(handed, now);
        }
        now
    }

    #[test]
    fn frequent_handovers_coalesce_and_quiet_ones_do_not() {
        let mut w = HandoverWakes::new(0);
        assert_eq!(w.sleep_ms(200), 200);
        // 3 wakes per ms with packets: coalescing after one period.
        let now = run(&mut w, 0, 150, 3, true);
        assert_eq!(w.mode(), WakeMode::Coalescing);
        assert_eq!(w.sleep_ms(200), COALESCE_MS);
        // Coalescing wakes about once per ms, each finding packets: it stays.
        let now = run(&mut w, now, 300, 1, true);
        assert_eq!(w.mode(), WakeMode::Coalescing);
        // The producers stop: its own wakes find nothing, and it leaves within two periods.
        let now = run(&mut w, now, 250, 1, false);
        assert_eq!(w.mode(), WakeMode::Immediate);
        assert_eq!(w.switches, 2);
        // Between the thresholds the mode holds: one burst per ms does not bring it back.
        run(&mut w, now, 2000, 1, true);
        assert_eq!(w.mode(), WakeMode::Immediate);
        // One publisher's few hundred packets a second never make a thread coalesce.
        let mut quiet = HandoverWakes::new(0);
        let mut t = 0;
        for _ in 0..400 {
            t += 5000; // one burst per 5 ms
            quiet.after_sleep(true, t);
        }
        assert_eq!(quiet.mode(), WakeMode::Immediate);
        assert_eq!(quiet.switches, 0);
    }

    #[test]
    fn hysteresis_holds_between_the_thresholds() {
        for (mode, count, expected) in [
            (WakeMode::Immediate, ENTER_AT, WakeMode::Immediate),
            (WakeMode::Immediate, ENTER_AT + 1, WakeMode::Coalescing),
            (WakeMode::Coalescing, LEAVE_BELOW, WakeMode::Coalescing),
            (WakeMode::Coalescing, LEAVE_BELOW - 1, WakeMode::Immediate),
            (WakeMode::Coalescing, 20, WakeMode::Coalescing),
            (WakeMode::Immediate, 20, WakeMode::Immediate),
        ] {
            assert_eq!(next_mode(mode, count), expected, "{mode:?} with {count}");
        }
    }
}
