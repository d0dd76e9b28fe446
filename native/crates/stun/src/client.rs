//! The client side of an ICE check, for tests and for test peers / bench
//! senders: a full, controlling agent's Binding request (RFC 8445 §7.1.1) and
//! the check of its success response (RFC 8445 §7.2.5, RFC 8489 §6.3.3).

use std::net::SocketAddr;

use crate::message::{
    attr, check_fingerprint, check_message_integrity, parse, Class, METHOD_BINDING,
};
use crate::writer::MessageWriter;
use crate::StunError;

/// Builds a Binding request with USERNAME, PRIORITY, ICE-CONTROLLING
/// (tie-breaker), optional USE-CANDIDATE, MESSAGE-INTEGRITY (key = pwd) and
/// FINGERPRINT.
///
/// Returns an empty vector when the request cannot be encoded (a username so
/// long that the message would exceed 64 KiB).
pub fn build_binding_request(
    transaction_id: [u8; 12],
    username: &str,
    pwd: &str,
    priority: u32,
    use_candidate: bool,
    tie_breaker: u64,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    let mut write = || {
        let mut writer =
            MessageWriter::new(&mut out, Class::Request, METHOD_BINDING, &transaction_id);
        writer.attribute(attr::USERNAME, username.as_bytes())?;
        writer.attribute(attr::PRIORITY, &priority.to_be_bytes())?;
        writer.attribute(attr::ICE_CONTROLLING, &tie_breaker.to_be_bytes())?;
        if use_candidate {
            writer.attribute(attr::USE_CANDIDATE, &[])?;
        }
        writer.message_integrity(pwd.as_bytes())?;
        writer.fingerprint()
    };
    match write() {
        Ok(()) => out,
        Err(_) => Vec::new(),
    }
}

/// Parses a Binding success response and checks it: FINGERPRINT when present,
/// MESSAGE-INTEGRITY required with key = pwd (RFC 8445 §7.2.5.2.2 short-term
/// credentials). Returns the XOR-MAPPED-ADDRESS.
///
/// An error response yields `StunError::ErrorResponse(code)` (its integrity is
/// not checked: a 400/401 carries none).
pub fn parse_binding_success(buf: &[u8], pwd: &str) -> Result<SocketAddr, StunError> {
    let msg = parse(buf)?;
    if msg.has_fingerprint() {
        check_fingerprint(&msg)?;
    }
    if msg.method != METHOD_BINDING {
        return Err(StunError::UnexpectedMethod);
    }
    match msg.class {
        Class::SuccessResponse => {}
        Class::ErrorResponse => {
            return Err(StunError::ErrorResponse(msg.error_code().unwrap_or(0)))
        }
        Class::Request | Class::Indication => return Err(StunError::UnexpectedClass),
    }
    check_message_integrity(&msg, pwd.as_bytes())?;
    msg.xor_mapped_address()
}
