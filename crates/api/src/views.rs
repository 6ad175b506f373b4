//! The JSON shapes of the HTTP contract (DESIGN §6).

use chrono::{DateTime, SecondsFormat, Utc};
use jobs_core::Job;
use mediajobs_persistence::{FileRecord, TranscriptRecord};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub use mediajobs_jobs::file_url;

/// A stored file.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FileView {
    /// Id.
    pub id: Uuid,
    /// Display name.
    pub name: String,
    /// Content URL.
    pub url: String,
    /// MIME type.
    #[serde(rename = "type")]
    pub content_type: String,
    /// `video`, `audio` or `subtitle`.
    pub kind: String,
    /// Client folder label.
    pub folder: Option<String>,
    /// The file this one was made from.
    pub source_file_id: Option<Uuid>,
    /// `uploaded`, `generated`, `converted` or `fixed`.
    pub origin: String,
    /// Size.
    pub size_bytes: i64,
    /// SHA-256 (hex).
    pub sha256: String,
    /// Duration of audio/video.
    pub duration_ms: Option<i64>,
    /// An uploaded subtitle file's original text encoding (`UTF-8`, `UTF-16LE`,
    /// `windows-1252`, …); the server stores and serves it as UTF-8. Null for media and job
    /// outputs.
    pub source_encoding: Option<String>,
    /// RFC 3339 UTC.
    pub created_at: String,
}

impl From<&FileRecord> for FileView {
    fn from(f: &FileRecord) -> Self {
        FileView {
            id: f.id,
            name: f.name.clone(),
            url: file_url(f.id),
            content_type: f
                .content_type
                .clone()
                .unwrap_or_else(|| "application/octet-stream".into()),
            kind: f.kind.as_str().into(),
            folder: f.folder.clone(),
            source_file_id: f.source_file_id,
            origin: f.origin.as_str().into(),
            size_bytes: f.size_bytes,
            sha256: f.sha256.clone(),
            duration_ms: f.duration_ms,
            source_encoding: f.source_encoding.clone(),
            created_at: ts(f.created_at),
        }
    }
}

/// A job.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobView {
    /// Id.
    pub id: Uuid,
    /// Job type.
    #[serde(rename = "type")]
    pub job_type: String,
    /// `queued`, `running`, `succeeded`, `failed`, `cancelled`.
    pub status: String,
    /// 0..1.
    pub progress: f64,
    /// Current stage.
    pub stage: Option<String>,
    /// Children of a batch, 1 otherwise.
    pub total: i32,
    /// Finished children (batch) or 1 when done.
    pub completed: i32,
    /// The batch of a child.
    pub parent_id: Option<Uuid>,
    /// The input file.
    pub file_id: Option<Uuid>,
    /// The job's stored options (its typed spec).
    #[schema(value_type = Object)]
    pub params: Value,
    /// The handler's result: by the job's type (null until it succeeded; a batch has its
    /// counts also when it failed or was cancelled).
    #[schema(value_type = Option<crate::schemas::JobResultBody>)]
    pub result: Option<Value>,
    /// Error message.
    pub error: Option<String>,
    /// Stable error code.
    pub error_code: Option<String>,
    /// Error details (which depend on the code), or null.
    #[schema(value_type = Option<Object>)]
    pub error_details: Option<Value>,
    /// Runs so far.
    pub attempts: i32,
    /// Runs allowed: retryable failures and interruptions re-queue the job while
    /// `attempts < max_attempts`.
    pub max_attempts: i32,
    /// Claim order within its lane (higher first).
    pub priority: i16,
    /// When a queued job becomes claimable, if later than now (scheduled, or backing off
    /// after a retryable failure). RFC 3339 UTC.
    pub next_run_at: Option<String>,
    /// The error of the latest failed attempt (also while the job waits for its retry).
    pub last_error: Option<LastErrorView>,
    /// Seconds until the job is expected to end (running and queued jobs), from the input's
    /// duration, this node's measured speed and the work ahead of it.
    pub eta_seconds: Option<f64>,
    /// The completion webhook's delivery, when the job has one.
    pub webhook: Option<WebhookView>,
    /// A cancel was asked for while running.
    pub cancel_requested: bool,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// RFC 3339 UTC.
    pub started_at: Option<String>,
    /// RFC 3339 UTC.
    pub finished_at: Option<String>,
    /// RFC 3339 UTC.
    pub updated_at: String,
}

