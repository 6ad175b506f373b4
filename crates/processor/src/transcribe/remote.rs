//! Remote transcription through an OpenAI-compatible `/v1/audio/transcriptions` endpoint.
//!
//! The media is decoded locally (GStreamer, 16 kHz mono) and sent as WAV chunks of at most
//! ten minutes (cut at the quietest moment near each boundary), with `verbose_json` so the
//! segments' times come back; we build subtitles from them ourselves. The response is read
//! leniently: local servers often omit fields the typed API requires.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::types::audio::{
    AudioInput, AudioResponseFormat, CreateTranscriptionRequest, TimestampGranularity,
};
use async_trait::async_trait;
use serde::Deserialize;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::llm::{RetryPolicy, make_client, map_openai_error};
use crate::media::AudioDecoder;
use crate::progress::{ProcessorError, Progress, scaled};
use crate::subtitle::{Segment, SegmentStats, Word};
use crate::transcribe::{TranscribeOptions, Transcriber, Transcript};

/// Settings of the remote backend.
#[derive(Clone)]
pub struct RemoteTranscriberConfig {
    /// Base URL including `/v1`.
    pub base_url: String,
    /// API key, if needed.
    pub api_key: Option<String>,
    /// Model name sent with each request (default `whisper-1`).
    pub model: String,
    /// Per-request timeout (default 10 min).
    pub timeout: Duration,
    /// Requests in flight at once (default 4).
    pub max_concurrency: usize,
    /// Longest audio chunk per request (default 600 s).
    pub chunk_secs: u32,
}

impl std::fmt::Debug for RemoteTranscriberConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteTranscriberConfig")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RemoteTranscriberConfig {
    /// Defaults for an endpoint.
    pub fn new(base_url: &str, api_key: Option<String>) -> Self {
        RemoteTranscriberConfig {
            base_url: base_url.trim_end_matches('/').to_owned(),
            api_key,
            model: "whisper-1".into(),
            timeout: Duration::from_secs(600),
            max_concurrency: 4,
            chunk_secs: 600,
        }
    }
}

/// [`Transcriber`] on a remote OpenAI-compatible service.
pub struct RemoteTranscriber {
    client: Client<OpenAIConfig>,
    cfg: RemoteTranscriberConfig,
    decoder: Arc<dyn AudioDecoder>,
    permits: Arc<Semaphore>,
}

impl std::fmt::Debug for RemoteTranscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteTranscriber")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Verbose {
    #[serde(default)]
    language: Option<String>,
    #[serde(default)]
    segments: Option<Vec<VSegment>>,
    #[serde(default)]
    words: Option<Vec<VWord>>,
}

#[derive(Deserialize)]
struct VSegment {
    #[serde(default)]
    start: f64,
    #[serde(default)]
    end: f64,
    #[serde(default)]
    text: String,
    #[serde(default)]
    tokens: Vec<i32>,
    avg_logprob: Option<f32>,
    no_speech_prob: Option<f32>,
    compression_ratio: Option<f32>,
    temperature: Option<f32>,
}

impl VSegment {
    /// The upstream's decoder figures, when it sent them.
    fn stats(&self) -> Option<SegmentStats> {
        Some(SegmentStats {
            tokens: self.tokens.clone(),
            avg_logprob: self.avg_logprob?,
            no_speech_prob: self.no_speech_prob.unwrap_or(0.0),
            compression_ratio: self
                .compression_ratio
                .unwrap_or_else(|| SegmentStats::compression_ratio_of(self.text.trim())),
            temperature: self.temperature.unwrap_or(0.0),
        })
    }
}

#[derive(Deserialize)]
struct VWord {
    #[serde(default)]
    word: String,
    #[serde(default)]
    start: f64,
    #[serde(default)]
    end: f64,
}

