//! Recording in the sans-IO [`Router`]: a recorded source hands each packet to its recording
//! after SRTP is removed, once, with its arrival time; what SRTP rejects is never recorded.

mod common;

use common::*;

#[test]
fn a_recorded_source_hands_decrypted_packets_to_its_recording_until_stopped() {
    let mut m = publisher_and_subscriber(1, 0);
    m.routers[0].set_srtp(1, &keys(0x11, 0x21)).unwrap();
    let mut publisher_tx = context(0x21);
    assert!(m.routers[0].set_recording(99, Some(5)).is_err(), "no such source");
    m.routers[0].set_recording(10, Some(5)).unwrap();
    let plain: Vec<Vec<u8>> = (0..10u16).map(|i| vp8_packet(0xa1, 100 + i, u32::from(i) * 3000, Frame::DeltaStart)).collect();
    for (i, p) in plain.iter().enumerate() {
        m.now_us = 1_000_000 + i as u64 * 33_000;
        let wire = protect_rtp(&mut publisher_tx, p);
        m.datagram(0, 1, &wire, PUB);
    }
    let recorded = std::mem::take(&mut m.ios[0].recorded);
    assert_eq!(recorded.len(), 10);
    for (i, (recording, packet, at)) in recorded.iter().enumerate() {
        assert_eq!((*recording, packet, *at), (5, &plain[i], 1_000_000 + i as u64 * 33_000));
    }
    // A forged packet is dropped before it could be recorded.
    let mut forged = protect_rtp(&mut publisher_tx, &vp8_packet(0xa1, 110, 0, Frame::DeltaStart));
    forged[14] ^= 1;
    m.datagram(0, 1, &forged, PUB);
    assert!(m.ios[0].recorded.is_empty());
    m.routers[0].set_recording(10, None).unwrap();
    let wire = protect_rtp(&mut publisher_tx, &vp8_packet(0xa1, 111, 0, Frame::DeltaStart));
    m.datagram(0, 1, &wire, PUB);
    assert!(m.ios[0].recorded.is_empty(), "stopped");
    assert_eq!(m.routers[0].source_stats()[0].1.packets, 11);
}
