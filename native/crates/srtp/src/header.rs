//! Just enough RTP/RTCP header parsing to split authenticated-only bytes from
//! encrypted bytes (RFC 3550 §5.1, §5.3.1, §6.4.1).

use crate::SrtpError;

/// Fixed RTP header: V/P/X/CC, M/PT, sequence number, timestamp, SSRC.
pub(crate) const RTP_FIXED_HEADER_LEN: usize = 12;
/// RTCP header word plus the sender SSRC, left in clear by SRTCP (RFC 3711 §3.4).
pub(crate) const RTCP_CLEAR_PREFIX_LEN: usize = 8;

/// The fields SRTP needs from an RTP header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RtpHeader {
    /// Fixed header + CSRC list + header extension: authenticated, never
    /// encrypted (RFC 3711 §3.1).
    pub(crate) len: usize,
    pub(crate) seq: u16,
    pub(crate) ssrc: u32,
}

fn read_u16(bytes: &[u8], at: usize) -> Result<u16, SrtpError> {
    let field = bytes.get(at..at + 2).ok_or(SrtpError::TooShort)?;
    Ok(u16::from_be_bytes([field[0], field[1]]))
}

pub(crate) fn read_u32(bytes: &[u8], at: usize) -> Result<u32, SrtpError> {
    let field = bytes.get(at..at + 4).ok_or(SrtpError::TooShort)?;
    Ok(u32::from_be_bytes([field[0], field[1], field[2], field[3]]))
}

/// Parses the RTP header at the start of `packet` (which must not include any
/// SRTP trailer). Padding (the P bit) is part of the payload and is left alone.
pub(crate) fn parse_rtp_header(packet: &[u8]) -> Result<RtpHeader, SrtpError> {
    if packet.len() < RTP_FIXED_HEADER_LEN {
        return Err(SrtpError::TooShort);
    }
    let first = packet[0];
    if first >> 6 != 2 {
        return Err(SrtpError::BadHeader);
    }
    let csrc_count = usize::from(first & 0x0f);
    let mut len = RTP_FIXED_HEADER_LEN + 4 * csrc_count;
    if first & 0x10 != 0 {
        // RFC 3550 §5.3.1: 16-bit profile field, 16-bit length in 32-bit words
        // not counting the 4-byte extension header itself.
        let words = read_u16(packet, len + 2).map_err(|_| SrtpError::BadHeader)?;
        len += 4 + 4 * usize::from(words);
    }
    if len > packet.len() {
        return Err(SrtpError::BadHeader);
    }
    Ok(RtpHeader {
        len,
        seq: read_u16(packet, 2)?,
        ssrc: read_u32(packet, 8)?,
    })
}

/// Checks the RTCP version field and returns the sender SSRC of the first
/// packet of a compound RTCP packet.
pub(crate) fn parse_rtcp_ssrc(packet: &[u8]) -> Result<u32, SrtpError> {
    if packet.len() < RTCP_CLEAR_PREFIX_LEN {
        return Err(SrtpError::TooShort);
    }
    if packet[0] >> 6 != 2 {
        return Err(SrtpError::BadHeader);
    }
    read_u32(packet, 4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_lengths() {
        let mut packet = vec![
            0x80, 0x60, 0x12, 0x34, 0, 0, 0, 1, 0xde, 0xad, 0xbe, 0xef, 9, 9,
        ];
        assert_eq!(
            parse_rtp_header(&packet),
            Ok(RtpHeader {
                len: 12,
                seq: 0x1234,
                ssrc: 0xdeadbeef
            })
        );
        packet[0] = 0x82; // two CSRCs need 8 more bytes
        assert_eq!(parse_rtp_header(&packet), Err(SrtpError::BadHeader));
        packet.extend_from_slice(&[0; 6]);
        assert_eq!(parse_rtp_header(&packet).map(|h| h.len), Ok(20));
        packet[0] = 0x90; // extension header with length 1 word
        packet[12..16].copy_from_slice(&[0xbe, 0xde, 0x00, 0x01]);
        assert_eq!(parse_rtp_header(&packet).map(|h| h.len), Ok(20));
        packet[15] = 2;
        assert_eq!(parse_rtp_header(&packet), Err(SrtpError::BadHeader));
        packet[0] = 0x40;
        assert_eq!(parse_rtp_header(&packet), Err(SrtpError::BadHeader));
        assert_eq!(parse_rtp_header(&packet[..11]), Err(SrtpError::TooShort));
    }
}
