//! The job vocabulary: the four [`Operation`]s and their batches, their typed arguments
//! ([`OnFile`] / [`OnFiles`] over [`GenerateSrt`], [`Transcribe`], [`Convert`], [`FixSrt`]),
//! their outputs, the [`JobSpec`] enum over all eight types, and the parsing of the HTTP
//! form of options.
//!
//! A stored job keeps its input file and profile in columns and its options in `params`
//! (`{"opts": {...}}`, or `{"model", "sys_msg"}` for `fix_srt`); the types here read and write
//! exactly that shape, so jobs stored by earlier versions still run.

use std::collections::HashSet;

use jobs_core::{Job, JobArgs, JobError, NewJob, bad_args, lanes};
use mediajobs_persistence::FileKind;
use mediajobs_processor::llm::TokenUsage;
use mediajobs_processor::media::{ConvertOptions, Preset};
use mediajobs_processor::subtitle::ReadingSpeed;
use mediajobs_processor::transcribe::TranscribeOptions;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::error::{ErrorKind, MediaJobError};

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
                MediaJobError::new(
                    ErrorKind::Invalid,
                    "UnknownJobType",
                    format!("Unknown Job Type '{t}'"),
                )
                .details(json!({ "known": known }))
            })
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

/// What `generate_srt` returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerateSrtOutput {
    /// The new SRT file.
    pub srt_file_id: Uuid,
    /// Where to download it.
    pub srt_url: String,
    /// Its text.
    pub srt_content: String,
    /// Detected or requested language.
    pub language: String,
    /// Number of cues.
    pub cues: usize,
    /// Reading-speed figures.
    pub reading_speed: ReadingSpeed,
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

/// A single media job: an operation's options on one file of a profile. Its [`JobArgs`]
/// encoding puts the profile and the file in the job's columns, the options in `params`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct OnFile<P: OperationParams> {
    /// The owning profile.
    pub profile_id: String,
    /// The input file.
    pub file_id: Uuid,
    /// The options.
    pub params: P,
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
        let params = serde_json::to_value(&self.params).map_err(JobError::internal)?;
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

/// Any of the eight job types with its options: what a client asks for. The JSON form is
/// tagged by `type` (`{"type": "convert", "file_id": "…", "opts": {...}}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum JobSpec {
    /// `generate_srt`.
    GenerateSrt {
        /// The input file.
        file_id: Uuid,
        /// Options.
        #[serde(default)]
        opts: TranscribeOptions,
    },
    /// `transcribe`.
    Transcribe {
        /// The input file.
        file_id: Uuid,
        /// Options.
        #[serde(default)]
        opts: TranscribeOptions,
    },
    /// `convert`.
    Convert {
        /// The input file.
        file_id: Uuid,
        /// Options.
        #[serde(default)]
        opts: ConvertOptions,
    },
    /// `fix_srt`.
    FixSrt {
        /// The input file.
        file_id: Uuid,
        /// `provider:model`.
        model: String,
        /// System prompt override.
        #[serde(default)]
        sys_msg: Option<String>,
    },
    /// `batch_generate_srt`.
    BatchGenerateSrt {
        /// The input files.
        file_ids: Vec<Uuid>,
        /// Options.
        #[serde(default)]
        opts: TranscribeOptions,
    },
    /// `batch_transcribe`.
    BatchTranscribe {
        /// The input files.
        file_ids: Vec<Uuid>,
        /// Options.
        #[serde(default)]
        opts: TranscribeOptions,
    },
    /// `batch_convert`.
    BatchConvert {
        /// The input files.
        file_ids: Vec<Uuid>,
        /// Options.
        #[serde(default)]
        opts: ConvertOptions,
    },
    /// `batch_fix_srt`.
    BatchFixSrt {
        /// The input files.
        file_ids: Vec<Uuid>,
        /// `provider:model`.
        model: String,
        /// System prompt override.
        #[serde(default)]
        sys_msg: Option<String>,
    },
}

/// The options of a [`JobSpec`], without its files.
#[derive(Debug, Clone, PartialEq)]
pub enum Params {
    /// `generate_srt` options.
    GenerateSrt(GenerateSrt),
    /// `transcribe` options.
    Transcribe(Transcribe),
    /// `convert` options.
    Convert(Convert),
    /// `fix_srt` options.
    FixSrt(FixSrt),
}

