//! The Engine API subset (`--authrpc`, `--jwtsecret`) and `--checkpoint`, on real sockets:
//! devmux nodes on the proof-of-stake chain of `tests/data/geth/genesis.json` (loaded
//! with `--genesis`), whose blocks the tests build (empty blocks that follow every
//! header rule) and give a serving node, while the test acts as the other node's
//! consensus client over HTTP with a JWT. Last, against go-ethereum when it is
//! installed: geth makes blocks, the test names geth's head to devmux, and devmux's head
//! becomes geth's.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use devmux_chain::{BlockRef, BlockWithReceipts, ChainSpec};
use devmux_eth::alloy_eips::eip1559::BaseFeeParams;
use devmux_eth::alloy_primitives::{Address, B256};
use devmux_eth::{BlockBody, Header};
use devmux_node::{Checkpoint, Node, NodeConfig};
use devmux_tests::geth::{self, Geth, GethOptions};
use devmux_tests::{eventually, next_loopback};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long sync between two local nodes may take.
const DEADLINE: Duration = Duration::from_secs(30);

const SECRET: [u8; 32] = [0x5e; 32];

/// The chain of `tests/data/geth/genesis.json`, as devmux reads it.
fn spec() -> ChainSpec {
    devmux_chain::genesis::load(geth::default_genesis()).unwrap()
}

/// An empty block on `parent`, 12 s later, told apart from its siblings by `tag` (its
/// beneficiary).
fn pos_block(parent: &Header, tag: u8) -> BlockWithReceipts {
    let header = Header {
        parent_hash: parent.hash_slow(),
        number: parent.number + 1,
        timestamp: parent.timestamp + 12,
        beneficiary: Address::with_last_byte(tag),
        gas_used: 0,
        base_fee_per_gas: parent.next_block_base_fee(BaseFeeParams::ethereum()),
        excess_blob_gas: Some(0),
        blob_gas_used: Some(0),
        ..parent.clone()
    };
    BlockWithReceipts {
        header,
        body: BlockBody {
            transactions: Vec::new(),
            ommers: Vec::new(),
            withdrawals: Some(Default::default()),
        },
        receipts: Vec::new(),
    }
}

/// `len` empty blocks on `parent`.
fn pos_chain(parent: &Header, len: usize, tag: u8) -> Vec<BlockWithReceipts> {
    let mut out: Vec<BlockWithReceipts> = Vec::new();
    for _ in 0..len {
        let block = pos_block(out.last().map_or(parent, |b| &b.header), tag);
        out.push(block);
    }
    out
}

/// A node on the genesis file's chain, on a loopback address of its own.
fn config(datadir: &Path, static_peers: Vec<String>) -> NodeConfig {
    NodeConfig {
        datadir: datadir.to_path_buf(),
        genesis: Some(geth::default_genesis()),
        addr: next_loopback(),
        port: 0,
        no_discovery: true,
        static_peers,
        ..NodeConfig::default()
    }
}

/// [`config`] with the Engine API on port 0 of the node's address, secret [`SECRET`].
fn engine_config(dir: &Path, name: &str, static_peers: Vec<String>) -> NodeConfig {
    let secret = dir.join(format!("{name}.jwt"));
    std::fs::write(&secret, format!("0x{}\n", hex::encode(SECRET))).unwrap();
    let base = config(&dir.join(name), static_peers);
    NodeConfig {
        authrpc: Some(SocketAddr::new(base.addr, 0)),
        jwtsecret: Some(secret),
        ..base
    }
}

async fn start(config: NodeConfig) -> Node {
    devmux_tests::init_tracing();
    Node::start(config).await.unwrap()
}

