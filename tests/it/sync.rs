//! Sync and relay end to end, every scenario over both servers: a 5000-block sync from
//! two peers while one is killed midway, forged chains, transactions and blocks spread
//! over a 5-node network of mixed eth versions, and a pool that holds its bounds.
//!
//! Test nodes are composed directly: a chain store in a temp dir, a pool, the eth
//! handler, a network on 127.0.0.1 port 0, and `devmux-sync` over them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use devmux_chain::devnet::Devnet;
use devmux_chain::{BlockWithReceipts, Chain, ChainSpec, Pool, PoolConfig};
use devmux_eth::alloy_primitives::{keccak256, B256, U256};
use devmux_eth::{
    protocols_for, BlockBodies, BlockHashOrNumber, BlockHeaders, ChainStatus, EthConfig, EthEvent,
    EthHandler, EthMessage, EthPeers, EthVersion, Head, Header, PooledTransaction, Receipts,
    RequestPair, Status,
};
use devmux_network::{
    DisconnectReason, Message, MessageStream, Network, NetworkEvent, PeerCtx, PeerId, Penalty,
    Registrar,
};
use devmux_sync::{Producer, SyncConfig, SyncHandle, Syncer};
use devmux_tests::{eventually, start};
use tempfile::TempDir;
use tokio::sync::broadcast;
use tokio::time::Instant;

const SECS: Duration = Duration::from_secs(60);
const SYNC_BLOCKS: usize = 5000;

/// Devnet blocks 1..=5000, derived once per test binary.
fn devnet_blocks() -> &'static [BlockWithReceipts] {
    static BLOCKS: OnceLock<Vec<BlockWithReceipts>> = OnceLock::new();
    BLOCKS.get_or_init(|| {
        let started = std::time::Instant::now();
        let blocks: Vec<_> = Devnet::new().unwrap().blocks(SYNC_BLOCKS as u64).collect();
        eprintln!(
            "derived {SYNC_BLOCKS} devnet blocks in {:?}",
            started.elapsed()
        );
        blocks
    })
}

/// A test node: chain, pool, eth handler, network and sync.
struct Node {
    net: Network,
    eth: EthPeers,
    chain: Chain,
    pool: Pool,
    sync: SyncHandle,
    _dir: TempDir,
}

impl Node {
    fn id(&self) -> PeerId {
        self.net.local_peer_id()
    }

    async fn stop(&self) {
        self.sync.shutdown().await;
        self.net.shutdown().await;
    }
}

fn sync_config() -> SyncConfig {
    SyncConfig::default()
        .with_request_timeout(Duration::from_secs(3))
        .with_poll_interval(Duration::from_millis(200))
}

/// Starts a node holding devnet blocks 1..=`blocks`, speaking `versions`.
async fn node(
    use_p2p_server: bool,
    blocks: usize,
    versions: &[EthVersion],
    pool_config: PoolConfig,
    config: SyncConfig,
) -> Node {
    let eth_config = EthConfig::default()
        .with_announce_pool_on_connect(false)
        .with_event_capacity(4096);
    node_with(
        use_p2p_server,
        blocks,
        versions,
        pool_config,
        config,
        eth_config,
    )
    .await
}

/// [`node`] with its eth handler configured by `eth_config`.
async fn node_with(
    use_p2p_server: bool,
    blocks: usize,
    versions: &[EthVersion],
    pool_config: PoolConfig,
    config: SyncConfig,
    eth_config: EthConfig,
) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let chain = Chain::open_async(dir.path().join("chain.redb"), ChainSpec::devnet())
        .await
        .unwrap();
    // Serving chains are filled in batches: one commit (fsync) each.
    for batch in devnet_blocks()[..blocks].chunks(1000) {
        chain.insert_blocks(batch.to_vec()).await.unwrap();
    }
    node_on(
        dir,
        chain,
        use_p2p_server,
        versions,
        pool_config,
        config,
        eth_config,
    )
    .await
}

/// A node over `chain` (stored in `dir`).
async fn node_on(
    dir: TempDir,
    chain: Chain,
    use_p2p_server: bool,
    versions: &[EthVersion],
    pool_config: PoolConfig,
    config: SyncConfig,
    eth_config: EthConfig,
) -> Node {
    let pool = Pool::new(pool_config);
    let (handler, eth) = EthHandler::new(chain.clone(), pool.clone(), eth_config);
    let mut registrar = Registrar::new();
    registrar.session(protocols_for(versions), handler).unwrap();
    let net = start(use_p2p_server, registrar).await;
    let sync = Syncer::spawn(chain.clone(), pool.clone(), eth.clone(), config);
    Node {
        net,
        eth,
        chain,
        pool,
        sync,
        _dir: dir,
    }
}

/// A node holding `head` devnet blocks, and a second one, with the same, connected to
/// it: a victim and the honest peer (or witness) beside it.
async fn connected_pair(use_p2p_server: bool, head: usize) -> (Node, Node) {
    let all = EthVersion::ALL;
    let victim = node(
        use_p2p_server,
        head,
        &all,
        PoolConfig::devnet(),
        sync_config(),
    )
    .await;
    let other = node(
        use_p2p_server,
        head,
        &all,
        PoolConfig::devnet(),
        sync_config(),
    )
    .await;
    connect(&other, &victim).await;
    (victim, other)
}

/// Connects `a` to `b` and waits for the eth session on both ends.
async fn connect(a: &Node, b: &Node) {
    a.net.dial(&b.net.local_addr()).await.unwrap();
    let (ida, idb) = (a.id(), b.id());
    assert!(
        eventually(SECS, || a.eth.get(&idb).is_some()
            && b.eth.get(&ida).is_some())
        .await,
        "no eth session between {ida} and {idb}"
    );
}

async fn wait_head(node: &Node, hash: B256, timeout: Duration) -> bool {
    eventually(timeout, || node.chain.head().hash == hash).await
}

// ---- 5000 blocks from two peers, one killed midway -------------------------------------

