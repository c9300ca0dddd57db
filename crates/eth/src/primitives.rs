//! The Ethereum types the messages carry: aliases of alloy-consensus types, so that
//! every crate names them the same way.

use alloy_consensus::{EthereumTxEnvelope, TxEip4844, TxEip4844WithSidecar};
use alloy_eips::eip7594::BlobTransactionSidecarVariant;

pub use alloy_consensus::{Header, TxType};
pub use alloy_primitives::{Address, Bloom, Bytes, Log, B256, U256};

/// A signed transaction as it appears in a block and in `Transactions`: legacy, EIP-2930,
/// EIP-1559, EIP-4844 (without its blob sidecar) or EIP-7702.
pub type TransactionSigned = EthereumTxEnvelope<TxEip4844>;

/// A transaction in its pooled (network) form, as `PooledTransactions` carries it: like
/// [`TransactionSigned`], except that an EIP-4844 transaction travels with its blob
/// sidecar (EIP-4844 proofs or EIP-7594 cell proofs).
pub type PooledTransaction =
    EthereumTxEnvelope<TxEip4844WithSidecar<BlobTransactionSidecarVariant>>;

/// A block body: transactions, ommers and (after Shanghai) withdrawals.
pub type BlockBody = alloy_consensus::BlockBody<TransactionSigned>;

/// A full block: header and body, as `NewBlock` carries it.
pub type Block = alloy_consensus::Block<TransactionSigned>;

/// A receipt as stored and as eth/69 sends it: `[tx-type, status, cumulative-gas, logs]`.
///
/// Pre-Byzantium receipts carry an intermediate state root instead of a status; this
/// type cannot represent them (devmux chains start at London).
pub type Receipt = alloy_consensus::EthereumReceipt;

/// A receipt with its logs bloom, as eth/66–68 send it and as the receipts trie hashes
/// it.
pub type ReceiptWithBloom = alloy_consensus::ReceiptWithBloom<Receipt>;
