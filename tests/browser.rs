//! Headless Chromium against the chat example: two tabs chat through a real
//! server process, the server drains on a real SIGTERM, each tab reports the
//! 1001 close with its hint (`CloseEvent.code/.reason/.wasClean`) and
//! reconnects after the hint to a new server process on the same port.
//!
//! With the drain notice (`WSDRAIN_NOTICE_LEAD`) and two servers behind a
//! switchable forwarder (the load balancer's part), each tab hands over to a
//! new connection before the old one closes: the page never is without an
//! open connection. When the new connection fails, it falls back to the hint.
//! With the health probe on (`?health`), a page whose server restarts makes
//! no failed handshake, and a 503 with `Retry-After` paces its probes.
//!
//! The test drives the browser itself over the DevTools protocol (a WebSocket
//! on `--remote-debugging-port`), so it needs nothing but `chromium` (Debian
//! package `chromium`, installed by `scripts/setup`). Without it the test fails.
#![allow(clippy::unwrap_used)]

mod common;

use std::{
    net::SocketAddr,
    path::Path,
    time::{Duration, Instant},
};

use common::{
    Server,
    browser::{Browser, Forwarder, Tab, chromium, nth_of},
};
use nix::sys::signal::Signal;
use serde_json::{Value, json};

const ENV: &[(&str, &str)] = &[
    ("WSDRAIN_DRAIN_DELAY", "0s"),
    ("WSDRAIN_CLOSE_WINDOW", "300ms"),
    ("WSDRAIN_CLOSE_TIMEOUT", "2s"),
    ("WSDRAIN_GRACE_PERIOD", "10s"),
    ("WSDRAIN_RETRY_AFTER_MIN", "1500ms"),
    ("WSDRAIN_RETRY_AFTER_MAX", "2s"),
];

