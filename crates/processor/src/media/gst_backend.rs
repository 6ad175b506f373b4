//! The GStreamer backend: set-up, the helpers its pipelines share (element creation, bus
//! watch with watchdogs, pipeline guard), probing and decoding. Conversion to MP4 is in
//! `gst_convert.rs`.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::StreamExt;
use gst::prelude::*;
use tokio_util::sync::CancellationToken;

use super::{
    AudioDecoder, AudioStream, DecodedAudio, MediaInfo, MediaKind, MediaProbe, SAMPLE_RATE,
    VideoStream,
};
use crate::progress::{ProcessorError, Progress};

/// Watchdog settings.
#[derive(Debug, Clone)]
pub struct GstConfig {
    /// No data within this time after start → "could not open media" (default 5 s).
    pub open_timeout: Duration,
    /// No new data for this long while running → stalled (default 30 s).
    pub stall_timeout: Duration,
    /// Discoverer timeout for probes (default 5 s).
    pub discover_timeout: Duration,
    /// Decoded audio shorter than this share of the container's duration is a truncated file
    /// (default 0.98).
    pub min_decoded_ratio: f64,
}

impl Default for GstConfig {
    fn default() -> Self {
        GstConfig {
            open_timeout: Duration::from_secs(5),
            stall_timeout: Duration::from_secs(30),
            discover_timeout: Duration::from_secs(5),
            min_decoded_ratio: 0.98,
        }
    }
}

/// GStreamer implementation of [`MediaProbe`], [`AudioDecoder`] and [`Converter`].
///
/// ```no_run
/// # async fn demo() -> Result<(), mediajobs_processor::ProcessorError> {
/// use mediajobs_processor::media::{AudioDecoder, Gst, GstConfig};
/// let gst = Gst::new(GstConfig::default())?;
/// let audio = gst
///     .decode("talk.webm".as_ref(), mediajobs_processor::no_progress(), &Default::default())
///     .await?;
/// println!("{} s of audio", audio.duration_ms() / 1000);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Gst {
    pub(super) cfg: GstConfig,
}

const REQUIRED: &[(&str, &str)] = &[
    ("uridecodebin", "gstreamer1.0-plugins-base"),
    ("filesrc", "gstreamer1.0 (core)"),
    ("parsebin", "gstreamer1.0-plugins-base"),
    ("decodebin", "gstreamer1.0-plugins-base"),
    ("audioconvert", "gstreamer1.0-plugins-base"),
    ("audioresample", "gstreamer1.0-plugins-base"),
    ("appsink", "gstreamer1.0-plugins-base"),
    ("videoconvert", "gstreamer1.0-plugins-base"),
    ("videoscale", "gstreamer1.0-plugins-base"),
    ("mp4mux", "gstreamer1.0-plugins-good"),
    ("x264enc", "gstreamer1.0-plugins-ugly"),
    ("avenc_aac", "gstreamer1.0-libav"),
];

pub(super) fn init() -> Result<(), ProcessorError> {
    static INIT: OnceLock<Result<(), String>> = OnceLock::new();
    INIT.get_or_init(|| {
        gst::init().map_err(|e| format!("GStreamer could not start: {e}"))?;
        // Faster, float decoders for Opus and MP3 (22–42 % less decode CPU; notes §2a).
        for name in ["avdec_opus", "avdec_mp3float"] {
            if let Some(f) = gst::ElementFactory::find(name) {
                f.set_rank(gst::Rank::PRIMARY + 1);
            }
        }
        Ok(())
    })
    .clone()
    .map_err(ProcessorError::Unavailable)
}

pub(super) fn make(name: &str) -> Result<gst::Element, ProcessorError> {
    gst::ElementFactory::make(name).build().map_err(|_| {
        let pkg = REQUIRED
            .iter()
            .find(|(e, _)| *e == name)
            .map_or("the GStreamer plugins", |(_, p)| p);
        ProcessorError::Unavailable(format!(
            "GStreamer element '{name}' is missing: install {pkg}"
        ))
    })
}

