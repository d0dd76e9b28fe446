//! Counters kept by the media thread. Every drop has a named reason, so bad
//! input shows up as a number rather than as a log line per packet.
//! JavaScript reads them through native/src/stats.rs, which must name every field.

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointStats {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub tx_failed: u64,
    pub stun_requests: u64,
    pub stun_replies: u64,
    pub stun_error_replies: u64,
    pub stun_dropped: u64,
    pub dtls_in: u64,
    pub dtls_out: u64,
    pub rtp_in: u64,
    pub rtcp_in: u64,
    pub srtp_auth_failures: u64,
    pub srtp_replays: u64,
    pub srtp_other_failures: u64,
    pub srtcp_failures: u64,
    pub rtp_malformed: u64,
    pub rtcp_malformed: u64,
    pub unknown_ssrc: u64,
    pub unvalidated_drops: u64,
    pub no_remote_drops: u64,
    pub no_srtp_drops: u64,
    pub demux_unknown: u64,
    pub keyframe_requests_relayed: u64,
    /// Transport-cc feedback packets sent (senders' bandwidth estimation).
    pub transport_feedback_sent: u64,
    /// Generic NACK packets sent to publishers on this endpoint for packets that did not arrive.
    pub nacks_sent: u64,
    /// RFC 4588 retransmissions received and unwrapped to their source.
    pub rtx_in: u64,
    /// REMB packets ferry sent this endpoint's publisher (its bitrate cap).
    pub remb_sent: u64,
    /// Send-side estimate of what the receiver's link takes (bits/s; 0 = not estimated).
    pub bwe_estimate_bps: u64,
    /// Recent share of what ferry sent that the receiver's transport-cc feedback says was lost (‰).
    pub bwe_loss_permille: u32,
    /// Round trip as transport-cc feedback shows it (ms; 0 = not known).
    pub rtt_ms: u32,
    /// Transport-cc feedback packets received from this endpoint's receiver.
    pub transport_feedback_received: u64,
    /// RTX copies sent to probe whether the link takes more.
    pub probe_packets: u64,
    /// Whether some output gets less than its preferred layers because of the estimate.
    pub bwe_limited: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamStats {
    pub packets: u64,
    pub bytes: u64,
    pub dropped: u64,
    /// Outputs: packets of a source on another media thread that a full queue between the
    /// threads dropped (also counted in `dropped`).
    pub queue_drops: u64,
    /// Outputs: sequence numbers the receiver NACKed (RFC 4585 §6.2.1). Sources: sequence
    /// numbers ferry NACKed to the publisher (each retry counts).
    pub nacked: u64,
    /// Outputs: packets sent again for those NACKs (as RTX or plain). Sources: missing packets
    /// that arrived after all (repaired or late).
    pub retransmitted: u64,
    /// Outputs: NACKed packets not sent again: no longer buffered, never sent, or over the
    /// output's retransmission rate. Sources: missing packets given up on.
    pub rtx_missed: u64,
    /// Outputs: packets of temporal layers above the output's choice, not sent (not a loss).
    pub filtered: u64,
    /// Outputs: packets of their source's cached group of pictures sent when they started.
    pub replayed: u64,
    /// Outputs choosing from simulcast layers: the layer chosen (index in its set; -1 = none).
    pub layer: i32,
    /// Sources: receive rate over the last half second (bits/s).
    pub bitrate_bps: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerStats {
    pub worker: usize,
    pub cpu_ns: u64,
    pub loops: u64,
    pub recv_batches: u64,
    pub panics: u64,
    /// Packets received and sent per second, over the last load interval.
    pub load_pps: u64,
    /// Share of the last load interval the thread spent working (CPU time / wall time), in ‰.
    pub busy_permille: u32,
    /// Packets from other threads waiting in this thread's queue.
    pub queue_depth: usize,
    /// Packets this thread could not hand to another thread because its queue was full.
    pub queue_overflows: u64,
    /// Producers skip waking this thread for handed-over packets; it wakes itself every ms
    /// (handover_wakes.rs). Mode changes so far.
    pub coalescing_wakes: bool,
    pub wake_mode_switches: u64,
    /// Packets this thread handed to other threads (one per receiving thread).
    pub cross_sent: u64,
    /// Packets this thread received from other threads.
    pub cross_received: u64,
    /// Sources of other threads this thread receives because its outputs want them.
    pub remote_feeds: usize,
    /// (source, thread) pairs this thread hands packets to.
    pub subscriptions: usize,
    /// Packet buffers this thread owns for hand-over (reused; each holds one packet).
    pub shared_buffers: usize,
    /// Of those, the ones another thread still holds (queued or being fanned out).
    pub shared_buffers_in_use: usize,
    /// Single-port mode: the port of this thread's shared socket (0: off), the endpoints on it,
    /// the peer addresses it routes by, and datagrams no endpoint could be found for (dropped).
    pub shared_port: u16,
    pub shared_endpoints: usize,
    pub shared_addresses: usize,
    pub shared_unrouted: u64,
    /// ICE-TCP connections open, and frames dropped (a peer not reading, or broken framing).
    pub tcp_connections: usize,
    pub tcp_dropped: u64,
    pub endpoints: Vec<(u32, u16, EndpointStats)>,
    pub sources: Vec<(u32, StreamStats)>,
    pub outputs: Vec<(u32, StreamStats)>,
}

/// What every stats request returns: the sum over workers plus each worker's detail.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineStats {
    pub workers: Vec<WorkerStats>,
}

impl EngineStats {
    pub fn endpoint_count(&self) -> usize {
        self.workers.iter().map(|w| w.endpoints.len()).sum()
    }
    pub fn source_count(&self) -> usize {
        self.workers.iter().map(|w| w.sources.len()).sum()
    }
    pub fn output_count(&self) -> usize {
        self.workers.iter().map(|w| w.outputs.len()).sum()
    }
    pub fn endpoint(&self, id: u32) -> Option<&EndpointStats> {
        self.workers.iter().flat_map(|w| w.endpoints.iter()).find(|(eid, _, _)| *eid == id).map(|(_, _, s)| s)
    }
    pub fn source(&self, id: u32) -> Option<&StreamStats> {
        self.workers.iter().flat_map(|w| w.sources.iter()).find(|(sid, _)| *sid == id).map(|(_, s)| s)
    }
    pub fn output(&self, id: u32) -> Option<&StreamStats> {
        self.workers.iter().flat_map(|w| w.outputs.iter()).find(|(oid, _)| *oid == id).map(|(_, s)| s)
    }
}
