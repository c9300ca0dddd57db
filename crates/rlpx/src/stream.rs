//! The typed stages of a connection, over any `AsyncRead + AsyncWrite` stream:
//!
//! 1. [`EciesStream::connect`] / [`EciesStream::accept`]: the auth/ack
//!    handshake; the result can only send and receive frames internally, and
//!    knows the remote node id.
//! 2. [`EciesStream::exchange_hello`]: the `p2p` Hello exchange and capability
//!    negotiation → [`Established`].
//! 3. [`Established::split`]: an independent [`SessionReader`] and
//!    [`SessionWriter`], one for a reader task and one for a writer task.
//!
//! No stage applies its own timeout: wrap each step in `tokio::time::timeout`
//! ([`DEFAULT_HANDSHAKE_TIMEOUT`] is a sensible per-step deadline).

use std::{io, sync::Arc, time::Duration};

use alloy_rlp::{Decodable, Encodable};
use bytes::{Bytes, BytesMut};
use secp256k1::Keypair;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};

use crate::{
    capability::{Capability, HelloCapability, SharedCapabilities, BASE_PROTOCOL_OFFSET},
    frame::{FrameDecoder, FrameEncoder, Secrets, MAX_FRAME_SIZE},
    handshake::{Initiator, Responder, ResponderKeys},
    node_id,
    p2p::{
        self, Hello, DISCONNECT_ID, EMPTY_LIST_PAYLOAD, HELLO_ID, P2P_VERSION, PING_ID, PONG_ID,
        SNAPPY_MIN_VERSION,
    },
    snappy::{Snappy, MAX_MESSAGE_SIZE},
    DisconnectReason, Error, NodeId,
};

/// A sensible deadline for each handshake step (TCP connect, auth/ack, Hello):
/// go-ethereum's `handshakeTimeout` is 5 s.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// The largest frame accepted before the Hello exchange completes. A Hello is a
/// few hundred bytes (go-ethereum caps it at 2 KiB); this leaves room for long
/// capability lists without letting an unauthenticated peer make us buffer MiBs.
pub const MAX_HELLO_FRAME_SIZE: usize = 16 * 1024;

/// Minimum read size: small messages arrive in batches without a syscall each.
const READ_CHUNK: usize = 8 * 1024;
/// Read or write buffers that grew beyond this are dropped once drained, so an
/// idle connection that once carried a large frame does not keep its memory.
const LARGE_BUFFER: usize = 256 * 1024;
/// `feed_*` writes the buffered frames out once this much has accumulated.
const WRITE_BATCH: usize = 64 * 1024;
/// Handshake packets are read in small steps (they are < 2 KiB).
const HANDSHAKE_READ_CHUNK: usize = 512;

/// What the local side says in its Hello and the limits it enforces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// Client name sent in Hello.
    pub client_id: String,
    /// Capabilities offered, with their message counts.
    pub capabilities: Vec<Capability>,
    /// The listening port announced in Hello (0: not listening).
    pub listen_port: u16,
    /// Largest frame body accepted after Hello (≤ [`MAX_FRAME_SIZE`]).
    pub max_frame_size: usize,
    /// Largest decompressed message payload accepted (≤ [`MAX_MESSAGE_SIZE`]
    /// is the spec limit; larger values are clamped to it).
    pub max_message_size: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            client_id: concat!("devmux/v", env!("CARGO_PKG_VERSION")).to_owned(),
            capabilities: Vec::new(),
            listen_port: 0,
            max_frame_size: MAX_FRAME_SIZE,
            max_message_size: MAX_MESSAGE_SIZE,
        }
    }
}

impl SessionConfig {
    /// Defaults with the given client id.
    pub fn new(client_id: impl Into<String>) -> Self {
        Self {
            client_id: client_id.into(),
            ..Self::default()
        }
    }

    /// Adds a capability.
    pub fn with_capability(mut self, capability: Capability) -> Self {
        self.capabilities.push(capability);
        self
    }

    /// Sets the announced listening port.
    pub fn with_listen_port(mut self, port: u16) -> Self {
        self.listen_port = port;
        self
    }

