//! What every example server does first, in this order: logs on stderr, the
//! policy from `WSDRAIN_*` (a bad value exits with code 2, naming it), the
//! signal handlers while this is the only thread (so no SIGTERM is lost), and
//! only then the runtime.

use std::{net::SocketAddr, process::ExitCode};

use axum::{Router, routing::get};
use wsdrain::{DrainController, DrainPolicy, SignalListener};

/// A started example: the controller, its signal handlers, the runtime.
pub(crate) struct Started {
    pub(crate) controller: DrainController,
    pub(crate) signals: SignalListener,
    pub(crate) runtime: tokio::runtime::Runtime,
}

/// Logs at `info` on stderr unless `RUST_LOG` says otherwise.
pub(crate) fn init_logs() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
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
        let listener = match tokio::net::TcpListener::bind(listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("{name}: cannot listen on {listen}: {e}");
                return ExitCode::FAILURE;
            }
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
