//! `impl JobStore for Database`: the queue in SQL. (One file of ~600 lines on purpose: one
//! method per `JobStore` method, each a transaction over `Dialect`;
//! the backend-specific statements are in `dialect.rs`.)
//!
//! - Claims are one `UPDATE … WHERE id = (SELECT … LIMIT 1 [FOR UPDATE SKIP LOCKED])
//!   RETURNING …` statement on both backends.
//! - Fenced writes put the fence (`status = 'running' AND lease_owner = ? AND attempts = ?`)
//!   in the `WHERE` clause, or lock the row and check it before writing.
//! - Every other transition locks the rows involved (PostgreSQL `FOR UPDATE`; SQLite has one
//!   connection, so its transactions are serial), applies the shared rules of
//!   [`jobs_core::rules`] and writes the rows back. Locks are taken parent first, then
//!   children, so concurrent transactions cannot deadlock.
//! - Signals go out with `pg_notify` inside the transaction (delivered only on commit), or on
//!   the in-process channel after the commit on SQLite.

use std::collections::BTreeSet;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::{
    BoolExpressionMethods, ExpressionMethods, OptionalExtension, QueryDsl, SelectableHelper,
};
use diesel_async::{AsyncConnection, RunQueryDsl};
use jobs_core::{
    Changed, Completion, Fence, Job, JobError, JobFilter, JobStatus, JobStore, LeaseStatus, NewJob,
    Outcome, ProgressUpdate, StoreError, StoreSignal, WebhookAttempt, rules,
};
use tokio::sync::broadcast;
use uuid::Uuid;

use crate::db::{Database, Pools, on_conn};
use crate::error::DbError;
use crate::models::JobRow;
use crate::notify::Payload;
use crate::schema::jobs;
use crate::types::{Id, Ts};

use crate::dialect::{Dialect, claim_set, to_jobs};

async fn write_job<C: Dialect>(c: &mut C, job: &Job) -> Result<(), DbError> {
    Ok(c.write_job(job).await?)
}

async fn ensure_profiles<C: Dialect>(
    c: &mut C,
    ids: &BTreeSet<&str>,
    now: Ts,
) -> Result<(), DbError> {
    for id in ids {
        if !crate::types::valid_profile_id(id) {
            return Err(DbError::invalid(format!(
                "profile id '{id}' must be 1-64 of [A-Za-z0-9_-]"
            )));
        }
        c.ensure_profile(id, now).await?;
    }
    Ok(())
}

impl Database {
    /// Publishes signals on the in-process channel (SQLite: after the commit; PostgreSQL gets
    /// them back through `LISTEN`).
    fn after_commit(&self, payloads: &[Payload]) {
        if let Pools::Sqlite(_) = self.inner.pools {
            for p in payloads {
                let s = match p {
                    Payload::Jobs { lane } => StoreSignal::JobsAvailable { lane: lane.clone() },
                    Payload::Cancel { id } => StoreSignal::CancelRequested { job_id: *id },
                    Payload::Changed { .. } | Payload::ChangedMany { .. } => continue,
                };
                let _ = self.inner.signals.send(s);
            }
        }
    }

    fn changed(&self, id: Uuid) -> Payload {
        Payload::Changed {
            id,
            o: self.inner.instance.clone(),
        }
    }

    fn available(jobs: &[&Job]) -> Vec<Payload> {
        let lanes: BTreeSet<&str> = jobs
            .iter()
            .filter(|j| j.status == JobStatus::Queued && j.claimable)
            .map(|j| j.lane.as_str())
            .collect();
        lanes
            .into_iter()
            .map(|l| Payload::Jobs { lane: l.to_owned() })
            .collect()
    }

