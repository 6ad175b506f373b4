//! [`Services`]: what the media jobs need (database, media directory, processor backends),
//! the checks a submission passes before anything is queued, the one way a file is added to
//! a profile, and enqueueing a [`JobSpec`].

use std::path::PathBuf;
use std::sync::Arc;

use chrono::Utc;
use jobs_core::{Fence, Job, JobContext, QueueManager};
use mediajobs_persistence::{Database, FileKind, FileOrigin, FileRecord};
use mediajobs_processor::llm::SubtitleRefiner;
use mediajobs_processor::media::{Converter, MediaKind, MediaProbe};
use mediajobs_processor::subtitle::{decode_text, parse_any};
use mediajobs_processor::transcribe::{TranscribeOptions, Transcriber};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::error::MediaJobError;
use crate::http_form::{check_batch_ids, parse_params};
use crate::job_spec::{JobSpec, Params};
use crate::retry::{DB_RETRY_WINDOW, with_db_retries};
use crate::spec::Operation;
use crate::speed::SpeedBook;
use crate::storage::{MediaStore, TempFile, content_type_for, hash_file};
use jobs_core::ErrorCode;

/// Everything the handlers need.
pub struct Services {
    /// Database (files, transcripts).
    pub db: Database,
    /// Media directory.
    pub media: MediaStore,
    /// Probing (GStreamer).
    pub probe: Arc<dyn MediaProbe>,
    /// MP4 conversion (GStreamer).
    pub converter: Arc<dyn Converter>,
    /// Transcription, or why it is unavailable (e.g. no model file).
    pub transcriber: Result<Arc<dyn Transcriber>, String>,
    /// LLM subtitle fixing.
    pub refiner: Arc<dyn SubtitleRefiner>,
    /// Concurrency of I/O-bound batches (the `io` lane's permits).
    pub io_concurrency: usize,
    /// This node's measured speed: derived deadlines and ETAs.
    pub speed: Arc<SpeedBook>,
}

/// How a submission is scheduled and followed: the fields of `POST /jobs` beside the job
/// (ADR 016–019). The default runs at once, at priority 0, with the operation's dedupe default.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SubmitOptions {
    /// Not before this time.
    pub run_at: Option<chrono::DateTime<Utc>>,
    /// Claim order within the lane (higher first).
    pub priority: i16,
    /// At most one active job per key in the profile: a second submission returns the first.
    pub unique_key: Option<String>,
    /// Reuse an identical earlier result (`None`: on for `generate_srt`/`transcribe`).
    pub dedupe: Option<bool>,
    /// Where the completion webhook goes (checked by the caller's URL policy).
    pub webhook_url: Option<String>,
    /// An explicit deadline, overriding the one derived from the media.
    pub timeout_seconds: Option<u64>,
}

/// What [`Services::enqueue_with`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct Enqueued {
    /// The job (the batch parent), new or existing.
    pub job: Job,
    /// `true` when `unique_key` matched an active job, which is returned instead of a new one.
    pub existing: bool,
}

/// The reuse key of a transcription: the profile, the operation, the content (SHA-256), the
/// effective options (canonical JSON) and the model. Equal keys give equal results.
pub fn dedupe_key(
    profile: &str,
    op: Operation,
    sha256: &str,
    params: &Value,
    model: &str,
) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for part in [
        profile,
        op.name(),
        sha256,
        &canonical(params).to_string(),
        model,
    ] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    format!("{}:{}", op.name(), hex::encode(h.finalize()))
}

/// `v` with every object's keys sorted (so equal options give equal text).
fn canonical(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let sorted: std::collections::BTreeMap<&String, Value> =
                m.iter().map(|(k, v)| (k, canonical(v))).collect();
            Value::Object(sorted.into_iter().map(|(k, v)| (k.clone(), v)).collect())
        }
        Value::Array(a) => Value::Array(a.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services")
            .field("media", &self.media)
            .finish_non_exhaustive()
    }
}

