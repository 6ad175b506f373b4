//! The HTTP layer under async-openai: timeouts, our retry policy, errors that keep the status.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_openai::error::OpenAIError;
use async_openai::middleware::HttpRequestFactory;
use backon::{BackoffBuilder, ExponentialBuilder};

use crate::progress::ProcessorError;

/// When and how long to retry.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Retries after the first try (default 4).
    pub max_retries: u32,
    /// First backoff (default 500 ms), doubled each retry, plus up to as much again of
    /// random jitter.
    pub base_delay: Duration,
    /// Longest backoff (default 8 s).
    pub max_delay: Duration,
    /// Longest wait a `Retry-After` header may ask for (default 30 s); a longer one is capped.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 4,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(30),
        }
    }
}

/// What went wrong with a request, with the HTTP status when there was one.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HttpError {
    /// The server answered with an error status (after retries, when retryable).
    #[error("HTTP {status}: {message}")]
    Status {
        /// Status code.
        status: u16,
        /// The server's message (OpenAI error message, or the raw body, shortened).
        message: String,
    },
    /// No answer within the timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The connection failed (after retries).
    #[error("cannot connect: {0}")]
    Connect(String),
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

impl HttpError {
    /// `true` for 429 other than `insufficient_quota`, and for 5xx.
    fn retryable_status(status: u16, body: &str) -> bool {
        (status == 429 && !body.contains("insufficient_quota")) || (500..600).contains(&status)
    }
}

/// Maps an async-openai error to a processor error (`LLMRequest`), keeping what we know.
pub(crate) fn map_openai_error(e: OpenAIError) -> ProcessorError {
    match e {
        OpenAIError::Boxed(b) => match b.downcast::<HttpError>() {
            Ok(h) => match *h {
                HttpError::Timeout(d) => {
                    ProcessorError::Timeout(format!("the LLM did not answer within {d:?}"))
                }
                HttpError::Status {
                    status,
                    ref message,
                } if HttpError::retryable_status(status, message) => {
                    ProcessorError::ServiceUnavailable(h.to_string())
                }
                HttpError::Connect(_) => ProcessorError::ServiceUnavailable(h.to_string()),
                other => ProcessorError::LlmRequest(other.to_string()),
            },
            Err(b) => ProcessorError::LlmRequest(b.to_string()),
        },
        OpenAIError::JSONDeserialize(err, body) => {
            ProcessorError::LlmRequest(format!("unreadable answer ({err}): {}", shorten(&body)))
        }
        OpenAIError::ApiError(a) => ProcessorError::LlmRequest(format!(
            "HTTP {}: {}",
            a.status_code.as_u16(),
            a.api_error.message
        )),
        other => ProcessorError::LlmRequest(other.to_string()),
    }
}

fn shorten(s: &str) -> String {
    let s = s.trim();
    if s.chars().count() > 300 {
        format!("{}…", s.chars().take(300).collect::<String>())
    } else {
        s.to_owned()
    }
}

/// The server's error message: OpenAI's `{"error":{"message":…}}` (any `code` type), FastAPI's
/// `{"detail":…}`, or the raw body.
fn error_message(body: &str) -> String {
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(body) {
        if let Some(m) = v["error"]["message"].as_str() {
            return shorten(m);
        }
        if let Some(m) = v["error"].as_str() {
            return shorten(m);
        }
        if let Some(m) = v["detail"].as_str() {
            return shorten(m);
        }
    }
    shorten(body)
}

fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    if let Ok(secs) = v.parse::<f64>()
        && secs.is_finite()
        && secs >= 0.0
    {
        return Some(Duration::from_secs_f64(secs.min(1e6)));
    }
    // HTTP-date: treat as "a while" (capped anyway).
    (!v.is_empty()).then_some(Duration::from_secs(u64::MAX / 4))
}

/// A tower service for async-openai's `Client::with_http_service`: sends each request with a
/// timeout and retries it per [`RetryPolicy`].
#[derive(Clone)]
pub struct RetryingHttp {
    client: reqwest::Client,
    timeout: Duration,
    policy: Arc<RetryPolicy>,
}

