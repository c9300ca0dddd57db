//! go-ethereum's own eth conformance suite (`devp2p rlpx eth-test`, v1.17.10) against a
//! devmux node. The suite's chain (`cmd/devp2p/internal/ethtest/testdata`: 600 blocks,
//! proof of stake from genesis, forks through Amsterdam) reaches devmux the way a real
//! node gets it: geth imports and executes `chain.rlp`, and devmux syncs it from geth
//! over RLPx, validating every header, body and receipt; geth is then stopped, and the
//! suite talks to devmux alone. Skipped (one line) when geth, devp2p or the suite's data
//! are missing.
//!
//! The suite's transaction and blob tests need a node that executes transactions (they
//! check that a valid transaction is accepted and an invalid one is not, against
//! account state) or speaks eth/71–72: devmux does neither, so they are not applicable
//! and only reported. Every test that needs no execution state must pass.

use std::net::IpAddr;
use std::time::Duration;

use devmux_eth::alloy_primitives::B256;
use devmux_node::{Node, NodeConfig};
use devmux_tests::eventually;
use devmux_tests::geth::{self, Geth, GethOptions};

/// The suite's tests that need no execution state: each must pass against devmux.
const MUST_PASS: [&str; 13] = [
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
    let node = Node::start(NodeConfig {
        datadir: dir.path().join("devmux"),
        genesis: Some(genesis),
        addr: devmux_tests::next_loopback(),
        port: 0,
        no_discovery: true,
        static_peers: vec![geth.enode().await.unwrap()],
        ..NodeConfig::default()
    })
    .await
    .unwrap();
    let synced = eventually(Duration::from_secs(30), || {
        node.chain().head().hash == head_hash
    })
    .await;
    assert!(
        synced,
        "devmux did not sync the suite's chain from geth: head {:?}; geth log:\n{}",
        node.chain().head(),
        geth.log_tail(20)
    );
    drop(geth);

    let out = tokio::time::timeout(
        Duration::from_secs(600),
        tokio::process::Command::new(devp2p)
            .args(["rlpx", "eth-test", "--tap", "--chain"])
            .arg(&data)
            // The suite's transaction tests would name the head through the Engine API;
            // they are not applicable here, and nothing listens at this address.
            .args(["--engineapi", "http://127.0.0.1:9", "--jwtsecret"])
            .arg(format!("0x{}", "00".repeat(32)))
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
            (false, false) => "fail (not applicable: needs execution or eth/71-72)",
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
