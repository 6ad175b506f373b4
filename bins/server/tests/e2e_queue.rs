//! End-to-end queue features over HTTP (issue 13): retries with backoff against a provider
//! that answers 503, delayed jobs and priorities, unique jobs, dedupe by content (whisper not
//! run again), a forced short deadline, ETAs, retention, and signed webhooks that survive a
//! kill -9 of the server.
#![allow(clippy::unwrap_used)]
mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use chrono::DateTime;
use common::{Server, assert_error};
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};

const MIN: Duration = Duration::from_secs(60);
const SRT: &str = "1\n00:00:01,000 --> 00:00:02,000\nhello there\n\n2\n00:00:03,000 --> 00:00:04,000\nhow are you\n";
/// The Standard Webhooks example secret.
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

fn at(v: &Value, key: &str) -> DateTime<chrono::Utc> {
    DateTime::parse_from_rfc3339(v[key].as_str().unwrap_or_else(|| panic!("{key} in {v}")))
        .unwrap()
        .to_utc()
}

/// A 503 twice, then an answer: the job fails retryably twice, waits out its backoff (queued,
/// `next_run_at`, `last_error` visible), and succeeds on attempt 3.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_unavailable_twice_then_the_job_succeeds_on_attempt_3() {
    let dir = tempfile::tempdir().unwrap();
    let llm = common::llm_stub(Duration::ZERO).await;
    let s = Server::start(
        dir.path(),
        &[
            ("MEDIAJOBS_LLM_STUB_BASE_URL", llm.as_str()),
            // No retry inside the request: the job's own retry shows.
            ("MEDIAJOBS_LLM_STUB_RETRIES", "0"),
            ("MEDIAJOBS_RETRY_BASE_MS", "800"),
        ],
    )
    .await;
    let f = s.upload("p", "a.srt", SRT.as_bytes().to_vec()).await;
    let j = s
        .submit(
            "p",
            json!({"type": "fix_srt", "file_id": id(&f), "model": "stub:x", "sys_msg": "UNAVAILABLE2 fix it"}),
        )
        .await;
    // Catch it waiting for its retry.
    let t0 = Instant::now();
    let waiting = loop {
        let (_, v) = s.get(&format!("/jobs/{}", id(&j)), "p").await;
        if v["status"] == "queued" && v["attempts"].as_i64() >= Some(1) {
            break v;
        }
        assert!(v["status"] != "succeeded" && v["status"] != "failed", "{v}");
        assert!(t0.elapsed() < MIN, "{v}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(waiting["last_error"]["code"], "LLMRequest", "{waiting}");
    assert_eq!(waiting["last_error"]["retryable"], true);
    assert!(
        waiting["last_error"]["message"]
            .as_str()
            .unwrap()
            .contains("503"),
        "{waiting}"
    );
    assert!(waiting["error"].is_null(), "not failed: {waiting}");
    assert!(waiting["next_run_at"].is_string(), "{waiting}");
    assert_eq!(waiting["max_attempts"], 3);

    let done = s.wait("p", &id(&j), MIN).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["attempts"], 3);
    assert_eq!(done["last_error"]["attempt"], 2);
    // Backoff: 400-800 ms, then 800-1600 ms (equal jitter).
    let took = (at(&done, "finished_at") - at(&done, "created_at")).num_milliseconds();
    assert!(took >= 1200, "the backoff was waited out: {took} ms");
    assert!(
        done["result"]["srt_content"]
            .as_str()
            .unwrap()
            .contains("Hello there.")
    );
}

