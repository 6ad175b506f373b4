//! The subtitle model: SRT and WebVTT parsing (tolerant, never panics), formatting,
//! sanitizing, and subtitle-grade segmentation of transcription output.
//!
//! ```
//! use mediajobs_processor::subtitle::{parse_srt, to_srt, to_vtt};
//! let cues = parse_srt("\u{feff}1\r\n00:00:01,000 --> 00:00:02.500\r\nHello\r\n").unwrap();
//! assert_eq!(cues[0].start_ms, 1000);
//! assert_eq!(cues[0].end_ms, 2500);
//! assert_eq!(to_srt(&cues), "1\n00:00:01,000 --> 00:00:02,500\nHello\n");
//! assert!(to_vtt(&cues).starts_with("WEBVTT\n\n00:00:01.000 --> 00:00:02.500\nHello"));
//! ```

mod encoding;
mod segment;

pub use encoding::{DecodedText, decode_text};
pub use segment::{
    ReadingSpeed, Segment, SegmentOptions, SegmentStats, Word, reading_speed, segment, wrap_lines,
};

/// One subtitle cue. Times are milliseconds from the start of the media.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Cue {
    /// Start, in ms.
    pub start_ms: i64,
    /// End, in ms.
    pub end_ms: i64,
    /// Text; lines separated by `\n`.
    pub text: String,
}

/// Why a subtitle file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubtitleError {
    /// Nothing that looks like a cue was found.
    #[error("no subtitle cues found: {0}")]
    NoCues(String),
}

/// Upper bound for parsed times (100 hours): anything above is not a subtitle timestamp.
const MAX_MS: i64 = 100 * 3600 * 1000;

fn normalize(input: &str) -> String {
    let s = input.strip_prefix('\u{feff}').unwrap_or(input);
    s.replace("\r\n", "\n").replace('\r', "\n")
}

/// Parses `[[HH:]MM:]SS[,.]mmm` (1–3 digit milliseconds, hours of any width up to 100 h).
fn parse_time(s: &str) -> Option<i64> {
    let s = s.trim();
    let (clock, frac) = match s.rfind([',', '.']) {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, ""),
    };
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let ms_frac: i64 = if frac.is_empty() {
        0
    } else {
        let v: i64 = frac.parse().ok()?;
        v * 10_i64.pow(3 - u32::try_from(frac.len()).ok()?)
    };
    let parts: Vec<&str> = clock.split(':').collect();
    if parts.is_empty() || parts.len() > 3 {
        return None;
    }
    let mut total: i64 = 0;
    for (i, p) in parts.iter().enumerate() {
        if p.is_empty() || p.len() > 6 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let v: i64 = p.parse().ok()?;
        // minutes and seconds after the first field are < 60
        if i > 0 && v >= 60 {
            return None;
        }
        total = total.checked_mul(60)?.checked_add(v)?;
    }
    let ms = total.checked_mul(1000)?.checked_add(ms_frac)?;
    (ms <= MAX_MS).then_some(ms)
}

/// Parses a timing line `START --> END [settings]`.
fn parse_timing(line: &str) -> Option<(i64, i64)> {
    let (a, b) = line.split_once("-->")?;
    let start = parse_time(a)?;
    let end_field = b.split_whitespace().next()?;
    let end = parse_time(end_field)?;
    Some((start, end))
}

/// Parses SubRip text. Tolerates a BOM, CRLF/CR line ends, `.` or `,` before the
/// milliseconds, missing or wrong indices, extra blank lines, and text blocks separated by a
/// stray blank line (joined to the previous cue). Blocks without a timing line are skipped.
/// Returns the cues in file order (use [`sanitize`] to order and repair them).
pub fn parse_srt(input: &str) -> Result<Vec<Cue>, SubtitleError> {
    parse_blocks(&normalize(input), false)
}

/// Parses WebVTT (the `WEBVTT` header, cue identifiers, cue settings, NOTE/STYLE/REGION
/// blocks). Tolerant like [`parse_srt`]; a missing header is accepted.
pub fn parse_vtt(input: &str) -> Result<Vec<Cue>, SubtitleError> {
    parse_blocks(&normalize(input), true)
}

/// Parses either format, by the `WEBVTT` header.
pub fn parse_any(input: &str) -> Result<Vec<Cue>, SubtitleError> {
    let n = normalize(input);
    let vtt = n.trim_start().starts_with("WEBVTT");
    parse_blocks(&n, vtt)
}

