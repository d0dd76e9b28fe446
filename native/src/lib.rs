//! The N-API binding of ferry's media engine: a thin control channel. Every
//! call maps to one `ferry_engine::Engine` call; no packet ever enters
//! JavaScript except DTLS records, delivered batched with other events.
//! Every exported function catches panics and turns them into JS errors,
//! so the addon never takes the process down.

use std::net::{IpAddr, SocketAddr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use ferry_engine::{
    BweConfig, EndpointConfig, EndpointStats, Engine, EngineOptions, Placement, RtxConfig, Event, IceCredentials, MediaKind, OutputConfig,
    SourceConfig, SrtpKeys, SrtpProfile, StreamStats, VideoCodec,
};
use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;

fn guard<T>(what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic".into());
            Err(Error::from_reason(format!("{what}: internal error: {msg}")))
        }
    }
}

/// A layer index from JavaScript (VP9 carries 3 bits of it).
fn layer_index(layer: Option<u32>, name: &str) -> Result<Option<u8>> {
    match layer {
        Some(l) if l <= 7 => Ok(Some(l as u8)),
        Some(l) => Err(err(format!("{name} layer {l} (0..7)"))),
        None => Ok(None),
    }
}

#[napi(object)]
pub struct SendBweOptions {
    pub extension_id: u32,
    pub initial_bps: Option<f64>,
    pub min_bps: Option<f64>,
    pub max_bps: Option<f64>,
}

#[napi(object)]
pub struct OutputLayersOptions {
    /// Simulcast layers' source ids, lowest first.
    pub sources: Vec<u32>,
    /// Highest layer wanted (Janus `substream`).
    pub preferred: u32,
    /// Highest VP8 temporal layer wanted (Janus `temporal`); null: all.
    pub temporal_max: Option<u32>,
}

fn err(e: impl std::fmt::Display) -> Error {
    Error::from_reason(e.to_string())
}

fn parse_addr(address: &str, port: u32) -> Result<SocketAddr> {
    let ip: IpAddr = address.parse().map_err(|_| err(format!("invalid IP address {address:?}")))?;
    let port = u16::try_from(port).map_err(|_| err(format!("invalid port {port}")))?;
    Ok(SocketAddr::new(ip, port))
}

