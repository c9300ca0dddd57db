//! eth serving throughput between two devmux nodes, per server, and the codec's
//! encode/decode throughput for headers and bodies. Not run in CI.
//!
//! ```text
//! cargo run --release -p devmux-node --example eth_bench -- --secs 5
//! ```
//! Prints a markdown table. Both nodes run in this process on 127.0.0.1.

use std::time::{Duration, Instant};

use clap::Parser;
use devmux_chain::devnet::Devnet;
use devmux_eth::{
    BlockBodies, BlockHeaders, EthMessage, EthPeer, EthVersion, GetBlockHeaders, RequestPair,
};
use devmux_node::{Node, NodeConfig};

#[derive(Parser)]
struct Args {
    /// Seconds per measurement.
    #[arg(long, default_value_t = 5)]
    secs: u64,
}

const BLOCKS: u64 = 4096;

async fn pair(stream_stack: bool, dir: &std::path::Path) -> anyhow::Result<(Node, Node, EthPeer)> {
    let base = NodeConfig {
        use_p2p_server: stream_stack,
        port: 0,
        dev: true,
        no_discovery: true,
        // Measure serving capacity, not the per-peer rate limit.
        eth_request_rate: 1_000_000,
        ..NodeConfig::default()
    };
    let server = Node::start(NodeConfig {
        datadir: dir.join(format!("server-{stream_stack}")),
        dev_blocks: BLOCKS,
        ..base.clone()
    })
    .await?;
    let client = Node::start(NodeConfig {
        datadir: dir.join(format!("client-{stream_stack}")),
        static_peers: vec![server.local_addr()],
        ..base
    })
    .await?;
    let id = server.network().local_peer_id();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(peer) = client.eth().get(&id) {
            return Ok((server, client, peer));
        }
        anyhow::ensure!(Instant::now() < deadline, "no eth session within 20 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Requests of `limit` headers, one at a time, for `secs`: (requests/s, headers/s).
async fn headers_rate(peer: &EthPeer, limit: u64, secs: u64) -> anyhow::Result<(f64, f64)> {
    let started = Instant::now();
    let (mut requests, mut headers) = (0u64, 0u64);
    let mut start = 1u64;
    while started.elapsed() < Duration::from_secs(secs) {
        let got = peer
            .get_block_headers(GetBlockHeaders {
                start: start.into(),
                limit,
                skip: 0,
                reverse: false,
            })
            .await?;
        anyhow::ensure!(got.len() as u64 == limit, "short answer: {}", got.len());
        anyhow::ensure!(got[0].number == start, "wrong first header");
        requests += 1;
        headers += got.len() as u64;
        start = 1 + (start + limit) % (BLOCKS - limit);
    }
    let secs = started.elapsed().as_secs_f64();
    Ok((requests as f64 / secs, headers as f64 / secs))
}

/// Encode and decode throughput of a message, in MB/s of its RLP.
fn codec_rate(message: &EthMessage, secs: u64) -> anyhow::Result<(f64, f64, usize)> {
    let (code, bytes) = message.encode();
    let size = bytes.len();
    let run = |f: &mut dyn FnMut() -> anyhow::Result<()>| -> anyhow::Result<f64> {
        let started = Instant::now();
        let mut n = 0u64;
        while started.elapsed() < Duration::from_secs(secs) {
            f()?;
            n += 1;
        }
        Ok(n as f64 * size as f64 / started.elapsed().as_secs_f64() / 1e6)
    };
    let encode = run(&mut || {
        std::hint::black_box(message.encode());
        Ok(())
    })?;
    let decode = run(&mut || {
        let decoded = EthMessage::decode(EthVersion::Eth68, code, &bytes)?;
        std::hint::black_box(decoded);
        Ok(())
    })?;
    Ok((encode, decode, size))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    println!("| server | request | requests/s | headers/s |");
    println!("|---|---|---:|---:|");
    for stream_stack in [false, true] {
        let (server, client, peer) = pair(stream_stack, dir.path()).await?;
        let name = if stream_stack { "stream stack" } else { "RLPx" };
        for limit in [1u64, 1024] {
            let (rps, hps) = headers_rate(&peer, limit, args.secs).await?;
            println!(
                "| {name} ({}) | GetBlockHeaders × {limit} | {rps:.0} | {hps:.0} |",
                peer.version()
            );
        }
        client.stop().await;
        server.stop().await;
    }

    let devnet = Devnet::new()?;
    let blocks: Vec<_> = devnet.blocks(1024).collect();
    let headers = EthMessage::BlockHeaders(RequestPair {
        request_id: 1,
        message: BlockHeaders(blocks.iter().map(|b| b.header.clone()).collect()),
    });
    let bodies = EthMessage::BlockBodies(RequestPair {
        request_id: 1,
        message: BlockBodies(blocks.iter().map(|b| b.body.clone()).collect()),
    });
    println!();
    println!("| message (1024 devnet blocks) | size | encode MB/s | decode MB/s |");
    println!("|---|---:|---:|---:|");
    for (name, message) in [("BlockHeaders", &headers), ("BlockBodies", &bodies)] {
        let (enc, dec, size) = codec_rate(message, args.secs)?;
        println!("| {name} | {} KiB | {enc:.0} | {dec:.0} |", size / 1024);
    }
    Ok(())
}
