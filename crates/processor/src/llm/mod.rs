//! OpenAI-compatible providers (async-openai): configuration by name, the `provider:model`
//! selector, and an HTTP layer with our own timeouts and retry policy.
//!
//! async-openai retries 429/5xx by itself, honours `Retry-After` without a cap, has no default
//! timeout, and loses the HTTP status of non-OpenAI error bodies (shared/notes/llm.md). So
//! every provider's client runs on our own tower service ([`RetryingHttp`]): a per-request
//! timeout, bounded retries with exponential backoff on 429 / 5xx / connection errors, a cap
//! on `Retry-After`, no retry on other 4xx or `insufficient_quota`, and errors that keep the
//! status. Base URLs are always set explicitly, so a stray `OPENAI_BASE_URL` cannot redirect
//! calls.

mod http;
mod prompt;
mod refine;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_openai::Client;
use async_openai::config::OpenAIConfig;
use tokio::sync::Semaphore;

pub(crate) use http::map_openai_error;
pub use http::{HttpError, RetryPolicy, RetryingHttp};
pub use refine::{
    DEFAULT_SYSTEM_PROMPT, LlmRefiner, RefineOptions, RefineReport, SubtitleRefiner, TokenUsage,
};

use crate::progress::ProcessorError;

/// The default OpenAI endpoint.
pub const OPENAI_BASE_URL: &str = "https://api.openai.com/v1";

/// One OpenAI-compatible endpoint.
#[derive(Clone)]
pub struct ProviderConfig {
    /// Lower-case name used in selectors (`openai`, `local`, …).
    pub name: String,
    /// Base URL including `/v1` (requests go to `BASE/chat/completions`).
    pub base_url: String,
    /// API key, if the server wants one (sent as `Authorization: Bearer`).
    pub api_key: Option<String>,
    /// Per-request timeout (default 120 s).
    pub timeout: Duration,
    /// Requests in flight to this provider at once (default 4).
    pub max_concurrency: usize,
    /// Retry behaviour.
    pub retry: RetryPolicy,
}

impl std::fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderConfig")
            .field("name", &self.name)
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "***"))
            .field("timeout", &self.timeout)
            .field("max_concurrency", &self.max_concurrency)
            .finish()
    }
}

impl ProviderConfig {
    /// A provider with default timeout, concurrency and retries.
    pub fn new(name: &str, base_url: &str, api_key: Option<String>) -> Self {
        ProviderConfig {
            name: name.to_ascii_lowercase(),
            base_url: base_url.trim_end_matches('/').to_owned(),
            api_key,
            timeout: Duration::from_secs(120),
            max_concurrency: 4,
            retry: RetryPolicy::default(),
        }
    }

    /// Checks the name, the URL scheme and the key (errors name the provider).
    pub fn validate(&self) -> Result<(), String> {
        if self.name.is_empty()
            || !self
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        {
            return Err(format!("provider name '{}' must be [a-z0-9_-]+", self.name));
        }
        if !(self.base_url.starts_with("http://") || self.base_url.starts_with("https://")) {
            return Err(format!(
                "provider '{}': base URL '{}' must start with http:// or https://",
                self.name, self.base_url
            ));
        }
        if let Some(k) = &self.api_key
            && !k.bytes().all(|b| (0x21..0x7f).contains(&b))
        {
            return Err(format!(
                "provider '{}': the API key contains characters not allowed in an HTTP header",
                self.name
            ));
        }
        Ok(())
    }
}

/// A configured provider: its client and its concurrency limit.
pub struct Provider {
    /// Settings.
    pub config: ProviderConfig,
    pub(crate) client: Client<OpenAIConfig>,
    pub(crate) permits: Arc<Semaphore>,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.config.fmt(f)
    }
}

/// Builds an async-openai client for an endpoint on our HTTP layer.
pub(crate) fn make_client(
    base_url: &str,
    api_key: Option<&str>,
    timeout: Duration,
    retry: RetryPolicy,
) -> Result<Client<OpenAIConfig>, ProcessorError> {
    // Always explicit: OpenAIConfig::new() would otherwise read OPENAI_BASE_URL, the org and
    // project ids from the environment.
    let cfg = OpenAIConfig::new()
        .with_api_base(base_url)
        .with_api_key(api_key.unwrap_or_default())
        .with_org_id("")
        .with_project_id("");
    let http = RetryingHttp::new(timeout, retry)?;
    Ok(Client::with_config(cfg).with_http_service(http))
}

