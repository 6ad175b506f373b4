//! Lane workers: one loop per lane takes a permit, claims the lane's next job and hands it to
//! the executor; it sleeps until a wake-up (local enqueue or store signal) or the poll interval.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::engine::{Engine, Lane};

impl Engine {
    pub(super) async fn lane_worker(self: Arc<Self>, lane: Arc<Lane>, shutdown: CancellationToken) {
        loop {
            let permit = tokio::select! {
                biased;
                _ = shutdown.cancelled() => return,
                p = lane.sem.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => return,
                },
            };
            if shutdown.is_cancelled() {
                return;
            }
            match self
                .store
                .claim_next(&lane.name, &self.config.node_id, self.config.lease)
                .await
            {
                Ok(Some(job)) => self.spawn_job(job, permit),
                Ok(None) => {
                    drop(permit);
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = lane.wake.notified() => {}
                        _ = tokio::time::sleep(self.config.poll_interval) => {}
                    }
                }
                Err(e) => {
                    drop(permit);
                    tracing::warn!(lane = %lane.name, error = %e, "claim failed; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        }
    }
}
