//! The RLPx carrier (WIRE.md §2), byte-compatible with go-ethereum, reth and
//! ethereumjs: connection setup from `devmux_rlpx::carrier` (ECIES, the
//! supervisor's admission check, Hello, each under a deadline), sessions driven
//! by `devmux_rlpx::session` (capability channels, keepalive, Disconnect).
//!
//! Every registered session protocol `/<name>/<version>/1.0.0` is offered as the
//! capability `<name>/<version>` in Hello; each shared capability reaches its
//! handler as a [`MessageStream`] whose codes are the capability's message ids
//! without their offset.
//!
//! Tasks per connection: the session's (reader, keepalive), its writer, and one
//! per handler.

use std::net::SocketAddr;
use std::sync::Arc;

use devmux_identity::{Enode, NodeId, PeerId};
use devmux_rlpx::carrier::Endpoint;
use devmux_rlpx::secp256k1::{Keypair, SECP256K1};
use devmux_rlpx::session::{
    Channel, Keepalive, OutboundMessage, Session, SessionObserver, DISCONNECT_GRACE,
};
use devmux_rlpx::{Capability, Established, SessionConfig};
use devmux_transport::{Counted, IoStats};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, Instrument};

use crate::carrier::{Carrier, Remote};
use crate::message::{MessageStream, SessionClose};
use crate::peers::Liveness;
use crate::registrar::{ProtocolKind, Registration};
use crate::supervisor::{Link, Supervisor};
use crate::{
    Direction, DisconnectReason, Error, NetworkEvent, PeerCtx, Penalty, ProtocolId, Registrar,
    ServerKind,
};

type Socket = Counted<TcpStream>;
type RlpxSession = Session<Counted<OwnedReadHalf>, Counted<OwnedWriteHalf>>;

/// An RLPx session past its handshake, split into its capability channels.
pub(crate) struct RlpxConn {
    remote: Remote,
    session: RlpxSession,
    channels: Vec<Channel>,
    outbound: mpsc::Sender<OutboundMessage>,
}

