//! [`DrainLayer`]: readiness and liveness endpoints, and the HTTP drain gate.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, Version, header, response::Parts};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::{
    Phase,
    body::{Boundary, DrainBody, Farewell, SessionBody, SseFarewell, sse_last_block},
    drain::{Drain, RequestGuard},
    policy::ClosingUpgrades,
    transport::Transport,
};

#[derive(Debug, Clone)]
struct Config {
    readiness_path: String,
    liveness_path: String,
    refuse_requests_when_closing: bool,
    readiness: Hook,
    streams: Option<StreamHook>,
    // Thin (one word in every SSE body), cloned without allocating.
    farewell: Option<Arc<Farewell>>,
}

/// Picks the streaming responses (other than Server-Sent Events, which are
/// always sessions) that the drain tracks as sessions (set with
/// [`DrainLayer::streams`]). Any `Fn(&http::response::Parts) -> bool + Send +
/// Sync + 'static` is one. It sees the response head only, once per response.
pub trait StreamPredicate: Send + Sync + 'static {
    /// True to track this response's body as a session.
    fn is_stream(&self, parts: &Parts) -> bool;
}

impl<F> StreamPredicate for F
where
    F: Fn(&Parts) -> bool + Send + Sync + 'static,
{
    fn is_stream(&self, parts: &Parts) -> bool {
        self(parts)
    }
}

#[derive(Clone)]
struct StreamHook(Arc<dyn StreamPredicate>);

impl fmt::Debug for StreamHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StreamPredicate")
    }
}

/// A response extension that opts one response's body into the drain as a
/// session (per route, where [`DrainLayer::streams`] picks by predicate).
/// Its turn ends it at a frame boundary (at a line boundary for NDJSON).
///
/// In axum, return `(Extension(DrainStream), body)` from the handler; in
/// plain `http`:
///
/// ```
/// use wsdrain_core::DrainStream;
///
/// let mut response = http::Response::new(String::from("a long chunked body"));
/// response.extensions_mut().insert(DrainStream);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct DrainStream;

/// The application's own readiness, combined with the drain's in `/readyz`
/// (set with [`DrainLayer::readiness`]): the database is down, the caches are
/// not warm yet. Any `Fn() -> bool + Send + Sync + 'static` is one.
///
/// It is asked on every readiness probe while Serving (from Draining on the
/// answer is 503 whatever it says), on the request's task: make it cheap and
/// non-blocking, e.g. load an `AtomicBool` that the application's own checks
/// keep up to date.
pub trait ReadinessCheck: Send + Sync + 'static {
    /// True when the application can take new traffic.
    fn is_ready(&self) -> bool;
}

impl<F> ReadinessCheck for F
where
    F: Fn() -> bool + Send + Sync + 'static,
{
    fn is_ready(&self) -> bool {
        self()
    }
}

/// The default [`ReadinessCheck`]: always ready, so the drain alone decides.
#[derive(Debug, Clone, Copy, Default)]
pub struct AlwaysReady;

impl ReadinessCheck for AlwaysReady {
    fn is_ready(&self) -> bool {
        true
    }
}

#[derive(Clone)]
struct Hook(Arc<dyn ReadinessCheck>);

impl fmt::Debug for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReadinessCheck")
    }
}

/// Applies [`DrainService`]: readiness and liveness endpoints, and the HTTP
/// drain gate.
///
/// * `/readyz`: 200 while Serving, 503 from the first instant of Draining;
///   body `{"phase":"draining","sessions":N}`. The application's own
///   conditions join in through [`readiness`](DrainLayer::readiness): 503
///   while Serving if they say no.
/// * `/livez`: 200 until the process exits, same body.
/// * From Draining on, HTTP/1 responses carry `Connection: close`, so
///   keep-alive clients move to other pods.
/// * From Closing on, a WebSocket upgrade gets `503`, `Retry-After`,
///   `Connection: close` (policy becomes a response, not an error); other
///   requests are served, or refused the same way if configured.
/// * Every other request gets the [`Drain`] observer in its extensions and is
///   counted in flight until its response is ready.
/// * A `text/event-stream` response (and any response picked by
///   [`streams`](DrainLayer::streams) or carrying [`DrainStream`]) is a
///   session: its body ([`SessionBody`]) ends at its turn at an event (line,
///   frame) boundary, after `retry: <hint in ms>` for SSE. An SSE request
///   during Closing is served (`200`, `retry:`, a clean end), never refused.
/// * HTTP/2 responses never carry `Connection` (their drain signal is the
///   server's GOAWAY).
///
/// # Example
///
/// ```
/// use tower::ServiceBuilder;
/// use wsdrain_core::{DrainController, DrainLayer, DrainPolicy};
///
/// let controller = DrainController::new(DrainPolicy::default());
/// let layer = DrainLayer::new(controller.drain())
///     .readiness_path("/health/ready")
///     .liveness_path("/health/live");
/// let svc = ServiceBuilder::new().layer(layer).service(tower::service_fn(
///     |_req: http::Request<String>| async {
///         Ok::<_, std::convert::Infallible>(http::Response::new(String::from("hi")))
///     },
/// ));
/// # let _ = svc;
/// ```
#[derive(Debug, Clone)]
#[must_use = "a layer does nothing until applied to a service"]
pub struct DrainLayer {
    drain: Drain,
    config: Arc<Config>,
}

