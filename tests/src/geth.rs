//! go-ethereum as a test peer: a `geth` child process on a loopback address of its own,
//! on a private proof-of-stake chain ([`default_genesis`]) that nobody else drives, so
//! the harness acts as its consensus client ([`Geth::produce_block`]).
//!
//! Tests that need geth call [`find_geth`] and, when it is `None`, [`skip`] and return:
//! go-ethereum is an optional tool (CI installs it, `.ci/run`).
//!
//! Every port is 0: geth binds what the kernel gives it and the harness reads back what
//! it got (the HTTP and Engine API endpoints from geth's log, the P2P port from
//! `admin_nodeInfo`). Probing a free port and handing it to geth would race with every
//! other test binding port 0 on the same address.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, ensure, Context as _};
use devmux_eth::alloy_primitives::{Address, B256};
use jsonrpsee_core::client::ClientT as _;
use jsonrpsee_http_client::{HeaderMap, HeaderValue, HttpClient, HttpClientBuilder};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

/// Chain id and network id of [`default_genesis`]: 1338, not the devnet's 1337 (a
/// devmux `--dev` node and this chain must never mistake one another for a peer).
pub const CHAIN_ID: u64 = 1338;

/// The go-ethereum release the harness is written against (its Engine API versions).
pub const GETH_VERSION: &str = "1.17.10";

/// How long geth may take to start serving JSON-RPC (it takes under a second on an idle
/// machine; a loaded CI runner building Rust beside it is far slower).
const START_DEADLINE: Duration = Duration::from_secs(60);

/// How long [`Geth::produce_block`] waits for geth's first block built from its pool
/// before taking the empty block it always has ready.
const BUILD_DEADLINE: Duration = Duration::from_secs(5);

/// Seconds between produced blocks: a mainnet slot. The genesis has timestamp 0, so
/// block `n` has timestamp `12 n`, the same on every run.
const SLOT_SECS: u64 = 12;

/// The `geth` binary: `$DEVMUX_GETH`, else `geth` on `PATH`, else `~/go/bin/geth`.
pub fn find_geth() -> Option<PathBuf> {
    find_tool("DEVMUX_GETH", "geth")
}

/// The `devp2p` binary of go-ethereum (`cmd/devp2p`): `$DEVMUX_DEVP2P`, else `devp2p` on
/// `PATH`, else `~/go/bin/devp2p`.
pub fn find_devp2p() -> Option<PathBuf> {
    find_tool("DEVMUX_DEVP2P", "devp2p")
}

fn find_tool(var: &str, name: &str) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(var).filter(|p| !p.is_empty()) {
        // Set but wrong: not found, rather than silently testing another binary.
        let path = PathBuf::from(path);
        return path.is_file().then_some(path);
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join(name));
    let go_bin = std::env::var_os("HOME").map(|home| Path::new(&home).join("go/bin").join(name));
    on_path.chain(go_bin).find(|p| p.is_file())
}

/// Prints the one line a test prints before returning early because `what` (`geth`
/// or `devp2p`) is missing.
pub fn skip(what: &str) {
    println!(
        "skipped: go-ethereum not installed ({what} v{GETH_VERSION} not found: \
         not in DEVMUX_GETH / DEVMUX_DEVP2P, on PATH or in ~/go/bin)"
    );
}

/// The genesis the harness gives geth unless told otherwise: chain 1338, proof of stake
/// from block 0, every fork through Osaka/BPO2 at genesis, dev keys 0–3 funded.
pub fn default_genesis() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/geth/genesis.json")
}

/// The hash geth v1.17.10 computed for [`default_genesis`] (`geth init`'s log).
pub fn default_genesis_hash() -> anyhow::Result<B256> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/geth/genesis.hash");
    let text = std::fs::read_to_string(&path).with_context(|| path.display().to_string())?;
    text.trim()
        .parse()
        .with_context(|| format!("{} is not a hash", path.display()))
}

