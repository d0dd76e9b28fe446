//! One media thread: the I/O around its sans-IO [`Router`]. It owns its endpoints' sockets,
//! receives in batches (recvmmsg), sends in batches (sendmmsg with GSO), takes packets that
//! other threads hand it through its bounded [`Mailbox`] queue, runs control commands that
//! arrive over a channel with an eventfd wake-up, and keeps time for the router's timers.
//!
//! One file, though past the house's ~600 lines: the loop, its I/O (`WorkerIo`) and the
//! commands all act on one `Worker`, and a wake-up reads top to bottom here; what could leave
//! (the commands, the hand-over queue) is short and changes with the loop.

use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;
use std::time::Instant;

use crossbeam_queue::ArrayQueue;

use crate::bandwidth::{BweConfig, LayerSet, SourceRates};
use crate::endpoint::{EndpointConfig, SrtpKeys};
use crate::event::{Event, EventSink};
use ferry_srtp::hmac_batch::{self, DeferredMac};
use crate::handover_wakes::{HandoverWakes, WakeMode, WAKE_AT_DEPTH};
use crate::idmap::IdMap;
use crate::recorder::RecorderQueue;
use crate::ice_tcp::{TcpConns, MAX_CONNECTIONS_PER_ENDPOINT};
use crate::shared_port::SharedPortDemux;
use crate::router::{ClosedRoutes, Handoff, OutputConfig, PeerMessage, Router, RouterIo, RtxConfig, SourceConfig, SourceRef, Transport, MAX_DATAGRAM};
use crate::stats::WorkerStats;
use crate::sys::{self, Epoll, FlushReport, RecvBatch, SendQueue, WakeFd};

pub type Reply<T> = Sender<Result<T, String>>;

pub(crate) enum Command {
    /// `socket`: the endpoint's own; `None` puts it on the thread's shared socket.
    /// `tcp`: its ICE-TCP listener, if any.
    OpenEndpoint { id: u32, socket: Option<UdpSocket>, tcp: Option<TcpListener>, config: EndpointConfig, reply: Reply<()> },
    /// Answers with the routes closed and, like `AddOutput`, the threads messaged.
    CloseEndpoint { id: u32, reply: Reply<(ClosedRoutes, u64)> },
    SetSrtp { id: u32, keys: SrtpKeys, reply: Reply<()> },
    SetRemote { id: u32, remote: Option<SocketAddr>, reply: Reply<()> },
    SetIceRemoteUfrag { id: u32, ufrag: Option<String>, reply: Reply<()> },
    RestartIce { id: u32, ufrag: String, pwd: String, remote_ufrag: Option<String>, reply: Reply<()> },
    SendRaw { id: u32, to: SocketAddr, data: Vec<u8>, reply: Reply<()> },
    AddSource { id: u32, endpoint: u32, config: SourceConfig, reply: Reply<()> },
    /// Answers like `AddOutput`.
    RemoveSource { id: u32, reply: Reply<u64> },
    /// Answers with the set of threads (bit mask) this thread sent messages to meanwhile.
    AddOutput { id: u32, endpoint: u32, config: OutputConfig, source: Option<SourceRef>, reply: Reply<u64> },
    /// Answers like `AddOutput`.
    SwitchOutput { id: u32, source: Option<SourceRef>, on_keyframe: bool, reply: Reply<u64> },
    PauseOutput { id: u32, paused: bool, reply: Reply<()> },
    SetOutputRtx { id: u32, rtx: Option<RtxConfig>, reply: Reply<()> },
    SetOutputPayloadMap { id: u32, map: Vec<(u8, Option<u8>)>, reply: Reply<()> },
    SetOutputTemporal { id: u32, layer: Option<u8>, reply: Reply<()> },
    SetKeyframeCache { source: u32, on: bool, reply: Reply<()> },
    SetOutputSvc { id: u32, spatial: Option<u8>, temporal: Option<u8>, reply: Reply<u64> },
    SetSendBwe { endpoint: u32, config: Option<BweConfig>, reply: Reply<u64> },
    SetOutputLayers { id: u32, set: Option<LayerSet>, reply: Reply<u64> },
    RemoveOutput { id: u32, reply: Reply<()> },
    RequestKeyframe { source: u32, reply: Reply<()> },
    SetAudioLevelMeter { source: u32, meter: Option<(u8, u32)>, reply: Reply<()> },
    SetTelephoneEvents { source: u32, payload_type: Option<u8>, reply: Reply<()> },
    SetSourceRtx { source: u32, rtx: Option<RtxConfig>, reply: Reply<()> },
    SetBitrateCap { source: u32, bps: Option<u64>, reply: Reply<()> },
    SetRecording { source: u32, recording: Option<u32>, reply: Reply<()> },
    Stats { reply: Reply<WorkerStats> },
    /// Answered once every command queued before it has run.
    Barrier { reply: Reply<()> },
    /// From another media thread's router.
    Peer(PeerMessage),
    Shutdown,
}

/// A decrypted packet of one source, shared by every thread it is handed to: written once
/// by the source's thread, read (and copied into each output's send buffer) by the others.
pub(crate) struct PacketBuf {
    len: usize,
    data: [u8; MAX_DATAGRAM],
}

impl PacketBuf {
    fn bytes(&self) -> &[u8] {
        &self.data[..self.len.min(MAX_DATAGRAM)]
    }
}

/// One packet handed from a source's thread to a thread with outputs for it.
pub(crate) struct Handover {
    source: u32,
    subscription: u32,
    seq: u64,
    packet: Arc<PacketBuf>,
}

