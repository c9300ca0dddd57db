//! Operator probes, in the spirit of go-ethereum's `devp2p` tool: what a remote node
//! says about itself over one protocol, without starting a node.
//!
//! - [`rlpx`]: ECIES and Hello (client id, capabilities, p2p version); if eth is
//!   shared, the peer's Status, answered with the same Status (so the probe looks like
//!   a node of the peer's own network, genesis and fork id); then a p2p Ping's round
//!   trip, and a Disconnect (`DisconnectRequested`).
//! - [`p2p`]: the stream stack: Noise and yamux, libp2p identify (agent, protocols,
//!   listen and observed addresses) and libp2p ping.
//! - [`discv5`]: a discv5 PING and the ENR the node returns for itself.
//! - [`decode_enr`]: every key of an `enr:` record, human-readable.
//!
//! Every step has a deadline; a peer that is unreachable, stalls, or speaks something
//! else is an [`Error::Probe`] naming the step. The results serialise to JSON
//! (`devmux probe … --json`).
//!
//! ```no_run
//! # async fn run() -> Result<(), devmux_node::Error> {
//! let seen = devmux_node::probe::rlpx("enode://…@127.0.0.1:30303", std::time::Duration::from_secs(5)).await?;
//! println!("{} speaks {:?}", seen.client_id, seen.capabilities);
//! # Ok(()) }
//! ```

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use devmux_eth::{EthMessage, EthVersion, Status};
use devmux_identity::{Enode, NodeKey};
use devmux_network::{Network, NetworkConfig, Registrar};
use devmux_rlpx::secp256k1::{Keypair, SECP256K1};
use devmux_rlpx::{Capability, DisconnectReason, EciesStream, Incoming, SessionConfig};
use serde::Serialize;
use tokio::net::TcpStream;

pub use devmux_discovery::probe::{Discv5Probe, EnrEntry, EnrView};

use crate::Error;

/// What [`rlpx`] learnt.
#[derive(Clone, Debug, Serialize)]
pub struct RlpxProbe {
    /// The node id (128 hex digits).
    pub node_id: String,
    /// The address dialled.
    pub addr: SocketAddr,
    /// Hello's client id.
    pub client_id: String,
    /// Hello's `p2p` version.
    pub p2p_version: u64,
    /// Hello's capabilities, `name/version`.
    pub capabilities: Vec<String>,
    /// The listen port Hello states (0: none).
    pub listen_port: u16,
    /// The eth Status, when eth is shared.
    pub eth: Option<EthStatus>,
    /// Round trip of a p2p Ping, in milliseconds.
    pub rtt_ms: f64,
}

/// A peer's eth Status, version-independent.
#[derive(Clone, Debug, Serialize)]
pub struct EthStatus {
    /// The negotiated eth version.
    pub version: u8,
    /// Network id.
    pub network_id: u64,
    /// Genesis hash.
    pub genesis: String,
    /// EIP-2124 fork hash (8 hex digits).
    pub fork_hash: String,
    /// EIP-2124 next fork (0: none).
    pub fork_next: u64,
    /// The head (eth/66–68) or latest block (eth/69) hash.
    pub head: String,
    /// The latest block's number (eth/69 only).
    pub head_number: Option<u64>,
    /// The earliest block served (eth/69 only).
    pub earliest: Option<u64>,
    /// Total difficulty (eth/66–68 only), decimal.
    pub total_difficulty: Option<String>,
}

impl EthStatus {
    fn of(status: &Status) -> Self {
        let hex4 = |h: [u8; 4]| format!("0x{}", hex::encode(h));
        match status {
            Status::WithTd(s) => Self {
                version: s.version,
                network_id: s.network_id,
                genesis: s.genesis.to_string(),
                fork_hash: hex4(s.fork_id.hash.0),
                fork_next: s.fork_id.next,
                head: s.head.to_string(),
                head_number: None,
                earliest: None,
                total_difficulty: Some(s.total_difficulty.to_string()),
            },
            Status::WithRange(s) => Self {
                version: s.version,
                network_id: s.network_id,
                genesis: s.genesis.to_string(),
                fork_hash: hex4(s.fork_id.hash.0),
                fork_next: s.fork_id.next,
                head: s.latest_hash.to_string(),
                head_number: Some(s.latest),
                earliest: Some(s.earliest),
                total_difficulty: None,
            },
        }
    }
}

