//! Settings of sync and relay.

use std::time::Duration;

/// Settings of sync, block relay and transaction relay. A plain struct: `Default` plus
/// `with_*` setters.
///
/// ```
/// use std::time::Duration;
/// use devmux_sync::SyncConfig;
///
/// let config = SyncConfig::default()
///     .with_request_timeout(Duration::from_secs(3))
///     .with_bodies_per_request(64)
///     .with_request_rate(40, 80);
/// assert_eq!(config.headers_per_request, 1024);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncConfig {
    /// Headers asked for per `GetBlockHeaders`. Default 1024, the eth soft limit
    /// (WIRE.md §3); more is never asked.
    pub headers_per_request: u64,
    /// Blocks whose bodies (then receipts) are asked for per request. Default 256, the
    /// eth serving limit (WIRE.md §3); a peer that stops at its 2 MiB soft limit answers
    /// a prefix and the rest is asked again.
    pub bodies_per_request: usize,
    /// Deadline of every request sync and relay make; a peer that misses it has
    /// stalled. Default 5 s.
    pub request_timeout: Duration,
    /// Body requests in flight to one peer at once. Default 2.
    pub max_requests_per_peer: usize,
    /// Requests per second sent to one peer, on average (sync, block import and
    /// transaction fetches together); more wait their turn. Default 80, with
    /// [`SyncConfig::request_burst`] 160: under the eth handler's default serving limits
    /// (100 per second, burst 200; [`devmux_eth::EthConfig::request_rate`]), which drop
    /// the requests above them unanswered. Keep it under what peers serve.
    pub request_rate: u32,
    /// Requests one peer may be sent in a burst beyond the average. Default 160.
    pub request_burst: u32,
    /// Header batches (of up to [`SyncConfig::headers_per_request`]) waiting for their
    /// bodies, and downloaded batches waiting to be inserted: the pipeline's depth.
    /// Default 2.
    pub pipeline_depth: usize,
    /// How often sync looks for a peer ahead of us when nothing tells it to.
    /// Default 1 s.
    pub poll_interval: Duration,
    /// How long a peer that lied stays out of the sync (it is also disconnected).
    /// Default 120 s.
    pub bad_peer_cooldown: Duration,
    /// How long a peer that stalled or left stays out of the sync. Default 10 s.
    pub stall_cooldown: Duration,
    /// How long a peer whose round failed without its fault (it lacked blocks, its
    /// chain moved) waits before it is the sync target again. Default 1 s.
    pub retry_cooldown: Duration,
    /// Block hashes remembered per peer as known to it. Default 1024 (go-ethereum's
    /// `maxKnownBlocks`).
    pub known_blocks_per_peer: usize,
    /// Transaction hashes remembered per peer as known to it. Default 32768
    /// (go-ethereum's `maxKnownTxs`).
    pub known_txs_per_peer: usize,
    /// New pool transactions are relayed in batches this often. Default 10 ms.
    pub tx_batch_interval: Duration,
    /// Pool transactions waiting to be relayed; beyond this, new ones are not relayed
    /// (the pool's own announcement channel is bounded too). Default 8192.
    pub max_pending_relay: usize,
    /// Full transactions are broadcast only up to this encoded size; larger ones, and
    /// blob transactions, are only announced. Default 4096 bytes (go-ethereum's
    /// `txMaxBroadcastSize`).
    pub max_broadcast_tx_size: u64,
    /// `GetPooledTransactions` requests in flight at once, over all peers. Default 16.
    pub max_tx_fetches: usize,
    /// Announced transaction hashes being fetched at once; announcements beyond this
    /// are dropped. Default 8192.
    pub max_tx_fetch_hashes: usize,
    /// Announcement messages waiting for the fetcher; more are dropped. Default 64.
    pub tx_fetch_queue: usize,
    /// Whether relay announces the whole pool to a peer when its session starts (as
    /// go-ethereum does). Turn the eth handler's own
    /// [`devmux_eth::EthConfig::announce_pool_on_connect`] off when this is on, so
    /// that every transaction sent goes through relay's per-peer bookkeeping.
    /// Default true.
    pub announce_pool_on_connect: bool,
    /// `NewBlock` messages waiting to be imported; more are dropped (sync catches up on
    /// the peer's head instead). Default 16.
    pub block_import_queue: usize,
    /// `NewBlock`s one peer may have queued or importing at once; more from it are
    /// dropped, so that no peer holds more than its share of the import. Its blocks are
    /// imported in the order they came. Default 2.
    pub block_imports_per_peer: usize,
    /// Root checks (bodies and receipts hashed against their headers) running at once,
    /// node-wide, on the blocking pool; a peer has one at a time. A check that cannot
    /// start and finish within [`SyncConfig::request_timeout`] stops and is retried,
    /// without a penalty. Default: the number of CPUs.
    pub root_check_slots: usize,
}

impl Default for SyncConfig {
    fn default() -> Self {
        Self {
            headers_per_request: 1024,
            bodies_per_request: 256,
            request_timeout: Duration::from_secs(5),
            max_requests_per_peer: 2,
            request_rate: 80,
            request_burst: 160,
            pipeline_depth: 2,
            poll_interval: Duration::from_secs(1),
            bad_peer_cooldown: Duration::from_secs(120),
            stall_cooldown: Duration::from_secs(10),
            retry_cooldown: Duration::from_secs(1),
            known_blocks_per_peer: 1024,
            known_txs_per_peer: 32768,
            tx_batch_interval: Duration::from_millis(10),
            max_pending_relay: 8192,
            max_broadcast_tx_size: 4096,
            max_tx_fetches: 16,
            max_tx_fetch_hashes: 8192,
            tx_fetch_queue: 64,
            announce_pool_on_connect: true,
            block_import_queue: 16,
            block_imports_per_peer: 2,
            root_check_slots: std::thread::available_parallelism().map_or(2, |n| n.get()),
        }
    }
}

impl SyncConfig {
    /// Sets the headers asked for per request (at most 1024 are).
    pub fn with_headers_per_request(mut self, headers: u64) -> Self {
        self.headers_per_request = headers;
        self
    }

    /// Sets the blocks asked for per bodies or receipts request.
    pub fn with_bodies_per_request(mut self, bodies: usize) -> Self {
        self.bodies_per_request = bodies;
        self
    }

    /// Sets the deadline of every request.
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Sets the per-peer request rate (per second) and burst.
    pub fn with_request_rate(mut self, rate: u32, burst: u32) -> Self {
        self.request_rate = rate;
        self.request_burst = burst;
        self
    }

    /// Sets how often sync looks for a peer ahead of us unprompted.
    pub fn with_poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// Sets how often new pool transactions are relayed.
    pub fn with_tx_batch_interval(mut self, interval: Duration) -> Self {
        self.tx_batch_interval = interval;
        self
    }

    /// Sets whether a new session starts with an announcement of the pool.
    pub fn with_announce_pool_on_connect(mut self, announce: bool) -> Self {
        self.announce_pool_on_connect = announce;
        self
    }

    /// Headers per request, within the eth limit.
    pub(crate) fn header_batch(&self) -> u64 {
        self.headers_per_request
            .clamp(1, devmux_eth::limits::MAX_HEADERS as u64)
    }

    /// Blocks per bodies request, within the eth serving limit.
    pub(crate) fn body_batch(&self) -> usize {
        self.bodies_per_request
            .clamp(1, devmux_eth::limits::MAX_BODIES_SERVE)
    }
}