impl Params {
    /// Its operation.
    pub fn operation(&self) -> Operation {
        match self {
            Params::GenerateSrt(_) => Operation::GenerateSrt,
            Params::Transcribe(_) => Operation::Transcribe,
            Params::Convert(_) => Operation::Convert,
            Params::FixSrt(_) => Operation::FixSrt,
        }
    }
}

impl JobSpec {
    /// Builds the spec of `params` on one file (`files.len() == 1`, `batch == false`) or a batch.
    pub fn new(params: Params, files: Vec<Uuid>, batch: bool) -> Result<JobSpec, MediaJobError> {
        if !batch {
            let [file_id] = files.as_slice() else {
                return Err(MediaJobError::validation(
                    "a single job takes exactly one file",
                ));
            };
            let file_id = *file_id;
            return Ok(match params {
                Params::GenerateSrt(p) => JobSpec::GenerateSrt {
                    file_id,
                    opts: p.opts,
                },
                Params::Transcribe(p) => JobSpec::Transcribe {
                    file_id,
                    opts: p.opts,
                },
                Params::Convert(p) => JobSpec::Convert {
                    file_id,
                    opts: p.opts,
                },
                Params::FixSrt(p) => JobSpec::FixSrt {
                    file_id,
                    model: p.model,
                    sys_msg: p.sys_msg,
                },
            });
        }
        let file_ids = files;
        Ok(match params {
            Params::GenerateSrt(p) => JobSpec::BatchGenerateSrt {
                file_ids,
                opts: p.opts,
            },
            Params::Transcribe(p) => JobSpec::BatchTranscribe {
                file_ids,
                opts: p.opts,
            },
            Params::Convert(p) => JobSpec::BatchConvert {
                file_ids,
                opts: p.opts,
            },
            Params::FixSrt(p) => JobSpec::BatchFixSrt {
                file_ids,
                model: p.model,
                sys_msg: p.sys_msg,
            },
        })
    }

    /// Its operation.
    pub fn operation(&self) -> Operation {
        self.params().operation()
    }

    /// Whether it is a batch type.
    pub fn is_batch(&self) -> bool {
        matches!(
            self,
            JobSpec::BatchGenerateSrt { .. }
                | JobSpec::BatchTranscribe { .. }
                | JobSpec::BatchConvert { .. }
                | JobSpec::BatchFixSrt { .. }
        )
    }

    /// The job type it is stored under.
    pub fn job_type(&self) -> &'static str {
        let op = self.operation();
        if self.is_batch() {
            op.batch_name()
        } else {
            op.name()
        }
    }

    /// Its input files.
    pub fn file_ids(&self) -> Vec<Uuid> {
        match self {
            JobSpec::GenerateSrt { file_id, .. }
            | JobSpec::Transcribe { file_id, .. }
            | JobSpec::Convert { file_id, .. }
            | JobSpec::FixSrt { file_id, .. } => vec![*file_id],
            JobSpec::BatchGenerateSrt { file_ids, .. }
            | JobSpec::BatchTranscribe { file_ids, .. }
            | JobSpec::BatchConvert { file_ids, .. }
            | JobSpec::BatchFixSrt { file_ids, .. } => file_ids.clone(),
        }
    }

    /// Its options.
    pub fn params(&self) -> Params {
        match self {
            JobSpec::GenerateSrt { opts, .. } | JobSpec::BatchGenerateSrt { opts, .. } => {
                Params::GenerateSrt(GenerateSrt { opts: opts.clone() })
            }
            JobSpec::Transcribe { opts, .. } | JobSpec::BatchTranscribe { opts, .. } => {
                Params::Transcribe(Transcribe { opts: opts.clone() })
            }
            JobSpec::Convert { opts, .. } | JobSpec::BatchConvert { opts, .. } => {
                Params::Convert(Convert { opts: opts.clone() })
            }
            JobSpec::FixSrt { model, sys_msg, .. }
            | JobSpec::BatchFixSrt { model, sys_msg, .. } => Params::FixSrt(FixSrt {
                model: model.clone(),
                sys_msg: sys_msg.clone(),
            }),
        }
    }

    /// The rules that need nothing but the spec: batch file lists (1–500, no duplicates),
    /// option ranges, `fix_srt`'s model and prompt length.
    pub fn check(&self) -> Result<(), MediaJobError> {
        if self.is_batch() {
            check_batch_ids(&self.file_ids())?;
        }
        match self.params() {
            Params::Convert(c) => {
                if let Some((w, h)) = c.opts.max_size {
                    check_resolution(w, h)?;
                }
                if let Some(k) = c.opts.max_kbps
                    && !(64..=200_000).contains(&k)
                {
                    return Err(MediaJobError::validation(format!(
                        "target_bitrate {k}k is out of range (64k-200M)"
                    )));
                }
                Ok(())
            }
            Params::FixSrt(f) => {
                if f.model.trim().is_empty() {
                    return Err(MediaJobError::validation(
                        "model is required for fix_srt ('provider:model')",
                    ));
                }
                if let Some(s) = &f.sys_msg
                    && s.chars().count() > 4000
                {
                    return Err(MediaJobError::validation(
                        "sys_msg must be at most 4000 characters",
                    ));
                }
                Ok(())
            }
            Params::GenerateSrt(_) | Params::Transcribe(_) => Ok(()),
        }
    }
}

