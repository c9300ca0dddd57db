//! The eth session handler: Status handshake, serving requests from the chain and the
//! pool, routing responses to [`EthPeer`] requests, and recording announcements.
//!
//! # Tasks, per session
//!
//! - the **reader** (the handler's own task): reads every message, answers nothing
//!   itself. Responses go to their pending request, requests that pass the rate limit
//!   to the serve queue, received transactions to the import queue, announcements to
//!   [`EthEvent`]s. It never waits on another task, so a peer that floods us with
//!   requests cannot stop its responses from reaching us (and two nodes flooding each
//!   other cannot deadlock).
//! - the **server**: serves queued requests one at a time from [`ChainReader`] and
//!   [`TxPool`], each within the request deadline.
//! - the **importer**: hands received transactions to [`TxPool::insert`], one message
//!   at a time.
//! - the **writer**: writes what the server and the [`EthPeer`] API queue, each message
//!   within the request deadline.
//!
//! Every queue between them is bounded; all four end together when the session does.

use std::future::Future;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use alloy_rlp::Encodable;
use devmux_network::{
    BoxError, DisconnectReason, Handler, Message, MessageReader, MessageStream, MessageWriter,
    PeerCtx, Penalty,
};
use tokio::sync::{mpsc, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn, Instrument};

use crate::config::LARGE_MESSAGE;
use crate::limits::DecodeLimits;
use crate::peer::Dispatch;
use crate::ratelimit::{Refusals, TokenBucket, Verdict};
use crate::{
    limits, BlockBodies, BlockHeaders, ChainReader, ChainStatus, EthConfig, EthEvent, EthMessage,
    EthPeer, EthPeers, EthVersion, GetBlockHeaders, MessageId, NodeData, PooledTransaction,
    PooledTransactions, Receipt, Receipts, RequestPair, Status, TransactionSigned, TxPool,
};
use crate::{Error, NewPooledTransactionHashes};

/// Messages queued for the writer per session: responses, our requests, announcements.
const OUTBOUND_QUEUE: usize = 16;
/// `Transactions` messages waiting for the pool per session; more are dropped.
const IMPORT_QUEUE: usize = 2;
/// After disconnecting a peer, how long the session keeps draining its stream so that
/// the reason we gave is the one the connection ends with.
const DISCONNECT_LINGER: Duration = Duration::from_secs(5);
/// How long the session waits for its tasks once it has ended.
const TASK_GRACE: Duration = Duration::from_secs(2);
/// Room left under [`limits::MAX_MESSAGE_SIZE`] for the request id and list headers.
const ENVELOPE_ROOM: usize = 64 * 1024;

/// The eth session protocol handler: register it under [`crate::protocols`] with
/// [`devmux_network::Registrar::session`]. It runs once per peer on both ends of a
/// connection, over either server, and serves from `C` and `P`.
///
/// Status rules (`devp2p/caps/eth.md`, EIP-2124, EIP-7642):
/// - both sides send Status at once; ours goes out before we read anything;
/// - the peer's Status must arrive within [`EthConfig::status_timeout`], else the peer is
///   disconnected with reason 0x0b (`PingTimeout`, go-ethereum's `DiscReadTimeout`,
///   which is what go-ethereum sends when the eth handshake times out);
/// - a first message that is not Status, or a Status that does not decode, is a breach:
///   [`Penalty::Major`] and `BreachOfProtocol`;
/// - a Status whose network id, version, genesis or fork id (EIP-2124 rules, via
///   [`crate::ForkFilter::validate`]) does not match ours disconnects the peer with
///   `SubprotocolError` (0x10), without a penalty: the peer is on another chain, not
///   misbehaving. 0x10 is what go-ethereum sends for every failed eth handshake (its
///   protocol returns an error, which `p2p` maps to `DiscSubprotocolError`); reth's
///   `eth-wire` sends `ProtocolBreach` (0x02) for the same checks instead.
///
/// After the handshake the peer is in [`EthPeers`] until the session ends. Faults:
/// a malformed message, a message absent from the version, a second Status: penalty
/// and `BreachOfProtocol`; a response with an unknown request id: [`Penalty::Major`];
/// requests over the rate limit or the queue: refused (dropped unanswered), with one
/// [`Penalty::Minor`] per second of excess and a [`Penalty::Major`] when a second's
/// refusals reach the burst size.
pub struct EthHandler<C, P> {
    shared: Arc<Shared<C, P>>,
}

struct Shared<C, P> {
    chain: C,
    pool: P,
    config: EthConfig,
    peers: EthPeers,
    /// [`EthConfig::large_message_budget`], in bytes, shared by every session.
    large_messages: Arc<Semaphore>,
}

impl<C, P> std::fmt::Debug for EthHandler<C, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EthHandler")
            .field("config", &self.shared.config)
            .field("peers", &self.shared.peers)
            .finish_non_exhaustive()
    }
}

impl<C: ChainReader, P: TxPool> EthHandler<C, P> {
    /// A handler serving `chain` and `pool`, and the registry of its sessions.
    pub fn new(chain: C, pool: P, config: EthConfig) -> (Self, EthPeers) {
        let peers = EthPeers::new(config.event_capacity);
        let large_messages = Arc::new(Semaphore::new(
            config.large_message_budget.min(Semaphore::MAX_PERMITS),
        ));
        let handler = Self {
            shared: Arc::new(Shared {
                chain,
                pool,
                config,
                peers: peers.clone(),
                large_messages,
            }),
        };
        (handler, peers)
    }

    /// The registry of this handler's sessions.
    pub fn peers(&self) -> EthPeers {
        self.shared.peers.clone()
    }
}

