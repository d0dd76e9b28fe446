//! The sans-IO [`Router`] without sockets or threads: a recording [`RouterIo`], and a mesh
//! that runs several routers (media threads) and carries the packets and messages they hand
//! each other, either all in order ("settle") or one at a time from random channels (each
//! channel FIFO, as the worker's queues are).

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::rc::Rc;

use ferry_engine::{
    EndpointConfig, Event, Handoff, IceCredentials, MediaKind, OutputConfig, PeerMessage, Router, RouterIo, SourceConfig, SourceRef, SrtpKeys, SrtpProfile, VideoCodec,
    MAX_DATAGRAM,
};
use ferry_rtp::{rtcp, rtp};
use ferry_srtp::SrtpContext;

// ---- a seeded PRNG (xorshift64*) -------------------------------------------------------------

struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in 0..n (0 when n is 0).
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
    fn index(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }
    /// True with probability num/den.
    fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }
    fn byte(&mut self) -> u8 {
        self.next() as u8
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.byte()).collect()
    }
}

// ---- a recording RouterIo ------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Transmit {
    transport: i32,
    endpoint: u32,
    to: SocketAddr,
    bytes: Vec<u8>,
}

#[derive(Debug, Clone)]
struct Forward {
    workers: Vec<usize>,
    source: u32,
    /// Sequence number of the first hand-off (equal for subscriptions made together).
    fseq: u64,
    handoffs: Vec<Handoff>,
    packet: Vec<u8>,
}

struct TestIo {
    slot: Box<[u8; MAX_DATAGRAM]>,
    /// When set, `transmit_slot` refuses (a full send queue).
    refuse_slots: bool,
    transmits: Vec<Transmit>,
    forwards: Vec<Forward>,
    messages: Vec<(usize, PeerMessage)>,
}

impl TestIo {
    fn new() -> Self {
        Self { slot: Box::new([0; MAX_DATAGRAM]), refuse_slots: false, transmits: Vec::new(), forwards: Vec::new(), messages: Vec::new() }
    }
}

impl RouterIo for TestIo {
    fn transmit_slot(&mut self) -> Option<&mut [u8; MAX_DATAGRAM]> {
        if self.refuse_slots {
            return None;
        }
        // Whatever the last datagram left behind must not matter.
        self.slot.fill(0xee);
        Some(&mut self.slot)
    }

    fn commit_transmit(&mut self, len: usize, transport: i32, endpoint: u32, to: &SocketAddr) {
        assert!(len <= MAX_DATAGRAM, "transmit of {len} bytes");
        self.transmits.push(Transmit { transport, endpoint, to: *to, bytes: self.slot[..len].to_vec() });
    }

    fn forward(&mut self, to: &[Handoff], source: u32, packet: &[u8]) {
        assert!(!to.is_empty(), "forward to nobody");
        let workers = to.iter().map(|h| h.worker).collect();
        self.forwards.push(Forward { workers, source, fseq: to[0].seq, handoffs: to.to_vec(), packet: packet.to_vec() });
    }

    fn message(&mut self, worker: usize, message: PeerMessage) {
        self.messages.push((worker, message));
    }
}

// ---- several routers and the channels between them ------------------------------------------

/// A packet on its way to one router: (source, subscription, seq, bytes shared by all receivers).
type Handover = (u32, u32, u64, Rc<Vec<u8>>);

/// Decides whether a forward (to router, source, fseq) is lost on the way (a full queue).
type DropRule = Box<dyn FnMut(usize, u32, u64) -> bool>;

struct Mesh {
    routers: Vec<Router>,
    ios: Vec<TestIo>,
    /// Per receiving router: messages (never dropped) and forwarded packets, each FIFO.
    messages: Vec<VecDeque<PeerMessage>>,
    forwards: Vec<VecDeque<Handover>>,
    now_us: u64,
    drop_forward: Option<DropRule>,
    /// Forwards the drop rule took, per receiving router.
    dropped: Vec<u64>,
    /// Everything sent between routers, when `logging`: (from, forward) and (from, to, message).
    logging: bool,
    forward_log: Vec<(usize, Forward)>,
    message_log: Vec<(usize, usize, PeerMessage)>,
}

const PUB: SocketAddr = addr(192, 0, 2, 1, 5000);
const PUB2: SocketAddr = addr(192, 0, 2, 2, 5002);
const SUB1: SocketAddr = addr(198, 51, 100, 1, 6001);
const SUB2: SocketAddr = addr(198, 51, 100, 2, 6002);
const SUB3: SocketAddr = addr(198, 51, 100, 3, 6003);

const fn addr(a: u8, b: u8, c: u8, d: u8, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(a, b, c, d)), port)
}

fn transport_of(endpoint: u32) -> i32 {
    1000 + endpoint as i32
}

impl Mesh {
    fn new(n: usize) -> Self {
        Self {
            routers: (0..n).map(Router::new).collect(),
            ios: (0..n).map(|_| TestIo::new()).collect(),
            messages: (0..n).map(|_| VecDeque::new()).collect(),
            forwards: (0..n).map(|_| VecDeque::new()).collect(),
            now_us: 0,
            drop_forward: None,
            dropped: vec![0; n],
            logging: true,
            forward_log: Vec::new(),
            message_log: Vec::new(),
        }
    }

    /// A plain RTP endpoint (no ICE) sending to `remote`.
    fn endpoint(&mut self, r: usize, id: u32, remote: Option<SocketAddr>) {
        let mut cfg = EndpointConfig::new(addr(10, 0, 0, r as u8 + 1, 20000 + id as u16));
        cfg.remote = remote;
        self.routers[r].add_endpoint(id, transport_of(id), cfg.bind, &cfg).unwrap();
    }

    fn sref(&self, home: usize, source: u32) -> SourceRef {
        self.routers[home].source_ref(source).expect("source")
    }

    fn add_output(&mut self, r: usize, id: u32, endpoint: u32, ssrc: u32, payload_type: Option<u8>, source: Option<SourceRef>) {
        let cfg = OutputConfig { source: source.map(|s| s.id), ssrc, payload_type, rtx: None };
        self.routers[r].add_output(id, endpoint, &cfg, source, self.now_us, &mut self.ios[r]).unwrap();
    }

    fn switch(&mut self, r: usize, output: u32, source: Option<SourceRef>, on_keyframe: bool) {
        self.routers[r].switch_output(output, source, on_keyframe, self.now_us, &mut self.ios[r]).unwrap();
    }

    fn remove_output(&mut self, r: usize, id: u32) {
        self.routers[r].remove_output(id, &mut self.ios[r]).unwrap();
    }

    fn remove_source(&mut self, r: usize, id: u32) {
        self.routers[r].remove_source(id, &mut self.ios[r]).unwrap();
    }

    fn datagram(&mut self, r: usize, endpoint: u32, bytes: &[u8], from: SocketAddr) {
        let mut buf = [0u8; MAX_DATAGRAM];
        let len = bytes.len().min(MAX_DATAGRAM);
        buf[..len].copy_from_slice(&bytes[..len]);
        self.routers[r].on_datagram(endpoint, &mut buf, len, from, self.now_us, &mut self.ios[r]);
    }

    fn take_transmits(&mut self, r: usize) -> Vec<Transmit> {
        std::mem::take(&mut self.ios[r].transmits)
    }

    /// Moves what each router handed over into the receivers' channels.
    fn collect(&mut self) {
        let n = self.routers.len();
        for from in 0..n {
            for f in std::mem::take(&mut self.ios[from].forwards) {
                let packet = Rc::new(f.packet.clone());
                for h in &f.handoffs {
                    let to = h.worker;
                    assert_ne!(to, from, "router {from} forwarded to itself");
                    if to >= n {
                        continue; // like the worker: no such thread
                    }
                    if let Some(rule) = self.drop_forward.as_mut() {
                        if rule(to, f.source, h.seq) {
                            self.dropped[to] += 1;
                            continue;
                        }
                    }
                    self.forwards[to].push_back((f.source, h.subscription, h.seq, packet.clone()));
                }
                if self.logging {
                    self.forward_log.push((from, f));
                }
            }
            for (to, m) in std::mem::take(&mut self.ios[from].messages) {
                if self.logging {
                    self.message_log.push((from, to, m));
                }
                if to < n {
                    self.messages[to].push_back(m);
                }
            }
        }
    }

    fn pending(&self) -> usize {
        self.messages.iter().map(VecDeque::len).sum::<usize>() + self.forwards.iter().map(VecDeque::len).sum::<usize>()
    }

    fn deliver_message(&mut self, r: usize) -> bool {
        let Some(m) = self.messages[r].pop_front() else { return false };
        self.routers[r].on_message(m, self.now_us, &mut self.ios[r]);
        true
    }

    fn deliver_forward(&mut self, r: usize) -> bool {
        let Some((source, subscription, seq, packet)) = self.forwards[r].pop_front() else { return false };
        self.routers[r].on_forwarded(source, subscription, seq, &packet, self.now_us, &mut self.ios[r]);
        true
    }

    /// Delivers everything, messages first on each router, until nothing moves.
    fn settle(&mut self) {
        for _ in 0..1000 {
            self.collect();
            if self.pending() == 0 {
                return;
            }
            for r in 0..self.routers.len() {
                while self.deliver_message(r) {}
                while self.deliver_forward(r) {}
            }
        }
        panic!("the mesh never went quiet");
    }

    /// Delivers up to `max` items, each the head of a random non-empty channel.
    fn step_random(&mut self, rng: &mut Rng, max: usize) {
        for _ in 0..max {
            self.collect();
            let channels: Vec<(usize, bool)> = (0..self.routers.len())
                .flat_map(|r| [(r, true), (r, false)])
                .filter(|&(r, msg)| if msg { !self.messages[r].is_empty() } else { !self.forwards[r].is_empty() })
                .collect();
            if channels.is_empty() {
                return;
            }
            let (r, msg) = channels[rng.index(channels.len())];
            if msg {
                self.deliver_message(r);
            } else {
                self.deliver_forward(r);
            }
        }
    }

    fn logged_messages(&self, pred: impl Fn(&PeerMessage) -> bool) -> Vec<(usize, usize, PeerMessage)> {
        self.message_log.iter().filter(|(_, _, m)| pred(m)).copied().collect()
    }

    fn output_stats(&self, r: usize, id: u32) -> ferry_engine::StreamStats {
        self.routers[r].output_stats().into_iter().find(|(o, _)| *o == id).expect("output").1
    }

    fn endpoint_stats(&self, r: usize, id: u32) -> ferry_engine::EndpointStats {
        self.routers[r].endpoint_stats().into_iter().find(|(e, _, _)| *e == id).expect("endpoint").2
    }
}

// ---- packets -------------------------------------------------------------------------------

fn video(ssrc: u32) -> SourceConfig {
    SourceConfig { ssrc, ssrc_offset: 0, kind: MediaKind::Video, clock_rate: 90000, codec: Some(VideoCodec::Vp8) }
}

fn rtp_packet(ssrc: u32, seq: u16, ts: u32, pt: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, pt & 0x7f];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Frame {
    /// First packet of a VP8 keyframe (RFC 7741: S=1, PID=0, P=0).
    KeyStart,
    /// First packet of an inter frame (S=1, P=1).
    DeltaStart,
    /// A later packet of a frame (S=0).
    Continuation,
}

fn vp8_payload(frame: Frame) -> &'static [u8] {
    match frame {
        Frame::KeyStart => &[0x10, 0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a],
        Frame::DeltaStart => &[0x10, 0x11, 0x02, 0x00],
        Frame::Continuation => &[0x00, 0x55, 0x55],
    }
}

fn vp8_packet(ssrc: u32, seq: u16, ts: u32, frame: Frame) -> Vec<u8> {
    rtp_packet(ssrc, seq, ts, 96, vp8_payload(frame))
}

/// Media SSRC of a lone PLI (RFC 4585 §6.3.1).
fn pli_media_ssrc(bytes: &[u8]) -> Option<u32> {
    match rtcp::parse_feedback(bytes).ok()?.as_slice() {
        [rtcp::Feedback::Pli { media_ssrc, .. }] => Some(*media_ssrc),
        _ => None,
    }
}

