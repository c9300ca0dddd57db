//! Discovery, dialing and the peer pool: nodes find, keep and police their peers.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use devmux_discovery::{Discovery, DiscoveryConfig, ForkHash, ForkId};
use devmux_network::{DisconnectReason, Network, NetworkEvent, NodeKey, PeerPoolConfig, Registrar};
use devmux_node::{Node, NodeConfig};
use devmux_tests::{echo, eventually, start_with, test_config, wait_for};
use tokio::net::TcpListener;

const SECS: Duration = Duration::from_secs(10);

fn node_config(dir: &std::path::Path, name: &str, p2p: bool) -> NodeConfig {
    NodeConfig {
        datadir: dir.join(name),
        use_p2p_server: p2p,
        addr: devmux_tests::next_loopback(),
        port: 0,
        dev: true,
        max_peers: 9, // outbound target 3, inbound limit 6
        discovery_lookup_secs: 1,
        ..NodeConfig::default()
    }
}

/// Ten nodes that know only a bootnode all reach their outbound target.
async fn ten_nodes_reach_their_targets(p2p: bool) {
    let dir = tempfile::tempdir().unwrap();
    let boot = Node::start(node_config(dir.path(), "boot", p2p))
        .await
        .unwrap();
    let enr = boot.enr().unwrap();
    let mut nodes = Vec::new();
    for i in 0..9 {
        let mut config = node_config(dir.path(), &format!("n{i}"), p2p);
        config.bootnodes = vec![enr.clone()];
        nodes.push(Node::start(config).await.unwrap());
    }
    nodes.push(boot);
    let target = nodes[0].network().pool_config().outbound_target();
    assert_eq!(target, 3);
    let reached = eventually(Duration::from_secs(45), || {
        nodes.iter().all(|n| n.network().peers().len() >= target)
    })
    .await;
    let counts: Vec<(usize, usize)> = nodes
        .iter()
        .map(|n| (n.network().outbound_count(), n.network().inbound_count()))
        .collect();
    assert!(reached, "(outbound, inbound) per node: {counts:?}");
    for n in &nodes {
        // Limits held: never above max_peers, inbound within its share.
        assert!(n.network().peers().len() <= 9);
        assert!(n.network().inbound_count() <= n.network().pool_config().inbound_limit());
    }
    // Everyone speaks eth to its peers: the session protocol comes up on each.
    let eth_everywhere = eventually(SECS, || {
        nodes.iter().all(|n| {
            n.network().peers().iter().all(|p| {
                p.protocols
                    .iter()
                    .any(|id| id.as_str().starts_with("/eth/"))
            })
        })
    })
    .await;
    assert!(eth_everywhere);

    // A node restarted without bootnodes rejoins from its stored ENRs.
    let last = nodes.remove(0);
    let config = last.config().clone();
    last.stop().await;
    let mut config = NodeConfig {
        bootnodes: Vec::new(),
        ..config
    };
    config.port = 0;
    let again = Node::start(config).await.unwrap();
    let rejoined = eventually(Duration::from_secs(30), || {
        !again.network().peers().is_empty()
    })
    .await;
    assert!(
        rejoined,
        "restarted node found no peer from its stored ENRs"
    );
    again.stop().await;
    for n in nodes {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_nodes_with_one_bootnode_reach_their_targets_on_rlpx() {
    ten_nodes_reach_their_targets(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_nodes_with_one_bootnode_reach_their_targets_on_the_stream_stack() {
    ten_nodes_reach_their_targets(true).await;
}

/// A node of another fork (or network) is in the table but never dialled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_of_another_fork_are_never_dialled_but_stay_in_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(node_config(dir.path(), "n", false))
        .await
        .unwrap();
    // A stranger that runs RLPx on a port we watch, with a foreign fork id.
    let watch = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = watch.local_addr().unwrap().port();
    let dials = Arc::new(AtomicUsize::new(0));
    let counter = dials.clone();
    tokio::spawn(async move {
        while let Ok((_s, _)) = watch.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });
    let stranger_key = NodeKey::generate();
    let mut stranger = Discovery::start(
        DiscoveryConfig::default()
            .with_listen("127.0.0.1:0".parse().unwrap())
            .with_rlpx_tcp_port(Some(port))
            .with_eth(ForkId {
                hash: ForkHash([0xde, 0xad, 0xbe, 0xef]),
                next: 0,
            })
            .with_bootnodes([node.enr().unwrap()])
            .with_lookup_interval(Duration::from_secs(1)),
        &stranger_key,
    )
    .await
    .unwrap();
    let _ = stranger.take_candidates();
    let id = stranger_key.node_id().discv5_id();
    let discovery = node.discovery().unwrap();
    assert!(
        eventually(SECS, || discovery.table_contains(&id)).await,
        "stranger not in the table"
    );
    // Several lookup rounds later, still no dial.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(discovery.table_contains(&id));
    assert_eq!(
        dials.load(Ordering::SeqCst),
        0,
        "a node of another fork was dialled"
    );
    stranger.shutdown().await;
    node.stop().await;
}

fn pool_config(max_peers: usize) -> PeerPoolConfig {
    PeerPoolConfig {
        max_peers,
        ..PeerPoolConfig::default()
    }
}

fn echo_registrar() -> Registrar {
    let mut r = Registrar::new();
    r.session(
        [devmux_network::SessionProtocol::new("/echo/1/1.0.0", 4).unwrap()],
        echo,
    )
    .unwrap();
    r
}

/// 200 simultaneous inbound attempts: the limits hold, extras are refused, the
/// peers already there stay.
async fn inbound_flood(p2p: bool) {
    let mut config = test_config(p2p);
    config.pool = pool_config(8);
    config.admission.max_pending = 32;
    let server = start_with(config, echo_registrar()).await;
    let mut existing = Vec::new();
    for _ in 0..3 {
        let n = start_with(test_config(p2p), echo_registrar()).await;
        n.dial(&server.local_addr()).await.unwrap();
        existing.push(n);
    }
    assert!(eventually(SECS, || server.peers().len() == 3).await);
    let mut events = server.events();

    let enode: Option<devmux_identity::Enode> =
        (!p2p).then(|| server.local_addr().parse().unwrap());
    let addr = server.listen_addr();
    let peer_id = server.local_peer_id();
    let mut attempts = Vec::new();
    for i in 0..200u8 {
        attempts.push(tokio::spawn(async move {
            let key = NodeKey::generate();
            // Each from a host of its own (127.200.i.1): the per-address and per-subnet
            // budgets are not what this test measures.
            let from = std::net::IpAddr::from([127, 200, i, 1]);
            let tcp = match devmux_transport::connect_from(Some(from), addr).await {
                Ok(tcp) => tcp,
                Err(_) => return Outcome::Closed,
            };
            if let Some(enode) = enode {
                let secret = devmux_tests::rlpx_secret(&key);
                let result = tokio::time::timeout(SECS, async {
                    let ecies =
                        devmux_rlpx::EciesStream::connect(tcp, &secret, &enode.id.0).await?;
                    let config = devmux_rlpx::SessionConfig::new("flood")
                        .with_capability(devmux_rlpx::Capability::new("echo", 1, 4));
                    let session = ecies.exchange_hello(&config).await?;
                    // Hello done: a refusal now arrives as the first message. A session
                    // that hears nothing for a while was admitted.
                    let (mut r, _w) = session.split();
                    Ok::<_, devmux_rlpx::Error>(
                        tokio::time::timeout(Duration::from_secs(2), r.recv())
                            .await
                            .ok(),
                    )
                })
                .await;
                let too_many = Some(DisconnectReason::TooManyPeers);
                match result {
                    Ok(Err(devmux_rlpx::Error::Disconnected(reason))) if reason == too_many => {
                        Outcome::TooMany
                    }
                    Ok(Ok(Some(Ok(devmux_rlpx::Incoming::Disconnect(reason)))))
                        if reason == too_many =>
                    {
                        Outcome::TooMany
                    }
                    Ok(Ok(None)) => Outcome::Admitted,
                    _ => Outcome::Closed,
                }
            } else {
                let upgrader =
                    devmux_transport::Upgrader::new(key, devmux_transport::Config::default())
                        .unwrap();
                match tokio::time::timeout(SECS, upgrader.upgrade_outbound(tcp, Some(peer_id)))
                    .await
                {
                    Ok(Ok(mut conn)) => {
                        // The server says goodbye on a stream it opens, or just closes.
                        let refused = tokio::time::timeout(Duration::from_secs(3), async {
                            while let Some(stream) = conn.incoming.next().await {
                                let proposals = ["/devmux/goodbye/1.0.0"];
                                if multistream_select::listener_select_proto(stream, proposals)
                                    .await
                                    .is_ok()
                                {
                                    return true;
                                }
                            }
                            false
                        })
                        .await;
                        match refused {
                            Ok(true) => Outcome::TooMany,
                            Ok(false) => Outcome::Closed,
                            Err(_) => Outcome::Admitted,
                        }
                    }
                    _ => Outcome::Closed,
                }
            }
        }));
    }
    let mut outcomes = Vec::new();
    for a in attempts {
        outcomes.push(a.await.unwrap());
    }
    let refused = outcomes.iter().filter(|o| **o == Outcome::TooMany).count();
    let admitted = outcomes.iter().filter(|o| **o == Outcome::Admitted).count();
    // At most the free slots were taken; many were told why they were refused.
    assert!(admitted <= 5, "{admitted} admitted over the limit");
    assert!(
        refused >= 20,
        "only {refused} refusals carried a reason: {outcomes:?}"
    );
    // The peers that were there are still there, and the limit held throughout.
    for n in &existing {
        assert!(server.is_connected(&n.local_peer_id()));
    }
    let mut peak = 0;
    while let Ok(e) = events.try_recv() {
        if let NetworkEvent::PeerConnected { .. } = e {
            peak += 1;
        }
    }
    assert!(3 + peak <= 3 + 5 + 5, "connections admitted: {peak}");
    assert!(server.peers().len() <= 8);
}

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Admitted,
    TooMany,
    Closed,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_hold_under_200_simultaneous_inbound_attempts_on_rlpx() {
    inbound_flood(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_hold_under_200_simultaneous_inbound_attempts_on_the_stream_stack() {
    inbound_flood(true).await;
}

/// A banned peer is refused until its ban expires, also after a restart.
async fn bans(p2p: bool) {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("peers.redb");
    let key = NodeKey::generate();
    let mut config = test_config(p2p);
    config.pool.store = Some(store.clone());
    let server = Network::start(config.clone(), key.clone(), echo_registrar())
        .await
        .unwrap();
    let client = start_with(test_config(p2p), echo_registrar()).await;
    let client_id = client.local_peer_id();
    client.dial(&server.local_addr()).await.unwrap();
    assert!(eventually(SECS, || server.is_connected(&client_id)).await);
    let mut events = client.events();
    server.ban(&client_id, Duration::from_secs(4)).await;
    let reason = wait_for(&mut events, SECS, |e| match e {
        NetworkEvent::PeerDisconnected { reason, .. } => Some(*reason),
        _ => None,
    })
    .await;
    assert_eq!(reason, Some(Some(DisconnectReason::UselessPeer)));
    let banned_at = Instant::now();
    let refused = |server: &Network| {
        let server = server.clone();
        let client = client.clone();
        async move {
            let _ = client.dial(&server.local_addr()).await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            !server.is_connected(&client.local_peer_id())
        }
    };
    assert!(refused(&server).await, "banned peer admitted");

    // Restart the server on the same store: still banned.
    server.shutdown().await;
    drop(server);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let server = Network::start(config, key, echo_registrar()).await.unwrap();
    assert!(server.is_banned(&client_id));
    assert!(refused(&server).await, "ban forgotten across a restart");

    // After expiry: admitted.
    let left = Duration::from_secs(5).saturating_sub(banned_at.elapsed());
    tokio::time::sleep(left).await;
    assert!(!server.is_banned(&client_id));
    client.dial(&server.local_addr()).await.unwrap();
    assert!(eventually(SECS, || server.is_connected(&client_id)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_banned_peer_is_refused_until_expiry_also_after_restart_on_rlpx() {
    bans(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_banned_peer_is_refused_until_expiry_also_after_restart_on_the_stream_stack() {
    bans(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flapping_peer_backs_off_exponentially() {
    // A "peer" that accepts and drops every connection at once.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            log.lock().unwrap().push(Instant::now());
            drop(s);
        }
    });
    let node = start_with(test_config(false), echo_registrar()).await;
    let enode = format!("enode://{}@127.0.0.1:{port}", NodeKey::generate().node_id());
    node.add_static_peer(&enode).unwrap();
    assert!(eventually(Duration::from_secs(15), || seen.lock().unwrap().len() >= 4).await);
    let times = seen.lock().unwrap().clone();
    let gaps: Vec<f64> = times
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64())
        .collect();
    // Backoff doubles from 1 s with ±25 % jitter: each gap exceeds the one before.
    assert!(gaps[0] >= 0.7 && gaps[0] < 2.0, "{gaps:?}");
    assert!(gaps[1] > gaps[0] && gaps[2] > gaps[1], "{gaps:?}");
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_stack_keepalive_drops_silent_peers_and_closes_idle_connections() {
    let mut config = test_config(true);
    config.ping_interval = Duration::from_millis(300);
    config.request_timeout = Duration::from_millis(500);
    config.idle_timeout = Duration::from_secs(60);
    let server = start_with(config, echo_registrar()).await;
    let mut events = server.events();
    // A peer that completes the handshake and then never answers a stream.
    let upgrader =
        devmux_transport::Upgrader::new(NodeKey::generate(), devmux_transport::Config::default())
            .unwrap();
    let conn = upgrader
        .dial(server.listen_addr(), Some(server.local_peer_id()))
        .await
        .unwrap();
    let reason = wait_for(&mut events, SECS, |e| match e {
        NetworkEvent::PeerDisconnected { reason, .. } => Some(*reason),
        _ => None,
    })
    .await;
    assert_eq!(reason, Some(Some(DisconnectReason::PingTimeout)));
    drop(conn);

    // Idle: a peer that answers pings but opens no protocol is closed after the timeout.
    let mut config = test_config(true);
    config.idle_timeout = Duration::from_millis(800);
    let server = start_with(config, Registrar::new()).await;
    let client = start_with(test_config(true), Registrar::new()).await;
    let started = Instant::now();
    client.dial(&server.local_addr()).await.unwrap();
    assert!(
        eventually(SECS, || server.peers().is_empty()
            && client.peers().is_empty())
        .await
    );
    assert!(started.elapsed() >= Duration::from_millis(700));
    // With an open session protocol the connection stays.
    let mut config = test_config(true);
    config.idle_timeout = Duration::from_millis(800);
    let server = start_with(config, echo_registrar()).await;
    let client = start_with(test_config(true), echo_registrar()).await;
    client.dial(&server.local_addr()).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        server.peers().len(),
        1,
        "an active connection was closed as idle"
    );
}

/// The stream-stack keepalive pings on one kept libp2p ping stream, as rust-libp2p
/// does, rather than opening and negotiating a stream per ping; a ping stream the peer
/// resets is replaced by a new one, and one failed ping does not cost the peer its
/// connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_stack_keepalive_pings_on_one_kept_stream() {
    use futures::{AsyncReadExt, AsyncWriteExt};
    let mut config = test_config(true);
    config.ping_interval = Duration::from_millis(100);
    config.idle_timeout = Duration::from_secs(60);
    let server = start_with(config, echo_registrar()).await;
    let upgrader =
        devmux_transport::Upgrader::new(NodeKey::generate(), devmux_transport::Config::default())
            .unwrap();
    let mut conn = upgrader
        .dial(server.listen_addr(), Some(server.local_peer_id()))
        .await
        .unwrap();
    let streams = Arc::new(AtomicUsize::new(0));
    let pings = Arc::new(AtomicUsize::new(0));
    let answering = {
        let (streams, pings) = (streams.clone(), pings.clone());
        tokio::spawn(async move {
            while let Some(stream) = conn.incoming.next().await {
                let nth = streams.fetch_add(1, Ordering::SeqCst);
                let pings = pings.clone();
                tokio::spawn(async move {
                    let (_, mut io) =
                        multistream_select::listener_select_proto(stream, ["/ipfs/ping/1.0.0"])
                            .await
                            .unwrap();
                    let mut buf = [0u8; 32];
                    for answered in 1.. {
                        if io.read_exact(&mut buf).await.is_err()
                            || io.write_all(&buf).await.is_err()
                            || io.flush().await.is_err()
                        {
                            return;
                        }
                        pings.fetch_add(1, Ordering::SeqCst);
                        // The first stream is dropped (reset) after its third ping.
                        if nth == 0 && answered == 3 {
                            return;
                        }
                    }
                });
            }
        })
    };
    assert!(
        eventually(SECS, || pings.load(Ordering::SeqCst) >= 10).await,
        "keepalive pings answered: {}",
        pings.load(Ordering::SeqCst)
    );
    assert_eq!(
        streams.load(Ordering::SeqCst),
        2,
        "one ping stream, and one more after the first was reset"
    );
    assert_eq!(server.peers().len(), 1, "the peer lost its connection");
    answering.abort();
}

// ---- discv4 ---------------------------------------------------------------------------

/// A node that finds peers with `protocols` only, on an address of its own.
fn discovering(
    dir: &std::path::Path,
    name: &str,
    protocols: &[devmux_node::DiscoveryProtocol],
    max_peers: usize,
) -> NodeConfig {
    NodeConfig {
        discovery: protocols.to_vec(),
        max_peers,
        ..node_config(dir, name, false)
    }
}

/// The node's discv4 address as an `enode://` URL with `discport`.
fn v4_enode(node: &Node) -> String {
    let v4 = node.discovery().unwrap().v4().unwrap();
    v4.local_enode().to_string()
}

/// 20 nodes that run discv4 alone and know one discv4 bootnode (an `enode://` URL) all
/// reach 8 peers: discv4's ENR requests (EIP-868) give the dialer records to filter by
/// stack and fork, as discv5's do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_nodes_with_one_discv4_bootnode_reach_8_peers() {
    use devmux_node::DiscoveryProtocol::V4;
    let dir = tempfile::tempdir().unwrap();
    // max-peers 24: an outbound target of 8.
    let boot = Node::start(discovering(dir.path(), "boot", &[V4], 24))
        .await
        .unwrap();
    assert!(!boot.discovery().unwrap().runs_v5());
    let bootnode = v4_enode(&boot);
    let started = Instant::now();
    let mut nodes = vec![boot];
    for i in 0..19 {
        let mut config = discovering(dir.path(), &format!("n{i}"), &[V4], 24);
        config.bootnodes = vec![bootnode.clone()];
        nodes.push(Node::start(config).await.unwrap());
    }
    let reached = eventually(Duration::from_secs(90), || {
        nodes.iter().all(|n| n.network().peers().len() >= 8)
    })
    .await;
    let counts: Vec<usize> = nodes.iter().map(|n| n.network().peers().len()).collect();
    assert!(reached, "peers per node: {counts:?}");
    eprintln!(
        "discv4 only: 20 nodes reached 8 peers each in {:?}",
        started.elapsed()
    );
    for n in &nodes {
        assert!(n.network().peers().len() <= 24);
        let v4 = n.discovery().unwrap().v4().unwrap();
        assert!(v4.table_size() <= 19, "{}", v4.table_size());
    }
    for n in nodes {
        n.stop().await;
    }
}

/// A network of nodes running discv4 only, discv5 only, and both, seeded by one node
/// running both (an `enode://` bootnode for discv4, `enr:` for discv5): every node finds
/// peers, and the nodes running both join the two halves into one connected network.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_discv4_and_discv5_network_connects() {
    use devmux_node::DiscoveryProtocol::{V4, V5};
    let dir = tempfile::tempdir().unwrap();
    let boot = Node::start(discovering(dir.path(), "boot", &[V4, V5], 12))
        .await
        .unwrap();
    let (enode, enr) = (v4_enode(&boot), boot.enr().unwrap());
    let mut nodes = vec![boot];
    let kinds: [&[devmux_node::DiscoveryProtocol]; 3] = [&[V4], &[V5], &[V4, V5]];
    for i in 0..9 {
        let protocols = kinds[i % 3];
        let mut config = discovering(dir.path(), &format!("n{i}"), protocols, 12);
        config.bootnodes = protocols
            .iter()
            .map(|p| match p {
                V4 => enode.clone(),
                V5 => enr.clone(),
            })
            .collect();
        nodes.push(Node::start(config).await.unwrap());
    }
    let ids: Vec<_> = nodes.iter().map(|n| n.network().local_peer_id()).collect();
    let connected = || {
        // Breadth-first over the peer graph from node 0.
        let mut seen = vec![false; nodes.len()];
        let mut queue = vec![0];
        seen[0] = true;
        while let Some(i) = queue.pop() {
            for peer in nodes[i].network().peers() {
                if let Some(j) = ids.iter().position(|id| *id == peer.peer_id) {
                    if !seen[j] {
                        seen[j] = true;
                        queue.push(j);
                    }
                }
            }
        }
        seen.iter().all(|s| *s)
    };
    let ok = eventually(Duration::from_secs(60), || {
        nodes.iter().all(|n| n.network().peers().len() >= 3) && connected()
    })
    .await;
    let counts: Vec<usize> = nodes.iter().map(|n| n.network().peers().len()).collect();
    assert!(ok, "peers per node: {counts:?}, connected: {}", connected());
    for n in nodes {
        n.stop().await;
    }
}
