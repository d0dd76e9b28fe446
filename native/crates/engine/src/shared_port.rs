//! Many WebRTC endpoints on one UDP socket per media thread (single-port mode), sans-IO: which
//! endpoint a datagram is for.
//!
//! RFC 8445 lets one transport address serve several ICE agents as long as checks can be told
//! apart: a connectivity check names the agent it is for in its USERNAME (§7.2.2, the
//! recipient's ufrag first), so checks are routed by ufrag; once an endpoint's agent has
//! validated a sender's address (a check with the right MESSAGE-INTEGRITY), everything from that
//! address — DTLS, SRTP, SRTCP, later checks — goes to that endpoint by its 5-tuple. Anything
//! else is counted and dropped: there is no way to know whose it is, and an unvalidated sender
//! must never reach an endpoint anyway (RFC 8445 §7.3).

use std::collections::HashMap;
use std::net::SocketAddr;

/// Addresses one endpoint may be reached from at once (its peer's validated candidates). A
/// peer that validated more (it holds the credentials) cannot grow the table beyond this.
pub const MAX_ADDRESSES_PER_ENDPOINT: usize = 8;

#[derive(Debug, Default)]
pub struct SharedPortDemux {
    by_ufrag: HashMap<String, u32>,
    ufrag_of: HashMap<u32, String>,
    by_remote: HashMap<SocketAddr, u32>,
    addresses_of: HashMap<u32, Vec<SocketAddr>>,
}

impl SharedPortDemux {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers an endpoint under its local ICE ufrag.
    pub fn add(&mut self, endpoint: u32, ufrag: &str) -> Result<(), String> {
        if self.ufrag_of.contains_key(&endpoint) {
            return Err(format!("endpoint {endpoint} is already on the shared port"));
        }
        if self.by_ufrag.contains_key(ufrag) {
            return Err(format!("ICE ufrag {ufrag:?} is already in use on the shared port"));
        }
        self.by_ufrag.insert(ufrag.to_string(), endpoint);
        self.ufrag_of.insert(endpoint, ufrag.to_string());
        Ok(())
    }

    pub fn contains(&self, endpoint: u32) -> bool {
        self.ufrag_of.contains_key(&endpoint)
    }

    /// Forgets an endpoint, its ufrag and every address it was reached from.
    pub fn remove(&mut self, endpoint: u32) {
        if let Some(ufrag) = self.ufrag_of.remove(&endpoint) {
            self.by_ufrag.remove(&ufrag);
        }
        for address in self.addresses_of.remove(&endpoint).unwrap_or_default() {
            self.by_remote.remove(&address);
        }
    }

    /// ICE restart: the endpoint's checks now carry `ufrag`; the addresses stay (the transport
    /// goes on, RFC 8445 §9).
    pub fn restart(&mut self, endpoint: u32, ufrag: &str) -> Result<(), String> {
        if self.by_ufrag.get(ufrag).is_some_and(|&e| e != endpoint) {
            return Err(format!("ICE ufrag {ufrag:?} is already in use on the shared port"));
        }
        if let Some(old) = self.ufrag_of.insert(endpoint, ufrag.to_string()) {
            self.by_ufrag.remove(&old);
        }
        self.by_ufrag.insert(ufrag.to_string(), endpoint);
        Ok(())
    }

    /// The endpoint a datagram from `from` is for: by its validated address, else (a
    /// connectivity check) by the ufrag it names.
    pub fn route(&self, from: SocketAddr, datagram: &[u8]) -> Option<u32> {
        if let Some(&endpoint) = self.by_remote.get(&from) {
            return Some(endpoint);
        }
        ferry_stun::recipient_ufrag(datagram).and_then(|ufrag| self.by_ufrag.get(ufrag).copied())
    }

    /// The endpoint's agent validated `from`: route its datagrams by address from now on.
    /// False when the address is taken by another endpoint or the endpoint has its fill.
    pub fn learn(&mut self, endpoint: u32, from: SocketAddr) -> bool {
        match self.by_remote.get(&from) {
            Some(&e) => return e == endpoint,
            None if !self.ufrag_of.contains_key(&endpoint) => return false,
            None => {}
        }
        let addresses = self.addresses_of.entry(endpoint).or_default();
        if addresses.len() >= MAX_ADDRESSES_PER_ENDPOINT {
            return false;
        }
        addresses.push(from);
        self.by_remote.insert(from, endpoint);
        true
    }

    pub fn endpoint_count(&self) -> usize {
        self.ufrag_of.len()
    }

    pub fn address_count(&self) -> usize {
        self.by_remote.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn check(username: &str) -> Vec<u8> {
        ferry_stun::build_binding_request([1; 12], username, "0123456789abcdefghijkl", 1, false, 2)
    }

    #[test]
    fn checks_go_by_ufrag_and_then_everything_by_the_validated_address() {
        let mut d = SharedPortDemux::new();
        d.add(1, "aaaa").unwrap();
        d.add(2, "bbbb").unwrap();
        assert_eq!(d.route(addr(5000), &check("aaaa:peer")), Some(1));
        assert_eq!(d.route(addr(5001), &check("bbbb:peer")), Some(2));
        assert_eq!(d.route(addr(5000), b"\x16\xfe\xfd dtls"), None, "not validated yet");
        assert!(d.learn(1, addr(5000)));
        assert_eq!(d.route(addr(5000), b"\x16\xfe\xfd dtls"), Some(1));
        assert_eq!(d.route(addr(5000), &check("bbbb:peer")), Some(1), "an address belongs to one endpoint");
        assert!(!d.learn(2, addr(5000)), "nor can another take it");
        assert_eq!(d.route(addr(6000), &check("cccc:peer")), None);
        assert_eq!(d.route(addr(6000), b"garbage"), None);
    }

    #[test]
    fn remove_and_restart_keep_the_tables_consistent() {
        let mut d = SharedPortDemux::new();
        d.add(1, "aaaa").unwrap();
        assert!(d.add(2, "aaaa").is_err(), "ufrags are unique per port");
        assert!(d.add(1, "zzzz").is_err());
        d.learn(1, addr(5000));
        d.restart(1, "a2a2").unwrap();
        assert_eq!(d.route(addr(7000), &check("aaaa:peer")), None);
        assert_eq!(d.route(addr(7000), &check("a2a2:peer")), Some(1));
        assert_eq!(d.route(addr(5000), b"rtp"), Some(1), "the transport goes on");
        d.add(2, "bbbb").unwrap();
        assert!(d.restart(1, "bbbb").is_err());
        d.remove(1);
        assert_eq!((d.endpoint_count(), d.address_count()), (1, 0));
        assert_eq!(d.route(addr(5000), b"rtp"), None);
        assert!(!d.learn(1, addr(5000)), "a removed endpoint learns nothing");
        d.remove(2);
        assert_eq!((d.endpoint_count(), d.address_count()), (0, 0));
    }

    #[test]
    fn an_endpoint_is_reached_from_a_bounded_number_of_addresses() {
        let mut d = SharedPortDemux::new();
        d.add(1, "aaaa").unwrap();
        for port in 0..MAX_ADDRESSES_PER_ENDPOINT as u16 {
            assert!(d.learn(1, addr(9000 + port)));
        }
        assert!(!d.learn(1, addr(9999)));
        assert_eq!(d.address_count(), MAX_ADDRESSES_PER_ENDPOINT);
    }
}
