//! RTCP: what receivers report on outputs (NACK, PLI/FIR, REMB, receiver reports, transport-cc)
//! and what ferry tells publishers (NACKs, keyframe requests, transport-cc feedback, REMB caps).

use super::*;

impl Router {
    pub(super) fn on_rtcp(&mut self, id: u32, buf: &mut [u8], mut len: usize, now_us: u64, io: &mut impl RouterIo) {
        let Some(ep) = self.endpoints.get_mut(&id) else { return };
        ep.stats.rtcp_in += 1;
        if let Some(ctx) = ep.srtp_in.as_mut() {
            match ctx.unprotect_rtcp(buf, len) {
                Ok(n) => len = n,
                Err(_) => {
                    ep.stats.srtcp_failures += 1;
                    return;
                }
            }
        } else if ep.ice.is_some() {
            ep.stats.no_srtp_drops += 1;
            return;
        }
        let feedback = match rtcp::parse_feedback(&buf[..len]) {
            Ok(f) => f,
            Err(_) => {
                ep.stats.rtcp_malformed += 1;
                return;
            }
        };
        let mut keyframe_sources: Vec<u32> = Vec::new();
        let mut remb: Option<u64> = None;
        let mut nacks: Vec<(u32, Vec<u16>)> = Vec::new();
        let mut transport_feedback = false;
        for fb in feedback {
            match fb {
                rtcp::Feedback::Nack { media_ssrc, lost, .. } => {
                    if let Some(&oid) = ep.outputs_by_ssrc.get(&media_ssrc) {
                        nacks.push((oid, lost));
                    }
                }
                rtcp::Feedback::Pli { media_ssrc, .. } | rtcp::Feedback::Fir { media_ssrc, .. } => {
                    if let Some(src) = ep.outputs_by_ssrc.get(&media_ssrc).and_then(|oid| self.outputs.get(oid)).and_then(|o| o.source) {
                        if !keyframe_sources.contains(&src) {
                            keyframe_sources.push(src);
                        }
                    }
                }
                rtcp::Feedback::Remb { bitrate_bps, .. } => remb = Some(bitrate_bps),
                rtcp::Feedback::TransportCc { .. } => transport_feedback = true,
                rtcp::Feedback::ReceiverReport { blocks, .. } => {
                    // Loss the receiver saw on what ferry sends it: reported (rate-limited) for slowlink.
                    let due = ep.last_loss_report_us == 0 || now_us.saturating_sub(ep.last_loss_report_us) >= REMB_EVENT_INTERVAL_US;
                    if due {
                        if let Some(b) = blocks.iter().filter(|b| ep.outputs_by_ssrc.contains_key(&b.ssrc)).max_by_key(|b| b.fraction_lost) {
                            ep.last_loss_report_us = now_us.max(1);
                            self.events.push(Event::ReceiverLoss { endpoint: id, ssrc: b.ssrc, fraction_lost: b.fraction_lost, cumulative_lost: b.cumulative_lost });
                        }
                    }
                }
                _ => {}
            }
        }
        if let Some(bitrate_bps) = remb {
            if ep.last_remb_us == 0 || now_us.saturating_sub(ep.last_remb_us) >= REMB_EVENT_INTERVAL_US {
                ep.last_remb_us = now_us.max(1);
                self.events.push(Event::Remb { endpoint: id, bitrate_bps });
            }
        }
        if transport_feedback {
            self.on_transport_feedback(id, &buf[..len], now_us, io);
        }
        for src in keyframe_sources {
            self.request_keyframe(src, false, now_us, io);
        }
        for (oid, lost) in nacks {
            self.retransmit(oid, &lost, now_us, io);
        }
    }

    /// Transport-cc feedback (draft-holmer-rmcat-transport-wide-cc-extensions-01 §3.1) on what
    /// ferry sent this endpoint: into its estimator; the layers follow the estimate.
    pub(super) fn on_transport_feedback(&mut self, id: u32, compound: &[u8], now_us: u64, io: &mut impl RouterIo) {
        let Some(ep) = self.endpoints.get_mut(&id) else { return };
        let Some(bwe) = ep.bwe.as_mut() else { return };
        for packet in rtcp::packets(compound).map_while(Result::ok) {
            if packet.packet_type == rtcp::PT_RTPFB && packet.count_or_fmt == rtcp::FMT_TRANSPORT_CC {
                if let Some(bytes) = compound.get(packet.offset..packet.offset + packet.len) {
                    if bwe.estimator.on_feedback(bytes, now_us) {
                        bwe.feedback_received += 1;
                    }
                }
            }
        }
        bwe.note_estimate(now_us);
        if now_us.saturating_sub(bwe.last_choice_us) >= bandwidth::CHOOSE_INTERVAL_US {
            bwe.last_choice_us = now_us;
            self.choose_layers(id, now_us, io);
        }
        self.report_estimate(id, now_us);
    }

