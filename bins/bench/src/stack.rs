//! What every compared stack does, one implementation per stack module, and the
//! table of stacks the sections iterate over.
//!
//! A section asks a [`Stack`] for a figure and the stack says how it gets it;
//! nothing in `main.rs` matches on a stack's name. A stack that has no form of a
//! test (RLPx has one session per connection, so no "8 streams") says so with
//! [`Stack::streams`] and the section leaves its cell empty.

use std::any::Any;

use futures::future::BoxFuture;

use crate::echo::Echo;
use crate::stats::{RttResult, SetupResult};

/// A boxed future of a fallible result.
pub(crate) type Fut<'a, T> = BoxFuture<'a, anyhow::Result<T>>;

/// A running stack: a serving end and a dialing end, started by
/// [`Kind::start`], measured by the in-process sections.
pub(crate) trait Stack: Send + Sync {
    /// `bytes` pattern bytes over `streams` streams at once (raw TCP: connections),
    /// checked by the receiver; MiB/s.
    fn throughput(&self, streams: usize, bytes: u64) -> Fut<'_, f64>;
    /// Whether [`Stack::throughput`] can run `n` streams on one connection.
    fn streams(&self, n: usize) -> bool {
        n == 1
    }
    /// Round trips of `size` bytes, one after another.
    fn rtt(&self, warmup: usize, rounds: usize, size: usize) -> Fut<'_, RttResult>;
    /// A channel for round trips interleaved with other stacks'.
    fn echo(&self) -> Fut<'_, Box<dyn Echo>>;
    /// `parallel` dialers making `per` connections each, every one carrying one echo.
    fn setup(&self, parallel: usize, per: usize) -> Fut<'_, SetupResult>;
    /// The key exchange alone, where the stack has one worth timing apart.
    fn handshakes(&self, _parallel: usize, _per: usize) -> Option<Fut<'_, SetupResult>> {
        None
    }
    /// Stops both ends.
    fn shutdown(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }
}

/// Implements [`Stack`] for an environment whose inherent `throughput`, `rtt`,
/// `echo` and `setup` have the trait's signatures and that runs any number of
/// streams; `shutdown = name` forwards `Stack::shutdown` to its inherent `name`.
macro_rules! multi_stream_stack {
    ($env:ty $(, shutdown = $shutdown:ident)?) => {
        impl $crate::stack::Stack for $env {
            fn throughput(&self, streams: usize, bytes: u64) -> $crate::stack::Fut<'_, f64> {
                Box::pin(<$env>::throughput(self, streams, bytes))
            }
            fn streams(&self, _n: usize) -> bool {
                true
            }
            fn rtt(
                &self,
                warmup: usize,
                rounds: usize,
                size: usize,
            ) -> $crate::stack::Fut<'_, $crate::stats::RttResult> {
                Box::pin(<$env>::rtt(self, warmup, rounds, size))
            }
            fn echo(&self) -> $crate::stack::Fut<'_, Box<dyn $crate::echo::Echo>> {
                Box::pin(<$env>::echo(self))
            }
            fn setup(
                &self,
                parallel: usize,
                per: usize,
            ) -> $crate::stack::Fut<'_, $crate::stats::SetupResult> {
                Box::pin(<$env>::setup(self, parallel, per))
            }
            $(
                fn shutdown(self: Box<Self>) -> futures::future::BoxFuture<'static, ()> {
                    Box::pin(<$env>::$shutdown(*self))
                }
            )?
        }
    };
}
pub(crate) use multi_stream_stack;

/// Starts a stack's pair.
pub(crate) type StartFn = fn() -> Fut<'static, Box<dyn Stack>>;
/// Makes `n` idle connections (both ends in this process, at most `concurrency` set
/// up at once) and returns what keeps them open: the memory child's work.
pub(crate) type IdleFn = fn(usize, usize) -> Fut<'static, Box<dyn Any>>;

/// One stack the benchmark knows.
pub(crate) struct Kind {
    /// Its name on the command line (`--stacks`) and in JSON.
    pub(crate) name: &'static str,
    /// Its column title.
    pub(crate) title: &'static str,
    pub(crate) start: StartFn,
    pub(crate) idle: IdleFn,
}

/// Boxes a started stack.
pub(crate) fn boxed<S: Stack + 'static>(s: anyhow::Result<S>) -> anyhow::Result<Box<dyn Stack>> {
    Ok(Box::new(s?))
}

/// Every stack, in column order.
pub(crate) const KINDS: [Kind; 6] = [
    Kind {
        name: "devmux",
        title: "devmux",
        start: || Box::pin(async { boxed(crate::devmux::NetEnv::start().await) }),
        idle: |n, c| Box::pin(crate::devmux::idle_connections(n, c)),
    },
    Kind {
        name: "devmux-raw",
        title: "devmux raw",
        start: || Box::pin(async { boxed(crate::devmux::RawEnv::start().await) }),
        idle: |n, c| Box::pin(crate::devmux::idle_connections_raw(n, c)),
    },
    Kind {
        name: "libp2p",
        title: "rust-libp2p",
        start: || Box::pin(async { boxed(crate::libp2p_stack::Libp2pEnv::start().await) }),
        idle: |n, c| Box::pin(crate::libp2p_stack::idle_connections(n, c)),
    },
    Kind {
        name: "tcp",
        title: "raw TCP",
        start: || Box::pin(async { boxed(crate::tcp::TcpEnv::start().await) }),
        idle: |n, c| Box::pin(crate::tcp::idle_connections(n, c)),
    },
    Kind {
        name: "rlpx",
        title: "RLPx (crates/rlpx)",
        start: || Box::pin(async { boxed(crate::rlpx::RlpxEnv::start().await) }),
        idle: |n, c| Box::pin(crate::rlpx::idle_connections(n, c)),
    },
    Kind {
        name: "rlpx-net",
        title: "RLPx (Network)",
        start: || Box::pin(async { boxed(crate::rlpx::RlpxEnv::start_network().await) }),
        idle: |n, c| Box::pin(crate::rlpx::idle_connections_network(n, c)),
    },
];

/// The stack named `name`.
pub(crate) fn kind(name: &str) -> anyhow::Result<&'static Kind> {
    KINDS
        .iter()
        .find(|k| k.name == name)
        .ok_or_else(|| anyhow::anyhow!("no stack named {name}"))
}

/// The column title of `name` (the name itself if unknown).
pub(crate) fn title(name: &str) -> &str {
    kind(name).map_or(name, |k| k.title)
}
