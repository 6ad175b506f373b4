//! LLM subtitle fixing: the model only ever sees numbered cue texts; ids, count and timings
//! come from the source and are re-attached locally. Every answer is validated; invalid
//! answers are retried with a stricter prompt, then with smaller windows; a window that still
//! fails fails the whole job (`LLMOutputInvalid`) and nothing is saved.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::prompt::{Piece, rebuild, split_markup, user_prompt, validate_answer, windows};
use super::{Provider, Providers, http::map_openai_error};
use crate::progress::{ProcessorError, Progress};
use crate::subtitle::Cue;

/// The system prompt used when a job gives none (`sys_msg` overrides it).
pub const DEFAULT_SYSTEM_PROMPT: &str = "You are a meticulous subtitle editor. You fix the \
text of subtitle lines produced by speech recognition: spelling, grammar, punctuation, \
capitalization and obvious mis-hearings. You keep the meaning, the language, the tone and the \
length of every line. You never merge, split, reorder, add, drop or translate lines.";

/// Tuning of [`LlmRefiner`].
#[derive(Debug, Clone)]
pub struct RefineOptions {
    /// Replaces [`DEFAULT_SYSTEM_PROMPT`].
    pub system_prompt: Option<String>,
    /// Cues per window (default 25).
    pub max_window_cues: usize,
    /// Characters of cue text per window (default 1500).
    pub max_window_chars: usize,
    /// A silence this long starts a new window (default 30 s).
    pub scene_gap_ms: i64,
    /// Previous fixed cues sent as read-only context (default 5).
    pub context_cues: usize,
    /// Minimum similarity of a fixed line to its source (default 0.5): text must not move
    /// between lines.
    pub min_similarity: f64,
    /// Total time for the whole file (default 30 min).
    pub deadline: Duration,
    /// Sampling temperature (default 0).
    pub temperature: f32,
    /// Receives the tokens spent when the run ends, whether it succeeded or not, so that the
    /// cost of a failed or cancelled run is not lost (a success also has it in its report).
    pub spent: Option<Arc<std::sync::Mutex<TokenUsage>>>,
}

impl Default for RefineOptions {
    fn default() -> Self {
        RefineOptions {
            system_prompt: None,
            max_window_cues: 25,
            max_window_chars: 1500,
            scene_gap_ms: 30_000,
            context_cues: 5,
            min_similarity: 0.5,
            deadline: Duration::from_secs(30 * 60),
            temperature: 0.0,
            spent: None,
        }
    }
}

/// Tokens spent, as the provider reported them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenUsage {
    /// Prompt tokens of all requests.
    pub prompt_tokens: u64,
    /// Completion tokens of all requests.
    pub completion_tokens: u64,
    /// Prompt tokens of requests whose answer was rejected.
    pub wasted_prompt_tokens: u64,
    /// Completion tokens of rejected answers.
    pub wasted_completion_tokens: u64,
    /// Requests sent.
    pub requests: u64,
    /// Answers rejected by validation.
    pub invalid_answers: u64,
}

/// The outcome of a refinement.
#[derive(Debug, Clone, PartialEq)]
pub struct RefineReport {
    /// The fixed cues: same count and timings as the source.
    pub cues: Vec<Cue>,
    /// Tokens spent.
    pub usage: TokenUsage,
    /// Windows sent (after any splitting).
    pub windows: usize,
    /// Cues whose text changed.
    pub changed_cues: usize,
}

/// Fixes subtitle text with an LLM.
#[async_trait]
pub trait SubtitleRefiner: Send + Sync {
    /// Checks a `provider:model` selector (at submission).
    fn validate_model(&self, selector: &str) -> Result<(), ProcessorError>;

    /// The provider names a selector may start with, for clients to offer (none by default).
    fn providers(&self) -> Vec<String> {
        Vec::new()
    }

    /// Fixes `cues` with the model named by `selector`.
    async fn refine(
        &self,
        cues: &[Cue],
        selector: &str,
        opts: &RefineOptions,
        progress: Progress,
        cancel: &CancellationToken,
    ) -> Result<RefineReport, ProcessorError>;
}

