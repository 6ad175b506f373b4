//! Profile, file and transcript repositories (DESIGN §5–§6). Every read and delete is scoped
//! to a profile: another profile's id answers "not found".

use std::collections::BTreeSet;

use diesel::{
    BoolExpressionMethods, ExpressionMethods, OptionalExtension, QueryDsl, SelectableHelper,
};
use diesel_async::{AsyncConnection, RunQueryDsl};
use jobs_core::{Fence, JobStatus, rules};
use uuid::Uuid;

use crate::db::{Database, on_conn};
use crate::dialect::{Dialect, to_jobs};
use crate::error::DbError;
use crate::models::{
    FileKind, FileOrigin, FileRecord, FileRow, JobRow, TranscriptRecord, TranscriptRow,
};
use crate::schema::{files, jobs, profiles, transcripts};
use crate::types::{Id, Ts, valid_profile_id};

/// Inside a transaction: `Ok` while `fence` still holds its job and no cancel was asked for
/// (a cancelled job leaves no output), the job's row locked until the commit (PostgreSQL
/// `FOR UPDATE`; SQLite transactions are serial), so no reaper, other node or cancel can come
/// between the check and the write.
async fn holds<C: Dialect + Send>(c: &mut C, fence: &Fence) -> Result<(), DbError> {
    let held = match c.lock_job(fence.job_id).await? {
        Some(row) => {
            let job = row.into_job()?;
            rules::fence_matches(&job, fence) && !job.cancel_requested
        }
        None => false,
    };
    if held {
        Ok(())
    } else {
        Err(DbError::FenceLost(fence.job_id))
    }
}

/// How many jobs have a type, lane and status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobCount {
    /// Job type.
    pub job_type: String,
    /// Lane.
    pub lane: String,
    /// Status name.
    pub status: String,
    /// Number of jobs.
    pub count: i64,
}

/// One page of a newest-first list (files, transcripts): keyset pagination on
/// `(created_at, id)`, so pages stay stable while rows are added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// At most this many rows (clamped to 1–1000).
    pub limit: usize,
    /// Only rows older than this one (the last id of the previous page). It must be a row of
    /// the same profile: another id is `Invalid`.
    pub before: Option<Uuid>,
}

impl Default for Page {
    fn default() -> Self {
        Page {
            limit: 100,
            before: None,
        }
    }
}

impl Page {
    fn limit(&self) -> i64 {
        i64::try_from(self.limit.clamp(1, 1000)).unwrap_or(1000)
    }
}

/// Which of a profile's files to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileFilter {
    /// Only this kind.
    pub kind: Option<FileKind>,
    /// Only this origin.
    pub origin: Option<FileOrigin>,
    /// Only files made from this file.
    pub source_file_id: Option<Uuid>,
}

/// What deleting a file removed.
#[derive(Debug, Clone, PartialEq)]
pub struct FileDeletion {
    /// The deleted file (its bytes are the caller's to remove, at `storage_key`).
    pub file: FileRecord,
    /// Jobs that referenced the file and were deleted with it (children included).
    pub deleted_job_ids: Vec<Uuid>,
}

impl Database {
    /// Creates the profile if it does not exist.
    pub async fn ensure_profile(&self, id: &str) -> Result<(), DbError> {
        if !valid_profile_id(id) {
            return Err(DbError::invalid(format!(
                "profile id '{id}' must be 1-64 of [A-Za-z0-9_-]"
            )));
        }
        let now = Ts::micros(self.now());
        on_conn!(self, c => { c.ensure_profile(id, now).await?; });
        Ok(())
    }

    /// The profile's default completion webhook URL (used when a submission names none).
    pub async fn profile_webhook(&self, id: &str) -> Result<Option<String>, DbError> {
        let url: Option<Option<String>> = on_conn!(self, c => {
            profiles::table
                .find(id)
                .select(profiles::webhook_url)
                .first(c)
                .await
                .optional()?
        });
        Ok(url.flatten())
    }