/// What [`p2p`] learnt.
#[derive(Clone, Debug, Serialize)]
pub struct P2pProbe {
    /// The peer's PeerId.
    pub peer_id: String,
    /// identify's `agentVersion`.
    pub agent_version: String,
    /// identify's `protocolVersion`.
    pub protocol_version: String,
    /// The protocols it says it serves.
    pub protocols: Vec<String>,
    /// The addresses it says it listens on.
    pub listen_addrs: Vec<String>,
    /// Our address as it sees it.
    pub observed_addr: Option<String>,
    /// Round trip of a libp2p ping, in milliseconds.
    pub rtt_ms: f64,
}

fn failed(target: &str, step: &str, why: impl std::fmt::Display) -> Error {
    Error::Probe {
        target: target.chars().take(60).collect(),
        why: format!("{step}: {why}"),
    }
}

/// Runs `fut` within `timeout`, naming `step` when it fails or runs out.
async fn step<T, E: std::fmt::Display>(
    target: &str,
    step: &str,
    timeout: Duration,
    fut: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, Error> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(failed(target, step, e)),
        Err(_) => Err(failed(
            target,
            step,
            format!("no answer within {timeout:?}"),
        )),
    }
}

/// Probes the RLPx node at `enode` (an `enode://` URL); each step within `timeout`.
pub async fn rlpx(enode: &str, timeout: Duration) -> Result<RlpxProbe, Error> {
    let target: Enode = enode.parse().map_err(|e| failed(enode, "enode URL", e))?;
    let key = NodeKey::generate();
    let keypair = Keypair::from_seckey_slice(SECP256K1, &key.secret_bytes())
        .map_err(|e| failed(enode, "probe key", e))?;
    let tcp = step(
        enode,
        "TCP connect",
        timeout,
        TcpStream::connect(target.addr),
    )
    .await?;
    // One small message each way at a time: no Nagle delay in the round trip.
    tcp.set_nodelay(true)
        .map_err(|e| failed(enode, "TCP connect", e))?;
    let ecies = step(
        enode,
        "ECIES handshake",
        timeout,
        EciesStream::connect(tcp, &keypair, &target.id.0),
    )
    .await?;
    let mut config = SessionConfig::new(concat!("devmux-probe/", env!("CARGO_PKG_VERSION")));
    for v in EthVersion::ALL {
        config =
            config.with_capability(Capability::new("eth", v.as_u8().into(), v.message_count()));
    }
    let session = step(enode, "Hello", timeout, ecies.exchange_hello(&config)).await?;
    let hello = session.remote_hello().clone();
    let eth = session.shared_capabilities().position("eth").and_then(|i| {
        let cap = session.shared_capabilities().as_slice().get(i)?;
        Some((i, EthVersion::from_capability(&cap.name, cap.version)?))
    });
    let (mut reader, mut writer) = session.split_with(TcpStream::into_split);

    let mut status = None;
    if let Some((index, version)) = eth {
        // The peer sends Status first; answer with the same, so that it keeps us
        // long enough to be pinged.
        let payload = step(enode, "eth Status", timeout, async {
            loop {
                match reader.recv().await? {
                    Incoming::Capability {
                        index: i,
                        id: 0,
                        payload,
                    } if i == index => return Ok::<_, devmux_rlpx::Error>(payload),
                    Incoming::Ping => writer.pong().await?,
                    Incoming::Disconnect(reason) => {
                        return Err(devmux_rlpx::Error::Disconnected(reason))
                    }
                    _ => {}
                }
            }
        })
        .await?;
        let decoded =
            EthMessage::decode(version, 0, &payload).map_err(|e| failed(enode, "eth Status", e))?;
        let EthMessage::Status(theirs) = decoded else {
            return Err(failed(
                enode,
                "eth Status",
                "the first eth message is not Status",
            ));
        };
        step(
            enode,
            "eth Status",
            timeout,
            writer.send_capability(index, 0, &payload),
        )
        .await?;
        status = Some(EthStatus::of(&theirs));
    }

    let sent = Instant::now();
    step(enode, "Ping", timeout, writer.ping()).await?;
    step(enode, "Pong", timeout, async {
        loop {
            match reader.recv().await? {
                Incoming::Pong => return Ok::<_, devmux_rlpx::Error>(()),
                Incoming::Ping => writer.pong().await?,
                Incoming::Disconnect(reason) => {
                    return Err(devmux_rlpx::Error::Disconnected(reason))
                }
                Incoming::Capability { .. } => {}
            }
        }
    })
    .await?;
    let rtt = sent.elapsed();
    let _ = tokio::time::timeout(
        timeout,
        writer.disconnect(DisconnectReason::DisconnectRequested),
    )
    .await;
    Ok(RlpxProbe {
        node_id: hex::encode(target.id.0),
        addr: target.addr,
        client_id: hello.client_id,
        p2p_version: hello.protocol_version,
        capabilities: hello
            .capabilities
            .iter()
            .map(|c| format!("{}/{}", c.name, c.version))
            .collect(),
        listen_port: hello.listen_port,
        eth: status,
        rtt_ms: rtt.as_secs_f64() * 1e3,
    })
}

