//! Receiving a batch of datagrams with one `recvmmsg`, and UDP GRO: a run of
//! datagrams the kernel coalesced into one buffer is cut back into its datagrams.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::RawFd;

use super::socket::pktinfo_local;
use super::{sockaddr_to_std, MAX_DATAGRAM};

/// `UDP_GRO` (linux/udp.h): the socket option that lets the kernel coalesce consecutive
/// datagrams of one flow, and the cmsg type (level SOL_UDP, an `int`) that gives the segment
/// size of a coalesced buffer. The same number on every Linux architecture (libc only exports
/// it for some targets).
const UDP_GRO: libc::c_int = 104;
/// Receive room of one slot on a GRO socket: a coalesced buffer is at most one IP packet's
/// worth of UDP payload, under 64 KiB.
const GRO_SLOT_BYTES: usize = 65_536;
/// Distance between GRO slots: 2 KiB more than their room, so that slot starts (where the
/// packets of an uncoalesced batch land) spread over the cache sets as the plain 2048-byte
/// slots do, instead of all sharing the sets of one 64 KiB period.
const GRO_SLOT_STRIDE: usize = GRO_SLOT_BYTES + MAX_DATAGRAM;
/// Most slots of one batch (every offset into the GRO arena then fits a u32).
const MAX_RECV_SLOTS: usize = 1024;

/// Turns on UDP GRO for a socket (Linux >= 5.0): the kernel may then hand over a run of
/// consecutive datagrams from one sender, all the same size but the last (which may be
/// shorter), as one buffer with a `UDP_GRO` cmsg. False when the kernel or the socket does
/// not offer it; the socket then delivers one datagram per buffer, as before.
pub fn enable_gro(fd: RawFd) -> bool {
    let one: libc::c_int = 1;
    // SAFETY: passes a pointer to a live c_int of the stated size.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_UDP,
            UDP_GRO,
            &one as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    r == 0
}

/// Control bytes of one received message: the `UDP_GRO` cmsg (CMSG_SPACE(sizeof(int)), 24
/// bytes on 64-bit Linux) and a packet-info cmsg (CMSG_SPACE of in_pktinfo or in6_pktinfo: 32
/// or 40), with room to spare.
#[derive(Clone, Copy)]
#[repr(C, align(8))]
struct RecvControl([u8; 128]);

/// What the control bytes the kernel returned with one message say: the `UDP_GRO` segment
/// size and the local address the datagram was sent to (`IP_PKTINFO`/`IPV6_PKTINFO`), each if
/// present. Walks the cmsgs by offset within `control`, so malformed lengths end the walk
/// instead of reading past it.
fn read_control(control: &[u8]) -> (Option<usize>, Option<IpAddr>) {
    let header = std::mem::size_of::<libc::cmsghdr>();
    // CMSG_ALIGN is to size_t on Linux (glibc and musl); data starts at CMSG_LEN(0).
    let align = std::mem::size_of::<usize>();
    // SAFETY: CMSG_LEN is pure arithmetic.
    let data_at = unsafe { libc::CMSG_LEN(0) } as usize;
    let int = std::mem::size_of::<libc::c_int>();
    let (mut segment, mut local) = (None, None);
    let mut at = 0usize;
    while control.len().saturating_sub(at) >= header {
        // SAFETY: `header` bytes from `at` lie inside `control` (checked just above);
        // read_unaligned copies them out whatever their alignment.
        let cmsg: libc::cmsghdr = unsafe { std::ptr::read_unaligned(control[at..].as_ptr() as *const libc::cmsghdr) };
        let len = cmsg.cmsg_len as usize;
        if len < header || len > control.len() - at {
            break;
        }
        let data = control.get(at + data_at..at + len).unwrap_or(&[]);
        if cmsg.cmsg_level == libc::SOL_UDP && cmsg.cmsg_type == UDP_GRO && data.len() >= int {
            let size = data.get(..int).and_then(|b| b.try_into().ok()).map(libc::c_int::from_ne_bytes);
            segment = size.and_then(|s| usize::try_from(s).ok()).filter(|&s| s > 0);
        } else if let Some(ip) = pktinfo_local(cmsg.cmsg_level, cmsg.cmsg_type, data) {
            local = Some(ip);
        }
        match len.checked_add(align - 1) {
            Some(step) => at += step & !(align - 1),
            None => break,
        }
    }
    (segment, local)
}

