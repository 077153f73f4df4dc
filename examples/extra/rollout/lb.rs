//! The load balancer in front of the replicas: HAProxy, or the endpoints
//! stand-in when HAProxy is not installed.
//!
//! HAProxy gets a generated configuration with pre-declared server slots, all
//! in maintenance at start (`disabled`). Adding a replica points a free slot
//! at its port and makes it `ready` through the runtime API (the stats
//! socket); HAProxy then health-checks `GET /readyz` every `inter` and marks
//! the slot DOWN after two failed checks, which is how it learns that a
//! draining replica no longer wants new sessions. A slot whose replica has
//! exited is put back into maintenance. Pre-declared slots, rather than
//! 2.6's `add server`, because they behave the same on every 2.x release and
//! inherit `default-server` (dynamic servers in 2.6 do not).
//!
//! The stand-in is a kube-proxy-like TCP forwarder: each new connection goes
//! to a random replica whose `/readyz` answered 200 at the last poll.

use std::{
    collections::HashMap,
    io,
    net::SocketAddr,
    path::PathBuf,
    process::Stdio,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream, UnixStream},
    process::{Child, Command},
};

/// Which load balancer a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LbKind {
    /// HAProxy found on `PATH`.
    Haproxy,
    /// The endpoints stand-in (no HAProxy).
    None,
}

impl LbKind {
    /// The name used in flags and reports.
    pub(crate) fn name(self) -> &'static str {
        match self {
            LbKind::Haproxy => "haproxy",
            LbKind::None => "none",
        }
    }
}

/// HAProxy's global `maxconn`. Each proxied session holds two descriptors
/// (client and server side), so 9,000 fits the 20,000 open-files limit of one
/// process with room for listeners, checks and the runtime socket.
pub(crate) const HAPROXY_MAXCONN: usize = 9_000;

/// A running load balancer.
pub(crate) enum Balancer {
    /// HAProxy.
    Haproxy(Box<Haproxy>),
    /// The endpoints stand-in.
    Endpoints(Endpoints),
}

impl Balancer {
    /// Starts the chosen balancer with room for `slots` replicas over the run.
    pub(crate) async fn start(
        kind: LbKind,
        slots: usize,
        check_inter: Duration,
    ) -> io::Result<Balancer> {
        Ok(match kind {
            LbKind::Haproxy => {
                Balancer::Haproxy(Box::new(Haproxy::start(slots, check_inter).await?))
            }
            LbKind::None => Balancer::Endpoints(Endpoints::start(check_inter).await?),
        })
    }

    /// Where clients connect.
    pub(crate) fn addr(&self) -> SocketAddr {
        match self {
            Balancer::Haproxy(h) => h.addr,
            Balancer::Endpoints(e) => e.addr,
        }
    }

    /// Adds replica `id` listening on `addr`.
    pub(crate) async fn add(&mut self, id: usize, addr: SocketAddr) -> io::Result<()> {
        match self {
            Balancer::Haproxy(h) => h.add(id, addr).await,
            Balancer::Endpoints(e) => {
                e.add(id, addr);
                Ok(())
            }
        }
    }

    /// Whether the balancer has seen replica `id` pass a readiness check.
    pub(crate) async fn is_ready(&self, id: usize) -> io::Result<bool> {
        match self {
            Balancer::Haproxy(h) => h.is_ready(id).await,
            Balancer::Endpoints(e) => Ok(e.is_ready(id)),
        }
    }

    /// Forgets replica `id` (it has exited).
    pub(crate) async fn remove(&mut self, id: usize) -> io::Result<()> {
        match self {
            Balancer::Haproxy(h) => h.remove(id).await,
            Balancer::Endpoints(e) => {
                e.remove(id);
                Ok(())
            }
        }
    }

    /// Live sessions per replica id, as the balancer counts them.
    pub(crate) async fn sessions(&self) -> io::Result<Vec<(usize, usize)>> {
        match self {
            Balancer::Haproxy(h) => h.sessions().await,
            Balancer::Endpoints(e) => Ok(e.sessions()),
        }
    }

