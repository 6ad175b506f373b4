//! Built with `--features vulkan` (or `cuda`): whisper runs on the GPU ggml finds, and
//! `compute` says which. `cargo test -p mediajobs-processor --features vulkan --test gpu` (or
//! `cuda`); without a GPU, Mesa's lavapipe (a Vulkan driver on the CPU) serves with
//! `GGML_VK_VISIBLE_DEVICES=0`, which is how CI runs it (scripts/test.sh, with the Vulkan
//! headers of scripts/vulkan-sdk.sh: Debian 12's own predate `VK_EXT_layer_settings`).
#![cfg(all(any(feature = "vulkan", feature = "cuda"), feature = "media"))]
#![allow(clippy::unwrap_used)]
mod common;

use std::path::PathBuf;
use std::sync::Arc;

use mediajobs_processor::media::{Gst, GstConfig};
use mediajobs_processor::model::ggml;
use mediajobs_processor::transcribe::{
    TranscribeOptions, Transcriber, WhisperConfig, WhisperModel, WhisperTranscriber, backend,
    compute_device,
};
use mediajobs_processor::{CancellationToken, no_progress};

const TEXT: &str = "The committee met on Tuesday to discuss the new library.";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transcribes_on_the_gpu() {
    let devices = ggml::devices();
    eprintln!("devices: {devices:?}");
    let gpu = devices
        .iter()
        .find(|d| d.kind == "gpu" || d.kind == "igpu")
        .unwrap_or_else(|| panic!("no GPU device in {devices:?} (is a Vulkan driver installed?)"));
    let compute = compute_device(true);
    assert_eq!(compute, format!("{}: {}", backend(), gpu.description));
    assert_eq!(compute_device(false), "cpu");

    let dir = std::env::var_os("MEDIAJOBS_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/models"));
    let path = mediajobs_processor::model::ensure_model(&dir, "tiny.en")
        .await
        .unwrap();
    let mut cfg = WhisperConfig::new(path);
    assert!(cfg.use_gpu, "GPU builds use the GPU by default");
    cfg.flash_attn = false;
    let t = WhisperTranscriber::new(
        WhisperModel::load(&cfg).unwrap(),
        Arc::new(Gst::new(GstConfig::default()).unwrap()),
        2,
    );
    assert_eq!(t.compute(), compute);
    let tmp = tempfile::tempdir().unwrap();
    let wav = common::speech(tmp.path(), "gpu", TEXT);
    let tr = t
        .transcribe(
            &wav,
            &TranscribeOptions::default(),
            no_progress(),
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    let w = common::wer(TEXT, &tr.text);
    assert!(w <= 0.15, "WER {w:.3} on {compute}: {}", tr.text);
}
