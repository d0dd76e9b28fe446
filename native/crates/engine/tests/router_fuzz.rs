//! The sans-IO [`Router`] without sockets or threads (helpers in common/mod.rs): random datagrams
//! and control calls over several routers, checked against a model.

mod common;

use common::*;

// ---- random input --------------------------------------------------------------------------

/// What the random test believes exists; the routers must agree.
struct FuzzEndpoint {
    id: u32,
    router: usize,
    /// ICE credentials (local ufrag, pwd) when the endpoint runs ICE-lite.
    ice: Option<(String, String)>,
    /// What the peer protects with, when the endpoint has SRTP keys.
    srtp_tx: Option<SrtpContext>,
}

struct Model {
    endpoints: Vec<FuzzEndpoint>,
    /// (id, router, endpoint, SSRC)
    sources: Vec<(u32, usize, u32, u32)>,
    outputs: Vec<(u32, usize, u32)>,
    dead_sources: Vec<SourceRef>,
    next_id: u32,
    /// Per-SSRC-slot sequence numbers of the well-formed RTP the publishers send.
    seqs: [u16; 8],
    /// Per endpoint: (UnknownSsrc events seen, events allowed).
    unknown_reports: std::collections::HashMap<u32, (usize, usize)>,
}

const FUZZ_SSRCS: [u32; 8] = [1, 2, 3, 0xa1, 0xa2, 0xdead_beef, 0x1000, 0xffff_ffff];
const FUZZ_OUTPUT_SSRCS: [u32; 12] = [0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29, 0x9999, 1];

fn fuzz_from(rng: &mut Rng) -> SocketAddr {
    if rng.chance(9, 10) {
        let i = rng.below(5) as u8;
        addr(203, 0, 113, i, 7000 + u16::from(i))
    } else {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::from(rng.next_u64() as u32)), rng.next_u64() as u16)
    }
}

/// Well-formed RTP of a known SSRC: CSRCs, header extensions (one- or two-byte form, with
/// audio level, transport-cc and rid elements), VP8 or random payload, sometimes padding.
fn fuzz_rtp(rng: &mut Rng, model: &mut Model, ep: Option<u32>) -> Vec<u8> {
    // Mostly the SSRC of one of the endpoint's sources.
    let claimed: Vec<u32> = model.sources.iter().filter(|s| Some(s.2) == ep).map(|s| s.3).collect();
    let slot = match claimed.as_slice() {
        [] => rng.below(FUZZ_SSRCS.len()),
        _ if rng.chance(1, 4) => rng.below(FUZZ_SSRCS.len()),
        ssrcs => {
            let ssrc = ssrcs[rng.below(ssrcs.len())];
            FUZZ_SSRCS.iter().position(|&s| s == ssrc).expect("pool SSRC")
        }
    };
    // Mostly in order; now and then a loss, a reordering, or a restart anywhere.
    let step = match rng.below(100) {
        0..=3 => 2 + rng.below(20) as u16,
        4 => 0u16.wrapping_sub(rng.below(5) as u16),
        5 => rng.next_u64() as u16,
        _ => 1,
    };
    model.seqs[slot] = model.seqs[slot].wrapping_add(step);
    let csrcs = if rng.chance(1, 8) { rng.below(3) as u8 } else { 0 };
    let extension = rng.chance(1, 2);
    let padding = rng.chance(1, 16);
    let mut p =
        vec![0x80 | (u8::from(padding) << 5) | (u8::from(extension) << 4) | csrcs, [96, 111, 100, 0][rng.below(4)] | if rng.chance(1, 4) { 0x80 } else { 0 }];
    p.extend_from_slice(&model.seqs[slot].to_be_bytes());
    p.extend_from_slice(&(rng.next_u64() as u32 & 0xffff_f000).to_be_bytes());
    p.extend_from_slice(&FUZZ_SSRCS[slot].to_be_bytes());
    for _ in 0..csrcs {
        p.extend_from_slice(&(rng.next_u64() as u32).to_be_bytes());
    }
    if extension {
        let mut body = Vec::new();
        let two_byte = rng.chance(1, 4);
        for _ in 0..rng.below(4) {
            let (id, value): (u8, Vec<u8>) = match rng.below(4) {
                0 => (1, vec![rng.byte()]),                                              // audio level
                1 => (3, (rng.next_u64() as u16).to_be_bytes().to_vec()),                    // transport-wide seq
                2 => (4, if rng.chance(1, 2) { b"h".to_vec() } else { b"lo".to_vec() }), // rid
                _ => {
                    let id = rng.below(15) as u8;
                    let n = 1 + rng.below(4);
                    (id, rng.bytes(n))
                }
            };
            if two_byte {
                body.extend_from_slice(&[id, value.len() as u8]);
            } else {
                body.push((id << 4) | (value.len() as u8 - 1));
            }
            body.extend_from_slice(&value);
        }
        while body.len() % 4 != 0 {
            body.push(0);
        }
        p.extend_from_slice(if two_byte { &[0x10, 0x00] } else { &[0xbe, 0xde] });
        p.extend_from_slice(&((body.len() / 4) as u16).to_be_bytes());
        p.extend_from_slice(&body);
    }
    match rng.below(4) {
        0 => p.extend_from_slice(vp8_payload(Frame::KeyStart)),
        1 => p.extend_from_slice(vp8_payload(Frame::DeltaStart)),
        2 => p.extend_from_slice(vp8_payload(Frame::Continuation)),
        _ => {
            let n = rng.below(1400);
            p.extend(rng.bytes(n));
        }
    }
    if padding {
        let n = 1 + rng.below(8) as u8;
        p.resize(p.len() + usize::from(n - 1), 0);
        p.push(n);
    }
    p
}

