//! Options in their HTTP form (`opts` objects with `resolution`, `target_bitrate`, `preset`;
//! `model` and `sys_msg` for `fix_srt`) parsed into typed [`Params`], and the batch file-list
//! rules.

use std::collections::HashSet;

use mediajobs_processor::media::{ConvertOptions, Preset};
use mediajobs_processor::transcribe::TranscribeOptions;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::error::MediaJobError;
use crate::job_spec::Params;
use crate::spec::{Convert, CueFileFormat, FixSrt, GenerateSrt, Operation, Transcribe};

/// `convert` options in their HTTP form.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpConvertOpts {
    resolution: Option<String>,
    target_bitrate: Option<Value>,
    preset: Option<String>,
}

pub(crate) fn check_resolution(w: u32, h: u32) -> Result<(), MediaJobError> {
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
            if op == Operation::GenerateSrt {
                // `format` rides in `opts` in the HTTP form; it is not a transcription option.
                let mut rest = opts.cloned();
                let format = match rest
                    .as_mut()
                    .and_then(Value::as_object_mut)
                    .and_then(|o| o.remove("format"))
                {
                    None | Some(Value::Null) => CueFileFormat::Srt,
                    Some(Value::String(f)) if f == "srt" => CueFileFormat::Srt,
                    Some(Value::String(f)) if f == "vtt" => CueFileFormat::Vtt,
                    Some(other) => {
                        return Err(MediaJobError::validation(format!(
                            "format must be \"srt\" or \"vtt\", got {other}"
                        )));
                    }
                };
                let o: TranscribeOptions = from(rest.as_ref())?;
                return Ok(Params::GenerateSrt(GenerateSrt { opts: o, format }));
            }
            let o: TranscribeOptions = from(opts)?;
            Ok(Params::Transcribe(Transcribe { opts: o }))
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
}
