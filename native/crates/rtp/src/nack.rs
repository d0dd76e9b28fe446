//! Asking a sender again for what did not arrive (RFC 4585 §6.2.1 generic NACK), sans-IO.
//!
//! The receiving side of one RTP stream: it is told each sequence number that arrives and
//! the time; [`NackGenerator::poll`] says which missing numbers to NACK now. A number is
//! NACKed as soon as a later one shows it missing, then again every retry interval (about
//! one round trip, so a retransmission in flight is not asked for twice), up to
//! [`MAX_RETRIES`] times or until it is older than [`MAX_AGE_US`]; then it is given up.
//! The round trip is learnt from the repairs themselves: a packet NACKed once that then
//! arrives took one round trip (Karn's rule, RFC 6298 §3: retried ones are ambiguous).
//! Nothing is allocated per packet: missing numbers live in a ring of fixed size.

/// NACKs per missing packet before giving up (werift and libwebrtc use about 10).
pub const MAX_RETRIES: u8 = 10;
/// A missing packet older than this is no use to a receiver's jitter buffer: give up.
pub const MAX_AGE_US: u64 = 1_000_000;
/// Missing packets tracked at once; a larger hole is a stream restart or a long outage, not
/// loss worth repairing packet by packet.
pub const MAX_MISSING: usize = 512;
/// Retry interval without an RTT measurement, and the floor under a measured one.
const DEFAULT_RTT_US: u64 = 100_000;
const MIN_RETRY_US: u64 = 10_000;
/// A forward jump larger than this is a restart of the sender's numbering: start afresh.
const MAX_JUMP: i64 = 3000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Missing {
    ext: i64,
    first_seen_us: u64,
    /// When it was last NACKed; `None` before the first NACK.
    sent_us: Option<u64>,
    retries: u8,
}

/// What the generator did, for counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NackStats {
    /// Sequence numbers put in NACKs (each retry counts).
    pub requested: u64,
    /// Missing packets that arrived after all (repaired or just late).
    pub recovered: u64,
    /// Missing packets given up on.
    pub given_up: u64,
}

#[derive(Debug, Clone)]
pub struct NackGenerator {
    /// Highest sequence number seen, extended (wrap-counting).
    highest: Option<(u16, i64)>,
    /// Missing packets, oldest first (ascending ext); a ring used as a deque.
    missing: Vec<Missing>,
    head: usize,
    len: usize,
    rtt_us: u64,
    /// Whether `rtt_us` was measured (else the default or what `set_rtt_us` gave).
    rtt_measured: bool,
    stats: NackStats,
}

impl Default for NackGenerator {
    fn default() -> Self {
        Self::new()
    }
}

impl NackGenerator {
    pub fn new() -> Self {
        Self {
            highest: None,
            missing: vec![Missing { ext: 0, first_seen_us: 0, sent_us: None, retries: 0 }; MAX_MISSING],
            head: 0,
            len: 0,
            rtt_us: DEFAULT_RTT_US,
            rtt_measured: false,
            stats: NackStats::default(),
        }
    }

    /// The round-trip time to the sender (e.g. from RTCP SR/RR, RFC 3550 §6.4.1): retries wait that long.
    pub fn set_rtt_us(&mut self, rtt_us: u64) {
        self.rtt_us = rtt_us;
    }

    /// The round trip retries wait for: measured from repairs, or the default.
    pub fn rtt_us(&self) -> u64 {
        self.rtt_us
    }

    pub fn stats(&self) -> NackStats {
        self.stats
    }

    /// Missing packets now waiting (tests, diagnostics).
    pub fn pending(&self) -> usize {
        self.len
    }

    fn at(&self, i: usize) -> &Missing {
        &self.missing[(self.head + i) % MAX_MISSING]
    }

    fn at_mut(&mut self, i: usize) -> &mut Missing {
        &mut self.missing[(self.head + i) % MAX_MISSING]
    }

    fn push(&mut self, m: Missing) {
        if self.len == MAX_MISSING {
            self.pop_front();
            self.stats.given_up += 1;
        }
        let i = (self.head + self.len) % MAX_MISSING;
        self.missing[i] = m;
        self.len += 1;
    }