/// A serving node holding `blocks` (inserted in order).
async fn serving_node(dir: &Path, name: &str, blocks: &[&[BlockWithReceipts]]) -> Node {
    let node = start(config(&dir.join(name), Vec::new())).await;
    for batch in blocks {
        node.chain().insert_blocks(batch.to_vec()).await.unwrap();
    }
    node
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// An Engine API token: HS256 over `secret`, `iat` = now + `offset` seconds.
fn token(secret: &[u8], offset: i64) -> String {
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
    encode(
        &Header::new(Algorithm::HS256),
        &json!({ "iat": now_secs() + offset }),
        &EncodingKey::from_secret(secret),
    )
    .unwrap()
}

/// One HTTP/1.1 POST of `body` with `Authorization: Bearer <token>` if given; returns
/// the status code and the body.
async fn post(addr: SocketAddr, token: Option<&str>, body: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let request = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{auth}Connection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(DEADLINE, stream.read_to_end(&mut response))
        .await
        .unwrap()
        .unwrap();
    let response = String::from_utf8(response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    (status, body)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap();
        if size == 0 {
            break;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
    out
}

fn request(method: &str, params: Value) -> String {
    json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params }).to_string()
}

/// An Engine API call with a good token; returns the whole response object.
async fn engine(node: &Node, method: &str, params: Value) -> Value {
    let addr = node.engine_addr().unwrap();
    let (status, body) = post(addr, Some(&token(&SECRET, 0)), &request(method, params)).await;
    assert_eq!(status, 200, "{method}: {body}");
    serde_json::from_str(&body).unwrap()
}

fn state(head: B256, safe: B256, finalized: B256) -> Value {
    json!({
        "headBlockHash": head.to_string(),
        "safeBlockHash": safe.to_string(),
        "finalizedBlockHash": finalized.to_string(),
    })
}

/// `engine_forkchoiceUpdatedV{version}` naming `head` alone; returns the response.
async fn fcu(node: &Node, version: u8, head: B256) -> Value {
    let params = json!([state(head, B256::ZERO, B256::ZERO), null]);
    engine(node, &format!("engine_forkchoiceUpdatedV{version}"), params).await
}

/// Asserts `response` is a forkchoice result with `status` and `latest_valid`.
fn assert_status(response: &Value, status: &str, latest_valid: Option<B256>) {
    let expected = json!({
        "payloadStatus": {
            "status": status,
            "latestValidHash": latest_valid.map(|h| h.to_string()),
            "validationError": null,
        },
        "payloadId": null,
    });
    assert_eq!(response["result"], expected, "{response}");
}

fn error_code(response: &Value) -> i64 {
    response["error"]["code"]
        .as_i64()
        .unwrap_or_else(|| panic!("not an error: {response}"))
}

/// (a) Requests without a token, with a token made with another secret, or with an
/// `iat` two minutes off, get HTTP 401; with a good token the same request is served.
#[tokio::test]
async fn the_engine_api_answers_401_without_a_valid_jwt() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(engine_config(dir.path(), "a", Vec::new())).await;
    let addr = node.engine_addr().unwrap();
    assert!(addr.ip().is_loopback());
    let body = request(
        "engine_exchangeCapabilities",
        json!([["engine_newPayloadV4"]]),
    );

    for (what, token) in [
        ("no token", None),
        ("another secret", Some(token(&[0x11; 32], 0))),
        ("iat 2 minutes old", Some(token(&SECRET, -120))),
        ("iat 2 minutes ahead", Some(token(&SECRET, 120))),
        ("not a JWT", Some("abc.def.ghi".to_string())),
    ] {
        let (status, text) = post(addr, token.as_deref(), &body).await;
        assert_eq!(status, 401, "{what}: {text}");
        assert!(!text.contains("jsonrpc"), "{what}: nothing served: {text}");
    }
    // Within the 60 s the spec allows, either way.
    for offset in [0, -50, 50] {
        let (status, text) = post(addr, Some(&token(&SECRET, offset)), &body).await;
        assert_eq!(status, 200, "iat {offset:+} s: {text}");
        let response: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            response["result"],
            json!([
                "engine_forkchoiceUpdatedV1",
                "engine_forkchoiceUpdatedV2",
                "engine_forkchoiceUpdatedV3",
                "engine_forkchoiceUpdatedV4"
            ]),
            "{response}"
        );
    }
    node.stop().await;
}