/// Packets that may wait in one thread's queue: a full queue drops (and counts), it never
/// blocks the source's thread. 4096 packets is ~40 ms of a saturated thread's input.
const HANDOVER_QUEUE: usize = 4096;
/// Packets taken from the queue per loop before sockets get their turn again.
const MAX_HANDOVERS_PER_LOOP: usize = 1024;
/// Handed-over packets whose transmits are sent together, as a receive batch's are: the send
/// slots they fill stay in this core's cache until the kernel copies them.
const HANDOVERS_PER_FLUSH: usize = 32;
/// Shared packet buffers a thread keeps for reuse (2 KiB each).
const SHARED_BUFFERS: usize = 1024;

/// What other threads (and the engine) see of a media thread.
pub(crate) struct Mailbox {
    pub wake: WakeFd,
    /// The thread is about to wait (or waits) in epoll: a producer must wake it.
    sleeping: AtomicBool,
    /// The thread wakes on its own within `COALESCE_MS` (handover_wakes.rs): a producer wakes
    /// it only for a deep queue.
    coalescing: AtomicBool,
    handovers: ArrayQueue<Handover>,
    pub commands: Sender<Command>,
    /// Packets/s and busy ‰ of the last load interval, for placement.
    pub load_pps: AtomicU64,
    pub busy_permille: AtomicU32,
}

impl Mailbox {
    pub fn new(commands: Sender<Command>) -> std::io::Result<Self> {
        Ok(Self {
            wake: WakeFd::new()?,
            sleeping: AtomicBool::new(false),
            coalescing: AtomicBool::new(false),
            handovers: ArrayQueue::new(HANDOVER_QUEUE),
            commands,
            load_pps: AtomicU64::new(0),
            busy_permille: AtomicU32::new(0),
        })
    }

    /// Queues a command and wakes the thread.
    pub fn send(&self, command: Command) -> bool {
        let ok = self.commands.send(command).is_ok();
        self.wake.wake();
        ok
    }
}

/// Token of the wake fd in epoll; endpoint tokens are their ids (never u64::MAX).
const WAKE_TOKEN: u64 = u64::MAX;
/// Token of the shared socket (single-port mode).
const SHARED_TOKEN: u64 = u64::MAX - 1;
/// ICE-TCP: a listener's token is this bit and its endpoint id; a connection's, this bit and
/// a number of its own.
const TCP_LISTENER_BIT: u64 = 1 << 62;
const TCP_CONNECTION_BIT: u64 = 1 << 61;
const RECV_SLOTS: usize = 32;
const SEND_SLOTS: usize = 1024;
/// Batches read from one ready socket before the others get their turn.
const MAX_BATCHES_PER_WAKE: usize = 8;
/// Consent and other timers are checked this often.
const TIMER_INTERVAL_MS: u64 = 200;
/// Load (packets/s, busy share) is measured over this interval.
const LOAD_INTERVAL_US: u64 = 1_000_000;

/// The router's side effects, done for real: datagrams to sockets, packets to other threads'
/// queues, messages to their command channels.
struct WorkerIo {
    me: usize,
    mailboxes: Arc<[Arc<Mailbox>]>,
    send: SendQueue,
    report: FlushReport,
    /// Flush results not yet counted on the router's endpoints: (endpoint, sent, bytes, failed).
    settled: Vec<(u32, usize, usize, usize)>,
    tx_total: u64,
    pool: Vec<Arc<PacketBuf>>,
    pool_next: usize,
    /// Threads given packets since they were last woken (bit per thread).
    dirty: u64,
    /// Threads sent messages since `messaged` was last read (bit per thread).
    messaged: u64,
    /// Messages a router addressed to itself (never expected, handled anyway).
    to_self: Vec<PeerMessage>,
    queue_overflows: u64,
    cross_sent: u64,
    /// Endpoints on sockets bound to a wildcard address: the local address their peer sends
    /// to, which their datagrams must leave from (see `sys::enable_pktinfo`).
    reply_from: IdMap<IpAddr>,
    /// ICE-TCP connections: datagrams to their peers go framed on them.
    tcp: TcpConns,
    /// The endpoint and local address of the datagram being handled: what it makes the router
    /// send at once (a STUN answer) leaves from that address, learnt or not.
    receiving: Option<(u32, IpAddr)>,
    /// Recorded packets go to the recording writer through this queue; `clock_offset_us`
    /// turns this thread's clock into the queue's.
    recorder: Arc<RecorderQueue>,
    /// This CPU hashes many AES-CM tags at once (`hmac_batch`): queued packets whose tag is
    /// still to be written, by send slot, written together just before each flush.
    batch_tags: bool,
    tags_pending: Vec<(usize, DeferredMac)>,
    clock_offset_us: u64,
}

impl WorkerIo {
    fn flush(&mut self) {
        if self.send.is_empty() {
            return;
        }
        self.write_pending_tags();
        self.send.flush(&mut self.report);
        for &(owner, n, bytes) in &self.report.sent {
            self.tx_total += n as u64;
            self.settled.push((owner, n, bytes, 0));
        }
        for &(owner, n) in &self.report.failed {
            self.settled.push((owner, 0, 0, n));
        }
    }

    /// Queues the slot just filled for `to`, or frames it onto the ICE-TCP connection that
    /// routes there (`routed_to_tcp`, looked up once by the caller).
    fn commit(&mut self, len: usize, transport: Transport, endpoint: u32, to: &SocketAddr, routed_to_tcp: bool) {
        if routed_to_tcp {
            // Its peer is on an ICE-TCP connection: framed there instead (the slot is reused).
            if let Some(slot) = self.send.slot() {
                let datagram = slot[..len.min(MAX_DATAGRAM)].to_vec();
                self.tcp.queue(endpoint, to, &datagram);
                self.tx_total += 1;
            }
            return;
        }
        let src = match self.receiving {
            Some((e, local)) if e == endpoint => Some(local),
            _ => self.reply_from.get(&endpoint).copied(),
        };
        self.send.commit(len, transport as RawFd, endpoint, to, src);
    }

