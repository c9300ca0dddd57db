//! Tests over real UDP sockets on 127.0.0.1 (OS-assigned ports).

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use devmux_identity::NodeKey;
use enr::CombinedKey;

use crate::*;

const FORK_A: ForkId = ForkId {
    hash: ForkHash([0xaa; 4]),
    next: 0,
};
const FORK_B: ForkId = ForkId {
    hash: ForkHash([0xbb; 4]),
    next: 0,
};
const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// A node on 127.0.0.1, port 0, fast lookups, fork A accepted only. Every node of these
/// tests shares one IP, which discv5's default IP limits exist to stop: they are raised.
fn config() -> DiscoveryConfig {
    default_limits_config().with_v5_limits(one_host_limits())
}

/// discv5 limits for many nodes on one address.
fn one_host_limits() -> V5Limits {
    V5Limits {
        requests_per_ip_per_sec: 10_000,
        requests_per_sec: 10_000,
        max_nodes_per_ip: 1_000,
        ip_limit: false,
        ..V5Limits::default()
    }
}

/// [`config`] with discv5's packet filter and IP limits at their defaults.
fn default_limits_config() -> DiscoveryConfig {
    DiscoveryConfig::default()
        .with_listen(SocketAddr::new(LOCALHOST, 0))
        .with_lookup_interval(Duration::from_millis(150))
        .with_eth(FORK_A)
        .with_fork_filter(|remote| remote.hash == FORK_A.hash)
}

/// With discv5's packet filter and IP limits at their defaults, one host cannot fill our
/// table: 14 nodes on 127.0.0.1 that all know our node get at most 10 places (the
/// filter's nodes-per-IP ban and the table's /24 limit each hold it there; with both
/// off all 15 get in), while an observer with the limits off keeps them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_limits_bound_one_hosts_share_of_the_table() {
    let mut limited = Discovery::start(default_limits_config(), &key(100))
        .await
        .unwrap();
    let observer = Discovery::start(config(), &key(101)).await.unwrap();
    let boots = vec![limited.local_enr_string(), observer.local_enr_string()];
    let mut others = Vec::new();
    for i in 0..14 {
        let config = config().with_bootnodes(boots.clone());
        others.push(Discovery::start(config, &key(110 + i)).await.unwrap());
    }
    assert!(
        eventually(Duration::from_secs(20), || observer.table_size() >= 12).await,
        "observer table: {}",
        observer.table_size()
    );
    // Every other node has pinged and queried the limited node by now.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let size = limited.table_size();
    assert!(size <= 10, "one /24 holds {size} places in a limited table");
    assert!(size >= 1, "the limit keeps some nodes: {size}");
    let _ = limited.take_candidates();
    limited.shutdown().await;
    observer.shutdown().await;
    for node in others {
        node.shutdown().await;
    }
}

fn key(i: u8) -> NodeKey {
    NodeKey::from_secret_bytes(&[i; 32]).unwrap()
}

/// Polls `f` every 25 ms until it holds or `limit` passes.
pub(crate) async fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn discv5_id(key: &NodeKey) -> [u8; 32] {
    key.node_id().discv5_id()
}

