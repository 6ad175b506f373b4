//! Real whisper inference with a real model (base, multilingual) on speech made by espeak-ng.
#![cfg(all(feature = "whisper", feature = "media"))]
#![allow(clippy::unwrap_used)]
mod common;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mediajobs_processor::media::{Gst, GstConfig};
use mediajobs_processor::subtitle::{SegmentOptions, parse_srt, segment, to_srt};
use mediajobs_processor::transcribe::{
    TranscribeOptions, Transcriber, WhisperConfig, WhisperModel, WhisperTranscriber,
};
use mediajobs_processor::{CancellationToken, ProcessorError, Progress, no_progress};

const PASSAGE: &str = "The committee met on Tuesday to discuss the new library. \
Members agreed that the building needs more windows, better heating, and a quiet room for \
students. The mayor promised to review the budget next month. Last summer we drove along the \
coast and stopped in small villages. The weather was warm, the food was excellent, and every \
evening we watched the sun go down over the sea.";

fn models_dir() -> PathBuf {
    std::env::var_os("MEDIAJOBS_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/models"))
}

async fn transcriber() -> WhisperTranscriber {
    let path = mediajobs_processor::model::ensure_model(&models_dir(), "base")
        .await
        .unwrap();
    let model = WhisperModel::load(&WhisperConfig::new(path)).unwrap();
    assert!(model.is_multilingual());
    WhisperTranscriber::new(model, Arc::new(Gst::new(GstConfig::default()).unwrap()), 2)
}