    /// Writes the SRTP tags left to this flush, up to 16 computed together.
    fn write_pending_tags(&mut self) {
        if self.tags_pending.is_empty() {
            return;
        }
        // Every pending slot holds its whole packet, so every tag is written.
        hmac_batch::write_deferred_tags(&mut self.send, &self.tags_pending);
        self.tags_pending.clear();
    }

    /// A shared buffer holding `packet`: the oldest buffer of the ring when no thread still
    /// reads it, else a new one (the ring keeps the newest).
    fn shared(&mut self, packet: &[u8]) -> Arc<PacketBuf> {
        let len = packet.len().min(MAX_DATAGRAM);
        if !self.pool.is_empty() {
            let i = self.pool_next % self.pool.len();
            if let Some(buf) = Arc::get_mut(&mut self.pool[i]) {
                buf.data[..len].copy_from_slice(&packet[..len]);
                buf.len = len;
                self.pool_next = i + 1;
                return self.pool[i].clone();
            }
        }
        let mut data = [0u8; MAX_DATAGRAM];
        data[..len].copy_from_slice(&packet[..len]);
        let fresh = Arc::new(PacketBuf { len, data });
        if self.pool.len() < SHARED_BUFFERS {
            self.pool.push(fresh.clone());
            self.pool_next = self.pool.len();
        } else {
            let i = self.pool_next % self.pool.len();
            self.pool[i] = fresh.clone();
            self.pool_next = i + 1;
        }
        fresh
    }

    /// Wakes the threads that were handed packets and may be waiting in epoll.
    fn wake_peers(&mut self) {
        if self.dirty == 0 {
            return;
        }
        // Pairs with the fence in `Worker::iteration`: either the consumer sees the packets
        // before it sleeps, or this sees it sleeping.
        fence(Ordering::SeqCst);
        let mut dirty = std::mem::take(&mut self.dirty);
        while dirty != 0 {
            let w = dirty.trailing_zeros() as usize;
            dirty &= dirty - 1;
            if let Some(mb) = self.mailboxes.get(w) {
                if mb.coalescing.load(Ordering::SeqCst) && mb.handovers.len() < WAKE_AT_DEPTH {
                    continue;
                }
                if mb.sleeping.swap(false, Ordering::SeqCst) {
                    mb.wake.wake();
                }
            }
        }
    }
}

impl RouterIo for WorkerIo {
    fn transmit_slot(&mut self) -> Option<&mut [u8; MAX_DATAGRAM]> {
        if self.send.is_full() {
            self.flush();
        }
        self.send.slot()
    }

    fn commit_transmit(&mut self, len: usize, transport: Transport, endpoint: u32, to: &SocketAddr) {
        let routed_to_tcp = self.tcp.routes_to(endpoint, to);
        self.commit(len, transport, endpoint, to, routed_to_tcp);
    }

    fn batches_tags(&self) -> bool {
        self.batch_tags
    }

    fn commit_transmit_tag_later(&mut self, len: usize, transport: Transport, endpoint: u32, to: &SocketAddr, mac: DeferredMac) {
        let routed_to_tcp = self.tcp.routes_to(endpoint, to);
        match self.send.next_index() {
            Some(slot) if !routed_to_tcp => self.tags_pending.push((slot, mac)),
            // Framed onto ICE-TCP at once (or no slot at all): the tag is written now.
            _ => {
                if let Some(buf) = self.send.slot() {
                    mac.finish(&mut buf[..]);
                }
            }
        }
        self.commit(len, transport, endpoint, to, routed_to_tcp);
    }

    fn forward(&mut self, to: &[Handoff], source: u32, packet: &[u8]) {
        let buf = self.shared(packet);
        for h in to {
            let w = h.worker;
            let Some(mb) = self.mailboxes.get(w) else { continue };
            match mb.handovers.push(Handover { source, subscription: h.subscription, seq: h.seq, packet: buf.clone() }) {
                Ok(()) => {
                    self.cross_sent += 1;
                    self.dirty |= 1u64 << (w % 64);
                }
                Err(_) => self.queue_overflows += 1,
            }
        }
    }

    fn record(&mut self, recording: u32, packet: &[u8], now_us: u64) {
        // A full queue drops and counts there: the disk never holds up forwarding.
        self.recorder.push(recording, packet, now_us + self.clock_offset_us);
    }

    fn message(&mut self, worker: usize, message: PeerMessage) {
        if worker == self.me {
            self.to_self.push(message);
            return;
        }
        if let Some(mb) = self.mailboxes.get(worker) {
            mb.send(Command::Peer(message));
            self.messaged |= 1u64 << (worker % 64);
        }
    }
}

