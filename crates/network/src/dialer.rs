//! Outbound dialing policy: static peers, dialled and redialled forever with
//! exponential backoff and jitter, so a dead address never sees a dial storm.

use std::time::Duration;

use rand::Rng;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, Instrument};

use crate::Network;

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
/// [`backoff`] whenever it is not connected.
pub(crate) fn keep_connected(network: Network, addr: String, stop: CancellationToken) {
    let span = tracing::info_span!("static-peer", %addr);
    tokio::spawn(
        async move {
            let mut failures = 0u32;
            let mut known = None;
            loop {
                let connected =
                    known.is_some_and(|peer| network.peers().iter().any(|p| p.peer_id == peer));
                let wait = if connected {
                    failures = 0;
                    CHECK_INTERVAL
                } else {
                    match network.dial(&addr).await {
                        Ok(peer) => {
                            if failures > 0 || known.is_none() {
                                info!(%peer, "static peer connected");
                            }
                            known = Some(peer);
                            failures = 0;
                            CHECK_INTERVAL
                        }
                        Err(e) => {
                            failures = failures.saturating_add(1);
                            let wait = backoff(failures);
                            debug!(error = %e, failures, ?wait, "static peer dial failed");
                            wait
                        }
                    }
                };
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
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
