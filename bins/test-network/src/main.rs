//! `test-network`: three devmux nodes in one process, node N on 127.0.N.1, and what they do.
//!
//! ```text
//! cargo run --release -p test-network             # the stream stack; Ctrl-C stops it
//! cargo run --release -p test-network -- --rlpx   # the RLPx server
//! cargo run --release -p test-network -- --mixed  # node 1 both servers, 2 RLPx, 3 the stream stack
//! cargo run -p test-network -- --check            # the scenario once, PASS/FAIL, exit code
//! ```
//!
//! Node 1 starts first, as the bootnode, with the devnet chain (`--dev-blocks`, 1000
//! by default) and builds a block from its pool every `--produce-blocks` seconds (2);
//! nodes 2 and 3 know only node 1's ENR, sync its chain and follow it. Each node has its own data directory in one
//! temporary directory (removed at exit), listens on its own loopback address
//! (127.0.N.1, so per-address limits apply as between hosts), TCP `--base-port` + 0, 1, 2
//! (default 30450–30452) and UDP 100 below (30350–30352), and serves the admin
//! JSON-RPC on 127.0.0.1 `--rpc-port` + 0, 1, 2 (default 8550–8552).
//!
//! `--mixed`: node 1 runs both servers (RLPx on `--base-port`, the stream stack on
//! `--base-port` + 3, 30453), node 2 RLPx only, node 3 the stream stack only. Node 2
//! is the producer: it builds the `--dev-blocks` chain and a block every
//! `--produce-blocks` seconds; nodes 1 and 3 start empty. Nodes 2 and 3 share no
//! server, so blocks and transactions pass between them only through node 1.
//!
//! The output shows, as it happens, discovery (discv5 or discv4 table entries), connections,
//! protocol negotiation and eth Status, and every `--refresh` seconds a table of
//! peers, protocols, heads, streams and bytes, until Ctrl-C (or SIGTERM) stops the nodes.
//! Logs go to stderr (`--log-level`, default `warn`).
//!
//! `--check` runs the scenario's steps (see `check.rs`) against a deadline under 60 s,
//! prints one PASS/FAIL line per step and exits non-zero if any failed.

mod check;
mod net;
mod view;

use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;

use crate::net::{Layout, Mode, Testnet};
use crate::view::Watch;

/// Time between node starts.
const START_PAUSE: Duration = Duration::from_millis(1000);

