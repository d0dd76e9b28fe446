//! Published test vectors. Each hex string was cross-checked against at least
//! two independent public sources (the RFC text as reproduced by other
//! implementations' test suites).

use crate::{SrtpContext, SrtpError, SrtpProfile};

#[path = "../tests/common/buffers.rs"]
mod buffers;
use buffers::{protect_rtcp, protect_rtp, unprotect_rtcp, unprotect_rtp};

fn unhex(text: &str) -> Vec<u8> {
    let compact: String = text.split_whitespace().collect();
    hex::decode(compact).expect("test vector hex")
}

type Unprotect = fn(&mut SrtpContext, &[u8]) -> Result<Vec<u8>, SrtpError>;

/// A fresh receiver takes `protected` once, as `plain`; the same packet again is a replay.
fn assert_unprotects_once(
    profile: SrtpProfile,
    unprotect: Unprotect,
    protected: &[u8],
    plain: Vec<u8>,
) {
    let mut receiver = gcm_context(profile);
    assert_eq!(unprotect(&mut receiver, protected), Ok(plain), "{profile}");
    assert_eq!(
        unprotect(&mut receiver, protected),
        Err(SrtpError::Replayed)
    );
}

// ---------------------------------------------------------------------------
// RFC 7714 §16 (SRTP) and §17 (SRTCP). Session key 00 01 .. 0f (AES-128) or
// 00 .. 1f (AES-256), session salt "Quid pro quo"; keys are given as session
// keys, so the context is built from them directly.
// ---------------------------------------------------------------------------

const GCM_SALT: &str = "517569642070726f2071756f";
const GCM_KEY_128: &str = "000102030405060708090a0b0c0d0e0f";
const GCM_KEY_256: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

/// SSRC 0x5501a0b2, SEQ 0xf17b, ROC 0; payload "Gallia est omnis divisa in partes tres".
const GCM_RTP_PLAIN: &str = "8040f17b 8041f8d3 5501a0b2 47616c6c 69612065 7374206f 6d6e6973
    20646976 69736120 696e2070 61727465 73207472 6573";
/// RFC 7714 §16.1 (AEAD_AES_128_GCM).
const GCM_RTP_128: &str = "8040f17b 8041f8d3 5501a0b2 f24de3a3 fb34de6c acba861c 9d7e4bca
    be633bd5 0d294e6f 42a5f47a 51c7d19b 36de3adf 8833899d 7f27beb1 6a9152cf 765ee439 0cce";
/// RFC 7714 §16.2 (AEAD_AES_256_GCM).
const GCM_RTP_256: &str = "8040f17b 8041f8d3 5501a0b2 32b1de78 a822fe12 ef9f78fa 332e33aa
    b1801238 9a58e2f3 b50b2a02 76ffae0f 1ba63799 b87b7aa3 db36dfff d6b0f9bb 7878d7a7 6c13";

/// Sender SSRC "Mars" (0x4d617273), SRTCP index 0x5d4.
const GCM_RTCP_PLAIN: &str = "81c8000d 4d617273 4e545031 4e545032 52545020 0000042a 0000e930
    4c756e61 deadbeef deadbeef deadbeef deadbeef deadbeef";
/// RFC 7714 §17.1 (AEAD_AES_128_GCM, E = 1).
const GCM_RTCP_128: &str = "81c8000d 4d617273 63e94885 dcdab67c a727d766 2f6b7e99 7ff5c0f7
    6c06f32d c676a5f1 730d6fda 4ce09b46 86303ded 0bb9275b c84aa458 96cf4d2f c5abf872 45d9eade 800005d4";
/// RFC 7714 §17.2 (AEAD_AES_256_GCM, E = 1).
const GCM_RTCP_256: &str = "81c8000d 4d617273 d50ae4d1 f5ce5d30 4ba297e4 7d470c28 2c3ece5d
    bffe0a50 a2eaa5c1 110555be 8415f658 c61de047 6f1b6fad 1d1eb30c 4446839f 57ff6f6c b26ac3be 800005d4";
/// RFC 7714 §17.3 / §17.4: authenticated only (E = 0): packet || tag || index.
const GCM_RTCP_128_UNENCRYPTED_TAIL: &str = "841dd968 3dd78ec9 2ae58790 125f62b3 000005d4";
const GCM_RTCP_256_UNENCRYPTED_TAIL: &str = "91db4afb feee5a97 8fab4393 ed2615fe 000005d4";
const GCM_RTCP_INDEX: u32 = 0x5d4;

fn gcm_context(profile: SrtpProfile) -> SrtpContext {
    let key = match profile {
        SrtpProfile::AeadAes128Gcm => GCM_KEY_128,
        _ => GCM_KEY_256,
    };
    SrtpContext::from_gcm_session_keys(profile, &unhex(key), &unhex(GCM_SALT)).expect("gcm context")
}

