//! The compatible APIs: OpenAI's audio API ([`openai`]) and the whisper-asr-webservice API
//! that Bazarr and Subgen call ([`asr`]), on top of the durable queue.
//!
//! Every request is a job of its profile: the uploaded audio becomes a file of the profile
//! (folder `openai` or `asr`; the job references it, so it stays listable, reusable and
//! deletable like any upload), the job runs on the transcription lane at a priority above
//! queued batch work, and the HTTP request waits for it. The response names the job in
//! `X-Job-Id`. A client that goes away before the job ends cancels it ([`CancelOnDrop`]), so
//! the heavy lane is freed. A request refused for bad input stores nothing and creates no
//! job: the body is streamed to a temp file, the form is checked, and only then is the file
//! added to the profile.

pub(crate) mod asr;
pub(crate) mod openai;

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{FromRequest, Multipart, Request};
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use jobs_core::{ErrorCode, Job, JobStatus, NewJob, QueueManager};
use mediajobs_jobs::{TempFile, TranscribeOutput, Upload, hash_file, sanitize_name};
use mediajobs_persistence::{FileRecord, TranscriptRecord};
use mediajobs_processor::subtitle::Segment;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

use crate::AppState;
pub(crate) use crate::auth::CompatProfile;
use crate::error::ApiError;

/// Priority of a transcription a client waits for (batch work runs at 0).
pub(crate) const WAITING_PRIORITY: i16 = 10;
/// Priority of language detection: next on the heavy lane, ahead of everything queued.
pub(crate) const DETECT_PRIORITY: i16 = 20;

/// Text fields of a form: at most this many, each at most [`MAX_FIELD_BYTES`].
const MAX_FIELDS: usize = 64;
const MAX_FIELD_BYTES: usize = 64 << 10;

/// The file part of a multipart form, streamed to a temp file.
#[derive(Debug)]
pub(crate) struct Received {
    /// The bytes.
    pub tmp: TempFile,
    /// The part's file name, sanitized (`fallback` when it has none).
    pub name: String,
    /// SHA-256 (hex) and size.
    pub digest: (String, u64),
}

/// A parsed `multipart/form-data` body: the file part and the text fields.
#[derive(Debug, Default)]
pub(crate) struct Form {
    /// The file part, if sent.
    pub file: Option<Received>,
    /// Text fields; a repeated name (`timestamp_granularities[]`) keeps every value.
    pub fields: HashMap<String, Vec<String>>,
}

impl Form {
    /// The last value of a field.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .get(name)
            .and_then(|v| v.last())
            .map(String::as_str)
    }

    /// Every value of a field.
    pub fn all(&self, name: &str) -> &[String] {
        self.fields.get(name).map_or(&[], Vec::as_slice)
    }
}

fn too_large(max: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "PayloadTooLarge",
        format!("uploads are limited to {max} bytes"),
    )
}

/// Reads a `multipart/form-data` body: the part named `file_field` is streamed to a temp
/// file (hashed on the way, within the upload limit), every other part is a text field.
/// A body that is not multipart, or breaks off, is `400 BadRequest`.
pub(crate) async fn read_form(
    st: &AppState,
    req: Request,
    file_field: &str,
    fallback_name: &str,
) -> Result<Form, ApiError> {
    let max = st.config.max_upload_bytes;
    if let Some(len) = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && len > max.saturating_add(1 << 20)
    {
        return Err(too_large(max));
    }
    let mut mp = Multipart::from_request(req, &()).await.map_err(|e| {
        ApiError::bad_request(format!(
            "expected a multipart/form-data body: {}",
            e.body_text()
        ))
    })?;
    let broken = |e: axum::extract::multipart::MultipartError| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large(max)
        } else {
            ApiError::bad_request(format!("malformed multipart body: {}", e.body_text()))
        }
    };
    let mut form = Form::default();
    let mut n_fields = 0usize;
    while let Some(mut field) = mp.next_field().await.map_err(broken)? {
        let name = field.name().unwrap_or_default().to_owned();
        if name == file_field {
            if form.file.is_some() {
                return Err(ApiError::bad_request(format!(
                    "the form has more than one '{file_field}' part"
                )));
            }
            let fname = field
                .file_name()
                .and_then(sanitize_name)
                .unwrap_or_else(|| fallback_name.to_owned());
            let tmp = st.services.media.temp();
            let mut out = tokio::fs::File::create(tmp.path())
                .await
                .map_err(ApiError::storage)?;
            let mut hasher = Sha256::new();
            let mut size = 0u64;
            while let Some(chunk) = field.chunk().await.map_err(broken)? {
                size += chunk.len() as u64;
                if size > max {
                    return Err(too_large(max));
                }
                hasher.update(&chunk);
                out.write_all(&chunk).await.map_err(ApiError::storage)?;
            }
            out.flush().await.map_err(ApiError::storage)?;
            out.sync_data().await.map_err(ApiError::storage)?;
            form.file = Some(Received {
                tmp,
                name: fname,
                digest: (hex::encode(hasher.finalize()), size),
            });
        } else {
            n_fields += 1;
            if n_fields > MAX_FIELDS {
                return Err(ApiError::bad_request("too many form fields"));
            }
            let mut value = Vec::new();
            while let Some(chunk) = field.chunk().await.map_err(broken)? {
                value.extend_from_slice(&chunk);
                if value.len() > MAX_FIELD_BYTES {
                    return Err(ApiError::bad_request(format!(
                        "form field '{name}' is longer than {MAX_FIELD_BYTES} bytes"
                    )));
                }
            }
            let value = String::from_utf8(value).map_err(|_| {
                ApiError::bad_request(format!("form field '{name}' is not UTF-8 text"))
            })?;
            form.fields.entry(name).or_default().push(value);
        }
    }
    Ok(form)
}