pub(super) fn file_uri(path: &Path) -> Result<String, ProcessorError> {
    let abs = std::fs::canonicalize(path)?;
    glib::filename_to_uri(&abs, None)
        .map(|u| u.to_string())
        .map_err(|e| {
            ProcessorError::Internal(format!("cannot make a URI of {}: {e}", abs.display()))
        })
}

pub(super) fn decode_err(what: &str, e: impl std::fmt::Display) -> ProcessorError {
    ProcessorError::MediaDecode(format!("{what}: {e}"))
}

/// Sets a pipeline to NULL on every path, including panics and aborted tasks.
pub(super) struct PipelineGuard(pub(super) Option<gst::Pipeline>);

impl PipelineGuard {
    /// Stops the pipeline off the async threads (joining streaming threads can block).
    pub(super) async fn shutdown(mut self) {
        if let Some(p) = self.0.take() {
            let _ = tokio::task::spawn_blocking(move || p.set_state(gst::State::Null)).await;
        }
    }
}

impl Drop for PipelineGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = p.set_state(gst::State::Null);
        }
    }
}

/// Links a pad we do not decode to a fakesink; with `end_ns`, records the end time of the
/// stream's last buffer (so a file whose audio is shorter than its video is not taken for a
/// truncated one).
pub(super) fn add_fakesink(
    pipeline: &gst::Pipeline,
    pad: &gst::Pad,
    end_ns: Option<Arc<AtomicU64>>,
) {
    let Ok(fs) = gst::ElementFactory::make("fakesink")
        .property("sync", false)
        .property("async", false)
        .build()
    else {
        return;
    };
    if pipeline.add(&fs).is_ok() {
        let _ = fs.sync_state_with_parent();
        if let Some(sink) = fs.static_pad("sink") {
            if let Some(end_ns) = end_ns {
                sink.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                    if let Some(gst::PadProbeData::Buffer(b)) = &info.data
                        && let Some(pts) = b.pts()
                    {
                        let end = pts.nseconds() + b.duration().map_or(0, |d| d.nseconds());
                        end_ns.fetch_max(end, Ordering::Relaxed);
                    }
                    gst::PadProbeReturn::Ok
                });
            }
            let _ = pad.link(&sink);
        }
    }
}

pub(super) fn pad_media_type(pad: &gst::Pad) -> String {
    pad.current_caps()
        .unwrap_or_else(|| pad.query_caps(None))
        .structure(0)
        .map(|s| s.name().to_string())
        .unwrap_or_default()
}

/// The bus loop shared by decode and convert: EOS, errors, cancellation, watchdogs, progress.
pub(super) struct Watch<'a> {
    pub(super) pipeline: &'a gst::Pipeline,
    pub(super) cfg: &'a GstConfig,
    pub(super) activity: Arc<AtomicU64>,
    pub(super) duration_ms: Option<i64>,
    pub(super) progress: Progress,
    pub(super) stage: &'static str,
    pub(super) cancel: &'a CancellationToken,
}

