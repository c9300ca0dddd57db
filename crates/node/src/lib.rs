//! A devmux node: the chain store, the transaction pool, the eth handler and the
//! network, started and stopped together. Both binaries (`devmux` and
//! `test-network`) are thin layers over [`Node`].
//!
//! Start-up, in order: validate the [`NodeConfig`] (nothing starts half
//! configured), create the data directory, load or create the node key
//! (`<datadir>/nodekey`, mode 0600), open the chain (`<datadir>/chain.redb`) and
//! build the devnet blocks asked for, build the registrar with the eth handler
//! (`/eth/69/1.0.0` … `/eth/66/1.0.0`), start the server that `use_p2p_server`
//! selects with the peer pool (bans in `<datadir>/peers.redb`), dial the static
//! peers, and start discv5 (seen ENRs in `<datadir>/discovery-enrs.txt`) feeding
//! the dialer with peers that run our stack and a compatible fork id.
//! Last, the admin JSON-RPC (`http`, see [`rpc`]), the Prometheus
//! endpoint (`metrics`, see [`metrics`]) and the Engine API (`authrpc`, see
//! [`engine`]) start serving; their
//! sockets are bound before anything else starts, so a busy port fails the start
//! cleanly.
//! [`Node::stop`] reverses it: the RPC, metrics and Engine API servers stop, discovery stops
//! and stores its table, peers are told `ClientQuitting` (RLPx Disconnect or
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

pub mod check;
mod config;
pub mod engine;
pub mod metrics;
pub mod probe;
pub mod rpc;

use std::path::PathBuf;

pub use check::{check_datadir, StoreReport};
pub use config::{
    Checkpoint, DiscoveryProtocol, LogFormat, NodeConfig, DEFAULT_AUTHRPC_ADDR, DEFAULT_HTTP_ADDR,
    DEFAULT_METRICS_ADDR, DEFAULT_PORT,
};
pub use devmux_network::ServerKind;
pub use rpc::{SyncProgress, SyncStatus};