fn gcm_cases() -> [(SrtpProfile, &'static str, &'static str, &'static str); 2] {
    [
        (
            SrtpProfile::AeadAes128Gcm,
            GCM_RTP_128,
            GCM_RTCP_128,
            GCM_RTCP_128_UNENCRYPTED_TAIL,
        ),
        (
            SrtpProfile::AeadAes256Gcm,
            GCM_RTP_256,
            GCM_RTCP_256,
            GCM_RTCP_256_UNENCRYPTED_TAIL,
        ),
    ]
}

#[test]
fn rfc7714_16_srtp_protect_and_unprotect() {
    for (profile, protected, _, _) in gcm_cases() {
        let plain = unhex(GCM_RTP_PLAIN);
        let expected = unhex(protected);
        assert_eq!(
            protect_rtp(&mut gcm_context(profile), &plain),
            expected,
            "{profile}"
        );
        assert_unprotects_once(profile, unprotect_rtp, &expected, plain);
    }
}

#[test]
fn rfc7714_17_srtcp_protect_and_unprotect() {
    for (profile, _, protected, _) in gcm_cases() {
        let plain = unhex(GCM_RTCP_PLAIN);
        let expected = unhex(protected);
        // The sender's SRTCP index starts at 0 (RFC 3711 §3.4): the 0x5d4-th
        // packet is the vector's.
        let mut sender = gcm_context(profile);
        for _ in 0..GCM_RTCP_INDEX {
            protect_rtcp(&mut sender, &plain);
        }
        assert_eq!(protect_rtcp(&mut sender, &plain), expected, "{profile}");
        assert_unprotects_once(profile, unprotect_rtcp, &expected, plain);
    }
}

#[test]
fn rfc7714_17_srtcp_unencrypted_is_accepted() {
    for (profile, _, _, tail) in gcm_cases() {
        let plain = unhex(GCM_RTCP_PLAIN);
        let mut wire = plain.clone();
        wire.extend_from_slice(&unhex(tail));
        let mut receiver = gcm_context(profile);
        assert_eq!(
            unprotect_rtcp(&mut receiver, &wire),
            Ok(plain.clone()),
            "{profile}"
        );

        // Flipping the E bit must break authentication.
        let mut flipped = wire.clone();
        let last = flipped.len() - 4;
        flipped[last] |= 0x80;
        let mut receiver = gcm_context(profile);
        assert_eq!(
            unprotect_rtcp(&mut receiver, &flipped),
            Err(SrtpError::AuthFailed)
        );
    }
}

// ---------------------------------------------------------------------------
// AES_CM_128_HMAC_SHA1_80 reference packets of libsrtp's test driver
// (srtp_driver.c): master key/salt of RFC 3711 B.3, SSRC 0xcafebabe.
// ---------------------------------------------------------------------------

const CM_MASTER_KEY: &str = "e1f97a0d3e018be0d64fa32c06de4139";
const CM_MASTER_SALT: &str = "0ec675ad498afeebb6960b3aabe6";
const CM_RTP_PLAIN: &str = "800f1234 decafbad cafebabe abababab abababab abababab abababab";
const CM_RTP_80: &str =
    "800f1234 decafbad cafebabe 4e55dc4c e79978d8 8ca4d215 949d2402 b78d6acc 99ea179b 8dbb";
const CM_RTCP_PLAIN: &str = "81c8000b cafebabe abababab abababab abababab abababab";
/// SRTCP index 1 (libsrtp's first packet); ours starts at 0, so it is our second.
const CM_RTCP_80: &str =
    "81c8000b cafebabe 7128035b e487b9bd bef89041 f977a5a8 80000001 993e08cd 54d6c123 0798";

fn cm_context(profile: SrtpProfile) -> SrtpContext {
    SrtpContext::new(profile, &unhex(CM_MASTER_KEY), &unhex(CM_MASTER_SALT)).expect("cm context")
}

#[test]
fn libsrtp_reference_packets_aes_cm_80() {
    let profile = SrtpProfile::Aes128CmHmacSha1_80;
    let rtp_plain = unhex(CM_RTP_PLAIN);
    let rtp_protected = unhex(CM_RTP_80);
    assert_eq!(
        protect_rtp(&mut cm_context(profile), &rtp_plain),
        rtp_protected
    );
    assert_eq!(
        unprotect_rtp(&mut cm_context(profile), &rtp_protected),
        Ok(rtp_plain)
    );

    let rtcp_plain = unhex(CM_RTCP_PLAIN);
    let rtcp_protected = unhex(CM_RTCP_80);
    let mut sender = cm_context(profile);
    let first = protect_rtcp(&mut sender, &rtcp_plain);
    assert_eq!(
        &first[first.len() - 14..first.len() - 10],
        &[0x80, 0, 0, 0],
        "first SRTCP index is 0"
    );
    assert_eq!(protect_rtcp(&mut sender, &rtcp_plain), rtcp_protected);
    let mut receiver = cm_context(profile);
    assert_eq!(
        unprotect_rtcp(&mut receiver, &rtcp_protected),
        Ok(rtcp_plain.clone())
    );
    assert_eq!(unprotect_rtcp(&mut receiver, &first), Ok(rtcp_plain));
    assert_eq!(
        unprotect_rtcp(&mut receiver, &rtcp_protected),
        Err(SrtpError::Replayed)
    );
}

/// `_32` uses the same keys and MAC with the SRTP tag truncated to 32 bits,
/// and keeps the 80-bit tag for SRTCP (RFC 4568 §6.2.2, RFC 5764 §4.1.2).
#[test]
fn aes_cm_32_is_80_truncated_for_srtp_only() {
    let with = |profile, protect: fn(&mut SrtpContext, &[u8]) -> Vec<u8>, plain: &[u8]| {
        protect(&mut cm_context(profile), plain)
    };
    let (tag_80, tag_32) = (
        SrtpProfile::Aes128CmHmacSha1_80,
        SrtpProfile::Aes128CmHmacSha1_32,
    );
    let rtp_plain = unhex(CM_RTP_PLAIN);
    let protected_80 = with(tag_80, protect_rtp, &rtp_plain);
    let protected_32 = with(tag_32, protect_rtp, &rtp_plain);
    assert_eq!(protected_32.len(), rtp_plain.len() + 4);
    assert_eq!(protected_32[..], protected_80[..rtp_plain.len() + 4]);

    let rtcp_plain = unhex(CM_RTCP_PLAIN);
    assert_eq!(
        with(tag_32, protect_rtcp, &rtcp_plain),
        with(tag_80, protect_rtcp, &rtcp_plain)
    );
}
