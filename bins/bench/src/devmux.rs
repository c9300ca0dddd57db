//! devmux's stream stack, measured through its public API:
//!
//! - `devmux` (user-facing): a [`Network`] server with two request protocols
//!   (a verifying sink and an echo) registered in its [`Registrar`], and a
//!   client [`Network`] that dials it and uses `Network::open` → [`MessageStream`];
//! - `devmux-raw`: transport [`Upgrader`] / [`Listener`] / [`Connection`] and raw
//!   yamux streams, with the same byte protocol as rust-libp2p and TCP.
//!
//! Setup uses a transport dialer (one fresh identity per connection, generated
//! before the clock starts: the `Network` keeps one connection per peer) against
//! the `Network` server, and negotiates the echo protocol like `Network::open`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context as _};
use bytes::{Bytes, BytesMut};
use devmux_identity::{NodeKey, PeerId};
use devmux_network::{
    decode_frame, encode_frame, Message, MessageStream, Network, NetworkConfig, PeerCtx, Registrar,
};
use devmux_transport::{Connection, Listener, Upgrader};
use futures::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use multistream_select::{dialer_select_proto, listener_select_proto, Version};

use crate::pattern::{self, Verifier, CHUNK};
use crate::raw;
use crate::stats::{mib_per_s, RttResult, SetupResult};

pub(crate) const SINK: &str = "/bench/sink/1.0.0";
pub(crate) const ECHO: &str = "/bench/echo/1.0.0";
/// The byte protocol of `devmux-raw` streams (raw.rs).
const RAW: &str = "/bench/raw/1.0.0";

/// Message codes of the sink protocol.
const CODE_HEADER: u8 = 0;
const CODE_DATA: u8 = 1;
const CODE_ACK: u8 = 2;

/// Network settings for the benchmark: loopback, port 0, room for the
/// 1000-connection memory test (the default peer limits are far lower), room for
/// the 16 parallel handshakes of the setup test from one address (the default
/// budget of 8 per address makes room by closing the stalest, which a benchmark
/// client cannot tell from a failure), and no idle-connection timeout (the
/// benchmark's connection waits idle while the other stacks run). Everything else
/// is the default.
pub(crate) fn network_config(p2p: bool) -> NetworkConfig {
    let mut config = NetworkConfig::default()
        .with_p2p_server(p2p)
        .with_listen_addr(([127, 0, 0, 1], 0).into());
    config.transport = transport_config();
    config.pool.max_peers = 100_000;
    config.pool.max_inbound = Some(100_000);
    config.pool.max_per_ip = 100_000;
    config.pool.max_per_subnet = 100_000;
    config.admission.max_pending_per_ip = 64;
    config.admission.max_pending_per_subnet = 64;
    config.idle_timeout = Duration::from_secs(24 * 3600);
    config
}

/// The sink handler: header, then data messages checked against the pattern,
/// then an acknowledgement.
pub(crate) async fn sink_handler(_peer: PeerCtx, mut stream: MessageStream) -> anyhow::Result<()> {
    let Some(first) = stream.next().await else {
        return Ok(());
    };
    let first = first?;
    ensure!(
        first.code == CODE_HEADER && first.payload.len() == 16,
        "bad sink header"
    );
    let (seed, len) = (
        pattern::be_u64(&first.payload[..8]),
        pattern::be_u64(&first.payload[8..]),
    );
    let mut v = Verifier::new(seed);
    while v.received() < len {
        let msg = stream.next().await.context("stream ended early")??;
        ensure!(msg.code == CODE_DATA, "unexpected code {}", msg.code);
        v.feed(&msg.payload);
    }
    stream
        .send(Message::new(CODE_ACK, pattern::ack(&v).to_vec()))
        .await?;
    while stream.next().await.is_some() {}
    Ok(())
}

/// The echo handler: every message back unchanged.
pub(crate) async fn echo_handler(_peer: PeerCtx, mut stream: MessageStream) -> anyhow::Result<()> {
    while let Some(msg) = stream.next().await {
        stream.send(msg?).await?;
    }
    Ok(())
}

/// Message code of an echo request in the session protocol.
const CODE_ECHO: u8 = 3;

