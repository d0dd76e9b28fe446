//! ferry-rtp: sans-IO RTP/RTCP handling for ferry's media engine.
//!
//! - [`rtp`]: RTP fixed-header parsing and in-place rewriting (RFC 3550 §5.1),
//!   header extensions (RFC 8285), audio level (RFC 6464), RTP/RTCP demux
//!   (RFC 5761 §4).
//! - [`rtcp`]: compound-packet validation and iteration (RFC 3550 §6),
//!   feedback parsing (RFC 4585, RFC 5104, REMB, transport-cc) and the
//!   builders of what ferry sends (PLI, NACK, REMB).
//! - [`switch`]: per-output sequence/timestamp rebasing when the source
//!   feeding an output changes.
//! - [`keyframe`]: recognising the first packet of a VP8/VP9/H.264 keyframe.
//! - [`rtx_buffer`]: fixed-capacity packet store for answering NACKs.
//! - [`nack`]: which missing packets to NACK, and when to retry or give up.
//! - [`vp8`]: the VP8 payload descriptor: temporal layer, PictureID/TL0PICIDX rewriting.
//! - [`vp9`]: the VP9 payload descriptor: SVC layer choice, PICTURE ID/TL0PICIDX rewriting.
//! - [`picture_numbering`]: picture ids kept continuous across switches (VP8 and VP9).
//! - [`bwe`]: transport-cc feedback reader and a send-side (GCC-like) bandwidth estimator.
//! - [`audio_level`]: RFC 6464 levels averaged per window of packets.
//! - [`twcc`]: transport-wide congestion control feedback (receiver side).
//! - [`transport_sequence`]: the transport-wide sequence number on what ferry sends.
//! - [`reception`]: packets expected and lost per interval (RFC 3550 A.3).
//! - [`telephone_event`]: RFC 4733 events (DTMF) reported once each.
//!
//! Nothing here performs I/O, and nothing panics on network data: every read
//! of packet bytes is bounds-checked.

#![forbid(unsafe_code)]

pub mod audio_level;
pub mod bwe;
mod bytes;
pub mod keyframe;
pub mod nack;
pub mod picture_numbering;
pub mod rtcp;
pub mod reception;
pub mod rtp;
pub mod rtx_buffer;
pub mod switch;
pub mod telephone_event;
pub mod transport_sequence;
pub mod twcc;
pub mod vp8;
pub mod vp9;

pub use audio_level::AudioLevelMeter;
pub use bwe::SendSideBwe;
pub use reception::{IntervalLoss, ReceptionStats};
pub use keyframe::{is_keyframe, VideoCodec};
pub use nack::{NackGenerator, NackStats};
pub use rtx_buffer::RetransmissionBuffer;
pub use switch::SwitchingContext;
pub use telephone_event::{TelephoneEvent, TelephoneEventDetector};
pub use twcc::TwccRecorder;
pub use vp8::Vp8Rewriter;
pub use vp9::{SvcSelector, Vp9Rewriter};
