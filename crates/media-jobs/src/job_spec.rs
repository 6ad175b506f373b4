//! [`JobSpec`]: any of the eight job types with its options, as a client asks for it, and
//! [`Params`], its options without the files.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::MediaJobError;
use crate::http_form::{check_batch_ids, check_resolution};
use crate::spec::{
    Convert, FixSrt, GenerateSrt, OnFile, OnFiles, Operation, OperationParams, Transcribe,
};

/// An operation's options on one file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct OneFile<P: OperationParams> {
    /// The input file.
    pub file_id: Uuid,
    /// The options (their fields sit beside `file_id` in JSON).
    #[serde(flatten)]
    pub params: P,
}

/// An operation's options on several files: a batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct ManyFiles<P: OperationParams> {
    /// The input files, in order.
    pub file_ids: Vec<Uuid>,
    /// The options, the same for every child.
    #[serde(flatten)]
    pub params: P,
}

impl<P: OperationParams> OneFile<P> {
    /// The typed job of `profile`.
    pub fn on(&self, profile: &str) -> OnFile<P> {
        OnFile {
            profile_id: profile.to_owned(),
            file_id: self.file_id,
            params: self.params.clone(),
            run: Default::default(),
        }
    }
}

impl<P: OperationParams> ManyFiles<P> {
    /// The typed batch of `profile`.
    pub fn on(&self, profile: &str) -> OnFiles<P> {
        OnFiles {
            profile_id: profile.to_owned(),
            file_ids: self.file_ids.clone(),
            params: self.params.clone(),
        }
    }
}

