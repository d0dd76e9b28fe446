//! The recording writer: one thread that turns recorded packets into `.mjr` files (see `mjr`).
//!
//! A media thread hands each decrypted packet of a recorded source to [`RecorderQueue::push`]:
//! a copy into a recycled buffer and a push on a bounded lock-free queue. When the queue is
//! full (a disk slower than the media) the packet is dropped and counted; the media thread
//! never waits for the disk. The writer thread drains the queue, appends frames to each file's
//! buffer and writes a buffer when it is large or old, so the disk sees few large writes.
//!
//! A file's bytes are always a whole header and whole frames: the header is written when the
//! file is made (its first-packet time patched in place when that packet comes, see `mjr`), a
//! failed write is cut back to the last whole frame, and janus-pp-rec reads what is there. Errors (disk full, permissions) are
//! reported once per recording as an event and counted; the file stops growing.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_queue::ArrayQueue;

use crate::event::{Event, EventSink};
use crate::mjr::{MjrInfo, MjrWriter, MAX_FRAME};
use crate::worker::panic_message;

/// Packets that may wait for the writer: about 1.5 s of a 5 Mbit/s video stream plus audio,
/// or 100 ms of a thousand of them. Each slot's buffer is reused.
const QUEUE_PACKETS: usize = 8192;
/// A file's buffer is written when it reaches this size …
const FLUSH_BYTES: usize = 256 * 1024;
/// … or when its oldest byte has waited this long.
const FLUSH_AGE: Duration = Duration::from_millis(250);
/// The writer sleeps this long when there is nothing to do (commands wake it at once).
const IDLE_WAIT: Duration = Duration::from_millis(10);
/// Packets taken from the queue before commands and flushes get their turn.
const PACKETS_PER_PASS: usize = 4096;

/// One recorded packet on its way to the writer.
struct Recorded {
    recording: u32,
    arrival_us: u64,
    data: Vec<u8>,
}

/// What media threads share with the writer.
pub struct RecorderQueue {
    queue: ArrayQueue<Recorded>,
    /// Buffers the writer is done with, for producers to reuse (no allocation per packet).
    free: ArrayQueue<Vec<u8>>,
    /// The clock `arrival_us` counts from, and that instant on the Unix clock.
    epoch: Instant,
    epoch_unix_us: u64,
    dropped: AtomicU64,
    oversized: AtomicU64,
    /// Failed writes: a header at open (on the caller's thread) or a batch (the writer's).
    write_errors: AtomicU64,
}

impl RecorderQueue {
    fn new() -> Self {
        let epoch_unix_us = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64);
        Self {
            queue: ArrayQueue::new(QUEUE_PACKETS),
            free: ArrayQueue::new(QUEUE_PACKETS),
            epoch: Instant::now(),
            epoch_unix_us,
            dropped: AtomicU64::new(0),
            oversized: AtomicU64::new(0),
            write_errors: AtomicU64::new(0),
        }
    }

    /// Now on this queue's clock (µs), for what the control plane records itself (data).
    pub fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    /// µs from this queue's clock to `instant` (a media thread's start), to offset its clock.
    pub fn offset_of(&self, instant: Instant) -> u64 {
        instant.saturating_duration_since(self.epoch).as_micros() as u64
    }

    /// Hands a packet to the writer, or drops and counts it; never blocks. `arrival_us` is on
    /// this queue's clock.
    pub fn push(&self, recording: u32, packet: &[u8], arrival_us: u64) -> bool {
        if packet.len() > MAX_FRAME {
            self.oversized.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        let mut data = self.free.pop().unwrap_or_else(|| Vec::with_capacity(MAX_FRAME));
        data.clear();
        data.extend_from_slice(packet);
        match self.queue.push(Recorded { recording, arrival_us, data }) {
            Ok(()) => true,
            Err(back) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                let _ = self.free.push(back.data);
                false
            }
        }
    }
}

/// What a closed recording wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordingSummary {
    pub packets: u64,
    pub bytes: u64,
    /// The first write error, if any (the file holds what was written before it).
    pub error: Option<String>,
}

/// The writer's counters, for stats and the admin API.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecorderStats {
    pub open_files: u64,
    pub packets_written: u64,
    pub bytes_written: u64,
    /// Packets a full queue dropped (the disk fell behind).
    pub packets_dropped: u64,
    /// Packets over 1500 bytes, which janus-pp-rec would skip, not recorded.
    pub packets_oversized: u64,
    pub write_errors: u64,
    pub writes: u64,
    pub panics: u64,
}

