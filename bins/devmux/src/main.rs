//! `devmux`: run a devmux node.
//!
//! ```text
//! devmux --dev --datadir /tmp/a --port 30303 --dev-blocks 1000 --http --metrics
//! devmux --dev --datadir /tmp/b --port 30304 --static-peers enode://…@127.0.0.1:30303
//! devmux --config node.toml --port 30305      # flags win over the file
//! devmux identity --datadir /tmp/a             # enode, ENR, PeerId, multiaddr of its key
//! devmux keygen --out node.key                 # a new key file (mode 0600)
//! devmux --network sepolia --authrpc --jwtsecret jwt.hex   # a consensus client names the head
//! devmux db check --dev --datadir /tmp/a      # is the store whole (after kill -9, say)?
//! ```
//! On start it prints, one per line on stdout: its address (the `enode://…@IP:PORT`
//! URL with RLPx, the default, or its full multiaddr with `--use-p2p-server`); its
//! `enr:` record unless `--no-discovery`; `rpc http://ADDR` with `--http`; and
//! `metrics http://ADDR/metrics` with `--metrics`; and `engine http://ADDR` with
//! `--authrpc`. Logs go to stderr
//! (`--log-level`, `--log-format`; `RUST_LOG` applies when `--log-level` is not
//! given). SIGINT or SIGTERM stops it cleanly.
//!
//! Every flag is also a key of the `--config` TOML file (same name, without `--`);
//! a flag given wins over the file.

// The doc comments on the CLI types are clap's --help text, where `<datadir>` is a
// placeholder, not HTML.
#![allow(rustdoc::invalid_html_tags)]

mod identity;
mod probe;

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use devmux_node::{LogFormat, Node, NodeConfig};