/// (ssrc, seq, ts, pt, payload) of an RTP packet.
fn parse(bytes: &[u8]) -> (u32, u16, u32, u8, Vec<u8>) {
    let h = rtp::parse_rtp(bytes).expect("RTP");
    (h.ssrc, h.sequence, h.timestamp, h.payload_type, h.payload(bytes).unwrap_or(&[]).to_vec())
}

// ---- one router ----------------------------------------------------------------------------

#[test]
fn same_router_output_rewrites_ssrc_seq_ts_and_payload_type() {
    let mut m = Mesh::new(1);
    m.endpoint(0, 1, Some(PUB));
    m.endpoint(0, 2, Some(SUB1));
    m.routers[0].add_source(10, 1, video(0xa1)).unwrap();
    m.routers[0].add_source(11, 1, video(0xa2)).unwrap();
    let (a, b) = (m.sref(0, 10), m.sref(0, 11));
    m.add_output(0, 20, 2, 0x5555, Some(111), Some(a));
    // Attaching asks the publisher for a keyframe, on the publisher's endpoint and socket.
    let t = m.take_transmits(0);
    assert_eq!(t.len(), 1);
    assert_eq!((t[0].endpoint, t[0].transport, t[0].to), (1, transport_of(1), PUB));
    assert_eq!(pli_media_ssrc(&t[0].bytes), Some(0xa1));

    m.now_us = 1_000_000;
    for i in 0..10u16 {
        m.datagram(0, 1, &rtp_packet(0xa1, 1000 + i, 90_000 + u32::from(i) * 3000, 96, &[i as u8; 20]), PUB);
    }
    let t = m.take_transmits(0);
    assert_eq!(t.len(), 10);
    for (i, tx) in t.iter().enumerate() {
        assert_eq!((tx.endpoint, tx.transport, tx.to), (2, transport_of(2), SUB1));
        // The first packet ever keeps the source's own numbering; SSRC and PT are the output's.
        let (ssrc, seq, ts, pt, payload) = parse(&tx.bytes);
        assert_eq!((ssrc, seq, ts, pt), (0x5555, 1000 + i as u16, 90_000 + i as u32 * 3000, 111));
        assert_eq!(payload, vec![i as u8; 20]);
    }
    let last_ts = 90_000 + 9 * 3000;

    // Switch to B, whose numbering is unrelated: the output goes on from where it was.
    m.now_us += 20_000;
    m.switch(0, 20, Some(b), false);
    assert_eq!(m.take_transmits(0).iter().map(|t| pli_media_ssrc(&t.bytes)).collect::<Vec<_>>(), vec![Some(0xa2)]);
    for i in 0..10u16 {
        m.datagram(0, 1, &rtp_packet(0xa2, 65530u16.wrapping_add(i), 4_000_000_000 + u32::from(i) * 3000, 100, &[0xb0 | i as u8; 8]), PUB);
        m.datagram(0, 1, &rtp_packet(0xa1, 1010 + i, 150_000, 96, &[0; 4]), PUB);
        // no longer forwarded
    }
    let t = m.take_transmits(0);
    assert_eq!(t.len(), 10);
    for (i, tx) in t.iter().enumerate() {
        let (ssrc, seq, ts, pt, payload) = parse(&tx.bytes);
        assert_eq!((ssrc, pt), (0x5555, 111));
        assert_eq!(seq, 1010 + i as u16, "sequence continues across the switch");
        // Rebased on the 20 ms that passed (1800 ticks at 90 kHz), then B's own spacing.
        assert_eq!(ts, last_ts + 1800 + i as u32 * 3000);
        assert_eq!(payload, vec![0xb0 | i as u8; 8]);
    }
    let s = m.output_stats(0, 20);
    assert_eq!((s.packets, s.dropped, s.queue_drops), (20, 0, 0));
    let sources = m.routers[0].source_stats();
    assert_eq!(sources.iter().map(|(id, s)| (*id, s.packets)).collect::<Vec<_>>(), vec![(10, 20), (11, 10)]);
    let ep = m.endpoint_stats(0, 1);
    assert_eq!((ep.rx_packets, ep.rtp_in, ep.rtp_malformed, ep.unknown_ssrc), (30, 30, 0, 0));
}

#[test]
fn paused_output_drops_and_counts() {
    let mut m = Mesh::new(1);
    m.endpoint(0, 1, Some(PUB));
    m.endpoint(0, 2, Some(SUB1));
    m.endpoint(0, 3, Some(SUB2));
    m.routers[0].add_source(10, 1, video(0xa1)).unwrap();
    let a = m.sref(0, 10);
    m.add_output(0, 20, 2, 0x20, None, Some(a));
    m.add_output(0, 21, 3, 0x21, None, Some(a));
    m.take_transmits(0);
    m.routers[0].pause_output(20, true).unwrap();
    for i in 0..5u16 {
        m.datagram(0, 1, &vp8_packet(0xa1, i, 0, Frame::Continuation), PUB);
    }
    let t = m.take_transmits(0);
    assert_eq!(t.len(), 5);
    assert!(t.iter().all(|t| t.to == SUB2), "only the running output sends");
    assert_eq!(m.output_stats(0, 20).dropped, 5);
    assert_eq!(m.output_stats(0, 20).packets, 0);
    assert_eq!(m.output_stats(0, 21).dropped, 0);

    m.routers[0].pause_output(20, false).unwrap();
    m.datagram(0, 1, &vp8_packet(0xa1, 5, 0, Frame::Continuation), PUB);
    assert_eq!(m.take_transmits(0).iter().filter(|t| t.to == SUB1).count(), 1);
    let s = m.output_stats(0, 20);
    assert_eq!((s.packets, s.dropped), (1, 5));
    assert!(m.routers[0].pause_output(99, true).is_err());

    // A full send queue drops too, and says so.
    m.ios[0].refuse_slots = true;
    m.datagram(0, 1, &vp8_packet(0xa1, 6, 0, Frame::Continuation), PUB);
    m.ios[0].refuse_slots = false;
    assert!(m.take_transmits(0).is_empty());
    assert_eq!(m.output_stats(0, 20).dropped, 6);
    assert_eq!(m.output_stats(0, 21).dropped, 1);
}

fn audio(ssrc: u32) -> SourceConfig {
    SourceConfig { ssrc, ssrc_offset: 0, kind: MediaKind::Audio, clock_rate: 8000, codec: None }
}

/// An RFC 4733 event block (§2.3).
fn dtmf(event: u8, end: bool, duration: u16) -> [u8; 4] {
    let d = duration.to_be_bytes();
    [event, if end { 0x80 | 10 } else { 10 }, d[0], d[1]]
}

#[test]
fn payload_map_rewrites_or_drops_per_type_and_telephone_events_are_reported_once() {
    // A SIP bridge: the SIP peer sends PCMU (0) and events as 101; one output (the browser)
    // numbers events 126, another (a peer without events) must not get them at all.
    let mut m = Mesh::new(1);
    m.endpoint(0, 1, Some(PUB));
    m.endpoint(0, 2, Some(SUB1));
    m.endpoint(0, 3, Some(SUB2));
    m.routers[0].add_source(10, 1, audio(0xa1)).unwrap();
    m.routers[0].set_telephone_events(10, Some(101)).unwrap();
    let a = m.sref(0, 10);
    m.add_output(0, 20, 2, 0x20, Some(0), Some(a));
    m.add_output(0, 21, 3, 0x21, Some(0), Some(a));
    m.routers[0].set_output_payload_map(20, vec![(101, Some(126))]).unwrap();
    m.routers[0].set_output_payload_map(21, vec![(101, None)]).unwrap();
    assert!(m.routers[0].set_output_payload_map(21, vec![(128, None)]).is_err());
    assert!(m.routers[0].set_output_payload_map(99, vec![]).is_err());
    assert!(m.routers[0].set_telephone_events(99, Some(101)).is_err());
    m.take_transmits(0);

    // Audio, then digit 5 (two updates, the end three times), then audio again.
    let mut seq = 100u16;
    let mut send = |m: &mut Mesh, ts: u32, pt: u8, payload: &[u8]| {
        m.datagram(0, 1, &rtp_packet(0xa1, seq, ts, pt, payload), PUB);
        seq += 1;
    };
    send(&mut m, 8000, 0, &[0x55; 160]);
    send(&mut m, 8160, 101, &dtmf(5, false, 160));
    send(&mut m, 8160, 101, &dtmf(5, false, 320));
    for _ in 0..3 {
        send(&mut m, 8160, 101, &dtmf(5, true, 800));
    }
    send(&mut m, 8960, 0, &[0x55; 160]);
    let events: Vec<Event> = m.routers[0].take_events().into_iter().filter(|e| matches!(e, Event::TelephoneEvent { .. })).collect();
    assert_eq!(events, vec![Event::TelephoneEvent { endpoint: 1, source: 10, event: 5, volume: 10, duration: 800 }], "one report per event");

    let t = m.take_transmits(0);
    let browser: Vec<(u16, u8)> = t.iter().filter(|t| t.to == SUB1).map(|t| parse(&t.bytes)).map(|(_, seq, _, pt, _)| (seq, pt)).collect();
    assert_eq!(browser.iter().map(|(_, pt)| *pt).collect::<Vec<_>>(), vec![0, 126, 126, 126, 126, 126, 0], "events renumbered, audio as the output's type");
    let peer: Vec<(u16, u8)> = t.iter().filter(|t| t.to == SUB2).map(|t| parse(&t.bytes)).map(|(_, seq, _, pt, _)| (seq, pt)).collect();
    assert_eq!(peer.iter().map(|(_, pt)| *pt).collect::<Vec<_>>(), vec![0, 0], "no events where they are not negotiated");
    assert_eq!(peer[1].0, peer[0].0.wrapping_add(1), "the dropped events leave no sequence gap");
    assert_eq!(m.output_stats(0, 21).filtered, 5);

    // Off again: events pass with the output's payload type like everything else.
    m.routers[0].set_output_payload_map(21, vec![]).unwrap();
    m.routers[0].set_telephone_events(10, None).unwrap();
    send(&mut m, 9120, 101, &dtmf(7, true, 400));
    assert!(m.routers[0].take_events().iter().all(|e| !matches!(e, Event::TelephoneEvent { .. })));
    assert_eq!(m.take_transmits(0).iter().filter(|t| t.to == SUB2).count(), 1);
}

#[test]
fn unknown_ssrcs_are_reported_once_each_up_to_32() {
    let mut m = Mesh::new(1);
    m.endpoint(0, 1, Some(PUB));
    m.endpoint(0, 2, Some(PUB2));
    for round in 0..3 {
        for ssrc in 0..40u32 {
            m.datagram(0, 1, &rtp_packet(0x1000 + ssrc, round, 0, 97, &[1, 2, 3]), PUB);
        }
    }
    let events = m.routers[0].take_events();
    let reported: Vec<u32> = events
        .iter()
        .map(|e| match e {
            Event::UnknownSsrc { endpoint: 1, ssrc, payload_type: 97, rid: None } => *ssrc,
            other => panic!("unexpected event {other:?}"),
        })
        .collect();
    assert_eq!(reported, (0x1000..0x1000 + 32).collect::<Vec<_>>());
    assert_eq!(m.endpoint_stats(0, 1).unknown_ssrc, 120);

    // The cap is per endpoint.
    m.datagram(0, 2, &rtp_packet(0x1000, 0, 0, 96, &[]), PUB2);
    assert!(matches!(m.routers[0].take_events().as_slice(), [Event::UnknownSsrc { endpoint: 2, ssrc: 0x1000, .. }]));
    // A source claiming a reported SSRC takes its packets from then on; no new event.
    m.routers[0].add_source(10, 1, video(0x1001)).unwrap();
    m.datagram(0, 1, &rtp_packet(0x1001, 9, 0, 96, &[]), PUB);
    assert!(m.routers[0].take_events().is_empty());
    assert_eq!(m.routers[0].source_stats()[0].1.packets, 1);
}

