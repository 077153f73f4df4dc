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
    assert!(
        report.contains("; forced end by a second trigger"),
        "{report}"
    );
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

#[test]
fn every_bad_setting_is_reported_at_once_and_a_misspelled_one_is_named() {
    let out = std::process::Command::new(common::example("echo"))
        .args(["--listen", "127.0.0.1:0"])
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env("RUST_LOG", "warn")
        .env("WSDRAIN_DRIAN_DELAY", "5s")
        .env("WSDRAIN_CLOSE_WINDOW", "")
        .env("WSDRAIN_CLOSE_CODE", "x")
        .env("WSDRAIN_ADMIN_TOKEN", "0123456789abcdef-secret")
        .env("WSDRAIN_ADMIN_PUBLIC", "maybe")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty(), "no listener on bad config");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(
        lines.iter().any(|l| l.ends_with(
            " WARN wsdrain: WSDRAIN_DRIAN_DELAY is not a wsdrain setting \
             (did you mean WSDRAIN_DRAIN_DELAY?); ignored"
        )),
        "{stderr}"
    );
    let errors: Vec<&str> = lines
        .into_iter()
        .filter(|l| !l.contains(" WARN "))
        .collect();
    assert_eq!(
        errors,
        [
            r#"echo: bad configuration: WSDRAIN_ADMIN_PUBLIC: "maybe" is not a boolean (write 1, true, yes, on or 0, false, no, off)"#,
            "echo: bad configuration: 2 settings refused:",
            r#"  WSDRAIN_CLOSE_WINDOW: invalid duration "" (write e.g. 5s, 1500ms, 1m30s)"#,
            r#"  WSDRAIN_CLOSE_CODE: invalid number "x""#,
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_start_says_the_policy_and_what_sigterm_will_do() {
    // `yes` is honoured as `1`: a public admin address is allowed.
    let env = &[
        ("WSDRAIN_DRAIN_DELAY", "3s"),
        ("WSDRAIN_ADMIN_TOKEN", "0123456789abcdef-secret"),
        ("WSDRAIN_ADMIN_LISTEN", "0.0.0.0:0"),
        ("WSDRAIN_ADMIN_PUBLIC", "yes"),
    ];
    let mut server = Server::start("echo", env, &[]);
    let next = || server.lines.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(
        [next(), next()],
        [
            "policy: drain delay 3s, close window 12s, close timeout 5s, grace period 30s, \
             retry hints 1s to 5s, close code 1001",
            "on SIGTERM or SIGINT: /readyz answers 503 at once; 3s later sessions get \
             Close(1001, retry hint), at least 100 a second, all within 12s; the forced end \
             28s after the signal, or at a second one",
        ]
    );
    server.signal(Signal::SIGINT);
    // The second only once the first was seen (two pending SIGINTs are one).
    let t0 = Instant::now();
    while http(server.addr, "/readyz", &[]).await.status != 503 {
        assert!(t0.elapsed() < Duration::from_secs(5), "SIGINT not seen");
    }
    server.signal(Signal::SIGINT);
    let (code, _) = server.wait_exit(Duration::from_secs(10));
    assert_eq!(code, Some(0));
    let report = server.rest().join("\n");
    assert!(
        report.contains("drained: drain by SIGINT in ")
            && report.contains(": 0 sessions at closing,")
            && report.ends_with("0 upgrades refused; forced end by a second trigger"),
        "{report}"
    );
}