    fn pop_front(&mut self) {
        if self.len > 0 {
            self.head = (self.head + 1) % MAX_MISSING;
            self.len -= 1;
        }
    }

    fn remove(&mut self, i: usize) {
        // Shift the later entries down one (holes are rare and small).
        for k in i..self.len.saturating_sub(1) {
            let next = *self.at(k + 1);
            *self.at_mut(k) = next;
        }
        self.len -= 1;
    }

    fn clear(&mut self) {
        self.head = 0;
        self.len = 0;
    }

    /// A packet with sequence number `seq` arrived at `now_us`.
    pub fn on_packet(&mut self, seq: u16, now_us: u64) {
        let Some((highest, highest_ext)) = self.highest else {
            // Extended numbers start well above zero and stay congruent to the sequence number.
            self.highest = Some((seq, (1i64 << 32) + i64::from(seq)));
            return;
        };
        let delta = i64::from(seq.wrapping_sub(highest) as i16);
        let ext = highest_ext + delta;
        if delta > MAX_JUMP {
            // A restart of the numbering: what was missing will never come.
            self.stats.given_up += self.len as u64;
            self.clear();
            self.highest = Some((seq, ext));
            return;
        }
        if delta > 0 {
            // Everything between the old highest and this one is missing (RFC 3550 A.1 gap).
            let first = (highest_ext + 1).max(ext - MAX_MISSING as i64);
            self.stats.given_up += (first - (highest_ext + 1)) as u64;
            for missing in first..ext {
                self.push(Missing { ext: missing, first_seen_us: now_us, sent_us: None, retries: 0 });
            }
            self.highest = Some((seq, ext));
            return;
        }
        // Late or repaired: no longer missing.
        if let Some(i) = (0..self.len).find(|&i| self.at(i).ext == ext) {
            let m = *self.at(i);
            self.remove(i);
            self.stats.recovered += 1;
            if let (1, Some(sent)) = (m.retries, m.sent_us) {
                // Smoothed as RFC 6298 §2 does (gain 1/8); the first sample is taken as it is.
                let sample = now_us.saturating_sub(sent).max(1);
                self.rtt_us = if self.rtt_measured { (7 * self.rtt_us + sample) / 8 } else { sample };
                self.rtt_measured = true;
            }
        }
    }

    /// Sequence numbers to NACK now (appended to `out`), oldest first; gives up on what is
    /// too old or asked for too often.
    pub fn poll(&mut self, now_us: u64, out: &mut Vec<u16>) {
        // Give up from the front: the oldest are the ones that age out.
        while self.len > 0 {
            let m = *self.at(0);
            if now_us.saturating_sub(m.first_seen_us) > MAX_AGE_US || m.retries >= MAX_RETRIES {
                self.pop_front();
                self.stats.given_up += 1;
            } else {
                break;
            }
        }
        let interval = self.rtt_us.max(MIN_RETRY_US);
        for i in 0..self.len {
            let m = self.at_mut(i);
            let due = match m.sent_us {
                None => true,
                Some(sent) => now_us.saturating_sub(sent) >= interval,
            };
            if due && m.retries < MAX_RETRIES {
                m.sent_us = Some(now_us);
                m.retries += 1;
                out.push(m.ext as u16);
                self.stats.requested += 1;
            }
        }
    }