async fn sync_from_two_peers_one_killed(use_p2p_server: bool) {
    let blocks = devnet_blocks();
    let all = EthVersion::ALL;
    let p1 = node(
        use_p2p_server,
        SYNC_BLOCKS,
        &all,
        PoolConfig::devnet(),
        sync_config(),
    )
    .await;
    let p2 = node(
        use_p2p_server,
        SYNC_BLOCKS,
        &all,
        PoolConfig::devnet(),
        sync_config(),
    )
    .await;
    // Smaller batches: the first insert comes early, and the kill lands midway.
    let config = sync_config()
        .with_headers_per_request(512)
        .with_bodies_per_request(64);
    let s = node(use_p2p_server, 0, &all, PoolConfig::devnet(), config).await;
    let mut status = s.sync.subscribe();

    let started = Instant::now();
    connect(&s, &p1).await;
    connect(&s, &p2).await;

    // Kill the peer whose chain the round follows as soon as the first batch is in.
    let (victim, at) = tokio::time::timeout(SECS, async {
        loop {
            status.changed().await.unwrap();
            let now = *status.borrow_and_update();
            if now.syncing && now.current > 0 {
                if let Some(peer) = s.sync.syncing_from() {
                    return (peer, now);
                }
            }
        }
    })
    .await
    .expect("sync never started");
    assert!(at.current < SYNC_BLOCKS as u64, "{at:?}");
    assert_eq!(at.target, SYNC_BLOCKS as u64);
    let (killed, survivor) = if victim == p1.id() {
        (&p1, &p2)
    } else {
        (&p2, &p1)
    };
    assert_eq!(victim, killed.id());
    // Kill it: the connection drops at once (a graceful shutdown would keep serving
    // while it winds down), then it shuts down. Note our head the moment its session is
    // gone.
    let (killing, gone) = tokio::join!(
        async {
            killed
                .net
                .disconnect(&s.id(), DisconnectReason::ClientQuitting)
                .await;
            killed.stop().await;
        },
        async {
            assert!(eventually(SECS, || s.eth.get(&victim).is_none()).await);
            s.chain.head().number
        }
    );
    let () = killing;
    let killed_at = gone;

    let head = blocks[SYNC_BLOCKS - 1].hash();
    assert!(
        wait_head(&s, head, SECS).await,
        "stuck at {:?} after the kill",
        s.sync.status()
    );
    let elapsed = started.elapsed();
    // The head moves inside the chain's insert; the counter follows a moment later.
    let counted = eventually(SECS, || {
        s.sync.stats().blocks_imported >= SYNC_BLOCKS as u64
    })
    .await;
    let stats = s.sync.stats();
    assert!(counted, "{stats:?}");
    eprintln!(
        "{}: {SYNC_BLOCKS} blocks in {elapsed:?}; header peer killed at head {} (status {at:?}), \
         {killed_at} when it was gone; {stats:?}",
        s.net.server_kind(),
        at.current,
    );
    assert!(
        killed_at < SYNC_BLOCKS as u64,
        "the kill came after the end"
    );
    // The round that followed the victim failed; another followed the survivor.
    assert!(stats.rounds >= 2, "{stats:?}");
    assert!(stats.requests_failed >= 1, "{stats:?}");
    assert_eq!(s.chain.head().total_difficulty, U256::from(SYNC_BLOCKS + 1));
    assert!(stats.headers_downloaded >= SYNC_BLOCKS as u64);
    assert_eq!(stats.blocks_imported, SYNC_BLOCKS as u64);
    assert!(stats.peers_penalised == 0, "nobody lied: {stats:?}");
    // The status settles on "in sync".
    assert!(eventually(SECS, || !s.sync.status().syncing).await);
    assert_eq!(s.sync.status().eth_syncing(), None);
    assert_eq!(s.sync.status().current, SYNC_BLOCKS as u64);
    // The survivor's chain, block for block.
    for n in [1u64, 2500, 5000] {
        let ours = s.chain.header_by_number(n).await.unwrap().unwrap();
        let theirs = survivor.chain.header_by_number(n).await.unwrap().unwrap();
        assert_eq!(ours, theirs);
    }
    s.stop().await;
    survivor.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_from_two_peers_one_killed_on_rlpx() {
    sync_from_two_peers_one_killed(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_from_two_peers_one_killed_on_the_stream_stack() {
    sync_from_two_peers_one_killed(true).await;
}

// ---- forged chains -------------------------------------------------------------------

/// What a forger serves: a header chain, and bodies and receipts by block hash.
struct Forged {
    headers: Vec<Header>,
    bodies: HashMap<B256, (devmux_eth::BlockBody, Vec<devmux_eth::Receipt>)>,
    /// Never answers body or receipt requests: a peer that stalls.
    stalls: bool,
    /// Notified at each request it leaves unanswered.
    stalled: Arc<tokio::sync::Notify>,
    /// Pushed as `NewBlock`s right after Status (eth/66–68 only).
    push: Vec<devmux_eth::NewBlock>,
    /// Raw `(code, payload)` messages sent after `push`, for what no encoder would make.
    raw: Vec<(u8, Vec<u8>)>,
}

impl Forged {
    /// Devnet headers 1..=`n` with header 150 changed (and sealed again by the signer,
    /// whose dev key is public): the chain no longer links there.
    fn broken_link(n: usize) -> Self {
        let mut headers: Vec<Header> = devnet_blocks()[..n]
            .iter()
            .map(|b| b.header.clone())
            .collect();
        headers[149].beneficiary = Default::default();
        reseal(&mut headers[149]);
        Self::with_real_bodies(headers, n)
    }

    /// A chain of `n` sealed headers that links, but whose transaction roots no body
    /// matches; the forger answers with the real devnet bodies.
    fn false_bodies(n: usize) -> Self {
        Self::with_real_bodies(
            relinked(n, |h| {
                h.transactions_root = keccak256(h.number.to_be_bytes());
                reseal(h);
            }),
            n,
        )
    }

    fn with_real_bodies(headers: Vec<Header>, n: usize) -> Self {
        let bodies = headers
            .iter()
            .zip(&devnet_blocks()[..n])
            .map(|(h, b)| (h.hash_slow(), (b.body.clone(), b.receipts.clone())))
            .collect();
        Self {
            headers,
            bodies,
            stalls: false,
            stalled: Default::default(),
            push: Vec::new(),
            raw: Vec::new(),
        }
    }

    /// The real devnet chain of `n` blocks with false receipts: each one's cumulative gas
    /// is one more than the block's.
    fn false_receipts(n: usize) -> Self {
        let headers = devnet_blocks()[..n]
            .iter()
            .map(|b| b.header.clone())
            .collect();
        let mut forged = Self::with_real_bodies(headers, n);
        for (_, receipts) in forged.bodies.values_mut() {
            for receipt in receipts {
                receipt.cumulative_gas_used += 1;
            }
        }
        forged
    }

    /// The real devnet chain of `n` blocks, from a peer that never answers for bodies.
    fn stalling(n: usize) -> Self {
        let headers = devnet_blocks()[..n]
            .iter()
            .map(|b| b.header.clone())
            .collect();
        Self {
            stalls: true,
            ..Self::with_real_bodies(headers, n)
        }
    }

    fn head(&self) -> &Header {
        self.headers.last().unwrap()
    }

    fn answer_headers(&self, start: BlockHashOrNumber, limit: u64) -> Vec<Header> {
        let genesis = ChainSpec::devnet().genesis;
        let index = match start {
            BlockHashOrNumber::Number(0) => return vec![genesis],
            BlockHashOrNumber::Number(n) => n as usize - 1,
            BlockHashOrNumber::Hash(h) => {
                match self.headers.iter().position(|x| x.hash_slow() == h) {
                    Some(i) => i,
                    None => return vec![],
                }
            }
        };
        self.headers
            .iter()
            .skip(index)
            .take(limit.min(1024) as usize)
            .cloned()
            .collect()
    }
}

/// Seals `header` again with the devnet signer's key (dev key 0, public like every dev
/// key): a forger that holds it can still not break a header rule.
fn reseal(header: &mut Header) {
    devmux_chain::seal::seal(header, &devmux_chain::devnet::dev_key(0).unwrap());
}

/// Devnet headers 1..=`n`, each changed by `change` after its parent hash is set to the
/// changed parent's, so that the changed chain links.
fn relinked(n: usize, change: impl Fn(&mut Header)) -> Vec<Header> {
    let mut parent = ChainSpec::devnet().genesis.hash_slow();
    let mut headers = Vec::with_capacity(n);
    for block in &devnet_blocks()[..n] {
        let mut h = block.header.clone();
        h.parent_hash = parent;
        change(&mut h);
        parent = h.hash_slow();
        headers.push(h);
    }
    headers
}

/// A hand-driven eth peer serving `forged`.
async fn forger(use_p2p_server: bool, forged: Arc<Forged>) -> Network {
    forger_speaking(use_p2p_server, forged, &EthVersion::ALL).await
}

/// [`forger`] speaking only `versions`.
async fn forger_speaking(
    use_p2p_server: bool,
    forged: Arc<Forged>,
    versions: &[EthVersion],
) -> Network {
    let mut registrar = Registrar::new();
    registrar
        .session(
            protocols_for(versions),
            move |peer: PeerCtx, stream: MessageStream| {
                let forged = forged.clone();
                async move {
                    let version = EthVersion::from_protocol_id(peer.protocol.as_str()).unwrap();
                    serve_forged(version, stream, &forged).await;
                    Ok::<_, devmux_network::Error>(())
                }
            },
        )
        .unwrap();
    start(use_p2p_server, registrar).await
}

async fn serve_forged(version: EthVersion, mut stream: MessageStream, forged: &Forged) {
    let spec = ChainSpec::devnet();
    let head = forged.head();
    let filter = spec.fork_filter(Head {
        number: head.number,
        timestamp: head.timestamp,
    });
    let chain = ChainStatus {
        genesis: spec.genesis_hash(),
        head_hash: head.hash_slow(),
        head_number: head.number,
        head_timestamp: head.timestamp,
        total_difficulty: U256::from(head.number + 1),
        earliest: 0,
        fork_id: filter.current(),
        fork_filter: filter,
    };
    let send = |msg: EthMessage| {
        let (code, payload) = msg.encode_for(version).unwrap();
        Message::new(code, payload)
    };
    if stream
        .send(send(EthMessage::Status(Status::new(version, 1337, &chain))))
        .await
        .is_err()
    {
        return;
    }
    for block in &forged.push {
        let msg = EthMessage::NewBlock(Box::new(block.clone()));
        if stream.send(send(msg)).await.is_err() {
            return;
        }
    }
    for (code, payload) in &forged.raw {
        if stream
            .send(Message::new(*code, payload.clone()))
            .await
            .is_err()
        {
            return;
        }
    }
    while let Some(Ok(msg)) = stream.next().await {
        let Ok(msg) = EthMessage::decode(version, msg.code, &msg.payload) else {
            return;
        };
        let reply = match msg {
            EthMessage::GetBlockHeaders(r) => EthMessage::BlockHeaders(RequestPair::new(
                r.request_id,
                BlockHeaders(forged.answer_headers(r.message.start, r.message.limit)),
            )),
            EthMessage::GetBlockBodies(_) | EthMessage::GetReceipts(_) if forged.stalls => {
                forged.stalled.notify_one();
                continue;
            }
            EthMessage::GetBlockBodies(r) => {
                let bodies = r
                    .message
                    .0
                    .iter()
                    .map_while(|h| forged.bodies.get(h).map(|b| b.0.clone()))
                    .collect();
                EthMessage::BlockBodies(RequestPair::new(r.request_id, BlockBodies(bodies)))
            }
            EthMessage::GetReceipts(r) => {
                let lists = r
                    .message
                    .0
                    .iter()
                    .map_while(|h| forged.bodies.get(h).map(|b| b.1.clone()))
                    .collect();
                EthMessage::Receipts(RequestPair::new(
                    r.request_id,
                    Receipts::new(version, lists),
                ))
            }
            _ => continue,
        };
        if stream.send(send(reply)).await.is_err() {
            return;
        }
    }
}

/// Waits for a penalty of `peer` whose reason contains `needle`.
async fn penalised(
    events: &mut broadcast::Receiver<NetworkEvent>,
    peer: PeerId,
    needle: &str,
) -> bool {
    devmux_tests::wait_for(events, SECS, |e| match e {
        NetworkEvent::PeerPenalized {
            peer: p, reason, ..
        } if *p == peer && reason.contains(needle) => Some(()),
        _ => None,
    })
    .await
    .is_some()
}

/// Three peers claim a longer chain than the honest peer: one serves headers that do
/// not link, one a linked header chain whose bodies do not exist (both are penalised
/// and disconnected), one the real chain but never answers for bodies (it stalls: a
/// minor penalty, and its work goes to the honest peer). The honest chain wins.
async fn forged_chains_lose(use_p2p_server: bool) {
    const GOOD: usize = 300;
    const FORGED: usize = 600;
    let all = EthVersion::ALL;
    let good = node(
        use_p2p_server,
        GOOD,
        &all,
        PoolConfig::devnet(),
        sync_config(),
    )
    .await;
    let s = node(use_p2p_server, 0, &all, PoolConfig::devnet(), sync_config()).await;
    let broken = forger(use_p2p_server, Arc::new(Forged::broken_link(FORGED))).await;
    let false_bodies = forger(use_p2p_server, Arc::new(Forged::false_bodies(FORGED))).await;
    let stalling = forger(use_p2p_server, Arc::new(Forged::stalling(FORGED))).await;
    let events = [s.net.events(), s.net.events(), s.net.events()];

    // The forgers first, so that they are the best peers when sync starts.
    for f in [&broken, &false_bodies, &stalling] {
        s.net.dial(&f.local_addr()).await.unwrap();
    }
    connect(&s, &good).await;

    let [mut e1, mut e2, mut e3] = events;
    assert!(
        penalised(&mut e1, broken.local_peer_id(), "does not link").await,
        "the forger of broken links was not penalised"
    );
    assert!(
        penalised(&mut e2, false_bodies.local_peer_id(), "transactions_root").await,
        "the forger of false bodies was not penalised"
    );
    assert!(
        penalised(&mut e3, stalling.local_peer_id(), "no answer within").await,
        "the stalling peer was not penalised"
    );
    let head = devnet_blocks()[GOOD - 1].hash();
    assert!(
        wait_head(&s, head, SECS).await,
        "did not sync the honest chain: {:?}",
        s.sync.status()
    );
    let stats = s.sync.stats();
    eprintln!("{}: forgers penalised; {stats:?}", s.net.server_kind());
    assert_eq!(stats.peers_penalised, 2, "{stats:?}");
    assert!(stats.requests_failed >= 1, "{stats:?}");
    assert!(
        eventually(SECS, || s.eth.get(&broken.local_peer_id()).is_none()
            && s.eth.get(&false_bodies.local_peer_id()).is_none())
        .await,
        "the forgers were not disconnected"
    );
    assert_eq!(s.chain.head().total_difficulty, U256::from(GOOD + 1));
    // Nothing of the forged chains was stored.
    let forged_head = Forged::false_bodies(FORGED).head().hash_slow();
    assert_eq!(s.chain.header_by_hash(forged_head).await.unwrap(), None);
    s.stop().await;
    good.stop().await;
    for f in [&broken, &false_bodies, &stalling] {
        f.shutdown().await;
    }
}

/// A node that imported devnet blocks 1..=300 from a chain file (`devmux import`: no
/// receipts in it) gets their receipts from its peers: a peer that serves false ones is
/// penalised and nothing of its answer is stored; the honest peer's fill every block.
async fn imported_blocks_get_their_receipts_from_peers(use_p2p_server: bool) {
    const N: usize = 300;
    let all = EthVersion::ALL;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("chain.rlp");
    let exported: Vec<u8> = devnet_blocks()[..N]
        .iter()
        .flat_map(|b| {
            devmux_eth::alloy_rlp::encode(devmux_eth::Block {
                header: b.header.clone(),
                body: b.body.clone(),
            })
        })
        .collect();
    std::fs::write(&file, exported).unwrap();
    let chain = Chain::open_async(dir.path().join("chain.redb"), ChainSpec::devnet())
        .await
        .unwrap();
    let imported = {
        let chain = chain.clone();
        tokio::task::spawn_blocking(move || {
            devmux_chain::import::import_file(&chain, &file, |_| {})
        })
        .await
        .unwrap()
        .unwrap()
    };
    assert_eq!(imported.imported, N as u64);
    let waiting = devnet_blocks()[..N]
        .iter()
        .filter(|b| !b.body.transactions.is_empty())
        .count() as u64;
    assert_eq!(chain.pending_receipts_count(), waiting);
    let eth_config = EthConfig::default()
        .with_announce_pool_on_connect(false)
        .with_event_capacity(4096);
    let s = node_on(
        dir,
        chain,
        use_p2p_server,
        &all,
        PoolConfig::devnet(),
        sync_config(),
        eth_config,
    )
    .await;
    assert_eq!(s.chain.head().hash, devnet_blocks()[N - 1].hash());

    // The liar alone first: its receipts do not match, so it is penalised and
    // disconnected, and not one block takes its receipts.
    let liar = forger(use_p2p_server, Arc::new(Forged::false_receipts(N))).await;
    let mut events = s.net.events();
    s.net.dial(&liar.local_addr()).await.unwrap();
    assert!(
        penalised(&mut events, liar.local_peer_id(), "sync: ").await,
        "the peer serving false receipts was not penalised"
    );
    assert!(
        eventually(SECS, || s.eth.get(&liar.local_peer_id()).is_none()).await,
        "the liar was not disconnected"
    );
    assert_eq!(s.chain.pending_receipts_count(), waiting);
    assert_eq!(s.sync.stats().receipts_backfilled, 0);

    let honest = node(use_p2p_server, N, &all, PoolConfig::devnet(), sync_config()).await;
    connect(&s, &honest).await;
    assert!(
        eventually(SECS, || s.chain.pending_receipts_count() == 0).await,
        "receipts still wait: {:?}",
        s.sync.stats()
    );
    let hashes: Vec<B256> = devnet_blocks()[..N].iter().map(|b| b.hash()).collect();
    let mut served = Vec::new();
    for chunk in hashes.chunks(100) {
        served.extend(s.chain.block_receipts_blocking(chunk).unwrap());
    }
    let expected: Vec<_> = devnet_blocks()[..N]
        .iter()
        .map(|b| b.receipts.clone())
        .collect();
    assert_eq!(served, expected);
    let stats = s.sync.stats();
    eprintln!("{}: receipts backfilled; {stats:?}", s.net.server_kind());
    assert_eq!(stats.receipts_backfilled, waiting);
    assert_eq!(stats.peers_penalised, 1, "{stats:?}");
    s.stop().await;
    honest.stop().await;
    liar.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imported_blocks_get_their_receipts_from_peers_on_rlpx() {
    imported_blocks_get_their_receipts_from_peers(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imported_blocks_get_their_receipts_from_peers_on_the_stream_stack() {
    imported_blocks_get_their_receipts_from_peers(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_chains_lose_on_rlpx() {
    forged_chains_lose(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_chains_lose_on_the_stream_stack() {
    forged_chains_lose(true).await;
}

// ---- a stranger cannot rewrite the chain ---------------------------------------------

/// A hostile peer that pushes one `NewBlock` with `header` (and an empty body) and
/// claims it as its head.
fn pushing(header: Header) -> Forged {
    let block = devmux_eth::Block {
        header: header.clone(),
        body: Default::default(),
    };
    let td = U256::from(header.number + 1).saturating_add(header.difficulty);
    let mut bodies = HashMap::new();
    bodies.insert(header.hash_slow(), (Default::default(), Vec::new()));
    Forged {
        headers: vec![header],
        bodies,
        stalls: false,
        stalled: Default::default(),
        push: vec![devmux_eth::NewBlock { block, td }],
        raw: Vec::new(),
    }
}

/// Issue 14's attacks on the header rules and seals (WIRE.md §7.1), each from a fresh key
/// against a node holding 64 devnet blocks that relays to a third node. Pushed as
/// `NewBlock`: the forged heavy child of genesis (difficulty 10^6, as in the report that
/// rewrote a chain), a block 65 from 1 h in the future, one with the wrong base fee
/// (those three sealed by the signer, so only the rule is broken), one sealed by a dev
/// key that is not a signer, and an honest block 65 re-sealed with the high-`s` twin of
/// its seal. Served to sync: an unsealed chain longer than ours. Each is refused on its
/// header, with a major penalty naming the rule or a fatal one for the seal; the head and
/// every canonical hash stay; nothing reaches the third node.
async fn forged_headers_are_refused(use_p2p_server: bool) {
    const HEAD: usize = 64;
    let eth68 = [EthVersion::Eth68];
    let (victim, witness) = connected_pair(use_p2p_server, HEAD).await;
    let canonical = |n: &Node| {
        let chain = n.chain.clone();
        async move {
            let mut out = Vec::new();
            for i in 0..=HEAD as u64 + 1 {
                out.push(
                    chain
                        .header_by_number(i)
                        .await
                        .unwrap()
                        .map(|h| h.hash_slow()),
                );
            }
            out
        }
    };
    let before = canonical(&victim).await;
    assert_eq!(before[HEAD], Some(devnet_blocks()[HEAD - 1].hash()));

    let changed = |n: usize, change: &dyn Fn(&mut Header)| {
        let mut h = devnet_blocks()[n - 1].header.clone();
        change(&mut h);
        reseal(&mut h);
        h
    };
    let heavy = changed(1, &|h| h.difficulty = U256::from(1_000_000u64));
    let future = changed(HEAD + 1, &|h| {
        h.timestamp = devmux_chain::validate::now_secs() + 3600
    });
    let base_fee = changed(HEAD + 1, &|h| h.base_fee_per_gas = Some(2_000_000_000));
    let mut by_stranger = devnet_blocks()[HEAD].header.clone();
    devmux_chain::seal::seal(&mut by_stranger, &devmux_chain::devnet::dev_key(5).unwrap());
    let high_s = devmux_chain::seal::high_s_twin(&devnet_blocks()[HEAD].header);
    let unsealed_chain = {
        let headers = relinked(HEAD + 10, |h| h.extra_data = Default::default());
        let mut forged = Forged::with_real_bodies(headers, HEAD + 10);
        forged.push.clear();
        forged
    };
    let unsealed_head = unsealed_chain.head().hash_slow();

    let mut attacks = Vec::new();
    for (header, needle, penalty) in [
        (heavy, "difficulty rule", Penalty::Major),
        (future, "timestamp rule", Penalty::Major),
        (base_fee, "base fee rule", Penalty::Major),
        (by_stranger, "not a signer", Penalty::Fatal),
        (high_s, "upper half of the curve order", Penalty::Fatal),
    ] {
        attacks.push((header.hash_slow(), pushing(header), needle, penalty));
    }
    attacks.push((
        unsealed_head,
        unsealed_chain,
        "65-byte seal",
        Penalty::Fatal,
    ));
    for (forged_hash, forged, needle, penalty) in attacks {
        let hostile = forger_speaking(use_p2p_server, Arc::new(forged), &eth68).await;
        let mut events = victim.net.events();
        victim.net.dial(&hostile.local_addr()).await.unwrap();
        let peer = hostile.local_peer_id();
        let got = devmux_tests::wait_for(&mut events, SECS, |e| match e {
            NetworkEvent::PeerPenalized {
                peer: p,
                reason,
                penalty,
            } if *p == peer && reason.contains(needle) => Some(*penalty),
            _ => None,
        })
        .await;
        assert_eq!(
            got,
            Some(penalty),
            "{}: the penalty for {needle:?}",
            victim.net.server_kind()
        );
        assert!(
            eventually(SECS, || victim.eth.get(&peer).is_none()).await,
            "the {needle:?} forger was not disconnected"
        );
        assert_eq!(
            canonical(&victim).await,
            before,
            "after the {needle:?} forger"
        );
        for n in [&victim, &witness] {
            assert_eq!(n.chain.header_by_hash(forged_hash).await.unwrap(), None);
        }
        assert_eq!(witness.chain.head().hash, before[HEAD].unwrap());
        hostile.shutdown().await;
    }
    victim.stop().await;
    witness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_headers_are_refused_on_rlpx() {
    forged_headers_are_refused(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_headers_are_refused_on_the_stream_stack() {
    forged_headers_are_refused(true).await;
}

/// A peer at genesis that sends `raw` after Status: nothing to sync from it, so what it
/// costs is only what `raw` does.
fn sending(raw: Vec<(u8, Vec<u8>)>) -> Forged {
    Forged {
        headers: vec![ChainSpec::devnet().genesis],
        bodies: HashMap::new(),
        stalls: false,
        stalled: Default::default(),
        push: Vec::new(),
        raw,
    }
}

/// The first penalty of `peer` whose reason contains `needle`: how bad, and why.
async fn penalty_of(
    events: &mut broadcast::Receiver<NetworkEvent>,
    peer: PeerId,
    needle: &str,
) -> Option<(Penalty, String)> {
    devmux_tests::wait_for(events, SECS, |e| match e {
        NetworkEvent::PeerPenalized {
            peer: p,
            reason,
            penalty,
        } if *p == peer && reason.contains(needle) => Some((*penalty, reason.clone())),
        _ => None,
    })
    .await
}

/// Issue 14's amplification attack, on real sockets: a hostile peer sends a response to
/// a request we never made (its body would not even decode), then a `NewBlock` whose body
/// holds 900 000 ten-byte legacy transactions (9 MB). The first is penalised for its
/// request id without being decoded (the session survives it); the second is refused
/// while scanning, at transaction 1 429 (the gas limit / 21 000), with a major penalty
/// naming the limit and a disconnect. Meanwhile an honest peer's `GetBlockHeaders` is
/// answered, and nothing of the block is stored.
async fn amplifying_messages_are_refused_before_decoding(use_p2p_server: bool) {
    const HEAD: usize = 64;
    let (victim, honest) = connected_pair(use_p2p_server, HEAD).await;

    let header = devnet_blocks()[HEAD].header.clone();
    let new_block = devmux_tests::hostile::amplifying_new_block(&header, 900_000);
    assert!(new_block.len() > 9_000_000);
    // BlockBodies for request id 0x7fff_0000, whose "bodies" are a string: malformed.
    let unsolicited =
        devmux_tests::hostile::rlp_list(&[&[0x84, 0x7f, 0xff, 0x00, 0x00], &[0x83, 1, 2, 3]]);
    let forged = sending(vec![(0x06, unsolicited), (0x07, new_block)]);
    let hostile = forger_speaking(use_p2p_server, Arc::new(forged), &[EthVersion::Eth68]).await;
    let peer = hostile.local_peer_id();
    let mut unsolicited_events = victim.net.events();
    let mut limit_events = victim.net.events();
    victim.net.dial(&hostile.local_addr()).await.unwrap();
    let (p, reason) = penalty_of(&mut unsolicited_events, peer, "unsolicited")
        .await
        .expect("no penalty for the unsolicited response");
    assert_eq!(p, Penalty::Major);
    assert!(!reason.contains("malformed"), "it was decoded: {reason}");
    let (p, reason) = penalty_of(&mut limit_events, peer, "transactions per body")
        .await
        .expect("no penalty naming the transactions-per-body limit");
    assert_eq!(p, Penalty::Major);
    assert!(reason.contains("1428"), "{reason}");
    assert!(
        eventually(SECS, || victim.eth.get(&peer).is_none()).await,
        "the amplifier was not disconnected"
    );
    // The honest peer is still served.
    let served = honest
        .eth
        .get(&victim.net.local_peer_id())
        .expect("the honest peer lost its session")
        .get_block_headers(devmux_eth::GetBlockHeaders {
            start: 1u64.into(),
            limit: 64,
            skip: 0,
            reverse: false,
        })
        .await
        .unwrap();
    assert_eq!(served.len(), HEAD);
    assert_eq!(victim.chain.head().number, HEAD as u64);
    assert_eq!(
        victim
            .chain
            .header_by_hash(header.hash_slow())
            .await
            .unwrap(),
        None
    );
    victim.stop().await;
    honest.stop().await;
    hostile.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amplifying_messages_are_refused_before_decoding_on_rlpx() {
    amplifying_messages_are_refused_before_decoding(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amplifying_messages_are_refused_before_decoding_on_the_stream_stack() {
    amplifying_messages_are_refused_before_decoding(true).await;
}

/// A hostile peer broadcasts, three times, a transfer re-signed with the high-`s` twin of
/// its signature (EIP-2 makes it invalid), beside a valid one. Each broadcast costs it a
/// major penalty naming the invalid signature; the valid transfer is pooled, the
/// invalid one never, and the pool remembers the bad hash, so that the copies cost no
/// second recovery.
async fn invalid_signatures_penalise_their_sender(use_p2p_server: bool) {
    use devmux_eth::alloy_consensus::{SignableTransaction, TxEip1559};
    let victim = node(
        use_p2p_server,
        0,
        &EthVersion::ALL,
        PoolConfig::devnet(),
        sync_config(),
    )
    .await;
    let devnet = Devnet::new().unwrap();
    let good = devnet.transfer(3, 0, devnet.keys()[4].address(), U256::from(1));
    let tx = TxEip1559 {
        chain_id: 1337,
        nonce: 0,
        gas_limit: 21_000,
        max_fee_per_gas: 2_000_000_000,
        max_priority_fee_per_gas: 1_000_000_000,
        to: devmux_eth::alloy_primitives::TxKind::Call(devnet.keys()[5].address()),
        value: U256::from(1),
        access_list: Default::default(),
        input: Default::default(),
    };
    let honest = devnet.keys()[2].sign_hash(&tx.signature_hash());
    let high_s = devmux_chain::signing::high_s_twin(&honest);
    let bad: devmux_eth::TransactionSigned = tx.into_signed(high_s).into();
    let bad_hash = *bad.tx_hash();
    let broadcast = EthMessage::Transactions(devmux_eth::Transactions(vec![bad, good.clone()]));
    let (code, payload) = broadcast.encode();
    let forged = sending(vec![(code, payload); 3]);
    let hostile = forger_speaking(use_p2p_server, Arc::new(forged), &[EthVersion::Eth68]).await;
    let peer = hostile.local_peer_id();
    let mut events = victim.net.events();
    victim.net.dial(&hostile.local_addr()).await.unwrap();
    let (penalty, reason) = penalty_of(&mut events, peer, "invalid signatures")
        .await
        .expect("no penalty for the invalid signature");
    assert_eq!(penalty, Penalty::Major);
    assert!(reason.contains("1 transactions"), "{reason}");
    assert!(
        eventually(SECS, || victim.pool.contains(good.tx_hash())).await,
        "the valid transfer beside it was not pooled"
    );
    assert!(!victim.pool.contains(&bad_hash));
    assert!(victim.pool.is_known_bad(&bad_hash));
    victim.stop().await;
    hostile.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_signatures_penalise_their_sender_on_rlpx() {
    invalid_signatures_penalise_their_sender(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_signatures_penalise_their_sender_on_the_stream_stack() {
    invalid_signatures_penalise_their_sender(true).await;
}

/// A peer that broadcasts 800 valid transactions at once (four messages), against a
/// node whose per-peer signature-recovery budget is 100 per second: the pool takes them
/// no faster than the budget allows (at most the burst of 100 plus 100 per second since
/// the dial), every message the import queue held in the end, and the peer is not
/// penalised for any of it.
async fn recoveries_are_budgeted_per_peer(use_p2p_server: bool) {
    let eth_config = EthConfig::default()
        .with_announce_pool_on_connect(false)
        .with_recovery_rate(100);
    let victim = node_with(
        use_p2p_server,
        0,
        &EthVersion::ALL,
        PoolConfig::devnet(),
        sync_config(),
        eth_config,
    )
    .await;
    let txs: Vec<devmux_eth::TransactionSigned> =
        transfers(800, 0).into_iter().map(Into::into).collect();
    let raw = txs
        .chunks(200)
        .map(|chunk| EthMessage::Transactions(devmux_eth::Transactions(chunk.to_vec())).encode())
        .collect();
    let forged = sending(raw);
    let hostile = forger_speaking(use_p2p_server, Arc::new(forged), &[EthVersion::Eth68]).await;
    let mut events = victim.net.events();
    let dialled = Instant::now();
    victim.net.dial(&hostile.local_addr()).await.unwrap();
    let mut checked = 0;
    let mut last_growth = Instant::now();
    let mut last_len = 0;
    while victim.pool.len() < 800 && last_growth.elapsed() < Duration::from_secs(3) {
        let len = victim.pool.len();
        // Read the clock after the pool: the bound only grows with time.
        let allowed = 100 + (100.0 * dialled.elapsed().as_secs_f64()) as usize;
        assert!(
            len <= allowed,
            "{len} recovered within {:?}",
            dialled.elapsed()
        );
        if len > last_len {
            (last_len, last_growth) = (len, Instant::now());
        }
        checked += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The import queue holds two messages beside the one being imported; a broadcast
    // beyond that is dropped whole (our queue, not the peer's fault).
    let pooled = victim.pool.len();
    assert!(pooled >= 400 && pooled % 200 == 0, "{pooled} pooled");
    assert!(
        checked >= 30,
        "pooled too fast to be budgeted: {checked} checks"
    );
    // Nothing the eth handler penalises (rates, floods, signatures). The forger does
    // not answer the relay's fetches, which sync may count as stalls: that is its own.
    while let Ok(event) = events.try_recv() {
        if let NetworkEvent::PeerPenalized { peer, reason, .. } = event {
            assert!(
                peer != hostile.local_peer_id() || !reason.starts_with("eth:"),
                "penalised: {reason}"
            );
        }
    }
    victim.stop().await;
    hostile.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recoveries_are_budgeted_per_peer_on_rlpx() {
    recoveries_are_budgeted_per_peer(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recoveries_are_budgeted_per_peer_on_the_stream_stack() {
    recoveries_are_budgeted_per_peer(true).await;
}

/// A peer whose valid chain branches off 65 blocks below our head of 100 and is longer
/// (so heavier): refused before its blocks are fetched, without a penalty, and the peer
/// stays connected, since an honest node on another branch looks just like it.
async fn a_reorg_deeper_than_64_is_refused_without_penalty(use_p2p_server: bool) {
    const HEAD: usize = 100;
    let victim = node(
        use_p2p_server,
        HEAD,
        &EthVersion::ALL,
        PoolConfig::devnet(),
        sync_config(),
    )
    .await;
    // Blocks 36..=101 on devnet block 35, each valid on its own.
    let mut parent = devnet_blocks()[34].header.clone();
    let mut headers = devnet_blocks()[..35]
        .iter()
        .map(|b| b.header.clone())
        .collect::<Vec<_>>();
    let mut bodies = HashMap::new();
    let signer = devmux_chain::devnet::dev_key(0).unwrap();
    for _ in 0..66 {
        let template =
            devmux_chain::devnet::BlockTemplate::devnet(parent.number + 1, Default::default());
        let block = devmux_chain::devnet::seal_block(&parent, template, Vec::new(), &signer);
        bodies.insert(block.hash(), (block.body.clone(), block.receipts.clone()));
        parent = block.header.clone();
        headers.push(block.header);
    }
    for b in &devnet_blocks()[..35] {
        bodies.insert(b.hash(), (b.body.clone(), b.receipts.clone()));
    }
    let branch = Forged {
        headers,
        bodies,
        stalls: false,
        stalled: Default::default(),
        push: Vec::new(),
        raw: Vec::new(),
    };
    let branch_head = branch.head().hash_slow();
    let hostile = forger(use_p2p_server, Arc::new(branch)).await;
    let mut events = victim.net.events();
    let head = victim.chain.head();
    victim.net.dial(&hostile.local_addr()).await.unwrap();
    assert!(
        eventually(SECS, || victim.eth.get(&hostile.local_peer_id()).is_some()).await,
        "no eth session with the peer on another branch"
    );
    // Long enough for several sync rounds against it (poll interval 200 ms).
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(victim.chain.head(), head, "the head moved");
    assert_eq!(
        victim.chain.header_by_hash(branch_head).await.unwrap(),
        None
    );
    for b in &devnet_blocks()[..HEAD] {
        assert_eq!(
            victim
                .chain
                .header_by_number(b.number())
                .await
                .unwrap()
                .map(|h| h.hash_slow()),
            Some(b.hash())
        );
    }
    while let Ok(event) = events.try_recv() {
        if let NetworkEvent::PeerPenalized { peer, reason, .. } = event {
            assert_ne!(peer, hostile.local_peer_id(), "penalised: {reason}");
        }
    }
    assert!(
        victim.eth.get(&hostile.local_peer_id()).is_some(),
        "the peer on another branch was disconnected"
    );
    victim.stop().await;
    hostile.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reorg_deeper_than_64_is_refused_without_penalty_on_rlpx() {
    a_reorg_deeper_than_64_is_refused_without_penalty(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reorg_deeper_than_64_is_refused_without_penalty_on_the_stream_stack() {
    a_reorg_deeper_than_64_is_refused_without_penalty(true).await;
}

/// A peer that pushes the next block and then withholds its receipts holds up its own
/// pushes only: another peer pushing the same block, receipts and all, has it imported
/// while the first still owes its answer (before this budget, imports ran one after the
/// other, and every pushed block waited out the stalling peer's deadline). The stalling
/// peer is not penalised before its deadline; the pushing one not at all.
async fn a_stalled_import_holds_up_only_its_own_peer(use_p2p_server: bool) {
    const HEAD: usize = 64;
    let eth68 = [EthVersion::Eth68];
    // A deadline far beyond what one import takes, so that the order below is not a race.
    let victim = node(
        use_p2p_server,
        HEAD,
        &EthVersion::ALL,
        PoolConfig::devnet(),
        sync_config().with_request_timeout(Duration::from_secs(30)),
    )
    .await;
    let next = &devnet_blocks()[HEAD];
    assert!(!next.receipts.is_empty(), "block 65 has a transaction");
    let new_block = devmux_eth::NewBlock {
        block: devmux_eth::Block {
            header: next.header.clone(),
            body: next.body.clone(),
        },
        td: U256::from(HEAD + 2),
    };
    let mut stalling = Forged::stalling(HEAD + 1);
    stalling.push = vec![new_block.clone()];
    let stalling = Arc::new(stalling);
    let mut pusher = sending(Vec::new());
    pusher
        .bodies
        .insert(next.hash(), (next.body.clone(), next.receipts.clone()));
    pusher.push = vec![new_block];

    let mut events = victim.net.events();
    let staller = forger_speaking(use_p2p_server, stalling.clone(), &eth68).await;
    victim.net.dial(&staller.local_addr()).await.unwrap();
    // The staller now holds a request of ours (the pushed block's receipts, or sync's
    // bodies) unanswered.
    tokio::time::timeout(SECS, stalling.stalled.notified())
        .await
        .expect("the victim asked the staller for something");
    let pushing = forger_speaking(use_p2p_server, Arc::new(pusher), &eth68).await;
    victim.net.dial(&pushing.local_addr()).await.unwrap();
    assert!(
        wait_head(&victim, next.hash(), SECS).await,
        "{}: the second push was not imported",
        victim.net.server_kind()
    );
    let (staller_id, pusher_id) = (staller.local_peer_id(), pushing.local_peer_id());
    while let Ok(event) = events.try_recv() {
        if let NetworkEvent::PeerPenalized { peer, reason, .. } = event {
            assert!(
                peer != staller_id && peer != pusher_id,
                "penalised before the staller's deadline: {reason}"
            );
        }
    }
    staller.shutdown().await;
    pushing.shutdown().await;
    victim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_import_holds_up_only_its_own_peer_on_rlpx() {
    a_stalled_import_holds_up_only_its_own_peer(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_import_holds_up_only_its_own_peer_on_the_stream_stack() {
    a_stalled_import_holds_up_only_its_own_peer(true).await;
}

// ---- five nodes: transactions and blocks ------------------------------------------------

/// Eth versions of the five nodes: 0–2 speak everything (eth/69 among them), node 3 up
/// to eth/68 and node 4 up to eth/67, so that every announcement form is used.
fn versions(i: usize) -> Vec<EthVersion> {
    let top = match i {
        3 => EthVersion::Eth68,
        4 => EthVersion::Eth67,
        _ => EthVersion::Eth69,
    };
    EthVersion::ALL.into_iter().filter(|v| *v <= top).collect()
}

/// A ring 0-1-2-3-4-0 with the chord 0-2: several hops, and several paths to most
/// nodes.
const LINKS: [(usize, usize); 6] = [(0, 1), (1, 2), (2, 3), (3, 4), (4, 0), (0, 2)];

async fn five_nodes(use_p2p_server: bool, pools: impl Fn(usize) -> PoolConfig) -> Vec<Node> {
    let mut nodes = Vec::new();
    for i in 0..5 {
        nodes.push(node(use_p2p_server, 10, &versions(i), pools(i), sync_config()).await);
    }
    for (a, b) in LINKS {
        connect(&nodes[a], &nodes[b]).await;
    }
    nodes
}

/// Counts what each node is sent, per (receiver, sender, item): every announcement and
/// broadcast of a transaction or block its eth sessions report.
#[derive(Default)]
struct Received {
    txs: Mutex<HashMap<(usize, PeerId, B256), usize>>,
    blocks: Mutex<HashMap<(usize, PeerId, B256), usize>>,
    /// Events a counter missed (it fell behind): the counts would be incomplete.
    lagged: Mutex<u64>,
}

fn count_received(nodes: &[Node]) -> (Arc<Received>, Vec<tokio::task::JoinHandle<()>>) {
    let received = Arc::new(Received::default());
    let tasks = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let mut events = n.eth.subscribe();
            let received = received.clone();
            tokio::spawn(async move {
                loop {
                    let event = match events.recv().await {
                        Ok(e) => e,
                        Err(broadcast::error::RecvError::Lagged(n)) => {
                            *received.lagged.lock().unwrap() += n;
                            continue;
                        }
                        Err(_) => return,
                    };
                    let (map, peer, hashes) = match event {
                        EthEvent::TransactionsAnnounced { peer, announcement } => {
                            (&received.txs, peer, announcement.hashes())
                        }
                        // One per `Transactions` message, whether the session could queue
                        // it for the pool or not (then relay fetches it).
                        EthEvent::TransactionsIncoming { peer, hashes, .. } => {
                            (&received.txs, peer, hashes)
                        }
                        EthEvent::NewBlockHashes { peer, hashes } => (
                            &received.blocks,
                            peer,
                            hashes.iter().map(|h| h.hash).collect(),
                        ),
                        EthEvent::NewBlock { peer, block } => {
                            (&received.blocks, peer, vec![block.block.header.hash_slow()])
                        }
                        EthEvent::BlockRangeUpdate { peer, update } => {
                            (&received.blocks, peer, vec![update.latest_hash])
                        }
                        _ => continue,
                    };
                    let mut map = map.lock().unwrap();
                    for h in hashes {
                        *map.entry((i, peer, h)).or_default() += 1;
                    }
                }
            })
        })
        .collect();
    (received, tasks)
}

/// `count` devnet transfers, valid for the pool: dev key `i mod 16` sends with
/// consecutive nonces from `first_nonce`.
fn transfers(count: usize, first_nonce: u64) -> Vec<PooledTransaction> {
    use devmux_eth::alloy_consensus::{SignableTransaction, TxEip1559};
    let to = Devnet::new().unwrap().keys()[15].address();
    // One sender each (keys derived for the test), so that the pool's per-sender cap
    // (16) is not what a test measures.
    (0..count)
        .map(|i| {
            let key = devmux_chain::signing::SecretKey::from_bytes(&keccak256(format!(
                "devmux-test-sender-{i}"
            )))
            .unwrap();
            let tx = TxEip1559 {
                chain_id: 1337,
                nonce: first_nonce,
                gas_limit: 21_000,
                max_fee_per_gas: 2_000_000_000,
                max_priority_fee_per_gas: 1_000_000_000,
                to: devmux_eth::alloy_primitives::TxKind::Call(to),
                value: U256::from(1),
                access_list: Default::default(),
                input: Default::default(),
            };
            let signature = key.sign_hash(&tx.signature_hash());
            devmux_eth::TransactionSigned::from(tx.into_signed(signature))
                .try_into_pooled()
                .unwrap()
        })
        .collect()
}

/// 500 transactions added at node 0 reach every pool of the network; no node sends any
/// transaction twice to the same peer.
async fn transactions_reach_every_pool_once(use_p2p_server: bool) {
    let nodes = five_nodes(use_p2p_server, |_| PoolConfig::devnet()).await;
    let (received, counters) = count_received(&nodes);
    let txs = transfers(500, 0);
    let hashes: Vec<B256> = txs.iter().map(|t| *t.hash()).collect();

    let started = Instant::now();
    let added = nodes[0].pool.add_all(txs);
    assert!(added.iter().all(Result::is_ok));
    let everywhere = eventually(SECS, || {
        nodes
            .iter()
            .all(|n| hashes.iter().all(|h| n.pool.contains(h)))
    })
    .await;
    let took = started.elapsed();
    let lens: Vec<usize> = nodes.iter().map(|n| n.pool.len()).collect();
    assert!(everywhere, "pools: {lens:?}");
    // Let stragglers arrive before counting.
    tokio::time::sleep(Duration::from_millis(500)).await;

    assert_eq!(*received.lagged.lock().unwrap(), 0);
    let received = received.txs.lock().unwrap().clone();
    let twice: Vec<_> = received.iter().filter(|(_, &n)| n > 1).collect();
    assert!(
        twice.is_empty(),
        "sent twice to the same peer: {:?}",
        &twice[..twice.len().min(5)]
    );
    // Node 0 sent them all first, so its neighbours know it has them. One that gets
    // a transaction from a third node before node 0's own message may still pass it
    // back (a race every gossip network has); without known sets all three
    // neighbours would send back all 500.
    let back = received.keys().filter(|(r, _, _)| *r == 0).count();
    assert!(back <= 25, "sent back to their origin: {back} of 1500");
    // Every node but 0 got every transaction from some neighbour.
    for (i, node) in nodes.iter().enumerate().skip(1) {
        for h in &hashes {
            assert!(
                received.keys().any(|(r, _, x)| *r == i && x == h),
                "node {i} ({}) got {h} by no message",
                node.id()
            );
        }
    }
    let stats: Vec<_> = nodes.iter().map(|n| n.sync.stats()).collect();
    let broadcast: u64 = stats.iter().map(|s| s.txs_broadcast).sum();
    let announced: u64 = stats.iter().map(|s| s.txs_announced).sum();
    let fetched: u64 = stats.iter().map(|s| s.txs_fetched).sum();
    eprintln!(
        "{}: 500 txs in every pool after {took:?}: {} per-peer sends ({broadcast} whole, \
         {announced} announced), {fetched} fetched",
        nodes[0].net.server_kind(),
        received.len(),
    );
    // Each transaction crosses each of the 6 links at most once each way.
    assert!(received.len() <= 500 * 2 * LINKS.len());
    assert!(broadcast > 0 && announced > 0 && fetched > 0);
    for c in counters {
        c.abort();
    }
    for n in &nodes {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_reach_every_pool_once_on_rlpx() {
    transactions_reach_every_pool_once(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_reach_every_pool_once_on_the_stream_stack() {
    transactions_reach_every_pool_once(true).await;
}

/// A block produced at node 0 (with transactions from its pool) reaches every node,
/// over NewBlock, NewBlockHashes and BlockRangeUpdate links alike; no block is sent back
/// to the node it came from nor twice to a peer; the block's transactions leave every
/// pool. Then a running producer's blocks are followed.
async fn produced_blocks_reach_every_node(use_p2p_server: bool) {
    let nodes = five_nodes(use_p2p_server, |_| PoolConfig::devnet()).await;
    let (received, counters) = count_received(&nodes);
    // Transactions spread first, so that including them empties every pool.
    let txs = transfers(20, 100);
    let hashes: Vec<B256> = txs.iter().map(|t| *t.hash()).collect();
    nodes[0].pool.add_all(txs);
    assert!(
        eventually(SECS, || nodes
            .iter()
            .all(|n| hashes.iter().all(|h| n.pool.contains(h))))
        .await
    );

    let producer =
        Producer::new(&nodes[0].sync, devmux_chain::devnet::dev_key(0).unwrap()).unwrap();
    let block = producer.produce().await.unwrap();
    let hash = block.hash();
    assert_eq!(block.number(), 11);
    assert_eq!(block.body.transactions.len(), 20);
    assert_eq!(nodes[0].chain.head().hash, hash);
    for (i, n) in nodes.iter().enumerate() {
        assert!(
            wait_head(n, hash, SECS).await,
            "node {i} at {:?}",
            n.chain.head()
        );
    }
    assert!(
        eventually(SECS, || nodes.iter().all(|n| n.pool.is_empty())).await,
        "pools: {:?}",
        nodes.iter().map(|n| n.pool.len()).collect::<Vec<_>>()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(*received.lagged.lock().unwrap(), 0);
    {
        let blocks = received.blocks.lock().unwrap();
        let of_block: Vec<_> = blocks.iter().filter(|((_, _, h), _)| *h == hash).collect();
        assert!(
            of_block.iter().all(|(_, &n)| n == 1),
            "sent twice: {of_block:?}"
        );
        assert!(
            of_block.iter().all(|((r, _, _), _)| *r != 0),
            "sent back to its producer: {of_block:?}"
        );
        // Every node but the producer was told by some neighbour.
        for i in 1..5 {
            assert!(
                of_block.iter().any(|((r, _, _), _)| *r == i),
                "node {i} never told"
            );
        }
    }
    let stats: Vec<_> = nodes.iter().map(|n| n.sync.stats()).collect();
    assert!(
        stats.iter().map(|s| s.range_updates_sent).sum::<u64>() > 0,
        "{stats:?}"
    );
    assert!(
        stats
            .iter()
            .map(|s| s.new_blocks_sent + s.block_hashes_sent)
            .sum::<u64>()
            > 0,
        "{stats:?}"
    );

    // A running producer: every node follows.
    let running = producer.spawn(Duration::from_millis(300));
    assert!(
        eventually(SECS, || nodes[0].chain.head().number >= 14).await,
        "producer stalled"
    );
    running.stop().await;
    let head = nodes[0].chain.head().hash;
    for (i, n) in nodes.iter().enumerate() {
        assert!(
            wait_head(n, head, SECS).await,
            "node {i} at {:?}",
            n.chain.head()
        );
    }
    eprintln!(
        "{}: blocks relayed; stats {:?}",
        nodes[0].net.server_kind(),
        stats
    );
    for c in counters {
        c.abort();
    }
    for n in &nodes {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produced_blocks_reach_every_node_on_rlpx() {
    produced_blocks_reach_every_node(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produced_blocks_reach_every_node_on_the_stream_stack() {
    produced_blocks_reach_every_node(true).await;
}

// ---- bounds under a flood --------------------------------------------------------------

/// A node whose pool holds 100 transactions is sent 1000: its pool stays at 100, the
/// rest is refused or never fetched, and it keeps relaying to a third node.
async fn pool_bounds_hold_under_a_flood(use_p2p_server: bool) {
    let small = PoolConfig {
        max_count: 100,
        local_slots: 0,
        ..PoolConfig::devnet()
    };
    let all = EthVersion::ALL;
    let source = node(use_p2p_server, 0, &all, PoolConfig::devnet(), sync_config()).await;
    let bounded = node(use_p2p_server, 0, &all, small, sync_config()).await;
    let third = node(use_p2p_server, 0, &all, PoolConfig::devnet(), sync_config()).await;
    connect(&bounded, &source).await;
    connect(&bounded, &third).await;
    let (received, counters) = count_received(std::slice::from_ref(&source));

    let txs = transfers(1000, 200);
    source.pool.add_all(txs);
    assert!(eventually(SECS, || bounded.pool.len() == 100).await);
    assert!(eventually(SECS, || third.pool.len() == 100).await);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(bounded.pool.len(), 100);
    assert_eq!(
        third.pool.len(),
        100,
        "relayed only what the middle node holds"
    );
    // What the middle node keeps, it does not send back to where it came from.
    assert_eq!(
        received.txs.lock().unwrap().len(),
        0,
        "transactions sent back"
    );
    for c in counters {
        c.abort();
    }
    let stats = bounded.sync.stats();
    eprintln!("{}: flood {stats:?}", bounded.net.server_kind());
    for n in [&source, &bounded, &third] {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_bounds_hold_under_a_flood_on_rlpx() {
    pool_bounds_hold_under_a_flood(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_bounds_hold_under_a_flood_on_the_stream_stack() {
    pool_bounds_hold_under_a_flood(true).await;
}
