//! The one error type of this crate.

use alloy_primitives::B256;

/// Everything that can go wrong storing, validating or pooling.
///
/// Variants about an invalid block or transaction describe data a peer may have sent:
/// the caller decides whether that peer is penalised (an invalid block is a protocol
/// breach; an invalid transaction is discarded quietly, per `devp2p/caps/eth.md`).
/// `Db`, `Task` and `GenesisMismatch` are local faults.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database failed (I/O, corruption, or opened twice).
    #[error("database: {0}")]
    Db(#[from] redb::Error),
    /// Stored bytes did not decode: the database is corrupt.
    #[error("corrupt database entry: {0}")]
    Corrupt(alloy_rlp::Error),
    /// A blocking task died (panicked or was cancelled with the runtime).
    #[error("background task failed: {0}")]
    Task(String),
    /// The database holds a different chain than the one it was opened for.
    #[error("database holds genesis {stored}, expected {expected}")]
    GenesisMismatch {
        /// Genesis hash in the database.
        stored: B256,
        /// Genesis hash of the chain spec.
        expected: B256,
    },
    /// A secret key is not a valid secp256k1 scalar.
    #[error("invalid secret key")]
    InvalidKey,

    /// The block's parent is neither stored nor earlier in the batch.
    #[error("block {number} ({hash}): unknown parent {parent}")]
    UnknownParent {
        /// Block number.
        number: u64,
        /// Block hash.
        hash: B256,
        /// The missing parent.
        parent: B256,
    },
    /// The block's number is not its parent's plus one.
    #[error("block {number} ({hash}): number must be {expected}")]
    WrongNumber {
        /// Block number.
        number: u64,
        /// Block hash.
        hash: B256,
        /// Parent number plus one.
        expected: u64,
    },
    /// The block's timestamp is not after its parent's.
    #[error("block {number} ({hash}): timestamp {timestamp} not after parent's {parent}")]
    TimestampNotIncreasing {
        /// Block number.
        number: u64,
        /// Block hash.
        hash: B256,
        /// Block timestamp.
        timestamp: u64,
        /// Parent timestamp.
        parent: u64,
    },
    /// A header field does not match what the body or receipts give.
    #[error("block {number} ({hash}): {field} is {got}, body gives {expected}")]
    RootMismatch {
        /// Block number.
        number: u64,
        /// Block hash.
        hash: B256,
        /// Which header field: `transactions_root`, `receipts_root`, `ommers_hash`,
        /// `withdrawals_root` or `logs_bloom`.
        field: &'static str,
        /// Value in the header.
        got: String,
        /// Value computed from the body or receipts.
        expected: String,
    },
    /// Gas used disagrees with the gas limit or the receipts.
    #[error("block {number} ({hash}): gas used {gas_used} invalid ({reason})")]
    BadGasUsed {
        /// Block number.
        number: u64,
        /// Block hash.
        hash: B256,
        /// Gas used in the header.
        gas_used: u64,
        /// What it disagrees with.
        reason: &'static str,
    },
    /// The number of receipts differs from the number of transactions.
    #[error("block {number} ({hash}): {receipts} receipts for {transactions} transactions")]
    ReceiptCount {
        /// Block number.
        number: u64,
        /// Block hash.
        hash: B256,
        /// Receipts given.
        receipts: usize,
        /// Transactions in the body.
        transactions: usize,
    },
    /// The header breaks one of the chain's header rules (WIRE.md §7.1): checked on the
    /// header alone, before its body is fetched. A peer that sent it earns a major
    /// penalty; the block is never stored or relayed.
    #[error("block {number} ({hash}): {rule} rule broken: {detail}")]
    InvalidHeader {
        /// Block number.
        number: u64,
        /// Block hash.
        hash: B256,
        /// Which rule: `difficulty`, `timestamp`, `gas limit`, `base fee`, `ommers hash`.
        rule: &'static str,
        /// What the header has instead.
        detail: String,
    },
    /// The body holds what its block's fork does not allow (a transaction type before its
    /// fork, too many blobs, a transaction above the gas cap, a block above the size
    /// cap). Like a root mismatch: the peer that sent it earns a major penalty.
    #[error("block {number} ({hash}): body breaks the {rule} rule: {detail}")]
    InvalidBody {
        /// Block number.
        number: u64,
        /// Block hash.
        hash: B256,
        /// Which rule: `transaction type`, `blobs per transaction`, `blob gas used`, …
        rule: &'static str,
        /// What the body has instead.
        detail: String,
    },
    /// The header's seal is malformed, high-`s`, or recovers to an address outside the
    /// chain's signers (WIRE.md §7.1). Fatal for the peer that sent it: an honest node
    /// relays only sealed blocks, so this is a forgery, not a disagreement.
    #[error("block {number} ({hash}): bad seal: {detail}")]
    BadSeal {
        /// Block number.
        number: u64,
        /// Block hash.
        hash: B256,
        /// What is wrong with the seal.
        detail: String,
    },
    /// Adopting the blocks would take the head back further than
    /// [`crate::MAX_REORG_DEPTH`] blocks. Refused, and nothing is stored, but it is not
    /// the sender's fault: an honest node on another branch sends such blocks.
    #[error("reorg of {depth} blocks (to ancestor {ancestor}) refused: at most {max} allowed")]
    ReorgTooDeep {
        /// Head number minus the common ancestor's.
        depth: u64,
        /// The common ancestor's number.
        ancestor: u64,
        /// The bound.
        max: u64,
    },

    /// The change would reorganise the finalized block away: the common ancestor of the
    /// current and the new canonical chain is below it. Refused, nothing stored; not the
    /// sender's fault (a peer on another branch sends such blocks).
    #[error("reorg to ancestor {ancestor} refused: block {finalized} is finalized")]
    ReorgBelowFinalized {
        /// The finalized block's number.
        finalized: u64,
        /// The common ancestor's number.
        ancestor: u64,
    },
    /// A block at the checkpoint's height is not the checkpoint: it, and every block on
    /// it, belongs to another chain. Refused, nothing stored; a peer that sends it is on
    /// that other chain, which is no fault of its own.
    #[error("block {number} is {got}, but the checkpoint says {expected}: another chain")]
    CheckpointMismatch {
        /// The checkpoint's height.
        number: u64,
        /// The checkpoint's hash.
        expected: B256,
        /// The block found there instead.
        got: B256,
    },
    /// A forkchoice update names a head that is not stored (sync fetches it first).
    #[error("block {0} is not stored")]
    UnknownBlock(B256),
    /// A forkchoice update is inconsistent: its safe or finalized block is not the head
    /// or an ancestor of it. Nothing of it was applied.
    #[error("invalid forkchoice state: {0}")]
    InvalidForkchoice(String),

    /// The pool already holds this transaction.
    #[error("transaction {0} already pooled")]
    TxKnown(B256),
    /// The pool is full (count, bytes, or the peers' share) and the transaction pays no
    /// more than the cheapest one it could replace.
    #[error("transaction pool full")]
    PoolFull,
    /// The sender already has as many transactions from peers pooled as one account
    /// may.
    #[error("sender {sender} already has {max} transactions pooled")]
    SenderFull {
        /// The sender.
        sender: alloy_primitives::Address,
        /// The per-sender cap.
        max: usize,
    },
    /// The transaction's type is not active on this chain.
    #[error("transaction type {0} not accepted")]
    TxType(u8),
    /// The transaction is for another chain (or has no EIP-155 chain id).
    #[error("transaction for chain {got:?}, expected {expected}")]
    TxChainId {
        /// Chain id of the transaction.
        got: Option<u64>,
        /// Our chain id.
        expected: u64,
    },
    /// The encoded transaction exceeds the pool's size limit.
    #[error("transaction of {size} bytes exceeds {max}")]
    TxTooLarge {
        /// Encoded size.
        size: usize,
        /// Limit.
        max: usize,
    },
    /// The gas limit does not cover the intrinsic gas.
    #[error("gas limit {gas_limit} below intrinsic gas {intrinsic}")]
    TxIntrinsicGas {
        /// Gas limit of the transaction.
        gas_limit: u64,
        /// Gas the transaction needs at least.
        intrinsic: u64,
    },
    /// The fee cap is below the base fee.
    #[error("fee cap {fee_cap} below base fee {base_fee}")]
    TxFeeTooLow {
        /// Maximum fee per gas offered.
        fee_cap: u128,
        /// Base fee of the chain.
        base_fee: u64,
    },
    /// The signature does not recover to a sender, or has a high `s` (EIP-2). The
    /// sender's fault: the eth handler penalises a peer that relays one.
    #[error("invalid transaction signature")]
    TxSignature,
    /// The transaction was not looked at: the import that carried it was cancelled
    /// (it timed out). Nobody's fault.
    #[error("import cancelled before this transaction")]
    Cancelled,

    /// A genesis file (or a built-in chain spec) could not be read from disk.
    #[error("reading genesis file {path}: {source}")]
    GenesisRead {
        /// The file.
        path: std::path::PathBuf,
        /// Why it could not be read.
        source: std::io::Error,
    },
    /// A genesis file is not JSON of go-ethereum's genesis format: malformed, or a field
    /// of the wrong type.
    #[error("genesis file is not a go-ethereum genesis: {0}")]
    GenesisJson(serde_json::Error),
    /// A genesis file is well-formed but go-ethereum's `geth init` would refuse it (a
    /// missing required field, forks out of order, a fork without its blob schedule), or
    /// it describes a genesis header devmux cannot reproduce exactly.
    #[error("invalid genesis: {0}")]
    InvalidGenesis(String),
    /// A genesis config schedules a fork devmux does not know (`bogotaTime`, `ubtTime`,
    /// a verkle fork, …): running it with a schedule that leaves the fork out would
    /// compute a fork id no peer on that chain has.
    #[error("genesis config schedules `{field}`, a fork devmux does not know")]
    UnknownFork {
        /// The config field, as the file spells it.
        field: String,
    },

    /// A chain file ([`crate::import`]) could not be read from disk.
    #[error("reading chain file: {0}")]
    ChainFileRead(std::io::Error),
    /// A chain file is not blocks in go-ethereum's export format from where it stops
    /// (the blocks before were imported).
    #[error("chain file at byte {offset}: {reason}")]
    ChainFile {
        /// Where the bad block starts in the file.
        offset: u64,
        /// What is wrong with it.
        reason: String,
    },
}

impl From<alloy_rlp::Error> for Error {
    fn from(e: alloy_rlp::Error) -> Self {
        Self::Corrupt(e)
    }
}

/// The redb operation errors all convert into `redb::Error`.
macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Self {
                Self::Db(redb::Error::from(e))
            }
        }
    )*};
}
from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);
