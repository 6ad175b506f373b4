//! A strict lane (the default for `heavy`) keeps a job's permit until its outcome is written:
//! what the store shows never has more running jobs of the lane on a node than permits, so a
//! job's `finished_at` is never after the next one's `started_at`.

#![allow(clippy::unwrap_used)] // tests may unwrap

use std::sync::Arc;
use std::time::Duration;

use jobs_core::{
    Job, JobContext, JobError, JobResult, ManagerConfig, MemoryStore, NewJob, QueueManager, lanes,
};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heavy_jobs_never_overlap_in_the_store() {
    let store = Arc::new(MemoryStore::new());
    let config = ManagerConfig::default().lane(lanes::HEAVY, 1);
    assert!(
        config.strict_lanes.iter().any(|l| l == lanes::HEAVY),
        "heavy is strict by default"
    );
    let m = QueueManager::new(store, config);
    m.register_handler(
        "work",
        lanes::HEAVY,
        |_job: Job, _ctx: JobContext| async move {
            tokio::time::sleep(Duration::from_millis(3)).await;
            Ok::<_, JobError>(JobResult(json!({})))
        },
    );
    m.start().await.unwrap();
    let jobs = m
        .enqueue_many((0..40).map(|_| NewJob::new("work", json!({}))).collect())
        .await
        .unwrap();
    let mut done = Vec::new();
    for j in &jobs {
        done.push(m.wait_for(j.id).await.unwrap());
    }
    done.sort_by_key(|j| j.started_at);
    for w in done.windows(2) {
        assert!(
            w[0].finished_at.unwrap() <= w[1].started_at.unwrap(),
            "{} finished at {:?}, after {} started at {:?}",
            w[0].id,
            w[0].finished_at,
            w[1].id,
            w[1].started_at
        );
    }
    m.stop().await.unwrap();
}
