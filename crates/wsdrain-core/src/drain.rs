//! [`Drain`]: the cheap observer every request and session holds.

use std::{
    fmt,
    future::Future,
    pin::pin,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering},
    },
    task::{Context, Poll},
};

use tokio::{
    sync::{Notify, watch},
    time::Instant,
};
use tokio_util::sync::CancellationToken;
use wsdrain_protocol::CloseHint;

use crate::{
    Phase, metrics,
    outcome::SessionOutcome,
    policy::{ClosingUpgrades, DrainPolicy},
    registry::{Refused, Registry, SessionSignal},
    transport::Transport,
};

/// How far the trigger has gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Trigger {
    None,
    Begin,
    Force,
}

/// What started a drain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DrainCause {
    /// A signal, e.g. `"SIGTERM"`.
    Signal(&'static str),
    /// [`DrainController::begin`](crate::DrainController::begin) from code.
    Manual,
}

impl fmt::Display for DrainCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DrainCause::Signal(s) => f.write_str(s),
            DrainCause::Manual => f.write_str("begin()"),
        }
    }
}

/// State shared by the controller, the layer and every session.
pub(crate) struct Shared {
    pub(crate) policy: DrainPolicy,
    phase: AtomicU8,
    phase_tx: watch::Sender<Phase>,
    pub(crate) trigger: watch::Sender<Trigger>,
    began: OnceLock<(Instant, DrainCause)>,
    pub(crate) registry: Registry,
    in_flight: AtomicUsize,
    idle: Notify,
    pub(crate) forced: CancellationToken,
    outcomes: [AtomicU64; 5],
    pub(crate) refused_upgrades: AtomicU64,
    by_transport: [AtomicUsize; 3],
    /// Set when a `DrainLayer` made from this drain wraps a service.
    pub(crate) layered: AtomicBool,
}

impl Shared {
    pub(crate) fn new(policy: DrainPolicy) -> Self {
        Shared {
            policy,
            phase: AtomicU8::new(Phase::Serving as u8),
            phase_tx: watch::Sender::new(Phase::Serving),
            trigger: watch::Sender::new(Trigger::None),
            began: OnceLock::new(),
            registry: Registry::default(),
            in_flight: AtomicUsize::new(0),
            idle: Notify::new(),
            forced: CancellationToken::new(),
            outcomes: Default::default(),
            refused_upgrades: AtomicU64::new(0),
            by_transport: Default::default(),
            layered: AtomicBool::new(false),
        }
    }

    pub(crate) fn phase(&self) -> Phase {
        Phase::from_u8(self.phase.load(Ordering::Acquire))
    }

    pub(crate) fn set_phase(&self, phase: Phase) {
        let old = Phase::from_u8(self.phase.fetch_max(phase as u8, Ordering::AcqRel));
        if phase > old {
            self.phase_tx.send_replace(phase);
            metrics::phase(phase);
            tracing::info!(target: "wsdrain", phase = phase.as_str(), sessions = self.registry.live(), "drain phase");
        }
    }

    /// Starts the drain; returns false if it had already begun.
    pub(crate) fn begin(&self, cause: DrainCause) -> bool {
        let first = self.began.set((Instant::now(), cause)).is_ok();
        if first {
            // Readiness flips here, on the caller's thread, not when a timer task wakes.
            self.set_phase(Phase::Draining);
            self.trigger.send_if_modified(|t| {
                let changed = *t < Trigger::Begin;
                *t = (*t).max(Trigger::Begin);
                changed
            });
        }
        first
    }

    pub(crate) fn force(&self, cause: DrainCause) {
        self.begin(cause);
        self.trigger.send_replace(Trigger::Force);
    }

    pub(crate) fn began(&self) -> Option<(Instant, DrainCause)> {
        self.began.get().copied()
    }

    pub(crate) fn outcome_count(&self, o: SessionOutcome) -> u64 {
        self.outcomes[o.index()].load(Ordering::Relaxed)
    }

    /// Counts `n` sessions that ended with `outcome` during the drain.
    pub(crate) fn count_outcome(&self, outcome: SessionOutcome, n: u64) {
        self.outcomes[outcome.index()].fetch_add(n, Ordering::Relaxed);
        metrics::sessions_closed(outcome, n);
    }

    fn notify_if_idle(&self) {
        if self.registry.live() == 0 && self.in_flight.load(Ordering::Acquire) == 0 {
            self.idle.notify_waiters();
        }
    }

