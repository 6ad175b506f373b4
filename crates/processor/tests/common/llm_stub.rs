//! A scripted OpenAI-compatible server on loopback: `/{mode}/v1/chat/completions` and
//! `/{mode}/v1/audio/transcriptions`, where `mode` picks the behaviour.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Multipart, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

#[derive(Default)]
pub struct Log {
    /// (mode, authorization header, body) of every chat request, in arrival order.
    pub chats: Vec<(String, Option<String>, Value)>,
    /// Multipart fields of every audio request.
    pub audio: Vec<HashMap<String, String>>,
    pub per_mode: HashMap<String, usize>,
    pub dropped: usize,
}

#[derive(Default)]
pub struct Stub {
    pub log: Mutex<Log>,
    pub in_flight: AtomicUsize,
    pub max_in_flight: AtomicUsize,
}

impl Stub {
    pub fn count(&self, mode: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .per_mode
            .get(mode)
            .copied()
            .unwrap_or(0)
    }
}

/// Starts the stub on 127.0.0.1:0; returns its base URL (`http://127.0.0.1:PORT`).
pub async fn start() -> (String, Arc<Stub>) {
    let stub = Arc::new(Stub::default());
    let app = Router::new()
        .route("/{mode}/v1/chat/completions", post(chat))
        .route("/{mode}/v1/audio/transcriptions", post(audio))
        .with_state(stub.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (format!("http://{addr}"), stub)
}

/// The "#N text" lines the client asked to fix.
pub fn asked_lines(body: &Value) -> Vec<(usize, String)> {
    let user = body["messages"][1]["content"].as_str().unwrap_or_default();
    let part = user.split("Lines to fix:\n").nth(1).unwrap_or_default();
    part.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix('#')?;
            let (n, t) = rest.split_once(' ')?;
            Some((n.parse().ok()?, t.to_owned()))
        })
        .collect()
}

/// The deterministic "fix" of the stub model.
pub fn fix(t: &str) -> String {
    let t = t.replace("teh", "the").replace(" i ", " I ");
    let mut c = t.chars();
    let mut s: String = match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    };
    if !s.ends_with(['.', '!', '?']) {
        s.push('.');
    }
    s
}

fn completion(content: &str, finish: &str) -> Value {
    json!({
        "id": "chatcmpl-stub",
        "object": "chat.completion",
        "created": 1,
        "model": "stub",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 10 + content.len() / 4, "total_tokens": 0}
    })
}

fn good_answer(lines: &[(usize, String)]) -> String {
    lines
        .iter()
        .map(|(n, t)| format!("#{n} {}", fix(t)))
        .collect::<Vec<_>>()
        .join("\n")
}

fn json_resp(status: StatusCode, v: Value) -> Response {
    (status, axum::Json(v)).into_response()
}

struct InFlight(Arc<Stub>, bool);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
        if !self.1 {
            self.0.log.lock().unwrap().dropped += 1;
        }
    }
}

