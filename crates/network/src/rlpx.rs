//! The legacy RLPx server (`use_p2p_server = false`), byte-compatible with
//! go-ethereum, reth and ethereumjs (WIRE.md §2).
//!
//! Every registered session protocol `/<name>/<version>/1.0.0` is offered as the
//! capability `<name>/<version>` in Hello; each shared capability reaches its
//! handler as a [`MessageStream`] whose codes are the capability's message ids
//! without their offset.
//!
//! Tasks per connection: the session task owns the reader (it routes capability
//! messages to handler channels, answers pings, sends keepalive pings and notices
//! missed pongs); a writer task owns the writer and drains two bounded queues,
//! control (ping, pong, disconnect) before capability messages; one task per
//! handler.

use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use devmux_identity::{Enode, NodeId, NodeKey, PeerId};
use devmux_rlpx::{
    secp256k1::{Keypair, SECP256K1},
    Capability, EciesStream, Established, Incoming, SessionConfig, SessionWriter,
};
use devmux_transport::{Counted, IoStats};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn, Instrument};

use crate::counters::Counters;
use crate::message::{InboundFrame, MessageStream, OutboundFrame, SessionClose};
use crate::peers::{Admission, PeerIndex, PeerTable};
use crate::pool::PeerPool;
use crate::registrar::{PeerOps, ProtocolKind, Registration};
use crate::{
    Direction, DisconnectReason, Error, Message, NetworkConfig, NetworkEvent, PeerCtx, Penalty,
    ProtocolId, Registrar, ServerKind,
};

/// Messages queued per capability before the session task waits for the handler.
const HANDLER_QUEUE: usize = 64;
/// Bytes queued per capability before the session task waits for the handler (and
/// stops reading the socket): what a peer can make us buffer for a slow handler,
/// as the yamux receive window bounds it on the stream stack. One message larger
/// than this still passes, alone.
const HANDLER_QUEUE_BYTES: usize = 16 * 1024 * 1024;
/// Capability messages queued for the writer before handlers wait.
const WRITER_QUEUE: usize = 64;
/// How long after our Disconnect we wait for the peer to close.
const DISCONNECT_GRACE: Duration = Duration::from_secs(1);

/// What the writer task is asked to do besides capability messages.
#[derive(Debug)]
enum Control {
    Ping,
    Pong,
    Disconnect(DisconnectReason),
}

/// The handle other tasks hold on one RLPx session.
#[derive(Clone)]
struct SessionHandle {
    /// The peer table's id of this session's connection.
    id: u64,
    control: mpsc::Sender<Control>,
    /// Cancelled to end the session at once.
    closed: CancellationToken,
}

struct RlpxShared {
    key: NodeKey,
    secret: Keypair,
    registrar: Registrar,
    config: NetworkConfig,
    session: SessionConfig,
    listen_addr: SocketAddr,
    peers: PeerTable<SessionHandle>,
    events: broadcast::Sender<NetworkEvent>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    pending: Arc<Semaphore>,
    stats: Arc<IoStats>,
    counters: Arc<Counters>,
}

/// The RLPx server. Cheap to clone.
#[derive(Clone)]
pub(crate) struct RlpxServer {
    shared: Arc<RlpxShared>,
}

struct Ops(Weak<RlpxShared>);

impl PeerOps for Ops {
    fn disconnect(&self, peer: PeerId, conn: u64, reason: DisconnectReason) {
        if let Some(shared) = self.0.upgrade() {
            // Queued at once: a handler may return right after asking, and its
            // reason still goes out first.
            let server = RlpxServer { shared };
            if let Some(handle) = server.shared.peers.handle_of(&peer, conn) {
                server.close_with(&peer, &handle, reason);
            }
        }
    }

    fn is_current(&self, peer: PeerId, conn: u64) -> bool {
        self.0
            .upgrade()
            .is_some_and(|shared| shared.peers.handle_of(&peer, conn).is_some())
    }

    fn penalize(&self, peer: PeerId, penalty: Penalty, why: String) {
        if let Some(shared) = self.0.upgrade() {
            RlpxServer { shared }.penalize(peer, penalty, why);
        }
    }
}

