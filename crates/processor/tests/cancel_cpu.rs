//! A cancelled transcription stops *working* within a second of the cancel — measured by the
//! process's CPU time, not by the answer (which comes at once, ADR 008) — wherever the cancel
//! lands: in voice detection over a long file, in the spectrogram and language detection at
//! the start, in the decoder loop, with one whisper thread or two.
#![cfg(all(feature = "whisper", feature = "media"))]
#![allow(clippy::unwrap_used)]
mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mediajobs_processor::media::{AudioDecoder, Gst, GstConfig};
use mediajobs_processor::model::silero;
use mediajobs_processor::transcribe::{
    ModelManager, ModelManagerConfig, TranscribeOptions, WhisperTranscriber,
};
use mediajobs_processor::{CancellationToken, ProcessorError, Progress, no_progress};

const RATE: usize = 16_000;
const PASSAGE: &str = "The committee met on Tuesday to discuss the new library. \
Members agreed that the building needs more windows, better heating, and a quiet room for \
students. The mayor promised to review the budget next month. Last summer we drove along the \
coast and stopped in small villages.";

fn models_dir() -> PathBuf {
    std::env::var_os("MEDIAJOBS_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/models"))
}

/// The CPU time this process used so far, all threads (Linux: `/proc/self/stat` utime and
/// stime, in the kernel's 100 Hz ticks).
fn cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<u64> = after
        .split_whitespace()
        .skip(11)
        .take(2)
        .map(|x| x.parse().unwrap())
        .collect();
    Duration::from_millis((f[0] + f[1]) * 10)
}

async fn transcriber(threads: usize) -> (WhisperTranscriber, tempfile::TempDir) {
    let base = mediajobs_processor::model::ensure_model(&models_dir(), "base")
        .await
        .unwrap();
    let vad = silero::ensure_vad_model(&models_dir()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(&base, dir.path().join("ggml-base.bin")).unwrap();
    std::os::unix::fs::symlink(&vad, dir.path().join("ggml-silero-v6.2.3.bin")).unwrap();
    let models = ModelManager::new(ModelManagerConfig::new(dir.path(), "base"));
    let gst = Arc::new(Gst::new(GstConfig::default()).unwrap());
    (
        WhisperTranscriber::with_manager(models, gst, threads, 1),
        dir,
    )
}

async fn speech(dir: &Path) -> Vec<f32> {
    let wav = common::speech(dir, "passage", PASSAGE);
    Gst::new(GstConfig::default())
        .unwrap()
        .decode(&wav, no_progress(), &CancellationToken::new())
        .await
        .unwrap()
        .samples
}

/// Samples of 100 ms taken after a cancel (`CANCEL_CPU_STEPS` to look further).
fn steps() -> u64 {
    std::env::var("CANCEL_CPU_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30)
        .max(30)
}

/// Where the cancel lands.
#[derive(Debug, Clone, Copy)]
enum At {
    /// As voice detection starts, on ten minutes of audio.
    Vad,
    /// 100 ms after the start: the spectrogram of the whole file, language detection.
    Start,
    /// Once whisper reports 30 % (inside the decoder loop of a later window).
    Decoding,
}

/// Runs one transcription cancelled `at`, and returns the CPU time the process used from
/// 1 s after the cancel to 3 s after it, printing the curve.
async fn cpu_after_cancel(t: &WhisperTranscriber, samples: Vec<f32>, at: At) -> Duration {
    let cancel = CancellationToken::new();
    let fired = Arc::new(Mutex::new(None::<Instant>));
    let (c, f) = (cancel.clone(), fired.clone());
    let progress: Progress = Arc::new(move |p: f64, stage: &str| {
        let now = match at {
            At::Vad => stage == "detecting_speech",
            At::Decoding => stage == "transcribing" && p >= 0.3,
            At::Start => false,
        };
        if now && !c.is_cancelled() {
            *f.lock().unwrap() = Some(Instant::now());
            c.cancel();
        }
    });
    if let At::Start = at {
        let (c, f) = (cancel.clone(), fired.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            *f.lock().unwrap() = Some(Instant::now());
            c.cancel();
        });
    }
    let opts = TranscribeOptions {
        language: matches!(at, At::Decoding).then(|| "en".into()),
        vad: Some(matches!(at, At::Vad)),
        ..Default::default()
    };
    let res = t
        .transcribe_samples(samples, &opts, progress, &cancel)
        .await;
    assert!(matches!(res, Err(ProcessorError::Cancelled)), "{res:?}");
    let fired = fired.lock().unwrap().expect("the cancel fired");
    let mut curve = Vec::new();
    let mut at_1s = None;
    let mut last = cpu();
    for step in 1..=steps() {
        tokio::time::sleep_until((fired + Duration::from_millis(100 * step)).into()).await;
        let now = cpu();
        curve.push((now - last).as_millis());
        last = now;
        if step == 10 {
            at_1s = Some(now);
        }
    }
    eprintln!("{at:?}: CPU ms per 100 ms after the cancel: {curve:?}");
    last - at_1s.unwrap()
}

async fn stops_within_a_second(threads: usize) {
    let dir = tempfile::tempdir().unwrap();
    let (t, _models) = transcriber(threads).await;
    let passage = speech(dir.path()).await;
    // Ten minutes: the passage between long stretches of quiet noise.
    let mut long = Vec::with_capacity(600 * RATE);
    let noise = common::pink_noise(20, 0.002);
    while long.len() < 600 * RATE {
        long.extend(&passage);
        long.extend(&noise);
    }
    long.truncate(600 * RATE);
    // A few minutes of speech, so that 30 % is inside a later window.
    let mut talk = Vec::new();
    for _ in 0..6 {
        talk.extend(&passage);
    }
    let mut late = Vec::new();
    for (at, samples) in [
        (At::Vad, long.clone()),
        (At::Start, long),
        (At::Decoding, talk),
    ] {
        let used = cpu_after_cancel(&t, samples, at).await;
        if used >= Duration::from_millis(100) {
            late.push(format!("cancel {at:?}: {used:?}"));
        }
    }
    assert!(
        late.is_empty(),
        "{threads} thread(s): CPU used from 1 s to 3 s after the cancel: {late:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_work_stops_within_a_second_with_two_threads() {
    stops_within_a_second(2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_work_stops_within_a_second_with_one_thread() {
    stops_within_a_second(1).await;
}
