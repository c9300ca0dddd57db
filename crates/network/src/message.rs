//! Message framing for registrar protocols (WIRE.md §1) and the stream type
//! handlers see.
//!
//! On the stream stack every message is `uvarint(N) ‖ code ‖ payload` with
//! `N = 1 + len(payload)`; on RLPx a message is one capability message whose id,
//! stripped of its offset, is the code. A handler sees the same [`MessageStream`]
//! either way.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use bytes::{Buf, Bytes, BytesMut};
use devmux_rlpx::session::{InboundMessage, OutboundMessage};
use futures::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::mpsc;

use crate::counters::ProtocolCounter;
use crate::registrar::PeerOps;
use crate::Direction;
use crate::{Error, PeerId, Penalty};

/// The default cap on `N` (code plus payload): 10 MiB (WIRE.md §1).
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 10 * 1024 * 1024;

/// One message: a code and its payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The message code (for eth: Status = 0x00 … BlockRangeUpdate = 0x11).
    pub code: u8,
    /// The payload (for eth: the message's RLP).
    pub payload: Bytes,
}

impl Message {
    /// A message with `code` and `payload`.
    pub fn new(code: u8, payload: impl Into<Bytes>) -> Self {
        Self {
            code,
            payload: payload.into(),
        }
    }
}

/// Appends the stream framing of `msg` to `out`.
pub fn encode_frame(msg: &Message, out: &mut BytesMut) {
    let mut len = unsigned_varint::encode::u64_buffer();
    let len = unsigned_varint::encode::u64(1 + msg.payload.len() as u64, &mut len);
    out.reserve(len.len() + 1 + msg.payload.len());
    out.extend_from_slice(len);
    out.extend_from_slice(&[msg.code]);
    out.extend_from_slice(&msg.payload);
}

/// Takes one whole message off the front of `buf`, if one is there. Checks the
/// declared size against `max` before waiting for (or allocating) the body.
pub fn decode_frame(buf: &mut BytesMut, max: usize) -> Result<Option<Message>, Error> {
    let (n, rest) = match unsigned_varint::decode::u64(buf) {
        Ok(pair) => pair,
        Err(unsigned_varint::decode::Error::Insufficient) => return Ok(None),
        Err(e) => return Err(Error::MalformedFrame(e.to_string())),
    };
    let header = buf.len() - rest.len();
    if n == 0 {
        return Err(Error::MalformedFrame("empty message (no code)".into()));
    }
    if n > max as u64 {
        return Err(Error::MessageTooLarge { size: n, max });
    }
    let n = n as usize;
    if rest.len() < n {
        // Make room for the rest of this message at once: one allocation, not many.
        buf.reserve(header + n - buf.len());
        return Ok(None);
    }
    buf.advance(header);
    let mut body = buf.split_to(n).freeze();
    let code = body[0];
    body.advance(1);
    Ok(Some(Message {
        code,
        payload: body,
    }))
}

