//! Dual nodes: RLPx and the stream stack in one node, one peer table and one policy
//! across both, and blocks and transactions bridged between the two networks.

use std::time::Duration;

use devmux_chain::devnet::Devnet;
use devmux_chain::Chain;
use devmux_eth::alloy_primitives::{B256, U256};
use devmux_network::{
    DisconnectReason, Error, Message, MessageStream, Network, NetworkConfig, NetworkEvent, NodeKey,
    PeerCtx, Registrar, ServerKind, SessionProtocol,
};
use devmux_node::{Node, NodeConfig};
use devmux_tests::{dual_config, eventually, start_with, test_config, wait_for};
use tokio::sync::mpsc;

const SECS: Duration = Duration::from_secs(10);
const CHAT: &str = "/chat/1/1.0.0";

/// A chat session that echoes every message (the dual node's side).
fn echoing() -> Registrar {
    let mut registrar = Registrar::new();
    registrar
        .session([SessionProtocol::new(CHAT, 4).unwrap()], devmux_tests::echo)
        .unwrap();
    registrar
}

/// A chat session that sends one message and reports the answer and its carrier.
fn asking(answers: mpsc::Sender<(ServerKind, Message)>) -> Registrar {
    let mut registrar = Registrar::new();
    registrar
        .session(
            [SessionProtocol::new(CHAT, 4).unwrap()],
            move |peer: PeerCtx, mut stream: MessageStream| {
                let answers = answers.clone();
                async move {
                    stream.send(Message::new(1, b"hello".to_vec())).await?;
                    if let Some(answer) = stream.next().await {
                        let _ = answers.send((peer.server, answer?)).await;
                    }
                    // Keep the session open: the test ends it.
                    while stream.next().await.is_some() {}
                    Ok::<_, Error>(())
                }
            },
        )
        .unwrap();
    registrar
}