#[tokio::test]
async fn enr_content_follows_config() {
    // Known answer (WIRE.md §6): key 0x01×32 → discv5 node id b8a0…14f1.
    let k1 = key(1);
    let both = Discovery::start(
        config()
            .with_rlpx_tcp_port(Some(30303))
            .with_mux_tcp_port(Some(30304)),
        &k1,
    )
    .await
    .unwrap();
    let enr = both.local_enr();
    assert_eq!(
        hex::encode(enr.node_id().raw()),
        "b8a0722ae6cb48cde0b4ae1f1a642f0e3c3af545e7acbd38b07251b3990914f1"
    );
    assert_eq!(secp256k1_node_id(&enr), Some(k1.node_id()));
    assert_eq!(enr.ip4(), Some(Ipv4Addr::LOCALHOST));
    assert_eq!(enr.udp4(), Some(both.udp_addr().port()));
    assert_ne!(both.udp_addr().port(), 0);
    assert_eq!(enr.tcp4(), Some(30303));
    assert_eq!(mux_port(&enr), Some(30304));
    assert_eq!(fork_id_of(&enr).unwrap().unwrap(), FORK_A);
    assert!(enr.verify());
    // The text form round-trips.
    let text = both.local_enr_string();
    assert!(text.starts_with("enr:"));
    assert_eq!(text.parse::<Enr>().unwrap(), enr);

    // RLPx only: `tcp`, no `mux`.
    let rlpx = Discovery::start(config().with_rlpx_tcp_port(Some(31000)), &key(2))
        .await
        .unwrap();
    let enr = rlpx.local_enr();
    assert_eq!(enr.tcp4(), Some(31000));
    assert!(enr.get_raw_rlp(MUX_ENR_KEY).is_none());
    assert!(fork_id_of(&enr).is_some());

    // Stream stack only: `mux`, no `tcp`.
    let mux = Discovery::start(config().with_mux_tcp_port(Some(32000)), &key(3))
        .await
        .unwrap();
    let enr = mux.local_enr();
    assert_eq!(enr.tcp4(), None);
    assert!(enr.get_raw_rlp("tcp").is_none());
    assert_eq!(mux_port(&enr), Some(32000));

    // Neither (a pure bootnode): still `eth`, no TCP ports; another fork id.
    let plain = Discovery::start(config().with_eth(FORK_B), &key(4))
        .await
        .unwrap();
    let enr = plain.local_enr();
    assert!(enr.get_raw_rlp("tcp").is_none() && enr.get_raw_rlp(MUX_ENR_KEY).is_none());
    assert_eq!(fork_id_of(&enr).unwrap().unwrap(), FORK_B);
    assert!(plain.dial_filter().stacks().is_empty());

    // A listen address of 0.0.0.0 with an explicit ENR IP advertises that IP.
    let wildcard = Discovery::start(
        config()
            .with_listen("0.0.0.0:0".parse().unwrap())
            .with_enr_ip(LOCALHOST),
        &key(5),
    )
    .await
    .unwrap();
    assert_eq!(wildcard.local_enr().ip4(), Some(Ipv4Addr::LOCALHOST));

    for d in [both, rlpx, mux, plain, wildcard] {
        d.shutdown().await;
    }
}

#[tokio::test]
async fn config_and_input_errors() {
    let bad_family = config().with_enr_ip("::1".parse().unwrap());
    assert!(matches!(
        Discovery::start(bad_family, &key(1)).await,
        Err(Error::Config(_))
    ));
    let port0 = config().with_mux_tcp_port(Some(0));
    assert!(matches!(
        Discovery::start(port0, &key(1)).await,
        Err(Error::Config(_))
    ));
    let bad_boot = config().with_bootnodes(["enr:notbase64!"]);
    assert!(matches!(
        Discovery::start(bad_boot, &key(1)).await,
        Err(Error::InvalidEnr { .. })
    ));
    let d = Discovery::start(config(), &key(1)).await.unwrap();
    assert!(matches!(
        d.add_enr("garbage"),
        Err(Error::InvalidEnr { .. })
    ));
    // A record without a UDP address cannot enter the table.
    let no_udp = Enr::builder()
        .ip4(Ipv4Addr::LOCALHOST)
        .build(&CombinedKey::secp256k1_from_bytes(&mut [9u8; 32]).unwrap())
        .unwrap();
    assert!(matches!(d.add_record(no_udp), Err(Error::Rejected(_))));
    d.shutdown().await;
}

struct Net {
    nodes: Vec<Discovery>,
}