/// [`SubtitleRefiner`] over OpenAI-compatible chat completions.
#[derive(Debug, Clone)]
pub struct LlmRefiner {
    providers: Arc<Providers>,
}

impl LlmRefiner {
    /// A refiner over the configured providers.
    pub fn new(providers: Arc<Providers>) -> Self {
        LlmRefiner { providers }
    }
}

#[derive(Deserialize)]
struct ChatResp {
    #[serde(default)]
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    message: Msg,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize, Default)]
struct Msg {
    #[serde(default)]
    content: Option<String>,
}

#[derive(Deserialize, Default)]
struct Usage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
}

struct Run<'a> {
    provider: &'a Provider,
    model: &'a str,
    system: &'a str,
    opts: &'a RefineOptions,
    cancel: &'a CancellationToken,
    deadline: Instant,
    usage: TokenUsage,
    windows: usize,
}

impl Run<'_> {
    async fn ask(
        &mut self,
        window: &[Piece],
        context: &[(usize, String)],
        rejected: Option<&str>,
    ) -> Result<(Option<String>, Option<String>, u64, u64), ProcessorError> {
        let chars: usize = window.iter().map(|p| p.body.chars().count()).sum();
        let budget = 128 + 24 * window.len() + chars;
        let body = json!({
            "model": self.model,
            "messages": [
                {"role": "system", "content": self.system},
                {"role": "user", "content": user_prompt(window, context, rejected)},
            ],
            "temperature": self.opts.temperature,
            "max_completion_tokens": budget,
            "stream": false,
        });
        let permit = tokio::select! {
            p = self.provider.permits.clone().acquire_owned() => p.map_err(|_| ProcessorError::Internal("provider closed".into()))?,
            _ = self.cancel.cancelled() => return Err(ProcessorError::Cancelled),
        };
        self.usage.requests += 1;
        self.windows += 1;
        let chat = self.provider.client.chat();
        let resp: Result<ChatResp, _> = tokio::select! {
            r = chat.create_byot(body) => r,
            _ = self.cancel.cancelled() => return Err(ProcessorError::Cancelled),
            _ = tokio::time::sleep_until(self.deadline) => {
                return Err(ProcessorError::Timeout("fixing the subtitles took longer than the job's deadline".into()));
            }
        };
        drop(permit);
        let resp = resp.map_err(map_openai_error)?;
        let (pt, ct) = resp
            .usage
            .map_or((0, 0), |u| (u.prompt_tokens, u.completion_tokens));
        self.usage.prompt_tokens += pt;
        self.usage.completion_tokens += ct;
        let choice = resp.choices.into_iter().next();
        Ok((
            choice.as_ref().and_then(|c| c.message.content.clone()),
            choice.and_then(|c| c.finish_reason),
            pt,
            ct,
        ))
    }

    /// One sub-window: the normal prompt, then a stricter one. `Ok(Err(reason))` when both
    /// answers were rejected.
    async fn attempt(
        &mut self,
        window: &[Piece],
        context: &[(usize, String)],
    ) -> Result<Result<Vec<String>, String>, ProcessorError> {
        let mut reason: Option<String> = None;
        for _ in 0..2 {
            let (content, finish, pt, ct) = self.ask(window, context, reason.as_deref()).await?;
            match validate_answer(
                content.as_deref(),
                finish.as_deref(),
                window,
                self.opts.min_similarity,
            ) {
                Ok(texts) => return Ok(Ok(texts)),
                Err(r) => {
                    tracing::warn!(first = window[0].id, n = window.len(), reason = %r, "LLM answer rejected");
                    self.usage.invalid_answers += 1;
                    self.usage.wasted_prompt_tokens += pt;
                    self.usage.wasted_completion_tokens += ct;
                    reason = Some(r);
                }
            }
        }
        Ok(Err(reason.unwrap_or_default()))
    }

    /// Fixes one window: normal prompt, stricter prompt, then halves (down to single lines).
    async fn fix(
        &mut self,
        window: &[Piece],
        mut context: Vec<(usize, String)>,
    ) -> Result<Vec<String>, ProcessorError> {
        let mut out: Vec<Option<String>> = vec![None; window.len()];
        let mut stack: Vec<Range<usize>> = Vec::new();
        stack.push(0..window.len());
        while let Some(r) = stack.pop() {
            match self.attempt(&window[r.clone()], &context).await? {
                Ok(texts) => {
                    for (i, t) in r.clone().zip(texts) {
                        context.push((window[i].id, t.clone()));
                        out[i] = Some(t);
                    }
                    let keep = self.opts.context_cues;
                    context = context.split_off(context.len().saturating_sub(keep));
                }
                Err(reason) if r.len() == 1 => {
                    return Err(ProcessorError::LlmOutputInvalid(format!(
                        "the model's answer for line #{} was unusable after retries: {reason}",
                        window[r.start].id
                    )));
                }
                Err(_) => {
                    let mid = r.start + r.len() / 2;
                    stack.push(mid..r.end);
                    stack.push(r.start..mid);
                }
            }
        }
        out.into_iter()
            .map(|t| t.ok_or_else(|| ProcessorError::Internal("a line was left unfixed".into())))
            .collect()
    }
}

