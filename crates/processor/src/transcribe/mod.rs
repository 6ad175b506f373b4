//! Transcription: the [`Transcriber`] trait, its options, the local whisper backend and the
//! remote (OpenAI-compatible) one.

mod clean;
mod languages;
#[cfg(all(feature = "whisper", feature = "media"))]
mod models;
#[cfg(all(feature = "llm", feature = "media"))]
mod remote;
#[cfg(all(feature = "whisper", feature = "media"))]
mod vad;
mod wer;
#[cfg(all(feature = "whisper", feature = "media"))]
mod whisper;

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::progress::{ProcessorError, Progress};
use crate::subtitle::Segment;

pub use clean::{
    COMPRESSION_RATIO_CEILING, LOGPROB_FLOOR, NO_SPEECH_THRESHOLD, clean_segments,
    strip_annotations,
};
pub use languages::{LANGUAGES, language_code, language_name};
#[cfg(all(feature = "whisper", feature = "media"))]
pub use models::{ModelManager, ModelManagerConfig};
#[cfg(all(feature = "llm", feature = "media"))]
pub use remote::{RemoteTranscriber, RemoteTranscriberConfig};
#[cfg(all(feature = "whisper", feature = "media"))]
pub use vad::{SpeechMap, Vad, VadSettings};
pub use wer::wer;
#[cfg(all(feature = "whisper", feature = "media"))]
pub use whisper::{WhisperConfig, WhisperModel, WhisperTranscriber, backend, compute_device};

/// Options of `generate_srt` and `transcribe` (DESIGN §6). Unknown fields are rejected when
/// deserializing.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TranscribeOptions {
    /// The model to run (`base`, `small.en-q5_1`: an installed model's name); the node's
    /// default when absent.
    #[serde(default)]
    pub model: Option<String>,
    /// A language code (`en`, `de`, …) or `auto` (default) to detect it.
    #[serde(default)]
    pub language: Option<String>,
    /// Beam search width (1 = greedy).
    #[serde(default)]
    pub beam_size: Option<u32>,
    /// Candidates sampled with greedy decoding.
    #[serde(default)]
    pub best_of: Option<u32>,
    /// Sampling temperature (0 = deterministic).
    #[serde(default)]
    pub temperature: Option<f32>,
    /// Text that primes the decoder (names, spelling).
    #[serde(default)]
    pub initial_prompt: Option<String>,
    /// Segments more likely silent than this are dropped.
    #[serde(default)]
    pub no_speech_threshold: Option<f32>,
    /// Translate to English instead of transcribing.
    #[serde(default)]
    pub translate: bool,
    /// Include word timings in the result.
    #[serde(default)]
    pub word_timestamps: bool,
    /// Clean the audio first (remove rumble and DC offset, normalize the level); `transcribe`
    /// only.
    #[serde(default)]
    pub clean_audio: bool,
    /// Voice activity detection (Silero VAD): whisper hears only the speech; silence, music
    /// and noise between it are skipped (no hallucinated cues there, less to compute), and
    /// every time still refers to the original audio. `None`: the operation's default —
    /// on for `generate_srt` where a VAD model is installed, off for `transcribe`, whose text
    /// keeps everything whisper hears (see [`TranscribeOptions::vad_default`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vad: Option<bool>,
}

impl TranscribeOptions {
    /// Whether VAD runs when `vad` is not given: `generate_srt` (`subtitles`) uses it when
    /// the backend has it; `transcribe` does not — VAD can miss a quiet word, and a
    /// transcript is the full text of the audio, used for search and by LLMs.
    pub fn vad_default(subtitles: bool, available: bool) -> bool {
        subtitles && available
    }

    /// The language to force, `None` for automatic detection.
    pub fn forced_language(&self) -> Option<&str> {
        self.language
            .as_deref()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.eq_ignore_ascii_case("auto"))
    }

    /// Checks ranges every backend shares; backends add their own limits.
    pub fn validate_common(&self) -> Result<(), ProcessorError> {
        let bad = |m: String| Err(ProcessorError::Validation(m));
        if let Some(b) = self.beam_size
            && !(1..=8).contains(&b)
        {
            return bad(format!("beam_size must be 1-8, got {b}"));
        }
        if let Some(b) = self.best_of
            && !(1..=8).contains(&b)
        {
            return bad(format!("best_of must be 1-8, got {b}"));
        }
        if let Some(t) = self.temperature
            && (!(0.0..=1.0).contains(&t) || !t.is_finite())
        {
            return bad(format!("temperature must be 0-1, got {t}"));
        }
        if let Some(t) = self.no_speech_threshold
            && (!(0.0..=1.0).contains(&t) || !t.is_finite())
        {
            return bad(format!("no_speech_threshold must be 0-1, got {t}"));
        }
        if let Some(p) = &self.initial_prompt
            && p.chars().count() > 1000
        {
            return bad("initial_prompt must be at most 1000 characters".into());
        }
        if let Some(l) = self.forced_language()
            && (!(2..=3).contains(&l.len()) || !l.bytes().all(|b| b.is_ascii_lowercase()))
        {
            return bad(format!(
                "language must be 'auto' or a language code like 'en', got '{l}'"
            ));
        }
        Ok(())
    }
}

