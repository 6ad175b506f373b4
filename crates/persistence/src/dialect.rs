//! The backend-specific statements of the job store: row locks, the claim and NOTIFY, one
//! [`Dialect`] impl for PostgreSQL and one for SQLite. `store.rs` (the `JobStore`) and
//! `repos.rs` (files, transcripts) both build their transactions on it.

use diesel::{
    ExpressionMethods, NullableExpressionMethods, OptionalExtension, QueryDsl, SelectableHelper,
};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use jobs_core::{Job, JobStatus};
use uuid::Uuid;

use crate::cached::Cached;
use crate::db::SqliteConn;
use crate::error::DbError;
use crate::models::{JobRow, ProfileRow};
use crate::notify::Payload;
use crate::schema::{jobs, profiles};
use crate::types::{Id, Ts};

type QResult<T> = Result<T, diesel::result::Error>;

/// Most jobs one PostgreSQL claim takes: its notification lists every id and must stay under
/// PostgreSQL's 8,000-byte payload limit (~40 bytes an id).
const PG_CLAIM_MAX: i64 = 128;

/// The PostgreSQL claim (see `claim_rows`). Columns are named as `JobRow`'s fields.
const PG_CLAIM: &str = "\
WITH next AS (
    SELECT id FROM jobs
    WHERE status = 'queued' AND lane = $1 AND claimable
    ORDER BY priority DESC, created_at, id
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE jobs j SET status = 'running', attempts = j.attempts + 1, lease_owner = $3,
        lease_expires_at = $4, started_at = $5, cancel_requested = false, updated_at = $5
    FROM next WHERE j.id = next.id
    RETURNING j.id, j.type AS job_type, j.lane, j.status, j.profile_id, j.file_id,
        j.parent_id, j.claimable, j.params, j.result, j.error, j.error_code, j.error_details,
        j.progress, j.stage, j.total, j.completed, j.attempts, j.max_attempts, j.priority,
        j.lease_owner, j.lease_expires_at, j.cancel_requested, j.created_at, j.started_at,
        j.finished_at, j.updated_at
), sent AS (
    SELECT pg_notify($6, json_build_object('k', 'changed_many', 'ids', array_agg(id), 'o', $7)::text)
    FROM claimed HAVING count(*) > 0
)
SELECT * FROM claimed WHERE (SELECT count(*) FROM sent) >= 0";

/// The backend-specific statements: row locks, the claim, and NOTIFY; plus the two writes
/// every transaction shares. Bodies that differ only by the row locks are written once, by
/// `common_methods!`.
#[allow(async_fn_in_trait)]
pub(crate) trait Dialect: AsyncConnection + Send {
    async fn write_job(&mut self, job: &Job) -> QResult<()>;
    async fn ensure_profile(&mut self, id: &str, now: Ts) -> QResult<()>;
    async fn lock_job(&mut self, id: Uuid) -> QResult<Option<JobRow>>;
    async fn lock_children(&mut self, parent: Uuid) -> QResult<Vec<JobRow>>;
    async fn lock_jobs_of_file(&mut self, file: Uuid) -> QResult<Vec<JobRow>>;
    async fn claim_next_row(
        &mut self,
        lane: &str,
        owner: &str,
        until: Ts,
        now: Ts,
    ) -> QResult<Option<JobRow>>;
    /// Claims up to `max` jobs of `lane` in one statement (unordered: sort them after);
    /// PostgreSQL's statement also sends one `changed_many` notification from `origin`.
    async fn claim_rows(
        &mut self,
        lane: &str,
        owner: &str,
        until: Ts,
        now: Ts,
        max: i64,
        origin: &str,
    ) -> QResult<Vec<JobRow>>;
    /// Locks the given jobs, in id order (the order every multi-job lock takes).
    async fn lock_jobs(&mut self, ids: &[Id]) -> QResult<Vec<JobRow>>;
    /// Writes back several whole jobs (PostgreSQL pipelines the statements).
    async fn write_jobs(&mut self, jobs: &[Job]) -> QResult<()>;
    /// Inserts rows (PostgreSQL: one multi-row INSERT).
    async fn insert_rows(&mut self, rows: Vec<JobRow>) -> QResult<()>;
    async fn notify_all(&mut self, payloads: &[Payload]) -> QResult<()>;
}