#[async_trait]
impl SubtitleRefiner for LlmRefiner {
    fn validate_model(&self, selector: &str) -> Result<(), ProcessorError> {
        self.providers.resolve(selector).map(|_| ())
    }

    fn providers(&self) -> Vec<String> {
        self.providers.names()
    }

    async fn refine(
        &self,
        cues: &[Cue],
        selector: &str,
        opts: &RefineOptions,
        progress: Progress,
        cancel: &CancellationToken,
    ) -> Result<RefineReport, ProcessorError> {
        let (provider, model) = self.providers.resolve(selector)?;
        let pieces: Vec<Piece> = cues
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let (prefix, body, suffix) = split_markup(&c.text);
                Piece {
                    id: i + 1,
                    prefix,
                    body,
                    suffix,
                }
            })
            .collect();
        let system = opts
            .system_prompt
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .unwrap_or(DEFAULT_SYSTEM_PROMPT);
        let mut run = Run {
            provider: &provider,
            model: &model,
            system,
            opts,
            cancel,
            deadline: Instant::now() + opts.deadline,
            usage: TokenUsage::default(),
            windows: 0,
        };
        let plan = windows(&pieces, cues, opts);
        let mut fixed: Vec<String> = pieces.iter().map(|p| p.body.clone()).collect();
        let res = run_windows(&mut run, plan, &pieces, &mut fixed, progress).await;
        if let Some(spent) = &opts.spent {
            *spent
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = run.usage.clone();
        }
        res?;
        let mut changed = 0;
        let out: Vec<Cue> = cues
            .iter()
            .zip(&pieces)
            .zip(&fixed)
            .map(|((c, p), body)| {
                if body == &p.body {
                    c.clone()
                } else {
                    changed += 1;
                    Cue {
                        start_ms: c.start_ms,
                        end_ms: c.end_ms,
                        text: rebuild(p, body),
                    }
                }
            })
            .collect();
        Ok(RefineReport {
            cues: out,
            usage: run.usage,
            windows: run.windows,
            changed_cues: changed,
        })
    }
}

