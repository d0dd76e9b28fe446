//! A compound RTCP packet (RFC 3550 §6.1): framing each packet by its common
//! header, iterating them, and checking every body against its type's layout.

use super::{fir, nack, receiver_report, remb, sdes, sender_report};
use super::{RtcpError, FMT_AFB, FMT_FIR, FMT_NACK, FMT_TRANSPORT_CC, HEADER_LEN};
use super::{PT_APP, PT_BYE, PT_PSFB, PT_RR, PT_RTPFB, PT_SDES, PT_SR, PT_XR};

/// One packet of a compound, located by [`packets`]. `offset` is the first
/// byte of its common header, `len` its full length including header and
/// padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtcpPacketRef {
    pub packet_type: u8,
    /// RC (SR/RR), SC (SDES/BYE), subtype (APP) or FMT (feedback).
    pub count_or_fmt: u8,
    pub offset: usize,
    pub len: usize,
}

impl RtcpPacketRef {
    /// Whether the P bit is set (only allowed on the last packet).
    #[inline]
    pub fn has_padding(&self, buf: &[u8]) -> bool {
        buf.get(self.offset).is_some_and(|b0| b0 & 0x20 != 0)
    }

    /// Bytes after the 4-byte common header, without padding. Empty if `buf`
    /// is not the buffer this packet was found in.
    #[inline]
    pub fn body<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        let end = self.offset + self.len;
        let padding = if self.has_padding(buf) {
            end.checked_sub(1).and_then(|last| buf.get(last)).map_or(0, |&count| usize::from(count))
        } else {
            0
        };
        let body_start = self.offset + HEADER_LEN;
        match end.checked_sub(padding) {
            Some(body_end) if body_end >= body_start => buf.get(body_start..body_end).unwrap_or(&[]),
            _ => &[],
        }
    }
}

/// Frames the packet starting at `offset` (common header checks only).
fn frame_at(buf: &[u8], offset: usize) -> Result<RtcpPacketRef, RtcpError> {
    let header = buf.get(offset..offset + HEADER_LEN).ok_or(if offset == 0 {
        RtcpError::TooShort
    } else {
        RtcpError::BadLength
    })?;
    let (b0, packet_type) = (header[0], header[1]);
    if b0 >> 6 != 2 {
        return Err(RtcpError::BadVersion);
    }
    if !(192..=223).contains(&packet_type) {
        return Err(RtcpError::NotCompound);
    }
    let words = usize::from(u16::from_be_bytes([header[2], header[3]]));
    let len = (words + 1) * 4;
    let end = offset + len;
    if end > buf.len() {
        return Err(RtcpError::BadLength);
    }
    if b0 & 0x20 != 0 {
        // RFC 3550 §6.4.1: only the last packet of a compound may be padded;
        // the last octet counts the padding, itself included.
        if end != buf.len() {
            return Err(RtcpError::BadPadding);
        }
        let count = usize::from(buf.get(end - 1).copied().unwrap_or(0));
        if count == 0 || count > len - HEADER_LEN {
            return Err(RtcpError::BadPadding);
        }
    }
    Ok(RtcpPacketRef { packet_type, count_or_fmt: b0 & 0x1f, offset, len })
}

/// Iterator over the packets of a compound; see [`packets`].
#[derive(Debug, Clone)]
pub struct RtcpIter<'a> {
    buf: &'a [u8],
    pos: usize,
    done: bool,
}

impl<'a> Iterator for RtcpIter<'a> {
    type Item = Result<RtcpPacketRef, RtcpError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || (self.pos > 0 && self.pos == self.buf.len()) {
            return None;
        }
        match frame_at(self.buf, self.pos) {
            Ok(packet) => {
                self.pos += packet.len;
                Some(Ok(packet))
            }
            Err(error) => {
                self.done = true;
                Some(Err(error))
            }
        }
    }
}

/// Iterates the packets of a compound by their common headers (version,
/// RTCP type range, length, padding placement). Yields `Err` once and stops
/// at the first malformed header; an empty buffer yields `Err(TooShort)`.
/// Type-specific bodies are not checked here: use [`validate_compound`].
pub fn packets(buf: &[u8]) -> RtcpIter<'_> {
    RtcpIter { buf, pos: 0, done: false }
}

/// Checks the body of one framed packet against its type's layout.
fn check_body(buf: &[u8], packet: &RtcpPacketRef) -> Result<(), RtcpError> {
    let body = packet.body(buf);
    let count = usize::from(packet.count_or_fmt);
    match packet.packet_type {
        PT_SR => sender_report::check(body, count),
        PT_RR => receiver_report::check(body, count),
        PT_SDES => sdes::check(body, count),
        // One SSRC per count (RFC 3550 §6.6).
        PT_BYE if body.len() < 4 * count => Err(RtcpError::BadCount),
        // SSRC/CSRC and 4-character name (RFC 3550 §6.7).
        PT_APP if body.len() < 8 => Err(RtcpError::BadBody),
        PT_RTPFB | PT_PSFB => {
            // Sender SSRC and media source SSRC (RFC 4585 §6.1).
            let fci = body.get(8..).ok_or(RtcpError::BadBody)?;
            let fci_ok = match (packet.packet_type, packet.count_or_fmt) {
                (PT_RTPFB, FMT_NACK) => nack::fci_fits(fci),
                // base seq, status count, reference time, fb count.
                (PT_RTPFB, FMT_TRANSPORT_CC) => fci.len() >= 8,
                (PT_PSFB, FMT_FIR) => fir::fci_fits(fci),
                (PT_PSFB, FMT_AFB) => remb::fci_fits(fci),
                _ => true,
            };
            if fci_ok {
                Ok(())
            } else {
                Err(RtcpError::BadBody)
            }
        }
        // XR: the sender SSRC at least (RFC 3611 §2).
        PT_XR if body.len() < 4 => Err(RtcpError::BadBody),
        _ => Ok(()),
    }
}

/// Validates a compound RTCP packet: every packet has version 2, a type in
/// the RTCP range, lengths that add up exactly to the buffer, padding only
/// on the last packet (RFC 3550 §6.4.1 and the checks of Appendix A.2), and
/// a body that fits its type's layout. The first packet need not be SR/RR,
/// so reduced-size RTCP (RFC 5506 §3.4.2) is accepted.
pub fn validate_compound(buf: &[u8]) -> Result<(), RtcpError> {
    for packet in packets(buf) {
        check_body(buf, &packet?)?;
    }
    Ok(())
}