#[test]
fn malformed_rtp_and_rtcp_are_counted() {
    let mut m = Mesh::new(1);
    m.endpoint(0, 1, Some(PUB));
    m.routers[0].add_source(10, 1, video(0xa1)).unwrap();
    let malformed_rtp: [&[u8]; 4] = [
        &[0x80, 96, 0, 1],                                         // shorter than the fixed header
        &[0x8f, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0xa1],              // 15 CSRCs announced, none there
        &[0x90, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0xa1, 0xbe, 0xde],  // extension header cut short
        &[0xa0, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0xa1, 1, 2, 3, 60], // padding longer than the packet
    ];
    for p in malformed_rtp {
        m.datagram(0, 1, p, PUB);
    }
    m.datagram(0, 1, &[0x80, 201, 0, 7, 0, 0, 0, 1], PUB); // RR whose length runs past the end
    m.datagram(0, 1, &[], PUB);
    m.datagram(0, 1, &[200, 1, 2, 3], PUB); // first byte of no protocol (RFC 7983)
    m.datagram(0, 1, &[0x01, 0x01, 0, 0], PUB); // STUN on an endpoint without ICE
    let ep = m.endpoint_stats(0, 1);
    assert_eq!(ep.rtp_malformed, 4);
    assert_eq!(ep.rtcp_malformed, 1);
    assert_eq!(ep.demux_unknown, 2);
    assert_eq!(ep.stun_dropped, 1);
    assert_eq!((ep.rx_packets, ep.rtp_in, ep.rtcp_in), (8, 4, 1));
    assert_eq!(m.routers[0].source_stats()[0].1.packets, 0);
    assert!(m.routers[0].take_events().is_empty());
    // Datagrams for an endpoint that does not exist change nothing.
    m.datagram(0, 77, &rtp_packet(0xa1, 1, 0, 96, &[]), PUB);
    assert_eq!(m.routers[0].source_stats()[0].1.packets, 0);
}

#[test]
fn pli_for_an_output_is_relayed_to_the_publisher_rate_limited() {
    let mut m = Mesh::new(1);
    m.endpoint(0, 1, Some(PUB));
    m.endpoint(0, 2, Some(SUB1));
    m.routers[0].add_source(10, 1, video(0xa1)).unwrap();
    let a = m.sref(0, 10);
    m.add_output(0, 20, 2, 0x5555, None, Some(a));
    m.take_transmits(0);
    m.routers[0].take_events();

    let relayed = |m: &mut Mesh, at_us: u64, rtcp: &[u8]| -> bool {
        m.now_us = at_us;
        m.datagram(0, 2, rtcp, SUB1);
        let t = m.take_transmits(0);
        assert!(t.len() <= 1);
        if let Some(t) = t.first() {
            assert_eq!((t.endpoint, t.to), (1, PUB));
            assert_eq!(pli_media_ssrc(&t.bytes), Some(0xa1), "PLI for the publisher's own SSRC");
        }
        !t.is_empty()
    };
    let pli = rtcp::build_pli(0x9999, 0x5555);
    assert!(relayed(&mut m, 1_000_000, &pli));
    assert!(!relayed(&mut m, 1_100_000, &pli), "within 300 ms");
    assert!(!relayed(&mut m, 1_299_999, &rtcp::build_fir(0x9999, 0x5555, 1)));
    assert!(relayed(&mut m, 1_300_000, &rtcp::build_fir(0x9999, 0x5555, 2)));
    // Feedback for an SSRC that is no output here is ignored.
    assert!(!relayed(&mut m, 5_000_000, &rtcp::build_pli(0x9999, 0xa1)));
    // A forced request (a switch, the control plane) goes out regardless.
    m.now_us = 1_350_000;
    m.routers[0].request_keyframe(10, true, m.now_us, &mut m.ios[0]);
    assert_eq!(m.take_transmits(0).len(), 1);
    m.routers[0].request_keyframe(10, false, m.now_us + 1, &mut m.ios[0]);
    assert!(m.take_transmits(0).is_empty());
    // Three here, and the one asked for when the output was attached.
    assert_eq!(m.endpoint_stats(0, 1).keyframe_requests_relayed, 4);
    assert_eq!(m.routers[0].take_events(), vec![Event::KeyframeRequested { source: 10 }; 3]);
}

/// The keyframe request sent when an output is attached counts for the rate limit as any
/// other: a subscriber's PLI right after it is not relayed again, whether the output's
/// router is the source's or another.
#[test]
fn attaching_an_output_starts_the_keyframe_rate_limit_at_the_current_time() {
    for output_router in [0, 1] {
        let mut m = Mesh::new(2);
        m.endpoint(0, 1, Some(PUB));
        m.endpoint(output_router, 2, Some(SUB1));
        m.routers[0].add_source(10, 1, video(0xa1)).unwrap();
        m.now_us = 5_000_000;
        let a = m.sref(0, 10);
        m.add_output(output_router, 20, 2, 0x5555, None, Some(a));
        m.settle();
        assert_eq!(m.take_transmits(0).len(), 1, "the attach asks for a keyframe");
        m.now_us = 5_100_000;
        m.datagram(output_router, 2, &rtcp::build_pli(0x9999, 0x5555), SUB1);
        m.settle();
        assert!(m.take_transmits(0).is_empty(), "PLI 100 ms after the attach relayed (output on router {output_router})");
        m.now_us = 5_300_000;
        m.datagram(output_router, 2, &rtcp::build_pli(0x9999, 0x5555), SUB1);
        m.settle();
        assert_eq!(m.take_transmits(0).len(), 1);
    }
}

#[test]
fn pli_for_an_output_on_another_router_reaches_the_publisher() {
    let mut m = Mesh::new(2);
    m.endpoint(0, 1, Some(PUB));
    m.endpoint(1, 2, Some(SUB1));
    m.routers[0].add_source(10, 1, video(0xa1)).unwrap();
    let a = m.sref(0, 10);
    m.add_output(1, 20, 2, 0x5555, None, Some(a));
    assert_eq!(m.ios[1].messages, vec![(0, PeerMessage::Subscribe { source: 10, worker: 1, subscription: 1 }), (0, PeerMessage::KeyframeRequest { source: 10, force: true })]);
    m.settle();
    assert_eq!(m.take_transmits(0).iter().map(|t| pli_media_ssrc(&t.bytes)).collect::<Vec<_>>(), vec![Some(0xa1)]);

    let relayed = |m: &mut Mesh, at_us: u64| -> bool {
        m.now_us = at_us;
        m.datagram(1, 2, &rtcp::build_pli(0x9999, 0x5555), SUB1);
        assert!(m.ios[1].transmits.is_empty(), "nothing goes out on the subscriber's router");
        assert_eq!(m.ios[1].messages, vec![(0, PeerMessage::KeyframeRequest { source: 10, force: false })]);
        m.settle();
        let t = m.take_transmits(0);
        t.iter().for_each(|t| assert_eq!((t.endpoint, t.to, pli_media_ssrc(&t.bytes)), (1, PUB, Some(0xa1))));
        !t.is_empty()
    };
    assert!(relayed(&mut m, 1_000_000));
    assert!(!relayed(&mut m, 1_200_000));
    assert!(relayed(&mut m, 1_300_000));
    assert_eq!(m.endpoint_stats(0, 1).keyframe_requests_relayed, 3);
}

// ---- SRTP ----------------------------------------------------------------------------------

const PROFILE: SrtpProfile = SrtpProfile::AeadAes128Gcm;

fn key(tag: u8) -> (Vec<u8>, Vec<u8>) {
    (vec![tag; PROFILE.master_key_len()], vec![tag ^ 0x5a; PROFILE.master_salt_len()])
}

/// Keys of an endpoint: ferry sends with `local`, its peer with `remote`.
fn keys(local: u8, remote: u8) -> SrtpKeys {
    let ((local_key, local_salt), (remote_key, remote_salt)) = (key(local), key(remote));
    SrtpKeys { profile: PROFILE, local_key, local_salt, remote_key, remote_salt }
}

fn context(tag: u8) -> SrtpContext {
    let (k, s) = key(tag);
    SrtpContext::new(PROFILE, &k, &s).unwrap()
}

fn protect_rtp(ctx: &mut SrtpContext, plain: &[u8]) -> Vec<u8> {
    let mut buf = plain.to_vec();
    buf.resize(plain.len() + 64, 0);
    let n = ctx.protect_rtp(&mut buf, plain.len()).unwrap();
    buf.truncate(n);
    buf
}

fn protect_rtcp(ctx: &mut SrtpContext, plain: &[u8]) -> Vec<u8> {
    let mut buf = plain.to_vec();
    buf.resize(plain.len() + 64, 0);
    let n = ctx.protect_rtcp(&mut buf, plain.len()).unwrap();
    buf.truncate(n);
    buf
}

fn unprotect_rtp(ctx: &mut SrtpContext, bytes: &[u8]) -> Option<Vec<u8>> {
    let mut buf = bytes.to_vec();
    let n = ctx.unprotect_rtp(&mut buf, bytes.len()).ok()?;
    buf.truncate(n);
    Some(buf)
}

fn unprotect_rtcp(ctx: &mut SrtpContext, bytes: &[u8]) -> Option<Vec<u8>> {
    let mut buf = bytes.to_vec();
    let n = ctx.unprotect_rtcp(&mut buf, bytes.len()).ok()?;
    buf.truncate(n);
    Some(buf)
}

#[test]
fn srtp_is_removed_once_at_home_and_applied_per_output_on_other_routers() {
    let mut m = Mesh::new(3);
    m.endpoint(0, 1, Some(PUB));
    m.endpoint(1, 2, Some(SUB1));
    m.endpoint(2, 3, Some(SUB2));
    // Each direction of each endpoint has its own key: 1x from ferry, 2x to ferry.
    m.routers[0].set_srtp(1, &keys(0x11, 0x21)).unwrap();
    m.routers[1].set_srtp(2, &keys(0x12, 0x22)).unwrap();
    m.routers[2].set_srtp(3, &keys(0x13, 0x23)).unwrap();
    assert!(m.routers[0]
        .set_srtp(1, &SrtpKeys { profile: PROFILE, local_key: vec![1; 3], local_salt: vec![], remote_key: vec![], remote_salt: vec![] })
        .is_err());
    let (mut publisher_tx, mut publisher_rx) = (context(0x21), context(0x11));
    let (mut sub1_tx, mut sub1_rx) = (context(0x22), context(0x12));
    let mut sub2_rx = context(0x13);

    m.routers[0].add_source(10, 1, video(0xa1)).unwrap();
    let a = m.sref(0, 10);
    m.add_output(1, 20, 2, 0x2020, None, Some(a));
    m.add_output(2, 21, 3, 0x2121, None, Some(a));
    m.settle();
    // The attach PLIs reach the publisher SRTCP-protected with its endpoint's key.
    let plis = m.take_transmits(0);
    assert_eq!(plis.len(), 2);
    for t in &plis {
        assert!(pli_media_ssrc(&t.bytes).is_none(), "sent in the clear");
        assert_eq!(pli_media_ssrc(&unprotect_rtcp(&mut publisher_rx, &t.bytes).unwrap()), Some(0xa1));
    }
    let plain: Vec<Vec<u8>> = (0..20u16).map(|i| vp8_packet(0xa1, 7000 + i, u32::from(i) * 3000, Frame::DeltaStart)).collect();
    for p in &plain {
        let wire = protect_rtp(&mut publisher_tx, p);
        m.datagram(0, 1, &wire, PUB);
    }
    // Decrypted once at home: each packet is handed over once, in the clear, to both routers.
    assert_eq!(m.ios[0].forwards.len(), 20);
    for (i, f) in m.ios[0].forwards.iter().enumerate() {
        let mut workers = f.workers.clone();
        workers.sort_unstable();
        assert_eq!((workers, f.source, f.fseq), (vec![1, 2], 10, i as u64));
        assert_eq!(f.packet, plain[i]);
    }
    m.settle();
    for (r, ctx, other, ssrc, to) in [(1, &mut sub1_rx, context(0x13), 0x2020, SUB1), (2, &mut sub2_rx, context(0x12), 0x2121, SUB2)] {
        let mut other = other;
        let t = m.take_transmits(r);
        assert_eq!(t.len(), 20);
        for (i, tx) in t.iter().enumerate() {
            assert_eq!(tx.to, to);
            assert!(unprotect_rtp(&mut other, &tx.bytes).is_none(), "encrypted with this output's key only");
            let got = unprotect_rtp(ctx, &tx.bytes).expect("the subscriber decrypts");
            let (out_ssrc, seq, ts, _, payload) = parse(&got);
            assert_eq!((out_ssrc, seq, ts), (ssrc, 7000 + i as u16, i as u32 * 3000));
            assert_eq!(payload, vp8_payload(Frame::DeltaStart));
        }
    }

    // A forged packet and a replay are dropped at home and never handed over.
    let mut forged = protect_rtp(&mut publisher_tx, &vp8_packet(0xa1, 7020, 0, Frame::DeltaStart));
    let replay = protect_rtp(&mut publisher_tx, &vp8_packet(0xa1, 7021, 0, Frame::DeltaStart));
    forged[14] ^= 1;
    m.datagram(0, 1, &forged, PUB);
    m.datagram(0, 1, &replay, PUB);
    m.datagram(0, 1, &replay, PUB);
    let ep = m.endpoint_stats(0, 1);
    assert_eq!((ep.srtp_auth_failures, ep.srtp_replays), (1, 1));
    m.collect();
    assert_eq!(m.forward_log.len(), 21);

    // The subscriber's SRTCP PLI travels home and out to the publisher, re-protected.
    m.now_us = 2_000_000;
    m.datagram(1, 2, &protect_rtcp(&mut sub1_tx, &rtcp::build_pli(0x77, 0x2020)), SUB1);
    m.datagram(1, 2, &rtcp::build_pli(0x77, 0x2020), SUB1); // in the clear: refused
    assert_eq!(m.endpoint_stats(1, 2).srtcp_failures, 1);
    m.settle();
    let t = m.take_transmits(0);
    assert_eq!(t.len(), 1);
    assert_eq!(pli_media_ssrc(&unprotect_rtcp(&mut publisher_rx, &t[0].bytes).unwrap()), Some(0xa1));
}

