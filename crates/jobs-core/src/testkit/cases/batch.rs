//! Batches through the manager, progress throttling, events, retry and delete of active jobs.

use super::*;

/// A child's failure never fails the batch; counts and progress follow the children.
pub async fn batch_sequential_counts(store: Arc<dyn JobStore>) {
    let t = RunTracker::new();
    let m = manager(&store, test_config("n1"));
    m.register_handler("child", lanes::HEAVY, tracked(&t, lanes::HEAVY, 50));
    m.register_batch("batch_child", BatchStrategy::Sequential);
    m.start().await.unwrap();
    let (p, kids) = m
        .enqueue_batch(
            nj("batch_child"),
            vec![child(false), child(true), child(false)],
        )
        .await
        .unwrap();
    assert_eq!(p.lane, lanes::BATCH);
    let done = wait_done(&m, p.id).await;
    assert_eq!(done.status, JobStatus::Succeeded);
    let r: BatchResult = serde_json::from_value(done.result.clone().unwrap()).unwrap();
    assert_eq!((r.total, r.succeeded, r.failed, r.cancelled), (3, 2, 1, 0));
    assert_eq!(r.children, kids.iter().map(|k| k.id).collect::<Vec<_>>());
    assert_eq!((done.completed, done.total), (3, 3));
    assert!((done.progress - 1.0).abs() < 1e-9);
    let c = store.list_children(p.id).await.unwrap();
    assert_eq!(
        c.iter().map(|k| k.status).collect::<Vec<_>>(),
        vec![
            JobStatus::Succeeded,
            JobStatus::Failed,
            JobStatus::Succeeded
        ]
    );
    assert_eq!(t.order(), kids.iter().map(|k| k.id).collect::<Vec<_>>());
    assert_eq!(t.max_concurrent(lanes::HEAVY), 1);
    m.stop().await.unwrap();
}

/// No child succeeded and one failed: the parent fails with `BatchFailed`, keeping the counts.
pub async fn batch_all_failed_is_batch_failed(store: Arc<dyn JobStore>) {
    let t = RunTracker::new();
    let m = manager(&store, test_config("n1"));
    m.register_handler("child", lanes::HEAVY, tracked(&t, lanes::HEAVY, 1));
    m.register_batch("batch_child", BatchStrategy::Sequential);
    m.start().await.unwrap();
    let (p, _) = m
        .enqueue_batch(nj("batch_child"), vec![child(true), child(true)])
        .await
        .unwrap();
    let done = wait_done(&m, p.id).await;
    assert_eq!(done.status, JobStatus::Failed);
    assert_eq!(done.error_code.as_deref(), Some("BatchFailed"));
    let r: BatchResult = serde_json::from_value(done.result.clone().unwrap()).unwrap();
    assert_eq!((r.total, r.succeeded, r.failed), (2, 0, 2));
    m.stop().await.unwrap();
}

/// Batch children take their lane's permit: a standalone heavy job and heavy children never
/// overlap, even with a bounded strategy.
pub async fn batch_children_share_heavy_lane(store: Arc<dyn JobStore>) {
    let t = RunTracker::new();
    let m = manager(&store, test_config("n1"));
    m.register_handler("child", lanes::HEAVY, tracked(&t, lanes::HEAVY, 60));
    m.register_batch("batch_child", BatchStrategy::Bounded(3));
    m.start().await.unwrap();
    let (p, _) = m
        .enqueue_batch(nj("batch_child"), (0..4).map(|_| child(false)).collect())
        .await
        .unwrap();
    let a = m.enqueue(child(false)).await.unwrap();
    let b = m.enqueue(child(false)).await.unwrap();
    for id in [p.id, a.id, b.id] {
        assert_eq!(wait_done(&m, id).await.status, JobStatus::Succeeded);
    }
    assert!(t.violations().is_empty(), "{:?}", t.violations());
    assert_eq!(t.max_concurrent(lanes::HEAVY), 1);
    m.stop().await.unwrap();
}

/// `Bounded(n)` runs at most n children at once.
pub async fn batch_bounded_concurrency(store: Arc<dyn JobStore>) {
    let t = RunTracker::new();
    let m = manager(&store, test_config("n1").lane(lanes::IO, 4));
    m.register_handler("child", lanes::IO, tracked(&t, lanes::IO, 150));
    m.register_batch("batch_child", BatchStrategy::Bounded(2));
    m.start().await.unwrap();
    let (p, _) = m
        .enqueue_batch(nj("batch_child"), (0..6).map(|_| child(false)).collect())
        .await
        .unwrap();
    let done = wait_done(&m, p.id).await;
    assert_eq!(done.status, JobStatus::Succeeded);
    assert_eq!(t.max_concurrent(lanes::IO), 2);
    m.stop().await.unwrap();
}

