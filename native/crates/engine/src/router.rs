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
const REMB_EVENT_INTERVAL_US: u64 = 1_000_000;
/// RTP media SSRC used as the sender of RTCP feedback ferry originates (RFC 4585 §6.1 allows any).
const FEEDBACK_SENDER_SSRC: u32 = 1;
/// Loss on what each source receives is accounted over this interval.
const LOSS_INTERVAL_US: u64 = 1_000_000;
/// A publisher's bitrate cap (REMB) is repeated this often, as receivers do.
const REMB_CAP_INTERVAL_US: u64 = 1_000_000;
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
    /// Hands one decrypted RTP packet of a home source to other routers, once each (sharing one
    /// buffer), each with its subscription's tag and sequence number so it sees what a full
    /// queue dropped. Must never block.
    fn forward(&mut self, to: &[Handoff], source: u32, packet: &[u8]);
    /// Sends a message to another router (never dropped).
    fn message(&mut self, worker: usize, message: PeerMessage);
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

    // ---- configuration ---------------------------------------------------------------------

    pub fn add_endpoint(&mut self, id: u32, transport: Transport, local: SocketAddr, config: &EndpointConfig) -> Result<(), String> {
        if self.endpoints.contains_key(&id) {
            return Err(format!("endpoint {id} exists"));
        }
        self.endpoints.insert(id, Endpoint::new(id, transport, local, config));
        Ok(())
    }

    pub fn has_endpoint(&self, id: u32) -> bool {
        self.endpoints.contains_key(&id)
    }

    /// Transport of an endpoint (for the worker's direct sends).
    pub fn transport(&self, id: u32) -> Option<Transport> {
        self.endpoints.get(&id).map(|ep| ep.transport)
    }

    /// Removes an endpoint with its sources and outputs.
    pub fn remove_endpoint(&mut self, id: u32, io: &mut impl RouterIo) -> Result<ClosedRoutes, String> {
        let ep = self.endpoints.remove(&id).ok_or_else(|| format!("no endpoint {id}"))?;
        let sources: Vec<u32> = ep.sources_by_ssrc.values().copied().collect();
        let outputs: Vec<u32> = ep.outputs_by_ssrc.values().copied().collect();
        for &sid in &sources {
            let _ = self.remove_source(sid, io);
        }
        for &oid in &outputs {
            let _ = self.remove_output(oid, io);
        }
        Ok(ClosedRoutes { sources, outputs })
    }

    fn endpoint_mut(&mut self, id: u32) -> Result<&mut Endpoint, String> {
        self.endpoints.get_mut(&id).ok_or_else(|| format!("no endpoint {id}"))
    }

    pub fn set_srtp(&mut self, id: u32, keys: &SrtpKeys) -> Result<(), String> {
        let ep = self.endpoint_mut(id)?;
        let out = SrtpContext::new(keys.profile, &keys.local_key, &keys.local_salt).map_err(|e| format!("local SRTP key: {e}"))?;
        let inb = SrtpContext::new(keys.profile, &keys.remote_key, &keys.remote_salt).map_err(|e| format!("remote SRTP key: {e}"))?;
        ep.srtp_out = Some(out);
        ep.srtp_in = Some(inb);
        Ok(())
    }

    pub fn set_remote(&mut self, id: u32, remote: Option<SocketAddr>) -> Result<(), String> {
        self.endpoint_mut(id).map(|ep| ep.remote = remote)
    }

    pub fn set_ice_remote_ufrag(&mut self, id: u32, ufrag: Option<&str>) -> Result<(), String> {
        match self.endpoint_mut(id)?.ice.as_mut() {
            Some(agent) => {
                agent.set_remote_ufrag(ufrag);
                Ok(())
            }
            None => Err(format!("endpoint {id} has no ICE agent")),
        }
    }

    /// ICE restart (RFC 8445 §9): new local credentials and the peer's new ufrag.
    pub fn restart_ice(&mut self, id: u32, ufrag: &str, pwd: &str, remote_ufrag: Option<&str>) -> Result<(), String> {
        match self.endpoint_mut(id)?.ice.as_mut() {
            Some(agent) => {
                agent.restart(ufrag, pwd, remote_ufrag);
                Ok(())
            }
            None => Err(format!("endpoint {id} has no ICE agent")),
        }
    }

    /// Counts a datagram the worker sent (or failed to send) directly for an endpoint.
    pub fn record_direct_send(&mut self, id: u32, bytes: usize, ok: bool) {
        if let Some(ep) = self.endpoints.get_mut(&id) {
            if ok {
                ep.stats.dtls_out += 1;
                ep.stats.tx_packets += 1;
                ep.stats.tx_bytes += bytes as u64;
            } else {
                ep.stats.tx_failed += 1;
            }
        }
    }

    /// Counts what the worker's flush of queued transmits achieved for an endpoint.
    pub fn record_sent(&mut self, id: u32, packets: usize, bytes: usize, failed: usize) {
        if let Some(ep) = self.endpoints.get_mut(&id) {
            ep.stats.tx_packets += packets as u64;
            ep.stats.tx_bytes += bytes as u64;
            ep.stats.tx_failed += failed as u64;
        }
    }

    pub fn add_source(&mut self, id: u32, endpoint: u32, config: SourceConfig) -> Result<(), String> {
        let ep = self.endpoints.get_mut(&endpoint).ok_or_else(|| format!("no endpoint {endpoint}"))?;
        if config.clock_rate == 0 {
            return Err("clock rate must be > 0".into());
        }
        if ep.sources_by_ssrc.contains_key(&config.ssrc) {
            return Err(format!("endpoint {endpoint} already has a source with SSRC {}", config.ssrc));
        }
        ep.sources_by_ssrc.insert(config.ssrc, id);
        ep.reported_unknown.remove(&config.ssrc);
        let kind = config.kind;
        let history = history_for(config.kind);
        self.feeds.insert(id, Feed { home: self.worker, codec: config.codec, clock_rate: config.clock_rate, outputs: Vec::new(), subscription: 0, last_seq: None, history });
        self.sources.insert(
            id,
            Source {
                endpoint,
                config,
                subscribers: Vec::new(),
                last_keyframe_request_us: None,
                stats: StreamStats::default(),
                audio_level: None,
                telephone_events: None,
                reception: ReceptionStats::default(),
                last_loss_check_us: 0,
                nack: (kind == MediaKind::Video).then(NackGenerator::new),
                rtx: None,
                media_payload_type: None,
                rate_mark_bytes: 0,
                rate_mark_us: 0,
                temporal_bytes: [0; 4],
            },
        );
        Ok(())
    }

    pub fn remove_source(&mut self, id: u32, io: &mut impl RouterIo) -> Result<(), String> {
        let src = self.sources.remove(&id).ok_or_else(|| format!("no source {id}"))?;
        self.rates.remove(id);
        if let Some(ep) = self.endpoints.get_mut(&src.endpoint) {
            if ep.sources_by_ssrc.get(&src.config.ssrc) == Some(&id) {
                ep.sources_by_ssrc.remove(&src.config.ssrc);
            }
            if let Some(rtx) = src.rtx {
                if ep.rtx_sources_by_ssrc.get(&rtx.ssrc) == Some(&id) {
                    ep.rtx_sources_by_ssrc.remove(&rtx.ssrc);
                }
            }
        }
        self.drop_feed(id);
        for sub in src.subscribers {
            io.message(sub.worker, PeerMessage::SourceGone { source: id });
        }
        Ok(())
    }

    /// A source is gone: outputs stay (a subscriber may be switched to another source) but go
    /// idle, or move at once to the source they were waiting for, since no old stream is left
    /// to bridge the wait.
    fn drop_feed(&mut self, id: u32) {
        let Some(feed) = self.feeds.remove(&id) else { return };
        for oid in feed.outputs {
            if let Some(o) = self.outputs.get_mut(&oid) {
                if o.source == Some(id) {
                    o.source = o.pending_source.take();
                } else if o.pending_source == Some(id) {
                    o.pending_source = None;
                }
            }
        }
    }

    /// The publisher's RFC 4588 retransmission stream for a source (SSRC and payload type from
    /// `a=ssrc-group:FID` and the rtx `apt`), or none: its packets are unwrapped to the source.
    pub fn set_source_rtx(&mut self, source: u32, rtx: Option<RtxConfig>) -> Result<(), String> {
        let src = self.sources.get_mut(&source).ok_or_else(|| format!("no source {source}"))?;
        let ep = self.endpoints.get_mut(&src.endpoint).ok_or_else(|| format!("no endpoint {}", src.endpoint))?;
        if let Some(r) = rtx {
            if ep.sources_by_ssrc.contains_key(&r.ssrc) || ep.rtx_sources_by_ssrc.get(&r.ssrc).is_some_and(|&s| s != source) {
                return Err(format!("SSRC {} is taken on endpoint {}", r.ssrc, src.endpoint));
            }
        }
        if let Some(old) = src.rtx.take() {
            ep.rtx_sources_by_ssrc.remove(&old.ssrc);
        }
        if let Some(r) = rtx {
            ep.rtx_sources_by_ssrc.insert(r.ssrc, source);
            ep.reported_unknown.remove(&r.ssrc);
        }
        src.rtx = rtx;
        Ok(())
    }

    /// Caps what the publisher of `source`'s endpoint sends (draft-alvestrand-rmcat-remb: REMB
    /// listing the endpoint's video SSRCs), repeated every second; `None` stops.
    pub fn set_bitrate_cap(&mut self, source: u32, bps: Option<u64>, now_us: u64, io: &mut impl RouterIo) -> Result<(), String> {
        let endpoint = self.sources.get(&source).ok_or_else(|| format!("no source {source}"))?.endpoint;
        let ep = self.endpoints.get_mut(&endpoint).ok_or_else(|| format!("no endpoint {endpoint}"))?;
        ep.remb_cap_bps = bps;
        if bps.is_some() {
            self.send_remb_cap(endpoint, now_us, io);
        }
        Ok(())
    }

    fn send_remb_cap(&mut self, endpoint: u32, now_us: u64, io: &mut impl RouterIo) {
        let Some(ep) = self.endpoints.get(&endpoint) else { return };
        let Some(bps) = ep.remb_cap_bps else { return };
        let mut ssrcs: Vec<u32> = ep
            .sources_by_ssrc
            .iter()
            .filter(|(_, sid)| self.sources.get(sid).is_some_and(|s| s.config.kind == MediaKind::Video))
            .map(|(&ssrc, _)| ssrc)
            .collect();
        ssrcs.sort_unstable();
        let Some(ep) = self.endpoints.get_mut(&endpoint) else { return };
        ep.remb_sent_us = now_us;
        let Some(dest) = ep.remote else { return };
        if ssrcs.is_empty() {
            return;
        }
        let remb = rtcp::build_remb(FEEDBACK_SENDER_SSRC, bps, &ssrcs);
        if queue_rtcp(io, ep, &remb, dest) {
            ep.stats.remb_sent += 1;
        }
    }

    /// Meters a source's RFC 6464 level: `(extension id, packets per average)`, or off.
    pub fn set_audio_level_meter(&mut self, source: u32, meter: Option<(u8, u32)>) -> Result<(), String> {
        let src = self.sources.get_mut(&source).ok_or_else(|| format!("no source {source}"))?;
        src.audio_level = meter.map(|(extension_id, packets)| (extension_id, AudioLevelMeter::new(packets)));
        Ok(())
    }

    /// Reports a source's RFC 4733 events (`Event::TelephoneEvent`) carried with `payload_type`,
    /// or stops (`None`).
    pub fn set_telephone_events(&mut self, source: u32, payload_type: Option<u8>) -> Result<(), String> {
        let src = self.sources.get_mut(&source).ok_or_else(|| format!("no source {source}"))?;
        src.telephone_events = payload_type.map(TelephoneEventDetector::new);
        Ok(())
    }

    /// A home source of this router, as outputs refer to it.
    pub fn source_ref(&self, id: u32) -> Option<SourceRef> {
        self.sources.get(&id).map(|s| SourceRef { id, home: self.worker, codec: s.config.codec, clock_rate: s.config.clock_rate, kind: s.config.kind })
    }

    /// Adds an output, fed by `source` when given (which asks that source for a keyframe at
    /// `now_us`, like a switch).
    pub fn add_output(&mut self, id: u32, endpoint: u32, config: &OutputConfig, source: Option<SourceRef>, now_us: u64, io: &mut impl RouterIo) -> Result<(), String> {
        let ep = self.endpoints.get_mut(&endpoint).ok_or_else(|| format!("no endpoint {endpoint}"))?;
        if ep.outputs_by_ssrc.contains_key(&config.ssrc) {
            return Err(format!("endpoint {endpoint} already has an output with SSRC {}", config.ssrc));
        }
        if let Some(r) = &source {
            self.check_source(r)?;
        }
        let ep = self.endpoints.get_mut(&endpoint).ok_or_else(|| format!("no endpoint {endpoint}"))?;
        ep.outputs_by_ssrc.insert(config.ssrc, id);
        self.outputs.insert(
            id,
            Output {
                endpoint,
                source: None,
                pending_source: None,
                ssrc: config.ssrc,
                payload_type: config.payload_type,
                payload_map: Vec::new(),
                paused: false,
                switching: SwitchingContext::new(),
                stats: StreamStats::default(),
                rtx: config.rtx,
                // RFC 4588 §4: the RTX stream starts at a random sequence number; the SSRC
                // gives a per-output spread without a random source in this sans-IO code.
                rtx_seq: (config.ssrc.rotate_left(13) ^ id) as u16,
                rtx_tokens: RETRANSMISSION_BURST,
                rtx_refilled_us: now_us,
                pictures: None,
                svc: SvcSelector::default(),
                temporal_target: None,
                temporal_pending: None,
                auto: None,
            },
        );
        if source.is_some() {
            self.switch_output(id, source, false, now_us, io)?;
        }
        Ok(())
    }

    fn check_source(&self, r: &SourceRef) -> Result<(), String> {
        if r.home == self.worker && !self.sources.contains_key(&r.id) {
            return Err(format!("no source {}", r.id));
        }
        Ok(())
    }

    /// Makes sure this router has a feed for `r`, subscribing at its home when it is remote.
    fn ensure_feed(&mut self, r: &SourceRef, io: &mut impl RouterIo) {
        if self.feeds.contains_key(&r.id) {
            return;
        }
        self.last_subscription = self.last_subscription.wrapping_add(1);
        let subscription = self.last_subscription;
        self.feeds.insert(r.id, Feed { home: r.home, codec: r.codec, clock_rate: r.clock_rate, outputs: Vec::new(), subscription, last_seq: None, history: history_for(r.kind) });
        if r.home != self.worker {
            io.message(r.home, PeerMessage::Subscribe { source: r.id, worker: self.worker, subscription });
        }
    }

    fn join_feed(&mut self, source: u32, output: u32) {
        if let Some(feed) = self.feeds.get_mut(&source) {
            if !feed.outputs.contains(&output) {
                feed.outputs.push(output);
            }
        }
    }

    /// Takes an output off a source's feed; a remote feed left without outputs is dropped and
    /// its home told to stop sending.
    fn leave_feed(&mut self, source: u32, output: u32, io: &mut impl RouterIo) {
        let Some(feed) = self.feeds.get_mut(&source) else { return };
        feed.outputs.retain(|&o| o != output);
        if feed.outputs.is_empty() && feed.home != self.worker {
            let home = feed.home;
            self.feeds.remove(&source);
            io.message(home, PeerMessage::Unsubscribe { source, worker: self.worker });
        }
    }

    /// Feeds the output from another source (or none); see `Engine::switch_output`.
    pub fn switch_output(&mut self, id: u32, source: Option<SourceRef>, on_keyframe: bool, now_us: u64, io: &mut impl RouterIo) -> Result<(), String> {
        if let Some(r) = &source {
            self.check_source(r)?;
        }
        let out = self.outputs.get_mut(&id).ok_or_else(|| format!("no output {id}"))?;
        let old = out.source;
        let new = source.map(|r| r.id);
        // A later switch replaces a pending one.
        if let Some(pending) = out.pending_source.take() {
            if Some(pending) != old && Some(pending) != new {
                self.leave_feed(pending, id, io);
            }
        }
        let old_is_live = old.is_some_and(|o| self.feeds.contains_key(&o));
        let new_has_codec = source.is_some_and(|r| r.codec.is_some());
        if let Some(r) = &source {
            self.ensure_feed(r, io);
            self.join_feed(r.id, id);
        }
        if on_keyframe && old != new && old_is_live && new_has_codec {
            if let (Some(out), Some(new)) = (self.outputs.get_mut(&id), new) {
                out.pending_source = Some(new);
                self.request_keyframe(new, true, now_us, io);
            }
            return Ok(());
        }
        if let Some(out) = self.outputs.get_mut(&id) {
            out.source = new;
        }
        if let Some(old) = old {
            if Some(old) != new {
                self.leave_feed(old, id, io);
            }
        }
        // A new subscriber (or a switch) needs a keyframe to start decoding.
        if let Some(new) = new {
            if old != Some(new) {
                self.request_keyframe(new, true, now_us, io);
            }
        }
        Ok(())
    }

    /// Sets (or clears) the RFC 4588 stream an output retransmits on, once the subscriber's
    /// answer says whether it takes RTX.
    /// Per payload type, what an output writes instead of its `payload_type` (`Some`), or that it
    /// does not send such packets (`None`): a bridge whose two sides number a codec or RFC 4733
    /// events differently, or where one side has no events. Replaces the previous map.
    pub fn set_output_payload_map(&mut self, id: u32, map: Vec<(u8, Option<u8>)>) -> Result<(), String> {
        let out = self.outputs.get_mut(&id).ok_or_else(|| format!("no output {id}"))?;
        if map.len() > MAX_PAYLOAD_MAP {
            return Err(format!("a payload map has at most {MAX_PAYLOAD_MAP} entries"));
        }
        if map.iter().any(|&(from, to)| from > 127 || to.is_some_and(|t| t > 127)) {
            return Err("payload types are 0..127".into());
        }
        out.payload_map = map;
        Ok(())
    }

    pub fn set_output_rtx(&mut self, id: u32, rtx: Option<RtxConfig>) -> Result<(), String> {
        let out = self.outputs.get_mut(&id).ok_or_else(|| format!("no output {id}"))?;
        out.rtx = rtx;
        Ok(())
    }

    /// The highest VP8 temporal layer an output forwards (`None`: all). Lowering takes effect at
    /// once (higher layers are never references for lower ones, RFC 7741 §4.2); raising waits for
    /// a frame with the layer-sync bit (or a base-layer frame start) so the decoder has its
    /// references. An `Event::OutputTemporal` reports the change once it happened.
    pub fn set_output_temporal(&mut self, id: u32, layer: Option<u8>) -> Result<(), String> {
        let out = self.outputs.get_mut(&id).ok_or_else(|| format!("no output {id}"))?;
        let lowering = match (layer, out.temporal_target) {
            (Some(new), Some(old)) => new <= old,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if lowering {
            out.temporal_target = layer;
            out.temporal_pending = None;
            self.events.push(Event::OutputTemporal { endpoint: out.endpoint, output: id, layer: layer.unwrap_or(u8::MAX) });
        } else {
            out.temporal_pending = Some(layer.unwrap_or(u8::MAX));
        }
        Ok(())
    }

    /// Turns send-side bandwidth estimation on for an endpoint (or off): every RTP packet ferry
    /// sends it carries the transport-wide sequence number under `extension_id`, and the
    /// receiver's transport-cc feedback drives the estimate and the layers of its outputs.
    pub fn set_send_bwe(&mut self, endpoint: u32, config: Option<BweConfig>, now_us: u64, io: &mut impl RouterIo) -> Result<(), String> {
        let ep = self.endpoint_mut(endpoint)?;
        match config {
            Some(c) if c.extension_id == 0 => return Err("transport-wide sequence extension id must be 1..=255".into()),
            Some(c) => {
                // Renegotiation keeps the estimate; only the id may change.
                match ep.bwe.as_mut() {
                    Some(bwe) => bwe.extension_id = c.extension_id,
                    None => ep.bwe = Some(SendBwe::new(&c)),
                }
            }
            None => ep.bwe = None,
        }
        self.choose_layers(endpoint, now_us, io);
        Ok(())
    }

    /// Lets an output choose among simulcast layers (lowest first) by its transport's estimate,
    /// up to `set.preferred` (and VP8 temporal layers up to `set.temporal_max`); `None` hands the
    /// choice back to `switch_output`. Without an estimate the preferred layer is taken. Layer
    /// changes happen at the new layer's keyframe (`Event::OutputSwitched`), temporal ones as
    /// `set_output_temporal` does (`Event::OutputTemporal`).
    pub fn set_output_layers(&mut self, id: u32, set: Option<LayerSet>, now_us: u64, io: &mut impl RouterIo) -> Result<(), String> {
        if let Some(set) = &set {
            if set.layers.is_empty() {
                return Err("a layer set needs at least one layer".into());
            }
            for r in &set.layers {
                self.check_source(r)?;
            }
        }
        let out = self.outputs.get_mut(&id).ok_or_else(|| format!("no output {id}"))?;
        let endpoint = out.endpoint;
        out.auto = set.map(|set| {
            // The layer now feeding the output, if it is one of the set.
            let chosen = out.pending_source.or(out.source).and_then(|s| set.layers.iter().position(|r| r.id == s));
            AutoLayers { set, chosen, chosen_temporal: None, last_down_us: 0 }
        });
        self.choose_layers(endpoint, now_us, io);
        Ok(())
    }

    /// Chooses the layers of an endpoint's outputs that have layer sets (see `bandwidth`), and
    /// applies what changed; sets the transport's probing.
    fn choose_layers(&mut self, endpoint: u32, now_us: u64, io: &mut impl RouterIo) {
        let Some(ep) = self.endpoints.get(&endpoint) else { return };
        let auto: Vec<u32> = ep.outputs_by_ssrc.values().copied().filter(|o| self.outputs.get(o).is_some_and(|o| o.auto.is_some())).collect();
        if auto.is_empty() {
            if let Some(bwe) = self.endpoints.get_mut(&endpoint).and_then(|ep| ep.bwe.as_mut()) {
                bwe.probe_permille = 0;
                bwe.limited = false;
            }
            return;
        }
        let budget = ep.bwe.as_ref().map(|b| b.estimator.estimate_bps());
        // What the other outputs (audio, plain video) take first.
        let fixed: u64 = ep
            .outputs_by_ssrc
            .values()
            .filter_map(|o| self.outputs.get(o))
            .filter(|o| o.auto.is_none() && !o.paused)
            .filter_map(|o| o.source)
            .map(|s| self.rates.get(s).bps)
            .sum();
        let mut demands = Vec::with_capacity(auto.len());
        for oid in &auto {
            let Some(a) = self.outputs.get(oid).and_then(|o| o.auto.as_ref()) else { continue };
            let rates: Vec<SourceRate> = a.set.layers.iter().map(|r| self.rates.get(r.id)).collect();
            demands.push(LayerDemand {
                rates: rates.iter().map(|r| r.bps).collect(),
                preferred: a.set.preferred,
                current: a.chosen,
                may_rise: now_us.saturating_sub(a.last_down_us) >= bandwidth::RISE_HOLD_US || a.last_down_us == 0,
                temporal_max: a.set.temporal_max,
                temporal_permille: rates.iter().map(|r| r.temporal_permille).collect(),
            });
        }
        let (choices, probe_target) = bandwidth::choose_layers(budget.map(|b| b.saturating_sub(fixed)), &demands);
        let mut spend = fixed;
        let mut limited = false;
        for (oid, choice) in auto.iter().zip(&choices) {
            limited |= choice.limited;
            let Some(out) = self.outputs.get_mut(oid) else { continue };
            let Some(a) = out.auto.as_mut() else { continue };
            let Some(layer) = a.set.layers.get(choice.layer).copied() else { continue };
            spend += self.rates.get(layer.id).bps;
            let went_down = a.chosen.is_some_and(|c| choice.layer < c);
            if went_down {
                a.last_down_us = now_us.max(1);
            }
            let layer_changed = a.chosen != Some(choice.layer) || out.pending_source.or(out.source) != Some(layer.id);
            a.chosen = Some(choice.layer);
            let temporal_changed = a.chosen_temporal != Some(choice.temporal);
            a.chosen_temporal = Some(choice.temporal);
            if layer_changed {
                let _ = self.switch_output(*oid, Some(layer), true, now_us, io);
            }
            if temporal_changed {
                let _ = self.set_output_temporal(*oid, choice.temporal);
            }
        }
        let Some(bwe) = self.endpoints.get_mut(&endpoint).and_then(|ep| ep.bwe.as_mut()) else { return };
        bwe.limited = limited;
        let may_probe = bwe.estimator.usage() == ferry_rtp::bwe::Usage::Normal && now_us.saturating_sub(bwe.last_decrease_us) >= bandwidth::PROBE_HOLD_US;
        bwe.probe_permille = match probe_target {
            Some(target) if may_probe => bandwidth::probe_permille(spend, target.saturating_sub(fixed) + fixed),
            _ => 0,
        };
    }

    /// VP9 SVC: the highest spatial and temporal layers an output forwards (`None`: all).
    /// Lowering takes effect at once; a higher temporal layer waits for a switching-up point,
    /// a higher spatial layer for a keyframe, which is asked for (RFC 9628 §4.3). The drops
    /// are closed over in the output's numbering and the last packet sent of each picture gets
    /// the marker bit. `Event::OutputSpatial` / `Event::OutputTemporal` report the changes.
    pub fn set_output_svc(&mut self, id: u32, spatial: Option<u8>, temporal: Option<u8>, now_us: u64, io: &mut impl RouterIo) -> Result<(), String> {
        let out = self.outputs.get_mut(&id).ok_or_else(|| format!("no output {id}"))?;
        let (change, needs_keyframe) = out.svc.choose(spatial, temporal);
        push_svc_events(&mut self.events, out.endpoint, id, change);
        if let (true, Some(source)) = (needs_keyframe, out.source) {
            self.request_keyframe(source, true, now_us, io);
        }
        Ok(())
    }

    pub fn pause_output(&mut self, id: u32, paused: bool) -> Result<(), String> {
        let out = self.outputs.get_mut(&id).ok_or_else(|| format!("no output {id}"))?;
        out.paused = paused;
        Ok(())
    }

    pub fn remove_output(&mut self, id: u32, io: &mut impl RouterIo) -> Result<(), String> {
        let out = self.outputs.remove(&id).ok_or_else(|| format!("no output {id}"))?;
        for sid in [out.source, out.pending_source].into_iter().flatten() {
            self.leave_feed(sid, id, io);
        }
        if let Some(ep) = self.endpoints.get_mut(&out.endpoint) {
            if ep.outputs_by_ssrc.get(&out.ssrc) == Some(&id) {
                ep.outputs_by_ssrc.remove(&out.ssrc);
            }
        }
        Ok(())
    }

    /// Asks for a keyframe of `source`: relayed to the publisher here when the source is
    /// home, else sent to its home router.
    pub fn request_keyframe(&mut self, source: u32, force: bool, now_us: u64, io: &mut impl RouterIo) {
        if self.sources.contains_key(&source) {
            self.relay_keyframe_request(source, force, now_us, io);
        } else if let Some(feed) = self.feeds.get(&source) {
            io.message(feed.home, PeerMessage::KeyframeRequest { source, force });
        }
    }

    pub fn has_source(&self, id: u32) -> bool {
        self.sources.contains_key(&id)
    }

    /// A message from another router.
    pub fn on_message(&mut self, message: PeerMessage, now_us: u64, io: &mut impl RouterIo) {
        match message {
            PeerMessage::Subscribe { source, worker, subscription } => match self.sources.get_mut(&source) {
                Some(src) => {
                    if worker != self.worker {
                        // A new subscription of the same router replaces its old one.
                        src.subscribers.retain(|s| s.worker != worker);
                        src.subscribers.push(Handoff { worker, subscription, seq: 0 });
                    }
                }
                // Removed meanwhile: the subscriber's feed must not wait forever.
                None => io.message(worker, PeerMessage::SourceGone { source }),
            },
            PeerMessage::Unsubscribe { source, worker } => {
                if let Some(src) = self.sources.get_mut(&source) {
                    src.subscribers.retain(|s| s.worker != worker);
                }
            }
            PeerMessage::KeyframeRequest { source, force } => self.relay_keyframe_request(source, force, now_us, io),
            PeerMessage::SourceGone { source } => {
                if self.feeds.get(&source).is_some_and(|f| f.home != self.worker) {
                    self.drop_feed(source);
                }
            }
        }
    }

    // ---- packets ---------------------------------------------------------------------------

    /// One datagram received on an endpoint; RFC 7983 §7 demultiplexing on the first byte.
    /// `buf` holds the datagram in its first `len` bytes and is decrypted in place.
    pub fn on_datagram(&mut self, endpoint: u32, buf: &mut [u8], len: usize, from: SocketAddr, now_us: u64, io: &mut impl RouterIo) {
        let Some(ep) = self.endpoints.get_mut(&endpoint) else { return };
        let len = len.min(buf.len());
        ep.stats.rx_packets += 1;
        ep.stats.rx_bytes += len as u64;
        let Some(&first) = buf[..len].first() else {
            ep.stats.demux_unknown += 1;
            return;
        };
        match first {
            0..=3 => Self::on_stun(ep, &mut self.stun_out, &mut self.events, &buf[..len], from, now_us, io),
            20..=63 => {
                if !ep.accepts_from(from) {
                    ep.stats.unvalidated_drops += 1;
                    return;
                }
                ep.stats.dtls_in += 1;
                self.events.push(Event::Dtls { endpoint, from, data: buf[..len].to_vec() });
            }
            128..=191 => {
                if !ep.accepts_from(from) {
                    ep.stats.unvalidated_drops += 1;
                    return;
                }
                if ep.ice.is_none() && ep.latch && ep.remote.is_none() {
                    ep.remote = Some(from);
                    self.events.push(Event::RemoteLatched { endpoint, address: from });
                }
                if rtp::is_rtcp(&buf[..len]) {
                    self.on_rtcp(endpoint, buf, len, now_us, io);
                } else {
                    self.on_rtp(endpoint, buf, len, now_us, io);
                }
            }
            _ => ep.stats.demux_unknown += 1,
        }
    }

    fn on_stun(ep: &mut Endpoint, out: &mut Vec<u8>, events: &mut Vec<Event>, data: &[u8], from: SocketAddr, now_us: u64, io: &mut impl RouterIo) {
        let Some(agent) = ep.ice.as_mut() else {
            ep.stats.stun_dropped += 1;
            return;
        };
        if !ferry_stun::is_stun(data) {
            ep.stats.stun_dropped += 1;
            return;
        }
        ep.stats.stun_requests += 1;
        match agent.handle(data, from, now_us / 1000, out) {
            StunOutcome::Reply { .. } => ep.stats.stun_replies += 1,
            StunOutcome::ErrorReply { .. } => ep.stats.stun_error_replies += 1,
            StunOutcome::Drop(_) => {
                ep.stats.stun_dropped += 1;
                return;
            }
        }
        while let Some(ev) = agent.take_event() {
            if let IceEvent::Selected(address) = ev {
                ep.remote = Some(address);
                events.push(Event::IceSelected { endpoint: ep.id, address });
            }
        }
        if out.is_empty() || out.len() > MAX_DATAGRAM {
            return;
        }
        match io.transmit_slot() {
            Some(slot) => {
                slot[..out.len()].copy_from_slice(out);
                io.commit_transmit(out.len(), ep.transport, ep.id, &from);
            }
            None => ep.stats.tx_failed += 1,
        }
    }

    fn on_rtp(&mut self, id: u32, buf: &mut [u8], mut len: usize, now_us: u64, io: &mut impl RouterIo) {
        let Some(ep) = self.endpoints.get_mut(&id) else { return };
        ep.stats.rtp_in += 1;
        if let Some(ctx) = ep.srtp_in.as_mut() {
            match ctx.unprotect_rtp(buf, len) {
                Ok(n) => len = n,
                Err(e) => {
                    count_srtp_error(&mut ep.stats, e);
                    return;
                }
            }
        } else if ep.ice.is_some() {
            // A WebRTC endpoint never carries plain RTP (RFC 8827 §6.5): no keys yet means drop.
            ep.stats.no_srtp_drops += 1;
            return;
        }
        let mut hdr = match rtp::parse_rtp(&buf[..len]) {
            Ok(h) => h,
            Err(_) => {
                ep.stats.rtp_malformed += 1;
                return;
            }
        };
        // RFC 4588 §4: a retransmission on the publisher's RTX stream becomes the original
        // packet again (original sequence number, SSRC and payload type) before anything else.
        if let Some(&sid) = ep.rtx_sources_by_ssrc.get(&hdr.ssrc) {
            let restored = self.sources.get(&sid).and_then(|src| Some((src.config.ssrc, src.media_payload_type?)));
            match restored.and_then(|(ssrc, pt)| unwrap_rtx(buf, len, &hdr, ssrc, pt)) {
                Some((n, h)) => {
                    len = n;
                    hdr = h;
                    ep.stats.rtx_in += 1;
                }
                None => {
                    ep.stats.rtp_malformed += 1;
                    return;
                }
            }
        }
        let plain = &buf[..len];
        if let Some(twcc) = ep.twcc.as_mut() {
            // Every packet on the transport counts for the sender's estimate, known SSRC or not.
            if let Some(&[hi, lo, ..]) = rtp::find_extension(plain, &hdr, twcc.extension_id) {
                twcc.recorder.record(u16::from_be_bytes([hi, lo]), now_us);
                twcc.media_ssrc = hdr.ssrc;
            }
        }
        let Some(&sid) = ep.sources_by_ssrc.get(&hdr.ssrc) else {
            ep.stats.unknown_ssrc += 1;
            if ep.reported_unknown.len() < MAX_REPORTED_UNKNOWN_SSRCS && ep.reported_unknown.insert(hdr.ssrc) {
                let rid = ep
                    .rid_extension_id
                    .and_then(|rid_id| rtp::find_extension(plain, &hdr, rid_id))
                    .and_then(|b| std::str::from_utf8(b).ok())
                    .map(|s| s.to_string());
                self.events.push(Event::UnknownSsrc { endpoint: id, ssrc: hdr.ssrc, payload_type: hdr.payload_type, rid });
            }
            return;
        };
        let Some(src) = self.sources.get_mut(&sid) else { return };
        src.stats.packets += 1;
        src.stats.bytes += len as u64;
        let temporal = match src.config.codec {
            Some(ferry_rtp::VideoCodec::Vp8) => hdr.payload(plain).and_then(vp8::parse).and_then(|d| d.temporal).map(|t| t.0),
            Some(ferry_rtp::VideoCodec::Vp9) => hdr.payload(plain).and_then(vp9::parse).and_then(|d| d.layer).map(|l| l.temporal),
            _ => None,
        };
        if let Some(tid) = temporal {
            src.temporal_bytes[usize::from(tid.min(3))] += len as u64;
        }
        src.media_payload_type = Some(hdr.payload_type);
        src.reception.update(hdr.sequence);
        if let Some(nack) = src.nack.as_mut() {
            nack.on_packet(hdr.sequence, now_us);
        }
        if let Some((extension_id, meter)) = src.audio_level.as_mut() {
            // Packets without the element do not count.
            if let Some(average) = rtp::audio_level(plain, &hdr, *extension_id).and_then(|(_, level)| meter.observe(level)) {
                self.events.push(Event::AudioLevel { endpoint: src.endpoint, source: sid, level: average });
            }
        }
        if let Some(detector) = src.telephone_events.as_mut() {
            if let Some(ev) = hdr.payload(plain).and_then(|payload| detector.observe(hdr.payload_type, hdr.timestamp, payload)) {
                self.events.push(Event::TelephoneEvent { endpoint: src.endpoint, source: sid, event: ev.event, volume: ev.volume, duration: ev.duration });
            }
        }
        // Other threads first, so they work on the packet while this one fans it out too.
        if !src.subscribers.is_empty() {
            self.forward_scratch.clear();
            self.forward_scratch.extend_from_slice(&src.subscribers);
            for sub in &mut src.subscribers {
                sub.seq += 1;
            }
            io.forward(&self.forward_scratch, sid, plain);
        }
        self.fan_out(sid, plain, &hdr, now_us, io);
    }

    /// A decrypted packet of a source homed on another router (see `RouterIo::forward`).
    pub fn on_forwarded(&mut self, source: u32, subscription: u32, seq: u64, packet: &[u8], now_us: u64, io: &mut impl RouterIo) {
        let Some(feed) = self.feeds.get_mut(&source).filter(|f| f.home != self.worker && f.subscription == subscription) else {
            // No longer wanted, or sent for an earlier subscription.
            self.cross.unwanted += 1;
            return;
        };
        self.cross.received += 1;
        // Numbered from 0 per subscription, so packets before the first one received were lost too.
        let gap = match feed.last_seq {
            Some(last) if seq > last => seq - last - 1,
            Some(_) => {
                // Reordered or repeated: the home thread numbers in order, so this is a bug
                // elsewhere; never forward it twice.
                return;
            }
            None => seq,
        };
        feed.last_seq = Some(seq);
        if gap > 0 {
            // A full queue dropped these on the way here: every output of the feed missed them.
            self.cross.gaps += gap;
            for oid in &feed.outputs {
                if let Some(o) = self.outputs.get_mut(oid) {
                    o.stats.queue_drops += gap;
                    o.stats.dropped += gap;
                }
            }
        }
        let Ok(hdr) = rtp::parse_rtp(packet) else { return };
        self.fan_out(source, packet, &hdr, now_us, io);
    }

    /// Rewrites and sends one decrypted packet of `sid` to each output of its feed here,
    /// completing switches that waited for this source's keyframe.
    fn fan_out(&mut self, sid: u32, plain: &[u8], hdr: &rtp::RtpHeader, now_us: u64, io: &mut impl RouterIo) {
        let Some(feed) = self.feeds.get_mut(&sid) else { return };
        if feed.outputs.is_empty() {
            return;
        }
        if let Some(history) = feed.history.as_mut() {
            history.insert(hdr.sequence, plain);
        }
        let feed = &*feed;
        let clock_rate = feed.clock_rate;
        let codec = feed.codec;
        // Decided at most once per packet, and only when some output waits for this source.
        let mut starts_keyframe: Option<bool> = None;
        // The VP8 descriptor, read once per packet for every output's temporal-layer choice.
        let vp8_descriptor = if codec == Some(ferry_rtp::VideoCodec::Vp8) { hdr.payload(plain).and_then(vp8::parse) } else { None };
        let vp9_descriptor = if codec == Some(ferry_rtp::VideoCodec::Vp9) { hdr.payload(plain).and_then(vp9::parse) } else { None };
        for &oid in &feed.outputs {
            let Some(out) = self.outputs.get_mut(&oid) else { continue };
            if out.source != Some(sid) {
                // Listed here only while waiting to switch to this source at a keyframe.
                if out.pending_source != Some(sid) {
                    continue;
                }
                let is_keyframe = *starts_keyframe.get_or_insert_with(|| match (codec, hdr.payload(plain)) {
                    (Some(codec), Some(payload)) => ferry_rtp::is_keyframe(codec, payload),
                    _ => false,
                });
                if !is_keyframe {
                    continue;
                }
                self.completed_switches.push((out.source, oid));
                out.source = Some(sid);
                out.pending_source = None;
                self.events.push(Event::OutputSwitched { endpoint: out.endpoint, output: oid, source: sid });
            }
            if out.paused {
                out.stats.dropped += 1;
                continue;
            }
            if codec == Some(ferry_rtp::VideoCodec::Vp8) {
                if let Some((tid, sync)) = vp8_descriptor.and_then(|d| d.temporal) {
                    let frame_start = vp8_descriptor.is_some_and(|d| d.frame_start);
                    if let Some(pending) = out.temporal_pending {
                        // Up at a frame the decoder can take: layer sync, or the base layer.
                        if frame_start && (sync || tid == 0) {
                            out.temporal_target = (pending != u8::MAX).then_some(pending);
                            out.temporal_pending = None;
                            self.events.push(Event::OutputTemporal { endpoint: out.endpoint, output: oid, layer: pending });
                        }
                    }
                    if out.temporal_target.is_some_and(|target| tid > target) {
                        // Not sent: the output's numbering closes over it, so no loss shows.
                        out.switching.skip(u64::from(sid), hdr.sequence);
                        out.stats.filtered += 1;
                        continue;
                    }
                }
                if out.pictures.is_none() {
                    out.pictures = Some(PictureRewriter::Vp8(Vp8Rewriter::new()));
                }
            }
            let mut marker = None;
            if let Some(d) = &vp9_descriptor {
                let mut change = SvcChange::default();
                let verdict = out.svc.judge(d, &mut change);
                push_svc_events(&mut self.events, out.endpoint, oid, change);
                match verdict {
                    SvcVerdict::Drop => {
                        out.switching.skip(u64::from(sid), hdr.sequence);
                        out.stats.filtered += 1;
                        continue;
                    }
                    SvcVerdict::Forward { end_of_picture } => marker = end_of_picture.then_some(true),
                }
                if out.pictures.is_none() {
                    out.pictures = Some(PictureRewriter::Vp9(Vp9Rewriter::new()));
                }
            }
            if out.payload_type_for(hdr.payload_type).is_none() {
                // Not a type this output's receiver takes: its numbering closes over it.
                out.switching.skip(u64::from(sid), hdr.sequence);
                out.stats.filtered += 1;
                continue;
            }
            let Some((seq, ts)) = out.switching.process(u64::from(sid), hdr.sequence, hdr.timestamp, now_us, clock_rate) else {
                out.stats.dropped += 1;
                continue;
            };
            let Some(out_ep) = self.endpoints.get_mut(&out.endpoint) else { continue };
            let Some(dest) = out_ep.remote else {
                out_ep.stats.no_remote_drops += 1;
                out.stats.dropped += 1;
                continue;
            };
            write_packet(io, out, out_ep, plain, hdr, sid, (seq, ts, marker), dest, Sent::Media, now_us);
            probe(io, out, out_ep, plain, hdr, seq, ts, dest, now_us);
        }
        // The switched outputs leave their old sources' feeds.
        let mut completed = std::mem::take(&mut self.completed_switches);
        for (old, oid) in completed.drain(..) {
            if let Some(old) = old {
                self.leave_feed(old, oid, io);
            }
        }
        self.completed_switches = completed;
    }

    fn on_rtcp(&mut self, id: u32, buf: &mut [u8], mut len: usize, now_us: u64, io: &mut impl RouterIo) {
        let Some(ep) = self.endpoints.get_mut(&id) else { return };
        ep.stats.rtcp_in += 1;
        if let Some(ctx) = ep.srtp_in.as_mut() {
            match ctx.unprotect_rtcp(buf, len) {
                Ok(n) => len = n,
                Err(_) => {
                    ep.stats.srtcp_failures += 1;
                    return;
                }
            }
        } else if ep.ice.is_some() {
            ep.stats.no_srtp_drops += 1;
            return;
        }
        let feedback = match rtcp::parse_feedback(&buf[..len]) {
            Ok(f) => f,
            Err(_) => {
                ep.stats.rtcp_malformed += 1;
                return;
            }
        };
        let mut keyframe_sources: Vec<u32> = Vec::new();
        let mut remb: Option<u64> = None;
        let mut nacks: Vec<(u32, Vec<u16>)> = Vec::new();
        let mut transport_feedback = false;
        for fb in feedback {
            match fb {
                rtcp::Feedback::Nack { media_ssrc, lost, .. } => {
                    if let Some(&oid) = ep.outputs_by_ssrc.get(&media_ssrc) {
                        nacks.push((oid, lost));
                    }
                }
                rtcp::Feedback::Pli { media_ssrc, .. } | rtcp::Feedback::Fir { media_ssrc, .. } => {
                    if let Some(src) = ep.outputs_by_ssrc.get(&media_ssrc).and_then(|oid| self.outputs.get(oid)).and_then(|o| o.source) {
                        if !keyframe_sources.contains(&src) {
                            keyframe_sources.push(src);
                        }
                    }
                }
                rtcp::Feedback::Remb { bitrate_bps, .. } => remb = Some(bitrate_bps),
                rtcp::Feedback::TransportCc { .. } => transport_feedback = true,
                rtcp::Feedback::ReceiverReport { blocks, .. } => {
                    // Loss the receiver saw on what ferry sends it: reported (rate-limited) for slowlink.
                    let due = ep.last_loss_report_us == 0 || now_us.saturating_sub(ep.last_loss_report_us) >= REMB_EVENT_INTERVAL_US;
                    if due {
                        if let Some(b) = blocks.iter().filter(|b| ep.outputs_by_ssrc.contains_key(&b.ssrc)).max_by_key(|b| b.fraction_lost) {
                            ep.last_loss_report_us = now_us.max(1);
                            self.events.push(Event::ReceiverLoss { endpoint: id, ssrc: b.ssrc, fraction_lost: b.fraction_lost, cumulative_lost: b.cumulative_lost });
                        }
                    }
                }
                _ => {}
            }
        }
        if let Some(bitrate_bps) = remb {
            if ep.last_remb_us == 0 || now_us.saturating_sub(ep.last_remb_us) >= REMB_EVENT_INTERVAL_US {
                ep.last_remb_us = now_us.max(1);
                self.events.push(Event::Remb { endpoint: id, bitrate_bps });
            }
        }
        if transport_feedback {
            self.on_transport_feedback(id, &buf[..len], now_us, io);
        }
        for src in keyframe_sources {
            self.request_keyframe(src, false, now_us, io);
        }
        for (oid, lost) in nacks {
            self.retransmit(oid, &lost, now_us, io);
        }
    }

    /// Transport-cc feedback (draft-holmer-rmcat-transport-wide-cc-extensions-01 §3.1) on what
    /// ferry sent this endpoint: into its estimator; the layers follow the estimate.
    fn on_transport_feedback(&mut self, id: u32, compound: &[u8], now_us: u64, io: &mut impl RouterIo) {
        let Some(ep) = self.endpoints.get_mut(&id) else { return };
        let Some(bwe) = ep.bwe.as_mut() else { return };
        for packet in rtcp::packets(compound).map_while(Result::ok) {
            if packet.packet_type == rtcp::PT_RTPFB && packet.count_or_fmt == rtcp::FMT_TRANSPORT_CC {
                if let Some(bytes) = compound.get(packet.offset..packet.offset + packet.len) {
                    if bwe.estimator.on_feedback(bytes, now_us) {
                        bwe.feedback_received += 1;
                    }
                }
            }
        }
        bwe.note_estimate(now_us);
        if now_us.saturating_sub(bwe.last_choice_us) >= bandwidth::CHOOSE_INTERVAL_US {
            bwe.last_choice_us = now_us;
            self.choose_layers(id, now_us, io);
        }
        self.report_estimate(id, now_us);
    }

    /// `Event::BandwidthEstimate` when due (see `SendBwe::event_due`).
    fn report_estimate(&mut self, id: u32, now_us: u64) {
        let Some(bwe) = self.endpoints.get_mut(&id).and_then(|ep| ep.bwe.as_mut()) else { return };
        if !bwe.event_due(now_us) {
            return;
        }
        let bitrate_bps = bwe.estimator.estimate_bps();
        bwe.last_event_us = now_us.max(1);
        bwe.last_event_bps = bitrate_bps;
        bwe.last_event_limited = bwe.limited;
        let rtt_ms = bwe.estimator.rtt_us().map_or(0, |us| (us / 1000) as u32);
        self.events.push(Event::BandwidthEstimate { endpoint: id, bitrate_bps, loss_permille: bwe.estimator.loss_permille(), rtt_ms, limited: bwe.limited });
    }

    /// Answers a generic NACK (RFC 4585 §6.2.1) for an output: each packet still in its
    /// source's history is sent again with the output's numbering, as RFC 4588 RTX when the
    /// subscriber negotiated it, else as it was; within the output's retransmission rate.
    fn retransmit(&mut self, oid: u32, lost: &[u16], now_us: u64, io: &mut impl RouterIo) {
        let Some(out) = self.outputs.get_mut(&oid) else { return };
        let refill = now_us.saturating_sub(out.rtx_refilled_us) * RETRANSMISSIONS_PER_SECOND / 1_000_000;
        if refill > 0 {
            out.rtx_tokens = (u64::from(out.rtx_tokens) + refill).min(u64::from(RETRANSMISSION_BURST)) as u32;
            out.rtx_refilled_us = now_us;
        }
        let Some(out_ep) = self.endpoints.get_mut(&out.endpoint) else { return };
        let Some(dest) = out_ep.remote else { return };
        for &out_seq in lost {
            out.stats.nacked += 1;
            let found = out.switching.source_packet(out_seq).and_then(|(sid, seq, ts_offset)| {
                let bytes = self.feeds.get(&u32::try_from(sid).ok()?)?.history.as_ref()?.get(seq)?;
                Some((bytes, ts_offset))
            });
            let Some((bytes, ts_offset)) = found else {
                out.stats.rtx_missed += 1;
                continue;
            };
            if out.rtx_tokens == 0 {
                out.stats.rtx_missed += 1;
                continue;
            }
            let Ok(hdr) = rtp::parse_rtp(bytes) else {
                out.stats.rtx_missed += 1;
                continue;
            };
            out.rtx_tokens -= 1;
            let ts = hdr.timestamp.wrapping_add(ts_offset);
            match out.rtx {
                Some(rtx) => {
                    if write_rtx(io, out, rtx, out_ep, bytes, &hdr, out_seq, ts, dest, now_us) {
                        out.stats.retransmitted += 1;
                    } else {
                        out.stats.rtx_missed += 1;
                    }
                }
                None => write_packet(io, out, out_ep, bytes, &hdr, sid_of(out), (out_seq, ts, None), dest, Sent::Retransmission, now_us),
            }
        }
    }

    /// Sends a PLI (RFC 4585 §6.3.1) for a home `source` to its publisher, at most once per
    /// KEYFRAME_MIN_INTERVAL_US unless `force`d.
    fn relay_keyframe_request(&mut self, source: u32, force: bool, now_us: u64, io: &mut impl RouterIo) {
        let Some(src) = self.sources.get_mut(&source) else { return };
        if !force {
            if let Some(last) = src.last_keyframe_request_us {
                if now_us.saturating_sub(last) < KEYFRAME_MIN_INTERVAL_US {
                    return;
                }
            }
        }
        src.last_keyframe_request_us = Some(now_us);
        let media_ssrc = src.config.ssrc;
        let Some(ep) = self.endpoints.get_mut(&src.endpoint) else { return };
        let Some(dest) = ep.remote else { return };
        let pli = rtcp::build_pli(FEEDBACK_SENDER_SSRC, media_ssrc);
        if queue_rtcp(io, ep, &pli, dest) {
            ep.stats.keyframe_requests_relayed += 1;
            self.events.push(Event::KeyframeRequested { source });
        }
    }

    /// After a batch of datagrams from one endpoint: NACKs for what its publishers' streams
    /// are missing, and transport-cc feedback when due.
    pub fn after_batch(&mut self, endpoint: u32, now_us: u64, io: &mut impl RouterIo) {
        if let Some(ep) = self.endpoints.get(&endpoint) {
            self.nack_scratch_sources.clear();
            self.nack_scratch_sources.extend(ep.sources_by_ssrc.values().copied());
            for i in 0..self.nack_scratch_sources.len() {
                let sid = self.nack_scratch_sources[i];
                self.send_nacks(sid, now_us, io);
            }
        }
        self.send_transport_feedback(endpoint, now_us, TWCC_FEEDBACK_INTERVAL_US, io);
    }

    /// A generic NACK (RFC 4585 §6.2.1) to a source's publisher for the packets its stream is
    /// missing now, when any.
    fn send_nacks(&mut self, sid: u32, now_us: u64, io: &mut impl RouterIo) {
        let Some(src) = self.sources.get_mut(&sid) else { return };
        let Some(nack) = src.nack.as_mut() else { return };
        self.nack_scratch.clear();
        nack.poll(now_us, &mut self.nack_scratch);
        let stats = nack.stats();
        src.stats.nacked = stats.requested;
        src.stats.retransmitted = stats.recovered;
        src.stats.rtx_missed = stats.given_up;
        if self.nack_scratch.is_empty() {
            return;
        }
        let media_ssrc = src.config.ssrc;
        let Some(ep) = self.endpoints.get_mut(&src.endpoint) else { return };
        let Some(dest) = ep.remote else { return };
        // One RTCP packet holds up to its item limit; what is left is asked for next time.
        let packet = rtcp::build_nack(FEEDBACK_SENDER_SSRC, media_ssrc, &self.nack_scratch);
        if queue_rtcp(io, ep, &packet, dest) {
            ep.stats.nacks_sent += 1;
        }
    }

    /// Sends transport-cc feedback for what an endpoint received, at most every `min_interval_us`
    /// (draft-holmer-rmcat-transport-wide-cc-extensions-01 §3.1; libwebrtc sends every 50–250 ms).
    fn send_transport_feedback(&mut self, id: u32, now_us: u64, min_interval_us: u64, io: &mut impl RouterIo) {
        let Some(ep) = self.endpoints.get_mut(&id) else { return };
        let Some(dest) = ep.remote else { return };
        let Some(twcc) = ep.twcc.as_mut() else { return };
        if twcc.recorder.pending() == 0 || now_us.saturating_sub(twcc.last_feedback_us) < min_interval_us {
            return;
        }
        twcc.last_feedback_us = now_us;
        self.feedback_scratch.clear();
        twcc.recorder.build_feedback(FEEDBACK_SENDER_SSRC, twcc.media_ssrc, &mut self.feedback_scratch);
        for fb in &self.feedback_scratch {
            if queue_rtcp(io, ep, fb, dest) {
                ep.stats.transport_feedback_sent += 1;
            }
        }
    }

    /// Periodic work: uplink loss per source, NACK retries while a stream is silent,
    /// transport-cc for the tail of a burst, ICE consent.
    pub fn on_timer(&mut self, now_us: u64, io: &mut impl RouterIo) {
        self.nack_scratch_sources.clear();
        self.nack_scratch_sources.extend(self.sources.iter().filter(|(_, s)| s.nack.as_ref().is_some_and(|n| n.pending() > 0)).map(|(&id, _)| id));
        for i in 0..self.nack_scratch_sources.len() {
            let sid = self.nack_scratch_sources[i];
            self.send_nacks(sid, now_us, io);
        }
        for (&id, src) in self.sources.iter_mut() {
            if now_us.saturating_sub(src.last_loss_check_us) < LOSS_INTERVAL_US {
                continue;
            }
            src.last_loss_check_us = now_us;
            let interval = src.reception.take_interval();
            if interval.lost > 0 {
                self.events.push(Event::SourceLoss { endpoint: src.endpoint, source: id, expected: interval.expected, lost: interval.lost });
            }
        }
        self.publish_rates(now_us);
        // Layers follow the sources' rates too, not only the estimate.
        self.nack_scratch_sources.clear();
        self.nack_scratch_sources.extend(
            self.endpoints.values().filter(|ep| ep.bwe.as_ref().is_some_and(|b| now_us.saturating_sub(b.last_choice_us) >= bandwidth::RATE_INTERVAL_US)).map(|ep| ep.id),
        );
        for i in 0..self.nack_scratch_sources.len() {
            let id = self.nack_scratch_sources[i];
            if let Some(bwe) = self.endpoints.get_mut(&id).and_then(|ep| ep.bwe.as_mut()) {
                bwe.last_choice_us = now_us;
            }
            self.choose_layers(id, now_us, io);
            self.report_estimate(id, now_us);
        }
        // Bitrate caps are repeated, as a receiver's REMB would be.
        self.nack_scratch_sources.clear();
        self.nack_scratch_sources.extend(
            self.endpoints.values().filter(|ep| ep.remb_cap_bps.is_some() && now_us.saturating_sub(ep.remb_sent_us) >= REMB_CAP_INTERVAL_US).map(|ep| ep.id),
        );
        for i in 0..self.nack_scratch_sources.len() {
            let id = self.nack_scratch_sources[i];
            self.send_remb_cap(id, now_us, io);
        }
        // Feedback for the last packets of a burst, which no later read flushed out.
        let waiting: Vec<u32> = self.endpoints.values().filter(|ep| ep.twcc.as_ref().is_some_and(|t| t.recorder.pending() > 0)).map(|ep| ep.id).collect();
        for id in waiting {
            self.send_transport_feedback(id, now_us, 0, io);
        }
        for ep in self.endpoints.values_mut() {
            if let Some(agent) = ep.ice.as_mut() {
                while let Some(ev) = agent.poll(now_us / 1000) {
                    if let IceEvent::ConsentLost(address) = ev {
                        self.events.push(Event::ConsentLost { endpoint: ep.id, address });
                    }
                }
            }
        }
    }

    /// Each home source's rate over the last interval, for every router's layer choice.
    fn publish_rates(&mut self, now_us: u64) {
        for (&id, src) in self.sources.iter_mut() {
            let elapsed = now_us.saturating_sub(src.rate_mark_us);
            if elapsed < bandwidth::RATE_INTERVAL_US {
                continue;
            }
            let bytes = src.stats.bytes - src.rate_mark_bytes;
            let bps = if src.rate_mark_us == 0 { 0 } else { bytes * 8 * 1_000_000 / elapsed };
            let layered: u64 = src.temporal_bytes.iter().sum();
            let mut temporal_permille = [0u16; 4];
            if layered > 0 {
                let mut cumulative = 0;
                for (t, b) in src.temporal_bytes.iter().enumerate() {
                    cumulative += b;
                    if *b > 0 || cumulative < layered {
                        temporal_permille[t] = (cumulative * 1000 / layered) as u16;
                    }
                }
            }
            src.stats.bitrate_bps = bps;
            src.rate_mark_us = now_us;
            src.rate_mark_bytes = src.stats.bytes;
            src.temporal_bytes = [0; 4];
            self.rates.set(id, SourceRate { bps, temporal_permille });
        }
    }

    // ---- what the router holds, for stats and tests ------------------------------------------

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

/// The descriptor rewriter of an output's codec.
enum PictureRewriter {
    Vp8(Vp8Rewriter),
    Vp9(Vp9Rewriter),
}

impl PictureRewriter {
    fn rewrite(&mut self, source_id: u64, payload: &mut [u8]) {
        match self {
            Self::Vp8(rw) => rw.rewrite(source_id, payload),
            Self::Vp9(rw) => rw.rewrite(source_id, payload),
        }
    }
}

/// Janus's `spatial_layer` / `temporal_layer` events for VP9 SVC changes that took effect.
fn push_svc_events(events: &mut Vec<Event>, endpoint: u32, output: u32, change: SvcChange) {
    if let Some(layer) = change.spatial {
        events.push(Event::OutputSpatial { endpoint, output, layer: layer.unwrap_or(u8::MAX) });
    }
    if let Some(layer) = change.temporal {
        events.push(Event::OutputTemporal { endpoint, output, layer: layer.unwrap_or(u8::MAX) });
    }
}

/// The source feeding an output now (retransmissions are of its packets).
impl Output {
    /// The payload type this output writes for a packet of type `received`; `None`: not sent.
    fn payload_type_for(&self, received: u8) -> Option<u8> {
        match self.payload_map.iter().find(|(from, _)| *from == received) {
            Some(&(_, to)) => to,
            None => Some(self.payload_type.unwrap_or(received)),
        }
    }
}

fn sid_of(out: &Output) -> u32 {
    out.source.unwrap_or(0)
}

/// What a packet written for an output is, for its counters.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Sent {
    Media,
    Retransmission,
}

