//! The web dashboard in a real browser: Debian's headless Chromium driven over WebDriver
//! (chromedriver) against the real `mediajobs` binary on loopback, real whisper, real
//! GStreamer media made here, the scripted LLM server for `fix_srt`.
//!
//! `MEDIAJOBS_SCREENSHOTS=docs/screenshots` writes the main pages' screenshots there.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::Server;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

/// chromedriver and a Chromium session; both end when dropped.
struct Browser {
    client: Client,
    _driver: tokio::process::Child,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn browser() -> Browser {
    let port = free_port();
    let driver = tokio::process::Command::new(
        std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into()),
    )
    .arg(format!("--port={port}"))
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .kill_on_drop(true)
    .spawn()
    .expect("chromedriver (Debian package chromium-driver) must be installed");
    let url = format!("http://127.0.0.1:{port}");
    let t0 = Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "chromedriver did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let caps = json!({
        "goog:chromeOptions": {
            "binary": std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,900", "--mute-audio", "--no-first-run",
                     "--disable-background-networking", "--disable-extensions"]
        }
    });
    let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps.as_object().unwrap().clone())
        .connect(&url)
        .await
        .expect("a Chromium session");
    Browser {
        client,
        _driver: driver,
    }
}

impl Browser {
    async fn js(&self, script: &str) -> Value {
        self.client.execute(script, vec![]).await.unwrap()
    }

