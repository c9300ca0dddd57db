//! Size and count limits: the soft limits a server applies to what it sends, and the
//! hard caps a decoder applies to what it accepts.
//!
//! Decoding caps sit at or above what any known client sends, so an honest peer never
//! trips them; everything beyond is bounded by [`MAX_MESSAGE_SIZE`] anyway, so the caps
//! exist to refuse absurd requests early, not to save memory.

/// Hard cap on one eth message payload: 10 MiB (WIRE.md §1 and §3; `devp2p/caps/eth.md`:
/// "the practical limits for the eth protocol are lower, typically 10 MiB").
pub const MAX_MESSAGE_SIZE: usize = 10 * 1024 * 1024;

/// Soft limit on the size of a response we send: 2 MiB (WIRE.md §3; `devp2p/caps/eth.md`
/// recommends 2 MiB for `BlockHeaders`, `BlockBodies` and `Receipts`).
pub const SOFT_RESPONSE_SIZE: usize = 2 * 1024 * 1024;

/// Most headers served per `GetBlockHeaders` (WIRE.md §3 soft limit; go-ethereum and
/// reth serve at most 1024 too).
pub const MAX_HEADERS_SERVE: usize = 1024;

/// Most bodies served per `GetBlockBodies` (WIRE.md §3 soft limit).
pub const MAX_BODIES_SERVE: usize = 256;

/// Most block receipt lists served per `GetReceipts` (WIRE.md §3 soft limit).
pub const MAX_RECEIPTS_SERVE: usize = 256;

/// Most pooled transactions served per `GetPooledTransactions`: 256, the soft limit
/// `devp2p/caps/eth.md` recommends for the request.
pub const MAX_POOLED_TXS_SERVE: usize = 256;

/// Most items in a `NewPooledTransactionHashes` we send: 4096, the soft limit of
/// `devp2p/caps/eth.md`.
pub const MAX_TX_ANNOUNCEMENTS: usize = 4096;

/// Decoding cap on headers in `BlockHeaders`: no client serves more than 1024.
pub const MAX_HEADERS: usize = 1024;

/// Decoding cap on hashes in `GetBlockBodies`, `GetReceipts`, `GetPooledTransactions`
/// and `GetNodeData`, and on the items of their responses.
pub const MAX_REQUEST_ITEMS: usize = 1024;

/// Decoding cap on items in `NewPooledTransactionHashes` and on transactions in a
/// `Transactions` broadcast (the spec's 4096 announcement soft limit).
pub const MAX_ANNOUNCEMENT_ITEMS: usize = 4096;

/// Decoding cap on entries in `NewBlockHashes`.
pub const MAX_NEW_BLOCK_HASHES: usize = 1024;
