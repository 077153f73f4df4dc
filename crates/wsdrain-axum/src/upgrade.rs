//! [`GracefulUpgrade`]: a drop-in for axum's `WebSocketUpgrade` whose sockets
//! take part in the drain.

use std::future::Future;

use axum::{
    extract::{
        FromRequestParts,
        ws::{
            DefaultOnFailedUpgrade, OnFailedUpgrade, WebSocketUpgrade,
            rejection::WebSocketUpgradeRejection,
        },
    },
    http::{HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};
use wsdrain_core::{Drain, Refused, SessionGuard, ws};

use crate::socket::{Axum, GracefulSocket};

/// Extractor for a WebSocket upgrade whose socket is tracked and closed by
/// the drain. It takes the same settings as [`WebSocketUpgrade`].
///
/// It needs [`DrainLayer`](wsdrain_core::DrainLayer) on the router, which puts
/// the [`Drain`] observer into the request; without it the request is
/// rejected with a 500 that says so.
///
/// The session is registered when the extractor runs, before the `101` goes
/// out, so a drain cannot miss it; with
/// [`DrainPolicy::max_sessions`](wsdrain_core::DrainPolicy::max_sessions)
/// reached, the upgrade is refused with 503 + `Retry-After`.
///
/// # Example
///
/// ```
/// use axum::{Router, response::Response, routing::get};
/// use wsdrain_axum::{GracefulSocket, GracefulUpgrade};
/// use wsdrain_core::{DrainController, DrainLayer, DrainPolicy};
///
/// async fn ws(upgrade: GracefulUpgrade) -> Response {
///     upgrade.on_upgrade(|mut socket: GracefulSocket| async move {
///         while let Some(Ok(msg)) = socket.recv().await {
///             if socket.send(msg).await.is_err() {
///                 break;
///             }
///         }
///     })
/// }
///
/// let controller = DrainController::new(DrainPolicy::default());
/// let app: Router = Router::new()
///     .route("/ws", get(ws))
///     .layer(DrainLayer::new(controller.drain()));
/// ```
#[must_use]
pub struct GracefulUpgrade<F = DefaultOnFailedUpgrade> {
    inner: WebSocketUpgrade<F>,
    session: SessionGuard,
}

impl<F> std::fmt::Debug for GracefulUpgrade<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GracefulUpgrade")
            .field("inner", &self.inner)
            .field("session", &self.session)
            .finish()
    }
}

impl<F> GracefulUpgrade<F> {
    /// See [`WebSocketUpgrade::read_buffer_size`]. The default 128 KiB is most
    /// of what an idle session costs; 4 KiB cuts that twentyfold.
    pub fn read_buffer_size(self, size: usize) -> Self {
        self.map(|u| u.read_buffer_size(size))
    }
    /// See [`WebSocketUpgrade::write_buffer_size`].
    pub fn write_buffer_size(self, size: usize) -> Self {
        self.map(|u| u.write_buffer_size(size))
    }
    /// See [`WebSocketUpgrade::max_write_buffer_size`].
    pub fn max_write_buffer_size(self, max: usize) -> Self {
        self.map(|u| u.max_write_buffer_size(max))
    }
    /// See [`WebSocketUpgrade::max_message_size`].
    pub fn max_message_size(self, max: usize) -> Self {
        self.map(|u| u.max_message_size(max))
    }
    /// See [`WebSocketUpgrade::max_frame_size`].
    pub fn max_frame_size(self, max: usize) -> Self {
        self.map(|u| u.max_frame_size(max))
    }
    /// See [`WebSocketUpgrade::accept_unmasked_frames`].
    pub fn accept_unmasked_frames(self, accept: bool) -> Self {
        self.map(|u| u.accept_unmasked_frames(accept))
    }
    /// See [`WebSocketUpgrade::protocols`].
    pub fn protocols<I>(self, protocols: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<std::borrow::Cow<'static, str>>,
    {
        self.map(|u| u.protocols(protocols))
    }
    /// See [`WebSocketUpgrade::requested_protocols`].
    pub fn requested_protocols(&self) -> impl Iterator<Item = &HeaderValue> {
        self.inner.requested_protocols()
    }
    /// See [`WebSocketUpgrade::set_selected_protocol`].
    pub fn set_selected_protocol(&mut self, protocol: HeaderValue) {
        self.inner.set_selected_protocol(protocol);
    }
    /// See [`WebSocketUpgrade::selected_protocol`].
    pub fn selected_protocol(&self) -> Option<&HeaderValue> {
        self.inner.selected_protocol()
    }
    /// See [`WebSocketUpgrade::on_failed_upgrade`].
    pub fn on_failed_upgrade<C: OnFailedUpgrade>(self, callback: C) -> GracefulUpgrade<C> {
        GracefulUpgrade {
            inner: self.inner.on_failed_upgrade(callback),
            session: self.session,
        }
    }

    /// The drain the socket will belong to.
    pub fn drain(&self) -> &Drain {
        self.session.drain()
    }

    fn map(self, f: impl FnOnce(WebSocketUpgrade<F>) -> WebSocketUpgrade<F>) -> Self {
        GracefulUpgrade {
            inner: f(self.inner),
            session: self.session,
        }
    }

    /// Completes the upgrade and runs `callback` on the [`GracefulSocket`],
    /// beside the session's close ([`ws::run`]).
    ///
    /// The session (registered by the extractor) is released when the
    /// callback has returned and the close is over, a panic included, or
    /// here if the upgrade fails. The callback is bounded by the drain: it is
    /// dropped at the forced end, or `close_timeout` after its session's
    /// close was over if it is still running then.
    #[must_use = "to set up the WebSocket connection, this response must be returned"]
    pub fn on_upgrade<C, Fut>(self, callback: C) -> Response
    where
        C: FnOnce(GracefulSocket) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
        F: OnFailedUpgrade,
    {
        let session = self.session;
        self.inner.on_upgrade(move |socket| {
            let protocol = socket.protocol().cloned();
            ws::run::<Axum, _, _>(socket, session, move |socket| {
                callback(GracefulSocket::new(socket, protocol))
            })
        })
    }
}

impl<S> FromRequestParts<S> for GracefulUpgrade<DefaultOnFailedUpgrade>
where
    S: Send + Sync,
{
    type Rejection = GracefulUpgradeRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Some(drain) = parts.extensions.get::<Drain>().cloned() else {
            tracing::error!(target: "wsdrain", "GracefulUpgrade used without DrainLayer");
            return Err(GracefulUpgradeRejection::MissingDrainLayer);
        };
        let inner = WebSocketUpgrade::from_request_parts(parts, state)
            .await
            .map_err(GracefulUpgradeRejection::Upgrade)?;
        let session = drain.register_session().map_err(|refused| {
            tracing::debug!(target: "wsdrain", reason = refused.as_str(), "upgrade refused");
            let retry_after_secs = drain.policy().draw_hint().retry_after_header_secs();
            match refused {
                Refused::MaxSessions => {
                    GracefulUpgradeRejection::TooManySessions { retry_after_secs }
                }
                _ => GracefulUpgradeRejection::ShuttingDown { retry_after_secs },
            }
        })?;
        if let Some(claim) = parts.extensions.get::<wsdrain_core::UpgradeClaim>() {
            claim.claim();
        }
        Ok(GracefulUpgrade { inner, session })
    }
}

