//! HMAC-SHA1 (RFC 2104, SHA-1 per FIPS 180-4 §6.1) of up to 16 messages at once, each with its
//! own key: one message per 32-bit lane of AVX-512 registers.
//!
//! Why: one packet's SHA-1 is a serial chain of compressions, and SHA-NI runs one chain at
//! about 33 ns a block on the CPUs ferry is measured on; sixteen lanes run at about 14 ns a
//! block per message (native/crates/srtp/README.md). An engine has such batches: the outputs
//! of one fan-out, each with its own key, and the packets of one `recvmmsg`.
//!
//! Where AVX-512 is missing (other x86-64 CPUs, aarch64), or for fewer than
//! [`LANES_WORTH_IT`] messages, the same call hashes message by message through RustCrypto
//! (SHA-NI, or the ARMv8 SHA1 instructions); the engine then keeps its one-packet path
//! ([`lanes_available`]). The portable compression below only pre-keys the lanes.
#![allow(unsafe_code)]

use hmac::{Hmac, KeyInit, Mac};

/// Messages hashed together at most.
pub const LANES: usize = 16;
/// The last part of a message (SRTP's ROC, SRTCP's E+index) is at most this long.
pub const MAX_LAST_PART: usize = 64;

const H0: [u32; 5] = [0x6745_2301, 0xEFCD_AB89, 0x98BA_DCFE, 0x1032_5476, 0xC3D2_E1F0];
const K: [u32; 4] = [0x5A82_7999, 0x6ED9_EBA1, 0x8F1B_BCDC, 0xCA62_C1D6];

/// Fewer messages than this are hashed one by one with SHA-NI (`sha1` picks it at run time):
/// sixteen lanes cost the same whether full or not, and one SHA-NI chain runs about as fast
/// as seven lanes' share.
pub const LANES_WORTH_IT: usize = 8;

/// A pre-keyed HMAC-SHA1: the SHA-1 states after the inner (key XOR ipad) and outer
/// (key XOR opad) key blocks, so a message costs no key block; and the same key pre-keyed in
/// RustCrypto's `Hmac`, for messages hashed one at a time.
#[derive(Clone)]
pub struct HmacSha1Key {
    // Read only by the AVX-512 lanes, which exist on x86-64 alone.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    inner: [u32; 5],
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    outer: [u32; 5],
    one: Hmac<sha1::Sha1>,
}

impl std::fmt::Debug for HmacSha1Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HmacSha1Key(..)")
    }
}

impl HmacSha1Key {
    /// RFC 2104 §2: a key longer than the block is hashed first; a shorter one is padded with
    /// zeros.
    pub fn new(key: &[u8]) -> Self {
        let mut block = [0u8; 64];
        if key.len() > 64 {
            block[..20].copy_from_slice(&<sha1::Sha1 as sha1::Digest>::digest(key));
        } else {
            block[..key.len()].copy_from_slice(key);
        }
        let pad = |byte: u8| {
            let mut b = block;
            b.iter_mut().for_each(|x| *x ^= byte);
            let mut state = H0;
            compress(&mut state, &b);
            state
        };
        let one = <Hmac<sha1::Sha1> as KeyInit>::new_from_slice(key).unwrap_or_else(|_| {
            // Hmac accepts keys of any length; this arm only satisfies the type.
            <Hmac<sha1::Sha1> as KeyInit>::new(&Default::default())
        });
        Self { inner: pad(0x36), outer: pad(0x5c), one }
    }

    /// The HMAC of `parts` alone (SHA-NI where the CPU has it).
    pub fn tag(&self, parts: &[&[u8]]) -> [u8; 20] {
        let mut mac = self.one.clone();
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }
}

/// One message to authenticate: its key and its bytes as two parts (the packet, then the
/// ROC or E+index word), so they need not be copied together.
#[derive(Clone, Copy)]
pub struct MacJob<'a> {
    pub key: &'a HmacSha1Key,
    pub packet: &'a [u8],
    pub last: &'a [u8],
}

