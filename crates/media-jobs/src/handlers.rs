//! The job handlers: the one place where processor operations meet stored files. Each handler
//! reads its input file, runs the operation with the job's progress and cancellation, and
//! persists the output as a profile file (SRT, MP4) or a transcript through
//! [`Services::add_file`]. Outputs are written to a temp file first and committed only while
//! the job still runs: a failed or cancelled job leaves nothing behind.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::Utc;
use jobs_core::{BatchStrategy, JobContext, JobError, QueueManager, State, lanes};
use mediajobs_persistence::{DbError, FileKind, FileOrigin, FileRecord, TranscriptRecord};
use mediajobs_processor::llm::{RefineOptions, TokenUsage};
use mediajobs_processor::subtitle::{
    SegmentOptions, SubtitleFormat, parse_any, reading_speed, segment, to_srt,
};
use mediajobs_processor::transcribe::{TranscribeOptions, Transcriber};
use mediajobs_processor::{ProcessorError, Progress};
use serde_json::json;
use uuid::Uuid;

use crate::error::MediaJobError;
use crate::retry::{DB_RETRY_WINDOW, with_db_retries};
use crate::services::{NewFile, Services};
use crate::spec::{
    Convert, ConvertOutput, DetectLanguage, DetectLanguageOutput, FixSrt, FixSrtOutput,
    GenerateSrt, GenerateSrtOutput, OnFile, Operation, RunHints, Transcribe, TranscribeOutput,
};
use jobs_core::ErrorCode;

/// Where a file can be downloaded (`/profiles/files/{id}/content`).
pub fn file_url(id: Uuid) -> String {
    format!("/profiles/files/{id}/content")
}

/// A processor error as the job's error; transient ones (a provider's 429/5xx, a timeout of
/// a request, storage trouble) are retryable, so the engine re-queues the job with backoff.
fn map_err(e: ProcessorError) -> JobError {
    let retryable = e.is_transient();
    let err = match e {
        ProcessorError::Cancelled => JobError::cancelled(),
        ProcessorError::Storage(io) => {
            tracing::error!(error = %io, "storage error in a job");
            JobError::new("Storage", "The media storage failed")
        }
        ProcessorError::Internal(m) | ProcessorError::Unavailable(m) => JobError::internal_msg(m),
        other => JobError::new(other.code(), other.to_string()),
    };
    err.with_retryable(retryable)
}

fn job_err(e: MediaJobError) -> JobError {
    match e.code {
        ErrorCode::Cancelled => JobError::cancelled(),
        ErrorCode::Storage => JobError::new(ErrorCode::Storage, e.message),
        _ if !e.is_refusal() => JobError::internal_msg(e.message),
        _ => {
            let err = JobError::new(e.code, e.message);
            match e.details {
                Some(d) => err.with_details(d),
                None => err,
            }
        }
    }
}

fn storage(e: impl std::fmt::Display) -> JobError {
    tracing::error!(error = %e, "storage error in a job");
    JobError::new("Storage", "The media storage failed")
}

/// The job's progress, and its segments as partial output (`{"segment": {...}}`) the moment
/// the transcriber has them.
struct JobSink {
    progress: jobs_core::ProgressReporter,
    partials: jobs_core::PartialSender,
}

impl mediajobs_processor::ProgressSink for JobSink {
    fn report(&self, fraction: f64, stage: &str) {
        self.progress.report(fraction, stage);
    }

    fn segment(&self, segment: &mediajobs_processor::subtitle::Segment) {
        self.partials.send(json!({ "segment": segment }));
    }
}

fn progress_of(ctx: &JobContext) -> Progress {
    Arc::new(JobSink {
        progress: ctx.progress_reporter(),
        partials: ctx.partials(),
    })
}

fn stem(name: &str) -> &str {
    match name.rfind('.') {
        Some(i) if i > 0 => &name[..i],
        _ => name,
    }
}

