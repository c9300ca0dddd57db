//! Periodic timers that many connections share the wake-ups of.
//!
//! A node holding 10 000 connections with a keepalive each, started at 10 000
//! different moments, is woken 10 000 times per period: each time the runtime
//! leaves its park, polls one timer and parks again, and the wake-ups, not the
//! pings, become most of an idle node's CPU. A [`TimerGrid`] puts the ticks of
//! every interval it makes on one grid of [`TimerGrid::STEP`] (timer
//! coalescing, as the kernel's timer slack does): the timers due in one step
//! fire together, in one wake-up.

use std::time::Duration;

use tokio::time::{Instant, Interval, MissedTickBehavior};

/// The origin of a grid that periodic timers tick on; cheap to copy.
#[derive(Debug, Clone, Copy)]
pub struct TimerGrid {
    origin: Instant,
}

impl Default for TimerGrid {
    fn default() -> Self {
        Self::new()
    }
}

impl TimerGrid {
    /// The grid's step: a timer fires up to this much later than it would alone.
    pub const STEP: Duration = Duration::from_millis(250);

    /// A grid with its origin now (on tokio's clock, so a simulation's too).
    pub fn new() -> Self {
        Self {
            origin: Instant::now(),
        }
    }

    /// An interval of `period` whose first tick is one period from now, rounded up
    /// onto the grid. A period that is a multiple of the step (or a step that is a
    /// multiple of a shorter period) keeps every tick on the grid. A late tick is
    /// skipped, not made up in a burst.
    pub fn interval(&self, period: Duration) -> Interval {
        let period = period.max(Duration::from_millis(1));
        let mut interval =
            tokio::time::interval_at(self.round_up(Instant::now() + period, period), period);
        interval.set_missed_tick_behavior(MissedTickBehavior::Skip);
        interval
    }

    /// The first moment on the grid at or after `at`; the grid's step is at most
    /// `period`, so a short period is not stretched.
    fn round_up(&self, at: Instant, period: Duration) -> Instant {
        let step = Self::STEP.min(period).as_nanos();
        let since = at.saturating_duration_since(self.origin).as_nanos();
        let steps = since.div_ceil(step);
        let offset = u64::try_from(steps * step).unwrap_or(u64::MAX);
        self.origin + Duration::from_nanos(offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn intervals_started_apart_tick_together_on_the_grid() {
        let grid = TimerGrid::new();
        let period = Duration::from_secs(15);
        let mut first = grid.interval(period);
        tokio::time::sleep(Duration::from_millis(130)).await;
        let mut second = grid.interval(period);
        tokio::time::sleep(Duration::from_millis(70)).await;
        let mut third = grid.interval(period);
        let ticks = [first.tick().await, second.tick().await, third.tick().await];
        // 15.0 s after the origin rounds to 15.0 s; 15.13 and 15.2 s to 15.25 s.
        let origin = grid.origin;
        assert_eq!(ticks[0] - origin, Duration::from_secs(15));
        assert_eq!(ticks[1] - origin, Duration::from_millis(15_250));
        assert_eq!(ticks[2], ticks[1]);
        // And they stay together, one period apart.
        assert_eq!(second.tick().await - ticks[1], period);
        assert_eq!(third.tick().await - ticks[2], period);
    }

    #[tokio::test(start_paused = true)]
    async fn a_period_shorter_than_the_step_is_not_stretched() {
        let grid = TimerGrid::new();
        tokio::time::sleep(Duration::from_millis(30)).await;
        let mut interval = grid.interval(Duration::from_millis(100));
        let first = interval.tick().await - grid.origin;
        let second = interval.tick().await - grid.origin;
        assert_eq!(first, Duration::from_millis(200));
        assert_eq!(second, Duration::from_millis(300));
    }
}
