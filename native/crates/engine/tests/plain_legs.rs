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