/// A delayed job waits for its time (cancel works on it); a higher priority runs first among
/// queued jobs of a lane; a unique key returns the active job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delays_priorities_and_unique_keys() {
    let dir = tempfile::tempdir().unwrap();
    let llm = common::llm_stub(Duration::from_millis(400)).await;
    let s = Server::start(
        dir.path(),
        &[
            ("MEDIAJOBS_LLM_STUB_BASE_URL", llm.as_str()),
            ("MEDIAJOBS_IO_CONCURRENCY", "1"),
        ],
    )
    .await;
    let f = s.upload("p", "a.srt", SRT.as_bytes().to_vec()).await;
    let fix = |extra: Value| {
        let mut b = json!({"type": "fix_srt", "file_id": id(&f), "model": "stub:x"});
        b.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        b
    };
    let delayed = s.submit("p", fix(json!({"delay_seconds": 3}))).await;
    assert_eq!(delayed["status"], "queued");
    assert!(delayed["next_run_at"].is_string(), "{delayed}");
    let doomed = s.submit("p", fix(json!({"delay_seconds": 3600}))).await;
    let (st, c) = s
        .post(&format!("/jobs/{}/cancel", id(&doomed)), "p", json!({}))
        .await;
    assert_eq!((st, c["status"].as_str()), (200, Some("cancelled")));

    // One io permit: a blocker, then two low and one high priority job.
    let blocker = s.submit("p", fix(json!({}))).await;
    s.wait_status("p", &id(&blocker), "running").await;
    let low1 = s.submit("p", fix(json!({}))).await;
    let low2 = s.submit("p", fix(json!({"priority": -5}))).await;
    let high = s.submit("p", fix(json!({"priority": 5}))).await;
    assert_eq!(high["priority"], 5);
    let mut started = Vec::new();
    for j in [&low1, &low2, &high] {
        let d = s.wait("p", &id(j), MIN).await;
        assert_eq!(d["status"], "succeeded", "{d}");
        started.push((at(&d, "started_at"), id(j)));
    }
    started.sort();
    let order: Vec<String> = started.into_iter().map(|(_, i)| i).collect();
    assert_eq!(
        order,
        vec![id(&high), id(&low1), id(&low2)],
        "priority, then FIFO"
    );

    let d = s.wait("p", &id(&delayed), MIN).await;
    assert_eq!(d["status"], "succeeded");
    let waited = (at(&d, "started_at") - at(&delayed, "created_at")).num_milliseconds();
    assert!(waited >= 2900, "ran after its delay: {waited} ms");

    // Unique keys: the active holder is returned (200 + header), a finished one frees the key.
    let (st, first) = s
        .post("/jobs", "p", fix(json!({"unique_key": "nightly"})))
        .await;
    assert_eq!(st, 202, "{first}");
    let r = s
        .req(reqwest::Method::POST, "/jobs", "p")
        .json(&fix(json!({"unique_key": "nightly"})))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["x-mediajobs-existing"], "true");
    let again: Value = r.json().await.unwrap();
    assert_eq!(id(&again), id(&first));
    // Another profile's key is its own.
    let fq = s.upload("q", "a.srt", SRT.as_bytes().to_vec()).await;
    let (st, other) = s
        .post(
            "/jobs",
            "q",
            json!({"type": "fix_srt", "file_id": id(&fq), "model": "stub:x", "unique_key": "nightly"}),
        )
        .await;
    assert_eq!(st, 202, "{other}");
    s.wait("p", &id(&first), MIN).await;
    let (st, fresh) = s
        .post("/jobs", "p", fix(json!({"unique_key": "nightly"})))
        .await;
    assert_eq!(st, 202);
    assert_ne!(id(&fresh), id(&first));

    // Bad scheduling fields get clear errors.
    for bad in [
        json!({"delay_seconds": 5, "run_at": "2030-01-01T00:00:00Z"}),
        json!({"run_at": "tomorrow"}),
        json!({"priority": 5000}),
        json!({"unique_key": ""}),
        json!({"timeout_seconds": 0}),
        json!({"webhook_url": "https://example.com/hook"}),
    ] {
        assert_error(
            &s.post("/jobs", "p", fix(bad.clone())).await,
            422,
            "ValidationError",
        );
    }
}