// ---- across routers ------------------------------------------------------------------------

/// Source 10 (SSRC 0xa1) on router 0's endpoint 1; outputs 20 and 21 on router 1 (endpoint
/// 2), 22 on router 2 (endpoint 3), 23 on router 0 (endpoint 4).
fn fan_out_mesh() -> Mesh {
    let mut m = Mesh::new(3);
    m.endpoint(0, 1, Some(PUB));
    m.endpoint(1, 2, Some(SUB1));
    m.endpoint(2, 3, Some(SUB2));
    m.endpoint(0, 4, Some(SUB3));
    m.routers[0].add_source(10, 1, video(0xa1)).unwrap();
    let a = m.sref(0, 10);
    m.add_output(1, 20, 2, 0x20, None, Some(a));
    m.add_output(1, 21, 2, 0x21, None, Some(a));
    m.add_output(2, 22, 3, 0x22, None, Some(a));
    m.add_output(0, 23, 4, 0x23, None, Some(a));
    m.settle();
    for r in 0..3 {
        m.take_transmits(r);
    }
    m
}

fn seqs_of(t: &[Transmit], ssrc: u32) -> Vec<u16> {
    t.iter().map(|t| parse(&t.bytes)).filter(|p| p.0 == ssrc).map(|p| p.1).collect()
}

#[test]
fn every_packet_reaches_each_output_once_and_subscriptions_unwind() {
    let mut m = fan_out_mesh();
    // One subscription per router, however many outputs it has.
    assert_eq!(
        m.logged_messages(|x| matches!(x, PeerMessage::Subscribe { .. })),
        vec![(1, 0, PeerMessage::Subscribe { source: 10, worker: 1, subscription: 1 }), (2, 0, PeerMessage::Subscribe { source: 10, worker: 2, subscription: 1 })]
    );
    assert_eq!(m.routers[0].subscription_count(), 2);
    assert_eq!([m.routers[0].remote_feed_count(), m.routers[1].remote_feed_count(), m.routers[2].remote_feed_count()], [0, 1, 1]);

    let mut rng = Rng::new(1);
    for i in 0..300u16 {
        m.datagram(0, 1, &vp8_packet(0xa1, 100 + i, 0, Frame::Continuation), PUB);
        m.step_random(&mut rng, 3);
    }
    m.settle();
    let expected: Vec<u16> = (100..400).collect();
    let (t0, t1, t2) = (m.take_transmits(0), m.take_transmits(1), m.take_transmits(2));
    assert_eq!(seqs_of(&t1, 0x20), expected);
    assert_eq!(seqs_of(&t1, 0x21), expected);
    assert_eq!(seqs_of(&t2, 0x22), expected);
    assert_eq!(seqs_of(&t0, 0x23), expected);
    assert_eq!((t0.len(), t1.len(), t2.len()), (300, 600, 300));
    // Each packet handed over once, to each subscriber router once.
    let forwards: Vec<_> = m.forward_log.iter().filter(|(from, _)| *from == 0).map(|(_, f)| f).collect();
    assert_eq!(forwards.len(), 300);
    for (i, f) in forwards.iter().enumerate() {
        let mut w = f.workers.clone();
        w.sort_unstable();
        assert_eq!((w, f.fseq), (vec![1, 2], i as u64));
    }
    assert_eq!(m.routers[1].cross_stats().received, 300);
    assert_eq!(m.routers[1].cross_stats().gaps, 0);

    // Router 1's outputs go: the last one unsubscribes, once.
    m.remove_output(1, 20);
    assert!(m.ios[1].messages.is_empty(), "output 21 still wants the source");
    // Packets already on their way when the last output goes arrive unwanted and go nowhere.
    for i in 0..3u16 {
        m.datagram(0, 1, &vp8_packet(0xa1, 400 + i, 0, Frame::Continuation), PUB);
    }
    m.collect();
    m.remove_output(1, 21);
    assert_eq!(m.ios[1].messages, vec![(0, PeerMessage::Unsubscribe { source: 10, worker: 1 })]);
    assert_eq!(m.routers[1].remote_feed_count(), 0);
    m.settle();
    assert_eq!(m.routers[0].subscription_count(), 1);
    assert_eq!(m.routers[1].cross_stats().unwanted, 3);
    assert!(m.take_transmits(1).is_empty());
    m.datagram(0, 1, &vp8_packet(0xa1, 403, 0, Frame::Continuation), PUB);
    assert_eq!(m.ios[0].forwards.last().map(|f| f.workers.clone()), Some(vec![2]));
    m.settle();
    assert_eq!(seqs_of(&m.take_transmits(2), 0x22), vec![400, 401, 402, 403]);
    assert_eq!(seqs_of(&m.take_transmits(0), 0x23), vec![400, 401, 402, 403]);

    // The source goes: router 2 is told, drops its feed, keeps its (now idle) output.
    m.remove_source(0, 10);
    assert_eq!(m.ios[0].messages, vec![(2, PeerMessage::SourceGone { source: 10 })]);
    m.settle();
    assert_eq!(m.routers[0].subscription_count(), 0);
    assert_eq!(m.routers[2].remote_feed_count(), 0);
    assert_eq!(m.routers[2].output_count(), 1);
    m.datagram(0, 1, &vp8_packet(0xa1, 404, 0, Frame::Continuation), PUB);
    m.settle();
    assert!(m.forward_log.iter().all(|(_, f)| f.fseq < 304));
    assert!((0..3).all(|r| m.take_transmits(r).is_empty()));
    // Switching the idle output to the dead source: subscribe, told it is gone, idle again.
    m.switch(2, 22, Some(SourceRef { id: 10, home: 0, codec: Some(VideoCodec::Vp8), clock_rate: 90000, kind: MediaKind::Video }), false);
    m.settle();
    assert_eq!(m.routers[2].remote_feed_count(), 0);
    assert_eq!(m.logged_messages(|x| matches!(x, PeerMessage::SourceGone { .. })).len(), 2);

    m.remove_output(2, 22);
    m.remove_output(0, 23);
    m.settle();
    for r in &m.routers {
        assert_eq!((r.source_count(), r.output_count(), r.remote_feed_count(), r.subscription_count()), (0, 0, 0, 0));
    }
}

#[test]
fn queue_drops_count_exactly_the_forwards_lost_on_the_way() {
    let mut m = fan_out_mesh();
    m.logging = false;
    let mut rng = Rng::new(7);
    // Router 1's queue loses about one packet in five (never the first: a new feed starts
    // counting at the first packet it sees); router 2's loses none.
    m.drop_forward = Some(Box::new(move |to, _source, fseq| to == 1 && fseq > 0 && rng.chance(1, 5)));
    let n = 1000u16;
    let mut pacing = Rng::new(8);
    for i in 0..n {
        m.datagram(0, 1, &vp8_packet(0xa1, 5000 + i, 0, Frame::Continuation), PUB);
        m.step_random(&mut pacing, 2);
    }
    m.settle();
    // The last one gets through, so every loss before it shows as a gap.
    m.drop_forward = None;
    m.datagram(0, 1, &vp8_packet(0xa1, 5000 + n, 0, Frame::Continuation), PUB);
    m.settle();
    let lost = m.dropped[1];
    assert!(lost > 100, "{lost}");
    assert_eq!(m.dropped[2], 0);
    for o in [20, 21] {
        let s = m.output_stats(1, o);
        assert_eq!((s.queue_drops, s.dropped, s.packets), (lost, lost, u64::from(n) + 1 - lost), "output {o}");
    }
    let s = m.output_stats(2, 22);
    assert_eq!((s.queue_drops, s.dropped, s.packets), (0, 0, u64::from(n) + 1));
    assert_eq!(m.output_stats(0, 23).queue_drops, 0);
    let cross = m.routers[1].cross_stats();
    assert_eq!((cross.received, cross.gaps, cross.unwanted), (u64::from(n) + 1 - lost, lost, 0));
    // The receiver sees the loss as gaps in the sequence, not as a renumbered stream.
    let seqs = seqs_of(&m.take_transmits(1), 0x20);
    let gaps: u64 = seqs.windows(2).map(|w| u64::from(w[1].wrapping_sub(w[0])) - 1).sum();
    assert_eq!(gaps, lost);
}

/// Known inexactness (not fixed here, see the report): a router that drops its feed of a
/// source and subscribes again while packets of its old subscription are still queued for it
/// takes the first of those as the start of the new feed; packets the home numbered for other
/// routers meanwhile then look like queue drops, though nothing was dropped. The home hands
/// over one `fseq` per packet for all subscribers, so the subscriber cannot tell the two
/// subscriptions' packets apart without more in the protocol.
#[test]
fn resubscribing_while_packets_are_in_flight_counts_no_phantom_queue_drops() {
    let mut m = fan_out_mesh();
    m.remove_output(1, 21);
    m.settle();
    m.datagram(0, 1, &vp8_packet(0xa1, 1, 0, Frame::Continuation), PUB); // fseq 0
    m.settle();
    m.datagram(0, 1, &vp8_packet(0xa1, 2, 0, Frame::Continuation), PUB); // fseq 1, queued for 1 and 2
    m.collect();
    // Router 1's output leaves the source and comes back before router 1 reads its queue.
    m.switch(1, 20, None, false);
    m.switch(1, 20, Some(m.sref(0, 10)), false);
    m.collect();
    assert!(m.deliver_message(0)); // Unsubscribe
    m.datagram(0, 1, &vp8_packet(0xa1, 3, 0, Frame::Continuation), PUB); // fseq 2, router 2 only
    assert_eq!(m.ios[0].forwards.last().map(|f| f.workers.clone()), Some(vec![2]));
    m.settle(); // Subscribe, then router 1 reads fseq 1 into its new feed
    m.datagram(0, 1, &vp8_packet(0xa1, 4, 0, Frame::Continuation), PUB); // fseq 3, both
    m.settle();
    assert_eq!(m.dropped, vec![0, 0, 0]);
    assert_eq!(m.output_stats(1, 20).queue_drops, 0, "nothing addressed to router 1 was lost");
    assert_eq!(m.routers[1].cross_stats().gaps, 0);
}

// ---- switching -----------------------------------------------------------------------------

/// What an output sent, with the origin of each packet from the tag its publisher appended:
/// (out seq, out ts, origin SSRC, origin seq, origin ts).
type Sent = (u16, u32, u8, u16, u32);

