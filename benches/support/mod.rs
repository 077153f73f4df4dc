//! Shared by the bench binaries: the servers compared (wsdrain, raw axum, the
//! hand-rolled close-all baseline), loopback clients, and `/proc` readings.
#![allow(dead_code, unreachable_pub)]

use std::{
    io,
    net::{Ipv4Addr, SocketAddr, SocketAddrV4},
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::{
    Router,
    extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade},
    response::Response,
    routing::get,
};
use tokio::{
    net::{TcpListener, TcpSocket, TcpStream},
    sync::{broadcast, watch},
};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, tungstenite::protocol::WebSocketConfig};
use wsdrain::{
    Drain, DrainLayer, GracefulSocket, GracefulUpgrade, ResumableSocket, ResumableUpgrade,
    resume::{Feed, MemoryLog},
};

/// tungstenite's read buffer used on both sides of the scale benches: its
/// 128 KiB default would hide every other per-session cost.
pub const READ_BUFFER: usize = 4096;

/// A client WebSocket over plain TCP.
pub type ClientWs = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Echo on axum's own `WebSocket`: what users write today.
async fn raw_echo(mut socket: WebSocket) {
    while let Some(Ok(msg)) = socket.recv().await {
        if matches!(msg, Message::Text(_) | Message::Binary(_)) && socket.send(msg).await.is_err() {
            break;
        }
    }
}

/// The same echo on [`GracefulSocket`].
async fn graceful_echo(mut socket: GracefulSocket) {
    while let Some(Ok(msg)) = socket.recv().await {
        if matches!(msg, Message::Text(_) | Message::Binary(_)) && socket.send(msg).await.is_err() {
            break;
        }
    }
}

/// `/ws` echo on raw axum.
pub fn raw_router(read_buffer: Option<usize>) -> Router {
    Router::new().route(
        "/ws",
        get(move |upgrade: WebSocketUpgrade| async move {
            let upgrade = match read_buffer {
                Some(n) => upgrade.read_buffer_size(n),
                None => upgrade,
            };
            upgrade.on_upgrade(raw_echo)
        }),
    )
}

/// `/ws` echo on [`GracefulSocket`], behind [`DrainLayer`].
pub fn graceful_router(drain: Drain, read_buffer: Option<usize>) -> Router {
    Router::new()
        .route(
            "/ws",
            get(move |upgrade: GracefulUpgrade| async move {
                let upgrade = match read_buffer {
                    Some(n) => upgrade.read_buffer_size(n),
                    None => upgrade,
                };
                let response: Response = upgrade.on_upgrade(graceful_echo);
                response
            }),
        )
        .layer(DrainLayer::new(drain))
}

/// The same echo on a [`ResumableSocket`] that follows one stream (on which
/// nothing is published): an idle resumable session.
async fn resumable_echo(mut socket: ResumableSocket<MemoryLog>) {
    if socket.follow("idle").await.is_err() {
        return;
    }
    while let Some(Ok(msg)) = socket.recv().await {
        let sent = match msg {
            Message::Text(t) => socket.send(t.as_str()).await,
            Message::Binary(b) => socket.send(b).await,
            _ => Ok(()),
        };
        if sent.is_err() {
            break;
        }
    }
}

/// `/ws` echo on [`ResumableSocket`], behind [`DrainLayer`]; clients that do
/// not offer the subprotocol see the same bytes as on the other routers.
pub fn resumable_router(drain: Drain, feed: Feed<MemoryLog>, read_buffer: Option<usize>) -> Router {
    Router::new()
        .route(
            "/ws",
            get(move |upgrade: ResumableUpgrade| async move {
                let upgrade = match read_buffer {
                    Some(n) => upgrade.read_buffer_size(n),
                    None => upgrade,
                };
                let response: Response = upgrade.on_upgrade(feed, resumable_echo);
                response
            }),
        )
        .layer(DrainLayer::new(drain))
}

/// The hand-rolled fix axum users write today: a broadcast channel, a
/// `select!` in every handler, and a live-handler counter main waits on.
#[derive(Clone)]
pub struct CloseAll {
    shutdown: broadcast::Sender<()>,
    live: Arc<watch::Sender<usize>>,
}

/// Decrements the live-handler count when the handler ends (panics included).
struct LiveGuard(Arc<watch::Sender<usize>>);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}

impl Default for CloseAll {
    fn default() -> Self {
        CloseAll {
            shutdown: broadcast::channel(1).0,
            live: Arc::new(watch::Sender::new(0)),
        }
    }
}

impl CloseAll {
    /// `/ws` echo that closes with `Close(1001, "going away; retry-after-ms=1000")`
    /// on [`shutdown`](Self::shutdown).
    pub fn router(&self, read_buffer: Option<usize>) -> Router {
        let this = self.clone();
        Router::new().route(
            "/ws",
            get(move |upgrade: WebSocketUpgrade| {
                let this = this.clone();
                async move {
                    let upgrade = match read_buffer {
                        Some(n) => upgrade.read_buffer_size(n),
                        None => upgrade,
                    };
                    // Counted and subscribed before the 101 goes out.
                    this.live.send_modify(|n| *n += 1);
                    let guard = LiveGuard(this.live.clone());
                    let rx = this.shutdown.subscribe();
                    upgrade.on_upgrade(move |socket| closeall_echo(socket, rx, guard))
                }
            }),
        )
    }

