//! Per-direction session crypto, built once per context.
//!
//! * [`CmSession`]: AES-128 in counter mode (RFC 3711 §4.1.1) + HMAC-SHA1
//!   (RFC 3711 §4.2).
//! * [`GcmSession`]: AES-GCM (`ring`) with the SRTP IV layout of RFC 7714
//!   §8.1 / §9.1.
//!
//! Nothing here allocates: cipher and MAC states are prebuilt once per
//! context. The AES key schedules are used by reference; the pre-keyed HMAC
//! (inner and outer SHA-1 states after the padded key block) is cloned on the
//! stack per packet, which costs a copy of two 20-byte states instead of two
//! extra SHA-1 compressions.

use ring::aead::{Aad, Algorithm, LessSafeKey, Nonce, Tag, UnboundKey};
use subtle::ConstantTimeEq;

use crate::aes_ctr::Aes128Ctr;
use crate::hmac_batch::{DeferredMac, HmacSha1Key};
use crate::profile::GCM_TAG_LEN;
use crate::SrtpError;

/// Session salt length for AES-CM (RFC 3711 §4.3: n_s = 112 bits).
pub(crate) const CM_SALT_LEN: usize = 14;
/// Session authentication key length for HMAC-SHA1 (RFC 3711 §4.2: n_a = 160 bits).
pub(crate) const HMAC_KEY_LEN: usize = 20;
/// Session salt length for AES-GCM (RFC 7714 §11: 96 bits).
pub(crate) const GCM_SALT_LEN: usize = 12;

/// One AES-CM + HMAC-SHA1 session: either the SRTP or the SRTCP half.
#[derive(Clone)]
pub(crate) struct CmSession {
    /// Encryption-only key schedule, expanded once: CTR never runs AES backwards.
    cipher: Aes128Ctr,
    salt: [u8; CM_SALT_LEN],
    /// Pre-keyed for tags computed at once (RustCrypto `Hmac`, whose `sha1` 0.11 picks SHA-NI
    /// on x86-64, the ARMv8 SHA1 instructions on aarch64, portable Rust otherwise) and for
    /// tags computed later, many packets together (`hmac_batch`).
    mac: HmacSha1Key,
}

impl CmSession {
    pub(crate) fn new(key: &[u8], salt: &[u8], auth_key: &[u8]) -> Result<Self, SrtpError> {
        Ok(CmSession {
            cipher: Aes128Ctr::new(key)?,
            salt: salt.try_into().map_err(|_| SrtpError::BadKeyLength)?,
            mac: HmacSha1Key::new(auth_key),
        })
    }

    /// The tag of a packet of `authenticated` bytes with `roc`, to be computed later.
    pub(crate) fn deferred_tag(&self, authenticated: usize, tag_len: usize, roc: [u8; 4]) -> DeferredMac {
        DeferredMac::new(&self.mac, authenticated, tag_len, roc)
    }

    /// XORs the AES-CM keystream for (`ssrc`, `index`) into `data`.
    ///
    /// RFC 3711 §4.1.1: IV = (k_s * 2^16) XOR (SSRC * 2^64) XOR (i * 2^16);
    /// the low 16 bits count blocks, so one packet may span 2^16 blocks (1 MiB),
    /// far beyond any datagram. For SRTCP `index` is the 31-bit SRTCP index.
    pub(crate) fn apply_keystream(&self, ssrc: u32, index: u64, data: &mut [u8]) {
        let mut iv = [0u8; 16];
        iv[..CM_SALT_LEN].copy_from_slice(&self.salt);
        for (iv_byte, ssrc_byte) in iv[4..8].iter_mut().zip(ssrc.to_be_bytes()) {
            *iv_byte ^= ssrc_byte;
        }
        // The 48-bit index occupies octets 8..14 (the low 6 bytes of the u64).
        for (iv_byte, index_byte) in iv[8..14].iter_mut().zip(&index.to_be_bytes()[2..8]) {
            *iv_byte ^= index_byte;
        }
        self.cipher.apply(&iv, data);
    }

    /// Full 160-bit HMAC-SHA1 over the concatenation of `parts` (RFC 3711
    /// §4.2). For SRTP the parts end with the ROC; for SRTCP with the E+index
    /// word. Taking parts avoids copying them together.
    pub(crate) fn full_tag(&self, parts: &[&[u8]]) -> [u8; 20] {
        self.mac.tag(parts)
    }

    /// Writes the tag truncated to `tag_out.len()` bytes.
    pub(crate) fn write_tag(&self, parts: &[&[u8]], tag_out: &mut [u8]) -> Result<(), SrtpError> {
        let full = self.full_tag(parts);
        tag_out.copy_from_slice(full.get(..tag_out.len()).ok_or(SrtpError::BufferTooSmall)?);
        Ok(())
    }

    /// Constant-time check of a received truncated tag.
    pub(crate) fn verify_tag(&self, parts: &[&[u8]], received: &[u8]) -> Result<(), SrtpError> {
        let full = self.full_tag(parts);
        let expected = full.get(..received.len()).ok_or(SrtpError::AuthFailed)?;
        if bool::from(expected.ct_eq(received)) {
            Ok(())
        } else {
            Err(SrtpError::AuthFailed)
        }
    }
}