    /// Sets the frame size limit.
    pub fn with_max_frame_size(mut self, max: usize) -> Self {
        self.max_frame_size = max;
        self
    }

    /// Sets the decompressed message size limit.
    pub fn with_max_message_size(mut self, max: usize) -> Self {
        self.max_message_size = max;
        self
    }

    fn hello(&self, id: NodeId) -> Hello {
        let mut capabilities: Vec<HelloCapability> = Vec::with_capacity(self.capabilities.len());
        for cap in &self.capabilities {
            let cap = HelloCapability::from(cap);
            if !capabilities.contains(&cap) {
                capabilities.push(cap);
            }
        }
        Hello {
            protocol_version: P2P_VERSION,
            client_id: self.client_id.clone(),
            capabilities,
            listen_port: self.listen_port,
            id,
        }
    }
}

/// Reading side: frame decoder plus read buffer.
struct FramedRead {
    decoder: FrameDecoder,
    buf: BytesMut,
    /// The buffer was grown past [`LARGE_BUFFER`].
    large: bool,
}

impl FramedRead {
    /// The next frame body. Cancel-safe: bytes read so far stay buffered.
    async fn next_frame<R: AsyncRead + Unpin>(&mut self, io: &mut R) -> Result<BytesMut, Error> {
        loop {
            if let Some(frame) = self.decoder.decode(&mut self.buf)? {
                return Ok(frame);
            }
            if self.large && self.buf.is_empty() {
                self.buf = BytesMut::new();
                self.large = false;
            }
            let want = self
                .decoder
                .bytes_needed()
                .saturating_sub(self.buf.len())
                .max(READ_CHUNK);
            if self.buf.len() + want > LARGE_BUFFER {
                self.large = true;
            }
            self.buf.reserve(want);
            if io.read_buf(&mut self.buf).await? == 0 {
                return Err(if self.buf.is_empty() && !self.decoder.is_mid_frame() {
                    Error::ConnectionClosed
                } else {
                    io::Error::new(io::ErrorKind::UnexpectedEof, "stream ended inside a frame")
                        .into()
                });
            }
        }
    }
}

/// Writing side: frame encoder, write buffer and (after Hello, v5) Snappy.
struct FramedWrite {
    encoder: FrameEncoder,
    buf: BytesMut,
    snappy: Option<Snappy>,
}

impl FramedWrite {
    /// Appends one sealed message frame to the buffer.
    fn encode(&mut self, msg_id: u64, payload: &[u8], compress: bool) -> Result<(), Error> {
        if payload.len() > MAX_FRAME_SIZE {
            return Err(Error::PayloadTooLarge {
                size: payload.len(),
                max: MAX_FRAME_SIZE,
            });
        }
        let start = FrameEncoder::begin(&mut self.buf);
        msg_id.encode(&mut self.buf);
        match (&mut self.snappy, compress) {
            (Some(snappy), true) => {
                if let Err(e) = snappy.compress_into(payload, &mut self.buf) {
                    self.buf.truncate(start);
                    return Err(e);
                }
            }
            _ => self.buf.extend_from_slice(payload),
        }
        self.encoder.seal(&mut self.buf, start)
    }

    /// Writes the buffer out (no flush).
    async fn write_out<W: AsyncWrite + Unpin>(&mut self, io: &mut W) -> Result<(), Error> {
        if !self.buf.is_empty() {
            io.write_all(&self.buf).await?;
            self.buf.clear();
        }
        if self.buf.capacity() > LARGE_BUFFER {
            self.buf = BytesMut::new();
        }
        Ok(())
    }

    async fn send<W: AsyncWrite + Unpin>(
        &mut self,
        io: &mut W,
        msg_id: u64,
        payload: &[u8],
        compress: bool,
    ) -> Result<(), Error> {
        self.encode(msg_id, payload, compress)?;
        self.write_out(io).await?;
        io.flush().await?;
        Ok(())
    }
}

fn split_msg_id(frame: &[u8]) -> Result<(u64, &[u8]), Error> {
    let mut payload = frame;
    let id = u64::decode(&mut payload)?;
    Ok((id, payload))
}

