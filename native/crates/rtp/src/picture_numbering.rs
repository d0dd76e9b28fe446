//! Picture numbering that goes on across switches (VP8 PictureID and TL0PICIDX, RFC 7741 §4.2;
//! VP9 PICTURE ID and TL0PICIDX, RFC 9628 §4.2), shared by the VP8 and VP9 rewriters.
//!
//! Within one source `out = in + offset` (15-bit, and 8-bit for TL0PICIDX), so the source's own
//! gaps and reordering stay visible to the decoder; a new source goes on from the last value
//! sent + 1, as sequence numbers and timestamps do (`switch.rs`).

const M: u8 = 0x80;

/// Per output: the offsets of the source feeding it and the highest numbers sent.
#[derive(Debug, Clone, Default)]
pub struct PictureNumbering {
    source: Option<u64>,
    picture_offset: u16,
    tl0_offset: u8,
    last_picture: Option<u16>,
    last_tl0: Option<u8>,
}

impl PictureNumbering {
    /// The numbers to send for a packet of `source_id` carrying `picture_id` (15-bit space)
    /// and `tl0picidx`.
    pub fn map(&mut self, source_id: u64, picture_id: Option<u16>, tl0picidx: Option<u8>) -> (Option<u16>, Option<u8>) {
        if self.source != Some(source_id) {
            // A new source: its first picture follows the last one sent.
            self.source = Some(source_id);
            self.picture_offset = match (picture_id, self.last_picture) {
                (Some(pid), Some(last)) => last.wrapping_add(1).wrapping_sub(pid),
                _ => 0,
            };
            self.tl0_offset = match (tl0picidx, self.last_tl0) {
                (Some(tl0), Some(last)) => last.wrapping_add(1).wrapping_sub(tl0),
                _ => 0,
            };
        }
        let picture = picture_id.map(|pid| {
            let out = pid.wrapping_add(self.picture_offset) & 0x7fff;
            // Serial order in the 15-bit space (7-bit ids are compared as their low bits).
            let newer = self.last_picture.is_none_or(|last| {
                let diff = out.wrapping_sub(last) & 0x7fff;
                diff != 0 && diff < 0x4000
            });
            if newer {
                self.last_picture = Some(out);
            }
            out
        });
        let tl0 = tl0picidx.map(|tl0| {
            let out = tl0.wrapping_add(self.tl0_offset);
            let newer = self.last_tl0.is_none_or(|last| {
                let diff = out.wrapping_sub(last);
                diff != 0 && diff < 0x80
            });
            if newer {
                self.last_tl0 = Some(out);
            }
            out
        });
        (picture, tl0)
    }
}

/// Rewrites in place the picture id (value, 15-bit, offset) and TL0PICIDX (value, offset) a
/// descriptor parser found in `payload`, a packet of `source_id`, as `numbering` maps them.
pub fn rewrite_fields(numbering: &mut PictureNumbering, source_id: u64, payload: &mut [u8], picture_id: Option<(u16, bool, usize)>, tl0picidx: Option<(u8, usize)>) {
    let (picture, tl0) = numbering.map(source_id, picture_id.map(|p| p.0), tl0picidx.map(|t| t.0));
    if let (Some((_, wide, at)), Some(out)) = (picture_id, picture) {
        write_picture_id(payload, at, wide, out);
    }
    if let (Some((_, at)), Some(out)) = (tl0picidx, tl0) {
        if let Some(b) = payload.get_mut(at) {
            *b = out;
        }
    }
}

/// Writes a picture id in its field at `at`: 15 bits with the M bit when `wide`, else 7 bits
/// (the same layout in VP8 and VP9).
pub fn write_picture_id(payload: &mut [u8], at: usize, wide: bool, value: u16) {
    if wide {
        if let Some(b) = payload.get_mut(at..at + 2) {
            b[0] = M | ((value >> 8) as u8 & 0x7f);
            b[1] = value as u8;
        }
    } else if let Some(b) = payload.get_mut(at) {
        *b = (value & 0x7f) as u8;
    }
}

/// Reads a picture id at `at`: (value, wide).
pub fn read_picture_id(payload: &[u8], at: usize) -> Option<(u16, bool)> {
    let &b = payload.get(at)?;
    if b & M != 0 {
        let &lo = payload.get(at + 1)?;
        Some((u16::from(b & 0x7f) << 8 | u16::from(lo), true))
    } else {
        Some((u16::from(b), false))
    }
}
