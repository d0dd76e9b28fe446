//! The control side of the media engine: owns the media threads, assigns
//! ids, and turns each call into a command answered by the owning thread.
//! Calls are synchronous (a channel round trip) so errors reach the caller
//! and "closed" means the socket is closed when the call returns.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::endpoint::{EndpointConfig, SrtpKeys};
use crate::event::EventSink;
use crate::router::{OutputConfig, SourceConfig};
use crate::stats::EngineStats;
use crate::sys::WakeFd;
use crate::worker::{Command, Worker};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineOptions {
    /// Media threads; a route (source → outputs) lives inside one thread.
    pub workers: usize,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self { workers: 1 }
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
    commands: Sender<Command>,
    wake: Arc<WakeFd>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Endpoint,
    Source,
    Output,
}

pub struct Engine {
    workers: Vec<WorkerHandle>,
    next_id: AtomicU32,
    next_worker: AtomicUsize,
    /// Which worker owns each id, and what the id names.
    placement: Mutex<HashMap<u32, (Kind, usize)>>,
    closed: std::sync::atomic::AtomicBool,
}

impl Engine {
    pub fn new(options: EngineOptions, events: EventSink) -> Result<Self> {
        let count = options.workers.clamp(1, 64);
        let mut workers = Vec::with_capacity(count);
        for index in 0..count {
            let (tx, rx) = channel();
            let wake = Arc::new(WakeFd::new().map_err(|e| EngineError(format!("eventfd: {e}")))?);
            let worker = Worker::new(index, wake.clone(), rx, events.clone())
                .map_err(|e| EngineError(format!("media thread {index}: {e}")))?;
            let thread = std::thread::Builder::new()
                .name(format!("ferry-media-{index}"))
                .spawn(move || worker.run())
                .map_err(|e| EngineError(format!("spawn media thread: {e}")))?;
            workers.push(WorkerHandle { commands: tx, wake, thread: Some(thread) });
        }
        Ok(Self {
            workers,
            next_id: AtomicU32::new(1),
            next_worker: AtomicUsize::new(0),
            placement: Mutex::new(HashMap::new()),
            closed: std::sync::atomic::AtomicBool::new(false),
        })
    }

    pub fn worker_count(&self) -> usize {
        self.workers.len()
    }

    fn placement(&self) -> std::sync::MutexGuard<'_, HashMap<u32, (Kind, usize)>> {
        // A poisoned lock only means another caller panicked mid-update of a plain map; the
        // map itself is still consistent, so keep going.
        self.placement.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn worker_of(&self, id: u32, kind: Kind) -> Result<usize> {
        match self.placement().get(&id) {
            Some((k, w)) if *k == kind => Ok(*w),
            _ => Err(EngineError(format!("no {} {id}", kind_name(kind)))),
        }
    }

    fn call<T>(&self, worker: usize, make: impl FnOnce(Sender<std::result::Result<T, String>>) -> Command) -> Result<T> {
        if self.closed.load(Ordering::Acquire) {
            return Err(EngineError("engine is closed".into()));
        }
        let handle = self.workers.get(worker).ok_or_else(|| EngineError(format!("no media thread {worker}")))?;
        let (tx, rx) = channel();
        handle.commands.send(make(tx)).map_err(|_| EngineError("media thread is gone".into()))?;
        handle.wake.wake();
        match rx.recv_timeout(REPLY_TIMEOUT) {
            Ok(r) => r.map_err(EngineError),
            Err(_) => Err(EngineError("media thread did not answer".into())),
        }
    }