    /// Locks a running job, checks the fence, applies `f`, writes it back.
    async fn fenced_update(
        &self,
        fence: &Fence,
        f: impl FnOnce(&mut Job) + Send,
    ) -> Result<Option<Job>, DbError> {
        let me = self;
        let (job, payloads) = on_conn!(self, c => {
            c.transaction::<_, DbError, _>(async |c| {
                let Some(row) = c.lock_job(fence.job_id).await? else {
                    return Ok((None, vec![]));
                };
                let mut job = row.into_job()?;
                if !rules::fence_matches(&job, fence) {
                    return Ok((None, vec![]));
                }
                f(&mut job);
                write_job(c, &job).await?;
                let mut payloads = Self::available(&[&job]);
                payloads.push(me.changed(job.id));
                c.notify_all(&payloads).await?;
                Ok((Some(job), payloads))
            })
            .await?
        });
        self.after_commit(&payloads);
        Ok(job)
    }

    /// `insert_job` of a job with a `unique_key`: the active holder of the key if there is one,
    /// else the new job. `ON CONFLICT DO NOTHING` on the partial unique index settles races
    /// (PostgreSQL waits for the other insert's transaction, then the re-read sees its row).
    async fn insert_unique(&self, nj: NewJob) -> Result<Job, DbError> {
        let job = rules::new_job(nj, self.now());
        let now = Ts::micros(job.created_at);
        let Some(key) = job.unique_key.clone() else {
            return Err(DbError::invalid("no unique key"));
        };
        let me = self;
        let (out, payloads) = on_conn!(self, c => {
            c.transaction::<_, DbError, _>(async |c| {
                if let Some(existing) = active_with_key(c, &key).await? {
                    return Ok((existing, vec![]));
                }
                if let Some(profile) = job.profile_id.as_deref() {
                    ensure_profiles(c, &BTreeSet::from([profile]), now).await?;
                }
                let n = diesel::insert_into(jobs::table)
                    .values(JobRow::from_job(&job))
                    .on_conflict_do_nothing()
                    .execute(c)
                    .await
                    .map_err(|e| DbError::constraint(e, "job"))?;
                if n == 0 {
                    return match active_with_key(c, &key).await? {
                        Some(existing) => Ok((existing, vec![])),
                        None => Err(DbError::Store(StoreError::Conflict(format!(
                            "job {} already exists",
                            job.id
                        )))),
                    };
                }
                let mut payloads = Self::available(&[&job]);
                payloads.push(me.changed(job.id));
                c.notify_all(&payloads).await?;
                Ok((job.clone(), payloads))
            })
            .await?
        });
        self.after_commit(&payloads);
        Ok(out)
    }

    async fn job_store_get(&self, id: Uuid) -> Result<Option<Job>, DbError> {
        let row = on_conn!(self, c => {
            jobs::table
                .find(Id(id))
                .select(JobRow::as_select())
                .first(c)
                .await
                .optional()?
        });
        row.map(JobRow::into_job).transpose()
    }
}

#[async_trait]
impl JobStore for Database {
    async fn insert_job(&self, job: NewJob) -> Result<Job, StoreError> {
        if job.unique_key.is_some() {
            return Ok(self.insert_unique(job).await?);
        }
        let job = rules::new_job(job, self.now());
        let now = Ts::micros(job.created_at);
        let payloads = Self::available(&[&job]);
        let row = JobRow::from_job(&job);
        on_conn!(self, c => {
            match job.profile_id.as_deref() {
                // One statement (on PostgreSQL with its notification): one commit.
                None => c
                    .insert_one(row, <[Payload]>::first(&payloads))
                    .await
                    .map_err(|e| DbError::constraint(e, "job"))
                    .map_err(map_insert_conflict)?,
                Some(profile) => c
                    .transaction::<_, DbError, _>(async |c| {
                        ensure_profiles(c, &BTreeSet::from([profile]), now).await?;
                        c.insert_one(row, <[Payload]>::first(&payloads))
                            .await
                            .map_err(|e| DbError::constraint(e, "job"))?;
                        Ok(())
                    })
                    .await
                    .map_err(map_insert_conflict)?,
            }
        });
        self.after_commit(&payloads);
        Ok(job)
    }

