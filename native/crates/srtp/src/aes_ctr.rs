//! AES-128 in counter mode for AES-CM (RFC 3711 §4.1.1), four counter blocks per instruction
//! where the CPU has VAES with AVX-512.
//!
//! Why: after the tags went into AVX-512 lanes (`hmac_batch`), the keystream was about a third
//! of an AES-CM protect. RustCrypto's AES-NI path encrypts one 128-bit block per instruction
//! (8 in flight); VAES encrypts four per instruction, so a 1200-byte payload takes less than
//! half the time (native/crates/srtp/README.md). Elsewhere (other x86-64 CPUs, aarch64) the
//! keystream comes from RustCrypto's `aes` + `ctr` as before, with AES-NI or the ARMv8 AES
//! instructions picked at run time.
//!
//! The counter: RFC 3711 §4.1.1 defines the keystream as E(k, IV + j) for j = 0, 1, … with
//! IV + j taken mod 2^128. IV = (k_s · 2^16) XOR (SSRC · 2^64) XOR (i · 2^16) has its low 16
//! bits zero, so for j < 2^16 (a payload under 1 MiB: any datagram) IV + j is IV with j in its
//! last two bytes, big-endian. Longer inputs take the general path.
#![allow(unsafe_code)]

use aes::cipher::{InnerIvInit, KeyInit, StreamCipher};
use aes::Aes128Enc;

use crate::SrtpError;

/// AES-128 counter-mode keystream over one key, expanded once.
#[derive(Clone)]
pub(crate) struct Aes128Ctr {
    /// RustCrypto's key schedule: the path without VAES, and payloads of 2^16 blocks or more.
    general: Aes128Enc,
    /// The FIPS 197 §5.2 round keys, where VAES + AVX-512 were detected at construction.
    #[cfg(target_arch = "x86_64")]
    wide: Option<vaes::RoundKeys>,
}

/// The longest input whose counters stay within the IV's zero low 16 bits.
#[cfg(target_arch = "x86_64")]
const MAX_WIDE_LEN: usize = (1 << 16) * 16;

impl Aes128Ctr {
    pub(crate) fn new(key: &[u8]) -> Result<Self, SrtpError> {
        let general = Aes128Enc::new_from_slice(key).map_err(|_| SrtpError::BadKeyLength)?;
        #[cfg(target_arch = "x86_64")]
        let wide = match <&[u8; 16]>::try_from(key) {
            Ok(key) if vaes::available() => Some(vaes::RoundKeys::expand(key)),
            _ => None,
        };
        Ok(Self {
            general,
            #[cfg(target_arch = "x86_64")]
            wide,
        })
    }

    /// XORs E(k, iv + j), j = 0, 1, …, into `data` (iv + j mod 2^128, big-endian).
    pub(crate) fn apply(&self, iv: &[u8; 16], data: &mut [u8]) {
        #[cfg(target_arch = "x86_64")]
        if let Some(keys) = &self.wide {
            if iv[14] == 0 && iv[15] == 0 && data.len() < MAX_WIDE_LEN {
                keys.apply(iv, data);
                return;
            }
        }
        let core = ctr::CtrCore::<&Aes128Enc, ctr::flavors::Ctr128BE>::inner_iv_init(&self.general, &(*iv).into());
        ctr::Ctr128BE::from_core(core).apply_keystream(data);
    }

    /// Whether `apply` takes the VAES path.
    #[cfg(test)]
    pub(crate) fn is_wide(&self) -> bool {
        #[cfg(target_arch = "x86_64")]
        return self.wide.is_some();
        #[cfg(not(target_arch = "x86_64"))]
        false
    }
}

#[cfg(target_arch = "x86_64")]
mod vaes {
    use std::arch::x86_64::*;

    /// VAES on 512-bit registers, AVX-512BW for the masked tail, AES-NI for the key expansion.
    pub(super) fn available() -> bool {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("vaes")
            && std::arch::is_x86_feature_detected!("aes")
    }

    /// The 11 round keys of AES-128, as bytes (kept plain so the struct is `Send` and `Clone`).
    #[derive(Clone)]
    pub(super) struct RoundKeys([[u8; 16]; 11]);