impl<C: ChainReader, P: TxPool> Handler for EthHandler<C, P> {
    fn call(
        &self,
        peer: PeerCtx,
        stream: MessageStream,
    ) -> Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send + 'static>> {
        let shared = self.shared.clone();
        let span = tracing::debug_span!("eth", protocol = %peer.protocol);
        // A combinator, not an async block around the call: the block would keep its
        // own copy of the peer and the stream for the whole session.
        Box::pin(
            futures::TryFutureExt::map_err(run_session(shared, peer, stream), BoxError::from)
                .instrument(span),
        )
    }
}

/// How a handshake failed, and what to do about it.
enum Refusal {
    /// The peer went away or the stream failed: nothing to tell it.
    Gone,
    /// Disconnect with this reason; penalise if `penalty`.
    Disconnect {
        error: Error,
        reason: DisconnectReason,
        penalty: Option<Penalty>,
    },
}

/// Why an established session's reader stopped.
enum End {
    /// The peer closed the stream, or the stream failed.
    Closed,
    /// Another task ended the session (the writer failed, or a newer session replaced
    /// this one).
    Stopped,
    /// The peer broke the protocol: penalise and disconnect.
    Breach(String),
    /// The peer broke the message framing, which the network penalised: disconnect.
    Framing(String),
}

async fn run_session<C: ChainReader, P: TxPool>(
    shared: Arc<Shared<C, P>>,
    ctx: PeerCtx,
    stream: MessageStream,
) -> Result<(), Error> {
    let version = EthVersion::from_protocol_id(ctx.protocol.as_str())
        .ok_or_else(|| Error::UnsupportedProtocol(ctx.protocol.to_string()))?;
    let (mut reader, mut writer) = stream.split();
    let chain = shared.chain.chain_status();
    let ours = Status::new(version, shared.config.network_id, &chain);

    let theirs = match handshake(
        &shared.config,
        version,
        &ours,
        &chain,
        &mut reader,
        &mut writer,
    )
    .await
    {
        Ok(theirs) => theirs,
        Err(Refusal::Gone) => {
            debug!("peer left before the Status exchange completed");
            return Ok(());
        }
        Err(Refusal::Disconnect {
            error,
            reason,
            penalty,
        }) => {
            info!(peer = %ctx.peer_id, %version, ?reason, "eth handshake failed: {error}");
            let why = format!("eth handshake: {error}");
            shared.peers.emit(EthEvent::HandshakeFailed {
                peer: ctx.peer_id,
                error: Arc::new(error),
            });
            if let Some(penalty) = penalty {
                ctx.penalize(penalty, why);
            }
            ctx.disconnect(reason);
            linger(&mut reader).await;
            return Ok(());
        }
    };
    debug!(peer = %ctx.peer_id, %version, "eth status exchanged");
    if !ctx.is_current() {
        // A simultaneous dial settled on another connection to this peer while the
        // Status exchange ran: that connection's session is the one to keep.
        debug!(peer = %ctx.peer_id, "connection replaced during the Status exchange");
        return Ok(());
    }

    let config = &shared.config;
    let (out_tx, out_rx) = mpsc::channel(OUTBOUND_QUEUE);
    let peer = EthPeer::new(
        ctx.clone(),
        version,
        theirs.clone(),
        out_tx.clone(),
        config.max_inflight_requests,
        config.request_timeout,
        config.decode_limits,
    );
    let closed = peer.closed_token();
    let (serve_tx, serve_rx) = mpsc::channel(config.max_queued_requests.max(1));
    let (import_tx, import_rx) = mpsc::channel(IMPORT_QUEUE);
    let tasks = [
        tokio::spawn(
            write_loop(
                ctx.clone(),
                writer,
                out_rx,
                closed.clone(),
                config.request_timeout,
            )
            .in_current_span(),
        ),
        tokio::spawn(
            serve_loop(shared.clone(), version, serve_rx, out_tx, closed.clone()).in_current_span(),
        ),
        tokio::spawn(
            import_loop(shared.clone(), peer.clone(), import_rx, closed.clone()).in_current_span(),
        ),
    ];
    shared.peers.insert(peer.clone());
    shared.peers.emit(EthEvent::StatusExchanged {
        peer: ctx.peer_id,
        version,
        status: theirs,
    });

    let mut session = Session {
        peers: &shared.peers,
        peer: &peer,
        ctx: &ctx,
        version,
        requests: TokenBucket::new(config.request_rate, config.request_burst),
        announcements: TokenBucket::new(
            config.announcement_rate,
            config.announcement_rate.saturating_mul(2),
        ),
        refusals: Refusals::new(config.request_burst),
        serve: serve_tx,
        import: import_tx,
        limits: config.decode_limits,
        large_messages: shared.large_messages.clone(),
        large_budget: config.large_message_budget,
        large_wait: config.request_timeout,
    };
    let end = session.read_loop(&mut reader, &closed).await;
    drop(session);

    peer.close();
    shared.peers.remove(&peer);
    shared
        .peers
        .emit(EthEvent::SessionClosed { peer: ctx.peer_id });
    match end {
        End::Closed => debug!("eth session closed by the peer"),
        End::Stopped => debug!("eth session stopped"),
        End::Breach(why) => {
            info!(peer = %ctx.peer_id, "eth protocol breach: {why}");
            ctx.penalize(Penalty::Major, format!("eth: {why}"));
            ctx.disconnect(DisconnectReason::BreachOfProtocol);
            linger(&mut reader).await;
        }
        End::Framing(why) => {
            info!(peer = %ctx.peer_id, "eth stream broke the framing: {why}");
            ctx.disconnect(DisconnectReason::BreachOfProtocol);
        }
    }
    for task in tasks {
        let abort = task.abort_handle();
        if tokio::time::timeout(TASK_GRACE, task).await.is_err() {
            abort.abort();
        }
    }
    Ok(())
}

