//! `mediajobs`: the server and its command line.
//!
//! - `mediajobs serve` runs the HTTP server and the job queue (migrations first); every
//!   setting is also a flag (`mediajobs serve --help`);
//! - `mediajobs migrate` only runs the database migrations;
//! - `mediajobs model list|fetch|rm|quantize|convert` manages whisper models: the catalogue
//!   of whisper.cpp's names, resumable verified downloads, q5/q8 quantization, conversion of a
//!   faster-whisper model directory;
//! - `mediajobs submit FILE --type generate_srt --wait` uploads, submits and follows a job.
//!
//! The server itself is the `mediajobs-server` library; this binary only parses the command
//! line, sets up logging and calls it.

mod client;
mod flags;
mod model_cmd;

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use figment::providers::Serialized;
use mediajobs_persistence::{ConnectOptions, Database};
use mediajobs_server::{Config, ServerBuilder};
use tracing_subscriber::EnvFilter;

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
    /// Run the server (the default). Flags override the environment, which overrides the
    /// configuration file.
    Serve(flags::ServeFlags),
    /// Run the database migrations and exit.
    Migrate(flags::ServeFlags),
    /// Obtain or convert Whisper models.
    Model {
        #[command(subcommand)]
        cmd: model_cmd::ModelCmd,
    },
    /// Upload files, submit a job on them (several: a batch), follow it live and save its
    /// output. Exit status 2 when the job failed, 3 when it was cancelled.
    Submit(client::SubmitArgs),
    /// List, inspect, follow, cancel, retry, delete jobs and download their outputs.
    Jobs {
        #[command(subcommand)]
        cmd: client::JobsCmd,
    },
    /// List, upload, download and delete the profile's files.
    Files {
        #[command(subcommand)]
        cmd: client::FilesCmd,
    },
    /// Exit 0 when the server answers `GET /ready` with 200 (a container health check),
    /// else 1 with the reason.
    Ready(client::ReadyArgs),
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

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
        .and_then(|rt| rt.block_on(run(cli)));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => match e.downcast_ref::<client::Exit>() {
            // A job that failed or was cancelled: its own status, its message and code.
            Some(x) => {
                eprintln!("error: {}", x.message);
                std::process::ExitCode::from(u8::try_from(x.status).unwrap_or(1))
            }
            None => {
                eprintln!("error: {e:#}");
                std::process::ExitCode::FAILURE
            }
        },
    }
}

fn load(file: Option<&std::path::Path>, flags: &flags::ServeFlags) -> anyhow::Result<Config> {
    let fig = Config::figment(file).merge(Serialized::defaults(flags));
    Ok(Config::from_figment(&fig)?)
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let env = env_map();
    match cli.cmd.unwrap_or(Cmd::Serve(flags::ServeFlags::default())) {
        Cmd::Serve(flags) => {
            let cfg = load(cli.config.as_deref(), &flags)?;
            init_logging(&cfg.log);
            serve(cfg).await
        }
        Cmd::Migrate(flags) => {
            let cfg = load(cli.config.as_deref(), &flags)?;
            init_logging(&cfg.log);
            let opts = ConnectOptions {
                pg_ca_file: cfg.database_ca_file.clone(),
                ..Default::default()
            };
            let db = Database::connect(&cfg.database_url(), opts).await?;
            let applied = db.migrate().await?;
            println!(
                "database is up to date ({} migration(s) applied now)",
                applied.len()
            );
            Ok(())
        }
        Cmd::Model { cmd } => {
            init_logging("warn");
            let config = cli.config.clone();
            let default_dir = move || -> anyhow::Result<PathBuf> {
                Ok(Config::load(config.as_deref())?.models_dir())
            };
            model_cmd::run(cmd, &default_dir).await
        }
        Cmd::Submit(args) => client::submit(args, &env).await,
        Cmd::Ready(args) => client::ready(args, &env).await,
        Cmd::Jobs { cmd } => client::jobs(cmd, &env).await,
        Cmd::Files { cmd } => client::files(cmd, &env).await,
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
    let server = ServerBuilder::new(cfg).build().await?.bind().await?;
    // Tests and scripts wait for this line.
    println!("listening on http://{}", server.local_addr());
    server.serve(shutdown_signal()).await?;
    Ok(())
}
