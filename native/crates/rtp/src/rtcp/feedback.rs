//! Transport-layer (RTPFB) and payload-specific (PSFB) feedback (RFC 4585
//! §6.1): sender SSRC, media source SSRC, then the FCI of the message type
//! the FMT field names.

use super::{fir, nack, remb, sender_ssrc, Feedback, RtcpError};
use super::{FMT_AFB, FMT_FIR, FMT_NACK, FMT_PLI, FMT_TRANSPORT_CC, PT_PSFB, PT_RTPFB};
use crate::bytes::read_u32;

/// The message of one feedback packet. Transport-cc is only reported (its
/// FCI is read by `bwe`); other formats produce nothing.
pub(super) fn parse(packet_type: u8, fmt: u8, body: &[u8], out: &mut Vec<Feedback>) -> Result<(), RtcpError> {
    let sender_ssrc = sender_ssrc(body)?;
    let media_ssrc = read_u32(body, 4).ok_or(RtcpError::BadBody)?;
    let fci = body.get(8..).unwrap_or(&[]);
    match (packet_type, fmt) {
        (PT_RTPFB, FMT_NACK) => nack::parse(sender_ssrc, media_ssrc, fci, out),
        (PT_RTPFB, FMT_TRANSPORT_CC) => out.push(Feedback::TransportCc { sender_ssrc, media_ssrc }),
        (PT_PSFB, FMT_PLI) => out.push(Feedback::Pli { sender_ssrc, media_ssrc }),
        (PT_PSFB, FMT_FIR) => fir::parse(sender_ssrc, fci, out),
        (PT_PSFB, FMT_AFB) => remb::parse(sender_ssrc, fci, out)?,
        _ => {}
    }
    Ok(())
}
