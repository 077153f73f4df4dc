//! The verification server: a WebSocket echo on `GracefulSocket`, with
//! `/readyz` and `/livez`, drained on SIGTERM/SIGINT.
//!
//! Run with
//!
//! ```sh
//! cargo run --example echo -- --listen 127.0.0.1:3000
//! ```
//!
//! The policy comes from `WSDRAIN_*` variables (e.g. `WSDRAIN_DRAIN_DELAY=3s`
//! holds the Draining phase 3 s, long enough to watch `/readyz` turn 503).
//! It prints `listening on <addr>`, then the policy and what SIGTERM will do,
//! and the drain report on exit (code 0). Bad settings are named, all at
//! once, and it exits with code 2; a misspelled `WSDRAIN_*` name is logged
//! with the nearest setting. Logs go to stderr (`RUST_LOG=warn`,
//! `RUST_LOG=wsdrain=debug,info`: a level per target).
//!
//! With `WSDRAIN_ADMIN_TOKEN` set it also serves the admin endpoint
//! (`POST /drain` with `Authorization: Bearer <token>`) on
//! `WSDRAIN_ADMIN_LISTEN` (default `127.0.0.1:9901`).
//!
//! `/ws` is an `any()` route, so WebSockets over HTTP/2 (RFC 8441 extended
//! CONNECT) reach it too.
//!
//! Flags: `--listen ADDR` (default `127.0.0.1:3000`), `--read-buffer BYTES`
//! (tungstenite's read buffer per session, default 128 KiB), `--plain`: the
//! baseline, what axum gives today (axum's own `WebSocketUpgrade` and
//! `axum::serve(..).with_graceful_shutdown(SIGTERM)`, no wsdrain; `/readyz`
//! is always 200), for side-by-side comparisons.
//!
//! Other servers than the default (they show what `wsdrain::serve` accepts,
//! and the readiness hook):
//!
//! * `--unix PATH`: listen on a Unix socket instead (prints
//!   `listening on unix:PATH`);
//! * `--connect-info`: serve with `ConnectInfo<SocketAddr>`, and answer
//!   `GET /peer` with the client's address;
//! * `--warm-up`: `/readyz` says 503 (the application is not ready) until the
//!   process gets SIGUSR1, the application's own readiness joined with the
//!   drain's through `DrainLayer::readiness`.

#[path = "support/mod.rs"]
mod support;

