//! `mediajobs-chaos`: the chaos harness of a mediajobs cluster (ADR 023).
//!
//! Starts N `mediajobs serve` nodes on one PostgreSQL database and one media directory
//! (loopback only), keeps a few jobs of mixed types in flight (transcribe, generate_srt,
//! fix_srt against an OpenAI-compatible stub it serves itself, convert), and for T minutes
//! kills (SIGKILL), pauses (SIGSTOP/SIGCONT), restarts (SIGTERM) nodes and restarts PostgreSQL
//! at random. Then it lets the jobs drain and reports: jobs submitted, succeeded, failed (by
//! code), lost (never ended: must be 0), duplicated (more than one output committed, or an
//! output of a job that did not succeed: must be 0), and recovery times (from a node's death
//! or pause to another node running its job; from a PostgreSQL restart to every node
//! answering again), p50 and max.
//!
//! Bounded in time (`--minutes`, `--drain-secs`) and in requests (`--max-jobs`); exits 1
//! when a job was lost, duplicated, left `running`, or failed because of an outage
//! (`Database`, `ServerError`). `scripts/chaos.sh` builds and runs it.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The chaos harness's settings.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Nodes (`mediajobs serve` processes).
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Minutes of chaos (jobs keep being submitted meanwhile).
    #[arg(long, default_value_t = 10.0)]
    minutes: f64,
    /// At most this many jobs in all.
    #[arg(long, default_value_t = 400)]
    max_jobs: usize,
    /// Jobs kept in flight (queued or running).
    #[arg(long, default_value_t = 6)]
    in_flight: usize,
    /// Mean seconds between two chaos events.
    #[arg(long, default_value_t = 20.0)]
    chaos_every_secs: f64,
    /// The nodes' lease (`MEDIAJOBS_LEASE_SECS`).
    #[arg(long, default_value_t = 3)]
    lease_secs: u64,
    /// After the chaos, how long the jobs may take to end.
    #[arg(long, default_value_t = 300)]
    drain_secs: u64,
    /// Seed of the random choices (default: from the clock; the report says which).
    #[arg(long)]
    seed: Option<u64>,
    /// The `mediajobs` binary.
    #[arg(long, env = "MEDIAJOBS_BIN")]
    mediajobs: PathBuf,
    /// Admin URL of the PostgreSQL the harness may restart (`scripts/pg-chaos.sh`).
    #[arg(long, env = "MEDIAJOBS_CHAOS_PG")]
    pg_admin: String,
    /// Its `pg_ctlcluster` version and name ("15 mediajobs_chaos").
    #[arg(long, env = "MEDIAJOBS_CHAOS_PG_CLUSTER")]
    pg_cluster: String,
    /// The whisper model the nodes load.
    #[arg(long, env = "MEDIAJOBS_WHISPER_MODEL")]
    whisper_model: PathBuf,
    /// Write the report as JSON here too.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Keep the work directory (data dir, node logs) and print where it is.
    #[arg(long)]
    keep: bool,
}

const PROFILE: &str = "chaos";
const TEXTS: &[&str] = &[
    "The committee met on Tuesday to discuss the new library.",
    "Members agreed that the building needs more windows and better heating.",
    "Last summer we drove along the coast and stopped in small villages.",
    "Every evening we watched the sun go down over the quiet sea.",
];
const SRT: &str = "1\n00:00:00,000 --> 00:00:02,000\nthe committee met on tuesday\n\n2\n00:00:02,500 --> 00:00:05,000\nmembers agreed on more windows\n\n3\n00:00:05,500 --> 00:00:08,000\nthe mayor will review the budget\n";

/// One `mediajobs serve` process.
struct Node {
    id: String,
    child: Option<Child>,
    base: String,
    log: PathBuf,
    paused: bool,
}

impl Node {
    fn up(&self) -> bool {
        self.child.is_some() && !self.paused
    }

    fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    fn signal(&self, sig: &str) -> Result<()> {
        let pid = self.pid().context("node not running")?;
        let st = std::process::Command::new("kill")
            .args([format!("-{sig}"), pid.to_string()])
            .status()?;
        if !st.success() {
            bail!("kill -{sig} {pid} failed");
        }
        Ok(())
    }
}

/// What the harness knows of a job it submitted.
#[derive(Debug, Clone)]
struct Tracked {
    job_type: &'static str,
    input: String,
    status: String,
    owner: String,
    attempts: i64,
    error_code: String,
}