fn parse_blocks(text: &str, vtt: bool) -> Result<Vec<Cue>, SubtitleError> {
    let mut cues: Vec<Cue> = Vec::new();
    let mut block: Vec<&str> = Vec::new();
    let mut first_block = true;
    let flush = |block: &mut Vec<&str>, first: &mut bool, cues: &mut Vec<Cue>| {
        if block.is_empty() {
            return;
        }
        let is_first = std::mem::replace(first, false);
        if vtt {
            let head = block[0].trim_start();
            if (is_first && head.starts_with("WEBVTT"))
                || head.starts_with("NOTE")
                || head.starts_with("STYLE")
                || head.starts_with("REGION")
            {
                block.clear();
                return;
            }
        }
        match block.iter().position(|l| l.contains("-->")) {
            Some(t) if t <= 1 => {
                if let Some((start, end)) = parse_timing(block[t]) {
                    let text = block[t + 1..]
                        .iter()
                        .map(|l| l.trim_end())
                        .collect::<Vec<_>>()
                        .join("\n");
                    cues.push(Cue {
                        start_ms: start,
                        end_ms: end,
                        text,
                    });
                }
            }
            _ => {
                // Text without timing: a cue whose text had a blank line in it.
                if let Some(last) = cues.last_mut() {
                    let extra = block
                        .iter()
                        .map(|l| l.trim_end())
                        .collect::<Vec<_>>()
                        .join("\n");
                    let is_index = extra.trim().bytes().all(|b| b.is_ascii_digit());
                    if !extra.trim().is_empty() && !is_index {
                        if !last.text.is_empty() {
                            last.text.push('\n');
                        }
                        last.text.push_str(&extra);
                    }
                }
            }
        }
        block.clear();
    };
    for line in text.split('\n') {
        if line.trim().is_empty() {
            flush(&mut block, &mut first_block, &mut cues);
        } else {
            block.push(line);
        }
    }
    flush(&mut block, &mut first_block, &mut cues);
    if cues.is_empty() {
        return Err(SubtitleError::NoCues(
            "expected blocks with 'HH:MM:SS,mmm --> HH:MM:SS,mmm' timing lines".into(),
        ));
    }
    Ok(cues)
}

fn fmt_time(ms: i64, sep: char) -> String {
    let ms = ms.max(0);
    let h = ms / 3_600_000;
    let m = (ms / 60_000) % 60;
    let s = (ms / 1000) % 60;
    let f = ms % 1000;
    format!("{h:02}:{m:02}:{s:02}{sep}{f:03}")
}

/// Cleans one cue's text for output: trims lines, drops blank lines (a blank line ends a cue in
/// both formats) and defuses `-->`.
fn clean_text(text: &str) -> String {
    let defuse = |l: &str| {
        let mut l = l.to_owned();
        // "--->" becomes "-->" after one pass: repeat until none is left.
        while l.contains("-->") {
            l = l.replace("-->", "->");
        }
        l
    };
    text.split('\n')
        .map(|l| defuse(l.trim()))
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Formats cues as SubRip, numbered from 1.
pub fn to_srt(cues: &[Cue]) -> String {
    let mut out = String::new();
    for (i, c) in cues.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&format!(
            "{}\n{} --> {}\n{}\n",
            i + 1,
            fmt_time(c.start_ms, ','),
            fmt_time(c.end_ms, ','),
            clean_text(&c.text)
        ));
    }
    out
}

/// Formats cues as WebVTT.
pub fn to_vtt(cues: &[Cue]) -> String {
    let mut out = String::from("WEBVTT\n");
    for c in cues {
        out.push_str(&format!(
            "\n{} --> {}\n{}\n",
            fmt_time(c.start_ms, '.'),
            fmt_time(c.end_ms, '.'),
            clean_text(&c.text)
        ));
    }
    out
}

/// The formats a subtitle or transcript can be read in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SubtitleFormat {
    /// SubRip.
    Srt,
    /// WebVTT.
    Vtt,
    /// Plain text, one cue per line.
    Txt,
    /// Tab-separated `start`, `end` (ms), `text`, with a header row (whisper's `tsv`).
    Tsv,
    /// `{"cues": [{"start_ms", "end_ms", "text"}]}`.
    Json,
}

impl SubtitleFormat {
    /// Every format, in the order error messages list them.
    pub const ALL: [SubtitleFormat; 5] = [
        SubtitleFormat::Srt,
        SubtitleFormat::Vtt,
        SubtitleFormat::Txt,
        SubtitleFormat::Tsv,
        SubtitleFormat::Json,
    ];