/// Writes the header of an outgoing copy of `plain` into `pkt`: as it is, or, when the
/// transport numbers its packets (`SendBwe`), with the transport-wide sequence number as its
/// only extension. Returns the header length.
fn write_header(pkt: &mut [u8], plain: &[u8], hdr: &rtp::RtpHeader, bwe: Option<&SendBwe>) -> Option<usize> {
    match bwe {
        Some(bwe) => transport_sequence::write_header(pkt, plain, hdr, bwe.extension_id, bwe.next_seq),
        None => {
            pkt.get_mut(..hdr.header_len)?.copy_from_slice(plain.get(..hdr.header_len)?);
            Some(hdr.header_len)
        }
    }
}

/// SRTP-protects the `len` bytes written in `pkt` for `ep`. `None` if protection failed or
/// a WebRTC endpoint has no keys yet (RFC 8827 §6.5).
fn protect(pkt: &mut [u8], ep: &mut Endpoint, len: usize) -> Option<usize> {
    match ep.srtp_out.as_mut() {
        Some(ctx) => ctx.protect_rtp(pkt, len).ok(),
        None if ep.ice.is_some() => {
            ep.stats.no_srtp_drops += 1;
            None
        }
        None => Some(len),
    }
}

/// Queues the protected packet just written; the transport-wide sequence number written in it
/// is taken and the packet shown to the estimator.
fn send_rtp(io: &mut impl RouterIo, ep: &mut Endpoint, out_len: usize, dest: SocketAddr, now_us: u64) {
    if let Some(bwe) = ep.bwe.as_mut() {
        let seq = bwe.take_seq();
        bwe.estimator.on_packet_sent(seq, out_len, now_us);
    }
    io.commit_transmit(out_len, ep.transport, ep.id, &dest);
}

