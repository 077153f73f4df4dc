//! What a run measured: the numbers per mode, the table and the JSON.
//!
//! Reconnect smoothness is counted in 100 ms bins of the reconnect times
//! (when a client's next connection opened after the server closed the
//! previous one). Each reconnect belongs to the drain of the replica that was
//! SIGTERMed last before the close that caused it.
//!
//! * `reconnect_peak_per_100ms`: the most reconnects in any one bin.
//! * `reconnect_mean_per_100ms`: reconnects divided by the bins they span,
//!   per drain: a drain whose reconnects run from its first to its last one
//!   over 4.2 s spans 42 bins; the mean is the sum of reconnects over the sum
//!   of the spans of all drains. Quiet time between drains does not dilute it.
//!
//! A peak/mean ratio of 1 is perfectly even; a herd that reconnects at once is
//! far above.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::{clients::ClientLog, fleet::Termination, lb::SessionSamples};

/// Bin width of the reconnect counts, in seconds.
pub(crate) const BIN: f64 = 0.1;

/// Everything one mode of a run measured.
#[derive(Debug, Clone)]
pub(crate) struct ModeReport {
    /// `wsdrain` or `baseline`.
    pub(crate) mode: &'static str,
    /// Clients started.
    pub(crate) clients: usize,
    /// Sums over all clients.
    pub(crate) totals: ClientLog,
    /// Replicas that needed SIGKILL.
    pub(crate) replicas_over_grace: usize,
    /// SIGTERM to exit, per replaced replica (seconds).
    pub(crate) termination_seconds: Vec<f64>,
    /// From the first new replica's start to the last old replica's exit.
    pub(crate) rollout_seconds: f64,
    /// Seconds (since the rollout began) of each SIGTERM.
    pub(crate) sigterms: Vec<f64>,
    /// Reconnect times (seconds since the rollout began).
    pub(crate) reconnect_times: Vec<f64>,
    /// Most reconnects in one 100 ms bin.
    pub(crate) reconnect_peak: usize,
    /// Mean reconnects per 100 ms over the spans of the drains.
    pub(crate) reconnect_mean: f64,
    /// Live sessions per replica over time.
    pub(crate) sessions: SessionSamples,
    /// Replicas started over the run.
    pub(crate) replicas_started: usize,
}

