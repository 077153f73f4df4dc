//! Real servers: `wsdrain::serve` on `ConnectInfo` and on a Unix socket, the
//! TLS and hand-wired hyper-util examples, and the application's readiness
//! joined with the drain's. Real processes, real SIGTERM, 127.0.0.1 and Unix
//! sockets in a temporary directory only.
#![allow(clippy::unwrap_used)]

mod common;

use std::{
    future::Future,
    path::Path,
    process::{Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{Router, body::Body, http::Request, http::StatusCode, routing::get};
use common::{HttpResponse, Server, hint_ms};
use futures_util::{SinkExt, StreamExt};
use nix::sys::signal::Signal;
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::{TcpStream, UnixStream},
};
use tokio_tungstenite::{
    WebSocketStream, client_async,
    tungstenite::{Message, protocol::CloseFrame},
};
use tower::ServiceExt;
use wsdrain::{DrainController, DrainLayer, Phase};

/// A grace period far longer than the tests take: "exits long before the
/// deadline" is then a real check.
const ENV: &[(&str, &str)] = &[
    ("WSDRAIN_DRAIN_DELAY", "0s"),
    ("WSDRAIN_CLOSE_WINDOW", "300ms"),
    ("WSDRAIN_CLOSE_TIMEOUT", "2s"),
    ("WSDRAIN_GRACE_PERIOD", "60s"),
    ("WSDRAIN_RETRY_AFTER_MIN", "300ms"),
    ("WSDRAIN_RETRY_AFTER_MAX", "900ms"),
];

/// The deadline of `ENV` is 58 s; every drain here must end well before.
const EXIT_LIMIT: Duration = Duration::from_secs(20);

/// Bounds a step of a test.
async fn within<T>(what: &str, limit: Duration, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(limit, f)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// Starts an example with exactly `args` (no `--listen`), returns it and its
/// first line.
fn spawn(name: &str, env: &[(&str, &str)], args: &[&str]) -> (Server, String) {
    let mut cmd = Command::new(common::example(name));
    cmd.args(args).env_remove("KUBERNETES_SERVICE_HOST");
    if std::env::var_os("RUST_LOG").is_none() {
        cmd.env("RUST_LOG", "warn");
    }
    cmd.envs(env.iter().copied());
    cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let first = lines
        .recv_timeout(Duration::from_secs(30))
        .expect("server start");
    let server = Server {
        child,
        addr: "127.0.0.1:0".parse().unwrap(),
        lines,
    };
    (server, first)
}

/// One HTTP/1.1 request on `stream` (its own connection), read to the end of
/// the body (`Content-Length`) or of the connection.
async fn http_on(mut stream: impl AsyncRead + AsyncWrite + Unpin, path: &str) -> HttpResponse {
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).await.unwrap_or(0);
        if n > 0 {
            buf.extend_from_slice(&chunk[..n]);
        }
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let mut lines = head.split("\r\n");
            let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse();
            let headers: Vec<(String, String)> = lines
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .collect();
            let resp = HttpResponse {
                status: status.unwrap(),
                headers,
                body: body.to_string(),
            };
            let len = resp.header("content-length").and_then(|l| l.parse().ok());
            if n == 0 || len.is_some_and(|l: usize| body.len() >= l) {
                return resp;
            }
        }
        assert!(n > 0, "incomplete response: {text:?}");
    }
}

