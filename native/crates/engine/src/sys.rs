//! The only unsafe code of the engine: thin wrappers over Linux epoll,
//! eventfd, recvmmsg and sendmmsg. Everything above this file works with
//! safe slices and `SocketAddr`s.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;

pub const MAX_DATAGRAM: usize = 2048;

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// An epoll instance (level-triggered readiness of sockets and the wake fd).
pub struct Epoll {
    fd: RawFd,
    events: Vec<libc::epoll_event>,
}

impl Epoll {
    pub fn new(capacity: usize) -> io::Result<Self> {
        // SAFETY: plain syscall, no pointers.
        let fd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        Ok(Self { fd, events: vec![libc::epoll_event { events: 0, u64: 0 }; capacity] })
    }

    pub fn add(&self, fd: RawFd, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event { events: libc::EPOLLIN as u32, u64: token };
        // SAFETY: `ev` outlives the call; the kernel copies it.
        cvt(unsafe { libc::epoll_ctl(self.fd, libc::EPOLL_CTL_ADD, fd, &mut ev) }).map(|_| ())
    }

    /// Edge-triggered: one readiness report per change (for the wake eventfd, every write),
    /// so the waiter need not read the fd to stop it from being reported again.
    pub fn add_edge_triggered(&self, fd: RawFd, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event { events: (libc::EPOLLIN | libc::EPOLLET) as u32, u64: token };
        // SAFETY: `ev` outlives the call; the kernel copies it.
        cvt(unsafe { libc::epoll_ctl(self.fd, libc::EPOLL_CTL_ADD, fd, &mut ev) }).map(|_| ())
    }

    pub fn remove(&self, fd: RawFd) -> io::Result<()> {
        let mut ev = libc::epoll_event { events: 0, u64: 0 };
        // SAFETY: as above.
        cvt(unsafe { libc::epoll_ctl(self.fd, libc::EPOLL_CTL_DEL, fd, &mut ev) }).map(|_| ())
    }

    /// Waits up to `timeout_ms`; returns the tokens of ready fds.
    pub fn wait(&mut self, timeout_ms: i32, ready: &mut Vec<u64>) -> io::Result<()> {
        ready.clear();
        // SAFETY: the buffer is valid for `events.len()` entries.
        let n = unsafe {
            libc::epoll_wait(self.fd, self.events.as_mut_ptr(), self.events.len() as libc::c_int, timeout_ms)
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                return Ok(());
            }
            return Err(err);
        }
        for ev in &self.events[..n as usize] {
            ready.push(ev.u64);
        }
        Ok(())
    }
}

impl Drop for Epoll {
    fn drop(&mut self) {
        // SAFETY: we own the fd.
        unsafe { libc::close(self.fd) };
    }
}

/// An eventfd used to wake the media thread when a command is queued.
pub struct WakeFd {
    fd: RawFd,
}

impl WakeFd {
    pub fn new() -> io::Result<Self> {
        // SAFETY: plain syscall.
        let fd = cvt(unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) })?;
        Ok(Self { fd })
    }
    pub fn fd(&self) -> RawFd {
        self.fd
    }
    pub fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64. A full counter (EAGAIN) still means "awake".
        unsafe { libc::write(self.fd, &one as *const u64 as *const libc::c_void, 8) };
    }
}

impl Drop for WakeFd {
    fn drop(&mut self) {
        // SAFETY: we own the fd.
        unsafe { libc::close(self.fd) };
    }
}

