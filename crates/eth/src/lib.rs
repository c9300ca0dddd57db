//! The Ethereum wire protocol, eth/66 to eth/70, as devmux speaks it on both of its
//! servers (WIRE.md §3): the messages, and the session handler that speaks them.
//!
//! - **Messages** ([`message`], [`status`], [`blocks`], [`transactions`],
//!   [`receipts`]): every eth/66–70 message with a strict RLP codec. [`EthMessage`] is the
//!   entry point: [`EthMessage::decode`] takes the `(code, payload)` frames a transport
//!   delivers (stream or RLPx capability alike) and [`EthMessage::encode_for`] produces
//!   them. Headers, transactions and receipts are alloy-consensus types ([`primitives`]).
//! - **Versions** ([`EthVersion`]): protocol ids (`/eth/68/1.0.0`), capabilities, message
//!   counts, and which messages each version has.
//! - **Fork id** ([`forkid`]): EIP-2124 with EIP-6122 timestamp forks; [`ForkFilter`]
//!   computes ours and validates a peer's.
//! - **Traits** ([`ChainReader`], [`TxPool`]): what the eth handler serves from;
//!   `devmux-chain` implements them.
//! - **Limits** ([`limits`]): serving soft limits and decoding hard caps.
//! - **The handler** ([`EthHandler`], [`EthConfig`], [`protocols`]): a session protocol
//!   for `devmux-network`'s registrar, registered under `/eth/70/1.0.0` …
//!   `/eth/66/1.0.0` (on RLPx the capabilities `eth/70` … `eth/66`). It runs on both
//!   ends of every connection and never knows which server carries it. Per session it
//!   sends our Status at once, requires the peer's within 5 s and checks network id,
//!   version, genesis and fork id (a mismatch disconnects with `SubprotocolError`);
//!   then it serves `GetBlockHeaders`, `GetBlockBodies`, `GetReceipts` and
//!   `GetPooledTransactions` from the chain and the pool within the soft limits
//!   (1024 headers, 256 bodies or receipt lists, 2 MiB; on eth/70 a block's receipts
//!   are cut at 2 MiB and served in parts, EIP-7975), feeds `Transactions` to the
//!   pool, records the peer's head from announcements, and reports everything as
//!   [`EthEvent`]s. Peer input is hostile: requests are rate limited per peer (token
//!   bucket) and served one at a time per peer; malformed messages, unsolicited
//!   responses and floods are penalised; every queue is bounded and every wait has a
//!   deadline. See [`EthHandler`] for the rules and its tasks.
//! - **Peers** ([`EthPeers`], [`EthPeer`]): the registry of established sessions, and
//!   each session's typed request API for sync and relay:
//!   [`EthPeer::get_block_headers`], [`EthPeer::get_block_bodies`],
//!   [`EthPeer::get_receipts`] and [`EthPeer::get_block_receipts`] (which on eth/70
//!   fetch a block sent in parts whole, checking each part against the block's bounds
//!   first), [`EthPeer::get_pooled_transactions`] (request ids matched, deadlines,
//!   cancellation by dropping the future, bounded requests in flight) and
//!   [`EthPeer::send`] for announcements.
//!
//! # Tasks
//!
//! Per eth session: the handler's own task reads (and never waits on the others), a
//! server task answers requests one at a time, an importer task feeds the pool, and a
//! writer task writes. They end together with the session. Nothing else runs in the
//! background.
//!
//! # Registering the handler
//!
//! ```no_run
//! use devmux_eth::{protocols, ChainReader, EthConfig, EthEvent, EthHandler, GetBlockHeaders, TxPool};
//! use devmux_network::{Network, NetworkConfig, NodeKey, Registrar};
//!
//! async fn run<C: ChainReader, P: TxPool>(chain: C, pool: P) -> Result<(), Box<dyn std::error::Error>> {
//!     let (handler, peers) = EthHandler::new(chain, pool, EthConfig::default().with_network_id(1337));
//!     let mut registrar = Registrar::new();
//!     registrar.session(protocols(), handler)?;
//!     let network = Network::start(NetworkConfig::default(), NodeKey::generate(), registrar).await?;
//!
//!     // Other code (sync, relay) follows sessions through events and the registry.
//!     let mut events = peers.subscribe();
//!     while let Ok(event) = events.recv().await {
//!         if let EthEvent::StatusExchanged { peer, .. } = event {
//!             let Some(peer) = peers.get(&peer) else { continue };
//!             let request = GetBlockHeaders { start: 1u64.into(), limit: 64, skip: 0, reverse: false };
//!             let headers = peer.get_block_headers(request).await?;
//!             println!("{} sent {} headers", peer.peer_id(), headers.len());
//!         }
//!     }
//!     network.shutdown().await;
//!     Ok(())
//! }
//! ```
//!
//! # The codec on its own
//!
//! ```
//! use devmux_eth::{EthMessage, EthVersion, Status, ChainStatus, ForkFilter, Head};
//! use alloy_primitives::{B256, U256};
//!
//! let genesis = B256::repeat_byte(1);
//! let filter = ForkFilter::new(genesis, 0, [], [], Head::default());
//! let chain = ChainStatus {
//!     genesis,
//!     head_hash: genesis,
//!     head_number: 0,
//!     head_timestamp: 0,
//!     total_difficulty: U256::from(1),
//!     earliest: 0,
//!     fork_id: filter.current(),
//!     fork_filter: filter,
//! };
//! // Both sides send Status first; the version decides its shape.
//! let ours = EthMessage::Status(Status::new(EthVersion::Eth69, 1337, &chain));
//! let (code, payload) = ours.encode_for(EthVersion::Eth69).unwrap();
//! let EthMessage::Status(theirs) = EthMessage::decode(EthVersion::Eth69, code, &payload).unwrap()
//! else { unreachable!() };
//! assert_eq!(theirs.genesis(), genesis);
//! assert!(chain.fork_filter.validate(theirs.fork_id()).is_ok());
//! ```