pub(crate) struct Worker {
    index: usize,
    epoll: Epoll,
    mailbox: Arc<Mailbox>,
    commands: Receiver<Command>,
    events: EventSink,
    router: Router,
    io: WorkerIo,
    sockets: IdMap<UdpSocket>,
    /// ICE-TCP listeners by endpoint, and the number of the next connection.
    tcp_listeners: IdMap<TcpListener>,
    next_tcp: u64,
    /// Single-port mode: the socket every shared endpoint of this thread lives on.
    shared: Option<SharedSocket>,
    /// Shared endpoints a batch touched (reused).
    touched: Vec<u32>,
    recv: RecvBatch,
    ready: Vec<u64>,
    /// CPU the thread pins itself to, when asked (`media.pin_threads`).
    pin_cpu: Option<usize>,
    started: Instant,
    last_timer_ms: u64,
    rx_total: u64,
    /// (time, packets, thread CPU ns) at the start of the current load interval.
    load_mark: (u64, u64, u64),
    loops: u64,
    /// Whether producers wake this thread at once or it wakes itself (handover_wakes.rs).
    wakes: HandoverWakes,
    recv_batches: u64,
    panics: u64,
    running: bool,
}

impl Worker {
    pub fn new(index: usize, mailboxes: Arc<[Arc<Mailbox>]>, commands: Receiver<Command>, events: EventSink, pin_cpu: Option<usize>, rates: Arc<SourceRates>, shared_socket: Option<UdpSocket>, recorder: Arc<RecorderQueue>) -> std::io::Result<Self> {
        let mailbox = mailboxes.get(index).cloned().ok_or_else(|| std::io::Error::other("no mailbox"))?;
        let epoll = Epoll::new(256)?;
        // Edge-triggered: each wake is reported once and the eventfd is never read, which saves
        // a syscall per wake-up (commands and hand-overs are drained in full on every report).
        // The counter it accumulates cannot reach its 2^64 − 1 limit in any process's life.
        epoll.add_edge_triggered(mailbox.wake.fd(), WAKE_TOKEN)?;
        let mut recv = RecvBatch::new(RECV_SLOTS);
        let mut shared_ipv6 = None;
        let shared = match shared_socket {
            Some(socket) => {
                let fd = socket.as_raw_fd();
                sys::set_socket_buffers(fd, 16 << 20);
                recv.enable_gro(fd);
                enable_pktinfo_if_wildcard(&socket);
                epoll.add(fd, SHARED_TOKEN)?;
                shared_ipv6 = socket.local_addr().is_ok_and(|a| a.is_ipv6()).then_some(fd);
                let local = socket.local_addr()?;
                Some(SharedSocket { socket, local, demux: SharedPortDemux::new(), unrouted: 0 })
            }
            None => None,
        };
        let started = Instant::now();
        let clock_offset_us = recorder.offset_of(started);
        let mut worker = Self {
            index,
            epoll,
            mailbox,
            commands,
            events,
            router: Router::with_source_rates(index, rates),
            io: WorkerIo {
                me: index,
                mailboxes,
                send: SendQueue::new(SEND_SLOTS),
                report: FlushReport { sent: Vec::new(), failed: Vec::new() },
                settled: Vec::new(),
                tx_total: 0,
                pool: Vec::new(),
                pool_next: 0,
                dirty: 0,
                messaged: 0,
                to_self: Vec::new(),
                queue_overflows: 0,
                batch_tags: hmac_batch::lanes_available(),
                tags_pending: Vec::with_capacity(SEND_SLOTS),
                cross_sent: 0,
                reply_from: IdMap::default(),
                tcp: TcpConns::default(),
                receiving: None,
                recorder,
                clock_offset_us,
            },
            sockets: IdMap::default(),
            tcp_listeners: IdMap::default(),
            next_tcp: 0,
            shared,
            touched: Vec::new(),
            recv,
            ready: Vec::with_capacity(256),
            pin_cpu,
            started,
            last_timer_ms: 0,
            rx_total: 0,
            load_mark: (0, 0, 0),
            loops: 0,
            wakes: HandoverWakes::new(0),
            recv_batches: 0,
            panics: 0,
            running: true,
        };
        if let Some(fd) = shared_ipv6 {
            worker.io.send.set_ipv6(fd);
        }
        Ok(worker)
    }

    fn now_us(&self) -> u64 {
        self.started.elapsed().as_micros() as u64
    }

    /// The thread body. A panic inside one iteration is caught, counted and reported; the
    /// thread goes on (the addon must never take the process down).
    pub fn run(mut self) {
        if let Some(cpu) = self.pin_cpu {
            if let Err(e) = sys::pin_current_thread(cpu) {
                self.router.push_event(Event::WorkerPanic { worker: self.index, message: format!("could not pin media thread to CPU {cpu}: {e}") });
            }
        }
        self.load_mark = (0, 0, sys::thread_cpu_ns());
        while self.running {
            let result = catch_unwind(AssertUnwindSafe(|| self.iteration()));
            if let Err(payload) = result {
                self.panics += 1;
                let message = panic_message(&payload);
                // Queued datagrams may be half-written: drop them rather than send garbage.
                self.io.send = SendQueue::new(SEND_SLOTS);
                self.io.tags_pending.clear();
                self.io.settled.clear();
                self.io.receiving = None;
                self.router.push_event(Event::WorkerPanic { worker: self.index, message });
                self.emit_events();
            }
        }
        // Shutdown: every socket closes as they drop; packets still queued for this thread
        // release their buffers.
        self.sockets.clear();
        self.shared = None;
        while self.mailbox.handovers.pop().is_some() {}
    }

