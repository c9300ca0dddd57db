//! The registrar: protocol ids routed to async handlers. The one extension point.

use std::collections::HashSet;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use devmux_identity::PeerId;
use futures::future::{BoxFuture, TryFutureExt};

use crate::message::{MessageStream, DEFAULT_MAX_MESSAGE_SIZE};
use crate::{Direction, DisconnectReason, Error, ProtocolId, ServerKind};

/// An error a handler returns: anything that is an error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// An async protocol handler: runs once per stream (request protocols) or once
/// per peer session (session protocols).
///
/// Any `Fn(PeerCtx, MessageStream) -> impl Future<Output = Result<(), E>>` is a
/// handler, for any error type `E`.
pub trait Handler: Send + Sync + 'static {
    /// Serves one stream.
    fn call(
        &self,
        peer: PeerCtx,
        stream: MessageStream,
    ) -> BoxFuture<'static, Result<(), BoxError>>;
}

impl<F, Fut, E> Handler for F
where
    F: Fn(PeerCtx, MessageStream) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Into<BoxError> + 'static,
{
    fn call(
        &self,
        peer: PeerCtx,
        stream: MessageStream,
    ) -> BoxFuture<'static, Result<(), BoxError>> {
        // A combinator, not `async move { fut.await }`: an async block keeps `fut` as
        // its capture and again as the future it awaits, twice the handler's size
        // for as long as a session lasts.
        Box::pin(self(peer, stream).map_err(Into::into))
    }
}

/// How badly a peer misbehaved. Penalties lower the peer's reputation; a peer
/// whose reputation falls below the threshold is disconnected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Penalty {
    /// Slightly wrong: a late or unsolicited but harmless message.
    Minor,
    /// Clearly wrong: a malformed message, a response nobody asked for.
    Major,
    /// Disconnect now: a breach of protocol.
    Fatal,
}

impl Penalty {
    /// The reputation this penalty costs.
    pub fn cost(self) -> i32 {
        match self {
            Penalty::Minor => 10,
            Penalty::Major => 40,
            Penalty::Fatal => i32::MAX / 2,
        }
    }
}

/// What a server lets a handler do to its peer.
pub(crate) trait PeerOps: Send + Sync + 'static {
    /// Disconnects `peer` if `conn` is still its connection.
    fn disconnect(&self, peer: PeerId, conn: u64, reason: DisconnectReason);
    fn penalize(&self, peer: PeerId, penalty: Penalty, why: String);
    /// Whether `conn` is still `peer`'s connection.
    fn is_current(&self, peer: PeerId, conn: u64) -> bool;
}

/// What a handler knows about its peer, and what it may do to it.
#[derive(Clone)]
pub struct PeerCtx {
    /// The peer's id (on RLPx: the PeerId of its node key).
    pub peer_id: PeerId,
    /// The peer's socket address.
    pub remote_addr: SocketAddr,
    /// Who dialed the connection.
    pub direction: Direction,
    /// The protocol id that was negotiated (on RLPx: the capability's id).
    pub protocol: ProtocolId,
    /// Which server carries the connection. Handlers should not need this.
    pub server: ServerKind,
    pub(crate) ops: Arc<dyn PeerOps>,
    /// The connection this context belongs to: a handler acts on its own
    /// connection only, never on one that replaced it.
    pub(crate) conn: u64,
}

impl std::fmt::Debug for PeerCtx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerCtx")
            .field("peer_id", &self.peer_id)
            .field("remote_addr", &self.remote_addr)
            .field("direction", &self.direction)
            .field("protocol", &self.protocol)
            .field("server", &self.server)
            .finish()
    }
}

impl PeerCtx {
    /// Disconnects the peer with `reason` (RLPx Disconnect or the goodbye protocol),
    /// if this handler's connection is still the peer's connection.
    pub fn disconnect(&self, reason: DisconnectReason) {
        self.ops.disconnect(self.peer_id, self.conn, reason);
    }

    /// Whether this handler's connection is still the peer's connection. After a
    /// simultaneous dial one of two connections is dropped; a session protocol that
    /// keeps per-peer state should not register a session on the dropped one.
    pub fn is_current(&self) -> bool {
        self.ops.is_current(self.peer_id, self.conn)
    }

    /// Lowers the peer's reputation; `why` goes to logs and events.
    pub fn penalize(&self, penalty: Penalty, why: impl Into<String>) {
        self.ops.penalize(self.peer_id, penalty, why.into());
    }
}

/// Whether a protocol lives for the whole connection or per request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtocolKind {
    /// One channel per peer for the connection's life, opened by the connection's
    /// dialer as soon as it is up. On RLPx, a capability.
    Session {
        /// Message codes the protocol uses (its RLPx message-id space).
        message_count: u8,
    },
    /// Streams opened on demand with `Network::open` (stream stack only).
    Request,
}

/// A session protocol id with its RLPx message count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionProtocol {
    /// The id, e.g. `/eth/68/1.0.0`.
    pub id: ProtocolId,
    /// The message-id space it takes on RLPx (eth/66–68: 17, eth/69: 18).
    pub message_count: u8,
}

impl SessionProtocol {
    /// Parses `id` and pairs it with `message_count`.
    pub fn new(id: &str, message_count: u8) -> Result<Self, Error> {
        Ok(Self {
            id: ProtocolId::new(id)?,
            message_count,
        })
    }
}

