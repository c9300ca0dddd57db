//! One multiplexed connection: a task drives the yamux connection; handles open
//! outbound streams and receive inbound ones through bounded channels.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{ready, Context, Poll};

use devmux_identity::{PeerId, PublicKey};
use futures::channel::mpsc;
use futures::io::{AsyncRead, AsyncWrite};
use futures::{SinkExt, StreamExt};
use tokio::sync::oneshot;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tracing::{debug, Instrument};

use crate::{Error, RejectionBudget};

/// A yamux stream: a reliable, ordered byte stream inside a connection
/// (`futures::io::AsyncRead + AsyncWrite`).
///
/// Once its connection has ended, a read that would wait returns end-of-stream
/// and a write that would wait fails. yamux 0.14 wakes no stream when the
/// connection is closed from our side (`poll_close`), only when the remote or an
/// error ends it, so without this a handler waiting on a read would outlive its
/// connection for good.
pub struct Stream {
    inner: yamux::Stream,
    /// One per direction: a stream's halves may wait in different tasks, and a
    /// waiting future keeps only the last waker that polled it.
    read_ended: Pin<Box<WaitForCancellationFutureOwned>>,
    write_ended: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl Stream {
    fn new(inner: yamux::Stream, connection_ended: &CancellationToken) -> Self {
        Self {
            inner,
            read_ended: Box::pin(connection_ended.clone().cancelled_owned()),
            write_ended: Box::pin(connection_ended.clone().cancelled_owned()),
        }
    }

    /// What a write on a stream of an ended connection gets.
    fn ended_error() -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::BrokenPipe, "connection closed")
    }
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.fmt(f)
    }
}

/// Polls `op` on the inner stream; if it waits and the connection has ended (as
/// `ended` says, registering the waker), polls it once more, so whatever the driver
/// delivered before it ended is still returned, and only then gives `gone`.
fn poll_or_gone<T>(
    cx: &mut Context<'_>,
    ended: &mut Pin<Box<WaitForCancellationFutureOwned>>,
    mut op: impl FnMut(&mut Context<'_>) -> Poll<std::io::Result<T>>,
    gone: impl FnOnce() -> std::io::Result<T>,
) -> Poll<std::io::Result<T>> {
    match op(cx) {
        Poll::Pending if ended.as_mut().poll(cx).is_ready() => match op(cx) {
            Poll::Pending => Poll::Ready(gone()),
            ready => ready,
        },
        other => other,
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let inner = &mut this.inner;
        poll_or_gone(
            cx,
            &mut this.read_ended,
            |cx| Pin::new(&mut *inner).poll_read(cx, buf),
            || Ok(0),
        )
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let inner = &mut this.inner;
        poll_or_gone(
            cx,
            &mut this.write_ended,
            |cx| Pin::new(&mut *inner).poll_write(cx, buf),
            || Err(Self::ended_error()),
        )
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let inner = &mut this.inner;
        poll_or_gone(
            cx,
            &mut this.write_ended,
            |cx| Pin::new(&mut *inner).poll_flush(cx),
            || Err(Self::ended_error()),
        )
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let inner = &mut this.inner;
        // The connection is gone: what was written but not sent is lost, say so.
        poll_or_gone(
            cx,
            &mut this.write_ended,
            |cx| Pin::new(&mut *inner).poll_close(cx),
            || Err(Self::ended_error()),
        )
    }
}

/// The connection's byte stream as yamux sees it, with its flushes batched.
///
/// yamux flushes after every frame it writes, and flushing the Noise stream
/// seals the message being filled and hands it to the kernel. So a message sent
/// as a length write and a body write went out as two Noise messages and two
/// `sendto`s, and every window update as one more, each waking the peer. Here a
/// flush from yamux only marks the stream due; the driver flushes once yamux
/// has nothing more to write ([`BatchedShared::poll_flush_due`]), so frames
/// queued together share Noise messages and system calls. Closing flushes at
/// once. Only the connection's driver task touches it, so the lock is never
/// contended: it is there because yamux owns one handle and the driver another.
struct Batched<T> {
    shared: Arc<BatchedShared<T>>,
}

struct BatchedShared<T> {
    io: Mutex<T>,
    flush_due: AtomicBool,
}

impl<T> BatchedShared<T> {
    fn io(&self) -> MutexGuard<'_, T> {
        // A panic while holding it ends the driver task, the only user.
        self.io.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<T: AsyncWrite + Unpin> BatchedShared<T> {
    /// Flushes if yamux asked for a flush since the last one.
    fn poll_flush_due(&self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if !self.flush_due.swap(false, Ordering::Relaxed) {
            return Poll::Ready(Ok(()));
        }
        let result = Pin::new(&mut *self.io()).poll_flush(cx);
        if result.is_pending() {
            self.flush_due.store(true, Ordering::Relaxed);
        }
        result
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Batched<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut *self.shared.io()).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Batched<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut *self.shared.io()).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.shared.flush_due.store(true, Ordering::Relaxed);
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let mut io = self.shared.io();
        ready!(Pin::new(&mut *io).poll_flush(cx))?;
        self.shared.flush_due.store(false, Ordering::Relaxed);
        Pin::new(&mut *io).poll_close(cx)
    }
}

