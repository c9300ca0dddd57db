//! libp2p Noise: `Noise_XX_25519_ChaChaPoly_SHA256` with snow, per libp2p's
//! `noise/README.md`.
//!
//! Every Noise message travels behind a 2-byte big-endian length. The handshake
//! payload is the protobuf `NoiseHandshakePayload{identity_key, identity_sig}`:
//! the sender's libp2p public key and its signature over
//! `"noise-libp2p-static-key:" ‖ x25519 static key`, which binds the ephemeral
//! Noise session to the long-lived node key.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use devmux_identity::{NodeKey, PeerId, PublicKey};
use futures::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use prost::Message as _;

use crate::Error;

/// The Noise protocol name libp2p uses.
pub const NOISE_PARAMS: &str = "Noise_XX_25519_ChaChaPoly_SHA256";
/// The multistream-select id of libp2p Noise.
pub const PROTOCOL_ID: &str = "/noise";
/// Prefix of the signed static key (libp2p `noise/README.md`).
const STATIC_KEY_DOMAIN: &[u8] = b"noise-libp2p-static-key:";
/// A Noise message is at most 65535 bytes (Noise spec §3), tag included.
pub const MAX_NOISE_MESSAGE: usize = 65535;
/// ChaChaPoly tag length.
const TAG_LEN: usize = 16;
/// The most plaintext one Noise transport message carries.
pub const MAX_PLAINTEXT: usize = MAX_NOISE_MESSAGE - TAG_LEN;

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
        Ok(Self {
            private: keypair.private,
            payload,
        })
    }

    fn builder(&self) -> Result<snow::Builder<'_>, Error> {
        snow::Builder::new(params())
            .local_private_key(&self.private)
            .map_err(noise_err)
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
    if !key.verify(&signed, &payload.identity_sig) {
        return Err(Error::Noise("identity signature does not verify".into()));
    }
    Ok(key)
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
    let mut out = vec![0u8; MAX_NOISE_MESSAGE];
    let mut inbuf = Vec::new();
    let mut payload = vec![0u8; MAX_NOISE_MESSAGE];

    // -> e
    let n = hs.write_message(&[], &mut out).map_err(noise_err)?;
    write_message(&mut io, &out[..n]).await?;
    // <- e, ee, s, es
    read_message(&mut io, &mut inbuf).await?;
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
    let state = hs.into_transport_mode().map_err(noise_err)?;
    Ok((NoiseStream::new(io, state), remote))
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
    let mut out = vec![0u8; MAX_NOISE_MESSAGE];
    let mut inbuf = Vec::new();
    let mut payload = vec![0u8; MAX_NOISE_MESSAGE];

    // <- e
    read_message(&mut io, &mut inbuf).await?;
    hs.read_message(&inbuf, &mut payload).map_err(noise_err)?;
    // -> e, ee, s, es
    let n = hs
        .write_message(&identity.payload, &mut out)
        .map_err(noise_err)?;
    write_message(&mut io, &out[..n]).await?;
    // <- s, se
    read_message(&mut io, &mut inbuf).await?;
    let n = hs.read_message(&inbuf, &mut payload).map_err(noise_err)?;
    let remote = verify_payload(&payload[..n], hs.get_remote_static())?;
    let state = hs.into_transport_mode().map_err(noise_err)?;
    Ok((NoiseStream::new(io, state), remote))
}

/// An encrypted byte stream over `T` after a completed Noise handshake.
///
/// Writes are buffered up to one full Noise message (65519 plaintext bytes) and
/// sealed on flush or when the buffer fills; reads decrypt straight into the
/// caller's buffer when it can take a whole message. Buffers are released when
/// empty, so an idle connection holds no Noise buffers.
pub struct NoiseStream<T> {
    io: T,
    state: Box<snow::TransportState>,
    /// Ciphertext read from `io`, not yet decrypted.
    read_raw: Vec<u8>,
    read_raw_len: usize,
    /// Decrypted bytes not yet handed to the reader.
    read_plain: Vec<u8>,
    read_plain_pos: usize,
    /// Plaintext accepted from the writer, not yet sealed.
    write_plain: Vec<u8>,
    /// Sealed, length-prefixed messages not yet written to `io`.
    write_sealed: Vec<u8>,
    write_sealed_pos: usize,
}

/// How many ciphertext bytes one read from the socket asks for: several Noise
/// messages per system call under bulk transfer.
const READ_CHUNK: usize = 4 * (MAX_NOISE_MESSAGE + 2);
/// Sealed bytes allowed to queue before the writer waits for the socket.
const SEALED_HIGH_WATER: usize = 4 * (MAX_NOISE_MESSAGE + 2);

impl<T> NoiseStream<T> {
    fn new(io: T, state: snow::TransportState) -> Self {
        Self {
            io,
            state: Box::new(state),
            read_raw: Vec::new(),
            read_raw_len: 0,
            read_plain: Vec::new(),
            read_plain_pos: 0,
            write_plain: Vec::new(),
            write_sealed: Vec::new(),
            write_sealed_pos: 0,
        }
    }

    /// Seals the buffered plaintext into one Noise message.
    fn seal(&mut self) -> io::Result<()> {
        if self.write_plain.is_empty() {
            return Ok(());
        }
        let len = self.write_plain.len() + TAG_LEN;
        let start = self.write_sealed.len();
        self.write_sealed.resize(start + 2 + len, 0);
        // len ≤ MAX_NOISE_MESSAGE by construction of write_plain's cap.
        self.write_sealed[start..start + 2].copy_from_slice(&(len as u16).to_be_bytes());
        let n = self
            .state
            .write_message(&self.write_plain, &mut self.write_sealed[start + 2..])
            .map_err(|e| io::Error::other(e.to_string()))?;
        debug_assert_eq!(n, len);
        self.write_plain.clear();
        Ok(())
    }
}

