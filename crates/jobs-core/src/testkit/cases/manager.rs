//! Manager rules: running, errors, lanes, cancellation, restarts, stop, the reaper.

use super::*;

/// A registered handler runs and its result is stored.
pub async fn manager_runs_job(store: Arc<dyn JobStore>) {
    let m = manager(&store, test_config("n1"));
    m.register_handler("echo", lanes::IO, ok_handler);
    m.start().await.unwrap();
    let j = m
        .enqueue(NewJob::new("echo", json!({"x": 1})))
        .await
        .unwrap();
    assert_eq!(j.lane, lanes::IO);
    let done = wait_done(&m, j.id).await;
    assert_eq!(done.status, JobStatus::Succeeded);
    assert_eq!(done.result, Some(json!({"echo": {"x": 1}})));
    assert_eq!((done.attempts, done.completed, done.total), (1, 1, 1));
    assert!((done.progress - 1.0).abs() < 1e-9);
    assert!(done.started_at.is_some() && done.finished_at.is_some());
    assert!(m.running_job_ids().is_empty());
    m.stop().await.unwrap();
}

/// A job without a handler fails with `UnknownJobType`.
pub async fn unknown_type_fails(store: Arc<dyn JobStore>) {
    let m = manager(&store, test_config("n1"));
    m.start().await.unwrap();
    let j = m.enqueue(nj("nope")).await.unwrap();
    let done = wait_done(&m, j.id).await;
    assert_eq!(done.status, JobStatus::Failed);
    assert_eq!(done.error_code.as_deref(), Some("UnknownJobType"));
    assert_eq!(done.error.as_deref(), Some("Unknown Job Type 'nope'"));
    m.stop().await.unwrap();
}

/// Domain errors keep code/message/details; anything else (panics too) is `ServerError` and
/// its text never reaches the store.
pub async fn domain_and_unexpected_errors(store: Arc<dyn JobStore>) {
    let m = manager(&store, test_config("n1"));
    m.register_handler("domain", lanes::IO, |_j: Job, _c: JobContext| async {
        Err::<JobResult, _>(
            JobError::new("MediaDecode", "Could Not Decode").with_details(json!({"why": "x"})),
        )
    });
    m.register_handler("internal", lanes::IO, |_j: Job, _c: JobContext| async {
        Err::<JobResult, _>(JobError::internal(std::io::Error::other(
            "secret disk path",
        )))
    });
    m.register_handler("panics", lanes::IO, |_j: Job, _c: JobContext| async {
        if true {
            panic!("secret panic text");
        }
        Ok(JobResult::empty())
    });
    m.start().await.unwrap();
    let d = m.enqueue(nj("domain")).await.unwrap();
    let i = m.enqueue(nj("internal")).await.unwrap();
    let p = m.enqueue(nj("panics")).await.unwrap();
    let d = wait_done(&m, d.id).await;
    assert_eq!(d.error_code.as_deref(), Some("MediaDecode"));
    assert_eq!(d.error.as_deref(), Some("Could Not Decode"));
    assert_eq!(d.error_details, Some(json!({"why": "x"})));
    for id in [i.id, p.id] {
        let j = wait_done(&m, id).await;
        assert_eq!(j.status, JobStatus::Failed);
        assert_eq!(j.error_code.as_deref(), Some("ServerError"));
        assert_eq!(j.error.as_deref(), Some("An Unexpected Error Occurred"));
        let text = serde_json::to_string(&j).unwrap();
        assert!(!text.contains("secret"), "raw error leaked: {text}");
    }
    m.stop().await.unwrap();
}

/// `submit_job` needs a started manager; jobs enqueued before start run after it.
pub async fn submit_requires_start(store: Arc<dyn JobStore>) {
    let m = manager(&store, test_config("n1"));
    m.register_handler("echo", lanes::IO, ok_handler);
    let early = m.enqueue(nj("echo")).await.unwrap();
    assert!(matches!(
        m.submit_job(early.id).await,
        Err(ManagerError::NotStarted)
    ));
    m.start().await.unwrap();
    assert!(matches!(m.start().await, Err(ManagerError::AlreadyStarted)));
    assert!(matches!(
        m.submit_job(Uuid::now_v7()).await,
        Err(ManagerError::Store(StoreError::NotFound(_)))
    ));
    m.submit_job(early.id).await.unwrap();
    assert_eq!(wait_done(&m, early.id).await.status, JobStatus::Succeeded);
    let stored = store.insert_job(nj("echo")).await.unwrap();
    m.submit_job(stored.id).await.unwrap();
    assert_eq!(wait_done(&m, stored.id).await.status, JobStatus::Succeeded);
    m.stop().await.unwrap();
    m.stop().await.unwrap();
}

