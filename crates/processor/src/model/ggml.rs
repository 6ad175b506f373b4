//! whisper.cpp GGML model files: what a file holds (read from its header, without loading
//! it) and quantization of an f16/f32 file to q5_0, q5_1 or q8_0.
//!
//! The layout, as whisper.cpp's loader reads it: magic `0x67676d6c`; eleven `i32` (the ten
//! hyper-parameters of [`Hparams`], then the file type, `ggml_ftype + 1000 × quantization
//! version` for quantized files); the mel filters (`i32` rows, `i32` columns, `f32` data); the
//! vocabulary (`i32` count, then `u32` length + bytes per token); then each tensor: `i32`
//! dimension count, `i32` name length, `i32` ggml type, the dimensions, the name, the data.

use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use super::Hparams;
use crate::progress::ProcessorError;

const MAGIC: u32 = 0x6767_6d6c;
/// ggml's `GGML_QNT_VERSION` and `GGML_QNT_VERSION_FACTOR`: a quantized file's type is
/// `ftype + 2 × 1000`.
const QNT_VERSION: i32 = 2;
const QNT_VERSION_FACTOR: i32 = 1000;
/// Tensors whisper.cpp keeps in their own type whatever the file type (2-D in the file, but
/// loaded as f32): the conv biases and the positional embeddings.
const KEEP: &[&str] = &[
    "encoder.conv1.bias",
    "encoder.conv2.bias",
    "encoder.positional_embedding",
    "decoder.positional_embedding",
];

fn bad(path: &Path, msg: impl std::fmt::Display) -> ProcessorError {
    ProcessorError::WhisperUnavailable(format!(
        "{} is not a whisper.cpp model: {msg}",
        path.display()
    ))
}

/// A quantization [`quantize`] produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Quantization {
    /// 5-bit, one scale per 32 weights.
    Q5_0,
    /// 5-bit, a scale and a minimum per 32 weights.
    Q5_1,
    /// 8-bit, one scale per 32 weights.
    Q8_0,
}

impl Quantization {
    /// Every quantization `quantize` makes.
    pub const ALL: [Quantization; 3] = [Quantization::Q5_0, Quantization::Q5_1, Quantization::Q8_0];

    /// `q5_0`, `q5_1`, `q8_0`: the suffix of whisper.cpp's file names (`ggml-base-q8_0.bin`).
    pub fn as_str(self) -> &'static str {
        match self {
            Quantization::Q5_0 => "q5_0",
            Quantization::Q5_1 => "q5_1",
            Quantization::Q8_0 => "q8_0",
        }
    }

    /// Parses `q5_0`, `q5_1`, `q8_0`.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|q| q.as_str() == s)
    }

    /// ggml's `ggml_ftype` of a file mostly of this type.
    fn ftype(self) -> i32 {
        match self {
            Quantization::Q8_0 => 7,
            Quantization::Q5_0 => 8,
            Quantization::Q5_1 => 9,
        }
    }

    /// ggml's `ggml_type` of a tensor of this type.
    fn ggml_type(self) -> u32 {
        match self {
            Quantization::Q5_0 => whisper_rs::whisper_rs_sys::ggml_type_GGML_TYPE_Q5_0,
            Quantization::Q5_1 => whisper_rs::whisper_rs_sys::ggml_type_GGML_TYPE_Q5_1,
            Quantization::Q8_0 => whisper_rs::whisper_rs_sys::ggml_type_GGML_TYPE_Q8_0,
        }
    }
}

/// A compute device whisper.cpp can run on in this build (ggml's device registry): the CPU,
/// and with the `cuda` or `vulkan` feature each GPU its driver shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// `cpu`, `gpu`, `igpu` (integrated) or `accel`.
    pub kind: &'static str,
    /// ggml's name (`CPU`, `Vulkan0`, `CUDA0`).
    pub name: String,
    /// The driver's description (the GPU's model).
    pub description: String,
}

/// The compute devices of this build, CPU first.
pub fn devices() -> Vec<Device> {
    ffi::devices()
        .into_iter()
        .map(|(kind, name, description)| Device {
            kind,
            name,
            description,
        })
        .collect()
}

/// What a GGML model file is, from its header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GgmlInfo {
    /// The hyper-parameters.
    pub hparams: Hparams,
    /// The weights' type: `f32`, `f16`, `q4_0`, `q4_1`, `q5_0`, `q5_1`, `q8_0`, … as
    /// whisper.cpp names them.
    pub weights: &'static str,
}

impl GgmlInfo {
    /// Multilingual (`auto` detection, translation) or English-only.
    pub fn multilingual(&self) -> bool {
        self.hparams.multilingual()
    }

