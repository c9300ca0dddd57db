//! Protocol versions and their ids on both servers.

use core::fmt;

/// The capability name of the Ethereum wire protocol in RLPx `Hello`
/// (`devp2p/caps/eth.md`).
pub const CAPABILITY_NAME: &str = "eth";

/// Message-id space of eth/66, eth/67 and eth/68 on RLPx: codes 0x00 (`Status`) to 0x10
/// (`Receipts`), 17 ids (`devp2p/caps/eth.md`; WIRE.md §2).
pub const ETH66_MESSAGE_COUNT: u8 = 17;

/// Message-id space of eth/69 and eth/70 on RLPx: 0x00 to 0x11 (`BlockRangeUpdate`,
/// added by EIP-7642), 18 ids (WIRE.md §2). EIP-7975 (eth/70) changes two messages'
/// fields and adds none; go-ethereum declares 18 for both versions too.
pub const ETH69_MESSAGE_COUNT: u8 = 18;

/// A version of the eth protocol that devmux speaks.
///
/// On the stream stack a version is the protocol id `/eth/<v>/1.0.0`; on RLPx it is the
/// capability `eth/<v>` (WIRE.md §1 and §2). Dialers propose [`EthVersion::ALL`] in
/// order, highest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum EthVersion {
    /// eth/66 (EIP-2481): request ids on every request/response pair.
    Eth66 = 66,
    /// eth/67 (EIP-4938): drops `GetNodeData`/`NodeData`.
    Eth67 = 67,
    /// eth/68 (EIP-5793): `NewPooledTransactionHashes` carries types and sizes.
    Eth68 = 68,
    /// eth/69 (EIP-7642): Status without total difficulty but with the served block
    /// range, `BlockRangeUpdate`, receipts without bloom.
    Eth69 = 69,
    /// eth/70 (EIP-7975): eth/69 with paged receipts: `GetReceipts` names the first
    /// receipt wanted of its first block, and `Receipts` says whether its last list
    /// stops short of its block's end, so that a block's receipts can exceed one
    /// message.
    Eth70 = 70,
}

impl EthVersion {
    /// Every supported version, highest first: the order a dialer proposes them in
    /// (WIRE.md §1).
    pub const ALL: [Self; 5] = [
        Self::Eth70,
        Self::Eth69,
        Self::Eth68,
        Self::Eth67,
        Self::Eth66,
    ];

    /// The highest supported version.
    pub const LATEST: Self = Self::Eth70;

    /// The version number as sent in Status and in the capability.
    pub const fn as_u8(self) -> u8 {
        self as u8
    }

    /// Length of the version's message-id space on RLPx: the highest message code plus
    /// one. eth/66–68 end at `Receipts = 0x10` (17 ids); eth/69 adds
    /// `BlockRangeUpdate = 0x11` (18 ids), and eth/70 keeps eth/69's ids. See
    /// `devp2p/caps/eth.md` and WIRE.md §2.
    pub const fn message_count(self) -> u8 {
        match self {
            Self::Eth66 | Self::Eth67 | Self::Eth68 => ETH66_MESSAGE_COUNT,
            Self::Eth69 | Self::Eth70 => ETH69_MESSAGE_COUNT,
        }
    }

