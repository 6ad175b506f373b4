//! Configuration: defaults, then a TOML file (`--config` or `MEDIAJOBS_CONFIG`), then
//! `MEDIAJOBS_*` environment variables. Every error names the setting it is about.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use jobs_core::InterruptPolicy;

/// Where transcription runs.
#[derive(Debug, Clone, PartialEq)]
pub enum TranscriptionBackend {
    /// whisper.cpp in this process.
    Local,
    /// An OpenAI-compatible `/v1/audio/transcriptions` service.
    Remote {
        /// Base URL with `/v1`.
        base_url: String,
        /// API key.
        api_key: Option<String>,
        /// Model name.
        model: String,
    },
}

/// The server's settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub bind: SocketAddr,
    pub data_dir: PathBuf,
    pub database_url: String,
    pub database_ca_file: Option<PathBuf>,
    pub whisper_model: PathBuf,
    pub whisper_threads: usize,
    pub heavy_concurrency: usize,
    pub io_concurrency: usize,
    pub max_upload_bytes: u64,
    pub interrupted_jobs: InterruptPolicy,
    pub max_attempts: i32,
    pub lease: Duration,
    pub grace: Duration,
    pub api_tokens: String,
    pub node_id: String,
    pub transcription: TranscriptionBackend,
    /// `MEDIAJOBS_LLM_*` / `OPENAI_API_KEY` style variables for the LLM providers.
    pub llm_vars: Vec<(String, String)>,
    pub log: String,
}

/// Settings that may appear in the TOML file (lower case) or as `MEDIAJOBS_<UPPER>`.
const KEYS: &[&str] = &[
    "bind",
    "data_dir",
    "database_url",
    "database_ca_file",
    "whisper_model",
    "whisper_threads",
    "heavy_concurrency",
    "io_concurrency",
    "max_upload_bytes",
    "interrupted_jobs",
    "max_attempts",
    "lease_secs",
    "grace_secs",
    "api_tokens",
    "node_id",
    "transcription_backend",
    "transcribe_base_url",
    "transcribe_api_key",
    "transcribe_model",
    "log",
];

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "mediajobs".into())
}

impl Config {
    /// Loads the configuration from `file` (if any) and `env`.
    pub fn load(file: Option<&Path>, env: &BTreeMap<String, String>) -> anyhow::Result<Config> {
        // (value, where it came from)
        let mut raw: BTreeMap<String, (String, String)> = BTreeMap::new();
        let mut llm_vars: Vec<(String, String)> = Vec::new();
        let file = file
            .map(Path::to_path_buf)
            .or_else(|| env.get("MEDIAJOBS_CONFIG").map(PathBuf::from));
        if let Some(path) = &file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("MEDIAJOBS_CONFIG: cannot read {}", path.display()))?;
            let table: toml::Table = toml::from_str(&text).with_context(|| {
                format!("MEDIAJOBS_CONFIG: {} is not valid TOML", path.display())
            })?;
            for (k, v) in table {
                if k == "llm" {
                    let providers = v.as_table().with_context(|| {
                        format!("{}: [llm] must be a table of providers", path.display())
                    })?;
                    for (name, p) in providers {
                        let p = p.as_table().with_context(|| {
                            format!("{}: [llm.{name}] must be a table", path.display())
                        })?;
                        for (pk, pv) in p {
                            let var = format!(
                                "MEDIAJOBS_LLM_{}_{}",
                                name.to_ascii_uppercase(),
                                pk.to_ascii_uppercase()
                            );
                            llm_vars.push((var, toml_str(pv)));
                        }
                    }
                    continue;
                }
                if !KEYS.contains(&k.as_str()) {
                    bail!(
                        "{}: unknown setting '{k}' (known: {})",
                        path.display(),
                        KEYS.join(", ")
                    );
                }
                raw.insert(
                    k.clone(),
                    (toml_str(&v), format!("{} key '{k}'", path.display())),
                );
            }
        }
        for k in KEYS {
            let var = format!("MEDIAJOBS_{}", k.to_ascii_uppercase());
            if let Some(v) = env.get(&var) {
                raw.insert((*k).to_owned(), (v.clone(), var));
            }
        }
        for (k, v) in env {
            if k == "OPENAI_API_KEY" || k.starts_with("MEDIAJOBS_LLM_") {
                llm_vars.push((k.clone(), v.clone()));
            }
        }
        let get = |k: &str| {
            raw.get(k)
                .map(|(v, src)| (v.trim().to_owned(), src.clone()))
        };
        fn parse<T: std::str::FromStr>(
            v: Option<(String, String)>,
            default: T,
            what: &str,
        ) -> anyhow::Result<T>
        where
            T::Err: std::fmt::Display,
        {
            match v {
                None => Ok(default),
                Some((v, src)) => v
                    .parse::<T>()
                    .map_err(|e| anyhow::anyhow!("{src}: '{v}' is not {what}: {e}")),
            }
        }
        let data_dir: PathBuf =
            get("data_dir").map_or_else(|| PathBuf::from("./data"), |(v, _)| PathBuf::from(v));
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let positive = |v: usize, k: &str| -> anyhow::Result<usize> {
            if v == 0 {
                let src = raw.get(k).map_or(k.to_owned(), |(_, s)| s.clone());
                bail!("{src}: must be at least 1");
            }
            Ok(v)
        };
        let transcription = match get("transcription_backend")
            .map(|(v, s)| (v.to_ascii_lowercase(), s))
        {
            None => TranscriptionBackend::Local,
            Some((v, _)) if v == "local" => TranscriptionBackend::Local,
            Some((v, src)) if v == "remote" => {
                let (base_url, _) = get("transcribe_base_url").with_context(|| {
                    format!("{src}: 'remote' needs MEDIAJOBS_TRANSCRIBE_BASE_URL")
                })?;
                TranscriptionBackend::Remote {
                    base_url,
                    api_key: get("transcribe_api_key")
                        .map(|(v, _)| v)
                        .filter(|v| !v.is_empty()),
                    model: get("transcribe_model").map_or_else(|| "whisper-1".into(), |(v, _)| v),
                }
            }
            Some((v, src)) => bail!("{src}: '{v}' is not 'local' or 'remote'"),
        };
        let database_url = get("database_url").map_or_else(
            || format!("sqlite://{}", data_dir.join("mediajobs.db").display()),
            |(v, _)| v,
        );
        let node_id = get("node_id").map_or_else(hostname, |(v, _)| v);
        if node_id.is_empty() || node_id.len() > 128 {
            bail!("MEDIAJOBS_NODE_ID: must be 1-128 characters");
        }
        Ok(Config {
            bind: parse(
                get("bind"),
                SocketAddr::from(([127, 0, 0, 1], 8080)),
                "an address like 127.0.0.1:8080",
            )?,
            whisper_model: get("whisper_model").map_or_else(
                || {
                    processor::model::model_path(
                        &data_dir.join("models"),
                        processor::model::DEFAULT_MODEL,
                    )
                },
                |(v, _)| PathBuf::from(v),
            ),
            database_ca_file: get("database_ca_file").map(|(v, _)| PathBuf::from(v)),
            whisper_threads: positive(
                parse(get("whisper_threads"), cores, "a number")?,
                "whisper_threads",
            )?,
            heavy_concurrency: positive(
                parse(get("heavy_concurrency"), 1, "a number")?,
                "heavy_concurrency",
            )?,
            io_concurrency: positive(
                parse(get("io_concurrency"), 4, "a number")?,
                "io_concurrency",
            )?,
            max_upload_bytes: parse(get("max_upload_bytes"), 2u64 << 30, "a number of bytes")?,
            interrupted_jobs: parse(
                get("interrupted_jobs"),
                InterruptPolicy::Retry,
                "'retry' or 'fail'",
            )?,
            max_attempts: parse::<i32>(get("max_attempts"), 3, "a number")?.max(1),
            lease: Duration::from_secs(
                parse::<u64>(get("lease_secs"), 30, "a number of seconds")?.max(3),
            ),
            grace: Duration::from_secs(parse(get("grace_secs"), 10, "a number of seconds")?),
            api_tokens: get("api_tokens").map(|(v, _)| v).unwrap_or_default(),
            // whisper.cpp logs every model parameter at info level: keep it to warnings.
            log: get("log").map_or_else(|| "info,whisper_rs=warn".into(), |(v, _)| v),
            database_url,
            data_dir,
            node_id,
            transcription,
            llm_vars,
        })
    }
}