/// The session protocol's handler (RLPx capability `bench/1`): sink and echo on
/// one long-lived stream, by message code.
pub(crate) async fn session_server_handler(
    _peer: PeerCtx,
    mut stream: MessageStream,
) -> anyhow::Result<()> {
    let mut sink: Option<(Verifier, u64)> = None;
    while let Some(msg) = stream.next().await {
        let msg = msg?;
        match msg.code {
            CODE_HEADER => {
                ensure!(msg.payload.len() == 16, "bad sink header");
                let (seed, len) = (
                    pattern::be_u64(&msg.payload[..8]),
                    pattern::be_u64(&msg.payload[8..]),
                );
                sink = Some((Verifier::new(seed), len));
            }
            CODE_DATA => {
                let Some((v, len)) = sink.as_mut() else {
                    anyhow::bail!("data before header");
                };
                v.feed(&msg.payload);
                if v.received() >= *len {
                    let ack = pattern::ack(v);
                    sink = None;
                    stream.send(Message::new(CODE_ACK, ack.to_vec())).await?;
                }
            }
            CODE_ECHO => stream.send(msg).await?,
            other => anyhow::bail!("unexpected code {other}"),
        }
    }
    Ok(())
}

/// A client `Network` that dials `addr` and hands over the session stream of
/// protocol `id` that its handler receives (the handler then waits until the
/// client network shuts down).
pub(crate) async fn bridged_client(
    p2p: bool,
    id: &str,
    addr: &str,
) -> anyhow::Result<(Network, MessageStream)> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<MessageStream>(1);
    let mut registrar = Registrar::new();
    registrar.session(
        [devmux_network::SessionProtocol::new(id, 4)?],
        move |_peer: PeerCtx, stream: MessageStream| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(stream).await;
                // Keep the session: the stream is the benchmark's now.
                std::future::pending::<()>().await;
                anyhow::Ok(())
            }
        },
    )?;
    let client = Network::start(network_config(p2p), NodeKey::generate(), registrar).await?;
    client.dial(addr).await?;
    let stream = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .context("no session stream within 10 s")?
        .context("session handler gone")?;
    Ok((client, stream))
}

/// Sends `len` pattern bytes as 64 KiB messages and checks the acknowledgement;
/// the stream stays open (a session keeps it).
pub(crate) async fn message_sink_session(
    stream: &mut MessageStream,
    seed: u64,
    len: u64,
) -> anyhow::Result<()> {
    let mut header = seed.to_be_bytes().to_vec();
    header.extend_from_slice(&len.to_be_bytes());
    stream.send(Message::new(CODE_HEADER, header)).await?;
    let mut off = 0u64;
    while off < len {
        let n = (len - off).min(CHUNK as u64) as usize;
        let payload = Bytes::from_static(pattern::slice(seed, off, n));
        stream.send(Message::new(CODE_DATA, payload)).await?;
        off += n as u64;
    }
    let ack = stream.next().await.context("no acknowledgement")??;
    ensure!(ack.code == CODE_ACK, "unexpected code {}", ack.code);
    pattern::check_ack(&ack.payload, len)
}

/// `n` echo round trips of `size`-byte messages with `code` after `warmup`
/// unmeasured ones; the stream stays open.
async fn message_echo_rounds(
    stream: &mut MessageStream,
    code: u8,
    warmup: usize,
    n: usize,
    size: usize,
) -> anyhow::Result<Vec<Duration>> {
    let mut out = Vec::with_capacity(n);
    for i in 0..(warmup + n) {
        let payload = Bytes::from_static(pattern::slice(5, (i * size) as u64, size));
        let t = Instant::now();
        stream.send(Message::new(code, payload.clone())).await?;
        let back = stream.next().await.context("echo stream ended")??;
        let dt = t.elapsed();
        ensure!(
            back.code == code && back.payload == payload,
            "echo came back different"
        );
        if i >= warmup {
            out.push(dt);
        }
    }
    Ok(out)
}