    async fn insert_jobs(&self, jobs: Vec<NewJob>) -> Result<Vec<Job>, StoreError> {
        if jobs.iter().any(|j| j.unique_key.is_some()) {
            return Err(StoreError::unique_in_bulk());
        }
        let now = self.now();
        let jobs: Vec<Job> = jobs.into_iter().map(|j| rules::new_job(j, now)).collect();
        let now = Ts::micros(now);
        let payloads = Self::available(&jobs.iter().collect::<Vec<_>>());
        on_conn!(self, c => {
            c.transaction::<_, DbError, _>(async |c| {
                let profiles: BTreeSet<&str> =
                    jobs.iter().filter_map(|j| j.profile_id.as_deref()).collect();
                ensure_profiles(c, &profiles, now).await?;
                // Multi-row INSERTs, well under both backends' bound-parameter limits.
                for chunk in jobs.chunks(INSERT_CHUNK) {
                    let rows: Vec<JobRow> = chunk.iter().map(JobRow::from_job).collect();
                    c.insert_rows(rows)
                        .await
                        .map_err(|e| DbError::constraint(e, "job"))?;
                }
                c.notify_all(&payloads).await?;
                Ok(())
            })
            .await
            .map_err(map_insert_conflict)?
        });
        self.after_commit(&payloads);
        Ok(jobs)
    }

    async fn insert_batch(
        &self,
        parent: NewJob,
        children: Vec<NewJob>,
    ) -> Result<(Job, Vec<Job>), StoreError> {
        let (parent, kids) = rules::new_batch(parent, children, self.now())?;
        let now = Ts::micros(parent.created_at);
        let payloads = Self::available(&[&parent]);
        let existing = on_conn!(self, c => {
            c.transaction::<_, DbError, _>(async |c| {
                // A unique batch whose key an active job holds: that batch.
                if let Some(key) = parent.unique_key.as_deref()
                    && let Some(held) = active_with_key(c, key).await?
                {
                    let kids = to_jobs(c.lock_children(held.id).await?)?;
                    return Ok(Some((held, kids)));
                }
                let profiles: BTreeSet<&str> = std::iter::once(&parent)
                    .chain(kids.iter())
                    .filter_map(|j| j.profile_id.as_deref())
                    .collect();
                ensure_profiles(c, &profiles, now).await?;
                for j in std::iter::once(&parent).chain(kids.iter()) {
                    diesel::insert_into(jobs::table)
                        .values(JobRow::from_job(j))
                        .execute(c)
                        .await
                        .map_err(|e| DbError::constraint(e, "job"))?;
                }
                c.notify_all(&payloads).await?;
                Ok(None)
            })
            .await
            .map_err(map_insert_conflict)?
        });
        if let Some(held) = existing {
            return Ok(held);
        }
        self.after_commit(&payloads);
        Ok((parent, kids))
    }

    async fn get_job(&self, id: Uuid) -> Result<Option<Job>, StoreError> {
        Ok(self.job_store_get(id).await?)
    }

    async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<Job>, StoreError> {
        let cursor = match filter.before {
            Some(b) => {
                let j = self
                    .job_store_get(b)
                    .await?
                    .ok_or_else(|| StoreError::Invalid(format!("unknown cursor job {b}")))?;
                Some((Ts::micros(j.created_at), Id(j.id)))
            }
            None => None,
        };
        let statuses: Vec<&str> = filter.statuses.iter().map(|s| s.as_str()).collect();
        let limit = i64::try_from(filter.effective_limit()).unwrap_or(1000);
        let rows: Vec<JobRow> = on_conn!(self, c => {
            let mut q = jobs::table
                .filter(jobs::parent_id.is_null())
                .select(JobRow::as_select())
                .into_boxed();
            if let Some(p) = &filter.profile_id {
                q = q.filter(jobs::profile_id.eq(p));
            }
            if !statuses.is_empty() {
                q = q.filter(jobs::status.eq_any(&statuses));
            }
            if let Some(t) = &filter.job_type {
                q = q.filter(jobs::job_type.eq(t));
            }
            if let Some((at, id)) = cursor {
                q = q.filter(
                    jobs::created_at
                        .lt(at)
                        .or(jobs::created_at.eq(at).and(jobs::id.lt(id))),
                );
            }
            q.order((jobs::created_at.desc(), jobs::id.desc()))
                .limit(limit)
                .load(c)
                .await
                .map_err(DbError::from)?
        });
        Ok(to_jobs(rows)?)
    }

