//! End-to-end harness: the real `mediajobs` binary on loopback, media made by the tests, a
//! scripted OpenAI-compatible server for fix_srt.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub fn models_dir() -> PathBuf {
    std::env::var_os("MEDIAJOBS_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/models"))
}

pub async fn whisper_model() -> PathBuf {
    mediajobs_processor::model::ensure_model(&models_dir(), "base")
        .await
        .unwrap()
}

/// A running server.
pub struct Server {
    child: Option<Child>,
    pub base: String,
    pub data: PathBuf,
    env: Vec<(String, String)>,
    http: reqwest::Client,
}

impl Server {
    /// Starts `mediajobs serve` on 127.0.0.1:0 with `data` as its data dir.
    pub async fn start(data: &Path, env: &[(&str, &str)]) -> Server {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(a, b)| ((*a).into(), (*b).into()))
            .collect();
        let mut s = Server {
            child: None,
            base: String::new(),
            data: data.to_owned(),
            env,
            http: client(),
        };
        s.spawn().await;
        s
    }

    /// Its log: `server.log` in the data dir, or `server-<node id>.log` when the test sets
    /// `MEDIAJOBS_NODE_ID` (the nodes of a cluster share one data dir).
    pub fn log_path(&self) -> PathBuf {
        match self.env.iter().find(|(k, _)| k == "MEDIAJOBS_NODE_ID") {
            Some((_, node)) => self.data.join(format!("server-{node}.log")),
            None => self.data.join("server.log"),
        }
    }

    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// Sends a signal (`STOP`, `CONT`, …) to the process.
    pub fn signal(&self, sig: &str) {
        let pid = self.pid().expect("the server runs");
        let st = std::process::Command::new("kill")
            .args([format!("-{sig}"), pid.to_string()])
            .status()
            .unwrap();
        assert!(st.success(), "kill -{sig} {pid}");
    }

    /// The CPU time the process used so far (`/proc/PID/stat` utime + stime, 100 Hz ticks).
    pub fn cpu_time(&self) -> Duration {
        let pid = self.pid().expect("the server runs");
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        let ticks: u64 = after
            .split_whitespace()
            .skip(11)
            .take(2)
            .map(|x| x.parse::<u64>().unwrap())
            .sum();
        Duration::from_millis(ticks * 10)
    }

    async fn spawn(&mut self) {
        let model = whisper_model().await;
        let log_path = self.log_path();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mediajobs"));
        cmd.arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env(
                "HOME",
                std::env::var("HOME").unwrap_or_else(|_| "/tmp".into()),
            )
            .env("MEDIAJOBS_BIND", "127.0.0.1:0")
            .env("MEDIAJOBS_DATA_DIR", &self.data)
            .env("MEDIAJOBS_WHISPER_MODEL", &model)
            .env("MEDIAJOBS_WHISPER_THREADS", "2")
            .env("MEDIAJOBS_NODE_ID", "e2e-node")
            .env("MEDIAJOBS_GRACE_SECS", "2")
            .env("RUST_LOG", "info,tower_http=debug")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true);
        if let Ok(v) = std::env::var("GST_REGISTRY") {
            cmd.env("GST_REGISTRY", v);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("server did not start; see {}", log_path.display()))
            .unwrap()
            .unwrap_or_else(|| panic!("server exited; see {}", log_path.display()));
        self.base = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap()
            .to_owned();
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        self.child = Some(child);
    }

    /// SIGKILL, no goodbye.
    pub async fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().await.unwrap();
        }
    }

    /// Starts it again on the same data.
    pub async fn restart(&mut self) {
        self.spawn().await;
    }

    /// SIGTERM, and waits for a clean exit.
    pub async fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let pid = c.id().unwrap();
            std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .unwrap();
            let st = tokio::time::timeout(Duration::from_secs(30), c.wait())
                .await
                .unwrap()
                .unwrap();
            assert!(st.success(), "clean exit, got {st:?}");
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn req(&self, m: reqwest::Method, path: &str, profile: &str) -> reqwest::RequestBuilder {
        self.http
            .request(m, self.url(path))
            .header("X-Profile-ID", profile)
    }

    /// A `multipart/form-data` POST of `parts` (see [`multipart`]) for `profile`.
    pub fn post_form(
        &self,
        path: &str,
        profile: &str,
        parts: &[(&str, Option<&str>, &[u8])],
    ) -> reqwest::RequestBuilder {
        let (ct, body) = multipart(parts);
        self.req(reqwest::Method::POST, path, profile)
            .header("content-type", ct)
            .body(body)
    }

    pub async fn get(&self, path: &str, profile: &str) -> (u16, Value) {
        send(self.req(reqwest::Method::GET, path, profile)).await
    }

    pub async fn post(&self, path: &str, profile: &str, body: Value) -> (u16, Value) {
        send(self.req(reqwest::Method::POST, path, profile).json(&body)).await
    }

    pub async fn delete(&self, path: &str, profile: &str) -> (u16, Value) {
        send(self.req(reqwest::Method::DELETE, path, profile)).await
    }

    /// Uploads a file; returns the file JSON (panics on error).
    pub async fn upload(&self, profile: &str, name: &str, bytes: Vec<u8>) -> Value {
        let (s, v) = self.upload_raw(profile, name, bytes, "").await;
        assert_eq!(s, 201, "upload {name}: {v}");
        v
    }

    pub async fn upload_raw(
        &self,
        profile: &str,
        name: &str,
        bytes: Vec<u8>,
        query: &str,
    ) -> (u16, Value) {
        send(
            self.req(
                reqwest::Method::POST,
                &format!("/profiles/files{query}"),
                profile,
            )
            .header("X-File-Name", name)
            .body(bytes),
        )
        .await
    }

    pub async fn submit(&self, profile: &str, body: Value) -> Value {
        let (s, v) = self.post("/jobs", profile, body.clone()).await;
        assert_eq!(s, 202, "submit {body}: {v}");
        v
    }

    /// Polls until the job is terminal.
    pub async fn wait(&self, profile: &str, id: &str, limit: Duration) -> Value {
        let t0 = Instant::now();
        loop {
            let (s, j) = self.get(&format!("/jobs/{id}"), profile).await;
            assert_eq!(s, 200, "{j}");
            if matches!(
                j["status"].as_str(),
                Some("succeeded" | "failed" | "cancelled")
            ) {
                return j;
            }
            assert!(
                t0.elapsed() < limit,
                "job {id} not finished after {limit:?}: {j}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn wait_status(&self, profile: &str, id: &str, status: &str) -> Value {
        let t0 = Instant::now();
        loop {
            let (_, j) = self.get(&format!("/jobs/{id}"), profile).await;
            if j["status"] == status {
                return j;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "job {id} never {status}: {j}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn bytes(&self, path: &str, profile: &str) -> Vec<u8> {
        let r = self
            .req(reqwest::Method::GET, path, profile)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "GET {path}");
        r.bytes().await.unwrap().to_vec()
    }
}

pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap()
}

pub async fn send(r: reqwest::RequestBuilder) -> (u16, Value) {
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let v = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(json!({ "raw": text }))
    };
    (status, v)
}