/// Polls `/readyz` (a new connection each time, made by `connect`) until it
/// answers `status`; returns that response. Bounded.
async fn readyz_until<S, F>(connect: impl Fn() -> F, status: u16) -> HttpResponse
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: Future<Output = S>,
{
    within("readyz", Duration::from_secs(10), async {
        loop {
            let r = http_on(connect().await, "/readyz").await;
            if r.status == status {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
}

/// One echo round trip: the session is up.
async fn round_trip<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>) {
    ws.send(Message::text("ping")).await.unwrap();
    let echoed = within("echo", Duration::from_secs(10), ws.next()).await;
    assert_eq!(echoed.unwrap().unwrap(), Message::text("ping"));
}

/// Reads until the server's Close and the end of the stream; returns the
/// Close's code and reason (an abnormal end fails the test).
async fn closed_by_server<S>(mut ws: WebSocketStream<S>) -> (u16, String)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    within("close", Duration::from_secs(20), async {
        let mut close: Option<CloseFrame> = None;
        while let Some(msg) = ws.next().await {
            match msg {
                Ok(Message::Close(frame)) => close = frame,
                Ok(_) => {}
                Err(e) => panic!("abnormal end: {e}"),
            }
        }
        let frame = close.expect("a Close frame before the end of the stream");
        (u16::from(frame.code), frame.reason.to_string())
    })
    .await
}

fn assert_going_away((code, reason): &(u16, String)) {
    assert_eq!(*code, 1001, "{reason}");
    let hint = hint_ms(reason).unwrap_or_else(|| panic!("no hint in {reason:?}"));
    assert!((300..=900).contains(&hint), "{reason}");
}

fn assert_clean_exit(server: &mut Server) {
    let (code, took) = server.wait_exit(EXIT_LIMIT);
    assert_eq!(code, Some(0), "exit code");
    assert!(took < EXIT_LIMIT, "took {took:?}");
    assert!(
        server.rest().iter().any(|l| l.starts_with("drained: ")),
        "report printed"
    );
}

#[tokio::test]
async fn connect_info_reaches_handlers() {
    let mut server = Server::start("echo", ENV, &["--connect-info"]);
    let stream = TcpStream::connect(server.addr).await.unwrap();
    let mine = stream.local_addr().unwrap();
    let peer = within("/peer", Duration::from_secs(10), http_on(stream, "/peer")).await;
    assert_eq!(peer.status, 200);
    assert_eq!(peer.body, mine.to_string(), "the handler sees our address");
    assert!(peer.body.starts_with("127.0.0.1:"), "{}", peer.body);

    // Sessions drain as on the default make-service.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", server.addr))
        .await
        .unwrap();
    round_trip(&mut ws).await;
    server.signal(Signal::SIGTERM);
    let ending = closed_by_server(ws).await;
    assert_going_away(&ending);
    assert_clean_exit(&mut server);
}

#[tokio::test]
async fn unix_listener_drains_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("echo.sock");
    let (mut server, first) = spawn("echo", ENV, &["--unix", path.to_str().unwrap()]);
    assert_eq!(first, format!("listening on unix:{}", path.display()));
    let connect = || UnixStream::connect(&path);

    let ready = http_on(connect().await.unwrap(), "/readyz").await;
    assert_eq!(
        (ready.status, ready.body.as_str()),
        (200, r#"{"phase":"serving","sessions":0}"#)
    );
    let (mut ws, _) = client_async("ws://localhost/ws", connect().await.unwrap())
        .await
        .unwrap();
    let start = Instant::now();
    round_trip(&mut ws).await;
    server.signal(Signal::SIGTERM);
    let ending = closed_by_server(ws).await;
    assert_going_away(&ending);
    assert_clean_exit(&mut server);
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "long before the 58 s deadline: {:?}",
        start.elapsed()
    );
    assert!(!path_exists(&path), "socket file removed at exit");
}

fn path_exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

#[tokio::test]
async fn tls_example_drains_wss_sessions() {
    use tokio_rustls::{
        TlsConnector,
        rustls::{
            ClientConfig, RootCertStore,
            crypto::ring,
            pki_types::{CertificateDer, ServerName, pem::PemObject},
        },
    };
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("cert.pem");
    let mut server = Server::start("tls", ENV, &["--write-cert", pem.to_str().unwrap()]);
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&pem).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = TlsConnector::from(Arc::new(config));
    let addr = server.addr;
    let connect = || {
        let connector = connector.clone();
        async move {
            let tcp = TcpStream::connect(addr).await.unwrap();
            let name = ServerName::try_from("localhost").unwrap();
            connector.connect(name, tcp).await.unwrap()
        }
    };

    let ready = within("https /readyz", Duration::from_secs(10), async {
        http_on(connect().await, "/readyz").await
    })
    .await;
    assert_eq!(ready.status, 200);
    let clients = within("wss handshakes", Duration::from_secs(10), async {
        let mut clients = Vec::new();
        for _ in 0..3 {
            let (mut ws, _) = client_async("wss://localhost/ws", connect().await)
                .await
                .unwrap();
            round_trip(&mut ws).await;
            clients.push(ws);
        }
        clients
    })
    .await;
    server.signal(Signal::SIGTERM);
    let endings = futures_util::future::join_all(clients.into_iter().map(closed_by_server)).await;
    for ending in &endings {
        assert_going_away(ending);
    }
    assert_clean_exit(&mut server);
}

