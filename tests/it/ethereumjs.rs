//! devmux against the ethereumjs client's discovery: `@ethereumjs/devp2p`'s DPT (its
//! discv4, which both of its servers use), from the npm registry (`tests/js`, installed
//! by the test with `npm ci` from the lock file), on loopback addresses of its own.
//! Skipped (one line) when Node.js or npm is missing.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use devmux_identity::NodeId;
use devmux_node::{DiscoveryProtocol, Node, NodeConfig};
use tokio::io::{AsyncBufReadExt, BufReader};

/// The DPT script, with its package installed (`npm ci` from the lock file, once, as
/// the go-libp2p test builds its peer); `None` without Node.js and npm.
fn dpt_script() -> Option<PathBuf> {
    let js = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("js");
    let runs = |tool: &str| {
        std::process::Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !runs("node") || !runs("npm") {
        return None;
    }
    if !js
        .join("node_modules/@ethereumjs/devp2p/package.json")
        .exists()
    {
        let out = std::process::Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&js)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "npm ci in tests/js: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Some(js.join("dpt.mjs"))
}

/// An ethereumjs DPT node bootstrapped from devmux's discv4 (devmux runs discv4 only)
/// and devmux find each other: devmux's id in the DPT's table, the DPT's in devmux's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ethereumjs_dpt_node_and_devmux_find_each_other_over_discv4() {
    let Some(script) = dpt_script() else {
        eprintln!("ethereumjs: node or npm not installed; skipped");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(NodeConfig {
        datadir: dir.path().join("devmux"),
        dev: true,
        addr: devmux_tests::next_loopback(),
        port: 0,
        discovery: vec![DiscoveryProtocol::V4],
        discovery_lookup_secs: 1,
        ..NodeConfig::default()
    })
    .await
    .unwrap();
    let v4 = node.discovery().unwrap().v4().unwrap();
    let udp = v4.udp_addr();
    let ours = v4.node_id().to_string();
    let mut dpt = tokio::process::Command::new("node")
        .arg(&script)
        .arg(devmux_tests::next_loopback().to_string())
        .arg(udp.ip().to_string())
        .arg(udp.port().to_string())
        .arg(&ours)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(dpt.stdout.take().unwrap()).lines();
    let found = tokio::time::timeout(Duration::from_secs(30), async {
        let mut last = String::new();
        while let Ok(Some(line)) = lines.next_line().await {
            let status: serde_json::Value = serde_json::from_str(&line).unwrap();
            let theirs: NodeId = status["id"].as_str().unwrap().parse().unwrap();
            let dpt_knows_us = status["peers"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p.as_str() == Some(ours.as_str()));
            if dpt_knows_us && v4.table_contains(&theirs) {
                return Ok(theirs);
            }
            last = line;
        }
        Err(last)
    })
    .await;
    match found {
        Ok(Ok(theirs)) => eprintln!("ethereumjs DPT {theirs:?} and devmux found each other"),
        other => panic!(
            "no mutual discovery: {other:?}; devmux's discv4 table: {:?}",
            v4.table_entries()
        ),
    }
    let _ = dpt.kill().await;
    node.stop().await;
}