/// Asserts the error envelope with `code`.
pub fn assert_error(res: &(u16, Value), status: u16, code: &str) {
    assert_eq!(res.0, status, "{}", res.1);
    assert_eq!(res.1["success"], false, "{}", res.1);
    assert_eq!(res.1["error"]["code"], code, "{}", res.1);
    assert!(
        res.1["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{}",
        res.1
    );
}

// ------------------------------------------------------------------ media

pub fn run(cmd: &mut std::process::Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn speech(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(format!("{name}.wav"));
    run(std::process::Command::new("espeak-ng")
        .args(["-v", "en-us", "-s", "160", "-w"])
        .arg(&p)
        .arg(text));
    p
}

/// A WebM (VP8 + Opus) whose audio is `wav`, 320x240.
pub fn video_with(dir: &Path, name: &str, wav: &Path, secs: u32) -> PathBuf {
    let p = dir.join(format!("{name}.webm"));
    let pipeline = format!(
        "videotestsrc num-buffers={} pattern=ball ! video/x-raw,width=320,height=240,framerate=15/1 ! videoconvert ! vp8enc deadline=1 cpu-used=8 ! queue ! webmmux name=m ! filesink location={} filesrc location={} ! wavparse ! audioconvert ! audioresample ! audio/x-raw,rate=48000 ! opusenc ! queue ! m.",
        secs * 15,
        p.display(),
        wav.display()
    );
    run(std::process::Command::new("gst-launch-1.0")
        .args(["-q", "-e"])
        .args(pipeline.split_whitespace()));
    p
}

/// A WebM (VP8) without an audio stream, 320x240.
pub fn silent_video(dir: &Path, name: &str, secs: u32) -> PathBuf {
    let p = dir.join(format!("{name}.webm"));
    let pipeline = format!(
        "videotestsrc num-buffers={} pattern=ball ! video/x-raw,width=320,height=240,framerate=15/1 ! videoconvert ! vp8enc deadline=1 cpu-used=8 ! webmmux ! filesink location={}",
        secs * 15,
        p.display()
    );
    run(std::process::Command::new("gst-launch-1.0")
        .args(["-q", "-e"])
        .args(pipeline.split_whitespace()));
    p
}

pub fn mp3(dir: &Path, name: &str, secs: u32) -> PathBuf {
    let p = dir.join(format!("{name}.mp3"));
    let pipeline = format!(
        "audiotestsrc num-buffers={} samplesperbuffer=4410 ! audio/x-raw,rate=44100,channels=1 ! audioconvert ! lamemp3enc ! xingmux ! id3v2mux ! filesink location={}",
        secs * 10,
        p.display()
    );
    run(std::process::Command::new("gst-launch-1.0")
        .args(["-q", "-e"])
        .args(pipeline.split_whitespace()));
    p
}

pub fn ffprobe(path: &Path) -> Value {
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,codec_type,pix_fmt:format=duration",
            "-of",
            "json",
        ])
        .arg(path)
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap()
}

