//! What a subscriber's transport can take, and which layers it gets for it.
//!
//! Each transport ferry sends to with transport-wide sequence numbers has a send-side estimator
//! (`ferry_rtp::bwe`, GCC-like) fed by the receiver's transport-cc feedback. Outputs fed from a
//! set of simulcast layers (`Router::set_output_layers`) then get the best layers whose rates
//! fit the estimate, never above the subscriber's preferred maximum (Janus `substream` /
//! `temporal`), and drop VP8 temporal layers when even the lowest layer does not fit. When a
//! higher layer is wanted but the estimate is short of it, the transport probes: it sends RTX
//! copies of its own packets (RFC 4588; the receiver discards duplicates) so the estimator sees
//! whether the link carries more. The rates come from each source's home router through
//! `SourceRates`, shared by the routers of one engine.

use std::collections::HashMap;
use std::sync::RwLock;

use ferry_rtp::SendSideBwe;

use crate::router::SourceRef;

/// Turns on send-side estimation for an endpoint (`Router::set_send_bwe`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BweConfig {
    /// Id of the transport-wide sequence number extension the receiver negotiated (RFC 8285).
    pub extension_id: u8,
    pub initial_bps: u64,
    pub min_bps: u64,
    pub max_bps: u64,
}

/// Share of the estimate the layers may take (the rest is headroom for audio jitter, RTCP and
/// retransmissions).
const BUDGET_SHARE_PERMILLE: u64 = 950;
/// A higher layer is taken only when it fits this share of the budget (hysteresis against
/// flapping between two layers whose rates straddle the estimate).
const RISE_SHARE_PERMILLE: u64 = 850;
/// After an output went down a layer, it may rise again only after this long.
pub const RISE_HOLD_US: u64 = 2_000_000;
/// A rise followed within this long by a fall the estimate forced failed: the link did not
/// carry the layer the estimate promised (it grows ahead of what the link demonstrably
/// carries). Each failed rise doubles the hold before the next, up to `RISE_HOLD_MAX_US`, so a
/// steady link short of a layer settles below it instead of trying it every few seconds; a
/// rise that lasts, or a fall with no rise just before it, starts again from `RISE_HOLD_US`.
/// A fall the subscriber asked for (a lower `substream`), or to the best layer still flowing,
/// is no failure.
pub const FAILED_RISE_US: u64 = 5_000_000;
pub const RISE_HOLD_MAX_US: u64 = 16_000_000;
/// After the estimate went down, no probing for this long.
pub const PROBE_HOLD_US: u64 = 3_000_000;
/// Probes aim this far above what the next layer needs, in ‰.
const PROBE_TARGET_PERMILLE: u64 = 1_200;
/// At most this many probe bytes per media byte, in ‰.
const PROBE_MAX_PERMILLE: u64 = 1_500;
/// The estimate is reported to the control plane when it moved by this share (‰), at most
/// once per `ESTIMATE_EVENT_INTERVAL_US`, or when the transport became limited or not.
pub const ESTIMATE_EVENT_CHANGE_PERMILLE: u64 = 100;
pub const ESTIMATE_EVENT_INTERVAL_US: u64 = 1_000_000;
/// Layers are chosen again at most this often per transport on feedback (and on the timer).
pub const CHOOSE_INTERVAL_US: u64 = 200_000;
/// Source rates are measured over this interval by their home router.
pub const RATE_INTERVAL_US: u64 = 500_000;

/// The send side of one transport: its transport-wide numbering and its estimator.
pub(crate) struct SendBwe {
    pub extension_id: u8,
    pub next_seq: u16,
    pub estimator: SendSideBwe,
    pub last_choice_us: u64,
    pub last_event_us: u64,
    pub last_event_bps: u64,
    pub last_event_limited: bool,
    /// Whether some output gets less than its preferred layers because of the estimate.
    pub limited: bool,
    pub previous_bps: u64,
    pub last_decrease_us: u64,
    /// Probe bytes to send per media byte (‰), and the bytes owed so far.
    pub probe_permille: u64,
    pub probe_credit: u64,
    pub feedback_received: u64,
    pub probe_packets: u64,
}

