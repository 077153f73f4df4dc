//! Waiting on a `wsdrain::client` in tests: every wait bounded.

use std::time::Duration;

use wsdrain::client::{Client, Closed, ConnectionId, Event, Events, Message, Wait};

/// Bound on waiting for any one event.
pub const EVENT_LIMIT: Duration = Duration::from_secs(15);

/// Least jitter the client adds to a hint or `Retry-After` (its default).
pub const HINT_JITTER: Duration = Duration::from_millis(50);

pub async fn next(events: &mut Events) -> Event {
    match tokio::time::timeout(EVENT_LIMIT, events.next()).await {
        Ok(Some(event)) => event,
        Ok(None) => panic!("events ended"),
        Err(_) => panic!("no event within {EVENT_LIMIT:?}"),
    }
}

pub async fn connected(events: &mut Events) -> ConnectionId {
    match next(events).await {
        Event::Connected { connection } => connection,
        other => panic!("expected Connected, got {other:?}"),
    }
}

/// Skips messages until the connection closes.
pub async fn next_closed(events: &mut Events) -> Closed {
    loop {
        match next(events).await {
            Event::Closed(closed) => return closed,
            Event::Message { .. } => {}
            other => panic!("expected Closed, got {other:?}"),
        }
    }
}

pub async fn reconnecting(events: &mut Events) -> (Duration, Wait) {
    match next(events).await {
        Event::Reconnecting { delay, wait } => (delay, wait),
        other => panic!("expected Reconnecting, got {other:?}"),
    }
}

/// Sends `text` and waits for its echo on the same connection.
pub async fn round_trip(client: &Client, events: &mut Events, text: &str) {
    let id = client.send(Message::text(text)).await.unwrap();
    match next(events).await {
        Event::Message {
            connection,
            message,
        } => assert_eq!((connection, message), (id, Message::text(text))),
        other => panic!("expected the echo, got {other:?}"),
    }
}