#[tokio::test]
async fn tabs_see_the_drain_close_and_come_back_after_the_hint() {
    let chromium = chromium();
    assert!(Path::new(&chromium).exists());
    let mut old = Server::start("chat", ENV, &[]);
    let addr = old.addr;
    let page = format!("http://{addr}/");
    let mut browser = Browser::launch().await;
    let tabs = [browser.open(&page).await, browser.open(&page).await];
    for tab in &tabs {
        browser
            .wait_event(tab, "open", |e| nth_of(e, "open", 0))
            .await;
    }

    // The tabs chat through the server.
    let sent = browser
        .eval(&tabs[0], "window.chat.send('hello from tab 1')")
        .await;
    assert_eq!(sent, json!(true));
    browser
        .wait_event(&tabs[1], "the chat line", |e| {
            e.iter()
                .find(|m| {
                    m["type"] == "message"
                        && m["data"]
                            .as_str()
                            .is_some_and(|d| d.contains("hello from tab 1"))
                })
                .cloned()
        })
        .await;

    // The module's pure rules, with a fixed random number.
    let rules = browser
        .eval(
            &tabs[0],
            r#"import("/wsdrain.js").then((m) => {
                const half = () => 0.5;
                return [
                    m.retryAfterMs("going away; retry-after-ms=1500"),
                    m.retryAfterMs("going away"),
                    m.reconnectDelay(1001, "going away; retry-after-ms=1500", 3, {}, half).delay,
                    m.reconnectDelay(1012, "", 0, {}, half).delay,
                    m.reconnectDelay(1013, "going away; retry-after-ms=1500", 3, {}, half).delay,
                    m.reconnectDelay(1013, "", 2, {}, half).delay,
                    m.reconnectDelay(1006, "", 2, {}, half).delay,
                    m.reconnectDelay(1000, "", 0),
                    m.reconnectDelay(1008, "", 0),
                    m.reconnectDelay(4000, "", 0),
                    m.fullJitter(250, 30000, 20, half),
                ];
            })"#,
        )
        .await;
    assert_eq!(
        rules,
        json!([
            1500, null, 1525, 2500, 1525, 500, 500, null, null, null, 15000
        ])
    );

    old.signal(Signal::SIGTERM);
    let mut hints = Vec::new();
    for tab in &tabs {
        let close = browser
            .wait_event(tab, "close", |e| nth_of(e, "close", 0))
            .await;
        assert_eq!(close["code"], json!(1001), "{close}");
        assert_eq!(close["wasClean"], json!(true), "{close}");
        let hint = close["hint"]
            .as_u64()
            .unwrap_or_else(|| panic!("no hint: {close}"));
        assert!((1500..=2000).contains(&hint), "{close}");
        let reason = close["reason"].as_str().unwrap();
        assert_eq!(common::hint_ms(reason), Some(hint), "{close}");
        let status = browser.eval(tab, "window.chat.statusText()").await;
        let status = status.as_str().unwrap();
        assert!(
            status.starts_with("server restarting — reconnecting in "),
            "{status}"
        );
        let next = browser
            .wait_event(tab, "reconnecting", |e| nth_of(e, "reconnecting", 0))
            .await;
        assert_eq!(next["wait"], json!("hint"), "{next}");
        assert!(next["delay"].as_f64().unwrap() >= hint as f64, "{next}");
        hints.push((close, hint));
    }
    let (code, _) = old.wait_exit(Duration::from_secs(10));
    assert_eq!(code, Some(0), "the old server drained and exited");
    let port = addr.to_string();
    let mut new = Server::start("chat", ENV, &["--listen", &port]);

    for (tab, (close, hint)) in tabs.iter().zip(&hints) {
        let open = browser
            .wait_event(tab, "a second open", |e| nth_of(e, "open", 1))
            .await;
        // Page clock: the close event was recorded before the timer started.
        let waited = open["t"].as_f64().unwrap() - close["t"].as_f64().unwrap();
        let events = browser.events(tab).await;
        let failed = events.iter().filter(|e| e["type"] == "close").count() - 1;
        eprintln!(
            "tab {}: close 1001 hint {hint} ms, reconnected after {waited:.0} ms ({failed} failed attempts between)",
            tab.session
        );
        assert!(
            waited >= *hint as f64,
            "reconnected {waited} ms after the close, hint {hint}"
        );
        assert!(
            waited < (*hint + 50 + hint / 50 + 3000) as f64,
            "reconnected {waited} ms after the close, hint {hint}"
        );
        // Without the notice the page is without a connection for the wait.
        let gap = browser
            .eval(tab, "window.wsdrainGaps.disconnectedMs")
            .await
            .as_f64()
            .unwrap();
        assert!(
            gap >= *hint as f64 && (gap - waited).abs() < 50.0,
            "page without a connection for {gap} ms, waited {waited} ms, hint {hint}"
        );
    }
    // And they chat through the new server.
    let sent = browser
        .eval(&tabs[1], "window.chat.send('back from tab 2')")
        .await;
    assert_eq!(sent, json!(true));
    browser
        .wait_event(&tabs[0], "the chat line", |e| {
            e.iter()
                .find(|m| {
                    m["type"] == "message"
                        && m["data"]
                            .as_str()
                            .is_some_and(|d| d.contains("back from tab 2"))
                })
                .cloned()
        })
        .await;

    drop(browser);
    new.signal(Signal::SIGTERM);
    let (code, _) = new.wait_exit(Duration::from_secs(10));
    assert_eq!(code, Some(0));
}

const LEAD_MS: u64 = 1000;

/// `ENV` with the drain notice a lead before each Close.
fn notice_env() -> Vec<(&'static str, &'static str)> {
    let mut env = ENV.to_vec();
    env.push(("WSDRAIN_NOTICE_LEAD", "1s"));
    env
}

fn message_with(events: &[Value], text: &str) -> Option<Value> {
    events
        .iter()
        .find(|m| m["type"] == "message" && m["data"].as_str().is_some_and(|d| d.contains(text)))
        .cloned()
}