/// Any of the eight job types with its options: what a client asks for. The JSON form is
/// tagged by `type` (`{"type": "convert", "file_id": "…", "opts": {...}}`,
/// `{"type": "batch_fix_srt", "file_ids": […], "model": "…"}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum JobSpec {
    /// `generate_srt`.
    GenerateSrt(OneFile<GenerateSrt>),
    /// `transcribe`.
    Transcribe(OneFile<Transcribe>),
    /// `convert`.
    Convert(OneFile<Convert>),
    /// `fix_srt`.
    FixSrt(OneFile<FixSrt>),
    /// `batch_generate_srt`.
    BatchGenerateSrt(ManyFiles<GenerateSrt>),
    /// `batch_transcribe`.
    BatchTranscribe(ManyFiles<Transcribe>),
    /// `batch_convert`.
    BatchConvert(ManyFiles<Convert>),
    /// `batch_fix_srt`.
    BatchFixSrt(ManyFiles<FixSrt>),
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
        fn one(files: &[Uuid]) -> Result<Uuid, MediaJobError> {
            match files {
                [f] => Ok(*f),
                _ => Err(MediaJobError::validation(
                    "a single job takes exactly one file",
                )),
            }
        }
        use Params as P;
        Ok(match (params, batch) {
            (P::GenerateSrt(params), false) => JobSpec::GenerateSrt(OneFile {
                file_id: one(&files)?,
                params,
            }),
            (P::Transcribe(params), false) => JobSpec::Transcribe(OneFile {
                file_id: one(&files)?,
                params,
            }),
            (P::Convert(params), false) => JobSpec::Convert(OneFile {
                file_id: one(&files)?,
                params,
            }),
            (P::FixSrt(params), false) => JobSpec::FixSrt(OneFile {
                file_id: one(&files)?,
                params,
            }),
            (P::GenerateSrt(params), true) => JobSpec::BatchGenerateSrt(ManyFiles {
                file_ids: files,
                params,
            }),
            (P::Transcribe(params), true) => JobSpec::BatchTranscribe(ManyFiles {
                file_ids: files,
                params,
            }),
            (P::Convert(params), true) => JobSpec::BatchConvert(ManyFiles {
                file_ids: files,
                params,
            }),
            (P::FixSrt(params), true) => JobSpec::BatchFixSrt(ManyFiles {
                file_ids: files,
                params,
            }),
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
            JobSpec::GenerateSrt(s) => vec![s.file_id],
            JobSpec::Transcribe(s) => vec![s.file_id],
            JobSpec::Convert(s) => vec![s.file_id],
            JobSpec::FixSrt(s) => vec![s.file_id],
            JobSpec::BatchGenerateSrt(b) => b.file_ids.clone(),
            JobSpec::BatchTranscribe(b) => b.file_ids.clone(),
            JobSpec::BatchConvert(b) => b.file_ids.clone(),
            JobSpec::BatchFixSrt(b) => b.file_ids.clone(),
        }
    }

    /// Its options.
    pub fn params(&self) -> Params {
        match self {
            JobSpec::GenerateSrt(s) => Params::GenerateSrt(s.params.clone()),
            JobSpec::Transcribe(s) => Params::Transcribe(s.params.clone()),
            JobSpec::Convert(s) => Params::Convert(s.params.clone()),
            JobSpec::FixSrt(s) => Params::FixSrt(s.params.clone()),
            JobSpec::BatchGenerateSrt(b) => Params::GenerateSrt(b.params.clone()),
            JobSpec::BatchTranscribe(b) => Params::Transcribe(b.params.clone()),
            JobSpec::BatchConvert(b) => Params::Convert(b.params.clone()),
            JobSpec::BatchFixSrt(b) => Params::FixSrt(b.params.clone()),
        }
    }

    /// The stored options (`params` without run hints) as JSON: what a reuse key covers.
    pub fn params_json(&self) -> serde_json::Value {
        let v = match self.params() {
            Params::GenerateSrt(p) => serde_json::to_value(p),
            Params::Transcribe(p) => serde_json::to_value(p),
            Params::Convert(p) => serde_json::to_value(p),
            Params::FixSrt(p) => serde_json::to_value(p),
        };
        v.unwrap_or_default()
    }

    /// The job of the spec's operation on one file of `profile` (the single job, or a batch's
    /// child for that file), with its run hints.
    pub fn single_new_job(
        &self,
        profile: &str,
        file_id: Uuid,
        run: &crate::spec::RunHints,
    ) -> Result<jobs_core::NewJob, jobs_core::JobError> {
        use jobs_core::JobArgs;
        fn on<P: crate::spec::OperationParams>(
            profile: &str,
            file_id: Uuid,
            params: P,
            run: &crate::spec::RunHints,
        ) -> Result<jobs_core::NewJob, jobs_core::JobError> {
            OnFile {
                profile_id: profile.to_owned(),
                file_id,
                params,
                run: run.clone(),
            }
            .to_new_job()
        }
        match self.params() {
            Params::GenerateSrt(p) => on(profile, file_id, p, run),
            Params::Transcribe(p) => on(profile, file_id, p, run),
            Params::Convert(p) => on(profile, file_id, p, run),
            Params::FixSrt(p) => on(profile, file_id, p, run),
        }
    }

    /// A batch spec's parent and children (plain children, without run hints).
    pub fn batch_new_jobs(
        &self,
        profile: &str,
    ) -> Result<(jobs_core::NewJob, Vec<jobs_core::NewJob>), jobs_core::JobError> {
        match self {
            JobSpec::BatchGenerateSrt(b) => b.on(profile).to_new_jobs(),
            JobSpec::BatchTranscribe(b) => b.on(profile).to_new_jobs(),
            JobSpec::BatchConvert(b) => b.on(profile).to_new_jobs(),
            JobSpec::BatchFixSrt(b) => b.on(profile).to_new_jobs(),
            _ => Err(jobs_core::JobError::internal_msg("not a batch")),
        }
    }

    /// The rules that need nothing but the spec: batch file lists (1–500, no duplicates),
    /// option ranges, `fix_srt`'s model (the prompt's length is checked with the backends, in
    /// [`Services::check_params`](crate::Services::check_params)).
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
