//! Send-side bandwidth estimation for what ferry sends a subscriber, sans-IO: the
//! transport-cc feedback reader (draft-holmer-rmcat-transport-wide-cc-extensions-01 §3.1) and
//! a delay- and loss-based estimator in the manner of GCC (draft-ietf-rmcat-gcc-02): a
//! trendline of the one-way delay variation detects a queue building up (overuse), the rate
//! then drops to below what the receiver actually got; loss above 10 % lowers it too; while
//! neither says otherwise it grows by about 8 % a second.
//!
//! Times are microseconds given by the caller. Nothing is allocated per packet: sent packets
//! live in a fixed ring indexed by transport-wide sequence number.

/// One packet's fate as a transport-cc feedback reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketResult {
    pub seq: u16,
    /// Arrival time in the receiver's clock (µs, from the reference time and deltas); `None`
    /// when reported not received.
    pub arrival_us: Option<i64>,
}

const FMT_TRANSPORT_CC: u8 = 15;
const PT_RTPFB: u8 = 205;

/// Reads one transport-cc feedback packet (RTPFB FMT 15) into `out`: every reported sequence
/// number with its arrival time or loss (§3.1: run-length and status-vector chunks, one- and
/// two-byte receive deltas in 250 µs). `None` (and nothing appended) if the packet is not one
/// or is cut short.
pub fn parse_transport_feedback(packet: &[u8], out: &mut Vec<PacketResult>) -> Option<()> {
    let b0 = *packet.first()?;
    if b0 >> 6 != 2 || b0 & 0x1f != FMT_TRANSPORT_CC || *packet.get(1)? != PT_RTPFB {
        return None;
    }
    let len = (usize::from(u16::from_be_bytes([*packet.get(2)?, *packet.get(3)?])) + 1) * 4;
    let packet = packet.get(..len)?;
    let end = if b0 & 0x20 != 0 { len.checked_sub(usize::from(*packet.last()?))? } else { len };
    let base = u16::from_be_bytes([*packet.get(12)?, *packet.get(13)?]);
    let count = usize::from(u16::from_be_bytes([*packet.get(14)?, *packet.get(15)?]));
    let reference = i32::from_be_bytes([*packet.get(16)?, *packet.get(17)?, *packet.get(18)?, 0]) >> 8; // signed 24-bit
    let mut statuses: Vec<u8> = Vec::with_capacity(count);
    let mut pos = 20;
    while statuses.len() < count {
        let chunk = u16::from_be_bytes([*packet.get(pos)?, *packet.get(pos + 1)?]);
        pos += 2;
        if chunk & 0x8000 == 0 {
            // §3.1.3 run length chunk: 0, symbol (2 bits), run length (13 bits).
            let symbol = ((chunk >> 13) & 0b11) as u8;
            let run = usize::from(chunk & 0x1fff);
            for _ in 0..run.min(count - statuses.len()) {
                statuses.push(symbol);
            }
        } else if chunk & 0x4000 == 0 {
            // §3.1.4 status vector, one-bit symbols: 14 of them.
            for i in 0..14 {
                if statuses.len() < count {
                    statuses.push(((chunk >> (13 - i)) & 1) as u8);
                }
            }
        } else {
            // Two-bit symbols: 7 of them.
            for i in 0..7 {
                if statuses.len() < count {
                    statuses.push(((chunk >> (12 - 2 * i)) & 0b11) as u8);
                }
            }
        }
    }
    let mut time = i64::from(reference) * 64_000;
    let start = out.len();
    for (i, &symbol) in statuses.iter().enumerate() {
        let seq = base.wrapping_add(i as u16);
        let arrival_us = match symbol {
            1 => {
                let d = *packet.get(pos).filter(|_| pos < end)?;
                pos += 1;
                time += i64::from(d) * 250;
                Some(time)
            }
            2 => {
                if pos + 2 > end {
                    out.truncate(start);
                    return None;
                }
                let d = i16::from_be_bytes([*packet.get(pos)?, *packet.get(pos + 1)?]);
                pos += 2;
                time += i64::from(d) * 250;
                Some(time)
            }
            _ => None,
        };
        out.push(PacketResult { seq, arrival_us });
    }
    Some(())
}

