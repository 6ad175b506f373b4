//! Reading CTranslate2 `model.bin` files and writing whisper.cpp GGML files.
//!
//! Real OpenAI Whisper weights reach us from the package registries only in CTranslate2
//! (faster-whisper) format; whisper.cpp wants GGML. The two formats, and the name mapping
//! between them, are described in shared/notes/whisper.md §3.

use std::collections::HashMap;
use std::io::Write;

use crate::progress::ProcessorError;

fn bad(msg: impl Into<String>) -> ProcessorError {
    ProcessorError::WhisperUnavailable(format!("invalid CTranslate2 model: {}", msg.into()))
}

/// Element type of a CTranslate2 variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DType {
    F32,
    I8,
    I16,
    I32,
    F16,
    BF16,
}

impl DType {
    fn from_id(id: u8) -> Result<Self, ProcessorError> {
        Ok(match id {
            0 => DType::F32,
            1 => DType::I8,
            2 => DType::I16,
            3 => DType::I32,
            4 => DType::F16,
            5 => DType::BF16,
            other => return Err(bad(format!("unknown data type {other}"))),
        })
    }

    fn size(self) -> usize {
        match self {
            DType::F32 | DType::I32 => 4,
            DType::F16 | DType::BF16 | DType::I16 => 2,
            DType::I8 => 1,
        }
    }
}

/// One tensor of a CTranslate2 model (a view into the file's bytes).
#[derive(Debug, Clone)]
pub(crate) struct Var<'a> {
    pub dims: Vec<usize>,
    pub dtype: DType,
    pub data: &'a [u8],
}

impl Var<'_> {
    fn rows(&self) -> usize {
        self.dims.first().copied().unwrap_or(1)
    }

    fn row_len(&self) -> usize {
        self.dims.iter().skip(1).product::<usize>().max(1)
    }

    /// An integer scalar (e.g. `encoder/num_heads`).
    fn scalar_int(&self) -> Option<i64> {
        let b = self.data;
        match self.dtype {
            DType::I8 => b.first().map(|x| i64::from(*x as i8)),
            DType::I16 => b
                .get(..2)
                .map(|x| i64::from(i16::from_le_bytes([x[0], x[1]]))),
            DType::I32 => b
                .get(..4)
                .map(|x| i64::from(i32::from_le_bytes([x[0], x[1], x[2], x[3]]))),
            _ => None,
        }
    }
}

/// A parsed CTranslate2 model.
pub(crate) struct Ct2Model<'a> {
    pub spec: String,
    pub vars: HashMap<String, Var<'a>>,
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ProcessorError> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or_else(|| bad("size overflow"))?;
        let s = self
            .b
            .get(self.pos..end)
            .ok_or_else(|| bad("unexpected end of file"))?;
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, ProcessorError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, ProcessorError> {
        let s = self.take(2)?;
        Ok(u16::from_le_bytes([s[0], s[1]]))
    }
    fn u32(&mut self) -> Result<u32, ProcessorError> {
        let s = self.take(4)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn string(&mut self) -> Result<String, ProcessorError> {
        let n = usize::from(self.u16()?);
        let s = self.take(n)?;
        let s = s.strip_suffix(&[0]).unwrap_or(s);
        String::from_utf8(s.to_vec()).map_err(|_| bad("non-UTF-8 name"))
    }
}

/// Parses a CTranslate2 `model.bin` (binary version 5 or 6).
pub(crate) fn parse(bytes: &[u8]) -> Result<Ct2Model<'_>, ProcessorError> {
    let mut r = Reader { b: bytes, pos: 0 };
    let version = r.u32()?;
    if !(5..=6).contains(&version) {
        return Err(bad(format!("unsupported binary version {version}")));
    }
    let spec = r.string()?;
    let _revision = r.u32()?;
    let count = r.u32()?;
    let mut vars = HashMap::new();
    for _ in 0..count {
        let name = r.string()?;
        let rank = usize::from(r.u8()?);
        let mut dims = Vec::with_capacity(rank);
        for _ in 0..rank {
            dims.push(usize::try_from(r.u32()?).map_err(|_| bad("dimension"))?);
        }
        let dtype = DType::from_id(r.u8()?)?;
        let nbytes = usize::try_from(r.u32()?).map_err(|_| bad("size"))?;
        let elems: usize = dims.iter().product::<usize>().max(1);
        if elems.checked_mul(dtype.size()) != Some(nbytes) {
            return Err(bad(format!("{name}: {nbytes} bytes for shape {dims:?}")));
        }
        let data = r.take(nbytes)?;
        vars.insert(name, Var { dims, dtype, data });
    }
    let aliases = r.u32()?;
    for _ in 0..aliases {
        let alias = r.string()?;
        let target = r.string()?;
        if let Some(v) = vars.get(&target).cloned() {
            vars.entry(alias).or_insert(v);
        }
    }
    Ok(Ct2Model { spec, vars })
}

