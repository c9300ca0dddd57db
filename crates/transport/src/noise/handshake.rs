//! The libp2p Noise XX handshake: the identity payload, its signature over the static
//! key, the X25519 resolver, and the three messages each way.

use std::sync::Arc;

use devmux_identity::{NodeKey, PeerId, PublicKey};
use futures::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use prost::Message as _;

use super::cipher::split;
use super::{NoiseStream, HANDSHAKE_OVERHEAD, NOISE_PARAMS, STATIC_KEY_DOMAIN};
use crate::Error;

/// `NoiseHandshakePayload` of libp2p's `payload.proto`.
#[derive(Clone, PartialEq, prost::Message)]
struct HandshakePayload {
    #[prost(bytes = "vec", tag = "1")]
    identity_key: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    identity_sig: Vec<u8>,
    // Field 4 (extensions: stream_muxers, webtransport_certhashes) is ignored on
    // receipt and never sent: peers then negotiate the muxer with multistream-select.
}

/// The node's Noise identity: its x25519 static keypair, generated once per
/// process, and the signature that binds it to the node key.
pub struct NoiseIdentity {
    private: Vec<u8>,
    /// The static key pair, for the resolver (it skips re-deriving the public key).
    static_key: StaticKey,
    payload: Vec<u8>,
}

impl std::fmt::Debug for NoiseIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NoiseIdentity")
    }
}

fn params() -> snow::params::NoiseParams {
    // The constant is a valid pattern name; parsing it cannot fail.
    #[allow(clippy::unwrap_used)]
    NOISE_PARAMS.parse().unwrap()
}

impl NoiseIdentity {
    /// Generates a static x25519 key and signs it with `key`.
    pub fn new(key: &NodeKey) -> Result<Self, Error> {
        let keypair = snow::Builder::new(params())
            .generate_keypair()
            .map_err(noise_err)?;
        let mut signed = STATIC_KEY_DOMAIN.to_vec();
        signed.extend_from_slice(&keypair.public);
        let payload = HandshakePayload {
            identity_key: key.public_key_protobuf(),
            identity_sig: key.sign(&signed),
        }
        .encode_to_vec();
        let (Ok(private), Ok(public)) = (
            <[u8; 32]>::try_from(keypair.private.as_slice()),
            <[u8; 32]>::try_from(keypair.public.as_slice()),
        ) else {
            return Err(Error::Noise("unexpected x25519 key length".into()));
        };
        Ok(Self {
            private: keypair.private,
            static_key: StaticKey { private, public },
            payload,
        })
    }

    fn builder(&self) -> Result<snow::Builder<'_>, Error> {
        let resolver = Resolver {
            static_key: self.static_key,
        };
        snow::Builder::with_resolver(params(), Box::new(resolver))
            .local_private_key(&self.private)
            .map_err(noise_err)
    }
}

/// An x25519 key pair.
#[derive(Clone, Copy)]
struct StaticKey {
    private: [u8; 32],
    public: [u8; 32],
}

/// The handshake's crypto: ring's hash, cipher and random numbers (what snow's
/// `ring-accelerated` builder picks) and X25519 from curve25519-dalek, as snow
/// does it, except that the node's static public key is computed once, not
/// again for every handshake.
struct Resolver {
    static_key: StaticKey,
}

impl snow::resolvers::CryptoResolver for Resolver {
    fn resolve_rng(&self) -> Option<Box<dyn snow::types::Random>> {
        snow::resolvers::RingResolver.resolve_rng()
    }

    fn resolve_dh(&self, choice: &snow::params::DHChoice) -> Option<Box<dyn snow::types::Dh>> {
        match choice {
            snow::params::DHChoice::Curve25519 => Some(Box::new(X25519 {
                key: StaticKey {
                    private: [0; 32],
                    public: [0; 32],
                },
                known: self.static_key,
            })),
            _ => None,
        }
    }

    fn resolve_hash(
        &self,
        choice: &snow::params::HashChoice,
    ) -> Option<Box<dyn snow::types::Hash>> {
        snow::resolvers::RingResolver.resolve_hash(choice)
    }

    fn resolve_cipher(
        &self,
        choice: &snow::params::CipherChoice,
    ) -> Option<Box<dyn snow::types::Cipher>> {
        snow::resolvers::RingResolver.resolve_cipher(choice)
    }
}

