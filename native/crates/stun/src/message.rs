//! STUN message decoding (RFC 8489 §5, §14) and the two message checks:
//! MESSAGE-INTEGRITY (§14.5) and FINGERPRINT (§14.7).
//!
//! Parsing never allocates: a [`StunMessage`] borrows the datagram and remembers
//! where MESSAGE-INTEGRITY and FINGERPRINT sit, so the checks can hash the exact
//! bytes that precede them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use hmac::{Hmac, Mac};
use sha1::Sha1;

use crate::StunError;

pub(crate) type HmacSha1 = Hmac<Sha1>;

/// RFC 8489 §5: fixed value in bytes 4..8 of every message.
pub const MAGIC_COOKIE: u32 = 0x2112_A442;
/// RFC 8489 §5: the header is 20 bytes.
pub const HEADER_LEN: usize = 20;
/// RFC 8489 §14: type (2) + length (2).
pub const ATTR_HEADER_LEN: usize = 4;
/// RFC 8489 §14.5: HMAC-SHA1 output size.
pub const MESSAGE_INTEGRITY_LEN: usize = 20;
/// RFC 8489 §14.7: the value XORed into the CRC-32 so that FINGERPRINT tells
/// STUN apart from other protocols sharing the port.
pub const FINGERPRINT_XOR: u32 = 0x5354_554E;

/// RFC 8489 §18.2: the only method ICE uses.
pub const METHOD_BINDING: u16 = 0x001;

/// Attribute types this crate reads or writes (RFC 8489 §18.3, RFC 8445 §16.1).
pub mod attr {
    pub const MAPPED_ADDRESS: u16 = 0x0001;
    pub const USERNAME: u16 = 0x0006;
    pub const MESSAGE_INTEGRITY: u16 = 0x0008;
    pub const ERROR_CODE: u16 = 0x0009;
    pub const UNKNOWN_ATTRIBUTES: u16 = 0x000A;
    pub const REALM: u16 = 0x0014;
    pub const NONCE: u16 = 0x0015;
    pub const MESSAGE_INTEGRITY_SHA256: u16 = 0x001C;
    pub const XOR_MAPPED_ADDRESS: u16 = 0x0020;
    pub const PRIORITY: u16 = 0x0024;
    pub const USE_CANDIDATE: u16 = 0x0025;
    pub const SOFTWARE: u16 = 0x8022;
    pub const FINGERPRINT: u16 = 0x8028;
    pub const ICE_CONTROLLED: u16 = 0x8029;
    pub const ICE_CONTROLLING: u16 = 0x802A;

    /// RFC 8489 §14: types 0x0000-0x7FFF are comprehension-required.
    pub const fn is_comprehension_required(attr_type: u16) -> bool {
        attr_type < 0x8000
    }
}

/// RFC 8489 §5: the two class bits C1 C0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Request,
    Indication,
    SuccessResponse,
    ErrorResponse,
}

impl Class {
    const fn bits(self) -> u16 {
        match self {
            Class::Request => 0b00,
            Class::Indication => 0b01,
            Class::SuccessResponse => 0b10,
            Class::ErrorResponse => 0b11,
        }
    }

    const fn from_bits(bits: u16) -> Class {
        match bits & 0b11 {
            0b00 => Class::Request,
            0b01 => Class::Indication,
            0b10 => Class::SuccessResponse,
            _ => Class::ErrorResponse,
        }
    }
}

/// RFC 8489 §5 figure 3: the class bits are interleaved into the 12-bit method
/// (C0 at bit 4, C1 at bit 8).
pub const fn message_type(class: Class, method: u16) -> u16 {
    let m = method & 0x0FFF;
    let c = class.bits();
    (m & 0x000F) | ((m & 0x0070) << 1) | ((m & 0x0F80) << 2) | ((c & 0b01) << 4) | ((c & 0b10) << 7)
}

