//! The shape matrix: every session shape applications write, on both stacks
//! (axum, tokio-tungstenite), in a real process drained by a real SIGTERM.
//! Every client sends throughout the drain, and the server (examples/shapes.rs)
//! prints what each handler saw at its turn, keyed by the client's port, so
//! the "at its turn" column of the README's shape table is checked from
//! outside, session by session, against what the client sent and received.
//!
//! Three kinds of peers per shape:
//! * replying: tokio-tungstenite clients, which answer the Close at once;
//! * held: raw clients that send one more message after the Close and answer
//!   only once the server reported the handler's failed send, so the writer's
//!   side of each shape is observed for certain;
//! * silent: raw clients that send one more message and never answer.
#![allow(clippy::unwrap_used)]

mod common;

use std::{
    net::SocketAddr,
    sync::{Condvar, Mutex},
    time::{Duration, Instant},
};

use common::{RawWs, Server, close_payload, hint_ms};
use futures_util::{SinkExt, StreamExt};
use nix::sys::signal::Signal;
use tokio::{sync::watch, time::timeout};
use tokio_tungstenite::{MaybeTlsStream, tungstenite::Message};

/// A shape of examples/shapes.rs and what its handlers must report at their
/// turn (`R`: a reader saw its stream end; `S`: a writer's send failed with
/// `Error::Closing`), as the sets allowed per session.
struct Shape {
    name: &'static str,
    /// For a held client: the handler has a writer that fails at its turn.
    held_waits: bool,
    held: &'static [&'static str],
    /// For replying and silent clients.
    others: &'static [&'static str],
    /// What the server sends: an echo of the client's messages, or this text.
    sends: Sends,
}

#[derive(Clone, Copy)]
enum Sends {
    Echo,
    Text(&'static [&'static str]),
}

const SHAPES: [Shape; 7] = [
    // `recv` yields what the peer still sends, then `None`; its echo fails.
    Shape {
        name: "owned-reader",
        held_waits: true,
        held: &["RS"],
        others: &["R", "RS"],
        sends: Sends::Echo,
    },
    // The next send fails with `Error::Closing`.
    Shape {
        name: "owned-push",
        held_waits: true,
        held: &["S"],
        others: &["S"],
        sends: Sends::Text(&["tick"]),
    },
    // Whichever task learns first: the recv task's end, or the send task's
    // failed send (the held client's last message makes one to send).
    Shape {
        name: "split-chat",
        held_waits: true,
        held: &["S", "RS"],
        others: &["R", "S", "RS"],
        sends: Sends::Text(&["someone wrote", "someone left"]),
    },
    // The Close goes out anyway; the task's next send fails.
    Shape {
        name: "push-spawned",
        held_waits: true,
        held: &["S"],
        others: &["S"],
        sends: Sends::Text(&["tick"]),
    },
    // The task sleeps through its close and is cut: it reports nothing.
    Shape {
        name: "push-sleepy",
        held_waits: false,
        held: &[""],
        others: &[""],
        sends: Sends::Text(&["tick"]),
    },
    // The reader ends; the hub's next send to that sink fails.
    Shape {
        name: "hub",
        held_waits: true,
        held: &["RS"],
        others: &["R", "RS"],
        sends: Sends::Text(&["news"]),
    },
    // The handler returned at once; its task's next echo fails (or its
    // stream ends), and the session lives until its close is over.
    Shape {
        name: "early-return",
        held_waits: true,
        held: &["S"],
        others: &["R", "S"],
        sends: Sends::Echo,
    },
];

const REPLYING: usize = 4;
const HELD: usize = 4;
const SILENT: usize = 2;
const SESSIONS: usize = REPLYING + HELD + SILENT;
const SEND_EVERY: Duration = Duration::from_millis(25);
/// Clients send through Draining too, so data is in flight at every turn.
const DRAIN_DELAY: Duration = Duration::from_millis(300);
const CLOSE_WINDOW: Duration = Duration::from_secs(1);
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// What a loaded 2-core machine may add to any moment; the deadline (18 s)
/// stays far beyond every bound.
const SLACK: Duration = Duration::from_millis(1500);
const ENV: [(&str, &str); 4] = [
    ("WSDRAIN_DRAIN_DELAY", "300ms"),
    ("WSDRAIN_CLOSE_WINDOW", "1s"),
    ("WSDRAIN_CLOSE_TIMEOUT", "2s"),
    ("WSDRAIN_GRACE_PERIOD", "20s"),
];
/// Shape processes running at once, across both stacks' tests.
const CONCURRENT: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Role {
    Replying,
    Held,
    Silent,
}

