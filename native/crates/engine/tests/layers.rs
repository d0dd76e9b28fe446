//! Layers through the sans-IO router.
//!
//! - Send-side bandwidth estimation: a simulcast publisher, a subscriber behind a link whose
//!   capacity the test sets, and a receiver that answers with transport-cc feedback as a
//!   browser does. The subscriber's output must settle on the best layer the link carries, go
//!   down when the capacity drops and come back when it returns.
//! - VP9 SVC: an output forwards the spatial and temporal layers asked for, with continuous
//!   numbering and the marker bit on the last packet sent of each picture.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use ferry_engine::{BweConfig, EndpointConfig, Event, LayerSet, MediaKind, OutputConfig, Router, RouterIo, RtxConfig, SourceConfig, SourceRef, VideoCodec, MAX_DATAGRAM};
use ferry_rtp::{rtp, TwccRecorder};

struct Io {
    slot: Box<[u8; MAX_DATAGRAM]>,
    sent: Vec<(u32, Vec<u8>)>,
}

impl RouterIo for Io {
    fn transmit_slot(&mut self) -> Option<&mut [u8; MAX_DATAGRAM]> {
        Some(&mut self.slot)
    }
    fn commit_transmit(&mut self, len: usize, _transport: i32, endpoint: u32, _to: &SocketAddr) {
        self.sent.push((endpoint, self.slot[..len].to_vec()));
    }
    fn commit_transmit_tag_later(&mut self, len: usize, transport: i32, endpoint: u32, to: &SocketAddr, mac: ferry_srtp::hmac_batch::DeferredMac) {
        assert!(mac.finish(&mut self.slot[..]));
        self.commit_transmit(len, transport, endpoint, to);
    }
    fn forward(&mut self, _to: &[ferry_engine::Handoff], _source: u32, _packet: &[u8]) {
        panic!("one router: nothing is handed over");
    }
    fn message(&mut self, _worker: usize, _message: ferry_engine::PeerMessage) {}
    fn record(&mut self, _recording: u32, _packet: &[u8], _now_us: u64) {
        panic!("nothing is recorded here");
    }
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
}

const PUBLISHER: u32 = 1;
const SUBSCRIBER: u32 = 2;
const OUTPUT: u32 = 20;
const OUTPUT_SSRC: u32 = 5000;
const RTX_SSRC: u32 = 5001;
const TWCC_ID: u8 = 3;
/// Simulcast layers: source id, SSRC, bits/s.
const LAYERS: [(u32, u32, u64); 3] = [(11, 1001, 150_000), (12, 1002, 500_000), (13, 1003, 1_500_000)];
const PAYLOAD: usize = 1000;

fn layer_ref(id: u32) -> SourceRef {
    SourceRef { id, home: 0, codec: Some(VideoCodec::Vp8), clock_rate: 90_000, kind: MediaKind::Video }
}

/// One VP8 packet per frame; a keyframe (RFC 7741: S=1, P=0, start code) every second.
fn vp8(ssrc: u32, seq: u16, key: bool) -> Vec<u8> {
    let mut p = vec![0x80, 96];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 3000).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    if key {
        p.extend_from_slice(&[0x10, 0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a]);
    } else {
        p.extend_from_slice(&[0x10, 0x11, 0x02, 0x00]);
    }
    p.resize(12 + PAYLOAD, 0x55);
    p
}

/// A router with a publisher endpoint carrying `sources` (id, SSRC, codec) and a subscriber
/// endpoint, both plain RTP on loopback.
fn two_endpoints(sources: &[(u32, u32, VideoCodec)]) -> (Router, Io) {
    let mut router = Router::new(0);
    let io = Io { slot: Box::new([0; MAX_DATAGRAM]), sent: Vec::new() };
    for (id, port) in [(PUBLISHER, 1), (SUBSCRIBER, 2)] {
        let mut config = EndpointConfig::new(addr(port));
        config.remote = Some(addr(1000 + port));
        router.add_endpoint(id, i32::from(port), addr(port), &config).unwrap();
    }
    for &(id, ssrc, codec) in sources {
        router.add_source(id, PUBLISHER, SourceConfig { ssrc, ssrc_offset: 0, kind: MediaKind::Video, clock_rate: 90_000, codec: Some(codec) }).unwrap();
    }
    (router, io)
}

