use super::*;
use crate::sys::send::{kernel_supports_gso, UDP_SEGMENT};
use crate::sys::{set_socket_buffers, FlushReport, SendQueue};
use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

fn socket() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    set_socket_buffers(s.as_raw_fd(), 1 << 20);
    s
}

/// Datagram `index` of `len` bytes: the index in the first two bytes, then a pattern of it.
fn datagram(index: u16, len: usize) -> Vec<u8> {
    let mut d = vec![0u8; len];
    d[..2].copy_from_slice(&index.to_be_bytes());
    for (k, b) in d[2..].iter_mut().enumerate() {
        *b = (k as u8).wrapping_mul(13).wrapping_add(index as u8);
    }
    d
}

/// Queues datagrams (index, len) from `tx` to `to` and sends them, equal-size runs as GSO.
fn send(tx: &UdpSocket, to: SocketAddr, datagrams: &[(u16, usize)]) {
    let mut q = SendQueue::new(256);
    for &(index, len) in datagrams {
        q.slot().unwrap()[..len].copy_from_slice(&datagram(index, len));
        q.commit(len, tx.as_raw_fd(), 1, &to, None);
    }
    let mut report = FlushReport { sent: Vec::new(), failed: Vec::new() };
    q.flush(&mut report);
    assert_eq!(report.sent.iter().map(|s| s.1).sum::<usize>(), datagrams.len());
}

/// Reads `count` datagrams through `batch` (or what arrives within 2 s), checking the buffer
/// contract of each, then checks nothing more is waiting.
fn receive(batch: &mut RecvBatch, rx: &UdpSocket, count: usize) -> Vec<(Option<SocketAddr>, Vec<u8>)> {
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut got = Vec::new();
    while got.len() < count && Instant::now() < deadline {
        let n = batch.recv(rx.as_raw_fd()).unwrap();
        if n == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        for i in 0..n {
            let (buf, len, from) = batch.get_mut(i);
            assert!(len <= buf.len() && buf.len() <= MAX_DATAGRAM, "datagram {i}: len {len}, buffer {}", buf.len());
            got.push((from, buf[..len].to_vec()));
        }
    }
    assert_eq!(batch.recv(rx.as_raw_fd()).unwrap(), 0, "nothing beyond the expected datagrams");
    got
}

fn expect(got: &[(Option<SocketAddr>, Vec<u8>)], expected: &[(u16, usize)], from: SocketAddr) {
    assert_eq!(got.len(), expected.len(), "datagram count");
    for (k, ((src, bytes), &(index, len))) in got.iter().zip(expected).enumerate() {
        assert_eq!(*src, Some(from), "datagram {k} (#{index}): source");
        assert_eq!(bytes.len(), len, "datagram {k} (#{index}): length");
        assert!(*bytes == datagram(index, len), "datagram {k} (#{index}): bytes");
    }
}

/// Runs of equal sizes, each closed by a shorter datagram or a size change, a run longer
/// than one GSO send, single datagrams, and a datagram exactly MAX_DATAGRAM long.
fn mixed_sizes(first_index: u16) -> Vec<(u16, usize)> {
    let mut sizes = vec![1228; 70];
    sizes.push(300);
    sizes.extend([1000; 9]);
    sizes.extend([1000, 999, 60]);
    sizes.extend([200; 3]);
    sizes.push(1400);
    sizes.extend([MAX_DATAGRAM; 4]);
    sizes.extend([500; 31]);
    sizes.push(12);
    sizes.into_iter().enumerate().map(|(k, len)| (first_index + k as u16, len)).collect()
}

/// Whether the kernel offers GRO here: the GRO tests below check coalescing only then.
fn gro_offered() -> bool {
    enable_gro(socket().as_raw_fd())
}

#[test]
fn gro_is_refused_by_what_is_not_a_udp_socket() {
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut batch = RecvBatch::new(4);
    assert!(!batch.enable_gro(tcp.as_raw_fd()));
    assert!(!batch.has_gro(tcp.as_raw_fd()));
    assert!(!batch.enable_gro(-1));
    assert!(batch.large.is_empty(), "no GRO socket, no large slots");
}

