//! Configuration: endpoints, sources, outputs and what feeds them; messages from other routers.

use super::*;

impl Router {
    // ---- configuration ---------------------------------------------------------------------

    pub fn add_endpoint(&mut self, id: u32, transport: Transport, local: SocketAddr, config: &EndpointConfig) -> Result<(), String> {
        if self.endpoints.contains_key(&id) {
            return Err(format!("endpoint {id} exists"));
        }
        self.endpoints.insert(id, Endpoint::new(id, transport, local, config));
        Ok(())
    }

    pub fn has_endpoint(&self, id: u32) -> bool {
        self.endpoints.contains_key(&id)
    }

    /// Transport of an endpoint (for the worker's direct sends).
    pub fn transport(&self, id: u32) -> Option<Transport> {
        self.endpoints.get(&id).map(|ep| ep.transport)
    }

    /// Removes an endpoint with its sources and outputs.
    pub fn remove_endpoint(&mut self, id: u32, io: &mut impl RouterIo) -> Result<ClosedRoutes, String> {
        let ep = self.endpoints.remove(&id).ok_or_else(|| format!("no endpoint {id}"))?;
        let sources: Vec<u32> = ep.sources_by_ssrc.values().copied().collect();
        let outputs: Vec<u32> = ep.outputs_by_ssrc.values().copied().collect();
        for &sid in &sources {
            let _ = self.remove_source(sid, io);
        }
        for &oid in &outputs {
            let _ = self.remove_output(oid, io);
        }
        Ok(ClosedRoutes { sources, outputs })
    }

    pub(super) fn endpoint_mut(&mut self, id: u32) -> Result<&mut Endpoint, String> {
        self.endpoints.get_mut(&id).ok_or_else(|| format!("no endpoint {id}"))
    }

    pub fn set_srtp(&mut self, id: u32, keys: &SrtpKeys) -> Result<(), String> {
        let ep = self.endpoint_mut(id)?;
        let out = SrtpContext::new(keys.profile, &keys.local_key, &keys.local_salt).map_err(|e| format!("local SRTP key: {e}"))?;
        let inb = SrtpContext::new(keys.profile, &keys.remote_key, &keys.remote_salt).map_err(|e| format!("remote SRTP key: {e}"))?;
        ep.srtp_out = Some(out);
        ep.srtp_in = Some(inb);
        Ok(())
    }

    pub fn set_remote(&mut self, id: u32, remote: Option<SocketAddr>) -> Result<(), String> {
        self.endpoint_mut(id).map(|ep| ep.remote = remote)
    }

    pub fn set_ice_remote_ufrag(&mut self, id: u32, ufrag: Option<&str>) -> Result<(), String> {
        match self.endpoint_mut(id)?.ice.as_mut() {
            Some(agent) => {
                agent.set_remote_ufrag(ufrag);
                Ok(())
            }
            None => Err(format!("endpoint {id} has no ICE agent")),
        }
    }

    /// ICE restart (RFC 8445 §9): new local credentials and the peer's new ufrag.
    pub fn restart_ice(&mut self, id: u32, ufrag: &str, pwd: &str, remote_ufrag: Option<&str>) -> Result<(), String> {
        match self.endpoint_mut(id)?.ice.as_mut() {
            Some(agent) => {
                agent.restart(ufrag, pwd, remote_ufrag);
                Ok(())
            }
            None => Err(format!("endpoint {id} has no ICE agent")),
        }
    }

    /// Counts a datagram the worker sent (or failed to send) directly for an endpoint.
    pub fn record_direct_send(&mut self, id: u32, bytes: usize, ok: bool) {
        if let Some(ep) = self.endpoints.get_mut(&id) {
            if ok {
                ep.stats.dtls_out += 1;
                ep.stats.tx_packets += 1;
                ep.stats.tx_bytes += bytes as u64;
            } else {
                ep.stats.tx_failed += 1;
            }
        }
    }

    /// A DTLS record the control plane sent went through the send queue (counted there as a
    /// datagram): count it as DTLS too.
    pub fn record_dtls_out(&mut self, id: u32) {
        if let Some(ep) = self.endpoints.get_mut(&id) {
            ep.stats.dtls_out += 1;
        }
    }

    /// Counts what the worker's flush of queued transmits achieved for an endpoint.
    pub fn record_sent(&mut self, id: u32, packets: usize, bytes: usize, failed: usize) {
        if let Some(ep) = self.endpoints.get_mut(&id) {
            ep.stats.tx_packets += packets as u64;
            ep.stats.tx_bytes += bytes as u64;
            ep.stats.tx_failed += failed as u64;
        }
    }