    impl RoundKeys {
        /// Only called after `available()` said yes.
        pub(super) fn expand(key: &[u8; 16]) -> Self {
            // SAFETY: `available()` confirmed AES-NI on this CPU.
            unsafe { expand_aesni(key) }
        }

        pub(super) fn apply(&self, iv: &[u8; 16], data: &mut [u8]) {
            // SAFETY: a `RoundKeys` exists only where `available()` confirmed the features,
            // and `apply_vaes` touches `data` only within its length.
            unsafe { apply_vaes(&self.0, iv, data) }
        }
    }

    /// FIPS 197 §5.2 key expansion with AESKEYGENASSIST: word i = word i−4 XOR
    /// SubWord(RotWord(word i−1)) XOR Rcon for the first word of each round key, then chained.
    #[target_feature(enable = "aes,sse2")]
    unsafe fn expand_aesni(key: &[u8; 16]) -> RoundKeys {
        #[inline(always)]
        unsafe fn next(prev: __m128i, assist: __m128i) -> __m128i {
            let assist = _mm_shuffle_epi32::<0xff>(assist);
            let mut k = prev;
            k = _mm_xor_si128(k, _mm_slli_si128::<4>(k));
            k = _mm_xor_si128(k, _mm_slli_si128::<4>(k));
            k = _mm_xor_si128(k, _mm_slli_si128::<4>(k));
            _mm_xor_si128(k, assist)
        }
        let mut out = [[0u8; 16]; 11];
        let mut k = _mm_loadu_si128(key.as_ptr().cast());
        _mm_storeu_si128(out[0].as_mut_ptr().cast(), k);
        macro_rules! round {
            ($i:expr, $rcon:expr) => {
                k = next(k, _mm_aeskeygenassist_si128::<$rcon>(k));
                _mm_storeu_si128(out[$i].as_mut_ptr().cast(), k);
            };
        }
        round!(1, 0x01);
        round!(2, 0x02);
        round!(3, 0x04);
        round!(4, 0x08);
        round!(5, 0x10);
        round!(6, 0x20);
        round!(7, 0x40);
        round!(8, 0x80);
        round!(9, 0x1b);
        round!(10, 0x36);
        RoundKeys(out)
    }

