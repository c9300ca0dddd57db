//! [`DiscoveryConfig`]: what the node tells discovery about itself.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::dns::DnsConfig;
use crate::v4::V4Config;
use crate::ForkId;

/// discv5's packet filter and routing-table IP limits (the `discv5` crate's
/// `enable_packet_filter`, `filter_*` and `ip_limit`), on by default: without them one
/// host can flood us with requests and fill our table with identities of its own. The
/// defaults suit a node on the internet; a test network of many nodes on one address
/// must raise `max_nodes_per_ip` (or give each node its own 127.0.N.1, as the tests do).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct V5Limits {
    /// Drop requests over the rates below and ban IPs that exceed
    /// `max_nodes_per_ip`.
    pub packet_filter: bool,
    /// Requests per second from everyone (bursts allowed).
    pub requests_per_sec: u32,
    /// Requests per second from one IP.
    pub requests_per_ip_per_sec: u32,
    /// Requests per second from one node id.
    pub requests_per_node_per_sec: u32,
    /// Node ids one IP may use before the IP is banned (discv5's default, 10).
    pub max_nodes_per_ip: usize,
    /// Nodes banned from one IP before the IP itself is (discv5's default, 5).
    pub max_bans_per_ip: usize,
    /// At most 2 nodes of one /24 per bucket and 10 in the table (discv5's `ip_limit`).
    pub ip_limit: bool,
}

impl Default for V5Limits {
    fn default() -> Self {
        Self {
            packet_filter: true,
            // discv5's own defaults are 10/9/8, made for a beacon node's few requests a
            // second; an execution-layer node serving as bootnode answers more.
            requests_per_sec: 100,
            requests_per_ip_per_sec: 20,
            requests_per_node_per_sec: 10,
            max_nodes_per_ip: 10,
            max_bans_per_ip: 5,
            ip_limit: true,
        }
    }
}

/// Default discovery UDP port (WIRE.md §5).
pub const DEFAULT_DISCOVERY_PORT: u16 = 30303;

/// Decides whether a remote `eth` entry is compatible with our chain (EIP-2124 rules);
/// the node wires the eth crate's fork filter into it.
pub type ForkFilterFn = Arc<dyn Fn(&ForkId) -> bool + Send + Sync>;

/// The two TCP stacks a node may run (WIRE.md §1, §2), as advertised in the ENR.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stack {
    /// The legacy RLPx server: ENR key `tcp` (`tcp6` for an IPv6 address, falling back to `tcp`).
    Rlpx,
    /// The multiplexed stream stack (TCP → Noise → Yamux): ENR key `mux`.
    Mux,
}

impl fmt::Display for Stack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stack::Rlpx => "rlpx",
            Stack::Mux => "mux",
        })
    }
}