    /// Sets (or with `None` clears) the profile's default webhook URL, creating the profile.
    pub async fn set_profile_webhook(&self, id: &str, url: Option<&str>) -> Result<(), DbError> {
        self.ensure_profile(id).await?;
        on_conn!(self, c => {
            diesel::update(profiles::table.find(id))
                .set(profiles::webhook_url.eq(url))
                .execute(c)
                .await?;
        });
        Ok(())
    }

    /// Number of profiles (for metrics and tests).
    pub async fn count_profiles(&self) -> Result<i64, DbError> {
        Ok(on_conn!(self, c => profiles::table.count().get_result::<i64>(c).await?))
    }

    /// Stores a file's metadata (creating its profile on first use).
    pub async fn insert_file(&self, f: &FileRecord) -> Result<FileRecord, DbError> {
        self.insert_file_fenced(f, None).await
    }

    /// [`Database::insert_file`] for a job's output: with a `fence`, the record is stored only
    /// if the job still runs under it and no cancel was asked for, checked with the job's row
    /// locked in the same transaction, so a node that lost the lease (paused past it, say)
    /// never adds a second output next to the one of the node that took the job over, and a
    /// cancelled job leaves none ([`DbError::FenceLost`]).
    pub async fn insert_file_fenced(
        &self,
        f: &FileRecord,
        fence: Option<&Fence>,
    ) -> Result<FileRecord, DbError> {
        let now = Ts::micros(self.now());
        let row = FileRow::from_record(f);
        on_conn!(self, c => {
            c.transaction::<_, DbError, _>(async |c| {
                if let Some(fence) = fence {
                    holds(c, fence).await?;
                }
                c.ensure_profile(&f.profile_id, now).await?;
                diesel::insert_into(files::table)
                    .values(&row)
                    .execute(c)
                    .await
                    .map_err(|e| DbError::constraint(e, "file"))?;
                Ok(())
            })
            .await?
        });
        row.into_record()
    }

    /// One file of a profile.
    pub async fn get_file(
        &self,
        profile_id: &str,
        id: Uuid,
    ) -> Result<Option<FileRecord>, DbError> {
        let row: Option<FileRow> = on_conn!(self, c => {
            files::table
                .filter(files::id.eq(Id(id)))
                .filter(files::profile_id.eq(profile_id))
                .select(FileRow::as_select())
                .first(c)
                .await
                .optional()?
        });
        row.map(FileRow::into_record).transpose()
    }

    /// Several files of a profile, in the order asked; unknown ids are missing from the result.
    pub async fn get_files(
        &self,
        profile_id: &str,
        ids: &[Uuid],
    ) -> Result<Vec<FileRecord>, DbError> {
        let keys: Vec<Id> = ids.iter().copied().map(Id).collect();
        let rows: Vec<FileRow> = on_conn!(self, c => {
            files::table
                .filter(files::id.eq_any(&keys))
                .filter(files::profile_id.eq(profile_id))
                .select(FileRow::as_select())
                .load(c)
                .await?
        });
        let mut recs = rows
            .into_iter()
            .map(FileRow::into_record)
            .collect::<Result<Vec<_>, _>>()?;
        recs.sort_by_key(|r| ids.iter().position(|i| *i == r.id));
        Ok(recs)
    }

    /// A page of a profile's files, newest first.
    pub async fn list_files(
        &self,
        profile_id: &str,
        filter: &FileFilter,
        page: Page,
    ) -> Result<Vec<FileRecord>, DbError> {
        let cursor = match page.before {
            Some(b) => {
                let f = self.get_file(profile_id, b).await?.ok_or_else(|| {
                    DbError::Store(jobs_core::StoreError::Invalid(format!(
                        "unknown cursor file {b}"
                    )))
                })?;
                Some((Ts::micros(f.created_at), Id(f.id)))
            }
            None => None,
        };
        let kind = filter.kind.map(FileKind::as_str);
        let origin = filter.origin.map(FileOrigin::as_str);
        let rows: Vec<FileRow> = on_conn!(self, c => {
            let mut q = files::table
                .filter(files::profile_id.eq(profile_id))
                .select(FileRow::as_select())
                .into_boxed();
            if let Some(k) = kind {
                q = q.filter(files::kind.eq(k));
            }
            if let Some(o) = origin {
                q = q.filter(files::origin.eq(o));
            }
            if let Some(s) = filter.source_file_id {
                q = q.filter(files::source_file_id.eq(Id(s)));
            }
            if let Some((at, id)) = cursor {
                q = q.filter(
                    files::created_at
                        .lt(at)
                        .or(files::created_at.eq(at).and(files::id.lt(id))),
                );
            }
            q.order((files::created_at.desc(), files::id.desc()))
                .limit(page.limit())
                .load(c)
                .await?
        });
        rows.into_iter().map(FileRow::into_record).collect()
    }

