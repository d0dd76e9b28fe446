//! ICE-lite responder (RFC 8445 §2.5, §7.3) with consent freshness (RFC 7675).
//!
//! A lite agent never sends checks; it answers the full peer's Binding
//! requests, learns which source addresses are authentic, and follows the
//! peer's nominations. It is always in the controlled role (RFC 8445 §6.1.1).

use std::collections::VecDeque;
use std::net::SocketAddr;

use hmac::Mac;

use crate::message::{
    attr, check_fingerprint, check_message_integrity_with, parse, Class, HmacSha1, StunMessage,
    METHOD_BINDING,
};
use crate::writer::MessageWriter;
use crate::StunError;

/// RFC 7675 §5.1: consent expires 30 s after the last authenticated check.
pub const DEFAULT_CONSENT_TIMEOUT_MS: u64 = 30_000;
/// How many authenticated source addresses are remembered at once. A browser
/// checks a handful of pairs per component; when more arrive, the one heard
/// from least recently (never the selected one) is forgotten.
pub const MAX_VALIDATED_ADDRESSES: usize = 8;
/// Pending events kept for `take_event`; beyond this the oldest is dropped so a
/// caller that never drains cannot make the agent grow.
pub const MAX_PENDING_EVENTS: usize = 16;

/// What the caller should do after [`IceLiteAgent::handle`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StunOutcome {
    /// `out` holds a Binding success response to send back to `from`.
    Reply {
        nominated: bool,
        selected_changed: bool,
    },
    /// `out` holds an error response (400 Bad Request, 401 Unauthorized,
    /// 420 Unknown Attribute, 487 Role Conflict) to send to `from`.
    ErrorReply { code: u16 },
    /// Nothing to send; counted by the caller under this reason.
    Drop(DropReason),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Not a well-formed STUN message (RFC 8489 §5, §14).
    Malformed,
    /// A success or error response: a lite agent sends no requests, so none is
    /// expected (RFC 8445 §2.5).
    NotRequest,
    /// A request for a method other than Binding.
    UnknownMethod,
    /// FINGERPRINT present and wrong (RFC 8489 §14.7, RFC 8445 §7.3).
    BadFingerprint,
    /// An indication, e.g. a Binding indication keepalive (RFC 8445 §11): no answer.
    Indication,
    /// The response could not be encoded (cannot happen for messages that
    /// parsed; kept so that the agent never panics).
    EncodeFailed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IceEvent {
    /// The peer nominated this address (RFC 8445 §7.3.1.5); media goes there.
    Selected(SocketAddr),
    /// No authenticated check from the selected address within the consent
    /// timeout (RFC 7675 §5.1): stop sending to it.
    ConsentLost(SocketAddr),
}

/// An address that passed an authenticated check, and when it last did.
#[derive(Debug, Clone, Copy)]
struct Validated {
    address: SocketAddr,
    last_check_ms: u64,
}

#[derive(Debug, Clone, Copy)]
struct Selection {
    address: SocketAddr,
    /// RFC 7675 §5.1: refreshed by every authenticated check from `address`.
    last_consent_ms: u64,
}

/// The ICE attributes of an authenticated Binding request (RFC 8445 §7.1.1).
#[derive(Debug, Clone, Copy, Default)]
struct CheckAttributes {
    use_candidate: bool,
    ice_controlled: bool,
}

/// Why a request is answered with an error instead of a success.
enum Rejection {
    /// 400: USERNAME or MESSAGE-INTEGRITY missing (RFC 8489 §9.1.3).
    BadRequest,
    /// 400 to an authenticated request: an ICE attribute of the wrong size.
    MalformedIceAttribute,
    /// 401: wrong USERNAME or MESSAGE-INTEGRITY (RFC 8489 §9.1.3).
    Unauthorized,
    /// 420: comprehension-required attributes we do not know (RFC 8489 §6.3.1.1).
    UnknownAttributes,
    /// 487: the peer also claims the controlled role (RFC 8445 §7.3.1.1).
    RoleConflict,
}

