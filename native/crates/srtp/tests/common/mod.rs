//! Helpers shared by the integration tests: packet builders (and ferry-testkit's seeded
//! generator).
#![allow(dead_code)]

use ferry_srtp::{SrtpContext, SrtpError, SrtpProfile};
pub use ferry_testkit::Rng;

pub const PROFILES: [SrtpProfile; 4] = [
    SrtpProfile::Aes128CmHmacSha1_80,
    SrtpProfile::Aes128CmHmacSha1_32,
    SrtpProfile::AeadAes128Gcm,
    SrtpProfile::AeadAes256Gcm,
];

/// A sender and a receiver context sharing one random master key.
pub fn context_pair(profile: SrtpProfile, rng: &mut Rng) -> (SrtpContext, SrtpContext) {
    let key = rng.bytes(profile.master_key_len());
    let salt = rng.bytes(profile.master_salt_len());
    (
        SrtpContext::new(profile, &key, &salt).expect("sender"),
        SrtpContext::new(profile, &key, &salt).expect("receiver"),
    )
}

/// What a generated RTP packet contains, for checking where encryption applies.
pub struct RtpShape {
    pub header_len: usize,
}

/// Builds an RTP packet with random CSRCs, header extension, payload and padding.
pub fn random_rtp(
    rng: &mut Rng,
    ssrc: u32,
    seq: u16,
    max_payload: usize,
) -> (Vec<u8>, RtpShape) {
    let csrc_count = rng.below(16);
    let with_extension = rng.below(2) == 1;
    let padding = if rng.below(4) == 0 {
        1 + rng.below(255)
    } else {
        0
    };
    let mut packet = vec![
        0x80 | if padding > 0 { 0x20 } else { 0 }
            | if with_extension { 0x10 } else { 0 }
            | csrc_count as u8,
        rng.byte(),
    ];
    packet.extend_from_slice(&seq.to_be_bytes());
    packet.extend_from_slice(&rng.bytes(4));
    packet.extend_from_slice(&ssrc.to_be_bytes());
    for _ in 0..csrc_count {
        packet.extend_from_slice(&rng.bytes(4));
    }
    if with_extension {
        let words = rng.below(6);
        packet.extend_from_slice(&[0xbe, 0xde, 0, words as u8]);
        packet.extend_from_slice(&rng.bytes(words * 4));
    }
    let header_len = packet.len();
    let payload_len = rng.below(max_payload + 1);
    packet.extend_from_slice(&rng.bytes(payload_len));
    if padding > 0 {
        packet.resize(packet.len() + padding - 1, 0);
        packet.push(padding as u8);
    }
    (packet, RtpShape { header_len })
}

/// A simple RTP packet: fixed header and `payload_len` bytes.
pub fn plain_rtp(ssrc: u32, seq: u16, payload_len: usize) -> Vec<u8> {
    let mut packet = vec![0x80, 111];
    packet.extend_from_slice(&seq.to_be_bytes());
    packet.extend_from_slice(&(u32::from(seq) * 960).to_be_bytes());
    packet.extend_from_slice(&ssrc.to_be_bytes());
    packet.extend((0..payload_len).map(|i| (i as u8) ^ (seq as u8)));
    packet
}

/// A compound-looking RTCP packet (SR/RR/SDES/BYE/RTPFB/PSFB) with a random body.
pub fn random_rtcp(rng: &mut Rng, ssrc: u32, max_words: usize) -> Vec<u8> {
    let words = rng.below(max_words + 1);
    let mut packet = vec![0x80 | rng.below(32) as u8, 200 + rng.below(7) as u8];
    packet.extend_from_slice(&((words + 1) as u16).to_be_bytes());
    packet.extend_from_slice(&ssrc.to_be_bytes());
    packet.extend_from_slice(&rng.bytes(words * 4));
    packet
}

pub fn protect_rtp(ctx: &mut SrtpContext, plain: &[u8]) -> Vec<u8> {
    let mut buf = plain.to_vec();
    buf.resize(plain.len() + ctx.profile().rtp_overhead(), 0);
    let len = ctx.protect_rtp(&mut buf, plain.len()).expect("protect_rtp");
    assert_eq!(len, plain.len() + ctx.profile().rtp_overhead());
    buf.truncate(len);
    buf
}

pub fn unprotect_rtp(ctx: &mut SrtpContext, protected: &[u8]) -> Result<Vec<u8>, SrtpError> {
    let mut buf = protected.to_vec();
    let len = ctx.unprotect_rtp(&mut buf, protected.len())?;
    buf.truncate(len);
    Ok(buf)
}

pub fn protect_rtcp(ctx: &mut SrtpContext, plain: &[u8]) -> Vec<u8> {
    let mut buf = plain.to_vec();
    buf.resize(plain.len() + ctx.profile().rtcp_overhead(), 0);
    let len = ctx
        .protect_rtcp(&mut buf, plain.len())
        .expect("protect_rtcp");
    assert_eq!(len, plain.len() + ctx.profile().rtcp_overhead());
    buf.truncate(len);
    buf
}

pub fn unprotect_rtcp(ctx: &mut SrtpContext, protected: &[u8]) -> Result<Vec<u8>, SrtpError> {
    let mut buf = protected.to_vec();
    let len = ctx.unprotect_rtcp(&mut buf, protected.len())?;
    buf.truncate(len);
    Ok(buf)
}
