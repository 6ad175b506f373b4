//! The signal listener: the store's wake-ups (new jobs on a lane), cancel requests and job
//! changes made by other nodes.

use std::sync::Arc;

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::engine::{Engine, StopReason, lock};
use crate::events::JobEventKind;
use crate::store::StoreSignal;

impl Engine {
    pub(super) async fn signal_listener(
        self: Arc<Self>,
        mut rx: broadcast::Receiver<StoreSignal>,
        shutdown: CancellationToken,
    ) {
        loop {
            let sig = tokio::select! {
                _ = shutdown.cancelled() => return,
                s = rx.recv() => s,
            };
            match sig {
                Ok(StoreSignal::JobsAvailable { lane }) => self.wake(&lane),
                Ok(StoreSignal::CancelRequested { job_id }) => self.mark(job_id, StopReason::User),
                Ok(StoreSignal::JobChanged { job_id }) => {
                    if !lock(&self.running).contains_key(&job_id)
                        && let Ok(Some(job)) = self.store.get_job(job_id).await
                    {
                        self.publish(JobEventKind::Updated, job);
                    }
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => self.wake_all(),
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }
}
