//! A real cluster: three `mediajobs serve` processes, each with its own node id and port, on
//! one PostgreSQL database and one media directory, driven over HTTP. Real whisper (`base`,
//! one thread per node, so three nodes fit two cores), speech made by espeak-ng.
//!
//! What it proves (ADR 023): a batch spreads over the nodes and each job runs once; a node
//! killed with SIGKILL loses its job to another node within lease + reaper period, with one
//! output; a paused node's late writes are fenced out; a cancel sent to one node stops the
//! work on another within a second (by its CPU time); a PostgreSQL restart under load fails no
//! job and leaves none `running`; SSE on one node shows the progress of a job on another.
#![allow(clippy::unwrap_used)]
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Server;
use serde_json::{Value, json};

const P: &str = "cluster";
const MIN: Duration = Duration::from_secs(60);
/// The nodes' lease (`MEDIAJOBS_LEASE_SECS`); the heartbeat is a third of it, the reaper
/// runs every half of it.
const LEASE: Duration = Duration::from_secs(3);
const REAPER: Duration = Duration::from_millis(1500);

const TEXTS: &[&str] = &[
    "The committee met on Tuesday to discuss the new library.",
    "Members agreed that the building needs more windows.",
    "The mayor promised to review the budget next month.",
    "Last summer we drove along the coast and stopped in small villages.",
    "The weather was warm and the food was excellent.",
    "Every evening we watched the sun go down over the sea.",
    "The train to the city leaves at seven in the morning.",
    "She planted tomatoes and beans in the garden behind the house.",
    "Our neighbours painted their front door a bright shade of green.",
];

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

/// Three (or `n`) nodes on a fresh database of the PostgreSQL server of `admin`.
struct Cluster {
    nodes: Vec<Server>,
    data: tempfile::TempDir,
    media: tempfile::TempDir,
    db_url: String,
    db_name: String,
    admin: String,
}

impl Cluster {
    async fn start(admin: &str, n: usize) -> Cluster {
        let (db_url, db_name) = common::create_pg_db_on(admin).await;
        let data = tempfile::tempdir().unwrap();
        let media = tempfile::tempdir().unwrap();
        let mut nodes = Vec::new();
        for i in 0..n {
            nodes.push(start_node(data.path(), &node_env(&db_url, i)).await);
        }
        Cluster {
            nodes,
            data,
            media,
            db_url,
            db_name,
            admin: admin.to_owned(),
        }
    }

    fn node(&self, i: usize) -> &Server {
        &self.nodes[i]
    }

    /// The node whose id is `owner` (`node-<i>`).
    fn index_of(owner: &str) -> usize {
        owner.strip_prefix("node-").unwrap().parse().unwrap()
    }

    /// A node other than `i`.
    fn other(&self, i: usize) -> usize {
        (i + 1) % self.nodes.len()
    }

    fn psql(&self, sql: &str) -> String {
        psql(&self.db_url, sql)
    }

    /// `(status, lease_owner, attempts)` of a job, read from the database.
    fn row(&self, job: &str) -> (String, String, i64) {
        let out = self.psql(&format!(
            "select status, coalesce(lease_owner, ''), attempts from jobs where id = '{job}'"
        ));
        let f: Vec<&str> = out.split('|').collect();
        (f[0].to_owned(), f[1].to_owned(), f[2].parse().unwrap())
    }

