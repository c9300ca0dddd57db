//! State the sync, relay and producer tasks share: the chain, the pool, the eth
//! sessions, what each peer knows, which peers sit out, counters and status.

use std::collections::HashMap;
use std::future::Future;
use std::num::NonZeroU32;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use devmux_chain::{Chain, Pool};
use devmux_eth::alloy_primitives::B256;
use devmux_eth::{EthPeer, EthPeers};
use devmux_network::{DisconnectReason, PeerId, Penalty};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::HashMapStateStore;
use governor::{Quota, RateLimiter};
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::budget::RootChecks;
use crate::known::LruSet;
use crate::status::{add, Counters};
use crate::{Error, SyncConfig, SyncStatus};

/// How bad the fault that benched a peer was: one fault is punished once, however many
/// requests in flight reveal it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Severity {
    /// Not its fault (it lacked blocks, its chain moved).
    Retry,
    /// It stalled or left.
    Stall,
    /// It lied.
    Lie,
}

struct Bench {
    until: Instant,
    severity: Severity,
}

/// Token buckets pacing our requests, one per peer (governor's GCRA, keyed by peer).
type Pacers = RateLimiter<PeerId, HashMapStateStore<PeerId>, DefaultClock, NoOpMiddleware>;

/// What one peer is known to have: blocks and transactions it sent, announced, or was
/// sent.
struct PeerKnown {
    blocks: LruSet,
    txs: LruSet,
}

pub(crate) struct Shared {
    pub(crate) chain: Chain,
    pub(crate) pool: Pool,
    pub(crate) peers: EthPeers,
    pub(crate) config: SyncConfig,
    pub(crate) counters: Counters,
    pub(crate) status: watch::Sender<SyncStatus>,
    /// Wakes the sync task: a peer announced something.
    pub(crate) nudge: Notify,
    pub(crate) cancel: CancellationToken,
    known: Mutex<HashMap<PeerId, PeerKnown>>,
    /// Peers out of the sync until the given time.
    benched: Mutex<HashMap<PeerId, Bench>>,
    /// The peer the current sync round follows.
    pub(crate) round_peer: Mutex<Option<PeerId>>,
    pacers: Pacers,
    /// The CPU peers' bodies and receipts may cost us.
    pub(crate) root_checks: RootChecks,
    /// Peers with a `NewBlock` queued or importing, and how many.
    importing: Mutex<HashMap<PeerId, usize>>,
}

