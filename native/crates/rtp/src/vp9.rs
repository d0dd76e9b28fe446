//! The VP9 payload descriptor (RFC 9628 §4.2), read and rewritten in place, sans-IO.
//!
//! VP9 reaches ferry as simulcast (one SSRC per layer, like VP8) or as SVC: one SSRC whose
//! pictures carry several spatial layers (SID) and temporal layers (TID). An output then
//! forwards only the layers its subscriber wants (Janus `spatial_layer` / `temporal_layer`):
//! [`parse`] gives the layer of each packet and where its frame begins and ends, and
//! [`Vp9Rewriter`] keeps PICTURE ID and TL0PICIDX continuous across switches between sources
//! (see `picture_numbering`).

use crate::picture_numbering::{read_picture_id, rewrite_fields, PictureNumbering};

const I: u8 = 0x80;
const P: u8 = 0x40;
const L: u8 = 0x20;
const F: u8 = 0x10;
const B: u8 = 0x08;
const E: u8 = 0x04;
const V: u8 = 0x02;
const P_DIFF_N: u8 = 0x01;
const MAX_P_DIFF: usize = 3;
const SS_Y: u8 = 0x10;
const SS_G: u8 = 0x08;

/// The layer indices of a packet (present when L=1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Vp9Layer {
    /// Temporal layer (TID) and its switching-up point (U): from this picture on, the decoder
    /// can take this temporal layer.
    pub temporal: u8,
    pub switching_up: bool,
    /// Spatial layer (SID) and whether it depends on the layer below in the same picture (D).
    pub spatial: u8,
    pub inter_layer_dependent: bool,
}

/// What the descriptor of one packet says, with where the rewritable fields are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Vp9Descriptor {
    /// P: the picture is predicted from earlier pictures (not a keyframe when P=0 and SID 0).
    pub inter_picture: bool,
    /// F: flexible mode (references in P_DIFF; no TL0PICIDX).
    pub flexible: bool,
    /// B and E: the first and last packet of a layer frame.
    pub begins_frame: bool,
    pub ends_frame: bool,
    /// PICTURE ID, whether it is 15 bits (else 7), and its offset in the payload.
    pub picture_id: Option<(u16, bool, usize)>,
    pub layer: Option<Vp9Layer>,
    /// TL0PICIDX (non-flexible mode) and its offset.
    pub tl0picidx: Option<(u8, usize)>,
    /// Length of the descriptor: the VP9 frame data follows.
    pub len: usize,
}

impl Vp9Descriptor {
    /// The first packet of a keyframe: a frame beginning, not inter-picture predicted, of the
    /// base spatial layer.
    pub fn starts_keyframe(&self) -> bool {
        self.begins_frame && !self.inter_picture && self.layer.is_none_or(|l| l.spatial == 0)
    }
}

/// Reads the payload descriptor at the start of `payload` (RFC 9628 §4.2), walking it whole
/// (reference indices and scalability structure) so a truncated one is refused: `None`, also
/// when no frame data follows it.
pub fn parse(payload: &[u8]) -> Option<Vp9Descriptor> {
    let &first = payload.first()?;
    let mut d = Vp9Descriptor {
        inter_picture: first & P != 0,
        flexible: first & F != 0,
        begins_frame: first & B != 0,
        ends_frame: first & E != 0,
        ..Default::default()
    };
    let mut at = 1;
    if first & I != 0 {
        let (value, wide) = read_picture_id(payload, at)?;
        d.picture_id = Some((value, wide, at));
        at += if wide { 2 } else { 1 };
    }
    if first & L != 0 {
        // TID(3) U(1) SID(3) D(1); in non-flexible mode followed by TL0PICIDX.
        let &b = payload.get(at)?;
        d.layer = Some(Vp9Layer { temporal: b >> 5, switching_up: b & 0x10 != 0, spatial: (b >> 1) & 0x07, inter_layer_dependent: b & 0x01 != 0 });
        at += 1;
        if !d.flexible {
            d.tl0picidx = Some((*payload.get(at)?, at));
            at += 1;
        }
    }
    if d.flexible && d.inter_picture {
        // Reference indices: up to 3 P_DIFF octets, N marks "another follows".
        for index in 0..MAX_P_DIFF {
            let &diff = payload.get(at)?;
            at += 1;
            if diff & P_DIFF_N == 0 {
                break;
            }
            if index + 1 == MAX_P_DIFF {
                return None;
            }
        }
    }
    if first & V != 0 {
        at = scalability_structure(payload, at)?;
    }
    payload.get(at)?;
    d.len = at;
    Some(d)
}