/// IEEE half → single.
pub(crate) fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h >> 15) << 31;
    let exp = u32::from((h >> 10) & 0x1f);
    let frac = u32::from(h & 0x3ff);
    let bits = match (exp, frac) {
        (0, 0) => sign,
        (0, f) => {
            // subnormal: normalize
            let mut e: i32 = -1;
            let mut m = f;
            while m & 0x400 == 0 {
                m <<= 1;
                e -= 1;
            }
            let m = m & 0x3ff;
            let exp32 = u32::try_from(114 + e).unwrap_or(0);
            sign | (exp32 << 23) | (m << 13)
        }
        (0x1f, 0) => sign | 0x7f80_0000,
        (0x1f, f) => sign | 0x7f80_0000 | (f << 13),
        (e, f) => sign | ((e + 127 - 15) << 23) | (f << 13),
    };
    f32::from_bits(bits)
}

/// IEEE single → half (round to nearest even).
pub(crate) fn f32_to_f16(v: f32) -> u16 {
    let x = v.to_bits();
    let sign = ((x >> 16) & 0x8000) as u16;
    let exp = ((x >> 23) & 0xff) as i32;
    let mant = x & 0x7f_ffff;
    if exp == 0xff {
        return sign | 0x7c00 | if mant != 0 { 0x200 } else { 0 };
    }
    let e = exp - 127 + 15;
    if e >= 0x1f {
        return sign | 0x7c00;
    }
    if e <= 0 {
        if e < -10 {
            return sign;
        }
        let m = mant | 0x80_0000;
        let shift = u32::try_from(14 - e).unwrap_or(31);
        let half = m >> shift;
        let rem = m & ((1 << shift) - 1);
        let mid = 1 << (shift - 1);
        let round = u32::from(rem > mid || (rem == mid && half & 1 == 1));
        return sign | (half + round) as u16;
    }
    let half = ((e as u32) << 10) | (mant >> 13);
    let rem = mant & 0x1fff;
    let round = u32::from(rem > 0x1000 || (rem == 0x1000 && half & 1 == 1));
    sign | (half + round) as u16
}

/// Elements of a float variable as f32.
fn as_f32(v: &Var<'_>) -> Result<Vec<f32>, ProcessorError> {
    Ok(match v.dtype {
        DType::F32 => v
            .data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        DType::F16 => v
            .data
            .chunks_exact(2)
            .map(|b| f16_to_f32(u16::from_le_bytes([b[0], b[1]])))
            .collect(),
        DType::BF16 => v
            .data
            .chunks_exact(2)
            .map(|b| f32::from_bits(u32::from(u16::from_le_bytes([b[0], b[1]])) << 16))
            .collect(),
        other => {
            return Err(bad(format!(
                "quantized ({other:?}) weights are not supported; use a float16 model"
            )));
        }
    })
}

/// A tensor to write into the GGML file.
struct Tensor {
    name: String,
    /// Shape, outermost first (as in PyTorch).
    dims: Vec<usize>,
    data: Vec<f32>,
    f16: bool,
}

/// Hyper-parameters read off the tensor shapes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hparams {
    /// Vocabulary size.
    pub n_vocab: usize,
    /// Audio context (1500).
    pub n_audio_ctx: usize,
    /// Encoder width.
    pub n_audio_state: usize,
    /// Encoder heads.
    pub n_audio_head: usize,
    /// Encoder layers.
    pub n_audio_layer: usize,
    /// Text context (448).
    pub n_text_ctx: usize,
    /// Decoder width.
    pub n_text_state: usize,
    /// Decoder heads.
    pub n_text_head: usize,
    /// Decoder layers.
    pub n_text_layer: usize,
    /// Mel bands.
    pub n_mels: usize,
}

