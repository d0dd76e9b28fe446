//! Signalling-rate events the media thread reports to the control plane,
//! delivered in batches (never one call per packet). JavaScript receives them as
//! native/src/events.rs shapes them; its top says how to add an event.

use std::net::SocketAddr;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A DTLS record (RFC 7983 first byte 20..=63) for the control plane's DTLS stack.
    Dtls { endpoint: u32, from: SocketAddr, data: Vec<u8> },
    /// ICE nomination picked (or moved) the address media is sent to.
    IceSelected { endpoint: u32, address: SocketAddr },
    /// RFC 7675: no authenticated check from the selected address within the consent timeout.
    ConsentLost { endpoint: u32, address: SocketAddr },
    /// RTP arrived with an SSRC no source claims (reported once per SSRC per endpoint).
    UnknownSsrc { endpoint: u32, ssrc: u32, payload_type: u8, rid: Option<String> },
    /// First plain-RTP packet latched the remote address of an endpoint.
    RemoteLatched { endpoint: u32, address: SocketAddr },
    /// A subscriber asked for a keyframe of this source (already relayed natively; reported rate-limited).
    KeyframeRequested { source: u32 },
    /// REMB from a receiver on this endpoint (rate-limited to one per second per endpoint).
    Remb { endpoint: u32, bitrate_bps: u64 },
    /// A receiver on this endpoint reported loss (RFC 3550 §6.4.2 report block) for an output's SSRC;
    /// at most one per endpoint per second, for `slowlink`.
    ReceiverLoss { endpoint: u32, ssrc: u32, fraction_lost: u8, cumulative_lost: i32 },
    /// Average RFC 6464 level (−dBov, 0 = loudest) of a source's last window of packets,
    /// once per window, for sources with a meter (`Engine::set_audio_level_meter`).
    AudioLevel { endpoint: u32, source: u32, level: u8 },
    /// An output asked to switch at a keyframe (`Engine::switch_output` with `on_keyframe`) did:
    /// `source` feeds it from this packet on.
    OutputSwitched { endpoint: u32, output: u32, source: u32 },
    /// Packets a source's sender sent that never arrived, over about a second (RFC 3550 A.3);
    /// reported only when some were lost, at most once per second per source.
    SourceLoss { endpoint: u32, source: u32, expected: u32, lost: u32 },
    /// The highest VP8 temporal layer an output forwards changed to `layer` (Janus `temporal`;
    /// 255 = every layer).
    OutputTemporal { endpoint: u32, output: u32, layer: u8 },
    /// VP9 SVC: the highest spatial layer an output forwards changed to `layer` (Janus
    /// `spatial_layer`; 255 = every layer).
    OutputSpatial { endpoint: u32, output: u32, layer: u8 },
    /// The send-side estimate of a subscriber's transport (`Router::set_send_bwe`): reported
    /// when it moved by 10 % (at most once a second) or when `limited` changed, i.e. when some
    /// output started or stopped getting less than its preferred layers because of it.
    BandwidthEstimate { endpoint: u32, bitrate_bps: u64, loss_permille: u32, rtt_ms: u32, limited: bool },
    /// An RFC 4733 event (a DTMF digit: 0-9, 10 `*`, 11 `#`, 12-15 A-D) ended on a source
    /// watched for them (`Engine::set_telephone_events`); reported once per event.
    TelephoneEvent { endpoint: u32, source: u32, event: u8, volume: u8, duration: u16 },
    /// A recording's file could not be written (disk full, permissions): it stops growing and
    /// keeps what was written. Reported once per recording, by the recording writer thread.
    RecordingFailed { recording: u32, message: String },
    /// A panic was caught inside the media thread; the thread goes on.
    WorkerPanic { worker: usize, message: String },
}

/// Receives each batch of events; called from the media thread.
pub type EventSink = std::sync::Arc<dyn Fn(Vec<Event>) + Send + Sync>;