impl SendBwe {
    pub fn new(config: &BweConfig) -> Self {
        Self {
            extension_id: config.extension_id,
            next_seq: 0,
            estimator: SendSideBwe::new(config.initial_bps, config.min_bps, config.max_bps),
            last_choice_us: 0,
            last_event_us: 0,
            last_event_bps: 0,
            last_event_limited: false,
            limited: false,
            previous_bps: config.initial_bps,
            last_decrease_us: 0,
            probe_permille: 0,
            probe_credit: 0,
            feedback_received: 0,
            probe_packets: 0,
        }
    }

    /// The next transport-wide sequence number (one counter per transport, §2).
    pub fn take_seq(&mut self) -> u16 {
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        seq
    }

    /// After feedback: remembers when the estimate went down (probing waits after that).
    pub fn note_estimate(&mut self, now_us: u64) {
        let bps = self.estimator.estimate_bps();
        if bps < self.previous_bps {
            self.last_decrease_us = now_us.max(1);
        }
        self.previous_bps = bps;
    }

    /// Whether the control plane should hear of the estimate now.
    pub fn event_due(&self, now_us: u64) -> bool {
        if self.limited != self.last_event_limited {
            return true;
        }
        if self.last_event_us != 0 && now_us.saturating_sub(self.last_event_us) < ESTIMATE_EVENT_INTERVAL_US {
            return false;
        }
        let bps = self.estimator.estimate_bps();
        let last = self.last_event_bps;
        last == 0 || bps.abs_diff(last) * 1000 >= last * ESTIMATE_EVENT_CHANGE_PERMILLE
    }
}

/// A source's rate as its home router last measured it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SourceRate {
    pub bps: u64,
    /// VP8: the share of the bytes in temporal layers 0..=t, for t = 0..=3, in ‰ (0 = unknown).
    pub temporal_permille: [u16; 4],
}

/// Every source's rate, written by its home router every `RATE_INTERVAL_US` and read by the
/// routers choosing layers. Locked at signalling rate, never per packet.
#[derive(Debug, Default)]
pub struct SourceRates {
    rates: RwLock<HashMap<u32, SourceRate>>,
}

impl SourceRates {
    pub fn set(&self, source: u32, rate: SourceRate) {
        if let Ok(mut rates) = self.rates.write() {
            rates.insert(source, rate);
        }
    }

    pub fn remove(&self, source: u32) {
        if let Ok(mut rates) = self.rates.write() {
            rates.remove(&source);
        }
    }

    pub fn get(&self, source: u32) -> SourceRate {
        self.rates.read().ok().and_then(|r| r.get(&source).copied()).unwrap_or_default()
    }
}

/// The simulcast layers an output chooses from (`Router::set_output_layers`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerSet {
    /// Lowest layer first.
    pub layers: Vec<SourceRef>,
    /// Highest layer the subscriber wants (Janus `substream`).
    pub preferred: usize,
    /// Highest VP8 temporal layer the subscriber wants (Janus `temporal`; `None` = all).
    pub temporal_max: Option<u8>,
}

/// An output's layer set and what was chosen from it.
#[derive(Debug, Clone)]
pub(crate) struct AutoLayers {
    pub set: LayerSet,
    pub chosen: Option<usize>,
    pub chosen_temporal: Option<Option<u8>>,
    /// When the output last went down and up a layer (0: never).
    pub last_down_us: u64,
    pub last_up_us: u64,
    /// How long after going down it must wait before rising (see `FAILED_RISE_US`).
    pub rise_hold_us: u64,
}

impl AutoLayers {
    pub fn new(set: LayerSet, chosen: Option<usize>) -> Self {
        Self { set, chosen, chosen_temporal: None, last_down_us: 0, last_up_us: 0, rise_hold_us: RISE_HOLD_US }
    }

