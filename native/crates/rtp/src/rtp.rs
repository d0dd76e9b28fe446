//! RTP header parsing and in-place rewriting.
//!
//! Layout (RFC 3550 §5.1):
//! ```text
//!  0                   1                   2                   3
//! |V=2|P|X|  CC   |M|     PT      |       sequence number         |
//! |                           timestamp                           |
//! |           synchronization source (SSRC) identifier            |
//! |            contributing source (CSRC) identifiers  (CC × 4)   |
//! | profile (0xBEDE / 0x100X)     |  length in 32-bit words       |  (if X)
//! |                     extension data ...                        |
//! ```

use crate::bytes::{read_u16, read_u32, write_u16, write_u32};

/// Why a buffer is not a well-formed RTP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RtpError {
    /// Shorter than the 12-byte fixed header.
    TooShort,
    /// Version field is not 2.
    BadVersion,
    /// The CSRC list runs past the end of the buffer.
    BadCsrc,
    /// The header extension runs past the end of the buffer, or (for
    /// [`remap_extension_ids`]) an id cannot be written in the block's form.
    BadExtension,
    /// The padding count is zero or larger than the space after the header.
    BadPadding,
}

/// Location of the header extension block inside the packet buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtensionBlock {
    /// "defined by profile" field: 0xBEDE for one-byte elements, 0x100X for
    /// two-byte elements (RFC 8285 §4.2, §4.3).
    pub profile: u16,
    /// First byte of extension data, after the 4-byte extension header.
    pub offset: usize,
    /// Bytes of extension data (length field × 4).
    pub len: usize,
}

/// Parsed RTP fixed header; offsets refer to the buffer given to [`parse_rtp`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    pub marker: bool,
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    pub csrc_count: u8,
    pub extension: Option<ExtensionBlock>,
    /// The payload starts here.
    pub header_len: usize,
    /// The payload ends at `buf.len() - padding_len`.
    pub padding_len: usize,
}

impl RtpHeader {
    /// The payload bytes (between the header and the padding), or `None`
    /// if `buf` is not the buffer this header was parsed from.
    #[inline]
    pub fn payload<'a>(&self, buf: &'a [u8]) -> Option<&'a [u8]> {
        let end = buf.len().checked_sub(self.padding_len)?;
        buf.get(self.header_len..end)
    }

    /// CSRC identifier number `index` (0-based), RFC 3550 §5.1.
    #[inline]
    pub fn csrc(&self, buf: &[u8], index: usize) -> Option<u32> {
        if index >= usize::from(self.csrc_count) {
            return None;
        }
        read_u32(buf, FIXED_HEADER_LEN + 4 * index)
    }
}

pub const FIXED_HEADER_LEN: usize = 12;
const RTP_VERSION: u8 = 2;
/// RFC 8285 §4.2: one-byte header form marker.
pub const ONE_BYTE_PROFILE: u16 = 0xBEDE;
/// RFC 8285 §4.3: two-byte header form is 0x100 followed by 4 "appbits".
pub const TWO_BYTE_PROFILE_MASK: u16 = 0xFFF0;
pub const TWO_BYTE_PROFILE: u16 = 0x1000;

