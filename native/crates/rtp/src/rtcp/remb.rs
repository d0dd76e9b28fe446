//! Receiver estimated maximum bitrate, REMB (draft-alvestrand-rmcat-remb
//! §2.2): an application-layer feedback (PSFB 15) whose FCI starts "REMB",
//! then an SSRC count, a 6-bit exponent / 18-bit mantissa bitrate, the SSRCs.

use super::{push_header, Feedback, RtcpError, FMT_AFB, PT_PSFB};
use crate::bytes::{read_u24, read_u32};

const REMB_IDENTIFIER: &[u8; 4] = b"REMB";

/// If an AFB FCI is a REMB message, its number of SSRCs.
fn ssrc_count(fci: &[u8]) -> Option<usize> {
    if fci.get(0..4)? != REMB_IDENTIFIER {
        return None;
    }
    Some(usize::from(*fci.get(4)?))
}

/// A REMB FCI holds the SSRCs it counts (other AFB messages are not checked).
pub(super) fn fci_fits(fci: &[u8]) -> bool {
    !matches!(ssrc_count(fci), Some(n) if fci.len() < 8 + 4 * n)
}

/// Decodes REMB's 6-bit exponent / 18-bit mantissa, saturating at u64::MAX.
fn bitrate(exp_mantissa: u32) -> u64 {
    let exponent = (exp_mantissa >> 18) & 0x3f;
    let mantissa = u128::from(exp_mantissa & 0x3_ffff);
    u64::try_from(mantissa << exponent).unwrap_or(u64::MAX)
}

/// A [`Feedback::Remb`] if the AFB FCI is a REMB message; nothing otherwise.
pub(super) fn parse(sender_ssrc: u32, fci: &[u8], out: &mut Vec<Feedback>) -> Result<(), RtcpError> {
    if let Some(n) = ssrc_count(fci) {
        let exp_mantissa = read_u24(fci, 5).ok_or(RtcpError::BadBody)?;
        let ssrcs = (0..n).filter_map(|index| read_u32(fci, 8 + 4 * index)).collect();
        out.push(Feedback::Remb { sender_ssrc, bitrate_bps: bitrate(exp_mantissa), ssrcs });
    }
    Ok(())
}

/// REMB (draft-alvestrand-rmcat-remb §2.2). The bitrate is encoded as an
/// 18-bit mantissa and 6-bit exponent, rounded down (never announce more
/// than asked). At most 255 SSRCs fit the 8-bit count; extra ones are dropped.
pub fn build_remb(sender_ssrc: u32, bitrate_bps: u64, ssrcs: &[u32]) -> Vec<u8> {
    let ssrcs = ssrcs.get(..ssrcs.len().min(255)).unwrap_or(&[]);
    let mut exponent = 0u32;
    while (bitrate_bps >> exponent) >= (1 << 18) {
        exponent += 1;
    }
    let mantissa = (bitrate_bps >> exponent) as u32;
    let total_len = 20 + 4 * ssrcs.len();
    let mut out = Vec::with_capacity(total_len);
    push_header(&mut out, FMT_AFB, PT_PSFB, total_len);
    out.extend_from_slice(&sender_ssrc.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(REMB_IDENTIFIER);
    out.push(ssrcs.len() as u8);
    let exp_mantissa = (exponent << 18) | mantissa;
    out.extend_from_slice(&exp_mantissa.to_be_bytes()[1..]);
    for ssrc in ssrcs {
        out.extend_from_slice(&ssrc.to_be_bytes());
    }
    out
}
