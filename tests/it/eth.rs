//! The eth handler end to end, every scenario over both servers: Status on every
//! version pair, serving a 1000-block devnet chain, handshake mismatches, request floods
//! and hostile peers.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use devmux_chain::devnet::Devnet;
use devmux_chain::validate::validate_block;
use devmux_chain::{BlockWithReceipts, Chain, ChainSpec, Pool, PoolConfig};
use devmux_eth::alloy_primitives::{Bytes, B256, U256};
use devmux_eth::{
    protocols, protocols_for, BlockHeaders, ChainReader, ChainStatus, Error as EthError, EthConfig,
    EthEvent, EthHandler, EthMessage, EthPeer, EthPeers, EthVersion, GetBlockHeaders, Header,
    RequestPair, Status, Transactions,
};
use devmux_network::{
    DisconnectReason, Message, MessageStream, Network, NetworkEvent, PeerCtx, PeerId, Penalty,
    Registrar,
};
use devmux_tests::{eventually, start, wait_for};
use tempfile::TempDir;
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;

const SECS: Duration = Duration::from_secs(10);
const DEVNET_BLOCKS: u64 = 1000;

/// Devnet blocks 1..=1000, derived once per test binary.
fn devnet_blocks() -> &'static [BlockWithReceipts] {
    static BLOCKS: OnceLock<Vec<BlockWithReceipts>> = OnceLock::new();
    BLOCKS.get_or_init(|| Devnet::new().unwrap().blocks(DEVNET_BLOCKS).collect())
}

/// A chain store in a temp dir with devnet blocks 1..=`blocks` of `spec`.
async fn open_chain(spec: ChainSpec, blocks: u64) -> (Chain, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let chain = Chain::open_async(dir.path().join("chain.redb"), spec)
        .await
        .unwrap();
    if blocks > 0 {
        let blocks = devnet_blocks()[..blocks as usize].to_vec();
        chain.insert_blocks(blocks).await.unwrap();
    }
    (chain, dir)
}

fn pool() -> Pool {
    Pool::new(PoolConfig::devnet())
}

/// A devmux node running the eth handler on `versions`.
struct EthNode {
    net: Network,
    eth: EthPeers,
}

async fn eth_node(
    use_p2p_server: bool,
    chain: &Chain,
    pool: &Pool,
    config: EthConfig,
    versions: &[EthVersion],
) -> EthNode {
    let (handler, eth) = EthHandler::new(chain.clone(), pool.clone(), config);
    let mut registrar = Registrar::new();
    registrar.session(protocols_for(versions), handler).unwrap();
    EthNode {
        net: start(use_p2p_server, registrar).await,
        eth,
    }
}

/// Waits until `node` has an eth session with `peer`.
async fn session(node: &EthNode, peer: PeerId) -> EthPeer {
    assert!(
        eventually(SECS, || node.eth.get(&peer).is_some()).await,
        "no eth session with {peer}"
    );
    node.eth.get(&peer).unwrap()
}

/// The reason `peer` was disconnected with, as `events` report it.
async fn disconnect_reason(
    events: &mut broadcast::Receiver<NetworkEvent>,
    peer: PeerId,
) -> Option<DisconnectReason> {
    wait_for(events, SECS, |e| match e {
        NetworkEvent::PeerDisconnected {
            peer: p, reason, ..
        } if *p == peer => Some(*reason),
        _ => None,
    })
    .await
    .flatten()
}

/// Waits for a penalty of `peer` whose reason contains `needle`.
async fn penalised(
    events: &mut broadcast::Receiver<NetworkEvent>,
    peer: PeerId,
    needle: &str,
) -> Option<Penalty> {
    wait_for(events, SECS, |e| match e {
        NetworkEvent::PeerPenalized {
            peer: p,
            penalty,
            reason,
        } if *p == peer && reason.contains(needle) => Some(*penalty),
        _ => None,
    })
    .await
}

// ---- hand-driven peers ---------------------------------------------------------------

type Script =
    Arc<dyn Fn(EthVersion, MessageStream) -> futures::future::BoxFuture<'static, ()> + Send + Sync>;