    async fn list_children(&self, parent_id: Uuid) -> Result<Vec<Job>, StoreError> {
        let rows: Vec<JobRow> = on_conn!(self, c => {
            jobs::table
                .filter(jobs::parent_id.eq(Id(parent_id)))
                .order((jobs::created_at.asc(), jobs::id.asc()))
                .select(JobRow::as_select())
                .load(c)
                .await
                .map_err(DbError::from)?
        });
        Ok(to_jobs(rows)?)
    }

    async fn list_unfinished(&self) -> Result<Vec<Job>, StoreError> {
        let active = [JobStatus::Queued.as_str(), JobStatus::Running.as_str()];
        let rows: Vec<JobRow> = on_conn!(self, c => {
            jobs::table
                .filter(jobs::status.eq_any(active))
                .order((jobs::created_at.asc(), jobs::id.asc()))
                .select(JobRow::as_select())
                .load(c)
                .await
                .map_err(DbError::from)?
        });
        Ok(to_jobs(rows)?)
    }

    async fn list_expired_leases(&self) -> Result<Vec<Job>, StoreError> {
        let now = Ts::micros(self.now());
        let rows: Vec<JobRow> = on_conn!(self, c => {
            jobs::table
                .filter(jobs::status.eq(JobStatus::Running.as_str()))
                .filter(
                    jobs::lease_expires_at
                        .lt(now)
                        .or(jobs::lease_expires_at.is_null()),
                )
                .order((jobs::created_at.asc(), jobs::id.asc()))
                .select(JobRow::as_select())
                .load(c)
                .await
                .map_err(DbError::from)?
        });
        Ok(to_jobs(rows)?)
    }

    async fn claim_next(
        &self,
        lane: &str,
        owner: &str,
        lease: Duration,
    ) -> Result<Option<Job>, StoreError> {
        // The same statement as a batch claim of one.
        Ok(self
            .claim_batch(lane, owner, lease, 1)
            .await?
            .into_iter()
            .next())
    }

    async fn claim_batch(
        &self,
        lane: &str,
        owner: &str,
        lease: Duration,
        max: usize,
    ) -> Result<Vec<Job>, StoreError> {
        if max == 0 {
            return Ok(vec![]);
        }
        let now = self.now();
        let until = Ts::micros(rules::lease_until(now, lease));
        let now = Ts::micros(now);
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        let origin = self.inner.instance.as_str();
        // One statement (and on PostgreSQL its notification) in one commit.
        let rows = on_conn!(self, c => {
            c.claim_rows(lane, owner, until, now, max, origin).await.map_err(DbError::from)?
        });
        Ok(claim_order(to_jobs(rows)?))
    }

    async fn claim_job(
        &self,
        id: Uuid,
        owner: &str,
        lease: Duration,
    ) -> Result<Option<Job>, StoreError> {
        let now = self.now();
        let until = Ts::micros(rules::lease_until(now, lease));
        let now = Ts::micros(now);
        let me = self;
        let row = on_conn!(self, c => {
            let row = diesel::update(
                jobs::table
                    .filter(jobs::id.eq(Id(id)))
                    .filter(jobs::status.eq(JobStatus::Queued.as_str())),
            )
            .set(claim_set!(owner, until, now))
            .returning(JobRow::as_returning())
            .get_result(c)
            .await
            .optional()
            .map_err(DbError::from)?;
            if row.is_some() {
                c.notify_all(&[me.changed(id)]).await.map_err(DbError::from)?;
            }
            row
        });
        Ok(row.map(JobRow::into_job).transpose()?)
    }

