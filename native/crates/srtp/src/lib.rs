//! ferry-srtp: SRTP and SRTCP (RFC 3711) with the AES_CM_128_HMAC_SHA1_80/_32
//! and AEAD_AES_128_GCM / AEAD_AES_256_GCM (RFC 7714) profiles. Sans-IO: every
//! operation transforms a caller-owned buffer in place and allocates nothing
//! per packet.
//!
//! RTP header extensions and CSRCs are authenticated, not encrypted (no
//! RFC 6904 / RFC 9335). MKI is not used (DTLS-SRTP and ferry's SDES never
//! negotiate one).

// Unsafe only in `hmac_batch` and `aes_ctr` (SIMD intrinsics behind run-time CPU detection).
#![deny(unsafe_code)]

mod aes_ctr;
mod cipher;
mod context;
mod error;
pub mod hmac_batch;
mod header;
mod kdf;
mod profile;
mod replay;

#[cfg(test)]
mod vector_tests;

pub use context::{SrtpContext, DEFAULT_MAX_STREAMS};
pub use error::SrtpError;
pub use profile::SrtpProfile;

/// Width of the SRTP and SRTCP replay windows, in packets (RFC 3711 §3.3.2).
pub const REPLAY_WINDOW_SIZE: u64 = replay::ReplayWindow::WIDTH;
