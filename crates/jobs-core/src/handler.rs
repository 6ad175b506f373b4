//! Job handlers: what runs a job of a given type.

use std::future::Future;

use async_trait::async_trait;

use crate::context::JobContext;
use crate::job::{Job, JobError, JobResult};

/// Runs jobs of one type.
///
/// Any `Fn(Job, JobContext) -> impl Future<Output = Result<JobResult, JobError>>` is a handler:
///
/// ```
/// use jobs_core::{Job, JobContext, JobError, JobResult};
/// async fn shout(job: Job, ctx: JobContext) -> Result<JobResult, JobError> {
///     ctx.progress(0.5, "shouting");
///     let text = job.params["text"].as_str().unwrap_or_default().to_uppercase();
///     Ok(JobResult(serde_json::json!({ "text": text })))
/// }
/// fn assert_handler<H: jobs_core::JobHandler>(_: H) {}
/// assert_handler(shout);
/// ```
///
/// A handler should watch [`JobContext::cancellation_token`] and stop within a second when it
/// fires, returning [`JobError::cancelled`]. A panic is caught and stored as `ServerError`.
#[async_trait]
pub trait JobHandler: Send + Sync + 'static {
    /// Runs one job.
    async fn run(&self, job: Job, ctx: JobContext) -> Result<JobResult, JobError>;
}

#[async_trait]
impl<F, Fut> JobHandler for F
where
    F: Fn(Job, JobContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<JobResult, JobError>> + Send + 'static,
{
    async fn run(&self, job: Job, ctx: JobContext) -> Result<JobResult, JobError> {
        (self)(job, ctx).await
    }
}