    async fn renew_leases(
        &self,
        fences: &[Fence],
        lease: Duration,
    ) -> Result<Vec<LeaseStatus>, StoreError> {
        let until = Ts::micros(rules::lease_until(self.now(), lease));
        let mut out = Vec::with_capacity(fences.len());
        on_conn!(self, c => {
            for f in fences {
                let cancel: Option<bool> = diesel::update(
                    jobs::table
                        .filter(jobs::id.eq(Id(f.job_id)))
                        .filter(jobs::status.eq(JobStatus::Running.as_str()))
                        .filter(jobs::lease_owner.eq(&f.owner))
                        .filter(jobs::attempts.eq(f.attempt)),
                )
                .set(jobs::lease_expires_at.eq(until))
                .returning(jobs::cancel_requested)
                .get_result(c)
                .await
                .optional()
                .map_err(DbError::from)?;
                out.push(LeaseStatus {
                    job_id: f.job_id,
                    held: cancel.is_some(),
                    cancel_requested: cancel.unwrap_or(false),
                });
            }
        });
        Ok(out)
    }

    async fn update_progress(
        &self,
        fence: &Fence,
        update: &ProgressUpdate,
    ) -> Result<bool, StoreError> {
        let now = Ts::micros(self.now());
        let progress = update.progress.clamp(0.0, 1.0);
        let me = self;
        let n = on_conn!(self, c => {
            let target = jobs::table
                .filter(jobs::id.eq(Id(fence.job_id)))
                .filter(jobs::status.eq(JobStatus::Running.as_str()))
                .filter(jobs::lease_owner.eq(&fence.owner))
                .filter(jobs::attempts.eq(fence.attempt));
            let n = match update.completed {
                Some(done) => diesel::update(target)
                    .set((
                        jobs::progress.eq(progress),
                        jobs::stage.eq(&update.stage),
                        jobs::completed.eq(done),
                        jobs::updated_at.eq(now),
                    ))
                    .execute(c)
                    .await,
                None => diesel::update(target)
                    .set((
                        jobs::progress.eq(progress),
                        jobs::stage.eq(&update.stage),
                        jobs::updated_at.eq(now),
                    ))
                    .execute(c)
                    .await,
            }
            .map_err(DbError::from)?;
            if n == 1 {
                c.notify_all(&[me.changed(fence.job_id)]).await.map_err(DbError::from)?;
            }
            n
        });
        Ok(n == 1)
    }

    async fn complete_job(
        &self,
        fence: &Fence,
        outcome: Outcome,
        completed: i32,
    ) -> Result<Option<Job>, StoreError> {
        let now = self.now();
        Ok(self
            .fenced_update(fence, move |j| rules::complete(j, outcome, completed, now))
            .await?)
    }

    async fn complete_jobs(&self, items: Vec<Completion>) -> Result<Vec<Option<Job>>, StoreError> {
        if items.is_empty() {
            return Ok(vec![]);
        }
        let now = self.now();
        let origin = self.inner.instance.as_str();
        let done = on_conn!(self, c => c.complete_many(&items, now, origin).await?);
        Ok(done)
    }

    async fn interrupt_job(&self, fence: &Fence, requeue: bool) -> Result<Option<Job>, StoreError> {
        let now = self.now();
        Ok(self
            .fenced_update(fence, move |j| rules::interrupt(j, requeue, now))
            .await?)
    }

