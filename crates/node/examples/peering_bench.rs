//! N nodes knowing only one bootnode, per carrier (RLPx, stream stack): the time until
//! every node has at least min(N-1, 8) peers, from the first node's start, and then the
//! time from a block being produced on one node until every node has it as its head.
//! Not run in CI.
//!
//! ```text
//! cargo run --release -p devmux-node --example peering_bench -- --nodes 10,30,60
//! cargo run --release -p devmux-node --example peering_bench -- --nodes 200 --runs 3
//! cargo run --release -p devmux-node --example peering_bench -- --nodes 200 --runs 3 --processes
//! ```
//!
//! Prints a markdown table: the median of `--runs` runs, with min–max. Node i (0 is the
//! bootnode) listens on its own loopback address, 127.(i / 254).(i % 254 + 1).1, TCP and
//! UDP port 0, so every node is its own host and its own /24 to the per-IP and
//! per-subnet limits of the pool, admission and discv5 (which keep their defaults).
//! Linux routes all of 127.0.0.0/8 to `lo`; nothing needs setting up.
//!
//! The block is sealed with dev key 0 (the devnet's default signer, WIRE.md §7.1) on
//! the last node started, once the network has peered; it reaches the others through
//! the relay (`NewBlock` / `NewBlockHashes`) and sync.
//!
//! `--processes` runs every node as its own OS process: this example again, with the
//! hidden `--child` flag, which starts one node and prints what it sees on stdout as
//! lines (`enr ENR`, `peers COUNT UNIX_MICROS`, `head NUMBER UNIX_MICROS`, `produced
//! NUMBER UNIX_MICROS`); it produces a block when `produce` arrives on its stdin and
//! stops when stdin closes (so a child never outlives its parent). The times come from
//! the children's own clocks (the one system clock), not from when the parent reads
//! the lines. Progress and the time each network takes to start and stop go to stderr.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use clap::Parser;
use devmux_node::{Node, NodeConfig};

#[path = "peering_bench/processes.rs"]
mod processes;

#[derive(Parser)]
struct Args {
    /// Network sizes to measure.
    #[arg(long, value_delimiter = ',', default_value = "10,30,60")]
    nodes: Vec<usize>,
    /// Give up on peering after this many seconds per run (and on the block after as
    /// many again).
    #[arg(long, default_value_t = 180)]
    timeout: u64,
    /// Runs per network size and carrier.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Carriers to measure: `rlpx`, `stream`.
    #[arg(long, value_delimiter = ',', default_value = "rlpx,stream")]
    carriers: Vec<String>,
    /// Every node its own OS process.
    #[arg(long)]
    processes: bool,
    /// Seconds between each node's discovery lookups. Each round verifies the
    /// signatures of up to a few hundred records, which is most of what 200 nodes cost
    /// the CPU: 2 s suits 60 nodes, 10 s 200 on 2 cores.
    #[arg(long, default_value_t = 2)]
    lookup_secs: u64,
    /// Internal: run one node of a `--processes` network.
    #[arg(long, hide = true)]
    child: bool,
    #[arg(long, hide = true, default_value_t = 0)]
    index: usize,
    #[arg(long, hide = true)]
    stream_stack: bool,
    #[arg(long, hide = true)]
    datadir: Option<PathBuf>,
    #[arg(long, hide = true)]
    bootnode: Option<String>,
}

/// What one run measured; `None`: timed out (or not reached because peering timed out).
#[derive(Clone, Copy, Debug, Default)]
struct Measured {
    peered: Option<Duration>,
    block: Option<Duration>,
}

/// Node `i`'s own loopback address: 127.0.1.1, 127.0.2.1, …, 127.0.254.1, 127.1.1.1, …
fn node_ip(i: usize) -> IpAddr {
    let (hi, lo) = (i / 254, i % 254 + 1);
    IpAddr::V4(Ipv4Addr::new(
        127,
        u8::try_from(hi).unwrap_or(u8::MAX),
        u8::try_from(lo).unwrap_or(u8::MAX),
        1,
    ))
}

