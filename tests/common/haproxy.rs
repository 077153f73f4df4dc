//! A real HAProxy in front of replicas, with health checks on `/readyz`:
//! the load balancer of the fleet tests.

use std::{
    collections::BTreeMap,
    io::Write,
    net::SocketAddr,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// HAProxy in front of the given replicas, `GET /readyz` checks every 100 ms,
/// `fall 2 rise 1`; a connection a replica refuses goes to another one
/// (`option redispatch`); killed on drop.
pub struct Haproxy {
    child: Child,
    pub addr: SocketAddr,
    socket: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Haproxy {
    /// In front of `replicas` (name, address), once all of them are UP.
    pub async fn start(replicas: &[(&str, SocketAddr)]) -> Haproxy {
        let names: Vec<&str> = replicas.iter().map(|(n, _)| *n).collect();
        Haproxy::start_with(replicas, &names).await
    }

    /// In front of `replicas`, once those named in `up` are UP and the
    /// others DOWN (slots for replicas started later).
    pub async fn start_with(replicas: &[(&str, SocketAddr)], up: &[&str]) -> Haproxy {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("admin.sock");
        let addr = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let mut cfg = format!(
            "global
    stats socket {} mode 600 level admin

defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    timeout tunnel 1h
    retries 2
    option redispatch

frontend ws_in
    bind {addr}
    default_backend replicas

backend replicas
    balance leastconn
    option httpchk
    http-check send meth GET uri /readyz ver HTTP/1.1 hdr Host localhost
    http-check expect status 200
    default-server check inter 100ms fall 2 rise 1
",
            socket.display()
        );
        for (name, at) in replicas {
            cfg.push_str(&format!("    server {name} {at}\n"));
        }
        let path = dir.path().join("haproxy.cfg");
        std::fs::File::create(&path)
            .unwrap()
            .write_all(cfg.as_bytes())
            .unwrap();
        let child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("`haproxy` on PATH (Debian package haproxy)");
        let h = Haproxy {
            child,
            addr,
            socket,
            _dir: dir,
        };
        h.wait_for("the replicas UP, the empty slots DOWN", |stat| {
            replicas.iter().all(|(n, _)| {
                let want = if up.contains(n) { "UP" } else { "DOWN" };
                stat.get(*n).is_some_and(|s| s.status == want)
            })
        })
        .await;
        h
    }

    /// `show stat` of the backend's servers: name → (status, current sessions).
    pub async fn stat(&self) -> Option<BTreeMap<String, Stat>> {
        let mut s = tokio::net::UnixStream::connect(&self.socket).await.ok()?;
        s.write_all(b"show stat\n").await.ok()?;
        let mut out = String::new();
        tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut out))
            .await
            .ok()?
            .ok()?;
        let mut lines = out.lines();
        let header: Vec<&str> = lines.next()?.trim_start_matches("# ").split(',').collect();
        let col = |name: &str| header.iter().position(|h| *h == name);
        let (px, sv, scur, status) = (col("pxname")?, col("svname")?, col("scur")?, col("status")?);
        let mut map = BTreeMap::new();
        for line in lines {
            let f: Vec<&str> = line.split(',').collect();
            if f.len() > status && f[px] == "replicas" && f[sv] != "BACKEND" {
                map.insert(
                    f[sv].to_owned(),
                    Stat {
                        status: f[status].to_owned(),
                        sessions: f[scur].parse().unwrap_or(0),
                    },
                );
            }
        }
        Some(map)
    }

    pub async fn wait_for(&self, what: &str, cond: impl Fn(&BTreeMap<String, Stat>) -> bool) {
        let start = Instant::now();
        loop {
            if let Some(stat) = self.stat().await {
                if cond(&stat) {
                    return;
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "HAProxy: not {what} within 10 s: {:?}",
                self.stat().await
            );
            // Polling HAProxy's own state: it has no push interface.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A server's line in `show stat`.
#[derive(Debug)]
pub struct Stat {
    /// `UP`, `DOWN`, ...
    pub status: String,
    /// Current sessions.
    pub sessions: u64,
}