enum Command {
    /// `written`: the header's bytes, already in the file.
    Open { id: u32, file: File, mjr: MjrWriter, written: u64, reply: Sender<()> },
    Close { id: u32, reply: Sender<Option<RecordingSummary>> },
    Stats { reply: Sender<RecorderStats> },
    Shutdown,
}

/// The writer thread and its queue; owned by the engine.
pub struct Recorder {
    queue: Arc<RecorderQueue>,
    commands: Sender<Command>,
    thread: Option<JoinHandle<()>>,
}

const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

impl Recorder {
    pub fn new(events: EventSink) -> std::io::Result<Self> {
        let queue = Arc::new(RecorderQueue::new());
        let (commands, rx) = channel();
        let writer = Writer { queue: queue.clone(), commands: rx, events, files: HashMap::new(), stats: RecorderStats::default(), running: true };
        let thread = std::thread::Builder::new().name("ferry-recorder".into()).spawn(move || writer.run())?;
        Ok(Self { queue, commands, thread: Some(thread) })
    }

    pub fn queue(&self) -> Arc<RecorderQueue> {
        self.queue.clone()
    }

    /// Creates (truncates) the file at `path` and writes its header here, so the caller learns
    /// of a bad path, a missing permission or a full disk at once, and hands it to the writer
    /// as recording `id`.
    pub fn open(&self, id: u32, path: &str, info: MjrInfo) -> Result<(), String> {
        crate::mjr::validate(&info)?;
        let mut file = File::create(path).map_err(|e| format!("create {path}: {e}"))?;
        let mut mjr = MjrWriter::new(info);
        let header = mjr.header();
        if let Err(e) = file.write_all(&header) {
            self.queue.write_errors.fetch_add(1, Ordering::Relaxed);
            return Err(format!("write {path}: {e}"));
        }
        self.adopt(id, file, mjr, header.len() as u64)
    }

    /// Hands an open file, `written` bytes of it already the header of `mjr`, to the writer.
    fn adopt(&self, id: u32, file: File, mjr: MjrWriter, written: u64) -> Result<(), String> {
        let (reply, rx) = channel();
        self.commands.send(Command::Open { id, file, mjr, written, reply }).map_err(|_| "the recording writer is gone".to_string())?;
        rx.recv_timeout(REPLY_TIMEOUT).map_err(|_| "the recording writer did not answer".to_string())
    }

    /// Writes what is queued for recording `id` and closes its file (the caller stopped
    /// feeding it first). `None`: no such recording.
    pub fn close(&self, id: u32) -> Result<Option<RecordingSummary>, String> {
        let (reply, rx) = channel();
        self.commands.send(Command::Close { id, reply }).map_err(|_| "the recording writer is gone".to_string())?;
        rx.recv_timeout(REPLY_TIMEOUT).map_err(|_| "the recording writer did not answer".to_string())
    }

    pub fn stats(&self) -> RecorderStats {
        let (reply, rx) = channel();
        if self.commands.send(Command::Stats { reply }).is_err() {
            return RecorderStats::default();
        }
        rx.recv_timeout(REPLY_TIMEOUT).unwrap_or_default()
    }

    /// Writes and closes every file, then ends the thread. Idempotent.
    pub fn shutdown(&mut self) {
        let _ = self.commands.send(Command::Shutdown);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.shutdown();
    }
}

struct OpenFile {
    file: File,
    mjr: MjrWriter,
    buffer: Vec<u8>,
    /// When the oldest byte in `buffer` was appended.
    buffered_since: Option<Instant>,
    /// Bytes on disk: the header and whole frames.
    written: u64,
    /// The first packet's time, to write into the header at the next flush (offset, digits).
    header_patch: Option<(u64, Vec<u8>)>,
    packets: u64,
    error: Option<String>,
}

struct Writer {
    queue: Arc<RecorderQueue>,
    commands: Receiver<Command>,
    events: EventSink,
    files: HashMap<u32, OpenFile>,
    stats: RecorderStats,
    running: bool,
}

impl Writer {
    fn run(mut self) {
        while self.running {
            if let Err(payload) = catch_unwind(AssertUnwindSafe(|| self.pass())) {
                self.stats.panics += 1;
                (self.events)(vec![Event::WorkerPanic { worker: usize::MAX, message: format!("recording writer: {}", panic_message(&payload)) }]);
            }
        }
        // Shutdown: what is queued is written, every file is closed.
        self.drain_queue(usize::MAX);
        for id in self.files.keys().copied().collect::<Vec<_>>() {
            self.close(id);
        }
    }