/// A submission in its HTTP form: a job type, its files, the raw `opts` object and the
/// `fix_srt` fields. [`Services::prepare`] turns it into a checked [`JobSpec`].
#[derive(Debug, Clone, PartialEq)]
pub struct Submission {
    /// The job type (`convert`, `batch_convert`, …).
    pub job_type: String,
    /// Whether this is a batch submission (`POST /jobs/batch`).
    pub batch: bool,
    /// The input files.
    pub file_ids: Vec<Uuid>,
    /// The `opts` object.
    pub opts: Option<Value>,
    /// `provider:model` (`fix_srt` only).
    pub model: Option<String>,
    /// System prompt override (`fix_srt` only).
    pub sys_msg: Option<String>,
}

/// What a new profile file is: everything but its bytes, hash and storage key.
#[derive(Debug, Clone, PartialEq)]
pub struct NewFile {
    /// The owning profile.
    pub profile_id: String,
    /// Display name.
    pub name: String,
    /// Kind.
    pub kind: FileKind,
    /// MIME type.
    pub content_type: Option<String>,
    /// Media duration.
    pub duration_ms: Option<i64>,
    /// The file it was made from (job outputs).
    pub source_file_id: Option<Uuid>,
    /// Uploaded, generated, converted, fixed.
    pub origin: FileOrigin,
    /// Folder label.
    pub folder: Option<String>,
    /// Subtitles: the text encoding of the upload (the stored bytes are UTF-8).
    pub source_encoding: Option<String>,
}

/// An uploaded body in a temp file, with what the upload measured on the way.
#[derive(Debug)]
pub struct Upload {
    /// The bytes.
    pub tmp: TempFile,
    /// SHA-256 (hex) and size, computed while streaming.
    pub digest: (String, u64),
    /// Sanitized display name.
    pub name: String,
    /// The kind the client expects (checked against the content).
    pub expect: Option<FileKind>,
    /// Audio or video only: subtitles are refused (`WrongFileKind`), as the transcription
    /// routes of the compatible APIs need.
    pub media_only: bool,
    /// Folder label.
    pub folder: Option<String>,
}

impl Services {
    /// Checks transcription options against the backend (or says why it is unavailable).
    pub fn check_transcribe(&self, opts: &TranscribeOptions) -> Result<(), MediaJobError> {
        match &self.transcriber {
            Ok(t) => t.validate(opts).map_err(MediaJobError::from),
            Err(why) => Err(MediaJobError::new(
                ErrorCode::WhisperUnavailable,
                why.clone(),
            )),
        }
    }

    /// Writes the backend's default model into a transcription's options that name none,
    /// and whether voice activity detection runs into those that do not say, so the stored
    /// job says what it runs (and a later change of the default, or a VAD model installed
    /// later, does not change what a retry of it runs).
    pub fn pin_model(&self, params: &mut Params) {
        let (opts, subtitles) = match params {
            Params::GenerateSrt(p) => (&mut p.opts, true),
            Params::Transcribe(p) => (&mut p.opts, false),
            Params::Convert(_) | Params::FixSrt(_) => return,
        };
        let Ok(t) = &self.transcriber else { return };
        if opts.model.as_deref().is_none_or(|m| m.trim().is_empty()) {
            opts.model = t.default_model();
        }
        if opts.vad.is_none() {
            opts.vad = Some(TranscribeOptions::vad_default(subtitles, t.vad_available()));
        }
    }

    /// The checks of typed options against the running backends: transcription options
    /// the backend can honour, a `provider:model` selector that resolves.
    pub fn check_params(&self, params: &Params) -> Result<(), MediaJobError> {
        match params {
            Params::GenerateSrt(p) => self.check_transcribe(&p.opts),
            Params::Transcribe(p) => self.check_transcribe(&p.opts),
            Params::Convert(_) => Ok(()),
            Params::FixSrt(p) => {
                self.refiner
                    .validate_model(p.model.trim())
                    .map_err(MediaJobError::from)?;
                if let Some(s) = &p.sys_msg
                    && s.chars().count() > 4000
                {
                    return Err(MediaJobError::validation(
                        "sys_msg must be at most 4000 characters",
                    ));
                }
                Ok(())
            }
        }
    }

