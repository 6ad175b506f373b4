//! # jobs-core
//!
//! A durable job queue engine for long-running work, independent of any database, HTTP or
//! media library. It talks to storage through the [`JobStore`] trait and ships an in-memory
//! [`MemoryStore`]; `mediajobs`' persistence crate provides SQLite and PostgreSQL stores.
//!
//! - **Jobs** move `queued → running → succeeded | failed | cancelled`; terminal states only
//!   change by an explicit retry.
//! - **Lanes** are named permit pools: `heavy` (1 per node) for local whisper/encoding, `io`
//!   (N) for LLM and remote calls, `batch` for parents, which only orchestrate. A cheap job
//!   never waits behind a heavy one, and two heavy jobs never overlap on a node.
//! - **Leases** with a heartbeat and **fenced** completions: a worker that lost its lease can't
//!   overwrite the job. A reaper on every node recovers other nodes' expired leases.
//! - **Recovery** on [`QueueManager::start`] with [`InterruptPolicy::Retry`] or
//!   [`InterruptPolicy::Fail`], **graceful stop** with a grace period, **real cancellation**
//!   through a [`CancellationToken`](tokio_util::sync::CancellationToken) per job.
//! - **Batches**: a parent with children, run by the [`BatchRunner`] sequentially, with bounded
//!   concurrency, or distributed across nodes.
//! - **Progress and events**: [`JobContext::progress`] as often as you like; the store is
//!   written at most twice a second; every change goes out on [`QueueManager::subscribe`].
//!
//! ## Embedding
//!
//! ```
//! use std::sync::Arc;
//! use jobs_core::{lanes, Job, JobContext, JobError, JobResult, ManagerConfig, MemoryStore, NewJob, QueueManager};
//!
//! async fn resize(job: Job, ctx: JobContext) -> Result<JobResult, JobError> {
//!     for step in 0..4 {
//!         ctx.check_cancelled()?;
//!         ctx.progress(step as f64 / 4.0, "resizing");
//!     }
//!     Ok(JobResult(serde_json::json!({ "file": job.params["file"] })))
//! }
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let manager = QueueManager::new(Arc::new(MemoryStore::new()), ManagerConfig::default());
//! manager.register_handler("resize", lanes::HEAVY, resize);
//! manager.start().await?;
//! let job = manager.enqueue(NewJob::new("resize", serde_json::json!({"file": "a.png"}))).await?;
//! let job = manager.wait_for(job.id).await?;
//! assert_eq!(job.status, jobs_core::JobStatus::Succeeded);
//! manager.stop().await?;
//! # Ok(()) }
//! ```
//!
//! See `docs/ARCHITECTURE.md` and the ADRs in `docs/adr/` for the rules and what the tests
//! prove.

mod batch;
mod context;
mod events;
mod handler;
mod job;
mod manager;
mod memory;
pub mod rules;
mod store;
mod typed;

#[cfg(feature = "testkit")]
pub mod testkit;

pub use batch::{BatchRunner, BatchStrategy};
pub use context::{JobContext, ProgressReporter};
pub use events::{JobEvent, JobEventKind, PartialOutput, PartialSender};
pub use handler::JobHandler;
pub use job::{
    AttemptError, BatchResult, Fence, INTERRUPTED_MESSAGE, Job, JobError, JobFilter, JobResult,
    JobStatus, NewJob, Outcome, UNEXPECTED_MESSAGE, UnknownStatus, Webhook, WebhookAttempt,
    WebhookStatus, codes, lanes,
};
pub use manager::{
    InterruptPolicy, LaneUsage, ManagerConfig, ManagerError, PruneHook, QueueManager,
    RecoveryReport, RetryPolicy, WebhookSendError, WebhookSender,
};
pub use memory::{MemoryStore, TransitionHook};
pub use store::{
    Changed, Completion, DEFAULT_MAX_ATTEMPTS, JobStore, LeaseStatus, ProgressUpdate, StoreError,
    StoreSignal,
};

pub use typed::{
    Enqueue, JobArgs, JobHandle, Queue, State, Stateless, TypedHandler, WaitError, WithState,
    bad_args,
};

/// The stable error codes (re-exported from `mediajobs-codes`).
pub use mediajobs_codes::ErrorCode;

/// Re-exported so handlers need no direct tokio-util dependency.
pub use tokio_util::sync::CancellationToken;
