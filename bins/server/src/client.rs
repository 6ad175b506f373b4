//! The command-line client of the HTTP API: `submit` (upload with progress, submit, follow the
//! job live over SSE, save its output), `jobs …`, `files …` and `ready`. Every command takes
//! `--url`, `--profile`, `--token` (or `MEDIAJOBS_URL`, `MEDIAJOBS_PROFILE`, `MEDIAJOBS_TOKEN`)
//! and `--json` (machine-readable output on stdout).
//!
//! Exit status: 0 on success, 1 when a request fails (the API's error code is printed), 2 when
//! the job failed and 3 when it was cancelled (its error code is printed).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use clap::{Args, Subcommand};
use eventsource_stream::Eventsource;
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

/// How the command ended, when it is not plain success or a request error.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Exit {
    /// The process exit status.
    pub status: i32,
    /// What to print.
    pub message: String,
}

/// Where the server is and who is asking.
#[derive(Debug, Clone, Args)]
pub struct Conn {
    /// Server URL [default: MEDIAJOBS_URL, else http://MEDIAJOBS_BIND, else http://127.0.0.1:8080]
    #[arg(long)]
    url: Option<String>,
    /// Profile.
    #[arg(long, env = "MEDIAJOBS_PROFILE", default_value = "default")]
    profile: String,
    /// Bearer token, if the server wants one.
    #[arg(long, env = "MEDIAJOBS_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Print JSON on stdout (for scripts) instead of text.
    #[arg(long)]
    json: bool,
}

/// The server's base URL: the flag, else `MEDIAJOBS_URL`, else this machine's
/// `MEDIAJOBS_BIND` (a wildcard address such as `0.0.0.0` read as loopback), else
/// `http://127.0.0.1:8080`.
fn base_url(flag: Option<String>, env: &BTreeMap<String, String>) -> String {
    let url = flag
        .or_else(|| env.get("MEDIAJOBS_URL").cloned())
        .or_else(|| {
            env.get("MEDIAJOBS_BIND").map(|b| {
                let b = b
                    .strip_prefix("0.0.0.0:")
                    .or_else(|| b.strip_prefix("[::]:"))
                    .map_or_else(|| b.clone(), |port| format!("127.0.0.1:{port}"));
                format!("http://{b}")
            })
        })
        .unwrap_or_else(|| "http://127.0.0.1:8080".into());
    url.trim_end_matches('/').to_owned()
}

fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A connected client.
struct Client {
    base: String,
    profile: String,
    token: Option<String>,
    json: bool,
    http: reqwest::Client,
}

