//! A slow, stalling TCP link of our own, for kernels without `tc netem`
//! (`devmux_tests::relay`): listens on `--listen`, relays every connection to
//! `--target`, delaying each chunk and now and then stalling it.
//!
//! ```text
//! cargo run -p devmux-tests --example netem_relay -- --listen 10.77.0.1:40001 \
//!     --target 10.77.1.11:30303 --delay-ms 40 --jitter-ms 20 --stall-percent 2 --stall-ms 300
//! ```
//! `testnet/netns.sh --check churn` puts node 2's and node 3's links to node 1 through
//! one of these when netem is missing. It prints `relay LISTEN -> TARGET` once
//! listening.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use devmux_tests::relay::{run, Impairment};

#[derive(Parser)]
struct Args {
    /// Where to accept connections.
    #[arg(long)]
    listen: SocketAddr,
    /// Where to relay them.
    #[arg(long)]
    target: SocketAddr,
    /// Delay added to every chunk, each direction.
    #[arg(long, default_value_t = 40)]
    delay_ms: u64,
    /// Up to this much more per chunk (uniform).
    #[arg(long, default_value_t = 20)]
    jitter_ms: u64,
    /// Chance in percent, per chunk, of a stall (what a lost packet costs TCP).
    #[arg(long, default_value_t = 2.0)]
    stall_percent: f64,
    /// How long a stall lasts.
    #[arg(long, default_value_t = 300)]
    stall_ms: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        (0.0..=100.0).contains(&args.stall_percent),
        "--stall-percent must be 0..=100"
    );
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    println!("relay {} -> {}", listener.local_addr()?, args.target);
    let how = Impairment {
        delay: Duration::from_millis(args.delay_ms),
        jitter: Duration::from_millis(args.jitter_ms),
        stall_probability: args.stall_percent / 100.0,
        stall: Duration::from_millis(args.stall_ms),
    };
    run(listener, args.target, how).await?;
    Ok(())
}
