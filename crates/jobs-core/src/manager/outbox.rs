//! The outbox services: completion webhook delivery and retention.
//!
//! - **Webhooks.** A terminal write marks a job's webhook `pending` in the same statement, so
//!   the jobs table is the outbox. This loop claims due deliveries
//!   ([`JobStore::claim_webhooks`](crate::JobStore::claim_webhooks): each claim is a lease on
//!   the delivery, so nodes never send the same one concurrently), hands each to the embedder's
//!   [`WebhookSender`] (the HTTP POST lives outside jobs-core), and records the try: delivered,
//!   retried with backoff, or given up once the retry window (24 h by default) is over.
//!   At-least-once: a node that dies mid-try leaves the delivery to be claimed again after the
//!   lease, with the same delivery id.
//! - **Retention.** Every maintenance interval, finished top-level jobs older than the
//!   retention are pruned in pages ([`JobStore::prune_finished`](crate::JobStore::prune_finished):
//!   one node at a time on PostgreSQL); the embedder's prune hook sees each page (the server
//!   deletes generated files there when asked to).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::future::BoxFuture;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::engine::Engine;
use crate::events::JobEventKind;
use crate::job::{Job, WebhookAttempt};

/// Sends one completion webhook: the embedder's HTTP client, signing, and URL policy.
#[async_trait]
pub trait WebhookSender: Send + Sync + 'static {
    /// POSTs the notification of `job`'s latest terminal state. `delivery_id` is stable for
    /// every try of that state (receivers drop duplicates by it).
    async fn send(&self, job: &Job, delivery_id: &str) -> Result<(), WebhookSendError>;
}

/// Why a webhook try failed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct WebhookSendError {
    /// What went wrong (stored in the job's `webhook.last_error`).
    pub message: String,
    /// No later try can succeed (e.g. the URL is refused by policy): give up now.
    pub permanent: bool,
}

impl WebhookSendError {
    /// A failure worth retrying (connection refused, timeout, a non-2xx answer).
    pub fn transient(message: impl Into<String>) -> Self {
        WebhookSendError {
            message: message.into(),
            permanent: false,
        }
    }

    /// A failure no retry can fix.
    pub fn permanent(message: impl Into<String>) -> Self {
        WebhookSendError {
            message: message.into(),
            permanent: true,
        }
    }
}

/// Called with each page of pruned jobs (their last state), after the page was deleted.
pub type PruneHook = Arc<dyn Fn(Vec<Job>) -> BoxFuture<'static, ()> + Send + Sync>;

/// Jobs pruned per store call.
const PRUNE_PAGE: usize = 500;
/// Deliveries claimed per store call, and sent at once.
const WEBHOOK_BATCH: usize = 16;

impl Engine {
    pub(super) async fn webhook_loop(
        self: Arc<Self>,
        sender: Arc<dyn WebhookSender>,
        shutdown: CancellationToken,
    ) {
        let inflight = Arc::new(Semaphore::new(WEBHOOK_BATCH));
        let mut tasks = tokio::task::JoinSet::new();
        loop {
            while tasks.try_join_next().is_some() {}
            let free = inflight.available_permits();
            let claimed = if free == 0 {
                Vec::new()
            } else {
                match self
                    .store
                    .claim_webhooks(self.config.webhook_lease, free)
                    .await
                {
                    Ok(j) => j,
                    Err(e) => {
                        tracing::warn!(error = %e, "could not claim webhook deliveries");
                        Vec::new()
                    }
                }
            };
            let busy = claimed.len() == free && free > 0;
            for job in claimed {
                let Ok(permit) = inflight.clone().acquire_owned().await else {
                    return;
                };
                let me = self.clone();
                let sender = sender.clone();
                tasks.spawn(async move {
                    me.deliver(sender.as_ref(), job).await;
                    drop(permit);
                });
            }
            if busy {
                continue;
            }
            tokio::select! {
                _ = shutdown.cancelled() => {
                    // Tries in flight finish (bounded by the sender's own timeout).
                    while tasks.join_next().await.is_some() {}
                    return;
                }
                _ = self.webhook_wake.notified() => {}
                _ = tokio::time::sleep(self.config.webhook_poll) => {}
            }
        }
    }

    async fn deliver(&self, sender: &dyn WebhookSender, job: Job) {
        let Some(w) = job.webhook.clone() else { return };
        let id = w.delivery_id(job.id);
        let res = match tokio::time::timeout(Duration::from_secs(30), sender.send(&job, &id)).await
        {
            Ok(r) => r,
            Err(_) => Err(WebhookSendError::transient("timed out after 30 s")),
        };
        let now = chrono::Utc::now();
        let attempt = match res {
            Ok(()) => WebhookAttempt::Delivered,
            Err(e) if e.permanent => WebhookAttempt::GaveUp(e.message),
            Err(e) => {
                let since = w
                    .event_at
                    .map_or(Duration::ZERO, |t| (now - t).to_std().unwrap_or_default());
                if since >= self.config.webhook_retry_window {
                    WebhookAttempt::GaveUp(e.message)
                } else {
                    let delay = self.config.webhook_retry.delay(w.attempts + 1);
                    WebhookAttempt::RetryAt(crate::rules::lease_until(now, delay), e.message)
                }
            }
        };
        tracing::debug!(job_id = %job.id, delivery = %id, ?attempt, "webhook try");
        match self.store.record_webhook(job.id, w.seq, attempt).await {
            Ok(Some(j)) => self.publish(JobEventKind::Updated, j),
            Ok(None) => {}
            Err(e) => {
                // The claim's lease runs out and the delivery is tried again.
                tracing::warn!(job_id = %job.id, error = %e, "could not record a webhook try");
            }
        }
    }

    pub(super) async fn retention_loop(
        self: Arc<Self>,
        retention: Duration,
        shutdown: CancellationToken,
    ) {
        loop {
            if let Err(e) = self.prune_once(retention).await {
                tracing::warn!(error = %e, "retention pass failed");
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(self.config.maintenance_interval.max(Duration::from_millis(10))) => {}
            }
        }
    }

    /// One retention pass: prunes every job older than `retention`, page by page.
    pub(super) async fn prune_once(&self, retention: Duration) -> Result<usize, crate::StoreError> {
        let before = chrono::Utc::now()
            - chrono::TimeDelta::from_std(retention).unwrap_or(chrono::TimeDelta::MAX);
        let mut total = 0;
        loop {
            let page = self.store.prune_finished(before, PRUNE_PAGE).await?;
            let n = page.len();
            total += n;
            for j in &page {
                self.publish(JobEventKind::Deleted, j.clone());
            }
            let hook = self.prune_hook.read().ok().and_then(|h| h.clone());
            if let Some(h) = hook
                && n > 0
            {
                h(page).await;
            }
            if n < PRUNE_PAGE {
                if total > 0 {
                    tracing::info!(pruned = total, "retention pass pruned finished jobs");
                }
                return Ok(total);
            }
        }
    }
}