/// X25519 for snow. Key generation uses curve25519-dalek's precomputed
/// basepoint tables (snow turns them off; the transport turns them on).
struct X25519 {
    key: StaticKey,
    /// The node's static key pair: `set` with its private key needs no work.
    known: StaticKey,
}

impl X25519 {
    fn derive(&mut self) {
        self.key.public = if self.key.private == self.known.private {
            self.known.public
        } else {
            curve25519_dalek::MontgomeryPoint::mul_base_clamped(self.key.private).to_bytes()
        };
    }
}

impl snow::types::Dh for X25519 {
    fn name(&self) -> &'static str {
        "25519"
    }

    fn pub_len(&self) -> usize {
        32
    }

    fn priv_len(&self) -> usize {
        32
    }

    fn set(&mut self, privkey: &[u8]) {
        let n = privkey.len().min(32);
        self.key.private = [0; 32];
        self.key.private[..n].copy_from_slice(&privkey[..n]);
        self.derive();
    }

    fn generate(&mut self, rng: &mut dyn snow::types::Random) -> Result<(), snow::Error> {
        rng.try_fill_bytes(&mut self.key.private)?;
        self.derive();
        Ok(())
    }

    fn pubkey(&self) -> &[u8] {
        &self.key.public
    }

    fn privkey(&self) -> &[u8] {
        &self.key.private
    }

    fn dh(&self, pubkey: &[u8], out: &mut [u8]) -> Result<(), snow::Error> {
        let (Some(remote), true) = (pubkey.first_chunk::<32>(), out.len() >= 32) else {
            return Err(snow::Error::Dh);
        };
        let shared = curve25519_dalek::MontgomeryPoint(*remote).mul_clamped(self.key.private);
        out[..32].copy_from_slice(shared.as_bytes());
        Ok(())
    }
}

fn noise_err(e: snow::Error) -> Error {
    Error::Noise(e.to_string())
}

/// Reads one length-prefixed Noise message into `buf`.
async fn read_message<T: AsyncRead + Unpin>(io: &mut T, buf: &mut Vec<u8>) -> Result<(), Error> {
    let mut len = [0u8; 2];
    io.read_exact(&mut len).await?;
    let len = u16::from_be_bytes(len) as usize;
    buf.resize(len, 0);
    io.read_exact(buf).await?;
    Ok(())
}

async fn write_message<T: AsyncWrite + Unpin>(io: &mut T, msg: &[u8]) -> Result<(), Error> {
    let len = u16::try_from(msg.len()).map_err(|_| Error::Noise("message too long".into()))?;
    let mut framed = Vec::with_capacity(2 + msg.len());
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(msg);
    io.write_all(&framed).await?;
    io.flush().await?;
    Ok(())
}

/// Checks a received handshake payload against the remote's static key and
/// returns the remote's public key.
fn verify_payload(payload: &[u8], remote_static: Option<&[u8]>) -> Result<PublicKey, Error> {
    let payload =
        HandshakePayload::decode(payload).map_err(|e| Error::Noise(format!("bad payload: {e}")))?;
    let key = PublicKey::try_decode_protobuf(&payload.identity_key)
        .map_err(|e| Error::Noise(format!("bad identity key: {e}")))?;
    let remote_static =
        remote_static.ok_or_else(|| Error::Noise("remote static key missing".into()))?;
    let mut signed = STATIC_KEY_DOMAIN.to_vec();
    signed.extend_from_slice(remote_static);
    if !verify_signature(&key, &signed, &payload.identity_sig) {
        return Err(Error::Noise("identity signature does not verify".into()));
    }
    Ok(key)
}

/// [`verify_payload`] for the fuzz targets ([`crate::fuzzing`]).
pub(crate) fn verify_handshake_payload(payload: &[u8], remote_static: &[u8]) -> Result<(), Error> {
    verify_payload(payload, Some(remote_static)).map(|_| ())
}

