//! The session registry and the close schedule, through the public API.
//!
//! Run with `cargo bench -p wsdrain-benches --bench registry`.
//!
//! * `register_unregister`: `drain.register_session().expect("registered")` and dropping the guard,
//!   on one thread, and on two threads at once (the lock contended), with
//!   10,000 other sessions live;
//! * `close_schedule/fire_100k_window0`: 100,000 registered sessions, window
//!   0: from `begin()` until every guard's `turn()` is `Some`.

use std::{
    hint::black_box,
    sync::{Arc, Barrier},
    time::{Duration, Instant},
};

use criterion::{Criterion, Throughput};
use tokio::runtime::Runtime;
use wsdrain::{DrainController, DrainPolicy};

const SCHEDULED: usize = 100_000;
const LIVE_BESIDE: usize = 10_000;

fn window0() -> DrainPolicy {
    DrainPolicy::builder()
        .drain_delay(Duration::ZERO)
        .close_window(Duration::ZERO)
        .build()
        .expect("policy")
}

fn register_unregister(c: &mut Criterion) {
    let controller = DrainController::new(DrainPolicy::default());
    let drain = controller.drain();
    let _live: Vec<_> = (0..LIVE_BESIDE)
        .map(|_| drain.register_session().expect("registered"))
        .collect();
    let mut group = c.benchmark_group("register_unregister");
    group.throughput(Throughput::Elements(1));
    group.bench_function("1_thread", |b| {
        b.iter(|| drop(black_box(drain.register_session().expect("registered"))));
    });
    // Each iteration is one register+drop on each of two threads at once.
    group.throughput(Throughput::Elements(2));
    group.bench_function("2_threads", |b| {
        b.iter_custom(|iters| {
            let barrier = Barrier::new(2);
            let start = std::thread::scope(|s| {
                let worker = s.spawn(|| {
                    barrier.wait();
                    for _ in 0..iters {
                        drop(black_box(drain.register_session().expect("registered")));
                    }
                });
                barrier.wait();
                let start = Instant::now();
                for _ in 0..iters {
                    drop(black_box(drain.register_session().expect("registered")));
                }
                worker.join().expect("worker");
                start
            });
            start.elapsed()
        });
    });
    group.finish();
}

fn close_schedule(c: &mut Criterion, rt: &Runtime) {
    let mut group = c.benchmark_group("close_schedule");
    group.sample_size(10);
    group.throughput(Throughput::Elements(SCHEDULED as u64));
    group.bench_function("fire_100k_window0", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let controller = Arc::new(DrainController::new(window0()));
                let drain = controller.drain();
                let guards: Vec<_> = (0..SCHEDULED)
                    .map(|_| drain.register_session().expect("registered"))
                    .collect();
                let run = rt.spawn({
                    let controller = controller.clone();
                    async move { controller.run().await }
                });
                let start = Instant::now();
                controller.begin();
                let mut next = 0;
                while next < guards.len() {
                    if guards[next].turn().is_some() {
                        next += 1;
                    } else {
                        std::hint::spin_loop();
                    }
                }
                total += start.elapsed();
                drop(guards);
                let report = rt.block_on(run).expect("run");
                assert_eq!(report.sessions_at_closing, SCHEDULED);
            }
            total
        });
    });
    group.finish();
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    register_unregister(&mut c);
    close_schedule(&mut c, &rt);
    c.final_summary();
}
