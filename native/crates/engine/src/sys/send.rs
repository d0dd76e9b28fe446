//! Sending a batch of datagrams with one `sendmmsg` per socket, and UDP GSO: a
//! run of equal-size datagrams to one destination goes as one segmented send.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::RawFd;

use ferry_srtp::hmac_batch::PacketStore;

use super::{std_to_sockaddr, MAX_DATAGRAM};

/// `UDP_SEGMENT` (linux/udp.h): the socket option / cmsg type of UDP GSO, the same number on
/// every Linux architecture (libc only exports it for some targets).
pub(super) const UDP_SEGMENT: libc::c_int = 103;
/// Most datagrams one segmented send may carry: the kernel's UDP_MAX_SEGMENTS is 64 since
/// 4.18 (later kernels allow more).
pub const GSO_MAX_SEGMENTS: usize = 64;
/// Most payload bytes of one segmented send: the whole super-datagram must fit an IPv4/IPv6
/// length field (65535 minus IP and UDP headers), with room to spare.
const GSO_MAX_BYTES: usize = 65_000;
/// Control buffer of one message: CMSG_SPACE(sizeof(u16)) is 24 bytes on 64-bit Linux and 16
/// on 32-bit; 32 bytes, 8-aligned, covers both.
/// Control bytes of one message: the `UDP_SEGMENT` cmsg (CMSG_SPACE(2): 24 bytes on 64-bit)
/// and the source-address cmsg (CMSG_SPACE of in_pktinfo or in6_pktinfo: 32 or 40).
type GsoControl = [u64; 12];

/// Whether this kernel knows UDP GSO (Linux >= 4.18). Asked once per process, because an older
/// kernel does not reject the `UDP_SEGMENT` cmsg: it ignores it and would send the whole run as
/// one oversized datagram.
pub(super) fn kernel_supports_gso() -> bool {
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
    /// Address each datagram must leave from (sockets bound to a wildcard), if known.
    srcs: Vec<Option<IpAddr>>,
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
    /// Dual-stack (IPv6) sockets: IPv4 destinations go as IPv4-mapped IPv6 addresses.
    ipv6: Vec<RawFd>,
}