    /// Stops the balancer.
    pub(crate) async fn stop(self) {
        match self {
            Balancer::Haproxy(mut h) => {
                let _ = h.child.kill().await;
            }
            Balancer::Endpoints(e) => e.task.abort(),
        }
    }
}

/// HAProxy, run in the foreground with a generated configuration.
pub(crate) struct Haproxy {
    /// The frontend.
    pub(crate) addr: SocketAddr,
    child: Child,
    socket: PathBuf,
    /// Slot `i` (server `slot{i+1}`) holds this replica id, if any.
    slots: Vec<Option<usize>>,
    _dir: tempfile::TempDir,
}

const BACKEND: &str = "replicas";

/// The HAProxy configuration of a run: `balance leastconn`, `GET /readyz`
/// checks every `inter` with `fall 2 rise 1`, a long `timeout tunnel` for the
/// upgraded connections, `slots` servers in maintenance until used; and never
/// `on-marked-down shutdown-sessions`, which would cut every live WebSocket of
/// a draining server (1006) the moment its readiness turns 503.
pub(crate) fn haproxy_config(
    frontend: SocketAddr,
    socket: &str,
    slots: usize,
    inter: Duration,
) -> String {
    let inter = inter.as_millis().max(1);
    let mut cfg = format!(
        "\
global
    maxconn {HAPROXY_MAXCONN}
    stats socket {socket} mode 600 level admin

defaults
    mode http
    maxconn {HAPROXY_MAXCONN}
    timeout connect      5s
    timeout client       30s
    timeout server       30s
    timeout http-request 10s
    timeout tunnel       1h
    timeout client-fin   30s
    timeout server-fin   30s
    retries 3
    option redispatch 1

frontend ws_in
    bind {frontend}
    default_backend {BACKEND}

backend {BACKEND}
    balance leastconn
    option httpchk
    http-check send meth GET uri /readyz ver HTTP/1.1 hdr Host localhost
    http-check expect status 200
    default-server check inter {inter}ms fall 2 rise 1 disabled
"
    );
    for i in 1..=slots {
        cfg.push_str(&format!("    server slot{i} 127.0.0.1:9\n"));
    }
    cfg
}

