//! The conformance suite every [`JobStore`] backend must pass, plus test helpers.
//!
//! A backend runs the whole suite with one line; each case becomes its own `#[tokio::test]`:
//!
//! ```text
//! async fn memory() -> jobs_core::testkit::TestStore {
//!     jobs_core::testkit::TestStore::new(std::sync::Arc::new(jobs_core::MemoryStore::new()))
//! }
//! jobs_core::conformance_tests!(memory);
//! ```
//!
//! or, without the macro, [`run_conformance`] runs every case in turn and reports the failures.
#![allow(clippy::unwrap_used, missing_docs)]

pub mod cases;
mod counting;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use uuid::Uuid;

use crate::{JobStore, ManagerConfig};

pub use counting::CountingStore;

/// A boxed future.
pub type BoxFut<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// A store made for one test case, with an optional async clean-up (e.g. dropping a database).
pub struct TestStore {
    /// The store under test.
    pub store: Arc<dyn JobStore>,
    cleanup: Option<Box<dyn FnOnce() -> BoxFut<()> + Send>>,
}

impl TestStore {
    /// A store that needs no clean-up.
    pub fn new(store: Arc<dyn JobStore>) -> Self {
        TestStore {
            store,
            cleanup: None,
        }
    }

    /// A store with a clean-up run after the case passed.
    pub fn with_cleanup<F, Fut>(store: Arc<dyn JobStore>, cleanup: F) -> Self
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        TestStore {
            store,
            cleanup: Some(Box::new(move || Box::pin(cleanup()))),
        }
    }

    /// Runs the clean-up.
    pub async fn cleanup(self) {
        if let Some(c) = self.cleanup {
            c().await;
        }
    }
}

/// A conformance case.
pub type CaseFn = fn(Arc<dyn JobStore>) -> BoxFut<()>;

/// Upper bound for one case.
pub const CASE_TIMEOUT: Duration = Duration::from_secs(90);

/// Runs one case against a fresh store from `factory`, with a timeout.
pub async fn run_case<F, Fut>(name: &str, factory: F, case: CaseFn)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = TestStore>,
{
    let ts = factory().await;
    let store = ts.store.clone();
    match tokio::time::timeout(CASE_TIMEOUT, case(store)).await {
        Ok(()) => ts.cleanup().await,
        Err(_) => panic!("conformance case {name} timed out after {CASE_TIMEOUT:?}"),
    }
}