    /// Deletes a file and the jobs that reference it (their children too). `Conflict` while a
    /// running job uses it. Derived files keep existing (`source_file_id` becomes NULL);
    /// transcripts keep their text (`file_id` becomes NULL).
    pub async fn delete_file(&self, profile_id: &str, id: Uuid) -> Result<FileDeletion, DbError> {
        on_conn!(self, c => {
            c.transaction::<_, DbError, _>(async |c| {
                let row: FileRow = files::table
                    .filter(files::id.eq(Id(id)))
                    .filter(files::profile_id.eq(profile_id))
                    .select(FileRow::as_select())
                    .first(c)
                    .await
                    .optional()?
                    .ok_or_else(|| DbError::not_found(format!("file {id}")))?;
                let users = to_jobs(c.lock_jobs_of_file(id).await?)?;
                if let Some(r) = users.iter().find(|j| j.status == JobStatus::Running) {
                    return Err(DbError::conflict(format!(
                        "file {id} is in use by running job {}; cancel it first",
                        r.id
                    )));
                }
                let mut deleted: BTreeSet<Uuid> = BTreeSet::new();
                for j in &users {
                    let kids: Vec<JobRow> = jobs::table
                        .filter(jobs::parent_id.eq(Id(j.id)))
                        .select(JobRow::as_select())
                        .load(c)
                        .await?;
                    deleted.extend(kids.iter().map(|k| k.id.0));
                    deleted.insert(j.id);
                }
                for j in &users {
                    diesel::delete(jobs::table.filter(jobs::parent_id.eq(Id(j.id))))
                        .execute(c)
                        .await?;
                }
                diesel::delete(jobs::table.filter(jobs::file_id.eq(Id(id))))
                    .execute(c)
                    .await?;
                diesel::delete(files::table.filter(files::id.eq(Id(id))))
                    .execute(c)
                    .await?;
                Ok(FileDeletion {
                    file: row.into_record()?,
                    deleted_job_ids: deleted.into_iter().collect(),
                })
            })
            .await
        })
    }

    /// Number of jobs per (type, lane, status), for metrics.
    pub async fn job_counts(&self) -> Result<Vec<JobCount>, DbError> {
        let rows: Vec<(String, String, String, i64)> = on_conn!(self, c => {
            jobs::table
                .group_by((jobs::job_type, jobs::lane, jobs::status))
                .select((jobs::job_type, jobs::lane, jobs::status, diesel::dsl::count_star()))
                .load(c)
                .await?
        });
        Ok(rows
            .into_iter()
            .map(|(job_type, lane, status, count)| JobCount {
                job_type,
                lane,
                status,
                count,
            })
            .collect())
    }

    /// Per lane, when its longest-waiting claimable queued job became due (`run_at`, which is
    /// the submit time of a job never delayed): how far behind the lane is.
    pub async fn oldest_due_queued(
        &self,
    ) -> Result<Vec<(String, chrono::DateTime<chrono::Utc>)>, DbError> {
        let now = Ts::micros(self.now());
        let rows: Vec<(String, Option<Ts>)> = on_conn!(self, c => {
            jobs::table
                .filter(jobs::status.eq(JobStatus::Queued.as_str()))
                .filter(jobs::claimable.eq(true))
                .filter(jobs::run_at.le(now))
                .group_by(jobs::lane)
                .select((jobs::lane, diesel::dsl::min(jobs::run_at)))
                .load(c)
                .await?
        });
        Ok(rows
            .into_iter()
            .filter_map(|(lane, at)| at.map(|t| (lane, t.0)))
            .collect())
    }

