//! The sans-IO [`Router`] without sockets or threads (helpers in common/mod.rs): retransmission
//! (RFC 4585 generic NACK, RFC 4588 RTX).

mod common;

use common::*;

// ---- retransmission (RFC 4585 generic NACK, RFC 4588 RTX) -----------------------------------

#[test]
fn nacks_are_answered_from_the_sources_history_plain_or_as_rtx_on_any_router() {
    let mut m = Mesh::new(2);
    m.endpoint(0, 1, Some(PUB));
    m.endpoint(0, 2, Some(SUB1));
    m.endpoint(1, 3, Some(SUB2));
    m.routers[0].add_source(10, 1, video(0xa1)).unwrap();
    let a = m.sref(0, 10);
    // Output 20 on the source's router, plain retransmission; output 21 on router 1, with RTX.
    m.add_output(0, 20, 2, 0x20, None, Some(a));
    let rtx = ferry_engine::RtxConfig { ssrc: 0x2100, payload_type: 97 };
    let cfg = OutputConfig { source: Some(10), ssrc: 0x21, payload_type: Some(96), rtx: Some(rtx) };
    m.routers[1].add_output(21, 3, &cfg, Some(a), m.now_us, &mut m.ios[1]).unwrap();
    m.settle();
    m.take_transmits(0);
    m.take_transmits(1);
    for i in 0..20u16 {
        m.datagram(0, 1, &rtp_packet(0xa1, 500 + i, 1000 + u32::from(i) * 3000, 96, &[i as u8; 30]), PUB);
    }
    m.settle();
    let sent0 = m.take_transmits(0);
    let sent1 = m.take_transmits(1);
    assert_eq!(seqs_of(&sent0, 0x20).len(), 20);
    assert_eq!(seqs_of(&sent1, 0x21).len(), 20);

    // Plain: the packets come again exactly as they went out.
    m.datagram(0, 2, &rtcp::build_nack(0x77, 0x20, &[503, 507, 508]), SUB1);
    let again = m.take_transmits(0);
    assert_eq!(again.len(), 3);
    for (tx, seq) in again.iter().zip([503u16, 507, 508]) {
        assert_eq!(tx.to, SUB1);
        let first = sent0.iter().find(|t| parse(&t.bytes).1 == seq).unwrap();
        assert_eq!(tx.bytes, first.bytes, "retransmission of {seq} is the packet as first sent");
    }
    let s = m.output_stats(0, 20);
    assert_eq!((s.packets, s.nacked, s.retransmitted, s.rtx_missed), (20, 3, 3, 0));

    // RTX on the other router: own SSRC, PT and numbering; OSN then the original payload.
    m.datagram(1, 3, &rtcp::build_nack(0x77, 0x21, &[510, 511]), SUB2);
    let rtx_sent = m.take_transmits(1);
    assert_eq!(rtx_sent.len(), 2);
    let mut rtx_seqs = Vec::new();
    for (tx, seq) in rtx_sent.iter().zip([510u16, 511]) {
        let (ssrc, rseq, ts, pt, payload) = parse(&tx.bytes);
        assert_eq!((ssrc, pt), (0x2100, 97));
        let (_, _, orig_ts, _, orig_payload) = parse(&sent1.iter().find(|t| parse(&t.bytes).1 == seq).unwrap().bytes);
        assert_eq!(ts, orig_ts);
        assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), seq, "OSN");
        assert_eq!(&payload[2..], &orig_payload[..]);
        rtx_seqs.push(rseq);
    }
    assert_eq!(rtx_seqs[1], rtx_seqs[0].wrapping_add(1), "RTX has its own consecutive numbering");
    let s = m.output_stats(1, 21);
    assert_eq!((s.nacked, s.retransmitted, s.rtx_missed), (2, 2, 0));

    // Misses: never sent (ahead), and older than the history.
    m.datagram(0, 2, &rtcp::build_nack(0x77, 0x20, &[600]), SUB1);
    for i in 20..600u16 {
        m.datagram(0, 1, &rtp_packet(0xa1, 500 + i, 1000 + u32::from(i) * 3000, 96, &[1; 30]), PUB);
    }
    m.settle();
    m.take_transmits(0);
    m.take_transmits(1);
    m.datagram(0, 2, &rtcp::build_nack(0x77, 0x20, &[501]), SUB1);
    assert!(m.take_transmits(0).is_empty(), "501 has left the history");
    let s = m.output_stats(0, 20);
    assert_eq!((s.nacked, s.retransmitted, s.rtx_missed), (5, 3, 2));
}

#[test]
fn retransmissions_are_rate_limited_per_output() {
    let mut m = Mesh::new(1);
    m.endpoint(0, 1, Some(PUB));
    m.endpoint(0, 2, Some(SUB1));
    m.routers[0].add_source(10, 1, video(0xa1)).unwrap();
    let a = m.sref(0, 10);
    m.add_output(0, 20, 2, 0x20, None, Some(a));
    for i in 0..300u16 {
        m.datagram(0, 1, &rtp_packet(0xa1, i + 1, u32::from(i) * 3000, 96, &[0; 30]), PUB);
    }
    m.take_transmits(0);
    // A receiver NACKing everything at once gets the burst, no more.
    let all: Vec<u16> = (1..=300).collect();
    for chunk in all.chunks(100) {
        m.datagram(0, 2, &rtcp::build_nack(0x77, 0x20, chunk), SUB1);
    }
    let burst = m.take_transmits(0).len();
    assert_eq!(burst, 64);
    // 100 ms later the bucket has refilled by 50.
    m.now_us += 100_000;
    m.datagram(0, 2, &rtcp::build_nack(0x77, 0x20, &all[..100]), SUB1);
    assert_eq!(m.take_transmits(0).len(), 50);
    let s = m.output_stats(0, 20);
    assert_eq!(s.nacked, 400);
    assert_eq!(s.retransmitted, 114);
    assert_eq!(s.rtx_missed, 286);
}

