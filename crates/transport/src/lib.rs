//! The devmux transport: authenticated, multiplexed TCP connections that
//! rust-libp2p, go-libp2p and js-libp2p can dial and be dialed by.
//!
//! Per connection, in order (WIRE.md §1):
//!
//! ```text
//! TcpStream → multistream-select "/noise" → Noise XX (snow) → multistream-select
//! "/yamux/1.0.0" → yamux::Connection → driver task ─┬─ Control (open streams, close)
//!                                                   └─ IncomingStreams (bounded)
//! ```
//!
//! Each stage is a type: a [`Connection`] exists only after the Noise handshake
//! proved the remote's key, so nothing can open a stream on an unauthenticated
//! socket. One task per connection drives yamux (it has no control handle of its
//! own); handles talk to it through bounded channels. Every step has a deadline
//! ([`Config::handshake_timeout`]), yamux's stream count and windows are bounded
//! ([`Config::max_streams`], [`Config::max_connection_window`]), a
//! [`Listener`] caps concurrent inbound upgrades, and every negotiation we answer
//! as listener rejects a bounded number of proposals ([`negotiation`]:
//! [`Config::max_rejected_proposals`] per negotiation,
//! [`Config::max_rejected_per_connection`] per connection).
//!
//! ```no_run
//! use devmux_identity::NodeKey;
//! use devmux_transport::{Config, Listener, Upgrader};
//! use futures::{AsyncReadExt, AsyncWriteExt};
//! # async fn run() -> Result<(), devmux_transport::Error> {
//! let server = Upgrader::new(NodeKey::generate(), Config::default())?;
//! let mut listener = Listener::bind("127.0.0.1:0".parse().unwrap(), server).await?;
//! let addr = listener.local_addr();
//! tokio::spawn(async move {
//!     while let Some(Ok(mut conn)) = listener.accept().await {
//!         tokio::spawn(async move {
//!             while let Some(mut stream) = conn.incoming.next().await {
//!                 let mut buf = [0u8; 5];
//!                 let _ = stream.read_exact(&mut buf).await;
//!             }
//!         });
//!     }
//! });
//! let client = Upgrader::new(NodeKey::generate(), Config::default())?;
//! let conn = client.dial(addr, None).await?;
//! let mut stream = conn.control.open_stream().await?;
//! stream.write_all(b"hello").await?;
//! # Ok(()) }
//! ```

mod connection;
pub mod negotiation;
pub mod noise;
mod socket;
mod stats;
mod timer;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use connection::{
    Connection, ConnectionInfo, Control, Direction, IncomingStreams, Stream, CLOSE_DEADLINE,
};
use devmux_identity::{NodeKey, PeerId, PublicKey};
use multistream_select::{
    dialer_select_proto, listener_select_proto, NegotiationError, ProtocolError, Version,
};
pub use negotiation::{RejectionBudget, RejectionLimited};
pub use socket::Socket;
pub use stats::{Counted, IoStats, IoStatsSnapshot, ReadActivity, HANDSHAKE_BUCKETS};
pub use timer::TimerGrid;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_util::compat::TokioAsyncReadCompatExt;
use tracing::{debug, Instrument};

/// The multistream-select id of yamux.
pub const YAMUX_PROTOCOL_ID: &str = "/yamux/1.0.0";

/// The encrypted byte stream of an outbound connection before the muxer, over socket
/// `S`.
pub type SecureStream<S = TcpStream> =
    noise::NoiseStream<multistream_select::Negotiated<tokio_util::compat::Compat<Counted<S>>>>;

/// yamux's initial (and minimum) per-stream receive window: 256 KiB.
const YAMUX_DEFAULT_CREDIT: usize = 256 * 1024;

