//! Local transcription with whisper.cpp through whisper-rs.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once};

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;
use whisper_rs::{
    FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters, WhisperState,
};

use super::ModelStatus;
use super::models::ModelManager;
use super::vad::{SpeechMap, Vad, VadSettings};
use super::{DETECT_WINDOW_MS, LanguageGuess, TranscribeOptions, Transcriber, Transcript};
use crate::media::AudioDecoder;
use crate::progress::{ProcessorError, Progress, scaled};
use crate::subtitle::{Segment, SegmentStats, Word};

/// How to load and run a whisper model.
#[derive(Debug, Clone)]
pub struct WhisperConfig {
    /// Path of the GGML model file.
    pub model_path: PathBuf,
    /// Threads per transcription (default: the machine's cores; with several transcriptions
    /// at once, give each a share).
    pub threads: usize,
    /// Flash attention (1.6× faster on `base`, slightly slower on `tiny`; default on).
    pub flash_attn: bool,
    /// Use the GPU when built with `cuda` or `vulkan`.
    pub use_gpu: bool,
}

impl WhisperConfig {
    /// Defaults for a model file.
    pub fn new(model_path: impl Into<PathBuf>) -> Self {
        WhisperConfig {
            model_path: model_path.into(),
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            flash_attn: true,
            use_gpu: cfg!(any(feature = "cuda", feature = "vulkan")),
        }
    }
}

/// A loaded model: its weights are loaded once and shared by every transcription on it; each
/// transcription runs on a decoder state of its own (kept in a pool for the next one), so
/// several run at once over one copy of the weights.
pub struct WhisperModel {
    ctx: WhisperContext,
    states: Mutex<Vec<WhisperState>>,
    multilingual: bool,
    path: PathBuf,
    size_bytes: u64,
}

impl std::fmt::Debug for WhisperModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhisperModel")
            .field("path", &self.path)
            .field("multilingual", &self.multilingual)
            .finish_non_exhaustive()
    }
}

fn install_logging() {
    static ONCE: Once = Once::new();
    ONCE.call_once(whisper_rs::install_logging_hooks);
}

impl WhisperModel {
    /// Loads a GGML model. A missing or invalid file is `WhisperUnavailable`.
    pub fn load(cfg: &WhisperConfig) -> Result<Arc<Self>, ProcessorError> {
        install_logging();
        if !cfg.model_path.is_file() {
            return Err(ProcessorError::WhisperUnavailable(format!(
                "whisper model not found at {} (run `mediajobs model fetch`)",
                cfg.model_path.display()
            )));
        }
        let params = WhisperContextParameters {
            flash_attn: cfg.flash_attn,
            use_gpu: cfg.use_gpu,
            ..Default::default()
        };
        let ctx = WhisperContext::new_with_params(&cfg.model_path, params).map_err(|e| {
            ProcessorError::WhisperUnavailable(format!(
                "cannot load whisper model {}: {e}",
                cfg.model_path.display()
            ))
        })?;
        let multilingual = ctx.is_multilingual();
        let size_bytes = std::fs::metadata(&cfg.model_path).map_or(0, |m| m.len());
        tracing::info!(path = %cfg.model_path.display(), multilingual, compute = %compute_device(cfg.use_gpu), "whisper model loaded");
        Ok(Arc::new(WhisperModel {
            ctx,
            states: Mutex::new(Vec::new()),
            multilingual,
            path: cfg.model_path.clone(),
            size_bytes,
        }))
    }

    /// The model file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The model file's size in bytes.
    pub fn size_bytes(&self) -> u64 {
        self.size_bytes
    }

    /// `true` for multilingual models (`auto` detection, other languages, translation).
    pub fn is_multilingual(&self) -> bool {
        self.multilingual
    }

    fn take_state(&self) -> Result<WhisperState, ProcessorError> {
        if let Some(s) = self.states.lock().ok().and_then(|mut v| v.pop()) {
            return Ok(s);
        }
        self.ctx.create_state().map_err(|e| {
            ProcessorError::Transcription(format!("cannot create a whisper state: {e}"))
        })
    }

