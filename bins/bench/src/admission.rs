//! Admission under attack (`--only admission`): how long a legitimate client
//! waits to be served while a hostile peer on the same address holds stalled
//! handshakes or floods the port with connections, on four servers:
//!
//! - `devmux-p2p`: a devmux `Network` serving the stream stack (default admission);
//! - `libp2p`: a rust-libp2p swarm (default settings, libp2p-stream);
//! - `devmux-rlpx`: a devmux `Network` serving RLPx (default admission);
//! - `geth`: go-ethereum's RLPx server, a child process (`--geth PATH`; skipped
//!   with a line when no binary is found).
//!
//! Each server listens on its own loopback address; the attacker and the
//! legitimate client both connect from 127.0.0.2, so per-address budgets see them
//! as one host, as they would be behind one NAT. The client is the same for both
//! servers of a wire format: on the stream stack a devmux transport dialer (TCP →
//! Noise → yamux → one negotiated echo stream → one echoed message), on RLPx a
//! crates/rlpx dialer (TCP → ECIES → Hello with a shared `eth/69`). A fresh key
//! per try; the latency runs from the first TCP connect to the first usable byte,
//! retrying at once when a try fails (as a dialer would).
//!
//! The conditions: idle; 300 stalled handshakes (each sends the multistream
//! header, or the two-byte ECIES size prefix, and nothing more; a socket the
//! server closes is reopened 20 ms later); a flood of 500 connections per second
//! that send nothing, each held until the server closes it. A client that is not
//! served within [`ATTEMPT_DEADLINE`] counts as not served and enters the
//! percentiles at that deadline.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context as _};
use bytes::{Bytes, BytesMut};
use devmux_identity::{NodeKey, PeerId};
use devmux_network::{encode_frame, Message, Network, NetworkConfig, Registrar, SessionProtocol};
use devmux_rlpx::secp256k1::{Keypair, SECP256K1};
use devmux_rlpx::{Capability, EciesStream, NodeId, SessionConfig};
use devmux_transport::Upgrader;
use futures::io::AsyncWriteExt as _;
use multistream_select::{dialer_select_proto, Version};
use serde::Serialize;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::stats::percentile;

/// Where the attacker and the legitimate client connect from.
const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
/// How long one legitimate attempt may take before it counts as failed.
pub(crate) const ATTEMPT_DEADLINE: Duration = Duration::from_secs(10);
/// Stalled handshakes the attacker holds.
const STALLED: usize = 300;
/// Delay before the attacker reopens a stalled socket the server closed.
const STALLED_RENEWAL: Duration = Duration::from_millis(20);
/// Connections per second of the flood.
const FLOOD_RATE: u64 = 500;
/// The longest the flood holds one of its sockets.
const FLOOD_HOLD: Duration = Duration::from_secs(10);
/// Time the attack runs before the first legitimate attempt.
const WARMUP: Duration = Duration::from_secs(2);
/// The first bytes of a libp2p dialer: the multistream-select header.
const MSS_HEADER: &[u8] = b"\x13/multistream/1.0.0\n";
/// Two bytes of an EIP-8 auth size prefix, the body never follows.
const ECIES_PREFIX: &[u8] = &[0x01, 0x90];

pub(crate) const SERVERS: [&str; 4] = ["devmux-p2p", "libp2p", "devmux-rlpx", "geth"];
pub(crate) const CONDITIONS: [(&str, &str); 3] = [
    ("idle", "idle"),
    ("stalled", "during 300 stalled handshakes"),
    ("flood", "during a 500/s connect flood"),
];

fn title(server: &str) -> &'static str {
    match server {
        "devmux-p2p" => "devmux stream stack",
        "libp2p" => "rust-libp2p",
        "devmux-rlpx" => "devmux RLPx",
        "geth" => "go-ethereum RLPx",
        _ => "?",
    }
}

/// One server's figures for one condition.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Measured {
    pub(crate) server: &'static str,
    pub(crate) condition: &'static str,
    pub(crate) attempts: usize,
    /// Clients not served within [`ATTEMPT_DEADLINE`], retries included.
    pub(crate) failed: usize,
    /// Clients whose first try failed (served by a retry, or not at all).
    pub(crate) first_try_failed: usize,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) max_ms: f64,
    /// Connections the attacker opened meanwhile (stalled: reopenings included).
    pub(crate) attacker_connections: usize,
}

