//! `devmux`: run a devmux node.
//!
//! ```text
//! devmux --dev --datadir /tmp/a --port 30303 --dev-blocks 1000
//! devmux --dev --datadir /tmp/b --port 30304 --static-peers enode://…@127.0.0.1:30303
//! devmux --config node.toml --port 30305      # flags win over the file
//! ```
//! On start it prints its address on one line of stdout: the `enode://…@IP:PORT`
//! URL (RLPx, the default) or its full multiaddr (`--use-p2p-server`). Logs go to
//! stderr (`RUST_LOG` filters them). SIGINT or SIGTERM stops it cleanly.

use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use devmux_node::{Node, NodeConfig};

/// Command-line flags. Every flag is optional here so that a flag given wins over
/// the config file and an absent one leaves the file's value.
#[derive(Parser, Debug)]
#[command(
    name = "devmux",
    version,
    about = "A devp2p / libp2p node serving the eth protocol"
)]
struct Args {
    /// Data directory (node key, chain); created on first start [default: devmux-data]
    #[arg(long, value_name = "DIR")]
    datadir: Option<PathBuf>,
    /// Run the multiplexed stream stack (libp2p-compatible) instead of RLPx
    #[arg(long)]
    use_p2p_server: bool,
    /// IP address to listen on [default: 127.0.0.1]
    #[arg(long, value_name = "IP")]
    addr: Option<IpAddr>,
    /// TCP port [default: 30303]
    #[arg(long, value_name = "N")]
    port: Option<u16>,
    /// Serve the devnet chain (WIRE.md §7)
    #[arg(long)]
    dev: bool,
    /// Build devnet blocks 1…N at start
    #[arg(long, value_name = "N")]
    dev_blocks: Option<u64>,
    /// Peers to keep connected: comma-separated enode:// URLs (RLPx) or multiaddrs
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    static_peers: Option<Vec<String>>,
    /// Most peers at once [default: 50]
    #[arg(long, value_name = "N")]
    max_peers: Option<usize>,
    /// TOML config file; its keys are the flag names (`dev-blocks = 1000`)
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

impl Args {
    /// The file's configuration (or the defaults) with the given flags on top.
    fn into_config(self) -> anyhow::Result<NodeConfig> {
        let mut config = match &self.config {
            Some(path) => NodeConfig::from_toml_file(path)?,
            None => NodeConfig::default(),
        };
        if let Some(datadir) = self.datadir {
            config.datadir = datadir;
        }
        if self.use_p2p_server {
            config.use_p2p_server = true;
        }
        if let Some(addr) = self.addr {
            config.addr = addr;
        }
        if let Some(port) = self.port {
            config.port = port;
        }
        if self.dev {
            config.dev = true;
        }
        if let Some(n) = self.dev_blocks {
            config.dev_blocks = n;
        }
        if let Some(peers) = self.static_peers {
            config.static_peers = peers.into_iter().filter(|p| !p.trim().is_empty()).collect();
        }
        if let Some(n) = self.max_peers {
            config.max_peers = n;
        }
        Ok(config)
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let config = args.into_config()?;
    // Listen for signals before anything starts: a signal that arrives while the
    // node starts up must stop it cleanly too.
    let mut signals = Signals::new()?;
    let node = Node::start(config).await.context("node failed to start")?;
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{}", node.local_addr())?;
        stdout.flush()?;
    }
    signals.recv().await;
    tracing::info!("signal received: stopping");
    node.stop().await;
    Ok(())
}

/// SIGINT and SIGTERM.
struct Signals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> anyhow::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Self {
                interrupt: signal(SignalKind::interrupt())?,
                terminate: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    async fn recv(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn main() {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("devmux: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = runtime.block_on(run(args)) {
        // One line: what failed and why, so the fix is obvious.
        eprintln!("devmux: {e:#}");
        std::process::exit(1);
    }
}
