//! `queue-bench`: the driver of the shared queue bake-off (`shared/bakeoff/README.md`) for
//! mediajobs, over what an embedding user gets — `QueueManager` on the PostgreSQL (or SQLite)
//! store, a no-op handler in the `io` lane with `C` permits.
//!
//! Environment (the harness's contract): `DATABASE_URL` (a fresh empty database; the store
//! migrates it), `N` jobs, `C` concurrency, `MODE` (`burn` or `latency`), `RATE` (latency
//! submissions per second), `TIMEOUT_S`. Prints one line:
//! `jobs_per_s=… p50_ms=… p95_ms=… p99_ms=… [timeout=1] pending_after=… enqueue_s=…`.
//!
//! - `burn`: bulk-insert N jobs (`QueueManager::enqueue_many`, untimed), start the manager and
//!   time until the N-th handler has returned; then stop it and count unfinished jobs.
//! - `latency`: start the manager, idle 1 s, then submit N jobs one at a time at `RATE`/s, each
//!   carrying the wall-clock time taken just before the submit; the handler records now − ts.
//!
//! Runs on tokio's default runtime (a worker thread per core, as the server does);
//! `QB_THREADS=n` sets the number of worker threads.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use jobs_core::{Job, JobContext, JobError, JobResult, ManagerConfig, NewJob, QueueManager, lanes};
use mediajobs_persistence::{ConnectOptions, Database};
use tokio::sync::{Mutex, Notify};

struct Probe {
    done: AtomicUsize,
    notify: Notify,
    last_done: Mutex<Option<Instant>>,
    target: usize,
    latencies_us: Mutex<Vec<u64>>,
}

fn env<T: std::str::FromStr>(name: &str, default: Option<T>) -> Result<T> {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .ok()
            .with_context(|| format!("{name}={v} is not valid")),
        Err(_) => default.with_context(|| format!("{name} is not set")),
    }
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

fn manager(db: &Database, c: usize, probe: Arc<Probe>) -> QueueManager {
    let m = QueueManager::new(
        Arc::new(db.clone()),
        ManagerConfig::default()
            .node_id("queue-bench")
            .lane(lanes::IO, c),
    );
    m.register_handler("noop", lanes::IO, move |job: Job, _ctx: JobContext| {
        let probe = probe.clone();
        async move {
            if let Some(ts) = job.params.get("ts").and_then(|v| v.as_u64()) {
                let lat = now_us().saturating_sub(ts);

                probe.latencies_us.lock().await.push(lat);
            }
            let n = probe.done.fetch_add(1, Ordering::SeqCst) + 1;
            if n == probe.target {
                *probe.last_done.lock().await = Some(Instant::now());
                probe.notify.notify_one();
            }
            Ok::<_, JobError>(JobResult::empty())
        }
    });
    m
}

/// Nearest-rank percentile of a sorted sample, in ms.
fn pct_ms(sorted: &[u64], p: f64) -> String {
    if sorted.is_empty() {
        return "nan".into();
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    let v = sorted[rank.clamp(1, sorted.len()) - 1];
    format!("{:.3}", v as f64 / 1000.0)
}

async fn wait_target(probe: &Probe, deadline: Instant) -> bool {
    loop {
        let notified = probe.notify.notified();
        if probe.done.load(Ordering::SeqCst) >= probe.target {
            return true;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        let _ = tokio::time::timeout(left.min(Duration::from_millis(100)), notified).await;
    }
}

async fn run() -> Result<()> {
    let url: String = env("DATABASE_URL", None)?;
    let n: usize = env("N", Some(10_000))?;
    let c: usize = env("C", Some(8))?;
    let mode: String = env("MODE", Some("burn".to_owned()))?;
    let rate: f64 = env("RATE", Some(100.0))?;
    let timeout_s: u64 = env("TIMEOUT_S", Some(300))?;
    let deadline = Instant::now() + Duration::from_secs(timeout_s);
    let db = Database::connect(
        &url,
        ConnectOptions {
            pg_pool_size: (c + 2).max(10),
            ..ConnectOptions::default()
        },
    )
    .await
    .context("connect")?;
    let probe = Arc::new(Probe {
        done: AtomicUsize::new(0),
        notify: Notify::new(),
        last_done: Mutex::new(None),
        target: n,
        latencies_us: Mutex::new(Vec::with_capacity(n)),
    });
    let m = manager(&db, c, probe.clone());
    let (jobs_per_s, enqueue_s, finished) = match mode.as_str() {
        "burn" => {
            let t0 = Instant::now();
            let jobs: Vec<NewJob> = (0..n)
                .map(|_| NewJob::new("noop", serde_json::Value::Null))
                .collect();
            m.enqueue_many(jobs).await.context("bulk insert")?;
            let enqueue_s = t0.elapsed().as_secs_f64();
            let t1 = Instant::now();
            m.start().await.context("start")?;
            let finished = wait_target(&probe, deadline).await;
            let end = probe.last_done.lock().await.unwrap_or_else(Instant::now);
            let done = probe.done.load(Ordering::SeqCst);
            (
                done as f64 / end.duration_since(t1).as_secs_f64(),
                Some(enqueue_s),
                finished,
            )
        }
        "latency" => {
            m.start().await.context("start")?;
            tokio::time::sleep(Duration::from_secs(1)).await;
            let period = Duration::from_secs_f64(1.0 / rate.max(0.001));
            let t0 = Instant::now();
            let mut finished = true;
            for i in 0..n {
                let at = t0 + period.mul_f64(i as f64);
                if at > deadline {
                    finished = false;
                    break;
                }
                tokio::time::sleep_until(at.into()).await;
                let ts = now_us();
                m.enqueue(NewJob::new("noop", serde_json::json!({ "ts": ts })))
                    .await
                    .context("submit")?;
            }
            let finished = finished && wait_target(&probe, deadline).await;
            let end = probe.last_done.lock().await.unwrap_or_else(Instant::now);
            let done = probe.done.load(Ordering::SeqCst);
            (
                done as f64 / end.duration_since(t0).as_secs_f64(),
                None,
                finished,
            )
        }
        other => bail!("MODE={other}: expected burn or latency"),
    };
    m.stop().await.context("stop")?;
    let pending_after = m.store().list_unfinished().await.context("count")?.len();
    let mut lat = std::mem::take(&mut *probe.latencies_us.lock().await);
    lat.sort_unstable();
    let mut line = format!(
        "jobs_per_s={jobs_per_s:.1} p50_ms={} p95_ms={} p99_ms={}",
        pct_ms(&lat, 50.0),
        pct_ms(&lat, 95.0),
        pct_ms(&lat, 99.0)
    );
    if !finished {
        line.push_str(" timeout=1");
    }
    line.push_str(&format!(" pending_after={pending_after}"));
    if let Some(e) = enqueue_s {
        line.push_str(&format!(" enqueue_s={e:.2}"));
    }
    println!("{line}");
    Ok(())
}

fn main() -> Result<()> {
    // tokio's default runtime (a worker thread per core), as the server runs, unless
    // QB_THREADS says otherwise.
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = std::env::var("QB_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        rt.worker_threads(n.max(1));
    }
    let rt = rt.enable_all().build()?;
    rt.block_on(run())
}
