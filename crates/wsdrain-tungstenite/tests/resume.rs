//! `accept_resumable` in process: the resume point is read in the
//! handshake (400 when it cannot be), `admit` refuses what the user may not
//! read, the subprotocol is selected when offered, and the session resumes.
#![allow(clippy::unwrap_used)]

use std::{net::SocketAddr, time::Duration};

use futures_util::StreamExt;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::{
    self, Message,
    client::IntoClientRequest,
    handshake::server::ErrorResponse,
    http::{HeaderValue, StatusCode},
};
use wsdrain_core::{
    DrainController, DrainPolicy,
    resume::{Feed, MemoryLog, Published},
};
use wsdrain_tungstenite::AcceptError;

/// A server whose sessions follow `ticker`; `admit` refuses any point that
/// names another stream.
async fn serve(
    feed: Feed<MemoryLog>,
) -> (
    SocketAddr,
    tokio::sync::mpsc::UnboundedReceiver<AcceptError>,
    DrainController,
) {
    let policy = DrainPolicy::builder()
        .kubernetes(false)
        .grace_period(Duration::from_secs(30))
        .build()
        .unwrap();
    let controller = DrainController::new(policy);
    let drain = controller.drain();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (errors, errors_rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let (drain, feed, errors) = (drain.clone(), feed.clone(), errors.clone());
            tokio::spawn(async move {
                // The shape tungstenite's handshake answers have.
                #[allow(clippy::result_large_err)]
                let admit = |_: &_, point: &wsdrain_core::resume::ResumePoint| {
                    if point.streams().all(|s| s == "ticker") {
                        Ok("ticker")
                    } else {
                        let mut answer = ErrorResponse::new(Some("forbidden\n".into()));
                        *answer.status_mut() = StatusCode::FORBIDDEN;
                        Err(answer)
                    }
                };
                let served = wsdrain_tungstenite::accept_resumable(
                    &drain,
                    tcp,
                    feed,
                    admit,
                    |mut socket, stream| async move {
                        if socket.follow(stream).await.is_ok() {
                            socket.run().await;
                        }
                    },
                )
                .await;
                if let Err(e) = served {
                    let _ = errors.send(e);
                }
            });
        }
    });
    (addr, errors_rx, controller)
}

fn request(addr: SocketAddr, query: &str, offer: bool) -> tungstenite::handshake::client::Request {
    let mut req = format!("ws://{addr}/?{query}")
        .into_client_request()
        .unwrap();
    if offer {
        req.headers_mut().insert(
            "sec-websocket-protocol",
            HeaderValue::from_static("wsdrain.resume.v1"),
        );
    }
    req
}

async fn text(
    ws: &mut (impl StreamExt<Item = Result<Message, tungstenite::Error>> + Unpin),
) -> String {
    ws.next()
        .await
        .unwrap()
        .unwrap()
        .into_text()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_resume_through_accept_resumable() {
    let feed = Feed::new(MemoryLog::new());
    for n in 1..=5 {
        feed.publish("ticker", n.to_string()).await.unwrap();
    }
    let Published::Logged { epoch, .. } = feed.publish("ticker", "6").await.unwrap() else {
        panic!("not logged");
    };
    let (addr, mut errors, _controller) = serve(feed.clone()).await;

    // Resumed from 4: the control, then 5 and 6 replayed, then live.
    let (mut ws, response) = tokio_tungstenite::connect_async(request(
        addr,
        &format!("wsdrain-resume=ticker@{epoch}.4"),
        true,
    ))
    .await
    .unwrap();
    assert_eq!(
        response.headers()["sec-websocket-protocol"],
        "wsdrain.resume.v1"
    );
    assert_eq!(
        text(&mut ws).await,
        format!(
            "c\n{{\"type\":\"wsdrain.resumed\",\"stream\":\"ticker\",\"epoch\":\"{epoch}\",\"after\":4}}"
        )
    );
    assert_eq!(text(&mut ws).await, "m ticker 5\n5");
    assert_eq!(text(&mut ws).await, "m ticker 6\n6");
    feed.publish("ticker", "7").await.unwrap();
    assert_eq!(text(&mut ws).await, "m ticker 7\n7");

    // Not offered: no subprotocol, plain payloads.
    let (mut plain, response) = tokio_tungstenite::connect_async(request(addr, "", false))
        .await
        .unwrap();
    assert!(response.headers().get("sec-websocket-protocol").is_none());
    feed.publish("ticker", "8").await.unwrap();
    assert_eq!(text(&mut plain).await, "8");

    // Another stream in the point: admit's 403.
    let refused =
        tokio_tungstenite::connect_async(request(addr, "wsdrain-resume=secret@E.1", true)).await;
    let Err(tungstenite::Error::Http(response)) = refused else {
        panic!("not refused: {refused:?}");
    };
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(matches!(
        errors.recv().await,
        Some(AcceptError::Rejected(StatusCode::FORBIDDEN))
    ));

    // A point that cannot be read: 400, naming the problem.
    let bad =
        tokio_tungstenite::connect_async(request(addr, "wsdrain-resume=ticker@E", true)).await;
    let Err(tungstenite::Error::Http(response)) = bad else {
        panic!("not refused: {bad:?}");
    };
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body = String::from_utf8(response.body().clone().unwrap_or_default()).unwrap();
    assert_eq!(
        body,
        "wsdrain-resume: item \"ticker@E\" is not <stream>@<epoch>.<seq>\n"
    );
    assert!(matches!(
        errors.recv().await,
        Some(AcceptError::Rejected(StatusCode::BAD_REQUEST))
    ));
}
