//! The eth peers other code talks to: [`EthPeers`], the registry of established
//! sessions; [`EthPeer`], one session's typed request API; and [`EthEvent`], what
//! sessions report.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use alloy_primitives::{B256, U256};
use devmux_network::{DisconnectReason, Message, PeerCtx, PeerId, Penalty};
use tokio::sync::{broadcast, mpsc, oneshot, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::limits::DecodeLimits;
use crate::receipt_pages::{Collector, ReceiptsQuery, Step};
use crate::{
    limits, BlockBody, BlockHashNumber, BlockHashOrNumber, BlockRangeUpdate, Error, EthMessage,
    EthVersion, GetBlockBodies, GetBlockHeaders, GetPooledTransactions, Header, MessageId,
    NewBlock, NewPooledTransactionHashes, PooledTransaction, Receipt, RequestPair, Status,
};

/// Request ids of abandoned requests (timed out or dropped) remembered per peer, so that
/// their late responses are dropped quietly instead of being taken for unsolicited ones.
const ABANDONED_MEMORY: usize = 256;

/// What an eth session reports. Subscribe with [`EthPeers::subscribe`]; the channel is
/// bounded ([`crate::EthConfig::event_capacity`]) and a subscriber that falls behind
/// loses the oldest events.
///
/// These are the hooks for block and transaction relay and for sync: the handler itself
/// only records the peer's head and feeds received transactions to the pool.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum EthEvent {
    /// Status was exchanged and accepted: the peer is in [`EthPeers`] now.
    StatusExchanged {
        /// The peer.
        peer: PeerId,
        /// The negotiated version.
        version: EthVersion,
        /// The peer's Status.
        status: Status,
    },
    /// The Status exchange failed; the peer was disconnected. `error` names the check
    /// that failed (network id, version, genesis, fork id, timeout, a message before
    /// Status, a malformed Status).
    HandshakeFailed {
        /// The peer.
        peer: PeerId,
        /// Why.
        error: Arc<Error>,
    },
    /// An established session ended; the peer has left [`EthPeers`].
    SessionClosed {
        /// The peer.
        peer: PeerId,
    },
    /// The peer announced blocks by hash (eth/66–68).
    NewBlockHashes {
        /// The peer.
        peer: PeerId,
        /// The announced blocks.
        hashes: Vec<BlockHashNumber>,
    },
    /// The peer sent a whole new block (eth/66–68). Not validated.
    NewBlock {
        /// The peer.
        peer: PeerId,
        /// The block and its total difficulty.
        block: Arc<NewBlock>,
    },
    /// The peer's served block range changed (eth/69 and eth/70).
    BlockRangeUpdate {
        /// The peer.
        peer: PeerId,
        /// The new range.
        update: BlockRangeUpdate,
    },
    /// The peer announced pooled transactions by hash. The handler does not fetch them:
    /// that is transaction relay's decision.
    TransactionsAnnounced {
        /// The peer.
        peer: PeerId,
        /// The announcement (with types and sizes on eth/68+).
        announcement: NewPooledTransactionHashes,
    },
    /// The peer sent full transactions (`Transactions`). Emitted by the session's reader
    /// before the import starts (and before the pool announces any of them), so that
    /// relay can record at once that the peer has them and never sends them back
    /// (go-ethereum marks them known at the same point).
    TransactionsIncoming {
        /// The peer.
        peer: PeerId,
        /// The transactions' hashes.
        hashes: Vec<B256>,
        /// Whether they are on their way to the pool; false when the session's import
        /// queue was full and the message was dropped (relay may fetch them instead).
        queued: bool,
    },
    /// The peer sent full transactions and the pool has judged them.
    TransactionsReceived {
        /// The peer.
        peer: PeerId,
        /// Every transaction the message carried (the peer knows them all).
        hashes: Vec<B256>,
        /// Those the pool added (new and valid).
        added: Vec<B256>,
    },
}