/// Command-line interface.
#[derive(Parser, Debug)]
#[command(
    name = "devmux",
    version,
    about = "A devp2p / libp2p node serving the eth protocol",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    node: NodeArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the enode URL, ENR, PeerId and multiaddr of a data directory's key, with
    /// the configured address and ports; starts nothing
    Identity(IdentityArgs),
    /// Write a new node key file (64 hex digits, mode 0600); never overwrites
    Keygen {
        /// The file to create
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Ask a remote node what it is, over one protocol, and print it (non-zero exit
    /// and one line when it is unreachable or speaks something else)
    #[command(subcommand)]
    Probe(probe::Probe),
    /// Work with `enr:` records
    #[command(subcommand)]
    Enr(probe::EnrCommand),
    /// Import blocks from a chain file in go-ethereum's export format (`geth export`)
    /// into the data directory's chain, validated as blocks from peers are; their
    /// receipts are fetched from peers when the node next runs. The node flags say
    /// which chain and data directory
    Import(ImportArgs),
    /// Work with a data directory's stores while no node runs on it
    #[command(subcommand)]
    Db(DbCommand),
}

#[derive(Subcommand, Debug)]
enum DbCommand {
    /// Check that the store is whole (after a crash, say): the canonical chain from
    /// genesis to the head is contiguous and every body and receipt list matches its
    /// header; count the blocks waiting for receipts, the stored bans and the known
    /// peers. One line; non-zero exit and one line naming the first inconsistency
    Check(Box<NodeArgs>),
}

/// Flags of `devmux import`.
#[derive(Args, Debug)]
struct ImportArgs {
    /// The chain file: RLP blocks one after another, uncompressed
    #[arg(value_name = "FILE")]
    file: PathBuf,
    #[command(flatten)]
    node: Box<NodeArgs>,
}

/// Node flags. Every one is optional here so that a flag given wins over the config
/// file and an absent one leaves the file's value. Boolean flags take an optional
/// `=false` to override a file's `true`.
#[derive(Args, Debug, Default)]
struct NodeArgs {
    /// TOML config file; its keys are the flag names (`dev-blocks = 1000`)
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data directory (node key, chain, peer and ENR stores); created on first start [default: devmux-data]
    #[arg(long, value_name = "DIR")]
    datadir: Option<PathBuf>,
    /// Node key file (64 hex digits, see `devmux keygen`) [default: <datadir>/nodekey, created if missing]
    #[arg(long, value_name = "FILE")]
    nodekey: Option<PathBuf>,
    /// Run the multiplexed stream stack (libp2p-compatible) instead of RLPx: the shorthand for --servers p2p
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    use_p2p_server: Option<bool>,
    /// Servers to run: rlpx, p2p, or rlpx,p2p (both: a dual node that bridges the two) [default: rlpx]
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    servers: Option<Vec<devmux_node::ServerKind>>,
    /// IP address to listen on and advertise [default: 127.0.0.1]
    #[arg(long, value_name = "IP")]
    addr: Option<IpAddr>,
    /// TCP port; 0 picks a free one (RLPx's when both servers run) [default: 30303]
    #[arg(long, value_name = "N")]
    port: Option<u16>,
    /// The stream stack's TCP port when both servers run [default: --port + 1000]
    #[arg(long, value_name = "N")]
    p2p_port: Option<u16>,
    /// UDP port for discv5 discovery [default: the TCP port]
    #[arg(long, value_name = "N")]
    discovery_port: Option<u16>,
    /// Serve the devnet chain (WIRE.md §7): the shorthand for --network dev
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    dev: Option<bool>,
    /// The chain to serve: mainnet, sepolia, hoodi or dev
    #[arg(long, value_name = "NAME")]
    network: Option<String>,
    /// A go-ethereum genesis file (JSON) to serve its chain instead of --network
    #[arg(long, value_name = "FILE")]
    genesis: Option<PathBuf>,
    /// eth versions to offer (comma list, e.g. 69,70) [default: 69,70; 66-70 on the devnet]
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    eth_versions: Option<Vec<u8>>,
    /// Build devnet blocks 1…N at start
    #[arg(long, value_name = "N")]
    dev_blocks: Option<u64>,
    /// eth network id [default: the chain's, 1337 on the devnet]
    #[arg(long, value_name = "N")]
    network_id: Option<u64>,
    /// Peers to keep connected: comma-separated enode:// URLs (RLPx) or multiaddrs
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    static_peers: Option<Vec<String>>,
    /// Peers that bypass peer limits and bans: comma-separated enode:// URLs or multiaddrs with /p2p/
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    trusted_peers: Option<Vec<String>>,
    /// Bootnodes: comma-separated enode:// URLs (discv4) and enr: records (discv5)
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    bootnodes: Option<Vec<String>>,
    /// Do not run discovery: the shorthand for --discovery none
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    no_discovery: Option<bool>,
    /// Discovery protocols to run: v4, v5, v4,v5 or none [default: v4,v5]
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    discovery: Option<Vec<String>>,
    /// UDP port for discv4 [default: the discovery port + 1000]
    #[arg(long, value_name = "N")]
    discv4_port: Option<u16>,
    /// DNS node lists to seed from: comma-separated enrtree:// URLs; "" for none [default: the network's]
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    dns_discovery: Option<Vec<String>>,
    /// DNS server for the node lists, ADDR:PORT [default: the system's]
    #[arg(long, value_name = "ADDR:PORT")]
    dns_resolver: Option<SocketAddr>,
    /// discv5's packet filter (request rate limits, bans of IPs with too many node ids) [default: true]
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    discv5_packet_filter: Option<bool>,
    /// Node ids one IP may use before discv5's packet filter bans it [default: 10]
    #[arg(long, value_name = "N")]
    discv5_max_nodes_per_ip: Option<usize>,
    /// discv5's table IP limit: 2 nodes of one /24 per bucket, 10 in the table [default: true]
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    discv5_ip_limit: Option<bool>,
    /// Seconds between discovery's random lookups [default: 30]
    #[arg(long, value_name = "SECS")]
    discovery_lookup_secs: Option<u64>,
    /// Most peers at once [default: 50]
    #[arg(long, value_name = "N")]
    max_peers: Option<usize>,
    /// Most inbound peers [default: two thirds of --max-peers]
    #[arg(long, value_name = "N")]
    max_inbound: Option<usize>,
    /// Outbound peers to keep from discovery [default: a third of --max-peers]
    #[arg(long, value_name = "N")]
    outbound_target: Option<usize>,
    /// Established peers from one IP address (loopback too) [default: 4]
    #[arg(long, value_name = "N")]
    max_peers_per_ip: Option<usize>,
    /// Established peers from one /24 (IPv4) or /64 (IPv6) [default: 16]
    #[arg(long, value_name = "N")]
    max_peers_per_subnet: Option<usize>,
    /// Inbound handshakes under way at once; a full budget closes the one silent longest [default: 64]
    #[arg(long, value_name = "N")]
    max_pending_handshakes: Option<usize>,
    /// Inbound handshakes under way at once from one IP address [default: 8]
    #[arg(long, value_name = "N")]
    max_pending_per_ip: Option<usize>,
    /// Inbound handshakes under way at once from one /24 or /64 [default: 32]
    #[arg(long, value_name = "N")]
    max_pending_per_subnet: Option<usize>,
    /// Seconds an accepted socket may stay silent before it is closed (no penalty) [default: 3]
    #[arg(long, value_name = "SECS")]
    first_byte_timeout_secs: Option<u64>,
    /// Faulting keys one address may show within 60 s; one more bans the address [default: 10]
    #[arg(long, value_name = "N")]
    address_fault_limit: Option<usize>,
    /// Keepalive pings a peer may miss in a row before it is dropped [default: 3]
    #[arg(long, value_name = "N")]
    max_missed_pings: Option<u32>,
    /// eth requests each peer may make per second, bursts of twice that; more are dropped and the peer penalised [default: 100]
    #[arg(long, value_name = "N")]
    eth_request_rate: Option<u32>,
    /// Build a devnet block from the pool every SECS seconds and relay it [default: off]
    #[arg(long, value_name = "SECS")]
    produce_blocks: Option<u64>,
    /// Signature recoveries per second one peer's transactions may cost; more wait, unpenalised [default: 1000]
    #[arg(long, value_name = "N")]
    eth_recovery_rate: Option<u32>,
    /// MiB of large eth messages all peers together may have in decoding; more wait, unpenalised [default: 32]
    #[arg(long, value_name = "MIB")]
    large_message_budget_mib: Option<u32>,
    /// Addresses that may seal devnet blocks (comma list) [default: dev key 0, whose key is public]
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    dev_signers: Option<Vec<String>>,
    /// Key file a producer seals with (64 hex digits, not the node key) [default: dev key 0]
    #[arg(long, value_name = "FILE")]
    signer_key: Option<PathBuf>,
    /// Serve the admin JSON-RPC over HTTP [default: off; --http alone: 127.0.0.1:8545]
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:8545")]
    http: Option<SocketAddr>,
    /// Allow --http on a non-loopback address, serving admin_* to the network [default: false]
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    http_allow_remote_admin: Option<bool>,
    /// Serve Prometheus metrics at /metrics [default: off; --metrics alone: 127.0.0.1:9001]
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:9001")]
    metrics: Option<SocketAddr>,
    /// Serve the Engine API (JWT-authenticated, for a consensus client naming the head; proof-of-stake chains only). The JWT guards it, so a non-loopback address needs no other flag: keep the secret private [default: off; --authrpc alone: 127.0.0.1:8551]
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:8551")]
    authrpc: Option<SocketAddr>,
    /// The Engine API's JWT secret: a file with 64 hex digits (0x optional) shared with the consensus client; required with --authrpc
    #[arg(long, value_name = "FILE")]
    jwtsecret: Option<PathBuf>,
    /// A block the node must keep, NUMBER:HASH: a chain with another block at NUMBER is refused, peers on it are not synced from
    #[arg(long, value_name = "NUMBER:HASH")]
    checkpoint: Option<devmux_node::Checkpoint>,
    /// Log level (error, warn, info, debug, trace, off) or directives (info,devmux_eth=debug) [default: info]
    #[arg(long, value_name = "FILTER")]
    log_level: Option<String>,
    /// Log format: human or json [default: human]
    #[arg(long, value_name = "FORMAT")]
    log_format: Option<LogFormat>,
}

/// Flags of `devmux identity`: what decides the node's names and addresses.
#[derive(Args, Debug)]
struct IdentityArgs {
    /// TOML config file (as for running the node)
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data directory whose key to show [default: devmux-data]
    #[arg(long, value_name = "DIR")]
    datadir: Option<PathBuf>,
    /// Key file to show instead of <datadir>/nodekey
    #[arg(long, value_name = "FILE")]
    nodekey: Option<PathBuf>,
    /// Show the stream stack's ENR entry (mux) instead of RLPx's (tcp)
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    use_p2p_server: Option<bool>,
    /// Servers whose ENR entries to show: rlpx, p2p, or rlpx,p2p [default: rlpx]
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    servers: Option<Vec<devmux_node::ServerKind>>,
    /// IP address [default: 127.0.0.1]
    #[arg(long, value_name = "IP")]
    addr: Option<IpAddr>,
    /// TCP port [default: 30303]
    #[arg(long, value_name = "N")]
    port: Option<u16>,
    /// The stream stack's TCP port when both servers run [default: --port + 1000]
    #[arg(long, value_name = "N")]
    p2p_port: Option<u16>,
    /// UDP discovery port [default: the TCP port]
    #[arg(long, value_name = "N")]
    discovery_port: Option<u16>,
    /// The devnet (the shorthand for --network dev)
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    dev: Option<bool>,
    /// The chain: mainnet, sepolia, hoodi or dev
    #[arg(long, value_name = "NAME")]
    network: Option<String>,
    /// A go-ethereum genesis file (JSON) instead of --network
    #[arg(long, value_name = "FILE")]
    genesis: Option<PathBuf>,
}

/// Overwrites `target` with the flag's value, if given.
fn set<T>(target: &mut T, flag: Option<T>) {
    if let Some(value) = flag {
        *target = value;
    }
}

/// `--discovery v4,v5` or `--discovery none`.
fn discovery_protocols(items: &[String]) -> anyhow::Result<Vec<devmux_node::DiscoveryProtocol>> {
    let items: Vec<&str> = items
        .iter()
        .map(|i| i.trim())
        .filter(|i| !i.is_empty())
        .collect();
    if items == ["none"] {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for item in items {
        let protocol = item
            .parse()
            .map_err(|e: String| anyhow::anyhow!("--discovery: {e}"))?;
        if !out.contains(&protocol) {
            out.push(protocol);
        }
    }
    Ok(out)
}

/// A comma-separated list flag without empty items (`--bootnodes ""` clears the file's).
fn list(flag: Option<Vec<String>>) -> Option<Vec<String>> {
    flag.map(|items| {
        items
            .into_iter()
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .collect()
    })
}

impl NodeArgs {
    /// The file's configuration (or the defaults) with the given flags on top.
    fn into_config(self) -> anyhow::Result<NodeConfig> {
        let mut config = match &self.config {
            Some(path) => NodeConfig::from_toml_file(path)?,
            None => NodeConfig::default(),
        };
        set(&mut config.datadir, self.datadir);
        set(&mut config.nodekey, self.nodekey.map(Some));
        set(&mut config.use_p2p_server, self.use_p2p_server);
        set(&mut config.servers, self.servers);
        set(&mut config.addr, self.addr);
        set(&mut config.port, self.port);
        set(&mut config.p2p_port, self.p2p_port.map(Some));
        set(&mut config.discovery_port, self.discovery_port.map(Some));
        set(&mut config.dev, self.dev);
        set(&mut config.network, self.network.map(Some));
        set(&mut config.genesis, self.genesis.map(Some));
        set(&mut config.eth_versions, self.eth_versions);
        set(&mut config.dev_blocks, self.dev_blocks);
        set(&mut config.network_id, self.network_id.map(Some));
        set(&mut config.static_peers, list(self.static_peers));
        set(&mut config.trusted_peers, list(self.trusted_peers));
        set(&mut config.bootnodes, list(self.bootnodes));
        set(&mut config.no_discovery, self.no_discovery);
        if let Some(protocols) = self.discovery {
            config.discovery = discovery_protocols(&protocols)?;
        }
        set(&mut config.discv4_port, self.discv4_port.map(Some));
        set(
            &mut config.dns_discovery,
            list(self.dns_discovery).map(Some),
        );
        set(&mut config.dns_resolver, self.dns_resolver.map(Some));
        set(&mut config.discv5_packet_filter, self.discv5_packet_filter);
        set(
            &mut config.discv5_max_nodes_per_ip,
            self.discv5_max_nodes_per_ip,
        );
        set(&mut config.discv5_ip_limit, self.discv5_ip_limit);
        set(
            &mut config.discovery_lookup_secs,
            self.discovery_lookup_secs,
        );
        set(&mut config.max_peers, self.max_peers);
        set(&mut config.max_inbound, self.max_inbound.map(Some));
        set(&mut config.outbound_target, self.outbound_target.map(Some));
        set(&mut config.max_peers_per_ip, self.max_peers_per_ip);
        set(&mut config.max_peers_per_subnet, self.max_peers_per_subnet);
        set(
            &mut config.max_pending_handshakes,
            self.max_pending_handshakes,
        );
        set(&mut config.max_pending_per_ip, self.max_pending_per_ip);
        set(
            &mut config.max_pending_per_subnet,
            self.max_pending_per_subnet,
        );
        set(
            &mut config.first_byte_timeout_secs,
            self.first_byte_timeout_secs,
        );
        set(&mut config.address_fault_limit, self.address_fault_limit);
        set(&mut config.max_missed_pings, self.max_missed_pings);
        set(&mut config.eth_request_rate, self.eth_request_rate);
        set(&mut config.produce_blocks, self.produce_blocks.map(Some));
        set(&mut config.dev_signers, list(self.dev_signers));
        set(&mut config.eth_recovery_rate, self.eth_recovery_rate);
        set(
            &mut config.large_message_budget_mib,
            self.large_message_budget_mib,
        );
        set(&mut config.signer_key, self.signer_key.map(Some));
        set(&mut config.http, self.http.map(Some));
        set(
            &mut config.http_allow_remote_admin,
            self.http_allow_remote_admin,
        );
        set(&mut config.metrics, self.metrics.map(Some));
        set(&mut config.authrpc, self.authrpc.map(Some));
        set(&mut config.jwtsecret, self.jwtsecret.map(Some));
        set(&mut config.checkpoint, self.checkpoint.map(Some));
        set(&mut config.log_level, self.log_level);
        set(&mut config.log_format, self.log_format);
        Ok(config)
    }
}

impl IdentityArgs {
    fn into_config(self) -> anyhow::Result<NodeConfig> {
        NodeArgs {
            config: self.config,
            datadir: self.datadir,
            nodekey: self.nodekey,
            use_p2p_server: self.use_p2p_server,
            servers: self.servers,
            addr: self.addr,
            port: self.port,
            p2p_port: self.p2p_port,
            discovery_port: self.discovery_port,
            dev: self.dev,
            network: self.network,
            genesis: self.genesis,
            ..NodeArgs::default()
        }
        .into_config()
    }
}

/// The log filter: `--log-level` if given, else `RUST_LOG` if set, else the file's
/// `log-level` (default `info`). A bare word must be a level: anything else would
/// silently become a target name.
fn log_filter(flag_given: bool, configured: &str) -> anyhow::Result<tracing_subscriber::EnvFilter> {
    let env = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty());
    let (text, origin) = match env {
        Some(env) if !flag_given => (env, "RUST_LOG"),
        _ => (configured.trim().to_string(), "log-level"),
    };
    const LEVELS: [&str; 6] = ["error", "warn", "info", "debug", "trace", "off"];
    if !text.contains(['=', ',']) && !LEVELS.contains(&text.to_ascii_lowercase().as_str()) {
        anyhow::bail!(
            "{origin} {text:?} is not a log level: use error, warn, info, debug, trace or off, or directives like info,devmux_eth=debug"
        );
    }
    tracing_subscriber::EnvFilter::try_new(&text)
        .with_context(|| format!("{origin} {text:?}: not a valid log filter"))
}

fn init_logging(filter: tracing_subscriber::EnvFilter, format: LogFormat) {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Prints lines to stdout for whoever started us; if they stopped reading, the node
/// still runs.
fn print_lines(lines: &[String]) {
    let mut stdout = std::io::stdout().lock();
    for line in lines {
        if let Err(e) = writeln!(stdout, "{line}").and_then(|()| stdout.flush()) {
            tracing::warn!(error = %e, "could not print to stdout");
            break;
        }
    }
}

async fn run(config: NodeConfig) -> anyhow::Result<()> {
    // Listen for signals before anything starts: a signal that arrives while the
    // node starts up must stop it cleanly too.
    let mut signals = Signals::new()?;
    let node = Node::start(config).await.context("node failed to start")?;
    let mut lines = node.local_addrs();
    lines.extend(node.enr());
    lines.extend(node.rpc_addr().map(|a| format!("rpc http://{a}")));
    lines.extend(
        node.metrics_addr()
            .map(|a| format!("metrics http://{a}/metrics")),
    );
    lines.extend(node.engine_addr().map(|a| format!("engine http://{a}")));
    print_lines(&lines);
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

/// Parses the command line; a usage error becomes one line (clap's first), exit 2.
fn parse_cli() -> Cli {
    match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                e.exit();
            }
            // clap's first paragraph, on one line.
            let text = e.to_string();
            let first: Vec<&str> = text
                .lines()
                .map(str::trim)
                .skip_while(|l| l.is_empty())
                .take_while(|l| !l.is_empty())
                .collect();
            let line = first.join(" ");
            let line = line.strip_prefix("error: ").unwrap_or(&line);
            eprintln!("devmux: {line} (see devmux --help)");
            std::process::exit(2);
        }
    }
}