/// Configuration of the discovery service. Start from [`Default`] and adjust with the
/// `with_*` methods.
///
/// Which stacks the node runs is read from the ports: `rlpx_tcp_port` set means the
/// RLPx server runs (ENR `tcp`), `mux_tcp_port` set means the stream server runs (ENR
/// `mux`). Dial candidates are only peers advertising a stack we run; with neither set
/// discovery still serves the table (a pure bootnode) but offers no candidates.
#[derive(Clone)]
pub struct DiscoveryConfig {
    /// UDP listen address. Port 0 lets the OS choose; the ENR gets the bound port.
    pub listen: SocketAddr,
    /// A second, IPv6 UDP socket for dual-stack discovery (only when `listen` is IPv4).
    pub listen_v6: Option<SocketAddr>,
    /// The IP placed in the ENR (`ip` or `ip6`, by family), set explicitly: discv5 would
    /// otherwise wait for several peers to vote on it. Must be of `listen`'s family.
    pub enr_ip: IpAddr,
    /// The `ip6` of a dual-stack node (with `listen_v6`).
    pub enr_ip6: Option<Ipv6Addr>,
    /// RLPx TCP port (ENR `tcp`): set only when the RLPx server runs.
    pub rlpx_tcp_port: Option<u16>,
    /// Stream-stack TCP port (ENR `mux`): set only when the stream server runs.
    pub mux_tcp_port: Option<u16>,
    /// Our fork id (ENR `eth`, always present).
    pub eth: ForkId,
    /// Whether a remote `eth` entry is compatible. `None`: the same fork hash as ours.
    pub fork_filter: Option<ForkFilterFn>,
    /// Bootnodes as ENR text (`enr:…`).
    pub bootnodes: Vec<String>,
    /// Time between random lookups (the first lookup, for our own id, starts at once).
    pub lookup_interval: Duration,
    /// File for seen ENRs, so a restarted node rejoins without bootnodes. `None`: no persistence.
    pub persist_path: Option<PathBuf>,
    /// Time between writes of the ENR file (it is also written on shutdown).
    pub persist_interval: Duration,
    /// At most this many ENRs are written.
    pub persist_max: usize,
    /// The stack a candidate is offered on when we and the peer both run both.
    pub preferred_stack: Stack,
    /// Capacity of the dial-candidate channel. When it is full, candidates are dropped
    /// (not marked as offered) and offered again later.
    pub candidate_buffer: usize,
    /// A peer offered as a candidate is not offered again for this long, unless its ENR
    /// changes (higher `seq`).
    pub reoffer_after: Duration,
    /// Capacity of the recently-offered set.
    pub recent_capacity: usize,
    /// Dial records whose address is more local than our own `enr_ip` (loopback,
    /// link-local or private targets for a public node). Off by default: any node can
    /// sign a record, and one pointing at hosts only we can reach must not steer our
    /// dials there. A node on loopback (a test network) dials anything regardless.
    pub dial_local_targets: bool,
    /// Different records from one IP address offered as candidates within
    /// `reoffer_after`: anyone can make thousands of identities on one host, and they
    /// must not fill the dialer. Default 4, the node's established peers per IP.
    pub max_candidates_per_ip: usize,
    /// Run discv5 (default true). Off: discv4 alone (then [`DiscoveryConfig::v4`] is
    /// required), the ENR served being discv4's.
    pub v5: bool,
    /// discv5's packet filter and IP limits.
    pub v5_limits: V5Limits,
    /// Run discv4 too, on its own socket (`None`: no discv4). Its nodes whose ENR it
    /// fetched become candidates through the same filter as discv5's.
    pub v4: Option<V4Config>,
    /// DNS node lists (EIP-1459) to seed from (`None` or no URLs: none). Their records
    /// seed discv5's table and become candidates through the same filter.
    pub dns: Option<DnsConfig>,
    /// A parent token: cancelling it stops discovery's tasks (call
    /// [`Discovery::shutdown`](crate::Discovery::shutdown) to also write the ENR file).
    pub cancel: Option<CancellationToken>,
}

impl fmt::Debug for DiscoveryConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DiscoveryConfig")
            .field("listen", &self.listen)
            .field("listen_v6", &self.listen_v6)
            .field("enr_ip", &self.enr_ip)
            .field("enr_ip6", &self.enr_ip6)
            .field("rlpx_tcp_port", &self.rlpx_tcp_port)
            .field("mux_tcp_port", &self.mux_tcp_port)
            .field("eth", &self.eth)
            .field(
                "fork_filter",
                &self.fork_filter.as_ref().map(|_| "<closure>"),
            )
            .field("bootnodes", &self.bootnodes.len())
            .field("lookup_interval", &self.lookup_interval)
            .field("persist_path", &self.persist_path)
            .field("persist_interval", &self.persist_interval)
            .field("persist_max", &self.persist_max)
            .field("preferred_stack", &self.preferred_stack)
            .field("candidate_buffer", &self.candidate_buffer)
            .field("reoffer_after", &self.reoffer_after)
            .field("recent_capacity", &self.recent_capacity)
            .field("dial_local_targets", &self.dial_local_targets)
            .field("max_candidates_per_ip", &self.max_candidates_per_ip)
            .field("v5", &self.v5)
            .field("v5_limits", &self.v5_limits)
            .field("v4", &self.v4.as_ref().map(|v| v.listen))
            .field("dns", &self.dns.as_ref().map(|d| d.urls.len()))
            .finish_non_exhaustive()
    }
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::new(Ipv4Addr::LOCALHOST.into(), DEFAULT_DISCOVERY_PORT),
            listen_v6: None,
            enr_ip: Ipv4Addr::LOCALHOST.into(),
            enr_ip6: None,
            rlpx_tcp_port: None,
            mux_tcp_port: None,
            eth: ForkId {
                hash: crate::ForkHash([0; 4]),
                next: 0,
            },
            fork_filter: None,
            bootnodes: Vec::new(),
            lookup_interval: Duration::from_secs(30),
            persist_path: None,
            persist_interval: Duration::from_secs(300),
            persist_max: 512,
            preferred_stack: Stack::Mux,
            candidate_buffer: 64,
            reoffer_after: Duration::from_secs(120),
            recent_capacity: 4096,
            dial_local_targets: false,
            max_candidates_per_ip: 4,
            v5: true,
            v5_limits: V5Limits::default(),
            v4: None,
            dns: None,
            cancel: None,
        }
    }
}