macro_rules! claim_set {
    ($owner:expr, $until:expr, $now:expr) => {
        (
            jobs::status.eq(JobStatus::Running.as_str()),
            jobs::attempts.eq(jobs::attempts + 1),
            jobs::lease_owner.eq($owner),
            jobs::lease_expires_at.eq($until),
            jobs::started_at.eq($now),
            jobs::cancel_requested.eq(false),
            jobs::updated_at.eq($now),
        )
    };
}
pub(crate) use claim_set;

/// The methods whose bodies are the same on both backends, but for the row locks PostgreSQL
/// takes (`$lock`: `FOR UPDATE`; `$claim_lock`: `FOR UPDATE SKIP LOCKED`) and SQLite needs
/// none of (its one connection serializes transactions).
macro_rules! common_methods {
    (lock = [$($lock:tt)*], claim_lock = [$($claim_lock:tt)*]) => {
        async fn write_job(&mut self, job: &Job) -> QResult<()> {
            Cached(diesel::update(jobs::table.filter(jobs::id.eq(Id(job.id))))
                .set(JobRow::from_job(job)))
                .execute(self)
                .await
                .map(|_| ())
        }

        async fn ensure_profile(&mut self, id: &str, now: Ts) -> QResult<()> {
            diesel::insert_into(profiles::table)
                .values(ProfileRow {
                    id: id.to_owned(),
                    created_at: now,
                })
                .on_conflict_do_nothing()
                .execute(self)
                .await
                .map(|_| ())
        }

        async fn lock_job(&mut self, id: Uuid) -> QResult<Option<JobRow>> {
            jobs::table
                .find(Id(id))
                .select(JobRow::as_select())
                $($lock)*
                .first(self)
                .await
                .optional()
        }
        async fn lock_children(&mut self, parent: Uuid) -> QResult<Vec<JobRow>> {
            jobs::table
                .filter(jobs::parent_id.eq(Id(parent)))
                .order((jobs::created_at.asc(), jobs::id.asc()))
                .select(JobRow::as_select())
                $($lock)*
                .load(self)
                .await
        }
        async fn lock_jobs_of_file(&mut self, file: Uuid) -> QResult<Vec<JobRow>> {
            jobs::table
                .filter(jobs::file_id.eq(Id(file)))
                .order((jobs::created_at.asc(), jobs::id.asc()))
                .select(JobRow::as_select())
                $($lock)*
                .load(self)
                .await
        }
        async fn claim_next_row(
            &mut self,
            lane: &str,
            owner: &str,
            until: Ts,
            now: Ts,
        ) -> QResult<Option<JobRow>> {
            let j2 = diesel::alias!(crate::schema::jobs as j2);
            let next = j2
                .select(j2.field(jobs::id))
                .filter(j2.field(jobs::status).eq(JobStatus::Queued.as_str()))
                .filter(j2.field(jobs::lane).eq(lane))
                .filter(j2.field(jobs::claimable).eq(true))
                .order((
                    j2.field(jobs::priority).desc(),
                    j2.field(jobs::created_at).asc(),
                    j2.field(jobs::id).asc(),
                ))
                .limit(1)
                $($claim_lock)*;
            diesel::update(jobs::table)
                .filter(jobs::id.nullable().eq(next.single_value()))
                .set(claim_set!(owner, until, now))
                .returning(JobRow::as_returning())
                .get_result(self)
                .await
                .optional()
        }
        async fn lock_jobs(&mut self, ids: &[Id]) -> QResult<Vec<JobRow>> {
            // Cached: PostgreSQL binds the ids as one array (`= ANY($1)`), one SQL text;
            // SQLite's text grows with the list, so its cache sees a bounded set of lengths.
            Cached(jobs::table
                .filter(jobs::id.eq_any(ids))
                .order(jobs::id.asc())
                .select(JobRow::as_select())
                $($lock)*)
                .load(self)
                .await
        }
    };
}

impl Dialect for AsyncPgConnection {
    common_methods!(lock = [.for_update()], claim_lock = [.for_update().skip_locked()]);