fn node_config(
    i: usize,
    stream_stack: bool,
    lookup_secs: u64,
    datadir: &Path,
    bootnode: Option<&str>,
) -> NodeConfig {
    NodeConfig {
        datadir: datadir.to_path_buf(),
        use_p2p_server: stream_stack,
        addr: node_ip(i),
        port: 0,
        dev: true,
        bootnodes: bootnode.map(str::to_string).into_iter().collect(),
        discovery_lookup_secs: lookup_secs,
        ..NodeConfig::default()
    }
}

/// Microseconds since the Unix epoch: the clock every process of a run shares.
fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// Seals a devnet block on `node`'s head with dev key 0 and relays it.
async fn produce(node: &Node) -> anyhow::Result<u64> {
    let signer = devmux_chain::devnet::dev_key(0)?;
    let producer = devmux_sync::Producer::new(node.syncer(), signer)?;
    Ok(producer.produce().await?.number())
}

/// `median (min–max)` in seconds (`millis`: milliseconds), or `timeout` if any run
/// timed out.
fn summary(mut runs: Vec<Option<Duration>>, millis: bool) -> String {
    if runs.is_empty() || runs.iter().any(Option::is_none) {
        return "timeout".to_string();
    }
    runs.sort();
    let value = |d: &Option<Duration>| {
        let d = d.unwrap_or_default();
        if millis {
            format!("{:.0}", d.as_secs_f64() * 1000.0)
        } else {
            format!("{:.2}", d.as_secs_f64())
        }
    };
    format!(
        "{} {} ({}–{})",
        value(&runs[runs.len() / 2]),
        if millis { "ms" } else { "s" },
        value(&runs[0]),
        value(&runs[runs.len() - 1])
    )
}

fn carrier_name(stream_stack: bool) -> &'static str {
    if stream_stack {
        "stream stack"
    } else {
        "RLPx"
    }
}

/// Prints progress to stderr every 5 s.
struct Progress {
    started: Instant,
    next: Duration,
}

impl Progress {
    fn new() -> Self {
        Self {
            started: Instant::now(),
            next: Duration::from_secs(5),
        }
    }

    fn report(&mut self, what: impl FnOnce() -> String) {
        if self.started.elapsed() > self.next {
            self.next += Duration::from_secs(5);
            eprintln!("  {:.0?}: {}", self.started.elapsed(), what());
        }
    }
}

