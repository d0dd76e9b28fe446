//! Round trips, index/ROC handling, replay protection, tampering and
//! truncation, through the public API only.

mod common;

use common::*;
use ferry_srtp::{SrtpContext, SrtpError, SrtpProfile, REPLAY_WINDOW_SIZE};

#[test]
fn new_rejects_wrong_key_and_salt_lengths() {
    for profile in PROFILES {
        let key = vec![7u8; profile.master_key_len()];
        let salt = vec![9u8; profile.master_salt_len()];
        assert!(SrtpContext::new(profile, &key, &salt).is_ok());
        assert_eq!(
            SrtpContext::new(profile, &key[1..], &salt).err(),
            Some(SrtpError::BadKeyLength)
        );
        assert_eq!(
            SrtpContext::new(profile, &key, &salt[1..]).err(),
            Some(SrtpError::BadKeyLength)
        );
        let mut long_salt = salt.clone();
        long_salt.push(0);
        assert_eq!(
            SrtpContext::new(profile, &key, &long_salt).err(),
            Some(SrtpError::BadKeyLength)
        );
        assert_eq!(
            SrtpContext::new(profile, &[], &[]).err(),
            Some(SrtpError::BadKeyLength)
        );
    }
}

#[test]
fn rtp_round_trip_with_csrcs_extensions_and_padding() {
    for_each_profile(0x5eed_0001, |profile, sender, receiver, rng| {
        let ssrc = rng.next_u64() as u32;
        let mut seq = rng.next_u64() as u16;
        for _ in 0..500 {
            let (plain, shape) = random_rtp(rng, ssrc, seq, 1400);
            let protected = protect_rtp(sender, &plain);
            // Header, CSRCs and extension stay in clear (authenticated only).
            assert_eq!(protected[..shape.header_len], plain[..shape.header_len]);
            let payload_len = plain.len() - shape.header_len;
            if payload_len >= 16 {
                assert_ne!(
                    protected[shape.header_len..plain.len()],
                    plain[shape.header_len..]
                );
            }
            assert_eq!(unprotect_rtp(receiver, &protected), Ok(plain), "{profile}");
            seq = seq.wrapping_add(1 + rng.below(3) as u16);
        }
        assert_eq!(sender.stream_count(), 1);
        assert_eq!(receiver.stream_count(), 1);
    });
}

#[test]
fn rtcp_round_trip_many_ssrcs() {
    for_each_profile(0x5eed_0002, |profile, sender, receiver, rng| {
        let ssrcs: Vec<u32> = (0..5).map(|_| rng.next_u64() as u32).collect();
        for round in 0..300 {
            let ssrc = ssrcs[round % ssrcs.len()];
            let plain = random_rtcp(rng, ssrc, 300);
            let protected = protect_rtcp(sender, &plain);
            assert_eq!(protected[..8], plain[..8], "first 8 octets stay in clear");
            // E flag set, index = packets sent so far on this SSRC.
            let word_at = match profile {
                SrtpProfile::AeadAes128Gcm | SrtpProfile::AeadAes256Gcm => protected.len() - 4,
                _ => plain.len(),
            };
            let word = u32::from_be_bytes(protected[word_at..word_at + 4].try_into().unwrap());
            assert_eq!(word, 0x8000_0000 | (round / ssrcs.len()) as u32);
            assert_eq!(unprotect_rtcp(receiver, &protected), Ok(plain), "{profile}");
        }
        assert_eq!(sender.stream_count(), 5);
        assert_eq!(receiver.stream_count(), 5);
    });
}

/// 300 consecutive packets lost across the 16-bit wrap: the receiver must
/// guess ROC + 1 for the next packet (RFC 3711 Appendix A) and keep decrypting.
#[test]
fn roc_survives_300_packet_loss_across_the_wrap() {
    for_each_profile(0x5eed_0003, |profile, sender, receiver, _| {
        let ssrc = 0x1234_5678;
        let first_lost: u16 = 65_400;
        let mut seq: u16 = 64_000;
        let mut delivered = 0;
        for sent in 0..4_000u32 {
            let plain = plain_rtp(ssrc, seq, 200);
            let protected = protect_rtp(sender, &plain);
            let lost = seq.wrapping_sub(first_lost) < 300;
            if !lost {
                assert_eq!(
                    unprotect_rtp(receiver, &protected),
                    Ok(plain),
                    "{profile} seq {seq} sent {sent}"
                );
                delivered += 1;
            }
            seq = seq.wrapping_add(1);
        }
        assert_eq!(delivered, 3_700);
        let last_index = (1u64 << 16) | u64::from(seq.wrapping_sub(1));
        assert_eq!(
            sender.rtp_highest_index(ssrc),
            Some(last_index),
            "sender ROC followed the wrap"
        );
        assert_eq!(
            receiver.rtp_highest_index(ssrc),
            Some(last_index),
            "receiver ROC followed the wrap"
        );
    });
}

