//! `GET /metrics` in Prometheus text format: jobs by type and status, job durations, queue
//! depth and the oldest due job's age per lane, lane usage, HTTP requests and their latency,
//! media processed and the real-time factor by operation and model, LLM tokens by provider
//! and model, webhook deliveries, and the build. The README lists each metric.

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
use std::sync::atomic::AtomicU64;

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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
    database: String,
    transcription: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpModel {
    operation: String,
    model: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LlmLabels {
    provider: String,
    model: String,
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: String,
}

type FloatCounter = Counter<f64, AtomicU64>;
type FloatGauge = Gauge<f64, AtomicU64>;

fn http_histogram() -> Histogram {
    // 1 ms .. ~33 s
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
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
    http_duration: Family<HttpLabels, Histogram, fn() -> Histogram>,
    build: Family<BuildLabels, Gauge>,
    media_seconds: Family<OpModel, FloatCounter>,
    processing_seconds: Family<OpModel, FloatCounter>,
    rtf: Family<OpModel, FloatGauge>,
    llm_tokens: Family<LlmLabels, Counter>,
    webhooks: Family<OutcomeLabel, Counter>,
    oldest_queued: Family<LaneLabel, FloatGauge>,
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
            http_duration: Family::new_with_constructor(http_histogram),
            build: Family::default(),
            media_seconds: Family::default(),
            processing_seconds: Family::default(),
            rtf: Family::default(),
            llm_tokens: Family::default(),
            webhooks: Family::default(),
            oldest_queued: Family::default(),
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
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency (to the response head) by method, route and status",
            m.http_duration.clone(),
        );
        registry.register(
            "build_info",
            "Always 1: the running version, database backend and transcription backend",
            m.build.clone(),
        );
        registry.register(
            "media_processed_seconds",
            "Seconds of media processed by succeeded jobs, by operation and model",
            m.media_seconds.clone(),
        );
        registry.register(
            "media_processing_seconds",
            "Seconds those jobs ran (divided by media_processed_seconds: the real-time factor)",
            m.processing_seconds.clone(),
        );
        registry.register(
            "real_time_factor",
            "Processing time per second of media on this node (moving average) by operation and model",
            m.rtf.clone(),
        );
        registry.register(
            "llm_tokens",
            "LLM tokens spent by fix_srt jobs, by provider, model and kind (prompt, completion)",
            m.llm_tokens.clone(),
        );
        registry.register(
            "webhook_deliveries",
            "Webhook delivery tries by outcome (delivered, failed: retried later, refused: given up)",
            m.webhooks.clone(),
        );
        registry.register(
            "queue_oldest_due_age_seconds",
            "Per lane, how long its longest-waiting due queued job has waited",
            m.oldest_queued.clone(),
        );
        registry.register("uploads", "Files uploaded", m.uploads.clone());
        Metrics { registry, ..m }
    }

    /// Sets `mediajobs_build_info`.
    pub fn set_build_info(&self, version: &str, database: &str, transcription: &str) {
        self.build
            .get_or_create(&BuildLabels {
                version: version.into(),
                database: database.into(),
                transcription: transcription.into(),
            })
            .set(1);
    }

    /// Counts a webhook delivery try (`delivered`, `failed`, `refused`).
    pub fn webhook_delivery(&self, outcome: &str) {
        self.webhooks
            .get_or_create(&OutcomeLabel {
                outcome: outcome.into(),
            })
            .inc();
    }

    /// Counts what a finished job processed: media seconds and run time for the media
    /// operations, tokens for `fix_srt`.
    fn job_finished(&self, job: &jobs_core::Job, transcription_model: &str) {
        let op = job.job_type.as_str();
        if op == "fix_srt" {
            // A rejected answer's tokens are spent too: a failed run reports them in its
            // error details.
            let Some(usage) = job
                .result
                .as_ref()
                .map(|r| &r["usage"])
                .filter(|u| u.is_object())
                .or_else(|| job.error_details.as_ref().map(|d| &d["usage"]))
            else {
                return;
            };
            let selector = job.params["model"].as_str().unwrap_or("?");
            let (provider, model) = selector.split_once(':').unwrap_or(("?", selector));
            for (kind, field) in [
                ("prompt", "prompt_tokens"),
                ("completion", "completion_tokens"),
            ] {
                if let Some(n) = usage[field].as_u64() {
                    self.llm_tokens
                        .get_or_create(&LlmLabels {
                            provider: provider.into(),
                            model: model.into(),
                            kind: kind.into(),
                        })
                        .inc_by(n);
                }
            }
            return;
        }
        let model = match op {
            "generate_srt" | "transcribe" => transcription_model,
            "convert" => "gstreamer",
            _ => return,
        };
        if job.status != jobs_core::JobStatus::Succeeded
            || job
                .result
                .as_ref()
                .is_some_and(|r| r.get("reused_from").is_some())
        {
            return;
        }
        let (Some(ms), Some(a), Some(b)) = (
            job.params
                .get("media_ms")
                .and_then(serde_json::Value::as_i64),
            job.started_at,
            job.finished_at,
        ) else {
            return;
        };
        let labels = OpModel {
            operation: op.into(),
            model: model.into(),
        };
        self.media_seconds
            .get_or_create(&labels)
            .inc_by(ms.max(0) as f64 / 1000.0);
        self.processing_seconds
            .get_or_create(&labels)
            .inc_by((b - a).num_milliseconds().max(0) as f64 / 1000.0);
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
        self.oldest_queued.clear();
        let now = chrono::Utc::now();
        for (lane, due) in st.services.db.oldest_due_queued().await? {
            let age = (now - due).num_milliseconds().max(0) as f64 / 1000.0;
            self.oldest_queued
                .get_or_create(&LaneLabel { lane })
                .set(age);
        }
        for (op, model, rtf, _) in st.services.speed.snapshot() {
            self.rtf
                .get_or_create(&OpModel {
                    operation: op.name().into(),
                    model,
                })
                .set(rtf);
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

    /// Observes finished jobs (durations, media processed, tokens) from the manager's events
    /// until the manager goes away. `transcription_model` labels the transcription metrics.
    pub fn spawn_observer(
        self: &Arc<Self>,
        manager: &QueueManager,
        transcription_model: String,
    ) -> tokio::task::JoinHandle<()> {
        let mut rx = manager.subscribe();
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                match rx.recv().await {
                    Ok(ev) if ev.kind == JobEventKind::Finished => {
                        me.job_finished(&ev.job, &transcription_model);
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
    let started = std::time::Instant::now();
    let resp = next.run(req).await;
    let labels = HttpLabels {
        method,
        route,
        status: resp.status().as_u16(),
    };
    st.metrics
        .http_duration
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    st.metrics.http.get_or_create(&labels).inc();
    resp
}

/// A [`WebhookSender`](jobs_core::WebhookSender) that counts each try's outcome in
/// `mediajobs_webhook_deliveries_total`.
pub struct MeteredWebhookSender<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S> MeteredWebhookSender<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, metrics: Arc<Metrics>) -> Self {
        MeteredWebhookSender { inner, metrics }
    }
}

#[async_trait::async_trait]
impl<S: jobs_core::WebhookSender> jobs_core::WebhookSender for MeteredWebhookSender<S> {
    async fn send(
        &self,
        job: &jobs_core::Job,
        delivery_id: &str,
    ) -> Result<(), jobs_core::WebhookSendError> {
        let r = self.inner.send(job, delivery_id).await;
        self.metrics.webhook_delivery(match &r {
            Ok(()) => "delivered",
            Err(e) if e.permanent => "refused",
            Err(_) => "failed",
        });
        r
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The names registered, as `# TYPE` lines give them (without `_total` etc.).
    fn registered() -> std::collections::BTreeSet<String> {
        let m = Metrics::new();
        // A family prints only once it has a sample: give each one.
        let ts = TypeStatus {
            job_type: "t".into(),
            status: "s".into(),
        };
        let lane = LaneLabel { lane: "l".into() };
        let http = HttpLabels {
            method: "GET".into(),
            route: "/".into(),
            status: 200,
        };
        let op = OpModel {
            operation: "o".into(),
            model: "m".into(),
        };
        m.jobs.get_or_create(&ts).set(1);
        m.queue_depth.get_or_create(&lane).set(1);
        m.lane_permits.get_or_create(&lane).set(1);
        m.lane_in_use.get_or_create(&lane).set(1);
        m.durations.get_or_create(&ts).observe(1.0);
        m.submitted("t");
        m.http.get_or_create(&http).inc();
        m.http_duration.get_or_create(&http).observe(0.1);
        m.set_build_info("v", "sqlite", "local");
        m.media_seconds.get_or_create(&op).inc_by(1.0);
        m.processing_seconds.get_or_create(&op).inc_by(1.0);
        m.rtf.get_or_create(&op).set(0.5);
        m.llm_tokens
            .get_or_create(&LlmLabels {
                provider: "p".into(),
                model: "m".into(),
                kind: "prompt".into(),
            })
            .inc();
        m.webhook_delivery("delivered");
        m.oldest_queued.get_or_create(&lane).set(1.0);
        let mut out = String::new();
        encode(&mut out, &m.registry).unwrap();
        out.lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split_whitespace().next())
            .map(str::to_owned)
            .collect()
    }

    fn base_name(n: &str) -> &str {
        ["_bucket", "_count", "_sum", "_total", "_created"]
            .iter()
            .find_map(|s| n.strip_suffix(s))
            .unwrap_or(n)
    }

    /// Every metric the shipped Grafana dashboard and the README name exists.
    #[test]
    fn dashboard_and_readme_name_only_real_metrics() {
        let known = registered();
        assert!(
            known.contains("mediajobs_http_request_duration_seconds"),
            "{known:?}"
        );
        let grafana: serde_json::Value =
            serde_json::from_str(include_str!("../../../docs/grafana/mediajobs.json")).unwrap();
        let mut exprs = Vec::new();
        for p in grafana["panels"].as_array().unwrap() {
            for t in p["targets"].as_array().unwrap() {
                exprs.push(t["expr"].as_str().unwrap().to_owned());
            }
        }
        let readme = include_str!("../../../README.md");
        let section = readme
            .split("## Metrics and logs")
            .nth(1)
            .and_then(|s| s.split("\n## ").next())
            .unwrap();
        let word = |text: &str| -> Vec<String> {
            text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| w.starts_with("mediajobs_"))
                .map(str::to_owned)
                .collect()
        };
        let mut named: Vec<String> = exprs.iter().flat_map(|e| word(e)).collect();
        named.extend(word(section));
        assert!(named.len() > 20);
        for n in &named {
            assert!(
                known.contains(base_name(n)),
                "{n} is not a metric: {known:?}"
            );
        }
        // And every registered metric is documented in the README.
        let documented: std::collections::BTreeSet<String> = word(section)
            .iter()
            .map(|n| base_name(n).to_owned())
            .collect();
        for k in &known {
            assert!(documented.contains(k), "{k} is not in the README's table");
        }
        assert_eq!(
            known.len(),
            16,
            "a new metric? add it above and to the README: {known:?}"
        );
    }
}
