//! The `scale` section: one node holding thousands of peers.
//!
//! The node runs in a child process of its own (devmux's `Network` on either
//! carrier, or a rust-libp2p swarm with its ping), so that the RSS, CPU time and
//! open files read from /proc are the node's alone. The holding clients run in this
//! process, spread over [`HOLDING_ADDRS`] source addresses (127.0.10.1,
//! 127.0.11.1, …): one address's ephemeral ports and TIME_WAIT sockets run out long
//! before 10 000 connections in three rounds.
//!
//! Every held connection is a real peer: a key of its own, the session protocol
//! open (`/bench/1/1.0.0`, RLPx capability `bench/1`), and the node's keepalive
//! answered (libp2p ping on the stream stacks, RLPx Ping/Pong). The node counts
//! the sessions its handler holds; a step's figures are read only once it holds
//! them all, and the run fails if the node drops one while idle.
//!
//! Per stack and run: the setup rate while building up, RSS per connection at each
//! step (the node's RSS minus its RSS before the first connection, over the
//! connections held), open files at the last step, CPU time and context switches
//! per second of the idle node over [`Plan::idle`] (two keepalive periods), and a
//! legitimate client's connections (connect, handshake, session, one echo, close),
//! one after another from an address of its own while all are held.
//!
//! The node's limits are raised through its configuration only (`max_peers`,
//! `max_inbound`, per-address and per-/24 caps): every other setting, admission's
//! budgets for handshakes under way included, is the default.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context as _};
use bytes::BytesMut;
use devmux_identity::{Enode, NodeKey, PeerId};
use devmux_network::{
    encode_frame, Message, MessageStream, Network, NetworkConfig, PeerCtx, Registrar,
    SessionProtocol, PING_PROTOCOL,
};
use devmux_rlpx::NodeId;
use devmux_transport::{Connection, IncomingStreams, Upgrader};
use futures::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use futures::StreamExt;
use multistream_select::{dialer_select_proto, listener_select_proto, Version};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt as _};

use crate::stats::SetupResult;

/// The stacks this section runs: devmux's two carriers behind `Network`, and
/// rust-libp2p.
pub(crate) const STACKS: [&str; 3] = ["devmux", "libp2p", "rlpx-net"];

/// The session protocol every held connection keeps open.
const SESSION: &str = crate::rlpx::SESSION;

/// Source addresses the held connections come from, round robin.
pub(crate) const HOLDING_ADDRS: usize = 20;

/// The legitimate client's own address.
const PROBE_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 9, 1);

/// Connections being set up at once while building up.
const CONCURRENCY: usize = 32;

/// Room above the held connections, in `max_peers` and per address, for the
/// legitimate client (whose closed connections take a moment to leave the table).
const HEADROOM: usize = 64;

/// Sizes of this section.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Plan {
    /// Connections held at each step, ascending.
    pub(crate) steps: Vec<usize>,
    /// How long the idle node's CPU is measured.
    pub(crate) idle: Duration,
    /// The legitimate client's connections.
    pub(crate) probes: usize,
}

impl Plan {
    pub(crate) fn new(quick: bool, steps: &[usize]) -> Self {
        let mut steps = if steps.is_empty() {
            if quick {
                vec![100, 500, 1000]
            } else {
                vec![1000, 5000, 10_000]
            }
        } else {
            steps.to_vec()
        };
        steps.sort_unstable();
        steps.dedup();
        Self {
            steps,
            // Two keepalive periods (15 s on both carriers and in rust-libp2p's ping).
            idle: Duration::from_secs(if quick { 5 } else { 30 }),
            probes: if quick { 20 } else { 100 },
        }
    }

    pub(crate) fn held(&self) -> usize {
        self.steps.last().copied().unwrap_or(0)
    }
}

