//! ICE-TCP, passive (RFC 6544): a WebRTC endpoint may also listen on TCP, on the same port
//! number as its UDP socket, for peers whose UDP is blocked. Each accepted connection carries
//! RFC 4571 framing (a 16-bit length before each packet) of exactly what UDP would carry —
//! STUN checks, DTLS, SRTP, SRTCP — so the router handles its frames as datagrams from the
//! connection's peer address, and what the router sends to that address goes back framed on
//! the connection. Bounded everywhere: connections per endpoint, bytes read per wake, and the
//! bytes waiting to be written (beyond which a frame is dropped and counted, as a full UDP
//! socket buffer would).

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};

use crate::router::MAX_DATAGRAM;

/// Connections one endpoint keeps at once (a peer tries a few candidate pairs).
pub const MAX_CONNECTIONS_PER_ENDPOINT: usize = 4;
/// Bytes a connection may have waiting to be written before frames are dropped.
pub const WRITE_LIMIT: usize = 512 * 1024;
/// Bytes read from one connection per wake before the others get their turn.
const READ_PER_WAKE: usize = 64 * 1024;

/// One accepted connection.
pub(crate) struct TcpConn {
    pub stream: TcpStream,
    pub endpoint: u32,
    pub peer: SocketAddr,
    /// Bytes read and not yet a whole frame.
    rbuf: Vec<u8>,
    /// Framed bytes waiting for the socket.
    wbuf: Vec<u8>,
}

/// Every ICE-TCP connection of a media thread, by its epoll token, and the route from an
/// (endpoint, peer address) to its connection.
#[derive(Default)]
pub(crate) struct TcpConns {
    conns: HashMap<u64, TcpConn>,
    routes: HashMap<(u32, SocketAddr), u64>,
    /// Frames dropped: the peer's connection could not take them, or its framing was broken.
    pub dropped: u64,
}

/// What reading a connection gave: whole frames (appended to the caller's list), and whether
/// the connection is finished (end of stream, error, or a frame no datagram could be).
pub(crate) struct ReadOutcome {
    pub closed: bool,
}

impl TcpConns {
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    pub fn count_for(&self, endpoint: u32) -> usize {
        self.conns.values().filter(|c| c.endpoint == endpoint).count()
    }

    pub fn insert(&mut self, token: u64, stream: TcpStream, endpoint: u32, peer: SocketAddr) {
        self.routes.insert((endpoint, peer), token);
        self.conns.insert(token, TcpConn { stream, endpoint, peer, rbuf: Vec::new(), wbuf: Vec::new() });
    }

    pub fn get(&self, token: u64) -> Option<&TcpConn> {
        self.conns.get(&token)
    }

    /// Removes a connection (its stream closes when dropped).
    pub fn remove(&mut self, token: u64) -> Option<TcpConn> {
        let conn = self.conns.remove(&token)?;
        if self.routes.get(&(conn.endpoint, conn.peer)) == Some(&token) {
            self.routes.remove(&(conn.endpoint, conn.peer));
        }
        Some(conn)
    }

    /// The tokens of an endpoint's connections (to close them with it).
    pub fn tokens_of(&self, endpoint: u32) -> Vec<u64> {
        self.conns.iter().filter(|(_, c)| c.endpoint == endpoint).map(|(&t, _)| t).collect()
    }

    /// Whether `to` is a TCP peer of `endpoint`: its datagrams go framed on that connection.
    pub fn routes_to(&self, endpoint: u32, to: &SocketAddr) -> bool {
        self.routes.contains_key(&(endpoint, *to))
    }

    /// Queues one datagram for the connection to `to` (RFC 4571 §2: 16-bit length, then the
    /// packet). False when there is none; a full connection drops it (counted).
    pub fn queue(&mut self, endpoint: u32, to: &SocketAddr, datagram: &[u8]) -> bool {
        let Some(conn) = self.routes.get(&(endpoint, *to)).and_then(|t| self.conns.get_mut(t)) else { return false };
        let Ok(len) = u16::try_from(datagram.len()) else {
            self.dropped += 1;
            return true;
        };
        if conn.wbuf.len() + 2 + datagram.len() > WRITE_LIMIT {
            self.dropped += 1;
            return true;
        }
        conn.wbuf.extend_from_slice(&len.to_be_bytes());
        conn.wbuf.extend_from_slice(datagram);
        true
    }

