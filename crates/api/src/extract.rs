//! Extractors that answer with the error envelope instead of axum's plain-text rejections:
//! [`ApiJson`], [`ApiPath`], [`ApiQuery`], and [`OwnedJob`] (a job of the caller's profile).

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use jobs_core::Job;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::AppState;
use crate::auth::Profile;
use crate::error::ApiError;

/// A JSON body; a bad one is a `422 ValidationError` (`413` when unreadable or too large).
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let axum::Json(v) = axum::Json::<T>::from_request(req, state)
            .await
            .map_err(|e: JsonRejection| ApiError::from(e))?;
        Ok(ApiJson(v))
    }
}

/// Path parameters; bad ones are a `422 ValidationError`.
#[derive(Debug, Clone)]
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(v) = Path::<T>::from_request_parts(parts, state)
            .await
            .map_err(|e: PathRejection| ApiError::from(e))?;
        Ok(ApiPath(v))
    }
}

/// A query string; a bad one is a `422 ValidationError`.
#[derive(Debug, Clone)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Query(v) = Query::<T>::from_request_parts(parts, state)
            .await
            .map_err(|e: QueryRejection| ApiError::from(e))?;
        Ok(ApiQuery(v))
    }
}

/// The job named by the `{id}` path parameter, if it belongs to the caller's profile;
/// `404` otherwise (another profile's job is indistinguishable from a missing one).
#[derive(Debug, Clone)]
pub struct OwnedJob(pub Job);

/// The job `id` of `profile`, or `404`.
pub(crate) async fn own_job(st: &AppState, profile: &str, id: Uuid) -> Result<Job, ApiError> {
    match st.manager.store().get_job(id).await? {
        Some(j) if j.profile_id.as_deref() == Some(profile) => Ok(j),
        _ => Err(ApiError::not_found(format!("job {id}"))),
    }
}

impl FromRequestParts<AppState> for OwnedJob {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, ApiError> {
        let Profile(p) = Profile::from_request_parts(parts, st).await?;
        let ApiPath(id) = ApiPath::<Uuid>::from_request_parts(parts, st).await?;
        Ok(OwnedJob(own_job(st, &p, id).await?))
    }
}
