//! Bounds-checked big-endian (network order) field access shared by the
//! RTP and RTCP code. Readers return `None` and writers do nothing when the
//! field does not fit, so callers can never index out of range.

#[inline]
pub(crate) fn read_u16(buf: &[u8], at: usize) -> Option<u16> {
    let end = at.checked_add(2)?;
    let field = buf.get(at..end)?;
    Some(u16::from_be_bytes([field[0], field[1]]))
}

#[inline]
pub(crate) fn read_u24(buf: &[u8], at: usize) -> Option<u32> {
    let end = at.checked_add(3)?;
    let field = buf.get(at..end)?;
    Some(u32::from_be_bytes([0, field[0], field[1], field[2]]))
}

#[inline]
pub(crate) fn read_u32(buf: &[u8], at: usize) -> Option<u32> {
    let end = at.checked_add(4)?;
    let field = buf.get(at..end)?;
    Some(u32::from_be_bytes([field[0], field[1], field[2], field[3]]))
}

#[inline]
pub(crate) fn write_u16(buf: &mut [u8], at: usize, value: u16) {
    if let Some(field) = at.checked_add(2).and_then(|end| buf.get_mut(at..end)) {
        field.copy_from_slice(&value.to_be_bytes());
    }
}

#[inline]
pub(crate) fn write_u32(buf: &mut [u8], at: usize, value: u32) {
    if let Some(field) = at.checked_add(4).and_then(|end| buf.get_mut(at..end)) {
        field.copy_from_slice(&value.to_be_bytes());
    }
}