    /// The path of a stored file, if it is there.
    pub fn file_path(&self, rec: &FileRecord) -> Result<PathBuf, MediaJobError> {
        let path = self.media.path(&rec.storage_key).ok_or_else(|| {
            MediaJobError::storage(format!("bad storage key {}", rec.storage_key))
        })?;
        if !path.is_file() {
            return Err(MediaJobError::storage(format!(
                "missing media file {}",
                path.display()
            )));
        }
        Ok(path)
    }

    /// The profile's files with these ids, in order; `NotFound` listing the missing ones.
    async fn files_of(
        &self,
        profile: &str,
        ids: &[Uuid],
        batch: bool,
    ) -> Result<Vec<FileRecord>, MediaJobError> {
        if !batch {
            let mut out = Vec::new();
            for id in ids {
                let f = self
                    .db
                    .get_file(profile, *id)
                    .await
                    .map_err(MediaJobError::from)?
                    .ok_or_else(|| MediaJobError::not_found(format!("file {id}")))?;
                out.push(f);
            }
            return Ok(out);
        }
        let files = self
            .db
            .get_files(profile, ids)
            .await
            .map_err(MediaJobError::from)?;
        if files.len() != ids.len() {
            let missing: Vec<Uuid> = ids
                .iter()
                .filter(|id| !files.iter().any(|f| f.id == **id))
                .copied()
                .collect();
            return Err(
                MediaJobError::not_found(format!("{} file(s)", missing.len()))
                    .details(json!({ "missing_file_ids": missing })),
            );
        }
        Ok(files)
    }

    /// Checks that each file suits the operation (`WrongFileKind` otherwise).
    fn check_kinds(op: Operation, files: &[FileRecord]) -> Result<(), MediaJobError> {
        for f in files {
            if !op.accepts(f.kind) {
                return Err(MediaJobError::new(
                    ErrorCode::WrongFileKind,
                    format!(
                        "{} needs {}; file {} is {}",
                        op.name(),
                        op.wants(),
                        f.id,
                        f.kind.as_str()
                    ),
                )
                .details(json!({ "file_id": f.id, "kind": f.kind.as_str() })));
            }
        }
        Ok(())
    }

    /// Transcription inputs must have sound: a video without an audio stream is refused now
    /// (`NoAudioStream`, each such file of a batch listed) rather than failing later.
    async fn check_audio(&self, op: Operation, files: &[FileRecord]) -> Result<(), MediaJobError> {
        if !matches!(op, Operation::GenerateSrt | Operation::Transcribe) {
            return Ok(());
        }
        let mut silent = Vec::new();
        for f in files.iter().filter(|f| f.kind == FileKind::Video) {
            let path = self.file_path(f)?;
            match self.probe.probe(&path).await {
                Ok(info) if info.audio.is_none() => silent.push(f.id),
                Ok(_) => {}
                // An unreadable file fails its job with MediaDecode, as before.
                Err(e) => {
                    tracing::debug!(file_id = %f.id, error = %e, "probe at submission failed")
                }
            }
        }
        match silent.as_slice() {
            [] => Ok(()),
            [one] if files.len() == 1 => Err(MediaJobError::new(
                ErrorCode::NoAudioStream,
                format!("file {one} has no audio stream to transcribe"),
            )
            .details(json!({ "file_id": one }))),
            many => Err(MediaJobError::new(
                ErrorCode::NoAudioStream,
                format!("{} of the files have no audio stream to transcribe", many.len()),
            )
            .details(json!({
                "files": many.iter().map(|id| json!({"file_id": id, "code": "NoAudioStream"})).collect::<Vec<_>>()
            }))),
        }
    }

    /// `fix_srt` inputs must parse as SRT/VTT.
    async fn check_subtitle_parses(&self, f: &FileRecord) -> Result<(), MediaJobError> {
        let path = self
            .media
            .path(&f.storage_key)
            .ok_or_else(|| MediaJobError::storage("bad storage key"))?;
        let bytes = tokio::fs::read(&path)
            .await
            .map_err(MediaJobError::storage)?;
        parse_any(&String::from_utf8_lossy(&bytes))
            .map(|_| ())
            .map_err(|e| {
                MediaJobError::validation(format!("file {} is not a valid SRT/VTT file: {e}", f.id))
            })
    }

