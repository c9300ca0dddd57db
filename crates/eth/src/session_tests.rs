//! eth/70's paged receipts (EIP-7975) over real sessions, on both servers: an eth handler
//! serving a block whose receipts exceed the soft response size, a hand-driven peer
//! reading its answers byte for byte, the typed request API stitching the parts, and
//! hostile servers that lie about their parts.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use alloy_primitives::{Address, Log, B256};
use alloy_rlp::Encodable;
use devmux_network::{
    Message, MessageStream, Network, NetworkConfig, NetworkEvent, NodeKey, PeerCtx, PeerId,
    Penalty, Registrar,
};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::*;

const WAIT: Duration = Duration::from_secs(20);

// ---- the served chain ----------------------------------------------------------------

/// Transactions' gas limit in the test blocks: their receipts may take 125 000 bytes.
const TX_GAS: u64 = 1_000_000;
/// The blocks' gas limit: their receipts may take 7.5 MB together.
const BLOCK_GAS: u64 = 30_000_000;

fn receipt(bytes: usize, cumulative_gas_used: u64) -> Receipt {
    Receipt {
        tx_type: TxType::Eip1559,
        success: true,
        cumulative_gas_used,
        logs: vec![Log::new_unchecked(
            Address::repeat_byte(0x5a),
            vec![B256::repeat_byte(0x70)],
            vec![0x42; bytes].into(),
        )],
    }
}

/// A test block: its hash, and its receipts, of `bytes` data bytes each.
#[derive(Clone)]
struct TestBlock {
    hash: B256,
    receipts: Vec<Receipt>,
}

impl TestBlock {
    fn new(byte: u8, count: usize, bytes: usize) -> Self {
        let receipts = (0..count)
            .map(|i| receipt(bytes, 50_000 * (i as u64 + 1)))
            .collect();
        Self {
            hash: B256::repeat_byte(byte),
            receipts,
        }
    }

    /// What its (notional) header and body say: one 1 M gas transaction per receipt.
    fn query(&self) -> ReceiptsQuery {
        ReceiptsQuery {
            hash: self.hash,
            gas_limit: BLOCK_GAS,
            tx_gas_limits: vec![TX_GAS; self.receipts.len()],
        }
    }

    fn size(&self) -> usize {
        self.receipts.iter().map(Encodable::length).sum()
    }
}

/// Three blocks: a small one, one of 40 receipts of 100 kB (about 4 MB, twice the soft
/// response size), and a small one after it.
fn blocks() -> [TestBlock; 3] {
    let blocks = [
        TestBlock::new(0xa1, 3, 100),
        TestBlock::new(0xb2, 40, 100_000),
        TestBlock::new(0xc3, 2, 100),
    ];
    assert!(blocks[1].size() > limits::SOFT_RESPONSE_SIZE);
    blocks
}

fn chain_status() -> ChainStatus {
    let genesis = B256::repeat_byte(0x01);
    let filter = ForkFilter::new(genesis, 0, [], [], Head::default());
    ChainStatus {
        genesis,
        head_hash: genesis,
        head_number: 0,
        head_timestamp: 0,
        total_difficulty: alloy_primitives::U256::from(1),
        earliest: 0,
        fork_id: filter.current(),
        fork_filter: filter,
    }
}

/// A chain of receipts only, served whole per block (the handler does the cutting).
#[derive(Clone, Default)]
struct ReceiptChain(Arc<HashMap<B256, Vec<Receipt>>>);

impl ReceiptChain {
    fn of(blocks: &[TestBlock]) -> Self {
        Self(Arc::new(
            blocks
                .iter()
                .map(|b| (b.hash, b.receipts.clone()))
                .collect(),
        ))
    }
}

impl ChainReader for ReceiptChain {
    type Error = Infallible;

    fn chain_status(&self) -> ChainStatus {
        chain_status()
    }

    async fn headers(&self, _: GetBlockHeaders) -> Result<Vec<Header>, Infallible> {
        Ok(vec![])
    }

    async fn header_by_hash(&self, _: B256) -> Result<Option<Header>, Infallible> {
        Ok(None)
    }

    async fn header_by_number(&self, _: u64) -> Result<Option<Header>, Infallible> {
        Ok(None)
    }

