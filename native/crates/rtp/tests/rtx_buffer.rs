//! RetransmissionBuffer: window, wrap, stale slots, size limit, clear.

use ferry_rtp::RetransmissionBuffer;

fn packet(seq: u16) -> Vec<u8> {
    let mut bytes = vec![0x80, 0x60];
    bytes.extend_from_slice(&seq.to_be_bytes());
    bytes.resize(bytes.len() + usize::from(seq % 50), seq as u8);
    bytes
}

#[test]
fn stores_and_returns_recent_packets() {
    let mut buffer = RetransmissionBuffer::new(512, 1500);
    assert_eq!(buffer.get(0), None);
    for seq in 100..700u16 {
        buffer.insert(seq, &packet(seq));
    }
    for seq in 188..700u16 {
        assert_eq!(buffer.get(seq), Some(packet(seq).as_slice()), "seq {seq}");
    }
    assert_eq!(buffer.get(187), None, "evicted by 699");
    assert_eq!(buffer.get(700), None, "never stored");
}

#[test]
fn window_spans_the_sequence_wrap_for_any_capacity() {
    for capacity in [1usize, 7, 500, 512, 1000] {
        let mut buffer = RetransmissionBuffer::new(capacity, 1500);
        let start = 65_535u16.wrapping_sub(capacity as u16 / 2);
        for i in 0..capacity as u16 {
            buffer.insert(start.wrapping_add(i), &packet(start.wrapping_add(i)));
        }
        for i in 0..capacity as u16 {
            let seq = start.wrapping_add(i);
            assert_eq!(buffer.get(seq), Some(packet(seq).as_slice()), "capacity {capacity} seq {seq}");
        }
    }
}

#[test]
fn out_of_order_inserts_within_the_window() {
    let mut buffer = RetransmissionBuffer::new(8, 100);
    buffer.insert(10, b"ten");
    buffer.insert(12, b"twelve");
    buffer.insert(11, b"eleven");
    assert_eq!(buffer.get(11), Some(&b"eleven"[..]));
    assert_eq!(buffer.get(12), Some(&b"twelve"[..]));
    // Too old for the window: would overwrite the slot of a newer packet.
    buffer.insert(4, b"four");
    assert_eq!(buffer.get(4), None);
    assert_eq!(buffer.get(12), Some(&b"twelve"[..]));
    // Re-inserting a packet replaces it.
    buffer.insert(12, b"TWELVE");
    assert_eq!(buffer.get(12), Some(&b"TWELVE"[..]));
}

#[test]
fn a_slot_from_a_previous_wrap_is_not_returned() {
    let mut buffer = RetransmissionBuffer::new(16, 100);
    buffer.insert(5, b"old five");
    // Three jumps of 20001 (each lands in another slot than 5's), then 6:
    // 65537 numbers later, 5 is in the window again but was never resent.
    let mut seq = 5u16;
    for _ in 0..3 {
        seq = seq.wrapping_add(20_001);
        buffer.insert(seq, b"x");
    }
    buffer.insert(6, b"six");
    assert_eq!(buffer.get(6), Some(&b"six"[..]));
    assert_eq!(buffer.get(5), None);
}

#[test]
fn a_big_jump_hides_older_packets() {
    let mut buffer = RetransmissionBuffer::new(16, 100);
    buffer.insert(1, b"one");
    buffer.insert(20_000, b"far");
    assert_eq!(buffer.get(1), None);
    assert_eq!(buffer.get(20_000), Some(&b"far"[..]));
}

#[test]
fn oversized_packets_are_not_stored() {
    let mut buffer = RetransmissionBuffer::new(4, 3);
    buffer.insert(1, b"four");
    assert_eq!(buffer.get(1), None);
    buffer.insert(1, b"abc");
    assert_eq!(buffer.get(1), Some(&b"abc"[..]));
}

#[test]
fn clear_forgets_everything() {
    let mut buffer = RetransmissionBuffer::new(4, 100);
    buffer.insert(1, b"a");
    buffer.insert(2, b"b");
    buffer.clear();
    assert_eq!(buffer.get(1), None);
    assert_eq!(buffer.get(2), None);
    buffer.insert(40_000, b"c");
    assert_eq!(buffer.get(40_000), Some(&b"c"[..]));
}

#[test]
fn zero_capacity_is_one_slot() {
    let mut buffer = RetransmissionBuffer::new(0, 100);
    assert_eq!(buffer.capacity(), 1);
    buffer.insert(9, b"nine");
    assert_eq!(buffer.get(9), Some(&b"nine"[..]));
    buffer.insert(10, b"ten");
    assert_eq!(buffer.get(9), None);
}