async fn read_handshake_bytes<S: AsyncRead + Unpin>(
    io: &mut S,
    buf: &mut BytesMut,
) -> Result<(), Error> {
    buf.reserve(HANDSHAKE_READ_CHUNK);
    if io.read_buf(buf).await? == 0 {
        return Err(if buf.is_empty() {
            Error::ConnectionClosed
        } else {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "stream ended inside a handshake packet",
            )
            .into()
        });
    }
    Ok(())
}

/// A stream after the auth/ack handshake: encrypted and authenticated frames,
/// but no `p2p` session yet. The remote id is the key the peer claimed; it is
/// proven when its first frame (its Hello) passes the MAC check.
pub struct EciesStream<S> {
    io: S,
    local_id: NodeId,
    remote_id: NodeId,
    // Boxed: the cipher states are a few KiB, and futures holding a stream
    // get moved around.
    read: Box<FramedRead>,
    write: Box<FramedWrite>,
}

impl<S> std::fmt::Debug for EciesStream<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EciesStream").finish_non_exhaustive()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> EciesStream<S> {
    /// Dials: sends auth to `remote_id`, reads its ack. `key` is our static key.
    pub async fn connect(mut io: S, key: &Keypair, remote_id: &NodeId) -> Result<Self, Error> {
        let initiator = Initiator::new(key, remote_id)?;
        io.write_all(initiator.auth_packet()).await?;
        io.flush().await?;
        let mut buf = BytesMut::with_capacity(HANDSHAKE_READ_CHUNK);
        loop {
            if let Some(secrets) = initiator.read_ack(&mut buf)? {
                tracing::debug!("rlpx: outbound ECIES handshake done");
                return Ok(Self::new(io, node_id(&key.public_key()), secrets, buf));
            }
            read_handshake_bytes(&mut io, &mut buf).await?;
        }
    }

    /// Accepts: reads an auth (EIP-8 or pre-EIP-8), sends the ack. `key` is our
    /// static key.
    pub async fn accept(mut io: S, key: &Keypair) -> Result<Self, Error> {
        // Made before the auth arrives: the dialer is still building it.
        let mut keys = Some(ResponderKeys::generate());
        let secret = key.secret_key();
        let mut buf = BytesMut::with_capacity(HANDSHAKE_READ_CHUNK);
        let responder = loop {
            if let Some(responder) = Responder::read_auth(&secret, &mut buf, &mut keys)? {
                break responder;
            }
            read_handshake_bytes(&mut io, &mut buf).await?;
        };
        io.write_all(responder.ack_packet()).await?;
        io.flush().await?;
        tracing::debug!("rlpx: inbound ECIES handshake done");
        Ok(Self::new(
            io,
            node_id(&key.public_key()),
            responder.into_secrets(),
            buf,
        ))
    }

    /// Wraps a stream whose handshake produced `secrets`; `leftover` holds the
    /// bytes read past the handshake packet.
    pub(crate) fn new(io: S, local_id: NodeId, secrets: Secrets, leftover: BytesMut) -> Self {
        let remote_id = *secrets.remote_id();
        let (encoder, decoder) = secrets.into_codec(MAX_HELLO_FRAME_SIZE);
        Self {
            io,
            local_id,
            remote_id,
            read: Box::new(FramedRead {
                decoder,
                buf: leftover,
                large: false,
            }),
            write: Box::new(FramedWrite {
                encoder,
                buf: BytesMut::new(),
                snappy: None,
            }),
        }
    }

    /// The remote node id (its static public key).
    pub fn remote_id(&self) -> &NodeId {
        &self.remote_id
    }

    /// Our node id.
    pub fn local_id(&self) -> &NodeId {
        &self.local_id
    }

    /// Sends Disconnect (uncompressed, as before Hello) and shuts the write
    /// side down: for refusing a peer right after the handshake
    /// (`TooManyPeers`, `AlreadyConnected`, …).
    pub async fn disconnect(mut self, reason: DisconnectReason) -> Result<(), Error> {
        self.write
            .send(
                &mut self.io,
                DISCONNECT_ID,
                &p2p::encode_disconnect(reason),
                false,
            )
            .await?;
        self.io.shutdown().await?;
        Ok(())
    }

    /// Sends our Hello, reads theirs, checks that its id is the handshake key,
    /// and negotiates capabilities.
    ///
    /// On a failure the peer is to blame for ([`Error::disconnect_reason`] is
    /// `Some`: a bad frame, a malformed or unexpected message, a Hello id that
    /// differs from the handshake key, no shared capability, ourselves), a
    /// Disconnect with that reason is sent first, best effort.
    pub async fn exchange_hello(mut self, config: &SessionConfig) -> Result<Established<S>, Error> {
        if self.remote_id == self.local_id {
            return Err(self.fail(Error::ConnectedToSelf, false).await);
        }
        let ours = config.hello(self.local_id);
        let mut payload = Vec::with_capacity(ours.encoded_len());
        ours.encode(&mut payload);
        if let Err(e) = self
            .write
            .send(&mut self.io, HELLO_ID, &payload, false)
            .await
        {
            // A peer that refused us (TooManyPeers, …) may have closed already:
            // its Disconnect can still be waiting in our receive buffer.
            return Err(match self.read_hello().await {
                Err(disconnected @ Error::Disconnected(_)) => disconnected,
                _ => e,
            });
        }

        let theirs = match self.read_hello().await {
            Ok(hello) => hello,
            Err(e) => return Err(self.fail(e, false).await),
        };
        let snappy = theirs.protocol_version >= SNAPPY_MIN_VERSION;
        if theirs.id != self.remote_id {
            return Err(self.fail(Error::HelloIdMismatch, snappy).await);
        }
        let shared = SharedCapabilities::negotiate(&config.capabilities, &theirs.capabilities);
        if shared.is_empty() {
            return Err(self.fail(Error::NoSharedCapabilities, snappy).await);
        }
        tracing::debug!(
            client = %theirs.client_id,
            version = theirs.protocol_version,
            shared = shared.len(),
            "rlpx: hello exchanged"
        );

        self.read.decoder.set_max_frame_size(config.max_frame_size);
        if snappy {
            self.write.snappy = Some(Snappy::new());
        }
        Ok(Established {
            io: self.io,
            remote_id: self.remote_id,
            remote_hello: theirs,
            shared: Arc::new(shared),
            read: self.read,
            write: self.write,
            max_message_size: config.max_message_size.min(MAX_MESSAGE_SIZE),
        })
    }

    async fn read_hello(&mut self) -> Result<Hello, Error> {
        let frame = self.read.next_frame(&mut self.io).await?;
        let (msg_id, payload) = split_msg_id(&frame)?;
        match msg_id {
            HELLO_ID => Hello::decode(payload),
            DISCONNECT_ID => Err(Error::Disconnected(p2p::decode_disconnect(payload))),
            id => Err(Error::UnexpectedMessage { id }),
        }
    }

    /// Best effort: tell the peer why, then hand the error back.
    async fn fail(&mut self, error: Error, compress: bool) -> Error {
        if let Some(reason) = error.disconnect_reason() {
            if compress {
                self.write.snappy = Some(Snappy::new());
            }
            let payload = p2p::encode_disconnect(reason);
            let sent = self
                .write
                .send(&mut self.io, DISCONNECT_ID, &payload, compress)
                .await;
            tracing::debug!(%error, %reason, sent = sent.is_ok(), "rlpx: hello exchange failed");
        }
        error
    }
}

