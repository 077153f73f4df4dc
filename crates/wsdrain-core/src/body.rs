//! [`DrainBody`]: the inner service's body, a streaming body tracked as a
//! session ([`SessionBody`]), or a small one of our own.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::time::Sleep;
use wsdrain_protocol::CloseHint;

use crate::{drain::SessionGuard, outcome::SessionOutcome, transport::Transport};

pin_project! {
    /// Response body of [`DrainService`](crate::DrainService): the inner
    /// service's body untouched, a streaming body tracked as a session, or
    /// the short body of a health or refusal response. No box per request.
    #[project = DrainBodyProj]
    #[derive(Debug)]
    #[allow(missing_docs)] // pin-project-lite takes no docs on variant fields

    pub enum DrainBody<B> {
        /// The inner service's body.
        Inner {
            #[pin]
            body: B,
        },
        /// A body written by the layer itself.
        Full {
            data: Option<Bytes>,
        },
        /// A Server-Sent Events stream or an opted-in streaming body, tracked
        /// as a session of the drain.
        Session {
            #[pin]
            body: SessionBody<B>,
        },
    }
}

impl<B> DrainBody<B> {
    pub(crate) fn full(data: impl Into<Bytes>) -> Self {
        DrainBody::Full {
            data: Some(data.into()),
        }
    }
}

impl<B> Body for DrainBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.project() {
            DrainBodyProj::Inner { body } => body.poll_frame(cx),
            DrainBodyProj::Full { data } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            DrainBodyProj::Session { body } => body.poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            DrainBody::Inner { body } => body.is_end_stream(),
            DrainBody::Full { data } => data.is_none(),
            DrainBody::Session { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            DrainBody::Inner { body } => body.size_hint(),
            DrainBody::Full { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            // It may end early, at its turn: never promise a length.
            DrainBody::Session { .. } => SizeHint::default(),
        }
    }
}

/// The application's last event for a Server-Sent Events stream at its turn
/// (set with [`DrainLayer::sse_farewell`](crate::DrainLayer::sse_farewell)),
/// sent just before the `retry:` block. Return a complete event, ending with
/// a blank line, e.g. `"event: bye\ndata: see you\n\n"`; `None` sends
/// nothing. Any `Fn(CloseHint) -> Option<Bytes> + Send + Sync + 'static` is one.
pub trait SseFarewell: Send + Sync + 'static {
    /// The bytes to send before the `retry:` block, given this stream's hint.
    fn farewell(&self, hint: CloseHint) -> Option<Bytes>;
}

impl<F> SseFarewell for F
where
    F: Fn(CloseHint) -> Option<Bytes> + Send + Sync + 'static,
{
    fn farewell(&self, hint: CloseHint) -> Option<Bytes> {
        self(hint)
    }
}

#[derive(Clone)]
pub(crate) struct Farewell(pub(crate) Arc<dyn SseFarewell>);

impl fmt::Debug for Farewell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SseFarewell")
    }
}

/// The last block of an SSE stream: the application's farewell, then
/// `retry: <hint in ms>` and a blank line.
pub(crate) fn sse_last_block(hint: CloseHint, farewell: Option<&Farewell>) -> Bytes {
    let retry = format!("retry: {}\n\n", hint.retry_after_ms());
    match farewell.and_then(|f| f.0.farewell(hint)) {
        Some(first) if !first.is_empty() => {
            let mut v = Vec::with_capacity(first.len() + retry.len());
            v.extend_from_slice(&first);
            v.extend_from_slice(retry.as_bytes());
            Bytes::from(v)
        }
        _ => Bytes::from(retry),
    }
}

/// Where a body may end without cutting a unit of its format in half.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Boundary {
    /// SSE: after a blank line. `ends` counts the line ends at the tail of
    /// what was sent (at most 2), `cr` says the last byte was `\r` (a `\n`
    /// in the next frame then completes the same line end).
    Event { ends: u8, cr: bool },
    /// NDJSON and other line formats: after `\n`.
    Line { at: bool },
    /// Any other stream: after any frame.
    Frame,
}

impl Boundary {
    pub(crate) fn event() -> Self {
        Boundary::Event { ends: 2, cr: false }
    }

    pub(crate) fn line() -> Self {
        Boundary::Line { at: true }
    }

