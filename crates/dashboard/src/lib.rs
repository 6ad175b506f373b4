//! # mediajobs-dashboard
//!
//! The web dashboard of mediajobs: one HTML page, one stylesheet and one script, written by
//! hand (no framework, no build step, no Node), embedded in the binary at compile time and
//! served at `/` by [`router`]. The page talks to the same HTTP API as every other client:
//! it lists and follows jobs over `GET /jobs/events` (SSE, read with `fetch` so the profile
//! and token headers go along), uploads with progress, submits every job type with a form
//! built from the options schemas in `/openapi.json`, previews subtitles on the video through
//! signed file links, and shows what `GET /server` reports. Why this technique:
//! `docs/adr/014-dashboard-technique.md`.
//!
//! Every response carries a strict Content-Security-Policy: the page loads nothing that the
//! binary does not serve, runs no inline script and connects only to its own origin.
//!
//! ```
//! let app: axum::Router = mediajobs_dashboard::router();
//! # let _ = app;
//! ```

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

/// The Content-Security-Policy of the dashboard's responses: scripts, styles, media and
/// connections from this origin only (media may also be `blob:`), no framing, no plugins.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
style-src 'self'; img-src 'self' data:; media-src 'self' blob:; connect-src 'self'; \
base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The page.
pub const INDEX_HTML: &str = include_str!("../assets/index.html");
/// The script.
pub const APP_JS: &str = include_str!("../assets/app.js");
/// The stylesheet.
pub const APP_CSS: &str = include_str!("../assets/app.css");
/// The icon.
pub const ICON_SVG: &str = include_str!("../assets/icon.svg");

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // Assets change with the binary: revalidate rather than keep an old script.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// The dashboard's routes: `/` (the page), `/ui/` (the same page), `/ui/app.js`,
/// `/ui/app.css`, `/ui/icon.svg`, and `/favicon.ico` (to the icon). Merge it into an API
/// router; it needs no state.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }),
        )
        .route(
            "/ui/",
            get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }),
        )
        .route(
            "/ui/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/ui/app.css",
            get(|| async { asset("text/css; charset=utf-8", APP_CSS) }),
        )
        .route(
            "/ui/icon.svg",
            get(|| async { asset("image/svg+xml", ICON_SVG) }),
        )
        .route(
            "/favicon.ico",
            get(|| async { Redirect::permanent("/ui/icon.svg") }),
        )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_its_own_assets() {
        // No external origin anywhere in what the browser loads.
        for (name, text) in [
            ("index.html", INDEX_HTML),
            ("app.js", APP_JS),
            ("app.css", APP_CSS),
        ] {
            for bad in ["http://", "https://", "//cdn", "<script>"] {
                assert!(!text.contains(bad), "{name} contains {bad}");
            }
        }
        assert!(INDEX_HTML.contains(r#"<script src="/ui/app.js" type="module"></script>"#));
        assert!(
            !INDEX_HTML.contains(" style="),
            "no inline style attributes under the CSP"
        );
        for handler in ["onclick=", "onload=", "onsubmit=", "onchange=", "oninput="] {
            assert!(
                !INDEX_HTML.contains(handler),
                "no inline handlers under the CSP"
            );
        }
    }
}
