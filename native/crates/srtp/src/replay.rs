//! Packet index estimation (RFC 3711 §3.3.1, Appendix A) and the replay
//! window (RFC 3711 §3.3.2).

use crate::SrtpError;

/// Largest SRTP packet index: 48 bits (32-bit ROC || 16-bit SEQ).
#[cfg(test)]
pub(crate) const MAX_RTP_INDEX: u64 = (1 << 48) - 1;
/// Largest SRTCP index: 31 bits (RFC 3711 §3.4).
pub(crate) const MAX_RTCP_INDEX: u32 = (1 << 31) - 1;

/// Estimates the 48-bit index of a packet carrying `seq`, given the highest
/// index `highest` seen so far in the stream (RFC 3711 Appendix A).
///
/// The guess is the candidate ROC (ROC-1, ROC, ROC+1) that puts the packet
/// within half the sequence space of s_l. A loss burst of up to 32767 packets
/// across a wrap is therefore followed correctly.
///
/// Returns `TooOld` when the guess is ROC-1 with ROC = 0 (the packet would
/// precede the stream's first index) and `Replayed` when ROC+1 overflows
/// 32 bits (the index space is spent; RFC 3711 §9.2 requires a re-key).
pub(crate) fn estimate_rtp_index(highest: u64, seq: u16) -> Result<u64, SrtpError> {
    let roc = (highest >> 16) as i64;
    let s_l = (highest & 0xffff) as i64;
    let seq_wide = i64::from(seq);
    let guessed_roc = if s_l < 32768 {
        if seq_wide - s_l > 32768 {
            roc - 1
        } else {
            roc
        }
    } else if s_l - 32768 > seq_wide {
        roc + 1
    } else {
        roc
    };
    if guessed_roc < 0 {
        return Err(SrtpError::TooOld);
    }
    if guessed_roc > i64::from(u32::MAX) {
        return Err(SrtpError::Replayed);
    }
    Ok(((guessed_roc as u64) << 16) | u64::from(seq))
}

/// Sliding window over the most recent packet indices (RFC 3711 §3.3.2).
///
/// Bit `n` of `seen` records whether index `highest - n` has been accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ReplayWindow {
    highest: u64,
    seen: u128,
}

impl ReplayWindow {
    /// Window width in packets; RFC 3711 §3.3.2 asks for at least 64.
    pub(crate) const WIDTH: u64 = 128;

    /// A window whose only accepted index is `first`.
    pub(crate) fn starting_at(first: u64) -> Self {
        ReplayWindow {
            highest: first,
            seen: 1,
        }
    }

    /// The highest index accepted so far (s_l together with the ROC).
    pub(crate) fn highest(&self) -> u64 {
        self.highest
    }

    /// Whether `index` may be accepted; changes nothing.
    pub(crate) fn check(&self, index: u64) -> Result<(), SrtpError> {
        if index > self.highest {
            return Ok(());
        }
        let behind = self.highest - index;
        if behind >= Self::WIDTH {
            return Err(SrtpError::TooOld);
        }
        if self.seen & (1u128 << behind) != 0 {
            return Err(SrtpError::Replayed);
        }
        Ok(())
    }

    /// Records `index` as accepted. Call only after `check` and authentication
    /// succeeded, so a forged packet can never move the window.
    pub(crate) fn commit(&mut self, index: u64) {
        if index > self.highest {
            let advance = index - self.highest;
            self.seen = if advance >= Self::WIDTH {
                0
            } else {
                self.seen << advance
            };
            self.seen |= 1;
            self.highest = index;
        } else {
            let behind = self.highest - index;
            if behind < Self::WIDTH {
                self.seen |= 1u128 << behind;
            }
        }
    }

    /// Moves the highest index forward without marking anything seen; used by
    /// the sending side, which tracks only s_l and the ROC.
    pub(crate) fn advance_to(&mut self, index: u64) {
        if index > self.highest {
            self.commit(index);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimation_follows_appendix_a() {
        // Same ROC in the middle of the space.
        assert_eq!(estimate_rtp_index(1000, 1001), Ok(1001));
        assert_eq!(estimate_rtp_index(1000, 900), Ok(900));
        // Forward across the wrap: s_l high, seq low -> ROC + 1.
        assert_eq!(estimate_rtp_index(65_400, 164), Ok((1 << 16) | 164));
        // Late packet from before the wrap: s_l low, seq high -> ROC - 1.
        assert_eq!(estimate_rtp_index((1 << 16) | 10, 65_530), Ok(65_530));
        // ROC - 1 with ROC = 0 precedes the stream.
        assert_eq!(estimate_rtp_index(10, 65_530), Err(SrtpError::TooOld));
        // Boundaries: exactly half the space away stays in the same ROC.
        assert_eq!(estimate_rtp_index(100, 32_868), Ok(32_868));
        assert_eq!(estimate_rtp_index(100, 32_869), Err(SrtpError::TooOld));
        assert_eq!(estimate_rtp_index(40_000, 7232), Ok(7232));
        assert_eq!(estimate_rtp_index(40_000, 7231), Ok((1 << 16) | 7231));
        // ROC overflow.
        assert_eq!(
            estimate_rtp_index(MAX_RTP_INDEX, 0),
            Err(SrtpError::Replayed)
        );
    }

    #[test]
    fn window_rejects_replays_and_old_indices() {
        let mut window = ReplayWindow::starting_at(500);
        assert_eq!(window.check(500), Err(SrtpError::Replayed));
        assert_eq!(window.check(499), Ok(()));
        window.commit(499);
        assert_eq!(window.check(499), Err(SrtpError::Replayed));
        window.commit(600);
        assert_eq!(window.highest(), 600);
        assert_eq!(window.check(500), Err(SrtpError::Replayed));
        assert_eq!(window.check(499), Err(SrtpError::Replayed));
        assert_eq!(window.check(473), Ok(()));
        assert_eq!(window.check(472), Err(SrtpError::TooOld));
        assert_eq!(window.check(601), Ok(()));
        window.commit(10_000);
        assert_eq!(window.check(600), Err(SrtpError::TooOld));
        assert_eq!(window.check(9_999), Ok(()));
        assert_eq!(window.check(10_000), Err(SrtpError::Replayed));
    }
}
