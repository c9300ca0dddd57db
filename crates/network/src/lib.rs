//! devmux's network: protocol handlers registered by id, served over either the
//! libp2p-compatible stream stack or the legacy RLPx server.
//!
//! - [`Registrar`] maps protocol ids ([`ProtocolId`], e.g. `/eth/68/1.0.0`) to
//!   async handlers. A handler sees a [`MessageStream`] of [`Message`]s (code and
//!   payload) and a [`PeerCtx`]; it never learns which server carries it. The stream
//!   keeps one contract on both: a cancel-safe [`MessageStream::next`], the size cap
//!   and the session protocol's message count in both directions, and framing faults
//!   ([`Error::is_framing_fault`]) penalised by the server itself.
//! - [`Network`] runs one server, chosen by [`NetworkConfig::use_p2p_server`], or
//!   both ([`NetworkConfig::servers`]): the stream stack (TCP → Noise → Yamux, each
//!   stream negotiated with multistream-select; built-in libp2p ping and identify,
//!   and devmux goodbye) and RLPx (a session protocol `/<name>/<version>/1.0.0` is
//!   the capability `<name>/<version>`). Each is a carrier under one supervisor,
//!   which owns what is the same for every peer: one peer table across carriers
//!   (one connection per peer), the [`PeerPoolConfig`] limits counted once, bans
//!   by key and IP on both, penalties, events, and every task under one
//!   cancellation token.
//! - [`NetworkEvent`]s report peers connecting and leaving (with reasons), streams
//!   opening, and penalties.
//! - Feature `sim` (off by default): `Network::start_simulated` runs the stream stack
//!   on turmoil's simulated network, the same supervisor, admission, upgrade, pool and
//!   dialer over `turmoil::net` sockets, for the deterministic simulation in
//!   `tests/sim`. Every timer and deadline of this crate reads tokio's clock, which a
//!   simulation drives, and the dialer's backoff jitter is seeded by the two peers'
//!   ids, so a simulation with seeded keys replays.
//!
//! ```no_run
//! use devmux_identity::NodeKey;
//! use devmux_network::{Network, NetworkConfig, Registrar, PeerCtx, MessageStream, ServerKind};
//! # async fn run() -> Result<(), devmux_network::Error> {
//! let mut registrar = Registrar::new();
//! registrar.request("/demo/echo/1.0.0", |_peer: PeerCtx, mut stream: MessageStream| async move {
//!     while let Some(msg) = stream.next().await {
//!         stream.send(msg?).await?;
//!     }
//!     Ok::<_, devmux_network::Error>(())
//! })?;
//! let config = NetworkConfig { use_p2p_server: true, ..NetworkConfig::default() };
//! let network = Network::start(config, NodeKey::generate(), registrar).await?;
//! println!("{}", network.local_addr());
//!
//! // A dual node: RLPx on 30304, the stream stack on 31304; it prints both addresses.
//! let dual = NetworkConfig::default()
//!     .with_servers(&[ServerKind::Rlpx, ServerKind::P2p])
//!     .with_listen_addr("127.0.0.1:30304".parse().unwrap());
//! let bridge = Network::start(dual, NodeKey::generate(), Registrar::new()).await?;
//! for addr in bridge.local_addrs() {
//!     println!("{addr}"); // enode://…@127.0.0.1:30304, then /ip4/127.0.0.1/tcp/31304/p2p/…
//! }
//! # Ok(()) }
//! ```

mod admission;
mod builtin;
mod carrier;
mod counters;
pub mod dialer;
mod message;
mod net;
mod p2p;
mod peers;
mod pool;
mod protocol;
mod registrar;
mod rlpx;
mod supervisor;

use std::net::SocketAddr;
use std::time::Duration;

pub use admission::AdmissionConfig;
pub use builtin::{IdentifyInfo, GOODBYE_PROTOCOL, IDENTIFY_PROTOCOL, PING_PROTOCOL};
pub use counters::{
    CountersSnapshot, DialCount, HandshakeFailureCount, MessageCount, ProtocolBytes,
};
pub use devmux_identity::{Enode, Multiaddr, NodeKey, PeerId};
pub use devmux_rlpx::DisconnectReason;
pub use devmux_transport::{Direction, IoStatsSnapshot, HANDSHAKE_BUCKETS};
pub use dialer::DialTarget;
pub use message::{
    decode_frame, encode_frame, Message, MessageReader, MessageStream, MessageWriter,
    DEFAULT_MAX_MESSAGE_SIZE,
};
pub use pool::{stored_bans, PeerPoolConfig, StoredBans, REPUTATION_FLOOR};
pub use protocol::{ProtocolId, MAX_PROTOCOL_ID_LEN};
pub use registrar::{
    BoxError, Handler, PeerCtx, Penalty, ProtocolKind, Registrar, SessionProtocol,
};
use tokio::sync::broadcast;

