//! Single-port mode on loopback sockets: many WebRTC endpoints on one UDP socket per media
//! thread, told apart by the ICE ufrag their peers' checks name and then by the validated
//! address; media fans out through the one socket.

use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry_engine::bench::make_rtp;
use ferry_engine::{EndpointConfig, Engine, EngineOptions, Event, IceCredentials, MediaKind, OutputConfig, SourceConfig, SrtpKeys, SrtpProfile};
use ferry_srtp::SrtpContext;

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn peer() -> UdpSocket {
    let s = UdpSocket::bind(loopback()).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(2000))).unwrap();
    s
}

fn shared_engine(workers: usize) -> (Engine, Arc<Mutex<Vec<Event>>>) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let options = EngineOptions { workers, shared_ports: vec![loopback(); workers], ..EngineOptions::default() };
    let engine = Engine::new(options, Arc::new(move |batch: Vec<Event>| sink.lock().unwrap().extend(batch))).unwrap();
    (engine, events)
}

fn shared(ufrag: &str, worker: Option<usize>) -> EndpointConfig {
    let mut cfg = EndpointConfig::new(loopback());
    cfg.shared = true;
    cfg.worker = worker;
    cfg.ice = Some(IceCredentials { ufrag: ufrag.into(), pwd: format!("{ufrag}-password-1234567890"), remote_ufrag: None });
    cfg
}

/// A connectivity check to `ufrag`'s endpoint through the shared port; true when it was answered
/// with that endpoint's credentials.
fn check(client: &UdpSocket, to: SocketAddr, ufrag: &str) -> bool {
    let pwd = format!("{ufrag}-password-1234567890");
    let req = ferry_stun::build_binding_request([9; 12], &format!("{ufrag}:peer"), &pwd, 1, true, 7);
    client.send_to(&req, to).unwrap();
    let mut buf = [0u8; 1500];
    match client.recv_from(&mut buf) {
        Ok((n, from)) => from == to && ferry_stun::parse_binding_success(&buf[..n], &pwd).is_ok(),
        Err(_) => false,
    }
}

