//! Dial candidates: peers from the discovery table that this node may dial.
//!
//! The filter applies when a candidate is offered, never to the table (WIRE.md §4): the
//! table keeps every valid ENR so third-party discv5 nodes can use us as a bootnode.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use devmux_identity::{peer_multiaddr, Enode, Multiaddr, NodeId, PeerId};
use enr::{CombinedPublicKey, EnrPublicKey};
use tokio::sync::mpsc;

use crate::config::{DiscoveryConfig, ForkFilterFn, Stack};
use crate::{Enr, ForkId};

/// The ENR key of the stream stack's TCP port (WIRE.md §4).
pub const MUX_ENR_KEY: &str = "mux";

/// A peer this node may dial: it advertises a stack we run and a compatible fork id.
#[derive(Clone, Debug)]
pub struct DialCandidate {
    /// The peer's record as discovery last saw it.
    pub enr: Enr,
    /// The devp2p node id (64-byte uncompressed secp256k1 key from the ENR).
    pub node_id: NodeId,
    /// The libp2p PeerId of the same key.
    pub peer_id: PeerId,
    /// The stack to dial it on: one we run and it advertises ([`DiscoveryConfig::preferred_stack`]
    /// when both sides run both).
    pub stack: Stack,
    /// The IP to dial.
    pub ip: IpAddr,
    /// The TCP port of `stack`.
    pub tcp_port: u16,
    /// The peer's fork id (its `eth` entry), which the fork filter accepted.
    pub fork: ForkId,
}

impl DialCandidate {
    /// The TCP address of the chosen stack.
    pub fn tcp_addr(&self) -> SocketAddr {
        SocketAddr::new(self.ip, self.tcp_port)
    }

    /// The discv5 node id (`keccak256` of the 64-byte key).
    pub fn discv5_id(&self) -> [u8; 32] {
        self.enr.node_id().raw()
    }

    /// The peer's address for `stack`, if its ENR advertises that stack (whether or
    /// not we run it).
    pub fn addr_for(&self, stack: Stack) -> Option<SocketAddr> {
        stack_addr(&self.enr, stack, self.ip.is_ipv6())
    }

    /// The `enode://id@ip:tcp?discport=udp` URL for dialing over RLPx, if the peer
    /// advertises RLPx (`tcp`).
    pub fn enode(&self) -> Option<Enode> {
        let addr = self.addr_for(Stack::Rlpx)?;
        let udp = if addr.is_ipv6() {
            self.enr.udp6()
        } else {
            self.enr.udp4()
        };
        Some(Enode {
            id: self.node_id,
            addr,
            discport: udp,
        })
    }

    /// The `/ip4/…/tcp/…/p2p/…` multiaddr for dialing the stream stack, if the peer
    /// advertises it (`mux`).
    pub fn multiaddr(&self) -> Option<Multiaddr> {
        Some(peer_multiaddr(self.addr_for(Stack::Mux)?, &self.peer_id))
    }

    /// The dial address of the chosen stack as text: an `enode://` URL for RLPx, a
    /// multiaddr for the stream stack.
    pub fn dial_url(&self) -> String {
        match self.stack {
            Stack::Rlpx => Enode::new(self.node_id, self.tcp_addr()).to_string(),
            Stack::Mux => peer_multiaddr(self.tcp_addr(), &self.peer_id).to_string(),
        }
    }
}

/// Why an ENR is not a dial candidate. None of these removes it from the table.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// It is our own record.
    #[error("our own record")]
    Local,
    /// Its identity key is not secp256k1, so neither stack can authenticate it.
    #[error("not a secp256k1 record")]
    NotSecp256k1,
    /// It advertises none of the stacks we run (`tcp` for RLPx, `mux` for the stream stack).
    #[error("advertises none of our stacks")]
    NoSharedStack,
    /// It advertises a stack we run but no usable IP for it.
    #[error("no usable IP address")]
    NoAddress,
    /// It has no `eth` entry: not an Ethereum node.
    #[error("no eth entry")]
    NoEthEntry,
    /// Its `eth` entry does not decode.
    #[error("malformed eth entry")]
    MalformedEthEntry,
    /// The fork filter rejected its fork id.
    #[error("incompatible fork id {0:?}")]
    IncompatibleFork(ForkId),
    /// Its address is more local than ours (a loopback, link-local or private target
    /// for a public node): a record anyone can sign must not aim our dials at hosts
    /// only we can reach ([`DiscoveryConfig::dial_local_targets`] lifts it).
    #[error("address {0} is more local than ours")]
    OutOfScope(IpAddr),
}

