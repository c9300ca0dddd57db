//! How long N nodes in one process, knowing only one bootnode, take until every
//! node has at least min(N-1, 8) peers, per server. Not run in CI.
//!
//! ```text
//! cargo run --release -p devmux-node --example peering_bench -- --nodes 10,30,60
//! ```
//! Prints a markdown table: the median of `--runs` runs, with min–max. Every node
//! listens on 127.0.0.1 (TCP and UDP port 0). Progress and the time each network
//! takes to start and stop go to stderr.

use std::time::{Duration, Instant};

use clap::Parser;
use devmux_node::{Node, NodeConfig};

#[derive(Parser)]
struct Args {
    /// Network sizes to measure.
    #[arg(long, value_delimiter = ',', default_value = "10,30,60")]
    nodes: Vec<usize>,
    /// Give up after this many seconds per run.
    #[arg(long, default_value_t = 180)]
    timeout: u64,
    /// Runs per network size and server.
    #[arg(long, default_value_t = 5)]
    runs: usize,
}

/// `median (min–max)` in seconds, or `timeout` if any run timed out.
fn summary(mut runs: Vec<Option<Duration>>) -> String {
    if runs.is_empty() || runs.iter().any(Option::is_none) {
        return "timeout".to_string();
    }
    runs.sort();
    let secs = |d: &Option<Duration>| d.unwrap_or_default().as_secs_f64();
    format!(
        "{:.2} s ({:.2}–{:.2})",
        secs(&runs[runs.len() / 2]),
        secs(&runs[0]),
        secs(&runs[runs.len() - 1])
    )
}

async fn run(n: usize, stream_stack: bool, timeout: Duration) -> anyhow::Result<Option<Duration>> {
    let dir = tempfile::tempdir()?;
    let config = |name: String| NodeConfig {
        datadir: dir.path().join(name),
        use_p2p_server: stream_stack,
        port: 0,
        dev: true,
        discovery_lookup_secs: 2,
        ..NodeConfig::default()
    };
    let started = Instant::now();
    let boot = Node::start(config("boot".into())).await?;
    let enr = boot.enr().unwrap_or_default();
    let mut nodes = vec![boot];
    for i in 1..n {
        let mut c = config(format!("n{i}"));
        c.bootnodes = vec![enr.clone()];
        nodes.push(Node::start(c).await?);
    }
    let booted = started.elapsed();
    let want = (n - 1).min(8);
    let mut next_report = Duration::from_secs(5);
    let result = loop {
        let counts: Vec<usize> = nodes
            .iter()
            .map(|node| node.network().peers().len())
            .collect();
        if counts.iter().all(|&c| c >= want) {
            break Some(started.elapsed());
        }
        if started.elapsed() > timeout {
            break None;
        }
        if started.elapsed() > next_report {
            next_report += Duration::from_secs(5);
            eprintln!(
                "  {n} nodes ({}): {:.0?}, {} of {n} at ≥ {want} peers, fewest {}",
                if stream_stack { "stream stack" } else { "RLPx" },
                started.elapsed(),
                counts.iter().filter(|&&c| c >= want).count(),
                counts.iter().min().copied().unwrap_or(0),
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let stopping = Instant::now();
    futures::future::join_all(nodes.into_iter().map(Node::stop)).await;
    eprintln!(
        "  {n} nodes: started in {booted:.1?}, stopped in {:.1?}",
        stopping.elapsed()
    );
    Ok(result)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    println!("| nodes | peers each | RLPx | stream stack |");
    println!("|---:|---:|---:|---:|");
    for &n in &args.nodes {
        let mut cells = Vec::new();
        for stream_stack in [false, true] {
            let mut runs = Vec::new();
            for _ in 0..args.runs {
                runs.push(run(n, stream_stack, Duration::from_secs(args.timeout)).await?);
            }
            cells.push(summary(runs));
        }
        println!(
            "| {n} | ≥ {} | {} | {} |",
            (n - 1).min(8),
            cells[0],
            cells[1]
        );
    }
    Ok(())
}
