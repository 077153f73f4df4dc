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
//! | `owned-reader` | holds the socket, echoes what it reads |
//! | `owned-push` | holds the socket, never reads, pushes a tick every 200 ms |
//! | `split-chat` | axum's chat example: `split()`, a send task and a recv task spawned, `select!` on their handles |
//! | `push-spawned` | `split()`, drops the stream, pushes from a spawned task every 200 ms, awaits it |
//! | `push-sleepy` | the same, but the task sleeps 30 s between ticks (it cannot learn of its close in time) |
//! | `hub` | sinks kept in a shared map fed by one broadcaster; the handler only reads |
//! | `early-return` | spawns one task with both halves (echo) and returns at once |
//!
//! It prints `listening on ADDR`, `session` when a handler starts, and at exit
//! the drain report and `cleanups: N`: how many handlers ran the code after
//! their socket loop.

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
use wsdrain::{DrainController, DrainLayer, GracefulSocket, GracefulUpgrade};

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

/// A drained socket of either stack, as the shapes use it.
trait Socket<M: Msg>:
    Stream<Item = Result<M, Self::Err>> + Sink<M, Error = Self::Err> + Unpin + Send + 'static
{
    type Err: Send;
}

impl<T, M: Msg, E: Send> Socket<M> for T
where
    T: Stream<Item = Result<M, E>> + Sink<M, Error = E> + Unpin + Send + 'static,
{
    type Err = E;
}

static CLEANUPS: AtomicUsize = AtomicUsize::new(0);

fn cleanup() {
    CLEANUPS.fetch_add(1, Ordering::SeqCst);
}

const TICK: Duration = Duration::from_millis(200);

async fn push<M: Msg, S: Sink<M> + Unpin>(sink: &mut S, every: Duration) {
    loop {
        if sink.send(M::text("tick")).await.is_err() {
            return;
        }
        tokio::time::sleep(every).await;
    }
}

/// The shared state of the `hub` and `split-chat` shapes.
struct Shared<M, S> {
    hub: Mutex<HashMap<usize, SplitSink<S, M>>>,
    next: AtomicUsize,
    chat: broadcast::Sender<String>,
}

impl<M: Msg, S: Socket<M>> Shared<M, S> {
    fn new() -> Arc<Self> {
        Arc::new(Shared {
            hub: Mutex::new(HashMap::new()),
            next: AtomicUsize::new(0),
            chat: broadcast::channel(64).0,
        })
    }
}

async fn shape<M: Msg, S: Socket<M>>(name: &str, socket: S, shared: Arc<Shared<M, S>>) {
    println!("session");
    match name {
        "owned-reader" => {
            let mut socket = socket;
            while let Some(Ok(msg)) = socket.next().await {
                if msg.is_data() && socket.send(msg).await.is_err() {
                    break;
                }
            }
            cleanup();
        }
        "owned-push" => {
            let mut socket = socket;
            push(&mut socket, TICK).await;
            cleanup();
        }
        "split-chat" => {
            let (mut sink, mut stream) = socket.split();
            let mut rx = shared.chat.subscribe();
            let mut send_task = tokio::spawn(async move {
                while let Ok(line) = rx.recv().await {
                    if sink.send(M::text(&line)).await.is_err() {
                        break;
                    }
                }
            });
            let chat = shared.chat.clone();
            let mut recv_task = tokio::spawn(async move {
                while let Some(Ok(msg)) = stream.next().await {
                    if msg.is_data() {
                        let _ = chat.send("someone wrote".into());
                    }
                }
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
            let pusher = tokio::spawn(async move { push(&mut sink, every).await });
            let _ = pusher.await;
            cleanup();
        }
        "hub" => {
            let (sink, mut stream) = socket.split();
            let id = shared.next.fetch_add(1, Ordering::Relaxed);
            shared
                .hub
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(id, sink);
            while let Some(Ok(_)) = stream.next().await {}
            shared
                .hub
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
            cleanup();
        }
        "early-return" => {
            let (mut sink, mut stream) = socket.split();
            tokio::spawn(async move {
                while let Some(Ok(msg)) = stream.next().await {
                    if msg.is_data() && sink.send(msg).await.is_err() {
                        break;
                    }
                }
            });
            cleanup();
        }
        other => eprintln!("shapes: unknown shape {other:?}"),
    }
}

/// Feeds every sink in the hub; a sink whose session is closing is dropped.
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
        for (id, mut sink) in sinks {
            let sent = tokio::time::timeout(TICK, sink.send(M::text("news"))).await;
            if matches!(sent, Ok(Ok(()))) {
                kept.push((id, sink));
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
    use axum::{Router, routing::get};
    let shared = Shared::<axum::extract::ws::Message, GracefulSocket>::new();
    tokio::spawn(broadcaster(shared.clone()));
    let app = Router::new()
        .route(
            "/ws",
            get(move |upgrade: GracefulUpgrade| async move {
                upgrade.on_upgrade(move |socket| shape(name, socket, shared))
            }),
        )
        .layer(DrainLayer::new(controller.drain()));
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
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let drain = drain.clone();
            let shared = shared.clone();
            tokio::spawn(async move {
                let _ = wsdrain::tungstenite::accept(&drain, tcp, move |socket| {
                    shape(name, socket, shared)
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
