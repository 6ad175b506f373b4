//! Text of unknown encoding: subtitle files come from every era of desktop software, so an
//! SRT may be UTF-8, UTF-16 (Windows "Unicode", with or without a byte-order mark) or a legacy
//! single-byte code page such as Windows-1252 / Latin-1. [`decode_text`] finds out which and
//! decodes it strictly: bytes that are malformed in the encoding found are refused, never
//! replaced.
//!
//! ```
//! use mediajobs_processor::subtitle::decode_text;
//! // "Café" in Windows-1252: 0xE9 is not UTF-8.
//! let d = decode_text(b"1\r\n00:00:01,000 --> 00:00:02,000\r\nCaf\xe9 cr\xe8me\r\n").unwrap();
//! assert_eq!(d.encoding, "windows-1252");
//! assert!(d.text.contains("Café crème"));
//! assert!(d.converted);
//! assert_eq!(decode_text("plain UTF-8".as_bytes()).unwrap().encoding, "UTF-8");
//! assert!(decode_text(b"\x00\x00\x01\xba binary").is_none());
//! ```

use encoding_rs::{Encoding, UTF_8, UTF_16BE, UTF_16LE};

/// Text decoded by [`decode_text`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedText {
    /// The text, without a byte-order mark.
    pub text: String,
    /// The WHATWG name of the encoding the bytes were in: `UTF-8`, `UTF-16LE`, `UTF-16BE`,
    /// `windows-1252` (which ISO-8859-1 / Latin-1 content is read as, as browsers do), …
    pub encoding: &'static str,
    /// `true` when the bytes were not plain UTF-8 (another encoding, or a UTF-16 byte-order
    /// mark), so storing the text means re-encoding it.
    pub converted: bool,
}

/// Decodes bytes that should be text: by byte-order mark, else as UTF-8 when they are valid
/// UTF-8, else as UTF-16 when every other byte is zero, else in the encoding `chardetng`
/// guesses. `None` for bytes that are no text in any of those (a NUL outside UTF-16, or a
/// sequence malformed in the encoding found).
pub fn decode_text(bytes: &[u8]) -> Option<DecodedText> {
    if let Some((enc, bom)) = Encoding::for_bom(bytes) {
        let text = strict(enc, &bytes[bom..])?;
        return Some(DecodedText {
            text,
            encoding: enc.name(),
            // A UTF-8 file keeps its bytes (the BOM is harmless to every parser here).
            converted: enc != UTF_8,
        });
    }
    if let Ok(s) = std::str::from_utf8(bytes) {
        if s.contains('\0') {
            return None;
        }
        return Some(DecodedText {
            text: s.to_owned(),
            encoding: UTF_8.name(),
            converted: false,
        });
    }
    if let Some(enc) = utf16_without_bom(bytes) {
        let text = strict(enc, bytes)?;
        return (!text.contains('\0')).then_some(DecodedText {
            text,
            encoding: enc.name(),
            converted: true,
        });
    }
    if bytes.contains(&0) {
        return None;
    }
    // Not UTF-8 (checked above); not ISO-2022-JP, whose escape sequences could hide text.
    let mut detector = chardetng::EncodingDetector::new(chardetng::Iso2022JpDetection::Deny);
    detector.feed(bytes, true);
    let enc = detector.guess(None, chardetng::Utf8Detection::Deny);
    let text = strict(enc, bytes)?;
    Some(DecodedText {
        text,
        encoding: enc.name(),
        converted: true,
    })
}

fn strict(enc: &'static Encoding, bytes: &[u8]) -> Option<String> {
    enc.decode_without_bom_handling_and_without_replacement(bytes)
        .map(|t| t.into_owned())
}

