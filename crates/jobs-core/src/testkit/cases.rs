//! The conformance cases. Each takes a fresh store and panics on failure.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use uuid::Uuid;

use super::{BoxFut, CaseFn, CountingStore, RunTracker, test_config};
use crate::{
    BatchResult, BatchStrategy, Fence, InterruptPolicy, Job, JobContext, JobError, JobEventKind,
    JobFilter, JobResult, JobStatus, JobStore, ManagerConfig, ManagerError, NewJob, Outcome,
    ProgressUpdate, QueueManager, StoreError, codes, lanes,
};

const LEASE: Duration = Duration::from_secs(30);

macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        /// Every case, by name.
        pub const ALL: &[(&str, CaseFn)] = &[
            $((stringify!($name), |s| -> BoxFut<()> { Box::pin($name(s)) })),*
        ];
    };
}

cases!(
    insert_and_get,
    claim_fifo_per_lane,
    claim_is_exclusive_under_concurrency,
    completion_is_fenced,
    cancel_queued_job,
    cancel_running_job_keeps_result,
    lease_renewal_reports_lost_and_cancelled,
    progress_write_is_fenced,
    interrupt_requeues_fails_or_cancels,
    fail_queued_only_touches_queued,
    batch_insert_and_claim_rules,
    cancel_parent_cascades_to_children,
    retry_rules,
    delete_rules,
    list_jobs_filters_and_pages,
    expired_leases_are_listed,
    manager_runs_job,
    unknown_type_fails,
    domain_and_unexpected_errors,
    submit_requires_start,
    heavy_lane_is_exclusive,
    io_job_not_blocked_by_heavy,
    cancel_running_stops_handler,
    cancel_during_finish_stays_cancelled,
    cancel_queued_never_runs,
    restart_requeues_interrupted_job,
    restart_fail_policy,
    restart_exhausted_attempts_fail,
    restart_runs_queued_fifo,
    restart_fails_orphan_children,
    stop_waits_for_quick_jobs,
    stop_cancels_after_grace_and_requeues,
    stop_abandons_stubborn_handler,
    reaper_recovers_dead_node,
    batch_sequential_counts,
    batch_all_failed_is_batch_failed,
    batch_children_share_heavy_lane,
    batch_bounded_concurrency,
    batch_cancel_parent,
    batch_retry_reruns_failed_children,
    batch_distributed_across_nodes,
    batch_interrupted_resumes_after_restart,
    batch_stop_with_fail_policy_leaves_no_queued_child,
    progress_store_writes_throttled,
    events_follow_lifecycle,
    retry_runs_again_with_attempts_kept,
    delete_active_conflicts,
);

// ---------------------------------------------------------------- helpers

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

// ---------------------------------------------------------------- store rules

/// Inserted jobs get the documented defaults; duplicate ids are a conflict. (File links need
/// a stored file in SQL stores; the persistence crate tests them.)
pub async fn insert_and_get(store: Arc<dyn JobStore>) {
    let j = store
        .insert_job(
            NewJob::new("transcribe", json!({"language": "en"}))
                .profile("alice")
                .lane(lanes::HEAVY)
                .max_attempts(5),
        )
        .await
        .unwrap();
    assert_eq!(j.status, JobStatus::Queued);
    assert_eq!(j.job_type, "transcribe");
    assert_eq!(j.lane, lanes::HEAVY);
    assert_eq!(j.profile_id.as_deref(), Some("alice"));
    assert_eq!(j.file_id, None);
    assert_eq!(j.params, json!({"language": "en"}));
    assert_eq!(
        (j.attempts, j.max_attempts, j.total, j.completed),
        (0, 5, 1, 0)
    );
    assert!(j.claimable && !j.cancel_requested && j.parent_id.is_none());
    assert!(j.result.is_none() && j.error.is_none() && j.lease_owner.is_none());
    let got = store.get_job(j.id).await.unwrap().unwrap();
    assert_eq!(got.id, j.id);
    assert_eq!(got.params, j.params);
    assert_eq!(
        got.created_at.timestamp_micros(),
        j.created_at.timestamp_micros()
    );

    let mut dup = nj("x");
    dup.id = j.id;
    assert!(matches!(
        store.insert_job(dup).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(store.get_job(Uuid::now_v7()).await.unwrap().is_none());

    let plain = store.insert_job(nj("y")).await.unwrap();
    assert_eq!(plain.lane, lanes::IO, "no lane means io");
    assert_eq!(plain.max_attempts, crate::DEFAULT_MAX_ATTEMPTS);
}

/// Claims are FIFO within a lane and never cross lanes.
pub async fn claim_fifo_per_lane(store: Arc<dyn JobStore>) {
    let a = store.insert_job(nj("t")).await.unwrap();
    let b = store.insert_job(nj("t")).await.unwrap();
    let c = store.insert_job(nj("t")).await.unwrap();
    let x = store.insert_job(nj_lane("t", lanes::HEAVY)).await.unwrap();
    for want in [&a, &b, &c] {
        let got = claim_one(&store, lanes::IO, "n1").await;
        assert_eq!(got.id, want.id, "FIFO order");
        assert_eq!(got.status, JobStatus::Running);
        assert_eq!(got.attempts, 1);
        assert_eq!(got.lease_owner.as_deref(), Some("n1"));
        assert!(got.lease_expires_at.unwrap() > got.created_at);
        assert!(got.started_at.is_some());
    }
    assert!(
        store
            .claim_next(lanes::IO, "n1", LEASE)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(claim_one(&store, lanes::HEAVY, "n1").await.id, x.id);
    assert!(
        store
            .claim_next("nolane", "n1", LEASE)
            .await
            .unwrap()
            .is_none()
    );
}

/// Concurrent claimers never get the same job.
pub async fn claim_is_exclusive_under_concurrency(store: Arc<dyn JobStore>) {
    let n = 60;
    let mut ids = HashSet::new();
    for _ in 0..n {
        ids.insert(store.insert_job(nj("t")).await.unwrap().id);
    }
    let mut tasks = Vec::new();
    for w in 0..6 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(j) = store
                .claim_next(lanes::IO, &format!("w{w}"), LEASE)
                .await
                .unwrap()
            {
                got.push(j.id);
            }
            got
        }));
    }
    let mut claimed = Vec::new();
    for t in tasks {
        claimed.extend(t.await.unwrap());
    }
    let unique: HashSet<Uuid> = claimed.iter().copied().collect();
    assert_eq!(claimed.len(), n, "every job claimed exactly once");
    assert_eq!(unique, ids);
}