impl Client {
    fn new(c: &Conn, env: &BTreeMap<String, String>) -> anyhow::Result<Self> {
        install_crypto();
        Ok(Client {
            base: base_url(c.url.clone(), env),
            profile: c.profile.clone(),
            token: c.token.clone(),
            json: c.json,
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(10))
                .build()?,
        })
    }

    fn req(&self, m: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut r = self
            .http
            .request(m, format!("{}{path}", self.base))
            .header("X-Profile-ID", &self.profile);
        if let Some(t) = &self.token {
            r = r.bearer_auth(t);
        }
        r
    }

    /// Sends and reads the JSON answer; an error answer becomes an error naming its code.
    async fn call(&self, rb: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let resp = rb
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.base))?;
        let status = resp.status();
        if status == reqwest::StatusCode::NO_CONTENT {
            return Ok(Value::Null);
        }
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            return Err(api_error(status, &body));
        }
        Ok(body)
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.call(self.req(reqwest::Method::GET, path)).await
    }

    /// Prints a value: JSON with `--json`, else what `text` makes of it.
    fn print(&self, v: &Value, text: impl FnOnce(&Value) -> String) -> anyhow::Result<()> {
        if self.json {
            println!("{}", serde_json::to_string_pretty(v)?);
        } else {
            let t = text(v);
            if !t.is_empty() {
                println!("{t}");
            }
        }
        Ok(())
    }

    /// A progress bar on stderr; hidden with `--json` and when stderr is not a terminal.
    fn bar(&self, len: u64, template: &str) -> indicatif::ProgressBar {
        let bar = if self.json {
            indicatif::ProgressBar::hidden()
        } else {
            indicatif::ProgressBar::new(len)
        };
        if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar
    }

    /// Uploads a file, streaming it with a progress bar; returns its record.
    async fn upload(&self, path: &Path, folder: Option<&str>) -> anyhow::Result<Value> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| anyhow!("{} is not a file", path.display()))?;
        let f = tokio::fs::File::open(path)
            .await
            .with_context(|| format!("cannot open {}", path.display()))?;
        let len = f.metadata().await?.len();
        let bar = self.bar(
            len,
            "uploading {msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
        );
        bar.set_message(name.clone());
        let progress = bar.clone();
        let stream = tokio_util::io::ReaderStream::new(f).inspect(move |chunk| {
            if let Ok(c) = chunk {
                progress.inc(c.len() as u64);
            }
        });
        let mut q = String::new();
        if let Some(f) = folder {
            q = format!("?folder={}", percent(f));
        }
        let rec = self
            .call(
                self.req(reqwest::Method::POST, &format!("/profiles/files{q}"))
                    .header("X-File-Name", percent(&name))
                    .header(reqwest::header::CONTENT_LENGTH, len)
                    .body(reqwest::Body::wrap_stream(stream)),
            )
            .await;
        bar.finish_and_clear();
        let rec = rec.with_context(|| format!("uploading {}", path.display()))?;
        if !self.json {
            eprintln!(
                "uploaded {name}: file {} ({})",
                rec["id"].as_str().unwrap_or("?"),
                rec["kind"].as_str().unwrap_or("?")
            );
        }
        Ok(rec)
    }

    /// Streams a response body to `out` (through `out.part`, renamed when complete).
    async fn download(&self, path: &str, out: &Path) -> anyhow::Result<u64> {
        let resp = self
            .req(reqwest::Method::GET, path)
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.base))?;
        let status = resp.status();
        if !status.is_success() {
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            return Err(api_error(status, &body));
        }
        let bar = self.bar(
            resp.content_length().unwrap_or(0),
            "saving {msg} [{bar:30}] {bytes}/{total_bytes}",
        );
        bar.set_message(out.display().to_string());
        let part = out.with_extension(match out.extension() {
            Some(e) => format!("{}.part", e.to_string_lossy()),
            None => "part".into(),
        });
        let mut file = tokio::fs::File::create(&part)
            .await
            .with_context(|| format!("cannot write {}", part.display()))?;
        let mut n = 0u64;
        let mut body = resp.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.context("the download broke off")?;
            file.write_all(&chunk).await?;
            n += chunk.len() as u64;
            bar.inc(chunk.len() as u64);
        }
        file.flush().await?;
        drop(file);
        tokio::fs::rename(&part, out).await?;
        bar.finish_and_clear();
        Ok(n)
    }

    /// Follows a job over `GET /jobs/{id}/events` to its end, reconnecting when the stream
    /// breaks (a restart, a proxy timeout): each connection starts with a snapshot, so nothing
    /// is missed. Returns the final job.
    async fn follow(&self, id: &str) -> anyhow::Result<Value> {
        let bar = self.bar(
            1000,
            "{spinner} [{elapsed_precise}] [{bar:30}] {percent:>3}% {msg}",
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        let mut failures = 0u32;
        let mut job = Value::Null;
        loop {
            match self.follow_once(id, &bar, &mut job).await {
                Ok(true) => break,
                Ok(false) => {}
                Err(e) if e.downcast_ref::<ApiError>().is_some_and(|a| a.status < 500) => {
                    bar.finish_and_clear();
                    return Err(e);
                }
                Err(e) => {
                    failures += 1;
                    if failures > 60 {
                        bar.finish_and_clear();
                        return Err(e.context("the server stayed unreachable"));
                    }
                    bar.set_message(format!("reconnecting ({e:#})"));
                }
            }
            tokio::time::sleep(Duration::from_millis(500 * u64::from(failures.clamp(1, 4)))).await;
        }
        bar.finish_and_clear();
        // The stream's last event is the terminal one; read the job once more for the
        // complete view (the result of a batch is written with its last child).
        self.get(&format!("/jobs/{id}")).await.or(Ok(job))
    }

    /// One connection of [`Client::follow`]: `Ok(true)` once the job ended.
    async fn follow_once(
        &self,
        id: &str,
        bar: &indicatif::ProgressBar,
        job: &mut Value,
    ) -> anyhow::Result<bool> {
        let resp = self
            .req(reqwest::Method::GET, &format!("/jobs/{id}/events"))
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .send()
            .await?;
        let status = resp.status();
        if !status.is_success() {
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            return Err(api_error(status, &body));
        }
        let mut events = resp.bytes_stream().eventsource();
        while let Some(ev) = events.next().await {
            let ev = ev.map_err(|e| anyhow!("event stream: {e}"))?;
            let Ok(v) = serde_json::from_str::<Value>(&ev.data) else {
                continue;
            };
            if v["id"].as_str() != Some(id) {
                // A batch child's event: the parent's own events carry its progress.
                continue;
            }
            *job = v;
            show(bar, job);
            if is_terminal(job) {
                return Ok(true);
            }
        }
        Ok(is_terminal(job))
    }
}

