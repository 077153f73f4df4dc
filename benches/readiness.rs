//! Readiness latency: a real SIGTERM to a real server process, and the time
//! until `/readyz` first answers 503 (target ≤ 5 ms).
//!
//! Run with `cargo bench -p wsdrain-benches --bench readiness` (`-- --runs 50`, `-- --quick` for 5 runs).
//!
//! This binary starts itself again as the server (`__server`: the wsdrain echo
//! server with `listen_for_signals`, `DrainLayer` and `wsdrain::serve`; drain
//! delay 1 s so the 503 is served while the drain is on). The client polls
//! `/readyz` in a tight loop on one kept-alive HTTP/1.1 connection, and on a
//! fresh connection per request in the second series; the main thread sends
//! SIGTERM and the figure is "just before `kill()`" to "the first 503 read".

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    process::ExitCode,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};
use wsdrain::{DrainController, DrainPolicy};

mod support;

fn server() -> ExitCode {
    let policy = DrainPolicy::builder()
        .drain_delay(Duration::from_secs(1))
        .close_window(Duration::ZERO)
        .build()
        .expect("policy");
    let controller = DrainController::new(policy);
    let _signals = controller.listen_for_signals().expect("signals");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let listener = support::listener("127.0.0.1:0".parse().expect("addr")).expect("listen");
        println!("LISTENING {}", listener.local_addr().expect("addr"));
        let router = support::graceful_router(controller.drain(), None);
        let _ = wsdrain::serve(listener, router, &controller).await;
    });
    ExitCode::SUCCESS
}

/// One `GET /readyz` on `stream`; returns the status code.
fn get_readyz(stream: &mut TcpStream, buf: &mut Vec<u8>, fresh: bool) -> Option<u16> {
    // A fresh connection asks the server to close first, so the TIME_WAIT
    // sockets land on the server's port, not on the client's source ports.
    let request: &[u8] = if fresh {
        b"GET /readyz HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
    } else {
        b"GET /readyz HTTP/1.1\r\nHost: bench\r\n\r\n"
    };
    stream.write_all(request).ok()?;
    buf.clear();
    let mut chunk = [0u8; 1024];
    let head_end = loop {
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = std::str::from_utf8(&buf[..head_end]).ok()?;
    let status: u16 = head.split_whitespace().nth(1)?.parse().ok()?;
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some(status)
}

/// Polls until the first 503; returns when it was read.
fn poll_until_503(addr: SocketAddr, fresh: bool, polling: &AtomicBool) -> Option<Instant> {
    let connect = || {
        let s = TcpStream::connect(addr).ok()?;
        s.set_nodelay(true).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        Some(s)
    };
    let mut stream = connect()?;
    let mut buf = Vec::with_capacity(1024);
    loop {
        if fresh {
            stream = connect()?;
        }
        let status = get_readyz(&mut stream, &mut buf, fresh)?;
        polling.store(true, Ordering::Release);
        if status == 503 {
            return Some(Instant::now());
        }
    }
}

fn one_run(fresh: bool) -> Option<Duration> {
    let exe = std::env::current_exe().expect("current_exe");
    let mut child = std::process::Command::new(exe)
        .arg("__server")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut out = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).expect("read");
    let Some(addr) = line
        .trim()
        .strip_prefix("LISTENING ")
        .and_then(|a| a.parse::<SocketAddr>().ok())
    else {
        let _ = child.kill();
        let _ = child.wait();
        return None;
    };
    let polling = Arc::new(AtomicBool::new(false));
    let poller = std::thread::spawn({
        let polling = polling.clone();
        move || poll_until_503(addr, fresh, &polling)
    });
    // Signal while the poller is in its loop (after its first 200).
    let until = Instant::now() + Duration::from_secs(5);
    while !polling.load(Ordering::Acquire) && Instant::now() < until {
        std::thread::yield_now();
    }
    std::thread::sleep(Duration::from_millis(20));
    let pid = Pid::from_raw(i32::try_from(child.id()).expect("pid"));
    let sent = Instant::now();
    kill(pid, Signal::SIGTERM).expect("SIGTERM");
    let first_503 = poller.join().ok().flatten();
    let _ = child.wait();
    first_503.map(|t| t.saturating_duration_since(sent))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().is_some_and(|a| a == "__server") {
        return server();
    }
    if args.iter().any(|a| a == "--list") {
        return ExitCode::SUCCESS;
    }
    let mut runs = 20;
    if args.iter().any(|a| a == "--quick") {
        runs = 5;
    }
    if let Some(i) = args.iter().position(|a| a == "--runs") {
        runs = args.get(i + 1).and_then(|v| v.parse().ok()).unwrap_or(runs);
    }
    println!("readiness: {}", support::machine());
    println!("| connection | runs | SIGTERM → first 503, p50 | max | min | target |");
    println!("|---|---|---|---|---|---|");
    for fresh in [false, true] {
        let mut lat: Vec<Duration> = (0..runs).filter_map(|_| one_run(fresh)).collect();
        lat.sort();
        let ms = |d: Option<&Duration>| d.map_or(f64::NAN, |d| d.as_secs_f64() * 1e3);
        println!(
            "| {} | {}/{runs} | {:.3} ms | {:.3} ms | {:.3} ms | <= 5 ms |",
            if fresh {
                "fresh per request"
            } else {
                "kept alive"
            },
            lat.len(),
            ms(lat.get(lat.len() / 2)),
            ms(lat.last()),
            ms(lat.first()),
        );
    }
    println!("{}", support::load());
    ExitCode::SUCCESS
}
