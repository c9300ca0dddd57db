//! The admin JSON-RPC, served over HTTP by jsonrpsee (`--http`, WIRE.md §5).
//!
//! | method | params | result |
//! |---|---|---|
//! | `admin_nodeInfo` | – | this node: ids, addresses, ENR, server, protocols, chain head |
//! | `admin_peers` | – | connected peers: id, addresses, direction, server (carrier), protocols, reputation, keepalive (`pingRttMs`, `missedPings`), eth session |
//! | `admin_addPeer` | `enode://…` or multiaddr | `true` once connected (an error says why not) |
//! | `admin_removePeer` | `enode://…`, multiaddr with `/p2p/`, or PeerId | `true` if it was connected |
//! | `net_peerCount` | – | hex quantity (`"0x2"`) |
//! | `eth_blockNumber` | – | hex quantity (`"0x64"`) |
//! | `eth_syncing` | – | `false`, or `{startingBlock, currentBlock, highestBlock}` (hex) |
//! | `eth_getBlockByNumber` | block tag or hex number, `false` | the canonical block (header fields, `hash`, transaction hashes), or `null` |
//! | `eth_sendRawTransaction` | `0x…` EIP-2718 bytes | the transaction hash |
//!
//! `admin_*` answers use plain JSON numbers; `eth_*` and `net_*` use hex quantities,
//! as Ethereum clients do. Bad input is a JSON-RPC error: `-32602` (invalid params)
//! for text that does not parse, `-32000` for a dial that failed or a transaction
//! the pool refused, with a message saying why.
//!
//! The server is HTTP only (no WebSocket), at most 32 connections, 1 MiB per request,
//! at most 100 calls per batch (a larger batch is refused whole) and 10 s per call
//! (a call still running then answers `-32000`). `eth_sendRawTransaction` decodes and
//! recovers the sender on tokio's blocking pool, not on the workers that serve every
//! other call. The admin methods change who the node talks to: they are served on
//! loopback, where requests must name a loopback host (`localhost`, `127.0.0.1`,
//! `[::1]`) in their `Host` header so that a web page cannot reach them by DNS
//! rebinding; a non-loopback `--http` is refused at start unless
//! `--http-allow-remote-admin` says so.

use std::net::SocketAddr;
use std::sync::Weak;
use std::time::Duration;

use devmux_chain::{Chain, Pool};
use devmux_discovery::Discovery;
use devmux_eth::alloy_eips::eip2718::Decodable2718;
use devmux_eth::{EthPeers, PooledTransaction};
use devmux_identity::{peer_multiaddr, Enode, NodeId, NodeKey, PeerId, PublicKey};
use devmux_network::{
    DisconnectReason, Network, PeerInfo, ServerKind, GOODBYE_PROTOCOL, IDENTIFY_PROTOCOL,
    PING_PROTOCOL,
};
use jsonrpsee::server::middleware::http::HostFilterLayer;
use jsonrpsee::server::{BatchRequestConfig, RpcModule, Server, ServerConfig, ServerHandle};
use jsonrpsee::types::error::{ErrorObjectOwned, INVALID_PARAMS_CODE};
use serde::Serialize;

use devmux_eth::alloy_primitives::B256;
use devmux_eth::{BlockBody, Header};

use crate::Error;

/// JSON-RPC error code for a request that was understood but failed (geth's choice
/// for refused transactions and failed admin actions).
const SERVER_ERROR_CODE: i32 = -32000;
/// The longest any call may take before it is answered with an error.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Most calls in one batch; a larger batch is refused whole.
const MAX_BATCH_CALLS: u32 = 100;
/// How long `admin_addPeer` waits for the connection: within [`CALL_TIMEOUT`].
const ADD_PEER_TIMEOUT: Duration = Duration::from_secs(8);
/// How long stopping waits for requests in flight (an `admin_addPeer` dial, say).
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// Concurrent HTTP connections served.
const MAX_CONNECTIONS: u32 = 32;
/// Largest request body: a raw transaction is at most 128 KiB, 256 KiB as hex.
const MAX_REQUEST_BYTES: u32 = 1024 * 1024;
/// `Host` headers accepted when the server listens on loopback (any port).
const LOOPBACK_HOSTS: [&str; 3] = ["localhost:*", "127.0.0.1:*", "[::1]:*"];