/// A node event whose jobs must move to another node.
struct Pending {
    victim: String,
    at: Instant,
    /// The jobs it held not yet running again: their attempt then, and whether the lease
    /// rules released them from the victim already.
    jobs: Vec<(String, i64, bool)>,
    /// The jobs already released.
    released: Vec<String>,
}

#[derive(Debug, Default, Serialize)]
struct Recovery {
    samples_ms: Vec<u64>,
}

impl Recovery {
    fn p50_max(&self) -> (Option<u64>, Option<u64>) {
        let mut v = self.samples_ms.clone();
        v.sort_unstable();
        (v.get(v.len() / 2).copied(), v.last().copied())
    }
}

/// The report.
#[derive(Debug, Default, Serialize)]
struct Report {
    seed: u64,
    nodes: usize,
    minutes: f64,
    lease_secs: u64,
    submitted: usize,
    submit_errors: usize,
    by_type: BTreeMap<String, usize>,
    succeeded: usize,
    failed: BTreeMap<String, usize>,
    cancelled: usize,
    lost: usize,
    duplicated: usize,
    left_over_outputs: usize,
    taken_over: usize,
    events: BTreeMap<String, usize>,
    /// From a node's death, pause or restart to its jobs leaving it (re-queued by the lease
    /// rules, or interrupted and re-queued on a clean stop).
    release: Recovery,
    /// From the same to a later attempt running (it waits for a free heavy permit).
    node_recovery: Recovery,
    /// How long `pg_ctlcluster restart` took (PostgreSQL down, then starting).
    pg_outage: Recovery,
    /// From PostgreSQL accepting connections again to every node answering a request that
    /// reads the database.
    pg_recovery: Recovery,
    wall_secs: f64,
}

struct Harness {
    args: Args,
    rng: StdRng,
    http: reqwest::Client,
    data: PathBuf,
    media: PathBuf,
    db_url: String,
    llm: String,
    nodes: Vec<Node>,
    jobs: HashMap<String, Tracked>,
    inputs: Vec<(&'static str, PathBuf)>,
    report: Report,
    pending: Vec<Pending>,
    /// Node index → when to SIGCONT / restart it.
    wake: Vec<(Instant, usize, &'static str)>,
    pg: Option<tokio_postgres::Client>,
    pg_down_since: Option<Instant>,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    if args.nodes < 2 {
        bail!("--nodes must be at least 2 (a job needs somewhere to go)");
    }
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_secs())
    });
    let work = tempfile::Builder::new()
        .prefix("mediajobs-chaos-")
        .tempdir()?;
    let data = work.path().join("data");
    let media = work.path().join("inputs");
    std::fs::create_dir_all(&data)?;
    std::fs::create_dir_all(&media)?;
    let db_name = format!("mj_chaos_{}", uuid::Uuid::new_v4().simple());
    let (admin, conn) = tokio_postgres::connect(&args.pg_admin, tokio_postgres::NoTls)
        .await
        .context("connecting to --pg-admin")?;
    tokio::spawn(conn);
    admin
        .batch_execute(&format!("CREATE DATABASE {db_name}"))
        .await?;
    drop(admin);
    let db_url = match args.pg_admin.rfind('/') {
        Some(i) => format!("{}/{db_name}", &args.pg_admin[..i]),
        None => bail!("--pg-admin must end in /DATABASE"),
    };
    let llm = llm_stub().await?;
    let mut h = Harness {
        rng: StdRng::seed_from_u64(seed),
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?,
        data,
        media,
        db_url,
        llm,
        nodes: Vec::new(),
        jobs: HashMap::new(),
        inputs: Vec::new(),
        report: Report {
            seed,
            nodes: args.nodes,
            minutes: args.minutes,
            lease_secs: args.lease_secs,
            ..Default::default()
        },
        pending: Vec::new(),
        wake: Vec::new(),
        pg: None,
        pg_down_since: None,
        args,
    };
    let outcome = h.run().await;
    for i in 0..h.nodes.len() {
        h.stop_node(i).await;
    }
    if h.args.keep {
        let kept = work.keep();
        eprintln!("chaos: work directory kept at {}", kept.display());
    } else if let Ok((admin, conn)) =
        tokio_postgres::connect(&h.args.pg_admin, tokio_postgres::NoTls).await
    {
        tokio::spawn(conn);
        let _ = admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {db_name} WITH (FORCE)"))
            .await;
    }
    let violations = outcome?;
    print_report(&h.report);
    if let Some(p) = &h.args.report {
        std::fs::write(p, serde_json::to_vec_pretty(&h.report)?)?;
    }
    if !violations.is_empty() {
        bail!(
            "the cluster broke its guarantees: {}",
            violations.join("; ")
        );
    }
    Ok(())
}

