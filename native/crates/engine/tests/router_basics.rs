//! The sans-IO [`Router`] without sockets or threads (helpers in common/mod.rs): one router
//! (rewriting, pausing, unknown SSRCs, malformed input, keyframe requests) and SRTP across
//! routers.

mod common;

use common::*;

// ---- one router ----------------------------------------------------------------------------

#[test]
fn same_router_output_rewrites_ssrc_seq_ts_and_payload_type() {
    let mut m = Mesh::new(1);
    m.endpoint(0, 1, Some(PUB));
    m.endpoint(0, 2, Some(SUB1));
    m.routers[0].add_source(10, 1, video(0xa1)).unwrap();
    m.routers[0].add_source(11, 1, video(0xa2)).unwrap();
    let (a, b) = (m.sref(0, 10), m.sref(0, 11));
    m.add_output(0, 20, 2, 0x5555, Some(111), Some(a));
    // Attaching asks the publisher for a keyframe, on the publisher's endpoint and socket.
    let t = m.take_transmits(0);
    assert_eq!(t.len(), 1);
    assert_eq!((t[0].endpoint, t[0].transport, t[0].to), (1, transport_of(1), PUB));
    assert_eq!(pli_media_ssrc(&t[0].bytes), Some(0xa1));

    m.now_us = 1_000_000;
    for i in 0..10u16 {
        m.datagram(0, 1, &rtp_packet(0xa1, 1000 + i, 90_000 + u32::from(i) * 3000, 96, &[i as u8; 20]), PUB);
    }
    let t = m.take_transmits(0);
    assert_eq!(t.len(), 10);
    for (i, tx) in t.iter().enumerate() {
        assert_eq!((tx.endpoint, tx.transport, tx.to), (2, transport_of(2), SUB1));
        // The first packet ever keeps the source's own numbering; SSRC and PT are the output's.
        let (ssrc, seq, ts, pt, payload) = parse(&tx.bytes);
        assert_eq!((ssrc, seq, ts, pt), (0x5555, 1000 + i as u16, 90_000 + i as u32 * 3000, 111));
        assert_eq!(payload, vec![i as u8; 20]);
    }
    let last_ts = 90_000 + 9 * 3000;

    // Switch to B, whose numbering is unrelated: the output goes on from where it was.
    m.now_us += 20_000;
    m.switch(0, 20, Some(b), false);
    assert_eq!(m.take_transmits(0).iter().map(|t| pli_media_ssrc(&t.bytes)).collect::<Vec<_>>(), vec![Some(0xa2)]);
    for i in 0..10u16 {
        m.datagram(0, 1, &rtp_packet(0xa2, 65530u16.wrapping_add(i), 4_000_000_000 + u32::from(i) * 3000, 100, &[0xb0 | i as u8; 8]), PUB);
        m.datagram(0, 1, &rtp_packet(0xa1, 1010 + i, 150_000, 96, &[0; 4]), PUB);
        // no longer forwarded
    }
    let t = m.take_transmits(0);
    assert_eq!(t.len(), 10);
    for (i, tx) in t.iter().enumerate() {
        let (ssrc, seq, ts, pt, payload) = parse(&tx.bytes);
        assert_eq!((ssrc, pt), (0x5555, 111));
        assert_eq!(seq, 1010 + i as u16, "sequence continues across the switch");
        // Rebased on the 20 ms that passed (1800 ticks at 90 kHz), then B's own spacing.
        assert_eq!(ts, last_ts + 1800 + i as u32 * 3000);
        assert_eq!(payload, vec![0xb0 | i as u8; 8]);
    }
    let s = m.output_stats(0, 20);
    assert_eq!((s.packets, s.dropped, s.queue_drops), (20, 0, 0));
    let sources = m.routers[0].source_stats();
    assert_eq!(sources.iter().map(|(id, s)| (*id, s.packets)).collect::<Vec<_>>(), vec![(10, 20), (11, 10)]);
    let ep = m.endpoint_stats(0, 1);
    assert_eq!((ep.rx_packets, ep.rtp_in, ep.rtp_malformed, ep.unknown_ssrc), (30, 30, 0, 0));
}

