//! Token cost of fixing a 100-cue SRT through the real `fix_srt` pipeline (windows, context,
//! validation, retries), against any OpenAI-compatible server.
//!
//! ```text
//! cargo bench -p mediajobs-processor --bench llm_cost -- --base-url http://127.0.0.1:18190/v1 \
//!     [--model NAME] [--cues 100] [--api-key KEY]
//! ```
//! Prints the usage the job result records (prompt / completion tokens, wasted tokens of
//! rejected answers, requests) and the wall time.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use mediajobs_processor::llm::{
    LlmRefiner, ProviderConfig, Providers, RefineOptions, SubtitleRefiner,
};
use mediajobs_processor::subtitle::Cue;
use mediajobs_processor::{CancellationToken, no_progress};

/// Sentences of an ordinary spoken transcript, with the errors speech recognition makes
/// (homophones, missing apostrophes and capitals, split words).
const LINES: &[&str] = &[
    "so today were going to talk about the weather",
    "its been raining alot this week",
    "and the forcast says it will continue",
    "their is a chance of sun on saturday",
    "but dont count on it",
    "the farmers are happy though",
    "they needed the rain after the dry summer",
    "lets look at the map",
    "the storm is moving east from the coast",
    "winds could reach fifty kilometers per hour",
    "so secure anything loose in you're garden",
    "schools will be open as usual",
    "the city has cleared the drains",
    "if you drive be careful on the bridge",
    "it gets icy in the morning",
    "now lets turn to the weekend",
    "the market will be held in door this time",
    "and the concert has been moved to sunday",
    "tickets are still available on line",
    "thats all for today see you tomorrow",
];

fn cues(n: usize) -> Vec<Cue> {
    (0..n)
        .map(|i| {
            let start = i as i64 * 3_000;
            Cue {
                start_ms: start,
                end_ms: start + 2_500,
                text: LINES[i % LINES.len()].to_owned(),
            }
        })
        .collect()
}

fn main() {
    let v: Vec<String> = std::env::args().skip(1).collect();
    let get = |k: &str| {
        v.iter()
            .position(|a| a == k)
            .and_then(|i| v.get(i + 1).cloned())
    };
    let Some(base_url) = get("--base-url") else {
        println!("usage: --base-url URL [--model NAME] [--cues N] [--api-key KEY]");
        return;
    };
    let model = get("--model").unwrap_or_else(|| "default".into());
    let n: usize = get("--cues").map_or(100, |s| s.parse().expect("--cues N"));
    let mut cfg = ProviderConfig::new("bench", &base_url, get("--api-key"));
    cfg.timeout = Duration::from_secs(600);
    cfg.max_concurrency = 1;
    let refiner = LlmRefiner::new(Arc::new(Providers::new(vec![cfg]).unwrap()));
    let source = cues(n);
    let opts = RefineOptions {
        deadline: Duration::from_secs(3600),
        ..Default::default()
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let t0 = Instant::now();
    let res = rt.block_on(refiner.refine(
        &source,
        &format!("bench:{model}"),
        &opts,
        no_progress(),
        &CancellationToken::new(),
    ));
    let wall = t0.elapsed().as_secs_f64();
    let chars: usize = source.iter().map(|c| c.text.len()).sum();
    println!("{n} cues, {chars} characters of text, model {model}, {wall:.1} s");
    match res {
        Ok(r) => {
            let u = &r.usage;
            println!(
                "| {n} | {} | {} | {} | {} | {} | {} | {} | {wall:.1} s |",
                r.windows,
                u.requests,
                u.prompt_tokens,
                u.completion_tokens,
                u.prompt_tokens + u.completion_tokens,
                u.wasted_prompt_tokens + u.wasted_completion_tokens,
                r.changed_cues
            );
            println!(
                "columns: cues | windows | requests | prompt tok | completion tok | total tok | wasted tok | changed cues | wall"
            );
        }
        Err(e) => println!("failed: {} ({e})", e.code()),
    }
}