/// Checks `sig` (DER) over `msg` by `key`. secp256k1 keys, the ones devmux and
/// Ethereum nodes use, go to libsecp256k1 (about twice as fast as the k256 code
/// behind libp2p-identity); like libp2p-identity it refuses high-S signatures.
/// Other key types, and DER that libsecp256k1 does not parse, go to
/// libp2p-identity, so nothing it accepts is refused here.
fn verify_signature(key: &PublicKey, msg: &[u8], sig: &[u8]) -> bool {
    use secp256k1::{ecdsa::Signature, Message, SECP256K1};
    let Ok(secp) = key.clone().try_into_secp256k1() else {
        return key.verify(msg, sig);
    };
    let (Ok(public), Ok(sig_c)) = (
        secp256k1::PublicKey::from_slice(&secp.to_bytes_uncompressed()),
        Signature::from_der(sig),
    ) else {
        return key.verify(msg, sig);
    };
    let digest = ring::digest::digest(&ring::digest::SHA256, msg);
    let Ok(digest) = <[u8; 32]>::try_from(digest.as_ref()) else {
        return false;
    };
    SECP256K1
        .verify_ecdsa(&Message::from_digest(digest), &sig_c, &public)
        .is_ok()
}

/// Runs the XX handshake as initiator; checks the remote's PeerId if one is expected.
pub(crate) async fn handshake_initiator<T>(
    mut io: T,
    identity: &NoiseIdentity,
    expected: Option<PeerId>,
) -> Result<(NoiseStream<T>, PublicKey), Error>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let mut hs = identity.builder()?.build_initiator().map_err(noise_err)?;
    let mut out = vec![0u8; HANDSHAKE_OVERHEAD + identity.payload.len()];
    let mut inbuf = Vec::new();
    let mut payload = Vec::new();

    // -> e
    let n = hs.write_message(&[], &mut out).map_err(noise_err)?;
    write_message(&mut io, &out[..n]).await?;
    // <- e, ee, s, es
    read_message(&mut io, &mut inbuf).await?;
    payload.resize(inbuf.len(), 0);
    let n = hs.read_message(&inbuf, &mut payload).map_err(noise_err)?;
    let remote = verify_payload(&payload[..n], hs.get_remote_static())?;
    let remote_peer = remote.to_peer_id();
    if let Some(expected) = expected {
        if expected != remote_peer {
            return Err(Error::PeerIdMismatch {
                expected: Box::new(expected),
                actual: Box::new(remote_peer),
            });
        }
    }
    // -> s, se
    let n = hs
        .write_message(&identity.payload, &mut out)
        .map_err(noise_err)?;
    write_message(&mut io, &out[..n]).await?;
    let ciphers = split(&mut hs)?;
    Ok((NoiseStream::new(io, ciphers), remote))
}

/// Runs the XX handshake as responder.
pub(crate) async fn handshake_responder<T>(
    mut io: T,
    identity: &NoiseIdentity,
) -> Result<(NoiseStream<T>, PublicKey), Error>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let mut hs = identity.builder()?.build_responder().map_err(noise_err)?;
    let mut out = vec![0u8; HANDSHAKE_OVERHEAD + identity.payload.len()];
    let mut inbuf = Vec::new();
    let mut payload = Vec::new();

    // <- e
    read_message(&mut io, &mut inbuf).await?;
    payload.resize(inbuf.len(), 0);
    hs.read_message(&inbuf, &mut payload).map_err(noise_err)?;
    // -> e, ee, s, es
    let n = hs
        .write_message(&identity.payload, &mut out)
        .map_err(noise_err)?;
    write_message(&mut io, &out[..n]).await?;
    // <- s, se
    read_message(&mut io, &mut inbuf).await?;
    payload.resize(inbuf.len(), 0);
    let n = hs.read_message(&inbuf, &mut payload).map_err(noise_err)?;
    let remote = verify_payload(&payload[..n], hs.get_remote_static())?;
    let ciphers = split(&mut hs)?;
    Ok((NoiseStream::new(io, ciphers), remote))
}

