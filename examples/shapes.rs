//! The session shapes real applications write, on either stack, drained on
//! SIGTERM: the shape matrix of the end-to-end tests runs against this.
//!
//! Run with
//!
//! ```sh
//! cargo run --features tungstenite --example shapes -- --shape split-chat
//! cargo run --features tungstenite --example shapes -- --shape hub --stack tungstenite
//! ```
//!
//! Flags: `--listen ADDR` (default `127.0.0.1:3000`), `--stack axum|tungstenite`
//! (axum's `GracefulUpgrade` on `/ws`, or tokio-tungstenite's `accept` on every
//! connection), `--shape NAME`, one of:
//!
//! | shape | what the handler does |
//! |---|---|
//! | `owned-reader` | holds the socket, echoes what it reads (after a failed echo it reads on, to the end) |
//! | `owned-push` | holds the socket, never reads, pushes a tick every 200 ms |
//! | `split-chat` | axum's chat example: `split()`, a send task and a recv task spawned, `select!` on their handles |
//! | `push-spawned` | `split()`, drops the stream, pushes from a spawned task every 200 ms, awaits it |
//! | `push-sleepy` | the same, but the task sleeps 30 s between ticks (it cannot learn of its close in time) |
//! | `hub` | sinks kept in a shared map fed by one broadcaster; the handler only reads |
//! | `early-return` | spawns one task with both halves (echo) and returns at once |
//!
//! It prints `listening on ADDR`, then one line per observation, each
//! starting with the client's port (the session's name here):
//!
//! * `PORT session`: the handler started;
//! * `PORT recv ended; received N`: a reader saw its stream end after N data
//!   messages (`PORT recv failed: ERROR; received N` if it ended in an error);
//! * `PORT send failed: closing; sent N`: a writer's send failed with
//!   `Error::Closing` after N successful sends (`failed: ERROR` for any other
//!   error, `failed: timed out` for a hub send that took a whole tick);
//!
//! and at exit the drain report and `cleanups: N`: how many handlers ran the
//! code after their socket loop.

#[path = "support/mod.rs"]
mod support;

use std::{
    collections::HashMap,
    net::SocketAddr,
    process::ExitCode,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use futures_util::{Sink, SinkExt, Stream, StreamExt, stream::SplitSink};
use tokio::sync::broadcast;
use wsdrain::{DrainController, DrainLayer, GracefulSocket, GracefulUpgrade, ws};

/// What the shapes need of a stack's message type.
trait Msg: Send + Sync + 'static {
    fn text(s: &str) -> Self;
    fn is_data(&self) -> bool;
}

impl Msg for axum::extract::ws::Message {
    fn text(s: &str) -> Self {
        Self::Text(s.into())
    }
    fn is_data(&self) -> bool {
        matches!(self, Self::Text(_) | Self::Binary(_))
    }
}

impl Msg for tokio_tungstenite::tungstenite::Message {
    fn text(s: &str) -> Self {
        Self::Text(s.into())
    }
    fn is_data(&self) -> bool {
        self.is_text() || self.is_binary()
    }
}

/// A drained socket's error, as the shapes report it.
trait Failure: Send {
    /// `closing` for `Error::Closing`, else the error itself.
    fn describe(&self) -> String;
}

impl<E: std::fmt::Debug + Send> Failure for ws::Error<E> {
    fn describe(&self) -> String {
        if self.is_closing() {
            "closing".into()
        } else {
            format!("{self:?}")
        }
    }
}

/// A drained socket of either stack, as the shapes use it.
trait Socket<M: Msg>:
    Stream<Item = Result<M, Self::Err>> + Sink<M, Error = Self::Err> + Unpin + Send + 'static
{
    type Err: Failure;
}

impl<T, M: Msg, E: Failure> Socket<M> for T
where
    T: Stream<Item = Result<M, E>> + Sink<M, Error = E> + Unpin + Send + 'static,
{
    type Err = E;
}

/// Reports a reader's end: its stream ended (`None`) or failed.
fn recv_ended<E: Failure>(port: u16, end: Option<E>, received: usize) {
    match end {
        None => println!("{port} recv ended; received {received}"),
        Some(e) => println!("{port} recv failed: {}; received {received}", e.describe()),
    }
}

/// Reports a writer's first failed send.
fn send_failed<E: Failure>(port: u16, error: &E, sent: usize) {
    println!("{port} send failed: {}; sent {sent}", error.describe());
}

