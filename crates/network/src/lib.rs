//! devmux's network: protocol handlers registered by id, served over either the
//! libp2p-compatible stream stack or the legacy RLPx server.
//!
//! - [`Registrar`] maps protocol ids ([`ProtocolId`], e.g. `/eth/68/1.0.0`) to
//!   async handlers. A handler sees a [`MessageStream`] of [`Message`]s (code and
//!   payload) and a [`PeerCtx`]; it never learns which server carries it. The stream
//!   keeps one contract on both: a cancel-safe [`MessageStream::next`], the size cap
//!   and the session protocol's message count in both directions, and framing faults
//!   ([`Error::is_framing_fault`]) penalised by the server itself.
//! - [`Network`] runs one server, chosen by [`NetworkConfig::use_p2p_server`]:
//!   the P2P server (TCP → Noise → Yamux, each stream negotiated with
//!   multistream-select; built-in libp2p ping and identify, and devmux goodbye),
//!   or the RLPx server (a session protocol `/<name>/<version>/1.0.0` is the
//!   capability `<name>/<version>`).
//! - [`NetworkEvent`]s report peers connecting and leaving (with reasons), streams
//!   opening, and penalties.
//!
//! ```no_run
//! use devmux_identity::NodeKey;
//! use devmux_network::{Network, NetworkConfig, Registrar, PeerCtx, MessageStream};
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
//! # Ok(()) }
//! ```

mod builtin;
mod counters;
pub mod dialer;
mod message;
mod p2p;
mod peers;
mod pool;
mod protocol;
mod registrar;
mod rlpx;

use std::net::SocketAddr;
use std::time::Duration;

