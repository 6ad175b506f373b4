//! `/profiles/files` and `/profiles/transcripts`.

use axum::Json;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use mediajobs_jobs::{Upload, sanitize_name};
use mediajobs_persistence::{FileFilter, FileKind, FileOrigin, FileRecord, Page};
use mediajobs_processor::subtitle::{Segment, SegmentOptions, SubtitleFormat, parse_any, segment};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tower::ServiceExt;
use utoipa::IntoParams;
use uuid::Uuid;

use crate::AppState;
use crate::auth::Profile;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiPath, ApiQuery};
use crate::views::{FileDeleted, FileView, TranscriptView};

/// Query of `POST /profiles/files`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UploadQuery {
    /// Expected kind: `video`, `audio` or `subtitle` (checked against the content).
    #[serde(rename = "type")]
    #[param(pattern = "^(video|audio|subtitle)$")]
    pub kind: Option<String>,
    /// A folder label (1–128 printable characters).
    pub folder: Option<String>,
}

fn file_name_header(headers: &HeaderMap) -> Result<String, ApiError> {
    let raw = headers
        .get("x-file-name")
        .ok_or_else(|| ApiError::bad_request("the X-File-Name header is required"))?;
    let text = String::from_utf8_lossy(raw.as_bytes());
    // Percent-encoded names (for non-ASCII) are accepted too.
    let decoded = percent_decode(&text);
    sanitize_name(&decoded)
        .ok_or_else(|| ApiError::bad_request("X-File-Name is empty after sanitizing"))
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Some(v) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn check_folder(f: Option<String>) -> Result<Option<String>, ApiError> {
    match f {
        None => Ok(None),
        Some(f) => {
            let f = f.trim().to_owned();
            if f.is_empty() || f.chars().count() > 128 || f.chars().any(char::is_control) {
                return Err(ApiError::validation(
                    "folder must be 1-128 printable characters",
                ));
            }
            Ok(Some(f))
        }
    }
}

/// Uploads a file: the raw body (named by `X-File-Name`), or a `multipart/form-data` body's
/// `file` part (named by its file name), streamed to disk (never held in memory), hashed on
/// the way.
#[utoipa::path(
    post, path = "/profiles/files", tag = "files",
    params(UploadQuery, crate::auth::ProfileHeader, ("X-File-Name" = Option<String>, Header, description = "File name (required for a raw body)")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The raw bytes (with X-File-Name), or multipart/form-data with a `file` part (named by its filename)"),
    responses((status = 201, body = FileView), (status = 413, body = crate::views::ErrorEnvelope), (status = 422, body = crate::views::ErrorEnvelope))
)]
pub async fn upload(
    State(st): State<AppState>,
    Profile(profile): Profile,
    ApiQuery(q): ApiQuery<UploadQuery>,
    req: Request,
) -> ApiResult<(StatusCode, Json<FileView>)> {
    let headers = req.headers().clone();
    let multipart = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("multipart/form-data")
        });
    let name = if multipart && headers.get("x-file-name").is_none() {
        None
    } else {
        Some(file_name_header(&headers)?)
    };
    let folder = check_folder(q.folder)?;
    let want = match q.kind.as_deref() {
        None => None,
        Some("video") => Some(FileKind::Video),
        Some("audio") => Some(FileKind::Audio),
        Some("subtitle") => Some(FileKind::Subtitle),
        Some(other) => {
            return Err(ApiError::validation(format!(
                "type must be video, audio or subtitle, got '{other}'"
            )));
        }
    };
    let max = st.config.max_upload_bytes;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PayloadTooLarge",
            format!("uploads are limited to {max} bytes"),
        )
    };
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && len > max
    {
        return Err(too_large());
    }
    if multipart {
        // `curl -F file=@talk.mp4`: the part named `file`, streamed to disk under the same
        // limit; its file name names the file unless X-File-Name does.
        let form = crate::compat::read_form(&st, req, "file", "upload").await?;
        let received = form
            .file
            .ok_or_else(|| ApiError::bad_request("the multipart form has no 'file' part"))?;
        let upload = Upload {
            name: name.unwrap_or(received.name),
            tmp: received.tmp,
            digest: received.digest,
            expect: want,
            media_only: false,
            folder,
        };
        let rec = st.services.ingest_upload(&profile, upload).await?;
        st.metrics.uploads.inc();
        return Ok((StatusCode::CREATED, Json(FileView::from(&rec))));
    }
    let name = name.ok_or_else(|| ApiError::bad_request("the X-File-Name header is required"))?;
    let body = req.into_body();
    let tmp = st.services.media.temp();
    let mut file = tokio::fs::File::create(tmp.path())
        .await
        .map_err(ApiError::storage)?;
    let mut hasher = Sha256::new();
    let mut size: u64 = 0;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| ApiError::validation("the upload was interrupted"))?;
        size += chunk.len() as u64;
        if size > max {
            return Err(too_large());
        }
        hasher.update(&chunk);
        file.write_all(&chunk).await.map_err(ApiError::storage)?;
    }
    file.flush().await.map_err(ApiError::storage)?;
    file.sync_data().await.map_err(ApiError::storage)?;
    drop(file);
    let upload = Upload {
        tmp,
        digest: (hex::encode(hasher.finalize()), size),
        name,
        expect: want,
        media_only: false,
        folder,
    };
    let rec = st.services.ingest_upload(&profile, upload).await?;
    st.metrics.uploads.inc();
    Ok((StatusCode::CREATED, Json(FileView::from(&rec))))
}

