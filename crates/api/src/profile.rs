//! `/profiles/webhook`: a profile's default completion webhook, used by every submission of
//! the profile that names no `webhook_url` of its own.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::Profile;
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;

/// A profile's default webhook.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileWebhook {
    /// The URL (http/https), or null for none.
    pub url: Option<String>,
}

/// The profile's default webhook.
#[utoipa::path(get, path = "/profiles/webhook", tag = "jobs",
    params(crate::auth::ProfileHeader),
    responses((status = 200, body = ProfileWebhook)))]
pub async fn get_webhook(
    State(st): State<AppState>,
    Profile(p): Profile,
) -> ApiResult<Json<ProfileWebhook>> {
    Ok(Json(ProfileWebhook {
        url: st.services.db.profile_webhook(&p).await?,
    }))
}

/// Sets (or, with `{"url": null}`, clears) the profile's default webhook. Needs the server
/// setting `MEDIAJOBS_WEBHOOK_SECRET`; the URL passes the same policy as a job's.
#[utoipa::path(put, path = "/profiles/webhook", tag = "jobs", request_body = ProfileWebhook,
    params(crate::auth::ProfileHeader),
    responses((status = 200, body = ProfileWebhook), (status = 422, body = crate::views::ErrorEnvelope)))]
pub async fn put_webhook(
    State(st): State<AppState>,
    Profile(p): Profile,
    ApiJson(req): ApiJson<ProfileWebhook>,
) -> ApiResult<Json<ProfileWebhook>> {
    let url = match (req.url, st.config.webhooks.as_ref()) {
        (None, _) => None,
        (Some(_), None) => {
            return Err(ApiError::validation(
                "webhooks need the server setting MEDIAJOBS_WEBHOOK_SECRET",
            ));
        }
        (Some(u), Some(policy)) => Some(
            policy
                .check_url(&u)
                .map_err(|e| ApiError::validation(e.0))?
                .to_string(),
        ),
    };
    st.services
        .db
        .set_profile_webhook(&p, url.as_deref())
        .await?;
    Ok(Json(ProfileWebhook { url }))
}