/// Cancelling a parent cancels the running child and the queued ones; the parent ends
/// `cancelled` with the counts.
pub async fn batch_cancel_parent(store: Arc<dyn JobStore>) {
    let m = manager(&store, test_config("n1"));
    m.register_handler("child", lanes::HEAVY, wait_cancel);
    m.register_batch("batch_child", BatchStrategy::Sequential);
    m.start().await.unwrap();
    let (p, kids) = m
        .enqueue_batch(nj("batch_child"), (0..3).map(|_| child(false)).collect())
        .await
        .unwrap();
    wait_running(&store, kids[0].id).await;
    let t0 = Instant::now();
    m.cancel_job(p.id).await.unwrap();
    let done = wait_done(&m, p.id).await;
    assert!(t0.elapsed() < Duration::from_secs(2));
    assert_eq!(done.status, JobStatus::Cancelled);
    let r: BatchResult = serde_json::from_value(done.result.clone().unwrap()).unwrap();
    assert_eq!((r.total, r.cancelled, r.succeeded), (3, 3, 0));
    for k in store.list_children(p.id).await.unwrap() {
        assert_eq!(k.status, JobStatus::Cancelled);
    }
    assert!(m.running_job_ids().is_empty());
    m.stop().await.unwrap();
}

/// Retrying re-runs only failed children; a child retry re-opens its batch.
pub async fn batch_retry_reruns_failed_children(store: Arc<dyn JobStore>) {
    let healthy = Arc::new(AtomicBool::new(false));
    let runs = Arc::new(std::sync::Mutex::new(Vec::<Uuid>::new()));
    let m = manager(&store, test_config("n1"));
    {
        let healthy = healthy.clone();
        let runs = runs.clone();
        m.register_handler("child", lanes::IO, move |job: Job, _c: JobContext| {
            let healthy = healthy.clone();
            let runs = runs.clone();
            async move {
                runs.lock().unwrap().push(job.id);
                if job.params["fail"] == json!(true) && !healthy.load(Ordering::SeqCst) {
                    return Err(JobError::new("Boom", "unhealthy"));
                }
                Ok(JobResult(json!({})))
            }
        });
    }
    m.register_batch("batch_child", BatchStrategy::Sequential);
    m.start().await.unwrap();
    let (p, kids) = m
        .enqueue_batch(nj("batch_child"), vec![child(false), child(true)])
        .await
        .unwrap();
    assert_eq!(wait_done(&m, p.id).await.status, JobStatus::Succeeded);
    healthy.store(true, Ordering::SeqCst);
    let r = m.retry_job(kids[1].id).await.unwrap();
    assert_eq!(r.status, JobStatus::Queued);
    let done = wait_done(&m, p.id).await;
    assert_eq!(done.status, JobStatus::Succeeded);
    let res: BatchResult = serde_json::from_value(done.result.unwrap()).unwrap();
    assert_eq!((res.succeeded, res.failed), (2, 0));
    let count = |id: Uuid| runs.lock().unwrap().iter().filter(|r| **r == id).count();
    assert_eq!(count(kids[0].id), 1, "succeeded child not re-run");
    assert_eq!(count(kids[1].id), 2);

    healthy.store(false, Ordering::SeqCst);
    let (p2, kids2) = m
        .enqueue_batch(nj("batch_child"), vec![child(true), child(true)])
        .await
        .unwrap();
    assert_eq!(wait_done(&m, p2.id).await.status, JobStatus::Failed);
    healthy.store(true, Ordering::SeqCst);
    m.retry_job(p2.id).await.unwrap();
    let done = wait_done(&m, p2.id).await;
    assert_eq!(done.status, JobStatus::Succeeded);
    assert_eq!(count(kids2[0].id), 2);
    m.stop().await.unwrap();
}