impl Harness {
    async fn run(&mut self) -> Result<Vec<String>> {
        let started = Instant::now();
        self.make_inputs()?;
        for i in 0..self.args.nodes {
            self.nodes.push(Node {
                id: format!("chaos-{i}"),
                child: None,
                base: String::new(),
                log: self.data.join(format!("node-{i}.log")),
                paused: false,
            });
            self.spawn_node(i).await?;
        }
        eprintln!(
            "chaos: {} nodes up; seed {}; {} min",
            self.args.nodes, self.report.seed, self.args.minutes
        );
        let chaos_end = started + Duration::from_secs_f64(self.args.minutes * 60.0);
        let mut next_event = Instant::now() + self.chaos_gap();
        let mut last_poll = Instant::now();
        while Instant::now() < chaos_end {
            self.wake_due(false).await?;
            if Instant::now() >= next_event && self.wake.is_empty() {
                self.chaos_event().await?;
                next_event = Instant::now() + self.chaos_gap();
            }
            self.top_up().await;
            if last_poll.elapsed() >= Duration::from_millis(200) {
                self.poll().await;
                last_poll = Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        eprintln!("chaos: chaos over; draining");
        self.wake_due(true).await?;
        let drain_end = Instant::now() + Duration::from_secs(self.args.drain_secs);
        loop {
            self.poll().await;
            let active = self
                .jobs
                .values()
                .filter(|j| !is_terminal(&j.status))
                .count();
            if active == 0 && self.pending.is_empty() {
                break;
            }
            if Instant::now() > drain_end {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let violations = self.tally().await?;
        self.report.wall_secs = started.elapsed().as_secs_f64();
        Ok(violations)
    }

    fn chaos_gap(&mut self) -> Duration {
        let mean = self.args.chaos_every_secs.max(1.0);
        Duration::from_secs_f64(self.rng.random_range(mean * 0.5..mean * 1.5))
    }

    fn make_inputs(&mut self) -> Result<()> {
        for (i, text) in TEXTS.iter().enumerate() {
            let wav = self.media.join(format!("speech{i}.wav"));
            let st = std::process::Command::new("espeak-ng")
                .args(["-s", "150", "-w"])
                .arg(&wav)
                .arg(format!("{text} {text}"))
                .status()
                .context("espeak-ng (apt install espeak-ng)")?;
            if !st.success() {
                bail!("espeak-ng failed");
            }
            self.inputs.push(("speech", wav));
        }
        let srt = self.media.join("talk.srt");
        std::fs::write(&srt, SRT)?;
        self.inputs.push(("srt", srt));
        let webm = self.media.join("clip.webm");
        let pipeline = format!(
            "videotestsrc num-buffers=50 ! video/x-raw,width=160,height=120,framerate=25/1 ! \
             vp8enc deadline=1 ! webmmux name=m ! filesink location={} \
             audiotestsrc num-buffers=94 ! audioconvert ! vorbisenc ! m.",
            webm.display()
        );
        let st = std::process::Command::new("gst-launch-1.0")
            .arg("-q")
            .args(pipeline.split_whitespace())
            .status()
            .context("gst-launch-1.0")?;
        if !st.success() {
            bail!("gst-launch-1.0 failed to make the video input");
        }
        self.inputs.push(("video", webm));
        Ok(())
    }

    async fn spawn_node(&mut self, i: usize) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.nodes[i].log)?;
        let mut cmd = Command::new(&self.args.mediajobs);
        cmd.arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env(
                "HOME",
                std::env::var("HOME").unwrap_or_else(|_| "/tmp".into()),
            )
            .env("MEDIAJOBS_BIND", "127.0.0.1:0")
            .env("MEDIAJOBS_DATA_DIR", &self.data)
            .env("MEDIAJOBS_DATABASE_URL", &self.db_url)
            .env("MEDIAJOBS_NODE_ID", &self.nodes[i].id)
            .env("MEDIAJOBS_WHISPER_MODEL", &self.args.whisper_model)
            .env("MEDIAJOBS_WHISPER_THREADS", "1")
            .env("MEDIAJOBS_HEAVY_CONCURRENCY", "1")
            .env("MEDIAJOBS_LEASE_SECS", self.args.lease_secs.to_string())
            .env("MEDIAJOBS_MAX_ATTEMPTS", "8")
            .env("MEDIAJOBS_GRACE_SECS", "2")
            .env("MEDIAJOBS_LLM_STUB_BASE_URL", &self.llm)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true);
        if let Ok(v) = std::env::var("GST_REGISTRY") {
            cmd.env("GST_REGISTRY", v);
        }
        let mut child = cmd.spawn().context("starting mediajobs serve")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(90), lines.next_line())
            .await
            .with_context(|| format!("node {i} did not start (see its log)"))??
            .with_context(|| format!("node {i} exited at start (see its log)"))?;
        let base = line
            .trim()
            .strip_prefix("listening on ")
            .with_context(|| format!("unexpected first line {line:?}"))?
            .to_owned();
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let n = &mut self.nodes[i];
        n.child = Some(child);
        n.base = base;
        n.paused = false;
        Ok(())
    }

