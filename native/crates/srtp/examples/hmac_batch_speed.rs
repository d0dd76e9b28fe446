//! HMAC-SHA1 of a 1212-byte packet + 4-byte ROC: one at a time (the `hmac` crate, pre-keyed
//! and cloned, as `CmSession` does) against 16 at a time (`hmac_batch`). Thread CPU time.
//! `cargo run --release -p ferry-srtp --example hmac_batch_speed`
use ferry_srtp::hmac_batch::{hmac_sha1_batch, lanes_available, HmacSha1Key, MacJob};
use hmac::{Hmac, KeyInit, Mac};

fn cpu_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: writes into a live timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn main() {
    let packets: Vec<Vec<u8>> = (0..16).map(|i| (0..1212).map(|j| (i * 31 + j * 7) as u8).collect()).collect();
    let keys: Vec<Vec<u8>> = (0..16).map(|i| vec![i as u8 + 1; 20]).collect();
    let roc = [0u8, 0, 0, 1];
    let macs: Vec<Hmac<sha1::Sha1>> = keys.iter().map(|k| Hmac::<sha1::Sha1>::new_from_slice(k).unwrap()).collect();
    let pre: Vec<HmacSha1Key> = keys.iter().map(|k| HmacSha1Key::new(k)).collect();
    println!("16 lanes available: {}", lanes_available());
    for round in 0..5 {
        let n = 200_000;
        let t = cpu_ns();
        let mut sink = 0u8;
        for i in 0..n {
            let mut m = macs[i & 15].clone();
            m.update(&packets[i & 15]);
            m.update(&roc);
            sink ^= m.finalize().into_bytes()[0];
        }
        let one = (cpu_ns() - t) as f64 / n as f64;
        let jobs: Vec<MacJob<'_>> = (0..16).map(|l| MacJob { key: &pre[l], packet: &packets[l], last: &roc }).collect();
        let mut tags = [[0u8; 20]; 16];
        let t = cpu_ns();
        for _ in 0..n / 16 {
            hmac_sha1_batch(&jobs, &mut tags);
            sink ^= tags[3][0];
        }
        let batch = (cpu_ns() - t) as f64 / n as f64;
        println!("round {round}: one at a time {one:.0} ns, 16 at a time {batch:.0} ns per message ({:.2}x) [{sink}]", one / batch);
    }
}