fn stream_of(t: &[Transmit], to: SocketAddr) -> Vec<Sent> {
    t.iter()
        .filter(|t| t.to == to)
        .map(|t| {
            let (_, seq, ts, _, payload) = parse(&t.bytes);
            let tag = &payload[payload.len() - 7..];
            (seq, ts, tag[0], u16::from_be_bytes([tag[1], tag[2]]), u32::from_be_bytes([tag[3], tag[4], tag[5], tag[6]]))
        })
        .collect()
}

/// One RTP stream whatever feeds it: at a change of source the sequence number goes up by
/// exactly one and the timestamp does not go back; between two packets of one source the
/// output keeps that source's own spacing (so a packet of it the output did not get, while
/// switched away and back, still shows as missing rather than being renumbered away).
fn assert_one_stream(name: &str, s: &[Sent]) {
    for (i, w) in s.windows(2).enumerate() {
        let ((seq0, ts0, src0, iseq0, its0), (seq1, ts1, src1, iseq1, its1)) = (w[0], w[1]);
        let around = || format!("{name}, packet {i}: {:?}", &s[i.saturating_sub(3)..(i + 4).min(s.len())]);
        assert!(ts1.wrapping_sub(ts0) as i32 >= 0, "timestamp went back: {}", around());
        if src0 == src1 {
            let step = iseq1.wrapping_sub(iseq0);
            assert!((1..1000).contains(&step), "{}", around());
            assert_eq!(seq1.wrapping_sub(seq0), step, "{}", around());
            assert_eq!(ts1.wrapping_sub(ts0), its1.wrapping_sub(its0), "{}", around());
        } else {
            assert_eq!(seq1, seq0.wrapping_add(1), "{}", around());
        }
    }
}

struct Publisher {
    router: usize,
    endpoint: u32,
    ssrc: u32,
    from: SocketAddr,
    seq: u16,
    ts: u32,
}

impl Publisher {
    /// The next packet: a VP8 keyframe start, inter-frame start or continuation, tagged with
    /// its origin (SSRC octet, seq, ts) in its last 7 octets.
    fn next(&mut self, rng: &mut Rng) -> Vec<u8> {
        let frame = match rng.below(100) {
            0..=9 => Frame::KeyStart,
            10..=49 => Frame::DeltaStart,
            _ => Frame::Continuation,
        };
        if frame != Frame::Continuation {
            self.ts = self.ts.wrapping_add(3000);
        }
        self.seq = self.seq.wrapping_add(1);
        let mut p = vp8_packet(self.ssrc, self.seq, self.ts, frame);
        p.push(self.ssrc as u8);
        p.extend_from_slice(&self.seq.to_be_bytes());
        p.extend_from_slice(&self.ts.to_be_bytes());
        p
    }
}

/// Sources A (router 0) and B (router 1); output X on router 1, Y on router 2; each output
/// switched `switches` times between A and B, immediately or at the new source's keyframe,
/// while both publishers send with random pacing; the routers' channels deliver everything
/// after each step, or a few items at a time from random channels.
fn switching_run(seed: u64, switches: usize, deliver_at_once: bool) {
    let mut m = Mesh::new(3);
    m.logging = false;
    m.endpoint(0, 1, Some(PUB));
    m.endpoint(1, 2, Some(PUB2));
    m.endpoint(1, 3, Some(SUB1));
    m.endpoint(2, 4, Some(SUB2));
    m.routers[0].add_source(10, 1, video(0xa)).unwrap();
    m.routers[1].add_source(11, 2, video(0xb)).unwrap();
    let refs = [m.sref(0, 10), m.sref(1, 11)];
    // (router, output, index of the source it was last switched to)
    let mut outputs = [(1usize, 20u32, 0usize), (2, 21, 1)];
    m.add_output(1, 20, 3, 0x2000, None, Some(refs[0]));
    m.add_output(2, 21, 4, 0x2100, None, Some(refs[1]));
    let mut publishers = [
        Publisher { router: 0, endpoint: 1, ssrc: 0xa, from: PUB, seq: 65000, ts: u32::MAX - 200_000 },
        Publisher { router: 1, endpoint: 2, ssrc: 0xb, from: PUB2, seq: 10, ts: 1_000 },
    ];
    let mut rng = Rng::new(seed);
    let mut done = [0usize; 2];
    let mut keyframe_switches = 0;
    let mut sent: [Vec<Sent>; 2] = [Vec::new(), Vec::new()];
    let take = |m: &mut Mesh, sent: &mut [Vec<Sent>; 2]| {
        for (k, r, to) in [(0, 1, SUB1), (1, 2, SUB2)] {
            sent[k].extend(stream_of(&m.take_transmits(r), to));
        }
        m.take_transmits(0); // PLIs to publisher A
    };
    m.now_us = 1_000_000;
    while done.iter().any(|&d| d < switches) {
        m.now_us += rng.below(15_000);
        if rng.chance(1, 12) {
            let k = rng.index(2);
            let (r, id, current) = outputs[k];
            if done[k] < switches {
                let on_keyframe = rng.chance(1, 2);
                keyframe_switches += usize::from(on_keyframe);
                m.switch(r, id, Some(refs[1 - current]), on_keyframe);
                outputs[k].2 = 1 - current;
                done[k] += 1;
            }
        } else {
            let p = &mut publishers[rng.index(2)];
            let packet = p.next(&mut rng);
            let (r, ep, from) = (p.router, p.endpoint, p.from);
            m.datagram(r, ep, &packet, from);
        }
        if deliver_at_once {
            m.settle();
        } else {
            let n = rng.index(4);
            m.step_random(&mut rng, n);
        }
        take(&mut m, &mut sent);
    }
    m.settle();
    take(&mut m, &mut sent);
    assert!(keyframe_switches > switches / 2, "{keyframe_switches}");
    for k in 0..2 {
        assert!(sent[k].len() > 200, "output {k} sent {}", sent[k].len());
        assert_one_stream(["X", "Y"][k], &sent[k]);
        // Both sources fed it, in turns.
        let changes = sent[k].windows(2).filter(|w| w[0].2 != w[1].2).count();
        assert!(changes > switches / 4, "output {k}: {changes} changes of source");
    }
    // Nothing was lost between the routers, so nothing may be counted as lost (only when
    // each step is delivered at once: see the ignored test above for the other case).
    if deliver_at_once {
        for r in &m.routers {
            assert_eq!(r.cross_stats().gaps, 0, "router {}", r.worker());
        }
        assert!(m.routers.iter().flat_map(|r| r.output_stats()).all(|(_, s)| s.queue_drops == 0));
    }
    let switched = m.routers.iter_mut().flat_map(|r| r.take_events()).filter(|e| matches!(e, Event::OutputSwitched { .. })).count();
    assert!(switched > 0);
}

#[test]
fn switching_between_routers_keeps_each_output_one_stream() {
    for seed in 1..=4 {
        switching_run(seed, 100, true);
    }
}

#[test]
fn switching_between_routers_with_channels_in_random_order() {
    for seed in 1..=4 {
        switching_run(seed, 100, false);
    }
}

// ---- random input --------------------------------------------------------------------------

/// What the random test believes exists; the routers must agree.
struct FuzzEndpoint {
    id: u32,
    router: usize,
    /// ICE credentials (local ufrag, pwd) when the endpoint runs ICE-lite.
    ice: Option<(String, String)>,
    /// What the peer protects with, when the endpoint has SRTP keys.
    srtp_tx: Option<SrtpContext>,
}

struct Model {
    endpoints: Vec<FuzzEndpoint>,
    /// (id, router, endpoint, SSRC)
    sources: Vec<(u32, usize, u32, u32)>,
    outputs: Vec<(u32, usize, u32)>,
    dead_sources: Vec<SourceRef>,
    next_id: u32,
    /// Per-SSRC-slot sequence numbers of the well-formed RTP the publishers send.
    seqs: [u16; 8],
    /// Per endpoint: (UnknownSsrc events seen, events allowed).
    unknown_reports: std::collections::HashMap<u32, (usize, usize)>,
}

const FUZZ_SSRCS: [u32; 8] = [1, 2, 3, 0xa1, 0xa2, 0xdead_beef, 0x1000, 0xffff_ffff];
const FUZZ_OUTPUT_SSRCS: [u32; 12] = [0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29, 0x9999, 1];

fn fuzz_from(rng: &mut Rng) -> SocketAddr {
    if rng.chance(9, 10) {
        let i = rng.below(5) as u8;
        addr(203, 0, 113, i, 7000 + u16::from(i))
    } else {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::from(rng.next() as u32)), rng.next() as u16)
    }
}

/// Well-formed RTP of a known SSRC: CSRCs, header extensions (one- or two-byte form, with
/// audio level, transport-cc and rid elements), VP8 or random payload, sometimes padding.
fn fuzz_rtp(rng: &mut Rng, model: &mut Model, ep: Option<u32>) -> Vec<u8> {
    // Mostly the SSRC of one of the endpoint's sources.
    let claimed: Vec<u32> = model.sources.iter().filter(|s| Some(s.2) == ep).map(|s| s.3).collect();
    let slot = match claimed.as_slice() {
        [] => rng.index(FUZZ_SSRCS.len()),
        _ if rng.chance(1, 4) => rng.index(FUZZ_SSRCS.len()),
        ssrcs => {
            let ssrc = ssrcs[rng.index(ssrcs.len())];
            FUZZ_SSRCS.iter().position(|&s| s == ssrc).expect("pool SSRC")
        }
    };
    // Mostly in order; now and then a loss, a reordering, or a restart anywhere.
    let step = match rng.below(100) {
        0..=3 => 2 + rng.below(20) as u16,
        4 => 0u16.wrapping_sub(rng.below(5) as u16),
        5 => rng.next() as u16,
        _ => 1,
    };
    model.seqs[slot] = model.seqs[slot].wrapping_add(step);
    let csrcs = if rng.chance(1, 8) { rng.below(3) as u8 } else { 0 };
    let extension = rng.chance(1, 2);
    let padding = rng.chance(1, 16);
    let mut p =
        vec![0x80 | (u8::from(padding) << 5) | (u8::from(extension) << 4) | csrcs, [96, 111, 100, 0][rng.index(4)] | if rng.chance(1, 4) { 0x80 } else { 0 }];
    p.extend_from_slice(&model.seqs[slot].to_be_bytes());
    p.extend_from_slice(&(rng.next() as u32 & 0xffff_f000).to_be_bytes());
    p.extend_from_slice(&FUZZ_SSRCS[slot].to_be_bytes());
    for _ in 0..csrcs {
        p.extend_from_slice(&(rng.next() as u32).to_be_bytes());
    }
    if extension {
        let mut body = Vec::new();
        let two_byte = rng.chance(1, 4);
        for _ in 0..rng.below(4) {
            let (id, value): (u8, Vec<u8>) = match rng.below(4) {
                0 => (1, vec![rng.byte()]),                                              // audio level
                1 => (3, (rng.next() as u16).to_be_bytes().to_vec()),                    // transport-wide seq
                2 => (4, if rng.chance(1, 2) { b"h".to_vec() } else { b"lo".to_vec() }), // rid
                _ => {
                    let id = rng.below(15) as u8;
                    let n = 1 + rng.index(4);
                    (id, rng.bytes(n))
                }
            };
            if two_byte {
                body.extend_from_slice(&[id, value.len() as u8]);
            } else {
                body.push((id << 4) | (value.len() as u8 - 1));
            }
            body.extend_from_slice(&value);
        }
        while body.len() % 4 != 0 {
            body.push(0);
        }
        p.extend_from_slice(if two_byte { &[0x10, 0x00] } else { &[0xbe, 0xde] });
        p.extend_from_slice(&((body.len() / 4) as u16).to_be_bytes());
        p.extend_from_slice(&body);
    }
    match rng.below(4) {
        0 => p.extend_from_slice(vp8_payload(Frame::KeyStart)),
        1 => p.extend_from_slice(vp8_payload(Frame::DeltaStart)),
        2 => p.extend_from_slice(vp8_payload(Frame::Continuation)),
        _ => {
            let n = rng.index(1400);
            p.extend(rng.bytes(n));
        }
    }
    if padding {
        let n = 1 + rng.below(8) as u8;
        p.resize(p.len() + usize::from(n - 1), 0);
        p.push(n);
    }
    p
}

