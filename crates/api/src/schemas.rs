//! Documentation-only schemas of `/openapi.json`: the request bodies of `POST /jobs` and
//! `POST /jobs/batch` one job type at a time (each with its own `opts` schema and the fields
//! only it takes), and the result of each job type. The server parses the looser
//! [`SubmitJob`](crate::requests::SubmitJob) and checks the rest itself; these say the same
//! rules up front, so generated clients (and fuzzers) send what the server accepts. Tests
//! check both sides against each other: every variant documented here is accepted by the
//! server's parser, and the result schemas name exactly the fields the handlers write.

#![allow(dead_code)] // Schemas: utoipa reads the fields.

use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::options::{ConvertOptions, GenerateSrtOptions, TranscribeOptions};

/// Declares a single-value enum for a job type's `type` field, then the request schema with
/// the input field(s), the type's own fields and the scheduling fields every type takes.
macro_rules! submit_schema {
    ($(#[$meta:meta])* $name:ident, $tag:ident = $ty:literal, { $($own:tt)* }) => {
        #[doc = concat!("The job type `", $ty, "`.")]
        #[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
        pub enum $tag {
            #[doc = concat!("`", $ty, "`")]
            #[serde(rename = $ty)]
            Only,
        }

        $(#[$meta])*
        #[derive(Debug, Clone, Deserialize, ToSchema)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            /// The job type.
            #[serde(rename = "type")]
            pub job_type: $tag,
            $($own)*
            /// Not before this time (RFC 3339, within a year). Not with `delay_seconds`.
            #[schema(value_type = Option<String>, format = DateTime)]
            pub run_at: Option<String>,
            /// Not before this many seconds from now (at most 30 days). Not with `run_at`.
            #[schema(minimum = 0, maximum = 2592000)]
            pub delay_seconds: Option<u64>,
            /// Claim order within the job's lane: higher first, FIFO among equals (default
            /// 0). A running job is never preempted.
            #[schema(minimum = -1000, maximum = 1000)]
            pub priority: Option<i16>,
            /// While a job of this profile with this key is queued or running, submitting
            /// the key again returns that job (`200`, header `x-mediajobs-existing: true`).
            #[schema(min_length = 1, max_length = 256, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]+$")]
            pub unique_key: Option<String>,
            /// Reuse an identical earlier result (same content, operation, options and
            /// model) instead of running whisper again. Default: on for `generate_srt` and
            /// `transcribe`.
            pub dedupe: Option<bool>,
            /// POSTed (signed, Standard Webhooks) when the job ends; needs the server setting
            /// `MEDIAJOBS_WEBHOOK_SECRET`. http/https only; private addresses are refused
            /// unless `MEDIAJOBS_WEBHOOK_ALLOW_PRIVATE=true`.
            #[schema(pattern = "^[hH][tT][tT][pP][sS]?://[^\\s/?#]+\\S*$", max_length = 2048)]
            pub webhook_url: Option<String>,
            /// An explicit deadline in seconds instead of the one derived from the input's
            /// duration and the measured speed; past it the job fails `Timeout`.
            #[schema(minimum = 1, maximum = 86400)]
            pub timeout_seconds: Option<u64>,
        }
    };
}

submit_schema! {
    /// `POST /jobs` with `type: generate_srt`: transcribe a media file and save subtitles.
    SubmitGenerateSrt, GenerateSrtType = "generate_srt", {
        /// The audio or video file.
        pub file_id: Uuid,
        /// Options.
        pub opts: Option<GenerateSrtOptions>,
    }
}
submit_schema! {
    /// `POST /jobs` with `type: transcribe`: transcribe a media file into a stored transcript.
    SubmitTranscribe, TranscribeType = "transcribe", {
        /// The audio or video file.
        pub file_id: Uuid,
        /// Options.
        pub opts: Option<TranscribeOptions>,
    }
}
submit_schema! {
    /// `POST /jobs` with `type: convert`: convert a media file to MP4 (H.264/AAC).
    SubmitConvert, ConvertType = "convert", {
        /// The audio or video file.
        pub file_id: Uuid,
        /// Options.
        pub opts: Option<ConvertOptions>,
    }
}
submit_schema! {
    /// `POST /jobs` with `type: fix_srt`: correct a subtitle file's text with an LLM.
    SubmitFixSrt, FixSrtType = "fix_srt", {
        /// The subtitle file.
        pub file_id: Uuid,
        /// `provider:model` (`GET /server` lists the providers).
        #[schema(pattern = "^[A-Za-z0-9_-]+:\\S.*$", max_length = 256)]
        pub model: String,
        /// System prompt override.
        #[schema(max_length = 20000)]
        pub sys_msg: Option<String>,
    }
}
submit_schema! {
    /// `POST /jobs/batch` with `type: batch_generate_srt`.
    SubmitBatchGenerateSrt, BatchGenerateSrtType = "batch_generate_srt", {
        /// The audio or video files, in order (no duplicates).
        #[schema(min_items = 1, max_items = 500)]
        pub file_ids: std::collections::BTreeSet<Uuid>,
        /// Options for every file.
        pub opts: Option<GenerateSrtOptions>,
    }
}
submit_schema! {
    /// `POST /jobs/batch` with `type: batch_transcribe`.
    SubmitBatchTranscribe, BatchTranscribeType = "batch_transcribe", {
        /// The audio or video files, in order (no duplicates).
        #[schema(min_items = 1, max_items = 500)]
        pub file_ids: std::collections::BTreeSet<Uuid>,
        /// Options for every file.
        pub opts: Option<TranscribeOptions>,
    }
}
submit_schema! {
    /// `POST /jobs/batch` with `type: batch_convert`.
    SubmitBatchConvert, BatchConvertType = "batch_convert", {
        /// The audio or video files, in order (no duplicates).
        #[schema(min_items = 1, max_items = 500)]
        pub file_ids: std::collections::BTreeSet<Uuid>,
        /// Options for every file.
        pub opts: Option<ConvertOptions>,
    }
}
submit_schema! {
    /// `POST /jobs/batch` with `type: batch_fix_srt`.
    SubmitBatchFixSrt, BatchFixSrtType = "batch_fix_srt", {
        /// The subtitle files, in order (no duplicates).
        #[schema(min_items = 1, max_items = 500)]
        pub file_ids: std::collections::BTreeSet<Uuid>,
        /// `provider:model` (`GET /server` lists the providers).
        #[schema(pattern = "^[A-Za-z0-9_-]+:\\S.*$", max_length = 256)]
        pub model: String,
        /// System prompt override.
        #[schema(max_length = 20000)]
        pub sys_msg: Option<String>,
    }
}

/// The body of `POST /jobs`: one of the job types.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum SubmitJobBody {
    /// `generate_srt`.
    GenerateSrt(SubmitGenerateSrt),
    /// `transcribe`.
    Transcribe(SubmitTranscribe),
    /// `convert`.
    Convert(SubmitConvert),
    /// `fix_srt`.
    FixSrt(SubmitFixSrt),
}

