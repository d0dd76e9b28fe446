//! Transport-wide congestion control feedback, receiver side
//! (draft-holmer-rmcat-transport-wide-cc-extensions-01): records the arrival
//! time of every packet carrying the transport-wide sequence number header
//! extension (§2) and builds the RTCP transport feedback messages (§3.1) a
//! sender's bandwidth estimator (e.g. Chrome's GoogCC) needs to ramp up.
//!
//! Sans-IO: times are given in microseconds by the caller.

use std::collections::VecDeque;

const PT_RTPFB: u8 = 205;
const FMT_TRANSPORT_CC: u8 = 15;
/// Reference time unit (§3.1: multiples of 64 ms).
const REFERENCE_TIME_UNIT_US: u64 = 64_000;
/// Receive delta unit (§3.1.5: 250 µs).
const DELTA_UNIT_US: i64 = 250;
/// Packets one feedback message describes at most; a longer run is split.
const MAX_STATUS_PER_FEEDBACK: u64 = 1000;
/// Arrivals kept waiting for a report; the oldest are dropped beyond this
/// (a sender that never gets feedback loses a little precision, never memory).
const MAX_TRACKED: usize = 8192;
/// A gap in sequence numbers larger than this restarts reporting at the new
/// packet rather than describing thousands of "not received" packets.
const MAX_GAP: u64 = 2000;
/// This many consecutive already-reported sequence numbers mean the counter restarted lower.
const MAX_LATE_RUN: u32 = 64;

/// §3.1.1 packet status symbols, as 2-bit values.
const NOT_RECEIVED: u8 = 0;
const SMALL_DELTA: u8 = 1;
const LARGE_DELTA: u8 = 2;

/// Marks a sequence number not (yet) received in `arrivals`.
const NONE: u64 = u64::MAX;

#[derive(Debug, Default)]
pub struct TwccRecorder {
    /// Arrival time (µs) of `next_seq + i` at index i, or NONE. A ring reused across
    /// reports, so recording allocates nothing once warmed up.
    arrivals: VecDeque<u64>,
    /// Entries of `arrivals` that are not NONE.
    received: usize,
    /// First sequence number not yet reported (unwrapped).
    next_seq: Option<u64>,
    /// Highest unwrapped sequence number seen (to unwrap the next one).
    highest: Option<u64>,
    /// §3.1: feedback packet count, wraps.
    fb_count: u8,
    /// Consecutive packets older than anything still reportable.
    late_run: u32,
}