/// Sync progress, as `eth_syncing` and the metrics report it. The sync code updates
/// it; until it runs, the node is never syncing. Cheap to clone; clones share it.
#[derive(Clone, Debug)]
pub struct SyncStatus {
    sync: devmux_sync::SyncHandle,
}

/// Where a running sync stands (block numbers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncProgress {
    /// Our head when this sync started.
    pub starting_block: u64,
    /// Our head now.
    pub current_block: u64,
    /// The highest head a peer reported.
    pub highest_block: u64,
}

impl SyncStatus {
    /// The status of the running sync.
    pub fn new(sync: devmux_sync::SyncHandle) -> Self {
        Self { sync }
    }

    /// The sync in progress, if any (what `eth_syncing` reports).
    pub fn progress(&self) -> Option<SyncProgress> {
        self.sync
            .status()
            .eth_syncing()
            .map(
                |(starting_block, current_block, highest_block)| SyncProgress {
                    starting_block,
                    current_block,
                    highest_block,
                },
            )
    }

    /// Blocks imported per second by the running sync (0 when idle).
    pub fn blocks_per_sec(&self) -> f64 {
        self.sync.status().blocks_per_sec
    }
}

/// What the admin RPC and the metrics read: cheap clones of the node's parts.
/// Discovery is held weakly so that `Node::stop` can take it back and shut it down.
#[derive(Clone)]
pub(crate) struct NodeView {
    pub(crate) key: NodeKey,
    pub(crate) network: Network,
    pub(crate) chain: Chain,
    pub(crate) pool: Pool,
    pub(crate) eth: EthPeers,
    pub(crate) discovery: Option<Weak<Discovery>>,
    pub(crate) enr: Option<String>,
    pub(crate) discovery_port: Option<u16>,
    pub(crate) protocols: Vec<String>,
    pub(crate) network_id: u64,
    pub(crate) sync: SyncStatus,
}

impl NodeView {
    /// Nodes in discovery's routing table, if discovery runs.
    pub(crate) fn discovery_table_size(&self) -> Option<usize> {
        let discovery = self.discovery.as_ref()?.upgrade()?;
        Some(discovery.table_size())
    }
}

/// A running admin RPC server.
#[derive(Debug)]
pub(crate) struct RpcServer {
    handle: ServerHandle,
    addr: SocketAddr,
}

/// Binds a TCP listener for one of the node's HTTP servers; returns it with the
/// bound address (port 0 resolved).
pub(crate) async fn bind(
    what: &'static str,
    addr: SocketAddr,
) -> Result<(tokio::net::TcpListener, SocketAddr), Error> {
    let error = |error| Error::Listen { what, addr, error };
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(error)?;
    let bound = listener.local_addr().map_err(error)?;
    Ok((listener, bound))
}

/// The protocol ids a node offers: the registrar's, plus the stream stack's built-in
/// ones.
pub(crate) fn advertised_protocols(stream_stack: bool, registered: Vec<String>) -> Vec<String> {
    let mut ids = registered;
    if stream_stack {
        ids.extend(
            [PING_PROTOCOL, IDENTIFY_PROTOCOL, GOODBYE_PROTOCOL]
                .iter()
                .map(|id| id.to_string()),
        );
    }
    ids
}

/// An HTTP-only JSON-RPC server config within these bounds: connections at once, bytes
/// per request body, calls per batch (the admin RPC's and the Engine API's).
pub(crate) fn http_server_config(
    connections: u32,
    body_bytes: u32,
    batch_calls: u32,
) -> ServerConfig {
    ServerConfig::builder()
        .http_only()
        .max_connections(connections)
        .max_request_body_size(body_bytes)
        .set_batch_request_config(BatchRequestConfig::Limit(batch_calls))
        .build()
}