/// With `Distributed`, children are claimed by every node sharing the store.
pub async fn batch_distributed_across_nodes(store: Arc<dyn JobStore>) {
    let t = RunTracker::new();
    let mut managers = Vec::new();
    for node in ["n1", "n2"] {
        let m = manager(&store, test_config(node).lane(lanes::IO, 2));
        m.register_handler("child", lanes::IO, tracked(&t, lanes::IO, 300));
        m.register_batch("batch_child", BatchStrategy::Distributed);
        m.start().await.unwrap();
        managers.push(m);
    }
    let (p, _) = managers[0]
        .enqueue_batch(nj("batch_child"), (0..8).map(|_| child(false)).collect())
        .await
        .unwrap();
    let done = wait_done(&managers[0], p.id).await;
    assert_eq!(done.status, JobStatus::Succeeded);
    assert_eq!(done.completed, 8);
    let kids = store.list_children(p.id).await.unwrap();
    let nodes: HashSet<String> = kids
        .iter()
        .map(|k| {
            k.result.as_ref().unwrap()["node"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(nodes.len(), 2, "both nodes ran children: {nodes:?}");
    assert!(t.violations().is_empty());
    for m in managers {
        m.stop().await.unwrap();
    }
}

/// A batch interrupted by a crash resumes after restart: finished children are not re-run.
pub async fn batch_interrupted_resumes_after_restart(store: Arc<dyn JobStore>) {
    let runs = Arc::new(AtomicUsize::new(0));
    let first_child_runs = Arc::new(AtomicUsize::new(0));
    let m1 = manager(&store, test_config("n1"));
    {
        let runs = runs.clone();
        let first = first_child_runs.clone();
        m1.register_handler("child", lanes::HEAVY, move |job: Job, _c: JobContext| {
            let runs = runs.clone();
            let first = first.clone();
            async move {
                if job.params["i"] == json!(0) {
                    first.fetch_add(1, Ordering::SeqCst);
                    return Ok(JobResult(json!({})));
                }
                runs.fetch_add(1, Ordering::SeqCst);
                futures::future::pending::<()>().await;
                Ok(JobResult(json!({})))
            }
        });
    }
    m1.register_batch("batch_child", BatchStrategy::Sequential);
    m1.start().await.unwrap();
    let kids: Vec<NewJob> = (0..3)
        .map(|i| NewJob::new("child", json!({"i": i})))
        .collect();
    let (p, kids) = m1.enqueue_batch(nj("batch_child"), kids).await.unwrap();
    wait_running(&store, kids[1].id).await;
    drop(m1);

    let m2 = manager(&store, test_config("n1"));
    {
        let first = first_child_runs.clone();
        m2.register_handler("child", lanes::HEAVY, move |job: Job, _c: JobContext| {
            let first = first.clone();
            async move {
                if job.params["i"] == json!(0) {
                    first.fetch_add(1, Ordering::SeqCst);
                }
                Ok(JobResult(json!({})))
            }
        });
    }
    m2.register_batch("batch_child", BatchStrategy::Sequential);
    let report = m2.start().await.unwrap();
    assert!(report.requeued.contains(&p.id));
    assert!(report.requeued.contains(&kids[1].id));
    let done = wait_done(&m2, p.id).await;
    assert_eq!(done.status, JobStatus::Succeeded);
    let r: BatchResult = serde_json::from_value(done.result.unwrap()).unwrap();
    assert_eq!(r.succeeded, 3);
    assert_eq!(
        first_child_runs.load(Ordering::SeqCst),
        1,
        "finished child not re-run"
    );
    assert_eq!(
        store.get_job(kids[1].id).await.unwrap().unwrap().attempts,
        2
    );
    m2.stop().await.unwrap();
}

/// A batch interrupted under policy `fail` fails with all its unfinished children: none is left
/// queued behind a finished parent.
pub async fn batch_stop_with_fail_policy_leaves_no_queued_child(store: Arc<dyn JobStore>) {
    let cfg = test_config("n1")
        .interrupt_policy(InterruptPolicy::Fail)
        .grace_period(Duration::from_millis(200));
    let m = manager(&store, cfg);
    m.register_handler("child", lanes::HEAVY, wait_cancel);
    m.register_batch("batch_child", BatchStrategy::Sequential);
    m.start().await.unwrap();
    let (p, kids) = m
        .enqueue_batch(nj("batch_child"), (0..3).map(|_| child(false)).collect())
        .await
        .unwrap();
    wait_running(&store, kids[0].id).await;
    m.stop().await.unwrap();
    let p = store.get_job(p.id).await.unwrap().unwrap();
    assert_eq!(p.status, JobStatus::Failed);
    assert_eq!(p.error_code.as_deref(), Some("Interrupted"));
    for k in store.list_children(p.id).await.unwrap() {
        assert_eq!(k.status, JobStatus::Failed, "child {k:?}");
        assert_eq!(k.error_code.as_deref(), Some("Interrupted"));
    }
}

/// Handlers may report progress thousands of times; the store sees at most ~2 writes/s while
/// events still flow.
pub async fn progress_store_writes_throttled(store: Arc<dyn JobStore>) {
    let counting = CountingStore::new(store.clone());
    let m = QueueManager::new(counting.clone(), test_config("n1"));
    m.register_handler("chatty", lanes::IO, |_j: Job, ctx: JobContext| async move {
        for i in 0..1200 {
            ctx.progress(i as f64 / 1200.0, "chatting");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        Ok(JobResult::empty())
    });
    let mut events = m.subscribe();
    m.start().await.unwrap();
    let t0 = Instant::now();
    let j = m.enqueue(nj("chatty")).await.unwrap();
    let done = wait_done(&m, j.id).await;
    let secs = t0.elapsed().as_secs_f64();
    assert_eq!(done.status, JobStatus::Succeeded);
    let writes = counting.progress_writes();
    let bound = (secs * 2.0).ceil() as usize + 1;
    assert!(
        writes >= 1 && writes <= bound,
        "{writes} writes in {secs:.2}s (bound {bound})"
    );
    let mut progress_events = 0;
    while let Ok(ev) = events.try_recv() {
        if ev.job.id == j.id && ev.kind == JobEventKind::Progress {
            progress_events += 1;
        }
    }
    assert!(
        progress_events > writes,
        "{progress_events} events vs {writes} writes"
    );
    m.stop().await.unwrap();
}

/// Events go out for each step of the lifecycle, in order.
pub async fn events_follow_lifecycle(store: Arc<dyn JobStore>) {
    let m = manager(&store, test_config("n1"));
    m.register_handler(
        "stepper",
        lanes::IO,
        |_j: Job, ctx: JobContext| async move {
            ctx.progress(0.5, "half");
            Ok(JobResult(json!({"ok": 1})))
        },
    );
    let mut events = m.subscribe();
    m.start().await.unwrap();
    let j = m.enqueue(nj("stepper")).await.unwrap();
    let mut kinds = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while let Ok(Ok(ev)) = tokio::time::timeout_at(deadline, events.recv()).await {
        if ev.job.id != j.id {
            continue;
        }
        kinds.push(ev.kind);
        if ev.kind == JobEventKind::Finished {
            assert_eq!(ev.job.status, JobStatus::Succeeded);
            break;
        }
    }
    assert_eq!(
        kinds,
        vec![
            JobEventKind::Created,
            JobEventKind::Started,
            JobEventKind::Progress,
            JobEventKind::Finished
        ]
    );
    m.stop().await.unwrap();
}

/// Retry moves a failed job back to queued; it runs again with `attempts` kept.
pub async fn retry_runs_again_with_attempts_kept(store: Arc<dyn JobStore>) {
    let m = manager(&store, test_config("n1"));
    m.register_handler("flaky", lanes::IO, |_j: Job, ctx: JobContext| async move {
        if ctx.attempt() == 1 {
            Err(JobError::new("Flaky", "first attempt fails"))
        } else {
            Ok(JobResult(json!({"attempt": ctx.attempt()})))
        }
    });
    m.start().await.unwrap();
    let j = m.enqueue(nj("flaky")).await.unwrap();
    assert_eq!(wait_done(&m, j.id).await.status, JobStatus::Failed);
    assert!(matches!(
        m.retry_job(Uuid::now_v7()).await,
        Err(ManagerError::Store(StoreError::NotFound(_)))
    ));
    let r = m.retry_job(j.id).await.unwrap();
    assert_eq!(r.status, JobStatus::Queued);
    let done = wait_done(&m, j.id).await;
    assert_eq!(done.status, JobStatus::Succeeded);
    assert_eq!(done.attempts, 2);
    assert_eq!(done.result, Some(json!({"attempt": 2})));
    assert!(matches!(
        m.retry_job(j.id).await,
        Err(ManagerError::Store(StoreError::Conflict(_)))
    ));
    m.stop().await.unwrap();
}

/// Deleting an active job is a conflict; a finished one goes away.
pub async fn delete_active_conflicts(store: Arc<dyn JobStore>) {
    let m = manager(&store, test_config("n1"));
    m.register_handler("wait", lanes::HEAVY, wait_cancel);
    m.start().await.unwrap();
    let j = m.enqueue(nj("wait")).await.unwrap();
    wait_running(&store, j.id).await;
    assert!(matches!(
        m.delete_job(j.id).await,
        Err(ManagerError::Store(StoreError::Conflict(_)))
    ));
    m.cancel_job(j.id).await.unwrap();
    wait_done(&m, j.id).await;
    assert_eq!(m.delete_job(j.id).await.unwrap(), vec![j.id]);
    assert!(store.get_job(j.id).await.unwrap().is_none());
    assert!(matches!(
        m.delete_job(j.id).await,
        Err(ManagerError::Store(StoreError::NotFound(_)))
    ));
    m.stop().await.unwrap();
}
