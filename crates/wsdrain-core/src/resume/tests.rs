//! Resumable sessions on an in-memory transport, in paused time, read by a
//! client that applies the rules of docs/PROTOCOL.md.
#![allow(clippy::unwrap_used)]

use std::{
    collections::{HashMap, VecDeque},
    future::Future,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll, Waker},
    time::Duration,
};

use bytes::Bytes;
use futures_util::{Sink, Stream};
use tokio::{sync::Notify, task::JoinHandle};
use wsdrain_protocol::{
    CloseHint,
    resume::{Control, Frame, Position, ResyncReason, parse_frame},
};

use super::{
    Entry, Epoch, Feed, Followed, Head, Log, LogError, MemoryLog, Payload, Published, Read,
    ResumableSocket, ResumePoint, ResumeStack,
};
use crate::{
    DrainController, DrainPolicy,
    registry::SessionSignal,
    ws::{Stack, run},
};

// ---- the transport ----------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
enum Msg {
    Text(String),
    Binary(Bytes),
    Close(Option<(u16, String)>),
}

#[derive(Debug)]
struct WireError;

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("wire error")
    }
}

#[derive(Default)]
struct Wire {
    inbound: VecDeque<Msg>,
    peer_closed: bool,
    reader: Option<Waker>,
    /// Flushed by the server, in order.
    sent: Vec<Msg>,
    queued: Vec<Msg>,
    /// A client that does not read: the server's writes wait.
    stalled: bool,
    writer: Option<Waker>,
    dropped: bool,
}

/// The server's end.
struct Io(Arc<(Mutex<Wire>, Notify)>);

/// The client's end.
#[derive(Clone)]
struct Peer(Arc<(Mutex<Wire>, Notify)>);

fn wire() -> (Io, Peer) {
    let shared = Arc::new((Mutex::new(Wire::default()), Notify::new()));
    (Io(shared.clone()), Peer(shared))
}

impl Io {
    fn wire(&self) -> std::sync::MutexGuard<'_, Wire> {
        self.0.0.lock().unwrap()
    }
}

impl Drop for Io {
    fn drop(&mut self) {
        self.wire().dropped = true;
        self.0.1.notify_waiters();
    }
}