/// §4.2.1 scalability structure; returns the offset just past it.
fn scalability_structure(payload: &[u8], mut at: usize) -> Option<usize> {
    let &ss = payload.get(at)?;
    at += 1;
    let spatial_layers = usize::from(ss >> 5) + 1;
    if ss & SS_Y != 0 {
        at += spatial_layers * 4; // WIDTH(16) HEIGHT(16) per spatial layer
    }
    if ss & SS_G != 0 {
        let &groups = payload.get(at)?;
        at += 1;
        for _ in 0..groups {
            // TID(3) U(1) R(2) RSV(2), then R reference P_DIFF octets.
            let &group = payload.get(at)?;
            at += 1 + usize::from((group >> 2) & 0x03);
        }
    }
    (at <= payload.len()).then_some(at)
}

/// Per output: keeps PICTURE ID and TL0PICIDX continuous whatever source feeds the output.
#[derive(Debug, Clone, Default)]
pub struct Vp9Rewriter {
    numbering: PictureNumbering,
}

impl Vp9Rewriter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Rewrites the descriptor of `payload`, a packet of `source_id`, in place.
    pub fn rewrite(&mut self, source_id: u64, payload: &mut [u8]) {
        let Some(d) = parse(payload) else { return };
        rewrite_fields(&mut self.numbering, source_id, payload, d.picture_id, d.tl0picidx);
    }
}

/// Which layers of an SVC stream an output forwards, and what it must do to a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SvcVerdict {
    /// Not sent: a layer above the output's choice (the output's numbering closes over it).
    Drop,
    /// Sent; `end_of_picture` when it is the last packet of the highest layer sent, which must
    /// then carry the RTP marker (RFC 9628 §4.1: M marks the end of a picture).
    Forward { end_of_picture: bool },
}

/// An output's choice of SVC layers, changed at points its decoder can follow (RFC 9628 §4.3:
/// a higher spatial layer from a keyframe, since k-SVC predicts between layers only there; a
/// higher temporal layer from a switching-up point or a base-layer picture); lower at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SvcSelector {
    /// Highest spatial and temporal layer sent (`None` = all).
    pub spatial: Option<u8>,
    pub temporal: Option<u8>,
    spatial_pending: Option<Option<u8>>,
    temporal_pending: Option<Option<u8>>,
}

/// What changed in an output's layers when a packet was judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SvcChange {
    pub spatial: Option<Option<u8>>,
    pub temporal: Option<Option<u8>>,
}

fn above(layer: u8, target: Option<u8>) -> bool {
    target.is_some_and(|t| layer > t)
}

fn raising(new: Option<u8>, old: Option<u8>) -> bool {
    match (new, old) {
        (_, None) => false,
        (None, Some(_)) => true,
        (Some(n), Some(o)) => n > o,
    }
}