/// A placement group's key: FNV-1a of its name (the control plane names groups, e.g. by room).
fn group_key(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// An RFC 4588 stream from JS: both SSRC and payload type (0..127), or neither.
fn rtx_config(ssrc: Option<u32>, payload_type: Option<u32>, names: &str) -> Result<Option<RtxConfig>> {
    match (ssrc, payload_type) {
        (Some(ssrc), Some(pt)) if pt <= 127 => Ok(Some(RtxConfig { ssrc, payload_type: pt as u8 })),
        (None, None) => Ok(None),
        _ => Err(err(format!("{names} (0..127) go together"))),
    }
}

fn parse_profile(name: &str) -> Result<SrtpProfile> {
    SrtpProfile::from_name(name).ok_or_else(|| err(format!("unknown SRTP profile {name:?}")))
}

#[napi(object)]
pub struct MediaEngineOptions {
    /// Media threads; 0 = one per CPU this process may run on (`media.workers: auto`).
    pub workers: Option<u32>,
    /// Pin each media thread to one CPU.
    pub pin_threads: Option<bool>,
    /// "load" (default) or "round-robin".
    pub placement: Option<String>,
}

#[napi(object)]
pub struct IceOptions {
    pub ufrag: String,
    pub pwd: String,
    pub remote_ufrag: Option<String>,
    pub consent_timeout_ms: Option<u32>,
}

#[napi(object)]
pub struct EndpointOptions {
    pub bind_address: String,
    /// 0 picks an ephemeral port.
    pub port: u32,
    pub ice: Option<IceOptions>,
    pub remote_address: Option<String>,
    pub remote_port: Option<u32>,
    pub latch: Option<bool>,
    pub rid_extension_id: Option<u32>,
    /// Transport-wide sequence number extension id: ferry then sends transport-cc feedback.
    pub twcc_extension_id: Option<u32>,
    /// Media thread that must own the endpoint (else placement chooses).
    pub worker: Option<u32>,
    /// Placement group (a room): its endpoints are kept on few media threads.
    pub group: Option<String>,
}

#[napi(object)]
pub struct OpenedEndpoint {
    pub id: u32,
    pub address: String,
    pub port: u32,
}

#[napi(object)]
pub struct SrtpOptions {
    pub profile: String,
    pub local_key: Buffer,
    pub local_salt: Buffer,
    pub remote_key: Buffer,
    pub remote_salt: Buffer,
}

#[napi(object)]
pub struct SourceOptions {
    pub ssrc: u32,
    pub ssrc_offset: Option<u32>,
    /// "audio" or "video"
    pub kind: String,
    pub clock_rate: u32,
    /// Video codec name ("vp8", "vp9", "h264"); lets outputs switch to this source at a keyframe.
    pub codec: Option<String>,
}

#[napi(object)]
pub struct SwitchOptions {
    /// Hold the switch until the first packet of a keyframe of the new source.
    pub on_keyframe: Option<bool>,
}

#[napi(object)]
pub struct OutputOptions {
    pub source: Option<u32>,
    pub ssrc: u32,
    pub payload_type: Option<u32>,
    /// RFC 4588 retransmission stream the subscriber negotiated: its SSRC and payload type.
    pub rtx_ssrc: Option<u32>,
    pub rtx_payload_type: Option<u32>,
}

#[napi(object)]
pub struct EngineEvent {
    /// dtls | ice-selected | consent-lost | unknown-ssrc | remote-latched | keyframe-requested | remb | worker-panic
    pub r#type: String,
    pub endpoint: Option<u32>,
    pub source: Option<u32>,
    pub address: Option<String>,
    pub port: Option<u32>,
    pub data: Option<Buffer>,
    pub ssrc: Option<u32>,
    pub payload_type: Option<u32>,
    pub rid: Option<String>,
    pub bitrate: Option<f64>,
    pub worker: Option<u32>,
    pub message: Option<String>,
    /// receiver-loss: RFC 3550 fraction lost (0..255) and cumulative packets lost.
    pub fraction_lost: Option<u32>,
    pub lost: Option<f64>,
    /// audio-level: average RFC 6464 level of the window, −dBov (0 loudest … 127 silence).
    pub level: Option<u32>,
    /// output-switched: the output that moved to `source`.
    pub output: Option<u32>,
    /// source-loss: packets expected over the interval (`lost` of them never arrived).
    pub expected: Option<u32>,
    /// bandwidth-estimate: recent loss on what ferry sent (‰), round trip (ms), and whether
    /// some output gets less than its preferred layers because of the estimate.
    pub loss_permille: Option<u32>,
    pub rtt_ms: Option<u32>,
    pub limited: Option<bool>,
}

impl EngineEvent {
    fn empty(kind: &str) -> Self {
        Self {
            r#type: kind.to_string(),
            endpoint: None,
            source: None,
            address: None,
            port: None,
            data: None,
            ssrc: None,
            payload_type: None,
            rid: None,
            bitrate: None,
            worker: None,
            message: None,
            fraction_lost: None,
            lost: None,
            level: None,
            output: None,
            expected: None,
            loss_permille: None,
            rtt_ms: None,
            limited: None,
        }
    }

    fn with_addr(mut self, addr: SocketAddr) -> Self {
        self.address = Some(addr.ip().to_string());
        self.port = Some(addr.port() as u32);
        self
    }

    fn from_event(ev: Event) -> Self {
        match ev {
            Event::Dtls { endpoint, from, data } => {
                let mut e = Self::empty("dtls").with_addr(from);
                e.endpoint = Some(endpoint);
                e.data = Some(data.into());
                e
            }
            Event::IceSelected { endpoint, address } => {
                let mut e = Self::empty("ice-selected").with_addr(address);
                e.endpoint = Some(endpoint);
                e
            }
            Event::ConsentLost { endpoint, address } => {
                let mut e = Self::empty("consent-lost").with_addr(address);
                e.endpoint = Some(endpoint);
                e
            }
            Event::UnknownSsrc { endpoint, ssrc, payload_type, rid } => {
                let mut e = Self::empty("unknown-ssrc");
                e.endpoint = Some(endpoint);
                e.ssrc = Some(ssrc);
                e.payload_type = Some(payload_type as u32);
                e.rid = rid;
                e
            }
            Event::RemoteLatched { endpoint, address } => {
                let mut e = Self::empty("remote-latched").with_addr(address);
                e.endpoint = Some(endpoint);
                e
            }
            Event::KeyframeRequested { source } => {
                let mut e = Self::empty("keyframe-requested");
                e.source = Some(source);
                e
            }
            Event::Remb { endpoint, bitrate_bps } => {
                let mut e = Self::empty("remb");
                e.endpoint = Some(endpoint);
                e.bitrate = Some(bitrate_bps as f64);
                e
            }
            Event::ReceiverLoss { endpoint, ssrc, fraction_lost, cumulative_lost } => {
                let mut e = Self::empty("receiver-loss");
                e.endpoint = Some(endpoint);
                e.ssrc = Some(ssrc);
                e.fraction_lost = Some(fraction_lost as u32);
                e.lost = Some(cumulative_lost as f64);
                e
            }
            Event::AudioLevel { endpoint, source, level } => {
                let mut e = Self::empty("audio-level");
                e.endpoint = Some(endpoint);
                e.source = Some(source);
                e.level = Some(level as u32);
                e
            }
            Event::OutputTemporal { endpoint, output, layer } => {
                let mut e = Self::empty("output-temporal");
                e.endpoint = Some(endpoint);
                e.output = Some(output);
                e.level = Some(u32::from(layer));
                e
            }
            Event::OutputSpatial { endpoint, output, layer } => {
                let mut e = Self::empty("output-spatial");
                e.endpoint = Some(endpoint);
                e.output = Some(output);
                e.level = Some(u32::from(layer));
                e
            }
            Event::BandwidthEstimate { endpoint, bitrate_bps, loss_permille, rtt_ms, limited } => {
                let mut e = Self::empty("bandwidth-estimate");
                e.endpoint = Some(endpoint);
                e.bitrate = Some(bitrate_bps as f64);
                e.loss_permille = Some(loss_permille);
                e.rtt_ms = Some(rtt_ms);
                e.limited = Some(limited);
                e
            }
            Event::OutputSwitched { endpoint, output, source } => {
                let mut e = Self::empty("output-switched");
                e.endpoint = Some(endpoint);
                e.output = Some(output);
                e.source = Some(source);
                e
            }
            Event::SourceLoss { endpoint, source, expected, lost } => {
                let mut e = Self::empty("source-loss");
                e.endpoint = Some(endpoint);
                e.source = Some(source);
                e.expected = Some(expected);
                e.lost = Some(lost as f64);
                e
            }
            Event::WorkerPanic { worker, message } => {
                let mut e = Self::empty("worker-panic");
                e.worker = Some(worker as u32);
                e.message = Some(message);
                e
            }
        }
    }
}

#[napi(object)]
pub struct EndpointCounters {
    pub id: u32,
    pub port: u32,
    /// Media thread that owns the endpoint.
    pub worker: u32,
    pub rx_packets: f64,
    pub rx_bytes: f64,
    pub tx_packets: f64,
    pub tx_bytes: f64,
    pub tx_failed: f64,
    pub stun_requests: f64,
    pub stun_replies: f64,
    pub stun_error_replies: f64,
    pub stun_dropped: f64,
    pub dtls_in: f64,
    pub dtls_out: f64,
    pub rtp_in: f64,
    pub rtcp_in: f64,
    pub srtp_auth_failures: f64,
    pub srtp_replays: f64,
    pub srtp_other_failures: f64,
    pub srtcp_failures: f64,
    pub rtp_malformed: f64,
    pub rtcp_malformed: f64,
    pub unknown_ssrc: f64,
    pub unvalidated_drops: f64,
    pub no_remote_drops: f64,
    pub no_srtp_drops: f64,
    pub demux_unknown: f64,
    pub keyframe_requests_relayed: f64,
    pub transport_feedback_sent: f64,
    /// Generic NACKs sent to this endpoint's publishers for packets that did not arrive.
    pub nacks_sent: f64,
    /// RFC 4588 retransmissions received and unwrapped to their source.
    pub rtx_in: f64,
    /// REMB packets sent to this endpoint's publisher (its bitrate cap).
    pub remb_sent: f64,
    /// Send-side estimate of the receiver's link (bits/s; 0 = not estimated), recent loss on
    /// what ferry sent (‰), round trip from transport-cc (ms; 0 = unknown).
    pub bwe_estimate_bps: f64,
    pub bwe_loss_permille: u32,
    pub rtt_ms: u32,
    pub transport_feedback_received: f64,
    /// RTX copies sent to probe whether the link takes more.
    pub probe_packets: f64,
    /// Some output gets less than its preferred layers because of the estimate.
    pub bwe_limited: bool,
}

impl EndpointCounters {
    fn from_stats(id: u32, port: u16, worker: usize, s: &EndpointStats) -> Self {
        Self {
            id,
            port: port as u32,
            worker: worker as u32,
            rx_packets: s.rx_packets as f64,
            rx_bytes: s.rx_bytes as f64,
            tx_packets: s.tx_packets as f64,
            tx_bytes: s.tx_bytes as f64,
            tx_failed: s.tx_failed as f64,
            stun_requests: s.stun_requests as f64,
            stun_replies: s.stun_replies as f64,
            stun_error_replies: s.stun_error_replies as f64,
            stun_dropped: s.stun_dropped as f64,
            dtls_in: s.dtls_in as f64,
            dtls_out: s.dtls_out as f64,
            rtp_in: s.rtp_in as f64,
            rtcp_in: s.rtcp_in as f64,
            srtp_auth_failures: s.srtp_auth_failures as f64,
            srtp_replays: s.srtp_replays as f64,
            srtp_other_failures: s.srtp_other_failures as f64,
            srtcp_failures: s.srtcp_failures as f64,
            rtp_malformed: s.rtp_malformed as f64,
            rtcp_malformed: s.rtcp_malformed as f64,
            unknown_ssrc: s.unknown_ssrc as f64,
            unvalidated_drops: s.unvalidated_drops as f64,
            no_remote_drops: s.no_remote_drops as f64,
            no_srtp_drops: s.no_srtp_drops as f64,
            demux_unknown: s.demux_unknown as f64,
            keyframe_requests_relayed: s.keyframe_requests_relayed as f64,
            transport_feedback_sent: s.transport_feedback_sent as f64,
            nacks_sent: s.nacks_sent as f64,
            rtx_in: s.rtx_in as f64,
            remb_sent: s.remb_sent as f64,
            bwe_estimate_bps: s.bwe_estimate_bps as f64,
            bwe_loss_permille: s.bwe_loss_permille,
            rtt_ms: s.rtt_ms,
            transport_feedback_received: s.transport_feedback_received as f64,
            probe_packets: s.probe_packets as f64,
            bwe_limited: s.bwe_limited,
        }
    }
}

#[napi(object)]
pub struct StreamCounters {
    pub id: u32,
    /// Media thread the source or output lives on.
    pub worker: u32,
    pub packets: f64,
    pub bytes: f64,
    pub dropped: f64,
    /// Outputs: packets of another thread's source dropped by a full queue between threads.
    pub queue_drops: f64,
    /// Outputs: sequence numbers the receiver asked again for (RFC 4585 generic NACK), what
    /// was retransmitted, and what could not be (no longer buffered, or rate-limited).
    pub nacked: f64,
    pub retransmitted: f64,
    pub rtx_missed: f64,
    /// Outputs: packets of VP8 temporal layers above the output's choice, not sent.
    pub filtered: f64,
    /// Outputs choosing among simulcast layers: the layer chosen (-1: none).
    pub layer: i32,
    /// Sources: receive rate over the last half second (bits/s).
    pub bitrate_bps: f64,
}

impl StreamCounters {
    fn from_stats(id: u32, worker: usize, s: &StreamStats) -> Self {
        Self {
            id,
            worker: worker as u32,
            packets: s.packets as f64,
            bytes: s.bytes as f64,
            dropped: s.dropped as f64,
            queue_drops: s.queue_drops as f64,
            nacked: s.nacked as f64,
            retransmitted: s.retransmitted as f64,
            rtx_missed: s.rtx_missed as f64,
            filtered: s.filtered as f64,
            layer: s.layer,
            bitrate_bps: s.bitrate_bps as f64,
        }
    }
}

#[napi(object)]
pub struct WorkerCounters {
    pub worker: u32,
    pub cpu_ns: f64,
    pub loops: f64,
    pub recv_batches: f64,
    pub panics: f64,
    /// Packets received and sent per second over the last second.
    pub load_pps: f64,
    /// Share of the last second the thread worked, in ‰.
    pub busy_permille: u32,
    pub endpoints: u32,
    /// Packets from other threads waiting in this thread's queue.
    pub queue_depth: u32,
    /// Packets not handed to another thread because its queue was full.
    pub queue_overflows: f64,
    pub cross_sent: f64,
    pub cross_received: f64,
    pub remote_feeds: u32,
    pub subscriptions: u32,
    pub shared_buffers: u32,
    pub shared_buffers_in_use: u32,
}

#[napi(object)]
pub struct EngineCounters {
    pub endpoints: Vec<EndpointCounters>,
    pub sources: Vec<StreamCounters>,
    pub outputs: Vec<StreamCounters>,
    pub workers: Vec<WorkerCounters>,
}

/// Whether JavaScript needs an event at all. A receiver report that saw no loss is no news:
/// its one reader (slowlink in src/webrtc/PeerConnection.ts) acts on loss alone, and every
/// subscriber's receiver sends one about every second, so forwarding them would wake the
/// Node thread and allocate there for nothing, steadily, while media flows.
fn worth_telling(ev: &Event) -> bool {
    !matches!(ev, Event::ReceiverLoss { fraction_lost: 0, .. })
}

type EventCallback = ThreadsafeFunction<Vec<EngineEvent>, (), Vec<EngineEvent>, Status, false, true>;

/// The media engine as JavaScript sees it (wrapped with types in src/media/MediaEngine.ts).
#[napi]
pub struct NativeEngine {
    engine: Option<Engine>,
    listener: Arc<std::sync::Mutex<Option<EventCallback>>>,
}

#[napi]
impl NativeEngine {
    #[napi(constructor)]
    pub fn new(options: Option<MediaEngineOptions>) -> Result<Self> {
        guard("new MediaEngine", || {
            let workers = options.as_ref().and_then(|o| o.workers).unwrap_or(1) as usize;
            let pin_threads = options.as_ref().and_then(|o| o.pin_threads).unwrap_or(false);
            let placement = match options.as_ref().and_then(|o| o.placement.as_deref()) {
                None | Some("load") => Placement::Load,
                Some("round-robin") => Placement::RoundRobin,
                Some(other) => return Err(err(format!("unknown placement {other:?} (load, round-robin)"))),
            };
            let listener: Arc<std::sync::Mutex<Option<EventCallback>>> = Arc::new(std::sync::Mutex::new(None));
            let sink_listener = listener.clone();
            let sink: ferry_engine::EventSink = Arc::new(move |batch: Vec<Event>| {
                let guard = sink_listener.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(cb) = guard.as_ref() {
                    let events: Vec<EngineEvent> = batch.into_iter().filter(worth_telling).map(EngineEvent::from_event).collect();
                    // Nothing left: JavaScript's thread is not woken at all.
                    if !events.is_empty() {
                        cb.call(events, ThreadsafeFunctionCallMode::NonBlocking);
                    }
                }
            });
            let engine = Engine::new(EngineOptions { workers, pin_threads, placement }, sink).map_err(err)?;
            Ok(Self { engine: Some(engine), listener })
        })
    }

    fn engine(&self) -> Result<&Engine> {
        self.engine.as_ref().ok_or_else(|| err("engine is closed"))
    }

    /// Sets the function that receives event batches (replaces any previous one).
    #[napi]
    pub fn on_events(&self, callback: EventCallback) -> Result<()> {
        guard("onEvents", || {
            *self.listener.lock().unwrap_or_else(|p| p.into_inner()) = Some(callback);
            Ok(())
        })
    }

    #[napi]
    pub fn worker_count(&self) -> Result<u32> {
        guard("workerCount", || Ok(self.engine()?.worker_count() as u32))
    }

    /// Media thread that owns an endpoint.
    #[napi]
    pub fn endpoint_worker(&self, id: u32) -> Result<u32> {
        guard("endpointWorker", || Ok(self.engine()?.endpoint_worker(id).map_err(err)? as u32))
    }

    #[napi]
    pub fn open_endpoint(&self, options: EndpointOptions) -> Result<OpenedEndpoint> {
        guard("openEndpoint", || {
            let bind = parse_addr(&options.bind_address, options.port)?;
            let mut config = EndpointConfig::new(bind);
            if let Some(ice) = options.ice {
                config.ice = Some(IceCredentials { ufrag: ice.ufrag, pwd: ice.pwd, remote_ufrag: ice.remote_ufrag });
                config.consent_timeout_ms = ice.consent_timeout_ms.map(|v| v as u64);
            }
            config.remote = match (options.remote_address, options.remote_port) {
                (Some(a), Some(p)) => Some(parse_addr(&a, p)?),
                (None, None) => None,
                _ => return Err(err("remoteAddress and remotePort go together")),
            };
            config.latch = options.latch.unwrap_or(false);
            let extension_id = |id: Option<u32>| match id {
                Some(id) if (1..=255).contains(&id) => Ok(Some(id as u8)),
                Some(id) => Err(err(format!("invalid extension id {id}"))),
                None => Ok(None),
            };
            config.rid_extension_id = extension_id(options.rid_extension_id)?;
            config.twcc_extension_id = extension_id(options.twcc_extension_id)?;
            config.worker = options.worker.map(|w| w as usize);
            config.group = options.group.as_deref().map(group_key);
            let (id, local) = self.engine()?.open_endpoint(config).map_err(err)?;
            Ok(OpenedEndpoint { id, address: local.ip().to_string(), port: local.port() as u32 })
        })
    }

    #[napi]
    pub fn close_endpoint(&self, id: u32) -> Result<()> {
        guard("closeEndpoint", || self.engine()?.close_endpoint(id).map_err(err))
    }

    #[napi]
    pub fn set_srtp(&self, id: u32, options: SrtpOptions) -> Result<()> {
        guard("setSrtp", || {
            let keys = SrtpKeys {
                profile: parse_profile(&options.profile)?,
                local_key: options.local_key.to_vec(),
                local_salt: options.local_salt.to_vec(),
                remote_key: options.remote_key.to_vec(),
                remote_salt: options.remote_salt.to_vec(),
            };
            self.engine()?.set_srtp(id, keys).map_err(err)
        })
    }

    #[napi]
    pub fn set_remote(&self, id: u32, address: Option<String>, port: Option<u32>) -> Result<()> {
        guard("setRemote", || {
            let remote = match (address, port) {
                (Some(a), Some(p)) => Some(parse_addr(&a, p)?),
                _ => None,
            };
            self.engine()?.set_remote(id, remote).map_err(err)
        })
    }

    /// ICE restart: new local ufrag/pwd and the peer's new ufrag.
    #[napi]
    pub fn restart_ice(&self, id: u32, ufrag: String, pwd: String, remote_ufrag: Option<String>) -> Result<()> {
        guard("restartIce", || self.engine()?.restart_ice(id, ufrag, pwd, remote_ufrag).map_err(err))
    }

    #[napi]
    pub fn set_ice_remote_ufrag(&self, id: u32, ufrag: Option<String>) -> Result<()> {
        guard("setIceRemoteUfrag", || self.engine()?.set_ice_remote_ufrag(id, ufrag).map_err(err))
    }

    #[napi]
    pub fn send_raw(&self, id: u32, data: Buffer, address: String, port: u32) -> Result<()> {
        guard("sendRaw", || {
            let to = parse_addr(&address, port)?;
            self.engine()?.send_raw(id, to, data.to_vec()).map_err(err)
        })
    }

    #[napi]
    pub fn add_source(&self, endpoint: u32, options: SourceOptions) -> Result<u32> {
        guard("addSource", || {
            let kind = match options.kind.as_str() {
                "audio" => MediaKind::Audio,
                "video" => MediaKind::Video,
                other => return Err(err(format!("kind must be audio or video, not {other:?}"))),
            };
            let codec = match options.codec.as_deref() {
                None => None,
                Some(name) => match VideoCodec::from_name(name) {
                    Some(codec) => Some(codec),
                    None => return Err(err(format!("codec must be vp8, vp9 or h264, not {name:?}"))),
                },
            };
            let config = SourceConfig {
                ssrc: options.ssrc,
                ssrc_offset: options.ssrc_offset.unwrap_or(0),
                kind,
                clock_rate: options.clock_rate,
                codec,
            };
            self.engine()?.add_source(endpoint, config).map_err(err)
        })
    }

    #[napi]
    pub fn remove_source(&self, id: u32) -> Result<()> {
        guard("removeSource", || self.engine()?.remove_source(id).map_err(err))
    }

    #[napi]
    pub fn add_output(&self, endpoint: u32, options: OutputOptions) -> Result<u32> {
        guard("addOutput", || {
            let payload_type = match options.payload_type {
                Some(pt) if pt <= 127 => Some(pt as u8),
                Some(pt) => return Err(err(format!("invalid payload type {pt}"))),
                None => None,
            };
            let rtx = rtx_config(options.rtx_ssrc, options.rtx_payload_type, "rtxSsrc and rtxPayloadType")?;
            let config = OutputConfig { source: options.source, ssrc: options.ssrc, payload_type, rtx };
            self.engine()?.add_output(endpoint, config).map_err(err)
        })
    }

    #[napi]
    pub fn switch_output(&self, id: u32, source: Option<u32>, options: Option<SwitchOptions>) -> Result<()> {
        let on_keyframe = options.and_then(|o| o.on_keyframe).unwrap_or(false);
        guard("switchOutput", || self.engine()?.switch_output(id, source, on_keyframe).map_err(err))
    }

    /// Caps the bitrate of the publisher behind `source` (REMB every second); null stops.
    #[napi]
    pub fn set_bitrate_cap(&self, source: u32, bps: Option<f64>) -> Result<()> {
        guard("setBitrateCap", || {
            let bps = match bps {
                Some(b) if b.is_finite() && b >= 1.0 && b <= 1e12 => Some(b as u64),
                Some(b) => return Err(err(format!("invalid bitrate {b}"))),
                None => None,
            };
            self.engine()?.set_bitrate_cap(source, bps).map_err(err)
        })
    }

    /// The publisher's RFC 4588 RTX stream of a source (unwrapped to it); both null: none.
    #[napi]
    pub fn set_source_rtx(&self, source: u32, ssrc: Option<u32>, payload_type: Option<u32>) -> Result<()> {
        guard("setSourceRtx", || {
            let rtx = rtx_config(ssrc, payload_type, "ssrc and payloadType")?;
            self.engine()?.set_source_rtx(source, rtx).map_err(err)
        })
    }

    /// The highest VP8 temporal layer an output forwards; null: every layer.
    #[napi]
    pub fn set_output_temporal(&self, id: u32, layer: Option<u32>) -> Result<()> {
        guard("setOutputTemporal", || {
            let layer = match layer {
                Some(l) if l <= 3 => Some(l as u8),
                Some(l) => return Err(err(format!("temporal layer {l} (0..3)"))),
                None => None,
            };
            self.engine()?.set_output_temporal(id, layer).map_err(err)
        })
    }

    /// VP9 SVC: the highest spatial and temporal layers an output forwards; null: all.
    #[napi]
    pub fn set_output_svc(&self, id: u32, spatial: Option<u32>, temporal: Option<u32>) -> Result<()> {
        guard("setOutputSvc", || {
            let spatial = layer_index(spatial, "spatial")?;
            let temporal = layer_index(temporal, "temporal")?;
            self.engine()?.set_output_svc(id, spatial, temporal).map_err(err)
        })
    }

    /// Send-side bandwidth estimation on an endpoint: the transport-wide sequence number
    /// extension id its receiver negotiated (null: off) and the estimate's bounds (bits/s).
    #[napi]
    pub fn set_send_bwe(&self, endpoint: u32, options: Option<SendBweOptions>) -> Result<()> {
        guard("setSendBwe", || {
            let config = match options {
                None => None,
                Some(o) => {
                    let extension_id = match o.extension_id {
                        1..=255 => o.extension_id as u8,
                        other => return Err(err(format!("extensionId {other} (1..255)"))),
                    };
                    let bps = |v: Option<f64>, default: u64, name: &str| match v {
                        None => Ok(default),
                        Some(b) if b.is_finite() && (1.0..=1e12).contains(&b) => Ok(b as u64),
                        Some(b) => Err(err(format!("invalid {name} {b}"))),
                    };
                    let min_bps = bps(o.min_bps, 30_000, "minBps")?;
                    let max_bps = bps(o.max_bps, 20_000_000, "maxBps")?;
                    let initial_bps = bps(o.initial_bps, 1_000_000, "initialBps")?.clamp(min_bps, max_bps.max(min_bps));
                    Some(BweConfig { extension_id, initial_bps, min_bps, max_bps })
                }
            };
            self.engine()?.set_send_bwe(endpoint, config).map_err(err)
        })
    }

    /// Lets an output choose among simulcast layers (source ids, lowest first) by its
    /// transport's estimate, up to `preferred` and VP8 temporal layer `temporalMax`; null hands
    /// the choice back to switchOutput.
    #[napi]
    pub fn set_output_layers(&self, id: u32, options: Option<OutputLayersOptions>) -> Result<()> {
        guard("setOutputLayers", || {
            let layers = match options {
                None => None,
                Some(o) => {
                    if o.sources.is_empty() || o.sources.len() > 8 {
                        return Err(err(format!("{} layers (1..8)", o.sources.len())));
                    }
                    let temporal = layer_index(o.temporal_max, "temporalMax")?;
                    Some((o.sources, o.preferred as usize, temporal))
                }
            };
            self.engine()?.set_output_layers(id, layers).map_err(err)
        })
    }

    /// The RFC 4588 RTX stream an output retransmits on; both null: retransmit packets as sent.
    #[napi]
    pub fn set_output_rtx(&self, id: u32, ssrc: Option<u32>, payload_type: Option<u32>) -> Result<()> {
        guard("setOutputRtx", || {
            let rtx = rtx_config(ssrc, payload_type, "ssrc and payloadType")?;
            self.engine()?.set_output_rtx(id, rtx).map_err(err)
        })
    }

    #[napi]
    pub fn pause_output(&self, id: u32, paused: bool) -> Result<()> {
        guard("pauseOutput", || self.engine()?.pause_output(id, paused).map_err(err))
    }

    #[napi]
    pub fn remove_output(&self, id: u32) -> Result<()> {
        guard("removeOutput", || self.engine()?.remove_output(id).map_err(err))
    }

    #[napi]
    pub fn request_keyframe(&self, source: u32) -> Result<()> {
        guard("requestKeyframe", || self.engine()?.request_keyframe(source).map_err(err))
    }

    /// Meters a source's RFC 6464 audio level (extension `extension_id`), one `audio-level` event
    /// per `packets` packets; `extension_id` null stops it.
    #[napi]
    pub fn set_audio_level_meter(&self, source: u32, extension_id: Option<u32>, packets: Option<u32>) -> Result<()> {
        guard("setAudioLevelMeter", || {
            let meter = match extension_id {
                Some(id) => {
                    let id = u8::try_from(id).map_err(|_| Error::from_reason(format!("extension id {id} is out of range")))?;
                    Some((id, packets.unwrap_or(100)))
                }
                None => None,
            };
            self.engine()?.set_audio_level_meter(source, meter).map_err(err)
        })
    }

    #[napi]
    pub fn stats(&self) -> Result<EngineCounters> {
        guard("stats", || {
            let stats = self.engine()?.stats().map_err(err)?;
            let mut out = EngineCounters { endpoints: Vec::new(), sources: Vec::new(), outputs: Vec::new(), workers: Vec::new() };
            for w in &stats.workers {
                out.workers.push(WorkerCounters {
                    worker: w.worker as u32,
                    cpu_ns: w.cpu_ns as f64,
                    loops: w.loops as f64,
                    recv_batches: w.recv_batches as f64,
                    panics: w.panics as f64,
                    load_pps: w.load_pps as f64,
                    busy_permille: w.busy_permille,
                    endpoints: w.endpoints.len() as u32,
                    queue_depth: w.queue_depth as u32,
                    queue_overflows: w.queue_overflows as f64,
                    cross_sent: w.cross_sent as f64,
                    cross_received: w.cross_received as f64,
                    remote_feeds: w.remote_feeds as u32,
                    subscriptions: w.subscriptions as u32,
                    shared_buffers: w.shared_buffers as u32,
                    shared_buffers_in_use: w.shared_buffers_in_use as u32,
                });
                out.endpoints.extend(w.endpoints.iter().map(|(id, port, s)| EndpointCounters::from_stats(*id, *port, w.worker, s)));
                out.sources.extend(w.sources.iter().map(|(id, s)| StreamCounters::from_stats(*id, w.worker, s)));
                out.outputs.extend(w.outputs.iter().map(|(id, s)| StreamCounters::from_stats(*id, w.worker, s)));
            }
            Ok(out)
        })
    }

    /// Packets received so far by every source, as `[id, packets, id, packets, …]`: what the
    /// once-a-second media monitor reads, without a counters object for every endpoint, source
    /// and output (`stats()`), so that reading it leaves next to no garbage in JavaScript.
    #[napi]
    pub fn source_packets(&self) -> Result<Float64Array> {
        guard("sourcePackets", || {
            let stats = self.engine()?.stats().map_err(err)?;
            let mut out = Vec::with_capacity(2 * stats.source_count());
            for (id, s) in stats.workers.iter().flat_map(|w| w.sources.iter()) {
                out.push(*id as f64);
                out.push(s.packets as f64);
            }
            Ok(Float64Array::new(out))
        })
    }

    /// Stops the media threads and closes every socket. Idempotent.
    #[napi]
    pub fn close(&mut self) -> Result<()> {
        guard("close", || {
            if let Some(mut e) = self.engine.take() {
                e.close();
            }
            self.listener.lock().unwrap_or_else(|p| p.into_inner()).take();
            Ok(())
        })
    }
}

mod bench_exports;

#[napi]
pub fn engine_version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}
