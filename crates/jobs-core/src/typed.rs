//! Typed jobs: arguments as a Rust type, handlers that receive shared state the way axum hands
//! out `State`, and handles whose [`wait`](JobHandle::wait) gives the typed output.
//!
//! This is a layer over the untyped core: a typed job is stored like any other (its
//! [`JobArgs::KIND`] as the job type, its arguments as the `params` JSON), so every
//! [`JobStore`](crate::JobStore) works unchanged and typed and untyped jobs share one queue.
//!
//! ```
//! use std::sync::Arc;
//! use jobs_core::{JobArgs, JobContext, JobError, ManagerConfig, MemoryStore, QueueManager, State};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Resize { file: String, width: u32 }
//!
//! impl JobArgs for Resize {
//!     const KIND: &'static str = "resize";
//!     type Output = String;
//! }
//!
//! /// Shared by every run, handed in by the manager: no capture in a closure.
//! #[derive(Clone)]
//! struct Thumbnails { suffix: &'static str }
//!
//! async fn resize(State(t): State<Thumbnails>, job: Resize, ctx: JobContext) -> Result<String, JobError> {
//!     ctx.progress(0.5, "resizing");
//!     Ok(format!("{}@{}{}", job.file, job.width, t.suffix))
//! }
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let manager = QueueManager::new(Arc::new(MemoryStore::new()), ManagerConfig::default());
//! manager.register_with_state(Thumbnails { suffix: ".png" }, resize);
//! manager.start().await?;
//! let handle = manager.enqueue(Resize { file: "cat".into(), width: 64 }).await?;
//! assert_eq!(handle.wait().await?, "cat@64.png");
//! manager.stop().await?;
//! # Ok(()) }
//! ```

use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;

use async_trait::async_trait;
use futures::future::BoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::context::JobContext;
use crate::handler::JobHandler;
use crate::job::{Job, JobError, JobResult, JobStatus, NewJob, codes, lanes};
use crate::manager::{Engine, ManagerError};
use crate::store::StoreError;

/// The arguments of a typed job: what is stored as the job's `params`, the job type it is
/// stored under, the lane it runs in and what a successful run returns.
///
/// The default encoding is the arguments' own JSON. A type whose jobs carry more than
/// `params` (a profile, an input file column) overrides [`to_new_job`](JobArgs::to_new_job)
/// and [`from_job`](JobArgs::from_job) together.
pub trait JobArgs: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The job type (`Job::job_type`), e.g. `"resize"`.
    const KIND: &'static str;
    /// What a successful run returns (stored as the job's result JSON).
    type Output: Serialize + DeserializeOwned + Send + 'static;

    /// The lane its handler is registered in by [`QueueManager::register`](crate::QueueManager::register)
    /// (default `io`).
    fn lane() -> &'static str {
        lanes::IO
    }

    /// The job to store for these arguments.
    fn to_new_job(&self) -> Result<NewJob, JobError> {
        Ok(NewJob::new(
            Self::KIND,
            serde_json::to_value(self).map_err(JobError::internal)?,
        ))
    }

    /// Reads the arguments back from a stored job.
    fn from_job(job: &Job) -> Result<Self, JobError> {
        serde_json::from_value(job.params.clone()).map_err(|e| bad_args(Self::KIND, e))
    }
}

/// The error of arguments that do not decode (stored by an older version, say).
pub fn bad_args(kind: &str, e: impl std::fmt::Display) -> JobError {
    JobError::internal_msg(format!(
        "the stored arguments of a '{kind}' job do not decode: {e}"
    ))
}

/// Shared state handed to a typed handler, as axum's `State` extractor does: registered once
/// with [`QueueManager::register_with_state`](crate::QueueManager::register_with_state),
/// cloned into every run.
#[derive(Debug, Clone, Copy, Default)]
pub struct State<S>(pub S);

/// A typed handler: an async function of the job's arguments and its [`JobContext`], and, for
/// stateful handlers, a [`State`] first. `M` only tells the two forms apart (as axum's handler
/// trait does); callers never name it.
pub trait TypedHandler<A: JobArgs, S, M>: Send + Sync + 'static {
    /// Runs one job.
    fn call(
        &self,
        state: S,
        args: A,
        ctx: JobContext,
    ) -> BoxFuture<'static, Result<A::Output, JobError>>;
}

/// Marker of handlers without state: `async fn(A, JobContext)`.
#[derive(Debug)]
pub enum Stateless {}
/// Marker of handlers with state: `async fn(State<S>, A, JobContext)`.
#[derive(Debug)]
pub enum WithState {}

impl<A, F, Fut> TypedHandler<A, (), Stateless> for F
where
    A: JobArgs,
    F: Fn(A, JobContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<A::Output, JobError>> + Send + 'static,
{
    fn call(
        &self,
        _state: (),
        args: A,
        ctx: JobContext,
    ) -> BoxFuture<'static, Result<A::Output, JobError>> {
        Box::pin((self)(args, ctx))
    }
}

