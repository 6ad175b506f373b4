//! Voice activity detection before whisper: Silero VAD (through whisper.cpp's own detector)
//! finds the speech, whisper transcribes only that, and every timestamp is mapped back to
//! the original audio.
//!
//! whisper.cpp runs its VAD inside `whisper_full` only; whisper-rs transcribes on a state of
//! its own (`whisper_full_with_state`, so several run at once), which skips it. So the
//! pipeline is ours, with whisper.cpp's detector: [`Vad::speech`] gives the speech regions,
//! [`SpeechMap::build`] joins them (each padded, as Silero's own `get_speech_timestamps`
//! pads them) into the audio whisper sees, and [`SpeechMap::to_original_ms`] maps a time in
//! that audio back — word times included, which whisper.cpp's own mapping leaves alone.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use whisper_rs::{WhisperVadContext, WhisperVadContextParams, WhisperVadParams};

use crate::progress::ProcessorError;
use tokio_util::sync::CancellationToken;

const RATE: usize = 16_000;

/// The detector's settings: faster-whisper's defaults (`VadOptions`), which keep every word
/// (generous padding, pauses under 2 s kept inside a region) and still drop long silences.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VadSettings {
    /// Speech probability above which a 32 ms window is speech.
    pub threshold: f32,
    /// Shorter speech is dropped, ms.
    pub min_speech_ms: i32,
    /// Pauses shorter than this stay inside a region, ms.
    pub min_silence_ms: i32,
    /// Padding kept on each side of a region, ms.
    pub speech_pad_ms: i32,
}

impl Default for VadSettings {
    fn default() -> Self {
        VadSettings {
            threshold: 0.5,
            min_speech_ms: 250,
            min_silence_ms: 2000,
            speech_pad_ms: 400,
        }
    }
}

/// A loaded VAD model: detector contexts over it, kept for the next transcription.
pub struct Vad {
    path: PathBuf,
    pool: Mutex<Vec<WhisperVadContext>>,
    settings: VadSettings,
    threads: usize,
}

impl std::fmt::Debug for Vad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vad")
            .field("path", &self.path)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

fn context(path: &Path, threads: usize) -> Result<WhisperVadContext, ProcessorError> {
    let mut p = WhisperVadContextParams::new();
    p.set_n_threads(i32::try_from(threads).unwrap_or(1));
    p.set_use_gpu(false);
    let s = path
        .to_str()
        .filter(|s| !s.contains('\0'))
        .ok_or_else(|| ProcessorError::WhisperUnavailable("bad VAD model path".into()))?;
    WhisperVadContext::new(s, p).map_err(|e| {
        ProcessorError::WhisperUnavailable(format!(
            "cannot load the VAD model {}: {e}",
            path.display()
        ))
    })
}

impl Vad {
    /// Loads a VAD model file (one detector, to check it loads); each detection computes on
    /// `threads` threads.
    pub fn load(
        path: &Path,
        settings: VadSettings,
        threads: usize,
    ) -> Result<Self, ProcessorError> {
        let threads = threads.max(1);
        let first = context(path, threads)?;
        Ok(Vad {
            path: path.to_owned(),
            pool: Mutex::new(vec![first]),
            settings,
            threads,
        })
    }

    /// The model file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The speech regions of 16 kHz mono `samples`, as sample ranges (padded, in order, not
    /// overlapping).
    pub fn speech(&self, samples: &[f32]) -> Result<Vec<Range<usize>>, ProcessorError> {
        self.speech_until(samples, &CancellationToken::new())
    }

    /// [`Vad::speech`], stopping with [`ProcessorError::Cancelled`] within one piece of
    /// audio of `cancel` firing. whisper.cpp's detector cannot be stopped inside a call (it
    /// takes about 0.2 s of one core per minute of audio), so the audio goes through it in
    /// pieces of [`VAD_PIECE_SECS`]; the detector's state starts afresh at each piece, and
    /// regions that meet at a seam are joined.
    pub fn speech_until(
        &self,
        samples: &[f32],
        cancel: &CancellationToken,
    ) -> Result<Vec<Range<usize>>, ProcessorError> {
        if samples.is_empty() {
            return Ok(Vec::new());
        }
        let taken = self
            .pool
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop();
        let mut ctx = match taken {
            Some(c) => c,
            None => context(&self.path, self.threads)?,
        };
        let to_sample = |cs: f32| ((f64::from(cs) / 100.0 * RATE as f64).round().max(0.0)) as usize;
        // Two padded regions closer than this across a seam are one.
        let seam_gap =
            usize::try_from(self.settings.speech_pad_ms.max(0)).unwrap_or(0) * RATE / 500;
        let mut out: Vec<Range<usize>> = Vec::new();
        for start in (0..samples.len()).step_by(VAD_PIECE_SECS * RATE) {
            if cancel.is_cancelled() {
                self.pool
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(ctx);
                return Err(ProcessorError::Cancelled);
            }
            let piece = &samples[start..(start + VAD_PIECE_SECS * RATE).min(samples.len())];
            let mut p = WhisperVadParams::new();
            p.set_threshold(self.settings.threshold);
            p.set_min_speech_duration(self.settings.min_speech_ms);
            p.set_min_silence_duration(self.settings.min_silence_ms);
            p.set_speech_pad(self.settings.speech_pad_ms);
            p.set_max_speech_duration(f32::MAX);
            p.set_samples_overlap(0.0);
            let segs = ctx.segments_from_samples(p, piece).map_err(|e| {
                ProcessorError::Transcription(format!("voice detection failed: {e}"))
            })?;
            for (k, s) in segs.into_iter().enumerate() {
                let (a, b) = (
                    start + to_sample(s.start).min(piece.len()),
                    start + to_sample(s.end).min(piece.len()),
                );
                if b <= a {
                    continue;
                }
                let joins = |last: &Range<usize>| {
                    a <= last.end
                        || (k == 0
                            && start > 0
                            && a - start <= seam_gap
                            && start - last.end.min(start) <= seam_gap)
                };
                match out.last_mut() {
                    Some(last) if joins(last) => last.end = last.end.max(b),
                    _ => out.push(a..b),
                }
            }
        }
        self.pool
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(ctx);
        Ok(out)
    }
}

