//! tokio-tungstenite integration of wsdrain, for servers that do not use
//! axum: they accept WebSockets with tokio-tungstenite on a `TcpStream` (or
//! any stream), or upgrade through hyper and wrap the upgraded connection.
//!
//! * [`accept`]: the handshake, refused with `503` + `Retry-After` once the
//!   drain is closing or at its limit, then the session;
//! * [`run`]: the session on a socket upgraded elsewhere (hyper's
//!   `upgrade::on`, `WebSocketStream::from_raw_socket`), with a
//!   [`SessionGuard`] registered before the `101` went out;
//! * [`accept_resumable`]: the same for sessions that resume
//!   (`wsdrain.resume.v1`), with the application's `admit` check in the
//!   handshake and a [`ResumableSocket`] for the handler;
//! * [`GracefulSocket`]: what the handler gets, which closes itself with
//!   `Close(1001, "going away; retry-after-ms=N")` at its turn, whoever holds
//!   it.
//!
//! The session core is the same as `wsdrain-axum`'s ([`wsdrain_core::ws`]).
//!
//! # Example
//!
//! ```no_run
//! use tokio::net::TcpListener;
//! use wsdrain_core::{DrainController, DrainPolicy};
//! use wsdrain_tungstenite::GracefulSocket;
//!
//! async fn echo(mut socket: GracefulSocket<tokio::net::TcpStream>) {
//!     while let Some(Ok(msg)) = socket.recv().await {
//!         if (msg.is_text() || msg.is_binary()) && socket.send(msg).await.is_err() {
//!             break; // closing: the Close already went out
//!         }
//!     }
//! }
//!
//! # async fn main_() -> std::io::Result<()> {
//! let controller = DrainController::new(DrainPolicy::from_env().expect("policy"));
//! let _signals = controller.listen_for_signals()?;
//! let listener = TcpListener::bind("127.0.0.1:3000").await?;
//! let drain = controller.drain();
//! let accepting = async {
//!     loop {
//!         let Ok((tcp, _)) = listener.accept().await else { continue };
//!         let drain = drain.clone();
//!         tokio::spawn(async move {
//!             let _ = wsdrain_tungstenite::accept(&drain, tcp, echo).await;
//!         });
//!     }
//! };
//! // Accept until the drain is over, then return its report.
//! let report = tokio::select! {
//!     report = controller.run() => report,
//!     _ = accepting => unreachable!(),
//! };
//! println!("{report}");
//! # Ok(()) }
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]

use std::{fmt, future::Future, marker::PhantomData};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{
        self, Bytes, Message, Utf8Bytes,
        handshake::server::{ErrorResponse, Request, Response},
        http::{HeaderValue, StatusCode, header},
        protocol::{CloseFrame, WebSocketConfig},
    },
};
use wsdrain_core::{
    Drain, Refused, SessionGuard,
    resume::{self, Feed, Log, ResumePoint, ResumeStack, SUBPROTOCOL},
    ws,
};

/// tokio-tungstenite's `WebSocketStream<S>`, as the session core sees it.
pub struct Tungstenite<S>(PhantomData<fn() -> S>);

impl<S> ws::Stack for Tungstenite<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Socket = WebSocketStream<S>;
    type Message = Message;
    type Error = tungstenite::Error;

    fn close_frame(code: u16, reason: String) -> Message {
        Message::Close(Some(CloseFrame {
            code: code.into(),
            reason: reason.into(),
        }))
    }

    fn text_frame(text: String) -> Message {
        Message::Text(text.into())
    }

    fn is_close(message: &Message) -> bool {
        message.is_close()
    }
}

impl<S> ResumeStack for Tungstenite<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    fn data_frame(data: Bytes, text: bool) -> Message {
        if text {
            // Text entries are UTF-8 by construction; the check is the
            // constructor's, without a copy.
            if let Ok(text) = Utf8Bytes::try_from(data.clone()) {
                return Message::Text(text);
            }
        }
        Message::Binary(data)
    }
}

/// A resumable session's socket over `S`; see
/// [`wsdrain_core::resume::ResumableSocket`].
pub type ResumableSocket<S, L> = resume::ResumableSocket<Tungstenite<S>, L>;