/// Sent packets remembered to match feedback against (a power of two).
const HISTORY: usize = 4096;
/// Packets sent within this of the first of a group form one group (GCC §5.2 "bursts").
const GROUP_SPAN_US: i64 = 5_000;
/// Groups the trendline is fitted over (libwebrtc uses 20).
const TRENDLINE_WINDOW: usize = 20;
/// Smoothing of the accumulated delay (GCC's 0.9).
const SMOOTHING: f64 = 0.9;
/// Slope (ms of delay gained per ms) times the window beyond which the link is overused.
const OVERUSE_THRESHOLD: f64 = 12.5;
const TRENDLINE_GAIN: f64 = 4.0;
/// Multiplicative increase per second while the link is not overused (GCC §5.5: 8 %).
const INCREASE_PER_SECOND: f64 = 0.08;
/// On overuse the rate drops to this share of what the receiver measured getting.
const DECREASE_FACTOR: f64 = 0.85;
/// Loss-based control (GCC §6): above 10 % cut by half the loss, below 2 % allow growth.
const HIGH_LOSS: f64 = 0.10;
const LOW_LOSS: f64 = 0.02;
/// Received rate is measured over this window.
const RATE_WINDOW_US: i64 = 500_000;
/// While the link is not overused and loses nearly nothing, what the receiver demonstrably got
/// is a floor for the estimate: this is how a probe (extra packets sent on purpose) raises it
/// at once instead of at 8 % a second, as libwebrtc's probe estimator does.
const CARRIED_SHARE: f64 = 0.95;
/// The round-trip estimate is the smallest of this many feedback samples.
const RTT_SAMPLES: usize = 8;
/// Smoothing of the per-feedback loss share.
const LOSS_SMOOTHING: f64 = 0.8;

#[derive(Debug, Clone, Copy, Default)]
struct Sent {
    seq: u16,
    send_us: i64,
    size: u32,
    valid: bool,
}

/// Whether the delay trend says the queue on the path is growing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    Normal,
    Overusing,
    Underusing,
}

#[derive(Debug, Clone)]
pub struct SendSideBwe {
    sent: Vec<Sent>,
    estimate_bps: f64,
    min_bps: f64,
    max_bps: f64,
    last_update_us: Option<i64>,
    // The current group: first send time, last send and arrival times.
    group: Option<(i64, i64, i64)>,
    previous_group: Option<(i64, i64)>,
    accumulated_delay_ms: f64,
    smoothed_delay_ms: f64,
    first_arrival_us: Option<i64>,
    /// (arrival ms since the first, smoothed delay ms) of the last groups.
    points: Vec<(f64, f64)>,
    usage: Usage,
    /// (arrival µs, bytes) of recently acknowledged packets, for the received rate.
    acked: Vec<(i64, u32)>,
    results: Vec<PacketResult>,
    lost: u64,
    reported: u64,
    /// Share of packets lost per feedback, smoothed (for slowlink and Admin).
    recent_loss: f64,
    /// Feedback arrival minus the send time of the newest packet it acknowledges, for the
    /// last feedbacks: the round trip plus the receiver's wait before reporting.
    rtt_samples: [u64; RTT_SAMPLES],
    rtt_next: usize,
}

impl SendSideBwe {
    pub fn new(initial_bps: u64, min_bps: u64, max_bps: u64) -> Self {
        Self {
            sent: vec![Sent::default(); HISTORY],
            estimate_bps: initial_bps as f64,
            min_bps: min_bps as f64,
            max_bps: max_bps.max(min_bps) as f64,
            last_update_us: None,
            group: None,
            previous_group: None,
            accumulated_delay_ms: 0.0,
            smoothed_delay_ms: 0.0,
            first_arrival_us: None,
            points: Vec::with_capacity(TRENDLINE_WINDOW),
            usage: Usage::Normal,
            acked: Vec::with_capacity(256),
            results: Vec::with_capacity(256),
            lost: 0,
            reported: 0,
            recent_loss: 0.0,
            rtt_samples: [0; RTT_SAMPLES],
            rtt_next: 0,
        }
    }

    /// Recent share of packets lost, in ‰ (smoothed over feedbacks).
    pub fn loss_permille(&self) -> u32 {
        (self.recent_loss * 1000.0).round() as u32
    }

    /// Round trip as transport-cc shows it (µs): an upper bound, since it includes the
    /// receiver's wait before it reports (libwebrtc: at most 100 ms). `None` before feedback.
    pub fn rtt_us(&self) -> Option<u64> {
        self.rtt_samples.iter().copied().filter(|&s| s > 0).min()
    }

