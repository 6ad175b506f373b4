//! The conformance cases. Each takes a fresh store and panics on failure. The cases live in one
//! file per theme; the helpers they share are here.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use uuid::Uuid;

use super::{BoxFut, CountingStore, RunTracker, test_config};
use crate::{
    BatchResult, BatchStrategy, Fence, InterruptPolicy, Job, JobContext, JobError, JobEventKind,
    JobFilter, JobResult, JobStatus, JobStore, ManagerConfig, ManagerError, NewJob, Outcome,
    ProgressUpdate, QueueManager, StoreError, codes, lanes,
};

mod batch;
mod manager;
mod schedule;
mod store_claims;
mod store_lifecycle;

pub use batch::*;
pub use manager::*;
pub use schedule::*;
pub use store_claims::*;
pub use store_lifecycle::*;

const LEASE: Duration = Duration::from_secs(30);

crate::__conformance_case_list!(__conformance_case_table!());

fn nj(job_type: &str) -> NewJob {
    NewJob::new(job_type, json!({}))
}

fn nj_lane(job_type: &str, lane: &str) -> NewJob {
    NewJob::new(job_type, json!({})).lane(lane)
}

/// Polls the store until `pred` holds for the job (10 s at most).
pub async fn wait_until(
    store: &Arc<dyn JobStore>,
    id: Uuid,
    what: &str,
    pred: impl Fn(&Job) -> bool,
) -> Job {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(j) = store.get_job(id).await.unwrap() {
            if pred(&j) {
                return j;
            }
            assert!(
                Instant::now() < deadline,
                "job {id} never became {what}; last state {j:?}"
            );
        } else {
            assert!(Instant::now() < deadline, "job {id} never appeared");
        }
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
}

async fn wait_running(store: &Arc<dyn JobStore>, id: Uuid) -> Job {
    wait_until(store, id, "running", |j| j.status == JobStatus::Running).await
}

async fn wait_done(m: &QueueManager, id: Uuid) -> Job {
    tokio::time::timeout(Duration::from_secs(20), m.wait_for(id))
        .await
        .unwrap_or_else(|_| panic!("job {id} did not finish in 20 s"))
        .unwrap()
}

fn manager(store: &Arc<dyn JobStore>, cfg: ManagerConfig) -> QueueManager {
    QueueManager::new(store.clone(), cfg)
}

async fn ok_handler(job: Job, _ctx: JobContext) -> Result<JobResult, JobError> {
    Ok(JobResult(json!({ "echo": job.params })))
}

async fn wait_cancel(_job: Job, ctx: JobContext) -> Result<JobResult, JobError> {
    ctx.cancelled().await;
    Err(JobError::cancelled())
}

async fn claim_one(store: &Arc<dyn JobStore>, lane: &str, owner: &str) -> Job {
    store
        .claim_next(lane, owner, LEASE)
        .await
        .unwrap()
        .expect("a job to claim")
}

fn fence(j: &Job) -> Fence {
    j.fence().expect("running job has a fence")
}

async fn finish(store: &Arc<dyn JobStore>, id: Uuid, ok: bool) -> Job {
    let j = store.claim_job(id, "n1", LEASE).await.unwrap().unwrap();
    let out = if ok {
        Outcome::Succeeded(JobResult(json!({})))
    } else {
        Outcome::Failed(JobError::new("Boom", "boom"))
    };
    store
        .complete_job(&fence(&j), out, 1)
        .await
        .unwrap()
        .unwrap()
}

fn tracked(
    tracker: &Arc<RunTracker>,
    lane: &'static str,
    ms: u64,
) -> impl Fn(Job, JobContext) -> BoxFut<Result<JobResult, JobError>> + Send + Sync + 'static {
    let tracker = tracker.clone();
    move |job: Job, ctx: JobContext| {
        let tracker = tracker.clone();
        Box::pin(async move {
            let _g = tracker.enter(job.id, ctx.node_id(), lane);
            if job.params.get("fail").and_then(Value::as_bool) == Some(true) {
                return Err(JobError::new("Boom", "asked to fail"));
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(ms)) => {}
                _ = ctx.cancelled() => return Err(JobError::cancelled()),
            }
            Ok(JobResult(json!({"node": ctx.node_id()})))
        })
    }
}

async fn crash_mid_job(store: &Arc<dyn JobStore>, node: &str, job: NewJob) -> Uuid {
    let m = manager(store, test_config(node));
    m.register_handler(
        &job.job_type.clone(),
        lanes::HEAVY,
        |_j: Job, _c: JobContext| async {
            futures::future::pending::<()>().await;
            Ok(JobResult::empty())
        },
    );
    m.start().await.unwrap();
    let j = m.enqueue(job).await.unwrap();
    wait_running(store, j.id).await;
    drop(m); // crash: no stop()
    let after = store.get_job(j.id).await.unwrap().unwrap();
    assert_eq!(
        after.status,
        JobStatus::Running,
        "a crash leaves the job running"
    );
    j.id
}

fn child(fail: bool) -> NewJob {
    NewJob::new("child", json!({ "fail": fail }))
}
