//! The session state machine on an in-memory transport, in paused time.
#![allow(clippy::unwrap_used)]

use std::{
    collections::VecDeque,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll, Waker},
    time::Duration,
};

use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio::{
    sync::Notify,
    task::JoinHandle,
    time::{Instant, sleep},
};
use wsdrain_protocol::CloseHint;

use super::{Error, Socket, Stack, run};
use crate::{DrainController, DrainPolicy, SessionGuard, SessionOutcome};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Msg {
    Text(String),
    Close(Option<(u16, String)>),
}

fn text(s: &str) -> Msg {
    Msg::Text(s.into())
}

#[derive(Debug, PartialEq, Eq)]
struct WireError;

#[derive(Default)]
struct Wire {
    /// Peer → server.
    inbound: VecDeque<Msg>,
    /// The peer hung up (end of stream once `inbound` is empty).
    eof: bool,
    read_waker: Option<Waker>,
    /// Server → peer, flushed.
    sent: Vec<Msg>,
    /// Started, not yet flushed.
    queued: Vec<Msg>,
    /// Writes wait while set (a peer that stops reading).
    blocked: bool,
    write_waker: Option<Waker>,
    /// The server dropped the connection.
    dropped: bool,
}

/// One end of an in-memory WebSocket: the server's socket.
struct MemSocket {
    wire: Arc<Mutex<Wire>>,
    changed: Arc<Notify>,
}

/// The other end, driven by the test.
#[derive(Clone)]
struct Peer {
    wire: Arc<Mutex<Wire>>,
    changed: Arc<Notify>,
}

impl Drop for MemSocket {
    fn drop(&mut self) {
        self.wire.lock().unwrap().dropped = true;
        self.changed.notify_waiters();
    }
}