    pub fn add_source(&mut self, id: u32, endpoint: u32, config: SourceConfig) -> Result<(), String> {
        let ep = self.endpoints.get_mut(&endpoint).ok_or_else(|| format!("no endpoint {endpoint}"))?;
        if config.clock_rate == 0 {
            return Err("clock rate must be > 0".into());
        }
        if ep.sources_by_ssrc.contains_key(&config.ssrc) {
            return Err(format!("endpoint {endpoint} already has a source with SSRC {}", config.ssrc));
        }
        ep.sources_by_ssrc.insert(config.ssrc, id);
        ep.reported_unknown.remove(&config.ssrc);
        let kind = config.kind;
        let history = history_for(config.kind);
        self.feeds.insert(id, Feed { home: self.worker, codec: config.codec, clock_rate: config.clock_rate, outputs: Vec::new(), subscription: 0, last_seq: None, history, gop: None });
        self.sources.insert(
            id,
            Source {
                endpoint,
                config,
                subscribers: Vec::new(),
                last_keyframe_request_us: None,
                stats: StreamStats::default(),
                audio_level: None,
                telephone_events: None,
                recording: None,
                reception: ReceptionStats::default(),
                last_loss_check_us: 0,
                nack: (kind == MediaKind::Video).then(NackGenerator::new),
                rtx: None,
                media_payload_type: None,
                rate_mark_bytes: 0,
                rate_mark_us: 0,
                temporal_bytes: [0; 4],
            },
        );
        Ok(())
    }

    pub fn remove_source(&mut self, id: u32, io: &mut impl RouterIo) -> Result<(), String> {
        let src = self.sources.remove(&id).ok_or_else(|| format!("no source {id}"))?;
        self.rates.remove(id);
        if let Some(ep) = self.endpoints.get_mut(&src.endpoint) {
            if ep.sources_by_ssrc.get(&src.config.ssrc) == Some(&id) {
                ep.sources_by_ssrc.remove(&src.config.ssrc);
            }
            if let Some(rtx) = src.rtx {
                if ep.rtx_sources_by_ssrc.get(&rtx.ssrc) == Some(&id) {
                    ep.rtx_sources_by_ssrc.remove(&rtx.ssrc);
                }
            }
        }
        self.drop_feed(id);
        for sub in src.subscribers {
            io.message(sub.worker, PeerMessage::SourceGone { source: id });
        }
        Ok(())
    }

    /// A source is gone: outputs stay (a subscriber may be switched to another source) but go
    /// idle, or move at once to the source they were waiting for, since no old stream is left
    /// to bridge the wait.
    pub(super) fn drop_feed(&mut self, id: u32) {
        let Some(feed) = self.feeds.remove(&id) else { return };
        for oid in feed.outputs {
            if let Some(o) = self.outputs.get_mut(&oid) {
                if o.source == Some(id) {
                    o.source = o.pending_source.take();
                } else if o.pending_source == Some(id) {
                    o.pending_source = None;
                }
            }
        }
    }

    /// The publisher's RFC 4588 retransmission stream for a source (SSRC and payload type from
    /// `a=ssrc-group:FID` and the rtx `apt`), or none: its packets are unwrapped to the source.
    pub fn set_source_rtx(&mut self, source: u32, rtx: Option<RtxConfig>) -> Result<(), String> {
        let src = self.sources.get_mut(&source).ok_or_else(|| format!("no source {source}"))?;
        let ep = self.endpoints.get_mut(&src.endpoint).ok_or_else(|| format!("no endpoint {}", src.endpoint))?;
        if let Some(r) = rtx {
            if ep.sources_by_ssrc.contains_key(&r.ssrc) || ep.rtx_sources_by_ssrc.get(&r.ssrc).is_some_and(|&s| s != source) {
                return Err(format!("SSRC {} is taken on endpoint {}", r.ssrc, src.endpoint));
            }
        }
        if let Some(old) = src.rtx.take() {
            ep.rtx_sources_by_ssrc.remove(&old.ssrc);
        }
        if let Some(r) = rtx {
            ep.rtx_sources_by_ssrc.insert(r.ssrc, source);
            ep.reported_unknown.remove(&r.ssrc);
        }
        src.rtx = rtx;
        Ok(())
    }