#[tokio::test]
async fn with_the_notice_tabs_hand_over_without_a_gap() {
    let env = notice_env();
    let mut old = Server::start("chat", &env, &[]);
    let mut new = Server::start("chat", &env, &[]);
    let lb = Forwarder::start(old.addr).await;
    let page = format!("http://{}/", lb.addr);
    let mut browser = Browser::launch().await;
    let tabs = [
        browser.open_watched(&page).await,
        browser.open_watched(&page).await,
    ];
    for tab in &tabs {
        browser
            .wait_event(tab, "open", |e| nth_of(e, "open", 0))
            .await;
    }

    // The load balancer has seen the old server's readiness turn 503, then
    // the kubelet's SIGTERM.
    lb.route_to(new.addr);
    old.signal(Signal::SIGTERM);
    for tab in &tabs {
        let handover = browser
            .wait_event(tab, "handover", |e| nth_of(e, "handover", 0))
            .await;
        let events = browser.events(tab).await;
        let notice = nth_of(&events, "notice", 0).expect("the notice event");
        assert_eq!(notice["closeInMs"], json!(LEAD_MS), "{notice}");
        assert!(
            message_with(&events, "wsdrain.reconnect").is_none(),
            "the notice reached the application: {events:?}"
        );
        let took = handover["took"].as_f64().unwrap();
        assert!(
            took < LEAD_MS as f64,
            "new connection open {took} ms after the notice"
        );
        assert!(handover["overlap"].as_f64().unwrap() >= 0.0, "{handover}");
        let second = nth_of(&events, "open", 1).expect("the new connection's open");
        assert_eq!(second["handover"], json!(true), "{second}");
        assert_eq!(second["connection"], handover["to"], "{handover}");
        // The old connection: closed by the page with 1000 after the switch,
        // reported as retired, not as a disconnect.
        let close = nth_of(&events, "close", 0).expect("the old connection's close");
        assert_eq!(close["connection"], handover["from"], "{close}");
        assert_eq!(close["retired"], json!(true), "{close}");
        assert_eq!(close["code"], json!(1000), "{close}");
        assert_eq!(close["wasClean"], json!(true), "{close}");
        assert!(nth_of(&events, "reconnecting", 0).is_none(), "{events:?}");
        let gaps = browser.eval(tab, "window.wsdrainGaps").await;
        eprintln!(
            "tab {}: notice, new connection open after {took:.0} ms, overlap {:.1} ms, gaps {gaps}",
            tab.session, handover["overlap"]
        );
        assert_eq!(gaps["disconnectedMs"], json!(0), "{gaps}");
        assert_eq!(
            gaps["since"],
            Value::Null,
            "without a connection now: {gaps}"
        );
        let state = browser.eval(tab, "window.chat.status.state").await;
        assert_eq!(state, json!("open"));
    }
    // The browser's own account (DevTools `Network` events) agrees: each
    // tab's second WebSocket finished its handshake before the first one
    // closed.
    for tab in &tabs {
        let start = Instant::now();
        let sockets = loop {
            let sockets = browser.websockets(tab);
            if sockets.len() >= 2 && sockets[0].1.is_some() {
                break sockets;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "DevTools reported {sockets:?}"
            );
            // Answers to commands bring the events in.
            browser.eval(tab, "1").await;
        };
        assert_eq!(sockets.len(), 2, "{sockets:?}");
        let (old_closed, new_open) = (sockets[0].1.unwrap(), sockets[1].0);
        eprintln!(
            "tab {}: DevTools: new WebSocket open {:.1} ms before the old one closed",
            tab.session,
            (old_closed - new_open) * 1000.0
        );
        assert!(new_open <= old_closed, "{sockets:?}");
        assert_eq!(sockets[1].1, None, "{sockets:?}");
    }
    // Every session closed by its client after the notice: clean, and the
    // drain did not wait for the lead.
    let (code, _) = old.wait_exit(Duration::from_secs(10));
    assert_eq!(code, Some(0), "the old server drained and exited");
    let report = old
        .rest()
        .into_iter()
        .find(|l| l.starts_with("drained: "))
        .unwrap();
    assert!(
        report.contains(" 2 sessions at closing, 2 clean,"),
        "{report}"
    );

    // The tabs chat through the new server.
    let sent = browser
        .eval(&tabs[1], "window.chat.send('after the handover')")
        .await;
    assert_eq!(sent, json!(true));
    browser
        .wait_event(&tabs[0], "the chat line", |e| {
            message_with(e, "after the handover")
        })
        .await;
    drop(browser);
    new.signal(Signal::SIGTERM);
    let (code, _) = new.wait_exit(Duration::from_secs(10));
    assert_eq!(code, Some(0));
}