/// What we know of a peer's chain head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerHead {
    /// Hash of the peer's best block: its Status head (eth/66–68) or latest served block
    /// (eth/69 and eth/70), then whatever higher block it announced since.
    pub hash: B256,
    /// The number of that block, when known: Status and `BlockRangeUpdate` carry it on
    /// eth/69 and eth/70; on eth/66–68 it is known once the peer announces a block.
    pub number: Option<u64>,
    /// Total difficulty of the peer's head as it last said (Status or `NewBlock`;
    /// eth/66–68 only).
    pub total_difficulty: Option<U256>,
    /// Earliest block whose body and receipts the peer serves (eth/69 and eth/70).
    pub earliest: Option<u64>,
}

impl PeerHead {
    fn from_status(status: &Status) -> Self {
        let range = status.block_range();
        Self {
            hash: status.head_hash(),
            number: range.map(|r| r.latest),
            total_difficulty: status.total_difficulty(),
            earliest: range.map(|r| r.earliest),
        }
    }

    /// Moves to a block the peer announced, if it is higher than what we know.
    fn announce(&mut self, hash: B256, number: u64, td: Option<U256>) {
        if self.number.is_none_or(|n| number > n) {
            self.hash = hash;
            self.number = Some(number);
            if td.is_some() {
                self.total_difficulty = td;
            }
        }
    }
}

/// The registry of established eth sessions, and the source of [`EthEvent`]s. Cheap to
/// clone; every clone sees the same peers.
#[derive(Clone)]
pub struct EthPeers {
    inner: Arc<PeersInner>,
}

struct PeersInner {
    peers: RwLock<HashMap<PeerId, EthPeer>>,
    events: broadcast::Sender<EthEvent>,
}

impl std::fmt::Debug for EthPeers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EthPeers")
            .field("peers", &self.len())
            .finish()
    }
}

impl EthPeers {
    pub(crate) fn new(event_capacity: usize) -> Self {
        let (events, _) = broadcast::channel(event_capacity.max(16));
        Self {
            inner: Arc::new(PeersInner {
                peers: RwLock::new(HashMap::new()),
                events,
            }),
        }
    }

    /// The peer's session, if it has one.
    pub fn get(&self, peer: &PeerId) -> Option<EthPeer> {
        self.read().get(peer).cloned()
    }

    /// Every established session.
    pub fn list(&self) -> Vec<EthPeer> {
        self.read().values().cloned().collect()
    }

    /// The ids of the peers with an established session.
    pub fn ids(&self) -> Vec<PeerId> {
        self.read().keys().copied().collect()
    }