    /// Caps what the publisher of `source`'s endpoint sends (draft-alvestrand-rmcat-remb: REMB
    /// listing the endpoint's video SSRCs), repeated every second; `None` stops.
    pub fn set_bitrate_cap(&mut self, source: u32, bps: Option<u64>, now_us: u64, io: &mut impl RouterIo) -> Result<(), String> {
        let endpoint = self.sources.get(&source).ok_or_else(|| format!("no source {source}"))?.endpoint;
        let ep = self.endpoints.get_mut(&endpoint).ok_or_else(|| format!("no endpoint {endpoint}"))?;
        let lifted = ep.remb_cap_bps.is_some() && bps.is_none();
        ep.remb_cap_bps = bps;
        if bps.is_some() {
            self.send_remb_cap(endpoint, now_us, io);
        } else if lifted {
            // A sender keeps the last REMB as its ceiling (libwebrtc does): lift it once.
            self.send_remb(endpoint, LIFTED_REMB_BPS, now_us, io);
        }
        Ok(())
    }

    pub(super) fn send_remb_cap(&mut self, endpoint: u32, now_us: u64, io: &mut impl RouterIo) {
        let Some(bps) = self.endpoints.get(&endpoint).and_then(|ep| ep.remb_cap_bps) else { return };
        self.send_remb(endpoint, bps, now_us, io);
    }

    /// REMB (draft-alvestrand-rmcat-remb-03 §2) of `bps` for every video SSRC of an endpoint.
    fn send_remb(&mut self, endpoint: u32, bps: u64, now_us: u64, io: &mut impl RouterIo) {
        let Some(ep) = self.endpoints.get(&endpoint) else { return };
        // In the order the sources were added (the offer's first SSRC first): some receivers
        // (werift) apply a REMB to the stream of its first SSRC only.
        let mut video: Vec<(u32, u32)> = ep
            .sources_by_ssrc
            .iter()
            .filter(|(_, sid)| self.sources.get(sid).is_some_and(|s| s.config.kind == MediaKind::Video))
            .map(|(&ssrc, &sid)| (sid, ssrc))
            .collect();
        video.sort_unstable();
        let ssrcs: Vec<u32> = video.into_iter().map(|(_, ssrc)| ssrc).collect();
        let Some(ep) = self.endpoints.get_mut(&endpoint) else { return };
        ep.remb_sent_us = now_us;
        let Some(dest) = ep.remote else { return };
        if ssrcs.is_empty() {
            return;
        }
        let remb = rtcp::build_remb(FEEDBACK_SENDER_SSRC, bps, &ssrcs);
        if queue_rtcp(io, ep, &remb, dest) {
            ep.stats.remb_sent += 1;
        }
    }

    /// Meters a source's RFC 6464 level: `(extension id, packets per average)`, or off.
    pub fn set_audio_level_meter(&mut self, source: u32, meter: Option<(u8, u32)>) -> Result<(), String> {
        let src = self.sources.get_mut(&source).ok_or_else(|| format!("no source {source}"))?;
        src.audio_level = meter.map(|(extension_id, packets)| (extension_id, AudioLevelMeter::new(packets)));
        Ok(())
    }

    /// Reports a source's RFC 4733 events (`Event::TelephoneEvent`) carried with `payload_type`,
    /// or stops (`None`).
    pub fn set_telephone_events(&mut self, source: u32, payload_type: Option<u8>) -> Result<(), String> {
        let src = self.sources.get_mut(&source).ok_or_else(|| format!("no source {source}"))?;
        src.telephone_events = payload_type.map(TelephoneEventDetector::new);
        Ok(())
    }

    /// Hands every packet of `source` (decrypted, retransmissions unwrapped) to recording
    /// `recording` through `RouterIo::record`, or stops (`None`).
    pub fn set_recording(&mut self, source: u32, recording: Option<u32>) -> Result<(), String> {
        let src = self.sources.get_mut(&source).ok_or_else(|| format!("no source {source}"))?;
        src.recording = recording;
        Ok(())
    }

    /// A home source of this router, as outputs refer to it.
    pub fn source_ref(&self, id: u32) -> Option<SourceRef> {
        self.sources.get(&id).map(|s| SourceRef { id, home: self.worker, codec: s.config.codec, clock_rate: s.config.clock_rate, kind: s.config.kind })
    }