/// What one run of one stack measured.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Run {
    pub(crate) stack: String,
    /// Connections per second while building up to the last step.
    pub(crate) build_rate: f64,
    /// Per step: connections held, node RSS (KiB), KiB per connection, open files.
    pub(crate) steps: Vec<Step>,
    pub(crate) baseline_kib: f64,
    /// The idle node's CPU, in percent of one core.
    pub(crate) idle_cpu_pct: f64,
    /// The idle node's context switches per second, all threads.
    pub(crate) idle_switches_per_s: f64,
    /// KiB per connection at the end of the idle time: with every keepalive running.
    pub(crate) idle_per_conn_kib: f64,
    pub(crate) probe_rate: f64,
    pub(crate) probe_p50_ms: f64,
    pub(crate) probe_p99_ms: f64,
    /// Held connections tried again while building up ([`TRIES`]).
    pub(crate) retries: usize,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Step {
    pub(crate) held: usize,
    pub(crate) rss_kib: f64,
    pub(crate) per_conn_kib: f64,
    pub(crate) fds: usize,
}

/// The node's first line on stdout: where to reach it.
#[derive(Debug, Serialize, Deserialize)]
struct NodeHello {
    addr: SocketAddr,
    /// PeerId (stream stacks) or enode URL (RLPx).
    id: String,
}

/// One live session of the node's handler, counted while it lives.
struct Counted(Arc<AtomicUsize>);

impl Counted {
    fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(count.clone())
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// devmux's limits for `held` connections, set through `NetworkConfig` only.
fn network_config(p2p: bool, held: usize) -> NetworkConfig {
    let mut config = NetworkConfig::default()
        .with_p2p_server(p2p)
        .with_listen_addr(([127, 0, 0, 1], 0).into());
    let max = held + HEADROOM;
    config.pool.max_peers = max;
    config.pool.max_inbound = Some(max);
    // Each holding address is in a /24 of its own.
    let per_address = held.div_ceil(HOLDING_ADDRS) + HEADROOM;
    config.pool.max_per_ip = per_address;
    config.pool.max_per_subnet = per_address;
    config
}

/// Runs in the child: starts the node, prints where it is, answers `count` on
/// stdin with the sessions it holds, and exits when stdin closes.
pub(crate) async fn node_child(stack: &str, held: usize) -> anyhow::Result<()> {
    let sessions = Arc::new(AtomicUsize::new(0));
    let (hello, _node) = match stack {
        "devmux" | "rlpx-net" => start_devmux(stack == "devmux", held, &sessions).await?,
        "libp2p" => start_libp2p(&sessions).await?,
        other => bail!("no scale node for {other}"),
    };
    println!("{}", serde_json::to_string(&hello)?);
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        if line.trim() == "count" {
            println!("{}", sessions.load(Ordering::Relaxed));
        }
    }
    Ok(())
}

async fn start_devmux(
    p2p: bool,
    held: usize,
    sessions: &Arc<AtomicUsize>,
) -> anyhow::Result<(NodeHello, Box<dyn std::any::Any>)> {
    let mut registrar = Registrar::new();
    let live = sessions.clone();
    registrar.session(
        [SessionProtocol::new(SESSION, 4)?],
        // An echo written as one async block that owns the stream, as rust-libp2p's
        // `echo_bytes` below is one async fn: the context is not kept, and the stream
        // is not passed on into a second future that would hold it again.
        move |_peer: PeerCtx, mut stream: MessageStream| {
            let counted = Counted::new(&live);
            async move {
                let _counted = counted;
                while let Some(msg) = stream.next().await {
                    stream.send(msg?).await?;
                }
                anyhow::Ok(())
            }
        },
    )?;
    let net = Network::start(network_config(p2p, held), NodeKey::generate(), registrar).await?;
    let hello = if p2p {
        NodeHello {
            addr: net.listen_addr(),
            id: net.local_peer_id().to_string(),
        }
    } else {
        let enode: Enode = net.local_addr().parse()?;
        NodeHello {
            addr: enode.addr,
            id: net.local_addr(),
        }
    };
    Ok((hello, Box::new(net)))
}

#[derive(libp2p::swarm::NetworkBehaviour)]
struct Libp2pNode {
    stream: libp2p_stream::Behaviour,
    ping: libp2p::ping::Behaviour,
}

