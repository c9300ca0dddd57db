//! The supervisor: what is the same for every peer, whichever carrier brought it.
//!
//! It owns the one [`PeerTable`] (one connection per peer across carriers, the
//! simultaneous-dial tie-break, disconnect reasons), the [`PeerPool`] behind it
//! (limits counted once, reputation, bans by key and by IP), penalties, events,
//! counters, and every task of the network under one parent
//! [`CancellationToken`] and one [`TaskTracker`]. A carrier ([`Carrier`])
//! establishes and drives connections; the supervisor decides whether a
//! connection may stay ([`Supervisor::serve`]), and closes it through its
//! [`Link`] when a penalty, a handler or the API says so.

use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use devmux_identity::{NodeKey, PeerId};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn, Instrument};

use crate::admission::{first_byte_missed, PendingHandshakes, PendingSlot};
use crate::carrier::{Carrier, Remote};
use crate::counters::Counters;
use crate::net::Accept;
use crate::peers::{Admission, Liveness, NewConnection, PeerTable};
use crate::pool::PeerPool;
use crate::registrar::PeerOps;
use crate::{Direction, DisconnectReason, Error, NetworkConfig, NetworkEvent, Penalty, Registrar};

/// How long [`Supervisor::disconnect`] and shutdown wait for connections to close: a
/// stream-stack goodbye takes at most three seconds (negotiate and send, then close),
/// an RLPx Disconnect about as long.
const CLOSE_WAIT: Duration = Duration::from_secs(4);

/// The supervisor's handle on one connection, whichever carrier: how to close it.
#[derive(Clone)]
pub(crate) enum Link {
    /// A stream-stack connection.
    P2p(crate::p2p::ConnHandle),
    /// An RLPx session.
    Rlpx {
        /// The peer table's id of the connection.
        id: u64,
        /// The running session.
        session: devmux_rlpx::session::SessionHandle,
        /// Its keepalive's record.
        liveness: Arc<Liveness>,
    },
}

impl Link {
    /// The peer table's id of this connection.
    pub(crate) fn id(&self) -> u64 {
        match self {
            Link::P2p(conn) => conn.id,
            Link::Rlpx { id, .. } => *id,
        }
    }

    /// Tells the peer `reason` (a goodbye, or an RLPx Disconnect) and closes, without
    /// waiting. A goodbye acts on the connection it arrives on only, so the losing
    /// connection of a simultaneous dial can be told `AlreadyConnected` safely.
    fn close(&self, sup: &Supervisor, reason: DisconnectReason) {
        match self {
            Link::P2p(conn) => {
                let control = conn.control.clone();
                let timeout = sup.config.negotiation_timeout;
                sup.tasks.spawn(
                    async move { crate::p2p::goodbye(&control, reason, timeout).await }
                        .in_current_span(),
                );
            }
            Link::Rlpx { session, .. } => session.disconnect(reason),
        }
    }

    /// Closes at once, saying nothing: for connections that outlived shutdown.
    fn abort(&self) {
        match self {
            Link::P2p(conn) => conn.control.close(),
            Link::Rlpx { session, .. } => session.abort(),
        }
    }
}

/// What both carriers share: peers, policy, events and tasks.
pub(crate) struct Supervisor {
    pub(crate) key: NodeKey,
    pub(crate) config: NetworkConfig,
    pub(crate) registrar: Registrar,
    pub(crate) peers: PeerTable<Link>,
    /// Inbound handshakes under way, on both carriers.
    pub(crate) pending: Arc<PendingHandshakes>,
    pub(crate) events: broadcast::Sender<NetworkEvent>,
    pub(crate) counters: Arc<Counters>,
    /// The parent of every task's cancellation.
    pub(crate) shutdown: CancellationToken,
    pub(crate) tasks: TaskTracker,
    /// Every connection's keepalive and idle timers tick on it, so that an idle node
    /// wakes a few times a second, not once per connection per period.
    pub(crate) timers: devmux_transport::TimerGrid,
    weak: Weak<Supervisor>,
}

impl Supervisor {
    pub(crate) fn new(
        key: NodeKey,
        config: NetworkConfig,
        registrar: Registrar,
        pool: Arc<PeerPool>,
    ) -> Arc<Self> {
        let (events, _) = broadcast::channel(config.event_capacity.max(16));
        Arc::new_cyclic(|weak| Self {
            peers: PeerTable::new(key.peer_id(), pool),
            pending: PendingHandshakes::new(config.admission.clone()),
            key,
            config,
            registrar,
            events,
            counters: Arc::default(),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            timers: devmux_transport::TimerGrid::new(),
            weak: weak.clone(),
        })
    }

    pub(crate) fn emit(&self, event: NetworkEvent) {
        let _ = self.events.send(event);
    }

    /// What handlers on this network act through ([`crate::PeerCtx`]).
    pub(crate) fn ops(&self) -> Arc<dyn PeerOps> {
        Arc::new(Ops(self.weak.clone()))
    }

