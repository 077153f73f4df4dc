//! The Redis Streams log against a real `redis-server`: append, read, head,
//! epochs, expiry, round trips, and Redis going away and coming back.
#![allow(clippy::unwrap_used)]

#[path = "common/redis.rs"]
mod redis_server;

use std::{collections::HashSet, time::Duration};

use futures_util::future::join_all;
use redis_server::RedisServer;
use wsdrain::redis::RedisLog;
use wsdrain_core::resume::{Epoch, Log, LogError, Payload, Read, ResyncReason};

/// Long enough for a loaded CI machine; failures do not wait for it.
const UP: Duration = Duration::from_secs(10);

async fn log(redis: &RedisServer) -> RedisLog {
    let log = RedisLog::builder(redis.url())
        .command_timeout(Duration::from_secs(5))
        .reconnect(Duration::from_millis(20), Duration::from_millis(200))
        .build()
        .unwrap();
    assert!(log.wait_connected(UP).await, "the log connects");
    log
}

fn entries(read: Read) -> Vec<(u64, Vec<u8>)> {
    match read {
        Read::Entries(e) => e.iter().map(|e| (e.seq(), e.payload().to_vec())).collect(),
        Read::Resync { reason, head } => panic!("resync {reason:?} at {head:?}"),
    }
}

fn resync(read: Read) -> ResyncReason {
    match read {
        Read::Resync { reason, .. } => reason,
        Read::Entries(e) => panic!("{} entries, not a resync", e.len()),
    }
}

#[tokio::test]
async fn appends_are_contiguous_and_read_back() {
    let redis = RedisServer::start();
    let log = log(&redis).await;
    let a = log.append("ticker", &Payload::text("one")).await.unwrap();
    let b = log
        .append("ticker", &Payload::binary(vec![0, 255]))
        .await
        .unwrap();
    let c = log.append("ticker", &Payload::text("three")).await.unwrap();
    assert_eq!((a.seq(), b.seq(), c.seq()), (1, 2, 3));
    assert!(a.epoch() == b.epoch() && b.epoch() == c.epoch());
    assert_eq!(&c.frame()[..], b"m ticker 3\nthree");

    let head = log.head("ticker").await.unwrap();
    assert_eq!((&head.epoch, head.first, head.last), (a.epoch(), 1, 3));

    let Read::Entries(read) = log.read("ticker", a.epoch(), 1, 10).await.unwrap() else {
        panic!("entries expected");
    };
    assert_eq!(
        read.iter()
            .map(|e| (e.seq(), e.is_text(), e.payload().to_vec()))
            .collect::<Vec<_>>(),
        [(2, false, vec![0, 255]), (3, true, b"three".to_vec())]
    );
    assert_eq!(
        read[1].frame(),
        c.frame(),
        "the frame read back is the one built"
    );
    assert_eq!(
        entries(log.read("ticker", a.epoch(), 3, 10).await.unwrap()),
        []
    );
    // A full batch stops at `max`.
    let batch = entries(log.read("ticker", a.epoch(), 0, 2).await.unwrap());
    assert_eq!(batch.iter().map(|e| e.0).collect::<Vec<_>>(), [1, 2]);
}

#[tokio::test]
async fn concurrent_appends_take_one_command_each_and_share_one_sequence() {
    let redis = RedisServer::start();
    // Two logs: two processes appending to one stream.
    let (one, two) = (log(&redis).await, log(&redis).await);
    let before = redis.command_calls().await;
    let n = 400;
    let appends = (0..n).map(|i| {
        let log = if i % 2 == 0 { one.clone() } else { two.clone() };
        async move {
            log.append("burst", &Payload::text(format!("{i}")))
                .await
                .unwrap()
        }
    });
    let appended = join_all(appends).await;
    let after = redis.command_calls().await;

    let seqs: HashSet<u64> = appended.iter().map(|e| e.seq()).collect();
    assert_eq!(seqs, (1..=n).collect(), "every seq once, none skipped");
    assert!(appended.iter().all(|e| e.epoch() == appended[0].epoch()));
    let delta = |name: &str| after.get(name).unwrap_or(&0) - before.get(name).unwrap_or(&0);
    assert_eq!(delta("evalsha"), n, "one script call per message");
    assert_eq!(delta("xadd"), n);
    // Commands the script runs are counted too; besides them and the
    // script call itself, nothing went to Redis (`info` is this test's,
    // `ping` the idle check's).
    let inside = [
        "hmget", "xadd", "hset", "pexpire", "time", "exists", "del", "xrange",
    ];
    let outside: Vec<(&String, u64)> = after
        .keys()
        .filter(|k| !inside.contains(&k.as_str()))
        .filter(|k| !matches!(k.as_str(), "evalsha" | "info" | "ping"))
        .map(|k| (k, delta(k)))
        .filter(|(_, d)| *d > 0)
        .collect();
    assert_eq!(outside, [], "no command outside the script");
}

#[tokio::test]
async fn trimmed_history_is_expired() {
    let redis = RedisServer::start();
    let log = RedisLog::builder(redis.url()).max_len(5).build().unwrap();
    assert!(log.wait_connected(UP).await);
    let mut epoch = None;
    for i in 1..=8 {
        let e = log
            .append("s", &Payload::text(format!("{i}")))
            .await
            .unwrap();
        epoch = Some(e.epoch().clone());
    }
    let epoch = epoch.unwrap();
    let head = log.head("s").await.unwrap();
    assert_eq!((head.first, head.last), (4, 8));
    assert_eq!(
        resync(log.read("s", &epoch, 2, 10).await.unwrap()),
        ResyncReason::Expired
    );
    let kept = entries(log.read("s", &epoch, 3, 10).await.unwrap());
    assert_eq!(
        kept.iter().map(|e| e.0).collect::<Vec<_>>(),
        [4, 5, 6, 7, 8]
    );
    let mut conn = redis.connection().await;
    let len: u64 = redis::cmd("XLEN")
        .arg("wsdrain:{s}:log")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(len, 5, "MAXLEN is exact");
}

