//! The error envelope: every error answers
//! `{"success": false, "error": {"code", "message", "details"}}` with a status code.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use jobs_core::{ErrorCode, ManagerError, StoreError};
use mediajobs_jobs::MediaJobError;
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

    /// 400 `BadRequest`: a missing or malformed header, a body not in the route's form.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message)
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

impl ApiError {
    /// An error with a code's own status.
    pub fn coded(code: ErrorCode, message: impl Into<String>) -> Self {
        let status =
            StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        Self::new(status, code.as_str(), message)
    }
}

/// Refusals and failures of the media jobs layer (submission checks, uploads, and through
/// it every store and database error).
impl From<MediaJobError> for ApiError {
    fn from(e: MediaJobError) -> Self {
        let mut err = ApiError::coded(e.code, e.message);
        err.details = e.details;
        err
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        MediaJobError::from(e).into()
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        MediaJobError::from(e).into()
    }
}

impl From<ManagerError> for ApiError {
    fn from(e: ManagerError) -> Self {
        MediaJobError::from(e).into()
    }
}

/// `Result` of handlers.
pub type ApiResult<T> = Result<T, ApiError>;
