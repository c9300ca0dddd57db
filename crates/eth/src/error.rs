//! The one error type of this crate.

use std::time::Duration;

use alloy_primitives::B256;

use crate::{EthVersion, ForkId, ForkIdError, MessageId};

/// Everything that can go wrong decoding, encoding or validating eth messages, in the
/// Status handshake, and in a request to a peer.
///
/// - **Codec variants** ([`Error::Rlp`] to [`Error::InvalidBlockRange`]): every one
///   except [`Error::NotInVersion`] raised by our own `encode_for` is a fault of the peer
///   that sent the bytes: the eth handler answers it with [`Penalty::Major`] and a
///   `BreachOfProtocol` disconnect (the RLPx Disconnect message, or goodbye on the stream
///   stack).
/// - **Handshake variants** ([`Error::NetworkIdMismatch`] to [`Error::StatusTimeout`]):
///   why a session was refused; the peer is disconnected with the reason each variant
///   names. A peer on another chain is not misbehaving: only [`Error::NotStatus`] is
///   penalised.
/// - **Request variants** ([`Error::Timeout`] to [`Error::NotAnnouncement`]): what an
///   [`crate::EthPeer`] request returns. [`Error::UnexpectedResponse`] and
///   [`Error::InvalidResponse`] penalise the peer ([`Penalty::Major`]); the others are
///   left to the caller to judge.
///
/// None of them is a reason to stop the node.
///
/// [`Penalty::Major`]: devmux_network::Penalty::Major
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
    /// Decoded, the message would take more memory than
    /// [`crate::limits::DecodeLimits::memory_budget`] allows for its size (estimated from
    /// its item counts before anything is allocated). Disconnects and penalises the peer.
    #[error("{what}: decoding would take about {estimate} bytes, over the {budget} byte budget (4 × the message + 64 KiB)")]
    Amplification {
        /// The list that took the estimate over.
        what: &'static str,
        /// Estimated bytes.
        estimate: usize,
        /// The message's budget.
        budget: usize,
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

    /// The remote Status names another network id. Disconnects with `SubprotocolError`.
    #[error("network id mismatch: ours {ours}, theirs {theirs}")]
    NetworkIdMismatch {
        /// Our network id.
        ours: u64,
        /// The peer's.
        theirs: u64,
    },
    /// The remote Status carries a version other than the negotiated one. Disconnects with
    /// `SubprotocolError`.
    #[error("status version mismatch: negotiated {negotiated}, status says {status}")]
    StatusVersionMismatch {
        /// The version the stream or capability negotiation settled on.
        negotiated: EthVersion,
        /// The version in the peer's Status.
        status: u8,
    },
    /// The remote Status names another genesis block. Disconnects with
    /// `SubprotocolError`.
    #[error("genesis mismatch: ours {ours}, theirs {theirs}")]
    GenesisMismatch {
        /// Our genesis hash.
        ours: B256,
        /// The peer's.
        theirs: B256,
    },
    /// The remote fork id fails EIP-2124 validation against ours. Disconnects with
    /// `SubprotocolError`.
    #[error("fork id {theirs:?} rejected: {reason}")]
    ForkIdRejected {
        /// The peer's fork id.
        theirs: ForkId,
        /// Which EIP-2124 rule it broke.
        reason: ForkIdError,
    },
    /// The first message of the session was not Status. Penalised and disconnected with
    /// `BreachOfProtocol`.
    #[error("expected Status first, got {0:?}")]
    NotStatus(MessageId),
    /// No Status arrived within the deadline. Disconnects with reason code 0x0b
    /// (`PingTimeout`; go-ethereum's "read timeout", which it sends in this case).
    #[error("no Status within {0:?}")]
    StatusTimeout(Duration),
    /// The handler was registered under a protocol id that is not an eth version (a
    /// wiring mistake, not the peer's fault). The session ends at once.
    #[error("{0} is not an eth protocol id")]
    UnsupportedProtocol(String),
    /// A request got no response within its deadline (or waited that long for a free
    /// in-flight slot). The pending request id is forgotten; a late response is dropped
    /// without a penalty.
    #[error("request timed out after {0:?}")]
    Timeout(Duration),
    /// The peer's eth session has ended (disconnected, or the stream closed).
    #[error("the eth session with the peer has ended")]
    SessionClosed,
    /// The response to a request is another message than the request asks for. The peer
    /// is penalised.
    #[error("expected {expected:?} in response, got {got:?}")]
    UnexpectedResponse {
        /// The response message the request asks for.
        expected: MessageId,
        /// What arrived with the request's id.
        got: MessageId,
    },
    /// The response breaks the request's terms (more items than asked for, items that
    /// were not asked for; receipts outside their blocks' bounds, or an eth/70
    /// `lastBlockIncomplete` that a list's count belies). The peer is penalised
    /// ([`devmux_network::Penalty::Major`]) and the request returns nothing of what it
    /// sent.
    #[error("invalid response: {0}")]
    InvalidResponse(String),
    /// [`crate::EthPeer::send`] takes announcements and broadcasts only: Status is the
    /// handler's, and requests and responses go through the typed request API so that
    /// request ids match.
    #[error("{0:?} cannot be sent with send(): use the typed request API")]
    NotAnnouncement(MessageId),
    /// The session's send queue is full ([`crate::EthPeer::try_send`] only).
    #[error("the peer's send queue is full")]
    QueueFull,
    /// The network layer failed (sending on a closed stream, a framing error).
    #[error(transparent)]
    Network(#[from] devmux_network::Error),
}
