//! Silero VAD for whisper.cpp: the weights from the `silero-vad` PyPI package, converted in
//! Rust to the GGML file whisper.cpp's voice activity detector loads.
//!
//! The package ships the 16 kHz model as `silero_vad_16k.safetensors` (plain float32
//! tensors: the STFT basis, four convolutions, an LSTM cell, the output convolution).
//! whisper.cpp's loader (`whisper_vad_init_with_params`) wants a GGML file: a header (model
//! type, version, window, context, the encoder's channels and kernels, the LSTM sizes), then
//! each tensor under its PyTorch name (`_model.encoder.0.reparam_conv.weight`, …) with its
//! dimensions reversed, the convolution kernels and the STFT basis in float16, the rest in
//! float32. The wheel, the tensor file inside it and the file we write are all pinned by
//! SHA-256 (the conversion is deterministic).

use std::io::Read;
use std::path::{Path, PathBuf};

use half::f16;
use safetensors::{Dtype, SafeTensors};

use super::{Pinned, lock_dir, pip_download, sha256_hex, unavailable, write_atomically};
use crate::progress::ProcessorError;

/// The `silero-vad` wheel the weights come from.
pub const SILERO_VAD_WHEEL: Pinned = Pinned {
    package: "silero-vad",
    version: "6.2.3",
    file: "silero_vad-6.2.3-py3-none-any.whl",
    sha256: "7b7f5436cfcb02fae583a05b512ea96467fd449fe54cb49a5e4f06c51a1e43b8",
};

/// The 16 kHz weights inside the wheel.
const INNER: &str = "silero_vad/data/silero_vad_16k.safetensors";
const INNER_SHA256: &str = "c59271c284ae9c8335d795d60e0bfdb71aaaceec578d9bd9ffc1b8153c319ea1";

/// SHA-256 and size of the GGML file [`convert`] makes from them.
const GGML_SHA256: &str = "ca3eb9c9a458d95dc7cf0c720f142ec52e513490b12c3f53c4a2df9c3ce13f56";
const GGML_SIZE: u64 = 885_106;

/// The name of the VAD model [`ensure_vad_model`] installs (`ggml-silero-v6.2.3.bin`);
/// `mediajobs model fetch silero-vad` fetches it.
pub const VAD_MODEL: &str = "silero-v6.2.3";

/// The name `model fetch` takes for the VAD model.
pub const VAD_FETCH_NAME: &str = "silero-vad";

/// `true` for the names of VAD models (`silero-v6.2.3`, whisper.cpp's own
/// `silero-v5.1.2`): such `ggml-*.bin` files are not whisper models.
pub fn is_vad_name(name: &str) -> bool {
    name.starts_with("silero")
}

/// What a VAD model file's header says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VadInfo {
    /// `silero-16k`.
    pub model_type: String,
    /// `6.2.3`.
    pub version: String,
    /// Samples per probability (512 at 16 kHz: 32 ms).
    pub window: u32,
}

/// Reads the header of a whisper.cpp VAD model file.
pub fn read_vad_info(path: &Path) -> Result<VadInfo, ProcessorError> {
    let bad = |m: &str| unavailable(format!("{} is not a VAD model: {m}", path.display()));
    let mut f = std::fs::File::open(path)
        .map_err(|e| unavailable(format!("cannot open {}: {e}", path.display())))?;
    let mut head = [0u8; 256];
    let n = f.read(&mut head)?;
    let head = &head[..n];
    let word = |i: usize| -> Option<i32> {
        head.get(i..i + 4)
            .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    if word(0) != Some(GGML_MAGIC) {
        return Err(bad("bad magic"));
    }
    let len = word(4)
        .and_then(|l| usize::try_from(l).ok())
        .filter(|l| (1..=64).contains(l))
        .ok_or_else(|| bad("bad type string"))?;
    let model_type = head
        .get(8..8 + len)
        .and_then(|b| std::str::from_utf8(b).ok())
        .ok_or_else(|| bad("bad type string"))?
        .to_owned();
    if !model_type.starts_with("silero") {
        return Err(bad("not a Silero model"));
    }
    let at = 8 + len;
    let (Some(major), Some(minor), Some(patch), Some(window)) =
        (word(at), word(at + 4), word(at + 8), word(at + 12))
    else {
        return Err(bad("truncated header"));
    };
    Ok(VadInfo {
        model_type,
        version: format!("{major}.{minor}.{patch}"),
        window: u32::try_from(window).map_err(|_| bad("bad window"))?,
    })
}

/// An installed VAD model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledVad {
    /// `silero-v6.2.3`.
    pub name: String,
    /// The file.
    pub path: PathBuf,
    /// Its size in bytes.
    pub size_bytes: u64,
    /// Its header.
    pub info: VadInfo,
}