/// Errors of the network crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A socket operation failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The transport failed (handshake, wrong PeerId, yamux).
    #[error(transparent)]
    Transport(#[from] devmux_transport::Error),
    /// An address or key could not be used.
    #[error(transparent)]
    Identity(#[from] devmux_identity::Error),
    /// A protocol id is not valid.
    #[error("invalid protocol id {id:?}: {why}")]
    InvalidProtocolId {
        /// The id given.
        id: String,
        /// What is wrong with it.
        why: String,
    },
    /// The server cannot serve a registered protocol: on RLPx, a session id without the
    /// capability form `/<name>/<version>/1.0.0`, or any request protocol (RLPx has no
    /// per-request streams). `Network::start` refuses rather than leave it out of Hello.
    #[error("protocol {id} cannot be served on {server}: {why}")]
    Unservable {
        /// The protocol.
        id: ProtocolId,
        /// The server that cannot serve it.
        server: ServerKind,
        /// Why not.
        why: &'static str,
    },
    /// An id was registered twice, or is a built-in one.
    #[error("protocol {0} is already registered")]
    DuplicateProtocol(ProtocolId),
    /// A session registration named no ids.
    #[error("a session protocol needs at least one id")]
    NoProtocols,
    /// No such protocol is registered.
    #[error("protocol {0} is not registered")]
    UnknownProtocol(String),
    /// A message's declared size exceeds the protocol's cap. The stream gives nothing
    /// more and the peer is penalised ([`Error::is_framing_fault`]).
    #[error("message of {size} bytes exceeds the cap of {max}")]
    MessageTooLarge {
        /// The declared size.
        size: u64,
        /// The cap.
        max: usize,
    },
    /// A message frame is malformed (the peer broke the framing).
    #[error("malformed message: {0}")]
    MalformedFrame(String),
    /// A code outside the protocol's message-id space (its declared message count), in
    /// either direction.
    #[error("message code {code} is outside the protocol's {count} codes")]
    CodeOutOfRange {
        /// The code.
        code: u8,
        /// The protocol's message count.
        count: u8,
    },
    /// The stream is closed.
    #[error("stream closed")]
    StreamClosed,
    /// Protocol negotiation failed: the peer supports none of the ids offered, or
    /// broke multistream-select.
    #[error("protocol negotiation failed: {0}")]
    Negotiation(#[source] multistream_select::NegotiationError),
    /// A wait on the peer passed its deadline.
    #[error("{0} timed out")]
    Timeout(&'static str),
    /// No connection to that peer.
    #[error("not connected to {0}")]
    NotConnected(PeerId),
    /// A ping came back different.
    #[error("ping answer does not match")]
    PingMismatch,
    /// The operation needs the other carrier (e.g. libp2p ping to a peer on RLPx).
    #[error("{0} is not available")]
    Unsupported(&'static str),
    /// The address is for a carrier this node does not run (an `enode://` URL on a
    /// stream-stack-only node, a multiaddr on an RLPx-only one).
    #[error("this node runs no {0} server")]
    NotServing(ServerKind),
    /// The RLPx transport failed (handshake, frame, Hello).
    #[error("rlpx: {0}")]
    Rlpx(#[from] devmux_rlpx::Error),
    /// The connection was refused with a reason (sent to the peer too).
    #[error("connection refused: {0}")]
    Refused(DisconnectReason),
    /// The peer store could not be opened or written.
    #[error("peer store: {0}")]
    Store(#[source] redb::Error),
    /// The network is shutting down.
    #[error("the network is shutting down")]
    ShuttingDown,
}

impl Error {
    /// A short label for what went wrong, for metrics (`devmux_dials_total{outcome}`,
    /// `devmux_handshake_failures_total{reason}`): `timeout`, `io`, `noise`, `ecies`,
    /// `negotiation`, `wrong_peer`, `yamux`, `no_shared_capability`, `disconnected`,
    /// `refused`, `self`, `rlpx` (another RLPx fault) or `other`.
    pub fn kind(&self) -> &'static str {
        use devmux_rlpx::Error as R;
        use devmux_transport::Error as T;
        match self {
            Self::Timeout(_) | Self::Transport(T::Timeout(_)) | Self::Rlpx(R::Timeout(_)) => {
                "timeout"
            }
            Self::Io(_)
            | Self::Transport(T::Io(_) | T::ConnectionClosed)
            | Self::Rlpx(R::Io(_) | R::ConnectionClosed) => "io",
            Self::Transport(T::Noise(_)) => "noise",
            Self::Negotiation(_)
            | Self::Transport(
                T::Negotiation(_) | T::TooManyProposals { .. } | T::RejectionBudgetSpent { .. },
            ) => "negotiation",
            Self::Transport(T::PeerIdMismatch { .. }) | Self::Rlpx(R::HelloIdMismatch) => {
                "wrong_peer"
            }
            Self::Transport(T::Yamux(_)) => "yamux",
            Self::Transport(T::SelfDial)
            | Self::Rlpx(R::ConnectedToSelf)
            | Self::Refused(DisconnectReason::ConnectedToSelf) => "self",
            Self::Rlpx(
                R::EciesDecrypt
                | R::InvalidHandshake(_)
                | R::HandshakeTooLarge { .. }
                | R::InvalidNodeId,
            ) => "ecies",
            Self::Rlpx(R::NoSharedCapabilities) => "no_shared_capability",
            Self::Rlpx(R::Disconnected(_)) => "disconnected",
            Self::Refused(_) | Self::Rlpx(R::Refused(_)) | Self::Transport(T::Refused(_)) => {
                "refused"
            }
            Self::Rlpx(_) => "rlpx",
            _ => "other",
        }
    }

    /// Whether a failed inbound handshake was the peer's fault (bytes that are no
    /// handshake, a bad key or signature, a broken negotiation), not a timeout, a
    /// closed socket or our refusal: such failures count against the address.
    pub fn is_handshake_fault(&self) -> bool {
        use devmux_transport::Error as T;
        match self {
            Self::Rlpx(e) => e.is_peer_fault(),
            Self::Transport(
                T::Noise(_)
                | T::Negotiation(_)
                | T::TooManyProposals { .. }
                | T::RejectionBudgetSpent { .. },
            )
            | Self::Negotiation(_) => true,
            _ => false,
        }
    }

    /// Whether the peer broke the message framing: a size over the cap, a malformed
    /// frame, or a code outside the protocol's message count. The server penalises
    /// these itself (a major penalty), on either carrier; a handler only ends its
    /// session.
    pub fn is_framing_fault(&self) -> bool {
        matches!(
            self,
            Self::MessageTooLarge { .. } | Self::MalformedFrame(_) | Self::CodeOutOfRange { .. }
        )
    }
}

/// Which server carries a connection: `p2p` or `rlpx` in text, TOML and JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServerKind {
    /// The multiplexed stream stack (TCP → Noise → Yamux).
    P2p,
    /// The legacy RLPx server.
    Rlpx,
}

impl std::str::FromStr for ServerKind {
    type Err = String;

    /// `rlpx` or `p2p`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "rlpx" => Ok(ServerKind::Rlpx),
            "p2p" => Ok(ServerKind::P2p),
            other => Err(format!("unknown server {other:?}: expected rlpx or p2p")),
        }
    }
}

impl std::fmt::Display for ServerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ServerKind::P2p => "p2p",
            ServerKind::Rlpx => "rlpx",
        })
    }
}

