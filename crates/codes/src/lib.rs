//! # mediajobs-codes
//!
//! Every stable error code of mediajobs in one enum, [`ErrorCode`]. Each crate maps its errors
//! into it (the queue's `StoreError`, the processor's `ProcessorError`, the database's
//! `DbError`, the media jobs' refusals) and the HTTP layer answers with
//! [`ErrorCode::http_status`]. The strings are part of the HTTP contract and of stored jobs'
//! `error_code`: they never change.
//!
//! ```
//! use mediajobs_codes::ErrorCode;
//! assert_eq!(ErrorCode::WrongFileKind.as_str(), "WrongFileKind");
//! assert_eq!("LLMOutputInvalid".parse::<ErrorCode>(), Ok(ErrorCode::LlmOutputInvalid));
//! assert_eq!(ErrorCode::NotFound.http_status(), 404);
//! assert_eq!(ErrorCode::NotFound, "NotFound");
//! ```
//!
//! It has no dependency, so the queue engine can use it without learning about media or HTTP.

use std::fmt;

macro_rules! codes {
    ($( $(#[$doc:meta])* $variant:ident = $text:literal => $status:literal, )*) => {
        /// A stable error code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum ErrorCode {
            $( $(#[$doc])* $variant, )*
        }

        impl ErrorCode {
            /// Every code.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant),*];

            /// The code as clients and stored jobs see it.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( ErrorCode::$variant => $text, )*
                }
            }

            /// The HTTP status a refusal with this code answers with (for a job's error, the
            /// job itself answers 200; this is the status of a request refused with it).
            pub const fn http_status(self) -> u16 {
                match self {
                    $( ErrorCode::$variant => $status, )*
                }
            }
        }

        impl std::str::FromStr for ErrorCode {
            type Err = UnknownCode;
            fn from_str(s: &str) -> Result<Self, UnknownCode> {
                match s {
                    $( $text => Ok(ErrorCode::$variant), )*
                    other => Err(UnknownCode(other.to_owned())),
                }
            }
        }
    };
}

codes! {
    /// The request or the job's input breaks a rule (bad options, bad file list, …).
    ValidationError = "ValidationError" => 422,
    /// A required header is missing or malformed (`X-Profile-ID`, `X-File-Name`), or the
    /// request is not in the form the route takes (not `multipart/form-data`, a broken
    /// multipart body).
    BadRequest = "BadRequest" => 400,
    /// The transcription model asked for is not installed; the message lists those that are.
    UnknownModel = "UnknownModel" => 422,
    /// No such job, file or transcript in the caller's profile (or no such route).
    NotFound = "NotFound" => 404,
    /// The state does not allow it (deleting an active job, a file a running job uses).
    Conflict = "Conflict" => 409,
    /// The body is larger than the server takes.
    PayloadTooLarge = "PayloadTooLarge" => 413,
    /// The route exists, not with this method.
    MethodNotAllowed = "MethodNotAllowed" => 405,
    /// A bearer token is required, wrong, or does not reach the profile.
    Unauthorized = "Unauthorized" => 401,
    /// No handler for the job type (or the type is not one the server knows).
    UnknownJobType = "UnknownJobType" => 422,
    /// The file's kind does not suit the operation (or the upload's `type`).
    WrongFileKind = "WrongFileKind" => 422,
    /// The media cannot be read or decoded.
    MediaDecode = "MediaDecode" => 422,
    /// A transcription was asked of a video without an audio stream.
    NoAudioStream = "NoAudioStream" => 422,
    /// Transcription failed.
    Transcription = "Transcription" => 502,
    /// Transcription is unavailable (no model, bad model file).
    WhisperUnavailable = "WhisperUnavailable" => 422,
    /// An operation ran past its deadline.
    Timeout = "Timeout" => 504,
    /// A model selector is not `provider:model`.
    InvalidModelString = "InvalidModelString" => 422,
    /// The LLM provider of a selector is not configured.
    LlmProviderUnavailable = "LLMProviderUnavailable" => 422,
    /// The LLM provider failed or refused.
    LlmRequest = "LLMRequest" => 502,
    /// The LLM's answer broke the rules even after retries; nothing was saved.
    LlmOutputInvalid = "LLMOutputInvalid" => 502,
    /// The media storage failed.
    Storage = "Storage" => 500,
    /// The database failed.
    Database = "Database" => 503,
    /// The server is up but cannot serve jobs yet (`GET /ready`): migrations, database, model.
    NotReady = "NotReady" => 503,
    /// Anything unexpected; details are only logged.
    ServerError = "ServerError" => 500,
    /// A restart or a lost node interrupted the job, and it was not re-queued.
    Interrupted = "Interrupted" => 500,
    /// A batch in which no child succeeded and at least one failed.
    BatchFailed = "BatchFailed" => 500,
    /// The job was cancelled.
    Cancelled = "Cancelled" => 409,
}

/// A string that is not one of the codes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownCode(pub String);

impl fmt::Display for UnknownCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown error code '{}'", self.0)
    }
}

impl std::error::Error for UnknownCode {}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<ErrorCode> for &'static str {
    fn from(c: ErrorCode) -> &'static str {
        c.as_str()
    }
}

impl From<ErrorCode> for std::borrow::Cow<'static, str> {
    fn from(c: ErrorCode) -> Self {
        std::borrow::Cow::Borrowed(c.as_str())
    }
}

impl PartialEq<str> for ErrorCode {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for ErrorCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<ErrorCode> for &str {
    fn eq(&self, other: &ErrorCode) -> bool {
        *self == other.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_and_is_unique() {
        let mut seen = std::collections::HashSet::new();
        for c in ErrorCode::ALL {
            assert!(seen.insert(c.as_str()), "duplicate {c}");
            assert_eq!(c.as_str().parse::<ErrorCode>(), Ok(*c));
            assert!((400..600).contains(&c.http_status()), "{c}");
        }
        assert!("Nope".parse::<ErrorCode>().is_err());
    }
}
