//! The job model: [`Job`], [`JobStatus`], [`NewJob`], [`JobResult`], [`JobError`] and friends.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// The lifecycle of a job: `queued → running → succeeded | failed | cancelled`.
///
/// Terminal states never change, except by an explicit retry, which moves the job back to
/// `queued`.
///
/// ```
/// use jobs_core::JobStatus;
/// assert!(JobStatus::Failed.is_terminal());
/// assert_eq!(JobStatus::Queued.as_str(), "queued");
/// assert_eq!("running".parse::<JobStatus>().unwrap(), JobStatus::Running);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Waiting for a worker (or, for a batch child, for its parent) to run it.
    Queued,
    /// Claimed by a node, which holds a lease on it.
    Running,
    /// Finished; `result` holds the handler's output.
    Succeeded,
    /// Finished with an error (`error`, `error_code`, `error_details`).
    Failed,
    /// Cancelled by a client before or while running.
    Cancelled,
}

impl JobStatus {
    /// All statuses, in lifecycle order.
    pub const ALL: [JobStatus; 5] = [
        JobStatus::Queued,
        JobStatus::Running,
        JobStatus::Succeeded,
        JobStatus::Failed,
        JobStatus::Cancelled,
    ];

    /// The stable lower-case name used in storage and on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    /// `true` for `succeeded`, `failed` and `cancelled`.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobStatus::Succeeded | JobStatus::Failed | JobStatus::Cancelled
        )
    }

    /// `true` for `queued` and `running` (the job may still change by itself).
    pub fn is_active(self) -> bool {
        !self.is_terminal()
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Returned when parsing an unknown status name.
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown job status '{0}'")]
pub struct UnknownStatus(pub String);

impl std::str::FromStr for JobStatus {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

/// The well-known lane names. Lanes are named permit pools; any name may be configured.
pub mod lanes {
    /// Local CPU/GPU-heavy work (whisper, encoding): one permit per node by default.
    pub const HEAVY: &str = "heavy";
    /// I/O-bound work (LLM calls, remote backends): bounded concurrency.
    pub const IO: &str = "io";
    /// Batch parents: they only orchestrate and hold neither a heavy nor an io permit.
    pub const BATCH: &str = "batch";
}

/// A job as stored. Every field is public data; mutate jobs only through the
/// [`QueueManager`](crate::QueueManager) or a [`JobStore`](crate::JobStore).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// Time-ordered id (UUID v7).
    pub id: Uuid,
    /// Which handler runs it (e.g. `generate_srt`).
    #[serde(rename = "type")]
    pub job_type: String,
    /// The permit pool it runs in (see [`lanes`]).
    pub lane: String,
    /// Current status.
    pub status: JobStatus,
    /// Opaque owner key used to scope listings (the server stores the profile id here).
    pub profile_id: Option<String>,
    /// The input file this job references, if any.
    pub file_id: Option<Uuid>,
    /// The batch parent, for batch children.
    pub parent_id: Option<Uuid>,
    /// Whether any node's lane workers may claim it. Top-level jobs are claimable; batch
    /// children are run by their parent unless the distributed strategy releases them.
    pub claimable: bool,
    /// Handler input.
    pub params: Value,
    /// Handler output (also kept for batches that failed or were cancelled).
    pub result: Option<Value>,
    /// Human readable error message.
    pub error: Option<String>,
    /// Stable error code (see [`JobError::code`]).
    pub error_code: Option<String>,
    /// Structured error details.
    pub error_details: Option<Value>,
    /// 0.0 ..= 1.0.
    pub progress: f64,
    /// What the handler is doing now (`decoding`, `transcribing`, …).
    pub stage: Option<String>,
    /// Number of units of work: children for a batch parent, 1 otherwise.
    pub total: i32,
    /// Units finished (children in a terminal state for a batch parent).
    pub completed: i32,
    /// How many times the job was claimed.
    pub attempts: i32,
    /// Interrupted jobs are re-queued while `attempts < max_attempts`.
    pub max_attempts: i32,
    /// Claim order within a lane: a higher priority is claimed first, FIFO among equals.
    /// Never preempts a running job.
    #[serde(default)]
    pub priority: i16,
    /// Not claimable before this time: the submission time, a scheduled time (`run_at`,
    /// `delay`), or the end of the backoff after a retryable failure. Within a priority,
    /// jobs are claimed in `run_at` order (FIFO for jobs that were never delayed).
    pub run_at: DateTime<Utc>,
    /// The error of the latest failed attempt, kept when a retryable failure re-queued the job
    /// (`error` stays empty until the job fails for good).
    #[serde(default)]
    pub last_error: Option<AttemptError>,
    /// While this job is `queued` or `running`, no other job with the same key can be
    /// inserted: [`JobStore::insert_job`](crate::JobStore::insert_job) returns this one.
    #[serde(default)]
    pub unique_key: Option<String>,
    /// A key under which a succeeded job's result may be reused by a later identical job
    /// (see [`JobStore::find_reusable`](crate::JobStore::find_reusable)).
    #[serde(default)]
    pub dedupe_key: Option<String>,
    /// The completion webhook of this job and the state of its delivery.
    #[serde(default)]
    pub webhook: Option<Webhook>,
    /// The node holding the lease while running.
    pub lease_owner: Option<String>,
    /// When the lease runs out unless renewed.
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// A client asked to cancel it while running.
    pub cancel_requested: bool,
    /// Creation time; with `id`, the FIFO order.
    pub created_at: DateTime<Utc>,
    /// When the latest attempt started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it reached its terminal state.
    pub finished_at: Option<DateTime<Utc>>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl Job {
    /// The fence of the current attempt, if the job is running.
    pub fn fence(&self) -> Option<Fence> {
        match (&self.status, &self.lease_owner) {
            (JobStatus::Running, Some(owner)) => Some(Fence {
                job_id: self.id,
                owner: owner.clone(),
                attempt: self.attempts,
            }),
            _ => None,
        }
    }

    /// `true` when this job is a batch child.
    pub fn is_child(&self) -> bool {
        self.parent_id.is_some()
    }

    /// When a `queued` job becomes claimable, if that is later than `now` (a scheduled job,
    /// or one backing off after a retryable failure).
    pub fn next_run_at(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        (self.status == JobStatus::Queued && self.run_at > now).then_some(self.run_at)
    }
}

/// The error of one failed attempt (see [`Job::last_error`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptError {
    /// The attempt that failed (1-based).
    pub attempt: i32,
    /// Stable error code.
    pub code: String,
    /// Human readable message.
    pub message: String,
    /// Structured details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
    /// Whether the error was retryable (the job was re-queued if attempts were left).
    pub retryable: bool,
    /// When the attempt failed.
    pub at: DateTime<Utc>,
}

/// Where a job's completion webhook stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookStatus {
    /// The job has not reached a terminal state yet.
    Waiting,
    /// A terminal state is waiting to be delivered (or redelivered after a failure).
    Pending,
    /// The latest terminal state was delivered (the receiver answered 2xx).
    Delivered,
    /// Every delivery of the latest terminal state failed for the whole retry window.
    Failed,
}