/// One registered id.
#[derive(Clone)]
pub(crate) struct Registration {
    pub(crate) id: ProtocolId,
    pub(crate) kind: ProtocolKind,
    pub(crate) max_message_size: usize,
    pub(crate) handler: Arc<dyn Handler>,
    /// Ids registered together with one handler form a group; a session group is
    /// negotiated as one session, versions in registration order (highest first).
    pub(crate) group: usize,
}

/// Maps protocol ids to handlers. Built before the network starts; both servers
/// serve the same registrar.
///
/// ```
/// use devmux_network::{Registrar, PeerCtx, MessageStream};
/// let mut registrar = Registrar::new();
/// registrar
///     .request("/demo/echo/1.0.0", |_peer: PeerCtx, mut stream: MessageStream| async move {
///         while let Some(msg) = stream.next().await {
///             stream.send(msg?).await?;
///         }
///         Ok::<_, devmux_network::Error>(())
///     })
///     .unwrap();
/// ```
#[derive(Clone, Default)]
pub struct Registrar {
    pub(crate) entries: Vec<Registration>,
    groups: usize,
}

impl std::fmt::Debug for Registrar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.entries.iter().map(|r| (&r.id, r.kind)))
            .finish()
    }
}

impl Registrar {
    /// An empty registrar.
    pub fn new() -> Self {
        Self::default()
    }

    fn check_new(&self, id: &ProtocolId) -> Result<(), Error> {
        if crate::builtin::BUILTIN_IDS.contains(&id.as_str()) || self.get(id.as_str()).is_some() {
            return Err(Error::DuplicateProtocol(id.clone()));
        }
        Ok(())
    }

    /// Registers a session protocol under one or more versions, highest first
    /// (e.g. `/eth/69/1.0.0` … `/eth/66/1.0.0`). The handler reads
    /// [`PeerCtx::protocol`] to learn which version was negotiated.
    pub fn session<I, H>(&mut self, protocols: I, handler: H) -> Result<&mut Self, Error>
    where
        I: IntoIterator<Item = SessionProtocol>,
        H: Handler,
    {
        let protocols: Vec<_> = protocols.into_iter().collect();
        if protocols.is_empty() {
            return Err(Error::NoProtocols);
        }
        let mut seen = HashSet::new();
        for p in &protocols {
            self.check_new(&p.id)?;
            if !seen.insert(p.id.clone()) {
                return Err(Error::DuplicateProtocol(p.id.clone()));
            }
        }
        let handler: Arc<dyn Handler> = Arc::new(handler);
        let group = self.groups;
        self.groups += 1;
        for p in protocols {
            self.entries.push(Registration {
                id: p.id,
                kind: ProtocolKind::Session {
                    message_count: p.message_count,
                },
                max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
                handler: handler.clone(),
                group,
            });
        }
        Ok(self)
    }

    /// Registers a request protocol: each inbound stream runs `handler`.
    pub fn request<H: Handler>(&mut self, id: &str, handler: H) -> Result<&mut Self, Error> {
        let id = ProtocolId::new(id)?;
        self.check_new(&id)?;
        let group = self.groups;
        self.groups += 1;
        self.entries.push(Registration {
            id,
            kind: ProtocolKind::Request,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            handler: Arc::new(handler),
            group,
        });
        Ok(self)
    }

    /// Lowers the message size cap of a registered protocol (WIRE.md §1 allows
    /// protocols to declare a cap below 10 MiB).
    pub fn set_max_message_size(&mut self, id: &str, max: usize) -> Result<&mut Self, Error> {
        let entry = self
            .entries
            .iter_mut()
            .find(|r| r.id.as_str() == id)
            .ok_or_else(|| Error::UnknownProtocol(id.to_string()))?;
        entry.max_message_size = max.min(DEFAULT_MAX_MESSAGE_SIZE);
        Ok(self)
    }

    /// The registered ids, in registration order.
    pub fn ids(&self) -> impl Iterator<Item = &ProtocolId> {
        self.entries.iter().map(|r| &r.id)
    }

    pub(crate) fn get(&self, id: &str) -> Option<&Registration> {
        self.entries.iter().find(|r| r.id.as_str() == id)
    }

    /// Session groups: each a list of registrations, highest version first.
    pub(crate) fn session_groups(&self) -> Vec<Vec<&Registration>> {
        let mut groups: Vec<Vec<&Registration>> = Vec::new();
        for r in &self.entries {
            if !matches!(r.kind, ProtocolKind::Session { .. }) {
                continue;
            }
            match groups.iter_mut().find(|g| g[0].group == r.group) {
                Some(g) => g.push(r),
                None => groups.push(vec![r]),
            }
        }
        groups
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn nop(_: PeerCtx, _: MessageStream) -> Result<(), Error> {
        Ok(())
    }

    #[test]
    fn duplicate_and_builtin_ids_are_refused() {
        let mut r = Registrar::new();
        r.request("/a/1.0.0", nop).unwrap();
        assert!(matches!(
            r.request("/a/1.0.0", nop),
            Err(Error::DuplicateProtocol(_))
        ));
        assert!(r.request("/ipfs/ping/1.0.0", nop).is_err());
        assert!(r.request("no-slash", nop).is_err());
        let eth = [
            SessionProtocol::new("/eth/69/1.0.0", 18).unwrap(),
            SessionProtocol::new("/eth/68/1.0.0", 17).unwrap(),
        ];
        r.session(eth.clone(), nop).unwrap();
        assert!(r.session(eth, nop).is_err());
        let groups = r.session_groups();
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0][0].id.as_str(), "/eth/69/1.0.0");
        assert_eq!(groups[0][1].id.as_str(), "/eth/68/1.0.0");
    }
}
