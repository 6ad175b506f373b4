//! The [`QueueManager`]: lanes, workers, leases, recovery, cancellation, shutdown.

use std::collections::{HashMap, HashSet};
use std::panic::AssertUnwindSafe;
use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use futures::FutureExt;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, broadcast};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::batch::{BatchHandler, BatchStrategy};
use crate::context::{BatchTracker, JobContext, ProgressChannel};
use crate::events::{JobEvent, JobEventKind};
use crate::handler::JobHandler;
use crate::job::{Fence, Job, JobError, JobStatus, NewJob, Outcome, lanes};
use crate::store::{DEFAULT_MAX_ATTEMPTS, JobStore, StoreError, StoreSignal};

/// What happens to a job interrupted by a restart, a shutdown or a lost node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InterruptPolicy {
    /// Back to `queued` while `attempts < max_attempts`, else `failed` / `Interrupted`.
    #[default]
    Retry,
    /// Always `failed` / `Interrupted` (the original in-process behaviour).
    Fail,
}

impl std::str::FromStr for InterruptPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "retry" => Ok(InterruptPolicy::Retry),
            "fail" => Ok(InterruptPolicy::Fail),
            other => Err(format!("expected 'retry' or 'fail', got '{other}'")),
        }
    }
}

/// Settings of a [`QueueManager`]. Every field has a sensible default.
///
/// ```
/// use std::time::Duration;
/// use jobs_core::{InterruptPolicy, ManagerConfig};
/// let cfg = ManagerConfig::default()
///     .node_id("node-a")
///     .lane("io", 8)
///     .interrupt_policy(InterruptPolicy::Fail)
///     .lease(Duration::from_secs(60));
/// assert_eq!(cfg.lane_permits("io"), Some(8));
/// assert_eq!(cfg.lane_permits("heavy"), Some(1));
/// ```
#[derive(Debug, Clone)]
pub struct ManagerConfig {
    /// This node's id; must be unique among nodes sharing a store and stable across restarts
    /// (jobs left `running` under this id are recovered at once on start).
    pub node_id: String,
    /// Lanes and their permits: `heavy` 1, `io` 4, `batch` 16 by default.
    pub lanes: Vec<(String, usize)>,
    /// What happens to interrupted jobs.
    pub interrupt_policy: InterruptPolicy,
    /// Default `max_attempts` of new jobs, and the attempts a retry grants.
    pub max_attempts: i32,
    /// Lease length (default 30 s).
    pub lease: Duration,
    /// Lease renewal interval (default 10 s).
    pub heartbeat: Duration,
    /// How often expired leases of other nodes are reaped (default 15 s).
    pub reaper_interval: Duration,
    /// Fallback poll when no wake-up arrives (default 5 s).
    pub poll_interval: Duration,
    /// How long `stop()` lets running jobs finish before cancelling them (default 10 s).
    pub grace_period: Duration,
    /// How long `stop()` waits for cancelled handlers before abandoning them (default 5 s).
    pub cancel_wait: Duration,
    /// Minimum interval between progress writes of one job (default 500 ms: ≤ 2/s).
    pub progress_interval: Duration,
    /// Capacity of the event broadcast channel.
    pub event_capacity: usize,
}

impl Default for ManagerConfig {
    fn default() -> Self {
        ManagerConfig {
            node_id: format!("node-{}", Uuid::new_v4().simple()),
            lanes: vec![
                (lanes::HEAVY.to_owned(), 1),
                (lanes::IO.to_owned(), 4),
                (lanes::BATCH.to_owned(), 16),
            ],
            interrupt_policy: InterruptPolicy::Retry,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            lease: Duration::from_secs(30),
            heartbeat: Duration::from_secs(10),
            reaper_interval: Duration::from_secs(15),
            poll_interval: Duration::from_secs(5),
            grace_period: Duration::from_secs(10),
            cancel_wait: Duration::from_secs(5),
            progress_interval: Duration::from_millis(500),
            event_capacity: 4096,
        }
    }
}

impl ManagerConfig {
    /// Sets the node id.
    pub fn node_id(mut self, id: impl Into<String>) -> Self {
        self.node_id = id.into();
        self
    }