/// A node whose eth "handler" is `script`: a hand-driven peer for hostile behaviour.
async fn raw_node<F, Fut>(use_p2p_server: bool, script: F) -> Network
where
    F: Fn(EthVersion, MessageStream) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let script: Script = Arc::new(move |v, s| Box::pin(script(v, s)));
    let mut registrar = Registrar::new();
    registrar
        .session(protocols(), move |peer: PeerCtx, stream: MessageStream| {
            let script = script.clone();
            async move {
                let version = EthVersion::from_protocol_id(peer.protocol.as_str()).unwrap();
                script(version, stream).await;
                Ok::<_, devmux_network::Error>(())
            }
        })
        .unwrap();
    start(use_p2p_server, registrar).await
}

fn encode(version: EthVersion, msg: &EthMessage) -> Message {
    let (code, payload) = msg.encode_for(version).unwrap();
    Message::new(code, payload)
}

/// Sends a valid devnet Status and reads the remote's.
async fn exchange_status(stream: &mut MessageStream, version: EthVersion, chain: &ChainStatus) {
    let status = Status::new(version, 1337, chain);
    stream
        .send(encode(version, &EthMessage::Status(status)))
        .await
        .unwrap();
    let msg = stream.next().await.unwrap().unwrap();
    assert_eq!(msg.code, 0, "the remote's first message is Status");
}

/// Reads until the stream ends (the remote disconnected us) or 15 s pass: a script that
/// returned at once would end the session itself and race the remote's disconnect.
async fn drain(stream: &mut MessageStream) {
    let _ = tokio::time::timeout(Duration::from_secs(15), async {
        while let Some(Ok(_)) = stream.next().await {}
    })
    .await;
}

// ---- scenarios -----------------------------------------------------------------------

