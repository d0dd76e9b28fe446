//! Periodic work of a router: NACK retries, uplink loss, source rates, layer choices, REMB
//! caps, transport-cc for a burst's tail, ICE consent.

use super::*;

impl Router {
    /// Periodic work: uplink loss per source, NACK retries while a stream is silent,
    /// transport-cc for the tail of a burst, ICE consent.
    pub fn on_timer(&mut self, now_us: u64, io: &mut impl RouterIo) {
        self.nack_scratch_sources.clear();
        self.nack_scratch_sources.extend(self.sources.iter().filter(|(_, s)| s.nack.as_ref().is_some_and(|n| n.pending() > 0)).map(|(&id, _)| id));
        for i in 0..self.nack_scratch_sources.len() {
            let sid = self.nack_scratch_sources[i];
            self.send_nacks(sid, now_us, io);
        }
        for (&id, src) in self.sources.iter_mut() {
            if now_us.saturating_sub(src.last_loss_check_us) < LOSS_INTERVAL_US {
                continue;
            }
            src.last_loss_check_us = now_us;
            let interval = src.reception.take_interval();
            if interval.lost > 0 {
                self.events.push(Event::SourceLoss { endpoint: src.endpoint, source: id, expected: interval.expected, lost: interval.lost });
            }
        }
        self.publish_rates(now_us);
        // Layers follow the sources' rates too, not only the estimate.
        self.nack_scratch_sources.clear();
        self.nack_scratch_sources.extend(
            self.endpoints.values().filter(|ep| ep.bwe.as_ref().is_some_and(|b| now_us.saturating_sub(b.last_choice_us) >= bandwidth::RATE_INTERVAL_US)).map(|ep| ep.id),
        );
        for i in 0..self.nack_scratch_sources.len() {
            let id = self.nack_scratch_sources[i];
            if let Some(bwe) = self.endpoints.get_mut(&id).and_then(|ep| ep.bwe.as_mut()) {
                bwe.last_choice_us = now_us;
            }
            self.choose_layers(id, now_us, io);
            self.report_estimate(id, now_us);
        }
        // Bitrate caps are repeated, as a receiver's REMB would be.
        self.nack_scratch_sources.clear();
        self.nack_scratch_sources.extend(
            self.endpoints.values().filter(|ep| ep.remb_cap_bps.is_some() && now_us.saturating_sub(ep.remb_sent_us) >= REMB_CAP_INTERVAL_US).map(|ep| ep.id),
        );
        for i in 0..self.nack_scratch_sources.len() {
            let id = self.nack_scratch_sources[i];
            self.send_remb_cap(id, now_us, io);
        }
        // Feedback for the last packets of a burst, which no later read flushed out.
        let waiting: Vec<u32> = self.endpoints.values().filter(|ep| ep.twcc.as_ref().is_some_and(|t| t.recorder.pending() > 0)).map(|ep| ep.id).collect();
        for id in waiting {
            self.send_transport_feedback(id, now_us, 0, io);
        }
        for ep in self.endpoints.values_mut() {
            if let Some(agent) = ep.ice.as_mut() {
                while let Some(ev) = agent.poll(now_us / 1000) {
                    if let IceEvent::ConsentLost(address) = ev {
                        self.events.push(Event::ConsentLost { endpoint: ep.id, address });
                    }
                }
            }
        }
    }

    /// Each home source's rate over the last interval, for every router's layer choice.
    pub(super) fn publish_rates(&mut self, now_us: u64) {
        for (&id, src) in self.sources.iter_mut() {
            let elapsed = now_us.saturating_sub(src.rate_mark_us);
            if elapsed < bandwidth::RATE_INTERVAL_US {
                continue;
            }
            let bytes = src.stats.bytes - src.rate_mark_bytes;
            let bps = if src.rate_mark_us == 0 { 0 } else { bytes * 8 * 1_000_000 / elapsed };
            let layered: u64 = src.temporal_bytes.iter().sum();
            let mut temporal_permille = [0u16; 4];
            if layered > 0 {
                let mut cumulative = 0;
                for (t, b) in src.temporal_bytes.iter().enumerate() {
                    cumulative += b;
                    if *b > 0 || cumulative < layered {
                        temporal_permille[t] = (cumulative * 1000 / layered) as u16;
                    }
                }
            }
            src.stats.bitrate_bps = bps;
            src.rate_mark_us = now_us;
            src.rate_mark_bytes = src.stats.bytes;
            src.temporal_bytes = [0; 4];
            self.rates.set(id, SourceRate { bps, temporal_permille });
        }
    }

}
