//! Sources (what a publisher sends, by SSRC) and outputs (what a subscriber
//! receives): the fan-out table of a media thread.

use ferry_rtp::switch::SwitchingContext;
use ferry_rtp::{AudioLevelMeter, ReceptionStats};
pub use ferry_rtp::VideoCodec;

use crate::stats::StreamStats;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    Audio,
    Video,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceConfig {
    /// SSRC on the wire, as the publisher sends it.
    pub ssrc: u32,
    /// Added to the wire SSRC on receipt (lessons §4): cascaded publishers reuse SSRC schemes,
    /// the offset keeps every source's SSRC distinct inside ferry.
    pub ssrc_offset: u32,
    pub kind: MediaKind,
    pub clock_rate: u32,
    /// Video codec of the stream, when known: lets an output switch to this source exactly
    /// at one of its keyframes (see `Engine::switch_output`).
    pub codec: Option<VideoCodec>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputConfig {
    pub source: Option<u32>,
    /// SSRC the subscriber sees; fixed for the output's life whatever source feeds it.
    pub ssrc: u32,
    /// Payload type to write, when the subscriber negotiated a different one.
    pub payload_type: Option<u8>,
}

pub(crate) struct Source {
    pub endpoint: u32,
    pub config: SourceConfig,
    pub outputs: Vec<u32>,
    pub last_keyframe_request_us: Option<u64>,
    pub stats: StreamStats,
    /// RFC 6464 extension id and the meter averaging its levels, when asked for.
    pub audio_level: Option<(u8, AudioLevelMeter)>,
    /// Sequence accounting of what arrives, for loss on the sender's uplink.
    pub reception: ReceptionStats,
    pub last_loss_check_us: u64,
}

pub(crate) struct Output {
    pub endpoint: u32,
    pub source: Option<u32>,
    /// Source this output moves to at its next keyframe; until then `source` keeps feeding
    /// it. The output is listed in both sources' `outputs` meanwhile.
    pub pending_source: Option<u32>,
    pub ssrc: u32,
    pub payload_type: Option<u8>,
    pub paused: bool,
    pub switching: SwitchingContext,
    pub stats: StreamStats,
}