/// Well-formed RTCP, mostly about the outputs' SSRCs: feedback, reports, SDES, BYE.
fn fuzz_rtcp(rng: &mut Rng) -> Vec<u8> {
    let mut p = Vec::new();
    for _ in 0..1 + rng.below(3) {
        let media = if rng.chance(4, 5) { FUZZ_OUTPUT_SSRCS[rng.index(FUZZ_OUTPUT_SSRCS.len())] } else { rng.next() as u32 };
        let sender = rng.next() as u32;
        let block =
            rtcp::ReportBlock { ssrc: media, fraction_lost: rng.byte(), cumulative_lost: rng.next() as i32 >> 8, highest_seq: 0, jitter: 0, lsr: 0, dlsr: 0 };
        match rng.below(9) {
            0 | 1 => p.extend_from_slice(&rtcp::build_pli(sender, media)),
            2 => p.extend_from_slice(&rtcp::build_fir(sender, media, rng.byte())),
            3 => p.extend(rtcp::build_nack(sender, media, &[rng.next() as u16, rng.next() as u16])),
            4 => p.extend(rtcp::build_remb(sender, rng.below(10_000_000), &[media])),
            5 => p.extend(rtcp::build_receiver_report(sender, &[block])),
            6 => p.extend(rtcp::build_sender_report(sender, rng.next(), rng.next() as u32, 1, 2, &[block])),
            7 => p.extend(rtcp::build_sdes_cname(sender, b"fuzz")),
            _ => p.extend(rtcp::build_bye(&[media])),
        }
    }
    p
}

fn mutate(rng: &mut Rng, p: &mut Vec<u8>) {
    match rng.below(4) {
        0 => {
            for _ in 0..1 + rng.below(4) {
                if !p.is_empty() {
                    let i = rng.index(p.len());
                    p[i] ^= 1 << rng.below(8);
                }
            }
        }
        1 => {
            let n = rng.index(p.len() + 1);
            p.truncate(n);
        }
        2 => {
            let n = rng.index(MAX_DATAGRAM - p.len().min(MAX_DATAGRAM) + 1);
            p.extend(rng.bytes(n));
        }
        _ => {
            if !p.is_empty() {
                let i = rng.index(p.len());
                p[i] = rng.byte();
            }
        }
    }
}

/// One datagram for endpoint `ep` (None: an endpoint that does not exist).
fn fuzz_datagram(rng: &mut Rng, model: &mut Model, ep: Option<usize>) -> Vec<u8> {
    let mut p = match rng.below(14) {
        0 => {
            let n = rng.index(MAX_DATAGRAM + 1);
            return rng.bytes(n);
        }
        1..=6 => {
            let id = ep.map(|i| model.endpoints[i].id);
            fuzz_rtp(rng, model, id)
        }
        7..=9 => fuzz_rtcp(rng),
        10 => {
            let (user, pwd) = match ep.and_then(|i| model.endpoints[i].ice.clone()) {
                Some((ufrag, pwd)) if rng.chance(3, 4) => (format!("{ufrag}:r"), pwd),
                _ => ("nobody:r".to_string(), "not-the-password-at-all".to_string()),
            };
            let tid: [u8; 12] = std::array::from_fn(|_| rng.byte());
            ferry_stun::build_binding_request(tid, &user, &pwd, rng.next() as u32, rng.chance(1, 2), rng.next())
        }
        11 => {
            let n = rng.index(300);
            let mut p = vec![20 + rng.below(44) as u8];
            p.extend(rng.bytes(n));
            p
        }
        _ => {
            let n = rng.index(64);
            let mut p = vec![128 + rng.below(64) as u8];
            p.extend(rng.bytes(n));
            p
        }
    };
    // Media for an endpoint with keys is mostly protected, as its peer would send it.
    if let Some(ctx) = ep.and_then(|i| model.endpoints[i].srtp_tx.as_mut()) {
        if p.len() >= 12 && rng.chance(7, 8) {
            let len = p.len();
            p.resize(len + 64, 0);
            let r = if rtp::is_rtcp(&p[..len]) { ctx.protect_rtcp(&mut p, len) } else { ctx.protect_rtp(&mut p, len) };
            p.truncate(r.unwrap_or(len));
        }
    }
    if rng.chance(1, 4) {
        mutate(rng, &mut p);
    }
    p.truncate(MAX_DATAGRAM);
    p
}

/// A reference to a live source (mostly), a removed one, or none.
fn fuzz_source_ref(rng: &mut Rng, m: &Mesh, model: &Model) -> Option<SourceRef> {
    match rng.below(10) {
        0..=6 if !model.sources.is_empty() => {
            let (id, home, _, _) = model.sources[rng.index(model.sources.len())];
            Some(m.sref(home, id))
        }
        7 | 8 if !model.dead_sources.is_empty() => Some(model.dead_sources[rng.index(model.dead_sources.len())]),
        _ => None,
    }
}

/// The routers hold what the model says; subscriptions and remote feeds pair up.
fn check_model(m: &Mesh, model: &Model) {
    for (r, router) in m.routers.iter().enumerate() {
        assert_eq!(router.endpoint_count(), model.endpoints.iter().filter(|e| e.router == r).count(), "router {r} endpoints");
        assert_eq!(router.source_count(), model.sources.iter().filter(|s| s.1 == r).count(), "router {r} sources");
        assert_eq!(router.output_count(), model.outputs.iter().filter(|o| o.1 == r).count(), "router {r} outputs");
    }
    let subscriptions: usize = m.routers.iter().map(Router::subscription_count).sum();
    let feeds: usize = m.routers.iter().map(Router::remote_feed_count).sum();
    assert_eq!(subscriptions, feeds, "every remote feed is one subscription at its source's home, once the mesh is quiet");
}

fn fuzz_control(rng: &mut Rng, m: &mut Mesh, model: &mut Model) {
    let now = m.now_us;
    let pick_ep = |rng: &mut Rng, model: &Model| (!model.endpoints.is_empty()).then(|| rng.index(model.endpoints.len()));
    match rng.below(24) {
        // Endpoints come and go around a population of ~8, so sources and outputs meet their
        // packets.
        0 | 1 if rng.index(16) >= model.endpoints.len() => {
            // A new endpoint, or one removed earlier coming back under its id.
            let id = if rng.chance(1, 4) && model.next_id > 1 { 1 + rng.below(u64::from(model.next_id - 1)) as u32 } else { model.next_id };
            if id == model.next_id {
                model.next_id += 1;
            }
            let r = rng.index(m.routers.len());
            let mut cfg = EndpointConfig::new(addr(10, 0, 0, r as u8 + 1, 20000 + id as u16));
            let ice = rng.chance(1, 4).then(|| (format!("u{id}"), format!("pwd-{id}-0123456789abcdef")));
            cfg.ice = ice.as_ref().map(|(ufrag, pwd)| IceCredentials { ufrag: ufrag.clone(), pwd: pwd.clone(), remote_ufrag: Some("r".into()) });
            cfg.remote = rng.chance(3, 4).then(|| fuzz_from(rng));
            cfg.latch = rng.chance(1, 2);
            cfg.twcc_extension_id = rng.chance(1, 2).then_some(3);
            cfg.rid_extension_id = rng.chance(1, 2).then_some(4);
            cfg.consent_timeout_ms = rng.chance(1, 4).then(|| rng.below(5000));
            let exists = model.endpoints.iter().any(|e| e.id == id);
            let added = m.routers[r].add_endpoint(id, transport_of(id), cfg.bind, &cfg);
            if exists && model.endpoints.iter().any(|e| e.id == id && e.router == r) {
                assert!(added.is_err(), "endpoint {id} added twice on router {r}");
                return;
            }
            if exists {
                // The engine never does this; undo to keep ids unique.
                m.routers[r].remove_endpoint(id, &mut m.ios[r]).unwrap();
                return;
            }
            added.unwrap();
            let mut srtp_tx = None;
            if rng.chance(1, 3) {
                let tag = id as u8;
                m.routers[r].set_srtp(id, &keys(tag, tag ^ 0xff)).unwrap();
                srtp_tx = Some(context(tag ^ 0xff));
            }
            model.endpoints.push(FuzzEndpoint { id, router: r, ice, srtp_tx });
            model.unknown_reports.insert(id, (0, 32));
        }
        0 | 1 => {
            let Some(i) = pick_ep(rng, model) else { return };
            let (id, r) = (model.endpoints[i].id, model.endpoints[i].router);
            let closed = m.routers[r].remove_endpoint(id, &mut m.ios[r]).unwrap();
            model.endpoints.swap_remove(i);
            let mut sources: Vec<u32> = model.sources.iter().filter(|s| s.2 == id).map(|s| s.0).collect();
            let mut outputs: Vec<u32> = model.outputs.iter().filter(|o| o.2 == id).map(|o| o.0).collect();
            let (mut got_s, mut got_o) = (closed.sources, closed.outputs);
            for v in [&mut sources, &mut outputs, &mut got_s, &mut got_o] {
                v.sort_unstable();
            }
            assert_eq!((got_s, got_o), (sources, outputs), "routes closed with endpoint {id}");
            for s in model.sources.iter().filter(|s| s.2 == id) {
                model.dead_sources.push(SourceRef { id: s.0, home: r, codec: Some(VideoCodec::Vp8), clock_rate: 90000, kind: MediaKind::Video });
            }
            model.sources.retain(|s| s.2 != id);
            model.outputs.retain(|o| o.2 != id);
            assert!(m.routers[r].remove_endpoint(id, &mut m.ios[r]).is_err());
        }
        2..=5 => {
            let Some(i) = pick_ep(rng, model) else { return };
            if model.sources.len() >= 16 {
                return;
            }
            let (ep, r) = (model.endpoints[i].id, model.endpoints[i].router);
            let id = model.next_id;
            model.next_id += 1;
            let codec = [Some(VideoCodec::Vp8), Some(VideoCodec::H264), Some(VideoCodec::Vp9), None][rng.index(4)];
            let kind = if codec.is_some() { MediaKind::Video } else { MediaKind::Audio };
            let clock_rate = [90000, 48000, 8000, 90000, 90000, 0][rng.index(6)];
            let ssrc = FUZZ_SSRCS[rng.index(FUZZ_SSRCS.len())];
            let config = SourceConfig { ssrc, ssrc_offset: 0, kind, clock_rate, codec };
            if m.routers[r].add_source(id, ep, config).is_ok() {
                model.sources.push((id, r, ep, ssrc));
                model.unknown_reports.get_mut(&ep).expect("endpoint").1 += 1;
                if rng.chance(1, 3) {
                    m.routers[r].set_audio_level_meter(id, Some((1, 1 + rng.below(10) as u32))).unwrap();
                }
                if rng.chance(1, 3) {
                    // Watch for RFC 4733 events on one of the payload types fuzzed packets carry.
                    m.routers[r].set_telephone_events(id, Some(rng.below(128) as u8)).unwrap();
                }
            }
        }
        6 => {
            if model.sources.is_empty() {
                return;
            }
            let (id, r, _, _) = model.sources.swap_remove(rng.index(model.sources.len()));
            model.dead_sources.push(m.sref(r, id));
            m.remove_source(r, id);
            assert!(m.routers[r].remove_source(id, &mut m.ios[r]).is_err());
        }
        7..=12 => {
            let Some(i) = pick_ep(rng, model) else { return };
            if model.outputs.len() >= 40 {
                return;
            }
            let (ep, r) = (model.endpoints[i].id, model.endpoints[i].router);
            let id = model.next_id;
            model.next_id += 1;
            let source = fuzz_source_ref(rng, m, model);
            let config = OutputConfig {
                source: source.map(|s| s.id),
                ssrc: FUZZ_OUTPUT_SSRCS[rng.index(FUZZ_OUTPUT_SSRCS.len())],
                payload_type: rng.chance(1, 3).then_some(100),
                rtx: rng.chance(1, 2).then_some(ferry_engine::RtxConfig { ssrc: 0x7e57_0000 + id, payload_type: 97 }),
            };
            if m.routers[r].add_output(id, ep, &config, source, now, &mut m.ios[r]).is_ok() {
                model.outputs.push((id, r, ep));
                if rng.chance(1, 3) {
                    // Renumber one payload type and drop another, as a SIP bridge does.
                    let map = vec![(rng.below(128) as u8, Some(rng.below(128) as u8)), (rng.below(128) as u8, None)];
                    m.routers[r].set_output_payload_map(id, map).unwrap();
                }
            }
        }
        13..=15 => {
            if model.outputs.is_empty() {
                return;
            }
            let (id, r, _) = model.outputs[rng.index(model.outputs.len())];
            let source = fuzz_source_ref(rng, m, model);
            let on_keyframe = rng.chance(1, 2);
            let home_here_but_gone = source.is_some_and(|s| s.home == r && !m.routers[r].has_source(s.id));
            let result = m.routers[r].switch_output(id, source, on_keyframe, now, &mut m.ios[r]);
            assert_eq!(result.is_err(), home_here_but_gone, "{result:?}");
        }
        16 => {
            if model.outputs.is_empty() {
                return;
            }
            let (id, r, _) = model.outputs[rng.index(model.outputs.len())];
            m.routers[r].pause_output(id, rng.chance(1, 2)).unwrap();
        }
        17 => {
            if model.outputs.is_empty() {
                return;
            }
            let (id, r, _) = model.outputs.swap_remove(rng.index(model.outputs.len()));
            m.remove_output(r, id);
            assert!(m.routers[r].remove_output(id, &mut m.ios[r]).is_err());
        }
        18 => {
            let r = rng.index(m.routers.len());
            let source = rng.below(u64::from(model.next_id) + 2) as u32;
            m.routers[r].request_keyframe(source, rng.chance(1, 2), now, &mut m.ios[r]);
        }
        19 | 20 => {
            let Some(i) = pick_ep(rng, model) else { return };
            let (ep, r) = (model.endpoints[i].id, model.endpoints[i].router);
            match rng.below(4) {
                0 => m.routers[r].set_remote(ep, rng.chance(1, 2).then(|| fuzz_from(rng))).unwrap(),
                1 => {
                    let restarted = m.routers[r].restart_ice(ep, &format!("u{ep}"), &format!("pwd-{ep}-0123456789abcdef"), Some("r"));
                    assert_eq!(restarted.is_ok(), model.endpoints[i].ice.is_some());
                }
                2 => {
                    let _ = m.routers[r].set_ice_remote_ufrag(ep, rng.chance(1, 2).then_some("r"));
                }
                _ => m.routers[r].after_batch(ep, now, &mut m.ios[r]),
            }
        }
        _ => {
            let r = rng.index(m.routers.len());
            m.routers[r].on_timer(now, &mut m.ios[r]);
        }
    }
}