    /// Polls `script` (a JS expression) until it is truthy; returns its value.
    async fn until(&self, what: &str, script: &str, limit: Duration) -> Value {
        let t0 = Instant::now();
        loop {
            let v = self.js(&format!("return ({script});")).await;
            if !(v.is_null() || v == json!(false) || v == json!(0) || v == json!("")) {
                return v;
            }
            if t0.elapsed() > limit {
                let notice = self
                    .js("return document.getElementById('notice').textContent")
                    .await;
                let hash = self.js("return location.hash").await;
                panic!("{what}: not true after {limit:?} ({hash}; notice: {notice})");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn click(&self, css: &str) {
        self.client
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    async fn type_into(&self, css: &str, text: &str) {
        let el = self
            .client
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"));
        el.clear().await.unwrap();
        el.send_keys(text).await.unwrap();
    }

    /// Opens a view by its hash and waits until it has rendered.
    async fn go(&self, hash: &str) {
        self.js(&format!("location.hash = {}; return 1;", json!(hash)))
            .await;
        let view = hash
            .trim_start_matches("#/")
            .split(['/', '?'])
            .next()
            .unwrap();
        self.until(
            &format!("view {hash}"),
            &format!(
                "document.getElementById('main').dataset.view === {} && !document.getElementById('loading')",
                json!(view)
            ),
            Duration::from_secs(20),
        )
        .await;
    }

    async fn use_profile(&self, profile: &str) {
        self.type_into("#profile-input", profile).await;
        self.click("#profile-form button").await;
    }

    async fn screenshot(&self, name: &str) {
        if let Some(dir) = std::env::var_os("MEDIAJOBS_SCREENSHOTS") {
            let png = self.client.screenshot().await.unwrap();
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(Path::new(&dir).join(format!("{name}.png")), png).unwrap();
        }
    }

    /// The job id of the job page the browser shows.
    async fn job_page_id(&self) -> String {
        let v = self
            .until(
                "a job page",
                "/^#\\/jobs\\/[0-9a-f-]{36}$/.test(location.hash) && location.hash.slice(7)",
                Duration::from_secs(20),
            )
            .await;
        v.as_str().unwrap().to_owned()
    }
}

fn srt(dir: &Path, name: &str, lines: &[&str]) -> PathBuf {
    let mut text = String::new();
    for (i, l) in lines.iter().enumerate() {
        text.push_str(&format!(
            "{}\n00:00:0{},000 --> 00:00:0{},500\n{l}\n\n",
            i + 1,
            i,
            i
        ));
    }
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_runs_every_kind_of_job_live() {
    let dir = tempfile::tempdir().unwrap();
    let llm = common::llm_stub(Duration::from_millis(100)).await;
    let s = Server::start(dir.path(), &[("MEDIAJOBS_LLM_STUB_BASE_URL", llm.as_str())]).await;
    let text = format!("{} {} {}", common::SPEECH, common::SPEECH, common::SPEECH);
    let wav = common::speech(dir.path(), "talk", &text);
    let video = common::video_with(dir.path(), "talk", &wav, 24);
    let b = browser().await;

    // The page and its security headers.
    let r = common::client().get(s.url("/")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );

    b.client.goto(&s.url("/")).await.unwrap();
    b.use_profile("alice").await;
    b.until(
        "jobs page",
        "document.querySelector('#jobs-body')",
        Duration::from_secs(20),
    )
    .await;
    // Set on the page once: a reload would lose it.
    b.js("window.__kept = 42; return 1;").await;

    // Upload through the file picker, with its progress bar.
    b.go("#/files").await;
    b.client
        .find(Locator::Css("#file-pick"))
        .await
        .unwrap()
        .send_keys(video.to_str().unwrap())
        .await
        .unwrap();
    b.until(
        "the video in the file list",
        "document.querySelector('#files-body tr[data-kind=video]')",
        Duration::from_secs(60),
    )
    .await;
    b.screenshot("files").await;

    // Submit generate_srt from the selection; the form has every documented option.
    b.click("#files-body tr[data-kind=video] input[type=checkbox]")
        .await;
    b.click("#submit-selected").await;
    b.until(
        "the submit form",
        "document.querySelector('#job-options')",
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(
        b.js("return document.getElementById('job-type').value")
            .await,
        "generate_srt"
    );
    let doc: Value = common::client()
        .get(s.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut documented: Vec<String> =
        doc["components"]["schemas"]["GenerateSrtOptions"]["properties"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
    documented.sort();
    let shown = b
        .js("return [...document.querySelectorAll('#job-options [name]')].map(e => e.name).sort()")
        .await;
    assert_eq!(
        shown,
        json!(documented),
        "a form field per documented option"
    );
    b.type_into("#opt-language", "en").await;
    b.screenshot("submit").await;
    b.click("#job-submit").await;
    let job_id = b.job_page_id().await;

    // Progress moves and the job ends without a reload.
    let t0 = Instant::now();
    let mut seen: Vec<f64> = Vec::new();
    loop {
        let v = b
            .js("const p = document.querySelector('main dl progress'); const s = document.querySelector('main dl .status'); return [p ? p.value : -1, s ? s.textContent : ''];")
            .await;
        let (p, st) = (v[0].as_f64().unwrap(), v[1].as_str().unwrap().to_owned());
        if seen.last() != Some(&p) {
            seen.push(p);
        }
        if st == "succeeded" {
            break;
        }
        assert!(st != "failed" && st != "cancelled", "job ended {st}");
        assert!(
            t0.elapsed() < Duration::from_secs(180),
            "no end; progress seen {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    assert!(
        seen.iter().any(|p| *p > 0.0 && *p < 1.0),
        "the bar moved through intermediate values: {seen:?}"
    );
    assert!(
        seen.windows(2).all(|w| w[0] <= w[1]),
        "never backwards: {seen:?}"
    );
    assert_eq!(b.js("return window.__kept").await, 42, "no reload");
    let job = s.wait("alice", &job_id, Duration::from_secs(5)).await;
    let srt_id = job["result"]["srt_file_id"].as_str().unwrap().to_owned();

    // Preview: the player has the subtitles as a track, the cue list beside it; a cue seeks.
    b.go(&format!("#/preview/{srt_id}")).await;
    b.until(
        "cues",
        "document.querySelectorAll('#cue-list button').length > 1",
        Duration::from_secs(20),
    )
    .await;
    let track = b
        .js("const t = document.querySelector('#player track'); return t ? t.getAttribute('src') : null")
        .await;
    assert!(track.as_str().unwrap().contains("format=vtt"), "{track}");
    b.until(
        "the browser parsed the track",
        "(() => { const v = document.getElementById('player'); return v.readyState >= 1 && v.textTracks.length === 1 && v.textTracks[0].cues && v.textTracks[0].cues.length > 0; })()",
        Duration::from_secs(20),
    )
    .await;
    let start = b
        .js("const b = document.querySelectorAll('#cue-list button')[1]; return Number(b.dataset.start);")
        .await
        .as_f64()
        .unwrap();
    b.click("#cue-list li:nth-child(2) button").await;
    b.until(
        "the player seeked to the cue",
        &format!("Math.abs(document.getElementById('player').currentTime * 1000 - {start}) < 1500"),
        Duration::from_secs(10),
    )
    .await;
    b.js("document.getElementById('player').pause(); return 1;")
        .await;
    b.screenshot("preview").await;

    // fix_srt from the form, then the raw and fixed SRT side by side.
    b.go(&format!("#/submit?files={srt_id}")).await;
    assert_eq!(
        b.js("return document.getElementById('job-type').value")
            .await,
        "fix_srt"
    );
    assert_eq!(
        b.js("return [...document.querySelectorAll('#llm-provider option')].map(o => o.value)")
            .await,
        json!(["stub"])
    );
    b.type_into("#llm-model", "tiny").await;
    b.click("#job-submit").await;
    let fix_id = b.job_page_id().await;
    b.until(
        "fix_srt succeeded",
        "document.querySelector('main dl .status-succeeded')",
        Duration::from_secs(60),
    )
    .await;
    let fixed = s.wait("alice", &fix_id, Duration::from_secs(5)).await;
    let fixed_id = fixed["result"]["srt_file_id"].as_str().unwrap().to_owned();
    b.go(&format!("#/preview/{fixed_id}")).await;
    b.until(
        "the comparison",
        "document.querySelectorAll('#compare-table tbody tr').length > 1",
        Duration::from_secs(20),
    )
    .await;

    // Cancel a running job from the page: its work stops.
    b.go(&format!("#/submit?files={srt_id}")).await;
    b.type_into("#llm-model", "tiny").await;
    b.type_into("#llm-sys", "SLOW").await;
    b.click("#job-submit").await;
    let slow_id = b.job_page_id().await;
    b.until(
        "running",
        "document.querySelector('main dl .status-running')",
        Duration::from_secs(30),
    )
    .await;
    b.click("#job-actions .act-cancel").await;
    b.until(
        "cancelled",
        "document.querySelector('main dl .status-cancelled')",
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(
        s.wait("alice", &slow_id, Duration::from_secs(5)).await["status"],
        "cancelled"
    );

    // Retry a failed one from the page: the first answer is refused, the second is good.
    b.go(&format!("#/submit?files={srt_id}")).await;
    b.type_into("#llm-model", "tiny").await;
    b.type_into("#llm-sys", "FLAKY").await;
    b.click("#job-submit").await;
    let flaky_id = b.job_page_id().await;
    b.until(
        "failed",
        "document.querySelector('main dl .status-failed')",
        Duration::from_secs(60),
    )
    .await;
    let code = b
        .js("return document.getElementById('job-error').textContent")
        .await;
    assert!(
        code.as_str().unwrap().contains("LLMOutputInvalid"),
        "{code}"
    );
    // The stub refuses for 3 s from its first FLAKY request.
    tokio::time::sleep(Duration::from_secs(3)).await;
    b.click("#job-actions .act-retry").await;
    b.until(
        "succeeded after retry",
        "document.querySelector('main dl .status-succeeded')",
        Duration::from_secs(60),
    )
    .await;
    let j = s.wait("alice", &flaky_id, Duration::from_secs(5)).await;
    assert_eq!(j["status"], "succeeded");
    assert_eq!(j["attempts"], 2, "{j}");

    // A batch over two subtitle files, with its children live on the batch's page.
    let other = srt(dir.path(), "other.srt", &["hello there", "general kenobi"]);
    let other_id = s
        .upload("alice", "other.srt", std::fs::read(&other).unwrap())
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    b.go(&format!("#/submit?files={srt_id}")).await;
    let other_box = b
        .until(
            "the second file in the form",
            "[...document.querySelectorAll('#job-files label')].find(l => l.textContent.startsWith('other.srt'))?.getAttribute('for')",
            Duration::from_secs(10),
        )
        .await;
    b.click(&format!("#{}", other_box.as_str().unwrap())).await;
    b.type_into("#llm-model", "tiny").await;
    b.click("#job-submit").await;
    let batch_id = b.job_page_id().await;
    b.until(
        "two children",
        "document.querySelectorAll('#children-body tr').length === 2",
        Duration::from_secs(20),
    )
    .await;
    b.until(
        "batch and children succeeded",
        "document.querySelector('main dl .status-succeeded') && document.querySelectorAll('#children-body tr[data-status=succeeded]').length === 2",
        Duration::from_secs(60),
    )
    .await;
    b.screenshot("job").await;
    let batch = s.wait("alice", &batch_id, Duration::from_secs(5)).await;
    assert_eq!(batch["type"], "batch_fix_srt");
    // The uploaded SRT beside its fixed version, the changed words marked.
    b.go(&format!("#/preview/{other_id}")).await;
    b.until(
        "marked words",
        "document.querySelectorAll('#compare-table mark').length >= 2",
        Duration::from_secs(20),
    )
    .await;
    let marked = b
        .js("return [...document.querySelectorAll('#compare-table mark')].map(m => m.textContent)")
        .await;
    assert!(
        marked.as_array().unwrap().iter().any(|m| m == "Hello"),
        "{marked}"
    );
    b.screenshot("compare").await;

    // The list shows every job with its final status, live.
    b.go("#/jobs").await;
    b.until(
        "live",
        "document.getElementById('live').dataset.state === 'live'",
        Duration::from_secs(10),
    )
    .await;
    for (id, status) in [
        (&job_id, "succeeded"),
        (&slow_id, "cancelled"),
        (&flaky_id, "succeeded"),
        (&batch_id, "succeeded"),
    ] {
        b.until(
            &format!("row {id} {status}"),
            &format!("document.querySelector('#jobs-body tr[data-job-id=\"{id}\"][data-status={status}]')"),
            Duration::from_secs(10),
        )
        .await;
    }
    // A job submitted elsewhere appears without a reload.
    let (code, _) = s
        .post(
            "/jobs",
            "alice",
            json!({"type": "fix_srt", "file_id": srt_id, "model": "stub:tiny"}),
        )
        .await;
    assert_eq!(code, 202);
    b.until(
        "a sixth row, live",
        "document.querySelectorAll('#jobs-body tr').length === 6",
        Duration::from_secs(10),
    )
    .await;
    b.until(
        "it succeeded, live",
        "document.querySelectorAll('#jobs-body tr[data-status=succeeded]').length === 5",
        Duration::from_secs(30),
    )
    .await;
    b.screenshot("jobs").await;
    assert_eq!(b.js("return window.__kept").await, 42, "still no reload");

    b.go("#/server").await;
    b.until(
        "lanes",
        "document.querySelector('#lanes tr[data-lane=heavy]')",
        Duration::from_secs(10),
    )
    .await;
    b.screenshot("server").await;

    // On a phone-sized window the page still fits: nothing wider than the viewport.
    b.client.set_window_size(390, 844).await.unwrap();
    b.go("#/jobs").await;
    let overflow = b
        .js("return document.documentElement.scrollWidth - document.documentElement.clientWidth")
        .await;
    assert!(
        overflow.as_i64().unwrap() <= 0,
        "horizontal overflow {overflow}px"
    );
    b.screenshot("phone-jobs").await;
    b.client.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_asks_for_a_token_and_keeps_profiles_apart() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(
        dir.path(),
        &[(
            "MEDIAJOBS_API_TOKENS",
            "alice-token-123=alice;bob-token-456=bob",
        )],
    )
    .await;
    let upload = |profile: &'static str, token: &'static str, name: &'static str| {
        let http = common::client();
        let url = s.url("/profiles/files");
        let body = std::fs::read(srt(dir.path(), name, &["one line"])).unwrap();
        async move {
            let r = http
                .post(url)
                .header("X-Profile-ID", profile)
                .header("Authorization", format!("Bearer {token}"))
                .header("X-File-Name", name)
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 201);
        }
    };
    upload("alice", "alice-token-123", "alice-secret.srt").await;
    upload("bob", "bob-token-456", "bob-secret.srt").await;

    let b = browser().await;
    // Choose the profile before the page asks anything (as a returning user has it stored).
    b.client.goto(&s.url("/ui/icon.svg")).await.unwrap();
    b.js("localStorage.setItem('mediajobs.profile', 'alice'); return 1;")
        .await;
    b.client.goto(&s.url("/#/files")).await.unwrap();
    b.until(
        "the token prompt",
        "document.getElementById('token-dialog').open",
        Duration::from_secs(20),
    )
    .await;
    b.screenshot("token").await;
    // A wrong token is refused and asked for again.
    b.type_into("#token-input", "not-the-token").await;
    b.click("#token-form button").await;
    b.until(
        "asked again, with the refusal",
        "document.getElementById('token-dialog').open && document.getElementById('token-error').textContent.length > 0",
        Duration::from_secs(10),
    )
    .await;
    b.type_into("#token-input", "alice-token-123").await;
    b.click("#token-form button").await;
    b.until(
        "alice's files",
        "document.querySelector('#files-body')",
        Duration::from_secs(20),
    )
    .await;
    let names = b
        .js("return document.getElementById('files-body').textContent")
        .await;
    assert!(
        names.as_str().unwrap().contains("alice-secret.srt"),
        "{names}"
    );
    assert!(!names.as_str().unwrap().contains("bob-secret"), "{names}");

    // Bob's profile with alice's token: refused, a prompt; bob's token shows only bob's files.
    b.use_profile("bob").await;
    b.until(
        "the token prompt for bob",
        "document.getElementById('token-dialog').open",
        Duration::from_secs(20),
    )
    .await;
    b.type_into("#token-input", "bob-token-456").await;
    b.click("#token-form button").await;
    b.until(
        "bob's files",
        "document.querySelector('#files-body') && document.getElementById('files-body').textContent.includes('bob-secret.srt')",
        Duration::from_secs(20),
    )
    .await;
    let names = b.js("return document.body.textContent").await;
    assert!(
        !names.as_str().unwrap().contains("alice-secret"),
        "nothing of alice"
    );
    // A file link issued to bob opens bob's file only, and no forged link opens alice's.
    let link = b
        .js("return fetch('/profiles/files/' + document.querySelector('#files-body tr').dataset.fileId + '/link', {method: 'POST', headers: {'X-Profile-ID': 'bob', 'Authorization': 'Bearer bob-token-456'}}).then(r => r.json())")
        .await;
    let url = link["url"].as_str().unwrap();
    let body = common::client()
        .get(s.url(url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.contains("one line"), "{body}");
    let forged = url.replacen("/links/bob.", "/links/alice.", 1);
    let r = common::client().get(s.url(&forged)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 404);
    b.client.close().await.unwrap();
}

/// `/docs` is Swagger UI served by the binary: it renders every operation of
/// `/openapi.json` in the browser, loading nothing from another origin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_docs_render_from_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]).await;
    let (_, doc) = s.get("/openapi.json", "p").await;
    let ops: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|p| p.as_object().unwrap().len())
        .sum();
    let b = browser().await;
    b.client.goto(&s.url("/docs")).await.unwrap();
    let shown = b
        .until(
            "Swagger UI's operations",
            "document.querySelectorAll('.opblock').length",
            Duration::from_secs(30),
        )
        .await;
    assert_eq!(
        shown.as_u64().unwrap() as usize,
        ops,
        "one block per operation"
    );
    let title = b
        .js("return document.querySelector('.info .title').textContent")
        .await;
    assert!(title.as_str().unwrap().contains("mediajobs"), "{title}");
    let foreign = b
        .js(&format!(
            "return performance.getEntriesByType('resource').map(e => e.name).filter(n => !n.startsWith({}))",
            json!(s.base)
        ))
        .await;
    assert_eq!(foreign, json!([]), "everything comes from the server");
    // Nor would it on a public host name: the online validator is off.
    let init = common::send(common::client().get(s.url("/docs/swagger-initializer.js"))).await;
    let init = init.1["raw"].as_str().unwrap_or_default().to_owned();
    assert!(init.contains("\"validatorUrl\": \"none\""), "{init}");
    b.screenshot("docs").await;
}
