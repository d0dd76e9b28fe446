//! The engine on loopback sockets, without N-API: ICE-lite answers and
//! nomination, DTLS datagrams up as events, SRTP forwarding, close semantics.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferry_engine::bench::make_rtp;
use ferry_engine::{EndpointConfig, Engine, EngineOptions, Event, IceCredentials, MediaKind, OutputConfig, SourceConfig, SrtpProfile};

fn collecting_engine() -> (Engine, Arc<Mutex<Vec<Event>>>) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink_events = events.clone();
    let engine = Engine::new(
        EngineOptions { workers: 1, ..EngineOptions::default() },
        Arc::new(move |batch: Vec<Event>| sink_events.lock().unwrap().extend(batch)),
    )
    .unwrap();
    (engine, events)
}

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn peer() -> UdpSocket {
    let s = UdpSocket::bind(loopback()).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(2000))).unwrap();
    s
}

fn wait_for<T>(events: &Arc<Mutex<Vec<Event>>>, mut pick: impl FnMut(&Event) -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        if let Some(v) = events.lock().unwrap().iter().find_map(&mut pick) {
            return Some(v);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

#[test]
fn ice_lite_answers_nominates_and_passes_dtls_up() {
    let (engine, events) = collecting_engine();
    let mut cfg = EndpointConfig::new(loopback());
    cfg.ice = Some(IceCredentials { ufrag: "srvu".into(), pwd: "server-password-123456".into(), remote_ufrag: Some("cliu".into()) });
    let (ep, local) = engine.open_endpoint(cfg).unwrap();
    let client = peer();

    // DTLS before any ICE check is dropped: the address is not validated (RFC 8445 §7.3).
    client.send_to(&[22, 254, 253, 0, 0], local).unwrap();

    let req = ferry_stun::build_binding_request([7; 12], "srvu:cliu", "server-password-123456", 1234, true, 42);
    client.send_to(&req, local).unwrap();
    let mut buf = [0u8; 1500];
    let (n, _) = client.recv_from(&mut buf).unwrap();
    let mapped = ferry_stun::parse_binding_success(&buf[..n], "server-password-123456").unwrap();
    assert_eq!(mapped, client.local_addr().unwrap());
    let selected = wait_for(&events, |e| match e {
        Event::IceSelected { endpoint, address } if *endpoint == ep => Some(*address),
        _ => None,
    });
    assert_eq!(selected, Some(client.local_addr().unwrap()));

    // Wrong password → 401 error response, no nomination change.
    let bad = ferry_stun::build_binding_request([8; 12], "srvu:cliu", "wrong-password-xxxxxx", 1234, true, 42);
    client.send_to(&bad, local).unwrap();
    let (n, _) = client.recv_from(&mut buf).unwrap();
    assert!(ferry_stun::parse_binding_success(&buf[..n], "server-password-123456").is_err());

    client.send_to(&[22, 254, 253, 1, 2, 3], local).unwrap();
    let dtls = wait_for(&events, |e| match e {
        Event::Dtls { endpoint, data, .. } if *endpoint == ep => Some(data.clone()),
        _ => None,
    });
    assert_eq!(dtls, Some(vec![22, 254, 253, 1, 2, 3]));
    let stats = engine.stats().unwrap();
    let s = stats.endpoint(ep).unwrap();
    assert_eq!(s.dtls_in, 1);
    assert_eq!(s.unvalidated_drops, 1);
    assert_eq!(s.stun_replies, 1);
    assert_eq!(s.stun_error_replies, 1);

    // DTLS out from the control plane.
    engine.send_raw(ep, client.local_addr().unwrap(), vec![22, 1, 2]).unwrap();
    let (n, _) = client.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], &[22, 1, 2]);
}

/// One engine thread fanning source 99 (its sender keyed 2, `common::key_for`) out to `n`
/// outputs (SSRC 500 + i, PT 100), each to a loopback receiver keyed 10 + i.
struct FanOut {
    engine: Engine,
    in_addr: SocketAddr,
    src: u32,
    receivers: Vec<UdpSocket>,
}

fn fan_out(profile: SrtpProfile, ssrc_offset: u32, n: usize) -> FanOut {
    let (engine, _events) = collecting_engine();
    let (ingress, in_addr) = engine.open_endpoint(EndpointConfig::new(loopback())).unwrap();
    engine.set_srtp(ingress, common::keys_for(profile, 1, 2)).unwrap();
    let src = engine.add_source(ingress, SourceConfig { ssrc: 99, ssrc_offset, kind: MediaKind::Video, clock_rate: 90000, codec: None }).unwrap();
    let receivers: Vec<UdpSocket> = (0..n).map(|_| peer()).collect();
    for (i, r) in receivers.iter().enumerate() {
        let mut cfg = EndpointConfig::new(loopback());
        cfg.remote = Some(r.local_addr().unwrap());
        let (ep, _) = engine.open_endpoint(cfg).unwrap();
        let b = 10 + i as u8;
        engine.set_srtp(ep, common::keys_for(profile, b, b)).unwrap();
        engine.add_output(ep, OutputConfig { source: Some(src), ssrc: 500 + i as u32, payload_type: Some(100), rtx: None }).unwrap();
    }
    FanOut { engine, in_addr, src, receivers }
}