#[cfg(test)]
fn gro_segment_size(control: &[u8]) -> Option<usize> {
    read_control(control).0
}

/// Cuts one received buffer into its datagrams, calling `push(start, len, room)` for each in
/// order. `copied` bytes arrived in a slot of `capacity`; `segment` is the `UDP_GRO` segment
/// size when the kernel coalesced (every datagram is that long but the last, which may be
/// shorter); `truncated` (MSG_TRUNC) says the buffer was longer than the slot. A datagram's
/// length is capped at MAX_DATAGRAM, as a lone oversized datagram's always was; `room` (at
/// least `len`, at most MAX_DATAGRAM) is how much of the slot from `start` the caller may use
/// without reaching the next datagram. A datagram cut short by truncation is dropped: returns
/// how many were (0 or 1).
fn split_buffer(copied: usize, capacity: usize, segment: Option<usize>, truncated: bool, mut push: impl FnMut(usize, usize, usize)) -> u64 {
    // More than the slot holds can only mean the buffer was cut, flag or not.
    let truncated = truncated || copied > capacity;
    let copied = copied.min(capacity);
    match segment {
        Some(size) if size > 0 && size < copied => {
            let mut start = 0usize;
            while start < copied {
                let end = start.saturating_add(size).min(copied);
                if truncated && end - start < size {
                    return 1;
                }
                let next = if end < copied { end } else { capacity };
                push(start, (end - start).min(MAX_DATAGRAM), (next - start).min(MAX_DATAGRAM));
                start = end;
            }
            0
        }
        // One datagram (a coalesced "run" of one, or no GRO at all).
        _ => {
            push(0, copied.min(MAX_DATAGRAM), capacity.min(MAX_DATAGRAM));
            0
        }
    }
}

/// One datagram of the current batch: the message it came in and where it lies in the
/// batch's buffer.
#[derive(Clone, Copy)]
struct Datagram {
    msg: u32,
    start: u32,
    len: u32,
    room: u32,
}

/// What a batch has received since it was made. More datagrams than buffers means GRO
/// coalesced; `truncated_dropped` counts datagrams cut short at the end of a coalesced buffer
/// too long for its slot.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RecvCounters {
    pub buffers: u64,
    pub datagrams: u64,
    pub coalesced_buffers: u64,
    pub truncated_dropped: u64,
}

/// Receive slots for one `recvmmsg` call, reused for every batch: plain 2048-byte slots for
/// sockets without GRO, 64 KiB ones for sockets with it (see `enable_gro`), whose buffers are
/// split into their datagrams. Either way a batch holds about `slots` datagrams: a GRO socket
/// is asked for fewer buffers while its buffers arrive coalesced.
pub struct RecvBatch {
    /// `slots` slots of MAX_DATAGRAM bytes.
    small: Vec<u8>,
    /// `slots` slots of GRO_SLOT_BYTES, GRO_SLOT_STRIDE apart (about 2 MiB for 32), allocated
    /// when the first GRO socket is registered. A fresh zeroed allocation this size is mapped
    /// lazily by the OS: memory is only taken by pages the kernel has written into, which is
    /// the first few slots while buffers arrive coalesced (few are asked for) and the first
    /// page of each while they do not.
    large: Vec<u8>,
    /// Per fd number: 0 while the socket is not known to have GRO; else how many datagrams
    /// the buffers of its last batch held on average (1..=255), which sizes its next batch.
    gro: Vec<u8>,
    addrs: Vec<libc::sockaddr_storage>,
    iovecs: Vec<libc::iovec>,
    msgs: Vec<libc::mmsghdr>,
    controls: Vec<RecvControl>,
    /// Source address of each message of the current batch, and the local address it was sent
    /// to (sockets with `enable_pktinfo`).
    froms: Vec<Option<SocketAddr>>,
    locals: Vec<Option<IpAddr>>,
    datagrams: Vec<Datagram>,
    /// The current batch lies in `large`.
    in_large: bool,
    counters: RecvCounters,
}

