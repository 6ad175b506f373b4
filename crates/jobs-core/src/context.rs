//! [`JobContext`]: what a handler gets besides its job — cancellation, progress, batch access.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::batch::{BatchRunner, BatchStrategy};
use crate::events::{JobEvent, JobEventKind};
use crate::job::{Fence, Job, JobError};
use crate::manager::Engine;
use crate::store::ProgressUpdate;

/// Progress events of one job are published at most this often (stage changes always are).
const EVENT_INTERVAL: Duration = Duration::from_millis(100);

/// The per-job progress state: latest value, throttled store writes, throttled events.
pub(crate) struct ProgressChannel {
    state: Mutex<ProgressState>,
    changed: Notify,
    closed: std::sync::atomic::AtomicBool,
    close: Notify,
    events: broadcast::Sender<JobEvent>,
    batch: Option<Arc<BatchTracker>>,
}

struct ProgressState {
    job: Job,
    completed: Option<i32>,
    last_event: Option<Instant>,
}

impl ProgressChannel {
    pub(crate) fn new(
        job: Job,
        events: broadcast::Sender<JobEvent>,
        batch: Option<Arc<BatchTracker>>,
    ) -> Self {
        ProgressChannel {
            state: Mutex::new(ProgressState {
                job,
                completed: None,
                last_event: None,
            }),
            changed: Notify::new(),
            closed: std::sync::atomic::AtomicBool::new(false),
            close: Notify::new(),
            events,
            batch,
        }
    }

    fn lock(&self) -> MutexGuard<'_, ProgressState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn report(&self, fraction: f64, stage: Option<&str>) {
        if !fraction.is_finite() {
            return;
        }
        let fraction = fraction.clamp(0.0, 1.0);
        let mut st = self.lock();
        let stage_changed = stage.is_some_and(|s| st.job.stage.as_deref() != Some(s));
        if !stage_changed && (st.job.progress - fraction).abs() < 1e-6 {
            return;
        }
        st.job.progress = fraction;
        if let Some(s) = stage
            && stage_changed
        {
            st.job.stage = Some(s.to_owned());
        }
        let id = st.job.id;
        self.changed.notify_one();
        let publish = stage_changed || st.last_event.is_none_or(|t| t.elapsed() >= EVENT_INTERVAL);
        let snapshot = if publish {
            st.last_event = Some(Instant::now());
            Some(st.job.clone())
        } else {
            None
        };
        drop(st);
        if let Some(job) = snapshot {
            let _ = self.events.send(JobEvent {
                kind: JobEventKind::Progress,
                job,
            });
        }
        if let Some(b) = &self.batch {
            b.child_progress(id, fraction);
        }
    }

    /// Sets a batch parent's aggregated progress and `completed`.
    fn report_batch(&self, fraction: f64, completed: i32) {
        let mut st = self.lock();
        let changed = st.completed != Some(completed) || (st.job.progress - fraction).abs() >= 1e-6;
        if !changed {
            return;
        }
        let completed_changed = st.completed != Some(completed);
        st.completed = Some(completed);
        st.job.completed = completed;
        st.job.progress = fraction.clamp(0.0, 1.0);
        self.changed.notify_one();
        let publish =
            completed_changed || st.last_event.is_none_or(|t| t.elapsed() >= EVENT_INTERVAL);
        let snapshot = if publish {
            st.last_event = Some(Instant::now());
            Some(st.job.clone())
        } else {
            None
        };
        drop(st);
        if let Some(job) = snapshot {
            let _ = self.events.send(JobEvent {
                kind: JobEventKind::Progress,
                job,
            });
        }
    }

    pub(crate) fn completed(&self) -> Option<i32> {
        self.lock().completed
    }

    pub(crate) fn batch(&self) -> Option<&Arc<BatchTracker>> {
        self.batch.as_ref()
    }

    fn snapshot(&self) -> ProgressUpdate {
        let st = self.lock();
        ProgressUpdate {
            progress: st.job.progress,
            stage: st.job.stage.clone(),
            completed: st.completed,
        }
    }

    /// Stops [`writer`](Self::writer) after its current write (never mid-statement).
    pub(crate) fn close(&self) {
        self.closed.store(true, std::sync::atomic::Ordering::SeqCst);
        self.close.notify_one();
        self.changed.notify_one();
    }

    fn is_closed(&self) -> bool {
        self.closed.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Writes the latest progress to the store at most once per `interval`, until closed.
    pub(crate) async fn writer(&self, shared: &Engine, fence: &Fence, interval: Duration) {
        loop {
            self.changed.notified().await;
            if self.is_closed() {
                return;
            }
            let upd = self.snapshot();
            match shared.store.update_progress(fence, &upd).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::debug!(job_id = %fence.job_id, "progress write lost its fence")
                }
                Err(e) => {
                    tracing::warn!(job_id = %fence.job_id, error = %e, "progress write failed")
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = self.close.notified() => return,
            }
            if self.is_closed() {
                return;
            }
        }
    }
}

