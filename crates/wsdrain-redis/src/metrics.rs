//! The `metrics` feature: the log's own failures, beside the feed's
//! `wsdrain_resume_errors_total`.
//!
//! | name | type | labels | meaning |
//! |---|---|---|---|
//! | `wsdrain_redis_errors_total` | counter | `op` | `connect` (an attempt failed), `command` (a command failed or timed out), `tail` (the tail's connection failed) |
//! | `wsdrain_redis_connected` | gauge | `connection` | 1 while the `commands` or the `tail` connection is up |

/// Metric names, for dashboards and alerts.
pub mod names {
    /// Counter of failures, label `op`.
    pub const ERRORS: &str = "wsdrain_redis_errors_total";
    /// Gauge, 1 while connected, label `connection`.
    pub const CONNECTED: &str = "wsdrain_redis_connected";
}

#[cfg(feature = "metrics")]
mod imp {
    use super::names;

    pub(crate) fn error(op: &'static str) {
        metrics::counter!(names::ERRORS, "op" => op).increment(1);
    }

    pub(crate) fn connected(connection: &'static str, up: bool) {
        metrics::gauge!(names::CONNECTED, "connection" => connection).set(f64::from(u8::from(up)));
    }
}

#[cfg(not(feature = "metrics"))]
mod imp {
    pub(crate) fn error(_: &'static str) {}
    pub(crate) fn connected(_: &'static str, _: bool) {}
}

pub(crate) use imp::*;
