//! The `feed` example with clients we did not write: Python `websockets`
//! (`tests/python/resume_clients.py`, in the `.venv` of `scripts/setup`)
//! that offer `wsdrain.resume.v1` and apply the client's rules of
//! docs/PROTOCOL.md, behind a TCP forwarder that plays the load balancer.
//!
//! 1. The forwarder drops every connection (a proxy that cuts them): each
//!    client reconnects to the same process with its resume point and is
//!    `resumed`: nothing missed, nothing twice.
//! 2. A second process starts, the forwarder sends new connections there,
//!    and the first gets a real SIGTERM with the drain notice: each client
//!    opens its next connection on the notice, and is told `resync` (the
//!    in-memory log's history died with the first process), never a silent
//!    hole; the first process drains cleanly.
//!
//! And the authorisation of resume points: a point naming another user's
//! stream is refused with 403.
#![allow(clippy::unwrap_used)]

mod common;

use std::{
    io::{BufRead, BufReader, Write},
    net::SocketAddr,
    path::PathBuf,
    process::{Child, ChildStdin, Command, Stdio},
    sync::{Arc, Mutex, mpsc},
    time::{Duration, Instant},
};

use common::{Server, UPGRADE, http};
use futures_util::StreamExt;
use nix::sys::signal::Signal;
use serde_json::Value;
use tokio::{net::TcpListener, task::AbortHandle};
use tokio_tungstenite::tungstenite::{client::IntoClientRequest, http::HeaderValue};

const ENV: &[(&str, &str)] = &[
    ("WSDRAIN_DRAIN_DELAY", "0s"),
    ("WSDRAIN_CLOSE_WINDOW", "1s"),
    ("WSDRAIN_NOTICE_LEAD", "500ms"),
    ("WSDRAIN_CLOSE_TIMEOUT", "2s"),
    ("WSDRAIN_RETRY_AFTER_MIN", "100ms"),
    ("WSDRAIN_RETRY_AFTER_MAX", "300ms"),
    ("WSDRAIN_GRACE_PERIOD", "20s"),
];

const CLIENTS: usize = 20;

