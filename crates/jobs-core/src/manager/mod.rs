//! The [`QueueManager`]: lanes, workers, leases, recovery, cancellation, shutdown.
//!
//! One file per service, as river's `internal/` and awa-worker split theirs:
//! [`config`] (settings), `engine` (the state every service shares), `executor` (runs a job
//! and writes its outcome), `lane_worker` (claims), `heartbeat` (leases), `maintenance`
//! (recovery, reaper, orphan sweep) and `signals` (the store's notifications).

mod completer;
mod config;
mod engine;
mod executor;
mod heartbeat;
mod lane_worker;
mod maintenance;
mod outbox;
mod signals;

use std::collections::HashMap;
use std::pin::pin;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use mediajobs_codes::ErrorCode;
use tokio::sync::{Notify, broadcast};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub use config::{InterruptPolicy, ManagerConfig, RetryPolicy};
use engine::{Announcing, Lane, Life, LifeState, Registered, RunningEntry, lock};
pub(crate) use engine::{Engine, StopReason};
pub use outbox::{PruneHook, WebhookSendError, WebhookSender};

use crate::batch::{BatchHandler, BatchStrategy};
use crate::events::{JobEvent, JobEventKind};
use crate::handler::JobHandler;
use crate::job::{Job, JobStatus, NewJob, lanes};
use crate::store::{JobStore, StoreError};
use crate::typed::{Enqueue, JobArgs, Queue, Typed, TypedHandler};

/// Errors of the [`QueueManager`].
#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    /// `submit_job` before `start`.
    #[error("the queue manager is not started")]
    NotStarted,
    /// `start` while running.
    #[error("the queue manager is already started")]
    AlreadyStarted,
    /// The store refused (`NotFound`, `Conflict`, `ValidationError`) or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ManagerError {
    /// The stable error code.
    pub fn code(&self) -> ErrorCode {
        match self {
            ManagerError::NotStarted | ManagerError::AlreadyStarted => ErrorCode::ServerError,
            ManagerError::Store(e) => e.code(),
        }
    }

    /// `NotFound` for a job.
    pub fn job_not_found(id: Uuid) -> Self {
        ManagerError::Store(StoreError::job_not_found(id))
    }
}

/// What `start()` found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Interrupted jobs put back in the queue.
    pub requeued: Vec<Uuid>,
    /// Interrupted jobs failed with `Interrupted` (or cancelled, if a cancel was pending).
    pub failed: Vec<Uuid>,
    /// Queued batch children whose parent is finished, failed.
    pub orphans_failed: Vec<Uuid>,
    /// Jobs waiting in the queue after recovery.
    pub queued: usize,
}

/// Usage of one lane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaneUsage {
    /// Lane name.
    pub name: String,
    /// Permits configured.
    pub permits: usize,
    /// Permits held now (running jobs, or a worker about to claim).
    pub in_use: usize,
}

/// Runs jobs from a [`JobStore`]: one worker loop per lane, permits per lane, leases with a
/// heartbeat, a reaper for other nodes' expired leases, recovery on start and a graceful stop.
///
/// ```
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use jobs_core::{lanes, Job, JobContext, JobError, JobResult, ManagerConfig, MemoryStore, NewJob, QueueManager};
///
/// let manager = QueueManager::new(Arc::new(MemoryStore::new()), ManagerConfig::default());
/// manager.register_handler("double", lanes::IO, |job: Job, _ctx: JobContext| async move {
///     let n = job.params["n"].as_i64().ok_or_else(|| JobError::new("ValidationError", "n missing"))?;
///     Ok(JobResult(serde_json::json!({ "n": n * 2 })))
/// });
/// manager.start().await?;
/// let job = manager.enqueue(NewJob::new("double", serde_json::json!({"n": 21}))).await?;
/// let done = manager.wait_for(job.id).await?;
/// assert_eq!(done.result.unwrap()["n"], 42);
/// manager.stop().await?;
/// # Ok(()) }
/// ```
///
/// Dropping a started manager without [`stop`](QueueManager::stop) aborts its tasks and leaves
/// its jobs `running` in the store, exactly like a crash; the next `start()` (of this node) or
/// another node's reaper recovers them.
pub struct QueueManager {
    shared: Arc<Engine>,
}

