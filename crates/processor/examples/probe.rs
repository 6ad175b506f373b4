//! Prints what the GStreamer probe finds: `cargo run -p mediajobs-processor --example probe -- FILE...`
use mediajobs_processor::media::{Gst, GstConfig, MediaProbe};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let gst = Gst::new(GstConfig::default())?;
    for path in std::env::args().skip(1) {
        match gst.probe(path.as_ref()).await {
            Ok(info) => println!("{path}: {}", serde_json::to_string(&info)?),
            Err(e) => println!("{path}: {} ({e})", e.code()),
        }
    }
    Ok(())
}