/// Well-formed RTCP, mostly about the outputs' SSRCs: feedback, reports, SDES, BYE.
fn fuzz_rtcp(rng: &mut Rng) -> Vec<u8> {
    let mut p = Vec::new();
    for _ in 0..1 + rng.below(3) {
        let media = if rng.chance(4, 5) { FUZZ_OUTPUT_SSRCS[rng.below(FUZZ_OUTPUT_SSRCS.len())] } else { rng.next_u64() as u32 };
        let sender = rng.next_u64() as u32;
        let block =
            rtcp::ReportBlock { ssrc: media, fraction_lost: rng.byte(), cumulative_lost: rng.next_u64() as i32 >> 8, highest_seq: 0, jitter: 0, lsr: 0, dlsr: 0 };
        match rng.below(9) {
            0 | 1 => p.extend_from_slice(&rtcp::build_pli(sender, media)),
            2 => p.extend_from_slice(&test_rtcp::build_fir(sender, media, rng.byte())),
            3 => p.extend(rtcp::build_nack(sender, media, &[rng.next_u64() as u16, rng.next_u64() as u16])),
            4 => p.extend(rtcp::build_remb(sender, rng.below_u64(10_000_000), &[media])),
            5 => p.extend(test_rtcp::build_receiver_report(sender, &[block])),
            6 => p.extend(test_rtcp::build_sender_report(sender, rng.next_u64(), rng.next_u64() as u32, 1, 2, &[block])),
            7 => p.extend(test_rtcp::build_sdes_cname(sender, b"fuzz")),
            _ => p.extend(test_rtcp::build_bye(&[media])),
        }
    }
    p
}

fn mutate(rng: &mut Rng, p: &mut Vec<u8>) {
    match rng.below(4) {
        0 => {
            for _ in 0..1 + rng.below(4) {
                if !p.is_empty() {
                    let i = rng.below(p.len());
                    p[i] ^= 1 << rng.below(8);
                }
            }
        }
        1 => {
            let n = rng.below(p.len() + 1);
            p.truncate(n);
        }
        2 => {
            let n = rng.below(MAX_DATAGRAM - p.len().min(MAX_DATAGRAM) + 1);
            p.extend(rng.bytes(n));
        }
        _ => {
            if !p.is_empty() {
                let i = rng.below(p.len());
                p[i] = rng.byte();
            }
        }
    }
}

