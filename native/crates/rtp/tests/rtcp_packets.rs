//! RTCP builders checked byte for byte against packets laid out by hand from
//! the RFC diagrams, parsed back, and the validator and iterator run over
//! every packet type. The reports, SDES, BYE and FIR ferry never sends are
//! written by ferry-testkit.

use ferry_rtp::rtcp::*;
use ferry_testkit::rtcp::{build_bye, build_fir, build_receiver_report, build_sdes_cname, build_sender_report};

fn words(hex: &str) -> Vec<u8> {
    let digits: Vec<u8> = hex.bytes().filter(|b| b.is_ascii_hexdigit()).collect();
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
        .collect()
}

fn block() -> ReportBlock {
    ReportBlock {
        ssrc: 0x0A0B_0C0D,
        fraction_lost: 0x40,
        cumulative_lost: -2,
        highest_seq: 0x0001_0005,
        jitter: 0x20,
        lsr: 0x1122_3344,
        dlsr: 0x0001_0000,
    }
}

const BLOCK_HEX: &str = "0A0B0C0D 40FFFFFE 00010005 00000020 11223344 00010000";

// ---- builders, byte-exact (RFC layouts) and parsed back ----

#[test]
fn pli_layout() {
    // RFC 4585 §6.1 header with FMT 1, PT 206, length 2; §6.3.1 no FCI.
    let packet = build_pli(0x1122_3344, 0x5566_7788);
    assert_eq!(packet.to_vec(), words("81CE0002 11223344 55667788"));
    assert_eq!(parse_feedback(&packet), Ok(vec![Feedback::Pli { sender_ssrc: 0x1122_3344, media_ssrc: 0x5566_7788 }]));
}

#[test]
fn fir_layout() {
    // RFC 5104 §4.3.1: media SSRC 0, FCI = SSRC, seq nr, 3 reserved octets.
    let packet = build_fir(1, 0xAABB_CCDD, 7);
    assert_eq!(packet.to_vec(), words("84CE0004 00000001 00000000 AABBCCDD 07000000"));
    assert_eq!(parse_feedback(&packet), Ok(vec![Feedback::Fir { sender_ssrc: 1, media_ssrc: 0xAABB_CCDD, seq_nr: 7 }]));
}

#[test]
fn fir_with_two_entries_parses_both() {
    let packet = words("84CE0006 00000001 00000000 00000010 01000000 00000020 02000000");
    assert_eq!(
        parse_feedback(&packet),
        Ok(vec![
            Feedback::Fir { sender_ssrc: 1, media_ssrc: 0x10, seq_nr: 1 },
            Feedback::Fir { sender_ssrc: 1, media_ssrc: 0x20, seq_nr: 2 },
        ])
    );
}

#[test]
fn nack_layout() {
    // RFC 4585 §6.2.1: PID 100 with BLP bits 0 (101), 2 (103), 15 (116);
    // 117 and 200 start new items.
    let lost = [100, 101, 103, 116, 117, 200];
    let packet = build_nack(1, 2, &lost);
    assert_eq!(packet, words("81CD0005 00000001 00000002 00648005 00750000 00C80000"));
    assert_eq!(parse_feedback(&packet), Ok(vec![Feedback::Nack { sender_ssrc: 1, media_ssrc: 2, lost: lost.to_vec() }]));
}

#[test]
fn nack_across_wrap_and_duplicates() {
    let packet = build_nack(1, 2, &[65535, 65535, 0, 1]);
    assert_eq!(packet, words("81CD0003 00000001 00000002 FFFF0003"));
    assert_eq!(
        parse_feedback(&packet),
        Ok(vec![Feedback::Nack { sender_ssrc: 1, media_ssrc: 2, lost: vec![65535, 0, 1] }])
    );
}

