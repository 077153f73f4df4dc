//! [`DrainController`]: the unique trigger, and the timeline it drives.

use std::{
    fmt,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use tokio::time::{Instant, sleep_until};

use crate::{
    Phase,
    drain::{Drain, DrainCause, Shared, Trigger},
    outcome::SessionOutcome,
    policy::DrainPolicy,
    report::{DrainReport, ForcedBy},
    schedule,
};

/// The trigger and the clock of a drain. There is one per server; it is
/// purposefully not `Clone` (hand out [`Drain`] observers instead).
///
/// ```text
/// begin()/SIGTERM ──▶ Draining ── drain_delay ──▶ Closing ── turns over the window,
///        handshakes ──▶ Closed        second trigger or deadline ──▶ forced end ──▶ Closed
/// ```
///
/// Unlike `axum::serve(..).with_graceful_shutdown(..)`, which stops watching a
/// connection once it is upgraded, the controller waits for every registered
/// session, and ends them by force at the deadline.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use wsdrain_core::{DrainController, DrainPolicy, Phase};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let policy = DrainPolicy::builder().drain_delay(Duration::ZERO).build().unwrap();
/// let controller = DrainController::new(policy);
/// let drain = controller.drain();
/// controller.begin();
/// assert_eq!(drain.phase(), Phase::Draining);
/// let report = controller.run().await; // no sessions: Closed at once
/// assert!(report.is_clean());
/// assert_eq!(drain.phase(), Phase::Closed);
/// # }
/// ```
pub struct DrainController {
    shared: Arc<Shared>,
    running: AtomicBool,
}

impl fmt::Debug for DrainController {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DrainController")
            .field("drain", &self.drain())
            .finish()
    }
}

impl DrainController {
    /// A controller in the Serving phase.
    pub fn new(policy: DrainPolicy) -> Self {
        DrainController {
            shared: Arc::new(Shared::new(policy)),
            running: AtomicBool::new(false),
        }
    }

