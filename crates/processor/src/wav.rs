//! 16-bit PCM WAV of 16 kHz mono audio: what whisper reads, what the remote backend uploads,
//! and what raw PCM from a client is wrapped in.
//!
//! ```
//! let w = mediajobs_processor::wav::encode(&[0.0, 1.0, -1.0]);
//! assert_eq!(&w[..4], b"RIFF");
//! assert_eq!(w.len(), 44 + 6);
//! assert_eq!(i16::from_le_bytes([w[46], w[47]]), 32767);
//! ```

/// The sample rate.
pub const RATE: u32 = 16_000;

/// The 44-byte header of a WAV whose sample data is `data_len` bytes.
pub fn header(data_len: u32) -> Vec<u8> {
    let mut h = Vec::with_capacity(44);
    h.extend_from_slice(b"RIFF");
    h.extend_from_slice(&36u32.saturating_add(data_len).to_le_bytes());
    h.extend_from_slice(b"WAVEfmt ");
    h.extend_from_slice(&16u32.to_le_bytes());
    h.extend_from_slice(&1u16.to_le_bytes()); // PCM
    h.extend_from_slice(&1u16.to_le_bytes()); // mono
    h.extend_from_slice(&RATE.to_le_bytes());
    h.extend_from_slice(&(RATE * 2).to_le_bytes());
    h.extend_from_slice(&2u16.to_le_bytes());
    h.extend_from_slice(&16u16.to_le_bytes());
    h.extend_from_slice(b"data");
    h.extend_from_slice(&data_len.to_le_bytes());
    h
}

/// A whole WAV of `samples` (−1..1, clamped).
pub fn encode(samples: &[f32]) -> Vec<u8> {
    let data_len = u32::try_from(samples.len() * 2).unwrap_or(u32::MAX);
    let mut b = header(data_len);
    b.reserve(samples.len() * 2);
    for s in samples {
        b.extend_from_slice(&((s.clamp(-1.0, 1.0) * 32767.0) as i16).to_le_bytes());
    }
    b
}