    /// The Whisper size the layer count and width give: `tiny`, `base`, `small`, `medium`,
    /// `large` (`large-v3-turbo` has 4 decoder layers), or `unknown`.
    pub fn size_class(&self) -> &'static str {
        let h = &self.hparams;
        match (h.n_audio_layer, h.n_audio_state) {
            (4, 384) => "tiny",
            (6, 512) => "base",
            (12, 768) => "small",
            (24, 1024) => "medium",
            (32, 1280) if h.n_text_layer == 4 => "large-v3-turbo",
            (32, 1280) if h.n_mels == 128 => "large-v3",
            (32, 1280) => "large",
            _ => "unknown",
        }
    }

    /// `None` for f32/f16 weights, else the quantization (`q5_0`, …).
    pub fn quantization(&self) -> Option<&'static str> {
        (!matches!(self.weights, "f32" | "f16")).then_some(self.weights)
    }
}

fn ftype_name(ftype: i32) -> &'static str {
    match ftype % QNT_VERSION_FACTOR {
        0 => "f32",
        1 => "f16",
        2 => "q4_0",
        3 => "q4_1",
        7 => "q8_0",
        8 => "q5_0",
        9 => "q5_1",
        10 => "q2_k",
        11 => "q3_k",
        12 => "q4_k",
        13 => "q5_k",
        14 => "q6_k",
        _ => "unknown",
    }
}

fn read_i32(r: &mut impl Read) -> std::io::Result<i32> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b)?;
    Ok(i32::from_le_bytes(b))
}

fn read_usize(r: &mut impl Read, path: &Path, what: &str) -> Result<usize, ProcessorError> {
    let v = read_i32(r).map_err(|e| bad(path, format!("{what}: {e}")))?;
    usize::try_from(v).map_err(|_| bad(path, format!("{what} is negative")))
}

fn read_header(
    r: &mut impl Read,
    path: &Path,
) -> Result<(Hparams, i32, [i32; 11]), ProcessorError> {
    let mut m = [0u8; 4];
    r.read_exact(&mut m).map_err(|e| bad(path, e))?;
    if u32::from_le_bytes(m) != MAGIC {
        return Err(bad(path, "wrong magic number"));
    }
    let mut raw = [0i32; 11];
    for v in &mut raw {
        *v = read_i32(r).map_err(|e| bad(path, e))?;
    }
    let u = |i: usize| usize::try_from(raw[i]).map_err(|_| bad(path, "negative hyper-parameter"));
    let hp = Hparams {
        n_vocab: u(0)?,
        n_audio_ctx: u(1)?,
        n_audio_state: u(2)?,
        n_audio_head: u(3)?,
        n_audio_layer: u(4)?,
        n_text_ctx: u(5)?,
        n_text_state: u(6)?,
        n_text_head: u(7)?,
        n_text_layer: u(8)?,
        n_mels: u(9)?,
    };
    Ok((hp, raw[10], raw))
}

/// Reads a GGML file's header (a few dozen bytes; the model is not loaded).
pub fn read_info(path: &Path) -> Result<GgmlInfo, ProcessorError> {
    let mut r = BufReader::new(
        std::fs::File::open(path).map_err(|e| bad(path, format!("cannot open it: {e}")))?,
    );
    let (hparams, ftype, _) = read_header(&mut r, path)?;
    Ok(GgmlInfo {
        hparams,
        weights: ftype_name(ftype),
    })
}

fn copy_exact(
    r: &mut impl Read,
    w: &mut impl Write,
    n: usize,
    path: &Path,
) -> Result<(), ProcessorError> {
    let copied = std::io::copy(&mut r.take(n as u64), w)?;
    if copied != n as u64 {
        return Err(bad(path, "truncated"));
    }
    Ok(())
}

/// Bytes of a tensor of ggml type `ttype` with `n` elements in rows of `row`.
fn data_size(ttype: u32, n: usize, row: usize, path: &Path) -> Result<usize, ProcessorError> {
    // A type ggml does not know is a corrupt file (asking ggml about it would abort).
    let (block, size) = ffi::type_layout(ttype);
    let block = usize::try_from(block).map_err(|_| bad(path, "bad block size"))?;
    if block == 0 || size == 0 || !row.is_multiple_of(block) {
        return Err(bad(path, format!("rows of {row} do not fit type {ttype}")));
    }
    Ok(n / block * size)
}

