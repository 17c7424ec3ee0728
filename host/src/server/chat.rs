//! `POST /v1/chat/completions`. `model` is a routing policy (the engine runs
//! the question through it) or a pool model (pass-through to its backend).
//! `stream: true` answers with server-sent events: chunks, a usage chunk,
//! then `[DONE]` — or an error event if the backend fails mid-stream.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde_json::{Value, json};

use super::openai::{ApiJson, ChatCompletionRequest, OutUsage, completion_id, unix_time};
use super::{ApiError, AppState, Snapshot, request_timeout};
use crate::backend::{BackendError, StreamItem};
use crate::engine::{self, Trace};
use crate::plugin::types::ChatRequest;

pub async fn completions(
    State(state): State<Arc<AppState>>,
    ApiJson(request): ApiJson<ChatCompletionRequest>,
) -> Result<Response, ApiError> {
    let snapshot = state.snapshot();
    if snapshot.policies.contains_key(&request.model) {
        let trace = run_policy(&snapshot, &request.model, &request.question()?).await?;
        return Ok(if request.stream {
            policy_stream(&request.model, trace)
        } else {
            policy_response(&request.model, trace)
        });
    }
    if snapshot.pool.resolve(&request.model).is_some() {
        return if request.stream {
            pass_through_stream(snapshot, request).await
        } else {
            pass_through(&snapshot, request).await
        };
    }
    Err(ApiError::unknown_model(&request.model))
}

/// Run `policy` on `question` within the request deadline.
pub(super) async fn run_policy(snapshot: &Snapshot, policy: &str, question: &str) -> Result<Trace, ApiError> {
    let policy = snapshot.policies.get(policy).ok_or_else(|| ApiError::unknown_model(policy))?.clone();
    let run = engine::run(&snapshot.config.engine, policy.as_ref(), &snapshot.pool, question);
    match tokio::time::timeout(request_timeout(snapshot), run).await {
        Ok(Ok(trace)) => Ok(trace),
        Ok(Err(e)) => {
            metrics::counter!("switchyard_policy_errors_total", "policy" => policy.name().to_string()).increment(1);
            Err(ApiError::internal(e.to_string()))
        }
        Err(_) => Err(ApiError::timeout(format!("routing took longer than {:?}", request_timeout(snapshot)))),
    }
}

fn trace_headers(trace: &Trace) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), v);
        }
    };
    set("x-switchyard-policy", trace.policy.clone());
    set("x-switchyard-models", trace.models_called().join(","));
    set("x-switchyard-calls", trace.trajectory.calls.len().to_string());
    set("x-switchyard-cost", format!("{:.8}", trace.cost));
    set(
        "x-switchyard-stop",
        serde_json::to_value(trace.stop).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default(),
    );
    headers
}

fn policy_response(model: &str, trace: Trace) -> Response {
    let headers = trace_headers(&trace);
    let usage = OutUsage::new(trace.input_tokens, trace.output_tokens);
    let finish = if trace.answer.is_some() { "stop" } else { "length" };
    let body = json!({
        "id": completion_id(),
        "object": "chat.completion",
        "created": unix_time(),
        "model": model,
        "choices": [{
            "index": 0,
            "message": { "role": "assistant", "content": trace.answer.clone().unwrap_or_default() },
            "finish_reason": finish,
        }],
        "usage": usage,
        "switchyard": trace,
    });
    (headers, Json(body)).into_response()
}

fn chunk(id: &str, model: &str, delta: Value, finish: Option<&str>) -> Event {
    let body = json!({
        "id": id, "object": "chat.completion.chunk", "created": unix_time(), "model": model,
        "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }],
    });
    Event::default().data(body.to_string())
}

fn usage_chunk(id: &str, model: &str, usage: OutUsage, extra: Option<&Trace>) -> Event {
    let mut body = json!({
        "id": id, "object": "chat.completion.chunk", "created": unix_time(), "model": model,
        "choices": [], "usage": usage,
    });
    if let Some(trace) = extra {
        body["switchyard"] = json!(trace);
    }
    Event::default().data(body.to_string())
}

fn policy_stream(model: &str, trace: Trace) -> Response {
    let (id, model) = (completion_id(), model.to_string());
    let headers = trace_headers(&trace);
    let usage = OutUsage::new(trace.input_tokens, trace.output_tokens);
    let finish = if trace.answer.is_some() { "stop" } else { "length" };
    let events = vec![
        chunk(&id, &model, json!({ "role": "assistant", "content": "" }), None),
        chunk(&id, &model, json!({ "content": trace.answer.clone().unwrap_or_default() }), None),
        chunk(&id, &model, json!({}), Some(finish)),
        usage_chunk(&id, &model, usage, Some(&trace)),
        Event::default().data("[DONE]"),
    ];
    let stream = futures_util::stream::iter(events.into_iter().map(Ok::<_, Infallible>));
    (headers, Sse::new(stream)).into_response()
}

