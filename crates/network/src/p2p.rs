//! The stream-stack carrier: libp2p-compatible TCP → Noise → Yamux connections
//! (`devmux_transport`), every stream negotiated with multistream-select and
//! routed to the registrar, beside the built-in libp2p ping and identify and
//! devmux goodbye.
//!
//! Tasks per connection: one yamux driver (in the transport), the connection's
//! task (here: it routes inbound streams, pings, closes idle connections), and
//! one task per stream.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use devmux_identity::{peer_multiaddr, socket_multiaddr, Multiaddr, PeerId};
use devmux_transport::{
    Connection, ConnectionInfo, Control, Direction, RejectionBudget, RejectionLimited, Upgrader,
};
use futures::io::{AsyncRead, AsyncWrite};
use multistream_select::{dialer_select_proto, listener_select_proto, NegotiationError, Version};
use tokio::sync::Semaphore;
// tokio's clock: std's in production, the simulated one in a simulation.
use tokio::time::Instant;
use tracing::{debug, info, warn, Instrument};

use crate::builtin::{self, IdentifyInfo, GOODBYE_PROTOCOL, IDENTIFY_PROTOCOL, PING_PROTOCOL};
use crate::carrier::{Carrier, Remote};
use crate::message::{
    ActivityGuard, BoxedRaw, FaultReport, MessageStream, StreamRules, DEFAULT_MAX_MESSAGE_SIZE,
};
use crate::net::{Net, Stream};
use crate::peers::Liveness;
use crate::registrar::{ProtocolKind, Registration};
use crate::supervisor::{Link, Supervisor};
use crate::{DisconnectReason, Error, NetworkEvent, PeerCtx, Penalty, ProtocolId, ServerKind};

/// How long a goodbye waits for the peer to close its side (WIRE.md §1).
const GOODBYE_LINGER: Duration = Duration::from_secs(1);
/// Inbound streams negotiating at once on one connection; more are reset.
const MAX_NEGOTIATING_INBOUND: usize = 16;

/// What the supervisor holds per stream-stack connection.
#[derive(Clone)]
pub(crate) struct ConnHandle {
    /// The peer table's id of this connection.
    pub(crate) id: u64,
    pub(crate) control: Control,
    /// Open protocol streams (registrar handlers and streams from `open`).
    active: Arc<AtomicUsize>,
    /// Session groups with a running handler: one session per group per connection.
    sessions: Arc<std::sync::Mutex<std::collections::HashSet<usize>>>,
    /// The keepalive's record.
    liveness: Arc<Liveness>,
    /// Our outbound libp2p ping stream, kept open between pings as rust-libp2p does:
    /// a ping is then one small frame each way, not a stream opened and negotiated
    /// per ping (at 10 000 connections, the difference is most of an idle node's CPU).
    ping: Arc<tokio::sync::Mutex<Option<BoxedRaw>>>,
    /// The `na`s this connection may still cost us, shared by every inbound stream's
    /// negotiation (and already charged for the upgrade's): once spent, the
    /// connection is closed.
    rejections: RejectionBudget,
}

fn lock_sessions(conn: &ConnHandle) -> std::sync::MutexGuard<'_, std::collections::HashSet<usize>> {
    conn.sessions.lock().unwrap_or_else(|p| p.into_inner())
}

/// An inbound stream on its way to its task, boxed: an async fn keeps its arguments
/// for as long as it runs, so one pointer is kept for the stream's lifetime rather
/// than the connection's details twice.
struct Inbound {
    info: Arc<ConnectionInfo>,
    stream: devmux_transport::Stream,
    permit: tokio::sync::OwnedSemaphorePermit,
    conn: ConnHandle,
}

/// The stream-stack carrier.
pub(crate) struct P2pCarrier {
    sup: Arc<Supervisor>,
    upgrader: Upgrader,
    /// The network its sockets are on (TCP, or a simulated one).
    net: Net,
    listen_addr: SocketAddr,
    /// Every protocol id we answer: the registrar's and the built-in ones.
    supported: Vec<String>,
}

