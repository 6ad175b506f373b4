//! [`Config`]: the server's settings as data, layered with figment from defaults, a TOML file,
//! `MEDIAJOBS_*` environment variables and (in the binary) command-line flags, later layers
//! winning. Every error names the setting it is about: the environment variable, or the key
//! and the file.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use jobs_core::InterruptPolicy;
use mediajobs_processor::llm::{OPENAI_BASE_URL, ProviderConfig};
use serde::{Deserialize, Deserializer, Serialize};

/// The top-level settings (TOML keys; `MEDIAJOBS_<UPPER>` in the environment).
pub const SETTINGS: &[&str] = &[
    "bind",
    "data_dir",
    "database_url",
    "database_ca_file",
    "whisper_model",
    "whisper_threads",
    "models_dir",
    "vad_model",
    "model_memory",
    "model_idle_secs",
    "heavy_concurrency",
    "io_concurrency",
    "max_upload_bytes",
    "interrupted_jobs",
    "max_attempts",
    "lease_secs",
    "grace_secs",
    "api_tokens",
    "default_profile",
    "node_id",
    "transcription_backend",
    "transcribe_base_url",
    "transcribe_api_key",
    "transcribe_model",
    "log",
    "retry_base_ms",
    "timeout_factor",
    "timeout_floor_secs",
    "retention",
    "retention_files",
    "maintenance_interval",
    "webhook_secret",
    "webhook_allow_private",
    "llm",
];

/// The settings of one LLM provider (`[llm.<name>]`, or `MEDIAJOBS_LLM_<NAME>_<KEY>`).
const LLM_KEYS: &[&str] = &[
    "base_url",
    "api_key",
    "timeout_secs",
    "max_concurrency",
    "retries",
];

/// Where transcription runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TranscriptionBackend {
    /// whisper.cpp in this process (the default).
    #[default]
    Local,
    /// An OpenAI-compatible `/v1/audio/transcriptions` service
    /// (`transcribe_base_url`, `transcribe_api_key`, `transcribe_model`).
    Remote,
}

/// One OpenAI-compatible LLM provider.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmProviderSettings {
    /// Base URL including `/v1` (default for `openai`: the OpenAI API).
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub base_url: Option<String>,
    /// API key (`OPENAI_API_KEY` for `openai`).
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub api_key: Option<String>,
    /// Per-request timeout in seconds (default 120).
    #[serde(default)]
    pub timeout_secs: Option<u64>,
    /// Requests in flight at once (default 4).
    #[serde(default)]
    pub max_concurrency: Option<usize>,
    /// Retries of one request on 429/5xx/connection errors before the job's own retry
    /// (with backoff, visible on the job) takes over (default 4).
    #[serde(default)]
    pub retries: Option<u32>,
}