    /// A new observer, for the layer, handlers and the serve loop.
    pub fn drain(&self) -> Drain {
        Drain {
            shared: self.shared.clone(),
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> &DrainPolicy {
        &self.shared.policy
    }

    /// Whether a [`DrainLayer`](crate::DrainLayer) made from this
    /// controller's drain has wrapped a service yet (`Router::layer` wraps
    /// each route at once). Without one, `/readyz` and `/livez` are not
    /// answered, nothing gates requests, and upgrades through
    /// `GracefulUpgrade` fail with 500: `wsdrain::serve` checks this at start
    /// and logs a warning; a hand-written server can check it the same way.
    pub fn has_layer(&self) -> bool {
        self.shared.layered.load(Ordering::Relaxed)
    }

    /// Starts the drain from code (blue/green switch, maintenance). Readiness
    /// turns 503 before this returns. A second call does nothing; use
    /// [`force`](Self::force) to end at once.
    pub fn begin(&self) {
        self.shared.begin(DrainCause::Manual);
    }

    /// Jumps to the forced end (starting the drain first if needed).
    pub fn force(&self) {
        self.shared.force(DrainCause::Manual);
    }

    /// A second, explicit trigger that can only begin the drain, for an
    /// endpoint or task that must start it while [`run`](Self::run) is
    /// awaited elsewhere (e.g. the opt-in admin endpoint of `wsdrain-axum`).
    pub fn trigger(&self) -> DrainTrigger {
        DrainTrigger {
            shared: self.shared.clone(),
        }
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Drives the timeline: waits for the first trigger, holds Draining for
    /// `drain_delay`, gives every session its turn over the close window,
    /// waits for sessions and in-flight requests to end, and forces the end at
    /// the deadline or on a second trigger. Returns the report once Closed.
    ///
    /// Call it once; a second concurrent call only waits for the first.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: dropping the future stops the timeline where it is
    /// (the phase stays where it was).
    pub async fn run(&self) -> DrainReport {
        if self.running.swap(true, Ordering::AcqRel) {
            self.drain().closed().await;
            return self.report(Instant::now(), Instant::now(), 0, None);
        }
        let shared = &self.shared;
        let mut trigger = shared.trigger.subscribe();
        let _ = trigger.wait_for(|t| *t >= Trigger::Begin).await;
        let (began, _) = shared
            .began()
            .unwrap_or((Instant::now(), DrainCause::Manual));
        let deadline = began + shared.policy.deadline();
        let forced = async {
            let _ = trigger.wait_for(|t| *t >= Trigger::Force).await;
        };
        tokio::pin!(forced);

        let mut forced_by = None;
        tokio::select! {
            biased;
            _ = &mut forced => forced_by = Some(ForcedBy::SecondTrigger),
            _ = sleep_until(began + shared.policy.drain_delay()) => {}
        }

        let closing_at = Instant::now();
        let mut sessions_at_closing = 0;
        if forced_by.is_none() {
            shared.set_phase(Phase::Closing);
            let sessions = shared.registry.begin_closing();
            sessions_at_closing = sessions.len();
            tracing::info!(
                target: "wsdrain",
                sessions = sessions_at_closing,
                span_ms = shared.policy.close_span(sessions_at_closing).as_millis() as u64,
                "closing sessions"
            );
            let all_done = async {
                schedule::run(sessions, &shared.policy).await;
                shared.wait_idle().await;
            };
            tokio::select! {
                biased;
                _ = &mut forced => forced_by = Some(ForcedBy::SecondTrigger),
                _ = sleep_until(deadline) => forced_by = Some(ForcedBy::Deadline),
                _ = all_done => {}
            }
        }

        if let Some(by) = forced_by {
            let forced_sessions = shared.registry.force();
            shared.count_outcome(SessionOutcome::Forced, forced_sessions as u64);
            shared.forced.cancel();
            tracing::warn!(target: "wsdrain", sessions = forced_sessions, by = by.as_str(), "forced end");
        }
        shared.set_phase(Phase::Closed);
        let report = self.report(closing_at, began, sessions_at_closing, forced_by);
        tracing::info!(
            target: "wsdrain",
            cause = %report.cause,
            total_ms = report.total.as_millis() as u64,
            sessions_at_closing = report.sessions_at_closing,
            clean = report.closed_clean,
            peer_closed = report.closed_by_peer,
            timed_out = report.timed_out,
            ended = report.ended,
            forced = report.forced,
            refused_upgrades = report.refused_upgrades,
            "drain finished"
        );
        report
    }

    fn report(
        &self,
        closing_at: Instant,
        began: Instant,
        sessions_at_closing: usize,
        forced_by: Option<ForcedBy>,
    ) -> DrainReport {
        let s = &self.shared;
        let now = Instant::now();
        DrainReport {
            cause: s.began().map_or(DrainCause::Manual, |(_, c)| c),
            sessions_at_closing,
            closed_clean: s.outcome_count(SessionOutcome::Clean),
            closed_by_peer: s.outcome_count(SessionOutcome::PeerClosed),
            timed_out: s.outcome_count(SessionOutcome::TimedOut),
            ended: s.outcome_count(SessionOutcome::Ended),
            forced: s.outcome_count(SessionOutcome::Forced),
            refused_upgrades: s.refused_upgrades.load(Ordering::Relaxed),
            forced_by,
            draining_for: closing_at.saturating_duration_since(began),
            closing_for: now.saturating_duration_since(closing_at),
            total: now.saturating_duration_since(began),
        }
    }
}

/// Begins a drain; handed out by [`DrainController::trigger`]. Not `Clone`:
/// whoever holds one was given the capability on purpose.
pub struct DrainTrigger {
    shared: Arc<Shared>,
}

impl fmt::Debug for DrainTrigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DrainTrigger").finish_non_exhaustive()
    }
}

impl DrainTrigger {
    /// Starts the drain (as [`DrainController::begin`]); returns false if it
    /// had already begun.
    pub fn begin(&self) -> bool {
        self.shared.begin(DrainCause::Manual)
    }