impl RpcServer {
    /// Serves the admin RPC on `listener`, bound at `addr` by [`bind`] early in
    /// `Node::start`, so a busy port fails before anything starts.
    pub(crate) fn start(
        listener: tokio::net::TcpListener,
        addr: SocketAddr,
        view: NodeView,
    ) -> Result<Self, Error> {
        let listen_error = |error| Error::Listen {
            what: "admin RPC (--http)",
            addr,
            error,
        };
        let listener = listener.into_std().map_err(listen_error)?;
        let config = http_server_config(MAX_CONNECTIONS, MAX_REQUEST_BYTES, MAX_BATCH_CALLS);
        // On loopback, only requests naming a loopback host: a web page that rebinds
        // its own DNS name to 127.0.0.1 cannot reach the admin methods.
        let hosts = if addr.ip().is_loopback() {
            HostFilterLayer::new(LOOPBACK_HOSTS).map_err(|e| Error::Config {
                origin: "admin RPC".into(),
                problem: e.to_string(),
            })?
        } else {
            HostFilterLayer::disable()
        };
        let server = Server::builder()
            .set_config(config)
            .set_http_middleware(tower::ServiceBuilder::new().layer(hosts))
            .build_from_tcp(listener)
            .map_err(listen_error)?;
        let handle = server.start(module(view)?);
        if !addr.ip().is_loopback() {
            tracing::warn!(%addr, "admin RPC serves admin_* methods on a non-loopback address");
        }
        tracing::info!(%addr, "admin RPC listening");
        Ok(Self { handle, addr })
    }

    /// The bound address.
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting and waits (at most [`STOP_TIMEOUT`]) until every connection
    /// has finished its request.
    pub(crate) async fn stop(self) {
        // Already stopped is fine.
        let _ = self.handle.stop();
        if tokio::time::timeout(STOP_TIMEOUT, self.handle.stopped())
            .await
            .is_err()
        {
            tracing::warn!("admin RPC requests still running at stop");
        }
    }
}

/// Runs a call's work within [`CALL_TIMEOUT`]; past it the caller gets `-32000`.
async fn within_deadline<T>(
    work: impl std::future::Future<Output = T>,
) -> Result<T, ErrorObjectOwned> {
    tokio::time::timeout(CALL_TIMEOUT, work)
        .await
        .map_err(|_| server_error(format!("call took longer than {CALL_TIMEOUT:?}")))
}

fn invalid_params(message: impl Into<String>) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(INVALID_PARAMS_CODE, message.into(), None::<()>)
}

pub(crate) fn server_error(message: impl Into<String>) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(SERVER_ERROR_CODE, message.into(), None::<()>)
}

/// A hex quantity: `0x0`, `0x64` (no leading zeros).
fn quantity(n: u64) -> String {
    format!("{n:#x}")
}

/// `admin_nodeInfo`.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct NodeInfo {
    /// PeerId (both servers name a peer by it).
    id: String,
    /// devp2p node id: the 64-byte public key, hex.
    node_id: String,
    /// Client name and version.
    name: String,
    /// The address to dial this node at over its preferred server (`multiaddr` when
    /// the stream stack runs, else `enode`).
    addr: String,
    /// The RLPx address (with the RLPx port when both servers run).
    enode: String,
    /// The stream-stack address (with its own port when both servers run).
    multiaddr: String,
    enr: Option<String>,
    listen_addr: SocketAddr,
    /// The preferred server.
    server: String,
    /// Every server that runs.
    servers: Vec<String>,
    protocols: Vec<String>,
    network_id: u64,
    /// The chain's name (`mainnet`, `sepolia`, `hoodi`, `dev`, or the genesis file's).
    network: String,
    genesis: String,
    /// The fork id (EIP-2124) of the head, as Status carries it.
    fork_id: ForkIdInfo,
    head: Head,
}

/// A fork id as go-ethereum's `admin_nodeInfo` shows it: the hash as 0x and 8 hex
/// digits, the next fork as a number.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ForkIdInfo {
    hash: String,
    next: u64,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Head {
    number: u64,
    hash: String,
    total_difficulty: String,
}

