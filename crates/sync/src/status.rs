//! What sync reports: its progress ([`SyncStatus`], for `eth_syncing` and metrics) and
//! running counters ([`SyncStats`]).

use std::sync::atomic::{AtomicU64, Ordering};

/// Sync progress, as `eth_syncing` reports it. Published on a watch channel
/// ([`crate::SyncHandle::subscribe`]).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SyncStatus {
    /// Whether a peer is ahead of us and we are downloading its chain.
    pub syncing: bool,
    /// Our head when this sync began (`startingBlock`).
    pub starting: u64,
    /// Our head now (`currentBlock`).
    pub current: u64,
    /// The head we are syncing to (`highestBlock`); our head when not syncing.
    pub target: u64,
    /// Blocks imported per second since this sync began (0 when not syncing).
    pub blocks_per_sec: f64,
}

impl SyncStatus {
    /// `eth_syncing`'s answer: `None` (`false`) when not syncing, else
    /// `(startingBlock, currentBlock, highestBlock)`.
    pub fn eth_syncing(&self) -> Option<(u64, u64, u64)> {
        self.syncing
            .then_some((self.starting, self.current, self.target))
    }
}

/// Counters since sync started, for metrics, benchmarks and tests. Transaction counts
/// are per transaction and peer: one transaction broadcast to three peers counts three.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncStats {
    /// Blocks inserted by sync rounds and `NewBlock` imports.
    pub blocks_imported: u64,
    /// Headers downloaded.
    pub headers_downloaded: u64,
    /// Block bodies downloaded (and checked against their headers).
    pub bodies_downloaded: u64,
    /// RLP bytes of the headers, bodies and receipts downloaded.
    pub bytes_downloaded: u64,
    /// Sync rounds started.
    pub rounds: u64,
    /// Requests that failed (stall, peer gone, refused) and whose work went elsewhere.
    pub requests_failed: u64,
    /// Peers penalised for lying (bad headers, bodies, receipts or transactions).
    pub peers_penalised: u64,
    /// Full `NewBlock` messages sent.
    pub new_blocks_sent: u64,
    /// `NewBlockHashes` messages sent.
    pub block_hashes_sent: u64,
    /// `BlockRangeUpdate` messages sent.
    pub range_updates_sent: u64,
    /// Transactions sent whole in `Transactions`.
    pub txs_broadcast: u64,
    /// Transactions announced in `NewPooledTransactionHashes`.
    pub txs_announced: u64,
    /// Transactions fetched with `GetPooledTransactions`.
    pub txs_fetched: u64,
    /// Pool transactions or announcements dropped because a bounded queue was full.
    pub dropped: u64,
    /// Blocks stored without receipts (a chain file's) whose receipts were fetched.
    pub receipts_backfilled: u64,
}

/// The counters behind [`SyncStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) blocks_imported: AtomicU64,
    pub(crate) headers_downloaded: AtomicU64,
    pub(crate) bodies_downloaded: AtomicU64,
    pub(crate) bytes_downloaded: AtomicU64,
    pub(crate) rounds: AtomicU64,
    pub(crate) requests_failed: AtomicU64,
    pub(crate) peers_penalised: AtomicU64,
    pub(crate) new_blocks_sent: AtomicU64,
    pub(crate) block_hashes_sent: AtomicU64,
    pub(crate) range_updates_sent: AtomicU64,
    pub(crate) txs_broadcast: AtomicU64,
    pub(crate) txs_announced: AtomicU64,
    pub(crate) txs_fetched: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) receipts_backfilled: AtomicU64,
}

/// Adds `n` to a counter.
pub(crate) fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl Counters {
    pub(crate) fn snapshot(&self) -> SyncStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        SyncStats {
            blocks_imported: get(&self.blocks_imported),
            headers_downloaded: get(&self.headers_downloaded),
            bodies_downloaded: get(&self.bodies_downloaded),
            bytes_downloaded: get(&self.bytes_downloaded),
            rounds: get(&self.rounds),
            requests_failed: get(&self.requests_failed),
            peers_penalised: get(&self.peers_penalised),
            new_blocks_sent: get(&self.new_blocks_sent),
            block_hashes_sent: get(&self.block_hashes_sent),
            range_updates_sent: get(&self.range_updates_sent),
            txs_broadcast: get(&self.txs_broadcast),
            txs_announced: get(&self.txs_announced),
            txs_fetched: get(&self.txs_fetched),
            dropped: get(&self.dropped),
            receipts_backfilled: get(&self.receipts_backfilled),
        }
    }
}
