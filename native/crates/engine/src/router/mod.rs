//! The forwarding core of one media thread, sans-IO: it takes datagrams (bytes, the source
//! address, the time) and messages from other media threads, and yields transmits, packets
//! handed to other threads, messages and events through a [`RouterIo`]. It never touches a
//! socket, a clock or another thread, so the same code runs in `worker.rs`, in unit tests and
//! in the random-input test below.
//!
//! Shape of the fan-out:
//! - a **source** (what a publisher sends, by SSRC) lives on the router of its endpoint, its
//!   *home*: SRTP is removed there once;
//! - an **output** (what a subscriber receives) lives on the router of its endpoint;
//! - a **feed** is a router's list of its own outputs fed (or about to be fed) by one source.
//!   A home source always has a feed; a router whose outputs want a source homed elsewhere
//!   holds a *remote feed* and is listed in the source's `subscribers`. The home router hands
//!   each decrypted packet once to every subscriber thread ([`RouterIo::forward`]), which fans
//!   it out to its outputs exactly as the home router does for its own.
//! - feedback an output sends back (keyframe requests) travels to the source's home as a
//!   [`PeerMessage`].

use std::net::SocketAddr;
use std::sync::Arc;

use ferry_rtp::switch::SwitchingContext;
use ferry_rtp::vp9::{SvcChange, SvcSelector, SvcVerdict};
use ferry_rtp::{rtcp, rtp, transport_sequence, vp8, vp9, AudioLevelMeter, NackGenerator, ReceptionStats, RetransmissionBuffer, TelephoneEventDetector, Vp8Rewriter, Vp9Rewriter};
pub use ferry_rtp::VideoCodec;
use ferry_srtp::hmac_batch::DeferredMac;
use ferry_srtp::{SrtpContext, SrtpError};
use ferry_stun::{IceEvent, StunOutcome};

use crate::bandwidth::{self, AutoLayers, BweConfig, LayerDemand, LayerSet, SendBwe, SourceRate, SourceRates};
use crate::endpoint::{Endpoint, EndpointConfig, SrtpKeys};
use crate::event::Event;
use crate::idmap::IdMap;
use crate::stats::{EndpointStats, StreamStats};

/// Largest datagram the engine receives or sends.
pub const MAX_DATAGRAM: usize = 2048;

/// Keyframe requests relayed to a publisher at most this often per source.
const KEYFRAME_MIN_INTERVAL_US: u64 = 300_000;
/// A switch waiting for its new source's keyframe asks for one again this often until it
/// comes. A publisher may drop a request: libwebrtc's encoder takes one per 300 ms for all its
/// simulcast layers together, so a request for one layer just after one for another is lost,
/// and the subscriber, still decoding the old source, asks for nothing.
const SWITCH_KEYFRAME_RETRY_US: u64 = 500_000;
const REMB_EVENT_INTERVAL_US: u64 = 1_000_000;
/// RTP media SSRC used as the sender of RTCP feedback ferry originates (RFC 4585 §6.1 allows any).
const FEEDBACK_SENDER_SSRC: u32 = 1;
/// Loss on what each source receives is accounted over this interval.
const LOSS_INTERVAL_US: u64 = 1_000_000;
/// A publisher's bitrate cap (REMB) is repeated this often, as receivers do.
const REMB_CAP_INTERVAL_US: u64 = 1_000_000;
/// The REMB that lifts a cap: far above any link (100 Gbit/s).
const LIFTED_REMB_BPS: u64 = 100_000_000_000;
/// Transport-cc feedback is sent at most this often per endpoint while packets arrive.
pub const TWCC_FEEDBACK_INTERVAL_US: u64 = 100_000;
/// At most this many unknown SSRCs are reported per endpoint, so random SSRCs cannot flood JS.
const MAX_REPORTED_UNKNOWN_SSRCS: usize = 32;
/// Payload types an output may map (a bridge needs a codec or two and RFC 4733 events).
const MAX_PAYLOAD_MAP: usize = 16;
/// Video packets each router keeps per source to answer NACKs from (about half a second of a
/// high-rate stream; Chrome and werift give up on a loss well before that).
const RETRANSMISSION_PACKETS: usize = 512;
/// Retransmissions an output may send: a token bucket of this many, refilled at this rate, so a
/// receiver NACKing everything cannot make ferry double its stream.
const RETRANSMISSION_BURST: u32 = 64;
const RETRANSMISSIONS_PER_SECOND: u64 = 500;