/// `devmux import FILE`: one progress line per committed batch, then a summary.
fn import(args: ImportArgs) -> anyhow::Result<()> {
    let config = args.node.into_config()?;
    let started = std::time::Instant::now();
    let summary = devmux_node::import_chain_file(&config, &args.file, |batch| {
        println!(
            "imported {} blocks ({} known), head {} {}",
            batch.inserted, batch.known, batch.head.number, batch.head.hash
        );
    })
    .with_context(|| format!("import of {}", args.file.display()))?;
    println!(
        "{}: {} blocks read, {} imported, {} known, head {} {} in {:.1} s; receipts come from peers",
        args.file.display(),
        summary.read,
        summary.imported,
        summary.known,
        summary.head.number,
        summary.head.hash,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// What `main` does, up to the point where errors are printed.
fn main_inner(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Some(Command::Keygen { out }) => identity::keygen(&out),
        Some(Command::Identity(args)) => identity::print(&args.into_config()?),
        Some(Command::Probe(what)) => probe::run_probe(what),
        Some(Command::Enr(what)) => probe::run_enr(what),
        Some(Command::Import(args)) => import(args),
        Some(Command::Db(DbCommand::Check(args))) => {
            let report = devmux_node::check_datadir(&args.into_config()?)?;
            println!("store ok: {report}");
            Ok(())
        }
        None => {
            let log_flag_given = cli.node.log_level.is_some();
            let config = cli.node.into_config()?;
            // Everything is checked before anything starts.
            config.validate()?;
            let filter = log_filter(log_flag_given, &config.log_level)?;
            init_logging(filter, config.log_format);
            let runtime =
                tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
            runtime.block_on(run(config))
        }
    }
}

fn main() {
    let cli = parse_cli();
    if let Err(e) = main_inner(cli) {
        // One line: what failed and why, so the fix is obvious.
        eprintln!("devmux: {}", devmux_node::error_line(e.as_ref()));
        std::process::exit(1);
    }
}
