//! End-to-end: the real `mediajobs` binary on loopback, driven over HTTP, with real whisper,
//! real GStreamer, SQLite and PostgreSQL, and a loopback OpenAI-compatible server for fix_srt.
#![allow(clippy::unwrap_used)]
mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{Server, assert_error};
use serde_json::{Value, json};

const P: &str = "alice";
const MIN: Duration = Duration::from_secs(60);

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

/// Every job type to completion with real processing, batches with a corrupt member, SSE.
async fn full_flow(database_url: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let media = tempfile::tempdir().unwrap();
    let llm = common::llm_stub(Duration::ZERO).await;
    let mut env = vec![("MEDIAJOBS_LLM_STUB_BASE_URL", llm.as_str())];
    if let Some(u) = database_url {
        env.push(("MEDIAJOBS_DATABASE_URL", u));
    }
    let s = Server::start(dir.path(), &env).await;

    let wav = common::speech(media.path(), "speech", common::SPEECH);
    let webm = common::video_with(media.path(), "clip", &wav, 7);
    let mp3 = common::mp3(media.path(), "tone", 4);
    let bytes = std::fs::read(&mp3).unwrap();
    let truncated = bytes[..bytes.len() / 2].to_vec();

    let f_wav = s
        .upload(P, "speech.wav", std::fs::read(&wav).unwrap())
        .await;
    assert_eq!(f_wav["kind"], "audio");
    assert_eq!(f_wav["origin"], "uploaded");
    let f_webm = s
        .upload(P, "clip.webm", std::fs::read(&webm).unwrap())
        .await;
    assert_eq!(f_webm["kind"], "video");
    assert_eq!(f_webm["type"], "video/webm");
    let f_trunc = s.upload(P, "broken.mp3", truncated).await;
    assert_eq!(f_trunc["kind"], "audio");

    // Watch the whole profile while the jobs run.
    let http = common::client();
    let events_url = s.url("/jobs/events");
    let watcher = tokio::spawn(async move {
        common::sse_events(&http, &events_url, P, Duration::from_secs(240), |e, v| {
            e == "finished" && v["type"] == "fix_srt"
        })
        .await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;

    // generate_srt on the video.
    let j = s
        .submit(
            P,
            json!({"type": "generate_srt", "file_id": id(&f_webm), "opts": {"language": "auto"}}),
        )
        .await;
    assert_eq!(j["status"], "queued");
    let done = s.wait(P, &id(&j), MIN).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let r = &done["result"];
    let srt = r["srt_content"].as_str().unwrap().to_owned();
    assert!(srt.to_lowercase().contains("committee"), "{srt}");
    assert_eq!(r["language"], "en");
    let srt_id = r["srt_file_id"].as_str().unwrap().to_owned();
    assert_eq!(r["srt_url"], format!("/profiles/files/{srt_id}/content"));
    assert_eq!(
        s.bytes(r["srt_url"].as_str().unwrap(), P).await,
        srt.as_bytes()
    );
    let (_, srt_file) = s.get(&format!("/profiles/files/{srt_id}"), P).await;
    assert_eq!(srt_file["origin"], "generated");
    assert_eq!(srt_file["kind"], "subtitle");
    assert_eq!(srt_file["source_file_id"], f_webm["id"]);
    assert_eq!(srt_file["name"], "clip.srt");

    // transcribe with clean_audio.
    let j = s.submit(P, json!({"type": "transcribe", "file_id": id(&f_wav), "opts": {"clean_audio": true, "word_timestamps": true}})).await;
    let done = s.wait(P, &id(&j), MIN).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let tid = done["result"]["transcript_id"].as_str().unwrap();
    assert!(
        done["result"]["transcript"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("library")
    );
    let (st, t) = s.get(&format!("/profiles/transcripts/{tid}"), P).await;
    assert_eq!(st, 200);
    assert_eq!(t["file_id"], f_wav["id"]);
    assert!(
        t["segments"][0]["words"]
            .as_array()
            .is_some_and(|w| !w.is_empty())
    );

    // convert the video.
    let j = s.submit(P, json!({"type": "convert", "file_id": id(&f_webm), "opts": {"resolution": "160x160", "preset": "performance", "target_bitrate": "400k"}})).await;
    let done = s.wait(P, &id(&j), MIN).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let mp4_id = done["result"]["file_id"].as_str().unwrap();
    let mp4 = s
        .bytes(done["result"]["video_url"].as_str().unwrap(), P)
        .await;
    let out = media.path().join("out.mp4");
    std::fs::write(&out, &mp4).unwrap();
    let probe = common::ffprobe(&out);
    let codecs: HashSet<&str> = probe["streams"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["codec_name"].as_str())
        .collect();
    assert_eq!(codecs, HashSet::from(["h264", "aac"]));
    let (_, mp4_file) = s.get(&format!("/profiles/files/{mp4_id}"), P).await;
    assert_eq!(
        (mp4_file["origin"].as_str(), mp4_file["type"].as_str()),
        (Some("converted"), Some("video/mp4"))
    );

    // fix_srt through the loopback LLM.
    let j = s.submit(P, json!({"type": "fix_srt", "file_id": srt_id, "model": "stub:tiny", "sys_msg": "Fix it."})).await;
    let done = s.wait(P, &id(&j), MIN).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert!(done["result"]["usage"]["prompt_tokens"].as_u64().unwrap() >= 50);
    let fixed = done["result"]["srt_content"].as_str().unwrap();
    assert_eq!(
        mediajobs_processor::subtitle::parse_srt(fixed)
            .unwrap()
            .len(),
        mediajobs_processor::subtitle::parse_srt(&srt)
            .unwrap()
            .len(),
        "same cue count"
    );

    // A model that answers prose: the job fails with LLMOutputInvalid, records what the
    // rejected answers cost, and saves nothing.
    let (_, before) = s.get("/profiles/files", P).await;
    let j = s.submit(P, json!({"type": "fix_srt", "file_id": srt_id, "model": "stub:tiny", "sys_msg": "Answer in PROSE."})).await;
    let done = s.wait(P, &id(&j), MIN).await;
    assert_eq!(
        (done["status"].as_str(), done["error_code"].as_str()),
        (Some("failed"), Some("LLMOutputInvalid")),
        "{done}"
    );
    let usage = &done["error_details"]["usage"];
    assert!(usage["requests"].as_u64().unwrap() >= 2, "{done}");
    assert_eq!(usage["invalid_answers"], usage["requests"], "{done}");
    assert_eq!(
        usage["wasted_prompt_tokens"], usage["prompt_tokens"],
        "{done}"
    );
    let (_, after) = s.get("/profiles/files", P).await;
    assert_eq!(
        before.as_array().unwrap().len(),
        after.as_array().unwrap().len()
    );

    // The SSE watcher saw a snapshot first, then every step of the jobs.
    let events = watcher.await.unwrap();
    assert_eq!(events[0].0, "snapshot");
    let kinds: Vec<&str> = events.iter().map(|e| e.0.as_str()).collect();
    for k in ["created", "started", "progress", "finished"] {
        assert!(kinds.contains(&k), "{k} in {kinds:?}");
    }

    // Batches: one good member and one truncated; the batch succeeds with the counts.
    let (st, b) = s
        .post(
            "/jobs/batch",
            P,
            json!({"type": "batch_generate_srt", "file_ids": [id(&f_wav), id(&f_trunc)]}),
        )
        .await;
    assert_eq!(st, 202, "{b}");
    assert_eq!(b["total"], 2);
    let done = s.wait(P, &id(&b), MIN).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["result"]["succeeded"], 1);
    assert_eq!(done["result"]["failed"], 1);
    assert_eq!(done["completed"], 2);
    let (_, kids) = s.get(&format!("/jobs/{}/children", id(&b)), P).await;
    let kids = kids.as_array().unwrap();
    assert_eq!(kids[0]["file_id"], f_wav["id"]);
    assert_eq!(kids[1]["status"], "failed");
    assert_eq!(kids[1]["error_code"], "MediaDecode");
    // Only corrupt members: the batch fails with BatchFailed and keeps the counts.
    let (_, b2) = s
        .post(
            "/jobs/batch",
            P,
            json!({"type": "batch_transcribe", "file_ids": [id(&f_trunc)]}),
        )
        .await;
    let done = s.wait(P, &id(&b2), MIN).await;
    assert_eq!(
        (done["status"].as_str(), done["error_code"].as_str()),
        (Some("failed"), Some("BatchFailed"))
    );
    assert_eq!(done["result"]["failed"], 1);
    // batch_fix_srt and batch_convert.
    let (_, b3) = s
        .post(
            "/jobs/batch",
            P,
            json!({"type": "batch_fix_srt", "file_ids": [srt_id], "model": "stub:tiny"}),
        )
        .await;
    assert_eq!(s.wait(P, &id(&b3), MIN).await["status"], "succeeded");
    let (_, b4) = s.post("/jobs/batch", P, json!({"type": "batch_convert", "file_ids": [id(&f_webm)], "opts": {"preset": "performance", "resolution": "160x120"}})).await;
    assert_eq!(s.wait(P, &id(&b4), MIN).await["status"], "succeeded");

    // Listing: top-level jobs only, newest first, filters.
    let (_, all) = s.get("/jobs?limit=1000", P).await;
    let all = all.as_array().unwrap();
    assert!(all.iter().all(|j| j["parent_id"].is_null()));
    assert_eq!(all[0]["id"], b4["id"]);
    // The prose fix_srt and the all-corrupt batch.
    let (_, failed) = s.get("/jobs?status=failed", P).await;
    assert_eq!(failed.as_array().unwrap().len(), 2);
    let (_, page) = s.get(&format!("/jobs?limit=2&before={}", id(&b3)), P).await;
    assert_eq!(page.as_array().unwrap()[0]["id"], b2["id"]);
    let (_, active) = s.get("/jobs?active=true", P).await;
    assert!(active.as_array().unwrap().is_empty());

    let (_, metrics) = common::send(common::client().get(s.url("/metrics"))).await;
    let text = metrics["raw"].as_str().unwrap();
    assert!(
        text.contains("mediajobs_jobs{job_type=\"generate_srt\",status=\"succeeded\"}"),
        "{text}"
    );
    assert!(text.contains("mediajobs_job_duration_seconds_count"));
    for want in [
        "mediajobs_build_info{version=\"",
        "mediajobs_http_request_duration_seconds_count{method=\"POST\",route=\"/jobs\",status=\"202\"}",
        "mediajobs_media_processed_seconds_total{operation=\"generate_srt\",model=\"base\"}",
        "mediajobs_media_processing_seconds_total{operation=\"convert\",model=\"gstreamer\"}",
        "mediajobs_real_time_factor{operation=\"generate_srt\",model=\"base\"}",
        // The succeeded and the rejected fix_srt runs both spent tokens.
        "mediajobs_llm_tokens_total{provider=\"stub\",model=\"tiny\",kind=\"prompt\"}",
    ] {
        assert!(text.contains(want), "{want} missing:\n{text}");
    }
    let mut s = s;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_flow_on_sqlite() {
    full_flow(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_flow_on_postgres() {
    let (url, name) = common::create_pg_db().await;
    full_flow(Some(&url)).await;
    common::drop_pg_db(&name).await;
}

/// Cancel a running and a queued job, retry one; the cancelled job leaves no output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_running_and_queued_then_retry() {
    let dir = tempfile::tempdir().unwrap();
    let media = tempfile::tempdir().unwrap();
    let mut s = Server::start(dir.path(), &[]).await;
    let long = [common::SPEECH; 6].join(" ");
    let wav = common::speech(media.path(), "long", &long);
    let f = s.upload(P, "long.wav", std::fs::read(&wav).unwrap()).await;
    let a = s
        .submit(P, json!({"type": "generate_srt", "file_id": id(&f)}))
        .await;
    let b = s
        .submit(P, json!({"type": "generate_srt", "file_id": id(&f)}))
        .await;
    s.wait_status(P, &id(&a), "running").await;
    // b waits behind a (one heavy job at a time): cancelling it is immediate.
    let (st, cb) = s
        .post(&format!("/jobs/{}/cancel", id(&b)), P, json!({}))
        .await;
    assert_eq!(st, 200);
    assert_eq!(cb["status"], "cancelled");
    // Cancel a while it runs.
    let t0 = std::time::Instant::now();
    let (st, ca) = s
        .post(&format!("/jobs/{}/cancel", id(&a)), P, json!({}))
        .await;
    assert_eq!(st, 200);
    assert!(ca["cancel_requested"].as_bool().unwrap() || ca["status"] == "cancelled");
    let done = s.wait(P, &id(&a), MIN).await;
    assert_eq!(done["status"], "cancelled");
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "cancelled in {:?}",
        t0.elapsed()
    );
    assert!(done["result"].is_null());
    let (_, files) = s.get("/profiles/files", P).await;
    assert_eq!(files.as_array().unwrap().len(), 1, "no SRT was stored");
    let tmp: Vec<_> = std::fs::read_dir(dir.path().join("media/tmp/e2e-node"))
        .unwrap()
        .collect();
    assert!(tmp.is_empty(), "temp files removed");
    // Retry the queued-cancelled one: it runs to the end.
    let (st, r) = s
        .post(&format!("/jobs/{}/retry", id(&b)), P, json!({}))
        .await;
    assert_eq!(st, 202);
    assert_eq!(r["status"], "queued");
    let done = s.wait(P, &id(&b), MIN).await;
    assert_eq!(done["status"], "succeeded");
    // Retrying a succeeded job is a conflict.
    assert_error(
        &s.post(&format!("/jobs/{}/retry", id(&b)), P, json!({}))
            .await,
        409,
        "Conflict",
    );
    // Cancelling a finished job returns it unchanged.
    let (st, again) = s
        .post(&format!("/jobs/{}/cancel", id(&b)), P, json!({}))
        .await;
    assert_eq!((st, again["status"].as_str()), (200, Some("succeeded")));
    s.stop().await;
}

/// DELETE rules and the file → job cascade.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_rules_and_file_cascade() {
    let dir = tempfile::tempdir().unwrap();
    let media = tempfile::tempdir().unwrap();
    let mut s = Server::start(dir.path(), &[]).await;
    let long = [common::SPEECH; 3].join(" ");
    let wav = common::speech(media.path(), "speech", &long);
    let f = s
        .upload(P, "speech.wav", std::fs::read(&wav).unwrap())
        .await;
    let a = s
        .submit(P, json!({"type": "generate_srt", "file_id": id(&f)}))
        .await;
    s.wait_status(P, &id(&a), "running").await;
    assert_error(
        &s.delete(&format!("/jobs/{}", id(&a)), P).await,
        409,
        "Conflict",
    );
    assert_error(
        &s.delete(&format!("/profiles/files/{}", id(&f)), P).await,
        409,
        "Conflict",
    );
    let done = s.wait(P, &id(&a), MIN).await;
    let srt_id = done["result"]["srt_file_id"].as_str().unwrap().to_owned();
    let t = s
        .submit(P, json!({"type": "transcribe", "file_id": id(&f)}))
        .await;
    let t_done = s.wait(P, &id(&t), MIN).await;
    let tid = t_done["result"]["transcript_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // A finished job can be deleted.
    let (st, _) = s.delete(&format!("/jobs/{}", id(&t)), P).await;
    assert_eq!(st, 204);
    assert_error(
        &s.get(&format!("/jobs/{}", id(&t)), P).await,
        404,
        "NotFound",
    );
    // Deleting the file deletes the jobs that used it; the SRT it produced stays (lineage
    // cleared) and the transcript keeps its text.
    let (st, del) = s.delete(&format!("/profiles/files/{}", id(&f)), P).await;
    assert_eq!(st, 200, "{del}");
    assert_eq!(del["success"], true);
    assert_eq!(del["deleted_job_ids"], json!([id(&a)]));
    assert_error(
        &s.get(&format!("/jobs/{}", id(&a)), P).await,
        404,
        "NotFound",
    );
    let (_, srt) = s.get(&format!("/profiles/files/{srt_id}"), P).await;
    assert!(srt["source_file_id"].is_null());
    let (st, tr) = s.get(&format!("/profiles/transcripts/{tid}"), P).await;
    assert_eq!(st, 200);
    assert!(tr["file_id"].is_null());
    let (st, _) = s.delete(&format!("/profiles/transcripts/{tid}"), P).await;
    assert_eq!(st, 200);
    assert_error(
        &s.get(&format!("/profiles/files/{}/content", id(&f)), P)
            .await,
        404,
        "NotFound",
    );
    s.stop().await;
}
