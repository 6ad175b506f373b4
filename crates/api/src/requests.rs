//! Request bodies of `POST /jobs` and `POST /jobs/batch`, in their HTTP form; checking them
//! is [`mediajobs_jobs::Services::prepare`]'s job.

use mediajobs_jobs::SubmitOptions;
use serde::Deserialize;

use crate::error::ApiError;
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

/// `POST /jobs` body.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitJob {
    /// `generate_srt`, `transcribe`, `convert` or `fix_srt`.
    #[serde(rename = "type")]
    pub job_type: String,
    /// The input file.
    pub file_id: Uuid,
    /// Options of the operation (not for `fix_srt`): `GenerateSrtOptions`,
    /// `TranscribeOptions` or `ConvertOptions` (`GET /server` names each type's schema).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub opts: Option<Value>,
    /// `provider:model` (`fix_srt` only).
    #[serde(default)]
    pub model: Option<String>,
    /// System prompt override (`fix_srt` only).
    #[serde(default)]
    pub sys_msg: Option<String>,
    /// Not before this time (RFC 3339). Not with `delay_seconds`.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub run_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Not before this many seconds from now (at most 30 days). Not with `run_at`.
    #[serde(default)]
    #[schema(maximum = 2592000)]
    pub delay_seconds: Option<u64>,
    /// Claim order within the job's lane: higher first, FIFO among equals (-1000..=1000,
    /// default 0). A running job is never preempted.
    #[serde(default)]
    #[schema(minimum = -1000, maximum = 1000)]
    pub priority: Option<i16>,
    /// While a job of this profile with this key is queued or running, submitting the key
    /// again returns that job (`200`, header `x-mediajobs-existing: true`) instead of a new
    /// one (1-256 characters).
    #[serde(default)]
    pub unique_key: Option<String>,
    /// Reuse an identical earlier result (same content, operation, options and model)
    /// instead of running whisper again. Default: on for `generate_srt` and `transcribe`.
    #[serde(default)]
    pub dedupe: Option<bool>,
    /// POSTed (signed, Standard Webhooks) when the job reaches a terminal state; needs the
    /// server setting `MEDIAJOBS_WEBHOOK_SECRET`. http/https only; private addresses are
    /// refused unless `MEDIAJOBS_WEBHOOK_ALLOW_PRIVATE=true`.
    #[serde(default)]
    pub webhook_url: Option<String>,
    /// An explicit deadline in seconds (1..=86400) instead of the one derived from the
    /// input's duration and this node's measured speed; past it the job fails `Timeout`.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 86400)]
    pub timeout_seconds: Option<u64>,
}

/// `POST /jobs/batch` body.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitBatch {
    /// `batch_generate_srt`, `batch_transcribe`, `batch_convert` or `batch_fix_srt`.
    #[serde(rename = "type")]
    pub job_type: String,
    /// The input files, in order (no duplicates, at most 500).
    pub file_ids: Vec<Uuid>,
    /// Options of the operation (not for `batch_fix_srt`): `GenerateSrtOptions`,
    /// `TranscribeOptions` or `ConvertOptions` (`GET /server` names each type's schema).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub opts: Option<Value>,
    /// `provider:model` (`batch_fix_srt` only).
    #[serde(default)]
    pub model: Option<String>,
    /// System prompt override (`batch_fix_srt` only).
    #[serde(default)]
    pub sys_msg: Option<String>,
    /// Not before this time (RFC 3339). Not with `delay_seconds`.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub run_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Not before this many seconds from now (at most 30 days). Not with `run_at`.
    #[serde(default)]
    #[schema(maximum = 2592000)]
    pub delay_seconds: Option<u64>,
    /// Claim order within the job's lane: higher first, FIFO among equals (-1000..=1000,
    /// default 0). A running job is never preempted.
    #[serde(default)]
    #[schema(minimum = -1000, maximum = 1000)]
    pub priority: Option<i16>,
    /// While a job of this profile with this key is queued or running, submitting the key
    /// again returns that job (`200`, header `x-mediajobs-existing: true`) instead of a new
    /// one (1-256 characters).
    #[serde(default)]
    pub unique_key: Option<String>,
    /// Reuse an identical earlier result (same content, operation, options and model)
    /// instead of running whisper again. Default: on for `generate_srt` and `transcribe`.
    #[serde(default)]
    pub dedupe: Option<bool>,
    /// POSTed (signed, Standard Webhooks) when the job reaches a terminal state; needs the
    /// server setting `MEDIAJOBS_WEBHOOK_SECRET`. http/https only; private addresses are
    /// refused unless `MEDIAJOBS_WEBHOOK_ALLOW_PRIVATE=true`.
    #[serde(default)]
    pub webhook_url: Option<String>,
    /// An explicit deadline in seconds (1..=86400) instead of the one derived from the
    /// input's duration and this node's measured speed; past it the job fails `Timeout`.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 86400)]
    pub timeout_seconds: Option<u64>,
}

