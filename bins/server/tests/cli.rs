//! The real `mediajobs` client binary against a real server: submit (upload, follow over
//! SSE, save outputs by extension, batches), exit statuses and error codes, `jobs …` and
//! `files …` with `--json`, and following through a server restart.
#![allow(clippy::unwrap_used)]
mod common;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use common::Server;
use serde_json::Value;

/// Runs the client with the server's URL and a profile from the environment (as scripts
/// would set them).
async fn cli(s: &Server, args: &[&str]) -> Output {
    cli_at(&s.base, args).await
}

async fn cli_at(base: &str, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_mediajobs"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("MEDIAJOBS_URL", base)
        .env("MEDIAJOBS_PROFILE", "cli")
        .kill_on_drop(true)
        .output()
        .await
        .unwrap()
}

fn ok(o: &Output) -> Value {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap_or(Value::Null)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// `submit` follows the job and writes the transcript in the format its extension names;
/// several files are one batch whose outputs land in a directory; `--json` prints the job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_follows_and_saves_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let media = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]).await;
    let wav = common::speech(
        media.path(),
        "hello",
        "Hello world. This is a test of the command line client. The quick brown fox jumps over the lazy dog.",
    );
    let out = media.path().join("hello.txt");
    let o = cli(
        &s,
        &[
            "submit",
            p(&wav),
            "--type",
            "transcribe",
            "--output",
            p(&out),
        ],
    )
    .await;
    ok(&o);
    let text = std::fs::read_to_string(&out).unwrap().to_lowercase();
    assert!(text.contains("fox") && text.contains("lazy dog"), "{text}");
    assert!(stderr(&o).contains("succeeded"), "{}", stderr(&o));

    // The same audio again: the result is reused; the other formats by extension.
    for (name, check) in [
        ("hello.srt", "-->"),
        ("hello.vtt", "WEBVTT"),
        ("hello.json", "\"segments\""),
    ] {
        let out = media.path().join(name);
        ok(&cli(
            &s,
            &["submit", p(&wav), "--type", "transcribe", "-o", p(&out)],
        )
        .await);
        let body = std::fs::read_to_string(&out).unwrap();
        assert!(body.contains(check), "{name}: {body}");
    }
    // A bad extension is refused before anything is uploaded.
    let o = cli(
        &s,
        &["submit", p(&wav), "--type", "transcribe", "-o", "x.docx"],
    )
    .await;
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains(".txt, .json, .srt or .vtt"),
        "{}",
        stderr(&o)
    );

    // Two files: one batch; its SRTs saved by input name into the directory.
    let wav2 = common::speech(media.path(), "bye", common::SPEECH);
    let outdir = media.path().join("subs");
    let v = ok(&cli(
        &s,
        &[
            "submit",
            p(&wav),
            p(&wav2),
            "--type",
            "generate_srt",
            "-o",
            p(&outdir),
            "--json",
        ],
    )
    .await);
    assert_eq!(v["type"], "batch_generate_srt", "{v}");
    assert_eq!(v["status"], "succeeded");
    assert_eq!(v["result"]["succeeded"], 2);
    for f in ["hello.srt", "bye.srt"] {
        let srt = std::fs::read_to_string(outdir.join(f)).unwrap();
        assert!(srt.contains("-->"), "{f}: {srt}");
    }
    assert_eq!(v["saved"].as_array().unwrap().len(), 2);

    // convert: the MP4 is streamed to disk.
    let webm = common::video_with(media.path(), "hello", &wav, 3);
    let mp4 = media.path().join("hello.mp4");
    ok(&cli(
        &s,
        &["submit", p(&webm), "--type", "convert", "-o", p(&mp4)],
    )
    .await);
    let probe = common::ffprobe(&mp4);
    let codecs: Vec<&str> = probe["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|st| st["codec_name"].as_str().unwrap())
        .collect();
    assert!(
        codecs.contains(&"h264") && codecs.contains(&"aac"),
        "{probe}"
    );
}