impl std::fmt::Debug for QueueManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueManager")
            .field("node_id", &self.shared.config.node_id)
            .finish_non_exhaustive()
    }
}

impl Drop for QueueManager {
    fn drop(&mut self) {
        let mut life = lock(&self.shared.life);
        if matches!(life.state, LifeState::Started | LifeState::Stopping) {
            life.shutdown.cancel();
            life.heartbeat_stop.cancel();
            if let Some(h) = life.heartbeat.take() {
                h.abort();
            }
            if let Some(h) = life.completer.take() {
                h.abort();
            }
            life.state = LifeState::Stopped;
            drop(life);
            lock(&self.shared.bg_tasks).abort_all();
            lock(&self.shared.job_tasks).abort_all();
        }
    }
}

impl QueueManager {
    /// A manager over `store`. Register handlers, then [`start`](QueueManager::start) it.
    pub fn new(store: Arc<dyn JobStore>, config: ManagerConfig) -> Self {
        let (events, _) = broadcast::channel(config.event_capacity.max(16));
        let (partials, _) = broadcast::channel(config.event_capacity.max(16));
        let lanes = config
            .lanes
            .iter()
            .map(|(name, permits)| (name.clone(), Arc::new(Lane::new(name, *permits))))
            .collect();
        QueueManager {
            shared: Arc::new(Engine {
                store,
                config,
                handlers: RwLock::new(HashMap::new()),
                retry_policies: RwLock::new(HashMap::new()),
                webhook_sender: RwLock::new(None),
                webhook_wake: Notify::new(),
                prune_hook: RwLock::new(None),
                lanes: RwLock::new(lanes),
                running: Mutex::new(HashMap::new()),
                job_done: Notify::new(),
                announcing: Mutex::new(std::collections::HashSet::new()),
                announced: Notify::new(),
                events,
                partials,
                life: Mutex::new(Life {
                    state: LifeState::New,
                    shutdown: CancellationToken::new(),
                    heartbeat_stop: CancellationToken::new(),
                    heartbeat: None,
                    completer: None,
                }),
                job_tasks: Mutex::new(JoinSet::new()),
                bg_tasks: Mutex::new(JoinSet::new()),
                completions: Mutex::new(None),
            }),
        }
    }