/// The same content with the same options reuses a finished transcription: the second job
/// (even for a re-uploaded copy) finishes at once with `reused_from` and its own transcript,
/// and whisper runs once (the node's measured speed counts one job); `dedupe: false` runs it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dedupe_reuses_a_finished_transcription() {
    let dir = tempfile::tempdir().unwrap();
    let media = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]).await;
    let wav = std::fs::read(common::speech(media.path(), "talk", common::SPEECH)).unwrap();
    let f = s.upload("p", "talk.wav", wav.clone()).await;
    let first = s
        .submit("p", json!({"type": "generate_srt", "file_id": id(&f)}))
        .await;
    let first = s.wait("p", &id(&first), MIN).await;
    assert_eq!(first["status"], "succeeded", "{first}");
    assert!(first["result"].get("reused_from").is_none());

    let copy = s.upload("p", "copy.wav", wav.clone()).await;
    for file in [&f, &copy] {
        let j = s
            .submit("p", json!({"type": "generate_srt", "file_id": id(file)}))
            .await;
        let d = s.wait("p", &id(&j), MIN).await;
        assert_eq!(d["status"], "succeeded", "{d}");
        assert_eq!(d["result"]["reused_from"], first["id"], "{d}");
        assert_ne!(d["result"]["srt_file_id"], first["result"]["srt_file_id"]);
        assert_eq!(d["result"]["srt_content"], first["result"]["srt_content"]);
        let took = (at(&d, "finished_at") - at(&d, "started_at")).num_milliseconds();
        assert!(took < 1000, "reuse takes milliseconds: {took} ms");
        let (st, srt) = s
            .get(
                &format!(
                    "/profiles/files/{}",
                    d["result"]["srt_file_id"].as_str().unwrap()
                ),
                "p",
            )
            .await;
        assert_eq!(st, 200);
        assert_eq!(
            srt["source_file_id"], file["id"],
            "its own output of its own input"
        );
    }
    // Other options, or dedupe off, run whisper again.
    let vtt = s
        .submit(
            "p",
            json!({"type": "generate_srt", "file_id": id(&f), "opts": {"format": "vtt"}}),
        )
        .await;
    let vtt = s.wait("p", &id(&vtt), MIN).await;
    assert!(vtt["result"].get("reused_from").is_none(), "{vtt}");
    let off = s
        .submit(
            "p",
            json!({"type": "generate_srt", "file_id": id(&f), "dedupe": false}),
        )
        .await;
    let off = s.wait("p", &id(&off), MIN).await;
    assert!(off["result"].get("reused_from").is_none());
    let (_, info) = s.get("/server", "p").await;
    let runs: i64 = info["speed"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["operation"] == "generate_srt")
        .map(|k| k["jobs"].as_i64().unwrap())
        .sum();
    assert_eq!(
        runs, 3,
        "whisper ran for the first, vtt and dedupe:false jobs only: {info}"
    );
    // Another profile never reuses this one's results.
    let g = s.upload("q", "talk.wav", wav).await;
    let j = s
        .submit("q", json!({"type": "transcribe", "file_id": id(&g)}))
        .await;
    let d = s.wait("q", &id(&j), MIN).await;
    assert!(d["result"].get("reused_from").is_none());
}

