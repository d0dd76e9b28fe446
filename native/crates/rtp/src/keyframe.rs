//! Keyframe detection from an RTP payload, without decoding.
//!
//! A subscriber switched to another simulcast layer can only decode the new
//! layer from a keyframe on, so the media engine holds a switch until the
//! first packet of a keyframe of the new layer arrives. This module answers
//! "is this packet the start of a keyframe?" for the video codecs WebRTC
//! negotiates. Every read is bounds-checked; malformed input answers `false`.

/// Video codecs whose keyframes can be recognised from the RTP payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VideoCodec {
    Vp8,
    Vp9,
    H264,
}

impl VideoCodec {
    /// Parses a codec name as written in SDP (`a=rtpmap`), case-insensitively.
    pub fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "vp8" => Some(Self::Vp8),
            "vp9" => Some(Self::Vp9),
            "h264" => Some(Self::H264),
            _ => None,
        }
    }
}

/// True when `payload` (the RTP payload, after header, extensions and before padding) is
/// the first packet of a keyframe in `codec`.
pub fn is_keyframe(codec: VideoCodec, payload: &[u8]) -> bool {
    match codec {
        VideoCodec::Vp8 => vp8_is_keyframe(payload),
        VideoCodec::Vp9 => vp9_is_keyframe(payload),
        VideoCodec::H264 => h264_is_keyframe(payload),
    }
}

// ---- VP8 (RFC 7741) -------------------------------------------------------------------------

const VP8_X: u8 = 0x80;
const VP8_S: u8 = 0x10;
const VP8_PID_MASK: u8 = 0x07;
const VP8_I: u8 = 0x80;
const VP8_L: u8 = 0x40;
const VP8_T: u8 = 0x20;
const VP8_K: u8 = 0x10;
const VP8_PICTURE_ID_M: u8 = 0x80;
/// RFC 7741 §4.3: bit 0 of the payload header's first byte is P, the *inverse* key frame flag.
const VP8_INVERSE_KEYFRAME: u8 = 0x01;

fn vp8_is_keyframe(payload: &[u8]) -> bool {
    // RFC 7741 §4.2: the payload descriptor.
    let Some(&first) = payload.first() else { return false };
    let mut offset = 1;
    if first & VP8_X != 0 {
        let Some(&ext) = payload.get(offset) else { return false };
        offset += 1;
        if ext & VP8_I != 0 {
            // PictureID is 7 bits, or 15 when its M bit is set.
            let Some(&pid) = payload.get(offset) else { return false };
            offset += if pid & VP8_PICTURE_ID_M != 0 { 2 } else { 1 };
        }
        if ext & VP8_L != 0 {
            offset += 1; // TL0PICIDX
        }
        if ext & (VP8_T | VP8_K) != 0 {
            offset += 1; // TID | Y | KEYIDX share one octet
        }
    }
    // The payload header (§4.3) is only present at the start of partition 0: S=1, PID=0.
    if first & VP8_S == 0 || first & VP8_PID_MASK != 0 {
        return false;
    }
    match payload.get(offset) {
        Some(&header) => header & VP8_INVERSE_KEYFRAME == 0,
        None => false,
    }
}

// ---- VP9 (RFC 9628, formerly draft-ietf-payload-vp9) ---------------------------------------

/// The descriptor walked whole (`vp9::parse`, so a truncated one is refused), then: beginning
/// of a frame (B), not inter-picture predicted (P=0), of the base spatial layer.
fn vp9_is_keyframe(payload: &[u8]) -> bool {
    crate::vp9::parse(payload).is_some_and(|d| d.starts_keyframe())
}

// ---- H.264 (RFC 6184) -----------------------------------------------------------------------

const H264_TYPE_MASK: u8 = 0x1f;
const H264_IDR: u8 = 5;
const H264_SPS: u8 = 7;
const H264_STAP_A: u8 = 24;
const H264_FU_A: u8 = 28;
const H264_FU_START: u8 = 0x80;

fn h264_starts_keyframe(nal_type: u8) -> bool {
    // An encoder sends SPS (and PPS) right before an IDR; either starts a decodable picture.
    nal_type == H264_IDR || nal_type == H264_SPS
}

