//! The job handlers: the one place where processor operations meet stored files. Each handler
//! reads its input file, runs the operation with the job's progress and cancellation, and
//! persists the output as a profile file (SRT, MP4) or a transcript. Outputs are written to a
//! temp file first and committed only when the job still runs: a failed or cancelled job
//! leaves nothing behind.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::Utc;
use jobs_core::{BatchStrategy, Job, JobContext, JobError, JobResult, QueueManager, lanes};
use persistence::{Database, FileKind, FileOrigin, FileRecord, TranscriptRecord};
use processor::llm::{RefineOptions, SubtitleRefiner, TokenUsage};
use processor::media::{Converter, MediaProbe};
use processor::subtitle::{SegmentOptions, parse_any, reading_speed, segment, to_srt};
use processor::transcribe::Transcriber;
use processor::{ProcessorError, Progress};
use serde_json::json;
use uuid::Uuid;

use crate::storage::{MediaStore, TempFile, hash_file};
use crate::validate::{Op, Params};
use crate::views::file_url;

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
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services")
            .field("media", &self.media)
            .finish_non_exhaustive()
    }
}

fn map_err(e: ProcessorError) -> JobError {
    match e {
        ProcessorError::Cancelled => JobError::cancelled(),
        ProcessorError::Storage(io) => {
            tracing::error!(error = %io, "storage error in a job");
            JobError::new("Storage", "The media storage failed")
        }
        ProcessorError::Internal(m) | ProcessorError::Unavailable(m) => JobError::internal_msg(m),
        other => JobError::new(other.code(), other.to_string()),
    }
}

fn storage(e: impl std::fmt::Display) -> JobError {
    tracing::error!(error = %e, "storage error in a job");
    JobError::new("Storage", "The media storage failed")
}

fn progress_of(ctx: &JobContext) -> Progress {
    let p = ctx.progress_reporter();
    Arc::new(move |f: f64, stage: &str| p.report(f, stage))
}

fn stem(name: &str) -> &str {
    match name.rfind('.') {
        Some(i) if i > 0 => &name[..i],
        _ => name,
    }
}

async fn load_input(svc: &Services, job: &Job) -> Result<(FileRecord, PathBuf), JobError> {
    let profile = job
        .profile_id
        .as_deref()
        .ok_or_else(|| JobError::internal_msg("job without a profile"))?;
    let fid = job
        .file_id
        .ok_or_else(|| JobError::new("NotFound", "The job has no input file"))?;
    let rec = svc
        .db
        .get_file(profile, fid)
        .await
        .map_err(JobError::internal)?
        .ok_or_else(|| JobError::new("NotFound", "The input file was deleted"))?;
    let path = svc
        .media
        .path(&rec.storage_key)
        .ok_or_else(|| storage(format!("bad storage key {}", rec.storage_key)))?;
    if !path.is_file() {
        return Err(storage(format!("missing media file {}", path.display())));
    }
    Ok((rec, path))
}

/// What a job produced, to store as a profile file.
struct Output {
    name: String,
    kind: FileKind,
    origin: FileOrigin,
    content_type: &'static str,
    duration_ms: Option<i64>,
}

/// Commits a temp file as a new profile file derived from `source`.
async fn store_output(
    svc: &Services,
    tmp: TempFile,
    source: &FileRecord,
    out: Output,
) -> Result<FileRecord, JobError> {
    let Output {
        name,
        kind,
        origin,
        content_type,
        duration_ms,
    } = out;
    let (sha256, size) = hash_file(tmp.path()).await.map_err(storage)?;
    let id = Uuid::now_v7();
    let key = MediaStore::key_for(id);
    svc.media.commit(tmp, &key).await.map_err(storage)?;
    let rec = FileRecord {
        id,
        profile_id: source.profile_id.clone(),
        name,
        kind,
        content_type: Some(content_type.to_owned()),
        size_bytes: i64::try_from(size).unwrap_or(i64::MAX),
        sha256,
        duration_ms,
        source_file_id: Some(source.id),
        origin,
        folder: source.folder.clone(),
        storage_key: key.clone(),
        created_at: Utc::now(),
    };
    match svc.db.insert_file(&rec).await {
        Ok(r) => Ok(r),
        Err(e) => {
            svc.media.remove(&key).await;
            Err(JobError::internal(e))
        }
    }
}