/// Completion applies only with the current owner and attempt.
pub async fn completion_is_fenced(store: Arc<dyn JobStore>) {
    store.insert_job(nj("t")).await.unwrap();
    let j = claim_one(&store, lanes::IO, "n1").await;
    let good = fence(&j);
    let wrong_owner = Fence {
        owner: "n2".into(),
        ..good.clone()
    };
    let wrong_attempt = Fence {
        attempt: good.attempt + 1,
        ..good.clone()
    };
    let ok = Outcome::Succeeded(JobResult(json!({"v": 1})));
    assert!(
        store
            .complete_job(&wrong_owner, ok.clone(), 1)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .complete_job(&wrong_attempt, ok.clone(), 1)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store.get_job(j.id).await.unwrap().unwrap().status,
        JobStatus::Running
    );
    let done = store
        .complete_job(&good, ok.clone(), 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.status, JobStatus::Succeeded);
    assert_eq!(done.result, Some(json!({"v": 1})));
    assert_eq!(done.progress, 1.0);
    assert_eq!(done.completed, 1);
    assert!(done.finished_at.is_some());
    assert!(done.lease_owner.is_none() && done.lease_expires_at.is_none());
    let again = Outcome::Failed(JobError::new("X", "late"));
    assert!(store.complete_job(&good, again, 1).await.unwrap().is_none());
    let after = store.get_job(j.id).await.unwrap().unwrap();
    assert_eq!(
        after.status,
        JobStatus::Succeeded,
        "terminal states never change"
    );
    assert!(after.error.is_none());

    store.insert_job(nj("t")).await.unwrap();
    let f = claim_one(&store, lanes::IO, "n1").await;
    let err = JobError::new("MediaDecode", "bad input").with_details(json!({"at": 3}));
    let failed = store
        .complete_job(&fence(&f), Outcome::Failed(err), 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(failed.status, JobStatus::Failed);
    assert_eq!(failed.error_code.as_deref(), Some("MediaDecode"));
    assert_eq!(failed.error.as_deref(), Some("bad input"));
    assert_eq!(failed.error_details, Some(json!({"at": 3})));
}

/// A queued job is cancelled at once and can no longer be claimed.
pub async fn cancel_queued_job(store: Arc<dyn JobStore>) {
    let j = store.insert_job(nj("t")).await.unwrap();
    let c = store.request_cancel(j.id).await.unwrap();
    assert_eq!(c.job.status, JobStatus::Cancelled);
    assert!(c.job.finished_at.is_some());
    assert!(
        store
            .claim_next(lanes::IO, "n1", LEASE)
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.claim_job(j.id, "n1", LEASE).await.unwrap().is_none());
    let again = store.request_cancel(j.id).await.unwrap();
    assert_eq!(again.job.status, JobStatus::Cancelled);
    assert!(matches!(
        store.request_cancel(Uuid::now_v7()).await,
        Err(StoreError::NotFound(_))
    ));
}

/// A running job's cancel is a request; a success that lands anyway keeps its result but the
/// job stays cancelled.
pub async fn cancel_running_job_keeps_result(store: Arc<dyn JobStore>) {
    store.insert_job(nj("t")).await.unwrap();
    let j = claim_one(&store, lanes::IO, "n1").await;
    let c = store.request_cancel(j.id).await.unwrap();
    assert_eq!(c.job.status, JobStatus::Running);
    assert!(c.job.cancel_requested);
    let done = store
        .complete_job(
            &fence(&j),
            Outcome::Succeeded(JobResult(json!({"late": true}))),
            1,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.status, JobStatus::Cancelled);
    assert_eq!(done.result, Some(json!({"late": true})));

    store.insert_job(nj("t")).await.unwrap();
    let k = claim_one(&store, lanes::IO, "n1").await;
    store.request_cancel(k.id).await.unwrap();
    let done = store
        .complete_job(&fence(&k), Outcome::Failed(JobError::cancelled()), 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.status, JobStatus::Cancelled);
    assert!(done.error_code.is_none());
}

/// Renewal extends held leases and reports cancel requests and lost fences.
pub async fn lease_renewal_reports_lost_and_cancelled(store: Arc<dyn JobStore>) {
    store.insert_job(nj("t")).await.unwrap();
    store.insert_job(nj("t")).await.unwrap();
    let a = store
        .claim_next(lanes::IO, "n1", Duration::from_secs(5))
        .await
        .unwrap()
        .unwrap();
    let b = claim_one(&store, lanes::IO, "n1").await;
    store.request_cancel(b.id).await.unwrap();
    let stale = Fence {
        attempt: a.attempts + 1,
        ..fence(&a)
    };
    let st = store
        .renew_leases(&[fence(&a), fence(&b), stale], LEASE)
        .await
        .unwrap();
    assert_eq!(st.len(), 3);
    assert!(st[0].held && !st[0].cancel_requested);
    assert!(st[1].held && st[1].cancel_requested);
    assert!(!st[2].held);
    let a2 = store.get_job(a.id).await.unwrap().unwrap();
    assert!(a2.lease_expires_at.unwrap() > a.lease_expires_at.unwrap());
}

/// Progress writes need the fence and are clamped.
pub async fn progress_write_is_fenced(store: Arc<dyn JobStore>) {
    store.insert_job(nj("t")).await.unwrap();
    let j = claim_one(&store, lanes::IO, "n1").await;
    let upd = ProgressUpdate {
        progress: 0.25,
        stage: Some("decoding".into()),
        completed: None,
    };
    assert!(store.update_progress(&fence(&j), &upd).await.unwrap());
    let got = store.get_job(j.id).await.unwrap().unwrap();
    assert!((got.progress - 0.25).abs() < 1e-6);
    assert_eq!(got.stage.as_deref(), Some("decoding"));
    let bad = Fence {
        owner: "other".into(),
        ..fence(&j)
    };
    assert!(!store.update_progress(&bad, &upd).await.unwrap());
    let over = ProgressUpdate {
        progress: 1.5,
        stage: None,
        completed: Some(0),
    };
    assert!(store.update_progress(&fence(&j), &over).await.unwrap());
    let got = store.get_job(j.id).await.unwrap().unwrap();
    assert!((got.progress - 1.0).abs() < 1e-6);
}

/// Interruption re-queues, fails with `Interrupted`, or cancels when a cancel was pending.
pub async fn interrupt_requeues_fails_or_cancels(store: Arc<dyn JobStore>) {
    let a = store.insert_job(nj("t")).await.unwrap();
    let ca = claim_one(&store, lanes::IO, "n1").await;
    assert_eq!(ca.id, a.id);
    let q = store
        .interrupt_job(&fence(&ca), true)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(q.status, JobStatus::Queued);
    assert!(q.lease_owner.is_none());
    assert_eq!(q.attempts, 1, "attempts kept");
    assert!(
        store
            .interrupt_job(&fence(&ca), true)
            .await
            .unwrap()
            .is_none(),
        "stale fence"
    );
    let again = claim_one(&store, lanes::IO, "n2").await;
    assert_eq!((again.id, again.attempts), (a.id, 2));

    store.insert_job(nj("t")).await.unwrap();
    let b = claim_one(&store, lanes::IO, "n1").await;
    let f = store
        .interrupt_job(&fence(&b), false)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(f.status, JobStatus::Failed);
    assert_eq!(f.error_code.as_deref(), Some(codes::INTERRUPTED));
    assert_eq!(f.error.as_deref(), Some(crate::INTERRUPTED_MESSAGE));

    store.insert_job(nj("t")).await.unwrap();
    let c = claim_one(&store, lanes::IO, "n1").await;
    store.request_cancel(c.id).await.unwrap();
    let x = store
        .interrupt_job(&fence(&c), true)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(x.status, JobStatus::Cancelled, "a pending cancel wins");
}

/// `fail_queued` changes queued jobs only.
pub async fn fail_queued_only_touches_queued(store: Arc<dyn JobStore>) {
    let q = store.insert_job(nj("t")).await.unwrap();
    let f = store
        .fail_queued(q.id, &JobError::interrupted())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(f.status, JobStatus::Failed);
    assert_eq!(f.error_code.as_deref(), Some(codes::INTERRUPTED));
    store.insert_job(nj("t")).await.unwrap();
    let r = claim_one(&store, lanes::IO, "n1").await;
    assert!(
        store
            .fail_queued(r.id, &JobError::interrupted())
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .fail_queued(q.id, &JobError::interrupted())
            .await
            .unwrap()
            .is_none()
    );
}

/// Batches are inserted whole, children keep their order and are run by their parent unless
/// released.
pub async fn batch_insert_and_claim_rules(store: Arc<dyn JobStore>) {
    let kids: Vec<NewJob> = (0..3)
        .map(|i| NewJob::new("child", json!({"i": i})).lane(lanes::IO))
        .collect();
    let kid_ids: Vec<Uuid> = kids.iter().map(|k| k.id).collect();
    let (p, c) = store
        .insert_batch(nj_lane("batch_child", lanes::BATCH).profile("p"), kids)
        .await
        .unwrap();
    assert_eq!((p.total, p.completed, p.status), (3, 0, JobStatus::Queued));
    assert_eq!(c.iter().map(|k| k.id).collect::<Vec<_>>(), kid_ids);
    assert!(c.iter().all(|k| k.parent_id == Some(p.id) && !k.claimable));
    let listed = store.list_children(p.id).await.unwrap();
    assert_eq!(listed.iter().map(|k| k.id).collect::<Vec<_>>(), kid_ids);
    assert_eq!(listed[1].params, json!({"i": 1}));
    assert!(
        store
            .claim_next(lanes::IO, "n1", LEASE)
            .await
            .unwrap()
            .is_none(),
        "children are not claimable by lane workers"
    );
    assert_eq!(claim_one(&store, lanes::BATCH, "n1").await.id, p.id);
    let c0 = store
        .claim_job(kid_ids[0], "n1", LEASE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c0.status, JobStatus::Running);
    assert!(
        store
            .claim_job(kid_ids[0], "n1", LEASE)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(store.release_children(p.id).await.unwrap(), 2);
    assert_eq!(claim_one(&store, lanes::IO, "n2").await.id, kid_ids[1]);
    assert_eq!(claim_one(&store, lanes::IO, "n2").await.id, kid_ids[2]);

    // All or nothing.
    let k = nj("child");
    let dup = NewJob {
        id: k.id,
        ..nj("child")
    };
    let parent = nj("batch_child");
    let parent_id = parent.id;
    assert!(store.insert_batch(parent, vec![k, dup]).await.is_err());
    assert!(store.get_job(parent_id).await.unwrap().is_none());
}

/// Cancelling a parent cancels its unfinished children; cancelling a child cancels only it.
pub async fn cancel_parent_cascades_to_children(store: Arc<dyn JobStore>) {
    let kids: Vec<NewJob> = (0..3).map(|_| nj("child")).collect();
    let ids: Vec<Uuid> = kids.iter().map(|k| k.id).collect();
    let (p, _) = store
        .insert_batch(nj_lane("b", lanes::BATCH), kids)
        .await
        .unwrap();
    claim_one(&store, lanes::BATCH, "n1").await;
    store.claim_job(ids[0], "n1", LEASE).await.unwrap().unwrap();
    let c = store.request_cancel(p.id).await.unwrap();
    assert_eq!(c.job.status, JobStatus::Running);
    assert!(c.job.cancel_requested);
    let by_id = |id: Uuid| c.related.iter().find(|j| j.id == id).cloned().unwrap();
    assert!(by_id(ids[0]).cancel_requested && by_id(ids[0]).status == JobStatus::Running);
    assert_eq!(by_id(ids[1]).status, JobStatus::Cancelled);
    assert_eq!(by_id(ids[2]).status, JobStatus::Cancelled);

    let kids: Vec<NewJob> = (0..2).map(|_| nj("child")).collect();
    let ids: Vec<Uuid> = kids.iter().map(|k| k.id).collect();
    let (p2, _) = store
        .insert_batch(nj_lane("b", lanes::BATCH), kids)
        .await
        .unwrap();
    let only = store.request_cancel(ids[0]).await.unwrap();
    assert_eq!(only.job.status, JobStatus::Cancelled);
    assert!(only.related.is_empty());
    assert_eq!(
        store.get_job(ids[1]).await.unwrap().unwrap().status,
        JobStatus::Queued
    );
    assert_eq!(
        store.get_job(p2.id).await.unwrap().unwrap().status,
        JobStatus::Queued
    );
    // A queued parent: cancelled at once, counts recorded.
    let qp = store.request_cancel(p2.id).await.unwrap();
    assert_eq!(qp.job.status, JobStatus::Cancelled);
    assert_eq!(qp.job.completed, 2);
    let r: BatchResult = serde_json::from_value(qp.job.result.clone().unwrap()).unwrap();
    assert_eq!((r.total, r.cancelled), (2, 2));
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

/// Retry applies to failed/cancelled jobs only; batches re-run only their failed/cancelled
/// children; a child re-opens its finished parent.
pub async fn retry_rules(store: Arc<dyn JobStore>) {
    let j = store.insert_job(nj("t")).await.unwrap();
    finish(&store, j.id, false).await;
    let r = store.retry_job(j.id, 3).await.unwrap();
    assert_eq!(r.job.status, JobStatus::Queued);
    assert!(r.job.error.is_none() && r.job.error_code.is_none() && r.job.finished_at.is_none());
    assert_eq!((r.job.attempts, r.job.max_attempts), (1, 4));
    assert!(matches!(
        store.retry_job(j.id, 3).await,
        Err(StoreError::Conflict(_))
    ));
    let s = store.insert_job(nj("t")).await.unwrap();
    finish(&store, s.id, true).await;
    assert!(matches!(
        store.retry_job(s.id, 3).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.retry_job(Uuid::now_v7(), 3).await,
        Err(StoreError::NotFound(_))
    ));

    // Parent retry.
    let kids: Vec<NewJob> = (0..3).map(|_| nj("child")).collect();
    let ids: Vec<Uuid> = kids.iter().map(|k| k.id).collect();
    let (p, _) = store
        .insert_batch(nj_lane("b", lanes::BATCH), kids)
        .await
        .unwrap();
    let pj = store.claim_job(p.id, "n1", LEASE).await.unwrap().unwrap();
    finish(&store, ids[0], true).await;
    finish(&store, ids[1], false).await;
    store.request_cancel(ids[2]).await.unwrap();
    store
        .complete_job(
            &fence(&pj),
            Outcome::Failed(JobError::new("BatchFailed", "x")),
            3,
        )
        .await
        .unwrap()
        .unwrap();
    let r = store.retry_job(p.id, 3).await.unwrap();
    assert_eq!(r.job.status, JobStatus::Queued);
    assert_eq!(r.job.completed, 1);
    let requeued: HashSet<Uuid> = r.related.iter().map(|j| j.id).collect();
    assert_eq!(requeued, HashSet::from([ids[1], ids[2]]));
    let kids = store.list_children(p.id).await.unwrap();
    assert_eq!(kids[0].status, JobStatus::Succeeded);
    assert_eq!(kids[1].status, JobStatus::Queued);
    assert_eq!(kids[2].status, JobStatus::Queued);

    // Child retry re-opens the parent; refused while the parent is active.
    let kids: Vec<NewJob> = (0..2).map(|_| nj("child")).collect();
    let ids: Vec<Uuid> = kids.iter().map(|k| k.id).collect();
    let (p, _) = store
        .insert_batch(nj_lane("b", lanes::BATCH), kids)
        .await
        .unwrap();
    let pj = store.claim_job(p.id, "n1", LEASE).await.unwrap().unwrap();
    finish(&store, ids[0], true).await;
    finish(&store, ids[1], false).await;
    assert!(
        matches!(
            store.retry_job(ids[1], 3).await,
            Err(StoreError::Conflict(_))
        ),
        "parent still running"
    );
    store
        .complete_job(&fence(&pj), Outcome::Succeeded(JobResult(json!({}))), 2)
        .await
        .unwrap()
        .unwrap();
    let r = store.retry_job(ids[1], 3).await.unwrap();
    assert_eq!(r.job.status, JobStatus::Queued);
    assert_eq!(r.related.len(), 1);
    assert_eq!(r.related[0].id, p.id);
    assert_eq!(r.related[0].status, JobStatus::Queued);
    assert_eq!(r.related[0].completed, 1);
}

/// Active jobs can't be deleted; a parent takes its children along.
pub async fn delete_rules(store: Arc<dyn JobStore>) {
    let q = store.insert_job(nj("t")).await.unwrap();
    assert!(matches!(
        store.delete_job(q.id).await,
        Err(StoreError::Conflict(_))
    ));
    let r = claim_one(&store, lanes::IO, "n1").await;
    assert!(matches!(
        store.delete_job(r.id).await,
        Err(StoreError::Conflict(_))
    ));
    store
        .complete_job(&fence(&r), Outcome::Succeeded(JobResult(json!({}))), 1)
        .await
        .unwrap();
    assert_eq!(store.delete_job(r.id).await.unwrap(), vec![r.id]);
    assert!(store.get_job(r.id).await.unwrap().is_none());
    assert!(matches!(
        store.delete_job(r.id).await,
        Err(StoreError::NotFound(_))
    ));

    let kids: Vec<NewJob> = (0..2).map(|_| nj("child")).collect();
    let ids: Vec<Uuid> = kids.iter().map(|k| k.id).collect();
    let (p, _) = store
        .insert_batch(nj_lane("b", lanes::BATCH), kids)
        .await
        .unwrap();
    assert!(matches!(
        store.delete_job(p.id).await,
        Err(StoreError::Conflict(_))
    ));
    store.request_cancel(p.id).await.unwrap();
    let mut deleted = store.delete_job(p.id).await.unwrap();
    deleted.sort();
    let mut want = vec![p.id, ids[0], ids[1]];
    want.sort();
    assert_eq!(deleted, want);
    assert!(store.get_job(ids[0]).await.unwrap().is_none());
}

/// Listing: top-level only, newest first, filters, keyset pages.
pub async fn list_jobs_filters_and_pages(store: Arc<dyn JobStore>) {
    let mut p1 = Vec::new();
    for i in 0..5 {
        let t = if i % 2 == 0 { "a" } else { "b" };
        p1.push(store.insert_job(nj(t).profile("p1")).await.unwrap().id);
    }
    store.insert_job(nj("a").profile("p2")).await.unwrap();
    store.insert_job(nj("a").profile("p2")).await.unwrap();
    let (bp, _) = store
        .insert_batch(
            nj_lane("batch_a", lanes::BATCH).profile("p1"),
            vec![nj("a").profile("p1"), nj("a").profile("p1")],
        )
        .await
        .unwrap();
    p1.push(bp.id);
    let all = store
        .list_jobs(&JobFilter {
            profile_id: Some("p1".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut newest_first = p1.clone();
    newest_first.reverse();
    assert_eq!(all.iter().map(|j| j.id).collect::<Vec<_>>(), newest_first);

    let only_b = store
        .list_jobs(&JobFilter {
            profile_id: Some("p1".into()),
            job_type: Some("b".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(only_b.len(), 2);

    let j = claim_one(&store, lanes::IO, "n1").await;
    let running = store
        .list_jobs(&JobFilter {
            statuses: vec![JobStatus::Running],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(running.iter().map(|j| j.id).collect::<Vec<_>>(), vec![j.id]);

    let page1 = store
        .list_jobs(&JobFilter {
            profile_id: Some("p1".into()),
            limit: 2,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        page1.iter().map(|j| j.id).collect::<Vec<_>>(),
        newest_first[..2]
    );
    let page2 = store
        .list_jobs(&JobFilter {
            profile_id: Some("p1".into()),
            limit: 3,
            before: Some(page1[1].id),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        page2.iter().map(|j| j.id).collect::<Vec<_>>(),
        newest_first[2..5]
    );
    assert!(
        store
            .list_jobs(&JobFilter {
                before: Some(Uuid::now_v7()),
                ..Default::default()
            })
            .await
            .is_err()
    );
}

/// Expired leases are listed by the store's clock.
pub async fn expired_leases_are_listed(store: Arc<dyn JobStore>) {
    store.insert_job(nj("t")).await.unwrap();
    store.insert_job(nj("t")).await.unwrap();
    let short = store
        .claim_next(lanes::IO, "n1", Duration::from_millis(100))
        .await
        .unwrap()
        .unwrap();
    let long = claim_one(&store, lanes::IO, "n1").await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let expired: Vec<Uuid> = store
        .list_expired_leases()
        .await
        .unwrap()
        .iter()
        .map(|j| j.id)
        .collect();
    assert!(expired.contains(&short.id));
    assert!(!expired.contains(&long.id));
}

// ---------------------------------------------------------------- manager rules

/// A registered handler runs and its result is stored.
pub async fn manager_runs_job(store: Arc<dyn JobStore>) {
    let m = manager(&store, test_config("n1"));
    m.register_handler("echo", lanes::IO, ok_handler);
    m.start().await.unwrap();
    let j = m
        .enqueue(NewJob::new("echo", json!({"x": 1})))
        .await
        .unwrap();
    assert_eq!(j.lane, lanes::IO);
    let done = wait_done(&m, j.id).await;
    assert_eq!(done.status, JobStatus::Succeeded);
    assert_eq!(done.result, Some(json!({"echo": {"x": 1}})));
    assert_eq!((done.attempts, done.completed, done.total), (1, 1, 1));
    assert!((done.progress - 1.0).abs() < 1e-9);
    assert!(done.started_at.is_some() && done.finished_at.is_some());
    assert!(m.running_job_ids().is_empty());
    m.stop().await.unwrap();
}

/// A job without a handler fails with `UnknownJobType`.
pub async fn unknown_type_fails(store: Arc<dyn JobStore>) {
    let m = manager(&store, test_config("n1"));
    m.start().await.unwrap();
    let j = m.enqueue(nj("nope")).await.unwrap();
    let done = wait_done(&m, j.id).await;
    assert_eq!(done.status, JobStatus::Failed);
    assert_eq!(done.error_code.as_deref(), Some("UnknownJobType"));
    assert_eq!(done.error.as_deref(), Some("Unknown Job Type 'nope'"));
    m.stop().await.unwrap();
}

/// Domain errors keep code/message/details; anything else (panics too) is `ServerError` and
/// its text never reaches the store.
pub async fn domain_and_unexpected_errors(store: Arc<dyn JobStore>) {
    let m = manager(&store, test_config("n1"));
    m.register_handler("domain", lanes::IO, |_j: Job, _c: JobContext| async {
        Err::<JobResult, _>(
            JobError::new("MediaDecode", "Could Not Decode").with_details(json!({"why": "x"})),
        )
    });
    m.register_handler("internal", lanes::IO, |_j: Job, _c: JobContext| async {
        Err::<JobResult, _>(JobError::internal(std::io::Error::other(
            "secret disk path",
        )))
    });
    m.register_handler("panics", lanes::IO, |_j: Job, _c: JobContext| async {
        if true {
            panic!("secret panic text");
        }
        Ok(JobResult::empty())
    });
    m.start().await.unwrap();
    let d = m.enqueue(nj("domain")).await.unwrap();
    let i = m.enqueue(nj("internal")).await.unwrap();
    let p = m.enqueue(nj("panics")).await.unwrap();
    let d = wait_done(&m, d.id).await;
    assert_eq!(d.error_code.as_deref(), Some("MediaDecode"));
    assert_eq!(d.error.as_deref(), Some("Could Not Decode"));
    assert_eq!(d.error_details, Some(json!({"why": "x"})));
    for id in [i.id, p.id] {
        let j = wait_done(&m, id).await;
        assert_eq!(j.status, JobStatus::Failed);
        assert_eq!(j.error_code.as_deref(), Some("ServerError"));
        assert_eq!(j.error.as_deref(), Some("An Unexpected Error Occurred"));
        let text = serde_json::to_string(&j).unwrap();
        assert!(!text.contains("secret"), "raw error leaked: {text}");
    }
    m.stop().await.unwrap();
}

/// `submit_job` needs a started manager; jobs enqueued before start run after it.
pub async fn submit_requires_start(store: Arc<dyn JobStore>) {
    let m = manager(&store, test_config("n1"));
    m.register_handler("echo", lanes::IO, ok_handler);
    let early = m.enqueue(nj("echo")).await.unwrap();
    assert!(matches!(
        m.submit_job(early.id).await,
        Err(ManagerError::NotStarted)
    ));
    m.start().await.unwrap();
    assert!(matches!(m.start().await, Err(ManagerError::AlreadyStarted)));
    assert!(matches!(
        m.submit_job(Uuid::now_v7()).await,
        Err(ManagerError::NotFound(_))
    ));
    m.submit_job(early.id).await.unwrap();
    assert_eq!(wait_done(&m, early.id).await.status, JobStatus::Succeeded);
    let stored = store.insert_job(nj("echo")).await.unwrap();
    m.submit_job(stored.id).await.unwrap();
    assert_eq!(wait_done(&m, stored.id).await.status, JobStatus::Succeeded);
    m.stop().await.unwrap();
    m.stop().await.unwrap();
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

/// Heavy jobs never overlap on a node; io jobs run concurrently up to the lane's permits.
pub async fn heavy_lane_is_exclusive(store: Arc<dyn JobStore>) {
    let t = RunTracker::new();
    let m = manager(&store, test_config("n1").lane(lanes::IO, 3));
    m.register_handler("heavy", lanes::HEAVY, tracked(&t, lanes::HEAVY, 120));
    m.register_handler("light", lanes::IO, tracked(&t, lanes::IO, 300));
    m.start().await.unwrap();
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(m.enqueue(nj("heavy")).await.unwrap().id);
    }
    for _ in 0..6 {
        ids.push(m.enqueue(nj("light")).await.unwrap().id);
    }
    for id in ids {
        assert_eq!(wait_done(&m, id).await.status, JobStatus::Succeeded);
    }
    assert!(t.violations().is_empty(), "{:?}", t.violations());
    assert_eq!(t.max_concurrent(lanes::HEAVY), 1);
    let io = t.max_concurrent(lanes::IO);
    assert!((2..=3).contains(&io), "io concurrency {io}");
    m.stop().await.unwrap();
}

/// A cheap io job finishes while a long heavy job is still running.
pub async fn io_job_not_blocked_by_heavy(store: Arc<dyn JobStore>) {
    let m = manager(&store, test_config("n1"));
    m.register_handler("long", lanes::HEAVY, wait_cancel);
    m.register_handler("cheap", lanes::IO, ok_handler);
    m.start().await.unwrap();
    let long = m.enqueue(nj("long")).await.unwrap();
    wait_running(&store, long.id).await;
    let cheap = m.enqueue(nj("cheap")).await.unwrap();
    assert_eq!(wait_done(&m, cheap.id).await.status, JobStatus::Succeeded);
    assert_eq!(
        store.get_job(long.id).await.unwrap().unwrap().status,
        JobStatus::Running
    );
    m.cancel_job(long.id).await.unwrap();
    assert_eq!(wait_done(&m, long.id).await.status, JobStatus::Cancelled);
    m.stop().await.unwrap();
}

/// Cancelling a running job fires its token; it ends `cancelled` within a second.
pub async fn cancel_running_stops_handler(store: Arc<dyn JobStore>) {
    let m = manager(&store, test_config("n1"));
    m.register_handler("wait", lanes::HEAVY, wait_cancel);
    m.start().await.unwrap();
    let j = m.enqueue(nj("wait")).await.unwrap();
    wait_running(&store, j.id).await;
    let t0 = Instant::now();
    let c = m.cancel_job(j.id).await.unwrap();
    assert_eq!(c.status, JobStatus::Running);
    assert!(c.cancel_requested);
    let done = wait_done(&m, j.id).await;
    assert!(
        t0.elapsed() < Duration::from_secs(1),
        "took {:?}",
        t0.elapsed()
    );
    assert_eq!(done.status, JobStatus::Cancelled);
    assert!(done.error_code.is_none());
    assert!(m.running_job_ids().is_empty());
    m.stop().await.unwrap();
}

/// A handler that finishes despite the cancel leaves the job `cancelled` with its result.
pub async fn cancel_during_finish_stays_cancelled(store: Arc<dyn JobStore>) {
    let m = manager(&store, test_config("n1"));
    m.register_handler(
        "finisher",
        lanes::IO,
        |_j: Job, ctx: JobContext| async move {
            ctx.cancelled().await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok(JobResult(json!({"finished": true})))
        },
    );
    m.start().await.unwrap();
    let j = m.enqueue(nj("finisher")).await.unwrap();
    wait_running(&store, j.id).await;
    m.cancel_job(j.id).await.unwrap();
    let done = wait_done(&m, j.id).await;
    assert_eq!(done.status, JobStatus::Cancelled);
    assert_eq!(done.result, Some(json!({"finished": true})));
    m.stop().await.unwrap();
}

/// A cancelled queued job never runs.
pub async fn cancel_queued_never_runs(store: Arc<dyn JobStore>) {
    let t = RunTracker::new();
    let m = manager(&store, test_config("n1"));
    m.register_handler("block", lanes::HEAVY, wait_cancel);
    m.register_handler("tracked", lanes::HEAVY, tracked(&t, lanes::HEAVY, 10));
    m.start().await.unwrap();
    let a = m.enqueue(nj("block")).await.unwrap();
    wait_running(&store, a.id).await;
    let b = m.enqueue(nj("tracked")).await.unwrap();
    let c = m.cancel_job(b.id).await.unwrap();
    assert_eq!(c.status, JobStatus::Cancelled);
    m.cancel_job(a.id).await.unwrap();
    wait_done(&m, a.id).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(t.runs(b.id), 0);
    assert_eq!(
        store.get_job(b.id).await.unwrap().unwrap().status,
        JobStatus::Cancelled
    );
    m.stop().await.unwrap();
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

/// After a crash, `start()` re-queues this node's running job (policy `retry`) and runs it.
pub async fn restart_requeues_interrupted_job(store: Arc<dyn JobStore>) {
    let id = crash_mid_job(&store, "n1", nj("work")).await;
    let m = manager(&store, test_config("n1"));
    m.register_handler("work", lanes::HEAVY, ok_handler);
    let report = m.start().await.unwrap();
    assert_eq!(report.requeued, vec![id]);
    let done = wait_done(&m, id).await;
    assert_eq!(done.status, JobStatus::Succeeded);
    assert_eq!(done.attempts, 2);
    m.stop().await.unwrap();
}

/// Policy `fail` fails interrupted jobs with `Interrupted`.
pub async fn restart_fail_policy(store: Arc<dyn JobStore>) {
    let id = crash_mid_job(&store, "n1", nj("work")).await;
    let m = manager(
        &store,
        test_config("n1").interrupt_policy(InterruptPolicy::Fail),
    );
    m.register_handler("work", lanes::HEAVY, ok_handler);
    let report = m.start().await.unwrap();
    assert_eq!(report.failed, vec![id]);
    let j = store.get_job(id).await.unwrap().unwrap();
    assert_eq!(j.status, JobStatus::Failed);
    assert_eq!(j.error_code.as_deref(), Some("Interrupted"));
    assert_eq!(j.error.as_deref(), Some("Interrupted By A Server Restart"));
    m.stop().await.unwrap();
}

/// With no attempts left, an interrupted job fails even under `retry`.
pub async fn restart_exhausted_attempts_fail(store: Arc<dyn JobStore>) {
    let id = crash_mid_job(&store, "n1", nj("work").max_attempts(1)).await;
    let m = manager(&store, test_config("n1"));
    m.register_handler("work", lanes::HEAVY, ok_handler);
    let report = m.start().await.unwrap();
    assert_eq!(report.failed, vec![id]);
    let j = store.get_job(id).await.unwrap().unwrap();
    assert_eq!(j.error_code.as_deref(), Some("Interrupted"));
    m.stop().await.unwrap();
}

/// Queued jobs run in FIFO order after a start.
pub async fn restart_runs_queued_fifo(store: Arc<dyn JobStore>) {
    let t = RunTracker::new();
    let m = manager(&store, test_config("n1"));
    m.register_handler("h", lanes::HEAVY, tracked(&t, lanes::HEAVY, 20));
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(m.enqueue(nj("h")).await.unwrap().id);
    }
    let report = m.start().await.unwrap();
    assert_eq!(report.queued, 5);
    for id in &ids {
        wait_done(&m, *id).await;
    }
    assert_eq!(t.order(), ids);
    m.stop().await.unwrap();
}

/// Queued children of a finished parent are failed at start.
pub async fn restart_fails_orphan_children(store: Arc<dyn JobStore>) {
    let kids: Vec<NewJob> = (0..2).map(|_| nj("child")).collect();
    let ids: Vec<Uuid> = kids.iter().map(|k| k.id).collect();
    let (p, _) = store
        .insert_batch(nj_lane("b", lanes::BATCH), kids)
        .await
        .unwrap();
    let pj = store.claim_job(p.id, "old", LEASE).await.unwrap().unwrap();
    store
        .complete_job(&fence(&pj), Outcome::Failed(JobError::interrupted()), 0)
        .await
        .unwrap()
        .unwrap();
    // A healthy batch alongside: its queued children stay with the parent.
    let (healthy, hk) = store
        .insert_batch(nj_lane("b", lanes::BATCH), vec![nj("child")])
        .await
        .unwrap();
    let m = manager(&store, test_config("n1"));
    let report = m.start().await.unwrap();
    let mut got = report.orphans_failed.clone();
    got.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(got, want);
    for id in ids {
        let c = store.get_job(id).await.unwrap().unwrap();
        assert_eq!(c.status, JobStatus::Failed);
        assert_eq!(c.error_code.as_deref(), Some("Interrupted"));
    }
    let _ = healthy;
    assert!(!report.orphans_failed.contains(&hk[0].id));
    m.stop().await.unwrap();
}

/// `stop()` lets jobs that finish within the grace period finish.
pub async fn stop_waits_for_quick_jobs(store: Arc<dyn JobStore>) {
    let m = manager(&store, test_config("n1"));
    m.register_handler("quick", lanes::HEAVY, |_j: Job, _c: JobContext| async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        Ok(JobResult(json!({"done": true})))
    });
    m.start().await.unwrap();
    let j = m.enqueue(nj("quick")).await.unwrap();
    wait_running(&store, j.id).await;
    m.stop().await.unwrap();
    let j = store.get_job(j.id).await.unwrap().unwrap();
    assert_eq!(j.status, JobStatus::Succeeded);
    assert!(m.running_job_ids().is_empty());
}

/// After the grace period `stop()` cancels and applies the interrupt policy.
pub async fn stop_cancels_after_grace_and_requeues(store: Arc<dyn JobStore>) {
    let m = manager(&store, test_config("n1"));
    m.register_handler("long", lanes::HEAVY, wait_cancel);
    m.start().await.unwrap();
    let j = m.enqueue(nj("long")).await.unwrap();
    wait_running(&store, j.id).await;
    let t0 = Instant::now();
    m.stop().await.unwrap();
    assert!(
        t0.elapsed() >= Duration::from_millis(1400),
        "grace period honoured"
    );
    let after = store.get_job(j.id).await.unwrap().unwrap();
    assert_eq!(after.status, JobStatus::Queued, "retry policy re-queues");
    assert!(after.lease_owner.is_none());

    let m2 = manager(
        &store,
        test_config("n1").interrupt_policy(InterruptPolicy::Fail),
    );
    m2.register_handler("long", lanes::HEAVY, wait_cancel);
    m2.start().await.unwrap();
    wait_running(&store, j.id).await;
    m2.stop().await.unwrap();
    let after = store.get_job(j.id).await.unwrap().unwrap();
    assert_eq!(after.status, JobStatus::Failed);
    assert_eq!(after.error_code.as_deref(), Some("Interrupted"));
}

/// A handler that ignores cancellation is abandoned and the job interrupted; nothing is left
/// running.
pub async fn stop_abandons_stubborn_handler(store: Arc<dyn JobStore>) {
    let mut cfg = test_config("n1").grace_period(Duration::from_millis(300));
    cfg.cancel_wait = Duration::from_millis(500);
    let m = manager(&store, cfg);
    m.register_handler("stubborn", lanes::HEAVY, |_j: Job, _c: JobContext| async {
        futures::future::pending::<()>().await;
        Ok(JobResult::empty())
    });
    m.start().await.unwrap();
    let j = m.enqueue(nj("stubborn")).await.unwrap();
    wait_running(&store, j.id).await;
    tokio::time::timeout(Duration::from_secs(5), m.stop())
        .await
        .expect("stop returns")
        .unwrap();
    let after = store.get_job(j.id).await.unwrap().unwrap();
    assert_eq!(after.status, JobStatus::Queued);
    assert!(m.running_job_ids().is_empty());
}

/// Another node's expired lease is reaped and the job runs here; the dead node's late
/// completion is rejected.
pub async fn reaper_recovers_dead_node(store: Arc<dyn JobStore>) {
    let m = manager(
        &store,
        test_config("alive").lease(Duration::from_millis(900)),
    );
    m.start().await.unwrap();
    let j = store
        .insert_job(nj_lane("ghostwork", "ghostlane"))
        .await
        .unwrap();
    let ghost = store
        .claim_next("ghostlane", "ghost", Duration::from_millis(300))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ghost.id, j.id);
    m.register_handler("ghostwork", "ghostlane", ok_handler);
    let done = wait_done(&m, j.id).await;
    assert_eq!(done.status, JobStatus::Succeeded);
    assert_eq!(done.attempts, 2);
    assert_eq!(done.lease_owner, None);
    let late = store
        .complete_job(
            &fence(&ghost),
            Outcome::Failed(JobError::new("Late", "late")),
            1,
        )
        .await
        .unwrap();
    assert!(
        late.is_none(),
        "fenced: the dead node's completion is rejected"
    );
    assert_eq!(
        store.get_job(j.id).await.unwrap().unwrap().status,
        JobStatus::Succeeded
    );
    m.stop().await.unwrap();
}

fn child(fail: bool) -> NewJob {
    NewJob::new("child", json!({ "fail": fail }))
}

/// A child's failure never fails the batch; counts and progress follow the children.
pub async fn batch_sequential_counts(store: Arc<dyn JobStore>) {
    let t = RunTracker::new();
    let m = manager(&store, test_config("n1"));
    m.register_handler("child", lanes::HEAVY, tracked(&t, lanes::HEAVY, 50));
    m.register_batch("batch_child", BatchStrategy::Sequential);
    m.start().await.unwrap();
    let (p, kids) = m
        .enqueue_batch(
            nj("batch_child"),
            vec![child(false), child(true), child(false)],
        )
        .await
        .unwrap();
    assert_eq!(p.lane, lanes::BATCH);
    let done = wait_done(&m, p.id).await;
    assert_eq!(done.status, JobStatus::Succeeded);
    let r: BatchResult = serde_json::from_value(done.result.clone().unwrap()).unwrap();
    assert_eq!((r.total, r.succeeded, r.failed, r.cancelled), (3, 2, 1, 0));
    assert_eq!(r.children, kids.iter().map(|k| k.id).collect::<Vec<_>>());
    assert_eq!((done.completed, done.total), (3, 3));
    assert!((done.progress - 1.0).abs() < 1e-9);
    let c = store.list_children(p.id).await.unwrap();
    assert_eq!(
        c.iter().map(|k| k.status).collect::<Vec<_>>(),
        vec![
            JobStatus::Succeeded,
            JobStatus::Failed,
            JobStatus::Succeeded
        ]
    );
    assert_eq!(t.order(), kids.iter().map(|k| k.id).collect::<Vec<_>>());
    assert_eq!(t.max_concurrent(lanes::HEAVY), 1);
    m.stop().await.unwrap();
}

/// No child succeeded and one failed: the parent fails with `BatchFailed`, keeping the counts.
pub async fn batch_all_failed_is_batch_failed(store: Arc<dyn JobStore>) {
    let t = RunTracker::new();
    let m = manager(&store, test_config("n1"));
    m.register_handler("child", lanes::HEAVY, tracked(&t, lanes::HEAVY, 1));
    m.register_batch("batch_child", BatchStrategy::Sequential);
    m.start().await.unwrap();
    let (p, _) = m
        .enqueue_batch(nj("batch_child"), vec![child(true), child(true)])
        .await
        .unwrap();
    let done = wait_done(&m, p.id).await;
    assert_eq!(done.status, JobStatus::Failed);
    assert_eq!(done.error_code.as_deref(), Some("BatchFailed"));
    let r: BatchResult = serde_json::from_value(done.result.clone().unwrap()).unwrap();
    assert_eq!((r.total, r.succeeded, r.failed), (2, 0, 2));
    m.stop().await.unwrap();
}

/// Batch children take their lane's permit: a standalone heavy job and heavy children never
/// overlap, even with a bounded strategy.
pub async fn batch_children_share_heavy_lane(store: Arc<dyn JobStore>) {
    let t = RunTracker::new();
    let m = manager(&store, test_config("n1"));
    m.register_handler("child", lanes::HEAVY, tracked(&t, lanes::HEAVY, 60));
    m.register_batch("batch_child", BatchStrategy::Bounded(3));
    m.start().await.unwrap();
    let (p, _) = m
        .enqueue_batch(nj("batch_child"), (0..4).map(|_| child(false)).collect())
        .await
        .unwrap();
    let a = m.enqueue(child(false)).await.unwrap();
    let b = m.enqueue(child(false)).await.unwrap();
    for id in [p.id, a.id, b.id] {
        assert_eq!(wait_done(&m, id).await.status, JobStatus::Succeeded);
    }
    assert!(t.violations().is_empty(), "{:?}", t.violations());
    assert_eq!(t.max_concurrent(lanes::HEAVY), 1);
    m.stop().await.unwrap();
}

/// `Bounded(n)` runs at most n children at once.
pub async fn batch_bounded_concurrency(store: Arc<dyn JobStore>) {
    let t = RunTracker::new();
    let m = manager(&store, test_config("n1").lane(lanes::IO, 4));
    m.register_handler("child", lanes::IO, tracked(&t, lanes::IO, 150));
    m.register_batch("batch_child", BatchStrategy::Bounded(2));
    m.start().await.unwrap();
    let (p, _) = m
        .enqueue_batch(nj("batch_child"), (0..6).map(|_| child(false)).collect())
        .await
        .unwrap();
    let done = wait_done(&m, p.id).await;
    assert_eq!(done.status, JobStatus::Succeeded);
    assert_eq!(t.max_concurrent(lanes::IO), 2);
    m.stop().await.unwrap();
}

/// Cancelling a parent cancels the running child and the queued ones; the parent ends
/// `cancelled` with the counts.
pub async fn batch_cancel_parent(store: Arc<dyn JobStore>) {
    let m = manager(&store, test_config("n1"));
    m.register_handler("child", lanes::HEAVY, wait_cancel);
    m.register_batch("batch_child", BatchStrategy::Sequential);
    m.start().await.unwrap();
    let (p, kids) = m
        .enqueue_batch(nj("batch_child"), (0..3).map(|_| child(false)).collect())
        .await
        .unwrap();
    wait_running(&store, kids[0].id).await;
    let t0 = Instant::now();
    m.cancel_job(p.id).await.unwrap();
    let done = wait_done(&m, p.id).await;
    assert!(t0.elapsed() < Duration::from_secs(2));
    assert_eq!(done.status, JobStatus::Cancelled);
    let r: BatchResult = serde_json::from_value(done.result.clone().unwrap()).unwrap();
    assert_eq!((r.total, r.cancelled, r.succeeded), (3, 3, 0));
    for k in store.list_children(p.id).await.unwrap() {
        assert_eq!(k.status, JobStatus::Cancelled);
    }
    assert!(m.running_job_ids().is_empty());
    m.stop().await.unwrap();
}

/// Retrying re-runs only failed children; a child retry re-opens its batch.
pub async fn batch_retry_reruns_failed_children(store: Arc<dyn JobStore>) {
    let healthy = Arc::new(AtomicBool::new(false));
    let runs = Arc::new(std::sync::Mutex::new(Vec::<Uuid>::new()));
    let m = manager(&store, test_config("n1"));
    {
        let healthy = healthy.clone();
        let runs = runs.clone();
        m.register_handler("child", lanes::IO, move |job: Job, _c: JobContext| {
            let healthy = healthy.clone();
            let runs = runs.clone();
            async move {
                runs.lock().unwrap().push(job.id);
                if job.params["fail"] == json!(true) && !healthy.load(Ordering::SeqCst) {
                    return Err(JobError::new("Boom", "unhealthy"));
                }
                Ok(JobResult(json!({})))
            }
        });
    }
    m.register_batch("batch_child", BatchStrategy::Sequential);
    m.start().await.unwrap();
    let (p, kids) = m
        .enqueue_batch(nj("batch_child"), vec![child(false), child(true)])
        .await
        .unwrap();
    assert_eq!(wait_done(&m, p.id).await.status, JobStatus::Succeeded);
    healthy.store(true, Ordering::SeqCst);
    let r = m.retry_job(kids[1].id).await.unwrap();
    assert_eq!(r.status, JobStatus::Queued);
    let done = wait_done(&m, p.id).await;
    assert_eq!(done.status, JobStatus::Succeeded);
    let res: BatchResult = serde_json::from_value(done.result.unwrap()).unwrap();
    assert_eq!((res.succeeded, res.failed), (2, 0));
    let count = |id: Uuid| runs.lock().unwrap().iter().filter(|r| **r == id).count();
    assert_eq!(count(kids[0].id), 1, "succeeded child not re-run");
    assert_eq!(count(kids[1].id), 2);

    healthy.store(false, Ordering::SeqCst);
    let (p2, kids2) = m
        .enqueue_batch(nj("batch_child"), vec![child(true), child(true)])
        .await
        .unwrap();
    assert_eq!(wait_done(&m, p2.id).await.status, JobStatus::Failed);
    healthy.store(true, Ordering::SeqCst);
    m.retry_job(p2.id).await.unwrap();
    let done = wait_done(&m, p2.id).await;
    assert_eq!(done.status, JobStatus::Succeeded);
    assert_eq!(count(kids2[0].id), 2);
    m.stop().await.unwrap();
}

/// With `Distributed`, children are claimed by every node sharing the store.
pub async fn batch_distributed_across_nodes(store: Arc<dyn JobStore>) {
    let t = RunTracker::new();
    let mut managers = Vec::new();
    for node in ["n1", "n2"] {
        let m = manager(&store, test_config(node).lane(lanes::IO, 2));
        m.register_handler("child", lanes::IO, tracked(&t, lanes::IO, 300));
        m.register_batch("batch_child", BatchStrategy::Distributed);
        m.start().await.unwrap();
        managers.push(m);
    }
    let (p, _) = managers[0]
        .enqueue_batch(nj("batch_child"), (0..8).map(|_| child(false)).collect())
        .await
        .unwrap();
    let done = wait_done(&managers[0], p.id).await;
    assert_eq!(done.status, JobStatus::Succeeded);
    assert_eq!(done.completed, 8);
    let kids = store.list_children(p.id).await.unwrap();
    let nodes: HashSet<String> = kids
        .iter()
        .map(|k| {
            k.result.as_ref().unwrap()["node"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(nodes.len(), 2, "both nodes ran children: {nodes:?}");
    assert!(t.violations().is_empty());
    for m in managers {
        m.stop().await.unwrap();
    }
}

/// A batch interrupted by a crash resumes after restart: finished children are not re-run.
pub async fn batch_interrupted_resumes_after_restart(store: Arc<dyn JobStore>) {
    let runs = Arc::new(AtomicUsize::new(0));
    let first_child_runs = Arc::new(AtomicUsize::new(0));
    let m1 = manager(&store, test_config("n1"));
    {
        let runs = runs.clone();
        let first = first_child_runs.clone();
        m1.register_handler("child", lanes::HEAVY, move |job: Job, _c: JobContext| {
            let runs = runs.clone();
            let first = first.clone();
            async move {
                if job.params["i"] == json!(0) {
                    first.fetch_add(1, Ordering::SeqCst);
                    return Ok(JobResult(json!({})));
                }
                runs.fetch_add(1, Ordering::SeqCst);
                futures::future::pending::<()>().await;
                Ok(JobResult(json!({})))
            }
        });
    }
    m1.register_batch("batch_child", BatchStrategy::Sequential);
    m1.start().await.unwrap();
    let kids: Vec<NewJob> = (0..3)
        .map(|i| NewJob::new("child", json!({"i": i})))
        .collect();
    let (p, kids) = m1.enqueue_batch(nj("batch_child"), kids).await.unwrap();
    wait_running(&store, kids[1].id).await;
    drop(m1);

    let m2 = manager(&store, test_config("n1"));
    {
        let first = first_child_runs.clone();
        m2.register_handler("child", lanes::HEAVY, move |job: Job, _c: JobContext| {
            let first = first.clone();
            async move {
                if job.params["i"] == json!(0) {
                    first.fetch_add(1, Ordering::SeqCst);
                }
                Ok(JobResult(json!({})))
            }
        });
    }
    m2.register_batch("batch_child", BatchStrategy::Sequential);
    let report = m2.start().await.unwrap();
    assert!(report.requeued.contains(&p.id));
    assert!(report.requeued.contains(&kids[1].id));
    let done = wait_done(&m2, p.id).await;
    assert_eq!(done.status, JobStatus::Succeeded);
    let r: BatchResult = serde_json::from_value(done.result.unwrap()).unwrap();
    assert_eq!(r.succeeded, 3);
    assert_eq!(
        first_child_runs.load(Ordering::SeqCst),
        1,
        "finished child not re-run"
    );
    assert_eq!(
        store.get_job(kids[1].id).await.unwrap().unwrap().attempts,
        2
    );
    m2.stop().await.unwrap();
}

/// A batch interrupted under policy `fail` fails with all its unfinished children: none is left
/// queued behind a finished parent.
pub async fn batch_stop_with_fail_policy_leaves_no_queued_child(store: Arc<dyn JobStore>) {
    let cfg = test_config("n1")
        .interrupt_policy(InterruptPolicy::Fail)
        .grace_period(Duration::from_millis(200));
    let m = manager(&store, cfg);
    m.register_handler("child", lanes::HEAVY, wait_cancel);
    m.register_batch("batch_child", BatchStrategy::Sequential);
    m.start().await.unwrap();
    let (p, kids) = m
        .enqueue_batch(nj("batch_child"), (0..3).map(|_| child(false)).collect())
        .await
        .unwrap();
    wait_running(&store, kids[0].id).await;
    m.stop().await.unwrap();
    let p = store.get_job(p.id).await.unwrap().unwrap();
    assert_eq!(p.status, JobStatus::Failed);
    assert_eq!(p.error_code.as_deref(), Some("Interrupted"));
    for k in store.list_children(p.id).await.unwrap() {
        assert_eq!(k.status, JobStatus::Failed, "child {k:?}");
        assert_eq!(k.error_code.as_deref(), Some("Interrupted"));
    }
}

/// Handlers may report progress thousands of times; the store sees at most ~2 writes/s while
/// events still flow.
pub async fn progress_store_writes_throttled(store: Arc<dyn JobStore>) {
    let counting = CountingStore::new(store.clone());
    let m = QueueManager::new(counting.clone(), test_config("n1"));
    m.register_handler("chatty", lanes::IO, |_j: Job, ctx: JobContext| async move {
        for i in 0..1200 {
            ctx.progress(i as f64 / 1200.0, "chatting");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        Ok(JobResult::empty())
    });
    let mut events = m.subscribe();
    m.start().await.unwrap();
    let t0 = Instant::now();
    let j = m.enqueue(nj("chatty")).await.unwrap();
    let done = wait_done(&m, j.id).await;
    let secs = t0.elapsed().as_secs_f64();
    assert_eq!(done.status, JobStatus::Succeeded);
    let writes = counting.progress_writes();
    let bound = (secs * 2.0).ceil() as usize + 1;
    assert!(
        writes >= 1 && writes <= bound,
        "{writes} writes in {secs:.2}s (bound {bound})"
    );
    let mut progress_events = 0;
    while let Ok(ev) = events.try_recv() {
        if ev.job.id == j.id && ev.kind == JobEventKind::Progress {
            progress_events += 1;
        }
    }
    assert!(
        progress_events > writes,
        "{progress_events} events vs {writes} writes"
    );
    m.stop().await.unwrap();
}

/// Events go out for each step of the lifecycle, in order.
pub async fn events_follow_lifecycle(store: Arc<dyn JobStore>) {
    let m = manager(&store, test_config("n1"));
    m.register_handler(
        "stepper",
        lanes::IO,
        |_j: Job, ctx: JobContext| async move {
            ctx.progress(0.5, "half");
            Ok(JobResult(json!({"ok": 1})))
        },
    );
    let mut events = m.subscribe();
    m.start().await.unwrap();
    let j = m.enqueue(nj("stepper")).await.unwrap();
    let mut kinds = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while let Ok(Ok(ev)) = tokio::time::timeout_at(deadline, events.recv()).await {
        if ev.job.id != j.id {
            continue;
        }
        kinds.push(ev.kind);
        if ev.kind == JobEventKind::Finished {
            assert_eq!(ev.job.status, JobStatus::Succeeded);
            break;
        }
    }
    assert_eq!(
        kinds,
        vec![
            JobEventKind::Created,
            JobEventKind::Started,
            JobEventKind::Progress,
            JobEventKind::Finished
        ]
    );
    m.stop().await.unwrap();
}

/// Retry moves a failed job back to queued; it runs again with `attempts` kept.
pub async fn retry_runs_again_with_attempts_kept(store: Arc<dyn JobStore>) {
    let m = manager(&store, test_config("n1"));
    m.register_handler("flaky", lanes::IO, |_j: Job, ctx: JobContext| async move {
        if ctx.attempt() == 1 {
            Err(JobError::new("Flaky", "first attempt fails"))
        } else {
            Ok(JobResult(json!({"attempt": ctx.attempt()})))
        }
    });
    m.start().await.unwrap();
    let j = m.enqueue(nj("flaky")).await.unwrap();
    assert_eq!(wait_done(&m, j.id).await.status, JobStatus::Failed);
    assert!(matches!(
        m.retry_job(Uuid::now_v7()).await,
        Err(ManagerError::NotFound(_))
    ));
    let r = m.retry_job(j.id).await.unwrap();
    assert_eq!(r.status, JobStatus::Queued);
    let done = wait_done(&m, j.id).await;
    assert_eq!(done.status, JobStatus::Succeeded);
    assert_eq!(done.attempts, 2);
    assert_eq!(done.result, Some(json!({"attempt": 2})));
    assert!(matches!(
        m.retry_job(j.id).await,
        Err(ManagerError::Conflict(_))
    ));
    m.stop().await.unwrap();
}

/// Deleting an active job is a conflict; a finished one goes away.
pub async fn delete_active_conflicts(store: Arc<dyn JobStore>) {
    let m = manager(&store, test_config("n1"));
    m.register_handler("wait", lanes::HEAVY, wait_cancel);
    m.start().await.unwrap();
    let j = m.enqueue(nj("wait")).await.unwrap();
    wait_running(&store, j.id).await;
    assert!(matches!(
        m.delete_job(j.id).await,
        Err(ManagerError::Conflict(_))
    ));
    m.cancel_job(j.id).await.unwrap();
    wait_done(&m, j.id).await;
    assert_eq!(m.delete_job(j.id).await.unwrap(), vec![j.id]);
    assert!(store.get_job(j.id).await.unwrap().is_none());
    assert!(matches!(
        m.delete_job(j.id).await,
        Err(ManagerError::NotFound(_))
    ));
    m.stop().await.unwrap();
}