    /// Checks an HTTP submission, in the order of the contract: the job type, the batch file
    /// list, the files exist in the profile, their kinds, the options, and (`fix_srt`) that
    /// the inputs parse. Nothing is queued.
    pub async fn prepare(&self, profile: &str, sub: Submission) -> Result<JobSpec, MediaJobError> {
        let op = Operation::parse(&sub.job_type, sub.batch)?;
        if sub.batch {
            check_batch_ids(&sub.file_ids)?;
        }
        let files = self.files_of(profile, &sub.file_ids, sub.batch).await?;
        Self::check_kinds(op, &files)?;
        let mut params = parse_params(
            op,
            sub.opts.as_ref(),
            sub.model.as_deref(),
            sub.sys_msg.as_deref(),
        )?;
        self.pin_model(&mut params);
        self.check_params(&params)?;
        self.check_audio(op, &files).await?;
        if op == Operation::FixSrt {
            for f in &files {
                self.check_subtitle_parses(f).await?;
            }
        }
        JobSpec::new(params, sub.file_ids, sub.batch)
    }

    /// Checks a typed spec (as a Rust caller builds it) by the same rules as
    /// [`prepare`](Services::prepare).
    pub async fn check_spec(&self, profile: &str, spec: &JobSpec) -> Result<(), MediaJobError> {
        spec.check()?;
        let op = spec.operation();
        let files = self
            .files_of(profile, &spec.file_ids(), spec.is_batch())
            .await?;
        Self::check_kinds(op, &files)?;
        self.check_params(&spec.params())?;
        self.check_audio(op, &files).await?;
        if op == Operation::FixSrt {
            for f in &files {
                self.check_subtitle_parses(f).await?;
            }
        }
        Ok(())
    }

    /// Stores the job(s) of a checked spec and wakes the workers; returns the job (the
    /// parent, for a batch). [`enqueue_with`](Services::enqueue_with) with the defaults.
    pub async fn enqueue(
        &self,
        manager: &QueueManager,
        profile: &str,
        spec: &JobSpec,
    ) -> Result<Job, MediaJobError> {
        Ok(self
            .enqueue_with(manager, profile, spec, &SubmitOptions::default())
            .await?
            .job)
    }

    /// Stores the job(s) of a checked spec with its scheduling, and wakes the workers.
    ///
    /// Each job records its input's duration (deadline, ETA) and, for the transcription
    /// operations with dedupe on, a reuse key; when a succeeded job of the profile has the
    /// same key and its output is still there, the new job reuses it: it runs on the `io` lane
    /// and copies that result into an output of its own instead of running whisper.
    pub async fn enqueue_with(
        &self,
        manager: &QueueManager,
        profile: &str,
        spec: &JobSpec,
        opts: &SubmitOptions,
    ) -> Result<Enqueued, MediaJobError> {
        let ids = spec.file_ids();
        let files = self.files_of(profile, &ids, spec.is_batch()).await?;
        let op = spec.operation();
        let dedupe = opts.dedupe.unwrap_or(op.dedupes_by_default()) && op.dedupes_by_default();
        let mut jobs = Vec::with_capacity(files.len());
        for f in &files {
            jobs.push(self.child_job(profile, spec, f, opts, dedupe).await?);
        }
        let unique = opts.unique_key.as_ref().map(|k| format!("{profile}/{k}"));
        if !spec.is_batch() {
            let Some(mut nj) = jobs.pop() else {
                return Err(MediaJobError::validation("a job needs a file"));
            };
            nj.priority = opts.priority;
            nj.run_at = opts.run_at;
            nj.unique_key = unique;
            nj.webhook_url.clone_from(&opts.webhook_url);
            let asked = nj.id;
            let job = manager.enqueue(nj).await?;
            let existing = job.id != asked;
            return Ok(Enqueued { job, existing });
        }
        let (mut parent, _) = spec
            .batch_new_jobs(profile)
            .map_err(MediaJobError::internal)?;
        parent.priority = opts.priority;
        parent.run_at = opts.run_at;
        parent.unique_key = unique;
        parent.webhook_url.clone_from(&opts.webhook_url);
        for c in &mut jobs {
            c.priority = opts.priority;
        }
        let asked = parent.id;
        let job = manager.enqueue_batch(parent, jobs).await?.0;
        let existing = job.id != asked;
        Ok(Enqueued { job, existing })
    }

