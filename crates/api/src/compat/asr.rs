//! The whisper-asr-webservice API, as Bazarr's "Whisper" provider and Subgen call it:
//! `POST /asr` and `POST /detect-language`, multipart field `audio_file`, options in the query.
//! Errors answer FastAPI's shape (`{"detail": "…"}`) and never a 200: Bazarr reads the body
//! without looking at the status.

use axum::Json;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use jobs_core::JobArgs;
use mediajobs_jobs::{DetectLanguage, DetectLanguageOutput, OnFile, Transcribe};
use mediajobs_processor::subtitle::{Segment, SegmentOptions, SubtitleFormat, segment};
use mediajobs_processor::transcribe::{DETECT_WINDOW_MS, TranscribeOptions, language_code};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::IntoParams;

use super::{
    CompatProfile, DETECT_PRIORITY, Received, WAITING_PRIORITY, parse_bool, pcm_to_wav, read_form,
    run_job, store_audio, transcript_of, whisper_segment, whisper_words, with_job_id,
};
use crate::AppState;
use crate::error::ApiError;

/// An error in FastAPI's shape, with its status (never 200).
#[derive(Debug)]
pub struct AsrError(pub ApiError);

impl From<ApiError> for AsrError {
    fn from(e: ApiError) -> Self {
        AsrError(e)
    }
}

impl IntoResponse for AsrError {
    fn into_response(self) -> Response {
        let e = self.0;
        (e.status, Json(json!({"detail": e.message, "code": e.code}))).into_response()
    }
}

/// Query of `POST /asr`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AsrQuery {
    /// `transcribe` (default) or `translate`.
    #[param(pattern = "^(transcribe|translate)$")]
    pub task: Option<String>,
    /// Language code or name; absent: detected.
    pub language: Option<String>,
    /// `txt` (default), `vtt`, `srt`, `tsv` or `json`.
    #[param(pattern = "^(txt|vtt|srt|tsv|json)$")]
    pub output: Option<String>,
    /// `true` (default): the file is any audio/video; `false`: raw s16le mono 16 kHz PCM.
    pub encode: Option<String>,
    /// Word timings (in `json`).
    pub word_timestamps: Option<String>,
    /// Voice activity detection (Silero): transcribe only the speech (default `false`, as
    /// whisper-asr-webservice has it). `true` on a server without a VAD model is refused
    /// with `WhisperUnavailable`.
    pub vad_filter: Option<String>,
    /// Text that primes the decoder.
    pub initial_prompt: Option<String>,
    /// The media file's path on the client (Bazarr sends it; only logged).
    pub video_file: Option<String>,
}

/// Query of `POST /detect-language`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DetectQuery {
    /// `true` (default) or `false` (raw s16le mono 16 kHz PCM).
    pub encode: Option<String>,
    /// The media file's path on the client (only logged).
    pub video_file: Option<String>,
}

fn query<T: for<'de> Deserialize<'de> + Default>(q: Option<&str>) -> Result<T, ApiError> {
    match q {
        None => Ok(T::default()),
        Some(q) => serde_urlencoded_query(q),
    }
}

fn serde_urlencoded_query<T: for<'de> Deserialize<'de>>(q: &str) -> Result<T, ApiError> {
    let uri: axum::http::Uri = format!("/?{q}")
        .parse()
        .map_err(|_| ApiError::bad_request("malformed query string"))?;
    Query::<T>::try_from_uri(&uri)
        .map(|Query(v)| v)
        .map_err(|e| ApiError::validation(format!("invalid query: {}", e.body_text())))
}

async fn audio_part(
    st: &AppState,
    req: Request,
    encode: bool,
    max_ms: Option<i64>,
) -> Result<Received, ApiError> {
    let form = read_form(st, req, "audio_file", "audio_file").await?;
    let file = form
        .file
        .ok_or_else(|| ApiError::validation("the form has no 'audio_file' part"))?;
    if encode {
        Ok(file)
    } else {
        pcm_to_wav(st, file, max_ms).await
    }
}

fn json_output(language: &str, text: &str, segs: &[Segment]) -> Value {
    let segments: Vec<Value> = segs
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut v = whisper_segment(i, s);
            if !s.words.is_empty() {
                v["words"] = json!(whisper_words(s.words.iter()));
            }
            v
        })
        .collect();
    json!({"text": text, "segments": segments, "language": language})
}