/// `error` and its causes on one line, for a binary to print: each cause is added only
/// when the text so far does not already say it (the project's error types put their
/// source in their own message as well, so a plain `{:#}` would say it twice or three
/// times).
///
/// ```
/// let io = std::io::Error::new(std::io::ErrorKind::AddrInUse, "Address already in use");
/// let e = devmux_node::Error::Network(devmux_network::Error::Io(io));
/// assert_eq!(devmux_node::error_line(&e), "network: i/o: Address already in use");
/// ```
pub fn error_line(error: &(dyn std::error::Error + 'static)) -> String {
    let mut line = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        cause = c.source();
    }
    line
}
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use devmux_chain::{devnet::Devnet, Chain, Pool, PoolConfig};
use devmux_discovery::{Discovery, DiscoveryConfig};
use devmux_eth::{EthConfig, EthHandler, EthPeers, ForkFilter, ForkId};
use devmux_identity::NodeKey;
use devmux_network::{DialTarget, Network, Registrar};
use futures::StreamExt;
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
    /// Discovery failed to start.
    #[error("discovery: {0}")]
    Discovery(#[from] devmux_discovery::Error),
    /// Sync or the block producer failed to start.
    #[error("sync: {0}")]
    Sync(#[from] devmux_sync::Error),
    /// A probed peer was unreachable, stalled, or spoke something else
    /// ([`probe`]); `why` names the step.
    #[error("probe of {target}: {why}")]
    Probe {
        /// The address or record probed (its start).
        target: String,
        /// The step that failed, and how.
        why: String,
    },
    /// The admin RPC or metrics socket could not be bound.
    #[error("{what} {addr}: {error}")]
    Listen {
        /// Which server (and the flag that configures it).
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// Why (in the message; not a `source`, so it is printed once).
        error: std::io::Error,
    },
    /// A data directory's store is not whole ([`check_datadir`]): what is missing or
    /// does not match.
    #[error("store {path}: {problem}")]
    Inconsistent {
        /// The file.
        path: PathBuf,
        /// The first inconsistency found.
        problem: String,
    },
    /// A static or trusted peer's address is not usable on the selected server.
    #[error("peer {addr:?}: {source}")]
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
    eth: EthPeers,
    discovery: Option<Arc<Discovery>>,
    sync: SyncStatus,
    syncer: devmux_sync::SyncHandle,
    producer: Option<devmux_sync::ProducerHandle>,
    rpc: Option<rpc::RpcServer>,
    metrics: Option<metrics::MetricsServer>,
    engine: Option<engine::EngineServer>,
}

/// `devmux import FILE`: imports the chain file `file` (go-ethereum's export format,
/// [`devmux_chain::import`]) into the chain of `config`'s data directory, validated as
/// any block from a peer, while no node runs on it (the store is opened once per
/// process). The blocks' receipts are not in the file: the node fetches them from its
/// peers once it runs. `on_batch` sees each committed batch. Blocks: call it outside the
/// async reactor.
pub fn import_chain_file(
    config: &NodeConfig,
    file: &std::path::Path,
    on_batch: impl FnMut(&devmux_chain::InsertOutcome),
) -> Result<devmux_chain::import::ImportSummary, Error> {
    config.validate()?;
    let spec = config.chain_spec()?;
    let datadir = &config.datadir;
    std::fs::create_dir_all(datadir).map_err(|source| Error::Datadir {
        path: datadir.clone(),
        source,
    })?;
    let chain = Chain::open(datadir.join("chain.redb"), spec)?;
    if let Some(checkpoint) = config.checkpoint {
        chain.pin_checkpoint_blocking(checkpoint.into())?;
    }
    Ok(devmux_chain::import::import_file(&chain, file, on_batch)?)
}

impl Node {
    /// Starts a node. Fails before starting anything if the configuration is bad.
    pub async fn start(config: NodeConfig) -> Result<Self, Error> {
        config.validate()?;
        // The chain next: a genesis file that does not load stops the start before a
        // data directory or a key is created.
        let spec = config.chain_spec()?;
        // Bound first: a busy port fails the start before anything runs.
        let rpc_listener = match config.http {
            Some(addr) => Some(rpc::bind("admin RPC (--http)", addr).await?),
            None => None,
        };
        let metrics_listener = match config.metrics {
            Some(addr) => Some(rpc::bind("metrics (--metrics)", addr).await?),
            None => None,
        };
        let engine_listener = match config.authrpc {
            Some(addr) => Some(rpc::bind("Engine API (--authrpc)", addr).await?),
            None => None,
        };
        let jwt_secret = config.load_jwt_secret()?;
        let datadir = config.datadir.clone();
        std::fs::create_dir_all(&datadir).map_err(|source| Error::Datadir {
            path: datadir.clone(),
            source,
        })?;
        let key = match &config.nodekey {
            Some(path) => NodeKey::load(path)?,
            None => NodeKey::load_or_generate(&config.nodekey_path())?,
        };
        // The producer's key, read before anything starts so a bad one stops nothing.
        let signer = match config.produce_blocks {
            Some(_) => Some(config.load_signer_key()?),
            None => None,
        };
        if let (Some(signer), Some(_)) = (&signer, &config.signer_key) {
            let node_secret = key.secret_bytes().into();
            if devmux_chain::signing::SecretKey::from_bytes(&node_secret)?.address()
                == signer.address()
            {
                return Err(Error::Config {
                    origin: "configuration".into(),
                    problem: "signer-key is the node key: the key that seals blocks must not be the node's identity on the network; create another with `devmux keygen`".into(),
                });
            }
        }
        if config.authrpc.is_some() && spec.is_sealed() {
            return Err(Error::Config {
                origin: "configuration".into(),
                problem: format!(
                    "authrpc serves the Engine API of proof-of-stake chains; {} is sealed by its signers",
                    spec.name
                ),
            });
        }
        let eth_versions = config.eth_versions()?;
        let chain = Chain::open_async(datadir.join("chain.redb"), spec).await?;
        if let Some(checkpoint) = config.checkpoint {
            let pin = chain.clone();
            tokio::task::spawn_blocking(move || pin.pin_checkpoint_blocking(checkpoint.into()))
                .await
                .map_err(|e| devmux_chain::Error::Task(e.to_string()))?
                .map_err(|e| Error::Config {
                    origin: format!("checkpoint {checkpoint}"),
                    problem: format!(
                        "{e}; the data directory {} holds that other chain: use another --datadir",
                        datadir.display()
                    ),
                })?;
            info!(%checkpoint, "checkpoint pinned");
        }
        build_dev_blocks(&chain, config.dev_blocks).await?;
        let pool = Pool::new(PoolConfig::for_chain(chain.spec()));

        let network_id = config.network_id.unwrap_or(chain.spec().network_id);
        let (eth_handler, eth) = EthHandler::new(
            chain.clone(),
            pool.clone(),
            EthConfig::default()
                .with_network_id(network_id)
                // Relay announces the pool to new peers itself, through its known sets.
                .with_announce_pool_on_connect(false)
                .with_request_rate(
                    config.eth_request_rate.max(1),
                    config.eth_request_rate.max(1).saturating_mul(2),
                )
                // The chain's limits bound what the decoder accepts (eth sits below chain).
                .with_decode_limits(chain.spec().decode_limits())
                .with_recovery_rate(config.eth_recovery_rate)
                .with_large_message_budget(
                    (config.large_message_budget_mib as usize).saturating_mul(1024 * 1024),
                ),
        );
        // Sync and relay follow eth events from the first session on: spawn them
        // before the network can accept a peer.
        let syncer = devmux_sync::Syncer::spawn(
            chain.clone(),
            pool.clone(),
            eth.clone(),
            devmux_sync::SyncConfig::default(),
        );
        let producer = match (config.produce_blocks, signer) {
            (Some(secs), Some(signer)) => {
                let producer = devmux_sync::Producer::new(&syncer, signer)?;
                Some(producer.spawn(Duration::from_secs(secs)))
            }
            _ => None,
        };
        let mut registrar = Registrar::new();
        registrar.session(devmux_eth::protocols_for(&eth_versions), eth_handler)?;

        let mut network_config = config.network_config();
        network_config.pool.max_peers = config.max_peers;
        network_config.pool.max_inbound = config.max_inbound;
        network_config.pool.outbound_target = config.outbound_target;
        let protocols: Vec<String> = registrar.ids().map(ToString::to_string).collect();
        network_config.pool.store = Some(datadir.join("peers.redb"));
        let network = Network::start(network_config, key.clone(), registrar).await?;
        // Counting starts with the network, before any peer is dialed.
        let metrics = metrics_listener
            .is_some()
            .then(|| metrics::Metrics::follow(&network, &eth, config.discovery_enabled()));
        let peer_error = |addr: &String, source| Error::StaticPeer {
            addr: addr.clone(),
            source,
        };
        for addr in &config.trusted_peers {
            match network.check_addr(addr) {
                Ok(Some(peer)) => network.add_trusted_peer(peer),
                Ok(None) => {
                    return Err(Error::Config {
                        origin: "trusted-peers".into(),
                        problem: format!("{addr:?} names no peer id (add /p2p/<peer id>)"),
                    })
                }
                Err(e) => return Err(peer_error(addr, e)),
            }
        }
        for addr in &config.static_peers {
            network
                .add_static_peer(addr)
                .map_err(|e| peer_error(addr, e))?;
        }
        let discovery = if !config.discovery_enabled() {
            None
        } else {
            Some(start_discovery(&config, &key, &chain, &network).await?)
        };
        let discovery = discovery.map(Arc::new);
        let sync = SyncStatus::new(syncer.clone());
        let view = rpc::NodeView {
            key: key.clone(),
            network: network.clone(),
            chain: chain.clone(),
            pool: pool.clone(),
            eth: eth.clone(),
            discovery: discovery.as_ref().map(Arc::downgrade),
            enr: discovery.as_ref().map(|d| d.local_enr_string()),
            // An enode URL's discport is discv4's (what enode URLs are for).
            discovery_port: discovery.as_ref().map(|d| {
                d.v4()
                    .map_or(d.udp_addr().port(), |v4| v4.udp_addr().port())
            }),
            protocols: rpc::advertised_protocols(network.runs(ServerKind::P2p), protocols),
            network_id,
            sync: sync.clone(),
        };
        let rpc = match rpc_listener {
            Some((listener, addr)) => Some(rpc::RpcServer::start(listener, addr, view.clone())?),
            None => None,
        };
        let metrics = match (metrics, metrics_listener) {
            (Some(metrics), Some((listener, addr))) => Some(metrics.serve(listener, addr, view)),
            _ => None,
        };
        let engine = match (engine_listener, jwt_secret) {
            (Some((listener, addr)), Some(secret)) => Some(engine::EngineServer::start(
                listener,
                addr,
                secret,
                chain.clone(),
                syncer.clone(),
            )?),
            _ => None,
        };
        let head = chain.head();
        info!(
            addrs = ?network.local_addrs(),
            head = head.number,
            servers = ?network.servers(),
            "node started"
        );
        Ok(Self {
            config,
            key,
            chain,
            pool,
            network,
            eth,
            discovery,
            sync,
            syncer,
            producer,
            rpc,
            metrics,
            engine,
        })
    }

    /// Where the Engine API listens, if it runs (`--authrpc`).
    pub fn engine_addr(&self) -> Option<SocketAddr> {
        self.engine.as_ref().map(engine::EngineServer::local_addr)
    }

    /// Where the admin JSON-RPC listens, if it runs.
    pub fn rpc_addr(&self) -> Option<SocketAddr> {
        self.rpc.as_ref().map(rpc::RpcServer::local_addr)
    }

    /// Where `/metrics` is served, if it is.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics
            .as_ref()
            .map(metrics::MetricsServer::local_addr)
    }

    /// Sync progress as `eth_syncing` and the metrics report it; sync updates it.
    pub fn sync_status(&self) -> &SyncStatus {
        &self.sync
    }

    /// The address to dial this node at over its preferred server: its full
    /// multiaddr (stream stack) or its `enode://` URL (RLPx).
    pub fn local_addr(&self) -> String {
        self.network.local_addr()
    }

    /// Every address to dial this node at: the `enode://` URL if RLPx runs, then the
    /// multiaddr if the stream stack does.
    pub fn local_addrs(&self) -> Vec<String> {
        self.network.local_addrs()
    }

    /// The node's ENR (`enr:…`), if discovery runs.
    pub fn enr(&self) -> Option<String> {
        self.discovery.as_deref().map(Discovery::local_enr_string)
    }

    /// The discovery service, if it runs.
    pub fn discovery(&self) -> Option<&Discovery> {
        self.discovery.as_deref()
    }

    /// Sync and relay: status, counters.
    pub fn syncer(&self) -> &devmux_sync::SyncHandle {
        &self.syncer
    }

    /// The eth sessions: typed requests to peers, eth events.
    pub fn eth(&self) -> &EthPeers {
        &self.eth
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
        let Node {
            chain,
            network,
            discovery,
            syncer,
            producer,
            rpc,
            metrics,
            engine,
            sync,
            eth,
            pool,
            ..
        } = self;
        // These hold the chain too (through sync and the eth sessions): release them
        // now rather than when this function returns.
        drop((sync, eth, pool));
        if let Some(rpc) = rpc {
            rpc.stop().await;
        }
        if let Some(metrics) = metrics {
            metrics.stop().await;
        }
        if let Some(engine) = engine {
            engine.stop().await;
        }
        // No new blocks or sync rounds while the network winds down.
        if let Some(producer) = producer {
            producer.stop().await;
        }
        syncer.shutdown().await;
        drop(syncer);
        if let Some(discovery) = discovery {
            // The RPC and metrics hold it weakly, so this is the only handle left
            // unless a request is being answered right now.
            match Arc::try_unwrap(discovery) {
                Ok(discovery) => discovery.shutdown().await,
                Err(_) => {
                    tracing::warn!("discovery still in use at stop: its ENR file is not written")
                }
            }
        }
        network.shutdown().await;
        // Everything else that holds the chain (the network's registrar with the eth
        // handler, sync, the pool's users) is gone or going: wait (bounded) for
        // sessions that end a moment after their connections, so the store is closed
        // when stop returns and the data directory can be opened again at once.
        drop(network);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while chain.handle_count() > 1 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if chain.handle_count() > 1 {
            tracing::warn!("chain store still in use after stop");
        }
        info!("node stopped");
    }
}