/// Rewrites one copy of a decrypted packet for an output (SSRC, sequence, timestamp, PT,
/// transport-wide sequence number), encrypts it with the output endpoint's context and queues it.
#[allow(clippy::too_many_arguments)]
fn write_packet(io: &mut impl RouterIo, out: &mut Output, out_ep: &mut Endpoint, plain: &[u8], hdr: &rtp::RtpHeader, sid: u32, (seq, ts, marker): (u16, u32, Option<bool>), dest: SocketAddr, sent: Sent, now_us: u64) {
    let Some(pkt) = io.transmit_slot() else {
        out.stats.dropped += 1;
        return;
    };
    let written = (|| {
        let header_len = write_header(&mut pkt[..], plain, hdr, out_ep.bwe.as_ref())?;
        let rest = plain.get(hdr.header_len..)?;
        let len = header_len + rest.len();
        let head = pkt.get_mut(..len)?;
        head[header_len..].copy_from_slice(rest);
        if let (Some(rw), Some(payload)) = (out.pictures.as_mut(), head.get_mut(header_len..)) {
            rw.rewrite(u64::from(sid), payload);
        }
        if let Some(marker) = marker {
            rtp::set_marker(head, marker);
        }
        rtp::set_ssrc(head, out.ssrc);
        rtp::set_sequence(head, seq);
        rtp::set_timestamp(head, ts);
        if let Some(pt) = out.payload_type_for(hdr.payload_type) {
            rtp::set_payload_type(head, pt);
        }
        Some(len)
    })();
    let Some(len) = written else {
        out.stats.dropped += 1;
        return;
    };
    let Some(out_len) = protect(&mut pkt[..], out_ep, len) else {
        out.stats.dropped += 1;
        out_ep.stats.tx_failed += u64::from(out_ep.srtp_out.is_some());
        return;
    };
    send_rtp(io, out_ep, out_len, dest, now_us);
    match sent {
        Sent::Media => {
            out.stats.packets += 1;
            out.stats.bytes += out_len as u64;
        }
        Sent::Retransmission => out.stats.retransmitted += 1,
    }
}

