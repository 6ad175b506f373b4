//! `/jobs`: submission, listing, cancel, retry, delete, and the SSE streams.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, KeepAliveStream, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use jobs_core::{Job, JobEvent, JobEventKind, JobFilter, JobStatus};
use mediajobs_jobs::{Submission, SubmitOptions};
use serde::Deserialize;
use tokio::sync::broadcast;
use utoipa::IntoParams;
use uuid::Uuid;

use crate::AppState;
use crate::auth::Profile;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery, OwnedJob, own_job};
use crate::requests::{SubmitBatch, SubmitJob};
use crate::views::JobView;

async fn view(st: &AppState, j: &Job) -> Json<JobView> {
    let v = views_with_eta(st, std::slice::from_ref(j)).await;
    match v.into_iter().next() {
        Some(v) => Json(v),
        None => Json(JobView::from(j)),
    }
}

/// Submits one job. Everything is validated before anything is queued.
#[utoipa::path(post, path = "/jobs", tag = "jobs", request_body = crate::schemas::SubmitJobBody,
    params(crate::auth::ProfileHeader),
    responses((status = 202, body = JobView), (status = 404, body = crate::views::ErrorEnvelope), (status = 422, body = crate::views::ErrorEnvelope)))]
pub async fn submit(
    State(st): State<AppState>,
    Profile(p): Profile,
    ApiJson(req): ApiJson<SubmitJob>,
) -> ApiResult<Response> {
    let opts = req.scheduling(st.config.webhooks.as_ref())?;
    submit_any(&st, &p, req.into(), opts).await
}

/// Submits a batch: the parent and one child per file, in one transaction.
#[utoipa::path(post, path = "/jobs/batch", tag = "jobs", request_body = crate::schemas::SubmitBatchBody,
    params(crate::auth::ProfileHeader),
    responses((status = 202, body = JobView), (status = 404, body = crate::views::ErrorEnvelope), (status = 422, body = crate::views::ErrorEnvelope)))]
pub async fn submit_batch(
    State(st): State<AppState>,
    Profile(p): Profile,
    ApiJson(req): ApiJson<SubmitBatch>,
) -> ApiResult<Response> {
    let opts = req.scheduling(st.config.webhooks.as_ref())?;
    submit_any(&st, &p, req.into(), opts).await
}

/// The header of a unique submission answered with the job already holding its key.
pub const EXISTING_HEADER: &str = "x-mediajobs-existing";

async fn submit_any(
    st: &AppState,
    profile: &str,
    sub: Submission,
    opts: SubmitOptions,
) -> ApiResult<Response> {
    let spec = st.services.prepare(profile, sub).await?;
    let mut opts = opts;
    if opts.webhook_url.is_none() && st.config.webhooks.is_some() {
        opts.webhook_url = st.services.db.profile_webhook(profile).await?;
    }
    let done = st
        .services
        .enqueue_with(&st.manager, profile, &spec, &opts)
        .await?;
    let v = views_with_eta(st, std::slice::from_ref(&done.job)).await;
    let body = Json(v.into_iter().next());
    if done.existing {
        return Ok((StatusCode::OK, [(EXISTING_HEADER, "true")], body).into_response());
    }
    st.metrics.submitted(spec.job_type());
    Ok((StatusCode::ACCEPTED, body).into_response())
}

/// Job views with their ETAs: the work ahead of a queued job is the remaining work of the
/// jobs before it in its lane (claim order), over the lane's permits on this node.
pub(crate) async fn views_with_eta(st: &AppState, jobs: &[Job]) -> Vec<JobView> {
    let now = chrono::Utc::now();
    let backlog = if jobs.iter().any(|j| j.status == JobStatus::Queued) {
        st.backlog().await
    } else {
        std::sync::Arc::new(Vec::new())
    };
    let speed = &st.services.speed;
    jobs.iter()
        .map(|j| {
            let ahead = if j.status == JobStatus::Queued {
                let permits = st
                    .manager
                    .config()
                    .lane_permits(&j.lane)
                    .unwrap_or(1)
                    .max(1);
                let work: f64 = backlog
                    .iter()
                    .filter(|o| o.lane == j.lane && o.id != j.id && o.parent_id.is_none())
                    .filter(|o| {
                        o.status == JobStatus::Running
                            || jobs_core::rules::claim_key(o) < jobs_core::rules::claim_key(j)
                    })
                    .map(|o| speed.remaining(o, now))
                    .sum();
                work / permits as f64
            } else {
                0.0
            };
            JobView::from(j).with_eta(speed.eta(j, ahead, now))
        })
        .collect()
}

