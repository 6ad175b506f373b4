use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::broadcast;
use uuid::Uuid;

use crate::{
    Changed, Fence, Job, JobError, JobFilter, JobStore, LeaseStatus, NewJob, Outcome,
    ProgressUpdate, StoreError, StoreSignal,
};

/// Wraps a store and counts progress writes (to prove the ≤ 2/s throttle).
pub struct CountingStore {
    inner: Arc<dyn JobStore>,
    progress_writes: AtomicUsize,
}

impl CountingStore {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn JobStore>) -> Arc<Self> {
        Arc::new(CountingStore {
            inner,
            progress_writes: AtomicUsize::new(0),
        })
    }

    /// Progress writes so far.
    pub fn progress_writes(&self) -> usize {
        self.progress_writes.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl JobStore for CountingStore {
    async fn insert_job(&self, job: NewJob) -> Result<Job, StoreError> {
        self.inner.insert_job(job).await
    }
    async fn insert_batch(
        &self,
        parent: NewJob,
        children: Vec<NewJob>,
    ) -> Result<(Job, Vec<Job>), StoreError> {
        self.inner.insert_batch(parent, children).await
    }
    async fn get_job(&self, id: Uuid) -> Result<Option<Job>, StoreError> {
        self.inner.get_job(id).await
    }
    async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<Job>, StoreError> {
        self.inner.list_jobs(filter).await
    }
    async fn list_children(&self, parent_id: Uuid) -> Result<Vec<Job>, StoreError> {
        self.inner.list_children(parent_id).await
    }
    async fn list_unfinished(&self) -> Result<Vec<Job>, StoreError> {
        self.inner.list_unfinished().await
    }
    async fn list_expired_leases(&self) -> Result<Vec<Job>, StoreError> {
        self.inner.list_expired_leases().await
    }
    async fn claim_next(
        &self,
        lane: &str,
        owner: &str,
        lease: Duration,
    ) -> Result<Option<Job>, StoreError> {
        self.inner.claim_next(lane, owner, lease).await
    }
    async fn claim_job(
        &self,
        id: Uuid,
        owner: &str,
        lease: Duration,
    ) -> Result<Option<Job>, StoreError> {
        self.inner.claim_job(id, owner, lease).await
    }
    async fn renew_leases(
        &self,
        fences: &[Fence],
        lease: Duration,
    ) -> Result<Vec<LeaseStatus>, StoreError> {
        self.inner.renew_leases(fences, lease).await
    }
    async fn update_progress(
        &self,
        fence: &Fence,
        update: &ProgressUpdate,
    ) -> Result<bool, StoreError> {
        self.progress_writes.fetch_add(1, Ordering::SeqCst);
        self.inner.update_progress(fence, update).await
    }
    async fn complete_job(
        &self,
        fence: &Fence,
        outcome: Outcome,
        completed: i32,
    ) -> Result<Option<Job>, StoreError> {
        self.inner.complete_job(fence, outcome, completed).await
    }
    async fn interrupt_job(&self, fence: &Fence, requeue: bool) -> Result<Option<Job>, StoreError> {
        self.inner.interrupt_job(fence, requeue).await
    }
    async fn fail_queued(&self, id: Uuid, error: &JobError) -> Result<Option<Job>, StoreError> {
        self.inner.fail_queued(id, error).await
    }
    async fn request_cancel(&self, id: Uuid) -> Result<Changed, StoreError> {
        self.inner.request_cancel(id).await
    }
    async fn retry_job(&self, id: Uuid, extra_attempts: i32) -> Result<Changed, StoreError> {
        self.inner.retry_job(id, extra_attempts).await
    }
    async fn release_children(&self, parent_id: Uuid) -> Result<u64, StoreError> {
        self.inner.release_children(parent_id).await
    }
    async fn delete_job(&self, id: Uuid) -> Result<Vec<Uuid>, StoreError> {
        self.inner.delete_job(id).await
    }
    async fn next_run_at(
        &self,
        lane: &str,
    ) -> Result<Option<chrono::DateTime<chrono::Utc>>, StoreError> {
        self.inner.next_run_at(lane).await
    }
    async fn find_reusable(&self, dedupe_key: &str) -> Result<Option<Job>, StoreError> {
        self.inner.find_reusable(dedupe_key).await
    }
    async fn prune_finished(
        &self,
        before: chrono::DateTime<chrono::Utc>,
        limit: usize,
    ) -> Result<Vec<Job>, StoreError> {
        self.inner.prune_finished(before, limit).await
    }
    async fn claim_webhooks(&self, lease: Duration, max: usize) -> Result<Vec<Job>, StoreError> {
        self.inner.claim_webhooks(lease, max).await
    }
    async fn record_webhook(
        &self,
        job_id: Uuid,
        seq: i32,
        attempt: crate::WebhookAttempt,
    ) -> Result<Option<Job>, StoreError> {
        self.inner.record_webhook(job_id, seq, attempt).await
    }
    fn subscribe_signals(&self) -> Option<broadcast::Receiver<StoreSignal>> {
        self.inner.subscribe_signals()
    }
}
