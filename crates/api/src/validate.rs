//! Submission validation: everything is checked before anything is queued.

use std::collections::HashSet;

use axum::http::StatusCode;
use persistence::{FileKind, FileRecord};
use processor::media::{ConvertOptions, Preset};
use processor::transcribe::TranscribeOptions;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::ApiError;

/// The four operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Video/audio → SRT file.
    GenerateSrt,
    /// Video/audio → transcript.
    Transcribe,
    /// Video → MP4.
    Convert,
    /// SRT → fixed SRT (LLM).
    FixSrt,
}

impl Op {
    /// All operations.
    pub const ALL: [Op; 4] = [Op::GenerateSrt, Op::Transcribe, Op::Convert, Op::FixSrt];

    /// The job type of a single job.
    pub fn name(self) -> &'static str {
        match self {
            Op::GenerateSrt => "generate_srt",
            Op::Transcribe => "transcribe",
            Op::Convert => "convert",
            Op::FixSrt => "fix_srt",
        }
    }

    /// The job type of its batch.
    pub fn batch_name(self) -> &'static str {
        match self {
            Op::GenerateSrt => "batch_generate_srt",
            Op::Transcribe => "batch_transcribe",
            Op::Convert => "batch_convert",
            Op::FixSrt => "batch_fix_srt",
        }
    }

    fn parse(t: &str, batch: bool) -> Result<Op, ApiError> {
        let found = Op::ALL.into_iter().find(|o| {
            if batch {
                o.batch_name() == t
            } else {
                o.name() == t
            }
        });
        found.ok_or_else(|| {
            let known: Vec<&str> = Op::ALL
                .iter()
                .map(|o| if batch { o.batch_name() } else { o.name() })
                .collect();
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "UnknownJobType",
                format!("Unknown Job Type '{t}'"),
            )
            .details(json!({ "known": known }))
        })
    }

    fn accepts(self, kind: FileKind) -> bool {
        match self {
            Op::GenerateSrt | Op::Transcribe => matches!(kind, FileKind::Video | FileKind::Audio),
            Op::Convert => kind == FileKind::Video,
            Op::FixSrt => kind == FileKind::Subtitle,
        }
    }

    fn wants(self) -> &'static str {
        match self {
            Op::GenerateSrt | Op::Transcribe => "a video or audio file",
            Op::Convert => "a video file",
            Op::FixSrt => "an SRT subtitle file",
        }
    }
}

/// `POST /jobs` body.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitJob {
    /// `generate_srt`, `transcribe`, `convert` or `fix_srt`.
    #[serde(rename = "type")]
    pub job_type: String,
    /// The input file.
    pub file_id: Uuid,
    /// Options of the operation (not for `fix_srt`).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub opts: Option<Value>,
    /// `provider:model` (`fix_srt` only).
    #[serde(default)]
    pub model: Option<String>,
    /// System prompt override (`fix_srt` only).
    #[serde(default)]
    pub sys_msg: Option<String>,
}

/// `POST /jobs/batch` body.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitBatch {
    /// `batch_generate_srt`, `batch_transcribe`, `batch_convert` or `batch_fix_srt`.
    #[serde(rename = "type")]
    pub job_type: String,
    /// The input files, in order (no duplicates, at most 500).
    pub file_ids: Vec<Uuid>,
    /// Options of the operation (not for `batch_fix_srt`).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub opts: Option<Value>,
    /// `provider:model` (`batch_fix_srt` only).
    #[serde(default)]
    pub model: Option<String>,
    /// System prompt override (`batch_fix_srt` only).
    #[serde(default)]
    pub sys_msg: Option<String>,
}

/// `convert` options.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConvertOpts {
    resolution: Option<String>,
    target_bitrate: Option<Value>,
    preset: Option<String>,
}

/// Parses `WIDTHxHEIGHT` (16–8192 each).
pub fn parse_resolution(s: &str) -> Result<(u32, u32), ApiError> {
    let bad = || ApiError::validation(format!("resolution must be like '1280x720', got '{s}'"));
    let (w, h) = s.trim().split_once(['x', 'X']).ok_or_else(bad)?;
    let w: u32 = w.trim().parse().map_err(|_| bad())?;
    let h: u32 = h.trim().parse().map_err(|_| bad())?;
    if !(16..=8192).contains(&w) || !(16..=8192).contains(&h) {
        return Err(ApiError::validation(format!(
            "resolution {w}x{h} is out of range (16-8192)"
        )));
    }
    Ok((w, h))
}

