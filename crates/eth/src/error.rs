//! The one error type of this crate.

use crate::{EthVersion, MessageId};

/// Everything that can go wrong decoding, encoding or validating eth messages.
///
/// Every variant except [`Error::NotInVersion`] raised by our own `encode_for` is a
/// fault of the peer that sent the bytes: the eth handler answers it with a reputation
/// penalty and a disconnect (`BreachOfProtocol` on RLPx, a stream reset on the stream
/// stack). None of them is a reason to stop the node.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The payload is not valid RLP for the message, or a field is out of range.
    /// Disconnects and penalises the peer.
    #[error("malformed message: {0}")]
    Rlp(#[from] alloy_rlp::Error),
    /// The message decoded, but bytes were left over behind it. Disconnects and
    /// penalises the peer.
    #[error("{0} trailing bytes after the message")]
    TrailingBytes(usize),
    /// A list in the message has more items than this crate accepts (see
    /// [`crate::limits`]). Disconnects and penalises the peer.
    #[error("{what}: more than {max} items")]
    ListTooLong {
        /// Which list overflowed.
        what: &'static str,
        /// The cap that was exceeded.
        max: usize,
    },
    /// The payload is larger than [`crate::limits::MAX_MESSAGE_SIZE`]. Disconnects and
    /// penalises the peer.
    #[error("message of {size} bytes exceeds the {max} byte limit")]
    MessageTooLarge {
        /// Size of the payload.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The code is not an eth message code at all. Disconnects and penalises the peer.
    #[error("unknown eth message code {code:#04x} on {version}")]
    UnknownMessage {
        /// Negotiated version.
        version: EthVersion,
        /// The code received.
        code: u8,
    },
    /// The message exists, but not in the negotiated version (e.g. `GetNodeData` on
    /// eth/67, `BlockRangeUpdate` on eth/68, or a Status with total difficulty on
    /// eth/69). From a peer: disconnects and penalises it. From `encode_for`: a bug in
    /// our own code.
    #[error("{id:?} is not part of {version} in this form")]
    NotInVersion {
        /// The message.
        id: MessageId,
        /// Negotiated version.
        version: EthVersion,
    },
    /// An eth/68 `NewPooledTransactionHashes` whose three lists differ in length.
    /// Disconnects and penalises the peer.
    #[error("announcement lists differ in length: {types} types, {sizes} sizes, {hashes} hashes")]
    AnnouncementMismatch {
        /// Number of types.
        types: usize,
        /// Number of sizes.
        sizes: usize,
        /// Number of hashes.
        hashes: usize,
    },
    /// A served block range with `earliest > latest` (Status on eth/69 or
    /// `BlockRangeUpdate`). The spec says to disconnect.
    #[error("invalid block range: earliest {earliest} > latest {latest}")]
    InvalidBlockRange {
        /// Earliest block.
        earliest: u64,
        /// Latest block.
        latest: u64,
    },
}
