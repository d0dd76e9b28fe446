//! The counters objects `NativeEngine.stats()` returns: the engine's per-endpoint, per-stream
//! and per-thread counters, as JavaScript numbers (exact up to 2^53). These structs are the one
//! schema of those objects: `npm run build` generates their TypeScript declarations
//! (src/media/native.generated.ts).
//!
//! A new counter: count it in `ferry_engine`'s stats.rs, then add it here, with its doc comment,
//! to the struct and to its `from_stats` list. Every `from_stats` names each field of the
//! engine's struct (no `..`), so a counter the engine adds does not compile until it is here.

use ferry_engine::{EndpointStats, EngineStats, StreamStats, WorkerStats};
use napi_derive::napi;

/// `Self { <extra fields>, <each listed u64 counter of $stats as f64>, <each field listed
/// after `as_is` copied> }`, after destructuring `$stats` as `$ty` with exactly the listed
/// fields: one left out is a compile error.
macro_rules! counters {
    ($stats:expr, $ty:ident { $($counter:ident),* $(,)? } $(as_is { $($plain:ident),* $(,)? })?, { $($extra:tt)* }) => {{
        let $ty { $($counter,)* $($($plain,)*)? } = $stats;
        Self { $($extra)* $($counter: *$counter as f64,)* $($($plain: *$plain,)*)? }
    }};
}

#[napi(object)]
pub struct EndpointCounters {
    pub id: u32,
    pub port: u32,
    /// Media thread that owns the endpoint.
    pub worker: u32,
    pub rx_packets: f64,
    pub rx_bytes: f64,
    pub tx_packets: f64,
    pub tx_bytes: f64,
    pub tx_failed: f64,
    pub stun_requests: f64,
    pub stun_replies: f64,
    pub stun_error_replies: f64,
    pub stun_dropped: f64,
    pub dtls_in: f64,
    pub dtls_out: f64,
    pub rtp_in: f64,
    pub rtcp_in: f64,
    pub srtp_auth_failures: f64,
    pub srtp_replays: f64,
    pub srtp_other_failures: f64,
    pub srtcp_failures: f64,
    pub rtp_malformed: f64,
    pub rtcp_malformed: f64,
    pub unknown_ssrc: f64,
    pub unvalidated_drops: f64,
    pub no_remote_drops: f64,
    pub no_srtp_drops: f64,
    pub demux_unknown: f64,
    pub keyframe_requests_relayed: f64,
    pub transport_feedback_sent: f64,
    /// Generic NACKs sent to this endpoint's publishers for packets that did not arrive.
    pub nacks_sent: f64,
    /// RFC 4588 retransmissions received and unwrapped to their source.
    pub rtx_in: f64,
    /// REMB packets sent to this endpoint's publisher (its bitrate cap).
    pub remb_sent: f64,
    /// Send-side estimate of the receiver's link (bits/s; 0 = not estimated).
    pub bwe_estimate_bps: f64,
    /// Recent loss on what ferry sent, from transport-cc feedback (‰).
    pub bwe_loss_permille: u32,
    /// Round trip from transport-cc feedback (ms; 0 = unknown).
    pub rtt_ms: u32,
    /// Transport-cc feedback packets received from this endpoint's receiver.
    pub transport_feedback_received: f64,
    /// RTX copies sent to probe whether the link takes more.
    pub probe_packets: f64,
    /// Some output gets less than its preferred layers because of the estimate.
    pub bwe_limited: bool,
}

impl EndpointCounters {
    fn from_stats(id: u32, port: u16, worker: usize, s: &EndpointStats) -> Self {
        counters!(
            s,
            EndpointStats {
                rx_packets, rx_bytes, tx_packets, tx_bytes, tx_failed,
                stun_requests, stun_replies, stun_error_replies, stun_dropped,
                dtls_in, dtls_out, rtp_in, rtcp_in,
                srtp_auth_failures, srtp_replays, srtp_other_failures, srtcp_failures,
                rtp_malformed, rtcp_malformed, unknown_ssrc,
                unvalidated_drops, no_remote_drops, no_srtp_drops, demux_unknown,
                keyframe_requests_relayed, transport_feedback_sent, nacks_sent, rtx_in, remb_sent,
                bwe_estimate_bps, transport_feedback_received, probe_packets,
            } as_is { bwe_loss_permille, rtt_ms, bwe_limited },
            { id, port: u32::from(port), worker: worker as u32, }
        )
    }
}

#[napi(object)]
pub struct StreamCounters {
    pub id: u32,
    /// Media thread the source or output lives on.
    pub worker: u32,
    pub packets: f64,
    pub bytes: f64,
    pub dropped: f64,
    /// Outputs: packets of another thread's source dropped by a full queue between threads.
    pub queue_drops: f64,
    /// Outputs: sequence numbers the receiver asked again for (RFC 4585 generic NACK), what
    /// was retransmitted, and what could not be (no longer buffered, or rate-limited).
    pub nacked: f64,
    pub retransmitted: f64,
    pub rtx_missed: f64,
    /// Outputs: packets of VP8 temporal layers above the output's choice, not sent.
    pub filtered: f64,
    /// Outputs choosing among simulcast layers: the layer chosen (-1: none).
    pub layer: i32,
    /// Outputs: packets of the source's cached group of pictures sent when they started.
    pub replayed: f64,
    /// Sources: receive rate over the last half second (bits/s).
    pub bitrate_bps: f64,
}

