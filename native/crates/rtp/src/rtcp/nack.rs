//! Generic NACK (RFC 4585 §6.2.1): 4-byte FCI items, each a lost packet ID
//! (PID) and a bitmask of the 16 following ones (BLP).

use super::{push_header, Feedback, FMT_NACK, PT_RTPFB};
use crate::bytes::read_u16;

pub(super) fn fci_fits(fci: &[u8]) -> bool {
    fci.len() % 4 == 0
}

/// All items of one NACK packet, expanded to sequence numbers.
pub(super) fn parse(sender_ssrc: u32, media_ssrc: u32, fci: &[u8], out: &mut Vec<Feedback>) {
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