    async fn fail_queued(&self, id: Uuid, error: &JobError) -> Result<Option<Job>, StoreError> {
        let now = self.now();
        let Some(parent_id) = self.job_store_get(id).await?.map(|j| j.parent_id) else {
            return Ok(None);
        };
        let me = self;
        let job = on_conn!(self, c => {
            c.transaction::<_, DbError, _>(async |c| {
                // Parent first, then the child: the lock order of every transaction. A
                // child whose batch a retry re-opened is not an orphan any more.
                if let Some(pid) = parent_id
                    && let Some(p) = c.lock_job(pid).await?
                    && p.into_job()?.status.is_active()
                {
                    return Ok(None);
                }
                let Some(row) = c.lock_job(id).await? else { return Ok(None) };
                let mut job = row.into_job()?;
                if job.status != JobStatus::Queued {
                    return Ok(None);
                }
                rules::fail_queued(&mut job, error, now);
                write_job(c, &job).await?;
                c.notify_all(&[me.changed(id)]).await?;
                Ok(Some(job))
            })
            .await?
        });
        Ok(job)
    }

    async fn request_cancel(&self, id: Uuid) -> Result<Changed, StoreError> {
        let now = self.now();
        let me = self;
        let (changed, payloads) = on_conn!(self, c => {
            c.transaction::<_, DbError, _>(async |c| {
                let mut target = c
                    .lock_job(id)
                    .await?
                    .ok_or(DbError::job_not_found(id))?
                    .into_job()?;
                if target.status.is_terminal() {
                    return Ok((Changed { job: target, related: vec![] }, vec![]));
                }
                let mut kids = to_jobs(c.lock_children(id).await?)?;
                let idx = rules::cancel(&mut target, &mut kids, now);
                let related: Vec<Job> = idx.into_iter().map(|i| kids[i].clone()).collect();
                let mut payloads = Vec::new();
                for j in std::iter::once(&target).chain(related.iter()) {
                    write_job(c, j).await?;
                    payloads.push(me.changed(j.id));
                    if j.status == JobStatus::Running {
                        payloads.push(Payload::Cancel { id: j.id });
                    }
                }
                c.notify_all(&payloads).await?;
                Ok((Changed { job: target, related }, payloads))
            })
            .await?
        });
        self.after_commit(&payloads);
        Ok(changed)
    }

    async fn retry_job(&self, id: Uuid, extra_attempts: i32) -> Result<Changed, StoreError> {
        let now = self.now();
        let parent_id = self
            .job_store_get(id)
            .await?
            .ok_or_else(|| StoreError::job_not_found(id))?
            .parent_id;
        let me = self;
        let (changed, payloads) = on_conn!(self, c => {
            c.transaction::<_, DbError, _>(async |c| {
                // Parent first, then children: the lock order of every transaction.
                let (target, related) = match parent_id {
                    Some(pid) => {
                        let parent = c.lock_job(pid).await?.map(JobRow::into_job).transpose()?;
                        let mut siblings = to_jobs(c.lock_children(pid).await?)?;
                        let mut target = siblings
                            .iter()
                            .find(|s| s.id == id)
                            .cloned()
                            .ok_or(DbError::job_not_found(id))?;
                        match parent {
                            Some(mut p) => {
                                rules::retry(&mut target, Some(&mut p), &mut siblings, extra_attempts, now)?;
                                (target, vec![p])
                            }
                            None => {
                                rules::retry(&mut target, None, &mut [], extra_attempts, now)?;
                                (target, vec![])
                            }
                        }
                    }
                    None => {
                        let mut target = c
                            .lock_job(id)
                            .await?
                            .ok_or(DbError::job_not_found(id))?
                            .into_job()?;
                        let mut kids = to_jobs(c.lock_children(id).await?)?;
                        let plan = rules::retry(&mut target, None, &mut kids, extra_attempts, now)?;
                        let related = plan.children.into_iter().map(|i| kids[i].clone()).collect();
                        (target, related)
                    }
                };
                let mut payloads = Vec::new();
                for j in std::iter::once(&target).chain(related.iter()) {
                    write_job(c, j).await?;
                    payloads.push(me.changed(j.id));
                }
                let all: Vec<&Job> = std::iter::once(&target).chain(related.iter()).collect();
                payloads.extend(Self::available(&all));
                c.notify_all(&payloads).await?;
                Ok((Changed { job: target, related }, payloads))
            })
            .await?
        });
        self.after_commit(&payloads);
        Ok(changed)
    }

