//! The executor: runs a claimed job's handler (panics caught, progress written on the side),
//! writes its outcome through the fence, and applies the interrupt policy.

use std::panic::AssertUnwindSafe;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use futures::FutureExt;
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::InterruptPolicy;
use super::engine::{Engine, StopReason, lock, panic_message};
use crate::context::{BatchTracker, JobContext, ProgressChannel};
use crate::events::JobEventKind;
use crate::job::{Fence, Job, JobError, Outcome};
use crate::store::{Completion, DEFAULT_MAX_ATTEMPTS, StoreError};

impl Engine {
    pub(super) fn spawn_job(self: &Arc<Self>, job: Job, permit: OwnedSemaphorePermit) {
        let Some((fence, token)) = self.register_running(&job) else {
            tracing::error!(job_id = %job.id, "claimed job has no lease");
            return;
        };
        let shared = self.clone();
        let mut tasks = lock(&self.job_tasks);
        while tasks.try_join_next().is_some() {}
        tasks.spawn(async move {
            shared.execute(job, fence, token, permit, None).await;
        });
    }

    /// Runs a claimed, registered job to its end and writes the outcome (fenced).
    pub(crate) async fn execute(
        self: &Arc<Self>,
        job: Job,
        fence: Fence,
        token: CancellationToken,
        permit: OwnedSemaphorePermit,
        batch: Option<Arc<BatchTracker>>,
    ) -> Option<Job> {
        let mut permit = Some(permit);
        let job_id = job.id;
        let lane = job.lane.clone();
        // Never `Started` before this node's own `Created` for the job.
        self.wait_announced(job_id).await;
        self.publish(JobEventKind::Started, job.clone());
        let progress = Arc::new(ProgressChannel::new(
            job.clone(),
            self.events.clone(),
            batch.clone(),
        ));
        let (deadline_tx, mut deadline_rx) = tokio::sync::watch::channel(None);
        let ctx = JobContext {
            job_id,
            fence: fence.clone(),
            token,
            progress: progress.clone(),
            shared: self.clone(),
            deadline: Arc::new(deadline_tx),
        };
        let handler = self.handler_for(&job.job_type);
        let job_type = job.job_type.clone();
        let job_type_name = job.job_type.clone();
        let started = tokio::time::Instant::now();
        let is_child = job.parent_id.is_some();
        let total = job.total;
        let run = async move {
            match handler {
                Some(h) => h.run(job, ctx).await,
                None => Err(JobError::unknown_job_type(&job_type)),
            }
        };
        let run = AssertUnwindSafe(run).catch_unwind();
        let mut run = pin!(run);
        let writer = progress.writer(self, &fence, self.config.progress_interval);
        let mut writer = pin!(writer);
        let mut writer_done = false;
        let mut deadline: Option<tokio::time::Instant> = None;
        let mut deadline_open = true;
        let mut timed_out = false;
        let result = loop {
            let until = deadline.unwrap_or_else(tokio::time::Instant::now);
            tokio::select! {
                r = &mut run => break r,
                _ = &mut writer, if !writer_done => writer_done = true,
                c = deadline_rx.changed(), if deadline_open => match c {
                    Ok(()) => deadline = *deadline_rx.borrow_and_update(),
                    Err(_) => deadline_open = false,
                },
                _ = tokio::time::sleep_until(until), if deadline.is_some() && !timed_out => {
                    // The work stops: the handler sees its token fire.
                    timed_out = true;
                    self.mark(job_id, StopReason::Timeout);
                }
            }
        };
        // Let an in-flight progress write finish rather than dropping it mid-statement.
        progress.close();
        if !writer_done {
            writer.await;
        }
        let mut outcome = match result {
            Ok(Ok(r)) => Outcome::Succeeded(r),
            Ok(Err(e)) => Outcome::Failed(e),
            Err(panic) => Outcome::Failed(JobError::internal_msg(format!(
                "handler panicked: {}",
                panic_message(panic.as_ref())
            ))),
        };
        if let Outcome::Failed(e) = &outcome
            && let Some(src) = e.internal_source()
        {
            tracing::error!(job_id = %job_id, error = %src, "job failed with an unexpected error");
        }
        let entry = lock(&self.running).remove(&job_id);
        let mut reason = entry.as_ref().and_then(|e| e.reason);
        let max_attempts = entry
            .as_ref()
            .map_or(DEFAULT_MAX_ATTEMPTS, |e| e.max_attempts);
        if reason == Some(StopReason::Timeout) {
            if let Outcome::Failed(_) = outcome {
                let secs = ctx_timeout_secs(started, deadline);
                outcome = Outcome::Failed(
                    JobError::new(
                        crate::job::codes::TIMEOUT,
                        format!("Job Exceeded Its Deadline Of {secs} s"),
                    )
                    .with_details(serde_json::json!({ "timeout_seconds": secs })),
                );
            }
            reason = None;
        }
        // Batch children are not retried on their own: their parent runs them once each, and
        // the batch is retried as a whole (`retry_job`).
        if let Outcome::Failed(e) = &outcome
            && e.is_retryable()
            && reason.is_none()
            && batch.is_none()
            && !is_child
            && fence.attempt < max_attempts
        {
            let policy = self.retry_policy(&job_type_name);
            if policy.enabled {
                let delay = policy.delay(fence.attempt);
                tracing::info!(job_id = %job_id, attempt = fence.attempt, code = e.code(), delay_ms = delay.as_millis() as u64, "retryable failure; re-queued with backoff");
                outcome = Outcome::Retry {
                    error: e.clone(),
                    delay,
                };
            }
        }
        let completed = progress.completed().unwrap_or(total);
        let final_job = match (reason, outcome) {
            (Some(StopReason::LeaseLost), _) => {
                tracing::warn!(job_id = %job_id, "lease lost; another node owns the job now");
                None
            }
            (Some(StopReason::Shutdown), Outcome::Failed(_)) => {
                let j = self.interrupt(&fence, max_attempts).await;
                if let Some(j) = &j {
                    self.publish_after_interrupt(j.clone());
                }
                j
            }
            (_, outcome) => {
                let plain = batch.is_none() && progress.completed().is_none() && total == 1;
                let completion = Completion {
                    fence: fence.clone(),
                    outcome,
                    completed,
                };
                let queued = if plain {
                    // The handler is done: outside a strict lane its permit goes to the next
                    // job while the completer writes this outcome together with others.
                    if !self.config.strict_lanes.contains(&lane) {
                        drop(permit.take());
                    }
                    self.send_completion(completion)
                } else {
                    Err(completion)
                };
                let res = match queued {
                    Ok(rx) => rx.await.ok().flatten(),
                    // A batch member, or the completer is closed: write it here.
                    Err(c) => {
                        self.with_retries("store the job's outcome", job_id, || {
                            self.store
                                .complete_job(&c.fence, c.outcome.clone(), c.completed)
                        })
                        .await
                    }
                };
                match res {
                    Some(Some(j)) if j.status.is_active() => {
                        // A retryable failure: re-queued with backoff.
                        self.publish_after_interrupt(j.clone());
                        Some(j)
                    }
                    Some(Some(j)) => {
                        self.publish(JobEventKind::Finished, j.clone());
                        Some(j)
                    }
                    Some(None) => {
                        // Either the lease was lost, or an earlier try committed but its answer
                        // was lost with the connection: the store knows which.
                        match self.store.get_job(job_id).await {
                            Ok(Some(j)) if j.status.is_terminal() && j.lease_owner.is_none() => {
                                self.publish(JobEventKind::Finished, j.clone());
                                Some(j)
                            }
                            Ok(Some(j))
                                if j.status == crate::job::JobStatus::Queued
                                    && j.attempts == fence.attempt =>
                            {
                                self.publish_after_interrupt(j.clone());
                                Some(j)
                            }
                            _ => {
                                tracing::warn!(job_id = %job_id, "completion rejected: the lease was lost");
                                None
                            }
                        }
                    }
                    None => None,
                }
            }
        };
        // A batch parent that ended (failed by an interruption, say) leaves no queued child
        // behind: those would never run.
        if progress.completed().is_some()
            && let Some(j) = final_job.as_ref().filter(|j| j.status.is_terminal())
        {
            self.fail_orphans_of(j.id).await;
        }
        if let Some(b) = progress.batch() {
            match &final_job {
                Some(j) if j.status.is_terminal() => b.child_finished(job_id),
                _ => b.child_dropped(job_id),
            }
        }
        drop(permit);
        self.job_done.notify_waiters();
        final_job
    }