/// What happened on the network.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum NetworkEvent {
    /// A peer's connection is established (once per peer, however many sockets
    /// raced to it).
    PeerConnected {
        /// The peer.
        peer: PeerId,
        /// Its address.
        addr: SocketAddr,
        /// Who dialed.
        direction: Direction,
        /// Which server.
        server: ServerKind,
    },
    /// A peer's connection ended.
    PeerDisconnected {
        /// The peer.
        peer: PeerId,
        /// The reason given, if any.
        reason: Option<DisconnectReason>,
        /// Whether the peer gave the reason (true) or we did (false).
        by_remote: bool,
    },
    /// A protocol stream (or RLPx capability) is open and its handler running.
    StreamOpened {
        /// The peer.
        peer: PeerId,
        /// The negotiated protocol.
        protocol: ProtocolId,
        /// Who opened it.
        direction: Direction,
    },
    /// A handler penalised a peer.
    PeerPenalized {
        /// The peer.
        peer: PeerId,
        /// How badly.
        penalty: Penalty,
        /// Why.
        reason: String,
    },
}

/// A connected peer.
#[derive(Clone, Debug)]
pub struct PeerInfo {
    /// Its id.
    pub peer_id: PeerId,
    /// Its address.
    pub remote_addr: SocketAddr,
    /// Who dialed.
    pub direction: Direction,
    /// Which server.
    pub server: ServerKind,
    /// Protocols negotiated so far.
    pub protocols: Vec<ProtocolId>,
    /// Its reputation (0 at connect; penalties lower it).
    pub reputation: i32,
    /// The round trip of its last answered keepalive ping.
    pub ping_rtt: Option<Duration>,
    /// Keepalive pings it missed in a row (at `max_missed_pings` it is dropped).
    pub missed_pings: u32,
}

