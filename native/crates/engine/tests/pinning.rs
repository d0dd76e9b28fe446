//! `media.pin_threads`: each media thread runs on one CPU. Its own test binary, so no other
//! test's engine threads share the process while it reads /proc/self/task.

use std::sync::Arc;

use ferry_engine::{Engine, EngineOptions, Event, Placement};

#[test]
fn auto_uses_the_cpus_this_process_may_run_on_and_pinning_keeps_threads_running() {
    let e = Engine::new(EngineOptions { workers: 0, pin_threads: true, placement: Placement::Load, ..EngineOptions::default() }, Arc::new(|_: Vec<Event>| {})).unwrap();
    // A round trip to every thread: each has pinned itself (first thing it does) by now.
    assert!(e.stats().unwrap().workers.iter().all(|w| w.panics == 0));
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    assert_eq!(e.worker_count(), ferry_engine::auto_workers());
    assert!(e.worker_count() >= 1 && e.worker_count() <= cpus.max(1) * 2);
    // Each pinned thread reports only the CPU it was given (Linux /proc).
    let tasks = std::fs::read_dir("/proc/self/task").unwrap();
    let mut pinned = 0;
    for task in tasks.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if !comm.starts_with("ferry-media-") {
            continue;
        }
        let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
        let allowed = status.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:")).map(str::trim).unwrap_or("");
        assert!(!allowed.contains(',') && !allowed.contains('-'), "{} pinned to one CPU, got {allowed:?}", comm.trim());
        pinned += 1;
    }
    assert_eq!(pinned, e.worker_count());
    assert!(e.stats().unwrap().workers.iter().all(|w| w.panics == 0));
}
