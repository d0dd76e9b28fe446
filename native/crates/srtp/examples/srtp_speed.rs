//! Packets per second of protect_rtp / unprotect_rtp for 1200-byte payloads,
//! per profile, on one core.
//!
//! `cargo run --release -p ferry-srtp --example srtp_speed [seconds-per-case]`
//! (default 1 s per case). Timed by this thread's CPU time
//! (`CLOCK_THREAD_CPUTIME_ID`), so other jobs sharing the cores slow the run
//! down but do not lower the rates it prints.

use std::hint::black_box;
use std::time::Duration;

use ferry_srtp::{SrtpContext, SrtpProfile};

const PAYLOAD_LEN: usize = 1200;
const HEADER_LEN: usize = 12;
/// Protected packets prepared for the unprotect run; the receiver's stream is
/// reset after each pass so replay protection does not reject the repeat.
const RING: usize = 4096;

fn rtp_packet(seq: u16) -> Vec<u8> {
    let mut packet = vec![0x80, 96];
    packet.extend_from_slice(&seq.to_be_bytes());
    packet.extend_from_slice(&(u32::from(seq) * 3000).to_be_bytes());
    packet.extend_from_slice(&0x1122_3344u32.to_be_bytes());
    packet.extend((0..PAYLOAD_LEN).map(|i| i as u8));
    packet
}

fn contexts(profile: SrtpProfile) -> (SrtpContext, SrtpContext) {
    let key: Vec<u8> = (0..profile.master_key_len() as u8).collect();
    let salt: Vec<u8> = (100..100 + profile.master_salt_len() as u8).collect();
    (
        SrtpContext::new(profile, &key, &salt).expect("sender"),
        SrtpContext::new(profile, &key, &salt).expect("receiver"),
    )
}

/// CPU time consumed by the calling thread.
fn thread_cpu_time() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec; the clock id is a constant
    // every Linux kernel since 2.6.12 supports.
    let status = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    assert_eq!(status, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

/// Runs `op` in batches until it has used `budget` of CPU time; returns
/// operations per CPU second.
fn measure(budget: Duration, mut op: impl FnMut(usize)) -> f64 {
    let start = thread_cpu_time();
    let mut done = 0usize;
    loop {
        for _ in 0..256 {
            op(done);
            done += 1;
        }
        let elapsed = thread_cpu_time() - start;
        if elapsed >= budget {
            return done as f64 / elapsed.as_secs_f64();
        }
    }
}

fn main() {
    let seconds: f64 = std::env::args()
        .nth(1)
        .and_then(|arg| arg.parse().ok())
        .unwrap_or(1.0);
    let budget = Duration::from_secs_f64(seconds);
    let plain_len = HEADER_LEN + PAYLOAD_LEN;
    println!("ferry-srtp, {PAYLOAD_LEN}-byte payloads, one core, {seconds} CPU s per case");
    for profile in SrtpProfile::ALL {
        let (mut sender, mut receiver) = contexts(profile);

        let template = rtp_packet(0);
        let mut buf = vec![0u8; plain_len + profile.rtp_overhead()];
        let protect_rate = measure(budget, |n| {
            buf[..plain_len].copy_from_slice(&template);
            buf[2..4].copy_from_slice(&(n as u16).to_be_bytes());
            let len = sender.protect_rtp(&mut buf, plain_len).expect("protect");
            black_box(&buf[..len]);
        });

        let (mut ring_sender, _) = contexts(profile);
        let ring: Vec<Vec<u8>> = (0..RING)
            .map(|n| {
                let mut packet = rtp_packet(n as u16);
                packet.resize(plain_len + profile.rtp_overhead(), 0);
                let len = ring_sender
                    .protect_rtp(&mut packet, plain_len)
                    .expect("protect");
                packet.truncate(len);
                packet
            })
            .collect();
        let protected_len = ring[0].len();
        let mut work = vec![0u8; protected_len];
        let unprotect_rate = measure(budget, |n| {
            let slot = n % RING;
            if slot == 0 {
                receiver.remove_ssrc(0x1122_3344);
            }
            work.copy_from_slice(&ring[slot]);
            let len = receiver
                .unprotect_rtp(&mut work, protected_len)
                .expect("unprotect");
            black_box(&work[..len]);
        });

        let gbit = |rate: f64| rate * (PAYLOAD_LEN * 8) as f64 / 1e9;
        println!(
            "{:<24} protect {:>9.0} pkt/s ({:>5.2} Gbit/s)   unprotect {:>9.0} pkt/s ({:>5.2} Gbit/s)",
            profile.name(),
            protect_rate,
            gbit(protect_rate),
            unprotect_rate,
            gbit(unprotect_rate)
        );
    }
}