/// Sends our Status, then reads and validates the peer's, all within the Status
/// deadline.
async fn handshake(
    config: &EthConfig,
    version: EthVersion,
    ours: &Status,
    chain: &ChainStatus,
    reader: &mut MessageReader,
    writer: &mut MessageWriter,
) -> Result<Status, Refusal> {
    let deadline = Instant::now() + config.status_timeout;
    let timed_out = || Refusal::Disconnect {
        error: Error::StatusTimeout(config.status_timeout),
        reason: DisconnectReason::PingTimeout,
        penalty: None,
    };
    let breach = |error: Error| Refusal::Disconnect {
        error,
        reason: DisconnectReason::BreachOfProtocol,
        penalty: Some(Penalty::Major),
    };
    let mismatch = |error: Error| Refusal::Disconnect {
        error,
        reason: DisconnectReason::SubprotocolError,
        penalty: None,
    };

    let (code, payload) = EthMessage::Status(ours.clone())
        .encode_for(version)
        .map_err(|e| {
            // Status::new shapes Status for the version: this would be our bug.
            warn!(error = %e, "eth: cannot encode our own Status");
            Refusal::Gone
        })?;
    match tokio::time::timeout_at(deadline, writer.send(Message::new(code, payload))).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            debug!(error = %e, "could not send Status");
            return Err(Refusal::Gone);
        }
        Err(_) => return Err(timed_out()),
    }
    let msg = match tokio::time::timeout_at(deadline, reader.next()).await {
        Err(_) => return Err(timed_out()),
        Ok(None) => return Err(Refusal::Gone),
        // The network penalised the framing fault already: only disconnect.
        Ok(Some(Err(e))) if e.is_framing_fault() => {
            return Err(Refusal::Disconnect {
                error: Error::Network(e),
                reason: DisconnectReason::BreachOfProtocol,
                penalty: None,
            })
        }
        Ok(Some(Err(_))) => return Err(Refusal::Gone),
        Ok(Some(Ok(msg))) => msg,
    };
    if msg.code != MessageId::Status.code() {
        let id = MessageId::try_from(msg.code)
            .map_err(|code| breach(Error::UnknownMessage { version, code }))?;
        return Err(breach(Error::NotStatus(id)));
    }
    let theirs = match EthMessage::decode(version, msg.code, &msg.payload) {
        Ok(EthMessage::Status(status)) => status,
        Ok(other) => return Err(breach(Error::NotStatus(other.message_id()))),
        Err(e) => return Err(breach(e)),
    };
    validate_status(version, ours, &theirs, chain).map_err(mismatch)?;
    Ok(theirs)
}

/// The eth spec's Status rules, in go-ethereum's order: network id, version, genesis,
/// fork id.
fn validate_status(
    version: EthVersion,
    ours: &Status,
    theirs: &Status,
    chain: &ChainStatus,
) -> Result<(), Error> {
    if theirs.network_id() != ours.network_id() {
        return Err(Error::NetworkIdMismatch {
            ours: ours.network_id(),
            theirs: theirs.network_id(),
        });
    }
    if theirs.version() != version.as_u8() {
        return Err(Error::StatusVersionMismatch {
            negotiated: version,
            status: theirs.version(),
        });
    }
    if theirs.genesis() != ours.genesis() {
        return Err(Error::GenesisMismatch {
            ours: ours.genesis(),
            theirs: theirs.genesis(),
        });
    }
    chain
        .fork_filter
        .validate(theirs.fork_id())
        .map_err(|reason| Error::ForkIdRejected {
            theirs: theirs.fork_id(),
            reason,
        })
}

/// Drains the peer's stream, unread, until it ends or [`DISCONNECT_LINGER`] passes: the
/// disconnect we asked for closes it, and until then the session stays, so that it is
/// our reason the connection ends with rather than "the handler returned".
async fn linger(reader: &mut MessageReader) {
    let _ = tokio::time::timeout(DISCONNECT_LINGER, async {
        while let Some(Ok(_)) = reader.next().await {}
    })
    .await;
}

/// A request waiting to be served.
#[derive(Debug)]
enum Serve {
    Headers(u64, GetBlockHeaders),
    Bodies(u64, Vec<alloy_primitives::B256>),
    /// The hashes, and the first receipt wanted of the first block (eth/70; else 0).
    Receipts(u64, Vec<alloy_primitives::B256>, u64),
    Pooled(u64, Vec<alloy_primitives::B256>),
    NodeData(u64),
}

impl Serve {
    /// The empty answer, for when serving fails or takes too long.
    fn empty_response(&self, version: EthVersion) -> EthMessage {
        match self {
            Self::Headers(id, _) => {
                EthMessage::BlockHeaders(RequestPair::new(*id, BlockHeaders(vec![])))
            }
            Self::Bodies(id, _) => {
                EthMessage::BlockBodies(RequestPair::new(*id, BlockBodies(vec![])))
            }
            Self::Receipts(id, _, _) => {
                EthMessage::Receipts(RequestPair::new(*id, Receipts::new(version, vec![])))
            }
            Self::Pooled(id, _) => {
                EthMessage::PooledTransactions(RequestPair::new(*id, PooledTransactions(vec![])))
            }
            Self::NodeData(id) => EthMessage::NodeData(RequestPair::new(*id, NodeData(vec![]))),
        }
    }
}

/// A `Transactions` message on its way to the pool.
struct Import {
    hashes: Vec<alloy_primitives::B256>,
    txs: Vec<PooledTransaction>,
}