/// How far an address reaches, from most local to global.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum AddrScope {
    /// This host: 127.0.0.0/8, ::1.
    Loopback,
    /// This link: 169.254.0.0/16, fe80::/10.
    LinkLocal,
    /// A private network: 10/8, 172.16/12, 192.168/16, 100.64/10 (carrier NAT),
    /// fc00::/7 (unique local).
    Private,
    /// Everything else.
    Public,
}

impl AddrScope {
    /// The scope of `ip` (an IPv4-mapped IPv6 address has its IPv4 address's).
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => {
                let [a, b, ..] = v4.octets();
                if v4.is_loopback() {
                    Self::Loopback
                } else if v4.is_link_local() {
                    Self::LinkLocal
                } else if v4.is_private() || (a == 100 && (64..128).contains(&b)) {
                    Self::Private
                } else {
                    Self::Public
                }
            }
            IpAddr::V6(v6) => {
                if let Some(v4) = v6.to_ipv4_mapped() {
                    return Self::of(IpAddr::V4(v4));
                }
                let first = v6.segments()[0];
                if v6.is_loopback() {
                    Self::Loopback
                } else if first & 0xffc0 == 0xfe80 {
                    Self::LinkLocal
                } else if first & 0xfe00 == 0xfc00 {
                    Self::Private
                } else {
                    Self::Public
                }
            }
        }
    }

    /// Whether a node whose own address has this scope may dial a `target` address: one
    /// no more local than its own. A loopback node (a test network) dials anything; a
    /// private one private and public addresses; a public one public addresses only.
    pub fn may_dial(self, target: Self) -> bool {
        target >= self
    }
}

/// The dial-time filter: which ENRs become [`DialCandidate`]s.
#[derive(Clone)]
pub struct DialFilter {
    /// Stacks we run, preferred first.
    stacks: Vec<Stack>,
    fork_ok: ForkFilterFn,
    local: enr::NodeId,
    prefer_v6: bool,
    /// The scope of our own advertised address; `None`: any target is dialled.
    own_scope: Option<AddrScope>,
}

impl fmt::Debug for DialFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DialFilter")
            .field("stacks", &self.stacks)
            .field("prefer_v6", &self.prefer_v6)
            .finish_non_exhaustive()
    }
}

impl DialFilter {
    pub(crate) fn new(config: &DiscoveryConfig, local: enr::NodeId) -> Self {
        let mut stacks = config.stacks();
        // Preferred stack first.
        stacks.sort_by_key(|s| *s != config.preferred_stack);
        let fork_ok = config.fork_filter.clone().unwrap_or_else(|| {
            let own = config.eth.hash;
            std::sync::Arc::new(move |remote: &ForkId| remote.hash == own)
        });
        Self {
            stacks,
            fork_ok,
            local,
            prefer_v6: config.enr_ip.is_ipv6(),
            own_scope: (!config.dial_local_targets).then(|| AddrScope::of(config.enr_ip)),
        }
    }

    /// The stacks we dial, preferred first (empty: no candidates at all).
    pub fn stacks(&self) -> &[Stack] {
        &self.stacks
    }