/// A job that fails exits 2 naming its error code; a refused submission exits 1 naming the
/// API's code; `jobs` and `files` manage what is there, with `--json` for scripts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_exit_nonzero_and_jobs_files_commands() {
    let dir = tempfile::tempdir().unwrap();
    let media = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]).await;
    let long = common::speech(
        media.path(),
        "long",
        "This sentence is long enough that transcribing it takes more than one second on \
         this machine, so the deadline of one second passes while whisper is still working \
         through the audio, and the job fails with its timeout code.",
    );
    let o = cli(
        &s,
        &[
            "submit",
            p(&long),
            "--type",
            "transcribe",
            "--timeout-seconds",
            "1",
            "--no-dedupe",
        ],
    )
    .await;
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("(Timeout)"), "{}", stderr(&o));

    let o = cli(&s, &["submit", p(&long), "--type", "no_such_type"]).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("(UnknownJobType)"), "{}", stderr(&o));

    // files: upload (two), list with a filter, download, delete.
    let srt = media.path().join("a.srt");
    std::fs::write(&srt, "1\n00:00:01,000 --> 00:00:02,000\nHi\n").unwrap();
    let up = ok(&cli(&s, &["files", "upload", p(&srt), p(&long), "--json"]).await);
    let up = up.as_array().unwrap();
    assert_eq!(up.len(), 2);
    let srt_id = up[0]["id"].as_str().unwrap().to_owned();
    let listed = ok(&cli(&s, &["files", "list", "--kind", "subtitle", "--json"]).await);
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![srt_id.as_str()]);
    let text_list = cli(&s, &["files", "list"]).await;
    assert!(String::from_utf8_lossy(&text_list.stdout).contains("a.srt"));
    let back = media.path().join("back.srt");
    ok(&cli(
        &s,
        &["files", "download", &srt_id, "-o", p(&back), "--json"],
    )
    .await);
    assert_eq!(std::fs::read(&back).unwrap(), std::fs::read(&srt).unwrap());

    // jobs: a delayed job is listed, cancelled, retried (it runs now), then deleted.
    let video = common::video_with(media.path(), "long", &long, 2);
    let v = ok(&cli(
        &s,
        &[
            "submit",
            p(&video),
            "--type",
            "convert",
            "--delay-seconds",
            "600",
            "--detach",
            "--json",
        ],
    )
    .await);
    let id = v["id"].as_str().unwrap().to_owned();
    assert_eq!(v["status"], "queued");
    let list = ok(&cli(&s, &["jobs", "list", "--status", "queued", "--json"]).await);
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|j| j["id"] == id.as_str())
    );
    let c = ok(&cli(&s, &["jobs", "cancel", &id, "--json"]).await);
    assert_eq!(c["status"], "cancelled");
    let got = ok(&cli(&s, &["jobs", "get", &id, "--json"]).await);
    assert_eq!(got["status"], "cancelled");
    ok(&cli(&s, &["jobs", "retry", &id, "--json"]).await);
    let mp4 = media.path().join("long.mp4");
    let v = ok(&cli(&s, &["jobs", "follow", &id, "-o", p(&mp4), "--json"]).await);
    assert_eq!(v["status"], "succeeded", "{v}");
    assert!(std::fs::metadata(&mp4).unwrap().len() > 1000);
    let again = media.path().join("again.mp4");
    ok(&cli(&s, &["jobs", "download", &id, "-o", p(&again)]).await);
    assert_eq!(std::fs::read(&again).unwrap(), std::fs::read(&mp4).unwrap());
    ok(&cli(&s, &["jobs", "delete", &id, "--json"]).await);
    let o = cli(&s, &["jobs", "get", &id]).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("NotFound"), "{}", stderr(&o));
    let d = ok(&cli(&s, &["files", "delete", &srt_id, "--json"]).await);
    assert_eq!(d["success"], true);
}

/// `submit` keeps following across a server restart: the stream breaks, the client
/// reconnects (the snapshot says where the job is) and ends with the job's result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_survives_a_server_restart() {
    let dir = tempfile::tempdir().unwrap();
    let media = tempfile::tempdir().unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let bind = format!("127.0.0.1:{port}");
    let mut s = Server::start(dir.path(), &[("MEDIAJOBS_BIND", &bind)]).await;
    let wav = common::speech(media.path(), "restart", common::SPEECH);
    let out = media.path().join("restart.srt");
    let base = s.base.clone();
    let out_arg = out.to_str().unwrap().to_owned();
    let wav_arg = wav.to_str().unwrap().to_owned();
    let follower = tokio::spawn(async move {
        cli_at(
            &base,
            &[
                "submit",
                &wav_arg,
                "--type",
                "generate_srt",
                "--delay-seconds",
                "4",
                "-o",
                &out_arg,
            ],
        )
        .await
    });
    // Wait until the job is queued, then take the server down under the follower.
    let mut queued = false;
    for _ in 0..100 {
        let (_, v) = s.get("/jobs", "cli").await;
        if v.as_array().is_some_and(|a| !a.is_empty()) {
            queued = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(queued);
    s.kill9().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    s.restart().await;
    let o = tokio::time::timeout(Duration::from_secs(120), follower)
        .await
        .unwrap()
        .unwrap();
    ok(&o);
    let srt = std::fs::read_to_string(&out).unwrap();
    assert!(srt.to_lowercase().contains("committee"), "{srt}");
}
