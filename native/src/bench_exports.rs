//! Benchmark helpers exported to `bench/` (never used by the gateway): SRTP, NACK-generator
//! and estimator timing, the native SRTP blaster, paced senders and sinks.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use ferry_engine::bench::{self, BlastOptions, PacedOptions, PacedRoom, SrtpOp};
use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::{err, guard, parse_addr, parse_profile};


#[napi(object)]
pub struct ThroughputResult {
    pub packets: f64,
    pub nanos: f64,
}

/// Times `iterations` SRTP protect (or unprotect) operations of `payload`-byte RTP packets on one core.
#[napi]
pub fn bench_srtp(profile: String, op: String, payload: u32, iterations: u32) -> Result<ThroughputResult> {
    guard("benchSrtp", || {
        let op = match op.as_str() {
            "protect" => SrtpOp::Protect,
            "protect_batch16" => SrtpOp::ProtectBatch16,
            "unprotect" => SrtpOp::Unprotect,
            other => return Err(err(format!("op must be protect, protect_batch16 or unprotect, not {other:?}"))),
        };
        let r = bench::srtp_throughput(parse_profile(&profile)?, op, payload as usize, iterations as u64).map_err(err)?;
        Ok(ThroughputResult { packets: r.packets as f64, nanos: r.nanos as f64 })
    })
}

/// Times the NACK generator on `packets` sequence numbers with 1 % loss (see bench.rs).
#[napi]
pub fn bench_nack_generator(packets: u32) -> Result<ThroughputResult> {
    guard("benchNackGenerator", || {
        let r = bench::nack_generator_throughput(u64::from(packets));
        Ok(ThroughputResult { packets: r.packets as f64, nanos: r.nanos as f64 })
    })
}

/// Times the send-side bandwidth estimator per transport-cc feedback (see bench.rs).
#[napi]
pub fn bench_bwe_estimator(feedbacks: u32) -> Result<ThroughputResult> {
    guard("benchBweEstimator", || {
        let r = bench::bwe_throughput(u64::from(feedbacks));
        Ok(ThroughputResult { packets: r.packets as f64, nanos: r.nanos as f64 })
    })
}

#[napi(object)]
pub struct WriteResult {
    pub packets: f64,
    pub bytes: f64,
    pub nanos: f64,
}

/// Times the recording writer on `packets` RTP packets of `payload` bytes into one `.mjr` file
/// at `path`, from the first packet until the file is closed (see bench.rs).
#[napi]
pub fn bench_recorder_write(path: String, packets: u32, payload: u32) -> Result<WriteResult> {
    guard("benchRecorderWrite", || {
        let r = bench::recorder_write_throughput(&path, u64::from(packets), payload as usize).map_err(err)?;
        Ok(WriteResult { packets: r.packets as f64, bytes: r.bytes as f64, nanos: r.nanos as f64 })
    })
}

#[napi(object)]
pub struct BlastParams {
    pub address: String,
    pub port: u32,
    pub profile: Option<String>,
    pub key: Option<Buffer>,
    pub salt: Option<Buffer>,
    pub ssrc: u32,
    pub payload_type: Option<u32>,
    pub payload: u32,
    pub duration_ms: u32,
    pub packets_per_second: Option<u32>,
    pub max_packets: Option<u32>,
    pub first_seq: Option<u32>,
    /// One-byte extension id for a transport-wide sequence number in every packet.
    pub twcc_extension_id: Option<u32>,
}

#[napi(object)]
pub struct BlastReport {
    pub sent: f64,
    pub failed: f64,
    pub nanos: f64,
}

/// A load generator run on the libuv pool, off JavaScript's thread: `run` does the work on
/// `options`, a panic in it becomes the JS error "`name`: internal error", and `report` turns
/// its result into what JavaScript receives.
pub struct PoolTask<O, R, J> {
    name: &'static str,
    options: O,
    run: fn(&O) -> std::result::Result<R, String>,
    report: fn(R) -> J,
}

impl<O: Send, R: Send + 'static, J: ToNapiValue + TypeName> Task for PoolTask<O, R, J> {
    type Output = R;
    type JsValue = J;

    fn compute(&mut self) -> Result<R> {
        match catch_unwind(AssertUnwindSafe(|| (self.run)(&self.options))) {
            Ok(r) => r.map_err(err),
            Err(_) => Err(err(format!("{}: internal error", self.name))),
        }
    }

    fn resolve(&mut self, _env: Env, r: R) -> Result<J> {
        Ok((self.report)(r))
    }
}