enum Target {
    DevmuxP2p {
        network: Network,
        addr: SocketAddr,
        peer: PeerId,
    },
    Libp2p(crate::libp2p_stack::Server, SocketAddr),
    DevmuxRlpx {
        network: Network,
        addr: SocketAddr,
        id: NodeId,
    },
    Geth(Geth),
}

impl Target {
    fn addr(&self) -> SocketAddr {
        match self {
            Self::DevmuxP2p { addr, .. } | Self::DevmuxRlpx { addr, .. } => *addr,
            Self::Libp2p(_, addr) => *addr,
            Self::Geth(g) => g.addr,
        }
    }

    fn attack_prefix(&self) -> &'static [u8] {
        match self {
            Self::DevmuxP2p { .. } | Self::Libp2p(..) => MSS_HEADER,
            Self::DevmuxRlpx { .. } | Self::Geth(_) => ECIES_PREFIX,
        }
    }

    async fn shutdown(self) {
        match self {
            Self::DevmuxP2p { network, .. } | Self::DevmuxRlpx { network, .. } => {
                network.shutdown().await
            }
            Self::Libp2p(..) => {}
            Self::Geth(mut g) => g.stop().await,
        }
    }
}

/// A devmux server on `ip`, on the server runtime, with the default admission
/// policy: only the address and the idle timeout (the benchmark's own connections
/// idle between attempts) differ from `NetworkConfig::default()`.
async fn start_devmux(p2p: bool, ip: Ipv4Addr, registrar: Registrar) -> anyhow::Result<Network> {
    crate::split::on_server(async move {
        let mut config = NetworkConfig::default()
            .with_p2p_server(p2p)
            .with_listen_addr((ip, 0).into());
        config.idle_timeout = Duration::from_secs(3600);
        Ok(Network::start(config, NodeKey::generate(), registrar).await?)
    })
    .await
}

async fn start(server: &str, geth: Option<&Path>) -> anyhow::Result<Option<Target>> {
    Ok(Some(match server {
        "devmux-p2p" => {
            let mut registrar = Registrar::new();
            registrar.request(crate::devmux::ECHO, crate::devmux::echo_handler)?;
            let network = start_devmux(true, Ipv4Addr::new(127, 0, 1, 1), registrar).await?;
            let (addr, peer) = (network.listen_addr(), network.local_peer_id());
            Target::DevmuxP2p {
                network,
                addr,
                peer,
            }
        }
        "libp2p" => {
            let ip = Ipv4Addr::new(127, 0, 2, 1);
            let server = crate::split::on_server(crate::libp2p_stack::Server::start_on(ip)).await?;
            let port = server
                .addr
                .iter()
                .find_map(|p| match p {
                    libp2p::multiaddr::Protocol::Tcp(port) => Some(port),
                    _ => None,
                })
                .context("libp2p listen port")?;
            Target::Libp2p(server, (ip, port).into())
        }
        "devmux-rlpx" => {
            let mut registrar = Registrar::new();
            registrar.session(
                [SessionProtocol::new("/eth/69/1.0.0", 18)?],
                |_peer, mut stream: devmux_network::MessageStream| async move {
                    while let Some(Ok(_)) = stream.next().await {}
                    anyhow::Ok(())
                },
            )?;
            let network = start_devmux(false, Ipv4Addr::new(127, 0, 3, 1), registrar).await?;
            let enode: devmux_identity::Enode = network.local_addr().parse()?;
            Target::DevmuxRlpx {
                network,
                addr: enode.addr,
                id: enode.id.0,
            }
        }
        _ => match geth {
            Some(path) => Target::Geth(Geth::start(path, Ipv4Addr::new(127, 0, 4, 1)).await?),
            None => return Ok(None),
        },
    }))
}

/// Finds a go-ethereum binary: `--geth`, then `geth` on `PATH`, then `~/go/bin/geth`.
pub(crate) fn find_geth(given: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = given {
        return Some(p.to_path_buf());
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("geth"))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| {
        let home = PathBuf::from(std::env::var_os("HOME")?);
        Some(home.join("go/bin/geth")).filter(|p| p.is_file())
    })
}