    fn iteration(&mut self) {
        self.loops += 1;
        // Set before the fence, so a producer that still sees `coalescing` finds this thread
        // either awake or asleep for at most COALESCE_MS.
        let coalescing = self.wakes.mode() == WakeMode::Coalescing;
        self.mailbox.coalescing.store(coalescing, Ordering::SeqCst);
        self.mailbox.sleeping.store(true, Ordering::SeqCst);
        // Pairs with the fence in `WorkerIo::wake_peers` (no lost wake-up).
        fence(Ordering::SeqCst);
        let timeout = if self.mailbox.handovers.is_empty() && self.io.to_self.is_empty() { self.wakes.sleep_ms(TIMER_INTERVAL_MS as i32) } else { 0 };
        let mut ready = std::mem::take(&mut self.ready);
        if self.epoll.wait(timeout, &mut ready).is_err() {
            ready.clear();
        }
        self.mailbox.sleeping.store(false, Ordering::SeqCst);
        if timeout > 0 {
            let handed = !self.mailbox.handovers.is_empty();
            self.wakes.after_sleep(handed, self.now_us());
        }
        for &token in &ready {
            if token == WAKE_TOKEN {
                self.drain_commands();
                if !self.running {
                    break;
                }
            } else if token == SHARED_TOKEN {
                self.read_shared();
            } else if token & TCP_LISTENER_BIT != 0 {
                self.accept_tcp((token & u64::from(u32::MAX)) as u32);
            } else if token & TCP_CONNECTION_BIT != 0 {
                self.read_tcp(token);
            } else {
                self.read_endpoint(token as u32);
            }
        }
        self.ready = ready;
        self.drain_handovers();
        self.flush();
        let now_us = self.now_us();
        let now_ms = now_us / 1000;
        if now_ms.saturating_sub(self.last_timer_ms) >= TIMER_INTERVAL_MS {
            self.last_timer_ms = now_ms;
            self.router.on_timer(now_us, &mut self.io);
            self.flush();
            self.measure_load(now_us);
        }
        self.emit_events();
    }

    fn measure_load(&mut self, now_us: u64) {
        let (t0, p0, c0) = self.load_mark;
        let elapsed = now_us.saturating_sub(t0);
        if elapsed < LOAD_INTERVAL_US {
            return;
        }
        let cross = self.router.cross_stats();
        let packets = self.rx_total + self.io.tx_total + cross.received + cross.unwanted;
        let cpu = sys::thread_cpu_ns();
        let pps = packets.saturating_sub(p0) * 1_000_000 / elapsed.max(1);
        let busy = (cpu.saturating_sub(c0) / 1000).saturating_mul(1000) / elapsed.max(1);
        self.mailbox.load_pps.store(pps, Ordering::Relaxed);
        self.mailbox.busy_permille.store(busy.min(1000) as u32, Ordering::Relaxed);
        self.load_mark = (now_us, packets, cpu);
    }

    fn emit_events(&mut self) {
        if self.router.has_events() {
            (self.events)(self.router.take_events());
        }
    }

    /// Sends what is queued and counts it on the router's endpoints; wakes the threads that
    /// were handed packets.
    fn flush(&mut self) {
        self.io.flush();
        for (endpoint, sent, bytes, failed) in self.io.settled.drain(..) {
            self.router.record_sent(endpoint, sent, bytes, failed);
        }
        if self.io.tcp.len() > 0 {
            for token in self.io.tcp.flush() {
                self.close_tcp(token);
            }
        }
        self.io.wake_peers();
    }

    fn drain_handovers(&mut self) {
        let now_us = self.now_us();
        for i in 1..=MAX_HANDOVERS_PER_LOOP {
            let Some(h) = self.mailbox.handovers.pop() else { break };
            self.router.on_forwarded(h.source, h.subscription, h.seq, h.packet.bytes(), now_us, &mut self.io);
            if i % HANDOVERS_PER_FLUSH == 0 {
                self.flush();
            }
        }
        for message in std::mem::take(&mut self.io.to_self) {
            self.router.on_message(message, now_us, &mut self.io);
        }
    }

    // ---- commands -------------------------------------------------------------------------

    fn drain_commands(&mut self) {
        while let Ok(cmd) = self.commands.try_recv() {
            self.handle_command(cmd);
            if !self.running {
                return;
            }
        }
    }