/// Opaque name of the socket an endpoint sends from (the worker uses its fd); the router only
/// passes it back with each transmit.
pub type Transport = i32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    Audio,
    Video,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceConfig {
    /// SSRC on the wire, as the publisher sends it.
    pub ssrc: u32,
    /// Added to the wire SSRC on receipt (lessons §4): cascaded publishers reuse SSRC schemes,
    /// the offset keeps every source's SSRC distinct inside ferry.
    pub ssrc_offset: u32,
    pub kind: MediaKind,
    pub clock_rate: u32,
    /// Video codec of the stream, when known: lets an output switch to this source exactly
    /// at one of its keyframes (see `Engine::switch_output`).
    pub codec: Option<VideoCodec>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputConfig {
    pub source: Option<u32>,
    /// SSRC the subscriber sees; fixed for the output's life whatever source feeds it.
    pub ssrc: u32,
    /// Payload type to write, when the subscriber negotiated a different one.
    pub payload_type: Option<u8>,
    /// Retransmissions go as RFC 4588 RTX on this SSRC and payload type; without it, NACKed
    /// packets are sent again as they were.
    pub rtx: Option<RtxConfig>,
}

/// An RFC 4588 retransmission stream (`a=ssrc-group:FID`, `apt`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtxConfig {
    pub ssrc: u32,
    pub payload_type: u8,
}

/// What an output's router must know of a source that may live on another router.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceRef {
    pub id: u32,
    /// Router (media thread) the source lives on.
    pub home: usize,
    pub codec: Option<VideoCodec>,
    pub clock_rate: u32,
    pub kind: MediaKind,
}

/// Messages between routers. They are rare (signalling rate), so they travel on a channel
/// that never drops; media travels on bounded queues that do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerMessage {
    /// `worker` has outputs that want `source`: hand it every packet, tagged `subscription`
    /// (the subscriber's name for this feed, new each time it subscribes).
    Subscribe { source: u32, worker: usize, subscription: u32 },
    /// `worker` no longer has outputs that want `source`.
    Unsubscribe { source: u32, worker: usize },
    /// An output of another router asked for a keyframe of `source` (PLI/FIR, or a switch).
    KeyframeRequest { source: u32, force: bool },
    /// `source` was removed on its home router: outputs fed by it go idle.
    SourceGone { source: u32 },
}

/// Where a router's results go. The worker implements it over sockets and queues between
/// threads; tests implement it over vectors.
pub trait RouterIo {
    /// A buffer for the next outgoing datagram (the worker flushes when its queue is full).
    /// `None` drops the datagram (counted by the caller).
    fn transmit_slot(&mut self) -> Option<&mut [u8; MAX_DATAGRAM]>;
    /// Queues the first `len` bytes of the slot just returned by `transmit_slot`.
    fn commit_transmit(&mut self, len: usize, transport: Transport, endpoint: u32, to: &SocketAddr);
    /// Whether this IO writes the SRTP tags of AES-CM packets itself, many at once
    /// (`ferry_srtp::hmac_batch`), before it sends them. The router then protects with
    /// `protect_rtp_deferred` and queues such packets with `commit_transmit_tag_later`.
    fn batches_tags(&self) -> bool {
        false
    }
    /// Queues the slot just filled like `commit_transmit`; its SRTP tag is still to be written
    /// (`mac` computes it) before the datagram leaves. Called only when `batches_tags()`.
    fn commit_transmit_tag_later(&mut self, len: usize, transport: Transport, endpoint: u32, to: &SocketAddr, mac: DeferredMac);
    /// Hands one decrypted RTP packet of a home source to other routers, once each (sharing one
    /// buffer), each with its subscription's tag and sequence number so it sees what a full
    /// queue dropped. Must never block.
    fn forward(&mut self, to: &[Handoff], source: u32, packet: &[u8]);
    /// Sends a message to another router (never dropped).
    fn message(&mut self, worker: usize, message: PeerMessage);
    /// Hands one decrypted RTP packet of a recorded source to recording `recording`, with the
    /// time it arrived. Must never block: a writer that falls behind drops (and counts).
    fn record(&mut self, recording: u32, packet: &[u8], now_us: u64);
}

/// One subscriber router's share of a forwarded packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handoff {
    pub worker: usize,
    /// The subscriber's tag for its feed (see `PeerMessage::Subscribe`).
    pub subscription: u32,
    /// Packets of this subscription, numbered from 0 without gaps by the home router.
    pub seq: u64,
}

/// Ids of the sources and outputs that died with a closed endpoint.
pub struct ClosedRoutes {
    pub sources: Vec<u32>,
    pub outputs: Vec<u32>,
}

