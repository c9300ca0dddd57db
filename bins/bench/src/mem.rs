//! Idle-connection memory, measured in a child process per stack and run, so
//! that no stack inherits another's allocator state: RSS after `n` idle
//! connections (both ends in the child) minus RSS just before dialing, divided
//! by the `2n` connection ends.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use serde::{Deserialize, Serialize};

static BASELINE: AtomicU64 = AtomicU64::new(0);

/// Resident set size in bytes (`VmRSS` of /proc/self/status).
pub(crate) fn rss_bytes() -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .context("no VmRSS in /proc/self/status")?;
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .context("malformed VmRSS")?
        .parse()?;
    Ok(kib * 1024)
}

/// Records the RSS before the connections are made (servers and keys exist).
pub(crate) fn mark_baseline() {
    if let Ok(rss) = rss_bytes() {
        BASELINE.store(rss, Ordering::SeqCst);
    }
}

/// Runs `open` on every item, at most `concurrency` at once, and returns what they
/// opened (in completion order) or the first error: the memory children's way of
/// making their idle connections.
pub(crate) async fn open_all<I, F, Fut, T>(
    items: I,
    concurrency: usize,
    open: F,
) -> anyhow::Result<Vec<T>>
where
    I: IntoIterator,
    F: FnMut(I::Item) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    use futures::StreamExt;
    futures::stream::iter(items)
        .map(open)
        .buffer_unordered(concurrency)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

/// Polls `cond` every 10 ms until it holds or `timeout` passes.
pub(crate) async fn wait_until(
    timeout: Duration,
    mut cond: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while !cond() {
        if Instant::now() > deadline {
            bail!("timed out waiting for the connections");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// What a child reports.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct MemReport {
    pub(crate) stack: String,
    pub(crate) connections: usize,
    pub(crate) baseline_kib: f64,
    pub(crate) after_kib: f64,
    /// KiB per connection end.
    pub(crate) per_end_kib: f64,
}

/// Runs in the child: makes `n` idle connections for `stack`, lets them
/// settle, measures, prints one JSON line.
pub(crate) async fn child(stack: &str, n: usize) -> anyhow::Result<()> {
    const CONCURRENCY: usize = 16;
    let keep = match stack {
        "devmux" => crate::devmux::idle_connections(n, CONCURRENCY).await?,
        "devmux-raw" => crate::devmux::idle_connections_raw(n, CONCURRENCY).await?,
        "libp2p" => crate::libp2p_stack::idle_connections(n, CONCURRENCY).await?,
        "tcp" => crate::tcp::idle_connections(n, CONCURRENCY).await?,
        "rlpx" => crate::rlpx::idle_connections(n, CONCURRENCY).await?,
        "rlpx-net" => crate::rlpx::idle_connections_network(n, CONCURRENCY).await?,
        other => bail!("no memory test for {other}"),
    };
    // Let handshake leftovers drain and buffers be released.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = rss_bytes()?;
    let base = BASELINE.load(Ordering::SeqCst);
    let report = MemReport {
        stack: stack.to_string(),
        connections: n,
        baseline_kib: base as f64 / 1024.0,
        after_kib: after as f64 / 1024.0,
        per_end_kib: (after.saturating_sub(base)) as f64 / 1024.0 / (2 * n) as f64,
    };
    println!("{}", serde_json::to_string(&report)?);
    drop(keep);
    Ok(())
}

/// Runs in the parent: one child process for `stack`.
pub(crate) async fn measure(stack: &str, n: usize, threads: usize) -> anyhow::Result<MemReport> {
    let exe = std::env::current_exe()?;
    let stack = stack.to_string();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(exe)
            .args(["--mem-child", &stack, "--mem-conns", &n.to_string()])
            .args(["--threads", &threads.to_string()])
            .stderr(std::process::Stdio::inherit())
            .output()
    })
    .await??;
    if !out.status.success() {
        bail!("memory child failed: {}", out.status);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .context("memory child printed no report")?;
    Ok(serde_json::from_str(line)?)
}
