//! Outbound dialing policy: static peers, dialled and redialled forever, and
//! discovered peers, dialled until the outbound target is met; both with
//! exponential backoff and jitter per peer, so a dead or flapping address never
//! sees a dial storm.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use devmux_identity::PeerId;
use futures::{Stream, StreamExt};
use schnellru::{ByLength, LruMap};
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, Instrument};
// tokio's clock: std's in production, the simulated one in a simulation.
use tokio::time::Instant;

use crate::Network;

/// A connection that ends sooner than this after it was made counts as a failure
/// for backoff: the peer is flapping.
pub const FLAP_WINDOW: Duration = Duration::from_secs(30);
/// Candidates kept while the outbound slots are full.
const CANDIDATE_QUEUE: usize = 256;
/// Peers whose dial failures are remembered.
const BACKOFF_MEMORY: u32 = 4096;
/// How often the dialer looks for free outbound slots without new candidates.
const DIAL_TICK: Duration = Duration::from_millis(500);

/// A peer to dial: its id and its address on this node's server (`enode://` URL
/// or multiaddr).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DialTarget {
    /// Who it is.
    pub peer: PeerId,
    /// Where to dial it.
    pub addr: String,
}

/// Backoff after the first failed dial, before jitter.
pub const BACKOFF_MIN: Duration = Duration::from_secs(1);
/// The longest backoff between dials to one peer, before jitter (which may double it).
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// How often a connected static peer is checked.
const CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// A peer's dial backoff, fresh: the waits after consecutive failed dials double from
/// [`BACKOFF_MIN`] up to [`BACKOFF_MAX`], each stretched by a random 0–100 % (backon's
/// jitter) so that peers that failed together do not retry together. It never runs out.
///
/// The jitter is drawn from `seed` ([`jitter_seed`]: this node and the dialed peer),
/// not from a process-wide generator: peers still get different jitter, and a
/// simulated network with seeded keys dials the same way every run.
fn dial_backoff(seed: u64) -> ExponentialBackoff {
    ExponentialBuilder::default()
        .with_min_delay(BACKOFF_MIN)
        .with_max_delay(BACKOFF_MAX)
        .with_factor(2.0)
        .with_jitter()
        .with_jitter_seed(seed)
        .without_max_times()
        .build()
}

/// The jitter seed of `local`'s backoff for dials to `remote` (a peer id or an address).
fn jitter_seed(local: &PeerId, remote: &impl std::hash::Hash) -> u64 {
    use std::hash::{Hash, Hasher};
    // `DefaultHasher::new` has fixed keys: the same on every run, spread over pairs.
    let mut hasher = std::hash::DefaultHasher::new();
    local.hash(&mut hasher);
    remote.hash(&mut hasher);
    hasher.finish()
}

/// The next wait of `backoff` (a [`dial_backoff`], which never runs out).
fn next_wait(backoff: &mut ExponentialBackoff) -> Duration {
    backoff.next().unwrap_or(BACKOFF_MAX)
}

/// Keeps `addr` connected until `stop` is cancelled: dials it, and redials with
/// [`dial_backoff`] whenever it is not connected. A connection that lasted less than
/// [`FLAP_WINDOW`] counts as a failure, so a flapping peer backs off too.
pub(crate) fn keep_connected(network: Network, addr: String, stop: CancellationToken) {
    let span = tracing::info_span!("static-peer", %addr);
    network.clone().spawn(
        async move {
            let seed = jitter_seed(&network.local_peer_id(), &addr);
            let mut backoff = dial_backoff(seed);
            // The peer and when its current connection was made.
            let mut connection: Option<(PeerId, Instant)> = None;
            loop {
                if let Some((peer, since)) = connection {
                    if network.is_connected(&peer) {
                        if since.elapsed() >= FLAP_WINDOW {
                            backoff = dial_backoff(seed);
                        }
                        tokio::select! {
                            _ = stop.cancelled() => return,
                            _ = tokio::time::sleep(CHECK_INTERVAL) => continue,
                        }
                    }
                    connection = None;
                    if since.elapsed() < FLAP_WINDOW {
                        let wait = next_wait(&mut backoff);
                        debug!(?wait, "static peer flapping: backing off");
                        tokio::select! {
                            _ = stop.cancelled() => return,
                            _ = tokio::time::sleep(wait) => {}
                        }
                    }
                }
                let dialed = tokio::select! {
                    _ = stop.cancelled() => return,
                    dialed = network.dial(&addr) => dialed,
                };
                match dialed {
                    Ok(peer) => {
                        info!(%peer, "static peer connected");
                        connection = Some((peer, Instant::now()));
                    }
                    Err(e) => {
                        let wait = next_wait(&mut backoff);
                        debug!(error = %e, ?wait, "static peer dial failed");
                        tokio::select! {
                            _ = stop.cancelled() => return,
                            _ = tokio::time::sleep(wait) => {}
                        }
                    }
                }
            }
        }
        .instrument(span),
    );
}

/// Dial failures of one peer: its backoff so far, and when it may be dialled again.
struct Failures {
    backoff: ExponentialBackoff,
    retry_at: Instant,
}

