//! Media probing, decoding and conversion.
//!
//! The traits ([`MediaProbe`], [`AudioDecoder`], [`Converter`]) are what jobs use; [`Gst`] is
//! the GStreamer backend (shared/notes/gstreamer.md): `uridecodebin` pipelines driven from
//! tokio through the bus stream, with watchdogs, because GStreamer 1.22 can swallow an early
//! demuxer error and hang.

mod gst_backend;
mod gst_convert;
mod mp3;

use std::path::Path;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use crate::progress::{ProcessorError, Progress};

pub use gst_backend::{Gst, GstConfig};

/// Sample rate of decoded audio (what whisper wants).
pub const SAMPLE_RATE: u32 = 16_000;

/// Whether a file is video, audio, or neither.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaKind {
    /// Has a (non-image) video stream.
    Video,
    /// Audio only (cover art does not count as video).
    Audio,
}

/// The first video stream.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct VideoStream {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Frames per second, if known.
    pub framerate: Option<f64>,
    /// Codec description.
    pub codec: Option<String>,
}

/// The first audio stream.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AudioStream {
    /// Sample rate.
    pub sample_rate: u32,
    /// Channels.
    pub channels: u32,
    /// Codec description.
    pub codec: Option<String>,
}

/// What a probe found.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MediaInfo {
    /// Video or audio.
    pub kind: MediaKind,
    /// Container duration in ms, if the container states one.
    pub duration_ms: Option<i64>,
    /// First video stream.
    pub video: Option<VideoStream>,
    /// First audio stream.
    pub audio: Option<AudioStream>,
}

/// 16 kHz mono f32 audio.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedAudio {
    /// Samples.
    pub samples: Vec<f32>,
}

impl DecodedAudio {
    /// Duration in ms.
    pub fn duration_ms(&self) -> i64 {
        (self.samples.len() as i64) * 1000 / i64::from(SAMPLE_RATE)
    }
}

/// Encoder speed/quality trade-off, equivalent to ffmpeg x264 `veryfast/26`, `medium/23`,
/// `slow/20`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    /// veryfast, CRF 26.
    Performance,
    /// medium, CRF 23.
    #[default]
    Balanced,
    /// slow, CRF 20.
    Quality,
}

impl Preset {
    /// `(x264 speed preset, CRF)`.
    pub fn x264(self) -> (&'static str, u32) {
        match self {
            Preset::Performance => ("veryfast", 26),
            Preset::Balanced => ("medium", 23),
            Preset::Quality => ("slow", 20),
        }
    }
}

/// MP4 conversion settings.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConvertOptions {
    /// Maximum box `(width, height)`; the picture is scaled down to fit, aspect kept, never up.
    pub max_size: Option<(u32, u32)>,
    /// Video bitrate ceiling in kbit/s (VBV max rate over the CRF encode).
    pub max_kbps: Option<u32>,
    /// Speed/quality preset.
    #[serde(default)]
    pub preset: Preset,
}

/// What a conversion produced.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvertReport {
    /// Output size in bytes.
    pub size_bytes: u64,
    /// Output dimensions, if it has video.
    pub video_size: Option<(u32, u32)>,
    /// Duration of the input in ms, if known.
    pub duration_ms: Option<i64>,
}

/// Finds out what a file is.
#[async_trait]
pub trait MediaProbe: Send + Sync {
    /// Probes `path`. Corrupt or non-media input is [`ProcessorError::MediaDecode`].
    async fn probe(&self, path: &Path) -> Result<MediaInfo, ProcessorError>;
}

/// Decodes the audio of any audio/video file to 16 kHz mono f32.
#[async_trait]
pub trait AudioDecoder: Send + Sync {
    /// Decodes the first audio stream (video is never decoded). Fails with `MediaDecode` on
    /// corrupt, empty, truncated or audio-less input; stops within a second of `cancel`.
    async fn decode(
        &self,
        path: &Path,
        progress: Progress,
        cancel: &CancellationToken,
    ) -> Result<DecodedAudio, ProcessorError>;
}

/// Converts media to MP4 (H.264 + AAC, `faststart`).
#[async_trait]
pub trait Converter: Send + Sync {
    /// Writes `output` (through a temporary file renamed at the end: a cancelled or failed
    /// conversion leaves no output file).
    async fn convert(
        &self,
        input: &Path,
        output: &Path,
        opts: &ConvertOptions,
        progress: Progress,
        cancel: &CancellationToken,
    ) -> Result<ConvertReport, ProcessorError>;
}

/// Cleans speech for recognition (the `clean_audio` option): removes DC offset and rumble below
/// 80 Hz (2nd-order Butterworth high-pass), then normalizes the peak to 0.95. 16 kHz input.
///
/// ```
/// let mut s: Vec<f32> = (0..16_000).map(|i| 0.3 + 0.1 * (i as f32 * 0.2).sin()).collect();
/// mediajobs_processor::media::clean_speech(&mut s);
/// let mean: f32 = s[8_000..].iter().sum::<f32>() / 8_000.0;
/// assert!(mean.abs() < 0.01, "offset removed");
/// assert!((s.iter().fold(0f32, |m, v| m.max(v.abs())) - 0.95).abs() < 1e-3);
/// ```
pub fn clean_speech(samples: &mut [f32]) {
    // RBJ cookbook high-pass, f0 = 80 Hz, Q = 1/sqrt(2), fs = 16 kHz.
    let w0 = 2.0 * std::f64::consts::PI * 80.0 / f64::from(SAMPLE_RATE);
    let alpha = w0.sin() / (2.0 * std::f64::consts::FRAC_1_SQRT_2);
    let cos = w0.cos();
    let a0 = 1.0 + alpha;
    let b0 = (1.0 + cos) / 2.0 / a0;
    let b1 = -(1.0 + cos) / a0;
    let b2 = b0;
    let a1 = -2.0 * cos / a0;
    let a2 = (1.0 - alpha) / a0;
    let (mut x1, mut x2, mut y1, mut y2) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
    for s in samples.iter_mut() {
        let x = f64::from(*s);
        let y = b0 * x + b1 * x1 + b2 * x2 - a1 * y1 - a2 * y2;
        x2 = x1;
        x1 = x;
        y2 = y1;
        y1 = y;
        *s = y as f32;
    }
    let peak = samples.iter().fold(0f32, |m, v| m.max(v.abs()));
    if peak > 1e-4 {
        let g = 0.95 / peak;
        for s in samples.iter_mut() {
            *s *= g;
        }
    }
}

/// The largest even `(w, h)` fitting `(w, h)` into `max`, keeping the aspect ratio, never
/// scaling up.
///
/// ```
/// use mediajobs_processor::media::fit_within;
/// assert_eq!(fit_within((1920, 1080), Some((1280, 720))), (1280, 720));
/// assert_eq!(fit_within((1080, 1920), Some((1280, 720))), (404, 720));
/// assert_eq!(fit_within((640, 360), Some((1280, 720))), (640, 360));
/// ```
pub fn fit_within(src: (u32, u32), max: Option<(u32, u32)>) -> (u32, u32) {
    let even = |v: u32| (v.max(2) / 2) * 2;
    let (w, h) = src;
    let Some((mw, mh)) = max else {
        return (even(w), even(h));
    };
    if w <= mw && h <= mh {
        return (even(w), even(h));
    }
    let scale = f64::min(f64::from(mw) / f64::from(w), f64::from(mh) / f64::from(h));
    let nw = (f64::from(w) * scale).round() as u32;
    let nh = (f64::from(h) * scale).round() as u32;
    (even(nw.min(mw)), even(nh.min(mh)))
}