    pub fn estimate_bps(&self) -> u64 {
        self.estimate_bps as u64
    }

    pub fn usage(&self) -> Usage {
        self.usage
    }

    /// Packets reported lost and reported at all so far.
    pub fn loss_counts(&self) -> (u64, u64) {
        (self.lost, self.reported)
    }

    /// A packet carrying transport-wide sequence number `seq` left at `now_us`.
    pub fn on_packet_sent(&mut self, seq: u16, size: usize, now_us: u64) {
        let slot = &mut self.sent[usize::from(seq) % HISTORY];
        *slot = Sent { seq, send_us: now_us as i64, size: size.min(u32::MAX as usize) as u32, valid: true };
    }

    /// A transport-cc feedback packet from the receiver arrived at `now_us`; returns whether
    /// it was one and the estimate was updated.
    pub fn on_feedback(&mut self, packet: &[u8], now_us: u64) -> bool {
        let mut results = std::mem::take(&mut self.results);
        results.clear();
        let ok = parse_transport_feedback(packet, &mut results).is_some();
        if ok {
            self.apply(&results, now_us as i64);
        }
        self.results = results;
        ok
    }

    fn apply(&mut self, results: &[PacketResult], now_us: i64) {
        let mut lost = 0u64;
        let mut reported = 0u64;
        let mut newest_send: Option<i64> = None;
        for r in results {
            let sent = self.sent[usize::from(r.seq) % HISTORY];
            if !sent.valid || sent.seq != r.seq {
                continue; // not ours, or too old to match
            }
            reported += 1;
            let Some(arrival) = r.arrival_us else {
                lost += 1;
                continue;
            };
            self.acked.push((arrival, sent.size));
            newest_send = Some(newest_send.map_or(sent.send_us, |t: i64| t.max(sent.send_us)));
            self.on_arrival(sent.send_us, arrival);
        }
        self.lost += lost;
        self.reported += reported;
        if let Some(sent) = newest_send {
            self.rtt_samples[self.rtt_next] = (now_us - sent).max(1) as u64;
            self.rtt_next = (self.rtt_next + 1) % RTT_SAMPLES;
        }
        if reported > 0 {
            self.recent_loss = LOSS_SMOOTHING * self.recent_loss + (1.0 - LOSS_SMOOTHING) * (lost as f64 / reported as f64);
        }
        // Received rate over the last window of arrivals.
        if let Some(&(newest, _)) = self.acked.last() {
            self.acked.retain(|&(t, _)| newest - t <= RATE_WINDOW_US);
        }
        let received_bps = match (self.acked.first(), self.acked.last()) {
            (Some(&(first, _)), Some(&(last, _))) if last - first >= 50_000 => {
                let bytes: u64 = self.acked.iter().map(|&(_, s)| u64::from(s)).sum();
                Some(bytes as f64 * 8.0 * 1e6 / (last - first) as f64)
            }
            _ => None,
        };
        let elapsed_s = self.last_update_us.map_or(0.0, |t| ((now_us - t).max(0) as f64 / 1e6).min(1.0));
        self.last_update_us = Some(now_us);
        let loss = if reported > 0 { lost as f64 / reported as f64 } else { 0.0 };
        let mut rate = self.estimate_bps;
        match self.usage {
            Usage::Overusing => {
                // Below what actually got through, so the queue drains.
                if let Some(received) = received_bps {
                    rate = rate.min(received * DECREASE_FACTOR);
                } else {
                    rate *= DECREASE_FACTOR;
                }
            }
            Usage::Underusing => {} // hold: the queue is draining
            Usage::Normal => {
                let grown = rate * (1.0 + INCREASE_PER_SECOND).powf(elapsed_s);
                // Never far above what the receiver is getting (GCC §5.5: 1.5 × received).
                rate = match received_bps {
                    Some(received) => grown.min((received * 1.5).max(rate)),
                    None => grown,
                };
                if let (Some(received), true) = (received_bps, loss <= LOW_LOSS) {
                    rate = rate.max(received * CARRIED_SHARE);
                }
            }
        }
        if loss > HIGH_LOSS {
            // Not below what got through: feedback comes every 50-100 ms, and one burst of
            // loss (a probe the link did not carry, a queue overflowing once) would otherwise
            // compound the cut feedback after feedback far below the link's rate.
            let cut = self.estimate_bps * (1.0 - 0.5 * loss);
            rate = rate.min(match received_bps {
                Some(received) => cut.max(received * DECREASE_FACTOR),
                None => cut,
            });
        } else if loss > LOW_LOSS {
            rate = rate.min(self.estimate_bps); // hold
        }
        self.estimate_bps = rate.clamp(self.min_bps, self.max_bps);
    }

