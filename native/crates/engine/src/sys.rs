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
    pub fn drain(&self) {
        let mut v: u64 = 0;
        // SAFETY: reads 8 bytes into a live u64.
        unsafe { libc::read(self.fd, &mut v as *mut u64 as *mut libc::c_void, 8) };
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

/// Receive slots for one `recvmmsg` call: fixed buffers reused for every batch.
pub struct RecvBatch {
    bufs: Vec<[u8; MAX_DATAGRAM]>,
    addrs: Vec<libc::sockaddr_storage>,
    iovecs: Vec<libc::iovec>,
    msgs: Vec<libc::mmsghdr>,
    lens: Vec<usize>,
    count: usize,
}

// SAFETY: the raw pointers inside point into the batch's own heap buffers,
// which move with it; the batch is used by one thread at a time.
unsafe impl Send for RecvBatch {}

impl RecvBatch {
    pub fn new(slots: usize) -> Self {
        // SAFETY: sockaddr_storage and mmsghdr are plain C structs; all-zero is valid.
        let zero_addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let zero_msg: libc::mmsghdr = unsafe { std::mem::zeroed() };
        Self {
            bufs: vec![[0u8; MAX_DATAGRAM]; slots],
            addrs: vec![zero_addr; slots],
            iovecs: vec![libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 }; slots],
            msgs: vec![zero_msg; slots],
            lens: vec![0; slots],
            count: 0,
        }
    }

    /// One `recvmmsg(MSG_DONTWAIT)`; returns how many datagrams arrived (0 on EAGAIN).
    pub fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        let n = self.bufs.len();
        for i in 0..n {
            self.iovecs[i] = libc::iovec {
                iov_base: self.bufs[i].as_mut_ptr() as *mut libc::c_void,
                iov_len: MAX_DATAGRAM,
            };
            let hdr = &mut self.msgs[i].msg_hdr;
            hdr.msg_name = &mut self.addrs[i] as *mut _ as *mut libc::c_void;
            hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            hdr.msg_iov = &mut self.iovecs[i];
            hdr.msg_iovlen = 1;
            hdr.msg_control = std::ptr::null_mut();
            hdr.msg_controllen = 0;
            hdr.msg_flags = 0;
            self.msgs[i].msg_len = 0;
        }
        // SAFETY: every msghdr points at live buffers owned by self for n slots.
        let r = unsafe {
            libc::recvmmsg(fd, self.msgs.as_mut_ptr(), n as libc::c_uint, libc::MSG_DONTWAIT, std::ptr::null_mut())
        };
        if r < 0 {
            let err = io::Error::last_os_error();
            self.count = 0;
            return match err.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(0),
                _ => Err(err),
            };
        }
        self.count = r as usize;
        for i in 0..self.count {
            // A truncated datagram (MSG_TRUNC) is longer than any media packet we accept; its
            // reported length is capped to the buffer so later code never reads past it.
            self.lens[i] = (self.msgs[i].msg_len as usize).min(MAX_DATAGRAM);
        }
        Ok(self.count)
    }

    /// The i-th datagram: (buffer, length, source address).
    pub fn get_mut(&mut self, i: usize) -> (&mut [u8; MAX_DATAGRAM], usize, Option<SocketAddr>) {
        let from = sockaddr_to_std(&self.addrs[i]);
        (&mut self.bufs[i], self.lens[i], from)
    }
}

/// Outgoing datagrams of one media thread, flushed with one `sendmmsg` per socket.
pub struct SendQueue {
    bufs: Vec<[u8; MAX_DATAGRAM]>,
    lens: Vec<usize>,
    fds: Vec<RawFd>,
    addrs: Vec<libc::sockaddr_storage>,
    addr_lens: Vec<libc::socklen_t>,
    owners: Vec<u32>,
    count: usize,
    order: Vec<usize>,
    iovecs: Vec<libc::iovec>,
    msgs: Vec<libc::mmsghdr>,
}

// SAFETY: see RecvBatch.
unsafe impl Send for SendQueue {}

/// Result of flushing: per owner (endpoint id) how many datagrams the kernel took or refused.
pub struct FlushReport {
    pub sent: Vec<(u32, usize, usize)>,
    pub failed: Vec<(u32, usize)>,
}

impl SendQueue {
    pub fn new(slots: usize) -> Self {
        // SAFETY: plain C structs; zero is valid.
        let zero_addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let zero_msg: libc::mmsghdr = unsafe { std::mem::zeroed() };
        Self {
            bufs: vec![[0u8; MAX_DATAGRAM]; slots],
            lens: vec![0; slots],
            fds: vec![-1; slots],
            addrs: vec![zero_addr; slots],
            addr_lens: vec![0; slots],
            owners: vec![0; slots],
            count: 0,
            order: Vec::with_capacity(slots),
            iovecs: vec![libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 }; slots],
            msgs: vec![zero_msg; slots],
        }
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
        self.addr_lens[i] = std_to_sockaddr(to, &mut self.addrs[i]);
        self.count += 1;
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
                let k = end - start;
                let i = self.order[end];
                self.iovecs[k] = libc::iovec { iov_base: self.bufs[i].as_mut_ptr() as *mut libc::c_void, iov_len: self.lens[i] };
                end += 1;
            }
            let group = end - start;
            for k in 0..group {
                let i = self.order[start + k];
                let hdr = &mut self.msgs[k].msg_hdr;
                hdr.msg_name = &mut self.addrs[i] as *mut _ as *mut libc::c_void;
                hdr.msg_namelen = self.addr_lens[i];
                hdr.msg_iov = &mut self.iovecs[k];
                hdr.msg_iovlen = 1;
                hdr.msg_control = std::ptr::null_mut();
                hdr.msg_controllen = 0;
                hdr.msg_flags = 0;
            }
            let mut done = 0usize;
            let mut failed = 0usize;
            // Bounded: each pass either sends >= 1 datagram or drops one as failed.
            while done + failed < group {
                let off = done + failed;
                // SAFETY: msgs[off..group] point at live buffers and addresses owned by self.
                let r = unsafe {
                    libc::sendmmsg(fd, self.msgs[off..].as_mut_ptr(), (group - off) as libc::c_uint, libc::MSG_DONTWAIT)
                };
                if r > 0 {
                    done += r as usize;
                } else {
                    let err = io::Error::last_os_error();
                    if err.kind() == io::ErrorKind::Interrupted {
                        continue;
                    }
                    // The datagram at `off` cannot go now (buffer full, unreachable, ...): count it
                    // as failed and go on with the rest rather than spin.
                    failed += 1;
                }
            }
            let sent_bytes: usize = (0..done).map(|k| self.lens[self.order[start + k]]).sum();
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