/// Echo round trips over a session stream (no close).
pub(crate) async fn message_echo_session(
    stream: &mut MessageStream,
    warmup: usize,
    n: usize,
    size: usize,
) -> anyhow::Result<Vec<Duration>> {
    message_echo_rounds(stream, CODE_ECHO, warmup, n, size).await
}

/// [`message_sink_session`] on a request stream, which it then closes.
pub(crate) async fn message_sink(
    stream: &mut MessageStream,
    seed: u64,
    len: u64,
) -> anyhow::Result<()> {
    message_sink_session(stream, seed, len).await?;
    stream.close().await?;
    Ok(())
}

/// Echo round trips (code 1) on a request stream, which it then closes.
pub(crate) async fn message_echo(
    stream: &mut MessageStream,
    warmup: usize,
    n: usize,
    size: usize,
) -> anyhow::Result<Vec<Duration>> {
    let out = message_echo_rounds(stream, 1, warmup, n, size).await?;
    stream.close().await?;
    Ok(out)
}

fn registrar() -> anyhow::Result<Registrar> {
    let mut registrar = Registrar::new();
    registrar.request(SINK, sink_handler)?;
    registrar.request(ECHO, echo_handler)?;
    Ok(registrar)
}

/// The user-facing path: two `Network`s.
pub(crate) struct NetEnv {
    server: Network,
    client: Network,
    peer: PeerId,
    server_addr: SocketAddr,
}

impl NetEnv {
    pub(crate) async fn start() -> anyhow::Result<Self> {
        let server = crate::split::on_server(async {
            Ok(Network::start(network_config(true), NodeKey::generate(), registrar()?).await?)
        })
        .await?;
        let client =
            Network::start(network_config(true), NodeKey::generate(), Registrar::new()).await?;
        let peer = client.dial(&server.local_addr()).await?;
        let server_addr = server.listen_addr();
        Ok(Self {
            server,
            client,
            peer,
            server_addr,
        })
    }

    pub(crate) async fn shutdown(self) {
        self.client.shutdown().await;
        self.server.shutdown().await;
    }

    pub(crate) async fn throughput(&self, streams: usize, total: u64) -> anyhow::Result<f64> {
        let per = total / streams as u64;
        let mut opened = Vec::with_capacity(streams);
        for _ in 0..streams {
            opened.push(self.client.open(&self.peer, &[SINK]).await?.0);
        }
        let t = Instant::now();
        let tasks: Vec<_> = opened
            .into_iter()
            .enumerate()
            .map(|(i, mut s)| {
                tokio::spawn(async move { message_sink(&mut s, i as u64, per).await })
            })
            .collect();
        for task in tasks {
            task.await??;
        }
        Ok(mib_per_s(per * streams as u64, t.elapsed()))
    }

    pub(crate) async fn rtt(
        &self,
        warmup: usize,
        n: usize,
        size: usize,
    ) -> anyhow::Result<RttResult> {
        let (mut s, _) = self.client.open(&self.peer, &[ECHO]).await?;
        Ok(RttResult::from_samples(
            message_echo(&mut s, warmup, n, size).await?,
        ))
    }

    /// An echo channel: a stream of the echo request protocol.
    pub(crate) async fn echo(&self) -> anyhow::Result<Box<dyn crate::echo::Echo>> {
        let (stream, _) = self.client.open(&self.peer, &[ECHO]).await?;
        Ok(Box::new(crate::echo::MessageEcho {
            stream: Box::new(stream),
            code: 1,
        }))
    }

    /// TCP connect → Noise → yamux → a stream negotiated for the echo protocol →
    /// one echoed message, against the `Network` server.
    pub(crate) async fn setup(&self, parallel: usize, per: usize) -> anyhow::Result<SetupResult> {
        let dialers = fresh_upgraders(parallel * per)?;
        let dialers = Arc::new(dialers);
        let (addr, peer) = (self.server_addr, self.server.local_peer_id());
        let samples = raw::setup_workers(parallel, per, move |w, i| {
            let up = dialers[w * per + i].clone();
            async move {
                let t = Instant::now();
                let conn = up.dial(addr, Some(peer)).await?;
                let stream = conn.control.open_stream().await?;
                let (_, mut io) = dialer_select_proto(stream, [ECHO], Version::V1).await?;
                let msg = Message::new(
                    1,
                    Bytes::from_static(pattern::slice(w as u64, i as u64, 32)),
                );
                let mut out = BytesMut::new();
                encode_frame(&msg, &mut out);
                io.write_all(&out).await?;
                io.flush().await?;
                let back = read_frame(&mut io).await?;
                let dt = t.elapsed();
                ensure!(back == msg, "echo came back different");
                conn.control.close();
                conn.control.closed().await;
                Ok(dt)
            }
        })
        .await?;
        Ok(SetupResult::from_samples(samples))
    }
}