/// An established `p2p` session: Hello exchanged, identity proven,
/// capabilities negotiated. Split it into a reader and a writer.
pub struct Established<S> {
    io: S,
    remote_id: NodeId,
    remote_hello: Hello,
    shared: Arc<SharedCapabilities>,
    read: Box<FramedRead>,
    write: Box<FramedWrite>,
    max_message_size: usize,
}

impl<S> std::fmt::Debug for Established<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Established")
            .field("remote_hello", &self.remote_hello)
            .field("shared", &self.shared)
            .finish_non_exhaustive()
    }
}

impl<S> Established<S> {
    /// The remote node id, proven by the handshake and matching its Hello.
    pub fn remote_id(&self) -> &NodeId {
        &self.remote_id
    }

    /// The remote Hello.
    pub fn remote_hello(&self) -> &Hello {
        &self.remote_hello
    }

    /// The shared capabilities, in offset order (index = capability index).
    pub fn shared_capabilities(&self) -> &Arc<SharedCapabilities> {
        &self.shared
    }

    /// Whether messages are Snappy-compressed (both sides speak `p2p` v5+).
    pub fn is_compressed(&self) -> bool {
        self.write.snappy.is_some()
    }

    /// Splits into a reader and a writer with `tokio::io::split` (works for
    /// any stream; for a `TcpStream` prefer
    /// `split_with(TcpStream::into_split)`, which needs no lock).
    pub fn split(self) -> (SessionReader<ReadHalf<S>>, SessionWriter<WriteHalf<S>>)
    where
        S: AsyncRead + AsyncWrite,
    {
        self.split_with(tokio::io::split)
    }

