//! The one error type of this crate.

use std::time::Duration;

use devmux_network::PeerId;

/// Everything that can go wrong syncing, relaying or producing blocks.
///
/// Variants naming a peer describe that peer's fault, and say what it costs the peer
/// (the sync and relay tasks apply it; see [`crate::Syncer`]): a lie is a
/// [`devmux_network::Penalty::Major`] and a disconnect (a forged seal a
/// [`devmux_network::Penalty::Fatal`]), a stall or a session lost
/// mid-request a [`devmux_network::Penalty::Minor`]; every one of them keeps the peer
/// out of the sync for a cooldown and sends its work to other peers. `Chain` (a storage
/// failure), `HeadMissing`, `Task` and `ShuttingDown` are local.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The chain store failed, or refused a block we built ourselves.
    #[error("chain: {0}")]
    Chain(#[from] devmux_chain::Error),
    /// Headers that do not link, break the chain's header rules, or do not fit the
    /// blocks whose bodies match them. Major penalty and disconnect.
    #[error("peer {peer}: invalid headers: {why}")]
    InvalidHeaders {
        /// The peer that served them.
        peer: PeerId,
        /// What is wrong.
        why: String,
    },
    /// A block whose seal is malformed or not a signer's (WIRE.md §7.1): a forgery, since
    /// an honest node relays only sealed blocks. Fatal penalty and disconnect.
    #[error("peer {peer}: forged block: {why}")]
    BadSeal {
        /// The peer that sent it.
        peer: PeerId,
        /// What is wrong with the seal.
        why: String,
    },
    /// Bodies or receipts that do not match their headers (transactions root, ommers
    /// hash, withdrawals root, receipts root). Major penalty and disconnect.
    #[error("peer {peer}: bodies or receipts do not match their headers: {why}")]
    InvalidBodies {
        /// The peer that served them.
        peer: PeerId,
        /// What is wrong.
        why: String,
    },
    /// Pooled transactions whose type or size differ from what the peer announced
    /// (`devp2p/caps/eth.md`, eth/68). Major penalty.
    #[error("peer {peer}: transactions differ from their announcement: {why}")]
    InvalidTransactions {
        /// The peer that sent them.
        peer: PeerId,
        /// What is wrong.
        why: String,
    },
    /// The peer's chain leaves ours more than [`devmux_chain::MAX_REORG_DEPTH`] blocks
    /// below our head: refused before anything of it is fetched, logged, and the peer is
    /// left out of the sync for a cooldown, without a penalty (an honest node on another
    /// branch sends this).
    #[error("peer {peer}: its chain branches off {depth} blocks below our head (at {ancestor}); deeper than the reorg bound")]
    ReorgTooDeep {
        /// The peer.
        peer: PeerId,
        /// Our head number minus the common ancestor's.
        depth: u64,
        /// The common ancestor's number.
        ancestor: u64,
    },
    /// The peer's chain has another block than the checkpoint at the checkpoint's height
    /// ([`devmux_chain::Chain::pin_checkpoint_blocking`]): it is on another chain. No
    /// penalty; it is left out of the sync for [`SyncConfig::bad_peer_cooldown`]
    /// (and asked again after it, in case it moved to our chain).
    ///
    /// [`SyncConfig::bad_peer_cooldown`]: crate::SyncConfig::bad_peer_cooldown
    #[error("peer {peer} has another block than the checkpoint at height {number}: it is on another chain")]
    OtherChain {
        /// The peer.
        peer: PeerId,
        /// The checkpoint's height.
        number: u64,
    },
    /// A request passed its deadline. Minor penalty.
    #[error("peer {peer}: no answer within {timeout:?}")]
    Stalled {
        /// The peer.
        peer: PeerId,
        /// The deadline.
        timeout: Duration,
    },
    /// The peer's session ended with a request in flight. Minor penalty.
    #[error("peer {peer} left with a request in flight")]
    PeerGone {
        /// The peer.
        peer: PeerId,
    },
    /// A request failed otherwise (a response that broke the request's terms, which the
    /// eth handler has already penalised, or a full send queue).
    #[error("peer {peer}: request failed: {source}")]
    Request {
        /// The peer.
        peer: PeerId,
        /// The eth error.
        source: Box<devmux_eth::Error>,
    },
    /// The peer does not have what it announced (its head, or the blocks it served
    /// headers of). No penalty.
    #[error("peer {peer} does not have {what}")]
    Lacking {
        /// The peer.
        peer: PeerId,
        /// What it lacks.
        what: String,
    },
    /// The peer's chain changed during the download: its next headers no longer link to
    /// the ones it served before. No penalty; the next round starts over.
    #[error("peer {peer}'s chain changed during the download")]
    Reorged {
        /// The peer.
        peer: PeerId,
    },
    /// No connected peer serves the bodies of these blocks.
    #[error("no peer serves the bodies of blocks {first}..={last}")]
    NoPeerServes {
        /// First block wanted.
        first: u64,
        /// Last block wanted.
        last: u64,
    },
    /// No peer served a block asked for by hash ([`crate::SyncHandle::fetch_block`]);
    /// `why` is the last peer's answer.
    #[error("block {hash}: no peer served it ({why})")]
    Unavailable {
        /// The block.
        hash: devmux_eth::alloy_primitives::B256,
        /// What the last peer asked did.
        why: String,
    },
    /// A block asked for by hash is more than `max` blocks past every block we have
    /// ([`crate::MAX_ANCESTRY`]): left to the sync rounds until they come closer.
    #[error("block {hash} is more than {max} blocks past every block we have")]
    AncestryTooLong {
        /// The block.
        hash: devmux_eth::alloy_primitives::B256,
        /// The bound.
        max: usize,
    },
    /// A producer was given a key that is not one of the chain's signers.
    #[error("{address} is not one of the chain's signers {signers:?}: blocks it sealed would be refused")]
    NotASigner {
        /// The key's address.
        address: devmux_eth::alloy_primitives::Address,
        /// The chain's signers.
        signers: Vec<devmux_eth::alloy_primitives::Address>,
    },
    /// The head's header is missing from the chain store (it is corrupt).
    #[error("head block {0} missing from the chain store")]
    HeadMissing(devmux_eth::alloy_primitives::B256),
    /// Our own budget for some work was spent for longer than the work may wait (see
    /// [`SyncConfig::root_check_slots`](crate::SyncConfig::root_check_slots)). Not the
    /// peer's fault: no penalty, no bench; the work is fetched and checked again.
    #[error("our {what} stayed over budget for {waited:?}")]
    Overloaded {
        /// Which work.
        what: &'static str,
        /// How long it waited.
        waited: std::time::Duration,
    },
    /// A background task died (panicked, or was cancelled with the runtime).
    #[error("background task failed: {0}")]
    Task(String),
    /// Sync is shutting down.
    #[error("sync is shutting down")]
    ShuttingDown,
}

