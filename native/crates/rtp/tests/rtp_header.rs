//! RTP header parsing and rewriting against hand-built packets (RFC 3550
//! §5.1 layout, RFC 8285 extension forms, RFC 6464 audio level).

use ferry_rtp::rtp::*;

/// V=2, M=1, PT=111, seq 0x1234, ts 0xDEADBEEF, SSRC 0x01020304, payload AA BB.
const PLAIN: [u8; 14] = [0x80, 0xEF, 0x12, 0x34, 0xDE, 0xAD, 0xBE, 0xEF, 0x01, 0x02, 0x03, 0x04, 0xAA, 0xBB];

/// One-byte (0xBEDE) extension, 2 words: id 1 (1 byte, audio level voice
/// 5 dBov), a padding octet, id 3 (3 bytes), a padding octet.
fn one_byte_ext_packet() -> Vec<u8> {
    let mut packet = vec![0x90, 0x60, 0x00, 0x01, 0, 0, 0, 100, 0, 0, 0, 7];
    packet.extend_from_slice(&[0xBE, 0xDE, 0x00, 0x02]);
    packet.extend_from_slice(&[0x10, 0x85, 0x00, 0x32, 0x01, 0x02, 0x03, 0x00]);
    packet.extend_from_slice(&[0x55; 4]);
    packet
}

/// Two-byte (0x1000) extension, 3 words: id 1 (1 byte), id 200 (0 bytes),
/// id 5 (2 bytes), 3 padding octets.
fn two_byte_ext_packet() -> Vec<u8> {
    let mut packet = vec![0x90, 0x60, 0x00, 0x01, 0, 0, 0, 100, 0, 0, 0, 7];
    packet.extend_from_slice(&[0x10, 0x00, 0x00, 0x03]);
    packet.extend_from_slice(&[0x01, 0x01, 0x7F, 0xC8, 0x00, 0x05, 0x02, 0x09, 0x09, 0x00, 0x00, 0x00]);
    packet.extend_from_slice(&[0x66; 3]);
    packet
}

/// A packet and its parsed header.
fn parsed(packet: Vec<u8>) -> (Vec<u8>, RtpHeader) {
    let hdr = parse_rtp(&packet).unwrap();
    (packet, hdr)
}

/// The (id, data) elements of the packet's extension block, in order.
fn elements(packet: &[u8], hdr: &RtpHeader) -> Vec<(u8, Vec<u8>)> {
    extension_elements(packet, hdr).map(|(id, d)| (id, d.to_vec())).collect()
}

fn ids(packet: &[u8], hdr: &RtpHeader) -> Vec<u8> {
    extension_elements(packet, hdr).map(|(id, _)| id).collect()
}

/// The ids the walk finds in a one-word one-byte (0xBEDE) extension block holding `block`.
fn ids_in_one_byte_block(block: [u8; 4]) -> Vec<u8> {
    let mut packet = vec![0x90, 0x60, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0xBE, 0xDE, 0x00, 0x01];
    packet.extend_from_slice(&block);
    ids(&packet, &parse_rtp(&packet).unwrap())
}

/// An extension id map (RFC 8285 remapping) sending each (from, to); 0 elsewhere keeps an id.
fn id_map(moves: &[(usize, u8)]) -> [u8; 256] {
    let mut map = [0u8; 256];
    for &(from, to) in moves {
        map[from] = to;
    }
    map
}

#[test]
fn parses_fixed_header() {
    let hdr = parse_rtp(&PLAIN).unwrap();
    assert_eq!(
        hdr,
        RtpHeader {
            marker: true,
            payload_type: 111,
            sequence: 0x1234,
            timestamp: 0xDEAD_BEEF,
            ssrc: 0x0102_0304,
            csrc_count: 0,
            extension: None,
            header_len: 12,
            padding_len: 0,
        }
    );
    assert_eq!(hdr.payload(&PLAIN), Some(&[0xAA, 0xBB][..]));
}