fn h264_is_keyframe(payload: &[u8]) -> bool {
    let Some(&header) = payload.first() else { return false };
    match header & H264_TYPE_MASK {
        // §5.6 single NAL unit packet: the NAL header is the payload header.
        t @ 1..=23 => h264_starts_keyframe(t),
        // §5.7.1 STAP-A: 16-bit size, then a NAL unit, repeated.
        H264_STAP_A => {
            let mut offset = 1;
            while let (Some(&hi), Some(&lo)) = (payload.get(offset), payload.get(offset + 1)) {
                let size = usize::from(u16::from_be_bytes([hi, lo]));
                offset += 2;
                let Some(&nal) = payload.get(offset) else { return false };
                if size == 0 {
                    return false;
                }
                if h264_starts_keyframe(nal & H264_TYPE_MASK) {
                    return true;
                }
                offset += size;
            }
            false
        }
        // §5.8 FU-A: only the fragment with S set starts the NAL unit.
        H264_FU_A => match payload.get(1) {
            Some(&fu) => fu & H264_FU_START != 0 && h264_starts_keyframe(fu & H264_TYPE_MASK),
            None => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codec_names() {
        assert_eq!(VideoCodec::from_name("VP8"), Some(VideoCodec::Vp8));
        assert_eq!(VideoCodec::from_name("vp9"), Some(VideoCodec::Vp9));
        assert_eq!(VideoCodec::from_name("H264"), Some(VideoCodec::H264));
        assert_eq!(VideoCodec::from_name("opus"), None);
    }

    // VP8 keyframe payload header: P=0, version 0, show_frame=1, then start code 9d 01 2a.
    const VP8_KEY_HEADER: [u8; 6] = [0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a];
    const VP8_DELTA_HEADER: [u8; 3] = [0x11, 0x02, 0x00];

    fn cat(a: &[u8], b: &[u8]) -> Vec<u8> {
        let mut v = a.to_vec();
        v.extend_from_slice(b);
        v
    }

    #[test]
    fn vp8_minimal_descriptor() {
        assert!(is_keyframe(VideoCodec::Vp8, &cat(&[0x10], &VP8_KEY_HEADER)));
        assert!(!is_keyframe(VideoCodec::Vp8, &cat(&[0x10], &VP8_DELTA_HEADER)));
        // Not the start of partition 0: no payload header, whatever the bytes say.
        assert!(!is_keyframe(VideoCodec::Vp8, &cat(&[0x00], &VP8_KEY_HEADER)));
        assert!(!is_keyframe(VideoCodec::Vp8, &cat(&[0x11], &VP8_KEY_HEADER)));
        assert!(!is_keyframe(VideoCodec::Vp8, &[0x10]));
        assert!(!is_keyframe(VideoCodec::Vp8, &[]));
    }

    #[test]
    fn vp8_extended_descriptor() {
        // X, I with a 15-bit picture id, L, T: descriptor of 6 octets.
        let descriptor = [0x90, 0xe0, 0x80 | 0x12, 0x34, 0x05, 0x40];
        assert!(is_keyframe(VideoCodec::Vp8, &cat(&descriptor, &VP8_KEY_HEADER)));
        assert!(!is_keyframe(VideoCodec::Vp8, &cat(&descriptor, &VP8_DELTA_HEADER)));
        // 7-bit picture id and K only: 4 octets.
        let short = [0x90, 0x90, 0x12, 0x20];
        assert!(is_keyframe(VideoCodec::Vp8, &cat(&short, &VP8_KEY_HEADER)));
        assert!(!is_keyframe(VideoCodec::Vp8, &cat(&short, &VP8_DELTA_HEADER)));
        // Truncated: the extension octets promise more than is there.
        assert!(!is_keyframe(VideoCodec::Vp8, &descriptor));
        assert!(!is_keyframe(VideoCodec::Vp8, &[0x90, 0xe0, 0x80]));
        // Misreading the extensions would land on a wrong octet: 0x01 at the header position.
        let odd = [0x90, 0x80, 0x01, 0x10];
        assert!(is_keyframe(VideoCodec::Vp8, &odd));
        let odd_delta = [0x90, 0x80, 0x00, 0x11];
        assert!(!is_keyframe(VideoCodec::Vp8, &odd_delta));
    }

    #[test]
    fn vp9_non_flexible() {
        // I (7-bit pid), L (layer: TID 0, SID 0) + TL0PICIDX, B: start of a keyframe.
        let key = [0x80 | 0x20 | 0x08, 0x11, 0x00, 0x07, 0x82, 0x49];
        assert!(is_keyframe(VideoCodec::Vp9, &key));
        // Same with P: inter-predicted.
        let mut inter = key;
        inter[0] |= 0x40; // P
        assert!(!is_keyframe(VideoCodec::Vp9, &inter));
        // Not the beginning of the frame.
        let mut middle = key;
        middle[0] &= !0x08; // B
        assert!(!is_keyframe(VideoCodec::Vp9, &middle));
        // Upper spatial layer (SID 1) of the keyframe picture is not its first packet.
        let mut upper = key;
        upper[2] = 0x02;
        assert!(!is_keyframe(VideoCodec::Vp9, &upper));
        // Descriptor only, no frame data.
        assert!(!is_keyframe(VideoCodec::Vp9, &key[..4]));
        assert!(!is_keyframe(VideoCodec::Vp9, &key[..2]));
    }

    #[test]
    fn vp9_flexible_and_scalability_structure() {
        // I (15-bit pid), F, B, V; SS: 1 spatial layer, Y (4 octets), G with 1 group of R=1.
        let key = [0x80 | 0x10 | 0x08 | 0x02, 0x81, 0x23, 0x18, 0x01, 0x40, 0x00, 0xf0, 0x01, 0x04, 0x01, 0x82];
        assert!(is_keyframe(VideoCodec::Vp9, &key));
        // Truncate inside the scalability structure.
        assert!(!is_keyframe(VideoCodec::Vp9, &key[..8]));
        assert!(!is_keyframe(VideoCodec::Vp9, &key[..11]));
        // Flexible inter frame with two P_DIFF octets.
        let inter = [0x80 | 0x40 | 0x10 | 0x08, 0x05, 0x03, 0x02, 0x99];
        assert!(!is_keyframe(VideoCodec::Vp9, &inter));
        // Four chained P_DIFFs exceed the three the format allows.
        let too_many = [0x40 | 0x10 | 0x08, 0x03, 0x03, 0x03, 0x03, 0x99];
        assert!(!is_keyframe(VideoCodec::Vp9, &too_many));
        // Minimal: B only, one byte of data.
        assert!(is_keyframe(VideoCodec::Vp9, &[0x08, 0x82]));
        assert!(!is_keyframe(VideoCodec::Vp9, &[0x08]));
    }

    #[test]
    fn h264_single_nal() {
        assert!(is_keyframe(VideoCodec::H264, &[0x65, 0x88, 0x84])); // IDR
        assert!(is_keyframe(VideoCodec::H264, &[0x67, 0x42, 0xe0])); // SPS
        assert!(!is_keyframe(VideoCodec::H264, &[0x68, 0xce])); // PPS
        assert!(!is_keyframe(VideoCodec::H264, &[0x41, 0x9a])); // non-IDR slice
        assert!(!is_keyframe(VideoCodec::H264, &[]));
    }

    #[test]
    fn h264_stap_a() {
        // SPS (3 bytes) + PPS (2 bytes).
        let sps_pps = [0x78, 0x00, 0x03, 0x67, 0x42, 0xe0, 0x00, 0x02, 0x68, 0xce];
        assert!(is_keyframe(VideoCodec::H264, &sps_pps));
        // SEI then IDR: the IDR is found after skipping the first unit.
        let sei_idr = [0x78, 0x00, 0x02, 0x06, 0x05, 0x00, 0x02, 0x65, 0x88];
        assert!(is_keyframe(VideoCodec::H264, &sei_idr));
        // Two non-IDR slices.
        let slices = [0x78, 0x00, 0x02, 0x41, 0x9a, 0x00, 0x02, 0x41, 0x9b];
        assert!(!is_keyframe(VideoCodec::H264, &slices));
        // Size runs past the end before the IDR.
        let overrun = [0x78, 0x00, 0x40, 0x06, 0x05, 0x00, 0x02, 0x65, 0x88];
        assert!(!is_keyframe(VideoCodec::H264, &overrun));
        assert!(!is_keyframe(VideoCodec::H264, &[0x78, 0x00]));
    }

    #[test]
    fn h264_fu_a() {
        assert!(is_keyframe(VideoCodec::H264, &[0x7c, 0x85, 0x88])); // S, IDR
        assert!(!is_keyframe(VideoCodec::H264, &[0x7c, 0x05, 0x88])); // middle fragment of an IDR
        assert!(!is_keyframe(VideoCodec::H264, &[0x7c, 0x45, 0x88])); // end fragment
        assert!(!is_keyframe(VideoCodec::H264, &[0x5c, 0x81, 0x9a])); // S, non-IDR slice
        assert!(!is_keyframe(VideoCodec::H264, &[0x7c]));
    }

    #[test]
    fn random_payloads_never_panic() {
        let mut rng = ferry_testkit::Rng::new(0x9e37_79b9_7f4a_7c15);
        let mut buf = [0u8; 64];
        let mut keyframes = [0usize; 3];
        for _ in 0..100_000 {
            let len = rng.below(65);
            for b in buf.iter_mut().take(len) {
                *b = rng.byte();
            }
            let payload = &buf[..len];
            for (index, codec) in [VideoCodec::Vp8, VideoCodec::Vp9, VideoCodec::H264].into_iter().enumerate() {
                if is_keyframe(codec, payload) {
                    keyframes[index] += 1;
                }
            }
        }
        // Random bytes do look like keyframes sometimes, but never most of the time.
        for count in keyframes {
            assert!(count > 0 && count < 50_000, "{keyframes:?}");
        }
    }
}
