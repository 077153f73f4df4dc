//! An ordered server-push feed whose sessions resume (`wsdrain.resume.v1`):
//! a client that reconnects (after a drain, a dropped connection, a proxy
//! that cut it) is replayed what it missed, then goes on live, with no
//! message missed and none delivered twice; when the log cannot fill the
//! gap it is told to resync.
//!
//! Run with
//!
//! ```sh
//! cargo run --example feed -- --listen 127.0.0.1:3000
//! ```
//!
//! and connect with a client that offers the subprotocol, for example
//! Python `websockets` (the rules are in docs/PROTOCOL.md, "Resumable
//! sessions"):
//!
//! ```sh
//! python3 -c 'import asyncio, websockets
//! async def main():
//!     async with websockets.connect("ws://127.0.0.1:3000/feed?token=alice-secret",
//!                                   subprotocols=["wsdrain.resume.v1"]) as ws:
//!         async for frame in ws: print(frame)
//! asyncio.run(main())'
//! ```
//!
//! The policy comes from `WSDRAIN_*` variables (e.g. `WSDRAIN_DRAIN_DELAY=1s`,
//! `WSDRAIN_NOTICE_LEAD=1s` for the make-before-break notice). It prints
//! `listening on <addr>`, and the drain report on exit (code 0). A bad
//! setting prints one line naming it and exits with code 2.
//!
//! What it serves:
//!
//! * stream `ticker`: `{"n":N}`, message `N` due at `N × 1/rate` since the
//!   Unix epoch, so every publisher on one machine publishes the same
//!   payloads at the same moments; readable by anyone;
//! * streams `user/<name>`: every 10th tick, `{"for":"<name>","n":N}`;
//!   readable only with that user's token;
//! * `GET /feed?token=T&streams=S1,S2`: the WebSocket. Without `streams` it
//!   follows `ticker`, plus `user/<name>` with a token. Every stream named
//!   in `streams` **or in the resume point** must be readable with the
//!   token, else `403` (a resume point grants nothing); an unknown token is
//!   `401`; a resume point that cannot be read is `400`.
//!
//! The log is the in-memory one: it serves reconnects to the same process
//! (its history dies with it: after a restart clients get `resync`).
//!
//! With `--redis URL` (feature `redis`) the log is in Redis, shared by every
//! replica given the same URL: a client resumes on any of them, and what
//! any of them (or a `--publisher`) publishes reaches every replica's
//! clients. Start Redis without persistence, then the replicas and one
//! publisher, each its own process (so replicas can be rolled under it):
//!
//! ```sh
//! redis-server --port 6390 --save '' --appendonly no
//! cargo run --example feed --features redis -- --redis redis://127.0.0.1:6390 --no-publish --listen 127.0.0.1:3001
//! cargo run --example feed --features redis -- --redis redis://127.0.0.1:6390 --no-publish --listen 127.0.0.1:3002
//! cargo run --example feed --features redis -- --redis redis://127.0.0.1:6390 --publisher
//! ```
//!
//! If Redis goes away, live messages go on where they are published (and
//! clients are told to `resync` with `unavailable`); each replica reconnects
//! by itself.
//!
//! Flags: `--listen ADDR` (default `127.0.0.1:3000`), `--rate N` messages/s
//! of the ticker (default 20), `--history N` messages kept per stream
//! (default 1,000), `--user NAME:TOKEN` (repeatable; default
//! `alice:alice-secret` and `bob:bob-secret`), `--no-publish` (serve only:
//! a replica fed by a publisher elsewhere, through a shared log), `--redis
//! URL` (the Redis log), `--publisher` (with `--redis`: publish only, no
//! server; prints `publishing`, stops at SIGTERM).

#[path = "support/mod.rs"]
mod support;

use std::{collections::HashMap, net::SocketAddr, process::ExitCode, sync::Arc, time::Duration};

