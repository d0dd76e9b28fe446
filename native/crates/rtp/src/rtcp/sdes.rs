//! Source description, SDES (RFC 3550 §6.5): checked, never parsed (ferry reads no item).

use super::RtcpError;

/// Every one of the `count` chunks fits the body.
pub(super) fn check(body: &[u8], count: usize) -> Result<(), RtcpError> {
    let mut pos = 0;
    for _ in 0..count {
        pos = chunk_end(body, pos).ok_or(RtcpError::BadBody)?;
    }
    Ok(())
}

/// End of the SDES chunk starting at `pos` in `body` (RFC 3550 §6.5): SSRC,
/// items (type, length, text), a null item type, then null octets up to the
/// next 32-bit boundary. `None` if the chunk does not fit.
fn chunk_end(body: &[u8], pos: usize) -> Option<usize> {
    let mut at = pos.checked_add(4)?;
    if at > body.len() {
        return None;
    }
    loop {
        let &item_type = body.get(at)?;
        if item_type == 0 {
            // The body starts 4 bytes into the packet, so body offsets share
            // the packet's 32-bit alignment.
            let end = (at + 1 + 3) & !3;
            return (end <= body.len()).then_some(end);
        }
        let &item_len = body.get(at + 1)?;
        at += 2 + usize::from(item_len);
        if at > body.len() {
            return None;
        }
    }
}