    /// One turn: packets, then commands (waiting for one when idle), then due flushes.
    fn pass(&mut self) {
        let moved = self.drain_queue(PACKETS_PER_PASS);
        let wait = if moved == 0 { IDLE_WAIT } else { Duration::ZERO };
        match self.commands.recv_timeout(wait) {
            Ok(command) => {
                self.handle(command);
                while let Ok(command) = self.commands.try_recv() {
                    self.handle(command);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => self.running = false,
        }
        let now = Instant::now();
        let due: Vec<u32> = self.files.iter().filter(|(_, f)| f.buffered_since.is_some_and(|t| now.duration_since(t) >= FLUSH_AGE)).map(|(id, _)| *id).collect();
        for id in due {
            self.flush(id);
        }
    }

    fn handle(&mut self, command: Command) {
        match command {
            Command::Open { id, file, mjr, written, reply } => {
                self.files.insert(id, OpenFile { file, mjr, buffer: Vec::new(), buffered_since: None, written, header_patch: None, packets: 0, error: None });
                let _ = reply.send(());
            }
            Command::Close { id, reply } => {
                // Packets of this recording queued before its source stopped feeding it are
                // in the queue now, among the first `len()`: write those first (not more, so
                // other sources' steady flow cannot hold the close up).
                let queued = self.queue.queue.len();
                self.drain_queue(queued);
                let _ = reply.send(self.close(id));
            }
            Command::Stats { reply } => {
                let mut stats = self.stats.clone();
                stats.open_files = self.files.len() as u64;
                stats.packets_dropped = self.queue.dropped.load(Ordering::Relaxed);
                stats.packets_oversized = self.queue.oversized.load(Ordering::Relaxed);
                stats.write_errors = self.queue.write_errors.load(Ordering::Relaxed);
                let _ = reply.send(stats);
            }
            Command::Shutdown => self.running = false,
        }
    }

    fn drain_queue(&mut self, max: usize) -> usize {
        let mut moved = 0;
        while moved < max {
            let Some(packet) = self.queue.queue.pop() else { break };
            moved += 1;
            self.append(&packet);
            let _ = self.queue.free.push(packet.data);
        }
        moved
    }

    fn append(&mut self, packet: &Recorded) {
        let Some(f) = self.files.get_mut(&packet.recording) else { return };
        if f.error.is_some() {
            return;
        }
        let wall_us = self.queue.epoch_unix_us + packet.arrival_us;
        if f.mjr.write_packet(&packet.data, packet.arrival_us, wall_us, &mut f.buffer) {
            if let Some(patch) = f.mjr.first_packet_patch() {
                f.header_patch = Some(patch);
            }
            f.packets += 1;
            self.stats.packets_written += 1;
            f.buffered_since.get_or_insert_with(Instant::now);
        }
        if f.buffer.len() >= FLUSH_BYTES {
            self.flush(packet.recording);
        }
    }

    /// Writes a file's buffer. On failure the file is cut back to its last whole frame, the
    /// recording stops growing, and the error is reported once.
    fn flush(&mut self, id: u32) {
        let Some(f) = self.files.get_mut(&id) else { return };
        f.buffered_since = None;
        if f.buffer.is_empty() || f.error.is_some() {
            f.buffer.clear();
            return;
        }
        self.stats.writes += 1;
        // The header's first-packet time, in place (pwrite: the append position stays).
        let patched = match f.header_patch.take() {
            Some((offset, bytes)) => f.file.write_all_at(&bytes, offset),
            None => Ok(()),
        };
        match patched.and_then(|()| f.file.write_all(&f.buffer)) {
            Ok(()) => {
                f.written += f.buffer.len() as u64;
                self.stats.bytes_written += f.buffer.len() as u64;
            }
            Err(e) => {
                let _ = f.file.set_len(f.written);
                let message = e.to_string();
                f.error = Some(message.clone());
                self.queue.write_errors.fetch_add(1, Ordering::Relaxed);
                (self.events)(vec![Event::RecordingFailed { recording: id, message }]);
            }
        }
        f.buffer.clear();
    }

    fn close(&mut self, id: u32) -> Option<RecordingSummary> {
        self.files.get(&id)?;
        self.flush(id);
        let f = self.files.remove(&id)?;
        Some(RecordingSummary { packets: f.packets, bytes: f.written, error: f.error })
        // The file closes as it drops.
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mjr::{parse, MjrKind};
    use std::sync::Mutex;

    fn temp_path(name: &str) -> String {
        let dir = std::env::temp_dir().join(format!("ferry-recorder-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name).to_string_lossy().into_owned()
    }

    fn recorder() -> (Recorder, Arc<Mutex<Vec<Event>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        (Recorder::new(Arc::new(move |batch| sink.lock().unwrap().extend(batch))).unwrap(), seen)
    }

    fn info() -> MjrInfo {
        MjrInfo { kind: MjrKind::Audio, codec: "opus".into(), fmtp: None, extensions: vec![], created_us: 1 }
    }

    fn rtp(seq: u16) -> Vec<u8> {
        let mut p = vec![0x80, 111, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7];
        p[2..4].copy_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&[seq as u8; 60]);
        p
    }

    #[test]
    fn packets_pushed_are_in_the_file_when_close_returns() {
        let (mut rec, _) = recorder();
        let path = temp_path("a.mjr");
        rec.open(7, &path, info()).unwrap();
        let q = rec.queue();
        for seq in 0..1000u16 {
            assert!(q.push(7, &rtp(seq), u64::from(seq) * 20_000));
        }
        let summary = rec.close(7).unwrap().unwrap();
        assert_eq!(summary.packets, 1000);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(summary.bytes, bytes.len() as u64);
        let file = parse(&bytes).unwrap();
        assert_eq!(file.frames.len(), 1000);
        assert_eq!(file.frames[999].0, 999 * 20);
        assert_eq!(file.frames[10].1, rtp(10).as_slice());
        assert_eq!(rec.close(7).unwrap(), None, "closed once");
        rec.shutdown();
    }

    #[test]
    fn a_recording_without_packets_still_has_a_header() {
        let (rec, _) = recorder();
        let path = temp_path("empty.mjr");
        rec.open(1, &path, info()).unwrap();
        rec.close(1).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert!(parse(&bytes).unwrap().info.contains("\"c\":\"opus\""));
    }

    #[test]
    fn shutdown_closes_every_file_with_what_was_queued() {
        let (mut rec, _) = recorder();
        let path = temp_path("shutdown.mjr");
        rec.open(2, &path, info()).unwrap();
        for seq in 0..10 {
            rec.queue().push(2, &rtp(seq), 0);
        }
        rec.shutdown();
        assert_eq!(parse(&std::fs::read(&path).unwrap()).unwrap().frames.len(), 10);
    }

    #[test]
    fn a_full_queue_drops_and_counts_without_blocking() {
        let queue = RecorderQueue::new();
        for seq in 0..QUEUE_PACKETS as u32 + 5 {
            queue.push(1, &rtp(seq as u16), 0);
        }
        assert_eq!(queue.dropped.load(Ordering::Relaxed), 5);
        assert!(!queue.push(1, &vec![0u8; MAX_FRAME + 1], 0));
        assert_eq!(queue.oversized.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_path_that_cannot_be_created_fails_at_open() {
        let (rec, _) = recorder();
        assert!(rec.open(1, "/nonexistent-dir/x.mjr", info()).unwrap_err().contains("create"));
        let mut bad = info();
        bad.codec = "mp3".into();
        assert!(rec.open(1, &temp_path("bad.mjr"), bad).is_err());
    }

    #[test]
    fn a_full_disk_fails_the_open_or_later_writes_reported_once_and_counted() {
        // /dev/full takes the open and fails every write with ENOSPC: a full disk.
        if std::fs::metadata("/dev/full").is_err() {
            return;
        }
        let (rec, seen) = recorder();
        assert!(rec.open(3, "/dev/full", info()).unwrap_err().contains("No space"), "the header's write fails at once");
        assert_eq!(rec.stats().write_errors, 1);
        // A disk that fills up later: the header went out, the packets' batch does not.
        let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
        let mut mjr = MjrWriter::new(info());
        let written = mjr.header().len() as u64;
        rec.adopt(4, full, mjr, written).unwrap();
        for seq in 0..10 {
            rec.queue().push(4, &rtp(seq), 0);
        }
        let summary = rec.close(4).unwrap().unwrap();
        assert!(summary.error.is_some());
        assert_eq!(summary.bytes, written, "what was written before the failure");
        assert_eq!(rec.stats().write_errors, 2);
        let events = seen.lock().unwrap();
        assert!(matches!(events.as_slice(), [Event::RecordingFailed { recording: 4, .. }]), "{events:?}");
    }
}
