//! The state transitions of a job, as pure functions over [`Job`] values.
//!
//! Every [`JobStore`](crate::JobStore) applies these same functions: the in-memory store on its
//! map, the SQL stores on rows they locked inside a transaction. That keeps the rules in one
//! place; the stores only add atomicity and persistence.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::job::{
    AttemptError, BatchResult, Fence, Job, JobError, JobStatus, NewJob, Outcome, Webhook,
    WebhookAttempt, WebhookStatus, lanes,
};
use crate::store::{DEFAULT_MAX_ATTEMPTS, StoreError};

fn delta(d: Duration) -> chrono::TimeDelta {
    chrono::TimeDelta::from_std(d).unwrap_or(chrono::TimeDelta::MAX)
}

/// `now + lease`, saturating.
pub fn lease_until(now: DateTime<Utc>, lease: Duration) -> DateTime<Utc> {
    now.checked_add_signed(delta(lease))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// A new top-level job (`queued`, claimable, `total = 1`).
pub fn new_job(nj: NewJob, now: DateTime<Utc>) -> Job {
    Job {
        id: nj.id,
        job_type: nj.job_type,
        lane: nj.lane.unwrap_or_else(|| lanes::IO.to_owned()),
        status: JobStatus::Queued,
        profile_id: nj.profile_id,
        file_id: nj.file_id,
        parent_id: None,
        claimable: true,
        params: nj.params,
        result: None,
        error: None,
        error_code: None,
        error_details: None,
        progress: 0.0,
        stage: None,
        total: 1,
        completed: 0,
        attempts: 0,
        max_attempts: nj.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS).max(1),
        priority: nj.priority,
        // Never in the past: FIFO by `run_at` stays FIFO by submission.
        run_at: nj.run_at.map_or(now, |t| t.max(now)),
        last_error: None,
        unique_key: nj.unique_key,
        dedupe_key: nj.dedupe_key,
        webhook: nj.webhook_url.map(Webhook::new),
        lease_owner: None,
        lease_expires_at: None,
        cancel_requested: false,
        created_at: now,
        started_at: None,
        finished_at: None,
        updated_at: now,
    }
}

/// A batch: the parent with `total = children.len()` and the children, not claimable.
pub fn new_batch(
    parent: NewJob,
    children: Vec<NewJob>,
    now: DateTime<Utc>,
) -> Result<(Job, Vec<Job>), StoreError> {
    let mut p = new_job(parent, now);
    p.total = i32::try_from(children.len())
        .map_err(|_| StoreError::Invalid("too many children".into()))?;
    let kids = children
        .into_iter()
        .map(|c| {
            let mut j = new_job(c, now);
            j.parent_id = Some(p.id);
            j.claimable = false;
            j
        })
        .collect();
    Ok((p, kids))
}

/// A lane's claim order as a sort key: highest priority first, then `run_at`, then id. Every
/// store claims in this order (the SQL stores by their claim index).
pub fn claim_key(job: &Job) -> (std::cmp::Reverse<i16>, DateTime<Utc>, uuid::Uuid) {
    (std::cmp::Reverse(job.priority), job.run_at, job.id)
}

/// `true` while the job is `running` under the fence's owner and attempt.
pub fn fence_matches(job: &Job, fence: &Fence) -> bool {
    job.status == JobStatus::Running
        && job.lease_owner.as_deref() == Some(fence.owner.as_str())
        && job.attempts == fence.attempt
}

/// `queued → running` for `owner`.
pub fn claim(job: &mut Job, owner: &str, lease: Duration, now: DateTime<Utc>) {
    job.status = JobStatus::Running;
    job.attempts += 1;
    job.lease_owner = Some(owner.to_owned());
    job.lease_expires_at = Some(lease_until(now, lease));
    job.started_at = Some(now);
    job.cancel_requested = false;
    job.updated_at = now;
}

/// The fenced completion rule: a pending cancel wins (a success's result is still kept). A
/// [`Outcome::Retry`] re-queues the job, claimable from its `at`, with the error in
/// `last_error`.
pub fn complete(job: &mut Job, outcome: Outcome, completed: i32, now: DateTime<Utc>) {
    job.lease_owner = None;
    job.lease_expires_at = None;
    job.updated_at = now;
    if let Outcome::Retry { error, delay } = &outcome {
        job.last_error = Some(attempt_error(job, error, now));
        if !job.cancel_requested {
            job.status = JobStatus::Queued;
            job.run_at = lease_until(now, *delay);
            job.progress = 0.0;
            job.stage = None;
            job.result = None;
            return;
        }
    }
    job.finished_at = Some(now);
    job.completed = completed;
    match outcome {
        Outcome::Succeeded(r) => {
            job.result = Some(r.0);
            if job.cancel_requested {
                job.status = JobStatus::Cancelled;
            } else {
                job.status = JobStatus::Succeeded;
                job.progress = 1.0;
            }
        }
        Outcome::Failed(e) | Outcome::Retry { error: e, .. } => {
            job.result = e.result().cloned();
            if job.cancel_requested {
                job.status = JobStatus::Cancelled;
            } else {
                job.last_error = Some(attempt_error(job, &e, now));
                set_error(job, &e);
                job.status = JobStatus::Failed;
            }
        }
    }
    ended(job, now);
}

