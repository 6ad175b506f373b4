//! [`ManagerConfig`] and [`InterruptPolicy`]: a manager's settings.

use std::time::Duration;

use uuid::Uuid;

use crate::job::lanes;
use crate::store::DEFAULT_MAX_ATTEMPTS;

/// What happens to a job interrupted by a restart, a shutdown or a lost node. In
/// configuration: `"retry"` or `"fail"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InterruptPolicy {
    /// Back to `queued` while `attempts < max_attempts`, else `failed` / `Interrupted`.
    #[default]
    Retry,
    /// Always `failed` / `Interrupted` (the original in-process behaviour).
    Fail,
}

impl std::str::FromStr for InterruptPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "retry" => Ok(InterruptPolicy::Retry),
            "fail" => Ok(InterruptPolicy::Fail),
            other => Err(format!("expected 'retry' or 'fail', got '{other}'")),
        }
    }
}

/// How a job that failed with a retryable error ([`JobError::retryable`]) is retried: after
/// `base × 2^(attempt-1)`, capped at `max_delay`, with "equal jitter" (a random point in the
/// upper half of that delay) so jobs that failed together do not come back together. The
/// number of attempts is the job's `max_attempts`.
///
/// ```
/// use std::time::Duration;
/// use jobs_core::RetryPolicy;
/// let p = RetryPolicy::default().base(Duration::from_secs(1)).jitter(false);
/// assert_eq!(p.delay(1), Duration::from_secs(1));
/// assert_eq!(p.delay(3), Duration::from_secs(4));
/// ```
///
/// [`JobError::retryable`]: crate::JobError::retryable
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Backoff after the first failed attempt (default 2 s).
    pub base: Duration,
    /// Longest backoff (default 10 min).
    pub max_delay: Duration,
    /// Randomize each delay within its upper half (default on).
    pub jitter: bool,
    /// `false`: retryable errors fail the job like any other (default `true`).
    pub enabled: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            base: Duration::from_secs(2),
            max_delay: Duration::from_secs(600),
            jitter: true,
            enabled: true,
        }
    }
}

impl RetryPolicy {
    /// Never retries.
    pub fn never() -> Self {
        RetryPolicy {
            enabled: false,
            ..Self::default()
        }
    }

    /// Sets the first backoff.
    pub fn base(mut self, d: Duration) -> Self {
        self.base = d;
        self
    }

    /// Sets the longest backoff.
    pub fn max_delay(mut self, d: Duration) -> Self {
        self.max_delay = d;
        self
    }

    /// Turns jitter on or off.
    pub fn jitter(mut self, on: bool) -> Self {
        self.jitter = on;
        self
    }

