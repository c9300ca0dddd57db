//! What `test-network` shows: events as they happen, and a status table.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use devmux_eth::EthEvent;
use devmux_network::{NetworkEvent, NodeKey, PeerId, PING_PROTOCOL};
use tokio::sync::broadcast;

use crate::net::{server_list, TestNode, Testnet};

/// Shared by the printing tasks.
struct Shared {
    start: Instant,
    /// PeerId → node name, filled as nodes start.
    names: RwLock<Vec<(PeerId, String)>>,
    /// discv5 node id → node name.
    discv5_names: RwLock<Vec<([u8; 32], String)>>,
    /// Streams (or RLPx capabilities) opened, per node.
    streams: RwLock<HashMap<String, Arc<AtomicU64>>>,
    /// discv5 table entries already reported, per node.
    discovered: Mutex<HashMap<String, HashSet<[u8; 32]>>>,
}

impl Shared {
    fn name(&self, peer: &PeerId) -> String {
        self.names
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|(id, _)| id == peer)
            .map(|(_, name)| name.clone())
            .unwrap_or_else(|| short(&peer.to_string()))
    }

    fn say(&self, node: &str, what: &str, detail: String) {
        println!(
            "[{:>7.3}s] {node:<6} {what:<11} {detail}",
            self.start.elapsed().as_secs_f64()
        );
    }
}

/// Bytes as B, KiB or MiB.
fn human_bytes(n: u64) -> String {
    const KIB: u64 = 1024;
    match n {
        n if n < 10 * KIB => format!("{n} B"),
        n if n < 10 * KIB * KIB => format!("{} KiB", n / KIB),
        n => format!("{} MiB", n / (KIB * KIB)),
    }
}

/// The end of a long id, enough to tell ids apart.
fn short(id: &str) -> String {
    let tail: String = id
        .chars()
        .rev()
        .take(8)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("…{tail}")
}

/// Prints what the nodes do. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Watch {
    shared: Arc<Shared>,
}