/// Several wraps in a row, with reordering around each wrap.
#[test]
fn roc_handles_reordering_across_several_wraps() {
    for_each_profile(0x5eed_0004, |profile, sender, receiver, _| {
        let ssrc = 42;
        let mut seq: u16 = 65_000;
        let mut held_back: Option<(Vec<u8>, Vec<u8>)> = None;
        for step in 0..3 * 65_536u32 / 16 {
            // Send every 16th sequence number (a lossy path) and swap each
            // pair around so late packets straddle the wraps.
            let plain = plain_rtp(ssrc, seq, 40);
            let protected = protect_rtp(sender, &plain);
            match held_back.take() {
                None if step % 2 == 0 => held_back = Some((plain, protected)),
                None => assert_eq!(unprotect_rtp(receiver, &protected), Ok(plain)),
                Some((earlier_plain, earlier)) => {
                    assert_eq!(
                        unprotect_rtp(receiver, &protected),
                        Ok(plain),
                        "{profile} {seq}"
                    );
                    assert_eq!(
                        unprotect_rtp(receiver, &earlier),
                        Ok(earlier_plain),
                        "{profile} late"
                    );
                }
            }
            seq = seq.wrapping_add(16);
        }
        assert_eq!(
            receiver.rtp_highest_index(ssrc),
            sender.rtp_highest_index(ssrc)
        );
        assert!(receiver.rtp_highest_index(ssrc).unwrap_or(0) >> 16 >= 3);
    });
}

#[test]
fn replayed_and_too_old_packets_are_rejected() {
    for_each_profile(0x5eed_0005, |_, sender, receiver, rng| {
        let ssrc = 7;
        let window = REPLAY_WINDOW_SIZE as usize;
        let packets = protected_in_order(
            300,
            |i| plain_rtp(ssrc, 1000 + i as u16, 100),
            |plain| protect_rtp(sender, plain),
        );
        let rtp_deliveries = [
            (0, None),
            (0, Some(SrtpError::Replayed)),
            (200, None),
            (200, Some(SrtpError::Replayed)),
            // Inside the window: accepted once, then a replay.
            (200 - window + 1, None),
            (200 - window + 1, Some(SrtpError::Replayed)),
            // Behind the window.
            (200 - window, Some(SrtpError::TooOld)),
            (1, Some(SrtpError::TooOld)),
            // Reordered but inside the window.
            (199, None),
            (201, None),
        ];
        assert_deliveries(&packets, |p| unprotect_rtp(receiver, p), &rtp_deliveries);

        // SRTCP: the explicit index gets the same treatment.
        let rtcp = protected_in_order(
            300,
            |_| random_rtcp(rng, ssrc, 10),
            |plain| protect_rtcp(sender, plain),
        );
        let rtcp_deliveries = [
            (10, None),
            (10, Some(SrtpError::Replayed)),
            (250, None),
            (250 - window, Some(SrtpError::TooOld)),
            (249, None),
            (249, Some(SrtpError::Replayed)),
        ];
        assert_deliveries(&rtcp, |p| unprotect_rtcp(receiver, p), &rtcp_deliveries);
    });
}

/// `count` packets `plain` builds, each with what `protect` made of it, protected in order.
fn protected_in_order(
    count: usize,
    mut plain: impl FnMut(usize) -> Vec<u8>,
    mut protect: impl FnMut(&[u8]) -> Vec<u8>,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    (0..count)
        .map(|i| {
            let plain = plain(i);
            let protected = protect(&plain);
            (plain, protected)
        })
        .collect()
}