    async fn stop_node(&mut self, i: usize) {
        let n = &mut self.nodes[i];
        if n.paused {
            let _ = n.signal("CONT");
            n.paused = false;
        }
        if let Some(mut c) = n.child.take() {
            if let Some(pid) = c.id() {
                let _ = std::process::Command::new("kill")
                    .args(["-TERM", &pid.to_string()])
                    .status();
            }
            if tokio::time::timeout(Duration::from_secs(30), c.wait())
                .await
                .is_err()
            {
                let _ = c.kill().await;
            }
        }
    }

    /// Runs the due wake-ups (SIGCONT, restarts); `all`: every one now.
    async fn wake_due(&mut self, all: bool) -> Result<()> {
        let now = Instant::now();
        let (due, later): (Vec<_>, Vec<_>) = self
            .wake
            .drain(..)
            .partition(|(at, _, _)| all || *at <= now);
        self.wake = later;
        for (_, i, what) in due {
            match what {
                "cont" => {
                    self.nodes[i].signal("CONT")?;
                    self.nodes[i].paused = false;
                }
                _ => self.spawn_node(i).await?,
            }
        }
        Ok(())
    }

    /// The running jobs a node holds, as last seen, with their attempt.
    fn held_by(&self, i: usize) -> Vec<(String, i64)> {
        let id = &self.nodes[i].id;
        self.jobs
            .iter()
            .filter(|(_, j)| j.status == "running" && &j.owner == id)
            .map(|(k, j)| (k.clone(), j.attempts))
            .collect()
    }

