//! Datagrams out: one packet rewritten for an output (SSRC, numbering, picture ids, marker,
//! transport-wide sequence number), protected and queued; RTX retransmissions and probes.

use ferry_srtp::hmac_batch::DeferredMac;
use super::*;


/// The descriptor rewriter of an output's codec.
pub(super) enum PictureRewriter {
    Vp8(Vp8Rewriter),
    Vp9(Vp9Rewriter),
}

impl PictureRewriter {
    fn rewrite(&mut self, source_id: u64, payload: &mut [u8]) {
        match self {
            Self::Vp8(rw) => rw.rewrite(source_id, payload),
            Self::Vp9(rw) => rw.rewrite(source_id, payload),
        }
    }
}

/// Janus's `spatial_layer` / `temporal_layer` events for VP9 SVC changes that took effect.
pub(super) fn push_svc_events(events: &mut Vec<Event>, endpoint: u32, output: u32, change: SvcChange) {
    if let Some(layer) = change.spatial {
        events.push(Event::OutputSpatial { endpoint, output, layer: layer.unwrap_or(u8::MAX) });
    }
    if let Some(layer) = change.temporal {
        events.push(Event::OutputTemporal { endpoint, output, layer: layer.unwrap_or(u8::MAX) });
    }
}

impl Output {
    /// The payload type this output writes for a packet of type `received`; `None`: not sent.
    pub(super) fn payload_type_for(&self, received: u8) -> Option<u8> {
        match self.payload_map.iter().find(|(from, _)| *from == received) {
            Some(&(_, to)) => to,
            None => Some(self.payload_type.unwrap_or(received)),
        }
    }
}

/// The source feeding an output now (retransmissions are of its packets).
pub(super) fn sid_of(out: &Output) -> u32 {
    out.source.unwrap_or(0)
}

/// What a packet written for an output is, for its counters.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Sent {
    Media,
    Retransmission,
}

/// Writes the header of an outgoing copy of `plain` into `pkt`: as it is, or, when the
/// transport numbers its packets (`SendBwe`), with the transport-wide sequence number as its
/// only extension. Returns the header length.
pub(super) fn write_header(pkt: &mut [u8], plain: &[u8], hdr: &rtp::RtpHeader, bwe: Option<&SendBwe>) -> Option<usize> {
    match bwe {
        Some(bwe) => transport_sequence::write_header(pkt, plain, hdr, bwe.extension_id, bwe.next_seq),
        None => {
            pkt.get_mut(..hdr.header_len)?.copy_from_slice(plain.get(..hdr.header_len)?);
            Some(hdr.header_len)
        }
    }
}

/// A packet SRTP-protected for sending: its length, and with an AES-CM profile on an IO that
/// batches tags, its tag still to be written (`RouterIo::batches_tags`).
pub(super) type Protected = (usize, Option<DeferredMac>);

/// SRTP-protects the `len` bytes written in `pkt` for `ep`, leaving an AES-CM tag to the IO
/// when `tag_later`. `None` if protection failed or a WebRTC endpoint has no keys yet
/// (RFC 8827 §6.5).
pub(super) fn protect(pkt: &mut [u8], ep: &mut Endpoint, len: usize, tag_later: bool) -> Option<Protected> {
    match ep.srtp_out.as_mut() {
        Some(ctx) if tag_later => ctx.protect_rtp_deferred(pkt, len).ok(),
        Some(ctx) => ctx.protect_rtp(pkt, len).ok().map(|n| (n, None)),
        None if ep.ice.is_some() => {
            ep.stats.no_srtp_drops += 1;
            None
        }
        None => Some((len, None)),
    }
}

/// Queues the protected packet just written; the transport-wide sequence number written in it
/// is taken and the packet shown to the estimator.
pub(super) fn send_rtp(io: &mut impl RouterIo, ep: &mut Endpoint, (out_len, tag): Protected, dest: SocketAddr, now_us: u64) {
    if let Some(bwe) = ep.bwe.as_mut() {
        let seq = bwe.take_seq();
        bwe.estimator.on_packet_sent(seq, out_len, now_us);
    }
    match tag {
        Some(mac) => io.commit_transmit_tag_later(out_len, ep.transport, ep.id, &dest, mac),
        None => io.commit_transmit(out_len, ep.transport, ep.id, &dest),
    }
}