impl Hparams {
    /// Multilingual models have the larger vocabulary.
    pub fn multilingual(&self) -> bool {
        self.n_vocab >= 51865
    }
}

fn count_layers(vars: &HashMap<String, Var<'_>>, prefix: &str) -> usize {
    (0..)
        .take_while(|i| {
            let p = format!("{prefix}/layer_{i}/");
            vars.keys().any(|k| k.starts_with(&p))
        })
        .count()
}

fn find<'m, 'a>(m: &'m Ct2Model<'a>, name: &str) -> Result<&'m Var<'a>, ProcessorError> {
    m.vars
        .get(name)
        .ok_or_else(|| bad(format!("missing variable {name}")))
}

fn find_prefix<'m, 'a>(m: &'m Ct2Model<'a>, prefix: &str) -> Result<&'m Var<'a>, ProcessorError> {
    let mut keys: Vec<&String> = m.vars.keys().filter(|k| k.starts_with(prefix)).collect();
    keys.sort();
    keys.first()
        .and_then(|k| m.vars.get(*k))
        .ok_or_else(|| bad(format!("missing variable {prefix}*")))
}

/// Reads the hyper-parameters of a Whisper CTranslate2 model.
pub(crate) fn hparams(m: &Ct2Model<'_>) -> Result<Hparams, ProcessorError> {
    if !m.spec.contains("Whisper") {
        return Err(bad(format!("not a Whisper model (spec '{}')", m.spec)));
    }
    let conv1 = find(m, "encoder/conv1/weight")?;
    let emb = find(m, "decoder/embeddings/weight")?;
    let heads = |n: &str| -> Result<usize, ProcessorError> {
        find(m, n)?
            .scalar_int()
            .and_then(|v| usize::try_from(v).ok())
            .ok_or_else(|| bad(format!("{n} is not an integer")))
    };
    Ok(Hparams {
        n_vocab: emb.rows(),
        n_audio_ctx: find_prefix(m, "encoder/position_encodings")?.rows(),
        n_audio_state: conv1.rows(),
        n_audio_head: heads("encoder/num_heads")?,
        n_audio_layer: count_layers(&m.vars, "encoder"),
        n_text_ctx: find_prefix(m, "decoder/position_encodings")?.rows(),
        n_text_state: emb.row_len(),
        n_text_head: heads("decoder/num_heads")?,
        n_text_layer: count_layers(&m.vars, "decoder"),
        n_mels: *conv1.dims.get(1).ok_or_else(|| bad("conv1 rank"))?,
    })
}

/// A tensor's shape and data.
type Shaped = (Vec<usize>, Vec<f32>);

/// Splits a fused `[k * n, ...]` weight (or `[k * n]` bias) into `k` parts.
fn split_rows(v: &Var<'_>, parts: usize) -> Result<Vec<Shaped>, ProcessorError> {
    let data = as_f32(v)?;
    let rows = v.rows();
    if !rows.is_multiple_of(parts) {
        return Err(bad("fused weight not divisible"));
    }
    let n = rows / parts;
    let row_len = v.row_len();
    let mut dims = v.dims.clone();
    if let Some(d) = dims.first_mut() {
        *d = n;
    }
    Ok((0..parts)
        .map(|i| {
            (
                dims.clone(),
                data[i * n * row_len..(i + 1) * n * row_len].to_vec(),
            )
        })
        .collect())
}

