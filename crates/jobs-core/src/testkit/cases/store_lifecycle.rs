//! Store rules: batches, retry, delete, listing, expired leases.

use super::*;

/// Cancelling a parent cancels its unfinished children; cancelling a child cancels only it.
pub async fn cancel_parent_cascades_to_children(store: Arc<dyn JobStore>) {
    let kids: Vec<NewJob> = (0..3).map(|_| nj("child")).collect();
    let ids: Vec<Uuid> = kids.iter().map(|k| k.id).collect();
    let (p, _) = store
        .insert_batch(nj_lane("b", lanes::BATCH), kids)
        .await
        .unwrap();
    claim_one(&store, lanes::BATCH, "n1").await;
    store.claim_job(ids[0], "n1", LEASE).await.unwrap().unwrap();
    let c = store.request_cancel(p.id).await.unwrap();
    assert_eq!(c.job.status, JobStatus::Running);
    assert!(c.job.cancel_requested);
    let by_id = |id: Uuid| c.related.iter().find(|j| j.id == id).cloned().unwrap();
    assert!(by_id(ids[0]).cancel_requested && by_id(ids[0]).status == JobStatus::Running);
    assert_eq!(by_id(ids[1]).status, JobStatus::Cancelled);
    assert_eq!(by_id(ids[2]).status, JobStatus::Cancelled);

    let kids: Vec<NewJob> = (0..2).map(|_| nj("child")).collect();
    let ids: Vec<Uuid> = kids.iter().map(|k| k.id).collect();
    let (p2, _) = store
        .insert_batch(nj_lane("b", lanes::BATCH), kids)
        .await
        .unwrap();
    let only = store.request_cancel(ids[0]).await.unwrap();
    assert_eq!(only.job.status, JobStatus::Cancelled);
    assert!(only.related.is_empty());
    assert_eq!(
        store.get_job(ids[1]).await.unwrap().unwrap().status,
        JobStatus::Queued
    );
    assert_eq!(
        store.get_job(p2.id).await.unwrap().unwrap().status,
        JobStatus::Queued
    );
    // A queued parent: cancelled at once, counts recorded.
    let qp = store.request_cancel(p2.id).await.unwrap();
    assert_eq!(qp.job.status, JobStatus::Cancelled);
    assert_eq!(qp.job.completed, 2);
    let r: BatchResult = serde_json::from_value(qp.job.result.clone().unwrap()).unwrap();
    assert_eq!((r.total, r.cancelled), (2, 2));
}

/// Retry applies to failed/cancelled jobs only; batches re-run only their failed/cancelled
/// children; a child re-opens its finished parent.
pub async fn retry_rules(store: Arc<dyn JobStore>) {
    let j = store.insert_job(nj("t")).await.unwrap();
    finish(&store, j.id, false).await;
    let r = store.retry_job(j.id, 3).await.unwrap();
    assert_eq!(r.job.status, JobStatus::Queued);
    assert!(r.job.error.is_none() && r.job.error_code.is_none() && r.job.finished_at.is_none());
    assert_eq!((r.job.attempts, r.job.max_attempts), (1, 4));
    assert!(matches!(
        store.retry_job(j.id, 3).await,
        Err(StoreError::Conflict(_))
    ));
    let s = store.insert_job(nj("t")).await.unwrap();
    finish(&store, s.id, true).await;
    assert!(matches!(
        store.retry_job(s.id, 3).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.retry_job(Uuid::now_v7(), 3).await,
        Err(StoreError::NotFound(_))
    ));

    // Parent retry.
    let kids: Vec<NewJob> = (0..3).map(|_| nj("child")).collect();
    let ids: Vec<Uuid> = kids.iter().map(|k| k.id).collect();
    let (p, _) = store
        .insert_batch(nj_lane("b", lanes::BATCH), kids)
        .await
        .unwrap();
    let pj = store.claim_job(p.id, "n1", LEASE).await.unwrap().unwrap();
    finish(&store, ids[0], true).await;
    finish(&store, ids[1], false).await;
    store.request_cancel(ids[2]).await.unwrap();
    store
        .complete_job(
            &fence(&pj),
            Outcome::Failed(JobError::new("BatchFailed", "x")),
            3,
        )
        .await
        .unwrap()
        .unwrap();
    let r = store.retry_job(p.id, 3).await.unwrap();
    assert_eq!(r.job.status, JobStatus::Queued);
    assert_eq!(r.job.completed, 1);
    let requeued: HashSet<Uuid> = r.related.iter().map(|j| j.id).collect();
    assert_eq!(requeued, HashSet::from([ids[1], ids[2]]));
    let kids = store.list_children(p.id).await.unwrap();
    assert_eq!(kids[0].status, JobStatus::Succeeded);
    assert_eq!(kids[1].status, JobStatus::Queued);
    assert_eq!(kids[2].status, JobStatus::Queued);

    // Child retry re-opens the parent; refused while the parent is active.
    let kids: Vec<NewJob> = (0..2).map(|_| nj("child")).collect();
    let ids: Vec<Uuid> = kids.iter().map(|k| k.id).collect();
    let (p, _) = store
        .insert_batch(nj_lane("b", lanes::BATCH), kids)
        .await
        .unwrap();
    let pj = store.claim_job(p.id, "n1", LEASE).await.unwrap().unwrap();
    finish(&store, ids[0], true).await;
    finish(&store, ids[1], false).await;
    assert!(
        matches!(
            store.retry_job(ids[1], 3).await,
            Err(StoreError::Conflict(_))
        ),
        "parent still running"
    );
    store
        .complete_job(&fence(&pj), Outcome::Succeeded(JobResult(json!({}))), 2)
        .await
        .unwrap()
        .unwrap();
    let r = store.retry_job(ids[1], 3).await.unwrap();
    assert_eq!(r.job.status, JobStatus::Queued);
    assert_eq!(r.related.len(), 1);
    assert_eq!(r.related[0].id, p.id);
    assert_eq!(r.related[0].status, JobStatus::Queued);
    assert_eq!(r.related[0].completed, 1);
}

