//! Fuzz-style robustness: random and mutated inputs into every parser and
//! rewriter (each sees well over 100 000 cases), checking that nothing
//! panics and that the results stay consistent with each other. A seeded
//! xorshift generator keeps every run reproducible and bounded.

use ferry_rtp::rtcp::{self, RtcpError};
use ferry_rtp::rtp::{self, RtpHeader};
use ferry_rtp::{RetransmissionBuffer, SwitchingContext};
use ferry_testkit::{rtcp as test_rtcp, Rng};

const RANDOM_CASES: usize = 150_000;
const MUTATED_CASES: usize = 150_000;

/// 1–4 random edits: bit flips, byte overwrites, truncation, extension.
fn mutate(rng: &mut Rng, mut buf: Vec<u8>) -> Vec<u8> {
    for _ in 0..1 + rng.below(4) {
        match rng.below(5) {
            0 if !buf.is_empty() => {
                let at = rng.below(buf.len());
                buf[at] ^= 1 << rng.below(8);
            }
            1 if !buf.is_empty() => {
                let at = rng.below(buf.len());
                buf[at] = rng.byte();
            }
            2 => {
                let keep = rng.below(buf.len() + 1);
                buf.truncate(keep);
            }
            3 => {
                let extra = rng.below(9);
                let tail = rng.bytes(extra);
                buf.extend(tail);
            }
            _ => {
                // Small integers in length/count positions hit boundaries.
                if !buf.is_empty() {
                    let at = rng.below(buf.len().min(24));
                    buf[at] = rng.below(6) as u8;
                }
            }
        }
    }
    buf
}

// ---- RTP ----

fn rtp_seeds() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    seeds.push(vec![0x80, 0xEF, 0x12, 0x34, 0xDE, 0xAD, 0xBE, 0xEF, 1, 2, 3, 4, 0xAA, 0xBB]);
    let mut one_byte = vec![0x90, 0x60, 0, 1, 0, 0, 0, 100, 0, 0, 0, 7, 0xBE, 0xDE, 0x00, 0x02];
    one_byte.extend_from_slice(&[0x10, 0x85, 0x00, 0x32, 0x01, 0x02, 0x03, 0x00, 0x55, 0x55]);
    seeds.push(one_byte);
    let mut two_byte = vec![0x90, 0x60, 0, 1, 0, 0, 0, 100, 0, 0, 0, 7, 0x10, 0x00, 0x00, 0x03];
    two_byte.extend_from_slice(&[0x01, 0x01, 0x7F, 0xC8, 0x00, 0x05, 0x02, 0x09, 0x09, 0x00, 0x00, 0x00, 0x66]);
    seeds.push(two_byte);
    let mut csrc_padding = vec![0xB2, 0x60, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 9, 9, 9, 9, 8, 8, 8, 8];
    csrc_padding.extend_from_slice(&[0xBE, 0xDE, 0x00, 0x01, 0x10, 0x01, 0x21, 0x02, 0x03, 0x77, 0x00, 0x02]);
    seeds.push(csrc_padding);
    seeds
}

/// Runs every RTP function over `buf`; returns whether it parsed.
fn exercise_rtp(rng: &mut Rng, buf: &[u8]) -> bool {
    let _ = rtp::is_rtcp(buf);
    let mut scratch = buf.to_vec();
    rtp::set_ssrc(&mut scratch, 1);
    rtp::set_sequence(&mut scratch, 2);
    rtp::set_timestamp(&mut scratch, 3);
    rtp::set_payload_type(&mut scratch, rng.byte());
    rtp::set_marker(&mut scratch, rng.chance(50, 100));
    assert_eq!(scratch.len(), buf.len());

    let hdr = match rtp::parse_rtp(buf) {
        Ok(hdr) => hdr,
        Err(_) => {
            // A mismatched header must not make the extension walkers panic.
            let bogus = RtpHeader {
                marker: false,
                payload_type: 0,
                sequence: 0,
                timestamp: 0,
                ssrc: 0,
                csrc_count: 0,
                extension: Some(rtp::ExtensionBlock {
                    profile: if rng.chance(50, 100) { 0xBEDE } else { 0x1000 },
                    offset: rng.below(64),
                    len: rng.below(64),
                }),
                header_len: 0,
                padding_len: 0,
            };
            let _ = rtp::extension_elements(buf, &bogus).count();
            let _ = rtp::remap_extension_ids(&mut scratch, &bogus, &[3; 256]);
            return false;
        }
    };
    assert!(hdr.header_len + hdr.padding_len <= buf.len());
    assert!(hdr.payload(buf).is_some());
    if let Some(block) = hdr.extension {
        assert!(block.offset + block.len <= hdr.header_len);
    }
    // Element data always lies inside the extension block.
    let lengths: Vec<(u8, usize)> = rtp::extension_elements(buf, &hdr).map(|(id, data)| (id, data.len())).collect();
    let id = rng.byte() % 16;
    let _ = rtp::find_extension(buf, &hdr, id);
    let _ = rtp::audio_level(buf, &hdr, id);

    // Identity (all zero) remap changes nothing.
    let mut copy = buf.to_vec();
    assert_eq!(rtp::remap_extension_ids(&mut copy, &hdr, &[0; 256]), Ok(()));
    assert_eq!(copy, buf);
    // A random remap keeps the element structure, or fails untouched.
    let mut map = [0u8; 256];
    for slot in map.iter_mut() {
        *slot = if rng.chance(70, 100) { rng.byte() % 15 } else { rng.byte() };
    }
    match rtp::remap_extension_ids(&mut copy, &hdr, &map) {
        Ok(()) => {
            let after: Vec<usize> = rtp::extension_elements(&copy, &hdr).map(|(_, data)| data.len()).collect();
            assert_eq!(after, lengths.iter().map(|&(_, len)| len).collect::<Vec<_>>());
        }
        Err(_) => assert_eq!(copy, buf),
    }
    true
}