async fn asr_inner(
    st: AppState,
    profile: String,
    q: AsrQuery,
    req: Request,
) -> Result<Response, ApiError> {
    let output = match q.output.as_deref().map(str::trim) {
        None | Some("") => SubtitleFormat::Txt,
        Some(o) => SubtitleFormat::parse(o).ok_or_else(|| {
            ApiError::validation(format!(
                "output must be txt, vtt, srt, tsv or json, got '{o}'"
            ))
        })?,
    };
    let translate = match q.task.as_deref().map(str::trim) {
        None | Some("") | Some("transcribe") => false,
        Some("translate") => true,
        Some(t) => {
            return Err(ApiError::validation(format!(
                "task must be transcribe or translate, got '{t}'"
            )));
        }
    };
    let encode = q.encode.is_none() || parse_bool("encode", q.encode.as_deref())?;
    let mut opts = TranscribeOptions {
        translate,
        word_timestamps: parse_bool("word_timestamps", q.word_timestamps.as_deref())?,
        ..Default::default()
    };
    opts.vad = Some(parse_bool("vad_filter", q.vad_filter.as_deref())?);
    if let Some(l) = q
        .language
        .as_deref()
        .map(str::trim)
        .filter(|l| !l.is_empty())
    {
        let code = language_code(l)
            .ok_or_else(|| ApiError::validation(format!("unknown language '{l}'")))?;
        opts.language = Some(code.to_owned());
    }
    opts.initial_prompt = q.initial_prompt.filter(|p| !p.trim().is_empty());
    st.services.check_transcribe(&opts)?;
    if let Some(v) = &q.video_file {
        tracing::info!(video_file = %v, "asr request");
    }
    let audio = audio_part(&st, req, encode, None).await?;
    let rec = store_audio(&st, &profile, audio, "asr").await?;
    let args = OnFile {
        profile_id: profile.clone(),
        file_id: rec.id,
        params: Transcribe { opts },
        run: mediajobs_jobs::spec::RunHints {
            media_ms: rec.duration_ms,
            ..Default::default()
        },
    };
    let new = args
        .to_new_job()
        .map_err(|e| ApiError::internal(e.message()))?
        .priority(WAITING_PRIORITY);
    let job = run_job(&st, new).await?;
    let (tr, segs) = transcript_of(&st, &profile, &job).await?;
    let body = match output {
        SubtitleFormat::Json => {
            json_output(tr.language.as_deref().unwrap_or(""), &tr.text, &segs).to_string()
        }
        SubtitleFormat::Txt => segs
            .iter()
            .map(|s| s.text.trim())
            .filter(|t| !t.is_empty())
            .map(|t| format!("{t}\n"))
            .collect(),
        f => f.render(&segment(&segs, &SegmentOptions::default())),
    };
    let stem = rec
        .name
        .rsplit_once('.')
        .map_or(rec.name.as_str(), |(s, _)| s)
        .to_owned();
    let mut resp = ([(header::CONTENT_TYPE, output.content_type())], body).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"{}{}\"",
        stem.replace('"', "_"),
        output.extension()
    )) {
        resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    resp.headers_mut()
        .insert("asr-engine", HeaderValue::from_static("mediajobs"));
    Ok(with_job_id(resp, job.id))
}

/// `POST /asr`: transcribes (or translates) `audio_file` as a `transcribe` job of the profile
/// and answers the document in `output`'s format.
#[utoipa::path(post, path = "/asr", tag = "asr", params(AsrQuery),
    request_body(content_type = "multipart/form-data", description = "audio_file: the audio (or raw PCM with encode=false)"),
    responses((status = 200, description = "The transcript as txt, vtt, srt, tsv or json"), (status = 400, description = "`{\"detail\"}`"), (status = 422, description = "`{\"detail\"}`")))]
pub async fn asr(
    State(st): State<AppState>,
    profile: Result<CompatProfile, ApiError>,
    req: Request,
) -> Result<Response, AsrError> {
    let CompatProfile(p) = profile?;
    let q: AsrQuery = query(req.uri().query())?;
    Ok(asr_inner(st, p, q, req).await?)
}

/// `POST /detect-language`: the language of the first 30 s of `audio_file`, as a
/// `detect_language` job that runs next on the heavy lane (ahead of queued work, never
/// preempting the running job). Of raw PCM only the first 30 s are stored.
#[utoipa::path(post, path = "/detect-language", tag = "asr", params(DetectQuery),
    request_body(content_type = "multipart/form-data", description = "audio_file: the audio (or raw PCM with encode=false)"),
    responses((status = 200, description = "`{\"detected_language\": \"english\", \"language_code\": \"en\", \"confidence\": 0.97}`"), (status = 400, description = "`{\"detail\"}`")))]
pub async fn detect_language(
    State(st): State<AppState>,
    profile: Result<CompatProfile, ApiError>,
    req: Request,
) -> Result<Response, AsrError> {
    let CompatProfile(p) = profile?;
    let q: DetectQuery = query(req.uri().query())?;
    let encode = q.encode.is_none() || parse_bool("encode", q.encode.as_deref())?;
    if let Some(v) = &q.video_file {
        tracing::info!(video_file = %v, "detect-language request");
    }
    let audio = audio_part(&st, req, encode, Some(DETECT_WINDOW_MS)).await?;
    let rec = store_audio(&st, &p, audio, "asr").await?;
    let args = DetectLanguage {
        profile_id: p,
        file_id: rec.id,
    };
    let new = args
        .to_new_job()
        .map_err(|e| ApiError::internal(e.message()))?
        .priority(DETECT_PRIORITY);
    let job = run_job(&st, new).await?;
    let out: DetectLanguageOutput = job
        .result
        .clone()
        .and_then(|v| serde_json::from_value(v).ok())
        .ok_or_else(|| ApiError::internal("a detect_language job without its output"))?;
    let body = json!({
        "detected_language": out.language,
        "language_code": out.language_code,
        "confidence": out.confidence,
    });
    Ok(with_job_id(
        (StatusCode::OK, Json(body)).into_response(),
        job.id,
    ))
}