async fn load_input<P: crate::spec::OperationParams>(
    svc: &Services,
    ctx: &JobContext,
    job: &OnFile<P>,
) -> Result<(FileRecord, PathBuf), JobError> {
    load_file(svc, ctx, &job.profile_id, job.file_id).await
}

/// A database call of a running job, waited through an outage ([`crate::retry`]): a fired
/// token or a lost lease is `Cancelled` (the lease rules decide the job's outcome), any other
/// error the job's (the mapping `Services::add_output` uses too).
async fn db<T, F, Fut>(ctx: &JobContext, what: &str, op: F) -> Result<T, JobError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, DbError>>,
{
    with_db_retries(ctx.cancellation_token(), what, DB_RETRY_WINDOW, op)
        .await
        .map_err(|e| job_err(MediaJobError::from(e)))
}

/// A job's input file: its record and its path; `NotFound` once deleted.
async fn load_file(
    svc: &Services,
    ctx: &JobContext,
    profile: &str,
    file_id: Uuid,
) -> Result<(FileRecord, PathBuf), JobError> {
    let rec = db(ctx, "read the input file's record", || {
        svc.db.get_file(profile, file_id)
    })
    .await?
    .ok_or_else(|| JobError::new("NotFound", "The input file was deleted"))?;
    let path = svc.file_path(&rec).map_err(job_err)?;
    Ok((rec, path))
}

fn transcriber(svc: &Services) -> Result<Arc<dyn Transcriber>, JobError> {
    svc.transcriber
        .clone()
        .map_err(|m| JobError::new("WhisperUnavailable", m))
}

/// Writes subtitles produced from `input` to a temp file and, if the job still runs, stores
/// them as a profile file named after the input (`talk.webm` → `talk` + `suffix`).
async fn save_srt(
    svc: &Services,
    ctx: &JobContext,
    input: &FileRecord,
    srt: &str,
    suffix: &str,
    origin: FileOrigin,
) -> Result<FileRecord, JobError> {
    save_subtitles(svc, ctx, input, srt, suffix, SubtitleFormat::Srt, origin).await
}

async fn save_subtitles(
    svc: &Services,
    ctx: &JobContext,
    input: &FileRecord,
    srt: &str,
    suffix: &str,
    format: SubtitleFormat,
    origin: FileOrigin,
) -> Result<FileRecord, JobError> {
    let tmp = svc.media.temp();
    tokio::fs::write(tmp.path(), srt.as_bytes())
        .await
        .map_err(storage)?;
    ctx.check_cancelled()?;
    let new = NewFile {
        profile_id: input.profile_id.clone(),
        name: format!("{}{suffix}", stem(&input.name)),
        kind: FileKind::Subtitle,
        content_type: Some(
            match format {
                SubtitleFormat::Vtt => "text/vtt",
                _ => "application/x-subrip",
            }
            .into(),
        ),
        duration_ms: None,
        source_file_id: Some(input.id),
        source_encoding: None,
        origin,
        folder: input.folder.clone(),
    };
    svc.add_output(ctx, tmp, new).await.map_err(job_err)
}

/// Sets the job's deadline: the explicit `timeout_seconds`, else one derived from the input's
/// duration and this node's measured speed (none when the duration is unknown).
fn set_deadline(
    svc: &Services,
    ctx: &JobContext,
    op: Operation,
    model: Option<&str>,
    run: &RunHints,
    media_ms: Option<i64>,
    cues: Option<usize>,
) {
    if let Some(d) = svc.speed.deadline(
        op,
        model,
        run.timeout_seconds,
        media_ms.or(run.media_ms),
        cues,
    ) {
        ctx.set_timeout(d);
    }
}