impl WebhookStatus {
    /// The stable lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookStatus::Waiting => "waiting",
            WebhookStatus::Pending => "pending",
            WebhookStatus::Delivered => "delivered",
            WebhookStatus::Failed => "failed",
        }
    }
}

/// A job's completion webhook: the URL, and the delivery state of its latest terminal state.
///
/// Each time the job reaches a terminal state (`succeeded`, `failed`, `cancelled`) the store
/// marks the webhook `pending` in the same write, so a delivery is never lost between the end
/// of a job and its notification; a delivery service claims pending webhooks
/// ([`JobStore::claim_webhooks`](crate::JobStore::claim_webhooks)) and records each try
/// ([`JobStore::record_webhook`](crate::JobStore::record_webhook)).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Webhook {
    /// Where the notification is POSTed.
    pub url: String,
    /// Delivery state.
    pub status: WebhookStatus,
    /// Terminal states so far; with the job id, the stable id of a delivery
    /// ([`Webhook::delivery_id`]).
    #[serde(default)]
    pub seq: i32,
    /// The terminal status being delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<JobStatus>,
    /// When the terminal state being delivered was reached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_at: Option<DateTime<Utc>>,
    /// Delivery tries of the current event.
    #[serde(default)]
    pub attempts: i32,
    /// When the next try is due (unix microseconds; a claim pushes it forward by a lease).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_us: Option<i64>,
    /// Why the latest try failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When the current event was delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_at: Option<DateTime<Utc>>,
}

