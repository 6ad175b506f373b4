//! Row types and their conversion to the domain types.

use diesel::prelude::*;
use jobs_core::{Job, JobStatus};
use uuid::Uuid;

use crate::error::DbError;
use crate::schema::{files, jobs, profiles, transcripts};
use crate::types::{Id, Json, Ts};

/// A `jobs` row (every column), used to read and to write back whole jobs.
#[derive(Queryable, QueryableByName, Selectable, Insertable, AsChangeset, Debug, Clone)]
#[diesel(table_name = jobs)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
#[diesel(treat_none_as_default_value = false, treat_none_as_null = true)]
pub(crate) struct JobRow {
    pub id: Id,
    pub job_type: String,
    pub lane: String,
    pub status: String,
    pub profile_id: Option<String>,
    pub file_id: Option<Id>,
    pub parent_id: Option<Id>,
    pub claimable: bool,
    pub params: Json,
    pub result: Option<Json>,
    pub error: Option<String>,
    pub error_code: Option<String>,
    pub error_details: Option<Json>,
    pub progress: f64,
    pub stage: Option<String>,
    pub total: i32,
    pub completed: i32,
    pub attempts: i32,
    pub max_attempts: i32,
    pub priority: i16,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<Ts>,
    pub cancel_requested: bool,
    pub created_at: Ts,
    pub started_at: Option<Ts>,
    pub finished_at: Option<Ts>,
    pub updated_at: Ts,
    pub run_at: Ts,
    pub last_error: Option<Json>,
    pub unique_key: Option<String>,
    pub dedupe_key: Option<String>,
    pub webhook: Option<Json>,
}

impl JobRow {
    pub(crate) fn into_job(self) -> Result<Job, DbError> {
        Ok(Job {
            id: self.id.0,
            job_type: self.job_type,
            lane: self.lane,
            status: self
                .status
                .parse::<JobStatus>()
                .map_err(|e| DbError::Corrupt(e.to_string()))?,
            profile_id: self.profile_id,
            file_id: self.file_id.map(|i| i.0),
            parent_id: self.parent_id.map(|i| i.0),
            claimable: self.claimable,
            params: self.params.0,
            result: self.result.map(|j| j.0),
            error: self.error,
            error_code: self.error_code,
            error_details: self.error_details.map(|j| j.0),
            progress: self.progress,
            stage: self.stage,
            total: self.total,
            completed: self.completed,
            attempts: self.attempts,
            max_attempts: self.max_attempts,
            priority: self.priority,
            lease_owner: self.lease_owner,
            lease_expires_at: self.lease_expires_at.map(|t| t.0),
            cancel_requested: self.cancel_requested,
            created_at: self.created_at.0,
            started_at: self.started_at.map(|t| t.0),
            finished_at: self.finished_at.map(|t| t.0),
            updated_at: self.updated_at.0,
            run_at: self.run_at.0,
            last_error: self
                .last_error
                .map(|j| serde_json::from_value(j.0))
                .transpose()
                .map_err(|e| DbError::Corrupt(format!("last_error: {e}")))?,
            unique_key: self.unique_key,
            dedupe_key: self.dedupe_key,
            webhook: self
                .webhook
                .map(|j| serde_json::from_value(j.0))
                .transpose()
                .map_err(|e| DbError::Corrupt(format!("webhook: {e}")))?,
        })
    }

