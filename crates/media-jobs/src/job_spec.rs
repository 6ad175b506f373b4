//! [`JobSpec`]: any of the eight job types with its options, as a client asks for it, and
//! [`Params`], its options without the files.

use mediajobs_processor::media::ConvertOptions;
use mediajobs_processor::transcribe::TranscribeOptions;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::MediaJobError;
use crate::http_form::{check_batch_ids, check_resolution};
use crate::spec::{Convert, FixSrt, GenerateSrt, Operation, Transcribe};

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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

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