impl Rejection {
    /// RFC 8489 §14.8 codes and reason phrases.
    const fn code_and_reason(&self) -> (u16, &'static str) {
        match self {
            Rejection::BadRequest | Rejection::MalformedIceAttribute => (400, "Bad Request"),
            Rejection::Unauthorized => (401, "Unauthorized"),
            Rejection::UnknownAttributes => (420, "Unknown Attribute"),
            Rejection::RoleConflict => (487, "Role Conflict"),
        }
    }

    /// RFC 8489 §9.1.3: errors caused by failed authentication carry no
    /// MESSAGE-INTEGRITY (the sender may not know the key); errors to an
    /// authenticated request are protected with it.
    const fn is_authenticated(&self) -> bool {
        matches!(
            self,
            Rejection::MalformedIceAttribute
                | Rejection::UnknownAttributes
                | Rejection::RoleConflict
        )
    }
}

/// ICE-lite agent of one endpoint (RFC 8445 §2.5 lite, always controlled;
/// §7.3 responding to checks).
pub struct IceLiteAgent {
    local_ufrag: String,
    remote_ufrag: Option<String>,
    /// HMAC-SHA1 keyed with the local password (RFC 8489 §9.1.1 short-term
    /// key), cloned per message so the key schedule runs once.
    integrity_key: HmacSha1,
    consent_timeout_ms: u64,
    /// Latest time seen through `handle` or `poll`, for `is_validated`.
    now_ms: u64,
    validated: [Option<Validated>; MAX_VALIDATED_ADDRESSES],
    selected: Option<Selection>,
    events: VecDeque<IceEvent>,
}

impl std::fmt::Debug for IceLiteAgent {
    // Hand-written so that the password-keyed HMAC state never reaches a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IceLiteAgent")
            .field("local_ufrag", &self.local_ufrag)
            .field("remote_ufrag", &self.remote_ufrag)
            .field("consent_timeout_ms", &self.consent_timeout_ms)
            .field("selected", &self.selected.map(|s| s.address))
            .finish_non_exhaustive()
    }
}

impl IceLiteAgent {
    pub fn new(local_ufrag: &str, local_pwd: &str) -> Self {
        // HMAC accepts keys of any length, so this cannot fail; the fallback
        // keeps the constructor total anyway.
        let integrity_key = HmacSha1::new_from_slice(local_pwd.as_bytes())
            .unwrap_or_else(|_| <HmacSha1 as hmac::digest::KeyInit>::new(&Default::default()));
        IceLiteAgent {
            local_ufrag: local_ufrag.to_owned(),
            remote_ufrag: None,
            integrity_key,
            consent_timeout_ms: DEFAULT_CONSENT_TIMEOUT_MS,
            now_ms: 0,
            validated: [None; MAX_VALIDATED_ADDRESSES],
            selected: None,
            events: VecDeque::with_capacity(MAX_PENDING_EVENTS),
        }
    }

    /// When known (from SDP), USERNAME must be exactly "local:remote"
    /// (RFC 8445 §7.2.2); otherwise only the local part is checked.
    pub fn set_remote_ufrag(&mut self, ufrag: Option<&str>) {
        self.remote_ufrag = ufrag.map(str::to_owned);
    }

    /// ICE restart (RFC 8445 §9, RFC 8839 §4.4.1.1.1): new local credentials, and the peer's
    /// new ufrag. Validated addresses and the selected pair stay, so media goes on over the old
    /// pair while the peer checks again with the new credentials.
    pub fn restart(&mut self, local_ufrag: &str, local_pwd: &str, remote_ufrag: Option<&str>) {
        let fresh = IceLiteAgent::new(local_ufrag, local_pwd);
        self.local_ufrag = fresh.local_ufrag;
        self.integrity_key = fresh.integrity_key;
        self.remote_ufrag = remote_ufrag.map(str::to_owned);
    }

    /// Default 30 000 ms (RFC 7675 §5.1).
    pub fn set_consent_timeout_ms(&mut self, ms: u64) {
        self.consent_timeout_ms = ms;
    }

    pub fn selected(&self) -> Option<SocketAddr> {
        self.selected.map(|s| s.address)
    }

    /// Whether `from` has passed an authenticated check whose consent has not
    /// expired (only such addresses may receive media/DTLS, RFC 7675 §4).
    pub fn is_validated(&self, from: SocketAddr) -> bool {
        self.validated
            .iter()
            .flatten()
            .any(|v| v.address == from && !self.expired(v.last_check_ms, self.now_ms))
    }