// SAFETY: the raw pointers inside point into the batch's own heap buffers,
// which move with it; the batch is used by one thread at a time.
unsafe impl Send for RecvBatch {}

impl RecvBatch {
    pub fn new(slots: usize) -> Self {
        let slots = slots.clamp(1, MAX_RECV_SLOTS);
        // SAFETY: sockaddr_storage and mmsghdr are plain C structs; all-zero is valid.
        let zero_addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let zero_msg: libc::mmsghdr = unsafe { std::mem::zeroed() };
        Self {
            small: vec![0u8; slots * MAX_DATAGRAM],
            large: Vec::new(),
            gro: Vec::new(),
            addrs: vec![zero_addr; slots],
            iovecs: vec![libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 }; slots],
            msgs: vec![zero_msg; slots],
            controls: vec![RecvControl([0; 128]); slots],
            froms: vec![None; slots],
            locals: vec![None; slots],
            datagrams: Vec::with_capacity(slots),
            in_large: false,
            counters: RecvCounters::default(),
        }
    }

    /// Turns GRO on for a socket this batch will read (see `enable_gro`) and remembers the
    /// outcome, so that `recv` gives it slots that hold a coalesced buffer. Call it when the
    /// socket is opened: a socket that reuses an fd number is then known for what it is.
    pub fn enable_gro(&mut self, fd: RawFd) -> bool {
        let on = enable_gro(fd);
        self.set_gro(fd, on);
        on
    }

    fn set_gro(&mut self, fd: RawFd, on: bool) {
        let Ok(fd) = usize::try_from(fd) else { return };
        if on {
            if self.gro.len() <= fd {
                self.gro.resize(fd + 1, 0);
            }
            self.gro[fd] = 1;
            if self.large.is_empty() {
                self.large = vec![0u8; self.msgs.len() * GRO_SLOT_STRIDE];
            }
        } else if let Some(g) = self.gro.get_mut(fd) {
            *g = 0;
        }
    }

    /// 0 when `fd` is not known to have GRO, else its datagrams per buffer of late.
    fn gro_per_buffer(&self, fd: RawFd) -> usize {
        usize::try_from(fd).ok().and_then(|fd| self.gro.get(fd)).map_or(0, |&g| g as usize)
    }

    #[cfg(test)]
    fn has_gro(&self, fd: RawFd) -> bool {
        self.gro_per_buffer(fd) > 0
    }

    /// One `recvmmsg(MSG_DONTWAIT)`; returns how many datagrams arrived (0 on EAGAIN), counting
    /// each datagram of a coalesced buffer.
    pub fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        self.datagrams.clear();
        let slots = self.msgs.len();
        let per_buffer = self.gro_per_buffer(fd);
        let large = per_buffer > 0 && self.large.len() == slots * GRO_SLOT_STRIDE;
        // On a GRO socket, only as many buffers as should hold about `slots` datagrams at the
        // rate of its last batch: a batch stays near the size `slots` was chosen for, coalesced
        // or not, in work per call and in cache footprint (32 coalesced buffers of 40 KB would
        // be 1.3 MB; on loopback that cost more than the larger batches saved).
        let n = if large { slots.div_ceil(per_buffer).clamp(1, slots) } else { slots };
        let (buf, stride, capacity) = if large {
            (&mut self.large, GRO_SLOT_STRIDE, GRO_SLOT_BYTES)
        } else {
            (&mut self.small, MAX_DATAGRAM, MAX_DATAGRAM)
        };
        self.in_large = large;
        for (i, slot) in buf.chunks_exact_mut(stride).take(n).enumerate() {
            self.iovecs[i] = libc::iovec { iov_base: slot.as_mut_ptr() as *mut libc::c_void, iov_len: capacity };
            let hdr = &mut self.msgs[i].msg_hdr;
            hdr.msg_name = &mut self.addrs[i] as *mut _ as *mut libc::c_void;
            hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            hdr.msg_iov = &mut self.iovecs[i];
            hdr.msg_iovlen = 1;
            // Even on a socket without known GRO: a `UDP_GRO` cmsg there says GRO was turned
            // on behind the batch's back, and is learnt from.
            hdr.msg_control = self.controls[i].0.as_mut_ptr() as *mut libc::c_void;
            hdr.msg_controllen = std::mem::size_of::<RecvControl>() as _;
            hdr.msg_flags = 0;
            self.msgs[i].msg_len = 0;
        }
        // SAFETY: every msghdr points at live buffers owned by self for n slots: a name, one
        // iovec of `capacity` bytes inside its slot, and a control buffer of the stated size.
        let r = unsafe {
            libc::recvmmsg(fd, self.msgs.as_mut_ptr(), n as libc::c_uint, libc::MSG_DONTWAIT, std::ptr::null_mut())
        };
        if r < 0 {
            let err = io::Error::last_os_error();
            return match err.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(0),
                _ => Err(err),
            };
        }
        let mut learnt_gro = false;
        let received = (r as usize).min(n);
        for m in 0..received {
            let hdr = &self.msgs[m].msg_hdr;
            #[allow(clippy::unnecessary_cast)] // usize on glibc, u32 on musl
            let control_len = (hdr.msg_controllen as usize).min(std::mem::size_of::<RecvControl>());
            let (segment, local) = read_control(&self.controls[m].0[..control_len]);
            self.locals[m] = local;
            learnt_gro |= segment.is_some();
            let truncated = hdr.msg_flags & libc::MSG_TRUNC != 0;
            self.froms[m] = if hdr.msg_namelen > 0 { sockaddr_to_std(&self.addrs[m]) } else { None };
            let base = m * stride;
            let before = self.datagrams.len();
            let datagrams = &mut self.datagrams;
            self.counters.truncated_dropped +=
                split_buffer(self.msgs[m].msg_len as usize, capacity, segment, truncated, |start, len, room| {
                    datagrams.push(Datagram { msg: m as u32, start: (base + start) as u32, len: len as u32, room: room as u32 });
                });
            let got = (self.datagrams.len() - before) as u64;
            self.counters.buffers += 1;
            self.counters.datagrams += got;
            self.counters.coalesced_buffers += u64::from(got > 1);
        }
        if learnt_gro && !large {
            self.set_gro(fd, true);
        }
        if large && received > 0 {
            let per_buffer = (self.datagrams.len() / received).clamp(1, u8::MAX as usize);
            if let Some(g) = usize::try_from(fd).ok().and_then(|fd| self.gro.get_mut(fd)) {
                *g = per_buffer as u8;
            }
        }
        Ok(self.datagrams.len())
    }

    /// The i-th datagram of the last `recv`: (buffer, length, source address). The buffer is at
    /// least `length` long (up to MAX_DATAGRAM, never into the next datagram) and may be
    /// changed in place. Past the last datagram: an empty buffer, 0 and no address.
    pub fn get_mut(&mut self, i: usize) -> (&mut [u8], usize, Option<SocketAddr>) {
        let Some(&d) = self.datagrams.get(i) else { return (&mut [], 0, None) };
        let from = self.froms.get(d.msg as usize).copied().flatten();
        let buf = if self.in_large { &mut self.large } else { &mut self.small };
        let (start, room) = (d.start as usize, d.room as usize);
        match buf.get_mut(start..start + room) {
            Some(slice) => (slice, d.len as usize, from),
            None => (&mut [], 0, None),
        }
    }

    /// The local address the i-th datagram of the last `recv` was sent to, when the socket
    /// reports it (`enable_pktinfo`).
    pub fn local_of(&self, i: usize) -> Option<IpAddr> {
        self.datagrams.get(i).and_then(|d| self.locals.get(d.msg as usize).copied().flatten())
    }

    /// Totals since the batch was made (for tests and diagnostics).
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn counters(&self) -> RecvCounters {
        self.counters
    }
}

#[cfg(test)]
mod tests;