#[test]
fn parses_header_only_packet() {
    let hdr = parse_rtp(&PLAIN[..12]).unwrap();
    assert_eq!(hdr.header_len, 12);
    assert_eq!(hdr.payload(&PLAIN[..12]), Some(&[][..]));
}

#[test]
fn parses_csrcs() {
    let mut packet = vec![0x82, 0x00, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3];
    packet.extend_from_slice(&[0x11, 0x11, 0x11, 0x11, 0x22, 0x22, 0x22, 0x22, 0xEE]);
    let hdr = parse_rtp(&packet).unwrap();
    assert_eq!(hdr.csrc_count, 2);
    assert_eq!(hdr.header_len, 20);
    assert!(!hdr.marker);
    assert_eq!(hdr.csrc(&packet, 0), Some(0x1111_1111));
    assert_eq!(hdr.csrc(&packet, 1), Some(0x2222_2222));
    assert_eq!(hdr.csrc(&packet, 2), None);
    assert_eq!(hdr.payload(&packet), Some(&[0xEE][..]));
    // One CSRC short.
    assert_eq!(parse_rtp(&packet[..19]), Err(RtpError::BadCsrc));
    // CC = 15 in a bare fixed header.
    let mut bare = PLAIN[..12].to_vec();
    bare[0] = 0x8F;
    assert_eq!(parse_rtp(&bare), Err(RtpError::BadCsrc));
}

#[test]
fn parses_one_byte_extensions() {
    let (packet, hdr) = parsed(one_byte_ext_packet());
    assert_eq!(hdr.extension, Some(ExtensionBlock { profile: 0xBEDE, offset: 16, len: 8 }));
    assert_eq!(hdr.header_len, 24);
    assert_eq!(hdr.payload(&packet), Some(&[0x55; 4][..]));
    assert_eq!(elements(&packet, &hdr), vec![(1, vec![0x85]), (3, vec![1, 2, 3])]);
    assert_eq!(find_extension(&packet, &hdr, 3), Some(&[1, 2, 3][..]));
    assert_eq!(find_extension(&packet, &hdr, 2), None);
    assert_eq!(audio_level(&packet, &hdr, 1), Some((true, 5)));
    assert_eq!(audio_level(&packet, &hdr, 4), None);
}

#[test]
fn parses_two_byte_extensions() {
    let (packet, hdr) = parsed(two_byte_ext_packet());
    assert_eq!(hdr.extension, Some(ExtensionBlock { profile: 0x1000, offset: 16, len: 12 }));
    assert_eq!(hdr.header_len, 28);
    assert_eq!(elements(&packet, &hdr), vec![(1, vec![0x7F]), (200, vec![]), (5, vec![9, 9])]);
    assert_eq!(audio_level(&packet, &hdr, 1), Some((false, 127)));
    // The appbits nibble does not change the form.
    let mut with_appbits = packet.clone();
    with_appbits[13] = 0x0A;
    let hdr = parse_rtp(&with_appbits).unwrap();
    assert_eq!(extension_elements(&with_appbits, &hdr).count(), 3);
}

#[test]
fn one_byte_id_15_stops_the_walk() {
    assert_eq!(ids_in_one_byte_block([0x10, 0xAA, 0xF0, 0x20]), vec![1]);
}

#[test]
fn truncated_element_ends_the_walk() {
    // id 2 claims 4 bytes, only 2 remain in the block.
    assert_eq!(ids_in_one_byte_block([0x10, 0xAA, 0x23, 0x01]), vec![1]);
}

#[test]
fn other_profiles_are_opaque() {
    let mut packet = vec![0x90, 0x60, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0x12, 0x34, 0x00, 0x01, 0x10, 0xAA, 0, 0];
    let hdr = parse_rtp(&packet).unwrap();
    assert_eq!(hdr.extension, Some(ExtensionBlock { profile: 0x1234, offset: 16, len: 4 }));
    assert_eq!(extension_elements(&packet, &hdr).count(), 0);
    let map = id_map(&[(1, 9)]);
    let before = packet.clone();
    assert_eq!(remap_extension_ids(&mut packet, &hdr, &map), Ok(()));
    assert_eq!(packet, before);
}

