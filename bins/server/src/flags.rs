//! `mediajobs serve` flags: one per setting of [`mediajobs_server::Config`], the top layer
//! over defaults, the TOML file and the environment. Unset flags change nothing.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use serde::Serialize;

/// The settings as flags (`MEDIAJOBS_<NAME>` in the environment, `<name>` in the file).
#[derive(Debug, Clone, Default, Args, Serialize)]
pub struct ServeFlags {
    /// Listen address [default: 127.0.0.1:8080]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind: Option<SocketAddr>,
    /// Data directory: the SQLite file, media/ and models/ [default: ./data]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// sqlite://FILE or postgres://… [default: sqlite://DATA_DIR/mediajobs.db]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    /// CA certificate (PEM) for PostgreSQL TLS
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_ca_file: Option<PathBuf>,
    /// GGML whisper model file [default: DATA_DIR/models/ggml-base.bin]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub whisper_model: Option<PathBuf>,
    /// whisper.cpp threads per transcription [default: the cores / heavy_concurrency]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub whisper_threads: Option<usize>,
    /// The model directory: each ggml-NAME.bin in it is the model NAME [default: DATA_DIR/models]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub models_dir: Option<PathBuf>,
    /// Silero VAD model file for the vad option [default: MODELS_DIR/ggml-silero-v6.2.3.bin, else any ggml-silero*.bin there]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vad_model: Option<PathBuf>,
    /// Memory budget of loaded models, e.g. 1500M, 4G (LRU unloading beyond it) [default: no limit]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_memory: Option<String>,
    /// Unload a model unused for this many seconds; 0 keeps it loaded [default: 0]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_idle_secs: Option<u64>,
    /// Permits of the heavy lane: local transcription and conversion [default: 1]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heavy_concurrency: Option<usize>,
    /// Permits of the io lane: LLM and remote transcription [default: 4]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub io_concurrency: Option<usize>,
    /// Largest upload in bytes [default: 2147483648]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_upload_bytes: Option<u64>,
    /// Jobs a restart interrupted: retry or fail [default: retry]
    #[arg(long, value_parser = ["retry", "fail"])]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interrupted_jobs: Option<String>,
    /// Default attempts of a job [default: 3]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<i32>,
    /// Lease length in seconds, at least 3 [default: 30]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_secs: Option<u64>,
    /// Seconds a stop lets running jobs finish [default: 10]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grace_secs: Option<u64>,
    /// Bearer tokens: TOKEN=PROFILE[,PROFILE…];TOKEN=* (empty: no authentication)
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_tokens: Option<String>,
    /// Profile of compatible-API requests without X-Profile-ID or a profile token [default: default]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_profile: Option<String>,
    /// This node's id, unique among nodes sharing a database [default: the host name]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
    /// Where transcription runs [default: local]
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transcription_backend: Option<Backend>,
    /// Base URL (with /v1) of the remote transcription service
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transcribe_base_url: Option<String>,
    /// API key of the remote transcription service
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transcribe_api_key: Option<String>,
    /// Model of the remote transcription service [default: whisper-1]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transcribe_model: Option<String>,
    /// Log filter; RUST_LOG wins when set [default: info,whisper_rs=warn]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
    /// First backoff in ms of a job retried after a retryable failure [default: 2000]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_base_ms: Option<u64>,
    /// Derived deadlines: expected processing time × this [default: 5]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_factor: Option<f64>,
    /// Shortest derived deadline in seconds [default: 120]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_floor_secs: Option<u64>,
    /// Prune finished jobs older than this (30d, 12h, 30s) [default: keep]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention: Option<String>,
    /// With --retention: also delete the files pruned jobs generated [default: false]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention_files: Option<bool>,
    /// How often maintenance (retention) runs [default: 60s]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maintenance_interval: Option<String>,
    /// Completion-webhook signing secret, whsec_<base64> [default: none: webhooks refused]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<String>,
    /// Let webhook URLs reach loopback and private addresses [default: false]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_allow_private: Option<bool>,
}

/// `--transcription-backend` (serialized as `mediajobs_server::TranscriptionBackend` reads it).
#[derive(Debug, Clone, Copy, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// whisper.cpp in this process.
    Local,
    /// An OpenAI-compatible transcription service.
    Remote,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// `mediajobs serve --help` lists every setting of the configuration (LLM providers are
    /// tables, set in the file or as MEDIAJOBS_LLM_<NAME>_<KEY>).
    #[test]
    fn every_setting_is_a_flag() {
        let cmd = crate::Cli::command();
        let serve = cmd
            .get_subcommands()
            .find(|c| c.get_name() == "serve")
            .expect("serve");
        let flags: Vec<String> = serve
            .get_arguments()
            .filter_map(|a| a.get_long().map(|l| l.replace('-', "_")))
            .collect();
        for s in mediajobs_server::SETTINGS.iter().filter(|s| **s != "llm") {
            assert!(flags.iter().any(|f| f == s), "no flag for {s}: {flags:?}");
        }
    }
}
