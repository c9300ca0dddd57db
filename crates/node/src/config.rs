//! `NodeConfig`: everything a node is started with, from flags or a TOML file.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use devmux_chain::signing::SecretKey;
use devmux_chain::{devnet, BlockRef, ChainSpec};
use devmux_eth::alloy_primitives::{Address, B256};
use devmux_eth::EthVersion;
use devmux_network::{NetworkConfig, ServerKind};
use serde::{Deserialize, Serialize};

use crate::Error;

/// Default TCP port (WIRE.md §5).
pub const DEFAULT_PORT: u16 = 30303;

/// Where the admin JSON-RPC listens when `--http` is given without an address
/// (WIRE.md §5).
pub const DEFAULT_HTTP_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8545);

/// Where the Engine API listens when `--authrpc` is given without an address (the
/// Engine API's default port).
pub const DEFAULT_AUTHRPC_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8551);

/// Where the Prometheus endpoint listens when `--metrics` is given without an address.
pub const DEFAULT_METRICS_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9001);

/// A block the node must keep (`--checkpoint NUMBER:HASH`): a chain whose block `NUMBER`
/// is not `HASH` is another chain. Written `NUMBER:HASH`, the hash `0x` and 64 hex
/// digits (`1000:0xab…`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The block's number.
    pub number: u64,
    /// Its hash.
    pub hash: B256,
}

impl From<Checkpoint> for BlockRef {
    fn from(c: Checkpoint) -> Self {
        BlockRef {
            number: c.number,
            hash: c.hash,
        }
    }
}

impl std::fmt::Display for Checkpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.number, self.hash)
    }
}

impl std::str::FromStr for Checkpoint {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || format!("checkpoint {text:?} is not NUMBER:HASH (1000:0x and 64 hex digits)");
        let (number, hash) = text.trim().split_once(':').ok_or_else(bad)?;
        let number = number.trim().parse().map_err(|_| bad())?;
        let digits = hash.trim().strip_prefix("0x").ok_or_else(bad)?;
        let mut bytes = [0u8; 32];
        if digits.len() != 64 || hex::decode_to_slice(digits, &mut bytes).is_err() {
            return Err(bad());
        }
        Ok(Self {
            number,
            hash: B256::from(bytes),
        })
    }
}

impl Serialize for Checkpoint {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Checkpoint {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// How log lines are written (to stderr).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One readable line per event.
    #[default]
    Human,
    /// One JSON object per line (tracing-subscriber's JSON format).
    Json,
}

impl std::fmt::Display for LogFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LogFormat::Human => "human",
            LogFormat::Json => "json",
        })
    }
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "human" => Ok(LogFormat::Human),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("{other:?} is not a log format: use human or json")),
        }
    }
}

/// A node's configuration. TOML keys are the flag names (`dev-blocks = 1000`).
/// A discovery protocol (`--discovery v4,v5`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DiscoveryProtocol {
    /// devp2p Node Discovery v4 (go-ethereum's, Nethermind's and ethereumjs's default).
    V4,
    /// Node Discovery v5.
    V5,
}

impl std::str::FromStr for DiscoveryProtocol {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "v4" => Ok(Self::V4),
            "v5" => Ok(Self::V5),
            other => Err(format!(
                "unknown discovery protocol {other:?}: v4, v5, or none"
            )),
        }
    }
}

impl std::fmt::Display for DiscoveryProtocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::V4 => "v4",
            Self::V5 => "v5",
        })
    }
}

