//! devp2p Node Discovery v4 (`discv4.md`, with EIP-868 ENR requests and EIP-8 forward
//! compatibility): a service on its own UDP socket that go-ethereum and other
//! Ethereum nodes can bond with, query and use as a bootnode, and that finds nodes
//! for us.
//!
//! # Layers
//! - [`packet`]: the six packets, their signed envelope, and the checks a datagram
//!   passes (size, hash, RLP, expiration, then signature recovery).
//! - [`table`]: the Kademlia table (256 buckets × 16, bounded replacements, subnet
//!   limits), the bounded endpoint-proof ([`table::Bonds`]) and per-IP rate-limit maps.
//! - the service ([`Discv4`]): one socket, three tasks — **receive** (answers Ping,
//!   FindNode and ENRRequest, matches replies to outstanding requests), **lookups**
//!   (bootnodes, a lookup for our own id, then a random one every
//!   [`lookup_interval`](V4Config::lookup_interval); α = 3 concurrent FindNodes) and
//!   **revalidation** (pings the stalest entry; one that does not answer is replaced).
//!
//! # Rules that bound what a peer can make us do (go-ethereum's, `v4_udp.go`)
//! - FindNode and ENRRequest are answered only for a node whose endpoint is proven: it
//!   answered our Ping within [`bond_lifetime`](V4Config::bond_lifetime). A Ping from
//!   an unproven node is answered and pinged back.
//! - Replies are accepted only when they answer a request of ours from the same node
//!   id and IP: Pong and ENRResponse by hash, Neighbors until 16 nodes have come for
//!   one FindNode. Everything else is dropped.
//! - Nodes named in Neighbors enter the table only after answering our Ping.
//! - Every map is bounded: table, replacements, per-subnet counts, bonds, outstanding
//!   requests, per-IP packet budgets, the discovered-node channel.
//!
//! # Example
//! ```no_run
//! use devmux_discovery::v4::{Discv4, V4Config};
//! use devmux_discovery::DiscoveryConfig;
//! use devmux_identity::NodeKey;
//!
//! # async fn run() -> Result<(), devmux_discovery::Error> {
//! let key = NodeKey::generate();
//! // The ENR served over discv4 is the one discv5 builds, with `udp` = the discv4 port.
//! let discv5_config = DiscoveryConfig::default().with_rlpx_tcp_port(Some(30303));
//! let config = V4Config::default()
//!     .with_listen("127.0.0.1:31303".parse().unwrap())
//!     .with_bootnodes(["enode://…@203.0.113.1:30303"]);
//! let mut v4 = Discv4::start(config, &key, |udp| {
//!     devmux_discovery::v4::enr_for(&discv5_config, &key, udp.port())
//! })
//! .await?;
//! println!("{}", v4.local_enode());
//! let mut found = v4.take_discovered().expect("taken once");
//! while let Some(node) = found.recv().await {
//!     println!("{} at {} (tcp {})", node.id, node.addr, node.tcp);
//! }
//! v4.shutdown().await;
//! # Ok(()) }
//! ```

pub mod packet;
mod service;
pub mod table;

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use devmux_identity::NodeKey;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use service::{Discv4, TableHandle};
pub use table::{NodeRecord, SubnetLimits};

use crate::{DiscoveryConfig, Enr, Error};

/// Default discv4 UDP port: the discovery port + 1000 (WIRE.md §5, `--discv4-port`).
pub const DEFAULT_DISCV4_PORT: u16 = crate::DEFAULT_DISCOVERY_PORT + 1000;
/// Concurrent FindNodes of a lookup (`discv4.md`, "Recursive Lookup": α = 3).
pub const ALPHA: usize = 3;

/// Configuration of the discv4 service. Start from [`Default`] and adjust with the
/// `with_*` methods.
#[derive(Clone)]
pub struct V4Config {
    /// UDP listen address. Port 0 lets the OS choose.
    pub listen: SocketAddr,
    /// Bootnodes as `enode://` URLs (`?discport=` honoured).
    pub bootnodes: Vec<String>,
    /// Time between random lookups (the first lookup, for our own id, starts at once).
    pub lookup_interval: Duration,
    /// Time between liveness pings (one table entry, the stalest, each time).
    pub revalidate_interval: Duration,
    /// How long a reply may take: go-ethereum's `respTimeout` (500 ms).
    pub reply_timeout: Duration,
    /// How long an endpoint proof lasts (`discv4.md`, "Endpoint Proof": 12 hours).
    pub bond_lifetime: Duration,
    /// Per-subnet limits of the table (`/24` for IPv4).
    pub subnet_limits: SubnetLimits,
    /// Replacements kept per full bucket (go-ethereum's `maxReplacements`, 10).
    pub max_replacements: usize,
    /// Endpoint-proof entries kept (node id × IP).
    pub max_bonds: usize,
    /// Outstanding requests (Pings, FindNodes, ENRRequests) awaiting replies. When
    /// full, new requests fail with [`Error::V4Busy`] instead of queueing.
    pub max_pending: usize,
    /// Background tasks (ping-backs, ENR requests) at once; beyond it they are skipped.
    pub max_background: usize,
    /// Packets handled per source IP per second; more are dropped before any crypto.
    pub packets_per_ip_per_sec: u32,
    /// Burst allowed above that rate.
    pub packet_burst_per_ip: u32,
    /// Source IPs whose budgets are tracked (LRU).
    pub max_tracked_ips: usize,
    /// Ask newly found nodes for their ENR (EIP-868) before reporting them.
    pub request_enr: bool,
    /// Capacity of the discovered-node channel; when full, reports are dropped.
    pub discovered_buffer: usize,
    /// A parent token: cancelling it stops the service's tasks.
    pub cancel: Option<CancellationToken>,
}

