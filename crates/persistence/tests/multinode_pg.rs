//! Several queue managers (separate pools) on one PostgreSQL database.
#![allow(clippy::unwrap_used)]
mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jobs_core::{
    Job, JobContext, JobError, JobResult, JobStatus, JobStore, ManagerConfig, NewJob, Outcome,
    QueueManager, lanes,
};
use mediajobs_persistence::{ConnectOptions, Database};
use serde_json::json;
use uuid::Uuid;

#[derive(Default)]
struct Ledger {
    starts: HashMap<Uuid, Vec<String>>,
    finishes: HashMap<Uuid, Vec<String>>,
}

fn register(m: &QueueManager, ledger: &Arc<Mutex<Ledger>>, ms: u64) {
    let ledger = ledger.clone();
    m.register_handler("record", lanes::IO, move |job: Job, ctx: JobContext| {
        let ledger = ledger.clone();
        async move {
            ledger
                .lock()
                .unwrap()
                .starts
                .entry(job.id)
                .or_default()
                .push(ctx.node_id().to_owned());
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(ms)) => {}
                _ = ctx.cancelled() => return Err(JobError::cancelled()),
            }
            ledger
                .lock()
                .unwrap()
                .finishes
                .entry(job.id)
                .or_default()
                .push(ctx.node_id().to_owned());
            Ok(JobResult(json!({ "node": ctx.node_id() })))
        }
    });
}

fn config(node: &str) -> ManagerConfig {
    ManagerConfig::default()
        .node_id(node)
        .lane(lanes::IO, 4)
        .lease(Duration::from_secs(3))
        .poll_interval(Duration::from_millis(500))
}

async fn node(url: &str, name: &str, ledger: &Arc<Mutex<Ledger>>, ms: u64) -> QueueManager {
    let db = Database::connect(url, ConnectOptions::default())
        .await
        .unwrap();
    let m = QueueManager::new(Arc::new(db), config(name));
    register(&m, ledger, ms);
    m.start().await.unwrap();
    m
}

