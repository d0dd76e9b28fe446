//! Recording through the whole engine on loopback sockets (media thread → queue → writer
//! thread → file), without N-API: what a plain RTP leg receives while recorded is in the
//! file, in order, when `stop_recording` returns; a source removed first leaves a whole file;
//! start/stop churn leaves no file open; closing the engine closes what is still open.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_engine::bench::make_rtp;
use ferry_engine::mjr::{parse, MjrInfo, MjrKind};
use ferry_engine::{EndpointConfig, Engine, EngineOptions, MediaKind, SourceConfig};

fn engine() -> Engine {
    Engine::new(EngineOptions { workers: 2, ..EngineOptions::default() }, Arc::new(|_| {})).unwrap()
}

fn dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("ferry-engine-recording-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn info() -> MjrInfo {
    MjrInfo { kind: MjrKind::Audio, codec: "pcmu".into(), fmtp: None, extensions: Vec::new(), created_us: 1_700_000_000_000_000 }
}

/// A plain RTP leg with one PCMU source; the socket that sends to it.
fn leg(engine: &Engine, ssrc: u32) -> (u32, u32, SocketAddr, UdpSocket) {
    let (ep, local) = engine.open_endpoint(EndpointConfig::new("127.0.0.1:0".parse().unwrap())).unwrap();
    let source = engine.add_source(ep, SourceConfig { ssrc, ssrc_offset: 0, kind: MediaKind::Audio, clock_rate: 8000, codec: None }).unwrap();
    (ep, source, local, UdpSocket::bind("127.0.0.1:0").unwrap())
}

fn send(sock: &UdpSocket, to: SocketAddr, ssrc: u32, seqs: std::ops::Range<u16>) {
    let mut buf = [0u8; 2048];
    for seq in seqs {
        let n = make_rtp(ssrc, seq, u32::from(seq) * 160, 0, 160, &mut buf);
        sock.send_to(&buf[..n], to).unwrap();
    }
}

/// Waits (bounded) until the source has received `n` packets.
fn received(engine: &Engine, source: u32, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let got = engine.stats().unwrap().workers.iter().flat_map(|w| w.sources.iter()).find(|(id, _)| *id == source).map_or(0, |(_, s)| s.packets);
        if got >= n {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("source {source} did not receive {n} packets");
}

#[test]
fn what_a_recorded_leg_receives_is_in_the_file_when_stop_returns() {
    let engine = engine();
    let (_ep, source, local, sock) = leg(&engine, 0x1111);
    send(&sock, local, 0x1111, 0..20);
    received(&engine, source, 20);
    let path = dir().join("leg.mjr");
    let rec = engine.start_recording(source, path.to_str().unwrap(), info()).unwrap();
    send(&sock, local, 0x1111, 20..220);
    received(&engine, source, 220);
    let summary = engine.stop_recording(rec).unwrap();
    assert_eq!(summary.packets, 200, "only what came while recording");
    send(&sock, local, 0x1111, 220..230);
    received(&engine, source, 230);
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(summary.bytes, bytes.len() as u64);
    let file = parse(&bytes).unwrap();
    assert!(file.info.starts_with(r#"{"t":"a","c":"pcmu","s":1700000000000000,"u":"#));
    let seqs: Vec<u16> = file.frames.iter().map(|(_, p)| u16::from_be_bytes([p[2], p[3]])).collect();
    assert_eq!(seqs, (20..220).collect::<Vec<_>>());
    assert!(engine.stop_recording(rec).is_err(), "stopped once");
    assert_eq!(engine.recorder_stats().open_files, 0);
}

#[test]
fn churn_leaves_no_file_open_and_a_removed_source_leaves_a_whole_file() {
    let engine = engine();
    let (ep, source, local, sock) = leg(&engine, 0x2222);
    let mut seq = 0u16;
    for round in 0..30 {
        let path = dir().join(format!("churn-{round}.mjr"));
        let rec = engine.start_recording(source, path.to_str().unwrap(), info()).unwrap();
        send(&sock, local, 0x2222, seq..seq + 5);
        seq += 5;
        received(&engine, source, u64::from(seq));
        assert_eq!(engine.stop_recording(rec).unwrap().packets, 5);
    }
    assert_eq!(engine.recorder_stats().open_files, 0);
    // The endpoint goes first (a hangup): the file is closed whole when the recording stops.
    let path = dir().join("gone.mjr");
    let rec = engine.start_recording(source, path.to_str().unwrap(), info()).unwrap();
    send(&sock, local, 0x2222, seq..seq + 7);
    received(&engine, source, u64::from(seq) + 7);
    engine.close_endpoint(ep).unwrap();
    assert_eq!(engine.stop_recording(rec).unwrap().packets, 7);
    assert_eq!(parse(&std::fs::read(&path).unwrap()).unwrap().frames.len(), 7);
    assert!(engine.start_recording(source, path.to_str().unwrap(), info()).is_err(), "no such source any more");
}

#[test]
fn closing_the_engine_closes_open_recordings_whole() {
    let mut engine = engine();
    let (_ep, source, local, sock) = leg(&engine, 0x3333);
    let path = dir().join("shutdown.mjr");
    engine.start_recording(source, path.to_str().unwrap(), info()).unwrap();
    send(&sock, local, 0x3333, 0..50);
    received(&engine, source, 50);
    engine.close();
    assert_eq!(parse(&std::fs::read(&path).unwrap()).unwrap().frames.len(), 50);
}
