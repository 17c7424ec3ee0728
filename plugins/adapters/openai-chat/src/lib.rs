//! Adapter `openai-chat`: the OpenAI-compatible Chat Completions API
//! (OpenAI, vLLM, Together, OpenRouter, Ollama's `/v1`, ...).
//!
//! - `auth`: `Authorization: Bearer <key>` (added by the host).
//! - `build-request`: `POST {base-url}/chat/completions` with a JSON body of
//!   `model`, `messages`, `max_tokens`, `temperature`, `top_p`, `stop` (each
//!   optional field omitted when unset/empty), `stream`, and when streaming
//!   `stream_options.include_usage = true` so the last chunk reports usage.
//!   A trailing slash on the base URL is tolerated; an empty, non-http(s) or
//!   query-carrying base URL, an empty model or message list, or a non-finite
//!   sampling parameter is `invalid-input`.
//! - `parse-response`: a non-2xx status is an `upstream` error naming the
//!   status and the provider's error message (or the start of the body when
//!   it is not JSON, e.g. a proxy's HTML page or a truncated reply). A 2xx
//!   reply yields `choices[0].message.content` (null -> ""), usage from
//!   `prompt_tokens`/`completion_tokens`, `finish_reason` and `model`; a
//!   reply without choices is `upstream`.
//! - `parse-stream-event`: `[DONE]` -> done; a chunk -> delta with its
//!   content, finish reason and usage (the usage-only final chunk has empty
//!   `choices`); chunks carrying nothing (role-only, empty) -> ignore; a chunk
//!   with `error`, an `error` event or malformed JSON -> `upstream`.
//!
//! Replies are untrusted: every field is read defensively, nothing panics,
//! and error messages quote at most a bounded prefix of what came back.

// The generated export glue passes the WIT arguments flattened.
#![allow(clippy::too_many_arguments)]

wit_bindgen::generate!({ world: "adapter", path: "../../../wit" });

use serde_json::{Map, Value, json};
use switchyard::plugin::types::{ErrorKind, StreamDelta, Usage};
use switchyard_plugin_sdk::http;

fn upstream(message: String) -> PluginError {
    PluginError { kind: ErrorKind::Upstream, message }
}

fn invalid(message: String) -> PluginError {
    PluginError { kind: ErrorKind::InvalidInput, message }
}

/// The JSON body for `request`.
pub fn request_body(request: &ChatRequest) -> Result<Value, PluginError> {
    if request.model.trim().is_empty() {
        return Err(invalid("model must not be empty".into()));
    }
    if request.messages.is_empty() {
        return Err(invalid("a chat request needs at least one message".into()));
    }
    let messages: Vec<Value> =
        request.messages.iter().map(|m| json!({ "role": m.role, "content": m.content })).collect();
    let mut body = Map::new();
    body.insert("model".into(), request.model.clone().into());
    body.insert("messages".into(), messages.into());
    if let Some(n) = request.max_tokens {
        body.insert("max_tokens".into(), n.into());
    }
    for (key, value) in [("temperature", request.temperature), ("top_p", request.top_p)] {
        if let Some(v) = value {
            // JSON has no NaN/inf; serde_json would silently write null.
            if !v.is_finite() {
                return Err(invalid(format!("{key} must be a finite number, got {v}")));
            }
            body.insert(key.into(), v.into());
        }
    }
    if !request.stop.is_empty() {
        body.insert("stop".into(), request.stop.clone().into());
    }
    body.insert("stream".into(), request.streaming.into());
    if request.streaming {
        // Without this OpenAI sends no usage at all in a stream.
        body.insert("stream_options".into(), json!({ "include_usage": true }));
    }
    Ok(Value::Object(body))
}