/// Which side opened the TCP connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// We accepted it.
    Inbound,
    /// We dialed it.
    Outbound,
}

impl std::fmt::Display for Direction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        })
    }
}

/// What is known about an established connection.
#[derive(Clone, Debug)]
pub struct ConnectionInfo {
    /// The remote's PeerId, proven in the Noise handshake.
    pub peer_id: PeerId,
    /// The remote's public key.
    pub public_key: PublicKey,
    /// The remote socket address.
    pub remote_addr: SocketAddr,
    /// Our socket address.
    pub local_addr: SocketAddr,
    /// Who dialed.
    pub direction: Direction,
}

type OpenRequest = oneshot::Sender<Result<Stream, Error>>;

/// How long a graceful close (GoAway, flush, socket shutdown) may take before the
/// connection is dropped.
pub const CLOSE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(3);

/// A clonable handle that opens streams on, and closes, one connection.
#[derive(Clone, Debug)]
pub struct Control {
    open_tx: mpsc::Sender<OpenRequest>,
    close: CancellationToken,
    closed: CancellationToken,
}

impl Control {
    /// Opens a new outbound stream.
    pub async fn open_stream(&self) -> Result<Stream, Error> {
        let (tx, rx) = oneshot::channel();
        // A clone per open: a futures sender needs `&mut`, and each clone has a slot
        // of its own, so an open never waits behind another's.
        self.open_tx
            .clone()
            .send(tx)
            .await
            .map_err(|_| Error::ConnectionClosed)?;
        rx.await.map_err(|_| Error::ConnectionClosed)?
    }

    /// Starts a graceful close (yamux GoAway, then the socket). Returns at once.
    pub fn close(&self) {
        self.close.cancel();
    }

    /// Waits until the connection's driver task has ended.
    pub async fn closed(&self) {
        self.closed.cancelled().await
    }

    /// Whether the connection has ended.
    pub fn is_closed(&self) -> bool {
        self.closed.is_cancelled()
    }
}

/// Inbound streams of one connection, bounded: when the consumer falls behind by
/// more than the queue, new inbound streams are reset rather than buffered.
#[derive(Debug)]
pub struct IncomingStreams {
    // A futures channel, not tokio's: tokio's allocates its first block of 32
    // slots up front (half a KiB on every connection, most of which never queue a
    // stream); this one allocates per queued stream.
    rx: mpsc::Receiver<Stream>,
}

impl IncomingStreams {
    /// The next inbound stream, or `None` once the connection is closed.
    pub async fn next(&mut self) -> Option<Stream> {
        self.rx.next().await
    }
}

