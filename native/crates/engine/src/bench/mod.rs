//! Measurement helpers used by `npm run bench` (through the addon): SRTP
//! throughput of one core, the NACK generator's and bandwidth estimator's cost,
//! and (in `forward` and `density`) native senders and sinks fast enough that
//! the forwarding and density benchmarks measure ferry, not the load generator.

use std::time::Instant;

use ferry_srtp::{SrtpContext, SrtpProfile};

use crate::sys::MAX_DATAGRAM;

mod density;
mod forward;

pub use density::{paced_send, CountingSink, PacedOptions, PacedResult, PacedRoom};
pub use forward::{blast, BlastOptions, BlastResult, Sink};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SrtpOp {
    Protect,
    /// Protect 16 packets, then write their tags together, as a media thread's fan-out does
    /// (`RouterIo::batches_tags`); the same as `Protect` for the GCM profiles.
    ProtectBatch16,
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
        SrtpOp::ProtectBatch16 => {
            const BATCH: usize = ferry_srtp::hmac_batch::LANES;
            let mut bufs = vec![[0u8; MAX_DATAGRAM]; BATCH];
            let mut pending = Vec::with_capacity(BATCH);
            let start = Instant::now();
            let mut i = 0u64;
            while i < iterations {
                pending.clear();
                let n = ((iterations - i) as usize).min(BATCH);
                for (k, buf) in bufs.iter_mut().enumerate().take(n) {
                    let seq = i + k as u64;
                    let len = make_rtp(0x1234, seq as u16, seq as u32 * 3000, 96, payload, buf);
                    if let (_, Some(mac)) = tx.protect_rtp_deferred(buf, len).map_err(|e| e.to_string())? {
                        pending.push((k, mac));
                    }
                }
                ferry_srtp::hmac_batch::write_deferred_tags(&mut bufs[..], &pending);
                i += n as u64;
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

/// Times the NACK generator on `packets` sequence numbers of a stream that loses 1 % (every
/// 100th), polled every 10 packets as the engine polls per receive batch: the per-packet cost
/// of asking publishers again for what did not arrive.
pub fn nack_generator_throughput(packets: u64) -> Throughput {
    let mut g = ferry_rtp::NackGenerator::new();
    let mut out = Vec::with_capacity(64);
    let start = Instant::now();
    for i in 0..packets {
        let seq = i as u16;
        if i % 100 != 37 {
            g.on_packet(seq, i * 1000);
        }
        if i % 10 == 9 {
            out.clear();
            g.poll(i * 1000, &mut out);
        }
    }
    std::hint::black_box(&out);
    Throughput { packets, nanos: start.elapsed().as_nanos() as u64 }
}

/// Times the send-side bandwidth estimator on `feedbacks` transport-cc feedback packets, each
/// describing 100 ms of a 1000 packets/s stream (100 packets, 1 % lost): the cost per feedback a
/// subscriber sends about ten times a second.
pub fn bwe_throughput(feedbacks: u64) -> Throughput {
    let mut bwe = ferry_rtp::SendSideBwe::new(1_000_000, 50_000, 10_000_000);
    let mut rec = ferry_rtp::TwccRecorder::new();
    let mut packets = Vec::new();
    let mut seq = 0u16;
    let mut t = 0u64;
    let mut nanos = 0u64;
    for _ in 0..feedbacks {
        for i in 0..100u64 {
            bwe.on_packet_sent(seq, 1200, t);
            if i != 37 {
                rec.record(seq, t + 20_000);
            }
            seq = seq.wrapping_add(1);
            t += 1000;
        }
        packets.clear();
        rec.build_feedback(1, 2, &mut packets);
        let start = Instant::now();
        for p in &packets {
            bwe.on_feedback(p, t + 20_000);
        }
        nanos += start.elapsed().as_nanos() as u64;
    }
    std::hint::black_box(bwe.estimate_bps());
    Throughput { packets: feedbacks, nanos }
}

/// What the recording writer wrote: packets, bytes on disk, and the time from the first push
/// until the file was closed.
pub struct WriteThroughput {
    pub packets: u64,
    pub bytes: u64,
    pub nanos: u64,
}

/// Times the recording writer (`recorder`) on `packets` RTP packets of `payload` bytes pushed
/// as fast as its queue takes them into one `.mjr` file at `path`, up to the file's close.
pub fn recorder_write_throughput(path: &str, packets: u64, payload: usize) -> Result<WriteThroughput, String> {
    use crate::mjr::{MjrInfo, MjrKind};
    let mut recorder = crate::recorder::Recorder::new(std::sync::Arc::new(|_| {})).map_err(|e| e.to_string())?;
    let info = MjrInfo { kind: MjrKind::Video, codec: "vp8".into(), fmtp: None, extensions: Vec::new(), created_us: 0 };
    recorder.open(1, path, info)?;
    let queue = recorder.queue();
    let mut buf = [0u8; MAX_DATAGRAM];
    let start = Instant::now();
    for i in 0..packets {
        let len = make_rtp(0x1234, i as u16, (i * 3000) as u32, 96, payload, &mut buf);
        // The bench measures the writer, so a full queue waits here instead of dropping.
        while !queue.push(1, &buf[..len], i * 1000) {
            std::thread::yield_now();
        }
    }
    let summary = recorder.close(1)?.ok_or("recording vanished")?;
    let nanos = start.elapsed().as_nanos() as u64;
    recorder.shutdown();
    if let Some(e) = summary.error {
        return Err(e);
    }
    Ok(WriteThroughput { packets: summary.packets, bytes: summary.bytes, nanos })
}
