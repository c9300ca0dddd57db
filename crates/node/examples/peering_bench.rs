//! How long N nodes in one process, knowing only one bootnode, take until every
//! node has at least min(N-1, 8) peers, per server. Not run in CI.
//!
//! ```text
//! cargo run --release -p devmux-node --example peering_bench -- --nodes 10,30,60
//! ```
//! Prints a markdown table. Every node listens on 127.0.0.1 (TCP and UDP port 0).

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
    let want = (n - 1).min(8);
    let result = loop {
        if nodes
            .iter()
            .all(|node| node.network().peers().len() >= want)
        {
            break Some(started.elapsed());
        }
        if started.elapsed() > timeout {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for node in nodes {
        node.stop().await;
    }
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
            let took = run(n, stream_stack, Duration::from_secs(args.timeout)).await?;
            cells.push(took.map_or_else(
                || "timeout".to_string(),
                |d| format!("{:.1} s", d.as_secs_f64()),
            ));
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