/// The simulcast layers as sources.
fn simulcast() -> Vec<(u32, u32, VideoCodec)> {
    LAYERS.iter().map(|&(id, ssrc, _)| (id, ssrc, VideoCodec::Vp8)).collect()
}

struct Link {
    free_us: u64,
    /// (arrival, transport-wide sequence number) of packets on their way.
    in_flight: VecDeque<(u64, u16)>,
}

struct Run {
    router: Router,
    io: Io,
    now_us: u64,
    link: Link,
    receiver: TwccRecorder,
    next_seq: [u16; 3],
    /// Layer switches completed at a keyframe, by the switch events.
    switches: Vec<usize>,
    events: Vec<Event>,
    media_packets: u64,
    rtx_packets: u64,
}

impl Run {
    fn new() -> Self {
        let (mut router, mut io) = two_endpoints(&simulcast());
        let output = OutputConfig { source: None, ssrc: OUTPUT_SSRC, payload_type: None, rtx: Some(RtxConfig { ssrc: RTX_SSRC, payload_type: 97 }) };
        router.add_output(OUTPUT, SUBSCRIBER, &output, None, 0, &mut io).unwrap();
        let set = LayerSet { layers: LAYERS.iter().map(|l| layer_ref(l.0)).collect(), preferred: 2, temporal_max: None };
        router.set_output_layers(OUTPUT, Some(set), 0, &mut io).unwrap();
        let bwe = BweConfig { extension_id: TWCC_ID, initial_bps: 300_000, min_bps: 50_000, max_bps: 10_000_000 };
        router.set_send_bwe(SUBSCRIBER, Some(bwe), 0, &mut io).unwrap();
        Self {
            router,
            io,
            now_us: 0,
            link: Link { free_us: 0, in_flight: VecDeque::new() },
            receiver: TwccRecorder::new(),
            next_seq: [0; 3],
            switches: Vec::new(),
            events: Vec::new(),
            media_packets: 0,
            rtx_packets: 0,
        }
    }

    /// Runs until `until_us` with the subscriber's link at `capacity_bps` (a 300 ms queue,
    /// 20 ms one way); the receiver reports every 50 ms.
    fn run(&mut self, until_us: u64, capacity_bps: u64) {
        const STEP_US: u64 = 1_000;
        while self.now_us < until_us {
            self.now_us += STEP_US;
            let now = self.now_us;
            for (k, (_, ssrc, bps)) in LAYERS.iter().enumerate() {
                let per_second = bps / (8 * PAYLOAD as u64);
                // Packets due in this millisecond, evenly spread.
                let due = now * per_second / 1_000_000 - (now - STEP_US) * per_second / 1_000_000;
                for _ in 0..due {
                    let seq = self.next_seq[k];
                    self.next_seq[k] = seq.wrapping_add(1);
                    let mut p = vp8(*ssrc, seq, u64::from(seq) % per_second == 0);
                    let len = p.len();
                    p.resize(MAX_DATAGRAM, 0);
                    self.router.on_datagram(PUBLISHER, &mut p, len, addr(1001), now, &mut self.io);
                }
            }
            if now.is_multiple_of(200_000) {
                self.router.on_timer(now, &mut self.io);
            }
            self.carry(capacity_bps);
            if now.is_multiple_of(50_000) {
                while self.link.in_flight.front().is_some_and(|&(at, _)| at <= now) {
                    let (at, seq) = self.link.in_flight.pop_front().unwrap();
                    self.receiver.record(seq, at);
                }
                let mut feedback = Vec::new();
                self.receiver.build_feedback(77, OUTPUT_SSRC, &mut feedback);
                for fb in feedback {
                    let len = fb.len();
                    let mut buf = fb;
                    buf.resize(MAX_DATAGRAM, 0);
                    self.router.on_datagram(SUBSCRIBER, &mut buf, len, addr(1002), now + 20_000, &mut self.io);
                }
            }
            for e in self.router.take_events() {
                if let Event::OutputSwitched { output: OUTPUT, source, .. } = e {
                    self.switches.extend(LAYERS.iter().position(|l| l.0 == source));
                }
                self.events.push(e);
            }
        }
    }

