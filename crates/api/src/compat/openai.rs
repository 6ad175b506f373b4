//! OpenAI's audio API: `POST /v1/audio/transcriptions`, `POST /v1/audio/translations`,
//! `GET /v1/models`, `GET /v1/models/{id}`, with OpenAI's request form, response shapes and
//! error shape (`{"error": {"message", "type", "param", "code"}}`), so the official SDKs work
//! with only their base URL changed.

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use jobs_core::{ErrorCode, JobArgs};
use mediajobs_jobs::{OnFile, Transcribe};
use mediajobs_processor::subtitle::{Segment, SegmentOptions, SubtitleFormat, segment};
use mediajobs_processor::transcribe::{TranscribeOptions, language_name};
use serde_json::{Value, json};

use super::{
    CompatProfile, Form, WAITING_PRIORITY, parse_bool, read_form, run_job, store_audio,
    transcript_of, with_job_id,
};
use crate::AppState;
use crate::error::ApiError;

/// The model name that means "the server's default model".
pub const DEFAULT_MODEL_ALIAS: &str = "whisper-1";

/// An error in OpenAI's shape. OpenAI answers every invalid request with 400, so our 422s
/// become 400 here.
#[derive(Debug)]
pub struct OpenAiError(pub ApiError);

impl From<ApiError> for OpenAiError {
    fn from(e: ApiError) -> Self {
        OpenAiError(e)
    }
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        let e = self.0;
        let status = if e.status == StatusCode::UNPROCESSABLE_ENTITY {
            StatusCode::BAD_REQUEST
        } else {
            e.status
        };
        let kind = if status.is_server_error() {
            "server_error"
        } else {
            "invalid_request_error"
        };
        let code = match e.code {
            "Unauthorized" => "invalid_api_key",
            "UnknownModel" => "model_not_found",
            other => other,
        };
        let param = e
            .details
            .as_ref()
            .and_then(|d| d.get("param"))
            .cloned()
            .unwrap_or(Value::Null);
        (
            status,
            Json(json!({"error": {"message": e.message, "type": kind, "param": param, "code": code}})),
        )
            .into_response()
    }
}

/// Formats of `response_format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ResponseFormat {
    Json,
    Text,
    Srt,
    VerboseJson,
    Vtt,
}

impl ResponseFormat {
    fn parse(s: Option<&str>) -> Result<Self, ApiError> {
        Ok(match s.map(str::trim) {
            None | Some("") | Some("json") => ResponseFormat::Json,
            Some("text") => ResponseFormat::Text,
            Some("srt") => ResponseFormat::Srt,
            Some("verbose_json") => ResponseFormat::VerboseJson,
            Some("vtt") => ResponseFormat::Vtt,
            Some(other) => {
                return Err(param_error(
                    "response_format",
                    format!(
                        "response_format must be json, text, srt, verbose_json or vtt, got '{other}'"
                    ),
                ));
            }
        })
    }
}

fn param_error(param: &str, message: impl Into<String>) -> ApiError {
    ApiError::validation(message).details(json!({ "param": param }))
}

/// The installed model names clients may ask for.
fn installed(st: &AppState) -> Vec<String> {
    let mut v = vec![DEFAULT_MODEL_ALIAS.to_owned()];
    let mut push = |name: String| {
        if !name.is_empty() && !v.contains(&name) {
            v.push(name);
        }
    };
    match &st.services.transcriber {
        Ok(t) => {
            let models = t.models();
            if models.is_empty() {
                push(
                    t.default_model()
                        .unwrap_or_else(|| st.config.model_name.clone()),
                );
            }
            for m in models {
                push(m.name);
            }
        }
        Err(_) => push(st.config.model_name.clone()),
    }
    v
}

/// The model a request names: `whisper-1` is the server's default (`None`), any installed
/// model's name selects it.
fn check_model(st: &AppState, model: Option<&str>) -> Result<Option<String>, ApiError> {
    let model = model
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .ok_or_else(|| param_error("model", "you must provide a model parameter"))?;
    let names = installed(st);
    if model == DEFAULT_MODEL_ALIAS {
        return Ok(None);
    }
    if names.iter().any(|n| n == model) {
        return Ok(Some(model.to_owned()));
    }
    let mut e = ApiError::coded(
        ErrorCode::UnknownModel,
        format!(
            "the model '{model}' is not installed; installed: {}",
            names.join(", ")
        ),
    );
    e.details = Some(json!({ "param": "model", "installed": names }));
    Err(e)
}