#[test]
fn rtp_random_bytes() {
    let mut rng = Rng::new(0x9E37_79B9_7F4A_7C15);
    let mut parsed = 0;
    for _ in 0..RANDOM_CASES {
        let len = rng.below(80);
        let mut buf = rng.bytes(len);
        if let Some(b0) = buf.first_mut() {
            // Mostly version 2, so the deeper checks are reached.
            if rng.chance(80, 100) {
                *b0 = (*b0 & 0x3f) | 0x80;
            }
            if rng.chance(50, 100) {
                *b0 &= 0xf3; // few CSRCs
            }
        }
        if exercise_rtp(&mut rng, &buf) {
            parsed += 1;
        }
    }
    assert!(parsed > RANDOM_CASES / 10, "only {parsed} random packets parsed");
}

#[test]
fn rtp_mutated_packets() {
    let mut rng = Rng::new(0xD1B5_4A32_D192_ED03);
    let seeds = rtp_seeds();
    let mut parsed = 0;
    for case in 0..MUTATED_CASES {
        let seed = seeds[case % seeds.len()].clone();
        let buf = mutate(&mut rng, seed);
        if exercise_rtp(&mut rng, &buf) {
            parsed += 1;
        }
    }
    assert!(parsed > MUTATED_CASES / 10, "only {parsed} mutated packets parsed");
}

// ---- RTCP ----

fn rtcp_seed(rng: &mut Rng) -> Vec<u8> {
    let block = rtcp::ReportBlock { ssrc: 9, fraction_lost: 1, cumulative_lost: -5, highest_seq: 7, jitter: 3, lsr: 2, dlsr: 1 };
    let mut compound = Vec::new();
    for _ in 0..1 + rng.below(4) {
        let piece = match rng.below(10) {
            0 => test_rtcp::build_sender_report(1, 2, 3, 4, 5, &vec![block; rng.below(3)]),
            1 => test_rtcp::build_receiver_report(1, &vec![block; rng.below(3)]),
            2 => test_rtcp::build_sdes_cname(1, &rng.bytes_below(12)),
            3 => test_rtcp::build_bye(&[1, 2, 3][..rng.below(4)]),
            4 => rtcp::build_pli(1, 2).to_vec(),
            5 => test_rtcp::build_fir(1, 2, 3).to_vec(),
            6 => rtcp::build_nack(1, 2, &[5, 6, 40, 41]),
            7 => rtcp::build_remb(1, rng.next_u64(), &[7, 8][..rng.below(3)]),
            8 => {
                let mut twcc = vec![0x8F, 0xCD, 0x00, 0x05, 0, 0, 0, 1, 0, 0, 0, 2];
                twcc.extend_from_slice(&[0, 1, 0, 1, 0, 0, 1, 0, 0x20, 0x01, 0x04, 0x00]);
                twcc
            }
            _ => {
                // Structured garbage: a valid header over a random body.
                let words = rng.below(8);
                let mut packet = vec![0x80 | (rng.byte() & 0x1f), 200 + rng.below(8) as u8, 0, words as u8];
                packet.extend(rng.bytes(4 * words));
                packet
            }
        };
        compound.extend(piece);
    }
    compound
}

/// Runs every RTCP function over `buf`; returns whether it validated.
fn exercise_rtcp(buf: &[u8]) -> bool {
    let items: Vec<Result<rtcp::RtcpPacketRef, RtcpError>> = rtcp::packets(buf).collect();
    // At most one error, and only as the last item.
    if let Some(position) = items.iter().position(Result::is_err) {
        assert_eq!(position, items.len() - 1);
    }
    for packet in items.iter().flatten() {
        assert!(packet.offset + packet.len <= buf.len());
        let _ = packet.body(buf);
    }

    let valid = rtcp::validate_compound(buf);
    let feedback = rtcp::parse_feedback(buf);
    assert_eq!(valid.is_ok(), feedback.is_ok());
    if valid.is_err() {
        return false;
    }
    assert!(items.iter().all(Result::is_ok));
    true
}