/// `convert` options in their HTTP form.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpConvertOpts {
    resolution: Option<String>,
    target_bitrate: Option<Value>,
    preset: Option<String>,
}

fn check_resolution(w: u32, h: u32) -> Result<(), MediaJobError> {
    if !(16..=8192).contains(&w) || !(16..=8192).contains(&h) {
        return Err(MediaJobError::validation(format!(
            "resolution {w}x{h} is out of range (16-8192)"
        )));
    }
    Ok(())
}

/// Parses `WIDTHxHEIGHT` (16–8192 each).
///
/// ```
/// assert_eq!(mediajobs_jobs::parse_resolution("1920x1080").unwrap(), (1920, 1080));
/// assert!(mediajobs_jobs::parse_resolution("0x0").is_err());
/// ```
pub fn parse_resolution(s: &str) -> Result<(u32, u32), MediaJobError> {
    let bad =
        || MediaJobError::validation(format!("resolution must be like '1280x720', got '{s}'"));
    let (w, h) = s.trim().split_once(['x', 'X']).ok_or_else(bad)?;
    let w: u32 = w.trim().parse().map_err(|_| bad())?;
    let h: u32 = h.trim().parse().map_err(|_| bad())?;
    check_resolution(w, h)?;
    Ok((w, h))
}

/// Parses a bitrate (`"2500k"`, `"2.5M"`, `"800000"`, or a number of bit/s) into kbit/s
/// (64–200000).
pub fn parse_bitrate(v: &Value) -> Result<u32, MediaJobError> {
    let bad = || {
        MediaJobError::validation(format!(
            "target_bitrate must be like '2500k' or '2.5M', got {v}"
        ))
    };
    let bits: f64 = match v {
        Value::Number(n) => n.as_f64().ok_or_else(bad)?,
        Value::String(s) => {
            let s = s.trim().to_ascii_lowercase();
            let (num, mult) = if let Some(n) = s.strip_suffix('k') {
                (n, 1e3)
            } else if let Some(n) = s.strip_suffix('m') {
                (n, 1e6)
            } else {
                (s.as_str(), 1.0)
            };
            num.trim().parse::<f64>().map_err(|_| bad())? * mult
        }
        _ => return Err(bad()),
    };
    let kbps = (bits / 1000.0).round();
    if !kbps.is_finite() || !(64.0..=200_000.0).contains(&kbps) {
        return Err(MediaJobError::validation(format!(
            "target_bitrate {v} is out of range (64k-200M)"
        )));
    }
    Ok(kbps as u32)
}

