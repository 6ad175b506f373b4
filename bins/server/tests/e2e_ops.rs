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

const CUES: &str = "1\r\n00:00:01,000 --> 00:00:02,500\r\nÇa va, Zoë? Très bien.\r\n\r\n2\r\n00:00:03,000 --> 00:00:04,000\r\nDéjà vu — encore.\r\n";

fn utf16(s: &str, le: bool, bom: bool) -> Vec<u8> {
    let mut out = Vec::new();
    if bom {
        out.extend_from_slice(if le { &[0xFF, 0xFE] } else { &[0xFE, 0xFF] });
    }
    for u in s.encode_utf16() {
        out.extend_from_slice(&if le { u.to_le_bytes() } else { u.to_be_bytes() });
    }
    out
}

/// Subtitles saved by desktop tools in Windows-1252, Latin-1 or UTF-16 are accepted, stored
/// as UTF-8 and served as such; the record keeps the original encoding. Bytes that are no
/// text in any encoding are still refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_encoded_subtitles_are_stored_as_utf8() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]).await;
    let cp1252: Vec<u8> = CUES
        .chars()
        .map(|c| match c {
            '—' => 0x97,
            c => u8::try_from(u32::from(c)).unwrap(),
        })
        .collect();
    let latin1: Vec<u8> = CUES
        .replace('—', "-")
        .chars()
        .map(|c| u8::try_from(u32::from(c)).unwrap())
        .collect();
    let cases: Vec<(&str, Vec<u8>, &str, String)> = vec![
        (
            "utf8.srt",
            CUES.as_bytes().to_vec(),
            "UTF-8",
            CUES.to_owned(),
        ),
        ("cp1252.srt", cp1252, "windows-1252", CUES.to_owned()),
        ("latin1.srt", latin1, "windows-1252", CUES.replace('—', "-")),
        (
            "utf16le.srt",
            utf16(CUES, true, true),
            "UTF-16LE",
            CUES.to_owned(),
        ),
        (
            "utf16be.srt",
            utf16(CUES, false, false),
            "UTF-16BE",
            CUES.to_owned(),
        ),
    ];
    for (name, bytes, encoding, text) in cases {
        let f = s.upload("p", name, bytes).await;
        assert_eq!(f["kind"], "subtitle", "{name}: {f}");
        assert_eq!(f["source_encoding"], encoding, "{name}");
        let stored = s
            .bytes(&format!("/profiles/files/{}/content", id(&f)), "p")
            .await;
        assert_eq!(String::from_utf8(stored.clone()).unwrap(), text, "{name}");
        assert_eq!(
            f["size_bytes"],
            stored.len(),
            "{name}: the record describes the stored bytes"
        );
        let vtt = s
            .bytes(
                &format!("/profiles/files/{}/content?format=vtt", id(&f)),
                "p",
            )
            .await;
        let vtt = String::from_utf8(vtt).unwrap();
        assert!(
            vtt.starts_with("WEBVTT") && vtt.contains("Zoë"),
            "{name}: {vtt}"
        );
    }
    let res = s
        .upload_raw(
            "p",
            "binary.srt",
            b"\x1aE\xdf\xa3\x00\x00\x01\x02junk".to_vec(),
            "",
        )
        .await;
    assert_error(&res, 422, "MediaDecode");
}