    pub(crate) fn from_job(j: &Job) -> Self {
        JobRow {
            id: Id(j.id),
            job_type: j.job_type.clone(),
            lane: j.lane.clone(),
            status: j.status.as_str().to_owned(),
            profile_id: j.profile_id.clone(),
            file_id: j.file_id.map(Id),
            parent_id: j.parent_id.map(Id),
            claimable: j.claimable,
            params: Json(j.params.clone()),
            result: j.result.clone().map(Json),
            error: j.error.clone(),
            error_code: j.error_code.clone(),
            error_details: j.error_details.clone().map(Json),
            progress: j.progress,
            stage: j.stage.clone(),
            total: j.total,
            completed: j.completed,
            attempts: j.attempts,
            max_attempts: j.max_attempts,
            priority: j.priority,
            lease_owner: j.lease_owner.clone(),
            lease_expires_at: j.lease_expires_at.map(Ts::micros),
            cancel_requested: j.cancel_requested,
            created_at: Ts::micros(j.created_at),
            started_at: j.started_at.map(Ts::micros),
            finished_at: j.finished_at.map(Ts::micros),
            updated_at: Ts::micros(j.updated_at),
            run_at: Ts::micros(j.run_at),
            last_error: j
                .last_error
                .as_ref()
                .and_then(|e| serde_json::to_value(e).ok())
                .map(Json),
            unique_key: j.unique_key.clone(),
            dedupe_key: j.dedupe_key.clone(),
            webhook: j
                .webhook
                .as_ref()
                .and_then(|w| serde_json::to_value(w).ok())
                .map(Json),
        }
    }
}

/// A `profiles` row.
#[derive(Queryable, Selectable, Insertable, Debug, Clone)]
#[diesel(table_name = profiles)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub(crate) struct ProfileRow {
    pub id: String,
    pub created_at: Ts,
}

/// What kind of media a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    /// Has a video stream.
    Video,
    /// Audio only.
    Audio,
    /// SRT/VTT subtitles.
    Subtitle,
    /// Anything else.
    Other,
}

impl FileKind {
    /// Stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            FileKind::Video => "video",
            FileKind::Audio => "audio",
            FileKind::Subtitle => "subtitle",
            FileKind::Other => "other",
        }
    }

    fn parse(s: &str) -> Result<Self, DbError> {
        Ok(match s {
            "video" => FileKind::Video,
            "audio" => FileKind::Audio,
            "subtitle" => FileKind::Subtitle,
            "other" => FileKind::Other,
            other => return Err(DbError::Corrupt(format!("unknown file kind '{other}'"))),
        })
    }
}

/// Where a file came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileOrigin {
    /// Uploaded by a client.
    Uploaded,
    /// An SRT made by `generate_srt`.
    Generated,
    /// An MP4 made by `convert`.
    Converted,
    /// An SRT made by `fix_srt`.
    Fixed,
}

impl FileOrigin {
    /// Stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            FileOrigin::Uploaded => "uploaded",
            FileOrigin::Generated => "generated",
            FileOrigin::Converted => "converted",
            FileOrigin::Fixed => "fixed",
        }
    }

    fn parse(s: &str) -> Result<Self, DbError> {
        Ok(match s {
            "uploaded" => FileOrigin::Uploaded,
            "generated" => FileOrigin::Generated,
            "converted" => FileOrigin::Converted,
            "fixed" => FileOrigin::Fixed,
            other => return Err(DbError::Corrupt(format!("unknown file origin '{other}'"))),
        })
    }
}

/// A stored file's metadata. Its bytes live under the media dir at `storage_key`.
#[derive(Debug, Clone, PartialEq)]
pub struct FileRecord {
    /// Id.
    pub id: Uuid,
    /// Owner profile.
    pub profile_id: String,
    /// Display name (sanitized; never used as a path).
    pub name: String,
    /// Media kind.
    pub kind: FileKind,
    /// MIME type, if known.
    pub content_type: Option<String>,
    /// Size in bytes.
    pub size_bytes: i64,
    /// Hex SHA-256 of the bytes.
    pub sha256: String,
    /// Duration in milliseconds (audio/video).
    pub duration_ms: Option<i64>,
    /// The file this one was made from.
    pub source_file_id: Option<Uuid>,
    /// How it came to be.
    pub origin: FileOrigin,
    /// Client-chosen folder label.
    pub folder: Option<String>,
    /// Server-made relative path under the media dir.
    pub storage_key: String,
    /// Creation time.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Subtitles: the text encoding of the upload (WHATWG name: `UTF-8`, `windows-1252`,
    /// `UTF-16LE`, …); the stored bytes are UTF-8. `None` for media and job outputs.
    pub source_encoding: Option<String>,
}

