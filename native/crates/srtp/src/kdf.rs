//! SRTP key derivation (RFC 3711 §4.3) with key derivation rate 0, so it runs
//! once per context and never per packet.
//!
//! The PRF is AES in counter mode keyed with the master key (§4.3.3): AES-128
//! for the AES_CM and AEAD_AES_128_GCM profiles, AES-256 for AEAD_AES_256_GCM
//! (RFC 7714 §11, RFC 6188 §3).

use aes::cipher::{BlockEncrypt, KeyInit};
use aes::{Aes128, Aes256};

use crate::SrtpError;

/// Key derivation labels, RFC 3711 §4.3.1 and §4.3.2.
#[derive(Clone, Copy, Debug)]
#[repr(u8)]
pub(crate) enum Label {
    RtpEncryption = 0x00,
    RtpAuthentication = 0x01,
    RtpSalt = 0x02,
    RtcpEncryption = 0x03,
    RtcpAuthentication = 0x04,
    RtcpSalt = 0x05,
}

/// The salt as the PRF sees it: 112 bits. RFC 7714's 96-bit master salt is
/// zero-extended on the right, as libsrtp and every interoperating
/// implementation do, so it fills the same high-order octets of the IV.
const PRF_SALT_LEN: usize = 14;

/// AES-CM PRF keyed with one master key.
// Lives only for the duration of `SrtpContext::new`.
#[allow(clippy::large_enum_variant)]
pub(crate) enum MasterKeyPrf {
    Aes128(Aes128),
    Aes256(Aes256),
}

impl MasterKeyPrf {
    pub(crate) fn new(master_key: &[u8]) -> Result<Self, SrtpError> {
        match master_key.len() {
            16 => Aes128::new_from_slice(master_key)
                .map(MasterKeyPrf::Aes128)
                .map_err(|_| SrtpError::BadKeyLength),
            32 => Aes256::new_from_slice(master_key)
                .map(MasterKeyPrf::Aes256)
                .map_err(|_| SrtpError::BadKeyLength),
            _ => Err(SrtpError::BadKeyLength),
        }
    }

    /// Fills `out` with the session key for `label` (RFC 3711 §4.3.1):
    /// key_id = label || r with r = 0 (rate 0), x = key_id XOR master_salt,
    /// output = AES-CM keystream starting at IV = x * 2^16.
    pub(crate) fn derive(
        &self,
        master_salt: &[u8],
        label: Label,
        out: &mut [u8],
    ) -> Result<(), SrtpError> {
        if master_salt.len() > PRF_SALT_LEN {
            return Err(SrtpError::BadKeyLength);
        }
        let mut iv = [0u8; 16];
        iv.get_mut(..master_salt.len())
            .ok_or(SrtpError::BadKeyLength)?
            .copy_from_slice(master_salt);
        // The label is the top octet of the 56-bit key_id, which is aligned to
        // the low end of the 112-bit salt: octet 7 of the IV.
        iv[7] ^= label as u8;
        for (block_number, chunk) in out.chunks_mut(16).enumerate() {
            let counter = u16::try_from(block_number).map_err(|_| SrtpError::BadKeyLength)?;
            let mut block = iv;
            block[14..16].copy_from_slice(&counter.to_be_bytes());
            let block_ref = aes::Block::from_mut_slice(&mut block);
            match self {
                MasterKeyPrf::Aes128(cipher) => cipher.encrypt_block(block_ref),
                MasterKeyPrf::Aes256(cipher) => cipher.encrypt_block(block_ref),
            }
            chunk.copy_from_slice(&block[..chunk.len()]);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn derive_hex(key: &str, salt: &str, label: Label, len: usize) -> String {
        let prf = MasterKeyPrf::new(&hex::decode(key).unwrap()).unwrap();
        let mut out = vec![0u8; len];
        prf.derive(&hex::decode(salt).unwrap(), label, &mut out)
            .unwrap();
        hex::encode_upper(out)
    }

    /// Asserts what `key` and `salt` derive for each (label, length, expected hex).
    fn assert_derives(key: &str, salt: &str, expected: &[(Label, usize, &str)]) {
        for &(label, len, hex) in expected {
            assert_eq!(derive_hex(key, salt, label, len), hex, "{label:?}");
        }
    }

    /// RFC 3711 Appendix B.3.
    #[test]
    fn rfc3711_b3_key_derivation() {
        let key = "E1F97A0D3E018BE0D64FA32C06DE4139";
        let salt = "0EC675AD498AFEEBB6960B3AABE6";
        let authentication_key = concat!(
            "CEBE321F6FF7716B6FD4AB49AF256A15",
            "6D38BAA48F0A0ACF3C34E2359E6CDBCE",
            "E049646C43D9327AD175578EF7227098",
            "6371C10C9A369AC2F94A8C5FBCDDDC25",
            "6D6E919A48B610EF17C2041E47403576",
            "6B68642C59BBFC2F34DB60DBDFB2"
        );
        assert_derives(
            key,
            salt,
            &[
                (Label::RtpEncryption, 16, "C61E7A93744F39EE10734AFE3FF7A087"),
                (Label::RtpSalt, 14, "30CBBC08863D8C85D49DB34A9AE1"),
                (Label::RtpAuthentication, 94, authentication_key),
            ],
        );
    }

    /// RFC 6188 §7.2: the AES-256 PRF used by AEAD_AES_256_GCM.
    #[test]
    fn rfc6188_aes256_prf() {
        let key = "F0F04914B513F2763A1B1FA130F10E2998F6F6E43E4309D1E622A0E332B9F1B6";
        let salt = "3B04803DE51EE7C96423AB5B78D2";
        let encryption_key = "5BA1064E30EC51613CAD926C5A28EF731EC7FB397F70A960653CAF06554CD8C4";
        assert_derives(
            key,
            salt,
            &[
                (Label::RtpEncryption, 32, encryption_key),
                (Label::RtpSalt, 14, "FA31791685CA444A9E07C6C64E93"),
                (
                    Label::RtpAuthentication,
                    20,
                    "FD9C32D39ED5FBB5A9DC96B30818454D1313DC05",
                ),
            ],
        );
    }

    /// A 96-bit GCM master salt is zero-extended to 112 bits (libsrtp, pion).
    /// Expected values computed independently with the `openssl enc
    /// -aes-128-ctr` / `-aes-256-ctr` command line over zero bytes, with
    /// IV = salt || 00 00 || 00 00 and the label XORed into octet 7.
    #[test]
    fn gcm_short_salt_is_zero_extended() {
        let salt = "A0A1A2A3A4A5A6A7A8A9AAAB";
        let key128 = "000102030405060708090A0B0C0D0E0F";
        assert_derives(
            key128,
            salt,
            &[
                (Label::RtpEncryption, 16, "077C6143CB221BC355FF23D5F984A16E"),
                (Label::RtpSalt, 12, "9AF3E95364EBAC9C99C5A7C4"),
                (
                    Label::RtcpEncryption,
                    16,
                    "615DCD9042600666F6FD4D9E4FE4519F",
                ),
            ],
        );
        let key256 = "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F";
        let encryption_key = "B7A435CE454463B760DC82C838468A115C699625AF4B93A0F8220A2A6119C5D0";
        assert_derives(key256, salt, &[(Label::RtpEncryption, 32, encryption_key)]);
    }
}