/// Query of `GET /profiles/files`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct FileListQuery {
    /// Only this kind.
    #[param(inline)]
    pub kind: Option<KindParam>,
    /// Only this origin.
    #[param(inline)]
    pub origin: Option<OriginParam>,
    /// Only files made from this file (a job's outputs of it).
    pub source_file_id: Option<Uuid>,
    /// At most this many (1–1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    /// Only files older than this file (keyset pagination: the last id of the previous page).
    pub before: Option<Uuid>,
}

/// A file kind filter.
#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum KindParam {
    /// Has a video stream.
    Video,
    /// Audio only.
    Audio,
    /// SRT/VTT subtitles.
    Subtitle,
}

/// A file origin filter.
#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OriginParam {
    /// Uploaded by a client.
    Uploaded,
    /// An SRT made by `generate_srt`.
    Generated,
    /// An MP4 made by `convert`.
    Converted,
    /// An SRT made by `fix_srt`.
    Fixed,
}

fn page(limit: Option<usize>, before: Option<Uuid>) -> ApiResult<Page> {
    let limit = limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::validation("limit must be 1-1000"));
    }
    Ok(Page { limit, before })
}

/// The profile's files, newest first, a page at a time (`limit`, then `before` = the last id
/// of the page), filtered by kind, origin or source file.
#[utoipa::path(get, path = "/profiles/files", tag = "files",
    params(FileListQuery, crate::auth::ProfileHeader),
    responses((status = 200, body = Vec<FileView>), (status = 422, body = crate::views::ErrorEnvelope)))]
pub async fn list_files(
    State(st): State<AppState>,
    Profile(p): Profile,
    ApiQuery(q): ApiQuery<FileListQuery>,
) -> ApiResult<Json<Vec<FileView>>> {
    let filter = FileFilter {
        kind: q.kind.map(|k| match k {
            KindParam::Video => FileKind::Video,
            KindParam::Audio => FileKind::Audio,
            KindParam::Subtitle => FileKind::Subtitle,
        }),
        origin: q.origin.map(|o| match o {
            OriginParam::Uploaded => FileOrigin::Uploaded,
            OriginParam::Generated => FileOrigin::Generated,
            OriginParam::Converted => FileOrigin::Converted,
            OriginParam::Fixed => FileOrigin::Fixed,
        }),
        source_file_id: q.source_file_id,
    };
    let files = st
        .services
        .db
        .list_files(&p, &filter, page(q.limit, q.before)?)
        .await?;
    Ok(Json(files.iter().map(FileView::from).collect()))
}

async fn find_file(st: &AppState, profile: &str, id: Uuid) -> ApiResult<FileRecord> {
    st.services
        .db
        .get_file(profile, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("file {id}")))
}

/// One file.
#[utoipa::path(get, path = "/profiles/files/{id}", tag = "files",
    params(("id" = Uuid, Path), crate::auth::ProfileHeader),
    responses((status = 200, body = FileView), (status = 404, body = crate::views::ErrorEnvelope)))]