    /// Number of established sessions.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Whether no session is established.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Subscribes to events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<EthEvent> {
        self.inner.events.subscribe()
    }

    pub(crate) fn emit(&self, event: EthEvent) {
        let _ = self.inner.events.send(event);
    }

    /// Registers a new session; it replaces an older one of the same peer (a
    /// simultaneous dial resolved in favour of the newer connection).
    pub(crate) fn insert(&self, peer: EthPeer) {
        let mut peers = self.write();
        // The session on the network's current connection to the peer wins, whichever
        // finished its Status exchange last.
        if let Some(existing) = peers.get(&peer.peer_id()) {
            if existing.ctx().is_current() && !peer.ctx().is_current() {
                drop(peers);
                peer.close();
                return;
            }
        }
        let old = peers.insert(peer.peer_id(), peer);
        drop(peers);
        if let Some(old) = old {
            old.close();
        }
    }

    /// Unregisters `peer`'s session, unless a newer one has replaced it.
    pub(crate) fn remove(&self, peer: &EthPeer) {
        let mut peers = self.write();
        if peers
            .get(&peer.peer_id())
            .is_some_and(|p| p.inner.session == peer.inner.session)
        {
            peers.remove(&peer.peer_id());
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<PeerId, EthPeer>> {
        self.inner
            .peers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<PeerId, EthPeer>> {
        self.inner
            .peers
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// One established eth session: the peer's Status and head, and the typed request API.
/// Cheap to clone. Once the session ends every method fails with
/// [`Error::SessionClosed`].
///
/// Requests carry eth/66+ request ids and are matched to their responses by id. Each has
/// a deadline ([`crate::EthConfig::request_timeout`]); at most
/// [`crate::EthConfig::max_inflight_requests`] are in flight per peer (more wait for a
/// slot within the same deadline). Dropping a request's future cancels it: its id is
/// forgotten, and a response arriving later is dropped without penalising the peer.
///
/// Responses are checked against their request's terms (count, numbering of headers,
/// transactions that were asked for, receipts within their blocks' bounds); a peer that
/// breaks them is penalised and the call fails with [`Error::InvalidResponse`]. Whether
/// the content is true (headers that link, bodies and receipts that match their headers'
/// roots) is for the caller to check.
#[derive(Clone)]
pub struct EthPeer {
    inner: Arc<PeerInner>,
}

struct PeerInner {
    ctx: PeerCtx,
    version: EthVersion,
    status: Status,
    session: u64,
    head: Mutex<PeerHead>,
    outbound: mpsc::Sender<Message>,
    requests: Mutex<Requests>,
    inflight: Semaphore,
    closed: CancellationToken,
    request_timeout: Duration,
    /// The chain's bounds, for receipts asked for by hash only.
    limits: DecodeLimits,
}

#[derive(Default)]
struct Requests {
    next_id: u64,
    pending: HashMap<u64, Pending>,
    abandoned: VecDeque<u64>,
}

struct Pending {
    expected: MessageId,
    reply: oneshot::Sender<Result<EthMessage, Error>>,
}

/// What became of a response the peer sent.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Dispatch {
    /// It answered a pending request.
    Delivered,
    /// It answered a request we had given up on: dropped.
    Late,
    /// No request of ours has its id.
    Unsolicited(u64),
    /// It has a pending request's id but is the wrong message; the request fails.
    WrongKind {
        /// What the request asks for.
        expected: MessageId,
        /// What came.
        got: MessageId,
    },
}

impl std::fmt::Debug for EthPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EthPeer")
            .field("peer", &self.inner.ctx.peer_id)
            .field("version", &self.inner.version)
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// Unique per session in this process.
static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

impl EthPeer {
    pub(crate) fn new(
        ctx: PeerCtx,
        version: EthVersion,
        status: Status,
        outbound: mpsc::Sender<Message>,
        max_inflight: usize,
        request_timeout: Duration,
        limits: DecodeLimits,
    ) -> Self {
        Self {
            inner: Arc::new(PeerInner {
                head: Mutex::new(PeerHead::from_status(&status)),
                ctx,
                version,
                status,
                session: NEXT_SESSION.fetch_add(1, Ordering::Relaxed),
                outbound,
                requests: Mutex::new(Requests::default()),
                inflight: Semaphore::new(max_inflight.max(1)),
                closed: CancellationToken::new(),
                request_timeout,
                limits,
            }),
        }
    }

    /// The peer's id.
    pub fn peer_id(&self) -> PeerId {
        self.inner.ctx.peer_id
    }

    /// The negotiated eth version.
    pub fn version(&self) -> EthVersion {
        self.inner.version
    }

    /// The Status the peer sent.
    pub fn status(&self) -> &Status {
        &self.inner.status
    }

    /// What we know of the peer's head (Status, then its announcements).
    pub fn head(&self) -> PeerHead {
        *lock(&self.inner.head)
    }

    /// The network's view of the peer (address, direction, which server).
    pub fn ctx(&self) -> &PeerCtx {
        &self.inner.ctx
    }

    /// Whether the session has ended.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.is_cancelled()
    }

    /// Waits until the session ends.
    pub async fn closed(&self) {
        self.inner.closed.cancelled().await;
    }

    /// Lowers the peer's reputation (for a fault found in what it sent, e.g. bodies that
    /// do not match their headers).
    pub fn penalize(&self, penalty: Penalty, why: impl Into<String>) {
        self.inner.ctx.penalize(penalty, why);
    }

    /// Disconnects the peer with `reason`.
    pub fn disconnect(&self, reason: DisconnectReason) {
        self.inner.ctx.disconnect(reason);
    }

    /// Asks for headers (at most [`limits::MAX_HEADERS`] come back, whatever the limit).
    pub async fn get_block_headers(&self, request: GetBlockHeaders) -> Result<Vec<Header>, Error> {
        let response = self
            .request(MessageId::BlockHeaders, |id| {
                EthMessage::GetBlockHeaders(RequestPair::new(id, request))
            })
            .await?;
        let EthMessage::BlockHeaders(pair) = response else {
            return Err(wrong(MessageId::BlockHeaders, &response));
        };
        let headers = pair.message.0;
        if let Err(why) = check_headers(&request, &headers) {
            return Err(self.invalid(MessageId::BlockHeaders, why));
        }
        Ok(headers)
    }

    /// Asks for the bodies of these blocks; the answer is a prefix-ordered subset (the
    /// peer stops at the first block it lacks or at its size limit).
    pub async fn get_block_bodies(&self, hashes: Vec<B256>) -> Result<Vec<BlockBody>, Error> {
        check_request_len(&hashes, "GetBlockBodies")?;
        let asked = hashes.len();
        let response = self
            .request(MessageId::BlockBodies, |id| {
                EthMessage::GetBlockBodies(RequestPair::new(id, GetBlockBodies(hashes)))
            })
            .await?;
        let EthMessage::BlockBodies(pair) = response else {
            return Err(wrong(MessageId::BlockBodies, &response));
        };
        let bodies = pair.message.0;
        if bodies.len() > asked {
            let why = format!("{} bodies for {asked} hashes", bodies.len());
            return Err(self.invalid(MessageId::BlockBodies, why));
        }
        Ok(bodies)
    }

    /// Asks for the receipts of these blocks, one list per block, for a prefix of the
    /// blocks (the peer stops at the first block it lacks or at its size limit), without
    /// blooms whatever the version carried: blooms are recomputed, not trusted.
    ///
    /// Each list is whole. On eth/70 (EIP-7975) a block that the peer sends in parts is
    /// asked for again from its first missing receipt until it is complete, each request
    /// with its own deadline; the call returns after that block (the caller asks for the
    /// ones after it next). Every list and part is checked as it comes, before anything
    /// is kept, against the bounds of [`EthPeer::get_block_receipts`]: here the chain's
    /// (its largest block, [`crate::DecodeLimits::max_block_gas`]), since only the
    /// hashes are known. Prefer [`EthPeer::get_block_receipts`] when the headers and
    /// bodies are at hand.
    pub async fn get_receipts(&self, hashes: Vec<B256>) -> Result<Vec<Vec<Receipt>>, Error> {
        check_request_len(&hashes, "GetReceipts")?;
        let inner = &self.inner;
        self.collect_receipts(Collector::for_hashes(inner.version, inner.limits, hashes))
            .await
    }

    /// [`EthPeer::get_receipts`] for blocks whose header and body are known, checked
    /// against them: the lists must hold exactly one receipt per transaction (a part of
    /// an incomplete block: fewer, and at least one), each receipt may take at most its
    /// transaction's gas limit / 8 bytes and all of a block's at most
    /// [`limits::max_block_receipts_size`] of its gas limit (EIP-7975's checks for a
    /// partial list, applied to every list). A peer that breaks them (more receipts than
    /// transactions, `lastBlockIncomplete` on a list that is complete or empty, a
    /// continuation that overruns its block, oversized receipts) is penalised
    /// ([`devmux_network::Penalty::Major`]) and the call fails with
    /// [`Error::InvalidResponse`], keeping nothing of it. Whether complete lists match
    /// their receipts roots is for the caller to check, as ever.
    pub async fn get_block_receipts(
        &self,
        blocks: Vec<ReceiptsQuery>,
    ) -> Result<Vec<Vec<Receipt>>, Error> {
        check_request_len(&blocks, "GetReceipts")?;
        let inner = &self.inner;
        self.collect_receipts(Collector::for_blocks(inner.version, inner.limits, blocks))
            .await
    }

    /// Sends `collector`'s requests until it has its answer.
    async fn collect_receipts(&self, mut collector: Collector) -> Result<Vec<Vec<Receipt>>, Error> {
        let mut request = collector.first_request();
        loop {
            let response = self
                .request(MessageId::Receipts, |id| {
                    EthMessage::GetReceipts(RequestPair::new(id, request))
                })
                .await?;
            let EthMessage::Receipts(pair) = response else {
                return Err(wrong(MessageId::Receipts, &response));
            };
            match collector.on_response(pair.message) {
                Ok(Step::Done(lists)) => return Ok(lists),
                Ok(Step::More(next)) => request = next,
                Err(why) => return Err(self.invalid(MessageId::Receipts, why)),
            }
        }
    }

    /// Asks for pooled transactions by hash; unknown ones are skipped by the peer.
    pub async fn get_pooled_transactions(
        &self,
        hashes: Vec<B256>,
    ) -> Result<Vec<PooledTransaction>, Error> {
        check_request_len(&hashes, "GetPooledTransactions")?;
        let asked: HashSet<B256> = hashes.iter().copied().collect();
        let response = self
            .request(MessageId::PooledTransactions, |id| {
                EthMessage::GetPooledTransactions(RequestPair::new(
                    id,
                    GetPooledTransactions(hashes),
                ))
            })
            .await?;
        let EthMessage::PooledTransactions(pair) = response else {
            return Err(wrong(MessageId::PooledTransactions, &response));
        };
        let txs = pair.message.0;
        if txs.len() > asked.len() {
            let why = format!("{} transactions for {} hashes", txs.len(), asked.len());
            return Err(self.invalid(MessageId::PooledTransactions, why));
        }
        if let Some(tx) = txs.iter().find(|tx| !asked.contains(tx.hash())) {
            let why = format!("transaction {} was not asked for", tx.hash());
            return Err(self.invalid(MessageId::PooledTransactions, why));
        }
        Ok(txs)
    }

    /// Sends an announcement or broadcast (`NewBlockHashes`, `NewBlock`, `Transactions`,
    /// `NewPooledTransactionHashes`, `BlockRangeUpdate`) in the session's version,
    /// waiting (within the request deadline) for room in the session's send queue.
    pub async fn send(&self, message: EthMessage) -> Result<(), Error> {
        let msg = self.announcement(&message)?;
        let timeout = self.inner.request_timeout;
        tokio::select! {
            _ = self.inner.closed.cancelled() => Err(Error::SessionClosed),
            sent = tokio::time::timeout(timeout, self.inner.outbound.send(msg)) => match sent {
                Ok(Ok(())) => Ok(()),
                Ok(Err(_)) => Err(Error::SessionClosed),
                Err(_) => Err(Error::Timeout(timeout)),
            },
        }
    }

    /// Like [`EthPeer::send`], but fails with [`Error::QueueFull`] at once instead of
    /// waiting: for relaying to many peers without a slow one holding up the rest.
    pub fn try_send(&self, message: EthMessage) -> Result<(), Error> {
        let msg = self.announcement(&message)?;
        if self.is_closed() {
            return Err(Error::SessionClosed);
        }
        self.inner.outbound.try_send(msg).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => Error::QueueFull,
            mpsc::error::TrySendError::Closed(_) => Error::SessionClosed,
        })
    }

    fn announcement(&self, message: &EthMessage) -> Result<Message, Error> {
        let id = message.message_id();
        let allowed = matches!(
            id,
            MessageId::NewBlockHashes
                | MessageId::NewBlock
                | MessageId::Transactions
                | MessageId::NewPooledTransactionHashes
                | MessageId::BlockRangeUpdate
        );
        if !allowed {
            return Err(Error::NotAnnouncement(id));
        }
        let (code, payload) = message.encode_for(self.inner.version)?;
        Ok(Message::new(code, payload))
    }

    /// Penalises the peer for a response that breaks its request's terms.
    fn invalid(&self, what: MessageId, why: String) -> Error {
        self.penalize(Penalty::Major, format!("eth: invalid {what:?}: {why}"));
        Error::InvalidResponse(why)
    }

    /// Sends the request `build` makes with a fresh id and waits for the response with
    /// that id, all within the request deadline.
    async fn request(
        &self,
        expected: MessageId,
        build: impl FnOnce(u64) -> EthMessage,
    ) -> Result<EthMessage, Error> {
        let inner = &self.inner;
        let timeout = inner.request_timeout;
        let deadline = Instant::now() + timeout;
        let work = async {
            let _slot = tokio::time::timeout_at(deadline, inner.inflight.acquire())
                .await
                .map_err(|_| Error::Timeout(timeout))?
                .map_err(|_| Error::SessionClosed)?;
            let (id, reply) = self.register(expected);
            // Forgets the id however this future ends: answered, failed or dropped.
            let _pending = PendingGuard { inner, id };
            let (code, payload) = build(id).encode_for(inner.version)?;
            tokio::time::timeout_at(deadline, inner.outbound.send(Message::new(code, payload)))
                .await
                .map_err(|_| Error::Timeout(timeout))?
                .map_err(|_| Error::SessionClosed)?;
            match tokio::time::timeout_at(deadline, reply).await {
                Ok(Ok(response)) => response,
                Ok(Err(_)) => Err(Error::SessionClosed),
                Err(_) => Err(Error::Timeout(timeout)),
            }
        };
        tokio::select! {
            _ = inner.closed.cancelled() => Err(Error::SessionClosed),
            result = work => result,
        }
    }

    fn register(&self, expected: MessageId) -> (u64, oneshot::Receiver<Result<EthMessage, Error>>) {
        lock(&self.inner.requests).register(expected)
    }

    /// Hands a response to the request with its id.
    pub(crate) fn dispatch(&self, response: EthMessage) -> Dispatch {
        lock(&self.inner.requests).dispatch(response)
    }

    /// Judges a response by its request id and kind alone, before its body is decoded:
    /// [`Dispatch::Delivered`] means "decode it and [`EthPeer::dispatch`] it". A late
    /// answer is forgotten, and a pending request answered with the wrong kind fails,
    /// as [`EthPeer::dispatch`] would do.
    pub(crate) fn screen_response(&self, request_id: u64, got: MessageId) -> Dispatch {
        lock(&self.inner.requests).screen(request_id, got)
    }

    /// Records an announced block as the peer's head if it is higher.
    pub(crate) fn announce_head(&self, hash: B256, number: u64, td: Option<U256>) {
        lock(&self.inner.head).announce(hash, number, td);
    }

    /// Records the peer's new served range (eth/69 and eth/70).
    pub(crate) fn update_range(&self, update: BlockRangeUpdate) {
        let mut head = lock(&self.inner.head);
        head.hash = update.latest_hash;
        head.number = Some(update.latest);
        head.earliest = Some(update.earliest);
    }

    /// Ends the session's API: pending and future requests fail with
    /// [`Error::SessionClosed`].
    pub(crate) fn close(&self) {
        self.inner.closed.cancel();
        self.inner.inflight.close();
        lock(&self.inner.requests).pending.clear();
    }

    pub(crate) fn closed_token(&self) -> CancellationToken {
        self.inner.closed.clone()
    }
}