    pub(crate) fn feed(&mut self, data: &[u8]) {
        let Some(&last) = data.last() else { return };
        match self {
            Boundary::Event { ends, cr } => {
                let start = data
                    .iter()
                    .rposition(|b| !matches!(b, b'\r' | b'\n'))
                    .map_or(0, |i| i + 1);
                let (mut n, mut prev_cr) = if start == 0 { (*ends, *cr) } else { (0, false) };
                for &b in &data[start..] {
                    if b == b'\r' || !prev_cr {
                        n = n.saturating_add(1).min(2);
                    }
                    prev_cr = b == b'\r';
                }
                *ends = n;
                *cr = prev_cr;
            }
            Boundary::Line { at } => *at = last == b'\n',
            Boundary::Frame => {}
        }
    }

    pub(crate) fn at_boundary(&self) -> bool {
        match self {
            Boundary::Event { ends, .. } => *ends >= 2,
            Boundary::Line { at } => *at,
            Boundary::Frame => true,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Passing the inner body's frames on.
    Open,
    /// The turn came at a boundary: the last block (SSE: with this hint in
    /// milliseconds) goes out, then the end.
    Ending(Option<u64>),
    /// Ended cleanly.
    Done,
    /// Released from the drain without a clean end (forced, or no boundary
    /// within `close_timeout`): never ended, the server drops the connection.
    Cut,
}

pin_project! {
    /// A streaming response tracked as a session: a Server-Sent Events stream,
    /// or a body the application opted in with
    /// [`DrainLayer::streams`](crate::DrainLayer::streams) or
    /// [`DrainStream`](crate::DrainStream).
    ///
    /// Frames pass through untouched until the session's turn. Then it ends
    /// at the next boundary of its format (after a blank line for SSE, after
    /// `\n` for NDJSON, after any frame otherwise); an SSE stream sends one
    /// last block first, `retry: <hint in ms>` (after the application's
    /// farewell, if any). A body that finds no boundary within
    /// `close_timeout`, or is still open at the forced end, is never given a
    /// clean end: it is released from the drain and its connection dropped,
    /// so the client sees a truncated response rather than a short one.
    pub struct SessionBody<B> {
        #[pin]
        inner: B,
        guard: Option<SessionGuard>,
        boundary: Boundary,
        farewell: Option<Arc<Farewell>>,
        timer: Option<Pin<Box<Sleep>>>,
        state: State,
    }
}

impl<B> fmt::Debug for SessionBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionBody")
            .field("session", &self.guard)
            .field("boundary", &self.boundary)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl<B> SessionBody<B> {
    pub(crate) fn new(
        inner: B,
        mut guard: SessionGuard,
        boundary: Boundary,
        farewell: Option<Arc<Farewell>>,
    ) -> Self {
        // Until it ends one way or another, a dropped body is a client gone.
        guard.finish(SessionOutcome::PeerClosed, None);
        SessionBody {
            inner,
            guard: Some(guard),
            boundary,
            farewell,
            timer: None,
            state: State::Open,
        }
    }

    /// What kind of session it is.
    pub fn transport(&self) -> Option<Transport> {
        self.guard.as_ref().map(SessionGuard::transport)
    }
}

fn release(guard: &mut Option<SessionGuard>, outcome: SessionOutcome) {
    if let Some(mut g) = guard.take() {
        g.finish(outcome, None);
    }
}

impl<B> Body for SessionBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let mut this = self.project();
        loop {
            match *this.state {
                State::Open => {
                    let Some(guard) = this.guard.as_ref() else {
                        *this.state = State::Done;
                        continue;
                    };
                    if guard.is_forced() {
                        release(this.guard, SessionOutcome::Forced);
                        *this.state = State::Cut;
                        continue;
                    }
                    if let Poll::Ready(hint) = guard.poll_turn(cx) {
                        if this.boundary.at_boundary() {
                            let sse = guard.transport() == Transport::Sse;
                            *this.state = State::Ending(sse.then(|| hint.retry_after_ms()));
                            continue;
                        }
                        // Mid-event: wait for the boundary, bounded. Rare,
                        // so the timer is allocated only here.
                        let close_timeout = guard.drain().policy().close_timeout();
                        let timer = this
                            .timer
                            .get_or_insert_with(|| Box::pin(tokio::time::sleep(close_timeout)));
                        if timer.as_mut().poll(cx).is_ready() {
                            tracing::debug!(target: "wsdrain", "stream found no boundary within close_timeout");
                            release(this.guard, SessionOutcome::TimedOut);
                            *this.state = State::Cut;
                            continue;
                        }
                    }
                    return match this.inner.as_mut().poll_frame(cx) {
                        Poll::Ready(Some(Ok(frame))) => {
                            if let Some(data) = frame.data_ref() {
                                this.boundary.feed(data);
                            }
                            Poll::Ready(Some(Ok(frame)))
                        }
                        Poll::Ready(Some(Err(e))) => {
                            release(this.guard, SessionOutcome::Ended);
                            *this.state = State::Done;
                            Poll::Ready(Some(Err(e)))
                        }
                        Poll::Ready(None) => {
                            release(this.guard, SessionOutcome::Ended);
                            *this.state = State::Done;
                            Poll::Ready(None)
                        }
                        Poll::Pending => Poll::Pending,
                    };
                }
                State::Ending(hint) => {
                    *this.state = State::Ending(None);
                    if let Some(ms) = hint {
                        let farewell = this.farewell.as_deref();
                        let last = sse_last_block(CloseHint::from_millis(ms), farewell);
                        return Poll::Ready(Some(Ok(Frame::data(last))));
                    }
                    release(this.guard, SessionOutcome::Clean);
                    *this.state = State::Done;
                }
                State::Done => return Poll::Ready(None),
                // No waker: the connection is dropped by the server (Closed,
                // then the bounded wait), which the client sees as a cut.
                State::Cut => return Poll::Pending,
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.state == State::Done
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::{DrainController, DrainPolicy, Phase};
    use http_body_util::{BodyExt, StreamBody};
    use std::{convert::Infallible, time::Duration};
    use tokio::sync::mpsc;

    type Tx = mpsc::UnboundedSender<&'static str>;

    /// A body whose frames the test sends, one by one.
    fn channel_body() -> (
        Tx,
        impl Body<Data = Bytes, Error = Infallible> + Unpin + Send + 'static,
    ) {
        let (tx, mut rx) = mpsc::unbounded_channel::<&'static str>();
        let frames = futures_util::stream::poll_fn(move |cx| {
            rx.poll_recv(cx)
                .map(|s| s.map(|s| Ok::<_, Infallible>(Frame::data(Bytes::from(s)))))
        });
        (tx, StreamBody::new(frames))
    }

    fn controller() -> std::sync::Arc<DrainController> {
        let policy = DrainPolicy::builder()
            .drain_delay(Duration::ZERO)
            .close_window(Duration::from_secs(1))
            .close_timeout(Duration::from_secs(2))
            .grace_period(Duration::from_secs(20))
            .retry_after(Duration::from_millis(1500), Duration::from_millis(1500))
            .build()
            .unwrap();
        std::sync::Arc::new(DrainController::new(policy))
    }

    async fn data<B: Body<Data = Bytes> + Unpin>(body: &mut B) -> Option<Bytes>
    where
        B::Error: fmt::Debug,
    {
        let frame = body.frame().await?.unwrap();
        Some(frame.into_data().unwrap())
    }

    #[tokio::test(start_paused = true)]
    async fn a_turn_mid_event_waits_for_the_boundary() {
        let c = controller();
        let drain = c.drain();
        let (tx, inner) = channel_body();
        let guard = drain.register_session_as(Transport::Sse).unwrap();
        let body = SessionBody::new(inner, guard, Boundary::event(), None);
        let mut body = std::pin::pin!(body);
        tx.send("id: 1\ndata: a").unwrap();
        assert_eq!(data(&mut body).await.unwrap(), "id: 1\ndata: a");
        let run = tokio::spawn({
            let c = c.clone();
            async move { c.run().await }
        });
        c.begin();
        drain.closing().await;
        // The turn came mid-event: the rest of the event still goes out.
        tx.send("\n\n").unwrap();
        assert_eq!(data(&mut body).await.unwrap(), "\n\n");
        assert_eq!(data(&mut body).await.unwrap(), "retry: 1500\n\n");
        assert!(body.frame().await.is_none(), "a clean end");
        assert!(body.is_end_stream());
        let report = run.await.unwrap();
        assert_eq!((report.closed_clean, report.forced), (1, 0), "{report}");
    }

    #[tokio::test(start_paused = true)]
    async fn no_boundary_within_close_timeout_is_a_cut_not_an_end() {
        let c = controller();
        let drain = c.drain();
        let (tx, inner) = channel_body();
        let guard = drain.register_session_as(Transport::Stream).unwrap();
        let body = SessionBody::new(inner, guard, Boundary::line(), None);
        let mut body = std::pin::pin!(body);
        tx.send("{\"half\":").unwrap();
        data(&mut body).await.unwrap();
        c.begin();
        let started = tokio::time::Instant::now();
        let report = tokio::select! {
            report = c.run() => report,
            _ = body.frame() => panic!("no frame, and no end, after half a line"),
        };
        assert_eq!(report.timed_out, 1, "{report}");
        assert_eq!(started.elapsed(), Duration::from_secs(2), "close_timeout");
        assert_eq!(drain.sessions(), 0, "released from the drain");
        let more = tokio::time::timeout(Duration::from_secs(60), body.frame()).await;
        assert!(more.is_err(), "never ended cleanly: {more:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn the_forced_end_cuts_and_ended_bodies_count_as_ended() {
        let c = controller();
        let drain = c.drain();
        let (tx, inner) = channel_body();
        let guard = drain.register_session_as(Transport::Sse).unwrap();
        let stuck = SessionBody::new(inner, guard, Boundary::event(), None);
        let mut stuck = std::pin::pin!(stuck);
        tx.send("data: half").unwrap();
        data(&mut stuck).await.unwrap();
        let (tx2, inner2) = channel_body();
        let guard2 = drain.register_session_as(Transport::Sse).unwrap();
        let mut ends = SessionBody::new(inner2, guard2, Boundary::event(), None);
        c.begin();
        assert_eq!(drain.phase(), Phase::Draining);
        drop(tx2);
        assert!(ends.frame().await.is_none(), "the application's own end");
        c.force();
        let report = c.run().await;
        assert_eq!((report.ended, report.forced), (1, 1), "{report}");
        let more = tokio::time::timeout(Duration::from_secs(60), stuck.frame()).await;
        assert!(more.is_err(), "cut, not ended: {more:?}");
        assert_eq!(drain.sessions(), 0);
        drop(tx);
    }

    fn fed(mut b: Boundary, parts: &[&str]) -> bool {
        for p in parts {
            b.feed(p.as_bytes());
        }
        b.at_boundary()
    }

    #[test]
    fn sse_boundaries() {
        assert!(Boundary::event().at_boundary(), "nothing sent yet");
        assert!(fed(Boundary::event(), &["data: a\n\n"]));
        assert!(fed(Boundary::event(), &["data: a\r\n\r\n"]));
        assert!(fed(Boundary::event(), &["data: a\r\r"]));
        assert!(fed(Boundary::event(), &["data: a\n", "\n"]));
        assert!(fed(Boundary::event(), &["id: 1\ndata: a", "\n", "\n"]));
        assert!(!fed(Boundary::event(), &["data: a\n"]));
        assert!(!fed(Boundary::event(), &["data: a\r", "\n"]), "CR LF split");
        assert!(fed(Boundary::event(), &["data: a\r", "\n\r\n"]));
        assert!(!fed(Boundary::event(), &["data: a\n\n", "data: b"]));
        assert!(!fed(Boundary::event(), &["data: a\n\ndata: b\n"]));
        assert!(fed(Boundary::event(), &[": keep-alive\n\n", ""]));
    }

    #[test]
    fn line_boundaries() {
        assert!(Boundary::line().at_boundary());
        assert!(fed(Boundary::line(), &["{\"a\":1}\n"]));
        assert!(!fed(Boundary::line(), &["{\"a\":1}\n{\"b\""]));
        assert!(fed(Boundary::line(), &["{\"a\":1}\n{\"b\"", ":2}\n"]));
    }

    #[test]
    fn last_block_carries_the_hint() {
        let hint = CloseHint::from_millis(2345);
        assert_eq!(sse_last_block(hint, None), "retry: 2345\n\n");
        let bye = Farewell(Arc::new(|h: CloseHint| {
            Some(Bytes::from(format!(
                "event: bye\ndata: {}\n\n",
                h.retry_after_ms()
            )))
        }));
        assert_eq!(
            sse_last_block(hint, Some(&bye)),
            "event: bye\ndata: 2345\n\nretry: 2345\n\n"
        );
    }
}