/// Every VAD model (`ggml-silero*.bin` whose header reads) of a model directory, by name.
pub fn installed_vad(dir: &Path) -> Vec<InstalledVad> {
    super::scan(dir, is_vad_name, read_vad_info)
        .into_iter()
        .map(|(name, path, size_bytes, info)| InstalledVad {
            name,
            path,
            size_bytes,
            info,
        })
        .collect()
}

/// The VAD model transcriptions use: [`VAD_MODEL`] when installed, else the last (by name)
/// other VAD model of the directory (whisper.cpp's own `ggml-silero-v5.1.2.bin` placed there
/// counts), else none.
pub fn resolve_vad(dir: &Path) -> Option<InstalledVad> {
    let mut all = installed_vad(dir);
    match all.iter().position(|v| v.name == VAD_MODEL) {
        Some(i) => Some(all.swap_remove(i)),
        None => all.pop(),
    }
}

const GGML_MAGIC: i32 = 0x6767_6d6c;
const TYPE_F32: i32 = 0;
const TYPE_F16: i32 = 1;

/// One tensor of the conversion: its name in the package, its name for whisper.cpp, the
/// shape it must have, whether it is stored as float16, and the shape to write (PyTorch
/// order; written reversed, as ggml counts dimensions).
struct TensorMap {
    from: &'static str,
    to: &'static str,
    shape: &'static [usize],
    f16: bool,
    write_shape: &'static [usize],
}

const fn t(from: &'static str, to: &'static str, shape: &'static [usize], f16: bool) -> TensorMap {
    TensorMap {
        from,
        to,
        shape,
        f16,
        write_shape: shape,
    }
}

const TENSORS: &[TensorMap] = &[
    t(
        "stft_conv.weight",
        "_model.stft.forward_basis_buffer",
        &[258, 1, 256],
        true,
    ),
    t(
        "conv1.weight",
        "_model.encoder.0.reparam_conv.weight",
        &[128, 129, 3],
        true,
    ),
    t(
        "conv1.bias",
        "_model.encoder.0.reparam_conv.bias",
        &[128],
        false,
    ),
    t(
        "conv2.weight",
        "_model.encoder.1.reparam_conv.weight",
        &[64, 128, 3],
        true,
    ),
    t(
        "conv2.bias",
        "_model.encoder.1.reparam_conv.bias",
        &[64],
        false,
    ),
    t(
        "conv3.weight",
        "_model.encoder.2.reparam_conv.weight",
        &[64, 64, 3],
        true,
    ),
    t(
        "conv3.bias",
        "_model.encoder.2.reparam_conv.bias",
        &[64],
        false,
    ),
    t(
        "conv4.weight",
        "_model.encoder.3.reparam_conv.weight",
        &[128, 64, 3],
        true,
    ),
    t(
        "conv4.bias",
        "_model.encoder.3.reparam_conv.bias",
        &[128],
        false,
    ),
    // PyTorch's LSTM cell orders its gates input, forget, cell, output: the order
    // whisper.cpp's graph slices them in, so the matrices go over unchanged.
    t(
        "lstm_cell.weight_ih",
        "_model.decoder.rnn.weight_ih",
        &[512, 128],
        false,
    ),
    t(
        "lstm_cell.weight_hh",
        "_model.decoder.rnn.weight_hh",
        &[512, 128],
        false,
    ),
    t(
        "lstm_cell.bias_ih",
        "_model.decoder.rnn.bias_ih",
        &[512],
        false,
    ),
    t(
        "lstm_cell.bias_hh",
        "_model.decoder.rnn.bias_hh",
        &[512],
        false,
    ),
    // A 1×1 convolution from 128 channels to one: whisper.cpp keeps it as a [128, 1] kernel.
    TensorMap {
        from: "final_conv.weight",
        to: "_model.decoder.decoder.2.weight",
        shape: &[1, 128, 1],
        f16: true,
        write_shape: &[1, 128],
    },
    t(
        "final_conv.bias",
        "_model.decoder.decoder.2.bias",
        &[1],
        false,
    ),
];