impl StreamCounters {
    fn from_stats(id: u32, worker: usize, s: &StreamStats) -> Self {
        counters!(
            s,
            StreamStats { packets, bytes, dropped, queue_drops, nacked, retransmitted, rtx_missed, filtered, bitrate_bps, replayed } as_is { layer },
            { id, worker: worker as u32, }
        )
    }
}

#[napi(object)]
pub struct WorkerCounters {
    pub worker: u32,
    pub cpu_ns: f64,
    pub loops: f64,
    pub recv_batches: f64,
    pub panics: f64,
    /// Packets received and sent per second over the last second.
    pub load_pps: f64,
    /// Share of the last second the thread worked, in ‰.
    pub busy_permille: u32,
    pub endpoints: u32,
    /// Packets from other threads waiting in this thread's queue.
    pub queue_depth: u32,
    /// Packets not handed to another thread because its queue was full.
    pub queue_overflows: f64,
    /// The thread wakes itself every ms instead of being woken per hand-over (busy hand-over
    /// traffic); how often it changed mode.
    pub coalescing_wakes: bool,
    pub wake_mode_switches: f64,
    pub cross_sent: f64,
    pub cross_received: f64,
    pub remote_feeds: u32,
    pub subscriptions: u32,
    pub shared_buffers: u32,
    pub shared_buffers_in_use: u32,
    /// Single-port mode: this thread's shared port (0: off), the endpoints on it, the peer
    /// addresses it routes by, and datagrams it could route to no endpoint (dropped).
    pub shared_port: u32,
    pub shared_endpoints: u32,
    pub shared_addresses: u32,
    pub shared_unrouted: f64,
    /// ICE-TCP connections open, and frames dropped on them.
    pub tcp_connections: u32,
    pub tcp_dropped: f64,
}

#[napi(object)]
pub struct EngineCounters {
    pub endpoints: Vec<EndpointCounters>,
    pub sources: Vec<StreamCounters>,
    pub outputs: Vec<StreamCounters>,
    pub workers: Vec<WorkerCounters>,
}

impl WorkerCounters {
    fn from_stats(w: &WorkerStats) -> Self {
        let WorkerStats {
            worker,
            cpu_ns,
            loops,
            recv_batches,
            panics,
            load_pps,
            busy_permille,
            queue_depth,
            queue_overflows,
            coalescing_wakes,
            wake_mode_switches,
            cross_sent,
            cross_received,
            remote_feeds,
            subscriptions,
            shared_buffers,
            shared_buffers_in_use,
            shared_port,
            shared_endpoints,
            shared_addresses,
            shared_unrouted,
            tcp_connections,
            tcp_dropped,
            endpoints,
            sources: _,
            outputs: _,
        } = w;
        Self {
            worker: *worker as u32,
            cpu_ns: *cpu_ns as f64,
            loops: *loops as f64,
            recv_batches: *recv_batches as f64,
            panics: *panics as f64,
            load_pps: *load_pps as f64,
            busy_permille: *busy_permille,
            endpoints: endpoints.len() as u32,
            queue_depth: *queue_depth as u32,
            queue_overflows: *queue_overflows as f64,
            coalescing_wakes: *coalescing_wakes,
            wake_mode_switches: *wake_mode_switches as f64,
            cross_sent: *cross_sent as f64,
            cross_received: *cross_received as f64,
            remote_feeds: *remote_feeds as u32,
            subscriptions: *subscriptions as u32,
            shared_buffers: *shared_buffers as u32,
            shared_buffers_in_use: *shared_buffers_in_use as u32,
            shared_port: u32::from(*shared_port),
            shared_endpoints: *shared_endpoints as u32,
            shared_addresses: *shared_addresses as u32,
            shared_unrouted: *shared_unrouted as f64,
            tcp_connections: *tcp_connections as u32,
            tcp_dropped: *tcp_dropped as f64,
        }
    }
}

impl EngineCounters {
    pub(crate) fn from_stats(stats: &EngineStats) -> Self {
        let mut out = EngineCounters { endpoints: Vec::new(), sources: Vec::new(), outputs: Vec::new(), workers: Vec::new() };
        for w in &stats.workers {
            out.workers.push(WorkerCounters::from_stats(w));
            out.endpoints.extend(w.endpoints.iter().map(|(id, port, s)| EndpointCounters::from_stats(*id, *port, w.worker, s)));
            out.sources.extend(w.sources.iter().map(|(id, s)| StreamCounters::from_stats(*id, w.worker, s)));
            out.outputs.extend(w.outputs.iter().map(|(id, s)| StreamCounters::from_stats(*id, w.worker, s)));
        }
        out
    }
}
