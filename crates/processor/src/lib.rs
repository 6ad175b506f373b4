//! # mediajobs-processor
//!
//! The media operations of mediajobs, each behind a trait with swappable backends. It knows
//! nothing of jobs or HTTP: every long operation takes a progress callback and a cancellation
//! token.
//!
//! | module | what | backend |
//! |---|---|---|
//! | [`subtitle`] | SRT/VTT parse, format, sanitize; subtitle-grade segmentation | pure Rust |
//! | `media` | probe, decode to 16 kHz mono, convert to MP4 | GStreamer (feature `media`) |
//! | [`transcribe`] | speech to text (`Transcriber`): local and remote | whisper.cpp via whisper-rs (feature `whisper`); OpenAI-compatible services (feature `llm`) |
//! | `llm` | LLM subtitle fixing, OpenAI-compatible providers | async-openai (feature `llm`) |
//! | `model` | obtain a real Whisper model from PyPI, convert CTranslate2 → GGML | pure Rust + pip |
//! | [`wav`] | 16 kHz mono 16-bit WAV encoding | pure Rust |

#[cfg(all(feature = "llm", feature = "media"))]
pub mod llm;
#[cfg(feature = "media")]
pub mod media;
#[cfg(feature = "whisper")]
pub mod model;
mod progress;
pub mod subtitle;
#[cfg(any(feature = "llm", feature = "download"))]
mod tls;
pub mod transcribe;
pub mod wav;

pub use progress::{ProcessorError, Progress, ProgressSink, no_progress, scaled};
/// Re-exported for callers that need no direct tokio-util dependency.
pub use tokio_util::sync::CancellationToken;