/// Refuses a registrar with a protocol RLPx cannot serve ([`Error::Unservable`]).
pub(crate) fn check_servable(registrar: &Registrar) -> Result<(), Error> {
    for r in &registrar.entries {
        let why = match (r.kind, r.id.capability()) {
            (ProtocolKind::Session { .. }, Some(_)) => continue,
            (ProtocolKind::Session { .. }, None) => {
                "a session id must have the form /<name>/<version>/1.0.0 (name: up to 8 \
                 lowercase letters or digits) to be a capability"
            }
            (ProtocolKind::Request, _) => {
                "request protocols need the stream stack (RLPx has no per-request streams)"
            }
        };
        return Err(Error::Unservable {
            id: r.id.clone(),
            server: ServerKind::Rlpx,
            why,
        });
    }
    Ok(())
}

/// The capabilities a registrar offers on RLPx: its session protocols whose ids
/// have the capability form.
fn capabilities(registrar: &Registrar) -> Vec<Capability> {
    registrar
        .entries
        .iter()
        .filter_map(|r| match (r.kind, r.id.capability()) {
            (ProtocolKind::Session { message_count }, Some((name, version))) => {
                Some(Capability::new(name, version, message_count))
            }
            _ => None,
        })
        .collect()
}

impl RlpxServer {
    pub(crate) async fn start(
        config: NetworkConfig,
        key: NodeKey,
        registrar: Registrar,
        events: broadcast::Sender<NetworkEvent>,
        pool: Arc<PeerPool>,
        counters: Arc<Counters>,
    ) -> Result<Self, Error> {
        let secret = Keypair::from_seckey_slice(SECP256K1, &key.secret_bytes())
            .map_err(|_| Error::Identity(devmux_identity::Error::InvalidSecretKey))?;
        let tcp = TcpListener::bind(config.listen_addr).await?;
        let listen_addr = tcp.local_addr()?;
        let mut session = SessionConfig::new(config.agent_version.clone())
            .with_listen_port(listen_addr.port())
            .with_max_message_size(crate::message::DEFAULT_MAX_MESSAGE_SIZE);
        for cap in capabilities(&registrar) {
            session = session.with_capability(cap);
        }
        let shared = Arc::new(RlpxShared {
            peers: PeerTable::new(key.peer_id(), ServerKind::Rlpx, pool),
            pending: Arc::new(Semaphore::new(config.transport.max_concurrent_upgrades)),
            stats: Arc::default(),
            key,
            secret,
            registrar,
            session,
            listen_addr,
            events,
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            config,
            counters,
        });
        let server = Self { shared };
        let accept = server.clone();
        server
            .shared
            .tasks
            .spawn(async move { accept.accept_loop(tcp).await });
        info!(enode = %server.local_enode(), "RLPx server listening");
        Ok(server)
    }