/// `GET /profiles/files` and `/profiles/transcripts` page like `/jobs` (newest first,
/// `limit`, `before` = the last id) and filter by kind, origin, source file or file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_and_transcript_lists_page() {
    let dir = tempfile::tempdir().unwrap();
    let media = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]).await;
    let mut subs = Vec::new();
    for i in 0..3 {
        let f = s
            .upload("p", &format!("s{i}.srt"), CUES.as_bytes().to_vec())
            .await;
        subs.push(id(&f));
    }
    let wav = common::speech(media.path(), "hi", "Hello there, how are you?");
    let audio = s.upload("p", "hi.wav", std::fs::read(&wav).unwrap()).await;
    let ids = |v: &Value| -> Vec<String> { v.as_array().unwrap().iter().map(id).collect() };
    let (st, page1) = s.get("/profiles/files?limit=2", "p").await;
    assert_eq!(st, 200, "{page1}");
    assert_eq!(ids(&page1), vec![id(&audio), subs[2].clone()]);
    let (_, page2) = s
        .get(&format!("/profiles/files?limit=2&before={}", subs[2]), "p")
        .await;
    assert_eq!(ids(&page2), vec![subs[1].clone(), subs[0].clone()]);
    let (_, end) = s
        .get(&format!("/profiles/files?before={}", subs[0]), "p")
        .await;
    assert_eq!(ids(&end), Vec::<String>::new());
    let (_, only) = s.get("/profiles/files?kind=audio", "p").await;
    assert_eq!(ids(&only), vec![id(&audio)]);
    let (_, none) = s.get("/profiles/files?origin=generated", "p").await;
    assert_eq!(ids(&none), Vec::<String>::new());

    let j = s
        .submit("p", json!({"type": "generate_srt", "file_id": id(&audio)}))
        .await;
    let done = s
        .wait("p", &id(&j), std::time::Duration::from_secs(120))
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let (_, made) = s
        .get(
            &format!("/profiles/files?source_file_id={}", id(&audio)),
            "p",
        )
        .await;
    assert_eq!(made.as_array().unwrap().len(), 1, "{made}");
    assert_eq!(made[0]["origin"], "generated");
    let (_, generated) = s
        .get("/profiles/files?origin=generated&kind=subtitle", "p")
        .await;
    assert_eq!(ids(&generated), ids(&made));
    let j = s
        .submit("p", json!({"type": "transcribe", "file_id": id(&audio)}))
        .await;
    let done = s
        .wait("p", &id(&j), std::time::Duration::from_secs(120))
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let (_, ts) = s
        .get(
            &format!("/profiles/transcripts?file_id={}", id(&audio)),
            "p",
        )
        .await;
    assert_eq!(ts.as_array().unwrap().len(), 1, "{ts}");
    let (_, ts_none) = s
        .get(&format!("/profiles/transcripts?file_id={}", subs[0]), "p")
        .await;
    assert_eq!(ts_none.as_array().unwrap().len(), 0);
    let (_, ts_past) = s
        .get(&format!("/profiles/transcripts?before={}", id(&ts[0])), "p")
        .await;
    assert_eq!(ts_past.as_array().unwrap().len(), 0);

    for bad in [
        "/profiles/files?limit=0",
        "/profiles/files?limit=1001",
        "/profiles/files?kind=poster",
        "/profiles/files?origin=stolen",
        "/profiles/files?color=red",
        "/profiles/transcripts?limit=0",
    ] {
        assert_error(&s.get(bad, "p").await, 422, "ValidationError");
    }
    // A cursor from another profile (or none at all) is refused, not an empty page.
    let other = s.upload("q", "o.srt", CUES.as_bytes().to_vec()).await;
    for bad in [
        format!("/profiles/files?before={}", id(&other)),
        format!("/profiles/transcripts?before={}", id(&other)),
    ] {
        assert_error(&s.get(&bad, "p").await, 422, "ValidationError");
    }
}

/// Every response carries `x-request-id` (the client's, or a fresh UUID), and the request's
/// log lines carry it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_on_responses_and_in_logs() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]).await;
    let http = common::client();
    let r = http.get(s.url("/health")).send().await.unwrap();
    let generated = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(uuid::Uuid::parse_str(&generated).is_ok(), "{generated}");
    let r = http
        .get(s.url(&format!("/jobs/{}", uuid::Uuid::now_v7())))
        .header("X-Profile-ID", "p")
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["x-request-id"], "trace-me-42");
    let mut found = false;
    for _ in 0..50 {
        let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap();
        if log
            .lines()
            .any(|l| l.contains("request_id=trace-me-42") && l.contains("/jobs/"))
        {
            found = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(found, "no log line of the request carries its id");
    // A link's path (its capability) is not logged.
    let r = http
        .get(s.url("/links/secret-ticket-value"))
        .header("x-request-id", "link-request")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let mut seen = false;
    for _ in 0..50 {
        let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap();
        assert!(!log.contains("secret-ticket-value"), "{log}");
        if log.contains("request_id=link-request") {
            seen = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(seen, "the link request was not logged at all");
}

/// `generate_srt` on silence succeeds with an empty, valid SRT and `cues: 0` (whisper alone
/// would write a `[BLANK_AUDIO]` cue); `transcribe` gives an empty transcript.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silence_gives_an_empty_srt() {
    let dir = tempfile::tempdir().unwrap();
    let media = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]).await;
    let wav = media.path().join("quiet.wav");
    common::run(
        std::process::Command::new("gst-launch-1.0")
            .args(["-q", "audiotestsrc", "wave=silence", "num-buffers=300"])
            .args([
                "!",
                "audio/x-raw,rate=16000,channels=1",
                "!",
                "wavenc",
                "!",
                "filesink",
            ])
            .arg(format!("location={}", wav.display())),
    );
    let f = s
        .upload("p", "quiet.wav", std::fs::read(&wav).unwrap())
        .await;
    assert_eq!(f["kind"], "audio", "{f}");
    let j = s
        .submit("p", json!({"type": "generate_srt", "file_id": id(&f)}))
        .await;
    let done = s
        .wait("p", &id(&j), std::time::Duration::from_secs(120))
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["result"]["cues"], 0, "{done}");
    assert_eq!(done["result"]["srt_content"], "", "{done}");
    let srt_id = done["result"]["srt_file_id"].as_str().unwrap().to_owned();
    let vtt = s
        .bytes(&format!("/profiles/files/{srt_id}/content?format=vtt"), "p")
        .await;
    assert!(String::from_utf8(vtt).unwrap().starts_with("WEBVTT"));
    let j = s
        .submit(
            "p",
            json!({"type": "transcribe", "file_id": id(&f), "dedupe": false}),
        )
        .await;
    let done = s
        .wait("p", &id(&j), std::time::Duration::from_secs(120))
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["result"]["transcript"], "", "{done}");
}