    /// The backoff after failed attempt `attempt` (1-based).
    pub fn delay(&self, attempt: i32) -> Duration {
        let exp = u32::try_from(attempt.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
        let d = self
            .base
            .saturating_mul(2u32.saturating_pow(exp))
            .min(self.max_delay);
        if self.jitter {
            d / 2 + d.mul_f64(rand::random::<f64>() / 2.0)
        } else {
            d
        }
    }
}

/// Settings of a [`QueueManager`]. Every field has a sensible default.
///
/// ```
/// use std::time::Duration;
/// use jobs_core::{InterruptPolicy, ManagerConfig};
/// let cfg = ManagerConfig::default()
///     .node_id("node-a")
///     .lane("io", 8)
///     .interrupt_policy(InterruptPolicy::Fail)
///     .lease(Duration::from_secs(60));
/// assert_eq!(cfg.lane_permits("io"), Some(8));
/// assert_eq!(cfg.lane_permits("heavy"), Some(1));
/// ```
#[derive(Debug, Clone)]
pub struct ManagerConfig {
    /// This node's id; must be unique among nodes sharing a store and stable across restarts
    /// (jobs left `running` under this id are recovered at once on start).
    pub node_id: String,
    /// Lanes and their permits: `heavy` 1, `io` 4, `batch` 16 by default.
    pub lanes: Vec<(String, usize)>,
    /// What happens to interrupted jobs.
    pub interrupt_policy: InterruptPolicy,
    /// Default `max_attempts` of new jobs, and the attempts a retry grants.
    pub max_attempts: i32,
    /// Lease length (default 30 s).
    pub lease: Duration,
    /// Lease renewal interval (default 10 s).
    pub heartbeat: Duration,
    /// How often expired leases of other nodes are reaped (default 15 s).
    pub reaper_interval: Duration,
    /// Fallback poll when no wake-up arrives (default 5 s).
    pub poll_interval: Duration,
    /// How long `stop()` lets running jobs finish before cancelling them (default 10 s).
    pub grace_period: Duration,
    /// How long `stop()` waits for cancelled handlers before abandoning them (default 5 s).
    pub cancel_wait: Duration,
    /// Minimum interval between progress writes of one job (default 500 ms: ≤ 2/s).
    pub progress_interval: Duration,
    /// Capacity of the event broadcast channel.
    pub event_capacity: usize,
    /// Most jobs one claim statement takes (default 32); a lane never claims more than it has
    /// free permits, so no job waits on a busy node. `1` claims one job per statement.
    pub claim_batch: usize,
    /// Most completions written in one transaction (default 256). Handlers that end while a
    /// write is in flight are written together in the next one; a lone job is written at once.
    pub completion_batch: usize,
    /// Lanes whose jobs keep their permit until their outcome is written (default: `heavy`),
    /// so the store never shows more running jobs of the lane on this node than it has
    /// permits. In the other lanes the permit goes to the next job as soon as the handler
    /// returns, while the completer writes the outcome (ADR 013).
    pub strict_lanes: Vec<String>,
    /// Finished top-level jobs older than this are pruned by the maintenance task (default:
    /// kept forever).
    pub retention: Option<Duration>,
    /// How often the retention pass runs (default 60 s).
    pub maintenance_interval: Duration,
    /// How long a terminal state's webhook is retried before it is given up (default 24 h).
    pub webhook_retry_window: Duration,
    /// Backoff between webhook tries (default 1 s doubling to 1 h, jittered).
    pub webhook_retry: RetryPolicy,
    /// How long a claimed webhook try holds its delivery (default 30 s).
    pub webhook_lease: Duration,
    /// Fallback poll of the delivery loop (default 1 s).
    pub webhook_poll: Duration,
    /// The retry policy of job types without one of their own
    /// ([`QueueManager::set_retry_policy`](crate::QueueManager::set_retry_policy)).
    pub retry: RetryPolicy,
}

impl Default for ManagerConfig {
    fn default() -> Self {
        ManagerConfig {
            node_id: format!("node-{}", Uuid::new_v4().simple()),
            lanes: vec![
                (lanes::HEAVY.to_owned(), 1),
                (lanes::IO.to_owned(), 4),
                (lanes::BATCH.to_owned(), 16),
            ],
            interrupt_policy: InterruptPolicy::Retry,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            lease: Duration::from_secs(30),
            heartbeat: Duration::from_secs(10),
            reaper_interval: Duration::from_secs(15),
            poll_interval: Duration::from_secs(5),
            grace_period: Duration::from_secs(10),
            cancel_wait: Duration::from_secs(5),
            progress_interval: Duration::from_millis(500),
            event_capacity: 4096,
            claim_batch: 32,
            completion_batch: 256,
            strict_lanes: vec![lanes::HEAVY.to_owned()],
            retry: RetryPolicy::default(),
            retention: None,
            maintenance_interval: Duration::from_secs(60),
            webhook_retry_window: Duration::from_secs(86_400),
            webhook_retry: RetryPolicy::default()
                .base(Duration::from_secs(1))
                .max_delay(Duration::from_secs(3600)),
            webhook_lease: Duration::from_secs(30),
            webhook_poll: Duration::from_secs(1),
        }
    }
}

impl ManagerConfig {
    /// Sets the most jobs one claim takes (see [`claim_batch`](ManagerConfig::claim_batch)).
    pub fn claim_batch(mut self, n: usize) -> Self {
        self.claim_batch = n.max(1);
        self
    }

    /// Sets the most completions one write takes (see
    /// [`completion_batch`](ManagerConfig::completion_batch)).
    pub fn completion_batch(mut self, n: usize) -> Self {
        self.completion_batch = n.max(1);
        self
    }

    /// Sets the node id.
    pub fn node_id(mut self, id: impl Into<String>) -> Self {
        self.node_id = id.into();
        self
    }

    /// Sets (or adds) a lane with `permits` permits (at least 1).
    pub fn lane(mut self, name: impl Into<String>, permits: usize) -> Self {
        let name = name.into();
        let permits = permits.max(1);
        match self.lanes.iter_mut().find(|(n, _)| *n == name) {
            Some(l) => l.1 = permits,
            None => self.lanes.push((name, permits)),
        }
        self
    }

    /// Makes `lane` strict: its jobs keep their permit until their outcome is written (see
    /// [`strict_lanes`](Self::strict_lanes)).
    pub fn strict_lane(mut self, lane: impl Into<String>) -> Self {
        let lane = lane.into();
        if !self.strict_lanes.contains(&lane) {
            self.strict_lanes.push(lane);
        }
        self
    }

    /// The permits of a lane.
    pub fn lane_permits(&self, name: &str) -> Option<usize> {
        self.lanes.iter().find(|(n, _)| n == name).map(|l| l.1)
    }

    /// Sets the interrupt policy.
    pub fn interrupt_policy(mut self, p: InterruptPolicy) -> Self {
        self.interrupt_policy = p;
        self
    }

    /// Sets the default `max_attempts` (at least 1).
    pub fn max_attempts(mut self, n: i32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    /// Sets the lease, with the heartbeat at a third and the reaper at half of it.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self.heartbeat = lease / 3;
        self.reaper_interval = lease / 2;
        self
    }

    /// Sets the stop grace period.
    pub fn grace_period(mut self, d: Duration) -> Self {
        self.grace_period = d;
        self
    }

    /// Prunes finished jobs older than `retention` (see [`retention`](Self::retention)).
    pub fn retention(mut self, retention: Duration) -> Self {
        self.retention = Some(retention);
        self
    }

    /// Sets the default retry policy.
    pub fn retry(mut self, p: RetryPolicy) -> Self {
        self.retry = p;
        self
    }

    /// Sets the fallback poll interval.
    pub fn poll_interval(mut self, d: Duration) -> Self {
        self.poll_interval = d;
        self
    }
}
