//! Where the serving ends run. By default the serving end of every stack runs
//! on its own tokio runtime (half the worker threads), the dialing end on the
//! main one: like two nodes on one machine, and a sender never shares a
//! scheduler queue with its receiver. `--one-runtime` puts both on one.

use std::future::Future;
use std::sync::OnceLock;

static SERVER: OnceLock<tokio::runtime::Handle> = OnceLock::new();

/// Makes `handle` the runtime that serving ends start on.
pub(crate) fn set_server_runtime(handle: tokio::runtime::Handle) {
    let _ = SERVER.set(handle);
}

/// Runs `fut` (which starts a serving end and its tasks) on the server runtime.
pub(crate) async fn on_server<F, T>(fut: F) -> anyhow::Result<T>
where
    F: Future<Output = anyhow::Result<T>> + Send + 'static,
    T: Send + 'static,
{
    match SERVER.get() {
        Some(handle) => handle.spawn(fut).await?,
        None => fut.await,
    }
}
