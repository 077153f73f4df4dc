//! [`Link`]: the connection appends and reads share, kept up by a task of
//! its own, failing fast while Redis is away.
//!
//! redis-rs's `MultiplexedConnection` pipelines: concurrent commands share
//! one connection and go out together, so a burst of appends costs one
//! round trip each at most, and fewer when they overlap. What it does not do
//! is reconnect; redis-rs's `ConnectionManager` does, but its callers wait
//! for the reconnection (with retries), and it cannot tell that the server
//! it reached is another one. Here a supervisor task connects, learns the
//! server's `run_id` and loads the script, checks an idle connection with a
//! `PING`, and reconnects with backoff; while it is down, calls fail at once,
//! so live delivery never waits for the store.

use std::{
    convert::Infallible,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use redis::{
    AsyncConnectionConfig, Client, Cmd, PushInfo, PushKind, Value, aio::MultiplexedConnection,
};
use tokio::sync::{Notify, watch};

use crate::{Failure, config::Config, metrics, script};

/// A live connection and what was learned when it opened.
#[derive(Clone)]
pub(crate) struct Conn {
    conn: MultiplexedConnection,
    /// The server's `run_id`: a new one after a restart or a failover.
    pub(crate) run: Arc<str>,
    /// The script's SHA1, as the server computed it.
    sha: Arc<str>,
    generation: u64,
}

#[derive(Clone)]
enum Status {
    /// Connecting for the first time, or once more right after a loss:
    /// callers wait (within their timeout).
    Connecting,
    Up(Conn),
    /// Between attempts: callers fail at once.
    Down,
}

/// The command connection and its supervisor.
pub(crate) struct Link {
    status: watch::Receiver<Status>,
    shared: Arc<Signals>,
    timeout: Duration,
    _supervisor: AbortOnDrop,
}

struct Signals {
    /// The highest generation a caller saw fail.
    broken: AtomicU64,
    wake: Notify,
}

impl Signals {
    /// The connection of `generation` is no use any more.
    fn broke(&self, generation: u64) {
        self.broken.fetch_max(generation, Ordering::AcqRel);
        self.wake.notify_one();
    }
}

/// Ends a task with its owner.
pub(crate) struct AbortOnDrop(pub(crate) tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Opens a multiplexed connection with no response timeout of its own (the
/// callers bound each command) and names it for `CLIENT LIST`; `lost` runs
/// when the server closes it (RESP3's disconnection push), even while idle.
pub(crate) async fn open(
    client: &Client,
    config: &Config,
    name: &str,
    lost: impl Fn() + Send + Sync + 'static,
) -> Result<MultiplexedConnection, Failure> {
    let options = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(config.connect_timeout))
        .set_response_timeout(None)
        .set_push_sender(move |push: PushInfo| {
            if push.kind == PushKind::Disconnection {
                lost();
            }
            Ok::<(), Infallible>(())
        });
    let connect = client.get_multiplexed_async_connection_with_config(&options);
    let mut conn = tokio::time::timeout(config.connect_timeout, connect)
        .await
        .map_err(|_| Failure::Timeout)??;
    let setname = redis::cmd("CLIENT").arg("SETNAME").arg(name).clone();
    call(&mut conn, &setname, config.command_timeout).await?;
    Ok(conn)
}

/// One command, bounded by `timeout`.
pub(crate) async fn call(
    conn: &mut MultiplexedConnection,
    cmd: &Cmd,
    timeout: Duration,
) -> Result<Value, Failure> {
    match tokio::time::timeout(timeout, conn.send_packed_command(cmd)).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(Failure::Redis(e)),
        Err(_) => Err(Failure::Timeout),
    }
}

impl Link {
    /// Starts the supervisor (on the current Tokio runtime).
    pub(crate) fn start(client: Client, config: Arc<Config>) -> Link {
        let (tx, rx) = watch::channel(Status::Connecting);
        let shared = Arc::new(Signals {
            broken: AtomicU64::new(0),
            wake: Notify::new(),
        });
        let task = tokio::spawn(supervise(client, config.clone(), tx, shared.clone()));
        Link {
            status: rx,
            shared,
            timeout: config.command_timeout,
            _supervisor: AbortOnDrop(task),
        }
    }

    /// True while connected.
    pub(crate) fn is_up(&self) -> bool {
        matches!(*self.status.borrow(), Status::Up(_))
    }

    /// Waits until connected, at most `limit`; true if it is.
    pub(crate) async fn wait_up(&self, limit: Duration) -> bool {
        let mut status = self.status.clone();
        let up = status.wait_for(|s| matches!(s, Status::Up(_)));
        matches!(tokio::time::timeout(limit, up).await, Ok(Ok(_)))
    }

    /// The generation of the connection up now, if one is.
    pub(crate) fn generation(&self) -> Option<u64> {
        match &*self.status.borrow() {
            Status::Up(conn) => Some(conn.generation),
            _ => None,
        }
    }

    /// Waits until a connection newer than `generation` is up.
    pub(crate) async fn up_after(&self, generation: Option<u64>) {
        let mut status = self.status.clone();
        let newer = |s: &Status| matches!(s, Status::Up(c) if Some(c.generation) > generation);
        if status.wait_for(newer).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// The connection, waiting (within the command timeout) while it is
    /// being made; an error at once while Redis is away.
    async fn conn(&self) -> Result<Conn, Failure> {
        let mut status = self.status.clone();
        let settled = status.wait_for(|s| !matches!(s, Status::Connecting));
        let status = match tokio::time::timeout(self.timeout, settled).await {
            Ok(Ok(status)) => status.clone(),
            Ok(Err(_)) => return Err(Failure::Down),
            Err(_) => return Err(Failure::Timeout),
        };
        match status {
            Status::Up(conn) => Ok(conn),
            _ => Err(Failure::Down),
        }
    }

    /// Runs the script with `keys` and `args` (after the server's `run_id`).
    pub(crate) async fn script(&self, keys: [&str; 2], args: &[&[u8]]) -> Result<Value, Failure> {
        let mut conn = self.conn().await?;
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(&*conn.sha).arg(2).arg(keys[0]).arg(keys[1]);
        cmd.arg(args[0]).arg(&*conn.run);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        match self.send(&mut conn, &cmd).await {
            // The server forgot the script (SCRIPT FLUSH): send it whole,
            // which also loads it again.
            Err(Failure::Redis(e)) if e.code() == Some("NOSCRIPT") => {
                let mut eval = redis::cmd("EVAL");
                eval.arg(script::SOURCE).arg(2).arg(keys[0]).arg(keys[1]);
                eval.arg(args[0]).arg(&*conn.run);
                for a in &args[1..] {
                    eval.arg(*a);
                }
                self.send(&mut conn, &eval).await
            }
            other => other,
        }
    }

    /// Any other command (`CLIENT UNBLOCK`).
    pub(crate) async fn command(&self, cmd: &Cmd) -> Result<Value, Failure> {
        let mut conn = self.conn().await?;
        self.send(&mut conn, cmd).await
    }

    async fn send(&self, conn: &mut Conn, cmd: &Cmd) -> Result<Value, Failure> {
        let result = call(&mut conn.conn, cmd, self.timeout).await;
        if result.is_err() {
            metrics::error("command");
        }
        if let Err(e) = &result
            && e.breaks_connection()
        {
            self.shared.broke(conn.generation);
        }
        result
    }
}

/// Connects, keeps the connection checked, reconnects with backoff.
async fn supervise(
    client: Client,
    config: Arc<Config>,
    status: watch::Sender<Status>,
    signals: Arc<Signals>,
) {
    let mut generation = 0;
    let mut backoff = config.reconnect_min;
    loop {
        generation += 1;
        match connect(&client, &config, generation, &signals).await {
            Ok(conn) => {
                tracing::info!(target: "wsdrain::redis", run_id = &*conn.run, "redis log connected");
                metrics::connected("commands", true);
                let mut probe = conn.conn.clone();
                status.send_replace(Status::Up(conn));
                backoff = config.reconnect_min;
                watch_connection(&mut probe, generation, &config, &signals).await;
                metrics::connected("commands", false);
                tracing::warn!(target: "wsdrain::redis", "redis log connection lost; reconnecting");
                // One attempt at once (callers wait for it: a restart is
                // usually over by then), then backoff.
                status.send_replace(Status::Connecting);
            }
            Err(e) => {
                metrics::error("connect");
                if matches!(*status.borrow(), Status::Connecting) {
                    tracing::warn!(target: "wsdrain::redis", error = %e, "redis log cannot connect; retrying");
                }
                status.send_replace(Status::Down);
                tokio::time::sleep(jitter(backoff)).await;
                backoff = (backoff * 2).min(config.reconnect_max);
            }
        }
    }
}

async fn connect(
    client: &Client,
    config: &Config,
    generation: u64,
    signals: &Arc<Signals>,
) -> Result<Conn, Failure> {
    let signals = signals.clone();
    let lost = move || signals.broke(generation);
    let mut conn = open(client, config, "wsdrain-log", lost).await?;
    let info = redis::cmd("INFO").arg("server").clone();
    let info = call(&mut conn, &info, config.command_timeout).await?;
    let run = run_id(&info).ok_or(Failure::Reply(script::BadReply("INFO server")))?;
    let load = redis::cmd("SCRIPT").arg("LOAD").arg(script::SOURCE).clone();
    let sha = match call(&mut conn, &load, config.command_timeout).await? {
        Value::BulkString(b) => String::from_utf8(b).ok(),
        Value::SimpleString(s) => Some(s),
        _ => None,
    }
    .ok_or(Failure::Reply(script::BadReply("SCRIPT LOAD")))?;
    Ok(Conn {
        conn,
        run: run.into(),
        sha: sha.into(),
        generation,
    })
}

/// Returns when the connection of `generation` failed a caller, or an idle
/// check (`PING`) failed.
async fn watch_connection(
    conn: &mut MultiplexedConnection,
    generation: u64,
    config: &Config,
    signals: &Signals,
) {
    let ping = redis::cmd("PING");
    loop {
        if signals.broken.load(Ordering::Acquire) >= generation {
            return;
        }
        tokio::select! {
            () = signals.wake.notified() => {}
            () = tokio::time::sleep(config.ping_interval) => {
                if let Err(e) = call(conn, &ping, config.command_timeout).await {
                    tracing::warn!(target: "wsdrain::redis", error = %e, "redis log check failed");
                    return;
                }
            }
        }
    }
}

/// `run_id` from `INFO server`.
fn run_id(info: &Value) -> Option<String> {
    let text = match info {
        Value::BulkString(b) => std::str::from_utf8(b).ok()?,
        Value::VerbatimString { text, .. } => text,
        Value::SimpleString(s) => s,
        _ => return None,
    };
    text.lines()
        .find_map(|l| l.strip_prefix("run_id:"))
        .map(|id| id.trim().to_owned())
}

/// `d` ± 25 %, so replicas that lost Redis together do not knock together.
pub(crate) fn jitter(d: Duration) -> Duration {
    d.mul_f64(0.75 + fastrand::f64() / 2.0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn run_id_from_info() {
        let info = Value::BulkString(
            b"# Server\r\nredis_version:7.0.15\r\nrun_id:0123abcd\r\ntcp_port:6390\r\n".to_vec(),
        );
        assert_eq!(run_id(&info).as_deref(), Some("0123abcd"));
        assert_eq!(run_id(&Value::BulkString(b"# Server\r\n".to_vec())), None);
    }
}