/// Writes a copy of the f32/f16 GGML model `src` at `dst` with its 2-D weights quantized to
/// `q` (the rest as they are), as whisper.cpp's own `quantize` tool does; written to a
/// temporary file, then renamed. Returns the new file's info.
pub fn quantize(src: &Path, dst: &Path, q: Quantization) -> Result<GgmlInfo, ProcessorError> {
    use whisper_rs::whisper_rs_sys as sys;
    let mut r = BufReader::with_capacity(
        1 << 20,
        std::fs::File::open(src).map_err(|e| bad(src, format!("cannot open it: {e}")))?,
    );
    let (_, ftype, mut raw) = read_header(&mut r, src)?;
    if !matches!(ftype, 0 | 1) {
        return Err(ProcessorError::Validation(format!(
            "{} is already {}; quantize an f16 or f32 model",
            src.display(),
            ftype_name(ftype)
        )));
    }
    let tmp = dst.with_extension("bin.partial");
    let out = std::fs::File::create(&tmp)?;
    let mut w = BufWriter::with_capacity(1 << 20, out);
    let result = (|| -> Result<(), ProcessorError> {
        raw[10] = q.ftype() + QNT_VERSION * QNT_VERSION_FACTOR;
        w.write_all(&MAGIC.to_le_bytes())?;
        for v in raw {
            w.write_all(&v.to_le_bytes())?;
        }
        // Mel filters.
        let rows = read_usize(&mut r, src, "mel rows")?;
        let cols = read_usize(&mut r, src, "mel columns")?;
        for v in [rows, cols] {
            w.write_all(&i32::try_from(v).unwrap_or(i32::MAX).to_le_bytes())?;
        }
        copy_exact(&mut r, &mut w, rows * cols * 4, src)?;
        // Vocabulary.
        let n_vocab = read_usize(&mut r, src, "vocabulary size")?;
        w.write_all(&i32::try_from(n_vocab).unwrap_or(i32::MAX).to_le_bytes())?;
        for _ in 0..n_vocab {
            let len = read_usize(&mut r, src, "token length")?;
            w.write_all(&u32::try_from(len).unwrap_or(u32::MAX).to_le_bytes())?;
            copy_exact(&mut r, &mut w, len, src)?;
        }
        // Tensors, to the end of the file.
        let mut f32s: Vec<f32> = Vec::new();
        let mut qbuf: Vec<u8> = Vec::new();
        let mut buf: Vec<u8> = Vec::new();
        loop {
            let n_dims = match read_i32(&mut r) {
                Ok(v) => v,
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                Err(e) => return Err(e.into()),
            };
            if !(1..=4).contains(&n_dims) {
                return Err(bad(src, format!("a tensor has {n_dims} dimensions")));
            }
            let name_len = read_usize(&mut r, src, "tensor name length")?;
            let ttype = u32::try_from(read_i32(&mut r)?).map_err(|_| bad(src, "tensor type"))?;
            let mut ne = Vec::new();
            for _ in 0..n_dims {
                ne.push(read_usize(&mut r, src, "tensor dimension")?);
            }
            if name_len > 256 {
                return Err(bad(src, "tensor name too long"));
            }
            let mut name = vec![0u8; name_len];
            r.read_exact(&mut name).map_err(|e| bad(src, e))?;
            let n: usize = ne.iter().product();
            let row = ne[0];
            let size = data_size(ttype, n, row, src)?;
            buf.resize(size, 0);
            r.read_exact(&mut buf).map_err(|e| bad(src, e))?;
            let name_s = String::from_utf8_lossy(&name);
            let is_float =
                ttype == sys::ggml_type_GGML_TYPE_F32 || ttype == sys::ggml_type_GGML_TYPE_F16;
            let quantize_it = n_dims == 2 && is_float && !KEEP.contains(&name_s.as_ref());
            let out_type = if quantize_it { q.ggml_type() } else { ttype };
            w.write_all(&n_dims.to_le_bytes())?;
            w.write_all(&i32::try_from(name_len).unwrap_or(0).to_le_bytes())?;
            w.write_all(&i32::try_from(out_type).unwrap_or(0).to_le_bytes())?;
            for d in &ne {
                w.write_all(&i32::try_from(*d).unwrap_or(0).to_le_bytes())?;
            }
            w.write_all(&name)?;
            if !quantize_it {
                w.write_all(&buf)?;
                continue;
            }
            f32s.clear();
            if ttype == sys::ggml_type_GGML_TYPE_F16 {
                f32s.extend(
                    buf.chunks_exact(2)
                        .map(|c| super::ct2::f16_to_f32(u16::from_le_bytes([c[0], c[1]]))),
                );
            } else {
                f32s.extend(
                    buf.chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
                );
            }
            let out_size = data_size(out_type, n, row, src)?;
            qbuf.resize(out_size, 0);
            let nrows = i64::try_from(n / row).map_err(|_| bad(src, "tensor too large"))?;
            let per_row = i64::try_from(row).map_err(|_| bad(src, "tensor too large"))?;
            let written = ffi::quantize_rows(out_type, &f32s, &mut qbuf, nrows, per_row);
            if written != out_size {
                return Err(ProcessorError::Internal(format!(
                    "quantizing {name_s}: {written} bytes, expected {out_size}"
                )));
            }
            w.write_all(&qbuf)?;
        }
        w.flush()?;
        w.get_ref().sync_all()?;
        Ok(())
    })();
    drop(w);
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, dst)?;
    read_info(dst)
}