impl DrainLayer {
    /// Health endpoints on `/readyz` and `/livez`, gating by `drain`'s phase.
    pub fn new(drain: Drain) -> Self {
        DrainLayer {
            drain,
            config: Arc::new(Config {
                readiness_path: "/readyz".into(),
                liveness_path: "/livez".into(),
                refuse_requests_when_closing: false,
                readiness: Hook(Arc::new(AlwaysReady)),
                streams: None,
                farewell: None,
            }),
        }
    }

    fn config_mut(&mut self) -> &mut Config {
        Arc::make_mut(&mut self.config)
    }

    /// Path of the readiness endpoint (default `/readyz`).
    pub fn readiness_path(mut self, path: impl Into<String>) -> Self {
        self.config_mut().readiness_path = path.into();
        self
    }

    /// Path of the liveness endpoint (default `/livez`).
    pub fn liveness_path(mut self, path: impl Into<String>) -> Self {
        self.config_mut().liveness_path = path.into();
        self
    }

    /// From Closing on, refuse every request (not only upgrades) with 503 +
    /// `Retry-After` (default: false, plain requests are served).
    pub fn refuse_requests_when_closing(mut self, refuse: bool) -> Self {
        self.config_mut().refuse_requests_when_closing = refuse;
        self
    }

    /// Combines the application's own readiness with the drain's: `/readyz`
    /// answers 503 while `check` says no, even while Serving (default:
    /// [`AlwaysReady`]). The body keeps its shape, so a 503 with
    /// `"phase":"serving"` means the application is not ready. Liveness is
    /// not affected.
    ///
    /// ```
    /// use std::sync::{Arc, atomic::{AtomicBool, Ordering}};
    /// use wsdrain_core::{DrainController, DrainLayer, DrainPolicy};
    ///
    /// let controller = DrainController::new(DrainPolicy::default());
    /// let warm = Arc::new(AtomicBool::new(false)); // set by the warm-up task
    /// let w = warm.clone();
    /// let layer = DrainLayer::new(controller.drain())
    ///     .readiness(move || w.load(Ordering::Acquire));
    /// # let _ = layer;
    /// ```
    pub fn readiness(mut self, check: impl ReadinessCheck) -> Self {
        self.config_mut().readiness = Hook(Arc::new(check));
        self
    }

    /// Tracks the streaming responses `predicate` picks as sessions, besides
    /// Server-Sent Events (always tracked): NDJSON feeds, long-polls, chunked
    /// downloads (default: none). At its turn such a body ends cleanly at a
    /// boundary: after a line for `application/x-ndjson`,
    /// `application/jsonl` and `application/json-seq`, after any frame
    /// otherwise. A single route can opt in with the [`DrainStream`] response
    /// extension instead.
    ///
    /// ```
    /// use wsdrain_core::{DrainController, DrainLayer, DrainPolicy};
    ///
    /// let controller = DrainController::new(DrainPolicy::default());
    /// let layer = DrainLayer::new(controller.drain()).streams(|parts: &http::response::Parts| {
    ///     parts.headers.get("content-type").is_some_and(|v| v == "application/x-ndjson")
    /// });
    /// # let _ = layer;
    /// ```
    pub fn streams(mut self, predicate: impl StreamPredicate) -> Self {
        self.config_mut().streams = Some(StreamHook(Arc::new(predicate)));
        self
    }

