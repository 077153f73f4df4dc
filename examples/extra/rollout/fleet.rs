//! The replicas: `echo` (or `sse`) processes on loopback ports, started and stopped the
//! way the kubelet starts and stops a pod's container.

use std::{
    io,
    net::SocketAddr,
    path::PathBuf,
    process::Stdio,
    time::{Duration, Instant},
};

use nix::{sys::signal::Signal, unistd::Pid};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

/// How to start one replica: the `echo` binary, its mode and its policy.
#[derive(Debug, Clone)]
pub(crate) struct PodSpec {
    /// The `echo` example binary.
    pub(crate) binary: PathBuf,
    /// `echo --plain`: axum's own graceful shutdown, no wsdrain (the baseline).
    pub(crate) plain: bool,
    /// `WSDRAIN_*` variables: the drain policy of every replica.
    pub(crate) env: Vec<(String, String)>,
    /// Per-session read buffer (`--read-buffer`), to keep 1,000s of sessions small.
    pub(crate) read_buffer: Option<usize>,
    /// More flags for the binary (the sse example's `--interval`).
    pub(crate) args: Vec<String>,
}

/// A running replica.
#[derive(Debug)]
pub(crate) struct Replica {
    /// 1, 2, 3, ... in start order; never reused.
    pub(crate) id: usize,
    /// Where it listens (127.0.0.1, a port the kernel chose).
    pub(crate) addr: SocketAddr,
    child: Child,
}

/// How a replica ended after SIGTERM.
#[derive(Debug, Clone)]
pub(crate) struct Termination {
    /// The replica.
    pub(crate) id: usize,
    /// It outlived the grace period and was killed with SIGKILL.
    pub(crate) killed: bool,
    /// SIGTERM to exit.
    pub(crate) took: Duration,
    /// Its exit code (None when killed by a signal).
    pub(crate) code: Option<i32>,
}

impl PodSpec {
    /// Starts replica `id` on `127.0.0.1:0` and waits (at most 30 s) for its
    /// `listening on ADDR` line.
    pub(crate) async fn start(&self, id: usize) -> io::Result<Replica> {
        let mut cmd = Command::new(&self.binary);
        cmd.args(["--listen", "127.0.0.1:0"]);
        if self.plain {
            cmd.arg("--plain");
        }
        if let Some(n) = self.read_buffer {
            cmd.args(["--read-buffer", &n.to_string()]);
        }
        cmd.args(&self.args);
        // The policy comes from us alone, not from the caller's environment.
        cmd.env_remove("KUBERNETES_SERVICE_HOST");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "warn");
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot start {}: {e}", self.binary.display()),
            )
        })?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| io::Error::other("no stdout"))?;
        let mut lines = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .map_err(|_| io::Error::other(format!("replica {id}: no `listening on` within 30 s")))??
            .ok_or_else(|| io::Error::other(format!("replica {id} exited at start")))?;
        let addr = first
            .strip_prefix("listening on ")
            .and_then(|a| a.trim().parse().ok())
            .ok_or_else(|| io::Error::other(format!("replica {id}: unexpected line {first:?}")))?;
        // Keep reading so the replica never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Replica { id, addr, child })
    }
}

impl Replica {
    /// What the kubelet does: SIGTERM, wait up to `grace`, then SIGKILL.
    pub(crate) async fn terminate(mut self, grace: Duration) -> Termination {
        let start = Instant::now();
        if let Some(pid) = self.child.id() {
            // The process may be gone already; then wait() below returns at once.
            let _ = nix::sys::signal::kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
        }
        let (killed, code) = match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(status) => (false, status.ok().and_then(|s| s.code())),
            Err(_) => {
                let _ = self.child.kill().await;
                (true, None)
            }
        };
        Termination {
            id: self.id,
            killed,
            took: start.elapsed(),
            code,
        }
    }

    /// Ends the replica at once (the end of a run), without a drain.
    pub(crate) async fn kill(mut self) {
        let _ = self.child.kill().await;
    }
}
