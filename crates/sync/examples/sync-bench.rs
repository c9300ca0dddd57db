//! Sync and relay benchmark, on both servers (not run in CI):
//!
//! - **sync**: a node with an empty chain syncs a devnet chain of `--blocks` blocks
//!   (default 10 000) from one peer over 127.0.0.1; reports blocks/s and MB/s (RLP bytes
//!   of the headers, bodies and receipts downloaded), median of `--runs` runs;
//! - **transaction propagation**: five nodes (a ring with one chord, as the tests use),
//!   `--txs` transactions (default 2000) added at node 0 in batches of 10 every 10 ms;
//!   reports the latency from the add at node 0 to the arrival in each other node's pool
//!   (p50, p99, max over every transaction and node).
//!
//! ```text
//! cargo run --release -p devmux-sync --example sync-bench
//! cargo run --release -p devmux-sync --example sync-bench -- --blocks 20000 --txs 5000 --runs 5
//! ```

use std::collections::HashMap;
use std::error::Error;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use devmux_chain::devnet::Devnet;
use devmux_chain::{BlockWithReceipts, Chain, ChainSpec, Pool, PoolConfig};
use devmux_eth::alloy_primitives::{B256, U256};
use devmux_eth::{protocols, EthConfig, EthHandler, EthPeers};
use devmux_network::{Network, NetworkConfig, NodeKey, Registrar};
use devmux_sync::{SyncConfig, SyncHandle, Syncer};
use tempfile::TempDir;
use tokio::time::Instant;

type Res<T> = Result<T, Box<dyn Error>>;

struct Args {
    blocks: usize,
    txs: usize,
    runs: usize,
}