/// Turns raw PCM (signed 16-bit little-endian, mono, 16 kHz: what Bazarr sends with
/// `encode=false`) into a WAV file, keeping at most `max_ms` of it.
pub(crate) async fn pcm_to_wav(
    st: &AppState,
    raw: Received,
    max_ms: Option<i64>,
) -> Result<Received, ApiError> {
    const RATE: u32 = mediajobs_processor::wav::RATE;
    let mut bytes = raw.digest.1;
    if bytes < 2 {
        return Err(ApiError::coded(
            ErrorCode::MediaDecode,
            "the audio is empty",
        ));
    }
    bytes -= bytes % 2;
    if let Some(ms) = max_ms {
        let cap = u64::try_from(ms).unwrap_or(0) * u64::from(RATE) * 2 / 1000;
        bytes = bytes.min(cap);
    }
    let data_len = u32::try_from(bytes)
        .map_err(|_| ApiError::validation("raw PCM longer than a WAV file can hold (4 GiB)"))?;
    let header = mediajobs_processor::wav::header(data_len);
    let wav = st.services.media.temp();
    let mut out = tokio::fs::File::create(wav.path())
        .await
        .map_err(ApiError::storage)?;
    out.write_all(&header).await.map_err(ApiError::storage)?;
    let src = tokio::fs::File::open(raw.tmp.path())
        .await
        .map_err(ApiError::storage)?;
    tokio::io::copy(&mut src.take(bytes), &mut out)
        .await
        .map_err(ApiError::storage)?;
    out.flush().await.map_err(ApiError::storage)?;
    out.sync_data().await.map_err(ApiError::storage)?;
    drop(out);
    let digest = hash_file(wav.path()).await.map_err(ApiError::storage)?;
    let stem = raw
        .name
        .rsplit_once('.')
        .map_or(raw.name.as_str(), |(s, _)| s);
    Ok(Received {
        tmp: wav,
        name: format!("{stem}.wav"),
        digest,
    })
}

/// Adds the received audio to the profile (folder `folder`): it must be audio or video.
pub(crate) async fn store_audio(
    st: &AppState,
    profile: &str,
    audio: Received,
    folder: &str,
) -> Result<FileRecord, ApiError> {
    let up = Upload {
        tmp: audio.tmp,
        digest: audio.digest,
        name: audio.name,
        expect: None,
        media_only: true,
        folder: Some(folder.to_owned()),
    };
    let rec = st.services.ingest_upload(profile, up).await?;
    st.metrics.uploads.inc();
    Ok(rec)
}

/// Cancels a job when dropped armed: the request future is dropped when its client goes
/// away, and the job it was waiting for must not keep the heavy lane.
pub(crate) struct CancelOnDrop {
    manager: Arc<QueueManager>,
    id: Uuid,
    armed: bool,
}

impl CancelOnDrop {
    fn new(manager: Arc<QueueManager>, id: Uuid) -> Self {
        CancelOnDrop {
            manager,
            id,
            armed: true,
        }
    }

    /// The job ended: nothing to cancel any more.
    pub(crate) fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (manager, id) = (self.manager.clone(), self.id);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                match manager.cancel_job(id).await {
                    Ok(_) => tracing::info!(job = %id, "client went away: job cancelled"),
                    Err(e) => tracing::warn!(job = %id, error = %e, "cancel after disconnect"),
                }
            });
        }
    }
}