/// The discovery settings of a node with `config` whose RLPx server listens on
/// `rlpx_port` and stream stack on `mux_port` (each if it runs): the running stacks
/// and our fork id in the ENR, eth's fork filter on candidates.
fn discovery_config(
    config: &NodeConfig,
    spec: &devmux_chain::ChainSpec,
    filter: ForkFilter,
    rlpx_port: Option<u16>,
    mux_port: Option<u16>,
) -> DiscoveryConfig {
    use devmux_discovery::{dns::DnsConfig, V4Config, V5Limits};
    let ours = filter.current();
    let (v4_boot, v5_boot): (Vec<String>, Vec<String>) = config
        .bootnodes_for(spec)
        .into_iter()
        .partition(|b| b.starts_with("enode://"));
    let lookups = Duration::from_secs(config.discovery_lookup_secs);
    let v4 = config.runs_discovery(DiscoveryProtocol::V4).then(|| {
        V4Config::default()
            .with_listen(config.discv4_addr())
            .with_bootnodes(v4_boot)
            .with_lookup_interval(lookups)
    });
    let dns_lists = config.dns_lists(spec);
    let dns = (!dns_lists.is_empty()).then(|| DnsConfig {
        urls: dns_lists,
        resolver: config.dns_resolver,
        ..DnsConfig::default()
    });
    DiscoveryConfig::default()
        .with_listen(config.discovery_addr())
        .with_enr_ip(config.addr)
        .with_rlpx_tcp_port(rlpx_port)
        .with_mux_tcp_port(mux_port)
        .with_eth(ours)
        .with_fork_filter(move |remote: &ForkId| filter.validate(*remote).is_ok())
        .with_bootnodes(v5_boot)
        .with_lookup_interval(lookups)
        .with_persist_path(Some(config.datadir.join("discovery-enrs.txt")))
        // As many identities per address as the pool would keep peers from it.
        .with_max_candidates_per_ip(config.max_peers_per_ip)
        .with_v5(config.runs_discovery(DiscoveryProtocol::V5))
        .with_v5_limits(V5Limits {
            packet_filter: config.discv5_packet_filter,
            max_nodes_per_ip: config.discv5_max_nodes_per_ip,
            ip_limit: config.discv5_ip_limit,
            ..V5Limits::default()
        })
        .with_v4(v4)
        .with_dns(dns)
}

