//! Measurement helpers used by `npm run bench` (through the addon): SRTP
//! throughput of one core, and a native SRTP sender fast enough that the
//! forwarding benchmark measures ferry, not the load generator.

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use ferry_srtp::{SrtpContext, SrtpProfile};

use crate::sys::{self, FlushReport, SendQueue, MAX_DATAGRAM};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SrtpOp {
    Protect,
    Unprotect,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Throughput {
    pub packets: u64,
    pub nanos: u64,
}

/// Builds a plain RTP packet: 12-byte header + `payload` bytes of a counting pattern.
pub fn make_rtp(ssrc: u32, seq: u16, ts: u32, pt: u8, payload: usize, out: &mut [u8]) -> usize {
    let len = (12 + payload).min(out.len());
    out[0] = 0x80;
    out[1] = pt & 0x7f;
    out[2..4].copy_from_slice(&seq.to_be_bytes());
    out[4..8].copy_from_slice(&ts.to_be_bytes());
    out[8..12].copy_from_slice(&ssrc.to_be_bytes());
    for (i, b) in out[12..len].iter_mut().enumerate() {
        *b = (i as u8).wrapping_add(seq as u8);
    }
    len
}

/// Like `make_rtp`, with one RFC 8285 one-byte header extension element carrying a
/// transport-wide sequence number (draft-holmer-rmcat-transport-wide-cc-extensions-01 §2).
#[allow(clippy::too_many_arguments)]
pub fn make_rtp_with_twcc(ssrc: u32, seq: u16, ts: u32, pt: u8, payload: usize, id: u8, twcc_seq: u16, out: &mut [u8]) -> usize {
    const EXT_LEN: usize = 8; // 0xBEDE + length, then id/len byte, 2 data bytes, 1 pad
    let len = (12 + EXT_LEN + payload).min(out.len());
    if len < 12 + EXT_LEN {
        return make_rtp(ssrc, seq, ts, pt, payload, out);
    }
    make_rtp(ssrc, seq, ts, pt, 0, out);
    out[0] |= 0x10; // X
    out[12..14].copy_from_slice(&0xBEDEu16.to_be_bytes());
    out[14..16].copy_from_slice(&1u16.to_be_bytes());
    out[16] = (id << 4) | 1; // L = 1: two data bytes
    out[17..19].copy_from_slice(&twcc_seq.to_be_bytes());
    out[19] = 0;
    for (i, b) in out[12 + EXT_LEN..len].iter_mut().enumerate() {
        *b = (i as u8).wrapping_add(seq as u8);
    }
    len
}

/// Protects (or protects then unprotects, timing only the second) `iterations` packets of
/// `payload` bytes on the calling thread.
pub fn srtp_throughput(profile: SrtpProfile, op: SrtpOp, payload: usize, iterations: u64) -> Result<Throughput, String> {
    let key = vec![0x11u8; profile.master_key_len()];
    let salt = vec![0x22u8; profile.master_salt_len()];
    let mut tx = SrtpContext::new(profile, &key, &salt).map_err(|e| e.to_string())?;
    let mut rx = SrtpContext::new(profile, &key, &salt).map_err(|e| e.to_string())?;
    let mut buf = [0u8; MAX_DATAGRAM];
    match op {
        SrtpOp::Protect => {
            let start = Instant::now();
            for i in 0..iterations {
                let len = make_rtp(0x1234, i as u16, i as u32 * 3000, 96, payload, &mut buf);
                tx.protect_rtp(&mut buf, len).map_err(|e| e.to_string())?;
            }
            Ok(Throughput { packets: iterations, nanos: start.elapsed().as_nanos() as u64 })
        }
        SrtpOp::Unprotect => {
            // Pre-protect in chunks so only unprotect is timed, without holding every packet.
            const CHUNK: usize = 4096;
            let mut store = vec![[0u8; MAX_DATAGRAM]; CHUNK];
            let mut lens = vec![0usize; CHUNK];
            let mut nanos = 0u64;
            let mut done = 0u64;
            while done < iterations {
                let n = ((iterations - done) as usize).min(CHUNK);
                for k in 0..n {
                    let i = done + k as u64;
                    let len = make_rtp(0x1234, i as u16, i as u32 * 3000, 96, payload, &mut store[k]);
                    lens[k] = tx.protect_rtp(&mut store[k], len).map_err(|e| e.to_string())?;
                }
                let start = Instant::now();
                for k in 0..n {
                    rx.unprotect_rtp(&mut store[k], lens[k]).map_err(|e| e.to_string())?;
                }
                nanos += start.elapsed().as_nanos() as u64;
                done += n as u64;
            }
            Ok(Throughput { packets: iterations, nanos })
        }
    }
}

#[derive(Debug, Clone)]
pub struct BlastOptions {
    pub target: SocketAddr,
    pub profile: Option<SrtpProfile>,
    pub key: Vec<u8>,
    pub salt: Vec<u8>,
    pub ssrc: u32,
    pub payload_type: u8,
    pub payload: usize,
    pub duration: Duration,
    /// 0 = as fast as possible.
    pub packets_per_second: u64,
    /// Hard cap on packets sent (bounded loop).
    pub max_packets: u64,
    pub first_seq: u16,
    /// When set, every packet carries a transport-wide sequence number in this one-byte
    /// extension (RFC 8285 §4.2), as browsers send it, so the receiver's feedback path is measured.
    pub twcc_extension_id: Option<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BlastResult {
    pub sent: u64,
    pub failed: u64,
    pub nanos: u64,
}

/// Sends (S)RTP to `target` from an ephemeral loopback-or-any socket on the calling thread
/// (run it on its own thread), in sendmmsg batches of 32.
pub fn blast(options: &BlastOptions) -> Result<BlastResult, String> {
    let bind: SocketAddr = if options.target.is_ipv4() { "127.0.0.1:0" } else { "[::1]:0" }
        .parse()
        .map_err(|e: std::net::AddrParseError| e.to_string())?;
    let socket = UdpSocket::bind(bind).map_err(|e| e.to_string())?;
    sys::set_socket_buffers(socket.as_raw_fd(), 4 << 20);
    let mut ctx = match options.profile {
        Some(p) => Some(SrtpContext::new(p, &options.key, &options.salt).map_err(|e| e.to_string())?),
        None => None,
    };
    let mut queue = SendQueue::new(32);
    let mut report = FlushReport { sent: Vec::new(), failed: Vec::new() };
    let start = Instant::now();
    let mut seq = options.first_seq;
    let mut sent = 0u64;
    let mut failed = 0u64;
    let mut total = 0u64;
    while total < options.max_packets && start.elapsed() < options.duration {
        if options.packets_per_second > 0 {
            let due = start.elapsed().as_nanos() as u64 * options.packets_per_second / 1_000_000_000;
            if total >= due {
                std::thread::sleep(Duration::from_micros(200));
                continue;
            }
        }
        while !queue.is_full() && total < options.max_packets {
            let Some(slot) = queue.slot() else { break };
            let ts = (seq as u32).wrapping_mul(3000);
            let mut len = match options.twcc_extension_id {
                Some(id) => make_rtp_with_twcc(options.ssrc, seq, ts, options.payload_type, options.payload, id, seq, slot),
                None => make_rtp(options.ssrc, seq, ts, options.payload_type, options.payload, slot),
            };
            if let Some(c) = ctx.as_mut() {
                len = c.protect_rtp(slot, len).map_err(|e| e.to_string())?;
            }
            queue.commit(len, socket.as_raw_fd(), 0, &options.target);
            seq = seq.wrapping_add(1);
            total += 1;
        }
        queue.flush(&mut report);
        sent += report.sent.iter().map(|s| s.1 as u64).sum::<u64>();
        failed += report.failed.iter().map(|s| s.1 as u64).sum::<u64>();
    }
    Ok(BlastResult { sent, failed, nanos: start.elapsed().as_nanos() as u64 })
}

/// Receiving end of a forwarding benchmark: sockets drained by one native thread with
/// recvmmsg, counting what arrives, so the measurement sees real delivery.
pub struct Sink {
    ports: Vec<u16>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<u64>>,
}

impl Sink {
    /// `drain`: read what arrives (and count it). Without it the sockets are bound but never
    /// read, like a remote host's: the sender pays delivery up to the socket queue, not the
    /// cross-core wake-up of a reader sleeping on the same machine.
    pub fn start(count: usize, drain: bool) -> Result<Self, String> {
        let mut sockets = Vec::with_capacity(count);
        let mut ports = Vec::with_capacity(count);
        for _ in 0..count.clamp(1, 256) {
            let s = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
            s.set_nonblocking(true).map_err(|e| e.to_string())?;
            sys::set_socket_buffers(s.as_raw_fd(), 4 << 20);
            ports.push(s.local_addr().map_err(|e| e.to_string())?.port());
            sockets.push(s);
        }
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop2 = stop.clone();
        if !drain {
            let thread = std::thread::Builder::new()
                .name("ferry-bench-sink".into())
                .spawn(move || {
                    // Hold the sockets open until stopped; read nothing.
                    while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
                        std::thread::sleep(std::time::Duration::from_millis(20));
                    }
                    drop(sockets);
                    0
                })
                .map_err(|e| e.to_string())?;
            return Ok(Self { ports, stop, thread: Some(thread) });
        }
        let thread = std::thread::Builder::new()
            .name("ferry-bench-sink".into())
            .spawn(move || {
                let mut epoll = match sys::Epoll::new(64) {
                    Ok(e) => e,
                    Err(_) => return 0,
                };
                for (i, s) in sockets.iter().enumerate() {
                    let _ = epoll.add(s.as_raw_fd(), i as u64);
                }
                let mut batch = sys::RecvBatch::new(64);
                let mut ready = Vec::new();
                let mut total = 0u64;
                while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
                    if epoll.wait(50, &mut ready).is_err() {
                        break;
                    }
                    for &t in &ready {
                        if let Some(s) = sockets.get(t as usize) {
                            // Bounded drain per wake-up.
                            for _ in 0..16 {
                                match batch.recv(s.as_raw_fd()) {
                                    Ok(0) | Err(_) => break,
                                    Ok(n) => total += n as u64,
                                }
                            }
                        }
                    }
                }
                total
            })
            .map_err(|e| e.to_string())?;
        Ok(Self { ports, stop, thread: Some(thread) })
    }

    pub fn ports(&self) -> &[u16] {
        &self.ports
    }

    /// Stops the thread and returns how many datagrams arrived in all.
    pub fn stop(&mut self) -> u64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.take().and_then(|t| t.join().ok()).unwrap_or(0)
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop();
    }
}