/// Removes a request's id from the pending map when its future ends; an id removed
/// before its response came is remembered as abandoned.
struct PendingGuard<'a> {
    inner: &'a PeerInner,
    id: u64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        lock(&self.inner.requests).abandon(self.id);
    }
}

impl Requests {
    fn register(
        &mut self,
        expected: MessageId,
    ) -> (u64, oneshot::Receiver<Result<EthMessage, Error>>) {
        let (tx, rx) = oneshot::channel();
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        self.pending.insert(
            id,
            Pending {
                expected,
                reply: tx,
            },
        );
        (id, rx)
    }

    /// Forgets a request that is still pending, remembering its id as abandoned.
    fn abandon(&mut self, id: u64) {
        if self.pending.remove(&id).is_some() {
            if self.abandoned.len() == ABANDONED_MEMORY {
                self.abandoned.pop_front();
            }
            self.abandoned.push_back(id);
        }
    }

    fn screen(&mut self, id: u64, got: MessageId) -> Dispatch {
        match self.pending.get(&id) {
            Some(pending) if pending.expected == got => Dispatch::Delivered,
            Some(_) => {
                let Some(pending) = self.pending.remove(&id) else {
                    return Dispatch::Unsolicited(id);
                };
                let expected = pending.expected;
                let _ = pending
                    .reply
                    .send(Err(Error::UnexpectedResponse { expected, got }));
                Dispatch::WrongKind { expected, got }
            }
            None => match self.abandoned.iter().position(|&a| a == id) {
                Some(i) => {
                    self.abandoned.remove(i);
                    Dispatch::Late
                }
                None => Dispatch::Unsolicited(id),
            },
        }
    }