pub async fn get_file(
    State(st): State<AppState>,
    Profile(p): Profile,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<FileView>> {
    Ok(Json(FileView::from(&find_file(&st, &p, id).await?)))
}

fn disposition(name: &str) -> String {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

/// `?format=` of the subtitle and transcript reads.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct FormatQuery {
    /// `srt`, `vtt`, `txt`, `tsv` or `json`: the document converted to that format.
    #[param(pattern = "^(srt|vtt|txt|tsv|json)$")]
    pub format: Option<String>,
}

fn parse_format(f: Option<&str>) -> ApiResult<Option<SubtitleFormat>> {
    match f.map(str::trim).filter(|f| !f.is_empty()) {
        None => Ok(None),
        Some(f) => SubtitleFormat::parse(f).map(Some).ok_or_else(|| {
            ApiError::validation(format!(
                "format must be srt, vtt, txt, tsv or json, got '{f}'"
            ))
        }),
    }
}

fn document(fmt: SubtitleFormat, cues: &[mediajobs_processor::subtitle::Cue]) -> Response {
    (
        [(header::CONTENT_TYPE, fmt.content_type())],
        fmt.render(cues),
    )
        .into_response()
}

/// The file's bytes, streamed, with `Range` support; for a subtitle file, `?format=` converts
/// it on the fly (`srt`, `vtt`, `txt`, `tsv`, `json`).
#[utoipa::path(get, path = "/profiles/files/{id}/content", tag = "files",
    params(("id" = Uuid, Path), FormatQuery, crate::auth::ProfileHeader),
    responses((status = 200, description = "The bytes (or the converted subtitles)"), (status = 206, description = "A range of the bytes"), (status = 404, body = crate::views::ErrorEnvelope), (status = 422, body = crate::views::ErrorEnvelope)))]
pub async fn file_content(
    State(st): State<AppState>,
    Profile(p): Profile,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(q): ApiQuery<FormatQuery>,
    req: Request,
) -> ApiResult<Response> {
    serve_content(&st, &p, id, q, req).await
}

/// The content of `profile`'s file `id` (what `/profiles/files/{id}/content` and a signed
/// link answer).
pub(crate) async fn serve_content(
    st: &AppState,
    p: &str,
    id: Uuid,
    q: FormatQuery,
    req: Request,
) -> ApiResult<Response> {
    let format = parse_format(q.format.as_deref())?;
    let rec = find_file(st, p, id).await?;
    if let Some(fmt) = format {
        if rec.kind != FileKind::Subtitle {
            return Err(ApiError::coded(
                jobs_core::ErrorCode::WrongFileKind,
                format!(
                    "format= converts subtitle files; file {id} is {}",
                    rec.kind.as_str()
                ),
            ));
        }
        let path = st.services.file_path(&rec)?;
        let bytes = tokio::fs::read(&path).await.map_err(ApiError::storage)?;
        let text = String::from_utf8_lossy(&bytes);
        // A blank file is a document without cues (what `generate_srt` saves for silence).
        let cues = if text.trim().is_empty() {
            Vec::new()
        } else {
            parse_any(&text).map_err(|e| {
                ApiError::validation(format!("file {id} is not a valid SRT/VTT file: {e}"))
            })?
        };
        return Ok(document(fmt, &cues));
    }
    let file_path = st
        .services
        .media
        .path(&rec.storage_key)
        .ok_or_else(|| ApiError::storage("bad storage key"))?;
    if !file_path.is_file() {
        return Err(ApiError::storage(format!(
            "missing media file {}",
            file_path.display()
        )));
    }
    let resp = tower_http::services::ServeFile::new(&file_path)
        .oneshot(req)
        .await
        .map_err(ApiError::internal)?;
    let (mut parts, body) = resp.into_parts();
    if parts.status.is_success() {
        let ct = rec
            .content_type
            .as_deref()
            .unwrap_or("application/octet-stream");
        if let Ok(v) = HeaderValue::from_str(ct) {
            parts.headers.insert(header::CONTENT_TYPE, v);
        }
        if let Ok(v) = HeaderValue::from_str(&disposition(&rec.name)) {
            parts.headers.insert(header::CONTENT_DISPOSITION, v);
        }
        parts
            .headers
            .insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    } else if parts.status == StatusCode::RANGE_NOT_SATISFIABLE {
        return Err(ApiError::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "ValidationError",
            "the requested range is not satisfiable",
        ));
    }
    Ok(Response::from_parts(parts, Body::new(body)).into_response())
}