#[test]
fn gro_socket_gets_every_datagram_of_coalesced_runs_in_order() {
    let (tx, rx) = (socket(), socket());
    let mut batch = RecvBatch::new(32);
    let on = batch.enable_gro(rx.as_raw_fd());
    assert_eq!(on, gro_offered());
    assert_eq!(batch.has_gro(rx.as_raw_fd()), on);
    let expected = mixed_sizes(0);
    // Twice: slots are reused from one batch to the next.
    for round in 0..2 {
        send(&tx, rx.local_addr().unwrap(), &expected);
        let before = batch.counters();
        let got = receive(&mut batch, &rx, expected.len());
        expect(&got, &expected, tx.local_addr().unwrap());
        let c = batch.counters();
        assert_eq!(c.datagrams - before.datagrams, expected.len() as u64);
        assert_eq!(c.truncated_dropped, 0);
        if on && kernel_supports_gso() {
            // Loopback hands a segmented send to a GRO socket whole.
            assert!(c.coalesced_buffers > before.coalesced_buffers, "round {round}: {c:?}");
            assert!(c.buffers - before.buffers < 20, "round {round}: {c:?}");
        }
    }
}

#[test]
fn gro_socket_keeps_senders_apart() {
    let senders = [socket(), socket(), socket()];
    let rx = socket();
    let mut batch = RecvBatch::new(32);
    batch.enable_gro(rx.as_raw_fd());
    let to = rx.local_addr().unwrap();
    // Interleaved bursts of the same size from different senders, which must never be merged.
    let bursts: [(usize, u16, usize); 6] = [(0, 20, 1000), (1, 20, 1000), (0, 10, 1000), (2, 7, 600), (1, 1, 1000), (0, 33, 1000)];
    let mut expected: Vec<Vec<(u16, usize)>> = vec![Vec::new(); 3];
    let mut sent = 0;
    for (who, count, len) in bursts {
        let first = (who as u16) * 1000 + expected[who].len() as u16;
        let run: Vec<(u16, usize)> = (0..count).map(|k| (first + k, len)).chain([(first + count, len / 2)]).collect();
        send(&senders[who], to, &run);
        sent += run.len();
        expected[who].extend(run);
    }
    let got = receive(&mut batch, &rx, sent);
    assert_eq!(got.len(), sent);
    for (who, tx) in senders.iter().enumerate() {
        let from = tx.local_addr().unwrap();
        let mine: Vec<_> = got.iter().filter(|(src, _)| *src == Some(from)).cloned().collect();
        expect(&mine, &expected[who], from);
    }
}

#[test]
fn socket_without_gro_works_as_before() {
    let (tx, rx) = (socket(), socket());
    let mut batch = RecvBatch::new(32);
    let expected = mixed_sizes(100);
    send(&tx, rx.local_addr().unwrap(), &expected);
    let got = receive(&mut batch, &rx, expected.len());
    expect(&got, &expected, tx.local_addr().unwrap());
    let c = batch.counters();
    assert_eq!((c.buffers, c.coalesced_buffers), (expected.len() as u64, 0));
    assert!(batch.large.is_empty());
    // An oversized datagram is cut to MAX_DATAGRAM in a buffer of MAX_DATAGRAM, as ever.
    tx.send_to(&datagram(7, 3000), rx.local_addr().unwrap()).unwrap();
    let n = (0..2000).map(|_| batch.recv(rx.as_raw_fd()).unwrap()).find(|&n| n > 0).unwrap_or(0);
    assert_eq!(n, 1);
    let (buf, len, _) = batch.get_mut(0);
    assert_eq!((buf.len(), len), (MAX_DATAGRAM, MAX_DATAGRAM));
    assert!(buf[..] == datagram(7, 3000)[..MAX_DATAGRAM]);
}

