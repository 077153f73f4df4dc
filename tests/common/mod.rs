//! Helpers shared by the end-to-end tests: real processes, real TCP, real signals.
#![allow(dead_code, clippy::unwrap_used, unreachable_pub)]

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

pub mod browser;
pub mod client;
pub mod feed;
pub mod haproxy;
pub mod peers;

use futures_util::StreamExt;
use nix::{sys::signal::Signal, unistd::Pid};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use tokio_tungstenite::tungstenite::{Message, protocol::CloseFrame};

/// Path of a built example (`cargo test --workspace` builds every member's
/// examples; a single test target does not).
pub fn example(name: &str) -> PathBuf {
    let mut dir = std::env::current_exe().unwrap();
    dir.pop();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{} not built: run `cargo build --workspace --all-features --examples`",
        path.display()
    );
    path
}

/// A running example server.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    pub lines: mpsc::Receiver<String>,
}

impl Server {
    /// Starts `name` with `--listen 127.0.0.1:0` and the given env; waits for
    /// its `listening on` line.
    pub fn start(name: &str, env: &[(&str, &str)], args: &[&str]) -> Server {
        let mut cmd = Command::new(example(name));
        cmd.args(["--listen", "127.0.0.1:0"]).args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Server::spawn(cmd)
    }

    /// Starts `cmd` (a server that prints `listening on ADDR` first) outside
    /// Kubernetes, logging warnings unless `RUST_LOG` says otherwise.
    pub fn spawn(mut cmd: Command) -> Server {
        cmd.env_remove("KUBERNETES_SERVICE_HOST");
        let set = cmd.get_envs().any(|(k, _)| k == "RUST_LOG");
        if !set && std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "warn");
        }
        cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());
        let mut child = cmd.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let first = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("server start");
        let addr = first
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
            .parse()
            .unwrap();
        Server {
            child,
            addr,
            lines: rx,
        }
    }

    pub fn signal(&self, sig: Signal) {
        nix::sys::signal::kill(Pid::from_raw(self.child.id() as i32), sig).unwrap();
    }

    /// Waits for the exit, at most `limit`; returns the code and the time it took.
    pub fn wait_exit(&mut self, limit: Duration) -> (Option<i32>, Duration) {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status.code(), start.elapsed());
            }
            if start.elapsed() > limit {
                let _ = self.child.kill();
                panic!("server still running after {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The remaining stdout lines, up to the end of the output (after exit;
    /// bounded, in case a grandchild keeps the pipe open).
    pub fn rest(&self) -> Vec<String> {
        let mut lines = Vec::new();
        let end = Instant::now() + Duration::from_secs(5);
        while let Ok(line) = self
            .lines
            .recv_timeout(end.saturating_duration_since(Instant::now()))
        {
            lines.push(line);
        }
        lines
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A parsed HTTP/1.1 response.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request on a fresh connection; reads to the end of the body
/// (`Content-Length`) or of the connection.
pub async fn http(addr: SocketAddr, path: &str, extra_headers: &[(&str, &str)]) -> HttpResponse {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n");
    for (k, v) in extra_headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(resp) = parse_response(&buf) {
            return resp;
        }
    }
    parse_response(&buf)
        .unwrap_or_else(|| panic!("incomplete response: {:?}", String::from_utf8_lossy(&buf)))
}

fn parse_response(buf: &[u8]) -> Option<HttpResponse> {
    let text = std::str::from_utf8(buf).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let resp = HttpResponse {
        status,
        headers,
        body: body.to_string(),
    };
    if status == 101 {
        return Some(resp);
    }
    let len: usize = resp.header("content-length")?.parse().ok()?;
    (resp.body.len() >= len).then_some(resp)
}

/// Headers of a WebSocket upgrade request.
pub const UPGRADE: &[(&str, &str)] = &[
    ("Connection", "Upgrade"),
    ("Upgrade", "websocket"),
    ("Sec-WebSocket-Version", "13"),
    ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
];

pub type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

pub async fn ws_connect(addr: SocketAddr) -> Ws {
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .unwrap();
    ws
}

/// How a client saw its session end.
#[derive(Debug, Clone, PartialEq)]
pub enum Ending {
    /// A Close frame, then the stream ended cleanly.
    Closed {
        code: u16,
        reason: String,
        at: Instant,
    },
    /// The stream ended without a Close frame, or with an error.
    Abnormal(String),
}

/// Reads until the session ends; keeps reading after the Close so
/// tungstenite answers it and waits for the server's TCP close.
pub async fn read_to_end(mut ws: Ws) -> Ending {
    let mut close: Option<(CloseFrame, Instant)> = None;
    loop {
        match ws.next().await {
            Some(Ok(Message::Close(frame))) => {
                let frame = frame.unwrap_or_else(|| CloseFrame {
                    code: 1005.into(),
                    reason: "".into(),
                });
                close = Some((frame, Instant::now()));
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Ending::Abnormal(format!("{e}")),
            None => break,
        }
    }
    match close {
        Some((f, at)) => Ending::Closed {
            code: f.code.into(),
            reason: f.reason.to_string(),
            at,
        },
        None => Ending::Abnormal("stream ended without a Close frame".into()),
    }
}

/// A server running in this process on `wsdrain::serve`.
pub struct InProc {
    pub addr: SocketAddr,
    pub controller: std::sync::Arc<wsdrain::DrainController>,
    pub drain: wsdrain::Drain,
    pub task: tokio::task::JoinHandle<std::io::Result<wsdrain::DrainReport>>,
}

impl InProc {
    /// Serves `router` (the `DrainLayer` is added here) on 127.0.0.1:0.
    pub async fn start(policy: wsdrain::DrainPolicy, router: axum::Router) -> InProc {
        InProc::start_at("127.0.0.1:0".parse().unwrap(), policy, router).await
    }

    pub async fn report(self) -> wsdrain::DrainReport {
        tokio::time::timeout(Duration::from_secs(60), self.task)
            .await
            .expect("drain ends")
            .unwrap()
            .unwrap()
    }
}

/// A policy for in-process tests: no delay, short window and timeout.
pub fn quick_policy() -> wsdrain::DrainPolicyBuilder {
    wsdrain::DrainPolicy::builder()
        .kubernetes(false)
        .drain_delay(Duration::ZERO)
        .close_window(Duration::from_millis(500))
        .close_timeout(Duration::from_secs(1))
        .grace_period(Duration::from_secs(20))
        .retry_after(Duration::from_millis(200), Duration::from_millis(800))
}

/// The echo handler of the examples, for in-process servers.
pub async fn echo(mut socket: wsdrain::GracefulSocket) {
    while let Some(msg) = socket.recv().await {
        match msg {
            Ok(
                msg @ (axum::extract::ws::Message::Text(_) | axum::extract::ws::Message::Binary(_)),
            ) => {
                if socket.send(msg).await.is_err() {
                    break;
                }
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
}

pub fn echo_router() -> axum::Router {
    use axum::routing::get;
    axum::Router::new().route(
        "/ws",
        get(|u: wsdrain::GracefulUpgrade| async move { u.on_upgrade(echo) }),
    )
}

/// Waits (bounded) until `cond` holds.
pub async fn eventually(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// A WebSocket client speaking raw frames, to misbehave or to count frames.
pub struct RawWs {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl RawWs {
    pub async fn connect(addr: SocketAddr, path: &str) -> RawWs {
        match RawWs::try_connect(addr, path).await {
            Ok(ws) => ws,
            Err(e) => panic!("upgrade to {path} failed: {e:?}"),
        }
    }

    /// Next frame (opcode, payload); `None` at end of stream.
    pub async fn read_frame(&mut self) -> Option<(u8, Vec<u8>)> {
        loop {
            if let Some((frame, used)) = parse_frame(&self.buf) {
                self.buf.drain(..used);
                return Some(frame);
            }
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Sends one masked frame.
    pub async fn send_frame(&mut self, opcode: u8, payload: &[u8]) {
        let mut f = vec![0x80 | opcode];
        let mask = [1u8, 2, 3, 4];
        match payload.len() {
            n if n < 126 => f.push(0x80 | n as u8),
            n if n < 65536 => {
                f.push(0x80 | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(0x80 | 127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        f.extend_from_slice(&mask);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        let _ = self.stream.write_all(&f).await;
    }
}

fn parse_frame(b: &[u8]) -> Option<((u8, Vec<u8>), usize)> {
    if b.len() < 2 {
        return None;
    }
    let opcode = b[0] & 0x0f;
    let (len, mut at) = match b[1] & 0x7f {
        126 if b.len() >= 4 => (u16::from_be_bytes([b[2], b[3]]) as usize, 4),
        127 if b.len() >= 10 => (
            u64::from_be_bytes(b[2..10].try_into().unwrap()) as usize,
            10,
        ),
        126 | 127 => return None,
        n => (n as usize, 2),
    };
    let masked = b[1] & 0x80 != 0;
    let mask = if masked {
        if b.len() < at + 4 {
            return None;
        }
        at += 4;
        Some([b[at - 4], b[at - 3], b[at - 2], b[at - 1]])
    } else {
        None
    };
    if b.len() < at + len {
        return None;
    }
    let mut payload = b[at..at + len].to_vec();
    if let Some(m) = mask {
        payload
            .iter_mut()
            .enumerate()
            .for_each(|(i, x)| *x ^= m[i % 4]);
    }
    Some(((opcode, payload), at + len))
}

/// Code and reason of a Close payload.
pub fn close_payload(p: &[u8]) -> (u16, String) {
    if p.len() < 2 {
        return (1005, String::new());
    }
    (
        u16::from_be_bytes([p[0], p[1]]),
        String::from_utf8_lossy(&p[2..]).to_string(),
    )
}

/// The retry hint of a reason, by the documented regex `retry-after-ms=(\d+)`.
pub fn hint_ms(reason: &str) -> Option<u64> {
    let i = reason.find("retry-after-ms=")? + "retry-after-ms=".len();
    let digits: String = reason[i..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

/// How a [`RawWs::try_connect`] failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// An HTTP response other than 101, with its status.
    Status(u16),
    /// Connection refused or reset, or closed before a full response head.
    Io(String),
}

impl RawWs {
    /// Like [`RawWs::connect`], but reports a refused upgrade instead of panicking.
    pub async fn try_connect(addr: SocketAddr, path: &str) -> Result<RawWs, Refused> {
        let io = |e: std::io::Error| Refused::Io(e.to_string());
        let mut stream = TcpStream::connect(addr).await.map_err(io)?;
        let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n");
        for (k, v) in UPGRADE {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        stream.write_all(req.as_bytes()).await.map_err(io)?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 1024];
        let head_end = loop {
            let n = stream.read(&mut chunk).await.map_err(io)?;
            if n == 0 {
                return Err(Refused::Io("closed during handshake".into()));
            }
            buf.extend_from_slice(&chunk[..n]);
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if status != 101 {
            return Err(Refused::Status(status));
        }
        Ok(RawWs {
            stream,
            buf: buf[head_end..].to_vec(),
        })
    }
}

impl InProc {
    /// Like [`InProc::start`], on a given address (e.g. the one a drained
    /// server just left, so that clients can come back to it).
    pub async fn start_at(
        addr: SocketAddr,
        policy: wsdrain::DrainPolicy,
        router: axum::Router,
    ) -> InProc {
        let controller = std::sync::Arc::new(wsdrain::DrainController::new(policy));
        let drain = controller.drain();
        let app = router.layer(wsdrain::DrainLayer::new(drain.clone()));
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let c = controller.clone();
        let task = tokio::spawn(async move { wsdrain::serve(listener, app, &c).await });
        InProc {
            addr,
            controller,
            drain,
            task,
        }
    }
}

/// The policy an example started with `env` runs on (outside Kubernetes).
pub fn policy_of(env: &[(&str, &str)]) -> wsdrain::DrainPolicy {
    wsdrain::DrainPolicy::builder()
        .env(|name| {
            env.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })
        .unwrap()
        .build()
        .unwrap()
}

/// Checks that `ends` (when each of the sessions at Closing was seen to end)
/// follow the close schedule: `ends.len()` turns evenly spaced over `span`
/// from a moment no earlier than `closing`. The `k`-th end never comes
/// before the `k`-th turn: timers never fire early, so this holds however
/// loaded the machine is, and catches any burst ahead of the schedule. None
/// comes more than `slack` after it, which catches turns bunched late.
pub fn assert_paced(ends: &[Instant], closing: Instant, span: Duration, slack: Duration) {
    let mut ends = ends.to_vec();
    ends.sort_unstable();
    let n = ends.len() as u128;
    for (k, end) in ends.iter().enumerate() {
        // The schedule's own arithmetic: whole nanoseconds, rounded down.
        let offset = span.as_nanos() * k as u128 / n.max(1);
        let turn = closing + Duration::from_nanos(u64::try_from(offset).unwrap());
        assert!(
            *end >= turn,
            "end {k} of {n} came {:?} before its turn: ahead of the schedule",
            turn - *end
        );
        assert!(
            *end <= turn + slack,
            "end {k} of {n} came {:?} after its turn (slack {slack:?})",
            *end - turn
        );
    }
}

/// For the tests with their own `main` (`harness = false`): whether the test
/// `name` runs under the command line's filters, read as libtest reads them
/// (positional arguments are substring filters, `--exact` makes them whole
/// names, `--skip` excludes; no filter runs every test).
pub fn selected(name: &str) -> bool {
    const WITH_VALUE: [&str; 5] = ["--test-threads", "--format", "--color", "--logfile", "-Z"];
    let args: Vec<String> = std::env::args().skip(1).collect();
    let exact = args.iter().any(|a| a == "--exact");
    let matches = |f: &str| if exact { name == f } else { name.contains(f) };
    let (mut filters, mut skips) = (Vec::new(), Vec::new());
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        if arg == "--skip" {
            skips.extend(it.next());
        } else if WITH_VALUE.contains(&arg.as_str()) {
            it.next();
        } else if !arg.starts_with('-') {
            filters.push(arg);
        }
    }
    (filters.is_empty() || filters.iter().any(|f| matches(f))) && !skips.iter().any(|s| matches(s))
}
