//! The job vocabulary: the four [`Operation`]s and their batches, their typed arguments
//! ([`OnFile`] / [`OnFiles`] over [`GenerateSrt`], [`Transcribe`], [`Convert`], [`FixSrt`])
//! and their outputs. [`JobSpec`](crate::JobSpec) (in `job_spec.rs`) is the enum over all
//! eight types; `http_form.rs` parses options in their HTTP form.
//!
//! A stored job keeps its input file and profile in columns and its options in `params`
//! (`{"opts": {...}}`, or `{"model", "sys_msg"}` for `fix_srt`); the types here read and write
//! exactly that shape, so jobs stored by earlier versions still run.

use jobs_core::{Job, JobArgs, JobError, NewJob, bad_args, lanes};
use mediajobs_persistence::FileKind;
use mediajobs_processor::llm::TokenUsage;
use mediajobs_processor::media::ConvertOptions;
use mediajobs_processor::subtitle::{ReadingSpeed, SubtitleFormat};
use mediajobs_processor::transcribe::TranscribeOptions;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use crate::error::MediaJobError;
use jobs_core::ErrorCode;

/// The four operations; each has a single and a batch job type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Video/audio → SRT file.
    GenerateSrt,
    /// Video/audio → transcript.
    Transcribe,
    /// Video → MP4.
    Convert,
    /// SRT → fixed SRT (LLM).
    FixSrt,
}

impl Operation {
    /// All operations.
    pub const ALL: [Operation; 4] = [
        Operation::GenerateSrt,
        Operation::Transcribe,
        Operation::Convert,
        Operation::FixSrt,
    ];

    /// The job type of a single job.
    pub const fn name(self) -> &'static str {
        match self {
            Operation::GenerateSrt => "generate_srt",
            Operation::Transcribe => "transcribe",
            Operation::Convert => "convert",
            Operation::FixSrt => "fix_srt",
        }
    }

    /// The job type of its batch.
    pub const fn batch_name(self) -> &'static str {
        match self {
            Operation::GenerateSrt => "batch_generate_srt",
            Operation::Transcribe => "batch_transcribe",
            Operation::Convert => "batch_convert",
            Operation::FixSrt => "batch_fix_srt",
        }
    }

    /// The operation of a single (`batch = false`) or batch job type; `UnknownJobType`
    /// listing the known ones otherwise.
    pub fn parse(t: &str, batch: bool) -> Result<Operation, MediaJobError> {
        let name = |o: &Operation| if batch { o.batch_name() } else { o.name() };
        Operation::ALL
            .into_iter()
            .find(|o| name(o) == t)
            .ok_or_else(|| {
                let known: Vec<&str> = Operation::ALL.iter().map(name).collect();
                MediaJobError::new(ErrorCode::UnknownJobType, format!("Unknown Job Type '{t}'"))
                    .details(json!({ "known": known }))
            })
    }

    /// The operation of a single (non-batch) job type.
    ///
    /// ```
    /// use mediajobs_jobs::Operation;
    /// assert_eq!(Operation::of_job_type("transcribe"), Some(Operation::Transcribe));
    /// assert_eq!(Operation::of_job_type("batch_transcribe"), None);
    /// ```
    pub fn of_job_type(t: &str) -> Option<Operation> {
        Operation::ALL.into_iter().find(|o| o.name() == t)
    }

    /// Whether results of this operation are reused for identical later jobs by default
    /// (`dedupe`): the transcription operations, whose runs are the expensive ones.
    pub fn dedupes_by_default(self) -> bool {
        matches!(self, Operation::GenerateSrt | Operation::Transcribe)
    }

    /// Whether a file of `kind` is a valid input.
    pub fn accepts(self, kind: FileKind) -> bool {
        match self {
            Operation::GenerateSrt | Operation::Transcribe => {
                matches!(kind, FileKind::Video | FileKind::Audio)
            }
            Operation::Convert => kind == FileKind::Video,
            Operation::FixSrt => kind == FileKind::Subtitle,
        }
    }

    /// What it needs, in words.
    pub fn wants(self) -> &'static str {
        match self {
            Operation::GenerateSrt | Operation::Transcribe => "a video or audio file",
            Operation::Convert => "a video file",
            Operation::FixSrt => "an SRT subtitle file",
        }
    }
}

/// The options of one operation, as stored in a job's `params`.
pub trait OperationParams:
    Serialize + DeserializeOwned + Clone + PartialEq + Send + Sync + 'static
{
    /// Which operation.
    const OPERATION: Operation;
    /// What a successful single job returns.
    type Output: Serialize + DeserializeOwned + Send + 'static;
}

