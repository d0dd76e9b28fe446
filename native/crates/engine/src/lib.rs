//! ferry's media engine: media threads that own UDP sockets and do the
//! per-packet work (ICE-lite answers, SRTP, RTP/RTCP rewriting, fan-out)
//! without the control plane seeing a single packet. Protocol logic lives
//! in the sans-IO crates `ferry-srtp`, `ferry-rtp` and `ferry-stun`; this
//! crate is the I/O and routing around them.
//!
//! All its unsafe code is in `sys` (Linux syscalls behind safe wrappers).
#![deny(unsafe_code)]

pub mod bandwidth;
pub mod bench;
pub mod endpoint;
pub mod engine;
pub mod event;
mod handover_wakes;
mod ice_tcp;
mod idmap;
pub mod mjr;
pub mod recorder;
pub mod router;
pub mod shared_port;
pub mod stats;
#[allow(unsafe_code)]
mod sys;
mod worker;

pub use bandwidth::{BweConfig, LayerSet, SourceRates};
pub use endpoint::{EndpointConfig, IceCredentials, SrtpKeys};
pub use engine::{auto_workers, Engine, EngineError, EngineOptions, Placement};
pub use event::{Event, EventSink};
pub use mjr::{MjrInfo, MjrKind};
pub use recorder::{RecorderStats, RecordingSummary};
pub use router::{Handoff, MediaKind, OutputConfig, RtxConfig, PeerMessage, Router, RouterIo, SourceConfig, SourceRef, VideoCodec, MAX_DATAGRAM};
pub use stats::{EndpointStats, EngineStats, StreamStats, WorkerStats};
pub use ferry_srtp::SrtpProfile;
