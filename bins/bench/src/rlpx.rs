//! devmux's RLPx, used directly (crates/rlpx): `EciesStream::connect/accept` →
//! `exchange_hello` → `Established::split_with(TcpStream::into_split)`, one
//! capability `bench/1` whose messages are the sink and echo of the other stacks.
//! Messages are Snappy-compressed as p2p v5 requires; the pattern does not
//! compress, like most Ethereum payloads.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _};
use devmux_identity::NodeKey;
use devmux_rlpx::secp256k1::{Keypair, SECP256K1};
use devmux_rlpx::{
    node_id, Capability, EciesStream, Incoming, NodeId, SessionConfig, SessionReader, SessionWriter,
};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

use crate::pattern::{self, Verifier, CHUNK};
use crate::raw;
use crate::stack::Fut;
use crate::stats::{mib_per_s, RttResult, SetupResult};

const CODE_HEADER: u8 = 0;
const CODE_DATA: u8 = 1;
const CODE_ACK: u8 = 2;
pub(crate) const CODE_ECHO: u8 = 3;

fn config() -> SessionConfig {
    SessionConfig::new("devmux-bench").with_capability(Capability::new("bench", 1, 4))
}

pub(crate) fn secret() -> anyhow::Result<Keypair> {
    Ok(Keypair::from_seckey_slice(
        SECP256K1,
        &NodeKey::generate().secret_bytes(),
    )?)
}

pub(crate) type Reader = SessionReader<OwnedReadHalf>;
pub(crate) type Writer = SessionWriter<OwnedWriteHalf>;

/// Handshake only (ECIES auth/ack), no Hello.
async fn ecies_connect(
    addr: SocketAddr,
    key: &Keypair,
    remote: &NodeId,
) -> anyhow::Result<EciesStream<TcpStream>> {
    ecies_connect_from(None, addr, key, remote).await
}

/// [`ecies_connect`] from source address `bind` (port 0) if given.
async fn ecies_connect_from(
    bind: Option<std::net::IpAddr>,
    addr: SocketAddr,
    key: &Keypair,
    remote: &NodeId,
) -> anyhow::Result<EciesStream<TcpStream>> {
    let tcp = devmux_transport::connect_from(bind, addr).await?;
    tcp.set_nodelay(true)?;
    Ok(EciesStream::connect(tcp, key, remote).await?)
}

/// A whole session: ECIES, Hello both ways, split.
async fn session(
    addr: SocketAddr,
    key: &Keypair,
    remote: &NodeId,
) -> anyhow::Result<(Reader, Writer)> {
    session_from(None, addr, key, remote).await
}

/// [`session`] from source address `bind` (port 0) if given.
pub(crate) async fn session_from(
    bind: Option<std::net::IpAddr>,
    addr: SocketAddr,
    key: &Keypair,
    remote: &NodeId,
) -> anyhow::Result<(Reader, Writer)> {
    let ecies = ecies_connect_from(bind, addr, key, remote).await?;
    let established = ecies.exchange_hello(&config()).await?;
    Ok(established.split_with(TcpStream::into_split))
}

/// The server side of one connection: sink and echo until the peer leaves.
async fn serve(tcp: TcpStream, key: Keypair, sessions: Arc<AtomicUsize>) -> anyhow::Result<()> {
    let _ = tcp.set_nodelay(true);
    let ecies = EciesStream::accept(tcp, &key).await?;
    let established = ecies.exchange_hello(&config()).await?;
    let (mut r, mut w) = established.split_with(TcpStream::into_split);
    sessions.fetch_add(1, Ordering::Relaxed);
    let result = serve_session(&mut r, &mut w).await;
    sessions.fetch_sub(1, Ordering::Relaxed);
    result
}

pub(crate) async fn serve_session(r: &mut Reader, w: &mut Writer) -> anyhow::Result<()> {
    let mut sink: Option<(Verifier, u64)> = None;
    loop {
        match r.recv().await? {
            Incoming::Ping => w.pong().await?,
            Incoming::Pong => {}
            Incoming::Disconnect(_) => return Ok(()),
            Incoming::Capability { index, id, payload } => match id {
                CODE_HEADER => {
                    ensure!(payload.len() == 16, "bad sink header");
                    sink = Some((
                        Verifier::new(pattern::be_u64(&payload[..8])),
                        pattern::be_u64(&payload[8..]),
                    ));
                }
                CODE_DATA => {
                    let Some((v, len)) = sink.as_mut() else {
                        bail!("data before header")
                    };
                    v.feed(&payload);
                    if v.received() >= *len {
                        let a = pattern::ack(v);
                        sink = None;
                        w.send_capability(index, CODE_ACK, &a).await?;
                    }
                }
                CODE_ECHO => w.send_capability(index, CODE_ECHO, &payload).await?,
                other => bail!("unexpected code {other}"),
            },
        }
    }
}