    /// What ferry sent the subscriber goes through the link.
    fn carry(&mut self, capacity_bps: u64) {
        for (endpoint, bytes) in self.io.sent.drain(..) {
            if endpoint != SUBSCRIBER || rtp::is_rtcp(&bytes) {
                continue;
            }
            let hdr = rtp::parse_rtp(&bytes).expect("RTP to the subscriber");
            match hdr.ssrc {
                OUTPUT_SSRC => self.media_packets += 1,
                RTX_SSRC => self.rtx_packets += 1,
                other => panic!("unexpected SSRC {other}"),
            }
            let ext = rtp::find_extension(&bytes, &hdr, TWCC_ID).expect("every packet carries the transport-wide sequence number");
            let seq = u16::from_be_bytes([ext[0], ext[1]]);
            let start = self.link.free_us.max(self.now_us);
            let done = start + bytes.len() as u64 * 8 * 1_000_000 / capacity_bps;
            if done - self.now_us <= 300_000 {
                self.link.free_us = done;
                self.link.in_flight.push_back((done + 20_000, seq));
            }
        }
    }

    /// The layer chosen for the output now.
    fn layer(&self) -> i32 {
        self.router.output_stats().into_iter().find(|o| o.0 == OUTPUT).unwrap().1.layer
    }

    fn estimate(&self) -> u64 {
        self.router.endpoint_stats().into_iter().find(|e| e.0 == SUBSCRIBER).unwrap().2.bwe_estimate_bps
    }
}

#[test]
fn the_layer_follows_what_the_link_carries_down_and_back_up() {
    let mut run = Run::new();
    // Until the rates are measured the preferred (top) layer goes; a thin link brings it down.
    run.run(15_000_000, 350_000);
    assert_eq!(run.layer(), 0, "the bottom layer on 350 kbit/s (estimate {})", run.estimate());
    assert!(run.estimate() < 600_000, "{}", run.estimate());
    assert_eq!(run.switches.last(), Some(&0), "switched down at a keyframe of layer 0");
    let limited = |run: &Run| {
        run.events.iter().rev().find_map(|e| match e {
            Event::BandwidthEstimate { endpoint: SUBSCRIBER, limited, .. } => Some(*limited),
            _ => None,
        })
    };
    assert_eq!(limited(&run), Some(true), "the control plane heard the subscriber is held below its layer");

    // The capacity grows: probes show it, and the output climbs to the top layer.
    let switches = run.switches.len();
    run.run(40_000_000, 3_000_000);
    assert_eq!(run.layer(), 2, "the top layer on a 3 Mbit/s link (estimate {})", run.estimate());
    assert_eq!(run.switches.last(), Some(&2), "switched up at keyframes: {:?}", &run.switches[switches..]);
    let stats = run.router.endpoint_stats().into_iter().find(|e| e.0 == SUBSCRIBER).unwrap().2;
    assert!(stats.probe_packets > 0, "the estimate was raised by probing");
    assert!(stats.transport_feedback_received > 0);
    assert!(stats.rtt_ms >= 20, "{}", stats.rtt_ms);
    assert!(!stats.bwe_limited);
    assert_eq!(limited(&run), Some(false));

    // Down and up once more.
    run.run(55_000_000, 350_000);
    assert_eq!(run.layer(), 0, "estimate {}", run.estimate());
    run.run(80_000_000, 3_000_000);
    assert_eq!(run.layer(), 2, "estimate {}", run.estimate());
    assert!(run.media_packets > 0 && run.rtx_packets > 0);
}

