//! Full intra request, FIR (RFC 5104 §4.3.1): one 8-byte FCI entry per
//! requested source (its SSRC, a sequence number, 3 reserved bytes).

use super::Feedback;
use crate::bytes::read_u32;

pub(super) fn fci_fits(fci: &[u8]) -> bool {
    fci.len() % 8 == 0
}

/// One [`Feedback::Fir`] per entry; `media_ssrc` is the entry's SSRC.
pub(super) fn parse(sender_ssrc: u32, fci: &[u8], out: &mut Vec<Feedback>) {
    for entry in fci.chunks_exact(8) {
        let (Some(target), Some(&seq_nr)) = (read_u32(entry, 0), entry.get(4)) else { continue };
        out.push(Feedback::Fir { sender_ssrc, media_ssrc: target, seq_nr });
    }
}