/// A shareable Noise identity.
pub type SharedNoiseIdentity = Arc<NoiseIdentity>;

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use futures::io::Cursor;

    pub(crate) fn pair() -> (NoiseIdentity, NodeKey) {
        let key = NodeKey::generate();
        (NoiseIdentity::new(&key).unwrap(), key)
    }

    #[tokio::test]
    async fn wrong_expected_peer_fails() {
        let (ia, _) = pair();
        let (ib, _) = pair();
        let other = NodeKey::generate().peer_id();
        let (a, b) = tokio::io::duplex(1 << 16);
        use tokio_util::compat::TokioAsyncReadCompatExt;
        let (ra, _rb) = tokio::join!(
            handshake_initiator(a.compat(), &ia, Some(other)),
            handshake_responder(b.compat(), &ib)
        );
        assert!(matches!(ra, Err(Error::PeerIdMismatch { .. })));
    }

    #[tokio::test]
    async fn garbage_handshake_is_an_error() {
        let (ib, _) = pair();
        let mut junk = vec![0u8, 40];
        junk.extend_from_slice(&[7u8; 40]);
        let io = Cursor::new(junk);
        assert!(handshake_responder(io, &ib).await.is_err());
    }

    #[test]
    fn x25519_agrees_and_knows_its_static_key() {
        use snow::resolvers::CryptoResolver;
        let (id, _) = pair();
        let resolver = Resolver {
            static_key: id.static_key,
        };
        let choice = snow::params::DHChoice::Curve25519;
        let mut rng = resolver.resolve_rng().unwrap();
        let (mut a, mut b) = (
            resolver.resolve_dh(&choice).unwrap(),
            resolver.resolve_dh(&choice).unwrap(),
        );
        a.generate(&mut *rng).unwrap();
        b.generate(&mut *rng).unwrap();
        let (mut ab, mut ba) = ([0u8; 32], [0u8; 32]);
        a.dh(b.pubkey(), &mut ab).unwrap();
        b.dh(a.pubkey(), &mut ba).unwrap();
        assert_eq!(ab, ba);
        // The static key's public half comes from the identity, and is right.
        let mut s = resolver.resolve_dh(&choice).unwrap();
        s.set(&id.private);
        assert_eq!(s.pubkey(), id.static_key.public);
        let derived = curve25519_dalek::MontgomeryPoint::mul_base_clamped(id.static_key.private);
        assert_eq!(s.pubkey(), derived.as_bytes());
        // Another private key is derived, not taken from the cache.
        s.set(a.privkey());
        assert_eq!(s.pubkey(), a.pubkey());
        assert!(a.dh(&[0u8; 31], &mut ab).is_err());
    }

    #[test]
    fn identity_signatures_checked_like_libp2p_identity() {
        use secp256k1::ecdsa::Signature;
        let key = NodeKey::generate();
        let public = key.public_key();
        let msg = b"noise-libp2p-static-key:0123456789abcdef0123456789abcdef";
        let sig = key.sign(msg);
        assert!(verify_signature(&public, msg, &sig));
        assert!(!verify_signature(&public, b"another message", &sig));
        assert!(!verify_signature(
            &NodeKey::generate().public_key(),
            msg,
            &sig
        ));
        assert!(!verify_signature(&public, msg, &sig[..sig.len() - 1]));
        // The high-S twin of a valid signature: libp2p-identity refuses it, so do we.
        let low = Signature::from_der(&sig).unwrap();
        let compact_low = low.serialize_compact();
        let (r, s) = compact_low.split_at(32);
        let n = hex_order();
        let mut high_s = [0u8; 32];
        let mut borrow = 0i16;
        for i in (0..32).rev() {
            let d = n[i] as i16 - s[i] as i16 - borrow;
            high_s[i] = d.rem_euclid(256) as u8;
            borrow = i16::from(d < 0);
        }
        let mut compact = [0u8; 64];
        compact[..32].copy_from_slice(r);
        compact[32..].copy_from_slice(&high_s);
        let high = Signature::from_compact(&compact).unwrap().serialize_der();
        assert!(!public.verify(msg, &high), "libp2p-identity refuses high-S");
        assert!(!verify_signature(&public, msg, &high));
    }

    /// The order of secp256k1's group, big-endian.
    fn hex_order() -> [u8; 32] {
        let hex = "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141";
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    }

    #[test]
    fn payload_with_unknown_extension_fields_decodes() {
        let key = NodeKey::generate();
        let id = NoiseIdentity::new(&key).unwrap();
        // Append field 4 (extensions, length-delimited) holding stream_muxers = ["/yamux/1.0.0"].
        let mut payload = id.payload.clone();
        let ext = [&[0x12u8, 12][..], b"/yamux/1.0.0"].concat();
        payload.push(0x22);
        payload.push(ext.len() as u8);
        payload.extend_from_slice(&ext);
        let decoded = HandshakePayload::decode(payload.as_slice()).unwrap();
        assert_eq!(decoded.identity_key, key.public_key_protobuf());
    }

    proptest::proptest! {
        #[test]
        fn verify_payload_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = verify_payload(&bytes, Some(&[0u8; 32]));
        }
    }
}