impl TwccRecorder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Packets recorded and not yet reported.
    pub fn pending(&self) -> usize {
        self.received
    }

    /// Records one packet: `seq` is the extension's 16-bit transport-wide sequence number.
    pub fn record(&mut self, seq: u16, arrival_us: u64) {
        let unwrapped = match self.highest {
            None => u64::from(seq) + (1 << 16), // room below for a reordered first packet
            Some(highest) => {
                let delta = i64::from(seq.wrapping_sub(highest as u16) as i16);
                match highest.checked_add_signed(delta) {
                    Some(v) => v,
                    None => return,
                }
            }
        };
        let previous_highest = self.highest;
        if previous_highest.map_or(true, |h| unwrapped > h) {
            self.highest = Some(unwrapped);
        }
        if previous_highest.is_some_and(|h| unwrapped > h + MAX_GAP) {
            // A jump (the sender restarted its counter?): report from here on.
            self.arrivals.clear();
            self.received = 0;
            self.next_seq = Some(unwrapped);
        }
        let next = *self.next_seq.get_or_insert(unwrapped);
        // Already reported (a late duplicate or a packet given up on): nothing to add. A long
        // run of them means the counter moved backwards (a new sender): follow it instead.
        let Some(mut index) = unwrapped.checked_sub(next).map(|i| i as usize) else {
            self.late_run += 1;
            if self.late_run > MAX_LATE_RUN {
                *self = Self { fb_count: self.fb_count, ..Self::default() };
                self.record(seq, arrival_us);
            }
            return;
        };
        self.late_run = 0;
        if index >= MAX_TRACKED {
            // Never reported for too long: give up on the oldest.
            self.drop_front(index + 1 - MAX_TRACKED);
            index = MAX_TRACKED - 1;
        }
        while self.arrivals.len() <= index {
            self.arrivals.push_back(NONE);
        }
        if let Some(slot) = self.arrivals.get_mut(index) {
            if *slot == NONE {
                *slot = arrival_us.min(NONE - 1);
                self.received += 1;
            }
        }
    }

    /// Forgets the first `n` sequence numbers (reported or given up on).
    fn drop_front(&mut self, n: usize) {
        for _ in 0..n {
            match self.arrivals.pop_front() {
                Some(NONE) | None => {}
                Some(_) => self.received -= 1,
            }
        }
        if let Some(next) = self.next_seq.as_mut() {
            *next += n as u64;
        }
    }

    /// Builds the feedback messages describing everything recorded since the last call and
    /// appends them to `out` (one RTCP packet each); returns how many were built.
    pub fn build_feedback(&mut self, sender_ssrc: u32, media_ssrc: u32, out: &mut Vec<Vec<u8>>) -> usize {
        let mut built = 0;
        while let Some(packet) = self.build_one(sender_ssrc, media_ssrc) {
            out.push(packet);
            built += 1;
        }
        built
    }

    fn build_one(&mut self, sender_ssrc: u32, media_ssrc: u32) -> Option<Vec<u8>> {
        if self.received == 0 {
            return None;
        }
        let base = self.next_seq?;
        // Missing packets before the first arrival are reported as not received.
        let first_arrival = *self.arrivals.iter().find(|&&a| a != NONE)?;
        let reference = first_arrival / REFERENCE_TIME_UNIT_US;
        let mut previous_us = (reference * REFERENCE_TIME_UNIT_US) as i64;
        let mut symbols: Vec<u8> = Vec::new();
        let mut deltas: Vec<u8> = Vec::new();
        let limit = self.arrivals.len().min(MAX_STATUS_PER_FEEDBACK as usize);
        let mut count = 0usize;
        for &arrival in self.arrivals.iter().take(limit) {
            if arrival == NONE {
                symbols.push(NOT_RECEIVED);
            } else {
                let delta = (arrival as i64 - previous_us).div_euclid(DELTA_UNIT_US);
                if (0..=255).contains(&delta) {
                    symbols.push(SMALL_DELTA);
                    deltas.push(delta as u8);
                } else if let Ok(large) = i16::try_from(delta) {
                    symbols.push(LARGE_DELTA);
                    deltas.extend_from_slice(&large.to_be_bytes());
                } else {
                    // Not expressible relative to the previous packet: the next message,
                    // with its own reference time, starts here.
                    break;
                }
                // Deltas chain from what was reported, so rounding errors do not add up.
                previous_us += delta * DELTA_UNIT_US;
            }
            count += 1;
        }
        if count == 0 {
            return None;
        }
        self.drop_front(count);

        // §3.1.3 status vector chunks with two-bit symbols: 1 1 then seven symbols.
        let mut chunks = Vec::with_capacity(symbols.len().div_ceil(7) * 2);
        for group in symbols.chunks(7) {
            let mut chunk: u16 = 0b11 << 14;
            for (i, &symbol) in group.iter().enumerate() {
                chunk |= u16::from(symbol) << (12 - 2 * i);
            }
            chunks.extend_from_slice(&chunk.to_be_bytes());
        }
        let body_len = 20 + chunks.len() + deltas.len();
        let padding = (4 - body_len % 4) % 4;
        let total = body_len + padding;
        let mut packet = Vec::with_capacity(total);
        // RFC 3550 §6.4.1-style padding (P bit, last octet = padding length), as libwebrtc writes it.
        packet.push(0x80 | if padding > 0 { 0x20 } else { 0 } | FMT_TRANSPORT_CC);
        packet.push(PT_RTPFB);
        packet.extend_from_slice(&((total / 4 - 1) as u16).to_be_bytes());
        packet.extend_from_slice(&sender_ssrc.to_be_bytes());
        packet.extend_from_slice(&media_ssrc.to_be_bytes());
        packet.extend_from_slice(&(base as u16).to_be_bytes());
        packet.extend_from_slice(&(count as u16).to_be_bytes());
        // 24-bit signed reference time: it wraps every ~12 days, which receivers handle.
        let reference24 = (reference & 0x00ff_ffff) as u32;
        packet.extend_from_slice(&((reference24 << 8) | u32::from(self.fb_count)).to_be_bytes());
        self.fb_count = self.fb_count.wrapping_add(1);
        packet.extend_from_slice(&chunks);
        packet.extend_from_slice(&deltas);
        if padding > 0 {
            packet.extend(std::iter::repeat(0).take(padding - 1));
            packet.push(padding as u8);
        }
        Some(packet)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal reader of what `build_one` writes, independent of it: (base, statuses, arrival µs of received).
    fn parse(packet: &[u8]) -> (u16, Vec<u8>, Vec<i64>, u8) {
        assert_eq!(packet[0] >> 6, 2);
        assert_eq!(packet[0] & 0x1f, FMT_TRANSPORT_CC);
        assert_eq!(packet[1], PT_RTPFB);
        let len = (usize::from(u16::from_be_bytes([packet[2], packet[3]])) + 1) * 4;
        assert_eq!(len, packet.len());
        let padding = if packet[0] & 0x20 != 0 { usize::from(packet[len - 1]) } else { 0 };
        let base = u16::from_be_bytes([packet[12], packet[13]]);
        let count = usize::from(u16::from_be_bytes([packet[14], packet[15]]));
        let reference = u32::from_be_bytes([0, packet[16], packet[17], packet[18]]);
        let fb_count = packet[19];
        let mut pos = 20;
        let mut statuses = Vec::new();
        while statuses.len() < count {
            let chunk = u16::from_be_bytes([packet[pos], packet[pos + 1]]);
            pos += 2;
            assert_eq!(chunk >> 14, 0b11, "two-bit status vector");
            for i in 0..7 {
                if statuses.len() < count {
                    statuses.push(((chunk >> (12 - 2 * i)) & 0b11) as u8);
                }
            }
        }
        let mut time = i64::from(reference) * 64_000;
        let mut arrivals = Vec::new();
        for &s in &statuses {
            match s {
                SMALL_DELTA => {
                    time += i64::from(packet[pos]) * 250;
                    pos += 1;
                }
                LARGE_DELTA => {
                    time += i64::from(i16::from_be_bytes([packet[pos], packet[pos + 1]])) * 250;
                    pos += 2;
                }
                _ => continue,
            }
            arrivals.push(time);
        }
        assert_eq!(pos + padding, len, "deltas end where the padding starts");
        (base, statuses, arrivals, fb_count)
    }

    #[test]
    fn reports_arrivals_and_losses_in_order() {
        let mut r = TwccRecorder::new();
        let t0 = 10_000_000;
        r.record(100, t0);
        r.record(101, t0 + 5_000);
        // 102 lost
        r.record(103, t0 + 20_000);
        let mut out = Vec::new();
        assert_eq!(r.build_feedback(1, 2, &mut out), 1);
        let (base, statuses, arrivals, fb) = parse(&out[0]);
        assert_eq!(base, 100);
        assert_eq!(statuses, vec![SMALL_DELTA, SMALL_DELTA, NOT_RECEIVED, SMALL_DELTA]);
        assert_eq!(arrivals, vec![t0 as i64, t0 as i64 + 5_000, t0 as i64 + 20_000]);
        assert_eq!(fb, 0);
        assert_eq!(out[0].len() % 4, 0);
        // Nothing new: nothing to send; the next message continues the count and the sequence.
        out.clear();
        assert_eq!(r.build_feedback(1, 2, &mut out), 0);
        r.record(104, t0 + 30_000);
        r.build_feedback(1, 2, &mut out);
        let (base, statuses, _, fb) = parse(&out[0]);
        assert_eq!((base, statuses.len(), fb), (104, 1, 1));
    }

    #[test]
    fn large_and_negative_deltas_use_two_bytes() {
        let mut r = TwccRecorder::new();
        r.record(1, 1_000_000);
        r.record(2, 1_500_000); // +500 ms: large
        r.record(3, 1_499_000); // reordered arrival: negative
        let mut out = Vec::new();
        r.build_feedback(9, 9, &mut out);
        let (_, statuses, arrivals, _) = parse(&out[0]);
        assert_eq!(statuses, vec![SMALL_DELTA, LARGE_DELTA, LARGE_DELTA]);
        assert_eq!(arrivals, vec![1_000_000, 1_500_000, 1_499_000]);
    }

    #[test]
    fn sequence_wrap_late_packets_and_gaps() {
        let mut r = TwccRecorder::new();
        r.record(65_534, 2_000_000);
        r.record(65_535, 2_001_000);
        r.record(0, 2_002_000);
        r.record(1, 2_003_000);
        let mut out = Vec::new();
        r.build_feedback(1, 1, &mut out);
        let (base, statuses, _, _) = parse(&out[0]);
        assert_eq!((base, statuses.len()), (65_534, 4));
        // A late duplicate of something reported adds nothing.
        r.record(65_535, 2_010_000);
        assert_eq!(r.pending(), 0);
        // A jump far ahead restarts at the new packet instead of reporting thousands lost.
        r.record(30_000, 2_020_000);
        out.clear();
        r.build_feedback(1, 1, &mut out);
        let (base, statuses, _, _) = parse(&out[0]);
        assert_eq!((base, statuses.len()), (30_000, 1));
        // A counter that restarts lower is followed after a run of "late" packets.
        for i in 0..=MAX_LATE_RUN as u16 {
            r.record(10_000 + i, 2_030_000);
        }
        assert!(r.pending() >= 1, "the restarted counter is recorded again");
        out.clear();
        r.build_feedback(1, 1, &mut out);
        let (base, _, _, _) = parse(&out[0]);
        assert!((10_000..=10_000 + MAX_LATE_RUN as u16).contains(&base));
    }

    #[test]
    fn long_runs_split_and_memory_stays_bounded() {
        let mut r = TwccRecorder::new();
        for i in 0..20_000u32 {
            r.record(i as u16, 5_000_000 + u64::from(i) * 100);
        }
        assert!(r.pending() <= MAX_TRACKED);
        let mut out = Vec::new();
        let n = r.build_feedback(1, 1, &mut out);
        assert!(n >= (MAX_TRACKED as u64 / MAX_STATUS_PER_FEEDBACK) as usize);
        let mut expected_base = None;
        for p in &out {
            let (base, statuses, arrivals, _) = parse(p);
            if let Some(e) = expected_base {
                assert_eq!(base, e, "messages follow each other");
            }
            assert!(statuses.len() as u64 <= MAX_STATUS_PER_FEEDBACK);
            assert_eq!(arrivals.len(), statuses.len());
            expected_base = Some(base.wrapping_add(statuses.len() as u16));
        }
    }

    #[test]
    fn random_input_never_panics_and_always_parses() {
        let mut r = TwccRecorder::new();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut time = 1_000_000u64;
        let mut out = Vec::new();
        for i in 0..200_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            time += x % 30_000;
            let seq = if x % 10 == 0 { (x >> 16) as u16 } else { i as u16 };
            r.record(seq, time.saturating_sub((x >> 40) % 100_000));
            if i % 97 == 0 {
                out.clear();
                r.build_feedback(1, 2, &mut out);
                for p in &out {
                    parse(p);
                }
            }
        }
    }
}