/// Query of `GET /jobs`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only queued or running jobs.
    pub active: Option<bool>,
    /// Only these statuses (comma-separated).
    #[param(
        pattern = "^(queued|running|succeeded|failed|cancelled)(,(queued|running|succeeded|failed|cancelled))*$"
    )]
    pub status: Option<String>,
    /// Only this type.
    #[serde(rename = "type")]
    pub job_type: Option<String>,
    /// At most this many (1–1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    /// Only jobs older than this job (keyset pagination: the last id of the previous page).
    pub before: Option<Uuid>,
}

/// Top-level jobs of the profile, newest first.
#[utoipa::path(get, path = "/jobs", tag = "jobs", params(ListQuery, crate::auth::ProfileHeader),
    responses((status = 200, body = Vec<JobView>), (status = 422, body = crate::views::ErrorEnvelope)))]
pub async fn list(
    State(st): State<AppState>,
    Profile(p): Profile,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Vec<JobView>>> {
    let mut statuses: Vec<JobStatus> = match &q.status {
        Some(s) => s
            .split(',')
            .map(|x| {
                x.trim()
                    .parse::<JobStatus>()
                    .map_err(|e| ApiError::validation(e.to_string()))
            })
            .collect::<Result<_, _>>()?,
        None => vec![],
    };
    if q.active == Some(true) {
        if statuses.is_empty() {
            statuses = vec![JobStatus::Queued, JobStatus::Running];
        } else {
            statuses.retain(|s| s.is_active());
            if statuses.is_empty() {
                return Ok(Json(vec![]));
            }
        }
    } else if q.active == Some(false) {
        if statuses.is_empty() {
            statuses = vec![
                JobStatus::Succeeded,
                JobStatus::Failed,
                JobStatus::Cancelled,
            ];
        } else {
            statuses.retain(|s| s.is_terminal());
            if statuses.is_empty() {
                return Ok(Json(vec![]));
            }
        }
    }
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::validation("limit must be 1-1000"));
    }
    if let Some(b) = q.before {
        own_job(&st, &p, b)
            .await
            .map_err(|_| ApiError::validation(format!("unknown cursor job {b}")))?;
    }
    let jobs = st
        .manager
        .store()
        .list_jobs(&JobFilter {
            profile_id: Some(p),
            statuses,
            job_type: q.job_type,
            limit,
            before: q.before,
        })
        .await?;
    Ok(Json(views_with_eta(&st, &jobs).await))
}

/// One job.
#[utoipa::path(get, path = "/jobs/{id}", tag = "jobs", params(("id" = Uuid, Path), crate::auth::ProfileHeader),
    responses((status = 200, body = JobView), (status = 404, body = crate::views::ErrorEnvelope)))]
pub async fn get(State(st): State<AppState>, OwnedJob(job): OwnedJob) -> ApiResult<Json<JobView>> {
    Ok(view(&st, &job).await)
}

/// The children of a batch, in submit order.
#[utoipa::path(get, path = "/jobs/{id}/children", tag = "jobs", params(("id" = Uuid, Path), crate::auth::ProfileHeader),
    responses((status = 200, body = Vec<JobView>), (status = 404, body = crate::views::ErrorEnvelope)))]
pub async fn children(
    State(st): State<AppState>,
    OwnedJob(job): OwnedJob,
) -> ApiResult<Json<Vec<JobView>>> {
    let kids = st.manager.store().list_children(job.id).await?;
    Ok(Json(views_with_eta(&st, &kids).await))
}

/// Cancels a job: at once when queued; a running job's work stops within a second.
#[utoipa::path(post, path = "/jobs/{id}/cancel", tag = "jobs", params(("id" = Uuid, Path), crate::auth::ProfileHeader),
    responses((status = 200, body = JobView), (status = 404, body = crate::views::ErrorEnvelope)))]
pub async fn cancel(
    State(st): State<AppState>,
    OwnedJob(job): OwnedJob,
) -> ApiResult<Json<JobView>> {
    let j = st.manager.cancel_job(job.id).await?;
    Ok(view(&st, &j).await)
}