impl Haproxy {
    async fn start(slots: usize, inter: Duration) -> io::Result<Haproxy> {
        let dir = tempfile::Builder::new()
            .prefix("rollout-haproxy")
            .tempdir()?;
        let socket = dir.path().join("admin.sock");
        let frontend = free_port()?;
        let cfg = haproxy_config(frontend, &socket.to_string_lossy(), slots, inter);
        let cfg_path = dir.path().join("haproxy.cfg");
        std::fs::write(&cfg_path, cfg)?;
        let log = std::fs::File::create(dir.path().join("haproxy.log"))?;
        let child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&cfg_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("cannot start haproxy: {e}")))?;
        let mut h = Haproxy {
            addr: frontend,
            child,
            socket,
            slots: vec![None; slots],
            _dir: dir,
        };
        let start = Instant::now();
        while h.command("show info").await.is_err() {
            if let Some(status) = h.child.try_wait()? {
                let log =
                    std::fs::read_to_string(h._dir.path().join("haproxy.log")).unwrap_or_default();
                return Err(io::Error::other(format!(
                    "haproxy exited ({status}): {log}"
                )));
            }
            if start.elapsed() > Duration::from_secs(10) {
                return Err(io::Error::other(
                    "haproxy's runtime socket did not answer in 10 s",
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(h)
    }

    /// One runtime API command.
    async fn command(&self, line: &str) -> io::Result<String> {
        let mut s = UnixStream::connect(&self.socket).await?;
        s.write_all(format!("{line}\n").as_bytes()).await?;
        let mut out = String::new();
        tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut out))
            .await
            .map_err(|_| io::Error::other(format!("haproxy: no answer to {line:?}")))??;
        Ok(out)
    }

    fn slot_of(&self, id: usize) -> Option<usize> {
        self.slots.iter().position(|s| *s == Some(id))
    }

    async fn add(&mut self, id: usize, addr: SocketAddr) -> io::Result<()> {
        let i = self
            .slots
            .iter()
            .position(Option::is_none)
            .ok_or_else(|| io::Error::other("haproxy: no free server slot"))?;
        self.slots[i] = Some(id);
        let server = format!("{BACKEND}/slot{}", i + 1);
        self.command(&format!(
            "set server {server} addr {} port {}",
            addr.ip(),
            addr.port()
        ))
        .await?;
        // The replica is listening already; HAProxy counts it up until its
        // first check says otherwise, and `wait_ready` waits for that check.
        self.command(&format!("set server {server} state ready"))
            .await?;
        Ok(())
    }

    async fn remove(&mut self, id: usize) -> io::Result<()> {
        if let Some(i) = self.slot_of(id) {
            self.command(&format!("set server {BACKEND}/slot{} state maint", i + 1))
                .await?;
            self.slots[i] = None;
        }
        Ok(())
    }

    /// `(svname, scur, status, check_status)` of every slot.
    async fn stat(&self) -> io::Result<Vec<(String, usize, String, String)>> {
        let out = self.command("show stat").await?;
        let mut lines = out.lines();
        let header: Vec<&str> = lines
            .next()
            .unwrap_or_default()
            .trim_start_matches("# ")
            .split(',')
            .collect();
        let col = |name: &str| header.iter().position(|h| *h == name);
        let (Some(px), Some(sv), Some(scur), Some(status), Some(check)) = (
            col("pxname"),
            col("svname"),
            col("scur"),
            col("status"),
            col("check_status"),
        ) else {
            return Err(io::Error::other(format!(
                "haproxy: unexpected stat header {header:?}"
            )));
        };
        Ok(lines
            .map(|l| l.split(',').collect::<Vec<_>>())
            .filter(|f| {
                f.get(px) == Some(&BACKEND) && f.get(sv).is_some_and(|s| s.starts_with("slot"))
            })
            .map(|f| {
                let get = |i: usize| f.get(i).copied().unwrap_or_default().to_string();
                (
                    get(sv),
                    get(scur).parse().unwrap_or(0),
                    get(status),
                    get(check),
                )
            })
            .collect())
    }

    async fn is_ready(&self, id: usize) -> io::Result<bool> {
        let Some(i) = self.slot_of(id) else {
            return Ok(false);
        };
        let name = format!("slot{}", i + 1);
        Ok(self.stat().await?.iter().any(|(sv, _, status, check)| {
            *sv == name && status == "UP" && check.starts_with("L7OK")
        }))
    }

    async fn sessions(&self) -> io::Result<Vec<(usize, usize)>> {
        let stat = self.stat().await?;
        Ok(self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, id)| {
                let id = (*id)?;
                let name = format!("slot{}", i + 1);
                let scur = stat.iter().find(|s| s.0 == name).map_or(0, |s| s.1);
                Some((id, scur))
            })
            .collect())
    }
}

fn free_port() -> io::Result<SocketAddr> {
    // Bound and released at once; HAProxy binds it right after.
    std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()
}

struct Endpoint {
    id: usize,
    addr: SocketAddr,
    ready: bool,
    failures: u32,
    live: Arc<AtomicUsize>,
}

/// The stand-in for a Service without HAProxy: the ready endpoints, polled on
/// `/readyz` like a readiness probe, and a forwarder picking one at random
/// per new connection, like kube-proxy.
pub(crate) struct Endpoints {
    /// Where clients connect.
    pub(crate) addr: SocketAddr,
    table: Arc<Mutex<Vec<Endpoint>>>,
    task: tokio::task::JoinHandle<()>,
}

fn lock(t: &Mutex<Vec<Endpoint>>) -> std::sync::MutexGuard<'_, Vec<Endpoint>> {
    t.lock().unwrap_or_else(|p| p.into_inner())
}

