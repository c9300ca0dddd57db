//! rust-libp2p with default settings: tcp + noise + yamux
//! (`tcp::Config::default()`, `noise::Config::new`, `yamux::Config::default`)
//! and `libp2p-stream` for raw streams. Keys are secp256k1, like devmux's (an
//! Ethereum node's key). The only setting changed is the swarm's idle-connection
//! timeout, raised so that idle connections in the memory test stay open.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _};
use devmux_identity::NodeKey;
use futures::StreamExt;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ConnectionId, SwarmEvent};
use libp2p::{noise, tcp, yamux, Multiaddr, PeerId, StreamProtocol, Swarm};
use tokio::sync::{mpsc, oneshot};

use crate::raw;
use crate::stats::{RttResult, SetupResult};

/// The raw byte protocol's id (raw.rs).
pub(crate) const PROTOCOL_ID: &str = "/bench/1.0.0";
const PROTOCOL: StreamProtocol = StreamProtocol::new(PROTOCOL_ID);

/// Streams re-opened because libp2p-stream dropped them (see `setup`).
pub(crate) static STREAM_RETRIES: AtomicUsize = AtomicUsize::new(0);

fn swarm(key: &NodeKey) -> anyhow::Result<Swarm<libp2p_stream::Behaviour>> {
    Ok(
        libp2p::SwarmBuilder::with_existing_identity(key.libp2p_keypair())
            .with_tokio()
            .with_tcp(
                tcp::Config::default(),
                noise::Config::new,
                yamux::Config::default,
            )?
            .with_behaviour(|_| libp2p_stream::Behaviour::new())
            .map_err(|e| anyhow!("behaviour: {e:?}"))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
            .build(),
    )
}

