//! [`serve`]: `axum::serve` with the listener kept open until the drain ends,
//! and HTTP/2 connections told with GOAWAY when Closing begins.

use std::{
    convert::Infallible,
    fmt::{self, Debug},
    future::{IntoFuture, pending},
    io,
    pin::{Pin, pin},
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::Duration,
};

use axum::{
    extract::Request,
    response::Response,
    serve::{IncomingStream, Listener, ListenerExt, TapIo},
};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf},
    sync::mpsc,
};
use tower_service::Service;
use wsdrain_core::{DrainController, DrainReport, Phase};

/// The listener type the make-service given to [`serve`] is called with:
/// connections accepted by `serve` from the caller's listener `L`, handed to
/// one of its two servers. Its `Addr` is `L::Addr`, so
/// `into_make_service_with_connect_info::<SocketAddr>()` works as with
/// `axum::serve` (through axum's `TapIo` impl of `Connected`).
pub type Connections<L> = TapIo<Accepted<L>, fn(&mut Sniffed<<L as Listener>::Io>)>;

type Conn<L> = (Sniffed<<L as Listener>::Io>, <L as Listener>::Addr);

/// The connections `serve` hands to one of its servers; see
/// [`Connections`]. Only [`serve`] makes one.
pub struct Accepted<L: Listener> {
    rx: mpsc::UnboundedReceiver<Conn<L>>,
    /// Where connections not yet taken go when this server stops accepting.
    rest: Option<mpsc::UnboundedSender<Conn<L>>>,
}

impl<L: Listener> fmt::Debug for Accepted<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Accepted").finish_non_exhaustive()
    }
}

impl<L: Listener> Listener for Accepted<L> {
    type Io = Sniffed<L::Io>;
    type Addr = L::Addr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(conn) => conn,
            // `serve` stopped accepting (Closed): nothing more comes.
            None => pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Err(io::Error::other(
            "serve's connections have no address of their own; ask the listener you passed",
        ))
    }
}

impl<L: Listener> Drop for Accepted<L> {
    fn drop(&mut self) {
        // The HTTP/2 server stopped at Closing: a connection handed to it
        // that it did not take goes to the other one, not to the floor.
        if let Some(rest) = &self.rest {
            self.rx.close();
            while let Ok(conn) = self.rx.try_recv() {
                let _ = rest.send(conn);
            }
        }
    }
}

/// A connection whose first bytes `serve` has read to tell HTTP/2 from
/// HTTP/1.1; they are read again first.
pub struct Sniffed<Io> {
    prefix: Vec<u8>,
    at: usize,
    io: Io,
}

impl<Io> Sniffed<Io> {
    /// The connection as the listener gave it.
    pub fn get_ref(&self) -> &Io {
        &self.io
    }
}

impl<Io> fmt::Debug for Sniffed<Io> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sniffed").finish_non_exhaustive()
    }
}

