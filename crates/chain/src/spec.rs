//! Chain specifications: what makes one chain different from another.

use alloy_primitives::{Address, B256, U256};
use devmux_eth::{BlockBody, ForkFilter, ForkId, Head, Header, Receipt};

use crate::forks::ForkSchedule;

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

/// The parameters of a chain: name, ids, genesis, fork schedule, consensus and where to
/// find its peers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainSpec {
    /// The network's name (`mainnet`, `sepolia`, `hoodi`, `dev`, or the genesis file's).
    pub name: String,
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// eth network id (Status).
    pub network_id: u64,
    /// The genesis header.
    pub genesis: Header,
    /// Which fork is active when, and the blob parameters of each.
    pub forks: ForkSchedule,
    /// Who extends the chain, and so which header rules apply.
    pub consensus: Consensus,
    /// Bootnodes: `enode://` URLs (discv4) and `enr:` records (discv5).
    pub bootnodes: Vec<String>,
    /// DNS node lists (EIP-1459), as `enrtree://` URLs.
    pub dns_lists: Vec<String>,
}

/// Who extends a chain, and so which rules its headers are held to
/// ([`crate::validate::validate_header`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Consensus {
    /// Blocks sealed by a fixed set of signers, difficulty 1 each (the devnet, WIRE.md
    /// §7.1).
    Sealed(HeaderRules),
    /// Proof of stake: blocks come from a consensus layer, and the execution layer checks
    /// every header field it can without executing (difficulty and nonce 0, gas limit
    /// bounds, base fee and excess blob gas from the parent, the fields each fork adds).
    ProofOfStake,
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

/// The highest gas limit a proof-of-stake block may have: 2^30 (ten times mainnet's in
/// 2026). It bounds what a body may hold before it is decoded
/// ([`ChainSpec::decode_limits`]); a header above it is refused.
pub const MAX_POS_GAS_LIMIT: u64 = 1 << 30;

/// Most withdrawals in a proof-of-stake body: 16 (the consensus layer's
/// `MAX_WITHDRAWALS_PER_PAYLOAD`).
pub const MAX_WITHDRAWALS: usize = 16;

impl ChainSpec {
    /// The devnet chain of WIRE.md §7.
    pub fn devnet() -> Self {
        Self {
            name: "dev".into(),
            chain_id: crate::devnet::CHAIN_ID,
            network_id: crate::devnet::NETWORK_ID,
            genesis: crate::devnet::genesis_header(),
            // Every fork through London is active at block 0 and nothing comes after, so
            // the fork id is [CRC32(genesis hash), 0].
            forks: ForkSchedule::through_london_at_genesis(),
            consensus: Consensus::Sealed(HeaderRules::devnet()),
            bootnodes: Vec::new(),
            dns_lists: Vec::new(),
        }
    }

    /// The sealed chain's rules, if this chain is sealed.
    pub const fn sealed_rules(&self) -> Option<&HeaderRules> {
        match &self.consensus {
            Consensus::Sealed(rules) => Some(rules),
            Consensus::ProofOfStake => None,
        }
    }

    /// Whether this is the devnet of WIRE.md §7 (or a chain sealed like it).
    pub const fn is_sealed(&self) -> bool {
        matches!(self.consensus, Consensus::Sealed(_))
    }

    /// What the eth decoder allows in this chain's blocks, before allocating
    /// ([`devmux_eth::DecodeLimits`]): transactions and receipts per block from the gas
    /// limit, no ommers (neither the devnet nor proof of stake has them; history before
    /// the merge is not served from here), and withdrawals only where a fork brings them.
    pub fn decode_limits(&self) -> devmux_eth::DecodeLimits {
        match &self.consensus {
            Consensus::Sealed(rules) => devmux_eth::DecodeLimits {
                max_block_gas: rules.gas_limit,
                max_ommers: 0,
                // No fork of a sealed chain has them: the devnet stops at London.
                max_withdrawals: 0,
            },
            Consensus::ProofOfStake => devmux_eth::DecodeLimits {
                max_block_gas: MAX_POS_GAS_LIMIT,
                max_ommers: 0,
                max_withdrawals: MAX_WITHDRAWALS,
            },
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
            self.forks.block_forks(),
            self.forks.time_forks(self.genesis.timestamp),
            head,
        )
    }

    /// The fork id of a chain whose head is `head`.
    pub fn fork_id(&self, head: Head) -> ForkId {
        self.fork_filter(head).current()
    }
}