/// A source homed on this router.
struct Source {
    endpoint: u32,
    config: SourceConfig,
    /// Other routers with outputs that want this source (each listed once), with their
    /// subscription tag and the number of the next packet handed to them.
    subscribers: Vec<Handoff>,
    last_keyframe_request_us: Option<u64>,
    stats: StreamStats,
    /// RFC 6464 extension id and the meter averaging its levels, when asked for.
    audio_level: Option<(u8, AudioLevelMeter)>,
    /// RFC 4733 events of the sender, reported once each, when asked for.
    telephone_events: Option<TelephoneEventDetector>,
    /// The recording this source's packets go to (`Router::set_recording`).
    recording: Option<u32>,
    /// Sequence accounting of what arrives, for loss on the sender's uplink.
    reception: ReceptionStats,
    last_loss_check_us: u64,
    /// Video: asks the publisher again for what did not arrive (RFC 4585 generic NACK).
    nack: Option<NackGenerator>,
    /// The publisher's RFC 4588 retransmission stream, unwrapped to this source.
    rtx: Option<RtxConfig>,
    /// Payload type of the source's own packets, restored on unwrapped retransmissions.
    media_payload_type: Option<u8>,
    /// Rate measurement for `SourceRates`: bytes and time at the start of the interval, and
    /// VP8 bytes per temporal layer within it.
    rate_mark_bytes: u64,
    rate_mark_us: u64,
    temporal_bytes: [u64; 4],
}

/// This router's outputs fed, or waiting to be fed, by one source.
struct Feed {
    home: usize,
    codec: Option<VideoCodec>,
    clock_rate: u32,
    outputs: Vec<u32>,
    /// Remote feeds: the tag this router gave its subscription, and the number of the last
    /// packet received under it. Packets of an earlier subscription (still queued when this
    /// one began) carry another tag and are ignored, so they are neither fanned out twice nor
    /// mistaken for losses.
    subscription: u32,
    last_seq: Option<u64>,
    /// Video: the source's recent packets as this router fanned them out, to answer its
    /// outputs' NACKs (one buffer per source per router, shared by the outputs).
    history: Option<RetransmissionBuffer>,
    /// Home video sources that asked for it: the current group of pictures (see `replay`).
    gop: Option<replay::GopCache>,
}

fn history_for(kind: MediaKind) -> Option<RetransmissionBuffer> {
    (kind == MediaKind::Video).then(|| RetransmissionBuffer::new(RETRANSMISSION_PACKETS, MAX_DATAGRAM))
}

struct Output {
    endpoint: u32,
    source: Option<u32>,
    /// Source this output moves to at its next keyframe; until then `source` keeps feeding
    /// it. The output is listed in both sources' feeds meanwhile.
    pending_source: Option<u32>,
    /// When a keyframe of `pending_source` was last asked for.
    pending_asked_us: u64,
    ssrc: u32,
    payload_type: Option<u8>,
    /// Payload types written differently from `payload_type`: `(received, Some(written))`, or
    /// `(received, None)` for packets this output does not send (a type its receiver did not
    /// negotiate, such as RFC 4733 events a SIP peer has no payload type for).
    payload_map: Vec<(u8, Option<u8>)>,
    paused: bool,
    switching: SwitchingContext,
    stats: StreamStats,
    rtx: Option<RtxConfig>,
    /// Sequence number of the next RTX packet (RFC 4588 §4: its own numbering).
    rtx_seq: u16,
    /// Retransmission token bucket: tokens left, and when it was last refilled.
    rtx_tokens: u32,
    rtx_refilled_us: u64,
    /// VP8/VP9: picture ids and TL0PICIDX kept continuous across sources (made at the first
    /// packet of either codec).
    pictures: Option<PictureRewriter>,
    /// VP9 SVC: the spatial and temporal layers forwarded.
    svc: SvcSelector,
    /// Highest VP8 temporal layer (TID) wanted; `None` = all. A change applies at a frame the
    /// subscriber can decode from: going down at once, going up at a layer-sync frame.
    temporal_target: Option<u8>,
    temporal_pending: Option<u8>,
    /// Simulcast layers this output chooses from by its transport's estimate.
    auto: Option<AutoLayers>,
}

/// Counters of the hand-over between routers, as this router sees them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CrossStats {
    /// Packets received from other routers' sources.
    pub received: u64,
    /// Packets other routers dropped on their way here (queue full), seen as gaps.
    pub gaps: u64,
    /// Packets that arrived for a source this router no longer wants (a late unsubscribe).
    pub unwanted: u64,
}

pub struct Router {
    worker: usize,
    endpoints: IdMap<Endpoint>,
    sources: IdMap<Source>,
    feeds: IdMap<Feed>,
    outputs: IdMap<Output>,
    events: Vec<Event>,
    stun_out: Vec<u8>,
    /// Reused buffer for the transport-cc messages of one endpoint.
    feedback_scratch: Vec<Vec<u8>>,
    /// (old source, output) pairs whose pending switch completed during one packet's fan-out.
    completed_switches: Vec<(Option<u32>, u32)>,
    /// Hand-offs of the packet being forwarded (reused, no allocation per packet).
    forward_scratch: Vec<Handoff>,
    /// Tag of this router's last subscription.
    last_subscription: u32,
    /// Reused lists for sending NACKs (no allocation per batch).
    nack_scratch: Vec<u16>,
    nack_scratch_sources: Vec<u32>,
    cross: CrossStats,
    /// Rates of every source of the engine (this router writes its home sources').
    rates: Arc<SourceRates>,
}