/// Retries a failed or cancelled job (a batch re-runs only its failed/cancelled children).
#[utoipa::path(post, path = "/jobs/{id}/retry", tag = "jobs", params(("id" = Uuid, Path), crate::auth::ProfileHeader),
    responses((status = 202, body = JobView), (status = 404, body = crate::views::ErrorEnvelope), (status = 409, body = crate::views::ErrorEnvelope)))]
pub async fn retry(
    State(st): State<AppState>,
    OwnedJob(job): OwnedJob,
) -> ApiResult<(StatusCode, Json<JobView>)> {
    let j = st.manager.retry_job(job.id).await?;
    Ok((StatusCode::ACCEPTED, view(&st, &j).await))
}

/// Deletes a finished job; `409` while it is active.
#[utoipa::path(delete, path = "/jobs/{id}", tag = "jobs", params(("id" = Uuid, Path), crate::auth::ProfileHeader),
    responses((status = 204, description = "Deleted"), (status = 404, body = crate::views::ErrorEnvelope), (status = 409, body = crate::views::ErrorEnvelope)))]
pub async fn delete(State(st): State<AppState>, OwnedJob(job): OwnedJob) -> ApiResult<StatusCode> {
    st.manager.delete_job(job.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The SSE event name of a job event. A change made on another node reaches this one as
/// `Updated` (the database's notification says only that the job changed); it is named after
/// the state it brought, so a client sees the same names whichever node runs the job.
fn event_name(ev: &JobEvent) -> &'static str {
    if ev.kind == JobEventKind::Updated {
        let j = &ev.job;
        return match j.status {
            s if s.is_terminal() => "finished",
            JobStatus::Running if j.cancel_requested => "cancel_requested",
            JobStatus::Running => "progress",
            JobStatus::Queued if j.attempts > 0 => "requeued",
            _ => "updated",
        };
    }
    match ev.kind {
        JobEventKind::Created => "created",
        JobEventKind::Started => "started",
        JobEventKind::Progress => "progress",
        JobEventKind::CancelRequested => "cancel_requested",
        JobEventKind::Requeued => "requeued",
        JobEventKind::Finished => "finished",
        JobEventKind::Updated => "updated",
        JobEventKind::Deleted => "deleted",
    }
}

async fn sse_job(st: &AppState, name: &str, job: &Job) -> Event {
    let v = views_with_eta(st, std::slice::from_ref(job)).await;
    Event::default()
        .event(name)
        .json_data(v.into_iter().next().unwrap_or_else(|| JobView::from(job)))
        .unwrap_or_else(|_| Event::default().event(name))
}

type EventStream = std::pin::Pin<Box<dyn Stream<Item = Result<Event, Infallible>> + Send>>;

fn keep_alive() -> KeepAlive {
    KeepAlive::new()
        .interval(Duration::from_secs(15))
        .text("keep-alive")
}

/// Events of one job (and, for a batch, of its children): a `snapshot` first, then every
/// change; the stream ends after the job's terminal event. Heartbeat comments every 15 s.
#[utoipa::path(get, path = "/jobs/{id}/events", tag = "jobs", params(("id" = Uuid, Path), crate::auth::ProfileHeader),
    responses((status = 200, content_type = "text/event-stream", body = crate::schemas::JobSseEvent, description = "Server-sent events. `event: snapshot` first (`data`: the job's `JobView`), then one event per change of the job or, for a batch, of its children: `created`, `started`, `progress`, `cancel_requested`, `requeued`, `updated`, `finished`, `deleted`, each with the `JobView` as `data` (a change made on another node of a cluster is named after the state it brought); `: keep-alive` comments every 15 s. The stream ends after the job's terminal event. Reconnect with the same URL: the snapshot says where things stand."),
        (status = 404, body = crate::views::ErrorEnvelope)))]