impl std::fmt::Debug for RetryingHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetryingHttp")
            .field("timeout", &self.timeout)
            .field("policy", &self.policy)
            .finish()
    }
}

impl RetryingHttp {
    /// A service with a per-request `timeout` (connect timeout 10 s).
    pub fn new(timeout: Duration, policy: RetryPolicy) -> Result<Self, ProcessorError> {
        crate::tls::install_crypto();
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(10).min(timeout))
            .build()
            .map_err(|e| ProcessorError::Internal(format!("HTTP client: {e}")))?;
        Ok(RetryingHttp {
            client,
            timeout,
            policy: Arc::new(policy),
        })
    }

    async fn send(
        client: reqwest::Client,
        timeout: Duration,
        policy: Arc<RetryPolicy>,
        factory: HttpRequestFactory,
    ) -> Result<reqwest::Response, OpenAIError> {
        let boxed = |e: HttpError| OpenAIError::Boxed(Box::new(e));
        // Exponential with jitter: parallel batch children that meet the same 429 do not
        // come back in lockstep.
        let mut delays = ExponentialBuilder::default()
            .with_min_delay(policy.base_delay)
            .with_max_delay(policy.max_delay)
            .with_max_times(policy.max_retries as usize)
            .with_jitter()
            .build();
        let mut attempt: u32 = 0;
        loop {
            let request = factory.build().await?;
            let backoff = delays.next();
            let can_retry = backoff.is_some();
            let backoff = backoff.unwrap_or(policy.max_delay);
            match client.execute(request).await {
                Ok(resp) if resp.status().is_success() => return Ok(resp),
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let retry_after = resp
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(parse_retry_after);
                    let body = resp.text().await.unwrap_or_default();
                    if can_retry && HttpError::retryable_status(status, &body) {
                        let wait = retry_after.map_or(backoff, |ra| ra.min(policy.max_retry_after));
                        tracing::warn!(status, attempt, ?wait, "LLM request failed; retrying");
                        tokio::time::sleep(wait).await;
                        attempt += 1;
                        continue;
                    }
                    return Err(boxed(HttpError::Status {
                        status,
                        message: error_message(&body),
                    }));
                }
                Err(e) if e.is_timeout() => return Err(boxed(HttpError::Timeout(timeout))),
                Err(e) if e.is_connect() => {
                    if can_retry {
                        tracing::warn!(attempt, error = %e, "LLM connection failed; retrying");
                        tokio::time::sleep(backoff).await;
                        attempt += 1;
                        continue;
                    }
                    return Err(boxed(HttpError::Connect(e.to_string())));
                }
                Err(e) => return Err(boxed(HttpError::Other(e.to_string()))),
            }
        }
    }
}

impl tower::Service<HttpRequestFactory> for RetryingHttp {
    type Response = reqwest::Response;
    type Error = OpenAIError;
    type Future = Pin<Box<dyn Future<Output = Result<reqwest::Response, OpenAIError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, factory: HttpRequestFactory) -> Self::Future {
        Box::pin(Self::send(
            self.client.clone(),
            self.timeout,
            self.policy.clone(),
            factory,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_error_bodies() {
        assert_eq!(
            error_message(r#"{"error":{"code":400,"message":"too long"}}"#),
            "too long"
        );
        assert_eq!(error_message(r#"{"detail":"bad field"}"#), "bad field");
        assert_eq!(error_message("<html>502</html>"), "<html>502</html>");
        assert!(HttpError::retryable_status(429, "{}"));
        assert!(!HttpError::retryable_status(
            429,
            r#"{"error":{"code":"insufficient_quota"}}"#
        ));
        assert!(HttpError::retryable_status(503, ""));
        assert!(!HttpError::retryable_status(400, ""));
        assert_eq!(parse_retry_after("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after("0.5"), Some(Duration::from_millis(500)));
    }
}
