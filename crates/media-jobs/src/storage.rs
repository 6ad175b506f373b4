//! The media directory: server-made paths only (no user string ever becomes a path), temp
//! files that clean up after themselves, atomic commits.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;
use uuid::Uuid;

/// Files live at `ROOT/files/<2 hex>/<uuid>`; uploads and job outputs are written under
/// `ROOT/tmp/<node>` first and renamed into place.
#[derive(Debug, Clone)]
pub struct MediaStore {
    root: PathBuf,
    tmp: PathBuf,
}

/// Loose temp files directly in `ROOT/tmp` (written before temp files moved to a directory
/// per node) are removed at start once they are this old: no upload or output in flight on
/// another node is that old.
const LOOSE_TMP_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// A node id as a directory name: `[A-Za-z0-9._-]` kept, anything else `_`; never `.`/`..`.
fn node_dir(node: &str) -> String {
    let s: String = node
        .chars()
        .take(128)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s.chars().all(|c| c == '.') {
        format!("node{}", s.len())
    } else {
        s
    }
}

/// A temporary file removed on drop unless [`TempFile::keep`] was called.
#[derive(Debug)]
pub struct TempFile {
    path: PathBuf,
    keep: bool,
}

impl TempFile {
    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Disarms the clean-up (the file was moved away).
    pub fn keep(mut self) -> PathBuf {
        self.keep = true;
        self.path.clone()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl MediaStore {
    /// Opens (creating) the media dir for node `node` and removes the temp files a crash of
    /// this node left behind. Several nodes may share the directory: each writes its temp
    /// files under `ROOT/tmp/<node>` and cleans only those, so a node starting never deletes
    /// another's upload or output in flight.
    pub fn open(root: impl Into<PathBuf>, node: &str) -> std::io::Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(root.join("files"))?;
        let shared = root.join("tmp");
        let tmp = shared.join(node_dir(node));
        std::fs::create_dir_all(&tmp)?;
        for entry in std::fs::read_dir(&tmp)? {
            let _ = std::fs::remove_file(entry?.path());
        }
        // Loose files of older versions: only once no node can still be writing them.
        for entry in std::fs::read_dir(&shared)? {
            let entry = entry?;
            let Ok(meta) = entry.metadata() else { continue };
            let old = meta
                .modified()
                .ok()
                .and_then(|m| m.elapsed().ok())
                .is_some_and(|age| age > LOOSE_TMP_MAX_AGE);
            if meta.is_file() && old {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(MediaStore { root, tmp })
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A fresh server-made key for a file id.
    pub fn key_for(id: Uuid) -> String {
        let hex = id.simple().to_string();
        format!("files/{}/{hex}", &hex[..2])
    }

    /// The path of a key. Keys are made by [`MediaStore::key_for`]; anything else is refused.
    pub fn path(&self, key: &str) -> Option<PathBuf> {
        let ok = key
            .split('/')
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric()));
        ok.then(|| self.root.join(key))
    }

    /// A new temp file path (not created).
    pub fn temp(&self) -> TempFile {
        TempFile {
            path: self.tmp.join(format!("{}.part", Uuid::new_v4().simple())),
            keep: false,
        }
    }

    /// Moves a temp file to `key`.
    pub async fn commit(&self, tmp: TempFile, key: &str) -> std::io::Result<PathBuf> {
        let dest = self
            .path(key)
            .ok_or_else(|| std::io::Error::other(format!("invalid storage key {key}")))?;
        if let Some(dir) = dest.parent() {
            tokio::fs::create_dir_all(dir).await?;
        }
        tokio::fs::rename(tmp.path(), &dest).await?;
        tmp.keep();
        Ok(dest)
    }

    /// Removes a stored file (missing is fine).
    pub async fn remove(&self, key: &str) {
        if let Some(p) = self.path(key) {
            match tokio::fs::remove_file(&p).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(path = %p.display(), error = %e, "could not remove a media file")
                }
            }
        }
    }
}