/// rust-libp2p with default settings (tcp, noise, yamux, ping every 15 s), the
/// idle-connection timeout the other sections use, and a byte-echo handler on
/// the session protocol.
async fn start_libp2p(
    sessions: &Arc<AtomicUsize>,
) -> anyhow::Result<(NodeHello, Box<dyn std::any::Any>)> {
    use libp2p::multiaddr::Protocol;
    let key = NodeKey::generate();
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(key.libp2p_keypair())
        .with_tokio()
        .with_tcp(
            libp2p::tcp::Config::default(),
            libp2p::noise::Config::new,
            libp2p::yamux::Config::default,
        )?
        .with_behaviour(|_| Libp2pNode {
            stream: libp2p_stream::Behaviour::new(),
            ping: libp2p::ping::Behaviour::default(),
        })
        .map_err(|e| anyhow!("behaviour: {e:?}"))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
        .build();
    let peer = *swarm.local_peer_id();
    let mut incoming = swarm
        .behaviour()
        .stream
        .new_control()
        .accept(libp2p::StreamProtocol::new(SESSION))?;
    swarm.listen_on("/ip4/127.0.0.1/tcp/0".parse()?)?;
    let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
    let driver = tokio::spawn(async move {
        let mut addr_tx = Some(addr_tx);
        loop {
            if let libp2p::swarm::SwarmEvent::NewListenAddr { address, .. } =
                swarm.select_next_some().await
            {
                if let Some(tx) = addr_tx.take() {
                    let _ = tx.send(address);
                }
            }
        }
    });
    let live = sessions.clone();
    let acceptor = tokio::spawn(async move {
        while let Some((_, stream)) = incoming.next().await {
            let counted = Counted::new(&live);
            tokio::spawn(async move {
                let _counted = counted;
                let _ = echo_bytes(stream).await;
            });
        }
    });
    let address = tokio::time::timeout(Duration::from_secs(5), addr_rx)
        .await
        .context("libp2p listen address")??;
    let mut ip = None;
    let mut port = None;
    for p in address.iter() {
        match p {
            Protocol::Ip4(a) => ip = Some(IpAddr::V4(a)),
            Protocol::Tcp(p) => port = Some(p),
            _ => {}
        }
    }
    let addr = SocketAddr::new(
        ip.context("no IPv4 in the listen address")?,
        port.context("no TCP port in the listen address")?,
    );
    let hello = NodeHello {
        addr,
        id: peer.to_string(),
    };
    Ok((
        hello,
        Box::new((AbortOnDrop(driver), AbortOnDrop(acceptor))),
    ))
}

/// Echoes bytes as they arrive, with a buffer small enough not to weigh on the
/// memory per connection.
async fn echo_bytes<S: AsyncRead + AsyncWrite + Unpin>(mut s: S) -> std::io::Result<()> {
    let mut buf = [0u8; 64];
    loop {
        let n = s.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        s.write_all(&buf[..n]).await?;
        s.flush().await?;
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The node as the benchmark reaches it.
#[derive(Clone)]
enum Target {
    P2p { addr: SocketAddr, peer: PeerId },
    Rlpx { addr: SocketAddr, id: NodeId },
}

impl Target {
    fn parse(stack: &str, hello: &NodeHello) -> anyhow::Result<Self> {
        Ok(if stack == "rlpx-net" {
            let enode: Enode = hello.id.parse()?;
            Self::Rlpx {
                addr: hello.addr,
                id: enode.id.0,
            }
        } else {
            Self::P2p {
                addr: hello.addr,
                peer: hello.id.parse().map_err(|e| anyhow!("peer id: {e:?}"))?,
            }
        })
    }
}

/// The source address of held connection `i`: each in a /24 of its own.
fn holding_ip(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 10 + (i % HOLDING_ADDRS) as u8, 1))
}

/// A stream-stack client connection from `ip`, with the session open.
async fn p2p_session(
    upgrader: &Upgrader,
    addr: SocketAddr,
    peer: PeerId,
) -> anyhow::Result<(
    Connection,
    multistream_select::Negotiated<devmux_transport::Stream>,
)> {
    let conn = upgrader.dial(addr, Some(peer)).await?;
    let stream = conn.control.open_stream().await?;
    let (_, session) = dialer_select_proto(stream, [SESSION], Version::V1).await?;
    Ok((conn, session))
}