/// What one client sent and saw.
#[derive(Debug)]
struct Seen {
    role: Role,
    port: u16,
    /// Data messages sent, the one after the Close included.
    sent: usize,
    /// Data messages received before the Close.
    got: Vec<String>,
    /// Code, reason and arrival of the Close.
    close: (u16, String, Instant),
    /// Data frames or second Closes after the Close.
    after_close: usize,
    /// When the server ended the connection.
    eof: Instant,
}

async fn replying(addr: SocketAddr) -> Result<Seen, String> {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let port = match ws.get_ref() {
        MaybeTlsStream::Plain(tcp) => tcp.local_addr().unwrap().port(),
        _ => unreachable!("plain ws://"),
    };
    let mut tick = tokio::time::interval(SEND_EVERY);
    let (mut sent, mut got) = (0, Vec::new());
    let frame = loop {
        tokio::select! {
            msg = ws.next() => match msg {
                Some(Ok(Message::Close(frame))) => break frame,
                Some(Ok(Message::Text(text))) => got.push(text.to_string()),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(format!("{port}: {e}")),
                None => return Err(format!("{port}: ended without a Close")),
            },
            _ = tick.tick() => {
                if ws.send(Message::text(format!("m{sent}"))).await.is_ok() {
                    sent += 1;
                }
            }
        }
    };
    let at = Instant::now();
    let close = frame.map_or((1005, String::new(), at), |f| {
        (f.code.into(), f.reason.to_string(), at)
    });
    // tungstenite answers the Close as it reads on.
    let mut after_close = 0;
    while let Some(msg) = ws.next().await {
        match msg {
            Ok(_) => after_close += 1,
            Err(e) => return Err(format!("{port}: after the Close: {e}")),
        }
    }
    Ok(Seen {
        role: Role::Replying,
        port,
        sent,
        got,
        close,
        after_close,
        eof: Instant::now(),
    })
}

/// A held or silent client; `lines` is the server's output so far.
async fn raw(
    addr: SocketAddr,
    role: Role,
    await_failure: bool,
    mut lines: watch::Receiver<Vec<String>>,
) -> Result<Seen, String> {
    let mut ws = RawWs::connect(addr, "/ws").await;
    let port = ws.stream.local_addr().unwrap().port();
    let mut tick = tokio::time::interval(SEND_EVERY);
    let (mut sent, mut got) = (0, Vec::new());
    let payload = loop {
        tokio::select! {
            frame = ws.read_frame() => match frame {
                Some((8, payload)) => break payload,
                Some((1, data)) => got.push(String::from_utf8_lossy(&data).into_owned()),
                Some(_) => {}
                None => return Err(format!("{port}: ended without a Close")),
            },
            _ = tick.tick() => {
                ws.send_frame(1, format!("m{sent}").as_bytes()).await;
                sent += 1;
            }
        }
    };
    let (code, reason) = close_payload(&payload);
    let close = (code, reason, Instant::now());
    // Still sent before our answer: the handler's reader must see it.
    ws.send_frame(1, format!("m{sent}").as_bytes()).await;
    sent += 1;
    if role == Role::Held {
        if await_failure {
            let failed = format!("{port} send failed");
            let reported = lines.wait_for(|l| l.iter().any(|l| l.starts_with(&failed)));
            // Within the close timeout, or the session would not count clean.
            if timeout(CLOSE_TIMEOUT / 2, reported).await.is_err() {
                return Err(format!("{port}: no failed send reported after the Close"));
            }
        }
        ws.send_frame(8, &payload[..2]).await;
    }
    let mut after_close = 0;
    let end = timeout(CLOSE_TIMEOUT + SLACK * 2, async {
        while ws.read_frame().await.is_some() {
            after_close += 1;
        }
    })
    .await;
    if end.is_err() {
        return Err(format!("{port}: still connected long after the Close"));
    }
    Ok(Seen {
        role,
        port,
        sent,
        got,
        close,
        after_close,
        eof: Instant::now(),
    })
}