/// An established, authenticated, multiplexed connection.
#[derive(Debug)]
pub struct Connection {
    /// Who is on the other end.
    pub info: ConnectionInfo,
    /// Opens streams and closes the connection.
    pub control: Control,
    /// Streams the remote opens.
    pub incoming: IncomingStreams,
    /// The connection's rejection budget ([`crate::Config::max_rejected_per_connection`]):
    /// what the upgrade's negotiations left of it, for the negotiations of the streams
    /// the remote opens (wrap each in a [`crate::RejectionLimited`] sharing it).
    pub rejections: RejectionBudget,
}

impl Connection {
    /// Runs yamux over `io` (in `mode`, with `config`) in a task of its own and
    /// returns the handles.
    pub(crate) fn spawn<T>(
        io: T,
        config: yamux::Config,
        mode: yamux::Mode,
        info: ConnectionInfo,
        inbound_queue: usize,
        rejections: RejectionBudget,
    ) -> Self
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let shared = Arc::new(BatchedShared {
            io: Mutex::new(io),
            flush_due: AtomicBool::new(false),
        });
        let conn = yamux::Connection::new(
            Batched {
                shared: shared.clone(),
            },
            config,
            mode,
        );
        // A futures channel holds its buffer plus one per sender: one sender each.
        let (open_tx, open_rx) = mpsc::channel(15);
        let (in_tx, in_rx) = mpsc::channel(inbound_queue.max(1) - 1);
        let close = CancellationToken::new();
        let closed = CancellationToken::new();
        let span = tracing::debug_span!("conn", peer = %info.peer_id, addr = %info.remote_addr, dir = %info.direction);
        let driver = Driver {
            conn,
            io: shared,
            open_rx,
            open_rx_done: false,
            pending_open: None,
            in_tx,
            close: Box::pin(close.clone().cancelled_owned()),
            closing: false,
            ended: closed.clone(),
        };
        let closed_done = closed.clone();
        let close_asked = close.clone();
        tokio::spawn(
            async move {
                // Cancelled however the driver ends, a panic included: streams and
                // `Control::closed` wait on it.
                let _ended = closed_done.drop_guard();
                // A close that cannot finish (the peer stopped reading, so GoAway and
                // the last frames never go out) ends at its deadline: the driver and
                // its socket are dropped.
                let overdue = async {
                    close_asked.cancelled().await;
                    tokio::time::sleep(CLOSE_DEADLINE).await;
                };
                tokio::select! {
                    ended = driver => match ended {
                        Ok(()) => debug!("connection closed"),
                        Err(e) => debug!(error = %e, "connection ended"),
                    },
                    _ = overdue => debug!("close outlived its deadline: socket dropped"),
                }
            }
            .instrument(span),
        );
        Self {
            info,
            control: Control {
                open_tx,
                close,
                closed,
            },
            incoming: IncomingStreams { rx: in_rx },
            rejections,
        }
    }
}

struct Driver<T> {
    conn: yamux::Connection<Batched<T>>,
    /// The stream under `conn`, to flush what yamux wrote once it is done.
    io: Arc<BatchedShared<T>>,
    open_rx: mpsc::Receiver<OpenRequest>,
    open_rx_done: bool,
    pending_open: Option<OpenRequest>,
    in_tx: mpsc::Sender<Stream>,
    close: Pin<Box<WaitForCancellationFutureOwned>>,
    closing: bool,
    /// Cancelled when the driver task ends; every stream handed out watches it.
    ended: CancellationToken,
}