/// Errors of the transport.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A socket operation failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// A step of the handshake did not finish in time. The connection is dropped.
    #[error("{0} timed out")]
    Timeout(&'static str),
    /// multistream-select failed (the peer spoke something else, or refused).
    #[error("protocol negotiation failed: {0}")]
    Negotiation(multistream_select::NegotiationError),
    /// We answered `na` (or an `ls` list) to more proposals in one negotiation than
    /// [`Config::max_rejected_proposals`] allows: the negotiation fails, and with it
    /// the upgrade (the socket is dropped) or the stream.
    #[error("too many rejected protocol proposals: more than {limit} in one negotiation")]
    TooManyProposals {
        /// The cap.
        limit: usize,
    },
    /// The connection's rejections across all its negotiations went past
    /// [`Config::max_rejected_per_connection`]: the negotiation fails and the whole
    /// connection is to be closed (the upgrade drops it; for stream negotiations the
    /// owner of the connection does, see [`RejectionBudget::claim_close`]).
    #[error("too many rejected protocol proposals: more than {limit} on one connection")]
    RejectionBudgetSpent {
        /// The budget.
        limit: usize,
    },
    /// The Noise handshake failed (bad message, bad signature).
    #[error("noise handshake failed: {0}")]
    Noise(String),
    /// The remote proved a different key than the dial asked for.
    #[error("dialed peer {expected} but the remote proved it is {actual}")]
    PeerIdMismatch {
        /// The PeerId the dial named.
        expected: Box<PeerId>,
        /// The PeerId the remote proved.
        actual: Box<PeerId>,
    },
    /// The remote has the local node's own key.
    #[error("the remote is this node itself")]
    SelfDial,
    /// The admission check refused the remote's key (a ban) once Noise proved it,
    /// before the muxer: the connection is closed.
    #[error("peer {0} refused after the noise handshake")]
    Refused(Box<PeerId>),
    /// The yamux connection failed.
    #[error("yamux: {0}")]
    Yamux(#[from] yamux::ConnectionError),
    /// The connection is closed.
    #[error("connection closed")]
    ConnectionClosed,
    /// The identity could not be used.
    #[error(transparent)]
    Identity(#[from] devmux_identity::Error),
}

impl From<NegotiationError> for Error {
    /// A negotiation that failed on a [`RejectionLimited`] cap becomes its typed
    /// variant; any other failure stays [`Error::Negotiation`].
    fn from(e: NegotiationError) -> Self {
        match e {
            NegotiationError::ProtocolError(ProtocolError::IoError(io)) => {
                match negotiation::take_limit_error(io) {
                    Ok(typed) => typed,
                    Err(io) => Error::Negotiation(ProtocolError::IoError(io).into()),
                }
            }
            other => Error::Negotiation(other),
        }
    }
}

/// Transport settings. The defaults bound what one peer can make us buffer to
/// `max_connection_window` (16 MiB).
#[derive(Clone, Debug)]
pub struct Config {
    /// Deadline for the TCP connect and for each handshake step
    /// (multistream-select, Noise, multistream-select).
    pub handshake_timeout: Duration,
    /// Inbound upgrades running at once; further TCP connections are closed at once.
    pub max_concurrent_upgrades: usize,
    /// Streams per connection (yamux `max_num_streams`).
    pub max_streams: usize,
    /// Receive window across all streams of a connection: at least
    /// `256 KiB × max_streams`, the rest lets busy streams grow their windows.
    pub max_connection_window: usize,
    /// Largest yamux data frame we send. Receivers accept up to 1 MiB.
    pub split_send_size: usize,
    /// Inbound streams queued before the consumer takes them; more are reset.
    pub inbound_stream_queue: usize,
    /// The address outbound connections bind (port 0), so that peers see the one the
    /// node listens on and advertises; `None`: the system picks.
    pub bind_ip: Option<std::net::IpAddr>,
    /// Proposals one negotiation we answer as listener may have rejected before it
    /// fails with [`Error::TooManyProposals`] (default
    /// [`negotiation::DEFAULT_MAX_REJECTED_PROPOSALS`], 64). Applies to the
    /// security and muxer negotiations of an inbound upgrade, and to inbound streams
    /// negotiated with a [`RejectionLimited`] built from it.
    pub max_rejected_proposals: usize,
    /// Rejections one connection may cause across all its listener negotiations
    /// (the upgrade's and every stream's) before it is closed (default
    /// [`negotiation::DEFAULT_MAX_REJECTED_PER_CONNECTION`], 256); the budget is
    /// [`Connection::rejections`].
    pub max_rejected_per_connection: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(10),
            max_concurrent_upgrades: 64,
            max_streams: 32,
            max_connection_window: 16 * 1024 * 1024,
            split_send_size: 256 * 1024,
            inbound_stream_queue: 32,
            bind_ip: None,
            max_rejected_proposals: negotiation::DEFAULT_MAX_REJECTED_PROPOSALS,
            max_rejected_per_connection: negotiation::DEFAULT_MAX_REJECTED_PER_CONNECTION,
        }
    }
}

