//! Per-direction session crypto, built once per context.
//!
//! * [`CmSession`]: AES-128 in counter mode (RFC 3711 §4.1.1) + HMAC-SHA1
//!   (RFC 3711 §4.2).
//! * [`GcmSession`]: AES-GCM with the SRTP IV layout of RFC 7714 §8.1 / §9.1.
//!
//! Nothing here allocates: cipher and MAC states are prebuilt and cloned on
//! the stack per packet, which costs a copy of the round keys / two SHA-1
//! states instead of a key schedule or two extra SHA-1 blocks.

use aes::cipher::{InnerIvInit, KeyInit, StreamCipher};
use aes::Aes128;
use aes_gcm::aead::consts::{U12, U16};
use aes_gcm::aead::{AeadCore, AeadInPlace};
use hmac::{Hmac, Mac};
use sha1::Sha1;
use subtle::ConstantTimeEq;

use crate::SrtpError;

type Aes128Ctr = ctr::Ctr128BE<Aes128>;
type HmacSha1 = Hmac<Sha1>;

/// Session salt length for AES-CM (RFC 3711 §4.3: n_s = 112 bits).
pub(crate) const CM_SALT_LEN: usize = 14;
/// Session authentication key length for HMAC-SHA1 (RFC 3711 §4.2: n_a = 160 bits).
pub(crate) const HMAC_KEY_LEN: usize = 20;
/// Session salt length for AES-GCM (RFC 7714 §11: 96 bits).
pub(crate) const GCM_SALT_LEN: usize = 12;

/// One AES-CM + HMAC-SHA1 session: either the SRTP or the SRTCP half.
#[derive(Clone)]
pub(crate) struct CmSession {
    cipher: Aes128,
    salt: [u8; CM_SALT_LEN],
    mac: HmacSha1,
}

impl CmSession {
    pub(crate) fn new(key: &[u8], salt: &[u8], auth_key: &[u8]) -> Result<Self, SrtpError> {
        Ok(CmSession {
            cipher: Aes128::new_from_slice(key).map_err(|_| SrtpError::BadKeyLength)?,
            salt: salt.try_into().map_err(|_| SrtpError::BadKeyLength)?,
            mac: <HmacSha1 as Mac>::new_from_slice(auth_key)
                .map_err(|_| SrtpError::BadKeyLength)?,
        })
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
        let core = ctr::CtrCore::<Aes128, ctr::flavors::Ctr128BE>::inner_iv_init(
            self.cipher.clone(),
            &iv.into(),
        );
        let mut keystream = Aes128Ctr::from_core(core);
        keystream.apply_keystream(data);
    }

    /// Full 160-bit HMAC-SHA1 over the concatenation of `parts` (RFC 3711
    /// §4.2). For SRTP the parts end with the ROC; for SRTCP with the E+index
    /// word. Taking parts avoids copying them together.
    pub(crate) fn full_tag(&self, parts: &[&[u8]]) -> [u8; 20] {
        let mut mac = self.mac.clone();
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
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

/// One AES-GCM session (SRTP or SRTCP half), generic over the key size.
#[derive(Clone)]
pub(crate) struct GcmSession<A> {
    aead: A,
    salt: [u8; GCM_SALT_LEN],
}

/// The AEAD interface both `Aes128Gcm` and `Aes256Gcm` provide.
pub(crate) trait SrtpAead:
    AeadInPlace + AeadCore<NonceSize = U12, TagSize = U16> + KeyInit
{
}
impl<T: AeadInPlace + AeadCore<NonceSize = U12, TagSize = U16> + KeyInit> SrtpAead for T {}

impl<A: SrtpAead> GcmSession<A> {
    pub(crate) fn new(key: &[u8], salt: &[u8]) -> Result<Self, SrtpError> {
        Ok(GcmSession {
            aead: A::new_from_slice(key).map_err(|_| SrtpError::BadKeyLength)?,
            salt: salt.try_into().map_err(|_| SrtpError::BadKeyLength)?,
        })
    }

    /// RFC 7714 §8.1 (SRTP) and §9.1 (SRTCP): IV = salt XOR
    /// (0x0000 || SSRC || 48-bit index), where the index is ROC || SEQ for SRTP
    /// and 0x0000 || 0 || 31-bit SRTCP index for SRTCP.
    fn nonce(&self, ssrc: u32, index: u64) -> aes_gcm::Nonce<U12> {
        let mut iv = self.salt;
        for (iv_byte, ssrc_byte) in iv[2..6].iter_mut().zip(ssrc.to_be_bytes()) {
            *iv_byte ^= ssrc_byte;
        }
        for (iv_byte, index_byte) in iv[6..12].iter_mut().zip(&index.to_be_bytes()[2..8]) {
            *iv_byte ^= index_byte;
        }
        iv.into()
    }

    /// Encrypts `plaintext` in place, authenticating `aad` too; returns the tag.
    pub(crate) fn seal(
        &self,
        ssrc: u32,
        index: u64,
        aad: &[u8],
        plaintext: &mut [u8],
    ) -> Result<[u8; 16], SrtpError> {
        let tag = self
            .aead
            .encrypt_in_place_detached(&self.nonce(ssrc, index), aad, plaintext)
            .map_err(|_| SrtpError::BufferTooSmall)?;
        Ok(tag.into())
    }

    /// Verifies (constant time, inside `aes-gcm`) and only then decrypts.
    pub(crate) fn open(
        &self,
        ssrc: u32,
        index: u64,
        aad: &[u8],
        ciphertext: &mut [u8],
        tag: &[u8],
    ) -> Result<(), SrtpError> {
        let tag: [u8; 16] = tag.try_into().map_err(|_| SrtpError::AuthFailed)?;
        self.aead
            .decrypt_in_place_detached(&self.nonce(ssrc, index), aad, ciphertext, &tag.into())
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
