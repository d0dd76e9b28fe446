//! RTCP: compound validation and iteration, feedback parsing, and builders
//! of the feedback ferry sends (PLI, NACK, REMB).
//!
//! Every RTCP packet starts with (RFC 3550 §6.4.1):
//! ```text
//! |V=2|P| RC/FMT  |      PT       |  length (32-bit words − 1)    |
//! ```
//! Packet types handled: SR 200, RR 201, SDES 202, BYE 203, APP 204
//! (RFC 3550 §6), RTPFB 205 and PSFB 206 (RFC 4585 §6.1), XR 207 (RFC 3611,
//! sender SSRC only). Feedback formats: generic NACK (RTPFB 1, RFC 4585
//! §6.2.1), transport-wide CC (RTPFB 15, draft-holmer-rmcat-transport-wide-
//! cc-extensions §3.1), PLI (PSFB 1, RFC 4585 §6.3.1), FIR (PSFB 4, RFC 5104
//! §4.3.1), REMB (PSFB 15 "REMB", draft-alvestrand-rmcat-remb §2.2).

use crate::bytes::{read_u16, read_u24, read_u32, write_u16, write_u32};

pub const PT_SR: u8 = 200;
pub const PT_RR: u8 = 201;
pub const PT_SDES: u8 = 202;
pub const PT_BYE: u8 = 203;
pub const PT_APP: u8 = 204;
pub const PT_RTPFB: u8 = 205;
pub const PT_PSFB: u8 = 206;
pub const PT_XR: u8 = 207;

pub const FMT_NACK: u8 = 1;
pub const FMT_TRANSPORT_CC: u8 = 15;
pub const FMT_PLI: u8 = 1;
pub const FMT_FIR: u8 = 4;
pub const FMT_AFB: u8 = 15;

const HEADER_LEN: usize = 4;
const REPORT_BLOCK_LEN: usize = 24;
/// SR sender info: SSRC, NTP (8), RTP ts, packet count, octet count.
const SR_FIXED_LEN: usize = 24;
const REMB_IDENTIFIER: &[u8; 4] = b"REMB";

/// Why a buffer is not a well-formed (compound) RTCP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RtcpError {
    /// Empty, or shorter than one 4-byte common header.
    TooShort,
    /// A packet's version field is not 2.
    BadVersion,
    /// A packet's length field runs past the buffer, or bytes are left over
    /// after the last packet (RFC 3550 A.2: lengths must add up exactly).
    BadLength,
    /// A packet type outside the RTCP range 192..=223 (RFC 5761 §4), so this
    /// is not an RTCP compound packet.
    NotCompound,
    /// Padding on a packet that is not the last one (RFC 3550 §6.4.1), or a
    /// padding count of zero or larger than the packet body.
    BadPadding,
    /// The RC/SC count needs more bytes than the packet holds.
    BadCount,
    /// A type-specific body is malformed (truncated SDES chunk, feedback
    /// packet shorter than its fixed part, FCI of the wrong size, ...).
    BadBody,
}

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
        PT_SR => {
            if body.len() < SR_FIXED_LEN {
                return Err(RtcpError::BadBody);
            }
            if body.len() < SR_FIXED_LEN + REPORT_BLOCK_LEN * count {
                return Err(RtcpError::BadCount);
            }
        }
        PT_RR => {
            if body.len() < 4 {
                return Err(RtcpError::BadBody);
            }
            if body.len() < 4 + REPORT_BLOCK_LEN * count {
                return Err(RtcpError::BadCount);
            }
        }
        PT_SDES => {
            let mut pos = 0;
            for _ in 0..count {
                pos = sdes_chunk_end(body, pos).ok_or(RtcpError::BadBody)?;
            }
        }
        PT_BYE if body.len() < 4 * count => return Err(RtcpError::BadCount),
        // SSRC/CSRC and 4-character name (RFC 3550 §6.7).
        PT_APP if body.len() < 8 => return Err(RtcpError::BadBody),
        PT_RTPFB | PT_PSFB => {
            // Sender SSRC and media source SSRC (RFC 4585 §6.1).
            let fci = body.get(8..).ok_or(RtcpError::BadBody)?;
            let fci_ok = match (packet.packet_type, packet.count_or_fmt) {
                (PT_RTPFB, FMT_NACK) => fci.len() % 4 == 0,
                // base seq, status count, reference time, fb count.
                (PT_RTPFB, FMT_TRANSPORT_CC) => fci.len() >= 8,
                (PT_PSFB, FMT_FIR) => fci.len() % 8 == 0,
                (PT_PSFB, FMT_AFB) => !matches!(remb_ssrc_count(fci), Some(n) if fci.len() < 8 + 4 * n),
                _ => true,
            };
            if !fci_ok {
                return Err(RtcpError::BadBody);
            }
        }
        PT_XR if body.len() < 4 => return Err(RtcpError::BadBody),
        _ => {}
    }
    Ok(())
}