/// (b) and (c): a node that synced a peer's chain by itself (no consensus client yet)
/// gets its head named: a stored block becomes the head at once; an unknown one on a
/// branch only the peer has answers SYNCING, is fetched from the peer and becomes the
/// head; a longer chain the peer serves afterwards is stored but does not move the head;
/// the finalized block then holds against a head below it.
#[tokio::test]
async fn forkchoice_updates_name_the_head_and_unknown_heads_are_fetched_from_peers() {
    let dir = tempfile::tempdir().unwrap();
    let genesis = spec().genesis;
    let main = pos_chain(&genesis, 20, 1);
    // A branch from block 3, shorter than the main chain: the peer's head is block 10.
    let side = pos_chain(&main[2].header, 4, 2);
    let peer = serving_node(dir.path(), "peer", &[&main[..10], &side]).await;
    assert_eq!(peer.chain().head().hash, main[9].hash());
    let node = start(engine_config(dir.path(), "cl", vec![peer.local_addr()])).await;

    // No consensus client yet: the longest chain, as before.
    let synced = eventually(DEADLINE, || node.chain().head().hash == main[9].hash()).await;
    assert!(synced, "head {:?}", node.chain().head());
    assert!(!node.chain().follows_consensus_layer());
    assert_eq!(
        node.chain().header_by_hash(side[3].hash()).await.unwrap(),
        None
    );

    // A stored block: the head at once (here back to block 5).
    let response = fcu(&node, 3, main[4].hash()).await;
    assert_status(&response, "VALID", Some(main[4].hash()));
    assert_eq!(node.chain().head().hash, main[4].hash());
    assert!(node.chain().follows_consensus_layer());

    // A block only the peer has, on its side branch: SYNCING, then the head.
    let response = fcu(&node, 1, side[3].hash()).await;
    assert_status(&response, "SYNCING", None);
    let fetched = eventually(DEADLINE, || node.chain().head().hash == side[3].hash()).await;
    assert!(fetched, "head {:?}", node.chain().head());
    assert_eq!(node.chain().head().number, 7);
    // Once stored, the same update is VALID.
    let response = fcu(&node, 2, side[3].hash()).await;
    assert_status(&response, "VALID", Some(side[3].hash()));

    // The peer's chain grows past ours and it says so: stored, the head stays.
    peer.chain()
        .insert_blocks(main[10..].to_vec())
        .await
        .unwrap();
    peer.syncer().announce_head().await;
    let stored = eventually(DEADLINE, || {
        node.chain()
            .header_by_hash_blocking(main[19].hash())
            .unwrap()
            .is_some()
    })
    .await;
    assert!(stored, "the longer chain was not synced");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        node.chain().head().hash,
        side[3].hash(),
        "the head did not move"
    );

    // Named with safe and finalized blocks: all three recorded.
    let params = json!([
        state(main[19].hash(), main[14].hash(), main[9].hash()),
        null
    ]);
    let response = engine(&node, "engine_forkchoiceUpdatedV3", params).await;
    assert_status(&response, "VALID", Some(main[19].hash()));
    assert_eq!(node.chain().head().hash, main[19].hash());
    let at = |n: usize| BlockRef {
        number: n as u64 + 1,
        hash: main[n].hash(),
    };
    assert_eq!(node.chain().finalized(), Some(at(9)));
    assert_eq!(node.chain().safe(), Some(at(14)));

    // The side branch leaves the chain below the finalized block 10: refused (-38002).
    let response = fcu(&node, 3, side[3].hash()).await;
    assert_eq!(error_code(&response), -38002, "{response}");
    assert_eq!(node.chain().head().hash, main[19].hash());
    // So is a safe block that is not an ancestor of the head.
    let params = json!([state(main[15].hash(), main[17].hash(), B256::ZERO), null]);
    let response = engine(&node, "engine_forkchoiceUpdatedV2", params).await;
    assert_eq!(error_code(&response), -38002, "{response}");
    assert_eq!(node.chain().head().hash, main[19].hash(), "nothing applied");
    // And the zero hash as head.
    let response = fcu(&node, 3, B256::ZERO).await;
    assert_eq!(error_code(&response), -38002, "{response}");

    // Payload attributes: the state is applied, then -38003 (devmux builds no payloads).
    let attributes = json!({
        "timestamp": format!("{:#x}", main[17].header.timestamp + 12),
        "prevRandao": B256::ZERO.to_string(),
        "suggestedFeeRecipient": Address::ZERO.to_string(),
        "withdrawals": [],
        "parentBeaconBlockRoot": B256::ZERO.to_string(),
    });
    let params = json!([state(main[17].hash(), B256::ZERO, B256::ZERO), attributes]);
    let response = engine(&node, "engine_forkchoiceUpdatedV3", params).await;
    assert_eq!(error_code(&response), -38003, "{response}");
    assert_eq!(node.chain().head().hash, main[17].hash());

    // go-ethereum's conformance suite's shape: V4 with null attributes and custody.
    let head = main[19].hash();
    let params = json!([state(head, head, head), null, null]);
    let response = engine(&node, "engine_forkchoiceUpdatedV4", params).await;
    assert_status(&response, "VALID", Some(head));
    assert_eq!(node.chain().finalized().map(|f| f.number), Some(20));

    node.stop().await;
    peer.stop().await;
}