/// An error answer of the API.
#[derive(Debug, thiserror::Error)]
#[error("HTTP {status}: {message} ({code})")]
struct ApiError {
    status: u16,
    code: String,
    message: String,
}

fn api_error(status: reqwest::StatusCode, body: &Value) -> anyhow::Error {
    let e = &body["error"];
    ApiError {
        status: status.as_u16(),
        code: e["code"].as_str().unwrap_or("?").to_owned(),
        message: e["message"]
            .as_str()
            .unwrap_or_else(|| status.canonical_reason().unwrap_or("?"))
            .to_owned(),
    }
    .into()
}

fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn is_terminal(job: &Value) -> bool {
    matches!(
        job["status"].as_str(),
        Some("succeeded" | "failed" | "cancelled")
    )
}

/// `95` → `1m35s`, `12.4` → `12s`.
fn human_secs(s: f64) -> String {
    let s = s.max(0.0).round() as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// Progress, stage, batch counts, ETA and a pending retry on the bar.
fn show(bar: &indicatif::ProgressBar, j: &Value) {
    bar.set_position((j["progress"].as_f64().unwrap_or(0.0) * 1000.0) as u64);
    let mut msg = j["status"].as_str().unwrap_or("").to_owned();
    if let Some(stage) = j["stage"].as_str() {
        msg.push_str(&format!(" · {stage}"));
    }
    if j["total"].as_i64().unwrap_or(1) > 1 {
        msg.push_str(&format!(" · {}/{} files", j["completed"], j["total"]));
    }
    if let Some(eta) = j["eta_seconds"].as_f64() {
        msg.push_str(&format!(" · ETA {}", human_secs(eta)));
    }
    if let (Some(at), Some(e)) = (j["next_run_at"].as_str(), j["last_error"]["code"].as_str()) {
        msg.push_str(&format!(
            " · attempt {} failed ({e}), retry at {at}",
            j["attempts"]
        ));
    } else if let Some(at) = j["next_run_at"].as_str() {
        msg.push_str(&format!(" · scheduled for {at}"));
    }
    bar.set_message(msg);
}

/// Success, or the job's failure as an [`Exit`] (2 failed, 3 cancelled) naming its code.
fn outcome(job: &Value) -> anyhow::Result<()> {
    match job["status"].as_str() {
        Some("succeeded") => Ok(()),
        Some(s @ ("failed" | "cancelled")) => Err(Exit {
            status: if s == "failed" { 2 } else { 3 },
            message: format!(
                "job {} {s}: {} ({})",
                job["id"].as_str().unwrap_or("?"),
                job["error"].as_str().unwrap_or(""),
                job["error_code"].as_str().unwrap_or("?")
            ),
        }
        .into()),
        other => bail!("job ended in an unknown state {other:?}"),
    }
}

/// What `--output` writes for a transcription, by the file's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TranscriptFormat {
    Txt,
    Json,
    Srt,
    Vtt,
}