/// One entry of `admin_peers`.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Peer {
    id: String,
    /// The connection's remote end in the server's URL form (an inbound peer's
    /// port is its source port, not its listening port).
    addresses: Vec<String>,
    remote_address: SocketAddr,
    direction: String,
    server: String,
    protocols: Vec<String>,
    reputation: i32,
    /// The round trip of its last answered keepalive ping, in milliseconds.
    ping_rtt_ms: Option<f64>,
    /// Keepalive pings it missed in a row.
    missed_pings: u32,
    /// The eth session, once Status was exchanged.
    eth: Option<EthSession>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct EthSession {
    version: u8,
    head_hash: String,
    head_number: Option<u64>,
}

/// `eth_syncing` while syncing (geth's shape).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Syncing {
    starting_block: String,
    current_block: String,
    highest_block: String,
}

/// `eth_getBlockByNumber`'s answer, in the shape Ethereum clients give: the header's
/// fields (alloy's serde form: camelCase names, hex quantities) beside `hash`,
/// `totalDifficulty`, `size` and the transactions' hashes. Full transaction objects
/// are not served: the heads and links a caller compares need only the hashes.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct RpcBlock {
    hash: B256,
    #[serde(flatten)]
    header: Header,
    total_difficulty: String,
    /// The block's RLP size in bytes (hex).
    size: String,
    transactions: Vec<B256>,
    uncles: Vec<B256>,
    #[serde(skip_serializing_if = "Option::is_none")]
    withdrawals: Option<devmux_eth::alloy_eips::eip4895::Withdrawals>,
}

/// Which block `eth_getBlockByNumber` names: a hex number, or a tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BlockTag {
    Number(u64),
    Earliest,
    /// `latest` and `pending` (there are no pending blocks here).
    Latest,
    Safe,
    Finalized,
}

fn block_tag(text: &str) -> Result<BlockTag, ErrorObjectOwned> {
    let text = text.trim();
    Ok(match text {
        "latest" | "pending" => BlockTag::Latest,
        "earliest" => BlockTag::Earliest,
        "safe" => BlockTag::Safe,
        "finalized" => BlockTag::Finalized,
        _ => {
            let digits = text.strip_prefix("0x").ok_or_else(|| {
                invalid_params(format!(
                    "block {text:?}: give a hex number (0x64) or latest, earliest, pending, safe, finalized"
                ))
            })?;
            BlockTag::Number(u64::from_str_radix(digits, 16).map_err(|e| {
                invalid_params(format!("block {text:?} is not a hex quantity: {e}"))
            })?)
        }
    })
}

/// The canonical block `tag` names, if stored. Blocks: run it off the reactor.
fn block_by_tag(chain: &Chain, tag: BlockTag) -> Result<Option<RpcBlock>, devmux_chain::Error> {
    let hash = match tag {
        BlockTag::Latest => Some(chain.head().hash),
        BlockTag::Earliest => Some(chain.genesis_hash()),
        BlockTag::Safe => chain.safe().map(|b| b.hash),
        BlockTag::Finalized => chain.finalized().map(|b| b.hash),
        BlockTag::Number(n) => chain.canonical_hash_blocking(n)?,
    };
    let Some(hash) = hash else { return Ok(None) };
    // By hash from here on: a block's contents never change, so a reorg between these
    // reads cannot mix two blocks.
    let (Some(header), Some(body)) = (
        chain.header_by_hash_blocking(hash)?,
        chain.body_blocking(hash)?,
    ) else {
        return Ok(None);
    };
    let total_difficulty = chain.total_difficulty_blocking(hash)?.unwrap_or_default();
    let block = devmux_eth::Block { header, body };
    let size = devmux_eth::alloy_rlp::Encodable::length(&block) as u64;
    let devmux_eth::Block {
        header,
        body:
            BlockBody {
                transactions,
                ommers,
                withdrawals,
            },
    } = block;
    Ok(Some(RpcBlock {
        hash,
        header,
        total_difficulty: format!("{total_difficulty:#x}"),
        size: quantity(size),
        transactions: transactions.iter().map(|t| *t.tx_hash()).collect(),
        uncles: ommers.iter().map(Header::hash_slow).collect(),
        withdrawals,
    }))
}

