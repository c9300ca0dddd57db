//! A node that serves `/demo/echo/1.0.0`: every message is sent back unchanged.
//!
//! ```text
//! cargo run -p devmux-network --example echo -- --port 4001          # stream stack
//! cargo run -p devmux-network --example echo -- --port 4001 --rlpx   # RLPx server
//! ```
//! It prints its address (a full multiaddr, or an `enode://` URL with `--rlpx`) on
//! one line of stdout and serves until Ctrl-C.

use clap::Parser;
use devmux_network::{
    MessageStream, Network, NetworkConfig, NodeKey, PeerCtx, Registrar, SessionProtocol,
};

#[derive(Parser)]
#[command(about = "Serve /demo/echo/1.0.0 until Ctrl-C")]
struct Args {
    /// TCP port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Run the legacy RLPx server instead of the stream stack (echo is then
    /// served as the session capability `echo/1`).
    #[arg(long)]
    rlpx: bool,
}

/// The handler: one async fn, the same for both servers.
async fn echo(_peer: PeerCtx, mut stream: MessageStream) -> Result<(), devmux_network::Error> {
    while let Some(msg) = stream.next().await {
        stream.send(msg?).await?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();

    let mut registrar = Registrar::new();
    if args.rlpx {
        // RLPx has no per-request streams: echo runs as a session capability.
        registrar.session([SessionProtocol::new("/echo/1/1.0.0", 1)?], echo)?;
    } else {
        registrar.request("/demo/echo/1.0.0", echo)?;
    }
    let config = NetworkConfig::default()
        .with_p2p_server(!args.rlpx)
        .with_listen_addr(([127, 0, 0, 1], args.port).into());
    let network = Network::start(config, NodeKey::generate(), registrar).await?;
    println!("{}", network.local_addr());

    tokio::signal::ctrl_c().await?;
    network.shutdown().await;
    Ok(())
}
