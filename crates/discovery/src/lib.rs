//! Discovery for devmux: the `discv5` crate run as a service, discv4 beside it ([`v4`],
//! on a UDP port of its own) and DNS node lists ([`dns`], EIP-1459), which find peers
//! and hand the dialer, through one filter, the ones this node can use. [`Discovery`]
//! runs whichever [`DiscoveryConfig`] asks for (discv5 unless [`DiscoveryConfig::v5`] is
//! off, discv4 with [`DiscoveryConfig::v4`], lists with [`DiscoveryConfig::dns`]).
//!
//! # What it does
//! - Builds the node's ENR from its one key ([`devmux_identity::NodeKey`]) with the keys
//!   of WIRE.md §4: `ip`/`ip6` set explicitly (never voted on), `udp`, `tcp` only when the
//!   RLPx server runs, `mux` only when the stream server runs, `eth` (`[[fork_hash,
//!   fork_next]]`, [`ForkId`]) always.
//! - Runs discv5 on one UDP socket, or two for dual stack, with bootnodes given as
//!   `enr:` text. The routing table keeps every valid record, whatever its stack or
//!   fork: third-party discv5 nodes may use us as a bootnode.
//! - Offers **dial candidates** ([`DialCandidate`]) on a bounded stream
//!   ([`Candidates`]): peers that advertise a stack this node runs (a node running one
//!   server never dials a node that runs only the other) and whose `eth` entry the
//!   caller's fork filter accepts. The filter applies here, at dial time, not to the
//!   table. A candidate is offered again only after
//!   [`reoffer_after`](DiscoveryConfig::reoffer_after) or when its ENR changes.
//! - Persists the table's ENRs to a text file, periodically and at shutdown, so a
//!   restarted node rejoins without bootnodes.
//!
//! # Tasks
//! Besides discv5's own tasks (socket send/receive, session handler, service):
//! - **events**: discv5 events → candidates (`Discovered` records from query responses,
//!   `SessionEstablished` peers, `NodeInserted` table entries);
//! - **lookups**: a lookup for our own id, then one for a random id every
//!   [`lookup_interval`](DiscoveryConfig::lookup_interval); each round offers the
//!   results and the table, and reseeds an empty table from bootnodes and stored ENRs;
//! - **persist**: writes the ENR file every
//!   [`persist_interval`](DiscoveryConfig::persist_interval).
//!
//! All stop on [`Discovery::shutdown`] (or when the parent
//! [`cancel`](DiscoveryConfig::cancel) token fires). Nothing here waits on a full
//! channel: candidates that do not fit are dropped and offered again later.
//!
//! # Example
//! ```no_run
//! use devmux_discovery::{Discovery, DiscoveryConfig, ForkHash, ForkId, Stack};
//! use devmux_identity::NodeKey;
//! use std::time::Duration;
//!
//! # async fn run() -> Result<(), devmux_discovery::Error> {
//! let key = NodeKey::generate();
//! let ours = ForkId { hash: ForkHash([0xfc, 0x64, 0xec, 0x04]), next: 0 };
//! let config = DiscoveryConfig::default()
//!     .with_listen("127.0.0.1:30303".parse().unwrap())
//!     .with_mux_tcp_port(Some(30303)) // the stream server runs on TCP 30303
//!     .with_eth(ours)
//!     .with_fork_filter(move |remote| remote.hash == ours.hash)
//!     .with_bootnodes(std::env::args().skip(1)) // `enr:…` texts
//!     .with_lookup_interval(Duration::from_secs(30))
//!     .with_persist_path(Some("data/discovery-enrs.txt".into()));
//! let mut discovery = Discovery::start(config, &key).await?;
//! println!("{}", discovery.local_enr_string());
//!
//! let mut candidates = discovery.take_candidates().expect("taken once");
//! while let Some(peer) = candidates.recv().await {
//!     match peer.stack {
//!         Stack::Mux => println!("dial {}", peer.multiaddr().expect("advertises mux")),
//!         Stack::Rlpx => println!("dial {}", peer.enode().expect("advertises tcp")),
//!     }
//! }
//! discovery.shutdown().await;
//! # Ok(()) }
//! ```