pub fn sockaddr_to_std(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match storage.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: family says this is a sockaddr_in, which fits in sockaddr_storage.
            let sin = unsafe { &*(storage as *const _ as *const libc::sockaddr_in) };
            let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(ip, u16::from_be(sin.sin_port))))
        }
        libc::AF_INET6 => {
            // SAFETY: family says this is a sockaddr_in6.
            let sin6 = unsafe { &*(storage as *const _ as *const libc::sockaddr_in6) };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

pub fn std_to_sockaddr(addr: &SocketAddr, storage: &mut libc::sockaddr_storage) -> libc::socklen_t {
    match addr {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_in fits in sockaddr_storage; we fill every field we use.
            let sin = unsafe { &mut *(storage as *mut _ as *mut libc::sockaddr_in) };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr = libc::in_addr { s_addr: u32::from(*a.ip()).to_be() };
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t
        }
        SocketAddr::V6(a) => {
            // SAFETY: as above for sockaddr_in6.
            let sin6 = unsafe { &mut *(storage as *mut _ as *mut libc::sockaddr_in6) };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_flowinfo = a.flowinfo();
            sin6.sin6_addr = libc::in6_addr { s6_addr: a.ip().octets() };
            sin6.sin6_scope_id = a.scope_id();
            std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t
        }
    }
}

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

/// Control bytes of one received message: CMSG_SPACE(sizeof(int)) is 24 bytes on 64-bit Linux
/// and 16 on 32-bit; 64 leave room for another cmsg the socket may carry ahead of it.
#[derive(Clone, Copy)]
#[repr(C, align(8))]
struct RecvControl([u8; 64]);

/// The `UDP_GRO` segment size in the control bytes the kernel returned with one message, if
/// any. Walks the cmsgs by offset within `control`, so malformed lengths end the walk instead
/// of reading past it.
fn gro_segment_size(control: &[u8]) -> Option<usize> {
    let header = std::mem::size_of::<libc::cmsghdr>();
    // CMSG_ALIGN is to size_t on Linux (glibc and musl); data starts at CMSG_LEN(0).
    let align = std::mem::size_of::<usize>();
    // SAFETY: CMSG_LEN is pure arithmetic.
    let data_at = unsafe { libc::CMSG_LEN(0) } as usize;
    let int = std::mem::size_of::<libc::c_int>();
    let mut at = 0usize;
    while control.len().saturating_sub(at) >= header {
        // SAFETY: `header` bytes from `at` lie inside `control` (checked just above);
        // read_unaligned copies them out whatever their alignment.
        let cmsg: libc::cmsghdr = unsafe { std::ptr::read_unaligned(control[at..].as_ptr() as *const libc::cmsghdr) };
        let len = cmsg.cmsg_len as usize;
        if len < header || len > control.len() - at {
            return None;
        }
        if cmsg.cmsg_level == libc::SOL_UDP && cmsg.cmsg_type == UDP_GRO && len >= data_at + int {
            let bytes = control.get(at + data_at..at + data_at + int)?;
            let size = libc::c_int::from_ne_bytes(bytes.try_into().ok()?);
            return usize::try_from(size).ok().filter(|&s| s > 0);
        }
        at += len.checked_add(align - 1)? & !(align - 1);
    }
    None
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
    /// Source address of each message of the current batch.
    froms: Vec<Option<SocketAddr>>,
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
            controls: vec![RecvControl([0; 64]); slots],
            froms: vec![None; slots],
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
            let segment = gro_segment_size(&self.controls[m].0[..control_len]);
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

    /// Totals since the batch was made (for tests and diagnostics).
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn counters(&self) -> RecvCounters {
        self.counters
    }
}

/// `UDP_SEGMENT` (linux/udp.h): the socket option / cmsg type of UDP GSO, the same number on
/// every Linux architecture (libc only exports it for some targets).
const UDP_SEGMENT: libc::c_int = 103;
/// Most datagrams one segmented send may carry: the kernel's UDP_MAX_SEGMENTS is 64 since
/// 4.18 (later kernels allow more).
pub const GSO_MAX_SEGMENTS: usize = 64;
/// Most payload bytes of one segmented send: the whole super-datagram must fit an IPv4/IPv6
/// length field (65535 minus IP and UDP headers), with room to spare.
const GSO_MAX_BYTES: usize = 65_000;
/// Control buffer of one message: CMSG_SPACE(sizeof(u16)) is 24 bytes on 64-bit Linux and 16
/// on 32-bit; 32 bytes, 8-aligned, covers both.
type GsoControl = [u64; 4];