/// End of the SDES chunk starting at `pos` in `body` (RFC 3550 §6.5): SSRC,
/// items (type, length, text), a null item type, then null octets up to the
/// next 32-bit boundary. `None` if the chunk does not fit.
fn sdes_chunk_end(body: &[u8], pos: usize) -> Option<usize> {
    let mut at = pos.checked_add(4)?;
    if at > body.len() {
        return None;
    }
    loop {
        let &item_type = body.get(at)?;
        if item_type == 0 {
            // The body starts 4 bytes into the packet, so body offsets share
            // the packet's 32-bit alignment.
            let end = (at + 1 + 3) & !3;
            return (end <= body.len()).then_some(end);
        }
        let &item_len = body.get(at + 1)?;
        at += 2 + usize::from(item_len);
        if at > body.len() {
            return None;
        }
    }
}

/// If an AFB FCI is a REMB message, its number of SSRCs.
fn remb_ssrc_count(fci: &[u8]) -> Option<usize> {
    if fci.get(0..4)? != REMB_IDENTIFIER {
        return None;
    }
    Some(usize::from(*fci.get(4)?))
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

/// One reception report block (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportBlock {
    pub ssrc: u32,
    pub fraction_lost: u8,
    /// 24-bit signed on the wire (RFC 3550 §6.4.1 cumulative number of
    /// packets lost).
    pub cumulative_lost: i32,
    /// Extended highest sequence number received.
    pub highest_seq: u32,
    pub jitter: u32,
    /// Middle 32 bits of the NTP timestamp of the last SR received.
    pub lsr: u32,
    /// Delay since last SR, in units of 1/65536 s.
    pub dlsr: u32,
}

impl ReportBlock {
    fn parse(bytes: &[u8]) -> Option<Self> {
        let lost_field = read_u32(bytes, 4)?;
        // Sign-extend the low 24 bits.
        let cumulative_lost = ((lost_field << 8) as i32) >> 8;
        Some(Self {
            ssrc: read_u32(bytes, 0)?,
            fraction_lost: (lost_field >> 24) as u8,
            cumulative_lost,
            highest_seq: read_u32(bytes, 8)?,
            jitter: read_u32(bytes, 12)?,
            lsr: read_u32(bytes, 16)?,
            dlsr: read_u32(bytes, 20)?,
        })
    }
}

/// RTCP content the engine acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Feedback {
    Pli { sender_ssrc: u32, media_ssrc: u32 },
    /// One per FIR FCI entry; `media_ssrc` is the entry's SSRC.
    Fir { sender_ssrc: u32, media_ssrc: u32, seq_nr: u8 },
    /// All FCI entries of one NACK packet, expanded to sequence numbers.
    Nack { sender_ssrc: u32, media_ssrc: u32, lost: Vec<u16> },
    Remb { sender_ssrc: u32, bitrate_bps: u64, ssrcs: Vec<u32> },
    TransportCc { sender_ssrc: u32, media_ssrc: u32 },
    /// `ntp` is the 64-bit NTP timestamp (seconds << 32 | fraction).
    SenderReport { ssrc: u32, ntp: u64, rtp_ts: u32, packets: u32, octets: u32 },
    /// From an RR, and also from an SR that carries report blocks.
    ReceiverReport { sender_ssrc: u32, blocks: Vec<ReportBlock> },
}

fn report_blocks(bytes: &[u8], count: usize) -> Vec<ReportBlock> {
    (0..count)
        .filter_map(|index| bytes.get(index * REPORT_BLOCK_LEN..(index + 1) * REPORT_BLOCK_LEN))
        .filter_map(ReportBlock::parse)
        .collect()
}

/// Decodes REMB's 6-bit exponent / 18-bit mantissa, saturating at u64::MAX.
fn remb_bitrate(exp_mantissa: u32) -> u64 {
    let exponent = (exp_mantissa >> 18) & 0x3f;
    let mantissa = u128::from(exp_mantissa & 0x3_ffff);
    u64::try_from(mantissa << exponent).unwrap_or(u64::MAX)
}

