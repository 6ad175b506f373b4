//! PostgreSQL connections killed under load: the pool reconnects, the NOTIFY listener
//! re-subscribes and re-polls, and no job is lost.
#![allow(clippy::unwrap_used)]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use jobs_core::{
    Job, JobContext, JobResult, JobStatus, JobStore, ManagerConfig, NewJob, QueueManager,
    StoreSignal, lanes,
};
use mediajobs_persistence::{ConnectOptions, Database};
use serde_json::json;

async fn kill_connections(db_name: &str) -> usize {
    let mut admin = AsyncPgConnection::establish(&common::pg_admin_url())
        .await
        .unwrap();
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    use diesel_async::RunQueryDsl;
    let n: N = diesel::sql_query(format!(
        "SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity \
         WHERE datname = '{db_name}' AND pid <> pg_backend_pid()"
    ))
    .get_result(&mut admin)
    .await
    .unwrap();
    admin.batch_execute("SELECT 1").await.unwrap();
    n.n as usize
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_connections_lose_no_job() {
    let (url, name) = common::create_pg_db().await;
    let db = Database::connect(&url, ConnectOptions::default())
        .await
        .unwrap();
    // A long fallback poll: wake-ups must come through NOTIFY (or the resync after a reconnect).
    let m = QueueManager::new(
        Arc::new(db.clone()),
        ManagerConfig::default()
            .node_id("n1")
            .lane(lanes::IO, 4)
            .poll_interval(Duration::from_secs(60)),
    );
    let done = Arc::new(AtomicUsize::new(0));
    {
        let done = done.clone();
        m.register_handler("work", lanes::IO, move |_j: Job, ctx: JobContext| {
            let done = done.clone();
            async move {
                for i in 0..4 {
                    ctx.progress(i as f64 / 4.0, "working");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                done.fetch_add(1, Ordering::SeqCst);
                Ok(JobResult::empty())
            }
        });
    }
    let mut signals = db.subscribe_signals().unwrap();
    m.start().await.unwrap();
    let mut ids = Vec::new();
    for i in 0..200 {
        ids.push(
            m.enqueue(NewJob::new("work", json!({ "i": i })))
                .await
                .unwrap()
                .id,
        );
    }
    let mut killed = 0;
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        killed += kill_connections(&name).await;
    }
    assert!(killed >= 6, "killed {killed} connections");

    // The listener reconnected and announced a resync.
    let t0 = Instant::now();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), signals.recv()).await {
            Ok(Ok(StoreSignal::Resync)) => break,
            Ok(_) => {}
            Err(_) => panic!("no resync after the listener's connection was killed"),
        }
        assert!(t0.elapsed() < Duration::from_secs(10));
    }

    // Every job finishes.
    let t0 = Instant::now();
    for id in &ids {
        let left = Duration::from_secs(90).saturating_sub(t0.elapsed());
        let j = tokio::time::timeout(left, m.wait_for(*id))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(j.status, JobStatus::Succeeded, "{j:?}");
    }

    // Cross-node wake-ups still arrive through the re-subscribed listener: a job inserted by
    // another process (no local wake-up, 60 s poll) starts within a second or two.
    let other = Database::connect(&url, ConnectOptions::default())
        .await
        .unwrap();
    let t0 = Instant::now();
    let j = other
        .insert_job(NewJob::new("work", json!({})).lane(lanes::IO))
        .await
        .unwrap();
    let j = tokio::time::timeout(Duration::from_secs(10), m.wait_for(j.id))
        .await
        .expect("woken by NOTIFY")
        .unwrap();
    assert_eq!(j.status, JobStatus::Succeeded);
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t0.elapsed()
    );

    m.stop().await.unwrap();
    drop((db, other));
    common::drop_pg_db(&name).await;
}
