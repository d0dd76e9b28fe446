//! Switching an output to another source at a keyframe of the new source, on loopback
//! sockets with VP8 payloads (RFC 7741): the old source keeps feeding the output until the
//! first packet of a keyframe of the new one, and the receiver's sequence stays continuous.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use ferry_engine::{EndpointConfig, Engine, EngineOptions, Event, MediaKind, OutputConfig, SourceConfig, VideoCodec};

const SSRC_A: u32 = 0xa;
const SSRC_B: u32 = 0xb;
const SSRC_C: u32 = 0xc;
const OUTPUT_SSRC: u32 = 777;

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn peer(timeout_ms: u64) -> UdpSocket {
    let s = UdpSocket::bind(loopback()).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(timeout_ms))).unwrap();
    s
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Frame {
    /// First packet of a VP8 keyframe: S=1, PID=0, payload header P=0.
    KeyStart,
    /// Later packet of a frame: S=0, no payload header.
    Continuation,
    /// First packet of an inter frame: S=1, PID=0, P=1.
    DeltaStart,
}

/// An RTP packet (RFC 3550 §5.1) with a VP8 payload; the last two octets tag its origin.
fn vp8_packet(ssrc: u32, seq: u16, frame: Frame, tag: u8) -> Vec<u8> {
    let mut p = vec![0x80, 96];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 3000).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    match frame {
        Frame::KeyStart => p.extend_from_slice(&[0x10, 0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a]),
        Frame::DeltaStart => p.extend_from_slice(&[0x10, 0x11, 0x02, 0x00]),
        Frame::Continuation => p.extend_from_slice(&[0x00, 0x55, 0x55]),
    }
    p.extend_from_slice(&[ssrc as u8, tag]);
    p
}

struct Rig {
    engine: Engine,
    publisher: UdpSocket,
    ingress: SocketAddr,
    receiver: UdpSocket,
    output: u32,
    sources: [u32; 3],
}

impl Rig {
    /// The publisher sends a VP8 packet of one of its sources to the sources' endpoint.
    fn send(&self, ssrc: u32, seq: u16, frame: Frame, tag: u8) {
        self.publisher.send_to(&vp8_packet(ssrc, seq, frame, tag), self.ingress).unwrap();
    }
}

/// The sources' endpoint on media thread `source_thread`, the output's on `output_thread`
/// (two threads when they differ: the source's thread hands packets to the output's).
fn rig(source_thread: usize, output_thread: usize) -> Rig {
    let workers = source_thread.max(output_thread) + 1;
    let engine = Engine::new(EngineOptions { workers, ..EngineOptions::default() }, Arc::new(|_batch: Vec<Event>| {})).unwrap();
    let publisher = peer(1000);
    let mut cfg = EndpointConfig::new(loopback());
    cfg.worker = Some(source_thread);
    cfg.remote = Some(publisher.local_addr().unwrap());
    let (ingress_ep, ingress) = engine.open_endpoint(cfg).unwrap();
    let add = |ssrc| {
        engine
            .add_source(ingress_ep, SourceConfig { ssrc, ssrc_offset: 0, kind: MediaKind::Video, clock_rate: 90000, codec: Some(VideoCodec::Vp8) })
            .unwrap()
    };
    let sources = [add(SSRC_A), add(SSRC_B), add(SSRC_C)];
    let receiver = peer(300);
    let mut cfg = EndpointConfig::new(loopback());
    cfg.worker = Some(output_thread);
    cfg.remote = Some(receiver.local_addr().unwrap());
    let (egress_ep, _) = engine.open_endpoint(cfg).unwrap();
    let output = engine.add_output(egress_ep, OutputConfig { source: Some(sources[0]), ssrc: OUTPUT_SSRC, payload_type: None, rtx: None }).unwrap();
    // The initial attach asks A for a keyframe; take that PLI out of the way.
    assert_eq!(next_pli(&publisher), Some(SSRC_A));
    Rig { engine, publisher, ingress, receiver, output, sources }
}

/// Media SSRC of the next PLI (RFC 4585 §6.3.1) the publisher receives.
fn next_pli(publisher: &UdpSocket) -> Option<u32> {
    let mut buf = [0u8; 1500];
    let (n, _) = publisher.recv_from(&mut buf).ok()?;
    let pli = buf.get(..n)?;
    if pli.get(1) != Some(&206) || pli.first().map(|b| b & 0x1f) != Some(1) {
        return None;
    }
    Some(u32::from_be_bytes(pli.get(8..12)?.try_into().ok()?))
}

/// Everything the receiver gets until it has been quiet for its read timeout:
/// (output sequence, origin SSRC octet, tag).
fn drain(receiver: &UdpSocket) -> Vec<(u16, u8, u8)> {
    let mut got = Vec::new();
    let mut buf = [0u8; 1500];
    for _ in 0..10_000 {
        let Ok((n, _)) = receiver.recv_from(&mut buf) else { break };
        let h = ferry_rtp::rtp::parse_rtp(&buf[..n]).unwrap();
        assert_eq!(h.ssrc, OUTPUT_SSRC);
        got.push((h.sequence, buf[n - 2], buf[n - 1]));
    }
    got
}