#[test]
fn srtp_fan_out_decrypt_once_encrypt_per_output() {
    let profile = SrtpProfile::AeadAes128Gcm;
    let FanOut { engine, in_addr, src, receivers } = fan_out(profile, 7, 3);

    let sender = peer();
    let mut tx = common::context_for(profile, 2);
    let mut buf = [0u8; 1500];
    for i in 0..50u16 {
        let len = make_rtp(99, 1000 + i, 90 * i as u32, 96, 200, &mut buf);
        let len = tx.protect_rtp(&mut buf, len).unwrap();
        sender.send_to(&buf[..len], in_addr).unwrap();
    }
    for (i, r) in receivers.iter().enumerate() {
        let b = 10 + i as u8;
        let mut rx = common::context_for(profile, b);
        let mut last: Option<u16> = None;
        for _ in 0..50 {
            let (n, _) = r.recv_from(&mut buf).unwrap();
            let n = rx.unprotect_rtp(&mut buf, n).unwrap();
            let h = ferry_rtp::rtp::parse_rtp(&buf[..n]).unwrap();
            assert_eq!(h.ssrc, 500 + i as u32);
            assert_eq!(h.payload_type, 100);
            assert_eq!(n, 12 + 200);
            if let Some(l) = last {
                assert_eq!(h.sequence, l.wrapping_add(1));
            }
            last = Some(h.sequence);
        }
    }
    let stats = engine.stats().unwrap();
    assert_eq!(stats.source(src).unwrap().packets, 50);
    assert_eq!(stats.workers[0].panics, 0);
}

#[test]
fn close_endpoint_frees_port_and_routes() {
    let (mut engine, _events) = collecting_engine();
    let (ep, addr) = engine.open_endpoint(EndpointConfig::new(loopback())).unwrap();
    let src = engine.add_source(ep, SourceConfig { ssrc: 1, ssrc_offset: 0, kind: MediaKind::Audio, clock_rate: 48000, codec: None }).unwrap();
    engine.close_endpoint(ep).unwrap();
    assert!(UdpSocket::bind(addr).is_ok(), "port is free as soon as close returns");
    assert!(engine.remove_source(src).is_err());
    assert_eq!(engine.stats().unwrap().endpoint_count(), 0);
    engine.close();
    engine.close();
    assert!(engine.stats().is_err());
}

/// AES-CM fan-out: with 12 outputs one flush holds 12 or more packets whose tags are computed
/// together (16 lanes where the CPU has AVX-512, else one by one); every receiver
/// authenticates every packet with its own key, across the ROC wrap.
#[test]
fn aes_cm_fan_out_tags_written_together_authenticate_at_each_receiver() {
    let profile = SrtpProfile::Aes128CmHmacSha1_80;
    let FanOut { engine, in_addr, src, receivers } = fan_out(profile, 0, 12);
    let sender = peer();
    let mut tx = common::context_for(profile, 2);
    let mut buf = [0u8; 1500];
    let first = 65_500u16;
    for i in 0..60u16 {
        let len = make_rtp(99, first.wrapping_add(i), 90 * u32::from(i), 96, 900 + usize::from(i), &mut buf);
        let len = tx.protect_rtp(&mut buf, len).unwrap();
        sender.send_to(&buf[..len], in_addr).unwrap();
    }
    for (i, r) in receivers.iter().enumerate() {
        let b = 10 + i as u8;
        let mut rx = common::context_for(profile, b);
        for k in 0..60usize {
            let (n, _) = r.recv_from(&mut buf).unwrap();
            let n = rx.unprotect_rtp(&mut buf, n).unwrap_or_else(|e| panic!("receiver {i}, packet {k}: {e:?}"));
            let h = ferry_rtp::rtp::parse_rtp(&buf[..n]).unwrap();
            assert_eq!(h.ssrc, 500 + i as u32);
            assert_eq!(n, 12 + 900 + k);
        }
    }
    let stats = engine.stats().unwrap();
    assert_eq!(stats.source(src).unwrap().packets, 60);
    assert_eq!(stats.workers[0].panics, 0);
}