/// Delivers `packets[offset]` for each (offset, refusal) in turn: it must come out as its plain
/// packet when `refusal` is None, else be refused with it.
fn assert_deliveries(
    packets: &[(Vec<u8>, Vec<u8>)],
    mut unprotect: impl FnMut(&[u8]) -> Result<Vec<u8>, SrtpError>,
    deliveries: &[(usize, Option<SrtpError>)],
) {
    for &(offset, refusal) in deliveries {
        let expected = refusal.map_or_else(|| Ok(packets[offset].0.clone()), Err);
        assert_eq!(unprotect(&packets[offset].1), expected, "packet {offset}");
    }
}

#[test]
fn any_bit_flip_is_rejected_and_changes_no_state() {
    for_each_profile(0x5eed_0006, |profile, sender, receiver, rng| {
        let ssrc = 99;
        let warmup = plain_rtp(ssrc, 10, 60);
        assert!(unprotect_rtp(receiver, &protect_rtp(sender, &warmup)).is_ok());

        let (plain, shape) = random_rtp(rng, ssrc, 11, 200);
        let protected = protect_rtp(sender, &plain);
        for position in 0..protected.len() {
            for bit in [0x01u8, 0x80] {
                let mut forged = protected.clone();
                forged[position] ^= bit;
                let result = unprotect_rtp(receiver, &forged);
                if position >= shape.header_len {
                    assert_eq!(
                        result,
                        Err(SrtpError::AuthFailed),
                        "{profile} payload/tag byte {position}"
                    );
                } else {
                    assert!(result.is_err(), "{profile} header byte {position}");
                }
            }
        }
        // Nothing moved: the genuine packet still decrypts once.
        assert_eq!(receiver.rtp_highest_index(ssrc), Some(10));
        assert_eq!(receiver.stream_count(), 1);
        assert_eq!(unprotect_rtp(receiver, &protected), Ok(plain));

        let rtcp_plain = random_rtcp(rng, ssrc, 8);
        let rtcp = protect_rtcp(sender, &rtcp_plain);
        for position in 0..rtcp.len() {
            let mut forged = rtcp.clone();
            forged[position] ^= 0x04;
            assert!(
                unprotect_rtcp(receiver, &forged).is_err(),
                "{profile} rtcp byte {position}"
            );
        }
        assert_eq!(unprotect_rtcp(receiver, &rtcp), Ok(rtcp_plain));
    });
}

/// A forged packet that would move the ROC forward (sequence number half the
/// space ahead) must not desynchronise the receiver.
#[test]
fn forged_packet_does_not_commit_roc() {
    for_each_profile(0x5eed_0007, |_, sender, receiver, _| {
        let ssrc = 5;
        for seq in 40_000u16..40_010 {
            assert!(
                unprotect_rtp(receiver, &protect_rtp(sender, &plain_rtp(ssrc, seq, 50))).is_ok()
            );
        }
        let mut forged = protect_rtp(sender, &plain_rtp(ssrc, 40_010, 50));
        forged[2..4].copy_from_slice(&5_000u16.to_be_bytes()); // would be ROC + 1
        assert_eq!(unprotect_rtp(receiver, &forged), Err(SrtpError::AuthFailed));
        assert_eq!(receiver.rtp_highest_index(ssrc), Some(40_009));
        for seq in 40_011u16..40_020 {
            let plain = plain_rtp(ssrc, seq, 50);
            assert_eq!(
                unprotect_rtp(receiver, &protect_rtp(sender, &plain)),
                Ok(plain)
            );
        }
        // Unknown SSRC with a bad tag creates no stream.
        let mut stranger = protect_rtp(sender, &plain_rtp(6, 1, 50));
        let last = stranger.len() - 1;
        stranger[last] ^= 1;
        assert_eq!(
            unprotect_rtp(receiver, &stranger),
            Err(SrtpError::AuthFailed)
        );
        assert_eq!(receiver.stream_count(), 1);
    });
}

