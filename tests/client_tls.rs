//! The Rust client over `wss://` with a certificate made by the test and
//! trusted through a custom root: against the `tls` example (a real wsdrain
//! server, stopped with a real SIGTERM) and against a TLS server in the test
//! that refuses the first upgrade with `503` + `Retry-After`. Headers given
//! to the client reach the server. Loopback only.
#![allow(clippy::unwrap_used)]

mod common;

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use common::Server;
use common::client::{HINT_JITTER, next};
use futures_util::{SinkExt, StreamExt};
use nix::sys::signal::Signal;
use tokio_rustls::{
    TlsAcceptor,
    rustls::{
        ServerConfig,
        crypto::ring,
        pki_types::{CertificateDer, PrivatePkcs8KeyDer, pem::PemObject},
    },
};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use wsdrain::client::{Event, Events, FailedAt, Message, Reconnect, Wait, tls};

async fn message(events: &mut Events) -> String {
    match next(events).await {
        Event::Message { message, .. } => message.to_text().unwrap().to_owned(),
        other => panic!("expected a message, got {other:?}"),
    }
}

const ENV: &[(&str, &str)] = &[
    ("WSDRAIN_DRAIN_DELAY", "0s"),
    ("WSDRAIN_CLOSE_WINDOW", "0s"),
    ("WSDRAIN_CLOSE_TIMEOUT", "2s"),
    ("WSDRAIN_GRACE_PERIOD", "10s"),
    ("WSDRAIN_RETRY_AFTER_MIN", "700ms"),
    ("WSDRAIN_RETRY_AFTER_MAX", "1s"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_with_a_custom_root_carries_headers_and_the_hint() {
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("cert.pem");
    let mut server = Server::start("tls", ENV, &["--write-cert", pem.to_str().unwrap()]);
    let url = format!("wss://localhost:{}/ws-headers", server.addr.port());

    // The default roots do not trust the test's certificate: a TLS failure,
    // said as such.
    let (untrusting, mut events) = Reconnect::new(url.as_str()).spawn();
    match next(&mut events).await {
        Event::ConnectFailed(f) => assert_eq!((f.stage, f.status), (FailedAt::Tls, None), "{f:?}"),
        other => panic!("expected ConnectFailed, got {other:?}"),
    }
    untrusting.close();

    let roots = CertificateDer::pem_file_iter(&pem)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let (client, mut events) = Reconnect::new(url.as_str())
        .tls_config(tls::config_with_roots(roots).unwrap())
        .header("Authorization", "Bearer s3cret")
        .spawn();
    let first = match next(&mut events).await {
        Event::Connected { connection } => connection,
        other => panic!("expected Connected, got {other:?}"),
    };
    let seen = message(&mut events).await;
    assert!(
        seen.lines().any(|l| l == "authorization: Bearer s3cret"),
        "{seen}"
    );
    assert_eq!(client.send(Message::text("over tls")).await.unwrap(), first);
    assert_eq!(message(&mut events).await, "over tls");

    server.signal(Signal::SIGTERM);
    let closed = loop {
        match next(&mut events).await {
            Event::Closed(closed) => break closed,
            Event::Message { .. } => {}
            other => panic!("expected Closed, got {other:?}"),
        }
    };
    assert_eq!((closed.connection, closed.code), (first, 1001));
    assert!(closed.clean, "{closed:?}");
    assert!(closed.hint.is_some(), "{closed:?}");
    let (code, _) = tokio::task::block_in_place(|| server.wait_exit(Duration::from_secs(10)));
    assert_eq!(code, Some(0));
    client.close();
}

/// A TLS WebSocket server that answers its first upgrade with `503` and
/// `Retry-After: 1`, accepts the next ones and echoes; it records each
/// upgrade's `Authorization` header.
async fn refusing_once() -> (
    SocketAddr,
    CertificateDer<'static>,
    Arc<Mutex<Vec<Option<String>>>>,
) {
    let made = rcgen::generate_simple_self_signed(["localhost".to_string()]).unwrap();
    let cert = made.cert.der().clone();
    let key = PrivatePkcs8KeyDer::from(made.signing_key.serialize_der());
    let config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key.into())
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        for n in 0.. {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let Ok(stream) = acceptor.accept(tcp).await else {
                continue;
            };
            let record = record.clone();
            // tungstenite's own callback type.
            #[allow(clippy::result_large_err)]
            let callback =
                move |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
                    let auth = req
                        .headers()
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    record.lock().unwrap().push(auth);
                    if n == 0 {
                        let mut refused = ErrorResponse::new(None);
                        *refused.status_mut() = 503.try_into().unwrap();
                        refused
                            .headers_mut()
                            .insert("retry-after", "1".try_into().unwrap());
                        return Err(refused);
                    }
                    Ok(resp)
                };
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    if msg.is_text() && ws.send(msg).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (addr, cert, seen)
}

#[tokio::test]
async fn wss_refused_upgrade_retry_after_is_honoured() {
    let (addr, cert, seen) = refusing_once().await;
    let (client, mut events) = Reconnect::new(format!("wss://localhost:{}/ws", addr.port()))
        .tls_config(tls::config_with_roots([cert]).unwrap())
        .header("Authorization", "Bearer s3cret")
        .spawn();
    let failed = match next(&mut events).await {
        Event::ConnectFailed(f) => f,
        other => panic!("expected ConnectFailed, got {other:?}"),
    };
    let failed_at = Instant::now();
    assert_eq!(
        (failed.stage, failed.status, failed.retry_after),
        (FailedAt::Upgrade, Some(503), Some(Duration::from_secs(1))),
        "{failed:?}"
    );
    match next(&mut events).await {
        Event::Reconnecting { delay, wait } => {
            assert_eq!(wait, Wait::RetryAfter(Duration::from_secs(1)));
            assert!(
                delay >= Duration::from_secs(1) && delay < Duration::from_secs(1) + HINT_JITTER,
                "{delay:?}"
            );
        }
        other => panic!("expected Reconnecting, got {other:?}"),
    }
    let connection = match next(&mut events).await {
        Event::Connected { connection } => connection,
        other => panic!("expected Connected, got {other:?}"),
    };
    assert!(failed_at.elapsed() >= Duration::from_secs(1) - Duration::from_millis(5));
    assert_eq!(client.send(Message::text("hi")).await.unwrap(), connection);
    assert_eq!(message(&mut events).await, "hi");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen, vec![Some("Bearer s3cret".to_owned()); 2]);
    client.close();
}
