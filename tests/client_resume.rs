//! The Rust client's resume wiring against a scripted `wsdrain.resume.v1`
//! server on real loopback TCP: the point in every attempt's query, replay
//! after a lost connection, a gap answered with 1002 and a resumed
//! reconnect, an exactly-once handover on the notice, and a server that
//! does not select the subprotocol. The script plays the server's part
//! frame by frame, so each case is exact and includes what a conforming
//! server never sends; the feed example is the real server
//! (`tests/client_feed.rs`).
#![allow(clippy::unwrap_used)]

use std::{net::SocketAddr, time::Duration};

use futures_util::{SinkExt, StreamExt};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::mpsc,
};
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{
        Message as WsMessage,
        handshake::server::{Request, Response},
        http::HeaderValue,
        protocol::{CloseFrame, frame::coding::CloseCode},
    },
};
use wsdrain::client::{Event, Events, Message, Reconnect, RetryPolicy, StreamMessage, Wait};

/// Bound on waiting for any one event or connection.
const LIMIT: Duration = Duration::from_secs(15);

/// One upgrade the scripted server accepted.
struct Accepted {
    /// The request's query (`None` without one).
    query: Option<String>,
    /// Its `Sec-WebSocket-Protocol`, as offered.
    offered: Option<String>,
    ws: WebSocketStream<TcpStream>,
}

/// A server that accepts upgrades on 127.0.0.1 and hands each to the test;
/// it selects `wsdrain.resume.v1` when offered, if `select`.
struct Scripted {
    addr: SocketAddr,
    accepted: mpsc::UnboundedReceiver<Accepted>,
    task: tokio::task::JoinHandle<()>,
}

impl Scripted {
    // The callback's error type is tungstenite's.
    #[allow(clippy::result_large_err)]
    async fn start(select: bool) -> Scripted {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, accepted) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let mut seen = (None, None);
                let callback = |req: &Request, mut res: Response| {
                    let offered = req
                        .headers()
                        .get("sec-websocket-protocol")
                        .map(|v| v.to_str().unwrap().to_owned());
                    if select && offered.as_deref().is_some_and(|o| o.contains(SUBPROTOCOL)) {
                        res.headers_mut().insert(
                            "sec-websocket-protocol",
                            HeaderValue::from_static(SUBPROTOCOL),
                        );
                    }
                    seen = (req.uri().query().map(str::to_owned), offered);
                    Ok(res)
                };
                let Ok(ws) = tokio_tungstenite::accept_hdr_async(tcp, callback).await else {
                    continue;
                };
                let (query, offered) = seen;
                if tx.send(Accepted { query, offered, ws }).is_err() {
                    break;
                }
            }
        });
        Scripted {
            addr,
            accepted,
            task,
        }
    }

    async fn next(&mut self) -> Accepted {
        tokio::time::timeout(LIMIT, self.accepted.recv())
            .await
            .expect("no connection within the limit")
            .unwrap()
    }

    fn url(&self) -> String {
        format!("ws://{}/feed?token=a%20b", self.addr)
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.task.abort();
    }
}

const SUBPROTOCOL: &str = "wsdrain.resume.v1";

fn control(kind: &str, stream: &str, epoch: &str, after: u64) -> WsMessage {
    WsMessage::text(format!(
        "c\n{{\"type\":\"wsdrain.{kind}\",\"stream\":\"{stream}\",\"epoch\":\"{epoch}\",\"after\":{after}}}"
    ))
}

/// Message `seq` of stream `t` in `epoch`; its payload says both.
fn m(epoch: &str, seq: u64) -> WsMessage {
    WsMessage::text(format!("m t {seq}\n{epoch}:{seq}"))
}

async fn send(ws: &mut WebSocketStream<TcpStream>, frames: impl IntoIterator<Item = WsMessage>) {
    for frame in frames {
        ws.send(frame).await.unwrap();
    }
}

/// The client's next event, bounded.
async fn next(events: &mut Events) -> Event {
    match tokio::time::timeout(LIMIT, events.next()).await {
        Ok(Some(event)) => event,
        Ok(None) => panic!("events ended"),
        Err(_) => panic!("no event within {LIMIT:?}"),
    }
}

/// Events until `done` says so; every message of stream `t` is checked to
/// be the next of its epoch (once, in order), the payload the one sent in
/// it. The stream starts in epoch `E`; a resync moves it.
struct Seen {
    events: Events,
    epoch: String,
    next: u64,
    delivered: Vec<String>,
}

