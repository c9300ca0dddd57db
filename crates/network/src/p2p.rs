//! The multiplexed stream server (`use_p2p_server = true`): libp2p-compatible
//! TCP → Noise → Yamux connections, every stream negotiated with
//! multistream-select and routed to the registrar.
//!
//! Tasks: one accept loop; per connection one yamux driver (in the transport),
//! one task that routes its inbound streams, and one task per stream.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use devmux_identity::{peer_multiaddr, socket_multiaddr, Multiaddr, NodeKey, PeerId};
use devmux_transport::{Connection, ConnectionInfo, Control, Direction, Listener, Upgrader};
use multistream_select::{dialer_select_proto, listener_select_proto, Version};
use tokio::sync::{broadcast, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn, Instrument};

use crate::builtin::{self, IdentifyInfo, GOODBYE_PROTOCOL, IDENTIFY_PROTOCOL, PING_PROTOCOL};
use crate::counters::Counters;
use crate::message::{
    ActivityGuard, BoxedRaw, FaultReport, MessageStream, StreamRules, DEFAULT_MAX_MESSAGE_SIZE,
};
use crate::peers::{Admission, PeerIndex, PeerTable};
use crate::pool::PeerPool;
use crate::registrar::{PeerOps, ProtocolKind, Registration};
use crate::{
    DisconnectReason, Error, NetworkConfig, NetworkEvent, PeerCtx, Penalty, ProtocolId, Registrar,
    ServerKind,
};

/// How long a goodbye waits for the peer to close its side (WIRE.md §1).
const GOODBYE_LINGER: Duration = Duration::from_secs(1);
/// Inbound streams negotiating at once on one connection; more are reset.
const MAX_NEGOTIATING_INBOUND: usize = 16;
pub(crate) struct P2pShared {
    key: NodeKey,
    upgrader: Upgrader,
    registrar: Registrar,
    config: NetworkConfig,
    listen_addr: SocketAddr,
    peers: PeerTable<ConnHandle>,
    events: broadcast::Sender<NetworkEvent>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    supported: Vec<String>,
    counters: Arc<Counters>,
}

/// What the peer table holds per P2P connection.
#[derive(Clone)]
struct ConnHandle {
    /// The peer table's id of this connection.
    id: u64,
    control: Control,
    /// Open protocol streams (registrar handlers and streams from `open`).
    active: Arc<AtomicUsize>,
    /// Session groups with a running handler: one session per group per connection.
    sessions: Arc<std::sync::Mutex<std::collections::HashSet<usize>>>,
}

fn lock_sessions(conn: &ConnHandle) -> std::sync::MutexGuard<'_, std::collections::HashSet<usize>> {
    conn.sessions.lock().unwrap_or_else(|p| p.into_inner())
}

/// The P2P server. Cheap to clone.
#[derive(Clone)]
pub(crate) struct P2pServer {
    shared: Arc<P2pShared>,
}

struct Ops(Weak<P2pShared>);

impl PeerOps for Ops {
    fn disconnect(&self, peer: PeerId, conn: u64, reason: DisconnectReason) {
        if let Some(shared) = self.0.upgrade() {
            let Some(handle) = shared.peers.handle_of(&peer, conn) else {
                return; // That connection is gone or replaced: not ours to close.
            };
            // Recorded at once: a handler may return right after asking, and the
            // disconnect event must still carry its reason.
            shared.peers.set_reason(&peer, reason, false);
            let server = P2pServer { shared };
            tokio::spawn(async move { server.goodbye(&handle.control, reason).await });
        }
    }

    fn is_current(&self, peer: PeerId, conn: u64) -> bool {
        self.0
            .upgrade()
            .is_some_and(|shared| shared.peers.handle_of(&peer, conn).is_some())
    }

    fn penalize(&self, peer: PeerId, penalty: Penalty, why: String) {
        if let Some(shared) = self.0.upgrade() {
            P2pServer { shared }.penalize(peer, penalty, why);
        }
    }
}

