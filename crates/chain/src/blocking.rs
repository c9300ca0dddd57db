//! Where blocking work (redb calls, signature recovery, root checks) runs: tokio's
//! blocking pool, off the async reactor.
//!
//! With the `sim` feature, a deterministic simulation can ask for it to run inline
//! instead (`run_inline`, feature `sim`), on the thread that awaits it. Under turmoil every host
//! runs on one thread with a paused clock: tokio keeps that clock still while a
//! blocking task runs (no spurious timeouts), but the task's completion, and the
//! in-memory head it moves, land at a point of the host's other work that depends
//! on thread timing, so two runs with one seed could differ. Inline, they cannot.
//! Production never sets it: the feature is off there, and even with it on the
//! switch is per thread and off until a simulation turns it on.

/// Runs `f` on tokio's blocking pool (inline where `run_inline` asked for it);
/// `Err` carries the task's failure (a panic) as text.
pub async fn off_reactor<T, F>(f: F) -> Result<T, String>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    #[cfg(feature = "sim")]
    if sim::inline() {
        return Ok(f());
    }
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| e.to_string())
}

#[cfg(feature = "sim")]
mod sim {
    use std::cell::Cell;

    thread_local! {
        static INLINE: Cell<bool> = const { Cell::new(false) };
    }

    pub(super) fn inline() -> bool {
        INLINE.with(Cell::get)
    }

    pub(super) fn set(on: bool) {
        INLINE.with(|i| i.set(on));
    }
}

/// Makes [`off_reactor`] run its work inline on this thread (`true`) or on tokio's
/// blocking pool again (`false`, the default). For a turmoil simulation, whose hosts
/// all run on the thread that steps it (feature `sim`).
#[cfg(feature = "sim")]
pub fn run_inline(on: bool) {
    sim::set(on);
}
