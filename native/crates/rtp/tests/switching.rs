//! SwitchingContext: rules checked one by one, then the invariants as
//! property tests over random switch/loss/skip histories.

use ferry_rtp::switch::{SwitchingContext, MAX_FORWARD_GAP, MAX_LATE, RESYNC_AFTER_STALE};
use proptest::prelude::*;

const VIDEO: u32 = 90_000;
const A: u64 = 1;
const B: u64 = 2;

/// A context whose output started with `source`'s packet `seq` (timestamp 0, at time 0).
fn started(source: u64, seq: u16) -> SwitchingContext {
    let mut ctx = SwitchingContext::new();
    ctx.process(source, seq, 0, 0, VIDEO);
    ctx
}

/// The output sequence number of `source`'s video packet `seq` (timestamp 0) arriving `at`; None
/// when it is dropped.
fn out_seq(ctx: &mut SwitchingContext, source: u64, seq: u16, at: u64) -> Option<u16> {
    ctx.process(source, seq, 0, at, VIDEO).map(|o| o.0)
}

#[test]
fn first_packet_keeps_source_numbering() {
    let mut ctx = SwitchingContext::new();
    assert_eq!(ctx.last_out(), None);
    assert_eq!(ctx.process(A, 500, 9000, 0, VIDEO), Some((500, 9000)));
    assert_eq!(ctx.process(A, 501, 9000, 1, VIDEO), Some((501, 9000)));
    assert_eq!(ctx.process(A, 502, 12000, 2, VIDEO), Some((502, 12000)));
    assert_eq!(ctx.last_out(), Some((502, 12000)));
    assert_eq!(ctx.current_source(), Some(A));
}

#[test]
fn switch_continues_sequence_and_advances_timestamp_by_wall_time() {
    let mut ctx = SwitchingContext::new();
    ctx.process(A, 100, 1000, 1_000_000, VIDEO);
    // 20 ms later, source B with unrelated numbering (same SSRC or not: only
    // the source id matters).
    assert_eq!(ctx.process(B, 40_000, 77, 1_020_000, VIDEO), Some((101, 1000 + 1800)));
    assert_eq!(ctx.process(B, 40_001, 77 + 3000, 1_030_000, VIDEO), Some((102, 2800 + 3000)));
    // Back to A, whose numbering moved on meanwhile; 10 ms of 48 kHz = 480.
    assert_eq!(ctx.process(A, 900, 5, 1_040_000, 48_000), Some((103, 5800 + 480)));
}

#[test]
fn switch_with_no_elapsed_time_still_advances_timestamp() {
    let mut ctx = SwitchingContext::new();
    ctx.process(A, 1, 1000, 50, VIDEO);
    assert_eq!(ctx.process(B, 9, 0, 50, VIDEO), Some((2, 1001)));
    // A clock that went backwards counts as no elapsed time.
    assert_eq!(ctx.process(A, 9, 0, 10, VIDEO), Some((3, 1002)));
}

#[test]
fn timestamp_advance_is_capped_below_half_the_space() {
    let mut ctx = started(A, 1);
    let (_, ts) = ctx.process(B, 1, 0, 10 * 24 * 3600 * 1_000_000, VIDEO).unwrap();
    assert_eq!(ts, 1 << 30);
}

#[test]
fn preserves_real_loss_and_wraps() {
    let mut ctx = SwitchingContext::new();
    assert_eq!(ctx.process(A, 65_534, u32::MAX - 10, 0, VIDEO), Some((65_534, u32::MAX - 10)));
    // 65535 and 0 lost; timestamp wraps too.
    assert_eq!(ctx.process(A, 1, 20, 1, VIDEO), Some((1, 20)));
    ctx.process(B, 7, 7, 2, VIDEO);
    let mut out = Vec::new();
    for (i, seq) in [7u16, 8, 10, 11, 15].iter().enumerate() {
        out.push(ctx.process(B, *seq, 7, 3 + i as u64, VIDEO).map(|(s, _)| s));
    }
    // 7 is a duplicate of B's first packet; B started at out 2.
    assert_eq!(out, vec![None, Some(3), Some(5), Some(6), Some(10)]);
}

#[test]
fn drops_packets_from_before_the_source_start() {
    let mut ctx = started(A, 10);
    ctx.process(B, 1000, 0, 1, VIDEO);
    assert_eq!(ctx.process(B, 999, 0, 2, VIDEO), None);
    assert_eq!(ctx.process(B, 990, 0, 2, VIDEO), None);
    assert_eq!(ctx.process(B, 1001, 0, 3, VIDEO), Some((12, 1)));
}