/// The whole HTTP request for `request` against `base_url`.
pub fn build(request: &ChatRequest, base_url: &str) -> Result<HttpRequest, PluginError> {
    let url = http::endpoint(base_url, "chat/completions").map_err(invalid)?;
    let body =
        serde_json::to_vec(&request_body(request)?).map_err(|e| invalid(format!("cannot encode request: {e}")))?;
    let accept = if request.streaming { "text/event-stream" } else { "application/json" };
    Ok(HttpRequest {
        method: "POST".into(),
        url,
        headers: vec![("content-type".into(), "application/json".into()), ("accept".into(), accept.into())],
        body,
    })
}

/// The provider's own error text in a JSON body, in the shapes seen in the
/// wild: OpenAI `{"error": {"message"}}`, Ollama `{"error": "..."}`, vLLM
/// `{"object": "error", "message"}`, FastAPI `{"detail": "..."}`.
pub fn provider_error(body: &Value) -> Option<String> {
    let error = body.get("error");
    let text = error
        .and_then(|e| e.get("message"))
        .and_then(Value::as_str)
        .or_else(|| error.and_then(Value::as_str))
        .or_else(|| body.get("message").and_then(Value::as_str))
        .or_else(|| body.get("detail").and_then(Value::as_str))?;
    Some(http::quote(text))
}

/// Usage from an OpenAI `usage` object; `None` when absent, null, or
/// carrying neither count (a missing count reads as 0).
pub fn usage(v: Option<&Value>) -> Option<Usage> {
    let v = v?;
    let (input, output) = (http::count(v.get("prompt_tokens")), http::count(v.get("completion_tokens")));
    if input.is_none() && output.is_none() {
        return None;
    }
    Some(Usage { input_tokens: input.unwrap_or(0), output_tokens: output.unwrap_or(0) })
}

/// Message content: a string, null/absent (""), or an array of content
/// parts whose text parts are concatenated (some compatible servers do this).
fn content_text(content: Option<&Value>) -> Result<String, PluginError> {
    match content {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(parts)) => Ok(parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect()),
        Some(other) => {
            Err(upstream(format!("message content has an unexpected shape: {}", http::quote(&other.to_string()))))
        }
    }
}

/// A complete reply, success or error.
pub fn parse(response: &HttpResponse) -> Result<Completion, PluginError> {
    if !(200..300).contains(&response.status) {
        return Err(upstream(http::http_error(response.status, &response.body, provider_error)));
    }
    let reply: Value = serde_json::from_slice(&response.body).map_err(|e| {
        upstream(format!("reply is not valid JSON ({e}): {}", http::quote(&String::from_utf8_lossy(&response.body))))
    })?;
    let Some(choice) = reply.get("choices").and_then(Value::as_array).and_then(|c| c.first()) else {
        // Some gateways (OpenRouter) report errors with a 200 status.
        return Err(upstream(match provider_error(&reply) {
            Some(message) => format!("provider error: {message}"),
            None => "reply has no choices".into(),
        }));
    };
    Ok(Completion {
        text: content_text(choice.get("message").and_then(|m| m.get("content")))?,
        usage: usage(reply.get("usage")),
        finish_reason: choice.get("finish_reason").and_then(Value::as_str).map(Into::into),
        model: reply.get("model").and_then(Value::as_str).map(Into::into),
    })
}

/// The meaning of one server-sent event of a streaming reply.
pub fn parse_event(event: &str, data: &str) -> Result<StreamEvent, PluginError> {
    let data = data.trim();
    if data == "[DONE]" {
        return Ok(StreamEvent::Done);
    }
    if data.is_empty() {
        return if event == "error" {
            Err(upstream("stream error event without details".into()))
        } else {
            Ok(StreamEvent::Ignore)
        };
    }
    let chunk: Value = serde_json::from_str(data)
        .map_err(|e| upstream(format!("stream chunk is not valid JSON ({e}): {}", http::quote(data))))?;
    if event == "error" || chunk.get("error").is_some_and(|e| !e.is_null()) {
        let message = provider_error(&chunk).unwrap_or_else(|| http::quote(data));
        return Err(upstream(format!("stream error: {message}")));
    }
    let choice = chunk.get("choices").and_then(Value::as_array).and_then(|c| c.first());
    let text = choice.and_then(|c| c.get("delta")).and_then(|d| d.get("content")).and_then(Value::as_str).unwrap_or("");
    let finish_reason = choice.and_then(|c| c.get("finish_reason")).and_then(Value::as_str);
    let usage = usage(chunk.get("usage"));
    if text.is_empty() && finish_reason.is_none() && usage.is_none() {
        return Ok(StreamEvent::Ignore);
    }
    Ok(StreamEvent::Delta(StreamDelta { text: text.into(), usage, finish_reason: finish_reason.map(Into::into) }))
}

