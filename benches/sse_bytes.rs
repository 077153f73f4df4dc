//! Heap bytes wsdrain adds per Server-Sent Events stream, counted exactly by
//! a counting global allocator.
//!
//! Run with `cargo bench -p wsdrain-benches --bench sse_bytes` (`-- --quick` for fewer streams).
//!
//! N idle SSE streams (one event, then nothing) on a plain axum `Sse` route,
//! first without wsdrain, then behind `DrainLayer` (each stream a session:
//! registry slot, close signal, the `SessionBody` around the body), servers
//! and raw HTTP/1.1 clients in this process. Everything else is the same in
//! both runs, so the difference of live heap, divided by N, is what wsdrain
//! costs per stream. Target: ≤ 256 bytes.
//!
//! A third server has a do-nothing layer that only wraps the response body
//! in a type of its own: what any body-wrapping tower layer on an axum
//! `Router` costs per open response (axum boxes the new body type once more),
//! so that the last column shows what the drain itself adds.
//!
//! `-- --gate` (scripts/perf-gate) also holds the worst round's "wsdrain
//! adds" to [`CEILING`] and exits 1 past it.

use std::{
    alloc::System,
    convert::Infallible,
    net::SocketAddr,
    pin::Pin,
    task::{Context, Poll},
};

use axum::{
    Router,
    body::{Body, Bytes, HttpBody},
    http::Response,
    response::sse::{Event, Sse},
    routing::get,
};
use cap::Cap;
use futures_util::stream::{self, StreamExt};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use wsdrain::{DrainController, DrainLayer, DrainPolicy};

mod support;

#[global_allocator]
static ALLOC: Cap<System> = Cap::new(System, usize::MAX);

/// `--gate`: heap wsdrain may add per open SSE stream. Today 320–336 B, of
/// which 96 B any body-wrapping layer costs; the goal is 256 B, so this
/// ceiling only stops it from growing.
const CEILING: f64 = 384.0;

fn live_heap() -> i64 {
    ALLOC.allocated() as i64
}

fn router() -> Router {
    Router::new().route(
        "/events",
        get(|| async {
            let first = stream::once(async { Ok::<_, Infallible>(Event::default().data("x")) });
            Sse::new(first.chain(stream::pending()))
        }),
    )
}

/// A body that only delegates: what a body-wrapping layer adds.
struct Wrap(Body);

impl HttpBody for Wrap {
    type Data = Bytes;
    type Error = axum::Error;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.0).poll_frame(cx)
    }
    fn size_hint(&self) -> http_body::SizeHint {
        self.0.size_hint()
    }
}

async fn settle() {
    support::settle(live_heap).await;
}

/// Live heap added by `n` idle streams on the server at `addr` (and their clients).
async fn streams_heap(addr: SocketAddr, n: usize) -> i64 {
    settle().await;
    let before = live_heap();
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        let mut tcp = TcpStream::connect(addr).await.expect("connect");
        tcp.write_all(b"GET /events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
            .await
            .expect("request");
        // Read the head and the first event.
        let mut buf = [0u8; 1024];
        let mut got = Vec::new();
        while !got.windows(9).any(|w| w == b"data: x\n\n") {
            let k = tcp.read(&mut buf).await.expect("read");
            assert!(k > 0, "stream open");
            got.extend_from_slice(&buf[..k]);
        }
        conns.push(tcp);
    }
    settle().await;
    let after = live_heap();
    drop(conns);
    settle().await;
    after - before
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let n = if quick { 200 } else { 2_000 };
    support::raise_nofile_limit();
    println!("sse_bytes: {}", support::machine());
    println!(
        "sizes: DrainBody<axum Body> {} B (boxed by axum once per response through the layer), SessionGuard {} B",
        std::mem::size_of::<wsdrain::DrainBody<axum::body::Body>>(),
        std::mem::size_of::<wsdrain::SessionGuard>(),
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let rows = rt.block_on(async {
        let raw_listener = support::listener("127.0.0.1:0".parse().expect("addr")).expect("listen");
        let raw = raw_listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(raw_listener, router()).await;
        });
        let controller = DrainController::new(DrainPolicy::default());
        let drain = controller.drain();
        let graceful_listener =
            support::listener("127.0.0.1:0".parse().expect("addr")).expect("listen");
        let graceful = graceful_listener.local_addr().expect("addr");
        let app = router().layer(DrainLayer::new(controller.drain()));
        tokio::spawn(async move {
            let _ = axum::serve(graceful_listener, app).await;
        });
        let wrap_listener =
            support::listener("127.0.0.1:0".parse().expect("addr")).expect("listen");
        let wrapped = wrap_listener.local_addr().expect("addr");
        let app = router().layer(tower::util::MapResponseLayer::new(|r: Response<Body>| {
            r.map(Wrap)
        }));
        tokio::spawn(async move {
            let _ = axum::serve(wrap_listener, app).await;
        });
        streams_heap(raw, 50).await;
        streams_heap(graceful, 50).await;
        streams_heap(wrapped, 50).await;
        let mut rows = Vec::new();
        for round in 1..=2 {
            let r = streams_heap(raw, n).await;
            let g = streams_heap(graceful, n).await;
            let w = streams_heap(wrapped, n).await;
            rows.push((round, r, g, w));
        }
        assert_eq!(
            drain.sessions(),
            0,
            "every stream unregistered when its client left"
        );
        drop(controller);
        rows
    });
    println!("\n{n} idle SSE streams; live heap (server + client, this process):");
    println!(
        "| round | plain axum B/stream | behind DrainLayer B/stream | wsdrain adds (target <= 256) | a do-nothing body-wrapping layer adds | DrainLayer adds beyond that |"
    );
    println!("|---|---|---|---|---|---|");
    let nf = n as f64;
    for &(round, r, g, w) in &rows {
        println!(
            "| {round} | {:.0} | {:.0} | {:.1} | {:.1} | {:.1} |",
            r as f64 / nf,
            g as f64 / nf,
            (g - r) as f64 / nf,
            (w - r) as f64 / nf,
            (g - w) as f64 / nf
        );
    }
    if support::gate_mode() {
        let worst = rows
            .iter()
            .map(|&(_, r, g, _)| (g - r) as f64 / nf)
            .fold(f64::MIN, f64::max);
        support::gate_exit(&[support::gate("heap_bytes_per_sse_stream", worst, CEILING)]);
    }
}