impl TranscriptFormat {
    fn of(path: &Path) -> anyhow::Result<Self> {
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase());
        Ok(match ext.as_deref() {
            Some("txt") => TranscriptFormat::Txt,
            Some("json") => TranscriptFormat::Json,
            Some("srt") => TranscriptFormat::Srt,
            Some("vtt") => TranscriptFormat::Vtt,
            _ => bail!(
                "--output {}: a transcript is written as .txt, .json, .srt or .vtt",
                path.display()
            ),
        })
    }
}

/// Saves the output of a succeeded job (a batch's children into the directory `out`).
async fn save_output(c: &Client, job: &Value, out: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let ty = job["type"].as_str().unwrap_or("");
    if let Some(single) = ty.strip_prefix("batch_") {
        tokio::fs::create_dir_all(out)
            .await
            .with_context(|| format!("cannot create {}", out.display()))?;
        let id = job["id"].as_str().unwrap_or("");
        let kids = c.get(&format!("/jobs/{id}/children")).await?;
        let mut saved = Vec::new();
        for k in kids.as_array().into_iter().flatten() {
            if k["status"] != "succeeded" {
                continue;
            }
            let input = c
                .get(&format!(
                    "/profiles/files/{}",
                    k["file_id"].as_str().unwrap_or("")
                ))
                .await?;
            let stem = Path::new(input["name"].as_str().unwrap_or("file"))
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "file".into());
            let ext = match single {
                "transcribe" => "txt",
                "convert" => "mp4",
                _ => match k["result"]["format"].as_str() {
                    Some("vtt") => "vtt",
                    _ => "srt",
                },
            };
            let suffix = if single == "fix_srt" { ".fixed" } else { "" };
            let path = out.join(format!("{stem}{suffix}.{ext}"));
            saved.extend(save_one(c, k, &path).await?);
        }
        return Ok(saved);
    }
    save_one(c, job, out).await
}

async fn save_one(c: &Client, job: &Value, out: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let result = &job["result"];
    if let Some(tid) = result["transcript_id"].as_str() {
        let fmt = TranscriptFormat::of(out)?;
        match fmt {
            TranscriptFormat::Txt => {
                let text = result["transcript"].as_str().unwrap_or_default();
                tokio::fs::write(out, format!("{}\n", text.trim())).await?;
            }
            TranscriptFormat::Json => {
                let t = c.get(&format!("/profiles/transcripts/{tid}")).await?;
                tokio::fs::write(out, serde_json::to_vec_pretty(&t)?).await?;
            }
            TranscriptFormat::Srt | TranscriptFormat::Vtt => {
                let f = if fmt == TranscriptFormat::Srt {
                    "srt"
                } else {
                    "vtt"
                };
                c.download(&format!("/profiles/transcripts/{tid}?format={f}"), out)
                    .await?;
            }
        }
        return Ok(vec![out.to_owned()]);
    }
    let fid = result["srt_file_id"]
        .as_str()
        .or_else(|| result["file_id"].as_str())
        .ok_or_else(|| anyhow!("job {} produced no file", job["id"]))?;
    c.download(&format!("/profiles/files/{fid}/content"), out)
        .await?;
    Ok(vec![out.to_owned()])
}