/// Runs every server through every condition; `attempts` legitimate connections
/// per condition.
pub(crate) async fn run(
    attempts: usize,
    servers: &[&str],
    geth: Option<&Path>,
) -> anyhow::Result<Vec<Measured>> {
    // The attacker runs on a runtime (and thread) of its own, like a host of its
    // own: its hundreds of sockets must not delay the legitimate client's first
    // bytes inside one scheduler, which no real client behind the same address
    // would suffer. The three share the machine's cores.
    let attacker = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("attacker")
        .enable_all()
        .build()?;
    let mut out = Vec::new();
    for &server in servers {
        let Some(target) = start(server, geth)
            .await
            .with_context(|| format!("{server}: start"))?
        else {
            eprintln!(
                "  admission: no go-ethereum binary (give --geth PATH); its column stays empty"
            );
            continue;
        };
        let server: &'static str = SERVERS
            .iter()
            .find(|s| **s == server)
            .copied()
            .unwrap_or("?");
        for (condition, _) in CONDITIONS {
            let m = measure(attacker.handle(), &target, server, condition, attempts)
                .await
                .with_context(|| format!("{server}: {condition}"))?;
            eprintln!(
                "  {:<20} {:<8} p50 {:>8.2} ms, p99 {:>8.2} ms, first try failed {}/{}, not served {}/{}, attacker connections {}",
                title(server),
                condition,
                m.p50_ms,
                m.p99_ms,
                m.first_try_failed,
                m.attempts,
                m.failed,
                m.attempts,
                m.attacker_connections
            );
            out.push(m);
            // Let the server wind the attack down before the next condition.
            tokio::time::sleep(Duration::from_secs(4)).await;
        }
        target.shutdown().await;
    }
    attacker.shutdown_background();
    Ok(out)
}