#[test]
fn late_packets_fill_their_own_slot_and_duplicates_are_dropped() {
    let mut ctx = started(A, 100);
    assert_eq!(out_seq(&mut ctx, A, 103, 1), Some(103));
    assert_eq!(out_seq(&mut ctx, A, 101, 2), Some(101));
    assert_eq!(ctx.process(A, 101, 0, 3, VIDEO), None, "duplicate");
    assert_eq!(ctx.process(A, 103, 0, 4, VIDEO), None, "duplicate of the newest");
    assert_eq!(out_seq(&mut ctx, A, 102, 5), Some(102));
    assert_eq!(ctx.last_out().map(|o| o.0), Some(103));
}

#[test]
fn skip_closes_the_gap() {
    let mut ctx = started(A, 100);
    ctx.skip(A, 101);
    ctx.skip(A, 102);
    assert_eq!(out_seq(&mut ctx, A, 103, 1), Some(101));
    // A real loss (104) after a skip is still visible.
    ctx.skip(A, 105);
    assert_eq!(out_seq(&mut ctx, A, 106, 2), Some(103));
    // 104 arrives late: it gets the slot it was due (102), not a skipped one.
    assert_eq!(out_seq(&mut ctx, A, 104, 3), Some(102));
    assert_eq!(ctx.process(A, 105, 0, 4, VIDEO), None, "skipped, then arrives again");
}

#[test]
fn late_skip_does_not_shift_later_packets() {
    let mut ctx = started(A, 100);
    ctx.process(A, 102, 0, 1, VIDEO);
    ctx.skip(A, 101); // its slot was already reserved by 102's numbering
    assert_eq!(out_seq(&mut ctx, A, 103, 2), Some(103));
    assert_eq!(ctx.process(A, 101, 0, 3, VIDEO), None);
}

#[test]
fn skips_of_other_sources_are_ignored() {
    let mut ctx = started(A, 100);
    ctx.skip(B, 5);
    ctx.skip(B, 6);
    assert_eq!(out_seq(&mut ctx, B, 7, 1), Some(101));
    ctx.skip(A, 101);
    assert_eq!(out_seq(&mut ctx, B, 8, 2), Some(102));
}

#[test]
fn skip_at_the_end_of_a_source_keeps_continuity_across_switch() {
    let mut ctx = started(A, 100);
    ctx.skip(A, 101);
    ctx.skip(A, 102);
    assert_eq!(out_seq(&mut ctx, B, 1, 1), Some(101));
}

#[test]
fn very_late_packets_are_dropped() {
    let mut ctx = started(A, 0);
    for seq in 1..=1500u16 {
        ctx.process(A, seq, 0, 0, VIDEO);
    }
    let too_late = 1500 - MAX_LATE as u16 - 1;
    assert_eq!(ctx.process(A, too_late, 0, 0, VIDEO), None);
    // Within the window but already forwarded.
    assert_eq!(ctx.process(A, too_late + 2, 0, 0, VIDEO), None);
    assert_eq!(out_seq(&mut ctx, A, 1501, 0), Some(1501));
}

#[test]
fn source_restart_with_lower_numbers_rebases_after_a_run() {
    let mut ctx = SwitchingContext::new();
    ctx.process(A, 30_000, 500, 0, VIDEO);
    for i in 1..RESYNC_AFTER_STALE {
        assert_eq!(ctx.process(A, 10 + i as u16, 0, 1_000, VIDEO), None);
    }
    let restarted = ctx.process(A, 10 + RESYNC_AFTER_STALE as u16, 0, 1_000, VIDEO);
    assert_eq!(restarted, Some((30_001, 590)));
    assert_eq!(ctx.process(A, 11 + RESYNC_AFTER_STALE as u16, 90, 2_000, VIDEO), Some((30_002, 680)));
}

#[test]
fn big_forward_jump_rebases() {
    let mut ctx = started(A, 100);
    assert_eq!(out_seq(&mut ctx, A, 100 + MAX_FORWARD_GAP as u16, 0), Some(100 + MAX_FORWARD_GAP as u16));
    let jump = 100 + 2 * MAX_FORWARD_GAP as u16 + 1;
    assert_eq!(out_seq(&mut ctx, A, jump, 0), Some(101 + MAX_FORWARD_GAP as u16));
}

// ---- property tests ----

#[derive(Debug, Clone, Copy)]
enum Op {
    /// The source sends a packet that reaches us and is forwarded.
    Forward,
    /// The source sent a packet that never reached us.
    Lost,
    /// The packet reached us but the caller chooses not to forward it.
    Skip,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![8 => Just(Op::Forward), 1 => Just(Op::Lost), 1 => Just(Op::Skip)]
}

