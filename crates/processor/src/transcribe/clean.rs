//! What never reaches a subtitle or a transcript: whisper's non-speech annotations
//! (`[BLANK_AUDIO]`, `[MUSIC]`, `(music)`, `[ Silence ]`, `♪`), and the segments faster-whisper's
//! guards drop — a window more likely silent than speech whose text the decoder was unsure of,
//! text compressible like a repetition loop, the same line a third time in a row.
//!
//! ```
//! use mediajobs_processor::transcribe::strip_annotations;
//! assert_eq!(strip_annotations("[BLANK_AUDIO]"), "");
//! assert_eq!(strip_annotations("(upbeat music) Hello there. ♪"), "Hello there.");
//! assert_eq!(strip_annotations("He paid (about 20 dollars) for it."), "He paid (about 20 dollars) for it.");
//! ```

use crate::subtitle::Segment;

/// faster-whisper's defaults: a segment whose window is more likely silent than this and whose
/// tokens average a log-probability below [`LOGPROB_FLOOR`] is dropped.
pub const NO_SPEECH_THRESHOLD: f32 = 0.6;
/// See [`NO_SPEECH_THRESHOLD`].
pub const LOGPROB_FLOOR: f32 = -1.0;
/// Text compressing better than this (zlib) is a repetition loop.
pub const COMPRESSION_RATIO_CEILING: f32 = 2.4;

/// The byte ranges of `text` that are annotations rather than speech: any `[…]`, a `(…)` or
/// `*…*` of at most five words without digits (`(music)`, `(speaking foreign language)`; a
/// parenthesis of speech such as `(about 20 dollars)` stays), and music symbols.
fn annotation_spans(text: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let bytes: Vec<(usize, char)> = text.char_indices().collect();
    let mut i = 0;
    while i < bytes.len() {
        let (at, c) = bytes[i];
        let close = match c {
            '[' => Some(']'),
            '(' => Some(')'),
            '*' => Some('*'),
            _ => None,
        };
        if matches!(c, '♪' | '♫' | '♬' | '♩') {
            spans.push((at, at + c.len_utf8()));
            i += 1;
            continue;
        }
        if let Some(close) = close
            && let Some(j) = (i + 1..bytes.len()).find(|&j| bytes[j].1 == close)
        {
            let inner: String = bytes[i + 1..j].iter().map(|(_, c)| *c).collect();
            let end = bytes[j].0 + close.len_utf8();
            let short =
                inner.split_whitespace().count() <= 5 && !inner.chars().any(|c| c.is_ascii_digit());
            if c == '[' || short {
                spans.push((at, end));
                i = j + 1;
                continue;
            }
        }
        i += 1;
    }
    spans
}

/// `text` without its annotations (see [`annotation_spans`]), whitespace collapsed. Empty when
/// nothing but annotations (and punctuation) was there.
pub fn strip_annotations(text: &str) -> String {
    let spans = annotation_spans(text);
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (a, b) in &spans {
        out.push_str(&text[last..*a]);
        out.push(' ');
        last = *b;
    }
    out.push_str(&text[last..]);
    let joined = out.split_whitespace().collect::<Vec<_>>().join(" ");
    if joined.chars().any(char::is_alphanumeric) {
        joined
    } else {
        String::new()
    }
}

fn normalized(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_alphanumeric() || c.is_whitespace())
        .collect::<String>()
        .to_lowercase()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The segments worth keeping, their annotations removed (words inside an annotation too):
/// - a segment left empty is dropped;
/// - with decoder figures: dropped when `no_speech_prob > no_speech_threshold` and
///   `avg_logprob < LOGPROB_FLOOR`, or when the text compresses beyond
///   [`COMPRESSION_RATIO_CEILING`] (a repetition loop);
/// - the same text a third time in a row is dropped.
pub fn clean_segments(segments: Vec<Segment>, no_speech_threshold: f32) -> Vec<Segment> {
    let mut out: Vec<Segment> = Vec::with_capacity(segments.len());
    for mut s in segments {
        if let Some(st) = &s.stats
            && ((st.no_speech_prob > no_speech_threshold && st.avg_logprob < LOGPROB_FLOOR)
                || st.compression_ratio > COMPRESSION_RATIO_CEILING)
        {
            tracing::debug!(text = %s.text, ?st, "dropped a segment the guards flag");
            continue;
        }
        let text = strip_annotations(&s.text);
        if text.is_empty() {
            continue;
        }
        if text != s.text {
            s.words = clean_words(std::mem::take(&mut s.words));
            s.text = text;
        }
        let n = normalized(&s.text);
        let repeats = out
            .iter()
            .rev()
            .take(2)
            .filter(|p| normalized(&p.text) == n)
            .count();
        if repeats == 2 {
            continue;
        }
        out.push(s);
    }
    out
}

