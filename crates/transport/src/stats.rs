//! Wire statistics: bytes through sockets and handshake durations, counted with
//! relaxed atomics (a few nanoseconds per socket call) and read as snapshots.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Upper bounds (seconds) of the handshake-duration histogram buckets.
pub const HANDSHAKE_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// Counters shared by every connection of a server.
#[derive(Debug, Default)]
pub struct IoStats {
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    handshakes: AtomicU64,
    handshake_micros: AtomicU64,
    buckets: [AtomicU64; HANDSHAKE_BUCKETS.len()],
}

/// A point-in-time copy of [`IoStats`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct IoStatsSnapshot {
    /// Bytes read from sockets.
    pub bytes_in: u64,
    /// Bytes written to sockets.
    pub bytes_out: u64,
    /// Completed handshakes.
    pub handshakes: u64,
    /// Their total duration, in seconds.
    pub handshake_seconds: f64,
    /// Cumulative counts per bucket of [`HANDSHAKE_BUCKETS`] (Prometheus style:
    /// bucket `i` counts handshakes that took at most `HANDSHAKE_BUCKETS[i]`).
    pub handshake_buckets: Vec<(f64, u64)>,
}

impl IoStatsSnapshot {
    /// The sum of `self` and `other` (e.g. two carriers of one node): counts add, and
    /// so do the cumulative buckets, which share [`HANDSHAKE_BUCKETS`].
    pub fn merged(mut self, other: &IoStatsSnapshot) -> Self {
        self.bytes_in += other.bytes_in;
        self.bytes_out += other.bytes_out;
        self.handshakes += other.handshakes;
        self.handshake_seconds += other.handshake_seconds;
        if self.handshake_buckets.is_empty() {
            self.handshake_buckets = other.handshake_buckets.clone();
        } else {
            for (mine, theirs) in self
                .handshake_buckets
                .iter_mut()
                .zip(&other.handshake_buckets)
            {
                mine.1 += theirs.1;
            }
        }
        self
    }
}

