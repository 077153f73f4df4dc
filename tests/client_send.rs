//! What `Client::send` does when a server stops reading: the write waits on
//! that connection only, the client goes on reading, reporting, closing and
//! reconnecting, and every send ends with an answer (real TCP on loopback,
//! tokio-tungstenite on the server side).
#![allow(clippy::unwrap_used)]

mod common;

use std::{net::SocketAddr, time::Duration};

use common::client::{EVENT_LIMIT, connected, next, next_closed, round_trip};
use common::peers::{accept, close_frame, echo};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
    sync::oneshot,
};
use wsdrain::client::{
    Client, ConnectionId, Event, Events, GiveUp, Message, Reconnect, SendError, Wait,
};

/// Bound on waiting for a send's answer.
const LIMIT: Duration = EVENT_LIMIT;

/// A message no peer buffers whole: the client is still writing it when
/// the server stops reading.
const BIG: usize = 64 << 20;

/// What the first connection's server does once the client is stuck in a
/// write to it.
#[derive(Clone, Copy)]
enum Then {
    /// Nothing: it neither reads nor closes.
    Nothing,
    /// Sends `Close(1001, hint)` and keeps the TCP connection open.
    CloseWithHint(u64),
}

/// A server whose first connection reads 1 KiB of the client's data and
/// then stops reading (the client is then midway through a write it cannot
/// finish), says so on `stalled`, and does `then`. Later connections echo.
async fn stalling_server(then: Then) -> (SocketAddr, oneshot::Receiver<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, stalled) = oneshot::channel();
    tokio::spawn(async move {
        let (first, _) = listener.accept().await.unwrap();
        tokio::spawn(async move {
            let mut ws = accept(first).await.unwrap();
            let mut some = [0u8; 1024];
            ws.get_mut().read_exact(&mut some).await.unwrap();
            if let Then::CloseWithHint(ms) = then {
                let frame = close_frame(1001, &format!("going away; retry-after-ms={ms}"));
                ws.get_mut().write_all(&frame).await.unwrap();
            }
            let _ = tx.send(());
            // Holds the connection, unread, until the test ends.
            std::future::pending::<()>().await;
        });
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                if let Some(ws) = accept(stream).await {
                    echo(ws).await;
                }
            });
        }
    });
    (addr, stalled)
}

/// A client on `stalling_server(then)` with `close_timeout` 300 ms (as
/// `reconnect` changes it), stuck in a send of [`BIG`] bytes on its first
/// connection: the client, its events, that connection, the send.
async fn stuck(
    then: Then,
    reconnect: impl FnOnce(Reconnect) -> Reconnect,
) -> (
    Client,
    Events,
    ConnectionId,
    tokio::task::JoinHandle<Result<ConnectionId, SendError>>,
) {
    let (addr, stalled) = stalling_server(then).await;
    let (client, mut events) = reconnect(
        Reconnect::new(format!("ws://{addr}/ws")).close_timeout(Duration::from_millis(300)),
    )
    .spawn();
    let first = connected(&mut events).await;
    let big = send_big(&client);
    tokio::time::timeout(LIMIT, stalled).await.unwrap().unwrap();
    (client, events, first, big)
}

/// Starts a send of [`BIG`] bytes; its answer comes on the handle.
fn send_big(client: &Client) -> tokio::task::JoinHandle<Result<ConnectionId, SendError>> {
    let client = client.clone();
    tokio::spawn(async move { client.send(Message::binary(vec![7u8; BIG])).await })
}

async fn answer(
    send: tokio::task::JoinHandle<Result<ConnectionId, SendError>>,
) -> Result<ConnectionId, SendError> {
    tokio::time::timeout(LIMIT, send)
        .await
        .expect("the send answered")
        .unwrap()
}

#[tokio::test]
async fn a_server_that_stops_reading_does_not_stall_the_close_and_the_reconnect() {
    let (client, mut events, first, big) = stuck(Then::CloseWithHint(200), |r| r).await;
    // The server's Close is read and reported while the write still waits.
    let closed = next_closed(&mut events).await;
    assert_eq!(
        (closed.connection, closed.code),
        (first, 1001),
        "{closed:?}"
    );
    assert!(!closed.clean, "the server never ended TCP: {closed:?}");
    // The write was under way when the connection ended: it may or may not
    // have arrived, and the client says so.
    match answer(big).await {
        Err(SendError::Failed { connection, .. }) => assert_eq!(connection, first),
        other => panic!("expected Failed on {first}, got {other:?}"),
    }
    let (delay, wait) = match next(&mut events).await {
        Event::Reconnecting { delay, wait } => (delay, wait),
        other => panic!("expected Reconnecting, got {other:?}"),
    };
    assert_eq!(wait, Wait::Hint(closed.hint.unwrap()), "{delay:?}");
    let second = connected(&mut events).await;
    assert!(second > first);
    round_trip(&client, &mut events, "after the stall").await;
    client.close();
}