/// The server's settings. Every field has a default: the embedded setup (SQLite under
/// `./data`, the local `base` model, `127.0.0.1:8080`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Listen address.
    pub bind: SocketAddr,
    /// Data directory: the SQLite file, `media/` and `models/`.
    pub data_dir: PathBuf,
    /// `sqlite://FILE` or `postgres://…` (default: `sqlite://DATA_DIR/mediajobs.db`).
    #[serde(deserialize_with = "lenient_opt_string")]
    pub database_url: Option<String>,
    /// A CA certificate (PEM) for PostgreSQL TLS.
    pub database_ca_file: Option<PathBuf>,
    /// The GGML whisper model (default: `DATA_DIR/models/ggml-base.bin`).
    pub whisper_model: Option<PathBuf>,
    /// whisper.cpp threads per transcription (default: the cores / `heavy_concurrency`).
    pub whisper_threads: Option<usize>,
    /// The model directory: every `ggml-NAME.bin` in it is the model `NAME` jobs can ask
    /// for (default: `DATA_DIR/models`).
    pub models_dir: Option<PathBuf>,
    /// The Silero VAD model file (GGML) for the `vad` option (default: the models dir's
    /// `ggml-silero-v6.2.3.bin`, else any `ggml-silero*.bin` there; `mediajobs model fetch
    /// silero-vad` makes it).
    pub vad_model: Option<PathBuf>,
    /// Loaded models stay within this much memory (`1500M`, `4G`, bytes); the least
    /// recently used idle model is unloaded beyond it (empty: no limit).
    #[serde(deserialize_with = "lenient_opt_string")]
    pub model_memory: Option<String>,
    /// Unload a model no job has used for this many seconds (0: keep it loaded).
    pub model_idle_secs: u64,
    /// Permits of the `heavy` lane (local transcription, conversion).
    pub heavy_concurrency: usize,
    /// Permits of the `io` lane (LLM, remote transcription).
    pub io_concurrency: usize,
    /// Largest upload in bytes.
    pub max_upload_bytes: u64,
    /// `retry` or `fail`: what happens to jobs a restart interrupted.
    pub interrupted_jobs: InterruptPolicy,
    /// Default attempts of a job (interrupted jobs are re-queued while attempts remain).
    pub max_attempts: i32,
    /// Lease length in seconds (at least 3).
    pub lease_secs: u64,
    /// How long a stop lets running jobs finish, in seconds.
    pub grace_secs: u64,
    /// Bearer tokens: `TOKEN=PROFILE[,PROFILE…];TOKEN=*` (empty: no authentication).
    #[serde(deserialize_with = "lenient_string")]
    pub api_tokens: String,
    /// The profile of requests to the compatible APIs (`/v1/audio/*`, `/asr`) that send no
    /// `X-Profile-ID` and no token bound to a profile (default `default`).
    pub default_profile: String,
    /// This node's id (default: the host name); unique per node sharing a database.
    #[serde(deserialize_with = "lenient_opt_string")]
    pub node_id: Option<String>,
    /// `local` or `remote`.
    pub transcription_backend: TranscriptionBackend,
    /// Base URL (with `/v1`) of the remote transcription service.
    #[serde(deserialize_with = "lenient_opt_string")]
    pub transcribe_base_url: Option<String>,
    /// API key of the remote transcription service.
    #[serde(deserialize_with = "lenient_opt_string")]
    pub transcribe_api_key: Option<String>,
    /// Model name of the remote transcription service.
    #[serde(deserialize_with = "lenient_string")]
    pub transcribe_model: String,
    /// Log filter (`RUST_LOG` wins when set).
    #[serde(deserialize_with = "lenient_string")]
    pub log: String,
    /// First backoff of a job's retry after a retryable failure, in ms (doubling, jittered).
    pub retry_base_ms: u64,
    /// Derived deadlines: the expected processing time × this factor.
    pub timeout_factor: f64,
    /// The shortest derived deadline, in seconds.
    pub timeout_floor_secs: u64,
    /// Finished jobs older than this are pruned (`30d`, `12h`, `30s`; empty: never).
    #[serde(deserialize_with = "lenient_opt_string")]
    pub retention: Option<String>,
    /// With retention: also delete the files the pruned jobs generated.
    pub retention_files: bool,
    /// How often maintenance (retention) runs (`60s`).
    #[serde(deserialize_with = "lenient_string")]
    pub maintenance_interval: String,
    /// The completion-webhook signing secret, `whsec_<base64>` (empty: webhooks refused).
    #[serde(deserialize_with = "lenient_opt_string")]
    pub webhook_secret: Option<String>,
    /// Let webhook URLs reach loopback and private addresses.
    pub webhook_allow_private: bool,
    /// LLM providers by name.
    pub llm: BTreeMap<String, LlmProviderSettings>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./data"),
            database_url: None,
            database_ca_file: None,
            whisper_model: None,
            whisper_threads: None,
            models_dir: None,
            vad_model: None,
            model_memory: None,
            model_idle_secs: 0,
            heavy_concurrency: 1,
            io_concurrency: 4,
            max_upload_bytes: 2 << 30,
            interrupted_jobs: InterruptPolicy::Retry,
            max_attempts: 3,
            lease_secs: 30,
            grace_secs: 10,
            api_tokens: String::new(),
            default_profile: "default".into(),
            node_id: None,
            transcription_backend: TranscriptionBackend::Local,
            transcribe_base_url: None,
            transcribe_api_key: None,
            transcribe_model: "whisper-1".into(),
            // whisper.cpp logs every model parameter at info level: keep it to warnings.
            log: "info,whisper_rs=warn".into(),
            retry_base_ms: 2000,
            timeout_factor: 5.0,
            timeout_floor_secs: 120,
            retention: None,
            retention_files: false,
            maintenance_interval: "60s".into(),
            webhook_secret: None,
            webhook_allow_private: false,
            llm: BTreeMap::new(),
        }
    }
}