/// The scheduling fields of a submission, checked.
#[allow(clippy::too_many_arguments)]
fn scheduling(
    run_at: Option<chrono::DateTime<chrono::Utc>>,
    delay_seconds: Option<u64>,
    priority: Option<i16>,
    unique_key: Option<String>,
    dedupe: Option<bool>,
    webhook_url: Option<String>,
    timeout_seconds: Option<u64>,
    webhooks: Option<&crate::webhooks::WebhookPolicy>,
) -> Result<SubmitOptions, ApiError> {
    let now = chrono::Utc::now();
    let run_at = match (run_at, delay_seconds) {
        (Some(_), Some(_)) => {
            return Err(ApiError::validation(
                "give run_at or delay_seconds, not both",
            ));
        }
        (Some(t), None) => {
            if t > now + chrono::TimeDelta::days(366) {
                return Err(ApiError::validation(
                    "run_at must be within a year from now",
                ));
            }
            Some(t)
        }
        (None, Some(d)) => {
            if d > 30 * 86_400 {
                return Err(ApiError::validation(
                    "delay_seconds must be at most 2592000 (30 days)",
                ));
            }
            Some(now + chrono::TimeDelta::seconds(i64::try_from(d).unwrap_or(0)))
        }
        (None, None) => None,
    };
    let priority = priority.unwrap_or(0);
    if !(-1000..=1000).contains(&priority) {
        return Err(ApiError::validation("priority must be within -1000..=1000"));
    }
    if let Some(k) = &unique_key
        && (k.is_empty() || k.chars().count() > 256 || k.chars().any(char::is_control))
    {
        return Err(ApiError::validation(
            "unique_key must be 1-256 characters without control characters",
        ));
    }
    if let Some(t) = timeout_seconds
        && !(1..=86_400).contains(&t)
    {
        return Err(ApiError::validation(
            "timeout_seconds must be within 1..=86400",
        ));
    }
    let webhook_url = match (webhook_url, webhooks) {
        (None, _) => None,
        (Some(_), None) => {
            return Err(ApiError::validation(
                "webhook_url needs the server setting MEDIAJOBS_WEBHOOK_SECRET",
            ));
        }
        (Some(u), Some(p)) => Some(
            p.check_url(&u)
                .map_err(|e| ApiError::validation(e.0))?
                .to_string(),
        ),
    };
    Ok(SubmitOptions {
        run_at,
        priority,
        unique_key,
        dedupe,
        webhook_url,
        timeout_seconds,
    })
}

/// `scheduling()` of both request bodies (their fields are the same; serde cannot flatten them
/// into a shared struct under `deny_unknown_fields`).
macro_rules! impl_scheduling {
    ($($t:ty),*) => {$(
        impl $t {
            /// Its scheduling fields, checked.
            pub fn scheduling(
                &self,
                webhooks: Option<&crate::webhooks::WebhookPolicy>,
            ) -> Result<SubmitOptions, ApiError> {
                scheduling(
                    self.run_at,
                    self.delay_seconds,
                    self.priority,
                    self.unique_key.clone(),
                    self.dedupe,
                    self.webhook_url.clone(),
                    self.timeout_seconds,
                    webhooks,
                )
            }
        }
    )*};
}
impl_scheduling!(SubmitJob, SubmitBatch);

impl From<SubmitJob> for mediajobs_jobs::Submission {
    fn from(r: SubmitJob) -> Self {
        mediajobs_jobs::Submission {
            job_type: r.job_type,
            batch: false,
            file_ids: vec![r.file_id],
            opts: r.opts,
            model: r.model,
            sys_msg: r.sys_msg,
        }
    }
}

impl From<SubmitBatch> for mediajobs_jobs::Submission {
    fn from(r: SubmitBatch) -> Self {
        mediajobs_jobs::Submission {
            job_type: r.job_type,
            batch: true,
            file_ids: r.file_ids,
            opts: r.opts,
            model: r.model,
            sys_msg: r.sys_msg,
        }
    }
}
