//! One multiplexed connection: a task drives the yamux connection; handles open
//! outbound streams and receive inbound ones through bounded channels.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use devmux_identity::{PeerId, PublicKey};
use futures::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{debug, Instrument};

use crate::Error;

/// A yamux stream: a reliable, ordered byte stream inside a connection
/// (`futures::io::AsyncRead + AsyncWrite`).
pub type Stream = yamux::Stream;

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
        self.open_tx
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
    rx: mpsc::Receiver<Stream>,
}

impl IncomingStreams {
    /// The next inbound stream, or `None` once the connection is closed.
    pub async fn next(&mut self) -> Option<Stream> {
        self.rx.recv().await
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
}

impl Connection {
    /// Spawns the task that drives `conn` and returns the handles.
    pub(crate) fn spawn<T>(
        conn: yamux::Connection<T>,
        info: ConnectionInfo,
        inbound_queue: usize,
    ) -> Self
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (open_tx, open_rx) = mpsc::channel(16);
        let (in_tx, in_rx) = mpsc::channel(inbound_queue.max(1));
        let close = CancellationToken::new();
        let closed = CancellationToken::new();
        let span = tracing::debug_span!("conn", peer = %info.peer_id, addr = %info.remote_addr, dir = %info.direction);
        let driver = Driver {
            conn,
            open_rx,
            open_rx_done: false,
            pending_open: None,
            in_tx,
            close: Box::pin(close.clone().cancelled_owned()),
            closing: false,
        };
        let closed_done = closed.clone();
        tokio::spawn(
            async move {
                match driver.await {
                    Ok(()) => debug!("connection closed"),
                    Err(e) => debug!(error = %e, "connection ended"),
                }
                closed_done.cancel();
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
        }
    }
}

struct Driver<T> {
    conn: yamux::Connection<T>,
    open_rx: mpsc::Receiver<OpenRequest>,
    open_rx_done: bool,
    pending_open: Option<OpenRequest>,
    in_tx: mpsc::Sender<Stream>,
    close: Pin<Box<tokio_util::sync::WaitForCancellationFutureOwned>>,
    closing: bool,
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
                match this.open_rx.poll_recv(cx) {
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
                        let _ = req.send(result.map_err(Error::from));
                        continue;
                    }
                    Poll::Pending => this.pending_open = Some(req),
                }
            }

            // Inbound, which also drives all of the connection's I/O.
            match this.conn.poll_next_inbound(cx) {
                Poll::Ready(Some(Ok(stream))) => {
                    if let Err(mpsc::error::TrySendError::Full(stream)) =
                        this.in_tx.try_send(stream)
                    {
                        debug!("inbound stream queue full: resetting stream");
                        drop(stream);
                    }
                    continue;
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(e)),
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
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
