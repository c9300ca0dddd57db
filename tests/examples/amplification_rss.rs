//! Issue 14's amplification attack as a benchmark: what a node's memory does while
//! hostile peers send it `NewBlock`s whose bodies hold 900 000 ten-byte transactions
//! (9 MB each, a few KB after Snappy), reconnecting after every refusal. Not run in CI.
//!
//! ```text
//! cargo run --release -p devmux-tests --example amplification_rss -- --peers 4 --messages 5
//! ```
//! The victim node and an honest peer run in this process; each attacker is a child
//! process of this binary (so that its buffers are not counted as the victim's). The
//! victim's peak RSS is the kernel's high-water mark (`VmHWM`, reset before the attack
//! through `/proc/self/clear_refs`); the honest peer asks the victim for 64 headers in a
//! loop throughout, and the run fails if any request goes unanswered.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use devmux_chain::ChainSpec;
use devmux_eth::alloy_primitives::U256;
use devmux_eth::{
    protocols_for, ChainStatus, EthMessage, EthVersion, GetBlockHeaders, Head, Status,
};
use devmux_identity::NodeKey;
use devmux_network::{Message, MessageStream, Network, NetworkConfig, PeerCtx, Registrar};
use devmux_node::{Node, NodeConfig};

#[derive(Parser)]
struct Args {
    /// Hostile peers at once.
    #[arg(long, default_value_t = 4)]
    peers: usize,
    /// Messages each hostile peer sends, one connection each.
    #[arg(long, default_value_t = 5)]
    messages: usize,
    /// Run the stream stack instead of RLPx.
    #[arg(long)]
    use_p2p_server: bool,
    /// Internal: run as one attacker against this address.
    #[arg(long, hide = true)]
    attack: Option<String>,
}

