//! The three nodes: their servers, ports, data directories and start order.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

use anyhow::Context;
use devmux_network::{NetworkEvent, NodeKey, PeerId};
use devmux_node::{DiscoveryProtocol, Node, NodeConfig, ServerKind};
use tokio::sync::broadcast;

/// Node `i`'s address (1-based): `127.0.i.1`.
pub(crate) fn node_ip(i: u16) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, u8::try_from(i).unwrap_or(u8::MAX), 1))
}

/// Nodes in the network.
pub(crate) const NODES: u16 = 3;
/// UDP (discovery) ports sit this far below the TCP ports: 30450 → 30350.
pub(crate) const UDP_OFFSET: u16 = 100;
/// Seconds between discovery lookups: short, so that a small network forms fast.
pub(crate) const LOOKUP_SECS: u64 = 3;

/// In `--mixed`, node 1's stream stack listens this far above `--base-port`: the
/// port after the three nodes' own (30453 by default, WIRE.md §5), not the
/// `p2p-port` default of `port` + 1000.
pub(crate) const MIXED_P2P_OFFSET: u16 = NODES;

/// Which servers the nodes run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// All three the stream stack.
    Stream,
    /// All three RLPx.
    Rlpx,
    /// Node 1 both servers (the stream stack on `base_port` + 3), node 2 RLPx only
    /// and the block producer, node 3 the stream stack only: 2 and 3 share no
    /// server, so all they exchange goes through node 1.
    Mixed,
}

/// Where the nodes listen and what they run.
#[derive(Clone, Debug)]
pub(crate) struct Layout {
    /// TCP port of node 1; node i listens on `base_port + i - 1`, and on UDP
    /// `base_port - 100 + i - 1` for discovery. In `--mixed`, node 1's stream stack
    /// listens on `base_port + 3`.
    pub(crate) base_port: u16,
    /// Admin RPC port of node 1; node i serves on `127.0.0.1:rpc_port + i - 1`.
    pub(crate) rpc_port: u16,
    /// Which servers the nodes run.
    pub(crate) mode: Mode,
    /// Devnet blocks the producer builds at start.
    pub(crate) dev_blocks: u64,
    /// The producer builds a block from its pool every this many seconds.
    pub(crate) produce_blocks: u64,
    /// The discovery protocols every node runs.
    pub(crate) discovery: Vec<DiscoveryProtocol>,
}

impl Layout {
    /// Checks that every port of every node is a valid, non-zero port, and that the
    /// admin RPC ports are not TCP ports of the nodes.
    pub(crate) fn validate(&self) -> anyhow::Result<()> {
        let tcp_ports = self.tcp_port_count();
        if self.base_port < 1024 + UDP_OFFSET || self.base_port > u16::MAX - tcp_ports {
            anyhow::bail!(
                "--base-port {} is out of range: node ports are base..base+{} (TCP) and base-{UDP_OFFSET}.. (UDP); use {}..={}",
                self.base_port,
                tcp_ports - 1,
                1024 + UDP_OFFSET,
                u16::MAX - tcp_ports
            );
        }
        if self.rpc_port < 1024 || self.rpc_port > u16::MAX - NODES {
            anyhow::bail!(
                "--rpc-port {} is out of range: use 1024..={}",
                self.rpc_port,
                u16::MAX - NODES
            );
        }
        let tcp = self.base_port..self.base_port + tcp_ports;
        let rpc = self.rpc_port..self.rpc_port + NODES;
        if rpc.start < tcp.end && tcp.start < rpc.end {
            anyhow::bail!(
                "--rpc-port {} overlaps the nodes' TCP ports {}–{}",
                self.rpc_port,
                tcp.start,
                tcp.end - 1
            );
        }
        Ok(())
    }

    /// How many TCP ports the nodes use, from `base_port` up: one per node, and node
    /// 1's stream stack in `--mixed`.
    pub(crate) fn tcp_port_count(&self) -> u16 {
        match self.mode {
            Mode::Mixed => NODES + 1,
            Mode::Stream | Mode::Rlpx => NODES,
        }
    }

    /// The servers node `i` (1-based) runs, RLPx first.
    pub(crate) fn servers_of(&self, i: u16) -> Vec<ServerKind> {
        match (self.mode, i) {
            (Mode::Stream, _) | (Mode::Mixed, 3) => vec![ServerKind::P2p],
            (Mode::Rlpx, _) | (Mode::Mixed, 2) => vec![ServerKind::Rlpx],
            (Mode::Mixed, _) => vec![ServerKind::Rlpx, ServerKind::P2p],
        }
    }