/// Heavy jobs never overlap on a node; io jobs run concurrently up to the lane's permits.
pub async fn heavy_lane_is_exclusive(store: Arc<dyn JobStore>) {
    let t = RunTracker::new();
    let m = manager(&store, test_config("n1").lane(lanes::IO, 3));
    m.register_handler("heavy", lanes::HEAVY, tracked(&t, lanes::HEAVY, 120));
    m.register_handler("light", lanes::IO, tracked(&t, lanes::IO, 300));
    m.start().await.unwrap();
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(m.enqueue(nj("heavy")).await.unwrap().id);
    }
    for _ in 0..6 {
        ids.push(m.enqueue(nj("light")).await.unwrap().id);
    }
    for id in ids {
        assert_eq!(wait_done(&m, id).await.status, JobStatus::Succeeded);
    }
    assert!(t.violations().is_empty(), "{:?}", t.violations());
    assert_eq!(t.max_concurrent(lanes::HEAVY), 1);
    let io = t.max_concurrent(lanes::IO);
    assert!((2..=3).contains(&io), "io concurrency {io}");
    m.stop().await.unwrap();
}

/// A cheap io job finishes while a long heavy job is still running.
pub async fn io_job_not_blocked_by_heavy(store: Arc<dyn JobStore>) {
    let m = manager(&store, test_config("n1"));
    m.register_handler("long", lanes::HEAVY, wait_cancel);
    m.register_handler("cheap", lanes::IO, ok_handler);
    m.start().await.unwrap();
    let long = m.enqueue(nj("long")).await.unwrap();
    wait_running(&store, long.id).await;
    let cheap = m.enqueue(nj("cheap")).await.unwrap();
    assert_eq!(wait_done(&m, cheap.id).await.status, JobStatus::Succeeded);
    assert_eq!(
        store.get_job(long.id).await.unwrap().unwrap().status,
        JobStatus::Running
    );
    m.cancel_job(long.id).await.unwrap();
    assert_eq!(wait_done(&m, long.id).await.status, JobStatus::Cancelled);
    m.stop().await.unwrap();
}

/// Cancelling a running job fires its token; it ends `cancelled` within a second.
pub async fn cancel_running_stops_handler(store: Arc<dyn JobStore>) {
    let m = manager(&store, test_config("n1"));
    m.register_handler("wait", lanes::HEAVY, wait_cancel);
    m.start().await.unwrap();
    let j = m.enqueue(nj("wait")).await.unwrap();
    wait_running(&store, j.id).await;
    let t0 = Instant::now();
    let c = m.cancel_job(j.id).await.unwrap();
    assert_eq!(c.status, JobStatus::Running);
    assert!(c.cancel_requested);
    let done = wait_done(&m, j.id).await;
    assert!(
        t0.elapsed() < Duration::from_secs(1),
        "took {:?}",
        t0.elapsed()
    );
    assert_eq!(done.status, JobStatus::Cancelled);
    assert!(done.error_code.is_none());
    assert!(m.running_job_ids().is_empty());
    m.stop().await.unwrap();
}

/// A handler that finishes despite the cancel leaves the job `cancelled` with its result.
pub async fn cancel_during_finish_stays_cancelled(store: Arc<dyn JobStore>) {
    let m = manager(&store, test_config("n1"));
    m.register_handler(
        "finisher",
        lanes::IO,
        |_j: Job, ctx: JobContext| async move {
            ctx.cancelled().await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok(JobResult(json!({"finished": true})))
        },
    );
    m.start().await.unwrap();
    let j = m.enqueue(nj("finisher")).await.unwrap();
    wait_running(&store, j.id).await;
    m.cancel_job(j.id).await.unwrap();
    let done = wait_done(&m, j.id).await;
    assert_eq!(done.status, JobStatus::Cancelled);
    assert_eq!(done.result, Some(json!({"finished": true})));
    m.stop().await.unwrap();
}

