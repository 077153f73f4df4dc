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

#[path = "../support/mod.rs"]
mod support;

use std::{
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
use wsdrain::{DrainLayer, GracefulSocket, GracefulUpgrade};

const INDEX: &str = include_str!("index.html");
// The browser client lives with the other clients; the page imports it from here.
const MODULE: &str = include_str!("../../clients/js/wsdrain.js");

/// Longest chat line accepted, in bytes; longer ones are cut.
const MAX_LINE: usize = 2000;

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
    support::init_logs();
    let listen = match support::listen_arg("usage: chat [--listen ADDR]   (policy from WSDRAIN_*)")
    {
        Ok(a) => a,
        Err(e) => {
            eprintln!("chat: {e}");
            return ExitCode::from(2);
        }
    };
    // Policy, signals (while this is the only thread), then the runtime.
    let support::Started {
        controller,
        signals: _signals,
        runtime,
    } = match support::start("chat") {
        Ok(s) => s,
        Err(code) => return code,
    };
    // One room for the life of the process.
    let room: &'static Room = Box::leak(Box::new(Room {
        lines: broadcast::channel(256).0,
        guests: AtomicU64::new(0),
    }));
    runtime.block_on(async {
        let app = app(room).layer(DrainLayer::new(controller.drain()));
        let listener = match support::bind("chat", listen).await {
            Ok(l) => l,
            Err(code) => return code,
        };
        let addr = listener.local_addr().unwrap_or(listen);
        support::announce(addr, &controller);
        println!("open http://{addr}/ in a few tabs");
        support::finish("chat", wsdrain::serve(listener, app, &controller).await)
    })
}
