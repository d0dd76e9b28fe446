//! Which layers an output forwards: VP8 temporal layers, VP9 SVC layers, and simulcast layers
//! chosen within the subscriber's estimate (send-side bandwidth estimation, see `bandwidth`).

use super::*;

impl Router {
    /// The highest VP8 temporal layer an output forwards (`None`: all). Lowering takes effect at
    /// once (higher layers are never references for lower ones, RFC 7741 §4.2); raising waits for
    /// a frame with the layer-sync bit (or a base-layer frame start) so the decoder has its
    /// references. An `Event::OutputTemporal` reports the change once it happened.
    pub fn set_output_temporal(&mut self, id: u32, layer: Option<u8>) -> Result<(), String> {
        let out = self.outputs.get_mut(&id).ok_or_else(|| format!("no output {id}"))?;
        let lowering = match (layer, out.temporal_target) {
            (Some(new), Some(old)) => new <= old,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if lowering {
            out.temporal_target = layer;
            out.temporal_pending = None;
            self.events.push(Event::OutputTemporal { endpoint: out.endpoint, output: id, layer: layer.unwrap_or(u8::MAX) });
        } else {
            out.temporal_pending = Some(layer.unwrap_or(u8::MAX));
        }
        Ok(())
    }

    /// Turns send-side bandwidth estimation on for an endpoint (or off): every RTP packet ferry
    /// sends it carries the transport-wide sequence number under `extension_id`, and the
    /// receiver's transport-cc feedback drives the estimate and the layers of its outputs.
    pub fn set_send_bwe(&mut self, endpoint: u32, config: Option<BweConfig>, now_us: u64, io: &mut impl RouterIo) -> Result<(), String> {
        let ep = self.endpoint_mut(endpoint)?;
        match config {
            Some(c) if c.extension_id == 0 => return Err("transport-wide sequence extension id must be 1..=255".into()),
            Some(c) => {
                // Renegotiation keeps the estimate; only the id may change.
                match ep.bwe.as_mut() {
                    Some(bwe) => bwe.extension_id = c.extension_id,
                    None => ep.bwe = Some(SendBwe::new(&c)),
                }
            }
            None => ep.bwe = None,
        }
        self.choose_layers(endpoint, now_us, io);
        Ok(())
    }

    /// Lets an output choose among simulcast layers (lowest first) by its transport's estimate,
    /// up to `set.preferred` (and VP8 temporal layers up to `set.temporal_max`); `None` hands the
    /// choice back to `switch_output`. Without an estimate the preferred layer is taken. Layer
    /// changes happen at the new layer's keyframe (`Event::OutputSwitched`), temporal ones as
    /// `set_output_temporal` does (`Event::OutputTemporal`).
    pub fn set_output_layers(&mut self, id: u32, set: Option<LayerSet>, now_us: u64, io: &mut impl RouterIo) -> Result<(), String> {
        if let Some(set) = &set {
            if set.layers.is_empty() {
                return Err("a layer set needs at least one layer".into());
            }
            for r in &set.layers {
                self.check_source(r)?;
            }
        }
        let out = self.outputs.get_mut(&id).ok_or_else(|| format!("no output {id}"))?;
        let endpoint = out.endpoint;
        out.auto = set.map(|set| {
            // The layer now feeding the output, if it is one of the set.
            let chosen = out.pending_source.or(out.source).and_then(|s| set.layers.iter().position(|r| r.id == s));
            AutoLayers { set, chosen, chosen_temporal: None, last_down_us: 0 }
        });
        self.choose_layers(endpoint, now_us, io);
        Ok(())
    }

    /// Chooses the layers of an endpoint's outputs that have layer sets (see `bandwidth`), and
    /// applies what changed; sets the transport's probing.
    pub(super) fn choose_layers(&mut self, endpoint: u32, now_us: u64, io: &mut impl RouterIo) {
        let Some(ep) = self.endpoints.get(&endpoint) else { return };
        let auto: Vec<u32> = ep.outputs_by_ssrc.values().copied().filter(|o| self.outputs.get(o).is_some_and(|o| o.auto.is_some())).collect();
        if auto.is_empty() {
            if let Some(bwe) = self.endpoints.get_mut(&endpoint).and_then(|ep| ep.bwe.as_mut()) {
                bwe.probe_permille = 0;
                bwe.limited = false;
            }
            return;
        }
        let budget = ep.bwe.as_ref().map(|b| b.estimator.estimate_bps());
        // What the other outputs (audio, plain video) take first.
        let fixed: u64 = ep
            .outputs_by_ssrc
            .values()
            .filter_map(|o| self.outputs.get(o))
            .filter(|o| o.auto.is_none() && !o.paused)
            .filter_map(|o| o.source)
            .map(|s| self.rates.get(s).bps)
            .sum();
        let mut demands = Vec::with_capacity(auto.len());
        for oid in &auto {
            let Some(a) = self.outputs.get(oid).and_then(|o| o.auto.as_ref()) else { continue };
            let rates: Vec<SourceRate> = a.set.layers.iter().map(|r| self.rates.get(r.id)).collect();
            demands.push(LayerDemand {
                rates: rates.iter().map(|r| r.bps).collect(),
                preferred: a.set.preferred,
                current: a.chosen,
                may_rise: now_us.saturating_sub(a.last_down_us) >= bandwidth::RISE_HOLD_US || a.last_down_us == 0,
                temporal_max: a.set.temporal_max,
                temporal_permille: rates.iter().map(|r| r.temporal_permille).collect(),
            });
        }
        let (choices, probe_target) = bandwidth::choose_layers(budget.map(|b| b.saturating_sub(fixed)), &demands);
        let mut spend = fixed;
        let mut limited = false;
        for (oid, choice) in auto.iter().zip(&choices) {
            limited |= choice.limited;
            let Some(out) = self.outputs.get_mut(oid) else { continue };
            let Some(a) = out.auto.as_mut() else { continue };
            let Some(layer) = a.set.layers.get(choice.layer).copied() else { continue };
            spend += self.rates.get(layer.id).bps;
            let went_down = a.chosen.is_some_and(|c| choice.layer < c);
            if went_down {
                a.last_down_us = now_us.max(1);
            }
            let layer_changed = a.chosen != Some(choice.layer) || out.pending_source.or(out.source) != Some(layer.id);
            a.chosen = Some(choice.layer);
            let temporal_changed = a.chosen_temporal != Some(choice.temporal);
            a.chosen_temporal = Some(choice.temporal);
            if layer_changed {
                let _ = self.switch_output(*oid, Some(layer), true, now_us, io);
                // A switch with nothing to bridge happens at once: say so too, so the control
                // plane always knows which layer is sent (Janus tells the first layer as well).
                if let Some(out) = self.outputs.get(oid).filter(|o| o.pending_source.is_none() && o.source == Some(layer.id)) {
                    self.events.push(Event::OutputSwitched { endpoint: out.endpoint, output: *oid, source: layer.id });
                }
            }
            if temporal_changed {
                let _ = self.set_output_temporal(*oid, choice.temporal);
            }
        }
        let Some(bwe) = self.endpoints.get_mut(&endpoint).and_then(|ep| ep.bwe.as_mut()) else { return };
        bwe.limited = limited;
        let may_probe = bwe.estimator.usage() == ferry_rtp::bwe::Usage::Normal && now_us.saturating_sub(bwe.last_decrease_us) >= bandwidth::PROBE_HOLD_US;
        bwe.probe_permille = match probe_target {
            Some(target) if may_probe => bandwidth::probe_permille(spend, target.saturating_sub(fixed) + fixed),
            _ => 0,
        };
    }

    /// VP9 SVC: the highest spatial and temporal layers an output forwards (`None`: all).
    /// Lowering takes effect at once; a higher temporal layer waits for a switching-up point,
    /// a higher spatial layer for a keyframe, which is asked for (RFC 9628 §4.3). The drops
    /// are closed over in the output's numbering and the last packet sent of each picture gets
    /// the marker bit. `Event::OutputSpatial` / `Event::OutputTemporal` report the changes.
    pub fn set_output_svc(&mut self, id: u32, spatial: Option<u8>, temporal: Option<u8>, now_us: u64, io: &mut impl RouterIo) -> Result<(), String> {
        let out = self.outputs.get_mut(&id).ok_or_else(|| format!("no output {id}"))?;
        let (change, needs_keyframe) = out.svc.choose(spatial, temporal);
        push_svc_events(&mut self.events, out.endpoint, id, change);
        if let (true, Some(source)) = (needs_keyframe, out.source) {
            self.request_keyframe(source, true, now_us, io);
        }
        Ok(())
    }

}
