//! The forwarding benchmark's load: `blast` sends (S)RTP from one native thread
//! as fast as asked, and `Sink` counts what arrives.

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use ferry_srtp::{SrtpContext, SrtpProfile};

use super::{make_rtp, make_rtp_with_twcc};
use crate::sys::{self, FlushReport, SendQueue};

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
            queue.commit(len, socket.as_raw_fd(), 0, &options.target, None);
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
