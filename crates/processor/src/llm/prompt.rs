//! What the model sees and how its answers are checked: cue texts as numbered one-line pieces
//! (markup kept aside), windows of cues, the user prompt, the validation of an answer and the
//! re-wrapping of accepted text. Pure functions; [`super::refine`] drives them.

use std::ops::Range;

use super::refine::RefineOptions;
use crate::subtitle::{Cue, wrap_lines};

/// A cue's text as the model sees it: one line, without wrapping markup.
#[derive(Debug, Clone)]
pub(super) struct Piece {
    pub(super) id: usize,
    pub(super) prefix: String,
    pub(super) body: String,
    pub(super) suffix: String,
}

/// Separates leading/trailing markup (`{\an8}`, `<i>…</i>`, `<font …>`) from the text so the
/// model never sees or breaks it.
pub(super) fn split_markup(text: &str) -> (String, String, String) {
    let flat = text
        .split('\n')
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ");
    let mut body = flat.as_str();
    let mut prefix = String::new();
    let mut suffix = String::new();
    loop {
        let b = body.trim_start();
        let tag_end = if b.starts_with('{') {
            b.find('}')
        } else if b.starts_with('<') && !b.starts_with("</") {
            b.find('>')
        } else {
            None
        };
        match tag_end {
            Some(i) => {
                prefix.push_str(&b[..=i]);
                body = &b[i + 1..];
            }
            None => break,
        }
    }
    loop {
        let b = body.trim_end();
        match (b.ends_with('>'), b.rfind("</")) {
            (true, Some(i)) => {
                suffix.insert_str(0, &b[i..]);
                body = &b[..i];
            }
            _ => break,
        }
    }
    (prefix, body.trim().to_owned(), suffix)
}

pub(super) fn levenshtein(a: &[char], b: &[char]) -> usize {
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Similarity of two texts in 0..=1 (case-insensitive, on letters and digits).
pub(super) fn similarity(a: &str, b: &str) -> (f64, usize) {
    let norm = |s: &str| -> Vec<char> {
        s.to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric())
            .collect()
    };
    let (a, b) = (norm(a), norm(b));
    let d = levenshtein(&a, &b);
    let m = a.len().max(b.len()).max(1);
    (1.0 - d as f64 / m as f64, d)
}

/// Splits the cues into windows by count, characters and scene gaps.
pub(super) fn windows(pieces: &[Piece], cues: &[Cue], opts: &RefineOptions) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut chars = 0;
    for i in 0..pieces.len() {
        let len = pieces[i].body.chars().count();
        let gap = i > 0 && cues[i].start_ms - cues[i - 1].end_ms >= opts.scene_gap_ms;
        let full = i > start
            && (i - start >= opts.max_window_cues.max(1) || chars + len > opts.max_window_chars);
        if i > start && (gap || full) {
            out.push(start..i);
            start = i;
            chars = 0;
        }
        chars += len;
    }
    if start < pieces.len() {
        out.push(start..pieces.len());
    }
    out
}

pub(super) fn user_prompt(
    window: &[Piece],
    context: &[(usize, String)],
    rejected: Option<&str>,
) -> String {
    let first = window.first().map_or(0, |p| p.id);
    let last = window.last().map_or(0, |p| p.id);
    let n = window.len();
    let mut s = String::new();
    if let Some(reason) = rejected {
        s.push_str(&format!(
            "Your previous answer was rejected: {reason}\nThis time answer with exactly {n} \
             lines numbered #{first} to #{last}, in order, each line starting with its number, \
             and nothing else: no introduction, no notes, no code fences.\n\n"
        ));
    }
    s.push_str(&format!(
        "Fix the {n} subtitle lines below. Answer with exactly {n} lines, in this form and in \
         this order:\n#<number> <fixed text>\nKeep each line's content in its own line. Do not \
         merge, split, add, drop or renumber lines. Do not add comments or code fences. If a \
         line needs no fix, return it unchanged.\n"
    ));
    if !context.is_empty() {
        s.push_str("\nEarlier lines, already fixed, for context only (do not return them):\n");
        for (id, t) in context {
            s.push_str(&format!("#{id} {t}\n"));
        }
    }
    s.push_str("\nLines to fix:\n");
    for p in window {
        s.push_str(&format!("#{} {}\n", p.id, p.body));
    }
    s
}

/// Validates an answer for `window`; returns the fixed bodies in order.
pub(super) fn validate_answer(
    content: Option<&str>,
    finish_reason: Option<&str>,
    window: &[Piece],
    min_similarity: f64,
) -> Result<Vec<String>, String> {
    if finish_reason == Some("length") {
        return Err("the answer was cut off (finish_reason: length)".into());
    }
    let content = content.map(str::trim).unwrap_or_default();
    if content.is_empty() {
        return Err("the answer was empty".into());
    }
    if content.contains("```") {
        return Err("the answer contained a code fence".into());
    }
    let mut got: Vec<(usize, String)> = Vec::new();
    for line in content.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let rest = line.strip_prefix('#').ok_or_else(|| {
            format!(
                "the answer contained text that is not a numbered line: '{}'",
                short(line)
            )
        })?;
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let id: usize = digits
            .parse()
            .map_err(|_| format!("a line had no number: '{}'", short(line)))?;
        let text = rest[digits.len()..]
            .trim_start_matches([':', '.', ')', '-', ']'])
            .trim()
            .to_owned();
        got.push((id, text));
    }
    let want: Vec<usize> = window.iter().map(|p| p.id).collect();
    let ids: Vec<usize> = got.iter().map(|g| g.0).collect();
    if ids != want {
        let missing: Vec<usize> = want.iter().filter(|w| !ids.contains(w)).copied().collect();
        let extra: Vec<usize> = ids.iter().filter(|i| !want.contains(i)).copied().collect();
        return Err(if !missing.is_empty() || !extra.is_empty() {
            format!("expected lines {want:?}; missing {missing:?}, unexpected {extra:?}")
        } else {
            format!("expected lines {want:?} in order, got {ids:?}")
        });
    }
    let mut out = Vec::with_capacity(window.len());
    for ((id, text), src) in got.into_iter().zip(window) {
        if text.is_empty() {
            return Err(format!("line #{id} was empty"));
        }
        let (sim, dist) = similarity(&src.body, &text);
        if sim < min_similarity && dist > 3 {
            return Err(format!(
                "line #{id} changed too much (similarity {sim:.2}); text must stay in its own line"
            ));
        }
        let src_len = src.body.chars().count();
        let limit = (84usize).max(src_len + src_len * 3 / 10 + 1);
        if text.chars().count() > limit {
            return Err(format!(
                "line #{id} became too long ({} characters)",
                text.chars().count()
            ));
        }
        out.push(text);
    }
    Ok(out)
}

pub(super) fn short(s: &str) -> String {
    s.chars().take(80).collect()
}

/// Re-wraps a fixed body into subtitle lines (two of 42 when it fits) with its markup.
pub(super) fn rebuild(piece: &Piece, body: &str) -> String {
    let words: Vec<String> = body.split_whitespace().map(String::from).collect();
    let lines = wrap_lines(&words, 42, 2).unwrap_or_else(|| {
        wrap_lines(&words, 42, usize::MAX / 2).unwrap_or_else(|| vec![words.join(" ")])
    });
    format!("{}{}{}", piece.prefix, lines.join("\n"), piece.suffix)
}
