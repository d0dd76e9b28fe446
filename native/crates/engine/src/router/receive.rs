//! Datagrams in: STUN, DTLS, RTP from a home source (decrypted once, handed to other routers,
//! fanned out here) and packets handed over by other routers.

use super::*;

impl Router {
    // ---- packets ---------------------------------------------------------------------------

    /// One datagram received on an endpoint; RFC 7983 §7 demultiplexing on the first byte.
    /// `buf` holds the datagram in its first `len` bytes and is decrypted in place.
    pub fn on_datagram(&mut self, endpoint: u32, buf: &mut [u8], len: usize, from: SocketAddr, now_us: u64, io: &mut impl RouterIo) {
        let Some(ep) = self.endpoints.get_mut(&endpoint) else { return };
        let len = len.min(buf.len());
        ep.stats.rx_packets += 1;
        ep.stats.rx_bytes += len as u64;
        let Some(&first) = buf[..len].first() else {
            ep.stats.demux_unknown += 1;
            return;
        };
        match first {
            0..=3 => Self::on_stun(ep, &mut self.stun_out, &mut self.events, &buf[..len], from, now_us, io),
            20..=63 => {
                // DTLS only runs on WebRTC endpoints; on a plain RTP leg it is noise, and it must
                // not reach the control plane as one event per datagram.
                if ep.ice.is_none() {
                    ep.stats.demux_unknown += 1;
                    return;
                }
                if !ep.accepts_from(from) {
                    ep.stats.unvalidated_drops += 1;
                    return;
                }
                ep.stats.dtls_in += 1;
                self.events.push(Event::Dtls { endpoint, from, data: buf[..len].to_vec() });
            }
            128..=191 => {
                if !ep.accepts_from(from) {
                    ep.stats.unvalidated_drops += 1;
                    return;
                }
                if ep.ice.is_none() && ep.latch && ep.remote.is_none() {
                    ep.remote = Some(from);
                    self.events.push(Event::RemoteLatched { endpoint, address: from });
                }
                if rtp::is_rtcp(&buf[..len]) {
                    self.on_rtcp(endpoint, buf, len, now_us, io);
                } else {
                    self.on_rtp(endpoint, buf, len, now_us, io);
                }
            }
            _ => ep.stats.demux_unknown += 1,
        }
    }

    pub(super) fn on_stun(ep: &mut Endpoint, out: &mut Vec<u8>, events: &mut Vec<Event>, data: &[u8], from: SocketAddr, now_us: u64, io: &mut impl RouterIo) {
        let Some(agent) = ep.ice.as_mut() else {
            ep.stats.stun_dropped += 1;
            return;
        };
        if !ferry_stun::is_stun(data) {
            ep.stats.stun_dropped += 1;
            return;
        }
        ep.stats.stun_requests += 1;
        match agent.handle(data, from, now_us / 1000, out) {
            StunOutcome::Reply { .. } => ep.stats.stun_replies += 1,
            StunOutcome::ErrorReply { .. } => ep.stats.stun_error_replies += 1,
            StunOutcome::Drop(_) => {
                ep.stats.stun_dropped += 1;
                return;
            }
        }
        while let Some(ev) = agent.take_event() {
            if let IceEvent::Selected(address) = ev {
                ep.remote = Some(address);
                events.push(Event::IceSelected { endpoint: ep.id, address });
            }
        }
        if out.is_empty() || out.len() > MAX_DATAGRAM {
            return;
        }
        match io.transmit_slot() {
            Some(slot) => {
                slot[..out.len()].copy_from_slice(out);
                io.commit_transmit(out.len(), ep.transport, ep.id, &from);
            }
            None => ep.stats.tx_failed += 1,
        }
    }

