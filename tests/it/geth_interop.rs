//! devmux against go-ethereum v1.17.10 on real sockets: both dial each other, Status
//! is accepted both ways at eth/69 and at eth/70, devmux downloads and validates geth's
//! post-merge chain, and transactions cross in both directions. geth runs on the
//! private proof-of-stake chain of `tests/data/geth/genesis.json`, which devmux loads
//! with `--genesis`; the test is geth's consensus client. Skipped (one line) when geth
//! is not installed.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use devmux_chain::devnet::{dev_key, transfer_on};
use devmux_eth::alloy_eips::eip2718::Encodable2718;
use devmux_eth::alloy_primitives::{B256, U256};
use devmux_eth::{EthVersion, TransactionSigned};
use devmux_node::{Node, NodeConfig};
use devmux_tests::eventually;
use devmux_tests::geth::{self, Geth, GethOptions, CHAIN_ID};

/// How long a connection and its Status exchange may take, and sync of a short chain.
const DEADLINE: Duration = Duration::from_secs(30);

fn loopback() -> Ipv4Addr {
    match devmux_tests::next_loopback() {
        IpAddr::V4(ip) => ip,
        IpAddr::V6(ip) => panic!("next_loopback gave {ip}"),
    }
}

async fn start_geth() -> Option<Geth> {
    if geth::find_geth().is_none() {
        geth::skip("geth");
        return None;
    }
    Some(Geth::start(GethOptions::new(loopback())).await.unwrap())
}

/// A devmux RLPx node on geth's chain, offering `versions`, dialling `static_peers`.
async fn start_devmux(
    dir: &tempfile::TempDir,
    name: &str,
    versions: &[u8],
    static_peers: Vec<String>,
) -> Node {
    Node::start(NodeConfig {
        datadir: dir.path().join(name),
        genesis: Some(geth::default_genesis()),
        eth_versions: versions.to_vec(),
        addr: IpAddr::V4(loopback()),
        port: 0,
        no_discovery: true,
        static_peers,
        ..NodeConfig::default()
    })
    .await
    .unwrap()
}

/// A transfer of 1 wei from dev key `from` (funded in geth's genesis) with `nonce`.
fn transfer(from: usize, nonce: u64) -> TransactionSigned {
    let to = dev_key((from + 1) % 4).unwrap().address();
    transfer_on(CHAIN_ID, &dev_key(from).unwrap(), nonce, to, U256::from(1))
}

/// The eth version of devmux's session with geth, once Status was exchanged.
fn devmux_session(node: &Node) -> Option<EthVersion> {
    node.eth().list().first().map(|peer| peer.version())
}

/// The eth version geth reports for its session with the node whose enode starts so.
async fn geth_session(geth: &Geth, node: &Node) -> Option<u64> {
    let id = node.key().node_id().to_string();
    geth.peers()
        .await
        .ok()?
        .into_iter()
        .find(|p| p.enode.contains(&id) || p.id == id)
        .and_then(|p| p.eth_version)
}

async fn wait_geth_session(geth: &Geth, node: &Node, version: u64) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if geth_session(geth, node).await == Some(version)
            && devmux_session(node).map(|v| u64::from(v.as_u8())) == Some(version)
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no eth/{version} session both ways: devmux sees {:?}, geth {:?}; geth log:\n{}",
            devmux_session(node),
            geth.peers().await.map(|p| format!("{p:?}")),
            geth.log_tail(30)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// devmux dials geth at eth/69; geth dials devmux (`admin_addPeer`) at eth/70. Each