    /// Waits until the job runs (on any node) and has reported at least `progress`; returns
    /// the index of its node.
    async fn wait_running(&self, job: &str, progress: f64) -> usize {
        let deadline = Instant::now() + MIN;
        loop {
            let out = self.psql(&format!(
                "select status, coalesce(lease_owner, ''), progress from jobs where id = '{job}'"
            ));
            let f: Vec<&str> = out.split('|').collect();
            if f[0] == "running" && !f[1].is_empty() && f[2].parse::<f64>().unwrap() >= progress {
                return Self::index_of(f[1]);
            }
            assert!(
                Instant::now() < deadline,
                "job {job} never ran past {progress}: {out}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Uploads a clip of `text` through node `via`.
    async fn upload_speech(&self, via: usize, name: &str, text: &str) -> String {
        let wav = common::speech(self.media.path(), name, text);
        let f = self
            .node(via)
            .upload(P, &format!("{name}.wav"), std::fs::read(&wav).unwrap())
            .await;
        id(&f)
    }

    async fn stop(mut self) {
        for n in &mut self.nodes {
            n.stop().await;
        }
        common::drop_pg_db_on(&self.admin, &self.db_name).await;
        drop(self.data);
    }
}

fn node_env(db_url: &str, i: usize) -> Vec<(String, String)> {
    vec![
        ("MEDIAJOBS_DATABASE_URL".into(), db_url.to_owned()),
        ("MEDIAJOBS_NODE_ID".into(), format!("node-{i}")),
        ("MEDIAJOBS_LEASE_SECS".into(), LEASE.as_secs().to_string()),
        ("MEDIAJOBS_WHISPER_THREADS".into(), "1".into()),
        ("MEDIAJOBS_HEAVY_CONCURRENCY".into(), "1".into()),
    ]
}

async fn start_node(data: &Path, env: &[(String, String)]) -> Server {
    let env: Vec<(&str, &str)> = env.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    Server::start(data, &env).await
}

fn psql(url: &str, sql: &str) -> String {
    let out = std::process::Command::new("psql")
        .args([url, "-Atc", sql])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "psql: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Aborts a task when dropped.
struct Abort(tokio::task::JoinHandle<()>);

impl Drop for Abort {
    fn drop(&mut self) {
        self.0.abort();
    }
}

type Owners = Arc<Mutex<BTreeMap<String, BTreeSet<String>>>>;

/// Samples which node runs which job every 50 ms until dropped: job id → the owners seen.
fn watch_owners(url: String) -> (Owners, Abort) {
    let seen: Owners = Arc::default();
    let s = seen.clone();
    let task = tokio::spawn(async move {
        loop {
            let url = url.clone();
            let out = tokio::task::spawn_blocking(move || {
                std::process::Command::new("psql")
                    .args([
                        url.as_str(),
                        "-Atc",
                        "select id, lease_owner from jobs where status = 'running' and lease_owner is not null",
                    ])
                    .output()
            })
            .await
            .unwrap();
            if let Ok(out) = out {
                for line in String::from_utf8_lossy(&out.stdout).lines() {
                    if let Some((job, owner)) = line.split_once('|') {
                        s.lock()
                            .unwrap()
                            .entry(job.to_owned())
                            .or_default()
                            .insert(owner.to_owned());
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    (seen, Abort(task))
}

/// How many transcripts the profile has of `file`.
async fn transcripts_of(s: &Server, file: &str) -> usize {
    let (st, list) = s.get("/profiles/transcripts?limit=1000", P).await;
    assert_eq!(st, 200, "{list}");
    list.as_array()
        .unwrap()
        .iter()
        .filter(|t| t["file_id"] == file)
        .count()
}

fn main_admin() -> String {
    common::pg_admin_url()
}

/// The admin URL and `pg_ctlcluster` name of the PostgreSQL that tests may restart
/// (`scripts/pg-chaos.sh`, which `scripts/test.sh` runs).
fn chaos_pg() -> (String, Vec<String>) {
    let url = std::env::var("MEDIAJOBS_CHAOS_PG").expect(
        "MEDIAJOBS_CHAOS_PG is not set: run `source scripts/pg-chaos.sh` first (scripts/test.sh does)",
    );
    let cluster = std::env::var("MEDIAJOBS_CHAOS_PG_CLUSTER")
        .expect("MEDIAJOBS_CHAOS_PG_CLUSTER is not set (scripts/pg-chaos.sh)");
    (url, cluster.split_whitespace().map(str::to_owned).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_spreads_over_the_nodes_and_each_job_runs_once() {
    let c = Cluster::start(&main_admin(), 3).await;
    let mut files = Vec::new();
    for (i, text) in TEXTS.iter().take(6).enumerate() {
        files.push(c.upload_speech(i % 3, &format!("clip{i}"), text).await);
    }
    let (seen, _watch) = watch_owners(c.db_url.clone());
    let (st, batch) = c
        .node(1)
        .post(
            "/jobs/batch",
            P,
            json!({"type": "batch_transcribe", "file_ids": files, "dedupe": false}),
        )
        .await;
    assert_eq!(st, 202, "{batch}");
    let done = c.node(2).wait(P, &id(&batch), 4 * MIN).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let (_, kids) = c
        .node(0)
        .get(&format!("/jobs/{}/children", id(&batch)), P)
        .await;
    let kids = kids.as_array().unwrap().clone();
    assert_eq!(kids.len(), 6);
    let seen = seen.lock().unwrap().clone();
    let mut nodes = BTreeSet::new();
    for k in &kids {
        assert_eq!(k["status"], "succeeded", "{k}");
        let (_, _, attempts) = c.row(&id(k));
        assert_eq!(attempts, 1, "each child ran once: {k}");
        let owners = seen.get(&id(k)).cloned().unwrap_or_default();
        assert!(owners.len() <= 1, "one node ran {}: {owners:?}", id(k));
        nodes.extend(owners);
    }
    eprintln!("children ran on {nodes:?}");
    assert!(
        nodes.len() >= 2,
        "the batch spread over the nodes: {nodes:?}"
    );
    // One complete output per input, whichever node wrote it.
    for (f, text) in files.iter().zip(TEXTS) {
        assert_eq!(transcripts_of(c.node(0), f).await, 1);
        let kid = kids.iter().find(|k| k["file_id"] == *f).unwrap();
        let got = kid["result"]["transcript"].as_str().unwrap_or_default();
        // base on one short sentence: complete (to its last word), not word-perfect.
        let last = text.trim_end_matches('.').rsplit(' ').next().unwrap();
        assert!(got.to_lowercase().contains(last), "{text} → {got}");
    }
    c.stop().await;
}

/// The transcription of a long clip, submitted through node 0.
async fn long_job(c: &Cluster, name: &str, repeat: usize) -> (String, String) {
    let text = [common::SPEECH; 8][..repeat].join(" ");
    let file = c.upload_speech(0, name, &text).await;
    let job = c
        .node(0)
        .submit(
            P,
            json!({"type": "transcribe", "file_id": file, "dedupe": false}),
        )
        .await;
    (id(&job), file)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_loses_its_job_to_another_within_lease_and_reaper() {
    let mut c = Cluster::start(&main_admin(), 3).await;
    let (job, file) = long_job(&c, "long", 6).await;
    let victim = c.wait_running(&job, 0.1).await;
    c.nodes[victim].kill9().await;
    let killed = Instant::now();
    // Another node takes it over: attempt 2, running elsewhere.
    let taken = loop {
        let (status, owner, attempts) = c.row(&job);
        if status == "running" && attempts == 2 && !owner.is_empty() {
            break Cluster::index_of(&owner);
        }
        assert!(
            killed.elapsed() < 4 * LEASE,
            "not taken over in {:?}: {status} {owner} {attempts}",
            killed.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let recovery = killed.elapsed();
    eprintln!("node-{victim} killed; node-{taken} took the job after {recovery:?}");
    assert_ne!(taken, victim);
    // Lease + one reaper period, and the claim that follows the reaper's requeue.
    assert!(
        recovery <= LEASE + REAPER + Duration::from_secs(1),
        "recovered in {recovery:?}"
    );
    let done = c.nodes[taken].wait(P, &job, 4 * MIN).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["attempts"], 2);
    assert_eq!(
        transcripts_of(&c.nodes[taken], &file).await,
        1,
        "one output"
    );
    // The killed node comes back; its start-up cleans its own temp files only.
    c.nodes[victim].restart().await;
    let (st, _) = c.nodes[victim].get("/health", P).await;
    assert_eq!(st, 200);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_node_is_fenced_out() {
    let c = Cluster::start(&main_admin(), 3).await;
    let (job, file) = long_job(&c, "long", 8).await;
    // Paused late in its work: when it wakes, its transcription is nearly done and its first
    // writes are the output and the outcome, both after another node finished the job.
    let paused = c.wait_running(&job, 0.5).await;
    c.node(paused).signal("STOP");
    let done = c.node(c.other(paused)).wait(P, &job, 4 * MIN).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["attempts"], 2, "another node ran it again");
    let result = done["result"].clone();
    c.node(paused).signal("CONT");
    tokio::time::sleep(LEASE + Duration::from_secs(2)).await;
    let after = c.node(paused).wait(P, &job, MIN).await;
    assert_eq!(after["status"], "succeeded");
    assert_eq!(after["result"], result, "the late node changed nothing");
    assert_eq!(
        transcripts_of(c.node(0), &file).await,
        1,
        "no second output"
    );
    let log = std::fs::read_to_string(c.node(paused).log_path()).unwrap();
    assert!(
        log.contains("lease lost") || log.contains("no longer holds its lease"),
        "the paused node learnt it lost the job"
    );
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_on_one_node_stops_the_work_on_another_within_a_second() {
    let c = Cluster::start(&main_admin(), 3).await;
    let (job, file) = long_job(&c, "long", 6).await;
    let runner = c.wait_running(&job, 0.2).await;
    let via = c.other(runner);
    let t0 = Instant::now();
    let (st, _) = c
        .node(via)
        .post(&format!("/jobs/{job}/cancel"), P, json!({}))
        .await;
    assert_eq!(st, 200);
    loop {
        let (status, _, _) = c.row(&job);
        if status == "cancelled" {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(1), "still {status}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!("cancelled through node-{via} in {:?}", t0.elapsed());
    // The work on the runner stops too: its CPU time flat from 1 s to 3 s after the cancel.
    tokio::time::sleep_until((t0 + Duration::from_secs(1)).into()).await;
    let at_1s = c.node(runner).cpu_time();
    tokio::time::sleep_until((t0 + Duration::from_secs(3)).into()).await;
    let used = c.node(runner).cpu_time() - at_1s;
    eprintln!("node-{runner} used {used:?} of CPU from 1 s to 3 s after the cancel");
    assert!(
        used < Duration::from_millis(150),
        "node-{runner} kept working: {used:?} of CPU from 1 s to 3 s after the cancel"
    );
    assert_eq!(transcripts_of(c.node(0), &file).await, 0, "no output");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_on_one_node_shows_a_job_running_on_another() {
    let c = Cluster::start(&main_admin(), 3).await;
    let (job, _) = long_job(&c, "long", 3).await;
    let runner = c.wait_running(&job, 0.0).await;
    let watcher = c.other(runner);
    let url = c.node(watcher).url(&format!("/jobs/{job}/events"));
    let events =
        common::sse_events(&common::client(), &url, P, 3 * MIN, |e, _| e == "finished").await;
    let kinds: Vec<&str> = events.iter().map(|(e, _)| e.as_str()).collect();
    let progress: Vec<f64> = events
        .iter()
        .filter(|(e, _)| e == "progress")
        .filter_map(|(_, v)| v["progress"].as_f64())
        .collect();
    eprintln!("node-{watcher} saw {kinds:?} of a job on node-{runner}; progress {progress:?}");
    assert_eq!(kinds.last(), Some(&"finished"), "{kinds:?}");
    assert_eq!(events.last().unwrap().1["status"], "succeeded");
    assert!(progress.len() >= 2, "live progress: {progress:?}");
    assert!(progress.windows(2).all(|w| w[0] <= w[1]), "{progress:?}");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_under_load_fails_no_job() {
    let (admin, cluster) = chaos_pg();
    let c = Cluster::start(&admin, 3).await;
    let mut jobs = Vec::new();
    for (i, text) in TEXTS.iter().enumerate() {
        let long = [*text; 4].join(" ");
        let f = c.upload_speech(i % 3, &format!("clip{i}"), &long).await;
        let j = c
            .node(i % 3)
            .submit(
                P,
                json!({"type": "transcribe", "file_id": f, "dedupe": false}),
            )
            .await;
        jobs.push((id(&j), f));
    }
    // Three running (one per node), six queued: restart PostgreSQL twice under that load.
    for round in 0..2 {
        let deadline = Instant::now() + MIN;
        while c
            .psql("select count(*) from jobs where status = 'running'")
            .parse::<i64>()
            .unwrap()
            < 2
        {
            assert!(Instant::now() < deadline, "nothing runs");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let st = std::process::Command::new("pg_ctlcluster")
            .args([
                "--skip-systemctl-redirect",
                &cluster[0],
                &cluster[1],
                "restart",
            ])
            .status()
            .unwrap();
        assert!(st.success(), "pg_ctlcluster restart");
        eprintln!("PostgreSQL restarted (round {round})");
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    for (job, file) in &jobs {
        let done = c.node(0).wait(P, job, 4 * MIN).await;
        assert_eq!(done["status"], "succeeded", "{done}");
        assert_eq!(
            transcripts_of(c.node(0), file).await,
            1,
            "one output of {job}"
        );
    }
    assert_eq!(
        c.psql("select count(*) from jobs where status in ('running', 'queued')"),
        "0"
    );
    // Every node serves and runs jobs again.
    for (i, text) in TEXTS.iter().take(3).enumerate() {
        let f = c.upload_speech(i, &format!("after{i}"), text).await;
        let j = c
            .node(i)
            .submit(
                P,
                json!({"type": "transcribe", "file_id": f, "dedupe": false}),
            )
            .await;
        let done = c.node(i).wait(P, &id(&j), 2 * MIN).await;
        assert_eq!(done["status"], "succeeded", "{done}");
    }
    let failed_logs: Vec<String> = (0..3)
        .map(|i| std::fs::read_to_string(c.node(i).log_path()).unwrap())
        .filter(|l| l.contains("ServerError"))
        .collect();
    assert!(failed_logs.is_empty(), "no job failed with ServerError");
    c.stop().await;
}