    /// Drains pending events (Selected when nomination picks a new address).
    pub fn take_event(&mut self) -> Option<IceEvent> {
        self.events.pop_front()
    }

    /// Time-driven: returns ConsentLost once when no authenticated check from
    /// the selected address arrived for the consent timeout. The selection and
    /// that address's validation are then dropped (RFC 7675 §5.1: stop
    /// sending); a later authenticated check re-validates it and a new
    /// nomination re-selects it. Expired non-selected addresses are forgotten
    /// silently.
    pub fn poll(&mut self, now_ms: u64) -> Option<IceEvent> {
        self.advance_clock(now_ms);
        let now = self.now_ms;
        for slot in self.validated.iter_mut() {
            if let Some(v) = slot {
                let is_selected = self.selected.is_some_and(|s| s.address == v.address);
                if !is_selected && now.saturating_sub(v.last_check_ms) >= self.consent_timeout_ms {
                    *slot = None;
                }
            }
        }
        let selection = self.selected?;
        if !self.expired(selection.last_consent_ms, now) {
            return None;
        }
        self.selected = None;
        self.forget(selection.address);
        Some(IceEvent::ConsentLost(selection.address))
    }

    /// Handles one datagram that is_stun() accepted. Writes any response into
    /// `out` (cleared first); the response goes to `from`.
    pub fn handle(
        &mut self,
        buf: &[u8],
        from: SocketAddr,
        now_ms: u64,
        out: &mut Vec<u8>,
    ) -> StunOutcome {
        out.clear();
        self.advance_clock(now_ms);
        let msg = match parse(buf) {
            Ok(msg) => msg,
            Err(_) => return StunOutcome::Drop(DropReason::Malformed),
        };
        // RFC 8445 §7.3 / RFC 8489 §14.7: a wrong FINGERPRINT means this is not
        // (intact) STUN; it is dropped without an answer.
        if msg.has_fingerprint() && check_fingerprint(&msg).is_err() {
            return StunOutcome::Drop(DropReason::BadFingerprint);
        }
        match msg.class {
            Class::Request => {}
            Class::Indication => return StunOutcome::Drop(DropReason::Indication),
            Class::SuccessResponse | Class::ErrorResponse => {
                return StunOutcome::Drop(DropReason::NotRequest)
            }
        }
        if msg.method != METHOD_BINDING {
            return StunOutcome::Drop(DropReason::UnknownMethod);
        }

        let check = match self.authenticate_and_classify(&msg) {
            Ok(check) => check,
            Err(rejection) => return self.write_error(&msg, &rejection, out),
        };
        self.accept_check(&msg, check, from, out)
    }

    /// RFC 8489 §9.1.3 (short-term credential checks), §6.3.1.1 (unknown
    /// attributes) and RFC 8445 §7.3.1.1 (role conflicts), in that order, so
    /// that only authenticated senders learn anything beyond 400/401.
    fn authenticate_and_classify(
        &self,
        msg: &StunMessage<'_>,
    ) -> Result<CheckAttributes, Rejection> {
        // §9.1.3: both USERNAME and MESSAGE-INTEGRITY are required, else 400.
        let username = msg.attribute(attr::USERNAME).ok_or(Rejection::BadRequest)?;
        if !msg.has_message_integrity() {
            return Err(Rejection::BadRequest);
        }
        // §9.1.3: an unknown username or a wrong HMAC is 401.
        if !self.username_matches(username) {
            return Err(Rejection::Unauthorized);
        }
        check_message_integrity_with(msg, self.integrity_key.clone())
            .map_err(|_| Rejection::Unauthorized)?;

        // §6.3.1.1: comprehension-required attributes we do not understand get 420.
        // Only attributes covered by MESSAGE-INTEGRITY count (§14.5).
        if msg
            .covered_attributes()
            .any(|a| is_unknown_required(a.attr_type))
        {
            return Err(Rejection::UnknownAttributes);
        }

        // RFC 8445 §7.1.1 / §16.1: fixed sizes of the ICE attributes; a
        // malformed one makes the request malformed (RFC 8489 §6.3.1: 400).
        let mut check = CheckAttributes::default();
        for attribute in msg.covered_attributes() {
            let expected_len = match attribute.attr_type {
                attr::PRIORITY => 4,
                attr::ICE_CONTROLLED | attr::ICE_CONTROLLING => 8,
                attr::USE_CANDIDATE => 0,
                _ => continue,
            };
            if attribute.value.len() != expected_len {
                return Err(Rejection::MalformedIceAttribute);
            }
            match attribute.attr_type {
                attr::USE_CANDIDATE => check.use_candidate = true,
                attr::ICE_CONTROLLED => check.ice_controlled = true,
                _ => {}
            }
        }

        // RFC 8445 §7.3.1.1: a controlled agent receiving ICE-CONTROLLED either
        // switches to controlling (its tie-breaker >= the peer's) or answers 487
        // and keeps its role. A lite agent cannot take the controlling role
        // (§6.1.1: with a full peer the lite agent MUST be controlled; it sends
        // no checks, so it could never nominate), so it always takes the second
        // branch, as if its tie-breaker were the smaller one. The full peer then
        // switches to controlling on the 487 (§7.2.5.1) and checks again.
        if check.ice_controlled {
            return Err(Rejection::RoleConflict);
        }
        Ok(check)
    }