pub mod blocks;
mod bounds;
mod codec;
mod config;
mod error;
pub mod forkid;
mod handler;
pub mod limits;
pub mod message;
mod peer;
pub mod primitives;
mod ratelimit;
mod receipt_pages;
pub mod receipts;
pub mod status;
mod traits;
pub mod transactions;
mod version;

pub use blocks::{
    BlockBodies, BlockHashNumber, BlockHashOrNumber, BlockHeaders, GetBlockBodies, GetBlockHeaders,
    NewBlock, NewBlockHashes,
};
pub use config::{protocols, protocols_for, EthConfig, LARGE_MESSAGE};
pub use error::Error;
pub use forkid::{ForkFilter, ForkHash, ForkId, ForkIdError, Head};
pub use handler::EthHandler;
pub use limits::DecodeLimits;
pub use message::{EthMessage, MessageId, RequestPair};
pub use peer::{EthEvent, EthPeer, EthPeers, PeerHead};
pub use primitives::{
    Block, BlockBody, Header, PooledTransaction, Receipt, ReceiptWithBloom, TransactionSigned,
    TxType,
};
pub use receipt_pages::ReceiptsQuery;
pub use receipts::{logs_bloom, receipts_root, GetReceipts, Receipts};
pub use status::{BlockRangeUpdate, ChainStatus, Status, StatusWithRange, StatusWithTd};
pub use traits::{ChainReader, TxPool};
pub use transactions::{
    GetNodeData, GetPooledTransactions, NewPooledTransactionHashes, NodeData, PooledTransactions,
    Transactions, TxAnnouncement,
};
pub use version::{EthVersion, CAPABILITY_NAME, ETH66_MESSAGE_COUNT, ETH69_MESSAGE_COUNT};

// Re-exported so that users of the messages need not pin alloy versions themselves.
pub use alloy_consensus;
pub use alloy_eips;
pub use alloy_primitives;
pub use alloy_rlp;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod session_tests;
#[cfg(test)]
mod vectors;
