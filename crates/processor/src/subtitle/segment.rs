//! Subtitle-grade segmentation: transcription segments (and their word timings) → cues of at
//! most two lines of at most 42 characters, about 1 to 7 seconds long, split at punctuation or
//! pauses, never overlapping.

use super::Cue;

/// A timed word (milliseconds). Leading/trailing spaces are ignored.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Word {
    /// The word.
    pub text: String,
    /// Start, ms.
    pub start_ms: i64,
    /// End, ms.
    pub end_ms: i64,
}

/// A transcription segment: its text, times and (when the backend gives them) word timings.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Segment {
    /// Start, ms.
    pub start_ms: i64,
    /// End, ms.
    pub end_ms: i64,
    /// Text.
    pub text: String,
    /// Word timings; empty when unknown (times are then spread over the words by length).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub words: Vec<Word>,
    /// The decoder's figures for the segment, when the backend gives them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<SegmentStats>,
}

/// What the decoder says about a segment (the fields of OpenAI's `verbose_json` segments).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SegmentStats {
    /// The text's token ids.
    pub tokens: Vec<i32>,
    /// Mean log-probability of the text tokens.
    pub avg_logprob: f32,
    /// Probability that the window held no speech.
    pub no_speech_prob: f32,
    /// Text bytes over zlib-compressed bytes (high values mean repetition loops).
    pub compression_ratio: f32,
    /// Sampling temperature of the decode.
    pub temperature: f32,
}

impl SegmentStats {
    /// `len(text) / len(zlib(text))`, as whisper computes it.
    ///
    /// ```
    /// use mediajobs_processor::subtitle::SegmentStats;
    /// let loop_ = "the same line again. ".repeat(20);
    /// assert!(SegmentStats::compression_ratio_of(&loop_) > 2.4);
    /// assert!(SegmentStats::compression_ratio_of("A short, ordinary sentence.") < 2.0);
    /// ```
    pub fn compression_ratio_of(text: &str) -> f32 {
        use std::io::Write;
        if text.is_empty() {
            return 0.0;
        }
        let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        let compressed = enc
            .write_all(text.as_bytes())
            .and_then(|()| enc.finish())
            .map_or(text.len(), |v| v.len().max(1));
        text.len() as f32 / compressed as f32
    }
}

/// The rules of [`segment`].
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentOptions {
    /// Characters per line (default 42).
    pub max_line_chars: usize,
    /// Lines per cue (default 2).
    pub max_lines: usize,
    /// Minimum cue duration when the next cue leaves room (default 1000 ms).
    pub min_ms: i64,
    /// Maximum cue duration (default 7000 ms).
    pub max_ms: i64,
    /// A silence at least this long between words ends a cue (default 700 ms).
    pub pause_ms: i64,
}

impl Default for SegmentOptions {
    fn default() -> Self {
        SegmentOptions {
            max_line_chars: 42,
            max_lines: 2,
            min_ms: 1000,
            max_ms: 7000,
            pause_ms: 700,
        }
    }
}

/// Reading-speed figures of a set of cues (characters per second, line breaks excluded).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ReadingSpeed {
    /// Mean over cues.
    pub mean_cps: f64,
    /// Fastest cue.
    pub max_cps: f64,
    /// Cues above 20 characters per second (hard to read).
    pub cues_over_20_cps: usize,
}

/// Computes [`ReadingSpeed`].
pub fn reading_speed(cues: &[Cue]) -> ReadingSpeed {
    let speeds: Vec<f64> = cues
        .iter()
        .map(|c| {
            let chars = c.text.chars().filter(|ch| *ch != '\n').count() as f64;
            let secs = ((c.end_ms - c.start_ms).max(1) as f64) / 1000.0;
            chars / secs
        })
        .collect();
    let n = speeds.len().max(1) as f64;
    ReadingSpeed {
        mean_cps: speeds.iter().sum::<f64>() / n,
        max_cps: speeds.iter().copied().fold(0.0, f64::max),
        cues_over_20_cps: speeds.iter().filter(|s| **s > 20.0).count(),
    }
}

