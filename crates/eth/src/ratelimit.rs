//! Token buckets: how the eth handler bounds what one peer may ask of it.

use std::time::Duration;

use tokio::time::Instant;

/// A token bucket: holds at most `burst` tokens and gains `rate` tokens per second.
/// Each admitted item takes one token; with none left, items are refused.
#[derive(Debug)]
pub(crate) struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket. A zero `burst` is raised to one (a bucket that admits nothing
    /// would make the peer useless, which is a decision for another knob).
    pub(crate) fn new(rate: u32, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            rate: f64::from(rate),
            burst,
            tokens: burst,
            last: Instant::now(),
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.last = now;
    }

    /// Takes one token if there is one.
    pub(crate) fn try_take(&mut self) -> bool {
        self.refill(Instant::now());
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
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

    #[tokio::test(start_paused = true)]
    async fn bucket_admits_burst_then_rate() {
        let mut bucket = TokenBucket::new(10, 5);
        for _ in 0..5 {
            assert!(bucket.try_take());
        }
        assert!(!bucket.try_take());
        tokio::time::advance(Duration::from_millis(100)).await;
        assert!(bucket.try_take());
        assert!(!bucket.try_take());
        // Never more than the burst, however long the peer was quiet.
        tokio::time::advance(Duration::from_secs(3600)).await;
        let admitted = (0..100).filter(|_| bucket.try_take()).count();
        assert_eq!(admitted, 5);
    }

    #[tokio::test(start_paused = true)]
    async fn zero_burst_still_admits_one() {
        let mut bucket = TokenBucket::new(0, 0);
        assert!(bucket.try_take());
        tokio::time::advance(Duration::from_secs(10)).await;
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
