//! The engine's events as JavaScript receives them: one object per event, delivered in
//! batches to the callback `NativeEngine.onEvents` set. This enum is the one schema of those
//! objects: napi-rs turns each variant into `{ type: '<variant in kebab-case>', <fields in
//! camelCase> }`, and `npm run build` generates the TypeScript union from it
//! (src/media/native.generated.ts, re-exported as `EngineEvent` by src/media/MediaEngine.ts).
//!
//! How to add an engine event:
//! 1. add its variant to `ferry_engine::Event` (native/crates/engine/src/event.rs) and raise it
//!    where the media thread notices the thing;
//! 2. add its JavaScript shape to `EngineEvent` below, with a doc comment, and its arm in
//!    `EngineEvent::from_event` (the compiler asks for it);
//! 3. `npm run build`: the TypeScript type now has it, `MediaEngine` delivers it (to the
//!    endpoint's listener too when it has an `endpoint`), and the code that cares switches on
//!    its `type`. No TypeScript restates the shape.
//!
//! A field that may be absent is an `Option` (left out of the object); one that JavaScript
//! reads as `null` is an `Either<_, Null>`.

use std::net::SocketAddr;

use ferry_engine::Event;
use napi::bindgen_prelude::*;
use napi_derive::napi;

/// Where a packet came from or goes to.
#[napi(object, object_from_js = false)]
pub struct RemoteAddress {
    pub address: String,
    pub port: u32,
}

impl From<SocketAddr> for RemoteAddress {
    fn from(addr: SocketAddr) -> Self {
        Self { address: addr.ip().to_string(), port: u32::from(addr.port()) }
    }
}

/// What the engine tells JavaScript (see `ferry_engine::Event` for when each is raised).
#[napi(discriminant = "type", discriminant_case = "kebab-case", object_from_js = false)]
pub enum EngineEvent {
    /// A DTLS record for the control plane's DTLS stack.
    Dtls { endpoint: u32, from: RemoteAddress, data: Buffer },
    /// ICE nomination picked (or moved) the address media is sent to.
    IceSelected { endpoint: u32, address: RemoteAddress },
    /// RFC 7675 consent expired for the selected address.
    ConsentLost { endpoint: u32, address: RemoteAddress },
    /// RTP with an SSRC no source claims (once per SSRC per endpoint); `rid` when it carried one.
    UnknownSsrc { endpoint: u32, ssrc: u32, payload_type: u32, rid: Option<String> },
    /// The first plain-RTP packet latched the endpoint's remote address.
    RemoteLatched { endpoint: u32, address: RemoteAddress },
    /// A subscriber asked for a keyframe of this source (already relayed natively).
    KeyframeRequested { source: u32 },
    /// REMB from a receiver on this endpoint, in bits per second.
    Remb { endpoint: u32, bitrate: f64 },
    /// A receiver report that saw loss (RFC 3550 fraction lost 1..255, cumulative packets lost);
    /// reports without loss never reach JavaScript (`worth_telling`).
    ReceiverLoss { endpoint: u32, ssrc: u32, fraction_lost: u32, lost: f64 },
    /// Average RFC 6464 level of a metered source's last window, −dBov (0 loudest … 127 silence).
    AudioLevel { endpoint: u32, source: u32, level: u32 },
    /// An output held for a keyframe switched: `source` feeds it from now on.
    OutputSwitched { endpoint: u32, output: u32, source: u32 },
    /// The highest VP8 temporal layer an output forwards changed (null: every layer).
    OutputTemporal { endpoint: u32, output: u32, layer: Either<u32, Null> },
    /// VP9 SVC: the highest spatial layer an output forwards changed (null: every layer).
    OutputSpatial { endpoint: u32, output: u32, layer: Either<u32, Null> },
    /// The send-side estimate of a subscriber's transport (bits/s), the recent loss on what
    /// ferry sent it (‰), the round trip from transport-cc (ms; 0 unknown), and whether some
    /// output gets less than its preferred layers because of the estimate. Sent when it moved
    /// by 10 % (at most once a second) or `limited` changed.
    BandwidthEstimate { endpoint: u32, bitrate: f64, loss_permille: u32, rtt_ms: u32, limited: bool },
    /// Packets a source's sender sent over about a second (`expected`) and how many never arrived.
    SourceLoss { endpoint: u32, source: u32, expected: u32, lost: f64 },
    /// An RFC 4733 event ended on a watched source (once per event): `event` 0-9 digits, 10 `*`,
    /// 11 `#`, 12-15 A-D; `volume` in -dBm0; `duration` in the payload's clock units.
    TelephoneEvent { endpoint: u32, source: u32, event: u32, volume: u32, duration: u32 },
    /// A recording's file could not be written (disk full, permissions): it keeps what was
    /// written and stops growing. Once per recording.
    RecordingFailed { recording: u32, message: String },
    /// A panic was caught inside a media thread (or the recording writer, `worker` 2^32-1);
    /// the thread goes on.
    WorkerPanic { worker: u32, message: String },
}

