//! The `echo` example as a real process, driven by real signals.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Ending, Server, UPGRADE, hint_ms, http, read_to_end, ws_connect};
use nix::sys::signal::Signal;

const QUICK: &[(&str, &str)] = &[
    ("WSDRAIN_DRAIN_DELAY", "1s"),
    ("WSDRAIN_CLOSE_WINDOW", "500ms"),
    ("WSDRAIN_CLOSE_TIMEOUT", "2s"),
    ("WSDRAIN_GRACE_PERIOD", "10s"),
    ("WSDRAIN_RETRY_AFTER_MIN", "300ms"),
    ("WSDRAIN_RETRY_AFTER_MAX", "900ms"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_every_session_with_a_hint_and_exits_zero() {
    let mut server = Server::start("echo", QUICK, &[]);
    let addr = server.addr;
    let mut clients = Vec::new();
    for _ in 0..20 {
        clients.push(tokio::spawn(read_to_end(ws_connect(addr).await)));
    }
    let before = http(addr, "/readyz", &[]).await;
    assert_eq!(before.status, 200);
    assert_eq!(before.body, r#"{"phase":"serving","sessions":20}"#);

    let t0 = Instant::now();
    server.signal(Signal::SIGTERM);
    // Readiness turns 503 at once; liveness stays 200.
    loop {
        let r = http(addr, "/readyz", &[]).await;
        if r.status == 503 {
            assert!(r.body.contains(r#""phase":"draining""#), "{}", r.body);
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(1),
            "readiness never turned 503"
        );
    }
    assert!(
        t0.elapsed() < Duration::from_millis(900),
        "503 before the drain delay ended"
    );
    assert_eq!(http(addr, "/livez", &[]).await.status, 200);

    // After the drain delay, upgrades are refused with advice.
    let refused = loop {
        let r = http(addr, "/ws", UPGRADE).await;
        if r.status == 503 {
            break r;
        }
        assert_eq!(r.status, 101);
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "upgrades never refused"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        t0.elapsed() >= Duration::from_secs(1),
        "refused only after the drain delay"
    );
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert_eq!(refused.header("connection"), Some("close"));

    for c in clients {
        match c.await.unwrap() {
            Ending::Closed { code, reason, .. } => {
                assert_eq!(code, 1001, "{reason}");
                let hint = hint_ms(&reason).unwrap_or_else(|| panic!("no hint in {reason:?}"));
                assert!((300..=900).contains(&hint), "{hint}");
                assert!(reason.starts_with("going away; "), "{reason}");
            }
            other => panic!("abnormal end: {other:?}"),
        }
    }
    let (code, _) = server.wait_exit(Duration::from_secs(10));
    assert_eq!(code, Some(0));
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "exit before the grace period"
    );
    let report = server.rest().join("\n");
    assert!(report.contains("by SIGTERM"), "{report}");
    assert!(report.contains("0 forced"), "{report}");
    assert!(
        report.contains("20 clean") || report.contains("21 clean"),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_sigterm_ends_at_once() {
    let slow = &[
        ("WSDRAIN_DRAIN_DELAY", "5s"),
        ("WSDRAIN_GRACE_PERIOD", "30s"),
    ];
    let mut server = Server::start("echo", slow, &[]);
    let addr = server.addr;
    let mut clients = Vec::new();
    for _ in 0..5 {
        clients.push(tokio::spawn(read_to_end(ws_connect(addr).await)));
    }
    server.signal(Signal::SIGTERM);
    while http(addr, "/readyz", &[]).await.status != 503 {}
    let t1 = Instant::now();
    server.signal(Signal::SIGTERM);
    let (code, _) = server.wait_exit(Duration::from_secs(3));
    assert!(
        t1.elapsed() < Duration::from_secs(3),
        "the second signal must not wait for the delay"
    );
    assert_eq!(code, Some(0));
    let report = server.rest().join("\n");
    assert!(report.contains("5 forced"), "{report}");
    assert!(report.contains("forced end: SecondTrigger"), "{report}");
    for c in clients {
        // Forced: the sessions are dropped without a Close.
        assert!(matches!(c.await.unwrap(), Ending::Abnormal(_)));
    }
}

#[test]
fn bad_configuration_exits_2_naming_the_setting() {
    for (name, value) in [
        ("WSDRAIN_CLOSE_WINDOW", "soon"),
        ("WSDRAIN_CLOSE_CODE", "1006"),
        ("WSDRAIN_GRACE_PERIOD", "3s"),
    ] {
        let out = std::process::Command::new(common::example("echo"))
            .args(["--listen", "127.0.0.1:0"])
            .env(name, value)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{name}={value}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        assert!(stderr.contains(name), "{name} not named in {stderr}");
        assert!(out.stdout.is_empty(), "no listener on bad config");
    }
}