/// Deletes a file and the jobs that use it; `409` while a running job uses it.
#[utoipa::path(delete, path = "/profiles/files/{id}", tag = "files",
    params(("id" = Uuid, Path), crate::auth::ProfileHeader),
    responses((status = 200, body = FileDeleted), (status = 404, body = crate::views::ErrorEnvelope), (status = 409, body = crate::views::ErrorEnvelope)))]
pub async fn delete_file(
    State(st): State<AppState>,
    Profile(p): Profile,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<FileDeleted>> {
    let del = st.services.db.delete_file(&p, id).await?;
    st.services.media.remove(&del.file.storage_key).await;
    Ok(Json(FileDeleted {
        success: true,
        deleted_job_ids: del.deleted_job_ids,
    }))
}

/// Query of `GET /profiles/transcripts`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TranscriptListQuery {
    /// Only transcripts of this file.
    pub file_id: Option<Uuid>,
    /// At most this many (1–1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    /// Only transcripts older than this one (keyset pagination).
    pub before: Option<Uuid>,
}

/// The profile's transcripts, newest first, a page at a time like `GET /profiles/files`.
#[utoipa::path(get, path = "/profiles/transcripts", tag = "transcripts",
    params(TranscriptListQuery, crate::auth::ProfileHeader),
    responses((status = 200, body = Vec<TranscriptView>), (status = 422, body = crate::views::ErrorEnvelope)))]
pub async fn list_transcripts(
    State(st): State<AppState>,
    Profile(p): Profile,
    ApiQuery(q): ApiQuery<TranscriptListQuery>,
) -> ApiResult<Json<Vec<TranscriptView>>> {
    let list = st
        .services
        .db
        .list_transcripts(&p, q.file_id, page(q.limit, q.before)?)
        .await?;
    Ok(Json(list.iter().map(TranscriptView::from).collect()))
}

/// One transcript; `?format=srt|vtt|txt|tsv` renders it as a document (its segments cut into
/// subtitle-grade cues), `json` (or no format) is the transcript object.
#[utoipa::path(get, path = "/profiles/transcripts/{id}", tag = "transcripts",
    params(("id" = Uuid, Path), FormatQuery, crate::auth::ProfileHeader),
    responses((status = 200, body = TranscriptView), (status = 404, body = crate::views::ErrorEnvelope), (status = 422, body = crate::views::ErrorEnvelope)))]
pub async fn get_transcript(
    State(st): State<AppState>,
    Profile(p): Profile,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(q): ApiQuery<FormatQuery>,
) -> ApiResult<Response> {
    let format = parse_format(q.format.as_deref())?;
    let t = st
        .services
        .db
        .get_transcript(&p, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("transcript {id}")))?;
    match format {
        None | Some(SubtitleFormat::Json) => Ok(Json(TranscriptView::from(&t)).into_response()),
        Some(fmt) => {
            let segs: Vec<Segment> = serde_json::from_value(t.segments.clone())
                .map_err(|e| ApiError::internal(format!("stored segments: {e}")))?;
            Ok(document(fmt, &segment(&segs, &SegmentOptions::default())))
        }
    }
}

/// Deletes a transcript.
#[utoipa::path(delete, path = "/profiles/transcripts/{id}", tag = "transcripts",
    params(("id" = Uuid, Path), crate::auth::ProfileHeader),
    responses((status = 200, description = "Deleted"), (status = 404, body = crate::views::ErrorEnvelope)))]
pub async fn delete_transcript(
    State(st): State<AppState>,
    Profile(p): Profile,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<serde_json::Value>> {
    st.services.db.delete_transcript(&p, id).await?;
    Ok(Json(serde_json::json!({ "success": true })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_dispositions() {
        assert_eq!(percent_decode("caf%C3%A9.mp4"), "café.mp4");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(
            disposition("a\"b.srt"),
            "attachment; filename=\"a_b.srt\"; filename*=UTF-8''a%22b.srt"
        );
    }
}
