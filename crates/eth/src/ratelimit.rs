//! Rate limits: how the eth handler bounds what one peer may ask of it. The buckets are
//! governor's (GCRA); what to do about refusals is ours.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use tokio::time::Instant;

/// A token bucket: holds at most `burst` tokens and gains `rate` tokens per second.
/// Each admitted item takes one token; with none left, items are refused.
pub(crate) struct TokenBucket<C: Clock = DefaultClock> {
    limiter: RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<C::Instant>>,
    burst: NonZeroU32,
}

impl<C: Clock> std::fmt::Debug for TokenBucket<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenBucket")
            .field("burst", &self.burst)
            .finish_non_exhaustive()
    }
}

/// The quota of `rate` per second with bursts of `burst`. A zero `burst` is raised to
/// one (a bucket that admits nothing would make the peer useless, which is a decision
/// for another knob); a zero `rate` never refills.
pub(crate) fn quota(rate: u32, burst: u32) -> (Quota, NonZeroU32) {
    let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
    let quota = match NonZeroU32::new(rate) {
        Some(rate) => Quota::per_second(rate),
        // About a century per token: never, for a session.
        None => Quota::with_period(Duration::from_secs(3_000_000_000))
            .unwrap_or(Quota::per_hour(NonZeroU32::MIN)),
    };
    (quota.allow_burst(burst), burst)
}

impl TokenBucket {
    /// A full bucket.
    pub(crate) fn new(rate: u32, burst: u32) -> Self {
        Self::with_clock(rate, burst, &DefaultClock::default())
    }
}

impl<C: Clock + Clone> TokenBucket<C> {
    /// A full bucket on `clock`.
    pub(crate) fn with_clock(rate: u32, burst: u32, clock: &C) -> Self {
        let (quota, burst) = quota(rate, burst);
        Self {
            limiter: RateLimiter::direct_with_clock(quota, clock.clone()),
            burst,
        }
    }

    /// Takes one token if there is one.
    pub(crate) fn try_take(&mut self) -> bool {
        self.limiter.check().is_ok()
    }
}

/// What [`Refusals::record`] says to do about a refused item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Nothing more this window.
    Quiet,
    /// The first refusal in this window: a minor penalty.
    Minor,
    /// As many refusals in this window as the bucket holds: a flood, a major penalty.
    Major,
}

/// Counts refusals per one-second window, so that a flood costs the flooder a bounded
/// number of penalties per second (one minor, then one major once it is clearly a
/// flood) rather than one per message.
#[derive(Debug)]
pub(crate) struct Refusals {
    window_start: Instant,
    count: u32,
    flood_at: u32,
}

/// Length of a refusal-counting window.
const WINDOW: Duration = Duration::from_secs(1);

impl Refusals {
    /// `flood_at` refusals within one window make a flood.
    pub(crate) fn new(flood_at: u32) -> Self {
        Self {
            window_start: Instant::now(),
            count: 0,
            flood_at: flood_at.max(2),
        }
    }

    /// Records one refusal.
    pub(crate) fn record(&mut self) -> Verdict {
        let now = Instant::now();
        if now.saturating_duration_since(self.window_start) >= WINDOW {
            self.window_start = now;
            self.count = 0;
        }
        self.count = self.count.saturating_add(1);
        if self.count == 1 {
            Verdict::Minor
        } else if self.count == self.flood_at {
            Verdict::Major
        } else {
            Verdict::Quiet
        }
    }

    /// Refusals in the current window.
    #[cfg(test)]
    pub(crate) fn count(&self) -> u32 {
        self.count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use governor::clock::FakeRelativeClock;

    #[test]
    fn bucket_admits_burst_then_rate() {
        let clock = FakeRelativeClock::default();
        let mut bucket = TokenBucket::with_clock(10, 5, &clock);
        for _ in 0..5 {
            assert!(bucket.try_take());
        }
        assert!(!bucket.try_take());
        clock.advance(Duration::from_millis(100));
        assert!(bucket.try_take());
        assert!(!bucket.try_take());
        // Never more than the burst, however long the peer was quiet.
        clock.advance(Duration::from_secs(3600));
        let admitted = (0..100).filter(|_| bucket.try_take()).count();
        assert_eq!(admitted, 5);
    }

    #[test]
    fn zero_burst_still_admits_one() {
        let clock = FakeRelativeClock::default();
        let mut bucket = TokenBucket::with_clock(0, 0, &clock);
        assert!(bucket.try_take());
        clock.advance(Duration::from_secs(10));
        assert!(!bucket.try_take());
    }

    #[tokio::test(start_paused = true)]
    async fn refusals_penalise_once_per_window_and_once_more_for_a_flood() {
        let mut refusals = Refusals::new(4);
        let verdicts: Vec<_> = (0..10).map(|_| refusals.record()).collect();
        assert_eq!(verdicts[0], Verdict::Minor);
        assert_eq!(verdicts[3], Verdict::Major);
        assert_eq!(verdicts.iter().filter(|v| **v != Verdict::Quiet).count(), 2);
        assert_eq!(refusals.count(), 10);
        tokio::time::advance(WINDOW).await;
        assert_eq!(refusals.record(), Verdict::Minor);
        assert_eq!(refusals.count(), 1);
    }
}
