//! Protect and unprotect into fresh buffers, shared by the integration tests (through
//! common/mod.rs) and the crate's own vector tests (src/vector_tests.rs, which can reach the
//! crate's private constructors): the including module brings `SrtpContext` and `SrtpError`.

use super::{SrtpContext, SrtpError};

pub fn protect_rtp(ctx: &mut SrtpContext, plain: &[u8]) -> Vec<u8> {
    let overhead = ctx.profile().rtp_overhead();
    protected(plain, overhead, |buf, len| ctx.protect_rtp(buf, len))
}

pub fn unprotect_rtp(ctx: &mut SrtpContext, protected: &[u8]) -> Result<Vec<u8>, SrtpError> {
    unprotected(protected, |buf, len| ctx.unprotect_rtp(buf, len))
}

pub fn protect_rtcp(ctx: &mut SrtpContext, plain: &[u8]) -> Vec<u8> {
    let overhead = ctx.profile().rtcp_overhead();
    protected(plain, overhead, |buf, len| ctx.protect_rtcp(buf, len))
}

pub fn unprotect_rtcp(ctx: &mut SrtpContext, protected: &[u8]) -> Result<Vec<u8>, SrtpError> {
    unprotected(protected, |buf, len| ctx.unprotect_rtcp(buf, len))
}

/// `plain` after `protect`, which must add exactly `overhead` octets.
fn protected(
    plain: &[u8],
    overhead: usize,
    protect: impl FnOnce(&mut [u8], usize) -> Result<usize, SrtpError>,
) -> Vec<u8> {
    let mut buf = plain.to_vec();
    buf.resize(plain.len() + overhead, 0);
    let len = protect(&mut buf, plain.len()).expect("protect");
    assert_eq!(len, plain.len() + overhead);
    buf.truncate(len);
    buf
}

fn unprotected(
    protected: &[u8],
    unprotect: impl FnOnce(&mut [u8], usize) -> Result<usize, SrtpError>,
) -> Result<Vec<u8>, SrtpError> {
    let mut buf = protected.to_vec();
    let len = unprotect(&mut buf, protected.len())?;
    buf.truncate(len);
    Ok(buf)
}
