//! tokio-tungstenite integration of wsdrain, for servers that do not use
//! axum: they accept WebSockets with tokio-tungstenite on a `TcpStream` (or
//! any stream), or upgrade through hyper and wrap the upgraded connection.
//!
//! * [`accept`]: the handshake, refused with `503` + `Retry-After` once the
//!   drain is closing or at its limit, then the session;
//! * [`run`]: the session on a socket upgraded elsewhere (hyper's
//!   `upgrade::on`, `WebSocketStream::from_raw_socket`), with a
//!   [`SessionGuard`] registered before the `101` went out;
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
        self, Message,
        handshake::server::{ErrorResponse, Request, Response},
        http::{HeaderValue, StatusCode, header},
        protocol::{CloseFrame, WebSocketConfig},
    },
};
use wsdrain_core::{Drain, Refused, SessionGuard, ws};

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
}

impl fmt::Display for AcceptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AcceptError::Refused(r) => write!(f, "upgrade refused: {r}"),
            AcceptError::Handshake(e) => write!(f, "websocket handshake failed: {e}"),
        }
    }
}

impl std::error::Error for AcceptError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            AcceptError::Refused(r) => Some(r),
            AcceptError::Handshake(e) => Some(e),
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