    pub(super) fn on_rtp(&mut self, id: u32, buf: &mut [u8], mut len: usize, now_us: u64, io: &mut impl RouterIo) {
        let Some(ep) = self.endpoints.get_mut(&id) else { return };
        ep.stats.rtp_in += 1;
        if let Some(ctx) = ep.srtp_in.as_mut() {
            match ctx.unprotect_rtp(buf, len) {
                Ok(n) => len = n,
                Err(e) => {
                    count_srtp_error(&mut ep.stats, e);
                    return;
                }
            }
        } else if ep.ice.is_some() {
            // A WebRTC endpoint never carries plain RTP (RFC 8827 §6.5): no keys yet means drop.
            ep.stats.no_srtp_drops += 1;
            return;
        }
        let mut hdr = match rtp::parse_rtp(&buf[..len]) {
            Ok(h) => h,
            Err(_) => {
                ep.stats.rtp_malformed += 1;
                return;
            }
        };
        // RFC 4588 §4: a retransmission on the publisher's RTX stream becomes the original
        // packet again (original sequence number, SSRC and payload type) before anything else.
        if let Some(&sid) = ep.rtx_sources_by_ssrc.get(&hdr.ssrc) {
            let restored = self.sources.get(&sid).and_then(|src| Some((src.config.ssrc, src.media_payload_type?)));
            match restored.and_then(|(ssrc, pt)| unwrap_rtx(buf, len, &hdr, ssrc, pt)) {
                Some((n, h)) => {
                    len = n;
                    hdr = h;
                    ep.stats.rtx_in += 1;
                }
                None => {
                    ep.stats.rtp_malformed += 1;
                    return;
                }
            }
        }
        let plain = &buf[..len];
        if let Some(twcc) = ep.twcc.as_mut() {
            // Every packet on the transport counts for the sender's estimate, known SSRC or not.
            if let Some(&[hi, lo, ..]) = rtp::find_extension(plain, &hdr, twcc.extension_id) {
                twcc.recorder.record(u16::from_be_bytes([hi, lo]), now_us);
                twcc.media_ssrc = hdr.ssrc;
            }
        }
        let Some(&sid) = ep.sources_by_ssrc.get(&hdr.ssrc) else {
            ep.stats.unknown_ssrc += 1;
            if ep.reported_unknown.len() < MAX_REPORTED_UNKNOWN_SSRCS && ep.reported_unknown.insert(hdr.ssrc) {
                let rid = ep
                    .rid_extension_id
                    .and_then(|rid_id| rtp::find_extension(plain, &hdr, rid_id))
                    .and_then(|b| std::str::from_utf8(b).ok())
                    .map(|s| s.to_string());
                self.events.push(Event::UnknownSsrc { endpoint: id, ssrc: hdr.ssrc, payload_type: hdr.payload_type, rid });
            }
            return;
        };
        let Some(src) = self.sources.get_mut(&sid) else { return };
        src.stats.packets += 1;
        src.stats.bytes += len as u64;
        let temporal = match src.config.codec {
            Some(ferry_rtp::VideoCodec::Vp8) => hdr.payload(plain).and_then(vp8::parse).and_then(|d| d.temporal).map(|t| t.0),
            Some(ferry_rtp::VideoCodec::Vp9) => hdr.payload(plain).and_then(vp9::parse).and_then(|d| d.layer).map(|l| l.temporal),
            _ => None,
        };
        if let Some(tid) = temporal {
            src.temporal_bytes[usize::from(tid.min(3))] += len as u64;
        }
        src.media_payload_type = Some(hdr.payload_type);
        src.reception.update(hdr.sequence);
        if let Some(nack) = src.nack.as_mut() {
            nack.on_packet(hdr.sequence, now_us);
        }
        if let Some((extension_id, meter)) = src.audio_level.as_mut() {
            // Packets without the element do not count.
            if let Some(average) = rtp::audio_level(plain, &hdr, *extension_id).and_then(|(_, level)| meter.observe(level)) {
                self.events.push(Event::AudioLevel { endpoint: src.endpoint, source: sid, level: average });
            }
        }
        if let Some(detector) = src.telephone_events.as_mut() {
            if let Some(ev) = hdr.payload(plain).and_then(|payload| detector.observe(hdr.payload_type, hdr.timestamp, payload)) {
                self.events.push(Event::TelephoneEvent { endpoint: src.endpoint, source: sid, event: ev.event, volume: ev.volume, duration: ev.duration });
            }
        }
        if let Some(recording) = src.recording {
            io.record(recording, plain, now_us);
        }
        // Other threads first, so they work on the packet while this one fans it out too.
        if !src.subscribers.is_empty() {
            self.forward_scratch.clear();
            self.forward_scratch.extend_from_slice(&src.subscribers);
            for sub in &mut src.subscribers {
                sub.seq += 1;
            }
            io.forward(&self.forward_scratch, sid, plain);
        }
        self.fan_out(sid, plain, &hdr, now_us, io);
    }