impl Stream for Io {
    type Item = Result<Msg, WireError>;
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut w = self.wire();
        match w.inbound.pop_front() {
            Some(m) => {
                // Like tungstenite: the stream ends after the peer's Close.
                w.peer_closed |= matches!(m, Msg::Close(_));
                Poll::Ready(Some(Ok(m)))
            }
            None if w.peer_closed => Poll::Ready(None),
            None => {
                w.reader = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl Sink<Msg> for Io {
    type Error = WireError;
    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WireError>> {
        let mut w = self.wire();
        if w.stalled && !w.queued.is_empty() {
            w.writer = Some(cx.waker().clone());
            return Poll::Pending;
        }
        Poll::Ready(Ok(()))
    }
    fn start_send(self: Pin<&mut Self>, m: Msg) -> Result<(), WireError> {
        self.wire().queued.push(m);
        Ok(())
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WireError>> {
        let mut w = self.wire();
        if w.stalled {
            w.writer = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let queued = std::mem::take(&mut w.queued);
        w.sent.extend(queued);
        drop(w);
        self.0.1.notify_waiters();
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WireError>> {
        self.poll_flush(cx)
    }
}

struct Mem;

impl Stack for Mem {
    type Socket = Io;
    type Message = Msg;
    type Error = WireError;
    fn close_frame(code: u16, reason: String) -> Msg {
        Msg::Close(Some((code, reason)))
    }
    fn text_frame(text: String) -> Msg {
        Msg::Text(text)
    }
    fn is_close(m: &Msg) -> bool {
        matches!(m, Msg::Close(_))
    }
}

impl ResumeStack for Mem {
    fn data_frame(data: Bytes, text: bool) -> Msg {
        if text {
            Msg::Text(String::from_utf8(data.to_vec()).unwrap())
        } else {
            Msg::Binary(data)
        }
    }
}

impl Peer {
    fn wire(&self) -> std::sync::MutexGuard<'_, Wire> {
        self.0.0.lock().unwrap()
    }
    fn send(&self, m: Msg) {
        let mut w = self.wire();
        w.inbound.push_back(m);
        if let Some(r) = w.reader.take() {
            r.wake();
        }
    }
    fn sent(&self) -> Vec<Msg> {
        self.wire().sent.clone()
    }
    fn stall(&self, stalled: bool) {
        let mut w = self.wire();
        w.stalled = stalled;
        if let Some(r) = w.writer.take() {
            r.wake();
        }
    }
    /// Waits until `cond` holds (no clock moves while anything can run).
    async fn until(&self, mut cond: impl FnMut(&Peer) -> bool) {
        loop {
            let changed = self.0.1.notified();
            let mut changed = std::pin::pin!(changed);
            changed.as_mut().enable();
            if cond(self) {
                return;
            }
            changed.await;
        }
    }
}

// ---- a log that can fail ----------------------------------------------------

/// [`MemoryLog`] with switches that make its store fail, or answer reads
/// after other tasks ran (as a store across the network does).
#[derive(Default)]
struct Flaky {
    log: MemoryLog,
    fail_append: AtomicBool,
    fail_read: AtomicBool,
    slow_read: AtomicBool,
    /// Holds the next read's answer (taken before the hold) until released.
    hold: Mutex<Option<tokio::sync::oneshot::Receiver<()>>>,
    holding: Notify,
}

impl Flaky {
    async fn wait(&self) {
        if self.slow_read.load(Ordering::SeqCst) {
            for _ in 0..3 {
                tokio::task::yield_now().await;
            }
        }
    }
}

fn down() -> LogError {
    LogError::store("store down")
}

impl Log for Flaky {
    async fn append(&self, stream: &str, payload: &Payload) -> Result<Entry, LogError> {
        if self.fail_append.load(Ordering::SeqCst) {
            return Err(down());
        }
        self.log.append(stream, payload).await
    }
    async fn read(
        &self,
        stream: &str,
        epoch: &Epoch,
        after: u64,
        max: usize,
    ) -> Result<Read, LogError> {
        self.wait().await;
        if self.fail_read.load(Ordering::SeqCst) {
            return Err(down());
        }
        let read = self.log.read(stream, epoch, after, max).await;
        let hold = self.hold.lock().unwrap().take();
        if let Some(release) = hold {
            self.holding.notify_one();
            let _ = release.await;
        }
        read
    }
    async fn head(&self, stream: &str) -> Result<Head, LogError> {
        self.wait().await;
        if self.fail_read.load(Ordering::SeqCst) {
            return Err(down());
        }
        self.log.head(stream).await
    }
}

// ---- the client -------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    Fresh(String),
    Resumed(String),
    Resync(String, ResyncReason),
    Reconnect,
    Plain(String),
}

struct StreamState {
    epoch: String,
    last: u64,
    owner: usize,
}

/// A client that applies the rules of docs/PROTOCOL.md to what its
/// connections receive, and records what it delivers.
#[derive(Default)]
struct Client {
    streams: HashMap<String, StreamState>,
    /// Delivered messages, per stream: the payloads in order.
    delivered: HashMap<String, Vec<String>>,
    events: Vec<Event>,
    /// Messages the rules dropped (overlap, or another connection's).
    dropped: usize,
    /// Per connection, how many frames were read.
    read: HashMap<usize, usize>,
}

impl Client {
    fn point(&self) -> ResumePoint {
        let mut positions: Vec<Position> = self
            .streams
            .iter()
            .map(|(s, st)| Position::new(s.clone(), st.epoch.clone(), st.last).unwrap())
            .collect();
        positions.sort_by(|a, b| a.stream().cmp(b.stream()));
        ResumePoint::offered_with(positions)
    }

    fn delivered(&self, stream: &str) -> Vec<String> {
        self.delivered.get(stream).cloned().unwrap_or_default()
    }

    /// Applies every frame of connection `conn` not read yet.
    fn take(&mut self, conn: usize, peer: &Peer) {
        let sent = peer.sent();
        let from = self.read.get(&conn).copied().unwrap_or(0);
        for m in &sent[from..] {
            self.apply(conn, m);
        }
        self.read.insert(conn, sent.len());
    }

    fn apply(&mut self, conn: usize, m: &Msg) {
        let data: &[u8] = match m {
            Msg::Text(t) => t.as_bytes(),
            Msg::Binary(b) => b,
            Msg::Close(_) => return,
        };
        match parse_frame(data).unwrap() {
            Frame::Plain(p) => self
                .events
                .push(Event::Plain(String::from_utf8_lossy(p).into())),
            Frame::Control(Control::Reconnect { .. }) => self.events.push(Event::Reconnect),
            Frame::Control(c) => {
                let Some(at) = c.position() else { return };
                let stream = at.stream().to_owned();
                let st = self.streams.get_mut(&stream);
                if st.as_ref().is_some_and(|s| conn < s.owner) {
                    return;
                }
                let event = match (&c, st) {
                    (_, None) => {
                        self.streams.insert(
                            stream.clone(),
                            StreamState {
                                epoch: at.epoch().into(),
                                last: at.seq(),
                                owner: conn,
                            },
                        );
                        match c {
                            Control::Resync(_, r) => Event::Resync(stream, r),
                            Control::Resumed(_) => Event::Resumed(stream),
                            _ => Event::Fresh(stream),
                        }
                    }
                    (_, Some(s)) if s.epoch == at.epoch() && at.seq() <= s.last => {
                        s.owner = conn;
                        Event::Resumed(stream)
                    }
                    (c, Some(s)) => {
                        *s = StreamState {
                            epoch: at.epoch().into(),
                            last: at.seq(),
                            owner: conn,
                        };
                        let reason = match c {
                            Control::Resync(_, r) => *r,
                            _ => ResyncReason::Other,
                        };
                        Event::Resync(stream, reason)
                    }
                };
                self.events.push(event);
            }
            Frame::Message {
                stream,
                seq,
                payload,
            } => {
                let s = self
                    .streams
                    .get_mut(stream)
                    .unwrap_or_else(|| panic!("message of {stream} before its control"));
                if s.owner != conn || seq <= s.last {
                    self.dropped += 1;
                    return;
                }
                assert_eq!(seq, s.last + 1, "a hole in {stream} on connection {conn}");
                s.last = seq;
                self.delivered
                    .entry(stream.to_owned())
                    .or_default()
                    .push(String::from_utf8_lossy(payload).into());
            }
        }
    }
}

impl Client {
    /// A client that stands at `last` of `stream`'s `epoch`.
    fn at(stream: &str, epoch: &Epoch, last: u64) -> Client {
        let mut client = Client::default();
        client.streams.insert(
            stream.into(),
            StreamState {
                epoch: epoch.to_string(),
                last,
                owner: 0,
            },
        );
        client
    }

    /// A client with no state that read all of one connection.
    fn of(peer: &Peer) -> Client {
        let mut client = Client::default();
        client.take(1, peer);
        client
    }
}

fn fresh(stream: &str) -> Event {
    Event::Fresh(stream.into())
}

fn resumed(stream: &str) -> Event {
    Event::Resumed(stream.into())
}

fn resync(stream: &str, reason: ResyncReason) -> Event {
    Event::Resync(stream.into(), reason)
}

impl Peer {
    /// Waits until the last frame sent is `m <stream> <n>\n<n>`.
    async fn until_message(&self, stream: &str, n: u64) {
        let last = Msg::Text(format!("m {stream} {n}\n{n}"));
        self.until(|p| p.sent().last() == Some(&last)).await;
    }
}

// ---- the harness --------------------------------------------------------------

const HINT: u64 = 1500;

struct Server<L: Log> {
    controller: DrainController,
    feed: Feed<L>,
}

fn policy(lead: Duration) -> DrainPolicy {
    DrainPolicy::builder()
        .drain_delay(Duration::ZERO)
        .close_window(Duration::from_secs(1))
        .close_timeout(Duration::from_secs(2))
        .notice_lead(lead)
        .grace_period(Duration::from_secs(30))
        .kubernetes(false)
        .build()
        .unwrap()
}

fn server<L: Log>(feed: Feed<L>) -> Server<L> {
    Server {
        controller: DrainController::new(policy(Duration::ZERO)),
        feed,
    }
}

fn memory_feed() -> Feed<MemoryLog> {
    Feed::new(MemoryLog::new())
}

/// A connection: the client's end, its session's turn, its task.
struct Conn {
    peer: Peer,
    turn: Arc<SessionSignal>,
    task: JoinHandle<()>,
}

impl<L: Log> Server<L> {
    /// Opens a session whose handler gets the resumable socket.
    fn open<F, Fut>(&self, point: ResumePoint, handler: F) -> Conn
    where
        F: FnOnce(ResumableSocket<Mem, L>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (io, peer) = wire();
        let guard = self.controller.drain().register_session().unwrap();
        let turn = guard.signal.clone();
        let feed = self.feed.clone();
        let task = tokio::spawn(run::<Mem, _, _>(io, guard, move |socket| {
            handler(ResumableSocket::new(socket, feed, point))
        }));
        Conn { peer, turn, task }
    }

    /// Opens a session that follows `streams`, then only delivers.
    fn follow(&self, point: ResumePoint, streams: &[&str]) -> Conn {
        let streams: Vec<String> = streams.iter().map(|s| (*s).to_owned()).collect();
        self.open(point, move |mut socket| async move {
            for s in &streams {
                socket.follow(s).await.unwrap();
            }
            socket.run().await;
        })
    }

    async fn publish(&self, stream: &str, n: u64) -> Published {
        self.feed.publish(stream, n.to_string()).await.unwrap()
    }

    async fn publish_range(&self, stream: &str, range: std::ops::RangeInclusive<u64>) {
        for n in range {
            self.publish(stream, n).await;
        }
    }
}

/// Lets every runnable task run, without moving the paused clock.
async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}

fn numbers(range: std::ops::RangeInclusive<u64>) -> Vec<String> {
    range.map(|n| n.to_string()).collect()
}

async fn epoch_of<L: Log>(feed: &Feed<L>, stream: &str) -> Epoch {
    feed.head(stream).await.unwrap().epoch
}

fn at(stream: &str, epoch: &str, seq: u64) -> ResumePoint {
    ResumePoint::offered_with(vec![Position::new(stream, epoch, seq).unwrap()])
}

// ---- the tests ----------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn fresh_then_live() {
    let s = server(memory_feed());
    s.publish_range("a", 1..=3).await;
    let conn = s.follow(ResumePoint::offered_with(vec![]), &["a"]);
    settle().await;
    s.publish_range("a", 4..=6).await;
    settle().await;
    let client = Client::of(&conn.peer);
    assert_eq!(client.events, [fresh("a")]);
    // A fresh start replays nothing: it starts after the head.
    assert_eq!(client.delivered("a"), numbers(4..=6));
    let first = &conn.peer.sent()[0];
    let Msg::Text(control) = first else {
        panic!("{first:?}")
    };
    let epoch = epoch_of(&s.feed, "a").await;
    assert_eq!(
        control,
        &format!(
            "c\n{{\"type\":\"wsdrain.follow\",\"stream\":\"a\",\"epoch\":\"{epoch}\",\"after\":3}}"
        )
    );
}

#[tokio::test(start_paused = true)]
async fn resume_from_the_middle() {
    let s = server(memory_feed());
    s.publish_range("a", 1..=10).await;
    let epoch = epoch_of(&s.feed, "a").await;
    let conn = s.follow(at("a", epoch.as_str(), 4), &["a"]);
    settle().await;
    s.publish_range("a", 11..=12).await;
    settle().await;
    let mut client = Client::at("a", &epoch, 4);
    client.take(1, &conn.peer);
    assert_eq!(client.events, [resumed("a")]);
    assert_eq!(client.delivered("a"), numbers(5..=12));
    assert_eq!(
        client.dropped, 0,
        "replay and live do not overlap on the wire"
    );
}

#[tokio::test(start_paused = true)]
async fn resume_from_before_the_logs_start_is_a_resync() {
    let s = server(Feed::new(
        MemoryLog::builder().max_entries(5).build().unwrap(),
    ));
    s.publish_range("a", 1..=20).await;
    let epoch = epoch_of(&s.feed, "a").await;
    // 1..=15 are trimmed, 16..=20 kept: a client at 15 can be replayed.
    for (after, expect) in [
        (3, Some(ResyncReason::Expired)),
        (14, Some(ResyncReason::Expired)),
        (15, None),
    ] {
        let conn = s.follow(at("a", epoch.as_str(), after), &["a"]);
        settle().await;
        let c = Client::of(&conn.peer);
        match expect {
            Some(reason) => {
                assert_eq!(c.events, [resync("a", reason)], "after {after}");
                assert_eq!(c.streams["a"].last, 20, "resynced to the head");
                assert!(c.delivered("a").is_empty());
            }
            None => {
                assert_eq!(c.events, [resumed("a")]);
                assert_eq!(c.delivered("a"), numbers(16..=20));
            }
        }
        conn.task.abort();
    }
}

#[tokio::test(start_paused = true)]
async fn unknown_stream_and_a_position_ahead_are_resyncs() {
    let s = server(memory_feed());
    s.publish_range("a", 1..=10).await;
    let epoch = epoch_of(&s.feed, "a").await;
    let point = ResumePoint::offered_with(vec![
        Position::new("a", epoch.as_str(), 99).unwrap(),
        Position::new("never", "Zz9", 7).unwrap(),
    ]);
    let conn = s.follow(point, &["a", "never"]);
    settle().await;
    s.publish("never", 1).await;
    settle().await;
    let client = Client::of(&conn.peer);
    assert_eq!(
        client.events,
        [
            resync("a", ResyncReason::Unknown),
            resync("never", ResyncReason::Unknown),
        ]
    );
    assert_eq!(client.streams["a"].last, 10);
    assert_eq!(
        client.delivered("never"),
        ["1"],
        "its first message follows 0"
    );
}

#[tokio::test(start_paused = true)]
async fn an_old_epoch_is_a_resync() {
    let s = server(memory_feed());
    s.publish_range("a", 1..=3).await;
    let conn = s.follow(at("a", "OldEpoch", 2), &["a"]);
    settle().await;
    let client = Client::of(&conn.peer);
    assert_eq!(client.events, [resync("a", ResyncReason::Epoch)]);
    assert_eq!(client.streams["a"].last, 3);
}

#[tokio::test(start_paused = true)]
async fn an_epoch_change_while_live_is_a_resync() {
    // One stream with a history at most: a publish to `b` evicts `a`'s,
    // and `a` starts again in a new epoch.
    let s = server(Feed::new(
        MemoryLog::builder().max_streams(1).build().unwrap(),
    ));
    s.publish_range("a", 1..=2).await;
    let conn = s.follow(ResumePoint::offered_with(vec![]), &["a"]);
    settle().await;
    s.publish("a", 3).await;
    s.publish("b", 1).await;
    s.publish("a", 4).await;
    settle().await;
    let client = Client::of(&conn.peer);
    assert_eq!(
        client.events,
        [fresh("a"), resync("a", ResyncReason::Epoch)]
    );
    assert_eq!(client.delivered("a"), ["3", "4"]);
    assert_eq!(
        client.streams["a"].epoch,
        epoch_of(&s.feed, "a").await.as_str()
    );
    assert_eq!(client.streams["a"].last, 1);
}

#[tokio::test(start_paused = true)]
async fn no_hole_between_replay_and_live_while_messages_keep_arriving() {
    // Small batches, a small channel, and reads that let the publisher run:
    // the replay takes several reads, messages arrive during each, and the
    // live channel overtakes the session while it replays.
    let log = Flaky::default();
    log.slow_read.store(true, Ordering::SeqCst);
    let feed = Feed::builder(log)
        .replay_batch(3)
        .hub_capacity(4)
        .build()
        .unwrap();
    let s = Arc::new(server(feed));
    s.publish_range("a", 1..=50).await;
    let epoch = epoch_of(&s.feed, "a").await;
    let publisher = tokio::spawn({
        let s = s.clone();
        async move {
            for n in 51..=300 {
                s.publish("a", n).await;
                if n % 3 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        }
    });
    let conn = s.follow(at("a", epoch.as_str(), 7), &["a"]);
    publisher.await.unwrap();
    let mut client = Client::at("a", &epoch, 7);
    conn.peer.until_message("a", 300).await;
    client.take(1, &conn.peer);
    assert_eq!(client.events, [resumed("a")]);
    assert_eq!(client.delivered("a"), numbers(8..=300));
}

#[tokio::test(start_paused = true)]
async fn messages_published_while_the_replay_is_read_are_not_lost() {
    // The last messages before a quiet spell arrive while the log's answer
    // travels back: only the channel, taken before the read, has them.
    let s = server(Feed::new(Flaky::default()));
    s.publish_range("a", 1..=20).await;
    let epoch = epoch_of(&s.feed, "a").await;
    let (release, hold) = tokio::sync::oneshot::channel();
    *s.feed.log().hold.lock().unwrap() = Some(hold);
    let conn = s.follow(at("a", epoch.as_str(), 7), &["a"]);
    s.feed.log().holding.notified().await;
    s.publish_range("a", 21..=25).await;
    release.send(()).unwrap();
    let arrived = conn.peer.until_message("a", 25);
    tokio::time::timeout(Duration::from_secs(10), arrived)
        .await
        .expect("every message arrives");
    let mut client = Client::at("a", &epoch, 7);
    client.take(1, &conn.peer);
    assert_eq!(client.delivered("a"), numbers(8..=25));
}

#[tokio::test(start_paused = true)]
async fn no_duplicate_across_a_handover() {
    // The drain notice on the old connection; the client opens the new one
    // with its point while both keep receiving.
    let feed = memory_feed();
    let old_server = Server {
        controller: DrainController::new(policy(Duration::from_secs(1))),
        feed: feed.clone(),
    };
    let new_server = server(feed);
    let mut client = Client::default();
    let old = old_server.follow(ResumePoint::offered_with(vec![]), &["a"]);
    settle().await;
    old_server.publish_range("a", 1..=5).await;
    settle().await;
    client.take(1, &old.peer);
    old.turn.fire(CloseHint::from_millis(HINT));
    old.peer
        .until(|p| p.sent().iter().any(|m| matches!(m, Msg::Text(t) if t.starts_with("c\n{\"type\":\"wsdrain.reconnect\""))))
        .await;
    old_server.publish_range("a", 6..=8).await;
    settle().await;
    client.take(1, &old.peer);
    assert_eq!(client.events.last(), Some(&Event::Reconnect));
    let point = client.point();
    assert_eq!(point.get("a").unwrap().seq(), 8);
    // The old connection delivers 9..=10 before the new one's control is
    // read: the new one replays them, the client drops them.
    old_server.publish_range("a", 9..=10).await;
    let new = new_server.follow(point, &["a"]);
    settle().await;
    new_server.publish_range("a", 11..=15).await;
    settle().await;
    client.take(1, &old.peer);
    client.take(2, &new.peer);
    new_server.publish_range("a", 16..=18).await;
    settle().await;
    // The old connection's frames arrive last: all dropped, it is no owner.
    client.take(2, &new.peer);
    client.take(1, &old.peer);
    assert_eq!(client.delivered("a"), numbers(1..=18));
    assert!(
        client.dropped >= 2 + 8,
        "the overlap was on the wire: {}",
        client.dropped
    );
    assert_eq!(client.events, [fresh("a"), Event::Reconnect, resumed("a")]);
    // The old one closes after its lead.
    tokio::time::sleep(Duration::from_secs(1)).await;
    old.peer
        .until(|p| p.sent().iter().any(|m| matches!(m, Msg::Close(_))))
        .await;
    old.peer.send(Msg::Close(None));
    old.task.await.unwrap();
}

/// A session whose client stops reading while 2..=60 are published (the
/// channel holds 4), then reads again, and 61 follows: what it got.
async fn lagging(log: MemoryLog) -> Client {
    let s = server(Feed::builder(log).hub_capacity(4).build().unwrap());
    let conn = s.follow(ResumePoint::offered_with(vec![]), &["a"]);
    settle().await;
    s.publish("a", 1).await;
    settle().await;
    conn.peer.stall(true);
    s.publish_range("a", 2..=60).await;
    settle().await;
    conn.peer.stall(false);
    settle().await;
    s.publish("a", 61).await;
    conn.peer.until_message("a", 61).await;
    Client::of(&conn.peer)
}

#[tokio::test(start_paused = true)]
async fn a_lagging_session_recovers_from_the_log() {
    let client = lagging(MemoryLog::new()).await;
    assert_eq!(client.delivered("a"), numbers(1..=61));
    assert_eq!(client.events, [fresh("a")]);
}

#[tokio::test(start_paused = true)]
async fn a_session_that_lags_past_the_log_resyncs() {
    let client = lagging(MemoryLog::builder().max_entries(10).build().unwrap()).await;
    assert_eq!(
        client.events,
        [fresh("a"), resync("a", ResyncReason::Expired)]
    );
    assert_eq!(client.delivered("a"), ["1", "61"]);
}

#[tokio::test(start_paused = true)]
async fn the_memory_log_is_bounded_by_count_bytes_and_streams() {
    let log = MemoryLog::builder()
        .max_entries(10)
        .max_bytes(8 * 1024)
        .max_streams(3)
        .build()
        .unwrap();
    // About 404 B each with the overhead: 20 fit in 8 KiB.
    let payload = Payload::text("x".repeat(300));
    for _ in 0..50 {
        log.append("a", &payload).await.unwrap();
    }
    assert_eq!(log.len(), 10, "count bound per stream");
    let head = log.head("a").await.unwrap();
    assert_eq!((head.first, head.last), (41, 50));
    for s in ["b", "c"] {
        for _ in 0..50 {
            log.append(s, &payload).await.unwrap();
        }
    }
    assert!(log.bytes() <= 8 * 1024, "byte bound: {}", log.bytes());
    assert!(
        log.len() < 30,
        "the oldest entries went first: {}",
        log.len()
    );
    // The oldest across streams went: `a`'s.
    let a = log.head("a").await.unwrap();
    assert!(a.first > 41, "{a:?}");
    assert_eq!(log.streams(), 3);
    log.append("d", &payload).await.unwrap();
    assert_eq!(log.streams(), 3, "the least recently used stream went");
    // `b` was the least recently used: its history is gone, a new epoch
    // begins.
    let b_epoch = log.head("b").await.unwrap();
    assert_eq!((b_epoch.first, b_epoch.last), (1, 0));
    assert!(matches!(
        log.append("a", &Payload::binary(vec![0; 9000])).await,
        Err(LogError::TooLarge { .. })
    ));
    // Many appends: the bookkeeping of the byte bound stays proportional.
    for i in 0..10_000 {
        log.append(["a", "c", "d"][i % 3], &payload).await.unwrap();
    }
    assert!(log.bytes() <= 8 * 1024);
    assert!(log.queued() <= 2 * log.len() + 64);
}

#[tokio::test(start_paused = true)]
async fn bad_settings_name_themselves() {
    let e = MemoryLog::builder().max_entries(0).build().unwrap_err();
    assert_eq!(
        e.to_string(),
        "max_entries: 0 is outside 1..=18446744073709551615"
    );
    assert_eq!(
        MemoryLog::builder()
            .max_bytes(10)
            .build()
            .unwrap_err()
            .setting(),
        "max_bytes"
    );
    let e = Feed::builder(MemoryLog::new())
        .hub_capacity(0)
        .build()
        .unwrap_err();
    assert_eq!(e.setting(), "hub_capacity");
    let e = Feed::builder(MemoryLog::new())
        .replay_batch(0)
        .build()
        .unwrap_err();
    assert_eq!(e.setting(), "replay_batch");
}

#[tokio::test(start_paused = true)]
async fn a_client_that_did_not_offer_gets_plain_frames() {
    let s = Server {
        controller: DrainController::new(policy(Duration::from_secs(1))),
        feed: memory_feed(),
    };
    let conn = s.open(ResumePoint::default(), |mut socket| async move {
        assert!(!socket.framed());
        assert_eq!(socket.follow("a").await.unwrap(), Followed::Fresh);
        socket.send("hello").await.unwrap();
        socket.run().await;
    });
    settle().await;
    s.feed
        .publish("a", Payload::binary(vec![1, 2]))
        .await
        .unwrap();
    s.feed.publish("a", "two").await.unwrap();
    settle().await;
    conn.turn.fire(CloseHint::from_millis(HINT));
    settle().await;
    assert_eq!(
        conn.peer.sent(),
        [
            Msg::Text("hello".into()),
            Msg::Binary(Bytes::from_static(&[1, 2])),
            Msg::Text("two".into()),
            Msg::Text(r#"{"type":"wsdrain.reconnect","close_in_ms":1000}"#.into()),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn framed_frames_keep_their_kind_and_plain_messages_are_p() {
    let s = server(memory_feed());
    let conn = s.open(ResumePoint::offered_with(vec![]), |mut socket| async move {
        socket.follow("a").await.unwrap();
        socket.send(Payload::binary(vec![0xff])).await.unwrap();
        socket.run().await;
    });
    settle().await;
    s.feed
        .publish("a", Payload::binary(vec![0, 1]))
        .await
        .unwrap();
    settle().await;
    let sent = conn.peer.sent();
    assert_eq!(sent[1], Msg::Binary(Bytes::from_static(b"p\n\xff")));
    assert_eq!(sent[2], Msg::Binary(Bytes::from_static(b"m a 1\n\x00\x01")));
}

#[tokio::test(start_paused = true)]
async fn the_drain_notice_is_a_control_on_framed_connections() {
    let s = Server {
        controller: DrainController::new(policy(Duration::from_millis(2500))),
        feed: memory_feed(),
    };
    let conn = s.follow(ResumePoint::offered_with(vec![]), &[]);
    settle().await;
    conn.turn.fire(CloseHint::from_millis(HINT));
    settle().await;
    assert_eq!(
        conn.peer.sent(),
        [Msg::Text(
            "c\n{\"type\":\"wsdrain.reconnect\",\"close_in_ms\":2500}".into()
        )]
    );
}

#[tokio::test(start_paused = true)]
async fn follow_checks_its_stream() {
    let s = server(memory_feed());
    let (tx, rx) = tokio::sync::oneshot::channel();
    let _conn = s.open(ResumePoint::offered_with(vec![]), |mut socket| async move {
        let bad = socket.follow("a b").await.unwrap_err().to_string();
        socket.follow("a").await.unwrap();
        let twice = socket.follow("a").await.unwrap_err().to_string();
        let _ = tx.send((bad, twice));
        socket.run().await;
    });
    let (bad, twice) = rx.await.unwrap();
    assert_eq!(
        bad,
        "cannot follow: stream name with the character ' ' (allowed: [A-Za-z0-9_.:/-])"
    );
    assert_eq!(twice, "cannot follow: followed already");
}

#[tokio::test(start_paused = true)]
async fn sessions_leave_the_hub_when_they_end() {
    let s = server(memory_feed());
    let one = s.follow(ResumePoint::offered_with(vec![]), &["a", "b"]);
    let two = s.follow(ResumePoint::offered_with(vec![]), &["a"]);
    settle().await;
    assert_eq!(s.feed.followed_here(), 2);
    one.peer.send(Msg::Close(None));
    one.task.await.unwrap();
    assert_eq!(s.feed.followed_here(), 1, "`a` is still followed");
    let unfollow = s.open(ResumePoint::offered_with(vec![]), |mut socket| async move {
        socket.follow("c").await.unwrap();
        assert!(socket.unfollow("c"));
        assert!(!socket.unfollow("c"));
        socket.run().await;
    });
    settle().await;
    assert_eq!(s.feed.followed_here(), 1);
    two.peer.send(Msg::Close(None));
    two.task.await.unwrap();
    assert_eq!(s.feed.followed_here(), 0);
    unfollow.task.abort();
}

#[tokio::test(start_paused = true)]
async fn a_store_down_at_publish_goes_on_live_outside_the_log() {
    let s = server(Feed::new(Flaky::default()));
    let conn = s.follow(ResumePoint::offered_with(vec![]), &["a"]);
    settle().await;
    s.publish_range("a", 1..=2).await;
    let log_epoch = epoch_of(&s.feed, "a").await;
    s.feed.log().fail_append.store(true, Ordering::SeqCst);
    assert_eq!(s.publish("a", 3).await, Published::Unlogged);
    assert_eq!(s.publish("a", 4).await, Published::Unlogged);
    s.feed.log().fail_append.store(false, Ordering::SeqCst);
    s.publish_range("a", 5..=6).await;
    settle().await;
    let client = Client::of(&conn.peer);
    assert_eq!(
        client.delivered("a"),
        numbers(1..=6),
        "live delivery went on"
    );
    assert_eq!(
        client.events,
        [
            fresh("a"),
            resync("a", ResyncReason::Unavailable),
            resync("a", ResyncReason::Unavailable),
        ]
    );
    assert_eq!(client.streams["a"].epoch, log_epoch.as_str());
    // A client that resumes from the epoch outside the log learns it.
    let later = s.follow(at("a", "Outside", 2), &["a"]);
    settle().await;
    let c = Client::of(&later.peer);
    assert_eq!(c.events, [resync("a", ResyncReason::Epoch)]);
}

#[tokio::test(start_paused = true)]
async fn a_store_down_at_resume_is_a_resync_and_live_goes_on() {
    let s = server(Feed::new(Flaky::default()));
    let watcher = s.follow(ResumePoint::offered_with(vec![]), &["a"]);
    settle().await;
    s.publish_range("a", 1..=10).await;
    settle().await;
    let epoch = epoch_of(&s.feed, "a").await;
    s.feed.log().fail_read.store(true, Ordering::SeqCst);
    // Behind: cannot be filled.
    let behind = s.follow(at("a", epoch.as_str(), 4), &["a"]);
    // Exactly where this process's live channel stands: nothing to fill.
    let current = s.follow(at("a", epoch.as_str(), 10), &["a"]);
    settle().await;
    s.publish("a", 11).await;
    settle().await;
    let c = Client::of(&behind.peer);
    assert_eq!(c.events, [resync("a", ResyncReason::Unavailable)]);
    assert_eq!(c.delivered("a"), ["11"]);
    let c = Client::of(&current.peer);
    assert_eq!(c.events, [resumed("a")]);
    assert_eq!(c.delivered("a"), ["11"]);
    // A gap while the store is down (the watcher lags) cannot be filled.
    watcher.peer.stall(true);
    for n in 12..=200 {
        s.publish("a", n).await;
    }
    settle().await;
    watcher.peer.stall(false);
    settle().await;
    s.publish("a", 201).await;
    watcher.peer.until_message("a", 201).await;
    let c = Client::of(&watcher.peer);
    assert_eq!(
        c.events,
        [fresh("a"), resync("a", ResyncReason::Unavailable)]
    );
    assert_eq!(c.delivered("a").first().map(String::as_str), Some("1"));
    assert_eq!(c.delivered("a").last().map(String::as_str), Some("201"));
}

#[tokio::test(start_paused = true)]
async fn a_gap_the_store_cannot_fill_resyncs_at_the_entry_that_showed_it() {
    let s = server(Feed::new(Flaky::default()));
    let conn = s.follow(ResumePoint::offered_with(vec![]), &["a"]);
    settle().await;
    s.publish("a", 1).await;
    settle().await;
    // 2 reaches the log but not the hub (as when a tail lags); 3 shows
    // the gap, and the log cannot be read.
    s.feed
        .log()
        .log
        .append("a", &Payload::text("2"))
        .await
        .unwrap();
    s.feed.log().fail_read.store(true, Ordering::SeqCst);
    s.publish("a", 3).await;
    settle().await;
    let mut c = Client::of(&conn.peer);
    assert_eq!(
        c.events,
        [fresh("a"), resync("a", ResyncReason::Unavailable)]
    );
    assert_eq!(c.delivered("a"), ["1", "3"]);
    // With the store back, such a gap is filled.
    s.feed.log().fail_read.store(false, Ordering::SeqCst);
    s.feed
        .log()
        .log
        .append("a", &Payload::text("4"))
        .await
        .unwrap();
    s.publish("a", 5).await;
    settle().await;
    c.take(1, &conn.peer);
    assert_eq!(c.delivered("a"), ["1", "3", "4", "5"]);
}