/// Counts a connection's open protocol streams while it lives (the idle timeout
/// closes connections whose count stays at zero).
#[derive(Debug)]
pub(crate) struct ActivityGuard(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl ActivityGuard {
    pub(crate) fn new(
        counter: &std::sync::Arc<std::sync::atomic::AtomicUsize>,
    ) -> std::sync::Arc<Self> {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        std::sync::Arc::new(Self(counter.clone()))
    }
}

impl Drop for ActivityGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Whom a stream-stack reader tells about a peer that broke the framing: the server,
/// which penalises it (a major penalty), so that no handler has to remember to.
#[derive(Clone)]
pub(crate) struct FaultReport {
    pub(crate) ops: Arc<dyn PeerOps>,
    pub(crate) peer: PeerId,
    pub(crate) protocol: String,
}

/// What a stream-stack [`MessageStream`] enforces: the size cap on `N`, the codes the
/// protocol declares (a session protocol's message count; any code for a request
/// protocol), and whom to tell about a framing fault.
#[derive(Clone)]
pub(crate) struct StreamRules {
    pub(crate) max: usize,
    pub(crate) message_count: Option<u8>,
    pub(crate) fault: Option<FaultReport>,
    pub(crate) counter: Option<Arc<ProtocolCounter>>,
}

impl StreamRules {
    /// Only the size cap: for tests and streams whose peer is nobody to penalise.
    #[cfg(test)]
    pub(crate) fn max(max: usize) -> Self {
        Self {
            max,
            message_count: None,
            fault: None,
            counter: None,
        }
    }
}

/// The byte stream under a [`MessageStream`] on the stream stack.
pub(crate) trait RawStream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> RawStream for T {}
pub(crate) type BoxedRaw = Pin<Box<dyn RawStream>>;

/// `recv`/`send` for simple handlers; [`MessageStream::split`] when reading and
/// writing must happen concurrently (requests out while serving requests in).
#[derive(Debug)]
pub struct MessageStream {
    reader: MessageReader,
    writer: MessageWriter,
}

/// The receiving half of a [`MessageStream`].
pub struct MessageReader {
    inner: ReaderImpl,
    counter: Option<Arc<ProtocolCounter>>,
    _activity: Option<std::sync::Arc<ActivityGuard>>,
}

/// The sending half of a [`MessageStream`].
pub struct MessageWriter {
    inner: WriterImpl,
    counter: Option<Arc<ProtocolCounter>>,
    _activity: Option<std::sync::Arc<ActivityGuard>>,
}

impl std::fmt::Debug for MessageReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MessageReader")
    }
}

impl std::fmt::Debug for MessageWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MessageWriter")
    }
}

enum ReaderImpl {
    Stream {
        io: ReadHalf<BoxedRaw>,
        buf: BytesMut,
        max: usize,
        message_count: Option<u8>,
        fault: Option<FaultReport>,
        done: bool,
    },
    Channel {
        rx: mpsc::Receiver<InboundMessage>,
    },
}

enum WriterImpl {
    Stream {
        io: WriteHalf<BoxedRaw>,
        max: usize,
        message_count: Option<u8>,
        scratch: BytesMut,
        closed: bool,
    },
    Channel {
        /// `None` once closed.
        tx: Option<mpsc::Sender<OutboundMessage>>,
        slot: usize,
        message_count: u8,
        max: usize,
        session: Option<Arc<SessionClose>>,
    },
}

/// What closing one capability's stream does to its RLPx connection: a capability
/// cannot end alone on RLPx, so the connection ends (Disconnect with
/// `DisconnectRequested`) once every capability stream on it has closed, and the
/// peer's streams end as a stream-stack peer's would.
pub(crate) struct SessionClose {
    /// Capability streams of the connection not closed yet.
    open: std::sync::atomic::AtomicUsize,
    ops: Arc<dyn PeerOps>,
    peer: PeerId,
    conn: u64,
}

impl SessionClose {
    pub(crate) fn new(streams: usize, ops: Arc<dyn PeerOps>, peer: PeerId, conn: u64) -> Self {
        Self {
            open: std::sync::atomic::AtomicUsize::new(streams),
            ops,
            peer,
            conn,
        }
    }

    fn closed_one(&self) {
        if self.open.fetch_sub(1, std::sync::atomic::Ordering::AcqRel) == 1 {
            self.ops.disconnect(
                self.peer,
                self.conn,
                crate::DisconnectReason::DisconnectRequested,
            );
        }
    }
}

/// How much one read asks of the stream.
const READ_CHUNK: usize = 64 * 1024;
/// A read buffer up to this size is released when the stream goes idle.
const IDLE_BUFFER_LIMIT: usize = READ_CHUNK / 4;
/// Payloads up to this size are copied behind their header and written at once;
/// larger ones are written without the copy.
const COALESCE_LIMIT: usize = 16 * 1024;

