//! Conversion to MP4 with GStreamer: `uridecodebin` → x264enc (CRF; VBV only with a bitrate
//! ceiling) + avenc_aac into `mp4mux faststart`, written to a temp file renamed at EOS.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use gst::prelude::*;
use tokio_util::sync::CancellationToken;

use super::gst_backend::*;
use super::{ConvertOptions, ConvertReport, Converter, MediaProbe, fit_within};
use crate::progress::{ProcessorError, Progress};
struct TempOutput {
    path: PathBuf,
    keep: bool,
}

impl Drop for TempOutput {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[async_trait]
impl Converter for Gst {
    async fn convert(
        &self,
        input: &Path,
        output: &Path,
        opts: &ConvertOptions,
        progress: Progress,
        cancel: &CancellationToken,
    ) -> Result<ConvertReport, ProcessorError> {
        let info = self.probe(input).await?;
        let uri = file_uri(input)?;
        let file_name = output
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "output.mp4".into());
        let tmp = TempOutput {
            path: output.with_file_name(format!(".{file_name}.partial")),
            keep: false,
        };
        let target = info
            .video
            .as_ref()
            .map(|v| fit_within((v.width, v.height), opts.max_size));

        let pipeline = gst::Pipeline::new();
        let guard = PipelineGuard(Some(pipeline.clone()));
        let src = gst::ElementFactory::make("uridecodebin")
            .property("uri", &uri)
            .build()
            .map_err(|_| {
                ProcessorError::Unavailable("GStreamer 'uridecodebin' is missing".into())
            })?;
        let mux = make("mp4mux")?;
        mux.set_property("faststart", true);
        let fsink = make("filesink")?;
        fsink.set_property("location", tmp.path.to_string_lossy().to_string());
        pipeline
            .add_many([&src, &mux, &fsink])
            .map_err(|e| ProcessorError::Internal(e.to_string()))?;
        mux.link(&fsink)
            .map_err(|e| ProcessorError::Internal(e.to_string()))?;

        // Branch elements are made up front so that a missing plugin fails before starting.
        let (preset, crf) = opts.preset.x264();
        let venc = make("x264enc")?;
        venc.set_property_from_str("speed-preset", preset);
        venc.set_property_from_str("pass", "qual");
        venc.set_property("quantizer", crf);
        // In quality mode x264enc's `bitrate` is the VBV max rate. Without a ceiling asked
        // for, a zero VBV buffer turns VBV off: plain CRF, x264's options identical to
        // `ffmpeg -c:v libx264 -preset P -crf N` (VBV costs ~4 % CPU). With one, a 600 ms
        // buffer (`-maxrate K -bufsize 0.6K`).
        match opts.max_kbps {
            Some(k) => venc.set_property("bitrate", k.clamp(1, 2_048_000)),
            None => {
                venc.set_property("bitrate", 2_048_000u32);
                venc.set_property("vbv-buf-capacity", 0u32);
            }
        }
        venc.set_property("key-int-max", 250u32);
        let mut vcaps = gst::Caps::builder("video/x-raw").field("format", "I420");
        if let Some((w, h)) = target {
            vcaps = vcaps
                .field("width", i32::try_from(w).unwrap_or(i32::MAX))
                .field("height", i32::try_from(h).unwrap_or(i32::MAX))
                .field("pixel-aspect-ratio", gst::Fraction::new(1, 1));
        }
        let vchain: Vec<gst::Element> = vec![
            make("queue")?,
            make("videoconvert")?,
            make("videoscale")?,
            gst::ElementFactory::make("capsfilter")
                .property("caps", vcaps.build())
                .build()
                .map_err(|e| ProcessorError::Internal(e.to_string()))?,
            venc,
        ];
        let aq = make("queue")?;
        aq.set_property("max-size-time", 10_000_000_000u64);
        aq.set_property("max-size-buffers", 0u32);
        aq.set_property("max-size-bytes", 0u32);
        let aenc = make("avenc_aac")?;
        aenc.set_property_from_str("bitrate", "128000");
        let achain: Vec<gst::Element> =
            vec![aq, make("audioconvert")?, make("audioresample")?, aenc];

        let activity = Arc::new(AtomicU64::new(0));
        let branches = Arc::new(Mutex::new((Some(vchain), Some(achain))));
        let linked_any = Arc::new(AtomicBool::new(false));
        {
            let pipe = pipeline.downgrade();
            let mux = mux.downgrade();
            let activity = activity.clone();
            let branches = branches.clone();
            let linked_any = linked_any.clone();
            src.connect_pad_added(move |_, pad| {
                let (Some(pipe), Some(mux)) = (pipe.upgrade(), mux.upgrade()) else {
                    return;
                };
                let media = pad_media_type(pad);
                let chain = {
                    let Ok(mut b) = branches.lock() else { return };
                    if media.starts_with("video/x-raw") {
                        b.0.take()
                    } else if media.starts_with("audio/x-raw") {
                        b.1.take()
                    } else {
                        None
                    }
                };
                let Some(chain) = chain else {
                    add_fakesink(&pipe, pad, None);
                    return;
                };
                let ok = (|| -> Result<(), String> {
                    pipe.add_many(&chain).map_err(|e| e.to_string())?;
                    gst::Element::link_many(&chain).map_err(|e| e.to_string())?;
                    let last = chain.last().ok_or("empty chain")?;
                    last.link(&mux).map_err(|e| e.to_string())?;
                    for e in &chain {
                        e.sync_state_with_parent().map_err(|e| e.to_string())?;
                    }
                    let first = chain[0].static_pad("sink").ok_or("no sink pad")?;
                    let activity = activity.clone();
                    first.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                        activity.fetch_add(1, Ordering::Relaxed);
                        gst::PadProbeReturn::Ok
                    });
                    pad.link(&first).map_err(|e| format!("{e:?}"))?;
                    Ok(())
                })();
                match ok {
                    Ok(()) => linked_any.store(true, Ordering::SeqCst),
                    Err(e) => tracing::warn!(error = %e, "could not build a conversion branch"),
                }
            });
        }
        {
            let linked_any = linked_any.clone();
            src.connect_no_more_pads(move |src| {
                if !linked_any.load(Ordering::SeqCst) {
                    gst::element_error!(
                        src,
                        gst::StreamError::WrongType,
                        ("input has no audio or video stream")
                    );
                }
            });
        }

        let res = Watch {
            pipeline: &pipeline,
            cfg: &self.cfg,
            activity,
            duration_ms: info.duration_ms,
            progress: progress.clone(),
            stage: "converting",
            cancel,
        }
        .run()
        .await;
        guard.shutdown().await;
        res?;
        let mut tmp = tmp;
        tokio::fs::rename(&tmp.path, output).await?;
        tmp.keep = true;
        let size_bytes = tokio::fs::metadata(output).await?.len();
        progress.report(1.0, "converting");
        Ok(ConvertReport {
            size_bytes,
            video_size: target,
            duration_ms: info.duration_ms,
        })
    }
}