/// A node whose checkpoint is another block than a peer's at that height does not sync
/// from that peer, and keeps it as a peer (no penalty); a store that already has another
/// block there refuses to start with that checkpoint.
#[tokio::test]
async fn a_checkpoint_keeps_the_node_off_another_chain() {
    let dir = tempfile::tempdir().unwrap();
    let genesis = spec().genesis;
    let main = pos_chain(&genesis, 10, 1);
    let other = pos_chain(&main[2].header, 3, 2);
    let peer = serving_node(dir.path(), "peer", &[&main]).await;

    // Our chain has `other[1]` at block 5; the peer's has main[4].
    let node = start(NodeConfig {
        checkpoint: Some(Checkpoint {
            number: 5,
            hash: other[1].hash(),
        }),
        ..config(&dir.path().join("pinned"), vec![peer.local_addr()])
    })
    .await;
    assert_eq!(node.chain().checkpoint().map(|c| c.number), Some(5));
    let connected = eventually(DEADLINE, || !node.eth().list().is_empty()).await;
    assert!(connected, "no eth session with the peer");
    // Time for a few sync attempts.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(node.chain().head().number, 0, "synced another chain");
    assert_eq!(
        node.chain().header_by_hash(main[0].hash()).await.unwrap(),
        None
    );
    let peers = node.network().peers();
    assert_eq!(peers.len(), 1, "the peer is still connected");
    assert!(peers[0].reputation >= 0, "penalised: {:?}", peers[0]);
    node.stop().await;

    // A node that synced the peer's chain, restarted with that checkpoint: refused.
    let datadir = dir.path().join("synced");
    let synced = start(config(&datadir, vec![peer.local_addr()])).await;
    let done = eventually(DEADLINE, || synced.chain().head().hash == main[9].hash()).await;
    assert!(done, "head {:?}", synced.chain().head());
    synced.stop().await;
    let err = Node::start(NodeConfig {
        checkpoint: Some(Checkpoint {
            number: 5,
            hash: other[1].hash(),
        }),
        ..config(&datadir, Vec::new())
    })
    .await
    .unwrap_err();
    let line = devmux_node::error_line(&err);
    assert!(
        line.contains("checkpoint") && line.contains("another chain") && !line.contains('\n'),
        "{line}"
    );
    // With the block it has there, it starts.
    let node = start(NodeConfig {
        checkpoint: Some(Checkpoint {
            number: 5,
            hash: main[4].hash(),
        }),
        ..config(&datadir, Vec::new())
    })
    .await;
    assert_eq!(node.chain().head().hash, main[9].hash());
    node.stop().await;
    peer.stop().await;
}

