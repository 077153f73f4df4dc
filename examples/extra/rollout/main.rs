//! The rollout simulator: a Kubernetes-style rolling deployment of the `echo`
//! example behind HAProxy, with reconnecting clients that check every echo;
//! with `--transport sse`, of the `sse` example, with `EventSource`-like
//! clients that check every event id.
//!
//! Run with
//!
//! ```sh
//! cargo build --release --example echo
//! cargo run --release -p wsdrain-examples --example rollout -- \
//!     --replicas 3 --clients 300 --rounds 1 --baseline --json report.json --plot rollout.svg
//! ```
//!
//! It starts `--replicas` echo servers on loopback ports, HAProxy in front of
//! them (or, without HAProxy, a labelled stand-in), `--clients` wsdrain
//! clients through it, and then plays the kubelet and the Deployment
//! controller (`maxSurge: 1`, `maxUnavailable: 0`): start a new replica, wait
//! until the load balancer has seen it ready, SIGTERM an old one, SIGKILL it
//! if it outlives the grace period; for every replica, `--rounds` times.
//! `--notice` runs it again with the drain notice (`WSDRAIN_NOTICE_LEAD`) and
//! clients that hand over on it; `--baseline` runs it again with
//! `echo --plain` (axum's own graceful shutdown, no wsdrain). See
//! `docs/KUBERNETES.md`.
//!
//! ```sh
//! cargo build --release --example sse
//! cargo run --release -p wsdrain-examples --example rollout -- \
//!     --transport sse --replicas 3 --clients 1000 --baseline --json sse.json
//! ```

mod clients;
mod fleet;
mod lb;
mod plot;
mod report;
mod sse_clients;

use std::{
    collections::VecDeque,
    path::PathBuf,
    process::ExitCode,
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::sync::{Mutex, watch};

use crate::{
    clients::{ClientSpec, Connected},
    fleet::{PodSpec, Termination},
    lb::{Balancer, LbKind, SessionSamples},
    report::ModeReport,
};

const HELP: &str = "\
rollout: a rolling deployment of the echo example behind a load balancer

usage: rollout [FLAGS]

fleet and load
  --transport websocket|sse
                        websocket: the echo example and wsdrain clients (default);
                        sse: the sse example and EventSource-like clients
                        (WHATWG reconnection rules, Last-Event-ID)
  --replicas N          replicas of the Deployment (default 3)
  --clients N           reconnecting clients through the load balancer (default 300)
  --rounds N            full rollouts, one after the other (default 1)
  --interval DUR        pause between an echo and a client's next message; with
                        sse, the feed's interval between events (default 250ms)
  --lb haproxy|none     load balancer (default haproxy when `haproxy` is on PATH;
                        none = a kube-proxy-like stand-in polling /readyz)
  --check-inter DUR     HAProxy `inter` of the /readyz check, also the stand-in's
                        probe period (default 200ms; `fall 2`)
  --replacement complete|started
                        complete: the next surge waits until the old replica has
                        exited (podReplacementPolicy: TerminationComplete, default);
                        started: it goes on once the old one got SIGTERM
                        (the classic Deployment behaviour; drains overlap)
  --notice              also run the rollout with the drain notice: replicas get
                        WSDRAIN_NOTICE_LEAD, clients hand over on it (mode
                        `wsdrain_notice`; the grace period grows by the lead)
  --notice-lead DUR     the notice's lead (default 1s)
  --baseline            also run the rollout with `echo --plain` (no wsdrain)
  --echo PATH           the echo (or sse) binary (default: next to this binary)
  --read-buffer BYTES   per-session read buffer of the replicas (echo --read-buffer)

drain policy (passed to the replicas as WSDRAIN_*; scaled for a quick run)
  --drain-delay DUR     default 1s   (5s in a pod)
  --close-window DUR    default 3s   (12s)
  --close-timeout DUR   default 2s   (5s)
  --grace DUR           default 10s  (30s); also when the kubelet here sends SIGKILL
  --retry-after-min DUR default 500ms (1s)
  --retry-after-max DUR default 2s   (5s)

output
  --json PATH           write the report as JSON
  --plot PATH           write an SVG: sessions per replica and reconnects per 100 ms
  -h, --help            this text

Durations are written 500ms, 2s, 1m.";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Replacement {
    Complete,
    Started,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    WebSocket,
    Sse,
}