/// Network settings.
#[derive(Clone, Debug)]
pub struct NetworkConfig {
    /// With `servers` empty, the one server to run: `true`, the multiplexed stream
    /// stack; `false` (default), RLPx.
    pub use_p2p_server: bool,
    /// The servers to run; empty (default): the one `use_p2p_server` picks. With both,
    /// RLPx listens on `listen_addr` and the stream stack on `p2p_listen_addr`.
    pub servers: Vec<ServerKind>,
    /// Where to listen (port 0 picks a free port): the one server's address, or
    /// RLPx's when both run.
    pub listen_addr: SocketAddr,
    /// Where the stream stack listens when both servers run; `None`: `listen_addr`'s
    /// IP with its port + 1000 (WIRE.md §5), or a free port if that port is 0.
    pub p2p_listen_addr: Option<SocketAddr>,
    /// Transport settings (handshake deadlines, stream and window limits).
    pub transport: devmux_transport::Config,
    /// Deadline for negotiating a stream's protocol.
    pub negotiation_timeout: Duration,
    /// Stream-stack keepalive: a libp2p ping this often, on one ping stream kept
    /// open; a ping unanswered within `request_timeout` is missed (see
    /// `max_missed_pings`). Every connection's keepalive ticks on the node's
    /// 250 ms grid ([`devmux_transport::TimerGrid`]), so a tick may come up to
    /// 250 ms late, and a period that is a multiple of 250 ms stays exact.
    pub ping_interval: Duration,
    /// A stream-stack connection with no open stream for this long is closed
    /// (checked every quarter of it, on the same grid).
    pub idle_timeout: Duration,
    /// Deadline for built-in requests (ping, identify).
    pub request_timeout: Duration,
    /// identify's `agentVersion` and RLPx Hello's client id.
    pub agent_version: String,
    /// RLPx keepalive: a Ping this often (on the same grid); a period that ends
    /// without the Pong of the previous one counts as a missed ping.
    pub rlpx_ping_interval: Duration,
    /// Keepalive pings a peer may miss in a row, on either carrier, before it is
    /// disconnected with `PingTimeout` (one lost ping is forgiven).
    pub max_missed_pings: u32,
    /// Peer limits, reputation, bans and trusted peers.
    pub pool: PeerPoolConfig,
    /// Budgets for inbound handshakes under way, and the first-byte deadline.
    pub admission: AdmissionConfig,
    /// Events buffered per subscriber; a subscriber that falls further behind
    /// misses events (and is told how many).
    pub event_capacity: usize,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        Self {
            use_p2p_server: false,
            servers: Vec::new(),
            listen_addr: SocketAddr::from(([127, 0, 0, 1], 30303)),
            p2p_listen_addr: None,
            transport: devmux_transport::Config::default(),
            negotiation_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
            ping_interval: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(30),
            agent_version: concat!("devmux/", env!("CARGO_PKG_VERSION")).to_string(),
            rlpx_ping_interval: Duration::from_secs(15),
            max_missed_pings: 3,
            pool: PeerPoolConfig::default(),
            admission: AdmissionConfig::default(),
            event_capacity: 1024,
        }
    }
}

impl NetworkConfig {
    /// Selects the stream stack (`true`) or RLPx (`false`).
    pub fn with_p2p_server(mut self, use_p2p_server: bool) -> Self {
        self.use_p2p_server = use_p2p_server;
        self
    }

    /// Sets the listen address.
    pub fn with_listen_addr(mut self, addr: SocketAddr) -> Self {
        self.listen_addr = addr;
        self
    }

    /// Runs these servers (both: a dual node).
    pub fn with_servers(mut self, servers: &[ServerKind]) -> Self {
        self.servers = servers.to_vec();
        self
    }