/// The transport settings: the defaults, unless `DEVMUX_BENCH_YAMUX_SPLIT_KIB`
/// asks for another yamux frame size (a tuning aid).
pub(crate) fn transport_config() -> devmux_transport::Config {
    let mut config = devmux_transport::Config::default();
    if let Some(kib) = std::env::var("DEVMUX_BENCH_YAMUX_SPLIT_KIB")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        config.split_send_size = kib * 1024;
    }
    config
}

fn fresh_upgraders(n: usize) -> anyhow::Result<Vec<Upgrader>> {
    (0..n)
        .map(|_| Ok(Upgrader::new(NodeKey::generate(), transport_config())?))
        .collect()
}

pub(crate) async fn read_frame<R: AsyncRead + Unpin>(io: &mut R) -> anyhow::Result<Message> {
    let mut buf = BytesMut::new();
    let mut chunk = [0u8; 256];
    loop {
        if let Some(msg) = decode_frame(&mut buf, 1 << 20)? {
            return Ok(msg);
        }
        let n = io.read(&mut chunk).await?;
        ensure!(n > 0, "stream ended before the reply");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The transport path: raw yamux streams over one `Connection`.
pub(crate) struct RawEnv {
    conn: Connection,
    addr: SocketAddr,
    peer: PeerId,
    _listener_task: AbortOnDrop,
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl RawEnv {
    pub(crate) async fn start() -> anyhow::Result<Self> {
        let server = Upgrader::new(NodeKey::generate(), transport_config())?;
        let peer = server.key().peer_id();
        let (addr, task) = crate::split::on_server(async move {
            let mut listener = Listener::bind(([127, 0, 0, 1], 0).into(), server).await?;
            let addr = listener.local_addr();
            let task = tokio::spawn(async move {
                while let Some(conn) = listener.accept().await {
                    let Ok(mut conn) = conn else { continue };
                    tokio::spawn(async move {
                        while let Some(stream) = conn.incoming.next().await {
                            tokio::spawn(async move {
                                // Negotiated like every stream of rust-libp2p's side.
                                if let Ok((_, io)) = listener_select_proto(stream, [RAW]).await {
                                    let _ = raw::serve(io).await;
                                }
                            });
                        }
                    });
                }
            });
            Ok((addr, task))
        })
        .await?;
        let client = Upgrader::new(NodeKey::generate(), transport_config())?;
        let conn = client.dial(addr, Some(peer)).await?;
        Ok(Self {
            conn,
            addr,
            peer,
            _listener_task: AbortOnDrop(task),
        })
    }

    /// An echo channel: a negotiated stream.
    pub(crate) async fn echo(&self) -> anyhow::Result<Box<dyn crate::echo::Echo>> {
        Ok(Box::new(
            crate::echo::RawEcho::start(self.stream().await?).await?,
        ))
    }

    /// A new stream, negotiated (multistream-select V1, as rust-libp2p's streams).
    async fn stream(
        &self,
    ) -> anyhow::Result<multistream_select::Negotiated<devmux_transport::Stream>> {
        let stream = self.conn.control.open_stream().await?;
        Ok(dialer_select_proto(stream, [RAW], Version::V1).await?.1)
    }

    /// TCP connect → Noise → yamux → a negotiated stream → one echoed message,
    /// against a bare transport `Listener`: the transport alone, without the
    /// `Network` server's work per connection.
    pub(crate) async fn setup(&self, parallel: usize, per: usize) -> anyhow::Result<SetupResult> {
        let dialers = Arc::new(fresh_upgraders(parallel * per)?);
        let (addr, peer) = (self.addr, self.peer);
        let samples = raw::setup_workers(parallel, per, move |w, i| {
            let up = dialers[w * per + i].clone();
            async move {
                let t = Instant::now();
                let conn = up.dial(addr, Some(peer)).await?;
                let stream = conn.control.open_stream().await?;
                let (_, mut io) = dialer_select_proto(stream, [RAW], Version::V1).await?;
                raw::echo_start(&mut io).await?;
                let mut back = [0u8; 32];
                raw::echo_once(&mut io, w as u64, i as u64, 32, &mut back).await?;
                let dt = t.elapsed();
                conn.control.close();
                conn.control.closed().await;
                Ok(dt)
            }
        })
        .await?;
        Ok(SetupResult::from_samples(samples))
    }

    pub(crate) async fn throughput(&self, streams: usize, total: u64) -> anyhow::Result<f64> {
        let per = total / streams as u64;
        let mut opened = Vec::with_capacity(streams);
        for i in 0..streams {
            let mut s = self.stream().await?;
            raw::sink_start(&mut s, i as u64, per).await?;
            opened.push(s);
        }
        raw::sink_all(opened, per).await
    }

    pub(crate) async fn rtt(
        &self,
        warmup: usize,
        n: usize,
        size: usize,
    ) -> anyhow::Result<RttResult> {
        let mut s = self.stream().await?;
        Ok(RttResult::from_samples(
            raw::echo_rounds(&mut s, warmup, n, size).await?,
        ))
    }
}

impl Drop for RawEnv {
    fn drop(&mut self) {
        self.conn.control.close();
    }
}

/// Memory child: `n` idle connections from fresh transport dialers to a
/// `Network` server, both ends in this process.
pub(crate) async fn idle_connections(
    n: usize,
    concurrency: usize,
) -> anyhow::Result<Box<dyn std::any::Any>> {
    let server = Network::start(network_config(true), NodeKey::generate(), registrar()?).await?;
    let (addr, peer) = (server.listen_addr(), server.local_peer_id());
    let dialers = fresh_upgraders(n)?;
    crate::idle::mark_baseline();
    let conns: Vec<Connection> = crate::idle::open_all(dialers, concurrency, |up| async move {
        Ok(up.dial(addr, Some(peer)).await?)
    })
    .await?;
    let s = server.clone();
    crate::idle::wait_until(Duration::from_secs(30), move || s.peers().len() >= n).await?;
    Ok(Box::new((server, conns)))
}

/// Memory child for the transport alone: `n` idle connections from fresh
/// transport dialers to a transport `Listener` that keeps each `Connection`.
pub(crate) async fn idle_connections_raw(
    n: usize,
    concurrency: usize,
) -> anyhow::Result<Box<dyn std::any::Any>> {
    let server = Upgrader::new(NodeKey::generate(), transport_config())?;
    let peer = server.key().peer_id();
    let mut listener = Listener::bind(([127, 0, 0, 1], 0).into(), server).await?;
    let addr = listener.local_addr();
    let accepted = Arc::new(std::sync::Mutex::new(Vec::with_capacity(n)));
    let keep = accepted.clone();
    let task = tokio::spawn(async move {
        while let Some(conn) = listener.accept().await {
            if let Ok(conn) = conn {
                keep.lock().unwrap_or_else(|e| e.into_inner()).push(conn);
            }
        }
    });
    let dialers = fresh_upgraders(n)?;
    crate::idle::mark_baseline();
    let conns: Vec<Connection> = crate::idle::open_all(dialers, concurrency, |up| async move {
        Ok(up.dial(addr, Some(peer)).await?)
    })
    .await?;
    let count = accepted.clone();
    crate::idle::wait_until(Duration::from_secs(30), move || {
        count.lock().map(|v| v.len()).unwrap_or(0) >= n
    })
    .await?;
    Ok(Box::new((AbortOnDrop(task), accepted, conns)))
}

crate::stack::multi_stream_stack!(NetEnv, shutdown = shutdown);

crate::stack::multi_stream_stack!(RawEnv);