/// 650 kbit/s carries layer 1 (500 kbit/s) but not layer 2: the output stays on layer 1 while
/// it probes for layer 2. A probe the link does not carry loses packets for a moment; the
/// estimate then falls to what got through, not below layer 1 (it once fell to the minimum
/// and the output went back and forth between layers 0 and 1 every few seconds).
#[test]
fn a_link_between_two_layers_keeps_the_lower_one_while_probing_for_the_higher() {
    let mut run = Run::new();
    run.run(10_000_000, 650_000);
    assert_eq!(run.layer(), 1, "estimate {}", run.estimate());
    let switches = run.switches.len();
    let probes = |run: &Run| run.router.endpoint_stats().into_iter().find(|e| e.0 == SUBSCRIBER).unwrap().2.probe_packets;
    let probed = probes(&run);
    run.run(60_000_000, 650_000);
    assert_eq!(&run.switches[switches..], &[] as &[usize], "no switch in 50 s on a steady link");
    assert_eq!(run.layer(), 1, "estimate {}", run.estimate());
    assert!(probes(&run) > probed, "it kept probing for layer 2");
    assert!(run.estimate() >= 500_000, "{}", run.estimate());
}

#[test]
fn without_an_estimate_the_preferred_layer_is_sent_and_nothing_is_added() {
    let (mut router, mut io) = two_endpoints(&simulcast());
    router.add_output(OUTPUT, SUBSCRIBER, &OutputConfig { source: None, ssrc: OUTPUT_SSRC, payload_type: None, rtx: None }, None, 0, &mut io).unwrap();
    let set = LayerSet { layers: LAYERS.iter().map(|l| layer_ref(l.0)).collect(), preferred: 1, temporal_max: None };
    router.set_output_layers(OUTPUT, Some(set), 0, &mut io).unwrap();
    io.sent.clear();
    for seq in 0..3u16 {
        for (_, ssrc, _) in LAYERS {
            let mut p = vp8(ssrc, seq, seq == 0);
            let len = p.len();
            p.resize(MAX_DATAGRAM, 0);
            router.on_datagram(PUBLISHER, &mut p, len, addr(1001), 1000, &mut io);
        }
    }
    let to_subscriber: Vec<&Vec<u8>> = io.sent.iter().filter(|(e, _)| *e == SUBSCRIBER).map(|(_, b)| b).collect();
    assert_eq!(to_subscriber.len(), 3, "only layer 1's packets");
    for bytes in to_subscriber {
        assert_eq!(bytes.len(), 12 + PAYLOAD, "no extension added without estimation");
    }
    // Bad configurations are refused, not applied.
    assert!(router.set_output_layers(OUTPUT, Some(LayerSet { layers: vec![], preferred: 0, temporal_max: None }), 0, &mut io).is_err());
    assert!(router.set_output_layers(OUTPUT, Some(LayerSet { layers: vec![layer_ref(99)], preferred: 0, temporal_max: None }), 0, &mut io).is_err());
    assert!(router.set_send_bwe(SUBSCRIBER, Some(BweConfig { extension_id: 0, initial_bps: 1, min_bps: 1, max_bps: 1 }), 0, &mut io).is_err());
    assert!(router.set_send_bwe(99, None, 0, &mut io).is_err());
}

// ---- VP9 SVC --------------------------------------------------------------------------------

/// One packet of a VP9 SVC picture (RFC 9628, non-flexible mode): layer frame `sid`, one packet
/// per layer; the publisher's marker on the top layer.
fn vp9(seq: u16, picture: u16, sid: u8, tid: u8, key: bool) -> Vec<u8> {
    let mut p = vec![0x80, 98];
    if sid == 2 {
        p[1] |= 0x80;
    }
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(picture) * 3000).to_be_bytes());
    p.extend_from_slice(&7000u32.to_be_bytes());
    // I L B E, P unless the base layer of a keyframe; 15-bit PICTURE ID; TID U SID D; TL0PICIDX.
    let first = 0x80 | 0x20 | 0x08 | 0x04 | if key && sid == 0 { 0 } else { 0x40 };
    p.extend_from_slice(&[first, 0x80 | (picture >> 8) as u8, picture as u8, tid << 5 | 0x10 | sid << 1, picture as u8, 0xaa, 0xbb]);
    p
}

