//! Progress callbacks and the processor's error type.

use mediajobs_codes::ErrorCode;
use std::sync::Arc;

use crate::subtitle::Segment;

/// Receives progress of a long operation: a fraction in 0.0 ..= 1.0 and a stage name.
///
/// Any `Fn(f64, &str) + Send + Sync` is a sink:
///
/// ```
/// use mediajobs_processor::Progress;
/// let p: Progress = std::sync::Arc::new(|f: f64, stage: &str| println!("{stage}: {:.0}%", f * 100.0));
/// p.report(0.5, "decoding");
/// ```
pub trait ProgressSink: Send + Sync {
    /// Reports progress.
    fn report(&self, fraction: f64, stage: &str);

    /// A finished piece of output, the moment the backend has it (a transcription's segments,
    /// in order, before the whole transcript is done). Ignored unless a sink wants it.
    fn segment(&self, segment: &Segment) {
        let _ = segment;
    }
}

impl<F: Fn(f64, &str) + Send + Sync> ProgressSink for F {
    fn report(&self, fraction: f64, stage: &str) {
        self(fraction, stage)
    }
}

/// A shared progress sink.
pub type Progress = Arc<dyn ProgressSink>;

/// A sink that drops every report.
pub fn no_progress() -> Progress {
    Arc::new(|_: f64, _: &str| {})
}

/// Maps a sub-operation's 0..1 progress into `[from, to]` of the caller's.
///
/// ```
/// use mediajobs_processor::{scaled, Progress};
/// let seen = std::sync::Arc::new(std::sync::Mutex::new(0.0));
/// let s = seen.clone();
/// let outer: Progress = std::sync::Arc::new(move |f: f64, _: &str| *s.lock().unwrap() = f);
/// scaled(outer, 0.5, 1.0).report(0.5, "x");
/// assert_eq!(*seen.lock().unwrap(), 0.75);
/// ```
pub fn scaled(inner: Progress, from: f64, to: f64) -> Progress {
    Arc::new(Scaled { inner, from, to })
}

/// [`scaled`]'s sink: maps fractions, passes segments through.
struct Scaled {
    inner: Progress,
    from: f64,
    to: f64,
}

impl ProgressSink for Scaled {
    fn report(&self, f: f64, stage: &str) {
        self.inner
            .report(self.from + (self.to - self.from) * f.clamp(0.0, 1.0), stage);
    }

    fn segment(&self, segment: &Segment) {
        self.inner.segment(segment);
    }
}

/// Errors of the processor, each with a stable code of the HTTP contract.
#[derive(Debug, thiserror::Error)]
pub enum ProcessorError {
    /// The input is not media we can decode: corrupt, empty, truncated, no audio, unknown.
    #[error("{0}")]
    MediaDecode(String),
    /// Transcription failed.
    #[error("{0}")]
    Transcription(String),
    /// The whisper model is missing or cannot be loaded.
    #[error("{0}")]
    WhisperUnavailable(String),
    /// An option the backend cannot honour (rejected at submission: 422).
    #[error("{0}")]
    Validation(String),
    /// The transcription model asked for is not installed (the message lists those that are).
    #[error("{0}")]
    UnknownModel(String),
    /// The operation stopped because its token fired.
    #[error("operation cancelled")]
    Cancelled,
    /// A watchdog or deadline fired.
    #[error("{0}")]
    Timeout(String),
    /// A required GStreamer plugin or tool is missing (an installation problem).
    #[error("{0}")]
    Unavailable(String),
    /// A bad `provider:model` selector.
    #[error("{0}")]
    InvalidModelString(String),
    /// The selected LLM provider is not configured.
    #[error("{0}")]
    LlmProviderUnavailable(String),
    /// The LLM (or remote transcription) request failed.
    #[error("{0}")]
    LlmRequest(String),
    /// The LLM (or remote transcription) service is unavailable for now (429, 5xx, no
    /// connection, after the request's own retries): a later attempt may succeed. Its code is
    /// `LLMRequest`, like any failed request; it is retryable.
    #[error("{0}")]
    ServiceUnavailable(String),
    /// The LLM's answer could not be used.
    #[error("{0}")]
    LlmOutputInvalid(String),
    /// File system trouble.
    #[error("storage error: {0}")]
    Storage(#[from] std::io::Error),
    /// Anything else (a bug or an environment problem).
    #[error("{0}")]
    Internal(String),
}

impl ProcessorError {
    /// `true` when a later attempt may succeed: a service that is unavailable for now, a
    /// timeout, a storage error. Validation, bad media and bad answers are not.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ProcessorError::ServiceUnavailable(_)
                | ProcessorError::Timeout(_)
                | ProcessorError::Storage(_)
        )
    }

    /// The stable code (`MediaDecode`, `Transcription`, `WhisperUnavailable`, …).
    pub fn code(&self) -> ErrorCode {
        match self {
            ProcessorError::MediaDecode(_) => ErrorCode::MediaDecode,
            ProcessorError::Transcription(_) => ErrorCode::Transcription,
            ProcessorError::WhisperUnavailable(_) => ErrorCode::WhisperUnavailable,
            ProcessorError::Validation(_) => ErrorCode::ValidationError,
            ProcessorError::UnknownModel(_) => ErrorCode::UnknownModel,
            ProcessorError::Cancelled => ErrorCode::Cancelled,
            ProcessorError::Timeout(_) => ErrorCode::Timeout,
            ProcessorError::Unavailable(_) => ErrorCode::ServerError,
            ProcessorError::InvalidModelString(_) => ErrorCode::InvalidModelString,
            ProcessorError::LlmProviderUnavailable(_) => ErrorCode::LlmProviderUnavailable,
            ProcessorError::LlmRequest(_) | ProcessorError::ServiceUnavailable(_) => {
                ErrorCode::LlmRequest
            }
            ProcessorError::LlmOutputInvalid(_) => ErrorCode::LlmOutputInvalid,
            ProcessorError::Storage(_) => ErrorCode::Storage,
            ProcessorError::Internal(_) => ErrorCode::ServerError,
        }
    }
}
