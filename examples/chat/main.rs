//! A chat room on `GracefulSocket`: open the page in several tabs, chat, then
//! stop the server (Ctrl-C or SIGTERM) and watch each tab show the close, the
//! hint and the countdown, and reconnect once a server is back on the port.
//!
//! Run with
//!
//! ```sh
//! cargo run --example chat            # then open the printed address
//! ```
//!
//! The page (`/`) imports `wsdrain.js` (`/wsdrain.js`, from `clients/js/`),
//! a small reconnecting WebSocket module that honours the close hints and
//! hands over on the drain notice (`WSDRAIN_NOTICE_LEAD=1s`), and keeps what
//! it observed in `window.wsdrainEvents` (and the time it spent without an
//! open connection in `window.wsdrainGaps`). Same conventions as the `echo` example: the
//! policy comes from `WSDRAIN_*` variables, the first stdout line is
//! `listening on <addr>`, the drain report is printed on exit (code 0), and a
//! bad setting prints one line naming it and exits with code 2.
//!
//! Flags: `--listen ADDR` (default `127.0.0.1:3000`).
//!
//! Built with `--features metrics`, it also serves the drain's metrics in
//! Prometheus text on `/metrics` (`cargo run --features metrics --example chat`).

use std::{
    net::SocketAddr,
    process::ExitCode,
    sync::atomic::{AtomicU64, Ordering},
};

use axum::{
    Router,
    extract::{State, ws::Message},
    http::header,
    response::{Html, IntoResponse, Response},
    routing::get,
};
use tokio::sync::broadcast;
use wsdrain::{DrainController, DrainLayer, DrainPolicy, GracefulSocket, GracefulUpgrade};

const INDEX: &str = include_str!("index.html");
// The browser client lives with the other clients; the page imports it from here.
const MODULE: &str = include_str!("../../clients/js/wsdrain.js");

/// Longest chat line accepted, in bytes; longer ones are cut.
const MAX_LINE: usize = 2000;

fn parse_args() -> Result<SocketAddr, String> {
    let mut listen = SocketAddr::from(([127, 0, 0, 1], 3000));
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--listen" => {
                let v = it.next().ok_or("--listen needs a value")?;
                listen = v
                    .parse()
                    .map_err(|_| format!("--listen: bad address {v:?}"))?;
            }
            "-h" | "--help" => {
                println!("usage: chat [--listen ADDR]   (policy from WSDRAIN_*)");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(listen)
}

struct Room {
    lines: broadcast::Sender<String>,
    guests: AtomicU64,
}

fn line(from: &str, text: &str) -> String {
    serde_json::json!({ "from": from, "text": text }).to_string()
}

async fn session(mut socket: GracefulSocket, room: &Room) {
    let name = format!("guest-{}", room.guests.fetch_add(1, Ordering::Relaxed) + 1);
    let mut lines = room.lines.subscribe();
    // Goes out right before this session's drain Close.
    socket.set_goodbye(Message::text(line(
        "server",
        "restarting, see you in a moment",
    )));
    if socket
        .send(Message::text(line("server", &format!("you are {name}"))))
        .await
        .is_err()
    {
        return;
    }
    let _ = room.lines.send(line("server", &format!("{name} joined")));
    loop {
        tokio::select! {
            msg = socket.recv() => match msg {
                Some(Ok(Message::Text(text))) => {
                    let text: String = text.as_str().chars().take(MAX_LINE).collect();
                    let _ = room.lines.send(line(&name, &text));
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => break,
            },
            got = lines.recv() => match got {
                Ok(l) => {
                    if socket.send(Message::text(l)).await.is_err() {
                        break;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => break,
            },
        }
    }
    let _ = room.lines.send(line("server", &format!("{name} left")));
}

fn app(room: &'static Room) -> Router {
    Router::new()
        .route("/", get(|| async { Html(INDEX) }))
        .route(
            "/wsdrain.js",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
                    MODULE,
                )
                    .into_response()
            }),
        )
        .route(
            "/ws",
            get(
                |upgrade: GracefulUpgrade, State(room): State<&'static Room>| async move {
                    let response: Response = upgrade.on_upgrade(move |s| session(s, room));
                    response
                },
            ),
        )
        .with_state(room)
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let listen = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("chat: {e}");
            return ExitCode::from(2);
        }
    };
    let policy = match DrainPolicy::from_env() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("chat: bad configuration: {e}");
            return ExitCode::from(2);
        }
    };
    // Signals first, while this is the only thread: from here on no SIGTERM
    // is lost, even before the runtime or the listener exist.
    let controller = DrainController::new(policy);
    let _signals = match controller.listen_for_signals() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("chat: cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("chat: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Prometheus text on `/metrics`, when built with the `metrics` feature.
    #[cfg(feature = "metrics")]
    let metrics = match metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder() {
        Ok(handle) => handle,
        Err(e) => {
            eprintln!("chat: cannot install the metrics recorder: {e}");
            return ExitCode::FAILURE;
        }
    };
    // One room for the life of the process.
    let room: &'static Room = Box::leak(Box::new(Room {
        lines: broadcast::channel(256).0,
        guests: AtomicU64::new(0),
    }));
    runtime.block_on(async {
        let app = app(room);
        #[cfg(feature = "metrics")]
        let app = app.route(
            "/metrics",
            get(move || std::future::ready(metrics.render())),
        );
        let app = app.layer(DrainLayer::new(controller.drain()));
        let listener = match tokio::net::TcpListener::bind(listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("chat: cannot listen on {listen}: {e}");
                return ExitCode::FAILURE;
            }
        };
        let addr = listener.local_addr().unwrap_or(listen);
        println!("listening on {addr}");
        println!("open http://{addr}/ in a few tabs");
        match wsdrain::serve(listener, app, &controller).await {
            Ok(report) => {
                println!("drained: {report}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("chat: server error: {e}");
                ExitCode::FAILURE
            }
        }
    })
}
