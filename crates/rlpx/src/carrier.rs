//! Connection setup of the RLPx carrier: TCP connect or accept, the ECIES
//! handshake, an admission check as soon as the remote's key is known, and
//! Hello, each step under its own deadline.
//!
//! The admission check is the caller's (a node's peer table and bans): it runs
//! after ECIES, the first point where the peer is known, and before Hello and
//! capability negotiation, so a refused peer costs one handshake and is told
//! why (a Disconnect with the reason the check gave).
//!
//! Accepting is the caller's: a node decides which sockets may start a
//! handshake at all (pending budgets per address, address bans) before it hands
//! one to [`Endpoint::accept`].

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use secp256k1::Keypair;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::{DisconnectReason, EciesStream, Error, Established, NodeId, SessionConfig};

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

    /// Connects to `remote`: `tcp` (the TCP connect, e.g. `TcpStream::connect(addr)`,
    /// under the step deadline), wrapped by `wrap` (e.g. to count its bytes), then
    /// ECIES, `admit`, Hello.
    pub async fn connect<S>(
        &self,
        tcp: impl Future<Output = std::io::Result<TcpStream>>,
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
        let tcp = self.timed("TCP connect", async { Ok(tcp.await?) }).await?;
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