/// One datagram for endpoint `ep` (None: an endpoint that does not exist).
fn fuzz_datagram(rng: &mut Rng, model: &mut Model, ep: Option<usize>) -> Vec<u8> {
    let mut p = match rng.below(14) {
        0 => {
            let n = rng.below(MAX_DATAGRAM + 1);
            return rng.bytes(n);
        }
        1..=6 => {
            let id = ep.map(|i| model.endpoints[i].id);
            fuzz_rtp(rng, model, id)
        }
        7..=9 => fuzz_rtcp(rng),
        10 => {
            let (user, pwd) = match ep.and_then(|i| model.endpoints[i].ice.clone()) {
                Some((ufrag, pwd)) if rng.chance(3, 4) => (format!("{ufrag}:r"), pwd),
                _ => ("nobody:r".to_string(), "not-the-password-at-all".to_string()),
            };
            let tid: [u8; 12] = std::array::from_fn(|_| rng.byte());
            ferry_stun::build_binding_request(tid, &user, &pwd, rng.next_u64() as u32, rng.chance(1, 2), rng.next_u64())
        }
        11 => {
            let n = rng.below(300);
            let mut p = vec![20 + rng.below(44) as u8];
            p.extend(rng.bytes(n));
            p
        }
        _ => {
            let n = rng.below(64);
            let mut p = vec![128 + rng.below(64) as u8];
            p.extend(rng.bytes(n));
            p
        }
    };
    // Media for an endpoint with keys is mostly protected, as its peer would send it.
    if let Some(ctx) = ep.and_then(|i| model.endpoints[i].srtp_tx.as_mut()) {
        if p.len() >= 12 && rng.chance(7, 8) {
            let len = p.len();
            p.resize(len + 64, 0);
            let r = if rtp::is_rtcp(&p[..len]) { ctx.protect_rtcp(&mut p, len) } else { ctx.protect_rtp(&mut p, len) };
            p.truncate(r.unwrap_or(len));
        }
    }
    if rng.chance(1, 4) {
        mutate(rng, &mut p);
    }
    p.truncate(MAX_DATAGRAM);
    p
}

/// A reference to a live source (mostly), a removed one, or none.
fn fuzz_source_ref(rng: &mut Rng, m: &Mesh, model: &Model) -> Option<SourceRef> {
    match rng.below(10) {
        0..=6 if !model.sources.is_empty() => {
            let (id, home, _, _) = model.sources[rng.below(model.sources.len())];
            Some(m.sref(home, id))
        }
        7 | 8 if !model.dead_sources.is_empty() => Some(model.dead_sources[rng.below(model.dead_sources.len())]),
        _ => None,
    }
}

/// The routers hold what the model says; subscriptions and remote feeds pair up.
fn check_model(m: &Mesh, model: &Model) {
    for (r, router) in m.routers.iter().enumerate() {
        assert_eq!(router.endpoint_count(), model.endpoints.iter().filter(|e| e.router == r).count(), "router {r} endpoints");
        assert_eq!(router.source_count(), model.sources.iter().filter(|s| s.1 == r).count(), "router {r} sources");
        assert_eq!(router.output_count(), model.outputs.iter().filter(|o| o.1 == r).count(), "router {r} outputs");
    }
    let subscriptions: usize = m.routers.iter().map(Router::subscription_count).sum();
    let feeds: usize = m.routers.iter().map(Router::remote_feed_count).sum();
    assert_eq!(subscriptions, feeds, "every remote feed is one subscription at its source's home, once the mesh is quiet");
}

