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
        // Whether the store should be asked for the lane's next due time: at start, after a
        // poll (other nodes' delayed jobs), and when the noted one has passed. Never on the busy
        // path: an empty claim there only means the queue ran dry.
        let mut ask_store = true;
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
                    // Sleep until a wake-up, the poll interval, or the next scheduled job of
                    // the lane comes due, whichever is first.
                    let now = chrono::Utc::now();
                    let noted = *super::engine::lock(&lane.due);
                    let passed = noted.is_some_and(|d| d <= now);
                    if ask_store || passed {
                        let found = match self.store.next_run_at(&lane.name).await {
                            Ok(d) => d,
                            Err(e) => {
                                tracing::debug!(lane = %lane.name, error = %e, "next_run_at failed");
                                None
                            }
                        };
                        let mut due = super::engine::lock(&lane.due);
                        // A job noted meanwhile (and not yet due) stays noted.
                        *due = match (*due, found) {
                            (Some(d), Some(f)) if d > now => Some(d.min(f)),
                            (Some(d), None) if d > now => Some(d),
                            (_, f) => f,
                        };
                        ask_store = false;
                    }
                    let mut nap = self.config.poll_interval;
                    if let Some(at) = *super::engine::lock(&lane.due) {
                        let wait = (at - now).to_std().unwrap_or(Duration::ZERO)
                            + Duration::from_millis(5);
                        nap = nap.min(wait);
                    }
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = lane.wake.notified() => {}
                        _ = tokio::time::sleep(nap) => ask_store = nap == self.config.poll_interval,
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