/// A cancelled queued job never runs.
pub async fn cancel_queued_never_runs(store: Arc<dyn JobStore>) {
    let t = RunTracker::new();
    let m = manager(&store, test_config("n1"));
    m.register_handler("block", lanes::HEAVY, wait_cancel);
    m.register_handler("tracked", lanes::HEAVY, tracked(&t, lanes::HEAVY, 10));
    m.start().await.unwrap();
    let a = m.enqueue(nj("block")).await.unwrap();
    wait_running(&store, a.id).await;
    let b = m.enqueue(nj("tracked")).await.unwrap();
    let c = m.cancel_job(b.id).await.unwrap();
    assert_eq!(c.status, JobStatus::Cancelled);
    m.cancel_job(a.id).await.unwrap();
    wait_done(&m, a.id).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(t.runs(b.id), 0);
    assert_eq!(
        store.get_job(b.id).await.unwrap().unwrap().status,
        JobStatus::Cancelled
    );
    m.stop().await.unwrap();
}

/// After a crash, `start()` re-queues this node's running job (policy `retry`) and runs it.
pub async fn restart_requeues_interrupted_job(store: Arc<dyn JobStore>) {
    let id = crash_mid_job(&store, "n1", nj("work")).await;
    let m = manager(&store, test_config("n1"));
    m.register_handler("work", lanes::HEAVY, ok_handler);
    let report = m.start().await.unwrap();
    assert_eq!(report.requeued, vec![id]);
    let done = wait_done(&m, id).await;
    assert_eq!(done.status, JobStatus::Succeeded);
    assert_eq!(done.attempts, 2);
    m.stop().await.unwrap();
}

/// Policy `fail` fails interrupted jobs with `Interrupted`.
pub async fn restart_fail_policy(store: Arc<dyn JobStore>) {
    let id = crash_mid_job(&store, "n1", nj("work")).await;
    let m = manager(
        &store,
        test_config("n1").interrupt_policy(InterruptPolicy::Fail),
    );
    m.register_handler("work", lanes::HEAVY, ok_handler);
    let report = m.start().await.unwrap();
    assert_eq!(report.failed, vec![id]);
    let j = store.get_job(id).await.unwrap().unwrap();
    assert_eq!(j.status, JobStatus::Failed);
    assert_eq!(j.error_code.as_deref(), Some("Interrupted"));
    assert_eq!(j.error.as_deref(), Some("Interrupted By A Server Restart"));
    m.stop().await.unwrap();
}

/// With no attempts left, an interrupted job fails even under `retry`.
pub async fn restart_exhausted_attempts_fail(store: Arc<dyn JobStore>) {
    let id = crash_mid_job(&store, "n1", nj("work").max_attempts(1)).await;
    let m = manager(&store, test_config("n1"));
    m.register_handler("work", lanes::HEAVY, ok_handler);
    let report = m.start().await.unwrap();
    assert_eq!(report.failed, vec![id]);
    let j = store.get_job(id).await.unwrap().unwrap();
    assert_eq!(j.error_code.as_deref(), Some("Interrupted"));
    m.stop().await.unwrap();
}

/// Queued jobs run in FIFO order after a start.
pub async fn restart_runs_queued_fifo(store: Arc<dyn JobStore>) {
    let t = RunTracker::new();
    let m = manager(&store, test_config("n1"));
    m.register_handler("h", lanes::HEAVY, tracked(&t, lanes::HEAVY, 20));
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(m.enqueue(nj("h")).await.unwrap().id);
    }
    let report = m.start().await.unwrap();
    assert_eq!(report.queued, 5);
    for id in &ids {
        wait_done(&m, *id).await;
    }
    assert_eq!(t.order(), ids);
    m.stop().await.unwrap();
}

/// Queued children of a finished parent are failed at start.
pub async fn restart_fails_orphan_children(store: Arc<dyn JobStore>) {
    let kids: Vec<NewJob> = (0..2).map(|_| nj("child")).collect();
    let ids: Vec<Uuid> = kids.iter().map(|k| k.id).collect();
    let (p, _) = store
        .insert_batch(nj_lane("b", lanes::BATCH), kids)
        .await
        .unwrap();
    let pj = store.claim_job(p.id, "old", LEASE).await.unwrap().unwrap();
    store
        .complete_job(&fence(&pj), Outcome::Failed(JobError::interrupted()), 0)
        .await
        .unwrap()
        .unwrap();
    // A healthy batch alongside: its queued children stay with the parent.
    let (healthy, hk) = store
        .insert_batch(nj_lane("b", lanes::BATCH), vec![nj("child")])
        .await
        .unwrap();
    let m = manager(&store, test_config("n1"));
    let report = m.start().await.unwrap();
    let mut got = report.orphans_failed.clone();
    got.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(got, want);
    for id in ids {
        let c = store.get_job(id).await.unwrap().unwrap();
        assert_eq!(c.status, JobStatus::Failed);
        assert_eq!(c.error_code.as_deref(), Some("Interrupted"));
    }
    let _ = healthy;
    assert!(!report.orphans_failed.contains(&hk[0].id));
    m.stop().await.unwrap();
}