    fn dispatch(&mut self, response: EthMessage) -> Dispatch {
        let Some(id) = response.request_id() else {
            return Dispatch::Unsolicited(0);
        };
        let Some(pending) = self.pending.remove(&id) else {
            if let Some(i) = self.abandoned.iter().position(|&a| a == id) {
                self.abandoned.remove(i);
                return Dispatch::Late;
            }
            return Dispatch::Unsolicited(id);
        };
        let got = response.message_id();
        if got != pending.expected {
            let _ = pending.reply.send(Err(Error::UnexpectedResponse {
                expected: pending.expected,
                got,
            }));
            return Dispatch::WrongKind {
                expected: pending.expected,
                got,
            };
        }
        // The requester may have gone in the meantime; that is nobody's fault.
        let _ = pending.reply.send(Ok(response));
        Dispatch::Delivered
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while holding these locks; if something did, keep serving.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn wrong(expected: MessageId, got: &EthMessage) -> Error {
    Error::UnexpectedResponse {
        expected,
        got: got.message_id(),
    }
}

fn check_request_len<T>(items: &[T], what: &'static str) -> Result<(), Error> {
    if items.len() > limits::MAX_REQUEST_ITEMS {
        return Err(Error::ListTooLong {
            what,
            max: limits::MAX_REQUEST_ITEMS,
        });
    }
    Ok(())
}

/// Checks that headers answer `request`: no more than asked for, the first where it
/// starts (by number; by hash when asked by hash), and the numbers `skip + 1` apart in
/// the asked direction.
fn check_headers(request: &GetBlockHeaders, headers: &[Header]) -> Result<(), String> {
    if headers.len() as u64 > request.limit {
        return Err(format!(
            "{} headers for a limit of {}",
            headers.len(),
            request.limit
        ));
    }
    let Some(first) = headers.first() else {
        return Ok(());
    };
    match request.start {
        BlockHashOrNumber::Number(n) if first.number != n => {
            return Err(format!("first header is {}, asked from {n}", first.number));
        }
        BlockHashOrNumber::Hash(h) if first.hash_slow() != h => {
            return Err(format!("first header is not {h}"));
        }
        _ => {}
    }
    let step = request.skip.saturating_add(1);
    for pair in headers.windows(2) {
        let next = if request.reverse {
            pair[0].number.checked_sub(step)
        } else {
            pair[0].number.checked_add(step)
        };
        if next != Some(pair[1].number) {
            return Err(format!(
                "header {} follows {} (skip {}, reverse {})",
                pair[1].number, pair[0].number, request.skip, request.reverse
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(number: u64) -> Header {
        Header {
            number,
            ..Header::default()
        }
    }

    fn request(start: u64, limit: u64, skip: u64, reverse: bool) -> GetBlockHeaders {
        GetBlockHeaders {
            start: start.into(),
            limit,
            skip,
            reverse,
        }
    }

    #[test]
    fn header_responses_must_fit_their_request() {
        let h = |ns: &[u64]| ns.iter().map(|&n| header(n)).collect::<Vec<_>>();
        assert!(check_headers(&request(5, 3, 0, false), &h(&[5, 6, 7])).is_ok());
        assert!(check_headers(&request(5, 3, 0, false), &h(&[5, 6])).is_ok());
        assert!(check_headers(&request(5, 3, 0, false), &[]).is_ok());
        assert!(check_headers(&request(5, 2, 0, false), &h(&[5, 6, 7])).is_err());
        assert!(check_headers(&request(5, 3, 0, false), &h(&[6, 7])).is_err());
        assert!(check_headers(&request(5, 3, 0, false), &h(&[5, 7])).is_err());
        assert!(check_headers(&request(10, 3, 2, true), &h(&[10, 7, 4])).is_ok());
        assert!(check_headers(&request(1, 3, 0, true), &h(&[1, 0])).is_ok());
        assert!(check_headers(&request(u64::MAX, 2, 0, false), &h(&[u64::MAX, 0])).is_err());
        let by_hash = GetBlockHeaders {
            start: header(9).hash_slow().into(),
            limit: 2,
            skip: 0,
            reverse: false,
        };
        assert!(check_headers(&by_hash, &h(&[9, 10])).is_ok());
        assert!(check_headers(&by_hash, &h(&[8, 9])).is_err());
    }

    fn headers_response(id: u64) -> EthMessage {
        EthMessage::BlockHeaders(RequestPair::new(id, crate::BlockHeaders(vec![])))
    }

    #[test]
    fn responses_match_requests_by_id_and_kind() {
        let mut requests = Requests::default();
        let (a, mut rx_a) = requests.register(MessageId::BlockHeaders);
        let (b, mut rx_b) = requests.register(MessageId::BlockBodies);
        assert_ne!(a, b);
        assert_eq!(requests.dispatch(headers_response(a)), Dispatch::Delivered);
        assert!(matches!(
            rx_a.try_recv(),
            Ok(Ok(EthMessage::BlockHeaders(_)))
        ));
        // The same id twice: the second is unsolicited.
        assert_eq!(
            requests.dispatch(headers_response(a)),
            Dispatch::Unsolicited(a)
        );
        // An id never issued.
        assert_eq!(
            requests.dispatch(headers_response(9999)),
            Dispatch::Unsolicited(9999)
        );
        // The right id with the wrong message fails the request.
        assert_eq!(
            requests.dispatch(headers_response(b)),
            Dispatch::WrongKind {
                expected: MessageId::BlockBodies,
                got: MessageId::BlockHeaders
            }
        );
        assert!(matches!(
            rx_b.try_recv(),
            Ok(Err(Error::UnexpectedResponse { .. }))
        ));
        assert!(requests.pending.is_empty());
    }

    #[test]
    fn abandoned_requests_take_late_answers_quietly_and_stay_bounded() {
        let mut requests = Requests::default();
        let (id, rx) = requests.register(MessageId::BlockHeaders);
        drop(rx);
        requests.abandon(id);
        assert!(requests.pending.is_empty());
        assert_eq!(requests.dispatch(headers_response(id)), Dispatch::Late);
        // Only once.
        assert_eq!(
            requests.dispatch(headers_response(id)),
            Dispatch::Unsolicited(id)
        );
        // Abandoning an answered request changes nothing.
        let (id, _rx) = requests.register(MessageId::BlockHeaders);
        assert_eq!(requests.dispatch(headers_response(id)), Dispatch::Delivered);
        requests.abandon(id);
        assert!(requests.abandoned.is_empty());
        for _ in 0..ABANDONED_MEMORY * 2 {
            let (id, _rx) = requests.register(MessageId::BlockHeaders);
            requests.abandon(id);
        }
        assert_eq!(requests.abandoned.len(), ABANDONED_MEMORY);
    }

    #[test]
    fn head_moves_only_forward_on_announcements() {
        let mut head = PeerHead {
            hash: B256::ZERO,
            number: None,
            total_difficulty: Some(U256::from(5)),
            earliest: None,
        };
        head.announce(B256::repeat_byte(1), 10, None);
        assert_eq!(head.number, Some(10));
        assert_eq!(head.total_difficulty, Some(U256::from(5)));
        head.announce(B256::repeat_byte(2), 9, Some(U256::from(9)));
        assert_eq!(head.hash, B256::repeat_byte(1));
        head.announce(B256::repeat_byte(3), 11, Some(U256::from(12)));
        assert_eq!(
            (head.hash, head.number, head.total_difficulty),
            (B256::repeat_byte(3), Some(11), Some(U256::from(12)))
        );
    }
}