#[test]
fn paused_output_drops_and_counts() {
    let mut m = Mesh::new(1);
    m.endpoint(0, 1, Some(PUB));
    m.endpoint(0, 2, Some(SUB1));
    m.endpoint(0, 3, Some(SUB2));
    m.routers[0].add_source(10, 1, video(0xa1)).unwrap();
    let a = m.sref(0, 10);
    m.add_output(0, 20, 2, 0x20, None, Some(a));
    m.add_output(0, 21, 3, 0x21, None, Some(a));
    m.take_transmits(0);
    m.routers[0].pause_output(20, true).unwrap();
    for i in 0..5u16 {
        m.datagram(0, 1, &vp8_packet(0xa1, i, 0, Frame::Continuation), PUB);
    }
    let t = m.take_transmits(0);
    assert_eq!(t.len(), 5);
    assert!(t.iter().all(|t| t.to == SUB2), "only the running output sends");
    assert_eq!(m.output_stats(0, 20).dropped, 5);
    assert_eq!(m.output_stats(0, 20).packets, 0);
    assert_eq!(m.output_stats(0, 21).dropped, 0);

    m.routers[0].pause_output(20, false).unwrap();
    m.datagram(0, 1, &vp8_packet(0xa1, 5, 0, Frame::Continuation), PUB);
    assert_eq!(m.take_transmits(0).iter().filter(|t| t.to == SUB1).count(), 1);
    let s = m.output_stats(0, 20);
    assert_eq!((s.packets, s.dropped), (1, 5));
    assert!(m.routers[0].pause_output(99, true).is_err());

    // A full send queue drops too, and says so.
    m.ios[0].refuse_slots = true;
    m.datagram(0, 1, &vp8_packet(0xa1, 6, 0, Frame::Continuation), PUB);
    m.ios[0].refuse_slots = false;
    assert!(m.take_transmits(0).is_empty());
    assert_eq!(m.output_stats(0, 20).dropped, 6);
    assert_eq!(m.output_stats(0, 21).dropped, 1);
}

#[test]
fn unknown_ssrcs_are_reported_once_each_up_to_32() {
    let mut m = Mesh::new(1);
    m.endpoint(0, 1, Some(PUB));
    m.endpoint(0, 2, Some(PUB2));
    for round in 0..3 {
        for ssrc in 0..40u32 {
            m.datagram(0, 1, &rtp_packet(0x1000 + ssrc, round, 0, 97, &[1, 2, 3]), PUB);
        }
    }
    let events = m.routers[0].take_events();
    let reported: Vec<u32> = events
        .iter()
        .map(|e| match e {
            Event::UnknownSsrc { endpoint: 1, ssrc, payload_type: 97, rid: None } => *ssrc,
            other => panic!("unexpected event {other:?}"),
        })
        .collect();
    assert_eq!(reported, (0x1000..0x1000 + 32).collect::<Vec<_>>());
    assert_eq!(m.endpoint_stats(0, 1).unknown_ssrc, 120);

    // The cap is per endpoint.
    m.datagram(0, 2, &rtp_packet(0x1000, 0, 0, 96, &[]), PUB2);
    assert!(matches!(m.routers[0].take_events().as_slice(), [Event::UnknownSsrc { endpoint: 2, ssrc: 0x1000, .. }]));
    // A source claiming a reported SSRC takes its packets from then on; no new event.
    m.routers[0].add_source(10, 1, video(0x1001)).unwrap();
    m.datagram(0, 1, &rtp_packet(0x1001, 9, 0, 96, &[]), PUB);
    assert!(m.routers[0].take_events().is_empty());
    assert_eq!(m.routers[0].source_stats()[0].1.packets, 1);
}

