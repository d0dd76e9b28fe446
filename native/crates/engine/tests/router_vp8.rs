//! The sans-IO [`Router`] without sockets or threads (helpers in common/mod.rs): VP8 PictureID /
//! TL0PICIDX continuity and temporal layers.

mod common;

use common::*;

// ---- VP8: PictureID / TL0PICIDX continuity, temporal layers ---------------------------------

/// A VP8 packet with the descriptor Chrome sends with temporal layers (RFC 7741 §4.2):
/// X, I (15-bit PictureID), L (TL0PICIDX), T (TID, Y).
fn vp8_layered(ssrc: u32, seq: u16, pid: u16, tl0: u8, tid: u8, sync: bool) -> Vec<u8> {
    let start = 0x10; // S=1, PID=0: every packet here starts a frame
    let payload = [0x80 | start, 0xe0, 0x80 | (pid >> 8) as u8, pid as u8, tl0, tid << 6 | if sync { 0x20 } else { 0 }, 0x01, 0x42];
    rtp_packet(ssrc, seq, u32::from(seq) * 3000, 96, &payload)
}

fn vp8_fields(bytes: &[u8]) -> (u16, u16, u8, u8) {
    let (_, seq, _, _, payload) = parse(bytes);
    let d = ferry_rtp::vp8::parse(&payload).unwrap();
    (seq, d.picture_id.unwrap().0, d.tl0picidx.unwrap().0, d.temporal.unwrap().0)
}

#[test]
fn vp8_picture_ids_continue_across_a_switch_and_dropped_temporal_layers_leave_no_gap() {
    let mut m = Mesh::new(2);
    m.endpoint(0, 1, Some(PUB));
    m.endpoint(1, 3, Some(PUB2));
    m.endpoint(1, 2, Some(SUB1));
    m.routers[0].add_source(10, 1, video(0xa1)).unwrap();
    m.routers[1].add_source(11, 3, video(0xb1)).unwrap();
    let (a, b) = (m.sref(0, 10), m.sref(1, 11));
    m.add_output(1, 20, 2, 0x20, None, Some(a));
    m.settle();
    m.take_transmits(1);
    // L1T2-ish pattern: TID 0,1,0,1 …, frames numbered by PictureID, TL0PICIDX per base frame.
    for i in 0..8u16 {
        m.datagram(0, 1, &vp8_layered(0xa1, 100 + i, 1000 + i, (10 + i / 2) as u8, (i % 2) as u8, i % 2 == 1), PUB);
    }
    m.settle();
    let t = m.take_transmits(1);
    let before: Vec<_> = t.iter().filter(|t| t.to == SUB1).map(|t| vp8_fields(&t.bytes)).collect();
    assert_eq!(before.len(), 8);
    // Temporal layer 0 only: TID 1 packets are skipped, sequence numbers stay contiguous.
    m.routers[1].set_output_temporal(20, Some(0)).unwrap();
    for i in 8..16u16 {
        m.datagram(0, 1, &vp8_layered(0xa1, 100 + i, 1000 + i, (10 + i / 2) as u8, (i % 2) as u8, i % 2 == 1), PUB);
    }
    m.settle();
    let t = m.take_transmits(1);
    let base: Vec<_> = t.iter().filter(|t| t.to == SUB1).map(|t| vp8_fields(&t.bytes)).collect();
    assert_eq!(base.len(), 4, "only TID 0");
    assert!(base.iter().all(|f| f.3 == 0));
    let seqs: Vec<u16> = before.iter().chain(base.iter()).map(|f| f.0).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0].wrapping_add(1)), "no gap where layers were dropped: {seqs:?}");
    assert_eq!(m.output_stats(1, 20).filtered, 4);
    // Switch to B (other numbering entirely): PictureID and TL0PICIDX go on from A's last.
    m.switch(1, 20, Some(b), false);
    m.take_transmits(1);
    for i in 0..4u16 {
        m.datagram(1, 3, &vp8_layered(0xb1, 7000 + i, 20_000 + i, 200 + i as u8, 0, false), PUB2);
    }
    m.settle();
    let t = m.take_transmits(1);
    let after: Vec<_> = t.iter().filter(|t| t.to == SUB1).map(|t| vp8_fields(&t.bytes)).collect();
    let last = base.last().unwrap();
    assert_eq!(after[0].1, last.1.wrapping_add(1) & 0x7fff, "PictureID follows A's last");
    assert_eq!(after[0].2, last.2.wrapping_add(1), "TL0PICIDX follows A's last");
    assert_eq!(after[0].0, last.0.wrapping_add(1), "and so does the sequence number");
    assert!(after.windows(2).all(|w| w[1].1 == w[0].1 + 1 && w[1].2 == w[0].2 + 1));
    // Raising the layer waits for a layer-sync frame; the event says when it happened.
    m.routers[1].take_events();
    m.routers[1].set_output_temporal(20, None).unwrap();
    m.datagram(1, 3, &vp8_layered(0xb1, 7004, 20_004, 204, 1, false), PUB2); // no sync: still filtered
    m.datagram(1, 3, &vp8_layered(0xb1, 7005, 20_005, 204, 1, true), PUB2); // sync: up
    let sent: Vec<_> = m.take_transmits(1).iter().filter(|t| t.to == SUB1).map(|t| vp8_fields(&t.bytes)).collect();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].3, 1);
    let ev = m.routers[1].take_events();
    assert!(ev.iter().any(|e| matches!(e, Event::OutputTemporal { output: 20, layer: 255, .. })), "{ev:?}");
}
