//! End-to-end rules: profile isolation on every route, bad inputs answering clear 4xx
//! envelopes, bearer tokens, restart after kill -9, heavy exclusivity at the HTTP level.
#![allow(clippy::unwrap_used)]
mod common;

use std::time::Duration;

use chrono::DateTime;
use common::{Server, assert_error};
use serde_json::{Value, json};

const MIN: Duration = Duration::from_secs(60);

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profiles_are_isolated_on_every_route() {
    let dir = tempfile::tempdir().unwrap();
    let media = tempfile::tempdir().unwrap();
    let mut s = Server::start(dir.path(), &[]).await;
    let wav = common::speech(media.path(), "hi", "Hello there.");
    let f = s
        .upload("alice", "hi.wav", std::fs::read(&wav).unwrap())
        .await;
    let j = s
        .submit("alice", json!({"type": "transcribe", "file_id": id(&f)}))
        .await;
    let done = s.wait("alice", &id(&j), MIN).await;
    let tid = done["result"]["transcript_id"].as_str().unwrap().to_owned();
    let (fid, jid) = (id(&f), id(&j));
    let bob = "bob";
    for path in [
        format!("/profiles/files/{fid}"),
        format!("/profiles/files/{fid}/content"),
        format!("/profiles/transcripts/{tid}"),
        format!("/jobs/{jid}"),
        format!("/jobs/{jid}/children"),
        format!("/jobs/{jid}/events"),
    ] {
        assert_error(&s.get(&path, bob).await, 404, "NotFound");
    }
    for path in [format!("/jobs/{jid}/cancel"), format!("/jobs/{jid}/retry")] {
        assert_error(&s.post(&path, bob, json!({})).await, 404, "NotFound");
    }
    for path in [
        format!("/profiles/files/{fid}"),
        format!("/profiles/transcripts/{tid}"),
        format!("/jobs/{jid}"),
    ] {
        assert_error(&s.delete(&path, bob).await, 404, "NotFound");
    }
    assert_error(
        &s.post("/jobs", bob, json!({"type": "transcribe", "file_id": fid}))
            .await,
        404,
        "NotFound",
    );
    assert_error(
        &s.post(
            "/jobs/batch",
            bob,
            json!({"type": "batch_transcribe", "file_ids": [fid]}),
        )
        .await,
        404,
        "NotFound",
    );
    for path in ["/profiles/files", "/profiles/transcripts", "/jobs"] {
        let (st, v) = s.get(path, bob).await;
        assert_eq!((st, v.as_array().map(Vec::len)), (200, Some(0)), "{path}");
    }
    // Alice still sees everything.
    assert_eq!(s.get(&format!("/jobs/{jid}"), "alice").await.0, 200);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_get_clear_envelopes() {
    let dir = tempfile::tempdir().unwrap();
    let media = tempfile::tempdir().unwrap();
    let mut s = Server::start(dir.path(), &[("MEDIAJOBS_MAX_UPLOAD_BYTES", "300000")]).await;
    let p = "carol";
    let wav = common::speech(media.path(), "hi", "Hello there.");
    let audio = s.upload(p, "hi.wav", std::fs::read(&wav).unwrap()).await;
    let srt = s
        .upload(
            p,
            "subs.srt",
            b"1\n00:00:01,000 --> 00:00:02,000\nhello\n".to_vec(),
        )
        .await;
    assert_eq!(srt["kind"], "subtitle");
    let aid = id(&audio);

    // Headers (400: RFC 9110 keeps 422 for body content) and bodies.
    assert_error(
        &common::send(common::client().get(s.url("/jobs"))).await,
        400,
        "BadRequest",
    );
    assert_error(&s.get("/jobs", "bad profile!").await, 400, "BadRequest");
    assert_error(&s.get("/jobs", &"x".repeat(65)).await, 400, "BadRequest");
    let raw = s
        .req(reqwest::Method::POST, "/jobs", p)
        .header("content-type", "application/json")
        .body("{bad json");
    assert_error(&common::send(raw).await, 422, "ValidationError");
    let no_ct = s.req(reqwest::Method::POST, "/jobs", p).body("{}");
    assert_error(&common::send(no_ct).await, 422, "ValidationError");
    assert_error(
        &s.post(
            "/jobs",
            p,
            json!({"type": "transcribe", "file_id": aid, "extra": 1}),
        )
        .await,
        422,
        "ValidationError",
    );
    assert_error(
        &s.post("/jobs", p, json!({"type": "transcribe"})).await,
        422,
        "ValidationError",
    );
    assert_error(
        &s.post(
            "/jobs",
            p,
            json!({"type": "transcribe", "file_id": "not-a-uuid"}),
        )
        .await,
        422,
        "ValidationError",
    );
    let big = json!({"type": "transcribe", "file_id": aid, "opts": {"initial_prompt": "x".repeat(2 << 20)}});
    assert_error(&s.post("/jobs", p, big).await, 413, "PayloadTooLarge");

    // Types, kinds, options, models, batches: (route, body, status, code).
    let mut cases = vec![
        (
            "/jobs",
            json!({"type": "explode", "file_id": aid}),
            422,
            "UnknownJobType",
        ),
        (
            "/jobs/batch",
            json!({"type": "transcribe", "file_ids": [aid]}),
            422,
            "UnknownJobType",
        ),
        (
            "/jobs",
            json!({"type": "convert", "file_id": aid}),
            422,
            "WrongFileKind",
        ),
        (
            "/jobs",
            json!({"type": "fix_srt", "file_id": aid, "model": "x:y"}),
            422,
            "WrongFileKind",
        ),
        (
            "/jobs",
            json!({"type": "transcribe", "file_id": id(&srt)}),
            422,
            "WrongFileKind",
        ),
        (
            "/jobs",
            json!({"type": "transcribe", "file_id": uuid::Uuid::now_v7()}),
            404,
            "NotFound",
        ),
    ];
    for opts in [
        json!({"beam_size": 99}),
        json!({"temperature": 3.0}),
        json!({"language": "klingon"}),
        json!({"langauge": "en"}),
        json!({"beam_size": 3, "best_of": 2}),
        json!("not an object"),
    ] {
        cases.push((
            "/jobs",
            json!({"type": "transcribe", "file_id": aid, "opts": opts}),
            422,
            "ValidationError",
        ));
    }
    cases.extend([
        (
            "/jobs",
            json!({"type": "generate_srt", "file_id": aid, "opts": {"clean_audio": true}}),
            422,
            "ValidationError",
        ),
        (
            "/jobs",
            json!({"type": "transcribe", "file_id": aid, "model": "a:b"}),
            422,
            "ValidationError",
        ),
        (
            "/jobs",
            json!({"type": "fix_srt", "file_id": id(&srt)}),
            422,
            "ValidationError",
        ),
        (
            "/jobs",
            json!({"type": "fix_srt", "file_id": id(&srt), "model": "gpt-4o"}),
            422,
            "InvalidModelString",
        ),
        (
            "/jobs",
            json!({"type": "fix_srt", "file_id": id(&srt), "model": "openai:gpt-4o"}),
            422,
            "LLMProviderUnavailable",
        ),
        (
            "/jobs/batch",
            json!({"type": "batch_transcribe", "file_ids": []}),
            422,
            "ValidationError",
        ),
        (
            "/jobs/batch",
            json!({"type": "batch_transcribe", "file_ids": [aid, aid]}),
            422,
            "ValidationError",
        ),
        (
            "/jobs/batch",
            json!({"type": "batch_transcribe", "file_ids": [aid, uuid::Uuid::now_v7()]}),
            404,
            "NotFound",
        ),
    ]);
    for (route, body, status, code) in cases {
        let res = s.post(route, p, body.clone()).await;
        assert_eq!(
            (res.0, res.1["error"]["code"].as_str()),
            (status, Some(code)),
            "{route} {body}: {}",
            res.1
        );
        assert_error(&res, status, code);
    }

    // Uploads.
    let (st, v) = s
        .upload_raw(p, "../../etc/passwd.wav", std::fs::read(&wav).unwrap(), "")
        .await;
    assert_eq!(st, 201);
    assert_eq!(v["name"], "passwd.wav", "path components dropped");
    assert!(!dir.path().join("etc").exists() && !std::path::Path::new("/etc/passwd.wav").exists());
    assert_error(
        &s.upload_raw(p, "notes.txt", b"just some text\n".repeat(10), "")
            .await,
        422,
        "MediaDecode",
    );
    assert_error(
        &s.upload_raw(p, "empty.wav", vec![], "").await,
        422,
        "MediaDecode",
    );
    assert_error(
        &s.upload_raw(p, "fake.srt", b"no timing here".to_vec(), "")
            .await,
        422,
        "MediaDecode",
    );
    assert_error(
        &s.upload_raw(p, "hi.wav", std::fs::read(&wav).unwrap(), "?type=video")
            .await,
        422,
        "WrongFileKind",
    );
    assert_error(
        &s.upload_raw(p, "hi.wav", std::fs::read(&wav).unwrap(), "?type=pdf")
            .await,
        422,
        "ValidationError",
    );
    assert_error(
        &s.upload_raw(p, "hi.wav", std::fs::read(&wav).unwrap(), "?colour=red")
            .await,
        422,
        "ValidationError",
    );
    assert_error(
        &s.upload_raw(p, "big.wav", vec![0u8; 400_000], "").await,
        413,
        "PayloadTooLarge",
    );
    // An answer given before the body was read closes the connection, and says so: a pooled
    // client must not send its next request into a socket the server is closing.
    for body in [vec![0u8; 400_000], b"x".to_vec()] {
        let early = s
            .req(reqwest::Method::POST, "/profiles/files?type=pdf", p)
            .header("X-File-Name", "a.wav")
            .body(body)
            .send()
            .await
            .unwrap();
        assert!(matches!(early.status().as_u16(), 413 | 422));
        assert_eq!(
            early
                .headers()
                .get("connection")
                .map(|v| v.to_str().unwrap()),
            Some("close"),
            "an early answer must close the connection"
        );
    }
    let read_all = s
        .req(reqwest::Method::POST, "/jobs", p)
        .json(&json!({"type": "nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(read_all.status().as_u16(), 422);
    assert!(
        read_all.headers().get("connection").is_none(),
        "a fully read body keeps the connection alive"
    );
    let no_name = s
        .req(reqwest::Method::POST, "/profiles/files", p)
        .body(b"x".to_vec());
    assert_error(&common::send(no_name).await, 400, "BadRequest");
    let tmp: Vec<_> = std::fs::read_dir(dir.path().join("media/tmp/e2e-node"))
        .unwrap()
        .collect();
    assert!(tmp.is_empty(), "rejected uploads leave nothing behind");

    // Routes, methods, queries.
    assert_error(&s.get("/nope", p).await, 404, "NotFound");
    assert_error(&s.get("/jobs/not-a-uuid", p).await, 422, "ValidationError");
    assert_error(&s.delete("/jobs", p).await, 405, "MethodNotAllowed");
    assert_error(&s.get("/jobs?limit=0", p).await, 422, "ValidationError");
    assert_error(
        &s.get("/jobs?status=bogus", p).await,
        422,
        "ValidationError",
    );
    assert_error(&s.get("/jobs?sort=asc", p).await, 422, "ValidationError");
    assert_error(
        &s.get(&format!("/jobs?before={}", uuid::Uuid::now_v7()), p)
            .await,
        422,
        "ValidationError",
    );
    let range = s
        .req(
            reqwest::Method::GET,
            &format!("/profiles/files/{}/content", id(&srt)),
            p,
        )
        .header("Range", "bytes=9999-");
    assert_error(&common::send(range).await, 416, "ValidationError");
    // The OpenAPI document lists the routes.
    let (st, doc) = common::send(common::client().get(s.url("/openapi.json"))).await;
    assert_eq!(st, 200);
    assert!(doc["paths"]["/jobs/{id}/events"].is_object());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_tokens_reach_only_their_profiles() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::start(
        dir.path(),
        &[(
            "MEDIAJOBS_API_TOKENS",
            "alice-token-1=alice;admin-token-9=*",
        )],
    )
    .await;
    let get = |tok: Option<&str>, profile: &str| {
        let mut r = s.req(reqwest::Method::GET, "/jobs", profile);
        if let Some(t) = tok {
            r = r.bearer_auth(t);
        }
        common::send(r)
    };
    assert_error(&get(None, "alice").await, 401, "Unauthorized");
    assert_error(
        &get(Some("wrong-token-xx"), "alice").await,
        401,
        "Unauthorized",
    );
    assert_error(
        &get(Some("alice-token-1"), "bob").await,
        401,
        "Unauthorized",
    );
    assert_eq!(get(Some("alice-token-1"), "alice").await.0, 200);
    assert_eq!(get(Some("admin-token-9"), "bob").await.0, 200);
    // Health needs no token.
    assert_eq!(
        common::send(common::client().get(s.url("/health"))).await.0,
        200
    );
    s.stop().await;
}

async fn kill9_during_a_running_job(policy: &str) {
    let dir = tempfile::tempdir().unwrap();
    let media = tempfile::tempdir().unwrap();
    let env = [("MEDIAJOBS_INTERRUPTED_JOBS", policy)];
    let mut s = Server::start(dir.path(), &env).await;
    let long = [common::SPEECH; 4].join(" ");
    let wav = common::speech(media.path(), "long", &long);
    let f = s
        .upload("dave", "long.wav", std::fs::read(&wav).unwrap())
        .await;
    let a = s
        .submit("dave", json!({"type": "transcribe", "file_id": id(&f)}))
        .await;
    let b = s
        .submit("dave", json!({"type": "transcribe", "file_id": id(&f)}))
        .await;
    s.wait_status("dave", &id(&a), "running").await;
    s.kill9().await;
    s.restart().await;
    let a_done = s.wait("dave", &id(&a), MIN).await;
    let b_done = s.wait("dave", &id(&b), MIN).await;
    assert_eq!(
        b_done["status"], "succeeded",
        "queued jobs still run: {b_done}"
    );
    if policy == "retry" {
        assert_eq!(a_done["status"], "succeeded", "{a_done}");
        assert_eq!(a_done["attempts"], 2);
    } else {
        assert_eq!(a_done["status"], "failed");
        assert_eq!(a_done["error_code"], "Interrupted");
        assert_eq!(a_done["error"], "Interrupted By A Server Restart");
    }
    let (_, active) = s.get("/jobs?active=true", "dave").await;
    assert!(
        active.as_array().unwrap().is_empty(),
        "nothing stays running"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_restart_retries_interrupted_jobs() {
    kill9_during_a_running_job("retry").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_restart_with_fail_policy() {
    kill9_during_a_running_job("fail").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transcriptions_never_overlap_and_llm_jobs_do_not_wait() {
    let dir = tempfile::tempdir().unwrap();
    let media = tempfile::tempdir().unwrap();
    let llm = common::llm_stub(Duration::from_millis(200)).await;
    let mut s = Server::start(dir.path(), &[("MEDIAJOBS_LLM_STUB_BASE_URL", llm.as_str())]).await;
    let p = "erin";
    let long = [common::SPEECH; 3].join(" ");
    let wav = common::speech(media.path(), "speech", &long);
    let f = s
        .upload(p, "speech.wav", std::fs::read(&wav).unwrap())
        .await;
    let srt = s
        .upload(
            p,
            "s.srt",
            b"1\n00:00:01,000 --> 00:00:02,000\nhello there\n".to_vec(),
        )
        .await;
    let t1 = s
        .submit(p, json!({"type": "generate_srt", "file_id": id(&f)}))
        .await;
    let t2 = s
        .submit(p, json!({"type": "transcribe", "file_id": id(&f)}))
        .await;
    s.wait_status(p, &id(&t1), "running").await;
    let fix = s
        .submit(
            p,
            json!({"type": "fix_srt", "file_id": id(&srt), "model": "stub:m"}),
        )
        .await;
    let fix_done = s.wait(p, &id(&fix), MIN).await;
    assert_eq!(fix_done["status"], "succeeded", "{fix_done}");
    let t1 = s.wait(p, &id(&t1), MIN).await;
    let t2 = s.wait(p, &id(&t2), MIN).await;
    let ts = |v: &Value, k: &str| DateTime::parse_from_rfc3339(v[k].as_str().unwrap()).unwrap();
    assert!(
        ts(&t1, "finished_at") <= ts(&t2, "started_at"),
        "heavy jobs never overlap: {t1}\n{t2}"
    );
    assert!(
        ts(&fix_done, "finished_at") < ts(&t2, "finished_at"),
        "the cheap job did not wait for both transcriptions"
    );
    assert!(
        ts(&fix_done, "finished_at") < ts(&t1, "finished_at"),
        "nor for the first one"
    );
    s.stop().await;
}