/// Parses the RTP header of `buf` without copying (RFC 3550 §5.1).
///
/// Checks: version 2, CSRC list and extension block inside the buffer,
/// padding count (last byte) non-zero and not larger than what follows the
/// header (RFC 3550 §5.1 "P"). It does not check the payload type: demux RTCP
/// first with [`is_rtcp`].
#[inline]
pub fn parse_rtp(buf: &[u8]) -> Result<RtpHeader, RtpError> {
    let (&b0, &b1) = match (buf.first(), buf.get(1)) {
        (Some(b0), Some(b1)) if buf.len() >= FIXED_HEADER_LEN => (b0, b1),
        _ => return Err(RtpError::TooShort),
    };
    if b0 >> 6 != RTP_VERSION {
        return Err(RtpError::BadVersion);
    }
    let has_padding = b0 & 0x20 != 0;
    let has_extension = b0 & 0x10 != 0;
    let csrc_count = b0 & 0x0f;
    let sequence = read_u16(buf, 2).ok_or(RtpError::TooShort)?;
    let timestamp = read_u32(buf, 4).ok_or(RtpError::TooShort)?;
    let ssrc = read_u32(buf, 8).ok_or(RtpError::TooShort)?;

    let mut header_len = FIXED_HEADER_LEN + 4 * usize::from(csrc_count);
    if header_len > buf.len() {
        return Err(RtpError::BadCsrc);
    }

    let extension = if has_extension {
        let profile = read_u16(buf, header_len).ok_or(RtpError::BadExtension)?;
        let words = read_u16(buf, header_len + 2).ok_or(RtpError::BadExtension)?;
        let offset = header_len + 4;
        let len = 4 * usize::from(words);
        if offset + len > buf.len() {
            return Err(RtpError::BadExtension);
        }
        header_len = offset + len;
        Some(ExtensionBlock { profile, offset, len })
    } else {
        None
    };

    let padding_len = if has_padding {
        // The last octet counts the padding octets, itself included.
        let count = usize::from(*buf.last().ok_or(RtpError::BadPadding)?);
        if count == 0 || count > buf.len() - header_len {
            return Err(RtpError::BadPadding);
        }
        count
    } else {
        0
    };

    Ok(RtpHeader {
        marker: b1 & 0x80 != 0,
        payload_type: b1 & 0x7f,
        sequence,
        timestamp,
        ssrc,
        csrc_count,
        extension,
        header_len,
        padding_len,
    })
}

// The setters below are for buffers that already passed `parse_rtp`; on a
// buffer shorter than the fixed header they do nothing instead of panicking.

/// Overwrites the SSRC field (bytes 8..12).
#[inline]
pub fn set_ssrc(buf: &mut [u8], ssrc: u32) {
    if buf.len() >= FIXED_HEADER_LEN {
        write_u32(buf, 8, ssrc);
    }
}

/// Overwrites the sequence number (bytes 2..4).
#[inline]
pub fn set_sequence(buf: &mut [u8], seq: u16) {
    if buf.len() >= FIXED_HEADER_LEN {
        write_u16(buf, 2, seq);
    }
}

/// Overwrites the timestamp (bytes 4..8).
#[inline]
pub fn set_timestamp(buf: &mut [u8], ts: u32) {
    if buf.len() >= FIXED_HEADER_LEN {
        write_u32(buf, 4, ts);
    }
}

/// Overwrites the 7-bit payload type, keeping the marker bit.
#[inline]
pub fn set_payload_type(buf: &mut [u8], pt: u8) {
    if buf.len() >= FIXED_HEADER_LEN {
        if let Some(b1) = buf.get_mut(1) {
            *b1 = (*b1 & 0x80) | (pt & 0x7f);
        }
    }
}

/// Sets or clears the marker bit, keeping the payload type.
#[inline]
pub fn set_marker(buf: &mut [u8], marker: bool) {
    if buf.len() >= FIXED_HEADER_LEN {
        if let Some(b1) = buf.get_mut(1) {
            *b1 = (*b1 & 0x7f) | if marker { 0x80 } else { 0 };
        }
    }
}

/// RFC 5761 §4: RTP and RTCP multiplexed on one port are told apart by the
/// second octet; RTCP packet types 192..=223 (RTP payload types 64..=95 with
/// the marker bit set) are RTCP.
#[inline]
pub fn is_rtcp(buf: &[u8]) -> bool {
    matches!(buf.get(1), Some(192..=223))
}

/// Which RFC 8285 element encoding an extension block uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtensionForm {
    /// 0xBEDE: 4-bit id, 4-bit (length − 1); ids 1..=14 (RFC 8285 §4.2).
    OneByte,
    /// 0x100X: 8-bit id, 8-bit length; ids 1..=255 (RFC 8285 §4.3).
    TwoByte,
}

