//! libp2p Noise: `Noise_XX_25519_ChaChaPoly_SHA256` with snow, per libp2p's
//! `noise/README.md`.
//!
//! Every Noise message travels behind a 2-byte big-endian length. The handshake
//! payload is the protobuf `NoiseHandshakePayload{identity_key, identity_sig}`:
//! the sender's libp2p public key and its signature over
//! `"noise-libp2p-static-key:" ‖ x25519 static key`, which binds the ephemeral
//! Noise session to the long-lived node key.//!
//! Split by job: `handshake` (the XX handshake, the identity payload and its
//! signature, the X25519 resolver), `cipher` (the transport keys and nonces after
//! `Split()`, on ring, checked against snow's own transport state), [`NoiseStream`]
//! (framing and in-place sealing over the socket) and `buffer` (the process-wide
//! buffer pool).

mod buffer;
mod cipher;
pub(crate) mod fuzz;
mod handshake;
mod stream;

/// The Noise protocol name libp2p uses.
pub const NOISE_PARAMS: &str = "Noise_XX_25519_ChaChaPoly_SHA256";
/// The multistream-select id of libp2p Noise.
pub const PROTOCOL_ID: &str = "/noise";
/// Prefix of the signed static key (libp2p `noise/README.md`).
pub(crate) const STATIC_KEY_DOMAIN: &[u8] = b"noise-libp2p-static-key:";
/// A Noise message is at most 65535 bytes (Noise spec §3), tag included.
pub const MAX_NOISE_MESSAGE: usize = 65535;
/// ChaChaPoly tag length.
pub(crate) const TAG_LEN: usize = 16;
/// What an XX handshake message adds to our payload at most: an ephemeral key
/// (32), an encrypted static key (32 + 16) and the payload's tag (16).
pub(crate) const HANDSHAKE_OVERHEAD: usize = 32 + 48 + TAG_LEN;
/// The most plaintext one Noise transport message carries.
pub const MAX_PLAINTEXT: usize = MAX_NOISE_MESSAGE - TAG_LEN;

pub(crate) use handshake::{handshake_initiator, handshake_responder, verify_handshake_payload};
pub use handshake::{NoiseIdentity, SharedNoiseIdentity};
pub use stream::NoiseStream;