/// The server's stdout from here on, every line so far.
fn watch_lines(server: &mut Server) -> watch::Receiver<Vec<String>> {
    let (_, none) = std::sync::mpsc::channel();
    let lines = std::mem::replace(&mut server.lines, none);
    let (tx, rx) = watch::channel(Vec::new());
    std::thread::spawn(move || {
        for line in lines {
            tx.send_modify(|all| all.push(line));
        }
    });
    rx
}

/// What the handler of `seen`'s session reported matches what the client
/// sent and received, and the shape's allowed outcomes for its role.
fn check_session(shape: &Shape, seen: &Seen, lines: &[String]) -> Result<(), String> {
    let who = format!("{:?} client {}", seen.role, seen.port);
    let prefix = format!("{} ", seen.port);
    let mut outcome = String::new();
    for line in lines.iter().filter_map(|l| l.strip_prefix(&prefix)) {
        if line == "session" {
            continue;
        }
        if let Some(n) = line.strip_prefix("recv ended; received ") {
            outcome.push('R');
            if n != seen.sent.to_string() {
                return Err(format!("{who}: sent {}, the reader {line:?}", seen.sent));
            }
        } else if let Some(n) = line.strip_prefix("send failed: closing; sent ") {
            outcome.push('S');
            if n != seen.got.len().to_string() {
                return Err(format!(
                    "{who}: got {}, the writer {line:?}",
                    seen.got.len()
                ));
            }
        } else {
            return Err(format!("{who}: the handler reported {line:?}"));
        }
    }
    let allowed = if seen.role == Role::Held {
        shape.held
    } else {
        shape.others
    };
    let mut sorted: Vec<char> = outcome.chars().collect();
    sorted.sort_unstable();
    let outcome: String = sorted.into_iter().collect();
    if !allowed.contains(&outcome.as_str()) {
        return Err(format!(
            "{who}: the handler reported {outcome:?}, allowed {allowed:?}: {:?}",
            lines
                .iter()
                .filter(|l| l.starts_with(&prefix))
                .collect::<Vec<_>>()
        ));
    }
    let expected = |i: usize, got: &str| match shape.sends {
        Sends::Echo => got == format!("m{i}"),
        Sends::Text(texts) => texts.contains(&got),
    };
    if let Some((i, bad)) = seen.got.iter().enumerate().find(|(i, g)| !expected(*i, g)) {
        return Err(format!("{who}: message {i} was {bad:?}"));
    }
    if seen.after_close > 0 {
        return Err(format!(
            "{who}: {} frames after the Close",
            seen.after_close
        ));
    }
    let (code, reason, _) = &seen.close;
    if *code != 1001 || hint_ms(reason).is_none() {
        return Err(format!("{who}: closed with {code} {reason:?}"));
    }
    Ok(())
}

