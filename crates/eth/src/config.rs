//! Settings of the eth handler, and the session protocols it is registered under.

use std::time::Duration;

use devmux_network::SessionProtocol;

use crate::limits::DecodeLimits;
use crate::EthVersion;

/// The session protocols of every eth version devmux speaks, highest first:
/// `/eth/70/1.0.0` and `/eth/69/1.0.0` (18 message ids each) … `/eth/66/1.0.0` (17),
/// ready for [`devmux_network::Registrar::session`]. On RLPx they are the capabilities
/// `eth/70` … `eth/66` (WIRE.md §1, §2).
pub fn protocols() -> Vec<SessionProtocol> {
    protocols_for(&EthVersion::ALL)
}

/// The session protocols of `versions` only, highest first and without duplicates: a
/// node that should speak a subset of the versions (tests, or a peer that must not
/// negotiate eth/70) registers these instead of [`protocols`].
pub fn protocols_for(versions: &[EthVersion]) -> Vec<SessionProtocol> {
    let mut versions = versions.to_vec();
    versions.sort_unstable_by(|a, b| b.cmp(a));
    versions.dedup();
    versions
        .into_iter()
        // The ids are constants that parse; a failure here would be a bug in
        // `EthVersion::protocol_id`, caught by this module's tests.
        .filter_map(|v| SessionProtocol::new(v.protocol_id(), v.message_count()).ok())
        .collect()
}

/// Settings of the eth handler. A plain struct: `Default` plus `with_*` setters; the node
/// crate maps its configuration file onto it.
///
/// ```
/// use std::time::Duration;
/// use devmux_eth::EthConfig;
///
/// let config = EthConfig::default()
///     .with_network_id(1337)
///     .with_request_timeout(Duration::from_secs(5))
///     .with_request_rate(200, 400);
/// assert_eq!(config.status_timeout, Duration::from_secs(5));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EthConfig {
    /// The network id sent in Status and required of peers. Default 1337, the devnet
    /// (WIRE.md §7).
    pub network_id: u64,
    /// How long a session waits for the peer's Status, counted from the session's
    /// start. Default 5 s: what go-ethereum and ethereumjs allow (WIRE.md §6).
    pub status_timeout: Duration,
    /// Deadline of each request we send, from the call to the response (including the
    /// wait for an in-flight slot); also the deadline for serving one request from the
    /// chain or the pool, and for writing one message to the peer. Default 10 s.
    pub request_timeout: Duration,
    /// Requests we may have in flight to one peer at once; more wait for a slot.
    /// Default 16.
    pub max_inflight_requests: usize,
    /// Requests per second one peer may send us, on average. Default 100.
    pub request_rate: u32,
    /// Requests one peer may send in a burst beyond the average. Default 200.
    pub request_burst: u32,
    /// Admitted requests of one peer waiting to be served (they are served one at a
    /// time per peer); a request arriving when the queue is full is refused like one
    /// over the rate. Default 64.
    pub max_queued_requests: usize,
    /// Announcement and broadcast messages (`NewBlockHashes`, `NewBlock`,
    /// `Transactions`, `NewPooledTransactionHashes`, `BlockRangeUpdate`) per second one
    /// peer may send, on average, with twice as many in a burst; more are dropped.
    /// Default 100.
    pub announcement_rate: u32,
    /// [`crate::EthEvent`]s buffered for subscribers; a subscriber that falls further
    /// behind misses the oldest (and is told how many). Default 256.
    pub event_capacity: usize,
    /// Whether a new session starts by announcing every pooled transaction to the peer
    /// (`NewPooledTransactionHashes`), as go-ethereum does. Default true.
    pub announce_pool_on_connect: bool,
    /// Signature recoveries the transactions one peer sends may cost us per second (with
    /// bursts of as many); transactions beyond it wait. Default 1000.
    pub recovery_rate: u32,
    /// Limits on the inner lists of received blocks, bodies and receipts, from the chain
    /// (transactions and receipts per block from its gas limit, ommers, withdrawals).
    /// Default: the devnet's ([`DecodeLimits::devnet`]).
    pub decode_limits: DecodeLimits,
    /// Bytes of large messages (from [`LARGE_MESSAGE`] up) that all sessions together
    /// may be decoding and handling at once. A session whose message does not fit waits
    /// (reading nothing more from its peer) until others finish: backpressure, not a
    /// penalty, since our being busy is not the peer's fault. Default 32 MiB.
    pub large_message_budget: usize,
}