#[tokio::test]
async fn hand_wired_hyper_example_drains() {
    // A drain delay long enough to see Draining from outside.
    let env = [ENV, &[("WSDRAIN_DRAIN_DELAY", "1500ms")]].concat();
    let mut server = Server::start("hyper", &env, &[]);
    let addr = server.addr;
    let connect = || async move { TcpStream::connect(addr).await.unwrap() };
    let ready = http_on(connect().await, "/readyz").await;
    assert_eq!(ready.status, 200);
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .unwrap();
    round_trip(&mut ws).await;

    server.signal(Signal::SIGTERM);
    let ready = readyz_until(connect, 503).await;
    assert_eq!(ready.body, r#"{"phase":"draining","sessions":1}"#);
    let ending = closed_by_server(ws).await;
    assert_going_away(&ending);
    assert_clean_exit(&mut server);
}

/// The readiness hook in process: through the layer, no server.
#[tokio::test]
async fn readiness_hook_joins_the_drain() {
    let controller = DrainController::new(common::quick_policy().build().unwrap());
    let ready = Arc::new(AtomicBool::new(false));
    let r = ready.clone();
    let app = Router::new()
        .route("/hello", get(|| async { "hello" }))
        .layer(DrainLayer::new(controller.drain()).readiness(move || r.load(Ordering::Acquire)));
    let get = |path: &'static str| {
        let app = app.clone();
        async move {
            let response = app
                .oneshot(Request::get(path).body(Body::empty()).unwrap())
                .await
                .unwrap();
            let status = response.status();
            let body = axum::body::to_bytes(response.into_body(), 1 << 16)
                .await
                .unwrap();
            (status, String::from_utf8(body.to_vec()).unwrap())
        }
    };

    let serving = r#"{"phase":"serving","sessions":0}"#.to_string();
    assert_eq!(
        get("/readyz").await,
        (StatusCode::SERVICE_UNAVAILABLE, serving.clone()),
        "not ready while the application says no"
    );
    assert_eq!(get("/livez").await.0, StatusCode::OK, "liveness unaffected");
    assert_eq!(
        get("/hello").await.0,
        StatusCode::OK,
        "traffic still served"
    );
    ready.store(true, Ordering::Release);
    assert_eq!(get("/readyz").await, (StatusCode::OK, serving));

    controller.begin();
    assert_eq!(controller.drain().phase(), Phase::Draining);
    assert_eq!(
        get("/readyz").await,
        (
            StatusCode::SERVICE_UNAVAILABLE,
            r#"{"phase":"draining","sessions":0}"#.to_string()
        ),
        "the drain wins over a ready application"
    );
}