/// Enqueues a job; the returned guard cancels it when dropped armed (the request went away).
pub(crate) async fn start_job(st: &AppState, new: NewJob) -> Result<(Job, CancelOnDrop), ApiError> {
    let job_type = new.job_type.clone();
    let job = st.manager.enqueue(new).await?;
    st.metrics.submitted(&job_type);
    let guard = CancelOnDrop::new(st.manager.clone(), job.id);
    Ok((job, guard))
}

/// A finished job as the answer: itself when it succeeded, else its error (its own code and
/// status, or `409 Cancelled`).
pub(crate) fn outcome(done: Job) -> Result<Job, ApiError> {
    match done.status {
        JobStatus::Succeeded => Ok(done),
        JobStatus::Cancelled => Err(ApiError::coded(
            ErrorCode::Cancelled,
            format!("job {} was cancelled", done.id),
        )),
        _ => {
            let code = done
                .error_code
                .as_deref()
                .and_then(|c| c.parse::<ErrorCode>().ok())
                .unwrap_or(ErrorCode::ServerError);
            let mut e = ApiError::coded(
                code,
                done.error
                    .clone()
                    .unwrap_or_else(|| "the job failed".into()),
            );
            e.details = done.error_details.clone();
            Err(e)
        }
    }
}

/// Enqueues a job and waits for it; the job is cancelled if the caller (the request) goes
/// away first.
pub(crate) async fn run_job(st: &AppState, new: NewJob) -> Result<Job, ApiError> {
    let (job, mut guard) = start_job(st, new).await?;
    let done = st.manager.wait_for(job.id).await?;
    guard.disarm();
    outcome(done)
}

/// The transcript a finished `transcribe` job stored, with its segments.
pub(crate) async fn transcript_of(
    st: &AppState,
    profile: &str,
    job: &Job,
) -> Result<(TranscriptRecord, Vec<Segment>), ApiError> {
    let out: TranscribeOutput = job
        .result
        .clone()
        .and_then(|v| serde_json::from_value(v).ok())
        .ok_or_else(|| ApiError::internal("a transcribe job without its output"))?;
    let rec = st
        .services
        .db
        .get_transcript(profile, out.transcript_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("transcript {}", out.transcript_id)))?;
    let segments: Vec<Segment> = serde_json::from_value(rec.segments.clone())
        .map_err(|e| ApiError::internal(format!("stored segments: {e}")))?;
    Ok((rec, segments))
}

/// Adds `X-Job-Id` to a response.
pub(crate) fn with_job_id(mut resp: Response, id: Uuid) -> Response {
    if let Ok(v) = HeaderValue::from_str(&id.to_string()) {
        resp.headers_mut().insert("x-job-id", v);
    }
    resp
}

/// Parses a boolean form or query value the way Python clients send them.
pub(crate) fn parse_bool(name: &str, v: Option<&str>) -> Result<bool, ApiError> {
    match v.map(|s| s.trim().to_ascii_lowercase()).as_deref() {
        None | Some("") | Some("false") | Some("0") | Some("no") => Ok(false),
        Some("true") | Some("1") | Some("yes") => Ok(true),
        Some(other) => Err(ApiError::validation(format!(
            "{name} must be true or false, got '{other}'"
        ))
        .details(serde_json::json!({ "param": name }))),
    }
}

/// Seconds, as the whisper APIs write times.
pub(crate) fn secs(ms: i64) -> f64 {
    (ms as f64) / 1000.0
}

/// A segment as whisper's Python API (and so OpenAI's `verbose_json` and
/// whisper-asr-webservice's `json`) writes it.
pub(crate) fn whisper_segment(i: usize, s: &Segment) -> serde_json::Value {
    let st = s.stats.as_ref();
    serde_json::json!({
        "id": i,
        "seek": (s.start_ms / 30_000) * 3000,
        "start": secs(s.start_ms),
        "end": secs(s.end_ms),
        "text": s.text,
        "tokens": st.map(|x| x.tokens.clone()).unwrap_or_default(),
        "temperature": st.map_or(0.0, |x| x.temperature),
        "avg_logprob": st.map_or(0.0, |x| x.avg_logprob),
        "compression_ratio": st.map_or(0.0, |x| x.compression_ratio),
        "no_speech_prob": st.map_or(0.0, |x| x.no_speech_prob),
    })
}

/// Word timings as whisper writes them: `{"word", "start", "end"}`.
pub(crate) fn whisper_words<'a>(
    words: impl Iterator<Item = &'a mediajobs_processor::subtitle::Word>,
) -> Vec<serde_json::Value> {
    words
        .map(|w| serde_json::json!({"word": w.text, "start": secs(w.start_ms), "end": secs(w.end_ms)}))
        .collect()
}
