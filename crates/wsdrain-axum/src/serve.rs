//! [`serve`]: `axum::serve` with the listener kept open until the drain ends.

use std::{convert::Infallible, fmt::Debug, future::IntoFuture, io, pin::pin};

use axum::{
    extract::Request,
    response::Response,
    serve::{IncomingStream, Listener},
};
use tower_service::Service;
use wsdrain_core::{DrainController, DrainReport};

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
/// This is the wiring you would write by hand with
/// `axum::serve(..).with_graceful_shutdown(drain.closed())` joined with
/// [`DrainController::run`], plus that bound after Closed (axum alone would
/// wait for the last keep-alive connection, however long it takes).
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
    M: for<'a> Service<IncomingStream<'a, L>, Error = Infallible, Response = S> + Send + 'static,
    for<'a> <M as Service<IncomingStream<'a, L>>>::Future: Send,
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    let drain = controller.drain();
    let linger = controller.policy().deadline_margin() / 2;
    let mut server = pin!(
        axum::serve(listener, make_service)
            .with_graceful_shutdown(drain.closed())
            .into_future()
    );
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
