//! LLM subtitle fixing and remote transcription against a scripted OpenAI-compatible server on
//! loopback, covering every failure mode.
#![cfg(all(feature = "llm", feature = "media"))]
#![allow(clippy::unwrap_used)]
mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::llm_stub::{self, Stub, asked_lines};
use mediajobs_processor::llm::{
    DEFAULT_SYSTEM_PROMPT, LlmRefiner, ProviderConfig, Providers, RefineOptions, RefineReport,
    RetryPolicy, SubtitleRefiner, TokenUsage,
};
use mediajobs_processor::media::{Gst, GstConfig};
use mediajobs_processor::subtitle::Cue;
use mediajobs_processor::transcribe::{RemoteTranscriber, RemoteTranscriberConfig};
use mediajobs_processor::transcribe::{TranscribeOptions, Transcriber};
use mediajobs_processor::{CancellationToken, ProcessorError, no_progress};

fn cues(n: usize) -> Vec<Cue> {
    (0..n)
        .map(|i| Cue {
            start_ms: i as i64 * 2000,
            end_ms: i as i64 * 2000 + 1500,
            text: format!("teh cue number {i} is here"),
        })
        .collect()
}

fn provider(base: &str, mode: &str, timeout: Duration, max_concurrency: usize) -> Arc<Providers> {
    let mut c = ProviderConfig::new(
        "stub",
        &format!("{base}/{mode}/v1"),
        Some("test-key".into()),
    );
    c.timeout = timeout;
    c.max_concurrency = max_concurrency;
    c.retry = RetryPolicy {
        max_retries: 3,
        base_delay: Duration::from_millis(50),
        max_delay: Duration::from_millis(200),
        max_retry_after: Duration::from_secs(1),
    };
    Arc::new(Providers::new(vec![c]).unwrap())
}

async fn refine_with(
    base: &str,
    mode: &str,
    input: &[Cue],
    opts: &RefineOptions,
) -> Result<RefineReport, ProcessorError> {
    let r = LlmRefiner::new(provider(base, mode, Duration::from_secs(10), 4));
    r.refine(
        input,
        "stub:m1",
        opts,
        no_progress(),
        &CancellationToken::new(),
    )
    .await
}

fn chats_of(stub: &Stub, mode: &str) -> Vec<(Option<String>, serde_json::Value)> {
    stub.log
        .lock()
        .unwrap()
        .chats
        .iter()
        .filter(|c| c.0 == mode)
        .map(|c| (c.1.clone(), c.2.clone()))
        .collect()
}

#[tokio::test]
async fn fixes_text_and_keeps_ids_count_and_timings() {
    let (base, stub) = llm_stub::start().await;
    let input = cues(60);
    let rep = refine_with(&base, "ok", &input, &RefineOptions::default())
        .await
        .unwrap();
    assert_eq!(rep.cues.len(), 60);
    for (i, (a, b)) in input.iter().zip(&rep.cues).enumerate() {
        assert_eq!((a.start_ms, a.end_ms), (b.start_ms, b.end_ms));
        assert_eq!(b.text, format!("The cue number {i} is here."));
    }
    assert_eq!(rep.changed_cues, 60);
    let chats = chats_of(&stub, "ok");
    assert_eq!(chats.len(), 3, "windows of 25 cues");
    let windows: Vec<Vec<usize>> = chats
        .iter()
        .map(|c| asked_lines(&c.1).iter().map(|l| l.0).collect())
        .collect();
    assert_eq!(windows[0], (1..=25).collect::<Vec<_>>());
    assert_eq!(windows[1], (26..=50).collect::<Vec<_>>());
    assert_eq!(windows[2], (51..=60).collect::<Vec<_>>());
    for (auth, body) in &chats {
        assert_eq!(auth.as_deref(), Some("Bearer test-key"));
        assert_eq!(body["model"], "m1");
        assert_eq!(body["stream"], false);
        assert_eq!(body["temperature"], 0.0);
        assert!(body["max_completion_tokens"].as_u64().unwrap() > 100);
        assert_eq!(body["messages"][0]["role"], "system");
        assert_eq!(body["messages"][0]["content"], DEFAULT_SYSTEM_PROMPT);
        assert_eq!(body["messages"][1]["role"], "user");
    }
    // The second window carries the first one's fixed ending as read-only context, and the
    // model never sees timestamps.
    let user2 = chats[1].1["messages"][1]["content"].as_str().unwrap();
    assert!(user2.contains("#25 The cue number 24 is here."), "{user2}");
    assert!(!user2.contains("-->") && !user2.contains("00:00"));
    assert_eq!(rep.usage.requests, 3);
    assert_eq!(rep.usage.prompt_tokens, 300);
    assert!(rep.usage.completion_tokens > 0);
    assert_eq!(rep.usage.invalid_answers, 0);
}

