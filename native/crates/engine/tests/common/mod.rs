//! What the router tests share: a recording [`RouterIo`], a mesh that runs several routers
//! (media threads) and carries the packets and messages they hand each other, either all in
//! order ("settle") or one at a time from random channels (each channel FIFO, as the worker's
//! queues are), and packet and SRTP helpers. Each test file uses part of it.
#![allow(dead_code, unused_imports)]

pub use std::collections::VecDeque;
pub use std::net::{IpAddr, Ipv4Addr, SocketAddr};
pub use std::rc::Rc;

pub use ferry_engine::{
    EndpointConfig, Event, Handoff, IceCredentials, MediaKind, OutputConfig, PeerMessage, Router, RouterIo, SourceConfig, SourceRef, SrtpKeys, SrtpProfile, VideoCodec,
    MAX_DATAGRAM,
};
pub use ferry_rtp::{rtcp, rtp};
pub use ferry_srtp::SrtpContext;
pub use ferry_testkit::{rtcp as test_rtcp, Rng};

// ---- a recording RouterIo ------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct Transmit {
    pub transport: i32,
    pub endpoint: u32,
    pub to: SocketAddr,
    pub bytes: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct Forward {
    pub workers: Vec<usize>,
    pub source: u32,
    /// Sequence number of the first hand-off (equal for subscriptions made together).
    pub fseq: u64,
    pub handoffs: Vec<Handoff>,
    pub packet: Vec<u8>,
}

pub struct TestIo {
    pub slot: Box<[u8; MAX_DATAGRAM]>,
    /// When set, `transmit_slot` refuses (a full send queue).
    pub refuse_slots: bool,
    pub transmits: Vec<Transmit>,
    pub forwards: Vec<Forward>,
    pub messages: Vec<(usize, PeerMessage)>,
    /// Packets handed to recordings: (recording, packet, arrival µs).
    pub recorded: Vec<(u32, Vec<u8>, u64)>,
}

impl TestIo {
    pub fn new() -> Self {
        Self { slot: Box::new([0; MAX_DATAGRAM]), refuse_slots: false, transmits: Vec::new(), forwards: Vec::new(), messages: Vec::new(), recorded: Vec::new() }
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

    // The router tests run the deferred-tag path: every AES-CM tag is written here, at commit.
    fn batches_tags(&self) -> bool {
        true
    }

    fn commit_transmit_tag_later(&mut self, len: usize, transport: i32, endpoint: u32, to: &SocketAddr, mac: ferry_srtp::hmac_batch::DeferredMac) {
        assert!(mac.finish(&mut self.slot[..]), "room for the tag");
        self.commit_transmit(len, transport, endpoint, to);
    }

    fn forward(&mut self, to: &[Handoff], source: u32, packet: &[u8]) {
        assert!(!to.is_empty(), "forward to nobody");
        let workers = to.iter().map(|h| h.worker).collect();
        self.forwards.push(Forward { workers, source, fseq: to[0].seq, handoffs: to.to_vec(), packet: packet.to_vec() });
    }

    fn message(&mut self, worker: usize, message: PeerMessage) {
        self.messages.push((worker, message));
    }

    fn record(&mut self, recording: u32, packet: &[u8], now_us: u64) {
        self.recorded.push((recording, packet.to_vec(), now_us));
    }
}

// ---- several routers and the channels between them ------------------------------------------

/// A packet on its way to one router: (source, subscription, seq, bytes shared by all receivers).
pub type Handover = (u32, u32, u64, Rc<Vec<u8>>);

/// Decides whether a forward (to router, source, fseq) is lost on the way (a full queue).
pub type DropRule = Box<dyn FnMut(usize, u32, u64) -> bool>;

pub struct Mesh {
    pub routers: Vec<Router>,
    pub ios: Vec<TestIo>,
    /// Per receiving router: messages (never dropped) and forwarded packets, each FIFO.
    pub messages: Vec<VecDeque<PeerMessage>>,
    pub forwards: Vec<VecDeque<Handover>>,
    pub now_us: u64,
    pub drop_forward: Option<DropRule>,
    /// Forwards the drop rule took, per receiving router.
    pub dropped: Vec<u64>,
    /// Everything sent between routers, when `logging`: (from, forward) and (from, to, message).
    pub logging: bool,
    pub forward_log: Vec<(usize, Forward)>,
    pub message_log: Vec<(usize, usize, PeerMessage)>,
}

pub const PUB: SocketAddr = addr(192, 0, 2, 1, 5000);
pub const PUB2: SocketAddr = addr(192, 0, 2, 2, 5002);
pub const SUB1: SocketAddr = addr(198, 51, 100, 1, 6001);
pub const SUB2: SocketAddr = addr(198, 51, 100, 2, 6002);
pub const SUB3: SocketAddr = addr(198, 51, 100, 3, 6003);

pub const fn addr(a: u8, b: u8, c: u8, d: u8, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(a, b, c, d)), port)
}