/// `generate_srt` options.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct GenerateSrt {
    /// Transcription options.
    #[serde(default)]
    pub opts: TranscribeOptions,
    /// The format of the saved file: SubRip (default) or WebVTT.
    #[serde(default, skip_serializing_if = "CueFileFormat::is_srt")]
    pub format: CueFileFormat,
}

/// The formats `generate_srt` saves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CueFileFormat {
    /// SubRip (`.srt`).
    #[default]
    Srt,
    /// WebVTT (`.vtt`).
    Vtt,
}

impl CueFileFormat {
    /// `true` for the default, SubRip.
    pub fn is_srt(&self) -> bool {
        *self == CueFileFormat::Srt
    }

    /// The general format.
    pub fn format(self) -> SubtitleFormat {
        match self {
            CueFileFormat::Srt => SubtitleFormat::Srt,
            CueFileFormat::Vtt => SubtitleFormat::Vtt,
        }
    }
}

/// `transcribe` options.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Transcribe {
    /// Transcription options.
    #[serde(default)]
    pub opts: TranscribeOptions,
}

/// `convert` options.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Convert {
    /// Conversion options.
    #[serde(default)]
    pub opts: ConvertOptions,
}

/// `fix_srt` options.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct FixSrt {
    /// `provider:model`.
    pub model: String,
    /// System prompt override.
    #[serde(default)]
    pub sys_msg: Option<String>,
}

/// What `generate_srt` returns. (The `srt_` fields name the saved subtitle file whatever
/// its format.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerateSrtOutput {
    /// The new subtitle file.
    pub srt_file_id: Uuid,
    /// Where to download it.
    pub srt_url: String,
    /// Its text (SubRip, or WebVTT with `format: "vtt"`).
    pub srt_content: String,
    /// The saved format.
    #[serde(default)]
    pub format: CueFileFormat,
    /// Detected or requested language.
    pub language: String,
    /// Number of cues.
    pub cues: usize,
    /// Reading-speed figures.
    pub reading_speed: ReadingSpeed,
    /// With voice activity detection: the speech whisper heard, ms (silence and noise
    /// skipped); absent without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speech_ms: Option<i64>,
    /// The earlier job whose transcription this result reuses (same content, operation,
    /// options and model); absent when whisper ran for this job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reused_from: Option<Uuid>,
}

/// What `transcribe` returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TranscribeOutput {
    /// The stored transcript.
    pub transcript_id: Uuid,
    /// Its text.
    pub transcript: String,
    /// Detected or requested language.
    pub language: String,
    /// With voice activity detection: the speech whisper heard, ms; absent without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speech_ms: Option<i64>,
    /// The earlier job whose transcription this result reuses; absent when whisper ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reused_from: Option<Uuid>,
}

/// What `convert` returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConvertOutput {
    /// The new MP4 file.
    pub file_id: Uuid,
    /// Where to download it.
    pub video_url: String,
}

/// What `fix_srt` returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FixSrtOutput {
    /// The fixed SRT file.
    pub srt_file_id: Uuid,
    /// Where to download it.
    pub srt_url: String,
    /// Its text.
    pub srt_content: String,
    /// Cues whose text changed.
    pub changed_cues: usize,
    /// Tokens spent.
    pub usage: TokenUsage,
}

impl OperationParams for GenerateSrt {
    const OPERATION: Operation = Operation::GenerateSrt;
    type Output = GenerateSrtOutput;
}
impl OperationParams for Transcribe {
    const OPERATION: Operation = Operation::Transcribe;
    type Output = TranscribeOutput;
}
impl OperationParams for Convert {
    const OPERATION: Operation = Operation::Convert;
    type Output = ConvertOutput;
}
impl OperationParams for FixSrt {
    const OPERATION: Operation = Operation::FixSrt;
    type Output = FixSrtOutput;
}

/// How one run of a media job is bounded and shortcut, stored next to the options in the
/// job's `params`: an explicit deadline, the input's duration, a result to reuse.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RunHints {
    /// An explicit deadline in seconds (overrides the one derived from the media).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
    /// The input's duration when the job was submitted (deadline and ETA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_ms: Option<i64>,
    /// The earlier succeeded job whose result this one reuses (dedupe).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reuse_from: Option<Uuid>,
}

impl RunHints {
    fn is_empty(&self) -> bool {
        *self == RunHints::default()
    }

    /// Writes the hints into a job's params object.
    pub fn apply(&self, params: &mut serde_json::Value) {
        if let (Some(obj), Ok(serde_json::Value::Object(h))) =
            (params.as_object_mut(), serde_json::to_value(self))
        {
            obj.extend(h);
        }
    }

    /// The hints stored in a job's params (none when absent or unreadable).
    pub fn of(params: &serde_json::Value) -> Self {
        serde_json::from_value(params.clone()).unwrap_or_default()
    }
}