    fn handle_command(&mut self, cmd: Command) {
        let now_us = self.now_us();
        match cmd {
            Command::OpenEndpoint { id, socket, tcp, config, reply } => {
                let r = self.open_endpoint(id, socket, &config).and_then(|()| self.open_tcp_listener(id, tcp));
                let _ = reply.send(r);
            }
            Command::CloseEndpoint { id, reply } => {
                self.io.messaged = 0;
                let r = self.close_endpoint(id);
                let _ = reply.send(r.map(|closed| (closed, std::mem::take(&mut self.io.messaged))));
            }
            Command::SetSrtp { id, keys, reply } => {
                let _ = reply.send(self.router.set_srtp(id, &keys));
            }
            Command::SetRemote { id, remote, reply } => {
                let _ = reply.send(self.router.set_remote(id, remote));
            }
            Command::SetIceRemoteUfrag { id, ufrag, reply } => {
                let _ = reply.send(self.router.set_ice_remote_ufrag(id, ufrag.as_deref()));
            }
            Command::RestartIce { id, ufrag, pwd, remote_ufrag, reply } => {
                let r = match self.shared.as_mut().filter(|s| s.demux.contains(id)) {
                    // The shared socket must route the new ufrag before the peer's checks use it.
                    Some(shared) => shared.demux.restart(id, &ufrag).and_then(|()| self.router.restart_ice(id, &ufrag, &pwd, remote_ufrag.as_deref())),
                    None => self.router.restart_ice(id, &ufrag, &pwd, remote_ufrag.as_deref()),
                };
                let _ = reply.send(r);
            }
            Command::SendRaw { id, to, data, reply } => {
                let _ = reply.send(self.send_raw(id, to, &data));
            }
            Command::AddSource { id, endpoint, config, reply } => {
                let _ = reply.send(self.router.add_source(id, endpoint, config));
            }
            Command::RemoveSource { id, reply } => {
                self.io.messaged = 0;
                let r = self.router.remove_source(id, &mut self.io);
                let _ = reply.send(r.map(|()| std::mem::take(&mut self.io.messaged)));
            }
            Command::AddOutput { id, endpoint, config, source, reply } => {
                self.io.messaged = 0;
                let r = self.router.add_output(id, endpoint, &config, source, now_us, &mut self.io);
                self.flush();
                let _ = reply.send(r.map(|()| std::mem::take(&mut self.io.messaged)));
            }
            Command::SwitchOutput { id, source, on_keyframe, reply } => {
                self.io.messaged = 0;
                let r = self.router.switch_output(id, source, on_keyframe, now_us, &mut self.io);
                self.flush();
                let _ = reply.send(r.map(|()| std::mem::take(&mut self.io.messaged)));
            }
            Command::SetKeyframeCache { source, on, reply } => {
                let _ = reply.send(self.router.set_keyframe_cache(source, on));
            }
            Command::SetOutputSvc { id, spatial, temporal, reply } => {
                self.io.messaged = 0;
                let r = self.router.set_output_svc(id, spatial, temporal, now_us, &mut self.io);
                self.flush();
                let _ = reply.send(r.map(|()| std::mem::take(&mut self.io.messaged)));
            }
            Command::SetSendBwe { endpoint, config, reply } => {
                self.io.messaged = 0;
                let r = self.router.set_send_bwe(endpoint, config, now_us, &mut self.io);
                self.flush();
                let _ = reply.send(r.map(|()| std::mem::take(&mut self.io.messaged)));
            }
            Command::SetOutputLayers { id, set, reply } => {
                self.io.messaged = 0;
                let r = self.router.set_output_layers(id, set, now_us, &mut self.io);
                self.flush();
                let _ = reply.send(r.map(|()| std::mem::take(&mut self.io.messaged)));
            }
            Command::SetOutputTemporal { id, layer, reply } => {
                let _ = reply.send(self.router.set_output_temporal(id, layer));
            }
            Command::SetOutputRtx { id, rtx, reply } => {
                let _ = reply.send(self.router.set_output_rtx(id, rtx));
            }
            Command::SetOutputPayloadMap { id, map, reply } => {
                let _ = reply.send(self.router.set_output_payload_map(id, map));
            }
            Command::PauseOutput { id, paused, reply } => {
                let _ = reply.send(self.router.pause_output(id, paused));
            }
            Command::RemoveOutput { id, reply } => {
                let _ = reply.send(self.router.remove_output(id, &mut self.io));
            }
            Command::RequestKeyframe { source, reply } => {
                let r = if self.router.has_source(source) {
                    self.router.request_keyframe(source, true, now_us, &mut self.io);
                    self.flush();
                    Ok(())
                } else {
                    Err(format!("no source {source}"))
                };
                let _ = reply.send(r);
            }
            Command::SetBitrateCap { source, bps, reply } => {
                let r = self.router.set_bitrate_cap(source, bps, now_us, &mut self.io);
                self.flush();
                let _ = reply.send(r);
            }
            Command::SetRecording { source, recording, reply } => {
                let _ = reply.send(self.router.set_recording(source, recording));
            }
            Command::SetSourceRtx { source, rtx, reply } => {
                let _ = reply.send(self.router.set_source_rtx(source, rtx));
            }
            Command::SetAudioLevelMeter { source, meter, reply } => {
                let _ = reply.send(self.router.set_audio_level_meter(source, meter));
            }
            Command::SetTelephoneEvents { source, payload_type, reply } => {
                let _ = reply.send(self.router.set_telephone_events(source, payload_type));
            }
            Command::Stats { reply } => {
                let _ = reply.send(Ok(self.stats()));
            }
            Command::Barrier { reply } => {
                let _ = reply.send(Ok(()));
            }
            Command::Peer(message) => {
                self.router.on_message(message, now_us, &mut self.io);
            }
            Command::Shutdown => {
                self.running = false;
            }
        }
    }

    fn open_endpoint(&mut self, id: u32, socket: Option<UdpSocket>, config: &EndpointConfig) -> Result<(), String> {
        let Some(socket) = socket else { return self.open_shared_endpoint(id, config) };
        let local = socket.local_addr().map_err(|e| e.to_string())?;
        let fd = socket.as_raw_fd();
        sys::set_socket_buffers(fd, 4 << 20);
        if local.is_ipv6() {
            self.io.send.set_ipv6(fd);
        }
        // Coalesced receive where the kernel offers it; a socket that refuses keeps plain batches.
        self.recv.enable_gro(fd);
        enable_pktinfo_if_wildcard(&socket);
        self.router.add_endpoint(id, fd as Transport, local, config)?;
        if let Err(e) = self.epoll.add(fd, u64::from(id)) {
            let _ = self.router.remove_endpoint(id, &mut self.io);
            return Err(e.to_string());
        }
        self.sockets.insert(id, socket);
        Ok(())
    }

    /// An endpoint on the shared socket, reached through its ICE ufrag (see `shared_port`).
    fn open_shared_endpoint(&mut self, id: u32, config: &EndpointConfig) -> Result<(), String> {
        let shared = self.shared.as_mut().ok_or("this media thread has no shared port")?;
        let ufrag = config.ice.as_ref().map(|ice| ice.ufrag.as_str()).ok_or("a shared endpoint needs ICE")?;
        shared.demux.add(id, ufrag)?;
        let fd = shared.socket.as_raw_fd();
        if let Err(e) = self.router.add_endpoint(id, fd as Transport, shared.local, config) {
            shared.demux.remove(id);
            return Err(e);
        }
        Ok(())
    }

