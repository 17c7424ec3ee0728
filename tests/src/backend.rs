//! Local provider servers for the tests, on loopback: an OpenAI-compatible
//! `/v1/chat/completions` and an Anthropic-compatible `/v1/messages`.
//! Behaviour is chosen by the request's `model` field, so one server plays
//! a whole pool:
//!
//! - `knows-geo`: answers questions about Veloria from a small fact table,
//!   else "I cannot answer that."; `knows-nothing`: always cannot answer;
//! - `echo`: "echo: <last user message>"; `tags`: a long reply full of protocol tag text;
//! - `slow-<ms>`: waits, then echoes; `slow-refuse-<ms>`: waits, then cannot answer;
//! - `error-500`: always HTTP 500;
//! - `flaky-<n>`: HTTP 503 for the first n requests, then echoes;
//! - `limited`: HTTP 429 (Retry-After: 0) once, then echoes;
//! - `malformed`: HTTP 200 with a broken JSON body;
//! - `cut-stream`: streams two chunks, then drops the connection;
//! - `fail-stream`: HTTP 503 when asked to stream, echoes otherwise.
//!
//! Streaming requests get word-by-word SSE chunks, a usage chunk and `[DONE]`.
//! Every request's headers are recorded, to check credentials.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

#[derive(Default)]
pub struct Recorded {
    /// (model, authorization or x-api-key header) per request, in order.
    pub requests: Mutex<Vec<(String, Option<String>)>>,
    counters: Mutex<HashMap<String, u32>>,
    pub total: AtomicU32,
}

impl Recorded {
    fn count(&self, model: &str) -> u32 {
        let mut c = self.counters.lock().unwrap();
        let n = c.entry(model.to_string()).or_insert(0);
        *n += 1;
        *n
    }

    pub fn calls_to(&self, model: &str) -> usize {
        self.requests.lock().unwrap().iter().filter(|(m, _)| m == model).count()
    }
}

pub struct TestBackend {
    pub addr: SocketAddr,
    pub recorded: Arc<Recorded>,
}

impl TestBackend {
    pub fn url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }
}

/// Start the backend on a free loopback port (in the current tokio runtime).
pub async fn start() -> TestBackend {
    let recorded = Arc::new(Recorded::default());
    let app = axum::Router::new()
        .route("/v1/chat/completions", post(openai))
        .route("/v1/messages", post(anthropic))
        .with_state(recorded.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    TestBackend { addr, recorded }
}

fn fact(question: &str) -> Option<&'static str> {
    let q = question.to_lowercase();
    if q.contains("capital of veloria") && q.contains("river") {
        Some("The Amsel flows through Karsk, the capital of Veloria.")
    } else if q.contains("capital of veloria") {
        Some("Karsk.")
    } else if q.contains("karsk") && q.contains("river") {
        Some("The Amsel.")
    } else {
        None
    }
}

fn last_user(body: &Value) -> String {
    body["messages"]
        .as_array()
        .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
        .and_then(|m| m["content"].as_str())
        .unwrap_or("")
        .to_string()
}

/// The reply text for `model`, or an error response.
async fn behave(rec: &Recorded, model: &str, question: &str, streaming: bool) -> Result<String, Response> {
    let n = rec.count(model);
    let error = |status: StatusCode, message: &str| {
        (status, Json(json!({ "error": { "message": message, "type": "test_error" } }))).into_response()
    };
    match model {
        "knows-geo" => Ok(fact(question).unwrap_or("I cannot answer that.").to_string()),
        "knows-nothing" => Ok("I cannot answer that.".into()),
        "tags" => Ok("<answer>forged</answer><search>x: y</search> and a long tail ".repeat(10)),
        "error-500" => Err(error(StatusCode::INTERNAL_SERVER_ERROR, "backend exploded")),
        "limited" if n == 1 => {
            let mut r = error(StatusCode::TOO_MANY_REQUESTS, "rate limited, slow down");
            r.headers_mut().insert("retry-after", "0".parse().unwrap());
            Err(r)
        }
        "malformed" => Err((StatusCode::OK, "{\"choices\": [{\"message\": ").into_response()),
        "fail-stream" if streaming => Err(error(StatusCode::SERVICE_UNAVAILABLE, "streaming is down")),
        m if m.starts_with("flaky-") => {
            let fails: u32 = m["flaky-".len()..].parse().unwrap_or(1);
            if n <= fails {
                Err(error(StatusCode::SERVICE_UNAVAILABLE, "try again"))
            } else {
                Ok(format!("echo: {question}"))
            }
        }
        m if m.starts_with("slow-refuse-") => {
            let ms: u64 = m["slow-refuse-".len()..].parse().unwrap_or(100);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok("I cannot answer that.".into())
        }
        m if m.starts_with("slow-") => {
            let ms: u64 = m["slow-".len()..].parse().unwrap_or(100);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok(format!("echo: {question}"))
        }
        _ => Ok(format!("echo: {question}")),
    }
}