#[tokio::test]
async fn a_failed_handover_stays_on_the_old_connection_then_waits_the_hint() {
    let env = notice_env();
    let mut old = Server::start("chat", &env, &[]);
    let lb = Forwarder::start(old.addr).await;
    let page = format!("http://{}/", lb.addr);
    let mut browser = Browser::launch().await;
    let tab = browser.open(&page).await;
    browser
        .wait_event(&tab, "open", |e| nth_of(e, "open", 0))
        .await;

    // No other server: the new connection reaches the draining one, which
    // refuses it (503, a 1006 to the page).
    old.signal(Signal::SIGTERM);
    let failed = browser
        .wait_event(&tab, "handoverfailed", |e| nth_of(e, "handoverfailed", 0))
        .await;
    assert_eq!(failed["code"], json!(1006), "{failed}");
    // Still on the old connection: it sends, and the lead later comes the
    // hinted Close.
    let sent = browser.eval(&tab, "window.chat.send('still here')").await;
    assert_eq!(sent, json!(true));
    let mut new = Server::start("chat", &env, &[]);
    lb.route_to(new.addr);
    let close = browser
        .wait_event(&tab, "the drain Close", |e| {
            e.iter()
                .find(|c| c["type"] == "close" && c["code"] == 1001)
                .cloned()
        })
        .await;
    let notice = browser
        .wait_event(&tab, "notice", |e| nth_of(e, "notice", 0))
        .await;
    let lead = close["t"].as_f64().unwrap() - notice["t"].as_f64().unwrap();
    assert!(
        lead >= LEAD_MS as f64 - 50.0,
        "the Close came {lead} ms after the notice"
    );
    let hint = close["hint"].as_u64().unwrap();
    let open = browser
        .wait_event(&tab, "the reconnect", |e| {
            e.iter()
                .find(|o| {
                    o["type"] == "open"
                        && o["handover"] == false
                        && o["t"].as_f64() > close["t"].as_f64()
                })
                .cloned()
        })
        .await;
    let waited = open["t"].as_f64().unwrap() - close["t"].as_f64().unwrap();
    eprintln!("failed handover: hint {hint} ms, reconnected after {waited:.0} ms");
    assert!(
        waited >= hint as f64,
        "reconnected {waited} ms after the close, hint {hint}"
    );
    let gap = browser
        .eval(&tab, "window.wsdrainGaps.disconnectedMs")
        .await
        .as_f64()
        .unwrap();
    assert!(gap >= hint as f64, "{gap}");
    let (code, _) = old.wait_exit(Duration::from_secs(10));
    assert_eq!(code, Some(0));
    drop(browser);
    new.signal(Signal::SIGTERM);
    let (code, _) = new.wait_exit(Duration::from_secs(10));
    assert_eq!(code, Some(0));
}

#[tokio::test]
async fn with_the_health_probe_no_handshake_fails_while_the_server_is_down() {
    let mut old = Server::start("chat", ENV, &[]);
    let addr = old.addr;
    let mut browser = Browser::launch().await;
    let tab = browser.open(&format!("http://{addr}/?health")).await;
    browser
        .wait_event(&tab, "open", |e| nth_of(e, "open", 0))
        .await;
    old.signal(Signal::SIGTERM);
    let close = browser
        .wait_event(&tab, "close", |e| nth_of(e, "close", 0))
        .await;
    assert_eq!(close["code"], json!(1001), "{close}");
    let (code, _) = old.wait_exit(Duration::from_secs(10));
    assert_eq!(code, Some(0));
    // Down until the hint has passed and the page has probed in vain.
    browser
        .wait_event(&tab, "a failed probe", |e| {
            e.iter()
                .find(|p| p["type"] == "probe" && p["ok"] == false)
                .cloned()
        })
        .await;
    let port = addr.to_string();
    let mut new = Server::start("chat", ENV, &["--listen", &port]);
    let up = Instant::now();
    let open = browser
        .wait_event(&tab, "a second open", |e| nth_of(e, "open", 1))
        .await;
    let back = up.elapsed();
    let events = browser.events(&tab).await;
    let probes: Vec<_> = events.iter().filter(|e| e["type"] == "probe").collect();
    let failed_handshakes = events
        .iter()
        .filter(|e| e["type"] == "close" && e["opened"] == false)
        .count();
    eprintln!(
        "health probe: {} probes ({} failed), {failed_handshakes} failed handshakes, \
         back {back:?} after the new server listened",
        probes.len(),
        probes.iter().filter(|p| p["ok"] == false).count()
    );
    assert_eq!(failed_handshakes, 0, "{events:?}");
    let last = probes.last().unwrap();
    assert_eq!(last["ok"], json!(true), "{last}");
    assert_eq!(last["status"], json!(200), "{last}");
    assert!(
        last["t"].as_f64() <= open["t"].as_f64(),
        "probe before the open"
    );
    // Within a backoff step (the probes' full jitter from 250 ms grows
    // while the server is down; 2 s covers several steps) of the server's start.
    assert!(back < Duration::from_secs(5), "{back:?}");
    drop(browser);
    new.signal(Signal::SIGTERM);
    let (code, _) = new.wait_exit(Duration::from_secs(10));
    assert_eq!(code, Some(0));
}

