//! Receiver-side loss accounting for one RTP stream (RFC 3550 §6.4.1 and
//! Appendix A.1/A.3): extended highest sequence number, packets expected and
//! received, per reporting interval. Used for `slowlink` on what a peer sends.

/// RFC 3550 A.1: a jump larger than this is a restart, not loss.
const MAX_DROPOUT: u16 = 3000;
/// RFC 3550 A.1: packets this far behind the highest are reordered or duplicated.
const MAX_MISORDER: u16 = 100;

#[derive(Debug, Default, Clone)]
pub struct ReceptionStats {
    /// Extended sequence number of the first packet (cycles << 16 | seq).
    base: Option<u64>,
    /// Extended highest sequence number received.
    highest: u64,
    received: u64,
    expected_prior: u64,
    received_prior: u64,
}

/// One interval's figures (RFC 3550 A.3): packets expected and lost since the last `take_interval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntervalLoss {
    pub expected: u32,
    pub lost: u32,
}

impl ReceptionStats {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn update(&mut self, seq: u16) {
        let Some(_) = self.base else {
            self.base = Some(u64::from(seq));
            self.highest = u64::from(seq);
            self.received = 1;
            return;
        };
        let max = self.highest as u16;
        let delta = seq.wrapping_sub(max);
        if delta == 0 {
            return; // duplicate of the highest
        }
        if delta < MAX_DROPOUT {
            // In order, possibly with a gap: advance (wrapping into the next cycle when it does).
            self.highest += u64::from(delta);
            self.received += 1;
        } else if delta <= u16::MAX - MAX_MISORDER {
            // A large jump: the sender restarted its sequence; start counting again from here.
            self.base = Some(u64::from(seq));
            self.highest = u64::from(seq);
            self.received = 1;
            self.expected_prior = 0;
            self.received_prior = 0;
        } else {
            // Reordered or duplicate within the misorder window: counts as received.
            self.received += 1;
        }
    }

    /// Packets expected and lost since the previous call (RFC 3550 A.3); lost never negative.
    pub fn take_interval(&mut self) -> IntervalLoss {
        let Some(base) = self.base else { return IntervalLoss { expected: 0, lost: 0 } };
        let expected = self.highest - base + 1;
        let expected_interval = expected.saturating_sub(self.expected_prior);
        let received_interval = self.received.saturating_sub(self.received_prior);
        self.expected_prior = expected;
        self.received_prior = self.received;
        let lost = expected_interval.saturating_sub(received_interval);
        IntervalLoss { expected: expected_interval.min(u64::from(u32::MAX)) as u32, lost: lost.min(u64::from(u32::MAX)) as u32 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_gaps_per_interval() {
        let mut r = ReceptionStats::new();
        for seq in 100..200u16 {
            if seq % 4 != 0 {
                r.update(seq);
            }
        }
        // 99 expected after the first (seq 100 is skipped: the first packet is 101).
        let i = r.take_interval();
        assert_eq!(i.expected, 99);
        assert_eq!(i.lost, 24);
        for seq in 200..300u16 {
            r.update(seq);
        }
        assert_eq!(r.take_interval(), IntervalLoss { expected: 100, lost: 0 });
        assert_eq!(r.take_interval(), IntervalLoss { expected: 0, lost: 0 });
    }

    #[test]
    fn wraps_and_tolerates_reordering_and_duplicates() {
        let mut r = ReceptionStats::new();
        for seq in 65_500..=65_535u16 {
            r.update(seq);
        }
        for seq in 0..100u16 {
            r.update(seq);
            if seq % 10 == 0 {
                r.update(seq.wrapping_sub(2)); // a late one
                r.update(seq); // a duplicate of the highest
            }
        }
        let i = r.take_interval();
        assert_eq!(i.expected, 136);
        assert_eq!(i.lost, 0, "late and duplicate packets never make loss negative or positive");
    }

    #[test]
    fn a_restart_is_not_loss() {
        let mut r = ReceptionStats::new();
        for seq in 1000..1100u16 {
            r.update(seq);
        }
        r.take_interval();
        for seq in 40_000..40_050u16 {
            r.update(seq);
        }
        assert_eq!(r.take_interval(), IntervalLoss { expected: 50, lost: 0 });
    }

    #[test]
    fn random_sequences_never_panic() {
        let mut r = ReceptionStats::new();
        let mut x: u32 = 12345;
        for _ in 0..200_000 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            r.update((x >> 8) as u16);
            if x % 1000 == 0 {
                let i = r.take_interval();
                assert!(i.lost <= i.expected);
            }
        }
    }
}