    /// The TCP port of each server node `i` runs, RLPx first.
    pub(crate) fn ports_of(&self, i: u16) -> Vec<(ServerKind, u16)> {
        let port = self.base_port + i - 1;
        let servers = self.servers_of(i);
        let dual = servers.len() > 1;
        servers
            .into_iter()
            .map(|kind| match kind {
                ServerKind::P2p if dual => (kind, self.base_port + MIXED_P2P_OFFSET),
                _ => (kind, port),
            })
            .collect()
    }

    /// The node (1-based) that builds the devnet chain and produces blocks: node 1,
    /// or node 2 in `--mixed`, so that its blocks reach node 3 only through node 1.
    pub(crate) fn producer(&self) -> u16 {
        match self.mode {
            Mode::Mixed => 2,
            Mode::Stream | Mode::Rlpx => 1,
        }
    }

    /// Node `i`'s configuration (1-based); `bootnodes` are `enr:` records (discv5) and
    /// `enode://` URLs (discv4).
    pub(crate) fn config(
        &self,
        i: u16,
        datadir: std::path::PathBuf,
        bootnodes: Vec<String>,
    ) -> NodeConfig {
        let offset = i - 1;
        let servers = self.servers_of(i);
        let producer = i == self.producer();
        let p2p_port = if servers.len() > 1 {
            self.ports_of(i)
                .into_iter()
                .find(|(kind, _)| *kind == ServerKind::P2p)
                .map(|(_, port)| port)
        } else {
            None
        };
        NodeConfig {
            datadir,
            use_p2p_server: servers == [ServerKind::P2p],
            servers,
            // Each node is a host of its own (127.0.N.1, its own /24), so the per-address
            // and per-subnet rules run here as they do between machines.
            addr: node_ip(i),
            port: self.base_port + offset,
            p2p_port,
            discovery_port: Some(self.base_port - UDP_OFFSET + offset),
            dev: true,
            dev_blocks: if producer { self.dev_blocks } else { 0 },
            produce_blocks: producer.then_some(self.produce_blocks),
            bootnodes,
            discovery: self.discovery.clone(),
            discovery_lookup_secs: LOOKUP_SECS,
            http: Some(SocketAddr::new(
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                self.rpc_port + offset,
            )),
            ..NodeConfig::default()
        }
    }

    /// What the servers are called in output.
    pub(crate) fn server_name(&self) -> &'static str {
        match self.mode {
            Mode::Stream => "stream stack (TCP → Noise → Yamux)",
            Mode::Rlpx => "RLPx",
            Mode::Mixed => {
                "mixed servers (node 1 RLPx + stream stack, node 2 RLPx, node 3 stream stack)"
            }
        }
    }

    /// Node `i`'s servers and ports, as `rlpx 30450 + p2p 30453`.
    pub(crate) fn describe(&self, i: u16) -> String {
        self.ports_of(i)
            .iter()
            .map(|(kind, port)| format!("{kind} {port}"))
            .collect::<Vec<_>>()
            .join(" + ")
    }
}

/// The server two nodes connect over: one both run, the stream stack if both run
/// it (as the dialer prefers), `None` if they share none.
pub(crate) fn shared_server(a: &NodeConfig, b: &NodeConfig) -> Option<ServerKind> {
    [ServerKind::P2p, ServerKind::Rlpx]
        .into_iter()
        .find(|kind| a.runs(*kind) && b.runs(*kind))
}

/// A server list as `rlpx+p2p`.
pub(crate) fn server_list(servers: &[ServerKind]) -> String {
    servers
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("+")
}

/// One running node and its name.
pub(crate) struct TestNode {
    /// `node1`, `node2`, `node3`.
    pub(crate) name: String,
    /// The node.
    pub(crate) node: Node,
}

/// The running network. Its data directories are removed when it is dropped.
pub(crate) struct Testnet {
    /// The nodes, node 1 first.
    pub(crate) nodes: Vec<TestNode>,
    /// How they were started.
    pub(crate) layout: Layout,
    /// The transaction `--check` sends to node 3, and which nodes' pools saw it.
    pub(crate) tx: std::sync::Arc<std::sync::Mutex<TxWatch>>,
    /// Every connection any node made or took since it started, for `--check`.
    pub(crate) contacts: std::sync::Arc<std::sync::Mutex<Contacts>>,
    /// When the last node started.
    pub(crate) all_started: Option<Instant>,
    _dir: tempfile::TempDir,
}

/// The connections the nodes saw.
#[derive(Debug, Default)]
pub(crate) struct Contacts {
    /// In the order they happened.
    pub(crate) seen: Vec<Contact>,
    /// Network events lost because a recorder lagged behind (any of them may have
    /// been a connection).
    pub(crate) lost: u64,
}