async fn wait_all_done(store: &Database, ids: &[Uuid], limit: Duration) {
    let t0 = Instant::now();
    loop {
        let unfinished = store.list_unfinished().await.unwrap();
        if unfinished.is_empty() {
            break;
        }
        assert!(
            t0.elapsed() < limit,
            "{} jobs unfinished after {limit:?}",
            unfinished.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for id in ids {
        let j = store.get_job(*id).await.unwrap().unwrap();
        assert_eq!(j.status, JobStatus::Succeeded, "{j:?}");
    }
}

/// 500 jobs on three nodes: each runs exactly once, and every node takes a share.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_run_each_job_exactly_once() {
    let (url, name) = common::create_pg_db().await;
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut nodes = Vec::new();
    for n in ["a", "b", "c"] {
        nodes.push(node(&url, n, &ledger, 5).await);
    }
    let submitter = Database::connect(&url, ConnectOptions::default())
        .await
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..500 {
        // Round-robin through the nodes, as a load balancer would.
        let j = nodes[i % 3]
            .enqueue(NewJob::new("record", json!({ "i": i })))
            .await
            .unwrap();
        ids.push(j.id);
    }
    wait_all_done(&submitter, &ids, Duration::from_secs(120)).await;
    {
        let l = ledger.lock().unwrap();
        let mut per_node: HashMap<String, usize> = HashMap::new();
        for id in &ids {
            let starts = &l.starts[id];
            assert_eq!(starts.len(), 1, "job {id} ran {} times", starts.len());
            assert_eq!(l.finishes[id].len(), 1);
            *per_node.entry(starts[0].clone()).or_default() += 1;
        }
        assert_eq!(per_node.len(), 3, "every node took jobs: {per_node:?}");
    }
    for n in nodes {
        n.stop().await.unwrap();
    }
    drop(submitter);
    common::drop_pg_db(&name).await;
}

/// A node dropped mid-job (a crash): the others recover its leased jobs within the lease time,
/// each finishes exactly once, and the dead node's late completion is rejected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashed_node_jobs_are_recovered_and_fenced() {
    let (url, name) = common::create_pg_db().await;
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let store = Database::connect(&url, ConnectOptions::default())
        .await
        .unwrap();
    // The victim starts first and alone, so it holds leases when it dies.
    let victim = node(&url, "victim", &ledger, 60_000).await;
    let mut ids = Vec::new();
    for i in 0..40 {
        ids.push(
            victim
                .enqueue(NewJob::new("record", json!({ "i": i })))
                .await
                .unwrap()
                .id,
        );
    }
    let t0 = Instant::now();
    let held: Vec<Job> = loop {
        let running: Vec<Job> = store
            .list_unfinished()
            .await
            .unwrap()
            .into_iter()
            .filter(|j| j.status == JobStatus::Running)
            .collect();
        if running.len() == 4 {
            break running;
        }
        assert!(t0.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        held.iter()
            .all(|j| j.lease_owner.as_deref() == Some("victim"))
    );
    drop(victim); // crash: no stop(), leases stay
    let crashed_at = Instant::now();

    let a = node(&url, "a", &ledger, 20).await;
    let b = node(&url, "b", &ledger, 20).await;
    wait_all_done(&store, &ids, Duration::from_secs(60)).await;
    let recovered_in = crashed_at.elapsed();
    // Lease 3 s + reaper every 1.5 s (+ scheduling slack).
    assert!(
        recovered_in < Duration::from_secs(10),
        "took {recovered_in:?}"
    );

    {
        let l = ledger.lock().unwrap();
        for id in &ids {
            assert_eq!(
                l.finishes[id].len(),
                1,
                "job {id} finished {:?}",
                l.finishes[id]
            );
            assert_ne!(l.finishes[id][0], "victim");
        }
        for j in &held {
            assert_eq!(
                l.starts[&j.id].len(),
                2,
                "started on the victim, then once more"
            );
        }
    }
    // The victim's late completion, simulated with its old fence, changes nothing.
    for j in &held {
        let stale = j.fence().unwrap();
        let late = store
            .complete_job(&stale, Outcome::Failed(JobError::new("Late", "late")), 1)
            .await
            .unwrap();
        assert!(late.is_none());
        let now = store.get_job(j.id).await.unwrap().unwrap();
        assert_eq!(now.status, JobStatus::Succeeded);
        assert_eq!(now.attempts, 2);
    }
    a.stop().await.unwrap();
    b.stop().await.unwrap();
    drop(store);
    common::drop_pg_db(&name).await;
}

/// Retention on a shared PostgreSQL: while another node holds the pruning lock, a node's
/// pass prunes nothing (it does not wait); once released, one pass prunes everything due, and
/// concurrent passes never prune a job twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_prunes_at_a_time() {
    use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
    let (url, name) = common::create_pg_db().await;
    let a = Database::connect(&url, ConnectOptions::default())
        .await
        .unwrap();
    let b = Database::connect(&url, ConnectOptions::default())
        .await
        .unwrap();
    let mut ids = Vec::new();
    for _ in 0..30 {
        let j = a.insert_job(NewJob::new("p", json!({}))).await.unwrap();
        a.request_cancel(j.id).await.unwrap();
        ids.push(j.id);
    }
    let cut = chrono::Utc::now() + chrono::TimeDelta::seconds(1);
    // Another node's pass, in flight: it holds the transaction-scoped lock.
    let mut other = AsyncPgConnection::establish(&url).await.unwrap();
    other
        .batch_execute("BEGIN; SELECT pg_advisory_xact_lock(7244320862);")
        .await
        .unwrap();
    assert!(
        a.prune_finished(cut, 100).await.unwrap().is_empty(),
        "skips while held"
    );
    other.batch_execute("COMMIT").await.unwrap();
    let (x, y) = tokio::join!(a.prune_finished(cut, 100), b.prune_finished(cut, 100));
    let mut pruned: Vec<Uuid> = x
        .unwrap()
        .into_iter()
        .chain(y.unwrap())
        .map(|j| j.id)
        .collect();
    pruned.sort();
    // Each job pruned exactly once, by whichever pass held the lock.
    let mut want = ids.clone();
    want.sort();
    assert_eq!(pruned, want);
    for id in &ids {
        assert!(a.get_job(*id).await.unwrap().is_none());
    }
    drop((a, b, other));
    common::drop_pg_db(&name).await;
}
