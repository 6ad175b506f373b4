//! The HTTP form of each job type's `opts` as OpenAPI schemas (`TranscribeOptions`,
//! `GenerateSrtOptions`, `ConvertOptions` in `/openapi.json`). Clients that build forms from
//! the document (the dashboard does) get every option with its range; a test checks that
//! these schemas name exactly the fields `mediajobs_jobs::parse_params` accepts, so the two
//! cannot drift apart.

use serde::Deserialize;
use utoipa::ToSchema;

/// Declares an options struct: the transcription options every transcribing type takes, then
/// the type's own fields.
macro_rules! transcription_options {
    ($(#[$meta:meta])* $name:ident { $($own:tt)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Deserialize, ToSchema)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)] // A schema: serde and utoipa read the fields.
        pub struct $name {
            /// The transcription model: an installed model's name (`GET /models`); the
            /// server's default when absent. One that is not installed is refused with
            /// `UnknownModel`.
            #[schema(example = "base", pattern = "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$")]
            pub model: Option<String>,
            /// A language code (`en`, `de`, …) or `auto` (default) to detect it.
            #[schema(example = "auto", pattern = "^(auto|[a-z]{2,3})$")]
            pub language: Option<String>,
            /// Beam search width (1 = greedy).
            #[schema(minimum = 1, maximum = 8)]
            pub beam_size: Option<u32>,
            /// Candidates sampled with greedy decoding.
            #[schema(minimum = 1, maximum = 8)]
            pub best_of: Option<u32>,
            /// Sampling temperature (0 = deterministic).
            #[schema(minimum = 0.0, maximum = 1.0)]
            pub temperature: Option<f32>,
            /// Text that primes the decoder (names, spelling).
            #[schema(max_length = 1000)]
            pub initial_prompt: Option<String>,
            /// Segments more likely silent than this are dropped.
            #[schema(minimum = 0.0, maximum = 1.0)]
            pub no_speech_threshold: Option<f32>,
            /// Translate to English instead of transcribing.
            #[serde(default)]
            pub translate: bool,
            /// Include word timings in the result.
            #[serde(default)]
            pub word_timestamps: bool,
            /// Voice activity detection (Silero VAD): whisper hears only the speech, so
            /// silence, music and noise give no cues, and long pauses cost nothing; times
            /// still refer to the original audio. Default: on for `generate_srt` when the
            /// server has a VAD model (`GET /models`, `vad`), off for `transcribe` (a
            /// transcript keeps everything whisper hears). `true` without a VAD model is
            /// refused with `WhisperUnavailable`.
            pub vad: Option<bool>,
            $($own)*
        }
    };
}

transcription_options! {
    /// `opts` of `transcribe` and `batch_transcribe`.
    TranscribeOptions {
        /// Clean the audio first (remove rumble and DC offset, normalize the level).
        #[serde(default)]
        pub clean_audio: bool,
    }
}

/// The formats `generate_srt` saves.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SubtitleFileFormat {
    /// SubRip (`.srt`), the default.
    Srt,
    /// WebVTT (`.vtt`).
    Vtt,
}

transcription_options! {
    /// `opts` of `generate_srt` and `batch_generate_srt`.
    GenerateSrtOptions {
        /// The format of the saved file (default `srt`).
        pub format: Option<SubtitleFileFormat>,
    }
}

/// Speed/quality preset of `convert`.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ConvertPreset {
    /// Fastest encode.
    Performance,
    /// The default.
    Balanced,
    /// Smallest file for the quality.
    Quality,
}

/// `opts` of `convert` and `batch_convert`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // A schema: serde and utoipa read the fields.
pub struct ConvertOptions {
    /// Largest picture, `WIDTHxHEIGHT` (16–8192 each; default `1280x720`); scaled down to
    /// fit, never up.
    #[schema(example = "1280x720", pattern = "^[0-9]{2,4}[xX][0-9]{2,4}$")]
    pub resolution: Option<String>,
    /// Video bitrate ceiling: `2500k`, `2.5M` or bit/s (64k–200M).
    #[schema(example = "2500k", pattern = "^[0-9]+(\\.[0-9]+)?[kKmM]?$")]
    pub target_bitrate: Option<String>,
    /// Speed/quality preset (default `balanced`).
    pub preset: Option<ConvertPreset>,
}

/// The options schema of each job type that takes `opts` (`fix_srt` takes `model` and
/// `sys_msg` instead): `(type, schema name)`, batch types included.
pub const OPTIONS_SCHEMAS: &[(&str, &str)] = &[
    ("generate_srt", "GenerateSrtOptions"),
    ("batch_generate_srt", "GenerateSrtOptions"),
    ("transcribe", "TranscribeOptions"),
    ("batch_transcribe", "TranscribeOptions"),
    ("convert", "ConvertOptions"),
    ("batch_convert", "ConvertOptions"),
];

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeSet;

    use mediajobs_jobs::{Operation, parse_params};
    use serde_json::{Value, json};
    use utoipa::OpenApi;

    use super::OPTIONS_SCHEMAS;
    use crate::ApiDoc;

    fn schema_fields(name: &str) -> BTreeSet<String> {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let s = &doc["components"]["schemas"][name];
        assert_eq!(s["additionalProperties"], false, "{name}: {s}");
        s["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("{name} has no properties: {s}"))
            .keys()
            .cloned()
            .collect()
    }

    /// The fields the parser accepts, read from its own unknown-field error (serde lists
    /// every expected field there).
    fn parser_fields(op: Operation) -> BTreeSet<String> {
        let err = parse_params(op, Some(&json!({"no_such_option": 1})), None, None)
            .unwrap_err()
            .to_string();
        let list = err
            .split("expected one of ")
            .nth(1)
            .unwrap_or_else(|| panic!("{err}"));
        let mut out: BTreeSet<String> = list
            .split(", ")
            .map(|f| {
                f.trim_matches(|c: char| c == '`' || c.is_whitespace())
                    .to_owned()
            })
            .collect();
        // `format` is taken off before the transcription options are parsed, and
        // `clean_audio` is refused before them (it is `transcribe`'s only).
        if op == Operation::GenerateSrt {
            out.insert("format".into());
            out.remove("clean_audio");
        }
        out
    }

    fn example(field: &str) -> Value {
        match field {
            "language" => json!("en"),
            "model" => json!("base"),
            "beam_size" | "best_of" => json!(2),
            "temperature" | "no_speech_threshold" => json!(0.5),
            "initial_prompt" => json!("Names: Ada"),
            "translate" | "word_timestamps" | "clean_audio" | "vad" => json!(true),
            "format" => json!("vtt"),
            "resolution" => json!("640x360"),
            "target_bitrate" => json!("900k"),
            "preset" => json!("quality"),
            other => panic!("no example for {other}: add one"),
        }
    }

    #[test]
    fn options_schemas_name_exactly_what_the_parser_accepts() {
        for (ty, schema) in OPTIONS_SCHEMAS {
            let op = Operation::parse(ty.trim_start_matches("batch_"), false).unwrap();
            let fields = schema_fields(schema);
            assert_eq!(fields, parser_fields(op), "{ty} vs {schema}");
            // Every documented field, set to a valid value, is accepted.
            let all: serde_json::Map<String, Value> =
                fields.iter().map(|f| (f.clone(), example(f))).collect();
            parse_params(op, Some(&Value::Object(all)), None, None)
                .unwrap_or_else(|e| panic!("{ty}: {e}"));
        }
    }
}