    /// `Event::BandwidthEstimate` when due (see `SendBwe::event_due`).
    pub(super) fn report_estimate(&mut self, id: u32, now_us: u64) {
        let Some(bwe) = self.endpoints.get_mut(&id).and_then(|ep| ep.bwe.as_mut()) else { return };
        if !bwe.event_due(now_us) {
            return;
        }
        let bitrate_bps = bwe.estimator.estimate_bps();
        bwe.last_event_us = now_us.max(1);
        bwe.last_event_bps = bitrate_bps;
        bwe.last_event_limited = bwe.limited;
        let rtt_ms = bwe.estimator.rtt_us().map_or(0, |us| (us / 1000) as u32);
        self.events.push(Event::BandwidthEstimate { endpoint: id, bitrate_bps, loss_permille: bwe.estimator.loss_permille(), rtt_ms, limited: bwe.limited });
    }

    /// Answers a generic NACK (RFC 4585 §6.2.1) for an output: each packet still in its
    /// source's history is sent again with the output's numbering, as RFC 4588 RTX when the
    /// subscriber negotiated it, else as it was; within the output's retransmission rate.
    pub(super) fn retransmit(&mut self, oid: u32, lost: &[u16], now_us: u64, io: &mut impl RouterIo) {
        let Some(out) = self.outputs.get_mut(&oid) else { return };
        let refill = now_us.saturating_sub(out.rtx_refilled_us) * RETRANSMISSIONS_PER_SECOND / 1_000_000;
        if refill > 0 {
            out.rtx_tokens = (u64::from(out.rtx_tokens) + refill).min(u64::from(RETRANSMISSION_BURST)) as u32;
            out.rtx_refilled_us = now_us;
        }
        let Some(out_ep) = self.endpoints.get_mut(&out.endpoint) else { return };
        let Some(dest) = out_ep.remote else { return };
        for &out_seq in lost {
            out.stats.nacked += 1;
            let found = out.switching.source_packet(out_seq).and_then(|(sid, seq, ts_offset)| {
                let bytes = self.feeds.get(&u32::try_from(sid).ok()?)?.history.as_ref()?.get(seq)?;
                Some((bytes, ts_offset))
            });
            let Some((bytes, ts_offset)) = found else {
                out.stats.rtx_missed += 1;
                continue;
            };
            if out.rtx_tokens == 0 {
                out.stats.rtx_missed += 1;
                continue;
            }
            let Ok(hdr) = rtp::parse_rtp(bytes) else {
                out.stats.rtx_missed += 1;
                continue;
            };
            out.rtx_tokens -= 1;
            let ts = hdr.timestamp.wrapping_add(ts_offset);
            match out.rtx {
                Some(rtx) => {
                    if write_rtx(io, out, rtx, out_ep, bytes, &hdr, out_seq, ts, dest, now_us) {
                        out.stats.retransmitted += 1;
                    } else {
                        out.stats.rtx_missed += 1;
                    }
                }
                None => write_packet(io, out, out_ep, bytes, &hdr, sid_of(out), (out_seq, ts, None), dest, Sent::Retransmission, now_us),
            }
        }
    }

    /// Sends a PLI (RFC 4585 §6.3.1) for a home `source` to its publisher, at most once per
    /// KEYFRAME_MIN_INTERVAL_US unless `force`d.
    pub(super) fn relay_keyframe_request(&mut self, source: u32, force: bool, now_us: u64, io: &mut impl RouterIo) {
        let Some(src) = self.sources.get_mut(&source) else { return };
        if !force {
            if let Some(last) = src.last_keyframe_request_us {
                if now_us.saturating_sub(last) < KEYFRAME_MIN_INTERVAL_US {
                    return;
                }
            }
        }
        src.last_keyframe_request_us = Some(now_us);
        let media_ssrc = src.config.ssrc;
        let Some(ep) = self.endpoints.get_mut(&src.endpoint) else { return };
        let Some(dest) = ep.remote else { return };
        let pli = rtcp::build_pli(FEEDBACK_SENDER_SSRC, media_ssrc);
        if queue_rtcp(io, ep, &pli, dest) {
            ep.stats.keyframe_requests_relayed += 1;
            self.events.push(Event::KeyframeRequested { source });
        }
    }