/// Whether this kernel knows UDP GSO (Linux >= 4.18). Asked once per process, because an older
/// kernel does not reject the `UDP_SEGMENT` cmsg: it ignores it and would send the whole run as
/// one oversized datagram.
fn kernel_supports_gso() -> bool {
    static SUPPORTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SUPPORTED.get_or_init(|| {
        let Ok(probe) = std::net::UdpSocket::bind("127.0.0.1:0") else { return false };
        let mut value: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: getsockopt writes at most `len` bytes into a live c_int; the fd is alive for
        // the call (owned by `probe`).
        let r = unsafe {
            libc::getsockopt(
                std::os::fd::AsRawFd::as_raw_fd(&probe),
                libc::SOL_UDP,
                UDP_SEGMENT,
                &mut value as *mut libc::c_int as *mut libc::c_void,
                &mut len,
            )
        };
        r == 0
    })
}

/// Errors with which a kernel that knows UDP GSO still refuses a segmented send on a socket
/// (no checksum offload on the route's device: EIO; SO_NO_CHECK or a segment larger than the
/// path MTU: EINVAL; no GSO for the protocol: ENOPROTOOPT / EOPNOTSUPP). The run is then sent
/// again datagram by datagram, and the socket never tries GSO again.
fn is_gso_refusal(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::EIO | libc::EINVAL | libc::ENOPROTOOPT | libc::EOPNOTSUPP))
}

/// Outgoing datagrams of one media thread, flushed with one `sendmmsg` per socket. Runs of
/// equal-size datagrams to the same destination go out as one UDP GSO send (`UDP_SEGMENT`):
/// the kernel routes and builds one super-packet and cuts it into the same datagrams, which
/// costs far less per datagram than one `sendmsg` each.
pub struct SendQueue {
    bufs: Vec<[u8; MAX_DATAGRAM]>,
    lens: Vec<usize>,
    fds: Vec<RawFd>,
    dests: Vec<SocketAddr>,
    addrs: Vec<libc::sockaddr_storage>,
    addr_lens: Vec<libc::socklen_t>,
    owners: Vec<u32>,
    count: usize,
    order: Vec<usize>,
    /// One iovec per queued datagram, in send order; a message points at a run of them.
    iovecs: Vec<libc::iovec>,
    msgs: Vec<libc::mmsghdr>,
    /// Datagrams carried by each message of `msgs`.
    msg_segments: Vec<usize>,
    controls: Vec<GsoControl>,
    /// GSO wanted by the owner and known to the kernel.
    gso: bool,
    /// Sockets whose segmented sends the kernel refused (see `is_gso_refusal`).
    gso_refused: Vec<RawFd>,
}

// SAFETY: see RecvBatch.
unsafe impl Send for SendQueue {}

/// Result of flushing: per owner (endpoint id) how many datagrams the kernel took or refused.
pub struct FlushReport {
    pub sent: Vec<(u32, usize, usize)>,
    pub failed: Vec<(u32, usize)>,
}

impl SendQueue {
    /// A queue that uses UDP GSO where the kernel has it.
    pub fn new(slots: usize) -> Self {
        Self::with_gso(slots, true)
    }