/// The two calls into ggml (whisper.cpp's quantizer has no safe binding), each behind a
/// safe function that checks what ggml relies on.
#[allow(unsafe_code)]
mod ffi {
    use std::ffi::CStr;

    use whisper_rs::whisper_rs_sys as sys;

    /// `(kind, name, description)` of each compute device ggml has in this build.
    pub(super) fn devices() -> Vec<(&'static str, String, String)> {
        let text = |p: *const std::os::raw::c_char| {
            if p.is_null() {
                String::new()
            } else {
                // SAFETY: ggml returns NUL-terminated static strings of its device registry.
                unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
            }
        };
        // SAFETY: ggml's device registry is built once, in a static initializer, and only
        // read here; indices below the count are valid.
        let n = unsafe { sys::ggml_backend_dev_count() };
        (0..n)
            .filter_map(|i| {
                // SAFETY: as above; a non-null device handle of the registry.
                unsafe {
                    let dev = sys::ggml_backend_dev_get(i);
                    if dev.is_null() {
                        return None;
                    }
                    let kind = match sys::ggml_backend_dev_type(dev) {
                        sys::ggml_backend_dev_type_GGML_BACKEND_DEVICE_TYPE_CPU => "cpu",
                        sys::ggml_backend_dev_type_GGML_BACKEND_DEVICE_TYPE_GPU => "gpu",
                        sys::ggml_backend_dev_type_GGML_BACKEND_DEVICE_TYPE_IGPU => "igpu",
                        _ => "accel",
                    };
                    Some((
                        kind,
                        text(sys::ggml_backend_dev_name(dev)),
                        text(sys::ggml_backend_dev_description(dev)),
                    ))
                }
            })
            .collect()
    }

    /// `(block size, bytes per block)` of a ggml type below `GGML_TYPE_COUNT`.
    pub(super) fn type_layout(ttype: u32) -> (i64, usize) {
        if ttype >= sys::ggml_type_GGML_TYPE_COUNT {
            return (0, 0);
        }
        // SAFETY: plain lookups in ggml's static type table, for a type that is in it.
        unsafe { (sys::ggml_blck_size(ttype), sys::ggml_type_size(ttype)) }
    }

    /// Quantizes `nrows` rows of `per_row` floats of `src` into `dst`; returns the bytes
    /// written (0 when the buffers do not have the sizes ggml will read and write).
    pub(super) fn quantize_rows(
        ttype: u32,
        src: &[f32],
        dst: &mut [u8],
        nrows: i64,
        per_row: i64,
    ) -> usize {
        let (block, size) = type_layout(ttype);
        let (Ok(rows), Ok(row), Ok(block)) = (
            usize::try_from(nrows),
            usize::try_from(per_row),
            usize::try_from(block),
        ) else {
            return 0;
        };
        if block == 0
            || !row.is_multiple_of(block)
            || src.len() != rows * row
            || dst.len() != rows * row / block * size
        {
            return 0;
        }
        // SAFETY: `src` holds exactly nrows × per_row floats and `dst` exactly the bytes of
        // those rows in `ttype` (checked above against ggml's own type table); q5_0, q5_1 and
        // q8_0 take no importance matrix, so null is allowed.
        unsafe {
            sys::ggml_quantize_chunk(
                ttype,
                src.as_ptr(),
                dst.as_mut_ptr().cast(),
                0,
                nrows,
                per_row,
                std::ptr::null(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_quantizations_and_file_types() {
        for q in Quantization::ALL {
            assert_eq!(Quantization::parse(q.as_str()), Some(q));
            assert_eq!(ftype_name(q.ftype() + 2000), q.as_str());
        }
        assert_eq!(Quantization::parse("q4_0"), None);
        assert_eq!(ftype_name(1), "f16");
    }

    #[test]
    fn lists_the_cpu() {
        let d = devices();
        assert!(d.iter().any(|d| d.kind == "cpu"), "{d:?}");
    }

    #[test]
    fn refuses_what_is_not_a_model() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ggml-junk.bin");
        std::fs::write(&p, b"not a model at all, just some bytes").unwrap();
        let e = read_info(&p).unwrap_err();
        assert!(e.to_string().contains("not a whisper.cpp model"), "{e}");
        std::fs::write(&p, b"lmgg").unwrap();
        assert!(read_info(&p).is_err());
        let e = quantize(&p, &dir.path().join("out.bin"), Quantization::Q8_0).unwrap_err();
        assert!(e.to_string().contains("not a whisper.cpp model"), "{e}");
        assert!(!dir.path().join("out.bin.partial").exists());
    }
}