/// SHA-256 (hex) and size of a file.
pub async fn hash_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut f = tokio::fs::File::open(path).await?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        size += n as u64;
        h.update(&buf[..n]);
    }
    Ok((hex::encode(h.finalize()), size))
}

/// A display name from a client-supplied one: the last path segment, control characters
/// removed, trimmed, at most 255 characters. `None` when nothing is left.
///
/// ```
/// assert_eq!(mediajobs_jobs::sanitize_name("../../etc/passwd").as_deref(), Some("passwd"));
/// assert_eq!(mediajobs_jobs::sanitize_name("C:\\clips\\talk.mp4").as_deref(), Some("talk.mp4"));
/// assert_eq!(mediajobs_jobs::sanitize_name(" \u{0} ").as_deref(), None);
/// assert_eq!(mediajobs_jobs::sanitize_name("..").as_deref(), None);
/// ```
pub fn sanitize_name(raw: &str) -> Option<String> {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = last.chars().filter(|c| !c.is_control()).take(255).collect();
    let cleaned = cleaned.trim().trim_start_matches('.').trim().to_owned();
    (!cleaned.is_empty()).then_some(cleaned)
}

/// The MIME type of a name's extension, for the kinds mediajobs handles.
pub fn content_type_for(name: &str) -> Option<&'static str> {
    let ext = name.rsplit('.').next()?.to_ascii_lowercase();
    Some(match ext.as_str() {
        "mp4" | "m4v" => "video/mp4",
        "webm" => "video/webm",
        "mkv" => "video/x-matroska",
        "mov" => "video/quicktime",
        "avi" => "video/x-msvideo",
        "mp3" => "audio/mpeg",
        "wav" => "audio/wav",
        "ogg" | "oga" | "opus" => "audio/ogg",
        "m4a" => "audio/mp4",
        "flac" => "audio/flac",
        "aac" => "audio/aac",
        "srt" => "application/x-subrip",
        "vtt" => "text/vtt",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_server_made() {
        let s = MediaStore {
            root: "/m".into(),
            tmp: "/m/tmp/n".into(),
        };
        let k = MediaStore::key_for(Uuid::nil());
        assert_eq!(
            s.path(&k).unwrap(),
            Path::new("/m/files/00/00000000000000000000000000000000")
        );
        assert!(s.path("../etc/passwd").is_none());
        assert!(s.path("files/a b").is_none());
        assert!(s.path("/abs").is_none());
    }

    /// Two nodes on one media directory: a node starting removes its own leftovers only,
    /// never the other's temp files in flight; loose files of older versions go once a day
    /// old.
    #[test]
    fn a_starting_node_cleans_only_its_own_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let a = MediaStore::open(dir.path(), "node-a").unwrap();
        let b = MediaStore::open(dir.path(), "node b/../x").unwrap();
        let (ta, tb) = (a.temp().keep(), b.temp().keep());
        std::fs::write(&ta, b"a").unwrap();
        std::fs::write(&tb, b"b").unwrap();
        assert_ne!(ta.parent(), tb.parent());
        assert!(tb.starts_with(dir.path().join("tmp")), "{}", tb.display());
        let stale = dir.path().join("tmp/old.part");
        let fresh = dir.path().join("tmp/fresh.part");
        std::fs::write(&stale, b"old").unwrap();
        std::fs::write(&fresh, b"new").unwrap();
        let f = std::fs::File::options().write(true).open(&stale).unwrap();
        f.set_modified(std::time::SystemTime::now() - 2 * LOOSE_TMP_MAX_AGE)
            .unwrap();
        drop(f);
        // node-a restarts (a crash left `ta`).
        let _a = MediaStore::open(dir.path(), "node-a").unwrap();
        assert!(!ta.exists(), "its own leftover is removed");
        assert!(tb.exists(), "the other node's file in flight is kept");
        assert!(!stale.exists() && fresh.exists());
        assert_eq!(node_dir(".."), "node2");
        assert_eq!(node_dir(""), "node0");
        assert_eq!(node_dir("vm.example-1"), "vm.example-1");
    }
}