/// A WebSocket over `S` that closes itself at its turn; see
/// [`wsdrain_core::ws::Socket`].
pub type GracefulSocket<S> = ws::Socket<Tungstenite<S>>;

/// The error of [`GracefulSocket`]'s `recv` and `send`.
pub type Error = ws::Error<tungstenite::Error>;

/// Why [`accept`] did not run a session.
#[derive(Debug)]
#[non_exhaustive]
pub enum AcceptError {
    /// Refused with `503` + `Retry-After`: the drain is closing, at its
    /// session limit, or over.
    Refused(Refused),
    /// The WebSocket handshake failed.
    Handshake(tungstenite::Error),
    /// Answered with this status instead of `101`: a resume point that
    /// cannot be read (`400`), or what `admit` answered
    /// ([`accept_resumable`]).
    Rejected(StatusCode),
}

impl fmt::Display for AcceptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AcceptError::Refused(r) => write!(f, "upgrade refused: {r}"),
            AcceptError::Handshake(e) => write!(f, "websocket handshake failed: {e}"),
            AcceptError::Rejected(status) => write!(f, "upgrade answered {status}"),
        }
    }
}

impl std::error::Error for AcceptError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            AcceptError::Refused(r) => Some(r),
            AcceptError::Handshake(e) => Some(e),
            AcceptError::Rejected(_) => None,
        }
    }
}

/// Accepts a WebSocket on `stream` and runs `handler` on it as a drained
/// session; see [`accept_with_config`].
///
/// # Errors
///
/// As [`accept_with_config`].
///
/// # Cancel safety
///
/// As [`accept_with_config`]: not cancel safe.
pub async fn accept<S, H, Fut>(drain: &Drain, stream: S, handler: H) -> Result<(), AcceptError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: FnOnce(GracefulSocket<S>) -> Fut + Send,
    Fut: Future<Output = ()> + Send,
{
    accept_with_config(drain, stream, None, handler).await
}

/// Accepts a WebSocket on `stream` with tungstenite's `config`, and runs
/// `handler` on it as a drained session.
///
/// The session is registered while the handshake request is read, before
/// the `101` goes out, so a drain cannot miss it. From Closing on, at the
/// session limit and after the forced end, the handshake is answered with
/// `503`, `Retry-After` and `Connection: close` instead.
///
/// Returns when the session is over ([`run`]).
///
/// # Errors
///
/// [`AcceptError::Refused`] after answering 503;
/// [`AcceptError::Handshake`] if the handshake failed.
///
/// # Cancel safety
///
/// Not cancel safe: dropping it drops the connection (and releases the
/// session).
pub async fn accept_with_config<S, H, Fut>(
    drain: &Drain,
    stream: S,
    config: Option<WebSocketConfig>,
    handler: H,
) -> Result<(), AcceptError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: FnOnce(GracefulSocket<S>) -> Fut + Send,
    Fut: Future<Output = ()> + Send,
{
    let mut admitted: Option<Result<SessionGuard, Refused>> = None;
    // The shape tungstenite's handshake callback must have.
    #[allow(clippy::result_large_err)]
    let callback = |_: &Request, response: Response| {
        let result = drain.register_upgrade();
        let outcome = match &result {
            Ok(_) => Ok(response),
            Err(refused) => Err(refusal(drain, *refused)),
        };
        admitted = Some(result);
        outcome
    };
    let handshake = tokio_tungstenite::accept_hdr_async_with_config(stream, callback, config).await;
    match (handshake, admitted) {
        (Ok(socket), Some(Ok(session))) => {
            run(socket, session, handler).await;
            Ok(())
        }
        (_, Some(Err(refused))) => Err(AcceptError::Refused(refused)),
        (Err(e), _) => Err(AcceptError::Handshake(e)),
        (Ok(_), None) => Err(AcceptError::Handshake(tungstenite::Error::ConnectionClosed)),
    }
}

