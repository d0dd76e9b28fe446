//! IceLiteAgent behaviour: authentication (RFC 8489 §9.1.3), error responses,
//! nomination (RFC 8445 §7.3.1.5), role conflicts (§7.3.1.1) and consent
//! freshness (RFC 7675).
//!
//! One file past 600 lines: every test drives the same agent through its checks; the
//! shared builders at the top serve them all.

use std::net::SocketAddr;

use ferry_stun::{
    attr, build_binding_request, check_fingerprint, check_message_integrity, parse,
    parse_binding_success, Class, DropReason, IceEvent, IceLiteAgent, MessageWriter, StunError,
    StunOutcome, MAX_PENDING_EVENTS, METHOD_BINDING,
};

const LOCAL_UFRAG: &str = "lUfr";
const LOCAL_PWD: &str = "local-password-0123456789";
const REMOTE_UFRAG: &str = "rUfr";
const USERNAME: &str = "lUfr:rUfr";
const TIE_BREAKER: u64 = 0x0123_4567_89ab_cdef;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn agent() -> IceLiteAgent {
    let mut agent = IceLiteAgent::new(LOCAL_UFRAG, LOCAL_PWD);
    agent.set_remote_ufrag(Some(REMOTE_UFRAG));
    agent
}

fn txid(n: u8) -> [u8; 12] {
    [n, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
}

fn check(n: u8, use_candidate: bool) -> Vec<u8> {
    build_binding_request(
        txid(n),
        USERNAME,
        LOCAL_PWD,
        0x6e00_01ff,
        use_candidate,
        TIE_BREAKER,
    )
}

/// A Binding request with exactly the given attributes, then optionally
/// MESSAGE-INTEGRITY (with `pwd`) and FINGERPRINT.
fn custom_request(
    attributes: &[(u16, &[u8])],
    integrity_pwd: Option<&str>,
    fingerprint: bool,
) -> Vec<u8> {
    let mut out = Vec::new();
    let mut writer = MessageWriter::new(&mut out, Class::Request, METHOD_BINDING, &txid(77));
    for (attr_type, value) in attributes {
        writer.attribute(*attr_type, value).unwrap();
    }
    if let Some(pwd) = integrity_pwd {
        writer.message_integrity(pwd.as_bytes()).unwrap();
    }
    if fingerprint {
        writer.fingerprint().unwrap();
    }
    out
}

/// Asserts `out` is an error response with `code`, a valid FINGERPRINT, and
/// MESSAGE-INTEGRITY exactly when `protected`.
fn assert_error_response(out: &[u8], code: u16, protected: bool) {
    let reply = parse(out).unwrap();
    assert_eq!(
        (reply.class, reply.method),
        (Class::ErrorResponse, METHOD_BINDING)
    );
    assert_eq!(reply.error_code(), Some(code));
    check_fingerprint(&reply).unwrap();
    assert_eq!(reply.has_message_integrity(), protected);
    if protected {
        check_message_integrity(&reply, LOCAL_PWD.as_bytes()).unwrap();
    }
    assert_eq!(
        parse_binding_success(out, LOCAL_PWD),
        Err(StunError::ErrorResponse(code))
    );
}

#[test]
fn good_request_gets_success_with_xor_mapped_address() {
    for from in [addr("203.0.113.7:50000"), addr("[2001:db8::42]:61000")] {
        let mut agent = agent();
        let mut out = Vec::new();
        let request = check(1, false);
        assert_eq!(
            agent.handle(&request, from, 1_000, &mut out),
            StunOutcome::Reply {
                nominated: false,
                selected_changed: false
            }
        );
        assert_eq!(parse_binding_success(&out, LOCAL_PWD), Ok(from));
        let reply = parse(&out).unwrap();
        assert_eq!(
            reply.transaction_id,
            txid(1),
            "the response echoes the transaction id"
        );
        check_fingerprint(&reply).unwrap();
        assert!(agent.is_validated(from));
        assert!(!agent.is_validated(addr("203.0.113.8:50000")));
        assert_eq!(
            agent.selected(),
            None,
            "a check without USE-CANDIDATE nominates nothing"
        );
        assert_eq!(agent.take_event(), None);
    }
}

#[test]
fn wrong_password_gets_401_without_integrity() {
    let mut agent = agent();
    let from = addr("203.0.113.7:50000");
    let mut out = Vec::new();
    let request =
        build_binding_request(txid(2), USERNAME, "not-the-password", 1, true, TIE_BREAKER);
    assert_eq!(
        agent.handle(&request, from, 0, &mut out),
        StunOutcome::ErrorReply { code: 401 }
    );
    assert_error_response(&out, 401, false);
    assert!(!agent.is_validated(from));
    assert_eq!(
        agent.selected(),
        None,
        "an unauthenticated USE-CANDIDATE nominates nothing"
    );
}

#[test]
fn wrong_username_gets_401() {
    let mut out = Vec::new();
    let from = addr("198.51.100.1:4000");
    for username in [
        "lUfr:other",
        "other:rUfr",
        "lUfr",
        "lUfrX:rUfr",
        "lUfr:rUfrX",
        "",
    ] {
        let mut agent = agent();
        let request = build_binding_request(txid(3), username, LOCAL_PWD, 1, false, TIE_BREAKER);
        assert_eq!(
            agent.handle(&request, from, 0, &mut out),
            StunOutcome::ErrorReply { code: 401 },
            "{username:?}"
        );
        assert_error_response(&out, 401, false);
        assert!(!agent.is_validated(from));
    }
}

#[test]
fn unknown_remote_ufrag_checks_only_the_local_part() {
    let mut agent = IceLiteAgent::new(LOCAL_UFRAG, LOCAL_PWD);
    let from = addr("198.51.100.1:4000");
    let mut out = Vec::new();
    let request = build_binding_request(txid(4), "lUfr:whatever", LOCAL_PWD, 1, false, TIE_BREAKER);
    assert!(matches!(
        agent.handle(&request, from, 0, &mut out),
        StunOutcome::Reply { .. }
    ));
    let request = build_binding_request(txid(5), "nope:whatever", LOCAL_PWD, 1, false, TIE_BREAKER);
    assert_eq!(
        agent.handle(&request, from, 0, &mut out),
        StunOutcome::ErrorReply { code: 401 }
    );
    // Once the remote ufrag is learned from SDP, it is enforced.
    agent.set_remote_ufrag(Some(REMOTE_UFRAG));
    let request = build_binding_request(txid(6), "lUfr:whatever", LOCAL_PWD, 1, false, TIE_BREAKER);
    assert_eq!(
        agent.handle(&request, from, 0, &mut out),
        StunOutcome::ErrorReply { code: 401 }
    );
}

#[test]
fn missing_username_or_integrity_gets_400() {
    let from = addr("198.51.100.1:4000");
    let mut out = Vec::new();
    let priority = 1u32.to_be_bytes();
    let tie = TIE_BREAKER.to_be_bytes();
    let no_username = custom_request(
        &[(attr::PRIORITY, &priority), (attr::ICE_CONTROLLING, &tie)],
        Some(LOCAL_PWD),
        true,
    );
    let no_integrity = custom_request(
        &[
            (attr::USERNAME, USERNAME.as_bytes()),
            (attr::PRIORITY, &priority),
            (attr::ICE_CONTROLLING, &tie),
        ],
        None,
        true,
    );
    for request in [no_username, no_integrity] {
        let mut agent = agent();
        assert_eq!(
            agent.handle(&request, from, 0, &mut out),
            StunOutcome::ErrorReply { code: 400 }
        );
        assert_error_response(&out, 400, false);
        assert!(!agent.is_validated(from));
    }
}

#[test]
fn malformed_ice_attribute_gets_400() {
    let from = addr("198.51.100.1:4000");
    let mut out = Vec::new();
    let request = custom_request(
        &[
            (attr::USERNAME, USERNAME.as_bytes()),
            (attr::PRIORITY, &[1, 2, 3]),
            (attr::ICE_CONTROLLING, &[0; 8]),
        ],
        Some(LOCAL_PWD),
        true,
    );
    let mut agent = agent();
    assert_eq!(
        agent.handle(&request, from, 0, &mut out),
        StunOutcome::ErrorReply { code: 400 }
    );
    // Authenticated, so the 400 is protected (RFC 8489 §9.1.3).
    assert_error_response(&out, 400, true);
}

#[test]
fn bad_fingerprint_is_dropped_silently() {
    let mut agent = agent();
    let from = addr("198.51.100.1:4000");
    let mut request = check(7, true);
    let last = request.len() - 1;
    request[last] ^= 0xFF;
    let mut out = vec![1, 2, 3];
    assert_eq!(
        agent.handle(&request, from, 0, &mut out),
        StunOutcome::Drop(DropReason::BadFingerprint)
    );
    assert!(out.is_empty(), "out is cleared and nothing is sent");
    assert!(!agent.is_validated(from));
}

#[test]
fn request_without_fingerprint_is_still_answered() {
    let mut agent = agent();
    let from = addr("198.51.100.1:4000");
    let mut out = Vec::new();
    let request = custom_request(
        &[
            (attr::USERNAME, USERNAME.as_bytes()),
            (attr::PRIORITY, &[0, 0, 0, 1]),
        ],
        Some(LOCAL_PWD),
        false,
    );
    assert!(matches!(
        agent.handle(&request, from, 0, &mut out),
        StunOutcome::Reply { .. }
    ));
    assert_eq!(parse_binding_success(&out, LOCAL_PWD), Ok(from));
}

#[test]
fn ice_controlled_peer_gets_487_and_is_not_validated() {
    let mut agent = agent();
    let from = addr("198.51.100.1:4000");
    let mut out = Vec::new();
    for tie_breaker in [0u64, 1, u64::MAX] {
        let request = custom_request(
            &[
                (attr::USERNAME, USERNAME.as_bytes()),
                (attr::PRIORITY, &[0, 0, 0, 1]),
                (attr::ICE_CONTROLLED, &tie_breaker.to_be_bytes()),
                (attr::USE_CANDIDATE, &[]),
            ],
            Some(LOCAL_PWD),
            true,
        );
        assert_eq!(
            agent.handle(&request, from, 0, &mut out),
            StunOutcome::ErrorReply { code: 487 }
        );
        assert_error_response(&out, 487, true);
    }
    assert!(!agent.is_validated(from));
    assert_eq!(agent.selected(), None);
}

#[test]
fn unknown_comprehension_required_attribute_gets_420_listing_it() {
    let mut agent = agent();
    let from = addr("198.51.100.1:4000");
    let mut out = Vec::new();
    let request = custom_request(
        &[
            (attr::USERNAME, USERNAME.as_bytes()),
            (0x7ABC, b"x"),
            (0xC057, b"optional is fine"),
            (0x0033, &[]),
        ],
        Some(LOCAL_PWD),
        true,
    );
    assert_eq!(
        agent.handle(&request, from, 0, &mut out),
        StunOutcome::ErrorReply { code: 420 }
    );
    assert_error_response(&out, 420, true);
    let reply = parse(&out).unwrap();
    assert_eq!(
        reply.attribute(attr::UNKNOWN_ATTRIBUTES),
        Some(&[0x7A, 0xBC, 0x00, 0x33][..])
    );
    assert!(!agent.is_validated(from));
}

#[test]
fn unknown_optional_attribute_and_attributes_after_integrity_are_ignored() {
    let mut agent = agent();
    let from = addr("198.51.100.1:4000");
    let mut out = Vec::new();
    // Build a request, then append an unknown comprehension-required attribute
    // after MESSAGE-INTEGRITY: RFC 8489 §14.5 says to ignore it.
    let mut request = Vec::new();
    let mut writer = MessageWriter::new(&mut request, Class::Request, METHOD_BINDING, &txid(9));
    writer
        .attribute(attr::USERNAME, USERNAME.as_bytes())
        .unwrap();
    writer.attribute(0xC057, &[0, 1, 0, 0]).unwrap();
    writer.message_integrity(LOCAL_PWD.as_bytes()).unwrap();
    writer.attribute(0x7ABC, b"after").unwrap();
    writer.fingerprint().unwrap();
    assert!(matches!(
        agent.handle(&request, from, 0, &mut out),
        StunOutcome::Reply { .. }
    ));
}

#[test]
fn non_requests_are_dropped() {
    let mut agent = agent();
    let from = addr("198.51.100.1:4000");
    let mut out = Vec::new();
    let build = |class: Class, method: u16| {
        let mut buf = Vec::new();
        let mut writer = MessageWriter::new(&mut buf, class, method, &txid(10));
        writer.fingerprint().unwrap();
        buf
    };
    let indication = build(Class::Indication, METHOD_BINDING);
    let success = build(Class::SuccessResponse, METHOD_BINDING);
    let error = build(Class::ErrorResponse, METHOD_BINDING);
    let allocate = build(Class::Request, 0x003);
    assert_eq!(
        agent.handle(&indication, from, 0, &mut out),
        StunOutcome::Drop(DropReason::Indication)
    );
    assert_eq!(
        agent.handle(&success, from, 0, &mut out),
        StunOutcome::Drop(DropReason::NotRequest)
    );
    assert_eq!(
        agent.handle(&error, from, 0, &mut out),
        StunOutcome::Drop(DropReason::NotRequest)
    );
    assert_eq!(
        agent.handle(&allocate, from, 0, &mut out),
        StunOutcome::Drop(DropReason::UnknownMethod)
    );
    assert_eq!(
        agent.handle(&[0u8; 10], from, 0, &mut out),
        StunOutcome::Drop(DropReason::Malformed)
    );
    let mut truncated = check(1, false);
    truncated.truncate(40);
    assert_eq!(
        agent.handle(&truncated, from, 0, &mut out),
        StunOutcome::Drop(DropReason::Malformed)
    );
    assert!(out.is_empty());
}

#[test]
fn use_candidate_selects_and_most_recent_nomination_wins() {
    let mut agent = agent();
    let a = addr("198.51.100.1:4000");
    let b = addr("[2001:db8::5]:4001");
    let mut out = Vec::new();

    assert_eq!(
        agent.handle(&check(1, false), a, 0, &mut out),
        StunOutcome::Reply {
            nominated: false,
            selected_changed: false
        }
    );
    assert_eq!(
        agent.handle(&check(2, true), a, 10, &mut out),
        StunOutcome::Reply {
            nominated: true,
            selected_changed: true
        }
    );
    assert_eq!(agent.selected(), Some(a));
    assert_eq!(agent.take_event(), Some(IceEvent::Selected(a)));
    assert_eq!(agent.take_event(), None);

    // Re-nominating the same address changes nothing.
    assert_eq!(
        agent.handle(&check(3, true), a, 20, &mut out),
        StunOutcome::Reply {
            nominated: true,
            selected_changed: false
        }
    );
    assert_eq!(agent.take_event(), None);

    // A check from b without USE-CANDIDATE validates b but keeps a selected.
    assert_eq!(
        agent.handle(&check(4, false), b, 30, &mut out),
        StunOutcome::Reply {
            nominated: false,
            selected_changed: false
        }
    );
    assert_eq!(agent.selected(), Some(a));
    assert!(agent.is_validated(a) && agent.is_validated(b));

    // Nominating b switches; nominating a again switches back.
    assert_eq!(
        agent.handle(&check(5, true), b, 40, &mut out),
        StunOutcome::Reply {
            nominated: true,
            selected_changed: true
        }
    );
    assert_eq!(agent.selected(), Some(b));
    assert_eq!(
        agent.handle(&check(6, true), a, 50, &mut out),
        StunOutcome::Reply {
            nominated: true,
            selected_changed: true
        }
    );
    assert_eq!(agent.selected(), Some(a));
    assert_eq!(agent.take_event(), Some(IceEvent::Selected(b)));
    assert_eq!(agent.take_event(), Some(IceEvent::Selected(a)));
    assert_eq!(agent.take_event(), None);
}

#[test]
fn consent_is_refreshed_by_checks_and_lost_after_timeout() {
    let mut agent = agent();
    let a = addr("198.51.100.1:4000");
    let mut out = Vec::new();
    agent.handle(&check(1, true), a, 0, &mut out);
    assert_eq!(agent.take_event(), Some(IceEvent::Selected(a)));

    // Checks every 10 s keep consent alive well past 30 s.
    for (i, t) in (10_000..=60_000u64).step_by(10_000).enumerate() {
        assert_eq!(agent.poll(t), None, "t={t}");
        agent.handle(&check(10 + i as u8, false), a, t, &mut out);
    }
    assert_eq!(
        agent.poll(89_999),
        None,
        "last check at 60 s: alive until 90 s"
    );
    assert_eq!(agent.poll(90_000), Some(IceEvent::ConsentLost(a)));
    assert_eq!(agent.poll(90_001), None, "reported once");
    assert_eq!(agent.poll(200_000), None, "reported once");
    assert_eq!(agent.selected(), None);
    assert!(
        !agent.is_validated(a),
        "no media to an address without consent"
    );

    // A fresh nomination restores it.
    assert_eq!(
        agent.handle(&check(99, true), a, 200_000, &mut out),
        StunOutcome::Reply {
            nominated: true,
            selected_changed: true
        }
    );
    assert_eq!(agent.take_event(), Some(IceEvent::Selected(a)));
    assert!(agent.is_validated(a));
}

#[test]
fn only_checks_from_the_selected_address_refresh_consent() {
    let mut agent = agent();
    agent.set_consent_timeout_ms(5_000);
    let a = addr("198.51.100.1:4000");
    let b = addr("198.51.100.2:4000");
    let mut out = Vec::new();
    agent.handle(&check(1, true), a, 1_000, &mut out);
    for t in (2_000..=5_000u64).step_by(1_000) {
        agent.handle(&check(2, false), b, t, &mut out);
        // Failed authentication from a does not refresh consent either.
        let forged = build_binding_request(txid(3), USERNAME, "wrong", 1, false, TIE_BREAKER);
        agent.handle(&forged, a, t, &mut out);
        assert_eq!(agent.poll(t), None);
    }
    assert_eq!(agent.poll(6_000), Some(IceEvent::ConsentLost(a)));
    assert!(
        agent.is_validated(b),
        "b kept checking, so it stays validated"
    );
    assert!(!agent.is_validated(a));
}

#[test]
fn validation_of_unselected_address_expires_with_consent_timeout() {
    let mut agent = agent();
    agent.set_consent_timeout_ms(1_000);
    let a = addr("198.51.100.1:4000");
    let mut out = Vec::new();
    agent.handle(&check(1, false), a, 0, &mut out);
    assert!(agent.is_validated(a));
    assert_eq!(agent.poll(999), None);
    assert!(agent.is_validated(a));
    assert_eq!(
        agent.poll(1_000),
        None,
        "nothing selected, so nothing to report"
    );
    assert!(!agent.is_validated(a));
}

#[test]
fn validated_table_is_bounded_and_keeps_the_selected_address() {
    let mut agent = agent();
    let mut out = Vec::new();
    let selected = addr("10.0.0.1:1");
    agent.handle(&check(0, true), selected, 0, &mut out);
    for port in 2..100u16 {
        let from = SocketAddr::new("10.0.0.1".parse().unwrap(), port);
        agent.handle(&check(1, false), from, u64::from(port), &mut out);
        assert!(agent.is_validated(from));
    }
    assert!(
        agent.is_validated(selected),
        "the selected address is never evicted"
    );
    assert!(
        !agent.is_validated(addr("10.0.0.1:2")),
        "the oldest unselected address was evicted"
    );
}

#[test]
fn pending_events_are_bounded() {
    let mut agent = agent();
    let mut out = Vec::new();
    for port in 1..=(MAX_PENDING_EVENTS as u16 + 5) {
        agent.handle(
            &check(1, true),
            SocketAddr::new("10.0.0.9".parse().unwrap(), port),
            0,
            &mut out,
        );
    }
    let drained: Vec<IceEvent> = std::iter::from_fn(|| agent.take_event()).collect();
    assert_eq!(drained.len(), MAX_PENDING_EVENTS);
    let last = SocketAddr::new("10.0.0.9".parse().unwrap(), MAX_PENDING_EVENTS as u16 + 5);
    assert_eq!(
        drained.last(),
        Some(&IceEvent::Selected(last)),
        "the newest events are kept"
    );
}

#[test]
fn out_buffer_is_reused_and_cleared() {
    let mut agent = agent();
    let from = addr("198.51.100.1:4000");
    let mut out = vec![0xAA; 500];
    agent.handle(&check(1, false), from, 0, &mut out);
    assert_eq!(parse_binding_success(&out, LOCAL_PWD), Ok(from));
    assert!(out.capacity() >= 500, "the caller's allocation is kept");
}

#[test]
fn ice_restart_swaps_credentials_and_keeps_the_selected_pair() {
    let mut a = agent();
    let mut out = Vec::new();
    let peer = addr("192.0.2.10:5000");
    assert!(matches!(a.handle(&check(1, true), peer, 1_000, &mut out), StunOutcome::Reply { nominated: true, .. }));
    assert_eq!(a.selected(), Some(peer));
    a.restart("newL", "new-local-password-98765", Some("newR"));
    // Media keeps flowing to the pair already selected.
    assert_eq!(a.selected(), Some(peer));
    assert!(a.is_validated(peer));
    // Old credentials are refused now (401); the new ones are accepted and keep consent.
    assert!(matches!(a.handle(&check(2, false), peer, 2_000, &mut out), StunOutcome::ErrorReply { code: 401 }));
    let fresh = build_binding_request(txid(3), "newL:newR", "new-local-password-98765", 0x6e00_01ff, true, TIE_BREAKER);
    assert!(matches!(a.handle(&fresh, peer, 3_000, &mut out), StunOutcome::Reply { .. }));
    assert!(parse_binding_success(&out, "new-local-password-98765").is_ok());
    // Consent is judged from the last authenticated check: still fresh well past the first.
    assert!(a.poll(25_000).is_none());
    assert!(a.is_validated(peer));
}

#[test]
fn a_check_names_the_agent_it_is_for_by_the_first_half_of_its_username() {
    let check = ferry_stun::build_binding_request([7; 12], "ferryfrag:peerfrag", "pwd-of-ferry-1234567890", 1, false, 9);
    assert_eq!(ferry_stun::recipient_ufrag(&check), Some("ferryfrag"));
    let no_colon = ferry_stun::build_binding_request([7; 12], "ferryfrag", "pwd-of-ferry-1234567890", 1, false, 9);
    assert_eq!(ferry_stun::recipient_ufrag(&no_colon), None);
    let empty = ferry_stun::build_binding_request([7; 12], ":peer", "pwd-of-ferry-1234567890", 1, false, 9);
    assert_eq!(ferry_stun::recipient_ufrag(&empty), None);
    assert_eq!(ferry_stun::recipient_ufrag(b"\x80\x60not stun at all"), None);
    for cut in 0..check.len() {
        let _ = ferry_stun::recipient_ufrag(&check[..cut]);
    }
}