use axum::{
    Router,
    extract::{RawQuery, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use wsdrain::{
    DrainController, DrainLayer, ResumableSocket, ResumableUpgrade,
    resume::{Feed, Log, MemoryLog},
};

/// The stream everyone may read.
const TICKER: &str = "ticker";
/// Every this many ticks, each user gets a message on `user/<name>`.
const USER_EVERY: u64 = 10;

struct Args {
    listen: SocketAddr,
    rate: u64,
    history: usize,
    users: Vec<(String, String)>,
    publish: bool,
    redis: Option<String>,
    publisher: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        listen: SocketAddr::from(([127, 0, 0, 1], 3000)),
        rate: 20,
        history: 1_000,
        users: Vec::new(),
        publish: true,
        redis: None,
        publisher: false,
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
            "--rate" => {
                let v = value("--rate")?;
                args.rate = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=10_000).contains(n))
                    .ok_or(format!("--rate: {v:?} is not 1..=10000 messages/s"))?;
            }
            "--history" => {
                let v = value("--history")?;
                args.history = v
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or(format!("--history: {v:?} is not a positive count"))?;
            }
            "--user" => {
                let v = value("--user")?;
                let (name, token) = v
                    .split_once(':')
                    .filter(|(n, t)| {
                        !n.is_empty()
                            && !t.is_empty()
                            && wsdrain::protocol::resume::check_stream(&format!("user/{n}")).is_ok()
                    })
                    .ok_or(format!("--user: {v:?} is not NAME:TOKEN"))?;
                args.users.push((name.to_owned(), token.to_owned()));
            }
            "--no-publish" => args.publish = false,
            "--redis" => args.redis = Some(value("--redis")?),
            "--publisher" => args.publisher = true,
            "-h" | "--help" => {
                println!(
                    "usage: feed [--listen ADDR] [--rate N] [--history N] [--user NAME:TOKEN]... \
                     [--no-publish] [--redis URL [--publisher]]   (policy from WSDRAIN_*)"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if args.publisher && (args.redis.is_none() || !args.publish) {
        return Err("--publisher needs --redis URL (and publishing)".into());
    }
    if args.users.is_empty() {
        args.users = [("alice", "alice-secret"), ("bob", "bob-secret")]
            .map(|(n, t)| (n.to_owned(), t.to_owned()))
            .into();
    }
    Ok(args)
}

// ---- who may read what --------------------------------------------------------

/// Users by token.
#[derive(Clone)]
struct Users(Arc<HashMap<String, String>>);

impl Users {
    fn new(users: &[(String, String)]) -> Users {
        Users(Arc::new(
            users
                .iter()
                .map(|(name, token)| (token.clone(), name.clone()))
                .collect(),
        ))
    }

    fn names(&self) -> impl Iterator<Item = &str> {
        self.0.values().map(String::as_str)
    }

    fn by_token(&self, token: &str) -> Option<&str> {
        self.0.get(token).map(String::as_str)
    }
}

fn may_read(user: Option<&str>, stream: &str) -> bool {
    stream == TICKER || user.is_some_and(|u| stream.strip_prefix("user/") == Some(u))
}

// ---- publishing -----------------------------------------------------------------

fn since_unix_epoch() -> Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
}

/// Publishes tick `N` when it is due, forever: every publisher on one
/// machine publishes the same `N` at the same moment.
async fn publish<L: Log>(feed: Feed<L>, rate: u64, users: Users) {
    let period_ns = 1_000_000_000 / rate;
    let now_ns = || u64::try_from(since_unix_epoch().as_nanos()).unwrap_or(u64::MAX);
    let mut n = now_ns() / period_ns + 1;
    loop {
        let at = Duration::from_nanos(period_ns.saturating_mul(n));
        if let Some(wait) = at.checked_sub(since_unix_epoch()) {
            tokio::time::sleep(wait).await;
        }
        if let Err(e) = feed.publish(TICKER, format!("{{\"n\":{n}}}")).await {
            tracing::error!("feed: {e}");
        }
        if n % USER_EVERY == 0 {
            for name in users.names() {
                let stream = format!("user/{name}");
                let payload = format!("{{\"for\":\"{name}\",\"n\":{n}}}");
                if let Err(e) = feed.publish(&stream, payload).await {
                    tracing::error!("feed: {e}");
                }
            }
        }
        n += 1;
    }
}

// ---- serving --------------------------------------------------------------------

struct App<L> {
    feed: Feed<L>,
    users: Users,
}

impl<L> Clone for App<L> {
    fn clone(&self) -> Self {
        App {
            feed: self.feed.clone(),
            users: self.users.clone(),
        }
    }
}

/// `%XX` decoded (`+` stays): enough for tokens and stream names.
fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn query_param(query: Option<&str>, key: &str) -> Option<String> {
    query?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| decode(k) == key)
        .map(|(_, v)| decode(v))
}

