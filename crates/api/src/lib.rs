//! # api
//!
//! The HTTP API of mediajobs (DESIGN §6): axum's router on hyper with tower layers, request
//! validation, the error envelope on every error, profile isolation and optional bearer
//! tokens, streamed uploads and ranged downloads, SSE job events, Prometheus metrics, the
//! OpenAPI document. Only HTTP lives here: what a job is, how it is checked and how it runs
//! is `mediajobs-jobs`' business.
//!
//! ```no_run
//! # async fn demo(state: mediajobs_api::AppState) -> std::io::Result<()> {
//! let app = mediajobs_api::router(state);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```

mod auth;
mod compat;
mod conn;
mod error;
mod extract;
mod files;
mod jobs;
mod links;
mod metrics;
mod openapi;
pub mod options;
mod profile;
mod requests;
mod schemas;
mod server_info;
pub mod views;
pub mod webhooks;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use jobs_core::QueueManager;
use mediajobs_jobs::Services;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;

pub use auth::{CompatProfile, Profile, TokenRule, parse_tokens};
pub use compat::openai::DEFAULT_MODEL_ALIAS;
pub use error::{ApiError, ApiResult};
pub use extract::{ApiJson, ApiPath, ApiQuery, OwnedJob};
pub use links::{FileLink, LINK_TTL_SECS, LinkKey};
pub use metrics::{MeteredWebhookSender, Metrics};
pub use openapi::ApiDoc;
pub use requests::{SubmitBatch, SubmitJob};
pub use webhooks::{HttpWebhookSender, WebhookConfigError, WebhookPolicy};

/// HTTP-level settings.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Largest upload (default 2 GiB).
    pub max_upload_bytes: u64,
    /// Bearer tokens; empty means no authentication.
    pub tokens: Vec<TokenRule>,
    /// The profile of compatible-API requests that name none (see [`CompatProfile`]).
    pub default_profile: String,
    /// The name the compatible APIs' `model` selects the transcription model by (`base`);
    /// `whisper-1` always means it too.
    pub model_name: String,
    /// The webhook secret and URL policy; `None`: `webhook_url` is refused.
    pub webhooks: Option<WebhookPolicy>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            max_upload_bytes: 2 << 30,
            tokens: Vec::new(),
            default_profile: "default".into(),
            model_name: String::new(),
            webhooks: None,
        }
    }
}

/// Shared state of the handlers.
#[derive(Clone, Debug)]
pub struct AppState {
    /// Database, media, processors.
    pub services: Arc<Services>,
    /// The queue.
    pub manager: Arc<QueueManager>,
    /// HTTP settings.
    pub config: Arc<ApiConfig>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Fires when the server shuts down: event streams end so the HTTP server can drain.
    pub shutdown: jobs_core::CancellationToken,
    /// Signs the file links of `POST /profiles/files/{id}/link`.
    pub link_key: LinkKey,
    /// The unfinished jobs, for the ETAs of queued jobs (read at most once a second).
    pub backlog: Arc<Backlog>,
}

/// A cache of the store's unfinished jobs (see [`AppState::backlog`]).
#[derive(Debug, Default)]
pub struct Backlog(tokio::sync::Mutex<Option<(std::time::Instant, Arc<Vec<jobs_core::Job>>)>>);

impl AppState {
    /// The unfinished jobs of every node, at most a second old: what is ahead of a queued
    /// job in its lane.
    pub async fn backlog(&self) -> Arc<Vec<jobs_core::Job>> {
        let mut g = self.backlog.0.lock().await;
        if let Some((at, jobs)) = g.as_ref()
            && at.elapsed() < std::time::Duration::from_secs(1)
        {
            return jobs.clone();
        }
        let jobs = Arc::new(
            self.manager
                .store()
                .list_unfinished()
                .await
                .unwrap_or_default(),
        );
        *g = Some((std::time::Instant::now(), jobs.clone()));
        jobs
    }
}

/// Liveness.
#[utoipa::path(get, path = "/health", tag = "health", responses((status = 200, description = "`{\"status\":\"ok\"}`")))]
pub async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

/// Readiness: `200` only when the database answers, its schema is current (no pending
/// migration) and transcription is usable (the model loaded, or the remote backend set up);
/// else `503 NotReady` with each check in `details`. `/health` stays liveness.
#[utoipa::path(get, path = "/ready", tag = "health", responses(
    (status = 200, description = "`{\"status\":\"ready\",\"checks\":{…}}`"),
    (status = 503, body = crate::views::ErrorEnvelope)))]