    /// Writes what every connection has waiting, as far as each socket takes it now; returns
    /// the tokens of connections that failed (to be closed).
    pub fn flush(&mut self) -> Vec<u64> {
        let mut failed = Vec::new();
        for (&token, conn) in self.conns.iter_mut() {
            while !conn.wbuf.is_empty() {
                match conn.stream.write(&conn.wbuf) {
                    Ok(0) => {
                        failed.push(token);
                        break;
                    }
                    Ok(n) => {
                        conn.wbuf.drain(..n);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => {
                        failed.push(token);
                        break;
                    }
                }
            }
        }
        failed
    }

    /// Reads what the connection has (at most READ_PER_WAKE bytes) and appends its whole
    /// frames to `frames`.
    pub fn read(&mut self, token: u64, frames: &mut Vec<Vec<u8>>) -> ReadOutcome {
        let Some(conn) = self.conns.get_mut(&token) else { return ReadOutcome { closed: true } };
        let mut chunk = [0u8; 16 * 1024];
        let mut read = 0usize;
        let mut closed = false;
        while read < READ_PER_WAKE {
            match conn.stream.read(&mut chunk) {
                Ok(0) => {
                    closed = true;
                    break;
                }
                Ok(n) => {
                    read += n;
                    conn.rbuf.extend_from_slice(&chunk[..n]);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    closed = true;
                    break;
                }
            }
        }
        let mut at = 0usize;
        while conn.rbuf.len() - at >= 2 {
            let len = usize::from(u16::from_be_bytes([conn.rbuf[at], conn.rbuf[at + 1]]));
            if len == 0 || len > MAX_DATAGRAM {
                // No datagram is empty or larger than the engine takes: the stream is broken.
                self.dropped += 1;
                return ReadOutcome { closed: true };
            }
            if conn.rbuf.len() - at < 2 + len {
                break;
            }
            frames.push(conn.rbuf[at + 2..at + 2 + len].to_vec());
            at += 2 + len;
        }
        conn.rbuf.drain(..at);
        ReadOutcome { closed }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::time::Duration;

    fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        client.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        (server, client)
    }

    #[test]
    fn frames_both_ways_and_a_broken_stream_is_closed() {
        let (server, mut client) = pair();
        let peer = client.local_addr().unwrap();
        let mut conns = TcpConns::default();
        conns.insert(7, server, 1, peer);
        assert!(conns.routes_to(1, &peer));
        // Two frames, the second split over two writes.
        client.write_all(&[0, 3, 1, 2, 3, 0, 2, 9]).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let mut frames = Vec::new();
        assert!(!conns.read(7, &mut frames).closed);
        assert_eq!(frames, vec![vec![1, 2, 3]]);
        client.write_all(&[8]).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        frames.clear();
        conns.read(7, &mut frames);
        assert_eq!(frames, vec![vec![9, 8]]);
        // Out: framed.
        assert!(conns.queue(1, &peer, &[5, 6]));
        assert!(!conns.queue(2, &peer, &[5]), "not this endpoint's peer");
        assert!(conns.flush().is_empty());
        let mut got = [0u8; 4];
        client.read_exact(&mut got).unwrap();
        assert_eq!(got, [0, 2, 5, 6]);
        // A zero-length frame cannot be a datagram: the connection is done.
        client.write_all(&[0, 0]).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert!(conns.read(7, &mut frames).closed);
        assert!(conns.remove(7).is_some());
        assert!(!conns.routes_to(1, &peer));
        assert_eq!(conns.len(), 0);
    }

    #[test]
    fn a_peer_that_does_not_read_loses_frames_not_memory() {
        let (server, client) = pair();
        let peer = client.local_addr().unwrap();
        let mut conns = TcpConns::default();
        conns.insert(1, server, 1, peer);
        let frame = vec![0u8; 1200];
        // 48 MB offered: more than loopback socket buffers take.
        for _ in 0..40_000 {
            conns.queue(1, &peer, &frame);
            conns.flush();
        }
        assert!(conns.dropped > 0, "the client never reads: the write limit drops frames");
        drop(client);
    }
}
