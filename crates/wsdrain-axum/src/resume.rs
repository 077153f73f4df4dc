//! [`ResumableUpgrade`]: the extractor for routes whose sessions resume
//! (`wsdrain.resume.v1`).

use std::future::Future;

use axum::{
    extract::{
        FromRequestParts,
        ws::{DefaultOnFailedUpgrade, OnFailedUpgrade},
    },
    http::{HeaderValue, StatusCode, request::Parts},
    response::{IntoResponse, Response},
};
use wsdrain_core::{
    Drain,
    resume::{self, Feed, Log, PointError, ResumePoint, SUBPROTOCOL},
};

use crate::{GracefulUpgrade, GracefulUpgradeRejection, socket::Axum};

/// What a resumable route's handler gets: a drained socket that delivers
/// the streams it follows, resumed where the client stopped; see
/// [`wsdrain_core::resume::ResumableSocket`].
pub type ResumableSocket<L> = resume::ResumableSocket<Axum, L>;

/// Extractor for a WebSocket upgrade whose session can resume: a
/// [`GracefulUpgrade`] that also reads the resume point
/// (`?wsdrain-resume=…`) and selects the `wsdrain.resume.v1` subprotocol
/// when the client offered it. A client that did not offer it gets plain
/// frames, exactly as on a route without resume.
///
/// A resume point that cannot be read is answered `400` with a body that
/// names the problem, before the session is registered.
///
/// **The resume point grants nothing**: check that the user may read every
/// stream it names ([`point`](Self::point)) and answer `403` before
/// [`on_upgrade`](Self::on_upgrade), and follow only streams the user may
/// read.
///
/// # Example
///
/// ```
/// use axum::{Router, extract::State, http::StatusCode, response::{IntoResponse, Response}, routing::get};
/// use wsdrain_axum::{ResumableSocket, ResumableUpgrade};
/// use wsdrain_core::{DrainController, DrainLayer, DrainPolicy, resume::{Feed, MemoryLog}};
///
/// async fn prices(upgrade: ResumableUpgrade, State(feed): State<Feed<MemoryLog>>) -> Response {
///     // The point grants nothing: refuse what this client may not read.
///     if upgrade.point().streams().any(|s| s != "prices") {
///         return StatusCode::FORBIDDEN.into_response();
///     }
///     upgrade.on_upgrade(feed, |mut socket: ResumableSocket<MemoryLog>| async move {
///         if socket.follow("prices").await.is_ok() {
///             socket.run().await; // delivers until the session is over
///         }
///     })
/// }
///
/// let controller = DrainController::new(DrainPolicy::default());
/// let feed = Feed::new(MemoryLog::new());
/// let app: Router = Router::new()
///     .route("/prices", get(prices))
///     .with_state(feed)
///     .layer(DrainLayer::new(controller.drain()));
/// ```
#[must_use]
pub struct ResumableUpgrade<F = DefaultOnFailedUpgrade> {
    upgrade: GracefulUpgrade<F>,
    point: ResumePoint,
}

impl<F> std::fmt::Debug for ResumableUpgrade<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResumableUpgrade")
            .field("upgrade", &self.upgrade)
            .field("point", &self.point)
            .finish()
    }
}

impl<F> ResumableUpgrade<F> {
    /// Where the client asks to resume, and whether it offered the
    /// subprotocol: authorise every stream it names.
    pub fn point(&self) -> &ResumePoint {
        &self.point
    }

    /// The drain the socket will belong to.
    pub fn drain(&self) -> &Drain {
        self.upgrade.drain()
    }

    /// See [`GracefulUpgrade::read_buffer_size`].
    pub fn read_buffer_size(self, size: usize) -> Self {
        self.map(|u| u.read_buffer_size(size))
    }

    /// See [`GracefulUpgrade::write_buffer_size`].
    pub fn write_buffer_size(self, size: usize) -> Self {
        self.map(|u| u.write_buffer_size(size))
    }

    /// See [`GracefulUpgrade::max_write_buffer_size`].
    pub fn max_write_buffer_size(self, max: usize) -> Self {
        self.map(|u| u.max_write_buffer_size(max))
    }

    /// See [`GracefulUpgrade::max_message_size`].
    pub fn max_message_size(self, max: usize) -> Self {
        self.map(|u| u.max_message_size(max))
    }

    /// See [`GracefulUpgrade::on_failed_upgrade`].
    pub fn on_failed_upgrade<C: OnFailedUpgrade>(self, callback: C) -> ResumableUpgrade<C> {
        ResumableUpgrade {
            upgrade: self.upgrade.on_failed_upgrade(callback),
            point: self.point,
        }
    }

    fn map(self, f: impl FnOnce(GracefulUpgrade<F>) -> GracefulUpgrade<F>) -> Self {
        ResumableUpgrade {
            upgrade: f(self.upgrade),
            point: self.point,
        }
    }

    /// Completes the upgrade and runs `callback` on the
    /// [`ResumableSocket`], reading from `feed`; see
    /// [`GracefulUpgrade::on_upgrade`] for how the session is bounded.
    #[must_use = "to set up the WebSocket connection, this response must be returned"]
    pub fn on_upgrade<L, C, Fut>(self, feed: Feed<L>, callback: C) -> Response
    where
        L: Log,
        C: FnOnce(ResumableSocket<L>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
        F: OnFailedUpgrade,
    {
        let point = self.point;
        self.upgrade.on_upgrade(move |socket| {
            callback(resume::ResumableSocket::new(
                socket.into_inner(),
                feed,
                point,
            ))
        })
    }
}

impl<S> FromRequestParts<S> for ResumableUpgrade<DefaultOnFailedUpgrade>
where
    S: Send + Sync,
{
    type Rejection = ResumableUpgradeRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        // Read first: a bad point never registers a session.
        let point = ResumePoint::from_parts(parts).map_err(ResumableUpgradeRejection::Point)?;
        let mut upgrade = GracefulUpgrade::from_request_parts(parts, state)
            .await
            .map_err(ResumableUpgradeRejection::Upgrade)?;
        if point.offered() {
            upgrade.set_selected_protocol(HeaderValue::from_static(SUBPROTOCOL));
        }
        Ok(ResumableUpgrade { upgrade, point })
    }
}

/// Why a [`ResumableUpgrade`] could not be extracted.
#[derive(Debug)]
#[non_exhaustive]
pub enum ResumableUpgradeRejection {
    /// The resume point cannot be read: `400` with its text.
    Point(PointError),
    /// As for [`GracefulUpgrade`].
    Upgrade(GracefulUpgradeRejection),
}

impl std::fmt::Display for ResumableUpgradeRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResumableUpgradeRejection::Point(e) => write!(f, "{e}"),
            ResumableUpgradeRejection::Upgrade(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ResumableUpgradeRejection {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ResumableUpgradeRejection::Point(e) => Some(e),
            ResumableUpgradeRejection::Upgrade(e) => Some(e),
        }
    }
}

impl IntoResponse for ResumableUpgradeRejection {
    fn into_response(self) -> Response {
        match self {
            ResumableUpgradeRejection::Point(e) => {
                (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response()
            }
            ResumableUpgradeRejection::Upgrade(r) => r.into_response(),
        }
    }
}
