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
//! * `reconnect_peak_to_mean_per_drain`: the same ratio for each drain on its
//!   own, the worst one reported. A drain's reconnects alone are counted in
//!   the same 100 ms bins; its peak is its fullest bin, its mean its
//!   reconnects over the bins from the one holding its first reconnect to the
//!   one holding its last. The overall peak can fall where one drain's last
//!   reconnects overlap the next drain's first ones; a drain's own cannot.
//!
//! A peak/mean ratio of 1 is perfectly even; but it measures evenness, not
//! size: a herd that reconnects at once in two or three bins has a high mean
//! and scores low. What a reader means by a herd is read from the peak:
//!
//! * `reconnect_peak_per_second`: the most reconnects in any one second.
//! * `reconnect_peak_to_flat_per_drain`: each drain's peak per 100 ms over
//!   the *flat rate* its policy allows, the worst drain's: a drain of `n`
//!   sessions closes them over `close_span(n)` (the window, or less at the
//!   minimum close rate), so evenly spread reconnects arrive at
//!   `n / close_span(n)`. About 1 (or below: hints spread the returns
//!   further) is no herd; a burst is many times above.
//! * `disconnected_ms_p50` / `_p99` / `_max`: per client, the time it had no
//!   open connection, from its first connect to the end of the run; with the
//!   drain notice and handover this is 0.

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
    /// `websocket` or `sse`.
    pub(crate) transport: &'static str,
    /// SSE clients that gave up for good (a non-200 answer).
    pub(crate) gave_up: usize,
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
    /// `(closed, reopened)` of every reconnect (seconds since the rollout
    /// began), in no particular order.
    pub(crate) reconnects: Vec<(f64, f64)>,
    /// Most reconnects in one 100 ms bin.
    pub(crate) reconnect_peak: usize,
    /// Mean reconnects per 100 ms over the spans of the drains.
    pub(crate) reconnect_mean: f64,
    /// Smoothness of each drain on its own, in drain order.
    pub(crate) drains: Vec<DrainSmoothness>,
    /// Live sessions per replica over time.
    pub(crate) sessions: SessionSamples,
    /// Replicas started over the run.
    pub(crate) replicas_started: usize,
    /// Per client, milliseconds without an open connection, sorted.
    pub(crate) disconnected_ms: Vec<f64>,
    /// Most reconnects in one second.
    pub(crate) reconnect_peak_per_second: usize,
}

