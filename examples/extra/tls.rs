//! WebSockets over TLS (`wss://`), drained the same way: rustls on the ring
//! provider (no OpenSSL) in front of a hyper-util accept loop, the echo on
//! `GracefulSocket`, `/readyz` and `/livez` from `DrainLayer`.
//!
//! Run with
//!
//! ```sh
//! cargo run -p wsdrain-examples --example tls -- --listen 127.0.0.1:3443 --write-cert cert.pem
//! ```
//!
//! Without `--cert PATH --key PATH` (PEM files: a certificate chain and a
//! private key) it makes a self-signed certificate for `localhost` and
//! `127.0.0.1` at start; `--write-cert PATH` writes the certificate in use
//! (PEM) so that a client can trust it, e.g.
//! `curl --cacert cert.pem https://localhost:3443/readyz`.
//!
//! `/ws` echoes; `/ws-headers` first sends one text message with the upgrade
//! request's headers (`name: value` lines, so a client can see what reached
//! the server), then echoes.
//!
//! The policy comes from `WSDRAIN_*` variables. It prints `listening on
//! <addr>`, and the drain report on exit (code 0); a bad flag or setting
//! exits with code 2. As with `wsdrain::serve`, the listener stays open until
//! the drain reaches Closed, then plain HTTP connections get at most half
//! the deadline margin to finish.

#[path = "../support/mod.rs"]
mod support;

use std::{
    io,
    net::SocketAddr,
    path::PathBuf,
    pin::{Pin, pin},
    process::ExitCode,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use axum::{Router, extract::ws::Message, http::HeaderMap, response::Response, routing::get};
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::{conn::auto::Builder, graceful::GracefulShutdown},
    service::TowerToHyperService,
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
};
use tokio_rustls::{
    TlsAcceptor,
    rustls::{
        ServerConfig,
        crypto::ring,
        pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, pem::PemObject},
    },
    server::TlsStream,
};
use wsdrain::{DrainController, DrainLayer, GracefulUpgrade};

/// How long a client may take over its TLS handshake; a stalled one must not
/// hold a task forever.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