/// side accepts the other's Status: same genesis, same fork id at the head, same
/// network id.
#[tokio::test]
async fn devmux_and_geth_accept_each_others_status_at_eth_69_and_eth_70() {
    let Some(geth) = start_geth().await else {
        return;
    };
    geth.produce_block().await.unwrap();
    let dir = tempfile::tempdir().unwrap();

    let dialer = start_devmux(&dir, "eth69", &[69], vec![geth.enode().await.unwrap()]).await;
    wait_geth_session(&geth, &dialer, 69).await;

    let dialed = start_devmux(&dir, "eth70", &[70], Vec::new()).await;
    geth.add_peer(&dialed.local_addr()).await.unwrap();
    wait_geth_session(&geth, &dialed, 70).await;

    // Both sessions stay up: neither side found fault with the other's Status or
    // with what followed it (devmux's BlockRangeUpdate, geth's requests).
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(devmux_session(&dialer), Some(EthVersion::Eth69));
    assert_eq!(devmux_session(&dialed), Some(EthVersion::Eth70));
    assert_eq!(
        geth.peers().await.unwrap().len(),
        2,
        "{}",
        geth.log_tail(30)
    );
    dialer.stop().await;
    dialed.stop().await;
}

/// geth makes 12 blocks, some with transfers; a devmux node that dials it downloads
/// every header, body and receipt up to geth's head and validates them by the
/// proof-of-stake rules. Then a transaction given to devmux reaches geth's pool, and one
/// given to geth reaches devmux's.
#[tokio::test]
async fn devmux_syncs_geths_chain_and_transactions_cross_both_ways() {
    let Some(geth) = start_geth().await else {
        return;
    };
    let mut with_txs = Vec::new();
    for n in 0..12u64 {
        if n % 3 == 0 {
            let tx = transfer(0, n / 3);
            with_txs.push(geth.send_raw_transaction(&tx.encoded_2718()).await.unwrap());
        }
        geth.produce_block().await.unwrap();
    }
    let head = geth.block_by_number(12).await.unwrap().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let node = start_devmux(&dir, "sync", &[], vec![geth.enode().await.unwrap()]).await;
    assert_eq!(
        node.chain().genesis_hash(),
        geth::default_genesis_hash().unwrap(),
        "devmux computes geth's genesis hash from the same file"
    );
    let synced = eventually(DEADLINE, || node.chain().head().hash == head.hash).await;
    assert!(
        synced,
        "devmux head {:?}, geth head {} {}; geth log:\n{}",
        node.chain().head(),
        head.number,
        head.hash,
        geth.log_tail(30)
    );
    // Every block of geth's is stored with its body and receipts.
    for n in 1..=12u64 {
        let ours = node.chain().canonical_hash_blocking(n).unwrap().unwrap();
        let theirs = geth.block_by_number(n).await.unwrap().unwrap();
        assert_eq!(ours, theirs.hash, "block {n}");
        let block = node.chain().block(ours).await.unwrap().unwrap();
        let hashes: Vec<B256> = block
            .body
            .transactions
            .iter()
            .map(|t| *t.tx_hash())
            .collect();
        assert_eq!(hashes, theirs.transactions, "block {n}'s transactions");
        assert_eq!(block.receipts.len(), hashes.len(), "block {n}'s receipts");
    }
    let mined: Vec<B256> = (1..=12u64)
        .map(|n| node.chain().canonical_hash_blocking(n).unwrap().unwrap())
        .collect();
    assert_eq!(mined.len(), 12);
    assert_eq!(with_txs.len(), 4);

    // devmux → geth: dev key 1's first transfer, given to devmux's pool.
    let to_geth = transfer(1, 0);
    let hash = node
        .pool()
        .add_local(to_geth.clone().try_into_pooled().unwrap())
        .unwrap();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !geth.pool_has(hash).await.unwrap() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "geth's pool never got {hash}; geth log:\n{}",
            geth.log_tail(30)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // geth → devmux: dev key 2's first transfer, given to geth.
    let to_devmux = transfer(2, 0);
    let hash = geth
        .send_raw_transaction(&to_devmux.encoded_2718())
        .await
        .unwrap();
    let arrived = eventually(DEADLINE, || node.pool().contains(&hash)).await;
    assert!(
        arrived,
        "devmux's pool never got {hash}; geth log:\n{}",
        geth.log_tail(30)
    );
    node.stop().await;
}