impl<T: AsyncRead + AsyncWrite + Unpin> Future for Driver<T> {
    type Output = Result<(), yamux::ConnectionError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        loop {
            if !this.closing
                && (this.close.as_mut().poll(cx).is_ready() || this.idle_and_abandoned())
            {
                this.closing = true;
                if let Some(req) = this.pending_open.take() {
                    let _ = req.send(Err(Error::ConnectionClosed));
                }
            }
            if this.closing {
                // Sends GoAway, flushes, closes the socket.
                return this.conn.poll_close(cx);
            }

            // Outbound: one open at a time, in request order.
            if this.pending_open.is_none() && !this.open_rx_done {
                match this.open_rx.poll_next_unpin(cx) {
                    Poll::Ready(Some(req)) => this.pending_open = Some(req),
                    Poll::Ready(None) => this.open_rx_done = true,
                    Poll::Pending => {}
                }
            }
            if let Some(req) = this.pending_open.take() {
                if req.is_closed() {
                    continue; // The requester gave up.
                }
                match this.conn.poll_new_outbound(cx) {
                    Poll::Ready(result) => {
                        let stream = result
                            .map(|s| Stream::new(s, &this.ended))
                            .map_err(Error::from);
                        let _ = req.send(stream);
                        continue;
                    }
                    Poll::Pending => this.pending_open = Some(req),
                }
            }

            // Inbound, which also drives all of the connection's I/O.
            match this.conn.poll_next_inbound(cx) {
                Poll::Ready(Some(Ok(stream))) => {
                    let stream = Stream::new(stream, &this.ended);
                    if let Err(e) = this.in_tx.try_send(stream) {
                        if e.is_full() {
                            debug!("inbound stream queue full: resetting stream");
                        }
                        drop(e.into_inner());
                    }
                    continue;
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(e)),
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Pending => {
                    // yamux has written all it can for now: send it. If the socket
                    // is full, its readiness wakes this task to finish.
                    if let Poll::Ready(Err(e)) = this.io.poll_flush_due(cx) {
                        return Poll::Ready(Err(yamux::ConnectionError::Io(e)));
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}

impl<T> Driver<T> {
    /// Nobody can open or receive streams any more: close.
    fn idle_and_abandoned(&self) -> bool {
        self.open_rx_done && self.pending_open.is_none() && self.in_tx.is_closed()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use devmux_identity::NodeKey;
    use futures::{AsyncReadExt, AsyncWriteExt};

    use crate::{Config, Listener, Upgrader};

    /// A connection pair on 127.0.0.1: (dialer's, listener's).
    async fn pair() -> (super::Connection, super::Connection) {
        let (_, dialed, accepted) = pair_with_dialer().await;
        (dialed, accepted)
    }

    /// Like [`pair`], with the dialer's upgrader (for its wire statistics).
    async fn pair_with_dialer() -> (Upgrader, super::Connection, super::Connection) {
        let server = Upgrader::new(NodeKey::generate(), Config::default()).unwrap();
        let mut listener = Listener::bind("127.0.0.1:0".parse().unwrap(), server)
            .await
            .unwrap();
        let client = Upgrader::new(NodeKey::generate(), Config::default()).unwrap();
        let (dialed, accepted) =
            tokio::join!(client.dial(listener.local_addr(), None), listener.accept());
        (client, dialed.unwrap(), accepted.unwrap().unwrap())
    }

    const DEADLINE: Duration = Duration::from_secs(5);

    /// Frames queued together go out in shared Noise messages: yamux flushes
    /// after each frame, and each flush used to seal a message (18 bytes of
    /// length and tag) and make a system call of its own.
    #[tokio::test(flavor = "current_thread")]
    async fn frames_queued_together_share_noise_messages() {
        let (client, ours, mut theirs) = pair_with_dialer().await;
        let mut stream = ours.control.open_stream().await.unwrap();
        stream.write_all(b"open").await.unwrap();
        let mut their_stream = theirs.incoming.next().await.unwrap();
        their_stream.read_exact(&mut [0u8; 4]).await.unwrap();

        // On this one-thread runtime the driver runs only when this task waits:
        // when yamux's command queue (10 frames) is full, and at the end.
        const WRITES: usize = 40;
        const FRAME: usize = 12 + 10; // yamux header + payload
        let before = client.stats().snapshot().bytes_out;
        for i in 0..WRITES {
            stream.write_all(&[i as u8; 10]).await.unwrap();
        }
        stream.flush().await.unwrap();
        let mut got = vec![0u8; WRITES * 10];
        tokio::time::timeout(DEADLINE, their_stream.read_exact(&mut got))
            .await
            .expect("the frames arrived")
            .unwrap();
        for (i, chunk) in got.chunks(10).enumerate() {
            assert_eq!(chunk, &[i as u8; 10]);
        }
        let sent = (client.stats().snapshot().bytes_out - before) as usize;
        // One Noise message per frame would be WRITES × (FRAME + 18) = 1600 bytes;
        // batched, about one per ten frames.
        assert!(
            sent < WRITES * FRAME + WRITES / 2 * 18,
            "{sent} bytes for {WRITES} frames of {FRAME}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn closing_a_connection_ends_waiting_reads_on_both_ends() {
        let (ours, mut theirs) = pair().await;
        let mut our_stream = ours.control.open_stream().await.unwrap();
        our_stream.write_all(b"x").await.unwrap();
        our_stream.flush().await.unwrap();
        let mut their_stream = theirs.incoming.next().await.unwrap();
        let mut byte = [0u8; 1];
        their_stream.read_exact(&mut byte).await.unwrap();

        // Both ends now wait for data that will never come.
        let our_read = tokio::spawn(async move { our_stream.read(&mut [0u8; 16]).await });
        let their_read = tokio::spawn(async move { their_stream.read(&mut [0u8; 16]).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!our_read.is_finished() && !their_read.is_finished());

        ours.control.close();
        // End of stream or an error: either way the reader is free to go.
        let ours_read = tokio::time::timeout(DEADLINE, our_read).await;
        let theirs_read = tokio::time::timeout(DEADLINE, their_read).await;
        let ours_read = ours_read.expect("our read outlived our close").unwrap();
        assert!(!matches!(ours_read, Ok(n) if n > 0), "{ours_read:?}");
        let theirs_read = theirs_read.expect("their read outlived our close").unwrap();
        assert!(!matches!(theirs_read, Ok(n) if n > 0), "{theirs_read:?}");
    }

    /// Writes 64 MiB in a task; a remote that never reads stops it at the
    /// stream's receive window.
    fn write_until_window_full<W>(mut w: W) -> tokio::task::JoinHandle<std::io::Result<()>>
    where
        W: futures::AsyncWrite + Unpin + Send + 'static,
    {
        tokio::spawn(async move {
            let chunk = vec![7u8; 64 * 1024];
            for _ in 0..1024 {
                w.write_all(&chunk).await?;
            }
            Ok(())
        })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn closing_a_connection_ends_both_halves_waiting_in_different_tasks() {
        let (ours, mut theirs) = pair().await;
        let stream = ours.control.open_stream().await.unwrap();
        let (mut reader, writer) = stream.split();
        let read = tokio::spawn(async move { reader.read(&mut [0u8; 16]).await });
        let write = write_until_window_full(writer);
        let _unread = theirs.incoming.next().await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!read.is_finished() && !write.is_finished());

        ours.control.close();
        let read = tokio::time::timeout(DEADLINE, read)
            .await
            .expect("the read half outlived the connection")
            .unwrap();
        assert!(!matches!(read, Ok(n) if n > 0), "{read:?}");
        let write = tokio::time::timeout(DEADLINE, write)
            .await
            .expect("the write half outlived the connection")
            .unwrap();
        assert!(write.is_err());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn closing_a_connection_fails_a_write_waiting_for_window() {
        let (ours, mut theirs) = pair().await;
        let stream = ours.control.open_stream().await.unwrap();
        let writer = write_until_window_full(stream);
        let _unread = theirs.incoming.next().await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            !writer.is_finished(),
            "the window should have stopped the writer"
        );

        ours.control.close();
        let result = tokio::time::timeout(DEADLINE, writer)
            .await
            .expect("a write outlived its connection")
            .unwrap();
        assert!(result.is_err());
    }
}