impl Router {
    /// The router of media thread `worker`.
    pub fn new(worker: usize) -> Self {
        Self::with_source_rates(worker, Arc::new(SourceRates::default()))
    }

    /// The router of media thread `worker`, sharing the source rates of its engine.
    pub fn with_source_rates(worker: usize, rates: Arc<SourceRates>) -> Self {
        Self {
            worker,
            endpoints: IdMap::default(),
            sources: IdMap::default(),
            feeds: IdMap::default(),
            outputs: IdMap::default(),
            events: Vec::new(),
            stun_out: Vec::with_capacity(256),
            feedback_scratch: Vec::new(),
            completed_switches: Vec::new(),
            forward_scratch: Vec::new(),
            last_subscription: 0,
            nack_scratch: Vec::new(),
            nack_scratch_sources: Vec::new(),
            cross: CrossStats::default(),
            rates,
        }
    }

    pub fn worker(&self) -> usize {
        self.worker
    }

    /// Events produced since the last call, to hand to the control plane in one batch.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    pub fn push_event(&mut self, event: Event) {
        self.events.push(event);
    }

    // ---- what the router holds, for stats and tests ------------------------------------------

    /// Whether an endpoint takes datagrams from `from`: a validated ICE address, or anyone on a
    /// plain leg (RFC 8445 §7.3).
    pub fn accepts_from(&self, id: u32, from: SocketAddr) -> bool {
        self.endpoints.get(&id).is_some_and(|e| e.accepts_from(from))
    }

    /// Whether an endpoint's ICE agent validated `from` (a check with its credentials came from
    /// there): what lets a shared socket route that address's datagrams to it.
    pub fn is_validated(&self, id: u32, from: SocketAddr) -> bool {
        self.endpoints.get(&id).is_some_and(|e| e.ice.is_some() && e.accepts_from(from))
    }

    pub fn endpoint_count(&self) -> usize {
        self.endpoints.len()
    }
    pub fn source_count(&self) -> usize {
        self.sources.len()
    }
    pub fn output_count(&self) -> usize {
        self.outputs.len()
    }
    /// Feeds of sources homed on other routers.
    pub fn remote_feed_count(&self) -> usize {
        self.feeds.values().filter(|f| f.home != self.worker).count()
    }
    /// (source, subscriber router) pairs this router hands packets to.
    pub fn subscription_count(&self) -> usize {
        self.sources.values().map(|s| s.subscribers.len()).sum()
    }
    pub fn cross_stats(&self) -> &CrossStats {
        &self.cross
    }

    pub fn endpoint_stats(&self) -> Vec<(u32, u16, EndpointStats)> {
        let mut v: Vec<_> = self
            .endpoints
            .values()
            .map(|e| {
                let mut stats = e.stats.clone();
                if let Some(bwe) = &e.bwe {
                    stats.bwe_estimate_bps = bwe.estimator.estimate_bps();
                    stats.bwe_loss_permille = bwe.estimator.loss_permille();
                    stats.rtt_ms = bwe.estimator.rtt_us().map_or(0, |us| (us / 1000) as u32);
                    stats.transport_feedback_received = bwe.feedback_received;
                    stats.probe_packets = bwe.probe_packets;
                    stats.bwe_limited = bwe.limited;
                }
                (e.id, e.local.port(), stats)
            })
            .collect();
        v.sort_by_key(|e| e.0);
        v
    }
    pub fn source_stats(&self) -> Vec<(u32, StreamStats)> {
        let mut v: Vec<_> = self.sources.iter().map(|(id, s)| (*id, s.stats.clone())).collect();
        v.sort_by_key(|s| s.0);
        v
    }
    pub fn output_stats(&self) -> Vec<(u32, StreamStats)> {
        let mut v: Vec<_> = self
            .outputs
            .iter()
            .map(|(id, o)| {
                let layer = o.auto.as_ref().and_then(|a| a.chosen).map_or(-1, |l| l as i32);
                (*id, StreamStats { layer, ..o.stats.clone() })
            })
            .collect();
        v.sort_by_key(|o| o.0);
        v
    }
    /// Packets per second of work is measured from these: everything received and sent.
    pub fn packet_totals(&self) -> u64 {
        self.endpoints.values().map(|e| e.stats.rx_packets + e.stats.tx_packets).sum()
    }
}

mod control;
mod feedback;
mod layers;
mod receive;
mod replay;
mod send;
mod timers;

use feedback::queue_rtcp;
use send::{probe, push_svc_events, sid_of, write_packet, write_rtx, PictureRewriter, Sent};
