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
    let mut rng = Rng::new(0x5eed_0001);
    for profile in PROFILES {
        let (mut sender, mut receiver) = context_pair(profile, &mut rng);
        let ssrc = rng.next_u64() as u32;
        let mut seq = rng.next_u64() as u16;
        for _ in 0..500 {
            let (plain, shape) = random_rtp(&mut rng, ssrc, seq, 1400);
            let protected = protect_rtp(&mut sender, &plain);
            // Header, CSRCs and extension stay in clear (authenticated only).
            assert_eq!(protected[..shape.header_len], plain[..shape.header_len]);
            let payload_len = plain.len() - shape.header_len;
            if payload_len >= 16 {
                assert_ne!(
                    protected[shape.header_len..plain.len()],
                    plain[shape.header_len..]
                );
            }
            assert_eq!(
                unprotect_rtp(&mut receiver, &protected),
                Ok(plain),
                "{profile}"
            );
            seq = seq.wrapping_add(1 + rng.below(3) as u16);
        }
        assert_eq!(sender.stream_count(), 1);
        assert_eq!(receiver.stream_count(), 1);
    }
}

#[test]
fn rtcp_round_trip_many_ssrcs() {
    let mut rng = Rng::new(0x5eed_0002);
    for profile in PROFILES {
        let (mut sender, mut receiver) = context_pair(profile, &mut rng);
        let ssrcs: Vec<u32> = (0..5).map(|_| rng.next_u64() as u32).collect();
        for round in 0..300 {
            let ssrc = ssrcs[round % ssrcs.len()];
            let plain = random_rtcp(&mut rng, ssrc, 300);
            let protected = protect_rtcp(&mut sender, &plain);
            assert_eq!(protected[..8], plain[..8], "first 8 octets stay in clear");
            // E flag set, index = packets sent so far on this SSRC.
            let word_at = match profile {
                SrtpProfile::AeadAes128Gcm | SrtpProfile::AeadAes256Gcm => protected.len() - 4,
                _ => plain.len(),
            };
            let word = u32::from_be_bytes(protected[word_at..word_at + 4].try_into().unwrap());
            assert_eq!(word, 0x8000_0000 | (round / ssrcs.len()) as u32);
            assert_eq!(
                unprotect_rtcp(&mut receiver, &protected),
                Ok(plain),
                "{profile}"
            );
        }
        assert_eq!(sender.stream_count(), 5);
        assert_eq!(receiver.stream_count(), 5);
    }
}

