//! Job change events, published on an in-process broadcast channel
//! ([`QueueManager::subscribe`](crate::QueueManager::subscribe)). The HTTP API turns them into
//! server-sent events.

use serde::Serialize;
use uuid::Uuid;

use crate::job::Job;

/// What happened to a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobEventKind {
    /// The job was inserted.
    Created,
    /// A node claimed it and its handler started.
    Started,
    /// Its progress or stage changed.
    Progress,
    /// A client asked to cancel it (it is still running).
    CancelRequested,
    /// It went back to `queued` (retry, or re-queued after an interruption).
    Requeued,
    /// It reached a terminal state.
    Finished,
    /// Some other change (e.g. seen on another node).
    Updated,
    /// It was deleted; `job` is its last state.
    Deleted,
}

/// A change of one job, with the job's state after the change.
#[derive(Debug, Clone, Serialize)]
pub struct JobEvent {
    /// What happened.
    pub kind: JobEventKind,
    /// The job after the change.
    pub job: Job,
}

impl JobEvent {
    /// The job's id.
    pub fn job_id(&self) -> Uuid {
        self.job.id
    }
}