fn args() -> Res<Args> {
    let mut args = Args {
        blocks: 10_000,
        txs: 2_000,
        runs: 3,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value: usize = it.next().ok_or(format!("{flag} needs a value"))?.parse()?;
        match flag.as_str() {
            "--blocks" => args.blocks = value,
            "--txs" => args.txs = value,
            "--runs" => args.runs = value.max(1),
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    Ok(args)
}

struct Node {
    net: Network,
    eth: EthPeers,
    chain: Chain,
    pool: Pool,
    sync: SyncHandle,
    _dir: TempDir,
}

async fn node(use_p2p_server: bool, blocks: &[BlockWithReceipts]) -> Res<Node> {
    let dir = tempfile::tempdir()?;
    let chain = Chain::open_async(dir.path().join("chain.redb"), ChainSpec::devnet()).await?;
    for batch in blocks.chunks(1000) {
        chain.insert_blocks(batch.to_vec()).await?;
    }
    let pool = Pool::new(PoolConfig {
        max_count: 100_000,
        // The benchmark's transactions come from the 16 dev keys.
        max_per_sender: usize::MAX,
        ..PoolConfig::devnet()
    });
    let eth_config = EthConfig::default().with_announce_pool_on_connect(false);
    let (handler, eth) = EthHandler::new(chain.clone(), pool.clone(), eth_config);
    let mut registrar = Registrar::new();
    registrar.session(protocols(), handler)?;
    let config = NetworkConfig::default()
        .with_p2p_server(use_p2p_server)
        .with_listen_addr(([127, 0, 0, 1], 0).into());
    let net = Network::start(config, NodeKey::generate(), registrar).await?;
    let sync = Syncer::spawn(
        chain.clone(),
        pool.clone(),
        eth.clone(),
        SyncConfig::default(),
    );
    Ok(Node {
        net,
        eth,
        chain,
        pool,
        sync,
        _dir: dir,
    })
}

impl Node {
    async fn connect(&self, other: &Node) -> Res<()> {
        let peer = self.net.dial(&other.net.local_addr()).await?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.eth.get(&peer).is_none() || other.eth.get(&self.net.local_peer_id()).is_none() {
            if Instant::now() > deadline {
                return Err("no eth session".into());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(())
    }

    async fn stop(self) {
        self.sync.shutdown().await;
        self.net.shutdown().await;
    }
}

/// One sync of `blocks` from a serving node: (seconds, bytes downloaded).
async fn sync_once(use_p2p_server: bool, blocks: &[BlockWithReceipts]) -> Res<(f64, u64)> {
    let server = node(use_p2p_server, blocks).await?;
    let client = node(use_p2p_server, &[]).await?;
    let head = blocks
        .last()
        .map(BlockWithReceipts::hash)
        .ok_or("no blocks")?;
    let started = Instant::now();
    client.connect(&server).await?;
    while client.chain.head().hash != head {
        if started.elapsed() > Duration::from_secs(600) {
            return Err(format!("sync stuck at {:?}", client.sync.status()).into());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    let bytes = client.sync.stats().bytes_downloaded;
    client.stop().await;
    server.stop().await;
    Ok((secs, bytes))
}

/// Latencies (ms) from the add at node 0 to each other pool, for `count` transactions.
async fn propagation(use_p2p_server: bool, count: usize) -> Res<Vec<f64>> {
    let mut nodes = Vec::new();
    for _ in 0..5 {
        nodes.push(node(use_p2p_server, &[]).await?);
    }
    for (a, b) in [(0, 1), (1, 2), (2, 3), (3, 4), (4, 0), (0, 2)] {
        nodes[a].connect(&nodes[b]).await?;
    }
    let arrivals: Arc<Mutex<HashMap<(usize, B256), Instant>>> = Arc::default();
    let mut watchers = Vec::new();
    for (i, n) in nodes.iter().enumerate().skip(1) {
        let mut added = n.pool.subscribe();
        let arrivals = arrivals.clone();
        watchers.push(tokio::spawn(async move {
            while let Ok(tx) = added.recv().await {
                let mut map = arrivals.lock().unwrap_or_else(|e| e.into_inner());
                map.entry((i, tx.hash)).or_insert_with(Instant::now);
            }
        }));
    }

    let devnet = Devnet::new()?;
    let to = devnet.keys()[15].address();
    let txs: Vec<_> = (0..count)
        .map(|i| {
            devnet
                .transfer(i % 16, (i / 16) as u64, to, U256::from(1))
                .try_into_pooled()
        })
        .collect::<Result<_, _>>()
        .map_err(|_| "a blob transaction")?;
    let mut sent: HashMap<B256, Instant> = HashMap::new();
    for batch in txs.chunks(10) {
        let at = Instant::now();
        for tx in batch {
            sent.insert(*tx.hash(), at);
        }
        nodes[0].pool.add_all(batch.to_vec());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let arrived = arrivals.lock().unwrap_or_else(|e| e.into_inner()).len();
        if arrived >= 4 * count {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("only {arrived} of {} arrivals", 4 * count).into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let latencies = arrivals
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter_map(|((_, h), at)| sent.get(h).map(|s| (*at - *s).as_secs_f64() * 1e3))
        .collect();
    for w in watchers {
        w.abort();
    }
    for n in nodes {
        n.stop().await;
    }
    Ok(latencies)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Res<()> {
    let args = args()?;
    eprintln!("deriving {} devnet blocks…", args.blocks);
    let blocks: Vec<_> = Devnet::new()?.blocks(args.blocks as u64).collect();

    let mut sync_rows = Vec::new();
    let mut tx_rows = Vec::new();
    for (name, p2p) in [("stream stack (Noise + Yamux)", true), ("RLPx", false)] {
        let mut runs = Vec::new();
        for run in 0..args.runs {
            let (secs, bytes) = sync_once(p2p, &blocks).await?;
            eprintln!("{name}: sync run {run}: {secs:.3} s, {bytes} bytes");
            runs.push((secs, bytes));
        }
        runs.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (secs, bytes) = runs[runs.len() / 2];
        sync_rows.push(format!(
            "| {name} | {} | {secs:.2} | {:.0} | {:.1} |",
            args.blocks,
            args.blocks as f64 / secs,
            bytes as f64 / secs / 1e6
        ));

        let mut lat = propagation(p2p, args.txs).await?;
        lat.sort_by(f64::total_cmp);
        tx_rows.push(format!(
            "| {name} | {} | {:.1} | {:.1} | {:.1} |",
            args.txs,
            percentile(&lat, 0.5),
            percentile(&lat, 0.99),
            lat.last().copied().unwrap_or(f64::NAN)
        ));
    }

    println!("| server | blocks | seconds | blocks/s | MB/s |");
    println!("|---|---:|---:|---:|---:|");
    for row in sync_rows {
        println!("{row}");
    }
    println!();
    println!("| server | transactions | p50 ms | p99 ms | max ms |");
    println!("|---|---:|---:|---:|---:|");
    for row in tx_rows {
        println!("{row}");
    }
    Ok(())
}
