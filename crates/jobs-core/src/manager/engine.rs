//! The [`Engine`]: what every service of a manager shares — the store, the handler registry,
//! the lanes and their permits, the table of jobs running here, the event channel and the
//! life cycle. Each service (executor, lane workers, heartbeat, maintenance, signal listener)
//! is an `impl Engine` block in its own file.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use tokio::sync::{Notify, Semaphore, broadcast};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::ManagerConfig;
use crate::events::{JobEvent, JobEventKind};
use crate::handler::JobHandler;
use crate::job::{Fence, Job, JobStatus, NewJob, lanes};
use crate::store::JobStore;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopReason {
    User,
    Shutdown,
    LeaseLost,
    /// The job's deadline ([`JobContext::set_timeout`](crate::JobContext::set_timeout)) passed.
    Timeout,
}

pub(crate) struct Lane {
    pub(crate) name: String,
    pub(super) permits: usize,
    pub(crate) sem: Arc<Semaphore>,
    pub(super) wake: Notify,
    /// The earliest `run_at` of a not-yet-due job this node knows of in the lane (jobs it
    /// enqueued or re-queued with a backoff); the worker sleeps until then. Other nodes' are
    /// found by the poll (`JobStore::next_run_at`).
    pub(super) due: Mutex<Option<chrono::DateTime<chrono::Utc>>>,
}

pub(super) struct RunningEntry {
    pub(super) fence: Fence,
    pub(super) token: CancellationToken,
    pub(super) reason: Option<StopReason>,
    pub(super) parent_id: Option<Uuid>,
    pub(super) max_attempts: i32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LifeState {
    New,
    Started,
    Stopping,
    Stopped,
}

pub(super) struct Life {
    pub(super) state: LifeState,
    pub(super) shutdown: CancellationToken,
    pub(super) heartbeat_stop: CancellationToken,
    pub(super) heartbeat: Option<JoinHandle<()>>,
    pub(super) completer: Option<JoinHandle<()>>,
}

pub(super) struct Registered {
    pub(super) lane: String,
    pub(super) handler: Arc<dyn JobHandler>,
}

pub(crate) struct Engine {
    pub(crate) store: Arc<dyn JobStore>,
    pub(crate) config: ManagerConfig,
    pub(super) handlers: RwLock<HashMap<String, Registered>>,
    /// The embedder's webhook sender (the delivery loop runs when one is set at start).
    pub(super) webhook_sender: RwLock<Option<Arc<dyn super::outbox::WebhookSender>>>,
    /// Wakes the delivery loop when a job with a webhook ends here.
    pub(super) webhook_wake: Notify,
    /// Sees each page of pruned jobs.
    pub(super) prune_hook: RwLock<Option<super::outbox::PruneHook>>,
    /// Retry policies by job type (the others use `config.retry`).
    pub(super) retry_policies: RwLock<HashMap<String, super::RetryPolicy>>,
    pub(super) lanes: RwLock<HashMap<String, Arc<Lane>>>,
    pub(super) running: Mutex<HashMap<Uuid, RunningEntry>>,
    pub(super) job_done: Notify,
    /// Jobs being enqueued here whose `Created` is not published yet (see [`Announcing`]).
    pub(super) announcing: Mutex<HashSet<Uuid>>,
    /// Fires whenever jobs leave `announcing`.
    pub(super) announced: Notify,
    pub(crate) events: broadcast::Sender<JobEvent>,
    pub(crate) partials: broadcast::Sender<crate::events::PartialOutput>,
    pub(super) life: Mutex<Life>,
    pub(super) job_tasks: Mutex<JoinSet<()>>,
    pub(super) bg_tasks: Mutex<JoinSet<()>>,
    /// The completer's channel while the manager runs (see `completer.rs`).
    pub(super) completions:
        Mutex<Option<tokio::sync::mpsc::UnboundedSender<super::completer::CompletionRequest>>>,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(super) fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic payload".to_owned()
    }
}

impl Lane {
    pub(super) fn new(name: &str, permits: usize) -> Self {
        Lane {
            name: name.to_owned(),
            permits: permits.max(1),
            sem: Arc::new(Semaphore::new(permits.max(1))),
            wake: Notify::new(),
            due: Mutex::new(None),
        }
    }
}

impl Engine {
    /// Creates a lane with one permit if it does not exist; returns it when newly created.
    pub(super) fn ensure_lane(&self, name: &str) -> Option<Arc<Lane>> {
        let mut lanes = self.lanes.write().unwrap_or_else(PoisonError::into_inner);
        if lanes.contains_key(name) {
            return None;
        }
        tracing::info!(
            lane = name,
            "lane not configured; creating it with 1 permit"
        );
        let lane = Arc::new(Lane::new(name, 1));
        lanes.insert(name.to_owned(), lane.clone());
        Some(lane)
    }

    pub(crate) fn lane(&self, name: &str) -> Option<Arc<Lane>> {
        self.lanes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
    }

