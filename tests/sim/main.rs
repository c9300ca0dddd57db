//! A deterministic simulation of the peer pool, dialer and sync on turmoil's simulated
//! time and network (feature `sim`): the real stream stack (mss → Noise → Yamux,
//! admission, supervisor, dialer, pool), chain store, eth handler and sync run on
//! simulated hosts; discovery is a feed of the hosts' addresses.
//!
//! `cargo test -p devmux-tests --features sim --test sim`. Every random choice comes
//! from one seed, `DEVMUX_SIM_SEED` (default [`harness::DEFAULT_SEED`]); a failure
//! prints the command that replays it.

mod harness;
mod scenarios;
