//! Where the engine puts endpoints it is not told where to put: by load, a group's endpoints
//! together while their thread has room; round-robin when asked; and a thread asked for
//! explicitly is honoured.

use std::net::SocketAddr;
use std::sync::Arc;

use ferry_engine::{EndpointConfig, Engine, EngineOptions, Event, Placement};

fn engine(workers: usize, placement: Placement) -> Engine {
    Engine::new(EngineOptions { workers, placement, ..EngineOptions::default() }, Arc::new(|_: Vec<Event>| {})).unwrap()
}

fn open(engine: &Engine, group: Option<u64>) -> (u32, usize) {
    let mut cfg = EndpointConfig::new("127.0.0.1:0".parse::<SocketAddr>().unwrap());
    cfg.group = group;
    let (id, _) = engine.open_endpoint(cfg).unwrap();
    (id, engine.endpoint_worker(id).unwrap())
}

#[test]
fn a_groups_endpoints_stay_on_one_thread_and_groups_spread_over_threads() {
    let e = engine(2, Placement::Load);
    let room_a: Vec<usize> = (0..6).map(|_| open(&e, Some(1)).1).collect();
    assert!(room_a.iter().all(|&w| w == room_a[0]), "room A on one thread: {room_a:?}");
    // The next room starts on the thread with less load: the other one.
    let room_b: Vec<usize> = (0..6).map(|_| open(&e, Some(2)).1).collect();
    assert!(room_b.iter().all(|&w| w == room_b[0]), "room B on one thread: {room_b:?}");
    assert_ne!(room_a[0], room_b[0], "rooms A and B on different threads");
    // Endpoints of no group go where load is least: alternate while loads are even.
    let loose: Vec<usize> = (0..4).map(|_| open(&e, None).1).collect();
    assert_eq!(loose.iter().filter(|&&w| w == 0).count(), 2, "spread: {loose:?}");
    let stats = e.stats().unwrap();
    assert_eq!(stats.workers.iter().map(|w| w.endpoints.len()).collect::<Vec<_>>(), vec![8, 8]);
}

#[test]
fn closing_endpoints_frees_their_weight() {
    let e = engine(2, Placement::Load);
    let first: Vec<(u32, usize)> = (0..4).map(|_| open(&e, Some(7))).collect();
    let busy = first[0].1;
    for (id, _) in &first {
        e.close_endpoint(*id).unwrap();
    }
    // Room 7 is gone: a new room may start anywhere, and its endpoints stay together.
    let again: Vec<usize> = (0..3).map(|_| open(&e, Some(7)).1).collect();
    assert!(again.iter().all(|&w| w == again[0]), "{again:?} (was on {busy})");
    assert_eq!(e.stats().unwrap().endpoint_count(), 3);
}

#[test]
fn round_robin_spreads_every_group() {
    let e = engine(3, Placement::RoundRobin);
    let placed: Vec<usize> = (0..6).map(|_| open(&e, Some(1)).1).collect();
    assert_eq!(placed, vec![0, 1, 2, 0, 1, 2]);
}

#[test]
fn an_explicit_thread_wins_and_a_missing_one_is_an_error() {
    let e = engine(2, Placement::Load);
    let mut cfg = EndpointConfig::new("127.0.0.1:0".parse::<SocketAddr>().unwrap());
    cfg.worker = Some(1);
    cfg.group = Some(9);
    let (id, _) = e.open_endpoint(cfg.clone()).unwrap();
    assert_eq!(e.endpoint_worker(id).unwrap(), 1);
    cfg.worker = Some(2);
    assert!(e.open_endpoint(cfg).unwrap_err().0.contains("no media thread 2"));
}