/// One shape on one stack; returns what went wrong, if anything.
async fn drain_shape(stack: &str, shape: &Shape) -> Result<(), String> {
    let mut server = Server::start("shapes", &ENV, &["--stack", stack, "--shape", shape.name]);
    let addr = server.addr;
    let mut lines = watch_lines(&mut server);
    let mut clients = Vec::new();
    for _ in 0..REPLYING {
        clients.push(tokio::spawn(replying(addr)));
    }
    for (role, n) in [(Role::Held, HELD), (Role::Silent, SILENT)] {
        for _ in 0..n {
            let lines = lines.clone();
            clients.push(tokio::spawn(raw(addr, role, shape.held_waits, lines)));
        }
    }
    let started = |l: &Vec<String>| l.iter().filter(|l| l.ends_with(" session")).count();
    let all_started = timeout(
        Duration::from_secs(10),
        lines.wait_for(|l| started(l) == SESSIONS),
    )
    .await
    .is_ok_and(|r| r.is_ok());
    if !all_started {
        return Err(format!(
            "only {} sessions started",
            started(&lines.borrow())
        ));
    }

    let t0 = Instant::now();
    server.signal(Signal::SIGTERM);
    let mut seen = Vec::new();
    for client in clients {
        seen.push(
            timeout(Duration::from_secs(15), client)
                .await
                .map_err(|_| "a client never ended".to_string())?
                .unwrap()?,
        );
    }
    for s in &seen {
        let closed = s.close.2 - t0;
        match s.role {
            Role::Replying | Role::Held if closed > DRAIN_DELAY + CLOSE_WINDOW + SLACK => {
                return Err(format!(
                    "{:?} client closed {closed:?} after SIGTERM",
                    s.role
                ));
            }
            Role::Silent => {
                let held = s.eof - s.close.2;
                if held < CLOSE_TIMEOUT - Duration::from_millis(100) || held > CLOSE_TIMEOUT + SLACK
                {
                    return Err(format!("silent peer dropped {held:?} after its Close"));
                }
            }
            _ => {}
        }
    }
    let (code, took) = server.wait_exit(Duration::from_secs(15));
    if code != Some(0) {
        return Err(format!("exit code {code:?}"));
    }
    // The delay, the turns (≤ window), the silent peers' handshakes (close_timeout), and
    // for handlers that cannot learn of their close, one more close_timeout.
    let bound = DRAIN_DELAY + CLOSE_WINDOW + 2 * CLOSE_TIMEOUT + 2 * SLACK;
    if took > bound {
        return Err(format!("exit {took:?} after SIGTERM (bound {bound:?})"));
    }
    // The whole output: the reader thread ends with the process's stdout.
    let _ = timeout(Duration::from_secs(5), async {
        while lines.changed().await.is_ok() {}
    })
    .await;
    let rest = lines.borrow().clone();
    for s in &seen {
        check_session(shape, s, &rest)?;
    }
    let report = rest
        .iter()
        .find(|l| l.starts_with("drained: "))
        .ok_or("no drain report")?;
    let want = [
        format!(" {SESSIONS} sessions at closing,"),
        format!(" {} clean,", REPLYING + HELD),
        format!(" {SILENT} timed out,"),
        " 0 forced".to_string(),
    ];
    if let Some(missing) = want.iter().find(|w| !report.contains(w.as_str())) {
        return Err(format!("report lacks {missing:?}: {report}"));
    }
    // Every handler that learns of its close within close_timeout runs the
    // code after its socket loop; the sleepy pusher cannot, and is cut.
    let cleanups = if shape.name == "push-sleepy" {
        0
    } else {
        SESSIONS
    };
    let line = format!("cleanups: {cleanups}");
    if !rest.contains(&line) {
        return Err(format!("wanted {line:?}, got {rest:?}"));
    }
    Ok(())
}

/// Free places for shape processes; see `CONCURRENT`.
static PLACES: Mutex<usize> = Mutex::new(CONCURRENT);
static PLACE_FREED: Condvar = Condvar::new();

/// A place taken in `PLACES`, given back when dropped.
struct Place;

impl Place {
    fn take() -> Place {
        let mut free = PLACES.lock().unwrap();
        while *free == 0 {
            free = PLACE_FREED.wait(free).unwrap();
        }
        *free -= 1;
        Place
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        *PLACES.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        PLACE_FREED.notify_one();
    }
}

/// Runs every shape of `stack`, each on its own thread and runtime, at most
/// `CONCURRENT` processes at once.
fn matrix(stack: &str) {
    let failures: Vec<String> = std::thread::scope(|scope| {
        let runs: Vec<_> = SHAPES
            .iter()
            .map(|shape| {
                scope.spawn(move || {
                    let _place = Place::take();
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap();
                    let start = Instant::now();
                    let result = rt.block_on(drain_shape(stack, shape));
                    eprintln!("{stack}/{}: {:?}", shape.name, start.elapsed());
                    result.map_err(|e| format!("{stack}/{}: {e}", shape.name))
                })
            })
            .collect();
        runs.into_iter()
            .filter_map(|r| r.join().unwrap().err())
            .collect()
    });
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn every_shape_drains_on_axum() {
    matrix("axum");
}

#[test]
fn every_shape_drains_on_tungstenite() {
    matrix("tungstenite");
}