impl fmt::Debug for V4Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("V4Config")
            .field("listen", &self.listen)
            .field("bootnodes", &self.bootnodes.len())
            .field("lookup_interval", &self.lookup_interval)
            .field("revalidate_interval", &self.revalidate_interval)
            .field("reply_timeout", &self.reply_timeout)
            .field("bond_lifetime", &self.bond_lifetime)
            .field("subnet_limits", &self.subnet_limits)
            .field("max_pending", &self.max_pending)
            .field("packets_per_ip_per_sec", &self.packets_per_ip_per_sec)
            .finish_non_exhaustive()
    }
}

impl Default for V4Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::new(Ipv4Addr::LOCALHOST.into(), DEFAULT_DISCV4_PORT),
            bootnodes: Vec::new(),
            lookup_interval: Duration::from_secs(30),
            revalidate_interval: Duration::from_secs(10),
            reply_timeout: Duration::from_millis(500),
            bond_lifetime: Duration::from_secs(12 * 3600),
            subnet_limits: SubnetLimits::default(),
            max_replacements: 10,
            max_bonds: 8192,
            max_pending: 512,
            max_background: 64,
            // A bonded peer's lookup costs it a Ping and a FindNode per round; 20/s
            // with bursts of 60 leaves room for many nodes behind one NAT.
            packets_per_ip_per_sec: 20,
            packet_burst_per_ip: 60,
            max_tracked_ips: 4096,
            request_enr: true,
            discovered_buffer: 256,
            cancel: None,
        }
    }
}

impl V4Config {
    /// Sets the UDP listen address.
    pub fn with_listen(mut self, listen: SocketAddr) -> Self {
        self.listen = listen;
        self
    }

    /// Sets the bootnodes (`enode://` URLs).
    pub fn with_bootnodes(
        mut self,
        bootnodes: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        self.bootnodes = bootnodes.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the time between random lookups.
    pub fn with_lookup_interval(mut self, interval: Duration) -> Self {
        self.lookup_interval = interval;
        self
    }

    /// Sets the time between liveness pings.
    pub fn with_revalidate_interval(mut self, interval: Duration) -> Self {
        self.revalidate_interval = interval;
        self
    }

    /// Sets how long a reply may take.
    pub fn with_reply_timeout(mut self, timeout: Duration) -> Self {
        self.reply_timeout = timeout;
        self
    }

    /// Sets how long an endpoint proof lasts.
    pub fn with_bond_lifetime(mut self, lifetime: Duration) -> Self {
        self.bond_lifetime = lifetime;
        self
    }

    /// Sets the per-subnet table limits.
    pub fn with_subnet_limits(mut self, limits: SubnetLimits) -> Self {
        self.subnet_limits = limits;
        self
    }

    /// Sets the number of outstanding requests.
    pub fn with_max_pending(mut self, max: usize) -> Self {
        self.max_pending = max;
        self
    }

    /// Sets the per-source-IP packet budget (`rate` a second, bursts of `burst`).
    pub fn with_packet_rate(mut self, rate: u32, burst: u32) -> Self {
        self.packets_per_ip_per_sec = rate;
        self.packet_burst_per_ip = burst;
        self
    }

    /// Whether newly found nodes are asked for their ENR.
    pub fn with_request_enr(mut self, request: bool) -> Self {
        self.request_enr = request;
        self
    }

    /// Sets the capacity of the discovered-node channel.
    pub fn with_discovered_buffer(mut self, capacity: usize) -> Self {
        self.discovered_buffer = capacity;
        self
    }

    /// Sets a parent cancellation token.
    pub fn with_cancel(mut self, cancel: CancellationToken) -> Self {
        self.cancel = Some(cancel);
        self
    }
}

/// The ENR a node built with `config` serves over discv4: the record discv5 builds
/// (same key, `ip`, `tcp`, `mux`, `eth`), with `udp` set to the discv4 port.
pub fn enr_for(
    config: &DiscoveryConfig,
    key: &NodeKey,
    discv4_udp_port: u16,
) -> Result<Enr, Error> {
    let combined = enr::CombinedKey::secp256k1_from_bytes(&mut key.secret_bytes())
        .map_err(|_| Error::InvalidKey)?;
    crate::service::build_local_enr(config, &combined, discv4_udp_port, None)
}

/// A node that answered our Ping (its endpoint proven), as reported on
/// [`DiscoveredNodes`].
pub type DiscoveredNode = NodeRecord;

/// The bounded stream of discovered nodes, taken once with
/// [`Discv4::take_discovered`]. It ends when the service stops; it implements
/// [`futures::Stream`].
#[derive(Debug)]
pub struct DiscoveredNodes {
    rx: mpsc::Receiver<DiscoveredNode>,
}

impl DiscoveredNodes {
    /// The next node; `None` once the service has stopped.
    pub async fn recv(&mut self) -> Option<DiscoveredNode> {
        self.rx.recv().await
    }

    /// A node if one is waiting.
    pub fn try_recv(&mut self) -> Option<DiscoveredNode> {
        self.rx.try_recv().ok()
    }
}

impl futures::Stream for DiscoveredNodes {
    type Item = DiscoveredNode;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<DiscoveredNode>> {
        self.rx.poll_recv(cx)
    }
}

#[cfg(test)]
mod tests;
