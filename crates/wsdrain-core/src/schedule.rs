//! The close schedule: when each session's turn comes.
//!
//! One task for all sessions, not a timer per session. At Closing the live
//! sessions are put in random order and given moments evenly spaced over the
//! span (`DrainPolicy::close_span`), which keeps the reconnect rate flat: the
//! peak per 100 ms stays near the mean. Each turn carries its own retry hint,
//! rising with the order ([`DrainPolicy::hint_for_turn`]), so that the
//! reconnects (close moment + hint) are evenly spaced as well.

use std::{sync::Arc, time::Duration};

use tokio::time::{Instant, sleep_until};

use crate::{policy::DrainPolicy, registry::SessionSignal};

/// Evenly spaced close moments for `len` sessions over `span`, from `start`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CloseSchedule {
    start: Instant,
    span: Duration,
    len: usize,
}

impl CloseSchedule {
    /// A schedule of `len` turns spread over `span` from `start`.
    pub(crate) fn new(start: Instant, span: Duration, len: usize) -> Self {
        CloseSchedule { start, span, len }
    }

    /// The moment of turn `i` (`0 <= i < len`): the first at `start`, the last
    /// one spacing before `start + span`.
    pub(crate) fn moment(&self, i: usize) -> Instant {
        if self.len <= 1 {
            return self.start;
        }
        let nanos = self.span.as_nanos() * i as u128 / self.len as u128;
        self.start + Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}

/// Shuffles `sessions` and gives each its turn at its moment, with a hint
/// drawn from the policy. Returns when every turn was given.
pub(crate) async fn run(mut sessions: Vec<Arc<SessionSignal>>, policy: &DrainPolicy) {
    let span = policy.close_span(sessions.len());
    if !span.is_zero() {
        // All at once (window 0), order does not matter, and walking the
        // sessions in registry order is kinder to caches.
        fastrand::shuffle(&mut sessions);
    }
    let schedule = CloseSchedule::new(Instant::now(), span, sessions.len());
    let mut next = 0;
    while next < sessions.len() {
        sleep_until(schedule.moment(next)).await;
        let now = Instant::now();
        while next < sessions.len() && schedule.moment(next) <= now {
            sessions[next].fire(policy.hint_for_turn(next, sessions.len()));
            next += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_are_even_and_inside_the_span() {
        let start = Instant::now();
        let s = CloseSchedule::new(start, Duration::from_secs(10), 4);
        let m: Vec<_> = (0..4).map(|i| s.moment(i) - start).collect();
        assert_eq!(m, [0, 2500, 5000, 7500].map(Duration::from_millis));
        assert_eq!(
            CloseSchedule::new(start, Duration::from_secs(10), 1).moment(0),
            start
        );
    }

    #[tokio::test(start_paused = true)]
    async fn turns_spread_evenly_over_the_window() {
        let policy = DrainPolicy::builder()
            .close_window(Duration::from_secs(5))
            .min_close_rate(1)
            .build()
            .expect("policy");
        let sessions: Vec<_> = (0..500)
            .map(|_| Arc::new(SessionSignal::default()))
            .collect();
        let start = Instant::now();
        let task = tokio::spawn({
            let sessions = sessions.clone();
            let policy = policy.clone();
            async move { run(sessions, &policy).await }
        });
        // Observe fire times in 100 ms steps of paused time.
        let mut per_bucket = vec![0usize; 50];
        let mut seen = vec![false; sessions.len()];
        for bucket in per_bucket.iter_mut() {
            tokio::time::sleep(Duration::from_millis(100)).await;
            for (i, s) in sessions.iter().enumerate() {
                if !seen[i] && s.turn().is_some() {
                    seen[i] = true;
                    *bucket += 1;
                }
            }
        }
        task.await.expect("scheduler");
        assert!(seen.iter().all(|s| *s), "every session got its turn");
        assert!(Instant::now() - start >= Duration::from_secs(5));
        let mean = 500.0 / 50.0;
        let peak = *per_bucket.iter().max().expect("buckets") as f64;
        assert!(
            peak <= 1.2 * mean,
            "peak {peak} vs mean {mean}: {per_bucket:?}"
        );
        let hints: std::collections::HashSet<_> =
            sessions.iter().filter_map(|s| s.turn()).collect();
        assert!(hints.len() > 50, "hints vary");
    }
}