/// The body of `POST /jobs/batch`: one of the batch job types.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum SubmitBatchBody {
    /// `batch_generate_srt`.
    GenerateSrt(SubmitBatchGenerateSrt),
    /// `batch_transcribe`.
    Transcribe(SubmitBatchTranscribe),
    /// `batch_convert`.
    Convert(SubmitBatchConvert),
    /// `batch_fix_srt`.
    FixSrt(SubmitBatchFixSrt),
}

/// Reading-speed figures of saved subtitles.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadingSpeedResult {
    /// Mean characters per second over the cues.
    pub mean_cps: f64,
    /// The fastest cue's.
    pub max_cps: f64,
    /// Cues above 20 characters per second (hard to read).
    pub cues_over_20_cps: u64,
}

/// Tokens an LLM job spent.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenUsageResult {
    /// Prompt tokens of all requests.
    pub prompt_tokens: u64,
    /// Completion tokens of all requests.
    pub completion_tokens: u64,
    /// Prompt tokens of requests whose answer was rejected.
    pub wasted_prompt_tokens: u64,
    /// Completion tokens of rejected answers.
    pub wasted_completion_tokens: u64,
    /// Requests sent.
    pub requests: u64,
    /// Answers rejected by validation.
    pub invalid_answers: u64,
}