    /// The job of one file of a spec (a single job, or a batch child): the options, the run
    /// hints, and the reuse key and reused job.
    async fn child_job(
        &self,
        profile: &str,
        spec: &JobSpec,
        file: &FileRecord,
        opts: &SubmitOptions,
        dedupe: bool,
    ) -> Result<jobs_core::NewJob, MediaJobError> {
        let op = spec.operation();
        let mut run = crate::spec::RunHints {
            timeout_seconds: opts.timeout_seconds,
            media_ms: file.duration_ms,
            reuse_from: None,
        };
        let mut nj = spec
            .single_new_job(profile, file.id, &run)
            .map_err(MediaJobError::internal)?;
        if dedupe {
            let key = dedupe_key(
                profile,
                op,
                &file.sha256,
                &spec.params_json(),
                self.speed.model(),
            );
            if let Some(prev) = self.reusable(profile, &key).await? {
                run.reuse_from = Some(prev);
                run.apply(&mut nj.params);
                // Copying a result is I/O, not inference.
                nj.lane = Some(jobs_core::lanes::IO.to_owned());
            }
            nj.dedupe_key = Some(key);
        }
        Ok(nj)
    }

    /// A succeeded job with this reuse key whose output is still stored.
    async fn reusable(&self, profile: &str, key: &str) -> Result<Option<Uuid>, MediaJobError> {
        use jobs_core::JobStore;
        let Some(prev) = self
            .db
            .find_reusable(key)
            .await
            .map_err(MediaJobError::from)?
        else {
            return Ok(None);
        };
        let result = prev.result.clone().unwrap_or_default();
        let there = if let Some(id) = result.get("srt_file_id").and_then(|v| v.as_str()) {
            match Uuid::parse_str(id) {
                Ok(id) => self
                    .db
                    .get_file(profile, id)
                    .await
                    .map_err(MediaJobError::from)?
                    .is_some(),
                Err(_) => false,
            }
        } else if let Some(id) = result.get("transcript_id").and_then(|v| v.as_str()) {
            match Uuid::parse_str(id) {
                Ok(id) => self
                    .db
                    .get_transcript(profile, id)
                    .await
                    .map_err(MediaJobError::from)?
                    .is_some(),
                Err(_) => false,
            }
        } else {
            false
        };
        Ok(there.then_some(prev.id))
    }

    /// Adds a file to a profile — the one way uploads and job outputs alike become files:
    /// hash (unless the upload measured it already), move into place under a server-made
    /// key, insert the record; on a failed insert the bytes are removed again.
    pub async fn add_file(
        &self,
        tmp: TempFile,
        digest: Option<(String, u64)>,
        new: NewFile,
    ) -> Result<FileRecord, MediaJobError> {
        self.add(tmp, digest, new, None, &CancellationToken::new())
            .await
    }

    /// [`Services::add_file`] for a running job's output: the record is inserted only while
    /// the job still holds its lease (the fence is checked in the insert's transaction), and
    /// a database outage is waited out ([`crate::retry`]) until the job's token fires.
    /// A lost lease or a fired token answers `Cancelled`, and nothing is left behind.
    pub async fn add_output(
        &self,
        ctx: &JobContext,
        tmp: TempFile,
        new: NewFile,
    ) -> Result<FileRecord, MediaJobError> {
        self.add(tmp, None, new, Some(ctx.fence()), ctx.cancellation_token())
            .await
    }