fn chat_request(request: &ChatCompletionRequest, remote_model: &str, max_tokens: u32) -> Result<ChatRequest, ApiError> {
    Ok(ChatRequest {
        model: remote_model.to_string(),
        messages: request.messages()?,
        max_tokens: Some(request.max_completion_tokens.or(request.max_tokens).unwrap_or(max_tokens)),
        temperature: request.temperature,
        top_p: request.top_p,
        stop: request.stop(),
        streaming: request.stream,
    })
}

fn backend_error(e: BackendError) -> ApiError {
    match e {
        BackendError::UnknownModel(m) => ApiError::unknown_model(&m),
        BackendError::Timeout { .. } => ApiError::timeout(e.to_string()),
        other => ApiError::upstream(other.client_status(), other.to_string()),
    }
}

async fn pass_through(snapshot: &Snapshot, request: ChatCompletionRequest) -> Result<Response, ApiError> {
    let backend = snapshot.pool.resolve(&request.model).ok_or_else(|| ApiError::unknown_model(&request.model))?;
    let chat = chat_request(&request, backend.config.remote_model(), backend.config.max_tokens)?;
    let call = snapshot.pool.complete(backend.name(), &chat);
    let outcome = match tokio::time::timeout(request_timeout(snapshot), call).await {
        Ok(result) => result.map_err(backend_error)?,
        Err(_) => return Err(ApiError::timeout("the backend took longer than the request deadline")),
    };
    let usage = OutUsage::new(outcome.usage.input_tokens.into(), outcome.usage.output_tokens.into());
    let mut headers = HeaderMap::new();
    headers
        .insert("x-switchyard-models", HeaderValue::from_str(&outcome.model).unwrap_or(HeaderValue::from_static("")));
    headers.insert(
        "x-switchyard-cost",
        HeaderValue::from_str(&format!("{:.8}", outcome.cost)).unwrap_or(HeaderValue::from_static("0")),
    );
    let body = json!({
        "id": completion_id(),
        "object": "chat.completion",
        "created": unix_time(),
        "model": outcome.model,
        "choices": [{
            "index": 0,
            "message": { "role": "assistant", "content": outcome.completion.text },
            "finish_reason": outcome.completion.finish_reason.unwrap_or_else(|| "stop".into()),
        }],
        "usage": usage,
        "switchyard": { "model": outcome.model, "cost": outcome.cost, "attempts": outcome.attempts, "latency_ms": outcome.latency.as_millis() as u64 },
    });
    Ok((headers, Json(body)).into_response())
}

async fn pass_through_stream(snapshot: Arc<Snapshot>, request: ChatCompletionRequest) -> Result<Response, ApiError> {
    let backend = snapshot.pool.resolve(&request.model).ok_or_else(|| ApiError::unknown_model(&request.model))?.clone();
    let chat = chat_request(&request, backend.config.remote_model(), backend.config.max_tokens)?;
    let opened = tokio::time::timeout(request_timeout(&snapshot), snapshot.pool.stream(backend.name(), &chat)).await;
    let items = match opened {
        Ok(result) => result.map_err(backend_error)?,
        Err(_) => return Err(ApiError::timeout("the backend did not start streaming before the request deadline")),
    };
    let (id, model) = (completion_id(), request.model.clone());
    let first = chunk(&id, &model, json!({ "role": "assistant", "content": "" }), None);
    let events = items.flat_map(move |item| {
        let events: Vec<Event> = match item {
            Ok(StreamItem::Delta(delta)) => {
                let mut events = Vec::new();
                if !delta.text.is_empty() {
                    events.push(chunk(&id, &model, json!({ "content": delta.text }), None));
                }
                if let Some(reason) = delta.finish_reason {
                    events.push(chunk(&id, &model, json!({}), Some(&reason)));
                }
                events
            }
            Ok(StreamItem::Done { usage, cost, model: answered }) => {
                let usage = OutUsage::new(usage.input_tokens.into(), usage.output_tokens.into());
                let mut last = json!({
                    "id": id, "object": "chat.completion.chunk", "created": unix_time(), "model": model,
                    "choices": [], "usage": usage, "switchyard": { "model": answered, "cost": cost },
                });
                last["switchyard"]["cost"] = json!(cost);
                vec![Event::default().data(last.to_string()), Event::default().data("[DONE]")]
            }
            // After the first token there is no retry: say so, never end cleanly.
            Err(e) => {
                let error = backend_error(e);
                vec![Event::default().event("error").data(error.body().to_string())]
            }
        };
        futures_util::stream::iter(events.into_iter().map(Ok::<_, Infallible>))
    });
    let stream = futures_util::stream::once(async move { Ok::<_, Infallible>(first) }).chain(events);
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()).into_response())
}