    /// `gso: false` sends every datagram as its own message (one `sendmmsg` entry each).
    pub fn with_gso(slots: usize, gso: bool) -> Self {
        let slots = slots.max(1);
        // SAFETY: plain C structs; zero is valid.
        let zero_addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let zero_msg: libc::mmsghdr = unsafe { std::mem::zeroed() };
        let unspecified = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0));
        Self {
            bufs: vec![[0u8; MAX_DATAGRAM]; slots],
            lens: vec![0; slots],
            fds: vec![-1; slots],
            dests: vec![unspecified; slots],
            addrs: vec![zero_addr; slots],
            addr_lens: vec![0; slots],
            owners: vec![0; slots],
            count: 0,
            order: Vec::with_capacity(slots),
            iovecs: vec![libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 }; slots],
            msgs: vec![zero_msg; slots],
            msg_segments: vec![0; slots],
            controls: vec![[0u64; 4]; slots],
            gso: gso && kernel_supports_gso(),
            gso_refused: Vec::new(),
        }
    }

    /// Whether segmented sends are in use on `fd` (for tests and diagnostics).
    pub fn gso_active(&self, fd: RawFd) -> bool {
        self.gso && !self.gso_refused.contains(&fd)
    }

    /// Forgets what was learnt about a socket that is being closed, so a later socket that
    /// reuses the fd number starts afresh.
    pub fn forget_socket(&mut self, fd: RawFd) {
        self.gso_refused.retain(|&f| f != fd);
    }

    pub fn is_full(&self) -> bool {
        self.count == self.bufs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Reserves the next slot; the caller fills the buffer and then calls `commit`.
    pub fn slot(&mut self) -> Option<&mut [u8; MAX_DATAGRAM]> {
        if self.is_full() {
            None
        } else {
            Some(&mut self.bufs[self.count])
        }
    }

    pub fn commit(&mut self, len: usize, fd: RawFd, owner: u32, to: &SocketAddr) {
        let i = self.count;
        if i >= self.bufs.len() {
            return;
        }
        self.lens[i] = len.min(MAX_DATAGRAM);
        self.fds[i] = fd;
        self.owners[i] = owner;
        self.dests[i] = *to;
        self.addr_lens[i] = std_to_sockaddr(to, &mut self.addrs[i]);
        self.count += 1;
    }

    /// Lays out `order[from..end]` (datagrams of one socket) as messages in `msgs[0..]` and
    /// returns how many. With `gso`, a message takes consecutive datagrams to one destination
    /// whose sizes equal the first one's, except that the last may be shorter (the kernel cuts
    /// the payload every `gso_size` bytes), up to the kernel's segment and length limits.
    fn build_messages(&mut self, from: usize, end: usize, gso: bool) -> usize {
        let mut n_msgs = 0usize;
        let mut k = from;
        while k < end {
            let first = self.order[k];
            let gso_size = self.lens[first];
            let mut segments = 1usize;
            let mut bytes = gso_size;
            let mut closed = gso_size == 0;
            while gso && !closed && k + segments < end && segments < GSO_MAX_SEGMENTS {
                let next = self.order[k + segments];
                let len = self.lens[next];
                if len == 0 || len > gso_size || bytes + len > GSO_MAX_BYTES || self.dests[next] != self.dests[first] {
                    break;
                }
                segments += 1;
                bytes += len;
                // A shorter datagram can only be the last segment of a run.
                closed = len < gso_size;
            }
            for s in 0..segments {
                let i = self.order[k + s];
                self.iovecs[k + s] =
                    libc::iovec { iov_base: self.bufs[i].as_mut_ptr() as *mut libc::c_void, iov_len: self.lens[i] };
            }
            let hdr = &mut self.msgs[n_msgs].msg_hdr;
            hdr.msg_name = &mut self.addrs[first] as *mut _ as *mut libc::c_void;
            hdr.msg_namelen = self.addr_lens[first];
            hdr.msg_iov = &mut self.iovecs[k];
            hdr.msg_iovlen = segments as _;
            hdr.msg_flags = 0;
            if segments > 1 {
                let control = &mut self.controls[n_msgs];
                hdr.msg_control = control.as_mut_ptr() as *mut libc::c_void;
                // SAFETY: CMSG_SPACE is pure arithmetic.
                hdr.msg_controllen = unsafe { libc::CMSG_SPACE(std::mem::size_of::<u16>() as u32) } as _;
                // SAFETY: msg_control points at 32 live, 8-aligned bytes owned by self, more than
                // CMSG_SPACE(2); CMSG_FIRSTHDR therefore returns a pointer inside them, and
                // CMSG_DATA points 2 writable bytes inside them too (written unaligned-safe).
                unsafe {
                    let cmsg = libc::CMSG_FIRSTHDR(hdr);
                    (*cmsg).cmsg_level = libc::SOL_UDP;
                    (*cmsg).cmsg_type = UDP_SEGMENT;
                    (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<u16>() as u32) as _;
                    std::ptr::write_unaligned(libc::CMSG_DATA(cmsg) as *mut u16, gso_size as u16);
                }
            } else {
                hdr.msg_control = std::ptr::null_mut();
                hdr.msg_controllen = 0;
            }
            self.msg_segments[n_msgs] = segments;
            n_msgs += 1;
            k += segments;
        }
        n_msgs
    }

    /// Sends everything queued: entries grouped by socket (stable, so per-socket order is
    /// kept), one `sendmmsg` per group, retried while the kernel takes part of a batch.
    pub fn flush(&mut self, report: &mut FlushReport) {
        report.sent.clear();
        report.failed.clear();
        if self.count == 0 {
            return;
        }
        self.order.clear();
        self.order.extend(0..self.count);
        let fds = &self.fds;
        self.order.sort_by_key(|&i| fds[i]);
        let mut start = 0;
        while start < self.count {
            let fd = self.fds[self.order[start]];
            let owner = self.owners[self.order[start]];
            let mut end = start;
            while end < self.count && self.fds[self.order[end]] == fd {
                end += 1;
            }
            let mut done = 0usize;
            let mut sent_bytes = 0usize;
            let mut failed = 0usize;
            // Index (into `order`) of the first datagram neither sent nor given up on.
            let mut next = start;
            // Bounded: at most two layouts per socket, since a refusal turns GSO off for it.
            while next < end {
                let gso = self.gso_active(fd);
                let n_msgs = self.build_messages(next, end, gso);
                let mut m = 0usize;
                let mut relayout = false;
                // Bounded: each pass sends >= 1 message, drops one as failed, or leaves.
                while m < n_msgs {
                    // SAFETY: msgs[m..n_msgs] point at iovecs, buffers, addresses and control
                    // bytes owned by self, laid out by build_messages just above.
                    let r = unsafe {
                        libc::sendmmsg(fd, self.msgs[m..].as_mut_ptr(), (n_msgs - m) as libc::c_uint, libc::MSG_DONTWAIT)
                    };
                    if r > 0 {
                        for _ in 0..r as usize {
                            let segments = self.msg_segments[m];
                            sent_bytes += (next..next + segments).map(|k| self.lens[self.order[k]]).sum::<usize>();
                            done += segments;
                            next += segments;
                            m += 1;
                        }
                        continue;
                    }
                    let err = io::Error::last_os_error();
                    if err.kind() == io::ErrorKind::Interrupted {
                        continue;
                    }
                    let segments = self.msg_segments[m];
                    if segments > 1 && is_gso_refusal(&err) {
                        self.gso_refused.push(fd);
                        relayout = true;
                        break;
                    }
                    // The message at `m` cannot go now (buffer full, unreachable, ...): count its
                    // datagrams as failed and go on with the rest rather than spin.
                    failed += segments;
                    next += segments;
                    m += 1;
                }
                if !relayout {
                    break;
                }
            }
            report.sent.push((owner, done, sent_bytes));
            if failed > 0 {
                report.failed.push((owner, failed));
            }
            start = end;
        }
        self.count = 0;
    }
}

