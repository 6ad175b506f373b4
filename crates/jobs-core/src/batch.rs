//! Batches: a parent job whose children each process one input. The [`BatchRunner`] runs the
//! children with a [`BatchStrategy`] and computes the parent's [`BatchResult`].

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use tokio::sync::broadcast;

use crate::context::{BatchTracker, JobContext};
use crate::handler::JobHandler;
use crate::job::{BatchResult, Job, JobError, JobResult, JobStatus, codes};
use crate::manager::StopReason;

/// How a batch parent runs its children.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchStrategy {
    /// One child at a time, on this node (local heavy work).
    Sequential,
    /// Up to `n` children at once on this node; each still takes a permit of its own lane, so
    /// the lane bounds the real concurrency (LLM and remote work).
    Bounded(usize),
    /// The children become claimable by every node sharing the store (scale-out); the parent
    /// waits for them.
    Distributed,
}

/// Runs the children of a batch parent. Get one from [`JobContext::batch_runner`].
///
/// ```
/// use jobs_core::{BatchStrategy, Job, JobContext, JobError, JobResult};
/// // A custom batch handler: log, then run the children two at a time.
/// async fn my_batch(job: Job, ctx: JobContext) -> Result<JobResult, JobError> {
///     tracing::info!(children = job.total, "starting batch");
///     ctx.batch_runner(BatchStrategy::Bounded(2)).run().await
/// }
/// ```
#[derive(Debug)]
pub struct BatchRunner {
    ctx: JobContext,
    strategy: BatchStrategy,
}

pub(crate) struct BatchHandler {
    pub(crate) strategy: BatchStrategy,
}

#[async_trait]
impl JobHandler for BatchHandler {
    async fn run(&self, _job: Job, ctx: JobContext) -> Result<JobResult, JobError> {
        ctx.batch_runner(self.strategy).run().await
    }
}

impl BatchRunner {
    pub(crate) fn new(ctx: JobContext, strategy: BatchStrategy) -> Self {
        BatchRunner { ctx, strategy }
    }

    /// Runs every child that is still `queued` and returns the [`BatchResult`].
    ///
    /// - a child's failure never fails the batch;
    /// - the batch fails with `BatchFailed` when no child succeeded and at least one failed
    ///   (the counts are kept as the job's result);
    /// - when the parent is cancelled, no new child starts, running children are cancelled,
    ///   and the parent ends `cancelled` with the counts as its result.
    pub async fn run(self) -> Result<JobResult, JobError> {
        let ctx = &self.ctx;
        let shared = &ctx.shared;
        let parent_id = ctx.job_id;
        let children = shared
            .store
            .list_children(parent_id)
            .await
            .map_err(JobError::internal)?;
        let done = children.iter().filter(|c| c.status.is_terminal()).count();
        let tracker = Arc::new(BatchTracker::new(
            ctx.progress.clone(),
            children.len(),
            done,
        ));
        match self.strategy {
            BatchStrategy::Sequential => self.run_local(children, 1, &tracker).await,
            BatchStrategy::Bounded(n) => self.run_local(children, n.max(1), &tracker).await,
            BatchStrategy::Distributed => self.run_distributed(&tracker).await?,
        }
        let children = shared
            .store
            .list_children(parent_id)
            .await
            .map_err(JobError::internal)?;
        let result = BatchResult::from_children(&children);
        let value = serde_json::to_value(&result).map_err(JobError::internal)?;
        if ctx.is_cancelled() {
            return Err(JobError::cancelled().with_result(value));
        }
        if result.is_failure() {
            return Err(JobError::new(
                codes::BATCH_FAILED,
                format!(
                    "No File In The Batch Succeeded ({} Of {} Failed)",
                    result.failed, result.total
                ),
            )
            .with_details(value.clone())
            .with_result(value));
        }
        Ok(JobResult(value))
    }

    async fn run_local(&self, children: Vec<Job>, limit: usize, tracker: &Arc<BatchTracker>) {
        let ctx = &self.ctx;
        let shared = &ctx.shared;
        let parent_id = ctx.job_id;
        let token = ctx.token.clone();
        let queued: Vec<Job> = children
            .into_iter()
            .filter(|c| c.status == JobStatus::Queued)
            .collect();
        let work = futures::stream::iter(queued).for_each_concurrent(limit, |child| {
            let token = token.clone();
            let tracker = tracker.clone();
            async move {
                if token.is_cancelled() {
                    return;
                }
                let Some(lane) = shared.lane(&child.lane) else {
                    tracing::error!(job_id = %child.id, lane = %child.lane, "child lane not configured on this node");
                    return;
                };
                let permit = tokio::select! {
                    biased;
                    _ = token.cancelled() => return,
                    p = lane.sem.clone().acquire_owned() => match p {
                        Ok(p) => p,
                        Err(_) => return,
                    },
                };
                if token.is_cancelled() {
                    return;
                }
                let claimed = shared
                    .store
                    .claim_job(child.id, &shared.config.node_id, shared.config.lease)
                    .await;
                match claimed {
                    Ok(Some(job)) => {
                        let Some((fence, child_token)) = shared.register_running(&job) else {
                            return;
                        };
                        if token.is_cancelled() {
                            shared.propagate_cancel(parent_id);
                        }
                        shared
                            .execute(job, fence, child_token, permit, Some(tracker))
                            .await;
                    }
                    Ok(None) => {
                        // Cancelled (or otherwise finished) meanwhile.
                        if let Ok(Some(j)) = shared.store.get_job(child.id).await
                            && j.status.is_terminal() {
                                tracker.child_finished(j.id);
                            }
                    }
                    Err(e) => {
                        tracing::warn!(job_id = %child.id, error = %e, "could not claim batch child");
                    }
                }
            }
        });
        let mut work = std::pin::pin!(work);
        tokio::select! {
            _ = &mut work => return,
            _ = token.cancelled() => {}
        }
        shared.propagate_cancel(parent_id);
        work.await;
    }

    async fn run_distributed(&self, tracker: &Arc<BatchTracker>) -> Result<(), JobError> {
        let ctx = &self.ctx;
        let shared = &ctx.shared;
        let parent_id = ctx.job_id;
        let mut events = shared.events.subscribe();
        shared
            .store
            .release_children(parent_id)
            .await
            .map_err(JobError::internal)?;
        let mut woken = false;
        loop {
            let children = shared
                .store
                .list_children(parent_id)
                .await
                .map_err(JobError::internal)?;
            if !woken {
                for c in &children {
                    shared.wake(&c.lane);
                }
                woken = true;
            }
            let done = children.iter().filter(|c| c.status.is_terminal()).count();
            tracker.set_completed(done);
            if done == children.len() {
                return Ok(());
            }
            if ctx.token.is_cancelled() && shared.reason_of(parent_id) != Some(StopReason::User) {
                // Shutdown or lost lease: the children stay with the other nodes.
                return Ok(());
            }
            let tick = tokio::time::sleep(Duration::from_secs(1));
            let mut tick = std::pin::pin!(tick);
            loop {
                tokio::select! {
                    _ = &mut tick => break,
                    _ = ctx.token.cancelled(), if !ctx.token.is_cancelled() => break,
                    ev = events.recv() => match ev {
                        Ok(ev) if ev.job.parent_id == Some(parent_id) && ev.job.status.is_terminal() => break,
                        Ok(_) => {}
                        Err(broadcast::error::RecvError::Lagged(_)) => break,
                        Err(broadcast::error::RecvError::Closed) => break,
                    }
                }
            }
        }
    }
}
