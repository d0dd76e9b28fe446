//! ICE-TCP, passive (RFC 6544) on loopback: an endpoint listens on TCP on its UDP port; a peer
//! connects, checks with framed STUN (RFC 4571), and gets its answer, DTLS from the control
//! plane and what else the endpoint sends framed on the same connection.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry_engine::{EndpointConfig, Engine, EngineOptions, Event, IceCredentials};

fn framed(packet: &[u8]) -> Vec<u8> {
    let mut out = (packet.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(packet);
    out
}

fn read_frame(stream: &mut TcpStream) -> Vec<u8> {
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).unwrap();
    let mut packet = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut packet).unwrap();
    packet
}

#[test]
fn a_peer_over_tcp_is_checked_answered_and_sent_to_on_its_connection() {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let engine = Engine::new(EngineOptions::default(), Arc::new(move |batch: Vec<Event>| sink.lock().unwrap().extend(batch))).unwrap();
    let mut config = EndpointConfig::new("127.0.0.1:0".parse().unwrap());
    config.ice = Some(IceCredentials { ufrag: "tcpu".into(), pwd: "tcp-password-1234567890".into(), remote_ufrag: None });
    config.ice_tcp = true;
    let (ep, local) = engine.open_endpoint(config).unwrap();
    let mut peer = TcpStream::connect(local).unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let me: SocketAddr = peer.local_addr().unwrap();
    let check = ferry_stun::build_binding_request([5; 12], "tcpu:peer", "tcp-password-1234567890", 1, true, 3);
    // Split over two writes: the framing must wait for the whole packet.
    let bytes = framed(&check);
    peer.write_all(&bytes[..7]).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    peer.write_all(&bytes[7..]).unwrap();
    let answer = read_frame(&mut peer);
    assert_eq!(ferry_stun::parse_binding_success(&answer, "tcp-password-1234567890").unwrap(), me);
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while !events.lock().unwrap().iter().any(|e| matches!(e, Event::IceSelected { address, .. } if *address == me)) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(events.lock().unwrap().iter().any(|e| matches!(e, Event::IceSelected { address, .. } if *address == me)), "nominated over TCP");
    // DTLS both ways on the connection.
    peer.write_all(&framed(&[22, 254, 253, 1])).unwrap();
    engine.send_raw(ep, me, vec![22, 254, 253, 2]).unwrap_or_else(|e| panic!("{e:?}"));
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while !events.lock().unwrap().iter().any(|e| matches!(e, Event::Dtls { .. })) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(events.lock().unwrap().iter().any(|e| matches!(e, Event::Dtls { data, .. } if data == &vec![22, 254, 253, 1])));
    let stats = engine.stats().unwrap();
    assert_eq!(stats.workers[0].tcp_connections, 1);
    // A broken frame (length 0) ends the connection; closing the endpoint closes the listener.
    peer.write_all(&[0, 0]).unwrap();
    let mut rest = Vec::new();
    let _ = peer.read_to_end(&mut rest);
    engine.close_endpoint(ep).unwrap();
    assert!(TcpStream::connect(local).is_err(), "no listener once the endpoint is closed");
    assert_eq!(engine.stats().unwrap().workers[0].tcp_connections, 0);
}
