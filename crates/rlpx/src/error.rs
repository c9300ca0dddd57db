//! The crate's one error type.

use crate::DisconnectReason;

/// Everything that can go wrong on an RLPx connection.
///
/// Each variant says which [`DisconnectReason`] it maps to through
/// [`Error::disconnect_reason`]: the reason to send the peer (best effort)
/// before closing. `None` means "just close": the connection is already gone,
/// no session keys exist yet (a failed ECIES handshake has no frame to carry a
/// Disconnect), the peer already said goodbye, or the error is our own caller's
/// misuse rather than the peer's fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O error on the underlying stream, including an end of stream in the
    /// middle of a handshake packet or a frame (a truncated frame).
    /// Reason: `None` (the connection is unusable).
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),

    /// The peer closed the stream cleanly, between two frames.
    /// Reason: `None`.
    #[error("connection closed by peer")]
    ConnectionClosed,

    /// A 64-byte node id is not a valid secp256k1 public key (the dial target,
    /// or a key inside a handshake packet). Reason: `None` (no session yet).
    #[error("invalid node id (not a secp256k1 public key)")]
    InvalidNodeId,

    /// An EIP-8 auth/ack size prefix claims more than
    /// [`MAX_HANDSHAKE_PACKET_SIZE`](crate::MAX_HANDSHAKE_PACKET_SIZE); refused
    /// before reading or allocating it. Reason: `None` (no session yet).
    #[error("handshake packet of {size} bytes exceeds the limit")]
    HandshakeTooLarge {
        /// The size the peer claimed, prefix included.
        size: usize,
    },

    /// ECIES decryption of auth/ack failed: bad HMAC, bad ephemeral key, a
    /// packet not meant for our key, or plain garbage. Reason: `None`.
    #[error("ECIES decryption failed")]
    EciesDecrypt,

    /// A decrypted auth/ack body is malformed (bad RLP, short body, invalid
    /// signature). Reason: `None`.
    #[error("invalid handshake: {0}")]
    InvalidHandshake(&'static str),

    /// A frame header MAC or frame MAC did not verify (bit flips, a desynced or
    /// hostile peer). Reason: [`DisconnectReason::BreachOfProtocol`].
    #[error("bad frame MAC")]
    BadMac,

    /// A frame header announces more than the configured frame size limit.
    /// Reason: [`DisconnectReason::BreachOfProtocol`].
    #[error("frame of {size} bytes exceeds the limit of {max}")]
    FrameTooLarge {
        /// The size announced in the header.
        size: usize,
        /// The limit in force.
        max: usize,
    },

    /// A received message decompresses (or would decompress, per its Snappy
    /// header) to more than [`MAX_MESSAGE_SIZE`](crate::MAX_MESSAGE_SIZE).
    /// Detected before allocating. Reason: [`DisconnectReason::BreachOfProtocol`].
    #[error("message of {size} bytes exceeds the limit of {max}")]
    MessageTooLarge {
        /// The declared uncompressed size.
        size: usize,
        /// The limit in force.
        max: usize,
    },

    /// A received message is not valid Snappy. Reason:
    /// [`DisconnectReason::BreachOfProtocol`].
    #[error("snappy: {0}")]
    Snappy(#[source] snap::Error),

    /// A received message (message id, Hello) is not valid RLP.
    /// Reason: [`DisconnectReason::BreachOfProtocol`].
    #[error("rlp: {0}")]
    Rlp(#[from] alloy_rlp::Error),

    /// A received message is structurally invalid (e.g. a Hello whose node id
    /// is not 64 bytes). Reason: [`DisconnectReason::BreachOfProtocol`].
    #[error("invalid message: {0}")]
    InvalidMessage(&'static str),

    /// A message that is not allowed at this point: anything but Hello or
    /// Disconnect before Hello, or a second Hello.
    /// Reason: [`DisconnectReason::BreachOfProtocol`].
    #[error("unexpected message id {id:#x}")]
    UnexpectedMessage {
        /// The message id received.
        id: u64,
    },

    /// A message id beyond every shared capability's range.
    /// Reason: [`DisconnectReason::BreachOfProtocol`].
    #[error("message id {0:#x} is outside every shared capability")]
    UnknownMessageId(u64),

    /// The remote Hello's `id` differs from the key it proved in the ECIES
    /// handshake. Reason: [`DisconnectReason::UnexpectedIdentity`].
    #[error("hello node id differs from the handshake key")]
    HelloIdMismatch,

    /// The remote node is this node. Reason: [`DisconnectReason::ConnectedToSelf`].
    #[error("connected to self")]
    ConnectedToSelf,

    /// The remote Hello shares no capability with ours.
    /// Reason: [`DisconnectReason::UselessPeer`].
    #[error("no shared capability")]
    NoSharedCapabilities,

    /// The peer sent Disconnect during the Hello exchange (`None`: a reason we
    /// could not read). Reason: `None` (the peer is leaving already).
    #[error("peer disconnected: {}", fmt_reason(.0))]
    Disconnected(Option<DisconnectReason>),

    /// A message we were asked to send is too large for a frame (more than
    /// [`MAX_FRAME_SIZE`](crate::MAX_FRAME_SIZE) bytes of payload). Our
    /// caller's fault; reason: `None`.
    #[error("outgoing payload of {size} bytes exceeds the limit of {max}")]
    PayloadTooLarge {
        /// The payload size.
        size: usize,
        /// The limit in force.
        max: usize,
    },

    /// We were asked to send a message for a capability index or id outside the
    /// shared capabilities. Our caller's fault; reason: `None`.
    #[error("capability index {index} / message id {id} is not shared")]
    InvalidCapability {
        /// The capability index given.
        index: usize,
        /// The message id (within the capability) given.
        id: u8,
    },

    /// A step of connection setup (TCP connect, ECIES, Hello) did not finish in
    /// time. Reason: `None` (the connection is dropped).
    #[error("{0} timed out")]
    Timeout(&'static str),

    /// The admission check refused the peer once its key was known; it was sent
    /// this reason already. Reason: `None`.
    #[error("refused: {0}")]
    Refused(DisconnectReason),

    /// The frame decoder failed earlier; the stream cannot be resynchronised.
    /// Reason: `None` (the first error already decided).
    #[error("frame decoder failed earlier")]
    Poisoned,
}

fn fmt_reason(reason: &Option<DisconnectReason>) -> String {
    match reason {
        Some(r) => format!("{r} ({:#04x})", r.code()),
        None => "unknown reason".to_owned(),
    }
}

impl Error {
    /// The Disconnect reason to send the peer before closing, or `None` to just
    /// close. See each variant.
    pub fn disconnect_reason(&self) -> Option<DisconnectReason> {
        match self {
            Self::BadMac
            | Self::FrameTooLarge { .. }
            | Self::MessageTooLarge { .. }
            | Self::Snappy(_)
            | Self::Rlp(_)
            | Self::InvalidMessage(_)
            | Self::UnexpectedMessage { .. }
            | Self::UnknownMessageId(_) => Some(DisconnectReason::BreachOfProtocol),
            Self::HelloIdMismatch => Some(DisconnectReason::UnexpectedIdentity),
            Self::ConnectedToSelf => Some(DisconnectReason::ConnectedToSelf),
            Self::NoSharedCapabilities => Some(DisconnectReason::UselessPeer),
            Self::Io(_)
            | Self::ConnectionClosed
            | Self::InvalidNodeId
            | Self::HandshakeTooLarge { .. }
            | Self::EciesDecrypt
            | Self::InvalidHandshake(_)
            | Self::Disconnected(_)
            | Self::PayloadTooLarge { .. }
            | Self::InvalidCapability { .. }
            | Self::Timeout(_)
            | Self::Refused(_)
            | Self::Poisoned => None,
        }
    }

    /// Whether the peer is to blame (worth a reputation penalty): malformed
    /// handshakes, frames or messages, a wrong identity. Plain I/O errors,
    /// clean closes, the peer's own Disconnect, having nothing in common,
    /// connecting to ourselves and our caller's misuse are not.
    pub fn is_peer_fault(&self) -> bool {
        matches!(
            self,
            Self::InvalidNodeId
                | Self::HandshakeTooLarge { .. }
                | Self::EciesDecrypt
                | Self::InvalidHandshake(_)
        ) || (self.disconnect_reason().is_some()
            && !matches!(self, Self::NoSharedCapabilities | Self::ConnectedToSelf))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons() {
        assert_eq!(
            Error::BadMac.disconnect_reason(),
            Some(DisconnectReason::BreachOfProtocol)
        );
        assert_eq!(
            Error::NoSharedCapabilities.disconnect_reason(),
            Some(DisconnectReason::UselessPeer)
        );
        assert_eq!(
            Error::HelloIdMismatch.disconnect_reason(),
            Some(DisconnectReason::UnexpectedIdentity)
        );
        assert_eq!(Error::ConnectionClosed.disconnect_reason(), None);
        assert!(Error::BadMac.is_peer_fault());
        assert!(Error::EciesDecrypt.is_peer_fault());
        assert!(!Error::NoSharedCapabilities.is_peer_fault());
        assert!(!Error::ConnectedToSelf.is_peer_fault());
        assert!(Error::HelloIdMismatch.is_peer_fault());
        assert!(!Error::ConnectionClosed.is_peer_fault());
        assert!(Error::Disconnected(None).to_string().contains("unknown"));
    }
}
