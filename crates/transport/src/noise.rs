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
use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};

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
/// What an XX handshake message adds to our payload at most: an ephemeral key
/// (32), an encrypted static key (32 + 16) and the payload's tag (16).
const HANDSHAKE_OVERHEAD: usize = 32 + 48 + TAG_LEN;
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

/// The transport ciphers after the handshake: ChaCha20-Poly1305 keyed from the
/// Noise `Split()`, nonces counted per direction as Noise does (32 zero bits,
/// then the 64-bit counter little-endian; empty associated data). Working with
/// ring directly lets messages be sealed and opened in place in the stream's
/// buffers: no staging copy on either side.
struct Ciphers {
    send: LessSafeKey,
    send_nonce: u64,
    recv: LessSafeKey,
    recv_nonce: u64,
}

impl Ciphers {
    fn new(send: &[u8; 32], recv: &[u8; 32]) -> Result<Self, Error> {
        let key = |k: &[u8; 32]| {
            UnboundKey::new(&aead::CHACHA20_POLY1305, k)
                .map(LessSafeKey::new)
                .map_err(|_| Error::Noise("transport key rejected".into()))
        };
        Ok(Self {
            send: key(send)?,
            send_nonce: 0,
            recv: key(recv)?,
            recv_nonce: 0,
        })
    }

    fn nonce(n: &mut u64) -> io::Result<Nonce> {
        // Noise reserves 2^64-1; a session never gets near it, but never reuse a nonce.
        if *n == u64::MAX {
            return Err(io::Error::other("noise nonce exhausted"));
        }
        let mut bytes = [0u8; 12];
        bytes[4..].copy_from_slice(&n.to_le_bytes());
        *n += 1;
        Ok(Nonce::assume_unique_for_key(bytes))
    }
}

/// Runs the split of a finished handshake: (initiator→responder, responder→initiator) keys.
fn split(hs: &mut snow::HandshakeState) -> Result<Ciphers, Error> {
    if !hs.is_handshake_finished() {
        return Err(Error::Noise("handshake not finished".into()));
    }
    let (i2r, r2i) = hs.dangerously_get_raw_split();
    if hs.is_initiator() {
        Ciphers::new(&i2r, &r2i)
    } else {
        Ciphers::new(&r2i, &i2r)
    }
}

/// Read and write buffers, shared by all connections of the process: a
/// connection takes one when bytes flow and gives it back when it goes idle, so
/// an idle connection holds no buffer and a busy one never reallocates.
mod pool {
    use std::sync::Mutex;

    /// One buffer: room for four whole Noise messages with their length prefixes.
    pub(super) const SIZE: usize = 4 * (super::MAX_NOISE_MESSAGE + 2);
    /// Idle buffers kept for reuse (the rest are freed): at most 2 MiB.
    const KEEP: usize = 8;

    static FREE: Mutex<Vec<Box<[u8]>>> = Mutex::new(Vec::new());

    pub(super) fn take() -> Box<[u8]> {
        let reused = FREE.lock().unwrap_or_else(|e| e.into_inner()).pop();
        // Zeroed allocations come from calloc: pages count only once written.
        reused.unwrap_or_else(|| vec![0u8; SIZE].into_boxed_slice())
    }

    pub(super) fn give(buf: &mut Box<[u8]>) {
        let buf = std::mem::take(buf);
        if buf.len() != SIZE {
            return;
        }
        let mut free = FREE.lock().unwrap_or_else(|e| e.into_inner());
        if free.len() < KEEP {
            free.push(buf);
        }
    }
}

/// An encrypted byte stream over `T` after a completed Noise handshake.
///
/// Writes are copied once, into the message being built in the write buffer,
/// and sealed in place when it holds 65519 bytes or on flush; reads fill the
/// read buffer with as many messages as the socket has, and each is opened in
/// place and copied once to the reader. Both buffers come from a small
/// process-wide pool and go back to it when empty and the socket has nothing
/// more: an idle connection holds no Noise buffer.
pub struct NoiseStream<T> {
    io: T,
    ciphers: Box<Ciphers>,
    /// Read buffer: bytes `rbuf[r_start..r_end]` came from `io` and are not
    /// consumed yet; `rbuf[p_start..p_end]` (inside the message at `r_start`)
    /// is its decrypted plaintext not yet handed out.
    rbuf: Box<[u8]>,
    r_start: usize,
    r_end: usize,
    p_start: usize,
    p_end: usize,
    /// Write buffer: `wbuf[w_pos..]` up to `w_open` (or `w_len`) is sealed and not
    /// yet written to `io`; a message being filled starts at `w_open` (its
    /// length prefix, then its plaintext up to `w_len`).
    wbuf: Box<[u8]>,
    w_pos: usize,
    w_len: usize,
    w_open: Option<usize>,
}

