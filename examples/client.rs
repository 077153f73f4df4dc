//! A reconnecting client that honours the close hints: it sends a numbered
//! text message every 500 ms and prints one JSON object per line per event.
//!
//! Run with (next to `cargo run --example echo`)
//!
//! ```sh
//! cargo run --features client --example client -- --url ws://127.0.0.1:3000/ws
//! ```
//!
//! Lines look like `{"event":"connected","connection":1}`,
//! `{"event":"sent","seq":3,"connection":1}`, `{"event":"echo","seq":3}`,
//! `{"event":"closed","code":1001,"reason":"going away; retry-after-ms=2731","retry_in_ms":2731,...}`,
//! `{"event":"reconnecting","in_ms":2904,"wait":"hint"}`. Runs until Ctrl-C,
//! then closes with 1000 and exits 0. Logs (`RUST_LOG`) go to stderr.
//!
//! Flags: `--url URL` (default `ws://127.0.0.1:3000/ws`), `--interval-ms N`
//! (default 500).

use std::{process::ExitCode, time::Duration};

use serde_json::{Value, json};
use wsdrain::client::{Event, GiveUp, Message, Reconnect, SendError, Wait};

struct Args {
    url: String,
    interval: Duration,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        url: "ws://127.0.0.1:3000/ws".into(),
        interval: Duration::from_millis(500),
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
            "-h" | "--help" => {
                println!("usage: client [--url URL] [--interval-ms N]");
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
        Event::Message { message, .. } => {
            let text = message.to_text().ok()?;
            match text.parse::<u64>() {
                Ok(seq) => json!({"event": "echo", "seq": seq}),
                Err(_) => json!({"event": "message", "text": text}),
            }
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
            "status": f.status,
            "retry_after_s": f.retry_after.map(|d| d.as_secs()),
            "error": f.error,
        }),
        Event::Reconnecting { delay, wait } => {
            let wait = match wait {
                Wait::Hint(_) => "hint",
                Wait::RetryAfter(_) => "retry-after",
                Wait::Backoff { .. } => "backoff",
            };
            json!({"event": "reconnecting", "in_ms": delay.as_millis() as u64, "wait": wait})
        }
        Event::GaveUp(cause) => {
            let cause = match cause {
                GiveUp::TerminalClose { code } => format!("close {code}"),
                GiveUp::Refused { status } => format!("status {status}"),
                GiveUp::Unusable(e) => e.clone(),
                GiveUp::ClientClosed => "closed by the client".into(),
            };
            json!({"event": "gave_up", "cause": cause})
        }
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("client: {e}");
            return ExitCode::from(2);
        }
    };
    let (client, mut events) = Reconnect::new(args.url).spawn();
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
                client.close().await;
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