/// Unknown keys are an error, so a typo never silently falls back to a default.
/// Relative paths in a file (`datadir`, `nodekey`, `genesis`) are relative to the file's
/// directory, so a config works from any working directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct NodeConfig {
    /// Data directory: holds the node key (`nodekey`) and the stores. Created on
    /// first start.
    pub datadir: PathBuf,
    /// The node key file (64 hex digits, as `devmux keygen` writes). Unset: the key
    /// is `<datadir>/nodekey`, created on first start. Set: the file must exist.
    pub nodekey: Option<PathBuf>,
    /// Run the multiplexed stream stack instead of the RLPx server: the shorthand
    /// for `servers = ["p2p"]`.
    pub use_p2p_server: bool,
    /// The servers to run: `["rlpx"]` (the default), `["p2p"]`, or both, a dual node
    /// that bridges a network migrating from RLPx to the stream stack. Empty: the one
    /// `use-p2p-server` picks.
    pub servers: Vec<ServerKind>,
    /// IP to listen on and to advertise.
    pub addr: IpAddr,
    /// TCP port (0 picks a free one): the one server's, or RLPx's when both run.
    pub port: u16,
    /// The stream stack's TCP port when both servers run; defaults to `port` + 1000
    /// (WIRE.md §5).
    pub p2p_port: Option<u16>,
    /// Serve the devnet chain (WIRE.md §7): the shorthand for `network = "dev"`.
    pub dev: bool,
    /// The chain to serve: `mainnet`, `sepolia`, `hoodi` or `dev` (the devnet of WIRE.md
    /// §7). Exactly one of `network`, `dev` and `genesis` selects it.
    pub network: Option<String>,
    /// A go-ethereum genesis file (JSON: `config` with the fork schedule, `alloc`, the
    /// header fields) for a chain of one's own, instead of `network`.
    pub genesis: Option<PathBuf>,
    /// The eth versions to offer (`[69, 70]`). Empty: the network's default (eth/69 and
    /// eth/70 on public networks and genesis files, eth/66 to eth/70 on the devnet).
    pub eth_versions: Vec<u8>,
    /// Build blocks 1…N of the devnet chain at start (if not there yet).
    pub dev_blocks: u64,
    /// Peers to dial and keep dialling: `enode://` URLs (RLPx) or multiaddrs
    /// (stream stack).
    pub static_peers: Vec<String>,
    /// Most peers at once.
    pub max_peers: usize,
    /// Peers that bypass peer limits and bans (`enode://` URLs or multiaddrs with
    /// `/p2p/`). Unlike static peers they are not dialled.
    pub trusted_peers: Vec<String>,
    /// The eth network id; defaults to the chain's (1337 on the devnet).
    pub network_id: Option<u64>,
    /// UDP port for discv5; defaults to `port`.
    pub discovery_port: Option<u16>,
    /// Bootnodes: `enode://` URLs (discv4, with `?discport=` when its UDP port is not
    /// the TCP one) and `enr:` records (discv5). Empty: the network's own.
    pub bootnodes: Vec<String>,
    /// Do not run discovery (only static peers and inbound connections): the same as
    /// `discovery = []`.
    pub no_discovery: bool,
    /// The discovery protocols to run: `["v4", "v5"]` (the default), one of them, or
    /// none.
    pub discovery: Vec<DiscoveryProtocol>,
    /// UDP port for discv4; defaults to the discovery port + 1000 (0 with port 0).
    pub discv4_port: Option<u16>,
    /// DNS node lists (EIP-1459, `enrtree://KEY@DOMAIN`) to seed discovery from. Unset:
    /// the network's own lists (none on the devnet and for genesis files); empty: none.
    pub dns_discovery: Option<Vec<String>>,
    /// The DNS server the lists are resolved with (`ADDR:PORT`). Unset: the system's.
    pub dns_resolver: Option<SocketAddr>,
    /// discv5's packet filter: request rate limits per IP and node, and a ban of IPs
    /// that use more than `discv5-max-nodes-per-ip` node ids.
    pub discv5_packet_filter: bool,
    /// Node ids one IP may use before discv5's packet filter bans it.
    pub discv5_max_nodes_per_ip: usize,
    /// discv5's table IP limit: at most 2 nodes of one /24 per bucket and 10 in the
    /// table.
    pub discv5_ip_limit: bool,
    /// Seconds between discovery's random lookups.
    pub discovery_lookup_secs: u64,
    /// eth requests each peer may make per second (bursts of twice that); more are
    /// dropped and the peer penalised.
    pub eth_request_rate: u32,
    /// Build a devnet block from the pool every this many seconds (WIRE.md §7).
    pub produce_blocks: Option<u64>,
    /// Signature recoveries the transactions one peer sends may cost per second (bursts
    /// of as many); more wait, unpenalised.
    pub eth_recovery_rate: u32,
    /// MiB of large eth messages (256 KiB and up) all peers together may have in
    /// decoding at once; a peer over it waits, unpenalised.
    pub large_message_budget_mib: u32,
    /// Who may seal devnet blocks (WIRE.md §7.1): `0x`-prefixed addresses. Empty: the
    /// default, dev key 0 alone, whose key is public (local development only; a network
    /// strangers can reach configures signers whose keys are secret).
    pub dev_signers: Vec<String>,
    /// The key a producer seals with (64 hex digits, like `devmux keygen` writes; never
    /// the node key). Unset: dev key 0. Its address must be one of `dev-signers`.
    pub signer_key: Option<PathBuf>,
    /// Most inbound peers; defaults to two thirds of `max-peers`.
    pub max_inbound: Option<usize>,
    /// Outbound peers the dialer keeps from discovery; defaults to a third of
    /// `max-peers` (at least one).
    pub outbound_target: Option<usize>,
    /// Established peers from one IP address (loopback addresses too: each local node needs its own).
    pub max_peers_per_ip: usize,
    /// Established peers from one /24 (IPv4) or /64 (IPv6).
    pub max_peers_per_subnet: usize,
    /// Inbound handshakes under way at once, both servers; when full, the one that got least far and has been silent longest is closed for the newcomer.
    pub max_pending_handshakes: usize,
    /// Inbound handshakes under way at once from one IP address.
    pub max_pending_per_ip: usize,
    /// Inbound handshakes under way at once from one /24 (IPv4) or /64 (IPv6).
    pub max_pending_per_subnet: usize,
    /// Seconds an accepted socket may send nothing before it is closed (no penalty).
    pub first_byte_timeout_secs: u64,
    /// Distinct keys from one address that may fault within 60 s; one more bans the address (checked at accept, stored with the peer bans).
    pub address_fault_limit: usize,
    /// Keepalive pings a peer may miss in a row before it is disconnected with PingTimeout.
    pub max_missed_pings: u32,
    /// Serve the admin JSON-RPC over HTTP here (port 0 picks a free one). Unset: off.
    pub http: Option<SocketAddr>,
    /// Allow `http` on a non-loopback address, which serves the `admin_*` methods (who
    /// the node talks to) to whoever reaches it. Without it such an address is refused at
    /// start.
    pub http_allow_remote_admin: bool,
    /// Serve Prometheus metrics at `/metrics` here (port 0 picks a free one).
    /// Unset: off.
    pub metrics: Option<SocketAddr>,
    /// Serve the Engine API here (port 0 picks a free one): a consensus client names the
    /// head of a proof-of-stake chain through it (`engine_forkchoiceUpdated`, see
    /// [`crate::engine`]). Every request must carry a JWT made with `jwtsecret`, which is
    /// what guards it: a non-loopback address needs no other setting. Unset: off.
    /// Refused on the devnet, whose signers extend it.
    pub authrpc: Option<SocketAddr>,
    /// The Engine API's JWT secret: a file holding 32 bytes as 64 hex digits (`0x`
    /// prefix optional), shared with the consensus client. Required with `authrpc`.
    pub jwtsecret: Option<PathBuf>,
    /// A block the node must keep (`NUMBER:HASH`): a chain whose block NUMBER is another
    /// one is refused, a peer serving one is not synced from (no other penalty), and the
    /// node does not start if its store has another block at NUMBER. Not stored: give it
    /// at every start.
    pub checkpoint: Option<Checkpoint>,
    /// Log filter: a level (`info`, `debug`, …) or tracing-subscriber directives
    /// (`info,devmux_eth=debug`). Read by the binaries, which own the logger.
    pub log_level: String,
    /// Log line format: `human` or `json`. Read by the binaries.
    pub log_format: LogFormat,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            datadir: PathBuf::from("devmux-data"),
            use_p2p_server: false,
            servers: Vec::new(),
            addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: DEFAULT_PORT,
            p2p_port: None,
            dev: false,
            network: None,
            genesis: None,
            eth_versions: Vec::new(),
            dev_blocks: 0,
            static_peers: Vec::new(),
            max_peers: 50,
            trusted_peers: Vec::new(),
            network_id: None,
            discovery_port: None,
            bootnodes: Vec::new(),
            no_discovery: false,
            discovery: vec![DiscoveryProtocol::V4, DiscoveryProtocol::V5],
            discv4_port: None,
            dns_discovery: None,
            dns_resolver: None,
            discv5_packet_filter: true,
            discv5_max_nodes_per_ip: 10,
            discv5_ip_limit: true,
            discovery_lookup_secs: 30,
            eth_request_rate: 100,
            produce_blocks: None,
            large_message_budget_mib: 32,
            eth_recovery_rate: 1000,
            dev_signers: Vec::new(),
            signer_key: None,
            nodekey: None,
            max_inbound: None,
            outbound_target: None,
            max_peers_per_ip: 4,
            max_peers_per_subnet: 16,
            max_pending_handshakes: 64,
            max_pending_per_ip: 8,
            max_pending_per_subnet: 32,
            first_byte_timeout_secs: 3,
            address_fault_limit: 10,
            max_missed_pings: 3,
            http: None,
            http_allow_remote_admin: false,
            metrics: None,
            authrpc: None,
            jwtsecret: None,
            checkpoint: None,
            log_level: "info".to_string(),
            log_format: LogFormat::Human,
        }
    }
}

