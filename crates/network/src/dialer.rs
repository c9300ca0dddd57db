//! Outbound dialing policy: static peers, dialled and redialled forever, and
//! discovered peers, dialled until the outbound target is met; both with
//! exponential backoff and jitter per peer, so a dead or flapping address never
//! sees a dial storm.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use devmux_identity::PeerId;
use futures::{Stream, StreamExt};
use rand::Rng;
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, Instrument};

use crate::Network;

/// A connection that ends sooner than this after it was made counts as a failure
/// for backoff: the peer is flapping.
pub const FLAP_WINDOW: Duration = Duration::from_secs(30);
/// Candidates kept while the outbound slots are full.
const CANDIDATE_QUEUE: usize = 256;
/// Peers whose dial failures are remembered.
const BACKOFF_MEMORY: usize = 4096;
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

/// Backoff after the first failed dial.
pub const BACKOFF_MIN: Duration = Duration::from_secs(1);
/// The longest backoff between dials to one peer.
pub const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// How often a connected static peer is checked.
const CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// The wait after `failures` consecutive failed dials: doubling from
/// [`BACKOFF_MIN`] up to [`BACKOFF_MAX`], with ±25 % jitter so peers that failed
/// together do not retry together.
pub fn backoff(failures: u32) -> Duration {
    let base = BACKOFF_MIN
        .saturating_mul(1u32 << failures.saturating_sub(1).min(16))
        .min(BACKOFF_MAX);
    let jitter = rand::thread_rng().gen_range(0.75..1.25);
    base.mul_f64(jitter)
}

/// Keeps `addr` connected until `stop` is cancelled: dials it, and redials with
/// [`backoff`] whenever it is not connected. A connection that lasted less than
/// [`FLAP_WINDOW`] counts as a failure, so a flapping peer backs off too.
pub(crate) fn keep_connected(network: Network, addr: String, stop: CancellationToken) {
    let span = tracing::info_span!("static-peer", %addr);
    tokio::spawn(
        async move {
            let mut failures = 0u32;
            // The peer and when its current connection was made.
            let mut connection: Option<(PeerId, Instant)> = None;
            loop {
                if let Some((peer, since)) = connection {
                    if network.is_connected(&peer) {
                        if since.elapsed() >= FLAP_WINDOW {
                            failures = 0;
                        }
                        tokio::select! {
                            _ = stop.cancelled() => return,
                            _ = tokio::time::sleep(CHECK_INTERVAL) => continue,
                        }
                    }
                    connection = None;
                    if since.elapsed() < FLAP_WINDOW {
                        failures = failures.saturating_add(1);
                        let wait = backoff(failures);
                        debug!(failures, ?wait, "static peer flapping: backing off");
                        tokio::select! {
                            _ = stop.cancelled() => return,
                            _ = tokio::time::sleep(wait) => {}
                        }
                    }
                }
                match network.dial(&addr).await {
                    Ok(peer) => {
                        info!(%peer, "static peer connected");
                        connection = Some((peer, Instant::now()));
                    }
                    Err(e) => {
                        failures = failures.saturating_add(1);
                        let wait = backoff(failures);
                        debug!(error = %e, failures, ?wait, "static peer dial failed");
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

/// Dial failures of one peer.
#[derive(Clone, Copy)]
struct Failures {
    count: u32,
    retry_at: Instant,
}

/// Keeps the outbound peer count at the pool's target from `candidates`, until
/// `stop` is cancelled.
pub(crate) fn run<S>(network: Network, candidates: S, stop: CancellationToken)
where
    S: Stream<Item = DialTarget> + Send + Unpin + 'static,
{
    let span = tracing::info_span!("dialer");
    tokio::spawn(
        async move {
            let mut candidates = candidates;
            let mut candidates_done = false;
            let pool = network.pool_config();
            let target = pool.outbound_target();
            let permits = Arc::new(Semaphore::new(pool.max_concurrent_dials.max(1)));
            let mut queue: VecDeque<DialTarget> = VecDeque::new();
            let mut failures: HashMap<PeerId, Failures> = HashMap::new();
            let mut dialing: HashSet<PeerId> = HashSet::new();
            let (done_tx, mut done_rx) = mpsc::channel::<(PeerId, bool)>(64);
            let mut tick = tokio::time::interval(DIAL_TICK);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
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
                    Some((peer, ok)) = done_rx.recv() => {
                        dialing.remove(&peer);
                        if ok {
                            failures.remove(&peer);
                        } else {
                            let count = failures.get(&peer).map_or(0, |f| f.count) + 1;
                            let wait = backoff(count);
                            if failures.len() >= BACKOFF_MEMORY {
                                failures.retain(|_, f| f.retry_at > Instant::now());
                            }
                            failures.insert(peer, Failures { count, retry_at: Instant::now() + wait });
                            // Try it again after the backoff, if discovery does not first.
                            debug!(%peer, count, ?wait, "dial failed: backing off");
                        }
                    }
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
                    if failures.get(&c.peer).is_some_and(|f| f.retry_at > Instant::now()) {
                        skipped.push(c);
                        continue;
                    }
                    let Ok(permit) = permits.clone().try_acquire_owned() else {
                        queue.push_front(c);
                        break;
                    };
                    dialing.insert(c.peer);
                    let (network, done) = (network.clone(), done_tx.clone());
                    tokio::spawn(async move {
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
    fn backoff_grows_exponentially_within_bounds() {
        let mean = |f: u32| (0..200).map(|_| backoff(f).as_secs_f64()).sum::<f64>() / 200.0;
        let (b1, b2, b3, b10) = (mean(1), mean(2), mean(3), mean(10));
        assert!((0.75..=1.25).contains(&b1), "{b1}");
        assert!(b2 > 1.6 * b1 && b3 > 1.6 * b2, "{b1} {b2} {b3}");
        assert!(b10 <= BACKOFF_MAX.as_secs_f64() * 1.25, "{b10}");
        for _ in 0..100 {
            assert!(backoff(u32::MAX) <= BACKOFF_MAX.mul_f64(1.25));
        }
    }
}
