//! Raw TCP: the floor every stack is measured against (no encryption, no
//! multiplexing; "8 streams" are 8 connections).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio_util::compat::{Compat, TokioAsyncReadCompatExt};

use crate::raw;
use crate::stats::{RttResult, SetupResult};

pub(crate) struct TcpEnv {
    addr: SocketAddr,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for TcpEnv {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn connect(addr: SocketAddr) -> anyhow::Result<Compat<TcpStream>> {
    let s = TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    Ok(s.compat())
}

impl TcpEnv {
    pub(crate) async fn start() -> anyhow::Result<Self> {
        crate::split::on_server(async {
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            let addr = listener.local_addr()?;
            let server = tokio::spawn(async move {
                while let Ok((s, _)) = listener.accept().await {
                    let _ = s.set_nodelay(true);
                    tokio::spawn(async move {
                        let _ = raw::serve(s.compat()).await;
                    });
                }
            });
            Ok(Self { addr, server })
        })
        .await
    }

    pub(crate) async fn throughput(&self, streams: usize, total: u64) -> anyhow::Result<f64> {
        let per = total / streams as u64;
        let mut conns = Vec::with_capacity(streams);
        for i in 0..streams {
            let mut s = connect(self.addr).await?;
            raw::sink_start(&mut s, i as u64, per).await?;
            conns.push(s);
        }
        raw::sink_all(conns, per).await
    }

    pub(crate) async fn setup(&self, parallel: usize, per: usize) -> anyhow::Result<SetupResult> {
        let addr = self.addr;
        let samples = raw::setup_workers(parallel, per, move |w, i| async move {
            let t = Instant::now();
            let mut s = connect(addr).await?;
            raw::echo_start(&mut s).await?;
            let mut back = [0u8; 32];
            raw::echo_once(&mut s, w as u64, i as u64, 32, &mut back).await?;
            Ok(t.elapsed())
        })
        .await?;
        Ok(SetupResult::from_samples(samples))
    }

    /// An echo channel: a TCP connection.
    pub(crate) async fn echo(&self) -> anyhow::Result<Box<dyn crate::echo::Echo>> {
        Ok(Box::new(
            crate::echo::RawEcho::start(connect(self.addr).await?).await?,
        ))
    }

    pub(crate) async fn rtt(
        &self,
        warmup: usize,
        n: usize,
        size: usize,
    ) -> anyhow::Result<RttResult> {
        let mut s = connect(self.addr).await?;
        Ok(RttResult::from_samples(
            raw::echo_rounds(&mut s, warmup, n, size).await?,
        ))
    }
}

/// Memory child: `n` idle connections, both ends in this process.
pub(crate) async fn idle_connections(
    n: usize,
    concurrency: usize,
) -> anyhow::Result<Box<dyn std::any::Any>> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(idle(s));
        }
    });
    crate::idle::mark_baseline();
    crate::idle::open_all(0..n, concurrency, |_| async move {
        let s = TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        tokio::spawn(idle(s));
        Ok(())
    })
    .await?;
    crate::idle::wait_until(Duration::from_secs(30), || {
        accepted.load(Ordering::Relaxed) >= n
    })
    .await?;
    Ok(Box::new(()))
}

/// An idle connection end: a task waiting for bytes that never come.
async fn idle(s: TcpStream) {
    use tokio::io::AsyncReadExt;
    let mut s = s;
    let mut buf = [0u8; 64];
    while let Ok(n) = s.read(&mut buf).await {
        if n == 0 {
            break;
        }
    }
}

// Raw TCP's "streams" are connections.
crate::stack::multi_stream_stack!(TcpEnv);