/// The reader's state for one established session.
struct Session<'a> {
    peers: &'a EthPeers,
    peer: &'a EthPeer,
    ctx: &'a PeerCtx,
    version: EthVersion,
    requests: TokenBucket,
    announcements: TokenBucket,
    refusals: Refusals,
    serve: mpsc::Sender<Serve>,
    import: mpsc::Sender<Import>,
    limits: DecodeLimits,
    large_messages: Arc<Semaphore>,
    large_budget: usize,
    large_wait: Duration,
}

/// What to do with a message, judged before it is decoded.
enum Screened {
    Decode,
    Drop,
}

impl Session<'_> {
    async fn read_loop(&mut self, reader: &mut MessageReader, closed: &CancellationToken) -> End {
        loop {
            let next = tokio::select! {
                _ = closed.cancelled() => return End::Stopped,
                next = reader.next() => next,
            };
            let msg = match next {
                None => return End::Closed,
                Some(Err(e)) if e.is_framing_fault() => return End::Framing(e.to_string()),
                Some(Err(e)) => {
                    debug!(error = %e, "eth stream failed");
                    return End::Closed;
                }
                Some(Ok(msg)) => msg,
            };
            match self.screen(msg.code, &msg.payload) {
                Ok(Screened::Decode) => {}
                Ok(Screened::Drop) => continue,
                Err(why) => return End::Breach(why),
            }
            // A large message waits for room in the node-wide budget, reading nothing
            // more from this peer meanwhile: backpressure, not a penalty.
            let _room = if msg.payload.len() >= LARGE_MESSAGE {
                let bytes = msg.payload.len().min(self.large_budget);
                let wait = self.large_messages.clone().acquire_many_owned(bytes as u32);
                tokio::select! {
                    _ = closed.cancelled() => return End::Stopped,
                    room = tokio::time::timeout(self.large_wait, wait) => match room {
                        Ok(Ok(room)) => Some(room),
                        Ok(Err(_)) => return End::Stopped,
                        Err(_) => {
                            debug!(code = msg.code, bytes = msg.payload.len(), "no room for a large message in time: dropped");
                            continue;
                        }
                    },
                }
            } else {
                None
            };
            let decoded = match EthMessage::decode_bounded(
                self.version,
                msg.code,
                &msg.payload,
                &self.limits,
            ) {
                Ok(decoded) => decoded,
                Err(e) => return End::Breach(format!("message {:#04x}: {e}", msg.code)),
            };
            if let Err(why) = self.on_message(decoded) {
                return End::Breach(why);
            }
        }
    }

    /// Judges a message by its code and request id, before its body is decoded: a
    /// response must answer a request of ours (an unsolicited one is penalised, a late
    /// one dropped), and an announcement must be within the peer's rate (else dropped).
    /// An `Err` is a breach.
    fn screen(&mut self, code: u8, payload: &[u8]) -> Result<Screened, String> {
        let Ok(id) = MessageId::try_from(code) else {
            // The decoder names the fault.
            return Ok(Screened::Decode);
        };
        if id.is_response() {
            let request_id = crate::bounds::peek_request_id(payload)
                .map_err(|e| format!("message {code:#04x}: {e}"))?;
            return Ok(match self.peer.screen_response(request_id, id) {
                Dispatch::Delivered => Screened::Decode,
                Dispatch::Late => {
                    debug!(
                        ?id,
                        request_id, "late response to an abandoned request dropped"
                    );
                    Screened::Drop
                }
                Dispatch::Unsolicited(request_id) => {
                    debug!(?id, request_id, "unsolicited response, not decoded");
                    self.ctx.penalize(
                        Penalty::Major,
                        format!("eth: unsolicited {id:?} (request id {request_id} is not ours)"),
                    );
                    Screened::Drop
                }
                Dispatch::WrongKind { expected, got } => {
                    self.ctx.penalize(
                        Penalty::Major,
                        format!("eth: {got:?} in response to a request for {expected:?}"),
                    );
                    Screened::Drop
                }
            });
        }
        if !id.is_request() && id != MessageId::Status && !self.announcements.try_take() {
            self.refuse("announcement");
            return Ok(Screened::Drop);
        }
        Ok(Screened::Decode)
    }

    /// Routes one message; an `Err` is a breach.
    fn on_message(&mut self, msg: EthMessage) -> Result<(), String> {
        match msg {
            EthMessage::Status(_) => return Err("Status after the handshake".into()),
            EthMessage::GetBlockHeaders(r) => self.admit(Serve::Headers(r.request_id, r.message)),
            EthMessage::GetBlockBodies(r) => self.admit(Serve::Bodies(r.request_id, r.message.0)),
            EthMessage::GetReceipts(r) => {
                let first = r.message.first_block_receipt_index();
                self.admit(Serve::Receipts(r.request_id, r.message.0, first))
            }
            EthMessage::GetPooledTransactions(r) => {
                self.admit(Serve::Pooled(r.request_id, r.message.0))
            }
            EthMessage::GetNodeData(r) => self.admit(Serve::NodeData(r.request_id)),
            response @ (EthMessage::BlockHeaders(_)
            | EthMessage::BlockBodies(_)
            | EthMessage::Receipts(_)
            | EthMessage::PooledTransactions(_)
            | EthMessage::NodeData(_)) => self.on_response(response),
            // Within the announcement rate: `screen` took its token before decoding.
            announcement => self.on_announcement(announcement),
        }
        Ok(())
    }

    /// Queues a request for the server if the peer is within its rate and queue.
    fn admit(&mut self, request: Serve) {
        if !self.requests.try_take() {
            return self.refuse("request");
        }
        match self.serve.try_send(request) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => self.refuse("request"),
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// Drops a message over the peer's limits, penalising a sustained excess.
    fn refuse(&mut self, kind: &'static str) {
        match self.refusals.record() {
            Verdict::Quiet => {}
            Verdict::Minor => {
                debug!(peer = %self.ctx.peer_id, "eth {kind} rate limit reached");
                self.ctx
                    .penalize(Penalty::Minor, format!("eth: {kind} rate limit exceeded"));
            }
            Verdict::Major => {
                warn!(peer = %self.ctx.peer_id, "eth request flood");
                self.ctx.penalize(
                    Penalty::Major,
                    "eth: message flood (a burst's worth refused within 1 s)",
                );
            }
        }
    }

    fn on_response(&mut self, response: EthMessage) {
        let id = response.message_id();
        match self.peer.dispatch(response) {
            Dispatch::Delivered => {}
            Dispatch::Late => debug!(?id, "late response to an abandoned request dropped"),
            Dispatch::Unsolicited(request_id) => {
                debug!(?id, request_id, "unsolicited response");
                self.ctx.penalize(
                    Penalty::Major,
                    format!("eth: unsolicited {id:?} (request id {request_id} is not ours)"),
                );
            }
            Dispatch::WrongKind { expected, got } => {
                self.ctx.penalize(
                    Penalty::Major,
                    format!("eth: {got:?} in response to a request for {expected:?}"),
                );
            }
        }
    }

    fn on_announcement(&mut self, msg: EthMessage) {
        let peer = self.ctx.peer_id;
        match msg {
            EthMessage::NewBlockHashes(hashes) => {
                if let Some(best) = hashes.0.iter().max_by_key(|h| h.number) {
                    self.peer.announce_head(best.hash, best.number, None);
                }
                self.peers.emit(EthEvent::NewBlockHashes {
                    peer,
                    hashes: hashes.0,
                });
            }
            EthMessage::NewBlock(block) => {
                let header = &block.block.header;
                self.peer
                    .announce_head(header.hash_slow(), header.number, Some(block.td));
                self.peers.emit(EthEvent::NewBlock {
                    peer,
                    block: Arc::from(block),
                });
            }
            EthMessage::BlockRangeUpdate(update) => {
                self.peer.update_range(update);
                self.peers.emit(EthEvent::BlockRangeUpdate { peer, update });
            }
            EthMessage::NewPooledTransactionHashes(announcement) => {
                self.peers
                    .emit(EthEvent::TransactionsAnnounced { peer, announcement });
            }
            EthMessage::Transactions(txs) => self.on_transactions(txs.0),
            // Requests and responses were routed before; nothing else exists.
            _ => {}
        }
    }

    fn on_transactions(&mut self, txs: Vec<TransactionSigned>) {
        let hashes = txs.iter().map(|tx| *tx.hash()).collect();
        let mut pooled = Vec::with_capacity(txs.len());
        let mut blobs = 0usize;
        for tx in txs {
            match tx.try_into_pooled() {
                Ok(tx) => pooled.push(tx),
                Err(_) => blobs += 1,
            }
        }
        if blobs > 0 {
            // devp2p/caps/eth.md: blob transactions must not be broadcast, only announced.
            self.ctx.penalize(
                Penalty::Major,
                format!("eth: {blobs} blob transactions in a Transactions broadcast"),
            );
        }
        if pooled.is_empty() {
            return;
        }
        // Reserve the import slot first, so that the event can say whether the
        // transactions are on their way, and still comes before the pool sees them.
        let permit = self.import.try_reserve();
        self.peers.emit(EthEvent::TransactionsIncoming {
            peer: self.ctx.peer_id,
            hashes: pooled.iter().map(|tx| *tx.hash()).collect(),
            queued: permit.is_ok(),
        });
        match permit {
            Ok(permit) => permit.send(Import {
                hashes,
                txs: pooled,
            }),
            Err(_) => debug!("transaction import queue full: broadcast dropped"),
        }
    }
}

