//! Maintenance: recovery on start, the reaper of other nodes' expired leases, and the sweep
//! that fails queued children of finished parents.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::RecoveryReport;
use super::engine::{Engine, lock};
use crate::events::JobEventKind;
use crate::job::{Job, JobError, JobStatus};
use crate::store::StoreError;

impl Engine {
    pub(super) async fn recover(self: &Arc<Self>) -> Result<RecoveryReport, StoreError> {
        let mut report = RecoveryReport::default();
        let unfinished = self.store.list_unfinished().await?;
        let expired: HashSet<Uuid> = self
            .store
            .list_expired_leases()
            .await?
            .into_iter()
            .map(|j| j.id)
            .collect();
        for job in &unfinished {
            if job.status != JobStatus::Running {
                continue;
            }
            let mine = job.lease_owner.as_deref() == Some(self.config.node_id.as_str());
            if !(mine || expired.contains(&job.id)) {
                continue;
            }
            let Some(fence) = job.fence() else { continue };
            if let Some(j) = self.interrupt(&fence, job.max_attempts).await {
                if j.status == JobStatus::Queued {
                    report.requeued.push(j.id);
                } else {
                    report.failed.push(j.id);
                }
                self.publish_after_interrupt(j);
            }
        }
        report.orphans_failed = self.sweep_orphans().await?;
        report.queued = self
            .store
            .list_unfinished()
            .await?
            .iter()
            .filter(|j| j.status == JobStatus::Queued)
            .count();
        Ok(report)
    }

    /// Fails the queued children of a finished parent.
    pub(super) async fn fail_orphans_of(&self, parent_id: Uuid) {
        let children = match self.store.list_children(parent_id).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(job_id = %parent_id, error = %e, "could not list children");
                return;
            }
        };
        for c in children.iter().filter(|c| c.status == JobStatus::Queued) {
            match self.store.fail_queued(c.id, &JobError::interrupted()).await {
                Ok(Some(j)) => self.publish(JobEventKind::Finished, j),
                Ok(None) => {}
                Err(e) => tracing::warn!(job_id = %c.id, error = %e, "could not fail orphan"),
            }
        }
    }

    /// Fails queued children whose parent is finished or gone.
    pub(super) async fn sweep_orphans(&self) -> Result<Vec<Uuid>, StoreError> {
        let unfinished = self.store.list_unfinished().await?;
        let mut parents: HashMap<Uuid, bool> = HashMap::new();
        let mut failed = Vec::new();
        for child in unfinished
            .iter()
            .filter(|j| j.status == JobStatus::Queued && j.parent_id.is_some())
        {
            let Some(pid) = child.parent_id else { continue };
            let parent_active = match parents.get(&pid) {
                Some(a) => *a,
                None => {
                    let a = self
                        .store
                        .get_job(pid)
                        .await?
                        .is_some_and(|p| p.status.is_active());
                    parents.insert(pid, a);
                    a
                }
            };
            if !parent_active
                && let Some(j) = self
                    .store
                    .fail_queued(child.id, &JobError::interrupted())
                    .await?
            {
                failed.push(j.id);
                self.publish(JobEventKind::Finished, j);
            }
        }
        Ok(failed)
    }

    pub(super) async fn reap_expired(&self) -> Result<Vec<Job>, StoreError> {
        let expired = self.store.list_expired_leases().await?;
        let mut changed = Vec::new();
        for job in expired {
            if lock(&self.running).contains_key(&job.id) {
                // Ours: the heartbeat renews it.
                continue;
            }
            let Some(fence) = job.fence() else { continue };
            if let Some(j) = self.interrupt(&fence, job.max_attempts).await {
                tracing::warn!(job_id = %j.id, owner = ?job.lease_owner, status = %j.status, "reaped an expired lease");
                self.publish_after_interrupt(j.clone());
                changed.push(j);
            }
        }
        if !changed.is_empty() {
            self.sweep_orphans().await?;
        }
        Ok(changed)
    }

    pub(super) async fn reaper(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(self.config.reaper_interval.max(Duration::from_millis(10))) => {}
            }
            if let Err(e) = self.reap_expired().await {
                tracing::warn!(error = %e, "reaper pass failed");
            }
        }
    }
}