    async fn chaos_event(&mut self) -> Result<()> {
        let kind = match self.rng.random_range(0..10u32) {
            0..=2 => "kill9",
            3..=5 => "pause",
            6..=7 => "restart",
            _ => "pg_restart",
        };
        *self.report.events.entry(kind.into()).or_default() += 1;
        if kind == "pg_restart" {
            eprintln!("chaos: restarting PostgreSQL");
            let parts: Vec<&str> = self.args.pg_cluster.split_whitespace().collect();
            let at = Instant::now();
            let st = Command::new("pg_ctlcluster")
                .arg("--skip-systemctl-redirect")
                .args(&parts)
                .arg("restart")
                .status()
                .await?;
            if !st.success() {
                bail!("pg_ctlcluster restart failed");
            }
            self.report
                .pg_outage
                .samples_ms
                .push(at.elapsed().as_millis() as u64);
            // From here PostgreSQL accepts connections again.
            let at = Instant::now();
            self.pg = None;
            // Recovered once every node answers a database-backed request again.
            let deadline = at + Duration::from_secs(120);
            loop {
                let mut all = true;
                for n in self.nodes.iter().filter(|n| n.up()) {
                    let ok = self
                        .http
                        .get(format!("{}/jobs?limit=1", n.base))
                        .header("X-Profile-ID", PROFILE)
                        .timeout(Duration::from_secs(2))
                        .send()
                        .await
                        .is_ok_and(|r| r.status().is_success());
                    all &= ok;
                }
                if all {
                    break;
                }
                if Instant::now() > deadline {
                    bail!("the nodes did not answer again within 120 s of a PostgreSQL restart");
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let ms = at.elapsed().as_millis() as u64;
            eprintln!("chaos: PostgreSQL back; every node answering {ms} ms later");
            self.report.pg_recovery.samples_ms.push(ms);
            return Ok(());
        }
        let up: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].up())
            .collect();
        if up.len() < 2 {
            return Ok(());
        }
        // Prefer a node that holds a running job: that is where recovery is measured.
        let busy: Vec<usize> = up
            .iter()
            .copied()
            .filter(|&i| !self.held_by(i).is_empty())
            .collect();
        let pool = if busy.is_empty() { &up } else { &busy };
        let i = pool[self.rng.random_range(0..pool.len())];
        let held = self.held_by(i);
        let victim = self.nodes[i].id.clone();
        eprintln!("chaos: {kind} {victim} (holding {} job(s))", held.len());
        let lease = Duration::from_secs(self.args.lease_secs);
        match kind {
            "kill9" => {
                if let Some(mut c) = self.nodes[i].child.take() {
                    let _ = c.kill().await;
                }
                let back = Duration::from_millis(self.rng.random_range(500..4000));
                self.wake.push((Instant::now() + back, i, "spawn"));
            }
            "pause" => {
                self.nodes[i].signal("STOP")?;
                self.nodes[i].paused = true;
                let pause = lease * 2 + Duration::from_millis(self.rng.random_range(0..3000));
                self.wake.push((Instant::now() + pause, i, "cont"));
            }
            _ => {
                self.stop_node(i).await;
                self.wake.push((Instant::now(), i, "spawn"));
            }
        }
        if !held.is_empty() {
            self.pending.push(Pending {
                victim,
                at: Instant::now(),
                jobs: held.into_iter().map(|(j, a)| (j, a, false)).collect(),
                released: Vec::new(),
            });
        }
        Ok(())
    }