    /// One acknowledged packet into the inter-group delay trend (GCC §5.3, trendline filter).
    fn on_arrival(&mut self, send_us: i64, arrival_us: i64) {
        let first_arrival = *self.first_arrival_us.get_or_insert(arrival_us);
        match self.group {
            Some((first_send, last_send, last_arrival)) if send_us - first_send <= GROUP_SPAN_US => {
                self.group = Some((first_send, last_send.max(send_us), last_arrival.max(arrival_us)));
            }
            Some((_, last_send, last_arrival)) => {
                // The group is complete: compare it with the previous one.
                if let Some((prev_send, prev_arrival)) = self.previous_group {
                    let delta_ms = ((last_arrival - prev_arrival) - (last_send - prev_send)) as f64 / 1000.0;
                    self.accumulated_delay_ms += delta_ms;
                    self.smoothed_delay_ms = SMOOTHING * self.smoothed_delay_ms + (1.0 - SMOOTHING) * self.accumulated_delay_ms;
                    if self.points.len() == TRENDLINE_WINDOW {
                        self.points.remove(0);
                    }
                    self.points.push(((last_arrival - first_arrival) as f64 / 1000.0, self.smoothed_delay_ms));
                    self.detect();
                }
                self.previous_group = Some((last_send, last_arrival));
                self.group = Some((send_us, send_us, arrival_us));
            }
            None => self.group = Some((send_us, send_us, arrival_us)),
        }
    }