    /// Where the stream stack listens when both servers run.
    pub fn with_p2p_listen_addr(mut self, addr: SocketAddr) -> Self {
        self.p2p_listen_addr = Some(addr);
        self
    }

    /// Whether `kind` runs.
    pub fn runs(&self, kind: ServerKind) -> bool {
        if self.servers.is_empty() {
            (kind == ServerKind::P2p) == self.use_p2p_server
        } else {
            self.servers.contains(&kind)
        }
    }

    /// Where `kind` listens, if it runs.
    pub fn listen_addr_of(&self, kind: ServerKind) -> Option<SocketAddr> {
        if !self.runs(kind) {
            return None;
        }
        if kind == ServerKind::Rlpx || !self.runs(ServerKind::Rlpx) {
            return Some(self.listen_addr);
        }
        Some(self.p2p_listen_addr.unwrap_or_else(|| {
            let mut addr = self.listen_addr;
            if addr.port() != 0 {
                addr.set_port(addr.port().saturating_add(P2P_PORT_OFFSET));
            }
            addr
        }))
    }
}

/// How far above RLPx's port the stream stack listens on a node that runs both,
/// unless told otherwise (WIRE.md §5).
pub const P2P_PORT_OFFSET: u16 = 1000;

/// A running network: its carriers (one server or both), its peers, and the
/// registrar's handlers. Cheap to clone.
#[derive(Clone)]
pub struct Network {
    sup: std::sync::Arc<supervisor::Supervisor>,
    p2p: Option<std::sync::Arc<p2p::P2pCarrier>>,
    rlpx: Option<std::sync::Arc<rlpx::RlpxCarrier>>,
}

impl std::fmt::Debug for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Network")
            .field("peer_id", &self.local_peer_id())
            .field("addrs", &self.local_addrs())
            .finish()
    }
}

/// A parsed address: which carrier dials it.
enum DialAddr {
    Enode(devmux_identity::Enode),
    Multiaddr(Multiaddr),
}

impl DialAddr {
    fn parse(addr: &str) -> Result<Self, Error> {
        if addr.starts_with("enode://") {
            return Ok(Self::Enode(addr.parse()?));
        }
        addr.parse().map(Self::Multiaddr).map_err(|e| {
            Error::Identity(devmux_identity::Error::InvalidMultiaddr {
                addr: addr.to_string(),
                problem: format!("{e}"),
            })
        })
    }

    fn kind(&self) -> ServerKind {
        match self {
            Self::Enode(_) => ServerKind::Rlpx,
            Self::Multiaddr(_) => ServerKind::P2p,
        }
    }

    /// The peer the address names, if it names one.
    fn peer(&self) -> Result<Option<PeerId>, Error> {
        match self {
            Self::Enode(enode) => Ok(Some(enode.id.to_peer_id()?)),
            Self::Multiaddr(ma) => Ok(devmux_identity::parse_peer_multiaddr(ma)?.1),
        }
    }
}

impl Network {
    /// Starts the servers `config` selects ([`NetworkConfig::runs`]), serving
    /// `registrar` on each. Fails with [`Error::Unservable`] if a carrier that runs
    /// cannot serve a registered protocol.
    pub async fn start(
        config: NetworkConfig,
        key: NodeKey,
        registrar: Registrar,
    ) -> Result<Self, Error> {
        Self::start_on(config, key, registrar, net::Net::Tcp).await
    }

    /// Starts the stream stack on turmoil's simulated network (feature `sim`): the
    /// same supervisor, admission, upgrade, pool and dialer as [`Network::start`], over
    /// `turmoil::net` sockets. Call it inside a turmoil host; `config.listen_addr`
    /// should be the host's address. RLPx does not run there: a config that runs it
    /// fails with [`Error::Unsupported`].
    #[cfg(feature = "sim")]
    pub async fn start_simulated(
        config: NetworkConfig,
        key: NodeKey,
        registrar: Registrar,
    ) -> Result<Self, Error> {
        if config.runs(ServerKind::Rlpx) {
            return Err(Error::Unsupported("RLPx on the simulated network"));
        }
        Self::start_on(config, key, registrar, net::Net::Sim).await
    }

