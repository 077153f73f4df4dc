//! `wsdrain.js` with resume on, in headless Chromium, against the `feed`
//! example: real processes, real signals. The page (served by the test,
//! the module read from `clients/js/`) records every event; the test counts
//! the ticker's ticks (`common::feed::Ledger`): none missed, none seen
//! twice, in order, and a `resync` wherever history was lost. On one
//! replica with its in-memory log: a relay that drops the connection, a
//! crash and a restart in place. On a fleet (three replicas on a real
//! `redis-server` behind a real HAProxy, rolled): SIGTERM without and with
//! the drain notice, and SIGKILL.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/fleet.rs"]
mod fleet;
#[path = "common/redis.rs"]
mod redis_server;

use std::{net::SocketAddr, time::Duration};

use axum::{Router, http::header, routing::get};
use common::{
    browser::{Browser, Tab, nth_of},
    feed::{ENV, Ledger, RATE, Relay, start_feed, tick_now, ticks_pass},
};
use fleet::{Fleet, ONE_FLEET, REPLICAS, Roll};
use nix::sys::signal::Signal;
use serde_json::{Value, json};

/// The page: one resuming `WsDrainSocket` to `?feed=URL`, every event kept
/// in `window.wsdrainEvents`.
const PAGE: &str = r#"<!doctype html>
<meta charset="utf-8">
<title>feed</title>
<script type="module">
import { WsDrainSocket } from "/wsdrain.js";
const url = new URLSearchParams(location.search).get("feed");
window.wsdrainEvents = [];
// stableAfter 1 s: a page moved again within a roll (it landed on a replica
// rolled next) hands over at once instead of pacing a "young" handover.
const socket = new WsDrainSocket(url, { resume: true, base: 50, cap: 1000, stableAfter: 1000 });
for (const type of ["open", "close", "message", "notice", "handover", "handoverfailed", "resumed",
                    "resync", "resumedeclined", "reconnecting", "giveup"]) {
  socket.addEventListener(type, (e) => window.wsdrainEvents.push({ type, t: performance.now(), ...e.detail }));
}
window.feed = socket;
</script>
"#;

/// Serves the page and `wsdrain.js` on 127.0.0.1.
async fn page_server() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let module = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../clients/js/wsdrain.js"
    ))
    .unwrap();
    let app = Router::new()
        .route(
            "/",
            get(|| async { ([(header::CONTENT_TYPE, "text/html")], PAGE) }),
        )
        .route(
            "/wsdrain.js",
            get(move || async move { ([(header::CONTENT_TYPE, "text/javascript")], module) }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, task)
}

/// A page following the feed at `feed` (a `host:port`).
async fn open_page(browser: &mut Browser, pages: SocketAddr, feed: SocketAddr) -> Tab {
    let tab = browser
        .open(&format!("http://{pages}/?feed=ws://{feed}/feed"))
        .await;
    browser
        .wait_event(&tab, "open", |e| nth_of(e, "open", 0))
        .await;
    tab
}

/// The page's account of the ticker so far (and its events).
async fn ledger(browser: &mut Browser, tab: &Tab) -> (Ledger, Vec<Value>) {
    let events = browser.events(tab).await;
    let mut ledger = Ledger::default();
    for e in &events {
        match e["type"].as_str().unwrap() {
            "message" => {
                assert_eq!(e["stream"], json!("ticker"), "{e}");
                ledger.message(e["seq"].as_u64().unwrap(), e["data"].as_str().unwrap());
            }
            "resync" => ledger.resync(e["after"].as_u64().unwrap()),
            "resumed" => ledger.resumed(),
            "resumedeclined" | "giveup" => panic!("{e}"),
            _ => {}
        }
    }
    (ledger, events)
}

/// Waits until the page has delivered `n` ticker messages in all.
async fn delivered(browser: &mut Browser, tab: &Tab, n: usize) {
    browser
        .wait_event(tab, &format!("{n} messages"), |e| {
            e.iter()
                .filter(|m| m["type"] == "message")
                .nth(n - 1)
                .cloned()
        })
        .await;
}

fn count(events: &[Value], kind: &str) -> usize {
    events.iter().filter(|e| e["type"] == kind).count()
}

#[tokio::test]
async fn a_crashed_server_replaced_on_its_port_is_one_resync_and_no_silent_hole() {
    let (pages, _pages_task) = page_server().await;
    let mut old = start_feed(ENV, &[]);
    let addr = old.addr;
    let mut browser = Browser::launch().await;
    let tab = open_page(&mut browser, pages, addr).await;
    delivered(&mut browser, &tab, 25).await;

    // An OOM kill, a lost node: no Close, no drain, the in-memory log gone.
    old.signal(Signal::SIGKILL);
    let close = browser
        .wait_event(&tab, "the close", |e| nth_of(e, "close", 0))
        .await;
    assert_eq!(close["code"], json!(1006), "{close}");
    let _ = old.wait_exit(Duration::from_secs(5));
    let port = addr.to_string();
    let _new = start_feed(ENV, &["--listen", &port]);

    let resync = browser
        .wait_event(&tab, "the resync", |e| nth_of(e, "resync", 0))
        .await;
    assert_eq!(resync["stream"], json!("ticker"), "{resync}");
    assert!(
        resync["reason"] == json!("epoch") || resync["reason"] == json!("unknown"),
        "{resync}"
    );
    delivered(&mut browser, &tab, 50).await;
    let (ledger, events) = ledger(&mut browser, &tab).await;
    eprintln!("crash: {ledger:?}");
    assert_eq!((ledger.missed, ledger.duplicated), (0, 0), "{ledger:?}");
    assert_eq!((ledger.resyncs, ledger.resumed), (1, 0), "{ledger:?}");
    assert!(ledger.resynced_over > 0, "the crash lost ticks: {ledger:?}");
    assert_eq!(count(&events, "resumedeclined"), 0);
}