async fn measure(
    attacker: &tokio::runtime::Handle,
    target: &Target,
    server: &'static str,
    condition: &'static str,
    attempts: usize,
) -> anyhow::Result<Measured> {
    let stop = CancellationToken::new();
    let opened = Arc::new(AtomicUsize::new(0));
    let attack = match condition {
        "stalled" => Some(attacker.spawn(stalled(
            target.addr(),
            target.attack_prefix(),
            stop.clone(),
            opened.clone(),
        ))),
        "flood" => Some(attacker.spawn(flood(target.addr(), stop.clone(), opened.clone()))),
        _ => None,
    };
    if attack.is_some() {
        tokio::time::sleep(WARMUP).await;
    }
    let mut latencies = Vec::with_capacity(attempts);
    let (mut failed, mut first_try_failed) = (0, 0);
    let mut first_error = None;
    for i in 0..attempts {
        // A client retries at once when a try fails, as a dialer would, until it is
        // served or the deadline passes: what counts is the time until it is served.
        let t = Instant::now();
        let mut tries = 0;
        let served = loop {
            tries += 1;
            let left = ATTEMPT_DEADLINE.saturating_sub(t.elapsed());
            match tokio::time::timeout(left, legitimate(target, i)).await {
                Ok(Ok(())) => break true,
                Ok(Err(e)) if first_error.is_none() => first_error = Some(format!("{e:#}")),
                Err(_) => break false,
                Ok(Err(_)) => {}
            }
            if t.elapsed() >= ATTEMPT_DEADLINE {
                break false;
            }
        };
        if tries > 1 {
            first_try_failed += 1;
        }
        if served {
            latencies.push(t.elapsed());
        } else {
            failed += 1;
            latencies.push(ATTEMPT_DEADLINE.max(t.elapsed()));
        }
    }
    stop.cancel();
    if let Some(attack) = attack {
        attack.await?;
    }
    if let Some(e) = first_error {
        eprintln!("  {server} {condition}: first failed try: {e}");
    }
    if let Target::DevmuxP2p { network, .. } | Target::DevmuxRlpx { network, .. } = target {
        if std::env::var_os("DEVMUX_BENCH_ADMISSION_DEBUG").is_some() {
            eprintln!(
                "  {server} handshake failures so far: {:?}",
                network.counters().handshake_failures
            );
        }
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    Ok(Measured {
        server,
        condition,
        attempts,
        failed,
        first_try_failed,
        p50_ms: ms(percentile(&mut latencies, 50.0)),
        p99_ms: ms(percentile(&mut latencies, 99.0)),
        max_ms: ms(latencies.iter().copied().max().unwrap_or_default()),
        attacker_connections: opened.load(Ordering::Relaxed),
    })
}

async fn connect_from_client(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind((CLIENT_IP, 0).into())?;
    socket.connect(addr).await
}

/// One legitimate client, from connect to the first usable byte, then a clean close.
async fn legitimate(target: &Target, i: usize) -> anyhow::Result<()> {
    match target {
        Target::DevmuxP2p { addr, peer, .. } => {
            let conn = p2p_dialer()?.dial(*addr, Some(*peer)).await?;
            let stream = conn.control.open_stream().await?;
            let (_, mut io) =
                dialer_select_proto(stream, [crate::devmux::ECHO], Version::V1).await?;
            let msg = Message::new(1, Bytes::from(format!("legitimate {i}")));
            let mut out = BytesMut::new();
            encode_frame(&msg, &mut out);
            io.write_all(&out).await?;
            io.flush().await?;
            let back = crate::devmux::read_frame(&mut io).await?;
            ensure!(back == msg, "echo came back different");
            conn.control.close();
            conn.control.closed().await;
        }
        Target::Libp2p(server, addr) => {
            let peer = PeerId::from_bytes(&server.peer.to_bytes())?;
            let conn = p2p_dialer()?.dial(*addr, Some(peer)).await?;
            let stream = conn.control.open_stream().await?;
            let (_, mut io) =
                dialer_select_proto(stream, [crate::libp2p_stack::PROTOCOL_ID], Version::V1)
                    .await?;
            crate::raw::echo_start(&mut io).await?;
            let mut back = [0u8; 32];
            crate::raw::echo_once(&mut io, 11, i as u64, 32, &mut back).await?;
            conn.control.close();
            conn.control.closed().await;
        }
        Target::DevmuxRlpx { addr, id, .. } => rlpx_hello(*addr, id).await?,
        Target::Geth(g) => rlpx_hello(g.addr, &g.id).await?,
    }
    Ok(())
}

fn p2p_dialer() -> anyhow::Result<Upgrader> {
    let mut config = crate::devmux::transport_config();
    config.bind_ip = Some(IpAddr::V4(CLIENT_IP));
    Ok(Upgrader::new(NodeKey::generate(), config)?)
}

/// ECIES and Hello with `eth/69` offered: the point where an RLPx peer has been
/// admitted and could start its eth session.
async fn rlpx_hello(addr: SocketAddr, id: &NodeId) -> anyhow::Result<()> {
    let key = Keypair::from_seckey_slice(SECP256K1, &NodeKey::generate().secret_bytes())?;
    let tcp = connect_from_client(addr).await?;
    tcp.set_nodelay(true)?;
    let ecies = EciesStream::connect(tcp, &key, id).await?;
    let config = SessionConfig::new("devmux-bench").with_capability(Capability::new("eth", 69, 18));
    let established = ecies.exchange_hello(&config).await?;
    drop(established);
    Ok(())
}

/// Holds [`STALLED`] sockets that each sent `prefix` and then nothing; reopens a
/// socket [`STALLED_RENEWAL`] after the server closed it.
async fn stalled(
    addr: SocketAddr,
    prefix: &'static [u8],
    stop: CancellationToken,
    opened: Arc<AtomicUsize>,
) {
    let slots: Vec<_> = (0..STALLED)
        .map(|_| {
            let (stop, opened) = (stop.clone(), opened.clone());
            tokio::spawn(async move {
                while !stop.is_cancelled() {
                    if let Ok(mut tcp) = connect_from_client(addr).await {
                        opened.fetch_add(1, Ordering::Relaxed);
                        if tcp.write_all(prefix).await.is_ok() {
                            let mut sink = [0u8; 256];
                            // Held until the server closes it (or the benchmark moves on).
                            loop {
                                tokio::select! {
                                    _ = stop.cancelled() => return,
                                    n = tcp.read(&mut sink) => if !matches!(n, Ok(n) if n > 0) { break },
                                }
                            }
                        }
                    }
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(STALLED_RENEWAL) => {}
                    }
                }
            })
        })
        .collect();
    for slot in slots {
        let _ = slot.await;
    }
}

/// [`FLOOD_RATE`] connections per second that send nothing, each held until the
/// server closes it or [`FLOOD_HOLD`] passes.
async fn flood(addr: SocketAddr, stop: CancellationToken, opened: Arc<AtomicUsize>) {
    let tracker = tokio_util::task::TaskTracker::new();
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / FLOOD_RATE));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        let (stop, opened) = (stop.clone(), opened.clone());
        tracker.spawn(async move {
            let Ok(mut tcp) = connect_from_client(addr).await else {
                return;
            };
            opened.fetch_add(1, Ordering::Relaxed);
            let mut sink = [0u8; 256];
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = tokio::time::sleep(FLOOD_HOLD) => {}
                _ = async { while matches!(tcp.read(&mut sink).await, Ok(n) if n > 0) {} } => {}
            }
        });
    }
    tracker.close();
    tracker.wait().await;
}