    /// The application's last event for every Server-Sent Events stream at
    /// its turn, sent before the `retry:` block (default: none), like the
    /// WebSocket goodbye. It gets the stream's hint.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use wsdrain_core::{DrainController, DrainLayer, DrainPolicy, protocol::CloseHint};
    ///
    /// let controller = DrainController::new(DrainPolicy::default());
    /// let layer = DrainLayer::new(controller.drain()).sse_farewell(|hint: CloseHint| {
    ///     Some(Bytes::from(format!("event: bye\ndata: {}\n\n", hint.retry_after_ms())))
    /// });
    /// # let _ = layer;
    /// ```
    pub fn sse_farewell(mut self, farewell: impl SseFarewell) -> Self {
        self.config_mut().farewell = Some(Arc::new(Farewell(Arc::new(farewell))));
        self
    }
}

impl<S> Layer<S> for DrainLayer {
    type Service = DrainService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        // A diagnostic for `DrainController::has_layer`, read after the
        // router is built and handed over: no ordering with other memory.
        self.drain.shared.layered.store(true, Ordering::Relaxed);
        DrainService {
            inner,
            drain: self.drain.clone(),
            config: self.config.clone(),
        }
    }
}

/// Serves health endpoints and gates requests by the drain phase; see
/// [`DrainLayer`].
#[derive(Debug, Clone)]
pub struct DrainService<S> {
    inner: S,
    drain: Drain,
    config: Arc<Config>,
}

/// True for a WebSocket upgrade request: HTTP/1.1 `Upgrade: websocket`, or an
/// HTTP/2 extended CONNECT (RFC 8441) whose `:protocol` is `websocket`.
///
/// Without the `http2` feature the `:protocol` pseudo-header cannot be read,
/// and every HTTP/2 CONNECT counts as an upgrade.
pub fn is_upgrade_request<B>(req: &Request<B>) -> bool {
    if req.version() >= Version::HTTP_2 {
        return req.method() == Method::CONNECT && connect_protocol_is_websocket(req);
    }
    req.headers()
        .get_all(header::UPGRADE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(',')
                .any(|p| p.trim().eq_ignore_ascii_case("websocket"))
        })
}

#[cfg(feature = "http2")]
fn connect_protocol_is_websocket<B>(req: &Request<B>) -> bool {
    req.extensions()
        .get::<hyper::ext::Protocol>()
        .is_some_and(|p| p.as_str().eq_ignore_ascii_case("websocket"))
}

#[cfg(not(feature = "http2"))]
fn connect_protocol_is_websocket<B>(_: &Request<B>) -> bool {
    true
}

/// True for a request an `EventSource` makes (`Accept: text/event-stream`).
fn accepts_event_stream<B>(req: &Request<B>) -> bool {
    req.headers()
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/event-stream"))
}

fn is_event_stream(parts: &Parts) -> bool {
    parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("text/event-stream"))
        })
}

fn stream_boundary(parts: &Parts) -> Boundary {
    let line = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| {
            let m = m.trim();
            [
                "application/x-ndjson",
                "application/jsonl",
                "application/json-seq",
            ]
            .iter()
            .any(|t| m.eq_ignore_ascii_case(t))
        });
    if line {
        Boundary::line()
    } else {
        Boundary::Frame
    }
}