pub const SPEECH: &str = "The committee met on Tuesday to discuss the new library. Members agreed that the building needs more windows.";

// ------------------------------------------------------------------ PostgreSQL

pub fn pg_admin_url() -> String {
    std::env::var("MEDIAJOBS_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

pub async fn create_pg_db() -> (String, String) {
    create_pg_db_on(&pg_admin_url()).await
}

/// A fresh database on the PostgreSQL server of `admin` (an URL of its `postgres` database).
pub async fn create_pg_db_on(admin: &str) -> (String, String) {
    let admin = admin.to_owned();
    let name = format!("mj_e2e_{}", uuid::Uuid::new_v4().simple());
    let mut c = AsyncPgConnection::establish(&admin)
        .await
        .expect("PostgreSQL must be running for the tests");
    c.batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let url = match admin.rfind('/') {
        Some(i) => format!("{}/{name}", &admin[..i]),
        None => format!("{admin}/{name}"),
    };
    (url, name)
}

pub async fn drop_pg_db(name: &str) {
    drop_pg_db_on(&pg_admin_url(), name).await;
}

pub async fn drop_pg_db_on(admin: &str, name: &str) {
    if let Ok(mut c) = AsyncPgConnection::establish(admin).await {
        let _ = c
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await;
    }
}

// ------------------------------------------------------------------ LLM stub

/// An OpenAI-compatible chat server that "fixes" each `#N text` line (capitalizes it, ends it
/// with a period) after `delay` — or answers prose when the system prompt contains `PROSE`
/// (always) or `FLAKY` (for 3 s from the first such request: one job attempt fails, a retry
/// after that succeeds), takes two minutes when it contains `SLOW`, and answers `503` to the
/// first two requests of this stub when it contains `UNAVAILABLE2`. Returns its base URL
/// with `/v1`.
pub async fn llm_stub(delay: Duration) -> String {
    use axum::Json;
    use axum::response::IntoResponse;
    use axum::routing::post;
    let flaky_since = std::sync::Arc::new(std::sync::Mutex::new(None::<Instant>));
    let unavailable = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        post(move |Json(body): Json<Value>| {
            let flaky_since = flaky_since.clone();
            let unavailable = unavailable.clone();
            async move {
            tokio::time::sleep(delay).await;
            let sys = body["messages"][0]["content"].as_str().unwrap_or_default();
            // UNAVAILABLE2: the first two requests of this stub answer 503.
            if sys.contains("UNAVAILABLE2")
                && unavailable.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 2
            {
                return (
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    Json(json!({"error": {"message": "overloaded, try again later", "type": "server_error"}})),
                )
                    .into_response();
            }
            if sys.contains("SLOW") {
                tokio::time::sleep(Duration::from_secs(120)).await;
            }
            let flaky_first = sys.contains("FLAKY")
                && flaky_since
                    .lock()
                    .unwrap()
                    .get_or_insert_with(Instant::now)
                    .elapsed()
                    < Duration::from_secs(3);
            // A system prompt asking for prose gets prose: an answer the pipeline must reject.
            if sys.contains("PROSE") || flaky_first {
                return Json(json!({
                    "choices": [{"message": {"role": "assistant", "content": "Sure! Here are your fixed lines."}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 50, "completion_tokens": 7}
                }))
                .into_response();
            }
            let user = body["messages"][1]["content"].as_str().unwrap_or_default().to_owned();
            let part = user.split("Lines to fix:\n").nth(1).unwrap_or_default();
            let lines: Vec<String> = part
                .lines()
                .filter_map(|l| {
                    let rest = l.strip_prefix('#')?;
                    let (n, t) = rest.split_once(' ')?;
                    let mut c = t.chars();
                    let mut fixed: String = c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default();
                    if !fixed.ends_with(['.', '?', '!']) {
                        fixed.push('.');
                    }
                    Some(format!("#{n} {fixed}"))
                })
                .collect();
            Json(json!({
                "choices": [{"message": {"role": "assistant", "content": lines.join("\n")}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 50, "completion_tokens": 20}
            }))
            .into_response()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/v1")
}

/// Reads SSE events from a stream URL until `stop` returns true or `limit` passes.
pub async fn sse_events(
    http: &reqwest::Client,
    url: &str,
    profile: &str,
    limit: Duration,
    mut stop: impl FnMut(&str, &Value) -> bool,
) -> Vec<(String, Value)> {
    use futures::StreamExt;
    let resp = http
        .get(url)
        .header("X-Profile-ID", profile)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut stream = resp.bytes_stream();
    let mut buf = String::new();
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let chunk = match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(Ok(c))) => c,
            _ => return out,
        };
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(i) = buf.find("\n\n") {
            let block: String = buf.drain(..i + 2).collect();
            let mut event = String::from("message");
            let mut data = String::new();
            for line in block.lines() {
                if let Some(e) = line.strip_prefix("event: ") {
                    event = e.to_owned();
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data.push_str(d);
                }
            }
            if data.is_empty() {
                continue;
            }
            let v: Value = serde_json::from_str(&data).unwrap();
            let done = stop(&event, &v);
            out.push((event, v));
            if done {
                return out;
            }
        }
    }
}

// ------------------------------------------------------------ real clients

/// The clients the compatibility tests drive, pinned.
pub const PY_CLIENTS: &[&str] = &["openai==3.57.0", "requests==2.34.2"];

/// A Python with the pinned OpenAI SDK and `requests`, in a venv cached outside the clone
/// (`MEDIAJOBS_CACHE_DIR`), made on first use: built aside and renamed into place, so tests
/// running in parallel never see a half-made one.
pub fn py_clients() -> PathBuf {
    let cache = std::env::var_os("MEDIAJOBS_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/tmp".into()))
                .join(".cache/mediajobs")
        });
    let tag: String = PY_CLIENTS
        .join("-")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let venv = cache.join(format!("venv-{tag}"));
    let python = venv.join("bin/python");
    if python.is_file() {
        return python;
    }
    std::fs::create_dir_all(&cache).unwrap();
    let tmp = cache.join(format!("venv-{tag}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    run(std::process::Command::new("python3")
        .args(["-m", "venv"])
        .arg(&tmp));
    run(std::process::Command::new(tmp.join("bin/pip"))
        .args(["install", "-q", "--disable-pip-version-check"])
        .args(PY_CLIENTS));
    if std::fs::rename(&tmp, &venv).is_err() {
        // Another test won the race; use its venv.
        let _ = std::fs::remove_dir_all(&tmp);
    }
    // Only `bin/python` is used: it finds the venv from its own path, so the rename is safe
    // (the entry-point scripts' shebangs still name the temp path and are never run).
    assert!(python.is_file(), "no python in {}", venv.display());
    python
}

/// Runs a Python test client script from `tests/compat/`; returns its JSON lines (and
/// prints them, so `--nocapture` shows a real run).
pub fn run_py(script: &str, args: &[&str]) -> Vec<Value> {
    let py = py_clients();
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/compat")
        .join(script);
    let out = std::process::Command::new(py)
        .arg(&path)
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("{script}:\n{stdout}");
    assert!(
        out.status.success(),
        "{script} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// A `multipart/form-data` body: `(name, filename, bytes)` parts. Returns the content type
/// and the body.
pub fn multipart(parts: &[(&str, Option<&str>, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "mediajobs-test-boundary-7d1f";
    let mut body = Vec::new();
    for (name, filename, bytes) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match filename {
            Some(f) => body.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\n\
                     Content-Type: application/octet-stream\r\n\r\n"
                )
                .as_bytes(),
            ),
            None => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
            ),
        }
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}
