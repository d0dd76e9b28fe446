//! `SrtpContext`: one direction, one master key, many SSRCs.

use ring::aead::{Algorithm, AES_128_GCM, AES_256_GCM};

use crate::cipher::{CmSession, GcmSession, CM_SALT_LEN, GCM_SALT_LEN, HMAC_KEY_LEN};
use crate::hmac_batch::DeferredMac;
use crate::header::{
    parse_rtcp_ssrc, parse_rtp_header, read_u32, RTCP_CLEAR_PREFIX_LEN, RTP_FIXED_HEADER_LEN,
};
use crate::kdf::{Label, MasterKeyPrf};
use crate::profile::{SrtpProfile, GCM_TAG_LEN, SRTCP_INDEX_LEN};
use crate::replay::{estimate_rtp_index, ReplayWindow, MAX_RTCP_INDEX};
use crate::SrtpError;

/// Default cap on the number of SSRCs one context tracks. A publisher sends a
/// handful (audio, video, RTX, simulcast layers); the cap only bounds what a
/// peer can make us allocate.
pub const DEFAULT_MAX_STREAMS: usize = 256;

/// E flag of the SRTCP trailer word: the packet's payload is encrypted (RFC 3711 §3.4).
const SRTCP_E_FLAG: u32 = 0x8000_0000;

/// The session crypto of each profile, SRTP half and SRTCP half.
// One per context, built once and never moved per packet, so the size spread
// between variants costs nothing worth a heap indirection.
#[allow(clippy::large_enum_variant)]
enum Transform {
    AesCm {
        rtp: CmSession,
        rtcp: CmSession,
    },
    /// AEAD_AES_128_GCM or AEAD_AES_256_GCM: the key length lives in the
    /// `ring` key.
    Gcm {
        rtp: GcmSession,
        rtcp: GcmSession,
    },
}

/// What one SSRC has seen. Created only when a packet of that SSRC was
/// protected, or authenticated on the receiving side.
#[derive(Clone, Copy, Debug, Default)]
struct StreamState {
    /// Highest SRTP index (ROC || s_l) and, when receiving, the replay window.
    rtp: Option<ReplayWindow>,
    /// SRTCP replay window when receiving.
    rtcp_received: Option<ReplayWindow>,
    /// SRTCP index of the next packet to send (RFC 3711 §3.4: starts at 0).
    rtcp_next_index: u32,
}

/// An SRTP/SRTCP crypto context for ONE direction and ONE master key.
///
/// Session keys are derived once in [`SrtpContext::new`] (key derivation rate
/// 0). Per-SSRC state (ROC, highest sequence number, replay windows, SRTCP
/// index) lives in a small table; an entry is created on the first protected
/// packet of an SSRC, or on the first packet of an SSRC that authenticates.
/// Use one context for sending and another for receiving: a context used for
/// both would share the per-SSRC index state between the directions.
pub struct SrtpContext {
    profile: SrtpProfile,
    transform: Transform,
    /// SSRCs, parallel to `streams`; kept dense so a lookup scans one small
    /// array of `u32`.
    ssrcs: Vec<u32>,
    streams: Vec<StreamState>,
    max_streams: usize,
}

impl std::fmt::Debug for SrtpContext {
    // Keys stay out of debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SrtpContext")
            .field("profile", &self.profile)
            .field("streams", &self.ssrcs.len())
            .finish_non_exhaustive()
    }
}

fn derive_vec(
    prf: &MasterKeyPrf,
    salt: &[u8],
    label: Label,
    len: usize,
) -> Result<Vec<u8>, SrtpError> {
    let mut out = vec![0u8; len];
    prf.derive(salt, label, &mut out)?;
    Ok(out)
}

fn cm_session(prf: &MasterKeyPrf, salt: &[u8], labels: [Label; 3]) -> Result<CmSession, SrtpError> {
    let [encryption, authentication, salting] = labels;
    CmSession::new(
        &derive_vec(prf, salt, encryption, 16)?,
        &derive_vec(prf, salt, salting, CM_SALT_LEN)?,
        &derive_vec(prf, salt, authentication, HMAC_KEY_LEN)?,
    )
}

