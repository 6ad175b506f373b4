//! Voice activity detection on real models: the Silero VAD model converted from the real
//! `silero-vad` PyPI package, whisper `base`, speech made by espeak-ng with long pauses.
#![cfg(all(feature = "whisper", feature = "media"))]
#![allow(clippy::unwrap_used)]
mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use mediajobs_processor::media::{AudioDecoder, Gst, GstConfig};
use mediajobs_processor::model::silero;
use mediajobs_processor::subtitle::{SegmentOptions, segment, to_srt};
use mediajobs_processor::transcribe::{
    ModelManager, ModelManagerConfig, TranscribeOptions, Transcriber, Vad, VadSettings,
    WhisperTranscriber,
};
use mediajobs_processor::{CancellationToken, no_progress};

const RATE: usize = 16_000;
const A: &str = "The committee met on Tuesday to discuss the new library and its windows.";
const B: &str = "Last summer we drove along the coast and stopped in small villages.";
const C: &str = "Every evening we watched the sun go down over the quiet sea.";

fn models_dir() -> PathBuf {
    std::env::var_os("MEDIAJOBS_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/models"))
}

async fn vad_model() -> PathBuf {
    silero::ensure_vad_model(&models_dir()).await.unwrap()
}

/// A transcriber on `base` whose model directory holds the VAD model (`with_vad`) or not.
async fn transcriber(with_vad: bool) -> (WhisperTranscriber, tempfile::TempDir) {
    let base = mediajobs_processor::model::ensure_model(&models_dir(), "base")
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(&base, dir.path().join("ggml-base.bin")).unwrap();
    if with_vad {
        std::os::unix::fs::symlink(vad_model().await, dir.path().join("ggml-silero-v6.2.3.bin"))
            .unwrap();
    }
    let models = ModelManager::new(ModelManagerConfig::new(dir.path(), "base"));
    let t = WhisperTranscriber::with_manager(models, gst(), 2, 1);
    (t, dir)
}

fn gst() -> Arc<Gst> {
    Arc::new(Gst::new(GstConfig::default()).unwrap())
}

async fn speech_samples(dir: &Path, name: &str, text: &str) -> Vec<f32> {
    let wav = common::speech(dir, name, text);
    gst()
        .decode(&wav, no_progress(), &CancellationToken::new())
        .await
        .unwrap()
        .samples
}

fn silence(secs: usize) -> Vec<f32> {
    vec![0.0; secs * RATE]
}