/// How to start a [`Geth`].
#[derive(Clone, Debug)]
pub struct GethOptions {
    /// The only address geth binds (P2P, HTTP JSON-RPC, Engine API): a 127.X.Y.1 of its own.
    pub ip: Ipv4Addr,
    /// The genesis file for `geth init`.
    pub genesis: PathBuf,
    /// The network id (`--networkid`) for a `genesis` of one's own: [`CHAIN_ID`] unless
    /// told otherwise.
    pub network_id: u64,
    /// A chain file (go-ethereum's export format) to `geth import` after `geth init`:
    /// geth executes it, so it then serves its blocks with their receipts.
    pub import: Option<PathBuf>,
    /// A built-in network of geth's (`sepolia`, `mainnet`, …) instead of `genesis`: no
    /// `geth init`, and `--<network>` instead of `--networkid`.
    pub network: Option<String>,
    /// The node key (secp256k1 secret); `None`: geth makes one.
    pub node_key: Option<[u8; 32]>,
    /// More command-line arguments, after the harness's own.
    pub extra_args: Vec<String>,
    /// Run discv4 (without bootnodes; v5 stays off): for tests of discovery itself.
    pub discovery_v4: bool,
}

impl GethOptions {
    /// geth on `ip` with [`default_genesis`], its own node key and no extra arguments.
    pub fn new(ip: Ipv4Addr) -> Self {
        Self {
            ip,
            genesis: default_genesis(),
            network: None,
            network_id: CHAIN_ID,
            import: None,
            node_key: None,
            extra_args: Vec::new(),
            discovery_v4: false,
        }
    }
}

/// A block as geth reports it (`eth_getBlockByNumber`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockInfo {
    /// Block hash.
    pub hash: B256,
    /// Parent hash.
    pub parent_hash: B256,
    /// Number.
    pub number: u64,
    /// Timestamp.
    pub timestamp: u64,
    /// Hashes of its transactions, in order.
    pub transactions: Vec<B256>,
}

/// A block the harness made geth produce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockRef {
    /// Number.
    pub number: u64,
    /// Hash.
    pub hash: B256,
    /// Timestamp.
    pub timestamp: u64,
}

/// One of geth's peers (`admin_peers`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerInfo {
    /// geth's id for the peer: keccak256 of its public key, hex (the key itself is in
    /// `enode`).
    pub id: String,
    /// The peer's enode URL.
    pub enode: String,
    /// The peer's client name, from its Hello.
    pub name: String,
    /// The peer's address as geth sees it.
    pub remote_addr: Option<SocketAddr>,
    /// The eth version negotiated; `None` while the eth handshake (Status) is running
    /// or if the peer has no eth.
    pub eth_version: Option<u64>,
}

/// A running geth; killed when dropped.
pub struct Geth {
    child: Child,
    ip: Ipv4Addr,
    http: HttpClient,
    authrpc: SocketAddr,
    jwt_secret: [u8; 32],
    log: PathBuf,
    // Last: removed after the process is gone.
    _dir: tempfile::TempDir,
}