#[test]
fn truncated_inputs_never_panic_and_never_pass() {
    for_each_profile(0x5eed_0008, |profile, sender, _, rng| {
        let (plain, _) = random_rtp(rng, 3, 77, 300);
        let protected = protect_rtp(sender, &plain);
        let rtcp_plain = random_rtcp(rng, 3, 20);
        let rtcp = protect_rtcp(sender, &rtcp_plain);
        for len in 0..protected.len() {
            let (_, mut receiver) = context_pair(profile, &mut Rng::new(1));
            let mut buf = protected.clone();
            assert!(receiver.unprotect_rtp(&mut buf, len).is_err());
            // `len` past the end of the buffer is an error, not a panic.
            assert!(receiver.unprotect_rtp(&mut buf[..len], len + 1).is_err());
        }
        for len in 0..rtcp.len() {
            let (_, mut receiver) = context_pair(profile, &mut Rng::new(1));
            let mut buf = rtcp.clone();
            assert!(receiver.unprotect_rtcp(&mut buf, len).is_err());
        }
        // Protect with every prefix length and with no room for the tag.
        for len in 0..=plain.len() {
            let mut buf = plain.clone();
            buf.resize(plain.len() + profile.rtp_overhead(), 0);
            let _ = sender.protect_rtp(&mut buf, len);
            let mut exact = plain[..len].to_vec();
            assert!(sender.protect_rtp(&mut exact, len).is_err());
            let mut buf = rtcp_plain.clone();
            buf.resize(rtcp_plain.len() + profile.rtcp_overhead(), 0);
            let _ = sender.protect_rtcp(&mut buf, len.min(rtcp_plain.len()));
        }
        let mut short = plain.clone();
        short.resize(plain.len() + profile.rtp_overhead() - 1, 0);
        assert_eq!(
            sender.protect_rtp(&mut short, plain.len()),
            Err(SrtpError::BufferTooSmall)
        );
        let mut short = rtcp_plain.clone();
        short.resize(rtcp_plain.len() + profile.rtcp_overhead() - 1, 0);
        assert_eq!(
            sender.protect_rtcp(&mut short, rtcp_plain.len()),
            Err(SrtpError::BufferTooSmall)
        );
    });
}

#[test]
fn stream_cap_and_removal() {
    for_each_profile(0x5eed_0009, |profile, sender, receiver, rng| {
        sender.set_max_streams(3);
        receiver.set_max_streams(3);
        let packets: Vec<Vec<u8>> = (0..3)
            .map(|ssrc| protect_rtp(sender, &plain_rtp(ssrc, 1, 10)))
            .collect();
        let mut fourth = plain_rtp(3, 1, 10);
        fourth.resize(fourth.len() + profile.rtp_overhead(), 0);
        assert_eq!(
            sender.protect_rtp(&mut fourth, 22),
            Err(SrtpError::TooManyStreams)
        );
        let mut fourth_rtcp = random_rtcp(rng, 3, 2);
        let rtcp_len = fourth_rtcp.len();
        fourth_rtcp.resize(rtcp_len + profile.rtcp_overhead(), 0);
        assert_eq!(
            sender.protect_rtcp(&mut fourth_rtcp, rtcp_len),
            Err(SrtpError::TooManyStreams)
        );
        assert_eq!(sender.stream_count(), 3);
        sender.remove_ssrc(1);
        assert_eq!(sender.stream_count(), 2);
        let fourth_protected = protect_rtp(sender, &plain_rtp(3, 1, 10));

        for packet in &packets {
            assert!(unprotect_rtp(receiver, packet).is_ok());
        }
        assert_eq!(
            unprotect_rtp(receiver, &fourth_protected),
            Err(SrtpError::TooManyStreams)
        );
        receiver.remove_ssrc(0);
        receiver.remove_ssrc(0xdead); // unknown: no effect
        assert_eq!(receiver.stream_count(), 2);
        assert!(unprotect_rtp(receiver, &fourth_protected).is_ok());
        // A removed SSRC starts over: its old packet is accepted again.
        receiver.remove_ssrc(2);
        assert!(unprotect_rtp(receiver, &packets[2]).is_ok());
    });
}

#[test]
fn wrong_key_fails_authentication() {
    for_each_profile(0x5eed_000a, |profile, sender, _, rng| {
        let (_, mut stranger) = context_pair(profile, rng);
        let protected = protect_rtp(sender, &plain_rtp(1, 1, 100));
        assert_eq!(
            unprotect_rtp(&mut stranger, &protected),
            Err(SrtpError::AuthFailed)
        );
        let rtcp = protect_rtcp(sender, &random_rtcp(rng, 1, 5));
        assert_eq!(
            unprotect_rtcp(&mut stranger, &rtcp),
            Err(SrtpError::AuthFailed)
        );
        assert_eq!(stranger.stream_count(), 0);
    });
}