impl Provider {
    /// Builds the provider's client.
    pub fn new(config: ProviderConfig) -> Result<Self, ProcessorError> {
        config.validate().map_err(ProcessorError::Validation)?;
        let client = make_client(
            &config.base_url,
            config.api_key.as_deref(),
            config.timeout,
            config.retry.clone(),
        )?;
        Ok(Provider {
            permits: Arc::new(Semaphore::new(config.max_concurrency.max(1))),
            client,
            config,
        })
    }
}

/// The configured providers, looked up by the `provider:model` selector.
///
/// ```
/// use mediajobs_processor::llm::{Providers, ProviderConfig};
/// let p = Providers::new(vec![ProviderConfig::new("local", "http://127.0.0.1:8080/v1", None)]).unwrap();
/// let (provider, model) = p.resolve("local:qwen2.5:3b").unwrap();
/// assert_eq!((provider.config.name.as_str(), model.as_str()), ("local", "qwen2.5:3b"));
/// assert_eq!(p.resolve("nocolon").unwrap_err().code(), "InvalidModelString");
/// assert_eq!(p.resolve("openai:gpt-4o-mini").unwrap_err().code(), "LLMProviderUnavailable");
/// ```
#[derive(Debug, Default)]
pub struct Providers {
    by_name: BTreeMap<String, Arc<Provider>>,
}

impl Providers {
    /// Providers from explicit configs. Duplicate names are an error.
    pub fn new(configs: Vec<ProviderConfig>) -> Result<Self, ProcessorError> {
        let mut by_name = BTreeMap::new();
        for c in configs {
            let name = c.name.clone();
            if by_name
                .insert(name.clone(), Arc::new(Provider::new(c)?))
                .is_some()
            {
                return Err(ProcessorError::Validation(format!(
                    "provider '{name}' configured twice"
                )));
            }
        }
        Ok(Providers { by_name })
    }

    /// Configured provider names.
    pub fn names(&self) -> Vec<String> {
        self.by_name.keys().cloned().collect()
    }

    /// Resolves `provider:model`. A malformed selector is `InvalidModelString`; an unknown
    /// provider is `LLMProviderUnavailable`. Both are checked at submission (422).
    pub fn resolve(&self, selector: &str) -> Result<(Arc<Provider>, String), ProcessorError> {
        let (p, m) = parse_selector(selector)?;
        let provider = self.by_name.get(&p).cloned().ok_or_else(|| {
            let known = if self.by_name.is_empty() {
                "none is configured (set OPENAI_API_KEY or MEDIAJOBS_LLM_<NAME>_BASE_URL)"
                    .to_owned()
            } else {
                format!("configured: {}", self.names().join(", "))
            };
            ProcessorError::LlmProviderUnavailable(format!(
                "LLM provider '{p}' is not configured; {known}"
            ))
        })?;
        Ok((provider, m))
    }
}

/// Splits `provider:model` at the first colon (model names may contain colons).
pub fn parse_selector(selector: &str) -> Result<(String, String), ProcessorError> {
    let bad = || {
        ProcessorError::InvalidModelString(format!(
            "model must be 'provider:model' (e.g. 'openai:gpt-4o-mini'), got '{selector}'"
        ))
    };
    let (p, m) = selector.split_once(':').ok_or_else(bad)?;
    let p = p.trim().to_ascii_lowercase();
    let m = m.trim();
    if p.is_empty()
        || m.is_empty()
        || m.len() > 200
        || !p
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        || m.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(bad());
    }
    Ok((p, m.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors() {
        for bad in [
            "",
            ":",
            "openai:",
            ":gpt",
            "open ai:gpt",
            "openai:gpt 4",
            "gpt-4o",
        ] {
            assert_eq!(
                parse_selector(bad).unwrap_err().code(),
                "InvalidModelString",
                "{bad}"
            );
        }
        assert_eq!(
            parse_selector("ollama:llama3:8b").unwrap(),
            ("ollama".into(), "llama3:8b".into())
        );
    }
}
