//! Plain RTP legs (SIP, remote publishers, forwarders, Streaming ingest): what only WebRTC
//! endpoints carry is dropped and counted there.

mod common;

use common::{addr, TestIo};
use ferry_engine::{EndpointConfig, Router};

#[test]
fn dtls_looking_datagrams_on_a_plain_leg_are_counted_not_passed_up() {
    let mut router = Router::new(0);
    let mut io = TestIo::new();
    let local = addr(127, 0, 0, 1, 4000);
    router.add_endpoint(1, 1, local, &EndpointConfig::new(local)).unwrap();
    for first in [20u8, 22, 63] {
        let mut datagram = vec![first, 254, 253, 0, 1, 2, 3];
        let len = datagram.len();
        router.on_datagram(1, &mut datagram, len, addr(127, 0, 0, 1, 5000), 0, &mut io);
    }
    assert!(router.take_events().is_empty(), "nothing reaches the control plane");
    let stats = router.endpoint_stats().into_iter().find(|e| e.0 == 1).unwrap().2;
    assert_eq!((stats.dtls_in, stats.demux_unknown), (0, 3));
}

/// A source that ignores keyframe requests (an ingest without RTCP): with the keyframe cache
/// on, an output that starts late gets the current group of pictures at once, keyframe first,
/// and its numbering runs on into the live packets.
#[test]
fn an_output_starting_late_gets_the_cached_group_of_pictures_first() {
    use common::{vp8_packet, video, Frame};
    use ferry_engine::OutputConfig;
    let mut router = Router::new(0);
    let mut io = TestIo::new();
    let ingest = addr(127, 0, 0, 1, 4000);
    router.add_endpoint(1, 1, ingest, &EndpointConfig::new(ingest)).unwrap();
    let viewer = addr(127, 0, 0, 1, 4001);
    let mut config = EndpointConfig::new(viewer);
    config.remote = Some(addr(127, 0, 0, 1, 6000));
    router.add_endpoint(2, 2, viewer, &config).unwrap();
    router.add_source(10, 1, video(500)).unwrap();
    router.set_keyframe_cache(10, true).unwrap();
    let send = |router: &mut Router, io: &mut TestIo, seq: u16, frame: Frame| {
        let mut p = vp8_packet(500, seq, u32::from(seq) * 3000, frame);
        let len = p.len();
        p.resize(2048, 0);
        router.on_datagram(1, &mut p, len, addr(127, 0, 0, 1, 5000), u64::from(seq) * 1000, io);
    };
    // An old group, then the current one: keyframe at 10, deltas 11..=14.
    for seq in 1..10 {
        send(&mut router, &mut io, seq, if seq == 1 { Frame::KeyStart } else { Frame::DeltaStart });
    }
    for seq in 10..15 {
        send(&mut router, &mut io, seq, if seq == 10 { Frame::KeyStart } else { Frame::DeltaStart });
    }
    io.transmits.clear();
    let source = router.source_ref(10).unwrap();
    router.add_output(20, 2, &OutputConfig { source: Some(10), ssrc: 900, payload_type: None, rtx: None }, Some(source), 20_000, &mut io).unwrap();
    send(&mut router, &mut io, 15, Frame::DeltaStart);
    let to_viewer: Vec<(u16, Vec<u8>)> = io.transmits.iter().filter(|t| t.endpoint == 2).map(|t| (common::parse(&t.bytes).1, common::parse(&t.bytes).4)).collect();
    assert_eq!(to_viewer.len(), 6, "the current group (5 packets) at once, then the live one");
    assert_eq!(to_viewer[0].1[..4], [0x10, 0x10, 0x02, 0x00], "the keyframe first");
    assert!(to_viewer.windows(2).all(|w| w[1].0 == w[0].0.wrapping_add(1)), "one numbering from the cache into the live packets");
    let out = router.output_stats().into_iter().find(|o| o.0 == 20).unwrap().1;
    assert_eq!(out.replayed, 5);
    // Without the cache: nothing until the next keyframe arrives.
    router.set_keyframe_cache(10, false).unwrap();
    assert!(router.set_keyframe_cache(99, true).is_err());
}