    /// A decoder state; `Cancelled` if the token fired meanwhile.
    fn enter(&self, cancel: &CancellationToken) -> Result<WhisperState, ProcessorError> {
        if cancel.is_cancelled() {
            return Err(ProcessorError::Cancelled);
        }
        self.take_state()
    }

    fn give_back(&self, state: WhisperState) {
        if let Ok(mut v) = self.states.lock() {
            v.push(state);
        }
    }
}

/// The backend whisper.cpp computes on in this build: `cuda`, `vulkan` or `cpu`.
pub fn backend() -> &'static str {
    if cfg!(feature = "cuda") {
        "cuda"
    } else if cfg!(feature = "vulkan") {
        "vulkan"
    } else {
        "cpu"
    }
}

/// What whisper.cpp computes on: with `use_gpu` in a `cuda`/`vulkan` build, the first GPU
/// ggml finds (`vulkan: NAME`); else, or when it finds none, `cpu`.
pub fn compute_device(use_gpu: bool) -> String {
    if use_gpu && backend() != "cpu" {
        let gpu = crate::model::ggml::devices()
            .into_iter()
            .find(|d| d.kind == "gpu" || d.kind == "igpu");
        if let Some(d) = gpu {
            return format!("{}: {}", backend(), d.description);
        }
    }
    "cpu".to_owned()
}

/// How many whisper computations run now, and the most that ever ran at once.
#[derive(Debug, Default)]
struct Gauge {
    running: AtomicUsize,
    peak: AtomicUsize,
}

struct Running(Arc<Gauge>);

impl Gauge {
    fn enter(self: &Arc<Self>) -> Running {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        Running(self.clone())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
    }
}

/// [`Transcriber`] on local whisper models; decodes media with the given [`AudioDecoder`].
///
/// Up to `concurrency` transcriptions compute at once (each on its own decoder state over
/// the shared weights, with `threads` threads each). The slot is held by the whisper thread
/// itself: a cancelled transcription answers at once, but the next one starts only when its
/// computation has really stopped, so the CPU never runs more than `concurrency`.
pub struct WhisperTranscriber {
    models: Arc<ModelManager>,
    decoder: Arc<dyn AudioDecoder>,
    threads: usize,
    slots: Arc<tokio::sync::Semaphore>,
    gauge: Arc<Gauge>,
    /// The VAD model last loaded (reloaded when the directory's VAD model changes).
    vad: Mutex<Option<Arc<Vad>>>,
}

impl WhisperTranscriber {
    /// A transcriber over one loaded model, one transcription at a time.
    pub fn new(model: Arc<WhisperModel>, decoder: Arc<dyn AudioDecoder>, threads: usize) -> Self {
        Self::with_manager(ModelManager::with_loaded(model), decoder, threads, 1)
    }

    /// A transcriber over the models of a [`ModelManager`], `concurrency` transcriptions at
    /// once with `threads` threads each.
    pub fn with_manager(
        models: Arc<ModelManager>,
        decoder: Arc<dyn AudioDecoder>,
        threads: usize,
        concurrency: usize,
    ) -> Self {
        WhisperTranscriber {
            models,
            decoder,
            threads: threads.max(1),
            slots: Arc::new(tokio::sync::Semaphore::new(concurrency.max(1))),
            gauge: Arc::default(),
            vad: Mutex::new(None),
        }
    }

    /// The VAD model file: the configured one, else the model directory's.
    fn vad_file(&self) -> Option<(PathBuf, String)> {
        let cfg = self.models.config();
        match &cfg.vad_model {
            Some(p) => crate::model::silero::read_vad_info(p)
                .ok()
                .map(|i| (p.clone(), i.version)),
            None => crate::model::silero::resolve_vad(&cfg.dir).map(|v| (v.path, v.info.version)),
        }
    }