    /// Sets (or adds) a lane with `permits` permits (at least 1).
    pub fn lane(mut self, name: impl Into<String>, permits: usize) -> Self {
        let name = name.into();
        let permits = permits.max(1);
        match self.lanes.iter_mut().find(|(n, _)| *n == name) {
            Some(l) => l.1 = permits,
            None => self.lanes.push((name, permits)),
        }
        self
    }

    /// The permits of a lane.
    pub fn lane_permits(&self, name: &str) -> Option<usize> {
        self.lanes.iter().find(|(n, _)| n == name).map(|l| l.1)
    }

    /// Sets the interrupt policy.
    pub fn interrupt_policy(mut self, p: InterruptPolicy) -> Self {
        self.interrupt_policy = p;
        self
    }

    /// Sets the default `max_attempts` (at least 1).
    pub fn max_attempts(mut self, n: i32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    /// Sets the lease, with the heartbeat at a third and the reaper at half of it.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self.heartbeat = lease / 3;
        self.reaper_interval = lease / 2;
        self
    }

    /// Sets the stop grace period.
    pub fn grace_period(mut self, d: Duration) -> Self {
        self.grace_period = d;
        self
    }

    /// Sets the fallback poll interval.
    pub fn poll_interval(mut self, d: Duration) -> Self {
        self.poll_interval = d;
        self
    }
}

/// Errors of the [`QueueManager`].
#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    /// `submit_job` before `start`.
    #[error("the queue manager is not started")]
    NotStarted,
    /// `start` while running.
    #[error("the queue manager is already started")]
    AlreadyStarted,
    /// No such job.
    #[error("job {0} not found")]
    NotFound(Uuid),
    /// The operation does not fit the job's state.
    #[error("{0}")]
    Conflict(String),
    /// Invalid input.
    #[error("{0}")]
    Invalid(String),
    /// The store failed.
    #[error(transparent)]
    Store(StoreError),
}

impl ManagerError {
    /// The stable error code.
    pub fn code(&self) -> &'static str {
        match self {
            ManagerError::NotStarted | ManagerError::AlreadyStarted => "ServerError",
            ManagerError::NotFound(_) => "NotFound",
            ManagerError::Conflict(_) => "Conflict",
            ManagerError::Invalid(_) => "ValidationError",
            ManagerError::Store(e) => e.code(),
        }
    }
}

impl From<StoreError> for ManagerError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(id) => ManagerError::NotFound(id),
            StoreError::Conflict(m) => ManagerError::Conflict(m),
            StoreError::Invalid(m) => ManagerError::Invalid(m),
            other => ManagerError::Store(other),
        }
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopReason {
    User,
    Shutdown,
    LeaseLost,
}

pub(crate) struct Lane {
    pub(crate) name: String,
    permits: usize,
    pub(crate) sem: Arc<Semaphore>,
    wake: Notify,
}