/// A health endpoint on another origin: `503` with `Retry-After: 1` to the
/// first `refusals` requests, then `200`; CORS headers so the page can read
/// the status and `Retry-After`.
async fn health_endpoint(refusals: usize) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut served = 0;
        while let Ok((mut s, _)) = listener.accept().await {
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let status = if served < refusals {
                "503 Service Unavailable\r\nRetry-After: 1"
            } else {
                "200 OK"
            };
            served += 1;
            let response = format!(
                "HTTP/1.1 {status}\r\nAccess-Control-Allow-Origin: *\r\n\
                 Access-Control-Expose-Headers: Retry-After\r\nContent-Length: 0\r\n\
                 Connection: close\r\n\r\n"
            );
            let _ = s.write_all(response.as_bytes()).await;
        }
    });
    (addr, task)
}

#[tokio::test]
async fn the_health_probe_honours_retry_after_on_a_503() {
    let (health, health_task) = health_endpoint(2).await;
    let mut old = Server::start("chat", ENV, &[]);
    let addr = old.addr;
    let mut browser = Browser::launch().await;
    let tab = browser
        .open(&format!("http://{addr}/?health=http://{health}/readyz"))
        .await;
    browser
        .wait_event(&tab, "open", |e| nth_of(e, "open", 0))
        .await;
    old.signal(Signal::SIGTERM);
    let (code, _) = old.wait_exit(Duration::from_secs(10));
    assert_eq!(code, Some(0));
    let port = addr.to_string();
    let mut new = Server::start("chat", ENV, &["--listen", &port]);
    let open = browser
        .wait_event(&tab, "a second open", |e| nth_of(e, "open", 1))
        .await;
    let events = browser.events(&tab).await;
    let probes: Vec<_> = events.iter().filter(|e| e["type"] == "probe").collect();
    assert_eq!(probes.len(), 3, "{probes:?}");
    for p in &probes[..2] {
        assert_eq!(p["status"], json!(503), "{p}");
        assert_eq!(p["retryAfter"], json!(1000), "{p}");
    }
    assert_eq!(probes[2]["status"], json!(200));
    let t = |v: &Value| v["t"].as_f64().unwrap();
    for pair in probes.windows(2) {
        let waited = t(pair[1]) - t(pair[0]);
        assert!(
            (1000.0..1500.0).contains(&waited),
            "the next probe {waited} ms after a 503 with Retry-After: 1"
        );
    }
    assert!(t(probes[2]) <= t(&open));
    health_task.abort();
    drop(browser);
    new.signal(Signal::SIGTERM);
    let (code, _) = new.wait_exit(Duration::from_secs(10));
    assert_eq!(code, Some(0));
}