/// Nodes that speak eth/66 up to eth/`a` and eth/66 up to eth/`b` settle on
/// eth/`min(a, b)`, for every pair: Status is exchanged and checked on every version.
async fn status_on_every_version_pair(use_p2p_server: bool) {
    let (chain, _dir) = open_chain(ChainSpec::devnet(), 10).await;
    let pool = pool();
    let up_to = |v: EthVersion| -> Vec<EthVersion> {
        EthVersion::ALL.into_iter().filter(|x| *x <= v).collect()
    };
    let mut dialers = Vec::new();
    let mut listeners = Vec::new();
    for v in EthVersion::ALL {
        dialers.push((
            v,
            eth_node(
                use_p2p_server,
                &chain,
                &pool,
                EthConfig::default(),
                &up_to(v),
            )
            .await,
        ));
        listeners.push((
            v,
            eth_node(
                use_p2p_server,
                &chain,
                &pool,
                EthConfig::default(),
                &up_to(v),
            )
            .await,
        ));
    }
    let mut dials = Vec::new();
    for (_, d) in &dialers {
        for (_, l) in &listeners {
            let addr = l.net.local_addr();
            dials.push(async move { d.net.dial(&addr).await });
        }
    }
    for result in futures::future::join_all(dials).await {
        result.unwrap();
    }
    let head = chain.head();
    for (a, d) in &dialers {
        for (b, l) in &listeners {
            let want = (*a).min(*b);
            let at_dialer = session(d, l.net.local_peer_id()).await;
            let at_listener = session(l, d.net.local_peer_id()).await;
            for peer in [&at_dialer, &at_listener] {
                assert_eq!(
                    peer.version(),
                    want,
                    "eth/{} with eth/{}",
                    a.as_u8(),
                    b.as_u8()
                );
                let status = peer.status();
                assert_eq!(status.version(), want.as_u8());
                assert_eq!(status.network_id(), 1337);
                assert_eq!(status.genesis(), chain.genesis_hash());
                assert_eq!(status.head_hash(), head.hash);
                if want.has_block_range() {
                    let range = status.block_range().unwrap();
                    assert_eq!((range.earliest, range.latest), (0, 10));
                    assert_eq!(peer.head().number, Some(10));
                } else {
                    assert_eq!(status.total_difficulty(), Some(U256::from(11)));
                }
            }
        }
    }
    for (_, n) in dialers.iter().chain(&listeners) {
        assert_eq!(n.eth.len(), EthVersion::ALL.len());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_on_every_version_pair_on_rlpx() {
    status_on_every_version_pair(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_on_every_version_pair_on_the_stream_stack() {
    status_on_every_version_pair(true).await;
}

/// Fetches headers 1..=1000, their bodies and receipts from `peer` with the typed API and
/// checks every root against the headers.
async fn fetch_and_check_chain(peer: &EthPeer, genesis: B256) -> Vec<BlockWithReceipts> {
    let headers = peer
        .get_block_headers(GetBlockHeaders {
            start: 1u64.into(),
            limit: 1024,
            skip: 0,
            reverse: false,
        })
        .await
        .unwrap();
    assert_eq!(headers.len(), DEVNET_BLOCKS as usize);
    let hashes: Vec<B256> = headers.iter().map(Header::hash_slow).collect();
    for (i, (header, hash)) in headers.iter().zip(&hashes).enumerate() {
        assert_eq!(header.number, i as u64 + 1);
        assert_eq!(*hash, devnet_blocks()[i].hash());
    }

    let mut bodies = Vec::new();
    while bodies.len() < hashes.len() {
        let chunk = hashes[bodies.len()..].iter().take(300).copied().collect();
        let got = peer.get_block_bodies(chunk).await.unwrap();
        assert!(!got.is_empty() && got.len() <= 256, "{} bodies", got.len());
        bodies.extend(got);
    }
    let mut receipts = Vec::new();
    while receipts.len() < hashes.len() {
        let chunk = hashes[receipts.len()..].iter().take(300).copied().collect();
        let got = peer.get_receipts(chunk).await.unwrap();
        assert!(
            !got.is_empty() && got.len() <= 256,
            "{} receipt lists",
            got.len()
        );
        receipts.extend(got);
    }

    let mut blocks = Vec::with_capacity(headers.len());
    let mut parent_hash = genesis;
    let mut parent_header = ChainSpec::devnet().genesis;
    for ((header, body), receipts) in headers.into_iter().zip(bodies).zip(receipts) {
        assert_eq!(header.parent_hash, parent_hash);
        let hash = header.hash_slow();
        let block = BlockWithReceipts {
            header,
            body,
            receipts,
        };
        // Transactions root, ommers hash, receipts root, bloom and gas against the header.
        validate_block(
            &ChainSpec::devnet(),
            &block,
            hash,
            &parent_header,
            devmux_chain::validate::now_secs(),
        )
        .unwrap();
        parent_hash = hash;
        parent_header = block.header.clone();
        blocks.push(block);
    }
    blocks
}

/// One node serves 1000 devnet headers, bodies and receipts to an eth/69 and an eth/68
/// peer (receipts without and with blooms), plus pooled transactions both ways.
async fn serves_a_thousand_blocks(use_p2p_server: bool) {
    let (server_chain, _d1) = open_chain(ChainSpec::devnet(), DEVNET_BLOCKS).await;
    let server_pool = pool();
    let devnet = Devnet::new().unwrap();
    let to = devnet.keys()[1].address();
    let pooled: Vec<B256> = (0..3)
        .map(|i| {
            let tx = devnet.transfer(5, i, to, U256::from(1));
            server_pool.add(tx.try_into_pooled().unwrap()).unwrap()
        })
        .collect();
    let server = eth_node(
        use_p2p_server,
        &server_chain,
        &server_pool,
        EthConfig::default(),
        &EthVersion::ALL,
    )
    .await;

    for versions in [&EthVersion::ALL[..], &[EthVersion::Eth68][..]] {
        let (client_chain, _d2) = open_chain(ChainSpec::devnet(), 0).await;
        let client_pool = pool();
        let client = eth_node(
            use_p2p_server,
            &client_chain,
            &client_pool,
            EthConfig::default(),
            versions,
        )
        .await;
        let mut client_events = client.eth.subscribe();
        let mut server_events = server.eth.subscribe();
        let in_pool: Vec<B256> = server_pool
            .announcements()
            .into_iter()
            .map(|a| a.hash)
            .collect();
        client.net.dial(&server.net.local_addr()).await.unwrap();
        let peer = session(&client, server.net.local_peer_id()).await;
        assert_eq!(peer.version(), versions[0]);
        assert_eq!(peer.head().hash, server_chain.head().hash);

        let started = Instant::now();
        let blocks = fetch_and_check_chain(&peer, server_chain.genesis_hash()).await;
        let fetched = started.elapsed();
        // What came over the wire imports as the same chain.
        let outcome = client_chain.insert_blocks(blocks).await.unwrap();
        assert_eq!(outcome.head.hash, server_chain.head().hash);
        eprintln!(
            "{}: 1000 blocks over {} in {fetched:?}",
            server.net.server_kind(),
            peer.version()
        );

        // Headers by hash, backwards with a skip.
        let back = peer
            .get_block_headers(GetBlockHeaders {
                start: server_chain.head().hash.into(),
                limit: 10,
                skip: 9,
                reverse: true,
            })
            .await
            .unwrap();
        let numbers: Vec<u64> = back.iter().map(|h| h.number).collect();
        assert_eq!(numbers, (0..10).map(|i| 1000 - 10 * i).collect::<Vec<_>>());

        // The server announced its pool when the session started.
        let announced = wait_for_eth(&mut client_events, |e| match e {
            EthEvent::TransactionsAnnounced { announcement, .. } => Some(announcement.hashes()),
            _ => None,
        })
        .await;
        assert_eq!(announced, in_pool);
        let mut ask = pooled.clone();
        ask.push(B256::repeat_byte(0xee));
        let txs = peer.get_pooled_transactions(ask).await.unwrap();
        assert_eq!(txs.iter().map(|t| *t.hash()).collect::<Vec<_>>(), pooled);

        // A Transactions broadcast lands in the server's pool.
        let nonce = 10 + versions.len() as u64;
        let fresh: Vec<_> = (0..2)
            .map(|i| devnet.transfer(7, nonce + i, to, U256::from(2)))
            .collect();
        let fresh_hashes: Vec<B256> = fresh.iter().map(|t| *t.hash()).collect();
        peer.send(EthMessage::Transactions(Transactions(fresh)))
            .await
            .unwrap();
        let added = wait_for_eth(&mut server_events, |e| match e {
            EthEvent::TransactionsReceived { added, .. } => Some(added.clone()),
            _ => None,
        })
        .await;
        assert_eq!(added, fresh_hashes);
        assert!(fresh_hashes.iter().all(|h| server_pool.contains(h)));
        // Requests and responses cannot bypass the request-id bookkeeping.
        assert!(matches!(
            peer.send(EthMessage::BlockHeaders(RequestPair::new(
                1,
                BlockHeaders(vec![])
            )))
            .await,
            Err(EthError::NotAnnouncement(_))
        ));
        client.net.shutdown().await;
    }
}

async fn wait_for_eth<T>(
    events: &mut broadcast::Receiver<EthEvent>,
    mut pick: impl FnMut(&EthEvent) -> Option<T>,
) -> T {
    tokio::time::timeout(SECS, async {
        loop {
            match events.recv().await {
                Ok(e) => {
                    if let Some(t) = pick(&e) {
                        return t;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => panic!("eth events closed"),
            }
        }
    })
    .await
    .expect("eth event in time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_a_thousand_blocks_on_rlpx() {
    serves_a_thousand_blocks(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_a_thousand_blocks_on_the_stream_stack() {
    serves_a_thousand_blocks(true).await;
}

/// Wrong genesis, wrong network id and an incompatible fork id: each disconnects with
/// `SubprotocolError` on both ends, and our side names the check that failed.
async fn handshake_mismatches(use_p2p_server: bool) {
    let (chain, _d) = open_chain(ChainSpec::devnet(), 5).await;
    let pool = pool();
    let ours = eth_node(
        use_p2p_server,
        &chain,
        &pool,
        EthConfig::default(),
        &EthVersion::ALL,
    )
    .await;

    let mut other_genesis = ChainSpec::devnet();
    other_genesis.genesis.extra_data = Bytes::from_static(b"another devnet");
    let (genesis_chain, _d1) = open_chain(other_genesis, 0).await;
    // Same genesis, but a fork at block 1 that this peer has passed and we never had.
    let mut forked = ChainSpec::devnet();
    forked.forks.set(
        devmux_chain::forks::Hardfork::Shanghai,
        devmux_chain::forks::Activation::Block(1),
    );
    let (forked_chain, _d2) = open_chain(forked, 2).await;
    let cases: [(&str, Chain, EthConfig); 3] = [
        ("genesis", genesis_chain, EthConfig::default()),
        (
            "network id",
            chain.clone(),
            EthConfig::default().with_network_id(1338),
        ),
        ("fork id", forked_chain, EthConfig::default()),
    ];
    let runs = cases.into_iter().map(|(what, bad_chain, config)| {
        let ours = &ours;
        async move {
            let bad = eth_node(
                use_p2p_server,
                &bad_chain,
                &Pool::new(PoolConfig::devnet()),
                config,
                &EthVersion::ALL,
            )
            .await;
            let bad_id = bad.net.local_peer_id();
            let mut our_events = ours.net.events();
            let mut bad_events = bad.net.events();
            let mut eth_events = ours.eth.subscribe();
            let mut bad_eth_events = bad.eth.subscribe();
            bad.net.dial(&ours.net.local_addr()).await.unwrap();
            // Both ends check Status; whichever reads the other's first names the failed
            // check (the other may see the connection close before it reads).
            let error = tokio::select! {
                e = wait_for_eth(&mut eth_events, |e| match e {
                    EthEvent::HandshakeFailed { peer, error } if *peer == bad_id => Some(error.clone()),
                    _ => None,
                }) => e,
                e = wait_for_eth(&mut bad_eth_events, |e| match e {
                    EthEvent::HandshakeFailed { error, .. } => Some(error.clone()),
                    _ => None,
                }) => e,
            };
            let named = match (what, &*error) {
                ("genesis", EthError::GenesisMismatch { .. }) => true,
                ("network id", EthError::NetworkIdMismatch { ours, theirs }) => {
                    (*ours).min(*theirs) == 1337 && (*ours).max(*theirs) == 1338
                }
                ("fork id", EthError::ForkIdRejected { .. }) => true,
                _ => false,
            };
            assert!(named, "{what}: {error}");
            assert_eq!(
                disconnect_reason(&mut our_events, bad_id).await,
                Some(DisconnectReason::SubprotocolError),
                "{what}: our side"
            );
            assert_eq!(
                disconnect_reason(&mut bad_events, ours.net.local_peer_id()).await,
                Some(DisconnectReason::SubprotocolError),
                "{what}: their side"
            );
            assert!(ours.eth.get(&bad_id).is_none());
            assert!(bad.eth.is_empty());
        }
    });
    futures::future::join_all(runs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_mismatches_on_rlpx() {
    handshake_mismatches(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_mismatches_on_the_stream_stack() {
    handshake_mismatches(true).await;
}

/// A peer that sends 400 requests at once gets about the rate limit's worth answered
/// and is penalised, while another peer's requests are served at once throughout.
async fn request_flood(use_p2p_server: bool) {
    const FLOOD: u64 = 400;
    const RATE: u32 = 20;
    let (chain, _d) = open_chain(ChainSpec::devnet(), 200).await;
    let status = chain.chain_status();
    let pool = pool();
    let config = EthConfig::default().with_request_rate(RATE, RATE);
    let server = eth_node(use_p2p_server, &chain, &pool, config, &EthVersion::ALL).await;
    let mut server_events = server.net.events();

    let (flooding_tx, mut flooding) = mpsc::channel::<()>(1);
    let (report_tx, mut report) = mpsc::channel::<(u64, Duration)>(1);
    let flooder = raw_node(use_p2p_server, move |version, mut stream| {
        let (status, flooding_tx, report_tx) =
            (status.clone(), flooding_tx.clone(), report_tx.clone());
        async move {
            exchange_status(&mut stream, version, &status).await;
            let (mut reader, mut writer) = stream.split();
            let started = Instant::now();
            for id in 0..FLOOD {
                let request = EthMessage::GetBlockHeaders(RequestPair::new(
                    id,
                    GetBlockHeaders {
                        start: (id % 100).into(),
                        limit: 16,
                        skip: 0,
                        reverse: false,
                    },
                ));
                writer.send(encode(version, &request)).await.unwrap();
            }
            let _ = flooding_tx.send(()).await;
            // Count answers for 1.5 s after the flood.
            let mut answered = 0;
            let window = Instant::now() + Duration::from_millis(1500);
            while let Ok(Some(Ok(msg))) = tokio::time::timeout_at(window, reader.next()).await {
                if msg.code == 0x04 {
                    answered += 1;
                }
            }
            let _ = report_tx.send((answered, started.elapsed())).await;
            let _ = tokio::time::timeout(Duration::from_secs(15), async {
                while let Some(Ok(_)) = reader.next().await {}
            })
            .await;
        }
    })
    .await;
    let (honest_chain, _d2) = open_chain(ChainSpec::devnet(), 0).await;
    let honest = eth_node(
        use_p2p_server,
        &honest_chain,
        &pool,
        EthConfig::default(),
        &EthVersion::ALL,
    )
    .await;
    honest.net.dial(&server.net.local_addr()).await.unwrap();
    let served_honest = session(&honest, server.net.local_peer_id()).await;

    flooder.dial(&server.net.local_addr()).await.unwrap();
    tokio::time::timeout(SECS, flooding.recv())
        .await
        .unwrap()
        .unwrap();
    // During the flood, the other peer's requests are answered promptly and in full.
    let started = Instant::now();
    for i in 0..10u64 {
        let headers = served_honest
            .get_block_headers(GetBlockHeaders {
                start: (i * 20).into(),
                limit: 20,
                skip: 0,
                reverse: false,
            })
            .await
            .unwrap();
        assert_eq!(headers.len(), 20);
        assert_eq!(headers[0].number, i * 20);
    }
    let honest_time = started.elapsed();
    assert!(
        honest_time < Duration::from_secs(3),
        "honest peer starved: {honest_time:?}"
    );

    let (answered, elapsed) = tokio::time::timeout(SECS, report.recv())
        .await
        .unwrap()
        .unwrap();
    let allowed = u64::from(RATE) + (elapsed.as_secs_f64() * f64::from(RATE)).ceil() as u64;
    eprintln!(
        "{}: flooder got {answered}/{FLOOD} answers in {elapsed:?} (allowed {allowed}); honest peer took {honest_time:?}",
        server.net.server_kind()
    );
    assert!(
        answered >= 1 && answered <= allowed,
        "{answered} answered, {allowed} allowed"
    );
    let flooder_id = flooder.local_peer_id();
    assert_eq!(
        penalised(&mut server_events, flooder_id, "flood").await,
        Some(Penalty::Major)
    );
    // The honest peer was never penalised.
    assert!(server
        .net
        .peers()
        .iter()
        .any(|p| p.peer_id == honest.net.local_peer_id() && p.reputation == 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_flood_on_rlpx() {
    request_flood(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_flood_on_the_stream_stack() {
    request_flood(true).await;
}

/// Hostile peers: a response nobody asked for is penalised; a message before Status, a
/// malformed message and a missing Status each end the session with the right reason.
async fn hostile_peers(use_p2p_server: bool) {
    let (chain, _d) = open_chain(ChainSpec::devnet(), 5).await;
    let status = chain.chain_status();
    let pool = pool();
    let config = EthConfig::default().with_status_timeout(Duration::from_secs(1));
    let ours = eth_node(use_p2p_server, &chain, &pool, config, &EthVersion::ALL).await;

    let unsolicited = {
        let status = status.clone();
        raw_node(use_p2p_server, move |version, mut stream| {
            let status = status.clone();
            async move {
                exchange_status(&mut stream, version, &status).await;
                let response = EthMessage::BlockHeaders(RequestPair::new(77, BlockHeaders(vec![])));
                stream.send(encode(version, &response)).await.unwrap();
                drain(&mut stream).await;
            }
        })
        .await
    };
    let early = raw_node(use_p2p_server, |version, mut stream| async move {
        let request = EthMessage::GetBlockHeaders(RequestPair::new(
            1,
            GetBlockHeaders {
                start: 0u64.into(),
                limit: 1,
                skip: 0,
                reverse: false,
            },
        ));
        stream.send(encode(version, &request)).await.unwrap();
        drain(&mut stream).await;
    })
    .await;
    let malformed = {
        let status = status.clone();
        raw_node(use_p2p_server, move |version, mut stream| {
            let status = status.clone();
            async move {
                exchange_status(&mut stream, version, &status).await;
                // GetBlockBodies whose payload is not RLP.
                stream
                    .send(Message::new(0x05, vec![0xff, 0x00, 0x01]))
                    .await
                    .unwrap();
                drain(&mut stream).await;
            }
        })
        .await
    };
    let silent = raw_node(use_p2p_server, |_version, mut stream| async move {
        drain(&mut stream).await;
    })
    .await;

    let mut events = ours.net.events();
    let mut eth_events = ours.eth.subscribe();
    for node in [&unsolicited, &early, &malformed, &silent] {
        node.dial(&ours.net.local_addr()).await.unwrap();
    }
    let mut reasons = Vec::new();
    let mut penalties = Vec::new();
    let mut failures = Vec::new();
    let deadline = Instant::now() + SECS;
    // Collect: the unsolicited response's penalty, three disconnects and two handshake
    // failures.
    while (penalties.is_empty() || reasons.len() < 3 || failures.len() < 2)
        && Instant::now() < deadline
    {
        tokio::select! {
            e = events.recv() => match e {
                Ok(NetworkEvent::PeerPenalized { peer, penalty, reason }) => penalties.push((peer, penalty, reason)),
                Ok(NetworkEvent::PeerDisconnected { peer, reason, .. }) => reasons.push((peer, reason)),
                _ => {}
            },
            e = eth_events.recv() => if let Ok(EthEvent::HandshakeFailed { peer, error }) = e {
                failures.push((peer, error.to_string()));
            },
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
    let reason_of = |peer: PeerId| {
        reasons
            .iter()
            .find(|(p, _)| *p == peer)
            .and_then(|(_, r)| *r)
    };
    assert!(
        penalties
            .iter()
            .any(|(p, penalty, why)| *p == unsolicited.local_peer_id()
                && *penalty == Penalty::Major
                && why.contains("unsolicited")),
        "{penalties:?}"
    );
    assert_eq!(
        reason_of(early.local_peer_id()),
        Some(DisconnectReason::BreachOfProtocol),
        "{reasons:?}"
    );
    assert_eq!(
        reason_of(malformed.local_peer_id()),
        Some(DisconnectReason::BreachOfProtocol),
        "{reasons:?}"
    );
    assert_eq!(
        reason_of(silent.local_peer_id()),
        Some(DisconnectReason::PingTimeout),
        "{reasons:?}"
    );
    assert!(
        penalties
            .iter()
            .any(|(p, _, _)| *p == early.local_peer_id()),
        "{penalties:?}"
    );
    assert!(
        penalties
            .iter()
            .any(|(p, _, _)| *p == malformed.local_peer_id()),
        "{penalties:?}"
    );
    assert!(
        failures
            .iter()
            .any(|(p, e)| *p == early.local_peer_id() && e.contains("expected Status")),
        "{failures:?}"
    );
    assert!(
        failures
            .iter()
            .any(|(p, e)| *p == silent.local_peer_id() && e.contains("no Status")),
        "{failures:?}"
    );
    // The unsolicited responder keeps its session: one Major penalty is not a disconnect.
    assert!(ours.eth.get(&unsolicited.local_peer_id()).is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_peers_on_rlpx() {
    hostile_peers(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_peers_on_the_stream_stack() {
    hostile_peers(true).await;
}

/// Our requests to a slow peer: at most `max_inflight_requests` in flight, a deadline on
/// each, and a response that comes after its request timed out or was dropped is
/// dropped quietly (no penalty), while the session goes on.
async fn request_deadlines_and_cancellation(use_p2p_server: bool) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    const DELAY: Duration = Duration::from_millis(400);
    let (chain, _d) = open_chain(ChainSpec::devnet(), 0).await;
    let status = chain.chain_status();
    let outstanding = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    // A peer that answers every GetBlockHeaders with no headers, DELAY late.
    let slow = {
        let (outstanding, most) = (outstanding.clone(), most.clone());
        raw_node(use_p2p_server, move |version, mut stream| {
            let (status, outstanding, most) = (status.clone(), outstanding.clone(), most.clone());
            async move {
                exchange_status(&mut stream, version, &status).await;
                let (mut reader, mut writer) = stream.split();
                let (tx, mut rx) = mpsc::channel::<Message>(64);
                tokio::spawn(async move {
                    while let Some(msg) = rx.recv().await {
                        if writer.send(msg).await.is_err() {
                            break;
                        }
                    }
                });
                while let Ok(Some(Ok(msg))) =
                    tokio::time::timeout(Duration::from_secs(15), reader.next()).await
                {
                    let Ok(EthMessage::GetBlockHeaders(request)) =
                        EthMessage::decode(version, msg.code, &msg.payload)
                    else {
                        continue;
                    };
                    let now = outstanding.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    let (tx, outstanding) = (tx.clone(), outstanding.clone());
                    tokio::spawn(async move {
                        tokio::time::sleep(DELAY).await;
                        outstanding.fetch_sub(1, Ordering::SeqCst);
                        let response = EthMessage::BlockHeaders(RequestPair::new(
                            request.request_id,
                            BlockHeaders(vec![]),
                        ));
                        let _ = tx.send(encode(version, &response)).await;
                    });
                }
            }
        })
        .await
    };
    let config = EthConfig::default()
        .with_max_inflight_requests(2)
        .with_request_timeout(Duration::from_millis(1500));
    let ours = eth_node(use_p2p_server, &chain, &pool(), config, &EthVersion::ALL).await;
    let mut events = ours.net.events();
    ours.net.dial(&slow.local_addr()).await.unwrap();
    let peer = session(&ours, slow.local_peer_id()).await;
    let request = GetBlockHeaders {
        start: 0u64.into(),
        limit: 1,
        skip: 0,
        reverse: false,
    };

    // Four at once with two slots: two rounds, all within the deadline.
    let started = Instant::now();
    let results = futures::future::join_all((0..4).map(|_| peer.get_block_headers(request))).await;
    assert!(
        results.iter().all(|r| matches!(r, Ok(h) if h.is_empty())),
        "{results:?}"
    );
    assert!(started.elapsed() >= DELAY * 2, "{:?}", started.elapsed());
    assert_eq!(most.load(Ordering::SeqCst), 2);

    // Dropped after 100 ms: the id is forgotten, the late answer dropped.
    let dropped = tokio::time::timeout(Duration::from_millis(100), peer.get_block_headers(request));
    assert!(dropped.await.is_err());
    // Three at once with a deadline shorter than two rounds: the third times out.
    let short = EthConfig::default()
        .with_max_inflight_requests(1)
        .with_request_timeout(Duration::from_millis(600));
    let strict = eth_node(use_p2p_server, &chain, &pool(), short, &EthVersion::ALL).await;
    let mut strict_events = strict.net.events();
    strict.net.dial(&slow.local_addr()).await.unwrap();
    let strict_peer = session(&strict, slow.local_peer_id()).await;
    let results =
        futures::future::join_all((0..2).map(|_| strict_peer.get_block_headers(request))).await;
    assert!(results[0].is_ok(), "{:?}", results[0]);
    assert!(
        matches!(results[1], Err(EthError::Timeout(_))),
        "{:?}",
        results[1]
    );

    // Late answers arrive; neither node penalises the slow peer for them.
    tokio::time::sleep(DELAY * 2).await;
    for events in [&mut events, &mut strict_events] {
        assert_eq!(
            penalised_within(events, slow.local_peer_id(), Duration::from_millis(300)).await,
            None
        );
    }
    // And the session is still good.
    assert!(peer.get_block_headers(request).await.is_ok());
    assert!(strict_peer.get_block_headers(request).await.is_ok());
}

/// Any penalty of `peer` reported within `within`.
async fn penalised_within(
    events: &mut broadcast::Receiver<NetworkEvent>,
    peer: PeerId,
    within: Duration,
) -> Option<String> {
    wait_for(events, within, |e| match e {
        NetworkEvent::PeerPenalized {
            peer: p, reason, ..
        } if *p == peer => Some(reason.clone()),
        _ => None,
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_deadlines_and_cancellation_on_rlpx() {
    request_deadlines_and_cancellation(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_deadlines_and_cancellation_on_the_stream_stack() {
    request_deadlines_and_cancellation(true).await;
}