impl SvcSelector {
    /// Asks for other layers; returns which took effect at once (lowering), the rest wait for
    /// a packet they can start from. True in `.0` when a keyframe is needed (spatial rise).
    pub fn choose(&mut self, spatial: Option<u8>, temporal: Option<u8>) -> (SvcChange, bool) {
        let mut change = SvcChange::default();
        let mut needs_keyframe = false;
        if raising(spatial, self.spatial) {
            self.spatial_pending = Some(spatial);
            needs_keyframe = true;
        } else if spatial != self.spatial {
            self.spatial = spatial;
            self.spatial_pending = None;
            change.spatial = Some(spatial);
        } else {
            self.spatial_pending = None;
        }
        if raising(temporal, self.temporal) {
            self.temporal_pending = Some(temporal);
        } else if temporal != self.temporal {
            self.temporal = temporal;
            self.temporal_pending = None;
            change.temporal = Some(temporal);
        } else {
            self.temporal_pending = None;
        }
        (change, needs_keyframe)
    }

    /// Judges one packet; pending rises take effect at a packet that allows them.
    pub fn judge(&mut self, d: &Vp9Descriptor, change: &mut SvcChange) -> SvcVerdict {
        let Some(layer) = d.layer else { return SvcVerdict::Forward { end_of_picture: false } };
        let picture_start = d.begins_frame && layer.spatial == 0;
        if let Some(pending) = self.spatial_pending {
            if picture_start && !d.inter_picture {
                self.spatial = pending;
                self.spatial_pending = None;
                change.spatial = Some(pending);
            }
        }
        if let Some(pending) = self.temporal_pending {
            if picture_start && (layer.switching_up || layer.temporal == 0) {
                self.temporal = pending;
                self.temporal_pending = None;
                change.temporal = Some(pending);
            }
        }
        if above(layer.spatial, self.spatial) || above(layer.temporal, self.temporal) {
            return SvcVerdict::Drop;
        }
        SvcVerdict::Forward { end_of_picture: d.ends_frame && self.spatial.is_some_and(|s| layer.spatial == s) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Non-flexible mode, 15-bit PICTURE ID, layer indices: what Chrome sends for L3T3_KEY.
    fn packet(begin: bool, end: bool, inter: bool, pid: u16, tid: u8, up: bool, sid: u8, tl0: u8) -> Vec<u8> {
        let first = I | L | if inter { P } else { 0 } | if begin { B } else { 0 } | if end { E } else { 0 };
        vec![first, 0x80 | (pid >> 8) as u8, pid as u8, tid << 5 | if up { 0x10 } else { 0 } | sid << 1, tl0, 0xaa]
    }

    #[test]
    fn parses_every_field_and_refuses_short_input() {
        let d = parse(&packet(true, false, true, 0x1234, 2, true, 1, 9)).unwrap();
        assert_eq!(d.picture_id, Some((0x1234, true, 1)));
        assert_eq!(d.layer, Some(Vp9Layer { temporal: 2, switching_up: true, spatial: 1, inter_layer_dependent: false }));
        assert_eq!(d.tl0picidx, Some((9, 4)));
        assert_eq!(d.len, 5);
        assert!(d.begins_frame && !d.ends_frame && d.inter_picture && !d.flexible);
        assert!(!d.starts_keyframe());
        assert!(parse(&packet(true, false, false, 1, 0, false, 0, 0)).unwrap().starts_keyframe());
        let full = packet(true, false, true, 0x1234, 2, true, 1, 9);
        for cut in 0..full.len() {
            assert!(parse(&full[..cut]).is_none(), "cut at {cut}");
        }
        // Flexible mode: P_DIFF octets, no TL0PICIDX; more than three refused.
        let flexible = [I | P | L | F | B, 0x05, 0x20, 0x03, 0x02, 0xaa];
        let d = parse(&flexible).unwrap();
        assert_eq!((d.tl0picidx, d.len), (None, 5));
        assert!(parse(&[I | P | L | F | B, 0x05, 0x20, 0x03, 0x03, 0x03, 0xaa]).is_none());
        // A scalability structure with resolutions and one picture group.
        let ss = [V | B, 0x18 | 0x20, 0, 1, 0, 1, 0, 2, 0, 2, 1, 0x04, 0x01, 0xaa];
        assert_eq!(parse(&ss).unwrap().len, 13);
        assert!(parse(&ss[..12]).is_none());
    }

    #[test]
    fn picture_id_and_tl0picidx_continue_across_a_switch() {
        let mut rw = Vp9Rewriter::new();
        let mut out = Vec::new();
        for (src, pid, tl0) in [(1u64, 100u16, 10u8), (1, 101, 11), (2, 7000, 200), (2, 7001, 201), (1, 300, 50)] {
            let mut p = packet(true, true, true, pid, 0, false, 0, tl0);
            rw.rewrite(src, &mut p);
            let d = parse(&p).unwrap();
            out.push((d.picture_id.unwrap().0, d.tl0picidx.unwrap().0));
        }
        assert_eq!(out, vec![(100, 10), (101, 11), (102, 12), (103, 13), (104, 14)]);
    }

    /// One picture of three spatial layers, one packet each; marker-worthy ends per layer.
    fn picture(pid: u16, tid: u8, up: bool, key: bool) -> Vec<Vp9Descriptor> {
        (0..3).map(|sid| parse(&packet(true, true, !key || sid > 0, pid, tid, up, sid, 0)).unwrap()).collect()
    }

    #[test]
    fn spatial_layers_drop_at_once_and_rise_at_a_keyframe_with_the_marker_moved() {
        let mut sel = SvcSelector::default();
        let mut change = SvcChange::default();
        let verdicts = |sel: &mut SvcSelector, change: &mut SvcChange, pic: &[Vp9Descriptor]| pic.iter().map(|d| sel.judge(d, change)).collect::<Vec<_>>();
        let fwd = |end| SvcVerdict::Forward { end_of_picture: end };
        assert_eq!(verdicts(&mut sel, &mut change, &picture(1, 0, false, false)), vec![fwd(false), fwd(false), fwd(false)], "all layers; the publisher's marker stays");
        let (now, keyframe) = sel.choose(Some(1), None);
        assert_eq!((now.spatial, keyframe), (Some(Some(1)), false), "lowering is at once");
        assert_eq!(verdicts(&mut sel, &mut change, &picture(2, 0, false, false)), vec![fwd(false), fwd(true), SvcVerdict::Drop]);
        let (now, keyframe) = sel.choose(Some(2), None);
        assert_eq!((now.spatial, keyframe), (None, true), "rising waits for a keyframe");
        assert_eq!(verdicts(&mut sel, &mut change, &picture(3, 0, false, false)), vec![fwd(false), fwd(true), SvcVerdict::Drop]);
        assert_eq!(change.spatial, None);
        assert_eq!(verdicts(&mut sel, &mut change, &picture(4, 0, false, true)), vec![fwd(false), fwd(false), fwd(true)]);
        assert_eq!(change.spatial, Some(Some(2)));
    }

    #[test]
    fn temporal_layers_rise_at_a_switching_up_point() {
        let mut sel = SvcSelector::default();
        let mut change = SvcChange::default();
        sel.choose(None, Some(0));
        assert_eq!(sel.judge(&picture(1, 1, false, false)[0], &mut change), SvcVerdict::Drop);
        sel.choose(None, Some(2));
        assert_eq!(sel.judge(&picture(2, 2, false, false)[0], &mut change), SvcVerdict::Drop, "no switching-up point yet");
        assert_eq!(sel.judge(&picture(3, 2, true, false)[0], &mut change), SvcVerdict::Forward { end_of_picture: false });
        assert_eq!(change.temporal, Some(Some(2)));
    }

    #[test]
    fn random_payloads_never_panic() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut rw = Vp9Rewriter::new();
        let mut sel = SvcSelector::default();
        let mut change = SvcChange::default();
        for i in 0..100_000u64 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = (state % 16) as usize;
            let mut p: Vec<u8> = (0..len).map(|k| (state >> (k * 4)) as u8).collect();
            if let Some(d) = parse(&p) {
                sel.judge(&d, &mut change);
            }
            rw.rewrite(i % 3, &mut p);
            assert_eq!(p.len(), len);
        }
    }
}