/// The readiness hook in a real process: `--warm-up` keeps `/readyz` at 503
/// until SIGUSR1; SIGTERM still flips it.
#[tokio::test]
async fn readiness_hook_in_a_real_process() {
    let env = [ENV, &[("WSDRAIN_DRAIN_DELAY", "1500ms")]].concat();
    let mut server = Server::start("echo", &env, &["--warm-up"]);
    let addr = server.addr;
    let connect = || async move { TcpStream::connect(addr).await.unwrap() };

    let cold = http_on(connect().await, "/readyz").await;
    assert_eq!(
        (cold.status, cold.body.as_str()),
        (503, r#"{"phase":"serving","sessions":0}"#),
        "not ready before the warm-up"
    );
    let live = http_on(connect().await, "/livez").await;
    assert_eq!(live.status, 200);

    server.signal(Signal::SIGUSR1);
    let warm = readyz_until(connect, 200).await;
    assert_eq!(warm.body, r#"{"phase":"serving","sessions":0}"#);

    server.signal(Signal::SIGTERM);
    let draining = readyz_until(connect, 503).await;
    assert_eq!(draining.body, r#"{"phase":"draining","sessions":0}"#);
    assert_clean_exit(&mut server);
}

/// After Closed, a plain HTTP connection that never finishes its first
/// request (hyper holds such a connection busy, with no timeout of its own)
/// gets half the deadline margin (1 s here), then the process exits anyway.
async fn stalled_connection_is_bounded(mut server: Server) {
    let mut stalled = TcpStream::connect(server.addr).await.unwrap();
    stalled
        .write_all(b"GET /readyz HTTP/1.1\r\nHost: loc")
        .await
        .unwrap();
    // Connections are accepted in order: once a later one is answered, the
    // stalled one has been accepted and is being read.
    let later = TcpStream::connect(server.addr).await.unwrap();
    let live = within("/livez", Duration::from_secs(10), http_on(later, "/livez")).await;
    assert_eq!(live.status, 200);
    server.signal(Signal::SIGTERM);
    let (code, took) = server.wait_exit(Duration::from_secs(10));
    assert_eq!(code, Some(0));
    assert!(
        took >= Duration::from_millis(900),
        "the stalled connection was waited for, up to the linger: {took:?}"
    );
    let mut rest = Vec::new();
    let end = within(
        "connection closed",
        Duration::from_secs(5),
        stalled.read_to_end(&mut rest),
    )
    .await;
    assert!(
        end.is_err() || rest.is_empty(),
        "no response to half a request"
    );
}

#[tokio::test]
async fn serve_bounds_a_stalled_connection_after_closed() {
    stalled_connection_is_bounded(Server::start("echo", ENV, &[])).await;
}

#[tokio::test]
async fn hyper_example_bounds_a_stalled_connection_after_closed() {
    stalled_connection_is_bounded(Server::start("hyper", ENV, &[])).await;
}

/// `serve` takes a listener wrapped by axum's `ListenerExt::tap_io`, in
/// process: the tap runs on every connection, and the drain still ends it.
#[tokio::test]
async fn serve_takes_a_tapped_listener() {
    use axum::serve::ListenerExt;
    use std::sync::atomic::AtomicUsize;

    let tapped = Arc::new(AtomicUsize::new(0));
    let t = tapped.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .tap_io(move |tcp| {
            let _ = tcp.set_nodelay(true);
            t.fetch_add(1, Ordering::Relaxed);
        });
    let addr = axum::serve::Listener::local_addr(&listener).unwrap();
    let controller = Arc::new(DrainController::new(
        common::quick_policy().build().unwrap(),
    ));
    let app = common::echo_router().layer(DrainLayer::new(controller.drain()));
    let c = controller.clone();
    let served = tokio::spawn(async move { wsdrain::serve(listener, app, &c).await });

    let ready = common::http(addr, "/readyz", &[]).await;
    assert_eq!(ready.status, 200);
    assert_eq!(tapped.load(Ordering::Relaxed), 1, "the tap ran");
    controller.begin();
    let report = within("drain", Duration::from_secs(10), served)
        .await
        .unwrap()
        .unwrap();
    assert!(report.is_clean(), "{report}");
}