impl MessageStream {
    /// Message framing over a byte stream (a negotiated yamux stream).
    pub(crate) fn from_raw(
        io: BoxedRaw,
        rules: StreamRules,
        activity: Option<std::sync::Arc<ActivityGuard>>,
    ) -> Self {
        let (r, w) = io.split();
        let StreamRules {
            max,
            message_count,
            fault,
            counter,
        } = rules;
        Self {
            reader: MessageReader {
                inner: ReaderImpl::Stream {
                    io: r,
                    buf: BytesMut::new(),
                    max,
                    message_count,
                    fault,
                    done: false,
                },
                counter: counter.clone(),
                _activity: activity.clone(),
            },
            writer: MessageWriter {
                inner: WriterImpl::Stream {
                    io: w,
                    max,
                    message_count,
                    scratch: BytesMut::new(),
                    closed: false,
                },
                counter,
                _activity: activity,
            },
        }
    }

    /// A stream backed by an RLPx connection's reader and writer tasks.
    pub(crate) fn from_channels(
        rx: mpsc::Receiver<InboundMessage>,
        tx: mpsc::Sender<OutboundMessage>,
        slot: usize,
        message_count: u8,
        max: usize,
        session: Option<Arc<SessionClose>>,
        counter: Option<Arc<ProtocolCounter>>,
    ) -> Self {
        Self {
            reader: MessageReader {
                inner: ReaderImpl::Channel { rx },
                counter: counter.clone(),
                _activity: None,
            },
            writer: MessageWriter {
                inner: WriterImpl::Channel {
                    tx: Some(tx),
                    slot,
                    message_count,
                    max,
                    session,
                },
                counter,
                _activity: None,
            },
        }
    }

    /// The next message; `None` when the peer closed its side cleanly.
    ///
    /// Cancel-safe on both servers: a handler may `select!` on it with a timer or
    /// another stream, and a `next()` dropped before it completed loses nothing (bytes
    /// already read stay buffered for the next call). A message over the size cap, a
    /// malformed frame, or a code outside the protocol's message count is a framing
    /// fault: the server has penalised the peer (a major penalty) before the error is
    /// returned, and the stream gives nothing more.
    pub async fn next(&mut self) -> Option<Result<Message, Error>> {
        self.reader.next().await
    }

    /// Sends one message.
    pub async fn send(&mut self, msg: Message) -> Result<(), Error> {
        self.writer.send(msg).await
    }

    /// Closes the sending side; the peer's reader then sees the end of the stream, on
    /// either server, and later sends fail with [`Error::StreamClosed`]. On the stream
    /// stack this half-closes the yamux stream (we may still read). On RLPx, where a
    /// capability cannot end alone, the connection is disconnected
    /// (`DisconnectRequested`, after what was queued) once every capability stream on it
    /// has closed; until then only our side stops.
    pub async fn close(&mut self) -> Result<(), Error> {
        self.writer.close().await
    }

    /// Splits into halves that can be used from different tasks.
    pub fn split(self) -> (MessageReader, MessageWriter) {
        (self.reader, self.writer)
    }
}

impl MessageReader {
    /// The next message; `None` when the peer closed its side cleanly. Cancel-safe:
    /// see [`MessageStream::next`].
    pub async fn next(&mut self) -> Option<Result<Message, Error>> {
        let next = self.next_uncounted().await;
        if let (Some(Ok(msg)), Some(counter)) = (&next, &self.counter) {
            counter.count(Direction::Inbound, msg.code, msg.payload.len());
        }
        next
    }