#[test]
fn oversized_datagram_on_gro_socket_is_cut_as_before() {
    let (tx, rx) = (socket(), socket());
    let mut batch = RecvBatch::new(8);
    batch.enable_gro(rx.as_raw_fd());
    for len in [3000, MAX_DATAGRAM + 1, 60_000] {
        tx.send_to(&datagram(len as u16, len), rx.local_addr().unwrap()).unwrap();
        let n = (0..2000).map(|_| batch.recv(rx.as_raw_fd()).unwrap()).find(|&n| n > 0).unwrap_or(0);
        assert_eq!(n, 1, "{len}");
        let (buf, got, from) = batch.get_mut(0);
        assert_eq!((buf.len(), got, from), (MAX_DATAGRAM, MAX_DATAGRAM, Some(tx.local_addr().unwrap())));
        assert!(buf[..] == datagram(len as u16, len)[..MAX_DATAGRAM]);
    }
}

#[test]
fn gro_turned_on_behind_the_batch_is_learnt() {
    if !gro_offered() || !kernel_supports_gso() {
        return;
    }
    let (tx, rx) = (socket(), socket());
    let mut batch = RecvBatch::new(32);
    assert!(enable_gro(rx.as_raw_fd()), "not through the batch");
    let to = rx.local_addr().unwrap();
    // A run of 10 x 900 arrives as one 9000-byte buffer in a 2048-byte slot: the two whole
    // datagrams in it are delivered, the cut third is dropped, the rest is lost.
    let run: Vec<(u16, usize)> = (0..10).map(|k| (k, 900)).collect();
    send(&tx, to, &run);
    let got = receive(&mut batch, &rx, 2);
    expect(&got, &run[..2], tx.local_addr().unwrap());
    assert_eq!(batch.counters().truncated_dropped, 1);
    assert!(batch.has_gro(rx.as_raw_fd()), "learnt from the cmsg");
    // From then on the socket reads into large slots.
    send(&tx, to, &run);
    let got = receive(&mut batch, &rx, run.len());
    expect(&got, &run, tx.local_addr().unwrap());
}

/// Datagram counts of successive `recv`s until `total` have arrived (2 s at most).
fn batch_sizes(batch: &mut RecvBatch, rx: &UdpSocket, total: usize) -> Vec<usize> {
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut sizes = Vec::new();
    while sizes.iter().sum::<usize>() < total && Instant::now() < deadline {
        match batch.recv(rx.as_raw_fd()).unwrap() {
            0 => std::thread::sleep(Duration::from_millis(1)),
            n => sizes.push(n),
        }
    }
    sizes
}

#[test]
fn gro_socket_is_asked_for_fewer_buffers_while_they_arrive_coalesced() {
    if !gro_offered() || !kernel_supports_gso() {
        return;
    }
    let (tx, rx) = (socket(), socket());
    let mut batch = RecvBatch::new(32);
    batch.enable_gro(rx.as_raw_fd());
    let to = rx.local_addr().unwrap();
    // Four segmented sends of 64 x 1000 bytes.
    let run: Vec<(u16, usize)> = (0..256).map(|k| (k, 1000)).collect();
    send(&tx, to, &run);
    std::thread::sleep(Duration::from_millis(20));
    // Nothing known of the socket yet: all 32 slots are offered, and the four buffers come at once.
    assert_eq!(batch_sizes(&mut batch, &rx, 256), vec![256]);
    assert_eq!(batch.counters().buffers, 4);
    // Then one buffer per batch, about the 32 datagrams the batch was made for.
    send(&tx, to, &run);
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(batch_sizes(&mut batch, &rx, 256), vec![64; 4]);
    assert_eq!(batch.counters().buffers, 8);
    // Datagrams that cannot be coalesced (each longer than the last): one comes in the one
    // slot offered, and the batch is back to 32 slots.
    let growing: Vec<(u16, usize)> = (0..40).map(|k| (k, 100 + k as usize)).collect();
    send(&tx, to, &growing);
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(batch_sizes(&mut batch, &rx, 40), vec![1, 32, 7]);
    send(&tx, to, &growing);
    let got = receive(&mut batch, &rx, growing.len());
    expect(&got, &growing, tx.local_addr().unwrap());
}

