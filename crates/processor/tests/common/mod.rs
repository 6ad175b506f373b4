//! Test media made on the spot with GStreamer test sources and espeak-ng (no downloads), and
//! the scripted OpenAI-compatible server.
#![allow(dead_code, clippy::unwrap_used)]

pub mod llm_stub;

use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs `gst-launch-1.0 -q -e PIPELINE`.
pub fn gst_launch(pipeline: &str) {
    let out = Command::new("gst-launch-1.0")
        .args(["-q", "-e"])
        .args(pipeline.split_whitespace())
        .output()
        .expect("gst-launch-1.0 (gstreamer1.0-tools) must be installed");
    assert!(
        out.status.success(),
        "gst-launch failed: {pipeline}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn tone(secs: u32, rate: u32) -> String {
    // 1024-sample buffers at `rate`: secs * rate / 1024 buffers (rounded up by the muxers).
    format!(
        "audiotestsrc num-buffers={} samplesperbuffer={} freq=440 ! audio/x-raw,rate={rate},channels=2 ! audioconvert",
        secs * 10,
        rate / 10
    )
}

fn video(secs: u32, w: u32, h: u32) -> String {
    format!(
        "videotestsrc num-buffers={} pattern=ball ! video/x-raw,width={w},height={h},framerate=30/1 ! videoconvert",
        secs * 30
    )
}

/// Makes a media file of `secs` seconds; `kind` is one of wav, mp3, ogg, m4a, webm, mkv, mp4,
/// mp4-faststart, video-only-mp4, webm-720p.
pub fn make(dir: &Path, kind: &str, secs: u32) -> PathBuf {
    let out = |ext: &str| dir.join(format!("{kind}-{secs}s.{ext}"));
    let (path, pipeline) = match kind {
        "wav" => {
            let p = out("wav");
            let pipe = format!(
                "{} ! wavenc ! filesink location={}",
                tone(secs, 44100),
                p.display()
            );
            (p, pipe)
        }
        "mp3" => {
            let p = out("mp3");
            let pipe = format!(
                "{} ! lamemp3enc ! xingmux ! id3v2mux ! filesink location={}",
                tone(secs, 44100),
                p.display()
            );
            (p, pipe)
        }
        "ogg" => {
            let p = out("ogg");
            let pipe = format!(
                "{} ! opusenc ! oggmux ! filesink location={}",
                tone(secs, 48000),
                p.display()
            );
            (p, pipe)
        }
        "m4a" => {
            let p = out("m4a");
            let pipe = format!(
                "{} ! avenc_aac ! mp4mux ! filesink location={}",
                tone(secs, 48000),
                p.display()
            );
            (p, pipe)
        }
        "webm" | "webm-720p" => {
            let p = out("webm");
            let (w, h) = if kind == "webm" {
                (640, 360)
            } else {
                (1280, 720)
            };
            let pipe = format!(
                "{} ! vp8enc deadline=1 cpu-used=8 ! queue ! webmmux name=m ! filesink location={} {} ! opusenc ! queue ! m.",
                video(secs, w, h),
                p.display(),
                tone(secs, 48000)
            );
            (p, pipe)
        }
        "mkv" | "mp4" | "mp4-faststart" => {
            let ext = if kind == "mkv" { "mkv" } else { "mp4" };
            let p = out(ext);
            let mux = match kind {
                "mkv" => "matroskamux",
                "mp4" => "mp4mux",
                _ => "mp4mux faststart=true",
            };
            let pipe = format!(
                "{} ! video/x-raw,format=I420 ! x264enc speed-preset=ultrafast ! h264parse ! queue ! {mux} name=m ! filesink location={} {} ! avenc_aac ! queue ! m.",
                video(secs, 320, 240),
                p.display(),
                tone(secs, 48000)
            );
            (p, pipe)
        }
        "video-only-mp4" => {
            let p = out("mp4");
            let pipe = format!(
                "{} ! video/x-raw,format=I420 ! x264enc speed-preset=ultrafast ! h264parse ! mp4mux ! filesink location={}",
                video(secs, 320, 240),
                p.display()
            );
            (p, pipe)
        }
        other => panic!("unknown test media kind {other}"),
    };
    gst_launch(&pipeline);
    path
}

/// Speech from espeak-ng (English), as a WAV file.
pub fn speech(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(format!("{name}.wav"));
    let out = Command::new("espeak-ng")
        .args(["-v", "en-us", "-s", "150", "-w"])
        .arg(&p)
        .arg(text)
        .output()
        .expect("espeak-ng must be installed");
    assert!(
        out.status.success(),
        "espeak-ng failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    p
}

/// ffprobe's JSON for a file.
pub fn ffprobe(path: &Path) -> serde_json::Value {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,codec_type,pix_fmt,width,height,profile:format=duration,format_name",
            "-of",
            "json",
        ])
        .arg(path)
        .output()
        .expect("ffprobe (ffmpeg) must be installed");
    assert!(out.status.success(), "ffprobe failed on {}", path.display());
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Writes `data` to `dir/name`.
pub fn write(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap();
    p
}

/// Pseudo-random bytes (deterministic).
pub fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x & 0xff) as u8
        })
        .collect()
}

#[allow(unused_imports)] // Not every test binary measures a WER.
pub use mediajobs_processor::transcribe::wer;

/// Pink noise (Paul Kellet's filter over a fixed-seed white noise), peak about `level`.
pub fn pink_noise(secs: usize, level: f32) -> Vec<f32> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let (mut b0, mut b1, mut b2) = (0.0f32, 0.0f32, 0.0f32);
    (0..secs * 16_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let white = (x >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0;
            b0 = 0.99765 * b0 + white * 0.0990460;
            b1 = 0.96300 * b1 + white * 0.2965164;
            b2 = 0.57000 * b2 + white * 1.0526913;
            (b0 + b1 + b2 + white * 0.1848) * level / 3.0
        })
        .collect()
}
