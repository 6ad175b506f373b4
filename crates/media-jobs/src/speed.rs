//! [`SpeedBook`]: this node's measured speed per operation and model — the real-time factor
//! (processing seconds per media second) learned from finished jobs — and what it gives:
//! deadlines derived from an input's duration ([`SpeedBook::deadline`]) and ETAs
//! ([`SpeedBook::eta`]).
//!
//! Until a job of a kind finished here, a conservative prior stands in for the measurement.
//! Each finished job moves the estimate by an exponentially weighted average (weight 0.3), so
//! one odd job does not swing it and a changed machine is learned within a few jobs.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use jobs_core::{Job, JobStatus};

use crate::spec::Operation;

/// Weight of the newest measurement in the moving average.
const ALPHA: f64 = 0.3;

/// How deadlines are derived from the input's duration: `max(floor, media × rtf × factor)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimeoutPolicy {
    /// Multiplies the expected processing time (default 5).
    pub factor: f64,
    /// The shortest derived deadline (default 120 s): start-up, model loading, a short file.
    pub floor: Duration,
    /// The longest derived or explicit deadline (default 24 h).
    pub ceiling: Duration,
}

impl Default for TimeoutPolicy {
    fn default() -> Self {
        TimeoutPolicy {
            factor: 5.0,
            floor: Duration::from_secs(120),
            ceiling: Duration::from_secs(86_400),
        }
    }
}

/// One kind of work: an operation on a model (the transcription model, or `-` for
/// conversion and subtitle fixing).
type Kind = (Operation, String);

/// Real-time factors per operation and model, measured on this node.
#[derive(Debug)]
pub struct SpeedBook {
    model: String,
    policy: TimeoutPolicy,
    rtf: Mutex<HashMap<Kind, Measured>>,
}

#[derive(Debug, Clone, Copy)]
struct Measured {
    rtf: f64,
    samples: u32,
}

impl SpeedBook {
    /// A book for a node whose default transcription model is `model` (its id, e.g. `base`
    /// or the remote model name); jobs that name another model are measured apart.
    pub fn new(model: impl Into<String>, policy: TimeoutPolicy) -> Self {
        SpeedBook {
            model: model.into(),
            policy,
            rtf: Mutex::new(HashMap::new()),
        }
    }

    /// The default transcription model.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// The deadline policy.
    pub fn policy(&self) -> TimeoutPolicy {
        self.policy
    }

    fn kind(&self, op: Operation, model: Option<&str>) -> Kind {
        match op {
            Operation::GenerateSrt | Operation::Transcribe => (
                op,
                model
                    .filter(|m| !m.is_empty())
                    .unwrap_or(&self.model)
                    .to_owned(),
            ),
            _ => (op, "-".into()),
        }
    }

    /// The prior: what a kind is assumed to take before one finished here (seconds of work
    /// per second of media). Deliberately slow, so early deadlines are generous.
    fn prior(op: Operation) -> f64 {
        match op {
            Operation::GenerateSrt | Operation::Transcribe => 1.0,
            Operation::Convert => 0.5,
            // Not proportional to media; see `expected`.
            Operation::FixSrt => 0.0,
        }
    }

    /// The current real-time factor of `op` on the default model and whether it was
    /// measured here.
    pub fn rtf(&self, op: Operation) -> (f64, bool) {
        self.rtf_of(op, None)
    }

    /// The current real-time factor of `op` on `model` (`None`: the default) and whether it
    /// was measured here. Each model is learned on its own: `large-v3`'s deadlines never
    /// come from `base`'s speed.
    pub fn rtf_of(&self, op: Operation, model: Option<&str>) -> (f64, bool) {
        let k = self.kind(op, model);
        match self.rtf.lock().ok().and_then(|m| m.get(&k).copied()) {
            Some(m) => (m.rtf, true),
            None => (Self::prior(op), false),
        }
    }

    /// What was measured so far: `(operation, model, real-time factor, finished jobs)`.
    pub fn snapshot(&self) -> Vec<(Operation, String, f64, u32)> {
        let mut v: Vec<_> = self
            .rtf
            .lock()
            .map(|m| {
                m.iter()
                    .map(|((op, model), s)| (*op, model.clone(), s.rtf, s.samples))
                    .collect()
            })
            .unwrap_or_default();
        v.sort_by(|a, b| a.0.name().cmp(b.0.name()).then(a.1.cmp(&b.1)));
        v
    }

