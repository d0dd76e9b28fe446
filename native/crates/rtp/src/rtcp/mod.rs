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
//!
//! One module per packet type, each with its layout check, its parser and
//! (for what ferry sends) its builder; `compound` frames and validates a
//! compound packet, and this module turns one into [`Feedback`].

mod compound;
mod feedback;
mod fir;
mod nack;
mod pli;
mod receiver_report;
mod remb;
mod report_block;
mod sdes;
mod sender_report;

pub use compound::{packets, validate_compound, RtcpIter, RtcpPacketRef};
pub use nack::build_nack;
pub use pli::build_pli;
pub use remb::build_remb;
pub use report_block::ReportBlock;

use crate::bytes::read_u32;

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

/// The sender SSRC that SR, RR and feedback packets start with (SDES and BYE
/// may be empty, so only their parsers read it).
fn sender_ssrc(body: &[u8]) -> Result<u32, RtcpError> {
    read_u32(body, 0).ok_or(RtcpError::BadBody)
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
        match packet.packet_type {
            PT_SR => sender_report::parse(body, count, &mut out)?,
            PT_RR => receiver_report::parse(body, count, &mut out)?,
            PT_RTPFB | PT_PSFB => feedback::parse(packet.packet_type, packet.count_or_fmt, body, &mut out)?,
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