struct OpenAiChat;

impl Guest for OpenAiChat {
    fn auth() -> AuthScheme {
        AuthScheme::Bearer
    }

    fn build_request(request: ChatRequest, base_url: String) -> Result<HttpRequest, PluginError> {
        build(&request, &base_url)
    }

    fn parse_response(response: HttpResponse) -> Result<Completion, PluginError> {
        parse(&response)
    }

    fn parse_stream_event(event: String, data: String) -> Result<StreamEvent, PluginError> {
        parse_event(&event, &data)
    }
}

export!(OpenAiChat);

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard::plugin::types::ChatMessage;

    fn msg(role: &str, content: &str) -> ChatMessage {
        ChatMessage { role: role.into(), content: content.into() }
    }

    fn request(streaming: bool) -> ChatRequest {
        ChatRequest {
            model: "gpt-4o-mini".into(),
            messages: vec![msg("system", "Be brief."), msg("user", "Who wrote Dune?")],
            max_tokens: Some(256),
            temperature: Some(0.2),
            top_p: Some(0.9),
            stop: vec!["</answer>".into()],
            streaming,
        }
    }

    fn minimal() -> ChatRequest {
        ChatRequest {
            model: "llama3".into(),
            messages: vec![msg("user", "hi")],
            max_tokens: None,
            temperature: None,
            top_p: None,
            stop: vec![],
            streaming: false,
        }
    }

    fn body_of(req: &HttpRequest) -> Value {
        serde_json::from_slice(&req.body).unwrap()
    }

    fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
        req.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    fn response(status: u16, body: &str) -> HttpResponse {
        HttpResponse { status, headers: vec![], body: body.as_bytes().to_vec() }
    }

    fn delta(e: StreamEvent) -> StreamDelta {
        match e {
            StreamEvent::Delta(d) => d,
            StreamEvent::Done => panic!("expected a delta, got done"),
            StreamEvent::Ignore => panic!("expected a delta, got ignore"),
        }
    }

    #[test]
    fn auth_is_bearer() {
        assert!(matches!(OpenAiChat::auth(), AuthScheme::Bearer));
    }

    #[test]
    fn builds_full_request() {
        let req = build(&request(false), "https://api.openai.com/v1").unwrap();
        assert_eq!(req.method, "POST");
        assert_eq!(req.url, "https://api.openai.com/v1/chat/completions");
        assert_eq!(header(&req, "content-type"), Some("application/json"));
        assert_eq!(header(&req, "accept"), Some("application/json"));
        assert_eq!(
            body_of(&req),
            json!({
                "model": "gpt-4o-mini",
                "messages": [
                    { "role": "system", "content": "Be brief." },
                    { "role": "user", "content": "Who wrote Dune?" }
                ],
                "max_tokens": 256,
                "temperature": 0.2,
                "top_p": 0.9,
                "stop": ["</answer>"],
                "stream": false
            })
        );
    }

    #[test]
    fn streaming_request_asks_for_usage_and_sse() {
        let req = build(&request(true), "http://localhost:8000/v1/").unwrap();
        assert_eq!(req.url, "http://localhost:8000/v1/chat/completions");
        assert_eq!(header(&req, "accept"), Some("text/event-stream"));
        let body = body_of(&req);
        assert_eq!(body["stream"], json!(true));
        assert_eq!(body["stream_options"], json!({ "include_usage": true }));
    }

    #[test]
    fn optional_fields_are_omitted() {
        let body = body_of(&build(&minimal(), "http://127.0.0.1:11434/v1").unwrap());
        assert_eq!(
            body,
            json!({ "model": "llama3", "messages": [{ "role": "user", "content": "hi" }], "stream": false })
        );
    }

    #[test]
    fn rejects_bad_base_urls_and_requests() {
        for base in [
            "",
            "   ",
            "api.openai.com/v1",
            "ftp://x/v1",
            "https://",
            "https:///v1",
            "https://x/v1?key=1",
            "https://x y/v1",
        ] {
            let err = build(&minimal(), base).unwrap_err();
            assert_eq!(err.kind, ErrorKind::InvalidInput, "{base:?}");
        }
        assert_eq!(build(&minimal(), "HTTPS://Example.com//").unwrap().url, "HTTPS://Example.com/chat/completions");

        let mut r = minimal();
        r.temperature = Some(f64::NAN);
        assert_eq!(build(&r, "https://x").unwrap_err().kind, ErrorKind::InvalidInput);
        let mut r = minimal();
        r.messages.clear();
        assert_eq!(build(&r, "https://x").unwrap_err().kind, ErrorKind::InvalidInput);
        let mut r = minimal();
        r.model = " ".into();
        assert_eq!(build(&r, "https://x").unwrap_err().kind, ErrorKind::InvalidInput);
    }

    #[test]
    fn parses_success_with_usage() {
        let body = r#"{
          "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
          "object": "chat.completion",
          "created": 1741569952,
          "model": "gpt-4o-mini-2024-07-18",
          "choices": [{
            "index": 0,
            "message": { "role": "assistant", "content": "Frank Herbert.", "refusal": null, "annotations": [] },
            "logprobs": null,
            "finish_reason": "stop"
          }],
          "usage": {
            "prompt_tokens": 19, "completion_tokens": 10, "total_tokens": 29,
            "prompt_tokens_details": { "cached_tokens": 0, "audio_tokens": 0 },
            "completion_tokens_details": { "reasoning_tokens": 0 }
          },
          "service_tier": "default",
          "system_fingerprint": "fp_06737a9306"
        }"#;
        let c = parse(&response(200, body)).unwrap();
        assert_eq!(c.text, "Frank Herbert.");
        let u = c.usage.unwrap();
        assert_eq!((u.input_tokens, u.output_tokens), (19, 10));
        assert_eq!(c.finish_reason.as_deref(), Some("stop"));
        assert_eq!(c.model.as_deref(), Some("gpt-4o-mini-2024-07-18"));
    }

    #[test]
    fn null_content_missing_usage_and_content_parts() {
        let c = parse(&response(
            200,
            r#"{"choices":[{"message":{"role":"assistant","content":null},"finish_reason":"length"}]}"#,
        ))
        .unwrap();
        assert_eq!(c.text, "");
        assert!(c.usage.is_none() && c.model.is_none());
        assert_eq!(c.finish_reason.as_deref(), Some("length"));

        let c = parse(&response(201, r#"{"choices":[{"message":{"content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}}],"usage":{"prompt_tokens":5}}"#)).unwrap();
        assert_eq!(c.text, "ab");
        let u = c.usage.unwrap();
        assert_eq!((u.input_tokens, u.output_tokens), (5, 0));

        let c = parse(&response(
            200,
            r#"{"choices":[{"message":{"content":"x"}}],"usage":{"prompt_tokens":1e12,"completion_tokens":-3}}"#,
        ))
        .unwrap();
        let u = c.usage.unwrap();
        assert_eq!((u.input_tokens, u.output_tokens), (u32::MAX, 0));
        assert!(c.finish_reason.is_none());
    }

    #[test]
    fn missing_choices_and_bad_bodies_are_upstream_errors() {
        for body in [
            r#"{"id":"x","choices":[]}"#,
            r#"{"id":"x"}"#,
            "[]",
            "not json",
            r#"{"choices":[{"message":{"content":"tru"#,
            "",
        ] {
            assert_eq!(parse(&response(200, body)).unwrap_err().kind, ErrorKind::Upstream, "{body:?}");
        }
        let err = parse(&response(200, r#"{"error":{"message":"No endpoints found","code":404}}"#)).unwrap_err();
        assert!(err.message.contains("No endpoints found"), "{}", err.message);
        let err = parse(&response(200, r#"{"choices":[{"message":{"content":42}}]}"#)).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Upstream);
    }

    #[test]
    fn error_statuses_quote_provider_message() {
        let openai = r#"{"error":{"message":"Rate limit reached for gpt-4o-mini in organization org-x on tokens per min (TPM).","type":"tokens","param":null,"code":"rate_limit_exceeded"}}"#;
        let err = parse(&response(429, openai)).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Upstream);
        assert!(
            err.message.contains("429") && err.message.contains("Rate limit reached for gpt-4o-mini"),
            "{}",
            err.message
        );

        let ollama = r#"{"error":"model \"llama9\" not found, try pulling it first"}"#;
        let err = parse(&response(404, ollama)).unwrap_err();
        assert!(err.message.contains("404") && err.message.contains("llama9"), "{}", err.message);

        let vllm = r#"{"object":"error","message":"The model `foo` does not exist.","type":"NotFoundError","param":null,"code":404}"#;
        assert!(parse(&response(404, vllm)).unwrap_err().message.contains("does not exist"));

        let json_without_message = r#"{"status":"down"}"#;
        assert!(parse(&response(500, json_without_message)).unwrap_err().message.contains("status"));
    }

    #[test]
    fn error_statuses_with_non_json_truncated_or_binary_bodies() {
        let html = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>nginx</body></html>";
        let err = parse(&response(502, html)).unwrap_err();
        assert!(err.message.contains("502") && err.message.contains("Bad Gateway"), "{}", err.message);
        assert!(!err.message.contains('\r') && !err.message.contains('\n'));

        let truncated = r#"{"error":{"message":"This model's maximum context length is 8192 tok"#;
        let err = parse(&response(400, truncated)).unwrap_err();
        assert!(err.message.contains("400") && err.message.contains("maximum context length"), "{}", err.message);

        let err = parse(&response(503, "")).unwrap_err();
        assert!(err.message.contains("503") && err.message.contains("empty body"), "{}", err.message);

        let binary = HttpResponse { status: 500, headers: vec![], body: vec![0xff, 0xfe, 0x00, b'x', 0xc3] };
        assert!(parse(&binary).unwrap_err().message.contains("500"));

        let huge = format!(r#"{{"error":{{"message":"{}"}}}}"#, "é".repeat(10_000));
        let err = parse(&response(400, &huge)).unwrap_err();
        assert!(err.message.chars().count() < http::QUOTE_CHARS + 100, "{}", err.message.len());
    }

    #[test]
    fn stream_event_kinds() {
        assert!(matches!(parse_event("", "[DONE]").unwrap(), StreamEvent::Done));
        assert!(matches!(parse_event("", " [DONE]\n").unwrap(), StreamEvent::Done));
        assert!(matches!(parse_event("", "").unwrap(), StreamEvent::Ignore));
        let role_only =
            r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}],"usage":null}"#;
        assert!(matches!(parse_event("", role_only).unwrap(), StreamEvent::Ignore));
        assert!(matches!(parse_event("", r#"{"choices":[{"delta":{}}]}"#).unwrap(), StreamEvent::Ignore));
        assert!(matches!(parse_event("", "{}").unwrap(), StreamEvent::Ignore));

        let d = delta(parse_event("", r#"{"choices":[{"delta":{"content":"Hi"},"finish_reason":null}]}"#).unwrap());
        assert_eq!(d.text, "Hi");
        assert!(d.usage.is_none() && d.finish_reason.is_none());

        let d = delta(parse_event("", r#"{"choices":[{"delta":{},"finish_reason":"length"}]}"#).unwrap());
        assert_eq!((d.text.as_str(), d.finish_reason.as_deref()), ("", Some("length")));

        let d = delta(
            parse_event("", r#"{"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}}"#)
                .unwrap(),
        );
        let u = d.usage.unwrap();
        assert_eq!((u.input_tokens, u.output_tokens), (7, 3));
    }

    #[test]
    fn stream_errors() {
        let openrouter = r#"{"id":"gen-1","object":"chat.completion.chunk","error":{"code":502,"message":"Provider disconnected"},"choices":[{"index":0,"delta":{"content":""},"finish_reason":"error"}]}"#;
        let err = parse_event("", openrouter).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Upstream);
        assert!(err.message.contains("Provider disconnected"), "{}", err.message);

        let err = parse_event("error", r#"{"message":"overloaded"}"#).unwrap_err();
        assert!(err.message.contains("overloaded"));
        assert_eq!(parse_event("error", "").unwrap_err().kind, ErrorKind::Upstream);

        for bad in [r#"{"choices":[{"delta":{"content":"Hel"#, "data: {}", "\u{0}"] {
            assert_eq!(parse_event("", bad).unwrap_err().kind, ErrorKind::Upstream, "{bad:?}");
        }
    }

    /// A stream as OpenAI sends it for `stream_options.include_usage`
    /// (recorded, ids shortened), fed through the parser data line by line.
    #[test]
    fn recorded_openai_stream() {
        let sse = r#"data: {"id":"chatcmpl-BOl1","object":"chat.completion.chunk","created":1745247652,"model":"gpt-4o-mini-2024-07-18","service_tier":"default","system_fingerprint":"fp_dbaca60df0","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-BOl1","object":"chat.completion.chunk","created":1745247652,"model":"gpt-4o-mini-2024-07-18","service_tier":"default","system_fingerprint":"fp_dbaca60df0","choices":[{"index":0,"delta":{"content":"Frank"},"logprobs":null,"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-BOl1","object":"chat.completion.chunk","created":1745247652,"model":"gpt-4o-mini-2024-07-18","service_tier":"default","system_fingerprint":"fp_dbaca60df0","choices":[{"index":0,"delta":{"content":" Herbert"},"logprobs":null,"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-BOl1","object":"chat.completion.chunk","created":1745247652,"model":"gpt-4o-mini-2024-07-18","service_tier":"default","system_fingerprint":"fp_dbaca60df0","choices":[{"index":0,"delta":{"content":"."},"logprobs":null,"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-BOl1","object":"chat.completion.chunk","created":1745247652,"model":"gpt-4o-mini-2024-07-18","service_tier":"default","system_fingerprint":"fp_dbaca60df0","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null}

data: {"id":"chatcmpl-BOl1","object":"chat.completion.chunk","created":1745247652,"model":"gpt-4o-mini-2024-07-18","service_tier":"default","system_fingerprint":"fp_dbaca60df0","choices":[],"usage":{"prompt_tokens":19,"completion_tokens":4,"total_tokens":23,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}

data: [DONE]
"#;
        let (mut text, mut usage, mut finish, mut done, mut ignored) = (String::new(), None, None, false, 0);
        for data in sse.lines().filter_map(|l| l.strip_prefix("data: ")) {
            assert!(!done, "nothing after [DONE]");
            match parse_event("", data).unwrap() {
                StreamEvent::Delta(d) => {
                    text.push_str(&d.text);
                    usage = d.usage.or(usage);
                    finish = d.finish_reason.or(finish);
                }
                StreamEvent::Done => done = true,
                StreamEvent::Ignore => ignored += 1,
            }
        }
        assert!(done);
        assert_eq!(ignored, 1, "the role-only first chunk");
        assert_eq!(text, "Frank Herbert.");
        assert_eq!(finish.as_deref(), Some("stop"));
        let u: Usage = usage.unwrap();
        assert_eq!((u.input_tokens, u.output_tokens), (19, 4));
    }
}