    /// Whether the output may go above its current layer now.
    pub fn may_rise(&self, now_us: u64) -> bool {
        self.last_down_us == 0 || now_us.saturating_sub(self.last_down_us) >= self.rise_hold_us
    }

    /// Records a new choice (`limited`: below what the subscriber wants because of the
    /// estimate): such a fall soon after a rise doubles the hold before the next rise.
    pub fn choose(&mut self, layer: usize, limited: bool, now_us: u64) {
        let now_us = now_us.max(1);
        match self.chosen {
            Some(current) if layer < current => {
                let failed_rise = limited && self.last_up_us != 0 && now_us.saturating_sub(self.last_up_us) < FAILED_RISE_US;
                self.rise_hold_us = if failed_rise { (self.rise_hold_us * 2).min(RISE_HOLD_MAX_US) } else { RISE_HOLD_US };
                self.last_down_us = now_us;
            }
            Some(current) if layer > current => self.last_up_us = now_us,
            _ => {}
        }
        self.chosen = Some(layer);
    }
}

/// One output's part in a transport's layer choice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerDemand {
    /// Each layer's rate, lowest first; 0 = not flowing (or not measured yet).
    pub rates: Vec<u64>,
    pub preferred: usize,
    /// The layer the output has now (`None`: none yet).
    pub current: Option<usize>,
    /// Whether it may go above `current` now (see `AutoLayers::may_rise`).
    pub may_rise: bool,
    pub temporal_max: Option<u8>,
    /// `SourceRate::temporal_permille` of each layer.
    pub temporal_permille: Vec<[u16; 4]>,
}

/// What one output gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerChoice {
    pub layer: usize,
    pub temporal: Option<u8>,
    /// Below its preferred layer because the budget is short.
    pub limited: bool,
}

/// Chooses every output's layer within `budget_bps` (what the transport may spend on them;
/// `None` = unknown, when each gets its preferred layer as without estimation). Outputs start
/// at their lowest flowing layer and rise one layer at a time, in turn, while the total fits,
/// so several outputs share a short budget instead of the first taking it all. Also returns
/// the rate the next rise would need, if some output is limited (the probe target).
pub fn choose_layers(budget_bps: Option<u64>, demands: &[LayerDemand]) -> (Vec<LayerChoice>, Option<u64>) {
    let top_wanted = |d: &LayerDemand| d.preferred.min(d.rates.len().saturating_sub(1));
    let Some(budget) = budget_bps else {
        let choices = demands.iter().map(|d| LayerChoice { layer: top_wanted(d), temporal: d.temporal_max, limited: false }).collect();
        return (choices, None);
    };
    let budget = budget * BUDGET_SHARE_PERMILLE / 1000;
    let flowing = |d: &LayerDemand, i: usize| d.rates.get(i).is_some_and(|&r| r > 0);
    // Each starts at its lowest flowing layer (or, when none flows yet, at its preferred one:
    // nothing is known to spend).
    let mut layers: Vec<usize> = demands.iter().map(|d| (0..=top_wanted(d)).find(|&i| flowing(d, i)).unwrap_or(top_wanted(d))).collect();
    let rate = |d: &LayerDemand, i: usize| d.rates.get(i).copied().unwrap_or(0);
    let mut spend: u64 = demands.iter().zip(&layers).map(|(d, &l)| rate(d, l)).sum();
    let mut next_need: Option<u64> = None;
    loop {
        let mut rose = false;
        for (k, d) in demands.iter().enumerate() {
            let Some(next) = (layers[k] + 1..=top_wanted(d)).find(|&i| flowing(d, i)) else { continue };
            let is_rise = d.current.is_some_and(|c| next > c);
            if is_rise && !d.may_rise {
                continue;
            }
            let limit = if is_rise { budget * RISE_SHARE_PERMILLE / 1000 } else { budget };
            let need = spend - rate(d, layers[k]) + rate(d, next);
            if need <= limit {
                spend = need;
                layers[k] = next;
                rose = true;
            } else if next_need.is_none_or(|n| need < n) {
                next_need = Some(need);
            }
        }
        if !rose {
            break;
        }
    }
    let mut limited_any = false;
    let choices = demands
        .iter()
        .zip(&layers)
        .map(|(d, &layer)| {
            let limited = (layer + 1..=top_wanted(d)).any(|i| flowing(d, i));
            limited_any |= limited;
            // Even the lowest layer does not fit: keep only the temporal layers that do.
            let mut temporal = d.temporal_max;
            if spend > budget {
                let others = spend - rate(d, layer);
                let room = budget.saturating_sub(others);
                let shares = d.temporal_permille.get(layer).copied().unwrap_or_default();
                if shares[0] > 0 {
                    let fits = (0..4u8).rev().find(|&t| shares[usize::from(t)] > 0 && rate(d, layer) * u64::from(shares[usize::from(t)]) / 1000 <= room).unwrap_or(0);
                    // Layers above the highest one the stream has are "all layers".
                    let highest = (0..4u8).rev().find(|&t| shares[usize::from(t)] > 0).unwrap_or(0);
                    if fits < highest {
                        temporal = Some(temporal.map_or(fits, |m| m.min(fits)));
                    }
                }
            }
            LayerChoice { layer, temporal, limited }
        })
        .collect();
    let probe_target = if limited_any { next_need.map(|n| n * 1000 / BUDGET_SHARE_PERMILLE) } else { None };
    (choices, probe_target)
}

