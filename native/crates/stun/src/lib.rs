//! `ferry-stun`: sans-IO STUN (RFC 8489) message handling and an ICE-lite
//! responder (RFC 8445 §2.5, §7.3) with consent freshness (RFC 7675).
//!
//! - [`is_stun`] classifies a datagram (RFC 7983 §7).
//! - [`parse`] decodes a message without allocating; [`check_message_integrity`]
//!   and [`check_fingerprint`] verify it (RFC 8489 §14.5, §14.7).
//! - [`MessageWriter`] encodes into a caller-owned buffer.
//! - [`IceLiteAgent`] answers a peer's connectivity checks, follows its
//!   nominations and reports consent loss.
//! - [`build_binding_request`] / [`parse_binding_success`] are the client side,
//!   for tests and test peers.

#![forbid(unsafe_code)]

mod agent;
mod client;
mod message;
mod writer;

pub use agent::{
    DropReason, IceEvent, IceLiteAgent, StunOutcome, DEFAULT_CONSENT_TIMEOUT_MS,
    MAX_PENDING_EVENTS, MAX_VALIDATED_ADDRESSES,
};
pub use client::{build_binding_request, build_binding_request_into, parse_binding_success};
pub use message::{
    attr, check_fingerprint, check_message_integrity, decode_xor_address, is_stun, message_type,
    padded_len, parse, recipient_ufrag, split_message_type, Attributes, Class, RawAttribute, StunMessage,
    ATTR_HEADER_LEN, FINGERPRINT_XOR, HEADER_LEN, MAGIC_COOKIE, MESSAGE_INTEGRITY_LEN,
    METHOD_BINDING,
};
pub use writer::MessageWriter;

/// Why a message could not be decoded, checked or encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StunError {
    /// Fewer than the 20 header bytes.
    TooShort,
    /// Top bits set or no magic cookie (RFC 8489 §5).
    NotStun,
    /// The length field is not a multiple of 4 or disagrees with the datagram.
    BadLength,
    /// An attribute overruns the message, has a wrong fixed size, or follows FINGERPRINT.
    BadAttribute,
    /// Encoding would exceed the 16-bit length field.
    TooLong,
    /// A required attribute is absent.
    MissingAttribute,
    /// No MESSAGE-INTEGRITY to check.
    MissingIntegrity,
    /// MESSAGE-INTEGRITY does not match the key.
    BadIntegrity,
    /// No FINGERPRINT to check.
    MissingFingerprint,
    /// FINGERPRINT does not match the message.
    BadFingerprint,
    /// Not the message class the caller expected.
    UnexpectedClass,
    /// Not a Binding message.
    UnexpectedMethod,
    /// The peer answered with this error code (RFC 8489 §14.8).
    ErrorResponse(u16),
}

impl std::fmt::Display for StunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StunError::ErrorResponse(code) => write!(f, "STUN error response {code}"),
            other => write!(f, "STUN: {other:?}"),
        }
    }
}

impl std::error::Error for StunError {}