fn attempt_error(job: &Job, e: &JobError, now: DateTime<Utc>) -> AttemptError {
    AttemptError {
        attempt: job.attempts,
        code: e.code().to_owned(),
        message: e.message().to_owned(),
        details: e.details().cloned(),
        retryable: e.is_retryable(),
        at: now,
    }
}

/// Called after every transition that may have made `job` terminal: a job with a webhook
/// gets its new terminal state marked for delivery in the same write (the store's outbox).
pub fn ended(job: &mut Job, now: DateTime<Utc>) {
    if !job.status.is_terminal() {
        return;
    }
    if let Some(w) = job.webhook.as_mut() {
        w.status = WebhookStatus::Pending;
        w.seq += 1;
        w.event = Some(job.status);
        w.event_at = Some(now);
        w.attempts = 0;
        w.due_us = Some(now.timestamp_micros());
        w.last_error = None;
        w.delivered_at = None;
    }
}

/// `true` when the job's webhook has a delivery due at `now`.
pub fn webhook_due(job: &Job, now: DateTime<Utc>) -> bool {
    job.webhook.as_ref().is_some_and(|w| {
        w.status == WebhookStatus::Pending && w.due_us.is_some_and(|d| d <= now.timestamp_micros())
    })
}

/// A delivery service claims a due webhook: its due time moves `lease` ahead, so no other
/// claimer takes it while this try runs (a crashed try is retried after the lease).
pub fn claim_webhook(job: &mut Job, lease: Duration, now: DateTime<Utc>) {
    if let Some(w) = job.webhook.as_mut() {
        w.due_us = Some(lease_until(now, lease).timestamp_micros());
    }
}

/// Records a delivery try of delivery `seq`. `false` (nothing changed) when the job has
/// reached another terminal state since (the newer one is delivered instead) or is not
/// pending.
pub fn record_webhook(
    job: &mut Job,
    seq: i32,
    attempt: &WebhookAttempt,
    now: DateTime<Utc>,
) -> bool {
    let current = job
        .webhook
        .as_ref()
        .is_some_and(|w| w.seq == seq && w.status == WebhookStatus::Pending);
    if !current {
        return false;
    }
    job.updated_at = now;
    let Some(w) = job.webhook.as_mut() else {
        return false;
    };
    w.attempts += 1;
    match attempt {
        WebhookAttempt::Delivered => {
            w.status = WebhookStatus::Delivered;
            w.due_us = None;
            w.last_error = None;
            w.delivered_at = Some(now);
        }
        WebhookAttempt::RetryAt(at, err) => {
            w.due_us = Some((*at).max(now).timestamp_micros());
            w.last_error = Some(err.clone());
        }
        WebhookAttempt::GaveUp(err) => {
            w.status = WebhookStatus::Failed;
            w.due_us = None;
            w.last_error = Some(err.clone());
        }
    }
    true
}

/// `true` when `job` is a finished top-level job that ended before `before` (retention).
pub fn prunable(job: &Job, before: DateTime<Utc>) -> bool {
    job.parent_id.is_none()
        && job.status.is_terminal()
        && job.finished_at.is_some_and(|f| f < before)
        // Never before its webhook was delivered or given up.
        && job
            .webhook
            .as_ref()
            .is_none_or(|w| w.status != WebhookStatus::Pending)
}

fn set_error(job: &mut Job, e: &JobError) {
    job.error = Some(e.message().to_owned());
    job.error_code = Some(e.code().to_owned());
    job.error_details = e.details().cloned();
}

/// Interruption: re-queue, or fail with `Interrupted`; a pending cancel wins.
pub fn interrupt(job: &mut Job, requeue: bool, now: DateTime<Utc>) {
    job.lease_owner = None;
    job.lease_expires_at = None;
    job.updated_at = now;
    if job.cancel_requested {
        job.status = JobStatus::Cancelled;
        job.finished_at = Some(now);
    } else if requeue {
        job.status = JobStatus::Queued;
        job.progress = 0.0;
        job.stage = None;
    } else {
        set_error(job, &JobError::interrupted());
        job.status = JobStatus::Failed;
        job.finished_at = Some(now);
    }
    ended(job, now);
}