/// What the form asks for.
struct Asked {
    opts: TranscribeOptions,
    format: ResponseFormat,
    words: bool,
    segments: bool,
    stream: bool,
}

fn parse_form(st: &AppState, form: &Form, translate: bool) -> Result<Asked, ApiError> {
    let model = check_model(st, form.get("model"))?;
    let format = ResponseFormat::parse(form.get("response_format"))?;
    let mut opts = TranscribeOptions {
        model,
        translate,
        ..Default::default()
    };
    if let Some(l) = form
        .get("language")
        .map(str::trim)
        .filter(|l| !l.is_empty())
    {
        if translate {
            return Err(param_error(
                "language",
                "translations take no language (the output is English)",
            ));
        }
        opts.language = Some(l.to_ascii_lowercase());
    }
    if let Some(p) = form.get("prompt").filter(|p| !p.trim().is_empty()) {
        opts.initial_prompt = Some(p.to_owned());
    }
    if let Some(t) = form
        .get("temperature")
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        let t: f32 = t.parse().map_err(|_| {
            param_error(
                "temperature",
                format!("temperature must be a number, got '{t}'"),
            )
        })?;
        opts.temperature = Some(t);
    }
    let mut grans: Vec<&str> = Vec::new();
    for key in ["timestamp_granularities[]", "timestamp_granularities"] {
        for g in form.all(key) {
            match g.trim() {
                "word" | "segment" => grans.push(g.trim()),
                other => {
                    return Err(param_error(
                        "timestamp_granularities",
                        format!("timestamp_granularities must be word or segment, got '{other}'"),
                    ));
                }
            }
        }
    }
    if !grans.is_empty() && format != ResponseFormat::VerboseJson {
        return Err(param_error(
            "timestamp_granularities",
            "timestamp_granularities needs response_format=verbose_json",
        ));
    }
    let words = grans.contains(&"word");
    let segments = grans.is_empty() || grans.contains(&"segment");
    opts.word_timestamps = words;
    let stream = parse_bool("stream", form.get("stream"))?;
    if stream && !matches!(format, ResponseFormat::Json | ResponseFormat::Text) {
        return Err(param_error(
            "stream",
            "stream=true answers text events; use response_format json or text",
        ));
    }
    st.services
        .check_transcribe(&opts)
        .map_err(|e| ApiError::from(e).details(json!({ "param": "language" })))?;
    Ok(Asked {
        opts,
        format,
        words,
        segments,
        stream,
    })
}

/// OpenAI's `verbose_json`.
fn verbose_json(
    task: &str,
    language: &str,
    duration_ms: i64,
    text: &str,
    segs: &[Segment],
    asked: &Asked,
) -> Value {
    let language = language_name(language).unwrap_or(language);
    let mut v = json!({
        "task": task,
        "language": language,
        "duration": super::secs(duration_ms),
        "text": text,
    });
    if asked.segments {
        let segments: Vec<Value> = segs
            .iter()
            .enumerate()
            .map(|(i, s)| super::whisper_segment(i, s))
            .collect();
        v["segments"] = json!(segments);
    }
    if asked.words {
        v["words"] = json!(super::whisper_words(
            segs.iter().flat_map(|s| s.words.iter())
        ));
    }
    v
}

fn sse(data: &Value) -> String {
    format!("data: {data}\n\n")
}

fn delta_event(text: &str, first: bool) -> Option<String> {
    let t = text.trim();
    if t.is_empty() {
        return None;
    }
    let delta = if first { t.to_owned() } else { format!(" {t}") };
    Some(sse(
        &json!({"type": "transcript.text.delta", "delta": delta, "logprobs": null}),
    ))
}

/// State of a `stream=true` answer.
struct Streaming {
    st: AppState,
    profile: String,
    job_id: uuid::Uuid,
    partials: tokio::sync::broadcast::Receiver<jobs_core::PartialOutput>,
    wait: std::pin::Pin<
        Box<
            dyn std::future::Future<Output = Result<jobs_core::Job, jobs_core::ManagerError>>
                + Send,
        >,
    >,
    guard: super::CancelOnDrop,
    /// Segments sent live, and whether every one of the job's arrived (no lag).
    sent: usize,
    complete: bool,
    finished: bool,
}

