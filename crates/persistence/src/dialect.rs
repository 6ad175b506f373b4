//! The backend-specific statements of the job store: row locks, the claim and NOTIFY, one
//! [`Dialect`] impl for PostgreSQL and one for SQLite. `store.rs` (the `JobStore`) and
//! `repos.rs` (files, transcripts) both build their transactions on it.

use chrono::{DateTime, Utc};
use diesel::{ExpressionMethods, OptionalExtension, QueryDsl, SelectableHelper};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use jobs_core::{Completion, Job, JobStatus, Outcome, rules};
use uuid::Uuid;

use crate::cached::{Cached, WithNotify};
use crate::db::SqliteConn;
use crate::error::DbError;
use crate::models::{JobRow, ProfileRow};
use crate::notify::Payload;
use crate::schema::{jobs, profiles};
use crate::types::{Id, Ts};

type QResult<T> = Result<T, diesel::result::Error>;

/// Most jobs one PostgreSQL claim or completion statement takes: its notification lists every
/// id and must stay under PostgreSQL's 8,000-byte payload limit (~40 bytes an id).
pub(crate) const PG_BATCH_MAX: usize = 128;
const PG_CLAIM_MAX: i64 = PG_BATCH_MAX as i64;

// The PostgreSQL hot statements, composed from shared pieces (the returned columns, each
// rule, the notification). Columns come back named as `JobRow`'s fields.
macro_rules! job_columns {
    () => {
        "j.id, j.type AS job_type, j.lane, j.status, j.profile_id, j.file_id, j.parent_id, \
         j.claimable, j.params, j.result, j.error, j.error_code, j.error_details, j.progress, \
         j.stage, j.total, j.completed, j.attempts, j.max_attempts, j.priority, j.lease_owner, \
         j.lease_expires_at, j.cancel_requested, j.created_at, j.started_at, j.finished_at, \
         j.updated_at, j.run_at, j.last_error, j.unique_key, j.dedupe_key, j.webhook"
    };
}

/// CTEs `next`, `claimed`: pick up to `$max` claimable rows of `$lane` that are due (`run_at
/// <= $now`) by the claim order (`FOR UPDATE SKIP LOCKED`, by the claim index) and claim them
/// for `$owner`.
macro_rules! claim_ctes {
    ($lane:literal, $max:literal, $owner:literal, $until:literal, $now:literal) => {
        concat!(
            "next AS (SELECT id FROM jobs WHERE status = 'queued' AND lane = ",
            $lane,
            " AND claimable AND run_at <= ",
            $now,
            " ORDER BY priority DESC, run_at, id LIMIT ",
            $max,
            " FOR UPDATE SKIP LOCKED), claimed AS (UPDATE jobs j SET status = 'running', \
             attempts = j.attempts + 1, lease_owner = ",
            $owner,
            ", lease_expires_at = ",
            $until,
            ", started_at = ",
            $now,
            ", cancel_requested = false, updated_at = ",
            $now,
            " FROM next WHERE j.id = next.id RETURNING ",
            job_columns!(),
            ")"
        )
    };
}

