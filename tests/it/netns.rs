//! Discovery that cannot be steered, between hosts of public scope: the test makes two
//! network namespaces of its own joined by a veth pair, `dmx-node` (198.51.100.1, a
//! devmux node on the devnet, discv5 only) and `dmx-rogue` (198.51.100.254, the default
//! route of the first; also 10.0.0.1, 192.168.1.1 and 169.254.1.1). In `dmx-rogue` a
//! rogue discv5 node serves NODES answers full of valid, signed, fork-compatible
//! records pointing at private, link-local and loopback addresses where the test
//! listens, and one at a public address (the control). The node dials the control and
//! never one of the others. Needs root and `ip netns`; skipped with one line
//! otherwise. Only the test's own namespaces are ever addressed.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use devmux_chain::ChainSpec;
use devmux_discovery::{Discovery, DiscoveryConfig, V5Limits};
use devmux_eth::Head;
use devmux_network::NodeKey;
use devmux_node::{DiscoveryProtocol, Node, NodeConfig};

const NODE_NS: &str = "dmx-node";
const ROGUE_NS: &str = "dmx-rogue";
const NODE_IP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const ROGUE_IP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 254);
/// Addresses of `dmx-rogue` that a public node must never dial.
const LOCAL_TARGETS: [Ipv4Addr; 3] = [
    Ipv4Addr::new(10, 0, 0, 1),
    Ipv4Addr::new(192, 168, 1, 1),
    Ipv4Addr::new(169, 254, 1, 1),
];
const TARGET_PORT: u16 = 30303;
const CONTROL_PORT: u16 = 30304;

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The two namespaces and the veth between them; deleted on drop.
struct Namespaces;

impl Namespaces {
    fn create() -> Option<Self> {
        for ns in [NODE_NS, ROGUE_NS] {
            let _ = ip(&["netns", "del", ns]);
        }
        if !ip(&["netns", "add", NODE_NS]) {
            return None;
        }
        let made = Self;
        let steps: Vec<Vec<String>> = [
            format!("netns add {ROGUE_NS}"),
            format!("link add dmx-a netns {NODE_NS} type veth peer name dmx-b netns {ROGUE_NS}"),
            format!("-n {NODE_NS} addr add {NODE_IP}/24 dev dmx-a"),
            format!("-n {NODE_NS} link set dmx-a up"),
            format!("-n {NODE_NS} link set lo up"),
            format!("-n {NODE_NS} route add default via {ROGUE_IP}"),
            format!("-n {ROGUE_NS} addr add {ROGUE_IP}/24 dev dmx-b"),
            format!("-n {ROGUE_NS} link set dmx-b up"),
            format!("-n {ROGUE_NS} link set lo up"),
        ]
        .into_iter()
        .chain(
            LOCAL_TARGETS
                .iter()
                .map(|t| format!("-n {ROGUE_NS} addr add {t}/32 dev dmx-b")),
        )
        .map(|s| s.split_whitespace().map(String::from).collect())
        .collect();
        for step in steps {
            let args: Vec<&str> = step.iter().map(String::as_str).collect();
            if !ip(&args) {
                eprintln!("netns: `ip {}` failed", args.join(" "));
                return None;
            }
        }
        Some(made)
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in [NODE_NS, ROGUE_NS] {
            let _ = ip(&["netns", "del", ns]);
        }
    }
}

/// Runs `body` on a thread of its own inside namespace `ns`, on a runtime of its own
/// (threads the runtime starts inherit the namespace, and so do the sockets they open).
/// `body` runs until `stop` says so.
fn in_netns<F, Fut>(ns: &'static str, body: F) -> std::thread::JoinHandle<()>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    std::thread::spawn(move || {
        let file = std::fs::File::open(format!("/var/run/netns/{ns}")).unwrap();
        // SAFETY: setns on this thread only, with a namespace fd we hold open.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {ns}: {}", std::io::Error::last_os_error());
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
            .block_on(body());
    })
}

/// Counts TCP connections accepted on `addr` (bound before this returns).
async fn count_connections(addr: SocketAddr, count: Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::Relaxed);
            drop(socket);
        }
    });
}

/// A signed record of a throwaway key at `ip`, RLPx on TCP `port`, following `spec`'s
/// fork at genesis: everything a dialer accepts, but the address.
fn record_at(ip: Ipv4Addr, port: u16, spec: &ChainSpec) -> devmux_discovery::Enr {
    let fork = spec
        .fork_filter(Head {
            number: 0,
            timestamp: spec.genesis.timestamp,
        })
        .current();
    let config = DiscoveryConfig::default()
        .with_listen(SocketAddr::new(ip.into(), 30303))
        .with_rlpx_tcp_port(Some(port))
        .with_eth(fork);
    devmux_discovery::local_enr(&config, &NodeKey::generate()).unwrap()
}