    /// The VAD model (see [`vad_file`](Self::vad_file)), loaded once per file; `None` when
    /// there is none.
    pub fn vad_model(&self) -> Result<Option<Arc<Vad>>, ProcessorError> {
        let Some((path, version)) = self.vad_file() else {
            return Ok(None);
        };
        let mut cached = self
            .vad
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(v) = cached.as_ref().filter(|v| v.path() == path) {
            return Ok(Some(v.clone()));
        }
        // One thread: the detector's graph is tiny (a 32 ms window each), and ggml's thread
        // barriers cost more than they share — 0.94 s for 10 min of audio on one thread, 3.9 s
        // on two (docs/benchmarks.md).
        let v = Arc::new(Vad::load(&path, VadSettings::default(), 1)?);
        tracing::info!(path = %path.display(), %version, "VAD model loaded");
        *cached = Some(v.clone());
        Ok(Some(v))
    }

    fn no_vad_model(&self) -> ProcessorError {
        ProcessorError::WhisperUnavailable(format!(
            "vad needs a Silero VAD model and {} has none (or MEDIAJOBS_VAD_MODEL is not one); run `mediajobs model fetch silero-vad`",
            self.models.config().dir.display()
        ))
    }

    /// The model manager.
    pub fn manager(&self) -> &Arc<ModelManager> {
        &self.models
    }

    /// Threads per transcription.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Transcriptions computing now.
    pub fn running(&self) -> usize {
        self.gauge.running.load(Ordering::SeqCst)
    }

    /// The most transcriptions (and language detections) that ever computed at once.
    pub fn peak_concurrency(&self) -> usize {
        self.gauge.peak.load(Ordering::SeqCst)
    }

    /// A compute slot, or `Cancelled`.
    async fn slot(
        &self,
        cancel: &CancellationToken,
    ) -> Result<tokio::sync::OwnedSemaphorePermit, ProcessorError> {
        tokio::select! {
            p = self.slots.clone().acquire_owned() => p.map_err(|_| ProcessorError::Internal("transcription slots closed".into())),
            _ = cancel.cancelled() => Err(ProcessorError::Cancelled),
        }
    }

    /// Checks options against this backend and resolves the model they run on (one
    /// directory scan): what `validate` answers, and what a transcription then runs on.
    fn check(
        &self,
        opts: &TranscribeOptions,
    ) -> Result<crate::model::InstalledModel, ProcessorError> {
        opts.validate_common()?;
        let installed = self.models.resolve(opts.model.as_deref())?;
        let multilingual = installed.info.multilingual();
        if let Some(l) = opts.forced_language() {
            if whisper_rs::get_lang_id(l).is_none() {
                return Err(ProcessorError::Validation(format!(
                    "language '{l}' is not supported by whisper"
                )));
            }
            if !multilingual && l != "en" {
                return Err(ProcessorError::Validation(format!(
                    "the model is English-only; language '{l}' needs a multilingual model"
                )));
            }
        }
        if opts.translate && !multilingual {
            return Err(ProcessorError::Validation(
                "translate needs a multilingual model".into(),
            ));
        }
        if opts.vad == Some(true) && self.vad_file().is_none() {
            return Err(self.no_vad_model());
        }
        if opts.beam_size.is_some_and(|b| b > 1) && opts.best_of.is_some() {
            return Err(ProcessorError::Validation(
                "best_of applies to greedy decoding; use it without beam_size > 1".into(),
            ));
        }
        Ok(installed)
    }

    /// Transcribes 16 kHz mono samples (the decode step already done).
    pub async fn transcribe_samples(
        &self,
        samples: Vec<f32>,
        opts: &TranscribeOptions,
        progress: Progress,
        cancel: &CancellationToken,
    ) -> Result<Transcript, ProcessorError> {
        let installed = self.check(opts)?;
        self.transcribe_on(&installed, samples, opts, progress, cancel)
            .await
    }

