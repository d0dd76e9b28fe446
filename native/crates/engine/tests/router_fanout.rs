//! The sans-IO [`Router`] without sockets or threads (helpers in common/mod.rs): fan-out across
//! routers, and switching an output between sources on other routers.

mod common;

use common::*;

#[test]
fn every_packet_reaches_each_output_once_and_subscriptions_unwind() {
    let mut m = fan_out_mesh();
    // One subscription per router, however many outputs it has.
    assert_eq!(
        m.logged_messages(|x| matches!(x, PeerMessage::Subscribe { .. })),
        vec![(1, 0, PeerMessage::Subscribe { source: 10, worker: 1, subscription: 1 }), (2, 0, PeerMessage::Subscribe { source: 10, worker: 2, subscription: 1 })]
    );
    assert_eq!(m.routers[0].subscription_count(), 2);
    assert_eq!([m.routers[0].remote_feed_count(), m.routers[1].remote_feed_count(), m.routers[2].remote_feed_count()], [0, 1, 1]);

    let mut rng = Rng::mixed(1);
    for i in 0..300u16 {
        m.datagram(0, 1, &vp8_packet(0xa1, 100 + i, 0, Frame::Continuation), PUB);
        m.step_random(&mut rng, 3);
    }
    m.settle();
    let expected: Vec<u16> = (100..400).collect();
    let (t0, t1, t2) = (m.take_transmits(0), m.take_transmits(1), m.take_transmits(2));
    assert_eq!(seqs_of(&t1, 0x20), expected);
    assert_eq!(seqs_of(&t1, 0x21), expected);
    assert_eq!(seqs_of(&t2, 0x22), expected);
    assert_eq!(seqs_of(&t0, 0x23), expected);
    assert_eq!((t0.len(), t1.len(), t2.len()), (300, 600, 300));
    // Each packet handed over once, to each subscriber router once.
    let forwards: Vec<_> = m.forward_log.iter().filter(|(from, _)| *from == 0).map(|(_, f)| f).collect();
    assert_eq!(forwards.len(), 300);
    for (i, f) in forwards.iter().enumerate() {
        let mut w = f.workers.clone();
        w.sort_unstable();
        assert_eq!((w, f.fseq), (vec![1, 2], i as u64));
    }
    assert_eq!(m.routers[1].cross_stats().received, 300);
    assert_eq!(m.routers[1].cross_stats().gaps, 0);

    // Router 1's outputs go: the last one unsubscribes, once.
    m.remove_output(1, 20);
    assert!(m.ios[1].messages.is_empty(), "output 21 still wants the source");
    // Packets already on their way when the last output goes arrive unwanted and go nowhere.
    for i in 0..3u16 {
        m.datagram(0, 1, &vp8_packet(0xa1, 400 + i, 0, Frame::Continuation), PUB);
    }
    m.collect();
    m.remove_output(1, 21);
    assert_eq!(m.ios[1].messages, vec![(0, PeerMessage::Unsubscribe { source: 10, worker: 1 })]);
    assert_eq!(m.routers[1].remote_feed_count(), 0);
    m.settle();
    assert_eq!(m.routers[0].subscription_count(), 1);
    assert_eq!(m.routers[1].cross_stats().unwanted, 3);
    assert!(m.take_transmits(1).is_empty());
    m.datagram(0, 1, &vp8_packet(0xa1, 403, 0, Frame::Continuation), PUB);
    assert_eq!(m.ios[0].forwards.last().map(|f| f.workers.clone()), Some(vec![2]));
    m.settle();
    assert_eq!(seqs_of(&m.take_transmits(2), 0x22), vec![400, 401, 402, 403]);
    assert_eq!(seqs_of(&m.take_transmits(0), 0x23), vec![400, 401, 402, 403]);

    // The source goes: router 2 is told, drops its feed, keeps its (now idle) output.
    m.remove_source(0, 10);
    assert_eq!(m.ios[0].messages, vec![(2, PeerMessage::SourceGone { source: 10 })]);
    m.settle();
    assert_eq!(m.routers[0].subscription_count(), 0);
    assert_eq!(m.routers[2].remote_feed_count(), 0);
    assert_eq!(m.routers[2].output_count(), 1);
    m.datagram(0, 1, &vp8_packet(0xa1, 404, 0, Frame::Continuation), PUB);
    m.settle();
    assert!(m.forward_log.iter().all(|(_, f)| f.fseq < 304));
    assert!((0..3).all(|r| m.take_transmits(r).is_empty()));
    // Switching the idle output to the dead source: subscribe, told it is gone, idle again.
    m.switch(2, 22, Some(SourceRef { id: 10, home: 0, codec: Some(VideoCodec::Vp8), clock_rate: 90000, kind: MediaKind::Video }), false);
    m.settle();
    assert_eq!(m.routers[2].remote_feed_count(), 0);
    assert_eq!(m.logged_messages(|x| matches!(x, PeerMessage::SourceGone { .. })).len(), 2);

    m.remove_output(2, 22);
    m.remove_output(0, 23);
    m.settle();
    for r in &m.routers {
        assert_eq!((r.source_count(), r.output_count(), r.remote_feed_count(), r.subscription_count()), (0, 0, 0, 0));
    }
}