impl Error {
    /// The peer whose fault this is, if any.
    pub fn peer(&self) -> Option<PeerId> {
        match self {
            Self::InvalidHeaders { peer, .. }
            | Self::BadSeal { peer, .. }
            | Self::InvalidBodies { peer, .. }
            | Self::InvalidTransactions { peer, .. }
            | Self::Stalled { peer, .. }
            | Self::PeerGone { peer }
            | Self::Request { peer, .. }
            | Self::Lacking { peer, .. }
            | Self::OtherChain { peer, .. }
            | Self::Reorged { peer } => Some(*peer),
            Self::Chain(_)
            | Self::ReorgTooDeep { .. }
            | Self::HeadMissing(_)
            | Self::NotASigner { .. }
            | Self::NoPeerServes { .. }
            | Self::Unavailable { .. }
            | Self::AncestryTooLong { .. }
            | Self::Overloaded { .. }
            | Self::Task(_)
            | Self::ShuttingDown => None,
        }
    }

    /// Maps a failed eth request to the peer's fault.
    pub(crate) fn from_request(peer: PeerId, error: devmux_eth::Error) -> Self {
        match error {
            devmux_eth::Error::Timeout(timeout) => Self::Stalled { peer, timeout },
            devmux_eth::Error::SessionClosed => Self::PeerGone { peer },
            source => Self::Request {
                peer,
                source: Box::new(source),
            },
        }
    }
}