    /// An observer of the same drain.
    pub fn drain(&self) -> Drain {
        Drain {
            shared: self.shared.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::time::Duration;

    fn policy() -> DrainPolicy {
        DrainPolicy::builder()
            .drain_delay(Duration::from_secs(5))
            .close_window(Duration::from_secs(10))
            .close_timeout(Duration::from_secs(5))
            .grace_period(Duration::from_secs(30))
            .build()
            .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn phases_follow_the_policy() {
        let c = Arc::new(DrainController::new(policy()));
        let drain = c.drain();
        let session = drain.register_session().unwrap();
        let run = tokio::spawn({
            let c = c.clone();
            async move { c.run().await }
        });
        tokio::task::yield_now().await;
        assert_eq!(drain.phase(), Phase::Serving);
        let t0 = Instant::now();
        c.begin();
        assert_eq!(
            drain.phase(),
            Phase::Draining,
            "readiness flips synchronously"
        );
        drain.closing().await;
        assert_eq!(Instant::now() - t0, Duration::from_secs(5));
        let hint = session.turned().await;
        assert!((1000..=5000).contains(&hint.retry_after_ms()));
        let mut session = session;
        session.finish(SessionOutcome::Clean, None);
        drop(session);
        let report = run.await.unwrap();
        assert_eq!(drain.phase(), Phase::Closed);
        assert_eq!(report.sessions_at_closing, 1);
        assert_eq!(report.closed_clean, 1);
        assert!(report.is_clean());
        assert_eq!(report.draining_for, Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn deadline_forces_the_end() {
        let c = Arc::new(DrainController::new(policy()));
        let drain = c.drain();
        let stuck = drain.register_session().unwrap();
        let t0 = Instant::now();
        c.begin();
        // Bounded, so that a missing deadline fails here instead of hanging.
        let report = tokio::time::timeout(Duration::from_secs(60), c.run())
            .await
            .expect("the forced end came");
        assert_eq!(Instant::now() - t0, Duration::from_secs(28));
        assert_eq!(report.forced_by, Some(ForcedBy::Deadline));
        assert_eq!(report.forced, 1);
        assert!(drain.is_forced());
        assert!(stuck.is_forced(), "the session is told");
        drop(stuck);
        assert_eq!(drain.sessions(), 0);
        assert_eq!(
            c.drain().shared.outcome_count(SessionOutcome::Forced),
            1,
            "counted once, not again when dropped"
        );
        assert_eq!(
            drain.register_session().err(),
            Some(crate::Refused::Ended),
            "nothing registers after the forced end"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn second_trigger_ends_at_once() {
        for after in [Duration::from_secs(1), Duration::from_secs(7)] {
            let c = Arc::new(DrainController::new(policy()));
            let drain = c.drain();
            let _stuck = drain.register_session().unwrap();
            let run = tokio::spawn({
                let c = c.clone();
                async move { c.run().await }
            });
            let t0 = Instant::now();
            c.begin();
            tokio::time::sleep(after).await;
            c.force();
            let report = run.await.unwrap();
            assert_eq!(
                Instant::now() - t0,
                after,
                "no wait after the second trigger"
            );
            assert_eq!(report.forced_by, Some(ForcedBy::SecondTrigger));
            assert_eq!(report.forced, 1);
            assert_eq!(drain.phase(), Phase::Closed);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn late_sessions_get_their_turn_at_once() {
        let c = DrainController::new(policy());
        let drain = c.drain();
        c.begin();
        let _keep = drain.register_session().unwrap();
        let run = c.run();
        tokio::pin!(run);
        tokio::select! {
            _ = &mut run => panic!("must wait for the session"),
            _ = drain.closing() => {}
        }
        let late = drain.register_session().unwrap();
        assert!(
            late.turn().is_some(),
            "registered during Closing: turn at once"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn trigger_before_run_is_kept() {
        let c = DrainController::new(policy());
        c.begin();
        c.begin();
        let t0 = Instant::now();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let report = c.run().await;
        assert_eq!(
            Instant::now() - t0,
            Duration::from_secs(5),
            "delay counts from the trigger"
        );
        assert!(report.is_clean());
        assert_eq!(report.cause, DrainCause::Manual);
    }
}
