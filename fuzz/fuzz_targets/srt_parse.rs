//! Fuzzes the subtitle parsers: no input may panic, and whatever parses must survive
//! sanitize → format → parse unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mediajobs_processor::subtitle::{parse_any, parse_srt, parse_vtt, sanitize, to_srt, to_vtt};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = parse_vtt(&text);
    if let Ok(cues) = parse_srt(&text) {
        let clean = sanitize(&cues);
        if !clean.is_empty() {
            let again = parse_srt(&to_srt(&clean)).expect("formatted SRT parses");
            assert_eq!(again, clean, "SRT round trip");
            let again = parse_vtt(&to_vtt(&clean)).expect("formatted VTT parses");
            assert_eq!(again, clean, "VTT round trip");
        }
    }
    let _ = parse_any(&text);
});
