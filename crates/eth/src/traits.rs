//! What the eth handler serves from: the chain and the transaction pool.
//!
//! Both traits are implemented by `devmux-chain`. Methods that may touch the disk are
//! `async` and the implementation runs them off the async reactor (redb's API
//! blocks); methods answered from memory are plain functions that never block for
//! long. The handler calls them from its per-peer tasks.

use core::future::Future;

use alloy_primitives::B256;

use crate::{
    BlockBody, ChainStatus, GetBlockHeaders, Header, PooledTransaction, Receipt, TxAnnouncement,
};

/// Read access to the chain, as the eth handler needs it.
///
/// Implementations apply the serving limits of [`crate::limits`] themselves
/// ([`crate::limits::MAX_HEADERS_SERVE`], [`crate::limits::MAX_BODIES_SERVE`],
/// [`crate::limits::MAX_RECEIPTS_SERVE`] and [`crate::limits::SOFT_RESPONSE_SIZE`]), so
/// that whatever they return can be sent as is.
pub trait ChainReader: Send + Sync + 'static {
    /// A storage failure (never a peer's fault).
    type Error: std::error::Error + Send + Sync + 'static;

    /// Genesis, head, total difficulty, served range and fork id, for our Status and
    /// for judging the peer's. Answered from memory.
    fn chain_status(&self) -> ChainStatus;

    /// Canonical headers answering a `GetBlockHeaders` request: from `start`, `skip`
    /// apart, up to `limit` and the serving limits, stopping at the first block we do not
    /// have.
    fn headers(
        &self,
        request: GetBlockHeaders,
    ) -> impl Future<Output = Result<Vec<Header>, Self::Error>> + Send;

    /// A header by hash, canonical or not.
    fn header_by_hash(
        &self,
        hash: B256,
    ) -> impl Future<Output = Result<Option<Header>, Self::Error>> + Send;

    /// The canonical header at `number`.
    fn header_by_number(
        &self,
        number: u64,
    ) -> impl Future<Output = Result<Option<Header>, Self::Error>> + Send;

    /// Bodies of the blocks with these hashes, in order, stopping at the first unknown
    /// block or at the serving limits.
    fn bodies(
        &self,
        hashes: Vec<B256>,
    ) -> impl Future<Output = Result<Vec<BlockBody>, Self::Error>> + Send;

    /// Receipts of the blocks with these hashes, one list per block, in order, stopping
    /// at the first unknown block or at the serving limits. Every list is a whole
    /// block's: on eth/70 the handler itself leaves out what the request skips and cuts
    /// the answer inside a block at the soft response size (EIP-7975).
    fn receipts(
        &self,
        hashes: Vec<B256>,
    ) -> impl Future<Output = Result<Vec<Vec<Receipt>>, Self::Error>> + Send;
}

/// The transaction pool, as the eth handler needs it. Everything but [`TxPool::insert`]
/// is answered from memory.
pub trait TxPool: Send + Sync + 'static {
    /// Why a transaction was not added (a rejected transaction is not a reason to
    /// disconnect: `devp2p/caps/eth.md` says to discard invalid transactions quietly).
    type Error: std::error::Error + Send + Sync + 'static;

    /// Type, size and hash of every pooled transaction, oldest first, for the
    /// announcement a new session starts with.
    fn announcements(&self) -> Vec<TxAnnouncement>;

    /// The hashes among `hashes` that the pool does not hold.
    fn unknown(&self, hashes: &[B256]) -> Vec<B256>;

    /// The pooled transactions with these hashes, in order, unknown ones skipped, up to
    /// [`crate::limits::MAX_POOLED_TXS_SERVE`] transactions and
    /// [`crate::limits::SOFT_RESPONSE_SIZE`] bytes.
    fn get(&self, hashes: &[B256]) -> Vec<PooledTransaction>;

    /// Whether `error` is the fault of the peer that sent the transaction (an invalid
    /// signature, which no honest node relays), as opposed to a disagreement about
    /// state or our pool being full. Such peers are penalised. Default: never.
    fn is_peer_fault(error: &Self::Error) -> bool {
        let _ = error;
        false
    }

    /// Validates and adds transactions received from a peer or a user; one result per
    /// transaction, in order (the hash when added). Signature recovery costs CPU, so
    /// implementations do it off the reactor.
    fn insert(
        &self,
        txs: Vec<PooledTransaction>,
    ) -> impl Future<Output = Vec<Result<B256, Self::Error>>> + Send;
}