    async fn bodies(&self, _: Vec<B256>) -> Result<Vec<BlockBody>, Infallible> {
        Ok(vec![])
    }

    /// Like devmux's store: whole blocks, stopping after the one that takes the total to
    /// the soft response size (the handler pages within that).
    async fn receipts(&self, hashes: Vec<B256>) -> Result<Vec<Vec<Receipt>>, Infallible> {
        let mut total = 0;
        let mut out = Vec::new();
        for list in hashes.iter().map_while(|h| self.0.get(h).cloned()) {
            total += list.iter().map(Encodable::length).sum::<usize>();
            out.push(list);
            if total >= limits::SOFT_RESPONSE_SIZE {
                break;
            }
        }
        Ok(out)
    }
}

struct NoPool;

impl TxPool for NoPool {
    type Error = Infallible;

    fn announcements(&self) -> Vec<TxAnnouncement> {
        vec![]
    }

    fn unknown(&self, hashes: &[B256]) -> Vec<B256> {
        hashes.to_vec()
    }

    fn get(&self, _: &[B256]) -> Vec<PooledTransaction> {
        vec![]
    }

    async fn insert(&self, txs: Vec<PooledTransaction>) -> Vec<Result<B256, Infallible>> {
        txs.iter().map(|tx| Ok(*tx.hash())).collect()
    }
}

// ---- nodes ---------------------------------------------------------------------------

/// A node on a loopback address of its own, port 0.
async fn start(use_p2p_server: bool, registrar: Registrar) -> Network {
    static NEXT: AtomicU8 = AtomicU8::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let config = NetworkConfig::default()
        .with_p2p_server(use_p2p_server)
        .with_listen_addr(([127, 70, n, 1], 0).into());
    Network::start(config, NodeKey::generate(), registrar)
        .await
        .expect("the node starts")
}

/// A node running the eth handler on `versions`, serving `chain`.
async fn eth_node(
    use_p2p_server: bool,
    chain: ReceiptChain,
    versions: &[EthVersion],
) -> (Network, EthPeers) {
    let (handler, peers) = EthHandler::new(chain, NoPool, EthConfig::default());
    let mut registrar = Registrar::new();
    registrar
        .session(protocols_for(versions), handler)
        .expect("registers");
    (start(use_p2p_server, registrar).await, peers)
}