/// A single media job: an operation's options on one file of a profile. Its [`JobArgs`]
/// encoding puts the profile and the file in the job's columns, the options (and the
/// [`RunHints`]) in `params`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct OnFile<P: OperationParams> {
    /// The owning profile.
    pub profile_id: String,
    /// The input file.
    pub file_id: Uuid,
    /// The options.
    pub params: P,
    /// Deadline, duration and reuse of this run.
    #[serde(default)]
    pub run: RunHints,
}

impl<P: OperationParams> JobArgs for OnFile<P> {
    const KIND: &'static str = P::OPERATION.name();
    type Output = P::Output;

    fn lane() -> &'static str {
        match P::OPERATION {
            Operation::FixSrt => lanes::IO,
            _ => lanes::HEAVY,
        }
    }

    fn to_new_job(&self) -> Result<NewJob, JobError> {
        let mut params = serde_json::to_value(&self.params).map_err(JobError::internal)?;
        if !self.run.is_empty() {
            self.run.apply(&mut params);
        }
        Ok(NewJob::new(Self::KIND, params)
            .profile(&self.profile_id)
            .file(self.file_id))
    }

    fn from_job(job: &Job) -> Result<Self, JobError> {
        let profile_id = job
            .profile_id
            .clone()
            .ok_or_else(|| JobError::internal_msg("job without a profile"))?;
        let file_id = job
            .file_id
            .ok_or_else(|| JobError::new("NotFound", "The job has no input file"))?;
        let params =
            serde_json::from_value(job.params.clone()).map_err(|e| bad_args(Self::KIND, e))?;
        Ok(OnFile {
            profile_id,
            file_id,
            params,
            run: RunHints::of(&job.params),
        })
    }
}

/// `detect_language`: which language the first 30 s of a file of the profile speak. Not an
/// [`Operation`] (no batch, not submittable on `POST /jobs`): the compatible APIs' language
/// detection runs as this job, at a high priority on the transcription lane.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectLanguage {
    /// The owning profile.
    pub profile_id: String,
    /// The audio or video file.
    pub file_id: Uuid,
}

/// What `detect_language` returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectLanguageOutput {
    /// The language code (`en`).
    pub language_code: String,
    /// Its English name in lower case (`english`).
    pub language: String,
    /// The model's probability for it.
    pub confidence: f32,
}

impl JobArgs for DetectLanguage {
    const KIND: &'static str = "detect_language";
    type Output = DetectLanguageOutput;

    fn lane() -> &'static str {
        lanes::HEAVY
    }

    fn to_new_job(&self) -> Result<NewJob, JobError> {
        Ok(NewJob::new(Self::KIND, json!({}))
            .profile(&self.profile_id)
            .file(self.file_id))
    }

    fn from_job(job: &Job) -> Result<Self, JobError> {
        Ok(DetectLanguage {
            profile_id: job
                .profile_id
                .clone()
                .ok_or_else(|| JobError::internal_msg("job without a profile"))?,
            file_id: job
                .file_id
                .ok_or_else(|| JobError::new("NotFound", "The job has no input file"))?,
        })
    }
}

/// A batch: an operation's options on several files, run as one parent with a child per file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct OnFiles<P: OperationParams> {
    /// The owning profile.
    pub profile_id: String,
    /// The input files, in order.
    pub file_ids: Vec<Uuid>,
    /// The options, the same for every child.
    pub params: P,
}

impl<P: OperationParams> OnFiles<P> {
    /// The parent (`params` plus `file_ids`) and one child per file.
    pub fn to_new_jobs(&self) -> Result<(NewJob, Vec<NewJob>), JobError> {
        let child_params = serde_json::to_value(&self.params).map_err(JobError::internal)?;
        let mut parent_params = child_params.clone();
        parent_params["file_ids"] = json!(self.file_ids);
        let parent =
            NewJob::new(P::OPERATION.batch_name(), parent_params).profile(&self.profile_id);
        let children = self
            .file_ids
            .iter()
            .map(|f| {
                NewJob::new(P::OPERATION.name(), child_params.clone())
                    .profile(&self.profile_id)
                    .file(*f)
            })
            .collect();
        Ok((parent, children))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_params_keep_their_shape() {
        let c = Convert {
            opts: ConvertOptions {
                max_size: Some((1280, 720)),
                max_kbps: None,
                preset: mediajobs_processor::media::Preset::Balanced,
            },
        };
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            json!({"opts": {"max_size": [1280, 720], "max_kbps": null, "preset": "balanced"}})
        );
        let f = FixSrt {
            model: "openai:gpt".into(),
            sys_msg: None,
        };
        assert_eq!(
            serde_json::to_value(&f).unwrap(),
            json!({"model": "openai:gpt", "sys_msg": null})
        );
    }
}