    async fn release_children(&self, parent_id: Uuid) -> Result<u64, StoreError> {
        let now = Ts::micros(self.now());
        let (n, payloads) = on_conn!(self, c => {
            c.transaction::<_, DbError, _>(async |c| {
                let lanes: Vec<String> = diesel::update(
                    jobs::table
                        .filter(jobs::parent_id.eq(Id(parent_id)))
                        .filter(jobs::status.eq(JobStatus::Queued.as_str()))
                        .filter(jobs::claimable.eq(false)),
                )
                .set((jobs::claimable.eq(true), jobs::updated_at.eq(now)))
                .returning(jobs::lane)
                .get_results(c)
                .await?;
                let distinct: BTreeSet<String> = lanes.iter().cloned().collect();
                let payloads: Vec<Payload> =
                    distinct.into_iter().map(|lane| Payload::Jobs { lane }).collect();
                c.notify_all(&payloads).await?;
                Ok((lanes.len() as u64, payloads))
            })
            .await?
        });
        self.after_commit(&payloads);
        Ok(n)
    }

    async fn delete_job(&self, id: Uuid) -> Result<Vec<Uuid>, StoreError> {
        let ids = on_conn!(self, c => {
            c.transaction::<_, DbError, _>(async |c| {
                let job = c
                    .lock_job(id)
                    .await?
                    .ok_or(DbError::job_not_found(id))?
                    .into_job()?;
                let kids = to_jobs(c.lock_children(id).await?)?;
                rules::check_deletable(&job, &kids)?;
                diesel::delete(jobs::table.filter(jobs::parent_id.eq(Id(id))))
                    .execute(c)
                    .await?;
                diesel::delete(jobs::table.filter(jobs::id.eq(Id(id))))
                    .execute(c)
                    .await?;
                let mut ids = vec![id];
                ids.extend(kids.iter().map(|k| k.id));
                Ok(ids)
            })
            .await?
        });
        Ok(ids)
    }

    async fn next_run_at(&self, lane: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        let now = Ts::micros(self.now());
        let at: Option<Ts> = on_conn!(self, c => {
            jobs::table
                .filter(jobs::status.eq(JobStatus::Queued.as_str()))
                .filter(jobs::lane.eq(lane))
                .filter(jobs::claimable.eq(true))
                .filter(jobs::run_at.gt(now))
                .order(jobs::run_at.asc())
                .select(jobs::run_at)
                .first(c)
                .await
                .optional()
                .map_err(DbError::from)?
        });
        Ok(at.map(|t| t.0))
    }

    async fn find_reusable(&self, dedupe_key: &str) -> Result<Option<Job>, StoreError> {
        let row: Option<JobRow> = on_conn!(self, c => {
            jobs::table
                .filter(jobs::dedupe_key.eq(dedupe_key))
                .filter(jobs::status.eq(JobStatus::Succeeded.as_str()))
                .order((jobs::finished_at.desc(), jobs::id.desc()))
                .select(JobRow::as_select())
                .first(c)
                .await
                .optional()
                .map_err(DbError::from)?
        });
        Ok(row.map(JobRow::into_job).transpose()?)
    }