impl Net {
    /// Node 0 is the bootnode; every other node knows only it.
    async fn start(configs: Vec<(DiscoveryConfig, NodeKey)>) -> Self {
        let mut nodes: Vec<Discovery> = Vec::new();
        for (i, (config, key)) in configs.into_iter().enumerate() {
            let config = if i == 0 {
                config
            } else {
                config.with_bootnodes([nodes[0].local_enr_string()])
            };
            nodes.push(Discovery::start(config, &key).await.unwrap());
        }
        Self { nodes }
    }

    fn sizes(&self) -> Vec<usize> {
        self.nodes.iter().map(Discovery::table_size).collect()
    }

    async fn shutdown(self) {
        for node in self.nodes {
            node.shutdown().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_nodes_with_one_bootnode_find_each_other() {
    const N: usize = 8;
    let net = Net::start(
        (0..N)
            .map(|i| {
                (
                    config().with_mux_tcp_port(Some(40000 + i as u16)),
                    key(i as u8 + 10),
                )
            })
            .collect(),
    )
    .await;
    let started = Instant::now();
    let all = eventually(Duration::from_secs(10), || {
        net.sizes().iter().all(|&s| s >= N - 1)
    })
    .await;
    assert!(
        all,
        "tables after {:?}: {:?}",
        started.elapsed(),
        net.sizes()
    );
    // Every node knows every other, by id.
    for (i, node) in net.nodes.iter().enumerate() {
        for j in 0..N {
            if i != j {
                assert!(node.table_contains(&discv5_id(&key(j as u8 + 10))));
            }
        }
    }
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn candidates_are_filtered_by_stack_and_fork_but_all_stay_in_the_table() {
    // 0: bootnode running nothing. 1: mux/fork A. 2: RLPx only/fork A. 3: mux/fork B.
    // 4: both stacks/fork A. 5: observer, mux/fork A. 6: observer, RLPx/fork A.
    let specs: [(Option<u16>, Option<u16>, ForkId); 7] = [
        (None, None, FORK_A),
        (None, Some(41001), FORK_A),
        (Some(41002), None, FORK_A),
        (None, Some(41003), FORK_B),
        (Some(41004), Some(41014), FORK_A),
        (None, Some(41005), FORK_A),
        (Some(41006), None, FORK_A),
    ];
    let keys: Vec<NodeKey> = (0..specs.len()).map(|i| key(i as u8 + 40)).collect();
    let mut net = Net::start(
        specs
            .iter()
            .zip(&keys)
            .map(|(&(rlpx, mux, eth), k)| {
                (
                    config()
                        .with_rlpx_tcp_port(rlpx)
                        .with_mux_tcp_port(mux)
                        .with_eth(eth),
                    k.clone(),
                )
            })
            .collect(),
    )
    .await;
    // A record added by hand: mux, fork A, but the fork filter is the only judge of
    // `eth`; this one has none, so it is never a candidate either.
    let no_eth_key = CombinedKey::secp256k1_from_bytes(&mut [77u8; 32]).unwrap();
    let mut builder = Enr::builder();
    builder
        .ip4(Ipv4Addr::LOCALHOST)
        .udp4(9)
        .add_value(MUX_ENR_KEY, &41077u16);
    let no_eth = builder.build(&no_eth_key).unwrap();
    net.nodes[5].add_record(no_eth.clone()).unwrap();

    let mut mux_rx = net.nodes[5].take_candidates().unwrap();
    let mut rlpx_rx = net.nodes[6].take_candidates().unwrap();
    assert!(net.nodes[5].take_candidates().is_none());

    let id = |i: usize| keys[i].node_id();
    let mut mux_seen = Vec::new();
    let mut rlpx_seen = Vec::new();
    let everyone_known = |net: &Net, who: usize| {
        (0..specs.len())
            .filter(|&j| j != who)
            .all(|j| net.nodes[who].table_contains(&discv5_id(&keys[j])))
    };
    let done = eventually(Duration::from_secs(10), || {
        while let Some(c) = mux_rx.try_recv() {
            mux_seen.push(c);
        }
        while let Some(c) = rlpx_rx.try_recv() {
            rlpx_seen.push(c);
        }
        let mux_ids: HashSet<_> = mux_seen.iter().map(|c| c.node_id).collect();
        let rlpx_ids: HashSet<_> = rlpx_seen.iter().map(|c| c.node_id).collect();
        everyone_known(&net, 5)
            && everyone_known(&net, 6)
            && mux_ids.contains(&id(1))
            && mux_ids.contains(&id(4))
            && rlpx_ids.contains(&id(2))
            && rlpx_ids.contains(&id(4))
    })
    .await;
    assert!(
        done,
        "mux observer saw {:?}, rlpx observer saw {:?}, tables {:?}",
        mux_seen.iter().map(|c| c.node_id).collect::<Vec<_>>(),
        rlpx_seen.iter().map(|c| c.node_id).collect::<Vec<_>>(),
        net.sizes()
    );
    // One more lookup round each, then take everything offered so far.
    net.nodes[5].lookup().await.unwrap();
    net.nodes[6].lookup().await.unwrap();
    while let Some(c) = mux_rx.try_recv() {
        mux_seen.push(c);
    }
    while let Some(c) = rlpx_rx.try_recv() {
        rlpx_seen.push(c);
    }

    let mux_ids: HashSet<_> = mux_seen.iter().map(|c| c.node_id).collect();
    let rlpx_ids: HashSet<_> = rlpx_seen.iter().map(|c| c.node_id).collect();
    assert_eq!(mux_ids, HashSet::from([id(1), id(4)]), "mux observer");
    assert_eq!(rlpx_ids, HashSet::from([id(2), id(4)]), "rlpx observer");
    // Offered once each within the re-offer window (the default is minutes).
    assert_eq!(mux_seen.len(), 2, "duplicates offered: {mux_seen:?}");
    assert_eq!(rlpx_seen.len(), 2, "duplicates offered: {rlpx_seen:?}");
    // The rejected ones are still in the table.
    for j in [0, 2, 3] {
        assert!(
            net.nodes[5].table_contains(&discv5_id(&keys[j])),
            "node {j}"
        );
    }
    assert!(net.nodes[5].table_contains(&no_eth.node_id().raw()));
    for j in [0, 1, 3] {
        assert!(
            net.nodes[6].table_contains(&discv5_id(&keys[j])),
            "node {j}"
        );
    }
    let filter = net.nodes[5].dial_filter();
    let entry = |j: usize| {
        net.nodes[5]
            .table_entries()
            .into_iter()
            .find(|e| e.node_id().raw() == discv5_id(&keys[j]))
            .unwrap()
    };
    assert_eq!(
        filter.check(&entry(0)).unwrap_err(),
        Rejection::NoSharedStack
    );
    assert_eq!(
        filter.check(&entry(2)).unwrap_err(),
        Rejection::NoSharedStack
    );
    assert_eq!(
        filter.check(&entry(3)).unwrap_err(),
        Rejection::IncompatibleFork(FORK_B)
    );
    assert_eq!(filter.check(&no_eth).unwrap_err(), Rejection::NoEthEntry);
    assert_eq!(
        filter.check(&net.nodes[5].local_enr()).unwrap_err(),
        Rejection::Local
    );
    let pulled: HashSet<_> = net.nodes[5]
        .table_candidates()
        .into_iter()
        .map(|c| c.node_id)
        .collect();
    assert_eq!(pulled, HashSet::from([id(1), id(4)]));

    // What a candidate carries, for each stack.
    let both_mux = mux_seen.iter().find(|c| c.node_id == id(4)).unwrap();
    let udp4 = net.nodes[4].udp_addr().port();
    assert_eq!(both_mux.stack, Stack::Mux);
    assert_eq!(both_mux.tcp_addr(), SocketAddr::new(LOCALHOST, 41014));
    assert_eq!(both_mux.peer_id, keys[4].peer_id());
    assert_eq!(both_mux.discv5_id(), discv5_id(&keys[4]));
    assert_eq!(both_mux.fork, FORK_A);
    assert_eq!(
        both_mux.multiaddr().unwrap().to_string(),
        format!("/ip4/127.0.0.1/tcp/41014/p2p/{}", keys[4].peer_id())
    );
    assert_eq!(
        both_mux.dial_url(),
        both_mux.multiaddr().unwrap().to_string()
    );
    assert_eq!(
        both_mux.enode().unwrap().to_string(),
        format!(
            "enode://{}@127.0.0.1:41004?discport={udp4}",
            keys[4].node_id()
        )
    );
    let both_rlpx = rlpx_seen.iter().find(|c| c.node_id == id(4)).unwrap();
    assert_eq!(both_rlpx.stack, Stack::Rlpx);
    assert_eq!(both_rlpx.tcp_port, 41004);
    assert_eq!(
        both_rlpx.dial_url(),
        format!("enode://{}@127.0.0.1:41004", keys[4].node_id())
    );
    let mux_only = mux_seen.iter().find(|c| c.node_id == id(1)).unwrap();
    assert!(mux_only.enode().is_none());
    let rlpx_only = rlpx_seen.iter().find(|c| c.node_id == id(2)).unwrap();
    assert!(rlpx_only.multiaddr().is_none());
    assert_eq!(rlpx_only.enode().unwrap().id, keys[2].node_id());

    net.shutdown().await;
    // The candidate streams end with discovery.
    assert!(mux_rx.recv().await.is_none());
}

fn line_count(path: &PathBuf) -> usize {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("enr:"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_node_rejoins_from_stored_enrs() {
    const N: usize = 5;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("discovery-enrs.txt");
    let keys: Vec<NodeKey> = (0..N).map(|i| key(i as u8 + 60)).collect();
    let restarted = N - 1;
    let mut net = Net::start(
        keys.iter()
            .enumerate()
            .map(|(i, k)| {
                let c = config().with_mux_tcp_port(Some(42000 + i as u16));
                let c = if i == restarted {
                    c.with_persist_path(Some(path.clone()))
                } else {
                    c
                };
                (c, k.clone())
            })
            .collect(),
    )
    .await;
    assert!(
        eventually(Duration::from_secs(10), || net
            .sizes()
            .iter()
            .all(|&s| s >= N - 1))
        .await,
        "{:?}",
        net.sizes()
    );

    // Stop the node (the ENR file is written at shutdown) and the bootnode.
    let node = net.nodes.pop().unwrap();
    let old_port = node.udp_addr().port();
    node.shutdown().await;
    assert_eq!(line_count(&path), N - 1);
    net.nodes.remove(0).shutdown().await;

    // Same key and file, no bootnodes, a new port.
    let mut node = Discovery::start(
        config()
            .with_mux_tcp_port(Some(42100))
            .with_persist_path(Some(path.clone())),
        &keys[restarted],
    )
    .await
    .unwrap();
    let new_port = node.udp_addr().port();
    assert_ne!(new_port, old_port);
    let mut rx = node.take_candidates().unwrap();

    // The others (1..N-1) learn its new record (new port, higher seq): it has rejoined.
    let id = discv5_id(&keys[restarted]);
    let rejoined = eventually(Duration::from_secs(10), || {
        net.nodes.iter().all(|n| {
            n.table_entries()
                .iter()
                .any(|e| e.node_id().raw() == id && e.udp4() == Some(new_port))
        })
    })
    .await;
    assert!(rejoined, "others did not learn the restarted node's record");
    // Its table refilled from the file and it offers live peers as candidates again.
    assert!(node.table_size() >= N - 2, "{}", node.table_size());
    let mut offered = HashSet::new();
    assert!(
        eventually(Duration::from_secs(5), || {
            while let Some(c) = rx.try_recv() {
                offered.insert(c.node_id);
            }
            (1..N - 1).all(|j| offered.contains(&keys[j].node_id()))
        })
        .await
    );
    node.shutdown().await;
    net.shutdown().await;
}