/// A transcription whose deadline is forced short fails `Timeout` and its work stops (the
/// heavy permit is free again at once); while a long one runs, its ETA is there and falls,
/// and a job queued behind it has a later ETA.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadlines_and_etas() {
    let dir = tempfile::tempdir().unwrap();
    let media = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]).await;
    let long_text = [common::SPEECH; 6].join(" ");
    let wav = std::fs::read(common::speech(media.path(), "long", &long_text)).unwrap();
    let f = s.upload("p", "long.wav", wav).await;
    assert!(f["duration_ms"].as_i64().unwrap() > 30_000, "{f}");

    let t0 = Instant::now();
    let j = s
        .submit(
            "p",
            json!({"type": "transcribe", "file_id": id(&f), "timeout_seconds": 1, "dedupe": false}),
        )
        .await;
    let d = s.wait("p", &id(&j), MIN).await;
    assert_eq!(d["status"], "failed", "{d}");
    assert_eq!(d["error_code"], "Timeout", "{d}");
    assert_eq!(d["error_details"]["timeout_seconds"], 1);
    assert_eq!(d["attempts"], 1, "a deadline is not retried");
    assert!(t0.elapsed() < Duration::from_secs(15), "{:?}", t0.elapsed());
    let (_, info) = s.get("/server", "p").await;
    let heavy = info["lanes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "heavy")
        .unwrap()
        .clone();
    assert_eq!(heavy["in_use"], 0, "the work stopped: {info}");

    // ETAs: a running transcription and one queued behind it.
    let run = s
        .submit(
            "p",
            json!({"type": "transcribe", "file_id": id(&f), "dedupe": false}),
        )
        .await;
    let behind = s
        .submit(
            "p",
            json!({"type": "transcribe", "file_id": id(&f), "dedupe": false}),
        )
        .await;
    s.wait_status("p", &id(&run), "running").await;
    let mut etas = Vec::new();
    let mut behind_eta = None;
    let t0 = Instant::now();
    loop {
        let (_, v) = s.get(&format!("/jobs/{}", id(&run)), "p").await;
        if v["status"] != "running" {
            break;
        }
        if let Some(e) = v["eta_seconds"].as_f64() {
            etas.push(e);
        }
        if behind_eta.is_none() {
            let (_, b) = s.get(&format!("/jobs/{}", id(&behind)), "p").await;
            if b["status"] == "queued" {
                behind_eta = b["eta_seconds"].as_f64();
                if let (Some(be), Some(re)) = (behind_eta, etas.last()) {
                    assert!(be > *re, "queued behind: {be} > {re}");
                }
            }
        }
        assert!(t0.elapsed() < Duration::from_secs(120));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(etas.len() >= 3, "ETA while running: {etas:?}");
    assert!(
        etas.last().unwrap() < etas.first().unwrap(),
        "ETA falls: {etas:?}"
    );
    assert!(behind_eta.is_some(), "a queued job has an ETA");
    let d = s.wait("p", &id(&run), MIN).await;
    assert_eq!(d["status"], "succeeded");
    assert!(d["eta_seconds"].is_null(), "no ETA once finished");
    s.wait("p", &id(&behind), Duration::from_secs(120)).await;
}

/// Finished jobs older than the retention are pruned by the maintenance task; active and
/// newer ones stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_prunes_finished_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let llm = common::llm_stub(Duration::ZERO).await;
    let s = Server::start(
        dir.path(),
        &[
            ("MEDIAJOBS_LLM_STUB_BASE_URL", llm.as_str()),
            ("MEDIAJOBS_RETENTION", "3s"),
            ("MEDIAJOBS_RETENTION_FILES", "true"),
            ("MEDIAJOBS_MAINTENANCE_INTERVAL", "1s"),
        ],
    )
    .await;
    let f = s.upload("p", "a.srt", SRT.as_bytes().to_vec()).await;
    let j = s
        .submit(
            "p",
            json!({"type": "fix_srt", "file_id": id(&f), "model": "stub:x"}),
        )
        .await;
    let d = s.wait("p", &id(&j), MIN).await;
    assert_eq!(d["status"], "succeeded");
    let out = d["result"]["srt_file_id"].as_str().unwrap().to_owned();
    let later = s
        .submit(
            "p",
            json!({"type": "fix_srt", "file_id": id(&f), "model": "stub:x", "delay_seconds": 3600}),
        )
        .await;
    let t0 = Instant::now();
    loop {
        let (st, _) = s.get(&format!("/jobs/{}", id(&j)), "p").await;
        if st == 404 {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "never pruned");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        t0.elapsed() >= Duration::from_secs(1),
        "not before its time"
    );
    let (st, _) = s.get(&format!("/jobs/{}", id(&later)), "p").await;
    assert_eq!(st, 200, "a queued job is never pruned");
    let (st, _) = s.get(&format!("/profiles/files/{out}"), "p").await;
    assert_eq!(st, 404, "RETENTION_FILES deletes its generated file");
    let (st, _) = s.get(&format!("/profiles/files/{}", id(&f)), "p").await;
    assert_eq!(st, 200, "uploads are kept");
}

