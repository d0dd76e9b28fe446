//! The engine's receive path with UDP GRO on its sockets: SRTP bursts sent with UDP GSO (which
//! loopback hands to a GRO socket as coalesced buffers) are decrypted in place datagram by
//! datagram and forwarded whole, in order.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use ferry_engine::bench::{blast, BlastOptions};
use ferry_engine::{EndpointConfig, Engine, EngineOptions, Event, MediaKind, OutputConfig, SourceConfig, SrtpKeys, SrtpProfile};
use ferry_srtp::SrtpContext;

const PROFILE: SrtpProfile = SrtpProfile::AeadAes128Gcm;

fn keys(seed: u8) -> SrtpKeys {
    let key = vec![seed; PROFILE.master_key_len()];
    let salt = vec![seed.wrapping_add(1); PROFILE.master_salt_len()];
    SrtpKeys { profile: PROFILE, local_key: key.clone(), local_salt: salt.clone(), remote_key: key, remote_salt: salt }
}

/// Sends `count` SRTP packets of `payload` bytes from a fresh socket, in GSO bursts of 32.
fn burst(to: SocketAddr, first_seq: u16, payload: usize, count: u64) {
    let k = keys(7);
    let result = blast(&BlastOptions {
        target: to,
        profile: Some(PROFILE),
        key: k.local_key,
        salt: k.local_salt,
        ssrc: 0x1000,
        payload_type: 96,
        payload,
        duration: Duration::from_secs(5),
        packets_per_second: 0,
        max_packets: count,
        first_seq,
        twcc_extension_id: None,
    })
    .unwrap();
    assert_eq!((result.sent, result.failed), (count, 0));
}

#[test]
fn gso_bursts_into_a_gro_socket_are_forwarded_whole_and_in_order() {
    let engine = Engine::new(EngineOptions { workers: 1, ..EngineOptions::default() }, Arc::new(|_: Vec<Event>| {})).unwrap();
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let (ingress, ingress_addr) = engine.open_endpoint(EndpointConfig::new(any)).unwrap();
    engine.set_srtp(ingress, keys(7)).unwrap();
    let source = engine
        .add_source(ingress, SourceConfig { ssrc: 0x1000, ssrc_offset: 0, kind: MediaKind::Video, clock_rate: 90000, codec: None })
        .unwrap();
    let peer = UdpSocket::bind(any).unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut cfg = EndpointConfig::new(any);
    cfg.remote = Some(peer.local_addr().unwrap());
    let (egress, _) = engine.open_endpoint(cfg).unwrap();
    engine.set_srtp(egress, keys(20)).unwrap();
    engine.add_output(egress, OutputConfig { source: Some(source), ssrc: 0x2000, payload_type: None, rtx: None }).unwrap();

    // Three full bursts and a short one of one size, then (from another socket) another size.
    let phases: [(u16, usize, u64); 2] = [(1, 1000, 101), (102, 300, 45)];
    let mut rx = SrtpContext::new(PROFILE, &keys(20).local_key, &keys(20).local_salt).unwrap();
    let mut buf = [0u8; 2048];
    let mut last_seq: Option<u16> = None;
    for (first_seq, payload, count) in phases {
        burst(ingress_addr, first_seq, payload, count);
        for k in 0..count {
            let (n, _) = peer.recv_from(&mut buf).unwrap_or_else(|e| panic!("packet {first_seq}+{k}: {e}"));
            let n = rx.unprotect_rtp(&mut buf, n).unwrap();
            let h = ferry_rtp::rtp::parse_rtp(&buf[..n]).unwrap();
            assert_eq!((h.ssrc, n), (0x2000, 12 + payload), "packet {first_seq}+{k}");
            if let Some(l) = last_seq {
                assert_eq!(h.sequence, l.wrapping_add(1), "packet {first_seq}+{k}: in order, none missing");
            }
            last_seq = Some(h.sequence);
            // The payload is the sender's, built from its sequence number.
            let sent_seq = first_seq.wrapping_add(k as u16);
            assert!(buf[12..n].iter().enumerate().all(|(i, &b)| b == (i as u8).wrapping_add(sent_seq as u8)), "packet {first_seq}+{k}: payload");
        }
    }
    peer.set_nonblocking(true).unwrap();
    assert!(peer.recv_from(&mut buf).is_err(), "nothing more");
    let stats = engine.stats().unwrap();
    let total: u64 = phases.iter().map(|p| p.2).sum();
    let ing = stats.endpoint(ingress).unwrap();
    assert_eq!((ing.rx_packets, ing.rtp_in), (total, total));
    assert_eq!(ing.rx_bytes, phases.iter().map(|&(_, payload, count)| count * (12 + payload as u64 + 16)).sum::<u64>());
    assert_eq!(ing.srtp_auth_failures + ing.srtp_replays + ing.srtp_other_failures, 0);
    assert_eq!(stats.source(source).unwrap().packets, total);
    assert_eq!(stats.workers[0].panics, 0);
}