    /// Splits into a reader and a writer using `split` to divide the stream.
    pub fn split_with<R, W>(
        self,
        split: impl FnOnce(S) -> (R, W),
    ) -> (SessionReader<R>, SessionWriter<W>) {
        let (r, w) = split(self.io);
        let compressed = self.write.snappy.is_some();
        let reader = SessionReader {
            io: r,
            remote_id: self.remote_id,
            read: self.read,
            snappy: compressed.then(|| Box::new(Snappy::new())),
            shared: Arc::clone(&self.shared),
            max_message_size: self.max_message_size,
        };
        let writer = SessionWriter {
            io: w,
            write: self.write,
            shared: self.shared,
        };
        (reader, writer)
    }
}

impl<S: AsyncWrite + Unpin> Established<S> {
    /// Sends Disconnect and shuts the write side down.
    pub async fn disconnect(mut self, reason: DisconnectReason) -> Result<(), Error> {
        let compress = self.write.snappy.is_some();
        self.write
            .send(
                &mut self.io,
                DISCONNECT_ID,
                &p2p::encode_disconnect(reason),
                compress,
            )
            .await?;
        self.io.shutdown().await?;
        Ok(())
    }
}

/// A message received on an established session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// `p2p` Ping: answer with [`SessionWriter::pong`].
    Ping,
    /// `p2p` Pong.
    Pong,
    /// `p2p` Disconnect; `None` if the reason was unknown or unreadable. The
    /// peer closes the connection next.
    Disconnect(Option<DisconnectReason>),
    /// A message of shared capability `index` (position in
    /// [`Established::shared_capabilities`]), with `id` relative to the
    /// capability's offset and the payload decompressed.
    Capability {
        /// Index of the capability.
        index: usize,
        /// Message id within the capability (offset removed).
        id: u8,
        /// The message payload (RLP), decompressed.
        payload: Bytes,
    },
}

/// The reading half of a session.
pub struct SessionReader<R> {
    io: R,
    remote_id: NodeId,
    read: Box<FramedRead>,
    snappy: Option<Box<Snappy>>,
    shared: Arc<SharedCapabilities>,
    max_message_size: usize,
}

impl<R> std::fmt::Debug for SessionReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionReader").finish_non_exhaustive()
    }
}

impl<R: AsyncRead + Unpin> SessionReader<R> {
    /// The next message. `p2p` ids 0x04–0x0f (reserved) are skipped, as
    /// go-ethereum does. Cancel-safe: a dropped `recv` loses no bytes.
    ///
    /// Any error ends the session; [`Error::disconnect_reason`] says what to
    /// tell the peer.
    pub async fn recv(&mut self) -> Result<Incoming, Error> {
        loop {
            let frame = self.read.next_frame(&mut self.io).await?;
            let (msg_id, payload) = split_msg_id(&frame)?;
            let id_len = frame.len() - payload.len();
            match msg_id {
                PING_ID => return Ok(Incoming::Ping),
                PONG_ID => return Ok(Incoming::Pong),
                DISCONNECT_ID => return Ok(Incoming::Disconnect(p2p::decode_disconnect(payload))),
                HELLO_ID => return Err(Error::UnexpectedMessage { id: msg_id }),
                id if id < BASE_PROTOCOL_OFFSET => {
                    tracing::trace!(id, "rlpx: ignoring reserved p2p message");
                    continue;
                }
                id => {
                    let (index, id) = self.shared.lookup(id).ok_or(Error::UnknownMessageId(id))?;
                    let payload = match &mut self.snappy {
                        Some(snappy) => snappy.decompress(payload, self.max_message_size)?,
                        None => {
                            if payload.len() > self.max_message_size {
                                return Err(Error::MessageTooLarge {
                                    size: payload.len(),
                                    max: self.max_message_size,
                                });
                            }
                            frame.freeze().slice(id_len..)
                        }
                    };
                    return Ok(Incoming::Capability { index, id, payload });
                }
            }
        }
    }