fn gcm_session(
    prf: &MasterKeyPrf,
    salt: &[u8],
    algorithm: &'static Algorithm,
    labels: [Label; 2],
) -> Result<GcmSession, SrtpError> {
    let [encryption, salting] = labels;
    GcmSession::new(
        algorithm,
        &derive_vec(prf, salt, encryption, algorithm.key_len())?,
        &derive_vec(prf, salt, salting, GCM_SALT_LEN)?,
    )
}

/// Splits `bytes` at `at`, failing instead of panicking when `at` is out of range.
fn split_checked(bytes: &mut [u8], at: usize) -> Result<(&mut [u8], &mut [u8]), SrtpError> {
    if at > bytes.len() {
        return Err(SrtpError::TooShort);
    }
    Ok(bytes.split_at_mut(at))
}

const RTP_LABELS_CM: [Label; 3] = [
    Label::RtpEncryption,
    Label::RtpAuthentication,
    Label::RtpSalt,
];
const RTCP_LABELS_CM: [Label; 3] = [
    Label::RtcpEncryption,
    Label::RtcpAuthentication,
    Label::RtcpSalt,
];
const RTP_LABELS_GCM: [Label; 2] = [Label::RtpEncryption, Label::RtpSalt];
const RTCP_LABELS_GCM: [Label; 2] = [Label::RtcpEncryption, Label::RtcpSalt];

/// The `ring` AEAD of a GCM profile (RFC 7714 §14); `None` for AES-CM.
fn gcm_algorithm(profile: SrtpProfile) -> Option<&'static Algorithm> {
    match profile {
        SrtpProfile::AeadAes128Gcm => Some(&AES_128_GCM),
        SrtpProfile::AeadAes256Gcm => Some(&AES_256_GCM),
        SrtpProfile::Aes128CmHmacSha1_80 | SrtpProfile::Aes128CmHmacSha1_32 => None,
    }
}

impl SrtpContext {
    /// Derives the session keys (RFC 3711 §4.3, RFC 7714 §11) and builds the
    /// ciphers. `BadKeyLength` when the key or salt length does not match
    /// `profile`.
    pub fn new(
        profile: SrtpProfile,
        master_key: &[u8],
        master_salt: &[u8],
    ) -> Result<Self, SrtpError> {
        if master_key.len() != profile.master_key_len()
            || master_salt.len() != profile.master_salt_len()
        {
            return Err(SrtpError::BadKeyLength);
        }
        let prf = MasterKeyPrf::new(master_key)?;
        let transform = match gcm_algorithm(profile) {
            Some(algorithm) => Transform::Gcm {
                rtp: gcm_session(&prf, master_salt, algorithm, RTP_LABELS_GCM)?,
                rtcp: gcm_session(&prf, master_salt, algorithm, RTCP_LABELS_GCM)?,
            },
            None => Transform::AesCm {
                rtp: cm_session(&prf, master_salt, RTP_LABELS_CM)?,
                rtcp: cm_session(&prf, master_salt, RTCP_LABELS_CM)?,
            },
        };
        Ok(Self::with_transform(profile, transform))
    }

    fn with_transform(profile: SrtpProfile, transform: Transform) -> Self {
        SrtpContext {
            profile,
            transform,
            ssrcs: Vec::with_capacity(4),
            streams: Vec::with_capacity(4),
            max_streams: DEFAULT_MAX_STREAMS,
        }
    }

    /// Builds a context from already-derived session keys (used by the RFC 7714
    /// vectors, which are given as session keys). SRTP and SRTCP share them.
    #[cfg(test)]
    pub(crate) fn from_gcm_session_keys(
        profile: SrtpProfile,
        key: &[u8],
        salt: &[u8],
    ) -> Result<Self, SrtpError> {
        let algorithm = gcm_algorithm(profile).ok_or(SrtpError::BadKeyLength)?;
        let transform = Transform::Gcm {
            rtp: GcmSession::new(algorithm, key, salt)?,
            rtcp: GcmSession::new(algorithm, key, salt)?,
        };
        Ok(Self::with_transform(profile, transform))
    }

    pub fn profile(&self) -> SrtpProfile {
        self.profile
    }

    /// Number of SSRCs with state in this context.
    pub fn stream_count(&self) -> usize {
        self.ssrcs.len()
    }

