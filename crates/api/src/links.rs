//! Signed, expiring links to a file's content: `POST /profiles/files/{id}/link` answers a URL
//! under `/links/{ticket}` that works without headers, for what a browser loads by itself
//! (`<video src>`, `<track src>`, a download link) and cannot send `X-Profile-ID` or a bearer
//! token with. The ticket names the profile, the file and the expiry, and carries an
//! HMAC-SHA256 of them under a key only this server process knows; it grants reading that one
//! file, nothing else, until it expires.

use axum::Json;
use axum::extract::{Request, State};
use axum::response::Response;
use chrono::{DateTime, SecondsFormat, Utc};
use hmac::{Hmac, KeyInit, Mac};
use serde::Serialize;
use sha2::Sha256;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::AppState;
use crate::auth::Profile;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiPath, ApiQuery};
use crate::files::{FormatQuery, serve_content};

/// How long a link works.
pub const LINK_TTL_SECS: i64 = 3600;

/// The key links are signed with: random, made when the server starts (links die with the
/// process that issued them).
#[derive(Clone)]
pub struct LinkKey([u8; 32]);

impl std::fmt::Debug for LinkKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkKey(***)")
    }
}

impl Default for LinkKey {
    fn default() -> Self {
        Self::random()
    }
}

impl LinkKey {
    /// A fresh random key (from the operating system's generator, through `rand`).
    pub fn random() -> Self {
        LinkKey(rand::random())
    }

    fn mac(&self, msg: &str) -> Hmac<Sha256> {
        // HMAC takes a key of any length: this cannot fail.
        let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        m.update(msg.as_bytes());
        m
    }

    /// The ticket for `profile`'s `file` until `expires` (unix seconds).
    pub fn ticket(&self, profile: &str, file: Uuid, expires: i64) -> String {
        let msg = format!("{profile}.{}.{expires}", file.simple());
        let tag = self.mac(&msg).finalize().into_bytes();
        format!("{msg}.{}", hex::encode(&tag[..16]))
    }

    /// Checks a ticket: `(profile, file)` when it is authentic and unexpired at `now`.
    pub fn verify(&self, ticket: &str, now: i64) -> Option<(String, Uuid)> {
        let (msg, tag) = ticket.rsplit_once('.')?;
        let tag = hex::decode(tag).ok()?;
        if tag.len() != 16 {
            return None;
        }
        self.mac(msg).verify_truncated_left(&tag).ok()?;
        let mut parts = msg.split('.');
        let profile = parts.next()?.to_owned();
        let file = Uuid::try_parse(parts.next()?).ok()?;
        let expires: i64 = parts.next()?.parse().ok()?;
        if parts.next().is_some() || expires < now {
            return None;
        }
        Some((profile, file))
    }
}

/// A signed link to a file's content.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FileLink {
    /// Path of the content (relative to the server), usable without headers; `?format=`
    /// converts a subtitle file as on `/profiles/files/{id}/content`.
    pub url: String,
    /// When it stops working (RFC 3339 UTC).
    pub expires_at: String,
}

/// A link to the file's content that works without headers for an hour (for `<video>`,
/// `<track>` and download links in a browser).
#[utoipa::path(post, path = "/profiles/files/{id}/link", tag = "files",
    params(("id" = Uuid, Path), crate::auth::ProfileHeader),
    responses((status = 200, body = FileLink), (status = 404, body = crate::views::ErrorEnvelope)))]
pub async fn create_link(
    State(st): State<AppState>,
    Profile(p): Profile,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<FileLink>> {
    st.services
        .db
        .get_file(&p, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("file {id}")))?;
    let expires = Utc::now().timestamp() + LINK_TTL_SECS;
    let at = DateTime::<Utc>::from_timestamp(expires, 0).unwrap_or_else(Utc::now);
    Ok(Json(FileLink {
        url: format!("/links/{}", st.link_key.ticket(&p, id, expires)),
        expires_at: at.to_rfc3339_opts(SecondsFormat::Secs, true),
    }))
}

/// The content a link names (as `/profiles/files/{id}/content`, `Range` and `?format=`
/// included); `404` for a forged, expired or stale link.
#[utoipa::path(get, path = "/links/{ticket}", tag = "files",
    params(("ticket" = String, Path), FormatQuery),
    responses((status = 200, description = "The bytes (or the converted subtitles)"), (status = 206, description = "A range of the bytes"), (status = 404, body = crate::views::ErrorEnvelope)))]
pub async fn follow_link(
    State(st): State<AppState>,
    ApiPath(ticket): ApiPath<String>,
    ApiQuery(q): ApiQuery<FormatQuery>,
    req: Request,
) -> ApiResult<Response> {
    let (profile, id) = st
        .link_key
        .verify(&ticket, Utc::now().timestamp())
        .ok_or_else(|| ApiError::not_found("link (expired or invalid)"))?;
    serve_content(&st, &profile, id, q, req).await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn tickets_verify_only_unchanged_and_unexpired() {
        let k = LinkKey::random();
        let id = Uuid::new_v4();
        let t = k.ticket("alice", id, 1000);
        assert_eq!(k.verify(&t, 999), Some(("alice".to_owned(), id)));
        assert_eq!(k.verify(&t, 1000), Some(("alice".to_owned(), id)));
        assert_eq!(k.verify(&t, 1001), None, "expired");
        // Another profile, file or expiry under the same tag fails.
        let tag = t.rsplit_once('.').unwrap().1;
        for forged in [
            format!("bob.{}.1000.{tag}", id.simple()),
            format!("alice.{}.1000.{tag}", Uuid::new_v4().simple()),
            format!("alice.{}.9999.{tag}", id.simple()),
            format!("alice.{}.1000", id.simple()),
            "garbage".to_owned(),
            String::new(),
        ] {
            assert_eq!(k.verify(&forged, 0), None, "{forged}");
        }
        assert_eq!(
            LinkKey::random().verify(&t, 0),
            None,
            "another server's key"
        );
    }
}