/// Seconds of audio per call of the detector (see [`Vad::speech_until`]).
pub const VAD_PIECE_SECS: usize = 60;

/// One speech region of the joined audio: where it starts there and in the original.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Piece {
    joined: usize,
    original: usize,
    len: usize,
}

/// How the audio whisper saw (the speech regions, joined) maps to the original.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SpeechMap {
    pieces: Vec<Piece>,
}

impl SpeechMap {
    /// Joins the `regions` of `samples` into the audio to transcribe, with the map back.
    pub fn build(samples: &[f32], regions: &[Range<usize>]) -> (Vec<f32>, SpeechMap) {
        let mut joined = Vec::with_capacity(regions.iter().map(|r| r.len()).sum());
        let mut pieces = Vec::with_capacity(regions.len());
        for r in regions {
            let r = r.start.min(samples.len())..r.end.min(samples.len());
            if r.is_empty() {
                continue;
            }
            pieces.push(Piece {
                joined: joined.len(),
                original: r.start,
                len: r.len(),
            });
            joined.extend_from_slice(&samples[r]);
        }
        (joined, SpeechMap { pieces })
    }

    /// Speech kept, ms.
    pub fn speech_ms(&self) -> i64 {
        let n: usize = self.pieces.iter().map(|p| p.len).sum();
        (n * 1000 / RATE) as i64
    }

    /// Regions kept.
    pub fn regions(&self) -> usize {
        self.pieces.len()
    }

    /// The region (index) holding a time of the joined audio (ms); on a seam, the region
    /// before when `end`, else the one after.
    pub fn region_of(&self, ms: i64, end: bool) -> usize {
        let at = usize::try_from(ms.max(0)).unwrap_or(0) * RATE / 1000;
        self.pieces
            .partition_point(|p| if end { p.joined < at } else { p.joined <= at })
            .saturating_sub(1)
    }

    /// Maps a time of the joined audio (ms) to the original. A time on the seam of two
    /// regions is the end of the first when `end` (a segment or word ending there), else the
    /// start of the second.
    pub fn to_original_ms(&self, ms: i64, end: bool) -> i64 {
        let Some(last) = self.pieces.last() else {
            return ms;
        };
        let at = usize::try_from(ms.max(0)).unwrap_or(0) * RATE / 1000;
        let p = self.pieces.get(self.region_of(ms, end)).unwrap_or(last);
        let within = at.saturating_sub(p.joined).min(p.len);
        ((p.original + within) * 1000 / RATE) as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_regions_and_maps_times_back() {
        let samples: Vec<f32> = (0..10 * RATE).map(|i| i as f32).collect();
        // Speech at 1-2 s and 5-7 s.
        let (joined, map) = SpeechMap::build(&samples, &[RATE..2 * RATE, 5 * RATE..7 * RATE]);
        assert_eq!(joined.len(), 3 * RATE);
        assert_eq!(joined[0], RATE as f32);
        assert_eq!(joined[RATE], (5 * RATE) as f32);
        assert_eq!(map.speech_ms(), 3000);
        assert_eq!(map.regions(), 2);
        assert_eq!(map.to_original_ms(0, false), 1000);
        assert_eq!(map.to_original_ms(500, false), 1500);
        // The seam: an end belongs to the first region, a start to the second.
        assert_eq!(map.to_original_ms(1000, true), 2000);
        assert_eq!(map.to_original_ms(1000, false), 5000);
        assert_eq!(map.to_original_ms(2500, true), 6500);
        // Past the end stays at the end of the last region.
        assert_eq!(map.to_original_ms(9000, true), 7000);
        assert_eq!(map.to_original_ms(-5, false), 1000);
        assert_eq!(map.region_of(999, true), 0);
        assert_eq!(map.region_of(1000, true), 0);
        assert_eq!(map.region_of(1000, false), 1);
        assert_eq!(map.region_of(9000, false), 1);
        // Times only grow.
        let mut last = 0;
        for ms in 0..3000 {
            let o = map.to_original_ms(ms, false);
            assert!(o >= last, "{ms}: {o} < {last}");
            last = o;
        }
    }

    #[test]
    fn no_regions_is_no_audio() {
        let (joined, map) = SpeechMap::build(&[0.0; 100], &[]);
        assert!(joined.is_empty());
        assert_eq!(map.speech_ms(), 0);
        assert_eq!(map.to_original_ms(1234, false), 1234);
        let region: Range<usize> = 50..500;
        let (joined, map) = SpeechMap::build(&[0.0; 100], std::slice::from_ref(&region));
        assert_eq!(joined.len(), 50, "clamped to the audio");
        assert_eq!(map.regions(), 1);
    }
}