    /// RFC 8445 §7.2.2: the peer's USERNAME is "<our ufrag>:<its ufrag>".
    fn username_matches(&self, username: &[u8]) -> bool {
        let Some(rest) = username.strip_prefix(self.local_ufrag.as_bytes()) else {
            return false;
        };
        let Some(remote_part) = rest.strip_prefix(b":") else {
            return false;
        };
        match &self.remote_ufrag {
            Some(remote) => remote_part == remote.as_bytes(),
            None => true,
        }
    }

    /// An authenticated, conflict-free check: validate `from`, refresh consent,
    /// follow a nomination, and answer with XOR-MAPPED-ADDRESS (RFC 8445 §7.3,
    /// RFC 8489 §6.3.1.1 / §14.2).
    fn accept_check(
        &mut self,
        msg: &StunMessage<'_>,
        check: CheckAttributes,
        from: SocketAddr,
        out: &mut Vec<u8>,
    ) -> StunOutcome {
        if self.write_success(msg, from, out).is_err() {
            out.clear();
            return StunOutcome::Drop(DropReason::EncodeFailed);
        }
        let now = self.now_ms;
        self.remember(from, now);
        // RFC 7675 §5.1: each authenticated check on the selected pair refreshes consent.
        if let Some(selection) = self.selected.as_mut().filter(|s| s.address == from) {
            selection.last_consent_ms = now;
        }
        // RFC 8445 §7.3.1.5 and §8.2 (lite): USE-CANDIDATE nominates the pair;
        // a lite agent follows the most recent nomination.
        let mut selected_changed = false;
        if check.use_candidate && self.selected() != Some(from) {
            self.selected = Some(Selection {
                address: from,
                last_consent_ms: now,
            });
            self.push_event(IceEvent::Selected(from));
            selected_changed = true;
        }
        StunOutcome::Reply {
            nominated: check.use_candidate,
            selected_changed,
        }
    }

    fn write_success(
        &self,
        msg: &StunMessage<'_>,
        from: SocketAddr,
        out: &mut Vec<u8>,
    ) -> Result<(), StunError> {
        let mut writer = binding_response(msg, Class::SuccessResponse, out);
        writer.xor_address(attr::XOR_MAPPED_ADDRESS, from, &msg.transaction_id)?;
        writer.message_integrity_with(self.integrity_key.clone())?;
        writer.fingerprint()
    }

    fn write_error(
        &self,
        msg: &StunMessage<'_>,
        rejection: &Rejection,
        out: &mut Vec<u8>,
    ) -> StunOutcome {
        let (code, reason) = rejection.code_and_reason();
        match self.encode_error(msg, rejection, code, reason, out) {
            Ok(()) => StunOutcome::ErrorReply { code },
            Err(_) => {
                out.clear();
                StunOutcome::Drop(DropReason::EncodeFailed)
            }
        }
    }

