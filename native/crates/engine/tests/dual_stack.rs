//! IPv6: endpoints on a dual-stack socket ([::]) answer IPv6 peers, and reach IPv4 peers too
//! (their addresses IPv4-mapped on the wire of the socket API).

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use ferry_engine::{EndpointConfig, Engine, EngineOptions, Event, IceCredentials};

fn bind(address: &str) -> UdpSocket {
    let s = UdpSocket::bind(address).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(2000))).unwrap();
    s
}

#[test]
fn a_dual_stack_endpoint_answers_ipv6_and_ipv4_peers() {
    let engine = Engine::new(EngineOptions::default(), Arc::new(|_: Vec<Event>| {})).unwrap();
    let mut config = EndpointConfig::new("[::]:0".parse().unwrap());
    config.ice = Some(IceCredentials { ufrag: "six6".into(), pwd: "six-password-1234567890".into(), remote_ufrag: None });
    let (ep, local) = engine.open_endpoint(config).unwrap();
    assert!(local.is_ipv6());
    let req = ferry_stun::build_binding_request([4; 12], "six6:peer", "six-password-1234567890", 1, true, 7);
    let mut buf = [0u8; 1500];
    for (client, at) in [(bind("[::1]:0"), format!("[::1]:{}", local.port())), (bind("127.0.0.1:0"), format!("127.0.0.1:{}", local.port()))] {
        let at: SocketAddr = at.parse().unwrap();
        client.send_to(&req, at).unwrap();
        let (n, from) = client.recv_from(&mut buf).unwrap();
        let mapped = ferry_stun::parse_binding_success(&buf[..n], "six-password-1234567890").unwrap();
        assert_eq!(from, at, "answered from where it was asked");
        assert_eq!(mapped.port(), client.local_addr().unwrap().port());
        // DTLS from the control plane, to the peer as the control plane names it (plain IPv4 too).
        engine.send_raw(ep, client.local_addr().unwrap(), vec![22, 254, 253, 6]).unwrap();
        let (n, _) = client.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], &[22, 254, 253, 6]);
    }
    // A plain leg on [::] sending to an IPv4 remote.
    let receiver = bind("127.0.0.1:0");
    let mut plain = EndpointConfig::new("[::]:0".parse().unwrap());
    plain.remote = Some(receiver.local_addr().unwrap());
    let (leg, _) = engine.open_endpoint(plain).unwrap();
    engine.send_raw(leg, receiver.local_addr().unwrap(), vec![128, 1, 2, 3]).unwrap();
    let (n, _) = receiver.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], &[128, 1, 2, 3]);
}