impl<T> NoiseStream<T> {
    fn new(io: T, ciphers: Ciphers) -> Self {
        Self {
            io,
            ciphers: Box::new(ciphers),
            rbuf: Box::default(),
            r_start: 0,
            r_end: 0,
            p_start: 0,
            p_end: 0,
            wbuf: Box::default(),
            w_pos: 0,
            w_len: 0,
            w_open: None,
        }
    }

    /// Seals the message being filled, in place.
    fn seal(&mut self) -> io::Result<()> {
        let Some(start) = self.w_open.take() else {
            return Ok(());
        };
        let body = start + 2..self.w_len;
        if body.is_empty() {
            self.w_len = start;
            return Ok(());
        }
        let nonce = Ciphers::nonce(&mut self.ciphers.send_nonce)?;
        let tag = self
            .ciphers
            .send
            .seal_in_place_separate_tag(nonce, Aad::empty(), &mut self.wbuf[body.clone()])
            .map_err(|_| io::Error::other("noise encryption failed"))?;
        // The open message reserved room for a whole Noise message, tag included.
        self.wbuf[self.w_len..self.w_len + TAG_LEN].copy_from_slice(tag.as_ref());
        self.w_len += TAG_LEN;
        let len = (body.len() + TAG_LEN) as u16; // ≤ MAX_NOISE_MESSAGE by construction
        self.wbuf[start..start + 2].copy_from_slice(&len.to_be_bytes());
        Ok(())
    }
}

impl<T: AsyncWrite + Unpin> NoiseStream<T> {
    /// Writes sealed messages to the socket until none is left (the message
    /// being filled stays). Then rewinds the buffer.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let sealed_end = self.w_open.unwrap_or(self.w_len);
        while self.w_pos < sealed_end {
            let n =
                ready!(Pin::new(&mut self.io).poll_write(cx, &self.wbuf[self.w_pos..sealed_end]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.w_pos += n;
        }
        // Everything sealed is out: move a message being filled to the front.
        if let Some(open) = self.w_open {
            if open > 0 {
                self.wbuf.copy_within(open..self.w_len, 0);
                self.w_len -= open;
                self.w_open = Some(0);
            }
        } else {
            self.w_len = 0;
        }
        self.w_pos = 0;
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
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        loop {
            // Hand out decrypted bytes first.
            if this.p_start < this.p_end {
                let n = (this.p_end - this.p_start).min(buf.len());
                buf[..n].copy_from_slice(&this.rbuf[this.p_start..this.p_start + n]);
                this.p_start += n;
                if this.p_start == this.p_end {
                    // The message is consumed: its tag follows the plaintext.
                    this.r_start = this.p_end + TAG_LEN;
                }
                return Poll::Ready(Ok(n));
            }
            // A whole message buffered? Open it in place.
            let avail = this.r_end - this.r_start;
            let need = if avail >= 2 {
                let len = u16::from_be_bytes([this.rbuf[this.r_start], this.rbuf[this.r_start + 1]])
                    as usize;
                if len < TAG_LEN {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "noise message shorter than its tag",
                    )));
                }
                if avail >= 2 + len {
                    let body = this.r_start + 2..this.r_start + 2 + len;
                    let nonce = Ciphers::nonce(&mut this.ciphers.recv_nonce)?;
                    let plain = this
                        .ciphers
                        .recv
                        .open_in_place(nonce, Aad::empty(), &mut this.rbuf[body.clone()])
                        .map_err(|_| {
                            io::Error::new(io::ErrorKind::InvalidData, "noise decryption failed")
                        })?
                        .len();
                    this.p_start = body.start;
                    this.p_end = body.start + plain;
                    if plain == 0 {
                        this.r_start = body.end; // An empty message carries nothing.
                    }
                    continue;
                }
                2 + len
            } else {
                2
            };
            // Need more ciphertext.
            if this.r_start == this.r_end {
                this.r_start = 0;
                this.r_end = 0;
            }
            if this.rbuf.is_empty() {
                this.rbuf = pool::take();
            } else if this.r_start + need > this.rbuf.len() {
                // The next message would run past the end: move its start to the front.
                this.rbuf.copy_within(this.r_start..this.r_end, 0);
                this.r_end -= this.r_start;
                this.r_start = 0;
            }
            match Pin::new(&mut this.io).poll_read(cx, &mut this.rbuf[this.r_end..]) {
                Poll::Pending => {
                    if this.r_start == this.r_end {
                        // Idle: nothing buffered, nothing on the socket.
                        pool::give(&mut this.rbuf);
                    }
                    return Poll::Pending;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(0)) => {
                    if this.r_start == this.r_end {
                        pool::give(&mut this.rbuf);
                        return Poll::Ready(Ok(0));
                    }
                    return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()));
                }
                Poll::Ready(Ok(n)) => this.r_end += n,
            }
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
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        loop {
            if let Some(open) = this.w_open {
                let filled = this.w_len - (open + 2);
                let n = (MAX_PLAINTEXT - filled).min(buf.len());
                this.wbuf[this.w_len..this.w_len + n].copy_from_slice(&buf[..n]);
                this.w_len += n;
                if filled + n == MAX_PLAINTEXT {
                    this.seal()?;
                    // Start the socket write now; what doesn't fit waits for the next call.
                    if let Poll::Ready(Err(e)) = this.poll_drain(cx) {
                        return Poll::Ready(Err(e));
                    }
                }
                return Poll::Ready(Ok(n));
            }
            if this.wbuf.is_empty() {
                this.wbuf = pool::take();
            }
            // Open a message where a whole one fits: write out sealed bytes first,
            // and if the socket takes only some, move the rest to the front.
            if this.wbuf.len() - this.w_len < 2 + MAX_NOISE_MESSAGE
                && this.poll_drain(cx)?.is_pending()
            {
                if this.w_pos == 0 {
                    return Poll::Pending; // Full of sealed bytes the socket won't take yet.
                }
                this.wbuf.copy_within(this.w_pos..this.w_len, 0);
                this.w_len -= this.w_pos;
                this.w_pos = 0;
                if this.wbuf.len() - this.w_len < 2 + MAX_NOISE_MESSAGE {
                    return Poll::Pending;
                }
            }
            this.w_open = Some(this.w_len);
            this.w_len += 2;
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.seal()?;
        ready!(this.poll_drain(cx))?;
        if this.w_len == 0 && !this.wbuf.is_empty() {
            pool::give(&mut this.wbuf);
        }
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.as_mut().poll_flush(cx))?;
        Pin::new(&mut self.get_mut().io).poll_close(cx)
    }
}