impl Streaming {
    /// The next piece of the event stream: a live delta, or, once the job has finished, the
    /// deltas of segments not sent live (the job ran on another node, or partials lagged)
    /// and `transcript.text.done` — or an error event if the job failed.
    async fn next(&mut self) -> Option<String> {
        if self.finished {
            return None;
        }
        loop {
            tokio::select! {
                biased;
                p = self.partials.recv() => match p {
                    Ok(p) if p.job_id == self.job_id => {
                        let text = p.data["segment"]["text"].as_str().unwrap_or_default().to_owned();
                        if let Some(ev) = delta_event(&text, self.sent == 0) {
                            self.sent += 1;
                            return Some(ev);
                        }
                    }
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => self.complete = false,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                        // No more partials; wait for the job alone.
                        let done = (&mut self.wait).await;
                        return Some(self.finish(done).await);
                    }
                },
                done = &mut self.wait => return Some(self.finish(done).await),
            }
        }
    }

    async fn finish(&mut self, done: Result<jobs_core::Job, jobs_core::ManagerError>) -> String {
        self.finished = true;
        self.guard.disarm();
        let res = match done {
            Ok(job) => super::outcome(job),
            Err(e) => Err(ApiError::from(e)),
        };
        let res = match res {
            Ok(job) => transcript_of(&self.st, &self.profile, &job).await,
            Err(e) => Err(e),
        };
        match res {
            Ok((tr, segs)) => {
                let mut out = String::new();
                if self.complete {
                    let live: Vec<&Segment> =
                        segs.iter().filter(|s| !s.text.trim().is_empty()).collect();
                    for s in live.iter().skip(self.sent) {
                        if let Some(ev) = delta_event(&s.text, self.sent == 0) {
                            self.sent += 1;
                            out.push_str(&ev);
                        }
                    }
                }
                out.push_str(&sse(
                    &json!({"type": "transcript.text.done", "text": tr.text, "logprobs": null}),
                ));
                out
            }
            Err(e) => {
                let resp = OpenAiError(e).into_response();
                let status = resp.status().as_u16();
                let body = axum::body::to_bytes(resp.into_body(), 1 << 16)
                    .await
                    .ok()
                    .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                    .unwrap_or_else(|| json!({"error": {"message": "the job failed"}}));
                let mut body = body;
                body["error"]["status"] = json!(status);
                sse(&body)
            }
        }
    }
}

/// `stream=true`: `transcript.text.delta` events as whisper decodes each segment (partial
/// output of the job on this node), then `transcript.text.done`. The client hanging up
/// cancels the job like any other.
async fn stream(
    st: AppState,
    profile: String,
    new: jobs_core::NewJob,
) -> Result<Response, ApiError> {
    // Subscribe before enqueueing: no segment can fall in between.
    let partials = st.manager.subscribe_partials();
    let (job, guard) = super::start_job(&st, new).await?;
    let manager = st.manager.clone();
    let id = job.id;
    let state = Streaming {
        st,
        profile,
        job_id: id,
        partials,
        wait: Box::pin(async move { manager.wait_for(id).await }),
        guard,
        sent: 0,
        complete: true,
        finished: false,
    };
    let body = futures::stream::unfold(state, |mut s| async move {
        s.next().await.map(|chunk| {
            (
                Ok::<_, std::convert::Infallible>(axum::body::Bytes::from(chunk)),
                s,
            )
        })
    });
    let resp = (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        axum::body::Body::from_stream(body),
    )
        .into_response();
    Ok(with_job_id(resp, id))
}

async fn run(
    st: AppState,
    profile: String,
    req: Request,
    translate: bool,
) -> Result<Response, ApiError> {
    let form = read_form(&st, req, "file", "audio").await?;
    let asked = parse_form(&st, &form, translate)?;
    let file = form
        .file
        .ok_or_else(|| param_error("file", "the form has no 'file' part"))?;
    let rec = store_audio(&st, &profile, file, "openai").await?;
    let args = OnFile {
        profile_id: profile.clone(),
        file_id: rec.id,
        params: Transcribe {
            opts: asked.opts.clone(),
        },
        run: mediajobs_jobs::spec::RunHints {
            media_ms: rec.duration_ms,
            ..Default::default()
        },
    };
    let new = args
        .to_new_job()
        .map_err(|e| ApiError::internal(e.message()))?
        .priority(WAITING_PRIORITY);
    if asked.stream {
        return stream(st, profile, new).await;
    }
    let job = run_job(&st, new).await?;
    let (tr, segs) = transcript_of(&st, &profile, &job).await?;
    let language = tr.language.clone().unwrap_or_default();
    let duration_ms = rec
        .duration_ms
        .unwrap_or_else(|| segs.last().map_or(0, |s| s.end_ms));
    let cues = || segment(&segs, &SegmentOptions::default());
    let text_resp = |fmt: SubtitleFormat, body: String| {
        ([(header::CONTENT_TYPE, fmt.content_type())], body).into_response()
    };
    let resp = {
        match asked.format {
            ResponseFormat::Json => Json(json!({ "text": tr.text })).into_response(),
            ResponseFormat::Text => text_resp(SubtitleFormat::Txt, format!("{}\n", tr.text)),
            ResponseFormat::Srt => {
                text_resp(SubtitleFormat::Srt, SubtitleFormat::Srt.render(&cues()))
            }
            ResponseFormat::Vtt => {
                text_resp(SubtitleFormat::Vtt, SubtitleFormat::Vtt.render(&cues()))
            }
            ResponseFormat::VerboseJson => {
                let task = if translate { "translate" } else { "transcribe" };
                Json(verbose_json(
                    task,
                    &language,
                    duration_ms,
                    &tr.text,
                    &segs,
                    &asked,
                ))
                .into_response()
            }
        }
    };
    Ok(with_job_id(resp, job.id))
}