/// Accepts a WebSocket whose session can resume (`wsdrain.resume.v1`), and
/// runs `handler` on its [`ResumableSocket`] reading from `feed`.
///
/// In the handshake request: the resume point is read (one that cannot be
/// is answered `400`, naming the problem); then `admit` sees the request and
/// the point, and either answers the request itself (`Err`, e.g. `403` for
/// a point naming a stream the user may not read: **the point grants
/// nothing**) or returns what the handler needs to know (the user, say);
/// then the session is registered as by [`accept`], and the subprotocol is
/// selected if the client offered it.
///
/// # Errors
///
/// As [`accept_with_config`], and [`AcceptError::Rejected`] with the status
/// of a `400` or of `admit`'s answer.
///
/// # Cancel safety
///
/// Not cancel safe: dropping it drops the connection.
pub async fn accept_resumable<S, L, A, T, H, Fut>(
    drain: &Drain,
    stream: S,
    feed: Feed<L>,
    admit: A,
    handler: H,
) -> Result<(), AcceptError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    L: Log,
    A: FnOnce(&Request, &ResumePoint) -> Result<T, ErrorResponse> + Send,
    T: Send,
    H: FnOnce(ResumableSocket<S, L>, T) -> Fut + Send,
    Fut: Future<Output = ()> + Send,
{
    let mut admitted: Option<Result<(SessionGuard, ResumePoint, T), AcceptError>> = None;
    // Boxed: the handshake wants an `Unpin` callback, whatever `A` is.
    let admit = Box::new(admit);
    // The shape tungstenite's handshake callback must have.
    #[allow(clippy::result_large_err)]
    let callback = |request: &Request, mut response: Response| {
        let point = match ResumePoint::from_request_head(request.uri(), request.headers()) {
            Ok(point) => point,
            Err(e) => {
                let mut answer = ErrorResponse::new(Some(format!("{e}\n")));
                *answer.status_mut() = StatusCode::BAD_REQUEST;
                admitted = Some(Err(AcceptError::Rejected(StatusCode::BAD_REQUEST)));
                return Err(answer);
            }
        };
        let value = match admit(request, &point) {
            Ok(value) => value,
            Err(answer) => {
                admitted = Some(Err(AcceptError::Rejected(answer.status())));
                return Err(answer);
            }
        };
        match drain.register_upgrade() {
            Ok(session) => {
                if point.offered() {
                    response.headers_mut().insert(
                        header::SEC_WEBSOCKET_PROTOCOL,
                        HeaderValue::from_static(SUBPROTOCOL),
                    );
                }
                admitted = Some(Ok((session, point, value)));
                Ok(response)
            }
            Err(refused) => {
                admitted = Some(Err(AcceptError::Refused(refused)));
                Err(refusal(drain, refused))
            }
        }
    };
    let handshake = tokio_tungstenite::accept_hdr_async(stream, callback).await;
    match (handshake, admitted) {
        (Ok(socket), Some(Ok((session, point, value)))) => {
            run(socket, session, move |socket| {
                handler(resume::ResumableSocket::new(socket, feed, point), value)
            })
            .await;
            Ok(())
        }
        (_, Some(Err(e))) => Err(e),
        (Err(e), _) => Err(AcceptError::Handshake(e)),
        (Ok(_), None) => Err(AcceptError::Handshake(tungstenite::Error::ConnectionClosed)),
    }
}

fn refusal(drain: &Drain, refused: Refused) -> ErrorResponse {
    let secs = drain.policy().draw_hint().retry_after_header_secs();
    let mut response = ErrorResponse::new(Some(format!("{refused}; retry in {secs} s\n")));
    *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    let headers = response.headers_mut();
    headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Runs `handler` on a socket upgraded elsewhere (hyper's `upgrade::on`
/// wrapped with `WebSocketStream::from_raw_socket`), as the drained session
/// `session`. Register the session ([`Drain::register_upgrade`]) before
/// answering `101`, so a drain cannot miss it.
///
/// Returns when the handler has returned and the close is over; see
/// [`wsdrain_core::ws::run`] for the bounds.
pub fn run<S, H, Fut>(
    socket: WebSocketStream<S>,
    session: SessionGuard,
    handler: H,
) -> impl Future<Output = ()> + Send
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: FnOnce(GracefulSocket<S>) -> Fut + Send,
    Fut: Future<Output = ()> + Send,
{
    ws::run::<Tungstenite<S>, _, _>(socket, session, handler)
}