fn build_tensors(m: &Ct2Model<'_>, hp: &Hparams) -> Result<Vec<Tensor>, ProcessorError> {
    let mut out: Vec<Tensor> = Vec::new();
    let mut push = |name: String, dims: Vec<usize>, data: Vec<f32>| {
        // 2-D and larger in f16; 1-D, conv biases and positional embeddings in f32
        // (whisper.cpp's own converter does the same).
        let f32_only = dims.len() < 2
            || name.ends_with("conv1.bias")
            || name.ends_with("conv2.bias")
            || name.ends_with("positional_embedding");
        out.push(Tensor {
            name,
            dims,
            data,
            f16: !f32_only,
        });
    };
    let plain = |name: &str| -> Result<(Vec<usize>, Vec<f32>), ProcessorError> {
        let v = find(m, name)?;
        Ok((v.dims.clone(), as_f32(v)?))
    };
    for side in ["encoder", "decoder"] {
        let (ln_prefix, layers) = if side == "encoder" {
            ("encoder.ln_post", hp.n_audio_layer)
        } else {
            ("decoder.ln", hp.n_text_layer)
        };
        if side == "encoder" {
            for c in ["conv1", "conv2"] {
                let (d, w) = plain(&format!("encoder/{c}/weight"))?;
                push(format!("encoder.{c}.weight"), d, w);
                let (d, b) = plain(&format!("encoder/{c}/bias"))?;
                let n = d.first().copied().unwrap_or(0);
                push(format!("encoder.{c}.bias"), vec![n, 1], b);
            }
        } else {
            let (d, w) = plain("decoder/embeddings/weight")?;
            push("decoder.token_embedding.weight".into(), d, w);
        }
        let pos = find_prefix(m, &format!("{side}/position_encodings"))?;
        push(
            format!("{side}.positional_embedding"),
            pos.dims.clone(),
            as_f32(pos)?,
        );
        for i in 0..layers {
            let l = format!("{side}/layer_{i}");
            let g = format!("{side}.blocks.{i}");
            let ln = |ct: &str,
                      gg: &str,
                      push: &mut dyn FnMut(String, Vec<usize>, Vec<f32>)|
             -> Result<(), ProcessorError> {
                let (d, w) = plain(&format!("{l}/{ct}/gamma"))?;
                push(format!("{g}.{gg}.weight"), d, w);
                let (d, b) = plain(&format!("{l}/{ct}/beta"))?;
                push(format!("{g}.{gg}.bias"), d, b);
                Ok(())
            };
            // Self attention: fused q, k, v.
            ln("self_attention/layer_norm", "attn_ln", &mut push)?;
            let qkv_w = split_rows(find(m, &format!("{l}/self_attention/linear_0/weight"))?, 3)?;
            let qkv_b = split_rows(find(m, &format!("{l}/self_attention/linear_0/bias"))?, 3)?;
            for (j, part) in ["query", "key", "value"].iter().enumerate() {
                push(
                    format!("{g}.attn.{part}.weight"),
                    qkv_w[j].0.clone(),
                    qkv_w[j].1.clone(),
                );
                if *part != "key" {
                    push(
                        format!("{g}.attn.{part}.bias"),
                        qkv_b[j].0.clone(),
                        qkv_b[j].1.clone(),
                    );
                }
            }
            let (d, w) = plain(&format!("{l}/self_attention/linear_1/weight"))?;
            push(format!("{g}.attn.out.weight"), d, w);
            let (d, b) = plain(&format!("{l}/self_attention/linear_1/bias"))?;
            push(format!("{g}.attn.out.bias"), d, b);
            if side == "decoder" {
                ln("attention/layer_norm", "cross_attn_ln", &mut push)?;
                let (d, w) = plain(&format!("{l}/attention/linear_0/weight"))?;
                push(format!("{g}.cross_attn.query.weight"), d, w);
                let (d, b) = plain(&format!("{l}/attention/linear_0/bias"))?;
                push(format!("{g}.cross_attn.query.bias"), d, b);
                let kv_w = split_rows(find(m, &format!("{l}/attention/linear_1/weight"))?, 2)?;
                let kv_b = split_rows(find(m, &format!("{l}/attention/linear_1/bias"))?, 2)?;
                push(
                    format!("{g}.cross_attn.key.weight"),
                    kv_w[0].0.clone(),
                    kv_w[0].1.clone(),
                );
                push(
                    format!("{g}.cross_attn.value.weight"),
                    kv_w[1].0.clone(),
                    kv_w[1].1.clone(),
                );
                push(
                    format!("{g}.cross_attn.value.bias"),
                    kv_b[1].0.clone(),
                    kv_b[1].1.clone(),
                );
                let (d, w) = plain(&format!("{l}/attention/linear_2/weight"))?;
                push(format!("{g}.cross_attn.out.weight"), d, w);
                let (d, b) = plain(&format!("{l}/attention/linear_2/bias"))?;
                push(format!("{g}.cross_attn.out.bias"), d, b);
            }
            ln("ffn/layer_norm", "mlp_ln", &mut push)?;
            for (ct, gg) in [("linear_0", "mlp.0"), ("linear_1", "mlp.2")] {
                let (d, w) = plain(&format!("{l}/ffn/{ct}/weight"))?;
                push(format!("{g}.{gg}.weight"), d, w);
                let (d, b) = plain(&format!("{l}/ffn/{ct}/bias"))?;
                push(format!("{g}.{gg}.bias"), d, b);
            }
        }
        let (d, w) = plain(&format!("{side}/layer_norm/gamma"))?;
        push(format!("{ln_prefix}.weight"), d, w);
        let (d, b) = plain(&format!("{side}/layer_norm/beta"))?;
        push(format!("{ln_prefix}.bias"), d, b);
    }
    Ok(out)
}