fn upgrader_from(ip: IpAddr) -> anyhow::Result<Upgrader> {
    let mut config = crate::devmux::transport_config();
    config.bind_ip = Some(ip);
    Ok(Upgrader::new(NodeKey::generate(), config)?)
}

/// Answers the node's keepalive (libp2p ping) on every stream it opens.
async fn answer_pings(mut incoming: IncomingStreams) {
    while let Some(stream) = incoming.next().await {
        tokio::spawn(async move {
            let Ok((_, mut io)) = listener_select_proto(stream, [PING_PROTOCOL]).await else {
                return;
            };
            let mut buf = [0u8; 32];
            while io.read_exact(&mut buf).await.is_ok() {
                if io.write_all(&buf).await.is_err() || io.flush().await.is_err() {
                    break;
                }
            }
        });
    }
}

/// Tries per held connection: libp2p-stream drops streams its accept queue has no
/// room for, and rust-libp2p closes some new connections while it is building up
/// (both are counted in [`Run::retries`]).
const TRIES: usize = 6;

/// Opens one held connection from `ip`, trying up to [`TRIES`] times.
async fn hold(target: &Target, ip: IpAddr, retries: &AtomicUsize) -> anyhow::Result<AbortOnDrop> {
    let mut attempt = 1;
    loop {
        let result = hold_once(target, ip).await;
        match result {
            Ok(held) => return Ok(held),
            Err(e) if attempt < TRIES => {
                attempt += 1;
                retries.fetch_add(1, Ordering::Relaxed);
                log_retry(&e);
            }
            Err(e) => return Err(e),
        }
    }
}

fn log_retry(e: &anyhow::Error) {
    if std::env::var_os("DEVMUX_BENCH_VERBOSE").is_some() {
        eprintln!("    scale: retrying a held connection: {e:#}");
    }
}

async fn hold_once(target: &Target, ip: IpAddr) -> anyhow::Result<AbortOnDrop> {
    match target {
        Target::P2p { addr, peer } => {
            let upgrader = upgrader_from(ip)?;
            let (conn, mut session) = p2p_session(&upgrader, *addr, *peer).await?;
            // The node may accept the protocol and still drop the stream (libp2p-stream
            // does when its accept queue is full): only an answer proves a session.
            echo_p2p(&mut session).await?;
            let Connection {
                control, incoming, ..
            } = conn;
            Ok(AbortOnDrop(tokio::spawn(async move {
                let _keep = (control, session);
                answer_pings(incoming).await;
            })))
        }
        Target::Rlpx { addr, id } => {
            let key = crate::rlpx::secret()?;
            let (mut r, mut w) = crate::rlpx::session_from(Some(ip), *addr, &key, id).await?;
            echo_rlpx(&mut r, &mut w).await?;
            Ok(AbortOnDrop(tokio::spawn(async move {
                // Answers Ping with Pong and echoes; ends when the node leaves.
                let _ = crate::rlpx::serve_session(&mut r, &mut w).await;
            })))
        }
    }
}

/// What the session's echo carries.
const PAYLOAD: &[u8] = b"a session message";

/// One session message echoed on a stream-stack session.
async fn echo_p2p<S: AsyncRead + AsyncWrite + Unpin>(session: &mut S) -> anyhow::Result<()> {
    let mut out = BytesMut::new();
    encode_frame(
        &Message::new(crate::rlpx::CODE_ECHO, PAYLOAD.to_vec()),
        &mut out,
    );
    session.write_all(&out).await?;
    session.flush().await?;
    let back = crate::devmux::read_frame(session).await?;
    ensure!(
        back.code == crate::rlpx::CODE_ECHO && back.payload[..] == *PAYLOAD,
        "the echo came back different"
    );
    Ok(())
}

/// One session message echoed on an RLPx session.
async fn echo_rlpx(r: &mut crate::rlpx::Reader, w: &mut crate::rlpx::Writer) -> anyhow::Result<()> {
    w.send_capability(0, crate::rlpx::CODE_ECHO, PAYLOAD)
        .await?;
    let (code, back) = crate::rlpx::recv_capability(r, w).await?;
    ensure!(
        code == crate::rlpx::CODE_ECHO && back[..] == *PAYLOAD,
        "the echo came back different"
    );
    Ok(())
}