/// `node`'s eth session with `peer`, once it is established.
async fn session(peers: &EthPeers, peer: PeerId) -> EthPeer {
    tokio::time::timeout(WAIT, async {
        loop {
            if let Some(p) = peers.get(&peer) {
                return p;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("an eth session")
}

/// A hand-driven eth peer: a node whose eth side is a bare stream, read and written by
/// the test. Its handler lasts as long as `_held`.
struct RawPeer {
    node: Network,
    stream: MessageStream,
    _held: oneshot::Sender<()>,
}

impl RawPeer {
    /// Dials `server`, speaking `version` only, and exchanges Status.
    async fn connect(use_p2p_server: bool, server: &Network, version: EthVersion) -> Self {
        let (tx, mut rx) = mpsc::channel(1);
        let mut registrar = Registrar::new();
        registrar
            .session(
                protocols_for(&[version]),
                move |_: PeerCtx, stream: MessageStream| {
                    let tx = tx.clone();
                    async move {
                        let (held, released) = oneshot::channel::<()>();
                        let _ = tx.send((stream, held)).await;
                        // The test owns the stream now; the session lasts until it is done.
                        let _ = released.await;
                        Ok::<_, Infallible>(())
                    }
                },
            )
            .expect("registers");
        let node = start(use_p2p_server, registrar).await;
        node.dial(&server.local_addr()).await.expect("dials");
        let (mut stream, held) = tokio::time::timeout(WAIT, rx.recv())
            .await
            .expect("a stream in time")
            .expect("a stream");
        let ours = Status::new(version, 1337, &chain_status());
        send(&mut stream, version, EthMessage::Status(ours)).await;
        let theirs = next(&mut stream, version).await;
        assert!(matches!(theirs, EthMessage::Status(_)), "{theirs:?}");
        Self {
            node,
            stream,
            _held: held,
        }
    }

    async fn shutdown(self) {
        let Self {
            node,
            stream,
            _held,
        } = self;
        drop((stream, _held));
        node.shutdown().await;
    }
}

async fn send(stream: &mut MessageStream, version: EthVersion, msg: EthMessage) {
    let (code, payload) = msg.encode_for(version).expect("encodes");
    stream
        .send(Message::new(code, payload))
        .await
        .expect("sends");
}

async fn next(stream: &mut MessageStream, version: EthVersion) -> EthMessage {
    let msg = tokio::time::timeout(WAIT, stream.next())
        .await
        .expect("a message in time")
        .expect("the stream is open")
        .expect("a message");
    EthMessage::decode(version, msg.code, &msg.payload).expect("decodes")
}

/// Sends `request` and returns the `Receipts` answering it: `(lastBlockIncomplete,
/// lists)`.
async fn ask(
    stream: &mut MessageStream,
    version: EthVersion,
    id: u64,
    request: GetReceipts,
) -> (bool, Vec<Vec<Receipt>>) {
    send(
        stream,
        version,
        EthMessage::GetReceipts(RequestPair::new(id, request)),
    )
    .await;
    loop {
        if let EthMessage::Receipts(pair) = next(stream, version).await {
            assert_eq!(pair.request_id, id);
            assert!(pair.message.fits(version));
            let incomplete = pair.message.last_block_incomplete();
            return (incomplete, pair.message.into_receipts());
        }
    }
}

// ---- (1) and (3): what the server sends ----------------------------------------------

/// On eth/70 the big block comes cut at the soft response size with
/// `lastBlockIncomplete` = 1, and a follow-up from `firstBlockReceiptIndex` brings
/// exactly the rest (and the next block); on eth/69 the same request brings whole blocks
/// only.
async fn serves_a_block_in_parts_on_eth70_and_whole_on_eth69(use_p2p_server: bool) {
    let [a, b, c] = blocks();
    let chain = ReceiptChain::of(&[a.clone(), b.clone(), c.clone()]);
    let (server, _) = eth_node(use_p2p_server, chain, &EthVersion::ALL).await;
    let hashes = vec![a.hash, b.hash, c.hash];

    let v70 = EthVersion::Eth70;
    let mut client = RawPeer::connect(use_p2p_server, &server, v70).await;
    let (incomplete, lists) = ask(
        &mut client.stream,
        v70,
        1,
        GetReceipts::new(v70, hashes.clone(), 0),
    )
    .await;
    assert!(incomplete, "lastBlockIncomplete = 1");
    assert_eq!(lists.len(), 2, "the block after the cut is not begun");
    assert_eq!(lists[0], a.receipts);
    let part = &lists[1];
    assert!(
        !part.is_empty() && part.len() < b.receipts.len(),
        "{}",
        part.len()
    );
    assert_eq!(part[..], b.receipts[..part.len()]);
    let sent: usize = lists.iter().flatten().map(Encodable::length).sum();
    // Receipts were added until the total reached the soft size: it is over by less
    // than one receipt.
    let soft = limits::SOFT_RESPONSE_SIZE;
    assert!(
        (soft..soft + b.receipts[0].length()).contains(&sent),
        "{sent}"
    );

    let k = part.len();
    let (incomplete, rest) = ask(
        &mut client.stream,
        v70,
        2,
        GetReceipts::new(v70, hashes[1..].to_vec(), k as u64),
    )
    .await;
    assert!(!incomplete);
    assert_eq!(rest, vec![b.receipts[k..].to_vec(), c.receipts.clone()]);
    client.shutdown().await;

    let v69 = EthVersion::Eth69;
    let mut client = RawPeer::connect(use_p2p_server, &server, v69).await;
    let (incomplete, lists) =
        ask(&mut client.stream, v69, 3, GetReceipts::new(v69, hashes, 0)).await;
    assert!(!incomplete);
    // Whole blocks until the soft size is reached: the big block whole, nothing after.
    assert_eq!(lists, vec![a.receipts, b.receipts]);
    client.shutdown().await;
    server.shutdown().await;
}

#[tokio::test]
async fn serves_a_block_in_parts_on_eth70_and_whole_on_eth69_on_rlpx() {
    serves_a_block_in_parts_on_eth70_and_whole_on_eth69(false).await;
}

#[tokio::test]
async fn serves_a_block_in_parts_on_eth70_and_whole_on_eth69_on_the_stream_stack() {
    serves_a_block_in_parts_on_eth70_and_whole_on_eth69(true).await;
}

// ---- (2): the typed API stitches ---------------------------------------------------

/// `GetReceipts` messages `node` has sent on `version`.
fn receipt_requests_sent(node: &Network, version: EthVersion) -> u64 {
    node.counters()
        .messages
        .iter()
        .filter(|m| {
            m.protocol == version.protocol_id()
                && m.direction == devmux_network::Direction::Outbound
                && m.code == MessageId::GetReceipts.code()
        })
        .map(|m| m.messages)
        .sum()
}

/// Two devmux nodes settle on eth/70; `get_block_receipts` and `get_receipts` fetch the
/// big block in parts and return it whole, matching its receipts root, then the rest.
async fn stitches_a_block_served_in_parts(use_p2p_server: bool) {
    let [a, b, c] = blocks();
    let chain = ReceiptChain::of(&[a.clone(), b.clone(), c.clone()]);
    let (server, _) = eth_node(use_p2p_server, chain, &EthVersion::ALL).await;
    let (client, peers) = eth_node(use_p2p_server, ReceiptChain::default(), &EthVersion::ALL).await;
    let id = client.dial(&server.local_addr()).await.expect("dials");
    let peer = session(&peers, id).await;
    assert_eq!(peer.version(), EthVersion::Eth70);

    let roots = [&a, &b, &c].map(|x| receipts_root(&x.receipts));
    let got = peer
        .get_block_receipts(vec![a.query(), b.query(), c.query()])
        .await
        .expect("receipts");
    // The block came in two parts: the first request and one follow-up.
    assert_eq!(receipt_requests_sent(&client, EthVersion::Eth70), 2);
    // The call ends with the block it stitched; the next asks for the rest.
    assert_eq!(got.len(), 2);
    assert_eq!(receipts_root(&got[0]), roots[0]);
    assert_eq!(
        receipts_root(&got[1]),
        roots[1],
        "the stitched block matches its root"
    );
    assert_eq!(got[1], b.receipts);
    let got = peer
        .get_block_receipts(vec![c.query()])
        .await
        .expect("receipts");
    assert_eq!(
        got.iter().map(|r| receipts_root(r)).collect::<Vec<_>>(),
        [roots[2]]
    );

    // By hash alone, under the chain's bounds, the same.
    let got = peer
        .get_receipts(vec![b.hash, c.hash])
        .await
        .expect("receipts");
    assert_eq!(got, vec![b.receipts.clone()]);
    assert_eq!(receipts_root(&got[0]), roots[1]);

    // An eth/69 session gets the block whole, in one response.
    let (old, old_peers) = eth_node(
        use_p2p_server,
        ReceiptChain::default(),
        &[EthVersion::Eth69],
    )
    .await;
    let id = old.dial(&server.local_addr()).await.expect("dials");
    let peer = session(&old_peers, id).await;
    assert_eq!(peer.version(), EthVersion::Eth69);
    let got = peer
        .get_block_receipts(vec![a.query(), b.query(), c.query()])
        .await
        .expect("receipts");
    assert_eq!(got, vec![a.receipts, b.receipts]);
    assert_eq!(receipt_requests_sent(&old, EthVersion::Eth69), 1);
    for node in [old, client, server] {
        node.shutdown().await;
    }
}

#[tokio::test]
async fn stitches_a_block_served_in_parts_on_rlpx() {
    stitches_a_block_served_in_parts(false).await;
}

#[tokio::test]
async fn stitches_a_block_served_in_parts_on_the_stream_stack() {
    stitches_a_block_served_in_parts(true).await;
}

// ---- (4): hostile servers ----------------------------------------------------------

type Forge = Arc<dyn Fn(&GetReceipts) -> Receipts + Send + Sync>;

/// A node that speaks eth/70 by hand and answers every `GetReceipts` with what `forge`
/// makes of it.
async fn forging_server(use_p2p_server: bool, forge: Forge) -> Network {
    let mut registrar = Registrar::new();
    let v70 = EthVersion::Eth70;
    registrar
        .session(
            protocols_for(&[v70]),
            move |_: PeerCtx, mut stream: MessageStream| {
                let forge = forge.clone();
                async move {
                    send(
                        &mut stream,
                        v70,
                        EthMessage::Status(Status::new(v70, 1337, &chain_status())),
                    )
                    .await;
                    while let Some(Ok(msg)) = stream.next().await {
                        let Ok(EthMessage::GetReceipts(r)) =
                            EthMessage::decode(v70, msg.code, &msg.payload)
                        else {
                            continue;
                        };
                        let reply = RequestPair::new(r.request_id, forge(&r.message));
                        let (code, payload) = EthMessage::Receipts(reply).encode();
                        if stream.send(Message::new(code, payload)).await.is_err() {
                            break;
                        }
                    }
                    Ok::<_, Infallible>(())
                }
            },
        )
        .expect("registers");
    start(use_p2p_server, registrar).await
}

/// Waits for a penalty of `peer` whose reason contains `needle`.
async fn penalty(
    events: &mut broadcast::Receiver<NetworkEvent>,
    peer: PeerId,
    needle: &str,
) -> Penalty {
    tokio::time::timeout(WAIT, async {
        loop {
            match events.recv().await {
                Ok(NetworkEvent::PeerPenalized {
                    peer: p,
                    penalty,
                    reason,
                }) if p == peer && reason.contains(needle) => return penalty,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => panic!("events closed"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no penalty saying {needle:?}"))
}

/// A server that flags a complete list as incomplete, or sends more receipts than the
/// block has transactions (at once, or in a follow-up), is refused: the call fails with
/// `InvalidResponse`, returns none of the receipts, and the peer takes a major penalty.
async fn lying_servers_are_refused_and_penalised(use_p2p_server: bool) {
    let block = TestBlock::new(0xd4, 3, 100);
    let receipts = block.receipts.clone();
    let extra = receipt(100, 1);
    let lies: Vec<(&str, Forge, &str)> = vec![
        (
            "lastBlockIncomplete on a complete list",
            Arc::new({
                let receipts = receipts.clone();
                move |_: &GetReceipts| Receipts::Paged {
                    last_block_incomplete: true,
                    blocks: vec![receipts.clone()],
                }
            }),
            "are all there",
        ),
        (
            "more receipts than transactions",
            Arc::new({
                let mut more = receipts.clone();
                more.push(extra.clone());
                move |_: &GetReceipts| Receipts::Paged {
                    last_block_incomplete: false,
                    blocks: vec![more.clone()],
                }
            }),
            "4 receipts for block",
        ),
        (
            "a follow-up past the block's transactions",
            Arc::new({
                let receipts = receipts.clone();
                move |r: &GetReceipts| {
                    // One receipt and the flag, then "the rest": three more.
                    let blocks = if r.first_block_receipt_index() == 0 {
                        vec![receipts[..1].to_vec()]
                    } else {
                        vec![receipts.clone()]
                    };
                    Receipts::Paged {
                        last_block_incomplete: r.first_block_receipt_index() == 0,
                        blocks,
                    }
                }
            }),
            "4 receipts for block",
        ),
    ];
    for (name, forge, needle) in lies {
        let server = forging_server(use_p2p_server, forge).await;
        let (client, peers) =
            eth_node(use_p2p_server, ReceiptChain::default(), &EthVersion::ALL).await;
        let mut events = client.events();
        let id = client.dial(&server.local_addr()).await.expect("dials");
        let peer = session(&peers, id).await;
        assert_eq!(peer.version(), EthVersion::Eth70, "{name}");
        let result = peer.get_block_receipts(vec![block.query()]).await;
        match result {
            Err(Error::InvalidResponse(why)) => assert!(why.contains(needle), "{name}: {why}"),
            other => panic!("{name}: {other:?}"),
        }
        let penalty = penalty(&mut events, id, "invalid Receipts: ").await;
        assert_eq!(penalty, Penalty::Major, "{name}");
        client.shutdown().await;
        server.shutdown().await;
    }
}

#[tokio::test]
async fn lying_servers_are_refused_and_penalised_on_rlpx() {
    lying_servers_are_refused_and_penalised(false).await;
}

#[tokio::test]
async fn lying_servers_are_refused_and_penalised_on_the_stream_stack() {
    lying_servers_are_refused_and_penalised(true).await;
}