    /// After a batch of datagrams from one endpoint: NACKs for what its publishers' streams
    /// are missing, and transport-cc feedback when due.
    pub fn after_batch(&mut self, endpoint: u32, now_us: u64, io: &mut impl RouterIo) {
        if let Some(ep) = self.endpoints.get(&endpoint) {
            self.nack_scratch_sources.clear();
            self.nack_scratch_sources.extend(ep.sources_by_ssrc.values().copied());
            for i in 0..self.nack_scratch_sources.len() {
                let sid = self.nack_scratch_sources[i];
                self.send_nacks(sid, now_us, io);
            }
        }
        self.send_transport_feedback(endpoint, now_us, TWCC_FEEDBACK_INTERVAL_US, io);
    }

    /// A generic NACK (RFC 4585 §6.2.1) to a source's publisher for the packets its stream is
    /// missing now, when any.
    pub(super) fn send_nacks(&mut self, sid: u32, now_us: u64, io: &mut impl RouterIo) {
        let Some(src) = self.sources.get_mut(&sid) else { return };
        let Some(nack) = src.nack.as_mut() else { return };
        self.nack_scratch.clear();
        nack.poll(now_us, &mut self.nack_scratch);
        let stats = nack.stats();
        src.stats.nacked = stats.requested;
        src.stats.retransmitted = stats.recovered;
        src.stats.rtx_missed = stats.given_up;
        if self.nack_scratch.is_empty() {
            return;
        }
        let media_ssrc = src.config.ssrc;
        let Some(ep) = self.endpoints.get_mut(&src.endpoint) else { return };
        let Some(dest) = ep.remote else { return };
        // One RTCP packet holds up to its item limit; what is left is asked for next time.
        let packet = rtcp::build_nack(FEEDBACK_SENDER_SSRC, media_ssrc, &self.nack_scratch);
        if queue_rtcp(io, ep, &packet, dest) {
            ep.stats.nacks_sent += 1;
        }
    }

    /// Sends transport-cc feedback for what an endpoint received, at most every `min_interval_us`
    /// (draft-holmer-rmcat-transport-wide-cc-extensions-01 §3.1; libwebrtc sends every 50–250 ms).
    pub(super) fn send_transport_feedback(&mut self, id: u32, now_us: u64, min_interval_us: u64, io: &mut impl RouterIo) {
        let Some(ep) = self.endpoints.get_mut(&id) else { return };
        let Some(dest) = ep.remote else { return };
        let Some(twcc) = ep.twcc.as_mut() else { return };
        if twcc.recorder.pending() == 0 || now_us.saturating_sub(twcc.last_feedback_us) < min_interval_us {
            return;
        }
        twcc.last_feedback_us = now_us;
        self.feedback_scratch.clear();
        twcc.recorder.build_feedback(FEEDBACK_SENDER_SSRC, twcc.media_ssrc, &mut self.feedback_scratch);
        for fb in &self.feedback_scratch {
            if queue_rtcp(io, ep, fb, dest) {
                ep.stats.transport_feedback_sent += 1;
            }
        }
    }

}

/// Queues one RTCP packet ferry originates on an endpoint, SRTCP-protected when the endpoint has
/// keys; a WebRTC endpoint without keys yet sends nothing (RFC 8827 §6.5). True when queued.
pub(super) fn queue_rtcp(io: &mut impl RouterIo, ep: &mut Endpoint, packet: &[u8], dest: SocketAddr) -> bool {
    let Some(slot) = io.transmit_slot() else { return false };
    let Some(plain) = slot.get_mut(..packet.len()) else { return false };
    plain.copy_from_slice(packet);
    let len = match ep.srtp_out.as_mut() {
        Some(ctx) => match ctx.protect_rtcp(&mut slot[..], packet.len()) {
            Ok(n) => n,
            Err(_) => return false,
        },
        None if ep.ice.is_some() => return false,
        None => packet.len(),
    };
    io.commit_transmit(len, ep.transport, ep.id, &dest);
    true
}
