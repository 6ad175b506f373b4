//! Lane workers: one loop per lane takes a permit (plus every other free one, up to
//! `claim_batch`), claims that many of the lane's next jobs in one store call and hands each to
//! the executor with its permit; it sleeps until a wake-up (local enqueue or store signal) or
//! the poll interval.

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
            let mut permits = vec![permit];
            while permits.len() < self.config.claim_batch.max(1) {
                match lane.sem.clone().try_acquire_owned() {
                    Ok(p) => permits.push(p),
                    Err(_) => break,
                }
            }
            match self
                .store
                .claim_batch(
                    &lane.name,
                    &self.config.node_id,
                    self.config.lease,
                    permits.len(),
                )
                .await
            {
                Ok(jobs) if !jobs.is_empty() => {
                    // Unused permits go back as `permits` drops.
                    for (job, permit) in jobs.into_iter().zip(permits.drain(..)) {
                        self.spawn_job(job, permit);
                    }
                }
                Ok(_) => {
                    drop(permits);
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = lane.wake.notified() => {}
                        _ = tokio::time::sleep(self.config.poll_interval) => {}
                    }
                }
                Err(e) => {
                    drop(permits);
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