impl<T> Drop for NoiseStream<T> {
    fn drop(&mut self) {
        pool::give(&mut self.rbuf);
        pool::give(&mut self.wbuf);
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

    /// Odd write and read sizes over a tiny pipe (partial socket reads and
    /// writes everywhere), both directions at once, with flushes in between;
    /// afterwards neither side holds a buffer.
    #[tokio::test]
    async fn odd_sizes_over_a_small_pipe_and_buffers_released() {
        let (ia, _) = pair();
        let (ib, _) = pair();
        let (a, b) = tokio::io::duplex(777);
        use tokio_util::compat::TokioAsyncReadCompatExt;
        let (ra, rb) = tokio::join!(
            handshake_initiator(a.compat(), &ia, None),
            handshake_responder(b.compat(), &ib)
        );
        let (mut sa, _) = ra.unwrap();
        let (mut sb, _) = rb.unwrap();
        let data: Vec<u8> = (0..700_000u32).map(|i| (i * 7 % 253) as u8).collect();
        let sizes = [1usize, 12, 65_519, 65_520, 3, 200_000, 17, 131_038, 5_000];

        async fn send<W: AsyncWrite + Unpin>(w: &mut W, data: &[u8], sizes: &[usize]) {
            let mut off = 0;
            let mut i = 0;
            while off < data.len() {
                let n = sizes[i % sizes.len()].min(data.len() - off);
                w.write_all(&data[off..off + n]).await.unwrap();
                if i % 3 == 0 {
                    w.flush().await.unwrap();
                }
                off += n;
                i += 1;
            }
            w.flush().await.unwrap();
        }
        async fn recv<R: AsyncRead + Unpin>(r: &mut R, len: usize, sizes: &[usize]) -> Vec<u8> {
            let mut got = Vec::with_capacity(len);
            let mut buf = vec![0u8; 300_000];
            let mut i = 1;
            while got.len() < len {
                let want = sizes[i % sizes.len()].min(buf.len());
                let n = r.read(&mut buf[..want]).await.unwrap();
                assert!(n > 0, "early end");
                got.extend_from_slice(&buf[..n]);
                i += 1;
            }
            got
        }
        let (mut ar, mut aw) = sa.split();
        let (mut br, mut bw) = sb.split();
        let ((), (), got_b, got_a) = tokio::join!(
            send(&mut aw, &data, &sizes),
            send(&mut bw, &data, &sizes[3..]),
            recv(&mut br, data.len(), &sizes),
            recv(&mut ar, data.len(), &sizes[2..]),
        );
        assert!(got_b == data, "a → b corrupted");
        assert!(got_a == data, "b → a corrupted");
        sa = ar.reunite(aw).unwrap();
        sb = br.reunite(bw).unwrap();
        // Idle now: a read that finds nothing gives its buffer back.
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut one = [0u8; 1];
        for s in [&mut sa, &mut sb] {
            assert!(Pin::new(&mut *s).poll_read(&mut cx, &mut one).is_pending());
            assert!(
                s.rbuf.is_empty() && s.wbuf.is_empty(),
                "idle stream holds a buffer"
            );
        }
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
