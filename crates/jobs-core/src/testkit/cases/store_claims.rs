//! Store rules: insert, claims, fencing, cancellation, leases, progress, interrupts.

use super::*;

/// Inserted jobs get the documented defaults; duplicate ids are a conflict. (File links need
/// a stored file in SQL stores; the persistence crate tests them.)
pub async fn insert_and_get(store: Arc<dyn JobStore>) {
    let j = store
        .insert_job(
            NewJob::new("transcribe", json!({"language": "en"}))
                .profile("alice")
                .lane(lanes::HEAVY)
                .max_attempts(5),
        )
        .await
        .unwrap();
    assert_eq!(j.status, JobStatus::Queued);
    assert_eq!(j.job_type, "transcribe");
    assert_eq!(j.lane, lanes::HEAVY);
    assert_eq!(j.profile_id.as_deref(), Some("alice"));
    assert_eq!(j.file_id, None);
    assert_eq!(j.params, json!({"language": "en"}));
    assert_eq!(
        (j.attempts, j.max_attempts, j.total, j.completed),
        (0, 5, 1, 0)
    );
    assert!(j.claimable && !j.cancel_requested && j.parent_id.is_none());
    assert!(j.result.is_none() && j.error.is_none() && j.lease_owner.is_none());
    let got = store.get_job(j.id).await.unwrap().unwrap();
    assert_eq!(got.id, j.id);
    assert_eq!(got.params, j.params);
    assert_eq!(
        got.created_at.timestamp_micros(),
        j.created_at.timestamp_micros()
    );

    let mut dup = nj("x");
    dup.id = j.id;
    assert!(matches!(
        store.insert_job(dup).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(store.get_job(Uuid::now_v7()).await.unwrap().is_none());

    let plain = store.insert_job(nj("y")).await.unwrap();
    assert_eq!(plain.lane, lanes::IO, "no lane means io");
    assert_eq!(plain.max_attempts, crate::DEFAULT_MAX_ATTEMPTS);
}

/// A higher priority is claimed first, FIFO among equals, and is kept on the stored job;
/// a higher priority in another lane does not jump this one.
pub async fn claim_by_priority(store: Arc<dyn JobStore>) {
    let low1 = store.insert_job(nj("t")).await.unwrap();
    let low2 = store.insert_job(nj("t")).await.unwrap();
    let urgent1 = store.insert_job(nj("t").priority(10)).await.unwrap();
    let other_lane = store
        .insert_job(nj_lane("t", lanes::HEAVY).priority(100))
        .await
        .unwrap();
    let urgent2 = store.insert_job(nj("t").priority(10)).await.unwrap();
    let below = store.insert_job(nj("t").priority(-5)).await.unwrap();
    assert_eq!(urgent1.priority, 10);
    assert_eq!(
        store.get_job(urgent2.id).await.unwrap().unwrap().priority,
        10
    );
    for want in [&urgent1, &urgent2, &low1, &low2, &below] {
        let got = claim_one(&store, lanes::IO, "n1").await;
        assert_eq!(got.id, want.id, "priority, then FIFO");
        assert_eq!(got.priority, want.priority);
    }
    assert_eq!(
        claim_one(&store, lanes::HEAVY, "n1").await.id,
        other_lane.id
    );
}

/// Claims are FIFO within a lane and never cross lanes.
pub async fn claim_fifo_per_lane(store: Arc<dyn JobStore>) {
    let a = store.insert_job(nj("t")).await.unwrap();
    let b = store.insert_job(nj("t")).await.unwrap();
    let c = store.insert_job(nj("t")).await.unwrap();
    let x = store.insert_job(nj_lane("t", lanes::HEAVY)).await.unwrap();
    for want in [&a, &b, &c] {
        let got = claim_one(&store, lanes::IO, "n1").await;
        assert_eq!(got.id, want.id, "FIFO order");
        assert_eq!(got.status, JobStatus::Running);
        assert_eq!(got.attempts, 1);
        assert_eq!(got.lease_owner.as_deref(), Some("n1"));
        assert!(got.lease_expires_at.unwrap() > got.created_at);
        assert!(got.started_at.is_some());
    }
    assert!(
        store
            .claim_next(lanes::IO, "n1", LEASE)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(claim_one(&store, lanes::HEAVY, "n1").await.id, x.id);
    assert!(
        store
            .claim_next("nolane", "n1", LEASE)
            .await
            .unwrap()
            .is_none()
    );
}

/// Concurrent claimers never get the same job.
pub async fn claim_is_exclusive_under_concurrency(store: Arc<dyn JobStore>) {
    drain_concurrently(&store, 1).await;
}

/// Inserts 60 jobs, then six concurrent claimers take them `per_claim` at a time
/// (`claim_next` for 1, `claim_batch` otherwise) until none is left: each exactly once.
async fn drain_concurrently(store: &Arc<dyn JobStore>, per_claim: usize) {
    let n = 60;
    let mut ids = HashSet::new();
    for _ in 0..n {
        ids.insert(store.insert_job(nj("t")).await.unwrap().id);
    }
    let mut tasks = Vec::new();
    for w in 0..6 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let owner = format!("w{w}");
            let mut got = Vec::new();
            loop {
                let batch = if per_claim == 1 {
                    let one = store.claim_next(lanes::IO, &owner, LEASE).await.unwrap();
                    one.into_iter().collect::<Vec<_>>()
                } else {
                    store
                        .claim_batch(lanes::IO, &owner, LEASE, per_claim)
                        .await
                        .unwrap()
                };
                if batch.is_empty() {
                    return got;
                }
                assert!(batch.len() <= per_claim);
                got.extend(batch.into_iter().map(|j| j.id));
            }
        }));
    }
    let mut claimed = Vec::new();
    for t in tasks {
        claimed.extend(t.await.unwrap());
    }
    let unique: HashSet<Uuid> = claimed.iter().copied().collect();
    assert_eq!(claimed.len(), n, "every job claimed exactly once");
    assert_eq!(unique, ids);
}

