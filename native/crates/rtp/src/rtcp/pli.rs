//! Picture loss indication, PLI (RFC 4585 §6.3.1): a feedback header, no FCI.

use super::{FMT_PLI, PT_PSFB};
use crate::bytes::{write_u16, write_u32};

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
