//! The N-API binding of ferry's media engine: a thin control channel. Every
//! call maps to one `ferry_engine::Engine` call; no packet ever enters
//! JavaScript except DTLS records, delivered batched with other events.
//! Every exported function catches panics and turns them into JS errors,
//! so the addon never takes the process down.
//!
//! - `engine`: the `NativeEngine` class JavaScript drives, and its option objects;
//! - `events`: the engine's events as JavaScript receives them;
//! - `stats`: the counters objects `stats()` returns;
//! - `bench_exports`: benchmark helpers for `bench/` (never used by the gateway).

use std::net::{IpAddr, SocketAddr};
use std::panic::{catch_unwind, AssertUnwindSafe};

use ferry_engine::SrtpProfile;
use napi::bindgen_prelude::*;
use napi_derive::napi;

mod bench_exports;
mod engine;
mod events;
mod stats;

fn guard<T>(what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic".into());
            Err(Error::from_reason(format!("{what}: internal error: {msg}")))
        }
    }
}

fn err(e: impl std::fmt::Display) -> Error {
    Error::from_reason(e.to_string())
}

fn parse_addr(address: &str, port: u32) -> Result<SocketAddr> {
    let ip: IpAddr = address.parse().map_err(|_| err(format!("invalid IP address {address:?}")))?;
    let port = u16::try_from(port).map_err(|_| err(format!("invalid port {port}")))?;
    Ok(SocketAddr::new(ip, port))
}

fn parse_profile(name: &str) -> Result<SrtpProfile> {
    SrtpProfile::from_name(name).ok_or_else(|| err(format!("unknown SRTP profile {name:?}")))
}

#[napi]
pub fn engine_version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}