    /// Applies the interrupt policy to a job through its fence.
    pub(crate) async fn interrupt(&self, fence: &Fence, max_attempts: i32) -> Option<Job> {
        let requeue =
            self.config.interrupt_policy == InterruptPolicy::Retry && fence.attempt < max_attempts;
        self.with_retries("interrupt the job", fence.job_id, || {
            self.store.interrupt_job(fence, requeue)
        })
        .await
        .flatten()
    }

    /// Runs a fenced store write, retrying backend errors (a dropped connection, a failover)
    /// for up to ~15 s. Fenced writes are safe to repeat: a repeat after a lost commit
    /// answers "fence lost" and changes nothing. `None` when every try failed.
    pub(super) async fn with_retries<T, F, Fut>(
        &self,
        what: &str,
        job_id: Uuid,
        mut op: F,
    ) -> Option<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, StoreError>>,
    {
        // 50 ms doubling to 4 s, 8 retries (~15 s), jittered so nodes that lost the same
        // database do not come back in lockstep.
        let mut delays = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(50))
            .with_max_delay(Duration::from_secs(4))
            .with_max_times(8)
            .with_jitter()
            .build();
        let mut attempt = 1;
        loop {
            match op().await {
                Ok(v) => return Some(v),
                Err(StoreError::Backend(e)) => {
                    let Some(delay) = delays.next() else {
                        tracing::error!(job_id = %job_id, error = %e, attempt, "could not {what}; giving up");
                        return None;
                    };
                    tracing::warn!(job_id = %job_id, error = %e, attempt, "could not {what}; retrying");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                Err(e) => {
                    tracing::error!(job_id = %job_id, error = %e, "could not {what}");
                    return None;
                }
            }
        }
    }

    pub(super) async fn wait_idle(&self, deadline: tokio::time::Instant) {
        loop {
            let notified = self.job_done.notified();
            if lock(&self.running).is_empty() {
                return;
            }
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep_until(deadline) => return,
            }
        }
    }
}

/// The timeout that passed, in whole seconds (at least 1), for the error message.
fn ctx_timeout_secs(started: tokio::time::Instant, deadline: Option<tokio::time::Instant>) -> u64 {
    deadline
        .map(|d| d.saturating_duration_since(started).as_secs_f64().round() as u64)
        .unwrap_or(0)
        .max(1)
}
