//! The Rust client with resume on, through a fleet rolled like a
//! Deployment: three replicas of the `feed` example on one real
//! `redis-server` behind a real HAProxy, a publisher process, each replica
//! replaced in turn and taken out with SIGTERM, SIGTERM with the drain
//! notice, or SIGKILL. Every client sees every tick once, in order, with
//! no resync: the replica that takes the reconnect replays from Redis what
//! the client missed.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/fleet.rs"]
mod fleet;
#[path = "common/redis.rs"]
mod redis_server;

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use common::feed::{Ledger, RATE, tick_now};
use fleet::{Fleet, ONE_FLEET, REPLICAS, Roll};
use tokio::task::JoinHandle;
use wsdrain::client::{Event, Reconnect, RetryPolicy};

/// Clients following the ticker, two per replica.
const CLIENTS: usize = 6;

/// Bound on any one wait for the clients.
const LIMIT: Duration = Duration::from_secs(30);

/// What one client saw.
#[derive(Debug, Default)]
struct Account {
    ledger: Ledger,
    handovers: u64,
    handovers_failed: u64,
    /// Close codes of the connections that ended.
    closes: Vec<u16>,
    /// Connections open now.
    open: u32,
    /// Since when none is open (after the first opened).
    down_since: Option<Instant>,
    /// Time without an open connection, after the first opened.
    disconnected: Duration,
}

/// A resuming client of `url` whose events a task reads into its account.
fn follow(url: &str) -> (Arc<Mutex<Account>>, JoinHandle<()>) {
    // stable_after 1 s: a client moved again within a roll (it landed on a
    // replica rolled next) hands over at once instead of pacing a "young"
    // handover.
    let policy = RetryPolicy::builder()
        .base(Duration::from_millis(50))
        .cap(Duration::from_secs(1))
        .stable_after(Duration::from_secs(1))
        .build()
        .unwrap();
    let (_client, mut events) = Reconnect::new(url).resume(true).policy(policy).spawn();
    let account = Arc::new(Mutex::new(Account::default()));
    let kept = account.clone();
    let task = tokio::spawn(async move {
        while let Some(event) = events.next().await {
            let mut a = kept.lock().unwrap();
            match event {
                Event::StreamMessage(m) => {
                    assert_eq!(&*m.stream, "ticker");
                    a.ledger.message(m.seq, m.message.to_text().unwrap());
                }
                Event::Resync(r) => a.ledger.resync(r.after),
                Event::Resumed(_) => a.ledger.resumed(),
                Event::Handover(_) => a.handovers += 1,
                Event::HandoverFailed { .. } => a.handovers_failed += 1,
                Event::Connected { .. } => {
                    a.open += 1;
                    if let Some(since) = a.down_since.take() {
                        a.disconnected += since.elapsed();
                    }
                }
                Event::Closed(c) => {
                    a.closes.push(c.code);
                    a.open -= 1;
                    if a.open == 0 {
                        a.down_since = Some(Instant::now());
                    }
                }
                Event::ResumeDeclined { .. } | Event::GaveUp(_) => panic!("{event:?}"),
                _ => {}
            }
        }
    });
    (account, task)
}

/// Waits until `cond` holds for every account (polling their state, which
/// the reading tasks update).
async fn all(accounts: &[Arc<Mutex<Account>>], what: &str, cond: impl Fn(&Account) -> bool) {
    let start = Instant::now();
    while !accounts.iter().all(|a| cond(&a.lock().unwrap())) {
        assert!(
            start.elapsed() < LIMIT,
            "not every client {what} within {LIMIT:?}: {accounts:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn delivered(accounts: &[Arc<Mutex<Account>>]) -> Vec<u64> {
    accounts
        .iter()
        .map(|a| a.lock().unwrap().ledger.delivered)
        .collect()
}

async fn rolled(roll: Roll) {
    let _one = ONE_FLEET.lock().await;
    let mut fleet = Fleet::start(roll).await;
    let (accounts, tasks): (Vec<_>, Vec<_>) = (0..CLIENTS).map(|_| follow(&fleet.url())).unzip();
    all(&accounts, "received 20 ticks", |a| a.ledger.delivered >= 20).await;

    for i in 0..REPLICAS {
        fleet.roll(i).await;
        // The old replica is gone, its clients closed: every client goes
        // on, 20 more ticks from here.
        let before = delivered(&accounts);
        let accounts_before: Vec<_> = accounts.iter().cloned().zip(before).collect();
        let start = Instant::now();
        while !accounts_before
            .iter()
            .all(|(a, n)| a.lock().unwrap().ledger.delivered >= n + 20)
        {
            assert!(
                start.elapsed() < LIMIT,
                "stalled after roll {i}: {accounts:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // And keeps up with the publisher.
    let now = tick_now(RATE) + 10;
    all(&accounts, "caught up", |a| {
        a.ledger.last_tick().is_some_and(|n| n >= now)
    })
    .await;
    for task in tasks {
        task.abort();
    }

    let mut moved = 0;
    for account in &accounts {
        let a = account.lock().unwrap();
        eprintln!("{roll:?}: {a:?}");
        let l = &a.ledger;
        assert_eq!(
            (l.missed, l.duplicated, l.resyncs),
            (0, 0, 0),
            "{roll:?}: {a:?}"
        );
        assert!(
            l.resumed >= 1,
            "every client was moved at least once: {a:?}"
        );
        moved += l.resumed;
        match roll {
            Roll::Graceful => assert!(a.closes.contains(&1001), "{a:?}"),
            Roll::Notice => assert!(
                a.handovers >= 1 && a.handovers_failed == 0 && a.disconnected.is_zero(),
                "make-before-break: {a:?}"
            ),
            Roll::Crash => assert!(a.closes.contains(&1006), "{a:?}"),
        }
    }
    eprintln!("{roll:?}: {CLIENTS} clients, {moved} moves, no tick missed or repeated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_roll_costs_no_tick() {
    rolled(Roll::Graceful).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_roll_with_the_notice_hands_over_exactly_once() {
    rolled(Roll::Notice).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_replica_costs_no_tick() {
    rolled(Roll::Crash).await;
}