/// A connection a node saw, as its `PeerConnected` event told it.
#[derive(Clone, Debug)]
pub(crate) struct Contact {
    /// The node (by name).
    pub(crate) node: String,
    /// Its peer.
    pub(crate) peer: PeerId,
    /// Over which server.
    pub(crate) server: ServerKind,
    /// When.
    pub(crate) at: Instant,
}

/// What `--check` knows of its transaction.
#[derive(Debug, Default)]
pub(crate) struct TxWatch {
    /// Its hash, once sent.
    pub(crate) hash: Option<devmux_eth::alloy_primitives::B256>,
    /// Nodes (by name) whose pool received it.
    pub(crate) seen_in_pool: Vec<String>,
}

impl Testnet {
    /// Makes the data directories and every node's key (handed to `on_key`, so that
    /// a watcher can name a node before it starts). Starts nothing.
    pub(crate) fn prepare(
        layout: Layout,
        mut on_key: impl FnMut(&str, &NodeKey),
    ) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("devmux-test-network-")
            .tempdir()
            .context("creating the temporary data directory")?;
        for i in 1..=NODES {
            let name = format!("node{i}");
            let datadir = dir.path().join(&name);
            std::fs::create_dir(&datadir)
                .with_context(|| format!("creating {}", datadir.display()))?;
            let key = NodeKey::generate();
            key.save(&datadir.join("nodekey"))?;
            on_key(&name, &key);
        }
        Ok(Self {
            nodes: Vec::new(),
            layout,
            tx: Default::default(),
            contacts: Default::default(),
            all_started: None,
            _dir: dir,
        })
    }

    /// Starts the next node: node 1 (the bootnode, with the devnet chain) first, then
    /// nodes 2 and 3 knowing only node 1's ENR. `None` once all run.
    pub(crate) async fn start_next(&mut self) -> anyhow::Result<Option<&TestNode>> {
        let i = self.nodes.len() as u16 + 1;
        if i > NODES {
            return Ok(None);
        }
        let name = format!("node{i}");
        let mut bootnodes = Vec::new();
        if let Some(boot) = self.nodes.first() {
            let discovery = boot
                .node
                .discovery()
                .context("node 1 runs no discovery, so it has no ENR")?;
            if discovery.runs_v5() {
                bootnodes.push(discovery.local_enr_string());
            }
            if let Some(v4) = discovery.v4() {
                bootnodes.push(v4.local_enode().to_string());
            }
        }
        let config = self
            .layout
            .config(i, self._dir.path().join(&name), bootnodes);
        let node = Node::start(config)
            .await
            .with_context(|| format!("{name} failed to start"))?;
        self.record_contacts(&name, &node);
        self.nodes.push(TestNode { name, node });
        if i == NODES {
            self.all_started = Some(Instant::now());
        }
        Ok(self.nodes.last())
    }

    /// Records in [`Testnet::contacts`] every connection `node` makes or takes from
    /// now on. A connection to a node that started earlier shows there too, since
    /// that node already records.
    fn record_contacts(&self, name: &str, node: &Node) {
        let mut events = node.network().events();
        let (name, contacts) = (name.to_string(), self.contacts.clone());
        tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(NetworkEvent::PeerConnected { peer, server, .. }) => {
                        let contact = Contact {
                            node: name.clone(),
                            peer,
                            server,
                            at: Instant::now(),
                        };
                        contacts
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .seen
                            .push(contact);
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        contacts.lock().unwrap_or_else(|e| e.into_inner()).lost += n;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
    }

    /// The node that builds the devnet chain and produces blocks.
    pub(crate) fn producer(&self) -> Option<&TestNode> {
        self.nodes.get(usize::from(self.layout.producer() - 1))
    }

    /// The name of the node with this PeerId, or the id itself for a stranger.
    pub(crate) fn name_of(&self, peer: &PeerId) -> String {
        names(&self.nodes)
            .into_iter()
            .find(|(id, _)| id == peer)
            .map(|(_, name)| name)
            .unwrap_or_else(|| peer.to_string())
    }

    /// Stops every node, the last started first.
    pub(crate) async fn stop(self) {
        for test_node in self.nodes.into_iter().rev() {
            test_node.node.stop().await;
        }
    }
}