#[test]
fn queue_drops_count_exactly_the_forwards_lost_on_the_way() {
    let mut m = fan_out_mesh();
    m.logging = false;
    let mut rng = Rng::mixed(7);
    // Router 1's queue loses about one packet in five (never the first: a new feed starts
    // counting at the first packet it sees); router 2's loses none.
    m.drop_forward = Some(Box::new(move |to, _source, fseq| to == 1 && fseq > 0 && rng.chance(1, 5)));
    let n = 1000u16;
    let mut pacing = Rng::mixed(8);
    for i in 0..n {
        m.datagram(0, 1, &vp8_packet(0xa1, 5000 + i, 0, Frame::Continuation), PUB);
        m.step_random(&mut pacing, 2);
    }
    m.settle();
    // The last one gets through, so every loss before it shows as a gap.
    m.drop_forward = None;
    m.datagram(0, 1, &vp8_packet(0xa1, 5000 + n, 0, Frame::Continuation), PUB);
    m.settle();
    let lost = m.dropped[1];
    assert!(lost > 100, "{lost}");
    assert_eq!(m.dropped[2], 0);
    for o in [20, 21] {
        let s = m.output_stats(1, o);
        assert_eq!((s.queue_drops, s.dropped, s.packets), (lost, lost, u64::from(n) + 1 - lost), "output {o}");
    }
    let s = m.output_stats(2, 22);
    assert_eq!((s.queue_drops, s.dropped, s.packets), (0, 0, u64::from(n) + 1));
    assert_eq!(m.output_stats(0, 23).queue_drops, 0);
    let cross = m.routers[1].cross_stats();
    assert_eq!((cross.received, cross.gaps, cross.unwanted), (u64::from(n) + 1 - lost, lost, 0));
    // The receiver sees the loss as gaps in the sequence, not as a renumbered stream.
    let seqs = seqs_of(&m.take_transmits(1), 0x20);
    let gaps: u64 = seqs.windows(2).map(|w| u64::from(w[1].wrapping_sub(w[0])) - 1).sum();
    assert_eq!(gaps, lost);
}

/// Known inexactness (not fixed here, see the report): a router that drops its feed of a
/// source and subscribes again while packets of its old subscription are still queued for it
/// takes the first of those as the start of the new feed; packets the home numbered for other
/// routers meanwhile then look like queue drops, though nothing was dropped. The home hands
/// over one `fseq` per packet for all subscribers, so the subscriber cannot tell the two
/// subscriptions' packets apart without more in the protocol.
#[test]
fn resubscribing_while_packets_are_in_flight_counts_no_phantom_queue_drops() {
    let mut m = fan_out_mesh();
    m.remove_output(1, 21);
    m.settle();
    m.datagram(0, 1, &vp8_packet(0xa1, 1, 0, Frame::Continuation), PUB); // fseq 0
    m.settle();
    m.datagram(0, 1, &vp8_packet(0xa1, 2, 0, Frame::Continuation), PUB); // fseq 1, queued for 1 and 2
    m.collect();
    // Router 1's output leaves the source and comes back before router 1 reads its queue.
    m.switch(1, 20, None, false);
    m.switch(1, 20, Some(m.sref(0, 10)), false);
    m.collect();
    assert!(m.deliver_message(0)); // Unsubscribe
    m.datagram(0, 1, &vp8_packet(0xa1, 3, 0, Frame::Continuation), PUB); // fseq 2, router 2 only
    assert_eq!(m.ios[0].forwards.last().map(|f| f.workers.clone()), Some(vec![2]));
    m.settle(); // Subscribe, then router 1 reads fseq 1 into its new feed
    m.datagram(0, 1, &vp8_packet(0xa1, 4, 0, Frame::Continuation), PUB); // fseq 3, both
    m.settle();
    assert_eq!(m.dropped, vec![0, 0, 0]);
    assert_eq!(m.output_stats(1, 20).queue_drops, 0, "nothing addressed to router 1 was lost");
    assert_eq!(m.routers[1].cross_stats().gaps, 0);
}