    async fn start_on(
        config: NetworkConfig,
        key: NodeKey,
        registrar: Registrar,
        net: net::Net,
    ) -> Result<Self, Error> {
        let rlpx_addr = config.listen_addr_of(ServerKind::Rlpx);
        // `runs` picks at least one: an empty `servers` means `use_p2p_server`'s one.
        let p2p_addr = config.listen_addr_of(ServerKind::P2p);
        if rlpx_addr.is_some() {
            rlpx::check_servable(&registrar, p2p_addr.is_none())?;
        }
        let pool = std::sync::Arc::new(pool::PeerPool::open(config.pool.clone())?);
        let sup = supervisor::Supervisor::new(key, config, registrar, pool);
        let started = async {
            let rlpx = match rlpx_addr {
                Some(addr) => Some(rlpx::RlpxCarrier::start(sup.clone(), addr).await?),
                None => None,
            };
            let p2p = match p2p_addr {
                Some(addr) => Some(p2p::P2pCarrier::start(sup.clone(), addr, net).await?),
                None => None,
            };
            Ok::<_, Error>((rlpx, p2p))
        };
        match started.await {
            Ok((rlpx, p2p)) => Ok(Self { sup, p2p, rlpx }),
            Err(e) => {
                // One carrier may be up already: stop it.
                sup.shutdown().await;
                Err(e)
            }
        }
    }

    /// The preferred server: the stream stack when it runs, else RLPx.
    pub fn server_kind(&self) -> ServerKind {
        if self.p2p.is_some() {
            ServerKind::P2p
        } else {
            ServerKind::Rlpx
        }
    }

    /// The servers that run: RLPx first, then the stream stack.
    pub fn servers(&self) -> Vec<ServerKind> {
        let mut servers = Vec::new();
        if self.rlpx.is_some() {
            servers.push(ServerKind::Rlpx);
        }
        if self.p2p.is_some() {
            servers.push(ServerKind::P2p);
        }
        servers
    }

    /// Whether `kind` runs.
    pub fn runs(&self, kind: ServerKind) -> bool {
        match kind {
            ServerKind::P2p => self.p2p.is_some(),
            ServerKind::Rlpx => self.rlpx.is_some(),
        }
    }

    /// This node's PeerId (on RLPx too: both stacks name a peer by its key).
    pub fn local_peer_id(&self) -> PeerId {
        self.sup.key.peer_id()
    }

    /// The bound address of [`NetworkConfig::listen_addr`]: the one server's, or
    /// RLPx's when both run.
    pub fn listen_addr(&self) -> SocketAddr {
        match (&self.rlpx, &self.p2p) {
            (Some(r), _) => carrier::Carrier::listen_addr(&**r),
            (None, Some(p)) => carrier::Carrier::listen_addr(&**p),
            (None, None) => self.sup.config.listen_addr,
        }
    }

    /// The bound address of `kind`, if it runs.
    pub fn listen_addr_of(&self, kind: ServerKind) -> Option<SocketAddr> {
        match kind {
            ServerKind::P2p => self.p2p.as_deref().map(carrier::Carrier::listen_addr),
            ServerKind::Rlpx => self.rlpx.as_deref().map(carrier::Carrier::listen_addr),
        }
    }

    /// The address others dial over the preferred server: the full multiaddr
    /// (stream stack) or the `enode://` URL (RLPx). [`Network::local_addrs`] has both.
    pub fn local_addr(&self) -> String {
        match (self.local_multiaddr(), self.local_enode()) {
            (Some(ma), _) => ma.to_string(),
            (None, Some(enode)) => enode.to_string(),
            (None, None) => String::new(),
        }
    }

    /// Every address others dial: the `enode://` URL if RLPx runs, then the multiaddr
    /// if the stream stack does.
    pub fn local_addrs(&self) -> Vec<String> {
        let enode = self.local_enode().map(|e| e.to_string());
        let ma = self.local_multiaddr().map(|m| m.to_string());
        enode.into_iter().chain(ma).collect()
    }

    /// This node's `enode://` URL, if RLPx runs.
    pub fn local_enode(&self) -> Option<devmux_identity::Enode> {
        self.rlpx.as_ref().map(|r| r.local_enode())
    }

    /// This node's full multiaddr, if the stream stack runs.
    pub fn local_multiaddr(&self) -> Option<Multiaddr> {
        self.p2p.as_ref().map(|p| p.local_multiaddr())
    }

    /// Subscribes to events from now on.
    pub fn events(&self) -> broadcast::Receiver<NetworkEvent> {
        self.sup.events.subscribe()
    }