    /// Accepts `carrier`'s inbound connections on `tcp` until shutdown: address bans
    /// and the pending budget before any handshake, the first-byte deadline, then the
    /// carrier's handshake.
    pub(crate) fn listen<C: Carrier>(
        self: &Arc<Self>,
        carrier: Arc<C>,
        tcp: impl Accept<Socket = C::Socket>,
    ) {
        let sup = self.clone();
        self.tasks.spawn(async move {
            loop {
                let (socket, addr) = tokio::select! {
                    _ = sup.shutdown.cancelled() => break,
                    accepted = tcp.accept() => match accepted {
                        Ok(pair) => pair,
                        Err(e) => {
                            // EMFILE and friends: back off instead of spinning.
                            debug!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    },
                };
                sup.accepted(&carrier, socket, addr);
                // Let the handshake just spawned (and every other queued task) run
                // before the next accept. Without this, tokio's budget lets one
                // poll of this loop accept a hundred sockets from a churning
                // attacker, each evicting a pending handshake we never got to read,
                // an honest one among them; the backlog keeps what waits meanwhile.
                tokio::task::yield_now().await;
            }
        });
    }

    fn accepted<C: Carrier>(
        self: &Arc<Self>,
        carrier: &Arc<C>,
        socket: C::Socket,
        addr: SocketAddr,
    ) {
        if let Some(left) = self.peers.pool().address_banned(&addr.ip()) {
            // Dropping the socket closes it: nothing is read, nothing computed.
            debug!(%addr, ?left, "address banned: closed at accept");
            self.counters
                .handshake_refused(C::KIND, Direction::Inbound, "address_banned");
            return;
        }
        let (admitted, evicted) = self.pending.admit(addr);
        for _ in 0..evicted {
            self.counters
                .handshake_refused(C::KIND, Direction::Inbound, "evicted");
        }
        let sup = self.clone();
        let carrier = carrier.clone();
        let span = tracing::debug_span!("handshake", %addr, carrier = %C::KIND);
        self.tasks.spawn(
            async move {
                let first_byte = sup.config.admission.first_byte_timeout;
                let activity = admitted.activity.clone();
                let result = tokio::select! {
                    _ = sup.shutdown.cancelled() => return,
                    _ = admitted.evicted.cancelled() => {
                        debug!("pending handshake closed to make room: silent for longest");
                        return;
                    }
                    _ = first_byte_missed(&activity, first_byte) => Err(Error::Timeout("first bytes")),
                    result = carrier.handshake(socket, addr, activity.clone()) => result,
                };
                match result {
                    Ok(conn) => {
                        activity.finish();
                        sup.serve(&carrier, conn, Some(admitted.slot))
                    }
                    Err(e) => {
                        debug!(error = %e, "inbound handshake failed");
                        sup.counters.handshake_failed(C::KIND, Direction::Inbound, &e);
                        if e.is_handshake_fault() {
                            sup.address_fault(addr, None);
                        }
                    }
                }
            }
            .instrument(span),
        );
    }

    /// A fault from `addr` (by `peer`, if its key is known): counted against the
    /// address, which is banned once too many keys from it faulted.
    pub(crate) fn address_fault(&self, addr: SocketAddr, peer: Option<PeerId>) {
        if self.peers.pool().address_fault(addr.ip(), peer) {
            warn!(ip = %addr.ip(), "address banned: too many faulting keys");
        }
    }

    /// Dials `addr` over `carrier`; returns the peer once its connection is up (or at
    /// once if `named`, the peer the address names, is connected already).
    pub(crate) async fn dial<C: Carrier>(
        self: &Arc<Self>,
        carrier: &Arc<C>,
        addr: &C::Addr,
        named: Option<PeerId>,
    ) -> Result<PeerId, Error> {
        if let Some(peer) = named {
            if self.peers.contains(&peer) {
                return Ok(peer);
            }
        }
        if self.shutdown.is_cancelled() {
            return Err(Error::ShuttingDown);
        }
        let conn = match carrier.connect(addr).await {
            Ok(conn) => conn,
            Err(e) => {
                self.counters
                    .handshake_failed(C::KIND, Direction::Outbound, &e);
                return Err(e);
            }
        };
        let peer = C::remote(&conn).peer;
        let shutting_down = self.shutdown.is_cancelled();
        self.serve(carrier, conn, None);
        if shutting_down {
            return Err(Error::ShuttingDown);
        }
        Ok(peer)
    }

    /// Admits an established connection or refuses it, and drives an admitted one
    /// in a task of its own until it ends. An inbound one's `pending` place is held
    /// until it is admitted, or, if refused, until its socket is gone.
    pub(crate) fn serve<C: Carrier>(
        self: &Arc<Self>,
        carrier: &Arc<C>,
        conn: C::Conn,
        pending: Option<PendingSlot>,
    ) {
        let Remote {
            peer,
            addr,
            direction,
        } = C::remote(&conn);
        let span = tracing::info_span!("conn", %peer, %addr, dir = %direction, carrier = %C::KIND);
        if self.shutdown.is_cancelled() {
            // A dial or handshake that was under way when shutdown began.
            let carrier = carrier.clone();
            self.tasks.spawn(
                async move { carrier.refuse(conn, DisconnectReason::ClientQuitting).await }
                    .instrument(span),
            );
            return;
        }
        let id = self.peers.next_id();
        let liveness = Arc::new(Liveness::default());
        let link = C::link(&conn, id, liveness.clone());
        let admission = self.peers.admit(NewConnection {
            peer,
            remote_addr: addr,
            direction,
            carrier: C::KIND,
            liveness,
            handle: link.clone(),
            conn_id: id,
        });
        let replaces = matches!(admission, Admission::Replaces(_));
        let refusal = match admission {
            Admission::New => None,
            Admission::Replaces(old) => {
                debug!(%peer, "simultaneous dial: the new connection wins");
                old.close(self, DisconnectReason::AlreadyConnected);
                None
            }
            Admission::Duplicate => Some(DisconnectReason::AlreadyConnected),
            Admission::Refused(reason) => Some(reason),
        };
        if let Some(reason) = refusal {
            debug!(%peer, ?reason, "refusing connection");
            let carrier = carrier.clone();
            self.tasks.spawn(
                async move {
                    carrier.refuse(conn, reason).await;
                    drop(pending);
                }
                .instrument(span),
            );
            return;
        }
        drop(pending);
        if !replaces {
            info!(%peer, %addr, dir = %direction, carrier = %C::KIND, "peer connected");
            self.emit(NetworkEvent::PeerConnected {
                peer,
                addr,
                direction,
                server: C::KIND,
            });
        }
        let sup = self.clone();
        let carrier = carrier.clone();
        let conn = Box::new(conn);
        self.tasks.spawn(
            async move {
                carrier.drive(conn, link).await;
                sup.ended(peer, id);
            }
            .instrument(span),
        );
    }

    /// Connection `conn` of `peer` ended: if it was still the peer's, the peer leaves.
    fn ended(&self, peer: PeerId, conn: u64) {
        if let Some(recorded) = self.peers.remove(&peer, conn) {
            let (reason, by_remote) = match recorded {
                Some((r, remote)) => (Some(r), remote),
                None => (None, false),
            };
            info!(?reason, by_remote, "peer disconnected");
            self.emit(NetworkEvent::PeerDisconnected {
                peer,
                reason,
                by_remote,
            });
        }
    }

    /// Records `reason` for connection `conn` of `peer` and closes it, if it is still
    /// the peer's connection.
    pub(crate) fn close(&self, peer: &PeerId, conn: u64, reason: DisconnectReason) {
        if let Some(link) = self.peers.handle_of(peer, conn) {
            self.peers.set_reason(peer, conn, reason, false);
            link.close(self, reason);
        }
    }

    /// Disconnects `peer` with `reason` and waits (bounded) until it is gone.
    pub(crate) async fn disconnect(&self, peer: &PeerId, reason: DisconnectReason) {
        let Some(link) = self.peers.handle(peer) else {
            return;
        };
        let conn = link.id();
        self.close(peer, conn, reason);
        let _ = tokio::time::timeout(CLOSE_WAIT, async {
            while self.peers.handle_of(peer, conn).is_some() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
    }

    /// Lowers `peer`'s reputation; a peer that falls below the floor is banned and
    /// disconnected (`BreachOfProtocol`), whichever carrier it is on.
    /// A major or fatal penalty also counts against the peer's address.
    pub(crate) fn penalize(&self, peer: PeerId, penalty: Penalty, why: String) {
        if matches!(penalty, Penalty::Major | Penalty::Fatal) {
            if let Some(addr) = self.peers.addr_of(&peer) {
                self.address_fault(addr, Some(peer));
            }
        }
        if self.peers.penalize(&peer, penalty, why, &self.events) {
            if let Some(link) = self.peers.handle(&peer) {
                self.close(&peer, link.id(), DisconnectReason::BreachOfProtocol);
            }
        }
    }

    /// Cancels every task, tells every peer `ClientQuitting` (each connection's task
    /// does, on seeing the token), and waits a bounded time; connections still open
    /// then are closed without more ado.
    pub(crate) async fn shutdown(&self) {
        self.shutdown.cancel();
        self.tasks.close();
        if tokio::time::timeout(CLOSE_WAIT, self.tasks.wait())
            .await
            .is_err()
        {
            debug!("some connections outlived shutdown");
            for link in self.peers.handles() {
                link.abort();
            }
            let _ = tokio::time::timeout(CLOSE_WAIT, self.tasks.wait()).await;
        }
    }
}

/// The handlers' way to act on their peer: through the supervisor, on their own
/// connection only.
struct Ops(Weak<Supervisor>);

impl PeerOps for Ops {
    fn disconnect(&self, peer: PeerId, conn: u64, reason: DisconnectReason) {
        if let Some(sup) = self.0.upgrade() {
            sup.close(&peer, conn, reason);
        }
    }

    fn is_current(&self, peer: PeerId, conn: u64) -> bool {
        self.0
            .upgrade()
            .is_some_and(|sup| sup.peers.handle_of(&peer, conn).is_some())
    }

    fn penalize(&self, peer: PeerId, penalty: Penalty, why: String) {
        if let Some(sup) = self.0.upgrade() {
            sup.penalize(peer, penalty, why);
        }
    }
}