/// The saved subtitle format.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SavedFormat {
    /// SubRip.
    Srt,
    /// WebVTT.
    Vtt,
}

/// The result of `generate_srt`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GenerateSrtResult {
    /// The new subtitle file.
    pub srt_file_id: Uuid,
    /// Where to download it.
    pub srt_url: String,
    /// Its text.
    pub srt_content: String,
    /// The saved format.
    pub format: SavedFormat,
    /// Detected or requested language.
    pub language: String,
    /// Number of cues.
    pub cues: u64,
    /// Reading speed.
    pub reading_speed: ReadingSpeedResult,
    /// With voice activity detection: the speech whisper heard, ms (silence and noise were
    /// skipped); absent without it.
    pub speech_ms: Option<i64>,
    /// The earlier job whose transcription this result reuses; absent when whisper ran.
    pub reused_from: Option<Uuid>,
}

/// The result of `transcribe`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TranscribeResult {
    /// The stored transcript (`GET /profiles/transcripts/{id}`).
    pub transcript_id: Uuid,
    /// Its text.
    pub transcript: String,
    /// Detected or requested language.
    pub language: String,
    /// With voice activity detection: the speech whisper heard, ms; absent without it.
    pub speech_ms: Option<i64>,
    /// The earlier job whose transcription this result reuses; absent when whisper ran.
    pub reused_from: Option<Uuid>,
}

/// The result of `convert`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConvertResult {
    /// The new MP4 file.
    pub file_id: Uuid,
    /// Where to download it.
    pub video_url: String,
}

/// The result of `fix_srt`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FixSrtResult {
    /// The fixed subtitle file.
    pub srt_file_id: Uuid,
    /// Where to download it.
    pub srt_url: String,
    /// Its text.
    pub srt_content: String,
    /// Cues whose text changed.
    pub changed_cues: u64,
    /// Tokens spent.
    pub usage: TokenUsageResult,
}

/// The result of `detect_language` (the compatible APIs' language detection).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DetectLanguageResult {
    /// The language code (`en`).
    pub language_code: String,
    /// Its English name in lower case (`english`).
    pub language: String,
    /// The model's probability for it.
    pub confidence: f64,
}

/// The result of a batch (also when it failed or was cancelled): its children's counts.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchCounts {
    /// Number of children.
    pub total: u64,
    /// Children that succeeded.
    pub succeeded: u64,
    /// Children that failed.
    pub failed: u64,
    /// Children that were cancelled.
    pub cancelled: u64,
    /// Child ids, in submit order.
    pub children: Vec<Uuid>,
}

/// A job's result, by its type; null until it succeeded (a batch also has its counts when it
/// failed or was cancelled).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum JobResultBody {
    /// `generate_srt`.
    GenerateSrt(GenerateSrtResult),
    /// `transcribe`.
    Transcribe(TranscribeResult),
    /// `convert`.
    Convert(ConvertResult),
    /// `fix_srt`.
    FixSrt(FixSrtResult),
    /// `detect_language`.
    DetectLanguage(DetectLanguageResult),
    /// Every `batch_*` type.
    Batch(BatchCounts),
}

/// The name of a job event on the SSE streams.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobEventName {
    /// Where things stand, first on every (re)connection: a `JobView` (one job's stream) or
    /// an array of the active ones (the profile's).
    Snapshot,
    /// A job was submitted.
    Created,
    /// A job started running.
    Started,
    /// Progress or stage changed.
    Progress,
    /// A cancel was asked for while running.
    CancelRequested,
    /// Back in the queue (a retry, a retryable failure, an interruption).
    Requeued,
    /// Another change (the webhook's delivery, say).
    Updated,
    /// It reached a terminal state.
    Finished,
    /// It was deleted.
    Deleted,
}