impl<T: AsyncWrite + Unpin> NoiseStream<T> {
    /// Writes queued sealed messages to the socket until all are written.
    fn poll_write_sealed(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.write_sealed_pos < self.write_sealed.len() {
            let n =
                ready!(Pin::new(&mut self.io)
                    .poll_write(cx, &self.write_sealed[self.write_sealed_pos..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.write_sealed_pos += n;
        }
        self.write_sealed.clear();
        self.write_sealed_pos = 0;
        if self.write_sealed.capacity() > SEALED_HIGH_WATER {
            self.write_sealed = Vec::new();
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for NoiseStream<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        loop {
            if this.read_plain_pos < this.read_plain.len() {
                let avail = &this.read_plain[this.read_plain_pos..];
                let n = avail.len().min(buf.len());
                buf[..n].copy_from_slice(&avail[..n]);
                this.read_plain_pos += n;
                if this.read_plain_pos == this.read_plain.len() {
                    this.read_plain.clear();
                    this.read_plain_pos = 0;
                }
                return Poll::Ready(Ok(n));
            }
            // A whole message buffered? Decrypt it.
            if this.read_raw_len >= 2 {
                let len = u16::from_be_bytes([this.read_raw[0], this.read_raw[1]]) as usize;
                if this.read_raw_len >= 2 + len {
                    if len < TAG_LEN {
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "noise message shorter than its tag",
                        )));
                    }
                    let plain_len = len - TAG_LEN;
                    let cipher = &this.read_raw[2..2 + len];
                    let n = if buf.len() >= plain_len {
                        // Decrypt straight into the caller's buffer: no extra copy.
                        this.state.read_message(cipher, buf)
                    } else {
                        this.read_plain.resize(plain_len, 0);
                        this.state.read_message(cipher, &mut this.read_plain)
                    }
                    .map_err(|_| {
                        io::Error::new(io::ErrorKind::InvalidData, "noise decryption failed")
                    })?;
                    this.read_raw.copy_within(2 + len..this.read_raw_len, 0);
                    this.read_raw_len -= 2 + len;
                    if this.read_raw_len == 0 && this.read_raw.capacity() > 0 {
                        // Idle connections keep no receive buffer.
                        this.read_raw = Vec::new();
                    }
                    if buf.len() >= plain_len {
                        if n == 0 {
                            continue; // An empty message carries nothing; read on.
                        }
                        return Poll::Ready(Ok(n));
                    }
                    continue;
                }
            }
            // Need more ciphertext.
            if this.read_raw.len() < READ_CHUNK {
                this.read_raw.resize(READ_CHUNK, 0);
            }
            let n = ready!(
                Pin::new(&mut this.io).poll_read(cx, &mut this.read_raw[this.read_raw_len..])
            )?;
            if n == 0 {
                if this.read_raw_len == 0 {
                    return Poll::Ready(Ok(0));
                }
                return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()));
            }
            this.read_raw_len += n;
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for NoiseStream<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.write_sealed.len() - this.write_sealed_pos >= SEALED_HIGH_WATER {
            ready!(this.poll_write_sealed(cx))?;
        }
        let room = MAX_PLAINTEXT - this.write_plain.len();
        let n = room.min(buf.len());
        if this.write_plain.capacity() == 0 {
            this.write_plain.reserve(MAX_PLAINTEXT);
        }
        this.write_plain.extend_from_slice(&buf[..n]);
        if this.write_plain.len() == MAX_PLAINTEXT {
            this.seal()?;
            // Start the socket write now; what doesn't fit waits for the next call.
            if let Poll::Ready(Err(e)) = this.poll_write_sealed(cx) {
                return Poll::Ready(Err(e));
            }
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.seal()?;
        ready!(this.poll_write_sealed(cx))?;
        if this.write_plain.capacity() > 0 {
            this.write_plain = Vec::new();
        }
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.as_mut().poll_flush(cx))?;
        Pin::new(&mut self.get_mut().io).poll_close(cx)
    }
}

/// A shareable Noise identity.
pub type SharedNoiseIdentity = Arc<NoiseIdentity>;

#[cfg(test)]
mod tests {
    use super::*;
    use futures::io::Cursor;

    fn pair() -> (NoiseIdentity, NodeKey) {
        let key = NodeKey::generate();
        (NoiseIdentity::new(&key).unwrap(), key)
    }

    #[tokio::test]
    async fn handshake_and_transfer_over_duplex() {
        let (ia, ka) = pair();
        let (ib, kb) = pair();
        let (a, b) = tokio::io::duplex(1 << 20);
        use tokio_util::compat::TokioAsyncReadCompatExt;
        let (a, b) = (a.compat(), b.compat());
        let expected = kb.peer_id();
        let (ra, rb) = tokio::join!(
            handshake_initiator(a, &ia, Some(expected)),
            handshake_responder(b, &ib)
        );
        let (mut sa, pka) = ra.unwrap();
        let (mut sb, pkb) = rb.unwrap();
        assert_eq!(pka.to_peer_id(), kb.peer_id());
        assert_eq!(pkb.to_peer_id(), ka.peer_id());

        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let send = async {
            sa.write_all(&data).await.unwrap();
            sa.flush().await.unwrap();
            sa.close().await.unwrap();
        };
        let recv = async {
            let mut got = Vec::new();
            sb.read_to_end(&mut got).await.unwrap();
            got
        };
        let ((), got) = tokio::join!(send, recv);
        assert_eq!(got, data);
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
