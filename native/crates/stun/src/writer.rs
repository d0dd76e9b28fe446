//! STUN message encoding into a caller-owned buffer (RFC 8489 §5, §14).
//!
//! The writer appends to a `Vec<u8>` the caller reuses, so answering a request
//! allocates nothing once the buffer has grown to a response's size.

use std::net::{IpAddr, SocketAddr};

use hmac::Mac;

use crate::message::{
    attr, message_type, padded_len, Class, HmacSha1, ATTR_HEADER_LEN, FINGERPRINT_XOR, HEADER_LEN,
    MAGIC_COOKIE, MESSAGE_INTEGRITY_LEN,
};
use crate::StunError;

/// Builds one STUN message in `out` (which it clears first).
///
/// Attributes are appended in call order; `message_integrity` and
/// `fingerprint` must come last (in that order), as RFC 8489 §14.5/§14.7 require.
pub struct MessageWriter<'o> {
    out: &'o mut Vec<u8>,
}

impl<'o> MessageWriter<'o> {
    /// RFC 8489 §5: writes the 20-byte header with a zero length.
    pub fn new(out: &'o mut Vec<u8>, class: Class, method: u16, transaction_id: &[u8; 12]) -> Self {
        out.clear();
        out.extend_from_slice(&message_type(class, method).to_be_bytes());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        out.extend_from_slice(transaction_id);
        MessageWriter { out }
    }

    /// The bytes written so far (the header length is kept current).
    pub fn bytes(&self) -> &[u8] {
        self.out
    }

