//! The contract between the supervisor and a carrier.
//!
//! A carrier establishes authenticated connections (outbound, and inbound on
//! sockets the supervisor accepted and admitted; each step under a deadline, the
//! supervisor's admission check as soon as the remote key is known) and drives them: it opens and accepts the protocol channels
//! the registrar's handlers run on. It knows nothing of reputations, bans or
//! other peers; the supervisor ([`crate::supervisor::Supervisor`]) decides
//! whether each connection may stay and closes it through its [`Link`].
//!
//! Two carriers implement it, each over its own crate's connection layer:
//! [`crate::p2p::P2pCarrier`] (the stream stack, `devmux_transport`) and
//! [`crate::rlpx::RlpxCarrier`] (RLPx, `devmux_rlpx::carrier` and
//! `devmux_rlpx::session`).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use devmux_identity::PeerId;
use devmux_transport::ReadActivity;

use crate::peers::Liveness;
use crate::supervisor::Link;
use crate::{Direction, DisconnectReason, Error, ServerKind};

/// Who is at the other end of a connection.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Remote {
    pub(crate) peer: PeerId,
    pub(crate) addr: SocketAddr,
    pub(crate) direction: Direction,
}

/// A way to carry the registrar's protocols to peers.
pub(crate) trait Carrier: Send + Sync + Sized + 'static {
    /// Which one it is (events, metrics, `admin_peers`).
    const KIND: ServerKind;
    /// Where to dial a peer: an `enode://` URL, a multiaddr.
    type Addr: Send + Sync;
    /// An authenticated connection, not yet admitted by the supervisor.
    type Conn: Send + 'static;
    /// The sockets it accepts (TCP; the stream stack's may be simulated ones).
    type Socket: Send + 'static;

    /// The bound listen address.
    fn listen_addr(&self) -> SocketAddr;
    /// The bytes and handshake durations of every socket of this carrier.
    fn stats(&self) -> &Arc<devmux_transport::IoStats>;
    /// Runs the handshake of a socket the supervisor accepted from `addr` and
    /// admitted, reads stamping `activity`.
    fn handshake(
        &self,
        socket: Self::Socket,
        addr: SocketAddr,
        activity: Arc<ReadActivity>,
    ) -> impl Future<Output = Result<Self::Conn, Error>> + Send;
    /// Dials `addr`.
    fn connect(&self, addr: &Self::Addr) -> impl Future<Output = Result<Self::Conn, Error>> + Send;
    /// Who is at the other end of `conn`.
    fn remote(conn: &Self::Conn) -> Remote;
    /// The supervisor's handle on `conn`, which the peer table knows as `id`; its
    /// keepalive reports to `liveness`.
    fn link(conn: &Self::Conn, id: u64, liveness: Arc<Liveness>) -> Link;
    /// Closes a connection the supervisor refused, telling the peer `reason`.
    fn refuse(
        self: Arc<Self>,
        conn: Self::Conn,
        reason: DisconnectReason,
    ) -> impl Future<Output = ()> + Send;
    /// Serves an admitted connection until it ends: its channels, handlers and
    /// keepalive, and its goodbye at shutdown. The connection comes boxed: each async
    /// fn it passes through keeps its own copy of what it was given, for as long as
    /// the connection lasts.
    fn drive(self: Arc<Self>, conn: Box<Self::Conn>, link: Link)
        -> impl Future<Output = ()> + Send;
}