    /// Its name (`srt`, `vtt`, …).
    pub const fn as_str(self) -> &'static str {
        match self {
            SubtitleFormat::Srt => "srt",
            SubtitleFormat::Vtt => "vtt",
            SubtitleFormat::Txt => "txt",
            SubtitleFormat::Tsv => "tsv",
            SubtitleFormat::Json => "json",
        }
    }

    /// Parses a name (case-insensitive; `text` is `txt`).
    ///
    /// ```
    /// use mediajobs_processor::subtitle::SubtitleFormat;
    /// assert_eq!(SubtitleFormat::parse("VTT"), Some(SubtitleFormat::Vtt));
    /// assert_eq!(SubtitleFormat::parse("text"), Some(SubtitleFormat::Txt));
    /// assert_eq!(SubtitleFormat::parse("docx"), None);
    /// ```
    pub fn parse(s: &str) -> Option<SubtitleFormat> {
        match s.trim().to_ascii_lowercase().as_str() {
            "text" => Some(SubtitleFormat::Txt),
            other => Self::ALL.into_iter().find(|f| f.as_str() == other),
        }
    }

    /// The `Content-Type` of a document in this format.
    pub const fn content_type(self) -> &'static str {
        match self {
            SubtitleFormat::Srt => "application/x-subrip; charset=utf-8",
            SubtitleFormat::Vtt => "text/vtt; charset=utf-8",
            SubtitleFormat::Txt => "text/plain; charset=utf-8",
            SubtitleFormat::Tsv => "text/tab-separated-values; charset=utf-8",
            SubtitleFormat::Json => "application/json",
        }
    }

    /// The file extension (`.srt`, …).
    pub const fn extension(self) -> &'static str {
        match self {
            SubtitleFormat::Srt => ".srt",
            SubtitleFormat::Vtt => ".vtt",
            SubtitleFormat::Txt => ".txt",
            SubtitleFormat::Tsv => ".tsv",
            SubtitleFormat::Json => ".json",
        }
    }

    /// Writes cues in this format.
    ///
    /// ```
    /// use mediajobs_processor::subtitle::{Cue, SubtitleFormat};
    /// let cues = vec![Cue { start_ms: 0, end_ms: 1500, text: "Hello\nthere".into() }];
    /// assert_eq!(SubtitleFormat::Txt.render(&cues), "Hello there\n");
    /// assert_eq!(SubtitleFormat::Tsv.render(&cues), "start\tend\ttext\n0\t1500\tHello there\n");
    /// let doc: serde_json::Value = serde_json::from_str(&SubtitleFormat::Json.render(&cues)).unwrap();
    /// assert_eq!(doc["cues"][0]["end_ms"], 1500);
    /// ```
    pub fn render(self, cues: &[Cue]) -> String {
        let one_line = |c: &Cue| {
            clean_text(&c.text)
                .split('\n')
                .collect::<Vec<_>>()
                .join(" ")
        };
        match self {
            SubtitleFormat::Srt => to_srt(cues),
            SubtitleFormat::Vtt => to_vtt(cues),
            SubtitleFormat::Txt => cues
                .iter()
                .map(one_line)
                .filter(|l| !l.is_empty())
                .map(|l| l + "\n")
                .collect(),
            SubtitleFormat::Tsv => {
                let mut out = String::from("start\tend\ttext\n");
                for c in cues {
                    let text = one_line(c).replace('\t', " ");
                    out.push_str(&format!("{}\t{}\t{text}\n", c.start_ms, c.end_ms));
                }
                out
            }
            SubtitleFormat::Json => serde_json::json!({ "cues": cues }).to_string(),
        }
    }
}

