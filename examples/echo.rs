//! The verification server: a WebSocket echo on `GracefulSocket`, with
//! `/readyz` and `/livez`, drained on SIGTERM/SIGINT.
//!
//! Run with
//!
//! ```sh
//! cargo run --example echo -- --listen 127.0.0.1:3000
//! ```
//!
//! The policy comes from `WSDRAIN_*` variables (e.g. `WSDRAIN_DRAIN_DELAY=1s`).
//! It prints `listening on <addr>`, and the drain report on exit (code 0). A
//! bad setting prints one line naming it and exits with code 2.
//!
//! With `WSDRAIN_ADMIN_TOKEN` set it also serves the admin endpoint
//! (`POST /drain` with `Authorization: Bearer <token>`) on
//! `WSDRAIN_ADMIN_LISTEN` (default `127.0.0.1:9901`).
//!
//! Flags: `--listen ADDR` (default `127.0.0.1:3000`), `--read-buffer BYTES`
//! (tungstenite's read buffer per session, default 128 KiB), `--plain`: the
//! baseline, what axum gives today (axum's own `WebSocketUpgrade` and
//! `axum::serve(..).with_graceful_shutdown(SIGTERM)`, no wsdrain; `/readyz`
//! is always 200), for side-by-side comparisons.

use std::{net::SocketAddr, process::ExitCode};

use axum::{Router, extract::ws::Message, response::Response, routing::get};
use wsdrain::{DrainController, DrainLayer, DrainPolicy, GracefulSocket, GracefulUpgrade};

struct Args {
    listen: SocketAddr,
    read_buffer: Option<usize>,
    plain: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        listen: SocketAddr::from(([127, 0, 0, 1], 3000)),
        read_buffer: None,
        plain: false,
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
            "-h" | "--help" => {
                println!(
                    "usage: echo [--listen ADDR] [--read-buffer BYTES] [--plain]   (policy from WSDRAIN_*)"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(args)
}

async fn echo(mut socket: GracefulSocket) {
    while let Some(msg) = socket.recv().await {
        match msg {
            Ok(msg @ (Message::Text(_) | Message::Binary(_))) => {
                if socket.send(msg).await.is_err() {
                    break;
                }
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
}

/// The baseline: plain axum, as users write it today.
async fn plain(args: Args) -> ExitCode {
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
    let app = Router::new()
        .route(
            "/ws",
            get(move |upgrade: WebSocketUpgrade| async move {
                let upgrade = match read_buffer {
                    Some(n) => upgrade.read_buffer_size(n),
                    None => upgrade,
                };
                upgrade.on_upgrade(echo)
            }),
        )
        .route("/readyz", get(|| async { "ok" }))
        .route("/livez", get(|| async { "ok" }));
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("echo: cannot listen on {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    println!(
        "listening on {}",
        listener.local_addr().unwrap_or(args.listen)
    );
    let shutdown = async {
        if let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
    };
    match axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
    {
        Ok(()) => {
            println!("plain: serve returned");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("echo: server error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("echo: {e}");
            return ExitCode::from(2);
        }
    };
    if args.plain {
        return match tokio::runtime::Runtime::new() {
            Ok(rt) => rt.block_on(plain(args)),
            Err(e) => {
                eprintln!("echo: cannot start the runtime: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let policy = match DrainPolicy::from_env() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("echo: bad configuration: {e}");
            return ExitCode::from(2);
        }
    };
    // The opt-in admin endpoint (`WSDRAIN_ADMIN_TOKEN`): off by default.
    let admin = match wsdrain::axum::AdminConfig::from_env() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("echo: bad configuration: {e}");
            return ExitCode::from(2);
        }
    };
    // Signals first, while this is the only thread: from here on no SIGTERM
    // is lost, even before the runtime or the listener exist.
    let controller = DrainController::new(policy);
    let _signals = match controller.listen_for_signals() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("echo: cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("echo: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let read_buffer = args.read_buffer;
        let app = Router::new()
            .route(
                "/ws",
                get(move |upgrade: GracefulUpgrade| async move {
                    let upgrade = match read_buffer {
                        Some(n) => upgrade.read_buffer_size(n),
                        None => upgrade,
                    };
                    let response: Response = upgrade.on_upgrade(echo);
                    response
                }),
            )
            .layer(DrainLayer::new(controller.drain()));
        let listener = match tokio::net::TcpListener::bind(args.listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("echo: cannot listen on {}: {e}", args.listen);
                return ExitCode::FAILURE;
            }
        };
        let addr = listener.local_addr().unwrap_or(args.listen);
        println!("listening on {addr}");
        if let Some(admin) = admin {
            let trigger = controller.trigger();
            tokio::spawn(async move {
                if let Err(e) = admin.serve(trigger).await {
                    eprintln!("echo: admin endpoint on {}: {e}", admin.listen);
                }
            });
        }
        match wsdrain::serve(listener, app, &controller).await {
            Ok(report) => {
                println!("drained: {report}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("echo: server error: {e}");
                ExitCode::FAILURE
            }
        }
    })
}
