//! Models end to end: the real binary with a model directory of two real models (`tiny.en`
//! and `base`), jobs that pick their model, `GET /models`, the OpenAI API's `model`, two
//! transcriptions at once at `HEAVY_CONCURRENCY=2`, and the `mediajobs model` commands.
#![allow(clippy::unwrap_used)]
mod common;

use std::path::Path;
use std::time::Duration;

use common::{Server, assert_error};
use serde_json::{Value, json};

const P: &str = "models";
const MIN: Duration = Duration::from_secs(60);

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

async fn model_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for name in ["tiny.en", "base"] {
        let real = mediajobs_processor::model::ensure_model(&common::models_dir(), name)
            .await
            .unwrap();
        std::os::unix::fs::symlink(
            real,
            mediajobs_processor::model::model_path(dir.path(), name),
        )
        .unwrap();
    }
    dir
}

fn model<'a>(list: &'a Value, name: &str) -> &'a Value {
    list["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in {list}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_pick_their_model_and_two_run_at_once() {
    let data = tempfile::tempdir().unwrap();
    let models = model_dir().await;
    let media = tempfile::tempdir().unwrap();
    let s = Server::start(
        data.path(),
        &[
            ("MEDIAJOBS_MODELS_DIR", models.path().to_str().unwrap()),
            ("MEDIAJOBS_HEAVY_CONCURRENCY", "2"),
            ("MEDIAJOBS_WHISPER_THREADS", "1"),
        ],
    )
    .await;

    // The installed models; the default one is loaded at start, the other is not.
    let (st, list) = s.get("/models", P).await;
    assert_eq!(st, 200, "{list}");
    assert_eq!(list["backend"], "whisper.cpp");
    assert_eq!(list["compute"], "cpu");
    assert_eq!(list["default"], "base");
    let names: Vec<&str> = list["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["base", "tiny.en"]);
    let base = model(&list, "base");
    assert_eq!(base["loaded"], true);
    assert_eq!(base["default"], true);
    assert_eq!(base["multilingual"], true);
    assert_eq!(base["size_class"], "base");
    assert_eq!(base["weights"], "f16");
    assert!(base["quantization"].is_null());
    assert!(base["languages"].as_array().unwrap().len() > 90);
    let tiny = model(&list, "tiny.en");
    assert_eq!(tiny["loaded"], false);
    assert!(tiny["last_used"].is_null());
    assert_eq!(tiny["languages"], json!(["en"]));

    let wav = common::speech(media.path(), "speech", common::SPEECH);
    let f = s
        .upload(P, "speech.wav", std::fs::read(&wav).unwrap())
        .await;

    // A job on tiny.en: loaded on demand; the job records the model it ran on.
    let j = s
        .submit(
            P,
            json!({"type": "transcribe", "file_id": id(&f), "opts": {"model": "tiny.en"}}),
        )
        .await;
    let done = s.wait(P, &id(&j), MIN).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert!(
        done["result"]["transcript"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("committee"),
        "{done}"
    );
    assert_eq!(done["params"]["opts"]["model"], "tiny.en", "{done}");
    let (_, list) = s.get("/models", P).await;
    let tiny = model(&list, "tiny.en");
    assert_eq!(tiny["loaded"], true);
    assert!(tiny["last_used"].is_string(), "{tiny}");

    // A job that names none runs on (and records) the default.
    let j = s
        .submit(P, json!({"type": "generate_srt", "file_id": id(&f)}))
        .await;
    assert_eq!(j["params"]["opts"]["model"], "base", "{j}");
    assert_eq!(s.wait(P, &id(&j), MIN).await["status"], "succeeded");

    // A model that is not installed is refused at submission, with the list.
    let res = s
        .post(
            "/jobs",
            P,
            json!({"type": "generate_srt", "file_id": id(&f), "opts": {"model": "large-v3"}}),
        )
        .await;
    assert_error(&res, 422, "UnknownModel");
    let msg = res.1["error"]["message"].as_str().unwrap();
    assert!(msg.contains("base, tiny.en"), "{msg}");
    let res = s
        .post(
            "/jobs/batch",
            P,
            json!({"type": "batch_transcribe", "file_ids": [id(&f)], "opts": {"model": "nope"}}),
        )
        .await;
    assert_error(&res, 422, "UnknownModel");

    // The OpenAI API takes any installed model's name (and whisper-1 for the default).
    let (_, models) = s.get("/v1/models", P).await;
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["whisper-1", "base", "tiny.en"]);
    let audio = std::fs::read(&wav).unwrap();
    let r = s
        .post_form(
            "/v1/audio/transcriptions",
            P,
            &[
                ("model", None, b"tiny.en"),
                ("response_format", None, b"json"),
                ("file", Some("speech.wav"), &audio),
            ],
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let job_id = r.headers()["x-job-id"].to_str().unwrap().to_owned();
    let v: Value = r.json().await.unwrap();
    assert!(
        v["text"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("committee"),
        "{v}"
    );
    let (_, job) = s.get(&format!("/jobs/{job_id}"), P).await;
    assert_eq!(job["params"]["opts"]["model"], "tiny.en", "{job}");

    // HEAVY_CONCURRENCY=2: two transcriptions run at the same time.
    let long = common::speech(media.path(), "long", &[common::SPEECH; 4].join(" "));
    let fl = s.upload(P, "long.wav", std::fs::read(&long).unwrap()).await;
    let a = s
        .submit(
            P,
            json!({"type": "transcribe", "file_id": id(&fl), "dedupe": false}),
        )
        .await;
    let b = s
        .submit(
            P,
            json!({"type": "transcribe", "file_id": id(&fl), "dedupe": false}),
        )
        .await;
    let a = s.wait(P, &id(&a), MIN).await;
    let b = s.wait(P, &id(&b), MIN).await;
    for j in [&a, &b] {
        assert_eq!(j["status"], "succeeded", "{j}");
    }
    let t =
        |j: &Value, k: &str| chrono::DateTime::parse_from_rfc3339(j[k].as_str().unwrap()).unwrap();
    assert!(
        t(&a, "started_at") < t(&b, "finished_at") && t(&b, "started_at") < t(&a, "finished_at"),
        "the two ran one after the other: {a} {b}"
    );
    drop(s);
}

async fn mediajobs(args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_mediajobs"))
        .args(args)
        .output()
        .await
        .unwrap()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_commands_list_quantize_and_remove() {
    let dir = tempfile::tempdir().unwrap();
    let real = mediajobs_processor::model::ensure_model(&common::models_dir(), "tiny.en")
        .await
        .unwrap();
    std::os::unix::fs::symlink(&real, dir.path().join("ggml-tiny.en.bin")).unwrap();
    // Any ggml-*.bin counts, catalogue name or not.
    std::os::unix::fs::symlink(&real, dir.path().join("ggml-my-finetune.bin")).unwrap();

    let list = |out: std::process::Output| -> Vec<Value> {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let rows = list(mediajobs(&["model", "list", "--json", "--dir", p(dir.path())]).await);
    let row = |rows: &[Value], n: &str| rows.iter().find(|r| r["name"] == n).cloned();
    assert_eq!(
        rows.len(),
        42,
        "40 catalogue names, the local one and the VAD model"
    );
    let vad = row(&rows, "silero-v6.2.3").unwrap();
    assert_eq!(
        (&vad["kind"], &vad["installed"]),
        (&json!("vad"), &json!(false))
    );
    assert_eq!(row(&rows, "tiny.en").unwrap()["installed"], true);
    assert_eq!(row(&rows, "base").unwrap()["installed"], false);
    assert_eq!(row(&rows, "base").unwrap()["source"], "pypi");
    assert_eq!(row(&rows, "small").unwrap()["source"], "upstream");
    assert_eq!(
        row(&rows, "small").unwrap()["sha1"],
        "55356645c2b361a969dfd0ef2c5a50d530afd8d5"
    );
    assert_eq!(
        row(&rows, "tiny.en-q5_0").unwrap()["source"],
        "pypi+quantize"
    );
    assert_eq!(
        row(&rows, "small-q5_0").unwrap()["source"],
        "upstream+quantize"
    );
    assert_eq!(row(&rows, "my-finetune").unwrap()["source"], "local");
    // The table form names the directory.
    let out = mediajobs(&["model", "list", "--dir", p(dir.path())]).await;
    assert!(String::from_utf8_lossy(&out.stdout).contains("large-v3-turbo-q5_0"));

    let out = mediajobs(&[
        "model",
        "quantize",
        "tiny.en",
        "q8_0",
        "--dir",
        p(dir.path()),
    ])
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = list(mediajobs(&["model", "list", "--json", "--dir", p(dir.path())]).await);
    let q = row(&rows, "tiny.en-q8_0").unwrap();
    assert_eq!(q["installed"], true);
    assert!(q["size_bytes"].as_u64().unwrap() < 50 << 20, "{q}");

    let out = mediajobs(&["model", "rm", "tiny.en-q8_0", "--dir", p(dir.path())]).await;
    assert!(out.status.success());
    assert!(!dir.path().join("ggml-tiny.en-q8_0.bin").exists());
    let out = mediajobs(&["model", "rm", "tiny.en-q8_0", "--dir", p(dir.path())]).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no model 'tiny.en-q8_0'"));
    let out = mediajobs(&["model", "fetch", "huge", "--dir", p(dir.path())]).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not in the catalogue"));
    let out = mediajobs(&["model", "quantize", "nope", "q8_0", "--dir", p(dir.path())]).await;
    assert!(!out.status.success());

    // The VAD model: from PyPI's silero-vad, converted; listed as a VAD model, never as a
    // whisper model.
    let out = mediajobs(&["model", "fetch", "silero-vad", "--dir", p(dir.path())]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("ggml-silero-v6.2.3.bin").is_file());
    let rows = list(mediajobs(&["model", "list", "--json", "--dir", p(dir.path())]).await);
    let vad = row(&rows, "silero-v6.2.3").unwrap();
    assert_eq!(vad["installed"], true, "{vad}");
    assert_eq!(vad["version"], "6.2.3", "{vad}");
    assert_eq!(
        rows.iter().filter(|r| r["name"] == "silero-v6.2.3").count(),
        1
    );
}