/// [`SyncConfig::request_rate`] with bursts of [`SyncConfig::request_burst`] (each at
/// least 1).
fn request_quota(config: &SyncConfig) -> Quota {
    let rate = NonZeroU32::new(config.request_rate).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(config.request_burst).unwrap_or(NonZeroU32::MIN);
    Quota::per_second(rate).allow_burst(burst)
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while holding these locks; if something did, keep going.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    pub(crate) fn new(chain: Chain, pool: Pool, peers: EthPeers, config: SyncConfig) -> Self {
        let head = chain.head().number;
        let (status, _) = watch::channel(SyncStatus {
            current: head,
            target: head,
            ..SyncStatus::default()
        });
        Self {
            chain,
            pool,
            peers,
            counters: Counters::default(),
            status,
            nudge: Notify::new(),
            cancel: CancellationToken::new(),
            known: Mutex::new(HashMap::new()),
            benched: Mutex::new(HashMap::new()),
            round_peer: Mutex::new(None),
            pacers: RateLimiter::hashmap(request_quota(&config)),
            root_checks: RootChecks::new(config.root_check_slots, config.request_timeout),
            importing: Mutex::new(HashMap::new()),
            config,
        }
    }

    /// Runs `fut` unless shutdown comes first.
    pub(crate) async fn or_cancel<T>(&self, fut: impl Future<Output = T>) -> Result<T, Error> {
        tokio::select! {
            _ = self.cancel.cancelled() => Err(Error::ShuttingDown),
            out = fut => Ok(out),
        }
    }

    /// Runs an eth request within the sync deadline, mapping failures to the peer's
    /// fault. The request first waits for its turn under the peer's request rate
    /// ([`SyncConfig::request_rate`]); the deadline starts after.
    pub(crate) async fn request<T>(
        &self,
        peer: &EthPeer,
        fut: impl Future<Output = Result<T, devmux_eth::Error>>,
    ) -> Result<T, Error> {
        let clock = DefaultClock::default();
        while let Err(not_until) = self.pacers.check_key(&peer.peer_id()) {
            let wait = not_until.wait_time_from(clock.now());
            self.or_cancel(tokio::time::sleep(wait)).await?;
        }
        let timeout = self.config.request_timeout;
        match self.or_cancel(tokio::time::timeout(timeout, fut)).await? {
            Ok(Ok(out)) => Ok(out),
            Ok(Err(e)) => Err(Error::from_request(peer.peer_id(), e)),
            Err(_) => Err(Error::Stalled {
                peer: peer.peer_id(),
                timeout,
            }),
        }
    }

    // ---- what peers know ------------------------------------------------------------

    fn with_known<R>(&self, peer: PeerId, f: impl FnOnce(&mut PeerKnown) -> R) -> R {
        let mut known = lock(&self.known);
        let entry = known.entry(peer).or_insert_with(|| PeerKnown {
            blocks: LruSet::new(self.config.known_blocks_per_peer),
            txs: LruSet::new(self.config.known_txs_per_peer),
        });
        f(entry)
    }

    pub(crate) fn mark_block(&self, peer: PeerId, hash: B256) {
        self.with_known(peer, |k| k.blocks.insert(hash));
    }

    pub(crate) fn knows_block(&self, peer: PeerId, hash: &B256) -> bool {
        lock(&self.known)
            .get(&peer)
            .is_some_and(|k| k.blocks.contains(hash))
    }

    pub(crate) fn mark_txs(&self, peer: PeerId, hashes: impl IntoIterator<Item = B256>) {
        self.with_known(peer, |k| {
            for hash in hashes {
                k.txs.insert(hash);
            }
        });
    }

    /// For each of `hashes`, whether `peer` is not known to have it.
    pub(crate) fn lacking_txs(&self, peer: PeerId, hashes: &[B256]) -> Vec<bool> {
        let known = lock(&self.known);
        match known.get(&peer) {
            Some(k) => hashes.iter().map(|h| !k.txs.contains(h)).collect(),
            None => vec![true; hashes.len()],
        }
    }

    /// Takes one of `peer`'s [`SyncConfig::block_imports_per_peer`] places in the
    /// `NewBlock` import; false when it has them all (the block is then dropped, and sync
    /// fetches it if it is the head). Give it back with [`Shared::imported`].
    pub(crate) fn claim_import(&self, peer: PeerId) -> bool {
        let mut importing = lock(&self.importing);
        let claimed = importing.entry(peer).or_default();
        if *claimed >= self.config.block_imports_per_peer.max(1) {
            return false;
        }
        *claimed += 1;
        true
    }

    /// Gives back a place [`Shared::claim_import`] took.
    pub(crate) fn imported(&self, peer: PeerId) {
        let mut importing = lock(&self.importing);
        if let Some(claimed) = importing.get_mut(&peer) {
            *claimed = claimed.saturating_sub(1);
            if *claimed == 0 {
                importing.remove(&peer);
            }
        }
    }

    /// Forgets a peer whose session ended.
    pub(crate) fn forget(&self, peer: &PeerId) {
        lock(&self.known).remove(peer);
    }

    /// Forgets every peer without a session (events may arrive after the session's
    /// end), and expired cooldowns.
    pub(crate) fn prune(&self) {
        let live: std::collections::HashSet<PeerId> = self.peers.ids().into_iter().collect();
        lock(&self.known).retain(|p, _| live.contains(p));
        // A peer's bucket refilled by now is the same as none: governor forgets it.
        self.pacers.retain_recent();
        self.root_checks.retain(|p| live.contains(p));
        let now = Instant::now();
        lock(&self.benched).retain(|_, b| b.until > now);
    }

    // ---- peers out of the sync ------------------------------------------------------

    /// Keeps `peer` out of the sync for `period` (or longer, if it already is).
    pub(crate) fn bench(&self, peer: PeerId, period: Duration) {
        self.bench_for(peer, period, Severity::Retry);
    }

    /// Benches `peer`; false if it already sits out for a fault at least as bad (this
    /// one is then not punished again).
    fn bench_for(&self, peer: PeerId, period: Duration, severity: Severity) -> bool {
        let now = Instant::now();
        let until = now + period;
        let mut benched = lock(&self.benched);
        match benched.get_mut(&peer) {
            Some(b) if b.until > now && b.severity >= severity => {
                b.until = b.until.max(until);
                false
            }
            _ => {
                benched.insert(peer, Bench { until, severity });
                true
            }
        }
    }

    pub(crate) fn is_benched(&self, peer: &PeerId) -> bool {
        lock(&self.benched)
            .get(peer)
            .is_some_and(|b| b.until > Instant::now())
    }

    /// Applies what `error` costs its peer (see [`Error`]) and keeps the peer out of
    /// the sync for a while. A fault revealed by several requests in flight at once is
    /// punished once.
    pub(crate) fn punish(&self, peer: &EthPeer, error: &Error) {
        let id = peer.peer_id();
        let config = &self.config;
        match error {
            Error::InvalidHeaders { .. }
            | Error::BadSeal { .. }
            | Error::InvalidBodies { .. }
            | Error::InvalidTransactions { .. } => {
                if !self.bench_for(id, config.bad_peer_cooldown, Severity::Lie) {
                    return;
                }
                info!(peer = %id, "sync: {error}");
                add(&self.counters.peers_penalised, 1);
                let penalty = if matches!(error, Error::BadSeal { .. }) {
                    Penalty::Fatal
                } else {
                    Penalty::Major
                };
                peer.penalize(penalty, format!("sync: {error}"));
                if !matches!(error, Error::InvalidTransactions { .. }) {
                    peer.disconnect(DisconnectReason::BreachOfProtocol);
                }
            }
            Error::PeerGone { .. } if !peer.ctx().is_current() => {
                // The session ended because a newer connection to the same peer replaced
                // its own (a simultaneous dial, a reconnect): the peer did not leave,
                // and its new session starts clean.
                add(&self.counters.requests_failed, 1);
                debug!(peer = %id, "sync: session replaced with a request in flight");
            }
            Error::Stalled { .. } | Error::PeerGone { .. } => {
                add(&self.counters.requests_failed, 1);
                if !self.bench_for(id, config.stall_cooldown, Severity::Stall) {
                    return;
                }
                debug!(peer = %id, "sync: {error}");
                peer.penalize(Penalty::Minor, format!("sync: {error}"));
            }
            Error::Request { source, .. } => {
                debug!(peer = %id, "sync: {error}");
                add(&self.counters.requests_failed, 1);
                // A response that broke its request's terms was penalised by the eth
                // handler already; only keep the peer out.
                match **source {
                    devmux_eth::Error::InvalidResponse(_)
                    | devmux_eth::Error::UnexpectedResponse { .. } => {
                        self.bench_for(id, config.bad_peer_cooldown, Severity::Lie)
                    }
                    _ => self.bench_for(id, config.stall_cooldown, Severity::Stall),
                };
            }
            Error::Overloaded { .. } => debug!(peer = %id, "sync: {error}"),
            Error::OtherChain { .. } => {
                // Not a fault: it follows another chain than our checkpoint's.
                if self.bench_for(id, config.bad_peer_cooldown, Severity::Retry) {
                    info!(peer = %id, "sync: {error}");
                }
            }
            _ => {
                debug!(peer = %id, "sync: {error}");
                self.bench(id, config.retry_cooldown);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `Shared` over an empty devnet store in a temp dir (kept alive by the second
    /// value).
    fn shared(config: SyncConfig) -> (Shared, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let chain =
            Chain::open(dir.path().join("c.redb"), devmux_chain::ChainSpec::devnet()).unwrap();
        let pool = Pool::new(devmux_chain::PoolConfig::devnet());
        let (_, peers) =
            devmux_eth::EthHandler::new(chain.clone(), pool.clone(), Default::default());
        (Shared::new(chain, pool, peers, config), dir)
    }

    #[tokio::test]
    async fn requests_are_paced_to_the_rate_after_the_burst() {
        let (shared, _dir) = shared(SyncConfig::default().with_request_rate(20, 4));
        let (a, b) = (
            devmux_network::NodeKey::generate().peer_id(),
            devmux_network::NodeKey::generate().peer_id(),
        );
        // The burst goes at once, then one every 50 ms.
        for _ in 0..4 {
            assert!(shared.pacers.check_key(&a).is_ok());
        }
        let wait = shared.pacers.check_key(&a).unwrap_err();
        let wait = wait.wait_time_from(DefaultClock::default().now());
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(50),
            "{wait:?}"
        );
        // Another peer has its own bucket.
        assert!(shared.pacers.check_key(&b).is_ok());
        // Waiting takes the time the rate says, never less.
        let start = Instant::now();
        for _ in 0..3 {
            while let Err(n) = shared.pacers.check_key(&a) {
                tokio::time::sleep(n.wait_time_from(DefaultClock::default().now())).await;
            }
        }
        assert!(
            start.elapsed() >= Duration::from_millis(100),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn a_fault_is_punished_once_and_a_worse_one_again() {
        let (shared, _dir) = shared(SyncConfig::default());
        let peer = devmux_network::NodeKey::generate().peer_id();
        let long = Duration::from_secs(60);
        assert!(!shared.is_benched(&peer));
        assert!(shared.bench_for(peer, long, Severity::Stall));
        assert!(shared.is_benched(&peer));
        assert!(
            !shared.bench_for(peer, long, Severity::Stall),
            "same fault again"
        );
        assert!(!shared.bench_for(peer, long, Severity::Retry));
        assert!(shared.bench_for(peer, long, Severity::Lie), "a worse fault");
        assert!(!shared.bench_for(peer, long, Severity::Lie));
        // Once the bench is over, a new fault counts again.
        let other = devmux_network::NodeKey::generate().peer_id();
        assert!(shared.bench_for(other, Duration::ZERO, Severity::Lie));
        assert!(!shared.is_benched(&other));
        assert!(shared.bench_for(other, long, Severity::Lie));
    }
}