/// PeerId → name of every node.
pub(crate) fn names(nodes: &[TestNode]) -> Vec<(PeerId, String)> {
    nodes
        .iter()
        .map(|n| (n.node.network().local_peer_id(), n.name.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(mode: Mode) -> Layout {
        Layout {
            base_port: 30450,
            rpc_port: 8550,
            mode,
            dev_blocks: 1000,
            produce_blocks: 2,
            discovery: vec![DiscoveryProtocol::V5],
        }
    }

    fn configs(layout: &Layout) -> Vec<NodeConfig> {
        (1..=NODES)
            .map(|i| layout.config(i, format!("/tmp/node{i}").into(), Vec::new()))
            .collect()
    }

    #[test]
    fn mixed_ports_are_those_of_wire_md() {
        let mixed = layout(Mode::Mixed);
        let c = configs(&mixed);
        let addr = |c: &NodeConfig, kind| c.listen_addr_of(kind).map(|a| a.port());
        assert_eq!(addr(&c[0], ServerKind::Rlpx), Some(30450));
        assert_eq!(addr(&c[0], ServerKind::P2p), Some(30453));
        assert_eq!(addr(&c[1], ServerKind::Rlpx), Some(30451));
        assert_eq!(addr(&c[1], ServerKind::P2p), None);
        assert_eq!(addr(&c[2], ServerKind::Rlpx), None);
        assert_eq!(addr(&c[2], ServerKind::P2p), Some(30452));
        let udp: Vec<u16> = c.iter().map(|c| c.discovery_addr().port()).collect();
        assert_eq!(udp, [30350, 30351, 30352]);
        assert_eq!(mixed.describe(1), "rlpx 30450 + p2p 30453");
        assert_eq!(mixed.tcp_port_count(), 4);
        // --base-port moves node 1's stream stack with the rest.
        let moved = Layout {
            base_port: 40000,
            ..mixed
        };
        assert_eq!(
            moved.config(1, "/tmp/n".into(), Vec::new()).p2p_port,
            Some(40003)
        );
    }

    #[test]
    fn mixed_producer_is_node_2() {
        let mixed = layout(Mode::Mixed);
        assert_eq!(mixed.producer(), 2);
        let c = configs(&mixed);
        assert_eq!(
            c.iter().map(|c| c.dev_blocks).collect::<Vec<_>>(),
            [0, 1000, 0]
        );
        assert_eq!(
            c.iter().map(|c| c.produce_blocks).collect::<Vec<_>>(),
            [None, Some(2), None]
        );
        for mode in [Mode::Stream, Mode::Rlpx] {
            let c = configs(&layout(mode));
            assert_eq!(c[0].dev_blocks, 1000);
            assert_eq!(c[0].produce_blocks, Some(2));
            assert!(c[1..].iter().all(|c| c.produce_blocks.is_none()));
        }
    }

    #[test]
    fn every_node_config_is_valid() {
        for mode in [Mode::Stream, Mode::Rlpx, Mode::Mixed] {
            for (i, c) in configs(&layout(mode)).iter().enumerate() {
                c.validate()
                    .unwrap_or_else(|e| panic!("{mode:?} node{}: {e}", i + 1));
            }
        }
    }

    #[test]
    fn shared_servers() {
        let c = configs(&layout(Mode::Mixed));
        assert_eq!(shared_server(&c[0], &c[1]), Some(ServerKind::Rlpx));
        assert_eq!(shared_server(&c[0], &c[2]), Some(ServerKind::P2p));
        assert_eq!(shared_server(&c[1], &c[2]), None);
        let c = configs(&layout(Mode::Rlpx));
        assert_eq!(shared_server(&c[1], &c[2]), Some(ServerKind::Rlpx));
        let c = configs(&layout(Mode::Stream));
        assert_eq!(shared_server(&c[1], &c[2]), Some(ServerKind::P2p));
    }

    #[test]
    fn validate_counts_the_extra_port() {
        let with = |mode, base_port, rpc_port| Layout {
            base_port,
            rpc_port,
            ..layout(mode)
        };
        assert!(with(Mode::Stream, 65532, 8550).validate().is_ok());
        assert!(with(Mode::Mixed, 65532, 8550).validate().is_err());
        assert!(with(Mode::Mixed, 65531, 8550).validate().is_ok());
        // RPC 30453–30455 misses 30450–30452 but hits node 1's stream stack.
        assert!(with(Mode::Stream, 30450, 30453).validate().is_ok());
        assert!(with(Mode::Mixed, 30450, 30453).validate().is_err());
        // Overlaps at either end.
        assert!(with(Mode::Stream, 30450, 30448).validate().is_err());
        assert!(with(Mode::Mixed, 30450, 30447).validate().is_ok());
        assert!(with(Mode::Mixed, 30450, 30454).validate().is_ok());
    }
}
