//! [`MemoryStore`]: an in-process [`JobStore`] for tests, benchmarks and embedders that do not
//! need durability.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::broadcast;
use uuid::Uuid;

use crate::job::{BatchResult, Fence, Job, JobError, JobFilter, JobStatus, NewJob, Outcome, lanes};
use crate::store::{
    Changed, DEFAULT_MAX_ATTEMPTS, JobStore, LeaseStatus, ProgressUpdate, StoreError, StoreSignal,
};

/// Called with the job before and after every change made by a [`MemoryStore`]; used by tests
/// to check transition invariants.
pub type TransitionHook = Arc<dyn Fn(Option<&Job>, Option<&Job>) + Send + Sync>;

/// An in-memory [`JobStore`]. Cheap to create; every operation takes one short lock.
///
/// Its clock follows tokio's clock, so tests may run with paused time.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use jobs_core::{JobStore, MemoryStore, NewJob};
/// let store = MemoryStore::new();
/// let job = store.insert_job(NewJob::new("noop", serde_json::Value::Null)).await.unwrap();
/// assert_eq!(store.get_job(job.id).await.unwrap().unwrap().status, jobs_core::JobStatus::Queued);
/// # }
/// ```
pub struct MemoryStore {
    state: Mutex<State>,
    signals: broadcast::Sender<StoreSignal>,
    base_utc: DateTime<Utc>,
    base_instant: tokio::time::Instant,
    hook: Option<TransitionHook>,
}

#[derive(Default)]
struct State {
    jobs: HashMap<Uuid, Job>,
    /// Claimable queued jobs per lane, FIFO by (created_at, id).
    queues: HashMap<String, BTreeSet<(DateTime<Utc>, Uuid)>>,
    /// Children of each parent in submit order.
    children: HashMap<Uuid, Vec<Uuid>>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore").finish_non_exhaustive()
    }
}

fn claimable_queued(job: &Job) -> bool {
    job.status == JobStatus::Queued && job.claimable
}

fn fence_matches(job: &Job, fence: &Fence) -> bool {
    job.status == JobStatus::Running
        && job.lease_owner.as_deref() == Some(fence.owner.as_str())
        && job.attempts == fence.attempt
}

fn reset_for_retry(job: &mut Job, extra_attempts: i32) {
    job.status = JobStatus::Queued;
    job.result = None;
    job.error = None;
    job.error_code = None;
    job.error_details = None;
    job.progress = 0.0;
    job.stage = None;
    job.finished_at = None;
    job.lease_owner = None;
    job.lease_expires_at = None;
    job.cancel_requested = false;
    job.max_attempts = job.attempts + extra_attempts.max(1);
}

fn lease_delta(lease: Duration) -> chrono::TimeDelta {
    chrono::TimeDelta::from_std(lease).unwrap_or(chrono::TimeDelta::MAX)
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        let (signals, _) = broadcast::channel(1024);
        MemoryStore {
            state: Mutex::new(State::default()),
            signals,
            base_utc: Utc::now(),
            base_instant: tokio::time::Instant::now(),
            hook: None,
        }
    }

    /// An empty store that calls `hook` on every change.
    pub fn with_transition_hook(hook: TransitionHook) -> Self {
        MemoryStore {
            hook: Some(hook),
            ..Self::new()
        }
    }

    /// The store's clock.
    pub fn now(&self) -> DateTime<Utc> {
        let elapsed = tokio::time::Instant::now().saturating_duration_since(self.base_instant);
        self.base_utc + lease_delta(elapsed)
    }

    /// Number of jobs held.
    pub fn len(&self) -> usize {
        self.lock().jobs.len()
    }

    /// `true` when no job is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn signal(&self, s: StoreSignal) {
        // No receiver is fine.
        let _ = self.signals.send(s);
    }

    fn new_job(&self, nj: NewJob, now: DateTime<Utc>) -> Job {
        Job {
            id: nj.id,
            job_type: nj.job_type,
            lane: nj.lane.unwrap_or_else(|| lanes::IO.to_owned()),
            status: JobStatus::Queued,
            profile_id: nj.profile_id,
            file_id: nj.file_id,
            parent_id: None,
            claimable: true,
            params: nj.params,
            result: None,
            error: None,
            error_code: None,
            error_details: None,
            progress: 0.0,
            stage: None,
            total: 1,
            completed: 0,
            attempts: 0,
            max_attempts: nj.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS).max(1),
            lease_owner: None,
            lease_expires_at: None,
            cancel_requested: false,
            created_at: now,
            started_at: None,
            finished_at: None,
            updated_at: now,
        }
    }
}