/// Probing (see `bandwidth`): while the transport is asked to probe, each media packet sent on
/// an output with RTX earns probe bytes, paid as RTX copies of that same packet (at most two),
/// so probes are paced like the media they ride on.
#[allow(clippy::too_many_arguments)]
fn probe(io: &mut impl RouterIo, out: &mut Output, out_ep: &mut Endpoint, plain: &[u8], hdr: &rtp::RtpHeader, seq: u16, ts: u32, dest: SocketAddr, now_us: u64) {
    let Some(rtx) = out.rtx else { return };
    let size = plain.len() as u64;
    let Some(bwe) = out_ep.bwe.as_mut().filter(|b| b.probe_permille > 0) else { return };
    bwe.probe_credit += size * bwe.probe_permille / 1000;
    for _ in 0..2 {
        match out_ep.bwe.as_mut() {
            Some(bwe) if bwe.probe_credit >= size => bwe.probe_credit -= size,
            _ => return,
        }
        if !write_rtx(io, out, rtx, out_ep, plain, hdr, seq, ts, dest, now_us) {
            return;
        }
        if let Some(bwe) = out_ep.bwe.as_mut() {
            bwe.probe_packets += 1;
        }
    }
}

/// An RFC 4588 §4 retransmission of `plain` (sent as `out_seq`): the output's header with the
/// RTX SSRC, payload type and sequence number, then the original sequence number (OSN), then
/// the original payload (padding dropped). Probes (`Sent::Media`) are such copies of packets
/// just sent. False if it could not be sent.
#[allow(clippy::too_many_arguments)]
fn write_rtx(io: &mut impl RouterIo, out: &mut Output, rtx: RtxConfig, out_ep: &mut Endpoint, plain: &[u8], hdr: &rtp::RtpHeader, out_seq: u16, ts: u32, dest: SocketAddr, now_us: u64) -> bool {
    let Some(payload) = hdr.payload(plain) else { return false };
    let Some(pkt) = io.transmit_slot() else { return false };
    let written = (|| {
        let header_len = write_header(&mut pkt[..], plain, hdr, out_ep.bwe.as_ref())?;
        let len = header_len + 2 + payload.len();
        let buf = pkt.get_mut(..len)?;
        buf[header_len..header_len + 2].copy_from_slice(&out_seq.to_be_bytes());
        buf[header_len + 2..].copy_from_slice(payload);
        if let (Some(rw), Some(sid)) = (out.pictures.as_mut(), out.source) {
            if let Some(original) = buf.get_mut(header_len + 2..) {
                rw.rewrite(u64::from(sid), original);
            }
        }
        buf[0] &= !0x20; // no padding
        rtp::set_ssrc(buf, rtx.ssrc);
        rtp::set_sequence(buf, out.rtx_seq);
        rtp::set_timestamp(buf, ts);
        rtp::set_payload_type(buf, rtx.payload_type);
        Some(len)
    })();
    let Some(len) = written else { return false };
    out.rtx_seq = out.rtx_seq.wrapping_add(1);
    let Some(out_len) = protect(&mut pkt[..], out_ep, len) else { return false };
    send_rtp(io, out_ep, out_len, dest, now_us);
    true
}