impl DiscoveryConfig {
    /// Sets the UDP listen address and, when it is a specified IP, the ENR IP to match.
    pub fn with_listen(mut self, listen: SocketAddr) -> Self {
        self.listen = listen;
        if !listen.ip().is_unspecified() {
            self.enr_ip = listen.ip();
        }
        self
    }

    /// Adds an IPv6 socket (dual stack) and the `ip6` to advertise.
    pub fn with_listen_v6(mut self, listen: SocketAddr, enr_ip6: Ipv6Addr) -> Self {
        self.listen_v6 = Some(listen);
        self.enr_ip6 = Some(enr_ip6);
        self
    }

    /// Sets the IP advertised in the ENR (the external or configured listen address).
    pub fn with_enr_ip(mut self, ip: IpAddr) -> Self {
        self.enr_ip = ip;
        self
    }

    /// Advertises the RLPx server's TCP port (`tcp`); `None` when RLPx does not run.
    pub fn with_rlpx_tcp_port(mut self, port: Option<u16>) -> Self {
        self.rlpx_tcp_port = port;
        self
    }

    /// Advertises the stream server's TCP port (`mux`); `None` when it does not run.
    pub fn with_mux_tcp_port(mut self, port: Option<u16>) -> Self {
        self.mux_tcp_port = port;
        self
    }

    /// Sets our fork id (ENR `eth`).
    pub fn with_eth(mut self, eth: ForkId) -> Self {
        self.eth = eth;
        self
    }

    /// Sets the fork compatibility check applied to candidates' `eth` entries.
    pub fn with_fork_filter(
        mut self,
        filter: impl Fn(&ForkId) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.fork_filter = Some(Arc::new(filter));
        self
    }

    /// Sets the bootnodes (ENR text).
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

    /// Persists seen ENRs to `path` (a text file of `enr:` lines, replaced atomically).
    pub fn with_persist_path(mut self, path: Option<PathBuf>) -> Self {
        self.persist_path = path;
        self
    }

    /// Sets the time between writes of the ENR file.
    pub fn with_persist_interval(mut self, interval: Duration) -> Self {
        self.persist_interval = interval;
        self
    }

    /// Sets the stack preferred when both sides run both.
    pub fn with_preferred_stack(mut self, stack: Stack) -> Self {
        self.preferred_stack = stack;
        self
    }

    /// Sets the dial-candidate channel's capacity.
    pub fn with_candidate_buffer(mut self, capacity: usize) -> Self {
        self.candidate_buffer = capacity;
        self
    }

    /// Sets [`DiscoveryConfig::max_candidates_per_ip`].
    pub fn with_max_candidates_per_ip(mut self, max: usize) -> Self {
        self.max_candidates_per_ip = max;
        self
    }

    /// Sets how long an offered candidate is held back before it is offered again.
    pub fn with_reoffer_after(mut self, after: Duration) -> Self {
        self.reoffer_after = after;
        self
    }

    /// Runs discv5 or not ([`DiscoveryConfig::v5`]).
    pub fn with_v5(mut self, run: bool) -> Self {
        self.v5 = run;
        self
    }

    /// Sets discv5's packet filter and IP limits.
    pub fn with_v5_limits(mut self, limits: V5Limits) -> Self {
        self.v5_limits = limits;
        self
    }

    /// Runs discv4 with `config` (`None`: no discv4).
    pub fn with_v4(mut self, config: Option<V4Config>) -> Self {
        self.v4 = config;
        self
    }

    /// Seeds from DNS node lists with `config` (`None`: none).
    pub fn with_dns(mut self, config: Option<DnsConfig>) -> Self {
        self.dns = config;
        self
    }

    /// Stops discovery's tasks when `token` is cancelled.
    pub fn with_cancel(mut self, token: CancellationToken) -> Self {
        self.cancel = Some(token);
        self
    }

    /// The stacks this node runs, from the configured ports.
    pub fn stacks(&self) -> Vec<Stack> {
        let mut stacks = Vec::new();
        if self.mux_tcp_port.is_some() {
            stacks.push(Stack::Mux);
        }
        if self.rlpx_tcp_port.is_some() {
            stacks.push(Stack::Rlpx);
        }
        stacks
    }
}
