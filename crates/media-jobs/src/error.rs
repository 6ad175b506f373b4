//! [`MediaJobError`]: a domain error with a stable code, for submissions and uploads.

use serde_json::Value;

/// What kind of refusal an error is; the HTTP layer maps it to a status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The input is wrong (422).
    Invalid,
    /// Something referenced does not exist in the profile (404).
    NotFound,
    /// The state does not allow it (409).
    Conflict,
    /// The server failed (500); the message is generic, the cause only logged.
    Internal,
}

/// A refusal with a stable code (`ValidationError`, `WrongFileKind`, `UnknownJobType`,
/// `MediaDecode`, `WhisperUnavailable`, `NotFound`, `Storage`, …), a message and details.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct MediaJobError {
    /// What kind of refusal.
    pub kind: ErrorKind,
    /// Stable code.
    pub code: &'static str,
    /// Human message.
    pub message: String,
    /// Structured details.
    pub details: Option<Value>,
}

impl MediaJobError {
    /// A new error.
    pub fn new(kind: ErrorKind, code: &'static str, message: impl Into<String>) -> Self {
        MediaJobError {
            kind,
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
        Self::new(ErrorKind::Invalid, "ValidationError", message)
    }

    /// `NotFound` (`what` is "file 1234…").
    pub fn not_found(what: impl std::fmt::Display) -> Self {
        Self::new(ErrorKind::NotFound, "NotFound", format!("{what} not found"))
    }

    /// `Storage`: the media storage failed; the cause is only logged.
    pub fn storage(err: impl std::fmt::Display) -> Self {
        tracing::error!(error = %err, "storage error");
        Self::new(ErrorKind::Internal, "Storage", "The media storage failed")
    }

    /// `MediaDecode`: an upload that is not readable media.
    pub fn media_decode(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Invalid, "MediaDecode", message)
    }
}

impl From<mediajobs_processor::ProcessorError> for MediaJobError {
    /// Errors found at submission (options the backend cannot honour, bad model strings).
    fn from(e: mediajobs_processor::ProcessorError) -> Self {
        use mediajobs_processor::ProcessorError as P;
        let code = e.code();
        match e {
            P::Validation(m)
            | P::InvalidModelString(m)
            | P::LlmProviderUnavailable(m)
            | P::WhisperUnavailable(m)
            | P::MediaDecode(m) => MediaJobError::new(ErrorKind::Invalid, code, m),
            other => {
                tracing::error!(error = %other, "processor error at submission");
                MediaJobError::new(
                    ErrorKind::Internal,
                    "ServerError",
                    "An Unexpected Error Occurred",
                )
            }
        }
    }
}