/// The earlier job a reusing job copies: its stored result, if it still succeeded.
async fn reused_result<T: serde::de::DeserializeOwned>(
    svc: &Services,
    ctx: &JobContext,
    src: Uuid,
) -> Result<T, JobError> {
    use jobs_core::JobStore;
    let gone = || {
        JobError::new(
            "NotFound",
            format!("The reused result of job {src} is gone; submit again with dedupe: false"),
        )
    };
    let job = db(ctx, "read the reused job", || async {
        svc.db.get_job(src).await.map_err(DbError::from)
    })
    .await?
    .filter(|j| j.status == jobs_core::JobStatus::Succeeded)
    .ok_or_else(gone)?;
    serde_json::from_value(job.result.unwrap_or_default()).map_err(|_| gone())
}

/// `generate_srt`: transcribe, segment into subtitle-grade cues, save the SRT. A job that
/// reuses an earlier identical one (dedupe) copies its subtitles into a file of its own.
pub async fn generate_srt(
    State(svc): State<Arc<Services>>,
    job: OnFile<GenerateSrt>,
    ctx: JobContext,
) -> Result<GenerateSrtOutput, JobError> {
    let (input, path) = load_input(&svc, &ctx, &job).await?;
    if let Some(src) = job.run.reuse_from {
        let prev: GenerateSrtOutput = reused_result(&svc, &ctx, src).await?;
        let format = prev.format.format();
        let rec = save_subtitles(
            &svc,
            &ctx,
            &input,
            &prev.srt_content,
            format.extension(),
            format,
            FileOrigin::Generated,
        )
        .await?;
        // The job whose transcription this is: the one that ran whisper.
        let origin = prev.reused_from.unwrap_or(src);
        return Ok(GenerateSrtOutput {
            srt_file_id: rec.id,
            srt_url: file_url(rec.id),
            reused_from: Some(origin),
            ..prev
        });
    }
    set_deadline(
        &svc,
        &ctx,
        Operation::GenerateSrt,
        job.params.opts.model.as_deref(),
        &job.run,
        input.duration_ms,
        None,
    );
    let t0 = std::time::Instant::now();
    let t = transcriber(&svc)?;
    // A job submitted without going through `pin_model` (an embedding app's own): VAD as
    // the operation's default.
    let mut opts = job.params.opts.clone();
    opts.vad = Some(
        opts.vad
            .unwrap_or_else(|| TranscribeOptions::vad_default(true, t.vad_available())),
    );
    let tr = t
        .transcribe(&path, &opts, progress_of(&ctx), ctx.cancellation_token())
        .await
        .map_err(map_err)?;
    let cues = segment(&tr.segments, &SegmentOptions::default());
    let format = job.params.format.format();
    let srt = format.render(&cues);
    let rec = save_subtitles(
        &svc,
        &ctx,
        &input,
        &srt,
        format.extension(),
        format,
        FileOrigin::Generated,
    )
    .await?;
    if let Some(ms) = input.duration_ms {
        svc.speed.record(
            Operation::GenerateSrt,
            job.params.opts.model.as_deref(),
            ms,
            t0.elapsed(),
        );
    }
    Ok(GenerateSrtOutput {
        srt_file_id: rec.id,
        srt_url: file_url(rec.id),
        srt_content: srt,
        format: job.params.format,
        language: tr.language,
        cues: cues.len(),
        reading_speed: reading_speed(&cues),
        speech_ms: tr.speech_ms,
        reused_from: None,
    })
}

