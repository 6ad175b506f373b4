//! The rules added for schedules, retries, unique jobs, result reuse, retention and webhooks
//! (ADR 016..019): at the store level on every backend, then through the manager.

use std::sync::Mutex;

use super::*;
use crate::{RetryPolicy, WebhookAttempt, WebhookSendError, WebhookSender, WebhookStatus};

fn retry_outcome(delay_ms: u64) -> Outcome {
    Outcome::Retry {
        error: JobError::retryable("ProviderUnavailable", "503 from the provider")
            .with_details(json!({"status": 503})),
        delay: Duration::from_millis(delay_ms),
    }
}

fn completion(j: &Job, outcome: Outcome) -> crate::Completion {
    crate::Completion {
        fence: fence(j),
        outcome,
        completed: 1,
    }
}

/// A retryable failure re-queues the job, not claimable before its backoff ends, with the
/// error in `last_error` and `error` empty; both completion paths (one job, a batch of
/// completions) answer the same. A pending cancel wins over the retry.
pub async fn retryable_failure_requeues_with_backoff(store: Arc<dyn JobStore>) {
    let a = store.insert_job(nj("r")).await.unwrap();
    let b = store.insert_job(nj("r")).await.unwrap();
    let c = store.insert_job(nj("r")).await.unwrap();
    let ca = claim_one(&store, lanes::IO, "n1").await;
    let cb = claim_one(&store, lanes::IO, "n1").await;
    let cc = claim_one(&store, lanes::IO, "n1").await;
    assert_eq!((ca.id, cb.id, cc.id), (a.id, b.id, c.id));
    store.request_cancel(c.id).await.unwrap();

    let one = store
        .complete_job(&fence(&ca), retry_outcome(600), 1)
        .await
        .unwrap()
        .unwrap();
    let many = store
        .complete_jobs(vec![
            completion(&cb, retry_outcome(600)),
            completion(&cc, retry_outcome(600)),
        ])
        .await
        .unwrap();
    let two = many[0].clone().unwrap();
    let cancelled = many[1].clone().unwrap();
    for j in [&one, &two] {
        assert_eq!(j.status, JobStatus::Queued, "{j:?}");
        assert!(j.lease_owner.is_none() && j.finished_at.is_none());
        assert!(j.error.is_none() && j.error_code.is_none() && j.result.is_none());
        assert_eq!(j.attempts, 1);
        assert!(
            j.run_at >= j.created_at + chrono::TimeDelta::milliseconds(500),
            "backoff moves run_at: {j:?}"
        );
        let le = j.last_error.as_ref().expect("last_error");
        assert_eq!(
            (le.attempt, le.code.as_str(), le.retryable),
            (1, "ProviderUnavailable", true)
        );
        assert_eq!(le.details, Some(json!({"status": 503})));
        let stored = store.get_job(j.id).await.unwrap().unwrap();
        assert_eq!(stored.status, JobStatus::Queued);
        assert_eq!(stored.last_error, j.last_error);
        assert_eq!(
            stored.run_at.timestamp_micros(),
            j.run_at.timestamp_micros()
        );
    }
    assert_eq!(
        cancelled.status,
        JobStatus::Cancelled,
        "a pending cancel wins"
    );
    assert!(cancelled.last_error.is_some());

    // Not claimable during the backoff; the lane knows when the next one comes due.
    assert!(
        store
            .claim_next(lanes::IO, "n1", LEASE)
            .await
            .unwrap()
            .is_none()
    );
    let due = store
        .next_run_at(lanes::IO)
        .await
        .unwrap()
        .expect("a due time");
    assert_eq!(due.timestamp_micros(), one.run_at.timestamp_micros());
    tokio::time::sleep(Duration::from_millis(700)).await;
    let again = claim_one(&store, lanes::IO, "n2").await;
    assert_eq!(again.id, a.id, "back in claim order after the backoff");
    assert_eq!(again.attempts, 2);
    let done = store
        .complete_job(&fence(&again), Outcome::Succeeded(JobResult(json!({}))), 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.status, JobStatus::Succeeded);
    assert!(
        done.last_error.is_some(),
        "the history of the failed attempt stays"
    );

    // A terminal failure records last_error too.
    let again_b = claim_one(&store, lanes::IO, "n2").await;
    let failed = store
        .complete_jobs(vec![completion(
            &again_b,
            Outcome::Failed(JobError::new("MediaDecode", "bad")),
        )])
        .await
        .unwrap()[0]
        .clone()
        .unwrap();
    assert_eq!(failed.status, JobStatus::Failed);
    assert_eq!(failed.error_code.as_deref(), Some("MediaDecode"));
    let le = failed.last_error.unwrap();
    assert_eq!((le.attempt, le.retryable), (2, false));
}