fn transcriber(svc: &Services) -> Result<Arc<dyn Transcriber>, JobError> {
    svc.transcriber
        .clone()
        .map_err(|m| JobError::new("WhisperUnavailable", m))
}

async fn generate_srt(
    svc: Arc<Services>,
    job: Job,
    ctx: JobContext,
) -> Result<JobResult, JobError> {
    let (input, path) = load_input(&svc, &job).await?;
    let opts = Params::transcribe_from(&job.params).map_err(JobError::internal_msg)?;
    let t = transcriber(&svc)?;
    let tr = t
        .transcribe(&path, &opts, progress_of(&ctx), ctx.cancellation_token())
        .await
        .map_err(map_err)?;
    let cues = segment(&tr.segments, &SegmentOptions::default());
    let srt = to_srt(&cues);
    let rec = save_srt(&svc, &ctx, &input, &srt, ".srt", FileOrigin::Generated).await?;
    Ok(JobResult(json!({
        "srt_file_id": rec.id,
        "srt_url": file_url(rec.id),
        "srt_content": srt,
        "language": tr.language,
        "cues": cues.len(),
        "reading_speed": reading_speed(&cues),
    })))
}

/// Writes an SRT produced from `input` to a temp file and, if the job still runs, stores it as
/// a profile file named after the input (`talk.webm` → `talk` + `suffix`).
async fn save_srt(
    svc: &Arc<Services>,
    ctx: &JobContext,
    input: &FileRecord,
    srt: &str,
    suffix: &str,
    origin: FileOrigin,
) -> Result<FileRecord, JobError> {
    let tmp = svc.media.temp();
    tokio::fs::write(tmp.path(), srt.as_bytes())
        .await
        .map_err(storage)?;
    ctx.check_cancelled()?;
    let out = Output {
        name: format!("{}{suffix}", stem(&input.name)),
        kind: FileKind::Subtitle,
        origin,
        content_type: "application/x-subrip",
        duration_ms: None,
    };
    store_output(svc, tmp, input, out).await
}

async fn transcribe(svc: Arc<Services>, job: Job, ctx: JobContext) -> Result<JobResult, JobError> {
    let (input, path) = load_input(&svc, &job).await?;
    let opts = Params::transcribe_from(&job.params).map_err(JobError::internal_msg)?;
    let t = transcriber(&svc)?;
    let tr = t
        .transcribe(&path, &opts, progress_of(&ctx), ctx.cancellation_token())
        .await
        .map_err(map_err)?;
    ctx.check_cancelled()?;
    let segments: Vec<serde_json::Value> = tr
        .segments
        .iter()
        .map(|s| {
            let mut v = json!({"start_ms": s.start_ms, "end_ms": s.end_ms, "text": s.text});
            if opts.word_timestamps {
                v["words"] = json!(s.words);
            }
            v
        })
        .collect();
    let rec = svc
        .db
        .insert_transcript(&TranscriptRecord {
            id: Uuid::now_v7(),
            profile_id: input.profile_id.clone(),
            file_id: Some(input.id),
            job_id: Some(job.id),
            language: Some(tr.language.clone()),
            text: tr.text.clone(),
            segments: json!(segments),
            created_at: Utc::now(),
        })
        .await
        .map_err(JobError::internal)?;
    Ok(JobResult(json!({
        "transcript_id": rec.id,
        "transcript": rec.text,
        "language": tr.language,
    })))
}

async fn convert(svc: Arc<Services>, job: Job, ctx: JobContext) -> Result<JobResult, JobError> {
    let (input, path) = load_input(&svc, &job).await?;
    let opts = Params::convert_from(&job.params).map_err(JobError::internal_msg)?;
    let tmp = svc.media.temp();
    let report = svc
        .converter
        .convert(
            &path,
            tmp.path(),
            &opts,
            progress_of(&ctx),
            ctx.cancellation_token(),
        )
        .await
        .map_err(map_err)?;
    ctx.check_cancelled()?;
    let out = Output {
        name: format!("{}.mp4", stem(&input.name)),
        kind: FileKind::Video,
        origin: FileOrigin::Converted,
        content_type: "video/mp4",
        duration_ms: report.duration_ms,
    };
    let rec = store_output(&svc, tmp, &input, out).await?;
    Ok(JobResult(
        json!({ "file_id": rec.id, "video_url": file_url(rec.id) }),
    ))
}

/// The largest subtitle file fix_srt reads.
const MAX_SUBTITLE_BYTES: u64 = 20 << 20;

