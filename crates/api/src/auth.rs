//! `X-Profile-ID` and optional bearer tokens bound to profiles.

use axum::extract::{FromRef, FromRequestParts};
use axum::http::StatusCode;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::AppState;
use crate::error::ApiError;

/// One configured token and the profiles it reaches (`None` = all).
#[derive(Clone)]
pub struct TokenRule {
    digest: [u8; 32],
    profiles: Option<Vec<String>>,
}

impl std::fmt::Debug for TokenRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenRule")
            .field("profiles", &self.profiles)
            .finish_non_exhaustive()
    }
}

impl TokenRule {
    /// A token for some profiles (`None` for every profile).
    pub fn new(token: &str, profiles: Option<Vec<String>>) -> Self {
        TokenRule {
            digest: Sha256::digest(token.as_bytes()).into(),
            profiles,
        }
    }
}

/// Parses `token=alice,bob;token2=*` (the `API_TOKENS` setting).
///
/// ```
/// let rules = mediajobs_api::parse_tokens("s3cret-token=alice,bob; admin-token=*").unwrap();
/// assert_eq!(rules.len(), 2);
/// assert!(mediajobs_api::parse_tokens("missing-profiles").is_err());
/// ```
pub fn parse_tokens(spec: &str) -> Result<Vec<TokenRule>, String> {
    let mut out = Vec::new();
    for part in spec.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (tok, profiles) = part.split_once('=').ok_or_else(|| {
            format!(
                "expected TOKEN=PROFILE[,PROFILE…] or TOKEN=*, got '{}…'",
                &part.chars().take(4).collect::<String>()
            )
        })?;
        let tok = tok.trim();
        if tok.len() < 8 {
            return Err("tokens must be at least 8 characters".into());
        }
        let profiles = profiles.trim();
        let rule = if profiles == "*" {
            TokenRule::new(tok, None)
        } else {
            let list: Vec<String> = profiles
                .split(',')
                .map(|p| p.trim().to_owned())
                .filter(|p| !p.is_empty())
                .collect();
            if list.is_empty()
                || !list
                    .iter()
                    .all(|p| mediajobs_persistence::valid_profile_id(p))
            {
                return Err(format!("invalid profile list '{profiles}'"));
            }
            TokenRule::new(tok, Some(list))
        };
        out.push(rule);
    }
    Ok(out)
}

/// The caller's profile, checked against the token rules when tokens are configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile(pub String);

impl<S> FromRequestParts<S> for Profile
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let st = AppState::from_ref(state);
        let raw = parts
            .headers
            .get("x-profile-id")
            .ok_or_else(|| ApiError::validation("the X-Profile-ID header is required"))?
            .to_str()
            .map_err(|_| ApiError::validation("X-Profile-ID must be 1-64 of [A-Za-z0-9_-]"))?
            .trim()
            .to_owned();
        if !mediajobs_persistence::valid_profile_id(&raw) {
            return Err(ApiError::validation(
                "X-Profile-ID must be 1-64 of [A-Za-z0-9_-]",
            ));
        }
        if !st.config.tokens.is_empty() {
            let unauthorized = |m: &str| ApiError::new(StatusCode::UNAUTHORIZED, "Unauthorized", m);
            let token = parts
                .headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| {
                    v.strip_prefix("Bearer ")
                        .or_else(|| v.strip_prefix("bearer "))
                })
                .ok_or_else(|| unauthorized("Authorization: Bearer <token> is required"))?;
            let digest: [u8; 32] = Sha256::digest(token.trim().as_bytes()).into();
            // Compare against every rule, in constant time, without early exit.
            let mut matched: Option<&TokenRule> = None;
            for rule in &st.config.tokens {
                if bool::from(rule.digest.ct_eq(&digest)) && matched.is_none() {
                    matched = Some(rule);
                }
            }
            let rule = matched.ok_or_else(|| unauthorized("invalid token"))?;
            if let Some(list) = &rule.profiles
                && !list.iter().any(|p| p == &raw)
            {
                return Err(unauthorized("this token does not reach this profile"));
            }
        }
        Ok(Profile(raw))
    }
}