/// 300 consecutive packets lost across the 16-bit wrap: the receiver must
/// guess ROC + 1 for the next packet (RFC 3711 Appendix A) and keep decrypting.
#[test]
fn roc_survives_300_packet_loss_across_the_wrap() {
    let mut rng = Rng::new(0x5eed_0003);
    for profile in PROFILES {
        let (mut sender, mut receiver) = context_pair(profile, &mut rng);
        let ssrc = 0x1234_5678;
        let first_lost: u16 = 65_400;
        let mut seq: u16 = 64_000;
        let mut delivered = 0;
        for sent in 0..4_000u32 {
            let plain = plain_rtp(ssrc, seq, 200);
            let protected = protect_rtp(&mut sender, &plain);
            let lost = seq.wrapping_sub(first_lost) < 300;
            if !lost {
                assert_eq!(
                    unprotect_rtp(&mut receiver, &protected),
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
    }
}

/// Several wraps in a row, with reordering around each wrap.
#[test]
fn roc_handles_reordering_across_several_wraps() {
    let mut rng = Rng::new(0x5eed_0004);
    for profile in PROFILES {
        let (mut sender, mut receiver) = context_pair(profile, &mut rng);
        let ssrc = 42;
        let mut seq: u16 = 65_000;
        let mut held_back: Option<(Vec<u8>, Vec<u8>)> = None;
        for step in 0..3 * 65_536u32 / 16 {
            // Send every 16th sequence number (a lossy path) and swap each
            // pair around so late packets straddle the wraps.
            let plain = plain_rtp(ssrc, seq, 40);
            let protected = protect_rtp(&mut sender, &plain);
            match held_back.take() {
                None if step % 2 == 0 => held_back = Some((plain, protected)),
                None => assert_eq!(unprotect_rtp(&mut receiver, &protected), Ok(plain)),
                Some((earlier_plain, earlier)) => {
                    assert_eq!(
                        unprotect_rtp(&mut receiver, &protected),
                        Ok(plain),
                        "{profile} {seq}"
                    );
                    assert_eq!(
                        unprotect_rtp(&mut receiver, &earlier),
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
    }
}

#[test]
fn replayed_and_too_old_packets_are_rejected() {
    let mut rng = Rng::new(0x5eed_0005);
    for profile in PROFILES {
        let (mut sender, mut receiver) = context_pair(profile, &mut rng);
        let ssrc = 7;
        let packets: Vec<(Vec<u8>, Vec<u8>)> = (1000u16..1300)
            .map(|seq| {
                let plain = plain_rtp(ssrc, seq, 100);
                let protected = protect_rtp(&mut sender, &plain);
                (plain, protected)
            })
            .collect();
        let deliver =
            |receiver: &mut SrtpContext, offset: usize| unprotect_rtp(receiver, &packets[offset].1);
        assert_eq!(deliver(&mut receiver, 0), Ok(packets[0].0.clone()));
        assert_eq!(deliver(&mut receiver, 0), Err(SrtpError::Replayed));
        assert_eq!(deliver(&mut receiver, 200), Ok(packets[200].0.clone()));
        assert_eq!(deliver(&mut receiver, 200), Err(SrtpError::Replayed));
        let window = REPLAY_WINDOW_SIZE as usize;
        // Inside the window: accepted once, then a replay.
        assert_eq!(
            deliver(&mut receiver, 200 - window + 1),
            Ok(packets[200 - window + 1].0.clone())
        );
        assert_eq!(
            deliver(&mut receiver, 200 - window + 1),
            Err(SrtpError::Replayed)
        );
        // Behind the window.
        assert_eq!(deliver(&mut receiver, 200 - window), Err(SrtpError::TooOld));
        assert_eq!(deliver(&mut receiver, 1), Err(SrtpError::TooOld));
        // Reordered but inside the window.
        assert_eq!(deliver(&mut receiver, 199), Ok(packets[199].0.clone()));
        assert_eq!(deliver(&mut receiver, 201), Ok(packets[201].0.clone()));

        // SRTCP: the explicit index gets the same treatment.
        let rtcp: Vec<(Vec<u8>, Vec<u8>)> = (0..300)
            .map(|_| {
                let plain = random_rtcp(&mut rng, ssrc, 10);
                let protected = protect_rtcp(&mut sender, &plain);
                (plain, protected)
            })
            .collect();
        assert_eq!(
            unprotect_rtcp(&mut receiver, &rtcp[10].1),
            Ok(rtcp[10].0.clone())
        );
        assert_eq!(
            unprotect_rtcp(&mut receiver, &rtcp[10].1),
            Err(SrtpError::Replayed)
        );
        assert_eq!(
            unprotect_rtcp(&mut receiver, &rtcp[250].1),
            Ok(rtcp[250].0.clone())
        );
        assert_eq!(
            unprotect_rtcp(&mut receiver, &rtcp[250 - window].1),
            Err(SrtpError::TooOld)
        );
        assert_eq!(
            unprotect_rtcp(&mut receiver, &rtcp[249].1),
            Ok(rtcp[249].0.clone())
        );
        assert_eq!(
            unprotect_rtcp(&mut receiver, &rtcp[249].1),
            Err(SrtpError::Replayed)
        );
    }
}

#[test]
fn any_bit_flip_is_rejected_and_changes_no_state() {
    let mut rng = Rng::new(0x5eed_0006);
    for profile in PROFILES {
        let (mut sender, mut receiver) = context_pair(profile, &mut rng);
        let ssrc = 99;
        let warmup = plain_rtp(ssrc, 10, 60);
        assert!(unprotect_rtp(&mut receiver, &protect_rtp(&mut sender, &warmup)).is_ok());

        let (plain, shape) = random_rtp(&mut rng, ssrc, 11, 200);
        let protected = protect_rtp(&mut sender, &plain);
        for position in 0..protected.len() {
            for bit in [0x01u8, 0x80] {
                let mut forged = protected.clone();
                forged[position] ^= bit;
                let result = unprotect_rtp(&mut receiver, &forged);
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
        assert_eq!(unprotect_rtp(&mut receiver, &protected), Ok(plain));

        let rtcp_plain = random_rtcp(&mut rng, ssrc, 8);
        let rtcp = protect_rtcp(&mut sender, &rtcp_plain);
        for position in 0..rtcp.len() {
            let mut forged = rtcp.clone();
            forged[position] ^= 0x04;
            assert!(
                unprotect_rtcp(&mut receiver, &forged).is_err(),
                "{profile} rtcp byte {position}"
            );
        }
        assert_eq!(unprotect_rtcp(&mut receiver, &rtcp), Ok(rtcp_plain));
    }
}

/// A forged packet that would move the ROC forward (sequence number half the
/// space ahead) must not desynchronise the receiver.
#[test]
fn forged_packet_does_not_commit_roc() {
    let mut rng = Rng::new(0x5eed_0007);
    for profile in PROFILES {
        let (mut sender, mut receiver) = context_pair(profile, &mut rng);
        let ssrc = 5;
        for seq in 40_000u16..40_010 {
            assert!(unprotect_rtp(
                &mut receiver,
                &protect_rtp(&mut sender, &plain_rtp(ssrc, seq, 50))
            )
            .is_ok());
        }
        let mut forged = protect_rtp(&mut sender, &plain_rtp(ssrc, 40_010, 50));
        forged[2..4].copy_from_slice(&5_000u16.to_be_bytes()); // would be ROC + 1
        assert_eq!(
            unprotect_rtp(&mut receiver, &forged),
            Err(SrtpError::AuthFailed)
        );
        assert_eq!(receiver.rtp_highest_index(ssrc), Some(40_009));
        for seq in 40_011u16..40_020 {
            let plain = plain_rtp(ssrc, seq, 50);
            assert_eq!(
                unprotect_rtp(&mut receiver, &protect_rtp(&mut sender, &plain)),
                Ok(plain)
            );
        }
        // Unknown SSRC with a bad tag creates no stream.
        let mut stranger = protect_rtp(&mut sender, &plain_rtp(6, 1, 50));
        let last = stranger.len() - 1;
        stranger[last] ^= 1;
        assert_eq!(
            unprotect_rtp(&mut receiver, &stranger),
            Err(SrtpError::AuthFailed)
        );
        assert_eq!(receiver.stream_count(), 1);
    }
}

#[test]
fn truncated_inputs_never_panic_and_never_pass() {
    let mut rng = Rng::new(0x5eed_0008);
    for profile in PROFILES {
        let (mut sender, _) = context_pair(profile, &mut rng);
        let (plain, _) = random_rtp(&mut rng, 3, 77, 300);
        let protected = protect_rtp(&mut sender, &plain);
        let rtcp_plain = random_rtcp(&mut rng, 3, 20);
        let rtcp = protect_rtcp(&mut sender, &rtcp_plain);
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
    }
}

#[test]
fn stream_cap_and_removal() {
    let mut rng = Rng::new(0x5eed_0009);
    for profile in PROFILES {
        let (mut sender, mut receiver) = context_pair(profile, &mut rng);
        sender.set_max_streams(3);
        receiver.set_max_streams(3);
        let packets: Vec<Vec<u8>> = (0..3)
            .map(|ssrc| protect_rtp(&mut sender, &plain_rtp(ssrc, 1, 10)))
            .collect();
        let mut fourth = plain_rtp(3, 1, 10);
        fourth.resize(fourth.len() + profile.rtp_overhead(), 0);
        assert_eq!(
            sender.protect_rtp(&mut fourth, 22),
            Err(SrtpError::TooManyStreams)
        );
        let mut fourth_rtcp = random_rtcp(&mut rng, 3, 2);
        let rtcp_len = fourth_rtcp.len();
        fourth_rtcp.resize(rtcp_len + profile.rtcp_overhead(), 0);
        assert_eq!(
            sender.protect_rtcp(&mut fourth_rtcp, rtcp_len),
            Err(SrtpError::TooManyStreams)
        );
        assert_eq!(sender.stream_count(), 3);
        sender.remove_ssrc(1);
        assert_eq!(sender.stream_count(), 2);
        let fourth_protected = protect_rtp(&mut sender, &plain_rtp(3, 1, 10));

        for packet in &packets {
            assert!(unprotect_rtp(&mut receiver, packet).is_ok());
        }
        assert_eq!(
            unprotect_rtp(&mut receiver, &fourth_protected),
            Err(SrtpError::TooManyStreams)
        );
        receiver.remove_ssrc(0);
        receiver.remove_ssrc(0xdead); // unknown: no effect
        assert_eq!(receiver.stream_count(), 2);
        assert!(unprotect_rtp(&mut receiver, &fourth_protected).is_ok());
        // A removed SSRC starts over: its old packet is accepted again.
        receiver.remove_ssrc(2);
        assert!(unprotect_rtp(&mut receiver, &packets[2]).is_ok());
    }
}

#[test]
fn wrong_key_fails_authentication() {
    let mut rng = Rng::new(0x5eed_000a);
    for profile in PROFILES {
        let (mut sender, _) = context_pair(profile, &mut rng);
        let (_, mut stranger) = context_pair(profile, &mut rng);
        let protected = protect_rtp(&mut sender, &plain_rtp(1, 1, 100));
        assert_eq!(
            unprotect_rtp(&mut stranger, &protected),
            Err(SrtpError::AuthFailed)
        );
        let rtcp = protect_rtcp(&mut sender, &random_rtcp(&mut rng, 1, 5));
        assert_eq!(
            unprotect_rtcp(&mut stranger, &rtcp),
            Err(SrtpError::AuthFailed)
        );
        assert_eq!(stranger.stream_count(), 0);
    }
}

#[test]
fn malformed_headers_are_reported() {
    let mut rng = Rng::new(0x5eed_000b);
    for profile in PROFILES {
        let (mut sender, mut receiver) = context_pair(profile, &mut rng);
        let mut version_one = plain_rtp(1, 1, 20);
        version_one[0] = 0x40;
        let len = version_one.len();
        version_one.resize(len + profile.rtp_overhead(), 0);
        assert_eq!(
            sender.protect_rtp(&mut version_one, len),
            Err(SrtpError::BadHeader)
        );
        assert_eq!(
            receiver.unprotect_rtp(&mut version_one, len + profile.rtp_overhead()),
            Err(SrtpError::BadHeader)
        );
        let mut too_many_csrcs = plain_rtp(1, 1, 8);
        too_many_csrcs[0] = 0x8f;
        let len = too_many_csrcs.len();
        too_many_csrcs.resize(len + profile.rtp_overhead(), 0);
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
    }
}