    /// Transcribes samples on a model [`check`](Self::check) resolved.
    async fn transcribe_on(
        &self,
        installed: &crate::model::InstalledModel,
        samples: Vec<f32>,
        opts: &TranscribeOptions,
        progress: Progress,
        cancel: &CancellationToken,
    ) -> Result<Transcript, ProcessorError> {
        let model = self.models.get(installed, &progress).await?;
        let vad = if opts.vad == Some(true) {
            Some(self.vad_model()?.ok_or_else(|| self.no_vad_model())?)
        } else {
            None
        };
        let permit = self.slot(cancel).await?;
        let gauge = self.gauge.clone();
        let opts = opts.clone();
        let threads = self.threads;
        let token = cancel.clone();
        let task = tokio::task::spawn_blocking(move || {
            let _slot = permit;
            let _running = gauge.enter();
            run(
                &model,
                vad.as_deref(),
                &samples,
                &opts,
                threads,
                progress,
                token,
            )
        });
        // whisper.cpp checks its abort callback between graph computations, not inside the
        // encoder pass of a 30 s window (~1 s for `base` on 2 cores). Answer the cancel at
        // once; the whisper thread stops at its next check, holding its compute slot until
        // then so no transcription beyond the node's concurrency overlaps it.
        tokio::select! {
            res = task => res.map_err(|e| ProcessorError::Internal(format!("transcription task failed: {e}")))?,
            _ = cancel.cancelled() => Err(ProcessorError::Cancelled),
        }
    }
}

/// Empties a callback slot when the run returns, on every path.
struct EmptyOnDrop<T>(Arc<Mutex<Option<T>>>);

impl<T> Drop for EmptyOnDrop<T> {
    fn drop(&mut self) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
    }
}

/// Runs `vad` (when given) and whisper on what it kept, times mapped back to `samples`.
fn run(
    model: &WhisperModel,
    vad: Option<&Vad>,
    samples: &[f32],
    opts: &TranscribeOptions,
    threads: usize,
    progress: Progress,
    cancel: CancellationToken,
) -> Result<Transcript, ProcessorError> {
    let duration_ms = samples.len() as i64 * 1000 / 16_000;
    let Some(vad) = vad else {
        return transcribe_all(model, samples, None, opts, threads, progress, cancel);
    };
    progress.report(0.0, "detecting_speech");
    let regions = vad.speech_until(samples, &cancel)?;
    if cancel.is_cancelled() {
        return Err(ProcessorError::Cancelled);
    }
    let (speech, map) = SpeechMap::build(samples, &regions);
    tracing::debug!(
        regions = map.regions(),
        speech_ms = map.speech_ms(),
        duration_ms,
        "speech detected"
    );
    if speech.is_empty() {
        // Nothing but silence or noise: no cue, and whisper never runs.
        progress.report(1.0, "transcribing");
        let language = match opts.forced_language() {
            Some(l) => l.to_owned(),
            None if !model.multilingual => "en".to_owned(),
            None => "unknown".to_owned(),
        };
        return Ok(Transcript {
            language,
            segments: Vec::new(),
            text: String::new(),
            duration_ms,
            speech_ms: Some(0),
        });
    }
    let map = Arc::new(map);
    let mut tr = transcribe_all(
        model,
        &speech,
        Some(map.clone()),
        opts,
        threads,
        progress,
        cancel,
    )?;
    tr.duration_ms = duration_ms;
    tr.speech_ms = Some(map.speech_ms());
    Ok(tr)
}