async fn feed_ws<L: Log>(
    upgrade: ResumableUpgrade,
    RawQuery(query): RawQuery,
    State(app): State<App<L>>,
) -> Response {
    let user = match query_param(query.as_deref(), "token") {
        None => None,
        Some(token) => match app.users.by_token(&token) {
            Some(name) => Some(name.to_owned()),
            None => return (StatusCode::UNAUTHORIZED, "unknown token\n").into_response(),
        },
    };
    let streams: Vec<String> = match query_param(query.as_deref(), "streams") {
        Some(list) => list.split(',').map(str::to_owned).collect(),
        None => std::iter::once(TICKER.to_owned())
            .chain(user.iter().map(|u| format!("user/{u}")))
            .collect(),
    };
    // The resume point grants nothing: every stream it names is checked
    // like the ones asked for.
    let named = streams.iter().map(String::as_str);
    if let Some(denied) = named
        .chain(upgrade.point().streams())
        .find(|s| !may_read(user.as_deref(), s))
    {
        let who = user.as_deref().unwrap_or("anonymous");
        return (
            StatusCode::FORBIDDEN,
            format!("{who} may not read {denied:?}\n"),
        )
            .into_response();
    }
    upgrade.on_upgrade(app.feed, move |mut socket: ResumableSocket<L>| async move {
        for stream in &streams {
            if let Err(e) = socket.follow(stream).await {
                tracing::debug!("feed: {e}");
                return;
            }
        }
        socket.run().await;
    })
}

fn router<L: Log>(app: App<L>) -> Router {
    Router::new()
        .route("/feed", get(feed_ws::<L>))
        .with_state(app)
}

/// Serves `feed` (and publishes to it unless `--no-publish`) until the
/// drain is over.
async fn serve<L: Log>(args: &Args, feed: Feed<L>, controller: &DrainController) -> ExitCode {
    let users = Users::new(&args.users);
    let app = router(App {
        feed: feed.clone(),
        users: users.clone(),
    })
    .layer(DrainLayer::new(controller.drain()));
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("feed: cannot listen on {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    println!(
        "listening on {}",
        listener.local_addr().unwrap_or(args.listen)
    );
    let publishing = async {
        if args.publish {
            publish(feed, args.rate, users).await;
        }
        std::future::pending::<()>().await;
    };
    let served = tokio::select! {
        served = wsdrain::serve(listener, app, controller) => served,
        () = publishing => unreachable!("publishing never ends"),
    };
    match served {
        Ok(report) => {
            println!("drained: {report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("feed: server error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    support::init_logs();
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("feed: {e}");
            return ExitCode::from(2);
        }
    };
    // Policy, signals (while this is the only thread), then the runtime.
    let support::Started {
        controller,
        signals: _signals,
        runtime,
    } = match support::start("feed") {
        Ok(s) => s,
        Err(code) => return code,
    };
    if let Some(url) = &args.redis {
        return redis::run(&args, url, &controller, &runtime);
    }
    let log = match MemoryLog::builder().max_entries(args.history).build() {
        Ok(log) => log,
        Err(e) => {
            eprintln!("feed: bad configuration: {e}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(serve(&args, Feed::new(log), &controller))
}

// ---- Redis (a fleet) ------------------------------------------------------------

#[cfg(feature = "redis")]
mod redis {
    use super::*;
    use wsdrain::redis::RedisLog;

    /// Serves, or with `--publisher` only publishes, on the Redis log.
    pub(crate) fn run(
        args: &Args,
        url: &str,
        controller: &DrainController,
        runtime: &tokio::runtime::Runtime,
    ) -> ExitCode {
        let built = {
            let _in_runtime = runtime.enter();
            RedisLog::builder(url).max_len(args.history as u64).build()
        };
        let feed = match built {
            Ok(log) => Feed::new(log),
            Err(e) => {
                eprintln!("feed: bad configuration: {e}");
                return ExitCode::from(2);
            }
        };
        if !args.publisher {
            return runtime.block_on(serve(args, feed, controller));
        }
        runtime.block_on(async {
            println!("publishing");
            let users = Users::new(&args.users);
            tokio::select! {
                () = publish(feed, args.rate, users) => {}
                () = controller.drain().draining() => {}
            }
            ExitCode::SUCCESS
        })
    }
}

#[cfg(not(feature = "redis"))]
mod redis {
    use super::*;

    pub(crate) fn run(
        _: &Args,
        _: &str,
        _: &DrainController,
        _: &tokio::runtime::Runtime,
    ) -> ExitCode {
        eprintln!("feed: --redis needs the `redis` feature (cargo run --features redis)");
        ExitCode::from(2)
    }
}