#[tokio::test]
async fn markup_multiline_cues_and_custom_system_prompt() {
    let (base, stub) = llm_stub::start().await;
    let input = vec![
        Cue {
            start_ms: 0,
            end_ms: 2000,
            text: "{\\an8}<i>teh first line of a\nlong subtitle cue</i>".into(),
        },
        Cue {
            start_ms: 2000,
            end_ms: 4000,
            text: "second".into(),
        },
    ];
    let opts = RefineOptions {
        system_prompt: Some("Fix Klingon subtitles.".into()),
        ..Default::default()
    };
    let rep = refine_with(&base, "ok", &input, &opts).await.unwrap();
    assert_eq!(
        rep.cues[0].text,
        "{\\an8}<i>The first line of a long subtitle cue.</i>"
    );
    assert_eq!(rep.cues[1].text, "Second.");
    let chats = chats_of(&stub, "ok");
    assert_eq!(
        chats[0].1["messages"][0]["content"],
        "Fix Klingon subtitles."
    );
    let asked = asked_lines(&chats[0].1);
    assert_eq!(
        asked[0].1, "teh first line of a long subtitle cue",
        "markup never reaches the model"
    );
}

#[tokio::test]
async fn retries_rate_limits_and_server_errors() {
    let (base, stub) = llm_stub::start().await;
    let input = cues(3);
    for mode in ["s429", "s500"] {
        let rep = refine_with(&base, mode, &input, &RefineOptions::default())
            .await
            .unwrap();
        assert_eq!(rep.cues[0].text, "The cue number 0 is here.");
        assert_eq!(stub.count(mode), 3, "{mode}: two failures, then success");
    }
    let t0 = Instant::now();
    refine_with(&base, "s429ra", &input, &RefineOptions::default())
        .await
        .unwrap();
    assert!(
        t0.elapsed() >= Duration::from_millis(950),
        "Retry-After: 1 honoured"
    );
    let t0 = Instant::now();
    refine_with(&base, "s429huge", &input, &RefineOptions::default())
        .await
        .unwrap();
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "Retry-After: 3600 capped, took {:?}",
        t0.elapsed()
    );
}

#[tokio::test]
async fn does_not_retry_client_errors_and_keeps_their_message() {
    let (base, stub) = llm_stub::start().await;
    let input = cues(2);
    for (mode, want) in [
        ("squota", "HTTP 429: You exceeded your current quota"),
        (
            "s400int",
            "HTTP 400: the request exceeds the available context size",
        ),
        ("s401", "HTTP 401: bad key"),
    ] {
        let e = refine_with(&base, mode, &input, &RefineOptions::default())
            .await
            .unwrap_err();
        assert_eq!(e.code(), "LLMRequest", "{mode}: {e}");
        assert!(e.to_string().contains(want), "{mode}: {e}");
        assert_eq!(stub.count(mode), 1, "{mode} is not retried");
    }
    let e = refine_with(&base, "s503text", &input, &RefineOptions::default())
        .await
        .unwrap_err();
    assert_eq!(e.code(), "LLMRequest");
    assert!(
        e.to_string().contains("HTTP 503") && e.to_string().contains("upstream unavailable"),
        "{e}"
    );
    assert_eq!(stub.count("s503text"), 4, "first try + 3 retries");
}