/// Inverse of [`message_type`].
pub const fn split_message_type(message_type: u16) -> (Class, u16) {
    let t = message_type & 0x3FFF;
    let method = (t & 0x000F) | ((t & 0x00E0) >> 1) | ((t & 0x3E00) >> 2);
    let class = Class::from_bits(((t >> 4) & 0b01) | ((t >> 7) & 0b10));
    (class, method)
}

/// RFC 7983 §7 + RFC 8489 §5: a datagram is STUN when its first byte is 0..=3
/// (the two top bits of every STUN message are zero), it holds at least a
/// header, and it carries the magic cookie.
pub fn is_stun(buf: &[u8]) -> bool {
    match (buf.first(), buf.get(4..8)) {
        (Some(&first), Some(cookie)) => {
            first <= 3 && buf.len() >= HEADER_LEN && cookie == MAGIC_COOKIE.to_be_bytes()
        }
        _ => false,
    }
}

/// One attribute TLV as it appears in the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawAttribute<'a> {
    pub attr_type: u16,
    /// The value without its padding.
    pub value: &'a [u8],
    /// Offset of the attribute's type field within the message.
    pub offset: usize,
}

/// Iterates the attributes of an already validated body. Parsing checked
/// every TLV fits, so this stops quietly at the first one that would not.
#[derive(Debug, Clone)]
pub struct Attributes<'a> {
    raw: &'a [u8],
    pos: usize,
    end: usize,
}

impl<'a> Iterator for Attributes<'a> {
    type Item = RawAttribute<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        let (attribute, next_pos) = read_attribute(self.raw, self.pos, self.end)?;
        self.pos = next_pos;
        Some(attribute)
    }
}

/// RFC 8489 §14: reads one TLV at `pos`; returns it and where the next begins
/// (values are padded to a multiple of 4). `None` when it does not fit in `end`.
fn read_attribute(raw: &[u8], pos: usize, end: usize) -> Option<(RawAttribute<'_>, usize)> {
    let header_end = pos.checked_add(ATTR_HEADER_LEN)?;
    if header_end > end {
        return None;
    }
    let header = raw.get(pos..header_end)?;
    let attr_type = u16::from_be_bytes([*header.first()?, *header.get(1)?]);
    let value_len = usize::from(u16::from_be_bytes([*header.get(2)?, *header.get(3)?]));
    let value_end = header_end.checked_add(value_len)?;
    let padded_end = header_end.checked_add(padded_len(value_len))?;
    if padded_end > end {
        return None;
    }
    let value = raw.get(header_end..value_end)?;
    Some((
        RawAttribute {
            attr_type,
            value,
            offset: pos,
        },
        padded_end,
    ))
}

/// RFC 8489 §14: attribute values are padded to a 4-byte boundary.
pub const fn padded_len(len: usize) -> usize {
    (len + 3) & !3
}

/// A parsed STUN message borrowing its datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StunMessage<'a> {
    pub class: Class,
    pub method: u16,
    pub transaction_id: [u8; 12],
    raw: &'a [u8],
    /// Offset of the MESSAGE-INTEGRITY attribute's header, when present.
    integrity_offset: Option<usize>,
    /// Offset of the FINGERPRINT attribute's header, when present (always last).
    fingerprint_offset: Option<usize>,
}