    /// A decrypted packet of a source homed on another router (see `RouterIo::forward`).
    pub fn on_forwarded(&mut self, source: u32, subscription: u32, seq: u64, packet: &[u8], now_us: u64, io: &mut impl RouterIo) {
        let Some(feed) = self.feeds.get_mut(&source).filter(|f| f.home != self.worker && f.subscription == subscription) else {
            // No longer wanted, or sent for an earlier subscription.
            self.cross.unwanted += 1;
            return;
        };
        self.cross.received += 1;
        // Numbered from 0 per subscription, so packets before the first one received were lost too.
        let gap = match feed.last_seq {
            Some(last) if seq > last => seq - last - 1,
            Some(_) => {
                // Reordered or repeated: the home thread numbers in order, so this is a bug
                // elsewhere; never forward it twice.
                return;
            }
            None => seq,
        };
        feed.last_seq = Some(seq);
        if gap > 0 {
            // A full queue dropped these on the way here: every output of the feed missed them.
            self.cross.gaps += gap;
            for oid in &feed.outputs {
                if let Some(o) = self.outputs.get_mut(oid) {
                    o.stats.queue_drops += gap;
                    o.stats.dropped += gap;
                }
            }
        }
        let Ok(hdr) = rtp::parse_rtp(packet) else { return };
        self.fan_out(source, packet, &hdr, now_us, io);
    }