#[derive(Debug, Clone)]
struct Segment {
    /// Index of the source (0..4) that feeds the output during this segment.
    source: usize,
    /// How many packets the source sent while not selected (unseen).
    unseen: u16,
    ops: Vec<Op>,
}

fn segment() -> impl Strategy<Value = Segment> {
    (0usize..4, 0u16..5000, prop::collection::vec(op(), 1..60)).prop_map(|(source, unseen, ops)| Segment { source, unseen, ops })
}

#[derive(Debug, Clone, Copy)]
struct SourceState {
    seq: u16,
    ts: u32,
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Sequence numbers advance by exactly one per forwarded packet, plus
    /// the source's real losses (never the skips, never across a switch
    /// except for losses already made visible), never repeat; timestamps
    /// never go backwards and keep the source's spacing within a segment.
    #[test]
    fn switching_invariants(
        starts in prop::array::uniform4((any::<u16>(), any::<u32>())),
        segments in prop::collection::vec(segment(), 1..12),
        ts_steps in prop::collection::vec(0u32..4000, 64),
        arrival_steps in prop::collection::vec(0u64..60_000, 64),
        clock_rates in prop::array::uniform4(prop_oneof![Just(90_000u32), Just(48_000u32), Just(8_000u32)]),
    ) {
        let mut sources: Vec<SourceState> = starts.iter().map(|&(seq, ts)| SourceState { seq, ts }).collect();
        let mut ctx = SwitchingContext::new();
        let mut arrival = 0u64;
        let mut step = 0usize;
        let mut previous: Option<(u16, u32)> = None;
        // Losses since the last forwarded packet: `pending` are invisible
        // until a later packet of the source is handled; a skip commits them.
        let (mut pending_loss, mut committed_loss) = (0u16, 0u16);
        let mut last_source: Option<usize> = None;
        let mut previous_in_ts_of_segment: Option<u32> = None;
        let mut forwarded = 0usize;

        for segment in &segments {
            // The same source id twice in a row is one uninterrupted source.
            let switched = last_source != Some(segment.source);
            let source_id = segment.source as u64 + 1000;
            let clock_rate = clock_rates[segment.source];
            if switched {
                // Packets the source sent while another one was selected.
                let state = &mut sources[segment.source];
                state.seq = state.seq.wrapping_add(segment.unseen);
                state.ts = state.ts.wrapping_add(u32::from(segment.unseen) * 30);
            }
            // Until this segment's first forwarded packet the output still
            // belongs to the previous source: its pending losses stay
            // invisible, and losses/skips of the new source are not seen.
            let mut started = !switched;
            for op in &segment.ops {
                step += 1;
                arrival += arrival_steps[step % 64];
                let state = &mut sources[segment.source];
                let (seq, ts) = (state.seq, state.ts);
                state.seq = state.seq.wrapping_add(1);
                state.ts = state.ts.wrapping_add(ts_steps[step % 64]);
                match op {
                    Op::Lost => {
                        if started {
                            pending_loss += 1;
                        }
                    }
                    Op::Skip => {
                        ctx.skip(source_id, seq);
                        if started {
                            committed_loss += pending_loss;
                            pending_loss = 0;
                        }
                    }
                    Op::Forward => {
                        let out = ctx.process(source_id, seq, ts, arrival, clock_rate);
                        prop_assert!(out.is_some(), "in-order packet dropped");
                        let (out_seq, out_ts) = out.unwrap_or_default();
                        if let Some((prev_seq, prev_ts)) = previous {
                            let gap = out_seq.wrapping_sub(prev_seq);
                            let expected = if started { 1 + committed_loss + pending_loss } else { 1 + committed_loss };
                            prop_assert_eq!(gap, expected, "sequence gap");
                            let ts_advance = out_ts.wrapping_sub(prev_ts) as i32;
                            prop_assert!(ts_advance >= 0, "timestamp went backwards by {}", -ts_advance);
                            if started {
                                let in_advance = ts.wrapping_sub(previous_in_ts_of_segment.unwrap_or(ts));
                                prop_assert_eq!(out_ts.wrapping_sub(prev_ts), in_advance, "source spacing kept");
                            } else {
                                prop_assert!(ts_advance >= 1, "a switch advances the timestamp");
                            }
                        } else {
                            prop_assert_eq!((out_seq, out_ts), (seq, ts), "first packet keeps its numbering");
                        }
                        previous = Some((out_seq, out_ts));
                        previous_in_ts_of_segment = Some(ts);
                        pending_loss = 0;
                        committed_loss = 0;
                        started = true;
                        forwarded += 1;
                    }
                }
            }
            if started {
                last_source = Some(segment.source);
            }
        }
        if forwarded > 0 {
            prop_assert_eq!(ctx.last_out().map(|o| o.1), previous.map(|o| o.1));
        }
    }