fn node_info(view: &NodeView) -> NodeInfo {
    let network = &view.network;
    let listen = network.listen_addr();
    let peer_id = network.local_peer_id();
    let rlpx_addr = network.listen_addr_of(ServerKind::Rlpx).unwrap_or(listen);
    let p2p_addr = network.listen_addr_of(ServerKind::P2p).unwrap_or(listen);
    let mut enode = Enode::new(view.key.node_id(), rlpx_addr);
    enode.discport = view.discovery_port;
    let head = view.chain.head();
    NodeInfo {
        id: peer_id.to_string(),
        node_id: view.key.node_id().to_string(),
        name: concat!("devmux/", env!("CARGO_PKG_VERSION")).to_string(),
        addr: network.local_addr(),
        enode: enode.to_string(),
        multiaddr: peer_multiaddr(p2p_addr, &peer_id).to_string(),
        enr: view.enr.clone(),
        listen_addr: listen,
        server: network.server_kind().to_string(),
        servers: network.servers().iter().map(ToString::to_string).collect(),
        protocols: view.protocols.clone(),
        network_id: view.network_id,
        network: view.chain.spec().name.clone(),
        genesis: view.chain.genesis_hash().to_string(),
        fork_id: {
            let id = view.chain.fork_filter().current();
            ForkIdInfo {
                hash: format!("0x{}", hex::encode(id.hash.0)),
                next: id.next,
            }
        },
        head: Head {
            number: head.number,
            hash: head.hash.to_string(),
            total_difficulty: format!("{:#x}", head.total_difficulty),
        },
    }
}

/// The devp2p node id inside a secp256k1 PeerId (an identity multihash of the
/// protobuf public key).
fn node_id_of(peer: &PeerId) -> Option<NodeId> {
    let key = PublicKey::try_decode_protobuf(peer.as_ref().digest()).ok()?;
    NodeId::from_public_key(&key).ok()
}

fn peer_entry(view: &NodeView, info: PeerInfo) -> Peer {
    let address = match info.server {
        ServerKind::P2p => Some(peer_multiaddr(info.remote_addr, &info.peer_id).to_string()),
        ServerKind::Rlpx => {
            node_id_of(&info.peer_id).map(|id| Enode::new(id, info.remote_addr).to_string())
        }
    };
    let eth = view.eth.get(&info.peer_id).map(|peer| {
        let head = peer.head();
        EthSession {
            version: peer.version().as_u8(),
            head_hash: head.hash.to_string(),
            head_number: head.number,
        }
    });
    Peer {
        id: info.peer_id.to_string(),
        addresses: address.into_iter().collect(),
        remote_address: info.remote_addr,
        direction: info.direction.to_string(),
        server: info.server.to_string(),
        protocols: info.protocols.iter().map(ToString::to_string).collect(),
        reputation: info.reputation,
        ping_rtt_ms: info.ping_rtt.map(|rtt| rtt.as_secs_f64() * 1000.0),
        missed_pings: info.missed_pings,
        eth,
    }
}

/// The peer an `admin_removePeer` argument names: a PeerId, or an address with one.
fn peer_named(network: &Network, text: &str) -> Result<PeerId, ErrorObjectOwned> {
    if let Ok(peer) = text.trim().parse::<PeerId>() {
        return Ok(peer);
    }
    match network.check_addr(text.trim()) {
        Ok(Some(peer)) => Ok(peer),
        Ok(None) => Err(invalid_params(format!(
            "{text:?} names no peer: give a PeerId, an enode:// URL or a multiaddr ending in /p2p/<PeerId>"
        ))),
        Err(e) => Err(invalid_params(format!("{text:?}: {e}"))),
    }
}