async fn run_in_process(
    n: usize,
    stream_stack: bool,
    lookup_secs: u64,
    timeout: Duration,
) -> anyhow::Result<Measured> {
    let dir = tempfile::tempdir()?;
    let started = Instant::now();
    let boot = Node::start(node_config(
        0,
        stream_stack,
        lookup_secs,
        &dir.path().join("n0"),
        None,
    ))
    .await?;
    let enr = boot.enr().unwrap_or_default();
    let mut nodes = vec![boot];
    for i in 1..n {
        let datadir = dir.path().join(format!("n{i}"));
        let config = node_config(i, stream_stack, lookup_secs, &datadir, Some(&enr));
        nodes.push(
            Node::start(config)
                .await
                .with_context(|| format!("node {i}"))?,
        );
        if i % 50 == 0 {
            eprintln!("  {i} nodes started in {:.1?}", started.elapsed());
        }
    }
    let booted = started.elapsed();
    let want = (n - 1).min(8);
    let mut progress = Progress::new();
    let mut measured = Measured::default();
    loop {
        let counts: Vec<usize> = nodes.iter().map(|n| n.network().peers().len()).collect();
        if counts.iter().all(|&c| c >= want) {
            measured.peered = Some(started.elapsed());
            break;
        }
        if started.elapsed() > timeout {
            break;
        }
        progress.report(|| {
            let (worst, fewest) = counts
                .iter()
                .copied()
                .enumerate()
                .min_by_key(|&(_, c)| c)
                .unwrap_or_default();
            let node = &nodes[worst];
            format!(
                "{n} nodes ({}): {} of {n} at ≥ {want} peers, fewest {fewest} (node {worst}: \
                 discv5 table {}, dials {:?}, handshake failures {:?})",
                carrier_name(stream_stack),
                counts.iter().filter(|&&c| c >= want).count(),
                node.discovery().map_or(0, |d| d.table_size()),
                node.network().counters().dials,
                node.network().counters().handshake_failures,
            )
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if measured.peered.is_some() {
        let producing = Instant::now();
        let number = produce(&nodes[n - 1]).await?;
        let mut progress = Progress::new();
        loop {
            let behind = nodes
                .iter()
                .filter(|n| n.chain().head().number < number)
                .count();
            if behind == 0 {
                measured.block = Some(producing.elapsed());
                break;
            }
            if producing.elapsed() > timeout {
                break;
            }
            progress.report(|| format!("block {number}: {behind} of {n} nodes without it"));
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    let stopping = Instant::now();
    futures::future::join_all(nodes.into_iter().map(Node::stop)).await;
    eprintln!(
        "  {n} nodes ({}): started in {booted:.1?}, stopped in {:.1?}; {measured:?}",
        carrier_name(stream_stack),
        stopping.elapsed()
    );
    Ok(measured)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // 200 nodes in one process hold a few thousand sockets; children inherit the limit.
    let nofile = rlimit::increase_nofile_limit(u64::MAX)?;
    if args.child {
        let index = args.index;
        // One node per process on a shared 2-core machine: one thread each is plenty.
        let result = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(processes::child(args));
        // Exit at once: a runtime dropped normally would wait for the blocking read of
        // stdin that may still be under way.
        if let Err(e) = result {
            eprintln!("node {index}: {e:#}");
            std::process::exit(1);
        }
        std::process::exit(0);
    }
    eprintln!("open files limit: {nofile}");
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(parent(args))
}

async fn parent(args: Args) -> anyhow::Result<()> {
    let mut carriers = Vec::new();
    for carrier in &args.carriers {
        carriers.push(match carrier.as_str() {
            "rlpx" => false,
            "stream" => true,
            other => anyhow::bail!("unknown carrier {other:?}: rlpx or stream"),
        });
    }
    let timeout = Duration::from_secs(args.timeout);
    let mode = if args.processes {
        "one process each"
    } else {
        "one process"
    };
    println!(
        "| nodes | run as | peers each | RLPx: peered | RLPx: block to all | stream stack: peered | stream stack: block to all |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|");
    for &n in &args.nodes {
        anyhow::ensure!(n >= 2, "--nodes: at least 2");
        let mut cells = [(String::from("–"), String::from("–")), Default::default()];
        cells[1] = cells[0].clone();
        for &stream_stack in &carriers {
            let mut runs = Vec::new();
            for run in 0..args.runs {
                eprintln!(
                    "{n} nodes, {}, {mode}: run {} of {}",
                    carrier_name(stream_stack),
                    run + 1,
                    args.runs
                );
                runs.push(if args.processes {
                    processes::run(n, stream_stack, args.lookup_secs, timeout).await?
                } else {
                    run_in_process(n, stream_stack, args.lookup_secs, timeout).await?
                });
            }
            cells[usize::from(stream_stack)] = (
                summary(runs.iter().map(|m| m.peered).collect(), false),
                summary(runs.iter().map(|m| m.block).collect(), true),
            );
        }
        println!(
            "| {n} | {mode} | ≥ {} | {} | {} | {} | {} |",
            (n - 1).min(8),
            cells[0].0,
            cells[0].1,
            cells[1].0,
            cells[1].1
        );
    }
    Ok(())
}