/// Writes queued messages to the peer, each within `timeout`.
async fn write_loop(
    ctx: PeerCtx,
    mut writer: MessageWriter,
    mut queue: mpsc::Receiver<Message>,
    closed: CancellationToken,
    timeout: Duration,
) {
    loop {
        let msg = tokio::select! {
            biased;
            _ = closed.cancelled() => break,
            msg = queue.recv() => match msg {
                Some(msg) => msg,
                None => break,
            },
        };
        match tokio::time::timeout(timeout, writer.send(msg)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                debug!(error = %e, "eth write failed");
                break;
            }
            Err(_) => {
                info!(peer = %ctx.peer_id, "peer does not read: eth write timed out");
                ctx.disconnect(DisconnectReason::TcpSubsystemError);
                break;
            }
        }
    }
    closed.cancel();
}

/// Serves queued requests one at a time.
async fn serve_loop<C: ChainReader, P: TxPool>(
    shared: Arc<Shared<C, P>>,
    version: EthVersion,
    mut queue: mpsc::Receiver<Serve>,
    out: mpsc::Sender<Message>,
    closed: CancellationToken,
) {
    let send = |msg: EthMessage| {
        let out = out.clone();
        let closed = closed.clone();
        async move {
            let (code, payload) = match msg.encode_for(version) {
                Ok(encoded) => encoded,
                Err(e) => {
                    warn!(error = %e, "eth: cannot encode our own message");
                    return true;
                }
            };
            tokio::select! {
                _ = closed.cancelled() => false,
                sent = out.send(Message::new(code, payload)) => sent.is_ok(),
            }
        }
    };
    if shared.config.announce_pool_on_connect {
        let announcements = shared.pool.announcements();
        for chunk in announcements.chunks(limits::MAX_TX_ANNOUNCEMENTS) {
            let msg = EthMessage::NewPooledTransactionHashes(NewPooledTransactionHashes::new(
                version,
                chunk.to_vec(),
            ));
            if !send(msg).await {
                return;
            }
        }
    }
    let timeout = shared.config.request_timeout;
    loop {
        let request = tokio::select! {
            _ = closed.cancelled() => return,
            request = queue.recv() => match request {
                Some(request) => request,
                None => return,
            },
        };
        let empty = request.empty_response(version);
        let response = tokio::select! {
            _ = closed.cancelled() => return,
            served = tokio::time::timeout(timeout, serve(&shared, version, request)) => match served {
                Ok(response) => response,
                Err(_) => {
                    warn!("eth: serving a request took over {timeout:?}; answering empty");
                    empty
                }
            },
        };
        if !send(response).await {
            return;
        }
    }
}

