//! What every example server does first, in this order: logs on stderr, the
//! policy from `WSDRAIN_*` (a bad value exits with code 2, naming it), the
//! signal handlers while this is the only thread (so no SIGTERM is lost), and
//! only then the runtime.

use std::{io, net::SocketAddr, process::ExitCode};

use axum::{Router, extract::ws::Message, routing::get};
use tokio::net::TcpListener;
use tracing_subscriber::{filter::Targets, layer::SubscriberExt, util::SubscriberInitExt};
use wsdrain::{DrainController, DrainPolicy, DrainReport, GracefulSocket, SignalListener};

/// A started example: the controller, its signal handlers, the runtime.
pub(crate) struct Started {
    pub(crate) controller: DrainController,
    pub(crate) signals: SignalListener,
    pub(crate) runtime: tokio::runtime::Runtime,
}

/// Logs at `info` on stderr unless `RUST_LOG` says otherwise (`warn`,
/// `wsdrain=debug,info`: a level per target).
pub(crate) fn init_logs() {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| v.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO));
    let stderr = std::io::stderr;
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&stderr())),
        )
        .with(filter)
        .init();
}

/// The echo every example server answers `/ws` with: text and binary
/// messages back, until the drain's close (or the peer's).
#[allow(dead_code, reason = "the examples without a /ws echo")]
pub(crate) async fn echo(mut socket: GracefulSocket) {
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

/// The policy, the signal handlers and the runtime; on failure the message
/// (prefixed with `name`) is printed and the exit code returned.
pub(crate) fn start(name: &str) -> Result<Started, ExitCode> {
    let policy = DrainPolicy::from_env().map_err(|e| {
        eprintln!("{name}: bad configuration: {e}");
        ExitCode::from(2)
    })?;
    let controller = DrainController::new(policy);
    let signals = controller.listen_for_signals().map_err(|e| {
        eprintln!("{name}: cannot install signal handlers: {e}");
        ExitCode::FAILURE
    })?;
    let runtime = tokio::runtime::Runtime::new().map_err(|e| {
        eprintln!("{name}: cannot start the runtime: {e}");
        ExitCode::FAILURE
    })?;
    Ok(Started {
        controller,
        signals,
        runtime,
    })
}

/// `--listen ADDR` (default `127.0.0.1:3000`) and `--help`, for the examples
/// that take no other flag; `usage` is the help line.
#[allow(
    dead_code,
    reason = "only the examples without flags of their own call it"
)]
pub(crate) fn listen_arg(usage: &str) -> Result<SocketAddr, String> {
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
                println!("{usage}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(listen)
}

/// The TCP listener on `listen`; on failure the message is printed and the
/// exit code returned.
pub(crate) async fn bind(name: &str, listen: SocketAddr) -> Result<TcpListener, ExitCode> {
    TcpListener::bind(listen).await.map_err(|e| {
        eprintln!("{name}: cannot listen on {listen}: {e}");
        ExitCode::FAILURE
    })
}

/// The start-up lines: `listening on ADDR` first (tests and the rollout
/// simulator read it), then the policy and what SIGTERM will do.
#[allow(
    dead_code,
    reason = "shapes, whose tungstenite stack has no /readyz, prints its address only"
)]
pub(crate) fn announce(addr: impl std::fmt::Display, controller: &DrainController) {
    println!("listening on {addr}");
    println!("policy: {:#}", controller.policy());
}

/// Prints the drain report (exit 0) or the server's error (exit 1).
#[allow(dead_code, reason = "the examples with their own accept loop")]
pub(crate) fn finish(name: &str, served: io::Result<DrainReport>) -> ExitCode {
    match served {
        Ok(report) => {
            println!("drained: {report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{name}: server error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The baseline the examples compare against with `--plain`: `app` on plain
/// `axum::serve(..).with_graceful_shutdown(SIGTERM or Ctrl-C)`, no wsdrain,
/// `/readyz` and `/livez` always 200. Prints `listening on ADDR` like the
/// drained servers.
#[allow(
    dead_code,
    reason = "only the examples with a --plain baseline call it"
)]
pub(crate) fn serve_plain(name: &str, listen: SocketAddr, app: Router) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{name}: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let app = app
            .route("/readyz", get(|| async { "ok" }))
            .route("/livez", get(|| async { "ok" }));
        let listener = match bind(name, listen).await {
            Ok(l) => l,
            Err(code) => return code,
        };
        println!("listening on {}", listener.local_addr().unwrap_or(listen));
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
                eprintln!("{name}: server error: {e}");
                ExitCode::FAILURE
            }
        }
    })
}
