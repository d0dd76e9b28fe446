//! One media thread: owns its endpoints' sockets, receives in batches,
//! demultiplexes (RFC 7983), and forwards — decrypt once, rewrite and
//! encrypt per output, one sendmmsg per socket per batch. Control commands
//! arrive over a channel with an eventfd wake-up.

use std::net::{SocketAddr, UdpSocket};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{Receiver, Sender};
use std::time::Instant;

use ferry_rtp::{rtcp, rtp, AudioLevelMeter};
use ferry_srtp::{SrtpContext, SrtpError};
use ferry_stun::{IceEvent, StunOutcome};

use crate::endpoint::{Endpoint, EndpointConfig, SrtpKeys, MAX_REPORTED_UNKNOWN_SSRCS};
use crate::event::{Event, EventSink};
use crate::idmap::IdMap;
use crate::router::{Output, OutputConfig, Source, SourceConfig};
use crate::stats::{EndpointStats, WorkerStats};
use crate::sys::{self, Epoll, FlushReport, RecvBatch, SendQueue, WakeFd, MAX_DATAGRAM};

pub type Reply<T> = Sender<Result<T, String>>;

/// Ids of the sources and outputs that died with a closed endpoint.
pub(crate) struct ClosedRoutes {
    pub sources: Vec<u32>,
    pub outputs: Vec<u32>,
}

pub(crate) enum Command {
    OpenEndpoint { id: u32, socket: UdpSocket, config: EndpointConfig, reply: Reply<()> },
    CloseEndpoint { id: u32, reply: Reply<ClosedRoutes> },
    SetSrtp { id: u32, keys: SrtpKeys, reply: Reply<()> },
    SetRemote { id: u32, remote: Option<SocketAddr>, reply: Reply<()> },
    SetIceRemoteUfrag { id: u32, ufrag: Option<String>, reply: Reply<()> },
    RestartIce { id: u32, ufrag: String, pwd: String, remote_ufrag: Option<String>, reply: Reply<()> },
    SendRaw { id: u32, to: SocketAddr, data: Vec<u8>, reply: Reply<()> },
    AddSource { id: u32, endpoint: u32, config: SourceConfig, reply: Reply<()> },
    RemoveSource { id: u32, reply: Reply<()> },
    AddOutput { id: u32, endpoint: u32, config: OutputConfig, reply: Reply<()> },
    SwitchOutput { id: u32, source: Option<u32>, on_keyframe: bool, reply: Reply<()> },
    PauseOutput { id: u32, paused: bool, reply: Reply<()> },
    RemoveOutput { id: u32, reply: Reply<()> },
    RequestKeyframe { source: u32, reply: Reply<()> },
    SetAudioLevelMeter { source: u32, meter: Option<(u8, u32)>, reply: Reply<()> },
    Stats { reply: Reply<WorkerStats> },
    Shutdown,
}

/// Token of the wake fd in epoll; endpoint tokens are their ids (never u64::MAX).
const WAKE_TOKEN: u64 = u64::MAX;
const RECV_SLOTS: usize = 32;
const SEND_SLOTS: usize = 1024;
/// Batches read from one ready socket before the others get their turn.
const MAX_BATCHES_PER_WAKE: usize = 8;
/// Consent and other timers are checked this often.
const TIMER_INTERVAL_MS: u64 = 200;
/// Keyframe requests relayed to a publisher at most this often per source.
const KEYFRAME_MIN_INTERVAL_US: u64 = 300_000;
const REMB_EVENT_INTERVAL_US: u64 = 1_000_000;
/// RTP media SSRC used as the sender of RTCP feedback ferry originates (RFC 4585 §6.1 allows any).
const FEEDBACK_SENDER_SSRC: u32 = 1;
/// Loss on what each source receives is accounted over this interval.
const LOSS_INTERVAL_US: u64 = 1_000_000;
/// Transport-cc feedback is sent at most this often per endpoint while packets arrive.
const TWCC_FEEDBACK_INTERVAL_US: u64 = 100_000;