/// A setting that could not be used; the message names it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

#[derive(Deserialize)]
#[serde(untagged)]
enum Scalar {
    S(String),
    I(i64),
    U(u64),
    F(f64),
    B(bool),
}

impl Scalar {
    fn into_string(self) -> String {
        match self {
            Scalar::S(s) => s,
            Scalar::I(i) => i.to_string(),
            Scalar::U(u) => u.to_string(),
            Scalar::F(f) => f.to_string(),
            Scalar::B(b) => b.to_string(),
        }
    }
}

/// Environment values that look like numbers (`MEDIAJOBS_NODE_ID=7`) are still strings.
fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Scalar::deserialize(d).map(Scalar::into_string)
}

fn lenient_opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Option::<Scalar>::deserialize(d).map(|o| o.map(Scalar::into_string))
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "mediajobs".into())
}

/// `MEDIAJOBS_LLM_<NAME>_<KEY>` → `llm.<name>.<key>`; other known settings as they are.
fn env_key(k: &str) -> Option<String> {
    if let Some(rest) = k.strip_prefix("llm_") {
        return LLM_KEYS.iter().find_map(|key| {
            rest.strip_suffix(key)
                .and_then(|n| n.strip_suffix('_'))
                .filter(|n| !n.is_empty())
                .map(|name| format!("llm.{name}.{key}"))
        });
    }
    (SETTINGS.contains(&k) && k != "llm").then(|| k.to_owned())
}

