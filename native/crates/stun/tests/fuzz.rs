//! Robustness: well over 100 000 random, mutated and structurally plausible
//! datagrams go through `parse` and `IceLiteAgent::handle`. Beyond "no panic",
//! every outcome is checked for consistency: a reply always parses with a good
//! FINGERPRINT, a success is always verifiable by the peer, a drop sends nothing.

use std::net::SocketAddr;

use ferry_stun::{
    attr, build_binding_request, check_fingerprint, check_message_integrity, decode_xor_address,
    is_stun, parse, parse_binding_success, Class, IceLiteAgent, MessageWriter, StunOutcome,
    MAGIC_COOKIE, METHOD_BINDING,
};
use ferry_testkit::Rng;
use proptest::prelude::*;

const PWD: &str = "fuzz-password-abcdefghij";
const USERNAME: &str = "loc:rem";

fn new_agent() -> IceLiteAgent {
    let mut agent = IceLiteAgent::new("loc", PWD);
    agent.set_remote_ufrag(Some("rem"));
    agent.set_consent_timeout_ms(50);
    agent
}

fn seeds() -> Vec<Vec<u8>> {
    let rfc5769_request = hex::decode(
        "000100582112a442b7e7a701bc34d686fa87dfae802200105354554e207465737420636c69656e74\
         002400046e0001ff80290008932ff9b151263b36000600096576746a3a683676592020200008001\
         49aeaa70cbfd8cb56781ef2b5b2d3f249c1b571a280280004e57a3bcf",
    )
    .unwrap();
    let mut seeds = vec![
        rfc5769_request,
        build_binding_request([1; 12], USERNAME, PWD, 7, true, 9),
        build_binding_request([2; 12], USERNAME, PWD, 7, false, 9),
        build_binding_request([3; 12], USERNAME, "wrong", 7, true, 9),
    ];
    let mut success = Vec::new();
    let mut agent = new_agent();
    agent.handle(
        &seeds[1],
        "192.0.2.1:1000".parse().unwrap(),
        0,
        &mut success,
    );
    seeds.push(success);
    let mut indication = Vec::new();
    MessageWriter::new(&mut indication, Class::Indication, METHOD_BINDING, &[4; 12])
        .fingerprint()
        .unwrap();
    seeds.push(indication);
    seeds
}

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut buf = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        match rng.below(7) {
            0 if !buf.is_empty() => {
                let i = rng.below(buf.len());
                buf[i] ^= 1 << rng.below(8);
            }
            1 if !buf.is_empty() => {
                let i = rng.below(buf.len());
                buf[i] = rng.byte();
            }
            2 => buf.truncate(rng.below(buf.len() + 1)),
            3 => buf.extend((0..rng.below(12)).map(|_| rng.byte())),
            // Rewrite the header length, keeping it plausible (multiple of 4) half the time.
            4 if buf.len() >= 4 => {
                let len = if rng.chance(1, 2) {
                    (rng.below(40) * 4) as u16
                } else {
                    rng.next_u64() as u16
                };
                buf[2..4].copy_from_slice(&len.to_be_bytes());
            }
            // Rewrite some attribute length field (every attribute starts 4-aligned).
            5 if buf.len() >= 24 => {
                let at = 20 + 4 * rng.below((buf.len() - 20) / 4);
                if at + 4 <= buf.len() {
                    let len = rng.below(64) as u16;
                    buf[at + 2..at + 4].copy_from_slice(&len.to_be_bytes());
                }
            }
            _ if buf.len() >= 2 => {
                // Change the message type (class/method).
                buf[1] = rng.byte();
                buf[0] = rng.byte() & 0x3F;
            }
            _ => {}
        }
    }
    buf
}

/// A well-formed header with random attributes from an interesting set,
/// sometimes correctly signed so the agent's later stages are reached.
fn structured(rng: &mut Rng) -> Vec<u8> {
    const TYPES: [u16; 14] = [
        attr::USERNAME,
        attr::PRIORITY,
        attr::USE_CANDIDATE,
        attr::ICE_CONTROLLING,
        attr::ICE_CONTROLLED,
        attr::XOR_MAPPED_ADDRESS,
        attr::ERROR_CODE,
        attr::UNKNOWN_ATTRIBUTES,
        attr::SOFTWARE,
        attr::MESSAGE_INTEGRITY,
        attr::FINGERPRINT,
        0x7777,
        0xC057,
        0x0000,
    ];
    let classes = [
        Class::Request,
        Class::Request,
        Class::Request,
        Class::Indication,
        Class::SuccessResponse,
        Class::ErrorResponse,
    ];
    let class = classes[rng.below(classes.len())];
    let method = if rng.chance(1, 8) {
        rng.below(0x1000) as u16
    } else {
        METHOD_BINDING
    };
    let mut transaction_id = [0u8; 12];
    transaction_id.iter_mut().for_each(|b| *b = rng.byte());
    let mut out = Vec::new();
    let mut writer = MessageWriter::new(&mut out, class, method, &transaction_id);
    if rng.below(4) != 0 {
        let username: &[u8] = if rng.chance(1, 4) {
            b"loc:xyz"
        } else {
            USERNAME.as_bytes()
        };
        let _ = writer.attribute(attr::USERNAME, username);
    }
    for _ in 0..rng.below(6) {
        let attr_type = TYPES[rng.below(TYPES.len())];
        let sizes = [0usize, 4, 8, 20, rng.below(40)];
        let len = sizes[rng.below(sizes.len())];
        let value: Vec<u8> = (0..len).map(|_| rng.byte()).collect();
        let _ = writer.attribute(attr_type, &value);
    }
    if rng.below(3) != 0 {
        let key = if rng.chance(1, 5) { "nope" } else { PWD };
        let _ = writer.message_integrity(key.as_bytes());
    }
    if rng.below(3) != 0 {
        let _ = writer.fingerprint();
    }
    out
}

