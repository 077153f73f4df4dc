//! What every example server does first, in this order: logs on stderr, the
//! policy from `WSDRAIN_*` (a bad value exits with code 2, naming it), the
//! signal handlers while this is the only thread (so no SIGTERM is lost), and
//! only then the runtime.

use std::process::ExitCode;

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