/// Rewrites one copy of a decrypted packet for an output (SSRC, sequence, timestamp, PT,
/// transport-wide sequence number), encrypts it with the output endpoint's context and queues it.
#[allow(clippy::too_many_arguments)]
pub(super) fn write_packet(io: &mut impl RouterIo, out: &mut Output, out_ep: &mut Endpoint, plain: &[u8], hdr: &rtp::RtpHeader, sid: u32, (seq, ts, marker): (u16, u32, Option<bool>), dest: SocketAddr, sent: Sent, now_us: u64) {
    let tag_later = io.batches_tags();
    let Some(pkt) = io.transmit_slot() else {
        out.stats.dropped += 1;
        return;
    };
    let written = (|| {
        let header_len = write_header(&mut pkt[..], plain, hdr, out_ep.bwe.as_ref())?;
        let rest = plain.get(hdr.header_len..)?;
        let len = header_len + rest.len();
        let head = pkt.get_mut(..len)?;
        head[header_len..].copy_from_slice(rest);
        if let (Some(rw), Some(payload)) = (out.pictures.as_mut(), head.get_mut(header_len..)) {
            rw.rewrite(u64::from(sid), payload);
        }
        if let Some(marker) = marker {
            rtp::set_marker(head, marker);
        }
        rtp::set_ssrc(head, out.ssrc);
        rtp::set_sequence(head, seq);
        rtp::set_timestamp(head, ts);
        if let Some(pt) = out.payload_type_for(hdr.payload_type) {
            rtp::set_payload_type(head, pt);
        }
        Some(len)
    })();
    let Some(len) = written else {
        out.stats.dropped += 1;
        return;
    };
    let Some(protected) = protect(&mut pkt[..], out_ep, len, tag_later) else {
        out.stats.dropped += 1;
        out_ep.stats.tx_failed += u64::from(out_ep.srtp_out.is_some());
        return;
    };
    let out_len = protected.0;
    send_rtp(io, out_ep, protected, dest, now_us);
    match sent {
        Sent::Media => {
            out.stats.packets += 1;
            out.stats.bytes += out_len as u64;
        }
        Sent::Retransmission => out.stats.retransmitted += 1,
    }
}

/// Probing (see `bandwidth`): while the transport is asked to probe, each media packet sent on
/// an output with RTX earns probe bytes, paid as RTX copies of that same packet (at most two),
/// so probes are paced like the media they ride on.
#[allow(clippy::too_many_arguments)]
pub(super) fn probe(io: &mut impl RouterIo, out: &mut Output, out_ep: &mut Endpoint, plain: &[u8], hdr: &rtp::RtpHeader, seq: u16, ts: u32, dest: SocketAddr, now_us: u64) {
    let Some(rtx) = out.rtx else { return };
    let size = plain.len() as u64;
    let Some(bwe) = out_ep.bwe.as_mut().filter(|b| b.probe_permille > 0) else { return };
    bwe.probe_credit += size * bwe.probe_permille / 1000;
    for _ in 0..2 {
        match out_ep.bwe.as_mut() {
            Some(bwe) if bwe.probe_credit >= size => bwe.probe_credit -= size,
            _ => return,
        }
        if !write_rtx(io, out, rtx, out_ep, plain, hdr, seq, ts, dest, now_us) {
            return;
        }
        if let Some(bwe) = out_ep.bwe.as_mut() {
            bwe.probe_packets += 1;
        }
    }
}

/// An RFC 4588 §4 retransmission of `plain` (sent as `out_seq`): the output's header with the
/// RTX SSRC, payload type and sequence number, then the original sequence number (OSN), then
/// the original payload (padding dropped). Probes (`Sent::Media`) are such copies of packets
/// just sent. False if it could not be sent.
#[allow(clippy::too_many_arguments)]
pub(super) fn write_rtx(io: &mut impl RouterIo, out: &mut Output, rtx: RtxConfig, out_ep: &mut Endpoint, plain: &[u8], hdr: &rtp::RtpHeader, out_seq: u16, ts: u32, dest: SocketAddr, now_us: u64) -> bool {
    let Some(payload) = hdr.payload(plain) else { return false };
    let tag_later = io.batches_tags();
    let Some(pkt) = io.transmit_slot() else { return false };
    let written = (|| {
        let header_len = write_header(&mut pkt[..], plain, hdr, out_ep.bwe.as_ref())?;
        let len = header_len + 2 + payload.len();
        let buf = pkt.get_mut(..len)?;
        buf[header_len..header_len + 2].copy_from_slice(&out_seq.to_be_bytes());
        buf[header_len + 2..].copy_from_slice(payload);
        if let (Some(rw), Some(sid)) = (out.pictures.as_mut(), out.source) {
            if let Some(original) = buf.get_mut(header_len + 2..) {
                rw.rewrite(u64::from(sid), original);
            }
        }
        buf[0] &= !0x20; // no padding
        rtp::set_ssrc(buf, rtx.ssrc);
        rtp::set_sequence(buf, out.rtx_seq);
        rtp::set_timestamp(buf, ts);
        rtp::set_payload_type(buf, rtx.payload_type);
        Some(len)
    })();
    let Some(len) = written else { return false };
    out.rtx_seq = out.rtx_seq.wrapping_add(1);
    let Some(protected) = protect(&mut pkt[..], out_ep, len, tag_later) else { return false };
    send_rtp(io, out_ep, protected, dest, now_us);
    true
}