async fn start_keyed(config: NetworkConfig, key: NodeKey, registrar: Registrar) -> Network {
    match Network::start(config, key, registrar).await {
        Ok(network) => network,
        Err(e) => panic!("node failed to start: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dual_node_serves_an_rlpx_peer_and_a_stream_stack_peer_at_once() {
    let dual = start_with(dual_config(), echoing()).await;
    assert_eq!(dual.servers(), vec![ServerKind::Rlpx, ServerKind::P2p]);
    let addrs = dual.local_addrs();
    assert_eq!(addrs.len(), 2, "{addrs:?}");
    assert!(addrs[0].starts_with("enode://") && addrs[1].starts_with("/ip4/127."));
    assert_ne!(
        dual.listen_addr_of(ServerKind::Rlpx),
        dual.listen_addr_of(ServerKind::P2p)
    );

    let (tx, mut answers) = mpsc::channel(4);
    let rlpx = start_with(test_config(false), asking(tx.clone())).await;
    let p2p = start_with(test_config(true), asking(tx)).await;
    let enode = dual.local_enode().unwrap().to_string();
    let multiaddr = dual.local_multiaddr().unwrap().to_string();
    rlpx.dial(&enode).await.unwrap();
    p2p.dial(&multiaddr).await.unwrap();

    // Both sessions run at once, each on its own carrier, each answered by one handler.
    let mut carriers = Vec::new();
    for _ in 0..2 {
        let (carrier, answer) = tokio::time::timeout(SECS, answers.recv())
            .await
            .expect("no answer")
            .unwrap();
        assert_eq!(answer, Message::new(1, b"hello".to_vec()));
        carriers.push(carrier);
    }
    carriers.sort_by_key(|c| c.to_string());
    assert_eq!(carriers, vec![ServerKind::P2p, ServerKind::Rlpx]);
    assert_eq!(
        dual.carrier_of(&rlpx.local_peer_id()),
        Some(ServerKind::Rlpx)
    );
    assert_eq!(dual.carrier_of(&p2p.local_peer_id()), Some(ServerKind::P2p));
    let mut seen: Vec<ServerKind> = dual.peers().iter().map(|p| p.server).collect();
    seen.sort_by_key(|c| c.to_string());
    assert_eq!(seen, vec![ServerKind::P2p, ServerKind::Rlpx]);
    // Per-server statistics: both carriers moved bytes, and the total is their sum.
    let (r, p) = (
        dual.stats_of(ServerKind::Rlpx).unwrap(),
        dual.stats_of(ServerKind::P2p).unwrap(),
    );
    assert!(r.bytes_in > 0 && p.bytes_in > 0, "{r:?} {p:?}");
    assert!(dual.stats().bytes_in >= r.bytes_in + p.bytes_in);

    // The single-server peers cannot reach each other: neither runs the other's stack.
    assert!(matches!(
        rlpx.dial(&p2p.local_addr()).await,
        Err(Error::NotServing(ServerKind::P2p))
    ));
    assert!(matches!(
        p2p.dial(&rlpx.local_addr()).await,
        Err(Error::NotServing(ServerKind::Rlpx))
    ));
    // Built-in stream-stack requests work over the stream stack only.
    assert!(dual.ping(&p2p.local_peer_id()).await.is_ok());
    assert!(matches!(
        dual.ping(&rlpx.local_peer_id()).await,
        Err(Error::Unsupported(_))
    ));
    for net in [rlpx, p2p, dual] {
        net.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ban_on_one_carrier_refuses_the_same_key_on_the_other() {
    let dual = start_with(dual_config(), echoing()).await;
    let key = NodeKey::generate();
    let (tx, _answers) = mpsc::channel(4);
    let over_rlpx = start_keyed(test_config(false), key.clone(), asking(tx.clone())).await;
    let peer = over_rlpx.local_peer_id();
    over_rlpx
        .dial(&dual.local_enode().unwrap().to_string())
        .await
        .unwrap();
    assert!(eventually(SECS, || dual.is_connected(&peer)).await);
    dual.ban(&peer, Duration::from_secs(600)).await;
    assert!(eventually(SECS, || !dual.is_connected(&peer)).await);
    over_rlpx.shutdown().await;

    // The same key on the stream stack: refused as soon as Noise proves it, before
    // the muxer (there is no channel yet to say why), and never admitted.
    let mut events = dual.events();
    let over_p2p = start_keyed(test_config(true), key, asking(tx)).await;
    let _ = over_p2p
        .dial(&dual.local_multiaddr().unwrap().to_string())
        .await;
    let admitted = wait_for(&mut events, Duration::from_secs(1), |e| match e {
        NetworkEvent::PeerConnected { peer: p, .. } if *p == peer => Some(()),
        _ => None,
    })
    .await;
    assert!(
        admitted.is_none(),
        "the banned key was admitted over the stream stack"
    );
    assert!(!dual.is_connected(&peer));
    let refused_before_the_muxer = dual
        .counters()
        .handshake_failures
        .iter()
        .any(|f| f.server == ServerKind::P2p && f.reason == "refused" && f.count >= 1);
    assert!(
        refused_before_the_muxer,
        "{:?}",
        dual.counters().handshake_failures
    );
    let dual_id = dual.local_peer_id();
    assert!(eventually(SECS, || !over_p2p.is_connected(&dual_id)).await);
    over_p2p.shutdown().await;
    dual.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_count_a_peer_once_across_carriers() {
    let mut config = dual_config();
    config.pool.max_peers = 2;
    config.pool.max_inbound = Some(2);
    let dual = start_with(config, echoing()).await;
    let (tx, _answers) = mpsc::channel(16);

    // One key over both carriers: one connection, one slot.
    let key = NodeKey::generate();
    let a_rlpx = start_keyed(test_config(false), key.clone(), asking(tx.clone())).await;
    let a_p2p = start_keyed(test_config(true), key, asking(tx.clone())).await;
    let a = a_rlpx.local_peer_id();
    a_rlpx
        .dial(&dual.local_enode().unwrap().to_string())
        .await
        .unwrap();
    assert!(eventually(SECS, || dual.is_connected(&a)).await);
    let _ = a_p2p
        .dial(&dual.local_multiaddr().unwrap().to_string())
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(dual.peers().len(), 1, "{:?}", dual.peers());
    assert_eq!(dual.carrier_of(&a), Some(ServerKind::Rlpx));
    assert_eq!(dual.inbound_count(), 1);

    // A second peer, on the other carrier, takes the last slot.
    let b = start_with(test_config(true), asking(tx.clone())).await;
    b.dial(&dual.local_multiaddr().unwrap().to_string())
        .await
        .unwrap();
    assert!(eventually(SECS, || dual.is_connected(&b.local_peer_id())).await);
    assert_eq!(dual.inbound_count(), 2);

    // A third, on RLPx, finds the node full: the stream-stack peer counted.
    let c = start_with(test_config(false), asking(tx)).await;
    let refused = c.dial(&dual.local_enode().unwrap().to_string()).await;
    assert!(
        matches!(
            refused,
            Err(Error::Rlpx(devmux_rlpx::Error::Disconnected(Some(
                DisconnectReason::TooManyPeers
            ))))
        ),
        "{refused:?}"
    );
    assert_eq!(dual.peers().len(), 2);
    for net in [a_rlpx, a_p2p, b, c, dual] {
        net.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_refuses_what_a_carrier_cannot_serve() {
    // A request protocol is fine on a dual node (served on the stream stack) …
    let mut registrar = Registrar::new();
    registrar
        .request("/demo/echo/1.0.0", devmux_tests::echo)
        .unwrap();
    let dual = start_with(dual_config(), registrar).await;
    dual.shutdown().await;
    // … but a session id that is no capability is not, as RLPx runs.
    let mut registrar = Registrar::new();
    registrar
        .session(
            [SessionProtocol::new("/not-a/capability", 4).unwrap()],
            devmux_tests::echo,
        )
        .unwrap();
    let refused = Network::start(dual_config(), NodeKey::generate(), registrar).await;
    assert!(
        matches!(
            &refused,
            Err(Error::Unservable {
                server: ServerKind::Rlpx,
                ..
            })
        ),
        "{:?}",
        refused.map(|n| n.local_addrs())
    );
}

/// Node configs of the mixed network: `dir/name`, no discovery (static peers only).
fn node_config(dir: &std::path::Path, name: &str, servers: &[ServerKind]) -> NodeConfig {
    NodeConfig {
        datadir: dir.join(name),
        servers: servers.to_vec(),
        addr: devmux_tests::next_loopback(),
        port: 0,
        dev: true,
        no_discovery: true,
        ..NodeConfig::default()
    }
}

/// The canonical block on `chain` whose body holds `tx`, if any.
fn block_with(chain: &Chain, tx: B256) -> Option<(u64, B256)> {
    (1..=chain.head().number).find_map(|n| {
        let hash = chain.canonical_hash_blocking(n).ok()??;
        let body = chain.body_blocking(hash).ok()??;
        body.transactions
            .iter()
            .any(|t| *t.tx_hash() == tx)
            .then_some((n, hash))
    })
}

/// A block produced on an RLPx-only node reaches a stream-stack-only node through a
/// dual node, and a transaction sent to the stream-stack node is mined by the producer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_and_transactions_cross_carriers_through_a_dual_node() {
    let dir = tempfile::tempdir().unwrap();
    let bridge = Node::start(node_config(
        dir.path(),
        "bridge",
        &[ServerKind::Rlpx, ServerKind::P2p],
    ))
    .await
    .unwrap();
    let addrs = bridge.local_addrs();
    let mut producer = node_config(dir.path(), "producer", &[ServerKind::Rlpx]);
    producer.static_peers = vec![addrs[0].clone()];
    producer.produce_blocks = Some(1);
    let producer = Node::start(producer).await.unwrap();
    let mut follower = node_config(dir.path(), "follower", &[ServerKind::P2p]);
    follower.static_peers = vec![addrs[1].clone()];
    let follower = Node::start(follower).await.unwrap();

    let bridged = eventually(SECS, || {
        bridge.network().carrier_of(&producer.key().peer_id()) == Some(ServerKind::Rlpx)
            && bridge.network().carrier_of(&follower.key().peer_id()) == Some(ServerKind::P2p)
    })
    .await;
    assert!(bridged, "{:?}", bridge.network().peers());

    // A block the producer made reaches the follower, which has no RLPx at all.
    let reached = eventually(Duration::from_secs(30), || {
        let head = follower.chain().head();
        head.number >= 2
            && producer
                .chain()
                .canonical_hash_blocking(head.number)
                .ok()
                .flatten()
                == Some(head.hash)
    })
    .await;
    assert!(
        reached,
        "follower head {:?}, producer head {:?}",
        follower.chain().head(),
        producer.chain().head()
    );

    // A transaction sent to the follower is mined by the producer, and the block that
    // holds it comes back to the follower.
    let devnet = Devnet::new().unwrap();
    let tx = devnet.transfer(5, 0, devnet.keys()[6].address(), U256::from(1));
    let hash = *tx.tx_hash();
    follower
        .pool()
        .add_local(tx.try_into_pooled().unwrap())
        .unwrap();
    let mined = eventually(Duration::from_secs(30), || {
        block_with(producer.chain(), hash).is_some_and(|(n, h)| {
            follower.chain().canonical_hash_blocking(n).ok().flatten() == Some(h)
        })
    })
    .await;
    assert!(
        mined,
        "the follower's transaction was not mined and bridged back"
    );
    assert!(!follower.network().is_connected(&producer.key().peer_id()));
    for node in [follower, producer, bridge] {
        node.stop().await;
    }
}
