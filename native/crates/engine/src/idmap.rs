//! Maps keyed by ids and SSRCs, hashed with a multiply-rotate hash instead of SipHash. The
//! keys are u32s chosen by the control plane (ids, configured SSRCs): a network peer can only
//! look keys up, never insert them, so no hash-flooding resistance is needed, and each
//! forwarded packet does several of these look-ups.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// An odd 64-bit constant with well-mixed bits (2^64 / golden ratio).
const MULTIPLIER: u64 = 0x9E37_79B9_7F4A_7C15;

#[derive(Debug, Default, Clone, Copy)]
pub struct IdHasher {
    state: u64,
}

impl IdHasher {
    #[inline]
    fn mix(&mut self, word: u64) {
        self.state = (self.state ^ word).wrapping_mul(MULTIPLIER);
    }
}

impl Hasher for IdHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(word));
        }
    }

    #[inline]
    fn write_u32(&mut self, n: u32) {
        self.mix(u64::from(n));
    }

    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.mix(n);
    }

    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.mix(n as u64);
    }

    /// The product's high bits depend on every key bit, its low bits only on the key's low
    /// bits; the table indexes buckets with the low bits, so the high ones are rotated down
    /// (keys such as SSRCs 0x10000, 0x20000, ... would otherwise share a bucket).
    #[inline]
    fn finish(&self) -> u64 {
        self.state.rotate_left(26)
    }
}

pub type IdBuildHasher = BuildHasherDefault<IdHasher>;
pub type IdMap<V> = HashMap<u32, V, IdBuildHasher>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    #[test]
    fn map_behaves_like_a_map() {
        let mut m: IdMap<u32> = IdMap::default();
        for k in 0..10_000u32 {
            m.insert(k.wrapping_mul(0x10000), k);
        }
        assert_eq!(m.len(), 10_000);
        for k in 0..10_000u32 {
            assert_eq!(m.get(&k.wrapping_mul(0x10000)), Some(&k));
        }
        assert_eq!(m.remove(&0x10000), Some(1));
        assert_eq!(m.get(&0x10000), None);
    }

    #[test]
    fn keys_differing_only_in_high_bits_spread_over_low_bits() {
        let build = IdBuildHasher::default();
        let mut low_bits = std::collections::HashSet::new();
        for k in 0..256u32 {
            low_bits.insert(build.hash_one(k << 16) & 0xff);
        }
        // 256 keys into 256 buckets: a weak hash would put them all in one.
        assert!(low_bits.len() > 128, "only {} distinct buckets", low_bits.len());
    }
}
