//! Redis round trips per published message, for a burst of publishes through
//! `Feed::publish` on the Redis log, at several concurrencies.
//!
//! Two counts per message, against a real `redis-server` on loopback:
//!
//! * **commands**: `EVALSHA` calls (from `INFO commandstats`) and every other
//!   command the client sent, per message. The goal is at most 1: an append
//!   is one script call, whatever happens inside it;
//! * **writes**: the reads a relay between the log and Redis makes of what
//!   the log sent, per message. Concurrent appends share the connection and
//!   go out together, so this falls below 1 as concurrency grows.
//!
//! Run with `cargo bench --bench redis_round_trips --features redis`.
#![allow(clippy::unwrap_used)]

#[path = "../tests/common/redis.rs"]
mod redis_server;

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

use futures_util::{StreamExt, stream};
use redis_server::RedisServer;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};
use wsdrain::{redis::RedisLog, resume::Feed};

const MESSAGES: u64 = 20_000;

/// Forwards one port to Redis, counting the reads of the client's bytes.
async fn relay(redis_port: u16, reads: Arc<AtomicU64>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let server = TcpStream::connect(("127.0.0.1", redis_port)).await.unwrap();
            let (mut cr, mut cw) = client.into_split();
            let (mut sr, mut sw) = server.into_split();
            let reads = reads.clone();
            tokio::spawn(async move {
                let mut buf = vec![0; 1 << 16];
                while let Ok(n) = cr.read(&mut buf).await {
                    if n == 0 || sw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                    reads.fetch_add(1, Ordering::Relaxed);
                }
            });
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut sr, &mut cw).await;
            });
        }
    });
    port
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let redis = RedisServer::start();
    let reads = Arc::new(AtomicU64::new(0));
    let port = relay(redis.port(), reads.clone()).await;
    let log = RedisLog::builder(format!("redis://127.0.0.1:{port}"))
        .build()
        .unwrap();
    assert!(log.wait_connected(std::time::Duration::from_secs(10)).await);
    let feed = Feed::new(log);

    println!(
        "{MESSAGES} publishes per row, one stream, redis-server on loopback through a counting relay"
    );
    println!("| concurrency | EVALSHA / msg | all commands / msg | client writes / msg | msgs/s |");
    println!("|---:|---:|---:|---:|---:|");
    for concurrency in [1, 8, 64, 512] {
        let stream_name = format!("burst-{concurrency}");
        let before = redis.command_calls().await;
        let reads_before = reads.load(Ordering::Relaxed);
        let start = Instant::now();
        stream::iter(0..MESSAGES)
            .for_each_concurrent(concurrency, |i| {
                let (feed, name) = (feed.clone(), stream_name.clone());
                async move {
                    let published = feed.publish(&name, format!("{{\"n\":{i}}}")).await;
                    assert!(matches!(
                        published,
                        Ok(wsdrain::resume::Published::Logged { .. })
                    ));
                }
            })
            .await;
        let elapsed = start.elapsed();
        let writes = reads.load(Ordering::Relaxed) - reads_before;
        let after = redis.command_calls().await;
        let delta = |name: &str| after.get(name).unwrap_or(&0) - before.get(name).unwrap_or(&0);
        // What the script runs inside is not a round trip; `info` is ours.
        let inside = [
            "hmget", "xadd", "hset", "pexpire", "time", "exists", "del", "xrange", "info",
        ];
        let sent: u64 = after
            .keys()
            .filter(|k| !inside.contains(&k.as_str()))
            .map(|k| delta(k))
            .sum();
        let per = |n: u64| n as f64 / MESSAGES as f64;
        println!(
            "| {concurrency} | {:.3} | {:.3} | {:.3} | {:.0} |",
            per(delta("evalsha")),
            per(sent),
            per(writes),
            MESSAGES as f64 / elapsed.as_secs_f64()
        );
    }
}