/// How long a socket may hold data the peer does not acknowledge (nor open its
/// window for) before the kernel aborts it: a peer that stops reading cannot hold a
/// connection, or the task closing it, for longer (Linux `TCP_USER_TIMEOUT`).
pub const UNACKED_DATA_TIMEOUT: Duration = Duration::from_secs(5);

/// Sets what every devmux TCP socket needs: no Nagle delay, and
/// [`UNACKED_DATA_TIMEOUT`] where the platform has it. Best effort.
pub fn configure_socket(tcp: &TcpStream) {
    let _ = tcp.set_nodelay(true);
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let _ = socket2::SockRef::from(tcp).set_tcp_user_timeout(Some(UNACKED_DATA_TIMEOUT));
    }
}

/// Connects to `addr` from `bind` (port 0) if given: a node's outbound connections come
/// from the address it listens on.
pub async fn connect_from(
    bind: Option<std::net::IpAddr>,
    addr: SocketAddr,
) -> std::io::Result<TcpStream> {
    let Some(ip) = bind.filter(|ip| !ip.is_unspecified() && ip.is_ipv4() == addr.is_ipv4()) else {
        return TcpStream::connect(addr).await;
    };
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.bind(SocketAddr::new(ip, 0))?;
    socket.connect(addr).await
}

impl Config {
    /// Sets [`Config::handshake_timeout`].
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Sets [`Config::max_concurrent_upgrades`].
    pub fn with_max_concurrent_upgrades(mut self, n: usize) -> Self {
        self.max_concurrent_upgrades = n;
        self
    }

    /// Sets [`Config::max_rejected_proposals`] and
    /// [`Config::max_rejected_per_connection`].
    pub fn with_rejection_limits(mut self, per_negotiation: usize, per_connection: usize) -> Self {
        self.max_rejected_proposals = per_negotiation;
        self.max_rejected_per_connection = per_connection;
        self
    }

    /// A fresh per-connection budget of [`Config::max_rejected_per_connection`].
    fn rejection_budget(&self) -> RejectionBudget {
        RejectionBudget::new(self.max_rejected_per_connection)
    }

    fn yamux(&self) -> yamux::Config {
        let streams = self.max_streams.max(1);
        // yamux asserts window ≥ 256 KiB × streams: keep that true whatever was configured.
        let window = self
            .max_connection_window
            .max(streams * YAMUX_DEFAULT_CREDIT);
        let mut cfg = yamux::Config::default();
        // Lower the stream count before the window, so each setter's assert holds.
        cfg.set_max_num_streams(streams);
        cfg.set_max_connection_receive_window(Some(window));
        cfg.set_split_send_size(self.split_send_size.clamp(16 * 1024, 1024 * 1024));
        cfg
    }
}

/// Upgrades TCP sockets into [`Connection`]s for one local identity.
#[derive(Clone, Debug)]
pub struct Upgrader {
    inner: Arc<UpgraderInner>,
}

#[derive(Debug)]
struct UpgraderInner {
    key: NodeKey,
    noise: noise::NoiseIdentity,
    config: Config,
    stats: Arc<IoStats>,
}

async fn step<T, E: Into<Error>>(
    timeout: Duration,
    what: &'static str,
    fut: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, Error> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r.map_err(Into::into),
        Err(_) => Err(Error::Timeout(what)),
    }
}

impl Upgrader {
    /// An upgrader for `key` (a fresh Noise static key is made for it).
    pub fn new(key: NodeKey, config: Config) -> Result<Self, Error> {
        let noise = noise::NoiseIdentity::new(&key)?;
        Ok(Self {
            inner: Arc::new(UpgraderInner {
                key,
                noise,
                config,
                stats: Arc::default(),
            }),
        })
    }