/// A TCP forwarder: the load balancer's part. New connections go to the
/// current target; `cut` drops every connection it carries.
struct Forwarder {
    addr: SocketAddr,
    target: Arc<Mutex<SocketAddr>>,
    carried: Arc<Mutex<Vec<AbortHandle>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Forwarder {
    async fn start(target: SocketAddr) -> Forwarder {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let target = Arc::new(Mutex::new(target));
        let carried = Arc::new(Mutex::new(Vec::new()));
        let accept = tokio::spawn({
            let (target, carried) = (target.clone(), carried.clone());
            async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    let to = *target.lock().unwrap();
                    let task = tokio::spawn(async move {
                        if let Ok(mut server) = tokio::net::TcpStream::connect(to).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    });
                    carried.lock().unwrap().push(task.abort_handle());
                }
            }
        });
        Forwarder {
            addr,
            target,
            carried,
            accept,
        }
    }

    fn switch(&self, to: SocketAddr) {
        *self.target.lock().unwrap() = to;
    }

    /// Drops every connection carried now (both sides see the TCP close,
    /// no Close frame).
    fn cut(&self) {
        for task in self.carried.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

/// The Python clients: progress lines in, `stop` out.
struct Clients {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<Value>,
    last: Value,
}

fn python() -> PathBuf {
    let py = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    assert!(
        py.exists(),
        "{} missing: this test needs Python `websockets` (run scripts/setup)",
        py.display()
    );
    py
}

impl Clients {
    fn start(url: &str, clients: usize) -> Clients {
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/resume_clients.py");
        let mut child = Command::new(python())
            .arg(script)
            .args(["--url", url, "--clients", &clients.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let Ok(value) = serde_json::from_str::<Value>(&line) else {
                    panic!("not JSON from the clients: {line}");
                };
                if tx.send(value).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        Clients {
            child,
            stdin,
            lines,
            last: Value::Null,
        }
    }

    fn progress(&self, key: &str) -> u64 {
        self.last[key].as_u64().unwrap_or(0)
    }

    /// Waits (bounded) for a progress line where `cond` holds.
    fn until(&mut self, what: &str, mut cond: impl FnMut(&Clients) -> bool) {
        let end = Instant::now() + Duration::from_secs(30);
        while !cond(self) {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.last = line,
                Err(_) => panic!("timed out waiting for {what}; last progress {}", self.last),
            }
        }
    }

    /// Stops the clients: their final report.
    fn stop(&mut self) -> Vec<Value> {
        let mut stdin = self.stdin.take().unwrap();
        writeln!(stdin, "stop").unwrap();
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            let left = end.saturating_duration_since(Instant::now());
            let line = self.lines.recv_timeout(left).expect("the clients' report");
            if line["event"] == "report" {
                return line["clients"].as_array().unwrap().clone();
            }
        }
    }
}

impl Drop for Clients {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn count(events: &Value, key: &str) -> u64 {
    events[key].as_u64().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_clients_resume_across_a_cut_and_resync_across_a_drain() {
    let mut first = Server::start("feed", ENV, &["--rate", "50"]);
    let forwarder = Forwarder::start(first.addr).await;
    let url = format!("ws://{}/feed?token=alice-secret", forwarder.addr);
    let mut clients = Clients::start(&url, CLIENTS);
    clients.until("every client delivering", |c| {
        c.progress("delivered_min") >= 20
    });

    // 1. A proxy cuts every connection: each client resumes both streams.
    let before = clients.progress("delivered_min");
    forwarder.cut();
    clients.until("every client resumed", |c| {
        c.progress("resumed_min") >= 2 && c.progress("delivered_min") >= before + 25
    });

    // 2. A new process behind the forwarder, the old one drained.
    let second = Server::start("feed", ENV, &["--rate", "50"]);
    forwarder.switch(second.addr);
    first.signal(Signal::SIGTERM);
    clients.until("every client moved", |c| {
        c.progress("resync_min") >= 2 && c.progress("notices_min") >= 1
    });
    let (code, took) = first.wait_exit(Duration::from_secs(20));
    assert_eq!(code, Some(0), "the first process drained and exited");
    assert!(took < Duration::from_secs(10), "{took:?}");
    let report = first
        .rest()
        .into_iter()
        .find(|l| l.starts_with("drained: "))
        .unwrap();
    assert!(
        report.contains(&format!(" {CLIENTS} sessions at closing, {CLIENTS} clean,")),
        "every client closed its old connection after moving: {report}"
    );
    let moved = clients.progress("delivered_min");
    clients.until("delivery on the new process", |c| {
        c.progress("delivered_min") >= moved + 25
    });

    let report = clients.stop();
    assert_eq!(report.len(), CLIENTS);
    for (i, c) in report.iter().enumerate() {
        let events = &c["events"];
        let context = format!("client {i}: {c}");
        assert_eq!(c["protocol_errors"], serde_json::json!([]), "{context}");
        assert_eq!(
            c["holes"],
            serde_json::json!([]),
            "nothing missed: {context}"
        );
        assert_eq!(
            c["twice"],
            serde_json::json!([]),
            "nothing twice: {context}"
        );
        assert_eq!(c["refused"], serde_json::json!([]), "{context}");
        // ticker and user/alice: fresh at first, resumed after the cut.
        assert_eq!(count(events, "fresh"), 2, "{context}");
        assert_eq!(count(events, "resumed"), 2, "{context}");
        assert_eq!(count(events, "notice"), 1, "{context}");
        // The in-memory history died with the first process: each stream
        // resyncs once on the second (no history yet: `unknown`).
        let resyncs = count(events, "resync:epoch") + count(events, "resync:unknown");
        assert_eq!(resyncs, 2, "{context}");
        assert_eq!(c["connections"].as_u64(), Some(3), "{context}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_point_grants_nothing() {
    let server = Server::start("feed", &[], &[]);
    let upgrade = |point: &'static str| {
        let mut headers = UPGRADE.to_vec();
        headers.push(("Sec-WebSocket-Protocol", "wsdrain.resume.v1"));
        let path = format!("/feed?token=alice-secret&wsdrain-resume={point}");
        async move { http(server.addr, &path, &headers).await }
    };
    // Alice may resume her own stream and the ticker.
    let mut own = format!(
        "ws://{}/feed?token=alice-secret&wsdrain-resume=user/alice@E1.3,ticker@E2.9",
        server.addr
    )
    .into_client_request()
    .unwrap();
    own.headers_mut().insert(
        "sec-websocket-protocol",
        HeaderValue::from_static("wsdrain.resume.v1"),
    );
    let (mut ws, response) = tokio_tungstenite::connect_async(own).await.unwrap();
    assert_eq!(
        response.headers()["sec-websocket-protocol"],
        "wsdrain.resume.v1"
    );
    // Another epoch than the restarted process's: both resync.
    let first = ws.next().await.unwrap().unwrap().into_text().unwrap();
    assert!(
        first.starts_with("c\n{\"type\":\"wsdrain.resync\",\"stream\":\"ticker\""),
        "{first}"
    );
    // A client that does not offer the subprotocol gets today's bytes.
    let plain = format!("ws://{}/feed?token=alice-secret", server.addr);
    let (mut ws, response) = tokio_tungstenite::connect_async(plain).await.unwrap();
    assert!(response.headers().get("sec-websocket-protocol").is_none());
    let first = ws.next().await.unwrap().unwrap().into_text().unwrap();
    assert!(first.starts_with("{\"n\":"), "{first}");
    // Not Bob's.
    let other = upgrade("user/bob@E1.3").await;
    assert_eq!(other.status, 403);
    assert_eq!(other.body, "alice may not read \"user/bob\"\n");
    let other = upgrade("ticker@E2.9,user%2Fbob%40E1.3").await;
    assert_eq!(other.status, 403);
    // Without a token, nobody's.
    let anonymous = http(
        server.addr,
        "/feed?wsdrain-resume=user/alice@E1.3",
        &[UPGRADE, &[("Sec-WebSocket-Protocol", "wsdrain.resume.v1")]].concat(),
    )
    .await;
    assert_eq!(anonymous.status, 403);
    // A point that cannot be read is a 400 naming the problem.
    let bad = upgrade("user/alice@E1").await;
    assert_eq!(bad.status, 400);
    assert_eq!(
        bad.body,
        "wsdrain-resume: item \"user/alice@E1\" is not <stream>@<epoch>.<seq>\n"
    );
    // And one without the subprotocol offered.
    let unoffered = http(
        server.addr,
        "/feed?token=alice-secret&wsdrain-resume=ticker@E2.9",
        UPGRADE,
    )
    .await;
    assert_eq!(unoffered.status, 400);
}
