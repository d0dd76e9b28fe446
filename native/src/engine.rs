//! The `NativeEngine` class JavaScript drives (wrapped with types in src/media/MediaEngine.ts)
//! and the option objects its methods take: each method checks its arguments, makes one
//! `ferry_engine::Engine` call, and turns a panic or error into a JS error.
//!
//! Past the house's ~600 lines on purpose: this is the engine's whole N-API surface, the
//! option objects above and the methods that read them below, every method the same few-line
//! shape (check, call, map errors); split, a method and the object it reads would part.

use std::sync::Arc;

use ferry_engine::{
    BweConfig, EndpointConfig, Engine, EngineOptions, Event, IceCredentials, MediaKind, MjrInfo, MjrKind, OutputConfig, Placement, RtxConfig, SourceConfig,
    SrtpKeys, VideoCodec,
};
use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;

use crate::events::{worth_telling, EngineEvent};
use crate::stats::EngineCounters;
use crate::{err, guard, parse_addr, parse_profile};

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

/// The shared sockets' addresses: one port per media thread, or a base port that thread i
/// offsets by i. Empty when single-port mode is off.
fn shared_ports(options: Option<&MediaEngineOptions>, workers: usize) -> Result<Vec<std::net::SocketAddr>> {
    let Some(ports) = options.and_then(|o| o.shared_ports.as_ref()).filter(|p| !p.is_empty()) else { return Ok(Vec::new()) };
    let address = options.and_then(|o| o.shared_address.as_deref()).unwrap_or("0.0.0.0");
    let threads = if workers == 0 { ferry_engine::auto_workers() } else { workers }.clamp(1, 64);
    let ports: Vec<u32> = match ports.as_slice() {
        [base] => (0..threads as u32).map(|i| base + i).collect(),
        list if list.len() == threads => list.to_vec(),
        list => return Err(err(format!("single-port mode: {} ports for {threads} media threads (give one per thread, or one base port)", list.len()))),
    };
    ports.into_iter().map(|p| parse_addr(address, p)).collect()
}

/// A layer index from JavaScript, 0..=`max` (VP9 carries 3 bits of a layer index, VP8 2).
fn layer_index(layer: Option<u32>, max: u32, name: &str) -> Result<Option<u8>> {
    match layer {
        Some(l) if l <= max => Ok(Some(l as u8)),
        Some(l) => Err(err(format!("{name} layer {l} (0..{max})"))),
        None => Ok(None),
    }
}

/// A bitrate from JavaScript, in bits/s: finite, 1 to 10^12.
fn bitrate(bps: f64, name: &str) -> Result<u64> {
    if bps.is_finite() && (1.0..=1e12).contains(&bps) {
        Ok(bps as u64)
    } else {
        Err(err(format!("invalid {name} {bps}")))
    }
}

#[napi(object)]
pub struct SendBweOptions {
    /// Transport-wide sequence number extension id the receiver negotiated (RFC 8285).
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

#[napi(object)]
pub struct MediaEngineOptions {
    /// Media threads; 0 = one per CPU this process may run on (`media.workers: auto`).
    pub workers: Option<u32>,
    /// Pin each media thread to one CPU.
    pub pin_threads: Option<bool>,
    /// "load" (default) or "round-robin".
    pub placement: Option<String>,
    /// Single-port mode (`media.single_port`): the address the shared sockets bind to, and
    /// their ports: one per media thread, or one base port (thread i takes base + i).
    pub shared_address: Option<String>,
    pub shared_ports: Option<Vec<u32>>,
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
    /// Single-port mode: on its media thread's shared socket (needs `ice`); `port` is unused.
    pub shared: Option<bool>,
    /// ICE-TCP (RFC 6544): also listen on TCP on the same port, for peers without UDP.
    pub ice_tcp: Option<bool>,
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

/// One entry of an output's payload-type map: packets received with `from` are written with
/// `to`, or not sent when `to` is absent.
#[napi(object)]
pub struct PayloadMapEntry {
    pub from: u32,
    pub to: Option<u32>,
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

/// A recording to start (`NativeEngine.startRecording`): the `.mjr` file and its header info.
#[napi(object)]
pub struct RecordingOptions {
    /// File to create (truncated if it exists); its folder must exist.
    pub path: String,
    /// "audio", "video" or "data".
    pub kind: String,
    /// Janus's codec name: opus, pcmu, pcma, g722, vp8, vp9, h264, av1, h265.
    pub codec: String,
    /// The codec's SDP fmtp parameters, kept in the header.
    pub fmtp: Option<String>,
    /// RTP header extensions the stream carries (RFC 8285 one-byte ids 1..14).
    pub extensions: Option<Vec<RecordingExtension>>,
}

#[napi(object)]
pub struct RecordingExtension {
    pub id: u32,
    pub uri: String,
}

/// What a stopped recording wrote.
#[napi(object, object_from_js = false)]
pub struct RecordingResult {
    pub packets: f64,
    pub bytes: f64,
    /// The first write error (the file keeps what was written before it).
    pub error: Option<String>,
}

/// The recording writer's counters.
#[napi(object, object_from_js = false)]
pub struct RecorderCounters {
    pub open_files: f64,
    pub packets_written: f64,
    pub bytes_written: f64,
    /// Packets dropped because the writer's queue was full (the disk fell behind).
    pub packets_dropped: f64,
    /// Packets over 1500 bytes, which janus-pp-rec would skip, left out.
    pub packets_oversized: f64,
    pub write_errors: f64,
    pub writes: f64,
    pub panics: f64,
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
            let shared_ports = shared_ports(options.as_ref(), workers)?;
            let engine = Engine::new(EngineOptions { workers, pin_threads, placement, shared_ports }, sink).map_err(err)?;
            Ok(Self { engine: Some(engine), listener })
        })
    }