/// A scheduled job is not claimed before its `run_at` (others are), then is; a scheduled job
/// can be cancelled and deleted; `run_at` in the past means now.
pub async fn scheduled_job_waits_for_run_at(store: Arc<dyn JobStore>) {
    let later = chrono::Utc::now() + chrono::TimeDelta::milliseconds(700);
    let delayed = store.insert_job(nj("s").run_at(later)).await.unwrap();
    let now_job = store.insert_job(nj("s")).await.unwrap();
    let past = store
        .insert_job(nj("s").run_at(chrono::Utc::now() - chrono::TimeDelta::hours(1)))
        .await
        .unwrap();
    assert!(past.run_at >= past.created_at, "never before its creation");
    let doomed = store
        .insert_job(nj("s").delay(Duration::from_secs(3600)))
        .await
        .unwrap();
    assert_eq!(
        store
            .get_job(delayed.id)
            .await
            .unwrap()
            .unwrap()
            .run_at
            .timestamp_micros(),
        Ts::of(later)
    );

    let first = claim_one(&store, lanes::IO, "n1").await;
    let second = claim_one(&store, lanes::IO, "n1").await;
    assert_eq!((first.id, second.id), (now_job.id, past.id));
    assert!(
        store
            .claim_next(lanes::IO, "n1", LEASE)
            .await
            .unwrap()
            .is_none(),
        "nothing due"
    );
    let next = store.next_run_at(lanes::IO).await.unwrap().unwrap();
    assert_eq!(next.timestamp_micros(), Ts::of(later));

    let c = store.request_cancel(doomed.id).await.unwrap();
    assert_eq!(c.job.status, JobStatus::Cancelled);
    assert_eq!(store.delete_job(doomed.id).await.unwrap(), vec![doomed.id]);

    tokio::time::sleep(Duration::from_millis(800)).await;
    let claimed = claim_one(&store, lanes::IO, "n1").await;
    assert_eq!(claimed.id, delayed.id);
    assert!(store.next_run_at(lanes::IO).await.unwrap().is_none());
}

/// Stands in for a timestamp at the stores' precision (microseconds).
struct Ts;
impl Ts {
    fn of(t: chrono::DateTime<chrono::Utc>) -> i64 {
        t.timestamp_micros()
    }
}

/// While a job with a unique key is active, inserting the key again returns it (also under
/// concurrent inserts: exactly one job is created); once it finished, the key is free.
pub async fn unique_key_returns_active_job(store: Arc<dyn JobStore>) {
    let first = store.insert_job(nj("u").unique_key("k1")).await.unwrap();
    let second = store.insert_job(nj("u").unique_key("k1")).await.unwrap();
    assert_eq!(second.id, first.id, "the active holder is returned");
    let other = store.insert_job(nj("u").unique_key("k2")).await.unwrap();
    assert_ne!(other.id, first.id);

    let mut tasks = Vec::new();
    for _ in 0..8 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            s.insert_job(nj("u").unique_key("race")).await.unwrap().id
        }));
    }
    let mut ids = HashSet::new();
    for t in tasks {
        ids.insert(t.await.unwrap());
    }
    assert_eq!(
        ids.len(),
        1,
        "concurrent unique inserts made one job: {ids:?}"
    );

    // Running still holds the key; finished frees it.
    let running = claim_one(&store, lanes::IO, "n1").await;
    assert_eq!(running.id, first.id);
    assert_eq!(
        store.insert_job(nj("u").unique_key("k1")).await.unwrap().id,
        first.id
    );
    store
        .complete_job(
            &fence(&running),
            Outcome::Succeeded(JobResult(json!({}))),
            1,
        )
        .await
        .unwrap()
        .unwrap();
    let fresh = store.insert_job(nj("u").unique_key("k1")).await.unwrap();
    assert_ne!(fresh.id, first.id);
    assert_eq!(fresh.status, JobStatus::Queued);

    assert!(matches!(
        store.insert_jobs(vec![nj("u").unique_key("bulk")]).await,
        Err(StoreError::Invalid(_))
    ));

    // A unique batch: the active one is returned with its children.
    let (bp, bk) = store
        .insert_batch(nj("ub").unique_key("batch"), vec![nj("u"), nj("u")])
        .await
        .unwrap();
    let (again, again_kids) = store
        .insert_batch(nj("ub").unique_key("batch"), vec![nj("u")])
        .await
        .unwrap();
    assert_eq!(again.id, bp.id);
    assert_eq!(
        again_kids.iter().map(|k| k.id).collect::<Vec<_>>(),
        bk.iter().map(|k| k.id).collect::<Vec<_>>()
    );
    assert_eq!(
        store
            .insert_job(nj("u").unique_key("batch"))
            .await
            .unwrap()
            .id,
        bp.id,
        "one key space for jobs and batches"
    );
}

