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

/// A piece of a running job's output, published the moment its handler has it (a transcribed
/// segment, say), before the job finishes. Partials are neither stored nor sent to other
/// nodes: subscribers on the node running the job see them
/// ([`QueueManager::subscribe_partials`](crate::QueueManager::subscribe_partials)); the job's
/// result stays the record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PartialOutput {
    /// The job.
    pub job_id: Uuid,
    /// Handler-defined data.
    pub data: serde_json::Value,
}

/// Publishes [`PartialOutput`]s of one job, from any thread
/// ([`JobContext::partials`](crate::JobContext::partials)).
#[derive(Debug, Clone)]
pub struct PartialSender {
    pub(crate) job_id: Uuid,
    pub(crate) tx: tokio::sync::broadcast::Sender<PartialOutput>,
}

impl PartialSender {
    /// Publishes `data` (nobody listening is fine).
    pub fn send(&self, data: serde_json::Value) {
        let _ = self.tx.send(PartialOutput {
            job_id: self.job_id,
            data,
        });
    }
}