impl<A, S, F, Fut> TypedHandler<A, S, WithState> for F
where
    A: JobArgs,
    S: Send + 'static,
    F: Fn(State<S>, A, JobContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<A::Output, JobError>> + Send + 'static,
{
    fn call(
        &self,
        state: S,
        args: A,
        ctx: JobContext,
    ) -> BoxFuture<'static, Result<A::Output, JobError>> {
        Box::pin((self)(State(state), args, ctx))
    }
}

/// The untyped [`JobHandler`] a typed one is registered as: decode, call, encode.
pub(crate) struct Typed<A, S, H, M> {
    pub(crate) state: S,
    pub(crate) handler: H,
    pub(crate) _marker: PhantomData<fn() -> (A, M)>,
}

#[async_trait]
impl<A, S, H, M> JobHandler for Typed<A, S, H, M>
where
    A: JobArgs,
    S: Clone + Send + Sync + 'static,
    H: TypedHandler<A, S, M>,
    M: 'static,
{
    async fn run(&self, job: Job, ctx: JobContext) -> Result<JobResult, JobError> {
        let args = A::from_job(&job)?;
        let out = self.handler.call(self.state.clone(), args, ctx).await?;
        JobResult::json(&out)
    }
}

/// What [`QueueManager::enqueue`](crate::QueueManager::enqueue) takes: a [`NewJob`] (the
/// untyped form, answered with the stored [`Job`]) or any [`JobArgs`] (answered with a
/// [`JobHandle`]).
pub trait Enqueue: Send {
    /// What `enqueue` returns.
    type Handle;
    /// The job to store.
    fn into_new_job(self) -> Result<NewJob, ManagerError>;
    /// The answer, once stored.
    fn handle(job: Job, queue: &Queue) -> Self::Handle;
}

/// The queue a job was enqueued on, as [`Enqueue::handle`] sees it (opaque).
#[derive(Clone)]
pub struct Queue(pub(crate) Arc<Engine>);

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("node_id", &self.0.config.node_id)
            .finish()
    }
}

impl Enqueue for NewJob {
    type Handle = Job;
    fn into_new_job(self) -> Result<NewJob, ManagerError> {
        Ok(self)
    }
    fn handle(job: Job, _queue: &Queue) -> Job {
        job
    }
}

impl<A: JobArgs> Enqueue for A {
    type Handle = JobHandle<A>;
    fn into_new_job(self) -> Result<NewJob, ManagerError> {
        self.to_new_job()
            .map_err(|e| ManagerError::Store(StoreError::Invalid(e.message().to_owned())))
    }
    fn handle(job: Job, queue: &Queue) -> JobHandle<A> {
        JobHandle {
            job,
            engine: queue.0.clone(),
            _args: PhantomData,
        }
    }
}

/// A typed job in the queue.
pub struct JobHandle<A> {
    job: Job,
    engine: Arc<Engine>,
    _args: PhantomData<fn() -> A>,
}

impl<A> std::fmt::Debug for JobHandle<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobHandle")
            .field("id", &self.job.id)
            .field("type", &self.job.job_type)
            .finish()
    }
}

/// Why [`JobHandle::wait`] gave no output.
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    /// The job failed, or was cancelled (code `Cancelled`), with this error.
    #[error("job {id} ended {status}: {error}")]
    Failed {
        /// The job.
        id: Uuid,
        /// `failed` or `cancelled`.
        status: JobStatus,
        /// Its stored error.
        error: JobError,
    },
    /// The job succeeded but its stored result is not an `A::Output`.
    #[error("job {id} succeeded but its result does not decode: {source}")]
    Decode {
        /// The job.
        id: Uuid,
        /// What serde said.
        source: serde_json::Error,
    },
    /// The manager or its store failed (or the job was deleted).
    #[error(transparent)]
    Manager(#[from] ManagerError),
}

impl<A: JobArgs> JobHandle<A> {
    /// The job's id.
    pub fn id(&self) -> Uuid {
        self.job.id
    }

    /// The job as stored at submission.
    pub fn job(&self) -> &Job {
        &self.job
    }

    /// Waits for the job's end and returns its typed output.
    pub async fn wait(self) -> Result<A::Output, WaitError> {
        let id = self.job.id;
        let job = self.engine.wait_for(id).await?;
        match job.status {
            JobStatus::Succeeded => {
                let v = job.result.unwrap_or(serde_json::Value::Null);
                serde_json::from_value(v).map_err(|source| WaitError::Decode { id, source })
            }
            status => {
                let code = job.error_code.unwrap_or_else(|| match status {
                    JobStatus::Cancelled => codes::CANCELLED.to_owned(),
                    _ => codes::SERVER_ERROR.to_owned(),
                });
                let mut error = JobError::new(code, job.error.unwrap_or_default());
                if let Some(d) = job.error_details {
                    error = error.with_details(d);
                }
                Err(WaitError::Failed { id, status, error })
            }
        }
    }
}