impl IoStats {
    /// Records a completed handshake.
    pub fn record_handshake(&self, took: Duration) {
        self.handshakes.fetch_add(1, Ordering::Relaxed);
        self.handshake_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        let secs = took.as_secs_f64();
        if let Some(i) = HANDSHAKE_BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The current values.
    pub fn snapshot(&self) -> IoStatsSnapshot {
        let mut cumulative = 0;
        let handshake_buckets = HANDSHAKE_BUCKETS
            .iter()
            .zip(&self.buckets)
            .map(|(bound, count)| {
                cumulative += count.load(Ordering::Relaxed);
                (*bound, cumulative)
            })
            .collect();
        IoStatsSnapshot {
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
            handshakes: self.handshakes.load(Ordering::Relaxed),
            handshake_seconds: self.handshake_micros.load(Ordering::Relaxed) as f64 / 1e6,
            handshake_buckets,
        }
    }
}

/// When a socket last delivered a byte: what admission asks to find the pending
/// handshake that has gone longest without sending one. Cheap to update from reads.
#[derive(Debug)]
pub struct ReadActivity {
    origin: tokio::time::Instant,
    /// Microseconds after `origin` of the last read that delivered bytes; 0: none yet.
    last: AtomicU64,
    /// How far the handshake got ([`ReadActivity::reached`]).
    stage: std::sync::atomic::AtomicU8,
    /// Set once the handshake is over: reads stop reading the clock.
    finished: std::sync::atomic::AtomicBool,
    /// Set by the first read attempt, whatever it returned ([`ReadActivity::looked`]).
    looked: std::sync::atomic::AtomicBool,
}

impl Default for ReadActivity {
    fn default() -> Self {
        Self::new()
    }
}

impl ReadActivity {
    /// Nothing read yet; the clock starts now (at accept).
    pub fn new() -> Self {
        Self {
            origin: tokio::time::Instant::now(),
            last: AtomicU64::new(0),
            stage: std::sync::atomic::AtomicU8::new(0),
            finished: std::sync::atomic::AtomicBool::new(false),
            looked: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The handshake is over: later reads are not stamped (the connection's socket
    /// keeps this watcher for its life, and a clock read per read is not free).
    pub fn finish(&self) {
        self.finished.store(true, Ordering::Relaxed);
    }

    /// Records that the handshake passed a step: 1, the first message understood (the
    /// security protocol negotiated); 2, the remote's key proven. Admission makes room
    /// among the handshakes that got least far first, so a peer must do real work to
    /// hold a place against one that does.
    pub fn reached(&self, stage: u8) {
        self.stage.fetch_max(stage, Ordering::Relaxed);
    }

    /// The furthest step passed (0: none).
    pub fn stage(&self) -> u8 {
        self.stage.load(Ordering::Relaxed)
    }

    /// Records that bytes arrived now (a [`Counted`] socket watched by this does it
    /// on every read).
    pub fn record_read(&self) {
        if self.finished.load(Ordering::Relaxed) {
            return;
        }
        let micros = self.origin.elapsed().as_micros().max(1);
        self.last
            .store(u64::try_from(micros).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Records that the handshake tried to read the socket (a [`Counted`] socket
    /// watched by this does it on every read attempt).
    pub fn record_poll(&self) {
        if !self.looked.load(Ordering::Relaxed) {
            self.looked.store(true, Ordering::Relaxed);
        }
    }

    /// Whether we have tried to read the socket yet. Until we have, its silence is
    /// ours, not the peer's: a loaded node may take a while to get to a socket it
    /// accepted, while the peer's first bytes already wait in the kernel.
    pub fn looked(&self) -> bool {
        self.looked.load(Ordering::Relaxed)
    }

    /// Whether any byte has arrived.
    pub fn has_read(&self) -> bool {
        self.last.load(Ordering::Relaxed) != 0
    }

    /// Since when the socket has been silent: its last byte, or its accept if none.
    pub fn silent_since(&self) -> tokio::time::Instant {
        self.origin + Duration::from_micros(self.last.load(Ordering::Relaxed))
    }
}

/// A socket (or socket half) whose traffic is counted in an [`IoStats`].
#[derive(Debug)]
pub struct Counted<T> {
    inner: T,
    stats: Arc<IoStats>,
    activity: Option<Arc<ReadActivity>>,
}

impl<T> Counted<T> {
    /// Counts `inner`'s traffic in `stats`.
    pub fn new(inner: T, stats: Arc<IoStats>) -> Self {
        Self {
            inner,
            stats,
            activity: None,
        }
    }

    /// Counts `inner`'s traffic in `stats` and stamps `activity` on every read that
    /// delivers bytes.
    pub fn watched(inner: T, stats: Arc<IoStats>, activity: Arc<ReadActivity>) -> Self {
        Self {
            inner,
            stats,
            activity: Some(activity),
        }
    }

    /// The wrapped socket.
    pub fn get_ref(&self) -> &T {
        &self.inner
    }
}

impl Counted<tokio::net::TcpStream> {
    /// Splits a counted TCP stream into counted owned halves (no lock).
    pub fn into_split(
        self,
    ) -> (
        Counted<tokio::net::tcp::OwnedReadHalf>,
        Counted<tokio::net::tcp::OwnedWriteHalf>,
    ) {
        let (r, w) = self.inner.into_split();
        (
            Counted {
                inner: r,
                stats: self.stats.clone(),
                activity: self.activity,
            },
            Counted::new(w, self.stats),
        )
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Counted<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if let Some(activity) = &self.activity {
            activity.record_poll();
        }
        if n > 0 {
            self.stats.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
            if let Some(activity) = &self.activity {
                activity.record_read();
            }
        }
        result
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Counted<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = result {
            self.stats.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
        }
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = result {
            self.stats.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn counts_bytes_and_handshakes() {
        let stats = Arc::new(IoStats::default());
        let (a, mut b) = tokio::io::duplex(64);
        let mut a = Counted::new(a, stats.clone());
        a.write_all(b"hello").await.unwrap();
        b.write_all(b"worlds!").await.unwrap();
        let mut buf = [0u8; 7];
        a.read_exact(&mut buf).await.unwrap();
        stats.record_handshake(Duration::from_millis(3));
        stats.record_handshake(Duration::from_secs(20));
        let s = stats.snapshot();
        assert_eq!((s.bytes_out, s.bytes_in, s.handshakes), (5, 7, 2));
        assert!((s.handshake_seconds - 20.003).abs() < 1e-6);
        // 3 ms falls in the 5 ms bucket and every later one; 20 s in none.
        assert_eq!(s.handshake_buckets[1], (0.0025, 0));
        assert_eq!(s.handshake_buckets[2], (0.005, 1));
        assert_eq!(s.handshake_buckets.last(), Some(&(10.0, 1)));
    }
}