/// CTEs `u`, `done`: `jobs_core::rules::complete` in SQL over arrays `$1`..`$11` (id, owner,
/// attempt, ok, result, error, error_code, error_details, completed, retry_at, last_error),
/// fenced row by row. In `SET`, `j.*` are the old values. `rq` (a retry that re-queues: a
/// retry_at and no pending cancel) is spelled out where it is used. A terminal write marks the
/// webhook pending (`rules::ended`) with `$now_text`/`$now_us`. The conformance cases prove it
/// answers as the Rust rules.
macro_rules! complete_ctes {
    ($now:literal, $now_text:literal, $now_us:literal) => {
        concat!(
            "u AS (SELECT * FROM unnest($1::uuid[], $2::text[], $3::int4[], $4::bool[], \
             $5::jsonb[], $6::text[], $7::text[], $8::jsonb[], $9::int4[], $10::timestamptz[], \
             $11::jsonb[]) AS u(id, owner, attempt, ok, result, error, error_code, error_details, \
             completed, retry_at, last_error)), \
             done AS (UPDATE jobs j SET lease_owner = NULL, lease_expires_at = NULL, \
             updated_at = ", $now, ", \
             finished_at = CASE WHEN u.retry_at IS NOT NULL AND NOT j.cancel_requested \
             THEN j.finished_at ELSE ", $now, " END, \
             completed = CASE WHEN u.retry_at IS NOT NULL AND NOT j.cancel_requested \
             THEN j.completed ELSE u.completed END, \
             result = CASE WHEN u.retry_at IS NOT NULL AND NOT j.cancel_requested THEN NULL \
             ELSE u.result END, \
             status = CASE WHEN j.cancel_requested THEN 'cancelled' WHEN u.ok THEN 'succeeded' \
             WHEN u.retry_at IS NOT NULL THEN 'queued' ELSE 'failed' END, \
             run_at = CASE WHEN u.retry_at IS NOT NULL AND NOT j.cancel_requested \
             THEN u.retry_at ELSE j.run_at END, \
             progress = CASE WHEN u.retry_at IS NOT NULL AND NOT j.cancel_requested THEN 0 \
             WHEN u.ok AND NOT j.cancel_requested THEN 1.0 ELSE j.progress END, \
             stage = CASE WHEN u.retry_at IS NOT NULL AND NOT j.cancel_requested THEN NULL \
             ELSE j.stage END, \
             error = CASE WHEN u.ok OR j.cancel_requested OR u.retry_at IS NOT NULL THEN j.error \
             ELSE u.error END, \
             error_code = CASE WHEN u.ok OR j.cancel_requested OR u.retry_at IS NOT NULL \
             THEN j.error_code ELSE u.error_code END, \
             error_details = CASE WHEN u.ok OR j.cancel_requested OR u.retry_at IS NOT NULL \
             THEN j.error_details ELSE u.error_details END, \
             last_error = CASE WHEN u.ok THEN j.last_error \
             WHEN u.retry_at IS NOT NULL OR NOT j.cancel_requested THEN u.last_error \
             ELSE j.last_error END, \
             webhook = CASE WHEN j.webhook IS NULL \
             OR (u.retry_at IS NOT NULL AND NOT j.cancel_requested) THEN j.webhook \
             ELSE (j.webhook - 'last_error' - 'delivered_at') || jsonb_build_object('status', \
             'pending', 'seq', COALESCE((j.webhook ->> 'seq')::int, 0) + 1, 'event', \
             CASE WHEN j.cancel_requested THEN 'cancelled' WHEN u.ok THEN 'succeeded' \
             ELSE 'failed' END, 'event_at', ", $now_text, "::text, 'attempts', 0, 'due_us', ",
             $now_us, "::bigint) END \
             FROM u WHERE j.id = u.id AND j.status = 'running' AND j.lease_owner = u.owner \
             AND j.attempts = u.attempt RETURNING ", job_columns!(), ")"
        )
    };
}

/// CTE `sent`: one `changed_many` notification listing the ids of `$from`, only if any.
macro_rules! notify_cte {
    ($chan:literal, $origin:literal, $from:literal) => {
        concat!(
            "sent AS (SELECT pg_notify(",
            $chan,
            ", json_build_object('k', 'changed_many', \
             'ids', array_agg(id), 'o', ",
            $origin,
            ")::text) FROM ",
            $from,
            " HAVING count(*) > 0)"
        )
    };
}

/// The claim (see `claim_rows`). The filter's InitPlan runs once, and only when a row was
/// claimed.
const PG_CLAIM: &str = concat!(
    "WITH ",
    claim_ctes!("$1", "$2", "$3", "$4", "$5"),
    ", ",
    notify_cte!("$6", "$7", "claimed"),
    " SELECT * FROM claimed WHERE (SELECT count(*) FROM sent) >= 0"
);

