//! Errors returned by every SRTP/SRTCP operation.

use std::fmt;

/// Why a packet could not be protected or unprotected.
///
/// Every variant means "drop this packet"; none of them poisons the context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SrtpError {
    /// The packet is shorter than its fixed header plus trailer (tag, SRTCP index).
    TooShort,
    /// The RTP/RTCP header is malformed: wrong version, or CSRCs / header
    /// extension running past the end of the packet.
    BadHeader,
    /// The authentication tag does not match (RFC 3711 §3.3 step 5, RFC 7714 §7.2).
    AuthFailed,
    /// The packet index was already received (RFC 3711 §3.3.2).
    /// Also returned by `protect_*` when a stream's index space is exhausted
    /// (2^48 RTP or 2^31 RTCP packets), because sending would reuse a keystream.
    Replayed,
    /// The packet index lies behind the replay window (RFC 3711 §3.3.2), or
    /// before the first index of the stream.
    TooOld,
    /// The caller's buffer cannot hold the output (tag / SRTCP trailer), or
    /// `len` exceeds the buffer.
    BufferTooSmall,
    /// The master key or master salt length does not match the profile.
    BadKeyLength,
    /// A packet for a new SSRC arrived while the context already tracks its
    /// maximum number of streams.
    TooManyStreams,
}

impl fmt::Display for SrtpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            SrtpError::TooShort => "packet too short",
            SrtpError::BadHeader => "malformed RTP/RTCP header",
            SrtpError::AuthFailed => "authentication failed",
            SrtpError::Replayed => "replayed packet index",
            SrtpError::TooOld => "packet index older than the replay window",
            SrtpError::BufferTooSmall => "buffer too small",
            SrtpError::BadKeyLength => "master key or salt has the wrong length",
            SrtpError::TooManyStreams => "too many SSRC streams in one SRTP context",
        };
        f.write_str(text)
    }
}

impl std::error::Error for SrtpError {}