/// whisper on `samples`; with `map`, they are the speech of a longer audio, and every time
/// is mapped back to it.
fn transcribe_all(
    model: &WhisperModel,
    samples: &[f32],
    map: Option<Arc<SpeechMap>>,
    opts: &TranscribeOptions,
    threads: usize,
    progress: Progress,
    cancel: CancellationToken,
) -> Result<Transcript, ProcessorError> {
    let duration_ms = samples.len() as i64 * 1000 / 16_000;
    let to_original = |ms: i64, end: bool| match &map {
        Some(m) => m.to_original_ms(ms, end),
        None => ms,
    };
    // The live callback reaches the map through a slot emptied after the run, like the
    // progress sink (whisper-rs leaks the boxed callbacks).
    let map_slot: Arc<Mutex<Option<Arc<SpeechMap>>>> = Arc::new(Mutex::new(map.clone()));
    let _empty_map_on_return = EmptyOnDrop(map_slot.clone());
    let live_map = move |ms: i64, end: bool| match map_slot
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .as_ref()
    {
        Some(m) => m.to_original_ms(ms, end),
        None => ms,
    };
    let strategy = match opts.beam_size {
        Some(b) if b > 1 => SamplingStrategy::BeamSearch {
            beam_size: i32::try_from(b).unwrap_or(1),
            patience: -1.0,
        },
        _ => SamplingStrategy::Greedy {
            best_of: i32::try_from(opts.best_of.unwrap_or(1)).unwrap_or(1),
        },
    };
    let language = opts.forced_language().unwrap_or("auto").to_owned();
    let mut params = FullParams::new(strategy);
    params.set_n_threads(i32::try_from(threads).unwrap_or(1));
    params.set_language(Some(&language));
    params.set_translate(opts.translate);
    params.set_token_timestamps(true);
    params.set_print_progress(false);
    params.set_print_realtime(false);
    params.set_print_special(false);
    params.set_print_timestamps(false);
    params.set_suppress_blank(true);
    if let Some(t) = opts.temperature {
        params.set_temperature(t);
    }
    // Temperature fallback, as faster-whisper does it: a window whose decoded text repeats
    // itself (token entropy under 2.4, whisper.cpp's compression-ratio check) or whose average
    // log-probability is under −1 is decoded again 0.2 hotter, up to 1.0; what still fails is
    // dropped afterwards by `clean_segments`. (whisper.cpp's defaults, set here so they stay.)
    params.set_temperature_inc(0.2);
    params.set_entropy_thold(2.4);
    params.set_logprob_thold(-1.0);
    if let Some(t) = opts.no_speech_threshold {
        params.set_no_speech_thold(t);
    }
    if let Some(p) = opts.initial_prompt.as_deref().filter(|p| !p.is_empty()) {
        params.set_initial_prompt(p);
    }
    let abort_token = cancel.clone();
    // whisper-rs calls this closure through a `Box<dyn FnMut>` trampoline; giving it exactly
    // that type keeps the pointer cast inside whisper-rs sound.
    let abort: Box<dyn FnMut() -> bool> = Box::new(move || abort_token.is_cancelled());
    params.set_abort_callback_safe(abort);
    // whisper-rs never frees the boxed callbacks: they reach the sink through a slot that is
    // emptied after the run, so a leaked closure holds nothing of the job's.
    let slot: Arc<Mutex<Option<Progress>>> = Arc::new(Mutex::new(Some(progress.clone())));
    let _empty_slot_on_return = EmptyOnDrop(slot.clone());
    let sink = |slot: &Mutex<Option<Progress>>| {
        slot.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    };
    let s = slot.clone();
    params.set_progress_callback_safe(move |pct: i32| {
        if let Some(p) = sink(&s) {
            p.report(f64::from(pct.clamp(0, 100)) / 100.0, "transcribing");
        }
    });
    // Each segment as soon as whisper has decoded it (live streaming of the compatible API).
    let s = slot.clone();
    params.set_segment_callback_safe_lossy(move |d: whisper_rs::SegmentCallbackData| {
        // Live segments lack the decoder figures; annotations are stripped here already.
        let text = super::clean::strip_annotations(&d.text);
        let text = text.as_str();
        if let Some(p) = sink(&s)
            && !text.is_empty()
        {
            let start_ms = live_map(d.start_timestamp * 10, false);
            p.segment(&Segment {
                start_ms,
                end_ms: live_map(d.end_timestamp * 10, true).max(start_ms),
                text: text.to_owned(),
                words: Vec::new(),
                stats: None,
            });
        }
    });

    let mut state = model.enter(&cancel)?;
    let res = state.full(params, samples);

    if cancel.is_cancelled() {
        // An aborted state is not reused.
        return Err(ProcessorError::Cancelled);
    }
    res.map_err(|e| ProcessorError::Transcription(format!("whisper failed: {e}")))?;

    let language = match opts.forced_language() {
        Some(l) => l.to_owned(),
        None if !model.multilingual => "en".to_owned(),
        None => whisper_rs::get_lang_str(state.full_lang_id_from_state())
            .unwrap_or("unknown")
            .to_owned(),
    };
    let eot = model.ctx.token_eot();
    let mut segments = Vec::new();
    for seg in state.as_iter() {
        // Times of the audio whisper heard first; mapped to the original below.
        let (seg_t0, seg_t1) = (seg.start_timestamp() * 10, seg.end_timestamp() * 10);
        let text = seg
            .to_str_lossy()
            .map(|t| t.trim().to_owned())
            .unwrap_or_default();
        let mut words: Vec<(Vec<u8>, i64, i64)> = Vec::new();
        let mut tokens = Vec::new();
        let mut logprob_sum = 0.0f32;
        for i in 0..seg.n_tokens() {
            let Some(tok) = seg.get_token(i) else {
                continue;
            };
            if tok.token_id() >= eot {
                continue; // special and timestamp tokens
            }
            let data = tok.token_data();
            tokens.push(tok.token_id());
            logprob_sum += data.plog;
            let Ok(bytes) = tok.to_bytes() else { continue };
            let (t0, t1) = (data.t0 * 10, (data.t1 * 10).max(data.t0 * 10));
            let new_word = bytes.first() == Some(&b' ') || words.is_empty();
            match words.last_mut() {
                Some(w) if !new_word => {
                    w.0.extend_from_slice(bytes);
                    w.2 = w.2.max(t1);
                }
                _ => words.push((bytes.to_vec(), t0, t1)),
            }
        }
        // whisper's segment times are coarse: next to a seam of the joined speech, a segment
        // may start in the padding of the region before its words (or end in the one after).
        // Where the segment's edge and its words' edge are in different regions, the words'
        // is the one that maps right.
        let region = |t: i64, end: bool| map.as_ref().map_or(0, |m| m.region_of(t, end));
        let start_j = match words.first() {
            Some(w) if region(seg_t0, false) != region(w.1, false) => w.1,
            _ => seg_t0,
        };
        let end_j = match words.last() {
            Some(w) if region(seg_t1, true) != region(w.2, true) => w.2,
            _ => seg_t1,
        };
        let start_ms = to_original(start_j, false);
        let end_ms = to_original(end_j, true).max(start_ms);
        let words: Vec<Word> = words
            .into_iter()
            .map(|(b, s, e)| {
                let s = to_original(s, false).clamp(start_ms, end_ms);
                Word {
                    text: String::from_utf8_lossy(&b).trim().to_owned(),
                    start_ms: s,
                    end_ms: to_original(e, true).clamp(s, end_ms),
                }
            })
            .filter(|w| !w.text.is_empty())
            .collect();
        if text.is_empty() && words.is_empty() {
            continue;
        }
        let stats = SegmentStats {
            avg_logprob: if tokens.is_empty() {
                0.0
            } else {
                logprob_sum / tokens.len() as f32
            },
            tokens,
            no_speech_prob: seg.no_speech_probability(),
            compression_ratio: SegmentStats::compression_ratio_of(&text),
            temperature: opts.temperature.unwrap_or(0.0),
        };
        segments.push(Segment {
            start_ms,
            end_ms,
            text,
            words,
            stats: Some(stats),
        });
    }
    model.give_back(state);
    progress.report(1.0, "transcribing");
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
        duration_ms,
        speech_ms: None,
    })
}

