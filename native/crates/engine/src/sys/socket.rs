//! Socket addresses between `std` and `libc`, and socket buffer sizes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;

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

/// Asks the kernel to tell, with each datagram, the local address it was sent to (`IP_PKTINFO`,
/// and `IPV6_RECVPKTINFO` on an IPv6 socket): a socket bound to a wildcard address learns which
/// of the host's addresses a peer used, so replies can leave from that same address (a peer
/// drops replies from another address: its ICE pair, or its NAT binding, names the one it used).
pub fn enable_pktinfo(fd: RawFd, ipv6: bool) -> bool {
    let on: libc::c_int = 1;
    let set = |level: libc::c_int, name: libc::c_int| {
        // SAFETY: passes a pointer to a live c_int of the stated size.
        unsafe { libc::setsockopt(fd, level, name, &on as *const libc::c_int as *const libc::c_void, std::mem::size_of::<libc::c_int>() as libc::socklen_t) == 0 }
    };
    if ipv6 {
        // Dual-stack sockets get IPv4-mapped datagrams too: ask for both.
        let v6 = set(libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO);
        let _ = set(libc::IPPROTO_IP, libc::IP_PKTINFO);
        v6
    } else {
        set(libc::IPPROTO_IP, libc::IP_PKTINFO)
    }
}

/// The local address in an `IP_PKTINFO` / `IPV6_PKTINFO` control message's data, if it is one.
pub(super) fn pktinfo_local(level: libc::c_int, kind: libc::c_int, data: &[u8]) -> Option<IpAddr> {
    if level == libc::IPPROTO_IP && kind == libc::IP_PKTINFO {
        // struct in_pktinfo { int ipi_ifindex; struct in_addr ipi_spec_dst; struct in_addr ipi_addr; }
        let addr: [u8; 4] = data.get(8..12)?.try_into().ok()?;
        return Some(IpAddr::V4(Ipv4Addr::from(addr)));
    }
    if level == libc::IPPROTO_IPV6 && kind == libc::IPV6_PKTINFO {
        // struct in6_pktinfo { struct in6_addr ipi6_addr; unsigned int ipi6_ifindex; }
        let addr: [u8; 16] = data.get(..16)?.try_into().ok()?;
        let ip = Ipv6Addr::from(addr);
        return Some(ip.to_ipv4_mapped().map_or(IpAddr::V6(ip), IpAddr::V4));
    }
    None
}