/// Parses the options part of a submission in its HTTP form (`opts` object; `model` and
/// `sys_msg` for `fix_srt`) into typed [`Params`]. Checks against the running backends
/// (transcription options, the model selector) come after, in
/// [`Services::check_params`](crate::Services::check_params).
pub fn parse_params(
    op: Operation,
    opts: Option<&Value>,
    model: Option<&str>,
    sys_msg: Option<&str>,
) -> Result<Params, MediaJobError> {
    if op != Operation::FixSrt && (model.is_some() || sys_msg.is_some()) {
        return Err(MediaJobError::validation(format!(
            "model and sys_msg are only for fix_srt, not {}",
            op.name()
        )));
    }
    let opts = match opts {
        None | Some(Value::Null) => None,
        Some(v @ Value::Object(_)) => Some(v),
        Some(_) => return Err(MediaJobError::validation("opts must be an object")),
    };
    fn from<T: DeserializeOwned + Default>(opts: Option<&Value>) -> Result<T, MediaJobError> {
        match opts {
            Some(v) => serde_json::from_value(v.clone())
                .map_err(|e| MediaJobError::validation(format!("invalid opts: {e}"))),
            None => Ok(T::default()),
        }
    }
    match op {
        Operation::GenerateSrt | Operation::Transcribe => {
            if op == Operation::GenerateSrt && opts.and_then(|o| o.get("clean_audio")).is_some() {
                return Err(MediaJobError::validation(
                    "unknown field `clean_audio`: it applies to transcribe only",
                ));
            }
            let o: TranscribeOptions = from(opts)?;
            Ok(if op == Operation::GenerateSrt {
                Params::GenerateSrt(GenerateSrt { opts: o })
            } else {
                Params::Transcribe(Transcribe { opts: o })
            })
        }
        Operation::Convert => {
            let o: HttpConvertOpts = from(opts)?;
            let preset = match o.preset.as_deref().unwrap_or("balanced") {
                "performance" => Preset::Performance,
                "balanced" => Preset::Balanced,
                "quality" => Preset::Quality,
                other => {
                    return Err(MediaJobError::validation(format!(
                        "preset must be performance, balanced or quality, got '{other}'"
                    )));
                }
            };
            let max_size = Some(parse_resolution(
                o.resolution.as_deref().unwrap_or("1280x720"),
            )?);
            let max_kbps = o.target_bitrate.as_ref().map(parse_bitrate).transpose()?;
            Ok(Params::Convert(Convert {
                opts: ConvertOptions {
                    max_size,
                    max_kbps,
                    preset,
                },
            }))
        }
        Operation::FixSrt => {
            if opts.is_some() {
                return Err(MediaJobError::validation(
                    "fix_srt takes model and sys_msg, not opts",
                ));
            }
            let model = model
                .map(str::trim)
                .filter(|m| !m.is_empty())
                .ok_or_else(|| {
                    MediaJobError::validation("model is required for fix_srt ('provider:model')")
                })?;
            Ok(Params::FixSrt(FixSrt {
                model: model.to_owned(),
                sys_msg: sys_msg.map(str::to_owned),
            }))
        }
    }
}

/// Batch file list rules: 1–500 ids, no duplicates.
pub fn check_batch_ids(ids: &[Uuid]) -> Result<(), MediaJobError> {
    if ids.is_empty() {
        return Err(MediaJobError::validation("file_ids must not be empty"));
    }
    if ids.len() > 500 {
        return Err(MediaJobError::validation("at most 500 files per batch"));
    }
    let mut seen = HashSet::new();
    let dups: Vec<Uuid> = ids.iter().filter(|i| !seen.insert(**i)).copied().collect();
    if !dups.is_empty() {
        return Err(MediaJobError::validation("file_ids contains duplicates")
            .details(json!({ "duplicates": dups })));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitrates_and_resolutions() {
        assert_eq!(parse_bitrate(&json!("2500k")).unwrap(), 2500);
        assert_eq!(parse_bitrate(&json!("2.5M")).unwrap(), 2500);
        assert_eq!(parse_bitrate(&json!(800000)).unwrap(), 800);
        assert!(parse_bitrate(&json!("fast")).is_err());
        assert!(parse_bitrate(&json!("1k")).is_err());
        assert_eq!(parse_resolution("1920x1080").unwrap(), (1920, 1080));
        assert!(parse_resolution("1920").is_err());
        assert!(parse_resolution("0x0").is_err());
    }

    #[test]
    fn stored_params_keep_their_shape() {
        let c = Convert {
            opts: ConvertOptions {
                max_size: Some((1280, 720)),
                max_kbps: None,
                preset: Preset::Balanced,
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

    #[test]
    fn specs_are_tagged_by_type() {
        let id = Uuid::nil();
        let s: JobSpec = serde_json::from_value(json!({"type": "convert", "file_id": id})).unwrap();
        assert_eq!(s.job_type(), "convert");
        assert_eq!(s.file_ids(), vec![id]);
        let b: JobSpec = serde_json::from_value(
            json!({"type": "batch_fix_srt", "file_ids": [id], "model": "a:b"}),
        )
        .unwrap();
        assert!(b.is_batch());
        assert_eq!(b.operation(), Operation::FixSrt);
        assert!(
            JobSpec::new(b.params(), vec![id, id], true)
                .unwrap()
                .check()
                .is_err()
        );
    }
}