/// What a webhook receiver got.
#[derive(Clone, Debug)]
struct Hit {
    id: String,
    timestamp: String,
    signature: String,
    body: Vec<u8>,
}

/// A receiver on loopback answering `status` (changeable) and recording every request.
async fn receiver(status: Arc<Mutex<u16>>) -> (String, Arc<Mutex<Vec<Hit>>>) {
    use axum::http::HeaderMap;
    let hits: Arc<Mutex<Vec<Hit>>> = Arc::default();
    let h = hits.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let h = h.clone();
            let status = status.clone();
            async move {
                let get = |k: &str| {
                    headers
                        .get(k)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned()
                };
                h.lock().unwrap().push(Hit {
                    id: get("webhook-id"),
                    timestamp: get("webhook-timestamp"),
                    signature: get("webhook-signature"),
                    body: body.to_vec(),
                });
                let code = *status.lock().unwrap();
                axum::http::StatusCode::from_u16(code).unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hook"), hits)
}

/// Verifies a Standard Webhooks signature the way a receiver does.
fn verify(hit: &Hit) {
    let key = base64::engine::general_purpose::STANDARD
        .decode(SECRET.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{}.{}.", hit.id, hit.timestamp).as_bytes());
    mac.update(&hit.body);
    let want = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    assert_eq!(hit.signature, want, "the signature verifies");
    let ts: i64 = hit.timestamp.parse().unwrap();
    assert!(
        (chrono::Utc::now().timestamp() - ts).abs() < 300,
        "a fresh timestamp"
    );
}

/// A job's webhook arrives signed (the test verifies the signature) with the job JSON; a
/// receiver that fails gets the same delivery again with backoff; and a delivery pending when
/// the server is killed (-9) is made after the restart, with the same `webhook-id`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_signed_retried_and_survive_kill9() {
    let dir = tempfile::tempdir().unwrap();
    let llm = common::llm_stub(Duration::ZERO).await;
    let status = Arc::new(Mutex::new(200u16));
    let (url, hits) = receiver(status.clone()).await;
    let env = [
        ("MEDIAJOBS_LLM_STUB_BASE_URL", llm.as_str()),
        ("MEDIAJOBS_WEBHOOK_SECRET", SECRET),
        ("MEDIAJOBS_WEBHOOK_ALLOW_PRIVATE", "true"),
    ];
    let mut s = Server::start(dir.path(), &env).await;
    let f = s.upload("p", "a.srt", SRT.as_bytes().to_vec()).await;
    let j = s
        .submit(
            "p",
            json!({"type": "fix_srt", "file_id": id(&f), "model": "stub:x", "webhook_url": url}),
        )
        .await;
    assert_eq!(j["webhook"]["status"], "waiting", "{j}");
    let done = s.wait("p", &id(&j), MIN).await;
    let t0 = Instant::now();
    while hits.lock().unwrap().is_empty() {
        assert!(t0.elapsed() < Duration::from_secs(20), "no delivery");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let hit = hits.lock().unwrap()[0].clone();
    verify(&hit);
    let body: Value = serde_json::from_slice(&hit.body).unwrap();
    assert_eq!(body["type"], "job.succeeded");
    assert_eq!(body["data"]["id"], done["id"]);
    assert_eq!(body["data"]["result"], done["result"]);
    assert_eq!(hit.id, format!("{}.1", id(&j)));
    let t0 = Instant::now();
    loop {
        let (_, v) = s.get(&format!("/jobs/{}", id(&j)), "p").await;
        if v["webhook"]["status"] == "delivered" {
            assert_eq!(v["webhook"]["attempts"], 1);
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "{v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A profile's default webhook applies to its submissions that name none.
    let (st, w) = common::send(
        s.req(reqwest::Method::PUT, "/profiles/webhook", "d")
            .json(&json!({"url": url})),
    )
    .await;
    assert_eq!((st, w["url"].as_str()), (200, Some(url.as_str())), "{w}");
    let (_, w) = s.get("/profiles/webhook", "d").await;
    assert_eq!(w["url"].as_str(), Some(url.as_str()));
    let fd = s.upload("d", "a.srt", SRT.as_bytes().to_vec()).await;
    let jd = s
        .submit(
            "d",
            json!({"type": "fix_srt", "file_id": id(&fd), "model": "stub:x"}),
        )
        .await;
    assert_eq!(jd["webhook"]["url"].as_str(), Some(url.as_str()), "{jd}");
    s.wait("d", &id(&jd), MIN).await;
    let t0 = Instant::now();
    while !hits
        .lock()
        .unwrap()
        .iter()
        .any(|h| h.id == format!("{}.1", id(&jd)))
    {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "no delivery of the default webhook"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_error(
        &common::send(
            s.req(reqwest::Method::PUT, "/profiles/webhook", "d")
                .json(&json!({"url": "ftp://x/y"})),
        )
        .await,
        422,
        "ValidationError",
    );

    // A failing receiver: retried with backoff under the same id; then the server dies.
    *status.lock().unwrap() = 503;
    let before = hits.lock().unwrap().len();
    let j2 = s
        .submit(
            "p",
            json!({"type": "fix_srt", "file_id": id(&f), "model": "stub:x", "webhook_url": url}),
        )
        .await;
    s.wait("p", &id(&j2), MIN).await;
    let t0 = Instant::now();
    while hits.lock().unwrap().len() < before + 2 {
        assert!(t0.elapsed() < Duration::from_secs(20), "no retry");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, v) = s.get(&format!("/jobs/{}", id(&j2)), "p").await;
    assert_eq!(v["webhook"]["status"], "pending", "{v}");
    assert!(
        v["webhook"]["last_error"].as_str().unwrap().contains("503"),
        "{v}"
    );
    s.kill9().await;
    *status.lock().unwrap() = 200;
    s.restart().await;
    let t0 = Instant::now();
    loop {
        let (_, v) = s.get(&format!("/jobs/{}", id(&j2)), "p").await;
        if v["webhook"]["status"] == "delivered" {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(45),
            "not delivered after the restart: {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let all = hits.lock().unwrap().clone();
    let mine: Vec<&Hit> = all
        .iter()
        .filter(|h| h.id == format!("{}.1", id(&j2)))
        .collect();
    assert!(
        mine.len() >= 3,
        "503, 503, then 200 after the restart: {}",
        mine.len()
    );
    for h in &mine {
        verify(h);
    }
    // Each try is counted by outcome (this process saw the delivery after the restart).
    let (_, m) = common::send(common::client().get(s.url("/metrics"))).await;
    let text = m["raw"].as_str().unwrap();
    assert!(
        text.contains("mediajobs_webhook_deliveries_total{outcome=\"delivered\"}"),
        "{text}"
    );
    // A private target is refused without the opt-in.
    s.stop().await;
    let strict = Server::start(
        dir.path(),
        &[
            ("MEDIAJOBS_LLM_STUB_BASE_URL", llm.as_str()),
            ("MEDIAJOBS_WEBHOOK_SECRET", SECRET),
        ],
    )
    .await;
    assert_error(
        &strict
            .post(
                "/jobs",
                "p",
                json!({"type": "fix_srt", "file_id": id(&f), "model": "stub:x", "webhook_url": "http://127.0.0.1:9/hook"}),
            )
            .await,
        422,
        "ValidationError",
    );
}