impl Webhook {
    /// A webhook to `url` that waits for the job to end.
    pub fn new(url: impl Into<String>) -> Self {
        Webhook {
            url: url.into(),
            status: WebhookStatus::Waiting,
            seq: 0,
            event: None,
            event_at: None,
            attempts: 0,
            due_us: None,
            last_error: None,
            delivered_at: None,
        }
    }

    /// The stable id of the current delivery (`<job id>.<seq>`): the same for every try of
    /// one terminal state, so receivers can drop duplicates.
    pub fn delivery_id(&self, job_id: Uuid) -> String {
        format!("{job_id}.{}", self.seq)
    }

    /// When the next try is due.
    pub fn due_at(&self) -> Option<DateTime<Utc>> {
        self.due_us.and_then(DateTime::<Utc>::from_timestamp_micros)
    }
}

/// What a delivery try of a webhook came to (see
/// [`JobStore::record_webhook`](crate::JobStore::record_webhook)).
#[derive(Debug, Clone, PartialEq)]
pub enum WebhookAttempt {
    /// The receiver answered 2xx.
    Delivered,
    /// The try failed; try again at the given time.
    RetryAt(DateTime<Utc>, String),
    /// The try failed and the retry window is over.
    GaveUp(String),
}

/// Proof that a node holds a job's lease for one attempt. Writes made with a fence apply only
/// while the job is still `running`, leased to `owner`, at `attempt`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Fence {
    /// The job.
    pub job_id: Uuid,
    /// The node id holding the lease.
    pub owner: String,
    /// The attempt number (`Job::attempts` right after the claim).
    pub attempt: i32,
}

/// A job to insert.
///
/// ```
/// use jobs_core::NewJob;
/// let job = NewJob::new("transcribe", serde_json::json!({"language": "en"}))
///     .profile("alice")
///     .lane("heavy");
/// assert_eq!(job.job_type, "transcribe");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    /// Id to use (defaults to a fresh UUID v7).
    pub id: Uuid,
    /// Handler type.
    pub job_type: String,
    /// Lane; `None` lets the [`QueueManager`](crate::QueueManager) pick the lane registered
    /// for `job_type` (stores treat `None` as [`lanes::IO`]).
    pub lane: Option<String>,
    /// Owner key (profile id).
    pub profile_id: Option<String>,
    /// Referenced input file.
    pub file_id: Option<Uuid>,
    /// Handler input.
    pub params: Value,
    /// Overrides the manager's default `max_attempts`.
    pub max_attempts: Option<i32>,
    /// Claim order within its lane (default 0; higher first, FIFO among equals).
    pub priority: i16,
    /// Not claimable before this time (default: at once).
    pub run_at: Option<DateTime<Utc>>,
    /// At most one active job per key (see [`Job::unique_key`]).
    pub unique_key: Option<String>,
    /// Reuse key of the result (see [`Job::dedupe_key`]).
    pub dedupe_key: Option<String>,
    /// Completion webhook URL (see [`Webhook`]).
    pub webhook_url: Option<String>,
}

impl NewJob {
    /// A job of `job_type` with `params`.
    pub fn new(job_type: impl Into<String>, params: Value) -> Self {
        NewJob {
            id: Uuid::now_v7(),
            job_type: job_type.into(),
            lane: None,
            profile_id: None,
            file_id: None,
            params,
            max_attempts: None,
            priority: 0,
            run_at: None,
            unique_key: None,
            dedupe_key: None,
            webhook_url: None,
        }
    }