impl ModeReport {
    /// Folds the clients' logs and the fleet's terminations into one report;
    /// `rollout_start` is the clients' `t0`-relative start of the rollout.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        mode: &'static str,
        logs: &[ClientLog],
        terminations: &[Termination],
        sigterms: Vec<f64>,
        rollout_start: f64,
        rollout_seconds: f64,
        sessions: SessionSamples,
        replicas_started: usize,
    ) -> ModeReport {
        let mut totals = ClientLog::default();
        let mut reconnects: Vec<(f64, f64)> = Vec::new();
        for l in logs {
            totals.clean_closes += l.clean_closes;
            totals.other_closes += l.other_closes;
            totals.abnormal_closes += l.abnormal_closes;
            totals.failed_connects += l.failed_connects;
            totals.sent += l.sent;
            totals.echoed += l.echoed;
            totals.resent += l.resent;
            totals.lost += l.lost;
            reconnects.extend(
                l.reconnects
                    .iter()
                    .map(|(c, r)| (c - rollout_start, r - rollout_start)),
            );
        }
        let (peak, mean) = smoothness(&reconnects, &sigterms);
        ModeReport {
            mode,
            clients: logs.len(),
            totals,
            replicas_over_grace: terminations.iter().filter(|t| t.killed).count(),
            termination_seconds: terminations.iter().map(|t| t.took.as_secs_f64()).collect(),
            rollout_seconds,
            sigterms,
            reconnect_times: reconnects.iter().map(|(_, r)| *r).collect(),
            reconnect_peak: peak,
            reconnect_mean: mean,
            sessions,
            replicas_started,
        }
    }

    /// Peak over mean (0 without reconnects).
    pub(crate) fn peak_to_mean(&self) -> f64 {
        if self.reconnect_mean > 0.0 {
            self.reconnect_peak as f64 / self.reconnect_mean
        } else {
            0.0
        }
    }

    /// The JSON object of this mode.
    pub(crate) fn json(&self) -> Value {
        let t = &self.totals;
        json!({
            "clients": self.clients,
            "clean_closes": t.clean_closes,
            "other_closes": t.other_closes,
            "abnormal_closes": t.abnormal_closes,
            "failed_connects": t.failed_connects,
            "messages_sent": t.sent,
            "messages_echoed": t.echoed,
            "resent_messages": t.resent,
            "lost_messages": t.lost,
            "reconnects": self.reconnect_times.len(),
            "reconnect_peak_per_100ms": self.reconnect_peak,
            "reconnect_mean_per_100ms": round3(self.reconnect_mean),
            "reconnect_peak_to_mean": round3(self.peak_to_mean()),
            "replicas_started": self.replicas_started,
            "replicas_over_grace": self.replicas_over_grace,
            "termination_seconds": self.termination_seconds.iter().map(|s| round3(*s)).collect::<Vec<_>>(),
            "rollout_seconds": round3(self.rollout_seconds),
            "peak_sessions_per_replica": self.sessions.peak(),
        })
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// `(peak per bin, mean per bin over the drains' spans)`; see the module docs.
pub(crate) fn smoothness(reconnects: &[(f64, f64)], sigterms: &[f64]) -> (usize, f64) {
    let mut bins: BTreeMap<i64, usize> = BTreeMap::new();
    // drain index (or -1 before any SIGTERM) -> (first, last, count)
    let mut drains: BTreeMap<i64, (f64, f64, usize)> = BTreeMap::new();
    for &(closed, reopened) in reconnects {
        *bins.entry((reopened / BIN).floor() as i64).or_default() += 1;
        let drain = sigterms
            .iter()
            .rposition(|s| *s <= closed)
            .map_or(-1, |i| i as i64);
        let e = drains.entry(drain).or_insert((reopened, reopened, 0));
        e.0 = e.0.min(reopened);
        e.1 = e.1.max(reopened);
        e.2 += 1;
    }
    let peak = bins.values().copied().max().unwrap_or(0);
    let spans: f64 = drains
        .values()
        .map(|(first, last, _)| ((last - first) / BIN).floor() + 1.0)
        .sum();
    let count: usize = drains.values().map(|d| d.2).sum();
    let mean = if spans > 0.0 {
        count as f64 / spans
    } else {
        0.0
    };
    (peak, mean)
}

/// A row of the table: its name and how to read it from a mode.
type Row = (&'static str, fn(&ModeReport) -> String);

/// The human table: one row per measure, one column per mode.
pub(crate) fn table(modes: &[ModeReport], lb: &str) -> String {
    let rows: [Row; 15] = [
        ("clients", |m| m.clients.to_string()),
        ("clean closes (1001 + hint)", |m| {
            m.totals.clean_closes.to_string()
        }),
        ("other closes", |m| m.totals.other_closes.to_string()),
        ("abnormal closes (1006)", |m| {
            m.totals.abnormal_closes.to_string()
        }),
        ("failed connects", |m| m.totals.failed_connects.to_string()),
        ("messages sent", |m| m.totals.sent.to_string()),
        ("messages echoed", |m| m.totals.echoed.to_string()),
        ("resent after a clean close", |m| {
            m.totals.resent.to_string()
        }),
        ("lost messages", |m| m.totals.lost.to_string()),
        ("reconnects", |m| m.reconnect_times.len().to_string()),
        ("reconnect peak / 100 ms", |m| m.reconnect_peak.to_string()),
        ("reconnect mean / 100 ms", |m| {
            format!("{:.2}", m.reconnect_mean)
        }),
        ("peak / mean", |m| format!("{:.2}", m.peak_to_mean())),
        ("replicas over grace (SIGKILL)", |m| {
            m.replicas_over_grace.to_string()
        }),
        ("rollout seconds", |m| format!("{:.1}", m.rollout_seconds)),
    ];
    let mut out = format!("load balancer: {lb}\n");
    let w = 32;
    out.push_str(&format!("{:<w$}", "measure"));
    for m in modes {
        out.push_str(&format!("{:>12}", m.mode));
    }
    out.push('\n');
    for (name, f) in &rows {
        out.push_str(&format!("{name:<w$}"));
        for m in modes {
            out.push_str(&format!("{:>12}", f(m)));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::smoothness;

    #[test]
    fn mean_is_over_each_drains_span() {
        // Drain 0 at t=0: 4 reconnects over 0.0..0.35 (4 bins); drain 1 at
        // t=10: 2 reconnects in one bin. Mean = 6 / 5, peak = 2.
        let r = [
            (0.1, 0.0),
            (0.1, 0.12),
            (0.2, 0.25),
            (0.2, 0.35),
            (10.1, 11.02),
            (10.2, 11.05),
        ];
        let (peak, mean) = smoothness(&r, &[0.0, 10.0]);
        assert_eq!(peak, 2);
        assert!((mean - 1.2).abs() < 1e-9, "{mean}");
    }
}