    /// Forgets an SSRC's state (ROC, replay windows, SRTCP index).
    pub fn remove_ssrc(&mut self, ssrc: u32) {
        if let Some(slot) = self.slot(ssrc) {
            self.ssrcs.swap_remove(slot);
            self.streams.swap_remove(slot);
        }
    }

    /// Changes the cap on tracked SSRCs (default [`DEFAULT_MAX_STREAMS`]).
    /// Existing streams are kept even above the new cap.
    pub fn set_max_streams(&mut self, max_streams: usize) {
        self.max_streams = max_streams;
    }

    /// Highest SRTP packet index (ROC * 65536 + SEQ) of an SSRC, if known.
    pub fn rtp_highest_index(&self, ssrc: u32) -> Option<u64> {
        let slot = self.slot(ssrc)?;
        self.streams.get(slot)?.rtp.map(|window| window.highest())
    }

    fn slot(&self, ssrc: u32) -> Option<usize> {
        self.ssrcs.iter().position(|&known| known == ssrc)
    }

    fn stream(&self, slot: Option<usize>) -> StreamState {
        slot.and_then(|slot| self.streams.get(slot).copied())
            .unwrap_or_default()
    }

    /// Fails early when a packet of an unknown SSRC could not be given state.
    fn ensure_room(&self, slot: Option<usize>) -> Result<(), SrtpError> {
        if slot.is_none() && self.ssrcs.len() >= self.max_streams {
            return Err(SrtpError::TooManyStreams);
        }
        Ok(())
    }

    fn store(&mut self, ssrc: u32, slot: Option<usize>, state: StreamState) {
        match slot.and_then(|slot| self.streams.get_mut(slot)) {
            Some(existing) => *existing = state,
            None => {
                self.ssrcs.push(ssrc);
                self.streams.push(state);
            }
        }
    }