    async fn next_uncounted(&mut self) -> Option<Result<Message, Error>> {
        match &mut self.inner {
            ReaderImpl::Channel { rx } => {
                rx.recv().await.map(|m| Ok(Message::new(m.code, m.payload)))
            }
            ReaderImpl::Stream {
                io,
                buf,
                max,
                message_count,
                fault,
                done,
            } => {
                if *done {
                    return None;
                }
                let framed = read_frame(io, buf, *max).await;
                let framed = match (framed, *message_count) {
                    (Ok(msg), Some(count)) if msg.code >= count => {
                        Err(ReadEnd::Failed(Error::CodeOutOfRange {
                            code: msg.code,
                            count,
                        }))
                    }
                    (framed, _) => framed,
                };
                match framed {
                    Ok(msg) => Some(Ok(msg)),
                    Err(ReadEnd::Closed) => {
                        *done = true;
                        None
                    }
                    Err(ReadEnd::Failed(e)) => {
                        *done = true;
                        if e.is_framing_fault() {
                            if let Some(f) = fault {
                                f.ops.penalize(
                                    f.peer,
                                    Penalty::Major,
                                    format!("{}: {e}", f.protocol),
                                );
                            }
                        }
                        Some(Err(e))
                    }
                }
            }
        }
    }
}

/// Why [`read_frame`] returned no message.
enum ReadEnd {
    /// The peer closed its side between messages.
    Closed,
    /// The stream failed or broke the framing.
    Failed(Error),
}

impl From<Error> for ReadEnd {
    fn from(e: Error) -> Self {
        Self::Failed(e)
    }
}

/// Reads until `buf` holds one whole message and takes it off. Cancel-safe: between
/// polls `buf` holds only bytes the peer sent (room for a read is zeroed and used
/// within one poll, and cut back before the poll returns), so a dropped call loses
/// nothing and the next one decodes from where this one stopped.
async fn read_frame(
    io: &mut ReadHalf<BoxedRaw>,
    buf: &mut BytesMut,
    max: usize,
) -> Result<Message, ReadEnd> {
    loop {
        if let Some(msg) = decode_frame(buf, max)? {
            if buf.is_empty() && buf.capacity() > 2 * READ_CHUNK {
                // Release a large buffer once drained: idle streams stay small.
                *buf = BytesMut::new();
            }
            return Ok(msg);
        }
        let n = futures::future::poll_fn(|cx| {
            let len = buf.len();
            if buf.capacity() == 0 {
                // An idle stream holds no buffer (thousands of idle sessions would hold
                // a chunk each): the first bytes go through the stack, and the buffer
                // is only as large as what came.
                let mut first = [0u8; 2048];
                let polled = Pin::new(&mut *io).poll_read(cx, &mut first);
                if let Poll::Ready(Ok(n)) = &polled {
                    buf.extend_from_slice(&first[..*n]);
                }
                return polled;
            }
            // Zero at most one chunk per read: a large message's reserved space
            // fills chunk by chunk, not by re-zeroing all of it each time.
            let grow = READ_CHUNK.min((buf.capacity() - len).max(4096));
            buf.resize(len + grow, 0);
            let polled = Pin::new(&mut *io).poll_read(cx, &mut buf[len..]);
            let n = match &polled {
                Poll::Ready(Ok(n)) => *n,
                _ => 0,
            };
            buf.truncate(len + n);
            if polled.is_pending() && buf.is_empty() && buf.capacity() <= IDLE_BUFFER_LIMIT {
                // Nothing more is coming for now: give a small buffer back while idle.
                // Larger ones (a stream in full flow) are kept for the next message.
                *buf = BytesMut::new();
            }
            polled
        })
        .await
        .map_err(Error::Io)?;
        if n == 0 {
            if buf.is_empty() {
                return Err(ReadEnd::Closed);
            }
            return Err(Error::Io(io::ErrorKind::UnexpectedEof.into()).into());
        }
    }
}

impl MessageWriter {
    /// Sends one message.
    pub async fn send(&mut self, msg: Message) -> Result<(), Error> {
        let (code, len) = (msg.code, msg.payload.len());
        self.send_uncounted(msg).await?;
        if let Some(counter) = &self.counter {
            counter.count(Direction::Outbound, code, len);
        }
        Ok(())
    }

