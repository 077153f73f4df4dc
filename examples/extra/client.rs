//! A reconnecting client that honours the close hints: it sends a numbered
//! text message every 500 ms and prints one JSON object per line per event.
//!
//! Run with (next to `cargo run --example echo`)
//!
//! ```sh
//! cargo run -p wsdrain-examples --example client -- --url ws://127.0.0.1:3000/ws
//! ```
//!
//! Lines look like `{"event":"connected","connection":1}`,
//! `{"event":"sent","seq":3,"connection":1}`, `{"event":"echo","seq":3,"connection":1}`,
//! `{"event":"closed","code":1001,"reason":"going away; retry-after-ms=2731","retry_in_ms":2731,...}`,
//! `{"event":"reconnecting","in_ms":2904,"wait":"hint"}`; with a server that
//! sends the drain notice (`WSDRAIN_NOTICE_LEAD=1s`),
//! `{"event":"notice","connection":1,"close_in_ms":1000}`, then
//! `{"event":"connected","connection":2}` (sends move there),
//! `{"event":"closed","connection":1,...}` and
//! `{"event":"handover","from":1,"to":2,"overlap_ms":987,"connect_ms":12}`.
//! Runs until Ctrl-C, then closes with 1000 and exits 0. Logs (`RUST_LOG`) go
//! to stderr.
//!
//! Flags: `--url URL` (default `ws://127.0.0.1:3000/ws`), `--interval-ms N`
//! (default 500), `--header 'K: V'` (repeatable, added to the upgrade
//! request), `--health` (probe the same origin's `/readyz` before each
//! reconnect), `--health-url URL`, `--ca PEM` (trust this CA for `wss://`,
//! e.g. the certificate `cargo run -p wsdrain-examples --example tls -- --write-cert cert.pem`
//! writes), `--no-handover` (deliver the drain notice as a message),
//! `--resume` (resumable streams, `wsdrain.resume.v1`).
//!
//! With `--resume`, next to `cargo run --example feed`
//! (`--url ws://127.0.0.1:3000/feed`), the feed's messages print as
//! `{"event":"stream","stream":"ticker","seq":41,"text":"{\"n\":...}","connection":1}`,
//! and after a reconnect or a handover
//! `{"event":"resumed","stream":"ticker","epoch":"...","after":57,"connection":2}`,
//! or, when the server lost the history (restart it),
//! `{"event":"resync","stream":"ticker","reason":"epoch",...}`.

use std::{process::ExitCode, time::Duration};

use serde_json::{Value, json};
use tracing_subscriber::{filter::Targets, layer::SubscriberExt, util::SubscriberInitExt};
use wsdrain::client::{Event, GiveUp, Message, Reconnect, SendError, Wait};