impl Watch<'_> {
    pub(super) async fn run(self) -> Result<(), ProcessorError> {
        let bus = self
            .pipeline
            .bus()
            .ok_or_else(|| ProcessorError::Internal("pipeline without a bus".into()))?;
        let mut msgs = bus.stream();
        if self.pipeline.set_state(gst::State::Playing).is_err() {
            // The real reason is on the bus.
            let reason = bus
                .timed_pop_filtered(
                    gst::ClockTime::from_mseconds(100),
                    &[gst::MessageType::Error],
                )
                .and_then(|m| match m.view() {
                    gst::MessageView::Error(e) => Some(e.error().to_string()),
                    _ => None,
                })
                .unwrap_or_else(|| "the pipeline refused to start".into());
            return Err(ProcessorError::MediaDecode(reason));
        }
        let started = Instant::now();
        let mut last_seen = 0u64;
        let mut last_change = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = self.cancel.cancelled() => return Err(ProcessorError::Cancelled),
                msg = msgs.next() => {
                    let Some(msg) = msg else {
                        return Err(ProcessorError::Internal("bus closed".into()));
                    };
                    match msg.view() {
                        gst::MessageView::Eos(_) => return Ok(()),
                        gst::MessageView::Error(e) => {
                            let details = e.debug().map(|d| d.to_string()).unwrap_or_default();
                            tracing::debug!(error = %e.error(), details = %details, "pipeline error");
                            return Err(classify(&e.error()));
                        }
                        _ => {}
                    }
                }
                _ = tick.tick() => {
                    let seen = self.activity.load(Ordering::Relaxed);
                    if seen != last_seen {
                        last_seen = seen;
                        last_change = Instant::now();
                    } else if seen == 0 && started.elapsed() > self.cfg.open_timeout {
                        return Err(ProcessorError::MediaDecode(format!(
                            "could not open the media: no data after {:?}",
                            self.cfg.open_timeout
                        )));
                    } else if last_change.elapsed() > self.cfg.stall_timeout {
                        return Err(ProcessorError::Timeout(format!(
                            "the media pipeline stalled for {:?}",
                            self.cfg.stall_timeout
                        )));
                    }
                    if let (Some(total), Some(pos)) =
                        (self.duration_ms, self.pipeline.query_position::<gst::ClockTime>())
                        && total > 0 {
                            let f = pos.mseconds() as f64 / total as f64;
                            self.progress.report(f.clamp(0.0, 1.0), self.stage);
                        }
                }
            }
        }
    }
}

pub(super) fn classify(e: &glib::Error) -> ProcessorError {
    if e.matches(gst::CoreError::MissingPlugin) {
        ProcessorError::MediaDecode(format!("unsupported media (no decoder): {e}"))
    } else if e.matches(gst::ResourceError::NotFound)
        || e.matches(gst::ResourceError::OpenRead)
        || e.matches(gst::ResourceError::OpenWrite)
        || e.matches(gst::ResourceError::Write)
        || e.matches(gst::ResourceError::NoSpaceLeft)
    {
        ProcessorError::Storage(std::io::Error::other(e.to_string()))
    } else {
        ProcessorError::MediaDecode(e.to_string())
    }
}

impl Gst {
    /// Initializes GStreamer and checks that every element mediajobs uses is installed.
    pub fn new(cfg: GstConfig) -> Result<Self, ProcessorError> {
        init()?;
        for (name, pkg) in REQUIRED {
            if gst::ElementFactory::find(name).is_none() {
                return Err(ProcessorError::Unavailable(format!(
                    "GStreamer element '{name}' is missing: install {pkg}"
                )));
            }
        }
        Ok(Gst { cfg })
    }

    pub(super) fn probe_blocking(
        uri: &str,
        timeout: Duration,
    ) -> Result<MediaInfo, ProcessorError> {
        use gst_pbutils::prelude::*;
        let d = gst_pbutils::Discoverer::new(gst::ClockTime::from_nseconds(
            u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX),
        ))
        .map_err(|e| ProcessorError::Unavailable(format!("GStreamer discoverer: {e}")))?;
        let info = d
            .discover_uri(uri)
            .map_err(|e| decode_err("not a readable media file", e))?;
        match info.result() {
            gst_pbutils::DiscovererResult::Ok => {}
            gst_pbutils::DiscovererResult::Timeout => {
                return Err(ProcessorError::MediaDecode(
                    "not a readable media file: timed out reading it".into(),
                ));
            }
            gst_pbutils::DiscovererResult::MissingPlugins => {
                return Err(ProcessorError::MediaDecode(
                    "unsupported media format (no decoder installed)".into(),
                ));
            }
            other => {
                return Err(ProcessorError::MediaDecode(format!(
                    "not a readable media file ({other:?})"
                )));
            }
        }
        let video = info
            .video_streams()
            .into_iter()
            .find(|v| !v.is_image())
            .map(|v| VideoStream {
                width: v.width(),
                height: v.height(),
                framerate: {
                    let f = v.framerate();
                    (f.denom() > 0 && f.numer() > 0)
                        .then(|| f64::from(f.numer()) / f64::from(f.denom()))
                },
                codec: v
                    .caps()
                    .map(|c| gst_pbutils::pb_utils_get_codec_description(&c).to_string()),
            });
        let audio = info
            .audio_streams()
            .into_iter()
            .next()
            .map(|a| AudioStream {
                sample_rate: a.sample_rate(),
                channels: a.channels(),
                codec: a
                    .caps()
                    .map(|c| gst_pbutils::pb_utils_get_codec_description(&c).to_string()),
            });
        let kind = match (&video, &audio) {
            (Some(_), _) => MediaKind::Video,
            (None, Some(_)) => MediaKind::Audio,
            (None, None) => {
                return Err(ProcessorError::MediaDecode(
                    "the file has no audio or video stream".into(),
                ));
            }
        };
        Ok(MediaInfo {
            kind,
            duration_ms: info
                .duration()
                .map(|d| i64::try_from(d.mseconds()).unwrap_or(i64::MAX))
                .filter(|d| *d > 0),
            video,
            audio,
        })
    }
}

