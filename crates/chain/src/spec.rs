//! Chain specifications: what makes one chain different from another.

use alloy_primitives::B256;
use devmux_eth::{BlockBody, ForkFilter, Head, Header, Receipt};

/// A block ready to be imported: header, body and the receipts its `receipts_root`
/// commits to. Everything is checked against the header on insert.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockWithReceipts {
    /// The header.
    pub header: Header,
    /// Transactions, ommers, withdrawals.
    pub body: BlockBody,
    /// One receipt per transaction.
    pub receipts: Vec<Receipt>,
}

impl BlockWithReceipts {
    /// The block hash (keccak256 of the RLP header).
    pub fn hash(&self) -> B256 {
        self.header.hash_slow()
    }

    /// The block number.
    pub const fn number(&self) -> u64 {
        self.header.number
    }
}

/// The parameters of a chain: ids, genesis and fork schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainSpec {
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// eth network id (Status).
    pub network_id: u64,
    /// The genesis header.
    pub genesis: Header,
    /// Forks activated by block number (those at 0 are part of genesis).
    pub block_forks: Vec<u64>,
    /// Forks activated by timestamp (those at or before genesis are part of genesis).
    pub time_forks: Vec<u64>,
}

impl ChainSpec {
    /// The devnet chain of WIRE.md §7.
    pub fn devnet() -> Self {
        Self {
            chain_id: crate::devnet::CHAIN_ID,
            network_id: crate::devnet::NETWORK_ID,
            genesis: crate::devnet::genesis_header(),
            // Every fork through London is active at block 0 and nothing comes after, so
            // the fork id is [CRC32(genesis hash), 0].
            block_forks: Vec::new(),
            time_forks: Vec::new(),
        }
    }

    /// The genesis hash.
    pub fn genesis_hash(&self) -> B256 {
        self.genesis.hash_slow()
    }

    /// The fork filter at `head`.
    pub fn fork_filter(&self, head: Head) -> ForkFilter {
        ForkFilter::new(
            self.genesis_hash(),
            self.genesis.timestamp,
            self.block_forks.iter().copied(),
            self.time_forks.iter().copied(),
            head,
        )
    }
}