/// RFC 8489 §5 and §14: validates the header and every attribute TLV.
///
/// The datagram must be exactly one message (UDP carries one message per
/// datagram, so trailing bytes mean it is not what it claims to be).
/// MESSAGE-INTEGRITY must be 20 bytes and FINGERPRINT 4 bytes and last
/// (§14.5, §14.7); anything else is `BadAttribute`.
pub fn parse(buf: &[u8]) -> Result<StunMessage<'_>, StunError> {
    let header = buf.get(..HEADER_LEN).ok_or(StunError::TooShort)?;
    let mut word = [0u8; 4];
    word.copy_from_slice(header.get(4..8).ok_or(StunError::TooShort)?);
    let type_field = u16::from_be_bytes([header[0], header[1]]);
    // RFC 8489 §5: the most significant two bits of every STUN message are zero.
    if type_field & 0xC000 != 0 || u32::from_be_bytes(word) != MAGIC_COOKIE {
        return Err(StunError::NotStun);
    }
    let body_len = usize::from(u16::from_be_bytes([header[2], header[3]]));
    // RFC 8489 §5: the length excludes the header and is a multiple of 4.
    if body_len % 4 != 0 || HEADER_LEN + body_len != buf.len() {
        return Err(StunError::BadLength);
    }
    let mut transaction_id = [0u8; 12];
    transaction_id.copy_from_slice(header.get(8..HEADER_LEN).ok_or(StunError::TooShort)?);
    let (class, method) = split_message_type(type_field);

    let mut integrity_offset = None;
    let mut fingerprint_offset = None;
    let mut pos = HEADER_LEN;
    while pos < buf.len() {
        let (attribute, next) =
            read_attribute(buf, pos, buf.len()).ok_or(StunError::BadAttribute)?;
        // §14.7: nothing may follow FINGERPRINT.
        if fingerprint_offset.is_some() {
            return Err(StunError::BadAttribute);
        }
        match attribute.attr_type {
            attr::MESSAGE_INTEGRITY => {
                if attribute.value.len() != MESSAGE_INTEGRITY_LEN {
                    return Err(StunError::BadAttribute);
                }
                // §14.5: only the first one counts; later attributes are ignored.
                integrity_offset.get_or_insert(pos);
            }
            attr::FINGERPRINT => {
                if attribute.value.len() != 4 {
                    return Err(StunError::BadAttribute);
                }
                fingerprint_offset = Some(pos);
            }
            _ => {}
        }
        pos = next;
    }

    Ok(StunMessage {
        class,
        method,
        transaction_id,
        raw: buf,
        integrity_offset,
        fingerprint_offset,
    })
}

impl<'a> StunMessage<'a> {
    /// The whole datagram.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// Every attribute, in wire order, including those RFC 8489 §14.5 says to
    /// ignore (after MESSAGE-INTEGRITY).
    pub fn attributes(&self) -> Attributes<'a> {
        Attributes {
            raw: self.raw,
            pos: HEADER_LEN,
            end: self.raw.len(),
        }
    }

    /// Attributes the receiver must honour: RFC 8489 §14.5 says everything
    /// after MESSAGE-INTEGRITY except FINGERPRINT is ignored, because the
    /// integrity does not cover it. MESSAGE-INTEGRITY itself is included.
    pub fn covered_attributes(&self) -> Attributes<'a> {
        let end = match self.integrity_offset {
            Some(offset) => offset + ATTR_HEADER_LEN + MESSAGE_INTEGRITY_LEN,
            None => self.fingerprint_offset.unwrap_or(self.raw.len()),
        };
        Attributes {
            raw: self.raw,
            pos: HEADER_LEN,
            end,
        }
    }

    /// First honoured attribute of the given type (see [`Self::covered_attributes`]);
    /// FINGERPRINT is found too.
    pub fn attribute(&self, attr_type: u16) -> Option<&'a [u8]> {
        if attr_type == attr::FINGERPRINT {
            let offset = self.fingerprint_offset?;
            return self
                .raw
                .get(offset + ATTR_HEADER_LEN..offset + ATTR_HEADER_LEN + 4);
        }
        self.covered_attributes()
            .find(|a| a.attr_type == attr_type)
            .map(|a| a.value)
    }

    pub fn has_message_integrity(&self) -> bool {
        self.integrity_offset.is_some()
    }

    pub fn has_fingerprint(&self) -> bool {
        self.fingerprint_offset.is_some()
    }

    /// RFC 8489 §14.2: the XOR-MAPPED-ADDRESS attribute, decoded.
    pub fn xor_mapped_address(&self) -> Result<SocketAddr, StunError> {
        let value = self
            .attribute(attr::XOR_MAPPED_ADDRESS)
            .ok_or(StunError::MissingAttribute)?;
        decode_xor_address(value, &self.transaction_id)
    }

    /// RFC 8489 §14.8: the error code (class * 100 + number) of an ERROR-CODE attribute.
    pub fn error_code(&self) -> Option<u16> {
        let value = self.attribute(attr::ERROR_CODE)?;
        let class = u16::from(*value.get(2)? & 0x07);
        let number = u16::from(*value.get(3)?);
        Some(class * 100 + number)
    }
}

