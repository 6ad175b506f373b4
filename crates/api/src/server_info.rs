//! `GET /server`: what this server runs, for clients that show it (the dashboard's "Server"
//! page): version and node, lanes with their permits and queue depth, the transcription
//! backend and whether it is usable, the LLM providers `fix_srt` can name, and each job type
//! with the files it takes and the OpenAPI schema of its options.

use axum::Json;
use axum::extract::State;
use mediajobs_jobs::Operation;
use mediajobs_persistence::FileKind;
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::Profile;
use crate::error::ApiResult;
use crate::options::OPTIONS_SCHEMAS;

/// One lane of the queue.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LaneInfo {
    /// `heavy` (local inference, encoding) or `io` (LLM and remote calls).
    pub name: String,
    /// Jobs of this lane this node runs at once.
    pub permits: u64,
    /// Permits in use on this node now.
    pub in_use: u64,
    /// Jobs of this lane waiting, every node and profile together.
    pub queued: i64,
    /// Jobs of this lane running, every node and profile together.
    pub running: i64,
}

/// The transcription backend.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TranscriptionInfo {
    /// Backend name (`whisper.cpp`, `remote`, …); null when none could be set up.
    pub backend: Option<String>,
    /// The model name clients select it by.
    pub model: String,
    /// Runs on this machine (heavy lane) rather than on a remote service.
    pub local: bool,
    /// Whether transcription jobs can run.
    pub available: bool,
    /// Why not, when they cannot.
    pub error: Option<String>,
}

/// A job type clients can submit.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobTypeInfo {
    /// The `type` of `POST /jobs` (single) or `POST /jobs/batch` (batch).
    #[serde(rename = "type")]
    pub job_type: String,
    /// Submitted to `/jobs/batch` with `file_ids`.
    pub batch: bool,
    /// The kinds of file it takes (`video`, `audio`, `subtitle`).
    pub input_kinds: Vec<String>,
    /// The name of its `opts` schema in `/openapi.json` (`components.schemas`); null for the
    /// types that take `model` and `sys_msg` instead.
    pub options_schema: Option<String>,
    /// Takes `model` (`provider:model`) and `sys_msg`.
    pub llm: bool,
}

/// This node's measured speed of one kind of work (learned from the jobs it finished).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SpeedInfo {
    /// `generate_srt`, `transcribe`, `convert`.
    pub operation: String,
    /// The transcription model (`-` for conversion).
    pub model: String,
    /// Seconds of processing per second of media (moving average).
    pub real_time_factor: f64,
    /// Jobs it was measured on (here, since the start; reused results do not count).
    pub jobs: u32,
}

/// `GET /server`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ServerInfo {
    /// mediajobs version.
    pub version: String,
    /// This node's id.
    pub node_id: String,
    /// Bearer tokens are required.
    pub auth: bool,
    /// The queue's lanes.
    pub lanes: Vec<LaneInfo>,
    /// Transcription.
    pub transcription: TranscriptionInfo,
    /// The providers a `fix_srt` model selector (`provider:model`) may name.
    pub llm_providers: Vec<String>,
    /// What can be submitted.
    pub job_types: Vec<JobTypeInfo>,
    /// This node's measured speed (deadlines and ETAs derive from it).
    pub speed: Vec<SpeedInfo>,
}

/// What this server runs. Lane figures are server-wide totals (no job of any profile is
/// named).
#[utoipa::path(get, path = "/server", tag = "server",
    params(crate::auth::ProfileHeader),
    responses((status = 200, body = ServerInfo), (status = 401, body = crate::views::ErrorEnvelope)))]
pub async fn server_info(
    State(st): State<AppState>,
    Profile(_): Profile,
) -> ApiResult<Json<ServerInfo>> {
    let counts = st.services.db.job_counts().await?;
    let count = |lane: &str, status: &str| -> i64 {
        counts
            .iter()
            .filter(|c| c.lane == lane && c.status == status)
            .map(|c| c.count)
            .sum()
    };
    let lanes = st
        .manager
        .lane_usage()
        .into_iter()
        .map(|l| LaneInfo {
            queued: count(&l.name, "queued"),
            running: count(&l.name, "running"),
            permits: l.permits as u64,
            in_use: l.in_use as u64,
            name: l.name,
        })
        .collect();
    let transcription = match &st.services.transcriber {
        Ok(t) => TranscriptionInfo {
            backend: Some(t.name().to_owned()),
            model: st.config.model_name.clone(),
            local: t.is_local(),
            available: true,
            error: None,
        },
        Err(e) => TranscriptionInfo {
            backend: None,
            model: st.config.model_name.clone(),
            local: false,
            available: false,
            error: Some(e.clone()),
        },
    };
    let mut job_types = Vec::new();
    for op in Operation::ALL {
        let input_kinds: Vec<String> = [FileKind::Video, FileKind::Audio, FileKind::Subtitle]
            .into_iter()
            .filter(|k| op.accepts(*k))
            .map(|k| k.as_str().to_owned())
            .collect();
        for batch in [false, true] {
            let name = if batch { op.batch_name() } else { op.name() };
            job_types.push(JobTypeInfo {
                job_type: name.to_owned(),
                batch,
                input_kinds: input_kinds.clone(),
                options_schema: OPTIONS_SCHEMAS
                    .iter()
                    .find(|(t, _)| *t == name)
                    .map(|(_, s)| (*s).to_owned()),
                llm: op == Operation::FixSrt,
            });
        }
    }
    Ok(Json(ServerInfo {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        node_id: st.manager.node_id().to_owned(),
        auth: !st.config.tokens.is_empty(),
        lanes,
        transcription,
        llm_providers: st.services.refiner.providers(),
        job_types,
        speed: st
            .services
            .speed
            .snapshot()
            .into_iter()
            .map(|(op, model, rtf, jobs)| SpeedInfo {
                operation: op.name().to_owned(),
                model,
                real_time_factor: (rtf * 1000.0).round() / 1000.0,
                jobs,
            })
            .collect(),
    }))
}

