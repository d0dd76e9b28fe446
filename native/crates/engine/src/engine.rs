//! The control side of the media engine: owns the media threads, assigns
//! ids, places endpoints on threads, and turns each call into a command
//! answered by the owning thread.
//! Calls are synchronous (a channel round trip) so errors reach the caller
//! and "closed" means the socket is closed when the call returns.
//!
//! One file at about 600 lines: every call is a few lines of the same shape (find the
//! owning thread, send the command, settle the threads it messaged), and placement, which
//! the calls share, is beside them.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::bandwidth::{BweConfig, LayerSet, SourceRates};
use crate::endpoint::{EndpointConfig, SrtpKeys};
use crate::event::EventSink;
use crate::mjr::MjrInfo;
use crate::recorder::{Recorder, RecorderStats, RecordingSummary};
use crate::router::{OutputConfig, SourceConfig, SourceRef};
use crate::stats::EngineStats;
use crate::worker::{Command, Mailbox, Worker};

/// How the engine chooses a media thread for an endpoint the caller does not place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Placement {
    /// By measured load; a group's (room's) endpoints stay on the threads that already carry
    /// it while those have headroom.
    #[default]
    Load,
    /// Each new endpoint on the next thread in turn, whatever its group: every room spans
    /// every thread (tests of the cross-thread path use it).
    RoundRobin,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineOptions {
    /// Media threads; 0 means one per CPU this process may run on.
    pub workers: usize,
    /// Pin media thread i to the i-th allowed CPU.
    pub pin_threads: bool,
    pub placement: Placement,
    /// Single-port mode: the address of each media thread's shared socket (one per thread,
    /// in thread order), on which every endpoint opened with `shared` lives. Empty: off.
    pub shared_ports: Vec<SocketAddr>,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self { workers: 1, pin_threads: false, placement: Placement::Load, shared_ports: Vec::new() }
    }
}

