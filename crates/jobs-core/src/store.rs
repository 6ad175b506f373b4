//! The storage contract: [`JobStore`]. Every backend (the in-memory [`MemoryStore`], SQLite,
//! PostgreSQL) implements it and passes the same conformance suite
//! (`jobs_core::testkit`, feature `testkit`).
//!
//! [`MemoryStore`]: crate::MemoryStore

use std::time::Duration;

use async_trait::async_trait;
use mediajobs_codes::ErrorCode;
use tokio::sync::broadcast;
use uuid::Uuid;

use chrono::{DateTime, Utc};

use crate::job::{Fence, Job, JobError, JobFilter, NewJob, Outcome, WebhookAttempt};

/// Default `max_attempts` when neither the job nor the manager sets one.
pub const DEFAULT_MAX_ATTEMPTS: i32 = 3;

/// Errors of a [`JobStore`].
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No such row: `"job <id>"`, `"file <id>"`, … (the message is `"<what> not found"`).
    #[error("{0} not found")]
    NotFound(String),
    /// The operation does not apply to the job's current state (e.g. deleting an active job).
    #[error("{0}")]
    Conflict(String),
    /// The input violates a constraint of the store (e.g. an unknown file id).
    #[error("invalid input: {0}")]
    Invalid(String),
    /// The backend failed (connection lost, disk full, …).
    #[error("storage backend error: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    /// The stable error code (`NotFound`, `Conflict`, `ValidationError`, `Database`).
    pub fn code(&self) -> ErrorCode {
        match self {
            StoreError::NotFound(_) => ErrorCode::NotFound,
            StoreError::Conflict(_) => ErrorCode::Conflict,
            StoreError::Invalid(_) => ErrorCode::ValidationError,
            StoreError::Backend(_) => ErrorCode::Database,
        }
    }

    /// `NotFound` for a job.
    pub fn job_not_found(id: Uuid) -> Self {
        StoreError::NotFound(format!("job {id}"))
    }

    /// What a bulk insert answers for a job with a `unique_key` (they go through
    /// [`JobStore::insert_job`] one at a time).
    pub fn unique_in_bulk() -> Self {
        StoreError::Invalid("jobs with a unique_key are inserted one at a time (insert_job)".into())
    }

    /// Wraps any backend error.
    pub fn backend<E: std::error::Error + Send + Sync + 'static>(e: E) -> Self {
        StoreError::Backend(Box::new(e))
    }
}

/// What a lease renewal found for one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseStatus {
    /// The job.
    pub job_id: Uuid,
    /// `false` when the fence no longer matches: the job was reclaimed, finished or deleted.
    pub held: bool,
    /// A client asked to cancel the job.
    pub cancel_requested: bool,
}

/// A fenced progress write.
#[derive(Debug, Clone, PartialEq)]
pub struct ProgressUpdate {
    /// 0.0 ..= 1.0 (clamped by the writer).
    pub progress: f64,
    /// Current stage, if any.
    pub stage: Option<String>,
    /// For batch parents: number of finished children.
    pub completed: Option<i32>,
}

/// A job that changed, plus the other jobs the same operation changed (children of a parent,
/// or the parent of a child).
#[derive(Debug, Clone, PartialEq)]
pub struct Changed {
    /// The job the operation was asked about, in its new state.
    pub job: Job,
    /// Related jobs that changed too.
    pub related: Vec<Job>,
}

impl Changed {
    /// All jobs in the change, the target first.
    pub fn all(&self) -> impl Iterator<Item = &Job> {
        std::iter::once(&self.job).chain(self.related.iter())
    }
}

/// One fenced completion of [`JobStore::complete_jobs`]: what [`JobStore::complete_job`] takes.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// The claim the completion is for.
    pub fence: Fence,
    /// How the handler ended.
    pub outcome: Outcome,
    /// The `completed` count to record (the job's `total` for a plain job).
    pub completed: i32,
}

/// Cross-node signals a store may publish (PostgreSQL `LISTEN/NOTIFY`, or in-process).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreSignal {
    /// Claimable jobs were added or re-queued in `lane`.
    JobsAvailable {
        /// The lane.
        lane: String,
    },
    /// A client asked to cancel a running job.
    CancelRequested {
        /// The job.
        job_id: Uuid,
    },
    /// A job changed on another node (for event streams).
    JobChanged {
        /// The job.
        job_id: Uuid,
    },
    /// The signal connection was re-established: anything may have been missed.
    Resync,
}