const SSE_ENV: &[(&str, &str)] = &[
    ("WSDRAIN_DRAIN_DELAY", "0s"),
    ("WSDRAIN_CLOSE_WINDOW", "300ms"),
    ("WSDRAIN_CLOSE_TIMEOUT", "2s"),
    ("WSDRAIN_GRACE_PERIOD", "10s"),
    // Above Chromium's own reconnection time (about 3 s), so that a
    // reconnect that ignores the hint is seen.
    ("WSDRAIN_RETRY_AFTER_MIN", "4s"),
    ("WSDRAIN_RETRY_AFTER_MAX", "4500ms"),
];

/// The page's array `window.<name>`, as JSON values.
async fn page_array(browser: &mut Browser, tab: &Tab, name: &str) -> Vec<Value> {
    let v = browser
        .eval(tab, &format!("JSON.stringify(window.{name} ?? [])"))
        .await;
    serde_json::from_str(v.as_str().unwrap()).unwrap()
}

async fn wait_len(browser: &mut Browser, tab: &Tab, name: &str, n: usize) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let v = page_array(browser, tab, name).await;
        if v.len() >= n {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "window.{name} reached no length {n} within 20 s: {v:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The native `EventSource` of headless Chromium against the sse example:
/// on the drain its stream ends with the `retry:` hint, it comes back after
/// that hint (not its own default of about 3 s) to a new server process on
/// the same port, and `Last-Event-ID` leaves no event missing.
#[tokio::test]
async fn event_source_reconnects_after_the_hint_and_misses_nothing() {
    let mut old = Server::start("sse", SSE_ENV, &["--interval", "100"]);
    let addr = old.addr;
    let mut browser = Browser::launch().await;
    let tab = browser.open(&format!("http://{addr}/page")).await;
    wait_len(&mut browser, &tab, "seen", 5).await;

    old.signal(Signal::SIGTERM);
    let hints = wait_len(&mut browser, &tab, "hints", 1).await;
    let hint = hints[0].as_f64().unwrap();
    assert!((4000.0..=4500.0).contains(&hint), "{hint}");
    let errors = wait_len(&mut browser, &tab, "errors", 1).await;
    let (code, _) = old.wait_exit(Duration::from_secs(10));
    assert_eq!(code, Some(0), "the old server drained and exited");
    let port = addr.to_string();
    let mut new = Server::start("sse", SSE_ENV, &["--interval", "100", "--listen", &port]);

    let opens = wait_len(&mut browser, &tab, "opens", 2).await;
    let waited = opens[1].as_f64().unwrap() - errors[0].as_f64().unwrap();
    eprintln!("EventSource: hint {hint} ms, reconnected after {waited:.0} ms");
    assert!(
        waited >= hint - 20.0 && waited <= hint + 1500.0,
        "reconnected {waited} ms after the end, hint {hint}"
    );
    let errors = page_array(&mut browser, &tab, "errors").await;
    assert_eq!(errors.len(), 1, "no failed attempt in between");

    // Events from the new server continue the old ones without a gap.
    let before = page_array(&mut browser, &tab, "seen").await.len();
    let seen = wait_len(&mut browser, &tab, "seen", before + 10).await;
    let ids: Vec<u64> = seen.iter().map(|v| v.as_u64().unwrap()).collect();
    for pair in ids.windows(2) {
        assert_eq!(
            pair[1],
            pair[0] + 1,
            "no missing or repeated event: {ids:?}"
        );
    }

    drop(browser);
    new.signal(Signal::SIGTERM);
    let (code, _) = new.wait_exit(Duration::from_secs(10));
    assert_eq!(code, Some(0));
}

/// A page that runs `wsdrain.js` against any WebSocket URL (`?ws=`) with
/// options (`&options=`, JSON), and keeps every event the socket emits,
/// with its time, in `window.wsdrainEvents`; the socket is `window.socket`.
async fn harness() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    use axum::{
        Router,
        http::header::CONTENT_TYPE,
        response::{Html, IntoResponse},
        routing::get,
    };
    const MODULE: &str = include_str!("../clients/js/wsdrain.js");
    const PAGE: &str = r#"<!doctype html><meta charset="utf-8"><title>wsdrain.js</title>
<script type="module">
import { WsDrainSocket } from "/wsdrain.js";
const q = new URLSearchParams(location.search);
window.wsdrainEvents = [];
const socket = new WsDrainSocket(q.get("ws"), JSON.parse(q.get("options") ?? "{}"));
for (const type of ["open", "message", "close", "notice", "handover", "handoverfailed", "reconnecting", "giveup"]) {
  socket.addEventListener(type, (e) => window.wsdrainEvents.push({ ...e.detail, type, t: performance.now() }));
}
window.socket = socket;
</script>"#;
    let app = Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route(
            "/wsdrain.js",
            get(|| async { ([(CONTENT_TYPE, "text/javascript")], MODULE).into_response() }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, task)
}

/// The harness page's address for a socket to `ws` with `options`.
fn harness_page(harness: SocketAddr, ws: &str, options: &Value) -> String {
    let encode = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    char::from(b).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    format!(
        "http://{harness}/?ws={}&options={}",
        encode(ws),
        encode(&options.to_string())
    )
}

/// The module against a real wsdrain server under `close-1013`: an upgrade
/// during Closing is accepted and closed at once with `Close(1013, hint)`,
/// and the page waits the hint, as after 1001. And the module reads the
/// drain notice exactly as `wsdrain_protocol::parse_notice` does, on the
/// protocol crate's table of cases.
#[tokio::test]
async fn the_module_reads_1013_and_the_notice_as_the_protocol_says() {
    let (page, _page_task) = harness().await;
    let mut browser = Browser::launch().await;
    let policy = common::quick_policy()
        .close_window(Duration::ZERO)
        .close_timeout(Duration::from_secs(8))
        .retry_after(Duration::from_millis(600), Duration::from_millis(900))
        .closing_upgrades(wsdrain::ClosingUpgrades::TryAgainLater)
        .build()
        .unwrap();
    let server = common::InProc::start(policy, common::echo_router()).await;
    // A session that never answers its Close holds the server in Closing.
    let mut mute = common::RawWs::connect(server.addr, "/ws").await;
    server.controller.begin();
    let (opcode, _) = mute.read_frame().await.unwrap();
    assert_eq!(opcode, 0x8);

    let ws = format!("ws://{}/ws", server.addr);
    let tab = browser.open(&harness_page(page, &ws, &json!({}))).await;
    let first = browser
        .wait_event(&tab, "the first close", |e| nth_of(e, "close", 0))
        .await;
    assert_eq!(first["code"], json!(1013), "{first}");
    assert_eq!(first["wasClean"], json!(true), "{first}");
    let hint = first["hint"].as_f64().unwrap();
    assert!((600.0..=900.0).contains(&hint), "{first}");
    let next = browser
        .wait_event(&tab, "reconnecting", |e| nth_of(e, "reconnecting", 0))
        .await;
    assert_eq!(next["wait"], json!("hint"), "{next}");
    assert!(next["delay"].as_f64().unwrap() >= hint, "{next}");
    let again = browser
        .wait_event(&tab, "the second open", |e| nth_of(e, "open", 1))
        .await;
    let waited = again["t"].as_f64().unwrap() - first["t"].as_f64().unwrap();
    eprintln!("1013 with hint {hint} ms: the page came back after {waited:.0} ms");
    assert!(
        waited >= hint,
        "came back {waited} ms after a 1013 with hint {hint}"
    );

    // The notice, read by both clients from one table.
    let cases: Vec<(String, Option<u64>)> = serde_json::from_str(include_str!(
        "../crates/wsdrain-protocol/tests/notice_cases.json"
    ))
    .unwrap();
    let texts: Vec<&str> = cases.iter().map(|c| c.0.as_str()).collect();
    let read = browser
        .eval(
            &tab,
            &format!(
                r#"import("/wsdrain.js").then((m) => JSON.stringify({}.map((t) => m.parseNotice(t))))"#,
                json!(texts)
            ),
        )
        .await;
    let read: Vec<Option<u64>> = serde_json::from_str(read.as_str().unwrap()).unwrap();
    for ((text, want), js) in cases.iter().zip(&read) {
        assert_eq!(*js, *want, "wsdrain.js on {text:?}");
        assert_eq!(
            wsdrain::protocol::parse_notice(text),
            *want,
            "parse_notice on {text:?}"
        );
    }
    eprintln!(
        "{} notice cases: wsdrain.js and parse_notice agree",
        cases.len()
    );

    browser.eval(&tab, "window.socket.close()").await;
    drop(browser);
    drop(mute);
    server.report().await;
}

/// The module against peers that end every attempt at once (centrifuge-js
/// once made 189 attempts in 500 ms when a close came while it was still
/// connecting): in a fixed window it makes no more attempts than the hint or
/// its backoff allow. One tab per peer, all in the same window.
#[tokio::test]
async fn the_module_paces_attempts_that_end_at_once() {
    use common::peers::{Behaviour, Peer, longest_burst};
    const WINDOW: Duration = Duration::from_secs(2);
    let hinted = |code| Behaviour::CloseAtOnce {
        code,
        reason: "going away; retry-after-ms=300".into(),
    };
    let noticed = |close_in_ms| Behaviour::NoticeThenClose {
        close_in_ms,
        code: 1001,
        reason: "going away; retry-after-ms=300".into(),
    };
    let cases = [
        ("close 1001 at once, hint 300 ms", hinted(1001)),
        ("close 1013 at once, hint 300 ms", hinted(1013)),
        ("TCP dropped in the handshake", Behaviour::DropInHandshake),
        (
            "503 with Retry-After: 1",
            Behaviour::Refuse { retry_after: 1 },
        ),
        ("notice and close at once", noticed(0)),
        ("notice at once, close 1 s later", noticed(1000)),
    ];
    let (page, _page_task) = harness().await;
    // Every tab runs its timers as a foreground tab would: a background
    // tab's are aligned to whole seconds, which would hide a wrong delay.
    let mut browser = Browser::launch_with(&[
        "--disable-background-timer-throttling",
        "--disable-renderer-backgrounding",
        "--disable-backgrounding-occluded-windows",
    ])
    .await;
    let mut runs = Vec::new();
    for (name, behaviour) in cases {
        let peer = Peer::start(behaviour).await;
        let ws = format!("ws://{}/ws", peer.addr);
        let tab = browser.open(&harness_page(page, &ws, &json!({}))).await;
        runs.push((name, peer, tab));
    }
    // Each tab's window runs from its first attempt.
    tokio::time::sleep(WINDOW + Duration::from_millis(500)).await;
    for (name, peer, tab) in &runs {
        browser.eval(tab, "window.socket.close()").await;
        let events = browser.events(tab).await;
        assert!(
            !peer.attempts().is_empty(),
            "{name}: the page never connected"
        );
        let (within, gaps) = peer.pacing(WINDOW);
        let delays: Vec<f64> = events
            .iter()
            .filter(|e| e["type"] == "reconnecting")
            .map(|e| e["delay"].as_f64().unwrap())
            .collect();
        let burst = longest_burst(&gaps);
        eprintln!("{name}: {within} attempts in {WINDOW:?}, longest burst {burst}, gaps {gaps:?}");
        // Without notices, every attempt follows a close: it came no
        // sooner than the delay the page announced for it.
        if !name.starts_with("notice") {
            for (gap, delay) in gaps.iter().zip(&delays) {
                assert!(
                    gap.as_secs_f64() * 1000.0 >= delay - 1.0,
                    "{name}: gap {gap:?} < announced {delay} ms; {gaps:?}"
                );
            }
        }
        match *name {
            n if n.starts_with("close") => {
                assert!(
                    gaps.iter().all(|g| *g >= Duration::from_millis(300)),
                    "{name}: {gaps:?}"
                );
                assert!(within <= 7, "{name}: {within} attempts");
            }
            n if n.starts_with("notice") => {
                assert!(within <= 16, "{name}: {within} attempts: {gaps:?}");
                if n == "notice and close at once" {
                    assert!(burst <= 3, "{name}: {burst} in a row: {gaps:?}");
                }
            }
            // The browser hides the status: these back off from 250 ms;
            // twelve attempts in 2 s need the 5th to 12th full-jitter draws
            // (ceilings 4 s and up) all small, odds below 1e-5.
            _ => assert!(within <= 12, "{name}: {within} attempts: {gaps:?}"),
        }
    }
}