    async fn accept_loop(self, tcp: TcpListener) {
        let token = self.shared.shutdown.clone();
        loop {
            let (socket, remote) = tokio::select! {
                _ = token.cancelled() => return,
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
            let Ok(permit) = self.shared.pending.clone().try_acquire_owned() else {
                debug!(%remote, "too many pending handshakes: dropping connection");
                self.shared.counters.handshake_refused(
                    ServerKind::Rlpx,
                    Direction::Inbound,
                    "busy",
                );
                continue;
            };
            let server = self.clone();
            self.shared.tasks.spawn(
                async move {
                    let result = server.handshake_inbound(socket).await;
                    drop(permit);
                    match result {
                        Ok(session) => server.run_session(session, remote, Direction::Inbound),
                        Err(e) => {
                            debug!(error = %e, "inbound handshake failed");
                            server.shared.counters.handshake_failed(
                                ServerKind::Rlpx,
                                Direction::Inbound,
                                &e,
                            );
                        }
                    }
                }
                .instrument(tracing::debug_span!("rlpx-handshake", %remote)),
            );
        }
    }

    pub(crate) fn local_peer_id(&self) -> PeerId {
        self.shared.key.peer_id()
    }

    pub(crate) fn listen_addr(&self) -> SocketAddr {
        self.shared.listen_addr
    }

    pub(crate) fn local_enode(&self) -> Enode {
        Enode::new(self.shared.key.node_id(), self.shared.listen_addr)
    }

    fn step_timeout(&self) -> Duration {
        self.shared.config.transport.handshake_timeout
    }

    async fn timed<T>(
        &self,
        what: &'static str,
        fut: impl std::future::Future<Output = Result<T, devmux_rlpx::Error>>,
    ) -> Result<T, Error> {
        tokio::time::timeout(self.step_timeout(), fut)
            .await
            .map_err(|_| Error::Timeout(what))?
            .map_err(Error::Rlpx)
    }

    /// Refuses, after ECIES, a peer we would not keep (already connected, full).
    async fn admission_check(
        &self,
        ecies: EciesStream<Counted<TcpStream>>,
        addr: SocketAddr,
        direction: Direction,
    ) -> Result<EciesStream<Counted<TcpStream>>, Error> {
        let peer = NodeId(*ecies.remote_id()).to_peer_id()?;
        if let Err(reason) = self.shared.peers.would_admit(&peer, addr, direction) {
            let _ = tokio::time::timeout(self.step_timeout(), ecies.disconnect(reason)).await;
            return Err(Error::Refused(reason));
        }
        Ok(ecies)
    }

    async fn handshake_inbound(
        &self,
        tcp: TcpStream,
    ) -> Result<Established<Counted<TcpStream>>, Error> {
        let _ = tcp.set_nodelay(true);
        let addr = tcp.peer_addr()?;
        let started = std::time::Instant::now();
        let tcp = Counted::new(tcp, self.shared.stats.clone());
        let ecies = self
            .timed(
                "ECIES handshake",
                EciesStream::accept(tcp, &self.shared.secret),
            )
            .await?;
        let ecies = self
            .admission_check(ecies, addr, Direction::Inbound)
            .await?;
        let session = self
            .timed("Hello", ecies.exchange_hello(&self.shared.session))
            .await?;
        self.shared.stats.record_handshake(started.elapsed());
        Ok(session)
    }

    /// Dials `enode` and returns the peer's id once the session is up. Returns at
    /// once if the node is already connected.
    pub(crate) async fn dial(&self, enode: &Enode) -> Result<PeerId, Error> {
        let peer = enode.id.to_peer_id()?;
        if self.shared.peers.contains(&peer) {
            return Ok(peer);
        }
        if self.shared.shutdown.is_cancelled() {
            return Err(Error::ShuttingDown);
        }
        if peer == self.local_peer_id() {
            return Err(Error::Refused(DisconnectReason::ConnectedToSelf));
        }
        let tcp = tokio::time::timeout(self.step_timeout(), TcpStream::connect(enode.addr))
            .await
            .map_err(|_| Error::Timeout("TCP connect"))??;
        let _ = tcp.set_nodelay(true);
        let started = std::time::Instant::now();
        let tcp = Counted::new(tcp, self.shared.stats.clone());
        let handshake = async {
            let ecies = self
                .timed(
                    "ECIES handshake",
                    EciesStream::connect(tcp, &self.shared.secret, &enode.id.0),
                )
                .await?;
            let ecies = self
                .admission_check(ecies, enode.addr, Direction::Outbound)
                .await?;
            self.timed("Hello", ecies.exchange_hello(&self.shared.session))
                .await
        };
        let session = match handshake.await {
            Ok(session) => session,
            Err(e) => {
                self.shared
                    .counters
                    .handshake_failed(ServerKind::Rlpx, Direction::Outbound, &e);
                return Err(e);
            }
        };
        self.shared.stats.record_handshake(started.elapsed());
        self.run_session(session, enode.addr, Direction::Outbound);
        Ok(peer)
    }

    fn emit(&self, event: NetworkEvent) {
        let _ = self.shared.events.send(event);
    }

    fn run_session(
        &self,
        session: Established<Counted<TcpStream>>,
        remote_addr: SocketAddr,
        direction: Direction,
    ) {
        let peer = match NodeId(*session.remote_id()).to_peer_id() {
            Ok(peer) => peer,
            Err(e) => return debug!(error = %e, "remote id is not a valid key"),
        };
        let (control_tx, control_rx) = mpsc::channel(8);
        let handle = SessionHandle {
            id: self.shared.peers.next_id(),
            control: control_tx,
            closed: CancellationToken::new(),
        };
        let conn_id = handle.id;
        let (conn_id, admission) =
            self.shared
                .peers
                .admit(peer, remote_addr, direction, handle.clone(), conn_id);
        let server = self.clone();
        let span = tracing::info_span!("conn", %peer, addr = %remote_addr, dir = %direction);
        self.shared.tasks.spawn(
            async move {
                let replaces = matches!(admission, Admission::Replaces(_));
                let refuse = match admission {
                    Admission::New => None,
                    Admission::Replaces(old) => {
                        debug!("simultaneous dial: the new connection wins");
                        let _ = old
                            .control
                            .try_send(Control::Disconnect(DisconnectReason::AlreadyConnected));
                        None
                    }
                    Admission::Duplicate => Some(DisconnectReason::AlreadyConnected),
                    Admission::Refused(reason) => Some(reason),
                };
                if let Some(reason) = refuse {
                    debug!(?reason, "refusing session");
                    let _ =
                        tokio::time::timeout(DISCONNECT_GRACE, session.disconnect(reason)).await;
                    return;
                }
                if !replaces {
                    info!("peer connected");
                    server.emit(NetworkEvent::PeerConnected {
                        peer,
                        addr: remote_addr,
                        direction,
                        server: ServerKind::Rlpx,
                    });
                }
                server
                    .drive_session(session, peer, remote_addr, direction, handle, control_rx)
                    .await;
                if let Some(recorded) = server.shared.peers.remove(&peer, conn_id) {
                    let (reason, by_remote) = match recorded {
                        Some((r, remote)) => (Some(r), remote),
                        None => (None, false),
                    };
                    info!(?reason, by_remote, "peer disconnected");
                    server.emit(NetworkEvent::PeerDisconnected {
                        peer,
                        reason,
                        by_remote,
                    });
                }
            }
            .instrument(span),
        );
    }

    async fn drive_session(
        &self,
        session: Established<Counted<TcpStream>>,
        peer: PeerId,
        remote_addr: SocketAddr,
        direction: Direction,
        handle: SessionHandle,
        control_rx: mpsc::Receiver<Control>,
    ) {
        let shared_caps = session.shared_capabilities().clone();
        let (mut reader, writer) = session.split_with(Counted::into_split);
        let (frames_tx, frames_rx) = mpsc::channel::<OutboundFrame>(WRITER_QUEUE);

        // One handler per shared capability.
        let mut routes: Vec<Option<(mpsc::Sender<InboundFrame>, Arc<Semaphore>)>> = Vec::new();
        let handlers = TaskTracker::new();
        let registrations: Vec<Option<Registration>> = shared_caps
            .iter()
            .map(|cap| {
                ProtocolId::from_capability(&cap.name, cap.version)
                    .ok()
                    .and_then(|id| self.shared.registrar.get(id.as_str()).cloned())
            })
            .collect();
        let ops: Arc<dyn PeerOps> = Arc::new(Ops(Arc::downgrade(&self.shared)));
        let session_close = Arc::new(SessionClose::new(
            registrations.iter().flatten().count(),
            ops.clone(),
            peer,
            handle.id,
        ));
        for ((slot, cap), registration) in shared_caps.iter().enumerate().zip(registrations) {
            let Some(Registration {
                id,
                handler,
                max_message_size,
                ..
            }) = registration
            else {
                routes.push(None);
                continue;
            };
            let (tx, rx) = mpsc::channel(HANDLER_QUEUE);
            routes.push(Some((tx, Arc::new(Semaphore::new(HANDLER_QUEUE_BYTES)))));
            let stream = MessageStream::from_channels(
                rx,
                frames_tx.clone(),
                slot,
                cap.message_count,
                max_message_size,
                Some(session_close.clone()),
                Some(self.shared.counters.protocol(id.as_str())),
            );
            self.shared.peers.add_protocol(&peer, &id);
            self.emit(NetworkEvent::StreamOpened {
                peer,
                protocol: id.clone(),
                direction,
            });
            let ctx = PeerCtx {
                peer_id: peer,
                remote_addr,
                direction,
                protocol: id.clone(),
                server: ServerKind::Rlpx,
                ops: ops.clone(),
                conn: handle.id,
            };
            handlers.spawn(
                async move {
                    if let Err(e) = handler.call(ctx, stream).await {
                        debug!(error = %e, "handler ended with an error");
                    }
                }
                .instrument(tracing::debug_span!("stream", protocol = %id)),
            );
        }
        handlers.close();
        drop(frames_tx);

        let writer_task = tokio::spawn(
            write_loop(writer, control_rx, frames_rx, handle.closed.clone()).in_current_span(),
        );

        // First tick one period from now: awaiting an immediate first tick would hold
        // every new session for a timer tick (~1 ms).
        let period = self.shared.config.rlpx_ping_interval;
        let mut keepalive = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut awaiting_pong = false;
        // Set once we queued a Disconnect: the writer then ends the session itself.
        let mut closing = false;
        // Whether the reader may still be read while the peer takes in our Disconnect
        // (not after a read error: the reader is done then).
        let mut readable = true;
        let shutdown = self.shared.shutdown.clone();
        loop {
            tokio::select! {
                _ = handle.closed.cancelled() => break,
                _ = handlers.wait() => {
                    // No capability left to serve: the connection is useless now.
                    debug!("all handlers ended");
                    self.close_with(&peer, &handle, DisconnectReason::DisconnectRequested);
                    closing = true;
                    break;
                }
                _ = keepalive.tick() => {
                    if awaiting_pong {
                        warn!("no pong within the ping interval");
                        self.close_with(&peer, &handle, DisconnectReason::PingTimeout);
                        closing = true;
                        break;
                    }
                    awaiting_pong = true;
                    if handle.control.try_send(Control::Ping).is_err() {
                        break;
                    }
                }
                _ = shutdown.cancelled() => {
                    self.close_with(&peer, &handle, DisconnectReason::ClientQuitting);
                    closing = true;
                    break;
                }
                incoming = reader.recv() => match incoming {
                    Ok(Incoming::Ping) => {
                        let _ = handle.control.try_send(Control::Pong);
                    }
                    Ok(Incoming::Pong) => awaiting_pong = false,
                    Ok(Incoming::Disconnect(reason)) => {
                        info!(?reason, "peer disconnected us");
                        if let Some(reason) = reason {
                            self.shared.peers.set_reason(&peer, reason, true);
                        }
                        break;
                    }
                    Ok(Incoming::Capability { index, id, payload }) => {
                        // A handler that is gone has ended its protocol: drop its messages.
                        if let Some(Some((tx, budget))) = routes.get(index) {
                            let (tx, budget) = (tx.clone(), budget.clone());
                            // Bounded by HANDLER_QUEUE_BYTES, which fits in u32.
                            let cost = payload.len().min(HANDLER_QUEUE_BYTES) as u32;
                            let queue = async move {
                                match budget.acquire_many_owned(cost).await {
                                    Ok(permit) => {
                                        let frame = InboundFrame {
                                            msg: Message { code: id, payload },
                                            _budget: permit,
                                        };
                                        tx.send(frame).await.is_ok()
                                    }
                                    Err(_) => false, // Never closed.
                                }
                            };
                            // A handler that stopped taking messages must not keep the
                            // session from ending.
                            tokio::select! {
                                delivered = queue => {
                                    if !delivered {
                                        routes[index] = None;
                                    }
                                }
                                _ = handle.closed.cancelled() => break,
                                _ = shutdown.cancelled() => {
                                    self.close_with(&peer, &handle, DisconnectReason::ClientQuitting);
                                    closing = true;
                                    break;
                                }
                            }
                        }
                    }
                    Err(e) => {
                        debug!(error = %e, "session read failed");
                        if e.is_peer_fault() {
                            self.penalize(peer, Penalty::Major, e.to_string());
                        }
                        readable = false;
                        if let Some(reason) = e.disconnect_reason() {
                            self.close_with(&peer, &handle, reason);
                            closing = true;
                        }
                        break;
                    }
                },
            }
        }
        // Handlers see their streams end. A queued Disconnect is the writer's to
        // send; otherwise there is nothing left to write.
        drop(routes);
        if closing && readable {
            // Our Disconnect is queued: a peer that reads it closes the socket, and
            // seeing that here ends the session without sitting out the grace.
            let _ = tokio::time::timeout(DISCONNECT_GRACE, async {
                while reader.recv().await.is_ok() {}
            })
            .await;
        }
        if !closing || readable {
            // Nothing (more) to wait for: the writer stops, after its Disconnect if
            // one is queued.
            handle.closed.cancel();
        }
        let mut writer_task = writer_task;
        if tokio::time::timeout(DISCONNECT_GRACE * 2, &mut writer_task)
            .await
            .is_err()
        {
            // Stuck writing to a peer that does not read: dropping the handle would
            // leave the task and its socket behind.
            writer_task.abort();
        }
        handle.closed.cancel();
        let _ = tokio::time::timeout(DISCONNECT_GRACE, handlers.wait()).await;
    }

    /// Records `reason` and asks the writer to send it.
    fn close_with(&self, peer: &PeerId, handle: &SessionHandle, reason: DisconnectReason) {
        self.shared.peers.set_reason(peer, reason, false);
        if handle
            .control
            .try_send(Control::Disconnect(reason))
            .is_err()
        {
            handle.closed.cancel();
        }
    }

    pub(crate) fn stats(&self) -> &Arc<IoStats> {
        &self.shared.stats
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
            if let Some(handle) = self.shared.peers.handle(&peer) {
                self.close_with(&peer, &handle, DisconnectReason::BreachOfProtocol);
            }
        }
    }