#[test]
fn gaps_in_a_publishers_video_are_nacked_and_a_late_repair_keeps_the_output_continuous() {
    let mut m = Mesh::new(1);
    m.endpoint(0, 1, Some(PUB));
    m.endpoint(0, 2, Some(SUB1));
    m.routers[0].add_source(10, 1, video(0xa1)).unwrap();
    let a = m.sref(0, 10);
    m.add_output(0, 20, 2, 0x20, None, Some(a));
    m.take_transmits(0);
    for seq in [100u16, 101, 104, 105] {
        m.datagram(0, 1, &rtp_packet(0xa1, seq, u32::from(seq) * 3000, 96, &[seq as u8; 10]), PUB);
    }
    m.routers[0].after_batch(1, m.now_us, &mut m.ios[0]);
    let t = m.take_transmits(0);
    let nacks: Vec<&Transmit> = t.iter().filter(|t| t.to == PUB).collect();
    assert_eq!(nacks.len(), 1, "one NACK to the publisher");
    let fb = rtcp::parse_feedback(&nacks[0].bytes).unwrap();
    assert!(fb.iter().any(|f| matches!(f, rtcp::Feedback::Nack { media_ssrc: 0xa1, lost, .. } if lost == &vec![102, 103])), "{fb:?}");
    assert_eq!(m.endpoint_stats(0, 1).nacks_sent, 1);
    // The publisher repairs one: the output gets it in its own slot, numbering intact.
    m.datagram(0, 1, &rtp_packet(0xa1, 102, 102 * 3000, 96, &[102; 10]), PUB);
    let t = m.take_transmits(0);
    assert_eq!(t.len(), 1);
    assert_eq!(parse(&t[0].bytes).1, 102, "the late packet keeps its place in the output's numbering");
    // Not asked again within a round trip; 103 is asked again after one.
    m.routers[0].after_batch(1, m.now_us, &mut m.ios[0]);
    assert!(m.take_transmits(0).is_empty());
    m.now_us += 150_000;
    m.routers[0].on_timer(m.now_us, &mut m.ios[0]);
    let t = m.take_transmits(0);
    let fb = rtcp::parse_feedback(&t.iter().find(|t| t.to == PUB).expect("retry").bytes).unwrap();
    assert!(fb.iter().any(|f| matches!(f, rtcp::Feedback::Nack { lost, .. } if lost == &vec![103])));
    let s = m.routers[0].source_stats().into_iter().find(|(id, _)| *id == 10).unwrap().1;
    assert_eq!((s.nacked, s.retransmitted), (3, 1), "102, 103, 103 again asked; 102 recovered");
}

#[test]
fn a_publishers_rtx_is_unwrapped_to_its_source_and_fills_its_slot() {
    let mut m = Mesh::new(1);
    m.endpoint(0, 1, Some(PUB));
    m.endpoint(0, 2, Some(SUB1));
    m.routers[0].add_source(10, 1, video(0xa1)).unwrap();
    m.routers[0].set_source_rtx(10, Some(ferry_engine::RtxConfig { ssrc: 0xa1a1, payload_type: 97 })).unwrap();
    assert!(m.routers[0].set_source_rtx(10, Some(ferry_engine::RtxConfig { ssrc: 0xa1, payload_type: 97 })).is_err(), "the media SSRC is not an RTX SSRC");
    let a = m.sref(0, 10);
    m.add_output(0, 20, 2, 0x20, None, Some(a));
    m.take_transmits(0);
    for seq in [300u16, 302] {
        m.datagram(0, 1, &rtp_packet(0xa1, seq, u32::from(seq) * 10, 96, &[seq as u8; 12]), PUB);
    }
    // 301 comes back as RTX: own SSRC, PT 97, its own numbering; OSN then the payload, padded.
    let mut rtx = rtp_packet(0xa1a1, 7, 3010, 97, &[0x01, 0x2d]);
    rtx.extend_from_slice(&[45u8; 12]);
    rtx.extend_from_slice(&[0, 0, 3]); // 3 bytes of padding (RFC 3550 §5.1)
    rtx[0] |= 0x20;
    m.datagram(0, 1, &rtx, PUB);
    let t = m.take_transmits(0);
    let media: Vec<_> = t.iter().filter(|t| t.to == SUB1).map(|t| parse(&t.bytes)).collect();
    assert_eq!(media.len(), 3);
    let repaired = media.last().unwrap();
    assert_eq!((repaired.0, repaired.1, repaired.2, repaired.3), (0x20, 301, 3010, 96), "the original packet again, in its own slot");
    assert_eq!(repaired.4, vec![45u8; 12], "payload without OSN and padding");
    assert_eq!(m.endpoint_stats(0, 1).rtx_in, 1);
    // An RTX packet too short to carry an OSN is dropped and counted.
    m.datagram(0, 1, &rtp_packet(0xa1a1, 8, 0, 97, &[1]), PUB);
    assert!(m.take_transmits(0).iter().all(|t| t.to != SUB1));
    assert_eq!(m.endpoint_stats(0, 1).rtp_malformed, 1);
    m.routers[0].remove_source(10, &mut m.ios[0]).unwrap();
    m.datagram(0, 1, &rtx, PUB);
    assert_eq!(m.endpoint_stats(0, 1).unknown_ssrc, 1, "gone with its source");
}