/// An RLPx server on loopback.
pub(crate) struct Server {
    pub(crate) addr: SocketAddr,
    pub(crate) id: NodeId,
    pub(crate) sessions: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    pub(crate) async fn start() -> anyhow::Result<Self> {
        let key = secret()?;
        let id = node_id(&key.public_key());
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let sessions = Arc::new(AtomicUsize::new(0));
        let count = sessions.clone();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let count = count.clone();
                tokio::spawn(async move {
                    let _ = serve(tcp, key, count).await;
                });
            }
        });
        Ok(Self {
            addr,
            id,
            sessions,
            task,
        })
    }
}

/// The serving end of an RLPx benchmark: a bare crates/rlpx server, or the
/// network's RLPx server (`Network` with `use_p2p_server: false`).
pub(crate) enum Serving {
    /// Held for its lifetime: dropping it stops the server.
    Direct {
        _server: Server,
    },
    Network(devmux_network::Network),
}

/// Where to reach the serving end.
#[derive(Clone, Copy)]
struct Target {
    addr: SocketAddr,
    id: NodeId,
}

pub(crate) struct RlpxEnv {
    serving: Serving,
    target: Target,
    key: Keypair,
    /// With the network's server: a client `Network` and its bench session.
    net_client: Option<(
        devmux_network::Network,
        Arc<tokio::sync::Mutex<devmux_network::MessageStream>>,
    )>,
}

/// The session protocol whose capability (`bench/1`, four message ids) carries
/// the benchmark through the network's RLPx server.
pub(crate) const SESSION: &str = "/bench/1/1.0.0";

impl RlpxEnv {
    /// crates/rlpx on both ends.
    pub(crate) async fn start() -> anyhow::Result<Self> {
        let server = crate::split::on_server(Server::start()).await?;
        let target = Target {
            addr: server.addr,
            id: server.id,
        };
        Ok(Self {
            serving: Serving::Direct { _server: server },
            target,
            key: secret()?,
            net_client: None,
        })
    }

    /// The network's RLPx server, and for throughput and round trips a client
    /// `Network` that dials it by enode (the session handler hands its stream to
    /// the benchmark). Setup and memory use crates/rlpx dialers against it.
    pub(crate) async fn start_network() -> anyhow::Result<Self> {
        let server = crate::split::on_server(async {
            let mut registrar = devmux_network::Registrar::new();
            registrar.session(
                [devmux_network::SessionProtocol::new(SESSION, 4)?],
                crate::devmux::session_server_handler,
            )?;
            Ok(devmux_network::Network::start(
                crate::devmux::network_config(false),
                NodeKey::generate(),
                registrar,
            )
            .await?)
        })
        .await?;
        let enode: devmux_identity::Enode = server.local_addr().parse()?;
        let target = Target {
            addr: enode.addr,
            id: enode.id.0,
        };
        let (client, stream) =
            crate::devmux::bridged_client(false, SESSION, &server.local_addr()).await?;
        Ok(Self {
            serving: Serving::Network(server),
            target,
            key: secret()?,
            net_client: Some((client, Arc::new(tokio::sync::Mutex::new(stream)))),
        })
    }

    pub(crate) async fn shutdown(self) {
        if let Some((client, _)) = self.net_client {
            client.shutdown().await;
        }
        if let Serving::Network(server) = self.serving {
            server.shutdown().await;
        }
    }

    /// One session, `total` bytes in 64 KiB capability messages, verified by the server.
    pub(crate) async fn throughput(&self, total: u64) -> anyhow::Result<f64> {
        if let Some((_, stream)) = &self.net_client {
            let mut stream = stream.lock().await;
            let t = Instant::now();
            crate::devmux::message_sink_session(&mut stream, 1, total).await?;
            return Ok(mib_per_s(total, t.elapsed()));
        }
        let (mut r, mut w) = session(self.target.addr, &self.key, &self.target.id).await?;
        let t = Instant::now();
        let mut header = 1u64.to_be_bytes().to_vec();
        header.extend_from_slice(&total.to_be_bytes());
        w.send_capability(0, CODE_HEADER, &header).await?;
        let mut off = 0u64;
        while off < total {
            let n = (total - off).min(CHUNK as u64) as usize;
            w.send_capability(0, CODE_DATA, pattern::slice(1, off, n))
                .await?;
            off += n as u64;
        }
        let ack = recv_capability(&mut r, &mut w).await?;
        let elapsed = t.elapsed();
        ensure!(ack.0 == CODE_ACK, "unexpected code {}", ack.0);
        pattern::check_ack(&ack.1, total)?;
        let _ = w
            .disconnect(devmux_rlpx::DisconnectReason::ClientQuitting)
            .await;
        Ok(mib_per_s(total, elapsed))
    }