    /// Checks `enr` and, if it passes, builds the candidate.
    pub fn check(&self, enr: &Enr) -> Result<DialCandidate, Rejection> {
        if enr.node_id() == self.local {
            return Err(Rejection::Local);
        }
        let node_id = secp256k1_node_id(enr).ok_or(Rejection::NotSecp256k1)?;
        let mut advertised = false;
        let mut chosen = None;
        for &stack in &self.stacks {
            if stack_port(enr, stack, false).is_some() || stack_port(enr, stack, true).is_some() {
                advertised = true;
            }
            if let Some(addr) = stack_addr(enr, stack, self.prefer_v6) {
                chosen = Some((stack, addr));
                break;
            }
        }
        let (stack, addr) = match chosen {
            Some(found) => found,
            None if advertised => return Err(Rejection::NoAddress),
            None => return Err(Rejection::NoSharedStack),
        };
        if let Some(own) = self.own_scope {
            if !own.may_dial(AddrScope::of(addr.ip())) {
                return Err(Rejection::OutOfScope(addr.ip()));
            }
        }
        let fork = match crate::fork_id_of(enr) {
            None => return Err(Rejection::NoEthEntry),
            Some(Err(_)) => return Err(Rejection::MalformedEthEntry),
            Some(Ok(fork)) => fork,
        };
        if !(self.fork_ok)(&fork) {
            return Err(Rejection::IncompatibleFork(fork));
        }
        let peer_id = node_id.to_peer_id().map_err(|_| Rejection::NotSecp256k1)?;
        Ok(DialCandidate {
            enr: enr.clone(),
            node_id,
            peer_id,
            stack,
            ip: addr.ip(),
            tcp_port: addr.port(),
            fork,
        })
    }
}

/// The devp2p node id of a secp256k1 ENR.
pub fn secp256k1_node_id(enr: &Enr) -> Option<NodeId> {
    match enr.public_key() {
        CombinedPublicKey::Secp256k1(key) => Some(NodeId(key.encode_uncompressed())),
        CombinedPublicKey::Ed25519(_) => None,
    }
}

/// The `mux` port of an ENR, if present and well-formed.
pub fn mux_port(enr: &Enr) -> Option<u16> {
    enr.get_decodable::<u16>(MUX_ENR_KEY)
        .and_then(Result::ok)
        .filter(|p| *p != 0)
}

fn stack_port(enr: &Enr, stack: Stack, v6: bool) -> Option<u16> {
    let port = match (stack, v6) {
        (Stack::Mux, _) => mux_port(enr),
        (Stack::Rlpx, false) => enr.tcp4(),
        // go-ethereum writes only `tcp`, also next to `ip6`.
        (Stack::Rlpx, true) => enr.tcp6().or_else(|| enr.tcp4()),
    };
    port.filter(|p| *p != 0)
}

fn usable(ip: IpAddr) -> bool {
    !ip.is_unspecified() && !ip.is_multicast()
}

fn stack_addr(enr: &Enr, stack: Stack, prefer_v6: bool) -> Option<SocketAddr> {
    let v4 = enr
        .ip4()
        .map(IpAddr::from)
        .filter(|ip| usable(*ip))
        .and_then(|ip| Some(SocketAddr::new(ip, stack_port(enr, stack, false)?)));
    let v6 = enr
        .ip6()
        .map(IpAddr::from)
        .filter(|ip| usable(*ip))
        .and_then(|ip| Some(SocketAddr::new(ip, stack_port(enr, stack, true)?)));
    if prefer_v6 {
        v6.or(v4)
    } else {
        v4.or(v6)
    }
}

/// Recently offered peers: a candidate is offered again only after `ttl` or when its
/// ENR's `seq` grows, and at most `per_ip` different ones from one IP address within
/// `ttl` (records are free to make: one host must not fill the dialer with thousands
/// of identities). Bounded: when full, expired entries go first, then the oldest.
#[derive(Debug)]
pub(crate) struct RecentlyOffered {
    map: HashMap<enr::NodeId, (u64, Instant, IpAddr)>,
    ttl: Duration,
    capacity: usize,
    per_ip: usize,
}

impl RecentlyOffered {
    pub(crate) fn new(ttl: Duration, capacity: usize, per_ip: usize) -> Self {
        Self {
            map: HashMap::new(),
            ttl,
            capacity: capacity.max(1),
            per_ip: per_ip.max(1),
        }
    }