    /// Stores a transcript.
    pub async fn insert_transcript(
        &self,
        t: &TranscriptRecord,
    ) -> Result<TranscriptRecord, DbError> {
        self.insert_transcript_fenced(t, None).await
    }

    /// [`Database::insert_transcript`] for a job's output, stored only while `fence` holds
    /// (as [`Database::insert_file_fenced`]).
    pub async fn insert_transcript_fenced(
        &self,
        t: &TranscriptRecord,
        fence: Option<&Fence>,
    ) -> Result<TranscriptRecord, DbError> {
        let now = Ts::micros(self.now());
        let row = TranscriptRow::from_record(t);
        on_conn!(self, c => {
            c.transaction::<_, DbError, _>(async |c| {
                if let Some(fence) = fence {
                    holds(c, fence).await?;
                }
                c.ensure_profile(&t.profile_id, now).await?;
                diesel::insert_into(transcripts::table)
                    .values(&row)
                    .execute(c)
                    .await
                    .map_err(|e| DbError::constraint(e, "transcript"))?;
                Ok(())
            })
            .await?
        });
        Ok(row.into_record())
    }

    /// One transcript of a profile.
    pub async fn get_transcript(
        &self,
        profile_id: &str,
        id: Uuid,
    ) -> Result<Option<TranscriptRecord>, DbError> {
        let row: Option<TranscriptRow> = on_conn!(self, c => {
            transcripts::table
                .filter(transcripts::id.eq(Id(id)))
                .filter(transcripts::profile_id.eq(profile_id))
                .select(TranscriptRow::as_select())
                .first(c)
                .await
                .optional()?
        });
        Ok(row.map(TranscriptRow::into_record))
    }

    /// A page of a profile's transcripts, newest first; `file_id` keeps those of one file.
    pub async fn list_transcripts(
        &self,
        profile_id: &str,
        file_id: Option<Uuid>,
        page: Page,
    ) -> Result<Vec<TranscriptRecord>, DbError> {
        let cursor = match page.before {
            Some(b) => {
                let t = self.get_transcript(profile_id, b).await?.ok_or_else(|| {
                    DbError::Store(jobs_core::StoreError::Invalid(format!(
                        "unknown cursor transcript {b}"
                    )))
                })?;
                Some((Ts::micros(t.created_at), Id(t.id)))
            }
            None => None,
        };
        let rows: Vec<TranscriptRow> = on_conn!(self, c => {
            let mut q = transcripts::table
                .filter(transcripts::profile_id.eq(profile_id))
                .select(TranscriptRow::as_select())
                .into_boxed();
            if let Some(f) = file_id {
                q = q.filter(transcripts::file_id.eq(Id(f)));
            }
            if let Some((at, id)) = cursor {
                q = q.filter(
                    transcripts::created_at
                        .lt(at)
                        .or(transcripts::created_at.eq(at).and(transcripts::id.lt(id))),
                );
            }
            q.order((transcripts::created_at.desc(), transcripts::id.desc()))
                .limit(page.limit())
                .load(c)
                .await?
        });
        Ok(rows.into_iter().map(TranscriptRow::into_record).collect())
    }

    /// Deletes a transcript of a profile; `NotFound` otherwise.
    pub async fn delete_transcript(&self, profile_id: &str, id: Uuid) -> Result<(), DbError> {
        let n = on_conn!(self, c => {
            diesel::delete(
                transcripts::table
                    .filter(transcripts::id.eq(Id(id)))
                    .filter(transcripts::profile_id.eq(profile_id)),
            )
            .execute(c)
            .await?
        });
        if n == 0 {
            return Err(DbError::not_found(format!("transcript {id}")));
        }
        Ok(())
    }
}