/// A transcription.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transcript {
    /// The language spoken (detected, or the one asked for).
    pub language: String,
    /// Timed segments; `words` filled when word timestamps were asked for.
    pub segments: Vec<Segment>,
    /// The joined text.
    pub text: String,
    /// Audio duration, ms.
    pub duration_ms: i64,
    /// With voice activity detection: the speech whisper heard, ms (the rest was skipped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speech_ms: Option<i64>,
}

impl Transcript {
    /// Joins segment texts with single spaces.
    pub fn join_text(segments: &[Segment]) -> String {
        segments
            .iter()
            .map(|s| s.text.trim())
            .filter(|t| !t.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The language spoken in a piece of audio, as [`Transcriber::detect_language`] finds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LanguageGuess {
    /// The language code (`en`, `de`, …).
    pub code: String,
    /// Its English name in lower case, as whisper (and OpenAI) spell it (`english`, `german`).
    pub name: String,
    /// The model's probability for it, 0–1.
    pub probability: f32,
}

/// A model as `GET /models` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelStatus {
    /// The name jobs select it by.
    pub name: String,
    /// The file.
    pub path: PathBuf,
    /// File size, bytes.
    pub size_bytes: u64,
    /// Multilingual or English-only.
    pub multilingual: bool,
    /// `tiny`, `base`, `small`, `medium`, `large-v3`, `large-v3-turbo`, `unknown`.
    pub size_class: &'static str,
    /// `f16`, `f32`, `q5_0`, `q5_1`, `q8_0`, …
    pub weights: &'static str,
    /// The model of jobs that name none.
    pub default: bool,
    /// Loaded now.
    pub loaded: bool,
    /// When a job last used it (this process).
    pub last_used: Option<SystemTime>,
}

/// How much audio [`Transcriber::detect_language`] listens to: whisper's 30-second window.
pub const DETECT_WINDOW_MS: i64 = 30_000;

/// Speech to text.
#[async_trait]
pub trait Transcriber: Send + Sync {
    /// A short backend name for logs and metrics (`whisper.cpp`, `remote`).
    fn name(&self) -> &str;

    /// Rejects options this backend cannot honour (`ValidationError`, 422 at submission).
    fn validate(&self, opts: &TranscribeOptions) -> Result<(), ProcessorError>;

    /// Whether the backend is heavy local work (runs in the `heavy` lane) or remote I/O.
    fn is_local(&self) -> bool;

    /// The models this backend can run, with their state (local backends; a remote one
    /// answers none).
    fn models(&self) -> Vec<ModelStatus> {
        Vec::new()
    }

    /// The model of jobs that name none, where the backend has models of its own.
    fn default_model(&self) -> Option<String> {
        None
    }

    /// Whether it runs voice activity detection (`vad` in the options): a local backend with
    /// a VAD model installed. Backends without answer `false` and refuse `vad: true`.
    fn vad_available(&self) -> bool {
        false
    }

    /// What it computes on: `cpu`, or the GPU (`vulkan: NAME`, `cuda: NAME`) for local
    /// backends; `remote` for a service (the default).
    fn compute(&self) -> String {
        "remote".to_owned()
    }

    /// Transcribes the audio of a media file. Reports progress; stops within a second of
    /// `cancel`.
    async fn transcribe(
        &self,
        media: &Path,
        opts: &TranscribeOptions,
        progress: Progress,
        cancel: &CancellationToken,
    ) -> Result<Transcript, ProcessorError>;

    /// Finds the language spoken in the first [`DETECT_WINDOW_MS`] of the audio. Backends
    /// that cannot tell answer [`ProcessorError::Validation`] (the default).
    async fn detect_language(
        &self,
        media: &Path,
        cancel: &CancellationToken,
    ) -> Result<LanguageGuess, ProcessorError> {
        let _ = (media, cancel);
        Err(ProcessorError::Validation(format!(
            "the {} backend cannot detect languages",
            self.name()
        )))
    }
}