pub async fn ready(State(st): State<AppState>) -> Response {
    let db = match st.services.db.pending_migrations().await {
        Ok(p) if p.is_empty() => serde_json::json!({"ok": true}),
        Ok(p) => serde_json::json!({"ok": false, "error": "migrations pending", "pending": p}),
        Err(e) => serde_json::json!({"ok": false, "error": e.to_string()}),
    };
    let transcription = match &st.services.transcriber {
        Ok(t) => {
            serde_json::json!({"ok": true, "backend": t.name(), "model": st.config.model_name})
        }
        Err(why) => serde_json::json!({"ok": false, "error": why}),
    };
    let checks = serde_json::json!({"database": db, "transcription": transcription});
    let all = checks
        .as_object()
        .is_some_and(|c| c.values().all(|v| v["ok"] == true));
    if all {
        Json(serde_json::json!({"status": "ready", "checks": checks})).into_response()
    } else {
        let failing: Vec<&str> = checks
            .as_object()
            .map(|c| {
                c.iter()
                    .filter(|(_, v)| v["ok"] != true)
                    .map(|(k, _)| k.as_str())
                    .collect()
            })
            .unwrap_or_default();
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "NotReady",
            format!("not ready: {}", failing.join(", ")),
        )
        .details(checks)
        .into_response()
    }
}

async fn metrics_endpoint(State(st): State<AppState>) -> Result<Response, ApiError> {
    let text = st.metrics.render(&st).await?;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "NotFound", "no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        "method not allowed on this route",
    )
}

/// The router of DESIGN §6, with the web dashboard at `/` (see `mediajobs-dashboard`).
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(mediajobs_dashboard::router())
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics_endpoint))
        .route("/openapi.json", get(openapi_json))
        // Interactive API docs of /openapi.json (Swagger UI, vendored in the binary). No
        // validator: Swagger UI would otherwise send the document's URL to a public service.
        .merge(
            utoipa_swagger_ui::SwaggerUi::new("/docs").config(
                utoipa_swagger_ui::Config::from("/openapi.json")
                    .validator_url("none")
                    .persist_authorization(true),
            ),
        )
        .route(
            "/profiles/files",
            post(files::upload)
                .layer(DefaultBodyLimit::disable())
                .get(files::list_files),
        )
        .route(
            "/profiles/files/{id}",
            get(files::get_file).delete(files::delete_file),
        )
        .route("/profiles/files/{id}/content", get(files::file_content))
        .route("/profiles/files/{id}/link", post(links::create_link))
        .route("/links/{ticket}", get(links::follow_link))
        .route("/server", get(server_info::server_info))
        .route("/models", get(server_info::models))
        .route(
            "/profiles/webhook",
            get(profile::get_webhook).put(profile::put_webhook),
        )
        .route("/profiles/transcripts", get(files::list_transcripts))
        .route(
            "/profiles/transcripts/{id}",
            get(files::get_transcript).delete(files::delete_transcript),
        )
        .route("/jobs", post(jobs::submit).get(jobs::list))
        .route("/jobs/batch", post(jobs::submit_batch))
        .route("/jobs/events", get(jobs::profile_events))
        .route("/jobs/{id}", get(jobs::get).delete(jobs::delete))
        .route("/jobs/{id}/children", get(jobs::children))
        .route("/jobs/{id}/cancel", post(jobs::cancel))
        .route("/jobs/{id}/retry", post(jobs::retry))
        .route("/jobs/{id}/events", get(jobs::job_events))
        .route(
            "/v1/audio/transcriptions",
            post(compat::openai::transcriptions).layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/v1/audio/translations",
            post(compat::openai::translations).layer(DefaultBodyLimit::disable()),
        )
        .route("/v1/models", get(compat::openai::list_models))
        .route("/v1/models/{id}", get(compat::openai::get_model))
        .route("/v1/{*rest}", axum::routing::any(compat::openai::not_found))
        .route(
            "/asr",
            post(compat::asr::asr).layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/detect-language",
            post(compat::asr::detect_language).layer(DefaultBodyLimit::disable()),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(1 << 20))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .layer(axum::middleware::from_fn(conn::close_if_body_unread))
        // Every request gets an `x-request-id` (the client's, or a new UUID), echoed on the
        // response and recorded on the span, so each log line of the request carries it.
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
                let id = req
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                // A link's path is its capability: never in the logs.
                let path = req.uri().path();
                let path = if path.starts_with("/links/") {
                    "/links/…"
                } else {
                    path
                };
                tracing::info_span!("request", method = %req.method(), path, request_id = %id)
            }),
        )
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state)
}
