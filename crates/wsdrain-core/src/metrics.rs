//! Metrics through the `metrics` facade (feature `metrics`); no-ops without it.
//!
//! | name | kind | labels | meaning |
//! |---|---|---|---|
//! | `wsdrain_sessions` | gauge | | live sessions |
//! | `wsdrain_phase` | gauge | | 0 serving, 1 draining, 2 closing, 3 closed |
//! | `wsdrain_session_closes_total` | counter | `outcome` | sessions ended during a drain, by outcome (`clean`, `peer_closed`, `timed_out`, `ended`, `forced`) |
//! | `wsdrain_close_handshake_seconds` | histogram | | our Close sent → the peer's Close (or the timeout) |
//! | `wsdrain_upgrades_refused_total` | counter | `reason` | upgrades refused: `closing` or `max_sessions` |
//! | `wsdrain_sessions_by_transport` | gauge | `transport` | live sessions of one transport (`websocket`, `sse`, `stream`) |
//! | `wsdrain_session_closes_by_transport_total` | counter | `transport`, `outcome` | `wsdrain_session_closes_total` split by transport (sessions the forced end cut are counted in `wsdrain_session_closes_total` only) |
//! | `wsdrain_resume_errors_total` | counter | `op` | failures of the resume log: `append` (the message went out live only), `read`, `head` |
//! | `wsdrain_resume_follows_total` | counter | `start` | streams followed on a resumable connection, by how they started: `fresh`, `resumed`, `resync` |
//! | `wsdrain_resume_resyncs_total` | counter | `reason` | `wsdrain.resync` controls sent (when a stream starts, and when a gap cannot be filled later): `expired`, `epoch`, `unknown`, `unavailable` |
//! | `wsdrain_resume_replayed_total` | counter | | messages sent from the log (replay after a reconnect, and gaps of a lagging session) |

use std::time::Duration;

use wsdrain_protocol::resume::ResyncReason;

use crate::{Phase, outcome::SessionOutcome, transport::Transport};

/// Metric names, for dashboards and alerts.
pub mod names {
    /// Gauge of live sessions.
    pub const SESSIONS: &str = "wsdrain_sessions";
    /// Gauge of the phase: 0 serving, 1 draining, 2 closing, 3 closed.
    pub const PHASE: &str = "wsdrain_phase";
    /// Counter of sessions ended during a drain, label `outcome`.
    pub const SESSION_CLOSES: &str = "wsdrain_session_closes_total";
    /// Histogram of close-handshake seconds.
    pub const CLOSE_HANDSHAKE: &str = "wsdrain_close_handshake_seconds";
    /// Counter of refused upgrades, label `reason`.
    pub const UPGRADES_REFUSED: &str = "wsdrain_upgrades_refused_total";
    /// Gauge of live sessions by transport, label `transport`.
    pub const SESSIONS_BY_TRANSPORT: &str = "wsdrain_sessions_by_transport";
    /// Counter of sessions ended during a drain, labels `transport` and `outcome`.
    pub const SESSION_CLOSES_BY_TRANSPORT: &str = "wsdrain_session_closes_by_transport_total";
    /// Counter of resume log failures, label `op`.
    pub const RESUME_ERRORS: &str = "wsdrain_resume_errors_total";
    /// Counter of streams followed on resumable connections, label `start`.
    pub const RESUME_FOLLOWS: &str = "wsdrain_resume_follows_total";
    /// Counter of `wsdrain.resync` controls sent, label `reason`.
    pub const RESUME_RESYNCS: &str = "wsdrain_resume_resyncs_total";
    /// Counter of messages sent from the resume log.
    pub const RESUME_REPLAYED: &str = "wsdrain_resume_replayed_total";
}

#[cfg(feature = "metrics")]
mod imp {
    use super::*;

    pub(crate) fn sessions(live: usize) {
        metrics::gauge!(names::SESSIONS).set(live as f64);
    }
    pub(crate) fn phase(phase: Phase) {
        metrics::gauge!(names::PHASE).set(f64::from(phase as u8));
    }
    pub(crate) fn sessions_closed(outcome: SessionOutcome, n: u64) {
        metrics::counter!(names::SESSION_CLOSES, "outcome" => outcome.as_str()).increment(n);
    }
    pub(crate) fn close_handshake(took: Duration) {
        metrics::histogram!(names::CLOSE_HANDSHAKE).record(took.as_secs_f64());
    }
    pub(crate) fn upgrade_refused(reason: &'static str) {
        metrics::counter!(names::UPGRADES_REFUSED, "reason" => reason).increment(1);
    }
    pub(crate) fn sessions_of(transport: Transport, live: usize) {
        metrics::gauge!(names::SESSIONS_BY_TRANSPORT, "transport" => transport.as_str())
            .set(live as f64);
    }
    pub(crate) fn transport_closed(transport: Transport, outcome: SessionOutcome) {
        metrics::counter!(
            names::SESSION_CLOSES_BY_TRANSPORT,
            "transport" => transport.as_str(),
            "outcome" => outcome.as_str()
        )
        .increment(1);
    }
    pub(crate) fn resume_error(op: &'static str) {
        metrics::counter!(names::RESUME_ERRORS, "op" => op).increment(1);
    }
    pub(crate) fn resume_follow(start: &'static str) {
        metrics::counter!(names::RESUME_FOLLOWS, "start" => start).increment(1);
    }
    pub(crate) fn resume_resync(reason: ResyncReason) {
        metrics::counter!(names::RESUME_RESYNCS, "reason" => reason.as_str()).increment(1);
    }
    pub(crate) fn resume_replayed(n: u64) {
        metrics::counter!(names::RESUME_REPLAYED).increment(n);
    }
}

#[cfg(not(feature = "metrics"))]
mod imp {
    use super::*;

    pub(crate) fn sessions(_: usize) {}
    pub(crate) fn phase(_: Phase) {}
    pub(crate) fn sessions_closed(_: SessionOutcome, _: u64) {}
    pub(crate) fn close_handshake(_: Duration) {}
    pub(crate) fn upgrade_refused(_: &'static str) {}
    pub(crate) fn sessions_of(_: Transport, _: usize) {}
    pub(crate) fn transport_closed(_: Transport, _: SessionOutcome) {}
    pub(crate) fn resume_error(_: &'static str) {}
    pub(crate) fn resume_follow(_: &'static str) {}
    pub(crate) fn resume_resync(_: ResyncReason) {}
    pub(crate) fn resume_replayed(_: u64) {}
}

pub(crate) use imp::*;