#[test]
fn get_mut_past_the_batch_is_empty() {
    let mut batch = RecvBatch::new(4);
    let (buf, len, from) = batch.get_mut(0);
    assert_eq!((buf.len(), len, from), (0, 0, None));
    let rx = socket();
    assert_eq!(batch.recv(rx.as_raw_fd()).unwrap(), 0);
    assert_eq!(batch.get_mut(usize::MAX).1, 0);
}

/// (start, len, room) of each datagram `split_buffer` makes, and how many it dropped.
fn split(copied: usize, capacity: usize, segment: Option<usize>, truncated: bool) -> (Vec<(usize, usize, usize)>, u64) {
    let mut out = Vec::new();
    let dropped = split_buffer(copied, capacity, segment, truncated, |s, l, r| out.push((s, l, r)));
    (out, dropped)
}

#[test]
fn split_buffer_cuts_at_the_segment_size() {
    let big = GRO_SLOT_BYTES;
    // No GRO: one datagram, the whole (capped) slot as room.
    assert_eq!(split(1200, MAX_DATAGRAM, None, false), (vec![(0, 1200, MAX_DATAGRAM)], 0));
    assert_eq!(split(0, MAX_DATAGRAM, None, false), (vec![(0, 0, MAX_DATAGRAM)], 0));
    assert_eq!(split(3000, big, None, false), (vec![(0, MAX_DATAGRAM, MAX_DATAGRAM)], 0));
    // Truncated lone datagram: capped, as before.
    assert_eq!(split(MAX_DATAGRAM, MAX_DATAGRAM, None, true), (vec![(0, MAX_DATAGRAM, MAX_DATAGRAM)], 0));
    // Equal run, exact multiple; then with a shorter last one.
    assert_eq!(split(3000, big, Some(1000), false), (vec![(0, 1000, 1000), (1000, 1000, 1000), (2000, 1000, MAX_DATAGRAM)], 0));
    assert_eq!(split(2500, big, Some(1000), false), (vec![(0, 1000, 1000), (1000, 1000, 1000), (2000, 500, MAX_DATAGRAM)], 0));
    // A segment size at or above what arrived: one datagram.
    assert_eq!(split(1000, big, Some(1000), false), (vec![(0, 1000, MAX_DATAGRAM)], 0));
    assert_eq!(split(700, big, Some(usize::MAX), false), (vec![(0, 700, MAX_DATAGRAM)], 0));
    // Truncated: whole segments kept, the cut one dropped; a cut on a boundary drops none.
    assert_eq!(split(MAX_DATAGRAM, MAX_DATAGRAM, Some(900), true), (vec![(0, 900, 900), (900, 900, 900)], 1));
    assert_eq!(split(MAX_DATAGRAM, MAX_DATAGRAM, Some(1024), true), (vec![(0, 1024, 1024), (1024, 1024, 1024)], 0));
    // Segments longer than MAX_DATAGRAM are capped; room never reaches the next one.
    assert_eq!(split(7000, big, Some(3000), false), (vec![(0, 2048, 2048), (3000, 2048, 2048), (6000, 1000, 2048)], 0));
    // The kernel claiming more than the slot holds counts as truncation.
    assert_eq!(split(5000, MAX_DATAGRAM, Some(1000), false), (vec![(0, 1000, 1000), (1000, 1000, 1000)], 1));
    // Room at the very end of a slot.
    assert_eq!(split(big, big, Some(1000), false).0.last(), Some(&(65_000, 536, 536)));
}

#[test]
fn split_buffer_keeps_datagrams_inside_their_slot_and_apart() {
    let mut rng = ferry_testkit::Rng::new(0x9E37_79B9_7F4A_7C15);
    for _ in 0..20_000 {
        let capacity = if rng.chance(1, 2) { MAX_DATAGRAM } else { GRO_SLOT_BYTES };
        let copied = rng.below(capacity + 100);
        let segment = match rng.below(4) {
            0 => None,
            1 => Some(rng.below(64)),
            _ => Some(rng.below(5000)),
        };
        let truncated = rng.chance(1, 3);
        let (out, dropped) = split(copied, capacity, segment, truncated);
        assert!(!out.is_empty() || dropped == 1, "{copied} {segment:?}");
        let mut end = 0;
        for &(start, len, room) in &out {
            assert!(start >= end && len <= room && room <= MAX_DATAGRAM && start + room <= capacity, "{copied} {capacity} {segment:?} {truncated}: {out:?}");
            end = start + room;
        }
    }
}