// ---- switching -----------------------------------------------------------------------------

/// What an output sent, with the origin of each packet from the tag its publisher appended:
/// (out seq, out ts, origin SSRC, origin seq, origin ts).
type Sent = (u16, u32, u8, u16, u32);

fn stream_of(t: &[Transmit], to: SocketAddr) -> Vec<Sent> {
    t.iter()
        .filter(|t| t.to == to)
        .map(|t| {
            let (_, seq, ts, _, payload) = parse(&t.bytes);
            let tag = &payload[payload.len() - 7..];
            (seq, ts, tag[0], u16::from_be_bytes([tag[1], tag[2]]), u32::from_be_bytes([tag[3], tag[4], tag[5], tag[6]]))
        })
        .collect()
}

/// One RTP stream whatever feeds it: at a change of source the sequence number goes up by
/// exactly one and the timestamp does not go back; between two packets of one source the
/// output keeps that source's own spacing (so a packet of it the output did not get, while
/// switched away and back, still shows as missing rather than being renumbered away).
fn assert_one_stream(name: &str, s: &[Sent]) {
    for (i, w) in s.windows(2).enumerate() {
        let ((seq0, ts0, src0, iseq0, its0), (seq1, ts1, src1, iseq1, its1)) = (w[0], w[1]);
        let around = || format!("{name}, packet {i}: {:?}", &s[i.saturating_sub(3)..(i + 4).min(s.len())]);
        assert!(ts1.wrapping_sub(ts0) as i32 >= 0, "timestamp went back: {}", around());
        if src0 == src1 {
            let step = iseq1.wrapping_sub(iseq0);
            assert!((1..1000).contains(&step), "{}", around());
            assert_eq!(seq1.wrapping_sub(seq0), step, "{}", around());
            assert_eq!(ts1.wrapping_sub(ts0), its1.wrapping_sub(its0), "{}", around());
        } else {
            assert_eq!(seq1, seq0.wrapping_add(1), "{}", around());
        }
    }
}

struct Publisher {
    router: usize,
    endpoint: u32,
    ssrc: u32,
    from: SocketAddr,
    seq: u16,
    ts: u32,
}

impl Publisher {
    /// The next packet: a VP8 keyframe start, inter-frame start or continuation, tagged with
    /// its origin (SSRC octet, seq, ts) in its last 7 octets.
    fn next(&mut self, rng: &mut Rng) -> Vec<u8> {
        let frame = match rng.below(100) {
            0..=9 => Frame::KeyStart,
            10..=49 => Frame::DeltaStart,
            _ => Frame::Continuation,
        };
        if frame != Frame::Continuation {
            self.ts = self.ts.wrapping_add(3000);
        }
        self.seq = self.seq.wrapping_add(1);
        let mut p = vp8_packet(self.ssrc, self.seq, self.ts, frame);
        p.push(self.ssrc as u8);
        p.extend_from_slice(&self.seq.to_be_bytes());
        p.extend_from_slice(&self.ts.to_be_bytes());
        p
    }
}