/// Command-line flags.
#[derive(Parser, Debug)]
#[command(
    name = "test-network",
    version,
    about = "Three devmux nodes on 127.0.1.1–127.0.3.1: discovery, connections, negotiation and Status as they happen"
)]
struct Args {
    /// Run the legacy RLPx server instead of the stream stack
    #[arg(long)]
    rlpx: bool,
    /// Node 1 runs both servers (stream stack on base+3), node 2 RLPx only and
    /// produces the blocks, node 3 the stream stack only
    #[arg(long, conflicts_with = "rlpx")]
    mixed: bool,
    /// Run the scenario once, print PASS/FAIL per step, exit non-zero on a failure
    #[arg(long)]
    check: bool,
    /// TCP port of node 1 (nodes use base..base+2, --mixed also base+3; UDP discovery 100 below)
    #[arg(long, value_name = "PORT", default_value_t = 30450)]
    base_port: u16,
    /// Admin RPC port of node 1 (nodes use 127.0.0.1:port..port+2)
    #[arg(long, value_name = "PORT", default_value_t = 8550)]
    rpc_port: u16,
    /// Devnet blocks the producer (node 1; node 2 with --mixed) builds at start
    #[arg(long, value_name = "N", default_value_t = 1000)]
    dev_blocks: u64,
    /// The producer (node 1; node 2 with --mixed) builds a block from its pool every SECS seconds
    #[arg(long, value_name = "SECS", default_value_t = 2)]
    produce_blocks: u64,
    /// Seconds between status tables
    #[arg(long, value_name = "SECS", default_value_t = 5)]
    refresh: u64,
    /// Discovery protocols the nodes run: v5, v4 or v4,v5 (nodes 2 and 3 know node 1 as
    /// an enr: record for v5 and an enode:// URL for v4)
    #[arg(long, value_name = "LIST", value_delimiter = ',', default_value = "v5")]
    discovery: Vec<devmux_node::DiscoveryProtocol>,
    /// Seconds `--check` may take in all
    #[arg(long, value_name = "SECS", default_value_t = 50)]
    deadline: u64,
    /// Log filter for stderr (error, warn, info, debug, trace or directives)
    #[arg(long, value_name = "FILTER", default_value = "warn")]
    log_level: String,
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

async fn run(args: Args) -> anyhow::Result<bool> {
    let layout = Layout {
        base_port: args.base_port,
        rpc_port: args.rpc_port,
        mode: match (args.mixed, args.rlpx) {
            (true, _) => Mode::Mixed,
            (false, true) => Mode::Rlpx,
            (false, false) => Mode::Stream,
        },
        dev_blocks: args.dev_blocks,
        produce_blocks: args.produce_blocks.max(1),
        discovery: args.discovery.clone(),
    };
    layout.validate()?;
    if args.check && !(1..60).contains(&args.deadline) {
        anyhow::bail!(
            "--deadline {} must be between 1 and 59 seconds",
            args.deadline
        );
    }
    if args.refresh == 0 {
        anyhow::bail!("--refresh must be at least 1 second");
    }
    println!(
        "test-network: 3 nodes (127.0.N.1) on the {}, TCP {}–{}, UDP {}–{}, RPC 127.0.0.1:{}–{}",
        layout.server_name(),
        layout.base_port,
        layout.base_port + layout.tcp_port_count() - 1,
        layout.base_port - net::UDP_OFFSET,
        layout.base_port - net::UDP_OFFSET + net::NODES - 1,
        layout.rpc_port,
        layout.rpc_port + net::NODES - 1,
    );
    if layout.mode == Mode::Mixed {
        let nodes: Vec<String> = (1..=net::NODES)
            .map(|i| format!("node{i} {}", layout.describe(i)))
            .collect();
        println!(
            "test-network: {}; node{} produces the blocks",
            nodes.join(", "),
            layout.producer()
        );
    }
    let watch = Watch::new();
    let started = Instant::now();
    let mut net = Testnet::prepare(layout, |name, key| watch.name(name, key))?;
    loop {
        match net.start_next().await {
            Ok(Some(node)) => watch.follow(node),
            Ok(None) => break,
            Err(e) => {
                net.stop().await;
                return Err(e);
            }
        }
        // A moment between starts, so that what each start sets off shows in order.
        let pause = Instant::now() + START_PAUSE;
        while Instant::now() < pause {
            tokio::time::sleep(Duration::from_millis(10)).await;
            watch.poll_discovery(&net);
        }
    }

    let ok = if args.check {
        let deadline = started + Duration::from_secs(args.deadline);
        let steps = check::run(&net, check::steps(net.layout.mode), deadline);
        tokio::pin!(steps);
        let mut ticker = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                biased;
                _ = ticker.tick() => watch.poll_discovery(&net),
                ok = &mut steps => break ok,
            }
        }
    } else {
        let mut discovery = tokio::time::interval(Duration::from_millis(250));
        let mut table = tokio::time::interval(Duration::from_secs(args.refresh));
        let stop = stop_signal();
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = &mut stop => break,
                _ = discovery.tick() => watch.poll_discovery(&net),
                _ = table.tick() => watch.print_table(&net),
            }
        }
        println!("stopping");
        true
    };
    if args.check {
        watch.print_table(&net);
    }
    net.stop().await;
    Ok(ok)
}

fn main() {
    let args = Args::parse();
    let filter = match tracing_subscriber::EnvFilter::try_new(&args.log_level) {
        Ok(filter) => filter,
        Err(e) => {
            eprintln!("test-network: --log-level {:?}: {e}", args.log_level);
            std::process::exit(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result = tokio::runtime::Runtime::new()
        .context("cannot start the async runtime")
        .and_then(|runtime| runtime.block_on(run(args)));
    match result {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("test-network: {}", devmux_node::error_line(e.as_ref()));
            std::process::exit(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixed_conflicts_with_rlpx() {
        let parse = |args: &[&str]| Args::try_parse_from([&["test-network"], args].concat());
        assert!(parse(&["--mixed", "--rlpx"]).is_err());
        assert!(parse(&["--check", "--mixed"]).is_ok_and(|a| a.mixed && !a.rlpx));
    }
}