fn toml_str(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(v: &[(&str, &str)]) -> BTreeMap<String, String> {
        v.iter().map(|(a, b)| ((*a).into(), (*b).into())).collect()
    }

    #[test]
    fn defaults_are_the_embedded_setup() {
        let c = Config::load(None, &env(&[])).unwrap();
        assert_eq!(c.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(c.database_url, "sqlite://./data/mediajobs.db");
        assert!(c.whisper_model.ends_with("models/ggml-base.bin"));
        assert_eq!(
            (c.heavy_concurrency, c.io_concurrency, c.max_attempts),
            (1, 4, 3)
        );
        assert_eq!(c.transcription, TranscriptionBackend::Local);
    }

    #[test]
    fn errors_name_the_setting() {
        for (k, v) in [
            ("MEDIAJOBS_BIND", "nowhere"),
            ("MEDIAJOBS_IO_CONCURRENCY", "many"),
            ("MEDIAJOBS_IO_CONCURRENCY", "0"),
            ("MEDIAJOBS_INTERRUPTED_JOBS", "maybe"),
            ("MEDIAJOBS_TRANSCRIPTION_BACKEND", "cloud"),
        ] {
            let e = Config::load(None, &env(&[(k, v)])).unwrap_err().to_string();
            assert!(e.contains(k), "{k}={v}: {e}");
        }
    }

    #[test]
    fn toml_then_environment() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, "bind = \"0.0.0.0:9000\"\nio_concurrency = 8\n[llm.local]\nbase_url = \"http://127.0.0.1:8081/v1\"\n").unwrap();
        let c = Config::load(Some(&f), &env(&[("MEDIAJOBS_IO_CONCURRENCY", "2")])).unwrap();
        assert_eq!(c.bind.to_string(), "0.0.0.0:9000");
        assert_eq!(c.io_concurrency, 2);
        assert!(c.llm_vars.contains(&(
            "MEDIAJOBS_LLM_LOCAL_BASE_URL".into(),
            "http://127.0.0.1:8081/v1".into()
        )));
        std::fs::write(&f, "bnid = 1\n").unwrap();
        let e = Config::load(Some(&f), &env(&[])).unwrap_err().to_string();
        assert!(e.contains("unknown setting 'bnid'"), "{e}");
    }
}