/// Repairs cues for output: text cleaned, empty cues dropped, negative times clamped, sorted by
/// start, an end before its start fixed, overlaps removed by ending a cue where the next starts
/// (a cue squeezed to nothing has its text merged into the next one). Never loses text.
pub fn sanitize(cues: &[Cue]) -> Vec<Cue> {
    let mut v: Vec<Cue> = cues
        .iter()
        .map(|c| Cue {
            // Keep every time parseable: starts below the 100 h limit, ends at most at it.
            start_ms: c.start_ms.clamp(0, MAX_MS - 1),
            end_ms: c.end_ms.clamp(0, MAX_MS),
            text: clean_text(&c.text),
        })
        .filter(|c| !c.text.is_empty())
        .collect();
    v.sort_by_key(|c| c.start_ms);
    let mut out: Vec<Cue> = Vec::with_capacity(v.len());
    let n = v.len();
    let mut carry: Option<String> = None;
    for i in 0..n {
        let mut c = v[i].clone();
        if let Some(t) = carry.take() {
            c.text = format!("{t}\n{}", c.text);
        }
        let next_start = v.get(i + 1).map(|x| x.start_ms);
        if c.end_ms <= c.start_ms {
            c.end_ms = (c.start_ms + 1000).min(MAX_MS);
        }
        if let Some(ns) = next_start {
            if c.end_ms > ns {
                c.end_ms = ns;
            }
            if c.end_ms <= c.start_ms {
                carry = Some(c.text);
                continue;
            }
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tolerantly() {
        let src = "\u{feff}1\r\n00:00:01,5 --> 00:00:03.25 X1:10\r\nHello\r\nworld\r\n\r\n\r\n\
                   7\n00:00:04,000 --> 00:00:05,000\nSecond\n\ncontinued after blank\n\n\
                   00:06,000 --> 00:07,000\nNo index, no hours\n\n\
                   garbage block\nwithout timing at start?\n";
        let cues = parse_srt(src).unwrap();
        assert_eq!(cues.len(), 3);
        assert_eq!((cues[0].start_ms, cues[0].end_ms), (1500, 3250));
        assert_eq!(cues[0].text, "Hello\nworld");
        assert_eq!(cues[1].text, "Second\ncontinued after blank");
        assert_eq!((cues[2].start_ms, cues[2].end_ms), (6000, 7000));
        assert!(cues[2].text.starts_with("No index"));
    }

    #[test]
    fn rejects_non_subtitles() {
        assert!(parse_srt("").is_err());
        assert!(parse_srt("just some text\nlines").is_err());
        assert!(parse_srt("1\n99:99:99,999 --> 00:00:01,000\nbad clock").is_err());
        assert!(parse_srt("\u{0}\u{1}-->").is_err());
    }

    #[test]
    fn vtt_round_trip() {
        let src = "WEBVTT - title\n\nNOTE a comment\n\nintro\n00:01.000 --> 00:02.000 align:start\n<v Bob>Hi\n";
        let cues = parse_vtt(src).unwrap();
        assert_eq!(cues.len(), 1);
        assert_eq!(cues[0].start_ms, 1000);
        let again = parse_vtt(&to_vtt(&cues)).unwrap();
        assert_eq!(again, cues);
        assert_eq!(parse_any(src).unwrap(), cues);
    }

    #[test]
    fn sanitize_repairs() {
        let cues = vec![
            Cue {
                start_ms: 5000,
                end_ms: 4000,
                text: " b ".into(),
            },
            Cue {
                start_ms: 1000,
                end_ms: 6000,
                text: "a".into(),
            },
            Cue {
                start_ms: 7000,
                end_ms: 8000,
                text: "  \n ".into(),
            },
            Cue {
                start_ms: 5000,
                end_ms: 9000,
                text: "c --> d".into(),
            },
        ];
        let s = sanitize(&cues);
        assert_eq!(s.len(), 2);
        assert_eq!(
            (s[0].start_ms, s[0].end_ms, s[0].text.as_str()),
            (1000, 5000, "a")
        );
        assert_eq!(s[1].text, "b\nc -> d");
        assert_eq!((s[1].start_ms, s[1].end_ms), (5000, 9000));
    }

    #[test]
    fn arrows_in_text_are_defused_completely() {
        let c = vec![Cue {
            start_ms: 0,
            end_ms: 1000,
            text: "a ----> b --->".into(),
        }];
        let s = sanitize(&c);
        assert!(!s[0].text.contains("-->"));
        assert_eq!(parse_srt(&to_srt(&s)).unwrap(), s);
    }

    #[test]
    fn times_at_the_limit_stay_parseable() {
        let c = vec![Cue {
            start_ms: MAX_MS,
            end_ms: MAX_MS,
            text: "late".into(),
        }];
        let s = sanitize(&c);
        assert!(s[0].start_ms < s[0].end_ms && s[0].end_ms <= MAX_MS);
        assert_eq!(parse_srt(&to_srt(&s)).unwrap(), s);
    }

    #[test]
    fn times_format() {
        assert_eq!(fmt_time(3_723_004, ','), "01:02:03,004");
        assert_eq!(parse_time("1:02:03.4"), Some(3_723_400));
        assert_eq!(parse_time("00:00:00,1234"), None);
        assert_eq!(parse_time("99999999:00:00,000"), None);
    }
}
