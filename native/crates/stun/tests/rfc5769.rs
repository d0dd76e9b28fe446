//! RFC 5769 test vectors (§2.1 request, §2.2 IPv4 response, §2.3 IPv6 response).
//! §2.4 (long-term credentials, MD5 key with SASLprep) is skipped: ICE uses
//! short-term credentials only (RFC 8445 §7.2.2), so this crate has no long-term key.

use std::net::SocketAddr;

use ferry_stun::{
    attr, check_fingerprint, check_message_integrity, is_stun, parse, parse_binding_success, Class,
    IceLiteAgent, MessageWriter, StunError, StunOutcome, HEADER_LEN, METHOD_BINDING,
};

const PASSWORD: &str = "VOkJxbRl1RmTxUk/WvJxBt";

/// §2.1 Sample Request: SOFTWARE, PRIORITY, ICE-CONTROLLED, USERNAME "evtj:h6vY"
/// (padded with spaces), MESSAGE-INTEGRITY, FINGERPRINT.
const SAMPLE_REQUEST: &str = "
    00 01 00 58 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
    80 22 00 10 53 54 55 4e 20 74 65 73 74 20 63 6c 69 65 6e 74
    00 24 00 04 6e 00 01 ff
    80 29 00 08 93 2f f9 b1 51 26 3b 36
    00 06 00 09 65 76 74 6a 3a 68 36 76 59 20 20 20
    00 08 00 14 9a ea a7 0c bf d8 cb 56 78 1e f2 b5 b2 d3 f2 49 c1 b5 71 a2
    80 28 00 04 e5 7a 3b cf";

/// §2.2 Sample IPv4 Response: SOFTWARE "test vector", XOR-MAPPED-ADDRESS 192.0.2.1:32853.
const SAMPLE_IPV4_RESPONSE: &str = "
    01 01 00 3c 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
    80 22 00 0b 74 65 73 74 20 76 65 63 74 6f 72 20
    00 20 00 08 00 01 a1 47 e1 12 a6 43
    00 08 00 14 2b 91 f5 99 fd 9e 90 c3 8c 74 89 f9 2a f9 ba 53 f0 6b e7 d7
    80 28 00 04 c0 7d 4c 96";

/// §2.3 Sample IPv6 Response: XOR-MAPPED-ADDRESS [2001:db8:1234:5678:11:2233:4455:6677]:32853.
const SAMPLE_IPV6_RESPONSE: &str = "
    01 01 00 48 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
    80 22 00 0b 74 65 73 74 20 76 65 63 74 6f 72 20
    00 20 00 14 00 02 a1 47 01 13 a9 fa a5 d3 f1 79 bc 25 f4 b5 be d2 b9 d9
    00 08 00 14 a3 82 95 4e 4b e6 7b f1 17 84 c9 7c 82 92 c2 75 bf e3 ed 41
    80 28 00 04 c8 fb 0b 4c";

const TRANSACTION_ID: [u8; 12] = [
    0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae,
];

fn bytes(vector: &str) -> Vec<u8> {
    let compact: String = vector.split_whitespace().collect();
    hex::decode(compact).expect("vector is hex")
}

#[test]
fn sample_request_parses_and_verifies() {
    let raw = bytes(SAMPLE_REQUEST);
    assert_eq!(raw.len(), 108);
    assert!(is_stun(&raw));
    let msg = parse(&raw).unwrap();
    assert_eq!((msg.class, msg.method), (Class::Request, METHOD_BINDING));
    assert_eq!(msg.transaction_id, TRANSACTION_ID);
    assert_eq!(
        msg.attribute(attr::SOFTWARE),
        Some(&b"STUN test client"[..])
    );
    assert_eq!(msg.attribute(attr::USERNAME), Some(&b"evtj:h6vY"[..]));
    assert_eq!(
        msg.attribute(attr::PRIORITY),
        Some(&[0x6e, 0x00, 0x01, 0xff][..])
    );
    assert_eq!(
        msg.attribute(attr::ICE_CONTROLLED),
        Some(&[0x93, 0x2f, 0xf9, 0xb1, 0x51, 0x26, 0x3b, 0x36][..])
    );
    let types: Vec<u16> = msg.attributes().map(|a| a.attr_type).collect();
    assert_eq!(
        types,
        [
            attr::SOFTWARE,
            attr::PRIORITY,
            attr::ICE_CONTROLLED,
            attr::USERNAME,
            attr::MESSAGE_INTEGRITY,
            attr::FINGERPRINT
        ]
    );
    check_message_integrity(&msg, PASSWORD.as_bytes()).unwrap();
    check_fingerprint(&msg).unwrap();
    assert_eq!(
        check_message_integrity(&msg, b"VOkJxbRl1RmTxUk/WvJxBu"),
        Err(StunError::BadIntegrity)
    );
}