#[test]
fn rtcp_random_bytes() {
    let mut rng = Rng::new(0x2545_F491_4F6C_DD1D);
    let mut valid = 0;
    for _ in 0..RANDOM_CASES {
        let words = rng.below(12);
        let ragged = if rng.chance(20, 100) { rng.below(4) } else { 0 };
        let mut buf = rng.bytes(4 * words + ragged);
        // Give most buffers a plausible first header so framing is explored.
        if buf.len() >= 4 && rng.chance(80, 100) {
            buf[0] = (buf[0] & 0x1f) | 0x80;
            buf[1] = 200 + rng.below(8) as u8;
            buf[2] = 0;
            buf[3] = rng.below(words.max(1)) as u8;
        }
        if exercise_rtcp(&buf) {
            valid += 1;
        }
    }
    assert!(valid > RANDOM_CASES / 50, "only {valid} random compounds validated");
}

#[test]
fn rtcp_mutated_compounds() {
    let mut rng = Rng::new(0xBF58_476D_1CE4_E5B9);
    let mut valid = 0;
    for case in 0..MUTATED_CASES {
        let seed = rtcp_seed(&mut rng);
        // Every 4th case unmutated, to keep plenty of valid compounds.
        let buf = if case % 4 == 0 { seed } else { mutate(&mut rng, seed) };
        if exercise_rtcp(&buf) {
            valid += 1;
        }
    }
    assert!(valid > MUTATED_CASES / 5, "only {valid} mutated compounds validated");
}

#[test]
fn builders_always_validate() {
    let mut rng = Rng::new(0x94D0_49BB_1331_11EB);
    for _ in 0..20_000 {
        let ssrcs: Vec<u32> = (0..rng.below(300)).map(|_| rng.next_u64() as u32).collect();
        let lost: Vec<u16> = (0..rng.below(200)).map(|_| rng.next_u64() as u16).collect();
        let blocks: Vec<rtcp::ReportBlock> = (0..rng.below(70))
            .map(|_| rtcp::ReportBlock { ssrc: rng.next_u64() as u32, cumulative_lost: rng.next_u64() as i32, ..Default::default() })
            .collect();
        for packet in [
            rtcp::build_nack(1, 2, &lost),
            rtcp::build_remb(1, rng.next_u64(), &ssrcs),
            test_rtcp::build_receiver_report(1, &blocks),
            test_rtcp::build_sender_report(1, rng.next_u64(), 2, 3, 4, &blocks),
            test_rtcp::build_sdes_cname(1, &rng.bytes_below(300)),
            test_rtcp::build_bye(&ssrcs),
        ] {
            assert_eq!(rtcp::validate_compound(&packet), Ok(()));
            assert!(exercise_rtcp(&packet));
        }
        // NACK round trip: every requested number comes back.
        let parsed = rtcp::parse_feedback(&rtcp::build_nack(1, 2, &lost)).unwrap();
        let mut expected = lost.clone();
        expected.sort_unstable();
        expected.dedup();
        let mut got: Vec<u16> = parsed
            .into_iter()
            .flat_map(|fb| match fb {
                rtcp::Feedback::Nack { lost, .. } => lost,
                _ => Vec::new(),
            })
            .collect();
        got.sort_unstable();
        got.dedup();
        assert_eq!(got, expected);
    }
}

// ---- stateful components under random input ----

#[test]
fn switching_context_random_input() {
    let mut rng = Rng::new(0x6A09_E667_F3BC_C908);
    let mut ctx = SwitchingContext::new();
    let mut arrival = 0u64;
    for _ in 0..RANDOM_CASES {
        arrival += rng.below(40_000) as u64;
        let source = rng.below(3) as u64;
        let seq = rng.next_u64() as u16;
        if rng.chance(10, 100) {
            ctx.skip(source, seq);
        } else {
            let _ = ctx.process(source, seq, rng.next_u64() as u32, if rng.chance(2, 100) { 0 } else { arrival }, rng.next_u64() as u32);
        }
    }
    assert!(ctx.last_out().is_some());
}

#[test]
fn retransmission_buffer_random_input() {
    let mut rng = Rng::new(0xBB67_AE85_84CA_A73B);
    let capacity = 1 + rng.below(600);
    let mut buffer = RetransmissionBuffer::new(capacity, 64);
    let mut last = 0u16;
    // Model of the newest stored number: an insert is kept unless it is
    // `capacity` or more behind it (its slot belongs to a newer packet).
    let mut newest: Option<u16> = None;
    for _ in 0..RANDOM_CASES {
        let seq = if rng.chance(80, 100) { last.wrapping_add(rng.below(4) as u16) } else { rng.next_u64() as u16 };
        last = seq;
        if rng.chance(70, 100) {
            let len = rng.below(80);
            let packet = rng.bytes(len);
            buffer.insert(seq, &packet);
            if len > 64 {
                continue;
            }
            let age = newest.map_or(0, |n| i32::from(n.wrapping_sub(seq) as i16));
            if age < capacity as i32 {
                if age < 0 || newest.is_none() {
                    newest = Some(seq);
                }
                assert_eq!(buffer.get(seq), Some(packet.as_slice()));
            } else {
                assert_ne!(buffer.get(seq), Some(packet.as_slice()));
            }
        } else if rng.chance(1, 100) {
            buffer.clear();
            newest = None;
        } else {
            let _ = buffer.get(seq.wrapping_sub(rng.below(700) as u16));
        }
    }
}