/// Language identification on the first 30 s: the mel spectrogram, one encoder pass, the
/// language tokens' probabilities. Runs in a compute slot like a transcription.
fn detect(
    model: &WhisperModel,
    samples: &[f32],
    threads: usize,
    cancel: &CancellationToken,
) -> Result<LanguageGuess, ProcessorError> {
    let window = usize::try_from(DETECT_WINDOW_MS * 16).unwrap_or(usize::MAX);
    let head = &samples[..samples.len().min(window)];
    let mut state = model.enter(cancel)?;
    let failed = |e: whisper_rs::WhisperError| {
        ProcessorError::Transcription(format!("language detection failed: {e}"))
    };
    state.pcm_to_mel(head, threads).map_err(failed)?;
    let (id, probs) = state.lang_detect(0, threads).map_err(failed)?;
    model.give_back(state);
    let code = whisper_rs::get_lang_str(id)
        .ok_or_else(|| ProcessorError::Transcription(format!("unknown language id {id}")))?;
    let name = whisper_rs::get_lang_str_full(id).unwrap_or(code);
    let probability = usize::try_from(id)
        .ok()
        .and_then(|i| probs.get(i).copied())
        .unwrap_or(0.0);
    Ok(LanguageGuess {
        code: code.to_owned(),
        name: name.to_owned(),
        probability,
    })
}