mod candidate;
mod config;
pub mod dns;
mod eth_entry;
#[doc(hidden)]
pub mod fuzzing;
pub mod probe;
mod service;
mod store;
#[cfg(test)]
mod tests;
pub mod v4;

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

pub use candidate::{
    mux_port, secp256k1_node_id, AddrScope, Candidates, DialCandidate, DialFilter, Rejection,
    MUX_ENR_KEY,
};
pub use config::{DiscoveryConfig, ForkFilterFn, Stack, V5Limits, DEFAULT_DISCOVERY_PORT};
pub use eth_entry::{
    decode_enr_value, encode_enr_value, fork_id_of, ForkHash, ForkId, ETH_ENR_KEY,
};
pub use service::{local_enr, Discovery};
pub use v4::{Discv4, V4Config};

/// The `enr` crate (0.14, the version discv5 uses), for code that handles records.
pub use enr;

/// An ENR with a secp256k1 (or ed25519) key, as discv5 stores them.
pub type Enr = discv5::Enr;

/// The records in an ENR file ([`DiscoveryConfig::persist_path`]), read as a starting
/// node reads them: a missing file is none, a bad line is skipped.
pub fn stored_enrs(path: &std::path::Path) -> std::io::Result<Vec<Enr>> {
    store::load(path)
}

/// Errors of the discovery crate. Nothing a remote node sends becomes one of these:
/// bad remote records are skipped (and never become candidates).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is inconsistent (families, ports, intervals).
    #[error("invalid discovery config: {0}")]
    Config(String),
    /// The node key could not be used for the ENR.
    #[error("the node key is not a valid secp256k1 key for the ENR")]
    InvalidKey,
    /// A UDP socket could not be bound.
    #[error("binding UDP {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: io::Error,
    },
    /// The local ENR could not be built (e.g. over the 300-byte limit).
    #[error("building the local ENR: {0}")]
    LocalEnr(String),
    /// A given ENR text (bootnode, `add_enr`) does not parse or verify.
    #[error("invalid ENR {text:?}…: {problem}")]
    InvalidEnr {
        /// The start of the text given.
        text: String,
        /// What is wrong with it.
        problem: String,
    },
    /// discv5 refused to add a record to its table (no UDP address of our family,
    /// bucket full, …).
    #[error("ENR not added to the table: {0}")]
    Rejected(&'static str),
    /// discv5 failed to start or to run a query.
    #[error("discv5: {0}")]
    Discv5(String),
    /// The ENR file could not be read or written.
    #[error("ENR file {path}: {source}")]
    Persist {
        /// The file's path.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// An `eth` ENR entry does not decode.
    #[error("malformed eth ENR entry: {0}")]
    InvalidEthEntry(alloy_rlp::Error),
    /// DNS discovery (EIP-1459) could not start: a configured URL does not parse, the
    /// config is inconsistent, or the resolver could not be set up. Bad data from DNS
    /// servers never becomes this: it is skipped.
    #[error("DNS discovery: {0}")]
    Dns(#[from] dns::DnsError),
    /// A discv4 datagram was dropped (size, hash, RLP, expiration, signature). Nothing
    /// else happens to its source: until the signature is recovered it is unauthenticated.
    #[error("discv4 packet dropped: {0}")]
    V4Packet(v4::packet::PacketProblem),
    /// An `enode://` URL given as a discv4 bootnode or ping target does not parse.
    #[error("invalid enode URL {text:?}: {problem}")]
    InvalidEnode {
        /// The text given.
        text: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The ENR given to the discv4 service is not ours (another key) or does not
    /// advertise the discv4 socket's UDP port.
    #[error("the ENR for discv4 does not match: {0}")]
    V4Enr(String),
    /// A discv4 node did not answer in time. It is not added to the table; a table
    /// entry that fails its liveness ping is replaced.
    #[error("no discv4 reply from {0}")]
    V4Timeout(SocketAddr),
    /// The bounded table of outstanding discv4 requests is full: the request was not
    /// sent. Nothing happens to the peer.
    #[error("too many outstanding discv4 requests")]
    V4Busy,
    /// The discv4 service has shut down.
    #[error("the discv4 service has stopped")]
    V4Stopped,
}