/// Converts Silero's 16 kHz safetensors weights to whisper.cpp's GGML VAD format.
pub fn convert(safetensors: &[u8], version: &str) -> Result<Vec<u8>, ProcessorError> {
    let st = SafeTensors::deserialize(safetensors)
        .map_err(|e| unavailable(format!("bad safetensors file: {e}")))?;
    let mut parts = version.split('.').map(str::parse::<i32>);
    let (Some(Ok(major)), Some(Ok(minor)), Some(Ok(patch)), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ProcessorError::Validation(format!(
            "version must be MAJOR.MINOR.PATCH, got '{version}'"
        )));
    };
    let mut out = Vec::with_capacity(safetensors.len() / 2 + 1024);
    let put = |out: &mut Vec<u8>, v: i32| out.extend_from_slice(&v.to_le_bytes());
    let dim = |v: usize| i32::try_from(v).map_err(|_| unavailable("a dimension is too large"));
    put(&mut out, GGML_MAGIC);
    let model_type = b"silero-16k";
    put(&mut out, dim(model_type.len())?);
    out.extend_from_slice(model_type);
    for v in [major, minor, patch] {
        put(&mut out, v);
    }
    // Window (samples per probability) and context, as whisper.cpp's graph expects them.
    put(&mut out, 512);
    put(&mut out, 64);
    // The encoder: four convolutions, (in channels, out channels, kernel) each.
    let encoder: Vec<&TensorMap> = TENSORS
        .iter()
        .filter(|m| m.to.starts_with("_model.encoder.") && m.to.ends_with(".weight"))
        .collect();
    put(&mut out, dim(encoder.len())?);
    for m in &encoder {
        put(&mut out, dim(m.shape[1])?);
        put(&mut out, dim(m.shape[0])?);
        put(&mut out, dim(m.shape[2])?);
    }
    // LSTM input and hidden size; the output convolution's in and out channels.
    for v in [128, 128, 128, 1] {
        put(&mut out, v);
    }
    for m in TENSORS {
        let view = st
            .tensor(m.from)
            .map_err(|e| unavailable(format!("tensor {}: {e}", m.from)))?;
        if view.dtype() != Dtype::F32 || view.shape() != m.shape {
            return Err(unavailable(format!(
                "tensor {} is {:?} {:?}, expected F32 {:?}",
                m.from,
                view.dtype(),
                view.shape(),
                m.shape
            )));
        }
        put(&mut out, dim(m.write_shape.len())?);
        put(&mut out, dim(m.to.len())?);
        put(&mut out, if m.f16 { TYPE_F16 } else { TYPE_F32 });
        for d in m.write_shape.iter().rev() {
            put(&mut out, dim(*d)?);
        }
        out.extend_from_slice(m.to.as_bytes());
        for c in view.data().chunks_exact(4) {
            let v = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            if m.f16 {
                out.extend_from_slice(&f16::from_f32(v).to_le_bytes());
            } else {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
    }
    Ok(out)
}

/// Makes sure the pinned Silero VAD model is in `models_dir` (as `ggml-silero-v6.2.3.bin`),
/// fetching the `silero-vad` wheel with pip and converting it if needed. The wheel is kept in
/// `models_dir/.downloads`.
pub async fn ensure_vad_model(models_dir: &Path) -> Result<PathBuf, ProcessorError> {
    let target = super::model_path(models_dir, VAD_MODEL);
    if target.is_file() && std::fs::metadata(&target)?.len() == GGML_SIZE {
        return Ok(target);
    }
    let lock = lock_dir(models_dir).await?;
    let result = ensure_locked(models_dir, target).await;
    drop(lock);
    result
}

async fn ensure_locked(models_dir: &Path, target: PathBuf) -> Result<PathBuf, ProcessorError> {
    if target.is_file() && std::fs::metadata(&target)?.len() == GGML_SIZE {
        return Ok(target);
    }
    let downloads = models_dir.join(".downloads");
    pip_download(&downloads, &[SILERO_VAD_WHEEL]).await?;
    let wheel = downloads.join(SILERO_VAD_WHEEL.file);
    let target2 = target.clone();
    tokio::task::spawn_blocking(move || -> Result<(), ProcessorError> {
        let f = std::fs::File::open(&wheel)?;
        let mut z = zip::ZipArchive::new(f)
            .map_err(|e| unavailable(format!("{}: {e}", SILERO_VAD_WHEEL.file)))?;
        let mut bytes = Vec::new();
        z.by_name(INNER)
            .map_err(|e| unavailable(format!("{}: {INNER}: {e}", SILERO_VAD_WHEEL.file)))?
            .read_to_end(&mut bytes)?;
        let got = sha256_hex(&bytes);
        if got != INNER_SHA256 {
            return Err(unavailable(format!(
                "{INNER} has SHA-256 {got}, expected {INNER_SHA256}"
            )));
        }
        let ggml = convert(&bytes, SILERO_VAD_WHEEL.version)?;
        let sha = sha256_hex(&ggml);
        if ggml.len() as u64 != GGML_SIZE || sha != GGML_SHA256 {
            return Err(unavailable(format!(
                "the converted VAD model ({} bytes, SHA-256 {sha}) is not the expected one ({GGML_SIZE} bytes, {GGML_SHA256})",
                ggml.len()
            )));
        }
        write_atomically(&target2, &ggml)?;
        tracing::info!(path = %target2.display(), sha256 = %sha, "VAD model ready");
        Ok(())
    })
    .await
    .map_err(|e| ProcessorError::Internal(format!("VAD conversion task failed: {e}")))??;
    Ok(target)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A safetensors file with every tensor Silero has, filled with `fill`.
    fn fake(fill: f32, skip: Option<&str>) -> Vec<u8> {
        let data: Vec<(String, Vec<usize>, Vec<u8>)> = TENSORS
            .iter()
            .filter(|m| Some(m.from) != skip)
            .map(|m| {
                let n: usize = m.shape.iter().product();
                let bytes = (0..n).flat_map(|_| fill.to_le_bytes()).collect();
                (m.from.to_owned(), m.shape.to_vec(), bytes)
            })
            .collect();
        let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = data
            .iter()
            .map(|(n, s, b)| {
                (
                    n.clone(),
                    safetensors::tensor::TensorView::new(Dtype::F32, s.clone(), b).unwrap(),
                )
            })
            .collect();
        safetensors::serialize(views, None).unwrap()
    }

    #[test]
    fn writes_the_header_and_tensors_whisper_cpp_reads() {
        let out = convert(&fake(0.5, None), "6.2.3").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ggml-silero-v6.2.3.bin");
        std::fs::write(&path, &out).unwrap();
        let info = read_vad_info(&path).unwrap();
        assert_eq!(info.model_type, "silero-16k");
        assert_eq!(info.version, "6.2.3");
        assert_eq!(info.window, 512);
        // Every tensor name is there, followed by its data.
        for m in TENSORS {
            let at = out
                .windows(m.to.len())
                .position(|w| w == m.to.as_bytes())
                .unwrap_or_else(|| panic!("{} missing", m.to));
            let first = &out[at + m.to.len()..];
            if m.f16 {
                assert_eq!(&first[..2], &f16::from_f32(0.5).to_le_bytes());
            } else {
                assert_eq!(&first[..4], &0.5f32.to_le_bytes());
            }
        }
        assert_eq!(installed_vad(dir.path()).len(), 1);
        assert_eq!(resolve_vad(dir.path()).unwrap().name, "silero-v6.2.3");
        assert!(is_vad_name("silero-v5.1.2") && !is_vad_name("base"));
    }

    #[test]
    fn refuses_missing_or_misshapen_tensors() {
        let e = convert(&fake(0.0, Some("conv3.bias")), "6.2.3").unwrap_err();
        assert!(e.to_string().contains("conv3.bias"), "{e}");
        assert!(convert(b"junk", "6.2.3").is_err());
        assert!(convert(&fake(0.0, None), "6.2").is_err());
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ggml-silero-x.bin");
        std::fs::write(&p, b"lmggjunkjunk").unwrap();
        assert!(read_vad_info(&p).is_err());
        assert!(installed_vad(dir.path()).is_empty());
    }
}
