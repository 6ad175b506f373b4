//! Fetches the default model if needed and transcribes files:
//! `cargo run -p mediajobs-processor --release --example transcribe -- MODELS_DIR MODEL FILE...`
use std::sync::Arc;

use mediajobs_processor::media::{Gst, GstConfig};
use mediajobs_processor::transcribe::{
    TranscribeOptions, Transcriber, WhisperConfig, WhisperModel, WhisperTranscriber,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (dir, name, files) = match args.as_slice() {
        [dir, name, files @ ..] => (dir, name, files),
        _ => return Err("usage: transcribe MODELS_DIR MODEL FILE...".into()),
    };
    let path = mediajobs_processor::model::ensure_model(dir.as_ref(), name).await?;
    let model = WhisperModel::load(&WhisperConfig::new(&path))?;
    let gst = Arc::new(Gst::new(GstConfig::default())?);
    let t = WhisperTranscriber::new(model, gst, 2);
    for f in files {
        let start = std::time::Instant::now();
        let tr = t
            .transcribe(
                f.as_ref(),
                &TranscribeOptions::default(),
                mediajobs_processor::no_progress(),
                &Default::default(),
            )
            .await?;
        println!("{f} [{}] {:?}: {}", tr.language, start.elapsed(), tr.text);
    }
    Ok(())
}
