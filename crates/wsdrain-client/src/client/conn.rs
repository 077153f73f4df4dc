//! One open connection, as the client's task drives it: what it reads, the
//! queue of what it writes, and the timers that bound both (the close
//! handshake, and a server that stops taking data).
//!
//! Reads and writes are polled together, in one future the task selects on
//! with everything else, so a write the server does not take holds up
//! nothing but the sends queued behind it.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;
use tokio::time::{Instant, Sleep, sleep_until};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};

use tokio::net::TcpStream;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::ConnectionId;
use super::handle::{Lane, Outgoing};

/// A stream that remembers when it last wrote a byte, so the client can
/// tell a slow server (still taking data) from one that takes none.
pub(super) struct Progress<S> {
    inner: S,
    last_write: Instant,
}

impl<S> Progress<S> {
    pub(super) fn new(inner: S) -> Self {
        Progress {
            inner,
            last_write: Instant::now(),
        }
    }

    fn wrote(&mut self, written: &Poll<io::Result<usize>>) {
        if matches!(written, Poll::Ready(Ok(n)) if *n > 0) {
            self.last_write = Instant::now();
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Progress<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Progress<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.wrote(&written);
        written
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.wrote(&written);
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// What happened on a connection.
pub(super) enum ConnEvent {
    /// A text or binary message.
    Message(Message),
    /// The server's Close came: sends stop, the end follows (bounded by the
    /// close timeout).
    PeerClosing,
    /// The connection is over (see `frame`, `error`, `ended_cleanly`).
    Ended,
}

/// How long a connection waits, from its settings.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    /// From a Close either way to the server's end of TCP.
    pub(super) close_timeout: Duration,
    /// Without a byte written while a write waits.
    pub(super) write_timeout: Duration,
    /// Messages queued per connection.
    pub(super) send_queue: usize,
}

/// One open connection and what it has seen; generic over the stream so
/// that its tests run on an in-memory pipe.
pub(super) struct Conn<S = MaybeTlsStream<TcpStream>> {
    pub(super) id: ConnectionId,
    ws: WebSocketStream<Progress<S>>,
    pub(super) opened: Instant,
    /// Opened by a handover (after a drain notice), not by a reconnect.
    pub(super) by_handover: bool,
    /// The Close frame received (code, reason).
    pub(super) frame: Option<(u16, String)>,
    pub(super) error: Option<String>,
    pub(super) ended_cleanly: bool,
    /// The server selected `wsdrain.resume.v1`: data frames have headers.
    pub(super) framed: bool,
    /// The server broke the resume protocol: closed with 1002, nothing
    /// more it sends is used.
    pub(super) broken: bool,
    limits: Limits,
    /// Set once a Close went either way: the server must end TCP by then.
    deadline: Option<Pin<Box<Sleep>>>,
    queue: mpsc::Receiver<Outgoing>,
    /// The queue is closed and empty: no message will come.
    drained: bool,
    /// Taken from the queue, waiting for the socket to be ready.
    next: Option<Outgoing>,
    /// Written, waiting for the flush.
    in_flight: Option<Outgoing>,
    /// Our Close, written once the queue is drained.
    close: Option<CloseFrame>,
    /// Something was written since the last completed flush.
    unflushed: bool,
    /// Since when a write has waited, and its timer.
    waiting_since: Option<Instant>,
    stall: Option<Pin<Box<Sleep>>>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    /// A connection for `ws`, and the lane sends reach it by.
    pub(super) fn open(
        id: ConnectionId,
        ws: WebSocketStream<Progress<S>>,
        limits: Limits,
    ) -> (Conn<S>, Lane) {
        let (queue_tx, queue) = mpsc::channel(limits.send_queue.max(1));
        let conn = Conn {
            id,
            ws,
            opened: Instant::now(),
            by_handover: false,
            frame: None,
            error: None,
            ended_cleanly: false,
            framed: false,
            broken: false,
            limits,
            deadline: None,
            queue,
            drained: false,
            next: None,
            in_flight: None,
            close: None,
            unflushed: false,
            waiting_since: None,
            stall: None,
        };
        (
            conn,
            Lane {
                id,
                queue: queue_tx,
            },
        )
    }

    /// The next thing that happens. Writes and timers always go on; what
    /// the server sends is read only while `reading` (the task holds back
    /// while the application has events to catch up on).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: its state lives in `self`. Not to be polled after
    /// [`ConnEvent::Ended`].
    pub(super) async fn next(&mut self, reading: bool) -> ConnEvent {
        std::future::poll_fn(|cx| self.poll_event(cx, reading)).await
    }

    fn poll_event(&mut self, cx: &mut Context<'_>, reading: bool) -> Poll<ConnEvent> {
        if let Err(error) = self.poll_writes(cx) {
            self.error.get_or_insert(error);
            return Poll::Ready(ConnEvent::Ended);
        }
        if fired(&mut self.deadline, cx) {
            let limit = self.limits.close_timeout;
            self.error
                .get_or_insert_with(|| format!("no TCP close within {limit:?} of the Close"));
            return Poll::Ready(ConnEvent::Ended);
        }
        if !reading {
            return Poll::Pending;
        }
        loop {
            match ready!(self.ws.poll_next_unpin(cx)) {
                Some(Ok(Message::Close(close))) => {
                    let (code, reason) = close.as_ref().map_or((1005, String::new()), |f| {
                        (u16::from(f.code), f.reason.to_string())
                    });
                    tracing::debug!(connection = %self.id, code, reason, "close frame received");
                    self.frame = Some((code, reason));
                    self.arm_deadline();
                    // tungstenite answers the Close; what waits to be sent goes back.
                    self.close = None;
                    self.refuse_queued();
                    return Poll::Ready(ConnEvent::PeerClosing);
                }
                Some(Ok(message @ (Message::Text(_) | Message::Binary(_)))) => {
                    return Poll::Ready(ConnEvent::Message(message));
                }
                // Pings are answered by tungstenite; pongs and raw frames are not ours.
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    self.error.get_or_insert(e.to_string());
                    return Poll::Ready(ConnEvent::Ended);
                }
                None => {
                    self.ended_cleanly = true;
                    return Poll::Ready(ConnEvent::Ended);
                }
            }
        }
    }

    /// Writes what the queue holds, one message at a time, then our Close if
    /// one was asked for; `Err` when the connection can no longer write
    /// (broken, or stalled for the write timeout). One at a time: a message
    /// waits in the queue, and comes back `Unsent` if the connection ends,
    /// until the one before it is flushed.
    fn poll_writes(&mut self, cx: &mut Context<'_>) -> Result<(), String> {
        loop {
            if self.unflushed {
                match self.ws.poll_flush_unpin(cx) {
                    Poll::Ready(Ok(())) => {
                        self.unflushed = false;
                        if let Some(out) = self.in_flight.take() {
                            out.written();
                        }
                    }
                    Poll::Ready(Err(e)) => return Err(self.fail_writes(&e)),
                    Poll::Pending => break,
                }
            }
            if self.next.is_none() && !self.drained {
                match self.queue.poll_recv(cx) {
                    Poll::Ready(Some(out)) => self.next = Some(out),
                    Poll::Ready(None) => self.drained = true,
                    Poll::Pending => {}
                }
            }
            if self.next.is_none() && !(self.drained && self.close.is_some()) {
                break;
            }
            match self.ws.poll_ready_unpin(cx) {
                Poll::Pending => break,
                Poll::Ready(Err(e)) => return Err(self.fail_writes(&e)),
                Poll::Ready(Ok(())) => {}
            }
            let sent = if let Some(mut out) = self.next.take() {
                let Some(message) = out.take() else { continue };
                self.in_flight = Some(out);
                self.ws.start_send_unpin(message)
            } else if let Some(frame) = self.close.take() {
                tracing::debug!(connection = %self.id, code = u16::from(frame.code), "client closes");
                self.ws.start_send_unpin(Message::Close(Some(frame)))
            } else {
                continue;
            };
            if let Err(e) = sent {
                return Err(self.fail_writes(&e));
            }
            self.unflushed = true;
        }
        let waiting =
            self.unflushed || self.next.is_some() || (self.drained && self.close.is_some());
        if !waiting {
            self.waiting_since = None;
            self.stall = None;
            return Ok(());
        }
        // Progress is any byte the socket took since the wait began.
        let since = *self.waiting_since.get_or_insert_with(Instant::now);
        let due = since.max(self.ws.get_ref().last_write) + self.limits.write_timeout;
        let timer = self.stall.get_or_insert_with(|| Box::pin(sleep_until(due)));
        if timer.deadline() != due {
            timer.as_mut().reset(due);
        }
        if timer.as_mut().poll(cx).is_ready() {
            let limit = self.limits.write_timeout;
            return Err(format!("the server took no data for {limit:?}"));
        }
        Ok(())
    }

    /// The socket failed: the message in flight fails with `error`, the
    /// rest goes back unsent. Returns the error's text.
    fn fail_writes(&mut self, error: &tungstenite::Error) -> String {
        if let Some(out) = self.in_flight.take() {
            out.failed(copy(error));
        }
        self.refuse_queued();
        error.to_string()
    }

    /// Takes no more sends, and answers those waiting `Unsent`.
    fn refuse_queued(&mut self) {
        self.queue.close();
        self.next = None;
        while let Ok(out) = self.queue.try_recv() {
            drop(out);
        }
        self.drained = true;
    }

    /// Sends `frame` once what is queued is written (unless the server's
    /// Close came first: tungstenite answers that one), and gives the
    /// server the close timeout to end the connection. The first Close asked
    /// for is the one sent.
    pub(super) fn close(&mut self, frame: CloseFrame) {
        if self.deadline.is_none() {
            self.queue.close();
            if self.frame.is_none() {
                self.close = Some(frame);
            }
        }
        self.arm_deadline();
    }

    fn arm_deadline(&mut self) {
        let limit = self.limits.close_timeout;
        self.deadline
            .get_or_insert_with(|| Box::pin(sleep_until(Instant::now() + limit)));
    }

    /// Answers every send still waiting: `Unsent` for the queued ones,
    /// `Failed` for one written but not flushed. Before `Closed` is
    /// reported, so every answer comes first.
    pub(super) fn abandon(&mut self) {
        self.refuse_queued();
        self.in_flight = None;
    }
}

/// Whether the timer, if set, has fired (its waker registered if not).
fn fired(timer: &mut Option<Pin<Box<Sleep>>>, cx: &mut Context<'_>) -> bool {
    timer
        .as_mut()
        .is_some_and(|t| t.as_mut().poll(cx).is_ready())
}

/// The same error again, for each of several writes it ended.
fn copy(error: &tungstenite::Error) -> tungstenite::Error {
    match error {
        tungstenite::Error::ConnectionClosed => tungstenite::Error::ConnectionClosed,
        tungstenite::Error::AlreadyClosed => tungstenite::Error::AlreadyClosed,
        tungstenite::Error::Io(e) => {
            tungstenite::Error::Io(io::Error::new(e.kind(), e.to_string()))
        }
        other => tungstenite::Error::Io(io::Error::other(other.to_string())),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use futures_util::FutureExt;
    use tokio::io::DuplexStream;
    use tokio_tungstenite::tungstenite::protocol::Role;

    use super::*;
    use crate::SendError;

    const LIMITS: Limits = Limits {
        close_timeout: Duration::from_secs(2),
        write_timeout: Duration::from_secs(10),
        send_queue: 4,
    };

    /// A client connection and the server's end, over an in-memory pipe
    /// that buffers `buffer` bytes each way.
    async fn pair(buffer: usize) -> (Conn<DuplexStream>, Lane, WebSocketStream<DuplexStream>) {
        let (client, server) = tokio::io::duplex(buffer);
        let client =
            WebSocketStream::from_raw_socket(Progress::new(client), Role::Client, None).await;
        let server = WebSocketStream::from_raw_socket(server, Role::Server, None).await;
        let (conn, lane) = Conn::open(ConnectionId(1), client, LIMITS);
        (conn, lane, server)
    }

    /// Drives `conn` until `until` completes, as the client's task would
    /// (answering every send once it ends); the events it reported. Bounded
    /// by an hour of the paused clock, so a hang fails.
    async fn drive<T>(
        conn: &mut Conn<DuplexStream>,
        until: impl Future<Output = T>,
    ) -> (T, Vec<String>) {
        let mut seen = Vec::new();
        let run = async {
            tokio::pin!(until);
            loop {
                tokio::select! {
                    out = &mut until => return out,
                    event = conn.next(true) => match event {
                        ConnEvent::Message(m) => seen.push(format!("message {m}")),
                        ConnEvent::PeerClosing => seen.push("peer closing".into()),
                        ConnEvent::Ended => {
                            seen.push(format!("ended: {:?}", conn.error));
                            conn.abandon();
                            return until.await;
                        }
                    },
                }
            }
        };
        let out = tokio::time::timeout(Duration::from_secs(3600), run)
            .await
            .expect("done within the hour");
        (out, seen)
    }

    fn big(n: usize) -> Message {
        Message::binary(vec![1u8; n])
    }

    #[tokio::test(start_paused = true)]
    async fn sends_are_written_in_order_and_answered_with_the_connection() {
        let (mut conn, lane, mut server) = pair(64 * 1024).await;
        let sends = async {
            let a = lane.send(Message::text("a")).await;
            let b = lane.send(Message::text("b")).await;
            (a, b)
        };
        let ((a, b), seen) = drive(&mut conn, sends).await;
        assert_eq!((a.unwrap(), b.unwrap()), (ConnectionId(1), ConnectionId(1)));
        assert!(seen.is_empty(), "{seen:?}");
        assert_eq!(server.next().await.unwrap().unwrap(), Message::text("a"));
        assert_eq!(server.next().await.unwrap().unwrap(), Message::text("b"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_server_that_takes_nothing_ends_the_connection_after_write_timeout() {
        let (mut conn, lane, _server) = pair(1024).await;
        let started = Instant::now();
        let sends = async {
            // The first is written in part; the second waits behind it.
            tokio::join!(
                lane.send(big(64 * 1024)),
                lane.send(Message::text("queued"))
            )
        };
        let ((first, second), seen) = drive(&mut conn, sends).await;
        assert_eq!(started.elapsed(), LIMITS.write_timeout);
        assert_eq!(seen, ["ended: Some(\"the server took no data for 10s\")"],);
        assert!(
            matches!(
                first,
                Err(SendError::Failed {
                    connection: ConnectionId(1),
                    ..
                })
            ),
            "{first:?}"
        );
        match second {
            Err(SendError::Unsent {
                connection,
                message,
            }) => {
                assert_eq!(
                    (connection, message),
                    (ConnectionId(1), Message::text("queued"))
                );
            }
            other => panic!("expected Unsent, got {other:?}"),
        }
        // The queue is closed: a late send comes back at once.
        assert!(matches!(
            lane.send(Message::text("late")).await,
            Err(SendError::Unsent { .. })
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn a_server_that_reads_slowly_is_never_cut() {
        let (mut conn, lane, server) = pair(1024).await;
        // 64 KiB through a 1 KiB pipe read 1 KiB per 5 s: minutes in all,
        // never 10 s without progress.
        let mut server = server.into_inner();
        let reader = tokio::spawn(async move {
            let mut total = 0;
            let mut buf = [0u8; 1024];
            while total < 64 * 1024 {
                tokio::time::sleep(Duration::from_secs(5)).await;
                total += tokio::io::AsyncReadExt::read(&mut server, &mut buf)
                    .await
                    .unwrap();
            }
            server
        });
        let started = Instant::now();
        let (sent, seen) = drive(&mut conn, lane.send(big(64 * 1024 - 16))).await;
        assert_eq!(sent.unwrap(), ConnectionId(1));
        assert!(seen.is_empty(), "{seen:?}");
        assert!(
            started.elapsed() > Duration::from_secs(60),
            "{:?}",
            started.elapsed()
        );
        drop(reader);
    }

    #[tokio::test(start_paused = true)]
    async fn the_servers_close_hands_queued_messages_back() {
        let (mut conn, lane, mut server) = pair(1024).await;
        // A write in progress keeps the next send queued.
        let sends = async {
            tokio::join!(
                lane.send(big(64 * 1024)),
                lane.send(Message::text("queued"))
            )
        };
        tokio::pin!(sends);
        let close = CloseFrame {
            code: 1001.into(),
            reason: "going away; retry-after-ms=5".into(),
        };
        // The server's Close goes out while the client's big write waits.
        tokio::spawn(async move {
            let _ = server.close(Some(close)).await;
            std::future::pending::<()>().await;
        });
        let event = tokio::select! {
            event = conn.next(true) => event,
            _ = &mut sends => panic!("the sends ended first"),
        };
        assert!(matches!(event, ConnEvent::PeerClosing));
        assert_eq!(
            conn.frame,
            Some((1001, "going away; retry-after-ms=5".into()))
        );
        // Until the end the written message waits; the queued one is back.
        let ((first, second), seen) = drive(&mut conn, sends).await;
        assert!(
            matches!(second, Err(SendError::Unsent { .. })),
            "{second:?}"
        );
        assert!(matches!(first, Err(SendError::Failed { .. })), "{first:?}");
        assert_eq!(seen.len(), 1, "{seen:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn close_writes_what_is_queued_then_the_close() {
        let (mut conn, lane, mut server) = pair(64 * 1024).await;
        let (a, b) = (lane.send(Message::text("a")), lane.send(Message::text("b")));
        tokio::pin!(a, b);
        // Both queued, neither written yet.
        assert!(a.as_mut().now_or_never().is_none());
        assert!(b.as_mut().now_or_never().is_none());
        conn.close(CloseFrame {
            code: 1000.into(),
            reason: "".into(),
        });
        let ((a, b), _) = drive(&mut conn, async { (a.await, b.await) }).await;
        assert_eq!((a.unwrap(), b.unwrap()), (ConnectionId(1), ConnectionId(1)));
        assert_eq!(server.next().await.unwrap().unwrap(), Message::text("a"));
        assert_eq!(server.next().await.unwrap().unwrap(), Message::text("b"));
        assert!(
            matches!(server.next().await.unwrap().unwrap(), Message::Close(Some(f)) if f.code == 1000.into())
        );
        // Sends after the close request are refused.
        assert!(matches!(
            lane.send(Message::text("c")).await,
            Err(SendError::Unsent { .. })
        ));
    }
}