pub(crate) struct Worker {
    index: usize,
    epoll: Epoll,
    wake: std::sync::Arc<WakeFd>,
    commands: Receiver<Command>,
    events: EventSink,
    pending_events: Vec<Event>,
    /// Reused buffer for the transport-cc messages of one endpoint.
    feedback_scratch: Vec<Vec<u8>>,
    endpoints: IdMap<Endpoint>,
    sources: IdMap<Source>,
    outputs: IdMap<Output>,
    recv: RecvBatch,
    send: SendQueue,
    flush_report: FlushReport,
    stun_out: Vec<u8>,
    ready: Vec<u64>,
    /// (old source, output) pairs whose pending switch completed during one packet's fan-out.
    completed_switches: Vec<(Option<u32>, u32)>,
    started: Instant,
    last_timer_ms: u64,
    loops: u64,
    recv_batches: u64,
    panics: u64,
    running: bool,
}

impl Worker {
    pub fn new(
        index: usize,
        wake: std::sync::Arc<WakeFd>,
        commands: Receiver<Command>,
        events: EventSink,
    ) -> std::io::Result<Self> {
        let epoll = Epoll::new(256)?;
        epoll.add(wake.fd(), WAKE_TOKEN)?;
        Ok(Self {
            index,
            epoll,
            wake,
            commands,
            events,
            pending_events: Vec::new(),
            feedback_scratch: Vec::new(),
            endpoints: IdMap::default(),
            sources: IdMap::default(),
            outputs: IdMap::default(),
            recv: RecvBatch::new(RECV_SLOTS),
            send: SendQueue::new(SEND_SLOTS),
            flush_report: FlushReport { sent: Vec::new(), failed: Vec::new() },
            stun_out: Vec::with_capacity(256),
            ready: Vec::with_capacity(256),
            completed_switches: Vec::new(),
            started: Instant::now(),
            last_timer_ms: 0,
            loops: 0,
            recv_batches: 0,
            panics: 0,
            running: true,
        })
    }

    fn now_us(&self) -> u64 {
        self.started.elapsed().as_micros() as u64
    }

    /// The thread body. A panic inside one iteration is caught, counted and reported; the
    /// thread goes on (the addon must never take the process down).
    pub fn run(mut self) {
        while self.running {
            let result = catch_unwind(AssertUnwindSafe(|| self.iteration()));
            if let Err(payload) = result {
                self.panics += 1;
                let message = panic_message(&payload);
                // Queued datagrams may be half-written: drop them rather than send garbage.
                self.send = SendQueue::new(SEND_SLOTS);
                self.pending_events.push(Event::WorkerPanic { worker: self.index, message });
                self.emit_events();
            }
        }
        // Shutdown: every socket closes as the endpoints drop.
        self.endpoints.clear();
    }

    fn iteration(&mut self) {
        self.loops += 1;
        let mut ready = std::mem::take(&mut self.ready);
        if self.epoll.wait(TIMER_INTERVAL_MS as i32, &mut ready).is_err() {
            ready.clear();
        }
        for &token in &ready {
            if token == WAKE_TOKEN {
                self.wake.drain();
                self.drain_commands();
                if !self.running {
                    break;
                }
            } else {
                self.read_endpoint(token as u32);
            }
        }
        self.ready = ready;
        self.flush();
        let now_ms = self.now_us() / 1000;
        if now_ms.saturating_sub(self.last_timer_ms) >= TIMER_INTERVAL_MS {
            self.last_timer_ms = now_ms;
            self.on_timer(now_ms);
        }
        self.emit_events();
    }

    fn emit_events(&mut self) {
        if !self.pending_events.is_empty() {
            let batch = std::mem::take(&mut self.pending_events);
            (self.events)(batch);
        }
    }