    pub(crate) async fn rtt(
        &self,
        warmup: usize,
        n: usize,
        size: usize,
    ) -> anyhow::Result<RttResult> {
        if let Some((_, stream)) = &self.net_client {
            let mut stream = stream.lock().await;
            return Ok(RttResult::from_samples(
                crate::devmux::message_echo_session(&mut stream, warmup, n, size).await?,
            ));
        }
        let (mut r, mut w) = session(self.target.addr, &self.key, &self.target.id).await?;
        let mut out = Vec::with_capacity(n);
        for i in 0..(warmup + n) {
            let msg = pattern::slice(5, (i * size) as u64, size);
            let t = Instant::now();
            w.send_capability(0, CODE_ECHO, msg).await?;
            let (code, back) = recv_capability(&mut r, &mut w).await?;
            let dt = t.elapsed();
            ensure!(
                code == CODE_ECHO && back[..] == *msg,
                "echo came back different"
            );
            if i >= warmup {
                out.push(dt);
            }
        }
        let _ = w
            .disconnect(devmux_rlpx::DisconnectReason::ClientQuitting)
            .await;
        Ok(RttResult::from_samples(out))
    }

    /// An echo channel: the session of the client `Network` (network's server),
    /// or a crates/rlpx session.
    pub(crate) async fn echo(&self) -> anyhow::Result<Box<dyn crate::echo::Echo>> {
        if let Some((_, stream)) = &self.net_client {
            return Ok(Box::new(crate::echo::MessageEcho {
                stream: stream.clone().lock_owned().await,
                code: CODE_ECHO,
            }));
        }
        let (r, w) = session(self.target.addr, &self.key, &self.target.id).await?;
        Ok(Box::new(SessionEcho { r, w }))
    }

    /// TCP connect → ECIES → Hello both ways → one echoed capability message.
    /// A fresh key per connection (generated before the clock starts): the
    /// network's server keeps one session per node.
    pub(crate) async fn setup(&self, parallel: usize, per: usize) -> anyhow::Result<SetupResult> {
        let (addr, id) = (self.target.addr, self.target.id);
        let keys = Arc::new(
            (0..parallel * per)
                .map(|_| secret())
                .collect::<anyhow::Result<Vec<_>>>()?,
        );
        let samples = raw::setup_workers(parallel, per, move |w, i| {
            let key = keys[w * per + i];
            async move {
                let t = Instant::now();
                let (mut r, mut wr) = session(addr, &key, &id).await?;
                let msg = pattern::slice(w as u64, i as u64, 32);
                wr.send_capability(0, CODE_ECHO, msg).await?;
                let (code, back) = recv_capability(&mut r, &mut wr).await?;
                let dt = t.elapsed();
                ensure!(
                    code == CODE_ECHO && back[..] == *msg,
                    "echo came back different"
                );
                Ok(dt)
            }
        })
        .await?;
        Ok(SetupResult::from_samples(samples))
    }

    /// ECIES auth/ack only (TCP connect included), no Hello.
    pub(crate) async fn ecies(&self, parallel: usize, per: usize) -> anyhow::Result<SetupResult> {
        let (addr, id, key) = (self.target.addr, self.target.id, self.key);
        let samples = raw::setup_workers(parallel, per, move |_, _| async move {
            let t = Instant::now();
            let ecies = ecies_connect(addr, &key, &id).await?;
            let dt = t.elapsed();
            ensure!(ecies.remote_id() == &id, "wrong remote");
            Ok(dt)
        })
        .await?;
        Ok(SetupResult::from_samples(samples))
    }
}

pub(crate) async fn recv_capability(
    r: &mut Reader,
    w: &mut Writer,
) -> anyhow::Result<(u8, bytes::Bytes)> {
    loop {
        match r.recv().await? {
            Incoming::Ping => w.pong().await?,
            Incoming::Pong => {}
            Incoming::Disconnect(reason) => bail!("peer disconnected: {reason:?}"),
            Incoming::Capability { id, payload, .. } => return Ok((id, payload)),
        }
    }
}