/// Aggregates the progress of a batch parent's children.
pub(crate) struct BatchTracker {
    parent: Arc<ProgressChannel>,
    total: usize,
    inner: Mutex<TrackerState>,
}

struct TrackerState {
    completed: usize,
    partial: HashMap<Uuid, f64>,
}

impl BatchTracker {
    pub(crate) fn new(parent: Arc<ProgressChannel>, total: usize, completed: usize) -> Self {
        let t = BatchTracker {
            parent,
            total,
            inner: Mutex::new(TrackerState {
                completed,
                partial: HashMap::new(),
            }),
        };
        t.publish();
        t
    }

    fn lock(&self) -> MutexGuard<'_, TrackerState> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn publish(&self) {
        let (fraction, completed) = {
            let st = self.lock();
            let partial: f64 = st.partial.values().sum();
            let fraction = if self.total == 0 {
                1.0
            } else {
                (st.completed as f64 + partial) / self.total as f64
            };
            (fraction, st.completed)
        };
        self.parent
            .report_batch(fraction, i32::try_from(completed).unwrap_or(i32::MAX));
    }

    pub(crate) fn child_progress(&self, child: Uuid, fraction: f64) {
        self.lock().partial.insert(child, fraction);
        self.publish();
    }

    /// A child reached a terminal state.
    pub(crate) fn child_finished(&self, child: Uuid) {
        {
            let mut st = self.lock();
            st.partial.remove(&child);
            st.completed = (st.completed + 1).min(self.total);
        }
        self.publish();
    }

    /// A child stopped without reaching a terminal state (re-queued).
    pub(crate) fn child_dropped(&self, child: Uuid) {
        self.lock().partial.remove(&child);
        self.publish();
    }

    /// Sets the number of finished children (distributed batches count them in the store).
    pub(crate) fn set_completed(&self, completed: usize) {
        self.lock().completed = completed.min(self.total);
        self.publish();
    }
}

/// A cheap, cloneable progress handle that can be moved to other threads (e.g. a whisper
/// progress callback or a GStreamer bus loop).
///
/// ```
/// # use jobs_core::{Job, JobContext, JobError, JobResult};
/// async fn handler(_job: Job, ctx: JobContext) -> Result<JobResult, JobError> {
///     let progress = ctx.progress_reporter();
///     tokio::task::spawn_blocking(move || {
///         for i in 0..=10 {
///             progress.report(i as f64 / 10.0, "crunching");
///         }
///     })
///     .await
///     .map_err(JobError::internal)?;
///     Ok(JobResult::empty())
/// }
/// ```
#[derive(Clone)]
pub struct ProgressReporter(Arc<ProgressChannel>);

impl ProgressReporter {
    /// Reports `fraction` (0.0 ..= 1.0, clamped) and the current `stage`.
    pub fn report(&self, fraction: f64, stage: &str) {
        self.0.report(fraction, Some(stage));
    }

    /// Reports `fraction` and keeps the current stage.
    pub fn fraction(&self, fraction: f64) {
        self.0.report(fraction, None);
    }
}

impl std::fmt::Debug for ProgressReporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProgressReporter").finish_non_exhaustive()
    }
}