    async fn claim_rows(
        &mut self,
        lane: &str,
        owner: &str,
        until: Ts,
        now: Ts,
        max: i64,
        origin: &str,
    ) -> QResult<Vec<JobRow>> {
        // One statement, one commit: pick (FOR UPDATE SKIP LOCKED, by the claim index),
        // claim, and send one notification listing every claimed id. The filter's InitPlan
        // runs once, and only when a row was claimed.
        Cached(
            diesel::sql_query(PG_CLAIM)
                .bind::<diesel::sql_types::Text, _>(lane)
                .bind::<diesel::sql_types::BigInt, _>(max.clamp(1, PG_CLAIM_MAX))
                .bind::<diesel::sql_types::Text, _>(owner)
                .bind::<crate::types::DbTime, _>(until)
                .bind::<crate::types::DbTime, _>(now)
                .bind::<diesel::sql_types::Text, _>(crate::db::NOTIFY_CHANNEL)
                .bind::<diesel::sql_types::Text, _>(origin),
        )
        .load(self)
        .await
    }

    async fn write_jobs(&mut self, jobs: &[Job]) -> QResult<()> {
        // Sent back to back on the one connection (diesel-async pipelines them): one round
        // trip for all, not one per job.
        let conn: &AsyncPgConnection = self;
        let writes = jobs.iter().map(|job| {
            let mut c = conn;
            Cached(
                diesel::update(jobs::table.filter(jobs::id.eq(Id(job.id))))
                    .set(JobRow::from_job(job)),
            )
            .execute(&mut c)
        });
        futures::future::try_join_all(writes).await.map(|_| ())
    }

    async fn insert_rows(&mut self, rows: Vec<JobRow>) -> QResult<()> {
        diesel::insert_into(jobs::table)
            .values(rows)
            .execute(self)
            .await
            .map(|_| ())
    }

    async fn notify_all(&mut self, payloads: &[Payload]) -> QResult<()> {
        // One statement for all of them.
        match payloads {
            [] => Ok(()),
            [p] => Cached(
                diesel::sql_query("SELECT pg_notify($1, $2)")
                    .bind::<diesel::sql_types::Text, _>(crate::db::NOTIFY_CHANNEL)
                    .bind::<diesel::sql_types::Text, _>(p.to_json()),
            )
            .execute(self)
            .await
            .map(|_| ()),
            many => {
                let texts: Vec<String> = many.iter().map(Payload::to_json).collect();
                Cached(
                    diesel::sql_query("SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p")
                        .bind::<diesel::sql_types::Text, _>(crate::db::NOTIFY_CHANNEL)
                        .bind::<diesel::sql_types::Array<diesel::sql_types::Text>, _>(texts),
                )
                .execute(self)
                .await
                .map(|_| ())
            }
        }
    }
}

impl Dialect for SqliteConn {
    common_methods!(lock = [], claim_lock = []);

    async fn claim_rows(
        &mut self,
        lane: &str,
        owner: &str,
        until: Ts,
        now: Ts,
        max: i64,
        _origin: &str,
    ) -> QResult<Vec<JobRow>> {
        let j2 = diesel::alias!(crate::schema::jobs as j2);
        let next = j2
            .select(j2.field(jobs::id))
            .filter(j2.field(jobs::status).eq(JobStatus::Queued.as_str()))
            .filter(j2.field(jobs::lane).eq(lane))
            .filter(j2.field(jobs::claimable).eq(true))
            .order((
                j2.field(jobs::priority).desc(),
                j2.field(jobs::created_at).asc(),
                j2.field(jobs::id).asc(),
            ))
            .limit(max);
        diesel::update(jobs::table)
            .filter(jobs::id.eq_any(next))
            .set(claim_set!(owner, until, now))
            .returning(JobRow::as_returning())
            .get_results(self)
            .await
    }

    async fn write_jobs(&mut self, jobs: &[Job]) -> QResult<()> {
        for job in jobs {
            self.write_job(job).await?;
        }
        Ok(())
    }

    async fn insert_rows(&mut self, rows: Vec<JobRow>) -> QResult<()> {
        // No multi-row INSERT for this row type on SQLite (diesel needs DEFAULT); inside the
        // caller's transaction each row costs no commit.
        for row in rows {
            diesel::insert_into(jobs::table)
                .values(row)
                .execute(self)
                .await?;
        }
        Ok(())
    }

    async fn notify_all(&mut self, _payloads: &[Payload]) -> QResult<()> {
        Ok(()) // sent on the in-process channel after the commit
    }
}

pub(crate) fn to_jobs(rows: Vec<JobRow>) -> Result<Vec<Job>, DbError> {
    rows.into_iter().map(JobRow::into_job).collect()
}