async fn fix_srt(svc: Arc<Services>, job: Job, ctx: JobContext) -> Result<JobResult, JobError> {
    let (input, path) = load_input(&svc, &job).await?;
    let model = job.params["model"]
        .as_str()
        .ok_or_else(|| JobError::internal_msg("fix_srt job without a model"))?
        .to_owned();
    let sys_msg = job.params["sys_msg"].as_str().map(str::to_owned);
    if input.size_bytes as u64 > MAX_SUBTITLE_BYTES {
        return Err(JobError::new(
            "ValidationError",
            "The subtitle file is too large (20 MiB at most)",
        ));
    }
    let bytes = tokio::fs::read(&path).await.map_err(storage)?;
    let text = String::from_utf8_lossy(&bytes);
    let cues = parse_any(&text).map_err(|e| {
        JobError::new(
            "ValidationError",
            format!("The input is not a valid SRT/VTT file: {e}"),
        )
    })?;
    let spent = Arc::new(std::sync::Mutex::new(TokenUsage::default()));
    let opts = RefineOptions {
        system_prompt: sys_msg,
        spent: Some(spent.clone()),
        ..Default::default()
    };
    let rep = svc
        .refiner
        .refine(
            &cues,
            &model,
            &opts,
            progress_of(&ctx),
            ctx.cancellation_token(),
        )
        .await
        .map_err(|e| {
            // What a failed run cost is part of its record.
            let usage = spent
                .lock()
                .map(|u| u.clone())
                .unwrap_or_else(|p| p.into_inner().clone());
            let err = map_err(e);
            if usage.requests > 0 && err.code() != "ServerError" {
                err.with_details(json!({ "usage": usage }))
            } else {
                err
            }
        })?;
    let srt = to_srt(&rep.cues);
    let rec = save_srt(&svc, &ctx, &input, &srt, ".fixed.srt", FileOrigin::Fixed).await?;
    Ok(JobResult(json!({
        "srt_file_id": rec.id,
        "srt_url": file_url(rec.id),
        "srt_content": srt,
        "changed_cues": rep.changed_cues,
        "usage": rep.usage,
    })))
}

/// Registers the eight job types on a manager.
///
/// Local transcription and conversion run in the `heavy` lane (one at a time per node), and
/// their batches one child at a time (on PostgreSQL: children claimable by every node); LLM
/// fixing and remote transcription run in the `io` lane, and their batches with bounded
/// concurrency.
pub fn register_handlers(manager: &QueueManager, svc: Arc<Services>) {
    let remote = svc.transcriber.as_ref().is_ok_and(|t| !t.is_local());
    let t_lane = if remote { lanes::IO } else { lanes::HEAVY };
    let io = svc.io_concurrency.max(1);
    macro_rules! reg {
        ($name:expr, $lane:expr, $f:path) => {{
            let svc = svc.clone();
            manager.register_handler($name, $lane, move |job: Job, ctx: JobContext| {
                let svc = svc.clone();
                async move { $f(svc, job, ctx).await }
            });
        }};
    }
    reg!(Op::GenerateSrt.name(), t_lane, generate_srt);
    reg!(Op::Transcribe.name(), t_lane, transcribe);
    reg!(Op::Convert.name(), lanes::HEAVY, convert);
    reg!(Op::FixSrt.name(), lanes::IO, fix_srt);
    // Local heavy work: one child at a time on an embedded (SQLite) node; on PostgreSQL the
    // children are claimable by every node sharing the database (each node still runs one
    // heavy job at a time), so a batch scales out with the cluster.
    let heavy_batch = match svc.db.backend() {
        persistence::Backend::Postgres => BatchStrategy::Distributed,
        persistence::Backend::Sqlite => BatchStrategy::Sequential,
    };
    let t_batch = if remote {
        BatchStrategy::Bounded(io)
    } else {
        heavy_batch
    };
    manager.register_batch(Op::GenerateSrt.batch_name(), t_batch);
    manager.register_batch(Op::Transcribe.batch_name(), t_batch);
    manager.register_batch(Op::Convert.batch_name(), heavy_batch);
    manager.register_batch(Op::FixSrt.batch_name(), BatchStrategy::Bounded(io));
}

/// The lane a job type runs in (used when inserting jobs).
pub fn lane_of(manager: &QueueManager, job_type: &str) -> String {
    manager.lane_for(job_type)
}