    /// Sends Disconnect with `reason` and waits (bounded) for the session to end.
    pub(crate) async fn disconnect(&self, peer: &PeerId, reason: DisconnectReason) {
        let Some(handle) = self.shared.peers.handle(peer) else {
            return;
        };
        self.close_with(peer, &handle, reason);
        let _ = tokio::time::timeout(DISCONNECT_GRACE * 3, async {
            while self.shared.peers.contains(peer) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
    }

    /// Stops accepting, sends `ClientQuitting` to every peer, and waits a bounded time.
    pub(crate) async fn shutdown(&self) {
        self.shared.shutdown.cancel();
        self.shared.tasks.close();
        if tokio::time::timeout(DISCONNECT_GRACE * 4, self.shared.tasks.wait())
            .await
            .is_err()
        {
            debug!("some sessions outlived shutdown");
            for peer in self.shared.peers.ids() {
                if let Some(handle) = self.shared.peers.handle(&peer) {
                    handle.closed.cancel();
                }
            }
        }
    }
}

/// The writer task: control messages first, capability messages batched.
async fn write_loop(
    mut writer: SessionWriter<Counted<OwnedWriteHalf>>,
    mut control: mpsc::Receiver<Control>,
    mut frames: mpsc::Receiver<OutboundFrame>,
    closed: CancellationToken,
) {
    let result: Result<(), devmux_rlpx::Error> = async {
        let mut frames_open = true;
        loop {
            tokio::select! {
                biased;
                _ = closed.cancelled() => return Ok(()),
                cmd = control.recv() => match cmd {
                    Some(Control::Ping) => writer.ping().await?,
                    Some(Control::Pong) => writer.pong().await?,
                    Some(Control::Disconnect(reason)) => {
                        // Whatever handlers queued goes out before the Disconnect.
                        while let Ok(f) = frames.try_recv() {
                            writer.feed_capability(f.slot, f.msg.code, &f.msg.payload).await?;
                        }
                        writer.disconnect(reason).await?;
                        // Give the peer a moment to read it and close first.
                        tokio::select! {
                            _ = closed.cancelled() => {}
                            _ = tokio::time::sleep(DISCONNECT_GRACE) => {}
                        }
                        return Ok(());
                    }
                    None => return Ok(()),
                },
                frame = frames.recv(), if frames_open => match frame {
                    Some(f) => {
                        writer.feed_capability(f.slot, f.msg.code, &f.msg.payload).await?;
                        // Batch whatever else is queued into the same flush.
                        while let Ok(f) = frames.try_recv() {
                            writer.feed_capability(f.slot, f.msg.code, &f.msg.payload).await?;
                        }
                        writer.flush().await?;
                    }
                    // Every handler is done writing; keep serving control messages.
                    None => frames_open = false,
                },
            }
        }
    }
    .await;
    if let Err(e) = result {
        debug!(error = %e, "session write failed");
    }
    closed.cancel();
}
