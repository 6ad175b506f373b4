//! Property tests: segmentation rules hold on every generated cue; the SRT/VTT parsers never
//! panic and round-trip what the formatters write.
#![allow(clippy::unwrap_used)]

use mediajobs_processor::subtitle::{
    Cue, Segment, SegmentOptions, Word, parse_any, parse_srt, parse_vtt, sanitize, segment, to_srt,
    to_vtt,
};
use proptest::prelude::*;

fn word_text() -> impl Strategy<Value = String> {
    (
        prop::string::string_regex("[A-Za-zéü']{1,12}").unwrap(),
        prop::option::weighted(0.2, prop::sample::select(vec![",", ".", "?", "!", ";"])),
        prop::bool::weighted(0.02),
    )
        .prop_map(|(w, p, huge)| {
            let mut w = if huge { w.repeat(8) } else { w };
            if let Some(p) = p {
                w.push_str(p);
            }
            w
        })
}

/// Segments of random words with random gaps/durations; some segments lack word timings.
fn segments() -> impl Strategy<Value = Vec<Segment>> {
    prop::collection::vec(
        (
            prop::collection::vec((word_text(), 0i64..1500, 30i64..900), 1..25),
            prop::bool::weighted(0.3),
        ),
        1..12,
    )
    .prop_map(|segs| {
        let mut t = 0i64;
        segs.into_iter()
            .map(|(words, no_words)| {
                let start = t;
                let ws: Vec<Word> = words
                    .into_iter()
                    .map(|(text, gap, dur)| {
                        t += gap / 4;
                        let w = Word {
                            text,
                            start_ms: t,
                            end_ms: t + dur,
                        };
                        t += dur;
                        w
                    })
                    .collect();
                let text = ws
                    .iter()
                    .map(|w| w.text.as_str())
                    .collect::<Vec<_>>()
                    .join(" ");
                Segment {
                    start_ms: start,
                    end_ms: t,
                    text,
                    words: if no_words { vec![] } else { ws },
                    stats: None,
                }
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(600))]

    #[test]
    fn segmentation_rules_hold(segs in segments()) {
        let opts = SegmentOptions::default();
        let cues = segment(&segs, &opts);
        let input: String = segs.iter().flat_map(|s| s.text.split_whitespace()).collect();
        let output: String = cues.iter().flat_map(|c| c.text.split_whitespace()).collect();
        prop_assert_eq!(input, output, "words kept, in order");
        for (i, c) in cues.iter().enumerate() {
            let lines: Vec<&str> = c.text.split('\n').collect();
            prop_assert!(lines.len() <= 2, "cue {} has {} lines", i, lines.len());
            for l in &lines {
                prop_assert!(l.chars().count() <= 42, "line too long: {:?}", l);
                prop_assert!(!l.trim().is_empty());
            }
            let d = c.end_ms - c.start_ms;
            prop_assert!(d > 0 && d <= 7000, "cue {} lasts {} ms", i, d);
            if let Some(n) = cues.get(i + 1) {
                prop_assert!(c.end_ms <= n.start_ms, "cue {} overlaps the next", i);
                if d < 1000 {
                    prop_assert_eq!(c.end_ms, n.start_ms, "short cue {} only when the next starts", i);
                }
            } else {
                prop_assert!(d >= 1000 || d == 7000, "last cue {} lasts {} ms", i, d);
            }
        }
    }

    #[test]
    fn parsers_never_panic(s in ".{0,400}") {
        let _ = parse_srt(&s);
        let _ = parse_vtt(&s);
        let _ = parse_any(&s);
    }

    #[test]
    fn parsers_never_panic_on_srt_like_noise(
        parts in prop::collection::vec(
            prop::sample::select(vec![
                "1", "\n", "\r\n", "\n\n", "00:00:01,000", "-->", " --> ", "00:61:00,000", ",", ".",
                "99", "text", "\u{feff}", "WEBVTT", "NOTE", ":", "-", "0", "é", "00:00.5",
            ]),
            0..80,
        )
    ) {
        let s: String = parts.concat();
        if let Ok(cues) = parse_any(&s) {
            let fixed = sanitize(&cues);
            let _ = to_srt(&fixed);
        }
    }

    #[test]
    fn srt_and_vtt_round_trip(raw in prop::collection::vec((0i64..360_000_000, 1i64..60_000, "[a-zA-Z0-9 ,.!?]{1,30}(\n[a-z ]{1,20})?"), 1..30)) {
        let cues: Vec<Cue> = raw.into_iter().map(|(s, d, t)| Cue { start_ms: s, end_ms: s + d, text: t }).collect();
        let clean = sanitize(&cues);
        prop_assume!(!clean.is_empty());
        prop_assert_eq!(parse_srt(&to_srt(&clean)).unwrap(), clean.clone());
        prop_assert_eq!(parse_vtt(&to_vtt(&clean)).unwrap(), clean.clone());
        prop_assert_eq!(sanitize(&clean), clean);
    }
}