/// Parses the feedback and reports of a compound RTCP packet (validated
/// first with [`validate_compound`]). SDES, BYE, APP, XR, non-REMB AFB and
/// unknown formats produce nothing.
pub fn parse_feedback(buf: &[u8]) -> Result<Vec<Feedback>, RtcpError> {
    validate_compound(buf)?;
    let mut out = Vec::new();
    for packet in packets(buf) {
        let packet = packet?;
        let body = packet.body(buf);
        let count = usize::from(packet.count_or_fmt);
        // SDES/BYE may be empty, so only the arms below read the sender.
        let sender = || read_u32(body, 0).ok_or(RtcpError::BadBody);
        match packet.packet_type {
            PT_SR => {
                let sender_ssrc = sender()?;
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
            }
            PT_RR => {
                let sender_ssrc = sender()?;
                let blocks = report_blocks(body.get(4..).unwrap_or(&[]), count);
                out.push(Feedback::ReceiverReport { sender_ssrc, blocks });
            }
            PT_RTPFB | PT_PSFB => {
                let sender_ssrc = sender()?;
                let media_ssrc = read_u32(body, 4).ok_or(RtcpError::BadBody)?;
                let fci = body.get(8..).unwrap_or(&[]);
                match (packet.packet_type, packet.count_or_fmt) {
                    (PT_RTPFB, FMT_NACK) => {
                        let mut lost = Vec::new();
                        for item in fci.chunks_exact(4) {
                            let (Some(pid), Some(blp)) = (read_u16(item, 0), read_u16(item, 2)) else { continue };
                            // RFC 4585 §6.2.1: PID is lost, and bit i of BLP
                            // means PID + i + 1 is lost too.
                            lost.push(pid);
                            for bit in 0..16u16 {
                                if blp & (1 << bit) != 0 {
                                    lost.push(pid.wrapping_add(bit + 1));
                                }
                            }
                        }
                        out.push(Feedback::Nack { sender_ssrc, media_ssrc, lost });
                    }
                    (PT_RTPFB, FMT_TRANSPORT_CC) => out.push(Feedback::TransportCc { sender_ssrc, media_ssrc }),
                    (PT_PSFB, FMT_PLI) => out.push(Feedback::Pli { sender_ssrc, media_ssrc }),
                    (PT_PSFB, FMT_FIR) => {
                        for entry in fci.chunks_exact(8) {
                            let (Some(target), Some(&seq_nr)) = (read_u32(entry, 0), entry.get(4)) else { continue };
                            out.push(Feedback::Fir { sender_ssrc, media_ssrc: target, seq_nr });
                        }
                    }
                    (PT_PSFB, FMT_AFB) => {
                        if let Some(n) = remb_ssrc_count(fci) {
                            let exp_mantissa = read_u24(fci, 5).ok_or(RtcpError::BadBody)?;
                            let ssrcs = (0..n).filter_map(|index| read_u32(fci, 8 + 4 * index)).collect();
                            out.push(Feedback::Remb { sender_ssrc, bitrate_bps: remb_bitrate(exp_mantissa), ssrcs });
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Appends a common header for a packet of `total_len` bytes (a multiple of
/// 4 by construction of every builder).
fn push_header(out: &mut Vec<u8>, count_or_fmt: u8, packet_type: u8, total_len: usize) {
    let words = u16::try_from(total_len / 4 - 1).unwrap_or(u16::MAX);
    out.push(0x80 | (count_or_fmt & 0x1f));
    out.push(packet_type);
    out.extend_from_slice(&words.to_be_bytes());
}

/// PLI (RFC 4585 §6.3.1): common feedback header, no FCI.
pub fn build_pli(sender_ssrc: u32, media_ssrc: u32) -> [u8; 12] {
    let mut packet = [0u8; 12];
    packet[0] = 0x80 | FMT_PLI;
    packet[1] = PT_PSFB;
    write_u16(&mut packet, 2, 2);
    write_u32(&mut packet, 4, sender_ssrc);
    write_u32(&mut packet, 8, media_ssrc);
    packet
}

/// Largest number of 4-byte FCI items that keeps the length field in 16 bits.
const MAX_NACK_ITEMS: usize = u16::MAX as usize - 2;

/// Generic NACK (RFC 4585 §6.2.1). Each item covers a PID and the 16
/// sequence numbers after it (BLP bits); a sequence number within PID+1..=
/// PID+16 of the current item joins it, otherwise it starts a new item, so
/// the packing is tightest when `lost` is in ascending (serial) order.
/// Duplicates of an item's PID are ignored. An empty `lost` gives a packet
/// without FCI (12 bytes).
pub fn build_nack(sender_ssrc: u32, media_ssrc: u32, lost: &[u16]) -> Vec<u8> {
    let mut items: Vec<(u16, u16)> = Vec::new();
    for &seq in lost {
        if let Some((pid, blp)) = items.last_mut() {
            let distance = seq.wrapping_sub(*pid);
            if distance == 0 {
                continue;
            }
            if distance <= 16 {
                *blp |= 1 << (distance - 1);
                continue;
            }
        }
        if items.len() == MAX_NACK_ITEMS {
            break;
        }
        items.push((seq, 0));
    }
    let total_len = 12 + 4 * items.len();
    let mut out = Vec::with_capacity(total_len);
    push_header(&mut out, FMT_NACK, PT_RTPFB, total_len);
    out.extend_from_slice(&sender_ssrc.to_be_bytes());
    out.extend_from_slice(&media_ssrc.to_be_bytes());
    for (pid, blp) in items {
        out.extend_from_slice(&pid.to_be_bytes());
        out.extend_from_slice(&blp.to_be_bytes());
    }
    out
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
