//! The byte-stream protocol spoken over raw TCP, raw yamux streams (devmux
//! transport) and rust-libp2p streams: one op byte, then
//!
//! - `S ‖ seed ‖ length`, answered by `R` (ready), then `length` pattern
//!   bytes; the receiver checks every byte and answers `ok ‖ received` (sink);
//! - `E`, then anything, echoed back as it arrives (echo).

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _};
use futures::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::pattern::{self, Verifier, CHUNK};

pub(crate) const OP_SINK: u8 = b'S';
pub(crate) const OP_ECHO: u8 = b'E';

/// Serves one stream (either op) until the peer closes it.
pub(crate) async fn serve<S: AsyncRead + AsyncWrite + Unpin>(mut s: S) -> anyhow::Result<()> {
    let mut op = [0u8; 1];
    if s.read(&mut op).await? == 0 {
        return Ok(());
    }
    let mut buf = vec![0u8; CHUNK];
    match op[0] {
        OP_SINK => {
            let mut h = [0u8; 16];
            s.read_exact(&mut h).await?;
            let (seed, len) = (pattern::be_u64(&h[..8]), pattern::be_u64(&h[8..]));
            s.write_all(b"R").await?;
            s.flush().await?;
            let mut v = Verifier::new(seed);
            while v.received() < len {
                let want = (len - v.received()).min(CHUNK as u64) as usize;
                let n = s.read(&mut buf[..want]).await?;
                if n == 0 {
                    break;
                }
                v.feed(&buf[..n]);
            }
            s.write_all(&pattern::ack(&v)).await?;
            s.flush().await?;
            // Wait for the sender to close (or reset): its side decides when we're done.
            let _ = s.read(&mut buf[..1]).await;
            let _ = s.close().await;
        }
        OP_ECHO => loop {
            let n = s.read(&mut buf).await?;
            if n == 0 {
                let _ = s.close().await;
                break;
            }
            s.write_all(&buf[..n]).await?;
            s.flush().await?;
        },
        other => bail!("unknown op {other}"),
    }
    Ok(())
}

/// Announces a sink transfer and waits until the receiver is ready.
pub(crate) async fn sink_start<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    seed: u64,
    len: u64,
) -> anyhow::Result<()> {
    s.write_all(&pattern::sink_header(OP_SINK, seed, len))
        .await?;
    s.flush().await?;
    let mut r = [0u8; 1];
    s.read_exact(&mut r)
        .await
        .context("waiting for the receiver")?;
    ensure!(r[0] == b'R', "receiver not ready");
    Ok(())
}

/// Runs [`sink`] of `per` bytes on every stream at once (stream `i` with seed `i`;
/// each already started with [`sink_start`]) and returns the combined MiB/s.
pub(crate) async fn sink_all<S>(streams: Vec<S>, per: u64) -> anyhow::Result<f64>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let count = streams.len() as u64;
    let t = Instant::now();
    let tasks: Vec<_> = streams
        .into_iter()
        .enumerate()
        .map(|(i, mut s)| tokio::spawn(async move { sink(&mut s, i as u64, per).await }))
        .collect();
    for task in tasks {
        task.await??;
    }
    Ok(crate::stats::mib_per_s(per * count, t.elapsed()))
}

/// Sends `len` bytes of stream `seed` in 64 KiB writes (after [`sink_start`])
/// and waits for the receiver's acknowledgement; fails unless the receiver saw
/// exactly the data.
pub(crate) async fn sink<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    seed: u64,
    len: u64,
) -> anyhow::Result<()> {
    let mut off = 0u64;
    while off < len {
        let n = (len - off).min(CHUNK as u64) as usize;
        s.write_all(pattern::slice(seed, off, n)).await?;
        off += n as u64;
    }
    s.flush().await?;
    let mut a = [0u8; 9];
    s.read_exact(&mut a)
        .await
        .context("reading the acknowledgement")?;
    pattern::check_ack(&a, len)?;
    s.close().await?;
    Ok(())
}

/// Starts an echo stream.
pub(crate) async fn echo_start<S: AsyncWrite + Unpin>(s: &mut S) -> anyhow::Result<()> {
    s.write_all(&[OP_ECHO]).await?;
    Ok(())
}

/// One echo round trip of `size` pattern bytes (message `i`); returns its time.
pub(crate) async fn echo_once<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    seed: u64,
    i: u64,
    size: usize,
    back: &mut [u8],
) -> anyhow::Result<Duration> {
    let msg = pattern::slice(seed, i * size as u64, size);
    let t = Instant::now();
    s.write_all(msg).await?;
    s.flush().await?;
    s.read_exact(&mut back[..size]).await?;
    let dt = t.elapsed();
    ensure!(back[..size] == *msg, "echo came back different");
    Ok(dt)
}

/// `n` echo round trips after `warmup` unmeasured ones.
pub(crate) async fn echo_rounds<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    warmup: usize,
    n: usize,
    size: usize,
) -> anyhow::Result<Vec<Duration>> {
    echo_start(s).await?;
    let mut back = vec![0u8; size];
    let mut out = Vec::with_capacity(n);
    for i in 0..(warmup + n) {
        let dt = echo_once(s, 7, i as u64, size, &mut back).await?;
        if i >= warmup {
            out.push(dt);
        }
    }
    s.close().await?;
    Ok(out)
}

/// Runs `parallel` workers that each set up `per_worker` connections one after
/// another with `connect(worker, i)`, which returns the time to a usable
/// stream. Returns every latency, the wall time, and the process CPU time spent
/// meanwhile (keys made beforehand are not in it).
pub(crate) async fn setup_workers<F, Fut>(
    parallel: usize,
    per_worker: usize,
    connect: F,
) -> anyhow::Result<(Vec<Duration>, Duration, Duration)>
where
    F: Fn(usize, usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = anyhow::Result<Duration>> + Send + 'static,
{
    let cpu = crate::stats::cpu_time();
    let t = Instant::now();
    let mut tasks = Vec::with_capacity(parallel);
    for w in 0..parallel {
        let connect = connect.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per_worker);
            for i in 0..per_worker {
                lat.push(connect(w, i).await?);
            }
            anyhow::Ok(lat)
        }));
    }
    let mut all = Vec::with_capacity(parallel * per_worker);
    for task in tasks {
        all.extend(task.await??);
    }
    Ok((all, t.elapsed(), crate::stats::cpu_time() - cpu))
}
