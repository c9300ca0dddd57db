//! Helpers the stacks' memory children make their idle connections with
//! ([`crate::stack::Kind::idle`]); the memory section (mem.rs) reads the baseline.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;

static BASELINE: AtomicU64 = AtomicU64::new(0);

/// Records the RSS before the connections are made (servers and keys exist).
pub(crate) fn mark_baseline() {
    if let Ok(rss) = crate::stats::rss_bytes() {
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

/// The RSS [`mark_baseline`] recorded, in bytes.
pub(crate) fn baseline() -> u64 {
    BASELINE.load(Ordering::SeqCst)
}