    /// When the next NACK may be due (for timers), if anything is missing.
    pub fn next_due_us(&self) -> Option<u64> {
        let interval = self.rtt_us.max(MIN_RETRY_US);
        (0..self.len).map(|i| self.at(i)).map(|m| m.sent_us.map_or(0, |s| s + interval)).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_follow_the_round_trip_learnt_from_repairs() {
        let mut g = NackGenerator::new();
        let mut t = 0u64;
        let mut seq = 0u16;
        // Every tenth packet is lost once and repaired 40 ms after its NACK.
        for _ in 0..50 {
            for _ in 0..10 {
                g.on_packet(seq, t);
                seq += 1;
                t += 1_000;
            }
            seq += 1; // lost
            g.on_packet(seq, t);
            seq += 1;
            assert_eq!(polled(&mut g, t), vec![seq - 2]);
            t += 40_000;
            g.on_packet(seq - 2, t);
        }
        assert!((39_000..=41_000).contains(&g.rtt_us()), "{}", g.rtt_us());
        // A loss now is asked for again after about 40 ms, not the default 100 ms.
        g.on_packet(seq + 1, t);
        assert_eq!(polled(&mut g, t), vec![seq]);
        assert!(polled(&mut g, t + 30_000).is_empty());
        assert_eq!(polled(&mut g, t + 41_000), vec![seq]);
    }

    fn polled(g: &mut NackGenerator, now: u64) -> Vec<u16> {
        let mut v = Vec::new();
        g.poll(now, &mut v);
        v
    }

    #[test]
    fn a_gap_is_nacked_at_once_then_retried_each_rtt_until_it_arrives() {
        let mut g = NackGenerator::new();
        g.set_rtt_us(50_000);
        for seq in [10u16, 11, 14] {
            g.on_packet(seq, 0);
        }
        assert_eq!(polled(&mut g, 1_000), vec![12, 13]);
        assert_eq!(polled(&mut g, 20_000), Vec::<u16>::new(), "not again within an RTT");
        g.on_packet(12, 30_000); // repaired
        assert_eq!(polled(&mut g, 52_000), vec![13]);
        g.on_packet(13, 60_000);
        assert_eq!(g.pending(), 0);
        assert_eq!(g.stats(), NackStats { requested: 3, recovered: 2, given_up: 0 });
    }

    #[test]
    fn gives_up_after_max_retries_or_age() {
        let mut g = NackGenerator::new();
        g.set_rtt_us(1_000); // floor: 10 ms
        g.on_packet(1, 0);
        g.on_packet(3, 0);
        let mut asked = 0;
        for t in 0..20u64 {
            asked += polled(&mut g, t * 10_000).len();
        }
        assert_eq!(asked, MAX_RETRIES as usize);
        assert_eq!(g.pending(), 0);
        assert_eq!(g.stats().given_up, 1);
        // Age: never asked again after a second.
        g.on_packet(5, 2_000_000);
        assert_eq!(polled(&mut g, 2_000_000), vec![4]);
        assert_eq!(polled(&mut g, 3_100_000), Vec::<u16>::new());
        assert_eq!(g.pending(), 0);
    }

    #[test]
    fn wraps_and_ignores_duplicates_and_old_packets() {
        let mut g = NackGenerator::new();
        for seq in [65533u16, 65534, 1] {
            g.on_packet(seq, 0);
        }
        assert_eq!(polled(&mut g, 0), vec![65535, 0]);
        g.on_packet(65534, 1); // duplicate of one that arrived
        g.on_packet(65000, 1); // ancient
        assert_eq!(g.pending(), 2);
        g.on_packet(0, 2);
        g.on_packet(65535, 2);
        assert_eq!(g.pending(), 0);
    }

    #[test]
    fn a_restart_or_a_huge_hole_is_not_repaired_packet_by_packet() {
        let mut g = NackGenerator::new();
        g.on_packet(100, 0);
        g.on_packet(5_100, 0); // 5000 ahead: new numbering
        assert_eq!(g.pending(), 0);
        g.on_packet(5_100 + 2000, 0); // a big but plausible hole: only the last MAX_MISSING
        assert_eq!(g.pending(), MAX_MISSING);
        assert_eq!(g.stats().given_up, (1999 - MAX_MISSING) as u64);
        let mut v = Vec::new();
        g.poll(0, &mut v);
        assert_eq!(v.first().copied(), Some(5_100 + 2000 - MAX_MISSING as u16));
    }

    #[test]
    fn random_histories_never_panic_and_stay_bounded() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut rng = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut g = NackGenerator::new();
        let mut seq = 0u16;
        let mut out = Vec::new();
        for t in 0..200_000u64 {
            let r = rng();
            seq = match r % 10 {
                0 => seq.wrapping_add((r >> 8) as u16 % 40),
                1 => seq.wrapping_sub((r >> 8) as u16 % 40),
                2 => (r >> 16) as u16,
                _ => seq.wrapping_add(1),
            };
            g.on_packet(seq, t * 100);
            if r % 7 == 0 {
                out.clear();
                g.poll(t * 100, &mut out);
                assert!(out.len() <= MAX_MISSING);
            }
            assert!(g.pending() <= MAX_MISSING);
        }
    }
}