impl ExtensionForm {
    /// The element form of a block's profile field, `None` for profiles
    /// other than RFC 8285 (their elements are opaque to us).
    #[inline]
    pub fn of_profile(profile: u16) -> Option<Self> {
        if profile == ONE_BYTE_PROFILE {
            Some(Self::OneByte)
        } else if profile & TWO_BYTE_PROFILE_MASK == TWO_BYTE_PROFILE {
            Some(Self::TwoByte)
        } else {
            None
        }
    }
}

/// Iterator over the `(id, data)` elements of an RFC 8285 extension block.
/// Padding bytes (id 0) are skipped; iteration stops at a truncated element,
/// and in the one-byte form at id 15 (reserved by RFC 8285 §4.2; a parser
/// must ignore the rest of the block when it meets it).
#[derive(Debug, Clone)]
pub struct ExtensionIter<'a> {
    data: &'a [u8],
    /// Absolute offset of `data[0]` in the packet (lets writers locate ids).
    base: usize,
    pos: usize,
    form: Option<ExtensionForm>,
}

/// One element as located by [`ExtensionIter::next_located`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocatedElement {
    pub id: u8,
    /// Absolute offset of the id byte in the packet.
    pub id_offset: usize,
    /// Absolute offset and length of the element data in the packet.
    pub data_offset: usize,
    pub data_len: usize,
}

/// Finds the element at or after `pos` in extension `data` (relative
/// offsets). Returns the element (relative offsets) and the position after
/// it, or `None` at the end, at a truncated element, or at the one-byte
/// form's reserved id 15 (RFC 8285 §4.2: ignore the rest of the block).
fn element_at(data: &[u8], mut pos: usize, form: ExtensionForm) -> Option<(LocatedElement, usize)> {
    loop {
        let &first = data.get(pos)?;
        let (id, data_start, data_len) = match form {
            ExtensionForm::OneByte => {
                let id = first >> 4;
                if id == 0 {
                    // Padding octet (RFC 8285 §4.2); its length nibble is meaningless.
                    pos += 1;
                    continue;
                }
                if id == 15 {
                    return None;
                }
                (id, pos + 1, usize::from(first & 0x0f) + 1)
            }
            ExtensionForm::TwoByte => {
                if first == 0 {
                    // Padding octet (RFC 8285 §4.3).
                    pos += 1;
                    continue;
                }
                let &len = data.get(pos + 1)?;
                (first, pos + 2, usize::from(len))
            }
        };
        let data_end = data_start + data_len;
        if data_end > data.len() {
            return None;
        }
        return Some((LocatedElement { id, id_offset: pos, data_offset: data_start, data_len }, data_end));
    }
}

impl<'a> ExtensionIter<'a> {
    fn empty() -> Self {
        Self { data: &[], base: 0, pos: 0, form: None }
    }

    /// Like `next`, but also reports where the element sits in the packet.
    pub fn next_located(&mut self) -> Option<LocatedElement> {
        let form = self.form?;
        match element_at(self.data, self.pos, form) {
            Some((element, next_pos)) => {
                self.pos = next_pos;
                Some(LocatedElement {
                    id_offset: self.base + element.id_offset,
                    data_offset: self.base + element.data_offset,
                    ..element
                })
            }
            None => {
                self.form = None;
                None
            }
        }
    }
}

impl<'a> Iterator for ExtensionIter<'a> {
    type Item = (u8, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let element = self.next_located()?;
        let start = element.data_offset - self.base;
        let data = self.data.get(start..start + element.data_len)?;
        Some((element.id, data))
    }
}

/// The extension data slice described by `hdr`, if it lies inside `buf`.
#[inline]
fn extension_data<'a>(buf: &'a [u8], hdr: &RtpHeader) -> Option<(&'a [u8], ExtensionBlock)> {
    let block = hdr.extension?;
    let end = block.offset.checked_add(block.len)?;
    Some((buf.get(block.offset..end)?, block))
}