/// RFC 8489 §14.2: port XOR the cookie's top 16 bits; IPv4 address XOR the
/// cookie; IPv6 address XOR cookie || transaction id.
pub fn decode_xor_address(
    value: &[u8],
    transaction_id: &[u8; 12],
) -> Result<SocketAddr, StunError> {
    let family = *value.get(1).ok_or(StunError::BadAttribute)?;
    let x_port = value.get(2..4).ok_or(StunError::BadAttribute)?;
    let cookie = MAGIC_COOKIE.to_be_bytes();
    let port = u16::from_be_bytes([x_port[0] ^ cookie[0], x_port[1] ^ cookie[1]]);
    match (family, value.len()) {
        (0x01, 8) => {
            let mut octets = [0u8; 4];
            for ((o, x), c) in octets.iter_mut().zip(&value[4..8]).zip(cookie) {
                *o = x ^ c;
            }
            Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::from(octets)), port))
        }
        (0x02, 20) => {
            let mut octets = [0u8; 16];
            let mask = cookie.iter().chain(transaction_id.iter());
            for ((o, x), m) in octets.iter_mut().zip(&value[4..20]).zip(mask) {
                *o = x ^ m;
            }
            Ok(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(octets)), port))
        }
        _ => Err(StunError::BadAttribute),
    }
}

/// The header with its length field replaced: RFC 8489 §14.5/§14.7 hash the
/// message as if the attribute being computed were the last one.
fn header_with_length(raw: &[u8], body_len: usize) -> Option<[u8; HEADER_LEN]> {
    let mut header = [0u8; HEADER_LEN];
    header.copy_from_slice(raw.get(..HEADER_LEN)?);
    let len = u16::try_from(body_len).ok()?;
    header[2..4].copy_from_slice(&len.to_be_bytes());
    Some(header)
}

/// RFC 8489 §14.5: checks MESSAGE-INTEGRITY with the given key (for short-term
/// credentials, §9.1.1, the key is the password). The HMAC covers the message up
/// to the attribute, with the header length counting through MESSAGE-INTEGRITY.
pub fn check_message_integrity(msg: &StunMessage<'_>, key: &[u8]) -> Result<(), StunError> {
    let mac = HmacSha1::new_from_slice(key).map_err(|_| StunError::BadIntegrity)?;
    check_message_integrity_with(msg, mac)
}

/// As [`check_message_integrity`], with an HMAC already keyed (cloned per
/// message so that the key schedule is computed once per agent).
pub(crate) fn check_message_integrity_with(
    msg: &StunMessage<'_>,
    mut mac: HmacSha1,
) -> Result<(), StunError> {
    let offset = msg.integrity_offset.ok_or(StunError::MissingIntegrity)?;
    let value_start = offset + ATTR_HEADER_LEN;
    let expected = msg
        .raw
        .get(value_start..value_start + MESSAGE_INTEGRITY_LEN)
        .ok_or(StunError::BadAttribute)?;
    let header = header_with_length(msg.raw, value_start + MESSAGE_INTEGRITY_LEN - HEADER_LEN)
        .ok_or(StunError::BadLength)?;
    mac.update(&header);
    mac.update(
        msg.raw
            .get(HEADER_LEN..offset)
            .ok_or(StunError::BadAttribute)?,
    );
    // Constant-time comparison: the tag is a secret-derived value.
    mac.verify_slice(expected)
        .map_err(|_| StunError::BadIntegrity)
}