#[derive(Queryable, Selectable, Insertable, Debug, Clone)]
#[diesel(table_name = files)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
#[diesel(treat_none_as_default_value = false)]
pub(crate) struct FileRow {
    pub id: Id,
    pub profile_id: String,
    pub name: String,
    pub kind: String,
    pub content_type: Option<String>,
    pub size_bytes: i64,
    pub sha256: String,
    pub duration_ms: Option<i64>,
    pub source_file_id: Option<Id>,
    pub origin: String,
    pub folder: Option<String>,
    pub storage_key: String,
    pub created_at: Ts,
    pub source_encoding: Option<String>,
}

impl FileRow {
    pub(crate) fn into_record(self) -> Result<FileRecord, DbError> {
        Ok(FileRecord {
            id: self.id.0,
            profile_id: self.profile_id,
            name: self.name,
            kind: FileKind::parse(&self.kind)?,
            content_type: self.content_type,
            size_bytes: self.size_bytes,
            sha256: self.sha256,
            duration_ms: self.duration_ms,
            source_file_id: self.source_file_id.map(|i| i.0),
            origin: FileOrigin::parse(&self.origin)?,
            folder: self.folder,
            storage_key: self.storage_key,
            created_at: self.created_at.0,
            source_encoding: self.source_encoding,
        })
    }

    pub(crate) fn from_record(f: &FileRecord) -> Self {
        FileRow {
            id: Id(f.id),
            profile_id: f.profile_id.clone(),
            name: f.name.clone(),
            kind: f.kind.as_str().to_owned(),
            content_type: f.content_type.clone(),
            size_bytes: f.size_bytes,
            sha256: f.sha256.clone(),
            duration_ms: f.duration_ms,
            source_file_id: f.source_file_id.map(Id),
            origin: f.origin.as_str().to_owned(),
            folder: f.folder.clone(),
            storage_key: f.storage_key.clone(),
            created_at: Ts::micros(f.created_at),
            source_encoding: f.source_encoding.clone(),
        }
    }
}

/// A stored transcript.
#[derive(Debug, Clone, PartialEq)]
pub struct TranscriptRecord {
    /// Id.
    pub id: Uuid,
    /// Owner profile.
    pub profile_id: String,
    /// The transcribed file (NULL once that file is deleted).
    pub file_id: Option<Uuid>,
    /// The job that made it.
    pub job_id: Option<Uuid>,
    /// Detected or requested language.
    pub language: Option<String>,
    /// The joined text.
    pub text: String,
    /// Timed segments (JSON array).
    pub segments: serde_json::Value,
    /// Creation time.
    pub created_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Queryable, Selectable, Insertable, Debug, Clone)]
#[diesel(table_name = transcripts)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
#[diesel(treat_none_as_default_value = false)]
pub(crate) struct TranscriptRow {
    pub id: Id,
    pub profile_id: String,
    pub file_id: Option<Id>,
    pub job_id: Option<Id>,
    pub language: Option<String>,
    pub text: String,
    pub segments: Json,
    pub created_at: Ts,
}

impl TranscriptRow {
    pub(crate) fn into_record(self) -> TranscriptRecord {
        TranscriptRecord {
            id: self.id.0,
            profile_id: self.profile_id,
            file_id: self.file_id.map(|i| i.0),
            job_id: self.job_id.map(|i| i.0),
            language: self.language,
            text: self.text,
            segments: self.segments.0,
            created_at: self.created_at.0,
        }
    }

    pub(crate) fn from_record(t: &TranscriptRecord) -> Self {
        TranscriptRow {
            id: Id(t.id),
            profile_id: t.profile_id.clone(),
            file_id: t.file_id.map(Id),
            job_id: t.job_id.map(Id),
            language: t.language.clone(),
            text: t.text.clone(),
            segments: Json(t.segments.clone()),
            created_at: Ts::micros(t.created_at),
        }
    }
}