    /// Records a finished job on `model` (`None`: the default): `elapsed` of work for
    /// `media_ms` of media.
    pub fn record(&self, op: Operation, model: Option<&str>, media_ms: i64, elapsed: Duration) {
        if media_ms <= 0 {
            return;
        }
        let sample = elapsed.as_secs_f64() / (media_ms as f64 / 1000.0);
        if !sample.is_finite() {
            return;
        }
        let k = self.kind(op, model);
        if let Ok(mut m) = self.rtf.lock() {
            let e = m.entry(k).or_insert(Measured {
                rtf: sample,
                samples: 0,
            });
            if e.samples > 0 {
                e.rtf = ALPHA * sample + (1.0 - ALPHA) * e.rtf;
            }
            e.samples += 1;
        }
    }

    /// The expected processing time of `op` on `media_ms` of media (for `fix_srt`, on `cues`
    /// cues: a few seconds per window of cues).
    pub fn expected(
        &self,
        op: Operation,
        model: Option<&str>,
        media_ms: Option<i64>,
        cues: Option<usize>,
    ) -> Option<f64> {
        match op {
            Operation::FixSrt => cues.map(|c| 5.0 + 0.5 * c as f64),
            _ => media_ms
                .filter(|m| *m > 0)
                .map(|m| m as f64 / 1000.0 * self.rtf_of(op, model).0),
        }
    }

    /// The deadline of a job: the explicit `timeout_seconds` if given (capped at the
    /// ceiling), else `max(floor, expected × factor)`; `None` when nothing is known to derive
    /// one from (no duration).
    pub fn deadline(
        &self,
        op: Operation,
        model: Option<&str>,
        explicit: Option<u64>,
        media_ms: Option<i64>,
        cues: Option<usize>,
    ) -> Option<Duration> {
        if let Some(s) = explicit {
            return Some(Duration::from_secs(s.max(1)).min(self.policy.ceiling));
        }
        let expected = self.expected(op, model, media_ms, cues)?;
        let derived = Duration::from_secs_f64((expected * self.policy.factor).clamp(0.0, 1e9));
        Some(derived.clamp(self.policy.floor, self.policy.ceiling))
    }

    /// Seconds until a running job is expected to end: the expected total minus the time it
    /// has run, blended with what its own progress says once it reported some.
    pub fn eta_running(
        &self,
        op: Operation,
        model: Option<&str>,
        media_ms: Option<i64>,
        started_at: Option<DateTime<Utc>>,
        progress: f64,
        now: DateTime<Utc>,
    ) -> Option<f64> {
        let elapsed = started_at
            .map(|s| (now - s).num_milliseconds().max(0) as f64 / 1000.0)
            .unwrap_or(0.0);
        let by_model = self
            .expected(op, model, media_ms, None)
            .map(|total| (total - elapsed).max(0.0));
        let by_progress =
            (progress > 0.05 && progress < 1.0).then(|| elapsed * (1.0 - progress) / progress);
        match (by_model, by_progress) {
            (Some(m), Some(p)) => Some((m + p * 2.0) / 3.0),
            (Some(m), None) => Some(m),
            (None, Some(p)) => Some(p),
            (None, None) => None,
        }
    }

    /// The ETA of `job` (seconds until it ends) with `ahead` the seconds of work before it in
    /// its lane on this node (already divided by the lane's permits); `None` for a finished
    /// job or one nothing is known about.
    pub fn eta(&self, job: &Job, ahead: f64, now: DateTime<Utc>) -> Option<f64> {
        let op = Operation::of_job_type(&job.job_type)?;
        let media_ms = media_ms_of(job);
        let model = model_of(job);
        let cues = job
            .params
            .get("cues")
            .and_then(|v| v.as_u64())
            .map(|c| c as usize);
        let eta = match job.status {
            JobStatus::Running => {
                self.eta_running(op, model, media_ms, job.started_at, job.progress, now)
            }
            JobStatus::Queued => {
                let wait = job
                    .next_run_at(now)
                    .map_or(0.0, |t| (t - now).num_milliseconds() as f64 / 1000.0);
                self.expected(op, model, media_ms, cues)
                    .map(|own| wait.max(ahead) + own)
            }
            _ => None,
        }?;
        Some((eta * 10.0).round() / 10.0)
    }