/// Where a new source or output goes: a random endpoint (its id and router) and a fresh id;
/// None when there is no endpoint, or no room for another route of its kind.
fn place_route(rng: &mut Rng, model: &mut Model, has_room: impl Fn(&Model) -> bool) -> Option<(u32, usize, u32)> {
    let i = (!model.endpoints.is_empty()).then(|| rng.below(model.endpoints.len()))?;
    if !has_room(model) {
        return None;
    }
    let (ep, r) = (model.endpoints[i].id, model.endpoints[i].router);
    let id = model.next_id;
    model.next_id += 1;
    Some((ep, r, id))
}

fn fuzz_control(rng: &mut Rng, m: &mut Mesh, model: &mut Model) {
    let now = m.now_us;
    let pick_ep = |rng: &mut Rng, model: &Model| (!model.endpoints.is_empty()).then(|| rng.below(model.endpoints.len()));
    match rng.below(24) {
        // Endpoints come and go around a population of ~8, so sources and outputs meet their
        // packets.
        0 | 1 if rng.below(16) >= model.endpoints.len() => {
            // A new endpoint, or one removed earlier coming back under its id.
            let id = if rng.chance(1, 4) && model.next_id > 1 { 1 + rng.below_u64(u64::from(model.next_id - 1)) as u32 } else { model.next_id };
            if id == model.next_id {
                model.next_id += 1;
            }
            let r = rng.below(m.routers.len());
            let mut cfg = EndpointConfig::new(addr(10, 0, 0, r as u8 + 1, 20000 + id as u16));
            let ice = rng.chance(1, 4).then(|| (format!("u{id}"), format!("pwd-{id}-0123456789abcdef")));
            cfg.ice = ice.as_ref().map(|(ufrag, pwd)| IceCredentials { ufrag: ufrag.clone(), pwd: pwd.clone(), remote_ufrag: Some("r".into()) });
            cfg.remote = rng.chance(3, 4).then(|| fuzz_from(rng));
            cfg.latch = rng.chance(1, 2);
            cfg.twcc_extension_id = rng.chance(1, 2).then_some(3);
            cfg.rid_extension_id = rng.chance(1, 2).then_some(4);
            cfg.consent_timeout_ms = rng.chance(1, 4).then(|| rng.below_u64(5000));
            let exists = model.endpoints.iter().any(|e| e.id == id);
            let added = m.routers[r].add_endpoint(id, transport_of(id), cfg.bind, &cfg);
            if exists && model.endpoints.iter().any(|e| e.id == id && e.router == r) {
                assert!(added.is_err(), "endpoint {id} added twice on router {r}");
                return;
            }
            if exists {
                // The engine never does this; undo to keep ids unique.
                m.routers[r].remove_endpoint(id, &mut m.ios[r]).unwrap();
                return;
            }
            added.unwrap();
            let mut srtp_tx = None;
            if rng.chance(1, 3) {
                let tag = id as u8;
                m.routers[r].set_srtp(id, &keys(tag, tag ^ 0xff)).unwrap();
                srtp_tx = Some(context(tag ^ 0xff));
            }
            model.endpoints.push(FuzzEndpoint { id, router: r, ice, srtp_tx });
            model.unknown_reports.insert(id, (0, 32));
        }
        0 | 1 => {
            let Some(i) = pick_ep(rng, model) else { return };
            let (id, r) = (model.endpoints[i].id, model.endpoints[i].router);
            let closed = m.routers[r].remove_endpoint(id, &mut m.ios[r]).unwrap();
            model.endpoints.swap_remove(i);
            let mut sources: Vec<u32> = model.sources.iter().filter(|s| s.2 == id).map(|s| s.0).collect();
            let mut outputs: Vec<u32> = model.outputs.iter().filter(|o| o.2 == id).map(|o| o.0).collect();
            let (mut got_s, mut got_o) = (closed.sources, closed.outputs);
            for v in [&mut sources, &mut outputs, &mut got_s, &mut got_o] {
                v.sort_unstable();
            }
            assert_eq!((got_s, got_o), (sources, outputs), "routes closed with endpoint {id}");
            for s in model.sources.iter().filter(|s| s.2 == id) {
                model.dead_sources.push(SourceRef { id: s.0, home: r, codec: Some(VideoCodec::Vp8), clock_rate: 90000, kind: MediaKind::Video });
            }
            model.sources.retain(|s| s.2 != id);
            model.outputs.retain(|o| o.2 != id);
            assert!(m.routers[r].remove_endpoint(id, &mut m.ios[r]).is_err());
        }
        2..=5 => {
            let Some((ep, r, id)) = place_route(rng, model, |model| model.sources.len() < 16) else { return };
            let codec = [Some(VideoCodec::Vp8), Some(VideoCodec::H264), Some(VideoCodec::Vp9), None][rng.below(4)];
            let kind = if codec.is_some() { MediaKind::Video } else { MediaKind::Audio };
            let clock_rate = [90000, 48000, 8000, 90000, 90000, 0][rng.below(6)];
            let ssrc = FUZZ_SSRCS[rng.below(FUZZ_SSRCS.len())];
            let config = SourceConfig { ssrc, ssrc_offset: 0, kind, clock_rate, codec };
            if m.routers[r].add_source(id, ep, config).is_ok() {
                model.sources.push((id, r, ep, ssrc));
                model.unknown_reports.get_mut(&ep).expect("endpoint").1 += 1;
                if rng.chance(1, 3) {
                    m.routers[r].set_audio_level_meter(id, Some((1, 1 + rng.below(10) as u32))).unwrap();
                }
                if rng.chance(1, 3) {
                    // Watch for RFC 4733 events on one of the payload types fuzzed packets carry.
                    m.routers[r].set_telephone_events(id, Some(rng.below(128) as u8)).unwrap();
                }
            }
        }
        6 => {
            if model.sources.is_empty() {
                return;
            }
            let (id, r, _, _) = model.sources.swap_remove(rng.below(model.sources.len()));
            model.dead_sources.push(m.sref(r, id));
            m.remove_source(r, id);
            assert!(m.routers[r].remove_source(id, &mut m.ios[r]).is_err());
        }
        7..=12 => {
            let Some((ep, r, id)) = place_route(rng, model, |model| model.outputs.len() < 40) else { return };
            let source = fuzz_source_ref(rng, m, model);
            let config = OutputConfig {
                source: source.map(|s| s.id),
                ssrc: FUZZ_OUTPUT_SSRCS[rng.below(FUZZ_OUTPUT_SSRCS.len())],
                payload_type: rng.chance(1, 3).then_some(100),
                rtx: rng.chance(1, 2).then_some(ferry_engine::RtxConfig { ssrc: 0x7e57_0000 + id, payload_type: 97 }),
            };
            if m.routers[r].add_output(id, ep, &config, source, now, &mut m.ios[r]).is_ok() {
                model.outputs.push((id, r, ep));
                if rng.chance(1, 3) {
                    // Renumber one payload type and drop another, as a SIP bridge does.
                    let map = vec![(rng.below(128) as u8, Some(rng.below(128) as u8)), (rng.below(128) as u8, None)];
                    m.routers[r].set_output_payload_map(id, map).unwrap();
                }
            }
        }
        13..=15 => {
            if model.outputs.is_empty() {
                return;
            }
            let (id, r, _) = model.outputs[rng.below(model.outputs.len())];
            let source = fuzz_source_ref(rng, m, model);
            let on_keyframe = rng.chance(1, 2);
            let home_here_but_gone = source.is_some_and(|s| s.home == r && !m.routers[r].has_source(s.id));
            let result = m.routers[r].switch_output(id, source, on_keyframe, now, &mut m.ios[r]);
            assert_eq!(result.is_err(), home_here_but_gone, "{result:?}");
        }
        16 => {
            if model.outputs.is_empty() {
                return;
            }
            let (id, r, _) = model.outputs[rng.below(model.outputs.len())];
            m.routers[r].pause_output(id, rng.chance(1, 2)).unwrap();
        }
        17 => {
            if model.outputs.is_empty() {
                return;
            }
            let (id, r, _) = model.outputs.swap_remove(rng.below(model.outputs.len()));
            m.remove_output(r, id);
            assert!(m.routers[r].remove_output(id, &mut m.ios[r]).is_err());
        }
        18 => {
            let r = rng.below(m.routers.len());
            let source = rng.below_u64(u64::from(model.next_id) + 2) as u32;
            m.routers[r].request_keyframe(source, rng.chance(1, 2), now, &mut m.ios[r]);
        }
        19 | 20 => {
            let Some(i) = pick_ep(rng, model) else { return };
            let (ep, r) = (model.endpoints[i].id, model.endpoints[i].router);
            match rng.below(4) {
                0 => m.routers[r].set_remote(ep, rng.chance(1, 2).then(|| fuzz_from(rng))).unwrap(),
                1 => {
                    let restarted = m.routers[r].restart_ice(ep, &format!("u{ep}"), &format!("pwd-{ep}-0123456789abcdef"), Some("r"));
                    assert_eq!(restarted.is_ok(), model.endpoints[i].ice.is_some());
                }
                2 => {
                    let _ = m.routers[r].set_ice_remote_ufrag(ep, rng.chance(1, 2).then_some("r"));
                }
                _ => m.routers[r].after_batch(ep, now, &mut m.ios[r]),
            }
        }
        _ => {
            let r = rng.below(m.routers.len());
            m.routers[r].on_timer(now, &mut m.ios[r]);
        }
    }
}

