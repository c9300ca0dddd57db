//! Size and count limits: the soft limits a server applies to what it sends, and the
//! hard caps a decoder applies to what it accepts.
//!
//! Decoding caps sit at or above what any known client sends, so an honest peer never
//! trips them. Every cap is checked while the message is scanned, before anything of it
//! is allocated: the outer lists by item count, the inner lists of blocks and receipts
//! by what the chain allows ([`DecodeLimits`]), and the whole message by the memory its
//! decoded form would take, estimated from its item counts (at most
//! [`DECODE_AMPLIFICATION`] × its encoded size + [`DECODE_SLACK`]).

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

/// Gas of the cheapest transaction: a transfer (the intrinsic gas of every transaction).
/// A block of gas limit `g` holds at most `g / 21 000` transactions.
pub const MIN_TX_GAS: u64 = 21_000;

/// Gas of the cheapest log (`LOG0`'s static cost). A receipt in a block of gas limit `g`
/// holds at most `g / 375` logs.
pub const MIN_LOG_GAS: u64 = 375;

/// Gas per byte of log data (`G_logdata`, the yellow paper's `LOG` cost): what bounds the
/// size of receipts by gas. EIP-7975 rejects a receipt "larger than gaslimit / 8".
pub const LOG_DATA_GAS: u64 = 8;

/// Most bytes (eth/69 encoding, `[type, status, cumulative-gas, logs]`) the receipt of a
/// transaction with gas limit `tx_gas_limit` can take: `tx_gas_limit / 8` (EIP-7975).
///
/// An honest receipt always fits: each log costs at least 375 gas plus 375 per topic and
/// 8 per data byte, which pay for its encoding (at most 33 bytes, 33 per topic and one
/// per data byte, headers included) at 8 gas a byte, and the 21 000 gas every
/// transaction pays pays for the receipt's other fields (at most 21 bytes).
pub const fn max_receipt_size(tx_gas_limit: u64) -> u64 {
    tx_gas_limit / LOG_DATA_GAS
}

/// Most bytes the receipts of a block with gas limit `block_gas_limit` can take
/// together: `2 × block_gas_limit / 8`.
///
/// EIP-7975 bounds the total "by the block gas limit" without a formula. The gas a
/// block's transactions burn on logs can exceed its gas limit, because the limit caps
/// gas used after refunds: a transaction may start with whatever the block has left,
/// and refunds (at most half of the gas used before EIP-3529, a fifth since) return gas
/// to the block. Burnt gas is at most twice the gas used, so `2 × limit / 8` holds every
/// honest block; go-ethereum's `gasUsed / 8` on log data alone could refuse a block of
/// refund-heavy transactions.
pub const fn max_block_receipts_size(block_gas_limit: u64) -> u64 {
    block_gas_limit.saturating_mul(2) / LOG_DATA_GAS
}

/// A decoded message may occupy at most this many times its encoded size…
pub const DECODE_AMPLIFICATION: usize = 4;

/// …plus this many bytes ([`DECODE_AMPLIFICATION`]), so that small messages with fixed
/// overheads always fit.
pub const DECODE_SLACK: usize = 64 * 1024;

/// Limits on the inner lists of block-carrying messages (`BlockBodies`, `NewBlock`,
/// `Receipts`), derived from the chain: checked while scanning the message, before
/// anything of it is allocated, so that a body of 900 000 ten-byte transactions is
/// refused at item 1 429 rather than decoded into gigabytes.
///
/// [`DecodeLimits::devnet`] are the devnet's (WIRE.md §7), and what [`crate::EthConfig`]
/// starts with; the `Default` is generic Ethereum (what [`crate::EthMessage::decode`]
/// uses). A node takes them from its chain spec
/// (`devmux_chain::ChainSpec::decode_limits`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeLimits {
    /// The highest gas limit a block of the chain may have.
    pub max_block_gas: u64,
    /// Most ommers in a body.
    pub max_ommers: usize,
    /// Most withdrawals in a body.
    pub max_withdrawals: usize,
}

impl Default for DecodeLimits {
    /// Generic Ethereum: blocks of up to 60 000 000 gas (above mainnet's limit), two
    /// ommers (proof-of-work history), sixteen withdrawals (a mainnet payload's most).
    fn default() -> Self {
        Self {
            max_block_gas: 60_000_000,
            max_ommers: 2,
            max_withdrawals: 16,
        }
    }
}

impl DecodeLimits {
    /// The devnet's (WIRE.md §7): gas limit 30 000 000, no ommers (the devnet makes
    /// none, though London allows them), no withdrawals (no Shanghai).
    pub const fn devnet() -> Self {
        Self {
            max_block_gas: 30_000_000,
            max_ommers: 0,
            max_withdrawals: 0,
        }
    }

    /// Most transactions in a block of gas limit `gas_limit` (capped at
    /// [`DecodeLimits::max_block_gas`]): one per 21 000 gas. Receipts per block likewise.
    pub fn max_txs(&self, gas_limit: u64) -> usize {
        (gas_limit.min(self.max_block_gas) / MIN_TX_GAS) as usize
    }

    /// Most logs in one receipt: one per 375 gas of the largest block.
    pub fn max_logs(&self) -> usize {
        (self.max_block_gas / MIN_LOG_GAS) as usize
    }

    /// The most a message of `encoded` bytes may occupy once decoded.
    pub fn memory_budget(encoded: usize) -> usize {
        encoded
            .saturating_mul(DECODE_AMPLIFICATION)
            .saturating_add(DECODE_SLACK)
    }
}
