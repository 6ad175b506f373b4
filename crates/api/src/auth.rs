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

impl TokenRule {
    /// Whether the token reaches `profile`.
    pub fn reaches(&self, profile: &str) -> bool {
        self.profiles
            .as_ref()
            .is_none_or(|list| list.iter().any(|p| p == profile))
    }

    /// The one profile the token is bound to, if it is bound to exactly one.
    pub fn single_profile(&self) -> Option<&str> {
        match self.profiles.as_deref() {
            Some([only]) => Some(only.as_str()),
            _ => None,
        }
    }
}

fn unauthorized(m: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "Unauthorized", m)
}

/// The `X-Profile-ID` header as the OpenAPI document describes it (every profiled route).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // A schema: utoipa reads the field.
pub(crate) struct ProfileHeader {
    /// The profile: 1–64 of `A-Z a-z 0-9 _ -`; created on first use.
    #[param(rename = "X-Profile-ID", pattern = "^[A-Za-z0-9_-]{1,64}$")]
    x_profile_id: String,
}

/// The configured rule of the request's bearer token: `401` without one or with a wrong one.
/// Every rule is compared, in constant time, without early exit.
pub(crate) fn bearer_rule<'a>(
    parts: &Parts,
    rules: &'a [TokenRule],
) -> Result<&'a TokenRule, ApiError> {
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
    let mut matched: Option<&TokenRule> = None;
    for rule in rules {
        if bool::from(rule.digest.ct_eq(&digest)) && matched.is_none() {
            matched = Some(rule);
        }
    }
    matched.ok_or_else(|| unauthorized("invalid token"))
}

/// The `X-Profile-ID` header, checked: `None` when absent, `400 BadRequest` when malformed.
pub(crate) fn profile_header(parts: &Parts) -> Result<Option<String>, ApiError> {
    let bad = || ApiError::bad_request("X-Profile-ID must be 1-64 of [A-Za-z0-9_-]");
    let Some(raw) = parts.headers.get("x-profile-id") else {
        return Ok(None);
    };
    let raw = raw.to_str().map_err(|_| bad())?.trim().to_owned();
    if !mediajobs_persistence::valid_profile_id(&raw) {
        return Err(bad());
    }
    Ok(Some(raw))
}

/// The caller's profile, checked against the token rules when tokens are configured. A
/// missing or malformed `X-Profile-ID` is `400 BadRequest`.
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
        let raw = profile_header(parts)?
            .ok_or_else(|| ApiError::bad_request("the X-Profile-ID header is required"))?;
        if !st.config.tokens.is_empty() {
            let rule = bearer_rule(parts, &st.config.tokens)?;
            if !rule.reaches(&raw) {
                return Err(unauthorized("this token does not reach this profile"));
            }
        }
        Ok(Profile(raw))
    }
}

/// The profile of a request to the compatible APIs (`/v1/*`, `/asr`, `/detect-language`),
/// whose clients often send no `X-Profile-ID`:
///
/// - an explicit `X-Profile-ID` is honoured as on the native API;
/// - otherwise, with tokens configured, the profile the bearer token is bound to (the OpenAI
///   SDK's API key is that token); a token reaching every profile, or several including the
///   default one, selects the default profile; one reaching several others needs the header;
/// - with no tokens configured, the default profile (`MEDIAJOBS_DEFAULT_PROFILE`).
///
/// With tokens configured, a request without a valid token is refused (`401`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompatProfile(pub String);

impl FromRequestParts<AppState> for CompatProfile {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, ApiError> {
        let explicit = profile_header(parts)?;
        let default = &st.config.default_profile;
        if st.config.tokens.is_empty() {
            return Ok(CompatProfile(explicit.unwrap_or_else(|| default.clone())));
        }
        let rule = bearer_rule(parts, &st.config.tokens)?;
        let profile = match explicit {
            Some(p) if rule.reaches(&p) => p,
            Some(_) => return Err(unauthorized("this token does not reach this profile")),
            None => match rule.single_profile() {
                Some(p) => p.to_owned(),
                None if rule.reaches(default) => default.clone(),
                None => {
                    return Err(ApiError::bad_request(
                        "this token reaches several profiles: send X-Profile-ID",
                    ));
                }
            },
        };
        Ok(CompatProfile(profile))
    }
}