    /// Protects the RTP packet in `buf[..len]` in place (RFC 3711 §3.3,
    /// RFC 7714 §7.1): encrypts the payload (padding included), appends the
    /// tag and returns the new length, `len + profile.rtp_overhead()`.
    ///
    /// The ROC follows the caller's sequence numbers with the same estimation
    /// as the receiver (RFC 3711 §3.3.1): a forward wrap increments it.
    pub fn protect_rtp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        self.protect_rtp_with(buf, len, false).map(|(out_len, _)| out_len)
    }

    /// Like [`protect_rtp`](Self::protect_rtp), except that with the AES-CM profiles the tag is
    /// left to the caller: the packet is encrypted, the stream state advanced, and the returned
    /// [`DeferredMac`] computes the tag later (alone, or with other packets through
    /// [`hmac_sha1_batch`](crate::hmac_batch::hmac_sha1_batch)). The packet must not change
    /// until then. GCM packets come back whole, with `None`.
    pub fn protect_rtp_deferred(&mut self, buf: &mut [u8], len: usize) -> Result<(usize, Option<DeferredMac>), SrtpError> {
        self.protect_rtp_with(buf, len, true)
    }

    fn protect_rtp_with(&mut self, buf: &mut [u8], len: usize, defer_tag: bool) -> Result<(usize, Option<DeferredMac>), SrtpError> {
        let tag_len = self.profile.rtp_tag_len();
        let header = parse_rtp_header(buf.get(..len).ok_or(SrtpError::BufferTooSmall)?)?;
        let out_len = len.checked_add(tag_len).ok_or(SrtpError::BufferTooSmall)?;
        let out = buf.get_mut(..out_len).ok_or(SrtpError::BufferTooSmall)?;

        let slot = self.slot(header.ssrc);
        self.ensure_room(slot)?;
        let mut state = self.stream(slot);
        let index = match state.rtp {
            Some(window) => estimate_rtp_index(window.highest(), header.seq)?,
            None => u64::from(header.seq),
        };

        let (packet, tag_out) = split_checked(out, len)?;
        let mut deferred = None;
        match &self.transform {
            Transform::AesCm { rtp, .. } => {
                let payload = packet.get_mut(header.len..).ok_or(SrtpError::BadHeader)?;
                rtp.apply_keystream(header.ssrc, index, payload);
                // RFC 3711 §4.2: the MAC covers the whole packet followed by the
                // ROC; the packet goes in as one slice so the hash reads it in
                // place, block-aligned.
                let roc = ((index >> 16) as u32).to_be_bytes();
                let tag_out = tag_out
                    .get_mut(..tag_len)
                    .ok_or(SrtpError::BufferTooSmall)?;
                if defer_tag {
                    deferred = Some(rtp.deferred_tag(len, tag_len, roc));
                } else {
                    rtp.write_tag(&[packet, &roc], tag_out)?;
                }
            }
            Transform::Gcm { rtp, .. } => {
                let (header_bytes, payload) = split_checked(packet, header.len)?;
                seal_rtp(rtp, header.ssrc, index, header_bytes, payload, tag_out)?
            }
        }

        state.rtp = Some(window_after(state.rtp, index, ReplayWindow::advance_to));
        self.store(header.ssrc, slot, state);
        Ok((out_len, deferred))
    }

    /// Unprotects the SRTP packet in `buf[..len]` in place: estimates the
    /// index, rejects replays, authenticates, then decrypts (RFC 3711 §3.3
    /// steps 1-6, RFC 7714 §7.2). Returns the RTP packet length. The stream's
    /// ROC / s_l / replay window change only after authentication succeeds.
    /// A packet that fails must be dropped: with the GCM profiles its
    /// encrypted bytes have been zeroed (`ring` decrypts and authenticates in
    /// one pass, then wipes the plaintext of a forgery).
    pub fn unprotect_rtp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let tag_len = self.profile.rtp_tag_len();
        let packet = buf.get_mut(..len).ok_or(SrtpError::BufferTooSmall)?;
        if len < RTP_FIXED_HEADER_LEN + tag_len {
            return Err(SrtpError::TooShort);
        }
        let plain_len = len - tag_len;
        let (authenticated, tag) = split_checked(packet, plain_len)?;
        let header = parse_rtp_header(authenticated)?;

        let slot = self.slot(header.ssrc);
        self.ensure_room(slot)?;
        let mut state = self.stream(slot);
        let index = match state.rtp {
            Some(window) => {
                let index = estimate_rtp_index(window.highest(), header.seq)?;
                window.check(index)?;
                index
            }
            // RFC 3711 §3.3.1: a new stream starts with ROC 0 and s_l = SEQ.
            None => u64::from(header.seq),
        };

        match &self.transform {
            Transform::AesCm { rtp, .. } => {
                let roc = ((index >> 16) as u32).to_be_bytes();
                rtp.verify_tag(&[authenticated, &roc], tag)?;
                let payload = authenticated
                    .get_mut(header.len..)
                    .ok_or(SrtpError::BadHeader)?;
                rtp.apply_keystream(header.ssrc, index, payload);
            }
            Transform::Gcm { rtp, .. } => {
                open_rtp(rtp, header.ssrc, index, header.len, authenticated, tag)?
            }
        }

        state.rtp = Some(window_after(state.rtp, index, ReplayWindow::commit));
        self.store(header.ssrc, slot, state);
        Ok(plain_len)
    }

    /// Protects the (compound) RTCP packet in `buf[..len]` in place (RFC 3711
    /// §3.4, RFC 7714 §9): encrypts everything after the first 8 octets,
    /// appends E flag + SRTCP index and the tag, returns the new length,
    /// `len + profile.rtcp_overhead()`.
    pub fn protect_rtcp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let ssrc = parse_rtcp_ssrc(buf.get(..len).ok_or(SrtpError::BufferTooSmall)?)?;
        let out_len = len
            .checked_add(self.profile.rtcp_overhead())
            .ok_or(SrtpError::BufferTooSmall)?;
        let out = buf.get_mut(..out_len).ok_or(SrtpError::BufferTooSmall)?;

        let slot = self.slot(ssrc);
        self.ensure_room(slot)?;
        let mut state = self.stream(slot);
        let index = state.rtcp_next_index;
        if index > MAX_RTCP_INDEX {
            // The 31-bit index is spent; wrapping would reuse keystream.
            return Err(SrtpError::Replayed);
        }
        let index_word = (SRTCP_E_FLAG | index).to_be_bytes();

        match &self.transform {
            Transform::AesCm { rtcp, .. } => {
                // Layout: packet || E+index || tag; the tag covers packet || E+index.
                let (authenticated, tag_out) = split_checked(out, len + SRTCP_INDEX_LEN)?;
                let (packet, index_out) = split_checked(authenticated, len)?;
                let payload = packet
                    .get_mut(RTCP_CLEAR_PREFIX_LEN..)
                    .ok_or(SrtpError::TooShort)?;
                rtcp.apply_keystream(ssrc, u64::from(index), payload);
                index_out.copy_from_slice(&index_word);
                let tag_out = tag_out
                    .get_mut(..self.profile.rtcp_tag_len())
                    .ok_or(SrtpError::BufferTooSmall)?;
                rtcp.write_tag(&[authenticated], tag_out)?;
            }
            Transform::Gcm { rtcp, .. } => {
                let (packet, trailer) = split_checked(out, len)?;
                let (clear_prefix, payload) = split_checked(packet, RTCP_CLEAR_PREFIX_LEN)?;
                seal_rtcp(
                    rtcp,
                    ssrc,
                    index,
                    index_word,
                    clear_prefix,
                    payload,
                    trailer,
                )?
            }
        }

        state.rtcp_next_index = index + 1;
        self.store(ssrc, slot, state);
        Ok(out_len)
    }

    /// Unprotects the SRTCP packet in `buf[..len]` in place: rejects replays
    /// of the SRTCP index, authenticates, decrypts when the E flag is set, and
    /// returns the RTCP packet length. As with [`SrtpContext::unprotect_rtp`],
    /// a GCM packet that fails authentication comes back with its encrypted
    /// bytes zeroed.
    pub fn unprotect_rtcp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let tag_len = self.profile.rtcp_tag_len();
        let packet = buf.get_mut(..len).ok_or(SrtpError::BufferTooSmall)?;
        if len < RTCP_CLEAR_PREFIX_LEN + SRTCP_INDEX_LEN + tag_len {
            return Err(SrtpError::TooShort);
        }
        let plain_len = len - SRTCP_INDEX_LEN - tag_len;
        let ssrc = parse_rtcp_ssrc(packet)?;
        let is_gcm = !matches!(self.transform, Transform::AesCm { .. });
        // AES-CM: packet || E+index || tag. GCM (RFC 7714 §9, Figure 3): packet || tag || E+index.
        let index_at = if is_gcm {
            len - SRTCP_INDEX_LEN
        } else {
            plain_len
        };
        let index_word = read_u32(packet, index_at)?;
        let encrypted = index_word & SRTCP_E_FLAG != 0;
        let index = index_word & !SRTCP_E_FLAG;

        let slot = self.slot(ssrc);
        self.ensure_room(slot)?;
        let mut state = self.stream(slot);
        if let Some(window) = state.rtcp_received {
            window.check(u64::from(index))?;
        }

        match &self.transform {
            Transform::AesCm { rtcp, .. } => {
                let (authenticated, tag) = split_checked(packet, plain_len + SRTCP_INDEX_LEN)?;
                rtcp.verify_tag(&[authenticated], tag)?;
                if encrypted {
                    let payload = authenticated
                        .get_mut(RTCP_CLEAR_PREFIX_LEN..plain_len)
                        .ok_or(SrtpError::TooShort)?;
                    rtcp.apply_keystream(ssrc, u64::from(index), payload);
                }
            }
            Transform::Gcm { rtcp, .. } => {
                open_rtcp(rtcp, ssrc, index_word, encrypted, plain_len, packet)?
            }
        }

        state.rtcp_received = Some(window_after(
            state.rtcp_received,
            u64::from(index),
            ReplayWindow::commit,
        ));
        self.store(ssrc, slot, state);
        Ok(plain_len)
    }
}