#[test]
fn endpoints_share_one_port_routed_by_ufrag_then_by_address() {
    let (engine, events) = shared_engine(1);
    let (a, a_addr) = engine.open_endpoint(shared("aaaa", None)).unwrap();
    let (b, b_addr) = engine.open_endpoint(shared("bbbb", None)).unwrap();
    assert_eq!(a_addr, b_addr, "one port for both");
    let (alice, bob) = (peer(), peer());
    // Before any check nothing is routed: DTLS from an unknown address is dropped and counted.
    alice.send_to(&[22, 254, 253, 0, 1], a_addr).unwrap();
    assert!(check(&alice, a_addr, "aaaa"));
    assert!(check(&bob, b_addr, "bbbb"));
    // A check naming an unknown ufrag, and garbage from a stranger: dropped, nothing answered.
    let stranger = peer();
    stranger.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    assert!(!check(&stranger, a_addr, "zzzz"));
    stranger.send_to(b"garbage", a_addr).unwrap();
    // DTLS now reaches each endpoint by its peer's validated address.
    alice.send_to(&[22, 254, 253, 1], a_addr).unwrap();
    bob.send_to(&[22, 254, 253, 2], b_addr).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    let dtls = loop {
        let got: Vec<(u32, Vec<u8>)> = events.lock().unwrap().iter().filter_map(|e| match e {
            Event::Dtls { endpoint, data, .. } => Some((*endpoint, data.clone())),
            _ => None,
        }).collect();
        if got.len() >= 2 || std::time::Instant::now() > deadline {
            break got;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(dtls.contains(&(a, vec![22, 254, 253, 1])) && dtls.contains(&(b, vec![22, 254, 253, 2])), "{dtls:?}");
    let stats = engine.stats().unwrap();
    let w = &stats.workers[0];
    assert_eq!((w.shared_endpoints, w.shared_addresses), (2, 2));
    assert!(w.shared_unrouted >= 3, "the early DTLS, the unknown ufrag and the garbage: {}", w.shared_unrouted);
    // Closing one leaves the other reachable, and the port stays.
    engine.close_endpoint(a).unwrap();
    assert!(check(&bob, b_addr, "bbbb"));
    let w = engine.stats().unwrap().workers[0].clone();
    assert_eq!((w.shared_endpoints, w.shared_addresses), (1, 1));
    engine.close_endpoint(b).unwrap();
    let w = engine.stats().unwrap().workers[0].clone();
    assert_eq!((w.shared_endpoints, w.shared_addresses, w.endpoints.len()), (0, 0, 0));
}

#[test]
fn media_fans_out_to_every_subscriber_through_the_one_socket() {
    let (engine, _events) = shared_engine(1);
    let profile = SrtpProfile::AeadAes128Gcm;
    let key = |b: u8| vec![b; profile.master_key_len()];
    let salt = |b: u8| vec![b; profile.master_salt_len()];
    let keys = |b: u8| SrtpKeys { profile, local_key: key(b), local_salt: salt(b), remote_key: key(b), remote_salt: salt(b) };
    let (ingress, port) = engine.open_endpoint(shared("pubr", None)).unwrap();
    let publisher = peer();
    assert!(check(&publisher, port, "pubr"));
    engine.set_srtp(ingress, keys(1)).unwrap();
    let src = engine.add_source(ingress, SourceConfig { ssrc: 42, ssrc_offset: 0, kind: MediaKind::Video, clock_rate: 90000, codec: None }).unwrap();
    let subscribers: Vec<UdpSocket> = (0..5).map(|_| peer()).collect();
    for (i, s) in subscribers.iter().enumerate() {
        let ufrag = format!("sub{i}");
        let (ep, addr) = engine.open_endpoint(shared(&ufrag, None)).unwrap();
        assert_eq!(addr, port);
        assert!(check(s, port, &ufrag));
        engine.set_srtp(ep, keys(10 + i as u8)).unwrap();
        engine.add_output(ep, OutputConfig { source: Some(src), ssrc: 700 + i as u32, payload_type: None, rtx: None }).unwrap();
    }
    let mut tx = SrtpContext::new(profile, &key(1), &salt(1)).unwrap();
    let mut buf = [0u8; 1500];
    for i in 0..20u16 {
        let len = make_rtp(42, 100 + i, 3000 * u32::from(i), 96, 300, &mut buf);
        let len = tx.protect_rtp(&mut buf, len).unwrap();
        publisher.send_to(&buf[..len], port).unwrap();
    }
    for (i, s) in subscribers.iter().enumerate() {
        let mut rx = SrtpContext::new(profile, &key(10 + i as u8), &salt(10 + i as u8)).unwrap();
        for _ in 0..20 {
            let (n, from) = s.recv_from(&mut buf).unwrap();
            assert_eq!(from, port, "from the shared port");
            let n = rx.unprotect_rtp(&mut buf, n).unwrap();
            assert_eq!(ferry_rtp::rtp::parse_rtp(&buf[..n]).unwrap().ssrc, 700 + i as u32);
        }
    }
    assert_eq!(engine.stats().unwrap().source(src).unwrap().packets, 20);
}

#[test]
fn each_media_thread_has_its_port_and_bad_uses_are_refused() {
    let (engine, _events) = shared_engine(2);
    let (_, p0) = engine.open_endpoint(shared("t0t0", Some(0))).unwrap();
    let (_, p1) = engine.open_endpoint(shared("t1t1", Some(1))).unwrap();
    assert_ne!(p0, p1, "one port per media thread");
    assert!(engine.open_endpoint(shared("t0t0", Some(0))).is_err(), "a ufrag is unique on its port");
    let mut no_ice = shared("x", None);
    no_ice.ice = None;
    assert!(engine.open_endpoint(no_ice).is_err(), "shared endpoints are routed by ICE");
    // Plain RTP legs keep ports of their own beside the shared ones.
    let (_, own) = engine.open_endpoint(EndpointConfig::new(loopback())).unwrap();
    assert!(own != p0 && own != p1);
    let plain = Engine::new(EngineOptions::default(), Arc::new(|_: Vec<Event>| {})).unwrap();
    assert!(plain.open_endpoint(shared("off1", None)).is_err(), "single-port mode off: refused");
    let wrong = EngineOptions { workers: 2, shared_ports: vec![loopback()], ..EngineOptions::default() };
    assert!(Engine::new(wrong, Arc::new(|_: Vec<Event>| {})).is_err(), "one port per thread");
}

/// Replies leave from the address the peer used: an endpoint bound to 0.0.0.0 answered on
/// 127.0.0.2 answers from 127.0.0.2 (IP_PKTINFO), for STUN, DTLS from the control plane and
/// media, on a socket of its own and on a shared port alike.
#[test]
fn a_wildcard_bound_endpoint_replies_from_the_address_it_was_reached_on() {
    let wildcard: SocketAddr = "0.0.0.0:0".parse().unwrap();
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let options = EngineOptions { workers: 1, shared_ports: vec![wildcard], ..EngineOptions::default() };
    let engine = Engine::new(options, Arc::new(move |batch: Vec<Event>| sink.lock().unwrap().extend(batch))).unwrap();
    let mut own = shared("own1", None);
    own.shared = false;
    own.bind = wildcard;
    for (config, ufrag) in [(own, "own1"), (shared("shr1", None), "shr1")] {
        let (ep, local) = engine.open_endpoint(config).unwrap();
        let at: SocketAddr = SocketAddr::new("127.0.0.2".parse().unwrap(), local.port());
        let client = peer();
        let pwd = format!("{ufrag}-password-1234567890");
        let req = ferry_stun::build_binding_request([3; 12], &format!("{ufrag}:peer"), &pwd, 1, true, 7);
        client.send_to(&req, at).unwrap();
        let mut buf = [0u8; 1500];
        let (n, from) = client.recv_from(&mut buf).unwrap();
        assert!(ferry_stun::parse_binding_success(&buf[..n], &pwd).is_ok());
        assert_eq!(from, at, "the check is answered from 127.0.0.2, where it was sent");
        engine.send_raw(ep, client.local_addr().unwrap(), vec![22, 254, 253, 9]).unwrap();
        let (n, from) = client.recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from), (&[22u8, 254, 253, 9][..], at), "DTLS from the control plane too");
        let stats = engine.stats().unwrap();
        let s = stats.endpoint(ep).unwrap();
        assert_eq!((s.dtls_out, s.stun_replies), (1, 1));
    }
}