/// Active jobs can't be deleted; a parent takes its children along.
pub async fn delete_rules(store: Arc<dyn JobStore>) {
    let q = store.insert_job(nj("t")).await.unwrap();
    assert!(matches!(
        store.delete_job(q.id).await,
        Err(StoreError::Conflict(_))
    ));
    let r = claim_one(&store, lanes::IO, "n1").await;
    assert!(matches!(
        store.delete_job(r.id).await,
        Err(StoreError::Conflict(_))
    ));
    store
        .complete_job(&fence(&r), Outcome::Succeeded(JobResult(json!({}))), 1)
        .await
        .unwrap();
    assert_eq!(store.delete_job(r.id).await.unwrap(), vec![r.id]);
    assert!(store.get_job(r.id).await.unwrap().is_none());
    assert!(matches!(
        store.delete_job(r.id).await,
        Err(StoreError::NotFound(_))
    ));

    let kids: Vec<NewJob> = (0..2).map(|_| nj("child")).collect();
    let ids: Vec<Uuid> = kids.iter().map(|k| k.id).collect();
    let (p, _) = store
        .insert_batch(nj_lane("b", lanes::BATCH), kids)
        .await
        .unwrap();
    assert!(matches!(
        store.delete_job(p.id).await,
        Err(StoreError::Conflict(_))
    ));
    store.request_cancel(p.id).await.unwrap();
    let mut deleted = store.delete_job(p.id).await.unwrap();
    deleted.sort();
    let mut want = vec![p.id, ids[0], ids[1]];
    want.sort();
    assert_eq!(deleted, want);
    assert!(store.get_job(ids[0]).await.unwrap().is_none());
}

/// Listing: top-level only, newest first, filters, keyset pages.
pub async fn list_jobs_filters_and_pages(store: Arc<dyn JobStore>) {
    let mut p1 = Vec::new();
    for i in 0..5 {
        let t = if i % 2 == 0 { "a" } else { "b" };
        p1.push(store.insert_job(nj(t).profile("p1")).await.unwrap().id);
    }
    store.insert_job(nj("a").profile("p2")).await.unwrap();
    store.insert_job(nj("a").profile("p2")).await.unwrap();
    let (bp, _) = store
        .insert_batch(
            nj_lane("batch_a", lanes::BATCH).profile("p1"),
            vec![nj("a").profile("p1"), nj("a").profile("p1")],
        )
        .await
        .unwrap();
    p1.push(bp.id);
    let all = store
        .list_jobs(&JobFilter {
            profile_id: Some("p1".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut newest_first = p1.clone();
    newest_first.reverse();
    assert_eq!(all.iter().map(|j| j.id).collect::<Vec<_>>(), newest_first);

    let only_b = store
        .list_jobs(&JobFilter {
            profile_id: Some("p1".into()),
            job_type: Some("b".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(only_b.len(), 2);

    let j = claim_one(&store, lanes::IO, "n1").await;
    let running = store
        .list_jobs(&JobFilter {
            statuses: vec![JobStatus::Running],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(running.iter().map(|j| j.id).collect::<Vec<_>>(), vec![j.id]);

    let page1 = store
        .list_jobs(&JobFilter {
            profile_id: Some("p1".into()),
            limit: 2,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        page1.iter().map(|j| j.id).collect::<Vec<_>>(),
        newest_first[..2]
    );
    let page2 = store
        .list_jobs(&JobFilter {
            profile_id: Some("p1".into()),
            limit: 3,
            before: Some(page1[1].id),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        page2.iter().map(|j| j.id).collect::<Vec<_>>(),
        newest_first[2..5]
    );
    assert!(
        store
            .list_jobs(&JobFilter {
                before: Some(Uuid::now_v7()),
                ..Default::default()
            })
            .await
            .is_err()
    );
}

/// Expired leases are listed by the store's clock.
pub async fn expired_leases_are_listed(store: Arc<dyn JobStore>) {
    store.insert_job(nj("t")).await.unwrap();
    store.insert_job(nj("t")).await.unwrap();
    let short = store
        .claim_next(lanes::IO, "n1", Duration::from_millis(100))
        .await
        .unwrap()
        .unwrap();
    let long = claim_one(&store, lanes::IO, "n1").await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let expired: Vec<Uuid> = store
        .list_expired_leases()
        .await
        .unwrap()
        .iter()
        .map(|j| j.id)
        .collect();
    assert!(expired.contains(&short.id));
    assert!(!expired.contains(&long.id));
}