/// Sends (S)RTP from a native thread (libuv pool) as fast as asked: the load generator for
/// forwarding benchmarks, so the sender is never the JavaScript bottleneck.
#[napi(ts_return_type = "Promise<BlastReport>")]
pub fn blast(params: BlastParams) -> Result<AsyncTask<PoolTask<BlastOptions, bench::BlastResult, BlastReport>>> {
    guard("blast", || {
        let profile = params.profile.as_deref().map(parse_profile).transpose()?;
        let options = BlastOptions {
            target: parse_addr(&params.address, params.port)?,
            profile,
            key: params.key.map(|b| b.to_vec()).unwrap_or_default(),
            salt: params.salt.map(|b| b.to_vec()).unwrap_or_default(),
            ssrc: params.ssrc,
            payload_type: params.payload_type.unwrap_or(96).min(127) as u8,
            payload: (params.payload as usize).min(1400),
            duration: Duration::from_millis(params.duration_ms.min(600_000) as u64),
            packets_per_second: params.packets_per_second.unwrap_or(0) as u64,
            max_packets: params.max_packets.map(|v| v as u64).unwrap_or(u64::MAX),
            first_seq: params.first_seq.unwrap_or(1) as u16,
            twcc_extension_id: match params.twcc_extension_id {
                Some(id) if (1..=14).contains(&id) => Some(id as u8),
                Some(id) => return Err(err(format!("one-byte extension id must be 1..=14, not {id}"))),
                None => None,
            },
        };
        let report = |r: bench::BlastResult| BlastReport { sent: r.sent as f64, failed: r.failed as f64, nanos: r.nanos as f64 };
        Ok(AsyncTask::new(PoolTask { name: "blast", options, run: bench::blast, report }))
    })
}


/// Native receiving sockets for forwarding benchmarks (see ferry_engine::bench::Sink).
#[napi]
pub struct BenchSink {
    inner: Option<bench::Sink>,
}

#[napi]
impl BenchSink {
    #[napi(constructor)]
    pub fn new(count: u32, drain: Option<bool>) -> Result<Self> {
        guard("new BenchSink", || Ok(Self { inner: Some(bench::Sink::start(count as usize, drain.unwrap_or(true)).map_err(err)?) }))
    }

    #[napi]
    pub fn ports(&self) -> Vec<u32> {
        self.inner.as_ref().map(|s| s.ports().iter().map(|&p| p as u32).collect()).unwrap_or_default()
    }

    /// Stops receiving and returns the number of datagrams that arrived.
    #[napi]
    pub fn stop(&mut self) -> Result<f64> {
        guard("BenchSink.stop", || Ok(self.inner.take().map(|mut s| s.stop()).unwrap_or(0) as f64))
    }
}

#[napi(object)]
pub struct PacedRoomParams {
    /// Where this room's publisher sends (an engine ingress endpoint).
    pub address: String,
    pub port: u32,
    pub key: Option<Buffer>,
    pub salt: Option<Buffer>,
    pub video_ssrc: u32,
    pub audio_ssrc: u32,
}

#[napi(object)]
pub struct PacedSendParams {
    pub rooms: Vec<PacedRoomParams>,
    /// SRTP profile of every room (keys per room); absent sends plain RTP.
    pub profile: Option<String>,
    pub duration_ms: u32,
    /// Defaults: 30 frames/s of 4 packets of 1100 bytes (PT 96), 50 audio packets/s of 100 bytes (PT 111).
    pub video_fps: Option<u32>,
    pub video_packets_per_frame: Option<u32>,
    pub video_payload: Option<u32>,
    pub video_payload_type: Option<u32>,
    pub audio_packets_per_second: Option<u32>,
    pub audio_payload: Option<u32>,
    pub audio_payload_type: Option<u32>,
}

#[napi(object)]
pub struct PacedSendReport {
    pub sent: f64,
    pub failed: f64,
    pub video_packets: f64,
    pub audio_packets: f64,
    /// Datagrams sent per room, in `rooms` order.
    pub room_sent: Vec<f64>,
    pub nanos: f64,
    /// Frames and audio packets sent more than 5 ms after they were due (sender starved).
    pub late: f64,
    pub max_late_us: f64,
}

