//! Connection setup of the RLPx carrier: TCP connect or accept, the ECIES
//! handshake, an admission check as soon as the remote's key is known, and
//! Hello, each step under its own deadline.
//!
//! The admission check is the caller's (a node's peer table and bans): it runs
//! after ECIES, the first point where the peer is known, and before Hello and
//! capability negotiation, so a refused peer costs one handshake and is told
//! why (a Disconnect with the reason the check gave).
//!
//! A [`Listener`] accepts sockets and runs their handshakes in tasks of its own,
//! at most `max_pending` at once: a socket that arrives while that many are
//! under way is closed at once (its accept reports [`Error::Busy`]), so stalled
//! sockets cannot hold more than their share.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use secp256k1::Keypair;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::{debug, Instrument};

use crate::{DisconnectReason, EciesStream, Error, Established, NodeId, SessionConfig};

/// The admission check of inbound connections: the remote's node id and address;
/// `Err(reason)` refuses the peer with that reason.
pub type InboundAdmission =
    dyn Fn(&NodeId, SocketAddr) -> Result<(), DisconnectReason> + Send + Sync;

/// Our side of RLPx connection setup: the node key, what we say in Hello, and the
/// deadline of each step. Cheap to clone.
#[derive(Clone)]
pub struct Endpoint {
    inner: Arc<EndpointInner>,
}

struct EndpointInner {
    key: Keypair,
    session: SessionConfig,
    step_timeout: Duration,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("session", &self.inner.session)
            .field("step_timeout", &self.inner.step_timeout)
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// An endpoint for `key` that offers `session` in Hello and gives each step
    /// (TCP connect, ECIES, Hello) at most `step_timeout`.
    pub fn new(key: Keypair, session: SessionConfig, step_timeout: Duration) -> Self {
        Self {
            inner: Arc::new(EndpointInner {
                key,
                session,
                step_timeout,
            }),
        }
    }

    /// Our node id.
    pub fn local_id(&self) -> NodeId {
        crate::node_id(&self.inner.key.public_key())
    }

    async fn timed<T>(
        &self,
        step: &'static str,
        fut: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        tokio::time::timeout(self.inner.step_timeout, fut)
            .await
            .map_err(|_| Error::Timeout(step))?
    }

    /// Connects to `remote` at `addr`: TCP (wrapped by `wrap`, e.g. to count its
    /// bytes), ECIES, `admit`, Hello.
    pub async fn connect<S>(
        &self,
        addr: SocketAddr,
        remote: &NodeId,
        wrap: impl FnOnce(TcpStream) -> S,
        admit: impl FnOnce(&NodeId) -> Result<(), DisconnectReason>,
    ) -> Result<Established<S>, Error>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        if *remote == self.local_id() {
            return Err(Error::ConnectedToSelf);
        }
        let tcp = self.timed("TCP connect", async { Ok(TcpStream::connect(addr).await?) });
        let tcp = tcp.await?;
        let _ = tcp.set_nodelay(true);
        let io = wrap(tcp);
        let ecies = self.timed(
            "ECIES handshake",
            EciesStream::connect(io, &self.inner.key, remote),
        );
        self.finish(ecies.await?, admit).await
    }

    /// Accepts an inbound connection on `io`: ECIES, `admit`, Hello.
    pub async fn accept<S>(
        &self,
        io: S,
        admit: impl FnOnce(&NodeId) -> Result<(), DisconnectReason>,
    ) -> Result<Established<S>, Error>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let ecies = self.timed("ECIES handshake", EciesStream::accept(io, &self.inner.key));
        self.finish(ecies.await?, admit).await
    }

    async fn finish<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        ecies: EciesStream<S>,
        admit: impl FnOnce(&NodeId) -> Result<(), DisconnectReason>,
    ) -> Result<Established<S>, Error> {
        if let Err(reason) = admit(ecies.remote_id()) {
            // Told why, best effort and within the deadline: a peer that does not
            // read must not hold us.
            let _ = tokio::time::timeout(self.inner.step_timeout, ecies.disconnect(reason)).await;
            return Err(Error::Refused(reason));
        }
        self.timed("Hello", ecies.exchange_hello(&self.inner.session))
            .await
    }
}

/// An inbound session, handshake done.
#[derive(Debug)]
pub struct Accepted<S> {
    /// The session.
    pub session: Established<S>,
    /// Where it came from.
    pub remote_addr: SocketAddr,
    /// How long its handshake took (ECIES, admission, Hello).
    pub handshake: Duration,
}

/// Accepts TCP connections and runs their handshakes, at most `max_pending` at once.
/// Dropping it stops accepting and cancels the handshakes under way.
#[derive(Debug)]
pub struct Listener<S> {
    local_addr: SocketAddr,
    rx: mpsc::Receiver<Result<Accepted<S>, Error>>,
    _stop: DropGuard,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Listener<S> {
    /// Starts accepting on `tcp`: each socket is wrapped by `wrap`, then handshaken
    /// by `endpoint` with `admit` as its admission check.
    pub fn from_tcp(
        tcp: TcpListener,
        endpoint: Endpoint,
        max_pending: usize,
        wrap: impl Fn(TcpStream) -> S + Send + Sync + 'static,
        admit: Arc<InboundAdmission>,
    ) -> std::io::Result<Self> {
        let local_addr = tcp.local_addr()?;
        let max_pending = max_pending.max(1);
        let pending = Arc::new(Semaphore::new(max_pending));
        // Room for every handshake under way plus the refusals reported meanwhile:
        // `try_send` of a refusal never waits, so a full queue drops the report only.
        let (tx, rx) = mpsc::channel(max_pending * 2);
        let stop = CancellationToken::new();
        let token = stop.clone();
        let span = tracing::debug_span!("rlpx-listener", addr = %local_addr);
        tokio::spawn(
            async move {
                loop {
                    let (socket, remote_addr) = tokio::select! {
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
                    let Ok(permit) = pending.clone().try_acquire_owned() else {
                        debug!(%remote_addr, "too many pending handshakes: dropping connection");
                        let _ = tx.try_send(Err(Error::Busy));
                        continue;
                    };
                    let _ = socket.set_nodelay(true);
                    let io = wrap(socket);
                    let (endpoint, admit, tx, token) =
                        (endpoint.clone(), admit.clone(), tx.clone(), token.clone());
                    tokio::spawn(
                        async move {
                            let started = std::time::Instant::now();
                            let handshake = endpoint.accept(io, |id| admit(id, remote_addr));
                            let result = tokio::select! {
                                _ = token.cancelled() => return,
                                result = handshake => result,
                            };
                            drop(permit);
                            let result = result.map(|session| Accepted {
                                session,
                                remote_addr,
                                handshake: started.elapsed(),
                            });
                            if let Err(e) = &result {
                                debug!(error = %e, "inbound handshake failed");
                            }
                            tokio::select! {
                                _ = token.cancelled() => {}
                                _ = tx.send(result) => {}
                            }
                        }
                        .instrument(tracing::debug_span!("rlpx-handshake", %remote_addr)),
                    );
                }
            }
            .instrument(span),
        );
        Ok(Self {
            local_addr,
            rx,
            _stop: stop.drop_guard(),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The next inbound session, or why one failed (the listener keeps running).
    pub async fn accept(&mut self) -> Option<Result<Accepted<S>, Error>> {
        self.rx.recv().await
    }
}
