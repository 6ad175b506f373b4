//! The heartbeat: renews the leases of the jobs running here and learns, from the same answer,
//! which ones were lost or asked to cancel.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::engine::{Engine, StopReason, lock};
use crate::job::Fence;

impl Engine {
    pub(super) async fn heartbeat(self: Arc<Self>, stop: CancellationToken) {
        let mut tick = tokio::time::interval(self.config.heartbeat.max(Duration::from_millis(10)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            let fences: Vec<Fence> = lock(&self.running)
                .values()
                .map(|e| e.fence.clone())
                .collect();
            if fences.is_empty() {
                continue;
            }
            match self.store.renew_leases(&fences, self.config.lease).await {
                Ok(statuses) => {
                    for s in statuses {
                        if !s.held {
                            self.mark(s.job_id, StopReason::LeaseLost);
                        } else if s.cancel_requested {
                            self.mark(s.job_id, StopReason::User);
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "lease renewal failed"),
            }
        }
    }
}