fn opts(vad: bool) -> TranscribeOptions {
    TranscribeOptions {
        language: Some("en".into()),
        word_timestamps: true,
        vad: Some(vad),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pypi_package_converts_to_a_model_whisper_cpp_loads() {
    let path = vad_model().await;
    let info = silero::read_vad_info(&path).unwrap();
    assert_eq!(info.model_type, "silero-16k");
    assert_eq!(info.version, "6.2.3");
    assert_eq!(info.window, 512);
    // whisper.cpp loads it, and it tells speech from silence.
    let vad = Vad::load(&path, VadSettings::default(), 2).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut s = silence(3);
    s.extend(speech_samples(dir.path(), "a", A).await);
    let speech_at = s.len();
    s.extend(silence(6));
    let regions = vad.speech(&s).unwrap();
    assert_eq!(regions.len(), 1, "{regions:?}");
    let r = &regions[0];
    assert!(
        (2 * RATE..3 * RATE + RATE / 2).contains(&r.start),
        "speech starts at 3 s: {r:?}"
    );
    assert!(
        (speech_at..speech_at + RATE).contains(&r.end),
        "speech ends at {speech_at}: {r:?}"
    );
    assert!(vad.speech(&silence(5)).unwrap().is_empty());
    assert!(vad.speech(&[]).unwrap().is_empty());
    // The directory scan sees it as a VAD model, not a whisper model.
    let d = path.parent().unwrap();
    assert!(silero::installed_vad(d).iter().any(|v| v.path == path));
    assert!(
        mediajobs_processor::model::installed(d)
            .iter()
            .all(|m| !silero::is_vad_name(&m.name))
    );
}

/// Speech with long pauses: VAD keeps every word (the WER is no worse than without it),
/// skips the pauses (whisper hears under half of the audio), and every time still refers to
/// the original audio.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_pauses_are_skipped_and_times_map_back() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        speech_samples(dir.path(), "a", A).await,
        speech_samples(dir.path(), "b", B).await,
        speech_samples(dir.path(), "c", C).await,
    );
    let mut s = silence(2);
    s.extend(&a);
    let a_end = s.len();
    s.extend(silence(25));
    let b_start = s.len();
    s.extend(&b);
    let b_end = s.len();
    s.extend(silence(20));
    let c_start = s.len();
    s.extend(&c);
    s.extend(silence(5));
    let wav = dir.path().join("pauses.wav");
    std::fs::write(&wav, mediajobs_processor::wav::encode(&s)).unwrap();
    let ms = |samples: usize| (samples * 1000 / RATE) as i64;

    let (t, _models) = transcriber(true).await;
    assert!(t.vad_available());
    let cancel = CancellationToken::new();
    let with = t
        .transcribe(&wav, &opts(true), no_progress(), &cancel)
        .await
        .unwrap();
    let without = t
        .transcribe(&wav, &opts(false), no_progress(), &cancel)
        .await
        .unwrap();
    let truth = format!("{A} {B} {C}");
    let (w_with, w_without) = (
        common::wer(&truth, &with.text),
        common::wer(&truth, &without.text),
    );
    eprintln!("WER with VAD {w_with:.3}: {}", with.text);
    eprintln!("WER without {w_without:.3}: {}", without.text);
    assert!(w_with <= 0.15, "WER {w_with:.3}: {}", with.text);
    // Whisper decodes the joined speech with a different context, so a word may come out
    // differently ("topped" for "stopped" in one of 37 words); more than two is a loss.
    assert!(
        w_with <= w_without + 0.06,
        "VAD lost words: {w_with:.3} vs {w_without:.3}"
    );
    let speech = with.speech_ms.unwrap();
    assert_eq!(with.duration_ms, ms(s.len()));
    assert!(
        speech < with.duration_ms / 2,
        "whisper heard {speech} of {} ms",
        with.duration_ms
    );
    assert_eq!(without.speech_ms, None);

    // Times are the original audio's: nothing in the pauses, each sentence where it is.
    let in_pause = |t: i64| {
        (ms(a_end) + 1000..ms(b_start) - 1000).contains(&t)
            || (ms(b_end) + 1000..ms(c_start) - 1000).contains(&t)
    };
    for seg in &with.segments {
        let mid = (seg.start_ms + seg.end_ms) / 2;
        assert!(!in_pause(mid), "segment in a pause: {seg:?}");
        for w in &seg.words {
            assert!(
                !in_pause(w.start_ms) && w.end_ms >= w.start_ms,
                "word in a pause: {w:?}"
            );
        }
    }
    let starting = |word: &str| {
        with.segments
            .iter()
            .flat_map(|s| &s.words)
            .find(|w| w.text.to_lowercase().contains(word))
            .unwrap_or_else(|| panic!("no word '{word}' in {:?}", with.text))
            .start_ms
    };
    let (summer, evening) = (starting("summer"), starting("evening"));
    assert!(
        (ms(b_start) - 500..ms(b_start) + 2500).contains(&summer),
        "'summer' at {summer} ms, B starts at {} ms",
        ms(b_start)
    );
    assert!(
        (ms(c_start) - 500..ms(c_start) + 2500).contains(&evening),
        "'evening' at {evening} ms, C starts at {} ms",
        ms(c_start)
    );
    let cues = segment(&with.segments, &SegmentOptions::default());
    assert!(!cues.is_empty());
}

/// Silence and pink noise with VAD: no speech, no cue, whisper never runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silence_and_noise_give_no_cues_with_vad() {
    let dir = tempfile::tempdir().unwrap();
    let (t, _models) = transcriber(true).await;
    for (name, samples) in [
        ("silence", silence(20)),
        ("pink-noise", common::pink_noise(20, 0.3)),
    ] {
        let wav = dir.path().join(format!("{name}.wav"));
        std::fs::write(&wav, mediajobs_processor::wav::encode(&samples)).unwrap();
        let tr = t
            .transcribe(&wav, &opts(true), no_progress(), &CancellationToken::new())
            .await
            .unwrap();
        assert!(tr.segments.is_empty(), "{name}: {:?}", tr.segments);
        assert_eq!(tr.text, "", "{name}");
        assert!(tr.speech_ms.is_some(), "{name}: VAD ran");
        let cues = segment(&tr.segments, &SegmentOptions::default());
        assert!(cues.is_empty() && to_srt(&cues).is_empty(), "{name}");
    }
}

/// `vad: true` without a VAD model is refused up front, with the fix in the message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vad_without_a_model_is_refused() {
    let (t, _models) = transcriber(false).await;
    assert!(!t.vad_available());
    let e = t.validate(&opts(true)).unwrap_err();
    assert_eq!(e.code(), "WhisperUnavailable");
    assert!(e.to_string().contains("model fetch silero-vad"), "{e}");
    t.validate(&opts(false)).unwrap();
    // A model file that is not one is refused when loaded.
    let dir = tempfile::tempdir().unwrap();
    let junk = common::write(dir.path(), "ggml-silero-x.bin", b"not a model");
    assert!(Vad::load(&junk, VadSettings::default(), 1).is_err());
}