    fn engine(&self) -> Result<&Engine> {
        self.engine.as_ref().ok_or_else(|| err("engine is closed"))
    }

    /// Sets the function that receives event batches (replaces any previous one).
    // The callback's type is spelled out (it is `EventCallback`) so that the generated
    // TypeScript declares its argument.
    #[napi]
    pub fn on_events(&self, callback: ThreadsafeFunction<Vec<EngineEvent>, (), Vec<EngineEvent>, Status, false, true>) -> Result<()> {
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
            config.shared = options.shared.unwrap_or(false);
            config.ice_tcp = options.ice_tcp.unwrap_or(false);
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
            let bps = bps.map(|b| bitrate(b, "bitrate")).transpose()?;
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
            let layer = layer_index(layer, 3, "temporal")?;
            self.engine()?.set_output_temporal(id, layer).map_err(err)
        })
    }

    /// Keeps a video source's current group of pictures, so an output starting on it gets a
    /// picture at once (senders that ignore keyframe requests, e.g. a Streaming ingest).
    #[napi]
    pub fn set_keyframe_cache(&self, source: u32, on: bool) -> Result<()> {
        guard("setKeyframeCache", || self.engine()?.set_keyframe_cache(source, on).map_err(err))
    }

    /// VP9 SVC: the highest spatial and temporal layers an output forwards; null: all.
    #[napi]
    pub fn set_output_svc(&self, id: u32, spatial: Option<u32>, temporal: Option<u32>) -> Result<()> {
        guard("setOutputSvc", || {
            let spatial = layer_index(spatial, 7, "spatial")?;
            let temporal = layer_index(temporal, 7, "temporal")?;
            self.engine()?.set_output_svc(id, spatial, temporal).map_err(err)
        })
    }

    /// Send-side bandwidth estimation on an endpoint: the transport-wide sequence number
    /// extension id its receiver negotiated and the estimate's bounds (bits/s); null: off.
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
                    let bps = |v: Option<f64>, default: u64, name: &str| v.map_or(Ok(default), |b| bitrate(b, name));
                    let min_bps = bps(o.min_bps, 30_000, "minBps")?;
                    let max_bps = bps(o.max_bps, 20_000_000, "maxBps")?.max(min_bps);
                    let initial_bps = bps(o.initial_bps, 1_000_000, "initialBps")?.clamp(min_bps, max_bps);
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
                    let temporal = layer_index(o.temporal_max, 7, "temporalMax")?;
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

    /// Reports a source's RFC 4733 events carried with `payloadType` (`telephone-event`, once
    /// per event); null stops it.
    #[napi]
    pub fn set_telephone_events(&self, source: u32, payload_type: Option<u32>) -> Result<()> {
        guard("setTelephoneEvents", || {
            let pt = payload_type.map(|pt| payload_type_of(pt)).transpose()?;
            self.engine()?.set_telephone_events(source, pt).map_err(err)
        })
    }

    /// Per payload type, what an output writes instead of its payloadType, or (no `to`) that it
    /// does not send such packets; replaces the previous map.
    #[napi]
    pub fn set_output_payload_map(&self, id: u32, entries: Vec<PayloadMapEntry>) -> Result<()> {
        guard("setOutputPayloadMap", || {
            let map = entries
                .iter()
                .map(|e| Ok((payload_type_of(e.from)?, e.to.map(payload_type_of).transpose()?)))
                .collect::<Result<Vec<_>>>()?;
            self.engine()?.set_output_payload_map(id, map).map_err(err)
        })
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

    /// Records a source to a new `.mjr` file (created before this returns); returns the
    /// recording's id for `stopRecording`.
    #[napi]
    pub fn start_recording(&self, source: u32, options: RecordingOptions) -> Result<u32> {
        guard("startRecording", || {
            let kind = match options.kind.as_str() {
                "audio" => MjrKind::Audio,
                "video" => MjrKind::Video,
                "data" => MjrKind::Data,
                other => return Err(err(format!("recording kind {other:?} (audio, video, data)"))),
            };
            let mut extensions = Vec::new();
            for e in options.extensions.unwrap_or_default() {
                let id = u8::try_from(e.id).map_err(|_| err(format!("extension id {}", e.id)))?;
                extensions.push((id, e.uri));
            }
            let created_us = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64);
            let info = MjrInfo { kind, codec: options.codec.to_ascii_lowercase(), fmtp: options.fmtp, extensions, created_us };
            self.engine()?.start_recording(source, &options.path, info).map_err(err)
        })
    }

    /// Records data-channel messages to a new `.mjr` file (codec "text" or "binary"); each
    /// message is handed over with `recordData`. Returns the recording's id.
    #[napi]
    pub fn start_data_recording(&self, path: String, codec: String) -> Result<u32> {
        guard("startDataRecording", || {
            let created_us = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64);
            let info = MjrInfo { kind: MjrKind::Data, codec, fmtp: None, extensions: Vec::new(), created_us };
            self.engine()?.start_data_recording(&path, info).map_err(err)
        })
    }

    /// One data-channel message for a data recording; false when the writer's queue was full
    /// or the message too long for a frame (dropped and counted).
    #[napi]
    pub fn record_data(&self, id: u32, message: Buffer) -> Result<bool> {
        guard("recordData", || self.engine()?.record_data(id, &message).map_err(err))
    }

    /// Stops a recording: queued packets are written and the file closed before this returns.
    #[napi]
    pub fn stop_recording(&self, id: u32) -> Result<RecordingResult> {
        guard("stopRecording", || {
            let s = self.engine()?.stop_recording(id).map_err(err)?;
            Ok(RecordingResult { packets: s.packets as f64, bytes: s.bytes as f64, error: s.error })
        })
    }

    #[napi]
    pub fn recorder_stats(&self) -> Result<RecorderCounters> {
        guard("recorderStats", || {
            let s = self.engine()?.recorder_stats();
            Ok(RecorderCounters {
                open_files: s.open_files as f64,
                packets_written: s.packets_written as f64,
                bytes_written: s.bytes_written as f64,
                packets_dropped: s.packets_dropped as f64,
                packets_oversized: s.packets_oversized as f64,
                write_errors: s.write_errors as f64,
                writes: s.writes as f64,
                panics: s.panics as f64,
            })
        })
    }

    #[napi]
    pub fn stats(&self) -> Result<EngineCounters> {
        guard("stats", || {
            let stats = self.engine()?.stats().map_err(err)?;
            Ok(EngineCounters::from_stats(&stats))
        })
    }

    /// A source's receive rate over the last half second (bits/s; 0 before it is measured).
    #[napi]
    pub fn source_bitrate(&self, id: u32) -> Result<f64> {
        guard("sourceBitrate", || Ok(self.engine()?.source_bitrate(id) as f64))
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

/// An RTP payload type (0..=127, RFC 3550 §5.1).
fn payload_type_of(pt: u32) -> Result<u8> {
    u8::try_from(pt).ok().filter(|pt| *pt <= 127).ok_or_else(|| Error::from_reason(format!("payload type {pt} is not 0..127")))
}
