//! `accept` in process: the session is drained with a hinted 1001, and an
//! upgrade during Closing is answered with 503 + `Retry-After`.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::{self, Message};
use wsdrain_core::{DrainController, DrainPolicy, Phase, Refused};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_drain_and_late_upgrades_are_refused() {
    let policy = DrainPolicy::builder()
        .kubernetes(false)
        .drain_delay(Duration::ZERO)
        .close_window(Duration::from_millis(200))
        .close_timeout(Duration::from_secs(1))
        .grace_period(Duration::from_secs(20))
        .build()
        .unwrap();
    let controller = DrainController::new(policy);
    let drain = controller.drain();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (refused_tx, mut refused_rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn({
        let drain = drain.clone();
        async move {
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                let (drain, refused_tx) = (drain.clone(), refused_tx.clone());
                tokio::spawn(async move {
                    let r = wsdrain_tungstenite::accept(&drain, tcp, |mut socket| async move {
                        while let Some(Ok(msg)) = socket.recv().await {
                            if msg.is_text() && socket.send(msg).await.is_err() {
                                break;
                            }
                        }
                    })
                    .await;
                    if let Err(wsdrain_tungstenite::AcceptError::Refused(r)) = r {
                        let _ = refused_tx.send(r);
                    }
                });
            }
        }
    });

    let (mut client, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/"))
        .await
        .unwrap();
    client.send(Message::text("hi")).await.unwrap();
    assert_eq!(client.next().await.unwrap().unwrap(), Message::text("hi"));
    // Keeps the drain in Closing until the refused upgrade was tried.
    let held = drain.register_session().unwrap();
    assert_eq!(drain.sessions(), 2);

    controller.begin();
    let run = tokio::spawn(async move { controller.run().await });
    let close = loop {
        match client.next().await {
            Some(Ok(Message::Close(frame))) => break frame.unwrap(),
            Some(Ok(_)) => {}
            other => panic!("no Close: {other:?}"),
        }
    };
    assert_eq!(u16::from(close.code), 1001);
    assert!(close.reason.contains("retry-after-ms="), "{}", close.reason);
    assert!(
        client.next().await.is_none(),
        "clean end after the handshake"
    );
    assert_eq!(drain.phase(), Phase::Closing);

    match tokio_tungstenite::connect_async(format!("ws://{addr}/")).await {
        Err(tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 503);
            let secs: u64 = response.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!(secs >= 1, "{secs}");
        }
        other => panic!("expected 503, got {other:?}"),
    }
    assert_eq!(refused_rx.recv().await, Some(Refused::Closing));
    drop(held);
    let report = run.await.unwrap();
    assert_eq!(report.closed_clean, 1, "{report}");
    assert_eq!(report.refused_upgrades, 1, "{report}");
}