impl ModeReport {
    /// Folds the clients' logs and the fleet's terminations into one report;
    /// `rollout_start` is the clients' `t0`-relative start of the rollout.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        mode: &'static str,
        transport: &'static str,
        logs: &[ClientLog],
        terminations: &[Termination],
        sigterms: Vec<f64>,
        rollout_start: f64,
        rollout_seconds: f64,
        sessions: SessionSamples,
        replicas_started: usize,
    ) -> ModeReport {
        let mut totals = ClientLog::default();
        let mut gave_up = 0;
        let mut reconnects: Vec<(f64, f64)> = Vec::new();
        let mut disconnected_ms: Vec<f64> = logs.iter().map(|l| l.disconnected * 1000.0).collect();
        disconnected_ms.sort_by(f64::total_cmp);
        for l in logs {
            totals.notices += l.notices;
            totals.handovers += l.handovers;
            totals.failed_handovers += l.failed_handovers;
            totals.clean_closes += l.clean_closes;
            totals.other_closes += l.other_closes;
            totals.abnormal_closes += l.abnormal_closes;
            totals.failed_connects += l.failed_connects;
            totals.sent += l.sent;
            totals.echoed += l.echoed;
            totals.resent += l.resent;
            totals.lost += l.lost;
            totals.events += l.events;
            totals.duplicates += l.duplicates;
            totals.gave_up |= l.gave_up;
            gave_up += usize::from(l.gave_up);
            reconnects.extend(
                l.reconnects
                    .iter()
                    .map(|(c, r)| (c - rollout_start, r - rollout_start)),
            );
        }
        reconnects.sort_by(|a, b| a.1.total_cmp(&b.1));
        let (peak, mean) = smoothness(&reconnects, &sigterms);
        let drains = per_drain(&reconnects, &sigterms);
        let reconnect_peak_per_second = peak_in_bins(&reconnects, 1.0);
        ModeReport {
            mode,
            transport,
            gave_up,
            clients: logs.len(),
            totals,
            replicas_over_grace: terminations.iter().filter(|t| t.killed).count(),
            termination_seconds: terminations.iter().map(|t| t.took.as_secs_f64()).collect(),
            rollout_seconds,
            sigterms,
            reconnects,
            reconnect_peak: peak,
            reconnect_mean: mean,
            drains,
            sessions,
            replicas_started,
            disconnected_ms,
            reconnect_peak_per_second,
        }
    }

    /// Sets each drain's flat rate: its reconnects spread evenly over the
    /// time `policy` takes to close that many sessions.
    pub(crate) fn with_flat_rate(mut self, policy: &wsdrain::DrainPolicy) -> ModeReport {
        for d in &mut self.drains {
            if d.drain.is_some() {
                let span = policy.close_span(d.reconnects).as_secs_f64();
                d.flat = Some(flat_per_bin(d.reconnects, span));
            }
        }
        self
    }

    /// The worst drain's peak over its flat rate (0 without drains).
    pub(crate) fn worst_drain_peak_to_flat(&self) -> f64 {
        self.drains
            .iter()
            .filter_map(DrainSmoothness::peak_to_flat)
            .fold(0.0, f64::max)
    }

    /// The largest drain's flat rate per 100 ms (0 without drains).
    pub(crate) fn flat_rate(&self) -> f64 {
        self.drains
            .iter()
            .filter_map(|d| d.flat)
            .fold(0.0, f64::max)
    }

    /// The `q` quantile (nearest rank) of the per-client disconnected time.
    pub(crate) fn disconnected_quantile(&self, q: f64) -> f64 {
        quantile(&self.disconnected_ms, q)
    }

    /// Peak over mean (0 without reconnects).
    pub(crate) fn peak_to_mean(&self) -> f64 {
        if self.reconnect_mean > 0.0 {
            self.reconnect_peak as f64 / self.reconnect_mean
        } else {
            0.0
        }
    }

    /// The worst drain's peak over mean (0 without reconnects).
    pub(crate) fn worst_drain_peak_to_mean(&self) -> f64 {
        self.drains
            .iter()
            .map(DrainSmoothness::peak_to_mean)
            .fold(0.0, f64::max)
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
            "lost_messages": if self.transport == "sse" { 0 } else { t.lost },
            "reconnects": self.reconnects.len(),
            "reconnect_peak_per_100ms": self.reconnect_peak,
            "reconnect_mean_per_100ms": round3(self.reconnect_mean),
            "reconnect_peak_to_mean": round3(self.peak_to_mean()),
            "reconnect_peak_to_mean_per_drain": round3(self.worst_drain_peak_to_mean()),
            "drains": self.drains.iter().map(|d| d.json(&self.sigterms)).collect::<Vec<_>>(),
            "replicas_started": self.replicas_started,
            "replicas_over_grace": self.replicas_over_grace,
            "termination_seconds": self.termination_seconds.iter().map(|s| round3(*s)).collect::<Vec<_>>(),
            "rollout_seconds": round3(self.rollout_seconds),
            "peak_sessions_per_replica": self.sessions.peak(),
            "reconnect_peak_per_second": self.reconnect_peak_per_second,
            "reconnect_peak_to_flat_per_drain": round3(self.worst_drain_peak_to_flat()),
            "disconnected_ms_p50": round3(self.disconnected_quantile(0.5)),
            "disconnected_ms_p99": round3(self.disconnected_quantile(0.99)),
            "disconnected_ms_max": round3(self.disconnected_quantile(1.0)),
            "notices": t.notices,
            "handovers": t.handovers,
            "failed_handovers": t.failed_handovers,
            "transport": self.transport,
            "events_received": t.events,
            "events_lost": if self.transport == "sse" { t.lost } else { 0 },
            "events_duplicated": t.duplicates,
            "clients_gave_up": self.gave_up,
            "reconnect_times": self
                .reconnects
                .iter()
                .map(|(c, r)| [round3(*c), round3(*r)])
                .collect::<Vec<_>>(),
        })
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Nearest-rank quantile of sorted values (0 when empty).
pub(crate) fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Most reopen times in one bin of `width` seconds.
fn peak_in_bins(reconnects: &[(f64, f64)], width: f64) -> usize {
    let mut bins: BTreeMap<i64, usize> = BTreeMap::new();
    for &(_, reopened) in reconnects {
        *bins.entry((reopened / width).floor() as i64).or_default() += 1;
    }
    bins.values().copied().max().unwrap_or(0)
}