fn fuzz_run(seed: u64, routers: usize, datagrams: usize) {
    let mut m = Mesh::new(routers);
    m.logging = false;
    let mut rule_rng = Rng::mixed(seed ^ 0xdead);
    // A full queue now and then.
    m.drop_forward = Some(Box::new(move |_, _, _| rule_rng.chance(1, 50)));
    let mut rng = Rng::mixed(seed);
    let mut model = Model {
        endpoints: Vec::new(),
        sources: Vec::new(),
        outputs: Vec::new(),
        dead_sources: Vec::new(),
        next_id: 1,
        seqs: [0; 8],
        unknown_reports: Default::default(),
    };
    for _ in 0..30 {
        fuzz_control(&mut rng, &mut m, &mut model);
        (0..routers).for_each(|r| drop(m.take_transmits(r)));
    }
    let mut transmits = 0usize;
    for step in 0..datagrams {
        m.now_us += if rng.chance(1, 1000) { rng.below_u64(40_000_000) } else { rng.below_u64(3000) };
        if rng.chance(1, 20) {
            fuzz_control(&mut rng, &mut m, &mut model);
        }
        // Mostly an endpoint with sources (a publisher), sometimes any, sometimes none.
        let publishers: Vec<usize> = (0..model.endpoints.len()).filter(|&i| model.sources.iter().any(|s| s.2 == model.endpoints[i].id)).collect();
        let target = match rng.below(20) {
            0 => None,
            1..=12 if !publishers.is_empty() => Some(publishers[rng.below(publishers.len())]),
            _ if !model.endpoints.is_empty() => Some(rng.below(model.endpoints.len())),
            _ => None,
        };
        let (r, ep) = match target {
            Some(i) => (model.endpoints[i].router, model.endpoints[i].id),
            None => (rng.below(routers), model.next_id + rng.below(3) as u32),
        };
        let bytes = fuzz_datagram(&mut rng, &mut model, target);
        let from = fuzz_from(&mut rng);
        // Sometimes in a buffer just as long as the datagram, as a short read would leave it.
        if rng.chance(1, 4) {
            let mut buf = bytes.clone();
            let len = buf.len();
            m.routers[r].on_datagram(ep, &mut buf, len, from, m.now_us, &mut m.ios[r]);
        } else {
            m.datagram(r, ep, &bytes, from);
        }
        let n = rng.below(4);
        m.step_random(&mut rng, n);
        // Checked before the next control operation may remove the endpoint.
        for r in 0..routers {
            for t in m.take_transmits(r) {
                assert_eq!(t.transport, transport_of(t.endpoint));
                assert!(m.routers[r].has_endpoint(t.endpoint), "transmit for endpoint {} that router {r} does not have", t.endpoint);
                // Media, not RTCP or STUN (SRTP-protected RTP still reads as an RTP header).
                if t.bytes.len() >= 12 && t.bytes[0] >> 6 == 2 && !rtp::is_rtcp(&t.bytes) {
                    transmits += 1;
                }
            }
        }
        // At most 32 unknown SSRCs reported per endpoint, plus one more for each SSRC a
        // source claimed meanwhile (that SSRC may be reported again once the source is gone).
        for r in 0..routers {
            for e in m.routers[r].take_events() {
                if let Event::UnknownSsrc { endpoint, .. } = e {
                    let (reported, allowed) = model.unknown_reports.get_mut(&endpoint).expect("reported by a live endpoint");
                    *reported += 1;
                    assert!(*reported <= *allowed, "endpoint {endpoint}: {reported} unknown SSRCs reported");
                }
            }
        }
        if step % 2000 == 0 {
            m.settle();
            check_model(&m, &model);
        }
    }
    let sent: u64 = m.routers.iter().flat_map(|r| r.output_stats()).map(|(_, s)| s.packets).sum();
    let received: u64 = m.routers.iter().flat_map(|r| r.source_stats()).map(|(_, s)| s.packets).sum();
    let crossed: u64 = m.routers.iter().map(|r| r.cross_stats().received).sum();
    eprintln!("seed {seed:#x}: {transmits} media transmits; live sources received {received}, live outputs sent {sent}; {crossed} packets crossed routers");
    assert!(transmits > datagrams / 20, "only {transmits} media transmits");
    m.settle();
    check_model(&m, &model);

    // Everything goes, in an order that mixes the three ways routes end.
    while !model.outputs.is_empty() || !model.sources.is_empty() || !model.endpoints.is_empty() {
        match rng.below(3) {
            0 if !model.outputs.is_empty() => {
                let (id, r, _) = model.outputs.swap_remove(rng.below(model.outputs.len()));
                m.remove_output(r, id);
            }
            1 if !model.sources.is_empty() => {
                let (id, r, _, _) = model.sources.swap_remove(rng.below(model.sources.len()));
                m.remove_source(r, id);
            }
            _ => {
                if model.endpoints.is_empty() {
                    continue;
                }
                let e = model.endpoints.swap_remove(rng.below(model.endpoints.len()));
                m.routers[e.router].remove_endpoint(e.id, &mut m.ios[e.router]).unwrap();
                model.sources.retain(|s| s.2 != e.id);
                model.outputs.retain(|o| o.2 != e.id);
            }
        }
        m.step_random(&mut rng, 2);
    }
    m.settle();
    for r in &m.routers {
        let counts = (r.endpoint_count(), r.source_count(), r.output_count(), r.remote_feed_count(), r.subscription_count());
        assert_eq!(counts, (0, 0, 0, 0, 0), "router {} after removing everything", r.worker());
    }
}

#[test]
fn random_datagrams_and_control_never_panic_and_leave_nothing_behind() {
    fuzz_run(0x5eed_0001, 3, 40_000);
    fuzz_run(0x5eed_0002, 2, 30_000);
    fuzz_run(0x5eed_0003, 3, 30_000);
}
