//! The reception report block SR and RR carry (RFC 3550 §6.4.1).

use crate::bytes::read_u32;

pub(super) const REPORT_BLOCK_LEN: usize = 24;

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

/// The first `count` blocks of `bytes` (fewer if it is shorter).
pub(super) fn report_blocks(bytes: &[u8], count: usize) -> Vec<ReportBlock> {
    (0..count)
        .filter_map(|index| bytes.get(index * REPORT_BLOCK_LEN..(index + 1) * REPORT_BLOCK_LEN))
        .filter_map(ReportBlock::parse)
        .collect()
}