impl EngineEvent {
    pub(crate) fn from_event(ev: Event) -> Self {
        match ev {
            Event::Dtls { endpoint, from, data } => Self::Dtls { endpoint, from: from.into(), data: data.into() },
            Event::IceSelected { endpoint, address } => Self::IceSelected { endpoint, address: address.into() },
            Event::ConsentLost { endpoint, address } => Self::ConsentLost { endpoint, address: address.into() },
            Event::UnknownSsrc { endpoint, ssrc, payload_type, rid } => {
                Self::UnknownSsrc { endpoint, ssrc, payload_type: u32::from(payload_type), rid }
            }
            Event::RemoteLatched { endpoint, address } => Self::RemoteLatched { endpoint, address: address.into() },
            Event::KeyframeRequested { source } => Self::KeyframeRequested { source },
            Event::Remb { endpoint, bitrate_bps } => Self::Remb { endpoint, bitrate: bitrate_bps as f64 },
            Event::ReceiverLoss { endpoint, ssrc, fraction_lost, cumulative_lost } => {
                Self::ReceiverLoss { endpoint, ssrc, fraction_lost: u32::from(fraction_lost), lost: f64::from(cumulative_lost) }
            }
            Event::AudioLevel { endpoint, source, level } => Self::AudioLevel { endpoint, source, level: u32::from(level) },
            Event::OutputSwitched { endpoint, output, source } => Self::OutputSwitched { endpoint, output, source },
            Event::OutputTemporal { endpoint, output, layer } => Self::OutputTemporal { endpoint, output, layer: every_layer_as_null(layer) },
            Event::OutputSpatial { endpoint, output, layer } => Self::OutputSpatial { endpoint, output, layer: every_layer_as_null(layer) },
            Event::BandwidthEstimate { endpoint, bitrate_bps, loss_permille, rtt_ms, limited } => {
                Self::BandwidthEstimate { endpoint, bitrate: bitrate_bps as f64, loss_permille, rtt_ms, limited }
            }
            Event::SourceLoss { endpoint, source, expected, lost } => {
                Self::SourceLoss { endpoint, source, expected, lost: f64::from(lost) }
            }
            Event::TelephoneEvent { endpoint, source, event, volume, duration } => {
                Self::TelephoneEvent { endpoint, source, event: u32::from(event), volume: u32::from(volume), duration: u32::from(duration) }
            }
            Event::RecordingFailed { recording, message } => Self::RecordingFailed { recording, message },
            Event::WorkerPanic { worker, message } => Self::WorkerPanic { worker: u32::try_from(worker).unwrap_or(u32::MAX), message },
        }
    }
}

/// A layer index, with the engine's 255 for "every layer" as null.
fn every_layer_as_null(layer: u8) -> Either<u32, Null> {
    if layer == u8::MAX {
        Either::B(Null)
    } else {
        Either::A(u32::from(layer))
    }
}

/// Whether JavaScript needs an event at all. A receiver report that saw no loss is no news:
/// its one reader (slowlink in src/webrtc/PeerConnection.ts) acts on loss alone, and every
/// subscriber's receiver sends one about every second, so forwarding them would wake the
/// Node thread and allocate there for nothing, steadily, while media flows.
pub(crate) fn worth_telling(ev: &Event) -> bool {
    !matches!(ev, Event::ReceiverLoss { fraction_lost: 0, .. })
}