    /// Registers the handler of `job_type`, running in `lane`. A lane that is not configured is
    /// created with one permit. Registering a type again replaces its handler.
    pub fn register_handler<H: JobHandler>(&self, job_type: &str, lane: &str, handler: H) {
        if let Some(new_lane) = self.shared.ensure_lane(lane) {
            // A lane created after start needs its worker.
            let life = lock(&self.shared.life);
            if life.state == LifeState::Started {
                let shutdown = life.shutdown.clone();
                drop(life);
                lock(&self.shared.bg_tasks)
                    .spawn(self.shared.clone().lane_worker(new_lane, shutdown));
            }
        }
        self.shared
            .handlers
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                job_type.to_owned(),
                Registered {
                    lane: lane.to_owned(),
                    handler: Arc::new(handler),
                },
            );
    }

    /// Registers a typed handler without state, `async fn(A, JobContext) -> Result<A::Output,
    /// JobError>`, for `A::KIND` in `A::lane()`.
    pub fn register<A, H, M>(&self, handler: H)
    where
        A: JobArgs,
        H: TypedHandler<A, (), M>,
        M: 'static,
    {
        self.register_with_state_in(A::lane(), (), handler);
    }

    /// Registers a typed handler with shared state, `async fn(State<S>, A, JobContext)`, for
    /// `A::KIND` in `A::lane()`. The state is cloned into every run (wrap it in an `Arc`).
    pub fn register_with_state<A, S, H, M>(&self, state: S, handler: H)
    where
        A: JobArgs,
        S: Clone + Send + Sync + 'static,
        H: TypedHandler<A, S, M>,
        M: 'static,
    {
        self.register_with_state_in(A::lane(), state, handler);
    }

    /// Like [`register_with_state`](QueueManager::register_with_state), in a lane chosen at
    /// run time (a transcription runs in `heavy` locally but `io` against a remote service).
    pub fn register_with_state_in<A, S, H, M>(&self, lane: &str, state: S, handler: H)
    where
        A: JobArgs,
        S: Clone + Send + Sync + 'static,
        H: TypedHandler<A, S, M>,
        M: 'static,
    {
        let typed = Typed::<A, S, H, M> {
            state,
            handler,
            _marker: std::marker::PhantomData,
        };
        self.register_handler(A::KIND, lane, typed);
    }

    /// Registers a batch type whose parent runs its children with `strategy`. Parents run in
    /// the `batch` lane; each child takes a permit of its own lane.
    pub fn register_batch(&self, batch_type: &str, strategy: BatchStrategy) {
        self.register_handler(batch_type, lanes::BATCH, BatchHandler { strategy });
    }

    /// Sets the sender of completion webhooks (before [`start`](QueueManager::start): the
    /// delivery loop starts with the manager when a sender is set). See [`WebhookSender`].
    pub fn set_webhook_sender(&self, sender: Arc<dyn WebhookSender>) {
        *self
            .shared
            .webhook_sender
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(sender);
    }

    /// Sets the hook that sees each page of jobs pruned by retention
    /// ([`ManagerConfig::retention`]).
    pub fn set_prune_hook(&self, hook: PruneHook) {
        *self
            .shared
            .prune_hook
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(hook);
    }

    /// Runs one retention pass now (what the maintenance task does every interval); returns
    /// how many jobs were pruned. `retention` overrides the configured one.
    pub async fn prune_now(&self, retention: Duration) -> Result<usize, ManagerError> {
        Ok(self.shared.prune_once(retention).await?)
    }

    /// Sets the retry policy of `job_type` (the others use
    /// [`ManagerConfig::retry`](ManagerConfig::retry)): how a job that failed with a
    /// [retryable](crate::JobError::retryable) error is re-queued.
    pub fn set_retry_policy(&self, job_type: &str, policy: RetryPolicy) {
        self.shared
            .retry_policies
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(job_type.to_owned(), policy);
    }

    /// The lane registered for `job_type` (`io` when unknown).
    pub fn lane_for(&self, job_type: &str) -> String {
        self.shared.lane_for(job_type)
    }

    /// `true` when a handler is registered for `job_type`.
    pub fn has_handler(&self, job_type: &str) -> bool {
        self.shared
            .handlers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(job_type)
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn JobStore> {
        &self.shared.store
    }

    /// The configuration.
    pub fn config(&self) -> &ManagerConfig {
        &self.shared.config
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.shared.config.node_id
    }

    /// Subscribes to job events.
    pub fn subscribe(&self) -> broadcast::Receiver<JobEvent> {
        self.shared.events.subscribe()
    }

    /// Partial outputs of the jobs running on this node, as their handlers publish them
    /// ([`JobContext::partials`](crate::JobContext::partials)). Subscribe before enqueueing
    /// to see every one of a job's.
    pub fn subscribe_partials(&self) -> broadcast::Receiver<crate::events::PartialOutput> {
        self.shared.partials.subscribe()
    }

    /// Ids of the jobs running on this node (batch children included).
    pub fn running_job_ids(&self) -> Vec<Uuid> {
        let mut ids: Vec<Uuid> = lock(&self.shared.running).keys().copied().collect();
        ids.sort();
        ids
    }

    /// Permits per lane and how many are in use.
    pub fn lane_usage(&self) -> Vec<LaneUsage> {
        let lanes = self
            .shared
            .lanes
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let mut out: Vec<LaneUsage> = lanes
            .values()
            .map(|l| LaneUsage {
                name: l.name.clone(),
                permits: l.permits,
                in_use: l.permits.saturating_sub(l.sem.available_permits()),
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// `true` between `start()` and `stop()`.
    pub fn is_started(&self) -> bool {
        lock(&self.shared.life).state == LifeState::Started
    }

    /// Recovers the store (see the crate docs and DESIGN §3) and starts the lane workers, the
    /// heartbeat, the reaper and the signal listener.
    ///
    /// - `running` jobs of this node's previous life, or with an expired lease, are
    ///   interrupted: re-queued while `attempts < max_attempts` under [`InterruptPolicy::Retry`],
    ///   else failed with `Interrupted`;
    /// - queued top-level jobs run again in claim order (priority, `run_at`, then id);
    /// - queued children of a finished parent are failed; others are left to their parent.
    pub async fn start(&self) -> Result<RecoveryReport, ManagerError> {
        let shared = &self.shared;
        let (shutdown, heartbeat_stop) = {
            let mut life = lock(&shared.life);
            if matches!(life.state, LifeState::Started | LifeState::Stopping) {
                return Err(ManagerError::AlreadyStarted);
            }
            life.state = LifeState::Started;
            life.shutdown = CancellationToken::new();
            life.heartbeat_stop = CancellationToken::new();
            (life.shutdown.clone(), life.heartbeat_stop.clone())
        };
        let signals = shared.store.subscribe_signals();
        let report = match shared.recover().await {
            Ok(r) => r,
            Err(e) => {
                lock(&shared.life).state = LifeState::Stopped;
                return Err(e.into());
            }
        };
        tracing::info!(
            node = %shared.config.node_id,
            requeued = report.requeued.len(),
            failed = report.failed.len(),
            orphans = report.orphans_failed.len(),
            queued = report.queued,
            "queue manager started"
        );
        let completer = shared.open_completer();
        lock(&shared.life).completer = Some(completer);
        {
            let lanes: Vec<Arc<Lane>> = shared
                .lanes
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .values()
                .cloned()
                .collect();
            let mut bg = lock(&shared.bg_tasks);
            for lane in lanes {
                bg.spawn(shared.clone().lane_worker(lane, shutdown.clone()));
            }
            bg.spawn(shared.clone().reaper(shutdown.clone()));
            let sender = shared
                .webhook_sender
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            if let Some(sender) = sender {
                bg.spawn(shared.clone().webhook_loop(sender, shutdown.clone()));
            }
            if let Some(retention) = shared.config.retention {
                bg.spawn(shared.clone().retention_loop(retention, shutdown.clone()));
            }
            if let Some(rx) = signals {
                bg.spawn(shared.clone().signal_listener(rx, shutdown.clone()));
            }
        }
        let hb = tokio::spawn(shared.clone().heartbeat(heartbeat_stop));
        lock(&shared.life).heartbeat = Some(hb);
        Ok(report)
    }

    /// Stops the manager: no new claims; running jobs get the grace period to finish; then
    /// their tokens fire and the interrupt policy applies to those that do not finish; handlers
    /// that ignore cancellation are abandoned after `cancel_wait` and interrupted in the store.
    /// Nothing of this node is left `running` afterwards. Stopping a stopped manager is a no-op.
    pub async fn stop(&self) -> Result<(), ManagerError> {
        let shared = &self.shared;
        let (shutdown, heartbeat_stop, heartbeat) = {
            let mut life = lock(&shared.life);
            if life.state != LifeState::Started {
                return Ok(());
            }
            life.state = LifeState::Stopping;
            (
                life.shutdown.clone(),
                life.heartbeat_stop.clone(),
                life.heartbeat.take(),
            )
        };
        shutdown.cancel();
        let mut bg = std::mem::take(&mut *lock(&shared.bg_tasks));
        while bg.join_next().await.is_some() {}

        let grace_deadline = tokio::time::Instant::now() + shared.config.grace_period;
        shared.wait_idle(grace_deadline).await;

        let remaining = {
            let mut running = lock(&shared.running);
            for e in running.values_mut() {
                e.reason.get_or_insert(StopReason::Shutdown);
                e.token.cancel();
            }
            running.len()
        };
        if remaining > 0 {
            tracing::info!(remaining, "grace period over; cancelling running jobs");
            let cancel_deadline = tokio::time::Instant::now() + shared.config.cancel_wait;
            shared.wait_idle(cancel_deadline).await;
        }

        let abandoned: Vec<RunningEntry> = lock(&shared.running).drain().map(|(_, e)| e).collect();
        if !abandoned.is_empty() {
            tracing::warn!(
                count = abandoned.len(),
                "handlers ignored cancellation; abandoning them"
            );
            lock(&shared.job_tasks).abort_all();
            for e in abandoned {
                if let Some(job) = shared.interrupt(&e.fence, e.max_attempts).await {
                    shared.publish_after_interrupt(job);
                }
            }
            if let Err(e) = shared.sweep_orphans().await {
                tracing::warn!(error = %e, "orphan sweep failed");
            }
        }
        let mut jobs = std::mem::take(&mut *lock(&shared.job_tasks));
        while jobs.join_next().await.is_some() {}
        // Every executor has its answer: the completer has nothing left to write.
        shared.close_completer();
        let completer = lock(&shared.life).completer.take();
        if let Some(h) = completer {
            let _ = h.await;
        }

        heartbeat_stop.cancel();
        if let Some(h) = heartbeat {
            let _ = h.await;
        }
        lock(&shared.life).state = LifeState::Stopped;
        tracing::info!(node = %shared.config.node_id, "queue manager stopped");
        Ok(())
    }

    /// Wakes the workers for an already stored job. Errors when the manager is not started or
    /// the job does not exist.
    pub async fn submit_job(&self, id: Uuid) -> Result<(), ManagerError> {
        if !self.is_started() {
            return Err(ManagerError::NotStarted);
        }
        let job = self
            .shared
            .store
            .get_job(id)
            .await?
            .ok_or_else(|| ManagerError::job_not_found(id))?;
        if job.status == JobStatus::Queued && job.claimable {
            self.shared.wake_for(&job);
        }
        Ok(())
    }

    /// Stores a new job (its lane and `max_attempts` filled from the registry and the config)
    /// and wakes the workers. Jobs enqueued before `start()` run once it is called.
    ///
    /// Takes a [`NewJob`] (answered with the stored [`Job`]) or typed [`JobArgs`] (answered
    /// with a [`JobHandle`](crate::JobHandle) whose [`wait`](crate::JobHandle::wait) gives the typed output).
    pub async fn enqueue<E: Enqueue>(&self, job: E) -> Result<E::Handle, ManagerError> {
        let new = self.shared.prepare(job.into_new_job()?);
        let announcing = Announcing::new(&self.shared, vec![new.id]);
        let stored = self.shared.store.insert_job(new).await?;
        self.shared.publish(JobEventKind::Created, stored.clone());
        drop(announcing);
        self.shared.wake_for(&stored);
        Ok(E::handle(stored, &Queue(self.shared.clone())))
    }

    /// Stores several top-level jobs in one transaction (all or none) and wakes the workers:
    /// the bulk form of [`enqueue`](QueueManager::enqueue). They are claimed in the given
    /// order (within a priority).
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::sync::Arc;
    /// use jobs_core::{ManagerConfig, MemoryStore, NewJob, QueueManager};
    ///
    /// let manager = QueueManager::new(Arc::new(MemoryStore::new()), ManagerConfig::default());
    /// let jobs = (0..3).map(|n| NewJob::new("thumbnail", serde_json::json!({ "n": n })));
    /// let stored = manager.enqueue_many(jobs.collect()).await?;
    /// assert_eq!(stored.len(), 3);
    /// # Ok(()) }
    /// ```
    pub async fn enqueue_many(&self, jobs: Vec<NewJob>) -> Result<Vec<Job>, ManagerError> {
        let jobs: Vec<NewJob> = jobs.into_iter().map(|j| self.shared.prepare(j)).collect();
        let announcing = Announcing::new(&self.shared, jobs.iter().map(|j| j.id).collect());
        let stored = self.shared.store.insert_jobs(jobs).await?;
        let mut lanes = std::collections::BTreeMap::new();
        for j in &stored {
            self.shared.publish(JobEventKind::Created, j.clone());
            // One wake per lane, noting its earliest not-yet-due job.
            let e = lanes.entry(j.lane.clone()).or_insert(j);
            if j.run_at < e.run_at {
                *e = j;
            }
        }
        drop(announcing);
        for j in lanes.values() {
            self.shared.wake_for(j);
        }
        Ok(stored)
    }

    /// Stores a batch parent and its children in one transaction and wakes the workers.
    pub async fn enqueue_batch(
        &self,
        parent: NewJob,
        children: Vec<NewJob>,
    ) -> Result<(Job, Vec<Job>), ManagerError> {
        let parent = self.shared.prepare(parent);
        let children: Vec<NewJob> = children
            .into_iter()
            .map(|c| self.shared.prepare(c))
            .collect();
        let ids = std::iter::once(parent.id)
            .chain(children.iter().map(|c| c.id))
            .collect();
        let announcing = Announcing::new(&self.shared, ids);
        let (parent, children) = self.shared.store.insert_batch(parent, children).await?;
        self.shared.publish(JobEventKind::Created, parent.clone());
        for c in &children {
            self.shared.publish(JobEventKind::Created, c.clone());
        }
        drop(announcing);
        self.shared.wake(&parent.lane);
        Ok((parent, children))
    }

    /// Cancels a job: a queued job is `cancelled` at once; a running job's token fires on
    /// whichever node runs it. A parent cancels its unfinished children. A finished job is
    /// returned unchanged.
    pub async fn cancel_job(&self, id: Uuid) -> Result<Job, ManagerError> {
        let shared = &self.shared;
        let current = shared
            .store
            .get_job(id)
            .await?
            .ok_or_else(|| ManagerError::job_not_found(id))?;
        if current.status.is_terminal() {
            return Ok(current);
        }
        let changed = shared.store.request_cancel(id).await?;
        for j in changed.all() {
            if j.status == JobStatus::Running {
                shared.mark(j.id, StopReason::User);
                shared.publish(JobEventKind::CancelRequested, j.clone());
            } else if j.status.is_terminal() {
                shared.publish(JobEventKind::Finished, j.clone());
            }
        }
        Ok(changed.job)
    }

    /// Retries a failed or cancelled job (a batch re-runs only its failed/cancelled children).
    pub async fn retry_job(&self, id: Uuid) -> Result<Job, ManagerError> {
        let changed = self
            .shared
            .store
            .retry_job(id, self.shared.config.max_attempts)
            .await?;
        for j in changed.all() {
            self.shared.publish(JobEventKind::Requeued, j.clone());
            if j.claimable && j.status == JobStatus::Queued {
                self.shared.wake_for(j);
            }
        }
        Ok(changed.job)
    }

    /// Deletes a finished job and its children; `Conflict` while it is active.
    pub async fn delete_job(&self, id: Uuid) -> Result<Vec<Uuid>, ManagerError> {
        let last = self
            .shared
            .store
            .get_job(id)
            .await?
            .ok_or_else(|| ManagerError::job_not_found(id))?;
        let deleted = self.shared.store.delete_job(id).await?;
        self.shared.publish(JobEventKind::Deleted, last);
        Ok(deleted)
    }

    /// Waits until the job reaches a terminal state and returns it. A backend error (a
    /// connection the database dropped) is retried for about 4 s before it is returned.
    pub async fn wait_for(&self, id: Uuid) -> Result<Job, ManagerError> {
        self.shared.wait_for(id).await
    }

    /// Runs one pass of the reaper now (it also runs periodically while started): interrupts
    /// running jobs of other nodes whose lease expired. Returns the jobs it changed.
    pub async fn reap_expired(&self) -> Result<Vec<Job>, ManagerError> {
        Ok(self.shared.reap_expired().await?)
    }
}

impl Engine {
    /// Waits until the job reaches a terminal state and returns it, as the store has it.
    /// A backend error (a connection the database dropped) is retried for about 4 s before
    /// it is returned: waiting outlives a reconnect.
    pub(crate) async fn wait_for(&self, id: Uuid) -> Result<Job, ManagerError> {
        let mut rx = self.events.subscribe();
        let mut failures = 0u32;
        loop {
            let job = match self.store.get_job(id).await {
                Ok(job) => job.ok_or_else(|| ManagerError::job_not_found(id))?,
                Err(StoreError::Backend(e)) if failures < 8 => {
                    failures += 1;
                    tracing::warn!(job_id = %id, error = %e, "could not read the job; retrying");
                    tokio::time::sleep(Duration::from_millis(100) * failures).await;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            failures = 0;
            if job.status.is_terminal() {
                return Ok(job);
            }
            let deadline = tokio::time::sleep(Duration::from_millis(500));
            let mut deadline = pin!(deadline);
            loop {
                tokio::select! {
                    _ = &mut deadline => break,
                    ev = rx.recv() => match ev {
                        // An event only wakes the waiter; the store decides. A run's
                        // `Finished` is published after its outcome is written, so a waiter
                        // that polled that outcome, retried the job and waits again can still
                        // receive the old run's event: returning it would report a stale end.
                        Ok(ev) if ev.job.id == id && ev.job.status.is_terminal() => break,
                        Ok(_) => {}
                        Err(broadcast::error::RecvError::Lagged(_)) => break,
                        Err(broadcast::error::RecvError::Closed) => break,
                    }
                }
            }
        }
    }
}