#[test]
fn malformed_rtp_and_rtcp_are_counted() {
    let mut m = Mesh::new(1);
    m.endpoint(0, 1, Some(PUB));
    m.routers[0].add_source(10, 1, video(0xa1)).unwrap();
    let malformed_rtp: [&[u8]; 4] = [
        &[0x80, 96, 0, 1],                                         // shorter than the fixed header
        &[0x8f, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0xa1],              // 15 CSRCs announced, none there
        &[0x90, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0xa1, 0xbe, 0xde],  // extension header cut short
        &[0xa0, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0xa1, 1, 2, 3, 60], // padding longer than the packet
    ];
    for p in malformed_rtp {
        m.datagram(0, 1, p, PUB);
    }
    m.datagram(0, 1, &[0x80, 201, 0, 7, 0, 0, 0, 1], PUB); // RR whose length runs past the end
    m.datagram(0, 1, &[], PUB);
    m.datagram(0, 1, &[200, 1, 2, 3], PUB); // first byte of no protocol (RFC 7983)
    m.datagram(0, 1, &[0x01, 0x01, 0, 0], PUB); // STUN on an endpoint without ICE
    let ep = m.endpoint_stats(0, 1);
    assert_eq!(ep.rtp_malformed, 4);
    assert_eq!(ep.rtcp_malformed, 1);
    assert_eq!(ep.demux_unknown, 2);
    assert_eq!(ep.stun_dropped, 1);
    assert_eq!((ep.rx_packets, ep.rtp_in, ep.rtcp_in), (8, 4, 1));
    assert_eq!(m.routers[0].source_stats()[0].1.packets, 0);
    assert!(m.routers[0].take_events().is_empty());
    // Datagrams for an endpoint that does not exist change nothing.
    m.datagram(0, 77, &rtp_packet(0xa1, 1, 0, 96, &[]), PUB);
    assert_eq!(m.routers[0].source_stats()[0].1.packets, 0);
}

#[test]
fn pli_for_an_output_is_relayed_to_the_publisher_rate_limited() {
    let mut m = Mesh::new(1);
    m.endpoint(0, 1, Some(PUB));
    m.endpoint(0, 2, Some(SUB1));
    m.routers[0].add_source(10, 1, video(0xa1)).unwrap();
    let a = m.sref(0, 10);
    m.add_output(0, 20, 2, 0x5555, None, Some(a));
    m.take_transmits(0);
    m.routers[0].take_events();

    let relayed = |m: &mut Mesh, at_us: u64, rtcp: &[u8]| -> bool {
        m.now_us = at_us;
        m.datagram(0, 2, rtcp, SUB1);
        let t = m.take_transmits(0);
        assert!(t.len() <= 1);
        if let Some(t) = t.first() {
            assert_eq!((t.endpoint, t.to), (1, PUB));
            assert_eq!(pli_media_ssrc(&t.bytes), Some(0xa1), "PLI for the publisher's own SSRC");
        }
        !t.is_empty()
    };
    let pli = rtcp::build_pli(0x9999, 0x5555);
    assert!(relayed(&mut m, 1_000_000, &pli));
    assert!(!relayed(&mut m, 1_100_000, &pli), "within 300 ms");
    assert!(!relayed(&mut m, 1_299_999, &test_rtcp::build_fir(0x9999, 0x5555, 1)));
    assert!(relayed(&mut m, 1_300_000, &test_rtcp::build_fir(0x9999, 0x5555, 2)));
    // Feedback for an SSRC that is no output here is ignored.
    assert!(!relayed(&mut m, 5_000_000, &rtcp::build_pli(0x9999, 0xa1)));
    // A forced request (a switch, the control plane) goes out regardless.
    m.now_us = 1_350_000;
    m.routers[0].request_keyframe(10, true, m.now_us, &mut m.ios[0]);
    assert_eq!(m.take_transmits(0).len(), 1);
    m.routers[0].request_keyframe(10, false, m.now_us + 1, &mut m.ios[0]);
    assert!(m.take_transmits(0).is_empty());
    // Three here, and the one asked for when the output was attached.
    assert_eq!(m.endpoint_stats(0, 1).keyframe_requests_relayed, 4);
    assert_eq!(m.routers[0].take_events(), vec![Event::KeyframeRequested { source: 10 }; 3]);
}