/// The batch completion (see `complete_many`).
const PG_COMPLETE: &str = concat!(
    "WITH ",
    complete_ctes!("$12", "$15", "$16"),
    ", ",
    notify_cte!("$13", "$14", "done"),
    " SELECT * FROM done WHERE (SELECT count(*) FROM sent) >= 0"
);

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
    async fn active_with_key(&mut self, key: &str) -> QResult<Option<JobRow>>;
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
    /// Fenced completions (see `JobStore::complete_jobs`), one answer per item. SQLite: one
    /// transaction applying `rules::complete`, in one trip to the blocking pool. PostgreSQL: up
    /// to [`PG_BATCH_MAX`] in one statement that applies `rules::complete` in SQL and sends one
    /// `changed_many` notification (more: one such statement per chunk, in a transaction).
    async fn complete_many(
        &mut self,
        items: &[Completion],
        now: DateTime<Utc>,
        origin: &str,
    ) -> Result<Vec<Option<Job>>, DbError>;
    /// Inserts rows (PostgreSQL: one multi-row INSERT).
    async fn insert_rows(&mut self, rows: Vec<JobRow>) -> QResult<()>;
    /// Inserts one row; PostgreSQL sends `notify` in the same statement.
    async fn insert_one(&mut self, row: JobRow, notify: Option<&Payload>) -> QResult<()>;
    async fn notify_all(&mut self, payloads: &[Payload]) -> QResult<()>;
    /// Up to `max` jobs whose webhook delivery is due by `now_us`, locked (PostgreSQL: `FOR
    /// UPDATE SKIP LOCKED`, so concurrent delivery services take different ones).
    async fn lock_due_webhooks(&mut self, now_us: i64, max: i64) -> QResult<Vec<JobRow>>;
    /// The transaction-scoped lock of the retention pass (PostgreSQL: `pg_try_advisory_xact_lock`;
    /// `false` while another node holds it). SQLite: always `true`.
    async fn try_maintenance_lock(&mut self) -> QResult<bool>;
}

/// The advisory-lock key of the retention pass.
const PRUNE_LOCK_KEY: i64 = 7_244_320_862;