struct Args {
    listen: SocketAddr,
    cert: Option<(PathBuf, PathBuf)>,
    write_cert: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut listen = SocketAddr::from(([127, 0, 0, 1], 3443));
    let (mut cert, mut key, mut write_cert) = (None, None, None);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match flag.as_str() {
            "--listen" => {
                let v = value("--listen")?;
                listen = v
                    .parse()
                    .map_err(|_| format!("--listen: bad address {v:?}"))?;
            }
            "--cert" => cert = Some(PathBuf::from(value("--cert")?)),
            "--key" => key = Some(PathBuf::from(value("--key")?)),
            "--write-cert" => write_cert = Some(PathBuf::from(value("--write-cert")?)),
            "-h" | "--help" => {
                println!(
                    "usage: tls [--listen ADDR] [--cert PEM --key PEM] [--write-cert PATH]   (policy from WSDRAIN_*)"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let cert = match (cert, key) {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) => None,
        _ => return Err("--cert and --key go together".into()),
    };
    Ok(Args {
        listen,
        cert,
        write_cert,
    })
}

/// A certificate chain (and its PEM, for `--write-cert`) with its key: from
/// the files given, or made now.
type Certificate = (Vec<CertificateDer<'static>>, String, PrivateKeyDer<'static>);

fn certificate(args: &Args) -> Result<Certificate, String> {
    if let Some((cert, key)) = &args.cert {
        let read = |e: &dyn std::fmt::Display| format!("--cert {}: {e}", cert.display());
        let pem = std::fs::read_to_string(cert).map_err(|e| read(&e))?;
        let chain = CertificateDer::pem_slice_iter(pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| read(&e))?;
        let key = PrivateKeyDer::from_pem_file(key)
            .map_err(|e| format!("--key {}: {e}", key.display()))?;
        return Ok((chain, pem, key));
    }
    let made = rcgen::generate_simple_self_signed(["localhost".to_string(), "127.0.0.1".into()])
        .map_err(|e| format!("cannot make a certificate: {e}"))?;
    let key = PrivatePkcs8KeyDer::from(made.signing_key.serialize_der());
    Ok((vec![made.cert.der().clone()], made.cert.pem(), key.into()))
}

fn tls_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<ServerConfig, String> {
    let mut config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(chain, key))
        .map_err(|e| format!("TLS configuration: {e}"))?;
    // HTTP/1.1 only: a WebSocket over HTTP/2 needs extended CONNECT (RFC 8441).
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// A server TLS stream that sends its `close_notify` when dropped.
///
/// A WebSocket stack drops its stream after the closing handshake without
/// shutting it down (tungstenite never calls `poll_shutdown`), so over TLS
/// the peer would see the TCP close without a `close_notify`, which strict
/// clients (rustls) report as a truncation error after a clean Close. The
/// alert is ~30 bytes: written without blocking, best effort.
struct CloseNotifyOnDrop(TlsStream<TcpStream>);

impl Drop for CloseNotifyOnDrop {
    fn drop(&mut self) {
        struct TryWrite<'a>(&'a TcpStream);
        impl io::Write for TryWrite<'_> {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                self.0.try_write(buf)
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let (tcp, conn) = self.0.get_mut();
        conn.send_close_notify();
        while conn.wants_write() {
            if !matches!(conn.write_tls(&mut TryWrite(tcp)), Ok(n) if n > 0) {
                break;
            }
        }
    }
}

impl AsyncRead for CloseNotifyOnDrop {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for CloseNotifyOnDrop {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}

/// Accepts TLS connections until the drain is Closed, then gives plain HTTP
/// connections a bounded time to finish (sessions are the controller's).
async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    app: Router,
    controller: &DrainController,
) {
    let drain = controller.drain();
    let linger = controller.policy().deadline_margin() / 2;
    let graceful = GracefulShutdown::new();
    let mut closed = pin!(drain.closed());
    loop {
        let stream = tokio::select! {
            _ = &mut closed => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(e) => {
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let (acceptor, service) = (acceptor.clone(), TowerToHyperService::new(app.clone()));
        let watcher = graceful.watcher();
        // The handshake runs in the connection's task, so a slow client does
        // not hold up the accept loop.
        tokio::spawn(async move {
            let stream =
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => CloseNotifyOnDrop(stream),
                    Ok(Err(e)) => return tracing::debug!("TLS handshake: {e}"),
                    Err(_) => return tracing::debug!("TLS handshake timed out"),
                };
            let builder = Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            if let Err(e) = watcher.watch(conn).await {
                tracing::debug!("connection: {e}");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(linger, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("HTTP connections still open after the drain; no longer waiting for them");
    }
}

fn main() -> ExitCode {
    support::init_logs();
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("tls: {e}");
            return ExitCode::from(2);
        }
    };
    let config = match certificate(&args).and_then(|(chain, pem, key)| {
        if let Some(path) = &args.write_cert {
            std::fs::write(path, pem)
                .map_err(|e| format!("--write-cert {}: {e}", path.display()))?;
        }
        tls_config(chain, key)
    }) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tls: {e}");
            return ExitCode::from(2);
        }
    };
    // Policy, signals (while this is the only thread), then the runtime.
    let support::Started {
        controller,
        signals: _signals,
        runtime,
    } = match support::start("tls") {
        Ok(s) => s,
        Err(code) => return code,
    };
    runtime.block_on(async {
        let app = Router::new()
            .route(
                "/ws",
                get(|upgrade: GracefulUpgrade| async move {
                    let response: Response = upgrade.on_upgrade(support::echo);
                    response
                }),
            )
            .route(
                "/ws-headers",
                get(|headers: HeaderMap, upgrade: GracefulUpgrade| async move {
                    let seen: String = headers
                        .iter()
                        .map(|(k, v)| format!("{k}: {}\n", String::from_utf8_lossy(v.as_bytes())))
                        .collect();
                    let response: Response = upgrade.on_upgrade(move |mut socket| async move {
                        if socket.send(Message::text(seen)).await.is_ok() {
                            support::echo(socket).await;
                        }
                    });
                    response
                }),
            )
            .layer(DrainLayer::new(controller.drain()));
        let listener = match support::bind("tls", args.listen).await {
            Ok(l) => l,
            Err(code) => return code,
        };
        support::announce(listener.local_addr().unwrap_or(args.listen), &controller);
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let (report, ()) = tokio::join!(
            controller.run(),
            accept_loop(listener, acceptor, app, &controller)
        );
        println!("drained: {report}");
        ExitCode::SUCCESS
    })
}
