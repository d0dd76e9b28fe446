//! The counters objects `NativeEngine.stats()` returns: the engine's per-endpoint, per-stream
//! and per-thread counters, as JavaScript numbers (exact up to 2^53).

use ferry_engine::{EndpointStats, EngineStats, StreamStats};
use napi_derive::napi;

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
}

impl EndpointCounters {
    fn from_stats(id: u32, port: u16, worker: usize, s: &EndpointStats) -> Self {
        Self {
            id,
            port: port as u32,
            worker: worker as u32,
            rx_packets: s.rx_packets as f64,
            rx_bytes: s.rx_bytes as f64,
            tx_packets: s.tx_packets as f64,
            tx_bytes: s.tx_bytes as f64,
            tx_failed: s.tx_failed as f64,
            stun_requests: s.stun_requests as f64,
            stun_replies: s.stun_replies as f64,
            stun_error_replies: s.stun_error_replies as f64,
            stun_dropped: s.stun_dropped as f64,
            dtls_in: s.dtls_in as f64,
            dtls_out: s.dtls_out as f64,
            rtp_in: s.rtp_in as f64,
            rtcp_in: s.rtcp_in as f64,
            srtp_auth_failures: s.srtp_auth_failures as f64,
            srtp_replays: s.srtp_replays as f64,
            srtp_other_failures: s.srtp_other_failures as f64,
            srtcp_failures: s.srtcp_failures as f64,
            rtp_malformed: s.rtp_malformed as f64,
            rtcp_malformed: s.rtcp_malformed as f64,
            unknown_ssrc: s.unknown_ssrc as f64,
            unvalidated_drops: s.unvalidated_drops as f64,
            no_remote_drops: s.no_remote_drops as f64,
            no_srtp_drops: s.no_srtp_drops as f64,
            demux_unknown: s.demux_unknown as f64,
            keyframe_requests_relayed: s.keyframe_requests_relayed as f64,
            transport_feedback_sent: s.transport_feedback_sent as f64,
            nacks_sent: s.nacks_sent as f64,
            rtx_in: s.rtx_in as f64,
            remb_sent: s.remb_sent as f64,
        }
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
}

impl StreamCounters {
    fn from_stats(id: u32, worker: usize, s: &StreamStats) -> Self {
        Self {
            id,
            worker: worker as u32,
            packets: s.packets as f64,
            bytes: s.bytes as f64,
            dropped: s.dropped as f64,
            queue_drops: s.queue_drops as f64,
            nacked: s.nacked as f64,
            retransmitted: s.retransmitted as f64,
            rtx_missed: s.rtx_missed as f64,
            filtered: s.filtered as f64,
        }
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
    pub cross_sent: f64,
    pub cross_received: f64,
    pub remote_feeds: u32,
    pub subscriptions: u32,
    pub shared_buffers: u32,
    pub shared_buffers_in_use: u32,
}

#[napi(object)]
pub struct EngineCounters {
    pub endpoints: Vec<EndpointCounters>,
    pub sources: Vec<StreamCounters>,
    pub outputs: Vec<StreamCounters>,
    pub workers: Vec<WorkerCounters>,
}

impl EngineCounters {
    pub(crate) fn from_stats(stats: &EngineStats) -> Self {
        let mut out = EngineCounters { endpoints: Vec::new(), sources: Vec::new(), outputs: Vec::new(), workers: Vec::new() };
        for w in &stats.workers {
            out.workers.push(WorkerCounters {
                worker: w.worker as u32,
                cpu_ns: w.cpu_ns as f64,
                loops: w.loops as f64,
                recv_batches: w.recv_batches as f64,
                panics: w.panics as f64,
                load_pps: w.load_pps as f64,
                busy_permille: w.busy_permille,
                endpoints: w.endpoints.len() as u32,
                queue_depth: w.queue_depth as u32,
                queue_overflows: w.queue_overflows as f64,
                cross_sent: w.cross_sent as f64,
                cross_received: w.cross_received as f64,
                remote_feeds: w.remote_feeds as u32,
                subscriptions: w.subscriptions as u32,
                shared_buffers: w.shared_buffers as u32,
                shared_buffers_in_use: w.shared_buffers_in_use as u32,
            });
            out.endpoints.extend(w.endpoints.iter().map(|(id, port, s)| EndpointCounters::from_stats(*id, *port, w.worker, s)));
            out.sources.extend(w.sources.iter().map(|(id, s)| StreamCounters::from_stats(*id, w.worker, s)));
            out.outputs.extend(w.outputs.iter().map(|(id, s)| StreamCounters::from_stats(*id, w.worker, s)));
        }
        out
    }
}