    /// Encrypts four counter blocks per register, 16 blocks (256 bytes) per pass so that the
    /// four AESENC chains overlap.
    #[target_feature(enable = "avx512f,avx512bw,vaes,aes")]
    unsafe fn apply_vaes(rk: &[[u8; 16]; 11], iv: &[u8; 16], data: &mut [u8]) {
        let mut keys = [_mm512_setzero_si512(); 11];
        for (wide, key) in keys.iter_mut().zip(rk) {
            *wide = _mm512_broadcast_i32x4(_mm_loadu_si128(key.as_ptr().cast()));
        }
        let iv = _mm512_broadcast_i32x4(_mm_loadu_si128(iv.as_ptr().cast()));
        // Block j of a register holds j in dword 3 of its 128-bit lane (native order); the
        // shuffle writes it big-endian into bytes 12..15 and zeroes the rest. IV bytes 14..15
        // are zero and j < 2^16, so XOR places j in the last two bytes (RFC 3711 §4.1.1).
        let mut counter = _mm512_set_epi32(3, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0);
        let four = _mm512_set_epi32(4, 0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0);
        let z = -128i8; // a shuffle index with its high bit set writes zero
        #[rustfmt::skip]
        let to_big_endian = _mm512_set_epi8(
            12, 13, 14, 15, z, z, z, z, z, z, z, z, z, z, z, z,
            12, 13, 14, 15, z, z, z, z, z, z, z, z, z, z, z, z,
            12, 13, 14, 15, z, z, z, z, z, z, z, z, z, z, z, z,
            12, 13, 14, 15, z, z, z, z, z, z, z, z, z, z, z, z,
        );
        let mut next_blocks = || {
            let block = _mm512_xor_si512(iv, _mm512_shuffle_epi8(counter, to_big_endian));
            counter = _mm512_add_epi32(counter, four);
            _mm512_xor_si512(block, keys[0])
        };
        let mut chunks = data.chunks_exact_mut(256);
        for chunk in &mut chunks {
            let mut b = [next_blocks(), next_blocks(), next_blocks(), next_blocks()];
            for key in &keys[1..10] {
                for x in &mut b {
                    *x = _mm512_aesenc_epi128(*x, *key);
                }
            }
            for (i, x) in b.iter().enumerate() {
                let at = chunk.as_mut_ptr().add(i * 64).cast::<__m512i>();
                let stream = _mm512_aesenclast_epi128(*x, keys[10]);
                _mm512_storeu_si512(at, _mm512_xor_si512(_mm512_loadu_si512(at), stream));
            }
        }
        // The rest (under 256 bytes) in one pass of four registers, so their AESENC chains
        // overlap too; lanes past the end are neither read nor written.
        let rest = chunks.into_remainder();
        if !rest.is_empty() {
            let mut b = [next_blocks(), next_blocks(), next_blocks(), next_blocks()];
            for key in &keys[1..10] {
                for x in &mut b {
                    *x = _mm512_aesenc_epi128(*x, *key);
                }
            }
            for (x, part) in b.iter().zip(rest.chunks_mut(64)) {
                let stream = _mm512_aesenclast_epi128(*x, keys[10]);
                let mask: __mmask64 = if part.len() == 64 { u64::MAX } else { (1u64 << part.len()) - 1 };
                let at = part.as_mut_ptr().cast::<i8>();
                let text = _mm512_maskz_loadu_epi8(mask, at);
                _mm512_mask_storeu_epi8(at, mask, _mm512_xor_si512(text, stream));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn general(key: &[u8; 16], iv: &[u8; 16], data: &mut [u8]) {
        let cipher = Aes128Enc::new_from_slice(key).unwrap();
        let core = ctr::CtrCore::<&Aes128Enc, ctr::flavors::Ctr128BE>::inner_iv_init(&cipher, &(*iv).into());
        ctr::Ctr128BE::from_core(core).apply_keystream(data);
    }

    /// Every length 0..=1100 and a few around the chunk sizes, random keys and IVs: the same
    /// bytes as RustCrypto's CTR (on a CPU without VAES both sides are RustCrypto).
    #[test]
    fn equals_the_general_counter_mode() {
        let mut rng = ferry_testkit::Rng::new(0xc7a);
        let lengths = (0..=1100).chain([1199, 1200, 1216, 1500, 4096, 65535]);
        for len in lengths {
            let mut key = [0u8; 16];
            rng.fill(&mut key);
            let mut iv = [0u8; 16];
            rng.fill(&mut iv);
            iv[14] = 0;
            iv[15] = 0;
            let data = rng.bytes(len);
            let mut ours = data.clone();
            Aes128Ctr::new(&key).unwrap().apply(&iv, &mut ours);
            let mut theirs = data;
            general(&key, &iv, &mut theirs);
            assert_eq!(ours, theirs, "length {len}");
        }
    }

    /// An IV with nonzero low bytes (never produced by SRTP) and a counter that carries past 16
    /// bits still follow RFC 3711's IV + j mod 2^128.
    #[test]
    fn carries_take_the_general_path() {
        let key = [9u8; 16];
        for iv in [[0xffu8; 16], { let mut iv = [0u8; 16]; iv[15] = 1; iv }] {
            let mut ours = vec![0u8; 300];
            Aes128Ctr::new(&key).unwrap().apply(&iv, &mut ours);
            let mut theirs = vec![0u8; 300];
            general(&key, &iv, &mut theirs);
            assert_eq!(ours, theirs);
        }
    }

    #[test]
    fn reports_its_path() {
        let ctr = Aes128Ctr::new(&[1u8; 16]).unwrap();
        #[cfg(target_arch = "x86_64")]
        assert_eq!(ctr.is_wide(), vaes::available());
        #[cfg(not(target_arch = "x86_64"))]
        assert!(!ctr.is_wide());
    }
}