/// (origin SSRC octet, tag) of what the receiver got.
fn origins(got: &[(u16, u8, u8)]) -> Vec<(u8, u8)> {
    got.iter().map(|&(_, ssrc, tag)| (ssrc, tag)).collect()
}

fn assert_continuous(got: &[(u16, u8, u8)]) {
    for pair in got.windows(2) {
        assert_eq!(pair[1].0, pair[0].0.wrapping_add(1), "sequence gap in {got:?}");
    }
}

#[test]
fn old_source_feeds_until_the_new_sources_keyframe() {
    old_source_feeds_until_keyframe(rig(0, 0));
}

#[test]
fn old_source_feeds_until_the_new_sources_keyframe_across_threads() {
    old_source_feeds_until_keyframe(rig(0, 1));
}

fn old_source_feeds_until_keyframe(r: Rig) {
    // A feeds the output; B runs in parallel.
    r.send(SSRC_A, 100, Frame::KeyStart, 0);
    r.send(SSRC_A, 101, Frame::DeltaStart, 1);
    r.send(SSRC_B, 5000, Frame::DeltaStart, 100);

    r.engine.switch_output(r.output, Some(r.sources[1]), true).unwrap();
    // The new source is asked for a keyframe at once.
    assert_eq!(next_pli(&r.publisher), Some(SSRC_B));

    // Until B's keyframe: B's inter frames and continuations are held back, A still flows.
    r.send(SSRC_B, 5001, Frame::DeltaStart, 101);
    r.send(SSRC_A, 102, Frame::DeltaStart, 2);
    r.send(SSRC_B, 5002, Frame::Continuation, 102);
    r.send(SSRC_A, 103, Frame::Continuation, 3);
    // A continuation that merely looks like a keyframe header (S=0) does not count.
    r.send(SSRC_B, 5003, Frame::Continuation, 103);
    // B's keyframe: switch here; A no longer reaches the output.
    r.send(SSRC_B, 5004, Frame::KeyStart, 104);
    r.send(SSRC_A, 104, Frame::DeltaStart, 4);
    r.send(SSRC_B, 5005, Frame::Continuation, 105);
    r.send(SSRC_B, 5006, Frame::DeltaStart, 106);
    r.send(SSRC_A, 105, Frame::KeyStart, 5);

    let got = drain(&r.receiver);
    assert_eq!(origins(&got), vec![(0xa, 0), (0xa, 1), (0xa, 2), (0xa, 3), (0xb, 104), (0xb, 105), (0xb, 106)]);
    assert_continuous(&got);
}

#[test]
fn later_switch_replaces_a_pending_one_and_a_lost_old_source_switches_at_once() {
    later_switch_replaces_pending(rig(0, 0));
}

#[test]
fn later_switch_replaces_a_pending_one_across_threads() {
    later_switch_replaces_pending(rig(1, 0));
}

fn later_switch_replaces_pending(r: Rig) {
    r.send(SSRC_A, 10, Frame::KeyStart, 0);
    r.engine.switch_output(r.output, Some(r.sources[1]), true).unwrap();
    assert_eq!(next_pli(&r.publisher), Some(SSRC_B));
    r.engine.switch_output(r.output, Some(r.sources[2]), true).unwrap();
    assert_eq!(next_pli(&r.publisher), Some(SSRC_C));
    // B's keyframe no longer moves the output: the switch to C replaced it.
    r.send(SSRC_B, 20, Frame::KeyStart, 1);
    r.send(SSRC_A, 11, Frame::DeltaStart, 2);
    r.send(SSRC_C, 30, Frame::DeltaStart, 3);
    let got = drain(&r.receiver);
    assert_eq!(origins(&got), vec![(0xa, 0), (0xa, 2)]);

    // A goes away while the output waits for C: nothing is left to bridge, so C feeds now.
    r.engine.remove_source(r.sources[0]).unwrap();
    r.send(SSRC_C, 31, Frame::DeltaStart, 4);
    r.send(SSRC_B, 21, Frame::KeyStart, 5);
    let after = drain(&r.receiver);
    assert_eq!(origins(&after), vec![(0xc, 4)]);
    let mut all = got.clone();
    all.extend(after);
    assert_continuous(&all);

    // Without on_keyframe the switch is immediate, as before.
    r.engine.switch_output(r.output, Some(r.sources[1]), false).unwrap();
    r.send(SSRC_B, 22, Frame::DeltaStart, 6);
    assert_eq!(origins(&drain(&r.receiver)), vec![(0xb, 6)]);
    let stats = r.engine.stats().unwrap();
    assert!(stats.workers.iter().all(|w| w.panics == 0));
}