    /// Adds an output, fed by `source` when given (which asks that source for a keyframe at
    /// `now_us`, like a switch).
    pub fn add_output(&mut self, id: u32, endpoint: u32, config: &OutputConfig, source: Option<SourceRef>, now_us: u64, io: &mut impl RouterIo) -> Result<(), String> {
        let ep = self.endpoints.get_mut(&endpoint).ok_or_else(|| format!("no endpoint {endpoint}"))?;
        if ep.outputs_by_ssrc.contains_key(&config.ssrc) {
            return Err(format!("endpoint {endpoint} already has an output with SSRC {}", config.ssrc));
        }
        if let Some(r) = &source {
            self.check_source(r)?;
        }
        let ep = self.endpoints.get_mut(&endpoint).ok_or_else(|| format!("no endpoint {endpoint}"))?;
        ep.outputs_by_ssrc.insert(config.ssrc, id);
        self.outputs.insert(
            id,
            Output {
                endpoint,
                source: None,
                pending_source: None,
                pending_asked_us: 0,
                ssrc: config.ssrc,
                payload_type: config.payload_type,
                payload_map: Vec::new(),
                paused: false,
                switching: SwitchingContext::new(),
                stats: StreamStats::default(),
                rtx: config.rtx,
                // RFC 4588 §4: the RTX stream starts at a random sequence number; the SSRC
                // gives a per-output spread without a random source in this sans-IO code.
                rtx_seq: (config.ssrc.rotate_left(13) ^ id) as u16,
                rtx_tokens: RETRANSMISSION_BURST,
                rtx_refilled_us: now_us,
                pictures: None,
                svc: SvcSelector::default(),
                temporal_target: None,
                temporal_pending: None,
                auto: None,
            },
        );
        if source.is_some() {
            self.switch_output(id, source, false, now_us, io)?;
        }
        Ok(())
    }

    pub(super) fn check_source(&self, r: &SourceRef) -> Result<(), String> {
        if r.home == self.worker && !self.sources.contains_key(&r.id) {
            return Err(format!("no source {}", r.id));
        }
        Ok(())
    }

    /// Makes sure this router has a feed for `r`, subscribing at its home when it is remote.
    pub(super) fn ensure_feed(&mut self, r: &SourceRef, io: &mut impl RouterIo) {
        if self.feeds.contains_key(&r.id) {
            return;
        }
        self.last_subscription = self.last_subscription.wrapping_add(1);
        let subscription = self.last_subscription;
        self.feeds.insert(r.id, Feed { home: r.home, codec: r.codec, clock_rate: r.clock_rate, outputs: Vec::new(), subscription, last_seq: None, history: history_for(r.kind), gop: None });
        if r.home != self.worker {
            io.message(r.home, PeerMessage::Subscribe { source: r.id, worker: self.worker, subscription });
        }
    }

    pub(super) fn join_feed(&mut self, source: u32, output: u32) {
        if let Some(feed) = self.feeds.get_mut(&source) {
            if !feed.outputs.contains(&output) {
                feed.outputs.push(output);
            }
        }
    }

    /// Takes an output off a source's feed; a remote feed left without outputs is dropped and
    /// its home told to stop sending.
    pub(super) fn leave_feed(&mut self, source: u32, output: u32, io: &mut impl RouterIo) {
        let Some(feed) = self.feeds.get_mut(&source) else { return };
        feed.outputs.retain(|&o| o != output);
        if feed.outputs.is_empty() && feed.home != self.worker {
            let home = feed.home;
            self.feeds.remove(&source);
            io.message(home, PeerMessage::Unsubscribe { source, worker: self.worker });
        }
    }

    /// Feeds the output from another source (or none); see `Engine::switch_output`.
    pub fn switch_output(&mut self, id: u32, source: Option<SourceRef>, on_keyframe: bool, now_us: u64, io: &mut impl RouterIo) -> Result<(), String> {
        if let Some(r) = &source {
            self.check_source(r)?;
        }
        let out = self.outputs.get_mut(&id).ok_or_else(|| format!("no output {id}"))?;
        let old = out.source;
        let new = source.map(|r| r.id);
        // A later switch replaces a pending one.
        if let Some(pending) = out.pending_source.take() {
            if Some(pending) != old && Some(pending) != new {
                self.leave_feed(pending, id, io);
            }
        }
        let old_is_live = old.is_some_and(|o| self.feeds.contains_key(&o));
        let new_has_codec = source.is_some_and(|r| r.codec.is_some());
        if let Some(r) = &source {
            self.ensure_feed(r, io);
            self.join_feed(r.id, id);
        }
        if on_keyframe && old != new && old_is_live && new_has_codec {
            if let (Some(out), Some(new)) = (self.outputs.get_mut(&id), new) {
                out.pending_source = Some(new);
                out.pending_asked_us = now_us;
                self.request_keyframe(new, true, now_us, io);
            }
            return Ok(());
        }
        if let Some(out) = self.outputs.get_mut(&id) {
            out.source = new;
        }
        if let Some(old) = old {
            if Some(old) != new {
                self.leave_feed(old, id, io);
            }
        }
        // A new subscriber (or a switch) needs a keyframe to start decoding: the source's
        // cached group of pictures when it keeps one (a new output only: an output already
        // playing bridges to the new source at its keyframe), and a request either way.
        if let Some(new) = new {
            if old != Some(new) {
                if old.is_none() {
                    self.replay_gop(id, new, now_us, io);
                }
                self.request_keyframe(new, true, now_us, io);
            }
        }
        Ok(())
    }