impl NodeConfig {
    /// Parses a TOML document.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Self, Error> {
        toml::from_str(text).map_err(|e| {
            let line = e.span().map(|span| {
                let before = &text.as_bytes()[..span.start.min(text.len())];
                before.iter().filter(|b| **b == b'\n').count() + 1
            });
            Error::Config {
                origin: match line {
                    Some(line) => format!("{origin} line {line}"),
                    None => origin.to_string(),
                },
                problem: e.message().to_string(),
            }
        })
    }

    /// Reads and parses a TOML file. Relative `datadir`, `nodekey`, `signer-key`,
    /// `genesis` and `jwtsecret` paths in it are taken relative to the file's directory.
    pub fn from_toml_file(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Config {
            origin: path.display().to_string(),
            problem: format!("cannot read it: {e}"),
        })?;
        let mut config = Self::from_toml_str(&text, &path.display().to_string())?;
        let base = path.parent().unwrap_or(Path::new(""));
        // Only paths the file sets: the default datadir stays relative to the
        // working directory.
        let set: toml::Table = toml::from_str(&text).unwrap_or_default();
        if set.contains_key("datadir") && config.datadir.is_relative() {
            config.datadir = base.join(&config.datadir);
        }
        for key in [
            &mut config.nodekey,
            &mut config.signer_key,
            &mut config.genesis,
            &mut config.jwtsecret,
        ] {
            if let Some(key) = key.as_mut().filter(|k| k.is_relative()) {
                *key = base.join(&*key);
            }
        }
        Ok(config)
    }

    /// The node key file: `nodekey` if set, else `<datadir>/nodekey`.
    pub fn nodekey_path(&self) -> PathBuf {
        self.nodekey
            .clone()
            .unwrap_or_else(|| self.datadir.join("nodekey"))
    }

    /// The configuration as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }

    /// The UDP address discovery listens on.
    pub fn discovery_addr(&self) -> SocketAddr {
        SocketAddr::new(self.addr, self.discovery_port.unwrap_or(self.port))
    }

    /// Whether `protocol` runs (not with `no-discovery`).
    pub fn runs_discovery(&self, protocol: DiscoveryProtocol) -> bool {
        !self.no_discovery && self.discovery.contains(&protocol)
    }

    /// Whether any discovery runs.
    pub fn discovery_enabled(&self) -> bool {
        !self.no_discovery && !self.discovery.is_empty()
    }

    /// The UDP address discv4 listens on: `discv4-port`, or the discovery port + 1000
    /// (WIRE.md §5; 0 stays 0).
    pub fn discv4_addr(&self) -> SocketAddr {
        let base = self.discovery_addr().port();
        let port = self.discv4_port.unwrap_or(match base {
            0 => 0,
            p => p.saturating_add(1000),
        });
        SocketAddr::new(self.addr, port)
    }

    /// The bootnodes to start discovery from: `bootnodes`, else the network's own (none
    /// on the devnet and for genesis files), each for a protocol that runs.
    pub fn bootnodes_for(&self, spec: &devmux_chain::ChainSpec) -> Vec<String> {
        if !self.bootnodes.is_empty() {
            return self.bootnodes.clone();
        }
        spec.bootnodes
            .iter()
            .filter(|b| {
                let protocol = if b.starts_with("enode://") {
                    DiscoveryProtocol::V4
                } else {
                    DiscoveryProtocol::V5
                };
                self.runs_discovery(protocol)
            })
            .cloned()
            .collect()
    }

    /// The DNS node lists to seed from: `dns-discovery`, else the network's own.
    pub fn dns_lists(&self, spec: &devmux_chain::ChainSpec) -> Vec<String> {
        match &self.dns_discovery {
            Some(urls) => urls.clone(),
            None => spec.dns_lists.clone(),
        }
    }

    /// The chain's name from `network` or `dev`, or `None` for a genesis file; an error
    /// when none or more than one selects it.
    pub fn chain_name(&self) -> Result<Option<&str>, Error> {
        let bad = |problem: String| Error::Config {
            origin: "configuration".into(),
            problem,
        };
        let network = match (self.network.as_deref(), self.dev) {
            (Some(name), true) if name != devmux_chain::networks::DEV => {
                return Err(bad(format!(
                    "--dev and --network {name} conflict: --dev is --network dev; drop one"
                )))
            }
            (Some(name), _) => Some(name),
            (None, true) => Some(devmux_chain::networks::DEV),
            (None, false) => None,
        };
        match (network, &self.genesis) {
            (Some(_), Some(_)) => Err(bad(
                "--genesis and --network (or --dev) both select the chain: give one".into(),
            )),
            (None, None) => Err(bad(format!(
                "no chain selected: pass --network {} (--dev for the devnet) or --genesis FILE",
                devmux_chain::networks::NAMES.join("|")
            ))),
            (Some(name), None) => {
                if devmux_chain::networks::NAMES.contains(&name) {
                    Ok(Some(name))
                } else {
                    Err(bad(format!(
                        "network {name:?} is not one devmux knows: {}, or --genesis FILE",
                        devmux_chain::networks::NAMES.join(", ")
                    )))
                }
            }
            (None, Some(_)) => Ok(None),
        }
    }

    /// The chain to serve: the named network's spec or the genesis file's, with the
    /// devnet's signers from `dev-signers`.
    pub fn chain_spec(&self) -> Result<ChainSpec, Error> {
        let mut spec = match (self.chain_name()?, &self.genesis) {
            (Some(name), _) => {
                devmux_chain::networks::by_name(name).ok_or_else(|| Error::Config {
                    origin: "configuration".into(),
                    problem: format!("network {name:?} has no built-in spec"),
                })?
            }
            (None, Some(path)) => devmux_chain::genesis::load(path).map_err(|e| Error::Config {
                origin: format!("genesis {}", path.display()),
                problem: e.to_string(),
            })?,
            // chain_name has refused this already.
            (None, None) => {
                return Err(Error::Config {
                    origin: "configuration".into(),
                    problem: "no chain selected".into(),
                })
            }
        };
        if let devmux_chain::Consensus::Sealed(rules) = &mut spec.consensus {
            rules.signers = self.signers()?;
        }
        Ok(spec)
    }

    /// The eth versions the node offers: `eth-versions`, or the chain's default (eth/69
    /// and eth/70 on public networks and genesis files, which go-ethereum v1.17 speaks;
    /// every version from eth/66 on the devnet).
    pub fn eth_versions(&self) -> Result<Vec<EthVersion>, Error> {
        if self.eth_versions.is_empty() {
            return Ok(if self.chain_name()? == Some(devmux_chain::networks::DEV) {
                EthVersion::ALL.to_vec()
            } else {
                vec![EthVersion::Eth70, EthVersion::Eth69]
            });
        }
        self.eth_versions
            .iter()
            .map(|&v| {
                EthVersion::try_from(v).map_err(|_| Error::Config {
                    origin: "eth-versions".into(),
                    problem: format!(
                        "eth/{v} is not a version devmux speaks: {}",
                        EthVersion::ALL
                            .iter()
                            .map(|v| v.as_u8().to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                })
            })
            .collect()
    }

    /// The devnet's signers (WIRE.md §7.1): `dev-signers`, or dev key 0's address when
    /// that is empty.
    pub fn signers(&self) -> Result<Vec<Address>, Error> {
        if self.dev_signers.is_empty() {
            return Ok(vec![devnet::dev_signer()]);
        }
        self.dev_signers
            .iter()
            .map(|text| {
                let text = text.trim();
                let hex = text.strip_prefix("0x").unwrap_or_default();
                if hex.len() != 40 {
                    return Err(Error::Config {
                        origin: "configuration".into(),
                        problem: format!(
                            "dev-signers: {text:?} is not an address (0x and 40 hex digits)"
                        ),
                    });
                }
                text.parse::<Address>().map_err(|e| Error::Config {
                    origin: "configuration".into(),
                    problem: format!("dev-signers: {text:?} is not an address: {e}"),
                })
            })
            .collect()
    }

    /// The key a producer seals with: `signer-key`, or dev key 0.
    pub fn load_signer_key(&self) -> Result<SecretKey, Error> {
        let Some(path) = &self.signer_key else {
            return Ok(devnet::dev_key(0)?);
        };
        let bad = |problem: String| Error::Config {
            origin: format!("signer-key {}", path.display()),
            problem,
        };
        let text =
            std::fs::read_to_string(path).map_err(|e| bad(format!("cannot read it: {e}")))?;
        let mut secret = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut secret)
            .map_err(|_| bad("must hold 64 hex digits (a secp256k1 secret)".into()))?;
        SecretKey::from_bytes(&secret.into())
            .map_err(|_| bad("is not a valid secp256k1 secret".into()))
    }

    /// The Engine API's JWT secret, from `jwtsecret` (`None` when unset).
    pub fn load_jwt_secret(&self) -> Result<Option<[u8; 32]>, Error> {
        let Some(path) = &self.jwtsecret else {
            return Ok(None);
        };
        let bad = |problem: String| Error::Config {
            origin: format!("jwtsecret {}", path.display()),
            problem,
        };
        let text =
            std::fs::read_to_string(path).map_err(|e| bad(format!("cannot read it: {e}")))?;
        crate::engine::parse_jwt_secret(&text)
            .map(Some)
            .map_err(bad)
    }

    /// The TCP address to listen on: the one server's, or RLPx's when both run.
    pub fn listen_addr(&self) -> SocketAddr {
        SocketAddr::new(self.addr, self.port)
    }

    /// The network settings these options give: the servers and their addresses.
    pub fn network_config(&self) -> NetworkConfig {
        let mut network = NetworkConfig::default()
            .with_p2p_server(self.use_p2p_server)
            .with_servers(&self.servers)
            .with_listen_addr(self.listen_addr());
        network.p2p_listen_addr = self.p2p_port.map(|port| SocketAddr::new(self.addr, port));
        network.pool.max_per_ip = self.max_peers_per_ip;
        network.pool.max_per_subnet = self.max_peers_per_subnet;
        network.pool.address_fault_limit = self.address_fault_limit;
        network.admission.max_pending = self.max_pending_handshakes;
        network.admission.max_pending_per_ip = self.max_pending_per_ip;
        network.admission.max_pending_per_subnet = self.max_pending_per_subnet;
        network.admission.first_byte_timeout =
            std::time::Duration::from_secs(self.first_byte_timeout_secs);
        network.max_missed_pings = self.max_missed_pings;
        network
    }

    /// Whether the node runs `kind`.
    pub fn runs(&self, kind: ServerKind) -> bool {
        self.network_config().runs(kind)
    }

    /// The TCP address `kind` listens on, if it runs.
    pub fn listen_addr_of(&self, kind: ServerKind) -> Option<SocketAddr> {
        self.network_config().listen_addr_of(kind)
    }

    /// Checks what can be checked before anything starts.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |problem: String| Error::Config {
            origin: "configuration".into(),
            problem,
        };
        let network = self.chain_name()?;
        let devnet = network == Some(devmux_chain::networks::DEV);
        if !devnet {
            for (given, key) in [
                (self.dev_blocks > 0, "dev-blocks"),
                (self.produce_blocks.is_some(), "produce-blocks"),
                (!self.dev_signers.is_empty(), "dev-signers"),
                (self.signer_key.is_some(), "signer-key"),
            ] {
                if given {
                    return Err(bad(format!(
                        "{key} applies to the devnet only (--dev); {} is extended by its consensus layer",
                        network.unwrap_or("a genesis file's chain")
                    )));
                }
            }
        }
        self.eth_versions()?;
        if self.datadir.as_os_str().is_empty() {
            return Err(bad("datadir must not be empty".into()));
        }
        if self.max_peers == 0 {
            return Err(bad("max-peers must be at least 1".into()));
        }
        if self.use_p2p_server && !self.servers.is_empty() && self.servers != [ServerKind::P2p] {
            let list: Vec<String> = self.servers.iter().map(ToString::to_string).collect();
            return Err(bad(format!(
                "servers {} and use-p2p-server conflict: use-p2p-server is the shorthand for servers p2p; drop one",
                list.join(",")
            )));
        }
        let dual = self.runs(ServerKind::Rlpx) && self.runs(ServerKind::P2p);
        if let Some(port) = self.p2p_port {
            if !dual {
                return Err(bad(format!(
                    "p2p-port {port} is used only when both servers run (servers rlpx,p2p); a single server listens on port"
                )));
            }
            if port == self.port && port != 0 {
                return Err(bad(format!(
                    "p2p-port {port} is also RLPx's port: give the stream stack a port of its own"
                )));
            }
        }
        for (what, list) in [
            ("static peer", &self.static_peers),
            ("trusted peer", &self.trusted_peers),
        ] {
            for peer in list {
                let (needs, form, instead) = if peer.starts_with("enode://") {
                    (
                        ServerKind::Rlpx,
                        "an enode:// URL, which needs RLPx",
                        "a multiaddr (/ip4/…/tcp/…/p2p/…)",
                    )
                } else {
                    (
                        ServerKind::P2p,
                        "a multiaddr, which needs the stream stack",
                        "an enode:// URL",
                    )
                };
                if !self.runs(needs) {
                    return Err(bad(format!(
                        "{what} {peer:?} is {form}: give {instead}, or add {needs} to servers"
                    )));
                }
            }
        }
        for node in &self.bootnodes {
            let (protocol, name) = if node.starts_with("enode://") {
                (DiscoveryProtocol::V4, "an enode:// URL, a discv4 bootnode")
            } else if node.starts_with("enr:") {
                (DiscoveryProtocol::V5, "an enr: record, a discv5 bootnode")
            } else {
                return Err(bad(format!(
                    "bootnode {node:?} must be an enode:// URL (discv4) or an enr: record (discv5)"
                )));
            };
            if self.discovery_enabled() && !self.discovery.contains(&protocol) {
                return Err(bad(format!(
                    "bootnode {node:?} is {name}, but discovery {protocol} does not run: add it to --discovery"
                )));
            }
            if protocol == DiscoveryProtocol::V4 {
                if let Err(problem) = node.parse::<devmux_identity::Enode>() {
                    return Err(bad(format!("bootnode {node:?}: {problem}")));
                }
            }
        }
        for url in self.dns_discovery.iter().flatten() {
            if let Err(problem) = url.parse::<devmux_discovery::dns::Link>() {
                return Err(bad(format!("dns-discovery {url:?}: {problem}")));
            }
        }
        if self.discv5_max_nodes_per_ip == 0 {
            return Err(bad("discv5-max-nodes-per-ip must be at least 1".into()));
        }
        if self.runs_discovery(DiscoveryProtocol::V4)
            && self.runs_discovery(DiscoveryProtocol::V5)
            && self.discv4_addr().port() != 0
            && self.discv4_addr().port() == self.discovery_addr().port()
        {
            return Err(bad(format!(
                "discv4-port {} is also discv5's UDP port: give discv4 a port of its own",
                self.discv4_addr().port()
            )));
        }
        for (what, list) in [
            ("static peer", &self.static_peers),
            ("trusted peer", &self.trusted_peers),
        ] {
            for peer in list {
                if let Err(problem) = check_peer_addr(peer, !peer.starts_with("enode://")) {
                    return Err(bad(format!("{what}: {problem}")));
                }
            }
        }
        for enr in self.bootnodes.iter().filter(|b| b.starts_with("enr:")) {
            if let Err(problem) = enr.trim().parse::<devmux_discovery::Enr>() {
                let start: String = enr.chars().take(24).collect();
                return Err(bad(format!(
                    "bootnode {start:?}… is not a valid ENR: {problem}"
                )));
            }
        }
        if self.addr.is_multicast() {
            return Err(bad(format!("addr {} is a multicast address", self.addr)));
        }
        if self.addr.is_unspecified() && self.discovery_enabled() {
            return Err(bad(format!(
                "addr {} cannot be advertised in the ENR: give the IP peers reach this node at, or pass --no-discovery",
                self.addr
            )));
        }
        if self.produce_blocks == Some(0) {
            return Err(bad("produce-blocks must be at least 1 second".into()));
        }
        let signers = self.signers()?;
        if self.dev_blocks > 0 && !signers.contains(&devnet::dev_signer()) {
            return Err(bad(format!(
                "dev-blocks are sealed by dev key 0 ({}), which is not in dev-signers: drop --dev-blocks or add it",
                devnet::dev_signer()
            )));
        }
        if self.signer_key.is_some() && self.produce_blocks.is_none() {
            return Err(bad(
                "signer-key is only used to produce blocks: add --produce-blocks SECS or drop it"
                    .into(),
            ));
        }
        if self.produce_blocks.is_some() {
            let signer = self.load_signer_key()?.address();
            if !signers.contains(&signer) {
                return Err(bad(format!(
                    "the producer's key ({signer}, {}) is not in dev-signers: every block it sealed would be refused; pass --signer-key with a signer's key, or add {signer} to dev-signers",
                    if self.signer_key.is_some() { "signer-key" } else { "dev key 0, as no signer-key is given" }
                )));
            }
        }
        if self.eth_recovery_rate == 0 {
            return Err(bad(
                "eth-recovery-rate must be at least 1 (no peer's transaction could be checked)"
                    .into(),
            ));
        }
        if self.large_message_budget_mib < 10 {
            return Err(bad(format!(
                "large-message-budget-mib {} is below 10: one eth message may be 10 MiB",
                self.large_message_budget_mib
            )));
        }
        for (key, value) in [
            ("max-peers-per-ip", self.max_peers_per_ip),
            ("max-peers-per-subnet", self.max_peers_per_subnet),
            ("max-pending-handshakes", self.max_pending_handshakes),
            ("max-pending-per-ip", self.max_pending_per_ip),
            ("max-pending-per-subnet", self.max_pending_per_subnet),
            (
                "first-byte-timeout-secs",
                self.first_byte_timeout_secs as usize,
            ),
            ("address-fault-limit", self.address_fault_limit),
            ("max-missed-pings", self.max_missed_pings as usize),
        ] {
            if value == 0 {
                return Err(bad(format!("{key} must be at least 1")));
            }
        }
        if self.discovery_lookup_secs == 0 {
            return Err(bad("discovery-lookup-secs must be at least 1".into()));
        }
        for (flag, value) in [
            ("max-inbound", self.max_inbound),
            ("outbound-target", self.outbound_target),
        ] {
            if let Some(n) = value.filter(|n| *n > self.max_peers) {
                return Err(bad(format!(
                    "{flag} {n} exceeds max-peers {}: lower it or raise max-peers",
                    self.max_peers
                )));
            }
        }
        if let Some(path) = &self.nodekey {
            if !path.is_file() {
                return Err(bad(format!(
                    "nodekey {}: no such file (create one with `devmux keygen --out {}`, or drop nodekey to use <datadir>/nodekey)",
                    path.display(),
                    path.display()
                )));
            }
        }
        let servers = [
            ("http", self.http),
            ("metrics", self.metrics),
            ("authrpc", self.authrpc),
        ];
        for (i, (one, a)) in servers.iter().enumerate() {
            for (other, b) in &servers[i + 1..] {
                if let (Some(a), Some(b)) = (a, b) {
                    if a == b && a.port() != 0 {
                        return Err(bad(format!(
                            "{one} and {other} must listen on different addresses, both are {a}"
                        )));
                    }
                }
            }
        }
        match (self.authrpc, &self.jwtsecret) {
            (Some(_), None) => {
                return Err(bad(
                    "authrpc needs jwtsecret: a file with the 32-byte secret shared with the consensus client, as 64 hex digits (`openssl rand -hex 32 > jwt.hex`, then --jwtsecret jwt.hex)"
                        .into(),
                ))
            }
            (None, Some(_)) => {
                return Err(bad(
                    "jwtsecret is only used by the Engine API: add --authrpc ADDR or drop it"
                        .into(),
                ))
            }
            (Some(_), Some(_)) => {
                if devnet {
                    return Err(bad(
                        "authrpc serves the Engine API of proof-of-stake chains; the devnet is extended by its signers (--produce-blocks), not by a consensus client"
                            .into(),
                    ));
                }
                self.load_jwt_secret()?;
            }
            (None, None) => {}
        }
        if let Some(http) = self.http.filter(|a| !a.ip().is_loopback()) {
            if !self.http_allow_remote_admin {
                return Err(bad(format!(
                    "http {http} is not a loopback address and would serve admin_* to the network: bind 127.0.0.1 or pass --http-allow-remote-admin (http-allow-remote-admin = true)"
                )));
            }
        }
        let tcp: Vec<SocketAddr> = [ServerKind::Rlpx, ServerKind::P2p]
            .into_iter()
            .filter_map(|kind| self.listen_addr_of(kind))
            .collect();
        for (flag, addr) in servers {
            if let Some(addr) = addr.filter(|a| tcp.contains(a) && a.port() != 0) {
                return Err(bad(format!(
                    "{flag} {addr} is the node's own TCP address: pick another port"
                )));
            }
        }
        if self.log_level.trim().is_empty() {
            return Err(bad("log-level must not be empty (e.g. info)".into()));
        }
        Ok(())
    }
}

