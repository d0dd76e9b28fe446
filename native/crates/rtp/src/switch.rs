//! Sequence-number and timestamp rewriting for one output stream whose
//! source can change (what mediasoup splits into SeqManager and the
//! timestamp handling of RtpStreamSend).
//!
//! The receiver of an output sees ONE RTP stream: sequence numbers advance by
//! one per forwarded packet and timestamps never go backwards, although the
//! source feeding the output changes (a switch to another publisher, a
//! simulcast layer change, or two remote publishers that reuse an SSRC). A
//! change of *source identity* — not of SSRC — is what triggers a rebase
//! (lessons.md §4, Janus #3444).
//!
//! Rules:
//! - The very first packet ever keeps the source's own sequence number and
//!   timestamp (the source already chose random bases, RFC 3550 §5.1).
//! - The first packet of a new source (rebase) gets `last_out_seq + 1` and
//!   `max_out_ts + max(1, elapsed × clock_rate)`, where `elapsed` is the wall
//!   time since the last forwarded packet arrived, so timestamps advance
//!   plausibly with real time. The advance is capped at 2^30 ticks so it can
//!   never look like a step backwards in serial arithmetic.
//! - Later packets of that source: `out = in + offset` (mod 2^16 / 2^32), so
//!   the source's real loss gaps and reordering are preserved.
//! - [`SwitchingContext::skip`] of a packet newer than any seen shifts the
//!   sequence offset down by one, so the receiver sees no gap where a packet
//!   was deliberately not forwarded.
//! - Dropped: packets older than the current source's first packet (RFC 1982
//!   serial arithmetic on extended sequence numbers), duplicates of packets
//!   already forwarded or skipped, and packets more than [`MAX_LATE`] behind
//!   the newest one.
//! - Source restarts without a new id: a jump more than [`MAX_FORWARD_GAP`]
//!   ahead rebases at once; [`RESYNC_AFTER_STALE`] consecutive packets that
//!   are too far behind rebase on the last of them.
//!
//! The caller must pass only packets of the source it has currently selected
//! for this output: a different `source_id` *means* "the caller switched".

/// Packets further than this behind the newest packet of the current source
/// are dropped: their output sequence number would go backwards too far for
/// a receiver's jitter buffer to use them.
pub const MAX_LATE: i64 = 1000;
/// A forward jump larger than this within one source is treated as a source
/// restart: rebase rather than show the receiver thousands of lost packets.
pub const MAX_FORWARD_GAP: i64 = 3000;
/// This many consecutive packets more than [`MAX_LATE`] behind mean the source
/// restarted with lower sequence numbers; rebase on the last of them.
pub const RESYNC_AFTER_STALE: u32 = 8;
/// Cap of the wall-clock timestamp advance on a rebase (< 2^31 so the new
/// timestamp stays "after" the old one in serial arithmetic).
const MAX_TS_ADVANCE: u64 = 1 << 30;
const MICROS_PER_SECOND: u128 = 1_000_000;

/// Bits per recent extended sequence number; must exceed `MAX_LATE`.
const WINDOW_BITS: usize = 1024;
const WINDOW_WORDS: usize = WINDOW_BITS / 64;

/// Which recent sequence numbers of the current source were forwarded or
/// skipped ("handled"), and which of those were skipped in order (they
/// shifted the offset). Indexed by extended sequence number mod 1024; valid
/// for the 1024 numbers ending at the newest one.
#[derive(Debug, Clone)]
struct RecentWindow {
    handled: [u64; WINDOW_WORDS],
    skipped: [u64; WINDOW_WORDS],
}

impl RecentWindow {
    const fn new() -> Self {
        Self { handled: [0; WINDOW_WORDS], skipped: [0; WINDOW_WORDS] }
    }

    #[inline]
    fn position(ext: i64) -> (usize, u64) {
        let index = (ext as u64 as usize) % WINDOW_BITS;
        (index / 64, 1u64 << (index % 64))
    }

    #[inline]
    fn test(bits: &[u64; WINDOW_WORDS], ext: i64) -> bool {
        let (word, mask) = Self::position(ext);
        bits.get(word).is_some_and(|w| w & mask != 0)
    }

    #[inline]
    fn set(bits: &mut [u64; WINDOW_WORDS], ext: i64) {
        let (word, mask) = Self::position(ext);
        if let Some(w) = bits.get_mut(word) {
            *w |= mask;
        }
    }

