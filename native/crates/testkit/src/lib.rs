//! Test support shared by ferry's crates, used only as a dev-dependency:
//! - [`Rng`]: one seeded pseudo-random generator for the fuzz and model tests, so that every
//!   run explores the same cases and a failure reproduces from its seed;
//! - [`rtcp`]: writers of the RTCP packets ferry reads but never sends, to build test input.
#![forbid(unsafe_code)]

pub mod rtcp;

/// xorshift64* (Vigna, "An experimental exploration of Marsaglia's xorshift generators",
/// 2016): tiny, deterministic and good enough to explore inputs. Not for anything secret.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Starts from `seed` itself (0, the one state xorshift never leaves, becomes 1).
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }

    /// For small seeds (1, 2, 3, …, a case number): multiplies by the golden ratio first, so
    /// that neighbouring seeds start far apart and the first outputs are not near zero.
    pub fn mixed(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform enough in `0..n` (an index, a length, a choice); 0 when `n` is 0.
    pub fn below(&mut self, n: usize) -> usize {
        self.below_u64(n as u64) as usize
    }

    /// [`Rng::below`] for 64-bit quantities (times, bitrates, sequence spaces).
    pub fn below_u64(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// True with probability `num / den`.
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below_u64(den) < num
    }

    pub fn byte(&mut self) -> u8 {
        self.next_u64() as u8
    }

    pub fn fill(&mut self, bytes: &mut [u8]) {
        for byte in bytes {
            *byte = self.byte();
        }
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.byte()).collect()
    }

    /// Random bytes, fewer than `max_len` of them.
    pub fn bytes_below(&mut self, max_len: usize) -> Vec<u8> {
        let len = self.below(max_len);
        self.bytes(len)
    }
}

#[cfg(test)]
mod tests {
    use super::Rng;

    #[test]
    fn same_seed_same_sequence_and_zero_is_not_stuck() {
        let (mut a, mut b) = (Rng::new(42), Rng::new(42));
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        let mut zero = Rng::new(0);
        assert_ne!(zero.next_u64(), zero.next_u64());
    }

    #[test]
    fn bounds_hold() {
        let mut rng = Rng::mixed(1);
        for n in 0..1000usize {
            assert!(rng.below(n) < n.max(1));
            assert!(rng.below_u64(n as u64) < (n as u64).max(1));
            assert!(rng.bytes_below(n + 1).len() <= n);
        }
        assert_eq!(rng.below(0), 0);
        assert!((0..100).all(|_| !rng.chance(0, 5)) && (0..100).all(|_| rng.chance(5, 5)));
    }
}