    pub(crate) fn should_offer(
        &self,
        id: &enr::NodeId,
        ip: IpAddr,
        seq: u64,
        now: Instant,
    ) -> bool {
        let fresh = |at: Instant| now.saturating_duration_since(at) < self.ttl;
        if let Some(&(seen_seq, at, _)) = self.map.get(id) {
            return seq > seen_seq || !fresh(at);
        }
        let others = self
            .map
            .values()
            .filter(|(_, at, seen_ip)| *seen_ip == ip && fresh(*at))
            .count();
        others < self.per_ip
    }

    pub(crate) fn mark(&mut self, id: enr::NodeId, ip: IpAddr, seq: u64, now: Instant) {
        if !self.map.contains_key(&id) && self.map.len() >= self.capacity {
            let ttl = self.ttl;
            self.map
                .retain(|_, (_, at, _)| now.saturating_duration_since(*at) < ttl);
            if self.map.len() >= self.capacity {
                if let Some(oldest) = self
                    .map
                    .iter()
                    .min_by_key(|(_, (_, at, _))| *at)
                    .map(|(k, _)| *k)
                {
                    self.map.remove(&oldest);
                }
            }
        }
        self.map.insert(id, (seq, now, ip));
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}

/// The bounded stream of [`DialCandidate`]s, taken once with
/// [`Discovery::take_candidates`](crate::Discovery::take_candidates).
///
/// It ends when discovery shuts down. It implements [`futures::Stream`].
#[derive(Debug)]
pub struct Candidates {
    rx: mpsc::Receiver<DialCandidate>,
}

impl Candidates {
    pub(crate) fn new(rx: mpsc::Receiver<DialCandidate>) -> Self {
        Self { rx }
    }

    /// The next candidate; `None` once discovery has shut down.
    pub async fn recv(&mut self) -> Option<DialCandidate> {
        self.rx.recv().await
    }

