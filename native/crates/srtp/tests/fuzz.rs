//! Arbitrary input must produce an error, never a panic, and never be
//! accepted.

mod common;

use common::*;
use ferry_srtp::SrtpContext;
use ferry_testkit::Rng;
use proptest::prelude::*;

const RANDOM_INPUTS: usize = 100_000;

/// Random byte strings, half of them shaped like RTP/RTCP (version 2) so they
/// reach index estimation and the crypto rather than the version check.
#[test]
fn random_bytes_never_unprotect() {
    let mut rng = Rng::new(0xf022_0001);
    for profile in PROFILES {
        let (_, mut receiver) = context_pair(profile, &mut rng);
        let mut buf = vec![0u8; 1600];
        for round in 0..RANDOM_INPUTS {
            let len = if round % 8 == 0 {
                rng.below(40)
            } else {
                rng.below(1500)
            };
            rng.fill(&mut buf[..len + 4]);
            if round % 2 == 0 && len > 0 {
                buf[0] = 0x80 | (buf[0] & 0x3f);
            }
            // Sometimes the buffer is shorter than `len`.
            let buf_len = (len + rng.below(5)).saturating_sub(2);
            let slice = &mut buf[..buf_len];
            assert!(
                receiver.unprotect_rtp(slice, len).is_err(),
                "{profile} rtp round {round}"
            );
            assert!(
                receiver.unprotect_rtcp(slice, len).is_err(),
                "{profile} rtcp round {round}"
            );
        }
        assert_eq!(receiver.stream_count(), 0);
    }
}

/// Mutations of genuine packets (bytes overwritten, truncated, extended).
#[test]
fn mutated_packets_never_unprotect() {
    let mut rng = Rng::new(0xf022_0002);
    for profile in PROFILES {
        let (mut sender, mut receiver) = context_pair(profile, &mut rng);
        for round in 0..10_000u32 {
            let (plain, _) = random_rtp(&mut rng, 77, round as u16, 200);
            let mut protected = protect_rtp(&mut sender, &plain);
            let rtcp_plain = random_rtcp(&mut rng, 77, 20);
            let mut rtcp = protect_rtcp(&mut sender, &rtcp_plain);
            for packet in [&mut protected, &mut rtcp] {
                match rng.below(3) {
                    0 => {
                        let at = rng.below(packet.len());
                        packet[at] ^= 1 + rng.below(255) as u8;
                    }
                    1 => packet.truncate(rng.below(packet.len())),
                    _ => {
                        let extra = 1 + rng.below(20);
                        packet.extend_from_slice(&rng.bytes(extra));
                    }
                }
            }
            assert!(
                unprotect_rtp(&mut receiver, &protected).is_err(),
                "{profile} rtp round {round}"
            );
            assert!(
                unprotect_rtcp(&mut receiver, &rtcp).is_err(),
                "{profile} rtcp round {round}"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn unprotect_arbitrary_bytes_is_an_error(
        profile_choice in 0usize..4,
        bytes in proptest::collection::vec(any::<u8>(), 0..400),
        extra in 0usize..24,
    ) {
        let profile = PROFILES[profile_choice];
        let mut ctx = SrtpContext::new(profile, &vec![1; profile.master_key_len()], &vec![2; profile.master_salt_len()]).unwrap();
        let len = bytes.len();
        let mut buf = bytes.clone();
        buf.resize(len + extra, 0);
        prop_assert!(ctx.unprotect_rtp(&mut buf, len).is_err());
        let mut buf = bytes;
        buf.resize(len + extra, 0);
        prop_assert!(ctx.unprotect_rtcp(&mut buf, len).is_err());
    }

    #[test]
    fn protect_then_unprotect_is_identity(
        profile_choice in 0usize..4,
        seed in any::<u64>(),
        seq in any::<u16>(),
        ssrc in any::<u32>(),
    ) {
        let profile = PROFILES[profile_choice];
        let mut rng = Rng::new(seed);
        let (mut sender, mut receiver) = context_pair(profile, &mut rng);
        let (plain, _) = random_rtp(&mut rng, ssrc, seq, 1200);
        prop_assert_eq!(unprotect_rtp(&mut receiver, &protect_rtp(&mut sender, &plain)), Ok(plain));
        let rtcp = random_rtcp(&mut rng, ssrc, 100);
        prop_assert_eq!(unprotect_rtcp(&mut receiver, &protect_rtcp(&mut sender, &rtcp)), Ok(rtcp));
    }
}