/// Iterates the RFC 8285 elements of `buf`'s extension block. Yields nothing
/// when there is no block, when the profile is not RFC 8285, or when `hdr`
/// does not describe `buf`.
pub fn extension_elements<'a>(buf: &'a [u8], hdr: &RtpHeader) -> ExtensionIter<'a> {
    match extension_data(buf, hdr) {
        Some((data, block)) => ExtensionIter {
            data,
            base: block.offset,
            pos: 0,
            form: ExtensionForm::of_profile(block.profile),
        },
        None => ExtensionIter::empty(),
    }
}

/// Data of the first element with this id (senders use each negotiated id
/// at most once per packet, so the first is the one).
pub fn find_extension<'a>(buf: &'a [u8], hdr: &RtpHeader, id: u8) -> Option<&'a [u8]> {
    extension_elements(buf, hdr).find(|&(element_id, _)| element_id == id).map(|(_, data)| data)
}

/// Mutable data of the first element with this id, e.g. to rewrite a
/// transport-wide sequence number or abs-send-time in place.
pub fn find_extension_mut<'a>(buf: &'a mut [u8], hdr: &RtpHeader, id: u8) -> Option<&'a mut [u8]> {
    let element = {
        let mut elements = extension_elements(buf, hdr);
        loop {
            let element = elements.next_located()?;
            if element.id == id {
                break element;
            }
        }
    };
    buf.get_mut(element.data_offset..element.data_offset + element.data_len)
}

/// Rewrites extension ids in place: an element with id `old` gets id
/// `map[old]`; `map[old] == 0` leaves it unchanged (0 is the padding id, so
/// it can never be a real target).
///
/// One-byte form (0xBEDE): only ids 1..=14 exist, so a mapping to 15..=255
/// returns `BadExtension`. Two-byte form: any non-zero id is valid.
/// Non-RFC 8285 profiles are left untouched. The whole block is checked
/// before anything is written, so on error the buffer is unchanged.
pub fn remap_extension_ids(buf: &mut [u8], hdr: &RtpHeader, map: &[u8; 256]) -> Result<(), RtpError> {
    let Some(block) = hdr.extension else {
        return Ok(());
    };
    if extension_data(buf, hdr).is_none() {
        return Err(RtpError::BadExtension);
    }
    let Some(form) = ExtensionForm::of_profile(block.profile) else {
        return Ok(());
    };
    let new_id_of = |old: u8| map.get(usize::from(old)).copied().unwrap_or(0);

    // Pass 1: every target id must be representable in this form.
    if form == ExtensionForm::OneByte {
        let mut elements = extension_elements(buf, hdr);
        while let Some(element) = elements.next_located() {
            if new_id_of(element.id) > 14 {
                return Err(RtpError::BadExtension);
            }
        }
    }

    // Pass 2: write. Element boundaries depend only on lengths and on ids
    // 0 and 15, none of which change, so this walk meets the same elements.
    let mut pos = 0;
    loop {
        let step = match buf.get(block.offset..block.offset + block.len) {
            Some(data) => element_at(data, pos, form),
            None => None,
        };
        let Some((element, next_pos)) = step else {
            break;
        };
        let new_id = new_id_of(element.id);
        if new_id != 0 {
            if let Some(id_byte) = buf.get_mut(block.offset + element.id_offset) {
                *id_byte = match form {
                    ExtensionForm::OneByte => (new_id << 4) | (*id_byte & 0x0f),
                    ExtensionForm::TwoByte => new_id,
                };
            }
        }
        pos = next_pos;
    }
    Ok(())
}

/// RFC 6464 §3 client-to-mixer audio level: returns `(voice activity,
/// level in −dBov 0..=127)` from the element with this id.
pub fn audio_level(buf: &[u8], hdr: &RtpHeader, id: u8) -> Option<(bool, u8)> {
    let data = find_extension(buf, hdr, id)?;
    let &byte = data.first()?;
    Some((byte & 0x80 != 0, byte & 0x7f))
}
