//! [`ResumableSocket`]: a session's socket that delivers the streams it
//! follows, resumed where the client stopped.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use bytes::Bytes;
use futures_util::{Sink, Stream};
use tokio::sync::broadcast;
use wsdrain_protocol::{
    CloseHint,
    resume::{Control, NameError, PLAIN_PREFIX, Position, ResyncReason, check_stream},
};

use super::{
    entry::{Entry, Epoch, Payload},
    feed::Feed,
    follower::{Follower, Out, Start},
    log::{Log, Read},
    point::ResumePoint,
};
use crate::{
    Drain, metrics,
    ws::{Error, Socket, Stack},
};

/// How a stack spells the data frames of a resumable session; implemented
/// by the adapters (`wsdrain-axum`, `wsdrain-tungstenite`) beside
/// [`Stack`].
pub trait ResumeStack: Stack {
    /// A data frame of `data`: a text frame when `text` (then `data` is
    /// UTF-8), a binary frame otherwise. `data` is shared, not copied: one
    /// message's frame goes to every session that follows its stream.
    fn data_frame(data: Bytes, text: bool) -> Self::Message;
}

/// One item from the client.
type Received<K> = Result<<K as Stack>::Message, Error<<K as Stack>::Error>>;

/// Frames written per poll before the session yields, so one busy stream
/// cannot starve the peer's reads or the other tasks of its thread.
const WRITE_BUDGET: usize = 64;

/// How a stream started on this connection ([`ResumableSocket::follow`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Followed {
    /// The client named no position for it: it starts now.
    Fresh,
    /// The client's position was honoured: what it missed is replayed,
    /// then live messages follow.
    Resumed,
    /// The client's gap cannot be filled: it was told to resync (send it a
    /// snapshot now, or let it fetch one).
    Resync(ResyncReason),
}

/// Why [`ResumableSocket::follow`] did not follow a stream.
#[derive(Debug)]
#[non_exhaustive]
pub enum FollowError<E> {
    /// Not a valid stream name.
    Stream(NameError),
    /// Followed already on this connection.
    Twice,
    /// The stream's control could not be written: the session is closing
    /// or its socket failed.
    Socket(Error<E>),
}

impl<E: fmt::Display> fmt::Display for FollowError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FollowError::Stream(e) => write!(f, "cannot follow: {e}"),
            FollowError::Twice => f.write_str("cannot follow: followed already"),
            FollowError::Socket(e) => write!(f, "cannot follow: {e}"),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for FollowError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FollowError::Stream(e) => Some(e),
            FollowError::Twice => None,
            FollowError::Socket(e) => Some(e),
        }
    }
}

/// A drained WebSocket ([`Socket`]) that also delivers the streams it
/// follows, resumed where its client stopped (`wsdrain.resume.v1`).
///
/// * [`follow`](Self::follow) starts a stream on this connection: fresh,
///   resumed from the client's position (replay, then live), or with a
///   `resync` when the gap cannot be filled;
/// * [`recv`](Self::recv) returns what the client sends (untouched) and,
///   **while it waits, writes the followed streams' messages** to the wire:
///   delivery happens while the handler awaits `recv` (or [`run`](Self::run),
///   for a handler with nothing to read);
/// * [`send`](Self::send) sends an application message outside any stream
///   (`p` frame).
///
/// A client that did not offer the subprotocol gets the same messages as
/// plain frames (no headers, no controls), exactly as without resume.
///
/// Memory stays bounded whatever the client does: a client that stops
/// reading holds back only its own session (its socket's buffer fills, the
/// hub's channel overtakes it, and it catches up from the log, or resyncs
/// if the log no longer has what it missed).
///
/// At its turn the session closes like any other, with the drain notice as
/// a control (`c\n{"type":"wsdrain.reconnect",…}`) on framed connections.
pub struct ResumableSocket<K: ResumeStack, L: Log> {
    socket: Socket<K>,
    feed: Feed<L>,
    point: ResumePoint,
    followers: Vec<Follower>,
    /// Where the next round of writes starts, so streams take turns.
    turn: usize,
    unflushed: bool,
    /// Writes failed (the session is closing): deliver no more.
    stopped: bool,
}

