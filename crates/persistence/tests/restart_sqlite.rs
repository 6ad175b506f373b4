//! A SQLite-backed manager killed mid-run and restarted on the same file.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use jobs_core::{
    InterruptPolicy, Job, JobContext, JobResult, JobStatus, JobStore, ManagerConfig, NewJob,
    QueueManager, lanes,
};
use mediajobs_persistence::{ConnectOptions, Database};
use serde_json::json;

fn config(policy: InterruptPolicy) -> ManagerConfig {
    ManagerConfig::default()
        .node_id("local")
        .interrupt_policy(policy)
        .poll_interval(Duration::from_millis(200))
}

async fn crash_mid_run(url: &str, policy: InterruptPolicy) -> (Vec<uuid::Uuid>, uuid::Uuid) {
    let db = Database::connect(url, ConnectOptions::default())
        .await
        .unwrap();
    let m = QueueManager::new(Arc::new(db.clone()), config(policy));
    m.register_handler("work", lanes::HEAVY, |_j: Job, _c: JobContext| async {
        futures::future::pending::<()>().await;
        Ok(JobResult::empty())
    });
    m.start().await.unwrap();
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(
            m.enqueue(NewJob::new("work", json!({ "i": i })))
                .await
                .unwrap()
                .id,
        );
    }
    let running = loop {
        let r = db
            .list_unfinished()
            .await
            .unwrap()
            .into_iter()
            .find(|j| j.status == JobStatus::Running);
        if let Some(r) = r {
            break r.id;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    drop(m); // killed: no stop()
    drop(db);
    (ids, running)
}

async fn restart(url: &str, policy: InterruptPolicy) -> (Database, QueueManager) {
    let db = Database::connect(url, ConnectOptions::default())
        .await
        .unwrap();
    let m = QueueManager::new(Arc::new(db.clone()), config(policy));
    m.register_handler("work", lanes::HEAVY, |j: Job, _c: JobContext| async move {
        Ok(JobResult(json!({ "i": j.params["i"] })))
    });
    (db, m)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_with_retry_policy_reruns_everything() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("jobs.db").display());
    let (ids, running) = crash_mid_run(&url, InterruptPolicy::Retry).await;
    let (db, m) = restart(&url, InterruptPolicy::Retry).await;
    let report = m.start().await.unwrap();
    assert_eq!(report.requeued, vec![running]);
    for id in &ids {
        let j = m.wait_for(*id).await.unwrap();
        assert_eq!(j.status, JobStatus::Succeeded);
    }
    assert_eq!(db.get_job(running).await.unwrap().unwrap().attempts, 2);
    m.stop().await.unwrap();
    assert!(db.list_unfinished().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_with_fail_policy_fails_the_interrupted_job_only() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("jobs.db").display());
    let (ids, running) = crash_mid_run(&url, InterruptPolicy::Fail).await;
    let (db, m) = restart(&url, InterruptPolicy::Fail).await;
    let report = m.start().await.unwrap();
    assert_eq!(report.failed, vec![running]);
    for id in &ids {
        let j = m.wait_for(*id).await.unwrap();
        if *id == running {
            assert_eq!(j.status, JobStatus::Failed);
            assert_eq!(j.error_code.as_deref(), Some("Interrupted"));
            assert_eq!(j.error.as_deref(), Some("Interrupted By A Server Restart"));
        } else {
            assert_eq!(j.status, JobStatus::Succeeded, "queued jobs still run");
        }
    }
    m.stop().await.unwrap();
    let left: Vec<Job> = db.list_unfinished().await.unwrap();
    assert!(left.is_empty(), "nothing stays running: {left:?}");
}