/// Fixes the planned windows one after another, each with the previous fixed lines as context.
async fn run_windows(
    run: &mut Run<'_>,
    plan: Vec<Range<usize>>,
    pieces: &[Piece],
    fixed: &mut [String],
    progress: Progress,
) -> Result<(), ProcessorError> {
    let opts = run.opts;
    let n = plan.len().max(1);
    for (wi, range) in plan.into_iter().enumerate() {
        // Pieces whose body is empty (markup only) pass through untouched.
        let todo: Vec<Piece> = pieces[range.clone()]
            .iter()
            .filter(|p| !p.body.is_empty())
            .cloned()
            .collect();
        if !todo.is_empty() {
            let ctx_start = range.start.saturating_sub(opts.context_cues);
            let context: Vec<(usize, String)> = (ctx_start..range.start)
                .map(|i| (i + 1, fixed[i].clone()))
                .filter(|(_, t)| !t.is_empty())
                .collect();
            let texts = run.fix(&todo, context).await?;
            for (p, t) in todo.iter().zip(texts) {
                fixed[p.id - 1] = t;
            }
        }
        progress.report((wi + 1) as f64 / n as f64, "fixing");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::prompt::similarity;
    use super::*;

    fn piece(id: usize, body: &str) -> Piece {
        Piece {
            id,
            prefix: String::new(),
            body: body.into(),
            suffix: String::new(),
        }
    }

    #[test]
    fn markup_is_kept_away_from_the_model() {
        assert_eq!(
            split_markup("{\\an8}<i>Hello\nthere</i>"),
            ("{\\an8}<i>".into(), "Hello there".into(), "</i>".into())
        );
        assert_eq!(
            split_markup("plain"),
            (String::new(), "plain".into(), String::new())
        );
        let p = Piece {
            id: 1,
            prefix: "<i>".into(),
            body: "x".into(),
            suffix: "</i>".into(),
        };
        assert_eq!(rebuild(&p, "Hello world"), "<i>Hello world</i>");
    }

    #[test]
    fn answers_are_validated() {
        let w = vec![piece(3, "helo wrld"), piece(4, "how ar you")];
        let ok = validate_answer(
            Some("#3 Hello world.\n#4 How are you?"),
            Some("stop"),
            &w,
            0.5,
        );
        assert_eq!(ok.unwrap(), vec!["Hello world.", "How are you?"]);
        let ok = validate_answer(
            Some("\n#3: Hello world.\n\n#4) How are you?\n"),
            None,
            &w,
            0.5,
        );
        assert!(ok.is_ok());
        for (bad, why) in [
            (
                "Sure! Here you go:\n#3 Hello world.\n#4 How are you?",
                "not a numbered",
            ),
            ("```\n#3 Hello world.\n#4 How are you?\n```", "code fence"),
            ("#3 Hello world.", "missing"),
            ("#3 Hello world.\n#4 How are you?\n#5 Extra", "unexpected"),
            ("#4 How are you?\n#3 Hello world.", "in order"),
            ("#1 Hello world.\n#2 How are you?", "missing"),
            ("#3 \n#4 How are you?", "empty"),
            ("#3 How are you?\n#4 Hello world.", "changed too much"),
            ("", "empty"),
        ] {
            let e = validate_answer(Some(bad), Some("stop"), &w, 0.5).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
        let e = validate_answer(Some("#3 a\n#4 b"), Some("length"), &w, 0.5).unwrap_err();
        assert!(e.contains("cut off"));
        let long = format!("#3 {}\n#4 How are you?", "x ".repeat(60));
        assert!(validate_answer(Some(&long), None, &w, 0.5).is_err());
    }

    #[test]
    fn windows_split_by_count_chars_and_gaps() {
        let cues: Vec<Cue> = (0..60)
            .map(|i| Cue {
                start_ms: i * 2000 + if i >= 40 { 60_000 } else { 0 },
                end_ms: i * 2000 + 1500 + if i >= 40 { 60_000 } else { 0 },
                text: "word ".repeat(5),
            })
            .collect();
        let pieces: Vec<Piece> = cues
            .iter()
            .enumerate()
            .map(|(i, c)| piece(i + 1, c.text.trim()))
            .collect();
        let w = windows(&pieces, &cues, &RefineOptions::default());
        assert_eq!(w, vec![0..25, 25..40, 40..60]);
    }

    #[test]
    fn similarity_is_case_and_punctuation_blind() {
        assert_eq!(similarity("Hello, World!", "hello world").0, 1.0);
        assert!(similarity("completely different", "nothing alike here").0 < 0.5);
    }
}