fn wi32(out: &mut Vec<u8>, v: usize) -> Result<(), ProcessorError> {
    let v = i32::try_from(v).map_err(|_| bad("value does not fit a GGML header"))?;
    out.write_all(&v.to_le_bytes())
        .map_err(ProcessorError::Storage)
}

/// Converts a Whisper CTranslate2 model to a GGML file image. `mel_filters` is the
/// `[n_mels, 201]` filter bank and `tokens` the byte strings of the vocabulary, in rank order.
pub(crate) fn to_ggml(
    model_bin: &[u8],
    mel_filters: &(Vec<usize>, Vec<f32>),
    tokens: &[Vec<u8>],
) -> Result<(Vec<u8>, Hparams), ProcessorError> {
    let m = parse(model_bin)?;
    let hp = hparams(&m)?;
    let (fdims, fdata) = mel_filters;
    if fdims.len() != 2 || fdims[0] != hp.n_mels {
        return Err(bad(format!(
            "mel filters {fdims:?} do not match n_mels {}",
            hp.n_mels
        )));
    }
    let tensors = build_tensors(&m, &hp)?;
    let mut out = Vec::with_capacity(model_bin.len() + (4 << 20));
    out.extend_from_slice(&0x6767_6d6c_i32.to_le_bytes());
    for v in [
        hp.n_vocab,
        hp.n_audio_ctx,
        hp.n_audio_state,
        hp.n_audio_head,
        hp.n_audio_layer,
        hp.n_text_ctx,
        hp.n_text_state,
        hp.n_text_head,
        hp.n_text_layer,
        hp.n_mels,
        1, // ftype: mostly f16
    ] {
        wi32(&mut out, v)?;
    }
    wi32(&mut out, fdims[0])?;
    wi32(&mut out, fdims[1])?;
    for f in fdata {
        out.extend_from_slice(&f.to_le_bytes());
    }
    wi32(&mut out, tokens.len())?;
    for t in tokens {
        wi32(&mut out, t.len())?;
        out.extend_from_slice(t);
    }
    for t in &tensors {
        let name = t.name.as_bytes();
        wi32(&mut out, t.dims.len())?;
        wi32(&mut out, name.len())?;
        wi32(&mut out, usize::from(t.f16))?;
        for d in t.dims.iter().rev() {
            wi32(&mut out, *d)?;
        }
        out.extend_from_slice(name);
        if t.f16 {
            for v in &t.data {
                out.extend_from_slice(&f32_to_f16(*v).to_le_bytes());
            }
        } else {
            for v in &t.data {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
    }
    Ok((out, hp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_floats_round_trip() {
        for v in [
            0.0f32,
            1.0,
            -2.5,
            0.333_251_95,
            65504.0,
            6.1e-5,
            -1.0e-7,
            1.0e-5,
        ] {
            let h = f32_to_f16(v);
            let back = f16_to_f32(h);
            assert!(
                (back - v).abs() <= v.abs() * 1e-3 + 1e-7,
                "{v} -> {h:#x} -> {back}"
            );
        }
        assert_eq!(f32_to_f16(f32::INFINITY), 0x7c00);
        assert!(f16_to_f32(0x7e00).is_nan());
        for h in 0u16..=0xffff {
            let f = f16_to_f32(h);
            if !f.is_nan() {
                assert_eq!(f32_to_f16(f), h, "{h:#x}");
            }
        }
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse(b"").is_err());
        assert!(parse(&[6, 0, 0, 0, 0xff, 0xff]).is_err());
        assert!(parse(&[9, 0, 0, 0]).is_err());
    }
}