impl Config {
    /// The layers below the command line: defaults, then the TOML file (`file`, else
    /// `MEDIAJOBS_CONFIG`), then the environment (`MEDIAJOBS_*`, `OPENAI_API_KEY` for the
    /// `openai` provider; `OPENAI_BASE_URL` is deliberately ignored).
    pub fn figment(file: Option<&Path>) -> Figment {
        let file = file
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os("MEDIAJOBS_CONFIG").map(PathBuf::from));
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            fig = fig.merge(Toml::file_exact(path));
        }
        fig.merge(
            Env::prefixed("MEDIAJOBS_")
                .filter_map(|k| env_key(&k.as_str().to_ascii_lowercase()).map(Into::into)),
        )
        .merge(
            Env::raw()
                .only(&["openai_api_key"])
                .filter_map(|_| Some("llm.openai.api_key".into())),
        )
    }

    /// Loads defaults, file and environment.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        Config::from_figment(&Config::figment(file))
    }

    /// Extracts and checks the settings of a figment (the binary merges its flags on top).
    pub fn from_figment(fig: &Figment) -> Result<Config, ConfigError> {
        // Unknown keys can only come from the file (the environment is filtered).
        let raw: figment::value::Dict = fig.extract().map_err(err)?;
        for (k, v) in &raw {
            if !SETTINGS.contains(&k.as_str()) {
                return Err(ConfigError(format!(
                    "{}: unknown setting '{k}' (known: {})",
                    source_of(fig, k),
                    SETTINGS.join(", ")
                )));
            }
            if k == "llm"
                && let Some(providers) = v.as_dict()
            {
                for (name, p) in providers {
                    let keys = p.as_dict().map(|d| d.keys().cloned().collect::<Vec<_>>());
                    let Some(keys) = keys else {
                        return Err(ConfigError(format!(
                            "{}: [llm.{name}] must be a table",
                            source_of(fig, "llm")
                        )));
                    };
                    if let Some(bad) = keys.iter().find(|k| !LLM_KEYS.contains(&k.as_str())) {
                        return Err(ConfigError(format!(
                            "{}: unknown setting '{bad}' of provider '{name}' (known: {})",
                            source_of(fig, &format!("llm.{name}.{bad}")),
                            LLM_KEYS.join(", ")
                        )));
                    }
                }
            }
        }
        let cfg: Config = fig.extract().map_err(err)?;
        let positive = |v: usize, key: &str| {
            if v == 0 {
                Err(ConfigError(format!(
                    "{}: must be at least 1",
                    source_of(fig, key)
                )))
            } else {
                Ok(())
            }
        };
        positive(cfg.heavy_concurrency, "heavy_concurrency")?;
        positive(cfg.io_concurrency, "io_concurrency")?;
        if let Some(t) = cfg.whisper_threads {
            positive(t, "whisper_threads")?;
        }
        cfg.model_memory()
            .map_err(|e| ConfigError(format!("{}: {e}", source_of(fig, "model_memory"))))?;
        if let Some(n) = &cfg.node_id
            && (n.is_empty() || n.len() > 128)
        {
            return Err(ConfigError(format!(
                "{}: must be 1-128 characters",
                source_of(fig, "node_id")
            )));
        }
        if cfg.transcription_backend == TranscriptionBackend::Remote
            && cfg.transcribe_base_url.as_deref().is_none_or(str::is_empty)
        {
            return Err(ConfigError(format!(
                "{}: 'remote' needs MEDIAJOBS_TRANSCRIBE_BASE_URL",
                source_of(fig, "transcription_backend")
            )));
        }
        cfg.llm_providers()?;
        cfg.retention()
            .map_err(|e| ConfigError(format!("{}: {e}", source_of(fig, "retention"))))?;
        cfg.maintenance_interval()
            .map_err(|e| ConfigError(format!("{}: {e}", source_of(fig, "maintenance_interval"))))?;
        if !(cfg.timeout_factor.is_finite() && cfg.timeout_factor >= 1.0) {
            return Err(ConfigError(format!(
                "{}: must be a number of at least 1",
                source_of(fig, "timeout_factor")
            )));
        }
        if let Some(sec) = cfg.webhook_secret.as_deref().filter(|s| !s.is_empty()) {
            mediajobs_api::WebhookPolicy::new(sec, cfg.webhook_allow_private)
                .map_err(|e| ConfigError(format!("{}: {e}", source_of(fig, "webhook_secret"))))?;
        }
        Ok(cfg)
    }

    /// The retention (`None`: keep finished jobs forever).
    pub fn retention(&self) -> Result<Option<Duration>, String> {
        match self.retention.as_deref().map(str::trim) {
            None | Some("") => Ok(None),
            Some(s) => parse_duration(s).map(Some),
        }
    }

    /// The maintenance interval (at least 1 s).
    pub fn maintenance_interval(&self) -> Result<Duration, String> {
        parse_duration(self.maintenance_interval.trim()).map(|d| d.max(Duration::from_secs(1)))
    }

    /// The webhook policy (`None` without a secret).
    pub fn webhooks(&self) -> Option<mediajobs_api::WebhookPolicy> {
        let sec = self.webhook_secret.as_deref().filter(|s| !s.is_empty())?;
        mediajobs_api::WebhookPolicy::new(sec, self.webhook_allow_private).ok()
    }

    /// The database URL.
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("mediajobs.db").display()))
    }

    /// The whisper model file of the default model.
    pub fn whisper_model(&self) -> PathBuf {
        self.whisper_model.clone().unwrap_or_else(|| {
            mediajobs_processor::model::model_path(
                &self.models_dir(),
                mediajobs_processor::model::DEFAULT_MODEL,
            )
        })
    }

    /// The model directory.
    pub fn models_dir(&self) -> PathBuf {
        self.models_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("models"))
    }

    /// The memory budget of loaded models, bytes (`None`: no limit).
    pub fn model_memory(&self) -> Result<Option<u64>, String> {
        match self.model_memory.as_deref().map(str::trim) {
            None | Some("") => Ok(None),
            Some(s) => parse_bytes(s).map(Some),
        }
    }

    /// How long a model stays loaded unused (`None`: forever).
    pub fn model_idle(&self) -> Option<Duration> {
        (self.model_idle_secs > 0).then(|| Duration::from_secs(self.model_idle_secs))
    }

    /// The name clients select the transcription model by (the compatible APIs' `model`):
    /// the GGML file's name without `ggml-` and `.bin` (`base`), or the remote model.
    pub fn model_name(&self) -> String {
        match self.transcription_backend {
            TranscriptionBackend::Remote => self.transcribe_model.clone(),
            TranscriptionBackend::Local => {
                let path = self.whisper_model();
                let stem = path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                stem.strip_prefix("ggml-").unwrap_or(&stem).to_owned()
            }
        }
    }

    /// whisper.cpp threads per transcription: the setting, else the cores shared between the
    /// `heavy_concurrency` transcriptions that may run at once (at least 1).
    pub fn whisper_threads(&self) -> usize {
        self.whisper_threads.unwrap_or_else(|| {
            let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
            (cores / self.heavy_concurrency.max(1)).max(1)
        })
    }

    /// This node's id.
    pub fn node_id(&self) -> String {
        self.node_id.clone().unwrap_or_else(hostname)
    }

    /// The lease (at least 3 s).
    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.lease_secs.max(3))
    }

    /// The stop grace period.
    pub fn grace(&self) -> Duration {
        Duration::from_secs(self.grace_secs)
    }

    /// The LLM providers as the processor takes them; errors name the setting.
    pub fn llm_providers(&self) -> Result<Vec<ProviderConfig>, ConfigError> {
        let mut out = Vec::new();
        for (name, p) in &self.llm {
            let var = |key: &str| format!("MEDIAJOBS_LLM_{}_{}", name.to_ascii_uppercase(), key);
            let api_key = p.api_key.clone().filter(|k| !k.is_empty());
            let base_url = match (&p.base_url, name.as_str()) {
                (Some(u), _) => u.clone(),
                (None, "openai") if api_key.is_some() => OPENAI_BASE_URL.to_owned(),
                (None, "openai") => continue,
                (None, _) => {
                    return Err(ConfigError(format!(
                        "{}: provider '{name}' needs a base URL",
                        var("BASE_URL")
                    )));
                }
            };
            let mut c = ProviderConfig::new(name, &base_url, api_key);
            if let Some(t) = p.timeout_secs {
                c.timeout = Duration::from_secs(t.max(1));
            }
            if let Some(n) = p.max_concurrency {
                c.max_concurrency = n;
            }
            if let Some(r) = p.retries {
                c.retry.max_retries = r;
            }
            c.validate()
                .map_err(|e| ConfigError(format!("{}: {e}", var("BASE_URL"))))?;
            out.push(c);
        }
        Ok(out)
    }
}

