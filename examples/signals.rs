//! What a process does with SIGTERM and SIGINT around `listen_for_signals`:
//! the small process the signal tests start (tests/signals.rs, tests/faults.rs).
//!
//! Run with
//!
//! ```sh
//! cargo run --example signals -- drop       # then Ctrl-C: it ends at once
//! cargo run --example signals -- start-up   # then Ctrl-C: it drains, exit 0
//! ```
//!
//! Modes:
//!
//! * `none`: never listens. Prints `ready`, then waits for stdin to close.
//! * `drop`: listens, drops the listener, prints `ready`, then waits for stdin
//!   to close. A signal now ends it exactly as it ends `none`.
//! * `start-up [--hold]`: listens first thing in `main` (before any other
//!   thread exists), prints `listening for signals`; with `--hold` it then
//!   waits for a line on stdin, so a test can signal it while its start-up is
//!   held there. Then it builds the runtime, serves on `127.0.0.1:0` and
//!   prints `drained: <report>` after the drain (exit 0). A signal that never
//!   reaches the drain ends it with code 3 after 10 s.

use std::{
    io::{BufRead, Read},
    process::ExitCode,
    time::Duration,
};

use axum::{Router, routing::get};
use wsdrain::{DrainController, DrainLayer, DrainPolicy};

/// Blocks until stdin closes (the test's end), or a signal ends the process.
fn wait_for_stdin_to_close() -> ExitCode {
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    println!("stdin closed");
    ExitCode::SUCCESS
}

fn start_up(hold: bool) -> ExitCode {
    let policy = match DrainPolicy::builder().kubernetes(false).build() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("signals: {e}");
            return ExitCode::from(2);
        }
    };
    let controller = DrainController::new(policy);
    let _signals = match controller.listen_for_signals() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("signals: cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("listening for signals");
    if hold {
        let _ = std::io::stdin().lock().read_line(&mut String::new());
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("signals: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let app = Router::new()
            .route("/", get(|| async { "ok" }))
            .layer(DrainLayer::new(controller.drain()));
        let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("signals: cannot listen: {e}");
                return ExitCode::FAILURE;
            }
        };
        let served = wsdrain::serve(listener, app, &controller);
        match tokio::time::timeout(Duration::from_secs(10), served).await {
            Ok(Ok(report)) => {
                println!("drained: {report}");
                ExitCode::SUCCESS
            }
            Ok(Err(e)) => {
                eprintln!("signals: server error: {e}");
                ExitCode::FAILURE
            }
            Err(_) => {
                eprintln!("signals: no drain within 10 s: the signal was lost");
                ExitCode::from(3)
            }
        }
    })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["none"] => {
            println!("ready");
            wait_for_stdin_to_close()
        }
        ["drop"] => {
            let controller = DrainController::new(DrainPolicy::default());
            match controller.listen_for_signals() {
                Ok(listener) => drop(listener),
                Err(e) => {
                    eprintln!("signals: cannot install signal handlers: {e}");
                    return ExitCode::FAILURE;
                }
            }
            println!("ready");
            wait_for_stdin_to_close()
        }
        ["start-up"] => start_up(false),
        ["start-up", "--hold"] => start_up(true),
        _ => {
            eprintln!("usage: signals none | drop | start-up [--hold]");
            ExitCode::from(2)
        }
    }
}