/// The legitimate client: `n` connections one after another from [`PROBE_IP`],
/// each timed from connect to the echo of one session message, then closed.
async fn probe(target: &Target, n: usize) -> anyhow::Result<SetupResult> {
    let mut samples = Vec::with_capacity(n);
    let started = Instant::now();
    for _ in 0..n {
        match target {
            Target::P2p { addr, peer } => {
                let upgrader = upgrader_from(IpAddr::V4(PROBE_IP))?;
                let t = Instant::now();
                let (conn, mut session) = p2p_session(&upgrader, *addr, *peer).await?;
                echo_p2p(&mut session).await?;
                samples.push(t.elapsed());
                conn.control.close();
                conn.control.closed().await;
            }
            Target::Rlpx { addr, id } => {
                let key = crate::rlpx::secret()?;
                let t = Instant::now();
                let (mut r, mut w) =
                    crate::rlpx::session_from(Some(IpAddr::V4(PROBE_IP)), *addr, &key, id).await?;
                echo_rlpx(&mut r, &mut w).await?;
                samples.push(t.elapsed());
            }
        }
    }
    Ok(SetupResult::from_samples((
        samples,
        started.elapsed(),
        Duration::ZERO,
    )))
}

/// The node's child process, and its stdin/stdout.
struct NodeProcess {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    pid: String,
}