#[test]
fn extension_errors() {
    // X set, no room for the extension header.
    let mut packet = PLAIN[..12].to_vec();
    packet[0] = 0x90;
    assert_eq!(parse_rtp(&packet), Err(RtpError::BadExtension));
    // Length field says 2 words, 1 present.
    packet.extend_from_slice(&[0xBE, 0xDE, 0x00, 0x02, 0x10, 0, 0, 0]);
    assert_eq!(parse_rtp(&packet), Err(RtpError::BadExtension));
    packet.extend_from_slice(&[0, 0, 0, 0]);
    assert!(parse_rtp(&packet).is_ok());
}

#[test]
fn padding() {
    let packet = [0xA0, 0x60, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 2, 3, 0, 0, 3];
    let hdr = parse_rtp(&packet).unwrap();
    assert_eq!(hdr.padding_len, 3);
    assert_eq!(hdr.payload(&packet), Some(&[1, 2, 3][..]));

    // All of the payload is padding: allowed.
    let all_padding = [0xA0, 0x60, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 4];
    let hdr = parse_rtp(&all_padding).unwrap();
    assert_eq!(hdr.payload(&all_padding), Some(&[][..]));

    let mut zero_count = packet;
    zero_count[17] = 0;
    assert_eq!(parse_rtp(&zero_count), Err(RtpError::BadPadding));
    let mut too_long = packet;
    too_long[17] = 7;
    assert_eq!(parse_rtp(&too_long), Err(RtpError::BadPadding));
    // Padding bit on a bare header: the count byte would be header.
    let mut bare = PLAIN[..12].to_vec();
    bare[0] = 0xA0;
    bare[11] = 1;
    assert_eq!(parse_rtp(&bare), Err(RtpError::BadPadding));
}

#[test]
fn padding_after_extension_and_csrc() {
    let mut packet = vec![0xB1, 0x60, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 9, 9, 9, 9];
    packet.extend_from_slice(&[0xBE, 0xDE, 0x00, 0x01, 0x10, 0x01, 0x00, 0x00]);
    packet.extend_from_slice(&[0x77, 0x00, 0x02]);
    let hdr = parse_rtp(&packet).unwrap();
    assert_eq!(hdr.header_len, 24);
    assert_eq!(hdr.padding_len, 2);
    assert_eq!(hdr.payload(&packet), Some(&[0x77][..]));
}

#[test]
fn short_and_bad_version() {
    assert_eq!(parse_rtp(&[]), Err(RtpError::TooShort));
    assert_eq!(parse_rtp(&PLAIN[..11]), Err(RtpError::TooShort));
    let mut v1 = PLAIN;
    v1[0] = 0x40;
    assert_eq!(parse_rtp(&v1), Err(RtpError::BadVersion));
    v1[0] = 0xC0;
    assert_eq!(parse_rtp(&v1), Err(RtpError::BadVersion));
}

#[test]
fn setters_rewrite_in_place() {
    let mut packet = PLAIN;
    set_ssrc(&mut packet, 0xCAFE_BABE);
    set_sequence(&mut packet, 0xFFFF);
    set_timestamp(&mut packet, 7);
    set_payload_type(&mut packet, 96);
    assert_eq!(packet, [0x80, 0xE0, 0xFF, 0xFF, 0, 0, 0, 7, 0xCA, 0xFE, 0xBA, 0xBE, 0xAA, 0xBB]);
    let hdr = parse_rtp(&packet).unwrap();
    assert!(hdr.marker, "payload type change keeps the marker");
    set_marker(&mut packet, false);
    assert_eq!(packet[1], 0x60);
    set_payload_type(&mut packet, 0xFF);
    assert_eq!(packet[1], 0x7F, "only 7 bits of payload type, marker stays clear");
    set_marker(&mut packet, true);
    assert_eq!(packet[1], 0xFF);
}

