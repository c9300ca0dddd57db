//! Chain specifications: what makes one chain different from another.

use alloy_primitives::{Address, B256, U256};
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
    /// What every header after genesis must satisfy on its own
    /// ([`crate::validate::validate_header`]).
    pub header_rules: HeaderRules,
}

/// The rules a header is checked against before anything else is done for its block
/// (WIRE.md §7.1, "Header rules"): cheap to check, so a block that breaks them costs us
/// one header decode and nothing more.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderRules {
    /// The difficulty of every block. A fixed difficulty is what keeps a stranger from
    /// outweighing the honest chain with one heavy block.
    pub difficulty: U256,
    /// The gas limit of every block.
    pub gas_limit: u64,
    /// The base fee of every block.
    pub base_fee: u64,
    /// How far ahead of our clock a timestamp may be, in seconds.
    pub max_future_secs: u64,
    /// Who may seal a block ([`crate::seal`]): a block sealed by anyone else, or not
    /// sealed, is refused and its sender earns a fatal penalty.
    pub signers: Vec<Address>,
}

impl HeaderRules {
    /// The devnet's rules (WIRE.md §7.1): difficulty 1, gas limit 30 000 000, base fee
    /// 1 gwei, timestamps at most 15 s ahead of local time, sealed by dev key 0
    /// ([`crate::devnet::dev_signer`]).
    pub fn devnet() -> Self {
        Self {
            difficulty: U256::from(1),
            gas_limit: crate::devnet::GAS_LIMIT,
            base_fee: crate::devnet::BASE_FEE,
            max_future_secs: MAX_FUTURE_SECS,
            signers: vec![crate::devnet::dev_signer()],
        }
    }

    /// Whether `address` may seal blocks.
    pub fn is_signer(&self, address: &Address) -> bool {
        self.signers.contains(address)
    }
}

/// How far a header's timestamp may run ahead of local time: 15 s (WIRE.md §7.1, the
/// bound go-ethereum's clique uses for future blocks as well).
pub const MAX_FUTURE_SECS: u64 = 15;

/// The deepest reorganisation a node adopts, in blocks (head minus common ancestor):
/// 64 (WIRE.md §7.1). Deeper ones are refused without a penalty: an honest node that
/// was partitioned from us for a while sends them.
pub const MAX_REORG_DEPTH: u64 = 64;

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
            header_rules: HeaderRules::devnet(),
        }
    }

    /// What the eth decoder allows in this chain's blocks, before allocating
    /// ([`devmux_eth::DecodeLimits`]): transactions and receipts per block from the gas
    /// limit, no ommers (the header rules require the empty list), and no withdrawals
    /// (no fork here has them: the devnet stops at London).
    pub fn decode_limits(&self) -> devmux_eth::DecodeLimits {
        devmux_eth::DecodeLimits {
            max_block_gas: self.header_rules.gas_limit,
            max_ommers: 0,
            max_withdrawals: 0,
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
