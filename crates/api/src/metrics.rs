//! `GET /metrics` in Prometheus text format: jobs by type and status, job durations, queue
//! depth and lane usage, HTTP requests.

use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use jobs_core::{JobEventKind, QueueManager};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::AppState;
use crate::error::ApiError;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TypeStatus {
    job_type: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TypeLabel {
    job_type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LaneLabel {
    lane: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: String,
    route: String,
    status: u16,
}

fn duration_histogram() -> Histogram {
    // 0.1 s .. ~3.6 h
    Histogram::new(exponential_buckets(0.1, 2.0, 18))
}

/// The server's metrics.
pub struct Metrics {
    registry: Registry,
    jobs: Family<TypeStatus, Gauge>,
    queue_depth: Family<LaneLabel, Gauge>,
    lane_permits: Family<LaneLabel, Gauge>,
    lane_in_use: Family<LaneLabel, Gauge>,
    durations: Family<TypeStatus, Histogram, fn() -> Histogram>,
    submissions: Family<TypeLabel, Counter>,
    http: Family<HttpLabels, Counter>,
    /// Files uploaded.
    pub uploads: Counter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("mediajobs");
        let m = Metrics {
            jobs: Family::default(),
            queue_depth: Family::default(),
            lane_permits: Family::default(),
            lane_in_use: Family::default(),
            durations: Family::new_with_constructor(duration_histogram),
            submissions: Family::default(),
            http: Family::default(),
            uploads: Counter::default(),
            registry: Registry::default(),
        };
        registry.register(
            "jobs",
            "Jobs in the store by type and status",
            m.jobs.clone(),
        );
        registry.register("queue_depth", "Queued jobs by lane", m.queue_depth.clone());
        registry.register(
            "lane_permits",
            "Permits configured per lane on this node",
            m.lane_permits.clone(),
        );
        registry.register(
            "lane_in_use",
            "Permits in use per lane on this node",
            m.lane_in_use.clone(),
        );
        registry.register(
            "job_duration_seconds",
            "Run time of finished jobs (latest attempt) by type and status",
            m.durations.clone(),
        );
        registry.register(
            "job_submissions",
            "Jobs submitted over HTTP by type",
            m.submissions.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP requests by method, route and status",
            m.http.clone(),
        );
        registry.register("uploads", "Files uploaded", m.uploads.clone());
        Metrics { registry, ..m }
    }

    /// Counts a submission.
    pub fn submitted(&self, job_type: &str) {
        self.submissions
            .get_or_create(&TypeLabel {
                job_type: job_type.into(),
            })
            .inc();
    }

    /// Renders the exposition text, refreshing the store-derived gauges.
    pub async fn render(&self, st: &AppState) -> Result<String, ApiError> {
        let counts = st.services.db.job_counts().await?;
        self.jobs.clear();
        self.queue_depth.clear();
        for c in &counts {
            self.jobs
                .get_or_create(&TypeStatus {
                    job_type: c.job_type.clone(),
                    status: c.status.clone(),
                })
                .inc_by(c.count);
            if c.status == "queued" {
                self.queue_depth
                    .get_or_create(&LaneLabel {
                        lane: c.lane.clone(),
                    })
                    .inc_by(c.count);
            }
        }
        for l in st.manager.lane_usage() {
            let lane = LaneLabel {
                lane: l.name.clone(),
            };
            self.lane_permits
                .get_or_create(&lane)
                .set(i64::try_from(l.permits).unwrap_or(i64::MAX));
            self.lane_in_use
                .get_or_create(&lane)
                .set(i64::try_from(l.in_use).unwrap_or(i64::MAX));
        }
        let mut out = String::new();
        encode(&mut out, &self.registry).map_err(ApiError::internal)?;
        Ok(out)
    }

    /// Observes job durations from the manager's events until the manager goes away.
    pub fn spawn_observer(self: &Arc<Self>, manager: &QueueManager) -> tokio::task::JoinHandle<()> {
        let mut rx = manager.subscribe();
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                match rx.recv().await {
                    Ok(ev) if ev.kind == JobEventKind::Finished => {
                        if let (Some(a), Some(b)) = (ev.job.started_at, ev.job.finished_at) {
                            let secs = (b - a).num_milliseconds().max(0) as f64 / 1000.0;
                            me.durations
                                .get_or_create(&TypeStatus {
                                    job_type: ev.job.job_type.clone(),
                                    status: ev.job.status.as_str().into(),
                                })
                                .observe(secs);
                        }
                    }
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        })
    }
}

/// Counts HTTP requests by route template (never the raw path: ids would explode the labels).
pub async fn track(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let resp = next.run(req).await;
    st.metrics
        .http
        .get_or_create(&HttpLabels {
            method,
            route,
            status: resp.status().as_u16(),
        })
        .inc();
    resp
}
