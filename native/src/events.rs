//! The engine's events as JavaScript receives them: one object per event, delivered in
//! batches to the callback `NativeEngine.onEvents` set.

use std::net::SocketAddr;

use ferry_engine::Event;
use napi::bindgen_prelude::*;
use napi_derive::napi;

#[napi(object)]
pub struct EngineEvent {
    /// dtls | ice-selected | consent-lost | unknown-ssrc | remote-latched | keyframe-requested | remb | worker-panic
    pub r#type: String,
    pub endpoint: Option<u32>,
    pub source: Option<u32>,
    pub address: Option<String>,
    pub port: Option<u32>,
    pub data: Option<Buffer>,
    pub ssrc: Option<u32>,
    pub payload_type: Option<u32>,
    pub rid: Option<String>,
    pub bitrate: Option<f64>,
    pub worker: Option<u32>,
    pub message: Option<String>,
    /// receiver-loss: RFC 3550 fraction lost (0..255) and cumulative packets lost.
    pub fraction_lost: Option<u32>,
    pub lost: Option<f64>,
    /// audio-level: average RFC 6464 level of the window, −dBov (0 loudest … 127 silence).
    pub level: Option<u32>,
    /// output-switched: the output that moved to `source`.
    pub output: Option<u32>,
    /// source-loss: packets expected over the interval (`lost` of them never arrived).
    pub expected: Option<u32>,
}

impl EngineEvent {
    fn empty(kind: &str) -> Self {
        Self {
            r#type: kind.to_string(),
            endpoint: None,
            source: None,
            address: None,
            port: None,
            data: None,
            ssrc: None,
            payload_type: None,
            rid: None,
            bitrate: None,
            worker: None,
            message: None,
            fraction_lost: None,
            lost: None,
            level: None,
            output: None,
            expected: None,
        }
    }

    fn with_addr(mut self, addr: SocketAddr) -> Self {
        self.address = Some(addr.ip().to_string());
        self.port = Some(addr.port() as u32);
        self
    }

    pub(crate) fn from_event(ev: Event) -> Self {
        match ev {
            Event::Dtls { endpoint, from, data } => {
                let mut e = Self::empty("dtls").with_addr(from);
                e.endpoint = Some(endpoint);
                e.data = Some(data.into());
                e
            }
            Event::IceSelected { endpoint, address } => {
                let mut e = Self::empty("ice-selected").with_addr(address);
                e.endpoint = Some(endpoint);
                e
            }
            Event::ConsentLost { endpoint, address } => {
                let mut e = Self::empty("consent-lost").with_addr(address);
                e.endpoint = Some(endpoint);
                e
            }
            Event::UnknownSsrc { endpoint, ssrc, payload_type, rid } => {
                let mut e = Self::empty("unknown-ssrc");
                e.endpoint = Some(endpoint);
                e.ssrc = Some(ssrc);
                e.payload_type = Some(payload_type as u32);
                e.rid = rid;
                e
            }
            Event::RemoteLatched { endpoint, address } => {
                let mut e = Self::empty("remote-latched").with_addr(address);
                e.endpoint = Some(endpoint);
                e
            }
            Event::KeyframeRequested { source } => {
                let mut e = Self::empty("keyframe-requested");
                e.source = Some(source);
                e
            }
            Event::Remb { endpoint, bitrate_bps } => {
                let mut e = Self::empty("remb");
                e.endpoint = Some(endpoint);
                e.bitrate = Some(bitrate_bps as f64);
                e
            }
            Event::ReceiverLoss { endpoint, ssrc, fraction_lost, cumulative_lost } => {
                let mut e = Self::empty("receiver-loss");
                e.endpoint = Some(endpoint);
                e.ssrc = Some(ssrc);
                e.fraction_lost = Some(fraction_lost as u32);
                e.lost = Some(cumulative_lost as f64);
                e
            }
            Event::AudioLevel { endpoint, source, level } => {
                let mut e = Self::empty("audio-level");
                e.endpoint = Some(endpoint);
                e.source = Some(source);
                e.level = Some(level as u32);
                e
            }
            Event::OutputTemporal { endpoint, output, layer } => {
                let mut e = Self::empty("output-temporal");
                e.endpoint = Some(endpoint);
                e.output = Some(output);
                e.level = Some(u32::from(layer));
                e
            }
            Event::OutputSwitched { endpoint, output, source } => {
                let mut e = Self::empty("output-switched");
                e.endpoint = Some(endpoint);
                e.output = Some(output);
                e.source = Some(source);
                e
            }
            Event::SourceLoss { endpoint, source, expected, lost } => {
                let mut e = Self::empty("source-loss");
                e.endpoint = Some(endpoint);
                e.source = Some(source);
                e.expected = Some(expected);
                e.lost = Some(lost as f64);
                e
            }
            Event::WorkerPanic { worker, message } => {
                let mut e = Self::empty("worker-panic");
                e.worker = Some(worker as u32);
                e.message = Some(message);
                e
            }
        }
    }
}

/// Whether JavaScript needs an event at all. A receiver report that saw no loss is no news:
/// its one reader (slowlink in src/webrtc/PeerConnection.ts) acts on loss alone, and every
/// subscriber's receiver sends one about every second, so forwarding them would wake the
/// Node thread and allocate there for nothing, steadily, while media flows.
pub(crate) fn worth_telling(ev: &Event) -> bool {
    !matches!(ev, Event::ReceiverLoss { fraction_lost: 0, .. })
}