    /// The expected seconds of work a queued or running job still holds (for the work ahead
    /// of a queued job).
    pub fn remaining(&self, job: &Job, now: DateTime<Utc>) -> f64 {
        let Some(op) = Operation::of_job_type(&job.job_type) else {
            return 0.0;
        };
        let media_ms = media_ms_of(job);
        let model = model_of(job);
        match job.status {
            JobStatus::Running => self
                .eta_running(op, model, media_ms, job.started_at, job.progress, now)
                .unwrap_or(0.0),
            JobStatus::Queued => self.expected(op, model, media_ms, None).unwrap_or(0.0),
            _ => 0.0,
        }
    }
}

/// The transcription model a job's options name (`opts.model`), if any.
pub fn model_of(job: &Job) -> Option<&str> {
    job.params
        .get("opts")
        .and_then(|o| o.get("model"))
        .and_then(|v| v.as_str())
}

/// The input's duration recorded in the job's params at submission (`media_ms`).
pub fn media_ms_of(job: &Job) -> Option<i64> {
    job.params.get("media_ms").and_then(|v| v.as_i64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_the_speed_and_derives_deadlines() {
        let b = SpeedBook::new("base", TimeoutPolicy::default());
        assert_eq!(b.rtf(Operation::Transcribe), (1.0, false));
        // 60 s of media: prior 1.0 × 5 = 300 s.
        assert_eq!(
            b.deadline(Operation::Transcribe, None, None, Some(60_000), None),
            Some(Duration::from_secs(300))
        );
        b.record(Operation::Transcribe, None, 60_000, Duration::from_secs(6));
        let (rtf, measured) = b.rtf(Operation::Transcribe);
        assert!(measured && (rtf - 0.1).abs() < 1e-9);
        // 0.1 × 60 × 5 = 30 s: below the floor.
        assert_eq!(
            b.deadline(Operation::Transcribe, None, None, Some(60_000), None),
            Some(Duration::from_secs(120))
        );
        b.record(Operation::Transcribe, None, 60_000, Duration::from_secs(12));
        assert!((b.rtf(Operation::Transcribe).0 - 0.13).abs() < 1e-9);
        // generate_srt is learned separately; an explicit timeout wins.
        assert_eq!(b.rtf(Operation::GenerateSrt), (1.0, false));
        assert_eq!(
            b.deadline(Operation::GenerateSrt, None, Some(7), Some(60_000), None),
            Some(Duration::from_secs(7))
        );
        assert_eq!(b.deadline(Operation::Convert, None, None, None, None), None);
    }

    #[test]
    fn each_model_is_learned_on_its_own() {
        let b = SpeedBook::new("base", TimeoutPolicy::default());
        b.record(
            Operation::Transcribe,
            None,
            600_000,
            Duration::from_secs(60),
        );
        assert!((b.rtf_of(Operation::Transcribe, Some("base")).0 - 0.1).abs() < 1e-9);
        // A model never run here gets the generous prior, not base's speed: 10 min of media
        // × 1.0 × 5 = 3000 s, where base's 0.1 would give 300 s and time a large model out.
        assert_eq!(
            b.rtf_of(Operation::Transcribe, Some("large-v3")),
            (1.0, false)
        );
        assert_eq!(
            b.deadline(
                Operation::Transcribe,
                Some("large-v3"),
                None,
                Some(600_000),
                None
            ),
            Some(Duration::from_secs(3000))
        );
        b.record(
            Operation::Transcribe,
            Some("large-v3"),
            600_000,
            Duration::from_secs(1200),
        );
        assert!((b.rtf_of(Operation::Transcribe, Some("large-v3")).0 - 2.0).abs() < 1e-9);
        assert!(
            (b.rtf(Operation::Transcribe).0 - 0.1).abs() < 1e-9,
            "base unchanged"
        );
        let snap = b.snapshot();
        assert_eq!(snap.len(), 2, "{snap:?}");
    }

    #[test]
    fn eta_decreases_as_a_job_runs() {
        let b = SpeedBook::new("base", TimeoutPolicy::default());
        b.record(Operation::Transcribe, None, 10_000, Duration::from_secs(10));
        let t0 = Utc::now();
        let early = b
            .eta_running(
                Operation::Transcribe,
                None,
                Some(100_000),
                Some(t0),
                0.0,
                t0,
            )
            .unwrap();
        let later = b
            .eta_running(
                Operation::Transcribe,
                None,
                Some(100_000),
                Some(t0),
                0.5,
                t0 + chrono::TimeDelta::seconds(50),
            )
            .unwrap();
        assert!((early - 100.0).abs() < 1e-6);
        assert!(later < early && later > 0.0, "{later}");
    }
}