#[test]
fn an_svc_output_forwards_the_layers_asked_for_and_marks_each_picture_end() {
    let (mut router, mut io) = two_endpoints(&[(11, 7000, VideoCodec::Vp9)]);
    let source = SourceRef { id: 11, home: 0, codec: Some(VideoCodec::Vp9), clock_rate: 90_000, kind: MediaKind::Video };
    router.add_output(OUTPUT, SUBSCRIBER, &OutputConfig { source: Some(11), ssrc: OUTPUT_SSRC, payload_type: None, rtx: None }, Some(source), 0, &mut io).unwrap();
    router.set_output_svc(OUTPUT, Some(1), Some(0), 0, &mut io).unwrap();
    let events = router.take_events();
    assert!(events.contains(&Event::OutputSpatial { endpoint: SUBSCRIBER, output: OUTPUT, layer: 1 }));
    assert!(events.contains(&Event::OutputTemporal { endpoint: SUBSCRIBER, output: OUTPUT, layer: 0 }));
    let mut seq = 0u16;
    let mut send = |router: &mut Router, io: &mut Io, picture: u16, tid: u8, key: bool| {
        for sid in 0..3 {
            let mut p = vp9(seq, picture, sid, tid, key);
            seq += 1;
            let len = p.len();
            p.resize(MAX_DATAGRAM, 0);
            router.on_datagram(PUBLISHER, &mut p, len, addr(1001), u64::from(picture) * 33_000, io);
        }
    };
    // Pictures 0..4: TID 0,1,0,1. Only TID 0 and spatial layers 0 and 1 go.
    for picture in 0..4u16 {
        send(&mut router, &mut io, picture, (picture % 2) as u8, picture == 0);
    }
    let to_subscriber = |io: &Io| -> Vec<(u16, bool, u8)> {
        io.sent
            .iter()
            .filter(|(e, b)| *e == SUBSCRIBER && !rtp::is_rtcp(b))
            .map(|(_, b)| {
                let h = rtp::parse_rtp(b).unwrap();
                let d = ferry_rtp::vp9::parse(h.payload(b).unwrap()).unwrap();
                (h.sequence, h.marker, d.layer.unwrap().spatial)
            })
            .collect()
    };
    let got = to_subscriber(&io);
    assert_eq!(got.iter().map(|g| g.2).collect::<Vec<_>>(), vec![0, 1, 0, 1], "pictures 0 and 2, spatial layers 0 and 1");
    assert_eq!(got.iter().map(|g| g.1).collect::<Vec<_>>(), vec![false, true, false, true], "the marker on layer 1, the last one sent");
    let seqs: Vec<u16> = got.iter().map(|g| g.0).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0].wrapping_add(1)), "no gaps for what was not sent: {seqs:?}");
    let out = router.output_stats().into_iter().find(|o| o.0 == OUTPUT).unwrap().1;
    assert_eq!(out.filtered, 8);

    // Up to every spatial layer: a keyframe is asked for and the rise waits for it.
    io.sent.clear();
    router.set_output_svc(OUTPUT, None, Some(0), 200_000, &mut io).unwrap();
    assert!(io.sent.iter().any(|(e, b)| *e == PUBLISHER && rtp::is_rtcp(b)), "a PLI to the publisher");
    io.sent.clear();
    send(&mut router, &mut io, 4, 0, false);
    assert_eq!(to_subscriber(&io).iter().map(|g| g.2).collect::<Vec<_>>(), vec![0, 1], "not before the keyframe");
    io.sent.clear();
    send(&mut router, &mut io, 6, 0, true);
    let got = to_subscriber(&io);
    assert_eq!(got.iter().map(|g| (g.2, g.1)).collect::<Vec<_>>(), vec![(0, false), (1, false), (2, true)], "every layer, the publisher's marker");
    assert!(router.take_events().contains(&Event::OutputSpatial { endpoint: SUBSCRIBER, output: OUTPUT, layer: 255 }));
}