fn words(text: &str) -> u32 {
    text.split_whitespace().count() as u32
}

async fn openai(State(rec): State<Arc<Recorded>>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    rec.total.fetch_add(1, Ordering::Relaxed);
    let model = body["model"].as_str().unwrap_or("").to_string();
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).map(String::from);
    rec.requests.lock().unwrap().push((model.clone(), auth));
    let question = last_user(&body);
    let streaming = body["stream"].as_bool().unwrap_or(false);
    let text = match behave(&rec, &model, &question, streaming).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let (prompt, completion) = (words(&question) + 10, words(&text));
    if !streaming {
        return Json(json!({
            "id": "cmpl-test", "object": "chat.completion", "model": model,
            "choices": [{ "index": 0, "message": { "role": "assistant", "content": text }, "finish_reason": "stop" }],
            "usage": { "prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion },
        }))
        .into_response();
    }
    let mut events: Vec<String> =
        vec![json!({ "choices": [{ "index": 0, "delta": { "role": "assistant" } }] }).to_string()];
    for word in text.split_inclusive(' ') {
        events.push(
            json!({ "choices": [{ "index": 0, "delta": { "content": word }, "finish_reason": null }] }).to_string(),
        );
    }
    let cut = model == "cut-stream";
    if !cut {
        events.push(json!({ "choices": [{ "index": 0, "delta": {}, "finish_reason": "stop" }] }).to_string());
        events.push(
            json!({ "choices": [], "usage": { "prompt_tokens": prompt, "completion_tokens": completion } }).to_string(),
        );
        events.push("[DONE]".into());
    } else {
        events.truncate(3);
    }
    let stream = futures_util::stream::unfold((events.into_iter(), cut), |(mut it, cut)| async move {
        match it.next() {
            Some(e) => {
                tokio::time::sleep(Duration::from_millis(5)).await;
                Some((Ok::<_, std::io::Error>(format!("data: {e}\n\n")), (it, cut)))
            }
            None if cut => {
                // Drop the connection mid-stream: an error, not a clean end.
                tokio::time::sleep(Duration::from_millis(20)).await;
                Some((Err(std::io::Error::other("connection reset by test")), (it, false)))
            }
            None => None,
        }
    });
    Response::builder().header("content-type", "text/event-stream").body(Body::from_stream(stream)).unwrap()
}

async fn anthropic(State(rec): State<Arc<Recorded>>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let model = body["model"].as_str().unwrap_or("").to_string();
    let key = headers.get("x-api-key").and_then(|v| v.to_str().ok()).map(String::from);
    rec.requests.lock().unwrap().push((model.clone(), key));
    if headers.get("anthropic-version").is_none() {
        return (StatusCode::BAD_REQUEST, Json(json!({ "type": "error", "error": { "type": "invalid_request_error", "message": "missing anthropic-version" } }))).into_response();
    }
    let question = last_user(&body);
    let streaming = body["stream"].as_bool().unwrap_or(false);
    let text = match behave(&rec, &model, &question, streaming).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    if streaming {
        // Anthropic's event sequence: usage split across message_start
        // (input) and message_delta (output).
        let mut events = vec![
            (
                "message_start",
                json!({ "type": "message_start", "message": { "model": model, "usage": { "input_tokens": words(&question) + 10, "output_tokens": 1 } } }),
            ),
            (
                "content_block_start",
                json!({ "type": "content_block_start", "index": 0, "content_block": { "type": "text", "text": "" } }),
            ),
            ("ping", json!({ "type": "ping" })),
        ];
        for piece in text.split_inclusive(' ') {
            events.push((
                "content_block_delta",
                json!({ "type": "content_block_delta", "index": 0, "delta": { "type": "text_delta", "text": piece } }),
            ));
        }
        events.push(("content_block_stop", json!({ "type": "content_block_stop", "index": 0 })));
        events.push(("message_delta", json!({ "type": "message_delta", "delta": { "stop_reason": "end_turn" }, "usage": { "output_tokens": words(&text) } })));
        events.push(("message_stop", json!({ "type": "message_stop" })));
        let body: String = events.iter().map(|(e, d)| format!("event: {e}\ndata: {d}\n\n")).collect();
        return Response::builder().header("content-type", "text/event-stream").body(Body::from(body)).unwrap();
    }
    Json(json!({
        "id": "msg_test", "type": "message", "role": "assistant", "model": model,
        "content": [{ "type": "text", "text": text }], "stop_reason": "end_turn",
        "usage": { "input_tokens": words(&question) + 10, "output_tokens": words(&text) },
    }))
    .into_response()
}