use common::wer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transcribes_generated_english_speech() {
    let dir = tempfile::tempdir().unwrap();
    let wav = common::speech(dir.path(), "passage", PASSAGE);
    let t = transcriber().await;
    let seen = Arc::new(Mutex::new(Vec::<f64>::new()));
    let s = seen.clone();
    let progress: Progress = Arc::new(move |f: f64, _: &str| s.lock().unwrap().push(f));
    let opts = TranscribeOptions {
        word_timestamps: true,
        ..Default::default()
    };
    let tr = t
        .transcribe(&wav, &opts, progress, &CancellationToken::new())
        .await
        .unwrap();
    let w = wer(PASSAGE, &tr.text);
    eprintln!("WER {w:.3}: {}", tr.text);
    assert!(w <= 0.15, "WER {w:.3} > 0.15: {}", tr.text);
    assert_eq!(tr.language, "en", "auto detection");
    let mut last = 0;
    for s in &tr.segments {
        assert!(
            s.start_ms <= s.end_ms && s.start_ms >= last,
            "monotonic segments"
        );
        last = s.start_ms;
        assert!(!s.words.is_empty());
        let mut wlast = s.start_ms;
        for w in &s.words {
            assert!(
                w.start_ms >= wlast && w.start_ms <= w.end_ms && w.end_ms <= s.end_ms,
                "{w:?} in {s:?}"
            );
            wlast = w.start_ms;
        }
    }
    assert!(tr.segments.last().unwrap().end_ms <= tr.duration_ms + 500);
    // Every segment carries whisper's decoder figures (verbose_json's fields).
    for s in &tr.segments {
        let st = s.stats.as_ref().expect("whisper gives segment stats");
        assert!(!st.tokens.is_empty(), "{s:?}");
        assert!(st.avg_logprob < 0.0 && st.avg_logprob > -3.0, "{st:?}");
        assert!((0.0..=1.0).contains(&st.no_speech_prob), "{st:?}");
        assert!(
            st.compression_ratio > 0.3 && st.compression_ratio < 2.4,
            "{st:?}"
        );
    }
    let p = seen.lock().unwrap();
    assert!(p.len() > 3 && p.last() == Some(&1.0), "progress {p:?}");
    assert!(p.windows(2).all(|w| w[0] <= w[1] + 1e-9));

    // Subtitle-grade SRT from the real segments.
    let cues = segment(&tr.segments, &SegmentOptions::default());
    assert!(cues.len() >= 3);
    for (i, c) in cues.iter().enumerate() {
        assert!(c.text.lines().count() <= 2 && c.text.lines().all(|l| l.chars().count() <= 42));
        assert!(c.end_ms - c.start_ms <= 7000);
        if let Some(n) = cues.get(i + 1) {
            assert!(c.end_ms <= n.start_ms);
        }
    }
    assert_eq!(parse_srt(&to_srt(&cues)).unwrap(), cues);
    assert!(
        wer(
            PASSAGE,
            &cues
                .iter()
                .map(|c| c.text.replace('\n', " "))
                .collect::<Vec<_>>()
                .join(" ")
        ) <= 0.15
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detects_the_language_of_the_first_30_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let t = transcriber().await;
    let en = common::speech(dir.path(), "en", PASSAGE);
    let g = t
        .detect_language(&en, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(
        (g.code.as_str(), g.name.as_str()),
        ("en", "english"),
        "{g:?}"
    );
    assert!(g.probability > 0.5 && g.probability <= 1.0, "{g:?}");
    let de = dir.path().join("de.wav");
    let ok = std::process::Command::new("espeak-ng")
        .args(["-v", "de", "-w"])
        .arg(&de)
        .arg("Guten Tag, meine Damen und Herren. Heute sprechen wir über das Wetter in Berlin und über die Züge der Bahn.")
        .status()
        .unwrap();
    assert!(ok.success());
    let g = t
        .detect_language(&de, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(g.code, "de", "{g:?}");
    // A cancelled detection stops.
    let c = CancellationToken::new();
    c.cancel();
    assert!(matches!(
        t.detect_language(&en, &c).await,
        Err(mediajobs_processor::ProcessorError::Cancelled)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forced_language_and_beam_search() {
    let dir = tempfile::tempdir().unwrap();
    let wav = common::speech(
        dir.path(),
        "short",
        "Good evening, and welcome to the news.",
    );
    let t = transcriber().await;
    let opts = TranscribeOptions {
        language: Some("en".into()),
        beam_size: Some(3),
        temperature: Some(0.0),
        initial_prompt: Some("News broadcast.".into()),
        ..Default::default()
    };
    let tr = t
        .transcribe(&wav, &opts, no_progress(), &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(tr.language, "en");
    assert!(
        wer("Good evening, and welcome to the news.", &tr.text) <= 0.2,
        "{}",
        tr.text
    );
    assert!(tr.segments.iter().all(|s| !s.words.is_empty()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transcription_stops_within_a_second_of_cancel() {
    let dir = tempfile::tempdir().unwrap();
    let long = [PASSAGE; 4].join(" ");
    let wav = common::speech(dir.path(), "long", &long);
    let t = transcriber().await;
    let cancel = CancellationToken::new();
    let c = cancel.clone();
    let fired = Arc::new(Mutex::new(None));
    let f = fired.clone();
    let progress: Progress = Arc::new(move |p: f64, _: &str| {
        if p >= 0.3 && !c.is_cancelled() {
            *f.lock().unwrap() = Some(Instant::now());
            c.cancel();
        }
    });
    let res = t
        .transcribe(&wav, &TranscribeOptions::default(), progress, &cancel)
        .await;
    let stopped = Instant::now();
    assert!(matches!(res, Err(ProcessorError::Cancelled)), "{res:?}");
    let fired = fired.lock().unwrap().expect("progress passed 30 %");
    assert!(
        stopped - fired < Duration::from_secs(1),
        "stopped {:?} after cancel",
        stopped - fired
    );
    // The aborted run lets the next one through (the model is usable, nothing is stuck).
    let short = common::speech(dir.path(), "after", "Testing again.");
    let t0 = Instant::now();
    let tr = t
        .transcribe(
            &short,
            &TranscribeOptions::default(),
            no_progress(),
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    let after_abort = t0.elapsed();
    assert!(wer("Testing again.", &tr.text) <= 0.5, "{}", tr.text);
    // Nothing is stuck: the run after an abort costs a fresh run of the same clip plus at
    // most the aborted run's last step to its next abort check and a new decoder state
    // (measured on 2 cores: 13.3 s after an abort vs 8.7 s fresh). A fixed bound (15 s) was
    // the machine's speed, not the property.
    let t1 = Instant::now();
    t.transcribe(
        &short,
        &TranscribeOptions::default(),
        no_progress(),
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    let fresh = t1.elapsed();
    assert!(
        after_abort < fresh + Duration::from_secs(10),
        "after an abort {after_abort:?}, fresh {fresh:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejects_options_it_cannot_honour() {
    let t = transcriber().await;
    let bad = [
        TranscribeOptions {
            language: Some("xx".into()),
            ..Default::default()
        },
        TranscribeOptions {
            language: Some("english".into()),
            ..Default::default()
        },
        TranscribeOptions {
            beam_size: Some(4),
            best_of: Some(2),
            ..Default::default()
        },
        TranscribeOptions {
            beam_size: Some(0),
            ..Default::default()
        },
        TranscribeOptions {
            temperature: Some(1.5),
            ..Default::default()
        },
        TranscribeOptions {
            no_speech_threshold: Some(-0.1),
            ..Default::default()
        },
        TranscribeOptions {
            initial_prompt: Some("x".repeat(1001)),
            ..Default::default()
        },
    ];
    for o in bad {
        assert!(
            matches!(t.validate(&o), Err(ProcessorError::Validation(_))),
            "{o:?}"
        );
    }
    for o in [
        TranscribeOptions::default(),
        TranscribeOptions {
            language: Some("auto".into()),
            translate: true,
            ..Default::default()
        },
        TranscribeOptions {
            language: Some("de".into()),
            beam_size: Some(5),
            ..Default::default()
        },
    ] {
        t.validate(&o).unwrap();
    }
    let err = serde_json::from_value::<TranscribeOptions>(serde_json::json!({"langauge": "en"}));
    assert!(err.is_err(), "unknown fields are rejected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_model_is_whisper_unavailable() {
    let err = WhisperModel::load(&WhisperConfig::new("/nonexistent/ggml.bin")).unwrap_err();
    assert_eq!(err.code(), "WhisperUnavailable");
    let dir = tempfile::tempdir().unwrap();
    let junk = common::write(dir.path(), "junk.bin", &common::noise(4096, 9));
    let err = WhisperModel::load(&WhisperConfig::new(junk)).unwrap_err();
    assert_eq!(err.code(), "WhisperUnavailable");
}

/// Silence and pure noise give no segment at all (whisper alone writes `[BLANK_AUDIO]` or a
/// hallucinated line), so their SRT is empty; annotations never reach the text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silence_and_noise_give_no_cues() {
    let dir = tempfile::tempdir().unwrap();
    let t = transcriber().await;
    for (name, samples) in [
        ("silence", vec![0.0f32; 12 * 16_000]),
        ("pink-noise", common::pink_noise(12, 0.3)),
    ] {
        let wav = dir.path().join(format!("{name}.wav"));
        std::fs::write(&wav, mediajobs_processor::wav::encode(&samples)).unwrap();
        let tr = t
            .transcribe(
                &wav,
                &TranscribeOptions::default(),
                no_progress(),
                &CancellationToken::new(),
            )
            .await
            .unwrap();
        assert!(tr.segments.is_empty(), "{name}: {:?}", tr.segments);
        assert_eq!(tr.text, "", "{name}");
        let cues = segment(&tr.segments, &SegmentOptions::default());
        assert!(cues.is_empty() && to_srt(&cues).is_empty(), "{name}");
    }
}