fn chars(s: &str) -> usize {
    s.chars().count()
}

/// Splits words longer than `max` characters (URLs, hashes) so that every piece fits a line.
fn split_long(w: &str, max: usize) -> Vec<String> {
    if chars(w) <= max {
        return vec![w.to_owned()];
    }
    let cs: Vec<char> = w.chars().collect();
    cs.chunks(max.max(1)).map(|c| c.iter().collect()).collect()
}

/// Wraps `words` into at most `max_lines` lines of at most `max_chars`, balancing the lines and
/// preferring a break after punctuation. `None` when they do not fit.
pub fn wrap_lines(words: &[String], max_chars: usize, max_lines: usize) -> Option<Vec<String>> {
    if words.is_empty() {
        return Some(vec![]);
    }
    let one = words.join(" ");
    if chars(&one) <= max_chars {
        return Some(vec![one]);
    }
    if max_lines < 2 {
        return None;
    }
    // Two lines: the best single break; more lines: greedy fill.
    if max_lines == 2 {
        let mut best: Option<(i64, usize)> = None;
        for k in 1..words.len() {
            let a = chars(&words[..k].join(" "));
            let b = chars(&words[k..].join(" "));
            if a > max_chars || b > max_chars {
                continue;
            }
            let punct = words[k - 1]
                .chars()
                .last()
                .is_some_and(|c| matches!(c, ',' | '.' | ';' | ':' | '!' | '?'));
            let score = (a as i64 - b as i64).abs() - if punct { 8 } else { 0 };
            if best.is_none_or(|(s, _)| score < s) {
                best = Some((score, k));
            }
        }
        return best.map(|(_, k)| vec![words[..k].join(" "), words[k..].join(" ")]);
    }
    let mut lines: Vec<String> = Vec::new();
    let mut cur = String::new();
    for w in words {
        let add = if cur.is_empty() {
            chars(w)
        } else {
            chars(&cur) + 1 + chars(w)
        };
        if add > max_chars {
            lines.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(w);
    }
    lines.push(cur);
    (lines.len() <= max_lines && lines.iter().all(|l| chars(l) <= max_chars)).then_some(lines)
}

/// The words of the segments with times; segments without word timings get their span spread
/// over their words in proportion to length. Times are made monotonic.
fn timed_words(segments: &[Segment], max_chars: usize) -> Vec<Word> {
    let mut out: Vec<Word> = Vec::new();
    for s in segments {
        let start = s.start_ms.max(0);
        let end = s.end_ms.max(start);
        let mut ws: Vec<Word> = if s.words.iter().any(|w| !w.text.trim().is_empty()) {
            s.words
                .iter()
                .filter(|w| !w.text.trim().is_empty())
                .map(|w| Word {
                    text: w.text.trim().to_owned(),
                    start_ms: w.start_ms.max(0),
                    end_ms: w.end_ms.max(w.start_ms.max(0)),
                })
                .collect()
        } else {
            let toks: Vec<&str> = s.text.split_whitespace().collect();
            let total: usize = toks.iter().map(|t| chars(t) + 1).sum();
            let span = end - start;
            let mut acc = 0usize;
            toks.iter()
                .map(|t| {
                    let a = start + span * acc as i64 / total.max(1) as i64;
                    acc += chars(t) + 1;
                    let b = start + span * acc as i64 / total.max(1) as i64;
                    Word {
                        text: (*t).to_owned(),
                        start_ms: a,
                        end_ms: b,
                    }
                })
                .collect()
        };
        // Long words become line-sized pieces sharing the word's span.
        let mut expanded = Vec::new();
        for w in ws.drain(..) {
            let parts = split_long(&w.text, max_chars);
            let n = parts.len() as i64;
            let span = w.end_ms - w.start_ms;
            for (i, p) in parts.into_iter().enumerate() {
                let i = i as i64;
                expanded.push(Word {
                    text: p,
                    start_ms: w.start_ms + span * i / n,
                    end_ms: w.start_ms + span * (i + 1) / n,
                });
            }
        }
        out.extend(expanded);
    }
    // Monotonic, non-overlapping word times.
    let mut last_end = 0;
    for w in &mut out {
        w.start_ms = w.start_ms.max(last_end);
        w.end_ms = w.end_ms.max(w.start_ms);
        last_end = w.end_ms;
    }
    out
}

fn ends_sentence(w: &str) -> bool {
    w.chars()
        .last()
        .is_some_and(|c| matches!(c, '.' | '!' | '?' | '…'))
}

fn ends_clause(w: &str) -> bool {
    w.chars()
        .last()
        .is_some_and(|c| matches!(c, ',' | ';' | ':' | '-' | '–' | '—'))
}

/// Turns transcription segments into subtitle cues:
///
/// - each cue's text wraps into at most `max_lines` lines of at most `max_line_chars`
///   characters (balanced, breaking after punctuation when it can);
/// - a cue lasts at most `max_ms`; it lasts at least `min_ms` unless the next cue starts
///   earlier, in which case it ends where the next begins;
/// - cues split at sentence ends, at clause punctuation once they are long, and at pauses of
///   `pause_ms` or more;
/// - cues never overlap and keep the words in order.
///
/// ```
/// use mediajobs_processor::subtitle::{segment, Segment, SegmentOptions};
/// let segs = vec![Segment { start_ms: 0, end_ms: 4000, text: "Hello there. How are you today?".into(), words: vec![], stats: None }];
/// let cues = segment(&segs, &SegmentOptions::default());
/// assert_eq!(cues.len(), 2);
/// assert_eq!(cues[0].text, "Hello there.");
/// ```
pub fn segment(segments: &[Segment], opts: &SegmentOptions) -> Vec<Cue> {
    let max_chars = opts.max_line_chars.max(8);
    let max_lines = opts.max_lines.max(1);
    let words = timed_words(segments, max_chars);
    let fits = |ws: &[Word]| {
        let texts: Vec<String> = ws.iter().map(|w| w.text.clone()).collect();
        wrap_lines(&texts, max_chars, max_lines).is_some()
    };
    let mut groups: Vec<Vec<Word>> = Vec::new();
    let mut cur: Vec<Word> = Vec::new();
    for w in words {
        if let Some(last) = cur.last() {
            let first_start = cur[0].start_ms;
            let mut candidate = cur.clone();
            candidate.push(w.clone());
            let too_long = !fits(&candidate) || w.end_ms - first_start > opts.max_ms;
            let pause = w.start_ms - last.end_ms >= opts.pause_ms;
            let sentence = ends_sentence(&last.text);
            let long_enough = cur.iter().map(|x| chars(&x.text) + 1).sum::<usize>()
                > max_chars * max_lines / 2
                || last.end_ms - first_start >= opts.max_ms / 2;
            let clause = ends_clause(&last.text) && long_enough;
            if pause || sentence || clause {
                groups.push(std::mem::take(&mut cur));
            } else if too_long {
                // Break at the last clause end in the second half of the cue, if any.
                let split_at = (cur.len() / 2..cur.len())
                    .rev()
                    .find(|&i| ends_clause(&cur[i].text) || ends_sentence(&cur[i].text))
                    .map(|i| i + 1)
                    .filter(|&k| k < cur.len());
                match split_at {
                    Some(k) => {
                        let rest = cur.split_off(k);
                        groups.push(std::mem::replace(&mut cur, rest));
                        // The carried words may still not take the new word.
                        let mut c2 = cur.clone();
                        c2.push(w.clone());
                        if !fits(&c2) || w.end_ms - cur[0].start_ms > opts.max_ms {
                            groups.push(std::mem::take(&mut cur));
                        }
                    }
                    None => groups.push(std::mem::take(&mut cur)),
                }
            }
        }
        cur.push(w);
    }
    if !cur.is_empty() {
        groups.push(cur);
    }

    let mut cues: Vec<Cue> = groups
        .into_iter()
        .filter(|g| !g.is_empty())
        .map(|g| {
            let texts: Vec<String> = g.iter().map(|w| w.text.clone()).collect();
            let lines =
                wrap_lines(&texts, max_chars, max_lines).unwrap_or_else(|| vec![texts.join(" ")]);
            let start = g[0].start_ms;
            let end = g.last().map_or(start, |w| w.end_ms);
            Cue {
                start_ms: start,
                end_ms: end.min(start + opts.max_ms),
                text: lines.join("\n"),
            }
        })
        .collect();

    // Durations: at least min_ms when the next cue leaves room, at most max_ms, no overlap.
    let n = cues.len();
    for i in 0..n {
        let next_start = cues.get(i + 1).map(|c| c.start_ms);
        let c = &mut cues[i];
        if c.end_ms - c.start_ms < opts.min_ms {
            c.end_ms = c.start_ms + opts.min_ms;
        }
        c.end_ms = c.end_ms.min(c.start_ms + opts.max_ms);
        if let Some(ns) = next_start {
            c.end_ms = c.end_ms.min(ns);
        }
        if c.end_ms <= c.start_ms {
            // Only when two cues start together (zero-length words): give it 1 ms.
            c.end_ms = c.start_ms + 1;
        }
    }
    // Shift any cue that would start before the previous one ends.
    for i in 1..n {
        let prev_end = cues[i - 1].end_ms;
        if cues[i].start_ms < prev_end {
            let d = cues[i].end_ms - cues[i].start_ms;
            cues[i].start_ms = prev_end;
            cues[i].end_ms = prev_end + d.max(1);
        }
    }
    cues
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(t: &str, a: i64, b: i64) -> Word {
        Word {
            text: t.into(),
            start_ms: a,
            end_ms: b,
        }
    }

    #[test]
    fn splits_at_pauses_and_limits() {
        let words = vec![
            w("The", 0, 200),
            w("quick", 200, 500),
            w("fox", 500, 800),
            w("jumps", 2000, 2300), // pause
            w("over", 2300, 2600),
        ];
        let cues = segment(
            &[Segment {
                start_ms: 0,
                end_ms: 2600,
                text: String::new(),
                words,
                stats: None,
            }],
            &SegmentOptions::default(),
        );
        assert_eq!(cues.len(), 2);
        assert_eq!(cues[0].text, "The quick fox");
        assert_eq!((cues[0].start_ms, cues[0].end_ms), (0, 1000));
        assert_eq!(cues[1].text, "jumps over");
    }

    #[test]
    fn wraps_two_balanced_lines() {
        let words: Vec<String> = "this sentence is long enough that it needs two lines to show"
            .split(' ')
            .map(String::from)
            .collect();
        let lines = wrap_lines(&words, 42, 2).unwrap();
        assert_eq!(lines.len(), 2);
        assert!(lines.iter().all(|l| l.chars().count() <= 42));
    }

    #[test]
    fn long_words_are_split() {
        let url = "x".repeat(100);
        let cues = segment(
            &[Segment {
                start_ms: 0,
                end_ms: 3000,
                text: url,
                words: vec![],
                stats: None,
            }],
            &SegmentOptions::default(),
        );
        for c in &cues {
            assert!(c.text.lines().all(|l| l.chars().count() <= 42));
            assert!(c.text.lines().count() <= 2);
        }
        let total: usize = cues.iter().map(|c| c.text.replace('\n', "").len()).sum();
        assert_eq!(total, 100);
    }
}