pub async fn job_events(
    State(st): State<AppState>,
    Profile(p): Profile,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Sse<KeepAliveStream<EventStream>>> {
    // Subscribe before reading the snapshot: no change can fall between the two.
    let rx = st.manager.subscribe();
    let job = own_job(&st, &p, id).await?;
    let store = st.manager.store().clone();
    struct S {
        rx: broadcast::Receiver<JobEvent>,
        first: Option<Job>,
        done: bool,
    }
    let init = S {
        rx,
        first: Some(job),
        done: false,
    };
    let st2 = st.clone();
    let stream = futures::stream::unfold(init, move |mut s| {
        let store = store.clone();
        let st = st2.clone();
        async move {
            if let Some(j) = s.first.take() {
                s.done = j.status.is_terminal();
                return Some((Ok(sse_job(&st, "snapshot", &j).await), s));
            }
            if s.done {
                return None;
            }
            loop {
                match s.rx.recv().await {
                    Ok(ev) if ev.job.id == id => {
                        if ev.job.status.is_terminal() && ev.kind != JobEventKind::Progress
                            || ev.kind == JobEventKind::Deleted
                        {
                            s.done = true;
                        }
                        return Some((Ok(sse_job(&st, event_name(&ev), &ev.job).await), s));
                    }
                    Ok(ev) if ev.job.parent_id == Some(id) => {
                        let name = format!("child_{}", event_name(&ev));
                        return Some((Ok(sse_job(&st, &name, &ev.job).await), s));
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        // Missed events: send a fresh snapshot.
                        if let Ok(Some(j)) = store.get_job(id).await {
                            s.done = j.status.is_terminal();
                            return Some((Ok(sse_job(&st, "snapshot", &j).await), s));
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        }
    });
    let stream = futures::StreamExt::take_until(stream, st.shutdown.clone().cancelled_owned());
    Ok(Sse::new(Box::pin(stream) as EventStream).keep_alive(keep_alive()))
}

/// Every job event of the profile: a `snapshot` (its active jobs) first, then every change.
#[utoipa::path(get, path = "/jobs/events", tag = "jobs", params(crate::auth::ProfileHeader),
    responses((status = 200, content_type = "text/event-stream", body = crate::schemas::JobSseEvent, description = "Server-sent events of every job of the profile: `event: snapshot` first (`data`: an array of its queued and running `JobView`s), then `created`, `started`, `progress`, `cancel_requested`, `requeued`, `updated`, `finished`, `deleted` with a `JobView` as `data`; `: keep-alive` comments every 15 s. The stream stays open."),
        (status = 400, body = crate::views::ErrorEnvelope)))]
pub async fn profile_events(
    State(st): State<AppState>,
    Profile(p): Profile,
) -> ApiResult<Sse<KeepAliveStream<EventStream>>> {
    let rx = st.manager.subscribe();
    let store = st.manager.store().clone();
    let active = |store: std::sync::Arc<dyn jobs_core::JobStore>, p: String| async move {
        store
            .list_jobs(&JobFilter {
                profile_id: Some(p),
                statuses: vec![JobStatus::Queued, JobStatus::Running],
                limit: 1000,
                ..Default::default()
            })
            .await
    };
    let snapshot = active(store.clone(), p.clone()).await?;
    let first = Event::default()
        .event("snapshot")
        .json_data(views_with_eta(&st, &snapshot).await)
        .unwrap_or_else(|_| Event::default().event("snapshot"));
    let st2 = st.clone();
    struct S {
        rx: broadcast::Receiver<JobEvent>,
        first: Option<Event>,
    }
    let stream = futures::stream::unfold(
        S {
            rx,
            first: Some(first),
        },
        move |mut s| {
            let store = store.clone();
            let p = p.clone();
            let st = st2.clone();
            async move {
                if let Some(e) = s.first.take() {
                    return Some((Ok(e), s));
                }
                loop {
                    match s.rx.recv().await {
                        Ok(ev) if ev.job.profile_id.as_deref() == Some(p.as_str()) => {
                            return Some((Ok(sse_job(&st, event_name(&ev), &ev.job).await), s));
                        }
                        Ok(_) => {}
                        Err(broadcast::error::RecvError::Lagged(_)) => {
                            if let Ok(jobs) = active(store.clone(), p.clone()).await {
                                let views = views_with_eta(&st, &jobs).await;
                                let e = Event::default()
                                    .event("snapshot")
                                    .json_data(views)
                                    .unwrap_or_default();
                                return Some((Ok(e), s));
                            }
                        }
                        Err(broadcast::error::RecvError::Closed) => return None,
                    }
                }
            }
        },
    );
    let stream = futures::StreamExt::take_until(stream, st.shutdown.clone().cancelled_owned());
    Ok(Sse::new(Box::pin(stream) as EventStream).keep_alive(keep_alive()))
}