/// The keyframe request sent when an output is attached counts for the rate limit as any
/// other: a subscriber's PLI right after it is not relayed again, whether the output's
/// router is the source's or another.
#[test]
fn attaching_an_output_starts_the_keyframe_rate_limit_at_the_current_time() {
    for output_router in [0, 1] {
        let mut m = Mesh::new(2);
        m.endpoint(0, 1, Some(PUB));
        m.endpoint(output_router, 2, Some(SUB1));
        m.routers[0].add_source(10, 1, video(0xa1)).unwrap();
        m.now_us = 5_000_000;
        let a = m.sref(0, 10);
        m.add_output(output_router, 20, 2, 0x5555, None, Some(a));
        m.settle();
        assert_eq!(m.take_transmits(0).len(), 1, "the attach asks for a keyframe");
        m.now_us = 5_100_000;
        m.datagram(output_router, 2, &rtcp::build_pli(0x9999, 0x5555), SUB1);
        m.settle();
        assert!(m.take_transmits(0).is_empty(), "PLI 100 ms after the attach relayed (output on router {output_router})");
        m.now_us = 5_300_000;
        m.datagram(output_router, 2, &rtcp::build_pli(0x9999, 0x5555), SUB1);
        m.settle();
        assert_eq!(m.take_transmits(0).len(), 1);
    }
}

#[test]
fn pli_for_an_output_on_another_router_reaches_the_publisher() {
    let mut m = Mesh::new(2);
    m.endpoint(0, 1, Some(PUB));
    m.endpoint(1, 2, Some(SUB1));
    m.routers[0].add_source(10, 1, video(0xa1)).unwrap();
    let a = m.sref(0, 10);
    m.add_output(1, 20, 2, 0x5555, None, Some(a));
    assert_eq!(m.ios[1].messages, vec![(0, PeerMessage::Subscribe { source: 10, worker: 1, subscription: 1 }), (0, PeerMessage::KeyframeRequest { source: 10, force: true })]);
    m.settle();
    assert_eq!(m.take_transmits(0).iter().map(|t| pli_media_ssrc(&t.bytes)).collect::<Vec<_>>(), vec![Some(0xa1)]);

    let relayed = |m: &mut Mesh, at_us: u64| -> bool {
        m.now_us = at_us;
        m.datagram(1, 2, &rtcp::build_pli(0x9999, 0x5555), SUB1);
        assert!(m.ios[1].transmits.is_empty(), "nothing goes out on the subscriber's router");
        assert_eq!(m.ios[1].messages, vec![(0, PeerMessage::KeyframeRequest { source: 10, force: false })]);
        m.settle();
        let t = m.take_transmits(0);
        t.iter().for_each(|t| assert_eq!((t.endpoint, t.to, pli_media_ssrc(&t.bytes)), (1, PUB, Some(0xa1))));
        !t.is_empty()
    };
    assert!(relayed(&mut m, 1_000_000));
    assert!(!relayed(&mut m, 1_200_000));
    assert!(relayed(&mut m, 1_300_000));
    assert_eq!(m.endpoint_stats(0, 1).keyframe_requests_relayed, 3);
}

