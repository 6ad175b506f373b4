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

    /// Sets the fallback poll interval.
    pub fn poll_interval(mut self, d: Duration) -> Self {
        self.poll_interval = d;
        self
    }
}