#[tokio::test]
async fn unknown_positions_and_other_epochs() {
    let redis = RedisServer::start();
    let log = log(&redis).await;
    let e = log.append("s", &Payload::text("x")).await.unwrap();
    assert_eq!(
        resync(log.read("s", e.epoch(), 9, 10).await.unwrap()),
        ResyncReason::Unknown,
        "ahead of the log"
    );
    let other = Epoch::new("Other1").unwrap();
    assert_eq!(
        resync(log.read("s", &other, 1, 10).await.unwrap()),
        ResyncReason::Epoch
    );
    // A stream without history: its history begins at this read.
    let Read::Resync { reason, head } = log.read("fresh", &other, 3, 10).await.unwrap() else {
        panic!("resync expected");
    };
    assert_eq!((reason, head.last), (ResyncReason::Unknown, 0));
    assert_eq!(
        log.head("fresh").await.unwrap().epoch,
        head.epoch,
        "it stays"
    );
    let next = log.append("fresh", &Payload::text("1")).await.unwrap();
    assert_eq!((next.epoch(), next.seq()), (&head.epoch, 1));
}

// Several threads: the log notices the restart while the test blocks on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restarted_empty_makes_a_new_epoch_and_the_log_reconnects() {
    let mut redis = RedisServer::start();
    let log = log(&redis).await;
    for _ in 0..3 {
        log.append("s", &Payload::text("x")).await.unwrap();
    }
    let old = log.head("s").await.unwrap();
    redis.stop();
    // Down: calls fail (the store's error), nothing panics.
    let down = log.append("s", &Payload::text("lost")).await;
    assert!(matches!(down, Err(LogError::Store(_))), "{down:?}");
    assert!(matches!(log.head("s").await, Err(LogError::Store(_))));
    redis.restart(false);
    assert!(log.wait_connected(UP).await, "reconnects by itself");
    let new = log.append("s", &Payload::text("y")).await.unwrap();
    assert_ne!(new.epoch(), &old.epoch);
    assert_eq!(new.seq(), 1);
    assert_eq!(
        resync(log.read("s", &old.epoch, 3, 10).await.unwrap()),
        ResyncReason::Epoch
    );
}

// Several threads: the log notices the restart while the test blocks on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restarted_from_an_older_snapshot_reuses_no_seq() {
    let mut redis = RedisServer::start();
    let log = log(&redis).await;
    for _ in 0..3 {
        log.append("s", &Payload::text("saved")).await.unwrap();
    }
    let mut conn = redis.connection().await;
    let _: () = redis::cmd("SAVE").query_async(&mut conn).await.unwrap();
    let acknowledged = log.append("s", &Payload::text("lost")).await.unwrap();
    assert_eq!(acknowledged.seq(), 4);
    // The snapshot has seq 3 of the same epoch: the server that reloaded it
    // is another run, so the history is not trusted.
    redis.restart(true);
    assert!(log.wait_connected(UP).await);
    let next = log.append("s", &Payload::text("new")).await.unwrap();
    assert_ne!(
        (next.epoch(), next.seq()),
        (acknowledged.epoch(), 4),
        "seq 4 would now name another message"
    );
    assert_ne!(next.epoch(), acknowledged.epoch());
    assert_eq!(next.seq(), 1);
}

#[tokio::test]
async fn a_stream_that_vanished_begins_a_new_epoch() {
    let redis = RedisServer::start();
    let log = RedisLog::builder(redis.url())
        .idle_expiry(Some(Duration::from_secs(60)))
        .build()
        .unwrap();
    assert!(log.wait_connected(UP).await);
    let first = log.append("s", &Payload::text("x")).await.unwrap();
    let mut conn = redis.connection().await;
    for key in ["wsdrain:{s}:meta", "wsdrain:{s}:log"] {
        let ttl: i64 = redis::cmd("PTTL")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(
            (1..=60_000).contains(&ttl),
            "{key} expires with the stream: {ttl}"
        );
    }
    // Evicted (or expired) stream, meta kept.
    let _: () = redis::cmd("DEL")
        .arg("wsdrain:{s}:log")
        .query_async(&mut conn)
        .await
        .unwrap();
    let second = log.append("s", &Payload::text("y")).await.unwrap();
    assert_ne!(second.epoch(), first.epoch());
    assert_eq!(second.seq(), 1);
    // Both gone (expired): a new epoch again.
    let _: () = redis::cmd("DEL")
        .arg("wsdrain:{s}:log")
        .arg("wsdrain:{s}:meta")
        .query_async(&mut conn)
        .await
        .unwrap();
    let third = log.append("s", &Payload::text("z")).await.unwrap();
    assert!(third.epoch() != second.epoch() && third.seq() == 1);
}

#[tokio::test]
async fn too_large_messages_are_refused_and_not_appended() {
    let redis = RedisServer::start();
    let log = RedisLog::builder(redis.url())
        .max_payload(8)
        .build()
        .unwrap();
    assert!(log.wait_connected(UP).await);
    let refused = log.append("s", &Payload::text("123456789")).await;
    assert!(
        matches!(refused, Err(LogError::TooLarge { size: 9, max: 8 })),
        "{refused:?}"
    );
    assert_eq!(log.head("s").await.unwrap().last, 0);
    assert_eq!(
        log.append("s", &Payload::text("12345678"))
            .await
            .unwrap()
            .seq(),
        1
    );
}