/// One AES-GCM session (SRTP or SRTCP half), AES-128 or AES-256 by key length.
///
/// `ring` runs BoringSSL's stitched AES-NI + PCLMULQDQ (or AVX / VAES) and
/// ARMv8 GCM code, chosen at run time; the key schedule and GHASH key table
/// are computed once here, never per packet.
pub(crate) struct GcmSession {
    key: LessSafeKey,
    salt: [u8; GCM_SALT_LEN],
}

impl GcmSession {
    /// `algorithm` is `ring::aead::AES_128_GCM` or `AES_256_GCM`; a key of the
    /// wrong length for it is `BadKeyLength`.
    pub(crate) fn new(
        algorithm: &'static Algorithm,
        key: &[u8],
        salt: &[u8],
    ) -> Result<Self, SrtpError> {
        Ok(GcmSession {
            key: LessSafeKey::new(
                UnboundKey::new(algorithm, key).map_err(|_| SrtpError::BadKeyLength)?,
            ),
            salt: salt.try_into().map_err(|_| SrtpError::BadKeyLength)?,
        })
    }

    /// RFC 7714 §8.1 (SRTP) and §9.1 (SRTCP): IV = salt XOR
    /// (0x0000 || SSRC || 48-bit index), where the index is ROC || SEQ for SRTP
    /// and 0x0000 || 0 || 31-bit SRTCP index for SRTCP.
    fn nonce(&self, ssrc: u32, index: u64) -> Nonce {
        let mut iv = self.salt;
        for (iv_byte, ssrc_byte) in iv[2..6].iter_mut().zip(ssrc.to_be_bytes()) {
            *iv_byte ^= ssrc_byte;
        }
        for (iv_byte, index_byte) in iv[6..12].iter_mut().zip(&index.to_be_bytes()[2..8]) {
            *iv_byte ^= index_byte;
        }
        // Unique per key: SRTP and SRTCP have separate session keys, and the
        // callers never reuse an (SSRC, index) pair for protection.
        Nonce::assume_unique_for_key(iv)
    }

    /// Encrypts `plaintext` in place, authenticating `aad` too; returns the tag.
    pub(crate) fn seal(
        &self,
        ssrc: u32,
        index: u64,
        aad: &[u8],
        plaintext: &mut [u8],
    ) -> Result<[u8; GCM_TAG_LEN], SrtpError> {
        let tag = self
            .key
            .seal_in_place_separate_tag(self.nonce(ssrc, index), Aad::from(aad), plaintext)
            // ring refuses only inputs beyond GCM's 2^36-byte limit.
            .map_err(|_| SrtpError::BufferTooSmall)?;
        tag.as_ref()
            .try_into()
            .map_err(|_| SrtpError::BufferTooSmall)
    }

    /// Authenticates and decrypts `ciphertext` in place. The tag comparison
    /// is constant time (inside `ring`); on `AuthFailed` the ciphertext bytes
    /// have been overwritten with zeros, so a rejected packet must be dropped,
    /// never retried with another context.
    pub(crate) fn open(
        &self,
        ssrc: u32,
        index: u64,
        aad: &[u8],
        ciphertext: &mut [u8],
        tag: &[u8],
    ) -> Result<(), SrtpError> {
        let tag = Tag::try_from(tag).map_err(|_| SrtpError::AuthFailed)?;
        self.key
            .open_in_place_separate_tag(
                self.nonce(ssrc, index),
                Aad::from(aad),
                tag,
                ciphertext,
                0..,
            )
            .map(|_| ())
            .map_err(|_| SrtpError::AuthFailed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 3711 Appendix B.2: AES-CM keystream for session key
    /// 2B7E1516..., salt F0F1...FD, SSRC 0, index 0.
    #[test]
    fn rfc3711_b2_keystream() {
        let session = CmSession::new(
            &hex::decode("2B7E151628AED2A6ABF7158809CF4F3C").unwrap(),
            &hex::decode("F0F1F2F3F4F5F6F7F8F9FAFBFCFD").unwrap(),
            &[0u8; 20],
        )
        .unwrap();
        let mut keystream = vec![0u8; 0xff02 * 16];
        session.apply_keystream(0, 0, &mut keystream);
        let block = |n: usize| hex::encode_upper(&keystream[n * 16..(n + 1) * 16]);
        assert_eq!(block(0x0000), "E03EAD0935C95E80E166B16DD92B4EB4");
        assert_eq!(block(0x0001), "D23513162B02D0F72A43A2FE4A5F97AB");
        assert_eq!(block(0x0002), "41E95B3BB0A2E8DD477901E4FCA894C0");
        assert_eq!(block(0xfeff), "EC8CDF7398607CB0F2D21675EA9EA1E4");
        assert_eq!(block(0xff00), "362B7C3C6773516318A077D7FC5073AE");
        assert_eq!(block(0xff01), "6A2CC3787889374FBEB4C81B17BA6C44");
    }
}
