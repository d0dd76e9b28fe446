//! "No allocation per request beyond `out`": a counting allocator proves that
//! answering checks (success and every error path) allocates nothing once
//! `out` has capacity. Its own test binary, so the allocator sees only this.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use ferry_stun::{
    attr, build_binding_request, Class, IceLiteAgent, MessageWriter, StunOutcome, METHOD_BINDING,
};

struct CountingAllocator;

thread_local! {
    // Per thread, so the test harness's own threads do not disturb the count.
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

#[test]
fn handling_checks_allocates_nothing_beyond_out() {
    let pwd = "no-alloc-password-xyz";
    let mut agent = IceLiteAgent::new("loc", pwd);
    agent.set_remote_ufrag(Some("rem"));
    let requests = [
        build_binding_request([1; 12], "loc:rem", pwd, 1, false, 5),
        build_binding_request([2; 12], "loc:rem", pwd, 1, true, 5),
        build_binding_request([3; 12], "loc:rem", "wrong", 1, false, 5),
        build_binding_request([4; 12], "bad:rem", pwd, 1, false, 5),
        {
            let mut buf = Vec::new();
            let mut w = MessageWriter::new(&mut buf, Class::Request, METHOD_BINDING, &[5; 12]);
            w.attribute(attr::USERNAME, b"loc:rem").unwrap();
            w.attribute(0x7001, b"unknown").unwrap();
            w.attribute(attr::ICE_CONTROLLED, &[0; 8]).unwrap();
            w.message_integrity(pwd.as_bytes()).unwrap();
            w.fingerprint().unwrap();
            buf
        },
    ];
    let sources = [
        "192.0.2.1:1000".parse().unwrap(),
        "[2001:db8::1]:2000".parse().unwrap(),
    ];
    let mut out = Vec::with_capacity(1500);
    // Warm up: the first nomination queues an event and the first check from
    // each source fills a validated slot (fixed array, no allocation either).
    for (i, request) in requests.iter().enumerate() {
        agent.handle(request, sources[i % 2], 0, &mut out);
    }
    while agent.take_event().is_some() {}

    // The counter itself works: one boxed value is one allocation.
    let probe = allocations();
    drop(std::hint::black_box(Box::new(7u64)));
    assert_eq!(allocations(), probe + 1);

    let before = allocations();
    let mut outcomes = [0usize; 2];
    for round in 0..1_000u64 {
        for (i, request) in requests.iter().enumerate() {
            match agent.handle(request, sources[i % 2], round, &mut out) {
                StunOutcome::Reply { .. } => outcomes[0] += 1,
                StunOutcome::ErrorReply { .. } => outcomes[1] += 1,
                StunOutcome::Drop(reason) => panic!("unexpected drop {reason:?}"),
            }
        }
        let _ = agent.poll(round);
    }
    let during = allocations() - before;
    assert_eq!(during, 0, "handle() allocated {during} times");
    assert_eq!(outcomes, [2_000, 3_000]);
}