impl<Io: AsyncRead + Unpin> AsyncRead for Sniffed<Io> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.at < self.prefix.len() {
            let n = buf.remaining().min(self.prefix.len() - self.at);
            let at = self.at;
            buf.put_slice(&self.prefix[at..at + n]);
            self.at += n;
            if self.at == self.prefix.len() {
                self.prefix = Vec::new();
                self.at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<Io: AsyncWrite + Unpin> AsyncWrite for Sniffed<Io> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// The HTTP/2 client connection preface (RFC 9113 3.4).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// How long a new connection may take to show its first bytes before it is
/// served as it is (by the server that lasts until Closed).
const SNIFF_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads until the bytes are the HTTP/2 preface or cannot be (one byte
/// suffices for every HTTP/1.1 request but `P...`).
async fn sniff<Io: AsyncRead + Unpin>(mut io: Io) -> (Sniffed<Io>, bool) {
    let mut prefix = vec![0u8; PREFACE.len()];
    let mut n = 0;
    let h2 = loop {
        if n == PREFACE.len() {
            break true;
        }
        match tokio::time::timeout(SNIFF_TIMEOUT, io.read(&mut prefix[n..])).await {
            Ok(Ok(read)) if read > 0 => {
                n += read;
                if prefix[..n] != PREFACE[..n] {
                    break false;
                }
            }
            // EOF, an error or silence: hyper will see it for itself.
            _ => break false,
        }
    };
    prefix.truncate(n);
    (Sniffed { prefix, at: 0, io }, h2)
}

/// One make-service for both servers.
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
/// The router must carry [`DrainLayer`](wsdrain_core::DrainLayer), made from
/// `controller`'s drain: without it `/readyz` and `/livez` are not answered
/// and upgrades fail with 500, so `serve` logs a warning at start when no
/// such layer has wrapped a service
/// ([`DrainController::has_layer`]). The listener stays open through Draining and Closing, so load balancers probing
/// `/readyz` get a 503 rather than a refused connection; it closes at Closed.
/// Plain HTTP connections still open then get half the deadline margin to
/// finish, and are left behind after that.
///
/// HTTP/1.1 and HTTP/2 (prior knowledge, or ALPN through a TLS listener)
/// are both served, with the extended CONNECT protocol (RFC 8441) enabled,
/// so WebSockets (on `any()` routes) and Server-Sent Events work over
/// HTTP/2. When Closing begins, HTTP/2 connections get GOAWAY (their open
/// streams go on until their turn; new requests go to a new connection);
/// HTTP/1.1 connections are served as before (with `Connection: close`)
/// until Closed, so no request caught between accept and read is lost.
///
/// This is the wiring you would write by hand with
/// `axum::serve(..).with_graceful_shutdown(..)` joined with
/// [`DrainController::run`], with two servers: `serve` accepts from the
/// listener itself, reads the first bytes of each connection, and hands
/// HTTP/2 connections (the client preface) to one shut down gracefully at
/// Closing, every other to one shut down at Closed; plus that bound after
/// Closed (axum alone would wait for the last keep-alive connection, however
/// long it takes).
///
/// The make-service is called with [`Connections<L>`] rather than `L`; a
/// `Router`, `into_make_service()` and
/// `into_make_service_with_connect_info::<A>()` with `A = L::Addr` all take
/// it.
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
    mut listener: L,
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
    if !controller.has_layer() {
        tracing::warn!(target: "wsdrain", "{NO_LAYER}");
    }
    let drain = controller.drain();
    let linger = controller.policy().deadline_margin() / 2;
    let make_service = SharedMake(Arc::new(Mutex::new(make_service)));
    let (rest_tx, rest_rx) = mpsc::unbounded_channel::<Conn<L>>();
    let (h2_tx, h2_rx) = mpsc::unbounded_channel::<Conn<L>>();
    let tap = untouched::<Sniffed<L::Io>> as fn(&mut Sniffed<L::Io>);
    // HTTP/2 connections accepted before Closing: GOAWAY when it begins.
    let early = Accepted::<L> {
        rx: h2_rx,
        rest: Some(rest_tx.clone()),
    };
    let early = axum::serve(early.tap_io(tap), make_service.clone())
        .with_graceful_shutdown(drain.closing())
        .into_future();
    // Everything else, until Closed.
    let rest = Accepted::<L> {
        rx: rest_rx,
        rest: None,
    };
    let rest = axum::serve(rest.tap_io(tap), make_service)
        .with_graceful_shutdown(drain.closed())
        .into_future();
    let mut server = pin!(async move {
        let (early, rest) = tokio::join!(early, rest);
        early.and(rest)
    });
    let accept = accept_loop(&mut listener, h2_tx, rest_tx, drain);
    let report = tokio::select! {
        report = controller.run() => report,
        never = accept => match never {},
        served = &mut server => {
            served?;
            return Err(io::Error::other("the server stopped before the drain ended"));
        }
    };
    // The accept loop is gone: the listener closes here, at Closed.
    if tokio::time::timeout(linger, server).await.is_err() {
        tracing::warn!(target: "wsdrain", "HTTP connections still open after the drain; no longer waiting for them");
    }
    Ok(report)
}

/// What `serve` logs at start when no `DrainLayer` of its controller wraps a service.
const NO_LAYER: &str = "serve: no DrainLayer made from this controller wraps the service: \
     /readyz and /livez are not answered and GracefulUpgrade fails with 500; add \
     .layer(DrainLayer::new(controller.drain())) to the router";

/// Accepts for ever (axum's `Listener::accept` retries errors itself) and
/// hands each connection, once its first bytes are read, to a server.
async fn accept_loop<L: Listener>(
    listener: &mut L,
    h2_tx: mpsc::UnboundedSender<Conn<L>>,
    rest_tx: mpsc::UnboundedSender<Conn<L>>,
    drain: wsdrain_core::Drain,
) -> Infallible {
    loop {
        let (io, addr) = listener.accept().await;
        let (h2_tx, rest_tx, drain) = (h2_tx.clone(), rest_tx.clone(), drain.clone());
        // Not on the accept loop: a slow first byte delays no one else.
        tokio::spawn(async move {
            let (io, h2) = sniff(io).await;
            let conn = (io, addr);
            let conn = if h2 && drain.phase() < Phase::Closing {
                match h2_tx.send(conn) {
                    Ok(()) => return,
                    Err(mpsc::error::SendError(conn)) => conn,
                }
            } else {
                conn
            };
            // Fails only after Closed, when the listener is closing too.
            let _ = rest_tx.send(conn);
        });
    }
}