#[test]
fn malformed_headers_are_reported() {
    for_each_profile(0x5eed_000b, |profile, sender, receiver, _| {
        // RTP packets whose first octet is wrong, in buffers with room for the tag.
        let malformed = |first_octet: u8, payload_len: usize| {
            let mut packet = plain_rtp(1, 1, payload_len);
            packet[0] = first_octet;
            let len = packet.len();
            packet.resize(len + profile.rtp_overhead(), 0);
            (packet, len)
        };
        let (mut version_one, len) = malformed(0x40, 20);
        assert_eq!(
            sender.protect_rtp(&mut version_one, len),
            Err(SrtpError::BadHeader)
        );
        assert_eq!(
            receiver.unprotect_rtp(&mut version_one, len + profile.rtp_overhead()),
            Err(SrtpError::BadHeader)
        );
        let (mut too_many_csrcs, len) = malformed(0x8f, 8);
        assert_eq!(
            sender.protect_rtp(&mut too_many_csrcs, len),
            Err(SrtpError::BadHeader)
        );
        let mut tiny = [0x80u8; 40];
        assert_eq!(sender.protect_rtp(&mut tiny, 11), Err(SrtpError::TooShort));
        assert_eq!(sender.protect_rtcp(&mut tiny, 7), Err(SrtpError::TooShort));
        assert_eq!(
            receiver.unprotect_rtcp(&mut tiny, 8 + profile.rtcp_overhead() - 1),
            Err(SrtpError::TooShort)
        );
    });
}

/// Tags computed later, alone or sixteen packets of sixteen keys at a time, are the tags
/// `protect_rtp` writes at once: the same bytes on the wire, across a ROC wrap too.
#[test]
fn deferred_tags_match_immediate_ones_in_every_profile() {
    use ferry_srtp::hmac_batch::{write_deferred_tags, DeferredMac, LANES};
    for profile in PROFILES {
        let keys: Vec<(Vec<u8>, Vec<u8>)> = (0..LANES as u8).map(|i| (vec![i + 1; profile.master_key_len()], vec![i + 2; profile.master_salt_len()])).collect();
        let mut now: Vec<SrtpContext> = keys.iter().map(|(k, s)| SrtpContext::new(profile, k, s).unwrap()).collect();
        let mut later: Vec<SrtpContext> = keys.iter().map(|(k, s)| SrtpContext::new(profile, k, s).unwrap()).collect();
        for round in 0..40u16 {
            let seq = 65_520u16.wrapping_add(round);
            let mut expected = Vec::new();
            let mut bufs: Vec<[u8; 1600]> = Vec::new();
            let mut lens = Vec::new();
            let mut deferred: Vec<(usize, DeferredMac)> = Vec::new();
            for lane in 0..LANES {
                let len = 12 + 100 + usize::from(round) * 30 + lane;
                let mut a = [0u8; 1600];
                a[0] = 0x80;
                a[1] = 96;
                a[2..4].copy_from_slice(&seq.to_be_bytes());
                a[8..12].copy_from_slice(&(0x1000 + lane as u32).to_be_bytes());
                for (i, b) in a[12..len].iter_mut().enumerate() {
                    *b = (i * 7 + lane) as u8;
                }
                let mut b = a;
                let n = now[lane].protect_rtp(&mut a, len).unwrap();
                expected.push(a[..n].to_vec());
                let (m, mac) = later[lane].protect_rtp_deferred(&mut b, len).unwrap();
                assert_eq!(m, n);
                bufs.push(b);
                lens.push(m);
                if let Some(mac) = mac {
                    deferred.push((lane, mac));
                }
            }
            // Odd rounds one at a time, even rounds all together.
            // GCM packets come back whole: no tag is left to write.
            if round % 2 == 1 {
                for (lane, mac) in &deferred {
                    assert!(mac.finish(&mut bufs[*lane]));
                }
            } else if !deferred.is_empty() {
                assert_eq!(deferred.len(), LANES, "{profile:?}: every packet's tag or none is left to the caller");
                assert_eq!(write_deferred_tags(&mut bufs[..], &deferred), LANES);
            }
            for lane in 0..LANES {
                assert_eq!(&bufs[lane][..lens[lane]], &expected[lane][..], "{profile:?} round {round} lane {lane}");
            }
        }
    }
}
