//! Request bodies of `POST /jobs` and `POST /jobs/batch`, in their HTTP form; checking them
//! is [`mediajobs_jobs::Services::prepare`]'s job.

use serde::Deserialize;
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
}

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
