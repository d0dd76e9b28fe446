//! The only unsafe code of the engine: thin wrappers over Linux epoll,
//! eventfd, recvmmsg and sendmmsg, socket options and CPU affinity. Every
//! `unsafe` of ferry-engine is in this module tree (lib.rs denies it
//! elsewhere), each with its SAFETY comment; everything above works with safe
//! slices and `SocketAddr`s.
//!
//! - `epoll`: readiness of sockets and the wake eventfd;
//! - `socket`: `sockaddr` conversions and socket buffer sizes;
//! - `recv`: batched receiving (`recvmmsg`), with UDP GRO;
//! - `send`: batched sending (`sendmmsg`), with UDP GSO;
//! - `cpu`: thread CPU time, allowed CPUs and pinning.

use std::io;

mod cpu;
mod epoll;
mod recv;
mod send;
mod socket;

pub use cpu::{allowed_cpus, pin_current_thread, thread_cpu_ns};
pub use epoll::{Epoll, WakeFd};
pub use recv::RecvBatch;
pub use send::{FlushReport, SendQueue};
pub use socket::{enable_pktinfo, set_socket_buffers, sockaddr_to_std, std_to_sockaddr};

pub const MAX_DATAGRAM: usize = 2048;

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}
