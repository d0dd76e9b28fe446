//! Density benchmarks: a paced many-publisher sender and counting sinks.
//!
//! The load of a density benchmark: many rooms, each with one publisher sending a video stream
//! in frame bursts and an audio stream at a steady rate, as browsers do, rather than a flood.
//! The sender runs on one thread for all rooms; the sinks count what arrives per port. Both share
//! the machine with the media threads they measure, so both are kept cheap: the sender sends
//! each wake-up's packets in one sendmmsg, the sinks poll (no wake-up per packet) and read with
//! recvmmsg, without decrypting.

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use ferry_srtp::{SrtpContext, SrtpProfile};

use super::make_rtp;
use crate::sys::{self, FlushReport, SendQueue, MAX_DATAGRAM};

/// One publisher of `paced_send`: its own socket, destination and SRTP keys, two SSRCs.
#[derive(Debug, Clone)]
pub struct PacedRoom {
    pub target: SocketAddr,
    pub key: Vec<u8>,
    pub salt: Vec<u8>,
    pub video_ssrc: u32,
    pub audio_ssrc: u32,
}

#[derive(Debug, Clone)]
pub struct PacedOptions {
    pub rooms: Vec<PacedRoom>,
    /// `None` sends plain RTP.
    pub profile: Option<SrtpProfile>,
    pub duration: Duration,
    /// Video frames per second of each room; 0 sends no video.
    pub video_fps: u32,
    /// Packets of one frame, sent back to back (a burst); the last one is shorter and marked.
    pub video_packets_per_frame: u32,
    pub video_payload: usize,
    pub video_payload_type: u8,
    /// Audio packets per second of each room (one every 20 ms at 50); 0 sends no audio.
    pub audio_packets_per_second: u32,
    pub audio_payload: usize,
    pub audio_payload_type: u8,
}