/// Decodes `0x`-prefixed (or bare) hex.
fn decode_hex(text: &str) -> Result<Vec<u8>, ErrorObjectOwned> {
    let digits = text.trim();
    let digits = digits.strip_prefix("0x").unwrap_or(digits);
    hex::decode(digits).map_err(|e| invalid_params(format!("transaction is not hex: {e}")))
}

pub(crate) fn register_error(e: jsonrpsee::core::RegisterMethodError) -> Error {
    Error::Config {
        origin: "admin RPC".into(),
        problem: e.to_string(),
    }
}

/// The RPC methods over `view`.
pub(crate) fn module(view: NodeView) -> Result<RpcModule<NodeView>, Error> {
    let mut module = RpcModule::new(view);
    module
        .register_method("admin_nodeInfo", |_, view, _| {
            Ok::<_, ErrorObjectOwned>(node_info(view))
        })
        .map_err(register_error)?;
    module
        .register_method("admin_peers", |_, view, _| {
            view.network
                .peers()
                .into_iter()
                .map(|info| peer_entry(view, info))
                .collect::<Vec<_>>()
        })
        .map_err(register_error)?;
    module
        .register_async_method("admin_addPeer", |params, view, _| async move {
            let url: String = params.one()?;
            let url = url.trim().to_string();
            view.network
                .check_addr(&url)
                .map_err(|e| invalid_params(format!("{url:?}: {e}")))?;
            match tokio::time::timeout(ADD_PEER_TIMEOUT, view.network.dial(&url)).await {
                Ok(Ok(peer)) => {
                    tracing::info!(%peer, %url, "admin_addPeer: connected");
                    Ok::<_, ErrorObjectOwned>(true)
                }
                Ok(Err(e)) => Err(server_error(format!("dialing {url}: {e}"))),
                Err(_) => Err(server_error(format!(
                    "dialing {url}: no connection within {}s",
                    ADD_PEER_TIMEOUT.as_secs()
                ))),
            }
        })
        .map_err(register_error)?;
    module
        .register_async_method("admin_removePeer", |params, view, _| async move {
            let text: String = params.one()?;
            let peer = peer_named(&view.network, &text)?;
            if !view.network.is_connected(&peer) {
                return Ok::<_, ErrorObjectOwned>(false);
            }
            within_deadline(
                view.network
                    .disconnect(&peer, DisconnectReason::DisconnectRequested),
            )
            .await?;
            tracing::info!(%peer, "admin_removePeer: disconnected");
            Ok(true)
        })
        .map_err(register_error)?;
    module
        .register_method("net_peerCount", |_, view, _| {
            quantity(view.network.peers().len() as u64)
        })
        .map_err(register_error)?;
    module
        .register_method("eth_blockNumber", |_, view, _| {
            quantity(view.chain.head().number)
        })
        .map_err(register_error)?;
    module
        .register_method("eth_syncing", |_, view, _| match view.sync.progress() {
            None => serde_json::Value::Bool(false),
            Some(p) => serde_json::to_value(Syncing {
                starting_block: quantity(p.starting_block),
                current_block: quantity(p.current_block),
                highest_block: quantity(p.highest_block),
            })
            .unwrap_or(serde_json::Value::Bool(false)),
        })
        .map_err(register_error)?;
    module
        .register_async_method("eth_getBlockByNumber", |params, view, _| async move {
            let mut params = params.sequence();
            let tag: String = params.next()?;
            let full: Option<bool> = params.optional_next()?;
            let tag = block_tag(&tag)?;
            if full == Some(true) {
                return Err(invalid_params(
                    "full transaction objects are not served: ask with false for their hashes",
                ));
            }
            let chain = view.chain.clone();
            let block = within_deadline(tokio::task::spawn_blocking(move || {
                block_by_tag(&chain, tag)
            }))
            .await?
            .map_err(|e| server_error(format!("block lookup failed: {e}")))?
            .map_err(|e| server_error(format!("chain store: {e}")))?;
            Ok::<_, ErrorObjectOwned>(block)
        })
        .map_err(register_error)?;
    module
        .register_async_method("eth_sendRawTransaction", |params, view, _| async move {
            let text: String = params.one()?;
            let bytes = decode_hex(&text)?;
            if bytes.is_empty() {
                return Err(invalid_params("transaction is empty"));
            }
            // Decoding and sender recovery cost CPU: keep them off the workers that
            // serve every other call.
            let pool = view.pool.clone();
            let added = tokio::task::spawn_blocking(move || {
                let tx = PooledTransaction::decode_2718_exact(&bytes).map_err(|e| {
                    invalid_params(format!(
                        "not an EIP-2718 transaction in its network form: {e}"
                    ))
                })?;
                // Local: it may use the slots kept for users, so a flood from peers
                // never locks them out.
                pool.add_local(tx)
                    .map_err(|e| server_error(format!("transaction refused: {e}")))
            });
            let hash = within_deadline(added)
                .await?
                .map_err(|e| server_error(format!("transaction check failed: {e}")))??;
            tracing::debug!(%hash, "eth_sendRawTransaction: pooled");
            Ok::<_, ErrorObjectOwned>(hash.to_string())
        })
        .map_err(register_error)?;
    Ok(module)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_are_minimal_hex() {
        assert_eq!(quantity(0), "0x0");
        assert_eq!(quantity(100), "0x64");
    }

    #[test]
    fn hex_input_with_or_without_prefix() {
        assert_eq!(decode_hex("0x0102").unwrap(), vec![1, 2]);
        assert_eq!(decode_hex("0102").unwrap(), vec![1, 2]);
        let err = decode_hex("0xzz").unwrap_err();
        assert_eq!(err.code(), INVALID_PARAMS_CODE);
    }

    #[test]
    fn block_tags_and_numbers() {
        assert_eq!(block_tag("latest").unwrap(), BlockTag::Latest);
        assert_eq!(block_tag("pending").unwrap(), BlockTag::Latest);
        assert_eq!(block_tag("earliest").unwrap(), BlockTag::Earliest);
        assert_eq!(block_tag("finalized").unwrap(), BlockTag::Finalized);
        assert_eq!(block_tag("0x64").unwrap(), BlockTag::Number(100));
        for bad in ["100", "0xzz", "0x", "newest"] {
            assert_eq!(
                block_tag(bad).unwrap_err().code(),
                INVALID_PARAMS_CODE,
                "{bad}"
            );
        }
    }

    /// The stored chain answers by number with the standard fields, linked by
    /// `parentHash`, and `null` past the head.
    #[test]
    fn blocks_by_number_carry_hash_and_parent() {
        let dir = tempfile::tempdir().unwrap();
        let chain = Chain::open(
            dir.path().join("chain.redb"),
            devmux_chain::ChainSpec::devnet(),
        )
        .unwrap();
        let blocks: Vec<_> = devmux_chain::devnet::Devnet::new()
            .unwrap()
            .blocks(5)
            .collect();
        chain.insert_blocks_blocking(&blocks).unwrap();
        let json = |tag| serde_json::to_value(block_by_tag(&chain, tag).unwrap()).unwrap();
        let three = json(BlockTag::Number(3));
        assert_eq!(three["number"], "0x3");
        assert_eq!(three["hash"], blocks[2].hash().to_string());
        assert_eq!(three["parentHash"], blocks[1].hash().to_string());
        assert_eq!(
            three["transactions"].as_array().unwrap().len(),
            blocks[2].body.transactions.len()
        );
        assert!(
            three["stateRoot"].is_string() && three["size"].is_string(),
            "{three}"
        );
        assert_eq!(json(BlockTag::Latest)["hash"], blocks[4].hash().to_string());
        assert_eq!(
            json(BlockTag::Earliest)["hash"],
            chain.genesis_hash().to_string()
        );
        assert!(json(BlockTag::Number(6)).is_null());
        assert!(json(BlockTag::Finalized).is_null());
    }

    #[test]
    fn a_peer_id_gives_back_its_node_id() {
        let key = NodeKey::from_secret_bytes(&[7u8; 32]).unwrap();
        assert_eq!(node_id_of(&key.peer_id()), Some(key.node_id()));
    }
}