    async fn add(
        &self,
        tmp: TempFile,
        digest: Option<(String, u64)>,
        new: NewFile,
        fence: Option<&Fence>,
        token: &CancellationToken,
    ) -> Result<FileRecord, MediaJobError> {
        let (sha256, size) = match digest {
            Some(d) => d,
            None => hash_file(tmp.path())
                .await
                .map_err(MediaJobError::storage)?,
        };
        let id = Uuid::now_v7();
        let key = MediaStore::key_for(id);
        self.media
            .commit(tmp, &key)
            .await
            .map_err(MediaJobError::storage)?;
        let rec = FileRecord {
            id,
            profile_id: new.profile_id,
            name: new.name,
            kind: new.kind,
            content_type: new.content_type,
            size_bytes: i64::try_from(size).unwrap_or(i64::MAX),
            sha256,
            duration_ms: new.duration_ms,
            source_file_id: new.source_file_id,
            origin: new.origin,
            folder: new.folder,
            storage_key: key.clone(),
            created_at: Utc::now(),
            source_encoding: new.source_encoding,
        };
        let inserted = with_db_retries(token, "store a file record", DB_RETRY_WINDOW, || {
            self.db.insert_file_fenced(&rec, fence)
        })
        .await;
        match inserted {
            Ok(r) => Ok(r),
            Err(e) => {
                self.media.remove(&key).await;
                Err(e.into())
            }
        }
    }

    /// Identifies an uploaded body (subtitles by name or content; anything else must be
    /// readable media), checks it against the expected kind, and adds it to the profile.
    pub async fn ingest_upload(
        &self,
        profile: &str,
        up: Upload,
    ) -> Result<FileRecord, MediaJobError> {
        let Upload {
            mut tmp,
            digest,
            name,
            expect,
            media_only,
            folder,
        } = up;
        let mut digest = Some(digest);
        let size = digest.as_ref().map_or(0, |d| d.1);
        if size == 0 {
            return Err(MediaJobError::media_decode("the file is empty"));
        }
        let lower = name.to_ascii_lowercase();
        let looks_subtitle = lower.ends_with(".srt") || lower.ends_with(".vtt");
        let mut kind = None;
        let mut duration_ms = None;
        let mut source_encoding = None;
        if looks_subtitle || size <= 4 << 20 {
            // Subtitles in any encoding desktop tools write (UTF-8, UTF-16, Windows-1252,
            // …) are stored as UTF-8; the record says what the upload was in.
            if let Ok(bytes) = tokio::fs::read(tmp.path()).await
                && let Some(decoded) = decode_text(&bytes)
                && parse_any(&decoded.text).is_ok()
            {
                kind = Some(FileKind::Subtitle);
                source_encoding = Some(decoded.encoding.to_owned());
                if decoded.converted {
                    let utf8 = self.media.temp();
                    tokio::fs::write(utf8.path(), decoded.text.as_bytes())
                        .await
                        .map_err(MediaJobError::storage)?;
                    tmp = utf8;
                    digest = None;
                }
            }
            if looks_subtitle && kind.is_none() {
                return Err(MediaJobError::media_decode(
                    "the file is named like subtitles but is not a valid SRT/VTT file (in \
                     UTF-8, UTF-16 or a legacy code page such as Windows-1252)",
                ));
            }
        }
        let kind = match kind {
            Some(k) => k,
            None => {
                let info = self.probe.probe(tmp.path()).await.map_err(|e| {
                    MediaJobError::media_decode(format!(
                        "not a readable audio, video or subtitle file: {e}"
                    ))
                })?;
                duration_ms = info.duration_ms;
                match info.kind {
                    MediaKind::Video => FileKind::Video,
                    MediaKind::Audio => FileKind::Audio,
                }
            }
        };
        if media_only && kind == FileKind::Subtitle {
            return Err(MediaJobError::new(
                ErrorCode::WrongFileKind,
                "an audio or video file is needed; this is a subtitle file",
            ));
        }
        if let Some(w) = expect
            && w != kind
        {
            return Err(MediaJobError::new(
                ErrorCode::WrongFileKind,
                format!(
                    "type={} was asked for, but the file is {}",
                    w.as_str(),
                    kind.as_str()
                ),
            ));
        }
        let content_type = content_type_for(&name).map(str::to_owned).or_else(|| {
            Some(match kind {
                FileKind::Subtitle => "application/x-subrip".into(),
                _ => "application/octet-stream".into(),
            })
        });
        let new = NewFile {
            profile_id: profile.to_owned(),
            name,
            kind,
            content_type,
            duration_ms,
            source_file_id: None,
            origin: FileOrigin::Uploaded,
            folder,
            source_encoding,
        };
        self.add_file(tmp, digest, new).await
    }
}
