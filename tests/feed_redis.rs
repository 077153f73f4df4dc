//! The feed example on the Redis log, as a fleet: replicas and a publisher
//! as separate processes sharing a real `redis-server`, read by a client
//! that applies the rules of docs/PROTOCOL.md ("Resumable sessions").
#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/redis.rs"]
mod redis_server;

use std::{
    collections::HashMap,
    io::{BufRead, BufReader},
    net::SocketAddr,
    process::{Child, Command, Stdio},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use common::Server;
use futures_util::StreamExt;
use redis_server::RedisServer;
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};
use wsdrain::protocol::resume::{Control, Frame, ResyncReason, SUBPROTOCOL, parse_frame};

/// Every wait is bounded; a healthy run takes a few seconds.
const LIMIT: Duration = Duration::from_secs(30);

/// A `feed --publisher` process.
struct Publisher(Child);

impl Publisher {
    fn start(url: &str, rate: u32) -> Publisher {
        let mut child = Command::new(common::example("feed"))
            .args(["--redis", url, "--publisher", "--rate", &rate.to_string()])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        assert_eq!(first.trim(), "publishing");
        Publisher(child)
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn replica(url: &str, args: &[&str]) -> Server {
    let mut all = vec!["--redis", url];
    all.extend_from_slice(args);
    Server::start("feed", &[], &all)
}

/// What the client saw, in order.
#[derive(Debug, Clone, PartialEq)]
enum Seen {
    Message { seq: u64, n: u64 },
    Resync(ResyncReason),
}

/// The client's state across its connections: per stream the epoch and the
/// last seq delivered (one connection at a time, so no owner is needed).
#[derive(Default)]
struct Reader {
    streams: HashMap<String, (String, u64)>,
    seen: Vec<Seen>,
    duplicates: usize,
    /// The controls of the current connection.
    controls: Vec<Control>,
}

impl Reader {
    fn point(&self) -> String {
        let mut point: Vec<String> = self
            .streams
            .iter()
            .map(|(s, (e, n))| format!("{s}@{e}.{n}"))
            .collect();
        point.sort();
        point.join(",")
    }

    fn messages(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.seen.iter().filter_map(|s| match s {
            Seen::Message { seq, n } => Some((*seq, *n)),
            Seen::Resync(_) => None,
        })
    }

    /// Applies one frame; a seq that is neither the next one nor an old one
    /// is a hole, and fails the test.
    fn apply(&mut self, data: &[u8]) {
        match parse_frame(data).unwrap() {
            Frame::Control(control) => {
                let position = match &control {
                    Control::Follow(p) | Control::Resumed(p) | Control::Resync(p, _) => p.clone(),
                    _ => return,
                };
                let (stream, epoch, after) = (position.stream(), position.epoch(), position.seq());
                let known = self.streams.get(stream).cloned();
                let lost = match &known {
                    None => false,
                    Some((e, last)) => !(e == epoch && after <= *last),
                };
                if known.is_none() || lost {
                    self.streams
                        .insert(stream.to_owned(), (epoch.to_owned(), after));
                }
                if let Control::Resync(_, reason) = &control
                    && (lost || known.is_none())
                {
                    self.seen.push(Seen::Resync(*reason));
                }
                self.controls.push(control);
            }
            Frame::Message {
                stream,
                seq,
                payload,
            } => {
                let state = self.streams.get_mut(stream).expect("a control came first");
                if seq <= state.1 {
                    self.duplicates += 1;
                    return;
                }
                assert_eq!(seq, state.1 + 1, "a hole in {stream} after {}", state.1);
                state.1 = seq;
                let text = std::str::from_utf8(payload).unwrap();
                let n = text
                    .strip_prefix("{\"n\":")
                    .and_then(|t| t.strip_suffix('}'))
                    .and_then(|t| t.parse().ok())
                    .unwrap_or_else(|| panic!("unexpected payload {text}"));
                self.seen.push(Seen::Message { seq, n });
            }
            Frame::Plain(_) => {}
        }
    }
}

type Ws = common::Ws;

async fn connect(addr: SocketAddr, reader: &mut Reader) -> Ws {
    let point = reader.point();
    let mut url = format!("ws://{addr}/feed");
    if !point.is_empty() {
        url.push_str(&format!("?wsdrain-resume={point}"));
    }
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", SUBPROTOCOL.parse().unwrap());
    let (ws, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(
        response.headers()["sec-websocket-protocol"]
            .to_str()
            .unwrap(),
        SUBPROTOCOL
    );
    reader.controls.clear();
    ws
}

/// Reads until `done` holds, at most [`LIMIT`].
async fn read_until(ws: &mut Ws, reader: &mut Reader, done: impl Fn(&Reader) -> bool) {
    let deadline = Instant::now() + LIMIT;
    while !done(reader) {
        let left = deadline.saturating_duration_since(Instant::now());
        let frame = tokio::time::timeout(left, ws.next())
            .await
            .unwrap_or_else(|_| panic!("timed out; seen {:?}", reader.seen.last()))
            .expect("connection open")
            .unwrap();
        match frame {
            Message::Text(t) => reader.apply(t.as_bytes()),
            Message::Binary(b) => reader.apply(&b),
            _ => {}
        }
    }
}

/// Who published tick `n`: each publisher counts ticks since the Unix epoch
/// at its own rate, so `n / rate` is about now.
fn published_at_rate(n: u64, rate: u64) -> bool {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    (n / rate).abs_diff(now) < 600
}

fn count_after(reader: &Reader, since: usize, pred: impl Fn(&Seen) -> bool) -> usize {
    reader.seen[since..].iter().filter(|s| pred(s)).count()
}

fn is_message(s: &Seen) -> bool {
    matches!(s, Seen::Message { .. })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_shares_one_ordered_stream_and_clients_resume_on_any_replica() {
    let redis = RedisServer::start();
    let url = redis.url();
    // A serves only; B serves and publishes at 20/s; P publishes at 13/s.
    let a = replica(&url, &["--no-publish"]);
    let b = replica(&url, &["--rate", "20"]);
    let _p = Publisher::start(&url, 13);

    let mut reader = Reader::default();
    let mut ws = connect(a.addr, &mut reader).await;
    read_until(&mut ws, &mut reader, |r| {
        let by = |rate| {
            r.messages()
                .filter(|(_, n)| published_at_rate(*n, rate))
                .count()
        };
        by(20) >= 10 && by(13) >= 10
    })
    .await;
    assert!(matches!(reader.controls[0], Control::Follow(_)));
    // In order: the reader fails on a hole; and nothing twice.
    assert_eq!(reader.duplicates, 0);

    // The connection drops; messages go on meanwhile.
    drop(ws);
    let last = reader.streams["ticker"].1;
    let mut conn = redis.connection().await;
    let deadline = Instant::now() + LIMIT;
    loop {
        let head: u64 = redis::cmd("HGET")
            .arg("wsdrain:{ticker}:meta")
            .arg("last")
            .query_async(&mut conn)
            .await
            .unwrap();
        if head >= last + 10 {
            break;
        }
        assert!(Instant::now() < deadline, "the stream stopped at {head}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // It reconnects to the other replica with its point.
    let since = reader.seen.len();
    let mut ws = connect(b.addr, &mut reader).await;
    read_until(&mut ws, &mut reader, |r| {
        r.messages().filter(|(seq, _)| *seq > last + 20).count() > 0
    })
    .await;
    let Control::Resumed(p) = &reader.controls[0] else {
        panic!("resumed expected, got {:?}", reader.controls[0]);
    };
    assert_eq!(p.seq(), last);
    assert_eq!(
        count_after(&reader, since, |s| matches!(s, Seen::Resync(_))),
        0
    );
    assert_eq!(reader.duplicates, 0, "nothing twice across the reconnect");
    let seqs: Vec<u64> = reader.messages().map(|(seq, _)| seq).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "no message missed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_live_goes_on_and_clients_are_told_to_resync() {
    let mut redis = RedisServer::start();
    let url = redis.url();
    let mut a = replica(&url, &["--rate", "20"]);

    let mut reader = Reader::default();
    let mut ws = connect(a.addr, &mut reader).await;
    read_until(&mut ws, &mut reader, |r| r.messages().count() >= 5).await;
    let before = Reader {
        streams: reader.streams.clone(),
        ..Reader::default()
    };

    redis.stop();
    let since = reader.seen.len();
    read_until(&mut ws, &mut reader, |r| {
        let resync = r.seen[since..]
            .iter()
            .position(|s| *s == Seen::Resync(ResyncReason::Unavailable));
        resync.is_some_and(|i| count_after(r, since + i, is_message) >= 10)
    })
    .await;

    // A client that comes back now cannot be replayed: it is told so, and
    // gets the live messages.
    let mut late = before;
    let mut ws_late = connect(a.addr, &mut late).await;
    read_until(&mut ws_late, &mut late, |r| r.messages().count() >= 5).await;
    assert_eq!(late.seen[0], Seen::Resync(ResyncReason::Unavailable));
    assert!(a.child.try_wait().unwrap().is_none(), "the replica runs on");

    // Redis is back (empty): the stream is in the log again, and the live
    // client is told so once more.
    redis.restart(false);
    let since = reader.seen.len();
    read_until(&mut ws, &mut reader, |r| {
        let resync = r.seen[since..]
            .iter()
            .position(|s| matches!(s, Seen::Resync(_)));
        resync.is_some_and(|i| count_after(r, since + i, is_message) >= 10)
    })
    .await;
    let mut conn = redis.connection().await;
    let logged: u64 = redis::cmd("XLEN")
        .arg("wsdrain:{ticker}:log")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(logged >= 10, "appends go to the log again");
    assert_eq!(reader.duplicates, 0);
    assert!(a.child.try_wait().unwrap().is_none(), "nothing panicked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_empty_gives_resync_epoch() {
    let mut redis = RedisServer::start();
    let url = redis.url();
    let a = replica(&url, &["--no-publish"]);
    let _p = Publisher::start(&url, 20);

    let mut reader = Reader::default();
    let mut ws = connect(a.addr, &mut reader).await;
    read_until(&mut ws, &mut reader, |r| r.messages().count() >= 5).await;
    let epoch = reader.streams["ticker"].0.clone();

    redis.restart(false);
    let since = reader.seen.len();
    read_until(&mut ws, &mut reader, |r| {
        let resync = r.seen[since..]
            .iter()
            .position(|s| matches!(s, Seen::Resync(_)));
        resync.is_some_and(|i| count_after(r, since + i, is_message) >= 5)
    })
    .await;
    let resync = reader.seen[since..]
        .iter()
        .find(|s| matches!(s, Seen::Resync(_)))
        .unwrap();
    assert_eq!(*resync, Seen::Resync(ResyncReason::Epoch));
    assert_ne!(reader.streams["ticker"].0, epoch);
    assert_eq!(reader.duplicates, 0);
}
