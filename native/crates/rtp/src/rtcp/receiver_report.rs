//! Receiver report, RR (RFC 3550 §6.4.2): the sender's SSRC, then up to 31 report blocks.

use super::report_block::{report_blocks, REPORT_BLOCK_LEN};
use super::{sender_ssrc, Feedback, RtcpError};

pub(super) fn check(body: &[u8], count: usize) -> Result<(), RtcpError> {
    if body.len() < 4 {
        return Err(RtcpError::BadBody);
    }
    if body.len() < 4 + REPORT_BLOCK_LEN * count {
        return Err(RtcpError::BadCount);
    }
    Ok(())
}

pub(super) fn parse(body: &[u8], count: usize, out: &mut Vec<Feedback>) -> Result<(), RtcpError> {
    let sender_ssrc = sender_ssrc(body)?;
    let blocks = report_blocks(body.get(4..).unwrap_or(&[]), count);
    out.push(Feedback::ReceiverReport { sender_ssrc, blocks });
    Ok(())
}
