#![deny(clippy::all)]
use napi_derive::napi;

#[napi]
pub fn engine_version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}
