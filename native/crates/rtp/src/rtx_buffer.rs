//! Per-source store of recently sent packets, for answering NACKs
//! (RFC 4585 §6.2.1) by retransmission.
//!
//! A fixed ring of `capacity` slots indexed by the extended (wrap-counting)
//! sequence number modulo `capacity`. Each slot
//! keeps its own byte buffer, reused for every packet stored there: once
//! every slot has held a packet of the largest size seen, inserting never
//! allocates again.

/// One ring slot: the packet last stored there and its sequence number.
#[derive(Debug, Clone, Default)]
struct Slot {
    /// Extended (wrap-counting) sequence number, so a packet left over from
    /// 65536 numbers ago is never mistaken for the current one.
    ext_seq: i64,
    occupied: bool,
    bytes: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct RetransmissionBuffer {
    slots: Vec<Slot>,
    max_packet: usize,
    /// Newest sequence number stored (serial order) and its extended value,
    /// to tell stale slots and too-late inserts apart from live ones.
    newest: Option<(u16, i64)>,
}

impl RetransmissionBuffer {
    /// `capacity` packets (at least 1, at most 32768 so that "within the
    /// window" is unambiguous in 16-bit serial arithmetic), each of at most
    /// `max_packet` bytes; larger packets are not stored.
    pub fn new(capacity: usize, max_packet: usize) -> Self {
        let capacity = capacity.clamp(1, 1 << 15);
        Self { slots: vec![Slot::default(); capacity], max_packet, newest: None }
    }

    /// Slot of an extended sequence number: consecutive numbers get distinct
    /// slots even across the 16-bit wrap, whatever the capacity.
    #[inline]
    fn slot_index(&self, ext_seq: i64) -> usize {
        (ext_seq.rem_euclid(self.slots.len().max(1) as i64)) as usize
    }

    /// How far `seq` is behind the newest stored sequence number (0 for the
    /// newest itself, negative if ahead; RFC 1982 serial arithmetic), and
    /// its extended value.
    #[inline]
    fn age(&self, seq: u16) -> Option<(i32, i64)> {
        self.newest.map(|(newest, newest_ext)| {
            let age = i32::from(newest.wrapping_sub(seq) as i16);
            (age, newest_ext - i64::from(age))
        })
    }

    /// Stores a copy of `packet` under `seq`. Ignored if the packet is larger
    /// than `max_packet`, or so old that its slot already belongs to a newer
    /// packet.
    pub fn insert(&mut self, seq: u16, packet: &[u8]) {
        if packet.len() > self.max_packet {
            return;
        }
        let capacity = self.slots.len() as i32;
        let ext_seq = match self.age(seq) {
            Some((age, _)) if age >= capacity => return,
            Some((age, ext_seq)) => {
                if age < 0 {
                    self.newest = Some((seq, ext_seq));
                }
                ext_seq
            }
            None => {
                // Start well away from zero so extended values never go negative.
                let ext_seq = 1 << 32;
                self.newest = Some((seq, ext_seq));
                ext_seq
            }
        };
        let index = self.slot_index(ext_seq);
        if let Some(slot) = self.slots.get_mut(index) {
            slot.ext_seq = ext_seq;
            slot.occupied = true;
            slot.bytes.clear();
            slot.bytes.extend_from_slice(packet);
        }
    }

    /// The packet stored under `seq`, if it is still in the window.
    pub fn get(&self, seq: u16) -> Option<&[u8]> {
        let (age, ext_seq) = self.age(seq)?;
        if age < 0 || age >= self.slots.len() as i32 {
            return None;
        }
        let slot = self.slots.get(self.slot_index(ext_seq))?;
        (slot.occupied && slot.ext_seq == ext_seq).then_some(slot.bytes.as_slice())
    }

    /// Forgets every packet (e.g. on SSRC change), keeping the slot buffers.
    pub fn clear(&mut self) {
        for slot in &mut self.slots {
            slot.occupied = false;
            slot.bytes.clear();
        }
        self.newest = None;
    }

    pub fn capacity(&self) -> usize {
        self.slots.len()
    }
}
