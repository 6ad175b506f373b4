//! The error envelope: every error answers
//! `{"success": false, "error": {"code", "message", "details"}}` with a status code.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use jobs_core::{ManagerError, StoreError};
use mediajobs_jobs::{ErrorKind, MediaJobError};
use mediajobs_persistence::DbError;
use serde_json::{Value, json};

/// An HTTP error with a stable code.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable code (`ValidationError`, `NotFound`, …).
    pub code: &'static str,
    /// Human message.
    pub message: String,
    /// Structured details.
    pub details: Option<Value>,
}

impl ApiError {
    /// A new error.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
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

    /// 422 `ValidationError`.
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "ValidationError", message)
    }

    /// 404 `NotFound`.
    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("{} not found", what.into()),
        )
    }

    /// 409 `Conflict`.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "Conflict", message)
    }

    /// 500 `ServerError`; the raw error is only logged.
    pub fn internal(err: impl std::fmt::Display) -> Self {
        tracing::error!(error = %err, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ServerError",
            "An Unexpected Error Occurred",
        )
    }

    /// 500 `Storage` (file system trouble); the raw error is only logged.
    pub fn storage(err: impl std::fmt::Display) -> Self {
        tracing::error!(error = %err, "storage error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Storage",
            "The media storage failed",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({
                "success": false,
                "error": {"code": self.code, "message": self.message, "details": self.details},
            })),
        )
            .into_response()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        match r {
            JsonRejection::BytesRejection(_) => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "PayloadTooLarge",
                "the request body is too large or could not be read",
            ),
            JsonRejection::MissingJsonContentType(_) => {
                ApiError::validation("expected a JSON body with Content-Type: application/json")
            }
            other => ApiError::validation(format!("invalid JSON body: {}", other.body_text())),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::validation(format!("invalid query: {}", r.body_text()))
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError::validation(format!("invalid path: {}", r.body_text()))
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        match &e {
            DbError::NotFound(what) => ApiError::not_found(what.clone()),
            DbError::Conflict(m) => ApiError::conflict(m.clone()),
            DbError::Invalid(m) => ApiError::validation(m.clone()),
            DbError::Store(s) => ApiError::from(StoreErrorRef(s)),
            _ => {
                tracing::error!(error = %e, "database error");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Database",
                    "The database failed",
                )
            }
        }
    }
}

struct StoreErrorRef<'a>(&'a StoreError);

impl From<StoreErrorRef<'_>> for ApiError {
    fn from(e: StoreErrorRef<'_>) -> Self {
        match e.0 {
            StoreError::NotFound(id) => ApiError::not_found(format!("job {id}")),
            StoreError::Conflict(m) => ApiError::conflict(m.clone()),
            StoreError::Invalid(m) => ApiError::validation(m.clone()),
            other => {
                tracing::error!(error = %other, "store error");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Database",
                    "The database failed",
                )
            }
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::from(StoreErrorRef(&e))
    }
}

impl From<ManagerError> for ApiError {
    fn from(e: ManagerError) -> Self {
        match e {
            ManagerError::NotFound(id) => ApiError::not_found(format!("job {id}")),
            ManagerError::Conflict(m) => ApiError::conflict(m),
            ManagerError::Invalid(m) => ApiError::validation(m),
            ManagerError::Store(s) => ApiError::from(s),
            other => ApiError::internal(other),
        }
    }
}

/// Refusals of the media jobs layer (submission checks, uploads): the kind picks the status.
impl From<MediaJobError> for ApiError {
    fn from(e: MediaJobError) -> Self {
        let status = match e.kind {
            ErrorKind::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::Internal if e.code == "Database" => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError {
            status,
            code: e.code,
            message: e.message,
            details: e.details,
        }
    }
}

/// `Result` of handlers.
pub type ApiResult<T> = Result<T, ApiError>;