/// Answers one request from the chain or the pool, within the serving limits of
/// WIRE.md §3. A storage failure is answered with an empty response: it is not the
/// peer's fault, and an answer spares it a timeout.
async fn serve<C: ChainReader, P: TxPool>(
    shared: &Shared<C, P>,
    version: EthVersion,
    request: Serve,
) -> EthMessage {
    fn or_empty<T, E: std::fmt::Display>(what: &str, result: Result<Vec<T>, E>) -> Vec<T> {
        result.unwrap_or_else(|e| {
            warn!(error = %e, "eth: cannot serve {what}");
            Vec::new()
        })
    }
    match request {
        Serve::Headers(id, request) => {
            let mut headers = or_empty("headers", shared.chain.headers(request).await);
            headers.truncate(limits::MAX_HEADERS_SERVE);
            trim_to_size(&mut headers);
            EthMessage::BlockHeaders(RequestPair::new(id, BlockHeaders(headers)))
        }
        Serve::Bodies(id, mut hashes) => {
            hashes.truncate(limits::MAX_BODIES_SERVE);
            let mut bodies = or_empty("bodies", shared.chain.bodies(hashes).await);
            bodies.truncate(limits::MAX_BODIES_SERVE);
            trim_to_size(&mut bodies);
            EthMessage::BlockBodies(RequestPair::new(id, BlockBodies(bodies)))
        }
        Serve::Receipts(id, mut hashes, first) => {
            hashes.truncate(limits::MAX_RECEIPTS_SERVE);
            let mut blocks = or_empty("receipts", shared.chain.receipts(hashes.clone()).await);
            // The store stops at the soft size counting the first block whole, but an
            // eth/70 request that resumes inside a large block (`first` > 0) wants only
            // its tail: without the blocks after it, a peer paging through (go-ethereum's
            // conformance suite does) would get an empty list, ask again, and never
            // move on. Fetch what follows once more; paging cuts at the soft size.
            if first > 0 && !blocks.is_empty() && blocks.len() < hashes.len() {
                let rest = hashes.split_off(blocks.len());
                blocks.extend(or_empty("receipts", shared.chain.receipts(rest).await));
            }
            blocks.truncate(limits::MAX_RECEIPTS_SERVE);
            let receipts = match Receipts::new(version, blocks) {
                Receipts::WithBloom(mut b) => {
                    trim_to_size(&mut b);
                    Receipts::WithBloom(b)
                }
                Receipts::WithoutBloom(mut b) => {
                    trim_to_size(&mut b);
                    Receipts::WithoutBloom(b)
                }
                Receipts::Paged { blocks, .. } => page_receipts(blocks, first),
            };
            EthMessage::Receipts(RequestPair::new(id, receipts))
        }
        Serve::Pooled(id, mut hashes) => {
            hashes.truncate(limits::MAX_POOLED_TXS_SERVE);
            let mut txs = shared.pool.get(&hashes);
            txs.truncate(limits::MAX_POOLED_TXS_SERVE);
            trim_to_size(&mut txs);
            EthMessage::PooledTransactions(RequestPair::new(id, PooledTransactions(txs)))
        }
        // devmux keeps no state trie: eth/66 peers asking for nodes get none.
        Serve::NodeData(id) => EthMessage::NodeData(RequestPair::new(id, NodeData(vec![]))),
    }
}

/// Keeps the longest prefix of `items` that fits the soft response size
/// ([`limits::SOFT_RESPONSE_SIZE`]: items are added until the total reaches it, as the
/// eth spec's soft limit reads), and never one that would take the message over the
/// hard cap.
fn trim_to_size<T: Encodable>(items: &mut Vec<T>) {
    let hard = limits::MAX_MESSAGE_SIZE - ENVELOPE_ROOM;
    let mut total = 0usize;
    let mut keep = 0usize;
    for item in items.iter() {
        if total >= limits::SOFT_RESPONSE_SIZE {
            break;
        }
        let size = item.length();
        if total + size > hard {
            break;
        }
        total += size;
        keep += 1;
    }
    items.truncate(keep);
}