    /// A candidate if one is waiting.
    pub fn try_recv(&mut self) -> Option<DialCandidate> {
        self.rx.try_recv().ok()
    }
}

impl futures::Stream for Candidates {
    type Item = DialCandidate;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<DialCandidate>> {
        self.rx.poll_recv(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_scopes_and_who_may_dial_whom() {
        use AddrScope::*;
        let scope = |ip: &str| AddrScope::of(ip.parse().unwrap());
        assert_eq!(scope("127.0.3.1"), Loopback);
        assert_eq!(scope("::1"), Loopback);
        assert_eq!(scope("169.254.1.1"), LinkLocal);
        assert_eq!(scope("fe80::1"), LinkLocal);
        for private in [
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.1",
            "192.168.1.1",
            "100.64.0.1",
            "fd00::1",
        ] {
            assert_eq!(scope(private), Private, "{private}");
        }
        for public in [
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "198.51.100.7",
            "2001:db8::1",
        ] {
            assert_eq!(scope(public), Public, "{public}");
        }
        assert_eq!(scope("::ffff:10.0.0.1"), Private);
        // A public node dials public targets only; a test network on loopback anything.
        assert!(Public.may_dial(Public));
        for local in [Loopback, LinkLocal, Private] {
            assert!(!Public.may_dial(local), "{local:?}");
            assert!(Loopback.may_dial(local));
        }
        assert!(Private.may_dial(Public) && Private.may_dial(Private));
        assert!(!Private.may_dial(Loopback) && !Private.may_dial(LinkLocal));
    }

    /// A public node's filter refuses records that point at loopback, link-local and
    /// private addresses, and takes a public one; with `dial_local_targets` it takes
    /// them all.
    #[test]
    fn a_public_node_is_not_steered_at_local_addresses() {
        use crate::{DiscoveryConfig, ForkHash};
        let fork = ForkId {
            hash: ForkHash([1, 2, 3, 4]),
            next: 0,
        };
        let record = |ip: std::net::Ipv4Addr, seed: u8| {
            let key = enr::CombinedKey::secp256k1_from_bytes(&mut [seed; 32]).unwrap();
            let mut builder = Enr::builder();
            builder.ip4(ip).tcp4(30303).add_value(
                crate::eth_entry::ETH_ENR_KEY,
                &crate::eth_entry::enr_value(fork),
            );
            builder.build(&key).unwrap()
        };
        let mut config = DiscoveryConfig {
            enr_ip: "198.51.100.1".parse().unwrap(),
            rlpx_tcp_port: Some(30303),
            eth: fork,
            ..DiscoveryConfig::default()
        };
        let filter = DialFilter::new(&config, id(9));
        for (seed, ip) in [
            (1u8, "127.0.0.1"),
            (2, "169.254.3.3"),
            (3, "10.0.0.7"),
            (4, "192.168.1.9"),
        ] {
            let ip: std::net::Ipv4Addr = ip.parse().unwrap();
            assert_eq!(
                filter.check(&record(ip, seed)).unwrap_err(),
                Rejection::OutOfScope(ip.into())
            );
        }
        let public: std::net::Ipv4Addr = "198.51.100.20".parse().unwrap();
        assert_eq!(
            filter.check(&record(public, 5)).unwrap().ip,
            IpAddr::from(public)
        );
        config.dial_local_targets = true;
        let lenient = DialFilter::new(&config, id(9));
        assert!(lenient
            .check(&record("10.0.0.7".parse().unwrap(), 3))
            .is_ok());
    }

    fn id(b: u8) -> enr::NodeId {
        enr::NodeId::new(&[b; 32])
    }

    #[test]
    fn recently_offered_ttl_seq_and_bound() {
        let t0 = Instant::now();
        let ip = |b: u8| IpAddr::from([127, 0, b, 1]);
        let mut recent = RecentlyOffered::new(Duration::from_secs(10), 3, 16);
        assert!(recent.should_offer(&id(1), ip(1), 1, t0));
        recent.mark(id(1), ip(1), 1, t0);
        assert!(!recent.should_offer(&id(1), ip(1), 1, t0 + Duration::from_secs(9)));
        // A newer record is offered at once.
        assert!(recent.should_offer(&id(1), ip(1), 2, t0 + Duration::from_secs(1)));
        assert!(recent.should_offer(&id(1), ip(1), 1, t0 + Duration::from_secs(10)));

        recent.mark(id(2), ip(2), 1, t0 + Duration::from_secs(1));
        recent.mark(id(3), ip(3), 1, t0 + Duration::from_secs(2));
        recent.mark(id(4), ip(4), 1, t0 + Duration::from_secs(3));
        assert_eq!(recent.len(), 3);
        // The oldest (id 1) was evicted.
        assert!(recent.should_offer(&id(1), ip(1), 1, t0 + Duration::from_secs(3)));
        assert!(!recent.should_offer(&id(4), ip(4), 1, t0 + Duration::from_secs(3)));
        // Expired entries go first.
        recent.mark(id(5), ip(5), 1, t0 + Duration::from_secs(12));
        assert!(recent.len() <= 3);
        assert!(!recent.should_offer(&id(5), ip(5), 1, t0 + Duration::from_secs(12)));
    }

    /// One address, many identities: at most `per_ip` of them are offered within the
    /// window; others from elsewhere still are, and the address gets room again later.
    #[test]
    fn one_address_offers_at_most_a_few_identities() {
        let t0 = Instant::now();
        let host = IpAddr::from([198, 51, 100, 7]);
        let mut recent = RecentlyOffered::new(Duration::from_secs(10), 4096, 2);
        let mut offered = 0;
        for i in 0..200u8 {
            if recent.should_offer(&id(i), host, 1, t0) {
                recent.mark(id(i), host, 1, t0);
                offered += 1;
            }
        }
        assert_eq!(offered, 2);
        assert!(recent.should_offer(&id(250), IpAddr::from([198, 51, 100, 8]), 1, t0));
        // An identity already offered from it may be offered again on a newer record.
        assert!(recent.should_offer(&id(0), host, 2, t0));
        assert!(recent.should_offer(&id(9), host, 1, t0 + Duration::from_secs(10)));
    }
}
