//! Completion webhooks over HTTP: the [`WebhookSender`] the engine's delivery loop calls, the
//! [Standard Webhooks](https://www.standardwebhooks.com/) signature, and the URL policy that
//! keeps a job's `webhook_url` from reaching the server's own network (SSRF).
//!
//! Each delivery is a `POST` of `{"type": "job.<status>", "timestamp": …, "data": <job>}`
//! with the headers `webhook-id` (stable for every try of one terminal state),
//! `webhook-timestamp` (unix seconds) and `webhook-signature` (`v1,` + base64 of
//! HMAC-SHA256 over `id.timestamp.body` with the secret). Redirects are not followed.
//!
//! The URL policy runs twice: at submission (scheme, host, literal addresses) and before each
//! try, on the addresses the host resolves to **then**; the request goes to exactly the
//! address that was checked (no second lookup a DNS rebinding could answer differently).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use hmac::{KeyInit, Mac};
use jobs_core::{Job, WebhookSendError, WebhookSender};

use crate::views::JobView;

/// Why a webhook URL or secret is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WebhookConfigError(pub String);

/// The signing secret and the URL policy.
#[derive(Clone)]
pub struct WebhookPolicy {
    secret: Vec<u8>,
    allow_private: bool,
}

impl std::fmt::Debug for WebhookPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookPolicy")
            .field("allow_private", &self.allow_private)
            .finish_non_exhaustive()
    }
}

impl WebhookPolicy {
    /// A policy signing with `secret` in the Standard Webhooks form `whsec_<base64>` (a bare
    /// base64 string is accepted too). `allow_private` lets URLs reach loopback and private
    /// addresses (`MEDIAJOBS_WEBHOOK_ALLOW_PRIVATE`).
    pub fn new(secret: &str, allow_private: bool) -> Result<Self, WebhookConfigError> {
        let b64 = secret
            .trim()
            .strip_prefix("whsec_")
            .unwrap_or(secret.trim());
        let key = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| WebhookConfigError(format!("not whsec_<base64>: {e}")))?;
        if key.len() < 16 {
            return Err(WebhookConfigError(
                "the secret must decode to at least 16 bytes".into(),
            ));
        }
        Ok(WebhookPolicy {
            secret: key,
            allow_private,
        })
    }

    /// The signature header value of one delivery: `v1,<base64>`.
    ///
    /// ```
    /// let p = mediajobs_api::WebhookPolicy::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", false).unwrap();
    /// // The example of the Standard Webhooks specification.
    /// assert_eq!(
    ///     p.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, br#"{"test": 2432232314}"#),
    ///     "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    /// );
    /// ```
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        // HMAC takes keys of any length: `new_from_slice` cannot fail for it.
        let mut mac = match hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.secret) {
            Ok(m) => m,
            Err(_) => return String::new(),
        };
        mac.update(format!("{id}.{timestamp}.").as_bytes());
        mac.update(body);
        let sig = mac.finalize().into_bytes();
        format!(
            "v1,{}",
            base64::engine::general_purpose::STANDARD.encode(sig)
        )
    }

    /// Checks a URL at submission: http/https, a host, at most 2,048 characters, and no
    /// literal private address (unless allowed). Names are resolved and checked at delivery.
    pub fn check_url(&self, url: &str) -> Result<reqwest::Url, WebhookConfigError> {
        if url.len() > 2048 {
            return Err(WebhookConfigError(
                "webhook_url must be at most 2048 characters".into(),
            ));
        }
        let u = reqwest::Url::parse(url)
            .map_err(|e| WebhookConfigError(format!("webhook_url is not a URL: {e}")))?;
        if !matches!(u.scheme(), "http" | "https") {
            return Err(WebhookConfigError(
                "webhook_url must be http or https".into(),
            ));
        }
        if !u.username().is_empty() || u.password().is_some() {
            return Err(WebhookConfigError(
                "webhook_url must not carry credentials".into(),
            ));
        }
        let host = u
            .host_str()
            .ok_or_else(|| WebhookConfigError("webhook_url needs a host".into()))?;
        if !self.allow_private {
            let literal = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .ok();
            if literal.is_some_and(is_private) || host.eq_ignore_ascii_case("localhost") {
                return Err(WebhookConfigError(
                    "webhook_url points at a private address (set MEDIAJOBS_WEBHOOK_ALLOW_PRIVATE=true to allow it)".into(),
                ));
            }
        }
        Ok(u)
    }

    /// The address to connect to for `u`, resolved now and checked against the policy.
    async fn resolve(&self, u: &reqwest::Url) -> Result<SocketAddr, WebhookSendError> {
        let host = u
            .host_str()
            .ok_or_else(|| WebhookSendError::permanent("no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = u.port_or_known_default().unwrap_or(80);
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|e| WebhookSendError::transient(format!("cannot resolve {host}: {e}")))?
            .collect();
        let ok: Vec<SocketAddr> = addrs
            .iter()
            .copied()
            .filter(|a| self.allow_private || !is_private(a.ip()))
            .collect();
        match ok.first() {
            Some(a) => Ok(*a),
            None if addrs.is_empty() => Err(WebhookSendError::transient(format!(
                "{host} has no address"
            ))),
            None => Err(WebhookSendError::permanent(format!(
                "{host} resolves to a private address only (refused)"
            ))),
        }
    }
}