fn health(drain: &Drain, readiness: Option<&dyn ReadinessCheck>) -> (Parts, Bytes) {
    let status = drain.status();
    let ready = |r: &dyn ReadinessCheck| status.phase < Phase::Draining && r.is_ready();
    let code = if readiness.is_some_and(|r| !ready(r)) {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    let (mut parts, ()) = Response::new(()).into_parts();
    parts.status = code;
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    parts
        .headers
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    (parts, Bytes::from(status.to_json()))
}

fn refusal(drain: &Drain, http1: bool) -> (Parts, Bytes) {
    let secs = drain.policy().draw_hint().retry_after_header_secs();
    let (mut parts, ()) = Response::new(()).into_parts();
    parts.status = StatusCode::SERVICE_UNAVAILABLE;
    parts
        .headers
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    // HTTP/2 forbids connection-specific headers; its drain signal is GOAWAY.
    if http1 {
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    let body = format!("server is shutting down; retry in {secs} s\n");
    (parts, Bytes::from(body))
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for DrainService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<DrainBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let http1 = req.version() <= Version::HTTP_11;
        let path = req.uri().path();
        let own = if path == self.config.readiness_path {
            Some(health(&self.drain, Some(&*self.config.readiness.0)))
        } else if path == self.config.liveness_path {
            Some(health(&self.drain, None))
        } else if self.drain.phase() >= Phase::Closing {
            // With `ClosingUpgrades::TryAgainLater` the upgrade goes on; its
            // session is closed at once with 1013 and the hint.
            let refuse_upgrade = is_upgrade_request(&req)
                && self.drain.policy().closing_upgrades() == ClosingUpgrades::Refuse;
            if refuse_upgrade {
                self.drain.count_refused_upgrade("closing");
                tracing::debug!(target: "wsdrain", "upgrade refused: closing");
            }
            // An EventSource gives up for good on a non-200 answer: SSE
            // requests are served, and end at once with their `retry:`.
            let refuse = self.config.refuse_requests_when_closing && !accepts_event_stream(&req);
            (refuse_upgrade || refuse).then(|| refusal(&self.drain, http1))
        } else {
            None
        };
        let kind = match own {
            Some(response) => Kind::Own {
                response: Some(response),
            },
            None => {
                req.extensions_mut().insert(self.drain.clone());
                let claim = is_upgrade_request(&req).then(|| {
                    let claim = UpgradeClaim::default();
                    req.extensions_mut().insert(claim.clone());
                    claim
                });
                Kind::Inner {
                    guard: Some(self.drain.track_request()),
                    claim,
                    future: self.inner.call(req),
                    config: self.config.clone(),
                }
            }
        };
        ResponseFuture {
            kind,
            drain: self.drain.clone(),
            http1,
        }
    }
}

pin_project! {
    /// Response future of [`DrainService`].
    pub struct ResponseFuture<F> {
        #[pin]
        kind: Kind<F>,
        drain: Drain,
        http1: bool,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Own { response: Option<(Parts, Bytes)> },
        Inner {
            #[pin] future: F,
            guard: Option<RequestGuard>,
            claim: Option<UpgradeClaim>,
            config: Arc<Config>,
        },
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<DrainBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = match this.kind.project() {
            KindProj::Own { response } => {
                let (parts, body) = response.take().unwrap_or_else(|| {
                    let (parts, ()) = Response::new(()).into_parts();
                    (parts, Bytes::new())
                });
                Response::from_parts(parts, DrainBody::full(body))
            }
            KindProj::Inner {
                future,
                guard,
                claim,
                config,
            } => {
                let response = match future.poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Err(e)) => {
                        guard.take();
                        return Poll::Ready(Err(e));
                    }
                    Poll::Ready(Ok(r)) => r,
                };
                if response.status() == StatusCode::SWITCHING_PROTOCOLS
                    && claim.as_ref().is_some_and(|c| !c.is_claimed())
                {
                    warn_unclaimed_upgrade();
                }
                // Registered before the request stops counting as in flight,
                // so the drain never sees a gap between the two.
                let response = track_stream(response, this.drain, config);
                guard.take();
                response
            }
        };
        let upgraded = response.status() == StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        if !*this.http1 {
            // Connection-specific headers are malformed in HTTP/2 (RFC 9113
            // 8.2.2), whoever set them (e.g. a refusal from an extractor).
            headers.remove(header::CONNECTION);
        } else if this.drain.is_draining() && !upgraded {
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        Poll::Ready(Ok(response))
    }
}

/// Wraps an SSE or opted-in streaming response's body as a session.
fn track_stream<B>(
    response: Response<B>,
    drain: &Drain,
    config: &Config,
) -> Response<DrainBody<B>> {
    let (mut parts, body) = response.into_parts();
    if !parts.status.is_success() {
        return Response::from_parts(parts, DrainBody::Inner { body });
    }
    let (transport, boundary) = if is_event_stream(&parts) {
        (Transport::Sse, Boundary::event())
    } else if parts.extensions.remove::<DrainStream>().is_some()
        || config
            .streams
            .as_ref()
            .is_some_and(|s| s.0.is_stream(&parts))
    {
        (Transport::Stream, stream_boundary(&parts))
    } else {
        return Response::from_parts(parts, DrainBody::Inner { body });
    };
    let body = match drain.register_session_as(transport) {
        Ok(guard) => DrainBody::Session {
            body: SessionBody::new(
                body,
                guard,
                boundary,
                (transport == Transport::Sse)
                    .then(|| config.farewell.clone())
                    .flatten(),
            ),
        },
        // Refused (session limit, or after the forced end): an SSE stream
        // still gets 200 and its `retry:`, so the EventSource comes back.
        Err(_) if transport == Transport::Sse => {
            let hint = drain.policy().draw_hint();
            parts.headers.remove(header::CONTENT_LENGTH);
            DrainBody::full(sse_last_block(hint, config.farewell.as_deref()))
        }
        Err(_) => DrainBody::Inner { body },
    };
    Response::from_parts(parts, body)
}