impl Seen {
    async fn until(&mut self, what: &str, mut done: impl FnMut(&Event) -> bool) -> Event {
        loop {
            let event = next(&mut self.events).await;
            if let Event::StreamMessage(StreamMessage {
                stream,
                seq,
                message,
                ..
            }) = &event
            {
                assert_eq!(&**stream, "t");
                assert_eq!(*seq, self.next, "{what}: {:?}", self.delivered);
                let payload = format!("{}:{seq}", self.epoch);
                assert_eq!(message, &Message::text(payload.clone()), "{what}");
                self.delivered.push(payload);
                self.next += 1;
            }
            if let Event::Resync(r) = &event {
                self.epoch = r.epoch.clone();
                self.next = r.after + 1;
            }
            if done(&event) {
                return event;
            }
        }
    }

    /// Reads until message `seq` of the current epoch has been delivered.
    async fn delivered_up_to(&mut self, seq: u64) {
        if self.next > seq {
            return;
        }
        self.until(
            &format!("message {seq}"),
            |e| matches!(e, Event::StreamMessage(m) if m.seq == seq),
        )
        .await;
    }

    fn delivered(&self) -> Vec<&str> {
        self.delivered.iter().map(String::as_str).collect()
    }
}

/// The drain notice, as a control.
fn notice() -> WsMessage {
    WsMessage::text("c\n{\"type\":\"wsdrain.reconnect\",\"close_in_ms\":5000}")
}

/// A scripted server, a resuming client, and its first connection, on which
/// stream `t` has started in epoch `E` and messages 1 to `n` were delivered.
async fn started(n: u64) -> (Scripted, Seen, Accepted) {
    let mut server = Scripted::start(true).await;
    let mut seen = client(&server.url());
    let mut c1 = server.next().await;
    assert_eq!(c1.offered.as_deref(), Some(SUBPROTOCOL));
    assert_eq!(c1.query.as_deref(), Some("token=a%20b"), "no point yet");
    send(&mut c1.ws, [control("follow", "t", "E", 0)]).await;
    send(&mut c1.ws, (1..=n).map(|seq| m("E", seq))).await;
    seen.delivered_up_to(n).await;
    (server, seen, c1)
}

fn client(url: &str) -> Seen {
    let (_client, events) = Reconnect::new(url)
        .resume(true)
        .policy(
            RetryPolicy::builder()
                .base(Duration::from_millis(20))
                .build()
                .unwrap(),
        )
        .close_timeout(Duration::from_secs(1))
        .spawn();
    Seen {
        events,
        epoch: "E".into(),
        next: 1,
        delivered: Vec::new(),
    }
}

#[tokio::test]
async fn a_lost_connection_resumes_from_the_point_in_the_query() {
    let (mut server, mut seen, c1) = started(3).await;
    drop(c1); // TCP ends without a Close: a crash, a proxy that dropped it

    let mut c2 = server.next().await;
    assert_eq!(
        c2.query.as_deref(),
        Some("token=a%20b&wsdrain-resume=t@E.3")
    );
    // Replay from the log overlaps what the client has.
    send(
        &mut c2.ws,
        [
            control("resumed", "t", "E", 2),
            m("E", 3),
            m("E", 4),
            m("E", 5),
        ],
    )
    .await;
    let resumed = seen
        .until("resumed", |e| matches!(e, Event::Resumed(_)))
        .await;
    let Event::Resumed(r) = resumed else {
        unreachable!()
    };
    assert_eq!((&*r.stream, r.epoch.as_str(), r.after), ("t", "E", 3));
    seen.delivered_up_to(5).await;
    assert_eq!(seen.delivered(), ["E:1", "E:2", "E:3", "E:4", "E:5"]);
}