pub use builtin::{IdentifyInfo, GOODBYE_PROTOCOL, IDENTIFY_PROTOCOL, PING_PROTOCOL};
pub use counters::{
    CountersSnapshot, DialCount, HandshakeFailureCount, MessageCount, ProtocolBytes,
};
pub use devmux_identity::{Multiaddr, NodeKey, PeerId};
pub use devmux_rlpx::DisconnectReason;
pub use devmux_transport::{Direction, IoStatsSnapshot, HANDSHAKE_BUCKETS};
pub use dialer::DialTarget;
pub use message::{
    decode_frame, encode_frame, Message, MessageReader, MessageStream, MessageWriter,
    DEFAULT_MAX_MESSAGE_SIZE,
};
pub use pool::{PeerPoolConfig, REPUTATION_FLOOR};
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
    /// Protocol negotiation failed: the peer supports none of the ids offered.
    #[error("protocol negotiation failed: {0}")]
    Negotiation(String),
    /// A wait on the peer passed its deadline.
    #[error("{0} timed out")]
    Timeout(&'static str),
    /// No connection to that peer.
    #[error("not connected to {0}")]
    NotConnected(PeerId),
    /// A ping came back different.
    #[error("ping answer does not match")]
    PingMismatch,
    /// The operation needs the other server.
    #[error("{0} is not available on this server")]
    Unsupported(&'static str),
    /// The RLPx transport failed (handshake, frame, Hello).
    #[error("rlpx: {0}")]
    Rlpx(#[from] devmux_rlpx::Error),
    /// The connection was refused with a reason (sent to the peer too).
    #[error("connection refused: {0}")]
    Refused(DisconnectReason),
    /// The peer store could not be opened or written.
    #[error("peer store: {0}")]
    Store(String),
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
            Self::Timeout(_) | Self::Transport(T::Timeout(_)) => "timeout",
            Self::Io(_)
            | Self::Transport(T::Io(_) | T::ConnectionClosed)
            | Self::Rlpx(R::Io(_) | R::ConnectionClosed) => "io",
            Self::Transport(T::Noise(_)) => "noise",
            Self::Negotiation(_) | Self::Transport(T::Negotiation(_)) => "negotiation",
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
            Self::Refused(_) => "refused",
            Self::Rlpx(_) => "rlpx",
            _ => "other",
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

/// Which server carries a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ServerKind {
    /// The multiplexed stream stack (TCP → Noise → Yamux).
    P2p,
    /// The legacy RLPx server.
    Rlpx,
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
}

/// Network settings.
#[derive(Clone, Debug)]
pub struct NetworkConfig {
    /// `true`: the multiplexed stream stack; `false` (default): the RLPx server.
    pub use_p2p_server: bool,
    /// Where to listen (port 0 picks a free port).
    pub listen_addr: SocketAddr,
    /// Transport settings (handshake deadlines, stream and window limits).
    pub transport: devmux_transport::Config,
    /// Deadline for negotiating a stream's protocol.
    pub negotiation_timeout: Duration,
    /// Stream-stack keepalive: a libp2p ping this often; a peer that does not
    /// answer within `request_timeout` is disconnected with `PingTimeout`.
    pub ping_interval: Duration,
    /// A stream-stack connection with no open stream for this long is closed.
    pub idle_timeout: Duration,
    /// Deadline for built-in requests (ping, identify).
    pub request_timeout: Duration,
    /// identify's `agentVersion` and RLPx Hello's client id.
    pub agent_version: String,
    /// RLPx keepalive: a Ping this often; a peer that has not answered the previous
    /// one by then is disconnected with `PingTimeout`.
    pub rlpx_ping_interval: Duration,
    /// Peer limits, reputation, bans and trusted peers.
    pub pool: PeerPoolConfig,
    /// Events buffered per subscriber; a subscriber that falls further behind
    /// misses events (and is told how many).
    pub event_capacity: usize,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        Self {
            use_p2p_server: false,
            listen_addr: SocketAddr::from(([127, 0, 0, 1], 30303)),
            transport: devmux_transport::Config::default(),
            negotiation_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
            ping_interval: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(30),
            agent_version: concat!("devmux/", env!("CARGO_PKG_VERSION")).to_string(),
            rlpx_ping_interval: Duration::from_secs(15),
            pool: PeerPoolConfig::default(),
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
}

enum Server {
    P2p(p2p::P2pServer),
    Rlpx(rlpx::RlpxServer),
}

/// A running network: one server, its peers, and the registrar's handlers.
/// Cheap to clone.
#[derive(Clone)]
pub struct Network {
    server: std::sync::Arc<Server>,
    counters: std::sync::Arc<counters::Counters>,
    events: broadcast::Sender<NetworkEvent>,
    /// Cancelled at shutdown: stops the dialer's tasks.
    stop: tokio_util::sync::CancellationToken,
}

impl std::fmt::Debug for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Network")
            .field("peer_id", &self.local_peer_id())
            .field("addr", &self.local_addr())
            .finish()
    }
}

impl Network {
    /// Starts the server `config` selects, serving `registrar`.
    pub async fn start(
        config: NetworkConfig,
        key: NodeKey,
        registrar: Registrar,
    ) -> Result<Self, Error> {
        if !config.use_p2p_server {
            rlpx::check_servable(&registrar)?;
        }
        let (events, _) = broadcast::channel(config.event_capacity.max(16));
        let pool = std::sync::Arc::new(pool::PeerPool::open(config.pool.clone())?);
        let counters = std::sync::Arc::new(counters::Counters::default());
        let server = if config.use_p2p_server {
            Server::P2p(
                p2p::P2pServer::start(
                    config,
                    key,
                    registrar,
                    events.clone(),
                    pool,
                    counters.clone(),
                )
                .await?,
            )
        } else {
            Server::Rlpx(
                rlpx::RlpxServer::start(
                    config,
                    key,
                    registrar,
                    events.clone(),
                    pool,
                    counters.clone(),
                )
                .await?,
            )
        };
        Ok(Self {
            server: std::sync::Arc::new(server),
            counters,
            events,
            stop: tokio_util::sync::CancellationToken::new(),
        })
    }

    /// Which server runs.
    pub fn server_kind(&self) -> ServerKind {
        match &*self.server {
            Server::P2p(_) => ServerKind::P2p,
            Server::Rlpx(_) => ServerKind::Rlpx,
        }
    }

    /// This node's PeerId (on RLPx too: both stacks name a peer by its key).
    pub fn local_peer_id(&self) -> PeerId {
        match &*self.server {
            Server::P2p(s) => s.local_peer_id(),
            Server::Rlpx(s) => s.local_peer_id(),
        }
    }

    /// The bound socket address.
    pub fn listen_addr(&self) -> SocketAddr {
        match &*self.server {
            Server::P2p(s) => s.listen_addr(),
            Server::Rlpx(s) => s.listen_addr(),
        }
    }

    /// The address others dial: the full multiaddr (stream stack) or the
    /// `enode://` URL (RLPx).
    pub fn local_addr(&self) -> String {
        match &*self.server {
            Server::P2p(s) => s.local_multiaddr().to_string(),
            Server::Rlpx(s) => s.local_enode().to_string(),
        }
    }

    /// Subscribes to events from now on.
    pub fn events(&self) -> broadcast::Receiver<NetworkEvent> {
        self.events.subscribe()
    }

    /// Dials a peer by address (a multiaddr for the stream stack, an `enode://`
    /// URL for RLPx) and returns its id once connected. Returns at once if the
    /// named peer is already connected.
    pub async fn dial(&self, addr: &str) -> Result<PeerId, Error> {
        let result = self.dial_uncounted(addr).await;
        self.counters.dialled(self.server_kind(), &result);
        result
    }

    /// Messages and bytes per protocol and code, dials by outcome and failed
    /// handshakes by reason, since the network started (see [`CountersSnapshot`]).
    pub fn counters(&self) -> CountersSnapshot {
        self.counters.snapshot()
    }

    async fn dial_uncounted(&self, addr: &str) -> Result<PeerId, Error> {
        match &*self.server {
            Server::P2p(s) => {
                let addr: Multiaddr = addr.parse().map_err(|e| {
                    Error::Identity(devmux_identity::Error::InvalidMultiaddr {
                        addr: addr.to_string(),
                        problem: format!("{e}"),
                    })
                })?;
                s.dial(&addr).await
            }
            Server::Rlpx(s) => s.dial(&addr.parse()?).await,
        }
    }

    /// Opens a request-protocol stream to `peer`, proposing `ids` in order; returns
    /// the stream and the id that won. Stream stack only: RLPx has no per-request
    /// channels.
    pub async fn open(
        &self,
        peer: &PeerId,
        ids: &[&str],
    ) -> Result<(MessageStream, ProtocolId), Error> {
        match &*self.server {
            Server::P2p(s) => s.open(peer, ids).await,
            Server::Rlpx(_) => Err(Error::Unsupported("request protocols")),
        }
    }

    /// Pings `peer` with libp2p ping (stream stack only; RLPx pings itself).
    pub async fn ping(&self, peer: &PeerId) -> Result<Duration, Error> {
        match &*self.server {
            Server::P2p(s) => s.ping(peer).await,
            Server::Rlpx(_) => Err(Error::Unsupported("libp2p ping")),
        }
    }

    /// Reads `peer`'s libp2p identify record (stream stack only).
    pub async fn identify(&self, peer: &PeerId) -> Result<IdentifyInfo, Error> {
        match &*self.server {
            Server::P2p(s) => s.identify(peer).await,
            Server::Rlpx(_) => Err(Error::Unsupported("libp2p identify")),
        }
    }

    /// The connected peers.
    pub fn peers(&self) -> Vec<PeerInfo> {
        self.table().infos()
    }

    /// Disconnects `peer`, telling it `reason`.
    pub async fn disconnect(&self, peer: &PeerId, reason: DisconnectReason) {
        match &*self.server {
            Server::P2p(s) => s.disconnect(peer, reason).await,
            Server::Rlpx(s) => s.disconnect(peer, reason).await,
        }
    }

    /// Lowers `peer`'s reputation.
    pub fn penalize(&self, peer: &PeerId, penalty: Penalty, why: impl Into<String>) {
        match &*self.server {
            Server::P2p(s) => s.penalize(*peer, penalty, why.into()),
            Server::Rlpx(s) => s.penalize(*peer, penalty, why.into()),
        }
    }

    /// Keeps a static peer connected: dials it now and redials it, with
    /// exponential backoff and jitter, whenever it is not connected, until shutdown.
    /// A static peer whose id the address names is trusted: it bypasses limits.
    pub fn add_static_peer(&self, addr: &str) -> Result<(), Error> {
        if let Some(peer) = self.check_addr(addr)? {
            self.pool().trust(peer);
        }
        dialer::keep_connected(self.clone(), addr.to_string(), self.stop.child_token());
        Ok(())
    }

    /// Trusts `peer`: it bypasses peer limits and bans.
    pub fn add_trusted_peer(&self, peer: PeerId) {
        self.pool().trust(peer);
    }

    /// Checks that `addr` is an address this network's server can dial; returns the
    /// peer id it names, if any.
    pub fn check_addr(&self, addr: &str) -> Result<Option<PeerId>, Error> {
        match &*self.server {
            Server::P2p(_) => {
                let ma: Multiaddr = addr.parse().map_err(|e| {
                    Error::Identity(devmux_identity::Error::InvalidMultiaddr {
                        addr: addr.to_string(),
                        problem: format!("{e}"),
                    })
                })?;
                Ok(devmux_identity::parse_peer_multiaddr(&ma)?.1)
            }
            Server::Rlpx(_) => Ok(Some(
                addr.parse::<devmux_identity::Enode>()?.id.to_peer_id()?,
            )),
        }
    }

    /// Dials peers from `candidates` (e.g. discovery's) until the outbound target
    /// of [`PeerPoolConfig`] is met, and again whenever outbound peers leave, with
    /// per-peer backoff after failures and a cap on concurrent dials. Runs until
    /// shutdown.
    pub fn run_dialer<S>(&self, candidates: S)
    where
        S: futures::Stream<Item = dialer::DialTarget> + Send + Unpin + 'static,
    {
        dialer::run(self.clone(), candidates, self.stop.child_token());
    }

    /// Wire statistics of this node's server: bytes in and out of every socket and
    /// handshake durations (TCP connect to established session).
    pub fn stats(&self) -> devmux_transport::IoStatsSnapshot {
        match &*self.server {
            Server::P2p(s) => s.stats().snapshot(),
            Server::Rlpx(s) => s.stats().snapshot(),
        }
    }

    /// Whether `peer` is connected.
    pub fn is_connected(&self, peer: &PeerId) -> bool {
        self.table().contains(peer)
    }

    /// Connected peers that we dialed.
    pub fn outbound_count(&self) -> usize {
        self.table().count(Direction::Outbound)
    }

    /// Connected peers that dialed us.
    pub fn inbound_count(&self) -> usize {
        self.table().count(Direction::Inbound)
    }

    /// Bans `peer` for `duration` (stored if the pool has a store) and disconnects
    /// it if connected.
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
        self.table().pool()
    }

    fn table(&self) -> &dyn peers::PeerIndex {
        match &*self.server {
            Server::P2p(s) => s.table(),
            Server::Rlpx(s) => s.table(),
        }
    }

    /// Stops accepting, tells every peer `ClientQuitting`, and waits a bounded time.
    pub async fn shutdown(&self) {
        self.stop.cancel();
        match &*self.server {
            Server::P2p(s) => s.shutdown().await,
            Server::Rlpx(s) => s.shutdown().await,
        }
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