/// Chunk boundaries (sample indices): at most `max` samples each, cut at the quietest 0.5 s
/// within the last 30 s before each limit.
fn chunk_bounds(samples: &[f32], max: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = 0;
    let win = 8_000; // 0.5 s
    while samples.len() - start > max {
        let limit = start + max;
        // Look back at most 30 s (and at most half a chunk), preferring later cuts on ties.
        let search_from = limit
            .saturating_sub((30 * 16_000).min(max / 2))
            .max(start + win);
        let mut best = limit;
        let mut best_energy = f32::MAX;
        let mut i = search_from;
        while i + win <= limit {
            let e: f32 = samples[i..i + win].iter().map(|s| s * s).sum();
            if e <= best_energy {
                best_energy = e;
                best = i + win / 2;
            }
            i += win / 2;
        }
        out.push((start, best));
        start = best;
    }
    out.push((start, samples.len()));
    out
}

impl RemoteTranscriber {
    /// A remote transcriber decoding media with `decoder`.
    pub fn new(
        cfg: RemoteTranscriberConfig,
        decoder: Arc<dyn AudioDecoder>,
    ) -> Result<Self, ProcessorError> {
        if !(cfg.base_url.starts_with("http://") || cfg.base_url.starts_with("https://")) {
            return Err(ProcessorError::Validation(format!(
                "remote transcription base URL '{}' must start with http:// or https://",
                cfg.base_url
            )));
        }
        let client = make_client(
            &cfg.base_url,
            cfg.api_key.as_deref(),
            cfg.timeout,
            RetryPolicy::default(),
        )?;
        Ok(RemoteTranscriber {
            client,
            permits: Arc::new(Semaphore::new(cfg.max_concurrency.max(1))),
            cfg,
            decoder,
        })
    }

    async fn one_chunk(
        &self,
        samples: &[f32],
        offset_ms: i64,
        opts: &TranscribeOptions,
        cancel: &CancellationToken,
    ) -> Result<(Option<String>, Vec<Segment>), ProcessorError> {
        let mut granularities = vec![TimestampGranularity::Segment];
        if opts.word_timestamps {
            granularities.push(TimestampGranularity::Word);
        }
        let request = CreateTranscriptionRequest {
            file: AudioInput::from_vec_u8("audio.wav".into(), crate::wav::encode(samples)),
            model: self.cfg.model.clone(),
            language: opts.forced_language().map(str::to_owned),
            prompt: opts.initial_prompt.clone().filter(|p| !p.is_empty()),
            response_format: Some(AudioResponseFormat::VerboseJson),
            temperature: opts.temperature,
            timestamp_granularities: Some(granularities),
            ..Default::default()
        };
        let _permit = tokio::select! {
            p = self.permits.clone().acquire_owned() => p.map_err(|_| ProcessorError::Internal("closed".into()))?,
            _ = cancel.cancelled() => return Err(ProcessorError::Cancelled),
        };
        let audio = self.client.audio();
        let transcription = audio.transcription();
        let resp: Verbose = tokio::select! {
            r = transcription.create_verbose_json_byot(request) => r.map_err(|e| {
                match map_openai_error(e) {
                    ProcessorError::LlmRequest(m) => ProcessorError::Transcription(format!("remote transcription failed: {m}")),
                    ProcessorError::ServiceUnavailable(m) => ProcessorError::ServiceUnavailable(format!("remote transcription failed: {m}")),
                    other => other,
                }
            })?,
            _ = cancel.cancelled() => return Err(ProcessorError::Cancelled),
        };
        let segs = resp.segments.ok_or_else(|| {
            ProcessorError::Transcription(
                "the transcription server returned no segments (it must support response_format=verbose_json)".into(),
            )
        })?;
        let ms = |s: f64| offset_ms + (s.max(0.0) * 1000.0).round() as i64;
        let words: Vec<Word> = resp
            .words
            .unwrap_or_default()
            .into_iter()
            .map(|w| Word {
                text: w.word.trim().to_owned(),
                start_ms: ms(w.start),
                end_ms: ms(w.end.max(w.start)),
            })
            .filter(|w| !w.text.is_empty())
            .collect();
        let segments = segs
            .into_iter()
            .map(|s| {
                let (start_ms, end_ms) = (ms(s.start), ms(s.end.max(s.start)));
                let stats = s.stats();
                Segment {
                    start_ms,
                    end_ms,
                    text: s.text.trim().to_owned(),
                    words: words
                        .iter()
                        .filter(|w| w.start_ms >= start_ms && w.start_ms < end_ms.max(start_ms + 1))
                        .cloned()
                        .collect(),
                    stats,
                }
            })
            .filter(|s| !s.text.is_empty())
            .collect();
        Ok((resp.language, segments))
    }
}