/// Media threads `EngineOptions::workers == 0` stands for: the CPUs this process may run on.
pub fn auto_workers() -> usize {
    let cpus = crate::sys::allowed_cpus().len();
    if cpus > 0 {
        cpus
    } else {
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineError(pub String);

impl std::fmt::Display for EngineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for EngineError {}

impl From<String> for EngineError {
    fn from(s: String) -> Self {
        EngineError(s)
    }
}

type Result<T> = std::result::Result<T, EngineError>;

/// How long a control call waits for its media thread before giving up (a thread that is
/// alive answers in microseconds; this bound only keeps a caller from hanging forever).
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

struct WorkerHandle {
    mailbox: Arc<Mailbox>,
    thread: Option<JoinHandle<()>>,
}

/// What an id names, and where it lives.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Placed {
    Endpoint { worker: usize, group: Option<u64> },
    Source(SourceRef),
    Output { worker: usize },
    /// A recording of a source (which may be gone: the file stays open until stopped).
    Recording { source: u32, worker: usize },
    /// A recording of data-channel messages, which the control plane hands over itself.
    DataRecording,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Endpoint,
    Source,
    Output,
    Recording,
}

/// The engine's map of ids to threads, and the endpoint counts placement weighs.
#[derive(Default)]
struct Directory {
    ids: HashMap<u32, Placed>,
    endpoints_per_worker: Vec<u32>,
    /// Endpoints per thread of each group.
    groups: HashMap<u64, Vec<u32>>,
    next_round_robin: usize,
}

/// A thread whose last load interval was busier than this (‰ of its time) takes no more of a
/// group's endpoints while another thread has room.
const HEADROOM_BUSY_PERMILLE: u32 = 700;
/// What placement assumes a new endpoint will add before its load is measured (packets/s):
/// a publisher or subscriber of one video and one audio stream.
const ENDPOINT_WEIGHT_PPS: u64 = 300;

pub struct Engine {
    workers: Vec<WorkerHandle>,
    mailboxes: Arc<[Arc<Mailbox>]>,
    placement_policy: Placement,
    next_id: AtomicU32,
    directory: Mutex<Directory>,
    closed: std::sync::atomic::AtomicBool,
    /// Every source's receive rate, as its home thread measures it (see `bandwidth`).
    rates: Arc<SourceRates>,
    /// Single-port mode: each media thread's shared socket address (empty: off).
    shared_addrs: Vec<SocketAddr>,
    /// The thread that writes recordings (see `recorder`).
    recorder: Recorder,
}

impl Engine {
    pub fn new(options: EngineOptions, events: EventSink) -> Result<Self> {
        let count = if options.workers == 0 { auto_workers() } else { options.workers }.clamp(1, 64);
        let cpus = crate::sys::allowed_cpus();
        let mut receivers = Vec::with_capacity(count);
        let mut mailboxes = Vec::with_capacity(count);
        for _ in 0..count {
            let (tx, rx) = channel();
            mailboxes.push(Arc::new(Mailbox::new(tx).map_err(|e| EngineError(format!("eventfd: {e}")))?));
            receivers.push(rx);
        }
        let mailboxes: Arc<[Arc<Mailbox>]> = mailboxes.into();
        if !options.shared_ports.is_empty() && options.shared_ports.len() != count {
            return Err(EngineError(format!("single-port mode needs one port per media thread: {} for {count} threads", options.shared_ports.len())));
        }
        let mut shared_sockets = Vec::with_capacity(options.shared_ports.len());
        for &address in &options.shared_ports {
            let socket = UdpSocket::bind(address).map_err(|e| EngineError(format!("bind shared port {address}: {e}")))?;
            socket.set_nonblocking(true).map_err(|e| EngineError(format!("nonblocking: {e}")))?;
            shared_sockets.push(socket);
        }
        let shared_addrs = shared_sockets.iter().map(|s| s.local_addr().map_err(|e| EngineError(e.to_string()))).collect::<Result<Vec<_>>>()?;
        let mut shared_sockets = shared_sockets.into_iter();
        let recorder = Recorder::new(events.clone()).map_err(|e| EngineError(format!("spawn recording writer: {e}")))?;
        let mut workers = Vec::with_capacity(count);
        let rates = Arc::new(SourceRates::default());
        let source_rates = rates.clone();
        for (index, rx) in receivers.into_iter().enumerate() {
            let pin = if options.pin_threads && !cpus.is_empty() { Some(cpus[index % cpus.len()]) } else { None };
            let worker = Worker::new(index, mailboxes.clone(), rx, events.clone(), pin, rates.clone(), shared_sockets.next(), recorder.queue())
                .map_err(|e| EngineError(format!("media thread {index}: {e}")))?;
            let thread = std::thread::Builder::new()
                .name(format!("ferry-media-{index}"))
                .spawn(move || worker.run())
                .map_err(|e| EngineError(format!("spawn media thread: {e}")))?;
            workers.push(WorkerHandle { mailbox: mailboxes[index].clone(), thread: Some(thread) });
        }
        Ok(Self {
            workers,
            mailboxes,
            placement_policy: options.placement,
            next_id: AtomicU32::new(1),
            directory: Mutex::new(Directory { endpoints_per_worker: vec![0; count], ..Directory::default() }),
            closed: std::sync::atomic::AtomicBool::new(false),
            rates: source_rates,
            shared_addrs,
            recorder,
        })
    }

    pub fn worker_count(&self) -> usize {
        self.workers.len()
    }

    fn directory(&self) -> std::sync::MutexGuard<'_, Directory> {
        // A poisoned lock only means another caller panicked mid-update of plain maps; they
        // are still consistent, so keep going.
        self.directory.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn placed(&self, id: u32, kind: Kind) -> Result<Placed> {
        let found = self.directory().ids.get(&id).copied();
        match (found, kind) {
            (Some(p @ Placed::Endpoint { .. }), Kind::Endpoint)
            | (Some(p @ Placed::Source(_)), Kind::Source)
            | (Some(p @ Placed::Output { .. }), Kind::Output)
            | (Some(p @ (Placed::Recording { .. } | Placed::DataRecording)), Kind::Recording) => Ok(p),
            _ => Err(EngineError(format!("no {} {id}", kind_name(kind)))),
        }
    }

    fn worker_of(&self, id: u32, kind: Kind) -> Result<usize> {
        Ok(match self.placed(id, kind)? {
            Placed::Endpoint { worker, .. } | Placed::Output { worker } | Placed::Recording { worker, .. } => worker,
            Placed::Source(r) => r.home,
            Placed::DataRecording => return Err(EngineError(format!("recording {id} is of data, on no media thread"))),
        })
    }

    fn source_ref(&self, id: u32) -> Result<SourceRef> {
        match self.placed(id, Kind::Source)? {
            Placed::Source(r) => Ok(r),
            _ => Err(EngineError(format!("no source {id}"))),
        }
    }

    fn call<T>(&self, worker: usize, make: impl FnOnce(Sender<std::result::Result<T, String>>) -> Command) -> Result<T> {
        if self.closed.load(Ordering::Acquire) {
            return Err(EngineError("engine is closed".into()));
        }
        let handle = self.workers.get(worker).ok_or_else(|| EngineError(format!("no media thread {worker}")))?;
        let (tx, rx) = channel();
        if !handle.mailbox.send(make(tx)) {
            return Err(EngineError("media thread is gone".into()));
        }
        match rx.recv_timeout(REPLY_TIMEOUT) {
            Ok(r) => r.map_err(EngineError),
            Err(_) => Err(EngineError("media thread did not answer".into())),
        }
    }

    /// Waits until the threads in `mask` have run every message sent to them so far, so a
    /// route is live in every thread it spans when the call that made it returns.
    fn settle(&self, mask: u64) -> Result<()> {
        let mut mask = mask;
        while mask != 0 {
            let w = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            self.call(w, |reply| Command::Barrier { reply })?;
        }
        Ok(())
    }

    fn new_id(&self) -> u32 {
        // Ids are never reused within an engine's life (u32 lasts ~4e9 creations).
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Load of each thread as placement sees it: measured packets/s plus a weight per endpoint.
    fn scores(&self, dir: &Directory) -> Vec<(u64, u32)> {
        self.mailboxes
            .iter()
            .enumerate()
            .map(|(w, mb)| {
                let endpoints = u64::from(dir.endpoints_per_worker.get(w).copied().unwrap_or(0));
                (mb.load_pps.load(Ordering::Relaxed) + endpoints * ENDPOINT_WEIGHT_PPS, mb.busy_permille.load(Ordering::Relaxed))
            })
            .collect()
    }

    /// Chooses the thread of a new endpoint (see `Placement`).
    fn place(&self, dir: &mut Directory, group: Option<u64>) -> usize {
        let n = self.workers.len();
        if n == 1 {
            return 0;
        }
        if self.placement_policy == Placement::RoundRobin {
            let w = dir.next_round_robin % n;
            dir.next_round_robin = (w + 1) % n;
            return w;
        }
        let scores = self.scores(dir);
        choose_thread(&scores, group.and_then(|g| dir.groups.get(&g)).map(Vec::as_slice))
    }

    /// Binds the socket here (so a bind error reaches the caller) and hands it to a media thread:
    /// the one named in `config.worker`, else the one placement chooses.
    pub fn open_endpoint(&self, config: EndpointConfig) -> Result<(u32, SocketAddr)> {
        if let Some(w) = config.worker {
            if w >= self.workers.len() {
                return Err(EngineError(format!("no media thread {w} (have {})", self.workers.len())));
            }
        }
        // Single-port mode: no socket of its own; its thread's shared socket carries it.
        let socket = if config.shared {
            if self.shared_addrs.is_empty() {
                return Err(EngineError("single-port mode is off: no shared port to open a shared endpoint on".into()));
            }
            if config.ice.is_none() {
                return Err(EngineError("a shared endpoint needs ICE: checks are routed to it by ufrag".into()));
            }
            None
        } else {
            let socket = UdpSocket::bind(config.bind).map_err(|e| EngineError(format!("bind {}: {e}", config.bind)))?;
            socket.set_nonblocking(true).map_err(|e| EngineError(format!("nonblocking: {e}")))?;
            Some(socket)
        };
        let id = self.new_id();
        let group = config.group;
        // Placed (and counted) before the call, so concurrent opens see each other.
        let worker = {
            let mut dir = self.directory();
            let w = match config.worker {
                Some(w) => w,
                None => self.place(&mut dir, group),
            };
            dir.ids.insert(id, Placed::Endpoint { worker: w, group });
            adjust(&mut dir, w, group, true);
            w
        };
        let local = match &socket {
            Some(socket) => socket.local_addr().map_err(|e| EngineError(e.to_string())),
            None => self.shared_addrs.get(worker).copied().ok_or_else(|| EngineError(format!("no shared port on media thread {worker}"))),
        };
        // ICE-TCP listens on the same port number as the endpoint's UDP socket.
        let tcp = match (&local, config.ice_tcp && config.ice.is_some() && socket.is_some()) {
            (Ok(local), true) => match std::net::TcpListener::bind(*local).and_then(|l| l.set_nonblocking(true).map(|()| l)) {
                Ok(listener) => Ok(Some(listener)),
                Err(e) => Err(EngineError(format!("bind TCP {local}: {e}"))),
            },
            _ => Ok(None),
        };
        let opened = local.and_then(|local| tcp.map(|tcp| (local, tcp))).and_then(|(local, tcp)| {
            self.call(worker, |reply| Command::OpenEndpoint { id, socket, tcp, config, reply }).map(|()| local)
        });
        if opened.is_err() {
            let mut dir = self.directory();
            dir.ids.remove(&id);
            adjust(&mut dir, worker, group, false);
        }
        opened.map(|local| (id, local))
    }

    /// Media thread of an endpoint.
    pub fn endpoint_worker(&self, id: u32) -> Result<usize> {
        self.worker_of(id, Kind::Endpoint)
    }

    /// Closes the socket (before returning) and removes the endpoint's sources and outputs.
    pub fn close_endpoint(&self, id: u32) -> Result<()> {
        let Placed::Endpoint { worker, group } = self.placed(id, Kind::Endpoint)? else {
            return Err(EngineError(format!("no endpoint {id}")));
        };
        let (closed, messaged) = self.call(worker, |reply| Command::CloseEndpoint { id, reply })?;
        {
            let mut dir = self.directory();
            if dir.ids.remove(&id).is_some() {
                adjust(&mut dir, worker, group, false);
            }
            for sid in closed.sources.iter().chain(closed.outputs.iter()) {
                dir.ids.remove(sid);
            }
        }
        self.settle(messaged)
    }

    pub fn set_srtp(&self, id: u32, keys: SrtpKeys) -> Result<()> {
        let w = self.worker_of(id, Kind::Endpoint)?;
        self.call(w, |reply| Command::SetSrtp { id, keys, reply })
    }

    pub fn set_remote(&self, id: u32, remote: Option<SocketAddr>) -> Result<()> {
        let w = self.worker_of(id, Kind::Endpoint)?;
        self.call(w, |reply| Command::SetRemote { id, remote, reply })
    }

    /// ICE restart: new local credentials and the peer's new ufrag (RFC 8445 §9).
    pub fn restart_ice(&self, id: u32, ufrag: String, pwd: String, remote_ufrag: Option<String>) -> Result<()> {
        let w = self.worker_of(id, Kind::Endpoint)?;
        self.call(w, |reply| Command::RestartIce { id, ufrag, pwd, remote_ufrag, reply })
    }

    pub fn set_ice_remote_ufrag(&self, id: u32, ufrag: Option<String>) -> Result<()> {
        let w = self.worker_of(id, Kind::Endpoint)?;
        self.call(w, |reply| Command::SetIceRemoteUfrag { id, ufrag, reply })
    }

    /// Sends one datagram from the endpoint's socket (DTLS records from the control plane).
    pub fn send_raw(&self, id: u32, to: SocketAddr, data: Vec<u8>) -> Result<()> {
        let w = self.worker_of(id, Kind::Endpoint)?;
        self.call(w, |reply| Command::SendRaw { id, to, data, reply })
    }

    pub fn add_source(&self, endpoint: u32, config: SourceConfig) -> Result<u32> {
        let w = self.worker_of(endpoint, Kind::Endpoint)?;
        let id = self.new_id();
        let r = SourceRef { id, home: w, codec: config.codec, clock_rate: config.clock_rate, kind: config.kind };
        self.call(w, |reply| Command::AddSource { id, endpoint, config, reply })?;
        self.directory().ids.insert(id, Placed::Source(r));
        Ok(id)
    }

    pub fn remove_source(&self, id: u32) -> Result<()> {
        let w = self.worker_of(id, Kind::Source)?;
        let messaged = self.call(w, |reply| Command::RemoveSource { id, reply })?;
        self.directory().ids.remove(&id);
        // Outputs on other threads have let go of the source when this returns.
        self.settle(messaged)
    }

    /// An output on `endpoint`, fed by `config.source` wherever that source lives: a source on
    /// another media thread is decrypted there once and handed over.
    pub fn add_output(&self, endpoint: u32, config: OutputConfig) -> Result<u32> {
        let w = self.worker_of(endpoint, Kind::Endpoint)?;
        let source = config.source.map(|s| self.source_ref(s)).transpose()?;
        let id = self.new_id();
        let messaged = self.call(w, |reply| Command::AddOutput { id, endpoint, config, source, reply })?;
        self.directory().ids.insert(id, Placed::Output { worker: w });
        self.settle(messaged)?;
        Ok(id)
    }

    /// Feeds the output from another source (or none), on any media thread; the receiver's
    /// sequence numbers and timestamps continue (lessons §4). With `on_keyframe`, when the new
    /// source has a known codec and the output is being fed, the old source keeps feeding it
    /// until the first packet of a keyframe of the new source arrives, so the receiver never
    /// sees a layer it cannot decode; a keyframe is requested from the new source at once. A
    /// later switch replaces a pending one.
    pub fn switch_output(&self, id: u32, source: Option<u32>, on_keyframe: bool) -> Result<()> {
        let w = self.worker_of(id, Kind::Output)?;
        let source = source.map(|s| self.source_ref(s)).transpose()?;
        let messaged = self.call(w, |reply| Command::SwitchOutput { id, source, on_keyframe, reply })?;
        self.settle(messaged)
    }

    /// The RFC 4588 stream an output retransmits on (`None`: retransmit packets as sent).
    pub fn set_output_rtx(&self, id: u32, rtx: Option<crate::router::RtxConfig>) -> Result<()> {
        let w = self.worker_of(id, Kind::Output)?;
        self.call(w, |reply| Command::SetOutputRtx { id, rtx, reply })
    }

    /// The highest VP8 temporal layer an output forwards (`None`: every layer).
    pub fn set_output_temporal(&self, id: u32, layer: Option<u8>) -> Result<()> {
        let w = self.worker_of(id, Kind::Output)?;
        self.call(w, |reply| Command::SetOutputTemporal { id, layer, reply })
    }

    /// A source's receive rate over the last half second (bits/s; 0 before it is measured),
    /// read without a round trip to its media thread.
    pub fn source_bitrate(&self, id: u32) -> u64 {
        self.rates.get(id).bps
    }

    /// Keeps (or stops keeping) a video source's current group of pictures, so outputs that
    /// start on it get a picture at once (see `Router::set_keyframe_cache`).
    pub fn set_keyframe_cache(&self, source: u32, on: bool) -> Result<()> {
        let w = self.worker_of(source, Kind::Source)?;
        self.call(w, |reply| Command::SetKeyframeCache { source, on, reply })
    }

    /// VP9 SVC layers an output forwards (see `Router::set_output_svc`).
    pub fn set_output_svc(&self, id: u32, spatial: Option<u8>, temporal: Option<u8>) -> Result<()> {
        let w = self.worker_of(id, Kind::Output)?;
        let messaged = self.call(w, |reply| Command::SetOutputSvc { id, spatial, temporal, reply })?;
        self.settle(messaged)
    }

    /// Send-side bandwidth estimation on an endpoint (see `Router::set_send_bwe`), or off.
    pub fn set_send_bwe(&self, endpoint: u32, config: Option<BweConfig>) -> Result<()> {
        let w = self.worker_of(endpoint, Kind::Endpoint)?;
        let messaged = self.call(w, |reply| Command::SetSendBwe { endpoint, config, reply })?;
        self.settle(messaged)
    }

    /// Lets an output choose among simulcast `layers` (source ids, lowest first) by its
    /// transport's estimate, up to `preferred` and VP8 temporal layer `temporal_max` (see
    /// `Router::set_output_layers`); `None` hands the choice back to `switch_output`.
    pub fn set_output_layers(&self, id: u32, layers: Option<(Vec<u32>, usize, Option<u8>)>) -> Result<()> {
        let w = self.worker_of(id, Kind::Output)?;
        let set = match layers {
            Some((sources, preferred, temporal_max)) => {
                let layers = sources.into_iter().map(|s| self.source_ref(s)).collect::<Result<Vec<_>>>()?;
                Some(LayerSet { layers, preferred, temporal_max })
            }
            None => None,
        };
        let messaged = self.call(w, |reply| Command::SetOutputLayers { id, set, reply })?;
        self.settle(messaged)
    }

    pub fn pause_output(&self, id: u32, paused: bool) -> Result<()> {
        let w = self.worker_of(id, Kind::Output)?;
        self.call(w, |reply| Command::PauseOutput { id, paused, reply })
    }

    pub fn remove_output(&self, id: u32) -> Result<()> {
        let w = self.worker_of(id, Kind::Output)?;
        self.call(w, |reply| Command::RemoveOutput { id, reply })?;
        self.directory().ids.remove(&id);
        Ok(())
    }

    pub fn request_keyframe(&self, source: u32) -> Result<()> {
        let w = self.worker_of(source, Kind::Source)?;
        self.call(w, |reply| Command::RequestKeyframe { source, reply })
    }

    /// Reports the RFC 4733 events a source carries with `payload_type` (`Event::TelephoneEvent`,
    /// once per event), or stops (`None`).
    pub fn set_telephone_events(&self, source: u32, payload_type: Option<u8>) -> Result<()> {
        let w = self.worker_of(source, Kind::Source)?;
        self.call(w, |reply| Command::SetTelephoneEvents { source, payload_type, reply })
    }

    /// Per payload type, what an output writes (`Some`) or that it drops such packets (`None`);
    /// see `Router::set_output_payload_map`.
    pub fn set_output_payload_map(&self, id: u32, map: Vec<(u8, Option<u8>)>) -> Result<()> {
        let w = self.worker_of(id, Kind::Output)?;
        self.call(w, |reply| Command::SetOutputPayloadMap { id, map, reply })
    }

    /// Meters a source's RFC 6464 audio level (extension `extension_id`), reporting the average
    /// of every `packets` packets as `Event::AudioLevel`; `None` stops metering.
    pub fn set_audio_level_meter(&self, source: u32, meter: Option<(u8, u32)>) -> Result<()> {
        if let Some((id, _)) = meter {
            // RFC 8285 §4.2/§4.3: one-byte ids are 1..=14, two-byte ids 1..=255.
            if id == 0 {
                return Err(EngineError("audio level extension id must be 1..=255".into()));
            }
        }
        let w = self.worker_of(source, Kind::Source)?;
        self.call(w, |reply| Command::SetAudioLevelMeter { source, meter, reply })
    }

    /// Caps the bitrate of the publisher behind `source` with REMB (repeated every second), or stops.
    pub fn set_bitrate_cap(&self, source: u32, bps: Option<u64>) -> Result<()> {
        let w = self.worker_of(source, Kind::Source)?;
        self.call(w, |reply| Command::SetBitrateCap { source, bps, reply })
    }

    /// The publisher's RFC 4588 retransmission stream of a source (unwrapped to it), or none.
    pub fn set_source_rtx(&self, source: u32, rtx: Option<crate::router::RtxConfig>) -> Result<()> {
        let w = self.worker_of(source, Kind::Source)?;
        self.call(w, |reply| Command::SetSourceRtx { source, rtx, reply })
    }

    /// Records `source` to a new `.mjr` file at `path` (created, or truncated, before this
    /// returns, so a bad path fails here). Its media thread hands each decrypted packet to the
    /// recording writer from now on. Returns the recording's id.
    pub fn start_recording(&self, source: u32, path: &str, info: MjrInfo) -> Result<u32> {
        let w = self.worker_of(source, Kind::Source)?;
        let id = self.new_id();
        self.recorder.open(id, path, info)?;
        if let Err(e) = self.call(w, |reply| Command::SetRecording { source, recording: Some(id), reply }) {
            let _ = self.recorder.close(id);
            return Err(e);
        }
        self.directory().ids.insert(id, Placed::Recording { source, worker: w });
        Ok(id)
    }

    /// Records data-channel messages (`info.kind` Data) to a new `.mjr` file at `path`; the
    /// control plane hands each message over with `record_data`. Returns the recording's id.
    pub fn start_data_recording(&self, path: &str, info: MjrInfo) -> Result<u32> {
        if info.kind != crate::mjr::MjrKind::Data {
            return Err(EngineError("a data recording records data".into()));
        }
        let id = self.new_id();
        self.recorder.open(id, path, info)?;
        self.directory().ids.insert(id, Placed::DataRecording);
        Ok(id)
    }

    /// One data-channel message for a data recording, timed now; never blocks (a full queue
    /// drops and counts). False when it was not taken.
    pub fn record_data(&self, id: u32, message: &[u8]) -> Result<bool> {
        match self.placed(id, Kind::Recording)? {
            Placed::DataRecording => {
                let queue = self.recorder.queue();
                Ok(queue.push(id, message, queue.now_us()))
            }
            _ => Err(EngineError(format!("recording {id} is not of data"))),
        }
    }

    /// Stops a recording: its source stops feeding it (if still there), then what is queued
    /// is written and the file closed before this returns.
    pub fn stop_recording(&self, id: u32) -> Result<RecordingSummary> {
        let placed = self.placed(id, Kind::Recording)?;
        self.directory().ids.remove(&id);
        if let Placed::Recording { source, worker } = placed {
            // The source may be gone already (its endpoint closed first): then nothing feeds it.
            if self.directory().ids.get(&source).is_some() {
                let _ = self.call(worker, |reply| Command::SetRecording { source, recording: None, reply });
            }
        }
        self.recorder.close(id)?.ok_or_else(|| EngineError(format!("no recording {id}")))
    }

    pub fn recorder_stats(&self) -> RecorderStats {
        self.recorder.stats()
    }

    pub fn stats(&self) -> Result<EngineStats> {
        let mut workers = Vec::with_capacity(self.workers.len());
        for w in 0..self.workers.len() {
            workers.push(self.call(w, |reply| Command::Stats { reply })?);
        }
        Ok(EngineStats { workers })
    }

    /// Stops every media thread; every socket is closed when this returns. Idempotent.
    pub fn close(&mut self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        for w in &self.workers {
            w.mailbox.send(Command::Shutdown);
        }
        for w in &mut self.workers {
            if let Some(t) = w.thread.take() {
                let _ = t.join();
            }
        }
        // The media threads are gone, so nothing feeds a recording: every file is written
        // and closed (shutdown ends recordings cleanly).
        self.recorder.shutdown();
        let mut dir = self.directory();
        dir.ids.clear();
        dir.groups.clear();
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.close();
    }
}

/// Load placement, without I/O: `scores[w]` is thread w's (load in packets/s plus endpoint
/// weight, busy ‰); `members[w]` how many endpoints of the new endpoint's group it holds. The
/// least loaded of the group's threads that still have headroom, else the least loaded of all.
fn choose_thread(scores: &[(u64, u32)], members: Option<&[u32]>) -> usize {
    let least = |candidates: &mut dyn Iterator<Item = usize>| candidates.min_by_key(|&w| (scores[w].0, w));
    if let Some(members) = members {
        let mut with_room = (0..scores.len()).filter(|&w| members.get(w).is_some_and(|&c| c > 0) && scores[w].1 < HEADROOM_BUSY_PERMILLE);
        if let Some(w) = least(&mut with_room) {
            return w;
        }
    }
    least(&mut (0..scores.len())).unwrap_or(0)
}

/// Counts an endpoint in (or out of) its thread and group.
fn adjust(dir: &mut Directory, worker: usize, group: Option<u64>, add: bool) {
    let n = dir.endpoints_per_worker.len();
    if let Some(c) = dir.endpoints_per_worker.get_mut(worker) {
        *c = if add { c.saturating_add(1) } else { c.saturating_sub(1) };
    }
    if let Some(g) = group {
        let members = dir.groups.entry(g).or_insert_with(|| vec![0; n]);
        if let Some(c) = members.get_mut(worker) {
            *c = if add { c.saturating_add(1) } else { c.saturating_sub(1) };
        }
        if members.iter().all(|&c| c == 0) {
            dir.groups.remove(&g);
        }
    }
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Endpoint => "endpoint",
        Kind::Source => "source",
        Kind::Output => "output",
        Kind::Recording => "recording",
    }
}

#[cfg(test)]
mod tests {
    use super::choose_thread;

    #[test]
    fn least_loaded_thread_without_a_group() {
        assert_eq!(choose_thread(&[(900, 100), (300, 50), (300, 40)], None), 1, "ties go to the lower index");
        assert_eq!(choose_thread(&[], None), 0);
    }

    #[test]
    fn a_group_stays_on_its_threads_while_they_have_headroom() {
        // The group lives on thread 0, the busier one, which still has room: it stays there.
        assert_eq!(choose_thread(&[(5000, 600), (100, 10)], Some(&[3, 0])), 0);
        // Spread over 0 and 2: the less loaded of those two, never the idle thread 1.
        assert_eq!(choose_thread(&[(5000, 600), (0, 0), (4000, 500)], Some(&[3, 0, 1])), 2);
    }

    #[test]
    fn a_group_spills_over_when_its_threads_are_busy() {
        // Thread 0 carries the group but is 80 % busy: the least loaded thread takes the next one.
        assert_eq!(choose_thread(&[(9000, 800), (3000, 300), (100, 20)], Some(&[4, 0, 0])), 2);
        // Once the group has a thread with room, it stays there.
        assert_eq!(choose_thread(&[(9000, 800), (3000, 300), (150, 25)], Some(&[4, 0, 1])), 2);
    }
}