    fn encode_error(
        &self,
        msg: &StunMessage<'_>,
        rejection: &Rejection,
        code: u16,
        reason: &str,
        out: &mut Vec<u8>,
    ) -> Result<(), StunError> {
        let mut writer = binding_response(msg, Class::ErrorResponse, out);
        writer.error_code(code, reason)?;
        if let Rejection::UnknownAttributes = rejection {
            // RFC 8489 §14.9: a list of 16-bit types, written without a
            // temporary buffer: header first, then each type, then padding.
            write_unknown_attributes(&mut writer, msg)?;
        }
        if rejection.is_authenticated() {
            writer.message_integrity_with(self.integrity_key.clone())?;
        }
        writer.fingerprint()
    }

    fn expired(&self, last_ms: u64, now_ms: u64) -> bool {
        now_ms.saturating_sub(last_ms) >= self.consent_timeout_ms
    }

    /// Time only moves forward for the agent, whatever order callers pass it in.
    fn advance_clock(&mut self, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
    }

    /// Records an authenticated check from `address`; when the table is full,
    /// replaces the least recently heard address other than the selected one.
    fn remember(&mut self, address: SocketAddr, now_ms: u64) {
        let fresh = Validated {
            address,
            last_check_ms: now_ms,
        };
        if let Some(existing) = self
            .validated
            .iter_mut()
            .flatten()
            .find(|v| v.address == address)
        {
            existing.last_check_ms = now_ms;
            return;
        }
        if let Some(empty) = self.validated.iter_mut().find(|slot| slot.is_none()) {
            *empty = Some(fresh);
            return;
        }
        let selected = self.selected();
        let victim = self
            .validated
            .iter_mut()
            .filter(|slot| slot.is_some_and(|v| Some(v.address) != selected))
            .min_by_key(|slot| slot.map_or(0, |v| v.last_check_ms));
        if let Some(victim) = victim {
            *victim = Some(fresh);
        }
    }

    fn forget(&mut self, address: SocketAddr) {
        for slot in self.validated.iter_mut() {
            if slot.is_some_and(|v| v.address == address) {
                *slot = None;
            }
        }
    }

    fn push_event(&mut self, event: IceEvent) {
        if self.events.len() >= MAX_PENDING_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(event);
    }
}

/// Comprehension-required attributes (RFC 8489 §14) a Binding request may
/// carry that this agent understands; anything else in 0x0000-0x7FFF earns a 420.
fn is_unknown_required(attr_type: u16) -> bool {
    const UNDERSTOOD: [u16; 10] = [
        attr::MAPPED_ADDRESS,
        attr::USERNAME,
        attr::MESSAGE_INTEGRITY,
        attr::ERROR_CODE,
        attr::UNKNOWN_ATTRIBUTES,
        attr::REALM,
        attr::NONCE,
        attr::XOR_MAPPED_ADDRESS,
        attr::PRIORITY,
        attr::USE_CANDIDATE,
    ];
    attr::is_comprehension_required(attr_type) && !UNDERSTOOD.contains(&attr_type)
}

/// The start of the response to a Binding request: same method and transaction ID
/// (RFC 8489 §6.3.1.1).
fn binding_response<'o>(
    request: &StunMessage<'_>,
    class: Class,
    out: &'o mut Vec<u8>,
) -> MessageWriter<'o> {
    MessageWriter::new(out, class, METHOD_BINDING, &request.transaction_id)
}

/// RFC 8489 §14.9: UNKNOWN-ATTRIBUTES lists the unknown comprehension-required
/// types so the peer learns which to leave out. Written in place (no temporary
/// list): a zeroed value is reserved, then filled.
fn write_unknown_attributes(
    writer: &mut MessageWriter<'_>,
    msg: &StunMessage<'_>,
) -> Result<(), StunError> {
    let unknown = || {
        msg.covered_attributes()
            .map(|a| a.attr_type)
            .filter(|&t| is_unknown_required(t))
    };
    // Bounded by the request's own size: each listed type took at least 4 bytes there.
    let value_len = unknown().count() * 2;
    let value_start = writer.bytes().len() + 4;
    writer.attribute_zeroed(attr::UNKNOWN_ATTRIBUTES, value_len)?;
    let bytes = writer.bytes_mut();
    for (i, attr_type) in unknown().enumerate() {
        let at = value_start + i * 2;
        if let Some(slot) = bytes.get_mut(at..at + 2) {
            slot.copy_from_slice(&attr_type.to_be_bytes());
        }
    }
    Ok(())
}