/// A duration such as `30d`, `12h`, `15m`, `30s` or `500ms` (a bare number is seconds).
///
/// ```
/// use std::time::Duration;
/// use mediajobs_server::parse_duration;
/// assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86_400)));
/// assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
/// assert!(parse_duration("soon").is_err());
/// ```
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a duration such as 30d, 12h, 15m, 30s"))?;
    let secs = |mul: u64| n.checked_mul(mul).map(Duration::from_secs);
    let d = match unit.trim() {
        "" | "s" => secs(1),
        "ms" => Some(Duration::from_millis(n)),
        "m" => secs(60),
        "h" => secs(3600),
        "d" => secs(86_400),
        "w" => secs(7 * 86_400),
        _ => None,
    };
    d.ok_or_else(|| format!("'{s}' is not a duration such as 30d, 12h, 15m, 30s"))
}

/// Parses a size: bytes, or a number with `K`, `M`, `G`, `T` (powers of 1024; `KiB`, `MB`,
/// … accepted alike), e.g. `1500M`, `4G`, `2.5G`.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let bad = || format!("'{s}' is not a size such as 1500M, 4G or a number of bytes");
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().map_err(|_| bad())?;
    let unit = unit.trim().to_ascii_lowercase();
    let unit = unit.trim_end_matches("ib").trim_end_matches('b');
    let mul: f64 = match unit {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        "t" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return Err(bad()),
    };
    let v = n * mul;
    if !v.is_finite() || !(1.0..=1e18).contains(&v) {
        return Err(bad());
    }
    Ok(v as u64)
}