struct RunningEntry {
    fence: Fence,
    token: CancellationToken,
    reason: Option<StopReason>,
    parent_id: Option<Uuid>,
    max_attempts: i32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LifeState {
    New,
    Started,
    Stopping,
    Stopped,
}

struct Life {
    state: LifeState,
    shutdown: CancellationToken,
    heartbeat_stop: CancellationToken,
    heartbeat: Option<JoinHandle<()>>,
}

struct Registered {
    lane: String,
    handler: Arc<dyn JobHandler>,
}

pub(crate) struct Shared {
    pub(crate) store: Arc<dyn JobStore>,
    pub(crate) config: ManagerConfig,
    handlers: RwLock<HashMap<String, Registered>>,
    lanes: RwLock<HashMap<String, Arc<Lane>>>,
    running: Mutex<HashMap<Uuid, RunningEntry>>,
    job_done: Notify,
    pub(crate) events: broadcast::Sender<JobEvent>,
    life: Mutex<Life>,
    job_tasks: Mutex<JoinSet<()>>,
    bg_tasks: Mutex<JoinSet<()>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic payload".to_owned()
    }
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
    shared: Arc<Shared>,
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
        let lanes = config
            .lanes
            .iter()
            .map(|(name, permits)| (name.clone(), Arc::new(Lane::new(name, *permits))))
            .collect();
        QueueManager {
            shared: Arc::new(Shared {
                store,
                config,
                handlers: RwLock::new(HashMap::new()),
                lanes: RwLock::new(lanes),
                running: Mutex::new(HashMap::new()),
                job_done: Notify::new(),
                events,
                life: Mutex::new(Life {
                    state: LifeState::New,
                    shutdown: CancellationToken::new(),
                    heartbeat_stop: CancellationToken::new(),
                    heartbeat: None,
                }),
                job_tasks: Mutex::new(JoinSet::new()),
                bg_tasks: Mutex::new(JoinSet::new()),
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

    /// Registers a batch type whose parent runs its children with `strategy`. Parents run in
    /// the `batch` lane; each child takes a permit of its own lane.
    pub fn register_batch(&self, batch_type: &str, strategy: BatchStrategy) {
        self.register_handler(batch_type, lanes::BATCH, BatchHandler { strategy });
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
    /// - queued top-level jobs run again in FIFO order (`created_at`, then id);
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
            .ok_or(ManagerError::NotFound(id))?;
        if job.status == JobStatus::Queued && job.claimable {
            self.shared.wake(&job.lane);
        }
        Ok(())
    }

    /// Stores a new job (its lane and `max_attempts` filled from the registry and the config)
    /// and wakes the workers. Jobs enqueued before `start()` run once it is called.
    pub async fn enqueue(&self, job: NewJob) -> Result<Job, ManagerError> {
        let job = self.shared.prepare(job);
        let job = self.shared.store.insert_job(job).await?;
        self.shared.publish(JobEventKind::Created, job.clone());
        self.shared.wake(&job.lane);
        Ok(job)
    }

    /// Stores a batch parent and its children in one transaction and wakes the workers.
    pub async fn enqueue_batch(
        &self,
        parent: NewJob,
        children: Vec<NewJob>,
    ) -> Result<(Job, Vec<Job>), ManagerError> {
        let parent = self.shared.prepare(parent);
        let children = children
            .into_iter()
            .map(|c| self.shared.prepare(c))
            .collect();
        let (parent, children) = self.shared.store.insert_batch(parent, children).await?;
        self.shared.publish(JobEventKind::Created, parent.clone());
        for c in &children {
            self.shared.publish(JobEventKind::Created, c.clone());
        }
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
            .ok_or(ManagerError::NotFound(id))?;
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
                self.shared.wake(&j.lane);
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
            .ok_or(ManagerError::NotFound(id))?;
        let deleted = self.shared.store.delete_job(id).await?;
        self.shared.publish(JobEventKind::Deleted, last);
        Ok(deleted)
    }

    /// Waits until the job reaches a terminal state and returns it.
    pub async fn wait_for(&self, id: Uuid) -> Result<Job, ManagerError> {
        let mut rx = self.subscribe();
        loop {
            let job = self
                .shared
                .store
                .get_job(id)
                .await?
                .ok_or(ManagerError::NotFound(id))?;
            if job.status.is_terminal() {
                return Ok(job);
            }
            let deadline = tokio::time::sleep(Duration::from_millis(500));
            let mut deadline = pin!(deadline);
            loop {
                tokio::select! {
                    _ = &mut deadline => break,
                    ev = rx.recv() => match ev {
                        Ok(ev) if ev.job.id == id && ev.job.status.is_terminal() => return Ok(ev.job),
                        Ok(_) => {}
                        Err(broadcast::error::RecvError::Lagged(_)) => break,
                        Err(broadcast::error::RecvError::Closed) => break,
                    }
                }
            }
        }
    }

    /// Runs one pass of the reaper now (it also runs periodically while started): interrupts
    /// running jobs of other nodes whose lease expired. Returns the jobs it changed.
    pub async fn reap_expired(&self) -> Result<Vec<Job>, ManagerError> {
        Ok(self.shared.reap_expired().await?)
    }
}

impl Lane {
    fn new(name: &str, permits: usize) -> Self {
        Lane {
            name: name.to_owned(),
            permits: permits.max(1),
            sem: Arc::new(Semaphore::new(permits.max(1))),
            wake: Notify::new(),
        }
    }
}

impl Shared {
    /// Creates a lane with one permit if it does not exist; returns it when newly created.
    fn ensure_lane(&self, name: &str) -> Option<Arc<Lane>> {
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

    fn lane_for(&self, job_type: &str) -> String {
        self.handlers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(job_type)
            .map(|r| r.lane.clone())
            .unwrap_or_else(|| lanes::IO.to_owned())
    }

    fn handler_for(&self, job_type: &str) -> Option<Arc<dyn JobHandler>> {
        self.handlers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(job_type)
            .map(|r| r.handler.clone())
    }

    fn prepare(&self, mut job: NewJob) -> NewJob {
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

    fn wake_all(&self) {
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
        let _ = self.events.send(JobEvent { kind, job });
    }

    fn publish_after_interrupt(&self, job: Job) {
        if job.status == JobStatus::Queued {
            self.publish(JobEventKind::Requeued, job.clone());
            if job.claimable {
                self.wake(&job.lane);
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

    fn spawn_job(self: &Arc<Self>, job: Job, permit: OwnedSemaphorePermit) {
        let Some((fence, token)) = self.register_running(&job) else {
            tracing::error!(job_id = %job.id, "claimed job has no lease");
            return;
        };
        let shared = self.clone();
        let mut tasks = lock(&self.job_tasks);
        while tasks.try_join_next().is_some() {}
        tasks.spawn(async move {
            shared.execute(job, fence, token, permit, None).await;
        });
    }

    /// Runs a claimed, registered job to its end and writes the outcome (fenced).
    pub(crate) async fn execute(
        self: &Arc<Self>,
        job: Job,
        fence: Fence,
        token: CancellationToken,
        permit: OwnedSemaphorePermit,
        batch: Option<Arc<BatchTracker>>,
    ) -> Option<Job> {
        let job_id = job.id;
        self.publish(JobEventKind::Started, job.clone());
        let progress = Arc::new(ProgressChannel::new(
            job.clone(),
            self.events.clone(),
            batch.clone(),
        ));
        let ctx = JobContext {
            job_id,
            fence: fence.clone(),
            token,
            progress: progress.clone(),
            shared: self.clone(),
        };
        let handler = self.handler_for(&job.job_type);
        let job_type = job.job_type.clone();
        let total = job.total;
        let run = async move {
            match handler {
                Some(h) => h.run(job, ctx).await,
                None => Err(JobError::unknown_job_type(&job_type)),
            }
        };
        let run = AssertUnwindSafe(run).catch_unwind();
        let mut run = pin!(run);
        let writer = progress.writer(self, &fence, self.config.progress_interval);
        let mut writer = pin!(writer);
        let mut writer_done = false;
        let result = loop {
            tokio::select! {
                r = &mut run => break r,
                _ = &mut writer, if !writer_done => writer_done = true,
            }
        };
        // Let an in-flight progress write finish rather than dropping it mid-statement.
        progress.close();
        if !writer_done {
            writer.await;
        }
        let outcome = match result {
            Ok(Ok(r)) => Outcome::Succeeded(r),
            Ok(Err(e)) => Outcome::Failed(e),
            Err(panic) => Outcome::Failed(JobError::internal_msg(format!(
                "handler panicked: {}",
                panic_message(panic.as_ref())
            ))),
        };
        if let Outcome::Failed(e) = &outcome
            && let Some(src) = e.internal_source()
        {
            tracing::error!(job_id = %job_id, error = %src, "job failed with an unexpected error");
        }
        let entry = lock(&self.running).remove(&job_id);
        let reason = entry.as_ref().and_then(|e| e.reason);
        let max_attempts = entry
            .as_ref()
            .map_or(DEFAULT_MAX_ATTEMPTS, |e| e.max_attempts);
        let completed = progress.completed().unwrap_or(total);
        let final_job = match (reason, outcome) {
            (Some(StopReason::LeaseLost), _) => {
                tracing::warn!(job_id = %job_id, "lease lost; another node owns the job now");
                None
            }
            (Some(StopReason::Shutdown), Outcome::Failed(_)) => {
                let j = self.interrupt(&fence, max_attempts).await;
                if let Some(j) = &j {
                    self.publish_after_interrupt(j.clone());
                }
                j
            }
            (_, outcome) => {
                let res = self
                    .with_retries("store the job's outcome", job_id, || {
                        self.store.complete_job(&fence, outcome.clone(), completed)
                    })
                    .await;
                match res {
                    Some(Some(j)) => {
                        self.publish(JobEventKind::Finished, j.clone());
                        Some(j)
                    }
                    Some(None) => {
                        // Either the lease was lost, or an earlier try committed but its answer
                        // was lost with the connection: the store knows which.
                        match self.store.get_job(job_id).await {
                            Ok(Some(j)) if j.status.is_terminal() && j.lease_owner.is_none() => {
                                self.publish(JobEventKind::Finished, j.clone());
                                Some(j)
                            }
                            _ => {
                                tracing::warn!(job_id = %job_id, "completion rejected: the lease was lost");
                                None
                            }
                        }
                    }
                    None => None,
                }
            }
        };
        // A batch parent that ended (failed by an interruption, say) leaves no queued child
        // behind: those would never run.
        if progress.completed().is_some()
            && let Some(j) = final_job.as_ref().filter(|j| j.status.is_terminal())
        {
            self.fail_orphans_of(j.id).await;
        }
        if let Some(b) = progress.batch() {
            match &final_job {
                Some(j) if j.status.is_terminal() => b.child_finished(job_id),
                _ => b.child_dropped(job_id),
            }
        }
        drop(permit);
        self.job_done.notify_waiters();
        final_job
    }

    /// Applies the interrupt policy to a job through its fence.
    pub(crate) async fn interrupt(&self, fence: &Fence, max_attempts: i32) -> Option<Job> {
        let requeue =
            self.config.interrupt_policy == InterruptPolicy::Retry && fence.attempt < max_attempts;
        self.with_retries("interrupt the job", fence.job_id, || {
            self.store.interrupt_job(fence, requeue)
        })
        .await
        .flatten()
    }

    /// Runs a fenced store write, retrying backend errors (a dropped connection, a failover)
    /// for up to ~15 s. Fenced writes are safe to repeat: a repeat after a lost commit
    /// answers "fence lost" and changes nothing. `None` when every try failed.
    async fn with_retries<T, F, Fut>(&self, what: &str, job_id: Uuid, mut op: F) -> Option<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, StoreError>>,
    {
        let mut delay = Duration::from_millis(50);
        for attempt in 1..=9 {
            match op().await {
                Ok(v) => return Some(v),
                Err(StoreError::Backend(e)) if attempt < 9 => {
                    tracing::warn!(job_id = %job_id, error = %e, attempt, "could not {what}; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(4));
                }
                Err(e) => {
                    tracing::error!(job_id = %job_id, error = %e, "could not {what}");
                    return None;
                }
            }
        }
        None
    }

    async fn wait_idle(&self, deadline: tokio::time::Instant) {
        loop {
            let notified = self.job_done.notified();
            if lock(&self.running).is_empty() {
                return;
            }
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep_until(deadline) => return,
            }
        }
    }

    async fn recover(self: &Arc<Self>) -> Result<RecoveryReport, StoreError> {
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
    async fn fail_orphans_of(&self, parent_id: Uuid) {
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
    async fn sweep_orphans(&self) -> Result<Vec<Uuid>, StoreError> {
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

    async fn reap_expired(&self) -> Result<Vec<Job>, StoreError> {
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

    async fn lane_worker(self: Arc<Self>, lane: Arc<Lane>, shutdown: CancellationToken) {
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

    async fn heartbeat(self: Arc<Self>, stop: CancellationToken) {
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

    async fn reaper(self: Arc<Self>, shutdown: CancellationToken) {
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

    async fn signal_listener(
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