/// Marks an upgrade request whose session was registered with the drain.
///
/// [`DrainLayer`] puts one into the extensions of every upgrade request it
/// passes on; the extractor that registers the upgrade's session (such as
/// `wsdrain-axum`'s `GracefulUpgrade`) calls [`claim`](Self::claim). A `101`
/// that comes back unclaimed is a route that escapes the drain (for example
/// axum's plain `WebSocketUpgrade`): its sessions would see 1006 at the
/// forced end. The layer logs that once, as a warning.
#[derive(Debug, Clone, Default)]
pub struct UpgradeClaim(Arc<AtomicBool>);

impl UpgradeClaim {
    /// Records that this upgrade's session is registered with the drain.
    pub fn claim(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    fn is_claimed(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

fn warn_unclaimed_upgrade() {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if !WARNED.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            target: "wsdrain",
            "a WebSocket upgrade passed DrainLayer without a registered session: \
             its route escapes the drain (use GracefulUpgrade instead of WebSocketUpgrade)"
        );
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::{DrainController, DrainPolicy};
    use std::{convert::Infallible, time::Duration};
    use tower::{ServiceExt, service_fn};

    fn request(version: Version, method: Method) -> Request<String> {
        let mut req = Request::new(String::new());
        *req.version_mut() = version;
        *req.method_mut() = method;
        *req.uri_mut() = "/x".parse().unwrap();
        req
    }

    /// An inner service that (wrongly) sets `Connection: close` itself.
    fn svc(
        drain: Drain,
    ) -> DrainService<
        impl Service<
            Request<String>,
            Response = Response<String>,
            Error = Infallible,
            Future = impl Future<Output = Result<Response<String>, Infallible>>,
        > + Clone,
    > {
        DrainLayer::new(drain).layer(service_fn(|_req: Request<String>| async {
            let mut res = Response::new(String::from("inner"));
            res.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            Ok::<_, Infallible>(res)
        }))
    }

    #[tokio::test(start_paused = true)]
    async fn no_connection_header_on_http2() {
        let policy = DrainPolicy::builder()
            .drain_delay(Duration::from_secs(1))
            .close_window(Duration::from_secs(1))
            .close_timeout(Duration::from_secs(1))
            .grace_period(Duration::from_secs(20))
            .build()
            .unwrap();
        let c = std::sync::Arc::new(DrainController::new(policy));
        let drain = c.drain();
        let _held = drain.register_session().unwrap();
        c.begin();
        let res = svc(drain.clone())
            .oneshot(request(Version::HTTP_2, Method::GET))
            .await
            .unwrap();
        assert!(
            !res.headers().contains_key(header::CONNECTION),
            "draining, HTTP/2"
        );
        let res = svc(drain.clone())
            .oneshot(request(Version::HTTP_11, Method::GET))
            .await
            .unwrap();
        assert_eq!(
            res.headers()[header::CONNECTION],
            "close",
            "draining, HTTP/1.1"
        );
        let run = tokio::spawn({
            let c = c.clone();
            async move { c.run().await }
        });
        drain.closing().await;
        #[allow(unused_mut)] // `:protocol` is only read with the `http2` feature
        let mut connect = request(Version::HTTP_2, Method::CONNECT);
        #[cfg(feature = "http2")]
        connect
            .extensions_mut()
            .insert(hyper::ext::Protocol::from_static("websocket"));
        assert!(is_upgrade_request(&connect));
        let res = svc(drain.clone()).oneshot(connect).await.unwrap();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(res.headers().contains_key(header::RETRY_AFTER));
        assert!(
            !res.headers().contains_key(header::CONNECTION),
            "refusal, HTTP/2"
        );
        let res = svc(drain.clone())
            .oneshot(request(Version::HTTP_11, Method::GET))
            .await
            .unwrap();
        assert_eq!(res.headers()[header::CONNECTION], "close");
        c.force();
        run.await.unwrap();
    }

    #[cfg(feature = "http2")]
    #[test]
    fn only_a_websocket_connect_is_an_upgrade() {
        let mut other = request(Version::HTTP_2, Method::CONNECT);
        other
            .extensions_mut()
            .insert(hyper::ext::Protocol::from_static("connect-udp"));
        assert!(!is_upgrade_request(&other));
        assert!(
            !is_upgrade_request(&request(Version::HTTP_2, Method::CONNECT)),
            "plain CONNECT"
        );
    }
}