static CLEANUPS: AtomicUsize = AtomicUsize::new(0);

fn cleanup() {
    CLEANUPS.fetch_add(1, Ordering::SeqCst);
}

const TICK: Duration = Duration::from_millis(200);

/// Pushes a tick every `every` until a send fails, and says so.
async fn push<M: Msg, S: Sink<M, Error = E> + Unpin, E: Failure>(
    port: u16,
    sink: &mut S,
    every: Duration,
) {
    let mut sent = 0;
    loop {
        if let Err(e) = sink.send(M::text("tick")).await {
            return send_failed(port, &e, sent);
        }
        sent += 1;
        tokio::time::sleep(every).await;
    }
}

/// Echoes what `socket` reads; with `read_on`, a failed echo does not end
/// the reading (the rest is read, not echoed).
async fn echo<M: Msg, S: Socket<M>>(port: u16, mut socket: S, read_on: bool) {
    let (mut received, mut sent, mut failed) = (0, 0, false);
    let end = loop {
        match socket.next().await {
            Some(Ok(msg)) if msg.is_data() => {
                received += 1;
                if failed {
                    continue;
                }
                match socket.send(msg).await {
                    Ok(()) => sent += 1,
                    Err(e) => {
                        send_failed(port, &e, sent);
                        if !read_on {
                            return;
                        }
                        failed = true;
                    }
                }
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => break Some(e),
            None => break None,
        }
    };
    recv_ended(port, end, received);
}

/// A sink in the hub, and how many sends it took.
type HubEntry<M, S> = (SplitSink<S, M>, usize);

/// The shared state of the `hub` and `split-chat` shapes.
struct Shared<M, S> {
    /// By the client's port.
    hub: Mutex<HashMap<u16, HubEntry<M, S>>>,
    chat: broadcast::Sender<String>,
}

impl<M: Msg, S: Socket<M>> Shared<M, S> {
    fn new() -> Arc<Self> {
        Arc::new(Shared {
            hub: Mutex::new(HashMap::new()),
            chat: broadcast::channel(64).0,
        })
    }
}

/// Runs shape `name` on the session of the client at `port`.
async fn shape<M: Msg, S: Socket<M>>(name: &str, port: u16, socket: S, shared: Arc<Shared<M, S>>) {
    println!("{port} session");
    match name {
        "owned-reader" => {
            echo(port, socket, true).await;
            cleanup();
        }
        "owned-push" => {
            let mut socket = socket;
            push(port, &mut socket, TICK).await;
            cleanup();
        }
        "split-chat" => {
            let (mut sink, mut stream) = socket.split();
            let mut rx = shared.chat.subscribe();
            let mut send_task = tokio::spawn(async move {
                let mut sent = 0;
                loop {
                    let line = match rx.recv().await {
                        Ok(line) => line,
                        Err(broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(broadcast::error::RecvError::Closed) => return,
                    };
                    if let Err(e) = sink.send(M::text(&line)).await {
                        return send_failed(port, &e, sent);
                    }
                    sent += 1;
                }
            });
            let chat = shared.chat.clone();
            let mut recv_task = tokio::spawn(async move {
                let mut received = 0;
                let end = loop {
                    match stream.next().await {
                        Some(Ok(msg)) if msg.is_data() => {
                            received += 1;
                            let _ = chat.send("someone wrote".into());
                        }
                        Some(Ok(_)) => {}
                        Some(Err(e)) => break Some(e),
                        None => break None,
                    }
                };
                recv_ended(port, end, received);
            });
            tokio::select! {
                _ = &mut send_task => recv_task.abort(),
                _ = &mut recv_task => send_task.abort(),
            }
            let _ = shared.chat.send("someone left".into());
            cleanup();
        }
        "push-spawned" | "push-sleepy" => {
            let every = if name == "push-sleepy" {
                Duration::from_secs(30)
            } else {
                TICK
            };
            let (mut sink, stream) = socket.split();
            drop(stream);
            let pusher = tokio::spawn(async move { push(port, &mut sink, every).await });
            let _ = pusher.await;
            cleanup();
        }
        "hub" => {
            let (sink, mut stream) = socket.split();
            shared
                .hub
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(port, (sink, 0));
            let mut received = 0;
            let end = loop {
                match stream.next().await {
                    Some(Ok(msg)) => received += usize::from(msg.is_data()),
                    Some(Err(e)) => break Some(e),
                    None => break None,
                }
            };
            recv_ended(port, end, received);
            shared
                .hub
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&port);
            cleanup();
        }
        "early-return" => {
            tokio::spawn(echo(port, socket, false));
            cleanup();
        }
        other => eprintln!("shapes: unknown shape {other:?}"),
    }
}

/// Feeds every sink in the hub; a sink whose send fails is dropped.
async fn broadcaster<M: Msg, S: Socket<M>>(shared: Arc<Shared<M, S>>) {
    loop {
        tokio::time::sleep(TICK).await;
        let sinks: Vec<_> = shared
            .hub
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .collect();
        let mut kept = Vec::with_capacity(sinks.len());
        for (port, (mut sink, sent)) in sinks {
            match tokio::time::timeout(TICK, sink.send(M::text("news"))).await {
                Ok(Ok(())) => kept.push((port, (sink, sent + 1))),
                Ok(Err(e)) => send_failed(port, &e, sent),
                Err(_) => println!("{port} send failed: timed out; sent {sent}"),
            }
        }
        shared
            .hub
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(kept);
    }
}

struct Args {
    listen: SocketAddr,
    stack: String,
    shape: String,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        listen: SocketAddr::from(([127, 0, 0, 1], 3000)),
        stack: "axum".into(),
        shape: "owned-reader".into(),
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
            "--stack" => args.stack = value("--stack")?,
            "--shape" => args.shape = value("--shape")?,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(args)
}

async fn serve_axum(
    controller: &DrainController,
    listener: tokio::net::TcpListener,
    name: &'static str,
) -> std::io::Result<wsdrain::DrainReport> {
    use axum::{Router, extract::ConnectInfo, routing::get};
    let shared = Shared::<axum::extract::ws::Message, GracefulSocket>::new();
    tokio::spawn(broadcaster(shared.clone()));
    let app = Router::new()
        .route(
            "/ws",
            get(
                move |ConnectInfo(peer): ConnectInfo<SocketAddr>, upgrade: GracefulUpgrade| async move {
                    upgrade.on_upgrade(move |socket| shape(name, peer.port(), socket, shared))
                },
            ),
        )
        .layer(DrainLayer::new(controller.drain()));
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    wsdrain::serve(listener, app, controller).await
}

async fn serve_tungstenite(
    controller: &DrainController,
    listener: tokio::net::TcpListener,
    name: &'static str,
) -> wsdrain::DrainReport {
    type Socket = wsdrain::tungstenite::GracefulSocket<tokio::net::TcpStream>;
    let shared = Shared::<tokio_tungstenite::tungstenite::Message, Socket>::new();
    tokio::spawn(broadcaster(shared.clone()));
    let drain = controller.drain();
    let accepting = async {
        loop {
            let Ok((tcp, peer)) = listener.accept().await else {
                continue;
            };
            let drain = drain.clone();
            let shared = shared.clone();
            tokio::spawn(async move {
                let _ = wsdrain::tungstenite::accept(&drain, tcp, move |socket| {
                    shape(name, peer.port(), socket, shared)
                })
                .await;
            });
        }
    };
    tokio::select! {
        report = controller.run() => report,
        () = accepting => unreachable!("the accept loop never ends"),
    }
}

fn main() -> ExitCode {
    support::init_logs();
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("shapes: {e}");
            return ExitCode::from(2);
        }
    };
    // Policy, signals (while this is the only thread), then the runtime.
    let support::Started {
        controller,
        signals: _signals,
        runtime,
    } = match support::start("shapes") {
        Ok(s) => s,
        Err(code) => return code,
    };
    let name: &'static str = args.shape.leak();
    runtime.block_on(async {
        let listener = match support::bind("shapes", args.listen).await {
            Ok(l) => l,
            Err(code) => return code,
        };
        println!(
            "listening on {}",
            listener.local_addr().unwrap_or(args.listen)
        );
        let report = match args.stack.as_str() {
            "axum" => match serve_axum(&controller, listener, name).await {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("shapes: server error: {e}");
                    return ExitCode::FAILURE;
                }
            },
            "tungstenite" => serve_tungstenite(&controller, listener, name).await,
            other => {
                eprintln!("shapes: unknown stack {other:?}");
                return ExitCode::from(2);
            }
        };
        println!("drained: {report}");
        println!("cleanups: {}", CLEANUPS.load(Ordering::SeqCst));
        ExitCode::SUCCESS
    })
}