/// `transcribe`: transcribe and store a transcript (segments, words when asked).
pub async fn transcribe(
    State(svc): State<Arc<Services>>,
    job: OnFile<Transcribe>,
    ctx: JobContext,
) -> Result<TranscribeOutput, JobError> {
    let (input, path) = load_input(&svc, &ctx, &job).await?;
    if let Some(src) = job.run.reuse_from {
        let prev: TranscribeOutput = reused_result(&svc, &ctx, src).await?;
        let old = db(&ctx, "read the reused transcript", || {
            svc.db.get_transcript(&input.profile_id, prev.transcript_id)
        })
        .await?
        .ok_or_else(|| {
            JobError::new(
                "NotFound",
                format!(
                    "The reused transcript of job {src} is gone; submit again with dedupe: false"
                ),
            )
        })?;
        ctx.check_cancelled()?;
        let new = TranscriptRecord {
            id: Uuid::now_v7(),
            file_id: Some(input.id),
            job_id: Some(ctx.job_id()),
            created_at: Utc::now(),
            ..old
        };
        let rec = db(&ctx, "store the transcript", || {
            svc.db.insert_transcript_fenced(&new, Some(ctx.fence()))
        })
        .await?;
        return Ok(TranscribeOutput {
            transcript_id: rec.id,
            transcript: rec.text,
            language: prev.language,
            speech_ms: prev.speech_ms,
            reused_from: Some(prev.reused_from.unwrap_or(src)),
        });
    }
    set_deadline(
        &svc,
        &ctx,
        Operation::Transcribe,
        job.params.opts.model.as_deref(),
        &job.run,
        input.duration_ms,
        None,
    );
    let t0 = std::time::Instant::now();
    let opts = &job.params.opts;
    let t = transcriber(&svc)?;
    let tr = t
        .transcribe(&path, opts, progress_of(&ctx), ctx.cancellation_token())
        .await
        .map_err(map_err)?;
    ctx.check_cancelled()?;
    if let Some(ms) = input.duration_ms {
        svc.speed.record(
            Operation::Transcribe,
            job.params.opts.model.as_deref(),
            ms,
            t0.elapsed(),
        );
    }
    let segments: Vec<serde_json::Value> = tr
        .segments
        .iter()
        .map(|s| {
            let mut v = json!({"start_ms": s.start_ms, "end_ms": s.end_ms, "text": s.text});
            if opts.word_timestamps {
                v["words"] = json!(s.words);
            }
            if let Some(st) = &s.stats {
                v["stats"] = json!(st);
            }
            v
        })
        .collect();
    let new = TranscriptRecord {
        id: Uuid::now_v7(),
        profile_id: input.profile_id.clone(),
        file_id: Some(input.id),
        job_id: Some(ctx.job_id()),
        language: Some(tr.language.clone()),
        text: tr.text.clone(),
        segments: json!(segments),
        created_at: Utc::now(),
    };
    let rec = db(&ctx, "store the transcript", || {
        svc.db.insert_transcript_fenced(&new, Some(ctx.fence()))
    })
    .await?;
    Ok(TranscribeOutput {
        transcript_id: rec.id,
        transcript: rec.text,
        language: tr.language,
        speech_ms: tr.speech_ms,
        reused_from: None,
    })
}

/// `convert`: encode to MP4 and save it.
pub async fn convert(
    State(svc): State<Arc<Services>>,
    job: OnFile<Convert>,
    ctx: JobContext,
) -> Result<ConvertOutput, JobError> {
    let (input, path) = load_input(&svc, &ctx, &job).await?;
    set_deadline(
        &svc,
        &ctx,
        Operation::Convert,
        None,
        &job.run,
        input.duration_ms,
        None,
    );
    let t0 = std::time::Instant::now();
    let tmp = svc.media.temp();
    let report = svc
        .converter
        .convert(
            &path,
            tmp.path(),
            &job.params.opts,
            progress_of(&ctx),
            ctx.cancellation_token(),
        )
        .await
        .map_err(map_err)?;
    ctx.check_cancelled()?;
    let new = NewFile {
        profile_id: input.profile_id.clone(),
        name: format!("{}.mp4", stem(&input.name)),
        kind: FileKind::Video,
        content_type: Some("video/mp4".into()),
        duration_ms: report.duration_ms,
        source_file_id: Some(input.id),
        source_encoding: None,
        origin: FileOrigin::Converted,
        folder: input.folder.clone(),
    };
    let rec = svc.add_output(&ctx, tmp, new).await.map_err(job_err)?;
    if let Some(ms) = input.duration_ms {
        svc.speed.record(Operation::Convert, None, ms, t0.elapsed());
    }
    Ok(ConvertOutput {
        file_id: rec.id,
        video_url: file_url(rec.id),
    })
}

