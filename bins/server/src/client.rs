//! `mediajobs submit`: a small client of the HTTP API with a progress bar.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use clap::Args;
use serde_json::{Value, json};

/// Arguments of `mediajobs submit`.
#[derive(Args)]
pub struct SubmitArgs {
    /// The media (or SRT) file to upload.
    file: PathBuf,
    /// Job type: generate_srt, transcribe, convert or fix_srt.
    #[arg(long = "type", default_value = "generate_srt")]
    job_type: String,
    /// Server URL (default: MEDIAJOBS_URL, else http://MEDIAJOBS_BIND).
    #[arg(long)]
    url: Option<String>,
    /// Profile.
    #[arg(long, default_value = "default")]
    profile: String,
    /// Bearer token, if the server wants one (also MEDIAJOBS_TOKEN).
    #[arg(long)]
    token: Option<String>,
    /// Options as JSON, e.g. '{"language":"en"}'.
    #[arg(long)]
    opts: Option<String>,
    /// `provider:model` for fix_srt.
    #[arg(long)]
    model: Option<String>,
    /// Follow the job to its end, with a progress bar.
    #[arg(long)]
    wait: bool,
    /// With --wait: save the produced file (SRT or MP4) here.
    #[arg(long)]
    output: Option<PathBuf>,
}

fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
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

async fn check(resp: reqwest::Response) -> anyhow::Result<Value> {
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let e = &body["error"];
        bail!(
            "HTTP {status}: {} ({})",
            e["message"].as_str().unwrap_or("?"),
            e["code"].as_str().unwrap_or("?")
        );
    }
    Ok(body)
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

/// `mediajobs ready`: a container or service health check.
#[derive(Debug, Args)]
pub struct ReadyArgs {
    /// Server URL (default: MEDIAJOBS_URL, else http://MEDIAJOBS_BIND).
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
        .timeout(std::time::Duration::from_secs(a.timeout_secs.max(1)))
        .send()
        .await
        .with_context(|| format!("cannot reach {base}"))?;
    check(resp).await?;
    println!("ready: {base}");
    Ok(())
}

/// Uploads, submits, and optionally follows the job.
pub async fn submit(a: SubmitArgs, env: &BTreeMap<String, String>) -> anyhow::Result<()> {
    install_crypto();
    let base = base_url(a.url, env);
    let token = a.token.or_else(|| env.get("MEDIAJOBS_TOKEN").cloned());
    let http = reqwest::Client::new();
    let req = |m: reqwest::Method, path: &str| {
        let mut r = http
            .request(m, format!("{base}{path}"))
            .header("X-Profile-ID", &a.profile);
        if let Some(t) = &token {
            r = r.bearer_auth(t);
        }
        r
    };
    let name = a
        .file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| anyhow!("{} is not a file", a.file.display()))?;
    let f = tokio::fs::File::open(&a.file)
        .await
        .with_context(|| format!("cannot open {}", a.file.display()))?;
    let len = f.metadata().await?.len();
    let encoded: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~ ".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    eprintln!("uploading {name} ({len} bytes) …");
    let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(f));
    let file = check(
        req(reqwest::Method::POST, "/profiles/files")
            .header("X-File-Name", encoded)
            .header(reqwest::header::CONTENT_LENGTH, len)
            .body(body)
            .send()
            .await?,
    )
    .await?;
    let file_id = file["id"]
        .as_str()
        .ok_or_else(|| anyhow!("no file id in {file}"))?;
    let mut job = json!({ "type": a.job_type, "file_id": file_id });
    if let Some(o) = &a.opts {
        job["opts"] = serde_json::from_str(o).context("--opts is not valid JSON")?;
    }
    if let Some(m) = &a.model {
        job["model"] = json!(m);
    }
    let job = check(
        req(reqwest::Method::POST, "/jobs")
            .json(&job)
            .send()
            .await?,
    )
    .await?;
    let id = job["id"]
        .as_str()
        .ok_or_else(|| anyhow!("no job id"))?
        .to_owned();
    println!("job {id} queued");
    if !a.wait {
        return Ok(());
    }
    let bar = indicatif::ProgressBar::new(1000);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {percent:>3}% {msg}",
        )
        .map_err(|e| anyhow!("{e}"))?,
    );
    let done = loop {
        let j = check(
            req(reqwest::Method::GET, &format!("/jobs/{id}"))
                .send()
                .await?,
        )
        .await?;
        bar.set_position((j["progress"].as_f64().unwrap_or(0.0) * 1000.0) as u64);
        let mut msg = format!(
            "{} {}",
            j["status"].as_str().unwrap_or(""),
            j["stage"].as_str().unwrap_or("")
        );
        if let Some(eta) = j["eta_seconds"].as_f64() {
            msg.push_str(&format!(" · ETA {}", human_secs(eta)));
        }
        if let (Some(at), Some(e)) = (j["next_run_at"].as_str(), j["last_error"]["code"].as_str()) {
            msg.push_str(&format!(
                " · attempt {} failed ({e}), next at {at}",
                j["attempts"]
            ));
        }
        bar.set_message(msg);
        if matches!(
            j["status"].as_str(),
            Some("succeeded" | "failed" | "cancelled")
        ) {
            break j;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    bar.finish_and_clear();
    let status = done["status"].as_str().unwrap_or("?");
    if status != "succeeded" {
        bail!(
            "job {status}: {} ({})",
            done["error"].as_str().unwrap_or(""),
            done["error_code"].as_str().unwrap_or("")
        );
    }
    let mut result = done["result"].clone();
    let file_id = result["srt_file_id"]
        .as_str()
        .or_else(|| result["file_id"].as_str())
        .map(str::to_owned);
    if let (Some(out), Some(fid)) = (&a.output, file_id) {
        let bytes = req(
            reqwest::Method::GET,
            &format!("/profiles/files/{fid}/content"),
        )
        .send()
        .await?
        .error_for_status()?
        .bytes()
        .await?;
        tokio::fs::write(out, &bytes).await?;
        eprintln!("saved {}", out.display());
    }
    if let Some(c) = result.get_mut("srt_content") {
        let text = c.as_str().unwrap_or_default().to_owned();
        *c = json!(format!("({} bytes)", text.len()));
        print!("{text}");
    }
    println!("{}", serde_json::to_string_pretty(&result)?);
    Ok(())
}