/// `n` arrivals evenly over `span` seconds, per 100 ms bin (all `n` in one
/// bin when the span is shorter than a bin).
pub(crate) fn flat_per_bin(n: usize, span: f64) -> f64 {
    if span <= BIN {
        n as f64
    } else {
        n as f64 * BIN / span
    }
}

/// The reopen times of each drain: drain index (the SIGTERM last before the
/// close), or `None` for a close before any SIGTERM.
fn by_drain(reconnects: &[(f64, f64)], sigterms: &[f64]) -> BTreeMap<Option<usize>, Vec<f64>> {
    let mut drains: BTreeMap<Option<usize>, Vec<f64>> = BTreeMap::new();
    for &(closed, reopened) in reconnects {
        let drain = sigterms.iter().rposition(|s| *s <= closed);
        drains.entry(drain).or_default().push(reopened);
    }
    drains
}

/// The 100 ms bins from a drain's first to its last reopen time.
fn span_bins(first: f64, last: f64) -> f64 {
    ((last - first) / BIN).floor() + 1.0
}

/// `(peak per bin, mean per bin over the drains' spans)`; see the module docs.
pub(crate) fn smoothness(reconnects: &[(f64, f64)], sigterms: &[f64]) -> (usize, f64) {
    let mut bins: BTreeMap<i64, usize> = BTreeMap::new();
    for &(_, reopened) in reconnects {
        *bins.entry((reopened / BIN).floor() as i64).or_default() += 1;
    }
    let peak = bins.values().copied().max().unwrap_or(0);
    let spans: f64 = by_drain(reconnects, sigterms)
        .values()
        .map(|times| {
            let (first, last) = bounds(times);
            span_bins(first, last)
        })
        .sum();
    let mean = if spans > 0.0 {
        reconnects.len() as f64 / spans
    } else {
        0.0
    };
    (peak, mean)
}

fn bounds(times: &[f64]) -> (f64, f64) {
    let first = times.iter().copied().fold(f64::INFINITY, f64::min);
    let last = times.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (first, last)
}

/// How evenly one drain's clients came back.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DrainSmoothness {
    /// Index into the SIGTERMs (`None`: closes before the first SIGTERM).
    pub(crate) drain: Option<usize>,
    /// Reconnects of this drain.
    pub(crate) reconnects: usize,
    /// Seconds (since the rollout began) of its first and last reconnect.
    pub(crate) first: f64,
    /// See `first`.
    pub(crate) last: f64,
    /// Most of its reconnects in one 100 ms bin.
    pub(crate) peak: usize,
    /// Its reconnects over the bins from its first to its last reconnect.
    pub(crate) mean: f64,
    /// Its reconnects per 100 ms if spread evenly over the time the policy
    /// takes to close them (`None` for closes before any SIGTERM).
    pub(crate) flat: Option<f64>,
}

impl DrainSmoothness {
    /// Peak over mean (0 without reconnects).
    pub(crate) fn peak_to_mean(&self) -> f64 {
        if self.mean > 0.0 {
            self.peak as f64 / self.mean
        } else {
            0.0
        }
    }

    /// Peak over the flat rate.
    pub(crate) fn peak_to_flat(&self) -> Option<f64> {
        self.flat.filter(|f| *f > 0.0).map(|f| self.peak as f64 / f)
    }

    fn json(&self, sigterms: &[f64]) -> Value {
        json!({
            "drain": self.drain,
            "sigterm_seconds": self.drain.and_then(|i| sigterms.get(i)).map(|s| round3(*s)),
            "reconnects": self.reconnects,
            "first_reconnect_seconds": round3(self.first),
            "last_reconnect_seconds": round3(self.last),
            "reconnect_peak_per_100ms": self.peak,
            "reconnect_mean_per_100ms": round3(self.mean),
            "reconnect_peak_to_mean": round3(self.peak_to_mean()),
            "flat_rate_per_100ms": self.flat.map(round3),
            "reconnect_peak_to_flat": self.peak_to_flat().map(round3),
        })
    }
}