    /// Dials a peer by address (an `enode://` URL over RLPx, a multiaddr over the
    /// stream stack) and returns its id once connected. Returns at once if the
    /// named peer is already connected, over either carrier.
    pub async fn dial(&self, addr: &str) -> Result<PeerId, Error> {
        let parsed = DialAddr::parse(addr);
        let kind = parsed.as_ref().map_or(self.server_kind(), DialAddr::kind);
        let result = match parsed {
            Ok(addr) => self.dial_parsed(&addr).await,
            Err(e) => Err(e),
        };
        self.sup.counters.dialled(kind, &result);
        result
    }

    async fn dial_parsed(&self, addr: &DialAddr) -> Result<PeerId, Error> {
        let named = addr.peer()?;
        match (addr, &self.rlpx, &self.p2p) {
            (DialAddr::Enode(enode), Some(rlpx), _) => {
                if named == Some(self.local_peer_id()) {
                    return Err(Error::Refused(DisconnectReason::ConnectedToSelf));
                }
                self.sup.dial(rlpx, enode, named).await
            }
            (DialAddr::Multiaddr(ma), _, Some(p2p)) => self.sup.dial(p2p, ma, named).await,
            (addr, _, _) => Err(Error::NotServing(addr.kind())),
        }
    }

    /// Messages and bytes per protocol and code, dials by outcome and failed
    /// handshakes by reason, since the network started (see [`CountersSnapshot`]).
    pub fn counters(&self) -> CountersSnapshot {
        self.sup.counters.snapshot()
    }

    fn p2p(&self, what: &'static str) -> Result<&p2p::P2pCarrier, Error> {
        self.p2p.as_deref().ok_or(Error::Unsupported(what))
    }

    /// Opens a request-protocol stream to `peer`, proposing `ids` in order; returns
    /// the stream and the id that won. Stream stack only: RLPx has no per-request
    /// channels.
    pub async fn open(
        &self,
        peer: &PeerId,
        ids: &[&str],
    ) -> Result<(MessageStream, ProtocolId), Error> {
        self.p2p("request protocols")?.open(peer, ids).await
    }

    /// Pings `peer` with libp2p ping (stream stack only; RLPx pings itself).
    pub async fn ping(&self, peer: &PeerId) -> Result<Duration, Error> {
        self.p2p("libp2p ping")?.ping(peer).await
    }

    /// Reads `peer`'s libp2p identify record (stream stack only).
    pub async fn identify(&self, peer: &PeerId) -> Result<IdentifyInfo, Error> {
        self.p2p("libp2p identify")?.identify(peer).await
    }

    /// The connected peers, over either carrier.
    pub fn peers(&self) -> Vec<PeerInfo> {
        self.sup.peers.infos()
    }

    /// Which carrier `peer` is connected over, if it is.
    pub fn carrier_of(&self, peer: &PeerId) -> Option<ServerKind> {
        self.sup.peers.carrier(peer)
    }

    /// Disconnects `peer`, telling it `reason`, and waits (bounded) until it is gone.
    pub async fn disconnect(&self, peer: &PeerId, reason: DisconnectReason) {
        self.sup.disconnect(peer, reason).await
    }

    /// Lowers `peer`'s reputation.
    pub fn penalize(&self, peer: &PeerId, penalty: Penalty, why: impl Into<String>) {
        self.sup.penalize(*peer, penalty, why.into())
    }

    /// Keeps a static peer connected: dials it now and redials it, with
    /// exponential backoff and jitter, whenever it is not connected, until shutdown.
    /// A static peer whose id the address names is trusted: it bypasses limits.
    pub fn add_static_peer(&self, addr: &str) -> Result<(), Error> {
        if let Some(peer) = self.check_addr(addr)? {
            self.pool().trust(peer);
        }
        dialer::keep_connected(
            self.clone(),
            addr.to_string(),
            self.sup.shutdown.child_token(),
        );
        Ok(())
    }

    /// Trusts `peer`: it bypasses peer limits and bans.
    pub fn add_trusted_peer(&self, peer: PeerId) {
        self.pool().trust(peer);
    }

    /// Checks that `addr` is an address one of this network's servers can dial (an
    /// `enode://` URL needs RLPx, a multiaddr the stream stack); returns the peer id
    /// it names, if any.
    pub fn check_addr(&self, addr: &str) -> Result<Option<PeerId>, Error> {
        let parsed = DialAddr::parse(addr)?;
        if !self.runs(parsed.kind()) {
            return Err(Error::NotServing(parsed.kind()));
        }
        parsed.peer()
    }