    /// Forget the numbers in `(old_highest, new_highest]`, whose slots still
    /// hold bits of numbers 1024 older.
    fn advance(&mut self, old_highest: i64, new_highest: i64) {
        if new_highest - old_highest >= WINDOW_BITS as i64 {
            *self = Self::new();
            return;
        }
        for ext in old_highest + 1..=new_highest {
            let (word, mask) = Self::position(ext);
            for bits in [&mut self.handled, &mut self.skipped] {
                if let Some(w) = bits.get_mut(word) {
                    *w &= !mask;
                }
            }
        }
    }

    /// In-order skips among `(after, up_to]`.
    fn skipped_in(&self, after: i64, up_to: i64) -> u16 {
        let mut count = 0u16;
        for ext in after + 1..=up_to {
            if Self::test(&self.skipped, ext) {
                count = count.wrapping_add(1);
            }
        }
        count
    }
}

/// State of the source currently feeding the output.
#[derive(Debug, Clone)]
struct CurrentSource {
    id: u64,
    /// out_seq = in_seq + seq_offset (mod 2^16) for packets newer than any skip.
    seq_offset: u16,
    /// out_ts = in_ts + ts_offset (mod 2^32).
    ts_offset: u32,
    highest_seq: u16,
    /// Extended sequence number of `highest_seq`, counted from the source's
    /// first forwarded packet (= 0), so "before the start" is simply < 0.
    highest_ext: i64,
    stale_run: u32,
    recent: RecentWindow,
}

impl CurrentSource {
    /// Extended sequence number of `seq` relative to the newest one
    /// (RFC 1982: the nearer of the two directions).
    #[inline]
    fn extend(&self, seq: u16) -> (i64, i64) {
        let delta = i64::from(seq.wrapping_sub(self.highest_seq) as i16);
        (delta, self.highest_ext + delta)
    }

    #[inline]
    fn advance(&mut self, seq: u16, ext: i64) {
        self.recent.advance(self.highest_ext, ext);
        self.highest_ext = ext;
        self.highest_seq = seq;
    }
}

/// Per-output rewriting context; see the module documentation for the rules.
#[derive(Debug, Clone)]
pub struct SwitchingContext {
    source: Option<CurrentSource>,
    /// Output sequence number of the newest input sequence number handled
    /// (forwarded, or reserved by a loss or an in-order skip).
    last_out_seq: u16,
    /// Highest output timestamp forwarded (serial order).
    max_out_ts: u32,
    last_forward_arrival_us: u64,
    started: bool,
}

impl Default for SwitchingContext {
    fn default() -> Self {
        Self::new()
    }
}

impl SwitchingContext {
    pub fn new() -> Self {
        Self { source: None, last_out_seq: 0, max_out_ts: 0, last_forward_arrival_us: 0, started: false }
    }

    /// Returns `Some((out_seq, out_ts))` to forward the packet, `None` to drop it.
    ///
    /// `source_id` identifies the source (engine-assigned, unique forever);
    /// `arrival_us` is a monotonic clock in µs; `clock_rate` in Hz.
    #[inline]
    pub fn process(&mut self, source_id: u64, seq: u16, ts: u32, arrival_us: u64, clock_rate: u32) -> Option<(u16, u32)> {
        let Some(source) = self.source.as_mut().filter(|source| source.id == source_id) else {
            return Some(self.rebase(source_id, seq, ts, arrival_us, clock_rate));
        };
        let (delta, ext) = source.extend(seq);
        let out_seq = if delta > 0 {
            if delta > MAX_FORWARD_GAP {
                return Some(self.rebase(source_id, seq, ts, arrival_us, clock_rate));
            }
            source.stale_run = 0;
            source.advance(seq, ext);
            RecentWindow::set(&mut source.recent.handled, ext);
            let out_seq = seq.wrapping_add(source.seq_offset);
            self.last_out_seq = out_seq;
            out_seq
        } else {
            if source.highest_ext - ext > MAX_LATE {
                source.stale_run += 1;
                if source.stale_run >= RESYNC_AFTER_STALE {
                    return Some(self.rebase(source_id, seq, ts, arrival_us, clock_rate));
                }
                return None;
            }
            source.stale_run = 0;
            if ext < 0 || RecentWindow::test(&source.recent.handled, ext) {
                return None;
            }
            RecentWindow::set(&mut source.recent.handled, ext);
            // In-order skips after this packet lowered the offset after it
            // was due; add them back to get the slot it was due.
            let skipped_after = source.recent.skipped_in(ext, source.highest_ext);
            seq.wrapping_add(source.seq_offset).wrapping_add(skipped_after)
        };
        let out_ts = ts.wrapping_add(source.ts_offset);
        self.note_forwarded(out_ts, arrival_us);
        Some((out_seq, out_ts))
    }