impl Drop for Geth {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Geth {
    /// `geth init` with the genesis in a temporary data folder, then geth on
    /// `options.ip` only: no discovery, no bootnodes, no IPC; HTTP JSON-RPC (admin, eth,
    /// net, txpool, debug) and the Engine API (JWT) on that address too. Returns once
    /// JSON-RPC answers; an error carries geth's last log lines.
    pub async fn start(options: GethOptions) -> anyhow::Result<Self> {
        let path = find_geth().ok_or_else(|| anyhow!("geth not found"))?;
        let dir = tempfile::tempdir()?;
        let data = dir.path().join("data");
        let ip = options.ip;

        let init = match &options.network {
            Some(_) => None,
            None => Some(
                tokio::process::Command::new(&path)
                    .arg("--datadir")
                    .arg(&data)
                    .arg("init")
                    .arg(&options.genesis)
                    .output()
                    .await
                    .with_context(|| format!("running {} init", path.display()))?,
            ),
        };
        if let Some(init) = init.filter(|init| !init.status.success()) {
            bail!(
                "geth init {} failed ({}): {}",
                options.genesis.display(),
                init.status,
                tail(&String::from_utf8_lossy(&init.stderr), 10)
            );
        }

        if let Some(chain) = &options.import {
            let import = tokio::process::Command::new(&path)
                .arg("--datadir")
                .arg(&data)
                .arg("import")
                .arg(chain)
                .output()
                .await
                .with_context(|| format!("running {} import", path.display()))?;
            if !import.status.success() {
                bail!(
                    "geth import {} failed ({}): {}",
                    chain.display(),
                    import.status,
                    tail(&String::from_utf8_lossy(&import.stderr), 10)
                );
            }
        }

        // The P2P settings have no flags for everything (bind one address, no v5, no
        // bootnodes at all): a config file, as the admission benchmark's geth.
        let config = dir.path().join("geth.toml");
        std::fs::write(
            &config,
            format!(
                "[Node.P2P]\nListenAddr = \"{ip}:0\"\nNoDiscovery = {nodiscovery}\nDiscoveryV4 = {v4}\n\
                 DiscoveryV5 = false\nBootstrapNodes = []\nBootstrapNodesV5 = []\nStaticNodes = []\n",
                nodiscovery = !options.discovery_v4,
                v4 = options.discovery_v4,
            ),
        )?;
        let jwt_secret: [u8; 32] = rand::random();
        let jwt_file = dir.path().join("jwt.hex");
        std::fs::write(&jwt_file, hex::encode(jwt_secret))?;

        let log = dir.path().join("geth.log");
        let log_file = std::fs::File::create(&log)?;
        let mut command = Command::new(&path);
        command
            .arg("--config")
            .arg(&config)
            .arg("--datadir")
            .arg(&data)
            .args((!options.discovery_v4).then_some("--nodiscover"))
            .args(["--ipcdisable", "--syncmode", "full"])
            .args(match &options.network {
                Some(network) => vec![format!("--{network}")],
                None => vec!["--networkid".into(), options.network_id.to_string()],
            })
            // Without it geth's node record (and admin_nodeInfo's enode) says 127.0.0.1,
            // its fallback, not the address it listens on.
            .args(["--nat", &format!("extip:{ip}")])
            .args(["--http", "--http.addr", &ip.to_string(), "--http.port", "0"])
            .args(["--http.api", "admin,eth,net,txpool,debug"])
            .args(["--authrpc.addr", &ip.to_string(), "--authrpc.port", "0"])
            .arg("--authrpc.jwtsecret")
            .arg(&jwt_file);
        if let Some(key) = options.node_key {
            command.args(["--nodekeyhex", &hex::encode(key)]);
        }
        let child = command
            .args(&options.extra_args)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("starting {}", path.display()))?;