/// go-ethereum's `devp2p rlpx ping` completes the ECIES handshake with devmux and reads
/// its Hello, with devmux's name and its eth capabilities in it.
#[tokio::test]
async fn go_ethereum_devp2p_rlpx_ping_reads_devmux_hello() {
    let Some(devp2p) = geth::find_devp2p() else {
        return geth::skip("devp2p");
    };
    let dir = tempfile::tempdir().unwrap();
    let node = start_devmux(&dir, "ping", &[69, 70], Vec::new()).await;
    let out = tokio::time::timeout(
        DEADLINE,
        tokio::process::Command::new(devp2p)
            .args(["rlpx", "ping", &node.local_addr()])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("devp2p rlpx ping timed out")
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}: {stdout} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("Name:devmux/"), "{stdout}");
    assert!(stdout.contains("Caps:[eth/70 eth/69]"), "{stdout}");
    node.stop().await;
}

/// On the public networks' own genesis (no discovery, nothing synced): devmux
/// `--network sepolia` dials geth `--sepolia`, and `--network mainnet` geth `--mainnet`;
/// each accepts the other's Status, so genesis hash, network id and the fork id at
/// genesis (by block and by timestamp, EIP-2124 and EIP-6122) agree with go-ethereum's.
#[tokio::test]
async fn devmux_and_geth_agree_on_sepolia_and_mainnet_at_genesis() {
    if geth::find_geth().is_none() {
        return geth::skip("geth");
    }
    for network in ["sepolia", "mainnet"] {
        let geth = Geth::start(GethOptions {
            network: Some(network.into()),
            ..GethOptions::new(loopback())
        })
        .await
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let node = Node::start(NodeConfig {
            datadir: dir.path().join(network),
            network: Some(network.into()),
            addr: IpAddr::V4(loopback()),
            port: 0,
            no_discovery: true,
            static_peers: vec![geth.enode().await.unwrap()],
            ..NodeConfig::default()
        })
        .await
        .unwrap();
        let genesis = geth.block_by_number(0).await.unwrap().unwrap();
        assert_eq!(node.chain().genesis_hash(), genesis.hash, "{network}");
        let deadline = tokio::time::Instant::now() + DEADLINE;
        while geth_session(&geth, &node).await.is_none() || devmux_session(&node).is_none() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{network}: no eth session both ways; geth log:\n{}",
                geth.log_tail(30)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // geth v1.17 speaks eth/69 and later: the highest both offer is eth/70.
        assert_eq!(devmux_session(&node), Some(EthVersion::Eth70), "{network}");
        node.stop().await;
    }
}

/// devmux finds go-ethereum through discv4 alone: geth runs discv4 (no discv5, no
/// bootnodes), devmux runs discv4 only with geth's enode as its one bootnode and no
/// static peer. devmux bonds with geth, fetches its record (EIP-868), finds the `eth`
/// entry compatible and dials it over RLPx; the eth session comes up both ways.
#[tokio::test]
async fn devmux_finds_geth_through_discv4_alone() {
    if geth::find_geth().is_none() {
        return geth::skip("geth");
    }
    let geth = Geth::start(GethOptions {
        discovery_v4: true,
        ..GethOptions::new(loopback())
    })
    .await
    .unwrap();
    let bootnode = geth.discovery_enode().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(NodeConfig {
        datadir: dir.path().join("v4"),
        genesis: Some(geth::default_genesis()),
        addr: IpAddr::V4(loopback()),
        port: 0,
        discovery: vec![devmux_node::DiscoveryProtocol::V4],
        bootnodes: vec![bootnode],
        discovery_lookup_secs: 1,
        ..NodeConfig::default()
    })
    .await
    .unwrap();
    assert!(node.config().static_peers.is_empty());
    wait_geth_session(&geth, &node, 70).await;
    let v4 = node.discovery().unwrap().v4().unwrap();
    assert!(v4.table_size() >= 1, "geth is in devmux's discv4 table");
    node.stop().await;
}