#[async_trait]
impl MediaProbe for Gst {
    async fn probe(&self, path: &Path) -> Result<MediaInfo, ProcessorError> {
        let uri = file_uri(path)?;
        let timeout = self.cfg.discover_timeout;
        let path = path.to_owned();
        tokio::task::spawn_blocking(move || {
            let mut info = Self::probe_blocking(&uri, timeout)?;
            // MP3: the discoverer estimates from the file size; prefer the declared length.
            let is_mp3 = info
                .audio
                .as_ref()
                .and_then(|a| a.codec.as_deref())
                .is_some_and(|c| c.contains("MP3") || c.contains("Layer 3"));
            if is_mp3 && let Some(declared) = super::mp3::declared_duration_ms(&path) {
                info.duration_ms = Some(info.duration_ms.map_or(declared, |d| d.max(declared)));
            }
            Ok(info)
        })
        .await
        .map_err(|e| ProcessorError::Internal(format!("probe task failed: {e}")))?
    }
}

#[async_trait]
impl AudioDecoder for Gst {
    async fn decode(
        &self,
        path: &Path,
        progress: Progress,
        cancel: &CancellationToken,
    ) -> Result<DecodedAudio, ProcessorError> {
        let info = self.probe(path).await?;
        if info.audio.is_none() {
            return Err(ProcessorError::MediaDecode(
                "input has no audio stream".into(),
            ));
        }
        // filesrc ! parsebin, then a decodebin for the first audio stream only: no multiqueue
        // between demuxer and decoder (uridecodebin's costs ~35 % more CPU, most of it thread
        // hand-offs per buffer), and the other streams go still compressed to a fakesink, so
        // video is never even considered for decoding.
        let pipeline = gst::Pipeline::new();
        let guard = PipelineGuard(Some(pipeline.clone()));
        let filesrc = make("filesrc")?;
        filesrc.set_property("location", path.to_string_lossy().to_string());
        let parse = make("parsebin")?;
        let conv = make("audioconvert")?;
        let res = make("audioresample")?;
        let caps = gst_audio::AudioCapsBuilder::new_interleaved()
            .format(gst_audio::AudioFormat::F32le)
            .rate(i32::try_from(SAMPLE_RATE).unwrap_or(16_000))
            .channels(1)
            .build();
        let sink = gst_app::AppSink::builder()
            .caps(&caps)
            .sync(false)
            .wait_on_eos(false)
            .build();
        pipeline
            .add_many([&filesrc, &parse, &conv, &res, sink.upcast_ref()])
            .map_err(|e| ProcessorError::Internal(e.to_string()))?;
        filesrc
            .link(&parse)
            .map_err(|e| ProcessorError::Internal(e.to_string()))?;
        gst::Element::link_many([&conv, &res, sink.upcast_ref()])
            .map_err(|e| ProcessorError::Internal(e.to_string()))?;

        let linked = Arc::new(AtomicBool::new(false));
        let other_end_ns = Arc::new(AtomicU64::new(0));
        {
            let linked = linked.clone();
            let other_end_ns = other_end_ns.clone();
            let conv = conv.downgrade();
            let pipe = pipeline.downgrade();
            parse.connect_pad_added(move |parse, pad| {
                let (Some(conv), Some(pipe)) = (conv.upgrade(), pipe.upgrade()) else {
                    return;
                };
                let media = pad_media_type(pad);
                if !media.starts_with("audio/") || linked.swap(true, Ordering::SeqCst) {
                    add_fakesink(&pipe, pad, Some(other_end_ns.clone()));
                    return;
                }
                let Some(conv_sink) = conv.static_pad("sink") else {
                    return;
                };
                if media.starts_with("audio/x-raw") {
                    let _ = pad.link(&conv_sink);
                    return;
                }
                let Ok(dec) = gst::ElementFactory::make("decodebin").build() else {
                    gst::element_error!(
                        parse,
                        gst::CoreError::MissingPlugin,
                        ("GStreamer 'decodebin' is missing")
                    );
                    return;
                };
                dec.connect_pad_added(move |_, dpad| {
                    if pad_media_type(dpad).starts_with("audio/x-raw") && !conv_sink.is_linked() {
                        let _ = dpad.link(&conv_sink);
                    }
                });
                if pipe.add(&dec).is_ok() {
                    let _ = dec.sync_state_with_parent();
                    if let Some(dsink) = dec.static_pad("sink") {
                        let _ = pad.link(&dsink);
                    }
                }
            });
        }
        {
            let linked = linked.clone();
            parse.connect_no_more_pads(move |parse| {
                if !linked.load(Ordering::SeqCst) {
                    gst::element_error!(
                        parse,
                        gst::StreamError::WrongType,
                        ("input has no audio stream")
                    );
                }
            });
        }

        let samples = Arc::new(Mutex::new(Vec::<f32>::with_capacity(
            info.duration_ms
                .map_or(0, |d| usize::try_from(d * 16 + 16_000).unwrap_or(0)),
        )));
        let activity = Arc::new(AtomicU64::new(0));
        {
            let samples = samples.clone();
            let activity = activity.clone();
            sink.set_callbacks(
                gst_app::AppSinkCallbacks::builder()
                    .new_sample(move |s| {
                        let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                        let buffer = sample.buffer().ok_or(gst::FlowError::Error)?;
                        let map = buffer.map_readable().map_err(|_| gst::FlowError::Error)?;
                        let mut out = samples.lock().map_err(|_| gst::FlowError::Error)?;
                        out.extend(
                            map.as_slice()
                                .chunks_exact(4)
                                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
                        );
                        activity.fetch_add(1, Ordering::Relaxed);
                        Ok(gst::FlowSuccess::Ok)
                    })
                    .build(),
            );
        }

        let res = Watch {
            pipeline: &pipeline,
            cfg: &self.cfg,
            activity,
            duration_ms: info.duration_ms,
            progress: progress.clone(),
            stage: "decoding",
            cancel,
        }
        .run()
        .await;
        guard.shutdown().await;
        res?;
        let samples = std::mem::take(
            &mut *samples
                .lock()
                .map_err(|_| ProcessorError::Internal("decoder buffer poisoned".into()))?,
        );
        let audio = DecodedAudio { samples };
        if audio.samples.is_empty() {
            return Err(ProcessorError::MediaDecode(
                "the file contains no audio".into(),
            ));
        }
        if let Some(total) = info.duration_ms.filter(|d| *d >= 1000) {
            // The longest stream we saw end: decoded audio, or the undecoded video.
            let other_ms =
                i64::try_from(other_end_ns.load(Ordering::Relaxed) / 1_000_000).unwrap_or(0);
            let got = audio.duration_ms().max(other_ms);
            if (got as f64) < total as f64 * self.cfg.min_decoded_ratio - 100.0 {
                return Err(ProcessorError::MediaDecode(format!(
                    "the file is truncated: decoded {got} ms of the {total} ms it declares"
                )));
            }
        }
        progress.report(1.0, "decoding");
        Ok(audio)
    }
}