#[async_trait]
impl Transcriber for WhisperTranscriber {
    fn name(&self) -> &str {
        "whisper.cpp"
    }

    fn validate(&self, opts: &TranscribeOptions) -> Result<(), ProcessorError> {
        self.check(opts).map(|_| ())
    }

    fn is_local(&self) -> bool {
        true
    }

    fn models(&self) -> Vec<ModelStatus> {
        self.models.status()
    }

    fn default_model(&self) -> Option<String> {
        Some(self.models.config().default_model.clone())
    }

    fn compute(&self) -> String {
        compute_device(self.models.config().use_gpu)
    }

    fn vad_available(&self) -> bool {
        self.vad_file().is_some()
    }

    async fn transcribe(
        &self,
        media: &Path,
        opts: &TranscribeOptions,
        progress: Progress,
        cancel: &CancellationToken,
    ) -> Result<Transcript, ProcessorError> {
        let installed = self.check(opts)?;
        let mut audio = self
            .decoder
            .decode(media, scaled(progress.clone(), 0.0, 0.1), cancel)
            .await?;
        if opts.clean_audio {
            crate::media::clean_speech(&mut audio.samples);
        }
        self.transcribe_on(
            &installed,
            audio.samples,
            opts,
            scaled(progress, 0.1, 1.0),
            cancel,
        )
        .await
    }

    async fn detect_language(
        &self,
        media: &Path,
        cancel: &CancellationToken,
    ) -> Result<LanguageGuess, ProcessorError> {
        let installed = self.models.resolve(None)?;
        if !installed.info.multilingual() {
            return Err(ProcessorError::Validation(
                "the default model is English-only; language detection needs a multilingual model"
                    .into(),
            ));
        }
        let audio = self
            .decoder
            .decode(media, crate::progress::no_progress(), cancel)
            .await?;
        if audio.samples.is_empty() {
            return Err(ProcessorError::MediaDecode("the audio is empty".into()));
        }
        let model = self
            .models
            .get(&installed, &crate::progress::no_progress())
            .await?;
        let permit = self.slot(cancel).await?;
        let gauge = self.gauge.clone();
        let threads = self.threads;
        let token = cancel.clone();
        let task = tokio::task::spawn_blocking(move || {
            let _slot = permit;
            let _running = gauge.enter();
            detect(&model, &audio.samples, threads, &token)
        });
        tokio::select! {
            res = task => res.map_err(|e| ProcessorError::Internal(format!("detection task failed: {e}")))?,
            _ = cancel.cancelled() => Err(ProcessorError::Cancelled),
        }
    }
}