async fn chat(
    State(stub): State<Arc<Stub>>,
    Path(mode): Path<String>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let n = {
        let mut log = stub.log.lock().unwrap();
        let auth = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        log.chats.push((mode.clone(), auth, body.clone()));
        let c = log.per_mode.entry(mode.clone()).or_default();
        *c += 1;
        *c
    };
    let now = stub.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    stub.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let mut guard = InFlight(stub.clone(), false);
    let lines = asked_lines(&body);
    let good = good_answer(&lines);
    let rejected_before = body["messages"][1]["content"]
        .as_str()
        .unwrap_or_default()
        .contains("rejected");
    let resp = match mode.as_str() {
        "ok" | "count" => {
            if mode == "count" {
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
            json_resp(StatusCode::OK, completion(&good, "stop"))
        }
        "s429" if n <= 2 => json_resp(
            StatusCode::TOO_MANY_REQUESTS,
            json!({"error": {"message": "slow down", "type": "rate_limit_error", "code": "rate_limit_exceeded"}}),
        ),
        "s429ra" | "s429huge" if n <= 1 => {
            let mut r = json_resp(
                StatusCode::TOO_MANY_REQUESTS,
                json!({"error": {"message": "wait"}}),
            );
            let secs = if mode == "s429ra" { "1" } else { "3600" };
            r.headers_mut()
                .insert("retry-after", HeaderValue::from_static(secs));
            r
        }
        "s500" if n <= 2 => (StatusCode::INTERNAL_SERVER_ERROR, "upstream hiccup").into_response(),
        "s503text" => (
            StatusCode::SERVICE_UNAVAILABLE,
            "<html>503 upstream unavailable</html>",
        )
            .into_response(),
        "squota" => json_resp(
            StatusCode::TOO_MANY_REQUESTS,
            json!({"error": {"message": "You exceeded your current quota", "type": "insufficient_quota", "code": "insufficient_quota"}}),
        ),
        "s400int" => json_resp(
            StatusCode::BAD_REQUEST,
            json!({"error": {"code": 400, "message": "the request exceeds the available context size", "type": "exceed_context_size_error"}}),
        ),
        "s401" => json_resp(StatusCode::UNAUTHORIZED, json!({"detail": "bad key"})),
        "slow" | "hang" => {
            tokio::time::sleep(Duration::from_secs(if mode == "slow" { 3 } else { 60 })).await;
            json_resp(StatusCode::OK, completion(&good, "stop"))
        }
        "prose" => json_resp(
            StatusCode::OK,
            completion(&format!("Sure! Here are the fixed lines:\n{good}"), "stop"),
        ),
        "fenced" => json_resp(
            StatusCode::OK,
            completion(&format!("```\n{good}\n```"), "stop"),
        ),
        "renumbered" => {
            let a: Vec<String> = lines
                .iter()
                .enumerate()
                .map(|(i, (_, t))| format!("#{} {}", i + 1000, fix(t)))
                .collect();
            json_resp(StatusCode::OK, completion(&a.join("\n"), "stop"))
        }
        "missing" => {
            let a: Vec<String> = lines
                .iter()
                .skip(1)
                .map(|(n, t)| format!("#{n} {}", fix(t)))
                .collect();
            json_resp(StatusCode::OK, completion(&a.join("\n"), "stop"))
        }
        "extra" => json_resp(
            StatusCode::OK,
            completion(&format!("{good}\n#99999 An extra line."), "stop"),
        ),
        "empty" => json_resp(StatusCode::OK, completion("", "stop")),
        "emptyline" => {
            let a: Vec<String> = lines
                .iter()
                .enumerate()
                .map(|(i, (n, t))| {
                    if i == 0 {
                        format!("#{n} ")
                    } else {
                        format!("#{n} {}", fix(t))
                    }
                })
                .collect();
            json_resp(StatusCode::OK, completion(&a.join("\n"), "stop"))
        }
        "moved" => {
            // Lines 1 and 2 swap their text: ids intact, content moved.
            let mut texts: Vec<String> = lines.iter().map(|(_, t)| fix(t)).collect();
            if texts.len() >= 2 {
                texts.swap(0, 1);
            }
            let a: Vec<String> = lines
                .iter()
                .zip(texts)
                .map(|((n, _), t)| format!("#{n} {t}"))
                .collect();
            json_resp(StatusCode::OK, completion(&a.join("\n"), "stop"))
        }
        "truncated" => {
            let half: Vec<&str> = good.lines().take(lines.len() / 2).collect();
            json_resp(StatusCode::OK, completion(&half.join("\n"), "length"))
        }
        "lenient" => json_resp(
            StatusCode::OK,
            json!({"choices": [{"message": {"content": good}, "finish_reason": "eos"}]}),
        ),
        "prose_once" => {
            if rejected_before {
                json_resp(StatusCode::OK, completion(&good, "stop"))
            } else {
                json_resp(
                    StatusCode::OK,
                    completion(&format!("Here you go!\n{good}"), "stop"),
                )
            }
        }
        "small_only" => {
            if lines.len() <= 3 {
                json_resp(StatusCode::OK, completion(&good, "stop"))
            } else {
                json_resp(
                    StatusCode::OK,
                    completion(good.lines().next().unwrap_or(""), "stop"),
                )
            }
        }
        "always_bad" => json_resp(
            StatusCode::OK,
            completion("I cannot help with that.", "stop"),
        ),
        _ => json_resp(StatusCode::OK, completion(&good, "stop")),
    };
    guard.1 = true;
    drop(guard);
    resp
}

async fn audio(
    State(stub): State<Arc<Stub>>,
    Path(mode): Path<String>,
    mut mp: Multipart,
) -> Response {
    let mut fields = HashMap::new();
    while let Ok(Some(f)) = mp.next_field().await {
        let name = f.name().unwrap_or_default().to_owned();
        if name == "file" {
            let file_name = f.file_name().unwrap_or_default().to_owned();
            let bytes = f.bytes().await.unwrap_or_default();
            fields.insert("file".into(), format!("{file_name}:{}", bytes.len()));
        } else {
            let v = f.text().await.unwrap_or_default();
            fields
                .entry(name)
                .and_modify(|e: &mut String| {
                    e.push(',');
                    e.push_str(&v);
                })
                .or_insert(v);
        }
    }
    {
        let mut log = stub.log.lock().unwrap();
        log.audio.push(fields);
        *log.per_mode.entry(mode.clone()).or_default() += 1;
    }
    match mode.as_str() {
        // No usage, no seek, no tokens: what local servers send.
        "ok" => json_resp(
            StatusCode::OK,
            json!({
                "language": "english",
                "text": "Hello there. General Kenobi.",
                "segments": [
                    {"start": 0.0, "end": 1.5, "text": " Hello there."},
                    {"start": 1.5, "end": 3.0, "text": " General Kenobi."}
                ],
                "words": [
                    {"word": "Hello", "start": 0.0, "end": 0.6},
                    {"word": "there.", "start": 0.6, "end": 1.4},
                    {"word": "General", "start": 1.5, "end": 2.2},
                    {"word": "Kenobi.", "start": 2.2, "end": 3.0}
                ]
            }),
        ),
        "nosegments" => json_resp(StatusCode::OK, json!({"text": "Hello there."})),
        _ => (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"detail": "no such mode"})),
        )
            .into_response(),
    }
}
