//! The chain a devmux node serves from: a redb store of blocks with fork choice, a
//! transaction pool, chain specs (the devnet of WIRE.md §7, mainnet, sepolia, hoodi, a
//! go-ethereum genesis file) and block validation without execution.
//!
//! - [`Chain`] stores headers, bodies, receipts and total difficulty, keeps the
//!   canonical chain and its head, validates blocks on insert ([`validate`]: the
//!   devnet's sealed rules, or proof of stake's) and follows the heaviest chain, and
//!   after the merge (where blocks add no difficulty) the longer one, reorganising when
//!   such a fork arrives (a tie keeps the current head). Inserts are atomic batches;
//!   reads and writes run off the async reactor ([`blocking`]; feature `sim` lets a
//!   deterministic simulation run them inline). It implements
//!   [`devmux_eth::ChainReader`]. On a proof-of-stake chain a consensus layer may name
//!   the head instead ([`Chain::set_forkchoice`], the Engine API's
//!   `engine_forkchoiceUpdated`); a finalized block and an operator's checkpoint
//!   ([`Chain::pin_checkpoint_blocking`]) are never reorganised away.
//! - [`Pool`] is the bounded transaction pool; it implements [`devmux_eth::TxPool`].
//! - [`devnet`] derives the devnet: genesis, dev keys and blocks 1…N, identically on
//!   every node. Print its genesis hash with
//!   `cargo run -p devmux-chain --example devnet-genesis`.
//! - [`networks`] gives mainnet, sepolia and hoodi ([`ChainSpec::mainnet`], …,
//!   [`networks::by_name`]) with go-ethereum's fork schedules, genesis headers, bootnodes
//!   and DNS lists; [`genesis`] reads a go-ethereum genesis file
//!   ([`ChainSpec::from_genesis_json`], [`genesis::load`]) into a spec whose genesis hash
//!   and fork id are the ones `geth init` gives; [`forks`] is the fork schedule both
//!   fill in.
//! - [`import`] reads chain files in go-ethereum's export format (`geth export`,
//!   `devmux import`): headers and bodies validated and stored, receipts fetched from
//!   peers afterwards.
//!
//! ```
//! use devmux_chain::{devnet::Devnet, Chain, ChainSpec};
//!
//! # fn main() -> Result<(), devmux_chain::Error> {
//! let dir = tempfile::tempdir().unwrap();
//! let chain = Chain::open(dir.path().join("chain.redb"), ChainSpec::devnet())?;
//! let devnet = Devnet::new()?;
//! // Import devnet blocks 1..=100 in one atomic batch.
//! let blocks: Vec<_> = devnet.blocks(100).collect();
//! let outcome = chain.insert_blocks_blocking(&blocks)?;
//! assert_eq!(outcome.head.number, 100);
//! assert_eq!(chain.head().total_difficulty, alloy_primitives::U256::from(101));
//! # Ok(())
//! # }
//! ```

pub mod blocking;
mod chain;
pub mod devnet;
mod error;
pub mod forks;
pub mod genesis;
pub mod import;
pub mod networks;
mod pool;
pub mod seal;
pub mod signing;
mod spec;
#[cfg(test)]
mod testing;
pub mod validate;

pub use chain::{
    BlockRef, Chain, ChainHead, Forkchoice, HeadUpdate, InsertOutcome, PendingReceipts,
};
pub use error::Error;
pub use pool::{intrinsic_gas, to_block_form, Pool, PoolConfig, BAD_SIGNATURE_MEMORY};
pub use spec::{
    BlockWithReceipts, ChainSpec, Consensus, HeaderRules, MAX_FUTURE_SECS, MAX_POS_GAS_LIMIT,
    MAX_REORG_DEPTH, MAX_WITHDRAWALS,
};
