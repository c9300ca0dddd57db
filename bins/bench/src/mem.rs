//! Idle-connection memory, measured in a child process per stack and run, so
//! that no stack inherits another's allocator state: RSS after `n` idle
//! connections (both ends in the child, made by the stack's [`Kind::idle`])
//! minus RSS just before dialing, divided by the `2n` connection ends.
//!
//! [`Kind::idle`]: crate::stack::Kind::idle

use std::time::Duration;

use anyhow::{bail, Context as _};
use serde::{Deserialize, Serialize};

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
    let keep = (crate::stack::kind(stack)?.idle)(n, CONCURRENCY).await?;
    // Let handshake leftovers drain and buffers be released.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = crate::stats::rss_bytes()?;
    let base = crate::idle::baseline();
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