/// UTF-16 text of mostly Latin script has a zero in every other byte: the high byte of each
/// code unit. At least 3 in 4 of those positions zero, and almost none of the others.
fn utf16_without_bom(bytes: &[u8]) -> Option<&'static Encoding> {
    if bytes.len() < 8 || !bytes.len().is_multiple_of(2) {
        return None;
    }
    let pairs = bytes.len() / 2;
    let zero_even = bytes.iter().step_by(2).filter(|b| **b == 0).count();
    let zero_odd = bytes.iter().skip(1).step_by(2).filter(|b| **b == 0).count();
    let mostly = |n: usize| n * 4 >= pairs * 3;
    let rarely = |n: usize| n * 20 <= pairs;
    if mostly(zero_odd) && rarely(zero_even) {
        Some(UTF_16LE)
    } else if mostly(zero_even) && rarely(zero_odd) {
        Some(UTF_16BE)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRT: &str = "1\r\n00:00:01,000 --> 00:00:02,000\r\nÇa va, Zoë? «Très» bien — merci.\r\n";

    fn utf16(s: &str, le: bool, bom: bool) -> Vec<u8> {
        let mut out = Vec::new();
        if bom {
            out.extend_from_slice(if le { &[0xFF, 0xFE] } else { &[0xFE, 0xFF] });
        }
        for u in s.encode_utf16() {
            out.extend_from_slice(&if le { u.to_le_bytes() } else { u.to_be_bytes() });
        }
        out
    }

    #[test]
    fn utf8_is_kept_as_is() {
        let d = decode_text(SRT.as_bytes()).unwrap();
        assert_eq!((d.encoding, d.converted), ("UTF-8", false));
        assert_eq!(d.text, SRT);
        let mut bom = vec![0xEF, 0xBB, 0xBF];
        bom.extend_from_slice(SRT.as_bytes());
        let d = decode_text(&bom).unwrap();
        assert_eq!(
            (d.encoding, d.converted, d.text.as_str()),
            ("UTF-8", false, SRT)
        );
    }

    #[test]
    fn utf16_with_and_without_bom() {
        for le in [true, false] {
            for bom in [true, false] {
                let d = decode_text(&utf16(SRT, le, bom)).unwrap();
                assert_eq!(d.text, SRT, "le={le} bom={bom}");
                assert_eq!(d.encoding, if le { "UTF-16LE" } else { "UTF-16BE" });
                assert!(d.converted);
            }
        }
    }

    #[test]
    fn legacy_code_pages() {
        let (bytes, _, bad) = encoding_rs::WINDOWS_1252.encode(SRT);
        assert!(!bad);
        let d = decode_text(&bytes).unwrap();
        assert_eq!((d.encoding, d.text.as_str()), ("windows-1252", SRT));
        // ISO-8859-1 (Latin-1) bytes read as windows-1252, its superset for printable text.
        let latin1: Vec<u8> = "Ça va, Zoë? Très bien.\n"
            .chars()
            .map(|c| c as u32 as u8)
            .collect();
        let d = decode_text(&latin1).unwrap();
        assert_eq!(
            (d.encoding, d.text.as_str()),
            ("windows-1252", "Ça va, Zoë? Très bien.\n")
        );
        let cyr = "1\n00:00:01,000 --> 00:00:02,000\nПривет, как дела? Всё хорошо, спасибо.\n";
        let (bytes, _, _) = encoding_rs::WINDOWS_1251.encode(cyr);
        let d = decode_text(&bytes).unwrap();
        assert_eq!((d.encoding, d.text.as_str()), ("windows-1251", cyr));
    }

    #[test]
    fn binary_is_not_text() {
        assert!(decode_text(b"\x1aE\xdf\xa3\x00\x00\x00\x00\x00\x00\x00\x1fB\x86\x81").is_none());
        assert!(decode_text(b"abc\0def").is_none());
        // Malformed UTF-16 (an unpaired surrogate after a BOM).
        assert!(decode_text(&[0xFF, 0xFE, 0x00, 0xD8, 0x41, 0x00]).is_none());
    }
}
