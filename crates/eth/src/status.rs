//! The Status handshake message (code 0x00).

use alloy_primitives::{B256, U256};
use alloy_rlp::{Decodable, Encodable, RlpDecodable, RlpEncodable};

use crate::{Error, EthVersion, ForkFilter, ForkId};

/// Status for eth/66–68 (`devp2p/caps/eth.md`, before EIP-7642):
/// `[version, networkid, td, blockhash, genesis, forkid]`.
#[derive(Clone, Debug, PartialEq, Eq, RlpEncodable, RlpDecodable)]
pub struct StatusWithTd {
    /// Protocol version (66, 67 or 68).
    pub version: u8,
    /// Network id.
    pub network_id: u64,
    /// Total difficulty of the best block.
    pub total_difficulty: U256,
    /// Hash of the best block.
    pub head: B256,
    /// Genesis hash.
    pub genesis: B256,
    /// EIP-2124 fork id.
    pub fork_id: ForkId,
}

/// Status for eth/69 (EIP-7642):
/// `[version, networkid, genesis, forkid, earliest, latest, latestHash]`.
#[derive(Clone, Debug, PartialEq, Eq, RlpEncodable, RlpDecodable)]
pub struct StatusWithRange {
    /// Protocol version (69).
    pub version: u8,
    /// Network id.
    pub network_id: u64,
    /// Genesis hash.
    pub genesis: B256,
    /// EIP-2124 fork id.
    pub fork_id: ForkId,
    /// Number of the earliest block whose body and receipts are served.
    pub earliest: u64,
    /// Number of the latest block served.
    pub latest: u64,
    /// Hash of the latest block served.
    pub latest_hash: B256,
}

/// The Status message: the first message each side sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// eth/66–68.
    WithTd(StatusWithTd),
    /// eth/69.
    WithRange(StatusWithRange),
}

/// What a node says about its chain in Status, independent of the version: the
/// [`crate::ChainReader`] supplies it and [`Status::new`] shapes it for a version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainStatus {
    /// Genesis hash.
    pub genesis: B256,
    /// Hash of the head block.
    pub head_hash: B256,
    /// Number of the head block.
    pub head_number: u64,
    /// Timestamp of the head block.
    pub head_timestamp: u64,
    /// Total difficulty of the head block.
    pub total_difficulty: U256,
    /// Earliest block whose body and receipts are available.
    pub earliest: u64,
    /// Our fork id at the head.
    pub fork_id: ForkId,
    /// Our fork schedule at the head, to validate remote fork ids with.
    pub fork_filter: ForkFilter,
}

impl Status {
    /// Our Status for `version`.
    pub fn new(version: EthVersion, network_id: u64, chain: &ChainStatus) -> Self {
        if version.has_block_range() {
            Self::WithRange(StatusWithRange {
                version: version.as_u8(),
                network_id,
                genesis: chain.genesis,
                fork_id: chain.fork_id,
                earliest: chain.earliest,
                latest: chain.head_number,
                latest_hash: chain.head_hash,
            })
        } else {
            Self::WithTd(StatusWithTd {
                version: version.as_u8(),
                network_id,
                total_difficulty: chain.total_difficulty,
                head: chain.head_hash,
                genesis: chain.genesis,
                fork_id: chain.fork_id,
            })
        }
    }

    /// The protocol version the sender claims. The codec does not compare it with the
    /// negotiated version; the handler must (a mismatch is a protocol breach).
    pub const fn version(&self) -> u8 {
        match self {
            Self::WithTd(s) => s.version,
            Self::WithRange(s) => s.version,
        }
    }

    /// Network id.
    pub const fn network_id(&self) -> u64 {
        match self {
            Self::WithTd(s) => s.network_id,
            Self::WithRange(s) => s.network_id,
        }
    }

    /// Genesis hash.
    pub const fn genesis(&self) -> B256 {
        match self {
            Self::WithTd(s) => s.genesis,
            Self::WithRange(s) => s.genesis,
        }
    }

    /// Fork id.
    pub const fn fork_id(&self) -> ForkId {
        match self {
            Self::WithTd(s) => s.fork_id,
            Self::WithRange(s) => s.fork_id,
        }
    }

    /// Hash of the sender's best (eth/66–68) or latest served (eth/69) block.
    pub const fn head_hash(&self) -> B256 {
        match self {
            Self::WithTd(s) => s.head,
            Self::WithRange(s) => s.latest_hash,
        }
    }

    /// Total difficulty, eth/66–68 only.
    pub const fn total_difficulty(&self) -> Option<U256> {
        match self {
            Self::WithTd(s) => Some(s.total_difficulty),
            Self::WithRange(_) => None,
        }
    }

    /// Served block range, eth/69 only.
    pub const fn block_range(&self) -> Option<BlockRangeUpdate> {
        match self {
            Self::WithTd(_) => None,
            Self::WithRange(s) => Some(BlockRangeUpdate {
                earliest: s.earliest,
                latest: s.latest,
                latest_hash: s.latest_hash,
            }),
        }
    }

    /// Whether this form of Status belongs to `version`.
    pub const fn fits(&self, version: EthVersion) -> bool {
        matches!(self, Self::WithRange(_)) == version.has_block_range()
    }

    pub(crate) fn decode_wire(version: EthVersion, buf: &mut &[u8]) -> Result<Self, Error> {
        if version.has_block_range() {
            let s = StatusWithRange::decode(buf)?;
            check_range(s.earliest, s.latest)?;
            Ok(Self::WithRange(s))
        } else {
            Ok(Self::WithTd(StatusWithTd::decode(buf)?))
        }
    }
}

impl Encodable for Status {
    fn encode(&self, out: &mut dyn alloy_rlp::BufMut) {
        match self {
            Self::WithTd(s) => s.encode(out),
            Self::WithRange(s) => s.encode(out),
        }
    }

    fn length(&self) -> usize {
        match self {
            Self::WithTd(s) => s.length(),
            Self::WithRange(s) => s.length(),
        }
    }
}

/// `BlockRangeUpdate` (0x11, eth/69, EIP-7642): `[earliest, latest, latestHash]`, the
/// range of blocks whose bodies and receipts the sender serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, RlpEncodable, RlpDecodable)]
pub struct BlockRangeUpdate {
    /// Earliest block served.
    pub earliest: u64,
    /// Latest block served.
    pub latest: u64,
    /// Hash of the latest block.
    pub latest_hash: B256,
}

impl BlockRangeUpdate {
    pub(crate) fn decode_wire(buf: &mut &[u8]) -> Result<Self, Error> {
        let update = Self::decode(buf)?;
        check_range(update.earliest, update.latest)?;
        Ok(update)
    }
}

/// "If earliest > latest, the peer should be disconnected" (`devp2p/caps/eth.md`).
fn check_range(earliest: u64, latest: u64) -> Result<(), Error> {
    if earliest > latest {
        return Err(Error::InvalidBlockRange { earliest, latest });
    }
    Ok(())
}