    /// Reordering within one source: every packet is forwarded exactly once
    /// at `in + offset` minus the skips that were registered in order before
    /// it (a skip arriving after a higher packet shifts nothing, because
    /// that higher packet was already numbered with the slot reserved).
    #[test]
    fn reordered_packets_keep_their_slots(
        start in any::<u16>(),
        count in 2usize..300,
        swaps in prop::collection::vec((0usize..300, 0usize..40), 0..150),
        skip_mask in prop::collection::vec(prop::bool::weighted(0.15), 300),
    ) {
        // In-order schedule with local swaps (bounded displacement), the
        // first packet first since it starts the source.
        let mut order: Vec<usize> = (1..count).collect();
        for &(at, distance) in &swaps {
            let len = order.len();
            order.swap(at % len, (at + distance) % len);
        }

        let mut ctx = SwitchingContext::new();
        prop_assert_eq!(ctx.process(7, start, 0, 0, VIDEO), Some((start, 0)));
        let mut seen = std::collections::HashSet::new();
        seen.insert(start);
        let mut highest = 0usize;
        let mut in_order_skips: Vec<usize> = Vec::new();
        for &index in &order {
            let seq = start.wrapping_add(index as u16);
            if skip_mask[index] {
                ctx.skip(7, seq);
                if index > highest {
                    in_order_skips.push(index);
                }
            } else {
                let out = ctx.process(7, seq, 0, 0, VIDEO);
                prop_assert!(out.is_some(), "packet {} dropped", index);
                let (out_seq, _) = out.unwrap_or_default();
                let shift = in_order_skips.iter().filter(|&&m| m < index).count();
                prop_assert_eq!(out_seq, start.wrapping_add((index - shift) as u16));
                prop_assert!(seen.insert(out_seq), "output sequence number repeated");
                // The same packet again is a duplicate.
                prop_assert_eq!(ctx.process(7, seq, 0, 0, VIDEO), None);
            }
            highest = highest.max(index);
        }
    }
}

#[test]
fn source_packet_maps_output_numbers_back_for_nacks() {
    let mut ctx = SwitchingContext::new();
    // Source 1 from seq 100; 102 is lost on the way.
    for seq in [100u16, 101, 103] {
        ctx.process(1, seq, u32::from(seq) * 10, 0, 90000).unwrap();
    }
    assert_eq!(ctx.source_packet(101), Some((1, 101, 0)));
    assert_eq!(ctx.source_packet(102), None, "never forwarded: nothing to repeat");
    assert_eq!(ctx.source_packet(104), None, "not sent yet");
    assert_eq!(ctx.source_packet(99), None, "before the source started");
    // Switch to source 2: its packets map with its own offsets; source 1's numbers no longer do.
    let (out, ts) = ctx.process(2, 5000, 777, 20_000, 90000).unwrap();
    assert_eq!(out, 104);
    let (src, seq, ts_offset) = ctx.source_packet(104).unwrap();
    assert_eq!((src, seq), (2, 5000));
    assert_eq!(777u32.wrapping_add(ts_offset), ts);
    assert_eq!(ctx.source_packet(101), None, "an earlier source's packet");
    let (out2, _) = ctx.process(2, 5001, 780, 21_000, 90000).unwrap();
    assert_eq!(ctx.source_packet(out2).map(|p| p.1), Some(5001));
    // Across the 16-bit wrap.
    let mut ctx = SwitchingContext::new();
    for seq in [65534u16, 65535, 0, 1] {
        ctx.process(7, seq, 0, 0, 48000).unwrap();
    }
    assert_eq!(ctx.source_packet(65535).map(|p| p.1), Some(65535));
    assert_eq!(ctx.source_packet(1).map(|p| p.1), Some(1));
}

#[test]
fn source_packet_refuses_numbers_shifted_by_a_skip() {
    let mut ctx = SwitchingContext::new();
    ctx.process(1, 10, 0, 0, 90000).unwrap();
    ctx.process(1, 11, 0, 0, 90000).unwrap();
    ctx.skip(1, 12);
    let (out, _) = ctx.process(1, 13, 0, 0, 90000).unwrap();
    assert_eq!(out, 12, "the skip closed the gap");
    assert_eq!(ctx.source_packet(out), Some((1, 13, 0)), "packets after the skip map with the shifted offset");
    assert_eq!(ctx.source_packet(11), None, "a packet before the skip is not mapped with the shifted offset");
}
