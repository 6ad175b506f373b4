//! Streamed, resumable, verified downloads of model files.
//!
//! A download writes `FILE.partial` beside its target, chunk by chunk as the body arrives
//! (memory stays flat whatever the model's size). When the connection drops it asks again
//! with `Range: bytes=N-` and appends; a `.partial` left by an earlier run is resumed the same
//! way. The bytes are hashed as they are written (a resumed part is hashed from disk first);
//! a file whose checksum does not match is deleted, never renamed into place; a matching one
//! is renamed atomically, so the target either does not exist or is the verified file.

use std::path::Path;
use std::time::Duration;

use futures::StreamExt;
use sha1::Digest as _;
use tokio::io::AsyncWriteExt;

use crate::progress::ProcessorError;

/// The checksum a download must match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checksum<'a> {
    /// Hex SHA-1 (what whisper.cpp publishes).
    Sha1(&'a str),
    /// Hex SHA-256.
    Sha256(&'a str),
}

enum Hasher {
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
}

impl Hasher {
    fn new(c: Checksum<'_>) -> Self {
        match c {
            Checksum::Sha1(_) => Hasher::Sha1(sha1::Sha1::new()),
            Checksum::Sha256(_) => Hasher::Sha256(sha2::Sha256::new()),
        }
    }

    fn update(&mut self, b: &[u8]) {
        match self {
            Hasher::Sha1(h) => h.update(b),
            Hasher::Sha256(h) => h.update(b),
        }
    }

    fn hex(self) -> String {
        match self {
            Hasher::Sha1(h) => hex::encode(h.finalize()),
            Hasher::Sha256(h) => hex::encode(h.finalize()),
        }
    }
}

/// Told how far a download got: `(bytes so far, total bytes if the server said)`.
pub type DownloadProgress<'a> = &'a (dyn Fn(u64, Option<u64>) + Send + Sync);

/// How a download behaves.
#[derive(Debug, Clone)]
pub struct DownloadOptions {
    /// Tries per download (a dropped connection resumes where it stopped).
    pub attempts: u32,
    /// Wait before the first retry (doubled each time).
    pub retry_delay: Duration,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// A read that stalls this long fails the try.
    pub read_timeout: Duration,
}

impl Default for DownloadOptions {
    fn default() -> Self {
        DownloadOptions {
            attempts: 5,
            retry_delay: Duration::from_millis(500),
            connect_timeout: Duration::from_secs(15),
            read_timeout: Duration::from_secs(60),
        }
    }
}

fn failed(url: &str, msg: impl std::fmt::Display) -> ProcessorError {
    ProcessorError::WhisperUnavailable(format!("download of {url} failed: {msg}"))
}

pub use super::partial_path;

/// Why one try stopped.
enum TryError {
    /// Worth another try (connection trouble, 5xx, a short body).
    Transient(String),
    /// Not (404, a checksum mismatch, a local error).
    Fatal(ProcessorError),
}

/// Downloads `url` to `target`, resuming a `.partial` left beside it, and verifies
/// `checksum` before renaming the file into place.
pub async fn download(
    url: &str,
    target: &Path,
    checksum: Checksum<'_>,
    opts: &DownloadOptions,
    progress: DownloadProgress<'_>,
) -> Result<(), ProcessorError> {
    crate::tls::install_crypto();
    let client = reqwest::Client::builder()
        .connect_timeout(opts.connect_timeout)
        .read_timeout(opts.read_timeout)
        .user_agent(concat!("mediajobs/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ProcessorError::Internal(format!("HTTP client: {e}")))?;
    if let Some(dir) = target.parent() {
        tokio::fs::create_dir_all(dir).await?;
    }
    let partial = partial_path(target);
    let mut delay = opts.retry_delay;
    let mut last = String::new();
    for attempt in 1..=opts.attempts.max(1) {
        match try_once(&client, url, &partial, progress).await {
            Ok(()) => {
                let got = hash_file(&partial, checksum).await?;
                let want = match checksum {
                    Checksum::Sha1(h) | Checksum::Sha256(h) => h.to_ascii_lowercase(),
                };
                if got != want {
                    let _ = tokio::fs::remove_file(&partial).await;
                    return Err(failed(
                        url,
                        format!(
                            "checksum mismatch: got {got}, expected {want}; the file was deleted"
                        ),
                    ));
                }
                tokio::fs::File::open(&partial).await?.sync_all().await?;
                tokio::fs::rename(&partial, target).await?;
                return Ok(());
            }
            Err(TryError::Fatal(e)) => return Err(e),
            Err(TryError::Transient(why)) => {
                tracing::warn!(url, attempt, %why, "model download interrupted; resuming");
                last = why;
                if attempt < opts.attempts {
                    tokio::time::sleep(delay).await;
                    delay = delay.saturating_mul(2);
                }
            }
        }
    }
    Err(failed(
        url,
        format!(
            "{last} (after {} tries; run it again to resume)",
            opts.attempts.max(1)
        ),
    ))
}

async fn hash_file(path: &Path, checksum: Checksum<'_>) -> Result<String, ProcessorError> {
    let path = path.to_owned();
    let mut h = Hasher::new(checksum);
    tokio::task::spawn_blocking(move || -> Result<String, ProcessorError> {
        super::read_chunks(&path, |b| h.update(b))?;
        Ok(h.hex())
    })
    .await
    .map_err(|e| ProcessorError::Internal(format!("hash task failed: {e}")))?
}

/// `Content-Range: bytes START-END/TOTAL` → (START, TOTAL).
fn parse_content_range(v: &str) -> Option<(u64, Option<u64>)> {
    let rest = v.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (start, _) = range.split_once('-')?;
    Some((start.trim().parse().ok()?, total.trim().parse().ok()))
}

async fn try_once(
    client: &reqwest::Client,
    url: &str,
    partial: &Path,
    progress: DownloadProgress<'_>,
) -> Result<(), TryError> {
    let fatal = |e: ProcessorError| TryError::Fatal(e);
    let have = match tokio::fs::metadata(partial).await {
        Ok(m) => m.len(),
        Err(_) => 0,
    };
    let mut req = client.get(url);
    if have > 0 {
        req = req.header(reqwest::header::RANGE, format!("bytes={have}-"));
    }
    let resp = req
        .send()
        .await
        .map_err(|e| TryError::Transient(format!("cannot connect: {e}")))?;
    let status = resp.status();
    if status == reqwest::StatusCode::RANGE_NOT_SATISFIABLE && have > 0 {
        // The part is already whole (or longer than the file): let the checksum decide; a
        // mismatch deletes it and the next run starts over.
        return Ok(());
    }
    if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        return Err(TryError::Transient(format!("the server answered {status}")));
    }
    if !status.is_success() {
        return Err(fatal(failed(url, format!("the server answered {status}"))));
    }
    let (append, total) = if status == reqwest::StatusCode::PARTIAL_CONTENT {
        let range = resp
            .headers()
            .get(reqwest::header::CONTENT_RANGE)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_content_range);
        match range {
            Some((start, total)) if start == have => (true, total),
            _ => {
                return Err(fatal(failed(
                    url,
                    "the server resumed at another offset than asked",
                )));
            }
        }
    } else {
        // 200: the whole file (a server that ignores ranges); start over.
        (false, resp.content_length())
    };
    let mut file = tokio::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .open(partial)
        .await
        .map_err(|e| fatal(e.into()))?;
    let mut done = if append { have } else { 0 };
    progress(done, total);
    let mut body = resp.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                file.flush().await.map_err(|e| fatal(e.into()))?;
                return Err(TryError::Transient(format!("the connection dropped: {e}")));
            }
        };
        file.write_all(&chunk).await.map_err(|e| fatal(e.into()))?;
        done += chunk.len() as u64;
        progress(done, total);
    }
    file.flush().await.map_err(|e| fatal(e.into()))?;
    if let Some(t) = total
        && done < t
    {
        return Err(TryError::Transient(format!(
            "the body ended at {done} of {t} bytes"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_content_ranges() {
        assert_eq!(
            parse_content_range("bytes 100-199/200"),
            Some((100, Some(200)))
        );
        assert_eq!(parse_content_range("bytes 5-9/*"), Some((5, None)));
        assert_eq!(parse_content_range("items 1-2/3"), None);
        assert!(partial_path(Path::new("/m/ggml-base.bin")).ends_with("ggml-base.bin.partial"));
    }
}