#[tokio::test]
async fn a_gap_is_closed_with_1002_and_resumed_on_a_new_connection() {
    let (mut server, mut seen, mut c1) = started(1).await;
    send(&mut c1.ws, [m("E", 3)]).await;
    // The client closes with 1002 and reads no further.
    let close = tokio::time::timeout(LIMIT, c1.ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let WsMessage::Close(Some(frame)) = close else {
        panic!("expected a Close, got {close:?}")
    };
    assert_eq!(frame.code, CloseCode::Protocol);
    assert!(c1.ws.next().await.is_none_or(|r| r.is_err()));
    let Event::Reconnecting { wait, .. } = seen
        .until("reconnecting", |e| matches!(e, Event::Reconnecting { .. }))
        .await
    else {
        unreachable!()
    };
    assert_eq!(
        wait,
        Wait::Backoff { attempt: 0 },
        "backs off, as after 1006"
    );

    let mut c2 = server.next().await;
    assert_eq!(
        c2.query.as_deref(),
        Some("token=a%20b&wsdrain-resume=t@E.1")
    );
    send(
        &mut c2.ws,
        [control("resumed", "t", "E", 1), m("E", 2), m("E", 3)],
    )
    .await;
    seen.delivered_up_to(3).await;
    assert_eq!(seen.delivered(), ["E:1", "E:2", "E:3"]);
}

#[tokio::test]
async fn the_handover_on_the_notice_is_exactly_once() {
    let (mut server, mut seen, mut c1) = started(3).await;
    send(&mut c1.ws, [notice()]).await;
    let mut c2 = server.next().await;
    // The point as it was at the notice, behind the stream's first three.
    assert_eq!(
        c2.query.as_deref(),
        Some("token=a%20b&wsdrain-resume=t@E.3")
    );
    // Both connections carry the stream for a while: the old one live, the
    // new one a replay from the point, then live.
    send(&mut c1.ws, [m("E", 4), m("E", 5)]).await;
    send(
        &mut c2.ws,
        [
            control("resumed", "t", "E", 3),
            m("E", 4),
            m("E", 5),
            m("E", 6),
        ],
    )
    .await;
    send(&mut c1.ws, [m("E", 6), m("E", 7)]).await;
    seen.until(
        "the switch",
        |e| matches!(e, Event::Connected { connection } if connection.get() == 2),
    )
    .await;
    c1.ws
        .send(WsMessage::Close(Some(CloseFrame {
            code: CloseCode::Away,
            reason: "going away; retry-after-ms=1000".into(),
        })))
        .await
        .unwrap();
    send(&mut c2.ws, [m("E", 7), m("E", 8)]).await;
    seen.delivered_up_to(8).await;
    seen.until("the handover", |e| matches!(e, Event::Handover(_)))
        .await;
    assert_eq!(
        seen.delivered(),
        ["E:1", "E:2", "E:3", "E:4", "E:5", "E:6", "E:7", "E:8"]
    );
    send(&mut c2.ws, [m("E", 9)]).await;
    seen.delivered_up_to(9).await;
}

#[tokio::test]
async fn after_a_handover_to_a_new_epoch_the_old_connection_is_not_heard() {
    let (mut server, mut seen, mut c1) = started(2).await;
    send(&mut c1.ws, [notice()]).await;
    let mut c2 = server.next().await;
    // The new server lost the history: a new epoch, seqs from 1 again.
    send(
        &mut c2.ws,
        [
            WsMessage::text(
                "c\n{\"type\":\"wsdrain.resync\",\"stream\":\"t\",\"epoch\":\"F\",\"after\":0,\"reason\":\"epoch\"}",
            ),
            m("F", 1),
            m("F", 2),
        ],
    )
    .await;
    let Event::Resync(r) = seen
        .until("resync", |e| matches!(e, Event::Resync(_)))
        .await
    else {
        unreachable!()
    };
    assert_eq!(
        (r.connection.get(), r.reason, r.epoch.as_str(), r.after),
        (2, wsdrain::client::ResyncReason::Epoch, "F", 0)
    );
    seen.delivered_up_to(2).await;
    // The old server goes on in its epoch: seq 3 of E is not seq 3 of F.
    // The plain message after them shows the client has read them.
    send(
        &mut c1.ws,
        [m("E", 3), m("E", 4), WsMessage::text("p\nread up to here")],
    )
    .await;
    let marker = seen
        .until("the old connection's plain message", |e| {
            matches!(e, Event::Message { .. })
        })
        .await;
    assert!(
        matches!(&marker, Event::Message { connection, message } if connection.get() == 1 && *message == Message::text("read up to here")),
        "{marker:?}"
    );
    send(&mut c2.ws, [m("F", 3)]).await;
    seen.delivered_up_to(3).await;
    assert_eq!(seen.delivered(), ["E:1", "E:2", "F:1", "F:2", "F:3"]);
}

#[tokio::test]
async fn a_server_that_does_not_select_resume_is_served_plain() {
    let mut server = Scripted::start(false).await;
    let mut seen = client(&server.url());
    // The offer, which tungstenite ends when no subprotocol comes back...
    let mut offered = server.next().await;
    assert_eq!(offered.offered.as_deref(), Some(SUBPROTOCOL));
    assert!(offered.ws.next().await.is_none_or(|r| r.is_err()));
    // ...then the request as the application made it.
    let mut plain = server.next().await;
    assert_eq!(plain.offered, None);
    assert_eq!(plain.query.as_deref(), Some("token=a%20b"));
    let connected = next(&mut seen.events).await;
    assert!(
        matches!(connected, Event::Connected { .. }),
        "{connected:?}"
    );
    let declined = next(&mut seen.events).await;
    assert!(
        matches!(declined, Event::ResumeDeclined { .. }),
        "{declined:?}"
    );
    send(&mut plain.ws, [m("E", 1)]).await;
    match next(&mut seen.events).await {
        Event::Message { message, .. } => assert_eq!(message, m("E", 1)),
        other => panic!("expected the frame as it is, got {other:?}"),
    }
}