#[tokio::test]
async fn connection_refused_and_timeouts() {
    let (base, stub) = llm_stub::start().await;
    let free = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let e = refine_with(
        &format!("http://{free}"),
        "x",
        &cues(1),
        &RefineOptions::default(),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), "LLMRequest");
    assert!(e.to_string().contains("cannot connect"), "{e}");

    let r = LlmRefiner::new(provider(&base, "slow", Duration::from_secs(1), 4));
    let t0 = Instant::now();
    let e = r
        .refine(
            &cues(1),
            "stub:m1",
            &RefineOptions::default(),
            no_progress(),
            &CancellationToken::new(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), "Timeout", "{e}");
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    assert_eq!(stub.count("slow"), 1, "timeouts are not retried");

    // The job's total deadline bounds everything.
    let opts = RefineOptions {
        deadline: Duration::from_millis(500),
        ..Default::default()
    };
    let r = LlmRefiner::new(provider(&base, "hang", Duration::from_secs(30), 4));
    let t0 = Instant::now();
    let e = r
        .refine(
            &cues(1),
            "stub:m1",
            &opts,
            no_progress(),
            &CancellationToken::new(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), "Timeout");
    assert!(t0.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn unusable_answers_fail_the_job_after_retries_and_splits() {
    let (base, stub) = llm_stub::start().await;
    let input = cues(3);
    for mode in [
        "prose",
        "fenced",
        "renumbered",
        "missing",
        "extra",
        "empty",
        "emptyline",
        "truncated",
        "always_bad",
    ] {
        let spent = Arc::new(std::sync::Mutex::new(TokenUsage::default()));
        let opts = RefineOptions {
            spent: Some(spent.clone()),
            ..Default::default()
        };
        let e = refine_with(&base, mode, &input, &opts).await.unwrap_err();
        assert_eq!(e.code(), "LLMOutputInvalid", "{mode}: {e}");
        // The failed run's cost is reported: every request, all of it wasted.
        let u = spent.lock().unwrap().clone();
        assert_eq!(u.requests, stub.count(mode) as u64, "{mode}: {u:?}");
        assert_eq!(u.prompt_tokens, 100 * u.requests, "{mode}: {u:?}");
        assert_eq!(u.invalid_answers, u.requests, "{mode}: {u:?}");
        assert_eq!(u.wasted_prompt_tokens, u.prompt_tokens, "{mode}: {u:?}");
        // window of 3 (2 tries) → first half, one line (2 tries) → fails there.
        assert!(
            stub.count(mode) >= 4,
            "{mode}: retried and split ({} requests)",
            stub.count(mode)
        );
        let chats = chats_of(&stub, mode);
        let strict = chats[1].1["messages"][1]["content"].as_str().unwrap();
        assert!(
            strict.contains("Your previous answer was rejected"),
            "{mode}: stricter prompt"
        );
    }
}

#[tokio::test]
async fn smaller_windows_and_strict_prompts_recover() {
    let (base, stub) = llm_stub::start().await;
    // Text moved between lines is caught, and single lines cannot move.
    let input: Vec<Cue> = [
        "teh weather is nice today",
        "we should go to teh park",
        "bring a blanket and some food",
    ]
    .iter()
    .enumerate()
    .map(|(i, t)| Cue {
        start_ms: i as i64 * 2000,
        end_ms: i as i64 * 2000 + 1500,
        text: (*t).into(),
    })
    .collect();
    let rep = refine_with(&base, "moved", &input, &RefineOptions::default())
        .await
        .unwrap();
    let texts: Vec<&str> = rep.cues.iter().map(|c| c.text.as_str()).collect();
    assert_eq!(
        texts,
        [
            "The weather is nice today.",
            "We should go to the park.",
            "Bring a blanket and some food."
        ]
    );
    assert!(rep.usage.invalid_answers >= 4);
    assert!(rep.usage.wasted_prompt_tokens >= 400, "{:?}", rep.usage);
    // A model that only copes with 3 lines at a time.
    let rep = refine_with(&base, "small_only", &cues(10), &RefineOptions::default())
        .await
        .unwrap();
    assert_eq!(rep.cues[9].text, "The cue number 9 is here.");
    assert!(
        stub.log
            .lock()
            .unwrap()
            .chats
            .iter()
            .filter(|c| c.0 == "small_only")
            .all(|c| { asked_lines(&c.2).len() <= 10 })
    );
    // A stricter prompt is enough for a chatty model.
    let rep = refine_with(&base, "prose_once", &cues(2), &RefineOptions::default())
        .await
        .unwrap();
    assert_eq!(rep.usage.requests, 2);
    assert_eq!(rep.usage.invalid_answers, 1);
    // Lenient parsing: no `created`, unknown finish_reason.
    refine_with(&base, "lenient", &cues(2), &RefineOptions::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn in_flight_requests_never_exceed_the_limit() {
    let (base, stub) = llm_stub::start().await;
    let r = Arc::new(LlmRefiner::new(provider(
        &base,
        "count",
        Duration::from_secs(10),
        2,
    )));
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let r = r.clone();
        tasks.push(tokio::spawn(async move {
            r.refine(
                &cues(2),
                "stub:m1",
                &RefineOptions::default(),
                no_progress(),
                &CancellationToken::new(),
            )
            .await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(stub.max_in_flight.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn cancellation_drops_the_request_at_once() {
    let (base, stub) = llm_stub::start().await;
    let r = LlmRefiner::new(provider(&base, "hang", Duration::from_secs(60), 4));
    let cancel = CancellationToken::new();
    let c = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        c.cancel();
    });
    let t0 = Instant::now();
    let e = r
        .refine(
            &cues(3),
            "stub:m1",
            &RefineOptions::default(),
            no_progress(),
            &cancel,
        )
        .await
        .unwrap_err();
    assert!(matches!(e, ProcessorError::Cancelled));
    assert!(t0.elapsed() < Duration::from_millis(1300));
    let deadline = Instant::now() + Duration::from_secs(3);
    while stub.log.lock().unwrap().dropped == 0 {
        assert!(
            Instant::now() < deadline,
            "the server saw the request dropped"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn selectors_are_checked() {
    let r = LlmRefiner::new(provider(
        "http://127.0.0.1:9",
        "x",
        Duration::from_secs(1),
        1,
    ));
    assert_eq!(r.validate_model("stub:m1").map_err(|e| e.code()), Ok(()));
    assert_eq!(
        r.validate_model("nocolon").unwrap_err().code(),
        "InvalidModelString"
    );
    assert_eq!(
        r.validate_model("openai:gpt-4o").unwrap_err().code(),
        "LLMProviderUnavailable"
    );
}

fn remote(base: &str, mode: &str, chunk_secs: u32) -> RemoteTranscriber {
    let mut cfg = RemoteTranscriberConfig::new(&format!("{base}/{mode}/v1"), Some("k".into()));
    cfg.model = "whisper-stub".into();
    cfg.chunk_secs = chunk_secs;
    RemoteTranscriber::new(cfg, Arc::new(Gst::new(GstConfig::default()).unwrap())).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_transcription_reads_lenient_verbose_json() {
    let (base, stub) = llm_stub::start().await;
    let dir = tempfile::tempdir().unwrap();
    let wav = common::make(dir.path(), "wav", 3);
    let t = remote(&base, "ok", 600);
    let opts = TranscribeOptions {
        word_timestamps: true,
        language: Some("en".into()),
        ..Default::default()
    };
    let tr = t
        .transcribe(&wav, &opts, no_progress(), &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(tr.text, "Hello there. General Kenobi.");
    assert_eq!(tr.language, "en");
    assert_eq!(tr.segments.len(), 2);
    assert_eq!(
        (tr.segments[1].start_ms, tr.segments[1].end_ms),
        (1500, 3000)
    );
    assert_eq!(tr.segments[1].words.len(), 2);
    let fields = stub.log.lock().unwrap().audio[0].clone();
    assert_eq!(fields["model"], "whisper-stub");
    assert_eq!(fields["response_format"], "verbose_json");
    assert_eq!(fields["language"], "en");
    assert!(fields["timestamp_granularities[]"].contains("segment"));
    assert!(fields["timestamp_granularities[]"].contains("word"));
    assert!(fields["file"].starts_with("audio.wav:"));
    let e = remote(&base, "nosegments", 600)
        .transcribe(
            &wav,
            &TranscribeOptions::default(),
            no_progress(),
            &CancellationToken::new(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), "Transcription");
    for bad in [
        TranscribeOptions {
            beam_size: Some(2),
            ..Default::default()
        },
        TranscribeOptions {
            translate: true,
            ..Default::default()
        },
    ] {
        assert_eq!(t.validate(&bad).unwrap_err().code(), "ValidationError");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_audio_goes_in_chunks_with_offsets() {
    let (base, stub) = llm_stub::start().await;
    let dir = tempfile::tempdir().unwrap();
    let wav = common::make(dir.path(), "wav", 70);
    let tr = remote(&base, "ok", 30)
        .transcribe(
            &wav,
            &TranscribeOptions::default(),
            no_progress(),
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(stub.count("ok"), 3, "70 s in chunks of at most 30 s");
    assert_eq!(tr.segments.len(), 6);
    assert!(
        tr.segments[2].start_ms >= 20_000 && tr.segments[4].start_ms >= 40_000,
        "{:?}",
        tr.segments
    );
    let mut last = 0;
    for s in &tr.segments {
        assert!(s.start_ms >= last);
        last = s.start_ms;
    }
}