/// go-ethereum as a child process: its RLPx server on `ip`, discovery off, no
/// HTTP, IPC or Engine API anyone else could reach, data in a temporary folder.
struct Geth {
    child: tokio::process::Child,
    addr: SocketAddr,
    id: NodeId,
    _dir: tempfile::TempDir,
}

impl Geth {
    async fn start(path: &Path, ip: Ipv4Addr) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let port = free_port(ip)?;
        let auth_port = free_port(ip)?;
        let key = NodeKey::generate();
        let config = dir.path().join("geth.toml");
        std::fs::write(
            &config,
            format!(
                "[Node]\nIPCPath = \"\"\nHTTPHost = \"\"\nWSHost = \"\"\nAuthAddr = \"{ip}\"\nAuthPort = {auth_port}\n\n\
                 [Node.P2P]\nListenAddr = \"{ip}:{port}\"\nNoDiscovery = true\nDiscoveryV4 = false\n\
                 DiscoveryV5 = false\nBootstrapNodes = []\nBootstrapNodesV5 = []\nStaticNodes = []\n"
            ),
        )?;
        let log = std::fs::File::create(dir.path().join("geth.log"))?;
        let child = tokio::process::Command::new(path)
            .arg("--config")
            .arg(&config)
            .arg("--datadir")
            .arg(dir.path().join("data"))
            .args(["--nodiscover", "--ipcdisable", "--verbosity", "2"])
            .args(["--nodekeyhex", &hex(&key.secret_bytes())])
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", path.display()))?;
        let keypair = Keypair::from_seckey_slice(SECP256K1, &key.secret_bytes())?;
        let id = devmux_rlpx::node_id(&keypair.public_key());
        let addr = SocketAddr::from((ip, port));
        let mut geth = Self {
            child,
            addr,
            id,
            _dir: dir,
        };
        let t = Instant::now();
        loop {
            if let Ok(Ok(())) =
                tokio::time::timeout(Duration::from_secs(2), rlpx_hello(addr, &geth.id)).await
            {
                break;
            }
            if let Some(status) = geth.child.try_wait()? {
                let log =
                    std::fs::read_to_string(geth._dir.path().join("geth.log")).unwrap_or_default();
                anyhow::bail!(
                    "geth exited ({status}): {}",
                    log.lines().rev().take(5).collect::<Vec<_>>().join(" | ")
                );
            }
            ensure!(
                t.elapsed() < Duration::from_secs(120),
                "geth not serving RLPx after 120 s"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Ok(geth)
    }

    async fn stop(&mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

fn free_port(ip: Ipv4Addr) -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind((ip, 0))?.local_addr()?.port())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The admission table: one row per condition and percentile, one column per server.
pub(crate) fn print(results: &[Measured]) {
    if results.is_empty() {
        return;
    }
    println!();
    println!(
        "admission under attack — legitimate client from 127.0.0.2, the attacker's address: time \
         until served (connect to first usable byte, retrying at once on failure; ms; not served \
         within {} s: counted at {} s)",
        ATTEMPT_DEADLINE.as_secs(),
        ATTEMPT_DEADLINE.as_secs()
    );
    let mut header = format!("{:<50}", "");
    for s in SERVERS {
        header.push_str(&format!(" {:>20}", title(s)));
    }
    println!("{header}");
    for (condition, label) in CONDITIONS {
        for (what, pick) in [
            (
                "p50",
                (|m: &Measured| format!("{:.2}", m.p50_ms)) as fn(&Measured) -> String,
            ),
            ("p99", |m: &Measured| format!("{:.2}", m.p99_ms)),
            ("first try failed", |m: &Measured| {
                format!("{}/{}", m.first_try_failed, m.attempts)
            }),
            ("not served in 10 s", |m: &Measured| {
                format!("{}/{}", m.failed, m.attempts)
            }),
        ] {
            let mut line = format!("{:<50}", format!("{what}, {label}"));
            for s in SERVERS {
                let v = results
                    .iter()
                    .find(|m| m.server == s && m.condition == condition)
                    .map_or("–".to_string(), pick);
                line.push_str(&format!(" {v:>20}"));
            }
            println!("{line}");
        }
    }
}