    /// The local key.
    pub fn key(&self) -> &NodeKey {
        &self.inner.key
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Bytes through every connection this upgrader made, and handshake durations.
    pub fn stats(&self) -> &Arc<IoStats> {
        &self.inner.stats
    }

    /// Connects to `addr` and upgrades; fails if `expected` is given and the remote
    /// proves a different key.
    pub async fn dial(
        &self,
        addr: SocketAddr,
        expected: Option<PeerId>,
    ) -> Result<Connection, Error> {
        let bind = self.inner.config.bind_ip;
        self.dial_with(connect_from(bind, addr), expected).await
    }

    /// Runs `connect` (the socket's connect, e.g. a simulated network's) under the
    /// TCP connect deadline and upgrades the socket it gives, as [`Upgrader::dial`]
    /// does with a TCP connect.
    pub async fn dial_with<S: Socket>(
        &self,
        connect: impl std::future::Future<Output = std::io::Result<S>>,
        expected: Option<PeerId>,
    ) -> Result<Connection, Error> {
        let timeout = self.inner.config.handshake_timeout;
        let socket = step(timeout, "TCP connect", connect).await?;
        self.upgrade_outbound(socket, expected).await
    }

    /// Runs the security half of an outbound upgrade: multistream-select `/noise`
    /// and the Noise handshake, without a muxer. Returns the encrypted byte stream
    /// and the remote's key. [`Upgrader::upgrade_outbound`] builds on it; tools and
    /// tests can use it to speak raw bytes inside Noise.
    pub async fn secure_outbound<S: Socket>(
        &self,
        tcp: S,
        expected: Option<PeerId>,
    ) -> Result<(SecureStream<S>, PublicKey), Error> {
        tcp.configure();
        let tcp = Counted::new(tcp, self.inner.stats.clone());
        let t = self.inner.config.handshake_timeout;
        // V1Lazy: our "/noise" proposal travels with the first Noise message, saving a
        // round trip; every multistream-select listener accepts it.
        let (_, io) = step(
            t,
            "security negotiation",
            dialer_select_proto(tcp.compat(), [noise::PROTOCOL_ID], Version::V1Lazy),
        )
        .await?;
        let (secure, public_key) = step(
            t,
            "noise handshake",
            noise::handshake_initiator(io, &self.inner.noise, expected),
        )
        .await?;
        if public_key.to_peer_id() == self.inner.key.peer_id() {
            return Err(Error::SelfDial);
        }
        Ok((secure, public_key))
    }

    /// Upgrades a socket we dialed.
    pub async fn upgrade_outbound<S: Socket>(
        &self,
        tcp: S,
        expected: Option<PeerId>,
    ) -> Result<Connection, Error> {
        let (remote_addr, local_addr) = (tcp.peer_addr()?, tcp.local_addr()?);
        let started = tokio::time::Instant::now();
        let cfg = &self.inner.config;
        let (secure, public_key) = self.secure_outbound(tcp, expected).await?;
        let (_, muxed) = step(
            cfg.handshake_timeout,
            "muxer negotiation",
            dialer_select_proto(secure, [YAMUX_PROTOCOL_ID], Version::V1Lazy),
        )
        .await?;
        self.inner.stats.record_handshake(started.elapsed());
        let info = ConnectionInfo {
            peer_id: public_key.to_peer_id(),
            public_key,
            remote_addr,
            local_addr,
            direction: Direction::Outbound,
        };
        Ok(Connection::spawn(
            muxed,
            cfg.yamux(),
            yamux::Mode::Client,
            info,
            cfg.inbound_stream_queue,
            // We answer the streams the remote opens: their negotiations spend it.
            cfg.rejection_budget(),
        ))
    }

    /// Upgrades a socket we accepted.
    pub async fn upgrade_inbound<S: Socket>(&self, tcp: S) -> Result<Connection, Error> {
        self.upgrade_inbound_watched(tcp, Arc::default(), |_| true)
            .await
    }

    /// Upgrades a socket we accepted, stamping `activity` on every read, and asks
    /// `admit` about the remote's key as soon as Noise has proven it, before the muxer:
    /// `false` closes the connection ([`Error::Refused`]).
    pub async fn upgrade_inbound_watched<S: Socket>(
        &self,
        tcp: S,
        activity: Arc<ReadActivity>,
        admit: impl FnOnce(&PeerId) -> bool,
    ) -> Result<Connection, Error> {
        let (remote_addr, local_addr) = (tcp.peer_addr()?, tcp.local_addr()?);
        let started = tokio::time::Instant::now();
        tcp.configure();
        let tcp = Counted::watched(tcp, self.inner.stats.clone(), activity.clone());
        let cfg = &self.inner.config;
        let t = cfg.handshake_timeout;
        // Both listener negotiations are bounded (see `negotiation`): without it a
        // dialer could make us answer `na` to proposals until the deadline. They
        // share the connection's budget with the streams negotiated later.
        let rejections = cfg.rejection_budget();
        let cap = cfg.max_rejected_proposals;
        let (_, io) = step(
            t,
            "security negotiation",
            listener_select_proto(
                RejectionLimited::new(tcp.compat(), cap, rejections.clone()),
                [noise::PROTOCOL_ID],
            ),
        )
        .await?;
        activity.reached(1);
        let (secure, public_key) = step(
            t,
            "noise handshake",
            noise::handshake_responder(io, &self.inner.noise),
        )
        .await?;
        activity.reached(2);
        let peer_id = public_key.to_peer_id();
        if peer_id == self.inner.key.peer_id() {
            return Err(Error::SelfDial);
        }
        if !admit(&peer_id) {
            return Err(Error::Refused(Box::new(peer_id)));
        }
        let (_, muxed) = step(
            t,
            "muxer negotiation",
            listener_select_proto(
                RejectionLimited::new(secure, cap, rejections.clone()),
                [YAMUX_PROTOCOL_ID],
            ),
        )
        .await?;
        self.inner.stats.record_handshake(started.elapsed());
        let info = ConnectionInfo {
            peer_id,
            public_key,
            remote_addr,
            local_addr,
            direction: Direction::Inbound,
        };
        Ok(Connection::spawn(
            muxed,
            cfg.yamux(),
            yamux::Mode::Server,
            info,
            cfg.inbound_stream_queue,
            rejections,
        ))
    }
}

/// Accepts TCP connections and upgrades them, at most
/// [`Config::max_concurrent_upgrades`] at once.
#[derive(Debug)]
pub struct Listener {
    local_addr: SocketAddr,
    rx: mpsc::Receiver<Result<Connection, Error>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Listener {
    /// Binds `addr` (port 0 picks a free port) and starts accepting.
    pub async fn bind(addr: SocketAddr, upgrader: Upgrader) -> Result<Self, Error> {
        let tcp = TcpListener::bind(addr).await?;
        Ok(Self::from_tcp(tcp, upgrader)?)
    }

    /// Starts accepting on an already bound listener.
    pub fn from_tcp(tcp: TcpListener, upgrader: Upgrader) -> Result<Self, std::io::Error> {
        let local_addr = tcp.local_addr()?;
        let permits = Arc::new(Semaphore::new(upgrader.config().max_concurrent_upgrades));
        let (tx, rx) = mpsc::channel(upgrader.config().max_concurrent_upgrades.max(1));
        let span = tracing::debug_span!("listener", addr = %local_addr);
        let task = tokio::spawn(
            async move {
                loop {
                    let (socket, remote) = match tcp.accept().await {
                        Ok(pair) => pair,
                        Err(e) => {
                            // EMFILE and friends: back off instead of spinning.
                            debug!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let Ok(permit) = permits.clone().try_acquire_owned() else {
                        debug!(%remote, "too many upgrades in progress: dropping connection");
                        continue;
                    };
                    let upgrader = upgrader.clone();
                    let tx = tx.clone();
                    tokio::spawn(
                        async move {
                            let result = upgrader.upgrade_inbound(socket).await;
                            drop(permit);
                            if let Err(e) = &result {
                                debug!(error = %e, "inbound upgrade failed");
                            }
                            let _ = tx.send(result).await;
                        }
                        .instrument(tracing::debug_span!("upgrade", %remote)),
                    );
                }
            }
            .instrument(span),
        );
        Ok(Self {
            local_addr,
            rx,
            task,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The next upgraded connection, or a failed upgrade's error (the listener keeps
    /// running after errors).
    pub async fn accept(&mut self) -> Option<Result<Connection, Error>> {
        self.rx.recv().await
    }
}

/// Entry points for the fuzz targets in `fuzz/` and their corpus replay. Not part of
/// the API.
#[doc(hidden)]
pub mod fuzzing {
    /// A Noise handshake payload (`NoiseHandshakePayload` protobuf) from a peer whose
    /// static key is `[7; 32]`.
    pub fn noise_payload(data: &[u8]) {
        let _ = crate::noise::verify_handshake_payload(data, &[7u8; 32]);
    }

    /// Noise transport messages as a socket delivers them, sealed with known keys so
    /// the fuzzer gets past the tag (the input's layout: `noise::fuzz`).
    pub fn noise_frames(data: &[u8]) {
        crate::noise::fuzz::transport_frames(data);
    }
}