/// Why a [`GracefulUpgrade`] could not be extracted.
#[derive(Debug)]
#[non_exhaustive]
pub enum GracefulUpgradeRejection {
    /// The router has no [`DrainLayer`](wsdrain_core::DrainLayer): a server
    /// bug, answered with 500.
    MissingDrainLayer,
    /// Not a valid upgrade request (axum's own rejection).
    Upgrade(WebSocketUpgradeRejection),
    /// [`DrainPolicy::max_sessions`](wsdrain_core::DrainPolicy::max_sessions)
    /// sessions are live: 503 + `Retry-After` + `Connection: close` (which
    /// `DrainLayer` removes on HTTP/2, where it is malformed).
    TooManySessions {
        /// The `Retry-After` advice, in seconds.
        retry_after_secs: u64,
    },
    /// The drain reached its forced end: 503 + `Retry-After` +
    /// `Connection: close`.
    ShuttingDown {
        /// The `Retry-After` advice, in seconds.
        retry_after_secs: u64,
    },
}

impl std::fmt::Display for GracefulUpgradeRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GracefulUpgradeRejection::MissingDrainLayer => f.write_str(
                "GracefulUpgrade needs wsdrain's DrainLayer on the router: \
                 add `.layer(DrainLayer::new(controller.drain()))`",
            ),
            GracefulUpgradeRejection::Upgrade(r) => write!(f, "{r}"),
            GracefulUpgradeRejection::TooManySessions { retry_after_secs } => write!(
                f,
                "server is at its session limit; retry in {retry_after_secs} s"
            ),
            GracefulUpgradeRejection::ShuttingDown { retry_after_secs } => {
                write!(f, "server is shutting down; retry in {retry_after_secs} s")
            }
        }
    }
}

impl std::error::Error for GracefulUpgradeRejection {}

impl IntoResponse for GracefulUpgradeRejection {
    fn into_response(self) -> Response {
        match self {
            GracefulUpgradeRejection::MissingDrainLayer => {
                (StatusCode::INTERNAL_SERVER_ERROR, self.to_string()).into_response()
            }
            GracefulUpgradeRejection::Upgrade(r) => r.into_response(),
            GracefulUpgradeRejection::TooManySessions { retry_after_secs }
            | GracefulUpgradeRejection::ShuttingDown { retry_after_secs } => (
                StatusCode::SERVICE_UNAVAILABLE,
                [
                    (header::RETRY_AFTER, HeaderValue::from(retry_after_secs)),
                    (header::CONNECTION, HeaderValue::from_static("close")),
                ],
                format!("{self}\n"),
            )
                .into_response(),
        }
    }
}