impl From<&Job> for JobView {
    fn from(j: &Job) -> Self {
        JobView {
            id: j.id,
            job_type: j.job_type.clone(),
            status: j.status.as_str().into(),
            progress: (j.progress * 1000.0).round() / 1000.0,
            stage: j.stage.clone(),
            total: j.total,
            completed: j.completed,
            parent_id: j.parent_id,
            file_id: j.file_id,
            params: j.params.clone(),
            result: j.result.clone(),
            error: j.error.clone(),
            error_code: j.error_code.clone(),
            error_details: j.error_details.clone(),
            attempts: j.attempts,
            max_attempts: j.max_attempts,
            priority: j.priority,
            next_run_at: j.next_run_at(Utc::now()).map(ts),
            last_error: j.last_error.as_ref().map(|e| LastErrorView {
                attempt: e.attempt,
                code: e.code.clone(),
                message: e.message.clone(),
                details: e.details.clone(),
                retryable: e.retryable,
                at: ts(e.at),
            }),
            eta_seconds: None,
            webhook: j.webhook.as_ref().map(|w| WebhookView {
                url: w.url.clone(),
                status: w.status.as_str().into(),
                attempts: w.attempts,
                delivery_id: (w.seq > 0).then(|| w.delivery_id(j.id)),
                next_attempt_at: w
                    .due_at()
                    .filter(|_| w.status == jobs_core::WebhookStatus::Pending)
                    .map(ts),
                last_error: w.last_error.clone(),
                delivered_at: w.delivered_at.map(ts),
            }),
            cancel_requested: j.cancel_requested,
            created_at: ts(j.created_at),
            started_at: j.started_at.map(ts),
            finished_at: j.finished_at.map(ts),
            updated_at: ts(j.updated_at),
        }
    }
}

impl JobView {
    /// Sets the ETA.
    pub fn with_eta(mut self, eta: Option<f64>) -> Self {
        self.eta_seconds = eta;
        self
    }
}

/// The error of a job's latest failed attempt.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LastErrorView {
    /// The attempt that failed.
    pub attempt: i32,
    /// Stable error code.
    pub code: String,
    /// Message.
    pub message: String,
    /// Details.
    #[schema(value_type = Option<Object>)]
    pub details: Option<Value>,
    /// Whether it was retryable.
    pub retryable: bool,
    /// When it failed. RFC 3339 UTC.
    pub at: String,
}

/// A job's completion webhook.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WebhookView {
    /// Where it is POSTed.
    pub url: String,
    /// `waiting` (the job has not ended), `pending`, `delivered` or `failed`.
    pub status: String,
    /// Tries of the current delivery.
    pub attempts: i32,
    /// The `webhook-id` of the current delivery (the same for each of its tries).
    pub delivery_id: Option<String>,
    /// When the next try is due. RFC 3339 UTC.
    pub next_attempt_at: Option<String>,
    /// Why the latest try failed.
    pub last_error: Option<String>,
    /// When it was delivered. RFC 3339 UTC.
    pub delivered_at: Option<String>,
}

/// A transcript.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TranscriptView {
    /// Id.
    pub id: Uuid,
    /// The transcribed file (null once deleted).
    pub file_id: Option<Uuid>,
    /// The job that made it.
    pub job_id: Option<Uuid>,
    /// Language.
    pub language: Option<String>,
    /// Joined text.
    pub text: String,
    /// Timed segments.
    #[schema(value_type = Vec<Object>)]
    pub segments: Value,
    /// RFC 3339 UTC.
    pub created_at: String,
}

impl From<&TranscriptRecord> for TranscriptView {
    fn from(t: &TranscriptRecord) -> Self {
        TranscriptView {
            id: t.id,
            file_id: t.file_id,
            job_id: t.job_id,
            language: t.language.clone(),
            text: t.text.clone(),
            segments: t.segments.clone(),
            created_at: ts(t.created_at),
        }
    }
}

/// `{"success": true, "deleted_job_ids": [...]}`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FileDeleted {
    /// Always true.
    pub success: bool,
    /// Jobs deleted with the file.
    pub deleted_job_ids: Vec<Uuid>,
}

/// The error envelope.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorEnvelope {
    /// Always false.
    pub success: bool,
    /// The error.
    pub error: ErrorBody,
}

/// The error inside the envelope.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Stable code.
    pub code: String,
    /// Message.
    pub message: String,
    /// Details.
    #[schema(value_type = Option<Object>)]
    pub details: Option<Value>,
}