/// An SRTP packet encrypted in place whose tag is still to be computed (RFC 3711 §4.2: the
/// HMAC of the packet followed by the ROC, truncated to the profile's tag length), so that a
/// sender can hash many packets together before it sends them.
#[derive(Clone, Debug)]
pub struct DeferredMac {
    key: HmacSha1Key,
    authenticated: usize,
    tag_len: usize,
    roc: [u8; 4],
}

impl DeferredMac {
    pub(crate) fn new(key: &HmacSha1Key, authenticated: usize, tag_len: usize, roc: [u8; 4]) -> Self {
        Self { key: key.clone(), authenticated, tag_len: tag_len.min(20), roc }
    }

    /// The work of hashing the packet as it stands in `buf` (`None`: `buf` is shorter than the
    /// packet).
    pub fn job<'a>(&'a self, buf: &'a [u8]) -> Option<MacJob<'a>> {
        Some(MacJob { key: &self.key, packet: buf.get(..self.authenticated)?, last: &self.roc })
    }

    /// Writes the truncated `tag` after the packet; false if `buf` has no room for it.
    pub fn write_tag(&self, buf: &mut [u8], tag: &[u8; 20]) -> bool {
        match (buf.get_mut(self.authenticated..self.authenticated + self.tag_len), tag.get(..self.tag_len)) {
            (Some(out), Some(tag)) => {
                out.copy_from_slice(tag);
                true
            }
            _ => false,
        }
    }

    /// Computes and writes the tag now, alone.
    pub fn finish(&self, buf: &mut [u8]) -> bool {
        let Some(packet) = buf.get(..self.authenticated) else { return false };
        let tag = self.key.tag(&[packet, &self.roc]);
        self.write_tag(buf, &tag)
    }
}

