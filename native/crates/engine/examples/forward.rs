//! The forwarding benchmark without Node: one SRTP source on one media thread fanned out to
//! N SRTP outputs toward bound-but-unread sinks, fed by the native blaster. Handy under
//! `perf record` (the media thread is `ferry-media-0`).
//!
//! `cargo run --release -p ferry-engine --example forward -- [gcm|cm] [fanout] [seconds] [echo|-] [packets/s] [same|cross]`
//!
//! `same`/`cross`: two media threads, the ingress on thread 0 and the outputs on thread 0 or 1.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ferry_engine::bench::{blast, BlastOptions, Sink};
use ferry_engine::{EndpointConfig, Engine, EngineOptions, Event, MediaKind, OutputConfig, SourceConfig, SrtpKeys, SrtpProfile};

fn keys(profile: SrtpProfile, seed: u8) -> SrtpKeys {
    let key = vec![seed; profile.master_key_len()];
    let salt = vec![seed.wrapping_add(1); profile.master_salt_len()];
    SrtpKeys { profile, local_key: key.clone(), local_salt: salt.clone(), remote_key: key, remote_salt: salt }
}

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let profile = match args.first().map(String::as_str) {
        Some("cm") => SrtpProfile::Aes128CmHmacSha1_80,
        _ => SrtpProfile::AeadAes128Gcm,
    };
    let fanout: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(10).clamp(1, 256);
    let seconds: f64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(2.0f64).clamp(0.1, 30.0);
    let echo = args.get(3).map(String::as_str) == Some("echo");
    // Offered load in packets/s (0 = flat out), as bench/forward.bench.ts paces it.
    let packets_per_second: u64 = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(0);

    let placement = args.get(5).map(String::as_str);
    let workers = if placement.is_some() { 2 } else { 1 };
    let output_worker = if placement == Some("cross") { 1 } else { 0 };
    let engine = Engine::new(EngineOptions { workers, ..EngineOptions::default() }, Arc::new(|_: Vec<Event>| {})).map_err(|e| e.0)?;
    let mut sink = Sink::start(if echo { 1 } else { fanout }, false)?;
    let any: SocketAddr = "127.0.0.1:0".parse().map_err(|e: std::net::AddrParseError| e.to_string())?;
    let mut ingress_cfg = EndpointConfig::new(any);
    ingress_cfg.worker = Some(0);
    let (ingress, ingress_addr) = engine.open_endpoint(ingress_cfg).map_err(|e| e.0)?;
    engine.set_srtp(ingress, keys(profile, 7)).map_err(|e| e.0)?;
    let source = engine
        .add_source(ingress, SourceConfig { ssrc: 0x1000, ssrc_offset: 0, kind: MediaKind::Video, clock_rate: 90000, codec: None })
        .map_err(|e| e.0)?;
    let mut outputs = Vec::new();
    for (i, port) in sink.ports().to_vec().into_iter().enumerate() {
        let dest = SocketAddr::from(([127, 0, 0, 1], port));
        let ep = if echo {
            engine.set_remote(ingress, Some(dest)).map_err(|e| e.0)?;
            ingress
        } else {
            let mut cfg = EndpointConfig::new(any);
            cfg.remote = Some(dest);
            cfg.worker = Some(output_worker);
            let (ep, _) = engine.open_endpoint(cfg).map_err(|e| e.0)?;
            engine.set_srtp(ep, keys(profile, 20 + i as u8)).map_err(|e| e.0)?;
            ep
        };
        engine
            .add_output(ep, OutputConfig { source: Some(source), ssrc: 0x2000 + i as u32, payload_type: None, rtx: None })
            .map_err(|e| e.0)?;
        outputs.push(ep);
    }
    let tx_of = |s: &ferry_engine::EngineStats| -> u64 {
        outputs.iter().filter_map(|&id| s.endpoint(id)).map(|e| e.tx_packets).sum()
    };
    let before = engine.stats().map_err(|e| e.0)?;
    let k = keys(profile, 7);
    let result = blast(&BlastOptions {
        target: ingress_addr,
        profile: Some(profile),
        key: k.local_key,
        salt: k.local_salt,
        ssrc: 0x1000,
        payload_type: 96,
        payload: 1200,
        duration: Duration::from_secs_f64(seconds),
        packets_per_second,
        max_packets: u64::MAX,
        first_seq: 1,
        twcc_extension_id: None,
    })?;
    std::thread::sleep(Duration::from_millis(50));
    let after = engine.stats().map_err(|e| e.0)?;
    let out = tx_of(&after) - tx_of(&before);
    let cpu_ns: u64 = after.workers.iter().zip(&before.workers).map(|(a, b)| a.cpu_ns - b.cpu_ns).sum();
    let batches = after.workers[0].recv_batches - before.workers[0].recv_batches;
    let loops = after.workers[0].loops - before.workers[0].loops;
    let rx = after.endpoint(ingress).map(|e| e.rtp_in).unwrap_or(0) - before.endpoint(ingress).map(|e| e.rtp_in).unwrap_or(0);
    let wall = result.nanos as f64 / 1e9;
    println!(
        "{profile:?} fanout {fanout}{}: blasted {} ({:.0}/s), in {rx}, out {out}: {:.0} pps out, {:.3} us cpu/pkt, {:.0} pps/core, {:.1} pkts/batch, {loops} loops",
        if echo { " echo" } else { "" },
        result.sent,
        result.sent as f64 / wall,
        out as f64 / wall,
        cpu_ns as f64 / 1000.0 / out.max(1) as f64,
        out as f64 / (cpu_ns as f64 / 1e9),
        rx as f64 / batches.max(1) as f64,
    );
    let failed: u64 = outputs.iter().filter_map(|&id| after.endpoint(id)).map(|e| e.tx_failed).sum::<u64>()
        - outputs.iter().filter_map(|&id| before.endpoint(id)).map(|e| e.tx_failed).sum::<u64>();
    let dropped: u64 = after.workers.iter().flat_map(|w| w.outputs.iter()).map(|o| o.1.dropped).sum();
    let ing = after.endpoint(ingress).cloned().unwrap_or_default();
    println!(
        "  tx_failed {failed}, outputs dropped {dropped}, ingress auth failures {}, replays {}, other {}",
        ing.srtp_auth_failures, ing.srtp_replays, ing.srtp_other_failures
    );
    sink.stop();
    Ok(())
}