#[test]
fn srtp_is_removed_once_at_home_and_applied_per_output_on_other_routers() {
    let mut m = Mesh::new(3);
    m.endpoint(0, 1, Some(PUB));
    m.endpoint(1, 2, Some(SUB1));
    m.endpoint(2, 3, Some(SUB2));
    // Each direction of each endpoint has its own key: 1x from ferry, 2x to ferry.
    m.routers[0].set_srtp(1, &keys(0x11, 0x21)).unwrap();
    m.routers[1].set_srtp(2, &keys(0x12, 0x22)).unwrap();
    m.routers[2].set_srtp(3, &keys(0x13, 0x23)).unwrap();
    assert!(m.routers[0]
        .set_srtp(1, &SrtpKeys { profile: PROFILE, local_key: vec![1; 3], local_salt: vec![], remote_key: vec![], remote_salt: vec![] })
        .is_err());
    let (mut publisher_tx, mut publisher_rx) = (context(0x21), context(0x11));
    let (mut sub1_tx, mut sub1_rx) = (context(0x22), context(0x12));
    let mut sub2_rx = context(0x13);

    m.routers[0].add_source(10, 1, video(0xa1)).unwrap();
    let a = m.sref(0, 10);
    m.add_output(1, 20, 2, 0x2020, None, Some(a));
    m.add_output(2, 21, 3, 0x2121, None, Some(a));
    m.settle();
    // The attach PLIs reach the publisher SRTCP-protected with its endpoint's key.
    let plis = m.take_transmits(0);
    assert_eq!(plis.len(), 2);
    for t in &plis {
        assert!(pli_media_ssrc(&t.bytes).is_none(), "sent in the clear");
        assert_eq!(pli_media_ssrc(&unprotect_rtcp(&mut publisher_rx, &t.bytes).unwrap()), Some(0xa1));
    }
    let plain: Vec<Vec<u8>> = (0..20u16).map(|i| vp8_packet(0xa1, 7000 + i, u32::from(i) * 3000, Frame::DeltaStart)).collect();
    for p in &plain {
        let wire = protect_rtp(&mut publisher_tx, p);
        m.datagram(0, 1, &wire, PUB);
    }
    // Decrypted once at home: each packet is handed over once, in the clear, to both routers.
    assert_eq!(m.ios[0].forwards.len(), 20);
    for (i, f) in m.ios[0].forwards.iter().enumerate() {
        let mut workers = f.workers.clone();
        workers.sort_unstable();
        assert_eq!((workers, f.source, f.fseq), (vec![1, 2], 10, i as u64));
        assert_eq!(f.packet, plain[i]);
    }
    m.settle();
    for (r, ctx, other, ssrc, to) in [(1, &mut sub1_rx, context(0x13), 0x2020, SUB1), (2, &mut sub2_rx, context(0x12), 0x2121, SUB2)] {
        let mut other = other;
        let t = m.take_transmits(r);
        assert_eq!(t.len(), 20);
        for (i, tx) in t.iter().enumerate() {
            assert_eq!(tx.to, to);
            assert!(unprotect_rtp(&mut other, &tx.bytes).is_none(), "encrypted with this output's key only");
            let got = unprotect_rtp(ctx, &tx.bytes).expect("the subscriber decrypts");
            let (out_ssrc, seq, ts, _, payload) = parse(&got);
            assert_eq!((out_ssrc, seq, ts), (ssrc, 7000 + i as u16, i as u32 * 3000));
            assert_eq!(payload, vp8_payload(Frame::DeltaStart));
        }
    }

    // A forged packet and a replay are dropped at home and never handed over.
    let mut forged = protect_rtp(&mut publisher_tx, &vp8_packet(0xa1, 7020, 0, Frame::DeltaStart));
    let replay = protect_rtp(&mut publisher_tx, &vp8_packet(0xa1, 7021, 0, Frame::DeltaStart));
    forged[14] ^= 1;
    m.datagram(0, 1, &forged, PUB);
    m.datagram(0, 1, &replay, PUB);
    m.datagram(0, 1, &replay, PUB);
    let ep = m.endpoint_stats(0, 1);
    assert_eq!((ep.srtp_auth_failures, ep.srtp_replays), (1, 1));
    m.collect();
    assert_eq!(m.forward_log.len(), 21);

    // The subscriber's SRTCP PLI travels home and out to the publisher, re-protected.
    m.now_us = 2_000_000;
    m.datagram(1, 2, &protect_rtcp(&mut sub1_tx, &rtcp::build_pli(0x77, 0x2020)), SUB1);
    m.datagram(1, 2, &rtcp::build_pli(0x77, 0x2020), SUB1); // in the clear: refused
    assert_eq!(m.endpoint_stats(1, 2).srtcp_failures, 1);
    m.settle();
    let t = m.take_transmits(0);
    assert_eq!(t.len(), 1);
    assert_eq!(pli_media_ssrc(&unprotect_rtcp(&mut publisher_rx, &t[0].bytes).unwrap()), Some(0xa1));
}