    /// Per payload type, what an output writes instead of its `payload_type` (`Some`), or that it
    /// does not send such packets (`None`): a bridge whose two sides number a codec or RFC 4733
    /// events differently, or where one side has no events. Replaces the previous map.
    pub fn set_output_payload_map(&mut self, id: u32, map: Vec<(u8, Option<u8>)>) -> Result<(), String> {
        let out = self.outputs.get_mut(&id).ok_or_else(|| format!("no output {id}"))?;
        if map.len() > MAX_PAYLOAD_MAP {
            return Err(format!("a payload map has at most {MAX_PAYLOAD_MAP} entries"));
        }
        if map.iter().any(|&(from, to)| from > 127 || to.is_some_and(|t| t > 127)) {
            return Err("payload types are 0..127".into());
        }
        out.payload_map = map;
        Ok(())
    }

    /// Sets (or clears) the RFC 4588 stream an output retransmits on, once the subscriber's
    /// answer says whether it takes RTX.
    pub fn set_output_rtx(&mut self, id: u32, rtx: Option<RtxConfig>) -> Result<(), String> {
        let out = self.outputs.get_mut(&id).ok_or_else(|| format!("no output {id}"))?;
        out.rtx = rtx;
        Ok(())
    }

    pub fn pause_output(&mut self, id: u32, paused: bool) -> Result<(), String> {
        let out = self.outputs.get_mut(&id).ok_or_else(|| format!("no output {id}"))?;
        out.paused = paused;
        Ok(())
    }

    pub fn remove_output(&mut self, id: u32, io: &mut impl RouterIo) -> Result<(), String> {
        let out = self.outputs.remove(&id).ok_or_else(|| format!("no output {id}"))?;
        for sid in [out.source, out.pending_source].into_iter().flatten() {
            self.leave_feed(sid, id, io);
        }
        if let Some(ep) = self.endpoints.get_mut(&out.endpoint) {
            if ep.outputs_by_ssrc.get(&out.ssrc) == Some(&id) {
                ep.outputs_by_ssrc.remove(&out.ssrc);
            }
        }
        Ok(())
    }

    /// Asks for a keyframe of `source`: relayed to the publisher here when the source is
    /// home, else sent to its home router.
    pub fn request_keyframe(&mut self, source: u32, force: bool, now_us: u64, io: &mut impl RouterIo) {
        if self.sources.contains_key(&source) {
            self.relay_keyframe_request(source, force, now_us, io);
        } else if let Some(feed) = self.feeds.get(&source) {
            io.message(feed.home, PeerMessage::KeyframeRequest { source, force });
        }
    }

    pub fn has_source(&self, id: u32) -> bool {
        self.sources.contains_key(&id)
    }

    /// A message from another router.
    pub fn on_message(&mut self, message: PeerMessage, now_us: u64, io: &mut impl RouterIo) {
        match message {
            PeerMessage::Subscribe { source, worker, subscription } => match self.sources.get_mut(&source) {
                Some(src) => {
                    if worker != self.worker {
                        // A new subscription of the same router replaces its old one.
                        src.subscribers.retain(|s| s.worker != worker);
                        src.subscribers.push(Handoff { worker, subscription, seq: 0 });
                    }
                }
                // Removed meanwhile: the subscriber's feed must not wait forever.
                None => io.message(worker, PeerMessage::SourceGone { source }),
            },
            PeerMessage::Unsubscribe { source, worker } => {
                if let Some(src) = self.sources.get_mut(&source) {
                    src.subscribers.retain(|s| s.worker != worker);
                }
            }
            PeerMessage::KeyframeRequest { source, force } => self.relay_keyframe_request(source, force, now_us, io),
            PeerMessage::SourceGone { source } => {
                if self.feeds.get(&source).is_some_and(|f| f.home != self.worker) {
                    self.drop_feed(source);
                }
            }
        }
    }

}