#[tokio::test]
async fn a_relay_that_drops_the_connection_costs_the_page_no_message() {
    let (pages, _pages_task) = page_server().await;
    let server = start_feed(ENV, &[]);
    let relay = Relay::start(server.addr).await;
    let mut browser = Browser::launch().await;
    let tab = open_page(&mut browser, pages, relay.addr).await;
    delivered(&mut browser, &tab, 25).await;

    relay.cut();
    let close = browser
        .wait_event(&tab, "the cut", |e| nth_of(e, "close", 0))
        .await;
    assert_eq!(close["code"], json!(1006), "{close}");
    // Down while the page fails to reconnect twice and the feed publishes
    // ten ticks the page will have to be replayed.
    let (before, _) = ledger(&mut browser, &tab).await;
    browser
        .wait_event(&tab, "two failed attempts", |e| nth_of(e, "close", 2))
        .await;
    ticks_pass(RATE, before.last_tick().unwrap(), 10).await;
    relay.restore().await;
    let at_resume = tick_now(RATE);

    let resumed = browser
        .wait_event(&tab, "resumed", |e| nth_of(e, "resumed", 0))
        .await;
    assert_eq!(resumed["stream"], json!("ticker"), "{resumed}");
    delivered(&mut browser, &tab, 60).await;
    let (ledger, _) = ledger(&mut browser, &tab).await;
    eprintln!("relay cut: {ledger:?}");
    assert_eq!((ledger.missed, ledger.duplicated), (0, 0), "{ledger:?}");
    assert_eq!((ledger.resyncs, ledger.resumed), (0, 1), "{ledger:?}");
    assert!(
        ledger.last_tick().unwrap() > at_resume,
        "replayed the outage, then live: {ledger:?}"
    );
}

/// Pages following the ticker through the rolled fleet.
const TABS: usize = 2;

/// How long the page had no open connection, from its own events, after
/// its first one opened.
fn disconnected_ms(events: &[Value]) -> f64 {
    let (mut open, mut since, mut total) = (0, None::<f64>, 0.0);
    for e in events {
        let t = e["t"].as_f64().unwrap_or(0.0);
        match e["type"].as_str() {
            Some("open") => {
                if let Some(s) = since.take() {
                    total += t - s;
                }
                open += 1;
            }
            Some("close") if e["opened"] == json!(true) => {
                open -= 1;
                if open == 0 {
                    since = Some(t);
                }
            }
            _ => {}
        }
    }
    total
}

async fn rolled(roll: Roll) {
    let _one = ONE_FLEET.lock().await;
    let (pages, _pages_task) = page_server().await;
    let mut fleet = Fleet::start(roll).await;
    let mut browser = Browser::launch().await;
    let mut tabs = Vec::new();
    for _ in 0..TABS {
        tabs.push(open_page(&mut browser, pages, fleet.lb.addr).await);
    }
    let mut seen = vec![0; TABS];
    for (tab, seen) in tabs.iter().zip(&mut seen) {
        *seen = 20;
        delivered(&mut browser, tab, *seen).await;
    }
    for i in 0..REPLICAS {
        fleet.roll(i).await;
        // Every page goes on.
        for (tab, seen) in tabs.iter().zip(&mut seen) {
            *seen = ledger(&mut browser, tab).await.0.delivered as usize + 20;
            delivered(&mut browser, tab, *seen).await;
        }
    }
    for tab in &tabs {
        let (ledger, events) = ledger(&mut browser, tab).await;
        let gap = disconnected_ms(&events);
        eprintln!("{roll:?}: {ledger:?}, {gap:.0} ms without a connection");
        assert_eq!(
            (ledger.missed, ledger.duplicated, ledger.resyncs),
            (0, 0, 0),
            "{roll:?}: {ledger:?}"
        );
        assert!(ledger.resumed >= 1, "the page was moved: {ledger:?}");
        match roll {
            Roll::Graceful => assert!(gap > 0.0, "{events:?}"),
            Roll::Notice => {
                assert!(count(&events, "handover") >= 1, "{events:?}");
                assert_eq!(count(&events, "handoverfailed"), 0, "{events:?}");
                assert_eq!(gap, 0.0, "make-before-break: {events:?}");
            }
            Roll::Crash => assert!(
                events
                    .iter()
                    .any(|e| e["type"] == "close" && e["code"] == json!(1006)),
                "{events:?}"
            ),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_roll_of_the_fleet_costs_the_page_no_tick() {
    rolled(Roll::Graceful).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_roll_with_the_notice_hands_the_page_over_exactly_once() {
    rolled(Roll::Notice).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_replica_of_the_fleet_costs_the_page_no_tick() {
    rolled(Roll::Crash).await;
}