struct Args {
    url: String,
    interval: Duration,
    headers: Vec<(String, String)>,
    health: bool,
    health_url: Option<String>,
    ca: Option<String>,
    handover: bool,
    resume: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        url: "ws://127.0.0.1:3000/ws".into(),
        interval: Duration::from_millis(500),
        headers: Vec::new(),
        health: false,
        health_url: None,
        ca: None,
        handover: true,
        resume: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match flag.as_str() {
            "--url" => args.url = value("--url")?,
            "--interval-ms" => {
                let v = value("--interval-ms")?;
                let ms: u64 = v
                    .parse()
                    .map_err(|_| format!("--interval-ms: bad number {v:?}"))?;
                args.interval = Duration::from_millis(ms.max(1));
            }
            "--header" => {
                let v = value("--header")?;
                let (name, val) = v
                    .split_once(':')
                    .ok_or(format!("--header: expected 'Name: value', got {v:?}"))?;
                args.headers.push((name.trim().into(), val.trim().into()));
            }
            "--health" => args.health = true,
            "--health-url" => args.health_url = Some(value("--health-url")?),
            "--ca" => args.ca = Some(value("--ca")?),
            "--no-handover" => args.handover = false,
            "--resume" => args.resume = true,
            "-h" | "--help" => {
                println!(
                    "usage: client [--url URL] [--interval-ms N] [--header 'K: V']... [--health | --health-url URL] [--ca PEM] [--no-handover] [--resume]"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(args)
}

fn print(line: Value) {
    println!("{line}");
}

fn event_json(event: &Event) -> Option<Value> {
    Some(match event {
        Event::Connected { connection } => {
            json!({"event": "connected", "connection": connection.get()})
        }
        Event::Message {
            message,
            connection,
        } => {
            let text = message.to_text().ok()?;
            match text.parse::<u64>() {
                Ok(seq) => json!({"event": "echo", "seq": seq, "connection": connection.get()}),
                Err(_) => json!({"event": "message", "text": text, "connection": connection.get()}),
            }
        }
        Event::StreamMessage(m) => json!({
            "event": "stream",
            "stream": &*m.stream,
            "seq": m.seq,
            "text": m.message.to_text().ok(),
            "connection": m.connection.get(),
        }),
        Event::Resumed(r) => json!({
            "event": "resumed",
            "stream": &*r.stream,
            "epoch": r.epoch,
            "after": r.after,
            "connection": r.connection.get(),
        }),
        Event::Resync(r) => json!({
            "event": "resync",
            "stream": &*r.stream,
            "reason": r.reason.as_str(),
            "epoch": r.epoch,
            "after": r.after,
            "connection": r.connection.get(),
        }),
        Event::ResumeDeclined { connection } => {
            json!({"event": "resume_declined", "connection": connection.get()})
        }
        Event::Closed(c) => json!({
            "event": "closed",
            "connection": c.connection.get(),
            "code": c.code,
            "reason": c.reason,
            "retry_in_ms": c.hint.map(|h| h.retry_after_ms()),
            "clean": c.clean,
            "up_ms": c.up_for.as_millis() as u64,
        }),
        Event::ConnectFailed(f) => json!({
            "event": "connect_failed",
            "stage": f.stage.to_string(),
            "status": f.status,
            "retry_after_s": f.retry_after.map(|d| d.as_secs()),
            "error": f.error,
        }),
        Event::Reconnecting { delay, wait } => {
            json!({"event": "reconnecting", "in_ms": delay.as_millis() as u64, "wait": wait_name(wait)})
        }
        Event::DrainNotice {
            connection,
            close_in,
        } => json!({
            "event": "notice",
            "connection": connection.get(),
            "close_in_ms": close_in.as_millis() as u64,
        }),
        Event::Handover(h) => json!({
            "event": "handover",
            "from": h.from.get(),
            "to": h.to.get(),
            "overlap_ms": h.overlap.as_millis() as u64,
            "connect_ms": h.connect_time.as_millis() as u64,
        }),
        Event::HandoverFailed { connection, failed } => json!({
            "event": "handover_failed",
            "connection": connection.get(),
            "stage": failed.stage.to_string(),
            "status": failed.status,
            "error": failed.error,
        }),
        Event::NotReady(n) => json!({
            "event": "not_ready",
            "status": n.status,
            "error": n.error,
            "in_ms": n.delay.as_millis() as u64,
            "wait": wait_name(&n.wait),
        }),
        Event::GaveUp(cause) => {
            let cause = match cause {
                GiveUp::TerminalClose { code } => format!("close {code}"),
                GiveUp::Refused { status } => format!("status {status}"),
                GiveUp::Unusable(e) => e.clone(),
                GiveUp::ClientClosed => "closed by the client".into(),
                other => format!("{other:?}"),
            };
            json!({"event": "gave_up", "cause": cause})
        }
        other => json!({"event": "other", "debug": format!("{other:?}")}),
    })
}

fn wait_name(wait: &Wait) -> &'static str {
    match wait {
        Wait::Hint(_) => "hint",
        Wait::RetryAfter(_) => "retry-after",
        Wait::Backoff { .. } => "backoff",
        _ => "other",
    }
}

fn reconnect(args: &Args) -> Result<Reconnect, String> {
    let mut reconnect = Reconnect::new(args.url.as_str())
        .handover(args.handover)
        .resume(args.resume);
    for (name, value) in &args.headers {
        reconnect = reconnect.header(name, value);
    }
    if args.health {
        reconnect = reconnect.health_check(true);
    }
    if let Some(url) = &args.health_url {
        reconnect = reconnect.health_url(url.as_str());
    }
    if let Some(path) = &args.ca {
        use wsdrain::client::tls::rustls::pki_types::{CertificateDer, pem::PemObject};
        let roots = CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("--ca {path}: {e}"))?;
        let config = wsdrain::client::tls::config_with_roots(roots)
            .map_err(|e| format!("--ca {path}: {e}"))?;
        reconnect = reconnect.tls_config(config);
    }
    Ok(reconnect)
}

#[tokio::main]
async fn main() -> ExitCode {
    // `RUST_LOG` as a level per target (`wsdrain_client=debug,warn`).
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| v.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::WARN));
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .with(filter)
        .init();
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("client: {e}");
            return ExitCode::from(2);
        }
    };
    let (client, mut events) = match reconnect(&args) {
        Ok(r) => r.spawn(),
        Err(e) => {
            eprintln!("client: {e}");
            return ExitCode::from(2);
        }
    };
    let mut tick = tokio::time::interval(args.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seq = 0u64;
    let mut ctrl_c = std::pin::pin!(tokio::signal::ctrl_c());
    loop {
        tokio::select! {
            event = events.next() => match event {
                Some(event) => {
                    if let Some(line) = event_json(&event) {
                        print(line);
                    }
                }
                None => return ExitCode::SUCCESS, // gave up
            },
            _ = tick.tick() => {
                seq += 1;
                match client.send(Message::text(seq.to_string())).await {
                    Ok(id) => print(json!({"event": "sent", "seq": seq, "connection": id.get()})),
                    Err(SendError::NotConnected(_)) => {
                        print(json!({"event": "not_sent", "seq": seq}));
                    }
                    Err(e) => print(json!({"event": "send_failed", "seq": seq, "error": e.to_string()})),
                }
            }
            _ = &mut ctrl_c => {
                client.close();
                while let Some(event) = events.next().await {
                    if let Some(line) = event_json(&event) {
                        print(line);
                    }
                }
                return ExitCode::SUCCESS;
            }
        }
    }
}