/// One transcription model of `GET /models`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ModelInfo {
    /// The name jobs select it by (`opts.model`), and the OpenAI API's `model`.
    #[schema(example = "base-q8_0")]
    pub name: String,
    /// File size, bytes.
    pub size_bytes: u64,
    /// Whisper size: `tiny`, `base`, `small`, `medium`, `large-v3`, `large-v3-turbo` or
    /// `unknown`.
    pub size_class: String,
    /// Multilingual, or English-only.
    pub multilingual: bool,
    /// The languages it transcribes: `["en"]`, or every code whisper knows.
    pub languages: Vec<String>,
    /// The weights: `f16`, `f32`, `q5_0`, `q5_1`, `q8_0`, …
    pub weights: String,
    /// The quantization; null for f16/f32 weights.
    pub quantization: Option<String>,
    /// The model of jobs that name none.
    pub default: bool,
    /// Loaded in this node's memory now.
    pub loaded: bool,
    /// When a job last ran on it on this node; null if none has since the server started.
    pub last_used: Option<chrono::DateTime<chrono::Utc>>,
}

/// `GET /models`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ModelList {
    /// The transcription backend (`whisper.cpp`, `remote`); null when none could be set up.
    pub backend: Option<String>,
    /// What the backend computes on: `cpu`, or the GPU whisper.cpp uses (`vulkan: NAME`,
    /// `cuda: NAME`); `remote` for a remote service, `none` without a backend.
    pub compute: String,
    /// The model of jobs that name none.
    pub default: Option<String>,
    /// The installed models (the remote backend lists the one it runs, never loaded here).
    pub models: Vec<ModelInfo>,
    /// Voice activity detection is available (a Silero VAD model is installed): the `vad`
    /// option works, and `generate_srt` uses it by default.
    pub vad: bool,
}

/// The transcription models this node can run: each installed `ggml-*.bin` of its model
/// directory, whether it is loaded, when it was last used.
#[utoipa::path(get, path = "/models", tag = "server",
    params(crate::auth::ProfileHeader),
    responses((status = 200, body = ModelList), (status = 401, body = crate::views::ErrorEnvelope)))]
pub async fn models(State(st): State<AppState>, Profile(_): Profile) -> Json<ModelList> {
    let Ok(t) = &st.services.transcriber else {
        return Json(ModelList {
            backend: None,
            compute: "none".to_owned(),
            default: None,
            models: Vec::new(),
            vad: false,
        });
    };
    let default = t.default_model();
    let all_languages: Vec<String> = mediajobs_processor::transcribe::LANGUAGES
        .iter()
        .map(|(code, _)| (*code).to_owned())
        .collect();
    let mut models: Vec<ModelInfo> = t
        .models()
        .into_iter()
        .map(|m| ModelInfo {
            languages: if m.multilingual {
                all_languages.clone()
            } else {
                vec!["en".to_owned()]
            },
            quantization: (!matches!(m.weights, "f16" | "f32")).then(|| m.weights.to_owned()),
            weights: m.weights.to_owned(),
            size_class: m.size_class.to_owned(),
            last_used: m.last_used.map(chrono::DateTime::<chrono::Utc>::from),
            name: m.name,
            size_bytes: m.size_bytes,
            multilingual: m.multilingual,
            default: m.default,
            loaded: m.loaded,
        })
        .collect();
    if models.is_empty()
        && !t.is_local()
        && let Some(name) = &default
    {
        models.push(ModelInfo {
            name: name.clone(),
            size_bytes: 0,
            size_class: "unknown".into(),
            multilingual: true,
            languages: all_languages,
            weights: "unknown".into(),
            quantization: None,
            default: true,
            loaded: false,
            last_used: None,
        });
    }
    Json(ModelList {
        backend: Some(t.name().to_owned()),
        compute: t.compute(),
        default,
        models,
        vad: t.vad_available(),
    })
}