    /// Rewrites and sends one decrypted packet of `sid` to each output of its feed here,
    /// completing switches that waited for this source's keyframe.
    pub(super) fn fan_out(&mut self, sid: u32, plain: &[u8], hdr: &rtp::RtpHeader, now_us: u64, io: &mut impl RouterIo) {
        let Some(feed) = self.feeds.get_mut(&sid) else { return };
        if let Some(gop) = feed.gop.as_mut() {
            // Kept even while nobody watches: the next output starts from it.
            gop.record(feed.codec, plain, hdr);
        }
        if feed.outputs.is_empty() {
            return;
        }
        if let Some(history) = feed.history.as_mut() {
            history.insert(hdr.sequence, plain);
        }
        let feed = &*feed;
        let clock_rate = feed.clock_rate;
        let codec = feed.codec;
        // Decided at most once per packet, and only when some output waits for this source.
        let mut starts_keyframe: Option<bool> = None;
        // The VP8 descriptor, read once per packet for every output's temporal-layer choice.
        let vp8_descriptor = if codec == Some(ferry_rtp::VideoCodec::Vp8) { hdr.payload(plain).and_then(vp8::parse) } else { None };
        let vp9_descriptor = if codec == Some(ferry_rtp::VideoCodec::Vp9) { hdr.payload(plain).and_then(vp9::parse) } else { None };
        for &oid in &feed.outputs {
            let Some(out) = self.outputs.get_mut(&oid) else { continue };
            if out.source != Some(sid) {
                // Listed here only while waiting to switch to this source at a keyframe.
                if out.pending_source != Some(sid) {
                    continue;
                }
                let is_keyframe = *starts_keyframe.get_or_insert_with(|| match (codec, hdr.payload(plain)) {
                    (Some(codec), Some(payload)) => ferry_rtp::is_keyframe(codec, payload),
                    _ => false,
                });
                if !is_keyframe {
                    continue;
                }
                self.completed_switches.push((out.source, oid));
                out.source = Some(sid);
                out.pending_source = None;
                self.events.push(Event::OutputSwitched { endpoint: out.endpoint, output: oid, source: sid });
            }
            if out.paused {
                out.stats.dropped += 1;
                continue;
            }
            if codec == Some(ferry_rtp::VideoCodec::Vp8) {
                if let Some((tid, sync)) = vp8_descriptor.and_then(|d| d.temporal) {
                    let frame_start = vp8_descriptor.is_some_and(|d| d.frame_start);
                    if let Some(pending) = out.temporal_pending {
                        // Up at a frame the decoder can take: layer sync, or the base layer.
                        if frame_start && (sync || tid == 0) {
                            out.temporal_target = (pending != u8::MAX).then_some(pending);
                            out.temporal_pending = None;
                            self.events.push(Event::OutputTemporal { endpoint: out.endpoint, output: oid, layer: pending });
                        }
                    }
                    if out.temporal_target.is_some_and(|target| tid > target) {
                        // Not sent: the output's numbering closes over it, so no loss shows.
                        out.switching.skip(u64::from(sid), hdr.sequence);
                        out.stats.filtered += 1;
                        continue;
                    }
                }
                if out.pictures.is_none() {
                    out.pictures = Some(PictureRewriter::Vp8(Vp8Rewriter::new()));
                }
            }
            let mut marker = None;
            if let Some(d) = &vp9_descriptor {
                let mut change = SvcChange::default();
                let verdict = out.svc.judge(d, &mut change);
                push_svc_events(&mut self.events, out.endpoint, oid, change);
                match verdict {
                    SvcVerdict::Drop => {
                        out.switching.skip(u64::from(sid), hdr.sequence);
                        out.stats.filtered += 1;
                        continue;
                    }
                    SvcVerdict::Forward { end_of_picture } => marker = end_of_picture.then_some(true),
                }
                if out.pictures.is_none() {
                    out.pictures = Some(PictureRewriter::Vp9(Vp9Rewriter::new()));
                }
            }
            if out.payload_type_for(hdr.payload_type).is_none() {
                // Not a type this output's receiver takes: its numbering closes over it.
                out.switching.skip(u64::from(sid), hdr.sequence);
                out.stats.filtered += 1;
                continue;
            }
            let Some((seq, ts)) = out.switching.process(u64::from(sid), hdr.sequence, hdr.timestamp, now_us, clock_rate) else {
                out.stats.dropped += 1;
                continue;
            };
            let Some(out_ep) = self.endpoints.get_mut(&out.endpoint) else { continue };
            let Some(dest) = out_ep.remote else {
                out_ep.stats.no_remote_drops += 1;
                out.stats.dropped += 1;
                continue;
            };
            write_packet(io, out, out_ep, plain, hdr, sid, (seq, ts, marker), dest, Sent::Media, now_us);
            probe(io, out, out_ep, plain, hdr, seq, ts, dest, now_us);
        }
        // The switched outputs leave their old sources' feeds.
        let mut completed = std::mem::take(&mut self.completed_switches);
        for (old, oid) in completed.drain(..) {
            if let Some(old) = old {
                self.leave_feed(old, oid, io);
            }
        }
        self.completed_switches = completed;
    }

}

/// RFC 4588 §4: turns the RTX packet in `buf[..len]` (header, 2-byte original sequence number,
/// original payload) back into the original packet in place: OSN as the sequence number, the
/// source's SSRC and payload type, padding dropped. `None` if it carries no OSN.
pub(super) fn unwrap_rtx(buf: &mut [u8], len: usize, hdr: &rtp::RtpHeader, ssrc: u32, payload_type: u8) -> Option<(usize, rtp::RtpHeader)> {
    let payload_end = len.checked_sub(hdr.padding_len)?;
    let osn_at = hdr.header_len;
    if payload_end < osn_at + 2 || payload_end > buf.len() {
        return None;
    }
    let osn = u16::from_be_bytes([buf[osn_at], buf[osn_at + 1]]);
    buf.copy_within(osn_at + 2..payload_end, osn_at);
    let new_len = payload_end - 2;
    let packet = buf.get_mut(..new_len)?;
    packet[0] &= !0x20; // padding is gone
    rtp::set_sequence(packet, osn);
    rtp::set_ssrc(packet, ssrc);
    rtp::set_payload_type(packet, payload_type);
    let hdr = rtp::parse_rtp(packet).ok()?;
    Some((new_len, hdr))
}

pub(super) fn count_srtp_error(stats: &mut EndpointStats, e: SrtpError) {
    match e {
        SrtpError::AuthFailed => stats.srtp_auth_failures += 1,
        SrtpError::Replayed | SrtpError::TooOld => stats.srtp_replays += 1,
        _ => stats.srtp_other_failures += 1,
    }
}