fn err(e: figment::Error) -> ConfigError {
    let msgs: Vec<String> = e
        .into_iter()
        .map(|e| {
            let key = e.path.join(".");
            format!("{}: {}", place(e.metadata.as_ref(), &key), e.kind)
        })
        .collect();
    ConfigError(msgs.join("; "))
}

/// Where a key's value came from, in the words a user set it with: the variable
/// (`MEDIAJOBS_IO_CONCURRENCY`, `OPENAI_API_KEY`), or the file and the key.
fn place(md: Option<&figment::Metadata>, key: &str) -> String {
    match md {
        Some(md) if md.name.contains("MEDIAJOBS_") => {
            format!("MEDIAJOBS_{}", key.replace('.', "_").to_ascii_uppercase())
        }
        Some(md) if md.name.contains("environment") => "OPENAI_API_KEY".to_owned(),
        Some(md) => match &md.source {
            Some(figment::Source::File(p)) => format!("{} key '{key}'", p.display()),
            _ => format!("{key} ({})", md.name),
        },
        None => key.to_owned(),
    }
}

/// Where a setting's value came from.
fn source_of(fig: &Figment, key: &str) -> String {
    place(fig.find_metadata(key), key)
}

#[cfg(test)]
// figment::Jail's closures return figment's own (large) Result; its signature is not ours.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_embedded_setup() {
        figment::Jail::expect_with(|_| {
            let c = Config::load(None).unwrap();
            assert_eq!(c.bind.to_string(), "127.0.0.1:8080");
            assert_eq!(c.database_url(), "sqlite://./data/mediajobs.db");
            assert!(c.whisper_model().ends_with("models/ggml-base.bin"));
            assert_eq!(
                (c.heavy_concurrency, c.io_concurrency, c.max_attempts),
                (1, 4, 3)
            );
            assert_eq!(c.transcription_backend, TranscriptionBackend::Local);
            Ok(())
        });
    }

    #[test]
    fn errors_name_the_setting() {
        for (k, v) in [
            ("MEDIAJOBS_BIND", "nowhere"),
            ("MEDIAJOBS_IO_CONCURRENCY", "many"),
            ("MEDIAJOBS_IO_CONCURRENCY", "0"),
            ("MEDIAJOBS_INTERRUPTED_JOBS", "maybe"),
            ("MEDIAJOBS_TRANSCRIPTION_BACKEND", "cloud"),
            ("MEDIAJOBS_TRANSCRIPTION_BACKEND", "remote"),
            ("MEDIAJOBS_LLM_X_TIMEOUT_SECS", "soon"),
        ] {
            figment::Jail::expect_with(|jail| {
                jail.set_env(k, v);
                let e = Config::load(None).unwrap_err().to_string();
                assert!(e.contains(k), "{k}={v}: {e}");
                Ok(())
            });
        }
    }

    #[test]
    fn toml_then_environment() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "c.toml",
                "bind = \"0.0.0.0:9000\"\nio_concurrency = 8\nnode_id = 7\n[llm.local]\nbase_url = \"http://127.0.0.1:8081/v1\"\n",
            )?;
            jail.set_env("MEDIAJOBS_IO_CONCURRENCY", "2");
            jail.set_env("MEDIAJOBS_CACHE_DIR", "/not/a/setting");
            let c = Config::load(Some(Path::new("c.toml"))).unwrap();
            assert_eq!(c.bind.to_string(), "0.0.0.0:9000");
            assert_eq!(c.io_concurrency, 2);
            assert_eq!(c.node_id(), "7");
            let p = c.llm_providers().unwrap();
            assert_eq!(p[0].name, "local");
            assert_eq!(p[0].base_url, "http://127.0.0.1:8081/v1");
            jail.create_file("c.toml", "bnid = 1\n")?;
            let e = Config::load(Some(Path::new("c.toml")))
                .unwrap_err()
                .to_string();
            assert!(e.contains("unknown setting 'bnid'"), "{e}");
            assert!(e.contains("c.toml"), "{e}");
            Ok(())
        });
    }

    // Moved from the processor, which no longer reads variables.
    #[test]
    fn providers_from_environment() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("OPENAI_API_KEY", "sk-x");
            jail.set_env("OPENAI_BASE_URL", "http://evil.invalid/v1");
            jail.set_env("MEDIAJOBS_LLM_LOCAL_BASE_URL", "http://127.0.0.1:8080/v1/");
            jail.set_env("MEDIAJOBS_LLM_LOCAL_MAX_CONCURRENCY", "1");
            jail.set_env("MEDIAJOBS_LLM_MY_LAB_BASE_URL", "http://127.0.0.1:8090/v1");
            let c = Config::load(None).unwrap();
            let p = mediajobs_processor::llm::Providers::new(c.llm_providers().unwrap()).unwrap();
            assert_eq!(p.names(), vec!["local", "my_lab", "openai"]);
            let (o, _) = p.resolve("openai:gpt-4o-mini").unwrap();
            assert_eq!(
                o.config.base_url, OPENAI_BASE_URL,
                "OPENAI_BASE_URL is ignored"
            );
            assert_eq!(o.config.api_key.as_deref(), Some("sk-x"));
            let (l, m) = p.resolve("LOCAL:smol:135m").unwrap();
            assert_eq!(l.config.base_url, "http://127.0.0.1:8080/v1");
            assert_eq!(l.config.max_concurrency, 1);
            assert_eq!(m, "smol:135m");
            Ok(())
        });
    }

    #[test]
    fn bad_provider_config_names_the_variable() {
        for (vars, want) in [
            (
                vec![("MEDIAJOBS_LLM_X_BASE_URL", "ftp://x")],
                "MEDIAJOBS_LLM_X_BASE_URL",
            ),
            (
                vec![
                    ("MEDIAJOBS_LLM_X_BASE_URL", "http://x/v1"),
                    ("MEDIAJOBS_LLM_X_TIMEOUT_SECS", "soon"),
                ],
                "MEDIAJOBS_LLM_X_TIMEOUT_SECS",
            ),
            (vec![("OPENAI_API_KEY", "bad\nkey")], "API key"),
        ] {
            figment::Jail::expect_with(|jail| {
                for (k, v) in &vars {
                    jail.set_env(k, v);
                }
                let e = Config::load(None).unwrap_err().to_string();
                assert!(e.contains(want), "{e}");
                Ok(())
            });
        }
    }
}