fn fuzz_run(seed: u64, routers: usize, datagrams: usize) {
    let mut m = Mesh::new(routers);
    m.logging = false;
    let mut rule_rng = Rng::new(seed ^ 0xdead);
    // A full queue now and then.
    m.drop_forward = Some(Box::new(move |_, _, _| rule_rng.chance(1, 50)));
    let mut rng = Rng::new(seed);
    let mut model = Model {
        endpoints: Vec::new(),
        sources: Vec::new(),
        outputs: Vec::new(),
        dead_sources: Vec::new(),
        next_id: 1,
        seqs: [0; 8],
        unknown_reports: Default::default(),
    };
    for _ in 0..30 {
        fuzz_control(&mut rng, &mut m, &mut model);
        (0..routers).for_each(|r| drop(m.take_transmits(r)));
    }
    let mut transmits = 0usize;
    for step in 0..datagrams {
        m.now_us += if rng.chance(1, 1000) { rng.below(40_000_000) } else { rng.below(3000) };
        if rng.chance(1, 20) {
            fuzz_control(&mut rng, &mut m, &mut model);
        }
        // Mostly an endpoint with sources (a publisher), sometimes any, sometimes none.
        let publishers: Vec<usize> = (0..model.endpoints.len()).filter(|&i| model.sources.iter().any(|s| s.2 == model.endpoints[i].id)).collect();
        let target = match rng.below(20) {
            0 => None,
            1..=12 if !publishers.is_empty() => Some(publishers[rng.index(publishers.len())]),
            _ if !model.endpoints.is_empty() => Some(rng.index(model.endpoints.len())),
            _ => None,
        };
        let (r, ep) = match target {
            Some(i) => (model.endpoints[i].router, model.endpoints[i].id),
            None => (rng.index(routers), model.next_id + rng.below(3) as u32),
        };
        let bytes = fuzz_datagram(&mut rng, &mut model, target);
        let from = fuzz_from(&mut rng);
        // Sometimes in a buffer just as long as the datagram, as a short read would leave it.
        if rng.chance(1, 4) {
            let mut buf = bytes.clone();
            let len = buf.len();
            m.routers[r].on_datagram(ep, &mut buf, len, from, m.now_us, &mut m.ios[r]);
        } else {
            m.datagram(r, ep, &bytes, from);
        }
        let n = rng.index(4);
        m.step_random(&mut rng, n);
        // Checked before the next control operation may remove the endpoint.
        for r in 0..routers {
            for t in m.take_transmits(r) {
                assert_eq!(t.transport, transport_of(t.endpoint));
                assert!(m.routers[r].has_endpoint(t.endpoint), "transmit for endpoint {} that router {r} does not have", t.endpoint);
                // Media, not RTCP or STUN (SRTP-protected RTP still reads as an RTP header).
                if t.bytes.len() >= 12 && t.bytes[0] >> 6 == 2 && !rtp::is_rtcp(&t.bytes) {
                    transmits += 1;
                }
            }
        }
        // At most 32 unknown SSRCs reported per endpoint, plus one more for each SSRC a
        // source claimed meanwhile (that SSRC may be reported again once the source is gone).
        for r in 0..routers {
            for e in m.routers[r].take_events() {
                if let Event::UnknownSsrc { endpoint, .. } = e {
                    let (reported, allowed) = model.unknown_reports.get_mut(&endpoint).expect("reported by a live endpoint");
                    *reported += 1;
                    assert!(*reported <= *allowed, "endpoint {endpoint}: {reported} unknown SSRCs reported");
                }
            }
        }
        if step % 2000 == 0 {
            m.settle();
            check_model(&m, &model);
        }
    }
    let sent: u64 = m.routers.iter().flat_map(|r| r.output_stats()).map(|(_, s)| s.packets).sum();
    let received: u64 = m.routers.iter().flat_map(|r| r.source_stats()).map(|(_, s)| s.packets).sum();
    let crossed: u64 = m.routers.iter().map(|r| r.cross_stats().received).sum();
    eprintln!("seed {seed:#x}: {transmits} media transmits; live sources received {received}, live outputs sent {sent}; {crossed} packets crossed routers");
    assert!(transmits > datagrams / 20, "only {transmits} media transmits");
    m.settle();
    check_model(&m, &model);

    // Everything goes, in an order that mixes the three ways routes end.
    while !model.outputs.is_empty() || !model.sources.is_empty() || !model.endpoints.is_empty() {
        match rng.below(3) {
            0 if !model.outputs.is_empty() => {
                let (id, r, _) = model.outputs.swap_remove(rng.index(model.outputs.len()));
                m.remove_output(r, id);
            }
            1 if !model.sources.is_empty() => {
                let (id, r, _, _) = model.sources.swap_remove(rng.index(model.sources.len()));
                m.remove_source(r, id);
            }
            _ => {
                if model.endpoints.is_empty() {
                    continue;
                }
                let e = model.endpoints.swap_remove(rng.index(model.endpoints.len()));
                m.routers[e.router].remove_endpoint(e.id, &mut m.ios[e.router]).unwrap();
                model.sources.retain(|s| s.2 != e.id);
                model.outputs.retain(|o| o.2 != e.id);
            }
        }
        m.step_random(&mut rng, 2);
    }
    m.settle();
    for r in &m.routers {
        let counts = (r.endpoint_count(), r.source_count(), r.output_count(), r.remote_feed_count(), r.subscription_count());
        assert_eq!(counts, (0, 0, 0, 0, 0), "router {} after removing everything", r.worker());
    }
}

#[test]
fn random_datagrams_and_control_never_panic_and_leave_nothing_behind() {
    fuzz_run(0x5eed_0001, 3, 40_000);
    fuzz_run(0x5eed_0002, 2, 30_000);
    fuzz_run(0x5eed_0003, 3, 30_000);
}

// ---- retransmission (RFC 4585 generic NACK, RFC 4588 RTX) -----------------------------------

#[test]
fn nacks_are_answered_from_the_sources_history_plain_or_as_rtx_on_any_router() {
    let mut m = Mesh::new(2);
    m.endpoint(0, 1, Some(PUB));
    m.endpoint(0, 2, Some(SUB1));
    m.endpoint(1, 3, Some(SUB2));
    m.routers[0].add_source(10, 1, video(0xa1)).unwrap();
    let a = m.sref(0, 10);
    // Output 20 on the source's router, plain retransmission; output 21 on router 1, with RTX.
    m.add_output(0, 20, 2, 0x20, None, Some(a));
    let rtx = ferry_engine::RtxConfig { ssrc: 0x2100, payload_type: 97 };
    let cfg = OutputConfig { source: Some(10), ssrc: 0x21, payload_type: Some(96), rtx: Some(rtx) };
    m.routers[1].add_output(21, 3, &cfg, Some(a), m.now_us, &mut m.ios[1]).unwrap();
    m.settle();
    m.take_transmits(0);
    m.take_transmits(1);
    for i in 0..20u16 {
        m.datagram(0, 1, &rtp_packet(0xa1, 500 + i, 1000 + u32::from(i) * 3000, 96, &[i as u8; 30]), PUB);
    }
    m.settle();
    let sent0 = m.take_transmits(0);
    let sent1 = m.take_transmits(1);
    assert_eq!(seqs_of(&sent0, 0x20).len(), 20);
    assert_eq!(seqs_of(&sent1, 0x21).len(), 20);

    // Plain: the packets come again exactly as they went out.
    m.datagram(0, 2, &rtcp::build_nack(0x77, 0x20, &[503, 507, 508]), SUB1);
    let again = m.take_transmits(0);
    assert_eq!(again.len(), 3);
    for (tx, seq) in again.iter().zip([503u16, 507, 508]) {
        assert_eq!(tx.to, SUB1);
        let first = sent0.iter().find(|t| parse(&t.bytes).1 == seq).unwrap();
        assert_eq!(tx.bytes, first.bytes, "retransmission of {seq} is the packet as first sent");
    }
    let s = m.output_stats(0, 20);
    assert_eq!((s.packets, s.nacked, s.retransmitted, s.rtx_missed), (20, 3, 3, 0));

    // RTX on the other router: own SSRC, PT and numbering; OSN then the original payload.
    m.datagram(1, 3, &rtcp::build_nack(0x77, 0x21, &[510, 511]), SUB2);
    let rtx_sent = m.take_transmits(1);
    assert_eq!(rtx_sent.len(), 2);
    let mut rtx_seqs = Vec::new();
    for (tx, seq) in rtx_sent.iter().zip([510u16, 511]) {
        let (ssrc, rseq, ts, pt, payload) = parse(&tx.bytes);
        assert_eq!((ssrc, pt), (0x2100, 97));
        let (_, _, orig_ts, _, orig_payload) = parse(&sent1.iter().find(|t| parse(&t.bytes).1 == seq).unwrap().bytes);
        assert_eq!(ts, orig_ts);
        assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), seq, "OSN");
        assert_eq!(&payload[2..], &orig_payload[..]);
        rtx_seqs.push(rseq);
    }
    assert_eq!(rtx_seqs[1], rtx_seqs[0].wrapping_add(1), "RTX has its own consecutive numbering");
    let s = m.output_stats(1, 21);
    assert_eq!((s.nacked, s.retransmitted, s.rtx_missed), (2, 2, 0));

    // Misses: never sent (ahead), and older than the history.
    m.datagram(0, 2, &rtcp::build_nack(0x77, 0x20, &[600]), SUB1);
    for i in 20..600u16 {
        m.datagram(0, 1, &rtp_packet(0xa1, 500 + i, 1000 + u32::from(i) * 3000, 96, &[1; 30]), PUB);
    }
    m.settle();
    m.take_transmits(0);
    m.take_transmits(1);
    m.datagram(0, 2, &rtcp::build_nack(0x77, 0x20, &[501]), SUB1);
    assert!(m.take_transmits(0).is_empty(), "501 has left the history");
    let s = m.output_stats(0, 20);
    assert_eq!((s.nacked, s.retransmitted, s.rtx_missed), (5, 3, 2));
}