    /// Tells every handler to close.
    pub fn shutdown(&self) {
        let _ = self.shutdown.send(());
    }

    /// Live handlers.
    pub fn live(&self) -> usize {
        *self.live.borrow()
    }

    /// Waits until no handler is live, or `limit`.
    pub async fn wait_idle(&self, limit: Duration) {
        let mut rx = self.live.subscribe();
        let _ = tokio::time::timeout(limit, rx.wait_for(|n| *n == 0)).await;
    }
}

async fn closeall_echo(mut socket: WebSocket, mut rx: broadcast::Receiver<()>, _guard: LiveGuard) {
    loop {
        tokio::select! {
            msg = socket.recv() => match msg {
                Some(Ok(msg @ (Message::Text(_) | Message::Binary(_)))) => {
                    if socket.send(msg).await.is_err() {
                        return;
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return,
            },
            _ = rx.recv() => break,
        }
    }
    let close = Message::Close(Some(CloseFrame {
        code: 1001,
        reason: "going away; retry-after-ms=1000".into(),
    }));
    if socket.send(close).await.is_err() {
        return;
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while socket.recv().await.is_some() {}
    })
    .await;
}

/// A listener on `addr` with `SO_REUSEADDR` and a backlog of 4096.
pub fn listener(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

/// The client config of the scale benches: the same read buffer as the server.
pub fn client_config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(READ_BUFFER)
}

/// Opens a WebSocket to `ws://{server}/ws` from `source` (port chosen at
/// connect time, `IP_BIND_ADDRESS_NO_PORT`, so one source address is not
/// limited by the kernel's slow ephemeral-port search in `bind`).
pub async fn connect_from(
    source: Ipv4Addr,
    server: SocketAddr,
    config: Option<WebSocketConfig>,
) -> Result<ClientWs, String> {
    let socket = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )
    .map_err(|e| format!("socket: {e}"))?;
    nix::sys::socket::setsockopt(
        &socket,
        nix::sys::socket::sockopt::IpBindAddressNoPort,
        &true,
    )
    .map_err(|e| format!("IP_BIND_ADDRESS_NO_PORT: {e}"))?;
    socket
        .set_nonblocking(true)
        .map_err(|e| format!("nonblocking: {e}"))?;
    let socket = TcpSocket::from_std_stream(socket.into());
    socket
        .bind(SocketAddr::V4(SocketAddrV4::new(source, 0)))
        .map_err(|e| format!("bind {source}: {e}"))?;
    let stream = socket
        .connect(server)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    stream
        .set_nodelay(true)
        .map_err(|e| format!("nodelay: {e}"))?;
    let url = format!("ws://{server}/ws");
    let (ws, _) =
        tokio_tungstenite::client_async_with_config(url, MaybeTlsStream::Plain(stream), config)
            .await
            .map_err(|e| format!("handshake: {e}"))?;
    Ok(ws)
}

/// The loopback source address for connection `i`: 127.0.0.2, .3, … every
/// `per_address` connections.
pub fn source_address(i: usize, per_address: usize) -> Ipv4Addr {
    let k = (i / per_address.max(1)) as u32;
    Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 0, 0, 2)) + k)
}

/// Nanoseconds since the Unix epoch (`CLOCK_REALTIME`), comparable across processes.
pub fn realtime_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// User + system CPU seconds of process `pid` (`/proc/PID/stat`, clock ticks
/// of 1/100 s, Linux's USER_HZ).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 here.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// Busy (non-idle, non-iowait) CPU seconds of the whole machine since boot
/// (`/proc/stat`, USER_HZ ticks).
pub fn machine_busy_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(cpu) = stat.lines().next() else {
        return f64::NAN;
    };
    let ticks: Vec<f64> = cpu
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let total: f64 = ticks.iter().take(8).sum();
    let idle = ticks.get(3).copied().unwrap_or(0.0) + ticks.get(4).copied().unwrap_or(0.0);
    (total - idle) / 100.0
}

/// A `kB` field of `/proc/PID/status` (`VmRSS`, `VmHWM`), in bytes.
pub fn status_bytes(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|line| {
        let value = line.strip_prefix(field)?.strip_prefix(':')?;
        let kb: u64 = value.trim().trim_end_matches("kB").trim().parse().ok()?;
        Some(kb * 1024)
    })
}

/// Raises the soft open-files limit to the hard one.
pub fn raise_nofile_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

/// Machine facts for the report header: cores, CPU model, kernel, load.
pub fn machine() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!(
        "{cores} cores, {model}, Linux {}, {}",
        kernel.trim(),
        load()
    )
}

/// The 1/5/15-minute load averages.
pub fn load() -> String {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let parts: Vec<&str> = load.split_whitespace().take(3).collect();
    format!("load {}", parts.join(" "))
}

/// `--name VALUE` among the command-line arguments.
pub fn arg(name: &str) -> Option<u64> {
    let args: Vec<String> = std::env::args().collect();
    let i = args.iter().position(|a| a == name)?;
    args.get(i + 1)?.parse().ok()
}