/// Arguments of `mediajobs submit`.
#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// The media (or SRT) files to upload; several make one batch.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Job type: generate_srt, transcribe, convert or fix_srt.
    #[arg(long = "type", default_value = "generate_srt")]
    job_type: String,
    /// Options as JSON, e.g. '{"language":"en"}'.
    #[arg(long)]
    opts: Option<String>,
    /// `provider:model` for fix_srt.
    #[arg(long)]
    model: Option<String>,
    /// System prompt override for fix_srt.
    #[arg(long)]
    sys_msg: Option<String>,
    /// Claim order within the lane (-1000..=1000).
    #[arg(long, allow_negative_numbers = true)]
    priority: Option<i16>,
    /// Run no sooner than this many seconds from now.
    #[arg(long)]
    delay_seconds: Option<u64>,
    /// Fail the job past this many seconds.
    #[arg(long)]
    timeout_seconds: Option<u64>,
    /// Return the active job with this key instead of a new one.
    #[arg(long)]
    unique_key: Option<String>,
    /// Run whisper again even when an identical result exists.
    #[arg(long)]
    no_dedupe: bool,
    /// POSTed when the job ends (needs the server's webhook secret).
    #[arg(long)]
    webhook_url: Option<String>,
    /// Print the job id and return at once instead of following it.
    #[arg(long, conflicts_with = "output")]
    detach: bool,
    /// Save the output here: the SRT/MP4 file, a transcript as .txt/.json/.srt/.vtt, or for
    /// a batch a directory for every file's output.
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Accepted for compatibility: following is the default.
    #[arg(long, hide = true)]
    wait: bool,
    #[command(flatten)]
    conn: Conn,
}

/// Uploads, submits, follows the job and saves its output.
pub async fn submit(a: SubmitArgs, env: &BTreeMap<String, String>) -> anyhow::Result<()> {
    let c = Client::new(&a.conn, env)?;
    let batch = a.files.len() > 1 || a.job_type.starts_with("batch_");
    let single = a.job_type.trim_start_matches("batch_");
    // Refuse a bad --output before uploading anything.
    if let Some(out) = &a.output
        && !batch
        && single == "transcribe"
    {
        TranscriptFormat::of(out)?;
    }
    let mut ids = Vec::new();
    for f in &a.files {
        let rec = c.upload(f, None).await?;
        ids.push(rec["id"].clone());
    }
    let mut body = if batch {
        json!({ "type": format!("batch_{single}"), "file_ids": ids })
    } else {
        json!({ "type": single, "file_id": ids[0] })
    };
    if let Some(o) = &a.opts {
        body["opts"] = serde_json::from_str(o).context("--opts is not valid JSON")?;
    }
    let fields: [(&str, Option<Value>); 7] = [
        ("model", a.model.as_ref().map(|v| json!(v))),
        ("sys_msg", a.sys_msg.as_ref().map(|v| json!(v))),
        ("priority", a.priority.map(|v| json!(v))),
        ("delay_seconds", a.delay_seconds.map(|v| json!(v))),
        ("timeout_seconds", a.timeout_seconds.map(|v| json!(v))),
        ("unique_key", a.unique_key.as_ref().map(|v| json!(v))),
        ("webhook_url", a.webhook_url.as_ref().map(|v| json!(v))),
    ];
    for (k, v) in fields {
        if let Some(v) = v {
            body[k] = v;
        }
    }
    if a.no_dedupe {
        body["dedupe"] = json!(false);
    }
    let path = if batch { "/jobs/batch" } else { "/jobs" };
    let job = c
        .call(c.req(reqwest::Method::POST, path).json(&body))
        .await?;
    let id = job["id"]
        .as_str()
        .ok_or_else(|| anyhow!("no job id in {job}"))?
        .to_owned();
    if a.detach {
        return c.print(&job, |j| {
            format!(
                "{} {}",
                j["id"].as_str().unwrap_or(""),
                j["status"].as_str().unwrap_or("")
            )
        });
    }
    if !c.json {
        eprintln!("job {id} ({}) queued", job["type"].as_str().unwrap_or(""));
    }
    let done = c.follow(&id).await?;
    finish(&c, &done, a.output.as_deref()).await
}