/// An eth/70 `Receipts` answer (EIP-7975) from whole blocks' receipts: the receipts of
/// the first block before `first` are left out, and receipts are added, in order, until
/// the total reaches the soft response size ([`limits::SOFT_RESPONSE_SIZE`], the rule
/// [`trim_to_size`] applies to whole items): where that falls inside a block, its list
/// ends there and `lastBlockIncomplete` is set, so a block larger than the soft limit
/// (or than a message) travels in parts instead of not at all.
///
/// Like go-ethereum (`serviceGetReceiptsQuery70`), a `first` at or past the first
/// block's last receipt gives that block an empty list, and the next blocks follow; a
/// receipt that alone would take the message over the hard cap is never sent, and the
/// response ends before it (with the flag if its block is already begun). go-ethereum
/// cuts inside a block only at the 10 MiB message limit; cutting at the soft limit keeps
/// every response near 2 MiB (at most one receipt more), which the EIP leaves to the
/// server.
fn page_receipts(blocks: Vec<Vec<Receipt>>, first: u64) -> Receipts {
    let hard = limits::MAX_MESSAGE_SIZE - ENVELOPE_ROOM;
    let mut total = 0usize;
    let mut out = Vec::with_capacity(blocks.len());
    for (i, block) in blocks.into_iter().enumerate() {
        if total >= limits::SOFT_RESPONSE_SIZE {
            break;
        }
        let skip = if i == 0 {
            usize::try_from(first).unwrap_or(usize::MAX)
        } else {
            0
        };
        let mut list = Vec::new();
        let mut cut = false;
        for receipt in block.into_iter().skip(skip) {
            let size = receipt.length();
            if total >= limits::SOFT_RESPONSE_SIZE || total + size > hard {
                cut = true;
                break;
            }
            total += size;
            list.push(receipt);
        }
        if cut && list.is_empty() {
            // Not one receipt of this block fits: the response ends with the previous
            // block, whole.
            break;
        }
        out.push(list);
        if cut {
            return Receipts::Paged {
                last_block_incomplete: true,
                blocks: out,
            };
        }
    }
    Receipts::Paged {
        last_block_incomplete: false,
        blocks: out,
    }
}