    /// The remote node id.
    pub fn remote_id(&self) -> &NodeId {
        &self.remote_id
    }

    /// The shared capabilities.
    pub fn shared_capabilities(&self) -> &Arc<SharedCapabilities> {
        &self.shared
    }
}

/// The writing half of a session. Sending is not cancel-safe: dropping a send
/// half-way leaves a partial frame on the wire, so end the session then.
pub struct SessionWriter<W> {
    io: W,
    write: Box<FramedWrite>,
    shared: Arc<SharedCapabilities>,
}

impl<W> std::fmt::Debug for SessionWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionWriter").finish_non_exhaustive()
    }
}

impl<W: AsyncWrite + Unpin> SessionWriter<W> {
    /// Sends message `id` of shared capability `index` with `payload` (its
    /// RLP; compressed here if the session is) and flushes.
    pub async fn send_capability(
        &mut self,
        index: usize,
        id: u8,
        payload: &[u8],
    ) -> Result<(), Error> {
        self.feed_capability(index, id, payload).await?;
        self.flush().await
    }

    /// Like [`SessionWriter::send_capability`] but without flushing: frames
    /// are batched and written out once 64 KiB accumulate or on
    /// [`SessionWriter::flush`]. Use it to send bursts with fewer syscalls.
    pub async fn feed_capability(
        &mut self,
        index: usize,
        id: u8,
        payload: &[u8],
    ) -> Result<(), Error> {
        let msg_id = self
            .shared
            .msg_id(index, id)
            .ok_or(Error::InvalidCapability { index, id })?;
        self.write.encode(msg_id, payload, true)?;
        if self.write.buf.len() >= WRITE_BATCH {
            self.write.write_out(&mut self.io).await?;
        }
        Ok(())
    }

    /// Writes out everything fed so far and flushes the stream.
    pub async fn flush(&mut self) -> Result<(), Error> {
        self.write.write_out(&mut self.io).await?;
        self.io.flush().await?;
        Ok(())
    }

    /// Sends one frame with wire message id `msg_id` and `payload` exactly as
    /// given: no offset arithmetic and no compression. For conformance tools and
    /// tests that must put precise (even invalid) bytes on an authenticated
    /// session; protocol code uses [`SessionWriter::send_capability`].
    pub async fn send_raw(&mut self, msg_id: u64, payload: &[u8]) -> Result<(), Error> {
        self.write.encode(msg_id, payload, false)?;
        self.flush().await
    }

    /// Sends Ping.
    pub async fn ping(&mut self) -> Result<(), Error> {
        self.write
            .send(&mut self.io, PING_ID, &EMPTY_LIST_PAYLOAD, true)
            .await
    }

    /// Sends Pong.
    pub async fn pong(&mut self) -> Result<(), Error> {
        self.write
            .send(&mut self.io, PONG_ID, &EMPTY_LIST_PAYLOAD, true)
            .await
    }

    /// Sends Disconnect (after anything fed), flushes and shuts the write side
    /// down. Close the connection after a short grace period.
    pub async fn disconnect(&mut self, reason: DisconnectReason) -> Result<(), Error> {
        self.write
            .send(
                &mut self.io,
                DISCONNECT_ID,
                &p2p::encode_disconnect(reason),
                true,
            )
            .await?;
        self.io.shutdown().await?;
        Ok(())
    }

    /// The shared capabilities.
    pub fn shared_capabilities(&self) -> &Arc<SharedCapabilities> {
        &self.shared
    }
}

#[cfg(test)]
#[path = "stream_tests.rs"]
mod tests;

#[path = "stream_fuzz.rs"]
pub(crate) mod fuzz;
