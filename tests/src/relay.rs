//! A TCP relay that makes a link slow and unreliable, for testnets on kernels without
//! `tc netem` (`testnet/netns.sh` uses it when netem is missing; the example
//! `netem_relay` runs it).
//!
//! TCP hides packet loss from the application: what a lossy link does to a stream is
//! delay it, and now and then stall it for a retransmission timeout. So the relay
//! holds every chunk it reads for `delay` (± `jitter`) before writing it on, in order,
//! and before a chunk, with probability `stall_probability`, waits `stall` more. Each
//! direction of each connection is delayed on its own, as on a real path; bytes are
//! never changed, dropped or reordered.

use std::net::SocketAddr;
use std::time::Duration;

use rand::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How the relay degrades the link.
#[derive(Clone, Copy, Debug)]
pub struct Impairment {
    /// Added to every chunk, each direction.
    pub delay: Duration,
    /// Up to this much more (uniform), per chunk; order is kept.
    pub jitter: Duration,
    /// Chance, per chunk, of a stall before it.
    pub stall_probability: f64,
    /// How long a stall lasts.
    pub stall: Duration,
}

/// Chunks read but not yet written, per direction: a bound on what the relay buffers
/// (64 × 16 KiB); a full queue stops reading, so the sender meets TCP backpressure.
const QUEUE: usize = 64;
const CHUNK: usize = 16 * 1024;

/// Accepts on `listener` forever, relaying each connection to `target`.
pub async fn run(
    listener: TcpListener,
    target: SocketAddr,
    how: Impairment,
) -> std::io::Result<()> {
    loop {
        let (inbound, _) = listener.accept().await?;
        tokio::spawn(async move {
            let Ok(outbound) = TcpStream::connect(target).await else {
                return;
            };
            let _ = inbound.set_nodelay(true);
            let _ = outbound.set_nodelay(true);
            let (ir, iw) = inbound.into_split();
            let (or, ow) = outbound.into_split();
            // When either direction ends, the other is left to drain and end on its own.
            tokio::join!(pipe(ir, ow, how), pipe(or, iw, how));
        });
    }
}

/// One direction: a reader stamping chunks with their due time, a writer sending each
/// when due.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    how: Impairment,
) {
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(QUEUE);
    let reader = async move {
        let mut buf = vec![0u8; CHUNK];
        let mut last_due = Instant::now();
        loop {
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let (extra, stall) = {
                let mut rng = rand::thread_rng();
                let jitter = how.jitter.mul_f64(rng.gen::<f64>());
                let stall = rng.gen::<f64>() < how.stall_probability;
                (jitter, stall)
            };
            let mut due = Instant::now() + how.delay + extra;
            if stall {
                due += how.stall;
            }
            // In order: a chunk is never due before the one read ahead of it.
            due = due.max(last_due);
            last_due = due;
            if tx.send((due, buf[..n].to_vec())).await.is_err() {
                break;
            }
        }
    };
    let writer = async move {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}