    /// Keeps `in_flight` jobs queued or running, up to `max_jobs` in all.
    async fn top_up(&mut self) {
        let active = self
            .jobs
            .values()
            .filter(|j| !is_terminal(&j.status))
            .count();
        if active >= self.args.in_flight || self.jobs.len() >= self.args.max_jobs {
            return;
        }
        let up: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].up())
            .collect();
        if up.is_empty() {
            return;
        }
        let via = up[self.rng.random_range(0..up.len())];
        let job_type = match self.rng.random_range(0..10u32) {
            0..=3 => "transcribe",
            4..=6 => "generate_srt",
            7..=8 => "fix_srt",
            _ => "convert",
        };
        let input = match job_type {
            "fix_srt" => "srt",
            "convert" => "video",
            _ => "speech",
        };
        let candidates: Vec<PathBuf> = self
            .inputs
            .iter()
            .filter(|(k, _)| *k == input)
            .map(|(_, p)| p.clone())
            .collect();
        let path = candidates[self.rng.random_range(0..candidates.len())].clone();
        match self.submit(via, job_type, &path).await {
            Ok((job, file)) => {
                self.report.submitted += 1;
                *self.report.by_type.entry(job_type.into()).or_default() += 1;
                self.jobs.insert(
                    job,
                    Tracked {
                        job_type,
                        input: file,
                        status: "queued".into(),
                        owner: String::new(),
                        attempts: 0,
                        error_code: String::new(),
                    },
                );
            }
            Err(e) => {
                self.report.submit_errors += 1;
                eprintln!("chaos: a submission through node {via} failed ({e:#}); not counted");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }

    async fn submit(&self, via: usize, job_type: &str, path: &Path) -> Result<(String, String)> {
        let base = &self.nodes[via].base;
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("input");
        let r = self
            .http
            .post(format!("{base}/profiles/files"))
            .header("X-Profile-ID", PROFILE)
            .header("X-File-Name", name)
            .body(tokio::fs::read(path).await?)
            .send()
            .await?;
        if r.status().as_u16() != 201 {
            bail!("upload answered {}", r.status());
        }
        let f: Value = r.json().await?;
        let file = f["id"].as_str().context("no file id")?.to_owned();
        let mut body = json!({"type": job_type, "file_id": file, "dedupe": false});
        match job_type {
            "fix_srt" => body["model"] = json!("stub:tiny"),
            "convert" => {
                body["opts"] = json!({"preset": "performance", "resolution": "160x120"});
            }
            _ => {}
        }
        let r = self
            .http
            .post(format!("{base}/jobs"))
            .header("X-Profile-ID", PROFILE)
            .json(&body)
            .send()
            .await?;
        if r.status().as_u16() != 202 {
            bail!("submission answered {}: {}", r.status(), r.text().await?);
        }
        let j: Value = r.json().await?;
        Ok((j["id"].as_str().context("no job id")?.to_owned(), file))
    }

    async fn db(&mut self) -> Option<&tokio_postgres::Client> {
        if self.pg.as_ref().is_some_and(|c| c.is_closed()) {
            self.pg = None;
        }
        if self.pg.is_none() {
            match tokio_postgres::connect(&self.db_url, tokio_postgres::NoTls).await {
                Ok((c, conn)) => {
                    tokio::spawn(conn);
                    self.pg = Some(c);
                }
                Err(_) => return None,
            }
        }
        self.pg.as_ref()
    }

    /// Reads every job's row; settles the pending recoveries.
    async fn poll(&mut self) {
        let Some(db) = self.db().await else {
            self.pg_down_since.get_or_insert_with(Instant::now);
            return;
        };
        let rows = match db
            .query(
                "select id::text, status, coalesce(lease_owner, ''), attempts::bigint, \
                 coalesce(error_code, '') from jobs where parent_id is null",
                &[],
            )
            .await
        {
            Ok(r) => r,
            Err(_) => {
                self.pg = None;
                return;
            }
        };
        self.pg_down_since = None;
        for r in rows {
            let id: String = r.get(0);
            if let Some(t) = self.jobs.get_mut(&id) {
                t.status = r.get(1);
                t.owner = r.get(2);
                t.attempts = r.get(3);
                t.error_code = r.get(4);
            }
        }
        let now = Instant::now();
        let mut still = Vec::new();
        for mut p in self.pending.drain(..) {
            let mut kept = Vec::new();
            let since = now.duration_since(p.at).as_millis() as u64;
            for (job, attempt, released) in std::mem::take(&mut p.jobs) {
                let Some(t) = self.jobs.get(&job) else {
                    continue;
                };
                let later = t.attempts > attempt;
                let over = is_terminal(&t.status);
                // Released: the lease rules took it from the victim (re-queued, or over).
                let released =
                    released || over || later || t.status != "running" || t.owner != p.victim;
                if released && !p.released.contains(&job) {
                    p.released.push(job.clone());
                    self.report.release.samples_ms.push(since);
                }
                // Running again: a later attempt runs (elsewhere, or here after a restart).
                let rerun = over || (t.status == "running" && later);
                if rerun {
                    self.report.node_recovery.samples_ms.push(since);
                    if later {
                        self.report.taken_over += 1;
                    }
                } else {
                    kept.push((job, attempt, released));
                }
            }
            p.jobs = kept;
            if !p.jobs.is_empty() {
                still.push(p);
            }
        }
        self.pending = still;
    }

    /// Counts the outcomes; returns the broken guarantees.
    async fn tally(&mut self) -> Result<Vec<String>> {
        let inputs: Vec<String> = self.jobs.values().map(|t| t.input.clone()).collect();
        let mut outputs: HashMap<String, usize> = HashMap::new();
        let db = self
            .db()
            .await
            .context("the database is unreachable after the run")?;
        for sql in [
            "select source_file_id::text, count(*) from files \
             where source_file_id::text = any($1) group by 1",
            "select file_id::text, count(*) from transcripts \
             where file_id::text = any($1) group by 1",
        ] {
            for r in db.query(sql, &[&inputs]).await? {
                let n: i64 = r.get(1);
                *outputs.entry(r.get(0)).or_default() += n as usize;
            }
        }
        let mut violations = Vec::new();
        for (id, t) in &self.jobs {
            let n = outputs.get(&t.input).copied().unwrap_or(0);
            match t.status.as_str() {
                "succeeded" => {
                    self.report.succeeded += 1;
                    if n != 1 {
                        self.report.duplicated += 1;
                        violations.push(format!("{} job {id} has {n} outputs", t.job_type));
                    }
                }
                "failed" => {
                    *self.report.failed.entry(t.error_code.clone()).or_default() += 1;
                    if n > 0 {
                        self.report.left_over_outputs += 1;
                        violations.push(format!("failed job {id} left {n} output(s)"));
                    }
                    if matches!(t.error_code.as_str(), "Database" | "ServerError") {
                        violations.push(format!("job {id} failed with {}", t.error_code));
                    }
                }
                "cancelled" => self.report.cancelled += 1,
                other => {
                    self.report.lost += 1;
                    violations.push(format!(
                        "{} job {id} never ended ({other}, owner {:?})",
                        t.job_type, t.owner
                    ));
                }
            }
        }
        for p in &self.pending {
            violations.push(format!(
                "the jobs of {} never moved: {:?}",
                p.victim, p.jobs
            ));
        }
        Ok(violations)
    }
}