    /// The stream-stack protocol id, e.g. `/eth/68/1.0.0` (WIRE.md §1).
    pub const fn protocol_id(self) -> &'static str {
        match self {
            Self::Eth66 => "/eth/66/1.0.0",
            Self::Eth67 => "/eth/67/1.0.0",
            Self::Eth68 => "/eth/68/1.0.0",
            Self::Eth69 => "/eth/69/1.0.0",
            Self::Eth70 => "/eth/70/1.0.0",
        }
    }

    /// The protocol ids of [`EthVersion::ALL`], highest first.
    pub const fn protocol_ids() -> [&'static str; 5] {
        [
            Self::Eth70.protocol_id(),
            Self::Eth69.protocol_id(),
            Self::Eth68.protocol_id(),
            Self::Eth67.protocol_id(),
            Self::Eth66.protocol_id(),
        ]
    }

    /// Parses a stream-stack protocol id such as `/eth/68/1.0.0`.
    pub fn from_protocol_id(id: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.protocol_id() == id)
    }

    /// Parses an RLPx capability (`name`, `version`), e.g. `("eth", 68)`.
    pub fn from_capability(name: &str, version: u32) -> Option<Self> {
        if name != CAPABILITY_NAME {
            return None;
        }
        u8::try_from(version)
            .ok()
            .and_then(|v| Self::try_from(v).ok())
    }

    /// Whether `GetNodeData`/`NodeData` exist (eth/66 only; removed by EIP-4938).
    pub const fn has_node_data(self) -> bool {
        matches!(self, Self::Eth66)
    }

    /// Whether `NewPooledTransactionHashes` uses the eth/68 `[types, sizes, hashes]` form
    /// (EIP-5793).
    pub const fn has_typed_announcements(self) -> bool {
        matches!(self, Self::Eth68 | Self::Eth69 | Self::Eth70)
    }

    /// Whether Status carries the block range instead of total difficulty, `Receipts`
    /// drop the bloom and `BlockRangeUpdate` exists (EIP-7642; eth/70 keeps all three).
    pub const fn has_block_range(self) -> bool {
        matches!(self, Self::Eth69 | Self::Eth70)
    }

    /// Whether receipts are paged (EIP-7975): `GetReceipts` carries
    /// `firstBlockReceiptIndex` and `Receipts` carry `lastBlockIncomplete`.
    pub const fn has_receipt_pages(self) -> bool {
        matches!(self, Self::Eth70)
    }

    /// Whether the PoW block propagation messages `NewBlockHashes` and `NewBlock` are
    /// handled. They are deprecated since the Merge (EIP-3675); eth/69 peers such as
    /// go-ethereum no longer accept them, so devmux treats them as absent from eth/69
    /// and relays blocks there with `BlockRangeUpdate`.
    pub const fn has_block_announcements(self) -> bool {
        !self.has_block_range()
    }
}

impl TryFrom<u8> for EthVersion {
    type Error = u8;

    fn try_from(v: u8) -> Result<Self, u8> {
        match v {
            66 => Ok(Self::Eth66),
            67 => Ok(Self::Eth67),
            68 => Ok(Self::Eth68),
            69 => Ok(Self::Eth69),
            70 => Ok(Self::Eth70),
            other => Err(other),
        }
    }
}

impl fmt::Display for EthVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "eth/{}", self.as_u8())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip() {
        for v in EthVersion::ALL {
            assert_eq!(EthVersion::from_protocol_id(v.protocol_id()), Some(v));
            assert_eq!(
                EthVersion::from_capability("eth", v.as_u8().into()),
                Some(v)
            );
            assert_eq!(EthVersion::try_from(v.as_u8()), Ok(v));
        }
        assert_eq!(EthVersion::from_protocol_id("/eth/65/1.0.0"), None);
        assert_eq!(EthVersion::from_protocol_id("/eth/68/1.0.1"), None);
        assert_eq!(EthVersion::from_capability("snap", 68), None);
        assert_eq!(EthVersion::from_capability("eth", 256 + 68), None);
        assert_eq!(EthVersion::protocol_ids()[0], "/eth/70/1.0.0");
        assert_eq!(EthVersion::protocol_ids()[1], "/eth/69/1.0.0");
        assert_eq!(EthVersion::from_protocol_id("/eth/71/1.0.0"), None);
        assert_eq!(EthVersion::LATEST, EthVersion::ALL[0]);
        // Highest first, each once.
        assert!(EthVersion::ALL.windows(2).all(|w| w[0] > w[1]));
        assert_eq!(EthVersion::Eth68.to_string(), "eth/68");
    }

    #[test]
    fn message_counts() {
        assert_eq!(EthVersion::Eth66.message_count(), 17);
        assert_eq!(EthVersion::Eth68.message_count(), 17);
        assert_eq!(EthVersion::Eth69.message_count(), 18);
        // EIP-7975 adds no message: eth/70 keeps eth/69's space (go-ethereum: 18 too).
        assert_eq!(EthVersion::Eth70.message_count(), 18);
    }

    #[test]
    fn eth70_is_eth69_with_receipt_pages() {
        let (v69, v70) = (EthVersion::Eth69, EthVersion::Eth70);
        assert!(v70.has_block_range() && v70.has_typed_announcements());
        assert!(!v70.has_node_data() && !v70.has_block_announcements());
        assert!(v70.has_receipt_pages());
        assert!(EthVersion::ALL
            .into_iter()
            .filter(|v| *v != v70)
            .all(|v| !v.has_receipt_pages()));
        assert_eq!(v69.message_count(), v70.message_count());
    }
}
