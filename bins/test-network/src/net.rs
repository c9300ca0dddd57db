//! The three nodes: their ports, data directories and start order.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use anyhow::Context;
use devmux_network::{NodeKey, PeerId};
use devmux_node::{Node, NodeConfig};

/// Nodes in the network.
pub(crate) const NODES: u16 = 3;
/// UDP (discovery) ports sit this far below the TCP ports: 30450 → 30350.
pub(crate) const UDP_OFFSET: u16 = 100;
/// Seconds between discovery lookups: short, so that a small network forms fast.
const LOOKUP_SECS: u64 = 3;

/// Where the nodes listen and what they run.
#[derive(Clone, Debug)]
pub(crate) struct Layout {
    /// TCP port of node 1; node i listens on `base_port + i - 1`, and on UDP
    /// `base_port - 100 + i - 1` for discovery.
    pub(crate) base_port: u16,
    /// Admin RPC port of node 1; node i serves on `127.0.0.1:rpc_port + i - 1`.
    pub(crate) rpc_port: u16,
    /// The stream stack (`true`) or RLPx.
    pub(crate) stream_stack: bool,
    /// Devnet blocks node 1 builds at start.
    pub(crate) dev_blocks: u64,
    /// Node 1 builds a block from its pool every this many seconds.
    pub(crate) produce_blocks: u64,
}

impl Layout {
    /// Checks that every port of every node is a valid, non-zero port.
    pub(crate) fn validate(&self) -> anyhow::Result<()> {
        if self.base_port < 1024 + UDP_OFFSET || self.base_port > u16::MAX - NODES {
            anyhow::bail!(
                "--base-port {} is out of range: node ports are base..base+{} (TCP) and base-{UDP_OFFSET}.. (UDP); use {}..={}",
                self.base_port,
                NODES - 1,
                1024 + UDP_OFFSET,
                u16::MAX - NODES
            );
        }
        if self.rpc_port < 1024 || self.rpc_port > u16::MAX - NODES {
            anyhow::bail!(
                "--rpc-port {} is out of range: use 1024..={}",
                self.rpc_port,
                u16::MAX - NODES
            );
        }
        let tcp = self.base_port..self.base_port + NODES;
        if tcp.contains(&self.rpc_port) || tcp.contains(&(self.rpc_port + NODES - 1)) {
            anyhow::bail!("--rpc-port {} overlaps the nodes' TCP ports", self.rpc_port);
        }
        Ok(())
    }

    /// Node `i`'s configuration (1-based); `bootnodes` are `enr:` records.
    pub(crate) fn config(
        &self,
        i: u16,
        datadir: std::path::PathBuf,
        bootnodes: Vec<String>,
    ) -> NodeConfig {
        let offset = i - 1;
        NodeConfig {
            datadir,
            use_p2p_server: self.stream_stack,
            addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: self.base_port + offset,
            discovery_port: Some(self.base_port - UDP_OFFSET + offset),
            dev: true,
            dev_blocks: if i == 1 { self.dev_blocks } else { 0 },
            produce_blocks: (i == 1).then_some(self.produce_blocks),
            bootnodes,
            discovery_lookup_secs: LOOKUP_SECS,
            http: Some(SocketAddr::new(
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                self.rpc_port + offset,
            )),
            ..NodeConfig::default()
        }
    }

    /// What the server is called in output.
    pub(crate) fn server_name(&self) -> &'static str {
        if self.stream_stack {
            "stream stack (TCP → Noise → Yamux)"
        } else {
            "RLPx"
        }
    }
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
    _dir: tempfile::TempDir,
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
        let bootnodes = match self.nodes.first() {
            Some(boot) => vec![boot
                .node
                .enr()
                .context("node 1 runs no discovery, so it has no ENR")?],
            None => Vec::new(),
        };
        let config = self
            .layout
            .config(i, self._dir.path().join(&name), bootnodes);
        let node = Node::start(config)
            .await
            .with_context(|| format!("{name} failed to start"))?;
        self.nodes.push(TestNode { name, node });
        Ok(self.nodes.last())
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