impl PacedOptions {
    /// 30 frames/s of 4 packets of ~1100 bytes (≈120 packets/s) and 50 audio packets/s of 100
    /// bytes per room: a 720p-ish camera and Opus.
    pub fn new(rooms: Vec<PacedRoom>, profile: Option<SrtpProfile>, duration: Duration) -> Self {
        Self {
            rooms,
            profile,
            duration,
            video_fps: 30,
            video_packets_per_frame: 4,
            video_payload: 1100,
            video_payload_type: 96,
            audio_packets_per_second: 50,
            audio_payload: 100,
            audio_payload_type: 111,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PacedResult {
    /// Datagrams the kernel took, and refused.
    pub sent: u64,
    pub failed: u64,
    /// Packets built of each kind.
    pub video_packets: u64,
    pub audio_packets: u64,
    /// Datagrams the kernel took, per room (index of `PacedOptions::rooms`).
    pub room_sent: Vec<u64>,
    pub nanos: u64,
    /// Frames and audio packets sent more than `PACED_LATE_US` after they were due: the sender
    /// itself fell behind (a starved core), so the offered load was burstier than asked.
    pub late: u64,
    pub max_late_us: u64,
}

pub const PACED_LATE_US: u64 = 5_000;

/// Sends every room's video frames and audio packets on schedule for `duration`, from the
/// calling thread (run it on its own thread). Room `r` of `R` starts its frames `r/R` of a frame
/// interval late and its audio `r/R` of an audio interval (plus a third) late, so the rooms'
/// bursts are spread as independent publishers' would be, not all at once.
pub fn paced_send(options: &PacedOptions) -> Result<PacedResult, String> {
    let rooms = options.rooms.len();
    if rooms == 0 {
        return Err("paced_send: no rooms".into());
    }
    let mut sockets = Vec::with_capacity(rooms);
    let mut contexts = Vec::with_capacity(rooms);
    for room in &options.rooms {
        let bind: SocketAddr = if room.target.is_ipv4() { "127.0.0.1:0" } else { "[::1]:0" }
            .parse()
            .map_err(|e: std::net::AddrParseError| e.to_string())?;
        let socket = UdpSocket::bind(bind).map_err(|e| e.to_string())?;
        sys::set_socket_buffers(socket.as_raw_fd(), 1 << 20);
        sockets.push(socket);
        contexts.push(match options.profile {
            Some(p) => Some(SrtpContext::new(p, &room.key, &room.salt).map_err(|e| e.to_string())?),
            None => None,
        });
    }
    const NS: u64 = 1_000_000_000;
    let duration_ns = options.duration.as_nanos().min(u64::MAX as u128) as u64;
    let frame_ns = if options.video_fps > 0 { NS / options.video_fps as u64 } else { 0 };
    let audio_ns = if options.audio_packets_per_second > 0 { NS / options.audio_packets_per_second as u64 } else { 0 };
    let per_frame = options.video_packets_per_frame.max(1);
    // Per room: next frame / audio packet index, and phases.
    let mut next_frame = vec![0u64; rooms];
    let mut next_audio = vec![0u64; rooms];
    let video_phase: Vec<u64> = (0..rooms as u64).map(|r| frame_ns * r / rooms as u64).collect();
    let audio_phase: Vec<u64> = (0..rooms as u64).map(|r| (audio_ns * r / rooms as u64 + audio_ns / 3) % audio_ns.max(1)).collect();
    let video_due = |r: usize, n: u64| video_phase[r] + n * NS / options.video_fps.max(1) as u64;
    let audio_due = |r: usize, n: u64| audio_phase[r] + n * NS / options.audio_packets_per_second.max(1) as u64;
    let mut seq_video: Vec<u16> = (0..rooms).map(|r| (r as u16).wrapping_mul(7919).wrapping_add(1)).collect();
    let mut seq_audio: Vec<u16> = (0..rooms).map(|r| (r as u16).wrapping_mul(31).wrapping_add(1000)).collect();

    let mut queue = SendQueue::new(64);
    let mut report = FlushReport { sent: Vec::new(), failed: Vec::new() };
    let mut result = PacedResult {
        sent: 0,
        failed: 0,
        video_packets: 0,
        audio_packets: 0,
        room_sent: vec![0; rooms],
        nanos: 0,
        late: 0,
        max_late_us: 0,
    };
    let mut flush = |queue: &mut SendQueue, result: &mut PacedResult| {
        if queue.is_empty() {
            return;
        }
        queue.flush(&mut report);
        for &(owner, n, _) in &report.sent {
            result.sent += n as u64;
            if let Some(s) = result.room_sent.get_mut(owner as usize) {
                *s += n as u64;
            }
        }
        result.failed += report.failed.iter().map(|f| f.1 as u64).sum::<u64>();
    };
    // One packet into the queue (flushed first when full).
    #[allow(clippy::too_many_arguments)]
    fn queue_packet(
        queue: &mut SendQueue,
        ctx: Option<&mut SrtpContext>,
        fd: std::os::fd::RawFd,
        room: usize,
        target: &SocketAddr,
        build: impl FnOnce(&mut [u8; MAX_DATAGRAM]) -> usize,
    ) -> Result<bool, String> {
        let Some(slot) = queue.slot() else { return Ok(false) };
        let mut len = build(slot);
        if let Some(c) = ctx {
            len = c.protect_rtp(slot, len).map_err(|e| e.to_string())?;
        }
        queue.commit(len, fd, room as u32, target, None);
        Ok(true)
    }

    let start = Instant::now();
    // Bounded: each pass either sends something due or sleeps until the next due time, and a
    // pass is at least a clock read; the cap is far above any schedule (1 pass per µs).
    let max_passes = duration_ns / 1_000 + 10_000;
    for _ in 0..max_passes {
        let now = start.elapsed().as_nanos() as u64;
        if now >= duration_ns {
            break;
        }
        let mut earliest = u64::MAX;
        for r in 0..rooms {
            let room = &options.rooms[r];
            let fd = sockets[r].as_raw_fd();
            while frame_ns > 0 && video_due(r, next_frame[r]) <= now {
                let frame = next_frame[r];
                let late_us = (now - video_due(r, frame)) / 1_000;
                result.max_late_us = result.max_late_us.max(late_us);
                if late_us > PACED_LATE_US {
                    result.late += 1;
                }
                let ts = (frame * 90_000 / options.video_fps as u64) as u32;
                for i in 0..per_frame {
                    let last = i + 1 == per_frame;
                    // The last packet carries the rest of the frame: 50–100 % of a full one.
                    let payload = if last && per_frame > 1 {
                        let half = options.video_payload / 2;
                        half + (frame.wrapping_mul(7919) % (half as u64 + 1)) as usize
                    } else {
                        options.video_payload
                    };
                    let seq = seq_video[r];
                    let build = |slot: &mut [u8; MAX_DATAGRAM]| {
                        let len = make_rtp(room.video_ssrc, seq, ts, options.video_payload_type, payload, slot);
                        if last {
                            slot[1] |= 0x80; // marker: end of frame
                        }
                        len
                    };
                    if queue.is_full() {
                        flush(&mut queue, &mut result);
                    }
                    if queue_packet(&mut queue, contexts[r].as_mut(), fd, r, &room.target, build)? {
                        seq_video[r] = seq.wrapping_add(1);
                        result.video_packets += 1;
                    }
                }
                next_frame[r] += 1;
            }
            while audio_ns > 0 && audio_due(r, next_audio[r]) <= now {
                let n = next_audio[r];
                let late_us = (now - audio_due(r, n)) / 1_000;
                result.max_late_us = result.max_late_us.max(late_us);
                if late_us > PACED_LATE_US {
                    result.late += 1;
                }
                let ts = (n * 48_000 / options.audio_packets_per_second as u64) as u32;
                let seq = seq_audio[r];
                let build = |slot: &mut [u8; MAX_DATAGRAM]| make_rtp(room.audio_ssrc, seq, ts, options.audio_payload_type, options.audio_payload, slot);
                if queue.is_full() {
                    flush(&mut queue, &mut result);
                }
                if queue_packet(&mut queue, contexts[r].as_mut(), fd, r, &room.target, build)? {
                    seq_audio[r] = seq.wrapping_add(1);
                    result.audio_packets += 1;
                }
                next_audio[r] += 1;
            }
            if frame_ns > 0 {
                earliest = earliest.min(video_due(r, next_frame[r]));
            }
            if audio_ns > 0 {
                earliest = earliest.min(audio_due(r, next_audio[r]));
            }
        }
        flush(&mut queue, &mut result);
        let now = start.elapsed().as_nanos() as u64;
        let wake = earliest.min(duration_ns);
        if wake > now {
            std::thread::sleep(Duration::from_nanos(wake - now));
        }
    }
    flush(&mut queue, &mut result);
    result.nanos = start.elapsed().as_nanos() as u64;
    Ok(result)
}

/// Receiving end of a density benchmark: `count` loopback sockets read by `threads` native
/// threads, counting RTP datagrams per socket (RTCP and anything else apart), without
/// decrypting. With a poll interval the threads sleep between passes and never wait in
/// epoll, so an arriving packet wakes no one: the sending media thread pays delivery up to
/// the socket queue, as toward a remote host, and the sinks take little of the shared cores.
/// Each socket asks for 4 MiB of receive buffer (the kernel caps it at net.core.rmem_max),
/// thousands of datagrams, far more than arrive at a subscriber's rate between two passes.
pub struct CountingSink {
    ports: Vec<u16>,
    rtp: std::sync::Arc<Vec<std::sync::atomic::AtomicU64>>,
    other: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// CPU time of each sink thread so far.
    cpu: std::sync::Arc<Vec<std::sync::atomic::AtomicU64>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl CountingSink {
    /// Most sockets one sink opens (every one is a file descriptor).
    pub const MAX_PORTS: usize = 16_384;
    pub const MAX_THREADS: usize = 16;

    /// `poll_interval` zero: block in epoll and read as packets arrive (a wake-up per burst).
    pub fn start(count: usize, threads: usize, poll_interval: Duration) -> Result<Self, String> {
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        use std::sync::Arc;
        let count = count.clamp(1, Self::MAX_PORTS);
        let threads = threads.clamp(1, Self::MAX_THREADS).min(count);
        let mut ports = Vec::with_capacity(count);
        let mut shares: Vec<Vec<(usize, UdpSocket)>> = (0..threads).map(|_| Vec::new()).collect();
        for i in 0..count {
            let s = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
            s.set_nonblocking(true).map_err(|e| e.to_string())?;
            sys::set_socket_buffers(s.as_raw_fd(), 4 << 20);
            ports.push(s.local_addr().map_err(|e| e.to_string())?.port());
            shares[i % threads].push((i, s));
        }
        let rtp: Arc<Vec<AtomicU64>> = Arc::new((0..count).map(|_| AtomicU64::new(0)).collect());
        let other = Arc::new(AtomicU64::new(0));
        let cpu: Arc<Vec<AtomicU64>> = Arc::new((0..threads).map(|_| AtomicU64::new(0)).collect());
        let stop = Arc::new(AtomicBool::new(false));
        let mut handles = Vec::with_capacity(threads);
        for (t, share) in shares.into_iter().enumerate() {
            const EVENTS: usize = 1024;
            const SLOTS: usize = 64;
            let epoll = sys::Epoll::new(EVENTS).map_err(|e| e.to_string())?;
            for (k, (_, s)) in share.iter().enumerate() {
                epoll.add(s.as_raw_fd(), k as u64).map_err(|e| e.to_string())?;
            }
            let (t_rtp, t_other, t_cpu, t_stop) = (rtp.clone(), other.clone(), cpu.clone(), stop.clone());
            let spawned = std::thread::Builder::new().name(format!("ferry-bench-sink{t}")).spawn(move || {
                let mut epoll = epoll;
                let mut batch = sys::RecvBatch::new(SLOTS);
                let mut ready = Vec::with_capacity(EVENTS);
                while !t_stop.load(Ordering::Relaxed) {
                    let timeout = if poll_interval.is_zero() { 50 } else { 0 };
                    // Bounded: a pass that fills the event list is followed by at most 63 more.
                    for _ in 0..64 {
                        if epoll.wait(timeout, &mut ready).is_err() {
                            return;
                        }
                        for &k in &ready {
                            let Some((index, s)) = share.get(k as usize) else { continue };
                            let (mut n_rtp, mut n_other) = (0u64, 0u64);
                            // Bounded drain; a short batch means the queue is empty for now.
                            for _ in 0..64 {
                                let n = batch.recv(s.as_raw_fd()).unwrap_or_default();
                                for i in 0..n {
                                    let (buf, len, _) = batch.get_mut(i);
                                    // RTP version 2, and not an RTCP packet type (RFC 5761 §4).
                                    if len >= 12 && buf[0] >> 6 == 2 && !(64..=95).contains(&(buf[1] & 0x7f)) {
                                        n_rtp += 1;
                                    } else {
                                        n_other += 1;
                                    }
                                }
                                if n < SLOTS {
                                    break;
                                }
                            }
                            if n_rtp > 0 {
                                t_rtp[*index].fetch_add(n_rtp, Ordering::Relaxed);
                            }
                            if n_other > 0 {
                                t_other.fetch_add(n_other, Ordering::Relaxed);
                            }
                        }
                        if ready.len() < EVENTS {
                            break;
                        }
                    }
                    t_cpu[t].store(sys::thread_cpu_ns(), Ordering::Relaxed);
                    if !poll_interval.is_zero() {
                        std::thread::sleep(poll_interval);
                    }
                }
            });
            match spawned {
                Ok(h) => handles.push(h),
                Err(e) => {
                    stop.store(true, Ordering::Relaxed);
                    for h in handles {
                        let _ = h.join();
                    }
                    return Err(e.to_string());
                }
            }
        }
        Ok(Self { ports, rtp, other, cpu, stop, threads: handles })
    }

    pub fn ports(&self) -> &[u16] {
        &self.ports
    }

    /// RTP datagrams received so far on each port, in `ports()` order (as of the threads' last
    /// pass: up to one poll interval behind).
    pub fn counts(&self) -> Vec<u64> {
        self.rtp.iter().map(|c| c.load(std::sync::atomic::Ordering::Relaxed)).collect()
    }

    /// Datagrams received so far that were not RTP (RTCP, anything else), all ports together.
    pub fn other(&self) -> u64 {
        self.other.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// CPU time the sink threads have used so far, all together (as of their last pass).
    pub fn cpu_ns(&self) -> u64 {
        self.cpu.iter().map(|c| c.load(std::sync::atomic::Ordering::Relaxed)).sum()
    }

    /// Stops the threads (closing the sockets) and returns the RTP datagrams received in all.
    pub fn stop(&mut self) -> u64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for h in self.threads.drain(..) {
            let _ = h.join();
        }
        self.counts().iter().sum()
    }
}

impl Drop for CountingSink {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rooms_to(sink: &CountingSink, profile: SrtpProfile) -> Vec<PacedRoom> {
        sink.ports()
            .iter()
            .enumerate()
            .map(|(r, &port)| PacedRoom {
                target: SocketAddr::from(([127, 0, 0, 1], port)),
                key: vec![r as u8; profile.master_key_len()],
                salt: vec![0x5a; profile.master_salt_len()],
                video_ssrc: 0x100 + 2 * r as u32,
                audio_ssrc: 0x101 + 2 * r as u32,
            })
            .collect()
    }

    /// Three rooms for 300 ms: each sends ~9 frames of 4 packets and 15 audio packets, every one
    /// counted at its own port, by both polling and blocking sinks.
    #[test]
    fn paced_sender_paces_and_sinks_count_per_port() {
        for poll in [Duration::from_millis(2), Duration::ZERO] {
            let mut sink = CountingSink::start(3, 2, poll).unwrap();
            let profile = SrtpProfile::AeadAes128Gcm;
            let options = PacedOptions::new(rooms_to(&sink, profile), Some(profile), Duration::from_millis(300));
            let r = paced_send(&options).unwrap();
            assert_eq!(r.failed, 0);
            assert_eq!(r.sent, r.video_packets + r.audio_packets);
            assert_eq!(r.room_sent.iter().sum::<u64>(), r.sent);
            // 30 frames/s and 50 packets/s, phases within one interval: ±1 frame, ±1 packet.
            for &n in &r.room_sent {
                assert!((8 * 4 + 14..=10 * 4 + 16).contains(&n), "room sent {n}: {r:?}");
            }
            assert!(r.nanos >= 300_000_000);
            let deadline = Instant::now() + Duration::from_secs(2);
            while sink.counts().iter().sum::<u64>() < r.sent && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            assert_eq!(sink.counts(), r.room_sent);
            assert_eq!(sink.other(), 0);
            assert_eq!(sink.stop(), r.sent);
        }
    }
}