/// Keeps the outbound peer count at the pool's target from `candidates`, until
/// `stop` is cancelled.
pub(crate) fn run<S>(network: Network, candidates: S, stop: CancellationToken)
where
    S: Stream<Item = DialTarget> + Send + Unpin + 'static,
{
    let span = tracing::info_span!("dialer");
    network.clone().spawn(
        async move {
            let mut candidates = candidates;
            let mut candidates_done = false;
            let pool = network.pool_config();
            let local = network.local_peer_id();
            let target = pool.outbound_target();
            let permits = Arc::new(Semaphore::new(pool.max_concurrent_dials.max(1)));
            let mut queue: VecDeque<DialTarget> = VecDeque::new();
            // The least recently failed are forgotten first.
            let mut failures: LruMap<PeerId, Failures> = LruMap::new(ByLength::new(BACKOFF_MEMORY));
            let mut dialing: HashSet<PeerId> = HashSet::new();
            let (done_tx, mut done_rx) = mpsc::channel::<(PeerId, bool)>(64);
            let mut tick = tokio::time::interval(DIAL_TICK);
            loop {
                tokio::select! {
                    // A fixed order, not tokio's random one: outcomes before new
                    // candidates (neither can starve the other: at most
                    // `max_concurrent_dials` outcomes wait), so the same events make
                    // the same queue, and a seeded simulation dials the same way.
                    biased;
                    _ = stop.cancelled() => return,
                    Some((peer, ok)) = done_rx.recv() => {
                        dialing.remove(&peer);
                        if ok {
                            failures.remove(&peer);
                        } else {
                            let Some(f) = failures.get_or_insert(peer, || Failures {
                                backoff: dial_backoff(jitter_seed(&local, &peer)),
                                retry_at: Instant::now(),
                            }) else {
                                continue;
                            };
                            let wait = next_wait(&mut f.backoff);
                            f.retry_at = Instant::now() + wait;
                            // Try it again after the backoff, if discovery does not first.
                            debug!(%peer, ?wait, "dial failed: backing off");
                        }
                    }
                    next = candidates.next(), if !candidates_done => match next {
                        Some(c) => {
                            if !queue.iter().any(|q| q.peer == c.peer) {
                                if queue.len() >= CANDIDATE_QUEUE {
                                    queue.pop_front();
                                }
                                queue.push_back(c);
                            }
                        }
                        // No more candidates: keep draining the queue.
                        None => candidates_done = true,
                    },
                    _ = tick.tick() => {}
                }
                // Fill free outbound slots.
                let mut skipped = Vec::new();
                while network.outbound_count() + dialing.len() < target {
                    let Some(c) = queue.pop_front() else { break };
                    if network.is_connected(&c.peer) || network.is_banned(&c.peer) {
                        continue;
                    }
                    if dialing.contains(&c.peer) {
                        continue;
                    }
                    if failures
                        .peek(&c.peer)
                        .is_some_and(|f| f.retry_at > Instant::now())
                    {
                        skipped.push(c);
                        continue;
                    }
                    let Ok(permit) = permits.clone().try_acquire_owned() else {
                        queue.push_front(c);
                        break;
                    };
                    dialing.insert(c.peer);
                    let (dialer, done) = (network.clone(), done_tx.clone());
                    network.spawn(async move {
                        let network = dialer;
                        let ok = match network.dial(&c.addr).await {
                            Ok(peer) => peer == c.peer,
                            Err(e) => {
                                debug!(peer = %c.peer, error = %e, "dial failed");
                                false
                            }
                        };
                        drop(permit);
                        let _ = done.send((c.peer, ok)).await;
                    });
                }
                // Peers still backing off wait at the back of the queue.
                queue.extend(skipped);
            }
        }
        .instrument(span),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_bounds_with_jitter_and_never_runs_out() {
        for _ in 0..50 {
            let mut backoff = dial_backoff(rand::random());
            let mut base = BACKOFF_MIN;
            for _ in 0..12 {
                let wait = next_wait(&mut backoff);
                assert!(
                    wait >= base && wait < base * 2,
                    "{wait:?} for base {base:?}"
                );
                base = (base * 2).min(BACKOFF_MAX);
            }
            // Past the cap, waits stay within it and its jitter, forever.
            for _ in 0..1000 {
                let wait = backoff.next().expect("a dial backoff never runs out");
                assert!(wait >= BACKOFF_MAX && wait < BACKOFF_MAX * 2);
            }
        }
        // The jitter spreads peers that failed together.
        let local = crate::NodeKey::generate().peer_id();
        let firsts: std::collections::HashSet<Duration> = (0..20)
            .map(|_| {
                let peer = crate::NodeKey::generate().peer_id();
                next_wait(&mut dial_backoff(jitter_seed(&local, &peer)))
            })
            .collect();
        assert!(firsts.len() > 10, "{firsts:?}");
        // And the same pair gets the same jitter: a seeded simulation replays.
        let peer = crate::NodeKey::generate().peer_id();
        let wait = |_| next_wait(&mut dial_backoff(jitter_seed(&local, &peer)));
        assert_eq!(wait(0), wait(1));
    }
}
