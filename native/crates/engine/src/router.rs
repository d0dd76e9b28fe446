//! Sources (what a publisher sends, by SSRC) and outputs (what a subscriber
//! receives): the fan-out table of a media thread.

use ferry_rtp::switch::SwitchingContext;

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
}

pub(crate) struct Output {
    pub endpoint: u32,
    pub source: Option<u32>,
    pub ssrc: u32,
    pub payload_type: Option<u8>,
    pub paused: bool,
    pub switching: SwitchingContext,
    pub stats: StreamStats,
}