/// Storage for jobs. All methods are atomic with respect to each other.
///
/// The contract, proven by `jobs_core::testkit` for every backend:
/// - `claim_*` moves one `queued` job to `running`, increments `attempts`, sets the lease, and
///   never hands the same job to two claimers. Lane claims take only jobs whose `run_at` has
///   come, highest `priority` first, then by `run_at`, then id.
/// - A job with a `unique_key` is never inserted while another active job has that key.
/// - Every transition to a terminal state marks the job's webhook `pending` in the same write
///   ([`rules::ended`](crate::rules::ended)).
/// - Writes that take a [`Fence`] apply only while the job is `running` with the fence's owner
///   and attempt, so a worker that lost its lease changes nothing.
/// - Terminal states change only through [`retry_job`](JobStore::retry_job).
#[async_trait]
pub trait JobStore: Send + Sync + 'static {
    /// Inserts a top-level job (`queued`, claimable, `total = 1`).
    ///
    /// With a `unique_key` that an active (`queued` or `running`) job already has, nothing is
    /// inserted and that job is returned instead: compare its id with the `NewJob`'s.
    async fn insert_job(&self, job: NewJob) -> Result<Job, StoreError>;

    /// Inserts a batch parent and its children in one transaction. The parent gets
    /// `total = children.len()`; children keep the given order (their submit order), are
    /// `queued` and not claimable (their parent runs them). A parent with a `unique_key` an
    /// active job holds inserts nothing: that job and its children are returned.
    async fn insert_batch(
        &self,
        parent: NewJob,
        children: Vec<NewJob>,
    ) -> Result<(Job, Vec<Job>), StoreError>;

    /// Inserts several top-level jobs (as [`insert_job`](JobStore::insert_job) each) in one
    /// transaction: all or none, in the given order (so they are claimed in that order).
    /// Jobs with a `unique_key` go through [`insert_job`](JobStore::insert_job) instead
    /// ([`StoreError::Invalid`] here).
    ///
    /// The default inserts them one at a time (not atomic); the stores of this workspace
    /// override it with one transaction.
    async fn insert_jobs(&self, jobs: Vec<NewJob>) -> Result<Vec<Job>, StoreError> {
        let mut out = Vec::with_capacity(jobs.len());
        for j in jobs {
            out.push(self.insert_job(j).await?);
        }
        Ok(out)
    }

    /// One job.
    async fn get_job(&self, id: Uuid) -> Result<Option<Job>, StoreError>;

    /// Top-level jobs matching `filter`, newest first.
    async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<Job>, StoreError>;

    /// Children of a parent in submit order.
    async fn list_children(&self, parent_id: Uuid) -> Result<Vec<Job>, StoreError>;

    /// Every `queued` or `running` job, oldest first (`created_at`, then id).
    async fn list_unfinished(&self) -> Result<Vec<Job>, StoreError>;

    /// `running` jobs whose lease ran out by the store's clock.
    async fn list_expired_leases(&self) -> Result<Vec<Job>, StoreError>;

    /// Claims the oldest claimable `queued` job of `lane` for `owner` with a lease of `lease`.
    async fn claim_next(
        &self,
        lane: &str,
        owner: &str,
        lease: Duration,
    ) -> Result<Option<Job>, StoreError>;

    /// Claims up to `max` claimable `queued` jobs of `lane` at once, in claim order (priority,
    /// then FIFO), each exactly as [`claim_next`](JobStore::claim_next) would. Fewer (or
    /// none) when fewer are queued. The engine asks for as many as it has free permits.
    ///
    /// The default calls `claim_next` up to `max` times; the SQL stores claim in one statement.
    async fn claim_batch(
        &self,
        lane: &str,
        owner: &str,
        lease: Duration,
        max: usize,
    ) -> Result<Vec<Job>, StoreError> {
        let mut out = Vec::new();
        while out.len() < max {
            match self.claim_next(lane, owner, lease).await? {
                Some(j) => out.push(j),
                None => break,
            }
        }
        Ok(out)
    }

    /// Claims one specific `queued` job (a batch child run by its parent). `None` when it is
    /// not `queued` any more.
    async fn claim_job(
        &self,
        id: Uuid,
        owner: &str,
        lease: Duration,
    ) -> Result<Option<Job>, StoreError>;

    /// Extends the leases of `fences` to now + `lease`; reports which are still held and which
    /// have a pending cancel request.
    async fn renew_leases(
        &self,
        fences: &[Fence],
        lease: Duration,
    ) -> Result<Vec<LeaseStatus>, StoreError>;

    /// Fenced progress write. `false` when the fence no longer matches.
    async fn update_progress(
        &self,
        fence: &Fence,
        update: &ProgressUpdate,
    ) -> Result<bool, StoreError>;

    /// Fenced completion. If a cancel was requested the job ends `cancelled` (a success's
    /// result is still recorded); otherwise `succeeded` or `failed` per `outcome`. Clears the
    /// lease and sets `completed`. Returns `None` (and changes nothing) when the fence no
    /// longer matches.
    async fn complete_job(
        &self,
        fence: &Fence,
        outcome: Outcome,
        completed: i32,
    ) -> Result<Option<Job>, StoreError>;

    /// Several fenced completions in one transaction: one answer per item, in order, each
    /// exactly what [`complete_job`](JobStore::complete_job) would answer for it. The items
    /// are distinct running jobs without a batch (top-level, `total = 1`).
    ///
    /// The default completes them one at a time; the SQL stores write them in one transaction
    /// (one commit, one notification).
    async fn complete_jobs(&self, items: Vec<Completion>) -> Result<Vec<Option<Job>>, StoreError> {
        let mut out = Vec::with_capacity(items.len());
        for c in items {
            out.push(self.complete_job(&c.fence, c.outcome, c.completed).await?);
        }
        Ok(out)
    }

    /// Fenced interruption (restart, shutdown, expired lease): with `requeue` the job goes back
    /// to `queued` (lease cleared, progress reset); otherwise it fails with `Interrupted`.
    async fn interrupt_job(&self, fence: &Fence, requeue: bool) -> Result<Option<Job>, StoreError>;

    /// Fails a job that is still `queued` (e.g. an orphaned batch child). `None` if it is not
    /// queued any more, or if it is a batch child whose parent is active: a retry may have
    /// re-opened the batch since the caller saw it finished, and the check is made in the
    /// same write (parent locked first).
    async fn fail_queued(&self, id: Uuid, error: &JobError) -> Result<Option<Job>, StoreError>;

    /// Asks to cancel a job. A `queued` job becomes `cancelled` at once; a `running` one gets
    /// `cancel_requested`. For a batch parent the same applies to its unfinished children.
    /// A terminal job is returned unchanged.
    async fn request_cancel(&self, id: Uuid) -> Result<Changed, StoreError>;

    /// Moves a `failed` or `cancelled` job back to `queued` (attempts kept, `max_attempts`
    /// raised to `attempts + extra_attempts`, results and errors cleared). A batch parent
    /// re-queues only its failed/cancelled children; a child re-opens its finished parent.
    /// [`StoreError::Conflict`] for any other status or an active parent.
    async fn retry_job(&self, id: Uuid, extra_attempts: i32) -> Result<Changed, StoreError>;

    /// Makes the queued children of a parent claimable by any node (distributed batches).
    async fn release_children(&self, parent_id: Uuid) -> Result<u64, StoreError>;

    /// Deletes a finished job (with its children). [`StoreError::Conflict`] while it or a child
    /// is active. Returns the deleted ids.
    async fn delete_job(&self, id: Uuid) -> Result<Vec<Uuid>, StoreError>;

    /// The earliest `run_at` among the claimable `queued` jobs of `lane` that are not due
    /// yet, so an idle lane worker wakes when the next scheduled job comes due.
    async fn next_run_at(&self, lane: &str) -> Result<Option<DateTime<Utc>>, StoreError>;

    /// The most recently finished `succeeded` job with this `dedupe_key`, if any.
    async fn find_reusable(&self, dedupe_key: &str) -> Result<Option<Job>, StoreError>;

    /// Deletes up to `limit` finished top-level jobs (with their children) that ended before
    /// `before` and have no webhook delivery pending; returns them, oldest first. On a shared
    /// store one caller prunes at a time (PostgreSQL: a transaction-scoped advisory lock;
    /// another caller gets an empty list).
    async fn prune_finished(
        &self,
        before: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Job>, StoreError>;

    /// Claims up to `max` jobs whose webhook delivery is due: each one's due time moves
    /// `lease` ahead ([`rules::claim_webhook`](crate::rules::claim_webhook)), so concurrent
    /// claimers (other nodes) never take the same delivery while a try runs.
    async fn claim_webhooks(&self, lease: Duration, max: usize) -> Result<Vec<Job>, StoreError>;

    /// Records a delivery try of the job's webhook delivery `seq`
    /// ([`rules::record_webhook`](crate::rules::record_webhook)). `None` when the job is gone
    /// or has moved on to a newer delivery.
    async fn record_webhook(
        &self,
        job_id: Uuid,
        seq: i32,
        attempt: WebhookAttempt,
    ) -> Result<Option<Job>, StoreError>;

    /// Cross-node signals, when the backend has them.
    fn subscribe_signals(&self) -> Option<broadcast::Receiver<StoreSignal>> {
        None
    }
}
