//! [`serve`]: `axum::serve` with the listener kept open until the drain ends,
//! and HTTP/2 connections told with GOAWAY when Closing begins.

use std::{
    convert::Infallible,
    fmt::{self, Debug},
    future::IntoFuture,
    io,
    pin::pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
};

use axum::{
    extract::Request,
    response::Response,
    serve::{IncomingStream, Listener, ListenerExt, TapIo},
};
use tower_service::Service;
use wsdrain_core::{Drain, DrainController, DrainReport};

/// The listener type the make-service given to [`serve`] is called with:
/// the caller's listener `L`, accepted by `serve` itself and handed to
/// axum's server of the current phase. Its `Addr` is `L::Addr`, so
/// `into_make_service_with_connect_info::<SocketAddr>()` works as with
/// `axum::serve` (through axum's `TapIo` impl of `Connected`).
pub type Connections<L> = TapIo<Accepted<L>, fn(&mut <L as Listener>::Io)>;

/// The caller's listener as axum's server of one phase sees it; see
/// [`Connections`]. Only [`serve`] makes one.
pub struct Accepted<L> {
    listener: Arc<tokio::sync::Mutex<L>>,
    /// The server for Closing and later: it accepts only from Closing on.
    late: Option<Drain>,
}

impl<L> fmt::Debug for Accepted<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Accepted")
            .field("late", &self.late.is_some())
            .finish_non_exhaustive()
    }
}

impl<L: Listener> Listener for Accepted<L> {
    type Io = L::Io;
    type Addr = L::Addr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        if let Some(drain) = &self.late {
            drain.closing().await;
        }
        // Cancel safe: axum drops this future at its shutdown signal, which
        // releases the lock for the other phase's server.
        self.listener.lock().await.accept().await
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        match self.listener.try_lock() {
            Ok(l) => l.local_addr(),
            Err(_) => Err(io::Error::other("the listener is accepting")),
        }
    }
}

/// One make-service for both phases' servers.
struct SharedMake<M>(Arc<Mutex<M>>);

impl<M> Clone for SharedMake<M> {
    fn clone(&self) -> Self {
        SharedMake(self.0.clone())
    }
}

impl<M, T> Service<T> for SharedMake<M>
where
    M: Service<T>,
{
    type Response = M::Response;
    type Error = M::Error;
    type Future = M::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // A panic in the make-service leaves nothing half-done here.
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .poll_ready(cx)
    }

    fn call(&mut self, req: T) -> Self::Future {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).call(req)
    }
}

fn untouched<Io>(_: &mut Io) {}

/// Serves `make_service` on `listener` and drives `controller`'s drain;
/// returns its report once every session is gone or the forced end came.
///
/// It takes what [`axum::serve`](axum::serve()) takes: any [`Listener`] (a
/// `tokio::net::TcpListener`, a `tokio::net::UnixListener`, one wrapped by
/// [`ListenerExt::tap_io`](axum::serve::ListenerExt::tap_io)) and a `Router`
/// or any make-service, such as
/// `router.into_make_service_with_connect_info::<SocketAddr>()`.
///
/// The router should carry [`DrainLayer`](wsdrain_core::DrainLayer). The
/// listener stays open through Draining and Closing, so load balancers probing
/// `/readyz` get a 503 rather than a refused connection; it closes at Closed.
/// Plain HTTP connections still open then get half the deadline margin to
/// finish, and are left behind after that.
///
/// HTTP/1.1 and HTTP/2 (prior knowledge, or ALPN through a TLS listener)
/// are both served, with the extended CONNECT protocol (RFC 8441) enabled,
/// so WebSockets (on `any()` routes) and Server-Sent Events work over
/// HTTP/2. When Closing begins, connections accepted before are shut down
/// gracefully: HTTP/2 ones get GOAWAY (their open streams go on until their
/// turn), idle HTTP/1.1 keep-alive ones are closed. Connections accepted
/// from then on (probes, late requests) are served until Closed.
///
/// This is the wiring you would write by hand with
/// `axum::serve(..).with_graceful_shutdown(..)` joined with
/// [`DrainController::run`], with two servers (one shut down at Closing,
/// one at Closed) sharing the listener, plus that bound after Closed (axum
/// alone would wait for the last keep-alive connection, however long it
/// takes).
///
/// The make-service is called with [`Connections<L>`] rather than `L` (the
/// listener is shared between the two servers); a `Router`,
/// `into_make_service()` and `into_make_service_with_connect_info::<A>()`
/// with `A = L::Addr` all take it.
///
/// # Example
///
/// ```no_run
/// use std::net::SocketAddr;
/// use axum::Router;
/// use wsdrain_core::{DrainController, DrainLayer, DrainPolicy};
///
/// # async fn run() -> std::io::Result<()> {
/// let controller = DrainController::new(DrainPolicy::default());
/// let app = Router::new().layer(DrainLayer::new(controller.drain()));
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
/// let make_service = app.into_make_service_with_connect_info::<SocketAddr>();
/// let report = wsdrain_axum::serve(listener, make_service, &controller).await?;
/// println!("{report}");
/// # Ok(())
/// # }
/// ```
///
/// # Errors
///
/// If the server stops before the drain ends (axum's server does not, but a
/// future one may report an I/O error on the listener).
///
/// # Cancel safety
///
/// Not cancel safe; await it to the end (as the last thing `main` does, or
/// in a task you join). Dropping the future early closes the listener and
/// stops the drain's timeline where it is, as dropping
/// [`DrainController::run`] does: the phase stays where it was, connections
/// and sessions already accepted go on in their own tasks until they end or
/// the runtime stops, and a later `run` on the same controller waits for a
/// Closed that nothing drives. To end early, call
/// [`DrainController::force`] (or `begin`) and keep awaiting: it returns after
/// the forced end and the bounded wait for plain HTTP connections.
pub async fn serve<L, M, S>(
    listener: L,
    make_service: M,
    controller: &DrainController,
) -> io::Result<DrainReport>
where
    L: Listener,
    L::Addr: Debug,
    M: for<'a> Service<IncomingStream<'a, Connections<L>>, Error = Infallible, Response = S>
        + Send
        + 'static,
    for<'a> <M as Service<IncomingStream<'a, Connections<L>>>>::Future: Send,
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    let drain = controller.drain();
    let linger = controller.policy().deadline_margin() / 2;
    let listener = Arc::new(tokio::sync::Mutex::new(listener));
    let make_service = SharedMake(Arc::new(Mutex::new(make_service)));
    let phase_listener = |late: Option<Drain>| {
        Accepted {
            listener: listener.clone(),
            late,
        }
        .tap_io(untouched::<L::Io> as fn(&mut L::Io))
    };
    // Until Closing: its connections get GOAWAY (HTTP/2) or are closed when
    // idle (HTTP/1.1) as Closing begins.
    let early = axum::serve(phase_listener(None), make_service.clone())
        .with_graceful_shutdown(drain.closing())
        .into_future();
    // From Closing to Closed: probes and late requests.
    let late = axum::serve(phase_listener(Some(drain.clone())), make_service)
        .with_graceful_shutdown(drain.closed())
        .into_future();
    drop(listener);
    let mut server = pin!(async move {
        let (early, late) = tokio::join!(early, late);
        early.and(late)
    });
    let report = tokio::select! {
        report = controller.run() => report,
        served = &mut server => {
            served?;
            return Err(io::Error::other("the server stopped before the drain ended"));
        }
    };
    if tokio::time::timeout(linger, server).await.is_err() {
        tracing::warn!(target: "wsdrain", "HTTP connections still open after the drain; no longer waiting for them");
    }
    Ok(report)
}
