//! Headless Chromium driven over the DevTools protocol, and a switchable
//! TCP forwarder (the load balancer's part), for the browser tests.

use std::{
    net::SocketAddr,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures_util::{SinkExt, StreamExt};
use nix::{sys::signal::Signal, unistd::Pid};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// Finds `chromium` on the `PATH`.
pub fn chromium() -> PathBuf {
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
pub struct Chromium {
    child: Child,
    profile: PathBuf,
}

/// The browser, driven over the DevTools protocol.
pub struct Browser {
    cdp: super::Ws,
    next_id: u64,
    /// DevTools events seen while waiting for answers (`Network.*` once
    /// enabled on a tab).
    seen: Vec<Value>,
    // Last: dropped after the DevTools connection.
    _process: Chromium,
}

impl Browser {
    pub async fn launch() -> Browser {
        Browser::launch_with(&[]).await
    }

    /// [`launch`](Self::launch) with more command-line flags.
    pub async fn launch_with(flags: &[&str]) -> Browser {
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
        .args(flags)
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
            seen: Vec::new(),
            _process: process,
        }
    }

    /// One DevTools command; skips events until its answer.
    pub async fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
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
                if v.get("method").is_some() {
                    self.seen.push(v);
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no answer to {method}"));
        assert!(answer.get("error").is_none(), "{method}: {answer}");
        answer["result"].clone()
    }

    /// Opens `url` in a new tab.
    pub async fn open(&mut self, url: &str) -> Tab {
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

    /// Opens `url` in a new tab with the DevTools `Network` domain on from
    /// the start, so the browser reports every WebSocket of the page.
    pub async fn open_watched(&mut self, url: &str) -> Tab {
        let tab = self.open("about:blank").await;
        self.call(Some(&tab.session), "Network.enable", json!({}))
            .await;
        self.call(Some(&tab.session), "Page.navigate", json!({ "url": url }))
            .await;
        tab
    }

    /// The page's WebSockets as the browser itself reports them (not the
    /// page's code): `(handshake done, closed)` in DevTools monotonic
    /// seconds, ordered by handshake; `None`: still open.
    pub fn websockets(&self, tab: &Tab) -> Vec<(f64, Option<f64>)> {
        let of_tab = |e: &&Value| e["sessionId"] == json!(tab.session);
        let mut sockets: Vec<(String, f64, Option<f64>)> = self
            .seen
            .iter()
            .filter(of_tab)
            .filter(|e| {
                e["method"] == "Network.webSocketHandshakeResponseReceived"
                    && e["params"]["response"]["status"] == 101
            })
            .map(|e| {
                let id = e["params"]["requestId"].as_str().unwrap().to_string();
                (id, e["params"]["timestamp"].as_f64().unwrap(), None)
            })
            .collect();
        for e in self.seen.iter().filter(of_tab) {
            if e["method"] == "Network.webSocketClosed" {
                let id = e["params"]["requestId"].as_str().unwrap();
                if let Some(s) = sockets.iter_mut().find(|s| s.0 == id) {
                    s.2 = e["params"]["timestamp"].as_f64();
                }
            }
        }
        sockets.sort_by(|a, b| a.1.total_cmp(&b.1));
        sockets
            .into_iter()
            .map(|(_, open, close)| (open, close))
            .collect()
    }

    /// Evaluates `expression` in `tab` (awaiting it if it is a promise); its
    /// value, as JSON.
    pub async fn eval(&mut self, tab: &Tab, expression: &str) -> Value {
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
    pub async fn events(&mut self, tab: &Tab) -> Vec<Value> {
        let v = self
            .eval(tab, "JSON.stringify(window.wsdrainEvents ?? [])")
            .await;
        serde_json::from_str(v.as_str().unwrap()).unwrap()
    }

    /// Polls the page's events until `pick` finds one; bounded.
    pub async fn wait_event(
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

pub struct Tab {
    pub session: String,
}

/// A load balancer's part on loopback: each new TCP connection goes to the
/// backend set last; connections already made stay where they are (as
/// HAProxy leaves a tunnel to a server marked down alone).
pub struct Forwarder {
    pub addr: SocketAddr,
    backend: Arc<Mutex<SocketAddr>>,
    task: tokio::task::JoinHandle<()>,
}

impl Forwarder {
    pub async fn start(backend: SocketAddr) -> Forwarder {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let backend = Arc::new(Mutex::new(backend));
        let target = backend.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let to = *target.lock().unwrap();
                tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(to).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        Forwarder {
            addr,
            backend,
            task,
        }
    }

    /// New connections go to `backend` from now on.
    pub fn route_to(&self, backend: SocketAddr) {
        *self.backend.lock().unwrap() = backend;
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The `n`-th event of `kind` in a page's events.
pub fn nth_of(events: &[Value], kind: &str, n: usize) -> Option<Value> {
    events.iter().filter(|e| e["type"] == kind).nth(n).cloned()
}
