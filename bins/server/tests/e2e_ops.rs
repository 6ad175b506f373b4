//! End-to-end operator checks (issue 16): readiness and refusing what cannot work at
//! submission.
#![allow(clippy::unwrap_used)]
mod common;

use common::{Server, assert_error};
use serde_json::{Value, json};

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

/// `/ready` answers 200 with its checks when the server can run jobs, and 503 `NotReady`
/// naming the failing check when the model is missing; `/health` is liveness either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_reports_each_check() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]).await;
    let (st, v) = s.get("/ready", "p").await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["status"], "ready");
    assert_eq!(v["checks"]["database"]["ok"], true);
    assert_eq!(v["checks"]["transcription"]["ok"], true);
    drop(s);

    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(
        dir.path(),
        &[("MEDIAJOBS_WHISPER_MODEL", "/nonexistent/ggml-none.bin")],
    )
    .await;
    let res = s.get("/ready", "p").await;
    assert_error(&res, 503, "NotReady");
    let details = &res.1["error"]["details"];
    assert_eq!(details["database"]["ok"], true, "{details}");
    assert_eq!(details["transcription"]["ok"], false);
    assert!(
        res.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("transcription")
    );
    let (st, _) = s.get("/health", "p").await;
    assert_eq!(st, 200, "liveness stays up");
}

/// A video without an audio stream is refused at submission for transcription
/// (`NoAudioStream`), each such member of a batch listed; it still converts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_video_is_refused_at_submission() {
    let dir = tempfile::tempdir().unwrap();
    let media = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]).await;
    let silent = common::silent_video(media.path(), "silent", 2);
    let wav = common::speech(media.path(), "hi", "Hello there.");
    let talk = common::video_with(media.path(), "talk", &wav, 2);
    let fs = s
        .upload("p", "silent.webm", std::fs::read(&silent).unwrap())
        .await;
    assert_eq!(fs["kind"], "video", "{fs}");
    let ft = s
        .upload("p", "talk.webm", std::fs::read(&talk).unwrap())
        .await;
    for t in ["generate_srt", "transcribe"] {
        let res = s
            .post("/jobs", "p", json!({"type": t, "file_id": id(&fs)}))
            .await;
        assert_error(&res, 422, "NoAudioStream");
        assert_eq!(res.1["error"]["details"]["file_id"], fs["id"]);
    }
    let res = s
        .post(
            "/jobs/batch",
            "p",
            json!({"type": "batch_transcribe", "file_ids": [id(&ft), id(&fs)]}),
        )
        .await;
    assert_error(&res, 422, "NoAudioStream");
    let members = res.1["error"]["details"]["files"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(members.len(), 1, "{res:?}");
    assert_eq!(members[0]["file_id"], fs["id"]);
    assert_eq!(members[0]["code"], "NoAudioStream");
    let (_, jobs) = s.get("/jobs", "p").await;
    assert_eq!(jobs.as_array().unwrap().len(), 0, "nothing was queued");
    // Conversion does not need sound.
    let j = s
        .submit("p", json!({"type": "convert", "file_id": id(&fs)}))
        .await;
    assert_eq!(j["status"], "queued");
}
