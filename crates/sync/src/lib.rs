//! Chain sync, the devnet block producer, and block and transaction relay: what makes
//! devmux nodes agree on one chain and spread blocks and transactions, on either server
//! (it only talks to [`devmux_eth::EthPeer`]s and never knows which server carries
//! them).
//!
//! - **Sync** ([`Syncer::spawn`]): when a peer's head is ahead of ours (its Status or
//!   announced total difficulty or number is higher, and we do not have its head
//!   block), a *round* downloads its chain: the head header by hash, the common ancestor
//!   (one request when the peer's chain extends ours, else a binary search), then a
//!   pipeline of headers (up to 1024 per request, from that peer, each batch checked to
//!   link), bodies and receipts (in parallel from every peer that may have them, each
//!   checked against its header: transactions root, ommers hash, withdrawals root,
//!   receipts root) and batched atomic inserts (the chain validates once more). A peer
//!   that stalls (request deadline), leaves, or lies (headers that do not link, bodies
//!   or receipts that do not match) is punished ([`Error`] says how) and benched, and its
//!   work goes to other peers; a failed round starts over from what was inserted. The
//!   progress is [`SyncStatus`] on a watch channel ([`SyncHandle::subscribe`]), for
//!   `eth_syncing` and metrics.
//! - **Fetch by hash** ([`SyncHandle::fetch_block`]): a block no peer announces as its
//!   head (a consensus layer named it) and the ancestors of it we lack: headers by hash
//!   backwards until a block we have, then bodies and receipts, validated as a round's.
//!   On a chain whose head a consensus layer names
//!   ([`devmux_chain::Chain::follows_consensus_layer`]) rounds still run: they store
//!   peers' chains, and the head moves only when the consensus layer says. A peer whose
//!   chain has another block than the operator's checkpoint at its height is on another
//!   chain: nothing of it is fetched, and it is left out for a cooldown, unpenalised.
//! - **Block relay**: a new head (produced, synced, or pushed to us) goes to the peers
//!   that do not know it: on eth/66–68 a full `NewBlock` to √ of them and
//!   `NewBlockHashes` to the rest, on eth/69 a `BlockRangeUpdate`. Never back to the
//!   peer it came from: each peer has a bounded LRU set of the blocks it knows.
//!   `NewBlock`s whose parent we have are imported at once (their receipts fetched from
//!   the sender); any other announcement of an unknown head wakes the sync, which
//!   fetches what we lack, and the new head is relayed in turn.
//! - **Transaction relay**: new pool transactions (from RPC, peers or fetches) go whole
//!   (`Transactions`) to √ of the peers that lack them and as `NewPooledTransactionHashes`
//!   announcements (types, sizes, hashes on eth/68+) to the rest; announced transactions
//!   we lack are fetched with `GetPooledTransactions` and checked against their
//!   announced type and size. Per-peer bounded known sets make sure no transaction is
//!   sent twice to a peer, nor back to the peer it came from (the eth reader reports a
//!   `Transactions` message as [`devmux_eth::EthEvent::TransactionsIncoming`] before the
//!   pool sees it; one it had to drop is fetched from its sender instead). Every queue
//!   is bounded and nothing is fetched while the pool is full, so a flood cannot grow
//!   anything past its bounds.
//! - **Receipts backfill**: blocks stored without their receipts (imported from a chain
//!   file: [`devmux_chain::import`]) get them from peers that serve those blocks,
//!   lowest first, up to 128 blocks a request, each block's checked against its
//!   receipts root before it is stored; a peer whose receipts do not match is punished
//!   as one whose bodies do not.
//! - **Block producer** ([`Producer`]): every interval, a devnet block (WIRE.md §7) on our
//!   head from the pool's transactions, inserted and relayed.
//!
//! # Tasks
//!
//! [`Syncer::spawn`] starts five tasks that share the chain, the pool, the eth peers and
//! the per-peer known sets, and stop together on [`SyncHandle::shutdown`]:
//!
//! - **sync**: finds the best peer ahead of us and runs rounds against it; a round's
//!   header, body and insert stages run concurrently, joined by bounded channels, with
//!   body requests spread over peers (at most
//!   [`SyncConfig::max_requests_per_peer`] each);
//! - **relay**: reads eth events and the pool's new transactions; records what each
//!   peer knows, wakes the sync, hands `NewBlock`s to the importer and announcements to
//!   the fetcher (dropping them when those queues are full), and relays pool
//!   transactions in batches;
//! - **block import**: imports `NewBlock`s on known parents and relays them, peers
//!   concurrently and each peer's blocks in order, at most
//!   [`SyncConfig::block_imports_per_peer`] per peer;
//! - **transaction fetch**: `GetPooledTransactions` for announced transactions, a
//!   bounded number at once;
//! - **receipts backfill**: one request at a time, while blocks wait for receipts
//!   (otherwise it looks again every 10 s).
//!
//! A [`Producer`] adds one task. Every request has a deadline
//! ([`SyncConfig::request_timeout`]) and is paced per peer
//! ([`SyncConfig::request_rate`], under what the eth handler serves by default, since
//! it drops requests over its limit unanswered); nothing a peer sends is trusted before
//! it is checked, and a peer's fault never stops the tasks. Root checks of bodies and
//! receipts run on the blocking pool under a budget (node-wide slots, one per peer, a
//! deadline; [`SyncConfig::root_check_slots`]); running out of it is our overload,
//! never the peer's fault ([`Error::Overloaded`]).
//!
//! Feature `sim` (off by default) is for the deterministic simulation in `tests/sim`:
//! `seed_rng` makes the peer choices (which peers are asked first, which get full blocks
//! and transactions) draw from a seeded generator on the calling thread, and it turns
//! on devmux-chain's `sim`, so that store work can run inline.
//!
//! # Use
//!
//! ```no_run
//! use std::time::Duration;
//! use devmux_chain::{Chain, ChainSpec, Pool, PoolConfig};
//! use devmux_eth::{protocols, EthConfig, EthHandler};
//! use devmux_network::{Network, NetworkConfig, NodeKey, Registrar};
//! use devmux_sync::{Producer, SyncConfig, Syncer};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let chain = Chain::open_async("chain.redb", ChainSpec::devnet()).await?;
//! let pool = Pool::new(PoolConfig::devnet());
//! // Relay announces the pool to new peers itself, through its known sets.
//! let eth_config = EthConfig::default().with_announce_pool_on_connect(false);
//! let (handler, eth_peers) = EthHandler::new(chain.clone(), pool.clone(), eth_config);
//! let mut registrar = Registrar::new();
//! registrar.session(protocols(), handler)?;
//! let network = Network::start(NetworkConfig::default(), NodeKey::generate(), registrar).await?;
//!
//! let sync = Syncer::spawn(chain, pool, eth_peers, SyncConfig::default());
//! // `--produce-blocks 2`, sealing with the default signer's key (dev key 0):
//! let signer = devmux_chain::devnet::dev_key(0)?;
//! let producer = Producer::new(&sync, signer)?.spawn(Duration::from_secs(2));
//!
//! // `eth_syncing`:
//! match sync.status().eth_syncing() {
//!     None => println!("false"),
//!     Some((starting, current, highest)) => println!("{starting} {current} {highest}"),
//! }
//! producer.stop().await;
//! sync.shutdown().await;
//! network.shutdown().await;
//! # Ok(()) }
//! ```

mod ancestry;
mod backfill;
mod blocks;
mod budget;
mod checks;
mod config;
mod download;
mod error;
mod fetch;
mod known;
mod producer;
mod relay;
mod rng;
mod shared;
mod status;
mod sync;

#[cfg(feature = "sim")]
pub use rng::seed_rng;

pub use ancestry::MAX_ANCESTRY;
pub use config::SyncConfig;
pub use error::Error;
pub use producer::{Producer, ProducerHandle};
pub use status::{SyncStats, SyncStatus};
pub use sync::{SyncHandle, Syncer};
