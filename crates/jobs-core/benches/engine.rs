//! Engine benchmarks on `MemoryStore`: no-op job throughput and submit→start latency.
//! `cargo bench -p jobs-core --bench engine`; figures are recorded in docs/benchmarks.md.
#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use jobs_core::{
    Job, JobContext, JobError, JobResult, ManagerConfig, MemoryStore, NewJob, QueueManager, lanes,
};
use serde_json::Value;
use tokio::sync::{Notify, mpsc};

struct Counter {
    done: AtomicUsize,
    notify: Notify,
}

fn noop_manager(permits: usize, counter: Arc<Counter>) -> QueueManager {
    let m = QueueManager::new(
        Arc::new(MemoryStore::new()),
        ManagerConfig::default().lane(lanes::IO, permits),
    );
    m.register_handler("noop", lanes::IO, move |_j: Job, _c: JobContext| {
        let counter = counter.clone();
        async move {
            counter.done.fetch_add(1, Ordering::SeqCst);
            counter.notify.notify_one();
            Ok::<_, JobError>(JobResult::empty())
        }
    });
    m
}

fn throughput(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("noop_throughput");
    group.sample_size(10);
    const N: usize = 1000;
    group.throughput(Throughput::Elements(N as u64));
    for permits in [1usize, 4, 16] {
        group.bench_with_input(
            BenchmarkId::new("insert_then_drain", permits),
            &permits,
            |b, &permits| {
                let counter = Arc::new(Counter {
                    done: AtomicUsize::new(0),
                    notify: Notify::new(),
                });
                let m = rt.block_on(async {
                    let m = noop_manager(permits, counter.clone());
                    m.start().await.unwrap();
                    m
                });
                b.to_async(&rt).iter_custom(|iters| {
                    let m = &m;
                    let counter = counter.clone();
                    async move {
                        let mut total = Duration::ZERO;
                        for _ in 0..iters {
                            let start = counter.done.load(Ordering::SeqCst);
                            let t0 = Instant::now();
                            for _ in 0..N {
                                m.enqueue(NewJob::new("noop", Value::Null)).await.unwrap();
                            }
                            while counter.done.load(Ordering::SeqCst) < start + N {
                                counter.notify.notified().await;
                            }
                            total += t0.elapsed();
                        }
                        total
                    }
                });
                rt.block_on(m.stop()).unwrap();
            },
        );
    }
    group.finish();
}

fn latency(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (tx, rx) = mpsc::unbounded_channel::<Instant>();
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let m = QueueManager::new(Arc::new(MemoryStore::new()), ManagerConfig::default());
    m.register_handler("probe", lanes::IO, move |_j: Job, _c: JobContext| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(Instant::now());
            Ok::<_, JobError>(JobResult::empty())
        }
    });
    rt.block_on(m.start()).unwrap();
    c.bench_function("submit_to_start_latency", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let m = &m;
            let rx = rx.clone();
            async move {
                let mut rx = rx.lock().await;
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let t0 = Instant::now();
                    m.enqueue(NewJob::new("probe", Value::Null)).await.unwrap();
                    let started = rx.recv().await.unwrap();
                    total += started.duration_since(t0);
                }
                total
            }
        });
    });
    rt.block_on(m.stop()).unwrap();
}

criterion_group!(benches, throughput, latency);
criterion_main!(benches);
