//! devmux end-to-end tests: one binary, real sockets on 127.0.0.1, port 0.

// Test helpers outside #[test] fns unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used)]

mod admission;
mod contract;
mod counters;
mod dual;
mod engine;
mod eth;
mod eth_test_suite;
mod ethereumjs;
mod fuzz_corpus;
mod geth;
mod geth_interop;
mod go_libp2p;
mod libp2p_interop;
mod negotiation;
mod netns;
mod p2p;
mod peering;
mod relay;
mod rlpx;
mod sync;