/// `true` for addresses a webhook must not reach by default: loopback, private (RFC 1918,
/// unique local), link-local (cloud metadata), shared (CGNAT), unspecified, multicast,
/// broadcast, documentation, and IPv4-mapped forms of those.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1]))
                || (o[0] == 198 && (o[1] == 18 || o[1] == 19))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private(IpAddr::V4(v4));
            }
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
        }
    }
}

/// Sends completion webhooks over HTTP(S) with [`WebhookPolicy`].
#[derive(Debug, Clone)]
pub struct HttpWebhookSender {
    policy: WebhookPolicy,
    timeout: Duration,
}

impl HttpWebhookSender {
    /// A sender signing with `policy`; each try gives up after 10 s.
    pub fn new(policy: WebhookPolicy) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        HttpWebhookSender {
            policy,
            timeout: Duration::from_secs(10),
        }
    }

    /// The body of one delivery: the event type, when it happened, and the job as the API
    /// shows it.
    pub fn body(job: &Job) -> Result<Vec<u8>, serde_json::Error> {
        let w = job.webhook.as_ref();
        let event = w.and_then(|w| w.event).unwrap_or(job.status);
        let at = w.and_then(|w| w.event_at).unwrap_or(job.updated_at);
        serde_json::to_vec(&serde_json::json!({
            "type": format!("job.{}", event.as_str()),
            "timestamp": at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            "data": JobView::from(job),
        }))
    }
}

#[async_trait]
impl WebhookSender for HttpWebhookSender {
    async fn send(&self, job: &Job, delivery_id: &str) -> Result<(), WebhookSendError> {
        let Some(w) = job.webhook.as_ref() else {
            return Err(WebhookSendError::permanent("the job has no webhook"));
        };
        let url = self
            .policy
            .check_url(&w.url)
            .map_err(|e| WebhookSendError::permanent(e.0))?;
        let addr = self.policy.resolve(&url).await?;
        let host = url.host_str().unwrap_or_default().to_owned();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(self.timeout)
            .connect_timeout(Duration::from_secs(5))
            .resolve(&host, addr)
            .build()
            .map_err(|e| WebhookSendError::transient(format!("HTTP client: {e}")))?;
        let body = Self::body(job).map_err(|e| WebhookSendError::permanent(e.to_string()))?;
        let ts = chrono::Utc::now().timestamp();
        let sig = self.policy.sign(delivery_id, ts, &body);
        let resp = client
            .post(url)
            .header("content-type", "application/json")
            .header(
                "user-agent",
                concat!("mediajobs/", env!("CARGO_PKG_VERSION")),
            )
            .header("webhook-id", delivery_id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", sig)
            .body(body)
            .send()
            .await
            .map_err(|e| WebhookSendError::transient(format!("POST failed: {e}")))?;
        let status = resp.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(WebhookSendError::transient(format!(
                "the receiver answered {status}"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allow: bool) -> WebhookPolicy {
        WebhookPolicy::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", allow).unwrap()
    }

    #[test]
    fn secrets_must_be_base64_and_long_enough() {
        assert!(WebhookPolicy::new("whsec_not base64!", false).is_err());
        assert!(WebhookPolicy::new("whsec_c2hvcnQ=", false).is_err());
    }

    #[test]
    fn url_policy_refuses_private_and_odd_urls() {
        let p = policy(false);
        for bad in [
            "ftp://example.com/x",
            "http://127.0.0.1:8080/hook",
            "http://[::1]/hook",
            "http://10.1.2.3/",
            "http://169.254.169.254/latest/meta-data",
            "http://localhost/x",
            "http://user:pw@example.com/",
            "not a url",
        ] {
            assert!(p.check_url(bad).is_err(), "{bad}");
        }
        assert!(p.check_url("https://hooks.example.com/mediajobs").is_ok());
        assert!(policy(true).check_url("http://127.0.0.1:9/hook").is_ok());
        assert!(is_private("::ffff:192.168.1.1".parse().unwrap()));
        assert!(is_private("100.64.0.1".parse().unwrap()));
        assert!(!is_private("93.184.216.34".parse().unwrap()));
    }
}