impl P2pServer {
    pub(crate) async fn start(
        config: NetworkConfig,
        key: NodeKey,
        registrar: Registrar,
        events: broadcast::Sender<NetworkEvent>,
        pool: Arc<PeerPool>,
        counters: Arc<Counters>,
    ) -> Result<Self, Error> {
        let upgrader = Upgrader::new(key.clone(), config.transport.clone())?;
        let mut listener = Listener::bind(config.listen_addr, upgrader.clone()).await?;
        let listen_addr = listener.local_addr();
        let mut supported: Vec<String> = registrar.ids().map(|id| id.to_string()).collect();
        supported.extend(builtin::BUILTIN_IDS.iter().map(|s| s.to_string()));
        let shared = Arc::new(P2pShared {
            peers: PeerTable::new(key.peer_id(), ServerKind::P2p, pool),
            key,
            upgrader,
            registrar,
            config,
            listen_addr,
            events,
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            supported,
            counters,
        });
        let server = Self { shared };
        let accept = server.clone();
        let token = server.shared.shutdown.clone();
        server.shared.tasks.spawn(async move {
            loop {
                tokio::select! {
                    _ = token.cancelled() => break,
                    next = listener.accept() => match next {
                        Some(Ok(conn)) => accept.clone().run_connection(conn),
                        // Logged by the listener; it keeps running.
                        Some(Err(e)) => accept.shared.counters.handshake_failed(
                            ServerKind::P2p,
                            Direction::Inbound,
                            &e.into(),
                        ),
                        None => break,
                    },
                }
            }
        });
        info!(addr = %server.local_multiaddr(), "P2P server listening");
        Ok(server)
    }

    pub(crate) fn local_peer_id(&self) -> PeerId {
        self.shared.key.peer_id()
    }

    pub(crate) fn listen_addr(&self) -> SocketAddr {
        self.shared.listen_addr
    }

    pub(crate) fn local_multiaddr(&self) -> Multiaddr {
        peer_multiaddr(self.shared.listen_addr, &self.shared.key.peer_id())
    }

    fn ops(&self) -> Arc<dyn PeerOps> {
        Arc::new(Ops(Arc::downgrade(&self.shared)))
    }

    /// What a stream of protocol `id` to `peer` enforces: the protocol's size cap, a
    /// session protocol's message count, and framing faults reported to us.
    fn stream_rules(
        &self,
        peer: PeerId,
        id: &ProtocolId,
        max: usize,
        kind: &ProtocolKind,
    ) -> StreamRules {
        StreamRules {
            max,
            message_count: match kind {
                ProtocolKind::Session { message_count } => Some(*message_count),
                ProtocolKind::Request => None,
            },
            fault: Some(FaultReport {
                ops: self.ops(),
                peer,
                protocol: id.to_string(),
            }),
            counter: Some(self.shared.counters.protocol(id.as_str())),
        }
    }

    fn emit(&self, event: NetworkEvent) {
        let _ = self.shared.events.send(event);
    }

    fn handle(&self, peer: &PeerId) -> Result<ConnHandle, Error> {
        self.shared
            .peers
            .handle(peer)
            .ok_or(Error::NotConnected(*peer))
    }

    fn control(&self, peer: &PeerId) -> Result<Control, Error> {
        Ok(self.handle(peer)?.control)
    }

    /// Dials `addr` (`/ip4/…/tcp/…[/p2p/…]`) and returns the peer's id once the
    /// connection is up. Returns at once if the named peer is already connected.
    pub(crate) async fn dial(&self, addr: &Multiaddr) -> Result<PeerId, Error> {
        let (socket, expected) = devmux_identity::parse_peer_multiaddr(addr)?;
        if let Some(peer) = expected {
            if self.shared.peers.contains(&peer) {
                return Ok(peer);
            }
        }
        if self.shared.shutdown.is_cancelled() {
            return Err(Error::ShuttingDown);
        }
        let conn = match self.shared.upgrader.dial(socket, expected).await {
            Ok(conn) => conn,
            Err(e) => {
                let e = Error::from(e);
                self.shared
                    .counters
                    .handshake_failed(ServerKind::P2p, Direction::Outbound, &e);
                return Err(e);
            }
        };
        let peer = conn.info.peer_id;
        let shutting_down = self.shared.shutdown.is_cancelled();
        self.clone().run_connection(conn);
        if shutting_down {
            return Err(Error::ShuttingDown);
        }
        Ok(peer)
    }