        let mut geth = Self {
            child,
            ip,
            // Replaced below, once geth's log names the real endpoint.
            http: http_client(&format!("http://{ip}:0"), HeaderMap::new())?,
            authrpc: SocketAddr::from((ip, 0)),
            jwt_secret,
            log,
            _dir: dir,
        };
        let started = Instant::now();
        loop {
            if let Some(status) = geth.child.try_wait()? {
                bail!("geth exited ({status}): {}", geth.log_tail(10));
            }
            ensure!(
                started.elapsed() < START_DEADLINE,
                "geth not serving JSON-RPC after {} s: {}",
                START_DEADLINE.as_secs(),
                geth.log_tail(10)
            );
            if let (Some(http), Some(auth)) = (geth.endpoint(false), geth.endpoint(true)) {
                geth.http = http_client(&format!("http://{http}"), HeaderMap::new())?;
                geth.authrpc = auth;
                if geth.rpc::<Value>("eth_chainId", json!([])).await.is_ok() {
                    return Ok(geth);
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The endpoint of geth's HTTP server, the Engine API's if `auth`, from its log line
    /// `HTTP server started endpoint=IP:PORT auth=BOOL`.
    fn endpoint(&self, auth: bool) -> Option<SocketAddr> {
        let log = std::fs::read_to_string(&self.log).ok()?;
        let wanted = format!("auth={auth}");
        log.lines()
            .filter(|l| l.contains("HTTP server started"))
            .find(|l| l.split_whitespace().any(|field| field == wanted))?
            .split_whitespace()
            .find_map(|field| field.strip_prefix("endpoint="))?
            .parse()
            .ok()
    }

    /// Calls `method` over HTTP JSON-RPC with `params` (a JSON array, or null for none).
    pub async fn rpc<T: DeserializeOwned>(&self, method: &str, params: Value) -> anyhow::Result<T> {
        call(&self.http, method, params).await
    }

    /// Calls the Engine API's `method`, with a fresh JWT: geth refuses a token whose
    /// `iat` is more than 60 s off its clock.
    pub async fn engine<T: DeserializeOwned>(
        &self,
        method: &str,
        params: Value,
    ) -> anyhow::Result<T> {
        let mut headers = HeaderMap::new();
        let bearer = format!("Bearer {}", self.jwt()?);
        headers.insert("Authorization", HeaderValue::from_str(&bearer)?);
        let client = http_client(&format!("http://{}", self.authrpc), headers)?;
        call(&client, method, params).await
    }

    /// An Engine API token: HS256 over the JWT secret, claim `iat` = now.
    fn jwt(&self) -> anyhow::Result<String> {
        use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
        let iat = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
        Ok(encode(
            &Header::new(Algorithm::HS256),
            &json!({ "iat": iat }),
            &EncodingKey::from_secret(&self.jwt_secret),
        )?)
    }

    /// The address geth listens on (all its servers).
    pub const fn ip(&self) -> Ipv4Addr {
        self.ip
    }

    /// The Engine API's address (JWT-authenticated HTTP).
    pub const fn authrpc_addr(&self) -> SocketAddr {
        self.authrpc
    }

    /// The Engine API's JWT secret, for a test to hand a second client.
    pub const fn jwt_secret(&self) -> [u8; 32] {
        self.jwt_secret
    }

    /// The last `n` lines geth logged.
    pub fn log_tail(&self, n: usize) -> String {
        tail(&std::fs::read_to_string(&self.log).unwrap_or_default(), n)
    }

    /// geth's enode URL with its discv4 port (`?discport=`), for a discovery bootnode.
    pub async fn discovery_enode(&self) -> anyhow::Result<String> {
        let info: Value = self.rpc("admin_nodeInfo", json!([])).await?;
        let port = info["ports"]["discovery"]
            .as_u64()
            .filter(|p| *p != 0)
            .ok_or_else(|| anyhow!("admin_nodeInfo: no ports.discovery in {info}"))?;
        Ok(format!("{}?discport={port}", self.enode().await?))
    }

    /// geth's enode URL, `enode://PUBKEY@IP:PORT`, with the port its P2P server bound.
    pub async fn enode(&self) -> anyhow::Result<String> {
        let info: Value = self.rpc("admin_nodeInfo", json!([])).await?;
        let enode = str_field(&info, "enode")?;
        let pubkey = enode
            .strip_prefix("enode://")
            .and_then(|rest| rest.split_once('@'))
            .map(|(pubkey, _)| pubkey)
            .ok_or_else(|| anyhow!("admin_nodeInfo: enode {enode:?}"))?;
        let port = info["ports"]["listener"]
            .as_u64()
            .ok_or_else(|| anyhow!("admin_nodeInfo: no ports.listener in {info}"))?;
        Ok(format!("enode://{pubkey}@{}:{port}", self.ip))
    }

    /// Asks geth to dial `enode` (and keep redialling it: `admin_addPeer` makes it a
    /// static peer). Returns once the request is accepted, not once connected: poll
    /// [`Geth::peers`].
    pub async fn add_peer(&self, enode: &str) -> anyhow::Result<()> {
        let accepted: bool = self.rpc("admin_addPeer", json!([enode])).await?;
        ensure!(accepted, "admin_addPeer refused {enode}");
        Ok(())
    }

    /// geth's connected peers.
    pub async fn peers(&self) -> anyhow::Result<Vec<PeerInfo>> {
        let peers: Vec<Value> = self.rpc("admin_peers", json!([])).await?;
        peers
            .iter()
            .map(|p| {
                Ok(PeerInfo {
                    id: str_field(p, "id")?.to_string(),
                    enode: str_field(p, "enode")?.to_string(),
                    name: p["name"].as_str().unwrap_or_default().to_string(),
                    remote_addr: p["network"]["remoteAddress"]
                        .as_str()
                        .and_then(|a| a.parse().ok()),
                    // "handshake" (a string) until Status is exchanged.
                    eth_version: p["protocols"]["eth"]["version"].as_u64(),
                })
            })
            .collect()
    }

    /// The number of geth's head block.
    pub async fn block_number(&self) -> anyhow::Result<u64> {
        let n: String = self.rpc("eth_blockNumber", json!([])).await?;
        quantity(&n)
    }

    /// Canonical block `n`, or `None` if geth has none.
    pub async fn block_by_number(&self, n: u64) -> anyhow::Result<Option<BlockInfo>> {
        self.block(&format!("{n:#x}")).await
    }

    /// The block `tag` names (a hex number, `latest`, ...).
    async fn block(&self, tag: &str) -> anyhow::Result<Option<BlockInfo>> {
        let block: Value = self
            .rpc("eth_getBlockByNumber", json!([tag, false]))
            .await?;
        if block.is_null() {
            return Ok(None);
        }
        let transactions = block["transactions"]
            .as_array()
            .ok_or_else(|| anyhow!("block without transactions: {block}"))?
            .iter()
            .map(|h| h.as_str().unwrap_or_default().parse().map_err(Into::into))
            .collect::<anyhow::Result<_>>()?;
        Ok(Some(BlockInfo {
            hash: str_field(&block, "hash")?.parse()?,
            parent_hash: str_field(&block, "parentHash")?.parse()?,
            number: quantity(str_field(&block, "number")?)?,
            timestamp: quantity(str_field(&block, "timestamp")?)?,
            transactions,
        }))
    }

    /// Submits a signed transaction (EIP-2718 bytes); returns its hash.
    pub async fn send_raw_transaction(&self, tx: &[u8]) -> anyhow::Result<B256> {
        let raw = format!("0x{}", hex::encode(tx));
        let hash: String = self.rpc("eth_sendRawTransaction", json!([raw])).await?;
        Ok(hash.parse()?)
    }

    /// Whether the transaction is in geth's pool: known and not in a block.
    pub async fn pool_has(&self, tx_hash: B256) -> anyhow::Result<bool> {
        let tx: Value = self
            .rpc("eth_getTransactionByHash", json!([tx_hash.to_string()]))
            .await?;
        Ok(!tx.is_null() && tx["blockHash"].is_null())
    }

    /// Makes geth produce the next block, as a consensus client would (Osaka/BPO2
    /// Engine API): `engine_forkchoiceUpdatedV3` on the head with payload attributes,
    /// `engine_getPayloadV5`, `engine_newPayloadV4`, then `engine_forkchoiceUpdatedV3`
    /// making the block head, safe and finalized. Transactions in geth's pool are
    /// included (up to the gas limit). Errors unless geth calls every step VALID.
    pub async fn produce_block(&self) -> anyhow::Result<BlockRef> {
        let head = self
            .block("latest")
            .await?
            .ok_or_else(|| anyhow!("geth has no head block"))?;
        let number = head.number + 1;
        // Any values do for a chain with no beacon chain; these differ per block.
        let randao = B256::left_padding_from(&number.to_be_bytes());
        let beacon_root = B256::left_padding_from(&(u64::MAX - number).to_be_bytes());
        let attributes = json!({
            "timestamp": format!("{:#x}", head.timestamp + SLOT_SECS),
            "prevRandao": randao.to_string(),
            "suggestedFeeRecipient": Address::ZERO.to_string(),
            "withdrawals": [],
            "parentBeaconBlockRoot": beacon_root.to_string(),
        });
        let fcu: Value = self
            .engine(
                "engine_forkchoiceUpdatedV3",
                json!([forkchoice(head.hash), attributes]),
            )
            .await?;
        require_valid(&fcu["payloadStatus"], "forkchoiceUpdatedV3 (build)")?;
        let id = str_field(&fcu, "payloadId")?.to_string();

        // geth answers the update with an empty block ready and builds one with the
        // pool's transactions in the background; getPayload takes whichever it has and
        // stops building. Wait for the first full build (logged as "Updated payload").
        let built = format!("id={id} ");
        let waiting = Instant::now();
        while waiting.elapsed() < BUILD_DEADLINE
            && !self
                .log_tail(200)
                .lines()
                .any(|l| l.contains("Updated payload") && l.contains(&built))
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        let envelope: Value = self.engine("engine_getPayloadV5", json!([id])).await?;
        let payload = &envelope["executionPayload"];
        let hash: B256 = str_field(payload, "blockHash")?.parse()?;
        let block = BlockRef {
            number: quantity(str_field(payload, "blockNumber")?)?,
            hash,
            timestamp: quantity(str_field(payload, "timestamp")?)?,
        };
        let requests = match &envelope["executionRequests"] {
            Value::Null => json!([]),
            requests => requests.clone(),
        };
        let status: Value = self
            .engine(
                "engine_newPayloadV4",
                json!([payload, [], beacon_root.to_string(), requests]),
            )
            .await?;
        require_valid(&status, "newPayloadV4")?;
        let fcu: Value = self
            .engine(
                "engine_forkchoiceUpdatedV3",
                json!([forkchoice(hash), null]),
            )
            .await?;
        require_valid(&fcu["payloadStatus"], "forkchoiceUpdatedV3 (head)")?;
        Ok(block)
    }
}

/// A forkchoice state with `head` as head, safe and finalized block.
fn forkchoice(head: B256) -> Value {
    let head = head.to_string();
    json!({ "headBlockHash": head, "safeBlockHash": head, "finalizedBlockHash": head })
}

/// Errors unless `status` (a PayloadStatusV1) is VALID.
fn require_valid(status: &Value, step: &str) -> anyhow::Result<()> {
    match status["status"].as_str() {
        Some("VALID") => Ok(()),
        _ => bail!("engine_{step}: {status}"),
    }
}

fn http_client(url: &str, headers: HeaderMap) -> anyhow::Result<HttpClient> {
    Ok(HttpClientBuilder::default()
        .request_timeout(Duration::from_secs(30))
        .set_headers(headers)
        .build(url)?)
}

async fn call<T: DeserializeOwned>(
    client: &HttpClient,
    method: &str,
    params: Value,
) -> anyhow::Result<T> {
    let params = match params {
        Value::Array(params) => params,
        Value::Null => Vec::new(),
        other => bail!("{method}: params must be a JSON array, not {other}"),
    };
    client
        .request(method, params)
        .await
        .with_context(|| format!("JSON-RPC {method}"))
}

fn str_field<'a>(object: &'a Value, field: &str) -> anyhow::Result<&'a str> {
    object[field]
        .as_str()
        .ok_or_else(|| anyhow!("no {field:?} in {object}"))
}

/// A JSON-RPC quantity: `0x`-prefixed hex.
fn quantity(hex: &str) -> anyhow::Result<u64> {
    let digits = hex
        .strip_prefix("0x")
        .ok_or_else(|| anyhow!("quantity without 0x: {hex:?}"))?;
    Ok(u64::from_str_radix(digits, 16)?)
}

/// The last `n` lines of `text`, joined by " | " to fit an error message.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

/// go-ethereum's conformance suite data (`cmd/devp2p/internal/ethtest/testdata`: the
/// genesis, `chain.rlp`, `headblock.json`, …), from `$DEVMUX_ETHTEST_DATA` or the Go
/// module cache that `go install …@v1.17.10` filled (`go env GOMODCACHE`, else
/// `~/go/pkg/mod`).
pub fn eth_test_data() -> Option<PathBuf> {
    let in_module = |cache: PathBuf| {
        cache.join(format!(
            "github.com/ethereum/go-ethereum@v{GETH_VERSION}/cmd/devp2p/internal/ethtest/testdata"
        ))
    };
    let candidates = std::env::var_os("DEVMUX_ETHTEST_DATA")
        .map(PathBuf::from)
        .into_iter()
        .chain(
            Command::new("go")
                .args(["env", "GOMODCACHE"])
                .output()
                .ok()
                .filter(|out| out.status.success())
                .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
                .filter(|p| !p.as_os_str().is_empty())
                .map(in_module),
        )
        .chain(std::env::var_os("HOME").map(|home| in_module(Path::new(&home).join("go/pkg/mod"))));
    candidates
        .into_iter()
        .find(|dir| dir.join("chain.rlp").is_file())
}