/// Whether [`hmac_sha1_batch`] runs 16 lanes on this CPU.
pub fn lanes_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The full 20-byte HMAC-SHA1 of each job into `tags` (as many as there are jobs; extra tags
/// are left alone). A job whose last part is longer than [`MAX_LAST_PART`] is hashed alone.
pub fn hmac_sha1_batch(jobs: &[MacJob<'_>], tags: &mut [[u8; 20]]) {
    for (chunk, out) in jobs.chunks(LANES).zip(tags.chunks_mut(LANES)) {
        #[cfg(target_arch = "x86_64")]
        if chunk.len() >= LANES_WORTH_IT && lanes_available() && chunk.iter().all(|j| j.last.len() <= MAX_LAST_PART) {
            // SAFETY: AVX-512F was detected at run time just above.
            unsafe { x86::hmac16(chunk, out) };
            continue;
        }
        for (job, tag) in chunk.iter().zip(out.iter_mut()) {
            *tag = job.key.tag(&[job.packet, job.last]);
        }
    }
}

/// Where the packets of [`write_deferred_tags`] stand, by index: a sender's queue of datagrams,
/// or any slice of buffers.
pub trait PacketStore {
    /// Packet `i` as it stands (empty if there is none).
    fn packet(&self, i: usize) -> &[u8];
    /// Packet `i`, to write its tag in place.
    fn packet_mut(&mut self, i: usize) -> &mut [u8];
}

impl<B: AsRef<[u8]> + AsMut<[u8]>> PacketStore for [B] {
    fn packet(&self, i: usize) -> &[u8] {
        self.get(i).map_or(&[], |b| b.as_ref())
    }

    fn packet_mut(&mut self, i: usize) -> &mut [u8] {
        self.get_mut(i).map_or(&mut [], |b| b.as_mut())
    }
}

/// Computes the tags of `pending` (each the index of its packet in `store`, and its
/// [`DeferredMac`]) up to [`LANES`] together, and writes each after its packet. Returns how many
/// were written: a packet too short for itself or its tag gets none.
pub fn write_deferred_tags<S: PacketStore + ?Sized>(store: &mut S, pending: &[(usize, DeferredMac)]) -> usize {
    let mut tags = [[0u8; 20]; LANES];
    let mut written = 0;
    for chunk in pending.chunks(LANES) {
        let view = &*store;
        let jobs: [Option<MacJob<'_>>; LANES] = std::array::from_fn(|k| chunk.get(k).and_then(|(i, mac)| mac.job(view.packet(*i))));
        // A packet too short to hash is too short for its tag as well (`write_tag` then writes
        // nothing), so its lane may hash any other job.
        let Some(filler) = jobs.iter().flatten().next().copied() else { continue };
        let ready: [MacJob<'_>; LANES] = std::array::from_fn(|k| jobs[k].unwrap_or(filler));
        hmac_sha1_batch(&ready[..chunk.len()], &mut tags[..chunk.len()]);
        for ((i, mac), tag) in chunk.iter().zip(&tags) {
            written += usize::from(mac.write_tag(store.packet_mut(*i), tag));
        }
    }
    written
}

/// FIPS 180-4 §6.1.2, one block, portable.
fn compress(state: &mut [u32; 5], block: &[u8; 64]) {
    let mut w = [0u32; 80];
    for (t, chunk) in block.chunks(4).enumerate() {
        w[t] = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
    }
    for t in 16..80 {
        w[t] = (w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16]).rotate_left(1);
    }
    let [mut a, mut b, mut c, mut d, mut e] = *state;
    for (t, &wt) in w.iter().enumerate() {
        let f = match t / 20 {
            0 => (b & c) | (!b & d),
            2 => (b & c) | (b & d) | (c & d),
            _ => b ^ c ^ d,
        };
        let temp = a.rotate_left(5).wrapping_add(f).wrapping_add(e).wrapping_add(K[t / 20]).wrapping_add(wt);
        e = d;
        d = c;
        c = b.rotate_left(30);
        b = a;
        a = temp;
    }
    for (s, v) in state.iter_mut().zip([a, b, c, d, e]) {
        *s = s.wrapping_add(v);
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{MacJob, K, LANES};

    /// A lane's message as blocks: whole blocks read from the packet in place, then up to three
    /// blocks of tail (the packet's rest, the last part, SHA-1 padding) built here.
    struct LaneBlocks<'a> {
        packet: &'a [u8],
        whole: usize,
        tail: [u8; 192],
        blocks: usize,
    }

    impl<'a> LaneBlocks<'a> {
        fn new(job: &MacJob<'a>) -> Self {
            let whole = job.packet.len() / 64;
            let rest = &job.packet[whole * 64..];
            let mut tail = [0u8; 192];
            let mut n = 0;
            for &b in rest.iter().chain(job.last).chain(&[0x80]) {
                tail[n] = b;
                n += 1;
            }
            let tail_blocks = (n + 8).div_ceil(64);
            let bits = ((64 + job.packet.len() + job.last.len()) as u64) * 8;
            tail[tail_blocks * 64 - 8..tail_blocks * 64].copy_from_slice(&bits.to_be_bytes());
            Self { packet: job.packet, whole, tail, blocks: whole + tail_blocks }
        }

        fn block(&self, b: usize) -> &[u8] {
            if b < self.whole {
                &self.packet[b * 64..b * 64 + 64]
            } else {
                let t = (b - self.whole) * 64;
                &self.tail[t..t + 64]
            }
        }
    }

    /// Sixteen SHA-1 states, word i of every lane in `h[i]`; lanes outside `active` keep
    /// theirs.
    #[target_feature(enable = "avx512f")]
    unsafe fn compress16(h: &mut [__m512i; 5], words: &[[u32; 16]; 16], active: __mmask16) {
        let mut w: [__m512i; 16] = std::array::from_fn(|j| _mm512_loadu_si512(words[j].as_ptr().cast()));
        let [mut a, mut b, mut c, mut d, mut e] = *h;
        macro_rules! rounds {
            ($range:expr, $imm:literal, $k:expr) => {
                let k = _mm512_set1_epi32($k as i32);
                for t in $range {
                    let wt = if t < 16 {
                        w[t]
                    } else {
                        // W[t] = ROTL1(W[t-3] ^ W[t-8] ^ W[t-14] ^ W[t-16]), in a 16-word ring.
                        let x = _mm512_ternarylogic_epi32::<0x96>(w[(t + 13) & 15], w[(t + 8) & 15], w[(t + 2) & 15]);
                        let x = _mm512_rol_epi32::<1>(_mm512_xor_si512(x, w[t & 15]));
                        w[t & 15] = x;
                        x
                    };
                    let f = _mm512_ternarylogic_epi32::<$imm>(b, c, d);
                    let temp = _mm512_add_epi32(_mm512_add_epi32(_mm512_rol_epi32::<5>(a), f), _mm512_add_epi32(_mm512_add_epi32(e, k), wt));
                    e = d;
                    d = c;
                    c = _mm512_rol_epi32::<30>(b);
                    b = a;
                    a = temp;
                }
            };
        }
        // Ch (0xCA), Parity (0x96), Maj (0xE8) as three-input truth tables of (b, c, d).
        rounds!(0..20, 0xCA, K[0]);
        rounds!(20..40, 0x96, K[1]);
        rounds!(40..60, 0xE8, K[2]);
        rounds!(60..80, 0x96, K[3]);
        for (s, v) in h.iter_mut().zip([a, b, c, d, e]) {
            *s = _mm512_mask_add_epi32(*s, active, *s, v);
        }
    }

    fn lanes_of(states: impl Fn(usize) -> [u32; 5], n: usize) -> [[u32; 16]; 5] {
        let mut h = [[0u32; 16]; 5];
        for lane in 0..n {
            for (row, word) in h.iter_mut().zip(states(lane)) {
                row[lane] = word;
            }
        }
        h
    }

    /// HMAC-SHA1 of up to 16 jobs; the caller checked AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn hmac16(jobs: &[MacJob<'_>], tags: &mut [[u8; 20]]) {
        let n = jobs.len().min(LANES).min(tags.len());
        let lanes: [Option<LaneBlocks<'_>>; LANES] = std::array::from_fn(|l| jobs.get(l).filter(|_| l < n).map(LaneBlocks::new));
        let load = |rows: [[u32; 16]; 5]| -> [__m512i; 5] { std::array::from_fn(|i| _mm512_loadu_si512(rows[i].as_ptr().cast())) };
        let mut h = load(lanes_of(|l| jobs[l].key.inner, n));
        let most = lanes.iter().flatten().map(|l| l.blocks).max().unwrap_or(0);
        let mut words = [[0u32; 16]; 16];
        for b in 0..most {
            let mut active: __mmask16 = 0;
            for (lane, blocks) in lanes.iter().enumerate() {
                let Some(blocks) = blocks else { continue };
                if b < blocks.blocks {
                    active |= 1 << lane;
                    for (j, chunk) in blocks.block(b).chunks_exact(4).enumerate() {
                        words[j][lane] = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
                    }
                }
            }
            compress16(&mut h, &words, active);
        }
        // Outer hash: the outer state and one block (inner digest, padding, 84 bytes in bits).
        let mut inner = [[0u32; 16]; 5];
        for (i, row) in inner.iter_mut().enumerate() {
            _mm512_storeu_si512(row.as_mut_ptr().cast(), h[i]);
        }
        let mut outer_words = [[0u32; 16]; 16];
        for (words, row) in outer_words.iter_mut().zip(&inner) {
            words[..n].copy_from_slice(&row[..n]);
        }
        outer_words[5][..n].fill(0x8000_0000);
        outer_words[15][..n].fill((64 + 20) * 8);
        let mut o = load(lanes_of(|l| jobs[l].key.outer, n));
        compress16(&mut o, &outer_words, if n == LANES { u16::MAX } else { (1u16 << n) - 1 });
        let mut rows = [[0u32; 16]; 5];
        for (i, row) in rows.iter_mut().enumerate() {
            _mm512_storeu_si512(row.as_mut_ptr().cast(), o[i]);
        }
        for (lane, tag) in tags[..n].iter_mut().enumerate() {
            for i in 0..5 {
                tag[4 * i..4 * i + 4].copy_from_slice(&rows[i][lane].to_be_bytes());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(key: &[u8], packet: &[u8], last: &[u8]) -> [u8; 20] {
        let mut mac = Hmac::<sha1::Sha1>::new_from_slice(key).unwrap();
        mac.update(packet);
        mac.update(last);
        mac.finalize().into_bytes().into()
    }

    #[test]
    fn rfc2202_vectors() {
        // RFC 2202 §3, test cases 1, 2 and 6 (a key longer than the block).
        let cases: [(&[u8], &[u8], &str); 3] = [
            (&[0x0b; 20], b"Hi There", "b617318655057264e28bc0b6fb378c8ef146be00"),
            (b"Jefe", b"what do ya want for nothing?", "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"),
            (&[0xaa; 80], b"Test Using Larger Than Block-Size Key - Hash Key First", "aa4ae5e15272d00e95705637ce8a3b55ed402112"),
        ];
        for (key, data, hex_tag) in cases {
            let k = HmacSha1Key::new(key);
            // Alone (one at a time), and sixteen times in one batch (the lanes, where they run).
            let mut tags = [[0u8; 20]; LANES];
            hmac_sha1_batch(&[MacJob { key: &k, packet: data, last: &[] }], &mut tags[..1]);
            assert_eq!(hex::encode(tags[0]), hex_tag);
            hmac_sha1_batch(&[MacJob { key: &k, packet: data, last: &[] }; LANES], &mut tags);
            assert!(tags.iter().all(|t| hex::encode(t) == hex_tag));
        }
    }

    #[test]
    fn every_batch_size_and_length_matches_the_one_message_hmac() {
        let mut rng = ferry_testkit::Rng::new(0x1234_5678);
        for round in 0..200 {
            let n = 1 + round % 40;
            let keys: Vec<Vec<u8>> = (0..n).map(|_| rng.bytes(20)).collect();
            let packets: Vec<Vec<u8>> = (0..n).map(|_| {
                let len = rng.below(1500);
                rng.bytes(len)
            }).collect();
            let lasts: Vec<Vec<u8>> = (0..n).map(|i| rng.bytes([0, 4, 4, 8, 64][i % 5])).collect();
            let pre: Vec<HmacSha1Key> = keys.iter().map(|k| HmacSha1Key::new(k)).collect();
            let jobs: Vec<MacJob<'_>> = (0..n).map(|i| MacJob { key: &pre[i], packet: &packets[i], last: &lasts[i] }).collect();
            let mut tags = vec![[0u8; 20]; n];
            hmac_sha1_batch(&jobs, &mut tags);
            for i in 0..n {
                assert_eq!(tags[i], reference(&keys[i], &packets[i], &lasts[i]), "round {round}, job {i} of {n}, {} bytes", packets[i].len());
            }
        }
    }

    /// Tags written in place for 20 packets (16 together, then 4): each one the HMAC of its
    /// packet and ROC, truncated; a buffer cut short gets none and leaves the others whole.
    #[test]
    fn deferred_tags_are_written_after_their_packets() {
        let keys: Vec<HmacSha1Key> = (0..20u8).map(|i| HmacSha1Key::new(&[i; 20])).collect();
        let mut bufs: Vec<Vec<u8>> = (0..20).map(|i| (0..300 + i).map(|b| b as u8).collect()).collect();
        let pending: Vec<(usize, DeferredMac)> = (0..20).map(|i| (i, DeferredMac::new(&keys[i], 290, 10, [0, 0, 0, i as u8]))).collect();
        bufs[3].truncate(295); // room for the packet, not for its tag
        bufs[17].truncate(100); // not even for the packet
        let originals = bufs.clone();
        assert_eq!(write_deferred_tags(&mut bufs[..], &pending), 18);
        for (i, buf) in bufs.iter().enumerate() {
            if i == 3 || i == 17 {
                assert_eq!(buf, &originals[i], "packet {i} untouched");
                continue;
            }
            let want = reference(&[i as u8; 20], &originals[i][..290], &[0, 0, 0, i as u8]);
            assert_eq!(&buf[290..300], &want[..10], "packet {i}");
            assert_eq!(&buf[..290], &originals[i][..290]);
        }
    }

}
