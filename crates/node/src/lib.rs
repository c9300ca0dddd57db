//! A devmux node: the chain store, the transaction pool, the eth handler and the
//! network, started and stopped together. Both binaries (`devmux` and
//! `test-network`) are thin layers over [`Node`].
//!
//! Start-up, in order: validate the [`NodeConfig`] (nothing starts half
//! configured), create the data directory, load or create the node key
//! (`<datadir>/nodekey`, mode 0600), open the chain (`<datadir>/chain.redb`) and
//! build the devnet blocks asked for, build the registrar with the eth handler,
//! start the server that `use_p2p_server` selects, and dial the static peers.
//! [`Node::stop`] reverses it: peers are told `ClientQuitting` (RLPx Disconnect or
//! goodbye), and the chain's last commit is already durable.
//!
//! ```no_run
//! use devmux_node::{Node, NodeConfig};
//! # async fn run() -> Result<(), devmux_node::Error> {
//! let config = NodeConfig { dev: true, dev_blocks: 100, port: 0, ..NodeConfig::default() };
//! let node = Node::start(config).await?;
//! println!("{}", node.local_addr());
//! node.stop().await;
//! # Ok(()) }
//! ```

mod config;

use std::path::PathBuf;

pub use config::{NodeConfig, DEFAULT_PORT};
use devmux_chain::{devnet::Devnet, Chain, ChainSpec, Pool, PoolConfig};
use devmux_identity::NodeKey;
use devmux_network::{Network, NetworkConfig, Registrar};
use tracing::info;

/// Devnet blocks generated and inserted per batch (one commit each).
const DEV_BLOCK_BATCH: u64 = 500;

/// Errors of the node crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is wrong; `origin` names the file or flag set.
    #[error("{origin}: {problem}")]
    Config {
        /// Where the configuration came from.
        origin: String,
        /// What to fix.
        problem: String,
    },
    /// The data directory could not be used.
    #[error("data directory {path}: {source}")]
    Datadir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The node key could not be loaded or created.
    #[error(transparent)]
    Identity(#[from] devmux_identity::Error),
    /// The chain store failed.
    #[error("chain: {0}")]
    Chain(#[from] devmux_chain::Error),
    /// The network failed to start.
    #[error("network: {0}")]
    Network(#[from] devmux_network::Error),
    /// A static peer's address is not usable on the selected server.
    #[error("static peer {addr:?}: {source}")]
    StaticPeer {
        /// The address.
        addr: String,
        /// Why.
        source: devmux_network::Error,
    },
}

/// A running node.
#[derive(Debug)]
pub struct Node {
    config: NodeConfig,
    key: NodeKey,
    chain: Chain,
    pool: Pool,
    network: Network,
}

impl Node {
    /// Starts a node. Fails before starting anything if the configuration is bad.
    pub async fn start(config: NodeConfig) -> Result<Self, Error> {
        config.validate()?;
        let datadir = config.datadir.clone();
        std::fs::create_dir_all(&datadir).map_err(|source| Error::Datadir {
            path: datadir.clone(),
            source,
        })?;
        let key = NodeKey::load_or_generate(&datadir.join("nodekey"))?;
        let chain = Chain::open_async(datadir.join("chain.redb"), ChainSpec::devnet()).await?;
        build_dev_blocks(&chain, config.dev_blocks).await?;
        let pool = Pool::new(PoolConfig::devnet());

        let registrar = Registrar::new();
        let mut network_config = NetworkConfig::default()
            .with_p2p_server(config.use_p2p_server)
            .with_listen_addr(config.listen_addr());
        network_config.max_peers = config.max_peers;
        let network = Network::start(network_config, key.clone(), registrar).await?;
        for addr in &config.static_peers {
            network
                .add_static_peer(addr)
                .map_err(|source| Error::StaticPeer {
                    addr: addr.clone(),
                    source,
                })?;
        }
        let head = chain.head();
        info!(
            addr = %network.local_addr(),
            head = head.number,
            server = %network.server_kind(),
            "node started"
        );
        Ok(Self {
            config,
            key,
            chain,
            pool,
            network,
        })
    }

    /// The address to dial this node at: its `enode://` URL (RLPx) or its full
    /// multiaddr (stream stack).
    pub fn local_addr(&self) -> String {
        self.network.local_addr()
    }

    /// The configuration the node runs with.
    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    /// The node key.
    pub fn key(&self) -> &NodeKey {
        &self.key
    }

    /// The chain store.
    pub fn chain(&self) -> &Chain {
        &self.chain
    }

    /// The transaction pool.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The network.
    pub fn network(&self) -> &Network {
        &self.network
    }

    /// Tells every peer `ClientQuitting` and stops. Every chain commit is already
    /// durable, so nothing is left to flush.
    pub async fn stop(self) {
        self.network.shutdown().await;
        info!("node stopped");
    }
}

/// Extends the chain with devnet blocks up to `target`, in batches, off the
/// async reactor (signing and redb both block).
async fn build_dev_blocks(chain: &Chain, target: u64) -> Result<(), Error> {
    if chain.head().number >= target {
        return Ok(());
    }
    let chain = chain.clone();
    let started = std::time::Instant::now();
    tokio::task::spawn_blocking(move || -> Result<(), Error> {
        let devnet = Devnet::new()?;
        let mut head = chain.head().number;
        let mut parent = chain
            .header_by_number_blocking(head)?
            .ok_or_else(|| Error::Config {
                origin: "chain".into(),
                problem: format!("canonical header {head} is missing"),
            })?;
        while head < target {
            let count = (target - head).min(DEV_BLOCK_BATCH);
            let mut batch = Vec::with_capacity(count as usize);
            for _ in 0..count {
                let block = devnet.block(&parent);
                parent = block.header.clone();
                batch.push(block);
            }
            chain.insert_blocks_blocking(&batch)?;
            head += count;
        }
        Ok(())
    })
    .await
    .map_err(|e| Error::Config {
        origin: "chain".into(),
        problem: format!("devnet block builder failed: {e}"),
    })??;
    info!(blocks = target, elapsed = ?started.elapsed(), "devnet blocks built");
    Ok(())
}
