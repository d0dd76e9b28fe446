//! The transport-wide sequence number on what ferry sends
//! (draft-holmer-rmcat-transport-wide-cc-extensions-01 §2): one counter per transport, in an
//! RFC 8285 header extension element, so the receiver's transport-cc feedback names each packet.
//!
//! A forwarded packet keeps none of its publisher's extension elements: their ids were
//! negotiated with the publisher, not with the receiver, which would misread them. The copy
//! gets a header of its own (fixed header, CSRCs, one element) and the original payload.

use crate::rtp::RtpHeader;

/// The X bit of the first header octet (RFC 3550 §5.1).
const EXTENSION_BIT: u8 = 0x10;
/// Highest id the one-byte form can carry (RFC 8285 §4.2; 15 is reserved).
const ONE_BYTE_MAX_ID: u8 = 14;
/// Bytes the extension adds: the 4-byte block header and one 32-bit word of element.
pub const EXTENSION_BYTES: usize = 8;

/// Copies the RTP packet `plain` into `dst` with its header extension replaced by the single
/// element `id` = `seq` (see [`write_header`]). Returns the copy's length and header length, or
/// `None` when `id` is 0, `dst` is too small, or `hdr` does not describe `plain`.
pub fn write_with_transport_sequence(dst: &mut [u8], plain: &[u8], hdr: &RtpHeader, id: u8, seq: u16) -> Option<(usize, usize)> {
    let payload = plain.get(hdr.header_len..)?;
    let header_len = write_header(dst, plain, hdr, id, seq)?;
    let len = header_len + payload.len();
    dst.get_mut(header_len..len)?.copy_from_slice(payload);
    Some((len, header_len))
}

/// Writes into `dst` the header of `plain` (fixed header and CSRCs) with one extension element,
/// `id` = `seq`, in place of the original extension block: the one-byte form for ids 1..=14
/// (RFC 8285 §4.2), else the two-byte form (§4.3). Returns the header's length; the payload
/// goes after it. `None` when `id` is 0, `dst` is too small or `plain` shorter than `hdr` says.
pub fn write_header(dst: &mut [u8], plain: &[u8], hdr: &RtpHeader, id: u8, seq: u16) -> Option<usize> {
    if id == 0 || plain.len() < hdr.header_len {
        return None;
    }
    let fixed = 12 + 4 * usize::from(hdr.csrc_count);
    let header_len = fixed + EXTENSION_BYTES;
    let out = dst.get_mut(..header_len)?;
    out[..fixed].copy_from_slice(plain.get(..fixed)?);
    out[0] |= EXTENSION_BIT;
    let [hi, lo] = seq.to_be_bytes();
    let block: [u8; EXTENSION_BYTES] = if id <= ONE_BYTE_MAX_ID {
        // 0xBEDE, one word; element: id, length − 1 = 1; two bytes of data; one byte padding.
        [0xBE, 0xDE, 0, 1, (id << 4) | 1, hi, lo, 0]
    } else {
        // 0x1000 (appbits 0), one word; element: id, length 2, data.
        [0x10, 0x00, 0, 1, id, 2, hi, lo]
    };
    out[fixed..].copy_from_slice(&block);
    Some(header_len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::{find_extension, parse_rtp};

    fn packet(csrcs: u8, ext: Option<&[u8]>, payload: &[u8], padding: u8) -> Vec<u8> {
        let mut p = vec![0x80 | csrcs, 96, 0x12, 0x34, 0, 0, 0, 9, 0xaa, 0xbb, 0xcc, 0xdd];
        for i in 0..csrcs {
            p.extend_from_slice(&[0, 0, 0, i + 1]);
        }
        if let Some(ext) = ext {
            p[0] |= 0x10;
            p.extend_from_slice(&[0xBE, 0xDE, 0, (ext.len() / 4) as u8]);
            p.extend_from_slice(ext);
        }
        p.extend_from_slice(payload);
        if padding > 0 {
            p[0] |= 0x20;
            p.extend(std::iter::repeat_n(0, usize::from(padding) - 1));
            p.push(padding);
        }
        p
    }

    #[test]
    fn replaces_the_publishers_elements_with_the_sequence_number() {
        // The publisher's audio level (id 1) and its own transport sequence (id 5).
        let plain = packet(2, Some(&[0x10, 0x7f, 0x51, 0x00, 0x07, 0, 0, 0]), b"payload", 0);
        let hdr = parse_rtp(&plain).unwrap();
        let mut dst = [0u8; 1500];
        let (len, header_len) = write_with_transport_sequence(&mut dst, &plain, &hdr, 3, 0xabcd).unwrap();
        let out = parse_rtp(&dst[..len]).unwrap();
        assert_eq!(out.header_len, header_len);
        assert_eq!(out.csrc(&dst[..len], 1), Some(2));
        assert_eq!(out.payload(&dst[..len]), Some(&b"payload"[..]));
        assert_eq!(find_extension(&dst[..len], &out, 3), Some(&[0xab, 0xcd][..]));
        assert_eq!(find_extension(&dst[..len], &out, 1), None, "the publisher's ids are not carried");
        assert_eq!((out.sequence, out.timestamp, out.ssrc), (hdr.sequence, hdr.timestamp, hdr.ssrc));
    }

    #[test]
    fn adds_an_extension_to_a_packet_without_one_and_keeps_its_padding() {
        let plain = packet(0, None, b"abc", 4);
        let hdr = parse_rtp(&plain).unwrap();
        let mut dst = [0u8; 100];
        let (len, _) = write_with_transport_sequence(&mut dst, &plain, &hdr, 14, 7).unwrap();
        let out = parse_rtp(&dst[..len]).unwrap();
        assert_eq!(out.padding_len, 4);
        assert_eq!(out.payload(&dst[..len]), Some(&b"abc"[..]));
        assert_eq!(find_extension(&dst[..len], &out, 14), Some(&[0, 7][..]));
    }

    #[test]
    fn uses_the_two_byte_form_for_ids_above_fourteen() {
        let plain = packet(0, None, b"x", 0);
        let hdr = parse_rtp(&plain).unwrap();
        let mut dst = [0u8; 100];
        let (len, _) = write_with_transport_sequence(&mut dst, &plain, &hdr, 200, 0x0102).unwrap();
        let out = parse_rtp(&dst[..len]).unwrap();
        assert_eq!(find_extension(&dst[..len], &out, 200), Some(&[1, 2][..]));
    }

    #[test]
    fn refuses_a_destination_too_small_or_id_zero() {
        let plain = packet(1, None, &[1; 40], 0);
        let hdr = parse_rtp(&plain).unwrap();
        let mut small = [0u8; 50];
        assert_eq!(write_with_transport_sequence(&mut small, &plain, &hdr, 3, 1), None);
        let mut dst = [0u8; 100];
        assert_eq!(write_with_transport_sequence(&mut dst, &plain, &hdr, 0, 1), None);
        // A header that does not describe the buffer.
        let wrong = RtpHeader { header_len: 500, ..hdr };
        assert_eq!(write_with_transport_sequence(&mut dst, &plain, &wrong, 3, 1), None);
    }
}
