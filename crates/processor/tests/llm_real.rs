//! Smoke test with a real model: llama.cpp's llama-server (built from the PyPI sdist) serving
//! SmolLM2-135M, a real generator of malformed output. The pipeline must either produce cues
//! that keep the source's count and timings, or fail cleanly with `LLMOutputInvalid` — never
//! anything else. Only structure and validator behaviour are asserted, never text quality.
#![cfg(all(feature = "llm", feature = "media"))]
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mediajobs_processor::llm::{
    LlmRefiner, ProviderConfig, Providers, RefineOptions, SubtitleRefiner,
};
use mediajobs_processor::subtitle::{parse_srt, to_srt};
use mediajobs_processor::{CancellationToken, no_progress};

const SRT: &str = "1\n00:00:01,000 --> 00:00:03,000\nthe wether today is realy nice\n\n\
2\n00:00:03,500 --> 00:00:05,000\nwe shoud go to the beech\n\n\
3\n00:00:05,500 --> 00:00:07,500\ndont forget you're sunscreen\n\n\
4\n00:00:08,000 --> 00:00:10,000\ni will bring sandwitches\n\n\
5\n00:00:10,500 --> 00:00:12,000\nand somthing to drink\n\n\
6\n00:00:12,500 --> 00:00:14,500\nthe water might be cold thow\n\n\
7\n00:00:15,000 --> 00:00:17,000\nits still early in the seasen\n\n\
8\n00:00:17,500 --> 00:00:19,500\nlets leave at ten oclock\n";

/// Paths of llama-server and the model: from the environment, or prepared by the script
/// (built once, cached).
fn prepared() -> (PathBuf, PathBuf) {
    if let (Ok(b), Ok(m)) = (
        std::env::var("MEDIAJOBS_LLAMA_SERVER"),
        std::env::var("MEDIAJOBS_SMOLLM2"),
    ) {
        return (b.into(), m.into());
    }
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/llama-server.sh");
    let out = std::process::Command::new("bash")
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}: {}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let get = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .map(PathBuf::from)
            .unwrap()
    };
    (get("MEDIAJOBS_LLAMA_SERVER"), get("MEDIAJOBS_SMOLLM2"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smollm2_output_is_validated_never_saved_broken() {
    let (bin, model) = prepared();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut server = tokio::process::Command::new(&bin)
        .args(["-m"])
        .arg(&model)
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "-t",
            "2",
            "-np",
            "1",
            "-c",
            "4096",
            "--offline",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let health = format!("http://127.0.0.1:{port}/health");
    let t0 = Instant::now();
    loop {
        if let Ok(Ok(r)) = tokio::time::timeout(Duration::from_secs(2), async {
            tokio::net::TcpStream::connect(("127.0.0.1", port)).await
        })
        .await
        {
            drop(r);
            if std::process::Command::new("curl")
                .args(["-sf", &health])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false)
            {
                break;
            }
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "llama-server did not become healthy"
        );
        assert!(server.try_wait().unwrap().is_none(), "llama-server exited");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let mut cfg = ProviderConfig::new("local", &format!("http://127.0.0.1:{port}/v1"), None);
    cfg.timeout = Duration::from_secs(120);
    cfg.max_concurrency = 1;
    let refiner = LlmRefiner::new(Arc::new(Providers::new(vec![cfg]).unwrap()));
    let source = parse_srt(SRT).unwrap();
    let opts = RefineOptions {
        max_window_cues: 4,
        deadline: Duration::from_secs(600),
        ..Default::default()
    };
    let t0 = Instant::now();
    let res = refiner
        .refine(
            &source,
            "local:smollm2",
            &opts,
            no_progress(),
            &CancellationToken::new(),
        )
        .await;
    eprintln!("took {:?}", t0.elapsed());
    match res {
        Ok(rep) => {
            eprintln!(
                "fell back to smaller windows and succeeded: {:?}\n{}",
                rep.usage,
                to_srt(&rep.cues)
            );
            assert_eq!(rep.cues.len(), source.len());
            for (a, b) in source.iter().zip(&rep.cues) {
                assert_eq!((a.start_ms, a.end_ms), (b.start_ms, b.end_ms));
                assert!(!b.text.trim().is_empty());
            }
            assert_eq!(parse_srt(&to_srt(&rep.cues)).unwrap(), rep.cues);
        }
        Err(e) => {
            eprintln!("failed cleanly: {e}");
            assert_eq!(e.code(), "LLMOutputInvalid", "{e}");
        }
    }
    server.kill().await.unwrap();
}
