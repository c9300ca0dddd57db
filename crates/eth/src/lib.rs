//! The Ethereum wire protocol, eth/66 to eth/69, as devmux speaks it on both of its
//! servers (WIRE.md §3).
//!
//! This crate is the protocol's vocabulary; it does no I/O:
//!
//! - **Messages** ([`message`], [`status`], [`blocks`], [`transactions`],
//!   [`receipts`]): every eth/66–69 message with a strict RLP codec. [`EthMessage`] is the
//!   entry point: [`EthMessage::decode`] takes the `(code, payload)` frames a transport
//!   delivers (stream or RLPx capability alike) and [`EthMessage::encode_for`] produces
//!   them. Headers, transactions and receipts are alloy-consensus types ([`primitives`]).
//! - **Versions** ([`EthVersion`]): protocol ids (`/eth/68/1.0.0`), capabilities, message
//!   counts, and which messages each version has.
//! - **Fork id** ([`forkid`]): EIP-2124 with EIP-6122 timestamp forks; [`ForkFilter`]
//!   computes ours and validates a peer's.
//! - **Traits** ([`ChainReader`], [`TxPool`]): what the eth handler serves from;
//!   `devmux-chain` implements them.
//! - **Limits** ([`limits`]): serving soft limits and decoding hard caps.
//!
//! ```
//! use devmux_eth::{EthMessage, EthVersion, Status, ChainStatus, ForkFilter, Head};
//! use alloy_primitives::{B256, U256};
//!
//! let genesis = B256::repeat_byte(1);
//! let filter = ForkFilter::new(genesis, 0, [], [], Head::default());
//! let chain = ChainStatus {
//!     genesis,
//!     head_hash: genesis,
//!     head_number: 0,
//!     head_timestamp: 0,
//!     total_difficulty: U256::from(1),
//!     earliest: 0,
//!     fork_id: filter.current(),
//!     fork_filter: filter,
//! };
//! // Both sides send Status first; the version decides its shape.
//! let ours = EthMessage::Status(Status::new(EthVersion::Eth69, 1337, &chain));
//! let (code, payload) = ours.encode_for(EthVersion::Eth69).unwrap();
//! let EthMessage::Status(theirs) = EthMessage::decode(EthVersion::Eth69, code, &payload).unwrap()
//! else { unreachable!() };
//! assert_eq!(theirs.genesis(), genesis);
//! assert!(chain.fork_filter.validate(theirs.fork_id()).is_ok());
//! ```

pub mod blocks;
mod codec;
mod error;
pub mod forkid;
pub mod limits;
pub mod message;
pub mod primitives;
pub mod receipts;
pub mod status;
mod traits;
pub mod transactions;
mod version;

pub use blocks::{
    BlockBodies, BlockHashNumber, BlockHashOrNumber, BlockHeaders, GetBlockBodies, GetBlockHeaders,
    NewBlock, NewBlockHashes,
};
pub use error::Error;
pub use forkid::{ForkFilter, ForkHash, ForkId, ForkIdError, Head};
pub use message::{EthMessage, MessageId, RequestPair};
pub use primitives::{
    Block, BlockBody, Header, PooledTransaction, Receipt, ReceiptWithBloom, TransactionSigned,
    TxType,
};
pub use receipts::{logs_bloom, receipts_root, GetReceipts, Receipts};
pub use status::{BlockRangeUpdate, ChainStatus, Status, StatusWithRange, StatusWithTd};
pub use traits::{ChainReader, TxPool};
pub use transactions::{
    GetNodeData, GetPooledTransactions, NewPooledTransactionHashes, NodeData, PooledTransactions,
    Transactions, TxAnnouncement,
};
pub use version::{EthVersion, CAPABILITY_NAME, ETH66_MESSAGE_COUNT, ETH69_MESSAGE_COUNT};

// Re-exported so that users of the messages need not pin alloy versions themselves.
pub use alloy_consensus;
pub use alloy_eips;
pub use alloy_primitives;
pub use alloy_rlp;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod vectors;
