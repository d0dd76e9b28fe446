//! RFC 4733 across a bridge in the sans-IO [`Router`] (helpers in common/mod.rs): an output's
//! payload-type map renumbers or drops per type, and a source reports each telephone-event once.

mod common;

use common::*;
use ferry_engine::{Event, MediaKind, SourceConfig};

fn audio(ssrc: u32) -> SourceConfig {
    SourceConfig { ssrc, ssrc_offset: 0, kind: MediaKind::Audio, clock_rate: 8000, codec: None }
}

/// An RFC 4733 event block (§2.3).
fn dtmf(event: u8, end: bool, duration: u16) -> [u8; 4] {
    let d = duration.to_be_bytes();
    [event, if end { 0x80 | 10 } else { 10 }, d[0], d[1]]
}

#[test]
fn payload_map_rewrites_or_drops_per_type_and_telephone_events_are_reported_once() {
    // A SIP bridge: the SIP peer sends PCMU (0) and events as 101; one output (the browser)
    // numbers events 126, another (a peer without events) must not get them at all.
    let mut m = Mesh::new(1);
    m.endpoint(0, 1, Some(PUB));
    m.endpoint(0, 2, Some(SUB1));
    m.endpoint(0, 3, Some(SUB2));
    m.routers[0].add_source(10, 1, audio(0xa1)).unwrap();
    m.routers[0].set_telephone_events(10, Some(101)).unwrap();
    let a = m.sref(0, 10);
    m.add_output(0, 20, 2, 0x20, Some(0), Some(a));
    m.add_output(0, 21, 3, 0x21, Some(0), Some(a));
    m.routers[0].set_output_payload_map(20, vec![(101, Some(126))]).unwrap();
    m.routers[0].set_output_payload_map(21, vec![(101, None)]).unwrap();
    assert!(m.routers[0].set_output_payload_map(21, vec![(128, None)]).is_err());
    assert!(m.routers[0].set_output_payload_map(99, vec![]).is_err());
    assert!(m.routers[0].set_telephone_events(99, Some(101)).is_err());
    m.take_transmits(0);

    // Audio, then digit 5 (two updates, the end three times), then audio again.
    let mut seq = 100u16;
    let mut send = |m: &mut Mesh, ts: u32, pt: u8, payload: &[u8]| {
        m.datagram(0, 1, &rtp_packet(0xa1, seq, ts, pt, payload), PUB);
        seq += 1;
    };
    send(&mut m, 8000, 0, &[0x55; 160]);
    send(&mut m, 8160, 101, &dtmf(5, false, 160));
    send(&mut m, 8160, 101, &dtmf(5, false, 320));
    for _ in 0..3 {
        send(&mut m, 8160, 101, &dtmf(5, true, 800));
    }
    send(&mut m, 8960, 0, &[0x55; 160]);
    let events: Vec<Event> = m.routers[0].take_events().into_iter().filter(|e| matches!(e, Event::TelephoneEvent { .. })).collect();
    assert_eq!(events, vec![Event::TelephoneEvent { endpoint: 1, source: 10, event: 5, volume: 10, duration: 800 }], "one report per event");

    let t = m.take_transmits(0);
    let browser: Vec<(u16, u8)> = t.iter().filter(|t| t.to == SUB1).map(|t| parse(&t.bytes)).map(|(_, seq, _, pt, _)| (seq, pt)).collect();
    assert_eq!(browser.iter().map(|(_, pt)| *pt).collect::<Vec<_>>(), vec![0, 126, 126, 126, 126, 126, 0], "events renumbered, audio as the output's type");
    let peer: Vec<(u16, u8)> = t.iter().filter(|t| t.to == SUB2).map(|t| parse(&t.bytes)).map(|(_, seq, _, pt, _)| (seq, pt)).collect();
    assert_eq!(peer.iter().map(|(_, pt)| *pt).collect::<Vec<_>>(), vec![0, 0], "no events where they are not negotiated");
    assert_eq!(peer[1].0, peer[0].0.wrapping_add(1), "the dropped events leave no sequence gap");
    assert_eq!(m.output_stats(0, 21).filtered, 5);

    // Off again: events pass with the output's payload type like everything else.
    m.routers[0].set_output_payload_map(21, vec![]).unwrap();
    m.routers[0].set_telephone_events(10, None).unwrap();
    send(&mut m, 9120, 101, &dtmf(7, true, 400));
    assert!(m.routers[0].take_events().iter().all(|e| !matches!(e, Event::TelephoneEvent { .. })));
    assert_eq!(m.take_transmits(0).iter().filter(|t| t.to == SUB2).count(), 1);
}