    /// Resolves once no session is live and no request is in flight.
    pub(crate) async fn wait_idle(&self) {
        loop {
            let mut notified = pin!(self.idle.notified());
            notified.as_mut().enable();
            if self.registry.live() == 0 && self.in_flight.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// A snapshot of the drain, as the readiness endpoint reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Status {
    /// The current phase.
    pub phase: Phase,
    /// Live sessions.
    pub sessions: usize,
}

impl Status {
    /// The stable JSON shape: `{"phase":"draining","sessions":12}`.
    pub fn to_json(&self) -> String {
        format!(
            "{{\"phase\":\"{}\",\"sessions\":{}}}",
            self.phase.as_str(),
            self.sessions
        )
    }
}

/// The observer of a drain: cheap to clone, it cannot trigger anything.
///
/// Requests get one in their extensions from [`DrainLayer`](crate::DrainLayer);
/// sessions hold one through their [`SessionGuard`]. The trigger is the
/// unique [`DrainController`](crate::DrainController).
#[derive(Clone)]
pub struct Drain {
    pub(crate) shared: Arc<Shared>,
}

impl fmt::Debug for Drain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Drain")
            .field("phase", &self.phase())
            .field("sessions", &self.sessions())
            .finish()
    }
}

impl Drain {
    /// The current phase (one atomic load).
    pub fn phase(&self) -> Phase {
        self.shared.phase()
    }

    /// Live sessions.
    pub fn sessions(&self) -> usize {
        self.shared.registry.live()
    }

    /// Phase and live sessions, as `/readyz` reports them.
    pub fn status(&self) -> Status {
        Status {
            phase: self.phase(),
            sessions: self.sessions(),
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> &DrainPolicy {
        &self.shared.policy
    }

    /// True from the first instant of Draining on.
    pub fn is_draining(&self) -> bool {
        self.phase() >= Phase::Draining
    }

    /// Resolves when the phase reaches `phase` (at once if it already has).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping it loses nothing.
    pub fn reached(&self, phase: Phase) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.shared.phase_tx.subscribe();
        async move {
            // The sender lives in `Shared`, which this future does not keep
            // alive; if it is gone the drain is over, which is also "reached".
            let _ = rx.wait_for(|p| *p >= phase).await;
        }
    }

    /// Resolves when the drain begins (readiness turns 503).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping it loses nothing.
    pub fn draining(&self) -> impl Future<Output = ()> + Send + 'static {
        self.reached(Phase::Draining)
    }

    /// Resolves when sessions start being closed.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping it loses nothing.
    pub fn closing(&self) -> impl Future<Output = ()> + Send + 'static {
        self.reached(Phase::Closing)
    }

    /// Resolves when the drain is over: pass it to
    /// `axum::serve(..).with_graceful_shutdown(..)` so the listener stays open
    /// (answering `/readyz` with 503) until then.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping it loses nothing.
    pub fn closed(&self) -> impl Future<Output = ()> + Send + 'static {
        self.reached(Phase::Closed)
    }

    /// Resolves at the forced end (deadline or second signal), if it comes.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping it loses nothing.
    pub fn forced(&self) -> impl Future<Output = ()> + Send + 'static {
        self.shared.forced.clone().cancelled_owned()
    }

    /// True once the forced end came.
    pub fn is_forced(&self) -> bool {
        self.shared.forced.is_cancelled()
    }

    /// Registers a session. Keep the guard for as long as the session lives
    /// (move it into the task that runs it, so a panic still releases it).
    ///
    /// A session registered after Closing began gets its turn at once. The
    /// check against [`DrainPolicy::max_sessions`] and the registration are
    /// one step, so concurrent upgrades cannot overshoot the limit.
    ///
    /// # Errors
    ///
    /// [`Refused::MaxSessions`] at the limit, [`Refused::Ended`] after the
    /// forced end; the caller refuses the session (503 + `Retry-After`). Both
    /// are counted as refused upgrades.
    pub fn register_session(&self) -> Result<SessionGuard, Refused> {
        self.register_session_as(Transport::WebSocket)
    }

    /// [`register_session`](Self::register_session) for a session of another
    /// [`Transport`] (the metrics label; the drain treats all alike).
    ///
    /// # Errors
    ///
    /// As [`register_session`](Self::register_session).
    pub fn register_session_as(&self, transport: Transport) -> Result<SessionGuard, Refused> {
        let reg = match self
            .shared
            .registry
            .register(self.shared.policy.max_sessions())
        {
            Ok(reg) => reg,
            Err(refused) => {
                self.count_refused_upgrade(refused.as_str());
                return Err(refused);
            }
        };
        metrics::sessions(self.shared.registry.live());
        let n = self.shared.by_transport[transport.index()].fetch_add(1, Ordering::Relaxed) + 1;
        metrics::sessions_of(transport, n);
        if reg.late {
            if self.shared.policy.closing_upgrades() == ClosingUpgrades::TryAgainLater {
                reg.signal.mark_try_again();
            }
            reg.signal.fire(self.shared.policy.draw_hint());
            tracing::debug!(target: "wsdrain", key = reg.key, "late session closed at once");
        }
        Ok(SessionGuard {
            drain: self.clone(),
            key: reg.key,
            signal: reg.signal,
            outcome: SessionOutcome::Ended,
            close_sent: None,
            transport,
        })
    }

    /// Admits a WebSocket upgrade as a session, for servers without
    /// [`DrainLayer`](crate::DrainLayer) in front (the layer refuses upgrades
    /// during Closing itself): refused from Closing on, else
    /// [`register_session`](Self::register_session).
    ///
    /// # Errors
    ///
    /// [`Refused::Closing`] (unless the policy accepts such upgrades, to
    /// close them with 1013: [`ClosingUpgrades`]), or what
    /// [`register_session`](Self::register_session) refuses; answer with
    /// 503 + `Retry-After`. Counted as refused upgrades.
    pub fn register_upgrade(&self) -> Result<SessionGuard, Refused> {
        if self.phase() >= Phase::Closing
            && self.shared.policy.closing_upgrades() == ClosingUpgrades::Refuse
        {
            self.count_refused_upgrade(Refused::Closing.as_str());
            return Err(Refused::Closing);
        }
        self.register_session()
    }

    /// Counts an upgrade refused with 503 (`reason`: `closing` or `max_sessions`).
    pub(crate) fn count_refused_upgrade(&self, reason: &'static str) {
        self.shared.refused_upgrades.fetch_add(1, Ordering::Relaxed);
        metrics::upgrade_refused(reason);
    }

    pub(crate) fn track_request(&self) -> RequestGuard {
        self.shared.in_flight.fetch_add(1, Ordering::AcqRel);
        RequestGuard {
            shared: self.shared.clone(),
        }
    }
}