/// The largest subtitle file fix_srt reads.
const MAX_SUBTITLE_BYTES: u64 = 20 << 20;

/// `fix_srt`: fix the cues' text with an LLM and save the fixed SRT; a failed run's token
/// cost goes into the error's details.
pub async fn fix_srt(
    State(svc): State<Arc<Services>>,
    job: OnFile<FixSrt>,
    ctx: JobContext,
) -> Result<FixSrtOutput, JobError> {
    let (input, path) = load_input(&svc, &ctx, &job).await?;
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
    set_deadline(
        &svc,
        &ctx,
        Operation::FixSrt,
        None,
        &job.run,
        None,
        Some(cues.len()),
    );
    let spent = Arc::new(std::sync::Mutex::new(TokenUsage::default()));
    let opts = RefineOptions {
        system_prompt: job.params.sys_msg.clone(),
        spent: Some(spent.clone()),
        ..Default::default()
    };
    let rep = svc
        .refiner
        .refine(
            &cues,
            &job.params.model,
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
    Ok(FixSrtOutput {
        srt_file_id: rec.id,
        srt_url: file_url(rec.id),
        srt_content: srt,
        changed_cues: rep.changed_cues,
        usage: rep.usage,
    })
}

/// `detect_language`: the language of the first 30 s (an interactive job of the compatible
/// APIs; nothing is stored but the job's result).
pub async fn detect_language(
    State(svc): State<Arc<Services>>,
    job: DetectLanguage,
    ctx: JobContext,
) -> Result<DetectLanguageOutput, JobError> {
    let (_, path) = load_file(&svc, &ctx, &job.profile_id, job.file_id).await?;
    let t = transcriber(&svc)?;
    ctx.progress_reporter().report(0.0, "detecting_language");
    let g = t
        .detect_language(&path, ctx.cancellation_token())
        .await
        .map_err(map_err)?;
    Ok(DetectLanguageOutput {
        language_code: g.code,
        language: g.name,
        confidence: g.probability,
    })
}

/// Registers the eight job types (and `detect_language`) on a manager.
///
/// Local transcription and conversion run in the `heavy` lane (one at a time per node), and
/// their batches one child at a time (on PostgreSQL: children claimable by every node); LLM
/// fixing and remote transcription run in the `io` lane, and their batches with bounded
/// concurrency.
pub fn register_handlers(manager: &QueueManager, svc: Arc<Services>) {
    let remote = svc.transcriber.as_ref().is_ok_and(|t| !t.is_local());
    let t_lane = if remote { lanes::IO } else { lanes::HEAVY };
    let io = svc.io_concurrency.max(1);
    manager.register_with_state_in(t_lane, svc.clone(), generate_srt);
    manager.register_with_state_in(t_lane, svc.clone(), transcribe);
    manager.register_with_state_in(t_lane, svc.clone(), detect_language);
    manager.register_with_state_in(lanes::HEAVY, svc.clone(), convert);
    manager.register_with_state_in(lanes::IO, svc.clone(), fix_srt);
    // Local heavy work: one child at a time on an embedded (SQLite) node; on PostgreSQL the
    // children are claimable by every node sharing the database (each node still runs one
    // heavy job at a time), so a batch scales out with the cluster.
    let heavy_batch = match svc.db.backend() {
        mediajobs_persistence::Backend::Postgres => BatchStrategy::Distributed,
        mediajobs_persistence::Backend::Sqlite => BatchStrategy::Sequential,
    };
    let t_batch = if remote {
        BatchStrategy::Bounded(io)
    } else {
        heavy_batch
    };
    manager.register_batch(Operation::GenerateSrt.batch_name(), t_batch);
    manager.register_batch(Operation::Transcribe.batch_name(), t_batch);
    manager.register_batch(Operation::Convert.batch_name(), heavy_batch);
    manager.register_batch(Operation::FixSrt.batch_name(), BatchStrategy::Bounded(io));
}