/// Completion applies only with the current owner and attempt.
pub async fn completion_is_fenced(store: Arc<dyn JobStore>) {
    store.insert_job(nj("t")).await.unwrap();
    let j = claim_one(&store, lanes::IO, "n1").await;
    let good = fence(&j);
    let wrong_owner = Fence {
        owner: "n2".into(),
        ..good.clone()
    };
    let wrong_attempt = Fence {
        attempt: good.attempt + 1,
        ..good.clone()
    };
    let ok = Outcome::Succeeded(JobResult(json!({"v": 1})));
    assert!(
        store
            .complete_job(&wrong_owner, ok.clone(), 1)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .complete_job(&wrong_attempt, ok.clone(), 1)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store.get_job(j.id).await.unwrap().unwrap().status,
        JobStatus::Running
    );
    let done = store
        .complete_job(&good, ok.clone(), 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.status, JobStatus::Succeeded);
    assert_eq!(done.result, Some(json!({"v": 1})));
    assert_eq!(done.progress, 1.0);
    assert_eq!(done.completed, 1);
    assert!(done.finished_at.is_some());
    assert!(done.lease_owner.is_none() && done.lease_expires_at.is_none());
    let again = Outcome::Failed(JobError::new("X", "late"));
    assert!(store.complete_job(&good, again, 1).await.unwrap().is_none());
    let after = store.get_job(j.id).await.unwrap().unwrap();
    assert_eq!(
        after.status,
        JobStatus::Succeeded,
        "terminal states never change"
    );
    assert!(after.error.is_none());

    store.insert_job(nj("t")).await.unwrap();
    let f = claim_one(&store, lanes::IO, "n1").await;
    let err = JobError::new("MediaDecode", "bad input").with_details(json!({"at": 3}));
    let failed = store
        .complete_job(&fence(&f), Outcome::Failed(err), 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(failed.status, JobStatus::Failed);
    assert_eq!(failed.error_code.as_deref(), Some("MediaDecode"));
    assert_eq!(failed.error.as_deref(), Some("bad input"));
    assert_eq!(failed.error_details, Some(json!({"at": 3})));
}

/// A queued job is cancelled at once and can no longer be claimed.
pub async fn cancel_queued_job(store: Arc<dyn JobStore>) {
    let j = store.insert_job(nj("t")).await.unwrap();
    let c = store.request_cancel(j.id).await.unwrap();
    assert_eq!(c.job.status, JobStatus::Cancelled);
    assert!(c.job.finished_at.is_some());
    assert!(
        store
            .claim_next(lanes::IO, "n1", LEASE)
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.claim_job(j.id, "n1", LEASE).await.unwrap().is_none());
    let again = store.request_cancel(j.id).await.unwrap();
    assert_eq!(again.job.status, JobStatus::Cancelled);
    assert!(matches!(
        store.request_cancel(Uuid::now_v7()).await,
        Err(StoreError::NotFound(_))
    ));
}

/// A running job's cancel is a request; a success that lands anyway keeps its result but the
/// job stays cancelled.
pub async fn cancel_running_job_keeps_result(store: Arc<dyn JobStore>) {
    store.insert_job(nj("t")).await.unwrap();
    let j = claim_one(&store, lanes::IO, "n1").await;
    let c = store.request_cancel(j.id).await.unwrap();
    assert_eq!(c.job.status, JobStatus::Running);
    assert!(c.job.cancel_requested);
    let done = store
        .complete_job(
            &fence(&j),
            Outcome::Succeeded(JobResult(json!({"late": true}))),
            1,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.status, JobStatus::Cancelled);
    assert_eq!(done.result, Some(json!({"late": true})));

    store.insert_job(nj("t")).await.unwrap();
    let k = claim_one(&store, lanes::IO, "n1").await;
    store.request_cancel(k.id).await.unwrap();
    let done = store
        .complete_job(&fence(&k), Outcome::Failed(JobError::cancelled()), 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.status, JobStatus::Cancelled);
    assert!(done.error_code.is_none());
}

/// Renewal extends held leases and reports cancel requests and lost fences.
pub async fn lease_renewal_reports_lost_and_cancelled(store: Arc<dyn JobStore>) {
    store.insert_job(nj("t")).await.unwrap();
    store.insert_job(nj("t")).await.unwrap();
    let a = store
        .claim_next(lanes::IO, "n1", Duration::from_secs(5))
        .await
        .unwrap()
        .unwrap();
    let b = claim_one(&store, lanes::IO, "n1").await;
    store.request_cancel(b.id).await.unwrap();
    let stale = Fence {
        attempt: a.attempts + 1,
        ..fence(&a)
    };
    let st = store
        .renew_leases(&[fence(&a), fence(&b), stale], LEASE)
        .await
        .unwrap();
    assert_eq!(st.len(), 3);
    assert!(st[0].held && !st[0].cancel_requested);
    assert!(st[1].held && st[1].cancel_requested);
    assert!(!st[2].held);
    let a2 = store.get_job(a.id).await.unwrap().unwrap();
    assert!(a2.lease_expires_at.unwrap() > a.lease_expires_at.unwrap());
}

/// Progress writes need the fence and are clamped.
pub async fn progress_write_is_fenced(store: Arc<dyn JobStore>) {
    store.insert_job(nj("t")).await.unwrap();
    let j = claim_one(&store, lanes::IO, "n1").await;
    let upd = ProgressUpdate {
        progress: 0.25,
        stage: Some("decoding".into()),
        completed: None,
    };
    assert!(store.update_progress(&fence(&j), &upd).await.unwrap());
    let got = store.get_job(j.id).await.unwrap().unwrap();
    assert!((got.progress - 0.25).abs() < 1e-6);
    assert_eq!(got.stage.as_deref(), Some("decoding"));
    let bad = Fence {
        owner: "other".into(),
        ..fence(&j)
    };
    assert!(!store.update_progress(&bad, &upd).await.unwrap());
    let over = ProgressUpdate {
        progress: 1.5,
        stage: None,
        completed: Some(0),
    };
    assert!(store.update_progress(&fence(&j), &over).await.unwrap());
    let got = store.get_job(j.id).await.unwrap().unwrap();
    assert!((got.progress - 1.0).abs() < 1e-6);
}

/// Interruption re-queues, fails with `Interrupted`, or cancels when a cancel was pending.
pub async fn interrupt_requeues_fails_or_cancels(store: Arc<dyn JobStore>) {
    let a = store.insert_job(nj("t")).await.unwrap();
    let ca = claim_one(&store, lanes::IO, "n1").await;
    assert_eq!(ca.id, a.id);
    let q = store
        .interrupt_job(&fence(&ca), true)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(q.status, JobStatus::Queued);
    assert!(q.lease_owner.is_none());
    assert_eq!(q.attempts, 1, "attempts kept");
    assert!(
        store
            .interrupt_job(&fence(&ca), true)
            .await
            .unwrap()
            .is_none(),
        "stale fence"
    );
    let again = claim_one(&store, lanes::IO, "n2").await;
    assert_eq!((again.id, again.attempts), (a.id, 2));

    store.insert_job(nj("t")).await.unwrap();
    let b = claim_one(&store, lanes::IO, "n1").await;
    let f = store
        .interrupt_job(&fence(&b), false)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(f.status, JobStatus::Failed);
    assert_eq!(f.error_code.as_deref(), Some(codes::INTERRUPTED));
    assert_eq!(f.error.as_deref(), Some(crate::INTERRUPTED_MESSAGE));

    store.insert_job(nj("t")).await.unwrap();
    let c = claim_one(&store, lanes::IO, "n1").await;
    store.request_cancel(c.id).await.unwrap();
    let x = store
        .interrupt_job(&fence(&c), true)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(x.status, JobStatus::Cancelled, "a pending cancel wins");
}

/// `fail_queued` changes queued jobs only, and never the child of an active batch (one a
/// retry re-opened after the caller saw it finished).
pub async fn fail_queued_only_touches_queued(store: Arc<dyn JobStore>) {
    let q = store.insert_job(nj("t")).await.unwrap();
    let f = store
        .fail_queued(q.id, &JobError::interrupted())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(f.status, JobStatus::Failed);
    assert_eq!(f.error_code.as_deref(), Some(codes::INTERRUPTED));
    store.insert_job(nj("t")).await.unwrap();
    let r = claim_one(&store, lanes::IO, "n1").await;
    assert!(
        store
            .fail_queued(r.id, &JobError::interrupted())
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .fail_queued(q.id, &JobError::interrupted())
            .await
            .unwrap()
            .is_none()
    );
    let (p, kids) = store
        .insert_batch(
            nj_lane("batch_child", lanes::BATCH),
            vec![NewJob::new("child", json!({})).lane(lanes::IO)],
        )
        .await
        .unwrap();
    assert!(
        store
            .fail_queued(kids[0].id, &JobError::interrupted())
            .await
            .unwrap()
            .is_none(),
        "the batch is active: its child is no orphan"
    );
    let running = claim_one(&store, lanes::BATCH, "n1").await;
    assert_eq!(running.id, p.id);
    store
        .complete_job(
            &fence(&running),
            Outcome::Succeeded(JobResult(json!({}))),
            0,
        )
        .await
        .unwrap()
        .unwrap();
    let orphan = store
        .fail_queued(kids[0].id, &JobError::interrupted())
        .await
        .unwrap()
        .expect("the batch ended: its queued child is an orphan");
    assert_eq!(orphan.status, JobStatus::Failed);
    assert!(
        store
            .fail_queued(Uuid::new_v4(), &JobError::interrupted())
            .await
            .unwrap()
            .is_none(),
        "an unknown job is not an error"
    );
}

/// Batches are inserted whole, children keep their order and are run by their parent unless
/// released.
pub async fn batch_insert_and_claim_rules(store: Arc<dyn JobStore>) {
    let kids: Vec<NewJob> = (0..3)
        .map(|i| NewJob::new("child", json!({"i": i})).lane(lanes::IO))
        .collect();
    let kid_ids: Vec<Uuid> = kids.iter().map(|k| k.id).collect();
    let (p, c) = store
        .insert_batch(nj_lane("batch_child", lanes::BATCH).profile("p"), kids)
        .await
        .unwrap();
    assert_eq!((p.total, p.completed, p.status), (3, 0, JobStatus::Queued));
    assert_eq!(c.iter().map(|k| k.id).collect::<Vec<_>>(), kid_ids);
    assert!(c.iter().all(|k| k.parent_id == Some(p.id) && !k.claimable));
    let listed = store.list_children(p.id).await.unwrap();
    assert_eq!(listed.iter().map(|k| k.id).collect::<Vec<_>>(), kid_ids);
    assert_eq!(listed[1].params, json!({"i": 1}));
    assert!(
        store
            .claim_next(lanes::IO, "n1", LEASE)
            .await
            .unwrap()
            .is_none(),
        "children are not claimable by lane workers"
    );
    assert_eq!(claim_one(&store, lanes::BATCH, "n1").await.id, p.id);
    let c0 = store
        .claim_job(kid_ids[0], "n1", LEASE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c0.status, JobStatus::Running);
    assert!(
        store
            .claim_job(kid_ids[0], "n1", LEASE)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(store.release_children(p.id).await.unwrap(), 2);
    assert_eq!(claim_one(&store, lanes::IO, "n2").await.id, kid_ids[1]);
    assert_eq!(claim_one(&store, lanes::IO, "n2").await.id, kid_ids[2]);

    // All or nothing.
    let k = nj("child");
    let dup = NewJob {
        id: k.id,
        ..nj("child")
    };
    let parent = nj("batch_child");
    let parent_id = parent.id;
    assert!(store.insert_batch(parent, vec![k, dup]).await.is_err());
    assert!(store.get_job(parent_id).await.unwrap().is_none());
}

/// `insert_jobs` stores every job or none, and they are claimed in the given order.
pub async fn bulk_insert_is_atomic_and_ordered(store: Arc<dyn JobStore>) {
    let jobs: Vec<NewJob> = (0..5)
        .map(|i| NewJob::new("t", json!({ "i": i })).profile("bulk"))
        .collect();
    let ids: Vec<Uuid> = jobs.iter().map(|j| j.id).collect();
    let stored = store.insert_jobs(jobs).await.unwrap();
    assert_eq!(stored.iter().map(|j| j.id).collect::<Vec<_>>(), ids);
    for (i, j) in stored.iter().enumerate() {
        assert_eq!(j.status, JobStatus::Queued);
        assert_eq!(j.params, json!({ "i": i }));
        assert_eq!(j.profile_id.as_deref(), Some("bulk"));
        assert_eq!(store.get_job(j.id).await.unwrap().unwrap().params, j.params);
    }
    // A duplicate (of a stored job, or inside the batch) refuses the whole batch.
    let fresh = nj("t");
    let fresh_id = fresh.id;
    let mut dup = nj("t");
    dup.id = ids[0];
    assert!(matches!(
        store.insert_jobs(vec![fresh, dup]).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(
        store.get_job(fresh_id).await.unwrap().is_none(),
        "all or none"
    );
    let twin = nj("t");
    let mut twin2 = nj("t");
    twin2.id = twin.id;
    assert!(matches!(
        store.insert_jobs(vec![twin, twin2]).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(store.insert_jobs(vec![]).await.unwrap().is_empty());
    for want in &ids {
        assert_eq!(claim_one(&store, lanes::IO, "n1").await.id, *want, "FIFO");
    }
}

/// `claim_batch` takes at most `max` claimable jobs of its lane, in claim order (priority,
/// then FIFO), each claimed as `claim_next` would; concurrent batches never share a job.
pub async fn claim_batch_takes_at_most_max_in_order(store: Arc<dyn JobStore>) {
    let a = store.insert_job(nj("t")).await.unwrap();
    let b = store.insert_job(nj("t")).await.unwrap();
    let urgent = store.insert_job(nj("t").priority(5)).await.unwrap();
    let c = store.insert_job(nj("t")).await.unwrap();
    let heavy = store.insert_job(nj_lane("t", lanes::HEAVY)).await.unwrap();
    // Children of a batch parent are not claimable by lane.
    let (_parent, kids) = store
        .insert_batch(nj_lane("b", lanes::HEAVY), vec![nj("t"), nj("t")])
        .await
        .unwrap();
    assert!(
        store
            .claim_batch(lanes::IO, "n1", LEASE, 0)
            .await
            .unwrap()
            .is_empty()
    );
    let first = store.claim_batch(lanes::IO, "n1", LEASE, 3).await.unwrap();
    assert_eq!(
        first.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![urgent.id, a.id, b.id],
        "priority, then FIFO"
    );
    for j in &first {
        assert_eq!(j.status, JobStatus::Running);
        assert_eq!(j.attempts, 1);
        assert_eq!(j.lease_owner.as_deref(), Some("n1"));
        assert!(j.lease_expires_at.is_some() && j.started_at.is_some());
        assert_eq!(
            store.get_job(j.id).await.unwrap().unwrap().status,
            JobStatus::Running
        );
    }
    let rest = store.claim_batch(lanes::IO, "n2", LEASE, 10).await.unwrap();
    assert_eq!(rest.iter().map(|j| j.id).collect::<Vec<_>>(), vec![c.id]);
    assert!(
        store
            .claim_batch(lanes::IO, "n2", LEASE, 10)
            .await
            .unwrap()
            .is_empty()
    );
    for k in &kids {
        assert_eq!(
            store.get_job(k.id).await.unwrap().unwrap().status,
            JobStatus::Queued
        );
    }
    assert_eq!(
        store.get_job(heavy.id).await.unwrap().unwrap().status,
        JobStatus::Queued,
        "other lanes untouched"
    );

    // Concurrent batch claims: every job exactly once.
    drain_concurrently(&store, 4).await;
}

/// `complete_jobs` answers each item as `complete_job` would: fenced one by one, a pending
/// cancel wins over the outcome, and an item whose fence does not match changes nothing.
pub async fn complete_jobs_is_fenced_per_item(store: Arc<dyn JobStore>) {
    for _ in 0..4 {
        store.insert_job(nj("t")).await.unwrap();
    }
    let claimed = store.claim_batch(lanes::IO, "n1", LEASE, 4).await.unwrap();
    assert_eq!(claimed.len(), 4);
    let (a, b, c, d) = (&claimed[0], &claimed[1], &claimed[2], &claimed[3]);
    store.request_cancel(d.id).await.unwrap();
    let ok = |v: i64| Outcome::Succeeded(JobResult(json!({ "v": v })));
    let items = vec![
        crate::Completion {
            fence: fence(a),
            outcome: ok(1),
            completed: 1,
        },
        crate::Completion {
            fence: Fence {
                owner: "n2".into(),
                ..fence(b)
            },
            outcome: ok(2),
            completed: 1,
        },
        crate::Completion {
            fence: fence(c),
            outcome: Outcome::Failed(JobError::new("Bad", "no")),
            completed: 1,
        },
        crate::Completion {
            fence: fence(d),
            outcome: ok(4),
            completed: 1,
        },
    ];
    let done = store.complete_jobs(items.clone()).await.unwrap();
    assert_eq!(done.len(), 4);
    let got_a = done[0].as_ref().expect("a completes");
    assert_eq!(got_a.status, JobStatus::Succeeded);
    assert_eq!(got_a.result, Some(json!({ "v": 1 })));
    assert!(got_a.finished_at.is_some() && got_a.lease_owner.is_none());
    assert!(done[1].is_none(), "wrong owner: no change");
    assert_eq!(
        store.get_job(b.id).await.unwrap().unwrap().status,
        JobStatus::Running
    );
    let got_c = done[2].as_ref().expect("c completes");
    assert_eq!(got_c.status, JobStatus::Failed);
    assert_eq!(got_c.error_code.as_deref(), Some("Bad"));
    let got_d = done[3].as_ref().expect("d completes");
    assert_eq!(got_d.status, JobStatus::Cancelled, "a pending cancel wins");
    assert_eq!(got_d.result, Some(json!({ "v": 4 })), "the result is kept");
    for j in [got_a, got_c, got_d] {
        let stored = store.get_job(j.id).await.unwrap().unwrap();
        assert_eq!(stored.status, j.status);
        assert_eq!(stored.result, j.result);
    }
    // Written already: the same items again change nothing.
    let again = store.complete_jobs(items).await.unwrap();
    assert_eq!(again.len(), 4);
    assert!(again.iter().all(Option::is_none));
    assert!(store.complete_jobs(vec![]).await.unwrap().is_empty());
}
