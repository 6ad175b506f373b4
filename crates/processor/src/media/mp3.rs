//! The duration an MP3 file declares in its Xing/Info or VBRI header. GStreamer's discoverer
//! estimates an MP3's duration from its size, so a file cut in half looks complete to it; the
//! header still tells the truth (shared/notes/gstreamer.md §4: truncation is silent).

use std::io::Read;
use std::path::Path;

/// Declared duration in ms, when the file starts (after an ID3v2 tag) with an MPEG-1/2/2.5
/// Layer III frame carrying a Xing, Info or VBRI header with a frame count.
pub(crate) fn declared_duration_ms(path: &Path) -> Option<i64> {
    let mut f = std::fs::File::open(path).ok()?;
    let mut buf = vec![0u8; 64 * 1024];
    let n = f.read(&mut buf).ok()?;
    parse(&buf[..n])
}

fn parse(b: &[u8]) -> Option<i64> {
    let mut pos = 0usize;
    if b.len() >= 10 && &b[..3] == b"ID3" {
        let size = b[6..10]
            .iter()
            .fold(0usize, |acc, &x| (acc << 7) | usize::from(x & 0x7f));
        let footer = if b[5] & 0x10 != 0 { 10 } else { 0 };
        pos = 10 + size + footer;
    }
    // First frame sync within the next few KiB.
    let end = b.len().min(pos.checked_add(8192)?);
    let start = (pos..end.saturating_sub(4)).find(|&i| b[i] == 0xff && b[i + 1] & 0xe0 == 0xe0)?;
    let h = b.get(start..start + 4)?;
    let version = (h[1] >> 3) & 0b11; // 00 = 2.5, 10 = 2, 11 = 1
    let layer = (h[1] >> 1) & 0b11; // 01 = Layer III
    if layer != 0b01 || version == 0b01 {
        return None;
    }
    let sr_idx = usize::from((h[2] >> 2) & 0b11);
    let rates: [u32; 3] = match version {
        0b11 => [44100, 48000, 32000],
        0b10 => [22050, 24000, 16000],
        _ => [11025, 12000, 8000],
    };
    let rate = *rates.get(sr_idx)?;
    let mono = (h[3] >> 6) == 0b11;
    let spf: u64 = if version == 0b11 { 1152 } else { 576 };
    let side = match (version == 0b11, mono) {
        (true, false) => 32,
        (true, true) => 17,
        (false, false) => 17,
        (false, true) => 9,
    };
    let frames = xing_frames(b, start + 4 + side).or_else(|| vbri_frames(b, start + 4 + 32))?;
    let ms = u64::from(frames) * spf * 1000 / u64::from(rate);
    i64::try_from(ms).ok().filter(|d| *d > 0)
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 4)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

fn xing_frames(b: &[u8], at: usize) -> Option<u32> {
    let tag = b.get(at..at + 4)?;
    if tag != b"Xing" && tag != b"Info" {
        return None;
    }
    let flags = be32(b, at + 4)?;
    (flags & 1 == 1).then(|| be32(b, at + 8)).flatten()
}

fn vbri_frames(b: &[u8], at: usize) -> Option<u32> {
    (b.get(at..at + 4)? == b"VBRI")
        .then(|| be32(b, at + 14))
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_xing_header_after_id3() {
        let mut b = b"ID3\x04\x00\x00\x00\x00\x00\x05".to_vec();
        b.extend([0u8; 5]);
        // MPEG-1 Layer III, 128 kbit/s, 44.1 kHz, stereo.
        b.extend([0xff, 0xfb, 0x90, 0x00]);
        b.extend([0u8; 32]);
        b.extend(b"Xing");
        b.extend(1u32.to_be_bytes());
        b.extend(383u32.to_be_bytes()); // 383 frames * 1152 / 44100 = 10.005 s
        assert_eq!(parse(&b), Some(10004));
    }

    #[test]
    fn no_header_no_duration() {
        assert_eq!(parse(&[0xff, 0xfb, 0x90, 0x00, 0, 0, 0, 0]), None);
        assert_eq!(parse(b"not an mp3"), None);
        assert_eq!(parse(&[]), None);
    }
}
