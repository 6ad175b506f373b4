//! [`MemoryStore`]: an in-process [`JobStore`] for tests, benchmarks and embedders that do not
//! need durability.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::broadcast;
use uuid::Uuid;

use crate::job::{Fence, Job, JobError, JobFilter, JobStatus, NewJob, Outcome, WebhookAttempt};
use crate::rules;
use crate::store::{
    Changed, Completion, JobStore, LeaseStatus, ProgressUpdate, StoreError, StoreSignal,
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
    /// Claimable queued jobs per lane: highest priority first, then by (run_at, id).
    queues: HashMap<String, BTreeSet<QueueKey>>,
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

/// Claim order: `Reverse(priority)` first, so the highest priority sorts first.
type QueueKey = (std::cmp::Reverse<i16>, DateTime<Utc>, Uuid);

fn queue_key(job: &Job) -> QueueKey {
    rules::claim_key(job)
}

fn claimable_queued(job: &Job) -> bool {
    job.status == JobStatus::Queued && job.claimable
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
        rules::lease_until(self.base_utc, elapsed)
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

    fn signal_available(&self, jobs: &[&Job]) {
        let lanes: BTreeSet<&str> = jobs
            .iter()
            .filter(|j| claimable_queued(j))
            .map(|j| j.lane.as_str())
            .collect();
        for lane in lanes {
            self.signal(StoreSignal::JobsAvailable {
                lane: lane.to_owned(),
            });
        }
    }
}

impl State {
    /// Stores a job (new or changed), keeping the queue index and the hook in step.
    fn put(&mut self, job: Job, hook: &Option<TransitionHook>) {
        let before = self.jobs.get(&job.id).cloned();
        if let Some(b) = &before
            && claimable_queued(b)
            && let Some(q) = self.queues.get_mut(&b.lane)
        {
            q.remove(&queue_key(b));
        }
        if claimable_queued(&job) {
            self.queues
                .entry(job.lane.clone())
                .or_default()
                .insert(queue_key(&job));
        }
        if let Some(h) = hook {
            h(before.as_ref(), Some(&job));
        }
        self.jobs.insert(job.id, job);
    }

    fn get(&self, id: Uuid) -> Option<Job> {
        self.jobs.get(&id).cloned()
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

    /// The first due job of `lane` in claim order: within each priority the keys are in
    /// `run_at` order, so only the not-yet-due tail of each priority is skipped.
    fn next_due(&self, lane: &str, now: DateTime<Utc>) -> Option<Uuid> {
        let q = self.queues.get(lane)?;
        let mut skip: Option<i16> = None;
        for &(std::cmp::Reverse(p), at, id) in q {
            if skip == Some(p) {
                continue;
            }
            if at <= now {
                return Some(id);
            }
            skip = Some(p);
        }
        None
    }

    /// The active job holding `key`, if any.
    fn active_with_key(&self, key: &str) -> Option<Job> {
        self.jobs
            .values()
            .find(|j| j.status.is_active() && j.unique_key.as_deref() == Some(key))
            .cloned()
    }

    fn remove(&mut self, id: Uuid, hook: &Option<TransitionHook>) {
        if let Some(j) = self.jobs.remove(&id) {
            if claimable_queued(&j)
                && let Some(q) = self.queues.get_mut(&j.lane)
            {
                q.remove(&queue_key(&j));
            }
            if let Some(h) = hook {
                h(Some(&j), None);
            }
        }
    }

    /// The job if `fence` still holds.
    fn fenced(&self, fence: &Fence) -> Option<Job> {
        self.jobs
            .get(&fence.job_id)
            .filter(|j| rules::fence_matches(j, fence))
            .cloned()
    }
}

#[async_trait]
impl JobStore for MemoryStore {
    async fn insert_job(&self, job: NewJob) -> Result<Job, StoreError> {
        let job = rules::new_job(job, self.now());
        let mut st = self.lock();
        if let Some(existing) = job
            .unique_key
            .as_deref()
            .and_then(|k| st.active_with_key(k))
        {
            return Ok(existing);
        }
        if st.jobs.contains_key(&job.id) {
            return Err(StoreError::Conflict(format!(
                "job {} already exists",
                job.id
            )));
        }
        st.put(job.clone(), &self.hook);
        drop(st);
        self.signal_available(&[&job]);
        Ok(job)
    }

    async fn insert_jobs(&self, jobs: Vec<NewJob>) -> Result<Vec<Job>, StoreError> {
        let now = self.now();
        if jobs.iter().any(|j| j.unique_key.is_some()) {
            return Err(StoreError::unique_in_bulk());
        }
        let jobs: Vec<Job> = jobs.into_iter().map(|j| rules::new_job(j, now)).collect();
        let mut st = self.lock();
        let mut seen = HashSet::new();
        for j in &jobs {
            if st.jobs.contains_key(&j.id) || !seen.insert(j.id) {
                return Err(StoreError::Conflict(format!("job {} already exists", j.id)));
            }
        }
        for j in &jobs {
            st.put(j.clone(), &self.hook);
        }
        drop(st);
        self.signal_available(&jobs.iter().collect::<Vec<_>>());
        Ok(jobs)
    }

    async fn insert_batch(
        &self,
        parent: NewJob,
        children: Vec<NewJob>,
    ) -> Result<(Job, Vec<Job>), StoreError> {
        let (parent, kids) = rules::new_batch(parent, children, self.now())?;
        let mut st = self.lock();
        if let Some(existing) = parent
            .unique_key
            .as_deref()
            .and_then(|k| st.active_with_key(k))
        {
            let kids = st.children_of(existing.id);
            return Ok((existing, kids));
        }
        let mut seen = HashSet::new();
        for id in std::iter::once(parent.id).chain(kids.iter().map(|k| k.id)) {
            if st.jobs.contains_key(&id) || !seen.insert(id) {
                return Err(StoreError::Conflict(format!("job {id} already exists")));
            }
        }
        st.children
            .insert(parent.id, kids.iter().map(|k| k.id).collect());
        st.put(parent.clone(), &self.hook);
        for k in &kids {
            st.put(k.clone(), &self.hook);
        }
        drop(st);
        self.signal_available(&[&parent]);
        Ok((parent, kids))
    }

    async fn get_job(&self, id: Uuid) -> Result<Option<Job>, StoreError> {
        Ok(self.lock().get(id))
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
        let Some(id) = st.next_due(lane, now) else {
            return Ok(None);
        };
        let Some(mut job) = st.get(id) else {
            return Ok(None);
        };
        rules::claim(&mut job, owner, lease, now);
        st.put(job.clone(), &self.hook);
        Ok(Some(job))
    }

    async fn claim_job(
        &self,
        id: Uuid,
        owner: &str,
        lease: Duration,
    ) -> Result<Option<Job>, StoreError> {
        let now = self.now();
        let mut st = self.lock();
        let Some(mut job) = st.get(id).filter(|j| j.status == JobStatus::Queued) else {
            return Ok(None);
        };
        rules::claim(&mut job, owner, lease, now);
        st.put(job.clone(), &self.hook);
        Ok(Some(job))
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
            let held = st.fenced(f);
            let cancel_requested = held.as_ref().is_some_and(|j| j.cancel_requested);
            if let Some(mut j) = held.clone() {
                j.lease_expires_at = Some(rules::lease_until(now, lease));
                st.put(j, &self.hook);
            }
            out.push(LeaseStatus {
                job_id: f.job_id,
                held: held.is_some(),
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
        let Some(mut j) = st.fenced(fence) else {
            return Ok(false);
        };
        j.progress = update.progress.clamp(0.0, 1.0);
        j.stage.clone_from(&update.stage);
        if let Some(c) = update.completed {
            j.completed = c;
        }
        j.updated_at = now;
        st.put(j, &self.hook);
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
        let Some(mut j) = st.fenced(fence) else {
            return Ok(None);
        };
        rules::complete(&mut j, outcome, completed, now);
        st.put(j.clone(), &self.hook);
        drop(st);
        self.signal_available(&[&j]);
        Ok(Some(j))
    }

    async fn complete_jobs(&self, items: Vec<Completion>) -> Result<Vec<Option<Job>>, StoreError> {
        let now = self.now();
        let mut st = self.lock();
        let mut out = Vec::with_capacity(items.len());
        for c in items {
            let done = st.fenced(&c.fence).map(|mut j| {
                rules::complete(&mut j, c.outcome, c.completed, now);
                st.put(j.clone(), &self.hook);
                j
            });
            out.push(done);
        }
        drop(st);
        self.signal_available(&out.iter().flatten().collect::<Vec<_>>());
        Ok(out)
    }

    async fn interrupt_job(&self, fence: &Fence, requeue: bool) -> Result<Option<Job>, StoreError> {
        let now = self.now();
        let mut st = self.lock();
        let Some(mut j) = st.fenced(fence) else {
            return Ok(None);
        };
        rules::interrupt(&mut j, requeue, now);
        st.put(j.clone(), &self.hook);
        drop(st);
        self.signal_available(&[&j]);
        Ok(Some(j))
    }

    async fn fail_queued(&self, id: Uuid, error: &JobError) -> Result<Option<Job>, StoreError> {
        let now = self.now();
        let mut st = self.lock();
        let Some(mut j) = st.get(id).filter(|j| j.status == JobStatus::Queued) else {
            return Ok(None);
        };
        if j.parent_id
            .and_then(|p| st.get(p))
            .is_some_and(|p| p.status.is_active())
        {
            return Ok(None);
        }
        rules::fail_queued(&mut j, error, now);
        st.put(j.clone(), &self.hook);
        Ok(Some(j))
    }

    async fn request_cancel(&self, id: Uuid) -> Result<Changed, StoreError> {
        let now = self.now();
        let mut st = self.lock();
        let mut target = st.get(id).ok_or_else(|| StoreError::job_not_found(id))?;
        if target.status.is_terminal() {
            return Ok(Changed {
                job: target,
                related: vec![],
            });
        }
        let mut kids = st.children_of(id);
        let changed = rules::cancel(&mut target, &mut kids, now);
        let related: Vec<Job> = changed.into_iter().map(|i| kids[i].clone()).collect();
        for j in &related {
            st.put(j.clone(), &self.hook);
        }
        st.put(target.clone(), &self.hook);
        drop(st);
        for j in std::iter::once(&target).chain(related.iter()) {
            if j.status == JobStatus::Running {
                self.signal(StoreSignal::CancelRequested { job_id: j.id });
            }
        }
        Ok(Changed {
            job: target,
            related,
        })
    }

    async fn retry_job(&self, id: Uuid, extra_attempts: i32) -> Result<Changed, StoreError> {
        let now = self.now();
        let mut st = self.lock();
        let mut target = st.get(id).ok_or_else(|| StoreError::job_not_found(id))?;
        let mut related = Vec::new();
        match target.parent_id.and_then(|p| st.get(p)) {
            Some(mut parent) => {
                let mut siblings = st.children_of(parent.id);
                rules::retry(
                    &mut target,
                    Some(&mut parent),
                    &mut siblings,
                    extra_attempts,
                    now,
                )?;
                related.push(parent);
            }
            None => {
                let mut kids = st.children_of(id);
                let plan = rules::retry(&mut target, None, &mut kids, extra_attempts, now)?;
                related.extend(plan.children.into_iter().map(|i| kids[i].clone()));
            }
        }
        st.put(target.clone(), &self.hook);
        for j in &related {
            st.put(j.clone(), &self.hook);
        }
        drop(st);
        let all: Vec<&Job> = std::iter::once(&target).chain(related.iter()).collect();
        self.signal_available(&all);
        Ok(Changed {
            job: target,
            related,
        })
    }

    async fn release_children(&self, parent_id: Uuid) -> Result<u64, StoreError> {
        let now = self.now();
        let mut st = self.lock();
        let mut released = Vec::new();
        for mut k in st.children_of(parent_id) {
            if k.status == JobStatus::Queued && !k.claimable {
                k.claimable = true;
                k.updated_at = now;
                st.put(k.clone(), &self.hook);
                released.push(k);
            }
        }
        drop(st);
        self.signal_available(&released.iter().collect::<Vec<_>>());
        Ok(released.len() as u64)
    }

    async fn delete_job(&self, id: Uuid) -> Result<Vec<Uuid>, StoreError> {
        let mut st = self.lock();
        let job = st.get(id).ok_or_else(|| StoreError::job_not_found(id))?;
        let kids = st.children_of(id);
        rules::check_deletable(&job, &kids)?;
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

    async fn next_run_at(&self, lane: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        let now = self.now();
        let st = self.lock();
        Ok(st
            .queues
            .get(lane)
            .into_iter()
            .flatten()
            .map(|k| k.1)
            .filter(|at| *at > now)
            .min())
    }

    async fn find_reusable(&self, dedupe_key: &str) -> Result<Option<Job>, StoreError> {
        let st = self.lock();
        Ok(st
            .jobs
            .values()
            .filter(|j| {
                j.status == JobStatus::Succeeded && j.dedupe_key.as_deref() == Some(dedupe_key)
            })
            .max_by_key(|j| (j.finished_at, j.id))
            .cloned())
    }

    async fn prune_finished(
        &self,
        before: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Job>, StoreError> {
        let mut st = self.lock();
        let mut old: Vec<Job> = st
            .jobs
            .values()
            .filter(|j| rules::prunable(j, before))
            .cloned()
            .collect();
        old.sort_by_key(|j| (j.finished_at, j.id));
        old.truncate(limit);
        for j in &old {
            for k in st.children.remove(&j.id).unwrap_or_default() {
                st.remove(k, &self.hook);
            }
            st.remove(j.id, &self.hook);
        }
        Ok(old)
    }

    async fn claim_webhooks(&self, lease: Duration, max: usize) -> Result<Vec<Job>, StoreError> {
        let now = self.now();
        let mut st = self.lock();
        let mut due: Vec<Job> = st
            .jobs
            .values()
            .filter(|j| rules::webhook_due(j, now))
            .cloned()
            .collect();
        due.sort_by_key(|j| (j.webhook.as_ref().and_then(|w| w.due_us), j.id));
        due.truncate(max);
        for j in &mut due {
            rules::claim_webhook(j, lease, now);
            st.put(j.clone(), &self.hook);
        }
        Ok(due)
    }

    async fn record_webhook(
        &self,
        job_id: Uuid,
        seq: i32,
        attempt: WebhookAttempt,
    ) -> Result<Option<Job>, StoreError> {
        let now = self.now();
        let mut st = self.lock();
        let Some(mut j) = st.get(job_id) else {
            return Ok(None);
        };
        if !rules::record_webhook(&mut j, seq, &attempt, now) {
            return Ok(None);
        }
        st.put(j.clone(), &self.hook);
        Ok(Some(j))
    }

    fn subscribe_signals(&self) -> Option<broadcast::Receiver<StoreSignal>> {
        Some(self.signals.subscribe())
    }
}
