//! [`MediaJobError`]: a refusal with a stable [`ErrorCode`], for submissions and uploads.

use jobs_core::{ErrorCode, ManagerError, StoreError};
use mediajobs_persistence::DbError;
use serde_json::Value;

/// A refusal with a stable code (`ValidationError`, `WrongFileKind`, `UnknownJobType`,
/// `MediaDecode`, `WhisperUnavailable`, `NotFound`, `Storage`, …), a message and details.
/// The HTTP status is the code's ([`ErrorCode::http_status`]).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct MediaJobError {
    /// Stable code.
    pub code: ErrorCode,
    /// Human message.
    pub message: String,
    /// Structured details.
    pub details: Option<Value>,
}

impl MediaJobError {
    /// A new error.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        MediaJobError {
            code,
            message: message.into(),
            details: None,
        }
    }

    /// Adds details.
    pub fn details(mut self, d: Value) -> Self {
        self.details = Some(d);
        self
    }

    /// `ValidationError`.
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ValidationError, message)
    }

    /// `NotFound` (`what` is "file 1234…").
    pub fn not_found(what: impl std::fmt::Display) -> Self {
        Self::new(ErrorCode::NotFound, format!("{what} not found"))
    }

    /// `Storage`: the media storage failed; the cause is only logged.
    pub fn storage(err: impl std::fmt::Display) -> Self {
        tracing::error!(error = %err, "storage error");
        Self::new(ErrorCode::Storage, "The media storage failed")
    }

    /// `MediaDecode`: an upload that is not readable media.
    pub fn media_decode(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::MediaDecode, message)
    }

    /// `ServerError`: the cause is only logged.
    pub fn internal(err: impl std::fmt::Display) -> Self {
        tracing::error!(error = %err, "unexpected error");
        Self::new(ErrorCode::ServerError, "An Unexpected Error Occurred")
    }

    /// Whether the message is safe to show as it is (a refusal, not a failure).
    pub fn is_refusal(&self) -> bool {
        self.code.http_status() < 500
    }
}

impl From<StoreError> for MediaJobError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => MediaJobError::not_found(what),
            StoreError::Conflict(m) => MediaJobError::new(ErrorCode::Conflict, m),
            StoreError::Invalid(m) => MediaJobError::validation(m),
            StoreError::Backend(b) => {
                tracing::error!(error = %b, "database error");
                MediaJobError::new(ErrorCode::Database, "The database failed")
            }
        }
    }
}

impl From<DbError> for MediaJobError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Store(s) => s.into(),
            other => {
                tracing::error!(error = %other, "database error");
                MediaJobError::new(ErrorCode::Database, "The database failed")
            }
        }
    }
}

impl From<crate::retry::Retried> for MediaJobError {
    /// A retried call of a running job: the token fired, or the lease went elsewhere, is
    /// `Cancelled` (the job's outcome is then the lease rules'); anything else as its error.
    fn from(e: crate::retry::Retried) -> Self {
        match e {
            crate::retry::Retried::Cancelled
            | crate::retry::Retried::Failed(DbError::FenceLost(_)) => {
                MediaJobError::new(ErrorCode::Cancelled, "The job no longer runs here")
            }
            crate::retry::Retried::Failed(e) => e.into(),
        }
    }
}

impl From<ManagerError> for MediaJobError {
    fn from(e: ManagerError) -> Self {
        match e {
            ManagerError::Store(s) => s.into(),
            other => MediaJobError::internal(other),
        }
    }
}

impl From<mediajobs_processor::ProcessorError> for MediaJobError {
    /// Errors found at submission (options the backend cannot honour, bad model strings).
    fn from(e: mediajobs_processor::ProcessorError) -> Self {
        use mediajobs_processor::ProcessorError as P;
        let code = e.code();
        match e {
            P::Validation(m)
            | P::UnknownModel(m)
            | P::InvalidModelString(m)
            | P::LlmProviderUnavailable(m)
            | P::WhisperUnavailable(m)
            | P::MediaDecode(m) => MediaJobError::new(code, m),
            other => MediaJobError::internal(other),
        }
    }
}