    fn close_endpoint(&mut self, id: u32) -> Result<ClosedRoutes, String> {
        if !self.router.has_endpoint(id) {
            return Err(format!("no endpoint {id}"));
        }
        // What is queued for this socket goes out now, while the fd still names it.
        self.flush();
        let closed = self.router.remove_endpoint(id, &mut self.io)?;
        self.flush();
        if let Some(listener) = self.tcp_listeners.remove(&id) {
            let _ = self.epoll.remove(listener.as_raw_fd());
        }
        for token in self.io.tcp.tokens_of(id) {
            self.close_tcp(token);
        }
        self.io.reply_from.remove(&id);
        if let Some(shared) = self.shared.as_mut() {
            shared.demux.remove(id);
        }
        if let Some(socket) = self.sockets.remove(&id) {
            let _ = self.epoll.remove(socket.as_raw_fd());
            self.io.send.forget_socket(socket.as_raw_fd());
            drop(socket); // closes the socket now, before the caller is answered
        }
        Ok(closed)
    }

    fn send_raw(&mut self, id: u32, to: SocketAddr, data: &[u8]) -> Result<(), String> {
        if data.len() > MAX_DATAGRAM {
            return Err(format!("datagram of {} bytes exceeds {MAX_DATAGRAM}", data.len()));
        }
        if self.io.tcp.routes_to(id, &to) {
            // The peer is on an ICE-TCP connection: framed there.
            self.io.tcp.queue(id, &to, data);
            self.flush();
            self.router.record_direct_send(id, data.len(), true);
            return Ok(());
        }
        let socket = match self.sockets.get(&id) {
            Some(socket) => socket,
            None => match self.shared.as_ref().filter(|s| s.demux.contains(id)) {
                Some(shared) => &shared.socket,
                None => return Err(format!("no endpoint {id}")),
            },
        };
        if self.io.reply_from.contains_key(&id) {
            // It must leave from the address the peer used: through the queue, whose messages
            // carry the source (IP_PKTINFO); the flush counts it like any datagram.
            let fd = socket.as_raw_fd();
            self.flush();
            let slot = self.io.send.slot().ok_or("send queue full")?;
            slot[..data.len()].copy_from_slice(data);
            self.io.commit_transmit(data.len(), fd as Transport, id, &to);
            self.flush();
            self.router.record_dtls_out(id);
            return Ok(());
        }
        // A dual-stack socket takes IPv4 destinations IPv4-mapped.
        let to = match to {
            SocketAddr::V4(v4) if socket.local_addr().is_ok_and(|a| a.is_ipv6()) => SocketAddr::new(IpAddr::V6(v4.ip().to_ipv6_mapped()), v4.port()),
            other => other,
        };
        let r = socket.send_to(data, to);
        self.router.record_direct_send(id, data.len(), r.is_ok());
        r.map(|_| ()).map_err(|e| format!("send to {to}: {e}"))
    }

    fn stats(&self) -> WorkerStats {
        let cross = self.router.cross_stats();
        WorkerStats {
            worker: self.index,
            cpu_ns: sys::thread_cpu_ns(),
            loops: self.loops,
            recv_batches: self.recv_batches,
            panics: self.panics,
            load_pps: self.mailbox.load_pps.load(Ordering::Relaxed),
            busy_permille: self.mailbox.busy_permille.load(Ordering::Relaxed),
            queue_depth: self.mailbox.handovers.len(),
            queue_overflows: self.io.queue_overflows,
            coalescing_wakes: self.wakes.mode() == WakeMode::Coalescing,
            wake_mode_switches: self.wakes.switches,
            cross_sent: self.io.cross_sent,
            cross_received: cross.received,
            remote_feeds: self.router.remote_feed_count(),
            subscriptions: self.router.subscription_count(),
            shared_buffers: self.io.pool.len(),
            shared_buffers_in_use: self.io.pool.iter().filter(|b| Arc::strong_count(b) > 1).count(),
            shared_port: self.shared.as_ref().map_or(0, |s| s.local.port()),
            shared_endpoints: self.shared.as_ref().map_or(0, |s| s.demux.endpoint_count()),
            shared_addresses: self.shared.as_ref().map_or(0, |s| s.demux.address_count()),
            shared_unrouted: self.shared.as_ref().map_or(0, |s| s.unrouted),
            tcp_connections: self.io.tcp.len(),
            tcp_dropped: self.io.tcp.dropped,
            endpoints: self.router.endpoint_stats(),
            sources: self.router.source_stats(),
            outputs: self.router.output_stats(),
        }
    }

    // ---- packet path ----------------------------------------------------------------------

    fn open_tcp_listener(&mut self, id: u32, listener: Option<TcpListener>) -> Result<(), String> {
        let Some(listener) = listener else { return Ok(()) };
        self.epoll.add(listener.as_raw_fd(), TCP_LISTENER_BIT | u64::from(id)).map_err(|e| e.to_string())?;
        self.tcp_listeners.insert(id, listener);
        Ok(())
    }

    /// Takes the connections waiting on an endpoint's ICE-TCP listener, up to its limit (more
    /// are closed at once: a peer tries a few pairs, not hundreds).
    fn accept_tcp(&mut self, id: u32) {
        for _ in 0..MAX_CONNECTIONS_PER_ENDPOINT * 2 {
            let Some(listener) = self.tcp_listeners.get(&id) else { return };
            let (stream, peer) = match listener.accept() {
                Ok(accepted) => accepted,
                Err(_) => return,
            };
            if self.io.tcp.count_for(id) >= MAX_CONNECTIONS_PER_ENDPOINT || stream.set_nonblocking(true).is_err() {
                continue; // dropped: closes it
            }
            let _ = stream.set_nodelay(true);
            self.next_tcp += 1;
            let token = TCP_CONNECTION_BIT | self.next_tcp;
            if self.epoll.add(stream.as_raw_fd(), token).is_err() {
                continue;
            }
            // Its peer's address routes replies onto it from the first check on.
            self.io.tcp.insert(token, stream, id, peer);
        }
    }