#[test]
fn retransmissions_are_rate_limited_per_output() {
    let mut m = Mesh::new(1);
    m.endpoint(0, 1, Some(PUB));
    m.endpoint(0, 2, Some(SUB1));
    m.routers[0].add_source(10, 1, video(0xa1)).unwrap();
    let a = m.sref(0, 10);
    m.add_output(0, 20, 2, 0x20, None, Some(a));
    for i in 0..300u16 {
        m.datagram(0, 1, &rtp_packet(0xa1, i + 1, u32::from(i) * 3000, 96, &[0; 30]), PUB);
    }
    m.take_transmits(0);
    // A receiver NACKing everything at once gets the burst, no more.
    let all: Vec<u16> = (1..=300).collect();
    for chunk in all.chunks(100) {
        m.datagram(0, 2, &rtcp::build_nack(0x77, 0x20, chunk), SUB1);
    }
    let burst = m.take_transmits(0).len();
    assert_eq!(burst, 64);
    // 100 ms later the bucket has refilled by 50.
    m.now_us += 100_000;
    m.datagram(0, 2, &rtcp::build_nack(0x77, 0x20, &all[..100]), SUB1);
    assert_eq!(m.take_transmits(0).len(), 50);
    let s = m.output_stats(0, 20);
    assert_eq!(s.nacked, 400);
    assert_eq!(s.retransmitted, 114);
    assert_eq!(s.rtx_missed, 286);
}

#[test]
fn gaps_in_a_publishers_video_are_nacked_and_a_late_repair_keeps_the_output_continuous() {
    let mut m = Mesh::new(1);
    m.endpoint(0, 1, Some(PUB));
    m.endpoint(0, 2, Some(SUB1));
    m.routers[0].add_source(10, 1, video(0xa1)).unwrap();
    let a = m.sref(0, 10);
    m.add_output(0, 20, 2, 0x20, None, Some(a));
    m.take_transmits(0);
    for seq in [100u16, 101, 104, 105] {
        m.datagram(0, 1, &rtp_packet(0xa1, seq, u32::from(seq) * 3000, 96, &[seq as u8; 10]), PUB);
    }
    m.routers[0].after_batch(1, m.now_us, &mut m.ios[0]);
    let t = m.take_transmits(0);
    let nacks: Vec<&Transmit> = t.iter().filter(|t| t.to == PUB).collect();
    assert_eq!(nacks.len(), 1, "one NACK to the publisher");
    let fb = rtcp::parse_feedback(&nacks[0].bytes).unwrap();
    assert!(fb.iter().any(|f| matches!(f, rtcp::Feedback::Nack { media_ssrc: 0xa1, lost, .. } if lost == &vec![102, 103])), "{fb:?}");
    assert_eq!(m.endpoint_stats(0, 1).nacks_sent, 1);
    // The publisher repairs one: the output gets it in its own slot, numbering intact.
    m.datagram(0, 1, &rtp_packet(0xa1, 102, 102 * 3000, 96, &[102; 10]), PUB);
    let t = m.take_transmits(0);
    assert_eq!(t.len(), 1);
    assert_eq!(parse(&t[0].bytes).1, 102, "the late packet keeps its place in the output's numbering");
    // Not asked again within a round trip; 103 is asked again after one.
    m.routers[0].after_batch(1, m.now_us, &mut m.ios[0]);
    assert!(m.take_transmits(0).is_empty());
    m.now_us += 150_000;
    m.routers[0].on_timer(m.now_us, &mut m.ios[0]);
    let t = m.take_transmits(0);
    let fb = rtcp::parse_feedback(&t.iter().find(|t| t.to == PUB).expect("retry").bytes).unwrap();
    assert!(fb.iter().any(|f| matches!(f, rtcp::Feedback::Nack { lost, .. } if lost == &vec![103])));
    let s = m.routers[0].source_stats().into_iter().find(|(id, _)| *id == 10).unwrap().1;
    assert_eq!((s.nacked, s.retransmitted), (3, 1), "102, 103, 103 again asked; 102 recovered");
}

#[test]
fn a_publishers_rtx_is_unwrapped_to_its_source_and_fills_its_slot() {
    let mut m = Mesh::new(1);
    m.endpoint(0, 1, Some(PUB));
    m.endpoint(0, 2, Some(SUB1));
    m.routers[0].add_source(10, 1, video(0xa1)).unwrap();
    m.routers[0].set_source_rtx(10, Some(ferry_engine::RtxConfig { ssrc: 0xa1a1, payload_type: 97 })).unwrap();
    assert!(m.routers[0].set_source_rtx(10, Some(ferry_engine::RtxConfig { ssrc: 0xa1, payload_type: 97 })).is_err(), "the media SSRC is not an RTX SSRC");
    let a = m.sref(0, 10);
    m.add_output(0, 20, 2, 0x20, None, Some(a));
    m.take_transmits(0);
    for seq in [300u16, 302] {
        m.datagram(0, 1, &rtp_packet(0xa1, seq, u32::from(seq) * 10, 96, &[seq as u8; 12]), PUB);
    }
    // 301 comes back as RTX: own SSRC, PT 97, its own numbering; OSN then the payload, padded.
    let mut rtx = rtp_packet(0xa1a1, 7, 3010, 97, &[0x01, 0x2d]);
    rtx.extend_from_slice(&[45u8; 12]);
    rtx.extend_from_slice(&[0, 0, 3]); // 3 bytes of padding (RFC 3550 §5.1)
    rtx[0] |= 0x20;
    m.datagram(0, 1, &rtx, PUB);
    let t = m.take_transmits(0);
    let media: Vec<_> = t.iter().filter(|t| t.to == SUB1).map(|t| parse(&t.bytes)).collect();
    assert_eq!(media.len(), 3);
    let repaired = media.last().unwrap();
    assert_eq!((repaired.0, repaired.1, repaired.2, repaired.3), (0x20, 301, 3010, 96), "the original packet again, in its own slot");
    assert_eq!(repaired.4, vec![45u8; 12], "payload without OSN and padding");
    assert_eq!(m.endpoint_stats(0, 1).rtx_in, 1);
    // An RTX packet too short to carry an OSN is dropped and counted.
    m.datagram(0, 1, &rtp_packet(0xa1a1, 8, 0, 97, &[1]), PUB);
    assert!(m.take_transmits(0).iter().all(|t| t.to != SUB1));
    assert_eq!(m.endpoint_stats(0, 1).rtp_malformed, 1);
    m.routers[0].remove_source(10, &mut m.ios[0]).unwrap();
    m.datagram(0, 1, &rtx, PUB);
    assert_eq!(m.endpoint_stats(0, 1).unknown_ssrc, 1, "gone with its source");
}

// ---- VP8: PictureID / TL0PICIDX continuity, temporal layers ---------------------------------

/// A VP8 packet with the descriptor Chrome sends with temporal layers (RFC 7741 §4.2):
/// X, I (15-bit PictureID), L (TL0PICIDX), T (TID, Y).
fn vp8_layered(ssrc: u32, seq: u16, pid: u16, tl0: u8, tid: u8, sync: bool) -> Vec<u8> {
    let start = 0x10; // S=1, PID=0: every packet here starts a frame
    let payload = [0x80 | start, 0xe0, 0x80 | (pid >> 8) as u8, pid as u8, tl0, tid << 6 | if sync { 0x20 } else { 0 }, 0x01, 0x42];
    rtp_packet(ssrc, seq, u32::from(seq) * 3000, 96, &payload)
}

fn vp8_fields(bytes: &[u8]) -> (u16, u16, u8, u8) {
    let (_, seq, _, _, payload) = parse(bytes);
    let d = ferry_rtp::vp8::parse(&payload).unwrap();
    (seq, d.picture_id.unwrap().0, d.tl0picidx.unwrap().0, d.temporal.unwrap().0)
}

#[test]
fn vp8_picture_ids_continue_across_a_switch_and_dropped_temporal_layers_leave_no_gap() {
    let mut m = Mesh::new(2);
    m.endpoint(0, 1, Some(PUB));
    m.endpoint(1, 3, Some(PUB2));
    m.endpoint(1, 2, Some(SUB1));
    m.routers[0].add_source(10, 1, video(0xa1)).unwrap();
    m.routers[1].add_source(11, 3, video(0xb1)).unwrap();
    let (a, b) = (m.sref(0, 10), m.sref(1, 11));
    m.add_output(1, 20, 2, 0x20, None, Some(a));
    m.settle();
    m.take_transmits(1);
    // L1T2-ish pattern: TID 0,1,0,1 …, frames numbered by PictureID, TL0PICIDX per base frame.
    for i in 0..8u16 {
        m.datagram(0, 1, &vp8_layered(0xa1, 100 + i, 1000 + i, (10 + i / 2) as u8, (i % 2) as u8, i % 2 == 1), PUB);
    }
    m.settle();
    let t = m.take_transmits(1);
    let before: Vec<_> = t.iter().filter(|t| t.to == SUB1).map(|t| vp8_fields(&t.bytes)).collect();
    assert_eq!(before.len(), 8);
    // Temporal layer 0 only: TID 1 packets are skipped, sequence numbers stay contiguous.
    m.routers[1].set_output_temporal(20, Some(0)).unwrap();
    for i in 8..16u16 {
        m.datagram(0, 1, &vp8_layered(0xa1, 100 + i, 1000 + i, (10 + i / 2) as u8, (i % 2) as u8, i % 2 == 1), PUB);
    }
    m.settle();
    let t = m.take_transmits(1);
    let base: Vec<_> = t.iter().filter(|t| t.to == SUB1).map(|t| vp8_fields(&t.bytes)).collect();
    assert_eq!(base.len(), 4, "only TID 0");
    assert!(base.iter().all(|f| f.3 == 0));
    let seqs: Vec<u16> = before.iter().chain(base.iter()).map(|f| f.0).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0].wrapping_add(1)), "no gap where layers were dropped: {seqs:?}");
    assert_eq!(m.output_stats(1, 20).filtered, 4);
    // Switch to B (other numbering entirely): PictureID and TL0PICIDX go on from A's last.
    m.switch(1, 20, Some(b), false);
    m.take_transmits(1);
    for i in 0..4u16 {
        m.datagram(1, 3, &vp8_layered(0xb1, 7000 + i, 20_000 + i, 200 + i as u8, 0, false), PUB2);
    }
    m.settle();
    let t = m.take_transmits(1);
    let after: Vec<_> = t.iter().filter(|t| t.to == SUB1).map(|t| vp8_fields(&t.bytes)).collect();
    let last = base.last().unwrap();
    assert_eq!(after[0].1, last.1.wrapping_add(1) & 0x7fff, "PictureID follows A's last");
    assert_eq!(after[0].2, last.2.wrapping_add(1), "TL0PICIDX follows A's last");
    assert_eq!(after[0].0, last.0.wrapping_add(1), "and so does the sequence number");
    assert!(after.windows(2).all(|w| w[1].1 == w[0].1 + 1 && w[1].2 == w[0].2 + 1));
    // Raising the layer waits for a layer-sync frame; the event says when it happened.
    m.routers[1].take_events();
    m.routers[1].set_output_temporal(20, None).unwrap();
    m.datagram(1, 3, &vp8_layered(0xb1, 7004, 20_004, 204, 1, false), PUB2); // no sync: still filtered
    m.datagram(1, 3, &vp8_layered(0xb1, 7005, 20_005, 204, 1, true), PUB2); // sync: up
    let sent: Vec<_> = m.take_transmits(1).iter().filter(|t| t.to == SUB1).map(|t| vp8_fields(&t.bytes)).collect();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].3, 1);
    let ev = m.routers[1].take_events();
    assert!(ev.iter().any(|e| matches!(e, Event::OutputTemporal { output: 20, layer: 255, .. })), "{ev:?}");
}