    /// Mutable access to the bytes written so far, e.g. to reproduce a peer's
    /// non-zero padding in a test vector.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        self.out
    }

    /// Rewrites the header's length field to `body_len`.
    fn set_body_len(&mut self, body_len: usize) -> Result<(), StunError> {
        let len = u16::try_from(body_len).map_err(|_| StunError::TooLong)?;
        let field = self.out.get_mut(2..4).ok_or(StunError::TooShort)?;
        field.copy_from_slice(&len.to_be_bytes());
        Ok(())
    }

    fn body_len(&self) -> usize {
        self.out.len().saturating_sub(HEADER_LEN)
    }

    /// RFC 8489 §14: appends one TLV, zero-padded to 4 bytes.
    pub fn attribute(&mut self, attr_type: u16, value: &[u8]) -> Result<(), StunError> {
        self.append_tlv(attr_type, value.len(), |out| out.extend_from_slice(value))
    }

    /// Appends a TLV whose `value_len`-byte value is all zeros, to be filled in
    /// place through [`Self::bytes_mut`] (the value starts 4 bytes after the
    /// length `bytes()` had before the call).
    pub fn attribute_zeroed(&mut self, attr_type: u16, value_len: usize) -> Result<(), StunError> {
        self.append_tlv(attr_type, value_len, |out| {
            out.resize(out.len() + value_len, 0)
        })
    }

    fn append_tlv(
        &mut self,
        attr_type: u16,
        value_len: usize,
        write_value: impl FnOnce(&mut Vec<u8>),
    ) -> Result<(), StunError> {
        let len_field = u16::try_from(value_len).map_err(|_| StunError::TooLong)?;
        let padded = padded_len(value_len);
        let new_body_len = self.body_len() + ATTR_HEADER_LEN + padded;
        // Check before writing so a failed call leaves the message unchanged.
        u16::try_from(new_body_len).map_err(|_| StunError::TooLong)?;
        self.out.extend_from_slice(&attr_type.to_be_bytes());
        self.out.extend_from_slice(&len_field.to_be_bytes());
        write_value(self.out);
        self.out.extend_from_slice(&[0u8; 3][..padded - value_len]);
        self.set_body_len(new_body_len)
    }

    /// RFC 8489 §14.2: XOR-MAPPED-ADDRESS (or any XOR'd address attribute).
    /// An IPv4-mapped IPv6 address (what a dual-stack socket reports for an IPv4
    /// peer) is written as the IPv4 address the peer actually sent from.
    pub fn xor_address(
        &mut self,
        attr_type: u16,
        address: SocketAddr,
        transaction_id: &[u8; 12],
    ) -> Result<(), StunError> {
        let cookie = MAGIC_COOKIE.to_be_bytes();
        let port = address.port() ^ (MAGIC_COOKIE >> 16) as u16;
        let ip = match address.ip() {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(v6),
            },
            v4 => v4,
        };
        match ip {
            IpAddr::V4(v4) => {
                let mut value = [0u8; 8];
                value[1] = 0x01;
                value[2..4].copy_from_slice(&port.to_be_bytes());
                for ((v, o), c) in value[4..].iter_mut().zip(v4.octets()).zip(cookie) {
                    *v = o ^ c;
                }
                self.attribute(attr_type, &value)
            }
            IpAddr::V6(v6) => {
                let mut value = [0u8; 20];
                value[1] = 0x02;
                value[2..4].copy_from_slice(&port.to_be_bytes());
                let mask = cookie.iter().chain(transaction_id.iter());
                for ((v, o), m) in value[4..].iter_mut().zip(v6.octets()).zip(mask) {
                    *v = o ^ m;
                }
                self.attribute(attr_type, &value)
            }
        }
    }

    /// RFC 8489 §14.8: ERROR-CODE with class = code / 100, number = code % 100.
    pub fn error_code(&mut self, code: u16, reason: &str) -> Result<(), StunError> {
        // The reason phrase is short and static in this crate; 128 chars is the RFC's limit.
        let reason = reason.as_bytes();
        let reason = reason.get(..reason.len().min(128)).unwrap_or_default();
        let mut value = [0u8; 4 + 128];
        value[2] = ((code / 100) & 0x07) as u8;
        value[3] = (code % 100) as u8;
        value[4..4 + reason.len()].copy_from_slice(reason);
        self.attribute(attr::ERROR_CODE, &value[..4 + reason.len()])
    }

    /// RFC 8489 §14.5: MESSAGE-INTEGRITY with the given key.
    pub fn message_integrity(&mut self, key: &[u8]) -> Result<(), StunError> {
        let mac = HmacSha1::new_from_slice(key).map_err(|_| StunError::BadIntegrity)?;
        self.message_integrity_with(mac)
    }

    /// As [`Self::message_integrity`], with an HMAC already keyed.
    pub(crate) fn message_integrity_with(&mut self, mut mac: HmacSha1) -> Result<(), StunError> {
        // The length field counts through MESSAGE-INTEGRITY while hashing.
        self.set_body_len(self.body_len() + ATTR_HEADER_LEN + MESSAGE_INTEGRITY_LEN)?;
        mac.update(self.out);
        let tag = mac.finalize().into_bytes();
        self.attribute(attr::MESSAGE_INTEGRITY, &tag)
    }

    /// RFC 8489 §14.7: FINGERPRINT, CRC-32 of everything before it XOR 0x5354554E.
    pub fn fingerprint(&mut self) -> Result<(), StunError> {
        self.set_body_len(self.body_len() + ATTR_HEADER_LEN + 4)?;
        let crc = crc32fast::hash(self.out) ^ FINGERPRINT_XOR;
        self.attribute(attr::FINGERPRINT, &crc.to_be_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{check_fingerprint, check_message_integrity, parse, METHOD_BINDING};

    /// A Binding success response with `mapped` as its XOR-MAPPED-ADDRESS, open for more.
    fn success_with_address<'o>(
        out: &'o mut Vec<u8>,
        txid: &[u8; 12],
        mapped: &str,
    ) -> MessageWriter<'o> {
        let mut w = MessageWriter::new(out, Class::SuccessResponse, METHOD_BINDING, txid);
        w.xor_address(attr::XOR_MAPPED_ADDRESS, mapped.parse().unwrap(), txid)
            .unwrap();
        w
    }

    #[test]
    fn written_message_parses_and_checks() {
        let mut out = Vec::new();
        let mut w = success_with_address(&mut out, &[9u8; 12], "[2001:db8::7]:5000");
        w.attribute(attr::SOFTWARE, b"odd").unwrap();
        w.message_integrity(b"key").unwrap();
        w.fingerprint().unwrap();
        let msg = parse(&out).unwrap();
        assert_eq!(msg.class, Class::SuccessResponse);
        assert_eq!(
            msg.xor_mapped_address().unwrap(),
            "[2001:db8::7]:5000".parse().unwrap()
        );
        assert_eq!(msg.attribute(attr::SOFTWARE), Some(&b"odd"[..]));
        check_message_integrity(&msg, b"key").unwrap();
        assert_eq!(
            check_message_integrity(&msg, b"other"),
            Err(StunError::BadIntegrity)
        );
        check_fingerprint(&msg).unwrap();
    }

    #[test]
    fn ipv4_mapped_peer_is_reported_as_ipv4() {
        let mut out = Vec::new();
        success_with_address(&mut out, &[1u8; 12], "[::ffff:192.0.2.9]:1234");
        let msg = parse(&out).unwrap();
        assert_eq!(
            msg.xor_mapped_address().unwrap(),
            "192.0.2.9:1234".parse().unwrap()
        );
    }

    #[test]
    fn oversized_attribute_is_refused_without_changing_the_message() {
        let mut out = Vec::new();
        let mut w = MessageWriter::new(&mut out, Class::Request, METHOD_BINDING, &[0; 12]);
        let huge = vec![0u8; 70_000];
        assert_eq!(w.attribute(attr::SOFTWARE, &huge), Err(StunError::TooLong));
        let near_limit = vec![0u8; 65_000];
        w.attribute(attr::SOFTWARE, &near_limit).unwrap();
        assert_eq!(
            w.attribute(attr::SOFTWARE, &near_limit),
            Err(StunError::TooLong)
        );
        assert_eq!(out.len(), HEADER_LEN + 4 + 65_000);
        assert!(parse(&out).is_ok());
    }
}
