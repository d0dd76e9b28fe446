//! An endpoint: one UDP socket owned by a media thread. Here are its configuration and its
//! protocol state (ICE-lite agent, SRTP contexts, where its media goes); the socket itself
//! stays with the worker, so the router that uses this state does no I/O.

use std::collections::HashSet;
use std::net::SocketAddr;

use ferry_rtp::TwccRecorder;
use ferry_srtp::SrtpContext;
use ferry_stun::IceLiteAgent;

use crate::bandwidth::SendBwe;
use crate::idmap::IdMap;
use crate::router::Transport;
use crate::stats::EndpointStats;

/// Short-term ICE credentials of the local side (RFC 8445 §5.3), plus the remote ufrag when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IceCredentials {
    pub ufrag: String,
    pub pwd: String,
    pub remote_ufrag: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointConfig {
    pub bind: SocketAddr,
    /// ICE-lite (WebRTC peers). None for plain RTP legs (SIP, remote publishers, forwarders).
    pub ice: Option<IceCredentials>,
    /// Fixed destination of media (plain RTP). With ICE the nominated address is used instead.
    pub remote: Option<SocketAddr>,
    /// Plain RTP: learn the destination from the first valid RTP/RTCP packet (symmetric RTP).
    pub latch: bool,
    pub consent_timeout_ms: Option<u64>,
    /// RFC 8852 RtpStreamId extension id, to report the rid of unknown SSRCs (simulcast).
    pub rid_extension_id: Option<u8>,
    /// Transport-wide sequence number extension id (draft-holmer-rmcat-transport-wide-cc-extensions-01):
    /// when set, ferry sends transport feedback for what it receives, so senders can estimate bandwidth.
    pub twcc_extension_id: Option<u8>,
    /// Media thread that must own the endpoint; `None` lets the engine place it by load.
    pub worker: Option<usize>,
    /// Endpoints of one group (a room) are kept on few media threads while those have
    /// headroom, so most of a room's packets never cross threads.
    pub group: Option<u64>,
    /// Single-port mode: the endpoint lives on its media thread's shared socket instead of a
    /// socket of its own (`bind` is then unused); it must have ICE, whose ufrag routes it.
    pub shared: bool,
    /// ICE-TCP (RFC 6544): also listen on TCP on the UDP socket's port, for peers whose UDP
    /// is blocked (ICE endpoints with a socket of their own).
    pub ice_tcp: bool,
}

impl EndpointConfig {
    pub fn new(bind: SocketAddr) -> Self {
        Self { bind, ice: None, remote: None, latch: false, consent_timeout_ms: None, rid_extension_id: None, twcc_extension_id: None, worker: None, group: None, shared: false, ice_tcp: false }
    }
}

/// Keys for both directions of an endpoint (RFC 3711 §3.2.1 master key + salt).
pub struct SrtpKeys {
    pub profile: ferry_srtp::SrtpProfile,
    pub local_key: Vec<u8>,
    pub local_salt: Vec<u8>,
    pub remote_key: Vec<u8>,
    pub remote_salt: Vec<u8>,
}

/// The protocol state of one endpoint (its socket stays with the media thread): ICE-lite
/// agent, SRTP contexts, where its media goes, and its sources and outputs by SSRC.
pub(crate) struct Endpoint {
    pub id: u32,
    pub transport: Transport,
    pub local: SocketAddr,
    pub ice: Option<IceLiteAgent>,
    pub remote: Option<SocketAddr>,
    pub latch: bool,
    pub rid_extension_id: Option<u8>,
    pub twcc: Option<TwccState>,
    /// Send side: transport-wide sequence numbers on what ferry sends, and the estimate the
    /// receiver's feedback gives (`Router::set_send_bwe`).
    pub bwe: Option<SendBwe>,
    pub srtp_in: Option<SrtpContext>,
    pub srtp_out: Option<SrtpContext>,
    pub sources_by_ssrc: IdMap<u32>,
    /// RFC 4588 retransmission SSRCs of this endpoint's sources (RTX SSRC → source).
    pub rtx_sources_by_ssrc: IdMap<u32>,
    pub outputs_by_ssrc: IdMap<u32>,
    pub reported_unknown: HashSet<u32>,
    pub last_remb_us: u64,
    /// REMB ferry sends this endpoint's publisher (bits/s), and when it last did.
    pub remb_cap_bps: Option<u64>,
    pub remb_sent_us: u64,
    pub last_loss_report_us: u64,
    pub stats: EndpointStats,
}

/// Transport-wide congestion control feedback of one endpoint (receiver side).
pub(crate) struct TwccState {
    pub extension_id: u8,
    pub recorder: TwccRecorder,
    pub last_feedback_us: u64,
    /// SSRC of the last packet recorded, put in the feedback's media SSRC field.
    pub media_ssrc: u32,
}

impl Endpoint {
    pub fn new(id: u32, transport: Transport, local: SocketAddr, config: &EndpointConfig) -> Self {
        let ice = config.ice.as_ref().map(|c| {
            let mut agent = IceLiteAgent::new(&c.ufrag, &c.pwd);
            agent.set_remote_ufrag(c.remote_ufrag.as_deref());
            if let Some(ms) = config.consent_timeout_ms {
                agent.set_consent_timeout_ms(ms);
            }
            agent
        });
        Self {
            id,
            transport,
            local,
            ice,
            remote: config.remote,
            latch: config.latch,
            rid_extension_id: config.rid_extension_id,
            twcc: config.twcc_extension_id.map(|extension_id| TwccState { extension_id, recorder: TwccRecorder::new(), last_feedback_us: 0, media_ssrc: 0 }),
            bwe: None,
            srtp_in: None,
            srtp_out: None,
            sources_by_ssrc: IdMap::default(),
            rtx_sources_by_ssrc: IdMap::default(),
            outputs_by_ssrc: IdMap::default(),
            reported_unknown: HashSet::new(),
            last_remb_us: 0,
            remb_cap_bps: None,
            remb_sent_us: 0,
            last_loss_report_us: 0,
            stats: EndpointStats::default(),
        }
    }

    /// Media and DTLS are accepted only from addresses that passed an ICE check (RFC 8445 §7.3),
    /// or from anywhere on a plain RTP endpoint.
    pub fn accepts_from(&self, from: SocketAddr) -> bool {
        match &self.ice {
            Some(agent) => agent.is_validated(from),
            None => true,
        }
    }
}

