//! Headless Chromium against the chat example: two tabs chat through a real
//! server process, the server drains on a real SIGTERM, each tab reports the
//! 1001 close with its hint (`CloseEvent.code/.reason/.wasClean`) and
//! reconnects after the hint to a new server process on the same port.
//!
//! The test drives the browser itself over the DevTools protocol (a WebSocket
//! on `--remote-debugging-port`), so it needs nothing but `chromium` (Debian
//! package `chromium`, installed by `scripts/setup`). Without it the test fails.
#![allow(clippy::unwrap_used)]

mod common;

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use common::Server;
use futures_util::{SinkExt, StreamExt};
use nix::{sys::signal::Signal, unistd::Pid};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// Finds `chromium` on the `PATH`.
fn chromium() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("chromium"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "chromium not found on PATH: the browser test needs it \
                 (Debian package `chromium`; `scripts/setup` installs it)"
            )
        })
}

/// A headless Chromium process in its own process group, with a fresh
/// profile; killed (the group) and removed on drop, panics included.
struct Chromium {
    child: Child,
    profile: PathBuf,
}

/// The browser, driven over the DevTools protocol.
struct Browser {
    cdp: common::Ws,
    next_id: u64,
    // Last: dropped after the DevTools connection.
    _process: Chromium,
}

impl Browser {
    async fn launch() -> Browser {
        let profile = std::env::temp_dir().join(format!(
            "wsdrain-browser-{}-{}",
            std::process::id(),
            unique_suffix()
        ));
        std::fs::create_dir_all(&profile).unwrap();
        let mut cmd = Command::new(chromium());
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-quic",
            "--remote-debugging-port=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("about:blank")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd.spawn().expect("start chromium");
        let mut process = Chromium { child, profile };
        let endpoint = process.wait_for_endpoint();
        let (cdp, _) = tokio_tungstenite::connect_async(endpoint.as_str())
            .await
            .expect("connect to DevTools");
        Browser {
            cdp,
            next_id: 0,
            _process: process,
        }
    }

    /// One DevTools command; skips events until its answer.
    async fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        self.cdp.send(Message::text(msg.to_string())).await.unwrap();
        let answer = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                let msg = self.cdp.next().await.expect("DevTools open").unwrap();
                let Message::Text(text) = msg else { continue };
                let v: Value = serde_json::from_str(&text).unwrap();
                if v["id"] == json!(id) {
                    return v;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no answer to {method}"));
        assert!(answer.get("error").is_none(), "{method}: {answer}");
        answer["result"].clone()
    }

    /// Opens `url` in a new tab.
    async fn open(&mut self, url: &str) -> Tab {
        let target = self
            .call(None, "Target.createTarget", json!({ "url": url }))
            .await["targetId"]
            .as_str()
            .unwrap()
            .to_string();
        let session = self
            .call(
                None,
                "Target.attachToTarget",
                json!({ "targetId": target, "flatten": true }),
            )
            .await["sessionId"]
            .as_str()
            .unwrap()
            .to_string();
        Tab { session }
    }

    /// Evaluates `expression` in `tab` (awaiting it if it is a promise); its
    /// value, as JSON.
    async fn eval(&mut self, tab: &Tab, expression: &str) -> Value {
        let result = self
            .call(
                Some(&tab.session),
                "Runtime.evaluate",
                json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
            )
            .await;
        assert!(
            result.get("exceptionDetails").is_none(),
            "{expression}: {result}"
        );
        result["result"]["value"].clone()
    }

    /// The page's `window.wsdrainEvents` (empty until the page ran).
    async fn events(&mut self, tab: &Tab) -> Vec<Value> {
        let v = self
            .eval(tab, "JSON.stringify(window.wsdrainEvents ?? [])")
            .await;
        serde_json::from_str(v.as_str().unwrap()).unwrap()
    }

    /// Polls the page's events until `pick` finds one; bounded.
    async fn wait_event(
        &mut self,
        tab: &Tab,
        what: &str,
        pick: impl Fn(&[Value]) -> Option<Value>,
    ) -> Value {
        let start = Instant::now();
        loop {
            let events = self.events(tab).await;
            if let Some(v) = pick(&events) {
                return v;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "tab {}: no {what} within 20 s; events: {events:?}",
                tab.session
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Chromium {
    /// Reads `ws://127.0.0.1:PORT/devtools/browser/ID` from the profile's
    /// `DevToolsActivePort` file.
    fn wait_for_endpoint(&mut self) -> String {
        let file = self.profile.join("DevToolsActivePort");
        let start = Instant::now();
        loop {
            if let Ok(text) = std::fs::read_to_string(&file) {
                let mut lines = text.lines();
                if let (Some(port), Some(path)) = (lines.next(), lines.next()) {
                    return format!("ws://127.0.0.1:{port}{path}");
                }
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("chromium exited at start: {status}");
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "chromium wrote no {} within 30 s",
                file.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        // The whole group we started: the launcher script and its children.
        let _ = nix::sys::signal::killpg(Pid::from_raw(self.child.id() as i32), Signal::SIGKILL);
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

fn unique_suffix() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(Instant::now())
}

struct Tab {
    session: String,
}

fn nth_of(events: &[Value], kind: &str, n: usize) -> Option<Value> {
    events.iter().filter(|e| e["type"] == kind).nth(n).cloned()
}

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
        json!([1500, null, 1525, 2500, 500, null, null, null, 15000])
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