/// Each drain's reconnects binned on their own; see the module docs.
pub(crate) fn per_drain(reconnects: &[(f64, f64)], sigterms: &[f64]) -> Vec<DrainSmoothness> {
    by_drain(reconnects, sigterms)
        .into_iter()
        .map(|(drain, times)| {
            let (first, last) = bounds(&times);
            let bin = |t: f64| (t / BIN).floor() as i64;
            let mut bins: BTreeMap<i64, usize> = BTreeMap::new();
            for t in &times {
                *bins.entry(bin(*t)).or_default() += 1;
            }
            let span = (bin(last) - bin(first) + 1) as f64;
            DrainSmoothness {
                drain,
                reconnects: times.len(),
                first,
                last,
                peak: bins.values().copied().max().unwrap_or(0),
                mean: times.len() as f64 / span,
                flat: None,
            }
        })
        .collect()
}

/// A row of the table: its name and how to read it from a mode.
type Row = (&'static str, fn(&ModeReport) -> String);

fn ws_rows() -> Vec<Row> {
    vec![
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
        ("reconnects (and handovers)", |m| {
            m.reconnects.len().to_string()
        }),
        ("replicas over grace (SIGKILL)", |m| {
            m.replicas_over_grace.to_string()
        }),
    ]
}

fn sse_rows() -> Vec<Row> {
    vec![
        ("clients", |m| m.clients.to_string()),
        ("clean ends (retry: + last chunk)", |m| {
            m.totals.clean_closes.to_string()
        }),
        ("other clean ends (no retry:)", |m| {
            m.totals.other_closes.to_string()
        }),
        ("abrupt ends (cut stream)", |m| {
            m.totals.abnormal_closes.to_string()
        }),
        ("failed connects", |m| m.totals.failed_connects.to_string()),
        ("clients that gave up (non-200)", |m| m.gave_up.to_string()),
        ("events received", |m| m.totals.events.to_string()),
        ("events lost", |m| m.totals.lost.to_string()),
        ("events received twice", |m| m.totals.duplicates.to_string()),
        ("reconnects", |m| m.reconnects.len().to_string()),
        ("replicas over grace (SIGKILL)", |m| {
            m.replicas_over_grace.to_string()
        }),
    ]
}

/// The human table: one row per measure, one column per mode. The herd
/// comes first, as a reader means it (peaks, against the flat rate the
/// window allows, and the time to roll); peak / mean, which measures
/// evenness and not size, last and labelled so.
pub(crate) fn table(modes: &[ModeReport], lb: &str) -> String {
    let sse = modes.first().is_some_and(|m| m.transport == "sse");
    let closes: Vec<Row> = if sse { sse_rows() } else { ws_rows() };
    let sections: [(&str, &[Row]); 4] = [
        (
            "the herd: what the remaining replicas see",
            &[
                ("reconnect peak / 100 ms", |m| m.reconnect_peak.to_string()),
                ("reconnect peak / s", |m| {
                    m.reconnect_peak_per_second.to_string()
                }),
                ("flat rate / 100 ms (window allows)", |m| {
                    format!("{:.1}", m.flat_rate())
                }),
                ("worst drain peak / flat rate", |m| {
                    format!("{:.2}", m.worst_drain_peak_to_flat())
                }),
                ("time to roll (s)", |m| format!("{:.1}", m.rollout_seconds)),
            ],
        ),
        (
            "the clients: time without a connection",
            &[
                ("disconnected ms p50", |m| {
                    format!("{:.0}", m.disconnected_quantile(0.5))
                }),
                ("disconnected ms p99", |m| {
                    format!("{:.0}", m.disconnected_quantile(0.99))
                }),
                ("disconnected ms max", |m| {
                    format!("{:.0}", m.disconnected_quantile(1.0))
                }),
                ("handovers (failed)", |m| {
                    format!("{} ({})", m.totals.handovers, m.totals.failed_handovers)
                }),
            ],
        ),
        (
            if sse {
                "ends and events"
            } else {
                "closes and messages"
            },
            &closes,
        ),
        (
            "evenness: peak / mean over the reconnects' own span (not size: a burst scores low)",
            &[
                ("reconnect mean / 100 ms", |m| {
                    format!("{:.2}", m.reconnect_mean)
                }),
                ("peak / mean", |m| format!("{:.2}", m.peak_to_mean())),
                ("worst drain peak / mean", |m| {
                    format!("{:.2}", m.worst_drain_peak_to_mean())
                }),
            ],
        ),
    ];
    let mut out = format!("load balancer: {lb}\n");
    let w = 36;
    let c = 20;
    out.push_str(&format!("{:<w$}", "measure"));
    for m in modes {
        out.push_str(&format!("{:>c$}", m.mode));
    }
    out.push('\n');
    for (title, rows) in sections {
        out.push_str(&format!("{title}\n"));
        for (name, f) in rows {
            out.push_str(&format!("  {name:<w2$}", w2 = w - 2));
            for m in modes {
                out.push_str(&format!("{:>c$}", f(m)));
            }
            out.push('\n');
        }
    }
    // One row per drain: ratio (peak / mean) of its reconnects alone.
    let mut names: Vec<Option<usize>> = modes
        .iter()
        .flat_map(|m| m.drains.iter().map(|d| d.drain))
        .collect();
    names.sort_unstable();
    names.dedup();
    for drain in names {
        let name = match drain {
            Some(i) => format!("  drain {} peak / mean", i + 1),
            None => "  before any SIGTERM".to_string(),
        };
        out.push_str(&format!("{name:<w$}"));
        for m in modes {
            let cell = m.drains.iter().find(|d| d.drain == drain).map_or_else(
                || "-".to_string(),
                |d| format!("{:.2} ({}/{:.2})", d.peak_to_mean(), d.peak, d.mean),
            );
            out.push_str(&format!("{cell:>c$}"));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{flat_per_bin, per_drain, quantile, smoothness};

    #[test]
    fn quantiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), 50.0);
        assert_eq!(quantile(&v, 0.99), 99.0);
        assert_eq!(quantile(&v, 1.0), 100.0);
        assert_eq!(quantile(&[0.0, 0.0, 7.0], 0.5), 0.0);
        assert_eq!(quantile(&[], 0.5), 0.0);
    }

    #[test]
    fn a_burst_is_far_above_the_flat_rate() {
        // 300 sessions over a 3 s window: 10 per 100 ms. All 300 in one
        // 100 ms bin is 30 times that; a window of 0 allows the burst.
        assert!((flat_per_bin(300, 3.0) - 10.0).abs() < 1e-9);
        assert_eq!(flat_per_bin(300, 0.0), 300.0);
    }

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

    #[test]
    fn each_drain_is_binned_on_its_own() {
        // Drain 0 at t=0: 0.05 | 0.13 0.12 | - | 0.34 -> bins 0..3, peak 2,
        // mean 4/4. Drain 1 at t=1: its first reconnects fall in the same bin
        // as drain 0's (0.1..0.2), which raises the overall peak to 4 but not
        // its own: 0.11 0.15 | 0.25 | 0.36 -> bins 1..3, peak 2, mean 4/3. A
        // close before the first SIGTERM is a drain of its own.
        let r = [
            (0.5, 0.05),
            (0.6, 0.13),
            (0.7, 0.12),
            (0.8, 0.34),
            (1.1, 0.11),
            (1.2, 0.15),
            (1.3, 0.25),
            (1.4, 0.36),
            (-0.2, 0.55),
        ];
        let sigterms = [0.0, 1.0];
        let d = per_drain(&r, &sigterms);
        assert_eq!(
            d.iter().map(|d| d.drain).collect::<Vec<_>>(),
            [None, Some(0), Some(1)]
        );
        assert_eq!(
            d.iter().map(|d| d.reconnects).collect::<Vec<_>>(),
            [1, 4, 4]
        );
        assert_eq!((d[0].peak, d[0].mean), (1, 1.0));
        assert_eq!(d[1].peak, 2);
        assert!((d[1].mean - 1.0).abs() < 1e-9, "{:?}", d[1]);
        assert!((d[1].peak_to_mean() - 2.0).abs() < 1e-9);
        assert_eq!(d[2].peak, 2);
        assert!((d[2].mean - 4.0 / 3.0).abs() < 1e-9, "{:?}", d[2]);
        assert!((d[2].peak_to_mean() - 1.5).abs() < 1e-9);
        assert!((d[2].first - 0.11).abs() < 1e-9 && (d[2].last - 0.36).abs() < 1e-9);
        assert_eq!(smoothness(&r, &sigterms).0, 4);
    }
}