#[async_trait]
impl Transcriber for RemoteTranscriber {
    fn name(&self) -> &str {
        "remote"
    }

    fn validate(&self, opts: &TranscribeOptions) -> Result<(), ProcessorError> {
        opts.validate_common()?;
        let unsupported = [
            (opts.beam_size.is_some(), "beam_size"),
            (opts.best_of.is_some(), "best_of"),
            (opts.no_speech_threshold.is_some(), "no_speech_threshold"),
            (opts.translate, "translate"),
            (opts.vad == Some(true), "vad"),
        ];
        if let Some((_, name)) = unsupported.iter().find(|(set, _)| *set) {
            return Err(ProcessorError::Validation(format!(
                "{name} is not supported by the remote transcription backend"
            )));
        }
        if let Some(m) = opts
            .model
            .as_deref()
            .map(str::trim)
            .filter(|m| !m.is_empty())
            && m != self.cfg.model
        {
            return Err(ProcessorError::UnknownModel(format!(
                "the model '{m}' is not served here; the remote backend runs '{}'",
                self.cfg.model
            )));
        }
        Ok(())
    }

    fn is_local(&self) -> bool {
        false
    }

    fn default_model(&self) -> Option<String> {
        Some(self.cfg.model.clone())
    }

    async fn transcribe(
        &self,
        media: &Path,
        opts: &TranscribeOptions,
        progress: Progress,
        cancel: &CancellationToken,
    ) -> Result<Transcript, ProcessorError> {
        self.validate(opts)?;
        let audio = self
            .decoder
            .decode(media, scaled(progress.clone(), 0.0, 0.2), cancel)
            .await?;
        let max = usize::try_from(self.cfg.chunk_secs.max(30)).unwrap_or(600) * 16_000;
        let bounds = chunk_bounds(&audio.samples, max);
        let n = bounds.len();
        let mut segments = Vec::new();
        let mut language = None;
        for (i, (a, b)) in bounds.into_iter().enumerate() {
            let offset_ms = (a as i64) * 1000 / 16_000;
            let (lang, segs) = self
                .one_chunk(&audio.samples[a..b], offset_ms, opts, cancel)
                .await?;
            language = language.or(lang);
            segments.extend(segs);
            progress.report(0.2 + 0.8 * (i + 1) as f64 / n as f64, "transcribing");
        }
        let language = opts
            .forced_language()
            .map(str::to_owned)
            .or(language)
            .map(|l| l.to_lowercase())
            .unwrap_or_else(|| "unknown".into());
        let segments = super::clean::clean_segments(
            segments,
            opts.no_speech_threshold
                .unwrap_or(super::clean::NO_SPEECH_THRESHOLD),
        );
        let text = Transcript::join_text(&segments);
        Ok(Transcript {
            language,
            segments,
            text,
            duration_ms: audio.duration_ms(),
            speech_ms: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cut_in_silence() {
        // 25 s of tone with a silent gap at 18-19 s; chunks of at most 20 s.
        let mut s: Vec<f32> = (0..25 * 16_000)
            .map(|i| (i as f32 * 0.05).sin() * 0.5)
            .collect();
        for v in &mut s[18 * 16_000..19 * 16_000] {
            *v = 0.0;
        }
        let b = chunk_bounds(&s, 20 * 16_000);
        assert_eq!(b.len(), 2);
        let cut = b[0].1;
        assert!((18 * 16_000..19 * 16_000).contains(&cut), "cut at {cut}");
        assert_eq!(b[1], (cut, s.len()));
        assert_eq!(chunk_bounds(&s[..100], 20 * 16_000), vec![(0, 100)]);
    }
}