/// Probe bytes per media byte (‰) that lift what the transport sends from `spend_bps` to a
/// little above `target_bps`.
pub fn probe_permille(spend_bps: u64, target_bps: u64) -> u64 {
    if spend_bps == 0 {
        return 0;
    }
    let aim = target_bps * PROBE_TARGET_PERMILLE / 1000;
    (aim.saturating_sub(spend_bps) * 1000 / spend_bps).min(PROBE_MAX_PERMILLE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demand(rates: &[u64], preferred: usize, current: Option<usize>) -> LayerDemand {
        LayerDemand { rates: rates.to_vec(), preferred, current, may_rise: true, temporal_max: None, temporal_permille: vec![[0; 4]; rates.len()] }
    }

    const SIMULCAST: [u64; 3] = [150_000, 500_000, 1_500_000];

    #[test]
    fn without_an_estimate_each_gets_its_preferred_layer() {
        let (c, probe) = choose_layers(None, &[demand(&SIMULCAST, 1, None), demand(&SIMULCAST, 7, None)]);
        assert_eq!(c.iter().map(|c| c.layer).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(probe, None);
    }

    #[test]
    fn takes_the_best_layers_that_fit_and_shares_a_short_budget() {
        let (c, _) = choose_layers(Some(3_000_000), &[demand(&SIMULCAST, 2, None)]);
        assert_eq!(c[0], LayerChoice { layer: 2, temporal: None, limited: false });
        let (c, probe) = choose_layers(Some(1_000_000), &[demand(&SIMULCAST, 2, None)]);
        assert_eq!(c[0], LayerChoice { layer: 1, temporal: None, limited: true });
        assert!(probe.unwrap() > 1_500_000, "the probe aims at what layer 2 needs: {probe:?}");
        // Two outputs and 1.3 Mbit/s: both middle layers rather than one top and one bottom.
        let (c, _) = choose_layers(Some(1_300_000), &[demand(&SIMULCAST, 2, None), demand(&SIMULCAST, 2, None)]);
        assert_eq!(c.iter().map(|c| c.layer).collect::<Vec<_>>(), vec![1, 1]);
    }

    #[test]
    fn never_above_the_preferred_layer_and_skips_layers_not_flowing() {
        let (c, probe) = choose_layers(Some(10_000_000), &[demand(&SIMULCAST, 1, None)]);
        assert_eq!(c[0], LayerChoice { layer: 1, temporal: None, limited: false });
        assert_eq!(probe, None);
        let (c, _) = choose_layers(Some(10_000_000), &[demand(&[0, 500_000, 0], 2, None)]);
        assert_eq!(c[0].layer, 1, "layer 0 and 2 are not flowing");
        let (c, _) = choose_layers(Some(100_000), &[demand(&[0, 0, 0], 1, None)]);
        assert_eq!(c[0].layer, 1, "nothing measured yet: the preferred layer");
    }

    #[test]
    fn rising_needs_headroom_and_waits_after_a_fall() {
        // 1.6 Mbit/s would fit layer 2 (1.5) within the budget, but not within the rise margin.
        let (c, _) = choose_layers(Some(1_700_000), &[demand(&SIMULCAST, 2, Some(1))]);
        assert_eq!(c[0].layer, 1);
        let (c, _) = choose_layers(Some(1_700_000), &[demand(&SIMULCAST, 2, Some(2))]);
        assert_eq!(c[0].layer, 2, "staying needs no margin");
        let mut held = demand(&SIMULCAST, 2, Some(0));
        held.may_rise = false;
        let (c, _) = choose_layers(Some(10_000_000), &[held]);
        assert_eq!(c[0].layer, 0);
    }

    #[test]
    fn each_rise_that_fails_at_once_doubles_the_wait_before_the_next() {
        let set = LayerSet { layers: vec![], preferred: 2, temporal_max: None };
        let mut a = AutoLayers::new(set, Some(2));
        let s = 1_000_000;
        // A capacity drop: down, and the usual hold.
        a.choose(0, true, 10 * s);
        assert!(!a.may_rise(11 * s) && a.may_rise(12 * s));
        // Up, and down again a second later: the rise failed; the next waits twice as long.
        let mut t = 12 * s;
        for hold in [4, 8, 16, 16] {
            a.choose(1, true, t);
            a.choose(0, true, t + s);
            assert!(!a.may_rise(t + s + hold * s - 1), "hold {hold} s");
            assert!(a.may_rise(t + s + hold * s));
            t += s + hold * s;
        }
        // A rise that lasts: the next fall has the usual hold again.
        a.choose(1, true, t);
        a.choose(0, true, t + FAILED_RISE_US);
        assert_eq!(a.rise_hold_us, RISE_HOLD_US);
        assert_eq!(a.chosen, Some(0));
        // Up and at once down because the subscriber asked for less: no failure.
        t += FAILED_RISE_US + 10 * s;
        a.choose(1, false, t);
        a.choose(0, false, t + s);
        assert_eq!(a.rise_hold_us, RISE_HOLD_US);
    }

    #[test]
    fn drops_temporal_layers_when_even_the_lowest_layer_does_not_fit() {
        let mut d = demand(&SIMULCAST, 2, Some(0));
        d.temporal_permille = vec![[400, 600, 1000, 0]; 3];
        let (c, _) = choose_layers(Some(120_000), &[d.clone()]);
        assert_eq!(c[0], LayerChoice { layer: 0, temporal: Some(1), limited: true }, "0.6 × 150 k fits 114 k");
        let (c, _) = choose_layers(Some(40_000), &[d.clone()]);
        assert_eq!(c[0].temporal, Some(0));
        d.temporal_max = Some(0);
        let (c, _) = choose_layers(Some(10_000_000), &[d]);
        assert_eq!(c[0].temporal, Some(0), "the subscriber's own maximum stays");
    }

    #[test]
    fn probes_lift_the_send_rate_to_a_little_above_the_target() {
        assert_eq!(probe_permille(500_000, 1_000_000), 1_400);
        assert_eq!(probe_permille(100_000, 10_000_000), PROBE_MAX_PERMILLE);
        assert_eq!(probe_permille(2_000_000, 1_000_000), 0);
        assert_eq!(probe_permille(0, 1_000_000), 0);
    }
}
