//! The bundled server with a transcription backend of your own.
//!
//! `Metronome` stands where your engine would (a cloud API, another model, a GPU service): it
//! reads the WAV it is given and emits one numbered cue per two seconds of audio. Everything
//! else is the real server — SQLite, the media directory, GStreamer probing uploads, the
//! durable queue, the HTTP API on loopback — driven here over HTTP as a client would.
//!
//! Run with `cargo run -p mediajobs-server --example custom_transcriber`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use jobs_core::CancellationToken;
use mediajobs_processor::subtitle::Segment;
use mediajobs_processor::transcribe::{TranscribeOptions, Transcript};
use mediajobs_processor::{ProcessorError, Progress};
use mediajobs_server::{Config, ServerBuilder, Transcriber};
use serde_json::{Value, json};

/// One cue per two seconds of a 16-bit mono WAV.
struct Metronome;

#[async_trait]
impl Transcriber for Metronome {
    fn name(&self) -> &str {
        "metronome"
    }

    fn validate(&self, opts: &TranscribeOptions) -> Result<(), ProcessorError> {
        match opts.language.as_deref() {
            None | Some("auto") | Some("en") => Ok(()),
            Some(other) => Err(ProcessorError::Validation(format!(
                "metronome counts in English only, not '{other}'"
            ))),
        }
    }

    fn is_local(&self) -> bool {
        // Runs in the io lane, like a remote service.
        false
    }

    async fn transcribe(
        &self,
        media: &Path,
        _opts: &TranscribeOptions,
        progress: Progress,
        cancel: &CancellationToken,
    ) -> Result<Transcript, ProcessorError> {
        let bytes = tokio::fs::read(media).await?;
        let rate = bytes
            .get(24..28)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .filter(|r| *r > 0)
            .ok_or_else(|| ProcessorError::MediaDecode("not a WAV file".into()))?;
        let duration_ms = ((bytes.len().saturating_sub(44) / 2) as i64 * 1000) / rate as i64;
        let mut segments = Vec::new();
        let mut start = 0;
        while start < duration_ms {
            if cancel.is_cancelled() {
                return Err(ProcessorError::Cancelled);
            }
            let end = (start + 2000).min(duration_ms);
            segments.push(Segment {
                start_ms: start,
                end_ms: end,
                text: format!("beat number {}", segments.len() + 1),
                words: Vec::new(),
                stats: None,
            });
            progress.report(end as f64 / duration_ms as f64, "counting");
            start = end;
        }
        Ok(Transcript {
            language: "en".into(),
            text: Transcript::join_text(&segments),
            segments,
            duration_ms,
            speech_ms: None,
        })
    }
}

/// A 16 kHz mono 16-bit WAV of a 440 Hz tone.
fn wav(seconds: u32) -> Vec<u8> {
    let rate = 16_000u32;
    let n = rate * seconds;
    let mut out = Vec::with_capacity(44 + n as usize * 2);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + n * 2).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(n * 2).to_le_bytes());
    for i in 0..n {
        let t = i as f64 / rate as f64;
        let s = (t * 440.0 * std::f64::consts::TAU).sin() * 8000.0;
        out.extend_from_slice(&(s as i16).to_le_bytes());
    }
    out
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let data = std::env::temp_dir().join(format!("mediajobs-example-{}", std::process::id()));
    let config = Config {
        data_dir: data.clone(),
        bind: "127.0.0.1:0".parse()?,
        ..Config::default()
    };
    let server = ServerBuilder::new(config)
        .transcriber(Arc::new(Metronome))
        .build()
        .await?
        .bind()
        .await?;
    let base = format!("http://{}", server.local_addr());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.serve(async {
        let _ = stop_rx.await;
    }));

    let http = reqwest::Client::new();
    let file: Value = http
        .post(format!("{base}/profiles/files"))
        .header("X-Profile-ID", "example")
        .header("X-File-Name", "tone.wav")
        .body(wav(6))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    println!(
        "uploaded {} ({}, {} ms)",
        file["id"], file["kind"], file["duration_ms"]
    );
    let job: Value = http
        .post(format!("{base}/jobs"))
        .header("X-Profile-ID", "example")
        .json(&json!({ "type": "generate_srt", "file_id": file["id"] }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let id = job["id"].as_str().ok_or("no job id")?.to_owned();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let done = loop {
        let j: Value = http
            .get(format!("{base}/jobs/{id}"))
            .header("X-Profile-ID", "example")
            .send()
            .await?
            .json()
            .await?;
        if j["status"] != "queued" && j["status"] != "running" {
            break j;
        }
        if tokio::time::Instant::now() > deadline {
            return Err("the job did not finish in 30 s".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    if done["status"] != "succeeded" {
        return Err(format!("job ended {}: {}", done["status"], done["error"]).into());
    }
    let srt = done["result"]["srt_content"].as_str().unwrap_or_default();
    println!("generate_srt {id} succeeded; the SRT:\n{srt}");
    if !srt.contains("beat number 1") || !srt.contains("beat number 3") {
        return Err("the SRT does not hold the custom backend's cues".into());
    }

    let _ = stop_tx.send(());
    serving.await??;
    let _ = std::fs::remove_dir_all(&data);
    Ok(())
}