/// Fails a queued job.
pub fn fail_queued(job: &mut Job, error: &JobError, now: DateTime<Utc>) {
    job.status = JobStatus::Failed;
    job.finished_at = Some(now);
    job.updated_at = now;
    job.completed = job.total;
    set_error(job, error);
    ended(job, now);
}

fn cancel_one(job: &mut Job, now: DateTime<Utc>) -> bool {
    match job.status {
        JobStatus::Queued => {
            job.status = JobStatus::Cancelled;
            job.cancel_requested = true;
            job.finished_at = Some(now);
            job.completed = job.total;
            job.updated_at = now;
            ended(job, now);
            true
        }
        JobStatus::Running if !job.cancel_requested => {
            job.cancel_requested = true;
            job.updated_at = now;
            true
        }
        _ => false,
    }
}

/// The cancel rule for a job and its children (pass an empty slice for a plain job). Returns
/// the indices of the children that changed; `target` changes in place unless terminal.
pub fn cancel(target: &mut Job, children: &mut [Job], now: DateTime<Utc>) -> Vec<usize> {
    if target.status.is_terminal() {
        return vec![];
    }
    let changed: Vec<usize> = children
        .iter_mut()
        .enumerate()
        .filter_map(|(i, c)| cancel_one(c, now).then_some(i))
        .collect();
    let was_queued = target.status == JobStatus::Queued;
    target.cancel_requested = true;
    target.updated_at = now;
    if was_queued {
        target.status = JobStatus::Cancelled;
        target.finished_at = Some(now);
        if children.is_empty() {
            target.completed = target.total;
        } else {
            let r = BatchResult::from_children(children);
            target.completed = count(r.succeeded + r.failed + r.cancelled);
            target.result = serde_json::to_value(&r).ok();
        }
        ended(target, now);
    }
    changed
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Resets a finished job to `queued`, keeping `attempts` and granting `extra_attempts` more.
pub fn reset_for_retry(job: &mut Job, extra_attempts: i32, now: DateTime<Utc>) {
    job.status = JobStatus::Queued;
    job.result = None;
    job.error = None;
    job.error_code = None;
    job.error_details = None;
    job.progress = 0.0;
    job.stage = None;
    job.finished_at = None;
    job.lease_owner = None;
    job.lease_expires_at = None;
    job.cancel_requested = false;
    job.max_attempts = job.attempts + extra_attempts.max(1);
    // A retry asked for by a client runs now, not at the end of an earlier backoff.
    job.run_at = now;
    job.updated_at = now;
}

/// What a retry changes.
#[derive(Debug, Default)]
pub struct RetryPlan {
    /// Indices of the children (of `target`, or siblings including `target` for a child) that
    /// were re-queued.
    pub children: Vec<usize>,
    /// The parent was re-opened (retry of a child).
    pub parent: bool,
}

/// The retry rule.
///
/// - `target` must be `failed` or `cancelled`;
/// - a batch parent (`children` = its children) re-queues only its failed/cancelled children;
/// - a child (`parent` = its parent, `children` = all children of that parent, `target`
///   included) needs a finished parent, which is re-opened.
pub fn retry(
    target: &mut Job,
    parent: Option<&mut Job>,
    children: &mut [Job],
    extra_attempts: i32,
    now: DateTime<Utc>,
) -> Result<RetryPlan, StoreError> {
    if !matches!(target.status, JobStatus::Failed | JobStatus::Cancelled) {
        return Err(StoreError::Conflict(format!(
            "job is {}; only failed or cancelled jobs can be retried",
            target.status
        )));
    }
    let mut plan = RetryPlan::default();
    match parent {
        Some(p) => {
            if p.status.is_active() {
                return Err(StoreError::Conflict(
                    "the batch of this job is still active".into(),
                ));
            }
            reset_for_retry(target, extra_attempts, now);
            let done = children
                .iter()
                .filter(|c| c.id != target.id && c.status.is_terminal())
                .count();
            reset_for_retry(p, extra_attempts, now);
            p.completed = count(done);
            plan.parent = true;
        }
        None => {
            let mut done = 0;
            for (i, c) in children.iter_mut().enumerate() {
                if matches!(c.status, JobStatus::Failed | JobStatus::Cancelled) {
                    reset_for_retry(c, extra_attempts, now);
                    plan.children.push(i);
                } else if c.status.is_terminal() {
                    done += 1;
                }
            }
            reset_for_retry(target, extra_attempts, now);
            target.completed = if children.is_empty() { 0 } else { count(done) };
        }
    }
    Ok(plan)
}

/// The delete rule: a job (and its children) can be deleted only when none is active.
pub fn check_deletable(job: &Job, children: &[Job]) -> Result<(), StoreError> {
    if job.status.is_active() || children.iter().any(|c| c.status.is_active()) {
        return Err(StoreError::Conflict(format!(
            "job {} is {}; cancel it before deleting it",
            job.id, job.status
        )));
    }
    Ok(())
}
