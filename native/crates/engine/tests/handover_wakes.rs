//! A media thread handed packets in many small bursts per millisecond stops being woken per
//! burst and wakes itself every millisecond (src/handover_wakes.rs); nothing is lost or
//! reordered on the way, and it goes back to being woken per burst when the traffic stops.
//! Real threads and loopback sockets: the publisher's endpoint on thread 0, the subscriber's
//! on thread 1.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{context, keys};
use ferry_engine::bench::make_rtp;
use ferry_engine::{EndpointConfig, Engine, EngineOptions, Event, MediaKind, OutputConfig, SourceConfig};

fn endpoint_on(engine: &Engine, worker: usize, remote: Option<SocketAddr>) -> (u32, SocketAddr) {
    let mut cfg = EndpointConfig::new("127.0.0.1:0".parse().unwrap());
    cfg.worker = Some(worker);
    cfg.remote = remote;
    engine.open_endpoint(cfg).unwrap()
}

fn coalescing(engine: &Engine, worker: usize) -> bool {
    engine.stats().unwrap().workers[worker].coalescing_wakes
}

#[test]
fn busy_handovers_coalesce_wakes_without_loss_and_quiet_ones_go_back() {
    let engine = Engine::new(EngineOptions { workers: 2, ..EngineOptions::default() }, Arc::new(|_: Vec<Event>| {})).unwrap();
    let (ingress, in_addr) = endpoint_on(&engine, 0, None);
    engine.set_srtp(ingress, keys(1, 2)).unwrap();
    let source = engine.add_source(ingress, SourceConfig { ssrc: 42, ssrc_offset: 0, kind: MediaKind::Video, clock_rate: 90000, codec: None }).unwrap();
    let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
    sink.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let (egress, _) = endpoint_on(&engine, 1, Some(sink.local_addr().unwrap()));
    engine.set_srtp(egress, keys(3, 3)).unwrap();
    let output = engine.add_output(egress, OutputConfig { source: Some(source), ssrc: 7, payload_type: Some(100), rtx: None }).unwrap();
    assert!(!coalescing(&engine, 1), "a thread starts by being woken per hand-over");

    // A publisher sending one packet every 100 µs (10 000 bursts/s) until thread 1 coalesces,
    // for at most 10 s; then 2000 more packets in that mode.
    let sending = Arc::new(AtomicBool::new(true));
    let sender = {
        let sending = sending.clone();
        std::thread::spawn(move || {
            let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
            let mut tx = context(2);
            let mut buf = [0u8; 1500];
            let mut sent = 0u32;
            let mut next = Instant::now();
            while sending.load(Ordering::Relaxed) && sent < 200_000 {
                let len = make_rtp(42, sent as u16, sent * 90, 96, 300, &mut buf);
                let len = tx.protect_rtp(&mut buf, len).unwrap();
                socket.send_to(&buf[..len], in_addr).unwrap();
                sent += 1;
                next += Duration::from_micros(100);
                while Instant::now() < next {
                    std::hint::spin_loop();
                }
            }
            sent
        })
    };
    let receiver = std::thread::spawn(move || {
        let mut rx = context(3);
        let mut buf = [0u8; 1500];
        let (mut received, mut backwards, mut last) = (0u32, 0u32, None::<u16>);
        while let Ok((n, _)) = sink.recv_from(&mut buf) {
            let n = rx.unprotect_rtp(&mut buf, n).unwrap();
            let header = ferry_rtp::rtp::parse_rtp(&buf[..n]).unwrap();
            // A loss at the sink skips numbers; a late or repeated packet would go back.
            if last.is_some_and(|l| header.sequence.wrapping_sub(l).wrapping_sub(1) >= 0x8000) {
                backwards += 1;
            }
            last = Some(header.sequence);
            received += 1;
        }
        (received, backwards)
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while !coalescing(&engine, 1) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let entered = coalescing(&engine, 1);
    std::thread::sleep(Duration::from_millis(200));
    let stayed = coalescing(&engine, 1);
    sending.store(false, Ordering::Relaxed);
    let sent = sender.join().unwrap();
    let (received, backwards) = receiver.join().unwrap();
    assert!(entered, "thread 1 coalesces its wakes under {sent} packets sent one by one");
    assert!(stayed, "and stays so while they keep coming");
    assert!(!coalescing(&engine, 0), "thread 0 is handed nothing");

    // The output sent every packet, in order (the loopback sink may lose some under load: the
    // thread's own count is the proof of delivery, the sink's of order).
    let stats = engine.stats().unwrap();
    assert_eq!(stats.workers[1].cross_received, u64::from(sent));
    assert_eq!(stats.workers[0].queue_overflows, 0);
    assert_eq!(stats.output(output).unwrap().packets, u64::from(sent), "every packet sent on (received {received})");
    assert_eq!(backwards, 0, "never out of order at the sink");

    // Quiet again: back to being woken per hand-over within a few of its periods.
    let deadline = Instant::now() + Duration::from_secs(3);
    while coalescing(&engine, 1) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!coalescing(&engine, 1), "back to per hand-over wakes when the packets stop");
    assert!(engine.stats().unwrap().workers[1].wake_mode_switches >= 2);
}