    fn detect(&mut self) {
        if self.points.len() < TRENDLINE_WINDOW / 2 {
            return;
        }
        // Least-squares slope of smoothed delay over arrival time.
        let n = self.points.len() as f64;
        let mean_x = self.points.iter().map(|p| p.0).sum::<f64>() / n;
        let mean_y = self.points.iter().map(|p| p.1).sum::<f64>() / n;
        let (mut num, mut den) = (0.0, 0.0);
        for &(x, y) in &self.points {
            num += (x - mean_x) * (y - mean_y);
            den += (x - mean_x) * (x - mean_x);
        }
        if den <= 0.0 {
            return;
        }
        let trend = num / den * n.min(60.0) * TRENDLINE_GAIN;
        self.usage = if trend > OVERUSE_THRESHOLD {
            Usage::Overusing
        } else if trend < -OVERUSE_THRESHOLD {
            Usage::Underusing
        } else {
            Usage::Normal
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::twcc::TwccRecorder;

    #[test]
    fn reads_what_a_receiver_reports_including_losses_and_large_deltas() {
        let mut rec = TwccRecorder::new();
        let arrivals = [(10u16, 1_000_000u64), (11, 1_000_250), (13, 1_090_000), (14, 1_020_000)];
        for &(seq, t) in &arrivals {
            rec.record(seq, t);
        }
        let mut packets = Vec::new();
        rec.build_feedback(1, 2, &mut packets);
        let mut out = Vec::new();
        for p in &packets {
            parse_transport_feedback(p, &mut out).unwrap();
        }
        let got: Vec<(u16, Option<i64>)> = out.iter().map(|r| (r.seq, r.arrival_us)).collect();
        let expected: Vec<(u16, Option<i64>)> = vec![(10, Some(1_000_000)), (11, Some(1_000_250)), (12, None), (13, Some(1_090_000)), (14, Some(1_020_000))];
        assert_eq!(got, expected);
    }

    #[test]
    fn reads_run_length_and_one_bit_chunks() {
        // base 100, 20 packets: a run of 9 received (small deltas), then a one-bit vector of 11.
        let mut p = vec![0x80 | FMT_TRANSPORT_CC, PT_RTPFB, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 100, 0, 20, 0, 0, 1, 7];
        p.extend_from_slice(&(0x2000u16 | 9).to_be_bytes()); // run: symbol 1, length 9
        p.extend_from_slice(&(0x8000u16 | 0b10_1010_1010_1000).to_be_bytes()); // 1-bit: 1,0,1,0,… (11 used: 6 received)
        p.extend(std::iter::repeat(4u8).take(9 + 6));
        while p.len() % 4 != 0 {
            p.push(0);
        }
        let words = (p.len() / 4 - 1) as u16;
        p[2..4].copy_from_slice(&words.to_be_bytes());
        let mut out = Vec::new();
        parse_transport_feedback(&p, &mut out).unwrap();
        assert_eq!(out.len(), 20);
        assert!(out[..9].iter().all(|r| r.arrival_us.is_some()));
        assert_eq!(out[9].arrival_us.is_some(), true);
        assert_eq!(out[10].arrival_us, None);
        assert_eq!(out.iter().filter(|r| r.arrival_us.is_some()).count(), 15);
        assert_eq!(out[0].arrival_us, Some(64_000 + 1000), "reference time 1 × 64 ms + 4 × 250 µs");
    }

    #[test]
    fn refuses_what_is_not_transport_feedback_or_is_cut_short() {
        let mut out = Vec::new();
        assert!(parse_transport_feedback(&[], &mut out).is_none());
        assert!(parse_transport_feedback(&[0x81, 205, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0], &mut out).is_none(), "NACK, not FMT 15");
        let mut rec = TwccRecorder::new();
        rec.record(1, 0);
        rec.record(2, 100);
        let mut packets = Vec::new();
        rec.build_feedback(1, 2, &mut packets);
        for cut in 0..packets[0].len() {
            assert!(parse_transport_feedback(&packets[0][..cut], &mut out).is_none());
        }
        assert!(out.is_empty());
    }

    /// A bottleneck link of `capacity_bps` with a queue, fed at the estimate by a pacer; a
    /// receiver reports every 100 ms. Returns the estimate every 100 ms.
    fn simulate(bwe: &mut SendSideBwe, rec: &mut TwccRecorder, seq: &mut u16, clock: &mut (u64, u64), capacity: &dyn Fn(u64) -> u64, until_us: u64) -> Vec<(u64, u64)> {
        let (now, link_free) = clock;
        let mut trace = Vec::new();
        let size = 1200usize;
        let mut packets = Vec::new();
        while *now < until_us {
            let tick_end = *now + 100_000;
            let rate = bwe.estimate_bps().max(1);
            let interval = (size as u64 * 8 * 1_000_000 / rate).max(100);
            while *now < tick_end {
                bwe.on_packet_sent(*seq, size, *now);
                let cap = capacity(*now).max(1);
                let start = (*link_free).max(*now);
                let done = start + size as u64 * 8 * 1_000_000 / cap;
                // A queue of more than 300 ms of packets overflows: that packet is lost.
                if done.saturating_sub(*now) < 300_000 {
                    *link_free = done;
                    rec.record(*seq, done + 20_000);
                }
                *seq = seq.wrapping_add(1);
                *now += interval;
            }
            packets.clear();
            rec.build_feedback(1, 2, &mut packets);
            for p in &packets {
                bwe.on_feedback(p, *now + 20_000);
            }
            trace.push((*now, bwe.estimate_bps()));
        }
        trace
    }

    #[test]
    fn follows_a_capacity_drop_within_two_seconds_and_recovers_after_it() {
        let mut bwe = SendSideBwe::new(300_000, 50_000, 5_000_000);
        let mut rec = TwccRecorder::new();
        let mut seq = 0u16;
        let mut clock = (0u64, 0u64);
        let capacity = |t: u64| if (20_000_000..30_000_000).contains(&t) { 500_000 } else { 2_500_000 };
        let trace = simulate(&mut bwe, &mut rec, &mut seq, &mut clock, &capacity, 45_000_000);
        let at = |t: u64| trace.iter().find(|(now, _)| *now >= t).map(|p| p.1).unwrap();
        assert!(at(19_900_000) > 1_000_000, "ramped up toward 2.5 Mbit/s: {}", at(19_900_000));
        assert!(at(22_000_000) < 650_000, "down within 2 s of the drop to 0.5 Mbit/s: {}", at(22_000_000));
        assert!(trace.iter().filter(|(t, _)| (22_000_000..30_000_000).contains(t)).all(|&(_, e)| e < 800_000), "stays near the new capacity");
        assert!(at(44_900_000) > 1_000_000, "recovers after the capacity comes back: {}", at(44_900_000));
    }

    #[test]
    fn heavy_loss_lowers_the_estimate() {
        let mut bwe = SendSideBwe::new(1_000_000, 50_000, 5_000_000);
        let mut rec = TwccRecorder::new();
        let mut t = 0u64;
        let mut seq = 0u16;
        let mut packets = Vec::new();
        for _ in 0..30 {
            for i in 0..10 {
                bwe.on_packet_sent(seq, 1200, t);
                if i % 4 != 0 {
                    rec.record(seq, t + 10_000); // 25 % lost
                }
                seq = seq.wrapping_add(1);
                t += 10_000;
            }
            packets.clear();
            rec.build_feedback(1, 2, &mut packets);
            for p in &packets {
                bwe.on_feedback(p, t);
            }
        }
        // 960 kbit/s sent, 720 kbit/s through: the estimate goes below what got through (to
        // DECREASE_FACTOR of it), so the layers sent go down.
        assert!(bwe.estimate_bps() < 650_000, "{}", bwe.estimate_bps());
        let (lost, reported) = bwe.loss_counts();
        assert!(lost * 5 >= reported, "{lost}/{reported}");
    }

    #[test]
    fn a_burst_of_loss_cuts_the_estimate_to_what_got_through_not_below() {
        // 650 kbit/s sent over a 650 kbit/s link with a 100 ms queue (20 ms one way), reported
        // every 50 ms; then for 600 ms 1.3 Mbit/s (a probe the link cannot carry): half is lost.
        let mut bwe = SendSideBwe::new(650_000, 50_000, 5_000_000);
        let mut rec = TwccRecorder::new();
        let mut packets = Vec::new();
        let (mut seq, mut t, mut link_free) = (0u16, 0u64, 0u64);
        let capacity = 650_000u64;
        let mut lowest_after_burst = u64::MAX;
        for report in 0..120u64 {
            let rate = if (60..72).contains(&report) { 1_300_000 } else { 650_000 };
            let interval = 1200 * 8 * 1_000_000 / rate;
            let end = t + 50_000;
            while t < end {
                bwe.on_packet_sent(seq, 1200, t);
                let done = link_free.max(t) + 1200 * 8 * 1_000_000 / capacity;
                if done - t <= 100_000 {
                    link_free = done;
                    rec.record(seq, done + 20_000);
                }
                seq = seq.wrapping_add(1);
                t += interval;
            }
            packets.clear();
            rec.build_feedback(1, 2, &mut packets);
            for p in &packets {
                bwe.on_feedback(p, t + 20_000);
            }
            if report >= 60 {
                lowest_after_burst = lowest_after_burst.min(bwe.estimate_bps());
            }
        }
        assert!(lowest_after_burst >= 500_000, "a burst cut it to {lowest_after_burst}, far below the 650 kbit/s that got through");
        assert!(lowest_after_burst < 650_000, "the burst lowered it: {lowest_after_burst}");
    }

    #[test]
    fn a_probe_the_link_carries_raises_the_estimate_at_once() {
        // Estimate 300 kbit/s; the sender probes at 1.2 Mbit/s over a 2.5 Mbit/s link with a
        // 30 ms one-way delay; the receiver reports every 50 ms.
        let mut bwe = SendSideBwe::new(300_000, 50_000, 5_000_000);
        let mut rec = TwccRecorder::new();
        let mut packets = Vec::new();
        let mut seq = 0u16;
        let mut t = 0u64;
        let interval = 1200 * 8 * 1_000_000 / 1_200_000;
        for _ in 0..20 {
            let end = t + 50_000;
            while t < end {
                bwe.on_packet_sent(seq, 1200, t);
                rec.record(seq, t + 30_000);
                seq = seq.wrapping_add(1);
                t += interval;
            }
            packets.clear();
            rec.build_feedback(1, 2, &mut packets);
            for p in &packets {
                bwe.on_feedback(p, t + 30_000);
            }
        }
        assert!(bwe.estimate_bps() > 1_000_000, "within a second of probing: {}", bwe.estimate_bps());
        assert_eq!(bwe.loss_permille(), 0);
        let rtt = bwe.rtt_us().unwrap();
        assert!((30_000..=60_000 + 8_000).contains(&rtt), "30 ms out, feedback at once: {rtt}");
    }
}