    async fn send_uncounted(&mut self, msg: Message) -> Result<(), Error> {
        match &mut self.inner {
            WriterImpl::Stream {
                io,
                max,
                message_count,
                scratch,
                closed,
            } => {
                if *closed {
                    return Err(Error::StreamClosed);
                }
                if let Some(count) = *message_count {
                    if msg.code >= count {
                        return Err(Error::CodeOutOfRange {
                            code: msg.code,
                            count,
                        });
                    }
                }
                let size = 1 + msg.payload.len();
                if size > *max {
                    return Err(Error::MessageTooLarge {
                        size: size as u64,
                        max: *max,
                    });
                }
                scratch.clear();
                if msg.payload.len() <= COALESCE_LIMIT {
                    encode_frame(&msg, scratch);
                    io.write_all(scratch).await?;
                } else {
                    let mut len = unsigned_varint::encode::u64_buffer();
                    scratch.extend_from_slice(unsigned_varint::encode::u64(size as u64, &mut len));
                    scratch.extend_from_slice(&[msg.code]);
                    io.write_all(scratch).await?;
                    io.write_all(&msg.payload).await?;
                }
                if scratch.capacity() > 4 * COALESCE_LIMIT {
                    *scratch = BytesMut::new();
                }
                io.flush().await?;
                Ok(())
            }
            WriterImpl::Channel {
                tx,
                slot,
                message_count,
                max,
                ..
            } => {
                let Some(tx) = tx else {
                    return Err(Error::StreamClosed);
                };
                if msg.code >= *message_count {
                    return Err(Error::CodeOutOfRange {
                        code: msg.code,
                        count: *message_count,
                    });
                }
                if 1 + msg.payload.len() > *max {
                    return Err(Error::MessageTooLarge {
                        size: 1 + msg.payload.len() as u64,
                        max: *max,
                    });
                }
                tx.send(OutboundMessage {
                    slot: *slot,
                    code: msg.code,
                    payload: msg.payload,
                })
                .await
                .map_err(|_| Error::StreamClosed)
            }
        }
    }

