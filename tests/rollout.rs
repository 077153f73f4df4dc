//! A CI-sized rolling deployment behind a real HAProxy: the built `rollout`
//! example (3 replicas of `echo`, 200 wsdrain clients, one round; then the
//! same with the drain notice and clients that hand over; then with
//! `echo --plain`), judged from its `--json` report.
#![allow(clippy::unwrap_used)]

mod common;

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

const CLIENTS: u64 = 200;

fn haproxy_on_path() -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join("haproxy").is_file()))
}

fn count(mode: &Value, key: &str) -> u64 {
    mode.get(key)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("report lacks {key}: {mode}"))
}

fn number(mode: &Value, key: &str) -> f64 {
    mode.get(key)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("report lacks {key}: {mode}"))
}

#[test]
fn rolling_deployment_behind_haproxy_is_invisible_to_clients() {
    assert!(
        haproxy_on_path(),
        "`haproxy` is not on PATH: this test needs a real HAProxy (scripts/setup installs \
         the Debian package `haproxy`)"
    );
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    let mut child = Command::new(common::example("rollout"))
        .args([
            "--lb",
            "haproxy",
            "--replicas",
            "3",
            "--rounds",
            "1",
            "--baseline",
            "--notice",
        ])
        .args(["--clients", &CLIENTS.to_string()])
        .arg("--echo")
        .arg(common::example("echo"))
        .arg("--json")
        .arg(&json)
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    // The three modes take ~10 s each here; the bound only proves one exists.
    let limit = Duration::from_secs(150);
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("rollout still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "rollout failed: {status}");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["settings"]["lb"], "haproxy", "{report}");
    assert_eq!(report["settings"]["lb_stand_in"], false);

    let w = &report["wsdrain"];
    assert_eq!(count(w, "clients"), CLIENTS);
    assert_eq!(count(w, "abnormal_closes"), 0, "{w}");
    assert_eq!(count(w, "lost_messages"), 0, "{w}");
    assert_eq!(count(w, "replicas_over_grace"), 0, "{w}");
    // Every client sat on an old replica, so each saw at least one close,
    // and every close was a 1001 with a retry hint.
    assert!(count(w, "clean_closes") >= CLIENTS, "{w}");
    assert_eq!(count(w, "other_closes"), 0, "{w}");
    assert!(count(w, "reconnects") >= CLIENTS, "{w}");
    assert!(count(w, "messages_echoed") > 0, "{w}");
    assert!(count(w, "reconnect_peak_per_100ms") > 0, "{w}");

    // Without the notice every client waits its hint (0.5-2 s) unconnected.
    assert!(number(w, "disconnected_ms_p50") >= 400.0, "{w}");
    assert_eq!(count(w, "handovers"), 0, "{w}");

    // With it, every client hands over and is never without a connection.
    let n = &report["wsdrain_notice"];
    assert_eq!(report["settings"]["notice_lead_ms"], 1000, "{report}");
    assert_eq!(count(n, "clients"), CLIENTS);
    assert_eq!(number(n, "disconnected_ms_max"), 0.0, "{n}");
    assert!(count(n, "handovers") >= CLIENTS, "{n}");
    assert!(count(n, "notices") >= CLIENTS, "{n}");
    assert_eq!(count(n, "failed_handovers"), 0, "{n}");
    assert_eq!(count(n, "abnormal_closes"), 0, "{n}");
    assert_eq!(count(n, "lost_messages"), 0, "{n}");
    assert_eq!(count(n, "replicas_over_grace"), 0, "{n}");
    // The server closed nobody: every client left first, after its notice.
    assert_eq!(
        count(n, "clean_closes") + count(n, "other_closes"),
        0,
        "{n}"
    );
    assert!(count(n, "messages_echoed") > 0, "{n}");

    let b = &report["baseline"];
    assert_eq!(count(b, "clients"), CLIENTS);
    for mode in [w, n, b] {
        for key in [
            "reconnect_peak_per_second",
            "reconnect_peak_to_flat_per_drain",
            "disconnected_ms_p99",
        ] {
            assert!(mode.get(key).is_some_and(Value::is_number), "{key}: {mode}");
        }
        // The clients' bookkeeping adds up: every message sent was echoed,
        // resent after a clean close, or lost.
        assert_eq!(
            count(mode, "messages_sent"),
            count(mode, "messages_echoed")
                + count(mode, "resent_messages")
                + count(mode, "lost_messages"),
            "{mode}"
        );
    }
    // What plain axum::serve gives, recorded side by side (not asserted).
    eprintln!(
        "baseline: abnormal_closes {} clean_closes {} lost_messages {} failed_connects {} \
         reconnect_peak_per_100ms {} peak/flat {} disconnected_ms p50 {}; wsdrain: clean_closes {} \
         failed_connects {} reconnect_peak_per_100ms {} mean {} peak/flat {} disconnected_ms p50 {}; \
         with the notice: handovers {} peak/flat {} disconnected_ms max {}",
        count(b, "abnormal_closes"),
        count(b, "clean_closes"),
        count(b, "lost_messages"),
        count(b, "failed_connects"),
        count(b, "reconnect_peak_per_100ms"),
        b["reconnect_peak_to_flat_per_drain"],
        b["disconnected_ms_p50"],
        count(w, "clean_closes"),
        count(w, "failed_connects"),
        count(w, "reconnect_peak_per_100ms"),
        w["reconnect_mean_per_100ms"],
        w["reconnect_peak_to_flat_per_drain"],
        w["disconnected_ms_p50"],
        count(n, "handovers"),
        n["reconnect_peak_to_flat_per_drain"],
        n["disconnected_ms_max"],
    );
}