    fn on_timer(&mut self, now_ms: u64) {
        let now_us = now_ms * 1000;
        for (&id, src) in self.sources.iter_mut() {
            if now_us.saturating_sub(src.last_loss_check_us) < LOSS_INTERVAL_US {
                continue;
            }
            src.last_loss_check_us = now_us;
            let interval = src.reception.take_interval();
            if interval.lost > 0 {
                self.pending_events.push(Event::SourceLoss { endpoint: src.endpoint, source: id, expected: interval.expected, lost: interval.lost });
            }
        }
        // Feedback for the last packets of a burst, which no later read flushed out.
        let waiting: Vec<u32> = self.endpoints.values().filter(|ep| ep.twcc.as_ref().is_some_and(|t| t.recorder.pending() > 0)).map(|ep| ep.id).collect();
        for id in waiting {
            self.send_transport_feedback(id, now_ms * 1000, 0);
        }
        self.flush();
        for ep in self.endpoints.values_mut() {
            if let Some(agent) = ep.ice.as_mut() {
                while let Some(ev) = agent.poll(now_ms) {
                    if let IceEvent::ConsentLost(address) = ev {
                        self.pending_events.push(Event::ConsentLost { endpoint: ep.id, address });
                    }
                }
            }
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
        match cmd {
            Command::OpenEndpoint { id, socket, config, reply } => {
                let r = Endpoint::new(id, socket, &config).map_err(|e| e.to_string()).and_then(|ep| {
                    sys::set_socket_buffers(ep.fd(), 4 << 20);
                    self.recv.enable_gro(ep.fd());
                    self.epoll.add(ep.fd(), id as u64).map_err(|e| e.to_string())?;
                    self.endpoints.insert(id, ep);
                    Ok(())
                });
                let _ = reply.send(r);
            }
            Command::CloseEndpoint { id, reply } => {
                let _ = reply.send(self.close_endpoint(id));
            }
            Command::SetSrtp { id, keys, reply } => {
                let r = self.endpoint_mut(id).and_then(|ep| {
                    let out = SrtpContext::new(keys.profile, &keys.local_key, &keys.local_salt)
                        .map_err(|e| format!("local SRTP key: {e}"))?;
                    let inb = SrtpContext::new(keys.profile, &keys.remote_key, &keys.remote_salt)
                        .map_err(|e| format!("remote SRTP key: {e}"))?;
                    ep.srtp_out = Some(out);
                    ep.srtp_in = Some(inb);
                    Ok(())
                });
                let _ = reply.send(r);
            }
            Command::SetRemote { id, remote, reply } => {
                let r = self.endpoint_mut(id).map(|ep| ep.remote = remote);
                let _ = reply.send(r);
            }
            Command::SetIceRemoteUfrag { id, ufrag, reply } => {
                let r = self.endpoint_mut(id).and_then(|ep| match ep.ice.as_mut() {
                    Some(agent) => {
                        agent.set_remote_ufrag(ufrag.as_deref());
                        Ok(())
                    }
                    None => Err(format!("endpoint {id} has no ICE agent")),
                });
                let _ = reply.send(r);
            }
            Command::RestartIce { id, ufrag, pwd, remote_ufrag, reply } => {
                let r = self.endpoint_mut(id).and_then(|ep| match ep.ice.as_mut() {
                    Some(agent) => {
                        agent.restart(&ufrag, &pwd, remote_ufrag.as_deref());
                        Ok(())
                    }
                    None => Err(format!("endpoint {id} has no ICE agent")),
                });
                let _ = reply.send(r);
            }
            Command::SendRaw { id, to, data, reply } => {
                let r = self.send_raw(id, to, &data);
                let _ = reply.send(r);
            }
            Command::AddSource { id, endpoint, config, reply } => {
                let _ = reply.send(self.add_source(id, endpoint, config));
            }
            Command::RemoveSource { id, reply } => {
                let _ = reply.send(self.remove_source(id));
            }
            Command::AddOutput { id, endpoint, config, reply } => {
                let _ = reply.send(self.add_output(id, endpoint, config));
            }
            Command::SwitchOutput { id, source, on_keyframe, reply } => {
                let r = self.switch_output(id, source, on_keyframe);
                self.flush();
                let _ = reply.send(r);
            }
            Command::PauseOutput { id, paused, reply } => {
                let r = match self.outputs.get_mut(&id) {
                    Some(o) => {
                        o.paused = paused;
                        Ok(())
                    }
                    None => Err(format!("no output {id}")),
                };
                let _ = reply.send(r);
            }
            Command::RemoveOutput { id, reply } => {
                let _ = reply.send(self.remove_output(id));
            }
            Command::RequestKeyframe { source, reply } => {
                let r = if self.sources.contains_key(&source) {
                    self.relay_keyframe_request(source, true);
                    self.flush();
                    Ok(())
                } else {
                    Err(format!("no source {source}"))
                };
                let _ = reply.send(r);
            }
            Command::SetAudioLevelMeter { source, meter, reply } => {
                let r = match self.sources.get_mut(&source) {
                    Some(src) => {
                        src.audio_level = meter.map(|(extension_id, packets)| (extension_id, AudioLevelMeter::new(packets)));
                        Ok(())
                    }
                    None => Err(format!("no source {source}")),
                };
                let _ = reply.send(r);
            }
            Command::Stats { reply } => {
                let _ = reply.send(Ok(self.stats()));
            }
            Command::Shutdown => {
                self.running = false;
            }
        }
    }

    fn endpoint_mut(&mut self, id: u32) -> Result<&mut Endpoint, String> {
        self.endpoints.get_mut(&id).ok_or_else(|| format!("no endpoint {id}"))
    }

    fn close_endpoint(&mut self, id: u32) -> Result<ClosedRoutes, String> {
        if !self.endpoints.contains_key(&id) {
            return Err(format!("no endpoint {id}"));
        }
        // What is queued for this socket goes out now, while the fd still names it.
        self.flush();
        let ep = self.endpoints.remove(&id).ok_or_else(|| format!("no endpoint {id}"))?;
        let _ = self.epoll.remove(ep.fd());
        self.send.forget_socket(ep.fd());
        // Routes die with the endpoint: its sources (and their outputs' links) and its outputs.
        let source_ids: Vec<u32> = ep.sources_by_ssrc.values().copied().collect();
        let output_ids: Vec<u32> = ep.outputs_by_ssrc.values().copied().collect();
        drop(ep); // closes the socket now, before the caller is answered
        for &sid in &source_ids {
            let _ = self.remove_source(sid);
        }
        for &oid in &output_ids {
            let _ = self.remove_output(oid);
        }
        Ok(ClosedRoutes { sources: source_ids, outputs: output_ids })
    }

    fn add_source(&mut self, id: u32, endpoint: u32, config: SourceConfig) -> Result<(), String> {
        let ep = self.endpoints.get_mut(&endpoint).ok_or_else(|| format!("no endpoint {endpoint}"))?;
        if config.clock_rate == 0 {
            return Err("clock rate must be > 0".into());
        }
        if ep.sources_by_ssrc.contains_key(&config.ssrc) {
            return Err(format!("endpoint {endpoint} already has a source with SSRC {}", config.ssrc));
        }
        ep.sources_by_ssrc.insert(config.ssrc, id);
        ep.reported_unknown.remove(&config.ssrc);
        self.sources.insert(
            id,
            Source {
                endpoint,
                config,
                outputs: Vec::new(),
                last_keyframe_request_us: None,
                stats: Default::default(),
                audio_level: None,
                reception: Default::default(),
                last_loss_check_us: 0,
            },
        );
        Ok(())
    }

    fn remove_source(&mut self, id: u32) -> Result<(), String> {
        let src = self.sources.remove(&id).ok_or_else(|| format!("no source {id}"))?;
        if let Some(ep) = self.endpoints.get_mut(&src.endpoint) {
            if ep.sources_by_ssrc.get(&src.config.ssrc) == Some(&id) {
                ep.sources_by_ssrc.remove(&src.config.ssrc);
            }
        }
        // Outputs stay (a subscriber may be switched to another source) but go idle, or move
        // at once to the source they were waiting for: no old stream is left to bridge the wait.
        for oid in src.outputs {
            if let Some(o) = self.outputs.get_mut(&oid) {
                if o.source == Some(id) {
                    o.source = o.pending_source.take();
                } else if o.pending_source == Some(id) {
                    o.pending_source = None;
                }
            }
        }
        Ok(())
    }

    fn add_output(&mut self, id: u32, endpoint: u32, config: OutputConfig) -> Result<(), String> {
        let ep = self.endpoints.get_mut(&endpoint).ok_or_else(|| format!("no endpoint {endpoint}"))?;
        if ep.outputs_by_ssrc.contains_key(&config.ssrc) {
            return Err(format!("endpoint {endpoint} already has an output with SSRC {}", config.ssrc));
        }
        if let Some(sid) = config.source {
            if !self.sources.contains_key(&sid) {
                return Err(format!("no source {sid}"));
            }
        }
        ep.outputs_by_ssrc.insert(config.ssrc, id);
        self.outputs.insert(
            id,
            Output {
                endpoint,
                source: None,
                pending_source: None,
                ssrc: config.ssrc,
                payload_type: config.payload_type,
                paused: false,
                switching: ferry_rtp::switch::SwitchingContext::new(),
                stats: Default::default(),
            },
        );
        if let Some(sid) = config.source {
            self.switch_output(id, Some(sid), false)?;
        }
        Ok(())
    }

    fn switch_output(&mut self, id: u32, source: Option<u32>, on_keyframe: bool) -> Result<(), String> {
        if let Some(sid) = source {
            if !self.sources.contains_key(&sid) {
                return Err(format!("no source {sid}"));
            }
        }
        let out = self.outputs.get_mut(&id).ok_or_else(|| format!("no output {id}"))?;
        let old = out.source;
        // A later switch replaces a pending one.
        if let Some(pending) = out.pending_source.take() {
            if Some(pending) != old {
                if let Some(s) = self.sources.get_mut(&pending) {
                    s.outputs.retain(|&o| o != id);
                }
            }
        }
        let old_is_live = old.is_some_and(|o| self.sources.contains_key(&o));
        let new_has_codec = source.and_then(|s| self.sources.get(&s)).is_some_and(|s| s.config.codec.is_some());
        if on_keyframe && old != source && old_is_live && new_has_codec {
            if let Some(new) = source {
                if let Some(out) = self.outputs.get_mut(&id) {
                    out.pending_source = Some(new);
                }
                if let Some(s) = self.sources.get_mut(&new) {
                    if !s.outputs.contains(&id) {
                        s.outputs.push(id);
                    }
                }
                self.relay_keyframe_request(new, true);
            }
            return Ok(());
        }
        let out = self.outputs.get_mut(&id).ok_or_else(|| format!("no output {id}"))?;
        out.source = source;
        if let Some(old) = old {
            if let Some(s) = self.sources.get_mut(&old) {
                s.outputs.retain(|&o| o != id);
            }
        }
        if let Some(new) = source {
            if let Some(s) = self.sources.get_mut(&new) {
                if !s.outputs.contains(&id) {
                    s.outputs.push(id);
                }
            }
            // A new subscriber (or a switch) needs a keyframe to start decoding.
            if old != source {
                self.relay_keyframe_request(new, true);
            }
        }
        Ok(())
    }

    fn remove_output(&mut self, id: u32) -> Result<(), String> {
        let out = self.outputs.remove(&id).ok_or_else(|| format!("no output {id}"))?;
        for sid in [out.source, out.pending_source].into_iter().flatten() {
            if let Some(s) = self.sources.get_mut(&sid) {
                s.outputs.retain(|&o| o != id);
            }
        }
        if let Some(ep) = self.endpoints.get_mut(&out.endpoint) {
            if ep.outputs_by_ssrc.get(&out.ssrc) == Some(&id) {
                ep.outputs_by_ssrc.remove(&out.ssrc);
            }
        }
        Ok(())
    }

    fn send_raw(&mut self, id: u32, to: SocketAddr, data: &[u8]) -> Result<(), String> {
        if data.len() > MAX_DATAGRAM {
            return Err(format!("datagram of {} bytes exceeds {MAX_DATAGRAM}", data.len()));
        }
        let ep = self.endpoints.get_mut(&id).ok_or_else(|| format!("no endpoint {id}"))?;
        match ep.socket.send_to(data, to) {
            Ok(_) => {
                ep.stats.dtls_out += 1;
                ep.stats.tx_packets += 1;
                ep.stats.tx_bytes += data.len() as u64;
                Ok(())
            }
            Err(e) => {
                ep.stats.tx_failed += 1;
                Err(format!("send to {to}: {e}"))
            }
        }
    }

    fn stats(&self) -> WorkerStats {
        let mut endpoints: Vec<(u32, u16, EndpointStats)> =
            self.endpoints.values().map(|e| (e.id, e.local.port(), e.stats.clone())).collect();
        endpoints.sort_by_key(|e| e.0);
        let mut sources: Vec<_> = self.sources.iter().map(|(id, s)| (*id, s.stats.clone())).collect();
        sources.sort_by_key(|s| s.0);
        let mut outputs: Vec<_> = self.outputs.iter().map(|(id, o)| (*id, o.stats.clone())).collect();
        outputs.sort_by_key(|o| o.0);
        WorkerStats {
            worker: self.index,
            cpu_ns: sys::thread_cpu_ns(),
            loops: self.loops,
            recv_batches: self.recv_batches,
            panics: self.panics,
            endpoints,
            sources,
            outputs,
        }
    }

    // ---- packet path ----------------------------------------------------------------------

    fn read_endpoint(&mut self, id: u32) {
        for _ in 0..MAX_BATCHES_PER_WAKE {
            let fd = match self.endpoints.get(&id) {
                Some(ep) => ep.fd(),
                None => return,
            };
            let n = match self.recv.recv(fd) {
                Ok(n) => n,
                Err(_) => return,
            };
            if n == 0 {
                return;
            }
            self.recv_batches += 1;
            let now_us = self.now_us();
            for i in 0..n {
                self.on_datagram(id, i, now_us);
            }
            self.send_transport_feedback(id, now_us, TWCC_FEEDBACK_INTERVAL_US);
            if n < RECV_SLOTS {
                return;
            }
            self.flush();
        }
    }

    /// RFC 7983 §7 demultiplexing on the first byte.
    fn on_datagram(&mut self, id: u32, slot: usize, now_us: u64) {
        let (buf, len, from) = self.recv.get_mut(slot);
        let Some(from) = from else { return };
        let Some(ep) = self.endpoints.get_mut(&id) else { return };
        ep.stats.rx_packets += 1;
        ep.stats.rx_bytes += len as u64;
        let first = match buf.first() {
            Some(&b) if len > 0 => b,
            _ => {
                ep.stats.demux_unknown += 1;
                return;
            }
        };
        match first {
            0..=3 => Self::on_stun(ep, &mut self.stun_out, &mut self.send, &mut self.pending_events, &buf[..len], from, now_us),
            20..=63 => {
                if !ep.accepts_from(from) {
                    ep.stats.unvalidated_drops += 1;
                    return;
                }
                ep.stats.dtls_in += 1;
                self.pending_events.push(Event::Dtls { endpoint: id, from, data: buf[..len].to_vec() });
            }
            128..=191 => {
                if !ep.accepts_from(from) {
                    ep.stats.unvalidated_drops += 1;
                    return;
                }
                if ep.ice.is_none() && ep.latch && ep.remote.is_none() {
                    ep.remote = Some(from);
                    self.pending_events.push(Event::RemoteLatched { endpoint: id, address: from });
                }
                if rtp::is_rtcp(&buf[..len]) {
                    self.on_rtcp(id, slot, now_us);
                } else {
                    self.on_rtp(id, slot, now_us);
                }
            }
            _ => ep.stats.demux_unknown += 1,
        }
    }

    fn on_stun(
        ep: &mut Endpoint,
        out: &mut Vec<u8>,
        send: &mut SendQueue,
        events: &mut Vec<Event>,
        data: &[u8],
        from: SocketAddr,
        now_us: u64,
    ) {
        let Some(agent) = ep.ice.as_mut() else {
            ep.stats.stun_dropped += 1;
            return;
        };
        if !ferry_stun::is_stun(data) {
            ep.stats.stun_dropped += 1;
            return;
        }
        ep.stats.stun_requests += 1;
        let outcome = agent.handle(data, from, now_us / 1000, out);
        match outcome {
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
        if let Some(slot) = send.slot() {
            slot[..out.len()].copy_from_slice(out);
            send.commit(out.len(), ep.fd(), ep.id, &from);
        } else {
            ep.stats.tx_failed += 1;
        }
    }

    fn on_rtp(&mut self, id: u32, slot: usize, now_us: u64) {
        let (buf, mut len, _) = self.recv.get_mut(slot);
        let Some(ep) = self.endpoints.get_mut(&id) else { return };
        ep.stats.rtp_in += 1;
        if let Some(ctx) = ep.srtp_in.as_mut() {
            match ctx.unprotect_rtp(&mut buf[..], len) {
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
        let hdr = match rtp::parse_rtp(&buf[..len]) {
            Ok(h) => h,
            Err(_) => {
                ep.stats.rtp_malformed += 1;
                return;
            }
        };
        if let Some(twcc) = ep.twcc.as_mut() {
            // Every packet on the transport counts for the sender's estimate, known SSRC or not.
            if let Some(&[hi, lo, ..]) = rtp::find_extension(&buf[..len], &hdr, twcc.extension_id) {
                twcc.recorder.record(u16::from_be_bytes([hi, lo]), now_us);
                twcc.media_ssrc = hdr.ssrc;
            }
        }
        let Some(&sid) = ep.sources_by_ssrc.get(&hdr.ssrc) else {
            ep.stats.unknown_ssrc += 1;
            if ep.reported_unknown.len() < MAX_REPORTED_UNKNOWN_SSRCS && ep.reported_unknown.insert(hdr.ssrc) {
                let rid = ep
                    .rid_extension_id
                    .and_then(|rid_id| rtp::find_extension(&buf[..len], &hdr, rid_id))
                    .and_then(|b| std::str::from_utf8(b).ok())
                    .map(|s| s.to_string());
                self.pending_events.push(Event::UnknownSsrc { endpoint: id, ssrc: hdr.ssrc, payload_type: hdr.payload_type, rid });
            }
            return;
        };
        let Some(src) = self.sources.get_mut(&sid) else { return };
        src.stats.packets += 1;
        src.stats.bytes += len as u64;
        src.reception.update(hdr.sequence);
        if let Some((extension_id, meter)) = src.audio_level.as_mut() {
            // Packets without the element do not count.
            if let Some(average) = rtp::audio_level(&buf[..len], &hdr, *extension_id).and_then(|(_, level)| meter.observe(level)) {
                self.pending_events.push(Event::AudioLevel { endpoint: src.endpoint, source: sid, level: average });
            }
        }
        let clock_rate = src.config.clock_rate;
        let codec = src.config.codec;
        let plain = &buf[..len];
        // Decided at most once per packet, and only when some output waits for this source.
        let mut starts_keyframe: Option<bool> = None;
        for &oid in &src.outputs {
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
                self.pending_events.push(Event::OutputSwitched { endpoint: out.endpoint, output: oid, source: sid });
            }
            if out.paused {
                out.stats.dropped += 1;
                continue;
            }
            let Some((seq, ts)) = out.switching.process(sid as u64, hdr.sequence, hdr.timestamp, now_us, clock_rate) else {
                out.stats.dropped += 1;
                continue;
            };
            if self.send.is_full() {
                flush_queue(&mut self.send, &mut self.flush_report, &mut self.endpoints);
            }
            let Some(out_ep) = self.endpoints.get_mut(&out.endpoint) else { continue };
            let Some(dest) = out_ep.remote else {
                out_ep.stats.no_remote_drops += 1;
                out.stats.dropped += 1;
                continue;
            };
            Self::write_output(&mut self.send, out, out_ep, plain, seq, ts, dest);
        }
        // The switched outputs leave their old sources' fan-out lists.
        for (old, oid) in self.completed_switches.drain(..) {
            if let Some(s) = old.and_then(|old| self.sources.get_mut(&old)) {
                s.outputs.retain(|&o| o != oid);
            }
        }
    }

    /// Rewrites one copy of a decrypted packet for an output (SSRC, sequence, timestamp, PT),
    /// encrypts it with the output endpoint's context and queues it.
    fn write_output(send: &mut SendQueue, out: &mut Output, out_ep: &mut Endpoint, plain: &[u8], seq: u16, ts: u32, dest: SocketAddr) {
        let len = plain.len();
        let Some(pkt) = send.slot() else {
            out.stats.dropped += 1;
            return;
        };
        pkt[..len].copy_from_slice(plain);
        rtp::set_ssrc(&mut pkt[..len], out.ssrc);
        rtp::set_sequence(&mut pkt[..len], seq);
        rtp::set_timestamp(&mut pkt[..len], ts);
        if let Some(pt) = out.payload_type {
            rtp::set_payload_type(&mut pkt[..len], pt);
        }
        let out_len = match out_ep.srtp_out.as_mut() {
            Some(ctx) => match ctx.protect_rtp(&mut pkt[..], len) {
                Ok(n) => n,
                Err(_) => {
                    out.stats.dropped += 1;
                    out_ep.stats.tx_failed += 1;
                    return;
                }
            },
            None if out_ep.ice.is_some() => {
                out_ep.stats.no_srtp_drops += 1;
                out.stats.dropped += 1;
                return;
            }
            None => len,
        };
        out.stats.packets += 1;
        out.stats.bytes += out_len as u64;
        send.commit(out_len, out_ep.fd(), out_ep.id, &dest);
    }

    fn on_rtcp(&mut self, id: u32, slot: usize, now_us: u64) {
        let (buf, mut len, _) = self.recv.get_mut(slot);
        let Some(ep) = self.endpoints.get_mut(&id) else { return };
        ep.stats.rtcp_in += 1;
        if let Some(ctx) = ep.srtp_in.as_mut() {
            match ctx.unprotect_rtcp(&mut buf[..], len) {
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
        for fb in feedback {
            match fb {
                rtcp::Feedback::Pli { media_ssrc, .. } | rtcp::Feedback::Fir { media_ssrc, .. } => {
                    if let Some(src) = ep.outputs_by_ssrc.get(&media_ssrc).and_then(|oid| self.outputs.get(oid)).and_then(|o| o.source) {
                        if !keyframe_sources.contains(&src) {
                            keyframe_sources.push(src);
                        }
                    }
                }
                rtcp::Feedback::Remb { bitrate_bps, .. } => remb = Some(bitrate_bps),
                rtcp::Feedback::ReceiverReport { blocks, .. } => {
                    // Loss the receiver saw on what ferry sends it: reported (rate-limited) for slowlink.
                    let due = ep.last_loss_report_us == 0 || now_us.saturating_sub(ep.last_loss_report_us) >= REMB_EVENT_INTERVAL_US;
                    if due {
                        if let Some(b) = blocks.iter().filter(|b| ep.outputs_by_ssrc.contains_key(&b.ssrc)).max_by_key(|b| b.fraction_lost) {
                            ep.last_loss_report_us = now_us.max(1);
                            self.pending_events.push(Event::ReceiverLoss {
                                endpoint: id,
                                ssrc: b.ssrc,
                                fraction_lost: b.fraction_lost,
                                cumulative_lost: b.cumulative_lost,
                            });
                        }
                    }
                }
                _ => {}
            }
        }
        if let Some(bitrate_bps) = remb {
            if ep.last_remb_us == 0 || now_us.saturating_sub(ep.last_remb_us) >= REMB_EVENT_INTERVAL_US {
                ep.last_remb_us = now_us.max(1);
                self.pending_events.push(Event::Remb { endpoint: id, bitrate_bps });
            }
        }
        for src in keyframe_sources {
            self.relay_keyframe_request(src, false);
        }
    }

    /// Sends a PLI (RFC 4585 §6.3.1) for `source` to its publisher, at most once per
    /// KEYFRAME_MIN_INTERVAL_US unless `force`d by the control plane.
    fn relay_keyframe_request(&mut self, source: u32, force: bool) {
        let now_us = self.now_us();
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
        if queue_rtcp(&mut self.send, ep, &pli, dest) {
            ep.stats.keyframe_requests_relayed += 1;
            self.pending_events.push(Event::KeyframeRequested { source });
        }
    }

    /// Sends transport-cc feedback for what an endpoint received, at most every `min_interval_us`
    /// (draft-holmer-rmcat-transport-wide-cc-extensions-01 §3.1; libwebrtc sends every 50–250 ms).
    fn send_transport_feedback(&mut self, id: u32, now_us: u64, min_interval_us: u64) {
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
            if self.send.is_full() {
                flush_queue(&mut self.send, &mut self.flush_report, &mut self.endpoints);
            }
            let Some(ep) = self.endpoints.get_mut(&id) else { return };
            if queue_rtcp(&mut self.send, ep, fb, dest) {
                ep.stats.transport_feedback_sent += 1;
            }
        }
    }

    fn flush(&mut self) {
        flush_queue(&mut self.send, &mut self.flush_report, &mut self.endpoints);
    }
}

/// Queues one RTCP packet ferry originates on an endpoint, SRTCP-protected when the endpoint has
/// keys; a WebRTC endpoint without keys yet sends nothing (RFC 8827 §6.5). True when queued.
fn queue_rtcp(send: &mut SendQueue, ep: &mut Endpoint, packet: &[u8], dest: SocketAddr) -> bool {
    let Some(slot) = send.slot() else { return false };
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
    send.commit(len, ep.fd(), ep.id, &dest);
    true
}

fn flush_queue(send: &mut SendQueue, report: &mut FlushReport, endpoints: &mut IdMap<Endpoint>) {
    if send.is_empty() {
        return;
    }
    send.flush(report);
    for &(owner, n, bytes) in &report.sent {
        if let Some(ep) = endpoints.get_mut(&owner) {
            ep.stats.tx_packets += n as u64;
            ep.stats.tx_bytes += bytes as u64;
        }
    }
    for &(owner, n) in &report.failed {
        if let Some(ep) = endpoints.get_mut(&owner) {
            ep.stats.tx_failed += n as u64;
        }
    }
}

fn count_srtp_error(stats: &mut EndpointStats, e: SrtpError) {
    match e {
        SrtpError::AuthFailed => stats.srtp_auth_failures += 1,
        SrtpError::Replayed | SrtpError::TooOld => stats.srtp_replays += 1,
        _ => stats.srtp_other_failures += 1,
    }
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
