//! `/jobs`: submission, listing, cancel, retry, delete, and the SSE streams.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, KeepAliveStream, Sse};
use futures::Stream;
use jobs_core::{Job, JobEvent, JobEventKind, JobFilter, JobStatus};
use mediajobs_jobs::Submission;
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

fn view(j: &Job) -> Json<JobView> {
    Json(JobView::from(j))
}

/// Submits one job. Everything is validated before anything is queued.
#[utoipa::path(post, path = "/jobs", tag = "jobs", request_body = SubmitJob,
    params(("X-Profile-ID" = String, Header, description = "Profile")),
    responses((status = 202, body = JobView), (status = 404, body = crate::views::ErrorEnvelope), (status = 422, body = crate::views::ErrorEnvelope)))]
pub async fn submit(
    State(st): State<AppState>,
    Profile(p): Profile,
    ApiJson(req): ApiJson<SubmitJob>,
) -> ApiResult<(StatusCode, Json<JobView>)> {
    submit_any(&st, &p, req.into()).await
}

/// Submits a batch: the parent and one child per file, in one transaction.
#[utoipa::path(post, path = "/jobs/batch", tag = "jobs", request_body = SubmitBatch,
    params(("X-Profile-ID" = String, Header, description = "Profile")),
    responses((status = 202, body = JobView), (status = 404, body = crate::views::ErrorEnvelope), (status = 422, body = crate::views::ErrorEnvelope)))]
pub async fn submit_batch(
    State(st): State<AppState>,
    Profile(p): Profile,
    ApiJson(req): ApiJson<SubmitBatch>,
) -> ApiResult<(StatusCode, Json<JobView>)> {
    submit_any(&st, &p, req.into()).await
}

async fn submit_any(
    st: &AppState,
    profile: &str,
    sub: Submission,
) -> ApiResult<(StatusCode, Json<JobView>)> {
    let spec = st.services.prepare(profile, sub).await?;
    let job = st.services.enqueue(&st.manager, profile, &spec).await?;
    st.metrics.submitted(spec.job_type());
    Ok((StatusCode::ACCEPTED, view(&job)))
}

/// Query of `GET /jobs`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only queued or running jobs.
    pub active: Option<bool>,
    /// Only these statuses (comma-separated).
    pub status: Option<String>,
    /// Only this type.
    #[serde(rename = "type")]
    pub job_type: Option<String>,
    /// At most this many (1–1000, default 100).
    pub limit: Option<usize>,
    /// Only jobs older than this job (keyset pagination).
    pub before: Option<Uuid>,
}

/// Top-level jobs of the profile, newest first.
#[utoipa::path(get, path = "/jobs", tag = "jobs", params(ListQuery, ("X-Profile-ID" = String, Header, description = "Profile")),
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
    Ok(Json(jobs.iter().map(JobView::from).collect()))
}

/// One job.
#[utoipa::path(get, path = "/jobs/{id}", tag = "jobs", params(("id" = Uuid, Path), ("X-Profile-ID" = String, Header, description = "Profile")),
    responses((status = 200, body = JobView), (status = 404, body = crate::views::ErrorEnvelope)))]
pub async fn get(OwnedJob(job): OwnedJob) -> ApiResult<Json<JobView>> {
    Ok(view(&job))
}

/// The children of a batch, in submit order.
#[utoipa::path(get, path = "/jobs/{id}/children", tag = "jobs", params(("id" = Uuid, Path), ("X-Profile-ID" = String, Header, description = "Profile")),
    responses((status = 200, body = Vec<JobView>), (status = 404, body = crate::views::ErrorEnvelope)))]
pub async fn children(
    State(st): State<AppState>,
    OwnedJob(job): OwnedJob,
) -> ApiResult<Json<Vec<JobView>>> {
    let kids = st.manager.store().list_children(job.id).await?;
    Ok(Json(kids.iter().map(JobView::from).collect()))
}

/// Cancels a job: at once when queued; a running job's work stops within a second.
#[utoipa::path(post, path = "/jobs/{id}/cancel", tag = "jobs", params(("id" = Uuid, Path), ("X-Profile-ID" = String, Header, description = "Profile")),
    responses((status = 200, body = JobView), (status = 404, body = crate::views::ErrorEnvelope)))]