// SAFETY: see RecvBatch (recv.rs).
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
            srcs: vec![None; slots],
            addrs: vec![zero_addr; slots],
            addr_lens: vec![0; slots],
            owners: vec![0; slots],
            count: 0,
            order: Vec::with_capacity(slots),
            iovecs: vec![libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 }; slots],
            msgs: vec![zero_msg; slots],
            msg_segments: vec![0; slots],
            controls: vec![[0u64; 12]; slots],
            gso: gso && kernel_supports_gso(),
            gso_refused: Vec::new(),
            ipv6: Vec::new(),
        }
    }

    /// Marks `fd` as an IPv6 (dual-stack) socket: its IPv4 destinations are sent IPv4-mapped.
    pub fn set_ipv6(&mut self, fd: RawFd) {
        if !self.ipv6.contains(&fd) {
            self.ipv6.push(fd);
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
        self.ipv6.retain(|&f| f != fd);
    }

    pub fn is_full(&self) -> bool {
        self.count == self.bufs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The index the next committed datagram will have (`None`: full).
    pub fn next_index(&self) -> Option<usize> {
        (!self.is_full()).then_some(self.count)
    }

    /// Reserves the next slot; the caller fills the buffer and then calls `commit`.
    pub fn slot(&mut self) -> Option<&mut [u8; MAX_DATAGRAM]> {
        if self.is_full() {
            None
        } else {
            Some(&mut self.bufs[self.count])
        }
    }

    /// Queues the slot just filled, to `to`, leaving from `src` when given (see `enable_pktinfo`).
    pub fn commit(&mut self, len: usize, fd: RawFd, owner: u32, to: &SocketAddr, src: Option<IpAddr>) {
        let i = self.count;
        if i >= self.bufs.len() {
            return;
        }
        self.lens[i] = len.min(MAX_DATAGRAM);
        self.fds[i] = fd;
        self.owners[i] = owner;
        let to = &match to {
            SocketAddr::V4(v4) if self.ipv6.contains(&fd) => SocketAddr::new(IpAddr::V6(v4.ip().to_ipv6_mapped()), v4.port()),
            other => *other,
        };
        self.dests[i] = *to;
        // A dual-stack socket sends IPv4 as IPv4-mapped IPv6: the source follows the destination.
        self.srcs[i] = match (src, to) {
            (Some(IpAddr::V4(ip)), SocketAddr::V6(_)) => Some(IpAddr::V6(ip.to_ipv6_mapped())),
            _ => src,
        };
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
                if len == 0 || len > gso_size || bytes + len > GSO_MAX_BYTES || self.dests[next] != self.dests[first] || self.srcs[next] != self.srcs[first] {
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
            let control = &mut self.controls[n_msgs];
            let gso_segment = (segments > 1).then_some(gso_size as u16);
            let written = write_control(control, gso_segment, self.srcs[first]);
            if written > 0 {
                hdr.msg_control = control.as_mut_ptr() as *mut libc::c_void;
                hdr.msg_controllen = written as _;
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

    /// Sends everything queued: entries grouped by socket and, within a socket, by destination
    /// (stable, so each destination's order is kept: a shared socket's datagrams come
    /// interleaved by subscriber, and grouping them restores the runs GSO sends as one), one
    /// `sendmmsg` per socket, retried while the kernel takes part of a batch. Each datagram is
    /// counted for its own owner (a shared socket carries many endpoints).
    pub fn flush(&mut self, report: &mut FlushReport) {
        report.sent.clear();
        report.failed.clear();
        if self.count == 0 {
            return;
        }
        self.order.clear();
        self.order.extend(0..self.count);
        let (fds, dests) = (&self.fds, &self.dests);
        self.order.sort_by_key(|&i| (fds[i], dests[i]));
        let mut start = 0;
        while start < self.count {
            let fd = self.fds[self.order[start]];
            let mut end = start;
            while end < self.count && self.fds[self.order[end]] == fd {
                end += 1;
            }
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
                            for k in next..next + segments {
                                let i = self.order[k];
                                count_sent(&mut report.sent, self.owners[i], self.lens[i]);
                            }
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
                    for k in next..next + segments {
                        count_failed(&mut report.failed, self.owners[self.order[k]]);
                    }
                    next += segments;
                    m += 1;
                }
                if !relayout {
                    break;
                }
            }
            start = end;
        }
        self.count = 0;
    }
}

/// Writes a message's control messages into `control`: `UDP_SEGMENT` when the message carries
/// a GSO run, and the source address (`IP_PKTINFO`'s `ipi_spec_dst`, or `IPV6_PKTINFO`'s
/// address) when one is known. Returns the bytes used (0: none).
fn write_control(control: &mut GsoControl, gso_segment: Option<u16>, src: Option<IpAddr>) -> usize {
    let bytes = std::mem::size_of::<GsoControl>();
    // SAFETY: a zeroed msghdr whose control points at `control`'s `bytes` 8-aligned bytes; the
    // CMSG_* macros only walk within msg_controllen, and each cmsg written (header plus data,
    // CMSG_SPACE of at most 40 bytes, two of them at most: 24 + 40 <= 96) lies inside it.
    unsafe {
        let mut hdr: libc::msghdr = std::mem::zeroed();
        hdr.msg_control = control.as_mut_ptr() as *mut libc::c_void;
        hdr.msg_controllen = bytes as _;
        let mut used = 0usize;
        let mut cmsg = libc::CMSG_FIRSTHDR(&hdr);
        if let Some(size) = gso_segment {
            (*cmsg).cmsg_level = libc::SOL_UDP;
            (*cmsg).cmsg_type = UDP_SEGMENT;
            (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<u16>() as u32) as _;
            std::ptr::write_unaligned(libc::CMSG_DATA(cmsg) as *mut u16, size);
            used += libc::CMSG_SPACE(std::mem::size_of::<u16>() as u32) as usize;
            cmsg = libc::CMSG_NXTHDR(&hdr, cmsg);
        }
        match src {
            Some(IpAddr::V4(ip)) if !cmsg.is_null() => {
                let mut info: libc::in_pktinfo = std::mem::zeroed();
                info.ipi_spec_dst = libc::in_addr { s_addr: u32::from(ip).to_be() };
                (*cmsg).cmsg_level = libc::IPPROTO_IP;
                (*cmsg).cmsg_type = libc::IP_PKTINFO;
                (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<libc::in_pktinfo>() as u32) as _;
                std::ptr::write_unaligned(libc::CMSG_DATA(cmsg) as *mut libc::in_pktinfo, info);
                used += libc::CMSG_SPACE(std::mem::size_of::<libc::in_pktinfo>() as u32) as usize;
            }
            Some(IpAddr::V6(ip)) if !cmsg.is_null() => {
                let mut info: libc::in6_pktinfo = std::mem::zeroed();
                info.ipi6_addr = libc::in6_addr { s6_addr: ip.octets() };
                (*cmsg).cmsg_level = libc::IPPROTO_IPV6;
                (*cmsg).cmsg_type = libc::IPV6_PKTINFO;
                (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<libc::in6_pktinfo>() as u32) as _;
                std::ptr::write_unaligned(libc::CMSG_DATA(cmsg) as *mut libc::in6_pktinfo, info);
                used += libc::CMSG_SPACE(std::mem::size_of::<libc::in6_pktinfo>() as u32) as usize;
            }
            _ => {}
        }
        used
    }
}

/// One datagram of `owner` sent: added to the report's last entry when it is the same owner
/// (datagrams of one owner come in runs), else a new entry.
fn count_sent(sent: &mut Vec<(u32, usize, usize)>, owner: u32, len: usize) {
    match sent.last_mut() {
        Some((o, n, bytes)) if *o == owner => {
            *n += 1;
            *bytes += len;
        }
        _ => sent.push((owner, 1, len)),
    }
}

fn count_failed(failed: &mut Vec<(u32, usize)>, owner: u32) {
    match failed.last_mut() {
        Some((o, n)) if *o == owner => *n += 1,
        _ => failed.push((owner, 1)),
    }
}

/// Queued datagrams by index, for their SRTP tags to be written in place before the flush
/// (`hmac_batch::write_deferred_tags`); an index not queued reads as empty.
impl PacketStore for SendQueue {
    fn packet(&self, i: usize) -> &[u8] {
        match (self.bufs.get(i), self.lens.get(i)) {
            (Some(buf), Some(&len)) if i < self.count => &buf[..len],
            _ => &[],
        }
    }

    fn packet_mut(&mut self, i: usize) -> &mut [u8] {
        match (self.bufs.get_mut(i), self.lens.get(i)) {
            (Some(buf), Some(&len)) if i < self.count => &mut buf[..len],
            _ => &mut [],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::set_socket_buffers;
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
        q.commit(len, fd, 9, &to, None);
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

