//! The compatible APIs end to end, with the clients people run: the official OpenAI Python
//! SDK, Bazarr's and Subgen's requests made with `requests`, `curl -F`; a client that hangs
//! up; bad input on every new route; tokens selecting profiles; the priority of interactive
//! requests on the heavy lane. The real binary on loopback, real whisper on `base`.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Server, assert_error, multipart, run_py, speech};
use serde_json::{Value, json};

const PANGRAM: &str = "Hello world. This is a test of the transcription server. The quick brown fox jumps over the lazy dog.";

fn german(dir: &std::path::Path) -> std::path::PathBuf {
    let p = dir.join("german.wav");
    common::run(
        std::process::Command::new("espeak-ng")
            .args(["-v", "de", "-w"])
            .arg(&p)
            .arg("Guten Tag, meine Damen und Herren. Heute sprechen wir über das Wetter in Berlin und über die Züge der Bahn."),
    );
    p
}

async fn list(s: &Server, what: &str, profile: &str) -> Vec<Value> {
    let (st, v) = s.get(what, profile).await;
    assert_eq!(st, 200, "{v}");
    v.as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_sdk_bazarr_and_subgen_against_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]).await;
    let talk = speech(dir.path(), "talk", PANGRAM);
    let de = german(dir.path());
    let junk = dir.path().join("junk.bin");
    std::fs::write(
        &junk,
        (0..20_000u32)
            .map(|i| (i * 7919 % 251) as u8)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let base = s.base.clone();
    let (t, d, j) = (
        talk.to_string_lossy().into_owned(),
        de.to_string_lossy().into_owned(),
        junk.to_string_lossy().into_owned(),
    );
    let sdk = tokio::task::spawn_blocking(move || run_py("openai_sdk.py", &[&base, &t, &d, &j]))
        .await
        .unwrap();
    assert_eq!(sdk.last().unwrap()["check"], "all_passed");
    let srt = sdk.iter().find(|c| c["check"] == "srt").unwrap();
    assert!(srt["srt"].as_str().unwrap().to_lowercase().contains("fox"));

    let base = s.base.clone();
    let t = talk.to_string_lossy().into_owned();
    let bazarr = tokio::task::spawn_blocking(move || run_py("bazarr.py", &[&base, &t]))
        .await
        .unwrap();
    assert_eq!(bazarr.last().unwrap()["check"], "all_passed");

    // Every accepted request is a job of the default profile, its audio a file there; the
    // refused ones (unknown model, not media, bad formats, empty/missing audio) left nothing.
    let jobs = list(&s, "/jobs?limit=1000", "default").await;
    let files = list(&s, "/profiles/files", "default").await;
    // SDK: json, text, srt, vtt, verbose_json ×2, translation, stream; requests: detect, srt,
    // Subgen json, txt, vtt, tsv.
    assert_eq!(jobs.len(), 14, "{jobs:?}");
    assert_eq!(files.len(), 14, "{files:?}");
    assert!(jobs.iter().all(|j| j["status"] == "succeeded"), "{jobs:?}");
    let detect: Vec<_> = jobs
        .iter()
        .filter(|j| j["type"] == "detect_language")
        .collect();
    assert_eq!(detect.len(), 1);
    assert_eq!(detect[0]["result"]["language_code"], "en");
    let folders: Vec<&str> = files.iter().filter_map(|f| f["folder"].as_str()).collect();
    assert_eq!(folders.iter().filter(|f| **f == "openai").count(), 8);
    assert_eq!(folders.iter().filter(|f| **f == "asr").count(), 6);
    // The detect-language job stored only whisper's 30-second window of the PCM (here the
    // whole, shorter clip) as a WAV file.
    assert!(
        files
            .iter()
            .any(|f| f["name"] == "audio_file.wav" && f["kind"] == "audio")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_hangs_up_cancels_its_job() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]).await;
    let text = "The history of the city begins with a small settlement by the river. Over many centuries it grew into a busy market town, and later into a large city with bridges and railways. ".repeat(6);
    let long = std::fs::read(speech(dir.path(), "long", &text)).unwrap();
    let (ct, body) = multipart(&[
        ("model", None, b"whisper-1"),
        ("file", Some("long.wav"), &long),
    ]);
    let url = s.url("/v1/audio/transcriptions");
    let req = tokio::spawn(async move {
        common::client()
            .post(url)
            .header("content-type", ct)
            .body(body)
            .send()
            .await
    });
    // Wait until whisper is working on it, then hang up.
    let t0 = Instant::now();
    let job = loop {
        let jobs = list(&s, "/jobs", "default").await;
        if let Some(j) = jobs
            .iter()
            .find(|j| j["status"] == "running" && j["stage"] == "transcribing")
        {
            break j.clone();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "never started: {jobs:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    req.abort();
    let hung_up = Instant::now();
    let id = job["id"].as_str().unwrap();
    let done = loop {
        let (_, j) = s.get(&format!("/jobs/{id}"), "default").await;
        if j["status"] != "running" && j["status"] != "queued" {
            break j;
        }
        assert!(
            hung_up.elapsed() < Duration::from_secs(5),
            "still running: {j}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let took = hung_up.elapsed();
    assert_eq!(done["status"], "cancelled", "{done}");
    assert!(
        took < Duration::from_secs(1),
        "cancelled {took:?} after the hang-up"
    );
    assert!(
        list(&s, "/profiles/transcripts", "default")
            .await
            .is_empty()
    );
    // The heavy lane is free: the next request runs at once.
    let talk = std::fs::read(speech(dir.path(), "talk", PANGRAM)).unwrap();
    let (ct, body) = multipart(&[
        ("model", None, b"whisper-1"),
        ("file", Some("t.wav"), &talk),
    ]);
    let r = common::client()
        .post(s.url("/v1/audio/transcriptions"))
        .header("content-type", ct)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.headers().get("x-job-id").is_some());
    let v: Value = r.json().await.unwrap();
    assert!(
        v["text"].as_str().unwrap().to_lowercase().contains("fox"),
        "{v}"
    );
}

/// OpenAI's error shape.
fn assert_openai_error(status: u16, v: &Value, want: u16) {
    assert_eq!(status, want, "{v}");
    let e = &v["error"];
    assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    assert!(
        e["type"].is_string() && e.get("param").is_some() && e.get("code").is_some(),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_on_every_new_route_is_refused_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[("MEDIAJOBS_MAX_UPLOAD_BYTES", "400000")]).await;
    let talk = std::fs::read(speech(dir.path(), "talk", "Short words.")).unwrap();
    assert!(talk.len() < 400_000);
    let big = vec![0u8; 500_000];
    let junk: Vec<u8> = (0..5000u32).map(|i| (i * 31 % 256) as u8).collect();
    let http = common::client();
    let send = |route: &str, ct: String, body: Vec<u8>| {
        let r = http
            .post(s.url(route))
            .header("content-type", ct)
            .body(body);
        async move { common::send(r).await }
    };
    for (route, field, openai) in [
        ("/v1/audio/transcriptions", "file", true),
        ("/v1/audio/translations", "file", true),
        ("/asr", "audio_file", false),
        ("/detect-language", "audio_file", false),
    ] {
        let check = |res: (u16, Value), want: u16, what: &str| {
            if openai {
                assert_openai_error(res.0, &res.1, want);
            } else {
                assert_eq!(res.0, want, "{route} {what}: {}", res.1);
                assert!(
                    res.1["detail"].as_str().is_some_and(|d| !d.is_empty()),
                    "{}",
                    res.1
                );
            }
        };
        let model: &[u8] = b"whisper-1";
        // No file.
        let (ct, body) = multipart(&[("model", None, model)]);
        check(
            send(route, ct, body).await,
            if openai { 400 } else { 422 },
            "no file",
        );
        // Empty file.
        let (ct, body) = multipart(&[("model", None, model), (field, Some("a.wav"), b"")]);
        check(
            send(route, ct, body).await,
            if openai { 400 } else { 422 },
            "empty",
        );
        // Unknown format.
        let (ct, body) = multipart(&[("model", None, model), (field, Some("a.xyz"), &junk)]);
        check(
            send(route, ct, body).await,
            if openai { 400 } else { 422 },
            "unknown format",
        );
        // Oversized.
        let (ct, body) = multipart(&[("model", None, model), (field, Some("a.wav"), &big)]);
        check(send(route, ct, body).await, 413, "oversized");
        // Malformed multipart: cut off in the middle of the file part.
        let (ct, body) = multipart(&[("model", None, model), (field, Some("a.wav"), &talk)]);
        check(
            send(route, ct, body[..body.len() / 2].to_vec()).await,
            400,
            "truncated",
        );
        // Not multipart at all.
        check(
            send(route, "application/json".into(), b"{}".to_vec()).await,
            400,
            "not multipart",
        );
    }
    // OpenAI-only refusals: unknown model, granularities without verbose_json, bad stream.
    for (fields, param) in [
        (vec![("model", "large-v9")], "model"),
        (
            vec![
                ("model", "whisper-1"),
                ("timestamp_granularities[]", "word"),
            ],
            "timestamp_granularities",
        ),
        (vec![("model", "whisper-1"), ("stream", "maybe")], "stream"),
        (
            vec![("model", "whisper-1"), ("language", "klingon")],
            "language",
        ),
    ] {
        let mut parts: Vec<(&str, Option<&str>, &[u8])> = fields
            .iter()
            .map(|(k, v)| (*k, None, v.as_bytes()))
            .collect();
        parts.push(("file", Some("t.wav"), &talk));
        let (ct, body) = multipart(&parts);
        let (st, v) = send("/v1/audio/transcriptions", ct, body).await;
        assert_openai_error(st, &v, 400);
        assert_eq!(v["error"]["param"], param, "{v}");
    }
    let (st, v) = common::send(http.get(s.url("/v1/nothing-here"))).await;
    assert_openai_error(st, &v, 404);
    // The OpenAPI document covers the new routes.
    let (st, doc) = common::send(http.get(s.url("/openapi.json"))).await;
    assert_eq!(st, 200);
    for path in [
        "/v1/audio/transcriptions",
        "/v1/audio/translations",
        "/v1/models",
        "/v1/models/{id}",
        "/asr",
        "/detect-language",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from /openapi.json"
        );
    }
    // Nothing was stored, no job was made, no temp file is left.
    assert!(list(&s, "/profiles/files", "default").await.is_empty());
    assert!(list(&s, "/jobs", "default").await.is_empty());
    let tmp: Vec<_> = std::fs::read_dir(dir.path().join("media/tmp/e2e-node"))
        .map(|d| d.collect())
        .unwrap_or_default();
    assert!(tmp.is_empty(), "{tmp:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_select_the_profile_on_the_compatible_routes() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = "alice-token-1=alice; admin-token-9=*; pair-token-5=bob,carol";
    let s = Server::start(dir.path(), &[("MEDIAJOBS_API_TOKENS", tokens)]).await;
    let talk = std::fs::read(speech(dir.path(), "talk", PANGRAM)).unwrap();
    let http = common::client();
    let models = |token: Option<&str>, profile: Option<&str>| {
        let mut r = http.get(s.url("/v1/models"));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        if let Some(p) = profile {
            r = r.header("X-Profile-ID", p);
        }
        common::send(r)
    };
    let (st, v) = models(None, None).await;
    assert_openai_error(st, &v, 401);
    assert_eq!(v["error"]["code"], "invalid_api_key");
    let (st, v) = models(Some("wrong-token-0"), None).await;
    assert_openai_error(st, &v, 401);
    assert_eq!(models(Some("alice-token-1"), None).await.0, 200);
    assert_eq!(models(Some("admin-token-9"), None).await.0, 200);
    // A token of several profiles (not the default one) needs the header…
    let (st, v) = models(Some("pair-token-5"), None).await;
    assert_openai_error(st, &v, 400);
    assert_eq!(models(Some("pair-token-5"), Some("carol")).await.0, 200);
    // …and never reaches another profile.
    let (st, v) = models(Some("pair-token-5"), Some("alice")).await;
    assert_openai_error(st, &v, 401);

    // The SDK's API key is alice's token: the job lands in alice's profile.
    let (ct, body) = multipart(&[
        ("model", None, b"whisper-1"),
        ("file", Some("t.wav"), &talk),
    ]);
    let r = http
        .post(s.url("/v1/audio/transcriptions"))
        .bearer_auth("alice-token-1")
        .header("content-type", ct)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let job_id = r.headers()["x-job-id"].to_str().unwrap().to_owned();
    let (st, job) = common::send(
        http.get(s.url(&format!("/jobs/{job_id}")))
            .bearer_auth("alice-token-1")
            .header("X-Profile-ID", "alice"),
    )
    .await;
    assert_eq!(st, 200, "{job}");
    assert_eq!(job["status"], "succeeded");
    // /asr without a token is refused in its own shape.
    let (ct, body) = multipart(&[("audio_file", Some("audio_file"), &talk)]);
    let (st, v) = common::send(
        http.post(s.url("/asr"))
            .header("content-type", ct)
            .body(body),
    )
    .await;
    assert_eq!(st, 401, "{v}");
    assert!(v["detail"].is_string(), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_multipart_uploads_formats_and_header_errors() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]).await;
    let p = "formats";
    let talk = speech(dir.path(), "talk", PANGRAM);

    // curl -F file=@talk.wav: named by the part's file name.
    let out = std::process::Command::new("curl")
        .args([
            "-s",
            "-w",
            "\n%{http_code}",
            "-H",
            &format!("X-Profile-ID: {p}"),
            "-F",
        ])
        .arg(format!("file=@{}", talk.display()))
        .arg(s.url("/profiles/files"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let (body, code) = text.rsplit_once('\n').unwrap();
    assert_eq!(code, "201", "{body}");
    let file: Value = serde_json::from_str(body).unwrap();
    assert_eq!(file["name"], "talk.wav");
    assert_eq!(file["kind"], "audio");
    let fid = file["id"].as_str().unwrap().to_owned();
    // A multipart form without a file part, and header errors: 400.
    let (ct, body) = multipart(&[("other", None, b"x")]);
    let r = s
        .req(reqwest::Method::POST, "/profiles/files", p)
        .header("content-type", ct)
        .body(body);
    assert_error(&common::send(r).await, 400, "BadRequest");
    assert_error(
        &common::send(common::client().get(s.url("/profiles/files"))).await,
        400,
        "BadRequest",
    );

    // A transcript in every format.
    let job = s
        .submit(p, json!({"type": "transcribe", "file_id": fid}))
        .await;
    let job = s
        .wait(p, job["id"].as_str().unwrap(), Duration::from_secs(120))
        .await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let tid = job["result"]["transcript_id"].as_str().unwrap().to_owned();
    let get = |path: String| {
        let r = s.req(reqwest::Method::GET, &path, p);
        async move {
            let r = r.send().await.unwrap();
            let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
            (r.status().as_u16(), ct, r.text().await.unwrap())
        }
    };
    let (st, ct, srt) = get(format!("/profiles/transcripts/{tid}?format=srt")).await;
    assert_eq!(
        (st, ct.as_str()),
        (200, "application/x-subrip; charset=utf-8")
    );
    assert!(
        srt.starts_with("1\n00:00:00,") && srt.to_lowercase().contains("fox"),
        "{srt}"
    );
    let (_, ct, vtt) = get(format!("/profiles/transcripts/{tid}?format=vtt")).await;
    assert!(
        ct.starts_with("text/vtt") && vtt.starts_with("WEBVTT\n"),
        "{vtt}"
    );
    let (_, _, txt) = get(format!("/profiles/transcripts/{tid}?format=txt")).await;
    assert!(txt.to_lowercase().contains("lazy dog"), "{txt}");
    let (_, _, tsv) = get(format!("/profiles/transcripts/{tid}?format=tsv")).await;
    assert!(tsv.starts_with("start\tend\ttext\n"), "{tsv}");
    let (_, ct, json_doc) = get(format!("/profiles/transcripts/{tid}?format=json")).await;
    assert!(ct.starts_with("application/json"));
    assert_eq!(
        serde_json::from_str::<Value>(&json_doc).unwrap()["id"],
        tid.as_str()
    );
    assert_error(
        &s.get(&format!("/profiles/transcripts/{tid}?format=docx"), p)
            .await,
        422,
        "ValidationError",
    );

    // generate_srt saving WebVTT; the file converts back to SRT on the fly.
    let job = s
        .submit(p, json!({"type": "generate_srt", "file_id": fid, "opts": {"format": "vtt", "language": "en"}}))
        .await;
    let job = s
        .wait(p, job["id"].as_str().unwrap(), Duration::from_secs(120))
        .await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["result"]["format"], "vtt");
    assert!(
        job["result"]["srt_content"]
            .as_str()
            .unwrap()
            .starts_with("WEBVTT")
    );
    let vid = job["result"]["srt_file_id"].as_str().unwrap().to_owned();
    let (_, vf) = s.get(&format!("/profiles/files/{vid}"), p).await;
    assert_eq!(vf["name"], "talk.vtt");
    let raw =
        String::from_utf8(s.bytes(&format!("/profiles/files/{vid}/content"), p).await).unwrap();
    assert!(raw.starts_with("WEBVTT"));
    let (st, ct, as_srt) = get(format!("/profiles/files/{vid}/content?format=srt")).await;
    assert_eq!(st, 200);
    assert!(ct.starts_with("application/x-subrip"));
    assert!(
        as_srt.starts_with("1\n00:00:") && as_srt.contains(" --> "),
        "{as_srt}"
    );
    let (_, _, as_json) = get(format!("/profiles/files/{vid}/content?format=json")).await;
    assert!(
        !serde_json::from_str::<Value>(&as_json).unwrap()["cues"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    // format= on audio is the wrong kind; a bad format value is refused.
    assert_error(
        &s.get(&format!("/profiles/files/{fid}/content?format=srt"), p)
            .await,
        422,
        "WrongFileKind",
    );
    assert_error(
        &s.post(
            "/jobs",
            p,
            json!({"type": "generate_srt", "file_id": fid, "opts": {"format": "ass"}}),
        )
        .await,
        422,
        "ValidationError",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn language_detection_runs_next_on_the_heavy_lane() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]).await;
    let p = "default";
    let text = "The history of the city begins with a small settlement by the river. Over many centuries it grew into a busy market town. ".repeat(2);
    let audio = std::fs::read(speech(dir.path(), "a", &text)).unwrap();
    let mut queued = Vec::new();
    for i in 0..3 {
        let f = s.upload(p, &format!("part{i}.wav"), audio.clone()).await;
        let j = s
            .submit(p, json!({"type": "transcribe", "file_id": f["id"]}))
            .await;
        queued.push(j["id"].as_str().unwrap().to_owned());
    }
    s.wait_status(p, &queued[0], "running").await;
    let talk = std::fs::read(speech(dir.path(), "talk", PANGRAM)).unwrap();
    let (ct, body) = multipart(&[("audio_file", Some("audio_file"), &talk)]);
    let t0 = Instant::now();
    let (st, v) = common::send(
        common::client()
            .post(s.url("/detect-language"))
            .header("content-type", ct)
            .body(body),
    )
    .await;
    let waited = t0.elapsed();
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["language_code"], "en");
    let mut jobs = Vec::new();
    for id in &queued {
        jobs.push(s.wait(p, id, Duration::from_secs(300)).await);
    }
    let detect = list(&s, "/jobs?type=detect_language", p).await;
    assert_eq!(detect.len(), 1);
    let started = |j: &Value| j["started_at"].as_str().unwrap().to_owned();
    // It ran after the job that was running (never preempted: one attempt, succeeded) and
    // before the two that were queued ahead of it.
    assert_eq!(
        (jobs[0]["status"].as_str(), jobs[0]["attempts"].as_i64()),
        (Some("succeeded"), Some(1))
    );
    assert!(started(&detect[0]) > started(&jobs[0]));
    assert!(
        started(&detect[0]) < started(&jobs[1]),
        "{detect:?} {jobs:?}"
    );
    assert!(started(&detect[0]) < started(&jobs[2]));
    assert!(jobs[1]["finished_at"].as_str().unwrap() > detect[0]["finished_at"].as_str().unwrap());
    println!("detect-language answered in {waited:?} behind one running transcription");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_sends_each_segment_as_whisper_decodes_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]).await;
    // Three 30-second windows of speech: whisper finishes a window's segments long before
    // the last window is decoded.
    let text = "The history of the city begins with a small settlement by the river. Over many centuries it grew into a busy market town, and later into a large city with bridges and railways. ".repeat(6);
    let long = std::fs::read(speech(dir.path(), "long", &text)).unwrap();
    let (ct, body) = multipart(&[
        ("model", None, b"whisper-1"),
        ("stream", None, b"true"),
        ("file", Some("long.wav"), &long),
    ]);
    let t0 = Instant::now();
    let mut r = common::client()
        .post(s.url("/v1/audio/transcriptions"))
        .header("content-type", ct)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let (mut buf, mut first_delta, mut done_at) = (String::new(), None, None);
    while let Some(chunk) = r.chunk().await.unwrap() {
        buf.push_str(&String::from_utf8_lossy(&chunk));
        if first_delta.is_none() && buf.contains("transcript.text.delta") {
            first_delta = Some(t0.elapsed());
        }
        if buf.contains("transcript.text.done") {
            done_at = Some(t0.elapsed());
        }
    }
    let events: Vec<Value> = buf
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let deltas: String = events
        .iter()
        .filter(|e| e["type"] == "transcript.text.delta")
        .map(|e| e["delta"].as_str().unwrap())
        .collect();
    let done = events.last().unwrap();
    assert_eq!(done["type"], "transcript.text.done", "{buf}");
    assert_eq!(deltas.trim(), done["text"].as_str().unwrap().trim());
    let (first, end) = (first_delta.unwrap(), done_at.unwrap());
    println!("first delta after {first:?}, done after {end:?}");
    assert!(
        first + Duration::from_secs(1) < end,
        "deltas arrive while whisper works: first {first:?}, done {end:?}"
    );
}