/// Runs every case in turn (each in its own task, so a panic is reported, not fatal) and panics
/// listing the failed ones.
pub async fn run_conformance<F, Fut>(factory: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = TestStore>,
{
    let mut failed = Vec::new();
    for (name, case) in cases::ALL {
        let ts = factory().await;
        let store = ts.store.clone();
        let res =
            tokio::spawn(async move { tokio::time::timeout(CASE_TIMEOUT, case(store)).await })
                .await;
        match res {
            Ok(Ok(())) => {
                ts.cleanup().await;
                eprintln!("conformance {name} ... ok");
            }
            Ok(Err(_)) => {
                eprintln!("conformance {name} ... TIMED OUT");
                failed.push(*name);
            }
            Err(e) => {
                eprintln!("conformance {name} ... FAILED: {e}");
                failed.push(*name);
            }
        }
    }
    assert!(failed.is_empty(), "failed conformance cases: {failed:?}");
}

/// Generates one `#[tokio::test]` per conformance case. `$factory` is an async fn returning a
/// [`TestStore`].
#[macro_export]
macro_rules! conformance_tests {
    ($factory:path) => {
        $crate::__conformance_case_list!(__conformance_cases!($factory;));
    };
}

/// The one list of conformance cases: calls `$crate::$callback!(prefix… case, case, …)`.
/// [`conformance_tests!`] and `cases::ALL` (for [`run_conformance`]) are both made from it.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_case_list {
    ($callback:ident ! ( $($prefix:tt)* )) => {
        $crate::$callback!(
            $($prefix)*
            insert_and_get,
            claim_fifo_per_lane,
            claim_by_priority,
            claim_is_exclusive_under_concurrency,
            bulk_insert_is_atomic_and_ordered,
            claim_batch_takes_at_most_max_in_order,
            complete_jobs_is_fenced_per_item,
            completion_is_fenced,
            cancel_queued_job,
            cancel_running_job_keeps_result,
            lease_renewal_reports_lost_and_cancelled,
            progress_write_is_fenced,
            interrupt_requeues_fails_or_cancels,
            fail_queued_only_touches_queued,
            batch_insert_and_claim_rules,
            cancel_parent_cascades_to_children,
            retry_rules,
            delete_rules,
            list_jobs_filters_and_pages,
            expired_leases_are_listed,
            manager_runs_job,
            unknown_type_fails,
            domain_and_unexpected_errors,
            submit_requires_start,
            heavy_lane_is_exclusive,
            io_job_not_blocked_by_heavy,
            cancel_running_stops_handler,
            cancel_during_finish_stays_cancelled,
            cancel_queued_never_runs,
            restart_requeues_interrupted_job,
            restart_fail_policy,
            restart_exhausted_attempts_fail,
            restart_runs_queued_fifo,
            restart_fails_orphan_children,
            stop_waits_for_quick_jobs,
            stop_cancels_after_grace_and_requeues,
            stop_abandons_stubborn_handler,
            reaper_recovers_dead_node,
            batch_sequential_counts,
            batch_all_failed_is_batch_failed,
            batch_children_share_heavy_lane,
            batch_bounded_concurrency,
            batch_cancel_parent,
            batch_retry_reruns_failed_children,
            batch_distributed_across_nodes,
            batch_interrupted_resumes_after_restart,
            batch_stop_with_fail_policy_leaves_no_queued_child,
            progress_store_writes_throttled,
            events_follow_lifecycle,
            retry_runs_again_with_attempts_kept,
            delete_active_conflicts,
            retryable_failure_requeues_with_backoff,
            scheduled_job_waits_for_run_at,
            unique_key_returns_active_job,
            find_reusable_latest_succeeded,
            prune_finished_rules,
            webhook_outbox_rules,
            manager_retries_retryable_errors,
            manager_runs_delayed_job_after_run_at,
            manager_timeout_stops_handler,
            manager_delivers_webhooks,
            manager_prunes_old_jobs,
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_cases {
    ($factory:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                $crate::testkit::run_case(
                    stringify!($name),
                    $factory,
                    |s| ::std::boxed::Box::pin($crate::testkit::cases::$name(s)),
                )
                .await;
            }
        )*
    };
}

/// A manager configuration with short timings for tests.
pub fn test_config(node: &str) -> ManagerConfig {
    ManagerConfig::default()
        .node_id(node)
        .lease(Duration::from_millis(1500))
        .poll_interval(Duration::from_millis(200))
        .grace_period(Duration::from_millis(1500))
}

/// Records which jobs run where, to check overlap invariants from inside handlers.
#[derive(Default)]
pub struct RunTracker {
    inner: Mutex<TrackerInner>,
}

#[derive(Default)]
struct TrackerInner {
    running: HashMap<Uuid, usize>,
    heavy_per_node: HashMap<String, Vec<Uuid>>,
    lane_now: HashMap<String, usize>,
    lane_max: HashMap<String, usize>,
    runs: HashMap<Uuid, usize>,
    order: Vec<Uuid>,
    violations: Vec<String>,
}

/// Guard returned by [`RunTracker::enter`]; leaves on drop.
pub struct RunGuard {
    tracker: Arc<RunTracker>,
    job: Uuid,
    node: String,
    lane: String,
}

impl RunTracker {
    /// A new tracker.
    pub fn new() -> Arc<Self> {
        Arc::new(RunTracker::default())
    }

    /// Marks `job` as running on `node` in `lane` until the guard drops.
    pub fn enter(self: &Arc<Self>, job: Uuid, node: &str, lane: &str) -> RunGuard {
        let mut t = self.inner.lock().unwrap();
        let r = t.running.entry(job).or_default();
        *r += 1;
        if *r > 1 {
            t.violations.push(format!("job {job} runs twice at once"));
        }
        *t.runs.entry(job).or_default() += 1;
        t.order.push(job);
        if lane == crate::lanes::HEAVY {
            let h = t.heavy_per_node.entry(node.to_owned()).or_default();
            h.push(job);
            if h.len() > 1 {
                let msg = format!("two heavy jobs overlap on node {node}: {h:?}");
                t.violations.push(msg);
            }
        }
        let now = {
            let n = t.lane_now.entry(lane.to_owned()).or_default();
            *n += 1;
            *n
        };
        let m = t.lane_max.entry(lane.to_owned()).or_default();
        *m = (*m).max(now);
        RunGuard {
            tracker: self.clone(),
            job,
            node: node.to_owned(),
            lane: lane.to_owned(),
        }
    }

    /// Violations seen so far.
    pub fn violations(&self) -> Vec<String> {
        self.inner.lock().unwrap().violations.clone()
    }

    /// How many times each job started.
    pub fn runs(&self, job: Uuid) -> usize {
        self.inner
            .lock()
            .unwrap()
            .runs
            .get(&job)
            .copied()
            .unwrap_or(0)
    }

    /// Start order.
    pub fn order(&self) -> Vec<Uuid> {
        self.inner.lock().unwrap().order.clone()
    }

    /// The most jobs seen at once in `lane`.
    pub fn max_concurrent(&self, lane: &str) -> usize {
        self.inner
            .lock()
            .unwrap()
            .lane_max
            .get(lane)
            .copied()
            .unwrap_or(0)
    }
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        let mut t = self.tracker.inner.lock().unwrap();
        if let Some(r) = t.running.get_mut(&self.job) {
            *r = r.saturating_sub(1);
        }
        if self.lane == crate::lanes::HEAVY
            && let Some(h) = t.heavy_per_node.get_mut(&self.node)
            && let Some(pos) = h.iter().position(|j| *j == self.job)
        {
            h.remove(pos);
        }
        if let Some(n) = t.lane_now.get_mut(&self.lane) {
            *n = n.saturating_sub(1);
        }
    }
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_case_table {
    ($($name:ident),* $(,)?) => {
        /// Every case, by name.
        pub const ALL: &[(&str, $crate::testkit::CaseFn)] = &[
            $((stringify!($name), |s| -> $crate::testkit::BoxFut<()> { ::std::boxed::Box::pin($name(s)) })),*
        ];
    };
}