    /// Dials peers from `candidates` (e.g. discovery's) until the outbound target
    /// of [`PeerPoolConfig`] is met, and again whenever outbound peers leave, with
    /// per-peer backoff after failures and a cap on concurrent dials. Runs until
    /// shutdown.
    pub fn run_dialer<S>(&self, candidates: S)
    where
        S: futures::Stream<Item = dialer::DialTarget> + Send + Unpin + 'static,
    {
        dialer::run(self.clone(), candidates, self.sup.shutdown.child_token());
    }

    /// Wire statistics of this node: bytes in and out of every socket and handshake
    /// durations (TCP connect to established session), over all its servers.
    pub fn stats(&self) -> IoStatsSnapshot {
        self.servers()
            .into_iter()
            .filter_map(|kind| self.stats_of(kind))
            .fold(IoStatsSnapshot::default(), |sum, s| sum.merged(&s))
    }

    /// Wire statistics of one server, if it runs.
    pub fn stats_of(&self, kind: ServerKind) -> Option<IoStatsSnapshot> {
        match kind {
            ServerKind::P2p => self
                .p2p
                .as_deref()
                .map(|c| carrier::Carrier::stats(c).snapshot()),
            ServerKind::Rlpx => self
                .rlpx
                .as_deref()
                .map(|c| carrier::Carrier::stats(c).snapshot()),
        }
    }

    /// Whether `peer` is connected.
    pub fn is_connected(&self, peer: &PeerId) -> bool {
        self.sup.peers.contains(peer)
    }

    /// Connected peers that we dialed, over either carrier.
    pub fn outbound_count(&self) -> usize {
        self.sup.peers.count(Direction::Outbound)
    }

    /// Tasks running under the supervisor: accept loops, handshakes, dials, connections
    /// and their streams, the dialer. A gauge of what the network holds: churn must not
    /// grow it without bound.
    pub fn task_count(&self) -> usize {
        self.sup.tasks.len()
    }

    /// Inbound handshakes holding a place in the pending budget now
    /// ([`AdmissionConfig`]), on both servers.
    pub fn pending_handshakes(&self) -> usize {
        self.sup.pending.len()
    }

    /// Connected peers that dialed us, over either carrier.
    pub fn inbound_count(&self) -> usize {
        self.sup.peers.count(Direction::Inbound)
    }

    /// Bans `peer` for `duration` (stored if the pool has a store), on every carrier,
    /// and disconnects it if connected.
    pub async fn ban(&self, peer: &PeerId, duration: Duration) {
        self.pool().ban(*peer, duration);
        self.disconnect(peer, DisconnectReason::UselessPeer).await;
    }

    /// Whether `peer` is banned now.
    pub fn is_banned(&self, peer: &PeerId) -> bool {
        self.pool().banned(peer).is_some()
    }

    /// The peer limits in force.
    pub fn pool_config(&self) -> PeerPoolConfig {
        self.pool().config().clone()
    }

    fn pool(&self) -> &std::sync::Arc<pool::PeerPool> {
        self.sup.peers.pool()
    }

    /// Runs `task` under the supervisor: shutdown waits for it (bounded), so it must
    /// end on the network's cancellation.
    pub(crate) fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        self.sup.tasks.spawn(task);
    }

    /// Stops accepting and dialing, tells every peer `ClientQuitting`, and waits a
    /// bounded time for every task.
    pub async fn shutdown(&self) {
        self.sup.shutdown().await
    }
}

/// Entry points for the fuzz targets in `fuzz/` and their corpus replay: plain
/// functions over bytes a peer could send. Not part of the API.
#[doc(hidden)]
pub mod fuzzing {
    use futures::FutureExt;

    /// An identify message as a stream-stack peer sends it (length-prefixed protobuf).
    pub fn identify(data: &[u8]) {
        let peer = crate::NodeKey::from_secret_bytes(&[7u8; 32])
            .map(|k| k.peer_id())
            .ok();
        if let Some(peer) = peer {
            let read = crate::builtin::read_identify(futures::io::Cursor::new(data), &peer);
            // A cursor never waits: the read completes in one poll.
            let _ = read.now_or_never();
        }
    }

    /// A goodbye message (registrar framing, an RLPx Disconnect payload).
    pub fn goodbye(data: &[u8]) {
        let read = crate::builtin::read_goodbye(futures::io::Cursor::new(data.to_vec()));
        let _ = read.now_or_never();
    }
}