    /// Closes the sending side: see [`MessageStream::close`]. Closing twice is a no-op.
    pub async fn close(&mut self) -> Result<(), Error> {
        match &mut self.inner {
            WriterImpl::Stream { io, closed, .. } => {
                if std::mem::replace(closed, true) {
                    return Ok(());
                }
                Ok(io.close().await?)
            }
            WriterImpl::Channel { tx, session, .. } => {
                if tx.take().is_some() {
                    if let Some(session) = session {
                        session.closed_one();
                    }
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn frame_layout() {
        let mut out = BytesMut::new();
        encode_frame(&Message::new(0x11, vec![1, 2, 3]), &mut out);
        assert_eq!(&out[..], &[4, 0x11, 1, 2, 3]);
        let msg = decode_frame(&mut out, 100).unwrap().unwrap();
        assert_eq!(msg.code, 0x11);
        assert_eq!(&msg.payload[..], &[1, 2, 3]);
        assert!(out.is_empty());
    }

    #[test]
    fn oversize_is_refused_before_the_body_arrives() {
        // Claims 1 GiB with only the header present.
        let mut buf = BytesMut::new();
        let mut tmp = unsigned_varint::encode::u64_buffer();
        buf.extend_from_slice(unsigned_varint::encode::u64(1 << 30, &mut tmp));
        assert!(matches!(
            decode_frame(&mut buf, DEFAULT_MAX_MESSAGE_SIZE),
            Err(Error::MessageTooLarge { .. })
        ));
        assert!(buf.capacity() < 1 << 20);
    }

    #[test]
    fn empty_and_overlong_varints_are_errors() {
        let mut buf = BytesMut::from(&[0u8][..]);
        assert!(decode_frame(&mut buf, 10).is_err());
        let mut buf = BytesMut::from(&[0xffu8; 11][..]);
        assert!(decode_frame(&mut buf, 10).is_err());
    }

    #[tokio::test]
    async fn stream_round_trip_with_split_reads() {
        let (a, b) = tokio::io::duplex(1024);
        use tokio_util::compat::TokioAsyncReadCompatExt;
        let mut a = MessageStream::from_raw(Box::pin(a.compat()), StreamRules::max(1 << 20), None);
        let mut b = MessageStream::from_raw(Box::pin(b.compat()), StreamRules::max(1 << 20), None);
        let big = Message::new(7, vec![9u8; 100_000]);
        let small = Message::new(1, vec![]);
        let send = async {
            a.send(big.clone()).await.unwrap();
            a.send(small.clone()).await.unwrap();
            a.close().await.unwrap();
        };
        let recv = async {
            let m1 = b.next().await.unwrap().unwrap();
            let m2 = b.next().await.unwrap().unwrap();
            assert!(b.next().await.is_none());
            (m1, m2)
        };
        let ((), (m1, m2)) = tokio::join!(send, recv);
        assert_eq!(m1, big);
        assert_eq!(m2, small);
    }

    fn read_buffer_capacity(stream: &MessageStream) -> usize {
        match &stream.reader.inner {
            ReaderImpl::Stream { buf, .. } => buf.capacity(),
            ReaderImpl::Channel { .. } => 0,
        }
    }

    #[tokio::test]
    async fn an_idle_stream_holds_no_read_buffer() {
        use tokio_util::compat::TokioAsyncReadCompatExt;
        let (a, b) = tokio::io::duplex(1 << 20);
        let mut a = MessageStream::from_raw(Box::pin(a.compat()), StreamRules::max(1 << 20), None);
        let mut b = MessageStream::from_raw(Box::pin(b.compat()), StreamRules::max(1 << 20), None);
        // Small, then larger than the first (stack) read, then small again.
        let msgs = [
            Message::new(1, vec![1u8; 10]),
            Message::new(2, vec![2u8; 10_000]),
            Message::new(3, vec![3u8; 3]),
        ];
        for msg in &msgs {
            a.send(msg.clone()).await.unwrap();
            assert_eq!(&b.next().await.unwrap().unwrap(), msg);
            // Nothing more is coming: a next() that waits gives the buffer back.
            let waiting =
                tokio::time::timeout(std::time::Duration::from_millis(20), b.next()).await;
            assert!(waiting.is_err(), "no message was sent");
            assert_eq!(read_buffer_capacity(&b), 0, "after {:?}", msg.code);
        }
        // A message split across many reads still arrives whole after the stream idled.
        let big = Message::new(4, vec![4u8; 200_000]);
        let (send, recv) = tokio::join!(a.send(big.clone()), b.next());
        send.unwrap();
        assert_eq!(recv.unwrap().unwrap(), big);
    }

    proptest! {
        #[test]
        fn frames_round_trip(msgs in proptest::collection::vec((any::<u8>(), proptest::collection::vec(any::<u8>(), 0..600)), 1..8), cut in 0usize..2000) {
            let mut wire = BytesMut::new();
            for (code, payload) in &msgs {
                encode_frame(&Message::new(*code, payload.clone()), &mut wire);
            }
            // Feed in two pieces: decoding must wait for whole messages.
            let cut = cut.min(wire.len());
            let mut buf = BytesMut::from(&wire[..cut]);
            let mut got = Vec::new();
            while let Some(m) = decode_frame(&mut buf, 1 << 20).unwrap() { got.push(m); }
            buf.extend_from_slice(&wire[cut..]);
            while let Some(m) = decode_frame(&mut buf, 1 << 20).unwrap() { got.push(m); }
            prop_assert!(buf.is_empty());
            prop_assert_eq!(got.len(), msgs.len());
            for (m, (code, payload)) in got.iter().zip(&msgs) {
                prop_assert_eq!(m.code, *code);
                prop_assert_eq!(&m.payload[..], &payload[..]);
            }
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut buf = BytesMut::from(&bytes[..]);
            let _ = decode_frame(&mut buf, 1000);
        }
    }
}