/// Memory child: `n` idle sessions, both ends in this process; each end is a
/// task waiting in `recv` and holding its writer, as a server would run it.
pub(crate) async fn idle_connections(
    n: usize,
    concurrency: usize,
) -> anyhow::Result<Box<dyn std::any::Any>> {
    let server = Server::start().await?;
    let (addr, id) = (server.addr, server.id);
    let keys = (0..n)
        .map(|_| secret())
        .collect::<anyhow::Result<Vec<_>>>()?;
    crate::idle::mark_baseline();
    idle_sessions(addr, id, keys, concurrency).await?;
    let count = server.sessions.clone();
    crate::idle::wait_until(Duration::from_secs(30), move || {
        count.load(Ordering::Relaxed) >= n
    })
    .await
    .context("server sessions")?;
    Ok(Box::new(server))
}

/// Memory child for the network's RLPx server: `n` crates/rlpx sessions (fresh
/// keys) to a `Network`, each client end a task waiting in `recv`.
pub(crate) async fn idle_connections_network(
    n: usize,
    concurrency: usize,
) -> anyhow::Result<Box<dyn std::any::Any>> {
    let mut registrar = devmux_network::Registrar::new();
    registrar.session(
        [devmux_network::SessionProtocol::new(SESSION, 4)?],
        crate::devmux::session_server_handler,
    )?;
    let server = devmux_network::Network::start(
        crate::devmux::network_config(false),
        NodeKey::generate(),
        registrar,
    )
    .await?;
    let enode: devmux_identity::Enode = server.local_addr().parse()?;
    let keys = (0..n)
        .map(|_| secret())
        .collect::<anyhow::Result<Vec<_>>>()?;
    crate::idle::mark_baseline();
    idle_sessions(enode.addr, enode.id.0, keys, concurrency).await?;
    let s = server.clone();
    crate::idle::wait_until(Duration::from_secs(30), move || s.peers().len() >= n).await?;
    Ok(Box::new(server))
}

async fn idle_sessions(
    addr: SocketAddr,
    id: NodeId,
    keys: Vec<Keypair>,
    concurrency: usize,
) -> anyhow::Result<()> {
    crate::idle::open_all(keys, concurrency, |key| async move {
        let (mut r, mut w) = session(addr, &key, &id).await?;
        tokio::spawn(async move {
            let _ = serve_session(&mut r, &mut w).await;
        });
        Ok(())
    })
    .await?;
    Ok(())
}

/// A crates/rlpx session as an echo channel.
struct SessionEcho {
    r: Reader,
    w: Writer,
}

impl crate::echo::Echo for SessionEcho {
    fn once(
        &mut self,
        i: u64,
        size: usize,
    ) -> futures::future::BoxFuture<'_, anyhow::Result<Duration>> {
        Box::pin(async move {
            let msg = pattern::slice(5, i * size as u64, size);
            let t = Instant::now();
            self.w.send_capability(0, CODE_ECHO, msg).await?;
            let (code, back) = recv_capability(&mut self.r, &mut self.w).await?;
            let dt = t.elapsed();
            ensure!(
                code == CODE_ECHO && back[..] == *msg,
                "echo came back different"
            );
            Ok(dt)
        })
    }
}

impl crate::stack::Stack for RlpxEnv {
    /// One session per connection: `streams` is 1.
    fn throughput(&self, _streams: usize, bytes: u64) -> Fut<'_, f64> {
        Box::pin(RlpxEnv::throughput(self, bytes))
    }
    fn rtt(&self, warmup: usize, rounds: usize, size: usize) -> Fut<'_, RttResult> {
        Box::pin(RlpxEnv::rtt(self, warmup, rounds, size))
    }
    fn echo(&self) -> Fut<'_, Box<dyn crate::echo::Echo>> {
        Box::pin(RlpxEnv::echo(self))
    }
    fn setup(&self, parallel: usize, per: usize) -> Fut<'_, SetupResult> {
        Box::pin(RlpxEnv::setup(self, parallel, per))
    }
    fn handshakes(&self, parallel: usize, per: usize) -> Option<Fut<'_, SetupResult>> {
        // The ECIES handshake alone, against crates/rlpx's own server.
        matches!(self.serving, Serving::Direct { .. })
            .then(|| Box::pin(RlpxEnv::ecies(self, parallel, per)) as Fut<'_, SetupResult>)
    }
    fn shutdown(self: Box<Self>) -> futures::future::BoxFuture<'static, ()> {
        Box::pin(RlpxEnv::shutdown(*self))
    }
}