/// Words without those inside an annotation: the words joined as whisper spaced them, the
/// annotation spans found in that text, every word overlapping one dropped.
fn clean_words(words: Vec<crate::subtitle::Word>) -> Vec<crate::subtitle::Word> {
    let mut joined = String::new();
    let mut ranges = Vec::with_capacity(words.len());
    for w in &words {
        if !joined.is_empty() {
            joined.push(' ');
        }
        let a = joined.len();
        joined.push_str(&w.text);
        ranges.push((a, joined.len()));
    }
    let spans = annotation_spans(&joined);
    words
        .into_iter()
        .zip(ranges)
        .filter(|(w, (a, b))| {
            !spans.iter().any(|(sa, sb)| a < sb && sa < b)
                && w.text.chars().any(char::is_alphanumeric)
        })
        .map(|(w, _)| w)
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::subtitle::{SegmentStats, Word};

    fn seg(text: &str) -> Segment {
        Segment {
            start_ms: 0,
            end_ms: 1000,
            text: text.into(),
            words: vec![],
            stats: None,
        }
    }

    #[test]
    fn annotations_go_speech_stays() {
        for (input, want) in [
            ("[BLANK_AUDIO]", ""),
            ("[ Silence ]", ""),
            ("[MUSIC PLAYING]", ""),
            ("(music)", ""),
            ("(Applause)", ""),
            ("*laughs*", ""),
            ("♪ ♪", ""),
            ("(speaking in foreign language)", ""),
            ("- [Music]", ""),
            ("Hello. [BLANK_AUDIO] How are you?", "Hello. How are you?"),
            ("♪ La la la ♪", "La la la"),
            (
                "It cost (about 20 dollars) in total.",
                "It cost (about 20 dollars) in total.",
            ),
            (
                "She said (and I quote them word for word here) no.",
                "She said (and I quote them word for word here) no.",
            ),
            ("Unclosed (bracket here", "Unclosed (bracket here"),
            ("Plain speech.", "Plain speech."),
        ] {
            assert_eq!(strip_annotations(input), want, "{input}");
        }
    }

    #[test]
    fn guards_drop_silence_loops_and_triple_repeats() {
        let stats = |nsp: f32, lp: f32, cr: f32| SegmentStats {
            tokens: vec![1],
            avg_logprob: lp,
            no_speech_prob: nsp,
            compression_ratio: cr,
            temperature: 0.0,
        };
        let with = |text: &str, st: SegmentStats| Segment {
            stats: Some(st),
            ..seg(text)
        };
        let kept = clean_segments(
            vec![
                with("Thank you.", stats(0.9, -1.5, 1.0)), // silence, unsure: dropped
                with("Clear speech.", stats(0.9, -0.3, 1.0)), // sure of it: kept
                with("Mumbled.", stats(0.2, -1.5, 1.0)),   // speech, unsure: kept
                with("again again again again", stats(0.1, -0.2, 3.1)), // loop: dropped
                seg("[BLANK_AUDIO]"),
                seg("Go."),
                seg("Go!"),
                seg("go"),
                seg("Stop."),
            ],
            NO_SPEECH_THRESHOLD,
        );
        let texts: Vec<&str> = kept.iter().map(|s| s.text.as_str()).collect();
        assert_eq!(
            texts,
            vec!["Clear speech.", "Mumbled.", "Go.", "Go!", "Stop."]
        );
    }

    #[test]
    fn words_inside_annotations_go_too() {
        let w = |t: &str| Word {
            text: t.into(),
            start_ms: 0,
            end_ms: 0,
        };
        let s = Segment {
            words: vec![
                w("[BLANK"),
                w("_AUDIO]"),
                w("Hello"),
                w("(music)"),
                w("world."),
            ],
            ..seg("[BLANK_AUDIO] Hello (music) world.")
        };
        let out = clean_segments(vec![s], NO_SPEECH_THRESHOLD);
        assert_eq!(out[0].text, "Hello world.");
        let words: Vec<&str> = out[0].words.iter().map(|w| w.text.as_str()).collect();
        assert_eq!(words, vec!["Hello", "world."]);
    }
}