/// `VmRSS` or `VmHWM` of this process, in KiB.
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| {
            l.strip_prefix(field)?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// The `NewBlock` of issue 14: devnet block 65's header over a body of 900 000 ten-byte
/// legacy transactions.
fn amplifying_new_block() -> Vec<u8> {
    let devnet = devmux_chain::devnet::Devnet::new().expect("dev keys");
    let header = devnet.blocks(65).last().expect("65 blocks").header;
    devmux_tests::hostile::amplifying_new_block(&header, 900_000)
}

/// One attacker: `messages` connections from fresh keys, each sending Status and the
/// amplifying `NewBlock`, then waiting for the victim to hang up.
async fn attack(target: String, messages: usize, use_p2p_server: bool) -> anyhow::Result<()> {
    let payload = bytes::Bytes::from(amplifying_new_block());
    for _ in 0..messages {
        let done = Arc::new(tokio::sync::Notify::new());
        let mut registrar = Registrar::new();
        let (payload, finished) = (payload.clone(), done.clone());
        registrar.session(
            protocols_for(&[EthVersion::Eth68]),
            move |_peer: PeerCtx, mut stream: MessageStream| {
                let (payload, finished) = (payload.clone(), finished.clone());
                async move {
                    let spec = ChainSpec::devnet();
                    let filter = spec.fork_filter(Head {
                        number: 0,
                        timestamp: spec.genesis.timestamp,
                    });
                    let chain = ChainStatus {
                        genesis: spec.genesis_hash(),
                        head_hash: spec.genesis_hash(),
                        head_number: 0,
                        head_timestamp: spec.genesis.timestamp,
                        total_difficulty: U256::from(1),
                        earliest: 0,
                        fork_id: filter.current(),
                        fork_filter: filter,
                    };
                    let status = EthMessage::Status(Status::new(EthVersion::Eth68, 1337, &chain));
                    let (code, bytes) = status.encode_for(EthVersion::Eth68).expect("status");
                    stream.send(Message::new(code, bytes)).await?;
                    stream.send(Message::new(0x07, payload)).await?;
                    // Until the victim hangs up.
                    while let Some(Ok(_)) = stream.next().await {}
                    finished.notify_one();
                    Ok::<_, devmux_network::Error>(())
                }
            },
        )?;
        let config = NetworkConfig::default()
            .with_p2p_server(use_p2p_server)
            .with_listen_addr(([127, 0, 0, 1], 0).into());
        let net = Network::start(config, NodeKey::generate(), registrar).await?;
        net.dial(&target).await?;
        let _ = tokio::time::timeout(Duration::from_secs(20), done.notified()).await;
        net.shutdown().await;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(target) = args.attack {
        return attack(target, args.messages, args.use_p2p_server).await;
    }
    let dir = tempfile::tempdir()?;
    let base = NodeConfig {
        use_p2p_server: args.use_p2p_server,
        port: 0,
        dev: true,
        no_discovery: true,
        ..NodeConfig::default()
    };
    let victim = Node::start(NodeConfig {
        datadir: dir.path().join("victim"),
        dev_blocks: 64,
        ..base.clone()
    })
    .await?;
    let honest = Node::start(NodeConfig {
        datadir: dir.path().join("honest"),
        static_peers: vec![victim.local_addr()],
        ..base
    })
    .await?;
    let victim_id = victim.network().local_peer_id();
    let deadline = Instant::now() + Duration::from_secs(20);
    let peer = loop {
        if let Some(peer) = honest.eth().get(&victim_id) {
            break peer;
        }
        anyhow::ensure!(Instant::now() < deadline, "no eth session within 20 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };

    // The honest peer's requests, throughout.
    let stop = Arc::new(AtomicBool::new(false));
    let (answered, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let asker = {
        let (stop, answered, failed) = (stop.clone(), answered.clone(), failed.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let request = GetBlockHeaders {
                    start: 1u64.into(),
                    limit: 64,
                    skip: 0,
                    reverse: false,
                };
                match peer.get_block_headers(request).await {
                    Ok(headers) if headers.len() == 64 => answered.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };

    // Refusals naming the limit, counted from the victim's events.
    let refusals = Arc::new(AtomicU64::new(0));
    let counter = {
        let (mut events, refusals) = (victim.network().events(), refusals.clone());
        tokio::spawn(async move {
            while let Ok(event) = events.recv().await {
                if let devmux_network::NetworkEvent::PeerPenalized { reason, .. } = event {
                    if reason.contains("transactions per body") {
                        refusals.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        })
    };

    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = status_kib("VmRSS:");
    // Reset the high-water mark to the current RSS (Linux clear_refs, value 5).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let started = Instant::now();
    let exe = std::env::current_exe()?;
    let mut children = Vec::new();
    for _ in 0..args.peers {
        let mut command = tokio::process::Command::new(&exe);
        command
            .arg("--attack")
            .arg(victim.local_addr())
            .arg("--messages")
            .arg(args.messages.to_string());
        if args.use_p2p_server {
            command.arg("--use-p2p-server");
        }
        children.push(command.spawn()?);
    }
    for mut child in children {
        let status = child.wait().await?;
        anyhow::ensure!(status.success(), "an attacker failed: {status}");
    }
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    asker.await?;
    let peak = status_kib("VmHWM:");
    counter.abort();
    println!(
        "| {} | {} × {} | {} | {:.1} s | {} MiB | {} MiB | +{} MiB | {} answered, {} failed |",
        if args.use_p2p_server {
            "stream stack"
        } else {
            "RLPx"
        },
        args.peers,
        args.messages,
        refusals.load(Ordering::Relaxed),
        elapsed.as_secs_f64(),
        idle / 1024,
        peak / 1024,
        peak.saturating_sub(idle) / 1024,
        answered.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
    );
    anyhow::ensure!(
        failed.load(Ordering::Relaxed) == 0,
        "the honest peer went unanswered"
    );
    anyhow::ensure!(
        refusals.load(Ordering::Relaxed) == (args.peers * args.messages) as u64,
        "not every message was refused at the transactions-per-body limit"
    );
    honest.stop().await;
    victim.stop().await;
    Ok(())
}