/// A stream's window once `index` is accepted: `accept` (commit, or advance_to on the sending
/// side) moves an existing window; a stream's first packet starts one (RFC 3711 §3.3.1).
fn window_after(
    window: Option<ReplayWindow>,
    index: u64,
    accept: fn(&mut ReplayWindow, u64),
) -> ReplayWindow {
    match window {
        Some(mut window) => {
            accept(&mut window, index);
            window
        }
        None => ReplayWindow::starting_at(index),
    }
}

/// RFC 7714 §8.2: the AAD is the RTP header including CSRCs and extension;
/// the tag follows the ciphertext.
fn seal_rtp(
    session: &GcmSession,
    ssrc: u32,
    index: u64,
    header: &[u8],
    payload: &mut [u8],
    tag_out: &mut [u8],
) -> Result<(), SrtpError> {
    let tag = session.seal(ssrc, index, header, payload)?;
    tag_out
        .get_mut(..GCM_TAG_LEN)
        .ok_or(SrtpError::BufferTooSmall)?
        .copy_from_slice(&tag);
    Ok(())
}

fn open_rtp(
    session: &GcmSession,
    ssrc: u32,
    index: u64,
    header_len: usize,
    authenticated: &mut [u8],
    tag: &[u8],
) -> Result<(), SrtpError> {
    let (header, ciphertext) = split_checked(authenticated, header_len)?;
    session.open(ssrc, index, header, ciphertext, tag)
}

