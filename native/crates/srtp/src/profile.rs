//! SRTP protection profiles and their parameters.

/// The SRTP crypto suites ferry supports.
///
/// * `Aes128CmHmacSha1_80` / `_32`: RFC 3711 §4.1.1 (AES-CM) + §4.2 (HMAC-SHA1),
///   named by RFC 4568 §6.2 (SDES) and RFC 5764 §4.1.2 (DTLS-SRTP).
/// * `AeadAes128Gcm` / `AeadAes256Gcm`: RFC 7714.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SrtpProfile {
    Aes128CmHmacSha1_80,
    Aes128CmHmacSha1_32,
    AeadAes128Gcm,
    AeadAes256Gcm,
}

/// Bytes of the SRTCP trailer word holding the E flag and the 31-bit index
/// (RFC 3711 §3.4).
pub(crate) const SRTCP_INDEX_LEN: usize = 4;
/// HMAC-SHA1 tag length used by SRTCP for both AES-CM profiles: RFC 4568 §6.2.2
/// and RFC 5764 §4.1.2 fix the SRTCP tag at 80 bits even for `_32`.
pub(crate) const SRTCP_HMAC_TAG_LEN: usize = 10;
/// AES-GCM tag length (RFC 7714 §5: 16 octets for both key sizes).
pub(crate) const GCM_TAG_LEN: usize = 16;

impl SrtpProfile {
    /// Every profile, in preference order (AEAD first).
    pub const ALL: [SrtpProfile; 4] = [
        SrtpProfile::AeadAes128Gcm,
        SrtpProfile::AeadAes256Gcm,
        SrtpProfile::Aes128CmHmacSha1_80,
        SrtpProfile::Aes128CmHmacSha1_32,
    ];

    /// Parses an SDES crypto-suite name (RFC 4568 / RFC 7714 §14.1) or a
    /// DTLS-SRTP protection-profile name (RFC 5764 §4.1.2 / RFC 7714 §14.2,
    /// plus OpenSSL's spelling `SRTP_AES128_CM_SHA1_*`).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "AES_CM_128_HMAC_SHA1_80"
            | "SRTP_AES128_CM_SHA1_80"
            | "SRTP_AES128_CM_HMAC_SHA1_80" => Some(SrtpProfile::Aes128CmHmacSha1_80),
            "AES_CM_128_HMAC_SHA1_32"
            | "SRTP_AES128_CM_SHA1_32"
            | "SRTP_AES128_CM_HMAC_SHA1_32" => Some(SrtpProfile::Aes128CmHmacSha1_32),
            "AEAD_AES_128_GCM" | "SRTP_AEAD_AES_128_GCM" => Some(SrtpProfile::AeadAes128Gcm),
            "AEAD_AES_256_GCM" | "SRTP_AEAD_AES_256_GCM" => Some(SrtpProfile::AeadAes256Gcm),
            _ => None,
        }
    }

    /// The SDES (RFC 4568 / RFC 7714) name of the profile.
    pub fn name(&self) -> &'static str {
        match self {
            SrtpProfile::Aes128CmHmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            SrtpProfile::Aes128CmHmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
            SrtpProfile::AeadAes128Gcm => "AEAD_AES_128_GCM",
            SrtpProfile::AeadAes256Gcm => "AEAD_AES_256_GCM",
        }
    }

    /// The DTLS-SRTP protection-profile name (RFC 5764 §4.1.2, RFC 7714 §14.2).
    pub fn dtls_name(&self) -> &'static str {
        match self {
            SrtpProfile::Aes128CmHmacSha1_80 => "SRTP_AES128_CM_HMAC_SHA1_80",
            SrtpProfile::Aes128CmHmacSha1_32 => "SRTP_AES128_CM_HMAC_SHA1_32",
            SrtpProfile::AeadAes128Gcm => "SRTP_AEAD_AES_128_GCM",
            SrtpProfile::AeadAes256Gcm => "SRTP_AEAD_AES_256_GCM",
        }
    }

    /// The DTLS-SRTP profile identifier (RFC 5764 §4.1.2, RFC 7714 §14.2).
    pub fn dtls_id(&self) -> u16 {
        match self {
            SrtpProfile::Aes128CmHmacSha1_80 => 0x0001,
            SrtpProfile::Aes128CmHmacSha1_32 => 0x0002,
            SrtpProfile::AeadAes128Gcm => 0x0007,
            SrtpProfile::AeadAes256Gcm => 0x0008,
        }
    }

    /// Inverse of [`SrtpProfile::dtls_id`].
    pub fn from_dtls_id(id: u16) -> Option<Self> {
        SrtpProfile::ALL
            .into_iter()
            .find(|profile| profile.dtls_id() == id)
    }

    /// Master key length in bytes.
    pub fn master_key_len(&self) -> usize {
        match self {
            SrtpProfile::Aes128CmHmacSha1_80
            | SrtpProfile::Aes128CmHmacSha1_32
            | SrtpProfile::AeadAes128Gcm => 16,
            SrtpProfile::AeadAes256Gcm => 32,
        }
    }

    /// Master salt length in bytes (112 bits for AES-CM, 96 bits for GCM: RFC 7714 §11).
    pub fn master_salt_len(&self) -> usize {
        match self {
            SrtpProfile::Aes128CmHmacSha1_80 | SrtpProfile::Aes128CmHmacSha1_32 => 14,
            SrtpProfile::AeadAes128Gcm | SrtpProfile::AeadAes256Gcm => 12,
        }
    }

    /// Bytes `protect_rtp` appends: the authentication tag.
    pub fn rtp_overhead(&self) -> usize {
        self.rtp_tag_len()
    }

    /// Bytes `protect_rtcp` appends: E flag + SRTCP index word and the tag
    /// (RFC 3711 §3.4; RFC 7714 §9 for GCM).
    pub fn rtcp_overhead(&self) -> usize {
        SRTCP_INDEX_LEN + self.rtcp_tag_len()
    }

    /// Length of the SRTP authentication tag.
    pub(crate) fn rtp_tag_len(&self) -> usize {
        match self {
            SrtpProfile::Aes128CmHmacSha1_80 => 10,
            SrtpProfile::Aes128CmHmacSha1_32 => 4,
            SrtpProfile::AeadAes128Gcm | SrtpProfile::AeadAes256Gcm => GCM_TAG_LEN,
        }
    }

    /// Length of the SRTCP authentication tag.
    pub(crate) fn rtcp_tag_len(&self) -> usize {
        match self {
            SrtpProfile::Aes128CmHmacSha1_80 | SrtpProfile::Aes128CmHmacSha1_32 => {
                SRTCP_HMAC_TAG_LEN
            }
            SrtpProfile::AeadAes128Gcm | SrtpProfile::AeadAes256Gcm => GCM_TAG_LEN,
        }
    }
}