/// Parses a bitrate (`"2500k"`, `"2.5M"`, `"800000"`, or a number of bit/s) into kbit/s
/// (64–200000).
pub fn parse_bitrate(v: &Value) -> Result<u32, ApiError> {
    let bad = || {
        ApiError::validation(format!(
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
        return Err(ApiError::validation(format!(
            "target_bitrate {v} is out of range (64k-200M)"
        )));
    }
    Ok(kbps as u32)
}

/// Validated, normalized job parameters.
#[derive(Debug, Clone, PartialEq)]
pub enum Params {
    /// `generate_srt` / `transcribe`.
    Transcribe(TranscribeOptions),
    /// `convert`.
    Convert(ConvertOptions),
    /// `fix_srt`.
    Fix {
        /// `provider:model`.
        model: String,
        /// System prompt override.
        sys_msg: Option<String>,
    },
}

impl Params {
    /// The JSON stored in the job's `params`.
    pub fn to_json(&self) -> Value {
        match self {
            Params::Transcribe(o) => json!({ "opts": o }),
            Params::Convert(c) => json!({
                "opts": {
                    "max_size": c.max_size,
                    "max_kbps": c.max_kbps,
                    "preset": c.preset,
                }
            }),
            Params::Fix { model, sys_msg } => json!({ "model": model, "sys_msg": sys_msg }),
        }
    }

    /// Reads the stored params back (used by the job handlers).
    pub fn transcribe_from(v: &Value) -> Result<TranscribeOptions, String> {
        serde_json::from_value(v["opts"].clone()).map_err(|e| e.to_string())
    }

    /// Reads stored convert options.
    pub fn convert_from(v: &Value) -> Result<ConvertOptions, String> {
        #[derive(Deserialize)]
        struct Stored {
            max_size: Option<(u32, u32)>,
            max_kbps: Option<u32>,
            preset: Preset,
        }
        let s: Stored = serde_json::from_value(v["opts"].clone()).map_err(|e| e.to_string())?;
        Ok(ConvertOptions {
            max_size: s.max_size,
            max_kbps: s.max_kbps,
            preset: s.preset,
        })
    }
}

/// What the validator needs from the running system.
pub trait Capabilities {
    /// Checks transcription options against the transcription backend (or says why it is
    /// unavailable).
    fn check_transcribe(&self, opts: &TranscribeOptions) -> Result<(), ApiError>;
    /// Checks a `provider:model` selector.
    fn check_model(&self, selector: &str) -> Result<(), ApiError>;
}

/// The operation of a single/batch job type.
pub fn op_of(job_type: &str, batch: bool) -> Result<Op, ApiError> {
    Op::parse(job_type, batch)
}

/// Validates the options part of a submission for `op`.
pub fn params(
    op: Op,
    opts: Option<&Value>,
    model: Option<&str>,
    sys_msg: Option<&str>,
    caps: &dyn Capabilities,
) -> Result<Params, ApiError> {
    if op != Op::FixSrt && (model.is_some() || sys_msg.is_some()) {
        return Err(ApiError::validation(format!(
            "model and sys_msg are only for fix_srt, not {}",
            op.name()
        )));
    }
    let opts = match opts {
        None | Some(Value::Null) => None,
        Some(v @ Value::Object(_)) => Some(v),
        Some(_) => return Err(ApiError::validation("opts must be an object")),
    };
    match op {
        Op::GenerateSrt | Op::Transcribe => {
            if op == Op::GenerateSrt && opts.and_then(|o| o.get("clean_audio")).is_some() {
                return Err(ApiError::validation(
                    "unknown field `clean_audio`: it applies to transcribe only",
                ));
            }
            let o: TranscribeOptions = match opts {
                Some(v) => serde_json::from_value(v.clone())
                    .map_err(|e| ApiError::validation(format!("invalid opts: {e}")))?,
                None => TranscribeOptions::default(),
            };
            caps.check_transcribe(&o)?;
            Ok(Params::Transcribe(o))
        }
        Op::Convert => {
            let o: ConvertOpts = match opts {
                Some(v) => serde_json::from_value(v.clone())
                    .map_err(|e| ApiError::validation(format!("invalid opts: {e}")))?,
                None => ConvertOpts::default(),
            };
            let preset = match o.preset.as_deref().unwrap_or("balanced") {
                "performance" => Preset::Performance,
                "balanced" => Preset::Balanced,
                "quality" => Preset::Quality,
                other => {
                    return Err(ApiError::validation(format!(
                        "preset must be performance, balanced or quality, got '{other}'"
                    )));
                }
            };
            let max_size = Some(parse_resolution(
                o.resolution.as_deref().unwrap_or("1280x720"),
            )?);
            let max_kbps = o.target_bitrate.as_ref().map(parse_bitrate).transpose()?;
            Ok(Params::Convert(ConvertOptions {
                max_size,
                max_kbps,
                preset,
            }))
        }
        Op::FixSrt => {
            if opts.is_some() {
                return Err(ApiError::validation(
                    "fix_srt takes model and sys_msg, not opts",
                ));
            }
            let model = model
                .map(str::trim)
                .filter(|m| !m.is_empty())
                .ok_or_else(|| {
                    ApiError::validation("model is required for fix_srt ('provider:model')")
                })?;
            caps.check_model(model)?;
            if let Some(s) = sys_msg
                && s.chars().count() > 4000
            {
                return Err(ApiError::validation(
                    "sys_msg must be at most 4000 characters",
                ));
            }
            Ok(Params::Fix {
                model: model.to_owned(),
                sys_msg: sys_msg.map(str::to_owned),
            })
        }
    }
}

/// Checks that each file suits the operation (`WrongFileKind` otherwise).
pub fn check_kinds(op: Op, files: &[FileRecord]) -> Result<(), ApiError> {
    for f in files {
        if !op.accepts(f.kind) {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "WrongFileKind",
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

/// Batch file list rules: 1–500 ids, no duplicates.
pub fn check_batch_ids(ids: &[Uuid]) -> Result<(), ApiError> {
    if ids.is_empty() {
        return Err(ApiError::validation("file_ids must not be empty"));
    }
    if ids.len() > 500 {
        return Err(ApiError::validation("at most 500 files per batch"));
    }
    let mut seen = HashSet::new();
    let dups: Vec<Uuid> = ids.iter().filter(|i| !seen.insert(**i)).copied().collect();
    if !dups.is_empty() {
        return Err(ApiError::validation("file_ids contains duplicates")
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
}
