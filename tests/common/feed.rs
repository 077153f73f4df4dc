//! What a client of the `feed` example saw of its `ticker` stream, checked
//! message by message: every payload is `{"n":N}` with `N` the tick number,
//! so a tick missing or seen twice shows whatever the ids say. And a TCP
//! relay that can die, as a proxy does.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use serde_json::Value;
use tokio::{net::TcpListener, task::AbortHandle};

/// Ticks per second of the feed: one every 20 ms.
pub const RATE: u64 = 50;

/// A short drain: no delay, closes spread over 300 ms, hints 500–800 ms.
pub const ENV: &[(&str, &str)] = &[
    ("WSDRAIN_DRAIN_DELAY", "0s"),
    ("WSDRAIN_CLOSE_WINDOW", "300ms"),
    ("WSDRAIN_CLOSE_TIMEOUT", "2s"),
    ("WSDRAIN_GRACE_PERIOD", "10s"),
    ("WSDRAIN_RETRY_AFTER_MIN", "500ms"),
    ("WSDRAIN_RETRY_AFTER_MAX", "800ms"),
];

/// Starts the `feed` example at [`RATE`] with `env` and `extra` arguments.
pub fn start_feed(env: &[(&str, &str)], extra: &[&str]) -> super::Server {
    let rate = RATE.to_string();
    let mut args = vec!["--rate", rate.as_str()];
    args.extend_from_slice(extra);
    super::Server::start("feed", env, &args)
}

/// One client's account of the ticker.
#[derive(Debug, Default)]
pub struct Ledger {
    last_seq: Option<u64>,
    last_n: Option<u64>,
    /// A resync came since the last message: the next may go anywhere.
    resynced: bool,
    /// Messages delivered.
    pub delivered: u64,
    /// Ticks skipped without a resync before them: a silent hole.
    pub missed: u64,
    /// Ticks delivered again (or out of order) without a resync before them.
    pub duplicated: u64,
    /// Ticks skipped across resyncs: lost, but the application was told.
    pub resynced_over: u64,
    /// Resync events.
    pub resyncs: u64,
    /// Resumed events.
    pub resumed: u64,
}

impl Ledger {
    /// A message of the ticker: its seq and payload.
    pub fn message(&mut self, seq: u64, payload: &str) {
        let n = tick(payload);
        if let Some(last) = self.last_seq.filter(|_| !self.resynced) {
            assert_eq!(seq, last + 1, "seq after {last}: {payload}");
        }
        match self.last_n {
            Some(last) if n <= last && !self.resynced => self.duplicated += 1,
            Some(last) if n > last + 1 => {
                if self.resynced {
                    self.resynced_over += n - last - 1;
                } else {
                    self.missed += n - last - 1;
                }
            }
            _ => {}
        }
        self.last_seq = Some(seq);
        self.last_n = Some(self.last_n.map_or(n, |l| l.max(n)));
        self.resynced = false;
        self.delivered += 1;
    }

    /// A resync of the ticker: messages after `after` follow.
    pub fn resync(&mut self, after: u64) {
        self.resyncs += 1;
        self.resynced = true;
        self.last_seq = Some(after);
    }

    /// The ticker resumed on a new connection.
    pub fn resumed(&mut self) {
        self.resumed += 1;
    }

    /// The last tick delivered.
    pub fn last_tick(&self) -> Option<u64> {
        self.last_n
    }
}

/// The tick the feed publishes now at `rate` ticks per second (the
/// example's schedule: tick `N` at `N / rate` seconds since the Unix epoch).
pub fn tick_now(rate: u64) -> u64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    u64::try_from(since.as_nanos() / (1_000_000_000 / u128::from(rate))).unwrap()
}

/// Waits (bounded) until the feed at `rate` has published `ticks` more
/// ticks after `after`: an outage long enough to have to be replayed.
pub async fn ticks_pass(rate: u64, after: u64, ticks: u64) {
    let limit = std::time::Instant::now() + Duration::from_secs(10);
    while tick_now(rate) < after + ticks {
        assert!(std::time::Instant::now() < limit, "the clock stands still");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `N` of `{"n":N}`.
pub fn tick(payload: &str) -> u64 {
    let v: Value =
        serde_json::from_str(payload).unwrap_or_else(|e| panic!("{payload:?} is not JSON: {e}"));
    v["n"]
        .as_u64()
        .unwrap_or_else(|| panic!("no tick in {payload:?}"))
}

/// A TCP relay to one backend that can die: `cut` drops every connection
/// it relays and stops listening, `restore` listens again on its address.
pub struct Relay {
    pub addr: SocketAddr,
    backend: SocketAddr,
    tasks: Arc<Mutex<Vec<AbortHandle>>>,
}

impl Relay {
    pub async fn start(backend: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let relay = Relay {
            addr: listener.local_addr().unwrap(),
            backend,
            tasks: Arc::default(),
        };
        relay.serve(listener);
        relay
    }

    fn serve(&self, listener: TcpListener) {
        let (backend, tasks) = (self.backend, self.tasks.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let task = tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(backend).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                tasks.lock().unwrap().push(task.abort_handle());
            }
        });
        self.tasks.lock().unwrap().push(accept.abort_handle());
    }

    /// Drops every relayed connection (both sides see the TCP end, no
    /// WebSocket Close) and stops listening.
    pub fn cut(&self) {
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    /// Listens again on the same address.
    pub async fn restore(&self) {
        // The aborted accept task releases the port when it is dropped.
        for _ in 0..500 {
            if let Ok(listener) = TcpListener::bind(self.addr).await {
                return self.serve(listener);
            }
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("cannot listen on {} again", self.addr);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.cut();
    }
}
