//! go-ethereum's own eth conformance suite (`devp2p rlpx eth-test`, v1.17.10) against a
//! devmux node. The suite's chain (`cmd/devp2p/internal/ethtest/testdata`: 600 blocks,
//! proof of stake from genesis, forks through Amsterdam) reaches devmux as the suite
//! means it to: `devmux import chain.rlp` (go-ethereum's export format) validates and
//! stores its headers and bodies. The file has no receipts (only execution makes them),
//! so devmux fetches them from a geth that imported and executed the same file, checking
//! each block's against its receipts root; geth is then stopped, and the suite talks to
//! devmux alone. Skipped (one line) when geth, devp2p or the suite's data are missing.
//!
//! devmux serves the suite its Engine API (the suite names its head with
//! `engine_forkchoiceUpdated` before its transaction tests). Tests that need account
//! state (invalid nonces and balances), more than 16 pooled transactions of one sender,
//! blob transactions in the pool, or eth/71–72 are not applicable and only reported;
//! every other test must pass.

use std::net::IpAddr;
use std::time::Duration;

use devmux_eth::alloy_primitives::B256;
use devmux_node::{Node, NodeConfig};
use devmux_tests::eventually;
use devmux_tests::geth::{self, Geth, GethOptions};

/// The suite's tests that need no execution state, and the two transaction tests a pool
/// without state passes: each must pass against devmux.
const MUST_PASS: [&str; 15] = [
    "Status",
    "MaliciousHandshake",
    "BlockRangeUpdateExpired",
    "BlockRangeUpdateFuture",
    "BlockRangeUpdateInvalid",
    "GetBlockHeaders",
    "GetNonexistentBlockHeaders",
    "SimultaneousRequests",
    "SameRequestID",
    "ZeroRequestID",
    "GetBlockBodies",
    "GetReceipts",
    "GetLargeReceipts",
    "Transaction",
    "NewPooledTxs",
];

#[tokio::test]
async fn go_ethereums_eth_test_suite_passes_its_stateless_tests_against_devmux() {
    let (Some(_), Some(devp2p), Some(data)) = (
        geth::find_geth(),
        geth::find_devp2p(),
        geth::eth_test_data(),
    ) else {
        return geth::skip("geth, devp2p and the ethtest data");
    };
    devmux_tests::init_tracing();
    let genesis = data.join("genesis.json");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&genesis).unwrap()).unwrap();
    let chain_id = config["config"]["chainId"].as_u64().unwrap();
    let head: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("headblock.json")).unwrap())
            .unwrap();
    let head_hash: B256 = head["hash"].as_str().unwrap().parse().unwrap();

    let IpAddr::V4(ip) = devmux_tests::next_loopback() else {
        unreachable!("next_loopback gives IPv4")
    };
    let geth = Geth::start(GethOptions {
        genesis: genesis.clone(),
        network_id: chain_id,
        import: Some(data.join("chain.rlp")),
        ..GethOptions::new(ip)
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    // The suite names its head through the Engine API before its transaction tests:
    // devmux serves it, with a secret of the test's.
    let secret = format!("0x{}", hex::encode(rand::random::<[u8; 32]>()));
    let jwt = dir.path().join("jwt.hex");
    std::fs::write(&jwt, &secret).unwrap();
    let addr = devmux_tests::next_loopback();
    let config = NodeConfig {
        datadir: dir.path().join("devmux"),
        genesis: Some(genesis),
        addr,
        port: 0,
        authrpc: Some((addr, 0).into()),
        jwtsecret: Some(jwt),
        no_discovery: true,
        static_peers: vec![geth.enode().await.unwrap()],
        ..NodeConfig::default()
    };
    // `devmux import chain.rlp`, as the binary does it.
    let imported = {
        let (config, file) = (config.clone(), data.join("chain.rlp"));
        tokio::task::spawn_blocking(move || {
            devmux_node::import_chain_file(&config, &file, |_| {}).map_err(|e| e.to_string())
        })
        .await
        .unwrap()
        .unwrap()
    };
    assert_eq!(imported.head.hash, head_hash, "{imported:?}");
    let node = Node::start(config).await.unwrap();
    let waiting = node.chain().pending_receipts_count();
    assert!(waiting > 0, "the chain file has blocks with transactions");
    let backfilled = eventually(Duration::from_secs(60), || {
        node.chain().pending_receipts_count() == 0
    })
    .await;
    assert!(
        backfilled,
        "devmux did not get the receipts of the imported chain from geth: {} of {waiting} wait; {:?}; geth log:\n{}",
        node.chain().pending_receipts_count(),
        node.syncer().stats(),
        geth.log_tail(20)
    );
    assert_eq!(node.chain().head().hash, head_hash);
    // The suite's chain has a block with over 10 MiB of receipts (`tx-largereceipt` in
    // txinfo.json): more than one message holds, so geth served it at eth/70 in parts
    // and devmux stitched them, checked against the block's receipts root.
    assert!(
        node.eth()
            .list()
            .iter()
            .all(|peer| peer.version() == devmux_eth::EthVersion::Eth70),
        "devmux and geth speak eth/70"
    );
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("txinfo.json")).unwrap()).unwrap();
    let large = info["tx-largereceipt"].as_u64().unwrap();
    let hash = node
        .chain()
        .canonical_hash_blocking(large)
        .unwrap()
        .unwrap();
    let block = node.chain().block(hash).await.unwrap().unwrap();
    let size: usize = block
        .receipts
        .iter()
        .map(devmux_eth::alloy_rlp::Encodable::length)
        .sum();
    assert!(
        size > devmux_eth::limits::MAX_MESSAGE_SIZE,
        "block {large}'s receipts are {size} bytes"
    );
    drop(geth);

    let out = tokio::time::timeout(
        Duration::from_secs(600),
        tokio::process::Command::new(devp2p)
            .args(["rlpx", "eth-test", "--tap", "--chain"])
            .arg(&data)
            .arg("--engineapi")
            .arg(format!("http://{}", node.engine_addr().unwrap()))
            .arg("--jwtsecret")
            .arg(&secret)
            .arg("--node")
            .arg(node.local_addr())
            .args(
                std::env::var("DEVMUX_ETHTEST_RUN")
                    .map(|pattern| vec!["--run".to_string(), pattern])
                    .unwrap_or_default(),
            )
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("eth-test did not finish in 600 s")
    .unwrap();
    let tap = String::from_utf8_lossy(&out.stdout);
    // TAP lines: `ok 3 Name` or `not ok 3 Name`, with the failure's log as `#` lines.
    let results: Vec<(bool, String)> = tap
        .lines()
        .filter_map(|line| {
            let (passed, rest) = match line.strip_prefix("not ok ") {
                Some(rest) => (false, rest),
                None => (true, line.strip_prefix("ok ")?),
            };
            let name = rest.split_whitespace().nth(1)?.to_string();
            Some((passed, name))
        })
        .collect();
    if std::env::var_os("DEVMUX_ETHTEST_TAP").is_some() {
        println!("{tap}");
    }
    println!("devp2p rlpx eth-test against devmux:");
    for (passed, name) in &results {
        let verdict = match (passed, MUST_PASS.contains(&name.as_str())) {
            (true, _) => "pass",
            (false, true) => "FAIL",
            (false, false) => "fail (not applicable: see README)",
        };
        println!("  {name}: {verdict}");
    }
    for name in MUST_PASS {
        let result = results.iter().find(|(_, n)| n == name);
        assert!(
            matches!(result, Some((true, _))),
            "{name}: {result:?}\n{tap}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    node.stop().await;
}