/// Counts one in-flight request until dropped.
pub(crate) struct RequestGuard {
    shared: Arc<Shared>,
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        if self.shared.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.notify_if_idle();
        }
    }
}

/// One live session's registry entry and close signal (RAII).
///
/// Dropping it unregisters the session and records its [`SessionOutcome`].
/// WebSocket sessions get theirs from the adapters; a custom session (any
/// long-lived response) registers with [`Drain::register_session`], waits
/// for [`turned`](Self::turned) and ends itself, with the hint.
#[must_use = "the session is unregistered when the guard is dropped"]
pub struct SessionGuard {
    drain: Drain,
    key: usize,
    pub(crate) signal: Arc<SessionSignal>,
    outcome: SessionOutcome,
    close_sent: Option<Instant>,
    transport: Transport,
}

impl fmt::Debug for SessionGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionGuard")
            .field("key", &self.key)
            .field("turn", &self.turn())
            .field("outcome", &self.outcome)
            .field("transport", &self.transport)
            .finish()
    }
}

impl SessionGuard {
    /// The drain this session belongs to.
    pub fn drain(&self) -> &Drain {
        &self.drain
    }

    /// What kind of session this is.
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// The hint, once this session's turn to close came.
    pub fn turn(&self) -> Option<CloseHint> {
        self.signal.turn()
    }

    /// Polls for this session's turn. One task waits per session: the one
    /// that runs it (a second waiter takes the wake-up from the first).
    pub fn poll_turn(&self, cx: &mut Context<'_>) -> Poll<CloseHint> {
        self.signal.poll_turn(cx)
    }

    /// Resolves with the hint when this session's turn comes.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn turned(&self) -> CloseHint {
        std::future::poll_fn(|cx| self.poll_turn(cx)).await
    }

    /// True once the forced end came: drop the session now.
    pub fn is_forced(&self) -> bool {
        self.signal.is_forced()
    }

    /// Records how the session ended, and when our Close went out.
    pub(crate) fn finish(&mut self, outcome: SessionOutcome, close_sent: Option<Instant>) {
        self.outcome = outcome;
        self.close_sent = close_sent;
    }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        let shared = &self.drain.shared;
        let (live, forced) = shared.registry.unregister(self.key);
        metrics::sessions(live);
        let n = shared.by_transport[self.transport.index()].fetch_sub(1, Ordering::Relaxed) - 1;
        metrics::sessions_of(self.transport, n);
        // Sessions live at the forced end were counted then, all at once.
        if !forced && shared.phase() >= Phase::Draining {
            shared.count_outcome(self.outcome, 1);
            metrics::transport_closed(self.transport, self.outcome);
        }
        if let (Some(sent), SessionOutcome::Clean | SessionOutcome::TimedOut) =
            (self.close_sent, self.outcome)
        {
            metrics::close_handshake(sent.elapsed());
        }
        tracing::debug!(target: "wsdrain", key = self.key, transport = self.transport.as_str(), outcome = self.outcome.as_str(), live, "session ended");
        if live == 0 {
            shared.notify_if_idle();
        }
    }
}