/// Everything a handler gets besides its [`Job`]: the cancellation token, progress reporting,
/// and, for batch parents, the children and the batch runner.
#[derive(Clone)]
pub struct JobContext {
    pub(crate) job_id: Uuid,
    pub(crate) fence: Fence,
    pub(crate) token: CancellationToken,
    pub(crate) progress: Arc<ProgressChannel>,
    pub(crate) shared: Arc<Engine>,
    pub(crate) deadline: Arc<tokio::sync::watch::Sender<Option<tokio::time::Instant>>>,
}

impl std::fmt::Debug for JobContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobContext")
            .field("job_id", &self.job_id)
            .field("attempt", &self.fence.attempt)
            .field("cancelled", &self.token.is_cancelled())
            .finish()
    }
}

impl JobContext {
    /// The running job's id.
    pub fn job_id(&self) -> Uuid {
        self.job_id
    }

    /// The attempt number of this run (1 for the first run).
    pub fn attempt(&self) -> i32 {
        self.fence.attempt
    }

    /// The id of the node running the job.
    pub fn node_id(&self) -> &str {
        &self.fence.owner
    }

    /// The fence of this run: a store write made with it applies only while the job still
    /// runs here at this attempt (outputs a handler stores beside the job, say), so a node
    /// that lost the lease cannot write over the node that took the job over.
    pub fn fence(&self) -> &Fence {
        &self.fence
    }

    /// Fires when the job is cancelled by a client, the node shuts down, or the lease is lost.
    /// Stop within a second and return [`JobError::cancelled`].
    pub fn cancellation_token(&self) -> &CancellationToken {
        &self.token
    }

    /// `true` once the token fired.
    pub fn is_cancelled(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Completes when the token fires.
    pub async fn cancelled(&self) {
        self.token.cancelled().await;
    }

    /// Returns `Err(JobError::cancelled())` once the token fired; handy with `?` between steps.
    pub fn check_cancelled(&self) -> Result<(), JobError> {
        if self.is_cancelled() {
            Err(JobError::cancelled())
        } else {
            Ok(())
        }
    }

    /// Gives the job a deadline `timeout` from now (replacing an earlier one). Past it, the
    /// token fires and the job fails with `Timeout` (terminal: not retried), whatever the
    /// handler returns after stopping. Handlers derive it from their input (the media jobs:
    /// the input's duration × this node's measured speed) or take an explicit one.
    pub fn set_timeout(&self, timeout: std::time::Duration) {
        let at = tokio::time::Instant::now()
            .checked_add(timeout)
            .unwrap_or_else(|| {
                tokio::time::Instant::now() + std::time::Duration::from_secs(86_400 * 365)
            });
        self.deadline.send_replace(Some(at));
    }

    /// The job's deadline, if one was set.
    pub fn deadline(&self) -> Option<tokio::time::Instant> {
        *self.deadline.borrow()
    }

    /// Reports progress (0.0 ..= 1.0) and the current stage. Call it as often as you like: the
    /// store is written at most twice a second and events are throttled.
    pub fn progress(&self, fraction: f64, stage: &str) {
        self.progress.report(fraction, Some(stage));
    }

    /// A handle for reporting progress from other threads.
    pub fn progress_reporter(&self) -> ProgressReporter {
        ProgressReporter(self.progress.clone())
    }

    /// A handle publishing partial output of this job (live results before it finishes) to
    /// [`QueueManager::subscribe_partials`](crate::QueueManager::subscribe_partials).
    pub fn partials(&self) -> crate::events::PartialSender {
        crate::events::PartialSender {
            job_id: self.job_id,
            tx: self.shared.partials.clone(),
        }
    }

    /// The children of this job (a batch parent), in submit order.
    pub async fn children(&self) -> Result<Vec<Job>, JobError> {
        self.shared
            .store
            .list_children(self.job_id)
            .await
            .map_err(JobError::internal)
    }

    /// A batch runner for this job's children.
    pub fn batch_runner(&self, strategy: BatchStrategy) -> BatchRunner {
        BatchRunner::new(self.clone(), strategy)
    }
}