/// Prints a finished job, saves its output, and turns a failure into its exit status.
async fn finish(c: &Client, done: &Value, output: Option<&Path>) -> anyhow::Result<()> {
    if done["status"] != "succeeded" {
        if c.json {
            println!("{}", serde_json::to_string_pretty(done)?);
        }
        return outcome(done);
    }
    let saved = match output {
        Some(out) => save_output(c, done, out).await?,
        None => vec![],
    };
    if c.json {
        let mut v = done.clone();
        v["saved"] = json!(saved);
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    for p in &saved {
        eprintln!("saved {}", p.display());
    }
    let r = &done["result"];
    if saved.is_empty() {
        if let Some(t) = r["srt_content"].as_str() {
            print!("{t}");
        } else if let Some(t) = r["transcript"].as_str() {
            println!("{}", t.trim());
        } else if let Some(url) = r["video_url"].as_str() {
            println!("{url}");
        } else if r.get("total").is_some() {
            println!(
                "{} of {} succeeded, {} failed, {} cancelled",
                r["succeeded"], r["total"], r["failed"], r["cancelled"]
            );
        }
    }
    eprintln!("job {} succeeded", done["id"].as_str().unwrap_or("?"));
    Ok(())
}

/// `mediajobs jobs …`.
#[derive(Debug, Subcommand)]
pub enum JobsCmd {
    /// The profile's jobs, newest first.
    List {
        /// Only these statuses (comma-separated: queued,running,succeeded,failed,cancelled).
        #[arg(long)]
        status: Option<String>,
        /// Only this type.
        #[arg(long = "type")]
        job_type: Option<String>,
        /// At most this many (1-1000).
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Only jobs older than this one (the last id of the previous page).
        #[arg(long)]
        before: Option<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// One job.
    Get {
        /// The job id.
        id: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Follows a job to its end (exit status as `submit`'s).
    Follow {
        /// The job id.
        id: String,
        /// Save its output here when it succeeds.
        #[arg(long, short)]
        output: Option<PathBuf>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Cancels a job (the work stops).
    Cancel {
        /// The job id.
        id: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Runs a failed or cancelled job again (a batch: its failed files).
    Retry {
        /// The job id.
        id: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Deletes a finished job.
    Delete {
        /// The job id.
        id: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Saves a succeeded job's output (as `submit --output`).
    Download {
        /// The job id.
        id: String,
        /// Where: a file, or for a batch a directory.
        #[arg(long, short)]
        output: PathBuf,
        #[command(flatten)]
        conn: Conn,
    },
}

fn job_line(j: &Value) -> String {
    let mut s = format!(
        "{}  {:<18} {:<10} {:>4.0}%",
        j["id"].as_str().unwrap_or(""),
        j["type"].as_str().unwrap_or(""),
        j["status"].as_str().unwrap_or(""),
        j["progress"].as_f64().unwrap_or(0.0) * 100.0
    );
    if let Some(code) = j["error_code"].as_str() {
        s.push_str(&format!("  {code}"));
    }
    s.push_str(&format!("  {}", j["created_at"].as_str().unwrap_or("")));
    s
}

/// `POST /jobs/{id}/{action}` (cancel, retry), printing the job.
async fn job_action(c: &Client, id: &str, action: &str) -> anyhow::Result<()> {
    let v = c
        .call(c.req(
            reqwest::Method::POST,
            &format!("/jobs/{}/{action}", percent(id)),
        ))
        .await?;
    c.print(&v, job_line)
}

/// Runs `mediajobs jobs …`.
pub async fn jobs(cmd: JobsCmd, env: &BTreeMap<String, String>) -> anyhow::Result<()> {
    match cmd {
        JobsCmd::List {
            status,
            job_type,
            limit,
            before,
            conn,
        } => {
            let c = Client::new(&conn, env)?;
            let mut q = vec![format!("limit={limit}")];
            if let Some(s) = status {
                q.push(format!("status={}", percent(&s)));
            }
            if let Some(t) = job_type {
                q.push(format!("type={}", percent(&t)));
            }
            if let Some(b) = before {
                q.push(format!("before={}", percent(&b)));
            }
            let v = c.get(&format!("/jobs?{}", q.join("&"))).await?;
            c.print(&v, |v| {
                v.as_array()
                    .into_iter()
                    .flatten()
                    .map(job_line)
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        }
        JobsCmd::Get { id, conn } => {
            let c = Client::new(&conn, env)?;
            let v = c.get(&format!("/jobs/{}", percent(&id))).await?;
            c.print(&v, |j| {
                let mut s = job_line(j);
                if let Some(e) = j["error"].as_str() {
                    s.push_str(&format!("\nerror: {e}"));
                }
                if !j["result"].is_null() {
                    s.push_str(&format!(
                        "\nresult: {}",
                        serde_json::to_string_pretty(&j["result"]).unwrap_or_default()
                    ));
                }
                s
            })
        }
        JobsCmd::Follow { id, output, conn } => {
            let c = Client::new(&conn, env)?;
            let done = c.follow(&id).await?;
            finish(&c, &done, output.as_deref()).await
        }
        JobsCmd::Cancel { id, conn } => job_action(&Client::new(&conn, env)?, &id, "cancel").await,
        JobsCmd::Retry { id, conn } => job_action(&Client::new(&conn, env)?, &id, "retry").await,
        JobsCmd::Delete { id, conn } => {
            let c = Client::new(&conn, env)?;
            c.call(c.req(reqwest::Method::DELETE, &format!("/jobs/{}", percent(&id))))
                .await?;
            c.print(&json!({"deleted": id}), |_| format!("deleted job {id}"))
        }
        JobsCmd::Download { id, output, conn } => {
            let c = Client::new(&conn, env)?;
            let j = c.get(&format!("/jobs/{}", percent(&id))).await?;
            outcome(&j)?;
            let saved = save_output(&c, &j, &output).await?;
            c.print(&json!({ "saved": saved }), |_| {
                saved
                    .iter()
                    .map(|p| format!("saved {}", p.display()))
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        }
    }
}

/// `mediajobs files …`.
#[derive(Debug, Subcommand)]
pub enum FilesCmd {
    /// The profile's files, newest first.
    List {
        /// Only this kind: video, audio or subtitle.
        #[arg(long)]
        kind: Option<String>,
        /// Only this origin: uploaded, generated, converted or fixed.
        #[arg(long)]
        origin: Option<String>,
        /// At most this many (1-1000).
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Only files older than this one (the last id of the previous page).
        #[arg(long)]
        before: Option<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Uploads files (with progress).
    Upload {
        /// The files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// A folder label.
        #[arg(long)]
        folder: Option<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Saves a file's bytes (streamed).
    Download {
        /// The file id.
        id: String,
        /// Where.
        #[arg(long, short)]
        output: PathBuf,
        #[command(flatten)]
        conn: Conn,
    },
    /// Deletes a file and the jobs that used it.
    Delete {
        /// The file id.
        id: String,
        #[command(flatten)]
        conn: Conn,
    },
}

fn file_line(f: &Value) -> String {
    format!(
        "{}  {:<8} {:<9} {:>10}  {}",
        f["id"].as_str().unwrap_or(""),
        f["kind"].as_str().unwrap_or(""),
        f["origin"].as_str().unwrap_or(""),
        f["size_bytes"],
        f["name"].as_str().unwrap_or("")
    )
}

/// Runs `mediajobs files …`.
pub async fn files(cmd: FilesCmd, env: &BTreeMap<String, String>) -> anyhow::Result<()> {
    match cmd {
        FilesCmd::List {
            kind,
            origin,
            limit,
            before,
            conn,
        } => {
            let c = Client::new(&conn, env)?;
            let mut q = vec![format!("limit={limit}")];
            for (k, v) in [("kind", kind), ("origin", origin), ("before", before)] {
                if let Some(v) = v {
                    q.push(format!("{k}={}", percent(&v)));
                }
            }
            let v = c.get(&format!("/profiles/files?{}", q.join("&"))).await?;
            c.print(&v, |v| {
                v.as_array()
                    .into_iter()
                    .flatten()
                    .map(file_line)
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        }
        FilesCmd::Upload {
            files,
            folder,
            conn,
        } => {
            let c = Client::new(&conn, env)?;
            let mut out = Vec::new();
            for f in &files {
                out.push(c.upload(f, folder.as_deref()).await?);
            }
            let v = Value::Array(out);
            c.print(&v, |_| String::new())
        }
        FilesCmd::Download { id, output, conn } => {
            let c = Client::new(&conn, env)?;
            let n = c
                .download(
                    &format!("/profiles/files/{}/content", percent(&id)),
                    &output,
                )
                .await?;
            c.print(&json!({"saved": output, "bytes": n}), |_| {
                format!("saved {} ({n} bytes)", output.display())
            })
        }
        FilesCmd::Delete { id, conn } => {
            let c = Client::new(&conn, env)?;
            let v = c
                .call(c.req(
                    reqwest::Method::DELETE,
                    &format!("/profiles/files/{}", percent(&id)),
                ))
                .await?;
            c.print(&v, |v| {
                let jobs = v["deleted_job_ids"].as_array().map_or(0, Vec::len);
                format!("deleted file {id} and {jobs} job(s) that used it")
            })
        }
    }
}

/// `mediajobs ready`: a container or service health check.
#[derive(Debug, Args)]
pub struct ReadyArgs {
    /// Server URL [default: MEDIAJOBS_URL, else http://MEDIAJOBS_BIND, else http://127.0.0.1:8080]
    #[arg(long)]
    url: Option<String>,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 5)]
    timeout_secs: u64,
}

/// Asks the server's `GET /ready`: `Ok` when it answers 200, else the reason it gave.
pub async fn ready(a: ReadyArgs, env: &BTreeMap<String, String>) -> anyhow::Result<()> {
    install_crypto();
    let base = base_url(a.url, env);
    let resp = reqwest::Client::new()
        .get(format!("{base}/ready"))
        .timeout(Duration::from_secs(a.timeout_secs.max(1)))
        .send()
        .await
        .with_context(|| format!("cannot reach {base}"))?;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        return Err(api_error(status, &body));
    }
    println!("ready: {base}");
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn base_url_order() {
        let env = |kv: &[(&str, &str)]| -> BTreeMap<String, String> {
            kv.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect()
        };
        assert_eq!(
            base_url(Some("http://h:1/".into()), &env(&[])),
            "http://h:1"
        );
        assert_eq!(
            base_url(
                None,
                &env(&[
                    ("MEDIAJOBS_URL", "http://u"),
                    ("MEDIAJOBS_BIND", "1.2.3.4:5")
                ])
            ),
            "http://u"
        );
        assert_eq!(
            base_url(None, &env(&[("MEDIAJOBS_BIND", "0.0.0.0:9000")])),
            "http://127.0.0.1:9000"
        );
        assert_eq!(base_url(None, &env(&[])), "http://127.0.0.1:8080");
    }

    #[test]
    fn transcript_formats_by_extension() {
        assert_eq!(
            TranscriptFormat::of(Path::new("a.TXT")).ok(),
            Some(TranscriptFormat::Txt)
        );
        assert_eq!(
            TranscriptFormat::of(Path::new("a.srt")).ok(),
            Some(TranscriptFormat::Srt)
        );
        assert!(TranscriptFormat::of(Path::new("a.docx")).is_err());
        assert!(TranscriptFormat::of(Path::new("noext")).is_err());
    }

    #[test]
    fn failures_exit_with_their_status() {
        let e =
            outcome(&json!({"id": "j", "status": "failed", "error": "x", "error_code": "Timeout"}))
                .unwrap_err();
        let exit = e
            .downcast_ref::<Exit>()
            .map(|x| (x.status, x.message.contains("Timeout")));
        assert_eq!(exit, Some((2, true)));
        let e = outcome(&json!({"status": "cancelled"})).unwrap_err();
        assert_eq!(e.downcast_ref::<Exit>().map(|x| x.status), Some(3));
        assert!(outcome(&json!({"status": "succeeded"})).is_ok());
    }
}