/// `POST /v1/audio/transcriptions`: OpenAI's form (`file`, `model`, `language`, `prompt`,
/// `response_format`, `temperature`, `timestamp_granularities[]`, `stream`), run as a
/// `transcribe` job of the profile; the answer carries the job id in `X-Job-Id`.
#[utoipa::path(post, path = "/v1/audio/transcriptions", tag = "openai",
    request_body(content_type = "multipart/form-data", description = "OpenAI's transcription form: file, model, language, prompt, response_format, temperature, timestamp_granularities[], stream"),
    responses((status = 200, description = "`{\"text\"}`, verbose_json, text, srt or vtt; text/event-stream with stream=true"),
        (status = 400, description = "OpenAI error shape"), (status = 401, description = "OpenAI error shape"), (status = 413, description = "OpenAI error shape")))]
pub async fn transcriptions(
    State(st): State<AppState>,
    profile: Result<CompatProfile, ApiError>,
    req: Request,
) -> Result<Response, OpenAiError> {
    let CompatProfile(p) = profile?;
    Ok(run(st, p, req, false).await?)
}

/// `POST /v1/audio/translations`: speech in any language to English text (`file`, `model`,
/// `prompt`, `response_format`, `temperature`).
#[utoipa::path(post, path = "/v1/audio/translations", tag = "openai",
    request_body(content_type = "multipart/form-data", description = "OpenAI's translation form: file, model, prompt, response_format, temperature"),
    responses((status = 200, description = "`{\"text\"}`, verbose_json, text, srt or vtt"), (status = 400, description = "OpenAI error shape")))]
pub async fn translations(
    State(st): State<AppState>,
    profile: Result<CompatProfile, ApiError>,
    req: Request,
) -> Result<Response, OpenAiError> {
    let CompatProfile(p) = profile?;
    Ok(run(st, p, req, true).await?)
}

fn model_object(id: &str) -> Value {
    json!({"id": id, "object": "model", "created": 0, "owned_by": "mediajobs"})
}

/// `GET /v1/models`: the model names `model` takes, in OpenAI's list shape.
#[utoipa::path(get, path = "/v1/models", tag = "openai",
    responses((status = 200, description = "`{\"object\": \"list\", \"data\": [model…]}`")))]
pub async fn list_models(
    State(st): State<AppState>,
    profile: Result<CompatProfile, ApiError>,
) -> Result<Json<Value>, OpenAiError> {
    profile?;
    let data: Vec<Value> = installed(&st).iter().map(|m| model_object(m)).collect();
    Ok(Json(json!({"object": "list", "data": data})))
}

/// `GET /v1/models/{id}`: one model, or OpenAI's 404.
#[utoipa::path(get, path = "/v1/models/{id}", tag = "openai", params(("id" = String, Path)),
    responses((status = 200, description = "A model object"), (status = 404, description = "OpenAI error shape")))]
pub async fn get_model(
    State(st): State<AppState>,
    profile: Result<CompatProfile, ApiError>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<Json<Value>, OpenAiError> {
    profile?;
    if installed(&st).contains(&id) {
        return Ok(Json(model_object(&id)));
    }
    Err(OpenAiError(
        ApiError::new(
            StatusCode::NOT_FOUND,
            "model_not_found",
            format!("The model '{id}' does not exist"),
        )
        .details(json!({"param": "model"})),
    ))
}

/// Any other `/v1/*` path: OpenAI's 404 shape.
pub async fn not_found() -> OpenAiError {
    OpenAiError(ApiError::new(
        StatusCode::NOT_FOUND,
        "NotFound",
        "no such route on this server (it serves /v1/audio/transcriptions, /v1/audio/translations and /v1/models)",
    ))
}