    fn run_connection(self, conn: Connection) {
        let Connection {
            info,
            control,
            mut incoming,
        } = conn;
        let peer = info.peer_id;
        if self.shared.shutdown.is_cancelled() {
            // A dial or upgrade that was under way when shutdown began.
            let tasks = self.shared.tasks.clone();
            tasks.spawn(async move {
                self.goodbye(&control, DisconnectReason::ClientQuitting)
                    .await
            });
            return;
        }
        let active = Arc::new(AtomicUsize::new(0));
        let handle = ConnHandle {
            id: self.shared.peers.next_id(),
            control: control.clone(),
            active: active.clone(),
            sessions: Arc::default(),
        };
        let conn = handle.clone();
        let id = handle.id;
        let (conn_id, admission) =
            self.shared
                .peers
                .admit(peer, info.remote_addr, info.direction, handle, id);
        let replaced = match admission {
            Admission::New => false,
            Admission::Replaces(old) => {
                debug!(%peer, "simultaneous dial: the new connection wins");
                old.control.close();
                true
            }
            Admission::Duplicate => {
                debug!(%peer, "duplicate connection: keeping the existing one");
                control.close();
                return;
            }
            Admission::Refused(reason) => {
                debug!(%peer, ?reason, "refusing connection");
                let server = self.clone();
                tokio::spawn(async move { server.goodbye(&control, reason).await });
                return;
            }
        };
        if !replaced {
            info!(%peer, addr = %info.remote_addr, dir = %info.direction, "peer connected");
            self.emit(NetworkEvent::PeerConnected {
                peer,
                addr: info.remote_addr,
                direction: info.direction,
                server: ServerKind::P2p,
            });
        }
        let span =
            tracing::info_span!("conn", %peer, addr = %info.remote_addr, dir = %info.direction);
        let tasks = self.shared.tasks.clone();
        tasks.spawn(
            async move {
                if info.direction == Direction::Outbound {
                    self.open_sessions(&info, &conn);
                }
                let permits = Arc::new(Semaphore::new(MAX_NEGOTIATING_INBOUND));
                let config = &self.shared.config;
                // First ticks one period from now: awaiting an immediate first tick
                // would hold every new connection for a timer tick (~1 ms).
                let start = tokio::time::Instant::now();
                let mut keepalive =
                    tokio::time::interval_at(start + config.ping_interval, config.ping_interval);
                let mut idle_check = tokio::time::interval_at(
                    start + config.idle_timeout / 4,
                    config.idle_timeout / 4,
                );
                let mut idle_since = Instant::now();
                let shutdown = self.shared.shutdown.clone();
                let mut quitting = false;
                loop {
                    tokio::select! {
                        biased;
                        _ = control.closed() => break,
                        // Each connection says its own goodbye, so one admitted while
                        // shutdown began is not missed. Inbound streams are still served
                        // meanwhile: the peer may be saying goodbye to us at once.
                        _ = shutdown.cancelled(), if !quitting => {
                            quitting = true;
                            self.shared.peers.set_reason(&peer, DisconnectReason::ClientQuitting, false);
                            let server = self.clone();
                            let control = control.clone();
                            self.shared.tasks.spawn(async move {
                                server.goodbye(&control, DisconnectReason::ClientQuitting).await;
                            }.in_current_span());
                        }
                        _ = keepalive.tick(), if !quitting => {
                            let server = self.clone();
                            self.shared.tasks.spawn(async move { server.keepalive(peer).await }.in_current_span());
                        }
                        _ = idle_check.tick(), if !quitting => {
                            if active.load(Ordering::Relaxed) > 0 {
                                idle_since = Instant::now();
                            } else if idle_since.elapsed() >= config.idle_timeout {
                                info!("no open protocol stream: closing idle connection");
                                let server = self.clone();
                                tokio::spawn(async move {
                                    server.disconnect(&peer, DisconnectReason::DisconnectRequested).await;
                                });
                                idle_since = Instant::now();
                            }
                        }
                        stream = incoming.next() => match stream {
                            Some(stream) => {
                                // At the cap, wait: further streams queue in the bounded
                                // inbound queue, and beyond it the driver resets them.
                                let Ok(permit) = permits.clone().acquire_owned().await else {
                                    break;
                                };
                                let server = self.clone();
                                let info = info.clone();
                                let conn = conn.clone();
                                self.shared.tasks.spawn(async move {
                                    server.serve_inbound(info, stream, permit, conn).await;
                                }.in_current_span());
                            }
                            None => break,
                        },
                    }
                }
                control.close();
                if let Some(recorded) = self.shared.peers.remove(&peer, conn_id) {
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
            .instrument(span),
        );
    }

    /// The dialer opens every session protocol group as soon as the connection is up.
    fn open_sessions(&self, info: &ConnectionInfo, conn: &ConnHandle) {
        for group in self.shared.registrar.session_groups() {
            let ids: Vec<ProtocolId> = group.iter().map(|r| r.id.clone()).collect();
            let server = self.clone();
            let info = info.clone();
            let conn = conn.clone();
            self.shared.tasks.spawn(
                async move {
                    match server.negotiate_outbound(&conn.control, &ids).await {
                        Ok((io, id)) => {
                            server
                                .run_handler(&info, io, id, Direction::Outbound, &conn)
                                .await
                        }
                        Err(e) => {
                            debug!(error = %e, protocols = ?ids, "session protocol not opened")
                        }
                    }
                }
                .in_current_span(),
            );
        }
    }

    async fn negotiate_outbound(
        &self,
        control: &Control,
        ids: &[ProtocolId],
    ) -> Result<(BoxedRaw, ProtocolId), Error> {
        let timeout = self.shared.config.negotiation_timeout;
        let stream = control.open_stream().await?;
        let ids: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
        let (chosen, io) =
            tokio::time::timeout(timeout, dialer_select_proto(stream, ids, Version::V1))
                .await
                .map_err(|_| Error::Timeout("protocol negotiation"))?
                .map_err(|e| Error::Negotiation(e.to_string()))?;
        Ok((Box::pin(io), ProtocolId::new(&chosen)?))
    }

    async fn serve_inbound(
        &self,
        info: ConnectionInfo,
        stream: devmux_transport::Stream,
        permit: tokio::sync::OwnedSemaphorePermit,
        conn: ConnHandle,
    ) {
        let timeout = self.shared.config.negotiation_timeout;
        let negotiated = tokio::time::timeout(
            timeout,
            listener_select_proto(stream, self.shared.supported.iter()),
        )
        .await;
        drop(permit);
        let (id, io) = match negotiated {
            Ok(Ok((id, io))) => (id.clone(), io),
            Ok(Err(e)) => return debug!(error = %e, "inbound stream negotiation failed"),
            Err(_) => return debug!("inbound stream negotiation timed out"),
        };
        let span = tracing::debug_span!("stream", protocol = %id);
        async {
            match id.as_str() {
                PING_PROTOCOL => {
                    let _ = builtin::serve_ping(io).await;
                }
                IDENTIFY_PROTOCOL => {
                    let identify = self.identify_info(&info);
                    if let Err(e) = builtin::serve_identify(io, &identify).await {
                        debug!(error = %e, "identify not sent");
                    }
                }
                GOODBYE_PROTOCOL => {
                    match tokio::time::timeout(timeout, builtin::read_goodbye(io)).await {
                        Ok(Ok(reason)) => {
                            info!(?reason, "peer said goodbye");
                            self.shared.peers.set_reason(&info.peer_id, reason, true);
                        }
                        Ok(Err(e)) => debug!(error = %e, "bad goodbye"),
                        Err(_) => debug!("goodbye timed out"),
                    }
                    // The closer closes the connection; close it too in case it lingers.
                    if let Ok(control) = self.control(&info.peer_id) {
                        control.close();
                    }
                }
                other => {
                    if let Ok(id) = ProtocolId::new(other) {
                        self.run_handler(&info, Box::pin(io), id, Direction::Inbound, &conn)
                            .await;
                    }
                }
            }
        }
        .instrument(span)
        .await
    }

    fn identify_info(&self, info: &ConnectionInfo) -> IdentifyInfo {
        IdentifyInfo {
            public_key: self.shared.key.public_key(),
            protocol_version: builtin::PROTOCOL_VERSION.to_string(),
            agent_version: self.shared.config.agent_version.clone(),
            listen_addrs: vec![socket_multiaddr(self.shared.listen_addr)],
            observed_addr: Some(socket_multiaddr(info.remote_addr)),
            protocols: self.shared.supported.clone(),
        }
    }

    async fn run_handler(
        &self,
        info: &ConnectionInfo,
        io: BoxedRaw,
        id: ProtocolId,
        dir: Direction,
        conn: &ConnHandle,
    ) {
        let Some(registration) = self.shared.registrar.get(id.as_str()).cloned() else {
            return;
        };
        let Registration {
            handler,
            max_message_size,
            kind,
            group,
            ..
        } = registration;
        let is_session = matches!(kind, ProtocolKind::Session { .. });
        if is_session && !lock_sessions(conn).insert(group) {
            // A second session of the same protocol on one connection: refuse it, so
            // a peer cannot multiply handshakes and state by opening streams.
            debug!(protocol = %id, "session already open on this connection: stream reset");
            return;
        }
        self.shared.peers.add_protocol(&info.peer_id, &id);
        self.emit(NetworkEvent::StreamOpened {
            peer: info.peer_id,
            protocol: id.clone(),
            direction: dir,
        });
        debug!(protocol = %id, ?kind, "stream opened");
        let ctx = PeerCtx {
            peer_id: info.peer_id,
            remote_addr: info.remote_addr,
            direction: info.direction,
            protocol: id.clone(),
            server: ServerKind::P2p,
            ops: self.ops(),
            conn: conn.id,
        };
        let rules = self.stream_rules(info.peer_id, &id, max_message_size, &kind);
        let stream = MessageStream::from_raw(io, rules, Some(ActivityGuard::new(&conn.active)));
        let result = handler.call(ctx, stream).await;
        if let Err(e) = result {
            debug!(protocol = %id, error = %e, "handler ended with an error");
        }
        if is_session {
            // Closing a session stream ends that session (WIRE.md §1); the connection
            // stays for other protocols, and the session may be opened again.
            lock_sessions(conn).remove(&group);
            debug!(protocol = %id, "session ended");
        }
    }

    /// Opens a stream to `peer`, proposing `ids` in order.
    pub(crate) async fn open(
        &self,
        peer: &PeerId,
        ids: &[&str],
    ) -> Result<(MessageStream, ProtocolId), Error> {
        let ids = ids
            .iter()
            .map(|id| ProtocolId::new(id))
            .collect::<Result<Vec<_>, _>>()?;
        let handle = self.handle(peer)?;
        let (io, id) = self.negotiate_outbound(&handle.control, &ids).await?;
        let rules = match self.shared.registrar.get(id.as_str()) {
            Some(r) => self.stream_rules(*peer, &id, r.max_message_size, &r.kind),
            // Not ours to serve: the default cap, any code.
            None => self.stream_rules(*peer, &id, DEFAULT_MAX_MESSAGE_SIZE, &ProtocolKind::Request),
        };
        self.emit(NetworkEvent::StreamOpened {
            peer: *peer,
            protocol: id.clone(),
            direction: Direction::Outbound,
        });
        let activity = ActivityGuard::new(&handle.active);
        Ok((MessageStream::from_raw(io, rules, Some(activity)), id))
    }

    /// One keepalive round: a peer that does not answer a ping in time is
    /// disconnected with `PingTimeout`.
    async fn keepalive(&self, peer: PeerId) {
        match self.ping(&peer).await {
            Ok(_) => {}
            Err(Error::NotConnected(_)) | Err(Error::ShuttingDown) => {}
            Err(e) => {
                warn!(%peer, error = %e, "keepalive ping failed");
                self.disconnect(&peer, DisconnectReason::PingTimeout).await;
            }
        }
    }

    /// Pings `peer` once with libp2p ping.
    pub(crate) async fn ping(&self, peer: &PeerId) -> Result<Duration, Error> {
        let control = self.control(peer)?;
        let id = ProtocolId::new(PING_PROTOCOL)?;
        let (io, _) = self.negotiate_outbound(&control, &[id]).await?;
        tokio::time::timeout(self.shared.config.request_timeout, builtin::ping(io))
            .await
            .map_err(|_| Error::Timeout("ping"))?
    }

    /// Asks `peer` for its identify record.
    pub(crate) async fn identify(&self, peer: &PeerId) -> Result<IdentifyInfo, Error> {
        let control = self.control(peer)?;
        let id = ProtocolId::new(IDENTIFY_PROTOCOL)?;
        let (io, _) = self.negotiate_outbound(&control, &[id]).await?;
        tokio::time::timeout(
            self.shared.config.request_timeout,
            builtin::read_identify(io, peer),
        )
        .await
        .map_err(|_| Error::Timeout("identify"))?
    }

    pub(crate) fn stats(&self) -> &Arc<devmux_transport::IoStats> {
        self.shared.upgrader.stats()
    }

    pub(crate) fn table(&self) -> &dyn PeerIndex {
        &self.shared.peers
    }

    pub(crate) fn penalize(&self, peer: PeerId, penalty: Penalty, why: String) {
        if self
            .shared
            .peers
            .penalize(&peer, penalty, why, &self.shared.events)
        {
            let server = self.clone();
            tokio::spawn(async move {
                server
                    .disconnect(&peer, DisconnectReason::BreachOfProtocol)
                    .await
            });
        }
    }

    /// Says goodbye with `reason` and closes the connection.
    pub(crate) async fn disconnect(&self, peer: &PeerId, reason: DisconnectReason) {
        let Ok(control) = self.control(peer) else {
            return;
        };
        self.shared.peers.set_reason(peer, reason, false);
        self.goodbye(&control, reason).await;
    }

    /// Sends goodbye on `control`'s connection, then closes it.
    async fn goodbye(&self, control: &Control, reason: DisconnectReason) {
        let goodbye = async {
            let id = ProtocolId::new(GOODBYE_PROTOCOL)?;
            let (io, _) = self.negotiate_outbound(control, &[id]).await?;
            builtin::send_goodbye(io, reason, GOODBYE_LINGER).await
        };
        // A peer that does not know goodbye answers `na`: then we just close.
        let _ = tokio::time::timeout(GOODBYE_LINGER * 2, goodbye).await;
        control.close();
        let _ = tokio::time::timeout(GOODBYE_LINGER, control.closed()).await;
    }

    /// Stops accepting, says goodbye (ClientQuitting) to every peer, and waits a
    /// bounded time for connections to close.
    pub(crate) async fn shutdown(&self) {
        // Every connection's task sees this and says goodbye (ClientQuitting).
        self.shared.shutdown.cancel();
        self.shared.tasks.close();
        // A goodbye takes at most 3 × GOODBYE_LINGER (negotiate and send, then close).
        if tokio::time::timeout(GOODBYE_LINGER * 4, self.shared.tasks.wait())
            .await
            .is_err()
        {
            debug!("some tasks outlived shutdown");
        }
    }
}