    /// Sets the owner key.
    pub fn profile(mut self, profile_id: impl Into<String>) -> Self {
        self.profile_id = Some(profile_id.into());
        self
    }

    /// Sets the lane explicitly.
    pub fn lane(mut self, lane: impl Into<String>) -> Self {
        self.lane = Some(lane.into());
        self
    }

    /// Sets the referenced input file.
    pub fn file(mut self, file_id: Uuid) -> Self {
        self.file_id = Some(file_id);
        self
    }

    /// Sets `max_attempts`.
    pub fn max_attempts(mut self, n: i32) -> Self {
        self.max_attempts = Some(n);
        self
    }

    /// Sets the priority: among the queued jobs of its lane, a higher one is claimed first
    /// (an interactive request ahead of queued batch work). A running job is never preempted.
    ///
    /// ```
    /// let urgent = jobs_core::NewJob::new("detect", serde_json::json!({})).priority(10);
    /// assert_eq!(urgent.priority, 10);
    /// ```
    pub fn priority(mut self, p: i16) -> Self {
        self.priority = p;
        self
    }

    /// Schedules the job: it is not claimed before `at`.
    pub fn run_at(mut self, at: DateTime<Utc>) -> Self {
        self.run_at = Some(at);
        self
    }

    /// Delays the job by `delay` from now.
    ///
    /// ```
    /// use std::time::Duration;
    /// let later = jobs_core::NewJob::new("report", serde_json::json!({})).delay(Duration::from_secs(60));
    /// assert!(later.run_at.unwrap() > chrono::Utc::now());
    /// ```
    pub fn delay(mut self, delay: std::time::Duration) -> Self {
        self.run_at = Some(crate::rules::lease_until(Utc::now(), delay));
        self
    }

    /// Makes the job unique by `key` while it is active: inserting another job with the same
    /// key returns this one instead.
    pub fn unique_key(mut self, key: impl Into<String>) -> Self {
        self.unique_key = Some(key.into());
        self
    }

    /// Sets the key under which its result may be reused.
    pub fn dedupe_key(mut self, key: impl Into<String>) -> Self {
        self.dedupe_key = Some(key.into());
        self
    }

    /// Asks for a completion webhook to `url`.
    pub fn webhook(mut self, url: impl Into<String>) -> Self {
        self.webhook_url = Some(url.into());
        self
    }
}

/// A handler's output, stored as JSON in `Job::result`.
///
/// ```
/// use jobs_core::JobResult;
/// let r = JobResult::json(&serde_json::json!({"transcript_id": 7})).unwrap();
/// assert_eq!(r.0["transcript_id"], 7);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobResult(pub Value);

impl JobResult {
    /// Serializes any value into a result.
    pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<Self, JobError> {
        serde_json::to_value(value)
            .map(JobResult)
            .map_err(JobError::internal)
    }

    /// An empty (`null`) result.
    pub fn empty() -> Self {
        JobResult(Value::Null)
    }
}

impl From<Value> for JobResult {
    fn from(v: Value) -> Self {
        JobResult(v)
    }
}

/// Well-known stable error codes used by the engine itself, as strings (they are
/// [`ErrorCode`](mediajobs_codes::ErrorCode)s).
pub mod codes {
    use mediajobs_codes::ErrorCode;
    /// No handler is registered for the job's type.
    pub const UNKNOWN_JOB_TYPE: &str = ErrorCode::UnknownJobType.as_str();
    /// Any error that is not a domain error.
    pub const SERVER_ERROR: &str = ErrorCode::ServerError.as_str();
    /// The job was interrupted by a restart or a lost node, and not re-queued.
    pub const INTERRUPTED: &str = ErrorCode::Interrupted.as_str();
    /// A batch in which no child succeeded and at least one failed.
    pub const BATCH_FAILED: &str = ErrorCode::BatchFailed.as_str();
    /// The job was cancelled.
    pub const CANCELLED: &str = ErrorCode::Cancelled.as_str();
    /// The job ran past its deadline.
    pub const TIMEOUT: &str = ErrorCode::Timeout.as_str();
}

