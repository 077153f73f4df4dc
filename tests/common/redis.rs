//! A real `redis-server` for a test: started on a free loopback port, without
//! persistence, stopped (and its files removed) when dropped.
#![allow(dead_code, clippy::unwrap_used, unreachable_pub)]

use std::{
    io::{BufRead, BufReader},
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

/// A running `redis-server`.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts one on a free port, empty, without persistence
    /// (`--save '' --appendonly no`), as the examples' docs say.
    pub fn start() -> RedisServer {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        let child = spawn(port, dir.path());
        RedisServer {
            child: Some(child),
            port,
            dir,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Stops it at once (no save): what an OOM kill or a lost node does.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port; with `snapshot`, from the RDB
    /// file a `SAVE` wrote, else empty.
    pub fn restart(&mut self, snapshot: bool) {
        self.stop();
        if !snapshot {
            let _ = std::fs::remove_file(self.dir.path().join("dump.rdb"));
        }
        self.child = Some(spawn(self.port, self.dir.path()));
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// A connection for the test's own commands.
    pub async fn connection(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    /// `calls` of each command in `INFO commandstats`, by lowercase name.
    pub async fn command_calls(&self) -> std::collections::HashMap<String, u64> {
        let mut conn = self.connection().await;
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut conn)
            .await
            .unwrap();
        info.lines()
            .filter_map(|l| {
                let (name, rest) = l.strip_prefix("cmdstat_")?.split_once(':')?;
                let calls = rest
                    .strip_prefix("calls=")?
                    .split(',')
                    .next()?
                    .parse()
                    .ok()?;
                Some((name.to_owned(), calls))
            })
            .collect()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn redis_server() -> PathBuf {
    PathBuf::from(std::env::var_os("REDIS_SERVER").unwrap_or_else(|| "redis-server".into()))
}

/// Spawns `redis-server` and waits for "Ready to accept connections".
fn spawn(port: u16, dir: &Path) -> Child {
    let mut child = Command::new(redis_server())
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .stdin(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start redis-server (run scripts/setup): {e}"));
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.contains("Ready to accept connections")
                && let Some(tx) = tx.take()
            {
                let _ = tx.send(());
            }
        }
    });
    if rx.recv_timeout(Duration::from_secs(20)).is_err() {
        let _ = child.kill();
        panic!("redis-server on port {port} did not become ready");
    }
    child
}