#[test]
fn nack_empty_and_many() {
    assert_eq!(build_nack(1, 2, &[]), words("81CD0002 00000001 00000002"));
    let lost: Vec<u16> = (0..3000u16).map(|i| i.wrapping_mul(3).wrapping_add(60000)).collect();
    let packet = build_nack(1, 2, &lost);
    validate_compound(&packet).unwrap();
    match parse_feedback(&packet).unwrap().as_slice() {
        [Feedback::Nack { lost: parsed, .. }] => assert_eq!(parsed, &lost),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn remb_layout() {
    // 1 000 000 = 250 000 × 2^2: exponent 2, mantissa 0x3D090.
    let packet = build_remb(1, 1_000_000, &[0x11, 0x22]);
    assert_eq!(packet, words("8FCE0006 00000001 00000000 52454D42 020BD090 00000011 00000022"));
    assert_eq!(
        parse_feedback(&packet),
        Ok(vec![Feedback::Remb { sender_ssrc: 1, bitrate_bps: 1_000_000, ssrcs: vec![0x11, 0x22] }])
    );
}

#[test]
fn remb_rounds_down_and_saturates() {
    let parse_rate = |packet: &[u8]| match parse_feedback(packet).unwrap().as_slice() {
        [Feedback::Remb { bitrate_bps, .. }] => *bitrate_bps,
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(parse_rate(&build_remb(1, 1_000_001, &[])), 1_000_000);
    assert_eq!(parse_rate(&build_remb(1, 262_143, &[])), 262_143, "fits the mantissa exactly");
    assert_eq!(parse_rate(&build_remb(1, 0, &[])), 0);
    // u64::MAX needs exponent 46: the mantissa keeps its top 18 bits.
    assert_eq!(parse_rate(&build_remb(1, u64::MAX, &[])), u64::MAX - ((1 << 46) - 1));
    // Exponent 63 with a full mantissa cannot fit u64: saturates.
    let packet = words("8FCE0004 00000001 00000000 52454D42 00FFFFFF");
    assert_eq!(parse_rate(&packet), u64::MAX);
}

#[test]
fn receiver_report_layout() {
    // RFC 3550 §6.4.2: RC 1, PT 201, length 7; cumulative lost −2 is 0xFFFFFE.
    let packet = build_receiver_report(1, &[block()]);
    assert_eq!(packet, words(&format!("81C90007 00000001 {BLOCK_HEX}")));
    assert_eq!(parse_feedback(&packet), Ok(vec![Feedback::ReceiverReport { sender_ssrc: 1, blocks: vec![block()] }]));
    assert_eq!(build_receiver_report(9, &[]), words("80C90001 00000009"));
}

#[test]
fn receiver_report_cumulative_lost_clamps_to_24_bits() {
    let mut high = block();
    high.cumulative_lost = 1 << 30;
    let mut low = block();
    low.cumulative_lost = -(1 << 30);
    let packet = build_receiver_report(1, &[high, low]);
    assert_eq!(&packet[12..16], &[0x40, 0x7F, 0xFF, 0xFF]);
    assert_eq!(&packet[36..40], &[0x40, 0x80, 0x00, 0x00]);
    match parse_feedback(&packet).unwrap().as_slice() {
        [Feedback::ReceiverReport { blocks, .. }] => {
            assert_eq!(blocks[0].cumulative_lost, (1 << 23) - 1);
            assert_eq!(blocks[1].cumulative_lost, -(1 << 23));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn more_than_31_blocks_spill_into_extra_reports() {
    let blocks: Vec<ReportBlock> = (0..40).map(|i| ReportBlock { ssrc: i, ..block() }).collect();
    let packet = build_receiver_report(5, &blocks);
    let refs: Vec<RtcpPacketRef> = packets(&packet).map(Result::unwrap).collect();
    assert_eq!(refs.len(), 2);
    assert_eq!((refs[0].packet_type, refs[0].count_or_fmt), (PT_RR, 31));
    assert_eq!((refs[1].packet_type, refs[1].count_or_fmt), (PT_RR, 9));
    let parsed: Vec<ReportBlock> = parse_feedback(&packet)
        .unwrap()
        .into_iter()
        .flat_map(|fb| match fb {
            Feedback::ReceiverReport { sender_ssrc: 5, blocks } => blocks,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(parsed, blocks);

    let sr = build_sender_report(5, 1, 2, 3, 4, &blocks);
    let refs: Vec<RtcpPacketRef> = packets(&sr).map(Result::unwrap).collect();
    assert_eq!(refs.iter().map(|r| (r.packet_type, r.count_or_fmt)).collect::<Vec<_>>(), vec![(PT_SR, 31), (PT_RR, 9)]);
}

#[test]
fn sender_report_layout() {
    // RFC 3550 §6.4.1: sender info = SSRC, NTP msw, NTP lsw, RTP ts, packets, octets.
    let packet = build_sender_report(0x0102_0304, 0xE123_4567_89AB_CDEF, 0x1000, 10, 1000, &[]);
    assert_eq!(packet, words("80C80006 01020304 E1234567 89ABCDEF 00001000 0000000A 000003E8"));
    assert_eq!(
        parse_feedback(&packet),
        Ok(vec![Feedback::SenderReport { ssrc: 0x0102_0304, ntp: 0xE123_4567_89AB_CDEF, rtp_ts: 0x1000, packets: 10, octets: 1000 }])
    );
    let with_block = build_sender_report(7, 0, 0, 0, 0, &[block()]);
    assert_eq!(with_block, words(&format!("81C8000C 00000007 00000000 00000000 00000000 00000000 00000000 {BLOCK_HEX}")));
    assert_eq!(
        parse_feedback(&with_block),
        Ok(vec![
            Feedback::SenderReport { ssrc: 7, ntp: 0, rtp_ts: 0, packets: 0, octets: 0 },
            Feedback::ReceiverReport { sender_ssrc: 7, blocks: vec![block()] },
        ])
    );
}

#[test]
fn sdes_cname_layout() {
    // RFC 3550 §6.5: SSRC, CNAME(1) len 3 "abc", null octets to 32 bits.
    let packet = build_sdes_cname(0x0102_0304, b"abc");
    assert_eq!(packet, words("81CA0003 01020304 01036162 63000000"));
    validate_compound(&packet).unwrap();
    // 6 characters: 4+2+6 = 12 needs a null octet, so a whole extra word.
    let packet = build_sdes_cname(1, b"abcdef");
    assert_eq!(packet, words("81CA0004 00000001 01066162 63646566 00000000"));
    validate_compound(&packet).unwrap();
    assert_eq!(build_sdes_cname(1, b""), words("81CA0002 00000001 01000000"));
    assert_eq!(parse_feedback(&packet), Ok(vec![]));
}

#[test]
fn bye_layout() {
    let packet = build_bye(&[1, 2]);
    assert_eq!(packet, words("82CB0002 00000001 00000002"));
    validate_compound(&packet).unwrap();
    assert_eq!(build_bye(&[]), words("80CB0000"));
}

// ---- iteration and validation ----

fn transport_cc() -> Vec<u8> {
    // base seq 1, status count 1, reference time 1, fb count 0, one
    // run-length chunk, one small delta, one padding octet.
    words("8FCD0005 00000001 00000002 00010001 00000100 20010400")
}

fn app() -> Vec<u8> {
    words("80CC0002 00000003") .into_iter().chain(b"name".iter().copied()).collect()
}

fn xr() -> Vec<u8> {
    words("80CF0001 00000004")
}

/// Every packet type in one compound, padding on the last packet.
fn everything_compound() -> Vec<u8> {
    let mut compound = build_sender_report(0x100, 1, 2, 3, 4, &[ReportBlock { ssrc: 0x200, ..block() }]);
    compound.extend(build_receiver_report(0x101, &[ReportBlock { ssrc: 0x201, ..block() }]));
    // Two SDES chunks: CNAME, then one with NAME + EMAIL items.
    compound.extend(words("82CA0006 00000102 01026869 00000000 00000103 02016103 02626300"));
    compound.extend(build_bye(&[0x104, 0x105]));
    compound.extend(app());
    compound.extend(xr());
    compound.extend(build_pli(0x106, 0x206));
    compound.extend(build_fir(0x107, 0x207, 1));
    compound.extend(build_nack(0x108, 0x208, &[5]));
    compound.extend(build_remb(0x109, 5000, &[0x209, 0x20A]));
    compound.extend(transport_cc());
    compound.extend(words("A0CC0003 0000010B 6E616D65 00000004"));
    compound
}

#[test]
fn iterates_every_packet_type() {
    let compound = everything_compound();
    validate_compound(&compound).unwrap();
    let types: Vec<(u8, u8)> = packets(&compound).map(|p| p.map(|p| (p.packet_type, p.count_or_fmt)).unwrap()).collect();
    assert_eq!(
        types,
        vec![
            (PT_SR, 1),
            (PT_RR, 1),
            (PT_SDES, 2),
            (PT_BYE, 2),
            (PT_APP, 0),
            (PT_XR, 0),
            (PT_PSFB, FMT_PLI),
            (PT_PSFB, FMT_FIR),
            (PT_RTPFB, FMT_NACK),
            (PT_PSFB, FMT_AFB),
            (PT_RTPFB, FMT_TRANSPORT_CC),
            (PT_APP, 0),
        ]
    );
    let last = packets(&compound).last().unwrap().unwrap();
    assert!(last.has_padding(&compound));
    assert_eq!(last.body(&compound), &words("0000010B 6E616D65")[..]);
    let refs: Vec<RtcpPacketRef> = packets(&compound).map(Result::unwrap).collect();
    assert_eq!(refs.iter().map(|r| r.len).sum::<usize>(), compound.len());
}

#[test]
fn parses_every_feedback_kind() {
    let feedback = parse_feedback(&everything_compound()).unwrap();
    assert_eq!(
        feedback,
        vec![
            Feedback::SenderReport { ssrc: 0x100, ntp: 1, rtp_ts: 2, packets: 3, octets: 4 },
            Feedback::ReceiverReport { sender_ssrc: 0x100, blocks: vec![ReportBlock { ssrc: 0x200, ..block() }] },
            Feedback::ReceiverReport { sender_ssrc: 0x101, blocks: vec![ReportBlock { ssrc: 0x201, ..block() }] },
            Feedback::Pli { sender_ssrc: 0x106, media_ssrc: 0x206 },
            Feedback::Fir { sender_ssrc: 0x107, media_ssrc: 0x207, seq_nr: 1 },
            Feedback::Nack { sender_ssrc: 0x108, media_ssrc: 0x208, lost: vec![5] },
            Feedback::Remb { sender_ssrc: 0x109, bitrate_bps: 5000, ssrcs: vec![0x209, 0x20A] },
            Feedback::TransportCc { sender_ssrc: 1, media_ssrc: 2 },
        ]
    );
}

#[test]
fn reduced_size_rtcp_is_accepted() {
    // RFC 5506: a lone feedback packet, no SR/RR first.
    validate_compound(&build_pli(1, 2)).unwrap();
    validate_compound(&build_nack(1, 2, &[1, 2, 3])).unwrap();
    validate_compound(&transport_cc()).unwrap();
}

#[test]
fn framing_errors() {
    let rr = build_receiver_report(1, &[block()]);
    assert_eq!(validate_compound(&[]), Err(RtcpError::TooShort));
    assert_eq!(validate_compound(&rr[..3]), Err(RtcpError::TooShort));

    let mut v1 = rr.clone();
    v1[0] = 0x41;
    assert_eq!(validate_compound(&v1), Err(RtcpError::BadVersion));

    let mut rtp_type = rr.clone();
    rtp_type[1] = 96;
    assert_eq!(validate_compound(&rtp_type), Err(RtcpError::NotCompound));

    assert_eq!(validate_compound(&rr[..rr.len() - 4]), Err(RtcpError::BadLength), "length past the end");
    let mut trailing = rr.clone();
    trailing.extend_from_slice(&[0, 0, 0, 0]);
    assert_eq!(validate_compound(&trailing), Err(RtcpError::BadVersion), "a zero word is not a packet");
    let mut trailing = rr.clone();
    trailing.extend_from_slice(&[0x80, 0xC9]);
    assert_eq!(validate_compound(&trailing), Err(RtcpError::BadLength));
}

#[test]
fn padding_errors() {
    let mut padded_first = build_pli(1, 2).to_vec();
    padded_first[0] |= 0x20;
    padded_first.extend(build_pli(3, 4));
    assert_eq!(validate_compound(&padded_first), Err(RtcpError::BadPadding), "only the last packet may pad");

    let ok = words("A0CC0003 0000010B 6E616D65 00000004");
    validate_compound(&ok).unwrap();
    let mut zero = ok.clone();
    zero[15] = 0;
    assert_eq!(validate_compound(&zero), Err(RtcpError::BadPadding));
    let mut too_big = ok.clone();
    too_big[15] = 13;
    assert_eq!(validate_compound(&too_big), Err(RtcpError::BadPadding));
    // Padding that eats into APP's name: body too short.
    let mut eats_body = ok.clone();
    eats_body[15] = 8;
    assert_eq!(validate_compound(&eats_body), Err(RtcpError::BadBody));
}

#[test]
fn body_errors() {
    // RR claiming 2 blocks with 1 present.
    let mut rr = build_receiver_report(1, &[block()]);
    rr[0] = 0x82;
    assert_eq!(validate_compound(&rr), Err(RtcpError::BadCount));
    // SR shorter than its sender info.
    assert_eq!(validate_compound(&words("80C80001 00000001")), Err(RtcpError::BadBody));
    // SDES item runs past the packet.
    assert_eq!(validate_compound(&words("81CA0002 00000001 01096162")), Err(RtcpError::BadBody));
    // SDES chunk count larger than the chunks present.
    assert_eq!(validate_compound(&words("82CA0002 00000001 01000000")), Err(RtcpError::BadBody));
    // BYE count larger than the SSRC list.
    assert_eq!(validate_compound(&words("83CB0002 00000001 00000002")), Err(RtcpError::BadCount));
    // Feedback without media SSRC.
    assert_eq!(validate_compound(&words("81CE0001 00000001")), Err(RtcpError::BadBody));
    // FIR with half an FCI entry.
    assert_eq!(validate_compound(&words("84CE0003 00000001 00000000 00000002")), Err(RtcpError::BadBody));
    // REMB listing 3 SSRCs, 1 present.
    assert_eq!(validate_compound(&words("8FCE0005 00000001 00000000 52454D42 03000001 00000009")), Err(RtcpError::BadBody));
    // transport-cc without its fixed FCI fields.
    assert_eq!(validate_compound(&words("8FCD0003 00000001 00000002 00010001")), Err(RtcpError::BadBody));
    assert_eq!(parse_feedback(&words("8FCD0003 00000001 00000002 00010001")), Err(RtcpError::BadBody));
}

#[test]
fn iterator_stops_after_one_error() {
    let mut compound = build_pli(1, 2).to_vec();
    compound.extend_from_slice(&[0x40, 0xCE, 0x00, 0x02, 0, 0, 0, 0, 0, 0, 0, 0]);
    compound.extend(build_pli(3, 4));
    let items: Vec<Result<RtcpPacketRef, RtcpError>> = packets(&compound).collect();
    assert_eq!(items.len(), 2);
    assert!(items[0].is_ok());
    assert_eq!(items[1], Err(RtcpError::BadVersion));
    assert_eq!(packets(&[]).collect::<Vec<_>>(), vec![Err(RtcpError::TooShort)]);
}

#[test]
fn non_remb_afb_is_ignored_by_parser() {
    let afb = words("8FCE0003 00000001 00000002 41424344");
    validate_compound(&afb).unwrap();
    assert_eq!(parse_feedback(&afb), Ok(vec![]));
}