/// Queues one RTCP packet ferry originates on an endpoint, SRTCP-protected when the endpoint has
/// keys; a WebRTC endpoint without keys yet sends nothing (RFC 8827 §6.5). True when queued.
fn queue_rtcp(io: &mut impl RouterIo, ep: &mut Endpoint, packet: &[u8], dest: SocketAddr) -> bool {
    let Some(slot) = io.transmit_slot() else { return false };
    let Some(plain) = slot.get_mut(..packet.len()) else { return false };
    plain.copy_from_slice(packet);
    let len = match ep.srtp_out.as_mut() {
        Some(ctx) => match ctx.protect_rtcp(&mut slot[..], packet.len()) {
            Ok(n) => n,
            Err(_) => return false,
        },
        None if ep.ice.is_some() => return false,
        None => packet.len(),
    };
    io.commit_transmit(len, ep.transport, ep.id, &dest);
    true
}

/// RFC 4588 §4: turns the RTX packet in `buf[..len]` (header, 2-byte original sequence number,
/// original payload) back into the original packet in place: OSN as the sequence number, the
/// source's SSRC and payload type, padding dropped. `None` if it carries no OSN.
fn unwrap_rtx(buf: &mut [u8], len: usize, hdr: &rtp::RtpHeader, ssrc: u32, payload_type: u8) -> Option<(usize, rtp::RtpHeader)> {
    let payload_end = len.checked_sub(hdr.padding_len)?;
    let osn_at = hdr.header_len;
    if payload_end < osn_at + 2 || payload_end > buf.len() {
        return None;
    }
    let osn = u16::from_be_bytes([buf[osn_at], buf[osn_at + 1]]);
    buf.copy_within(osn_at + 2..payload_end, osn_at);
    let new_len = payload_end - 2;
    let packet = buf.get_mut(..new_len)?;
    packet[0] &= !0x20; // padding is gone
    rtp::set_sequence(packet, osn);
    rtp::set_ssrc(packet, ssrc);
    rtp::set_payload_type(packet, payload_type);
    let hdr = rtp::parse_rtp(packet).ok()?;
    Some((new_len, hdr))
}

fn count_srtp_error(stats: &mut EndpointStats, e: SrtpError) {
    match e {
        SrtpError::AuthFailed => stats.srtp_auth_failures += 1,
        SrtpError::Replayed | SrtpError::TooOld => stats.srtp_replays += 1,
        _ => stats.srtp_other_failures += 1,
    }
}