/// Sources A (router 0) and B (router 1); output X on router 1, Y on router 2; each output
/// switched `switches` times between A and B, immediately or at the new source's keyframe,
/// while both publishers send with random pacing; the routers' channels deliver everything
/// after each step, or a few items at a time from random channels.
fn switching_run(seed: u64, switches: usize, deliver_at_once: bool) {
    let mut m = Mesh::new(3);
    m.logging = false;
    m.endpoint(0, 1, Some(PUB));
    m.endpoint(1, 2, Some(PUB2));
    m.endpoint(1, 3, Some(SUB1));
    m.endpoint(2, 4, Some(SUB2));
    m.routers[0].add_source(10, 1, video(0xa)).unwrap();
    m.routers[1].add_source(11, 2, video(0xb)).unwrap();
    let refs = [m.sref(0, 10), m.sref(1, 11)];
    // (router, output, index of the source it was last switched to)
    let mut outputs = [(1usize, 20u32, 0usize), (2, 21, 1)];
    m.add_output(1, 20, 3, 0x2000, None, Some(refs[0]));
    m.add_output(2, 21, 4, 0x2100, None, Some(refs[1]));
    let mut publishers = [
        Publisher { router: 0, endpoint: 1, ssrc: 0xa, from: PUB, seq: 65000, ts: u32::MAX - 200_000 },
        Publisher { router: 1, endpoint: 2, ssrc: 0xb, from: PUB2, seq: 10, ts: 1_000 },
    ];
    let mut rng = Rng::mixed(seed);
    let mut done = [0usize; 2];
    let mut keyframe_switches = 0;
    let mut sent: [Vec<Sent>; 2] = [Vec::new(), Vec::new()];
    let take = |m: &mut Mesh, sent: &mut [Vec<Sent>; 2]| {
        for (k, r, to) in [(0, 1, SUB1), (1, 2, SUB2)] {
            sent[k].extend(stream_of(&m.take_transmits(r), to));
        }
        m.take_transmits(0); // PLIs to publisher A
    };
    m.now_us = 1_000_000;
    while done.iter().any(|&d| d < switches) {
        m.now_us += rng.below_u64(15_000);
        if rng.chance(1, 12) {
            let k = rng.below(2);
            let (r, id, current) = outputs[k];
            if done[k] < switches {
                let on_keyframe = rng.chance(1, 2);
                keyframe_switches += usize::from(on_keyframe);
                m.switch(r, id, Some(refs[1 - current]), on_keyframe);
                outputs[k].2 = 1 - current;
                done[k] += 1;
            }
        } else {
            let p = &mut publishers[rng.below(2)];
            let packet = p.next(&mut rng);
            let (r, ep, from) = (p.router, p.endpoint, p.from);
            m.datagram(r, ep, &packet, from);
        }
        if deliver_at_once {
            m.settle();
        } else {
            let n = rng.below(4);
            m.step_random(&mut rng, n);
        }
        take(&mut m, &mut sent);
    }
    m.settle();
    take(&mut m, &mut sent);
    assert!(keyframe_switches > switches / 2, "{keyframe_switches}");
    for k in 0..2 {
        assert!(sent[k].len() > 200, "output {k} sent {}", sent[k].len());
        assert_one_stream(["X", "Y"][k], &sent[k]);
        // Both sources fed it, in turns.
        let changes = sent[k].windows(2).filter(|w| w[0].2 != w[1].2).count();
        assert!(changes > switches / 4, "output {k}: {changes} changes of source");
    }
    // Nothing was lost between the routers, so nothing may be counted as lost (only when
    // each step is delivered at once: see the ignored test above for the other case).
    if deliver_at_once {
        for r in &m.routers {
            assert_eq!(r.cross_stats().gaps, 0, "router {}", r.worker());
        }
        assert!(m.routers.iter().flat_map(|r| r.output_stats()).all(|(_, s)| s.queue_drops == 0));
    }
    let switched = m.routers.iter_mut().flat_map(|r| r.take_events()).filter(|e| matches!(e, Event::OutputSwitched { .. })).count();
    assert!(switched > 0);
}

#[test]
fn switching_between_routers_keeps_each_output_one_stream() {
    for seed in 1..=4 {
        switching_run(seed, 100, true);
    }
}

#[test]
fn switching_between_routers_with_channels_in_random_order() {
    for seed in 1..=4 {
        switching_run(seed, 100, false);
    }
}