fn random_bytes(rng: &mut Rng) -> Vec<u8> {
    let len = rng.below(120);
    let mut buf: Vec<u8> = (0..len).map(|_| rng.byte()).collect();
    if buf.len() >= 8 && rng.chance(1, 2) {
        buf[0] &= 0x03;
        buf[4..8].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
    }
    buf
}

/// A dual-stack socket reports an IPv4 peer as ::ffff:a.b.c.d; the peer sent
/// from (and is told about) the plain IPv4 address.
fn as_seen_by_peer(from: SocketAddr) -> SocketAddr {
    match from {
        SocketAddr::V6(a) => match a.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::from((v4, a.port())),
            None => from,
        },
        v4 => v4,
    }
}

/// Runs one input through everything and checks the outcome's invariants.
/// Returns whether the agent answered with a success.
fn exercise(
    agent: &mut IceLiteAgent,
    buf: &[u8],
    from: SocketAddr,
    now: u64,
    out: &mut Vec<u8>,
    case: usize,
) -> bool {
    if let Ok(msg) = parse(buf) {
        let _ = check_fingerprint(&msg);
        let _ = check_message_integrity(&msg, PWD.as_bytes());
        let _ = msg.xor_mapped_address();
        let _ = msg.error_code();
        for a in msg.attributes() {
            let _ = decode_xor_address(a.value, &msg.transaction_id);
        }
        let _ = msg.covered_attributes().count();
    }
    let _ = is_stun(buf);
    let _ = parse_binding_success(buf, PWD);
    let succeeded = match agent.handle(buf, from, now, out) {
        StunOutcome::Reply { .. } => {
            assert_eq!(
                parse_binding_success(out, PWD),
                Ok(as_seen_by_peer(from)),
                "case {case}: success must verify"
            );
            assert!(agent.is_validated(from), "case {case}");
            true
        }
        StunOutcome::ErrorReply { code } => {
            let reply =
                parse(out).unwrap_or_else(|e| panic!("case {case}: error reply must parse: {e:?}"));
            assert_eq!(reply.error_code(), Some(code), "case {case}");
            assert_eq!(check_fingerprint(&reply), Ok(()), "case {case}");
            false
        }
        StunOutcome::Drop(_) => {
            assert!(out.is_empty(), "case {case}: a drop sends nothing");
            false
        }
    };
    let _ = agent.poll(now);
    while agent.take_event().is_some() {}
    succeeded
}

#[test]
fn hundred_thousand_inputs_never_panic_and_outcomes_stay_consistent() {
    const PER_KIND: usize = 40_000;
    let mut rng = Rng::new(0x9E37_79B9_7F4A_7C15);
    let seeds = seeds();
    let mut agent = new_agent();
    let mut out = Vec::new();
    let sources: [SocketAddr; 3] = [
        "192.0.2.1:1000".parse().unwrap(),
        "[2001:db8::1]:2000".parse().unwrap(),
        "[::ffff:192.0.2.2]:3000".parse().unwrap(),
    ];
    let mut cases = 0usize;
    let mut replies = 0usize;
    let mut successes = 0usize;
    for kind in 0..3 {
        for i in 0..PER_KIND {
            let buf = match kind {
                0 => random_bytes(&mut rng),
                1 => mutate(&mut rng, &seeds[i % seeds.len()]),
                _ => structured(&mut rng),
            };
            let from = sources[rng.below(sources.len())];
            if exercise(&mut agent, &buf, from, (cases as u64) * 3, &mut out, cases) {
                successes += 1;
            }
            if !out.is_empty() {
                replies += 1;
            }
            cases += 1;
        }
    }
    assert!(cases >= 100_000);
    // The generators must actually reach the agent's answering paths, or the
    // run would prove little.
    assert!(replies > 5_000, "only {replies} inputs got an answer");
    assert!(successes > 1_000, "only {successes} inputs got a success");
    println!("{cases} cases: {replies} answered, {successes} successes");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4_000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(buf in proptest::collection::vec(any::<u8>(), 0..200), port in 1u16..) {
        let mut agent = new_agent();
        let mut out = Vec::new();
        exercise(&mut agent, &buf, SocketAddr::from(([198, 51, 100, 1], port)), 0, &mut out, 0);
    }

    #[test]
    fn binding_round_trip_any_address(v6 in any::<[u8; 16]>(), v4 in any::<[u8; 4]>(), port in any::<u16>(), txid in any::<[u8; 12]>(), ipv6 in any::<bool>()) {
        let from = if ipv6 {
            SocketAddr::from((v6, port))
        } else {
            SocketAddr::from((v4, port))
        };
        let expected = as_seen_by_peer(from);
        let mut agent = new_agent();
        let mut out = Vec::new();
        let request = build_binding_request(txid, USERNAME, PWD, 1, false, 2);
        let outcome = agent.handle(&request, from, 0, &mut out);
        prop_assert_eq!(outcome, StunOutcome::Reply { nominated: false, selected_changed: false });
        prop_assert_eq!(parse_binding_success(&out, PWD), Ok(expected));
    }
}
