//! A Server-Sent Events feed drained on SIGTERM/SIGINT: a plain axum `Sse`
//! route behind `DrainLayer`, with no handler change. At its turn each stream
//! ends after a last `retry: <hint in ms>` block; the feed resumes from
//! `Last-Event-ID`, so an `EventSource` that reconnects loses nothing.
//!
//! Run with
//!
//! ```sh
//! cargo run --example sse -- --listen 127.0.0.1:3000
//! curl -N http://127.0.0.1:3000/events
//! ```
//!
//! The policy comes from `WSDRAIN_*` variables (e.g. `WSDRAIN_DRAIN_DELAY=1s`).
//! It prints `listening on <addr>`, and the drain report on exit (code 0). A
//! bad setting prints one line naming it and exits with code 2.
//!
//! Routes:
//!
//! * `GET /events`: event `n` (id `n`, data `n`) is due at `n × interval`
//!   since the Unix epoch, so every replica on one machine serves the same
//!   feed. With `Last-Event-ID: k` it replays from `k + 1`, else it starts
//!   with the next event. Before the `retry:` block, a drained stream gets
//!   `event: drain` with `data: <hint in ms>` (the farewell hook).
//! * `GET /ndjson`: one JSON line per interval, `{"n":<n>}`, each line in two
//!   frames half an interval apart, opted in as a stream session by the
//!   layer's predicate: at its turn it ends at a line boundary, never mid-line.
//! * `GET /page`: a page whose native `EventSource` shows the feed (used by
//!   the browser test).
//!
//! Flags: `--listen ADDR` (default `127.0.0.1:3000`), `--interval MS` (default
//! 500), `--plain`: the baseline, plain axum (`axum::serve(..)
//! .with_graceful_shutdown(SIGTERM)`, no wsdrain; `/readyz` always 200),
//! where open streams hold the shutdown until the process is killed.

#[path = "support/mod.rs"]
mod support;

use std::{
    convert::Infallible,
    net::SocketAddr,
    process::ExitCode,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::{
    Router,
    body::{Body, Bytes},
    http::{HeaderMap, header},
    response::{
        Html, IntoResponse,
        sse::{Event, Sse},
    },
    routing::get,
};
use futures_util::stream::{self, Stream};
use wsdrain::{CloseHint, DrainLayer};

struct Args {
    listen: SocketAddr,
    interval: Duration,
    plain: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        listen: SocketAddr::from(([127, 0, 0, 1], 3000)),
        interval: Duration::from_millis(500),
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
            "--interval" => {
                let v = value("--interval")?;
                let ms: u64 = v
                    .parse()
                    .ok()
                    .filter(|ms| *ms > 0)
                    .ok_or(format!("--interval: bad milliseconds {v:?}"))?;
                args.interval = Duration::from_millis(ms);
            }
            "--plain" => args.plain = true,
            "-h" | "--help" => {
                println!(
                    "usage: sse [--listen ADDR] [--interval MS] [--plain]   (policy from WSDRAIN_*)"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(args)
}

fn since_epoch() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// The id of the last event due now.
fn current(interval: Duration) -> u64 {
    (since_epoch().as_millis() / interval.as_millis()) as u64
}

/// Waits until event `n` is due.
async fn due(n: u64, interval: Duration) {
    let at = Duration::from_millis(n.saturating_mul(interval.as_millis() as u64));
    if let Some(wait) = at.checked_sub(since_epoch()) {
        tokio::time::sleep(wait).await;
    }
}

/// The first id to send: after `Last-Event-ID`, or the next one due.
fn first_id(headers: &HeaderMap, interval: Duration) -> u64 {
    headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or_else(|| current(interval) + 1, |last| last + 1)
}

fn feed(from: u64, interval: Duration) -> impl Stream<Item = Result<Event, Infallible>> {
    stream::unfold(from, move |n| async move {
        due(n, interval).await;
        let event = Event::default().id(n.to_string()).data(n.to_string());
        Some((Ok(event), n + 1))
    })
}

fn ndjson(from: u64, interval: Duration) -> Body {
    // Each line in two frames, half an interval apart: a turn that comes
    // between them must wait for the end of the line.
    let frames = stream::unfold((from, false), move |(n, second)| async move {
        if second {
            tokio::time::sleep(interval / 2).await;
            let line = Bytes::from(format!("{n}}}\n"));
            Some((Ok::<_, Infallible>(line), (n + 1, false)))
        } else {
            due(n, interval).await;
            Some((Ok(Bytes::from_static(b"{\"n\":")), (n, true)))
        }
    });
    Body::from_stream(frames)
}

const PAGE: &str = r#"<!doctype html>
<meta charset="utf-8">
<title>wsdrain SSE</title>
<pre id="log"></pre>
<script>
  // What the browser test reads: every event id seen, every (re)open time.
  window.seen = [];
  window.opens = [];
  window.errors = [];
  window.hints = [];
  const es = new EventSource("/events");
  es.onopen = () => window.opens.push(performance.now());
  es.onerror = () => window.errors.push(performance.now());
  es.onmessage = (e) => {
    window.seen.push(Number(e.lastEventId));
    document.getElementById("log").textContent = window.seen.slice(-20).join(" ");
  };
  es.addEventListener("drain", (e) => window.hints.push(Number(e.data)));
</script>
"#;

fn router(interval: Duration) -> Router {
    Router::new()
        .route(
            "/events",
            get(move |headers: HeaderMap| async move {
                Sse::new(feed(first_id(&headers, interval), interval))
            }),
        )
        .route(
            "/ndjson",
            get(move |headers: HeaderMap| async move {
                (
                    [(header::CONTENT_TYPE, "application/x-ndjson")],
                    ndjson(first_id(&headers, interval), interval),
                )
                    .into_response()
            }),
        )
        .route("/page", get(|| async { Html(PAGE) }))
}

/// The baseline: plain axum, as users write it today.
fn plain(args: Args) -> ExitCode {
    let app = router(args.interval);
    support::serve_plain("sse", args.listen, app)
}

fn main() -> ExitCode {
    support::init_logs();
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("sse: {e}");
            return ExitCode::from(2);
        }
    };
    if args.plain {
        return plain(args);
    }
    // Policy, signals (while this is the only thread), then the runtime.
    let support::Started {
        controller,
        signals: _signals,
        runtime,
    } = match support::start("sse") {
        Ok(s) => s,
        Err(code) => return code,
    };
    runtime.block_on(async {
        let layer = DrainLayer::new(controller.drain())
            .streams(|parts: &axum::http::response::Parts| {
                parts
                    .headers
                    .get(header::CONTENT_TYPE)
                    .is_some_and(|v| v == "application/x-ndjson")
            })
            .sse_farewell(|hint: CloseHint| {
                Some(Bytes::from(format!(
                    "event: drain\ndata: {}\n\n",
                    hint.retry_after_ms()
                )))
            });
        let app = router(args.interval).layer(layer);
        let listener = match support::bind("sse", args.listen).await {
            Ok(l) => l,
            Err(code) => return code,
        };
        support::announce(listener.local_addr().unwrap_or(args.listen), &controller);
        support::finish("sse", wsdrain::serve(listener, app, &controller).await)
    })
}