impl<K: ResumeStack, L: Log> fmt::Debug for ResumableSocket<K, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResumableSocket")
            .field("socket", &self.socket)
            .field("framed", &self.framed())
            .field(
                "following",
                &self
                    .followers
                    .iter()
                    .map(|f| &*f.stream)
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl<K: ResumeStack, L: Log> ResumableSocket<K, L> {
    /// Wraps a session's socket; adapters call it once they selected
    /// `wsdrain.resume.v1` (when `point.offered()`).
    pub fn new(socket: Socket<K>, feed: Feed<L>, point: ResumePoint) -> Self {
        let lead = socket.drain().policy().notice_lead();
        if point.offered() && !lead.is_zero() {
            let close_in_ms = u64::try_from(lead.as_millis()).unwrap_or(u64::MAX);
            let notice = Control::Reconnect { close_in_ms }.to_frame();
            socket.set_notice(Some(K::text_frame(notice)));
        }
        ResumableSocket {
            socket,
            feed,
            point,
            followers: Vec::new(),
            turn: 0,
            unflushed: false,
            stopped: false,
        }
    }

    /// True when frames carry headers and controls (the client offered
    /// `wsdrain.resume.v1`).
    pub fn framed(&self) -> bool {
        self.point.offered()
    }

    /// Where the client asked to resume.
    pub fn point(&self) -> &ResumePoint {
        &self.point
    }

    /// The streams followed on this connection.
    pub fn following(&self) -> impl Iterator<Item = &str> {
        self.followers.iter().map(|f| &*f.stream)
    }

    /// Starts delivering `stream` on this connection, from the client's
    /// position if its point names the stream: the stream's control goes
    /// out now (on framed connections), the replay and the live messages
    /// while the handler awaits [`recv`](Self::recv).
    ///
    /// Follow only streams the client may read: the resume point grants
    /// nothing.
    ///
    /// # Errors
    ///
    /// [`FollowError`]: an invalid name, a stream followed twice, or a
    /// socket that cannot take the control (the session is closing).
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: if cancelled, the stream is not followed, but its
    /// control may have gone out.
    pub async fn follow(&mut self, stream: &str) -> Result<Followed, FollowError<K::Error>> {
        // Boxed: a handler's task keeps the size of its largest await for
        // its whole life, and this one is large and rare.
        Box::pin(self.follow_now(stream)).await
    }

    async fn follow_now(&mut self, stream: &str) -> Result<Followed, FollowError<K::Error>> {
        check_stream(stream).map_err(FollowError::Stream)?;
        if self.followers.iter().any(|f| &*f.stream == stream) {
            return Err(FollowError::Twice);
        }
        // Subscribed first: every entry appended after the log is read
        // below is in this channel, so replay meets live without a hole.
        let (name, rx) = self.feed.subscribe(stream);
        let rx = Subscription {
            feed: &self.feed,
            stream: &name,
            rx: Some(rx),
        };
        let asked = self
            .point
            .get(stream)
            .and_then(|p| Some((Epoch::new(p.epoch()).ok()?, p.seq())));
        let (followed, start) = Self::start(&self.feed, stream, asked).await;
        let control = {
            let position = Position::new(stream, start.epoch.as_str(), start.after)
                .map_err(FollowError::Stream)?;
            match followed {
                Followed::Fresh => Control::Follow(position),
                Followed::Resumed => Control::Resumed(position),
                Followed::Resync(reason) => Control::Resync(position, reason),
            }
        };
        if self.framed() {
            let frame = K::text_frame(control.to_frame());
            self.socket.send(frame).await.map_err(FollowError::Socket)?;
        }
        metrics::resume_follow(match followed {
            Followed::Fresh => "fresh",
            Followed::Resumed => "resumed",
            Followed::Resync(reason) => {
                metrics::resume_resync(reason);
                "resync"
            }
        });
        let max = self.feed.replay_batch();
        let follower = Follower::new(name.clone(), rx.take(), start, max);
        // Exactly: most sessions follow one or two streams, and a follower
        // is 128 B.
        self.followers.reserve_exact(1);
        self.followers.push(follower);
        Ok(followed)
    }

    /// How `stream` starts: from the log, or, when the log fails, from what
    /// this process's hub has seen.
    async fn start(feed: &Feed<L>, stream: &str, asked: Option<(Epoch, u64)>) -> (Followed, Start) {
        let begin = |followed, epoch, after, batch| {
            (
                followed,
                Start {
                    epoch,
                    after,
                    unlogged: false,
                    batch,
                },
            )
        };
        let failure = match &asked {
            Some((epoch, after)) => {
                let read = feed.read(stream.into(), epoch.clone(), *after).await;
                match read {
                    Ok(Read::Entries(batch)) => {
                        metrics::resume_replayed(batch.len() as u64);
                        return begin(Followed::Resumed, epoch.clone(), *after, batch);
                    }
                    Ok(Read::Resync { reason, head }) => {
                        return begin(Followed::Resync(reason), head.epoch, head.last, Vec::new());
                    }
                    Err(e) => ("read", e),
                }
            }
            None => match feed.head(stream).await {
                Ok(head) => return begin(Followed::Fresh, head.epoch, head.last, Vec::new()),
                Err(e) => ("head", e),
            },
        };
        feed.failed(failure.0, stream, &failure.1);
        let mark = feed.mark(stream);
        let followed = match asked {
            None => Followed::Fresh,
            Some((epoch, after)) if epoch == mark.epoch && after == mark.seq => Followed::Resumed,
            Some(_) => Followed::Resync(ResyncReason::Unavailable),
        };
        (
            followed,
            Start {
                epoch: mark.epoch,
                after: mark.seq,
                unlogged: !mark.logged,
                batch: Vec::new(),
            },
        )
    }

    /// Stops delivering `stream` on this connection; false if it was not
    /// followed.
    pub fn unfollow(&mut self, stream: &str) -> bool {
        let Some(i) = self.followers.iter().position(|f| &*f.stream == stream) else {
            return false;
        };
        let follower = self.followers.swap_remove(i);
        let name = follower.stream.clone();
        drop(follower);
        self.feed.unsubscribed(&name);
        true
    }

    /// Receives the next message from the client, and meanwhile writes the
    /// followed streams' messages; `None` once the session is over.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a message is taken from its stream only in the poll
    /// that writes it, and log reads in flight belong to the socket.
    pub async fn recv(&mut self) -> Option<Received<K>> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Delivers the followed streams until the session is over, dropping
    /// what the client sends: for handlers that only push.
    pub async fn run(mut self) {
        while let Some(received) = self.recv().await {
            if received.is_err() {
                break;
            }
        }
    }

    /// Sends an application message outside any stream (a `p` frame on
    /// framed connections), and flushes it.
    ///
    /// # Errors
    ///
    /// [`Error::Closing`] once the session is closing;
    /// [`Error::Transport`] for socket errors.
    ///
    /// # Cancel safety
    ///
    /// As [`Socket::send`].
    pub async fn send(&mut self, payload: impl Into<Payload>) -> Result<(), Error<K::Error>> {
        let msg = self.plain(payload.into());
        self.socket.send(msg).await
    }

    fn plain(&self, payload: Payload) -> K::Message {
        if !self.framed() {
            return K::data_frame(payload.bytes().clone(), payload.is_text());
        }
        let mut frame = Vec::with_capacity(PLAIN_PREFIX.len() + payload.len());
        frame.extend_from_slice(PLAIN_PREFIX);
        frame.extend_from_slice(payload.as_bytes());
        K::data_frame(Bytes::from(frame), payload.is_text())
    }

    /// A message to send right before the drain's Close (a `p` frame on
    /// framed connections); see [`Socket::set_goodbye`].
    pub fn set_goodbye(&self, payload: impl Into<Payload>) {
        self.socket.set_goodbye(self.plain(payload.into()));
    }

    /// See [`Socket::closing`].
    pub fn closing(&self) -> impl Future<Output = ()> + Send + 'static {
        self.socket.closing()
    }

    /// See [`Socket::draining`].
    pub fn draining(&self) -> impl Future<Output = ()> + Send + 'static {
        self.socket.draining()
    }

    /// The drain this session belongs to.
    pub fn drain(&self) -> &Drain {
        self.socket.drain()
    }

    /// The hint this session is closed with, once its turn came.
    pub fn close_hint(&self) -> Option<CloseHint> {
        self.socket.close_hint()
    }

    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Received<K>>> {
        if !self.stopped
            && let Err(e) = self.poll_deliver(cx)
        {
            self.stopped = true;
            if let Error::Transport(e) = e {
                return Poll::Ready(Some(Err(Error::Transport(e))));
            }
        }
        Pin::new(&mut self.socket).poll_next(cx)
    }

    /// Writes what the followed streams have, while the socket takes it.
    fn poll_deliver(&mut self, cx: &mut Context<'_>) -> Result<(), Error<K::Error>> {
        let mut budget = WRITE_BUDGET;
        while !self.followers.is_empty() {
            if Pin::new(&mut self.socket).poll_ready(cx)?.is_pending() {
                break;
            }
            let Some(msg) = self.next_frame(cx) else {
                break;
            };
            Pin::new(&mut self.socket).start_send(msg)?;
            self.unflushed = true;
            budget -= 1;
            if budget == 0 {
                cx.waker().wake_by_ref();
                break;
            }
        }
        if self.unflushed && Pin::new(&mut self.socket).poll_flush(cx)?.is_ready() {
            self.unflushed = false;
        }
        Ok(())
    }

    /// The next frame of any followed stream, taking turns.
    fn next_frame(&mut self, cx: &mut Context<'_>) -> Option<K::Message> {
        let framed = self.framed();
        let n = self.followers.len();
        for k in 0..n {
            let i = (self.turn + k) % n;
            loop {
                match self.followers[i].poll_next(cx, &self.feed) {
                    Poll::Ready(Some(Out::Entry(entry))) => {
                        self.turn = i + 1;
                        let data = if framed {
                            entry.frame().clone()
                        } else {
                            entry.payload()
                        };
                        return Some(K::data_frame(data, entry.is_text()));
                    }
                    Poll::Ready(Some(Out::Control(control))) => {
                        if framed {
                            self.turn = i + 1;
                            return Some(K::text_frame(control.to_frame()));
                        }
                    }
                    Poll::Ready(None) | Poll::Pending => break,
                }
            }
        }
        None
    }
}

impl<K: ResumeStack, L: Log> Drop for ResumableSocket<K, L> {
    fn drop(&mut self) {
        for follower in self.followers.drain(..) {
            let name = follower.stream.clone();
            drop(follower);
            self.feed.unsubscribed(&name);
        }
    }
}

/// A hub receiver not yet handed to its follower: dropped (an error, a
/// cancelled `follow`), it unsubscribes.
struct Subscription<'a, L: Log> {
    feed: &'a Feed<L>,
    stream: &'a Arc<str>,
    rx: Option<broadcast::Receiver<Entry>>,
}

impl<L: Log> Subscription<'_, L> {
    fn take(mut self) -> broadcast::Receiver<Entry> {
        self.rx.take().expect("a subscription is taken once")
    }
}

impl<L: Log> Drop for Subscription<'_, L> {
    fn drop(&mut self) {
        if let Some(rx) = self.rx.take() {
            drop(rx);
            self.feed.unsubscribed(self.stream);
        }
    }
}
