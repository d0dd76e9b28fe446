//! RTCP packets to feed the code under test: the reports and requests ferry reads but never
//! sends (RFC 3550 SR, RR, SDES CNAME and BYE; RFC 5104 FIR), so their writers live here and
//! not in ferry-rtp. Lengths are multiples of 4 by construction.

use ferry_rtp::rtcp::{ReportBlock, FMT_FIR, PT_BYE, PT_PSFB, PT_RR, PT_SDES, PT_SR};

const HEADER_LEN: usize = 4;
const REPORT_BLOCK_LEN: usize = 24;
/// RC/SC are 5-bit fields.
const MAX_COUNT: usize = 31;
const SDES_CNAME: u8 = 1;
/// Cumulative packets lost is 24-bit signed on the wire (RFC 3550 §6.4.1).
const CUMULATIVE_LOST_MAX: i32 = (1 << 23) - 1;
const CUMULATIVE_LOST_MIN: i32 = -(1 << 23);

/// Appends a common header (RFC 3550 §6.4.1) for a packet of `total_len` bytes.
fn push_header(out: &mut Vec<u8>, count_or_fmt: u8, packet_type: u8, total_len: usize) {
    let words = u16::try_from(total_len / 4 - 1).unwrap_or(u16::MAX);
    out.push(0x80 | (count_or_fmt & 0x1f));
    out.push(packet_type);
    out.extend_from_slice(&words.to_be_bytes());
}

/// One report block (RFC 3550 §6.4.1); the cumulative loss is clamped to 24 bits.
fn push_report_block(out: &mut Vec<u8>, block: &ReportBlock) {
    let lost = block.cumulative_lost.clamp(CUMULATIVE_LOST_MIN, CUMULATIVE_LOST_MAX) as u32 & 0x00ff_ffff;
    out.extend_from_slice(&block.ssrc.to_be_bytes());
    out.extend_from_slice(&((u32::from(block.fraction_lost) << 24) | lost).to_be_bytes());
    out.extend_from_slice(&block.highest_seq.to_be_bytes());
    out.extend_from_slice(&block.jitter.to_be_bytes());
    out.extend_from_slice(&block.lsr.to_be_bytes());
    out.extend_from_slice(&block.dlsr.to_be_bytes());
}

/// FIR (RFC 5104 §4.3.1) with one FCI entry; the header's media SSRC is 0
/// (§4.3.1.2) and the target goes in the FCI.
pub fn build_fir(sender_ssrc: u32, media_ssrc: u32, seq_nr: u8) -> [u8; 20] {
    let mut packet = [0u8; 20];
    packet[0] = 0x80 | FMT_FIR;
    packet[1] = PT_PSFB;
    packet[2..4].copy_from_slice(&4u16.to_be_bytes());
    packet[4..8].copy_from_slice(&sender_ssrc.to_be_bytes());
    packet[12..16].copy_from_slice(&media_ssrc.to_be_bytes());
    packet[16] = seq_nr;
    packet
}

/// Appends RR packets carrying `blocks` (31 per packet, RFC 3550 §6.4.2
/// allows extra RRs after the first report in a compound).
fn push_receiver_reports(out: &mut Vec<u8>, sender_ssrc: u32, blocks: &[ReportBlock]) {
    for chunk in blocks.chunks(MAX_COUNT) {
        push_header(out, chunk.len() as u8, PT_RR, 8 + REPORT_BLOCK_LEN * chunk.len());
        out.extend_from_slice(&sender_ssrc.to_be_bytes());
        for block in chunk {
            push_report_block(out, block);
        }
    }
}

/// Receiver report (RFC 3550 §6.4.2). More than 31 blocks are carried in
/// additional RR packets of the same compound; no blocks gives an empty RR.
pub fn build_receiver_report(sender_ssrc: u32, blocks: &[ReportBlock]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + REPORT_BLOCK_LEN * blocks.len() + 8 * (blocks.len() / MAX_COUNT));
    if blocks.is_empty() {
        push_header(&mut out, 0, PT_RR, 8);
        out.extend_from_slice(&sender_ssrc.to_be_bytes());
    } else {
        push_receiver_reports(&mut out, sender_ssrc, blocks);
    }
    out
}

/// Sender report (RFC 3550 §6.4.1). `ntp` is seconds << 32 | fraction. Up to
/// 31 blocks go in the SR; the rest follow in RR packets of the same compound.
pub fn build_sender_report(
    ssrc: u32,
    ntp: u64,
    rtp_ts: u32,
    packets: u32,
    octets: u32,
    blocks: &[ReportBlock],
) -> Vec<u8> {
    let (in_sr, rest) = blocks.split_at(blocks.len().min(MAX_COUNT));
    let mut out = Vec::with_capacity(28 + REPORT_BLOCK_LEN * blocks.len() + 8 * (blocks.len() / MAX_COUNT));
    push_header(&mut out, in_sr.len() as u8, PT_SR, 28 + REPORT_BLOCK_LEN * in_sr.len());
    out.extend_from_slice(&ssrc.to_be_bytes());
    out.extend_from_slice(&ntp.to_be_bytes());
    out.extend_from_slice(&rtp_ts.to_be_bytes());
    out.extend_from_slice(&packets.to_be_bytes());
    out.extend_from_slice(&octets.to_be_bytes());
    for block in in_sr {
        push_report_block(&mut out, block);
    }
    push_receiver_reports(&mut out, ssrc, rest);
    out
}

/// SDES with one chunk holding a CNAME item (RFC 3550 §6.5.1), as every
/// compound must carry (§6.1). The CNAME is cut at 255 bytes.
pub fn build_sdes_cname(ssrc: u32, cname: &[u8]) -> Vec<u8> {
    let cname = cname.get(..cname.len().min(255)).unwrap_or(&[]);
    // SSRC, type, length, text, then 1..=4 null octets to a 32-bit boundary.
    let chunk_len = (4 + 2 + cname.len() + 1 + 3) & !3;
    let total_len = HEADER_LEN + chunk_len;
    let mut out = Vec::with_capacity(total_len);
    push_header(&mut out, 1, PT_SDES, total_len);
    out.extend_from_slice(&ssrc.to_be_bytes());
    out.push(SDES_CNAME);
    out.push(cname.len() as u8);
    out.extend_from_slice(cname);
    out.resize(total_len, 0);
    out
}

/// BYE (RFC 3550 §6.6) for up to 31 SSRCs (extra ones are dropped), no reason.
pub fn build_bye(ssrcs: &[u32]) -> Vec<u8> {
    let ssrcs = ssrcs.get(..ssrcs.len().min(MAX_COUNT)).unwrap_or(&[]);
    let total_len = HEADER_LEN + 4 * ssrcs.len();
    let mut out = Vec::with_capacity(total_len);
    push_header(&mut out, ssrcs.len() as u8, PT_BYE, total_len);
    for ssrc in ssrcs {
        out.extend_from_slice(&ssrc.to_be_bytes());
    }
    out
}