use std::{
    net::SocketAddr,
    path::PathBuf,
    process::ExitCode,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use axum::{
    Router,
    extract::{ConnectInfo, ws::Message},
    response::Response,
    routing::{any, get},
};
use wsdrain::{DrainLayer, GracefulUpgrade};

struct Args {
    listen: SocketAddr,
    read_buffer: Option<usize>,
    plain: bool,
    unix: Option<PathBuf>,
    connect_info: bool,
    warm_up: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        listen: SocketAddr::from(([127, 0, 0, 1], 3000)),
        read_buffer: None,
        plain: false,
        unix: None,
        connect_info: false,
        warm_up: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match flag.as_str() {
            "--listen" => {
                let v = value("--listen")?;
                args.listen = v
                    .parse()
                    .map_err(|_| format!("--listen: bad address {v:?}"))?;
            }
            "--read-buffer" => {
                let v = value("--read-buffer")?;
                args.read_buffer = Some(
                    v.parse()
                        .map_err(|_| format!("--read-buffer: bad size {v:?}"))?,
                );
            }
            "--plain" => args.plain = true,
            "--unix" => args.unix = Some(value("--unix")?.into()),
            "--connect-info" => args.connect_info = true,
            "--warm-up" => args.warm_up = true,
            "-h" | "--help" => {
                println!(
                    "usage: echo [--listen ADDR | --unix PATH] [--read-buffer BYTES] [--plain] [--connect-info] [--warm-up]   (policy from WSDRAIN_*)"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if args.unix.is_some() && (args.connect_info || args.plain) {
        return Err("--unix goes with neither --connect-info nor --plain".into());
    }
    Ok(args)
}

/// The baseline: plain axum, as users write it today.
fn plain(args: Args) -> ExitCode {
    use axum::extract::ws::{WebSocket, WebSocketUpgrade};
    async fn echo(mut socket: WebSocket) {
        while let Some(Ok(msg)) = socket.recv().await {
            if matches!(msg, Message::Text(_) | Message::Binary(_))
                && socket.send(msg).await.is_err()
            {
                break;
            }
        }
    }
    let read_buffer = args.read_buffer;
    let app = Router::new().route(
        "/ws",
        get(move |upgrade: WebSocketUpgrade| async move {
            let upgrade = match read_buffer {
                Some(n) => upgrade.read_buffer_size(n),
                None => upgrade,
            };
            upgrade.on_upgrade(echo)
        }),
    );
    support::serve_plain("echo", args.listen, app)
}

fn main() -> ExitCode {
    support::init_logs();
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("echo: {e}");
            return ExitCode::from(2);
        }
    };
    if args.plain {
        return plain(args);
    }
    // The opt-in admin endpoint (`WSDRAIN_ADMIN_TOKEN`): off by default.
    let admin = wsdrain::axum::AdminConfig::from_env()
        .map_err(|e| eprintln!("echo: bad configuration: {e}"));
    // Policy, signals (while this is the only thread), then the runtime;
    // every bad setting is reported, the admin endpoint's and the policy's.
    let (
        admin,
        support::Started {
            controller,
            signals: _signals,
            runtime,
        },
    ) = match (admin, support::start("echo")) {
        (Ok(admin), Ok(started)) => (admin, started),
        (_, Err(code)) => return code,
        (Err(()), Ok(_)) => return ExitCode::from(2),
    };
    runtime.block_on(async {
        let read_buffer = args.read_buffer;
        let mut layer = DrainLayer::new(controller.drain());
        if args.warm_up {
            // Installed before `listening on`: a SIGUSR1 sent after it is kept.
            let mut usr1 =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())
                {
                    Ok(s) => s,
                    Err(e) => {
                        eprintln!("echo: cannot install the SIGUSR1 handler: {e}");
                        return ExitCode::FAILURE;
                    }
                };
            let warm = Arc::new(AtomicBool::new(false));
            let w = warm.clone();
            tokio::spawn(async move {
                if usr1.recv().await.is_some() {
                    w.store(true, Ordering::Release);
                }
            });
            layer = layer.readiness(move || warm.load(Ordering::Acquire));
        }
        let mut app = Router::new().route(
            "/ws",
            any(move |upgrade: GracefulUpgrade| async move {
                let upgrade = match read_buffer {
                    Some(n) => upgrade.read_buffer_size(n),
                    None => upgrade,
                };
                let response: Response = upgrade.on_upgrade(support::echo);
                response
            }),
        );
        if args.connect_info {
            app = app.route(
                "/peer",
                get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.to_string() }),
            );
        }
        let app = app.layer(layer);
        if let Some(path) = &args.unix {
            let listener = match tokio::net::UnixListener::bind(path) {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("echo: cannot listen on {}: {e}", path.display());
                    return ExitCode::FAILURE;
                }
            };
            support::announce(format_args!("unix:{}", path.display()), &controller);
            let served = wsdrain::serve(listener, app, &controller).await;
            let _ = std::fs::remove_file(path);
            return support::finish("echo", served);
        }
        let listener = match support::bind("echo", args.listen).await {
            Ok(l) => l,
            Err(code) => return code,
        };
        support::announce(listener.local_addr().unwrap_or(args.listen), &controller);
        if let Some(admin) = admin {
            let trigger = controller.trigger();
            tokio::spawn(async move {
                if let Err(e) = admin.serve(trigger).await {
                    eprintln!("echo: admin endpoint on {}: {e}", admin.listen);
                }
            });
        }
        if args.connect_info {
            let app = app.into_make_service_with_connect_info::<SocketAddr>();
            support::finish("echo", wsdrain::serve(listener, app, &controller).await)
        } else {
            support::finish("echo", wsdrain::serve(listener, app, &controller).await)
        }
    })
}