/// `find_reusable` returns the most recently finished succeeded job with the key, never a
/// failed one or another key's.
pub async fn find_reusable_latest_succeeded(store: Arc<dyn JobStore>) {
    let a = store.insert_job(nj("d").dedupe_key("sha:1")).await.unwrap();
    let b = store.insert_job(nj("d").dedupe_key("sha:1")).await.unwrap();
    let bad = store.insert_job(nj("d").dedupe_key("sha:1")).await.unwrap();
    let other = store.insert_job(nj("d").dedupe_key("sha:2")).await.unwrap();
    assert!(
        store.find_reusable("sha:1").await.unwrap().is_none(),
        "none finished"
    );
    finish(&store, a.id, true).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    finish(&store, b.id, true).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    finish(&store, bad.id, false).await;
    let got = store.find_reusable("sha:1").await.unwrap().unwrap();
    assert_eq!(got.id, b.id);
    assert_eq!(got.dedupe_key.as_deref(), Some("sha:1"));
    assert!(store.find_reusable("sha:2").await.unwrap().is_none());
    finish(&store, other.id, false).await;
    assert!(store.find_reusable("sha:2").await.unwrap().is_none());
    assert!(store.find_reusable("nope").await.unwrap().is_none());
}

/// Retention prunes finished top-level jobs older than the cut (with their children), never
/// an active one, a newer one, or one whose webhook is still pending.
pub async fn prune_finished_rules(store: Arc<dyn JobStore>) {
    let old = store.insert_job(nj("p")).await.unwrap();
    finish(&store, old.id, false).await;
    let (parent, kids) = store
        .insert_batch(nj("pb"), vec![nj("p"), nj("p")])
        .await
        .unwrap();
    store.request_cancel(parent.id).await.unwrap();
    let hooked = store
        .insert_job(nj("p").webhook("http://127.0.0.1:9/hook"))
        .await
        .unwrap();
    finish(&store, hooked.id, true).await;
    let active = store.insert_job(nj("p")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let cut = chrono::Utc::now() + chrono::TimeDelta::milliseconds(5);
    let newer = store.insert_job(nj("p")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    finish(&store, newer.id, true).await;

    let pruned: Vec<Uuid> = store
        .prune_finished(cut, 100)
        .await
        .unwrap()
        .iter()
        .map(|j| j.id)
        .collect();
    let mut want = vec![old.id, parent.id];
    want.sort();
    let mut got = pruned.clone();
    got.sort();
    assert_eq!(got, want, "old finished jobs only");
    for id in [old.id, parent.id, kids[0].id, kids[1].id] {
        assert!(store.get_job(id).await.unwrap().is_none(), "{id} pruned");
    }
    for id in [hooked.id, active.id, newer.id] {
        assert!(store.get_job(id).await.unwrap().is_some(), "{id} kept");
    }
    // Once its webhook is delivered, the job may go.
    let w = store
        .get_job(hooked.id)
        .await
        .unwrap()
        .unwrap()
        .webhook
        .unwrap();
    store
        .record_webhook(hooked.id, w.seq, WebhookAttempt::Delivered)
        .await
        .unwrap()
        .unwrap();
    let pruned = store.prune_finished(cut, 100).await.unwrap();
    assert_eq!(
        pruned.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![hooked.id]
    );
    assert!(store.prune_finished(cut, 100).await.unwrap().is_empty());
}

/// Every terminal write marks the webhook pending (one delivery per terminal state, with a
/// stable id); concurrent claims hand a due delivery to one claimer, which holds it for the
/// lease; tries are recorded, a stale try (older seq) changes nothing.
pub async fn webhook_outbox_rules(store: Arc<dyn JobStore>) {
    let url = "http://127.0.0.1:9/hook";
    let ok = store.insert_job(nj("w").webhook(url)).await.unwrap();
    assert_eq!(ok.webhook.as_ref().unwrap().status, WebhookStatus::Waiting);
    let cancelled = store.insert_job(nj("w").webhook(url)).await.unwrap();
    let plain = store.insert_job(nj("w")).await.unwrap();
    let c = claim_one(&store, lanes::IO, "n1").await;
    assert_eq!(c.id, ok.id);
    // The batched completion (PostgreSQL: one SQL statement) marks it like the Rust rules.
    let done = store
        .complete_jobs(vec![completion(
            &c,
            Outcome::Succeeded(JobResult(json!({"x": 1}))),
        )])
        .await
        .unwrap()[0]
        .clone()
        .unwrap();
    let w = done.webhook.clone().unwrap();
    assert_eq!(
        (w.status, w.seq, w.event, w.attempts),
        (WebhookStatus::Pending, 1, Some(JobStatus::Succeeded), 0)
    );
    assert!(w.due_us.is_some() && w.event_at.is_some());
    assert_eq!(w.delivery_id(ok.id), format!("{}.1", ok.id));
    assert_eq!(
        store.get_job(ok.id).await.unwrap().unwrap().webhook,
        Some(w.clone())
    );
    store.request_cancel(cancelled.id).await.unwrap();
    let cw = store
        .get_job(cancelled.id)
        .await
        .unwrap()
        .unwrap()
        .webhook
        .unwrap();
    assert_eq!(
        (cw.status, cw.event),
        (WebhookStatus::Pending, Some(JobStatus::Cancelled))
    );

    // Two claimers at once: each delivery goes to exactly one.
    let (x, y) = tokio::join!(
        store.claim_webhooks(Duration::from_secs(30), 10),
        store.claim_webhooks(Duration::from_secs(30), 10)
    );
    let mut all: Vec<Uuid> = x
        .unwrap()
        .iter()
        .chain(y.unwrap().iter())
        .map(|j| j.id)
        .collect();
    all.sort();
    let mut want = vec![ok.id, cancelled.id];
    want.sort();
    assert_eq!(all, want);
    assert!(
        store
            .claim_webhooks(Duration::from_secs(30), 10)
            .await
            .unwrap()
            .is_empty(),
        "claimed deliveries are leased"
    );
    assert!(
        store
            .get_job(plain.id)
            .await
            .unwrap()
            .unwrap()
            .webhook
            .is_none()
    );

    // A failed try is retried at the given time, then delivered; stale tries are ignored.
    // Due at once (a second back: the stores' clocks need not be this process's).
    let now = chrono::Utc::now() - chrono::TimeDelta::seconds(1);
    let j = store
        .record_webhook(
            ok.id,
            1,
            WebhookAttempt::RetryAt(now, "connection refused".into()),
        )
        .await
        .unwrap()
        .unwrap();
    let w = j.webhook.unwrap();
    assert_eq!((w.status, w.attempts), (WebhookStatus::Pending, 1));
    assert_eq!(w.last_error.as_deref(), Some("connection refused"));
    let again = store
        .claim_webhooks(Duration::from_secs(30), 10)
        .await
        .unwrap();
    assert_eq!(again.iter().map(|j| j.id).collect::<Vec<_>>(), vec![ok.id]);
    let j = store
        .record_webhook(ok.id, 1, WebhookAttempt::Delivered)
        .await
        .unwrap()
        .unwrap();
    let w = j.webhook.unwrap();
    assert_eq!((w.status, w.attempts), (WebhookStatus::Delivered, 2));
    assert!(w.delivered_at.is_some() && w.due_us.is_none());
    assert!(
        store
            .record_webhook(ok.id, 1, WebhookAttempt::Delivered)
            .await
            .unwrap()
            .is_none(),
        "a repeat changes nothing"
    );
    let gave_up = store
        .record_webhook(cancelled.id, 1, WebhookAttempt::GaveUp("410 Gone".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(gave_up.webhook.unwrap().status, WebhookStatus::Failed);

    // A retry and a new terminal state make a new delivery (seq 2); the old one is stale.
    store.retry_job(cancelled.id, 1).await.unwrap();
    let c2 = store
        .claim_job(cancelled.id, "n1", LEASE)
        .await
        .unwrap()
        .unwrap();
    let f = store
        .complete_job(
            &fence(&c2),
            Outcome::Failed(JobError::new("Boom", "boom")),
            1,
        )
        .await
        .unwrap()
        .unwrap();
    let w = f.webhook.unwrap();
    assert_eq!(
        (w.status, w.seq, w.event),
        (WebhookStatus::Pending, 2, Some(JobStatus::Failed))
    );
    assert!(
        store
            .record_webhook(cancelled.id, 1, WebhookAttempt::Delivered)
            .await
            .unwrap()
            .is_none()
    );
}

/// A handler's future.
type HandlerFut = BoxFut<Result<JobResult, JobError>>;

fn flaky_handler(
    fails: usize,
    retryable: bool,
) -> (
    Arc<AtomicUsize>,
    impl Fn(Job, JobContext) -> HandlerFut + Send + Sync + 'static,
) {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let h = move |_job: Job, ctx: JobContext| -> HandlerFut {
        let n = c.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            if n < fails {
                Err(
                    JobError::new("ProviderUnavailable", format!("503 #{}", n + 1))
                        .with_retryable(retryable),
                )
            } else {
                Ok(JobResult(json!({"attempt": ctx.attempt()})))
            }
        })
    };
    (calls, h)
}

/// The manager retries retryable failures with backoff up to `max_attempts`, never terminal
/// ones, and fails with the last error once attempts run out.
pub async fn manager_retries_retryable_errors(store: Arc<dyn JobStore>) {
    let policy = RetryPolicy::default()
        .base(Duration::from_millis(150))
        .jitter(false);
    let cfg = test_config("n1").retry(policy);
    let m = manager(&store, cfg);
    let (calls, h) = flaky_handler(2, true);
    m.register_handler("flaky", lanes::IO, h);
    let (tcalls, th) = flaky_handler(5, false);
    m.register_handler("terminal", lanes::IO, th);
    let (xcalls, xh) = flaky_handler(5, true);
    m.register_handler("exhausted", lanes::IO, xh);
    m.start().await.unwrap();

    let t0 = Instant::now();
    let j = m.enqueue(nj("flaky")).await.unwrap();
    let done = wait_done(&m, j.id).await;
    assert_eq!(done.status, JobStatus::Succeeded, "{done:?}");
    assert_eq!(done.attempts, 3);
    assert_eq!(done.result, Some(json!({"attempt": 3})));
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(done.last_error.as_ref().unwrap().attempt, 2);
    // Backoff 150 ms then 300 ms.
    assert!(
        t0.elapsed() >= Duration::from_millis(440),
        "{:?}",
        t0.elapsed()
    );

    let j = m.enqueue(nj("terminal")).await.unwrap();
    let done = wait_done(&m, j.id).await;
    assert_eq!((done.status, done.attempts), (JobStatus::Failed, 1));
    assert_eq!(
        tcalls.load(Ordering::SeqCst),
        1,
        "terminal errors are not retried"
    );

    let j = m.enqueue(nj("exhausted").max_attempts(2)).await.unwrap();
    let done = wait_done(&m, j.id).await;
    assert_eq!((done.status, done.attempts), (JobStatus::Failed, 2));
    assert_eq!(done.error_code.as_deref(), Some("ProviderUnavailable"));
    assert_eq!(done.error.as_deref(), Some("503 #2"));
    assert_eq!(xcalls.load(Ordering::SeqCst), 2);
    m.stop().await.unwrap();
}

/// A delayed job runs after its time (the idle lane wakes for it without a poll), a job
/// submitted after it but due now runs first.
pub async fn manager_runs_delayed_job_after_run_at(store: Arc<dyn JobStore>) {
    let cfg = test_config("n1").poll_interval(Duration::from_secs(30));
    let m = manager(&store, cfg);
    m.register_handler("d", lanes::IO, ok_handler);
    m.start().await.unwrap();
    let t0 = Instant::now();
    let late = m
        .enqueue(nj("d").delay(Duration::from_millis(800)))
        .await
        .unwrap();
    let now = m.enqueue(nj("d")).await.unwrap();
    let first = wait_done(&m, now.id).await;
    assert_eq!(first.status, JobStatus::Succeeded);
    assert_eq!(
        store.get_job(late.id).await.unwrap().unwrap().status,
        JobStatus::Queued,
        "not before its time"
    );
    let done = wait_done(&m, late.id).await;
    assert_eq!(done.status, JobStatus::Succeeded);
    let took = t0.elapsed();
    assert!(took >= Duration::from_millis(790), "{took:?}");
    assert!(
        took < Duration::from_secs(5),
        "woke for it, not a 30 s poll: {took:?}"
    );
    m.stop().await.unwrap();
}

/// Past its deadline a job's token fires, the handler stops, and the job fails `Timeout`
/// (not retried, even with attempts left).
pub async fn manager_timeout_stops_handler(store: Arc<dyn JobStore>) {
    let m = manager(&store, test_config("n1"));
    let stopped = Arc::new(AtomicBool::new(false));
    let s = stopped.clone();
    m.register_handler("slow", lanes::IO, move |_job: Job, ctx: JobContext| {
        let s = s.clone();
        async move {
            ctx.set_timeout(Duration::from_millis(300));
            tokio::select! {
                _ = ctx.cancelled() => {
                    s.store(true, Ordering::SeqCst);
                    Err(JobError::cancelled())
                }
                _ = tokio::time::sleep(Duration::from_secs(20)) => Ok(JobResult(json!({}))),
            }
        }
    });
    m.start().await.unwrap();
    let t0 = Instant::now();
    let j = m.enqueue(nj("slow")).await.unwrap();
    let done = wait_done(&m, j.id).await;
    assert_eq!(done.status, JobStatus::Failed, "{done:?}");
    assert_eq!(done.error_code.as_deref(), Some(codes::TIMEOUT));
    assert_eq!(done.attempts, 1);
    assert!(stopped.load(Ordering::SeqCst), "the work stopped");
    assert!(t0.elapsed() < Duration::from_secs(5));
    m.stop().await.unwrap();
}

struct FlakySender {
    fail_first: usize,
    seen: Mutex<Vec<(Uuid, String, JobStatus)>>,
}

#[async_trait::async_trait]
impl WebhookSender for FlakySender {
    async fn send(&self, job: &Job, delivery_id: &str) -> Result<(), WebhookSendError> {
        let mut seen = self.seen.lock().unwrap();
        seen.push((job.id, delivery_id.to_owned(), job.status));
        if seen.len() <= self.fail_first {
            Err(WebhookSendError::transient("502 Bad Gateway"))
        } else {
            Ok(())
        }
    }
}

/// The manager delivers a finished job's webhook, retries a failed try with backoff under the
/// same delivery id, and records it delivered.
pub async fn manager_delivers_webhooks(store: Arc<dyn JobStore>) {
    let mut cfg = test_config("n1");
    cfg.webhook_retry = RetryPolicy::default()
        .base(Duration::from_millis(100))
        .jitter(false);
    cfg.webhook_poll = Duration::from_millis(100);
    let m = manager(&store, cfg);
    let sender = Arc::new(FlakySender {
        fail_first: 1,
        seen: Mutex::new(Vec::new()),
    });
    m.set_webhook_sender(sender.clone());
    m.register_handler("w", lanes::IO, ok_handler);
    m.start().await.unwrap();
    let j = m
        .enqueue(nj("w").webhook("http://127.0.0.1:9/x"))
        .await
        .unwrap();
    wait_done(&m, j.id).await;
    let done = wait_until(&store, j.id, "delivered", |j| {
        j.webhook
            .as_ref()
            .is_some_and(|w| w.status == WebhookStatus::Delivered)
    })
    .await;
    let w = done.webhook.unwrap();
    assert_eq!(w.attempts, 2);
    let seen = sender.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen.iter().all(|(id, d, st)| *id == j.id
        && *d == format!("{}.1", j.id)
        && *st == JobStatus::Succeeded));
    m.stop().await.unwrap();
}

/// A retention pass prunes finished jobs older than the retention and keeps the rest.
pub async fn manager_prunes_old_jobs(store: Arc<dyn JobStore>) {
    let m = manager(&store, test_config("n1"));
    m.register_handler("p", lanes::IO, ok_handler);
    m.register_handler("hold", lanes::IO, wait_cancel);
    m.start().await.unwrap();
    let done = m.enqueue(nj("p")).await.unwrap();
    wait_done(&m, done.id).await;
    let held = m.enqueue(nj("hold")).await.unwrap();
    wait_running(&store, held.id).await;
    assert_eq!(m.prune_now(Duration::from_secs(3600)).await.unwrap(), 0);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(m.prune_now(Duration::ZERO).await.unwrap(), 1);
    assert!(store.get_job(done.id).await.unwrap().is_none());
    assert!(store.get_job(held.id).await.unwrap().is_some());
    m.cancel_job(held.id).await.unwrap();
    m.stop().await.unwrap();
}
