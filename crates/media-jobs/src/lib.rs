//! # mediajobs-jobs
//!
//! The media job vocabulary of mediajobs and its handlers, between the HTTP layer and the
//! engine: data flows one way, `mediajobs-api` → this crate → `jobs-core` /
//! `mediajobs-processor` / `mediajobs-persistence`.
//!
//! - [`spec`]: the four [`Operation`]s, their typed options ([`GenerateSrt`], [`Transcribe`],
//!   [`Convert`], [`FixSrt`]) and outputs, [`OnFile`] / [`OnFiles`] (a typed job on one file or
//!   a batch — [`jobs_core::JobArgs`]); [`JobSpec`], the `type`-tagged enum over the eight
//!   job types; [`parse_params`], options in their HTTP form;
//! - [`Services`]: the backends, the checks a submission passes before anything is queued
//!   ([`Services::prepare`] for the HTTP form, [`Services::check_spec`] for a typed spec),
//!   enqueueing, and [`Services::add_file`], the one way a file joins a profile (uploads and
//!   job outputs alike);
//! - [`handlers`]: the eight handlers, registered by [`register_handlers`];
//! - [`MediaStore`]: the media directory (server-made keys, temp files, atomic commits).
//!
//! ```
//! use mediajobs_jobs::{JobSpec, Operation};
//! let spec: JobSpec = serde_json::from_value(serde_json::json!({
//!     "type": "batch_convert",
//!     "file_ids": ["0190d5d2-6f5e-7c3a-8000-000000000001"],
//!     "opts": {"max_size": [1280, 720], "preset": "quality"}
//! })).unwrap();
//! assert_eq!(spec.operation(), Operation::Convert);
//! assert!(spec.is_batch());
//! spec.check().unwrap();
//! ```

mod error;
pub mod handlers;
mod http_form;
mod job_spec;
pub mod retry;
mod services;
pub mod spec;
pub mod speed;
mod storage;

pub use error::MediaJobError;
pub use handlers::{file_url, register_handlers};
pub use http_form::{check_batch_ids, parse_bitrate, parse_params, parse_resolution};
pub use job_spec::{JobSpec, ManyFiles, OneFile, Params};
pub use services::{Enqueued, NewFile, Services, Submission, SubmitOptions, Upload, dedupe_key};
pub use spec::{
    Convert, ConvertOutput, CueFileFormat, DetectLanguage, DetectLanguageOutput, FixSrt,
    FixSrtOutput, GenerateSrt, GenerateSrtOutput, OnFile, OnFiles, Operation, OperationParams,
    Transcribe, TranscribeOutput,
};
pub use speed::{SpeedBook, TimeoutPolicy};
pub use storage::{MediaStore, TempFile, content_type_for, hash_file, sanitize_name};