/// A listening swarm serving the raw byte protocol.
pub(crate) struct Server {
    pub(crate) addr: Multiaddr,
    pub(crate) peer: PeerId,
    pub(crate) established: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Server {
    pub(crate) async fn start() -> anyhow::Result<Self> {
        Self::start_on(std::net::Ipv4Addr::LOCALHOST).await
    }

    /// Listens on `ip`, port 0.
    pub(crate) async fn start_on(ip: std::net::Ipv4Addr) -> anyhow::Result<Self> {
        let key = NodeKey::generate();
        let mut sw = swarm(&key)?;
        let peer = *sw.local_peer_id();
        let mut incoming = sw.behaviour().new_control().accept(PROTOCOL)?;
        sw.listen_on(format!("/ip4/{ip}/tcp/0").parse()?)?;
        let established = Arc::new(AtomicUsize::new(0));
        let count = established.clone();
        let (addr_tx, addr_rx) = oneshot::channel();
        let driver = tokio::spawn(async move {
            let mut addr_tx = Some(addr_tx);
            loop {
                match sw.select_next_some().await {
                    SwarmEvent::NewListenAddr { address, .. } => {
                        if let Some(tx) = addr_tx.take() {
                            let _ = tx.send(address);
                        }
                    }
                    SwarmEvent::ConnectionEstablished { .. } => {
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                    SwarmEvent::ConnectionClosed { .. } => {
                        count.fetch_sub(1, Ordering::Relaxed);
                    }
                    _ => {}
                }
            }
        });
        let acceptor = tokio::spawn(async move {
            while let Some((_, stream)) = incoming.next().await {
                tokio::spawn(async move {
                    let _ = raw::serve(stream).await;
                });
            }
        });
        let addr = tokio::time::timeout(Duration::from_secs(5), addr_rx)
            .await
            .context("libp2p listen address")??;
        Ok(Self {
            addr,
            peer,
            established,
            tasks: vec![driver, acceptor],
        })
    }
}

enum Cmd {
    Dial(
        Multiaddr,
        PeerId,
        oneshot::Sender<Result<ConnectionId, String>>,
    ),
    Close(ConnectionId, oneshot::Sender<()>),
}

/// A dialing swarm driven by its own task; commands go through a channel.
pub(crate) struct Client {
    cmd: mpsc::Sender<Cmd>,
    pub(crate) control: libp2p_stream::Control,
    driver: tokio::task::JoinHandle<()>,
}

impl Drop for Client {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

impl Client {
    pub(crate) fn start() -> anyhow::Result<Self> {
        let mut sw = swarm(&NodeKey::generate())?;
        let control = sw.behaviour().new_control();
        let (cmd, mut rx) = mpsc::channel::<Cmd>(64);
        let driver = tokio::spawn(async move {
            let mut dials: HashMap<ConnectionId, oneshot::Sender<Result<ConnectionId, String>>> =
                HashMap::new();
            let mut closes: HashMap<ConnectionId, oneshot::Sender<()>> = HashMap::new();
            loop {
                tokio::select! {
                    cmd = rx.recv() => match cmd {
                        None => break,
                        Some(Cmd::Dial(addr, peer, done)) => {
                            let opts = DialOpts::peer_id(peer)
                                .addresses(vec![addr])
                                .condition(PeerCondition::Always)
                                .build();
                            let id = opts.connection_id();
                            match sw.dial(opts) {
                                Ok(()) => { dials.insert(id, done); }
                                Err(e) => { let _ = done.send(Err(e.to_string())); }
                            }
                        }
                        Some(Cmd::Close(id, done)) => {
                            if sw.close_connection(id) {
                                closes.insert(id, done);
                            } else {
                                let _ = done.send(());
                            }
                        }
                    },
                    event = sw.select_next_some() => match event {
                        SwarmEvent::ConnectionEstablished { connection_id, .. } => {
                            if let Some(done) = dials.remove(&connection_id) {
                                let _ = done.send(Ok(connection_id));
                            }
                        }
                        SwarmEvent::OutgoingConnectionError { connection_id, error, .. } => {
                            if let Some(done) = dials.remove(&connection_id) {
                                let _ = done.send(Err(error.to_string()));
                            }
                        }
                        SwarmEvent::ConnectionClosed { connection_id, .. } => {
                            if let Some(done) = closes.remove(&connection_id) {
                                let _ = done.send(());
                            }
                        }
                        _ => {}
                    },
                }
            }
        });
        Ok(Self {
            cmd,
            control,
            driver,
        })
    }

    /// Opens a new connection (even if one exists) and returns once it is established.
    pub(crate) async fn dial(
        &self,
        addr: &Multiaddr,
        peer: PeerId,
    ) -> anyhow::Result<ConnectionId> {
        let (tx, rx) = oneshot::channel();
        self.cmd
            .send(Cmd::Dial(addr.clone(), peer, tx))
            .await
            .map_err(|_| anyhow!("swarm task gone"))?;
        rx.await?.map_err(|e| anyhow!("libp2p dial: {e}"))
    }

    /// Closes a connection and waits until the swarm reports it closed.
    pub(crate) async fn close(&self, id: ConnectionId) -> anyhow::Result<()> {
        let (tx, rx) = oneshot::channel();
        self.cmd
            .send(Cmd::Close(id, tx))
            .await
            .map_err(|_| anyhow!("swarm task gone"))?;
        Ok(rx.await?)
    }

    pub(crate) async fn open(&self, peer: PeerId) -> anyhow::Result<libp2p::Stream> {
        let mut control = self.control.clone();
        Ok(control.open_stream(peer, PROTOCOL).await?)
    }
}

pub(crate) struct Libp2pEnv {
    server: Server,
    client: Client,
}

impl Libp2pEnv {
    pub(crate) async fn start() -> anyhow::Result<Self> {
        let server = crate::split::on_server(Server::start()).await?;
        let client = Client::start()?;
        client.dial(&server.addr, server.peer).await?;
        Ok(Self { server, client })
    }

    pub(crate) async fn throughput(&self, streams: usize, total: u64) -> anyhow::Result<f64> {
        let per = total / streams as u64;
        let mut opened = Vec::with_capacity(streams);
        for i in 0..streams {
            opened.push(self.ready_stream(i as u64, per).await?);
        }
        raw::sink_all(opened, per).await
    }

    /// A stream with a sink announced and the receiver ready. libp2p-stream drops
    /// an inbound stream when its accept queue (one slot) is full, which happens
    /// when streams are opened back to back: the opener then sees its stream
    /// reset, and opens another (counted in `STREAM_RETRIES`).
    async fn ready_stream(&self, seed: u64, len: u64) -> anyhow::Result<libp2p::Stream> {
        let mut attempt = 0;
        loop {
            let mut s = self.client.open(self.server.peer).await?;
            match raw::sink_start(&mut s, seed, len).await {
                Ok(()) => return Ok(s),
                Err(_) if attempt < 10 => {
                    attempt += 1;
                    STREAM_RETRIES.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => return Err(e),
            }
        }
    }

    pub(crate) async fn rtt(
        &self,
        warmup: usize,
        n: usize,
        size: usize,
    ) -> anyhow::Result<RttResult> {
        let mut s = self.client.open(self.server.peer).await?;
        Ok(RttResult::from_samples(
            raw::echo_rounds(&mut s, warmup, n, size).await?,
        ))
    }

    /// An echo channel: a libp2p-stream stream.
    pub(crate) async fn echo(&self) -> anyhow::Result<Box<dyn crate::echo::Echo>> {
        let s = self.client.open(self.server.peer).await?;
        Ok(Box::new(crate::echo::RawEcho::start(s).await?))
    }

    /// Dial → established → stream opened and negotiated → one echoed message;
    /// then the connection is closed before the next. One client swarm per worker.
    pub(crate) async fn setup(&self, parallel: usize, per: usize) -> anyhow::Result<SetupResult> {
        let clients = (0..parallel)
            .map(|_| Client::start())
            .collect::<anyhow::Result<Vec<_>>>()?;
        let clients = Arc::new(clients);
        let (addr, peer) = (self.server.addr.clone(), self.server.peer);
        let samples = raw::setup_workers(parallel, per, move |w, i| {
            let clients = clients.clone();
            let addr = addr.clone();
            async move {
                let c = &clients[w];
                let t = Instant::now();
                let id = c.dial(&addr, peer).await?;
                // libp2p-stream drops an inbound stream when its accept queue (one
                // slot) is full, which happens under parallel load: the opener sees
                // its stream reset. Retry on the same connection, as a user would;
                // the retries count in the latency and are reported.
                let mut attempt = 0;
                loop {
                    let mut s = c.open(peer).await?;
                    let mut back = [0u8; 32];
                    let echoed = async {
                        raw::echo_start(&mut s).await?;
                        raw::echo_once(&mut s, w as u64, i as u64, 32, &mut back).await
                    }
                    .await;
                    match echoed {
                        Ok(_) => break,
                        Err(e) if attempt < 10 => {
                            attempt += 1;
                            STREAM_RETRIES.fetch_add(1, Ordering::Relaxed);
                            let _ = e;
                        }
                        Err(e) => return Err(e),
                    }
                }
                let dt = t.elapsed();
                c.close(id).await?;
                Ok(dt)
            }
        })
        .await?;
        Ok(SetupResult::from_samples(samples))
    }
}

/// Memory child: `n` idle connections from one client swarm to one server swarm.
pub(crate) async fn idle_connections(
    n: usize,
    concurrency: usize,
) -> anyhow::Result<Box<dyn std::any::Any>> {
    let server = Server::start().await?;
    let client = Client::start()?;
    crate::idle::mark_baseline();
    let (addr, peer) = (server.addr.clone(), server.peer);
    crate::idle::open_all(0..n, concurrency, |_| client.dial(&addr, peer)).await?;
    let count = server.established.clone();
    crate::idle::wait_until(Duration::from_secs(30), move || {
        count.load(Ordering::Relaxed) >= n
    })
    .await?;
    Ok(Box::new((server, client)))
}

crate::stack::multi_stream_stack!(Libp2pEnv);