/// Probes the stream-stack node at `multiaddr` (with `/p2p/<PeerId>`); each step within
/// `timeout`.
pub async fn p2p(multiaddr: &str, timeout: Duration) -> Result<P2pProbe, Error> {
    let mut config = NetworkConfig::default()
        .with_p2p_server(true)
        .with_listen_addr(SocketAddr::from(([127, 0, 0, 1], 0)));
    config.agent_version = concat!("devmux-probe/", env!("CARGO_PKG_VERSION")).to_string();
    config.transport.handshake_timeout = timeout;
    config.request_timeout = timeout;
    let network = Network::start(config, NodeKey::generate(), Registrar::new())
        .await
        .map_err(|e| failed(multiaddr, "local stream stack", e))?;
    let result = async {
        let peer = step(multiaddr, "connect", timeout, network.dial(multiaddr)).await?;
        let info = step(multiaddr, "identify", timeout, network.identify(&peer)).await?;
        let rtt = step(multiaddr, "ping", timeout, network.ping(&peer)).await?;
        Ok(P2pProbe {
            peer_id: peer.to_string(),
            agent_version: info.agent_version,
            protocol_version: info.protocol_version,
            protocols: info.protocols,
            listen_addrs: info.listen_addrs.iter().map(ToString::to_string).collect(),
            observed_addr: info.observed_addr.map(|a| a.to_string()),
            rtt_ms: rtt.as_secs_f64() * 1e3,
        })
    }
    .await;
    network.shutdown().await;
    result
}

/// Probes the discv5 node of `enr` (an `enr:` record): a PING's round trip, what the
/// PONG says, and the record the node returns for itself; each step within `timeout`.
pub async fn discv5(enr: &str, timeout: Duration) -> Result<Discv5Probe, Error> {
    devmux_discovery::probe::discv5(enr, timeout)
        .await
        .map_err(|e| failed(enr, "discv5", e))
}

/// Every key of the `enr:` record `text`, human-readable.
pub fn decode_enr(text: &str) -> Result<EnrView, Error> {
    devmux_discovery::probe::decode_enr(text).map_err(|e| failed(text, "ENR", e))
}
