//! Sender report, SR (RFC 3550 §6.4.1): sender info, then up to 31 report blocks.

use super::report_block::{report_blocks, REPORT_BLOCK_LEN};
use super::{sender_ssrc, Feedback, RtcpError};
use crate::bytes::read_u32;

/// SR sender info: SSRC, NTP (8), RTP ts, packet count, octet count.
const SR_FIXED_LEN: usize = 24;

pub(super) fn check(body: &[u8], count: usize) -> Result<(), RtcpError> {
    if body.len() < SR_FIXED_LEN {
        return Err(RtcpError::BadBody);
    }
    if body.len() < SR_FIXED_LEN + REPORT_BLOCK_LEN * count {
        return Err(RtcpError::BadCount);
    }
    Ok(())
}

/// The sender info, and the report blocks as a [`Feedback::ReceiverReport`] when there are any.
pub(super) fn parse(body: &[u8], count: usize, out: &mut Vec<Feedback>) -> Result<(), RtcpError> {
    let sender_ssrc = sender_ssrc(body)?;
    let ntp_high = read_u32(body, 4).ok_or(RtcpError::BadBody)?;
    let ntp_low = read_u32(body, 8).ok_or(RtcpError::BadBody)?;
    out.push(Feedback::SenderReport {
        ssrc: sender_ssrc,
        ntp: (u64::from(ntp_high) << 32) | u64::from(ntp_low),
        rtp_ts: read_u32(body, 12).ok_or(RtcpError::BadBody)?,
        packets: read_u32(body, 16).ok_or(RtcpError::BadBody)?,
        octets: read_u32(body, 20).ok_or(RtcpError::BadBody)?,
    });
    if count > 0 {
        let blocks = report_blocks(body.get(SR_FIXED_LEN..).unwrap_or(&[]), count);
        out.push(Feedback::ReceiverReport { sender_ssrc, blocks });
    }
    Ok(())
}