/// The message of every [`JobError::internal`] error; the raw error is only logged.
pub const UNEXPECTED_MESSAGE: &str = "An Unexpected Error Occurred";
/// The message of interrupted jobs that were not re-queued.
pub const INTERRUPTED_MESSAGE: &str = "Interrupted By A Server Restart";

/// A job failure with a stable machine-readable `code`, a human `message` and optional
/// structured `details`.
///
/// Domain errors keep their code, message and details. Anything else goes through
/// [`JobError::internal`]: it becomes `ServerError` / `An Unexpected Error Occurred`, and the
/// raw error is only logged by the manager.
///
/// ```
/// use jobs_core::JobError;
/// let e = JobError::new("MediaDecode", "could not decode input")
///     .with_details(serde_json::json!({"offset": 12}));
/// assert_eq!(e.code(), "MediaDecode");
///
/// let io = std::io::Error::other("disk on fire");
/// let e = JobError::internal(io);
/// assert_eq!(e.code(), "ServerError");
/// assert_eq!(e.message(), "An Unexpected Error Occurred");
/// ```
#[derive(Clone, thiserror::Error)]
#[error("{}: {}", .0.code, .0.message)]
pub struct JobError(Box<ErrorInner>);

#[derive(Clone)]
struct ErrorInner {
    code: Cow<'static, str>,
    message: String,
    details: Option<Value>,
    result: Option<Value>,
    retryable: bool,
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl fmt::Debug for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("JobError");
        d.field("code", &self.0.code)
            .field("message", &self.0.message)
            .field("details", &self.0.details);
        if let Some(src) = &self.0.source {
            d.field("source", &src.to_string());
        }
        d.finish()
    }
}

impl PartialEq for JobError {
    fn eq(&self, other: &Self) -> bool {
        self.0.code == other.0.code
            && self.0.message == other.0.message
            && self.0.details == other.0.details
    }
}

impl JobError {
    /// A domain error.
    pub fn new(code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        JobError(Box::new(ErrorInner {
            code: code.into(),
            message: message.into(),
            details: None,
            result: None,
            retryable: false,
            source: None,
        }))
    }

    /// A retryable domain error (a timeout, a 429 or 5xx from a provider, a transient storage
    /// error): the job is re-queued with backoff while it has attempts left.
    ///
    /// ```
    /// let e = jobs_core::JobError::retryable("ProviderUnavailable", "503 from the provider");
    /// assert!(e.is_retryable());
    /// assert!(!jobs_core::JobError::new("MediaDecode", "bad input").is_retryable());
    /// ```
    pub fn retryable(code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self::new(code, message).with_retryable(true)
    }

    /// Marks the error retryable (or not).
    pub fn with_retryable(mut self, retryable: bool) -> Self {
        self.0.retryable = retryable;
        self
    }

    /// `true` when a new attempt may succeed (see [`JobError::retryable`]).
    pub fn is_retryable(&self) -> bool {
        self.0.retryable
    }