impl std::fmt::Display for SrtpProfile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_lengths_match_the_rfcs() {
        for profile in SrtpProfile::ALL {
            assert_eq!(SrtpProfile::from_name(profile.name()), Some(profile));
            assert_eq!(SrtpProfile::from_name(profile.dtls_name()), Some(profile));
            assert_eq!(SrtpProfile::from_dtls_id(profile.dtls_id()), Some(profile));
        }
        // The DTLS-SRTP names of RFC 5764 §4.1.2 and RFC 7714 §14.2.
        for (dtls_name, profile) in [
            ("SRTP_AES128_CM_SHA1_80", SrtpProfile::Aes128CmHmacSha1_80),
            ("SRTP_AES128_CM_SHA1_32", SrtpProfile::Aes128CmHmacSha1_32),
            ("SRTP_AEAD_AES_128_GCM", SrtpProfile::AeadAes128Gcm),
            ("SRTP_AEAD_AES_256_GCM", SrtpProfile::AeadAes256Gcm),
        ] {
            assert_eq!(SrtpProfile::from_name(dtls_name), Some(profile));
        }
        assert_eq!(SrtpProfile::from_name("aes_cm_128_hmac_sha1_80"), None);
        assert_eq!(SrtpProfile::from_name(""), None);

        let table: Vec<(usize, usize, usize, usize)> = [
            SrtpProfile::Aes128CmHmacSha1_80,
            SrtpProfile::Aes128CmHmacSha1_32,
            SrtpProfile::AeadAes128Gcm,
            SrtpProfile::AeadAes256Gcm,
        ]
        .iter()
        .map(|p| {
            (
                p.master_key_len(),
                p.master_salt_len(),
                p.rtp_overhead(),
                p.rtcp_overhead(),
            )
        })
        .collect();
        assert_eq!(
            table,
            vec![
                (16, 14, 10, 14),
                (16, 14, 4, 14),
                (16, 12, 16, 20),
                (32, 12, 16, 20)
            ]
        );
    }
}