/// One server-sent event of `GET /jobs/{id}/events` and `GET /jobs/events`, as a client's
/// SSE parser sees it. `data` is JSON text: a `JobView` (or, for `snapshot` on the profile
/// stream, an array of them).
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct JobSseEvent {
    /// The event name.
    pub event: JobEventName,
    /// The JSON payload.
    pub data: String,
    /// Unused (the snapshot replaces resumption by id).
    pub id: Option<String>,
    /// Unused.
    pub retry: Option<u64>,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::{Value, json};
    use utoipa::OpenApi;

    use crate::ApiDoc;

    fn doc() -> Value {
        serde_json::to_value(ApiDoc::openapi()).unwrap()
    }

    fn props(doc: &Value, name: &str) -> BTreeSet<String> {
        let s = &doc["components"]["schemas"][name];
        assert_eq!(s["additionalProperties"], false, "{name}: {s}");
        s["properties"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    }

    fn keys(v: &Value) -> BTreeSet<String> {
        v.as_object().unwrap().keys().cloned().collect()
    }

    /// The result schemas name exactly what the typed outputs serialize (optional fields
    /// included when set).
    #[test]
    fn result_schemas_match_the_outputs() {
        use mediajobs_jobs::{ConvertOutput, FixSrtOutput, GenerateSrtOutput, TranscribeOutput};
        use mediajobs_processor::llm::TokenUsage;
        use mediajobs_processor::subtitle::ReadingSpeed;
        let d = doc();
        let id = uuid::Uuid::now_v7();
        let speed = ReadingSpeed {
            mean_cps: 10.0,
            max_cps: 15.0,
            cues_over_20_cps: 0,
        };
        let g = serde_json::to_value(GenerateSrtOutput {
            srt_file_id: id,
            srt_url: "/u".into(),
            srt_content: "x".into(),
            format: Default::default(),
            language: "en".into(),
            cues: 1,
            reading_speed: speed,
            speech_ms: Some(1),
            reused_from: Some(id),
        })
        .unwrap();
        assert_eq!(keys(&g), props(&d, "GenerateSrtResult"));
        assert_eq!(keys(&g["reading_speed"]), props(&d, "ReadingSpeedResult"));
        let t = serde_json::to_value(TranscribeOutput {
            transcript_id: id,
            transcript: "x".into(),
            language: "en".into(),
            speech_ms: Some(1),
            reused_from: Some(id),
        })
        .unwrap();
        assert_eq!(keys(&t), props(&d, "TranscribeResult"));
        let c = serde_json::to_value(ConvertOutput {
            file_id: id,
            video_url: "/u".into(),
        })
        .unwrap();
        assert_eq!(keys(&c), props(&d, "ConvertResult"));
        let f = serde_json::to_value(FixSrtOutput {
            srt_file_id: id,
            srt_url: "/u".into(),
            srt_content: "x".into(),
            changed_cues: 1,
            usage: TokenUsage::default(),
        })
        .unwrap();
        assert_eq!(keys(&f), props(&d, "FixSrtResult"));
        assert_eq!(keys(&f["usage"]), props(&d, "TokenUsageResult"));
        let b = serde_json::to_value(jobs_core::BatchResult::default()).unwrap();
        assert_eq!(keys(&b), props(&d, "BatchCounts"));
        let l = serde_json::to_value(mediajobs_jobs::DetectLanguageOutput {
            language_code: "en".into(),
            language: "english".into(),
            confidence: 0.9,
        })
        .unwrap();
        assert_eq!(keys(&l), props(&d, "DetectLanguageResult"));
    }

    /// Each documented submission variant names the fields the server's request type takes,
    /// and a minimal and a full body of each pass the server's parsing (the request type and
    /// the options parser).
    #[test]
    fn submit_schemas_are_what_the_server_parses() {
        let d = doc();
        let one = d["components"]["schemas"]["SubmitJobBody"]["oneOf"]
            .as_array()
            .unwrap()
            .len();
        assert_eq!(one, 4);
        let batch = d["components"]["schemas"]["SubmitBatchBody"]["oneOf"]
            .as_array()
            .unwrap()
            .len();
        assert_eq!(batch, 4);
        let tomorrow = chrono::Utc::now() + chrono::TimeDelta::days(1);
        let sched = json!({"run_at": tomorrow.to_rfc3339(), "priority": 5, "unique_key": "k",
            "dedupe": false, "timeout_seconds": 60});
        let cases = [
            (
                "SubmitGenerateSrt",
                "generate_srt",
                json!({"opts": {"format": "vtt", "language": "en"}}),
            ),
            (
                "SubmitTranscribe",
                "transcribe",
                json!({"opts": {"clean_audio": true}}),
            ),
            (
                "SubmitConvert",
                "convert",
                json!({"opts": {"preset": "quality"}}),
            ),
            (
                "SubmitFixSrt",
                "fix_srt",
                json!({"model": "local:m", "sys_msg": "Fix."}),
            ),
        ];
        let loose_single: BTreeSet<String> = props(&d, "SubmitJob");
        let loose_batch: BTreeSet<String> = props(&d, "SubmitBatch");
        for (schema, ty, own) in cases {
            for batch in [false, true] {
                let (name, ty) = if batch {
                    (
                        schema.replace("Submit", "SubmitBatch"),
                        format!("batch_{ty}"),
                    )
                } else {
                    (schema.to_owned(), ty.to_owned())
                };
                let fields = props(&d, &name);
                let loose = if batch { &loose_batch } else { &loose_single };
                assert!(fields.is_subset(loose), "{name}: {fields:?} vs {loose:?}");
                let mut body = json!({"type": ty});
                if batch {
                    body["file_ids"] = json!([uuid::Uuid::now_v7()]);
                } else {
                    body["file_id"] = json!(uuid::Uuid::now_v7());
                }
                for (k, v) in own
                    .as_object()
                    .unwrap()
                    .iter()
                    .chain(sched.as_object().unwrap())
                {
                    body[k] = v.clone();
                }
                assert!(keys(&body).is_subset(&fields), "{name}: {body}");
                let sub: mediajobs_jobs::Submission = if batch {
                    let r: crate::requests::SubmitBatch =
                        serde_json::from_value(body.clone()).unwrap();
                    r.scheduling(None).unwrap();
                    r.into()
                } else {
                    let r: crate::requests::SubmitJob =
                        serde_json::from_value(body.clone()).unwrap();
                    r.scheduling(None).unwrap();
                    r.into()
                };
                let op = mediajobs_jobs::Operation::parse(schema_ty(&sub.job_type), false).unwrap();
                mediajobs_jobs::parse_params(
                    op,
                    sub.opts.as_ref(),
                    sub.model.as_deref(),
                    sub.sys_msg.as_deref(),
                )
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            }
        }
    }

    /// A parameter is in the path only when the path names it (utoipa's default for
    /// `IntoParams` is the path: schemathesis found `GET /jobs`'s filters documented there).
    #[test]
    fn parameters_are_where_the_route_reads_them() {
        let d = doc();
        for (path, ops) in d["paths"].as_object().unwrap() {
            for (method, op) in ops.as_object().unwrap() {
                for p in op["parameters"].as_array().into_iter().flatten() {
                    let name = p["name"].as_str().unwrap();
                    let in_path = path.contains(&format!("{{{name}}}"));
                    assert_eq!(p["in"] == "path", in_path, "{method} {path} {name}: {p}");
                    if p["in"] == "query" {
                        assert_eq!(p["required"], json!(false), "{method} {path} {name}");
                    }
                }
            }
        }
    }

    fn schema_ty(t: &str) -> &str {
        t.trim_start_matches("batch_")
    }
}