/// Control bytes holding the given cmsgs (level, type, data), laid out as the kernel does.
fn control(cmsgs: &[(libc::c_int, libc::c_int, &[u8])]) -> Vec<u8> {
    let align = std::mem::size_of::<usize>();
    let mut out = Vec::new();
    for &(level, kind, data) in cmsgs {
        // SAFETY: cmsghdr is a plain C struct (with private padding on some targets); zero is valid.
        let mut h: libc::cmsghdr = unsafe { std::mem::zeroed() };
        // SAFETY: CMSG_LEN is pure arithmetic.
        h.cmsg_len = unsafe { libc::CMSG_LEN(data.len() as u32) } as _;
        h.cmsg_level = level;
        h.cmsg_type = kind;
        // SAFETY: views the live struct's bytes.
        let bytes = unsafe { std::slice::from_raw_parts(&h as *const _ as *const u8, std::mem::size_of::<libc::cmsghdr>()) };
        out.extend_from_slice(bytes);
        // SAFETY: as above.
        out.resize(out.len() - bytes.len() + unsafe { libc::CMSG_LEN(0) } as usize, 0);
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(align) * align, 0);
    }
    out
}

#[test]
fn gro_segment_size_is_read_from_the_cmsg() {
    let size = 1200i32.to_ne_bytes();
    assert_eq!(gro_segment_size(&control(&[(libc::SOL_UDP, UDP_GRO, &size)])), Some(1200));
    let other = [7u8; 16];
    assert_eq!(gro_segment_size(&control(&[(libc::SOL_SOCKET, 29, &other), (libc::SOL_UDP, UDP_GRO, &size)])), Some(1200));
    assert_eq!(gro_segment_size(&control(&[(libc::SOL_UDP, UDP_SEGMENT, &size)])), None);
    assert_eq!(gro_segment_size(&control(&[(libc::SOL_IP, UDP_GRO, &size)])), None);
    assert_eq!(gro_segment_size(&control(&[(libc::SOL_UDP, UDP_GRO, &size[..2])])), None, "too short for an int");
    assert_eq!(gro_segment_size(&control(&[(libc::SOL_UDP, UDP_GRO, &0i32.to_ne_bytes())])), None);
    assert_eq!(gro_segment_size(&control(&[(libc::SOL_UDP, UDP_GRO, &(-5i32).to_ne_bytes())])), None);
    assert_eq!(gro_segment_size(&[]), None);
    // A length running past the control bytes ends the walk.
    let mut cut = control(&[(libc::SOL_UDP, UDP_GRO, &size)]);
    // SAFETY: CMSG_LEN is pure arithmetic.
    cut.truncate(unsafe { libc::CMSG_LEN(4) } as usize - 1);
    assert_eq!(gro_segment_size(&cut), None);
}

#[test]
fn gro_segment_size_survives_any_control_bytes() {
    let mut rng = ferry_testkit::Rng::new(0x1234_5678_9ABC_DEF1);
    let valid = control(&[(libc::SOL_UDP, UDP_GRO, &1200i32.to_ne_bytes())]);
    for round in 0..50_000 {
        let mut bytes = rng.bytes_below(80);
        if round % 2 == 0 {
            // Start from a valid cmsg and corrupt a few bytes, to reach the deeper paths.
            bytes = valid.clone();
            for _ in 0..1 + rng.below(3) {
                let at = rng.below(bytes.len());
                bytes[at] = rng.byte();
            }
            bytes.truncate(rng.below(bytes.len() + 1));
        }
        if let Some(s) = gro_segment_size(&bytes) {
            assert!(s > 0 && s <= i32::MAX as usize);
        }
    }
}