/// RFC 7714 §9.1: AAD = first 8 octets || E+index; output
/// packet || tag || E+index.
fn seal_rtcp(
    session: &GcmSession,
    ssrc: u32,
    index: u32,
    index_word: [u8; 4],
    clear_prefix: &[u8],
    payload: &mut [u8],
    trailer: &mut [u8],
) -> Result<(), SrtpError> {
    let aad = rtcp_aad(clear_prefix, index_word)?;
    let tag = session.seal(ssrc, u64::from(index), &aad, payload)?;
    let (tag_out, index_out) = split_checked(trailer, GCM_TAG_LEN)?;
    tag_out.copy_from_slice(&tag);
    index_out
        .get_mut(..SRTCP_INDEX_LEN)
        .ok_or(SrtpError::BufferTooSmall)?
        .copy_from_slice(&index_word);
    Ok(())
}

fn rtcp_aad(clear_prefix: &[u8], index_word: [u8; 4]) -> Result<[u8; 12], SrtpError> {
    let mut aad = [0u8; RTCP_CLEAR_PREFIX_LEN + SRTCP_INDEX_LEN];
    aad[..RTCP_CLEAR_PREFIX_LEN].copy_from_slice(
        clear_prefix
            .get(..RTCP_CLEAR_PREFIX_LEN)
            .ok_or(SrtpError::TooShort)?,
    );
    aad[RTCP_CLEAR_PREFIX_LEN..].copy_from_slice(&index_word);
    Ok(aad)
}

/// `packet` is the whole SRTCP packet: data (`plain_len` bytes) || tag || E+index.
fn open_rtcp(
    session: &GcmSession,
    ssrc: u32,
    index_word: u32,
    encrypted: bool,
    plain_len: usize,
    packet: &mut [u8],
) -> Result<(), SrtpError> {
    let index = u64::from(index_word & !SRTCP_E_FLAG);
    let index_bytes = index_word.to_be_bytes();
    let (data, trailer) = split_checked(packet, plain_len)?;
    let mut tag = [0u8; GCM_TAG_LEN];
    tag.copy_from_slice(trailer.get(..GCM_TAG_LEN).ok_or(SrtpError::TooShort)?);
    if encrypted {
        let (clear_prefix, ciphertext) = split_checked(data, RTCP_CLEAR_PREFIX_LEN)?;
        let aad = rtcp_aad(clear_prefix, index_bytes)?;
        session.open(ssrc, index, &aad, ciphertext, &tag)
    } else {
        // RFC 7714 §9.2 (E = 0): the whole RTCP packet followed by E+index is
        // AAD and the plaintext is empty. Move the index word next to the data
        // (over the tag, already copied out) so the AAD is one contiguous slice.
        trailer
            .get_mut(..SRTCP_INDEX_LEN)
            .ok_or(SrtpError::TooShort)?
            .copy_from_slice(&index_bytes);
        let aad = packet
            .get(..plain_len + SRTCP_INDEX_LEN)
            .ok_or(SrtpError::TooShort)?;
        session.open(ssrc, index, aad, &mut [], &tag)
    }
}