/// The Engine API is for proof-of-stake chains; a malformed secret file stops the start
/// with one line.
#[tokio::test]
async fn the_engine_api_is_refused_on_the_devnet_and_with_a_malformed_secret() {
    let dir = tempfile::tempdir().unwrap();
    let mut devnet = engine_config(dir.path(), "dev", Vec::new());
    devnet.genesis = None;
    devnet.dev = true;
    let err = Node::start(devnet).await.unwrap_err().to_string();
    assert!(err.contains("proof-of-stake"), "{err}");

    let bad: PathBuf = dir.path().join("malformed.jwt");
    std::fs::write(&bad, "not hex\n").unwrap();
    let config = NodeConfig {
        jwtsecret: Some(bad),
        ..engine_config(dir.path(), "bad", Vec::new())
    };
    let err = devmux_node::error_line(&Node::start(config).await.unwrap_err());
    assert!(
        err.contains("jwtsecret") && err.contains("64 hex digits") && !err.contains('\n'),
        "{err}"
    );
}

/// End to end with go-ethereum: geth makes blocks (the test is its consensus client),
/// the test names geth's head to devmux through devmux's Engine API, and devmux's head
/// is geth's; the same after geth makes more, with a finalized block.
#[tokio::test]
async fn devmux_follows_the_head_geth_makes_when_told_through_the_engine_api() {
    if geth::find_geth().is_none() {
        return geth::skip("geth");
    }
    let IpAddr::V4(ip) = next_loopback() else {
        unreachable!("next_loopback gives IPv4")
    };
    let geth = Geth::start(GethOptions::new(ip)).await.unwrap();
    let mut made = Vec::new();
    for _ in 0..3 {
        made.push(geth.produce_block().await.unwrap());
    }
    let dir = tempfile::tempdir().unwrap();
    let node = start(engine_config(
        dir.path(),
        "devmux",
        vec![geth.enode().await.unwrap()],
    ))
    .await;
    assert_eq!(
        node.chain().genesis_hash(),
        geth::default_genesis_hash().unwrap()
    );

    let head = made[2].hash;
    let response = fcu(&node, 3, head).await;
    let status = response["result"]["payloadStatus"]["status"].clone();
    assert!(status == "VALID" || status == "SYNCING", "{response}");
    let followed = eventually(DEADLINE, || node.chain().head().hash == head).await;
    assert!(
        followed,
        "devmux head {:?}, geth head {head}; geth log:\n{}",
        node.chain().head(),
        geth.log_tail(30)
    );

    for _ in 0..3 {
        made.push(geth.produce_block().await.unwrap());
    }
    let head = made[5].hash;
    let params = json!([state(head, made[4].hash, made[2].hash), null]);
    let response = engine(&node, "engine_forkchoiceUpdatedV3", params.clone()).await;
    assert!(response.get("error").is_none(), "{response}");
    let followed = eventually(DEADLINE, || node.chain().head().hash == head).await;
    assert!(
        followed,
        "devmux head {:?}, geth head {head}; geth log:\n{}",
        node.chain().head(),
        geth.log_tail(30)
    );
    assert_eq!(
        node.chain().head().hash,
        geth.block_by_number(6).await.unwrap().unwrap().hash
    );
    // Stored now: the same update is VALID, with its finalized block recorded.
    let response = engine(&node, "engine_forkchoiceUpdatedV3", params).await;
    assert_status(&response, "VALID", Some(head));
    assert_eq!(node.chain().finalized().map(|f| f.number), Some(3));
    node.stop().await;
}