/// A message of at least this many bytes (256 KiB) counts against
/// [`EthConfig::large_message_budget`]; smaller ones are bounded by the per-peer rates
/// alone.
pub const LARGE_MESSAGE: usize = 256 * 1024;

impl Default for EthConfig {
    fn default() -> Self {
        Self {
            network_id: 1337,
            status_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            max_inflight_requests: 16,
            request_rate: 100,
            request_burst: 200,
            max_queued_requests: 64,
            announcement_rate: 100,
            event_capacity: 256,
            announce_pool_on_connect: true,
            recovery_rate: 1000,
            decode_limits: DecodeLimits::devnet(),
            large_message_budget: 32 * 1024 * 1024,
        }
    }
}

impl EthConfig {
    /// Sets the network id.
    pub fn with_network_id(mut self, network_id: u64) -> Self {
        self.network_id = network_id;
        self
    }

    /// Sets the Status deadline.
    pub fn with_status_timeout(mut self, timeout: Duration) -> Self {
        self.status_timeout = timeout;
        self
    }

    /// Sets the per-request deadline.
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Sets how many requests may be in flight to one peer.
    pub fn with_max_inflight_requests(mut self, max: usize) -> Self {
        self.max_inflight_requests = max;
        self
    }

    /// Sets the per-peer inbound request rate (per second) and burst.
    pub fn with_request_rate(mut self, rate: u32, burst: u32) -> Self {
        self.request_rate = rate;
        self.request_burst = burst;
        self
    }

    /// Sets how many admitted requests of one peer may wait to be served.
    pub fn with_max_queued_requests(mut self, max: usize) -> Self {
        self.max_queued_requests = max;
        self
    }

    /// Sets the per-peer announcement rate (per second).
    pub fn with_announcement_rate(mut self, rate: u32) -> Self {
        self.announcement_rate = rate;
        self
    }

    /// Sets how many events are buffered for subscribers.
    pub fn with_event_capacity(mut self, capacity: usize) -> Self {
        self.event_capacity = capacity;
        self
    }

    /// Sets the limits on received blocks' inner lists (a node takes them from its chain
    /// spec).
    pub fn with_decode_limits(mut self, limits: DecodeLimits) -> Self {
        self.decode_limits = limits;
        self
    }

    /// Sets the per-peer signature-recovery budget (recoveries per second).
    pub fn with_recovery_rate(mut self, rate: u32) -> Self {
        self.recovery_rate = rate;
        self
    }

    /// Sets the node-wide budget of large messages in flight, in bytes.
    pub fn with_large_message_budget(mut self, bytes: usize) -> Self {
        self.large_message_budget = bytes;
        self
    }

    /// Sets whether a session starts by announcing the pool.
    pub fn with_announce_pool_on_connect(mut self, announce: bool) -> Self {
        self.announce_pool_on_connect = announce;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols_are_every_version_highest_first() {
        let ids: Vec<(String, u8)> = protocols()
            .into_iter()
            .map(|p| (p.id.to_string(), p.message_count))
            .collect();
        assert_eq!(
            ids,
            vec![
                ("/eth/70/1.0.0".to_string(), 18),
                ("/eth/69/1.0.0".to_string(), 18),
                ("/eth/68/1.0.0".to_string(), 17),
                ("/eth/67/1.0.0".to_string(), 17),
                ("/eth/66/1.0.0".to_string(), 17),
            ]
        );
        for p in protocols() {
            assert_eq!(p.id.capability().map(|(name, _)| name), Some("eth"));
        }
    }

    #[test]
    fn subsets_are_sorted_and_deduplicated() {
        let ids: Vec<String> =
            protocols_for(&[EthVersion::Eth66, EthVersion::Eth68, EthVersion::Eth66])
                .into_iter()
                .map(|p| p.id.to_string())
                .collect();
        assert_eq!(ids, vec!["/eth/68/1.0.0", "/eth/66/1.0.0"]);
        assert!(protocols_for(&[]).is_empty());
    }
}
