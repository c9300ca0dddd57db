//! RLPx: the devp2p transport that Ethereum execution clients speak over TCP
//! (devp2p `rlpx.md`, EIP-8), byte-compatible with go-ethereum, reth,
//! Nethermind, Besu and @ethereumjs/devp2p.
//!
//! # Layers
//!
//! From the socket up, each layer usable on its own:
//!
//! | layer | module | what |
//! |---|---|---|
//! | ECIES | [`handshake`] | auth/ack key agreement (secp256k1 ECDH, concat KDF, AES-128-CTR, HMAC-SHA256); sent in EIP-8 form, read in both forms; sans I/O |
//! | frames | [`frame`] | AES-256-CTR frames with the keccak256 MAC; sans I/O, in place on a `BytesMut` |
//! | `p2p` | [`p2p`], [`snappy`] | Hello, Disconnect, Ping, Pong; Snappy after Hello (v5), 16 MiB cap checked before allocating |
//! | capabilities | [`capability`] | shared capabilities and message-id offsets |
//! | streams | [`EciesStream`] → [`Established`] → [`SessionReader`] + [`SessionWriter`] | the typed async stages over any `AsyncRead + AsyncWrite` |
//! | carrier | [`carrier`] | connection setup: TCP connect or accept, ECIES, an admission check once the key is known, Hello, each under a deadline |
//! | sessions | [`session`] | driving a session: one bounded channel per capability (messages and bytes), keepalive, Disconnect with a grace period |
//!
//! The stages are types: an [`EciesStream`] (handshake done, no Hello yet) has
//! no way to send capability messages; only [`Established`] can be split into
//! a reader and a writer. A server runs one task on the [`SessionReader`] and
//! one on the [`SessionWriter`]; the reader reports Ping and the writer
//! answers with Pong. Used directly, deadlines are the caller's: wrap each step in
//! `tokio::time::timeout` ([`DEFAULT_HANDSHAKE_TIMEOUT`]); [`carrier::Endpoint`] and
//! [`session::Session`] do that, and run the tasks, for a server.
//!
//! Peers are named by their node id ([`NodeId`]): the 64-byte uncompressed
//! secp256k1 public key. The local key is a [`secp256k1::Keypair`], made once: the
//! handshake needs both halves and deriving the public one costs a multiplication.
//!
//! # Errors
//!
//! One [`Error`] enum. [`Error::disconnect_reason`] gives the
//! [`DisconnectReason`] to send before closing (or `None`: just close), and
//! [`Error::is_peer_fault`] whether the peer deserves a penalty.
//!
//! # Example
//!
//! ```no_run
//! use devmux_rlpx::{Capability, EciesStream, Incoming, NodeId, SessionConfig};
//! use tokio::{net::TcpStream, time::timeout};
//!
//! # async fn run(key: secp256k1::Keypair, remote: NodeId) -> Result<(), Box<dyn std::error::Error>> {
//! let step = devmux_rlpx::DEFAULT_HANDSHAKE_TIMEOUT;
//! let tcp = TcpStream::connect("127.0.0.1:30303").await?;
//! let ecies = timeout(step, EciesStream::connect(tcp, &key, &remote)).await??;
//! let config = SessionConfig::new("devmux/0.1.0").with_capability(Capability::new("eth", 68, 17));
//! let session = timeout(step, ecies.exchange_hello(&config)).await??;
//! let eth = session.shared_capabilities().position("eth").ok_or("no eth")?;
//! let (mut reader, mut writer) = session.split_with(TcpStream::into_split);
//!
//! writer.send_capability(eth, 0x00, &[0xc0]).await?; // eth message 0 (Status) with its RLP
//! loop {
//!     match reader.recv().await? {
//!         Incoming::Ping => writer.pong().await?,
//!         Incoming::Pong => {}
//!         Incoming::Disconnect(reason) => break println!("peer left: {reason:?}"),
//!         Incoming::Capability { index, id, payload } => {
//!             println!("capability {index} message {id}: {} bytes", payload.len())
//!         }
//!     }
//! }
//! # Ok(())
//! # }
//! ```

pub mod capability;
pub mod carrier;
mod disconnect;
mod ecies;
mod error;
pub mod frame;
pub mod handshake;
pub mod p2p;
pub mod session;
pub mod snappy;
mod stream;

pub use capability::{Capability, HelloCapability, SharedCapabilities, SharedCapability};
pub use disconnect::{DisconnectReason, UnknownDisconnectReason};
pub use error::Error;
pub use frame::MAX_FRAME_SIZE;
pub use handshake::{ResponderKeys, MAX_HANDSHAKE_PACKET_SIZE};
pub use p2p::Hello;
pub use secp256k1;
pub use snappy::MAX_MESSAGE_SIZE;
pub use stream::{
    EciesStream, Established, Incoming, SessionConfig, SessionReader, SessionWriter,
    DEFAULT_HANDSHAKE_TIMEOUT, MAX_HELLO_FRAME_SIZE,
};

use secp256k1::{PublicKey, SecretKey, SECP256K1};

/// A devp2p node id: the 64-byte uncompressed secp256k1 public key, without
/// the `0x04` prefix (rlpx.md, "Node Identity").
pub type NodeId = [u8; 64];

/// The node id of a public key.
pub fn node_id(key: &PublicKey) -> NodeId {
    let uncompressed = key.serialize_uncompressed();
    let mut id = [0u8; 64];
    id.copy_from_slice(&uncompressed[1..]);
    id
}

/// The node id of a secret key's public key.
pub fn node_id_of_secret(key: &SecretKey) -> NodeId {
    node_id(&PublicKey::from_secret_key(SECP256K1, key))
}

/// The public key a node id stands for; fails if it is not on the curve.
pub fn public_key(id: &NodeId) -> Result<PublicKey, Error> {
    let mut uncompressed = [0u8; 65];
    uncompressed[0] = 0x04;
    uncompressed[1..].copy_from_slice(id);
    PublicKey::from_slice(&uncompressed).map_err(|_| Error::InvalidNodeId)
}

/// Entry points for the fuzz targets in `fuzz/` and their corpus replay: the parsers
/// behind the ECIES decryption and the frame MAC, which a fuzzer could not reach
/// through them. Not part of the API.
#[doc(hidden)]
pub mod fuzzing {
    /// A decrypted auth body (`eip8`: the RLP form, else the fixed pre-EIP-8 layout).
    pub fn auth_body(plaintext: &[u8], eip8: bool) {
        let _ = crate::handshake::decode_auth_body(plaintext, eip8);
    }

    /// A decrypted ack body.
    pub fn ack_body(plaintext: &[u8], eip8: bool) {
        let _ = crate::handshake::decode_ack_body(plaintext, eip8);
    }

    /// A session's reading side after the MACs: frames sealed with known secrets,
    /// their headers true or lying, message ids, Snappy, the limits (the input's
    /// layout: `stream::fuzz`).
    pub fn session_frames(data: &[u8]) {
        crate::stream::fuzz::session_frames(data);
    }
}