/// Paced video + audio publishers, one per room, all on one native thread (libuv pool): the
/// load generator of density benchmarks (see ferry_engine::bench::paced_send).
#[napi(ts_return_type = "Promise<PacedSendReport>")]
pub fn paced_send(params: PacedSendParams) -> Result<AsyncTask<PoolTask<PacedOptions, bench::PacedResult, PacedSendReport>>> {
    guard("pacedSend", || {
        if params.rooms.is_empty() || params.rooms.len() > 4096 {
            return Err(err(format!("pacedSend takes 1..=4096 rooms, not {}", params.rooms.len())));
        }
        let profile = params.profile.as_deref().map(parse_profile).transpose()?;
        let mut rooms = Vec::with_capacity(params.rooms.len());
        for r in params.rooms {
            rooms.push(PacedRoom {
                target: parse_addr(&r.address, r.port)?,
                key: r.key.map(|b| b.to_vec()).unwrap_or_default(),
                salt: r.salt.map(|b| b.to_vec()).unwrap_or_default(),
                video_ssrc: r.video_ssrc,
                audio_ssrc: r.audio_ssrc,
            });
        }
        let mut options = PacedOptions::new(rooms, profile, Duration::from_millis(params.duration_ms.min(600_000) as u64));
        let pt = |v: Option<u32>, d: u8| v.map(|v| v.min(127) as u8).unwrap_or(d);
        options.video_fps = params.video_fps.unwrap_or(options.video_fps).min(240);
        options.video_packets_per_frame = params.video_packets_per_frame.unwrap_or(options.video_packets_per_frame).clamp(1, 64);
        options.video_payload = params.video_payload.map(|v| v as usize).unwrap_or(options.video_payload).min(1400);
        options.video_payload_type = pt(params.video_payload_type, options.video_payload_type);
        options.audio_packets_per_second = params.audio_packets_per_second.unwrap_or(options.audio_packets_per_second).min(1000);
        options.audio_payload = params.audio_payload.map(|v| v as usize).unwrap_or(options.audio_payload).min(1400);
        options.audio_payload_type = pt(params.audio_payload_type, options.audio_payload_type);
        let report = |r: bench::PacedResult| PacedSendReport {
            sent: r.sent as f64,
            failed: r.failed as f64,
            video_packets: r.video_packets as f64,
            audio_packets: r.audio_packets as f64,
            room_sent: r.room_sent.iter().map(|&n| n as f64).collect(),
            nanos: r.nanos as f64,
            late: r.late as f64,
            max_late_us: r.max_late_us as f64,
        };
        Ok(AsyncTask::new(PoolTask { name: "pacedSend", options, run: bench::paced_send, report }))
    })
}

/// Native receiving sockets that count RTP per port (see ferry_engine::bench::CountingSink).
#[napi]
pub struct CountingSink {
    inner: Option<bench::CountingSink>,
}

#[napi]
impl CountingSink {
    /// `count` sockets read by `threads` threads (default 1); `pollIntervalUs` between passes
    /// (default 5000; 0 blocks in epoll and wakes per burst).
    #[napi(constructor)]
    pub fn new(count: u32, threads: Option<u32>, poll_interval_us: Option<u32>) -> Result<Self> {
        guard("new CountingSink", || {
            let poll = Duration::from_micros(poll_interval_us.unwrap_or(5_000).min(1_000_000) as u64);
            let sink = bench::CountingSink::start(count as usize, threads.unwrap_or(1) as usize, poll).map_err(err)?;
            Ok(Self { inner: Some(sink) })
        })
    }

    #[napi]
    pub fn ports(&self) -> Vec<u32> {
        self.inner.as_ref().map(|s| s.ports().iter().map(|&p| p as u32).collect()).unwrap_or_default()
    }

    /// RTP datagrams received so far per port, in `ports()` order.
    #[napi]
    pub fn counts(&self) -> Vec<f64> {
        self.inner.as_ref().map(|s| s.counts().iter().map(|&n| n as f64).collect()).unwrap_or_default()
    }

    /// Non-RTP datagrams (RTCP, anything else) received so far, all ports together.
    #[napi]
    pub fn other(&self) -> f64 {
        self.inner.as_ref().map(|s| s.other() as f64).unwrap_or(0.0)
    }

    /// CPU time the sink threads have used so far, in nanoseconds.
    #[napi]
    pub fn cpu_ns(&self) -> f64 {
        self.inner.as_ref().map(|s| s.cpu_ns() as f64).unwrap_or(0.0)
    }

    /// Stops receiving (closing the sockets) and returns the RTP datagrams received in all.
    #[napi]
    pub fn stop(&mut self) -> Result<f64> {
        guard("CountingSink.stop", || Ok(self.inner.take().map(|mut s| s.stop()).unwrap_or(0) as f64))
    }
}
