//! The VP8 payload descriptor (RFC 7741 §4.2), read and rewritten in place, sans-IO.
//!
//! A subscriber sees one VP8 stream while ferry switches it between publishers or simulcast
//! layers, and skips temporal layers it does not want. Its decoder and jitter buffer use the
//! descriptor's PictureID (frame numbering) and TL0PICIDX (numbering of base-layer frames):
//! both must go on continuously across a switch, just as sequence numbers and timestamps do
//! (`switch.rs`). [`Vp8Rewriter`] does that per output; [`parse`] reads the fields, including
//! the temporal layer (TID) and its layer-sync bit for temporal-layer selection.

use crate::picture_numbering::{read_picture_id, rewrite_fields, PictureNumbering};

const X: u8 = 0x80;
const S: u8 = 0x10;
const PID_MASK: u8 = 0x07;
const I: u8 = 0x80;
const L: u8 = 0x40;
const T: u8 = 0x20;
const K: u8 = 0x10;

/// What the descriptor of one packet says, with where the rewritable fields are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Vp8Descriptor {
    /// S bit and PID = 0: the first packet of a frame.
    pub frame_start: bool,
    /// PictureID, whether it is 15 bits (else 7), and its offset in the payload.
    pub picture_id: Option<(u16, bool, usize)>,
    /// TL0PICIDX and its offset.
    pub tl0picidx: Option<(u8, usize)>,
    /// Temporal layer index (TID) and the layer-sync bit (Y).
    pub temporal: Option<(u8, bool)>,
    /// Length of the descriptor: the VP8 payload header or data follows.
    pub len: usize,
}

/// Reads the payload descriptor at the start of `payload` (RFC 7741 §4.2); `None` if it is
/// cut short.
pub fn parse(payload: &[u8]) -> Option<Vp8Descriptor> {
    let &first = payload.first()?;
    let mut d = Vp8Descriptor { frame_start: first & S != 0 && first & PID_MASK == 0, ..Default::default() };
    let mut at = 1;
    if first & X != 0 {
        let &ext = payload.get(at)?;
        at += 1;
        if ext & I != 0 {
            let (value, wide) = read_picture_id(payload, at)?;
            d.picture_id = Some((value, wide, at));
            at += if wide { 2 } else { 1 };
        }
        if ext & L != 0 {
            d.tl0picidx = Some((*payload.get(at)?, at));
            at += 1;
        }
        if ext & (T | K) != 0 {
            let &b = payload.get(at)?;
            if ext & T != 0 {
                d.temporal = Some((b >> 6, b & 0x20 != 0));
            }
            at += 1;
        }
    }
    d.len = at;
    Some(d)
}

/// Per output: keeps PictureID and TL0PICIDX continuous whatever source feeds the output
/// (see `picture_numbering`).
#[derive(Debug, Clone, Default)]
pub struct Vp8Rewriter {
    numbering: PictureNumbering,
}

impl Vp8Rewriter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Rewrites the descriptor of `payload`, a packet of `source_id`, in place.
    pub fn rewrite(&mut self, source_id: u64, payload: &mut [u8]) {
        let Some(d) = parse(payload) else { return };
        rewrite_fields(&mut self.numbering, source_id, payload, d.picture_id, d.tl0picidx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: u8 = 0x80;

    /// X=1, I=1 (15-bit PictureID), L=1, T=1: the descriptor Chrome sends with temporal layers.
    fn packet(start: bool, pid: u16, tl0: u8, tid: u8, sync: bool) -> Vec<u8> {
        vec![X | if start { S } else { 0 }, I | L | T, M | (pid >> 8) as u8, pid as u8, tl0, tid << 6 | if sync { 0x20 } else { 0 }, 0xaa, 0xbb]
    }

    #[test]
    fn parses_every_field_and_refuses_short_input() {
        let d = parse(&packet(true, 0x1234, 7, 2, true)).unwrap();
        assert_eq!(d, Vp8Descriptor { frame_start: true, picture_id: Some((0x1234, true, 2)), tl0picidx: Some((7, 4)), temporal: Some((2, true)), len: 6 });
        let short = parse(&[X | S, I, 0x05, 0x10]).unwrap();
        assert_eq!(short.picture_id, Some((5, false, 2)));
        assert_eq!(short.len, 3);
        assert_eq!(parse(&[0x10, 0x9d]).unwrap().len, 1, "no extension");
        for cut in 0..6 {
            assert!(parse(&packet(true, 0x1234, 7, 2, true)[..cut]).is_none() || cut >= 6, "cut at {cut}");
        }
    }

    #[test]
    fn picture_id_and_tl0picidx_continue_across_a_switch() {
        let mut rw = Vp8Rewriter::new();
        let mut out = Vec::new();
        for (src, pid, tl0) in [(1u64, 100u16, 10u8), (1, 101, 10), (1, 102, 11), (2, 30_000, 250), (2, 30_001, 251), (2, 30_002, 252), (1, 500, 40)] {
            let mut p = packet(true, pid, tl0, 0, false);
            rw.rewrite(src, &mut p);
            let d = parse(&p).unwrap();
            out.push((d.picture_id.unwrap().0, d.tl0picidx.unwrap().0));
        }
        assert_eq!(out, vec![(100, 10), (101, 10), (102, 11), (103, 12), (104, 13), (105, 14), (106, 15)]);
    }

    #[test]
    fn a_sources_own_gaps_stay_and_ids_wrap() {
        let mut rw = Vp8Rewriter::new();
        let mut pids = Vec::new();
        for (src, pid) in [(1u64, 32_766u16), (1, 32_767), (1, 1), (2, 9)] {
            let mut p = packet(true, pid, 0, 0, false);
            rw.rewrite(src, &mut p);
            pids.push(parse(&p).unwrap().picture_id.unwrap().0);
        }
        assert_eq!(pids, vec![32_766, 32_767, 1, 2], "the gap at 0 stays; the new source follows 1");
        // 7-bit ids keep their width.
        let mut p = vec![X | S, I, 0x7f, 0xaa];
        Vp8Rewriter::new().rewrite(5, &mut p);
        assert_eq!(p.len(), 4);
    }

    #[test]
    fn random_payloads_never_panic() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut rw = Vp8Rewriter::new();
        for i in 0..100_000u64 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = (state % 12) as usize;
            let mut p: Vec<u8> = (0..len).map(|k| (state >> (k * 5)) as u8).collect();
            let _ = parse(&p);
            rw.rewrite(i % 3, &mut p);
            assert_eq!(p.len(), len);
        }
    }
}
