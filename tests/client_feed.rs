//! The Rust client with resume on against the `feed` example: real
//! processes, real signals, and a TCP relay that drops its connections
//! mid-stream (a proxy that died). Every ticker payload is `{"n":N}` with
//! `N` the tick, so the test counts what was missed or seen twice whatever
//! the ids say (`common::feed::Ledger`).
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::feed::{ENV, Ledger, RATE, Relay, start_feed, tick_now, ticks_pass};
use nix::sys::signal::Signal;
use wsdrain::client::{Event, Events, ResyncReason, RetryPolicy};

/// Bound on waiting for anything: an event, a number of messages.
const LIMIT: Duration = Duration::from_secs(20);

/// A resuming client of the feed and its account of the ticker.
struct FeedClient {
    events: Events,
    ledger: Ledger,
}

impl FeedClient {
    fn spawn(url: &str) -> FeedClient {
        let (_client, events) = wsdrain::client::Reconnect::new(url)
            .resume(true)
            .policy(
                RetryPolicy::builder()
                    .base(Duration::from_millis(20))
                    .cap(Duration::from_secs(1))
                    .build()
                    .unwrap(),
            )
            .spawn();
        FeedClient {
            events,
            ledger: Ledger::default(),
        }
    }

    /// Reads events into the ledger until `done` holds for one, within
    /// [`LIMIT`]; returns it.
    async fn until(&mut self, what: &str, mut done: impl FnMut(&Event) -> bool) -> Event {
        let deadline = tokio::time::Instant::now() + LIMIT;
        loop {
            let event = match tokio::time::timeout_at(deadline, self.events.next()).await {
                Ok(Some(event)) => event,
                Ok(None) => panic!("events ended waiting for {what}"),
                Err(_) => panic!("no {what} within {LIMIT:?}; {:?}", self.ledger),
            };
            match &event {
                Event::StreamMessage(m) => {
                    assert_eq!(&*m.stream, "ticker");
                    self.ledger.message(m.seq, m.message.to_text().unwrap());
                }
                Event::Resync(r) => self.ledger.resync(r.after),
                Event::Resumed(_) => self.ledger.resumed(),
                Event::ResumeDeclined { .. } => panic!("the feed declined resume"),
                Event::Message { message, .. } => panic!("a message outside the ticker: {message}"),
                _ => {}
            }
            if done(&event) {
                return event;
            }
        }
    }

    /// Reads until `n` more ticker messages have been delivered.
    async fn deliver(&mut self, n: u64) {
        let until = self.ledger.delivered + n;
        if self.ledger.delivered < until {
            let ledger_delivered = |e: &Event| matches!(e, Event::StreamMessage(_));
            let mut left = until - self.ledger.delivered;
            self.until(&format!("{n} messages"), |e| {
                if ledger_delivered(e) {
                    left -= 1;
                }
                left == 0
            })
            .await;
        }
    }

    fn assert_exactly_once(&self) {
        let l = &self.ledger;
        eprintln!("{l:?}");
        assert_eq!(
            (l.missed, l.duplicated),
            (0, 0),
            "missed or duplicated: {l:?}"
        );
    }
}

#[tokio::test]
async fn a_relay_that_drops_the_connection_costs_no_message() {
    let server = start_feed(ENV, &[]);
    let relay = Relay::start(server.addr).await;
    let mut client = FeedClient::spawn(&format!("ws://{}/feed", relay.addr));
    client.deliver(25).await;

    relay.cut();
    let closed = client
        .until("the cut", |e| matches!(e, Event::Closed(_)))
        .await;
    let Event::Closed(closed) = closed else {
        unreachable!()
    };
    assert_eq!(closed.code, 1006, "{closed:?}");
    // The relay stays down while the client fails to reconnect and the feed
    // publishes at least ten ticks it will have to replay.
    let last = client.ledger.last_tick().unwrap();
    let mut failed = 0;
    client
        .until("two failed attempts", |e| {
            failed += usize::from(matches!(e, Event::ConnectFailed(_)));
            failed >= 2
        })
        .await;
    ticks_pass(RATE, last, 10).await;
    relay.restore().await;

    let resumed = client
        .until("resumed", |e| matches!(e, Event::Resumed(_)))
        .await;
    let Event::Resumed(resumed) = resumed else {
        unreachable!()
    };
    assert_eq!(&*resumed.stream, "ticker");
    let at_resume = tick_now(RATE);
    client.deliver(30).await;
    client.assert_exactly_once();
    assert_eq!(client.ledger.resyncs, 0, "{:?}", client.ledger);
    assert!(
        client.ledger.last_tick().unwrap() > at_resume,
        "replayed the outage, then live: {:?}",
        client.ledger
    );
}

#[tokio::test]
async fn a_restart_in_place_with_an_in_memory_log_is_a_resync() {
    for notice in [false, true] {
        let mut old = if notice {
            let mut env = ENV.to_vec();
            env.push(("WSDRAIN_NOTICE_LEAD", "300ms"));
            start_feed(&env, &[])
        } else {
            start_feed(ENV, &[])
        };
        let addr = old.addr;
        let mut client = FeedClient::spawn(&format!("ws://{addr}/feed"));
        client.deliver(25).await;

        old.signal(Signal::SIGTERM);
        if notice {
            // The only replica refuses the new connection while it closes:
            // the client stays on the old one until its Close.
            client
                .until("the failed handover", |e| {
                    matches!(e, Event::HandoverFailed { .. })
                })
                .await;
        }
        let Event::Closed(closed) = client
            .until("the drain's close", |e| matches!(e, Event::Closed(_)))
            .await
        else {
            unreachable!()
        };
        assert_eq!(closed.code, 1001, "{closed:?}");
        assert!(closed.hint.is_some(), "{closed:?}");
        let (code, _) = old.wait_exit(Duration::from_secs(10));
        assert_eq!(code, Some(0));
        let addr = addr.to_string();
        let _new = start_feed(ENV, &["--listen", &addr]);

        let Event::Resync(resync) = client
            .until("the resync", |e| matches!(e, Event::Resync(_)))
            .await
        else {
            unreachable!()
        };
        assert_eq!(&*resync.stream, "ticker");
        assert!(
            matches!(resync.reason, ResyncReason::Epoch | ResyncReason::Unknown),
            "{resync:?}"
        );
        client.deliver(25).await;
        client.assert_exactly_once();
        let l = &client.ledger;
        assert_eq!((l.resyncs, l.resumed), (1, 0), "{l:?}");
        assert!(l.resynced_over > 0, "the restart lost ticks: {l:?}");
    }
}
