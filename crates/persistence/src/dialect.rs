//! The backend-specific statements of the job store: row locks, the claim and NOTIFY, one
//! [`Dialect`] impl for PostgreSQL and one for SQLite. `store.rs` (the `JobStore`) and
//! `repos.rs` (files, transcripts) both build their transactions on it.

use diesel::{
    ExpressionMethods, NullableExpressionMethods, OptionalExtension, QueryDsl, SelectableHelper,
};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use jobs_core::{Job, JobStatus};
use uuid::Uuid;

use crate::db::SqliteConn;
use crate::error::DbError;
use crate::models::{JobRow, ProfileRow};
use crate::notify::Payload;
use crate::schema::{jobs, profiles};
use crate::types::{Id, Ts};

type QResult<T> = Result<T, diesel::result::Error>;

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
            diesel::update(jobs::table.filter(jobs::id.eq(Id(job.id))))
                .set(JobRow::from_job(job))
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
    };
}

impl Dialect for AsyncPgConnection {
    common_methods!(lock = [.for_update()], claim_lock = [.for_update().skip_locked()]);

    async fn notify_all(&mut self, payloads: &[Payload]) -> QResult<()> {
        for p in payloads {
            diesel::sql_query("SELECT pg_notify($1, $2)")
                .bind::<diesel::sql_types::Text, _>(crate::db::NOTIFY_CHANNEL)
                .bind::<diesel::sql_types::Text, _>(p.to_json())
                .execute(self)
                .await?;
        }
        Ok(())
    }
}

impl Dialect for SqliteConn {
    common_methods!(lock = [], claim_lock = []);

    async fn notify_all(&mut self, _payloads: &[Payload]) -> QResult<()> {
        Ok(()) // sent on the in-process channel after the commit
    }
}

pub(crate) fn to_jobs(rows: Vec<JobRow>) -> Result<Vec<Job>, DbError> {
    rows.into_iter().map(JobRow::into_job).collect()
}