    async fn prune_finished(
        &self,
        before: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Job>, StoreError> {
        let before = Ts::micros(before);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let terminal = [
            JobStatus::Succeeded.as_str(),
            JobStatus::Failed.as_str(),
            JobStatus::Cancelled.as_str(),
        ];
        let pruned = on_conn!(self, c => {
            c.transaction::<_, DbError, _>(async |c| {
                // One pruner at a time across nodes; the others skip this round.
                if !c.try_maintenance_lock().await? {
                    return Ok(vec![]);
                }
                let rows: Vec<JobRow> = jobs::table
                    .filter(jobs::parent_id.is_null())
                    .filter(jobs::status.eq_any(terminal))
                    .filter(jobs::finished_at.lt(before))
                    .order((jobs::finished_at.asc(), jobs::id.asc()))
                    .limit(limit)
                    .select(JobRow::as_select())
                    .load(c)
                    .await?;
                let old: Vec<Job> = to_jobs(rows)?
                    .into_iter()
                    .filter(|j| rules::prunable(j, before.0))
                    .collect();
                let ids: Vec<Id> = old.iter().map(|j| Id(j.id)).collect();
                if !ids.is_empty() {
                    diesel::delete(jobs::table.filter(jobs::parent_id.eq_any(&ids)))
                        .execute(c)
                        .await?;
                    diesel::delete(jobs::table.filter(jobs::id.eq_any(&ids)))
                        .execute(c)
                        .await?;
                }
                Ok(old)
            })
            .await?
        });
        Ok(pruned)
    }

    async fn claim_webhooks(&self, lease: Duration, max: usize) -> Result<Vec<Job>, StoreError> {
        let now = self.now();
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        let claimed = on_conn!(self, c => {
            c.transaction::<_, DbError, _>(async |c| {
                let rows = c.lock_due_webhooks(now.timestamp_micros(), max).await?;
                let mut out = Vec::with_capacity(rows.len());
                for row in rows {
                    let mut job = row.into_job()?;
                    if !rules::webhook_due(&job, now) {
                        continue;
                    }
                    rules::claim_webhook(&mut job, lease, now);
                    write_job(c, &job).await?;
                    out.push(job);
                }
                Ok(out)
            })
            .await?
        });
        Ok(claimed)
    }

    async fn record_webhook(
        &self,
        job_id: Uuid,
        seq: i32,
        attempt: WebhookAttempt,
    ) -> Result<Option<Job>, StoreError> {
        let now = self.now();
        let me = self;
        let job = on_conn!(self, c => {
            c.transaction::<_, DbError, _>(async |c| {
                let Some(row) = c.lock_job(job_id).await? else { return Ok(None) };
                let mut job = row.into_job()?;
                if !rules::record_webhook(&mut job, seq, &attempt, now) {
                    return Ok(None);
                }
                write_job(c, &job).await?;
                c.notify_all(&[me.changed(job_id)]).await?;
                Ok(Some(job))
            })
            .await?
        });
        Ok(job)
    }

    fn subscribe_signals(&self) -> Option<broadcast::Receiver<StoreSignal>> {
        Some(self.inner.signals.subscribe())
    }
}

/// Claimed jobs in claim order (priority, then `run_at`, then id): one statement returns them
/// unordered.
fn claim_order(mut jobs: Vec<Job>) -> Vec<Job> {
    jobs.sort_by_key(rules::claim_key);
    jobs
}

/// The active (`queued`/`running`) job holding a unique key.
async fn active_with_key<C: Dialect>(c: &mut C, key: &str) -> Result<Option<Job>, DbError> {
    c.active_with_key(key)
        .await?
        .map(JobRow::into_job)
        .transpose()
}

/// Rows per multi-row INSERT of `insert_jobs`: 32 columns × 1000 stays below SQLite's 32,766
/// and PostgreSQL's 65,535 bound parameters.
const INSERT_CHUNK: usize = 1000;

/// A duplicate job id is a conflict, as in every store.
fn map_insert_conflict(e: DbError) -> DbError {
    match e {
        DbError::Store(StoreError::Invalid(m)) if m.ends_with("already exists") => {
            DbError::Store(StoreError::Conflict(m))
        }
        other => other,
    }
}