/// Refuses a registrar with a protocol RLPx cannot serve ([`Error::Unservable`]): a
/// session id without the capability form, and, when RLPx is the only carrier
/// (`alone`), any request protocol.
pub(crate) fn check_servable(registrar: &Registrar, alone: bool) -> Result<(), Error> {
    for r in &registrar.entries {
        let why = match (r.kind, r.id.capability()) {
            (ProtocolKind::Session { .. }, Some(_)) => continue,
            (ProtocolKind::Session { .. }, None) => {
                "a session id must have the form /<name>/<version>/1.0.0 (name: up to 8 \
                 lowercase letters or digits) to be a capability"
            }
            (ProtocolKind::Request, _) if !alone => continue,
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

/// The capabilities a registrar offers on RLPx: its session protocols.
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

/// The RLPx carrier.
pub(crate) struct RlpxCarrier {
    sup: Arc<Supervisor>,
    endpoint: Endpoint,
    listen_addr: SocketAddr,
    /// The address outbound connections bind.
    bind_ip: Option<std::net::IpAddr>,
    stats: Arc<IoStats>,
}

impl RlpxCarrier {
    /// Binds `addr` and starts accepting under `sup`.
    pub(crate) async fn start(sup: Arc<Supervisor>, addr: SocketAddr) -> Result<Arc<Self>, Error> {
        let secret = Keypair::from_seckey_slice(SECP256K1, &sup.key.secret_bytes())
            .map_err(|_| Error::Identity(devmux_identity::Error::InvalidSecretKey))?;
        let tcp = TcpListener::bind(addr).await?;
        let listen_addr = tcp.local_addr()?;
        let mut session = SessionConfig::new(sup.config.agent_version.clone())
            .with_listen_port(listen_addr.port())
            .with_max_message_size(crate::message::DEFAULT_MAX_MESSAGE_SIZE);
        for cap in capabilities(&sup.registrar) {
            session = session.with_capability(cap);
        }
        let endpoint = Endpoint::new(secret, session, sup.config.transport.handshake_timeout);
        let carrier = Arc::new(Self {
            sup: sup.clone(),
            endpoint,
            listen_addr,
            bind_ip: sup.config.transport.bind_ip.or(Some(addr.ip())),
            stats: Arc::default(),
        });
        sup.listen(carrier.clone(), tcp);
        info!(enode = %carrier.local_enode(), "RLPx listening");
        Ok(carrier)
    }

    pub(crate) fn local_enode(&self) -> Enode {
        Enode::new(self.sup.key.node_id(), self.listen_addr)
    }

    /// Splits an established session into its channels: one per shared capability
    /// that the registrar serves.
    fn prepare(
        &self,
        established: Established<Socket>,
        addr: SocketAddr,
        direction: Direction,
        handshake: std::time::Duration,
    ) -> Result<RlpxConn, Error> {
        self.stats.record_handshake(handshake);
        let peer = NodeId(*established.remote_id()).to_peer_id()?;
        let registrar = &self.sup.registrar;
        let (session, channels, outbound) = Session::new(
            established,
            Counted::into_split,
            Keepalive {
                timer: self.sup.timers.interval(self.sup.config.rlpx_ping_interval),
                max_missed_pings: self.sup.config.max_missed_pings,
            },
            |cap| {
                ProtocolId::from_capability(&cap.name, cap.version)
                    .is_ok_and(|id| registrar.get(id.as_str()).is_some())
            },
        );
        Ok(RlpxConn {
            remote: Remote {
                peer,
                addr,
                direction,
            },
            session,
            channels,
            outbound,
        })
    }

    /// Starts a handler per channel; returns the tracker they run on.
    fn start_handlers(
        &self,
        conn_id: u64,
        remote: Remote,
        channels: Vec<Channel>,
        outbound: mpsc::Sender<OutboundMessage>,
    ) -> TaskTracker {
        let handlers = TaskTracker::new();
        let served: Vec<(Channel, Registration)> = channels
            .into_iter()
            .filter_map(|ch| {
                let id =
                    ProtocolId::from_capability(&ch.capability.name, ch.capability.version).ok()?;
                let registration = self.sup.registrar.get(id.as_str()).cloned()?;
                Some((ch, registration))
            })
            .collect();
        let ops = self.sup.ops();
        let session_close = Arc::new(SessionClose::new(
            served.len(),
            ops.clone(),
            remote.peer,
            conn_id,
        ));
        for (channel, registration) in served {
            let Registration {
                id,
                handler,
                max_message_size,
                ..
            } = registration;
            let stream = MessageStream::from_channels(
                channel.inbound,
                outbound.clone(),
                channel.slot,
                channel.capability.message_count,
                max_message_size,
                Some(session_close.clone()),
                Some(self.sup.counters.protocol(id.as_str())),
            );
            self.sup.peers.add_protocol(&remote.peer, &id);
            self.sup.emit(NetworkEvent::StreamOpened {
                peer: remote.peer,
                protocol: id.clone(),
                direction: remote.direction,
            });
            let ctx = PeerCtx {
                peer_id: remote.peer,
                remote_addr: remote.addr,
                direction: remote.direction,
                protocol: id.clone(),
                server: ServerKind::Rlpx,
                ops: ops.clone(),
                conn: conn_id,
            };
            // Called here, not in the task: the task then holds the boxed handler
            // alone, not also the context and stream it was given.
            let serving = handler.call(ctx, stream);
            handlers.spawn(
                async move {
                    if let Err(e) = serving.await {
                        debug!(error = %e, "handler ended with an error");
                    }
                }
                .instrument(tracing::debug_span!("stream", protocol = %id)),
            );
        }
        handlers.close();
        handlers
    }
}

/// What a session does to its peer, reported to the supervisor.
struct Observer<'a> {
    sup: &'a Supervisor,
    peer: PeerId,
    conn: u64,
    liveness: Option<Arc<Liveness>>,
}

impl SessionObserver for Observer<'_> {
    fn closing(&self, reason: DisconnectReason, by_remote: bool) {
        self.sup
            .peers
            .set_reason(&self.peer, self.conn, reason, by_remote);
    }

    fn fault(&self, error: &devmux_rlpx::Error) {
        self.sup
            .penalize(self.peer, Penalty::Major, error.to_string());
    }

    fn pong(&self, rtt: std::time::Duration) {
        if let Some(liveness) = &self.liveness {
            liveness.answered(rtt);
        }
    }

    fn missed_ping(&self, consecutive: u32) {
        if let Some(liveness) = &self.liveness {
            liveness.set_missed(consecutive);
        }
    }
}

impl Carrier for RlpxCarrier {
    const KIND: ServerKind = ServerKind::Rlpx;
    type Addr = Enode;
    type Conn = RlpxConn;
    type Socket = TcpStream;

    fn listen_addr(&self) -> SocketAddr {
        self.listen_addr
    }

    fn stats(&self) -> &Arc<IoStats> {
        &self.stats
    }

    async fn handshake(
        &self,
        tcp: TcpStream,
        addr: SocketAddr,
        activity: Arc<devmux_transport::ReadActivity>,
    ) -> Result<RlpxConn, Error> {
        let started = std::time::Instant::now();
        devmux_transport::configure_socket(&tcp);
        let io = Counted::watched(tcp, self.stats.clone(), activity.clone());
        let admit = |id: &devmux_rlpx::NodeId| {
            // ECIES done: the remote proved its key (auth read and answered).
            activity.reached(2);
            let peer = NodeId(*id)
                .to_peer_id()
                .map_err(|_| DisconnectReason::UnexpectedIdentity)?;
            self.sup.peers.would_admit(&peer, addr, Direction::Inbound)
        };
        let established = self.endpoint.accept(io, admit).await?;
        self.prepare(established, addr, Direction::Inbound, started.elapsed())
    }

    async fn connect(&self, enode: &Enode) -> Result<RlpxConn, Error> {
        let peer = enode.id.to_peer_id()?;
        let started = std::time::Instant::now();
        let stats = self.stats.clone();
        let established = self
            .endpoint
            .connect(
                devmux_transport::connect_from(self.bind_ip, enode.addr),
                &enode.id.0,
                |tcp| {
                    devmux_transport::configure_socket(&tcp);
                    Counted::new(tcp, stats)
                },
                |_| {
                    self.sup
                        .peers
                        .would_admit(&peer, enode.addr, Direction::Outbound)
                },
            )
            .await?;
        self.prepare(
            established,
            enode.addr,
            Direction::Outbound,
            started.elapsed(),
        )
    }

    fn remote(conn: &RlpxConn) -> Remote {
        conn.remote
    }

    fn link(conn: &RlpxConn, id: u64, liveness: Arc<Liveness>) -> Link {
        Link::Rlpx {
            id,
            session: conn.session.handle(),
            liveness,
        }
    }

    async fn refuse(self: Arc<Self>, conn: RlpxConn, reason: DisconnectReason) {
        let RlpxConn {
            session, remote, ..
        } = conn;
        session.handle().disconnect(reason);
        // Connection id 0 is never in the table: the refusal records no reason.
        let quiet = Observer {
            sup: &self.sup,
            peer: remote.peer,
            conn: 0,
            liveness: None,
        };
        // Only the Disconnect goes out: nothing else is ever queued.
        let _ = tokio::time::timeout(
            DISCONNECT_GRACE * 3,
            session.run(std::future::pending(), &self.sup.shutdown, &quiet),
        )
        .await;
    }

    async fn drive(self: Arc<Self>, conn: Box<RlpxConn>, link: Link) {
        let RlpxConn {
            remote,
            session,
            channels,
            outbound,
        } = *conn;
        let conn_id = link.id();
        let liveness = match &link {
            Link::Rlpx { liveness, .. } => Some(liveness.clone()),
            Link::P2p(_) => None,
        };
        let handlers = self.start_handlers(conn_id, remote, channels, outbound);
        let observer = Observer {
            sup: &self.sup,
            peer: remote.peer,
            conn: conn_id,
            liveness,
        };
        session
            .run(handlers.wait(), &self.sup.shutdown, &observer)
            .await;
        let _ = tokio::time::timeout(DISCONNECT_GRACE, handlers.wait()).await;
    }
}