/// Checks that `addr` parses as what its server dials: a multiaddr with a peer id
/// (`p2p`) or an `enode://` URL.
fn check_peer_addr(addr: &str, p2p: bool) -> Result<(), String> {
    if p2p {
        let parsed: devmux_identity::Multiaddr = addr
            .trim()
            .parse()
            .map_err(|e| format!("{addr:?} is not a multiaddr: {e}"))?;
        devmux_identity::parse_peer_multiaddr(&parsed).map_err(|e| e.to_string())?;
    } else {
        addr.trim()
            .parse::<devmux_identity::Enode>()
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_keys_protocols_ports_bootnodes_and_dns_lists() {
        let config = NodeConfig::from_toml_str(
            "network = \"sepolia\"\ndiscovery = [\"v4\"]\ndiscovery-port = 30400\n",
            "f.toml",
        )
        .unwrap();
        config.validate().unwrap();
        let spec = config.chain_spec().unwrap();
        assert!(config.runs_discovery(DiscoveryProtocol::V4));
        assert!(!config.runs_discovery(DiscoveryProtocol::V5));
        assert_eq!(config.discv4_addr().port(), 31400);
        // The network's bootnodes for the protocols that run; its DNS lists.
        let boot = config.bootnodes_for(&spec);
        assert!(!boot.is_empty() && boot.iter().all(|b| b.starts_with("enode://")));
        assert_eq!(config.dns_lists(&spec), spec.dns_lists);
        assert!(!spec.dns_lists.is_empty());
        // Given ones win; an empty list of DNS lists is none.
        let mine = NodeConfig {
            bootnodes: vec![boot[0].clone()],
            dns_discovery: Some(Vec::new()),
            no_discovery: true,
            ..config.clone()
        };
        assert_eq!(mine.bootnodes_for(&spec), vec![boot[0].clone()]);
        assert!(mine.dns_lists(&spec).is_empty());
        assert!(!mine.discovery_enabled());
        // The devnet has neither.
        let dev = NodeConfig {
            dev: true,
            network: None,
            ..NodeConfig::default()
        };
        let devnet = dev.chain_spec().unwrap();
        assert!(dev.bootnodes_for(&devnet).is_empty() && dev.dns_lists(&devnet).is_empty());
        // A bootnode for a protocol that does not run, and a bad list URL, are refused.
        let e = NodeConfig {
            bootnodes: vec!["enr:-abc".into()],
            ..config.clone()
        }
        .validate()
        .unwrap_err();
        assert!(e.to_string().contains("discovery v5 does not run"), "{e}");
        let e = NodeConfig {
            dns_discovery: Some(vec!["enrtree://nope".into()]),
            ..config
        }
        .validate()
        .unwrap_err();
        assert!(e.to_string().contains("dns-discovery"), "{e}");
    }

    #[test]
    fn servers_from_toml_and_their_ports() {
        let config =
            NodeConfig::from_toml_str("dev = true\nservers = [\"rlpx\", \"p2p\"]\n", "f.toml")
                .unwrap();
        config.validate().unwrap();
        assert!(config.runs(ServerKind::Rlpx) && config.runs(ServerKind::P2p));
        let port = |kind| config.listen_addr_of(kind).map(|a| a.port());
        assert_eq!(port(ServerKind::Rlpx), Some(30303));
        assert_eq!(port(ServerKind::P2p), Some(31303));
        let moved = NodeConfig {
            p2p_port: Some(30453),
            ..config.clone()
        };
        assert_eq!(moved.listen_addr_of(ServerKind::P2p).unwrap().port(), 30453);
        // Either form of static peer, on a dual node.
        let both = NodeConfig {
            static_peers: vec![
                format!("enode://{}@127.0.0.1:1", "ab".repeat(64)),
                "/ip4/127.0.0.1/tcp/1/p2p/16Uiu2HAmEWQnHq2jLKJypwVnVoQeFCULuyop6atvq2eWjYSUjzNi"
                    .into(),
            ],
            ..config.clone()
        };
        let err = both.validate().err().map(|e| e.to_string());
        assert!(
            err.as_deref().is_none_or(|e| !e.contains("servers")),
            "{err:?}"
        );
        // The default and the shorthand run one server each.
        let rlpx = NodeConfig::default();
        assert!(rlpx.runs(ServerKind::Rlpx) && !rlpx.runs(ServerKind::P2p));
        let p2p = NodeConfig {
            use_p2p_server: true,
            ..NodeConfig::default()
        };
        assert!(!p2p.runs(ServerKind::Rlpx) && p2p.runs(ServerKind::P2p));
        assert_eq!(p2p.listen_addr_of(ServerKind::P2p).unwrap().port(), 30303);
        assert!(NodeConfig::from_toml_str("servers = [\"tcp\"]", "f.toml").is_err());
        let conflict = NodeConfig {
            use_p2p_server: true,
            ..config
        };
        let err = conflict.validate().unwrap_err().to_string();
        assert!(err.contains("conflict"), "{err}");
    }

    /// One of --network, --dev and --genesis selects the chain; the devnet's own options
    /// are refused elsewhere; eth versions default by network and are checked.
    #[test]
    fn one_chain_is_selected_and_its_options_fit_it() {
        let refused = |config: NodeConfig, needle: &str| {
            let err = config.validate().unwrap_err().to_string();
            assert!(err.contains(needle), "{needle:?} not in {err:?}");
        };
        refused(NodeConfig::default(), "no chain selected");
        let sepolia = NodeConfig {
            network: Some("sepolia".into()),
            ..NodeConfig::default()
        };
        sepolia.validate().unwrap();
        assert_eq!(sepolia.chain_spec().unwrap().chain_id, 11_155_111);
        assert_eq!(
            sepolia.eth_versions().unwrap(),
            vec![EthVersion::Eth70, EthVersion::Eth69]
        );
        refused(
            NodeConfig {
                genesis: Some("g.json".into()),
                ..sepolia.clone()
            },
            "give one",
        );
        refused(
            NodeConfig {
                dev: true,
                ..sepolia.clone()
            },
            "conflict",
        );
        refused(
            NodeConfig {
                network: Some("goerli".into()),
                ..NodeConfig::default()
            },
            "not one devmux knows",
        );
        for config in [
            NodeConfig {
                dev_blocks: 10,
                ..sepolia.clone()
            },
            NodeConfig {
                produce_blocks: Some(2),
                ..sepolia.clone()
            },
        ] {
            refused(config, "devnet only");
        }
        refused(
            NodeConfig {
                eth_versions: vec![65],
                ..sepolia.clone()
            },
            "eth/65",
        );
        let pinned = NodeConfig {
            eth_versions: vec![69],
            ..sepolia
        };
        assert_eq!(pinned.eth_versions().unwrap(), vec![EthVersion::Eth69]);
        let dev = NodeConfig {
            network: Some("dev".into()),
            dev: true,
            ..NodeConfig::default()
        };
        dev.validate().unwrap();
        assert_eq!(dev.eth_versions().unwrap(), EthVersion::ALL.to_vec());
        assert!(dev.chain_spec().unwrap().is_sealed());
        let parsed =
            NodeConfig::from_toml_str("network = \"hoodi\"\neth-versions = [69, 70]\n", "f.toml")
                .unwrap();
        assert_eq!(parsed.chain_spec().unwrap().network_id, 560_048);
    }

    #[test]
    fn remote_admin_rpc_needs_its_flag() {
        let mut config = NodeConfig {
            dev: true,
            http: Some("0.0.0.0:8545".parse().unwrap()),
            ..NodeConfig::default()
        };
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("--http-allow-remote-admin"), "{err}");
        config.http_allow_remote_admin = true;
        config.validate().unwrap();
        config.http = Some("127.0.0.1:8545".parse().unwrap());
        config.http_allow_remote_admin = false;
        config.validate().unwrap();
        let parsed = NodeConfig::from_toml_str(
            "dev = true\nhttp = \"0.0.0.0:8545\"\nhttp-allow-remote-admin = true\n",
            "f.toml",
        )
        .unwrap();
        assert!(parsed.http_allow_remote_admin);
    }

    /// --authrpc needs --jwtsecret (and the other way round), a well-formed secret and a
    /// proof-of-stake chain; --checkpoint parses as NUMBER:HASH.
    #[test]
    fn engine_api_and_checkpoint_options_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("jwt.hex");
        std::fs::write(&good, format!("0x{}\n", "ab".repeat(32))).unwrap();
        let short = dir.path().join("short.hex");
        std::fs::write(&short, "abcd").unwrap();
        let sepolia = NodeConfig {
            network: Some("sepolia".into()),
            authrpc: Some("0.0.0.0:8551".parse().unwrap()),
            jwtsecret: Some(good.clone()),
            ..NodeConfig::default()
        };
        sepolia.validate().unwrap();
        assert_eq!(sepolia.load_jwt_secret().unwrap(), Some([0xab; 32]));
        let err = |config: NodeConfig| config.validate().unwrap_err().to_string();
        assert!(err(NodeConfig {
            jwtsecret: None,
            ..sepolia.clone()
        })
        .contains("authrpc needs jwtsecret"));
        assert!(err(NodeConfig {
            authrpc: None,
            ..sepolia.clone()
        })
        .contains("only used by the Engine API"));
        let malformed = err(NodeConfig {
            jwtsecret: Some(short.clone()),
            ..sepolia.clone()
        });
        assert!(malformed.contains("64 hex digits"), "{malformed}");
        assert!(!malformed.contains('\n'), "one line: {malformed}");
        assert!(err(NodeConfig {
            jwtsecret: Some(dir.path().join("missing")),
            ..sepolia.clone()
        })
        .contains("cannot read it"));
        assert!(err(NodeConfig {
            network: None,
            dev: true,
            ..sepolia.clone()
        })
        .contains("proof-of-stake"));
        assert!(err(NodeConfig {
            http: Some("127.0.0.1:8551".parse().unwrap()),
            authrpc: Some("127.0.0.1:8551".parse().unwrap()),
            ..sepolia.clone()
        })
        .contains("different addresses"));

        let hash = format!("0x{}", "cd".repeat(32));
        let checkpoint: Checkpoint = format!("1000:{hash}").parse().unwrap();
        assert_eq!(checkpoint.number, 1000);
        assert_eq!(checkpoint.hash, B256::repeat_byte(0xcd));
        assert_eq!(checkpoint.to_string(), format!("1000:{hash}"));
        for bad in [
            "1000",
            "x:0x00",
            &format!("1000:{}", "cd".repeat(32)),
            "1:0xcd",
        ] {
            assert!(bad.parse::<Checkpoint>().is_err(), "{bad}");
        }
        let text = format!(
            "network = \"hoodi\"\nauthrpc = \"127.0.0.1:0\"\njwtsecret = \"jwt.hex\"\ncheckpoint = \"1000:{hash}\"\n"
        );
        let file = dir.path().join("n.toml");
        std::fs::write(&file, &text).unwrap();
        let parsed = NodeConfig::from_toml_file(&file).unwrap();
        assert_eq!(parsed.jwtsecret, Some(good));
        assert_eq!(parsed.checkpoint, Some(checkpoint));
        parsed.validate().unwrap();
        let again = NodeConfig::from_toml_str(&parsed.to_toml(), "again").unwrap();
        assert_eq!(again, parsed);
        assert!(NodeConfig::from_toml_str("checkpoint = \"12\"", "f.toml").is_err());
    }

    #[test]
    fn toml_round_trip_and_kebab_keys() {
        let text = r#"
            datadir = "/tmp/x"
            use-p2p-server = true
            port = 30450
            dev = true
            dev-blocks = 10
            static-peers = ["/ip4/127.0.0.1/tcp/1/p2p/16Uiu2HAmEWQnHq2jLKJypwVnVoQeFCULuyop6atvq2eWjYSUjzNi"]
        "#;
        let config = NodeConfig::from_toml_str(text, "test").unwrap();
        assert!(config.use_p2p_server && config.dev);
        assert_eq!((config.port, config.dev_blocks), (30450, 10));
        assert_eq!(config.addr, IpAddr::V4(Ipv4Addr::LOCALHOST));
        config.validate().unwrap();
        let again = NodeConfig::from_toml_str(&config.to_toml(), "again").unwrap();
        assert_eq!(again, config);
    }

    #[test]
    fn new_keys_parse_and_paths_are_relative_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("keys")).unwrap();
        std::fs::write(
            dir.path().join("keys/n.key"),
            format!("{}\n", "11".repeat(32)),
        )
        .unwrap();
        let file = dir.path().join("n.toml");
        std::fs::write(
            &file,
            r#"
                datadir = "data/n"
                nodekey = "keys/n.key"
                dev = true
                http = "127.0.0.1:8550"
                metrics = "127.0.0.1:9101"
                log-level = "debug"
                log-format = "json"
                max-inbound = 10
                outbound-target = 5
                network-id = 7
                discovery-lookup-secs = 2
            "#,
        )
        .unwrap();
        let config = NodeConfig::from_toml_file(&file).unwrap();
        assert_eq!(config.datadir, dir.path().join("data/n"));
        assert_eq!(config.nodekey_path(), dir.path().join("keys/n.key"));
        assert_eq!(config.http, Some("127.0.0.1:8550".parse().unwrap()));
        assert_eq!(config.metrics, Some("127.0.0.1:9101".parse().unwrap()));
        assert_eq!(config.log_format, LogFormat::Json);
        assert_eq!(
            (config.max_inbound, config.outbound_target),
            (Some(10), Some(5))
        );
        config.validate().unwrap();
        // An unset datadir stays relative to the working directory.
        std::fs::write(&file, "dev = true\n").unwrap();
        let config = NodeConfig::from_toml_file(&file).unwrap();
        assert_eq!(config.datadir, PathBuf::from("devmux-data"));
        assert_eq!(config.nodekey_path(), PathBuf::from("devmux-data/nodekey"));
    }

    #[test]
    fn new_keys_are_checked() {
        let base = NodeConfig {
            dev: true,
            ..NodeConfig::default()
        };
        let err = |config: NodeConfig| config.validate().unwrap_err().to_string();
        assert!(err(NodeConfig {
            nodekey: Some("/nonexistent/key".into()),
            ..base.clone()
        })
        .contains("devmux keygen"));
        assert!(err(NodeConfig {
            max_inbound: Some(51),
            ..base.clone()
        })
        .contains("max-inbound"));
        let same = Some("127.0.0.1:9000".parse().unwrap());
        assert!(err(NodeConfig {
            http: same,
            metrics: same,
            ..base.clone()
        })
        .contains("different"));
        assert!(err(NodeConfig {
            http: Some("127.0.0.1:30303".parse().unwrap()),
            ..base.clone()
        })
        .contains("own TCP address"));
        assert!(err(NodeConfig {
            bootnodes: vec!["enr:-nope".into()],
            ..base.clone()
        })
        .contains("bootnode"));
        let err =
            NodeConfig::from_toml_str("dev = true\nlog-format = \"xml\"", "f.toml").unwrap_err();
        assert!(err.to_string().contains("f.toml line 2"), "{err}");
        assert_eq!("json".parse::<LogFormat>(), Ok(LogFormat::Json));
        assert!("xml".parse::<LogFormat>().is_err());
    }

    #[test]
    fn typos_and_bad_values_are_clear_errors() {
        let err = NodeConfig::from_toml_str("dev-block = 3", "f.toml").unwrap_err();
        assert!(
            err.to_string().contains("f.toml") && err.to_string().contains("dev-block"),
            "{err}"
        );
        let err = NodeConfig::from_toml_str("port = 70000", "f.toml").unwrap_err();
        assert!(err.to_string().contains("f.toml"), "{err}");
        assert!(NodeConfig::from_toml_str("addr = \"nope\"", "f.toml").is_err());
        assert!(
            NodeConfig::default().validate().is_err(),
            "no chain selected"
        );
        let config = NodeConfig {
            dev: true,
            static_peers: vec!["/ip4/127.0.0.1/tcp/1".into()],
            ..NodeConfig::default()
        };
        assert!(config
            .validate()
            .unwrap_err()
            .to_string()
            .contains("enode://"));
    }
}