#[test]
fn one_flipped_bit_breaks_integrity_and_fingerprint() {
    let mut raw = bytes(SAMPLE_REQUEST);
    raw[30] ^= 0x01; // inside SOFTWARE, covered by both
    let msg = parse(&raw).unwrap();
    assert_eq!(check_fingerprint(&msg), Err(StunError::BadFingerprint));
    assert_eq!(
        check_message_integrity(&msg, PASSWORD.as_bytes()),
        Err(StunError::BadIntegrity)
    );
}

#[test]
fn sample_responses_verify_and_decode() {
    for (vector, expected) in [
        (SAMPLE_IPV4_RESPONSE, "192.0.2.1:32853"),
        (
            SAMPLE_IPV6_RESPONSE,
            "[2001:db8:1234:5678:11:2233:4455:6677]:32853",
        ),
    ] {
        let raw = bytes(vector);
        let expected: SocketAddr = expected.parse().unwrap();
        let msg = parse(&raw).unwrap();
        assert_eq!(
            (msg.class, msg.method),
            (Class::SuccessResponse, METHOD_BINDING)
        );
        assert_eq!(msg.transaction_id, TRANSACTION_ID);
        assert_eq!(msg.attribute(attr::SOFTWARE), Some(&b"test vector"[..]));
        check_message_integrity(&msg, PASSWORD.as_bytes()).unwrap();
        check_fingerprint(&msg).unwrap();
        assert_eq!(msg.xor_mapped_address().unwrap(), expected);
        assert_eq!(parse_binding_success(&raw, PASSWORD), Ok(expected));
        assert_eq!(
            parse_binding_success(&raw, "wrong"),
            Err(StunError::BadIntegrity)
        );
    }
}

/// Our encoder, given the same inputs, writes the RFC's bytes. The RFC pads
/// SOFTWARE with a space where we pad with zero (padding content is free,
/// RFC 8489 §14), so the test puts the space in before the hashes are computed.
#[test]
fn encoder_reproduces_sample_responses_byte_for_byte() {
    for (vector, mapped) in [
        (SAMPLE_IPV4_RESPONSE, "192.0.2.1:32853"),
        (
            SAMPLE_IPV6_RESPONSE,
            "[2001:db8:1234:5678:11:2233:4455:6677]:32853",
        ),
    ] {
        let mut out = Vec::new();
        let mut writer = MessageWriter::new(
            &mut out,
            Class::SuccessResponse,
            METHOD_BINDING,
            &TRANSACTION_ID,
        );
        writer.attribute(attr::SOFTWARE, b"test vector").unwrap();
        writer.bytes_mut()[HEADER_LEN + 4 + 11] = b' ';
        writer
            .xor_address(
                attr::XOR_MAPPED_ADDRESS,
                mapped.parse().unwrap(),
                &TRANSACTION_ID,
            )
            .unwrap();
        writer.message_integrity(PASSWORD.as_bytes()).unwrap();
        writer.fingerprint().unwrap();
        assert_eq!(hex::encode(&out), hex::encode(bytes(vector)), "{mapped}");
    }
}

/// The §2.1 request carries ICE-CONTROLLED, so a lite (controlled) agent must
/// answer it with 487 Role Conflict (RFC 8445 §7.3.1.1), protected by
/// MESSAGE-INTEGRITY because the request authenticated.
#[test]
fn agent_answers_sample_request_with_role_conflict() {
    let raw = bytes(SAMPLE_REQUEST);
    let mut agent = IceLiteAgent::new("evtj", PASSWORD);
    agent.set_remote_ufrag(Some("h6vY"));
    let from: SocketAddr = "192.0.2.1:32853".parse().unwrap();
    let mut out = Vec::new();
    assert_eq!(
        agent.handle(&raw, from, 0, &mut out),
        StunOutcome::ErrorReply { code: 487 }
    );
    let reply = parse(&out).unwrap();
    assert_eq!(reply.class, Class::ErrorResponse);
    assert_eq!(reply.transaction_id, TRANSACTION_ID);
    assert_eq!(reply.error_code(), Some(487));
    check_message_integrity(&reply, PASSWORD.as_bytes()).unwrap();
    check_fingerprint(&reply).unwrap();
    assert!(
        !agent.is_validated(from),
        "a conflicting check does not validate the pair"
    );
}