#[derive(Debug, Clone)]
struct Args {
    transport: Transport,
    replicas: usize,
    clients: usize,
    rounds: usize,
    interval: Duration,
    lb: Option<LbKind>,
    check_inter: Duration,
    replacement: Replacement,
    baseline: bool,
    notice: bool,
    notice_lead: String,
    echo: Option<PathBuf>,
    read_buffer: Option<usize>,
    drain_delay: String,
    close_window: String,
    close_timeout: String,
    grace: String,
    retry_after_min: String,
    retry_after_max: String,
    json: Option<PathBuf>,
    plot: Option<PathBuf>,
}

fn duration(flag: &str, v: &str) -> Result<Duration, String> {
    wsdrain::policy::parse_duration(v).ok_or(format!("{flag}: bad duration {v:?}"))
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        transport: Transport::WebSocket,
        replicas: 3,
        clients: 300,
        rounds: 1,
        interval: Duration::from_millis(250),
        lb: None,
        check_inter: Duration::from_millis(200),
        replacement: Replacement::Complete,
        baseline: false,
        notice: false,
        notice_lead: "1s".into(),
        echo: None,
        read_buffer: None,
        drain_delay: "1s".into(),
        close_window: "3s".into(),
        close_timeout: "2s".into(),
        grace: "10s".into(),
        retry_after_min: "500ms".into(),
        retry_after_max: "2s".into(),
        json: None,
        plot: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        let number = |v: String| {
            v.parse::<usize>()
                .map_err(|_| format!("{flag}: bad number {v:?}"))
        };
        match flag.as_str() {
            "--transport" => {
                a.transport = match value()?.as_str() {
                    "websocket" => Transport::WebSocket,
                    "sse" => Transport::Sse,
                    v => return Err(format!("--transport: websocket or sse, not {v:?}")),
                }
            }
            "--replicas" => a.replicas = number(value()?)?,
            "--clients" => a.clients = number(value()?)?,
            "--rounds" => a.rounds = number(value()?)?,
            "--interval" => a.interval = duration(&flag, &value()?)?,
            "--check-inter" => a.check_inter = duration(&flag, &value()?)?,
            "--lb" => {
                a.lb = Some(match value()?.as_str() {
                    "haproxy" => LbKind::Haproxy,
                    "none" => LbKind::None,
                    v => return Err(format!("--lb: haproxy or none, not {v:?}")),
                })
            }
            "--replacement" => {
                a.replacement = match value()?.as_str() {
                    "complete" => Replacement::Complete,
                    "started" => Replacement::Started,
                    v => return Err(format!("--replacement: complete or started, not {v:?}")),
                }
            }
            "--baseline" => a.baseline = true,
            "--notice" => a.notice = true,
            "--notice-lead" => a.notice_lead = value()?,
            "--echo" => a.echo = Some(value()?.into()),
            "--read-buffer" => a.read_buffer = Some(number(value()?)?),
            "--drain-delay" => a.drain_delay = value()?,
            "--close-window" => a.close_window = value()?,
            "--close-timeout" => a.close_timeout = value()?,
            "--grace" => a.grace = value()?,
            "--retry-after-min" => a.retry_after_min = value()?,
            "--retry-after-max" => a.retry_after_max = value()?,
            "--json" => a.json = Some(value()?.into()),
            "--plot" => a.plot = Some(value()?.into()),
            "-h" | "--help" => {
                println!("{HELP}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?} (see --help)")),
        }
    }
    if a.replicas == 0 || a.clients == 0 || a.rounds == 0 {
        return Err("--replicas, --clients and --rounds must be at least 1".into());
    }
    if a.clients > lb::HAPROXY_MAXCONN {
        return Err(format!(
            "--clients: at most {} (HAProxy's maxconn, which fits the open-files limit)",
            lb::HAPROXY_MAXCONN
        ));
    }
    Ok(a)
}