/// CPU time consumed by the calling thread, in nanoseconds.
pub fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: writes into a live timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    (ts.tv_sec as u64).saturating_mul(1_000_000_000).saturating_add(ts.tv_nsec as u64)
}

/// Asks for larger socket buffers so bursts at high packet rates are absorbed; the kernel caps
/// the value at net.core.[rw]mem_max, which is fine.
pub fn set_socket_buffers(fd: RawFd, bytes: i32) {
    for opt in [libc::SO_RCVBUF, libc::SO_SNDBUF] {
        // SAFETY: passes a pointer to a live i32 of the stated size.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                &bytes as *const i32 as *const libc::c_void,
                std::mem::size_of::<i32>() as libc::socklen_t,
            )
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;
    use std::time::Duration;

    fn receiver() -> UdpSocket {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_millis(2000))).unwrap();
        set_socket_buffers(s.as_raw_fd(), 1 << 20);
        s
    }

    /// A datagram whose bytes say which one it is: index in the first two bytes, then a pattern.
    fn fill(buf: &mut [u8], index: u16, len: usize) {
        buf[..2].copy_from_slice(&index.to_be_bytes());
        for (k, b) in buf[2..len].iter_mut().enumerate() {
            *b = (k as u8).wrapping_mul(7).wrapping_add(index as u8);
        }
    }

    fn queue_one(q: &mut SendQueue, index: u16, len: usize, fd: RawFd, to: SocketAddr) {
        let slot = q.slot().unwrap();
        fill(slot, index, len);
        q.commit(len, fd, 9, &to);
    }

    /// Reads exactly `expected.len()` datagrams and checks each one's length and bytes, in order.
    fn expect_datagrams(rx: &UdpSocket, expected: &[(u16, usize)]) {
        let mut buf = [0u8; 4096];
        let mut want = [0u8; 4096];
        for &(index, len) in expected {
            let (n, _) = rx.recv_from(&mut buf).unwrap();
            fill(&mut want, index, len);
            assert_eq!(n, len, "datagram {index}: length");
            assert_eq!(&buf[..n], &want[..len], "datagram {index}: bytes");
        }
        rx.set_nonblocking(true).unwrap();
        assert!(rx.recv_from(&mut buf).is_err(), "no datagram beyond the expected ones");
    }

    /// (index, length) of each datagram a receiver should get, in order.
    type Expected = Vec<(u16, usize)>;

    /// A mixed workload: a long equal-size run (longer than one GSO send), a shorter datagram
    /// ending a run, interleaved destinations, a size change and a lone datagram.
    fn mixed_workload(q: &mut SendQueue, fd: RawFd, a: SocketAddr, b: SocketAddr) -> (Expected, Expected) {
        let (mut to_a, mut to_b) = (Vec::new(), Vec::new());
        let mut index = 0u16;
        let mut push = |q: &mut SendQueue, len: usize, to_first: bool| {
            queue_one(q, index, len, fd, if to_first { a } else { b });
            if to_first { to_a.push((index, len)) } else { to_b.push((index, len)) }
            index += 1;
        };
        for _ in 0..70 {
            push(q, 1228, true);
        }
        push(q, 300, true);
        for _ in 0..5 {
            push(q, 1228, true);
        }
        for k in 0..6 {
            push(q, 200, k % 2 == 0);
        }
        for _ in 0..3 {
            push(q, 900, false);
        }
        push(q, 1400, false);
        push(q, 60, true);
        (to_a, to_b)
    }

    #[test]
    fn build_messages_groups_equal_runs_per_destination() {
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let a: SocketAddr = "127.0.0.1:40001".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:40002".parse().unwrap();
        let mut q = SendQueue::new(256);
        q.gso = true; // layout only: nothing is sent
        mixed_workload(&mut q, tx.as_raw_fd(), a, b);
        q.order.clear();
        q.order.extend(0..q.count);
        let n = q.build_messages(0, q.count, true);
        let segments: Vec<usize> = q.msg_segments[..n].to_vec();
        // 70 x 1228: 52 fit GSO_MAX_BYTES, then 18 more closed by the shorter 300; 5 x 1228
        // closed by the first (shorter) 200 to A; then alternating destinations one by one;
        // 3 x 900 (the 1400 after them is larger: a run of its own); 60 alone.
        assert_eq!(segments, vec![52, 19, 6, 1, 1, 1, 1, 1, 3, 1, 1]);
        assert_eq!(segments.iter().sum::<usize>(), q.count);
        let n_plain = q.build_messages(0, q.count, false);
        assert_eq!(n_plain, q.count);
        assert!(q.msg_segments[..n_plain].iter().all(|&s| s == 1));
    }

    #[test]
    fn gso_send_delivers_every_datagram_in_order() {
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        set_socket_buffers(tx.as_raw_fd(), 1 << 20);
        let (ra, rb) = (receiver(), receiver());
        let mut q = SendQueue::new(256);
        let (to_a, to_b) = mixed_workload(&mut q, tx.as_raw_fd(), ra.local_addr().unwrap(), rb.local_addr().unwrap());
        let mut report = FlushReport { sent: Vec::new(), failed: Vec::new() };
        q.flush(&mut report);
        let total = to_a.len() + to_b.len();
        let bytes: usize = to_a.iter().chain(&to_b).map(|d| d.1).sum();
        assert_eq!(report.sent, vec![(9, total, bytes)]);
        assert!(report.failed.is_empty());
        assert_eq!(q.gso_active(tx.as_raw_fd()), kernel_supports_gso());
        expect_datagrams(&ra, &to_a);
        expect_datagrams(&rb, &to_b);
    }

    #[test]
    fn refused_gso_falls_back_to_plain_sends_and_is_remembered() {
        if !kernel_supports_gso() {
            return; // nothing to fall back from: plain sends are covered by the test above
        }
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        set_socket_buffers(tx.as_raw_fd(), 1 << 20);
        // SO_NO_CHECK (asm-generic value 11): the kernel refuses segmented sends on a socket
        // without UDP checksums (EINVAL), while plain datagrams still go.
        let one: libc::c_int = 1;
        // SAFETY: passes a pointer to a live c_int of the stated size.
        let r = unsafe {
            libc::setsockopt(
                tx.as_raw_fd(),
                libc::SOL_SOCKET,
                11,
                &one as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(r, 0);
        let (ra, rb) = (receiver(), receiver());
        let mut q = SendQueue::new(256);
        assert!(q.gso_active(tx.as_raw_fd()));
        for round in 0..2 {
            let (to_a, to_b) = mixed_workload(&mut q, tx.as_raw_fd(), ra.local_addr().unwrap(), rb.local_addr().unwrap());
            let mut report = FlushReport { sent: Vec::new(), failed: Vec::new() };
            q.flush(&mut report);
            let total = to_a.len() + to_b.len();
            let bytes: usize = to_a.iter().chain(&to_b).map(|d| d.1).sum();
            assert_eq!(report.sent, vec![(9, total, bytes)], "round {round}");
            assert!(report.failed.is_empty(), "round {round}");
            assert!(!q.gso_active(tx.as_raw_fd()), "round {round}: refusal remembered");
            ra.set_nonblocking(false).unwrap();
            rb.set_nonblocking(false).unwrap();
            expect_datagrams(&ra, &to_a);
            expect_datagrams(&rb, &to_b);
        }
        // A new socket that reuses the fd number is given its chance again.
        q.forget_socket(tx.as_raw_fd());
        assert!(q.gso_active(tx.as_raw_fd()));
    }

    #[test]
    fn plain_queue_never_segments() {
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let rx = receiver();
        let mut q = SendQueue::with_gso(64, false);
        assert!(!q.gso_active(tx.as_raw_fd()));
        let to = rx.local_addr().unwrap();
        let expected: Vec<(u16, usize)> = (0..40u16).map(|i| (i, 500)).collect();
        for &(i, len) in &expected {
            queue_one(&mut q, i, len, tx.as_raw_fd(), to);
        }
        let mut report = FlushReport { sent: Vec::new(), failed: Vec::new() };
        q.flush(&mut report);
        assert_eq!(report.sent, vec![(9, 40, 40 * 500)]);
        expect_datagrams(&rx, &expected);
    }
}

/// CPUs this process may run on (`sched_getaffinity`), in ascending order; empty when the
/// kernel does not say.
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is a plain bit array; all-zero is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: the kernel writes at most size_of::<cpu_set_t>() bytes into `set`.
    let r = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if r != 0 {
        return Vec::new();
    }
    // SAFETY: CPU_ISSET reads a bit of a live set; the index is below CPU_SETSIZE.
    (0..libc::CPU_SETSIZE as usize).filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) }).collect()
}

/// Pins the calling thread to one CPU (`sched_setaffinity` on the thread itself).
pub fn pin_current_thread(cpu: usize) -> io::Result<()> {
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "CPU index out of range"));
    }
    // SAFETY: as in allowed_cpus; CPU_SET writes one bit of a live set, index checked above.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: pid 0 names the calling thread; the set is live for the call.
    cvt(unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) }).map(|_| ())
}

#[cfg(test)]
mod gro_tests {
    use super::*;
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
            q.commit(len, tx.as_raw_fd(), 1, &to);
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
}