impl State {
    fn add(&mut self, job: Job, hook: &Option<TransitionHook>) {
        if claimable_queued(&job) {
            self.queues
                .entry(job.lane.clone())
                .or_default()
                .insert((job.created_at, job.id));
        }
        if let Some(h) = hook {
            h(None, Some(&job));
        }
        self.jobs.insert(job.id, job);
    }

    /// Applies `f` to a job, keeping the queue index and the hook in step.
    fn mutate(
        &mut self,
        id: Uuid,
        now: DateTime<Utc>,
        hook: &Option<TransitionHook>,
        f: impl FnOnce(&mut Job),
    ) -> Option<Job> {
        let job = self.jobs.get_mut(&id)?;
        let before = job.clone();
        f(job);
        job.updated_at = now;
        let after = job.clone();
        if claimable_queued(&before)
            && let Some(q) = self.queues.get_mut(&before.lane)
        {
            q.remove(&(before.created_at, before.id));
        }
        if claimable_queued(&after) {
            self.queues
                .entry(after.lane.clone())
                .or_default()
                .insert((after.created_at, after.id));
        }
        if let Some(h) = hook {
            h(Some(&before), Some(&after));
        }
        Some(after)
    }

    fn children_of(&self, parent: Uuid) -> Vec<Job> {
        self.children
            .get(&parent)
            .map(|ids| {
                ids.iter()
                    .filter_map(|id| self.jobs.get(id).cloned())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn claim(
        &mut self,
        id: Uuid,
        owner: &str,
        lease: Duration,
        now: DateTime<Utc>,
        hook: &Option<TransitionHook>,
    ) -> Option<Job> {
        self.mutate(id, now, hook, |j| {
            j.status = JobStatus::Running;
            j.attempts += 1;
            j.lease_owner = Some(owner.to_owned());
            j.lease_expires_at = Some(now + lease_delta(lease));
            j.started_at = Some(now);
            j.cancel_requested = false;
        })
    }
}

#[async_trait]
impl JobStore for MemoryStore {
    async fn insert_job(&self, job: NewJob) -> Result<Job, StoreError> {
        let now = self.now();
        let job = self.new_job(job, now);
        let mut st = self.lock();
        if st.jobs.contains_key(&job.id) {
            return Err(StoreError::Conflict(format!(
                "job {} already exists",
                job.id
            )));
        }
        let lane = job.lane.clone();
        st.add(job.clone(), &self.hook);
        drop(st);
        self.signal(StoreSignal::JobsAvailable { lane });
        Ok(job)
    }

    async fn insert_batch(
        &self,
        parent: NewJob,
        children: Vec<NewJob>,
    ) -> Result<(Job, Vec<Job>), StoreError> {
        let now = self.now();
        let mut parent = self.new_job(parent, now);
        parent.total = i32::try_from(children.len())
            .map_err(|_| StoreError::Invalid("too many children".into()))?;
        let kids: Vec<Job> = children
            .into_iter()
            .map(|c| {
                let mut j = self.new_job(c, now);
                j.parent_id = Some(parent.id);
                j.claimable = false;
                j
            })
            .collect();
        let mut st = self.lock();
        let mut seen = std::collections::HashSet::new();
        for id in std::iter::once(parent.id).chain(kids.iter().map(|k| k.id)) {
            if st.jobs.contains_key(&id) || !seen.insert(id) {
                return Err(StoreError::Conflict(format!("job {id} already exists")));
            }
        }
        st.children
            .insert(parent.id, kids.iter().map(|k| k.id).collect());
        let lane = parent.lane.clone();
        st.add(parent.clone(), &self.hook);
        for k in &kids {
            st.add(k.clone(), &self.hook);
        }
        drop(st);
        self.signal(StoreSignal::JobsAvailable { lane });
        Ok((parent, kids))
    }

    async fn get_job(&self, id: Uuid) -> Result<Option<Job>, StoreError> {
        Ok(self.lock().jobs.get(&id).cloned())
    }

    async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<Job>, StoreError> {
        let st = self.lock();
        let cursor = match filter.before {
            Some(b) => {
                let j = st
                    .jobs
                    .get(&b)
                    .ok_or_else(|| StoreError::Invalid(format!("unknown cursor job {b}")))?;
                Some((j.created_at, j.id))
            }
            None => None,
        };
        let mut out: Vec<Job> = st
            .jobs
            .values()
            .filter(|j| j.parent_id.is_none())
            .filter(|j| {
                filter.profile_id.is_none()
                    || j.profile_id.as_deref() == filter.profile_id.as_deref()
            })
            .filter(|j| filter.statuses.is_empty() || filter.statuses.contains(&j.status))
            .filter(|j| filter.job_type.as_deref().is_none_or(|t| j.job_type == t))
            .filter(|j| cursor.is_none_or(|c| (j.created_at, j.id) < c))
            .cloned()
            .collect();
        out.sort_by_key(|j| std::cmp::Reverse((j.created_at, j.id)));
        out.truncate(filter.effective_limit());
        Ok(out)
    }

    async fn list_children(&self, parent_id: Uuid) -> Result<Vec<Job>, StoreError> {
        Ok(self.lock().children_of(parent_id))
    }

    async fn list_unfinished(&self) -> Result<Vec<Job>, StoreError> {
        let st = self.lock();
        let mut out: Vec<Job> = st
            .jobs
            .values()
            .filter(|j| j.status.is_active())
            .cloned()
            .collect();
        out.sort_by_key(|j| (j.created_at, j.id));
        Ok(out)
    }

    async fn list_expired_leases(&self) -> Result<Vec<Job>, StoreError> {
        let now = self.now();
        let st = self.lock();
        let mut out: Vec<Job> = st
            .jobs
            .values()
            .filter(|j| {
                j.status == JobStatus::Running && j.lease_expires_at.is_none_or(|t| t < now)
            })
            .cloned()
            .collect();
        out.sort_by_key(|j| (j.created_at, j.id));
        Ok(out)
    }

    async fn claim_next(
        &self,
        lane: &str,
        owner: &str,
        lease: Duration,
    ) -> Result<Option<Job>, StoreError> {
        let now = self.now();
        let mut st = self.lock();
        let Some(&(_, id)) = st.queues.get(lane).and_then(|q| q.first()) else {
            return Ok(None);
        };
        Ok(st.claim(id, owner, lease, now, &self.hook))
    }

    async fn claim_job(
        &self,
        id: Uuid,
        owner: &str,
        lease: Duration,
    ) -> Result<Option<Job>, StoreError> {
        let now = self.now();
        let mut st = self.lock();
        match st.jobs.get(&id) {
            Some(j) if j.status == JobStatus::Queued => {
                Ok(st.claim(id, owner, lease, now, &self.hook))
            }
            _ => Ok(None),
        }
    }

    async fn renew_leases(
        &self,
        fences: &[Fence],
        lease: Duration,
    ) -> Result<Vec<LeaseStatus>, StoreError> {
        let now = self.now();
        let mut st = self.lock();
        let mut out = Vec::with_capacity(fences.len());
        for f in fences {
            let held = st.jobs.get(&f.job_id).is_some_and(|j| fence_matches(j, f));
            let mut cancel_requested = false;
            if held && let Some(j) = st.jobs.get_mut(&f.job_id) {
                j.lease_expires_at = Some(now + lease_delta(lease));
                cancel_requested = j.cancel_requested;
            }
            out.push(LeaseStatus {
                job_id: f.job_id,
                held,
                cancel_requested,
            });
        }
        Ok(out)
    }

    async fn update_progress(
        &self,
        fence: &Fence,
        update: &ProgressUpdate,
    ) -> Result<bool, StoreError> {
        let now = self.now();
        let mut st = self.lock();
        if !st
            .jobs
            .get(&fence.job_id)
            .is_some_and(|j| fence_matches(j, fence))
        {
            return Ok(false);
        }
        st.mutate(fence.job_id, now, &self.hook, |j| {
            j.progress = update.progress.clamp(0.0, 1.0);
            j.stage.clone_from(&update.stage);
            if let Some(c) = update.completed {
                j.completed = c;
            }
        });
        Ok(true)
    }

    async fn complete_job(
        &self,
        fence: &Fence,
        outcome: Outcome,
        completed: i32,
    ) -> Result<Option<Job>, StoreError> {
        let now = self.now();
        let mut st = self.lock();
        if !st
            .jobs
            .get(&fence.job_id)
            .is_some_and(|j| fence_matches(j, fence))
        {
            return Ok(None);
        }
        Ok(st.mutate(fence.job_id, now, &self.hook, |j| {
            j.lease_owner = None;
            j.lease_expires_at = None;
            j.finished_at = Some(now);
            j.completed = completed;
            match outcome {
                Outcome::Succeeded(r) => {
                    j.result = Some(r.0);
                    if j.cancel_requested {
                        j.status = JobStatus::Cancelled;
                    } else {
                        j.status = JobStatus::Succeeded;
                        j.progress = 1.0;
                    }
                }
                Outcome::Failed(e) => {
                    j.result = e.result().cloned();
                    if j.cancel_requested {
                        j.status = JobStatus::Cancelled;
                    } else {
                        j.status = JobStatus::Failed;
                        j.error = Some(e.message().to_owned());
                        j.error_code = Some(e.code().to_owned());
                        j.error_details = e.details().cloned();
                    }
                }
            }
        }))
    }

    async fn interrupt_job(&self, fence: &Fence, requeue: bool) -> Result<Option<Job>, StoreError> {
        let now = self.now();
        let mut st = self.lock();
        if !st
            .jobs
            .get(&fence.job_id)
            .is_some_and(|j| fence_matches(j, fence))
        {
            return Ok(None);
        }
        let err = JobError::interrupted();
        let job = st.mutate(fence.job_id, now, &self.hook, |j| {
            j.lease_owner = None;
            j.lease_expires_at = None;
            if j.cancel_requested {
                j.status = JobStatus::Cancelled;
                j.finished_at = Some(now);
            } else if requeue {
                j.status = JobStatus::Queued;
                j.progress = 0.0;
                j.stage = None;
            } else {
                j.status = JobStatus::Failed;
                j.finished_at = Some(now);
                j.error = Some(err.message().to_owned());
                j.error_code = Some(err.code().to_owned());
                j.error_details = None;
            }
        });
        drop(st);
        if let Some(j) = &job
            && claimable_queued(j)
        {
            self.signal(StoreSignal::JobsAvailable {
                lane: j.lane.clone(),
            });
        }
        Ok(job)
    }

    async fn fail_queued(&self, id: Uuid, error: &JobError) -> Result<Option<Job>, StoreError> {
        let now = self.now();
        let mut st = self.lock();
        if st
            .jobs
            .get(&id)
            .is_none_or(|j| j.status != JobStatus::Queued)
        {
            return Ok(None);
        }
        Ok(st.mutate(id, now, &self.hook, |j| {
            j.status = JobStatus::Failed;
            j.finished_at = Some(now);
            j.completed = j.total;
            j.error = Some(error.message().to_owned());
            j.error_code = Some(error.code().to_owned());
            j.error_details = error.details().cloned();
        }))
    }

    async fn request_cancel(&self, id: Uuid) -> Result<Changed, StoreError> {
        let now = self.now();
        let mut st = self.lock();
        let target = st.jobs.get(&id).cloned().ok_or(StoreError::NotFound(id))?;
        if target.status.is_terminal() {
            return Ok(Changed {
                job: target,
                related: vec![],
            });
        }
        let mut running = Vec::new();
        let mut related = Vec::new();
        let child_ids: Vec<Uuid> = st.children.get(&id).cloned().unwrap_or_default();
        for cid in child_ids {
            let Some(c) = st.jobs.get(&cid) else { continue };
            match c.status {
                JobStatus::Queued => {
                    if let Some(j) = st.mutate(cid, now, &self.hook, |j| {
                        j.status = JobStatus::Cancelled;
                        j.cancel_requested = true;
                        j.finished_at = Some(now);
                        j.completed = j.total;
                    }) {
                        related.push(j);
                    }
                }
                JobStatus::Running if !c.cancel_requested => {
                    if let Some(j) = st.mutate(cid, now, &self.hook, |j| j.cancel_requested = true)
                    {
                        running.push(j.id);
                        related.push(j);
                    }
                }
                _ => {}
            }
        }
        let kids = st.children_of(id);
        let job = st
            .mutate(id, now, &self.hook, |j| {
                j.cancel_requested = true;
                if j.status == JobStatus::Queued {
                    j.status = JobStatus::Cancelled;
                    j.finished_at = Some(now);
                    if kids.is_empty() {
                        j.completed = j.total;
                    } else {
                        let r = BatchResult::from_children(&kids);
                        j.completed =
                            i32::try_from(r.succeeded + r.failed + r.cancelled).unwrap_or(i32::MAX);
                        j.result = serde_json::to_value(&r).ok();
                    }
                }
            })
            .ok_or(StoreError::NotFound(id))?;
        if job.status == JobStatus::Running {
            running.push(job.id);
        }
        drop(st);
        for job_id in running {
            self.signal(StoreSignal::CancelRequested { job_id });
        }
        Ok(Changed { job, related })
    }

    async fn retry_job(&self, id: Uuid, extra_attempts: i32) -> Result<Changed, StoreError> {
        let now = self.now();
        let mut st = self.lock();
        let target = st.jobs.get(&id).cloned().ok_or(StoreError::NotFound(id))?;
        if !matches!(target.status, JobStatus::Failed | JobStatus::Cancelled) {
            return Err(StoreError::Conflict(format!(
                "job is {}; only failed or cancelled jobs can be retried",
                target.status
            )));
        }
        let mut related = Vec::new();
        let job;
        if let Some(pid) = target.parent_id {
            let parent = st.jobs.get(&pid).cloned();
            if parent.as_ref().is_some_and(|p| p.status.is_active()) {
                return Err(StoreError::Conflict(
                    "the batch of this job is still active".into(),
                ));
            }
            job = st
                .mutate(id, now, &self.hook, |j| reset_for_retry(j, extra_attempts))
                .ok_or(StoreError::NotFound(id))?;
            if parent.is_some() {
                let done = st
                    .children_of(pid)
                    .iter()
                    .filter(|c| c.status.is_terminal())
                    .count();
                if let Some(p) = st.mutate(pid, now, &self.hook, |p| {
                    reset_for_retry(p, extra_attempts);
                    p.completed = i32::try_from(done).unwrap_or(i32::MAX);
                }) {
                    related.push(p);
                }
            }
        } else {
            let kids = st.children_of(id);
            let mut done = 0usize;
            for k in &kids {
                if matches!(k.status, JobStatus::Failed | JobStatus::Cancelled) {
                    if let Some(j) = st.mutate(k.id, now, &self.hook, |j| {
                        reset_for_retry(j, extra_attempts)
                    }) {
                        related.push(j);
                    }
                } else if k.status.is_terminal() {
                    done += 1;
                }
            }
            job = st
                .mutate(id, now, &self.hook, |j| {
                    reset_for_retry(j, extra_attempts);
                    if !kids.is_empty() {
                        j.completed = i32::try_from(done).unwrap_or(i32::MAX);
                    } else {
                        j.completed = 0;
                    }
                })
                .ok_or(StoreError::NotFound(id))?;
        }
        drop(st);
        for j in std::iter::once(&job).chain(related.iter()) {
            if claimable_queued(j) {
                self.signal(StoreSignal::JobsAvailable {
                    lane: j.lane.clone(),
                });
            }
        }
        Ok(Changed { job, related })
    }

    async fn release_children(&self, parent_id: Uuid) -> Result<u64, StoreError> {
        let now = self.now();
        let mut st = self.lock();
        let ids: Vec<Uuid> = st.children.get(&parent_id).cloned().unwrap_or_default();
        let mut n = 0;
        let mut lanes_touched = BTreeSet::new();
        for id in ids {
            if st
                .jobs
                .get(&id)
                .is_some_and(|j| j.status == JobStatus::Queued && !j.claimable)
                && let Some(j) = st.mutate(id, now, &self.hook, |j| j.claimable = true)
            {
                lanes_touched.insert(j.lane);
                n += 1;
            }
        }
        drop(st);
        for lane in lanes_touched {
            self.signal(StoreSignal::JobsAvailable { lane });
        }
        Ok(n)
    }

    async fn delete_job(&self, id: Uuid) -> Result<Vec<Uuid>, StoreError> {
        let mut st = self.lock();
        let job = st.jobs.get(&id).cloned().ok_or(StoreError::NotFound(id))?;
        let kids = st.children_of(id);
        if job.status.is_active() || kids.iter().any(|k| k.status.is_active()) {
            return Err(StoreError::Conflict(format!(
                "job {id} is {}; cancel it before deleting it",
                job.status
            )));
        }
        let mut deleted = vec![id];
        deleted.extend(kids.iter().map(|k| k.id));
        for d in &deleted {
            if let Some(j) = st.jobs.remove(d)
                && let Some(h) = &self.hook
            {
                h(Some(&j), None);
            }
        }
        st.children.remove(&id);
        if let Some(pid) = job.parent_id
            && let Some(list) = st.children.get_mut(&pid)
        {
            list.retain(|c| *c != id);
        }
        Ok(deleted)
    }

    fn subscribe_signals(&self) -> Option<broadcast::Receiver<StoreSignal>> {
        Some(self.signals.subscribe())
    }
}