#[tokio::test]
async fn close_is_not_held_up_by_a_write_the_server_does_not_read() {
    let (client, mut events, first, big) = stuck(Then::Nothing, |r| r).await;
    client.close();
    // New sends are refused at once, the message handed back.
    match client.send(Message::text("late")).await {
        Err(SendError::NotConnected(m)) => assert_eq!(m, Message::text("late")),
        other => panic!("expected NotConnected, got {other:?}"),
    }
    // The Close cannot go out behind the stuck write; `close_timeout` later
    // the client drops the connection and stops.
    let closed = next_closed(&mut events).await;
    assert_eq!(
        (closed.connection, closed.code),
        (first, 1006),
        "{closed:?}"
    );
    assert!(matches!(
        answer(big).await,
        Err(SendError::Failed { connection, .. }) if connection == first
    ));
    assert_eq!(next(&mut events).await, Event::GaveUp(GiveUp::ClientClosed));
}

#[tokio::test]
async fn a_connection_that_takes_no_data_for_write_timeout_is_ended_and_replaced() {
    let limit = Duration::from_millis(500);
    let (client, mut events, first, big) = stuck(Then::Nothing, |r| r.write_timeout(limit)).await;
    // Queued behind the stuck write (or, if the connection is already gone,
    // refused at once): handed back either way.
    let queued = {
        let client = client.clone();
        tokio::spawn(async move { client.send(Message::text("queued")).await })
    };

    let closed = match next(&mut events).await {
        Event::Closed(closed) => closed,
        other => panic!("expected Closed, got {other:?}"),
    };
    assert_eq!(
        (closed.connection, closed.code),
        (first, 1006),
        "{closed:?}"
    );
    let error = closed.error.as_deref().unwrap_or_default();
    assert!(error.contains("took no data for 500ms"), "{closed:?}");
    assert!(closed.up_for >= limit, "{closed:?}");
    assert!(matches!(
        answer(big).await,
        Err(SendError::Failed { connection, .. }) if connection == first
    ));
    let queued = answer(queued).await.unwrap_err();
    assert!(
        matches!(queued, SendError::Unsent { connection, .. } if connection == first)
            || matches!(queued, SendError::NotConnected(_)),
        "{queued:?}"
    );
    assert_eq!(queued.into_message(), Some(Message::text("queued")));
    // A broken connection: backoff, then a new one that works.
    match next(&mut events).await {
        Event::Reconnecting { wait, .. } => assert_eq!(wait, Wait::Backoff { attempt: 0 }),
        other => panic!("expected Reconnecting, got {other:?}"),
    }
    let second = connected(&mut events).await;
    assert!(second > first);
    round_trip(&client, &mut events, "after the stall").await;
    client.close();
}

/// An application that answers each message from its event loop, while the
/// server sends faster than it reads events: the client's task waits to
/// emit the next event, and must still write the answer the application
/// waits for, or both wait on each other for ever.
#[tokio::test]
async fn answering_from_the_event_loop_while_events_are_full_does_not_deadlock() {
    use futures_util::{SinkExt, StreamExt};
    // Answers too big to be written in one go: each write has to be driven
    // to its end while the task also has the next event to hand over.
    const N: usize = 8;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (answers_tx, answers) = oneshot::channel();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let (mut sink, mut stream) = accept(stream).await.unwrap().split();
        tokio::spawn(async move {
            for i in 0..N {
                if sink.send(Message::text(i.to_string())).await.is_err() {
                    break;
                }
            }
            std::future::pending::<()>().await;
        });
        let mut got = 0;
        while got < N {
            match stream.next().await {
                Some(Ok(m)) if m.is_binary() => got += 1,
                Some(Ok(_)) => {}
                _ => break,
            }
        }
        let _ = answers_tx.send(got);
    });
    let (client, mut events) = Reconnect::new(format!("ws://{addr}/ws"))
        .event_capacity(1)
        .spawn();
    let first = connected(&mut events).await;
    let mut answered = 0;
    while answered < N {
        match next(&mut events).await {
            Event::Message { .. } => {
                let answer = Message::binary(vec![0u8; 12 << 20]);
                let sent = tokio::time::timeout(LIMIT, client.send(answer)).await;
                assert_eq!(
                    sent.expect("the answer was written").unwrap(),
                    first,
                    "answer {answered}"
                );
                answered += 1;
            }
            other => panic!("expected a message, got {other:?}"),
        }
    }
    let got = tokio::time::timeout(LIMIT, answers).await.unwrap().unwrap();
    assert_eq!(got, N);
    client.close();
}