impl Stream for MemSocket {
    type Item = Result<Msg, WireError>;
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut w = self.wire.lock().unwrap();
        match w.inbound.pop_front() {
            Some(m) => Poll::Ready(Some(Ok(m))),
            None if w.eof => Poll::Ready(None),
            None => {
                w.read_waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl Sink<Msg> for MemSocket {
    type Error = WireError;
    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WireError>> {
        let mut w = self.wire.lock().unwrap();
        if w.blocked {
            w.write_waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        Poll::Ready(Ok(()))
    }
    fn start_send(self: Pin<&mut Self>, item: Msg) -> Result<(), WireError> {
        self.wire.lock().unwrap().queued.push(item);
        Ok(())
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WireError>> {
        let mut w = self.wire.lock().unwrap();
        if w.blocked {
            w.write_waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let queued = std::mem::take(&mut w.queued);
        w.sent.extend(queued);
        drop(w);
        self.changed.notify_waiters();
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WireError>> {
        self.poll_flush(cx)
    }
}

struct Mem;

impl Stack for Mem {
    type Socket = MemSocket;
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

impl Peer {
    fn send(&self, m: Msg) {
        let mut w = self.wire.lock().unwrap();
        w.inbound.push_back(m);
        if let Some(waker) = w.read_waker.take() {
            waker.wake();
        }
    }
    fn hang_up(&self) {
        let mut w = self.wire.lock().unwrap();
        w.eof = true;
        if let Some(waker) = w.read_waker.take() {
            waker.wake();
        }
    }
    fn block_writes(&self, blocked: bool) {
        let mut w = self.wire.lock().unwrap();
        w.blocked = blocked;
        if !blocked && let Some(waker) = w.write_waker.take() {
            waker.wake();
        }
    }
    fn sent(&self) -> Vec<Msg> {
        self.wire.lock().unwrap().sent.clone()
    }
    fn dropped(&self) -> bool {
        self.wire.lock().unwrap().dropped
    }
    /// The drain's Close, once it was flushed.
    fn close(&self) -> Option<(u16, String)> {
        self.sent().into_iter().find_map(|m| match m {
            Msg::Close(Some(c)) => Some(c),
            _ => None,
        })
    }
    /// Waits (in paused time, without advancing the clock while anything
    /// can run) until `cond` holds.
    async fn until(&self, mut cond: impl FnMut(&Peer) -> bool) {
        loop {
            let changed = self.changed.notified();
            let mut changed = std::pin::pin!(changed);
            changed.as_mut().enable();
            if cond(self) {
                return;
            }
            changed.await;
        }
    }
}

const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
const HINT: u64 = 2345;

struct Harness {
    controller: DrainController,
    peer: Peer,
}

impl Harness {
    fn new() -> (Harness, MemSocket, SessionGuard) {
        Harness::with_notice(Duration::ZERO)
    }

    fn with_notice(lead: Duration) -> (Harness, MemSocket, SessionGuard) {
        let policy = DrainPolicy::builder()
            .drain_delay(Duration::ZERO)
            .close_window(Duration::from_secs(1))
            .close_timeout(CLOSE_TIMEOUT)
            .notice_lead(lead)
            .grace_period(Duration::from_secs(30))
            .kubernetes(false)
            .build()
            .unwrap();
        let controller = DrainController::new(policy);
        let wire = Arc::new(Mutex::new(Wire::default()));
        let changed = Arc::new(Notify::new());
        let socket = MemSocket {
            wire: wire.clone(),
            changed: changed.clone(),
        };
        let guard = controller.drain().register_session().unwrap();
        // Draining: outcomes are counted from here on.
        controller.begin();
        let peer = Peer { wire, changed };
        (Harness { controller, peer }, socket, guard)
    }

    fn count(&self, o: SessionOutcome) -> u64 {
        self.controller.shared().outcome_count(o)
    }

    fn sessions(&self) -> usize {
        self.controller.drain().sessions()
    }

    fn turn(&self) {
        self.controller.shared().registry.begin_closing()[0].fire(CloseHint::from_millis(HINT));
    }
}

fn spawn<H, F>(io: MemSocket, guard: SessionGuard, handler: H) -> JoinHandle<()>
where
    H: FnOnce(Socket<Mem>) -> F + Send + 'static,
    F: std::future::Future<Output = ()> + Send + 'static,
{
    tokio::spawn(run::<Mem, _, _>(io, guard, handler))
}

/// Lets every runnable task run, without moving the paused clock.
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

fn hinted_1001(close: Option<(u16, String)>) {
    let (code, reason) = close.expect("a Close went out");
    assert_eq!(code, 1001);
    assert_eq!(reason, format!("going away; retry-after-ms={HINT}"));
}

#[tokio::test(start_paused = true)]
async fn turn_while_reading_closes_and_delivers_late_data() {
    let (h, io, guard) = Harness::new();
    let cleanup = Arc::new(AtomicBool::new(false));
    let got = Arc::new(Mutex::new(Vec::new()));
    let task = spawn(io, guard, {
        let (cleanup, got) = (cleanup.clone(), got.clone());
        move |mut socket| async move {
            while let Some(Ok(m)) = socket.recv().await {
                got.lock().unwrap().push(m);
            }
            assert!(matches!(socket.send(text("x")).await, Err(Error::Closing)));
            cleanup.store(true, Ordering::SeqCst);
        }
    });
    h.peer.send(text("a"));
    settle().await;
    let t0 = Instant::now();
    h.turn();
    h.peer.until(|p| p.close().is_some()).await;
    assert_eq!(Instant::now(), t0, "the Close goes out within a tick");
    hinted_1001(h.peer.close());
    // Sent before the peer saw our Close: still delivered.
    h.peer.send(text("late"));
    h.peer.send(Msg::Close(Some((1001, String::new()))));
    task.await.unwrap();
    assert!(
        cleanup.load(Ordering::SeqCst),
        "cleanup ran before the session ended"
    );
    assert_eq!(*got.lock().unwrap(), [text("a"), text("late")]);
    assert!(h.peer.dropped());
    assert_eq!(h.count(SessionOutcome::Clean), 1);
    assert_eq!(h.sessions(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_push_task_asleep_between_ticks_gets_its_close_and_is_cut_after_it() {
    let (h, io, guard) = Harness::new();
    let task = spawn(io, guard, |socket| async move {
        let (mut sink, stream) = socket.split();
        drop(stream);
        let pusher = tokio::spawn(async move {
            loop {
                if sink.send(text("tick")).await.is_err() {
                    return;
                }
                sleep(Duration::from_secs(30)).await;
            }
        });
        let _ = pusher.await;
    });
    h.peer.until(|p| p.sent() == [text("tick")]).await;
    let t0 = Instant::now();
    h.turn();
    h.peer.until(|p| p.close().is_some()).await;
    assert_eq!(
        Instant::now(),
        t0,
        "nobody polls the socket, the Close goes out anyway"
    );
    hinted_1001(h.peer.close());
    h.peer.send(Msg::Close(Some((1001, String::new()))));
    h.peer.until(Peer::dropped).await;
    assert_eq!(Instant::now(), t0, "the handshake completes at once");
    task.await.unwrap();
    assert_eq!(
        Instant::now() - t0,
        CLOSE_TIMEOUT,
        "the handler that cannot learn of its close is cut close_timeout after it"
    );
    assert_eq!(h.count(SessionOutcome::Clean), 1);
}

#[tokio::test(start_paused = true)]
async fn a_push_task_that_watches_closing_ends_with_its_close() {
    let (h, io, guard) = Harness::new();
    let task = spawn(io, guard, |socket| async move {
        let closing = socket.closing();
        let (mut sink, _stream) = socket.split();
        let pusher = tokio::spawn(async move {
            tokio::pin!(closing);
            loop {
                tokio::select! {
                    _ = &mut closing => return,
                    _ = sleep(Duration::from_secs(30)) => {}
                }
                if sink.send(text("tick")).await.is_err() {
                    return;
                }
            }
        });
        let _ = pusher.await;
    });
    settle().await;
    let t0 = Instant::now();
    h.turn();
    h.peer.until(|p| p.close().is_some()).await;
    h.peer.send(Msg::Close(None));
    task.await.unwrap();
    assert_eq!(Instant::now(), t0, "no cut: the task ended at its turn");
    assert_eq!(h.count(SessionOutcome::Clean), 1);
}

#[tokio::test(start_paused = true)]
async fn a_silent_peer_is_bounded_by_close_timeout() {
    let (h, io, guard) = Harness::new();
    let task = spawn(io, guard, |mut socket| async move {
        while let Some(Ok(_)) = socket.recv().await {}
    });
    settle().await;
    let t0 = Instant::now();
    h.turn();
    task.await.unwrap();
    assert_eq!(Instant::now() - t0, CLOSE_TIMEOUT);
    hinted_1001(h.peer.close());
    assert!(h.peer.dropped());
    assert_eq!(h.count(SessionOutcome::TimedOut), 1);
}

#[tokio::test(start_paused = true)]
async fn turn_while_writing_under_backpressure() {
    let (h, io, guard) = Harness::new();
    let send_result = Arc::new(Mutex::new(None));
    let task = spawn(io, guard, {
        let send_result = send_result.clone();
        move |mut socket| async move {
            let r = socket.send(text("blocked")).await;
            *send_result.lock().unwrap() = Some(r.map_err(|e| e.is_closing()));
        }
    });
    h.peer.block_writes(true);
    settle().await;
    assert!(send_result.lock().unwrap().is_none(), "the send waits");
    let t0 = Instant::now();
    h.turn();
    settle().await;
    assert_eq!(
        *send_result.lock().unwrap(),
        Some(Err(true)),
        "the waiting send learns of the close at once"
    );
    // The peer reads again: our Close goes out, it answers.
    h.peer.block_writes(false);
    h.peer.until(|p| p.close().is_some()).await;
    h.peer.send(Msg::Close(None));
    task.await.unwrap();
    assert_eq!(Instant::now(), t0);
    assert_eq!(h.count(SessionOutcome::Clean), 1);
}

#[tokio::test(start_paused = true)]
async fn a_peer_that_never_reads_cannot_hold_the_close() {
    let (h, io, guard) = Harness::new();
    let task = spawn(io, guard, |mut socket| async move {
        while let Some(Ok(_)) = socket.recv().await {}
    });
    h.peer.block_writes(true);
    settle().await;
    let t0 = Instant::now();
    h.turn();
    task.await.unwrap();
    assert_eq!(Instant::now() - t0, CLOSE_TIMEOUT);
    assert_eq!(h.peer.close(), None, "the Close could not be written");
    assert!(h.peer.dropped());
    assert_eq!(h.count(SessionOutcome::TimedOut), 1);
}

#[tokio::test(start_paused = true)]
async fn turn_during_an_application_close_finishes_it() {
    let (h, io, guard) = Harness::new();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let task = spawn(io, guard, {
        let seen = seen.clone();
        move |mut socket| async move {
            socket
                .send(Msg::Close(Some((1000, "bye".into()))))
                .await
                .unwrap();
            while let Some(Ok(m)) = socket.recv().await {
                seen.lock().unwrap().push(m);
            }
        }
    });
    h.peer.until(|p| !p.sent().is_empty()).await;
    h.turn();
    settle().await;
    assert_eq!(
        h.peer.sent(),
        [Msg::Close(Some((1000, "bye".into())))],
        "no second Close"
    );
    h.peer.send(Msg::Close(Some((1000, String::new()))));
    h.peer.hang_up();
    task.await.unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        [Msg::Close(Some((1000, String::new())))]
    );
    assert_eq!(
        h.count(SessionOutcome::Ended),
        1,
        "the application ended it"
    );
}

#[tokio::test(start_paused = true)]
async fn turn_during_the_peers_close() {
    let (h, io, guard) = Harness::new();
    let task = spawn(io, guard, |mut socket| async move {
        let first = socket.recv().await;
        assert!(matches!(first, Some(Ok(Msg::Close(_)))));
        // Busy with cleanup when the turn comes.
        sleep(Duration::from_millis(500)).await;
        assert!(socket.send(text("x")).await.is_err());
        assert!(socket.recv().await.is_none());
    });
    h.peer.send(Msg::Close(Some((1000, String::new()))));
    settle().await;
    h.turn();
    h.peer.hang_up();
    task.await.unwrap();
    assert_eq!(h.peer.close(), None, "no drain Close after the peer's");
    assert_eq!(h.count(SessionOutcome::PeerClosed), 1);
}

#[tokio::test(start_paused = true)]
async fn the_forced_end_reaches_a_socket_held_elsewhere() {
    let (h, io, guard) = Harness::new();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let task = spawn(io, guard, |socket| async move {
        // The socket lives in a task of its own; the handler returns.
        tokio::spawn(async move {
            let mut socket = socket;
            let _ = tx.send(socket.recv().await.is_none());
        });
    });
    settle().await;
    assert_eq!(h.sessions(), 1, "the session outlives its handler");
    let t0 = Instant::now();
    assert_eq!(h.controller.shared().registry.force(), 1);
    task.await.unwrap();
    assert_eq!(Instant::now(), t0);
    assert!(h.peer.dropped(), "the connection is dropped");
    assert!(rx.await.unwrap(), "the reader in its own task sees the end");
    assert_eq!(h.sessions(), 0);
    assert_eq!(
        h.count(SessionOutcome::Forced),
        0,
        "counted by the controller, not twice"
    );
}

#[tokio::test(start_paused = true)]
async fn after_the_forced_end_nothing_waits() {
    let (h, io, guard) = Harness::new();
    h.turn();
    h.controller.shared().registry.force();
    let task = spawn(io, guard, |_socket| std::future::pending());
    task.await.unwrap();
    assert!(h.peer.dropped());
    assert_eq!(h.sessions(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_handler_that_returned_early_leaves_the_session_to_its_tasks() {
    let (h, io, guard) = Harness::new();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let task = spawn(io, guard, |socket| async move {
        let (mut sink, mut stream) = socket.split();
        tokio::spawn(async move {
            let mut n = 0;
            while let Some(Ok(m)) = stream.next().await {
                n += 1;
                if sink.send(m).await.is_err() {
                    break;
                }
            }
            let _ = done_tx.send(n);
        });
    });
    h.peer.send(text("1"));
    h.peer.until(|p| p.sent() == [text("1")]).await;
    assert_eq!(h.sessions(), 1);
    h.turn();
    h.peer.until(|p| p.close().is_some()).await;
    h.peer.send(Msg::Close(None));
    task.await.unwrap();
    assert_eq!(done_rx.await.unwrap(), 1);
    assert_eq!(h.count(SessionOutcome::Clean), 1);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_socket_before_the_turn_ends_the_session() {
    let (h, io, guard) = Harness::new();
    let task = spawn(io, guard, |socket| async move { drop(socket) });
    task.await.unwrap();
    assert!(h.peer.dropped());
    assert_eq!(h.peer.sent(), [], "like the raw socket: no Close of ours");
    assert_eq!(h.count(SessionOutcome::Ended), 1);
}

#[tokio::test(start_paused = true)]
async fn cancelled_recv_and_send_lose_nothing() {
    let (h, io, guard) = Harness::new();
    let got = Arc::new(Mutex::new(Vec::new()));
    let task = spawn(io, guard, {
        let got = got.clone();
        move |mut socket| async move {
            loop {
                // Every await point of recv is cancelled now and then.
                tokio::select! {
                    m = socket.recv() => match m {
                        Some(Ok(m)) => got.lock().unwrap().push(m),
                        _ => break,
                    },
                    _ = sleep(Duration::from_millis(7)) => {
                        // A send cancelled mid-way must not block the close.
                        let send = socket.send(text("ping"));
                        let _ = tokio::time::timeout(Duration::from_millis(1), send).await;
                    }
                }
            }
        }
    });
    for i in 0..5 {
        h.peer.send(text(&i.to_string()));
        sleep(Duration::from_millis(10)).await;
    }
    h.peer.block_writes(true);
    sleep(Duration::from_millis(20)).await;
    h.turn();
    sleep(Duration::from_millis(20)).await;
    h.peer.send(text("late"));
    h.peer.block_writes(false);
    h.peer.until(|p| p.close().is_some()).await;
    sleep(Duration::from_millis(20)).await;
    h.peer.send(Msg::Close(None));
    task.await.unwrap();
    let got = got.lock().unwrap().clone();
    let expected: Vec<_> = (0..5)
        .map(|i| text(&i.to_string()))
        .chain([text("late")])
        .collect();
    assert_eq!(got, expected, "every message delivered once, in order");
    let closes = h
        .peer
        .sent()
        .iter()
        .filter(|m| matches!(m, Msg::Close(_)))
        .count();
    assert_eq!(closes, 1, "exactly one Close");
    assert_eq!(h.count(SessionOutcome::Clean), 1);
}

#[tokio::test(start_paused = true)]
async fn a_flood_after_our_close_waits_for_the_reader() {
    let (h, io, guard) = Harness::new();
    let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
    let count = Arc::new(Mutex::new(0usize));
    let task = spawn(io, guard, {
        let count = count.clone();
        move |mut socket| async move {
            // Reads once (so data is kept for it), then stalls.
            let _ = socket.recv().await;
            let _ = go_rx.await;
            while let Some(Ok(_)) = socket.recv().await {
                *count.lock().unwrap() += 1;
            }
        }
    });
    h.peer.send(text("first"));
    settle().await;
    h.turn();
    h.peer.until(|p| p.close().is_some()).await;
    for i in 0..200 {
        h.peer.send(text(&i.to_string()));
    }
    h.peer.send(Msg::Close(None));
    settle().await;
    let left = h.peer.wire.lock().unwrap().inbound.len();
    assert_eq!(
        left,
        201 - super::core::BUFFERED_MAX,
        "buffering stops at its bound"
    );
    go_tx.send(()).unwrap();
    task.await.unwrap();
    assert_eq!(*count.lock().unwrap(), 200, "the reader gets all of it");
    assert_eq!(h.count(SessionOutcome::Clean), 1);
}

#[tokio::test(start_paused = true)]
async fn a_goodbye_goes_out_right_before_the_close() {
    let (h, io, guard) = Harness::new();
    let task = spawn(io, guard, |mut socket| async move {
        socket.set_goodbye(text("bye"));
        while let Some(Ok(_)) = socket.recv().await {}
    });
    settle().await;
    h.turn();
    h.peer.until(|p| p.close().is_some()).await;
    assert_eq!(h.peer.sent()[0], text("bye"));
    assert!(matches!(h.peer.sent()[1], Msg::Close(Some((1001, _)))));
    h.peer.send(Msg::Close(None));
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_panicking_handler_still_gets_its_close_finished() {
    let (h, io, guard) = Harness::new();
    let task = spawn(io, guard, |mut socket| async move {
        if socket.send(text("x")).await.is_err() {
            panic!("handler panics at its close");
        }
        std::future::pending::<()>().await;
    });
    h.peer.block_writes(true);
    settle().await;
    h.turn();
    h.peer.block_writes(false);
    h.peer.until(|p| p.close().is_some()).await;
    h.peer.send(Msg::Close(None));
    let err = task.await.unwrap_err();
    assert!(err.is_panic(), "the panic carries on");
    assert_eq!(
        h.count(SessionOutcome::Clean),
        1,
        "after the close was finished"
    );
    assert_eq!(h.sessions(), 0);
}

const LEAD: Duration = Duration::from_secs(3);

fn notice() -> Msg {
    text(r#"{"type":"wsdrain.reconnect","close_in_ms":3000}"#)
}

#[tokio::test(start_paused = true)]
async fn the_notice_goes_out_at_the_turn_and_the_close_a_lead_later() {
    let (h, io, guard) = Harness::with_notice(LEAD);
    let task = spawn(io, guard, |mut socket| async move {
        while let Some(Ok(m)) = socket.recv().await {
            if socket.send(m).await.is_err() {
                break;
            }
        }
    });
    settle().await;
    let t0 = Instant::now();
    h.turn();
    h.peer.until(|p| p.sent() == [notice()]).await;
    assert_eq!(Instant::now(), t0, "the notice goes out at the turn");
    // Traffic goes on during the lead.
    sleep(Duration::from_secs(1)).await;
    h.peer.send(text("during the lead"));
    h.peer.until(|p| p.sent().len() == 2).await;
    assert_eq!(h.peer.sent()[1], text("during the lead"));
    assert_eq!(h.peer.close(), None);
    h.peer.until(|p| p.close().is_some()).await;
    assert_eq!(
        Instant::now() - t0,
        LEAD,
        "the Close a lead after the notice"
    );
    hinted_1001(h.peer.close());
    h.peer.send(Msg::Close(None));
    task.await.unwrap();
    assert_eq!(h.count(SessionOutcome::Clean), 1);
}

#[tokio::test(start_paused = true)]
async fn a_peer_that_closes_after_the_notice_is_a_clean_close() {
    let (h, io, guard) = Harness::with_notice(LEAD);
    let task = spawn(io, guard, |mut socket| async move {
        while let Some(Ok(_)) = socket.recv().await {}
    });
    settle().await;
    let t0 = Instant::now();
    h.turn();
    h.peer.until(|p| p.sent() == [notice()]).await;
    // The client has its new connection: it closes the old one itself.
    sleep(Duration::from_millis(100)).await;
    h.peer.send(Msg::Close(Some((1000, "handover".into()))));
    h.peer.hang_up();
    task.await.unwrap();
    assert!(Instant::now() - t0 < LEAD, "no wait for the lead");
    assert_eq!(h.peer.close(), None, "no Close of ours after the peer's");
    assert_eq!(
        h.count(SessionOutcome::Clean),
        1,
        "peer-first after the notice is clean"
    );
}

#[tokio::test(start_paused = true)]
async fn a_push_only_session_gets_its_notice_and_its_close() {
    let (h, io, guard) = Harness::with_notice(LEAD);
    let task = spawn(io, guard, |socket| async move {
        let (mut sink, _stream) = socket.split();
        let pusher = tokio::spawn(async move {
            loop {
                if sink.send(text("tick")).await.is_err() {
                    return;
                }
                sleep(Duration::from_millis(500)).await;
            }
        });
        let _ = pusher.await;
    });
    h.peer.until(|p| !p.sent().is_empty()).await;
    let t0 = Instant::now();
    h.turn();
    h.peer.until(|p| p.sent().contains(&notice())).await;
    assert_eq!(Instant::now(), t0);
    h.peer.until(|p| p.close().is_some()).await;
    assert_eq!(Instant::now() - t0, LEAD);
    let ticks_in_lead = h.peer.sent().iter().filter(|m| **m == text("tick")).count();
    assert!(
        ticks_in_lead >= 6,
        "pushes go on during the lead: {ticks_in_lead}"
    );
    h.peer.send(Msg::Close(None));
    task.await.unwrap();
    assert_eq!(h.count(SessionOutcome::Clean), 1);
}

#[tokio::test(start_paused = true)]
async fn a_session_can_replace_or_turn_off_its_notice() {
    for custom in [Some(text("server moving")), None] {
        let (h, io, guard) = Harness::with_notice(LEAD);
        let task = spawn(io, guard, {
            let custom = custom.clone();
            move |mut socket| async move {
                socket.set_notice(custom);
                while let Some(Ok(_)) = socket.recv().await {}
            }
        });
        settle().await;
        let t0 = Instant::now();
        h.turn();
        h.peer.until(|p| p.close().is_some()).await;
        match &custom {
            Some(m) => {
                assert_eq!(h.peer.sent()[0], *m);
                assert_eq!(Instant::now() - t0, LEAD);
            }
            None => {
                assert!(matches!(h.peer.sent()[0], Msg::Close(_)), "no notice");
                assert_eq!(Instant::now(), t0, "the Close at the turn");
            }
        }
        h.peer.send(Msg::Close(None));
        task.await.unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn a_blocked_notice_does_not_delay_the_close_past_its_bounds() {
    let (h, io, guard) = Harness::with_notice(LEAD);
    let task = spawn(io, guard, |mut socket| async move {
        while let Some(Ok(_)) = socket.recv().await {}
    });
    h.peer.block_writes(true);
    settle().await;
    let t0 = Instant::now();
    h.turn();
    task.await.unwrap();
    assert_eq!(Instant::now() - t0, LEAD + CLOSE_TIMEOUT);
    assert!(h.peer.dropped());
    assert_eq!(h.count(SessionOutcome::TimedOut), 1);
}
