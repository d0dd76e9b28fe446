//! Instant start for a source that cannot be asked for keyframes (an encoder that ignores PLI,
//! or plain RTP without RTCP, as a Streaming mountpoint often is): the feed keeps every packet
//! since the source's last keyframe (its current group of pictures), and an output that starts
//! on that source gets them at once, rewritten like any packet, so its decoder has a picture
//! to start from instead of waiting up to a keyframe interval. The numbering continues from the
//! last cached packet into the live ones, so the output sees one continuous stream.

use super::*;

/// Packets of one group of pictures kept at most; a longer one stops being cached until the
/// next keyframe (the cache is for start-up, not a recorder).
pub(super) const MAX_GOP_PACKETS: usize = 1024;

/// The packets of a source since its last keyframe, in arrival order; buffers are reused.
#[derive(Default)]
pub(super) struct GopCache {
    packets: Vec<Vec<u8>>,
    len: usize,
    /// Recording a group that started with a keyframe (and has not overflowed).
    valid: bool,
}

impl GopCache {
    /// Takes one packet of the source: a keyframe's first packet starts the group afresh.
    pub(super) fn record(&mut self, codec: Option<VideoCodec>, plain: &[u8], hdr: &rtp::RtpHeader) {
        let starts = match (codec, hdr.payload(plain)) {
            (Some(codec), Some(payload)) => ferry_rtp::is_keyframe(codec, payload),
            _ => false,
        };
        if starts {
            self.len = 0;
            self.valid = true;
        }
        if !self.valid {
            return;
        }
        if self.len == MAX_GOP_PACKETS {
            self.valid = false;
            self.len = 0;
            return;
        }
        if self.packets.len() == self.len {
            self.packets.push(Vec::with_capacity(plain.len()));
        }
        let slot = &mut self.packets[self.len];
        slot.clear();
        slot.extend_from_slice(plain);
        self.len += 1;
    }

    pub(super) fn packets(&self) -> &[Vec<u8>] {
        if self.valid {
            &self.packets[..self.len]
        } else {
            &[]
        }
    }
}

impl Router {
    /// Keeps (or stops keeping) the current group of pictures of a home video source, for the
    /// outputs that start on it (see the module's comment).
    pub fn set_keyframe_cache(&mut self, source: u32, on: bool) -> Result<(), String> {
        let feed = self.feeds.get_mut(&source).filter(|f| f.home == self.worker).ok_or_else(|| format!("no source {source}"))?;
        feed.gop = on.then(GopCache::default);
        Ok(())
    }

    /// An output that has just started on `sid` gets the source's cached group of pictures.
    pub(super) fn replay_gop(&mut self, oid: u32, sid: u32, now_us: u64, io: &mut impl RouterIo) {
        let Some(feed) = self.feeds.get(&sid) else { return };
        let Some(gop) = feed.gop.as_ref() else { return };
        let (clock_rate, codec) = (feed.clock_rate, feed.codec);
        let Some(out) = self.outputs.get_mut(&oid) else { return };
        let Some(out_ep) = self.endpoints.get_mut(&out.endpoint) else { return };
        let Some(dest) = out_ep.remote else { return };
        for plain in gop.packets() {
            let Ok(hdr) = rtp::parse_rtp(plain) else { continue };
            if out.pictures.is_none() {
                out.pictures = match codec {
                    Some(VideoCodec::Vp8) => Some(PictureRewriter::Vp8(Vp8Rewriter::new())),
                    Some(VideoCodec::Vp9) => Some(PictureRewriter::Vp9(Vp9Rewriter::new())),
                    _ => None,
                };
            }
            let Some((seq, ts)) = out.switching.process(u64::from(sid), hdr.sequence, hdr.timestamp, now_us, clock_rate) else { continue };
            write_packet(io, out, out_ep, plain, &hdr, sid, (seq, ts, None), dest, Sent::Media, now_us);
            out.stats.replayed += 1;
        }
    }
}