    /// A packet of the current source deliberately not forwarded (temporal
    /// layer drop, padding-only): later packets close the gap so the receiver
    /// sees no loss. Skips of another source than the current one are
    /// ignored (that source's first forwarded packet will rebase anyway); a
    /// late skip only marks the packet handled, since packets after it were
    /// already numbered with its slot reserved.
    pub fn skip(&mut self, source_id: u64, seq: u16) {
        let Some(source) = self.source.as_mut().filter(|source| source.id == source_id) else {
            return;
        };
        let (delta, ext) = source.extend(seq);
        if delta > 0 {
            if delta > MAX_FORWARD_GAP {
                return;
            }
            source.advance(seq, ext);
            RecentWindow::set(&mut source.recent.handled, ext);
            RecentWindow::set(&mut source.recent.skipped, ext);
            source.seq_offset = source.seq_offset.wrapping_sub(1);
            self.last_out_seq = seq.wrapping_add(source.seq_offset);
        } else if ext >= 0 && source.highest_ext - ext <= MAX_LATE {
            RecentWindow::set(&mut source.recent.handled, ext);
        }
    }

    /// `(sequence number, timestamp)` the output has reached: the sequence
    /// number of the newest slot issued (forwarded, or reserved by a real
    /// loss), and the highest timestamp forwarded. `None` before the first
    /// forwarded packet.
    pub fn last_out(&self) -> Option<(u16, u32)> {
        self.started.then_some((self.last_out_seq, self.max_out_ts))
    }

    /// Which packet of the current source went out as `out_seq`, to answer a NACK for it
    /// (RFC 4585 §6.2.1): `(source id, source sequence number, timestamp offset)`, where
    /// the output timestamp is the source's plus the offset. `None` when `out_seq` was not
    /// a packet this source forwarded (an earlier source's, a loss, newer than any sent,
    /// older than the window, or behind an in-order skip, whose numbering it shifted).
    pub fn source_packet(&self, out_seq: u16) -> Option<(u64, u16, u32)> {
        let source = self.source.as_ref()?;
        let seq = out_seq.wrapping_sub(source.seq_offset);
        let (delta, ext) = source.extend(seq);
        if delta > 0 || ext < 0 || source.highest_ext - ext > MAX_LATE {
            return None;
        }
        if !RecentWindow::test(&source.recent.handled, ext) || RecentWindow::test(&source.recent.skipped, ext) {
            return None;
        }
        if source.recent.skipped_in(ext, source.highest_ext) != 0 {
            return None;
        }
        Some((source.id, seq, source.ts_offset))
    }

    /// The source currently feeding the output, if any.
    pub fn current_source(&self) -> Option<u64> {
        self.source.as_ref().map(|source| source.id)
    }

    /// Starts (or restarts) `source_id` at this packet and returns its output
    /// sequence number and timestamp.
    fn rebase(&mut self, source_id: u64, seq: u16, ts: u32, arrival_us: u64, clock_rate: u32) -> (u16, u32) {
        let (out_seq, out_ts) = if self.started {
            let elapsed_us = u128::from(arrival_us.saturating_sub(self.last_forward_arrival_us));
            let ticks = elapsed_us * u128::from(clock_rate) / MICROS_PER_SECOND;
            let advance = u64::try_from(ticks).unwrap_or(u64::MAX).clamp(1, MAX_TS_ADVANCE);
            (self.last_out_seq.wrapping_add(1), self.max_out_ts.wrapping_add(advance as u32))
        } else {
            (seq, ts)
        };
        let mut recent = RecentWindow::new();
        RecentWindow::set(&mut recent.handled, 0);
        self.source = Some(CurrentSource {
            id: source_id,
            seq_offset: out_seq.wrapping_sub(seq),
            ts_offset: out_ts.wrapping_sub(ts),
            highest_seq: seq,
            highest_ext: 0,
            stale_run: 0,
            recent,
        });
        self.started = true;
        self.last_out_seq = out_seq;
        self.max_out_ts = out_ts;
        self.last_forward_arrival_us = arrival_us;
        (out_seq, out_ts)
    }

    #[inline]
    fn note_forwarded(&mut self, out_ts: u32, arrival_us: u64) {
        // Serial-number "greater than" (RFC 1982) on 32 bits.
        if (out_ts.wrapping_sub(self.max_out_ts) as i32) > 0 {
            self.max_out_ts = out_ts;
        }
        self.last_forward_arrival_us = self.last_forward_arrival_us.max(arrival_us);
    }
}