/// The `enr:` record a node with `config` and `key` advertises, without starting
/// it (for `devmux identity`).
pub fn enr_for(
    config: &NodeConfig,
    key: &NodeKey,
    head: devmux_eth::Head,
) -> Result<String, Error> {
    let spec = config.chain_spec()?;
    let filter = spec.fork_filter(head);
    let port = |kind| config.listen_addr_of(kind).map(|a| a.port());
    let discovery = discovery_config(
        config,
        &spec,
        filter,
        port(ServerKind::Rlpx),
        port(ServerKind::P2p),
    );
    Ok(devmux_discovery::local_enr(&discovery, key)?.to_base64())
}

/// Starts discv5 advertising the running stack and our fork id, and feeds the
/// network's dialer with candidates that run our stack and a compatible fork.
async fn start_discovery(
    config: &NodeConfig,
    key: &NodeKey,
    chain: &Chain,
    network: &Network,
) -> Result<Discovery, Error> {
    let port = |kind| network.listen_addr_of(kind).map(|a| a.port());
    let discovery_config = discovery_config(
        config,
        chain.spec(),
        chain.fork_filter(),
        port(ServerKind::Rlpx),
        port(ServerKind::P2p),
    );
    let mut discovery = Discovery::start(discovery_config, key).await?;
    if let Some(candidates) = discovery.take_candidates() {
        network.run_dialer(Box::pin(candidates.map(|c| DialTarget {
            peer: c.peer_id,
            addr: c.dial_url(),
        })));
    }
    info!(enr = %discovery.local_enr_string(), "discovery started");
    Ok(discovery)
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