fn is_terminal(status: &str) -> bool {
    matches!(status, "succeeded" | "failed" | "cancelled")
}

fn print_report(r: &Report) {
    let fmt = |v: Option<u64>| v.map_or("–".into(), |ms| format!("{:.2} s", ms as f64 / 1000.0));
    let (np50, nmax) = r.node_recovery.p50_max();
    let (rp50, rmax) = r.release.p50_max();
    let (pp50, pmax) = r.pg_recovery.p50_max();
    let (op50, omax) = r.pg_outage.p50_max();
    let failed = if r.failed.is_empty() {
        "0".to_owned()
    } else {
        r.failed
            .iter()
            .map(|(c, n)| format!("{n} {c}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let events = r
        .events
        .iter()
        .map(|(k, n)| format!("{n} {k}"))
        .collect::<Vec<_>>()
        .join(", ");
    let types = r
        .by_type
        .iter()
        .map(|(k, n)| format!("{n} {k}"))
        .collect::<Vec<_>>()
        .join(", ");
    println!("| chaos run | |");
    println!("|---|---|");
    println!(
        "| setup | {} nodes, lease {} s, {:.1} min of chaos, seed {} |",
        r.nodes, r.lease_secs, r.minutes, r.seed
    );
    println!("| events | {events} |");
    println!(
        "| jobs submitted | {} ({types}); {} submissions refused while nodes were down |",
        r.submitted, r.submit_errors
    );
    println!("| succeeded | {} |", r.succeeded);
    println!("| failed (by code) | {failed} |");
    println!("| cancelled | {} |", r.cancelled);
    println!("| lost (never ended) | {} |", r.lost);
    println!(
        "| run twice (more than one output, or output of a failed job) | {} |",
        r.duplicated + r.left_over_outputs
    );
    println!("| jobs taken over by another node | {} |", r.taken_over);
    println!(
        "| node killed/paused/restarted → its job released (re-queued) | p50 {}, max {} ({} jobs) |",
        fmt(rp50),
        fmt(rmax),
        r.release.samples_ms.len()
    );
    println!(
        "| node killed/paused/restarted → its job running again | p50 {}, max {} ({} jobs) |",
        fmt(np50),
        fmt(nmax),
        r.node_recovery.samples_ms.len()
    );
    println!(
        "| PostgreSQL restart (`pg_ctlcluster restart`) | p50 {}, max {} ({} restarts) |",
        fmt(op50),
        fmt(omax),
        r.pg_outage.samples_ms.len()
    );
    println!(
        "| PostgreSQL up again → every node answering | p50 {}, max {} |",
        fmt(pp50),
        fmt(pmax)
    );
    println!("| wall time | {:.0} s |", r.wall_secs);
}

/// An OpenAI-compatible chat endpoint on loopback that "fixes" each `#N text` line
/// (capitalized, a period at the end) — the LLM of the `fix_srt` jobs. Returns its `/v1` URL.
async fn llm_stub() -> Result<String> {
    use axum::Json;
    use axum::routing::post;
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        post(|Json(body): Json<Value>| async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let user = body["messages"][1]["content"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let part = user.split("Lines to fix:\n").nth(1).unwrap_or_default();
            let lines: Vec<String> = part
                .lines()
                .filter_map(|l| {
                    let (n, t) = l.strip_prefix('#')?.split_once(' ')?;
                    let mut c = t.chars();
                    let mut fixed: String = c
                        .next()
                        .map(|f| f.to_uppercase().chain(c).collect())
                        .unwrap_or_default();
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
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(format!("http://{addr}/v1"))
}
