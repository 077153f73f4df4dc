//! A fleet of the `feed` example on one real `redis-server`: a publisher
//! process, three serving replicas behind a real HAProxy, rolled the way a
//! Deployment rolls (start the new replica, wait until the load balancer
//! has it, then SIGTERM the old one, or SIGKILL it as an OOM kill would).
//! Included with `#[path]` next to `common` and `redis_server`.
#![allow(dead_code, clippy::unwrap_used, unreachable_pub)]

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    process::{Child, Command, Stdio},
    time::Duration,
};

use nix::sys::signal::Signal;

use crate::common::{Server, example, feed::RATE, haproxy::Haproxy};
use crate::redis_server::RedisServer;

/// How a replica is taken out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Roll {
    /// SIGTERM: readiness 503, then each session's hinted Close.
    Graceful,
    /// SIGTERM with `WSDRAIN_NOTICE_LEAD`: the notice, a lead before each
    /// Close.
    Notice,
    /// SIGKILL: no Close at all.
    Crash,
}

/// One fleet at a time: each is seven processes on a small machine.
pub static ONE_FLEET: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Replicas in service at a time.
pub const REPLICAS: usize = 3;

/// The drain of a rolled replica: the delay outlasts HAProxy's two failed
/// checks (about 200 ms), so no new connection reaches it at its turns.
fn env(roll: Roll) -> Vec<(&'static str, &'static str)> {
    let mut env = vec![
        ("WSDRAIN_DRAIN_DELAY", "600ms"),
        ("WSDRAIN_CLOSE_WINDOW", "300ms"),
        ("WSDRAIN_CLOSE_TIMEOUT", "2s"),
        ("WSDRAIN_GRACE_PERIOD", "10s"),
        ("WSDRAIN_RETRY_AFTER_MIN", "300ms"),
        ("WSDRAIN_RETRY_AFTER_MAX", "600ms"),
    ];
    if roll == Roll::Notice {
        env.push(("WSDRAIN_NOTICE_LEAD", "500ms"));
    }
    env
}

/// A `feed --publisher` process: the ticks, into Redis.
struct Publisher(Child);

impl Drop for Publisher {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The fleet; stops every process when dropped.
pub struct Fleet {
    roll: Roll,
    /// Slots 0..REPLICAS serve first; the next REPLICAS take over.
    slots: Vec<SocketAddr>,
    replicas: Vec<Option<Server>>,
    pub lb: Haproxy,
    _publisher: Publisher,
    pub redis: RedisServer,
}

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// A serving replica of the fleet on `addr`.
fn replica(roll: Roll, redis: &str, addr: SocketAddr) -> Server {
    let listen = addr.to_string();
    let server = Server::start(
        "feed",
        &env(roll),
        &["--redis", redis, "--no-publish", "--listen", &listen],
    );
    assert_eq!(server.addr, addr);
    server
}

impl Fleet {
    pub async fn start(roll: Roll) -> Fleet {
        let redis = RedisServer::start();
        let url = redis.url();
        let rate = RATE.to_string();
        let mut child = Command::new(example("feed"))
            .args(["--redis", &url, "--publisher", "--rate", &rate])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        assert_eq!(first.trim(), "publishing");
        let publisher = Publisher(child);
        let slots: Vec<SocketAddr> = (0..2 * REPLICAS).map(|_| free_addr()).collect();
        let replicas = (0..2 * REPLICAS)
            .map(|slot| (slot < REPLICAS).then(|| replica(roll, &url, slots[slot])))
            .collect();
        let names: Vec<String> = (0..2 * REPLICAS).map(|i| format!("r{i}")).collect();
        let servers: Vec<(&str, SocketAddr)> = names
            .iter()
            .map(String::as_str)
            .zip(slots.iter().copied())
            .collect();
        let up: Vec<&str> = names[..REPLICAS].iter().map(String::as_str).collect();
        let lb = Haproxy::start_with(&servers, &up).await;
        Fleet {
            roll,
            slots,
            replicas,
            lb,
            _publisher: publisher,
            redis,
        }
    }

    /// The clients' URL: through the load balancer.
    pub fn url(&self) -> String {
        format!("ws://{}/feed", self.lb.addr)
    }

    /// Replaces replica `i` (of the first REPLICAS) by a new one: starts
    /// it, waits until HAProxy has it UP, then takes the old one out.
    pub async fn roll(&mut self, i: usize) {
        let (old, new) = (i, REPLICAS + i);
        self.replicas[new] = Some(replica(self.roll, &self.redis.url(), self.slots[new]));
        let name = format!("r{new}");
        self.lb
            .wait_for(&format!("{name} UP"), |s| {
                s.get(&name).is_some_and(|s| s.status == "UP")
            })
            .await;
        let mut server = self.replicas[old].take().unwrap();
        match self.roll {
            Roll::Graceful | Roll::Notice => {
                server.signal(Signal::SIGTERM);
                let (code, _) =
                    tokio::task::block_in_place(|| server.wait_exit(Duration::from_secs(10)));
                assert_eq!(code, Some(0), "replica {old} drained and exited");
            }
            Roll::Crash => {
                server.signal(Signal::SIGKILL);
                let _ = tokio::task::block_in_place(|| server.wait_exit(Duration::from_secs(5)));
            }
        }
    }
}
