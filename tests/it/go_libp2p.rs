//! Interop with go-libp2p (TCP + Noise + yamux, ping, identify, an echo stream), in
//! both directions, against `tests/go-libp2p-peer` (a small Go program using go-libp2p
//! from the Go module proxy). The test builds it with `go build` once per run; Go's
//! build cache makes later runs quick.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use devmux_network::{Message, Registrar};
use devmux_tests::{echo, start};

/// Builds the Go peer (once) and returns its path.
fn go_peer() -> &'static PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("go-libp2p-peer");
        let out =
            std::env::temp_dir().join(format!("devmux-go-libp2p-peer-{}", std::process::id()));
        let status = Command::new("go")
            .args(["build", "-o"])
            .arg(&out)
            .arg(".")
            .current_dir(&src)
            .status()
            .expect("the Go toolchain (`go`) runs: the go-libp2p interop test needs it");
        assert!(status.success(), "go build of tests/go-libp2p-peer failed");
        out
    })
}

/// The Go peer listening; killed when dropped.
struct Listening {
    child: Child,
    addr: String,
}

impl Drop for Listening {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn go_listen() -> Listening {
    let mut child = Command::new(go_peer())
        .arg("listen")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the go-libp2p peer");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("/ip4/127.0.0.1/tcp/"), "{line:?}");
    Listening {
        child,
        addr: line.trim().to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_libp2p_dials_devmux() {
    let peer = go_peer().clone();
    let mut registrar = Registrar::new();
    registrar.request("/demo/echo/1.0.0", echo).unwrap();
    let node = start(true, registrar).await;
    let addr = node.local_addr();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(peer).args(["dial", &addr]).output().unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(seen["peer"], node.local_peer_id().to_string());
    assert!(
        seen["agent"].as_str().unwrap().starts_with("devmux/"),
        "{seen}"
    );
    let protocols = seen["protocols"].as_array().unwrap();
    for p in ["/ipfs/ping/1.0.0", "/ipfs/id/1.0.0", "/demo/echo/1.0.0"] {
        assert!(protocols.iter().any(|x| x == p), "{p} missing: {seen}");
    }
    assert!(seen["rtt_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(
        seen["echo_ok"], true,
        "a 200 kB framed message came back unchanged"
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devmux_dials_go_libp2p() {
    let go = tokio::task::spawn_blocking(go_listen).await.unwrap();
    let node = start(true, Registrar::new()).await;
    let peer = node.dial(&go.addr).await.expect("devmux dials go-libp2p");
    assert_eq!(Some(peer.to_string().as_str()), go.addr.rsplit('/').next());
    let rtt = node.ping(&peer).await.expect("ping go-libp2p");
    assert!(rtt < Duration::from_secs(2));
    let info = node.identify(&peer).await.expect("identify go-libp2p");
    assert_eq!(info.public_key.to_peer_id(), peer);
    assert_eq!(info.agent_version, "go-libp2p-peer/devmux-test");
    assert!(
        info.protocols.iter().any(|p| p == "/ipfs/ping/1.0.0"),
        "{info:?}"
    );
    assert!(
        info.protocols.iter().any(|p| p == "/demo/echo/1.0.0"),
        "{info:?}"
    );
    let (mut stream, _) = node.open(&peer, &["/demo/echo/1.0.0"]).await.unwrap();
    for payload in [b"hi".to_vec(), vec![3u8; 200_000]] {
        stream.send(Message::new(5, payload.clone())).await.unwrap();
        let back = stream.next().await.unwrap().unwrap();
        assert_eq!((back.code, &back.payload[..]), (5, &payload[..]));
    }
    node.shutdown().await;
    drop(go);
}