    pub(super) fn retry_policy(&self, job_type: &str) -> super::RetryPolicy {
        self.retry_policies
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(job_type)
            .copied()
            .unwrap_or(self.config.retry)
    }

    pub(super) fn lane_for(&self, job_type: &str) -> String {
        self.handlers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(job_type)
            .map(|r| r.lane.clone())
            .unwrap_or_else(|| lanes::IO.to_owned())
    }

    pub(super) fn handler_for(&self, job_type: &str) -> Option<Arc<dyn JobHandler>> {
        self.handlers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(job_type)
            .map(|r| r.handler.clone())
    }

    pub(super) fn prepare(&self, mut job: NewJob) -> NewJob {
        if job.lane.is_none() {
            job.lane = Some(self.lane_for(&job.job_type));
        }
        if job.max_attempts.is_none() {
            job.max_attempts = Some(self.config.max_attempts);
        }
        job
    }

    pub(crate) fn wake(&self, lane: &str) {
        if let Some(l) = self.lane(lane) {
            l.wake.notify_one();
        }
    }

    /// Wakes the lane of a queued job; one not due yet is noted as the lane's next due time.
    pub(crate) fn wake_for(&self, job: &Job) {
        if let Some(l) = self.lane(&job.lane) {
            if job.run_at > chrono::Utc::now() {
                let mut due = lock(&l.due);
                if due.is_none_or(|d| job.run_at < d) {
                    *due = Some(job.run_at);
                }
            }
            l.wake.notify_one();
        }
    }

    pub(super) fn wake_all(&self) {
        for l in self
            .lanes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
        {
            l.wake.notify_one();
        }
    }

    pub(crate) fn publish(&self, kind: JobEventKind, job: Job) {
        if job.webhook.is_some() && job.status.is_terminal() && kind != JobEventKind::Updated {
            self.webhook_wake.notify_one();
        }
        let _ = self.events.send(JobEvent { kind, job });
    }

    pub(super) fn publish_after_interrupt(&self, job: Job) {
        if job.status == JobStatus::Queued {
            self.publish(JobEventKind::Requeued, job.clone());
            if job.claimable {
                self.wake_for(&job);
            }
        } else {
            self.publish(JobEventKind::Finished, job);
        }
    }

    /// Sets the stop reason of a locally running job (first reason wins) and fires its token.
    pub(crate) fn mark(&self, id: Uuid, reason: StopReason) {
        if let Some(e) = lock(&self.running).get_mut(&id) {
            e.reason.get_or_insert(reason);
            e.token.cancel();
        }
    }

    pub(crate) fn reason_of(&self, id: Uuid) -> Option<StopReason> {
        lock(&self.running).get(&id).and_then(|e| e.reason)
    }

    /// Fires the tokens of a parent's locally running children with the parent's reason
    /// (a user cancel stays a cancel; anything else interrupts the children).
    pub(crate) fn propagate_cancel(&self, parent_id: Uuid) {
        let mut running = lock(&self.running);
        let reason = match running.get(&parent_id).and_then(|e| e.reason) {
            Some(StopReason::User) => StopReason::User,
            _ => StopReason::Shutdown,
        };
        for e in running.values_mut() {
            if e.parent_id == Some(parent_id) {
                e.reason.get_or_insert(reason);
                e.token.cancel();
            }
        }
    }

    /// Registers a claimed job as running here; returns its token.
    pub(crate) fn register_running(&self, job: &Job) -> Option<(Fence, CancellationToken)> {
        let fence = job.fence()?;
        let token = CancellationToken::new();
        lock(&self.running).insert(
            job.id,
            RunningEntry {
                fence: fence.clone(),
                token: token.clone(),
                reason: None,
                parent_id: job.parent_id,
                max_attempts: job.max_attempts,
            },
        );
        Some((fence, token))
    }
}

/// Marks jobs as being enqueued on this node until their `Created` event is out, so the
/// executor never publishes `Started` first (a lane worker whose claim was already in flight
/// can take a job the moment it is inserted). Dropping it — published, failed, or the caller's
/// future dropped — clears the marks.
pub(super) struct Announcing<'a> {
    engine: &'a Engine,
    ids: Vec<Uuid>,
}

impl<'a> Announcing<'a> {
    pub(super) fn new(engine: &'a Engine, ids: Vec<Uuid>) -> Self {
        lock(&engine.announcing).extend(ids.iter().copied());
        Announcing { engine, ids }
    }
}

impl Drop for Announcing<'_> {
    fn drop(&mut self) {
        let mut set = lock(&self.engine.announcing);
        for id in &self.ids {
            set.remove(id);
        }
        drop(set);
        self.engine.announced.notify_waiters();
    }
}

impl Engine {
    /// Waits (at most a second: ordering events never holds a job up) until a job enqueued
    /// on this node has had its `Created` published.
    pub(super) async fn wait_announced(&self, id: Uuid) {
        let wait = async {
            loop {
                let notified = self.announced.notified();
                if !lock(&self.announcing).contains(&id) {
                    return;
                }
                notified.await;
            }
        };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), wait).await;
    }
}