/// Until `stop` says so (or its sender is gone).
async fn wait(stop: &mpsc::Receiver<()>) {
    while stop.try_recv() == Err(mpsc::TryRecvError::Empty) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn a_public_node_dials_no_private_loopback_or_link_local_record() {
    let Some(_namespaces) = Namespaces::create() else {
        eprintln!("netns: network namespaces unavailable (root and `ip netns` needed); skipped");
        return;
    };
    devmux_tests::init_tracing();
    let spec = ChainSpec::devnet();
    let attempts: Vec<Arc<AtomicUsize>> = (0..5).map(|_| Arc::default()).collect();
    let (control, loopback) = (attempts[3].clone(), attempts[4].clone());

    // The rogue: a discv5 node whose table holds the bait (it answers NODES from its
    // table, as any discv5 node does), and listeners on every address the bait names.
    let (rogue_tx, rogue_rx) = mpsc::channel();
    let (stop_rogue, rogue_stop) = mpsc::channel();
    let counters = attempts.clone();
    let bait_spec = spec.clone();
    let rogue = in_netns(ROGUE_NS, move || async move {
        for (target, count) in LOCAL_TARGETS.iter().zip(&counters) {
            count_connections((*target, TARGET_PORT).into(), count.clone()).await;
        }
        count_connections((ROGUE_IP, CONTROL_PORT).into(), counters[3].clone()).await;
        let config = DiscoveryConfig::default()
            .with_listen(SocketAddr::new(ROGUE_IP.into(), 0))
            .with_v5_limits(V5Limits {
                packet_filter: false,
                ip_limit: false,
                ..V5Limits::default()
            });
        let rogue = Discovery::start(config, &NodeKey::generate())
            .await
            .unwrap();
        // Two of each: with the control, 9 records, within the 16 one NODES answer
        // holds, so every answer for the top distances carries the control too.
        let mut bait = vec![record_at(ROGUE_IP, CONTROL_PORT, &bait_spec)];
        for _ in 0..2 {
            for target in LOCAL_TARGETS.iter().chain([&Ipv4Addr::LOCALHOST]) {
                bait.push(record_at(*target, TARGET_PORT, &bait_spec));
            }
        }
        for record in &bait {
            let _ = rogue.add_record(record.clone());
        }
        rogue_tx
            .send((rogue.local_enr_string(), rogue.table_size()))
            .unwrap();
        wait(&rogue_stop).await;
        rogue.shutdown().await;
    });
    let (rogue_enr, baited) = rogue_rx.recv_timeout(Duration::from_secs(30)).unwrap();
    assert!(baited >= 8, "the rogue's table holds {baited} records");

    // The node: public scope, discv5 only, the rogue its one bootnode; a listener on
    // its own loopback where the loopback bait points.
    let (stop_node, node_stop) = mpsc::channel();
    let (node_tx, node_rx) = mpsc::channel();
    let dir = tempfile::tempdir().unwrap();
    let datadir = dir.path().join("node");
    let node = in_netns(NODE_NS, move || async move {
        count_connections((Ipv4Addr::LOCALHOST, TARGET_PORT).into(), loopback).await;
        let node = Node::start(NodeConfig {
            datadir,
            dev: true,
            addr: IpAddr::V4(NODE_IP),
            port: 0,
            discovery: vec![DiscoveryProtocol::V5],
            bootnodes: vec![rogue_enr],
            discovery_lookup_secs: 1,
            ..NodeConfig::default()
        })
        .await
        .unwrap();
        node_tx.send(()).unwrap();
        wait(&node_stop).await;
        node.stop().await;
    });
    node_rx.recv_timeout(Duration::from_secs(30)).unwrap();

    // The control shows the bait reached the dialer; several lookups later, nothing
    // else was dialled.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while control.load(Ordering::Relaxed) == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(4));
    let counts: Vec<usize> = attempts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    let _ = stop_node.send(());
    let _ = stop_rogue.send(());
    node.join().unwrap();
    rogue.join().unwrap();
    assert!(
        counts[3] >= 1,
        "the public control record was never dialled: the bait did not reach the dialer"
    );
    assert_eq!(
        [counts[0], counts[1], counts[2], counts[4]],
        [0; 4],
        "connection attempts to 10.0.0.1, 192.168.1.1, 169.254.1.1, 127.0.0.1"
    );
}