/// `stop()` lets jobs that finish within the grace period finish.
pub async fn stop_waits_for_quick_jobs(store: Arc<dyn JobStore>) {
    let m = manager(&store, test_config("n1"));
    m.register_handler("quick", lanes::HEAVY, |_j: Job, _c: JobContext| async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        Ok(JobResult(json!({"done": true})))
    });
    m.start().await.unwrap();
    let j = m.enqueue(nj("quick")).await.unwrap();
    wait_running(&store, j.id).await;
    m.stop().await.unwrap();
    let j = store.get_job(j.id).await.unwrap().unwrap();
    assert_eq!(j.status, JobStatus::Succeeded);
    assert!(m.running_job_ids().is_empty());
}

/// After the grace period `stop()` cancels and applies the interrupt policy.
pub async fn stop_cancels_after_grace_and_requeues(store: Arc<dyn JobStore>) {
    let m = manager(&store, test_config("n1"));
    m.register_handler("long", lanes::HEAVY, wait_cancel);
    m.start().await.unwrap();
    let j = m.enqueue(nj("long")).await.unwrap();
    wait_running(&store, j.id).await;
    let t0 = Instant::now();
    m.stop().await.unwrap();
    assert!(
        t0.elapsed() >= Duration::from_millis(1400),
        "grace period honoured"
    );
    let after = store.get_job(j.id).await.unwrap().unwrap();
    assert_eq!(after.status, JobStatus::Queued, "retry policy re-queues");
    assert!(after.lease_owner.is_none());

    let m2 = manager(
        &store,
        test_config("n1").interrupt_policy(InterruptPolicy::Fail),
    );
    m2.register_handler("long", lanes::HEAVY, wait_cancel);
    m2.start().await.unwrap();
    wait_running(&store, j.id).await;
    m2.stop().await.unwrap();
    let after = store.get_job(j.id).await.unwrap().unwrap();
    assert_eq!(after.status, JobStatus::Failed);
    assert_eq!(after.error_code.as_deref(), Some("Interrupted"));
}

/// A handler that ignores cancellation is abandoned and the job interrupted; nothing is left
/// running.
pub async fn stop_abandons_stubborn_handler(store: Arc<dyn JobStore>) {
    let mut cfg = test_config("n1").grace_period(Duration::from_millis(300));
    cfg.cancel_wait = Duration::from_millis(500);
    let m = manager(&store, cfg);
    m.register_handler("stubborn", lanes::HEAVY, |_j: Job, _c: JobContext| async {
        futures::future::pending::<()>().await;
        Ok(JobResult::empty())
    });
    m.start().await.unwrap();
    let j = m.enqueue(nj("stubborn")).await.unwrap();
    wait_running(&store, j.id).await;
    tokio::time::timeout(Duration::from_secs(5), m.stop())
        .await
        .expect("stop returns")
        .unwrap();
    let after = store.get_job(j.id).await.unwrap().unwrap();
    assert_eq!(after.status, JobStatus::Queued);
    assert!(m.running_job_ids().is_empty());
}

/// Another node's expired lease is reaped and the job runs here; the dead node's late
/// completion is rejected.
pub async fn reaper_recovers_dead_node(store: Arc<dyn JobStore>) {
    let m = manager(
        &store,
        test_config("alive").lease(Duration::from_millis(900)),
    );
    m.start().await.unwrap();
    let j = store
        .insert_job(nj_lane("ghostwork", "ghostlane"))
        .await
        .unwrap();
    let ghost = store
        .claim_next("ghostlane", "ghost", Duration::from_millis(300))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ghost.id, j.id);
    m.register_handler("ghostwork", "ghostlane", ok_handler);
    let done = wait_done(&m, j.id).await;
    assert_eq!(done.status, JobStatus::Succeeded);
    assert_eq!(done.attempts, 2);
    assert_eq!(done.lease_owner, None);
    let late = store
        .complete_job(
            &fence(&ghost),
            Outcome::Failed(JobError::new("Late", "late")),
            1,
        )
        .await
        .unwrap();
    assert!(
        late.is_none(),
        "fenced: the dead node's completion is rejected"
    );
    assert_eq!(
        store.get_job(j.id).await.unwrap().unwrap().status,
        JobStatus::Succeeded
    );
    m.stop().await.unwrap();
}