impl P2pCarrier {
    /// Binds `addr` on `net` and starts accepting under `sup`.
    pub(crate) async fn start(
        sup: Arc<Supervisor>,
        addr: SocketAddr,
        net: Net,
    ) -> Result<Arc<Self>, Error> {
        let mut transport = sup.config.transport.clone();
        transport.bind_ip = transport.bind_ip.or(Some(addr.ip()));
        let upgrader = Upgrader::new(sup.key.clone(), transport)?;
        let tcp = net.bind(addr).await?;
        let listen_addr = tcp.local_addr()?;
        let mut supported: Vec<String> = sup.registrar.ids().map(|id| id.to_string()).collect();
        supported.extend(builtin::BUILTIN_IDS.iter().map(|s| s.to_string()));
        let carrier = Arc::new(Self {
            sup: sup.clone(),
            upgrader,
            net,
            listen_addr,
            supported,
        });
        sup.listen(carrier.clone(), tcp);
        info!(addr = %carrier.local_multiaddr(), "stream stack listening");
        Ok(carrier)
    }

    pub(crate) fn local_multiaddr(&self) -> Multiaddr {
        peer_multiaddr(self.listen_addr, &self.sup.key.peer_id())
    }

    /// What a stream of protocol `id` to `peer` enforces: the protocol's size cap, a
    /// session protocol's message count, and framing faults reported to the supervisor.
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
                ops: self.sup.ops(),
                peer,
                protocol: id.to_string(),
            }),
            counter: Some(self.sup.counters.protocol(id.as_str())),
        }
    }

    /// `peer`'s stream-stack connection.
    fn handle(&self, peer: &PeerId, what: &'static str) -> Result<ConnHandle, Error> {
        match self.sup.peers.handle(peer) {
            Some(Link::P2p(conn)) => Ok(conn),
            Some(Link::Rlpx { .. }) => Err(Error::Unsupported(what)),
            None => Err(Error::NotConnected(*peer)),
        }
    }

    /// The connection's task: routes inbound streams, pings, closes it when idle and
    /// says goodbye at shutdown.
    async fn run_connection(self: Arc<Self>, conn: Box<Connection>, handle: ConnHandle) {
        let Connection {
            info,
            control,
            mut incoming,
            // Shared through `handle`.
            rejections: _,
        } = *conn;
        // Shared by every stream's task (it is a quarter KiB).
        let info = Arc::new(info);
        let peer = info.peer_id;
        let id = handle.id;
        if info.direction == Direction::Outbound {
            self.open_sessions(&info, &handle);
        }
        let permits = Arc::new(Semaphore::new(MAX_NEGOTIATING_INBOUND));
        let config = &self.sup.config;
        // First ticks one period from now (awaiting an immediate first tick would hold
        // every new connection for a timer tick), on the supervisor's grid.
        let mut keepalive = self.sup.timers.interval(config.ping_interval);
        let mut idle_check = self.sup.timers.interval(config.idle_timeout / 4);
        let mut idle_since = Instant::now();
        let shutdown = self.sup.shutdown.clone();
        let mut quitting = false;
        // The keepalive's ping in flight, polled by this task rather than spawned: a
        // task of its own would stay allocated after it ended, held by the waker it
        // left on the kept ping stream, until the next ping replaced it.
        let mut pinging: Option<Pin<Box<dyn Future<Output = ()> + Send>>> = None;
        loop {
            tokio::select! {
                biased;
                _ = control.closed() => break,
                // Each connection says its own goodbye, so one admitted while shutdown
                // began is not missed. Inbound streams are still served meanwhile: the
                // peer may be saying goodbye to us at once.
                _ = shutdown.cancelled(), if !quitting => {
                    quitting = true;
                    self.sup.close(&peer, id, DisconnectReason::ClientQuitting);
                }
                _ = keepalive.tick(), if !quitting => {
                    // A ping still within its deadline is not doubled; it counts.
                    if pinging.is_none() {
                        let carrier = self.clone();
                        let handle = handle.clone();
                        pinging = Some(Box::pin(async move {
                            carrier.keepalive(peer, handle).await
                        }));
                    }
                }
                _ = async { if let Some(ping) = pinging.as_mut() { ping.await } },
                    if pinging.is_some() => pinging = None,
                _ = idle_check.tick(), if !quitting => {
                    if handle.active.load(Ordering::Relaxed) > 0 {
                        idle_since = Instant::now();
                    } else if idle_since.elapsed() >= config.idle_timeout {
                        info!("no open protocol stream: closing idle connection");
                        self.sup.close(&peer, id, DisconnectReason::DisconnectRequested);
                        idle_since = Instant::now();
                    }
                }
                stream = incoming.next() => match stream {
                    Some(stream) => {
                        // At the cap, wait: further streams queue in the bounded inbound
                        // queue, and beyond it the driver resets them.
                        let Ok(permit) = permits.clone().acquire_owned().await else {
                            break;
                        };
                        // The task is the method's future itself: a wrapping block would
                        // keep a second copy of its arguments for the stream's lifetime.
                        let inbound = Box::new(Inbound {
                            info: info.clone(),
                            stream,
                            permit,
                            conn: handle.clone(),
                        });
                        self.sup.tasks.spawn(
                            self.clone().serve_inbound(inbound).in_current_span(),
                        );
                    }
                    None => break,
                },
            }
        }
        control.close();
    }

    /// The dialer opens every session protocol group as soon as the connection is up.
    fn open_sessions(self: &Arc<Self>, info: &Arc<ConnectionInfo>, conn: &ConnHandle) {
        for group in self.sup.registrar.session_groups() {
            let ids: Vec<ProtocolId> = group.iter().map(|r| r.id.clone()).collect();
            let carrier = self.clone();
            let info = info.clone();
            let conn = conn.clone();
            self.sup.tasks.spawn(
                async move {
                    match Box::pin(carrier.negotiate_outbound(&conn.control, &ids)).await {
                        Ok((io, id)) => {
                            carrier
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
        negotiate(control, ids, self.sup.config.negotiation_timeout).await
    }

    /// Negotiates an inbound stream and serves it: a built-in protocol here, any
    /// other by its registrar handler.
    async fn serve_inbound(self: Arc<Self>, inbound: Box<Inbound>) {
        let Inbound {
            info,
            stream,
            permit,
            conn,
        } = *inbound;
        let timeout = self.sup.config.negotiation_timeout;
        // Bounded: at most `max_rejected_proposals` `na`s on this stream, and the
        // connection's budget across all of them (see `devmux_transport::negotiation`).
        let stream = RejectionLimited::new(
            stream,
            self.sup.config.transport.max_rejected_proposals,
            conn.rejections.clone(),
        );
        // Boxed, and in a block of its own: a task's future is as large as its largest
        // state, and this task lasts as long as the session, so neither the
        // negotiation nor its result stays in it (about 2 KiB per held session).
        let (id, io) = {
            let negotiated = Box::pin(tokio::time::timeout(
                timeout,
                listener_select_proto(stream, self.supported.iter()),
            ))
            .await;
            drop(permit);
            match negotiated {
                Ok(Ok((id, io))) => (id.clone(), io),
                Ok(Err(e)) => return self.inbound_negotiation_failed(&info, &conn, e),
                Err(_) => return debug!("inbound stream negotiation timed out"),
            }
        };
        let span = tracing::debug_span!("stream", protocol = %id);
        if builtin::BUILTIN_IDS.contains(&id.as_str()) {
            Box::pin(self.serve_builtin(&info, &conn, &id, io))
                .instrument(span)
                .await
        } else if let Ok(id) = ProtocolId::new(&id) {
            self.run_handler(&info, Box::pin(io), id, Direction::Inbound, &conn)
                .instrument(span)
                .await
        }
    }

    /// Serves libp2p ping and identify and devmux goodbye on a negotiated stream.
    async fn serve_builtin<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        info: &ConnectionInfo,
        conn: &ConnHandle,
        id: &str,
        io: S,
    ) {
        match id {
            PING_PROTOCOL => {
                let _ = builtin::serve_ping(io).await;
            }
            IDENTIFY_PROTOCOL => {
                let identify = self.identify_info(info);
                if let Err(e) = builtin::serve_identify(io, &identify).await {
                    debug!(error = %e, "identify not sent");
                }
            }
            GOODBYE_PROTOCOL => {
                let timeout = self.sup.config.negotiation_timeout;
                match tokio::time::timeout(timeout, builtin::read_goodbye(io)).await {
                    Ok(Ok(reason)) => {
                        info!(?reason, "peer said goodbye");
                        self.sup
                            .peers
                            .set_reason(&info.peer_id, conn.id, reason, true);
                    }
                    Ok(Err(e)) => debug!(error = %e, "bad goodbye"),
                    Err(_) => debug!("goodbye timed out"),
                }
                // The closer closes the connection; close it too in case it lingers.
                conn.control.close();
            }
            _ => {}
        }
    }

    /// A failed inbound negotiation ends its stream; one that spent the connection's
    /// rejection budget ends the connection too.
    fn inbound_negotiation_failed(
        &self,
        info: &ConnectionInfo,
        conn: &ConnHandle,
        e: NegotiationError,
    ) {
        use devmux_transport::Error as T;
        match T::from(e) {
            T::RejectionBudgetSpent { limit } => {
                // Streams negotiating at once can all fail on the spent budget: one of
                // them acts, so the peer is penalised once per connection.
                if !conn.rejections.claim_close() {
                    return;
                }
                let peer = info.peer_id;
                debug!(
                    %peer,
                    addr = %info.remote_addr,
                    limit,
                    "too many rejected protocol proposals on one connection: closing it"
                );
                // Major, not Minor: `na` is a legitimate answer, but hundreds on one
                // connection are no accident (an honest dialer proposes the few
                // versions it speaks) and each one costs us a round of work. Not
                // Fatal: it breaks no rule of the wire spec, and closing the
                // connection already ends it. Penalised before closing: the peer
                // table forgets a peer whose connection is gone.
                self.sup.penalize(
                    peer,
                    Penalty::Major,
                    format!(
                        "too many rejected protocol proposals: more than {limit} on one connection"
                    ),
                );
                // The Major penalty also counts against the peer's address.
                self.sup.peers.set_reason(
                    &peer,
                    conn.id,
                    DisconnectReason::BreachOfProtocol,
                    false,
                );
                // No goodbye: a stream to a peer that floods us with proposals is
                // more of the same work; just close.
                conn.control.close();
            }
            e @ T::TooManyProposals { .. } => {
                debug!(error = %e, "inbound stream negotiation cut off")
            }
            e => debug!(error = %e, "inbound stream negotiation failed"),
        }
    }

    fn identify_info(&self, info: &ConnectionInfo) -> IdentifyInfo {
        IdentifyInfo {
            public_key: self.sup.key.public_key(),
            protocol_version: builtin::PROTOCOL_VERSION.to_string(),
            agent_version: self.sup.config.agent_version.clone(),
            listen_addrs: vec![socket_multiaddr(self.listen_addr)],
            observed_addr: Some(socket_multiaddr(info.remote_addr)),
            protocols: self.supported.clone(),
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
        let Some(registration) = self.sup.registrar.get(id.as_str()).cloned() else {
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
        self.sup.peers.add_protocol(&info.peer_id, &id);
        self.sup.emit(NetworkEvent::StreamOpened {
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
            ops: self.sup.ops(),
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
        let handle = self.handle(peer, "request protocols on an RLPx connection")?;
        let (io, id) = self.negotiate_outbound(&handle.control, &ids).await?;
        let rules = match self.sup.registrar.get(id.as_str()) {
            Some(r) => self.stream_rules(*peer, &id, r.max_message_size, &r.kind),
            // Not ours to serve: the default cap, any code.
            None => self.stream_rules(*peer, &id, DEFAULT_MAX_MESSAGE_SIZE, &ProtocolKind::Request),
        };
        self.sup.emit(NetworkEvent::StreamOpened {
            peer: *peer,
            protocol: id.clone(),
            direction: Direction::Outbound,
        });
        let activity = ActivityGuard::new(&handle.active);
        Ok((MessageStream::from_raw(io, rules, Some(activity)), id))
    }

    /// One keepalive round: a peer that misses `max_missed_pings` in a row (no answer
    /// within `request_timeout` each) is disconnected with `PingTimeout`.
    async fn keepalive(&self, peer: PeerId, conn: ConnHandle) {
        match self.ping_on(&conn).await {
            Ok(rtt) => conn.liveness.answered(rtt),
            Err(Error::ShuttingDown) => {}
            Err(e) => {
                let missed = conn.liveness.missed();
                if missed >= self.sup.config.max_missed_pings.max(1) {
                    warn!(%peer, error = %e, missed, "keepalive pings missed: disconnecting");
                    self.sup
                        .close(&peer, conn.id, DisconnectReason::PingTimeout);
                } else {
                    debug!(%peer, error = %e, missed, "keepalive ping missed");
                }
            }
        }
    }

    /// Pings `peer` once with libp2p ping.
    pub(crate) async fn ping(&self, peer: &PeerId) -> Result<Duration, Error> {
        let conn = self.handle(peer, "libp2p ping on an RLPx connection")?;
        self.ping_on(&conn).await
    }

    /// Pings on the connection's kept ping stream, opening it first if there is none
    /// (or the last ping broke it). A ping asked for while another is in flight goes on
    /// a stream of its own, closed after it, so no caller waits behind another.
    async fn ping_on(&self, conn: &ConnHandle) -> Result<Duration, Error> {
        let Ok(mut kept) = conn.ping.try_lock() else {
            let mut io = self.open_ping_stream(conn).await?;
            let rtt = self.ping_once(&mut io).await;
            let _ = futures::AsyncWriteExt::close(&mut io).await;
            return rtt;
        };
        let mut io = match kept.take() {
            Some(io) => io,
            None => self.open_ping_stream(conn).await?,
        };
        // A stream whose ping failed or timed out is dropped (reset): a late echo on it
        // must not be read as the next ping's.
        let rtt = self.ping_once(&mut io).await?;
        *kept = Some(io);
        Ok(rtt)
    }

    async fn open_ping_stream(&self, conn: &ConnHandle) -> Result<BoxedRaw, Error> {
        let id = ProtocolId::new(PING_PROTOCOL)?;
        Ok(self.negotiate_outbound(&conn.control, &[id]).await?.0)
    }

    async fn ping_once(&self, io: &mut BoxedRaw) -> Result<Duration, Error> {
        tokio::time::timeout(self.sup.config.request_timeout, builtin::ping(io))
            .await
            .map_err(|_| Error::Timeout("ping"))?
    }

    /// Asks `peer` for its identify record.
    pub(crate) async fn identify(&self, peer: &PeerId) -> Result<IdentifyInfo, Error> {
        let conn = self.handle(peer, "libp2p identify on an RLPx connection")?;
        let id = ProtocolId::new(IDENTIFY_PROTOCOL)?;
        let (io, _) = self.negotiate_outbound(&conn.control, &[id]).await?;
        tokio::time::timeout(
            self.sup.config.request_timeout,
            builtin::read_identify(io, peer),
        )
        .await
        .map_err(|_| Error::Timeout("identify"))?
    }
}

impl Carrier for P2pCarrier {
    const KIND: ServerKind = ServerKind::P2p;
    type Addr = Multiaddr;
    type Conn = Connection;
    type Socket = Stream;

    fn listen_addr(&self) -> SocketAddr {
        self.listen_addr
    }

    fn stats(&self) -> &Arc<devmux_transport::IoStats> {
        self.upgrader.stats()
    }

    async fn handshake(
        &self,
        socket: Stream,
        _addr: SocketAddr,
        activity: Arc<devmux_transport::ReadActivity>,
    ) -> Result<Connection, Error> {
        // A banned key goes before the muxer; limits are decided once the connection
        // can carry a goodbye with the reason.
        let pool = self.sup.peers.pool();
        let admit = |peer: &PeerId| !pool.refuses_key(peer);
        Ok(self
            .upgrader
            .upgrade_inbound_watched(socket, activity, admit)
            .await?)
    }

    async fn connect(&self, addr: &Multiaddr) -> Result<Connection, Error> {
        let (socket, expected) = devmux_identity::parse_peer_multiaddr(addr)?;
        let bind = self.upgrader.config().bind_ip;
        Ok(self
            .upgrader
            .dial_with(self.net.connect(bind, socket), expected)
            .await?)
    }

    fn remote(conn: &Connection) -> Remote {
        Remote {
            peer: conn.info.peer_id,
            addr: conn.info.remote_addr,
            direction: conn.info.direction,
        }
    }

    fn link(conn: &Connection, id: u64, liveness: Arc<Liveness>) -> Link {
        Link::P2p(ConnHandle {
            id,
            control: conn.control.clone(),
            active: Arc::default(),
            sessions: Arc::default(),
            liveness,
            ping: Arc::default(),
            rejections: conn.rejections.clone(),
        })
    }

    async fn refuse(self: Arc<Self>, conn: Connection, reason: DisconnectReason) {
        // A duplicate is told `AlreadyConnected` too: a goodbye acts on the connection
        // it arrives on only, so the peer's other connection is not touched.
        goodbye(&conn.control, reason, self.sup.config.negotiation_timeout).await;
    }

    async fn drive(self: Arc<Self>, conn: Box<Connection>, link: Link) {
        let Link::P2p(handle) = link else {
            return conn.control.close();
        };
        self.run_connection(conn, handle).await;
    }
}

/// Opens a stream on `control` and negotiates one of `ids` (in order), within
/// `timeout`.
async fn negotiate(
    control: &Control,
    ids: &[ProtocolId],
    timeout: Duration,
) -> Result<(BoxedRaw, ProtocolId), Error> {
    let stream = control.open_stream().await?;
    let ids: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
    let (chosen, io) = tokio::time::timeout(timeout, dialer_select_proto(stream, ids, Version::V1))
        .await
        .map_err(|_| Error::Timeout("protocol negotiation"))?
        .map_err(Error::Negotiation)?;
    Ok((Box::pin(io), ProtocolId::new(&chosen)?))
}

/// Sends goodbye with `reason` on `control`'s connection (WIRE.md §1), then closes
/// it; at most about three [`GOODBYE_LINGER`]s. A peer that does not know goodbye
/// answers `na`: then we just close.
pub(crate) async fn goodbye(control: &Control, reason: DisconnectReason, timeout: Duration) {
    let goodbye = async {
        let id = ProtocolId::new(GOODBYE_PROTOCOL)?;
        let (io, _) = negotiate(control, &[id], timeout).await?;
        builtin::send_goodbye(io, reason, GOODBYE_LINGER).await
    };
    let _ = tokio::time::timeout(GOODBYE_LINGER * 2, goodbye).await;
    control.close();
    let _ = tokio::time::timeout(GOODBYE_LINGER, control.closed()).await;
}