/// Hands received transactions to the pool, one message at a time, within the peer's
/// signature-recovery budget ([`EthConfig::recovery_rate`]): a peer that sends more
/// waits (its queue fills and further broadcasts are dropped, unpenalised), and one
/// import may take at most the request timeout, after which the pool stops recovering
/// for it. Invalid signatures ([`TxPool::is_peer_fault`]) cost the peer a major penalty.
async fn import_loop<C: ChainReader, P: TxPool>(
    shared: Arc<Shared<C, P>>,
    peer: EthPeer,
    mut queue: mpsc::Receiver<Import>,
    closed: CancellationToken,
) {
    let timeout = shared.config.request_timeout;
    let rate = shared.config.recovery_rate;
    let (quota, burst) = crate::ratelimit::quota(rate, rate);
    let recoveries = governor::RateLimiter::direct(quota);
    loop {
        let batch = tokio::select! {
            _ = closed.cancelled() => return,
            batch = queue.recv() => match batch {
                Some(batch) => batch,
                None => return,
            },
        };
        let import = async {
            let mut results = Vec::with_capacity(batch.txs.len());
            let mut txs = batch.txs;
            while !txs.is_empty() {
                let rest = txs.split_off(txs.len().min(burst.get() as usize));
                let n = NonZeroU32::new(txs.len() as u32).unwrap_or(NonZeroU32::MIN);
                // `n` is at most the burst, so the budget can always grant it.
                let _ = recoveries.until_n_ready(n).await;
                results.extend(shared.pool.insert(std::mem::replace(&mut txs, rest)).await);
            }
            results
        };
        let results = tokio::select! {
            _ = closed.cancelled() => return,
            results = tokio::time::timeout(timeout, import) => match results {
                Ok(results) => results,
                Err(_) => {
                    debug!("eth: importing a peer's transactions took over {timeout:?}: the rest dropped");
                    continue;
                }
            },
        };
        let faults = results
            .iter()
            .filter(|r| matches!(r, Err(e) if P::is_peer_fault(e)))
            .count();
        if faults > 0 {
            peer.penalize(
                Penalty::Major,
                format!("eth: {faults} transactions with invalid signatures"),
            );
        }
        let added = results.into_iter().filter_map(Result::ok).collect();
        shared.peers.emit(EthEvent::TransactionsReceived {
            peer: peer.peer_id(),
            hashes: batch.hashes,
            added,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ForkFilter, Head};
    use alloy_primitives::{B256, U256};

    fn chain_status(genesis: B256, forks: &[u64], head: u64) -> ChainStatus {
        let filter = ForkFilter::new(
            genesis,
            0,
            forks.iter().copied(),
            [],
            Head {
                number: head,
                timestamp: 0,
            },
        );
        ChainStatus {
            genesis,
            head_hash: genesis,
            head_number: head,
            head_timestamp: 0,
            total_difficulty: U256::from(1),
            earliest: 0,
            fork_id: filter.current(),
            fork_filter: filter,
        }
    }

    #[test]
    fn status_checks_name_what_failed() {
        let g = B256::repeat_byte(1);
        let ours_chain = chain_status(g, &[], 0);
        for version in EthVersion::ALL {
            let ours = Status::new(version, 1337, &ours_chain);
            assert!(validate_status(version, &ours, &ours.clone(), &ours_chain).is_ok());

            let other_net = Status::new(version, 1, &ours_chain);
            assert!(matches!(
                validate_status(version, &ours, &other_net, &ours_chain),
                Err(Error::NetworkIdMismatch {
                    ours: 1337,
                    theirs: 1
                })
            ));

            let other_genesis =
                Status::new(version, 1337, &chain_status(B256::repeat_byte(2), &[], 0));
            assert!(matches!(
                validate_status(version, &ours, &other_genesis, &ours_chain),
                Err(Error::GenesisMismatch { .. })
            ));

            // Same genesis, but the peer passed a fork we do not know.
            let forked = Status::new(version, 1337, &chain_status(g, &[1], 5));
            assert!(matches!(
                validate_status(version, &ours, &forked, &ours_chain),
                Err(Error::ForkIdRejected { .. })
            ));
        }
        let ours = Status::new(EthVersion::Eth68, 1337, &ours_chain);
        let claims_67 = Status::new(EthVersion::Eth67, 1337, &ours_chain);
        assert!(matches!(
            validate_status(EthVersion::Eth68, &ours, &claims_67, &ours_chain),
            Err(Error::StatusVersionMismatch { status: 67, .. })
        ));
    }

    /// A receipt of about `bytes` bytes: one log with that much data.
    pub(crate) fn receipt_of(bytes: usize, cumulative_gas_used: u64) -> Receipt {
        Receipt {
            tx_type: crate::TxType::Eip1559,
            success: true,
            cumulative_gas_used,
            logs: vec![alloy_primitives::Log::new_unchecked(
                alloy_primitives::Address::repeat_byte(1),
                vec![],
                vec![0xab; bytes].into(),
            )],
        }
    }

    fn size(list: &[Receipt]) -> usize {
        list.iter().map(Encodable::length).sum()
    }

    fn parts(receipts: Receipts) -> (bool, Vec<Vec<Receipt>>) {
        (receipts.last_block_incomplete(), receipts.into_receipts())
    }

    #[test]
    fn eth70_pages_cut_inside_a_block_at_the_soft_limit() {
        let small: Vec<Receipt> = (0..3).map(|i| receipt_of(100, i)).collect();
        // 40 receipts of 100 kB: about 4 MB, twice the soft limit.
        let big: Vec<Receipt> = (0..40).map(|i| receipt_of(100_000, i)).collect();
        let after = vec![receipt_of(10, 1)];
        let (incomplete, lists) = parts(page_receipts(
            vec![small.clone(), big.clone(), after.clone()],
            0,
        ));
        assert!(incomplete);
        assert_eq!(lists.len(), 2, "the block after the cut is not begun");
        assert_eq!(lists[0], small);
        let first_part = &lists[1];
        assert!(!first_part.is_empty() && first_part.len() < big.len());
        assert_eq!(first_part[..], big[..first_part.len()]);
        // Receipts were added until the total reached the soft limit: no further.
        let total = size(&lists[0]) + size(first_part);
        assert!(total >= limits::SOFT_RESPONSE_SIZE, "{total}");
        assert!(
            total < limits::SOFT_RESPONSE_SIZE + big[0].length(),
            "{total}"
        );

        // The follow-up from the cut: the rest of the block, then the next one.
        let mut got = first_part.clone();
        let mut rounds = 0;
        loop {
            rounds += 1;
            let (incomplete, lists) = parts(page_receipts(
                vec![big.clone(), after.clone()],
                got.len() as u64,
            ));
            let mut lists = lists.into_iter();
            got.extend(lists.next().unwrap());
            if !incomplete {
                assert_eq!(lists.next(), Some(after.clone()));
                break;
            }
            assert!(lists.next().is_none());
        }
        assert_eq!(got, big, "the parts are exactly the block's receipts");
        // About 4 MB: the first page and one follow-up of the rest.
        assert_eq!(rounds, 1);
    }

    #[test]
    fn eth70_pages_skip_to_the_first_index_and_past_the_end() {
        let block: Vec<Receipt> = (0..5).map(|i| receipt_of(10, i)).collect();
        let next = vec![receipt_of(10, 9)];
        let (incomplete, lists) = parts(page_receipts(vec![block.clone(), next.clone()], 2));
        assert!(!incomplete);
        assert_eq!(lists, vec![block[2..].to_vec(), next.clone()]);
        // At or past the end (go-ethereum answers the same): an empty list, then the
        // next blocks.
        for first in [5, 6, u64::MAX] {
            let (incomplete, lists) =
                parts(page_receipts(vec![block.clone(), next.clone()], first));
            assert!(!incomplete);
            assert_eq!(lists, vec![vec![], next.clone()], "{first}");
        }
        assert_eq!(parts(page_receipts(vec![], 3)), (false, vec![]));
    }

    #[test]
    fn eth70_pages_never_carry_a_receipt_over_the_hard_cap() {
        let huge = receipt_of(limits::MAX_MESSAGE_SIZE, 0);
        let small = receipt_of(10, 0);
        // Alone: nothing can be sent.
        assert_eq!(
            parts(page_receipts(vec![vec![huge.clone()]], 0)),
            (false, vec![])
        );
        // Behind a receipt of its block: the block is cut before it.
        let (incomplete, lists) = parts(page_receipts(vec![vec![small.clone(), huge.clone()]], 0));
        assert!(incomplete);
        assert_eq!(lists, vec![vec![small.clone()]]);
        // First of the next block: the response ends with the previous block, whole.
        let (incomplete, lists) = parts(page_receipts(vec![vec![small.clone()], vec![huge]], 0));
        assert!(!incomplete);
        assert_eq!(lists, vec![vec![small]]);
    }

    #[test]
    fn responses_are_trimmed_to_the_soft_limit() {
        let item = vec![0u8; 100_000];
        let mut items = vec![alloy_primitives::Bytes::from(item); 100];
        trim_to_size(&mut items);
        let total: usize = items.iter().map(Encodable::length).sum();
        // Items are added until the total reaches 2 MiB.
        assert!(total >= limits::SOFT_RESPONSE_SIZE);
        assert!(total < limits::SOFT_RESPONSE_SIZE + 100_010);
        // An item that alone breaks the hard cap is never sent.
        let mut huge = vec![alloy_primitives::Bytes::from(vec![
            0u8;
            limits::MAX_MESSAGE_SIZE
        ])];
        trim_to_size(&mut huge);
        assert!(huge.is_empty());
        let mut none: Vec<alloy_primitives::Bytes> = vec![];
        trim_to_size(&mut none);
        assert!(none.is_empty());
    }
}