pub async fn cancel(
    State(st): State<AppState>,
    OwnedJob(job): OwnedJob,
) -> ApiResult<Json<JobView>> {
    Ok(view(&st.manager.cancel_job(job.id).await?))
}

/// Retries a failed or cancelled job (a batch re-runs only its failed/cancelled children).
#[utoipa::path(post, path = "/jobs/{id}/retry", tag = "jobs", params(("id" = Uuid, Path), ("X-Profile-ID" = String, Header, description = "Profile")),
    responses((status = 202, body = JobView), (status = 404, body = crate::views::ErrorEnvelope), (status = 409, body = crate::views::ErrorEnvelope)))]
pub async fn retry(
    State(st): State<AppState>,
    OwnedJob(job): OwnedJob,
) -> ApiResult<(StatusCode, Json<JobView>)> {
    Ok((
        StatusCode::ACCEPTED,
        view(&st.manager.retry_job(job.id).await?),
    ))
}

/// Deletes a finished job; `409` while it is active.
#[utoipa::path(delete, path = "/jobs/{id}", tag = "jobs", params(("id" = Uuid, Path), ("X-Profile-ID" = String, Header, description = "Profile")),
    responses((status = 204, description = "Deleted"), (status = 404, body = crate::views::ErrorEnvelope), (status = 409, body = crate::views::ErrorEnvelope)))]
pub async fn delete(State(st): State<AppState>, OwnedJob(job): OwnedJob) -> ApiResult<StatusCode> {
    st.manager.delete_job(job.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn event_name(kind: JobEventKind) -> &'static str {
    match kind {
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

fn sse_job(name: &str, job: &Job) -> Event {
    Event::default()
        .event(name)
        .json_data(JobView::from(job))
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
#[utoipa::path(get, path = "/jobs/{id}/events", tag = "jobs", params(("id" = Uuid, Path), ("X-Profile-ID" = String, Header, description = "Profile")),
    responses((status = 200, description = "text/event-stream"), (status = 404, body = crate::views::ErrorEnvelope)))]
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
    let stream = futures::stream::unfold(init, move |mut s| {
        let store = store.clone();
        async move {
            if let Some(j) = s.first.take() {
                s.done = j.status.is_terminal();
                return Some((Ok(sse_job("snapshot", &j)), s));
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
                        return Some((Ok(sse_job(event_name(ev.kind), &ev.job)), s));
                    }
                    Ok(ev) if ev.job.parent_id == Some(id) => {
                        return Some((
                            Ok(sse_job(&format!("child_{}", event_name(ev.kind)), &ev.job)),
                            s,
                        ));
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        // Missed events: send a fresh snapshot.
                        if let Ok(Some(j)) = store.get_job(id).await {
                            s.done = j.status.is_terminal();
                            return Some((Ok(sse_job("snapshot", &j)), s));
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
#[utoipa::path(get, path = "/jobs/events", tag = "jobs", params(("X-Profile-ID" = String, Header, description = "Profile")),
    responses((status = 200, description = "text/event-stream")))]
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
    let snap_event = |jobs: &[Job]| {
        let views: Vec<JobView> = jobs.iter().map(JobView::from).collect();
        Event::default()
            .event("snapshot")
            .json_data(views)
            .unwrap_or_else(|_| Event::default().event("snapshot"))
    };
    let first = snap_event(&snapshot);
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
            async move {
                if let Some(e) = s.first.take() {
                    return Some((Ok(e), s));
                }
                loop {
                    match s.rx.recv().await {
                        Ok(ev) if ev.job.profile_id.as_deref() == Some(p.as_str()) => {
                            return Some((Ok(sse_job(event_name(ev.kind), &ev.job)), s));
                        }
                        Ok(_) => {}
                        Err(broadcast::error::RecvError::Lagged(_)) => {
                            if let Ok(jobs) = active(store.clone(), p.clone()).await {
                                let views: Vec<JobView> = jobs.iter().map(JobView::from).collect();
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