/// RFC 8489 §14.7: checks FINGERPRINT, the CRC-32 of the message up to the
/// attribute XOR 0x5354554E, with the header length counting through FINGERPRINT.
pub fn check_fingerprint(msg: &StunMessage<'_>) -> Result<(), StunError> {
    let offset = msg
        .fingerprint_offset
        .ok_or(StunError::MissingFingerprint)?;
    let value_start = offset + ATTR_HEADER_LEN;
    let value = msg
        .raw
        .get(value_start..value_start + 4)
        .ok_or(StunError::BadAttribute)?;
    let expected = u32::from_be_bytes([value[0], value[1], value[2], value[3]]);
    let header =
        header_with_length(msg.raw, value_start + 4 - HEADER_LEN).ok_or(StunError::BadLength)?;
    let mut crc = crc32fast::Hasher::new();
    crc.update(&header);
    crc.update(
        msg.raw
            .get(HEADER_LEN..offset)
            .ok_or(StunError::BadAttribute)?,
    );
    if crc.finalize() ^ FINGERPRINT_XOR == expected {
        Ok(())
    } else {
        Err(StunError::BadFingerprint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_type_interleaving_matches_rfc_values() {
        // RFC 8489 §5/§6: Binding request 0x0001, success 0x0101, error 0x0111, indication 0x0011.
        for (class, expected) in [
            (Class::Request, 0x0001),
            (Class::Indication, 0x0011),
            (Class::SuccessResponse, 0x0101),
            (Class::ErrorResponse, 0x0111),
        ] {
            assert_eq!(message_type(class, METHOD_BINDING), expected);
            assert_eq!(split_message_type(expected), (class, METHOD_BINDING));
        }
        // A method with bits in every segment survives the round trip.
        for method in [0x000, 0x0FFF, 0x0ABC, 0x0123] {
            for class in [
                Class::Request,
                Class::Indication,
                Class::SuccessResponse,
                Class::ErrorResponse,
            ] {
                assert_eq!(
                    split_message_type(message_type(class, method)),
                    (class, method)
                );
            }
        }
    }

    #[test]
    fn is_stun_follows_rfc7983_ranges() {
        let mut header = [0u8; 20];
        header[4..8].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
        assert!(is_stun(&header));
        header[0] = 3;
        assert!(is_stun(&header));
        header[0] = 4; // ZRTP range starts here
        assert!(!is_stun(&header));
        header[0] = 0x80; // RTP
        assert!(!is_stun(&header));
        header[0] = 0;
        assert!(!is_stun(&header[..19]));
        header[7] ^= 1;
        assert!(!is_stun(&header));
        assert!(!is_stun(&[]));
    }

    #[test]
    fn parse_rejects_structural_errors() {
        let mut header = [0u8; 20];
        header[1] = 1;
        header[4..8].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
        assert!(parse(&header).is_ok());
        assert_eq!(parse(&header[..19]), Err(StunError::TooShort));
        let mut bad = header;
        bad[0] = 0x40;
        assert_eq!(parse(&bad), Err(StunError::NotStun));
        let mut bad = header.to_vec();
        bad[3] = 4;
        assert_eq!(
            parse(&bad),
            Err(StunError::BadLength),
            "length past the datagram"
        );
        bad.extend_from_slice(&[0x80, 0x22, 0x00, 0x05]);
        assert_eq!(
            parse(&bad),
            Err(StunError::BadAttribute),
            "value past the body"
        );
        let mut odd = header.to_vec();
        odd[3] = 2;
        odd.extend_from_slice(&[0, 0]);
        assert_eq!(
            parse(&odd),
            Err(StunError::BadLength),
            "length not a multiple of 4"
        );
    }
}

/// The ufrag a connectivity check is addressed to: the first half of its USERNAME
/// (RFC 8445 §7.2.2: "RFRAG:LFRAG", the recipient's fragment first). This is how several
/// ICE agents share one socket: checks are routed by it before anyone knows the sender's
/// address. `None` for anything that is not a STUN message with a well-formed USERNAME.
/// Nothing is verified here: the agent the check is routed to checks its integrity.
pub fn recipient_ufrag(buf: &[u8]) -> Option<&str> {
    let msg = parse(buf).ok()?;
    let username = std::str::from_utf8(msg.attribute(attr::USERNAME)?).ok()?;
    let (recipient, _) = username.split_once(':')?;
    (!recipient.is_empty()).then_some(recipient)
}
