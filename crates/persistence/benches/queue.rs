//! Queue throughput and latency on SQLite and PostgreSQL.
//!
//! ```text
//! cargo bench -p mediajobs-persistence --bench queue -- [--jobs N] [--backend sqlite|pg|pg-async|all] [--mix]
//! ```
//!
//! `--mix` gives the jobs priorities (0–3, round robin) and delays every tenth one by 20 ms
//! (`run_at`), so the claim orders by priority and skips jobs that are not due yet
//! (`MIX_KIND=priorities` or `MIX_KIND=delays` for one of the two).
//!
//! For each backend and 1 / 4 / 16 workers (io-lane permits of one node):
//! - insert N no-op jobs, then drain them (jobs/s for each phase);
//! - steady submit: 4 client tasks submit N jobs as fast as they can while the node drains
//!   (end-to-end jobs/s);
//! - submit→start latency of one job at a time (p50 / p99).
//!
//! `pg` runs with the server's defaults (`synchronous_commit = on`: durable commits);
//! `pg-async` sets `synchronous_commit = off` on the benchmark database for comparison.
#![allow(clippy::unwrap_used, missing_docs)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use jobs_core::{Job, JobContext, JobError, JobResult, ManagerConfig, NewJob, QueueManager, lanes};
use mediajobs_persistence::{ConnectOptions, Database};
use serde_json::Value;
use tokio::sync::{Notify, mpsc};

struct Probe {
    done: AtomicUsize,
    notify: Notify,
    started: mpsc::UnboundedSender<Instant>,
}

fn manager(db: &Database, workers: usize, probe: Arc<Probe>) -> QueueManager {
    let m = QueueManager::new(
        Arc::new(db.clone()),
        ManagerConfig::default()
            .node_id("bench")
            .lane(lanes::IO, workers)
            .poll_interval(Duration::from_millis(500)),
    );
    m.register_handler("noop", lanes::IO, move |_j: Job, _c: JobContext| {
        let probe = probe.clone();
        async move {
            let _ = probe.started.send(Instant::now());
            probe.done.fetch_add(1, Ordering::SeqCst);
            probe.notify.notify_one();
            Ok::<_, JobError>(JobResult::empty())
        }
    });
    m
}

async fn wait_done(probe: &Probe, target: usize) {
    while probe.done.load(Ordering::SeqCst) < target {
        let _ = tokio::time::timeout(Duration::from_millis(50), probe.notify.notified()).await;
    }
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// The `i`-th job of a phase: plain, or with `--mix` a priority and sometimes a delay.
fn job(i: usize, mix: bool) -> NewJob {
    let j = NewJob::new("noop", Value::Null);
    if !mix {
        return j;
    }
    let kind = std::env::var("MIX_KIND").unwrap_or_default();
    let j = if kind == "delays" {
        j
    } else {
        j.priority((i % 4) as i16)
    };
    if kind != "priorities" && i.is_multiple_of(10) {
        j.delay(Duration::from_millis(20))
    } else {
        j
    }
}

static MIX: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn nj(i: usize) -> NewJob {
    job(i, MIX.load(Ordering::Relaxed))
}

async fn run(label: &str, db: &Database, jobs: usize) {
    for workers in [1usize, 4, 16] {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let probe = Arc::new(Probe {
            done: AtomicUsize::new(0),
            notify: Notify::new(),
            started: tx,
        });
        let m = manager(db, workers, probe.clone());

        // 1. Insert N, then drain.
        let t0 = Instant::now();
        for i in 0..jobs {
            m.enqueue(nj(i)).await.unwrap();
        }
        let insert = t0.elapsed();
        let t1 = Instant::now();
        m.start().await.unwrap();
        wait_done(&probe, jobs).await;
        let drain = t1.elapsed();

        // 2. Steady submit from 4 clients while draining.
        let base = probe.done.load(Ordering::SeqCst);
        let m = Arc::new(m);
        let t2 = Instant::now();
        let mut clients = Vec::new();
        for c in 0..4 {
            let m = m.clone();
            let n = jobs / 4 + usize::from(c < jobs % 4);
            clients.push(tokio::spawn(async move {
                for i in 0..n {
                    m.enqueue(nj(i)).await.unwrap();
                }
            }));
        }
        for c in clients {
            c.await.unwrap();
        }
        wait_done(&probe, base + jobs).await;
        let steady = t2.elapsed();

        // 3. Latency, one job at a time.
        while rx.try_recv().is_ok() {}
        let mut lat = Vec::new();
        for _ in 0..200 {
            let t = Instant::now();
            m.enqueue(NewJob::new("noop", Value::Null)).await.unwrap();
            let started = rx.recv().await.unwrap();
            lat.push(started.duration_since(t));
        }
        lat.sort();
        m.stop().await.unwrap();
        let rate = |d: Duration| jobs as f64 / d.as_secs_f64();
        println!(
            "| {label} | {workers} | {:.0} | {:.0} | {:.0} | {:.2} | {:.2} |",
            rate(insert),
            rate(drain),
            rate(steady),
            pct(&lat, 0.5).as_secs_f64() * 1000.0,
            pct(&lat, 0.99).as_secs_f64() * 1000.0,
        );
    }
}

async fn pg(jobs: usize, async_commit: bool) {
    let (url, name) = common::create_pg_db().await;
    if async_commit {
        let mut c = AsyncPgConnection::establish(&common::pg_admin_url())
            .await
            .unwrap();
        c.batch_execute(&format!(
            "ALTER DATABASE {name} SET synchronous_commit = off"
        ))
        .await
        .unwrap();
    }
    let db = Database::connect(&url, ConnectOptions::default())
        .await
        .unwrap();
    let label = if async_commit {
        "PostgreSQL, synchronous_commit=off"
    } else {
        "PostgreSQL, synchronous_commit=on"
    };
    run(label, &db, jobs).await;
    drop(db);
    common::drop_pg_db(&name).await;
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let jobs: usize = arg("--jobs").and_then(|v| v.parse().ok()).unwrap_or(2000);
    let backend = arg("--backend").unwrap_or_else(|| "all".into());
    MIX.store(args.iter().any(|a| a == "--mix"), Ordering::Relaxed);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        println!(
            "jobs per phase: {jobs}{}",
            if MIX.load(Ordering::Relaxed) {
                " (mix: priorities 0-3, every 10th job delayed 20 ms)"
            } else {
                ""
            }
        );
        println!("| backend | workers | insert jobs/s | drain jobs/s | steady submit jobs/s | submit→start p50 ms | p99 ms |");
        println!("|---|---|---|---|---|---|---|");
        if backend == "all" || backend == "sqlite" {
            let (db, _dir) = common::sqlite_database().await;
            run("SQLite (WAL, synchronous=NORMAL)", &db, jobs).await;
        }
        if backend == "all" || backend == "pg" {
            pg(jobs, false).await;
        }
        if backend == "all" || backend == "pg-async" {
            pg(jobs, true).await;
        }
    });
}