    /// Wraps an unexpected error: code `ServerError`, message `An Unexpected Error Occurred`.
    /// The original error is kept for logging only and never stored or sent to clients.
    pub fn internal<E>(err: E) -> Self
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        JobError(Box::new(ErrorInner {
            code: Cow::Borrowed(codes::SERVER_ERROR),
            message: UNEXPECTED_MESSAGE.to_owned(),
            details: None,
            result: None,
            retryable: false,
            source: Some(Arc::new(err)),
        }))
    }

    /// Like [`JobError::internal`] for a plain message (logged, never shown).
    pub fn internal_msg(msg: impl Into<String>) -> Self {
        #[derive(Debug, thiserror::Error)]
        #[error("{0}")]
        struct Msg(String);
        Self::internal(Msg(msg.into()))
    }

    /// `UnknownJobType` for `job_type`.
    pub fn unknown_job_type(job_type: &str) -> Self {
        JobError::new(
            codes::UNKNOWN_JOB_TYPE,
            format!("Unknown Job Type '{job_type}'"),
        )
    }

    /// `Interrupted` (a restart or a lost node, no attempts left or policy `fail`).
    pub fn interrupted() -> Self {
        JobError::new(codes::INTERRUPTED, INTERRUPTED_MESSAGE)
    }

    /// `Cancelled`: what a handler returns when it stopped because its token fired.
    pub fn cancelled() -> Self {
        JobError::new(codes::CANCELLED, "Job Was Cancelled")
    }

    /// Adds structured details.
    pub fn with_details(mut self, details: Value) -> Self {
        self.0.details = Some(details);
        self
    }

    /// Attaches a (partial) result that is stored together with the error, e.g. the counts of a
    /// failed batch.
    pub fn with_result(mut self, result: Value) -> Self {
        self.0.result = Some(result);
        self
    }

    /// The stable code.
    pub fn code(&self) -> &str {
        &self.0.code
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// The details.
    pub fn details(&self) -> Option<&Value> {
        self.0.details.as_ref()
    }

    /// The attached result, if any.
    pub fn result(&self) -> Option<&Value> {
        self.0.result.as_ref()
    }

    /// The raw error of an internal error (for logs only).
    pub fn internal_source(&self) -> Option<&(dyn std::error::Error + Send + Sync)> {
        self.0.source.as_deref()
    }

    /// `true` for errors made by [`JobError::internal`].
    pub fn is_internal(&self) -> bool {
        self.0.source.is_some()
    }
}

/// The result of a batch parent: counts and child ids in submit order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct BatchResult {
    /// Number of children.
    pub total: usize,
    /// Children that succeeded.
    pub succeeded: usize,
    /// Children that failed.
    pub failed: usize,
    /// Children that were cancelled.
    pub cancelled: usize,
    /// Child ids, in submit order.
    pub children: Vec<Uuid>,
}

impl BatchResult {
    /// Counts the terminal states of `children` (in submit order).
    pub fn from_children(children: &[Job]) -> Self {
        let mut r = BatchResult {
            total: children.len(),
            children: children.iter().map(|c| c.id).collect(),
            ..Default::default()
        };
        for c in children {
            match c.status {
                JobStatus::Succeeded => r.succeeded += 1,
                JobStatus::Failed => r.failed += 1,
                JobStatus::Cancelled => r.cancelled += 1,
                JobStatus::Queued | JobStatus::Running => {}
            }
        }
        r
    }

    /// The parent's final status rule: `failed` when no child succeeded and at least one
    /// failed (the caller handles `cancelled`), else `succeeded`.
    pub fn is_failure(&self) -> bool {
        self.succeeded == 0 && self.failed > 0
    }
}

/// How a running job ended, as written by a fenced completion.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The handler returned a result.
    Succeeded(JobResult),
    /// The handler failed.
    Failed(JobError),
    /// The handler failed with a retryable error and attempts are left: back to `queued`, not
    /// claimable before `delay` has passed by the store's clock (a pending cancel still wins).
    Retry {
        /// The error of this attempt (stored in [`Job::last_error`]).
        error: JobError,
        /// The backoff before the next attempt.
        delay: std::time::Duration,
    },
}

/// Which jobs [`JobStore::list_jobs`](crate::JobStore::list_jobs) returns. Results are
/// top-level jobs (no parent), newest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobFilter {
    /// Only jobs of this owner.
    pub profile_id: Option<String>,
    /// Only these statuses (empty = any).
    pub statuses: Vec<JobStatus>,
    /// Only this type.
    pub job_type: Option<String>,
    /// At most this many (stores cap it at 1000; 0 means 100).
    pub limit: usize,
    /// Only jobs strictly older than this job (keyset pagination).
    pub before: Option<Uuid>,
}

impl JobFilter {
    /// The effective limit (1..=1000, default 100).
    pub fn effective_limit(&self) -> usize {
        match self.limit {
            0 => 100,
            n => n.min(1000),
        }
    }
}