impl Watch {
    pub(crate) fn new() -> Self {
        Self {
            shared: Arc::new(Shared {
                start: Instant::now(),
                names: RwLock::new(Vec::new()),
                discv5_names: RwLock::new(Vec::new()),
                streams: RwLock::new(HashMap::new()),
                discovered: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Learns a node's names from its key, before it starts.
    pub(crate) fn name(&self, name: &str, key: &NodeKey) {
        let shared = &self.shared;
        shared
            .names
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push((key.peer_id(), name.to_string()));
        shared
            .discv5_names
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push((key.node_id().discv5_id(), name.to_string()));
    }

    /// Follows a just-started node's network and eth events.
    pub(crate) fn follow(&self, test_node: &TestNode) {
        let node = &test_node.node;
        let name = test_node.name.clone();
        let shared = &self.shared;
        let streams = Arc::new(AtomicU64::new(0));
        shared
            .streams
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.clone(), streams.clone());
        shared.say(
            &name,
            "started",
            format!(
                "{}: {} (udp {}, rpc http://{}, head {})",
                server_list(&node.network().servers()),
                node.local_addrs().join(" + "),
                node.discovery()
                    .map(|d| d.udp_addr().to_string())
                    .unwrap_or_else(|| "-".into()),
                node.rpc_addr()
                    .map(|a| a.to_string())
                    .unwrap_or_else(|| "-".into()),
                node.chain().head().number
            ),
        );
        tokio::spawn(network_events(
            shared.clone(),
            name.clone(),
            node.network().events(),
            streams,
        ));
        tokio::spawn(eth_events(shared.clone(), name, node.eth().subscribe()));
    }

    /// Reports discovery table entries (discv5 and discv4) not reported before.
    pub(crate) fn poll_discovery(&self, net: &Testnet) {
        let shared = &self.shared;
        for test_node in &net.nodes {
            let Some(discovery) = test_node.node.discovery() else {
                continue;
            };
            for enr in discovery.table_entries() {
                let id = enr.node_id().raw();
                let new = shared
                    .discovered
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .entry(test_node.name.clone())
                    .or_default()
                    .insert(id);
                if !new {
                    continue;
                }
                let who = shared
                    .discv5_names
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .iter()
                    .find(|(known, _)| *known == id)
                    .map(|(_, name)| name.clone())
                    .unwrap_or_else(|| short(&format!("{:?}", enr.node_id())));
                let udp = enr
                    .udp4_socket()
                    .map(|a| a.to_string())
                    .unwrap_or_else(|| "-".into());
                shared.say(
                    &test_node.name,
                    "discovered",
                    format!(
                        "{who} in its discovery table (udp {udp}, seq {})",
                        enr.seq()
                    ),
                );
            }
        }
    }

    /// Prints one status table.
    pub(crate) fn print_table(&self, net: &Testnet) {
        let shared = &self.shared;
        println!(
            "── {:.0}s ── {} ─────────────────────────────────────────────",
            shared.start.elapsed().as_secs_f64(),
            net.layout.server_name()
        );
        println!(
            "{:<6} {:<8} {:>5} {:>6} {:>6} {:>4} {:>6} {:>8} {:>9} {:>9}  {:<30} peers (carrier)",
            "node",
            "servers",
            "peers",
            "in/out",
            "disc",
            "eth",
            "head",
            "streams",
            "bytes in",
            "bytes out",
            "protocols (peers)"
        );
        for test_node in &net.nodes {
            let node = &test_node.node;
            let network = node.network();
            let peers = network.peers();
            let mut protocols: BTreeMap<String, usize> = BTreeMap::new();
            for peer in &peers {
                for protocol in &peer.protocols {
                    *protocols.entry(protocol.to_string()).or_default() += 1;
                }
            }
            let protocols = if protocols.is_empty() {
                "-".to_string()
            } else {
                protocols
                    .iter()
                    .map(|(p, n)| format!("{p}×{n}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            let mut peer_names: Vec<String> = peers
                .iter()
                .map(|p| format!("{} {}", net.name_of(&p.peer_id), p.server))
                .collect();
            peer_names.sort();
            let streams = shared
                .streams
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .get(&test_node.name)
                .map(|c| c.load(Ordering::Relaxed))
                .unwrap_or(0);
            let wire = network.stats();
            println!(
                "{:<6} {:<8} {:>5} {:>6} {:>6} {:>4} {:>6} {:>8} {:>9} {:>9}  {:<30} {}",
                test_node.name,
                server_list(&network.servers()),
                peers.len(),
                format!("{}/{}", network.inbound_count(), network.outbound_count()),
                node.discovery()
                    .map(|d| d.table_size().to_string())
                    .unwrap_or_else(|| "-".into()),
                node.eth().len(),
                node.chain().head().number,
                streams,
                human_bytes(wire.bytes_in),
                human_bytes(wire.bytes_out),
                protocols,
                peer_names.join(",")
            );
        }
    }
}

async fn network_events(
    shared: Arc<Shared>,
    name: String,
    mut events: broadcast::Receiver<NetworkEvent>,
    streams: Arc<AtomicU64>,
) {
    loop {
        let event = match events.recv().await {
            Ok(event) => event,
            Err(broadcast::error::RecvError::Lagged(n)) => {
                shared.say(&name, "lagged", format!("{n} network events not shown"));
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        match event {
            NetworkEvent::PeerConnected {
                peer,
                addr,
                direction,
                server,
            } => shared.say(
                &name,
                "connected",
                format!("{} ({direction}, {server}, {addr})", shared.name(&peer)),
            ),
            NetworkEvent::PeerDisconnected {
                peer,
                reason,
                by_remote,
            } => shared.say(
                &name,
                "left",
                format!(
                    "{} ({}, {})",
                    shared.name(&peer),
                    reason
                        .map(|r| r.to_string())
                        .unwrap_or_else(|| "no reason".into()),
                    if by_remote { "their call" } else { "our call" }
                ),
            ),
            NetworkEvent::StreamOpened {
                peer,
                protocol,
                direction,
            } => {
                streams.fetch_add(1, Ordering::Relaxed);
                // Keepalive pings every few seconds would drown the rest.
                if protocol.as_str() != PING_PROTOCOL {
                    shared.say(
                        &name,
                        "negotiated",
                        format!("{protocol} with {} ({direction})", shared.name(&peer)),
                    );
                }
            }
            NetworkEvent::PeerPenalized {
                peer,
                penalty,
                reason,
            } => shared.say(
                &name,
                "penalised",
                format!("{} ({penalty:?}: {reason})", shared.name(&peer)),
            ),
            _ => {}
        }
    }
}

async fn eth_events(shared: Arc<Shared>, name: String, mut events: broadcast::Receiver<EthEvent>) {
    loop {
        let event = match events.recv().await {
            Ok(event) => event,
            Err(broadcast::error::RecvError::Lagged(n)) => {
                shared.say(&name, "lagged", format!("{n} eth events not shown"));
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        match event {
            EthEvent::StatusExchanged {
                peer,
                version,
                status,
            } => {
                let head = match status.block_range() {
                    Some(range) => format!("head #{} {}", range.latest, status.head_hash()),
                    None => format!("head {}", status.head_hash()),
                };
                shared.say(
                    &name,
                    "status",
                    format!(
                        "{} {version}: network {}, genesis {}, fork {:?}, {head}",
                        shared.name(&peer),
                        status.network_id(),
                        short(&status.genesis().to_string()),
                        status.fork_id().hash,
                    ),
                );
            }
            EthEvent::HandshakeFailed { peer, error } => shared.say(
                &name,
                "status",
                format!("{} FAILED: {error}", shared.name(&peer)),
            ),
            EthEvent::SessionClosed { peer } => {
                shared.say(&name, "eth closed", shared.name(&peer));
            }
            _ => {}
        }
    }
}