impl Endpoints {
    async fn start(probe_every: Duration) -> io::Result<Endpoints> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let table: Arc<Mutex<Vec<Endpoint>>> = Arc::default();
        let t = table.clone();
        let accept = async move {
            while let Ok((client, _)) = listener.accept().await {
                let pick = {
                    let table = lock(&t);
                    let ready: Vec<&Endpoint> = table.iter().filter(|e| e.ready).collect();
                    (!ready.is_empty())
                        .then(|| ready[fastrand::usize(..ready.len())])
                        .map(|e| (e.addr, e.live.clone()))
                };
                // No ready endpoint: the connection is refused (closed at once).
                let Some((backend, live)) = pick else {
                    continue;
                };
                tokio::spawn(forward(client, backend, live));
            }
        };
        let t = table.clone();
        let probe = async move {
            let mut tick = tokio::time::interval(probe_every);
            loop {
                tick.tick().await;
                let targets: Vec<(usize, SocketAddr)> =
                    lock(&t).iter().map(|e| (e.id, e.addr)).collect();
                let results = futures_util::future::join_all(
                    targets
                        .iter()
                        .map(|(id, a)| async move { (*id, readyz(*a, probe_every).await) }),
                )
                .await;
                let mut table = lock(&t);
                for (id, ok) in results {
                    if let Some(e) = table.iter_mut().find(|e| e.id == id) {
                        if ok {
                            e.ready = true;
                            e.failures = 0;
                        } else {
                            e.failures += 1;
                            // Two failures in a row, like HAProxy's `fall 2`.
                            if e.failures >= 2 {
                                e.ready = false;
                            }
                        }
                    }
                }
            }
        };
        let task = tokio::spawn(async move {
            tokio::join!(accept, probe);
        });
        Ok(Endpoints { addr, table, task })
    }

    fn add(&self, id: usize, addr: SocketAddr) {
        lock(&self.table).push(Endpoint {
            id,
            addr,
            ready: false,
            failures: 0,
            live: Arc::default(),
        });
    }

    fn remove(&self, id: usize) {
        lock(&self.table).retain(|e| e.id != id);
    }

    fn is_ready(&self, id: usize) -> bool {
        lock(&self.table).iter().any(|e| e.id == id && e.ready)
    }

    fn sessions(&self) -> Vec<(usize, usize)> {
        lock(&self.table)
            .iter()
            .map(|e| (e.id, e.live.load(Ordering::Relaxed)))
            .collect()
    }
}

async fn forward(mut client: TcpStream, backend: SocketAddr, live: Arc<AtomicUsize>) {
    let Ok(mut server) = TcpStream::connect(backend).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    live.fetch_add(1, Ordering::Relaxed);
    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
    live.fetch_sub(1, Ordering::Relaxed);
}

/// `GET /readyz` answered 200 within `limit`.
async fn readyz(addr: SocketAddr, limit: Duration) -> bool {
    let probe = async {
        let mut s = TcpStream::connect(addr).await.ok()?;
        s.write_all(b"GET /readyz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut buf = [0u8; 12];
        s.read_exact(&mut buf).await.ok()?;
        Some(buf.starts_with(b"HTTP/1.1 200"))
    };
    matches!(tokio::time::timeout(limit, probe).await, Ok(Some(true)))
}

/// Sessions per replica id over time, sampled every 100 ms.
#[derive(Debug, Default, Clone)]
pub(crate) struct SessionSamples {
    /// `(seconds since the rollout began, [(replica id, live sessions)])`.
    pub(crate) samples: Vec<(f64, Vec<(usize, usize)>)>,
}

impl SessionSamples {
    /// The peak of live sessions on any one replica.
    pub(crate) fn peak(&self) -> usize {
        self.samples
            .iter()
            .flat_map(|(_, s)| s.iter().map(|(_, n)| *n))
            .max()
            .unwrap_or(0)
    }

    /// Every replica id seen.
    pub(crate) fn replicas(&self) -> Vec<usize> {
        let mut ids: Vec<usize> = self
            .samples
            .iter()
            .flat_map(|(_, s)| s.iter().map(|(id, _)| *id))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        ids.sort_unstable();
        ids
    }

    /// `(t, sessions)` of one replica.
    pub(crate) fn series(&self, id: usize) -> Vec<(f64, usize)> {
        self.samples
            .iter()
            .map(|(t, s)| {
                let n: HashMap<usize, usize> = s.iter().copied().collect();
                (*t, n.get(&id).copied().unwrap_or(0))
            })
            .collect()
    }
}