impl NodeProcess {
    async fn start(stack: &str, held: usize, threads: usize) -> anyhow::Result<(Self, NodeHello)> {
        let exe = std::env::current_exe()?;
        // A profiling aid: `DEVMUX_BENCH_NODE_WRAPPER=heaptrack` runs the node under
        // it (its figures are then the wrapper's and the profiler's too).
        let mut command = match std::env::var("DEVMUX_BENCH_NODE_WRAPPER") {
            Ok(wrapper) if !wrapper.is_empty() => {
                let mut c = tokio::process::Command::new(wrapper);
                c.arg(exe);
                c
            }
            _ => tokio::process::Command::new(exe),
        };
        let mut child = command
            .args(["--scale-node", stack, "--scale-held", &held.to_string()])
            .args(["--threads", &threads.to_string()])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .kill_on_drop(true)
            .spawn()?;
        let pid = child.id().context("node process has no pid")?.to_string();
        let stdin = child.stdin.take().context("node stdin")?;
        let stdout = child.stdout.take().context("node stdout")?;
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        // A wrapper may print lines of its own first.
        let first = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                match lines.next_line().await? {
                    Some(line) if line.starts_with('{') => return anyhow::Ok(line),
                    Some(_) => continue,
                    None => bail!("the node exited before starting"),
                }
            }
        })
        .await
        .context("the node did not start within 30 s")??;
        let hello = serde_json::from_str(&first)?;
        Ok((
            Self {
                child,
                stdin,
                lines,
                pid,
            },
            hello,
        ))
    }

    /// Sessions the node's handler holds now.
    async fn sessions(&mut self) -> anyhow::Result<usize> {
        self.stdin.write_all(b"count\n").await?;
        self.stdin.flush().await?;
        let line = tokio::time::timeout(Duration::from_secs(10), self.lines.next_line())
            .await
            .context("the node did not answer within 10 s")??
            .context("the node exited")?;
        Ok(line.trim().parse()?)
    }

    async fn wait_sessions(&mut self, n: usize, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let held = self.sessions().await?;
            if held >= n {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the node holds {held} sessions of {n} after {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn rss_kib(&self) -> anyhow::Result<f64> {
        Ok(crate::stats::process_rss_bytes(&self.pid)? as f64 / 1024.0)
    }

    fn fds(&self) -> anyhow::Result<usize> {
        Ok(std::fs::read_dir(format!("/proc/{}/fd", self.pid))?.count())
    }

    /// Context switches of every live thread of the node.
    fn switches(&self) -> anyhow::Result<u64> {
        let mut total = 0;
        for task in std::fs::read_dir(format!("/proc/{}/task", self.pid))? {
            let status = std::fs::read_to_string(task?.path().join("status")).unwrap_or_default();
            for line in status.lines() {
                if line.starts_with("voluntary_ctxt_switches:")
                    || line.starts_with("nonvoluntary_ctxt_switches:")
                {
                    total += line
                        .split_whitespace()
                        .nth(1)
                        .and_then(|v| v.parse::<u64>().ok())
                        .unwrap_or(0);
                }
            }
        }
        Ok(total)
    }

    async fn stop(mut self) {
        drop(self.stdin);
        let _ = self.child.kill().await;
    }
}

/// One run of `stack`: builds up to every step, measures, idles, probes.
pub(crate) async fn run(stack: &str, plan: &Plan, threads: usize) -> anyhow::Result<Run> {
    let held_max = plan.held();
    let (mut node, hello) = NodeProcess::start(stack, held_max, threads).await?;
    let target = Target::parse(stack, &hello)?;
    // Let the node's start-up allocations settle before the baseline.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let baseline_kib = node.rss_kib()?;
    let retries = Arc::new(AtomicUsize::new(0));
    let mut held: Vec<AbortOnDrop> = Vec::with_capacity(held_max);
    let mut building = Duration::ZERO;
    let mut steps = Vec::new();
    for &n in &plan.steps {
        let t = Instant::now();
        let from = held.len();
        let more = crate::idle::open_all(from..n, CONCURRENCY, |i| {
            let (target, retries) = (target.clone(), retries.clone());
            async move { hold(&target, holding_ip(i), &retries).await }
        })
        .await
        .with_context(|| format!("{stack}: building up to {n} connections"))?;
        held.extend(more);
        building += t.elapsed();
        node.wait_sessions(n, Duration::from_secs(60)).await?;
        // Handshake leftovers drain, buffers are released.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let rss_kib = node.rss_kib()?;
        let step = Step {
            held: n,
            rss_kib,
            per_conn_kib: (rss_kib - baseline_kib) / n as f64,
            fds: node.fds()?,
        };
        eprintln!(
            "  {stack:<10} scale      {n:>6} held: node RSS {:.0} MiB, {:.1} KiB per connection, {} fds",
            rss_kib / 1024.0,
            step.per_conn_kib,
            step.fds
        );
        steps.push(step);
    }
    let cpu0 = crate::stats::process_cpu_time(&node.pid);
    let switches0 = node.switches()?;
    let t = Instant::now();
    tokio::time::sleep(plan.idle).await;
    let secs = t.elapsed().as_secs_f64();
    let idle_cpu_pct =
        (crate::stats::process_cpu_time(&node.pid) - cpu0).as_secs_f64() / secs * 100.0;
    let idle_switches_per_s = node.switches()?.saturating_sub(switches0) as f64 / secs;
    // Again after two keepalive periods: what the steps read is before the first ping.
    let idle_per_conn_kib = (node.rss_kib()? - baseline_kib) / held_max as f64;
    let still = node.sessions().await?;
    ensure!(
        still >= held_max,
        "{stack}: the node dropped {} of {held_max} idle sessions within {:?}",
        held_max - still,
        plan.idle
    );
    let probe = probe(&target, plan.probes)
        .await
        .with_context(|| format!("{stack}: the legitimate client"))?;
    eprintln!(
        "  {stack:<10} scale      idle at {held_max}: {idle_cpu_pct:.2} % of a core, {idle_switches_per_s:.0} switches/s, \
         {idle_per_conn_kib:.1} KiB per connection after; a new client {:.0} conn/s, p50 {:.2} ms, p99 {:.2} ms",
        probe.rate, probe.p50_ms, probe.p99_ms
    );
    node.stop().await;
    drop(held);
    Ok(Run {
        stack: stack.to_string(),
        build_rate: held_max as f64 / building.as_secs_f64(),
        steps,
        baseline_kib,
        idle_cpu_pct,
        idle_switches_per_s,
        idle_per_conn_kib,
        probe_rate: probe.rate,
        probe_p50_ms: probe.p50_ms,
        probe_p99_ms: probe.p99_ms,
        retries: retries.load(Ordering::Relaxed),
    })
}
