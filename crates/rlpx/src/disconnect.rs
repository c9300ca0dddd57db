//! `p2p` Disconnect reasons (devp2p `rlpx.md`, "Disconnect (0x01)").

use std::fmt;

/// Why a peer is being (or was) disconnected: the reason codes of the `p2p`
/// Disconnect message, as listed in devp2p `rlpx.md` ("Disconnect (0x01)").
///
/// The discriminant is the wire code. Unknown codes do not convert
/// ([`TryFrom<u8>`] fails with [`UnknownDisconnectReason`]); a received
/// Disconnect whose reason is unknown or garbled surfaces as `None` (see
/// [`decode_disconnect`](crate::p2p::decode_disconnect)), never as a panic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum DisconnectReason {
    /// 0x00: disconnect requested.
    DisconnectRequested = 0x00,
    /// 0x01: TCP sub-system error.
    TcpSubsystemError = 0x01,
    /// 0x02: breach of protocol, e.g. a malformed message, bad RLP, bad MAC.
    BreachOfProtocol = 0x02,
    /// 0x03: useless peer, e.g. no shared capability.
    UselessPeer = 0x03,
    /// 0x04: too many peers.
    TooManyPeers = 0x04,
    /// 0x05: already connected.
    AlreadyConnected = 0x05,
    /// 0x06: incompatible P2P protocol version.
    IncompatibleP2pVersion = 0x06,
    /// 0x07: null node identity received (automatically invalid).
    NullNodeIdentity = 0x07,
    /// 0x08: client quitting.
    ClientQuitting = 0x08,
    /// 0x09: unexpected identity in handshake.
    UnexpectedIdentity = 0x09,
    /// 0x0a: identity is the same as this node (connected to self).
    ConnectedToSelf = 0x0a,
    /// 0x0b: ping timeout.
    PingTimeout = 0x0b,
    /// 0x10: some other reason specific to a subprotocol.
    SubprotocolError = 0x10,
}

impl DisconnectReason {
    /// Every reason, in wire-code order.
    pub const ALL: [Self; 13] = [
        Self::DisconnectRequested,
        Self::TcpSubsystemError,
        Self::BreachOfProtocol,
        Self::UselessPeer,
        Self::TooManyPeers,
        Self::AlreadyConnected,
        Self::IncompatibleP2pVersion,
        Self::NullNodeIdentity,
        Self::ClientQuitting,
        Self::UnexpectedIdentity,
        Self::ConnectedToSelf,
        Self::PingTimeout,
        Self::SubprotocolError,
    ];

    /// The wire code.
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// The spec's one-line description.
    pub const fn description(self) -> &'static str {
        match self {
            Self::DisconnectRequested => "disconnect requested",
            Self::TcpSubsystemError => "TCP sub-system error",
            Self::BreachOfProtocol => "breach of protocol",
            Self::UselessPeer => "useless peer",
            Self::TooManyPeers => "too many peers",
            Self::AlreadyConnected => "already connected",
            Self::IncompatibleP2pVersion => "incompatible P2P protocol version",
            Self::NullNodeIdentity => "null node identity received",
            Self::ClientQuitting => "client quitting",
            Self::UnexpectedIdentity => "unexpected identity in handshake",
            Self::ConnectedToSelf => "identity is the same as this node",
            Self::PingTimeout => "ping timeout",
            Self::SubprotocolError => "subprotocol-specific reason",
        }
    }
}

impl fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.description())
    }
}

/// A Disconnect reason code that `rlpx.md` does not define.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown disconnect reason code {0:#04x}")]
pub struct UnknownDisconnectReason(pub u8);

impl TryFrom<u8> for DisconnectReason {
    type Error = UnknownDisconnectReason;

    fn try_from(code: u8) -> Result<Self, Self::Error> {
        Ok(match code {
            0x00 => Self::DisconnectRequested,
            0x01 => Self::TcpSubsystemError,
            0x02 => Self::BreachOfProtocol,
            0x03 => Self::UselessPeer,
            0x04 => Self::TooManyPeers,
            0x05 => Self::AlreadyConnected,
            0x06 => Self::IncompatibleP2pVersion,
            0x07 => Self::NullNodeIdentity,
            0x08 => Self::ClientQuitting,
            0x09 => Self::UnexpectedIdentity,
            0x0a => Self::ConnectedToSelf,
            0x0b => Self::PingTimeout,
            0x10 => Self::SubprotocolError,
            other => return Err(UnknownDisconnectReason(other)),
        })
    }
}

impl From<DisconnectReason> for u8 {
    fn from(reason: DisconnectReason) -> Self {
        reason.code()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for reason in DisconnectReason::ALL {
            assert_eq!(DisconnectReason::try_from(reason.code()), Ok(reason));
        }
        let known: Vec<u8> = DisconnectReason::ALL.iter().map(|r| r.code()).collect();
        for code in 0..=u8::MAX {
            let parsed = DisconnectReason::try_from(code);
            assert_eq!(parsed.is_ok(), known.contains(&code), "code {code}");
            if let Err(e) = parsed {
                assert_eq!(e, UnknownDisconnectReason(code));
            }
        }
    }
}