    fn new_id(&self) -> u32 {
        // Ids are never reused within an engine's life (u32 lasts ~4e9 creations).
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Binds the socket here (so a bind error reaches the caller) and hands it to a media thread.
    pub fn open_endpoint(&self, config: EndpointConfig) -> Result<(u32, SocketAddr)> {
        let worker = match config.worker {
            Some(w) if w < self.workers.len() => w,
            Some(w) => return Err(EngineError(format!("no media thread {w} (have {})", self.workers.len()))),
            None => self.next_worker.fetch_add(1, Ordering::Relaxed) % self.workers.len(),
        };
        let socket = UdpSocket::bind(config.bind).map_err(|e| EngineError(format!("bind {}: {e}", config.bind)))?;
        socket.set_nonblocking(true).map_err(|e| EngineError(format!("nonblocking: {e}")))?;
        let local = socket.local_addr().map_err(|e| EngineError(e.to_string()))?;
        let id = self.new_id();
        self.call(worker, |reply| Command::OpenEndpoint { id, socket, config, reply })?;
        self.placement().insert(id, (Kind::Endpoint, worker));
        Ok((id, local))
    }

    /// Closes the socket (before returning) and removes the endpoint's sources and outputs.
    pub fn close_endpoint(&self, id: u32) -> Result<()> {
        let w = self.worker_of(id, Kind::Endpoint)?;
        let closed = self.call(w, |reply| Command::CloseEndpoint { id, reply })?;
        let mut placement = self.placement();
        placement.remove(&id);
        for sid in closed.sources.iter().chain(closed.outputs.iter()) {
            placement.remove(sid);
        }
        Ok(())
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
        self.call(w, |reply| Command::AddSource { id, endpoint, config, reply })?;
        self.placement().insert(id, (Kind::Source, w));
        Ok(id)
    }

    pub fn remove_source(&self, id: u32) -> Result<()> {
        let w = self.worker_of(id, Kind::Source)?;
        self.call(w, |reply| Command::RemoveSource { id, reply })?;
        self.placement().remove(&id);
        Ok(())
    }

    pub fn add_output(&self, endpoint: u32, config: OutputConfig) -> Result<u32> {
        let w = self.worker_of(endpoint, Kind::Endpoint)?;
        if let Some(src) = config.source {
            let sw = self.worker_of(src, Kind::Source)?;
            if sw != w {
                return Err(EngineError(format!("source {src} lives on media thread {sw}, endpoint {endpoint} on {w}")));
            }
        }
        let id = self.new_id();
        self.call(w, |reply| Command::AddOutput { id, endpoint, config, reply })?;
        self.placement().insert(id, (Kind::Output, w));
        Ok(id)
    }

    /// Feeds the output from another source (or none); the receiver's sequence numbers and
    /// timestamps continue (lessons §4). With `on_keyframe`, when the new source has a known
    /// codec and the output is being fed, the old source keeps feeding it until the first
    /// packet of a keyframe of the new source arrives, so the receiver never sees a layer it
    /// cannot decode; a keyframe is requested from the new source at once. A later switch
    /// replaces a pending one.
    pub fn switch_output(&self, id: u32, source: Option<u32>, on_keyframe: bool) -> Result<()> {
        let w = self.worker_of(id, Kind::Output)?;
        if let Some(src) = source {
            let sw = self.worker_of(src, Kind::Source)?;
            if sw != w {
                return Err(EngineError(format!("source {src} lives on another media thread")));
            }
        }
        self.call(w, |reply| Command::SwitchOutput { id, source, on_keyframe, reply })
    }

    pub fn pause_output(&self, id: u32, paused: bool) -> Result<()> {
        let w = self.worker_of(id, Kind::Output)?;
        self.call(w, |reply| Command::PauseOutput { id, paused, reply })
    }

    pub fn remove_output(&self, id: u32) -> Result<()> {
        let w = self.worker_of(id, Kind::Output)?;
        self.call(w, |reply| Command::RemoveOutput { id, reply })?;
        self.placement().remove(&id);
        Ok(())
    }

    pub fn request_keyframe(&self, source: u32) -> Result<()> {
        let w = self.worker_of(source, Kind::Source)?;
        self.call(w, |reply| Command::RequestKeyframe { source, reply })
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
            let _ = w.commands.send(Command::Shutdown);
            w.wake.wake();
        }
        for w in &mut self.workers {
            if let Some(t) = w.thread.take() {
                let _ = t.join();
            }
        }
        self.placement().clear();
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.close();
    }
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Endpoint => "endpoint",
        Kind::Source => "source",
        Kind::Output => "output",
    }
}