pub fn transport_of(endpoint: u32) -> i32 {
    1000 + endpoint as i32
}

impl Mesh {
    pub fn new(n: usize) -> Self {
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
    pub fn endpoint(&mut self, r: usize, id: u32, remote: Option<SocketAddr>) {
        let mut cfg = EndpointConfig::new(addr(10, 0, 0, r as u8 + 1, 20000 + id as u16));
        cfg.remote = remote;
        self.routers[r].add_endpoint(id, transport_of(id), cfg.bind, &cfg).unwrap();
    }

    pub fn sref(&self, home: usize, source: u32) -> SourceRef {
        self.routers[home].source_ref(source).expect("source")
    }

    pub fn add_output(&mut self, r: usize, id: u32, endpoint: u32, ssrc: u32, payload_type: Option<u8>, source: Option<SourceRef>) {
        let cfg = OutputConfig { source: source.map(|s| s.id), ssrc, payload_type, rtx: None };
        self.routers[r].add_output(id, endpoint, &cfg, source, self.now_us, &mut self.ios[r]).unwrap();
    }

    pub fn switch(&mut self, r: usize, output: u32, source: Option<SourceRef>, on_keyframe: bool) {
        self.routers[r].switch_output(output, source, on_keyframe, self.now_us, &mut self.ios[r]).unwrap();
    }

    pub fn remove_output(&mut self, r: usize, id: u32) {
        self.routers[r].remove_output(id, &mut self.ios[r]).unwrap();
    }

    pub fn remove_source(&mut self, r: usize, id: u32) {
        self.routers[r].remove_source(id, &mut self.ios[r]).unwrap();
    }

    pub fn datagram(&mut self, r: usize, endpoint: u32, bytes: &[u8], from: SocketAddr) {
        let mut buf = [0u8; MAX_DATAGRAM];
        let len = bytes.len().min(MAX_DATAGRAM);
        buf[..len].copy_from_slice(&bytes[..len]);
        self.routers[r].on_datagram(endpoint, &mut buf, len, from, self.now_us, &mut self.ios[r]);
    }

    pub fn take_transmits(&mut self, r: usize) -> Vec<Transmit> {
        std::mem::take(&mut self.ios[r].transmits)
    }

    /// Moves what each router handed over into the receivers' channels.
    pub fn collect(&mut self) {
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

    pub fn pending(&self) -> usize {
        self.messages.iter().map(VecDeque::len).sum::<usize>() + self.forwards.iter().map(VecDeque::len).sum::<usize>()
    }

    pub fn deliver_message(&mut self, r: usize) -> bool {
        let Some(m) = self.messages[r].pop_front() else { return false };
        self.routers[r].on_message(m, self.now_us, &mut self.ios[r]);
        true
    }

    pub fn deliver_forward(&mut self, r: usize) -> bool {
        let Some((source, subscription, seq, packet)) = self.forwards[r].pop_front() else { return false };
        self.routers[r].on_forwarded(source, subscription, seq, &packet, self.now_us, &mut self.ios[r]);
        true
    }

    /// Delivers everything, messages first on each router, until nothing moves.
    pub fn settle(&mut self) {
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
    pub fn step_random(&mut self, rng: &mut Rng, max: usize) {
        for _ in 0..max {
            self.collect();
            let channels: Vec<(usize, bool)> = (0..self.routers.len())
                .flat_map(|r| [(r, true), (r, false)])
                .filter(|&(r, msg)| if msg { !self.messages[r].is_empty() } else { !self.forwards[r].is_empty() })
                .collect();
            if channels.is_empty() {
                return;
            }
            let (r, msg) = channels[rng.below(channels.len())];
            if msg {
                self.deliver_message(r);
            } else {
                self.deliver_forward(r);
            }
        }
    }

    pub fn logged_messages(&self, pred: impl Fn(&PeerMessage) -> bool) -> Vec<(usize, usize, PeerMessage)> {
        self.message_log.iter().filter(|(_, _, m)| pred(m)).copied().collect()
    }

    pub fn output_stats(&self, r: usize, id: u32) -> ferry_engine::StreamStats {
        self.routers[r].output_stats().into_iter().find(|(o, _)| *o == id).expect("output").1
    }

    pub fn endpoint_stats(&self, r: usize, id: u32) -> ferry_engine::EndpointStats {
        self.routers[r].endpoint_stats().into_iter().find(|(e, _, _)| *e == id).expect("endpoint").2
    }
}

// ---- packets -------------------------------------------------------------------------------

pub fn video(ssrc: u32) -> SourceConfig {
    SourceConfig { ssrc, ssrc_offset: 0, kind: MediaKind::Video, clock_rate: 90000, codec: Some(VideoCodec::Vp8) }
}

pub fn rtp_packet(ssrc: u32, seq: u16, ts: u32, pt: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, pt & 0x7f];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Frame {
    /// First packet of a VP8 keyframe (RFC 7741: S=1, PID=0, P=0).
    KeyStart,
    /// First packet of an inter frame (S=1, P=1).
    DeltaStart,
    /// A later packet of a frame (S=0).
    Continuation,
}

pub fn vp8_payload(frame: Frame) -> &'static [u8] {
    match frame {
        Frame::KeyStart => &[0x10, 0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a],
        Frame::DeltaStart => &[0x10, 0x11, 0x02, 0x00],
        Frame::Continuation => &[0x00, 0x55, 0x55],
    }
}

pub fn vp8_packet(ssrc: u32, seq: u16, ts: u32, frame: Frame) -> Vec<u8> {
    rtp_packet(ssrc, seq, ts, 96, vp8_payload(frame))
}

/// Media SSRC of a lone PLI (RFC 4585 §6.3.1).
pub fn pli_media_ssrc(bytes: &[u8]) -> Option<u32> {
    match rtcp::parse_feedback(bytes).ok()?.as_slice() {
        [rtcp::Feedback::Pli { media_ssrc, .. }] => Some(*media_ssrc),
        _ => None,
    }
}

/// (ssrc, seq, ts, pt, payload) of an RTP packet.
pub fn parse(bytes: &[u8]) -> (u32, u16, u32, u8, Vec<u8>) {
    let h = rtp::parse_rtp(bytes).expect("RTP");
    (h.ssrc, h.sequence, h.timestamp, h.payload_type, h.payload(bytes).unwrap_or(&[]).to_vec())
}

// ---- SRTP ----------------------------------------------------------------------------------

pub const PROFILE: SrtpProfile = SrtpProfile::AeadAes128Gcm;

pub fn key(tag: u8) -> (Vec<u8>, Vec<u8>) {
    key_for(PROFILE, tag)
}

/// A master key and salt for `profile` made from `tag`.
pub fn key_for(profile: SrtpProfile, tag: u8) -> (Vec<u8>, Vec<u8>) {
    (vec![tag; profile.master_key_len()], vec![tag ^ 0x5a; profile.master_salt_len()])
}

/// Keys of an endpoint: ferry sends with `local`, its peer with `remote`.
pub fn keys(local: u8, remote: u8) -> SrtpKeys {
    keys_for(PROFILE, local, remote)
}

pub fn keys_for(profile: SrtpProfile, local: u8, remote: u8) -> SrtpKeys {
    let ((local_key, local_salt), (remote_key, remote_salt)) = (key_for(profile, local), key_for(profile, remote));
    SrtpKeys { profile, local_key, local_salt, remote_key, remote_salt }
}

pub fn context(tag: u8) -> SrtpContext {
    context_for(PROFILE, tag)
}

pub fn context_for(profile: SrtpProfile, tag: u8) -> SrtpContext {
    let (k, s) = key_for(profile, tag);
    SrtpContext::new(profile, &k, &s).unwrap()
}

pub fn protect_rtp(ctx: &mut SrtpContext, plain: &[u8]) -> Vec<u8> {
    protected(plain, |buf, len| ctx.protect_rtp(buf, len))
}

pub fn protect_rtcp(ctx: &mut SrtpContext, plain: &[u8]) -> Vec<u8> {
    protected(plain, |buf, len| ctx.protect_rtcp(buf, len))
}

pub fn unprotect_rtp(ctx: &mut SrtpContext, bytes: &[u8]) -> Option<Vec<u8>> {
    unprotected(bytes, |buf, len| ctx.unprotect_rtp(buf, len))
}

pub fn unprotect_rtcp(ctx: &mut SrtpContext, bytes: &[u8]) -> Option<Vec<u8>> {
    unprotected(bytes, |buf, len| ctx.unprotect_rtcp(buf, len))
}

/// `plain` after `protect` (SRTP or SRTCP), given room for the tag.
fn protected(plain: &[u8], protect: impl FnOnce(&mut [u8], usize) -> Result<usize, ferry_srtp::SrtpError>) -> Vec<u8> {
    let mut buf = plain.to_vec();
    buf.resize(plain.len() + 64, 0);
    let n = protect(&mut buf, plain.len()).unwrap();
    buf.truncate(n);
    buf
}

/// `bytes` after `unprotect`, or None when it refuses them.
fn unprotected(bytes: &[u8], unprotect: impl FnOnce(&mut [u8], usize) -> Result<usize, ferry_srtp::SrtpError>) -> Option<Vec<u8>> {
    let mut buf = bytes.to_vec();
    let n = unprotect(&mut buf, bytes.len()).ok()?;
    buf.truncate(n);
    Some(buf)
}

// ---- across routers ------------------------------------------------------------------------

/// The start most router tests share: router 0 holds the publisher's endpoint 1 (PUB) and its
/// video source 10 (SSRC 0xa1), router `subscriber_router` the subscriber's endpoint 2 (SUB1);
/// `routers` routers in all. No output yet.
pub fn publisher_and_subscriber(routers: usize, subscriber_router: usize) -> Mesh {
    let mut m = Mesh::new(routers);
    m.endpoint(0, 1, Some(PUB));
    m.endpoint(subscriber_router, 2, Some(SUB1));
    m.routers[0].add_source(10, 1, video(0xa1)).unwrap();
    m
}


/// Source 10 (SSRC 0xa1) on router 0's endpoint 1; outputs 20 and 21 on router 1 (endpoint
/// 2), 22 on router 2 (endpoint 3), 23 on router 0 (endpoint 4).
pub fn fan_out_mesh() -> Mesh {
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

pub fn seqs_of(t: &[Transmit], ssrc: u32) -> Vec<u16> {
    t.iter().map(|t| parse(&t.bytes)).filter(|p| p.0 == ssrc).map(|p| p.1).collect()
}