impl Args {
    /// The `WSDRAIN_*` environment of every replica.
    fn policy_env(&self) -> Vec<(String, String)> {
        [
            ("WSDRAIN_DRAIN_DELAY", &self.drain_delay),
            ("WSDRAIN_CLOSE_WINDOW", &self.close_window),
            ("WSDRAIN_CLOSE_TIMEOUT", &self.close_timeout),
            ("WSDRAIN_GRACE_PERIOD", &self.grace),
            ("WSDRAIN_RETRY_AFTER_MIN", &self.retry_after_min),
            ("WSDRAIN_RETRY_AFTER_MAX", &self.retry_after_max),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
    }

    /// The environment with the drain notice (`--notice`): the lead, and a
    /// grace period longer by the lead, so the close window stays the same
    /// as without it.
    fn notice_env(&self) -> Result<Vec<(String, String)>, String> {
        let lead = duration("--notice-lead", &self.notice_lead)?;
        if lead.is_zero() {
            return Err("--notice-lead: must be above zero".into());
        }
        let grace = duration("--grace", &self.grace)?;
        let mut env = self.policy_env();
        for (k, v) in &mut env {
            if k == "WSDRAIN_GRACE_PERIOD" {
                *v = format!("{}ms", (grace + lead).as_millis());
            }
        }
        env.push(("WSDRAIN_NOTICE_LEAD".into(), self.notice_lead.clone()));
        Ok(env)
    }

    /// The policy the replicas will run, validated here so a bad flag fails
    /// before anything starts.
    fn policy(&self) -> Result<wsdrain::DrainPolicy, String> {
        build_policy(&self.policy_env())
    }

    /// The policy of the replicas with the drain notice.
    fn notice_policy(&self) -> Result<wsdrain::DrainPolicy, String> {
        build_policy(&self.notice_env()?)
    }

    fn echo_binary(&self) -> Result<PathBuf, String> {
        let name = match self.transport {
            Transport::WebSocket => "echo",
            Transport::Sse => "sse",
        };
        let path = match &self.echo {
            Some(p) => p.clone(),
            None => {
                let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
                exe.with_file_name(name)
            }
        };
        if path.exists() {
            Ok(path)
        } else {
            Err(format!(
                "the {name} example is not built at {}: run `cargo build --release --example {name}` \
                 (same profile as this binary) or pass --echo PATH",
                path.display()
            ))
        }
    }
}

fn build_policy(env: &[(String, String)]) -> Result<wsdrain::DrainPolicy, String> {
    wsdrain::DrainPolicy::builder()
        .kubernetes(false)
        .env(|name| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
        .and_then(wsdrain::DrainPolicyBuilder::build)
        .map_err(|e| format!("drain policy: {e}"))
}

/// Everything a mode needs.
struct Run {
    args: Args,
    lb: LbKind,
    grace: Duration,
    policy: wsdrain::DrainPolicy,
    /// The policy with the notice (`--notice`).
    notice_policy: Option<wsdrain::DrainPolicy>,
    echo: PathBuf,
}

fn say(msg: impl AsRef<str>) {
    eprintln!("rollout: {}", msg.as_ref());
}

impl Run {
    async fn mode(
        &self,
        name: &'static str,
        plain: bool,
        notice: bool,
    ) -> Result<ModeReport, String> {
        let a = &self.args;
        let (policy, env) = match (notice, &self.notice_policy) {
            (true, Some(p)) => (p, a.notice_env()?),
            _ => (&self.policy, a.policy_env()),
        };
        let sse = a.transport == Transport::Sse;
        let spec = PodSpec {
            binary: self.echo.clone(),
            plain,
            env,
            read_buffer: a.read_buffer.filter(|_| !sse),
            args: if sse {
                vec![
                    "--interval".into(),
                    a.interval.as_millis().max(1).to_string(),
                ]
            } else {
                Vec::new()
            },
        };
        let slots = a.replicas * (a.rounds + 1);
        let balancer = Balancer::start(self.lb, slots, a.check_inter)
            .await
            .map_err(|e| format!("load balancer: {e}"))?;
        let lb_addr = balancer.addr();
        let url = format!("ws://{lb_addr}/ws");
        let balancer = Arc::new(Mutex::new(balancer));

        // The Deployment before the rollout.
        let mut next_id = 1;
        let mut live = VecDeque::new();
        for _ in 0..a.replicas {
            let r = start_ready(&spec, next_id, &balancer).await?;
            next_id += 1;
            live.push_back(r);
        }
        say(format!(
            "{name}: {} replicas ready behind {}",
            a.replicas,
            self.lb.name()
        ));

        // The clients.
        let t0 = Instant::now();
        let connected = Arc::new(Connected::default());
        let (stop_tx, stop_rx) = watch::channel(false);
        let client_spec = ClientSpec {
            url,
            interval: a.interval,
            echo_timeout: Duration::from_secs(5),
            handover: notice,
        };
        let handles: Vec<_> = (0..a.clients)
            .map(|i| {
                if sse {
                    tokio::spawn(sse_clients::run_client(
                        lb_addr,
                        t0,
                        connected.clone(),
                        stop_rx.clone(),
                    ))
                } else {
                    tokio::spawn(clients::run_client(
                        i,
                        client_spec.clone(),
                        t0,
                        connected.clone(),
                        stop_rx.clone(),
                    ))
                }
            })
            .collect();
        wait_for("every client connected", Duration::from_secs(60), || {
            connected.get() == a.clients
        })
        .await?;
        say(format!("{name}: {} clients connected", a.clients));

        // Live sessions per replica, every 100 ms, as the balancer counts them.
        let (sample_stop, mut sample_rx) = watch::channel(false);
        let sampler = {
            let balancer = balancer.clone();
            tokio::spawn(async move {
                let mut samples = Vec::new();
                let mut tick = tokio::time::interval(Duration::from_millis(100));
                loop {
                    tokio::select! {
                        _ = tick.tick() => {}
                        _ = sample_rx.changed() => break,
                    }
                    let t = t0.elapsed().as_secs_f64();
                    if let Ok(s) = balancer.lock().await.sessions().await {
                        samples.push((t, s));
                    }
                }
                samples
            })
        };
        tokio::time::sleep(Duration::from_secs(1)).await;

        // The rollout: maxSurge 1, maxUnavailable 0.
        let rollout_start = t0.elapsed().as_secs_f64();
        let started = Instant::now();
        let mut sigterms = Vec::new();
        let mut pending = Vec::new();
        let mut terminations: Vec<Termination> = Vec::new();
        for round in 1..=a.rounds {
            for _ in 0..a.replicas {
                let Some(old) = live.pop_front() else { break };
                let new = start_ready(&spec, next_id, &balancer).await?;
                next_id += 1;
                say(format!(
                    "{name}: round {round}: replica {} ready, SIGTERM replica {}",
                    new.id, old.id
                ));
                live.push_back(new);
                sigterms.push(t0.elapsed().as_secs_f64() - rollout_start);
                let balancer = balancer.clone();
                let grace = if notice {
                    policy.grace_period()
                } else {
                    self.grace
                };
                let kubelet = tokio::spawn(async move {
                    let t = old.terminate(grace).await;
                    let _ = balancer.lock().await.remove(t.id).await;
                    t
                });
                match a.replacement {
                    Replacement::Complete => {
                        terminations.push(kubelet.await.map_err(|e| format!("kubelet task: {e}"))?)
                    }
                    Replacement::Started => pending.push(kubelet),
                }
            }
        }
        for p in pending {
            terminations.push(p.await.map_err(|e| format!("kubelet task: {e}"))?);
        }
        let rollout_seconds = started.elapsed().as_secs_f64();
        for t in &terminations {
            say(format!(
                "{name}: replica {} ended after {:.2} s (exit {:?}){}",
                t.id,
                t.took.as_secs_f64(),
                t.code,
                if t.killed {
                    " (SIGKILL: over the grace period)"
                } else {
                    ""
                }
            ));
        }

        // Let every client come back, then stop them (an SSE client that
        // gave up, as an `EventSource` does on a non-200 answer, never will).
        let back = wait_for("every client reconnected", Duration::from_secs(30), || {
            connected.get() == a.clients
        })
        .await;
        if let Err(e) = back {
            say(format!(
                "{name}: {e} ({} of {})",
                connected.get(),
                a.clients
            ));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let _ = sample_stop.send(true);
        let samples = sampler.await.map_err(|e| format!("sampler: {e}"))?;
        let _ = stop_tx.send(true);
        let mut logs = Vec::with_capacity(handles.len());
        for h in handles {
            match tokio::time::timeout(Duration::from_secs(30), h).await {
                Ok(Ok(log)) => logs.push(log),
                Ok(Err(e)) => return Err(format!("client task: {e}")),
                Err(_) => return Err("a client did not stop within 30 s".into()),
            }
        }
        for r in live {
            r.kill().await;
        }
        if let Ok(b) = Arc::try_unwrap(balancer) {
            b.into_inner().stop().await;
        }
        let sessions = SessionSamples {
            samples: samples
                .into_iter()
                .map(|(t, s)| (t - rollout_start, s))
                .filter(|(t, _)| *t >= -0.5)
                .collect(),
        };
        Ok(ModeReport::new(
            name,
            if sse { "sse" } else { "websocket" },
            &logs,
            &terminations,
            sigterms,
            rollout_start,
            rollout_seconds,
            sessions,
            next_id - 1,
        )
        .with_flat_rate(policy))
    }
}

/// Starts replica `id`, adds it to the balancer and waits until the balancer
/// has seen it pass a readiness check (what the Deployment controller waits
/// for before it scales an old replica down).
async fn start_ready(
    spec: &PodSpec,
    id: usize,
    balancer: &Arc<Mutex<Balancer>>,
) -> Result<fleet::Replica, String> {
    let r = spec
        .start(id)
        .await
        .map_err(|e| format!("replica {id}: {e}"))?;
    balancer
        .lock()
        .await
        .add(r.id, r.addr)
        .await
        .map_err(|e| format!("load balancer: {e}"))?;
    let start = Instant::now();
    loop {
        let ready = balancer
            .lock()
            .await
            .is_ready(id)
            .await
            .map_err(|e| format!("load balancer: {e}"))?;
        if ready {
            return Ok(r);
        }
        if start.elapsed() > Duration::from_secs(10) {
            return Err(format!(
                "replica {id} not seen ready by the load balancer in 10 s"
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_for(what: &str, limit: Duration, cond: impl Fn() -> bool) -> Result<(), String> {
    let start = Instant::now();
    while !cond() {
        if start.elapsed() > limit {
            return Err(format!("timed out after {limit:?} waiting for {what}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

fn haproxy_on_path() -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join("haproxy").is_file()))
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("rollout: {e}");
            return ExitCode::from(2);
        }
    };
    let policy = match args.policy() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("rollout: {e}");
            return ExitCode::from(2);
        }
    };
    let notice_policy = match args.notice.then(|| args.notice_policy()).transpose() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("rollout: --notice: {e}");
            return ExitCode::from(2);
        }
    };
    let echo = match args.echo_binary() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("rollout: {e}");
            return ExitCode::from(2);
        }
    };
    let lb = match args.lb {
        Some(LbKind::Haproxy) if !haproxy_on_path() => {
            eprintln!("rollout: --lb haproxy: `haproxy` is not on PATH (apt install haproxy)");
            return ExitCode::from(2);
        }
        Some(kind) => kind,
        None if haproxy_on_path() => LbKind::Haproxy,
        None => {
            say("`haproxy` is not on PATH: using the endpoints stand-in (--lb none)");
            LbKind::None
        }
    };
    let lb_label = match lb {
        LbKind::Haproxy => "haproxy",
        LbKind::None => "none (stand-in: kube-proxy-like forwarder polling /readyz, no HAProxy)",
    };
    let run = Run {
        grace: policy.grace_period(),
        policy: policy.clone(),
        notice_policy: notice_policy.clone(),
        args: args.clone(),
        lb,
        echo,
    };
    let mut modes = Vec::new();
    // (name, echo --plain, drain notice)
    let mut plan = vec![("wsdrain", false, false)];
    if args.notice {
        plan.push(("wsdrain_notice", false, true));
    }
    if args.baseline {
        plan.push(("baseline", true, false));
    }
    for (name, plain, notice) in plan {
        match run.mode(name, plain, notice).await {
            Ok(m) => modes.push(m),
            Err(e) => {
                eprintln!("rollout: {name}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    print!("{}", report::table(&modes, lb_label));
    if let Some(path) = &args.json {
        let mut doc = serde_json::Map::new();
        doc.insert(
            "settings".into(),
            serde_json::json!({
                "lb": lb.name(),
                "lb_stand_in": lb == LbKind::None,
                "replicas": args.replicas,
                "clients": args.clients,
                "rounds": args.rounds,
                "interval_ms": args.interval.as_millis() as u64,
                "check_inter_ms": args.check_inter.as_millis() as u64,
                "replacement": match args.replacement {
                    Replacement::Complete => "complete",
                    Replacement::Started => "started",
                },
                "drain_delay_ms": policy.drain_delay().as_millis() as u64,
                "close_window_ms": policy.close_window().as_millis() as u64,
                "close_timeout_ms": policy.close_timeout().as_millis() as u64,
                "grace_period_ms": policy.grace_period().as_millis() as u64,
                "retry_after_min_ms": policy.retry_after_min().as_millis() as u64,
                "retry_after_max_ms": policy.retry_after_max().as_millis() as u64,
                "reconnect_bin_ms": 100,
                "notice_lead_ms": notice_policy.as_ref().map(|p| p.notice_lead().as_millis() as u64),
                "notice_grace_period_ms": notice_policy.as_ref().map(|p| p.grace_period().as_millis() as u64),
                "min_close_rate": policy.min_close_rate(),
                "transport": match args.transport {
                    Transport::WebSocket => "websocket",
                    Transport::Sse => "sse",
                },
            }),
        );
        for m in &modes {
            doc.insert(m.mode.into(), m.json());
        }
        let text =
            serde_json::to_string_pretty(&serde_json::Value::Object(doc)).unwrap_or_default();
        if let Err(e) = std::fs::write(path, text + "\n") {
            eprintln!("rollout: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    if let Some(path) = &args.plot
        && let Err(e) = plot::write_svg(path, &modes, lb.name())
    {
        eprintln!("rollout: cannot draw {}: {e}", path.display());
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