#[derive(diesel::QueryableByName)]
struct Locked {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    locked: bool,
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
/// takes (`$lock`: `FOR UPDATE`) and SQLite needs none of (its one connection serializes
/// transactions).
macro_rules! common_methods {
    (lock = [$($lock:tt)*]) => {
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
        async fn active_with_key(&mut self, key: &str) -> QResult<Option<JobRow>> {
            let active = [JobStatus::Queued.as_str(), JobStatus::Running.as_str()];
            jobs::table
                .filter(jobs::unique_key.eq(key))
                .filter(jobs::status.eq_any(active))
                .select(JobRow::as_select())
                .first(self)
                .await
                .optional()
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
    };
}

impl Dialect for AsyncPgConnection {
    common_methods!(lock = [.for_update()]);

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

    async fn complete_many(
        &mut self,
        items: &[Completion],
        now: DateTime<Utc>,
        origin: &str,
    ) -> Result<Vec<Option<Job>>, DbError> {
        if items.len() <= PG_BATCH_MAX {
            // One statement, one commit.
            return pg_complete_chunk(self, items, now, origin).await;
        }
        self.transaction::<_, DbError, _>(async |c| {
            let mut done = Vec::with_capacity(items.len());
            for chunk in items.chunks(PG_BATCH_MAX) {
                done.extend(pg_complete_chunk(c, chunk, now, origin).await?);
            }
            Ok(done)
        })
        .await
    }

    async fn insert_one(&mut self, row: JobRow, notify: Option<&Payload>) -> QResult<()> {
        let insert = diesel::insert_into(jobs::table).values(row);
        match notify {
            Some(p) => WithNotify {
                write: insert,
                channel: crate::db::NOTIFY_CHANNEL,
                payload: p.to_json(),
            }
            .execute(self)
            .await
            .map(|_| ()),
            None => insert.execute(self).await.map(|_| ()),
        }
    }

    async fn insert_rows(&mut self, rows: Vec<JobRow>) -> QResult<()> {
        diesel::insert_into(jobs::table)
            .values(rows)
            .execute(self)
            .await
            .map(|_| ())
    }

    async fn lock_due_webhooks(&mut self, now_us: i64, max: i64) -> QResult<Vec<JobRow>> {
        diesel::sql_query(concat!(
            "SELECT ",
            job_columns!(),
            " FROM jobs j WHERE j.webhook IS NOT NULL AND ((j.webhook ->> 'due_us')::BIGINT) <= $1 \
             ORDER BY ((j.webhook ->> 'due_us')::BIGINT), j.id LIMIT $2 FOR UPDATE SKIP LOCKED"
        ))
        .bind::<diesel::sql_types::BigInt, _>(now_us)
        .bind::<diesel::sql_types::BigInt, _>(max)
        .load(self)
        .await
    }

    async fn try_maintenance_lock(&mut self) -> QResult<bool> {
        let l: Locked = diesel::sql_query("SELECT pg_try_advisory_xact_lock($1) AS locked")
            .bind::<diesel::sql_types::BigInt, _>(PRUNE_LOCK_KEY)
            .get_result(self)
            .await?;
        Ok(l.locked)
    }

    async fn notify_all(&mut self, payloads: &[Payload]) -> QResult<()> {
        // One statement for all of them.
        if payloads.is_empty() {
            return Ok(());
        }
        let texts: Vec<String> = payloads.iter().map(Payload::to_json).collect();
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

type PgQuery =
    diesel::query_builder::BoxedSqlQuery<'static, diesel::pg::Pg, diesel::query_builder::SqlQuery>;

/// Binds `$1`..`$11` of [`complete_ctes!`]: the completions as eleven arrays.
fn bind_completions(q: PgQuery, items: &[Completion], now: DateTime<Utc>) -> PgQuery {
    use diesel::sql_types::{Array, Bool, Integer, Nullable, Text};

    use crate::types::{DbJson, DbTime, DbUuid, Json};
    let mut ids = Vec::with_capacity(items.len());
    let mut owners = Vec::with_capacity(items.len());
    let mut attempts = Vec::with_capacity(items.len());
    let mut oks = Vec::with_capacity(items.len());
    let mut results: Vec<Option<Json>> = Vec::with_capacity(items.len());
    let mut errors: Vec<Option<String>> = Vec::with_capacity(items.len());
    let mut codes: Vec<Option<String>> = Vec::with_capacity(items.len());
    let mut details: Vec<Option<Json>> = Vec::with_capacity(items.len());
    let mut completed = Vec::with_capacity(items.len());
    let mut retry_at: Vec<Option<Ts>> = Vec::with_capacity(items.len());
    let mut last_errors: Vec<Option<Json>> = Vec::with_capacity(items.len());
    for c in items {
        ids.push(Id(c.fence.job_id));
        owners.push(c.fence.owner.clone());
        attempts.push(c.fence.attempt);
        completed.push(c.completed);
        let (err, at) = match &c.outcome {
            Outcome::Succeeded(_) => (None, None),
            Outcome::Failed(e) => (Some(e), None),
            Outcome::Retry { error, delay } => (
                Some(error),
                Some(Ts::micros(rules::lease_until(now, *delay))),
            ),
        };
        retry_at.push(at);
        last_errors.push(err.and_then(|e| {
            serde_json::to_value(jobs_core::AttemptError {
                attempt: c.fence.attempt,
                code: e.code().to_owned(),
                message: e.message().to_owned(),
                details: e.details().cloned(),
                retryable: e.is_retryable(),
                at: Ts::micros(now).0,
            })
            .ok()
            .map(Json)
        }));
        match &c.outcome {
            Outcome::Succeeded(r) => {
                oks.push(true);
                results.push(Some(Json(r.0.clone())));
                errors.push(None);
                codes.push(None);
                details.push(None);
            }
            Outcome::Failed(e) | Outcome::Retry { error: e, .. } => {
                oks.push(false);
                results.push(e.result().cloned().map(Json));
                errors.push(Some(e.message().to_owned()));
                codes.push(Some(e.code().to_owned()));
                details.push(e.details().cloned().map(Json));
            }
        }
    }
    q.bind::<Array<DbUuid>, _>(ids)
        .bind::<Array<Text>, _>(owners)
        .bind::<Array<Integer>, _>(attempts)
        .bind::<Array<Bool>, _>(oks)
        .bind::<Array<Nullable<DbJson>>, _>(results)
        .bind::<Array<Nullable<Text>>, _>(errors)
        .bind::<Array<Nullable<Text>>, _>(codes)
        .bind::<Array<Nullable<DbJson>>, _>(details)
        .bind::<Array<Integer>, _>(completed)
        .bind::<Array<Nullable<DbTime>>, _>(retry_at)
        .bind::<Array<Nullable<DbJson>>, _>(last_errors)
}

/// A time as `serde_json` writes a `DateTime<Utc>` (what the Rust rules store).
fn json_time(t: DateTime<Utc>) -> String {
    serde_json::to_value(t)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| t.to_rfc3339())
}

/// The stored jobs answering `items`, in their order (`None`: the fence did not match).
fn answers(items: &[Completion], rows: Vec<JobRow>) -> Result<Vec<Option<Job>>, DbError> {
    let mut by_id: std::collections::HashMap<Uuid, Job> = rows
        .into_iter()
        .map(|r| r.into_job().map(|j| (j.id, j)))
        .collect::<Result<_, _>>()?;
    Ok(items
        .iter()
        .map(|c| by_id.remove(&c.fence.job_id))
        .collect())
}

async fn pg_complete_chunk(
    conn: &mut AsyncPgConnection,
    items: &[Completion],
    now: DateTime<Utc>,
    origin: &str,
) -> Result<Vec<Option<Job>>, DbError> {
    use diesel::sql_types::{BigInt, Text};
    let now = Ts::micros(now).0;
    let q = bind_completions(diesel::sql_query(PG_COMPLETE).into_boxed(), items, now)
        .bind::<crate::types::DbTime, _>(Ts(now))
        .bind::<Text, _>(crate::db::NOTIFY_CHANNEL)
        .bind::<Text, _>(origin.to_owned())
        .bind::<Text, _>(json_time(now))
        .bind::<BigInt, _>(now.timestamp_micros());
    let rows: Vec<JobRow> = Cached(q).load(conn).await?;
    answers(items, rows)
}

/// `complete_many` on the synchronous SQLite connection, inside its transaction.
fn sqlite_complete(
    conn: &mut diesel::SqliteConnection,
    items: &[Completion],
    now: DateTime<Utc>,
) -> QResult<Vec<Option<Job>>> {
    let corrupt = |e: DbError| diesel::result::Error::DeserializationError(Box::new(e));
    let ids: Vec<Id> = items.iter().map(|i| Id(i.fence.job_id)).collect();
    let rows: Vec<JobRow> = diesel::RunQueryDsl::load(
        Cached(
            jobs::table
                .filter(jobs::id.eq_any(&ids))
                .select(JobRow::as_select()),
        ),
        conn,
    )?;
    let mut rows: std::collections::HashMap<Uuid, JobRow> =
        rows.into_iter().map(|r| (r.id.0, r)).collect();
    let mut done = Vec::with_capacity(items.len());
    for item in items {
        let job = match rows.remove(&item.fence.job_id) {
            Some(row) => {
                let mut job = row.into_job().map_err(corrupt)?;
                if rules::fence_matches(&job, &item.fence) {
                    rules::complete(&mut job, item.outcome.clone(), item.completed, now);
                    diesel::RunQueryDsl::execute(
                        Cached(
                            diesel::update(jobs::table.filter(jobs::id.eq(Id(job.id))))
                                .set(JobRow::from_job(&job)),
                        ),
                        conn,
                    )?;
                    Some(job)
                } else {
                    None
                }
            }
            None => None,
        };
        done.push(job);
    }
    Ok(done)
}

impl Dialect for SqliteConn {
    common_methods!(lock = []);

    async fn complete_many(
        &mut self,
        items: &[Completion],
        now: DateTime<Utc>,
        _origin: &str,
    ) -> Result<Vec<Option<Job>>, DbError> {
        // The whole transaction (read the rows, apply the shared rules, write them back, one
        // commit) in one trip to the blocking pool, not one per statement.
        let items = items.to_vec();
        let done = self
            .spawn_blocking(move |conn| {
                use diesel::Connection;
                conn.transaction(|conn| sqlite_complete(conn, &items, now))
            })
            .await?;
        Ok(done)
    }

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
            .filter(j2.field(jobs::run_at).le(now))
            .order((
                j2.field(jobs::priority).desc(),
                j2.field(jobs::run_at).asc(),
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

    async fn insert_one(&mut self, row: JobRow, _notify: Option<&Payload>) -> QResult<()> {
        diesel::insert_into(jobs::table)
            .values(row)
            .execute(self)
            .await
            .map(|_| ())
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

    async fn lock_due_webhooks(&mut self, now_us: i64, max: i64) -> QResult<Vec<JobRow>> {
        // One connection: the transaction is the lock.
        diesel::sql_query(concat!(
            "SELECT ",
            job_columns!(),
            " FROM jobs j WHERE j.webhook IS NOT NULL AND json_extract(j.webhook, '$.due_us') <= ? \
             ORDER BY json_extract(j.webhook, '$.due_us'), j.id LIMIT ?"
        ))
        .bind::<diesel::sql_types::BigInt, _>(now_us)
        .bind::<diesel::sql_types::BigInt, _>(max)
        .load(self)
        .await
    }

    async fn try_maintenance_lock(&mut self) -> QResult<bool> {
        Ok(true)
    }
}

pub(crate) fn to_jobs(rows: Vec<JobRow>) -> Result<Vec<Job>, DbError> {
    rows.into_iter().map(JobRow::into_job).collect()
}