#[test]
fn setters_ignore_short_buffers() {
    let mut short = [0x80u8, 0x60, 1, 2, 3];
    let before = short;
    set_ssrc(&mut short, 1);
    set_sequence(&mut short, 1);
    set_timestamp(&mut short, 1);
    set_payload_type(&mut short, 1);
    set_marker(&mut short, true);
    assert_eq!(short, before);
    set_ssrc(&mut [], 1);
}

#[test]
fn remap_one_byte_ids() {
    let (mut packet, hdr) = parsed(one_byte_ext_packet());
    let map = id_map(&[(1, 14), (3, 2)]);
    remap_extension_ids(&mut packet, &hdr, &map).unwrap();
    // Ids moved, lengths and data kept, padding untouched.
    assert_eq!(&packet[16..24], &[0xE0, 0x85, 0x00, 0x22, 0x01, 0x02, 0x03, 0x00]);
    assert_eq!(audio_level(&packet, &hdr, 14), Some((true, 5)));
    assert_eq!(find_extension(&packet, &hdr, 2), Some(&[1, 2, 3][..]));
}

#[test]
fn remap_zero_leaves_id_unchanged() {
    let (mut packet, hdr) = parsed(one_byte_ext_packet());
    remap_extension_ids(&mut packet, &hdr, &id_map(&[(3, 4)])).unwrap();
    assert_eq!(ids(&packet, &hdr), vec![1, 4]);
}

#[test]
fn remap_one_byte_rejects_ids_above_14_atomically() {
    let (mut packet, hdr) = parsed(one_byte_ext_packet());
    let before = packet.clone();
    // 1 → 2 is valid, but must not be written since id 3's fails.
    let map = id_map(&[(1, 2), (3, 15)]);
    assert_eq!(remap_extension_ids(&mut packet, &hdr, &map), Err(RtpError::BadExtension));
    assert_eq!(packet, before);
}

#[test]
fn remap_two_byte_ids() {
    let (mut packet, hdr) = parsed(two_byte_ext_packet());
    remap_extension_ids(&mut packet, &hdr, &id_map(&[(1, 100), (200, 3)])).unwrap();
    assert_eq!(&packet[16..28], &[100, 0x01, 0x7F, 3, 0x00, 0x05, 0x02, 0x09, 0x09, 0, 0, 0]);
}

#[test]
fn remap_with_mismatched_header_is_an_error() {
    let (packet, hdr) = parsed(one_byte_ext_packet());
    let mut short = packet[..20].to_vec();
    assert_eq!(remap_extension_ids(&mut short, &hdr, &[0; 256]), Err(RtpError::BadExtension));
    assert_eq!(extension_elements(&short, &hdr).count(), 0);
}

#[test]
fn find_extension_mut_rewrites_data() {
    let (mut packet, hdr) = parsed(two_byte_ext_packet());
    find_extension_mut(&mut packet, &hdr, 5).unwrap().copy_from_slice(&[0xAB, 0xCD]);
    assert_eq!(find_extension(&packet, &hdr, 5), Some(&[0xAB, 0xCD][..]));
    assert!(find_extension_mut(&mut packet, &hdr, 6).is_none());
}

#[test]
fn rtcp_demux() {
    // RFC 5761 §4: second octet 192..=223 is RTCP.
    assert!(is_rtcp(&[0x80, 200, 0, 6]));
    assert!(is_rtcp(&[0x81, 206]));
    assert!(is_rtcp(&[0x80, 192]));
    assert!(is_rtcp(&[0x80, 223]));
    assert!(!is_rtcp(&[0x80, 191]));
    assert!(!is_rtcp(&[0x80, 224]));
    assert!(!is_rtcp(&PLAIN), "PT 111 with marker is 0xEF = 239");
    assert!(!is_rtcp(&[0x80, 0x60]));
    assert!(!is_rtcp(&[0x80]));
    assert!(!is_rtcp(&[]));
}