    /// An ICE-TCP connection is readable: each whole frame is a datagram from its peer.
    fn read_tcp(&mut self, token: u64) {
        let mut frames = Vec::new();
        let outcome = self.io.tcp.read(token, &mut frames);
        let Some((endpoint, peer)) = self.io.tcp.get(token).map(|c| (c.endpoint, c.peer)) else { return };
        let now_us = self.now_us();
        self.rx_total += frames.len() as u64;
        let mut buf = [0u8; MAX_DATAGRAM];
        for frame in &frames {
            let len = frame.len().min(MAX_DATAGRAM);
            buf[..len].copy_from_slice(&frame[..len]);
            self.router.on_datagram(endpoint, &mut buf, len, peer, now_us, &mut self.io);
        }
        if !frames.is_empty() {
            self.router.after_batch(endpoint, now_us, &mut self.io);
        }
        if outcome.closed {
            self.close_tcp(token);
        }
    }

    fn close_tcp(&mut self, token: u64) {
        if let Some(conn) = self.io.tcp.remove(token) {
            let _ = self.epoll.remove(conn.stream.as_raw_fd());
        }
    }

    fn read_endpoint(&mut self, id: u32) {
        if let Some(fd) = self.sockets.get(&id).map(|s| s.as_raw_fd()) {
            self.read_socket(fd, Some(id));
        }
    }

    fn read_shared(&mut self) {
        if let Some(fd) = self.shared.as_ref().map(|s| s.socket.as_raw_fd()) {
            self.read_socket(fd, None);
        }
    }

    /// Reads a ready socket in batches: an endpoint's own (`owner`), or the shared one, whose
    /// datagrams go to the endpoint the demux names (its validated address, or the ufrag a check
    /// is for; a check that validates its sender teaches the demux that address). Each endpoint
    /// a batch touched then gets its after-batch work once.
    fn read_socket(&mut self, fd: RawFd, owner: Option<u32>) {
        for _ in 0..MAX_BATCHES_PER_WAKE {
            let n = match self.recv.recv(fd) {
                Ok(n) => n,
                Err(_) => return,
            };
            if n == 0 {
                return;
            }
            self.recv_batches += 1;
            self.rx_total += n as u64;
            let now_us = self.now_us();
            self.touched.clear();
            for i in 0..n {
                let local = self.recv.local_of(i);
                let (buf, len, from) = self.recv.get_mut(i);
                let Some(from) = from else { continue };
                let endpoint = match (owner, self.shared.as_mut()) {
                    (Some(id), _) => id,
                    (None, Some(shared)) => match buf.get(..len).and_then(|datagram| shared.demux.route(from, datagram)) {
                        Some(endpoint) => endpoint,
                        None => {
                            shared.unrouted += 1;
                            continue;
                        }
                    },
                    (None, None) => continue,
                };
                let check = owner.is_none() && buf.get(..len).is_some_and(ferry_stun::is_stun);
                self.io.receiving = local.map(|l| (endpoint, l));
                self.router.on_datagram(endpoint, &mut buf[..], len, from, now_us, &mut self.io);
                self.io.receiving = None;
                learn_reply_address(&mut self.io.reply_from, &self.router, endpoint, from, local);
                if check && self.router.is_validated(endpoint, from) {
                    if let Some(shared) = self.shared.as_mut() {
                        shared.demux.learn(endpoint, from);
                    }
                }
                if !self.touched.contains(&endpoint) {
                    self.touched.push(endpoint);
                }
            }
            for k in 0..self.touched.len() {
                let endpoint = self.touched[k];
                self.router.after_batch(endpoint, now_us, &mut self.io);
            }
            // Other threads start on this batch's packets while this one reads the next.
            self.io.wake_peers();
            if n < RECV_SLOTS {
                return;
            }
            self.flush();
        }
    }
}

/// Sockets bound to a wildcard address report each datagram's local address (so replies leave
/// from the address the peer used).
fn enable_pktinfo_if_wildcard(socket: &UdpSocket) {
    if let Ok(local) = socket.local_addr() {
        if local.ip().is_unspecified() {
            sys::enable_pktinfo(socket.as_raw_fd(), local.is_ipv6());
        }
    }
}

/// Remembers the local address an endpoint's peer sends to, once the router took the datagram
/// from that peer (a validated ICE address, or any sender of a plain leg): what the endpoint
/// sends leaves from it. An unvalidated sender cannot move it.
fn learn_reply_address(reply_from: &mut IdMap<IpAddr>, router: &Router, endpoint: u32, from: SocketAddr, local: Option<IpAddr>) {
    let Some(local) = local else { return };
    if reply_from.get(&endpoint) == Some(&local) || !router.accepts_from(endpoint, from) {
        return;
    }
    reply_from.insert(endpoint, local);
}

/// Single-port mode: one socket of a media thread and the endpoints on it.
struct SharedSocket {
    socket: UdpSocket,
    local: SocketAddr,
    demux: SharedPortDemux,
    /// Datagrams for no endpoint (no validated address, no known ufrag): dropped.
    unrouted: u64,
}

pub(crate) fn panic_message(payload: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic".to_string()
    }
}
