//! Adapter `anthropic-messages`: Anthropic's Messages API.
//!
//! - `auth`: the key goes in the `x-api-key` header (added by the host).
//! - `build-request`: `POST {base-url}/messages` with `anthropic-version:
//!   2023-06-01`. System messages are joined by blank lines into the
//!   top-level `system` field (omitted when there are none); user and
//!   assistant messages become `messages`, in order. `max_tokens` is
//!   mandatory for Anthropic, so it defaults to 1024; `temperature`, `top_p`
//!   and `stop_sequences` are sent only when set. An empty, non-http(s) or
//!   query-carrying base URL, an empty model, no user/assistant message, any
//!   other role, or a non-finite sampling parameter is `invalid-input`.
//! - `parse-response`: a non-2xx status is an `upstream` error naming the
//!   status and the provider's `error.message` (or the start of the body when
//!   it is not JSON). A 2xx reply yields the concatenated `text` content
//!   blocks (thinking and tool blocks are skipped), usage from
//!   `input_tokens`/`output_tokens`, the stop reason mapped to OpenAI's
//!   vocabulary (`end_turn`/`stop_sequence` -> "stop", `max_tokens` ->
//!   "length", others unchanged) and `model`.
//! - `parse-stream-event`: by SSE event name, or the JSON `type` when the name
//!   is "": `message_start` -> delta carrying the input tokens (output 0),
//!   `content_block_delta`/`text_delta` -> text, `message_delta` -> output
//!   tokens (input 0) and finish reason, `message_stop` -> done, `error` ->
//!   `upstream`; `ping`, `content_block_start`/`_stop`, non-text deltas and
//!   unknown events -> ignore (Anthropic asks clients to tolerate new event
//!   types). Summing the deltas' usage gives the call's usage.
//!
//! Replies are untrusted: every field is read defensively, nothing panics,
//! and error messages quote at most a bounded prefix of what came back.

// The generated export glue passes the WIT arguments flattened.
#![allow(clippy::too_many_arguments)]

wit_bindgen::generate!({ world: "adapter", path: "../../../wit" });

use serde_json::{Map, Value, json};
use switchyard::plugin::types::{ErrorKind, StreamDelta, Usage};
use switchyard_plugin_sdk::http;

/// The API version this adapter speaks; request and reply shapes depend on it.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// Sent when the request leaves `max-tokens` unset (Anthropic requires one).
pub const DEFAULT_MAX_TOKENS: u32 = 1024;

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
    let mut system: Vec<&str> = Vec::new();
    let mut messages: Vec<Value> = Vec::new();
    for m in &request.messages {
        match m.role.as_str() {
            "system" => system.push(&m.content),
            // Consecutive turns of one role are fine: the API merges them.
            "user" | "assistant" => messages.push(json!({ "role": m.role, "content": m.content })),
            other => {
                return Err(invalid(format!("Anthropic has no `{other}` role (use system, user or assistant)")));
            }
        }
    }
    if messages.is_empty() {
        return Err(invalid("a chat request needs at least one user or assistant message".into()));
    }
    let mut body = Map::new();
    body.insert("model".into(), request.model.clone().into());
    if !system.is_empty() {
        body.insert("system".into(), system.join("\n\n").into());
    }
    body.insert("messages".into(), messages.into());
    body.insert("max_tokens".into(), request.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS).into());
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
        body.insert("stop_sequences".into(), request.stop.clone().into());
    }
    body.insert("stream".into(), request.streaming.into());
    Ok(Value::Object(body))
}

/// The whole HTTP request for `request` against `base_url`.
pub fn build(request: &ChatRequest, base_url: &str) -> Result<HttpRequest, PluginError> {
    let url = http::endpoint(base_url, "messages").map_err(invalid)?;
    let body =
        serde_json::to_vec(&request_body(request)?).map_err(|e| invalid(format!("cannot encode request: {e}")))?;
    let accept = if request.streaming { "text/event-stream" } else { "application/json" };
    Ok(HttpRequest {
        method: "POST".into(),
        url,
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("accept".into(), accept.into()),
            ("anthropic-version".into(), ANTHROPIC_VERSION.into()),
        ],
        body,
    })
}

/// The provider's error text in a JSON body:
/// `{"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}`
/// gives "Overloaded (overloaded_error)". Proxies in front of the API may
/// use `{"error": "..."}` or `{"message": "..."}`, so those are read too.
pub fn provider_error(body: &Value) -> Option<String> {
    let error = body.get("error");
    let text = error
        .and_then(|e| e.get("message"))
        .and_then(Value::as_str)
        .or_else(|| error.and_then(Value::as_str))
        .or_else(|| body.get("message").and_then(Value::as_str))?;
    match error.and_then(|e| e.get("type")).and_then(Value::as_str) {
        Some(kind) => Some(http::quote(&format!("{text} ({kind})"))),
        None => Some(http::quote(text)),
    }
}

/// Usage from an Anthropic `usage` object; `None` when absent or carrying
/// neither count (a missing count reads as 0). Cache read/creation tokens
/// are not added: the router sends no cache-control, so they stay 0.
pub fn usage(v: Option<&Value>) -> Option<Usage> {
    let v = v?;
    let (input, output) = (http::count(v.get("input_tokens")), http::count(v.get("output_tokens")));
    if input.is_none() && output.is_none() {
        return None;
    }
    Some(Usage { input_tokens: input.unwrap_or(0), output_tokens: output.unwrap_or(0) })
}

/// Anthropic's stop reason in the OpenAI vocabulary the host speaks.
pub fn finish_reason(stop_reason: &str) -> String {
    match stop_reason {
        "end_turn" | "stop_sequence" => "stop".into(),
        "max_tokens" => "length".into(),
        other => other.into(),
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
    let Some(content) = reply.get("content").and_then(Value::as_array) else {
        return Err(upstream(match provider_error(&reply) {
            Some(message) => format!("provider error: {message}"),
            None => "reply has no content".into(),
        }));
    };
    let text: String = content
        .iter()
        .filter(|block| block.get("type").and_then(Value::as_str) == Some("text"))
        .filter_map(|block| block.get("text").and_then(Value::as_str))
        .collect();
    Ok(Completion {
        text,
        usage: usage(reply.get("usage")),
        finish_reason: reply.get("stop_reason").and_then(Value::as_str).map(finish_reason),
        model: reply.get("model").and_then(Value::as_str).map(Into::into),
    })
}

fn delta(text: &str, usage: Option<Usage>, finish_reason: Option<String>) -> StreamEvent {
    StreamEvent::Delta(StreamDelta { text: text.into(), usage, finish_reason })
}

/// The meaning of one server-sent event of a streaming reply.
pub fn parse_event(event: &str, data: &str) -> Result<StreamEvent, PluginError> {
    let data = data.trim();
    // These carry nothing we need, so their data is not even parsed.
    match event {
        "ping" | "content_block_stop" => return Ok(StreamEvent::Ignore),
        "message_stop" => return Ok(StreamEvent::Done),
        "" if data.is_empty() => return Ok(StreamEvent::Ignore),
        _ => {}
    }
    let chunk: Value = serde_json::from_str(data).map_err(|e| {
        let name = if event.is_empty() { "stream" } else { event };
        upstream(format!("{name} event data is not valid JSON ({e}): {}", http::quote(data)))
    })?;
    let kind = if event.is_empty() { chunk.get("type").and_then(Value::as_str).unwrap_or("") } else { event };
    match kind {
        "message_start" => {
            let input = usage(chunk.get("message").and_then(|m| m.get("usage"))).map(|u| u.input_tokens);
            // Output tokens arrive, cumulatively, in `message_delta`.
            Ok(match input {
                Some(n) => delta("", Some(Usage { input_tokens: n, output_tokens: 0 }), None),
                None => StreamEvent::Ignore,
            })
        }
        "content_block_delta" => {
            let d = chunk.get("delta");
            let text = d.and_then(|d| d.get("text")).and_then(Value::as_str).unwrap_or("");
            // thinking_delta, input_json_delta, signature_delta, ... are not reply text.
            let is_text = d.and_then(|d| d.get("type")).and_then(Value::as_str) == Some("text_delta");
            Ok(if is_text && !text.is_empty() { delta(text, None, None) } else { StreamEvent::Ignore })
        }
        "content_block_start" => {
            // In practice a text block starts empty; keep any text it carries.
            let block = chunk.get("content_block");
            let is_text = block.and_then(|b| b.get("type")).and_then(Value::as_str) == Some("text");
            let text = block.and_then(|b| b.get("text")).and_then(Value::as_str).unwrap_or("");
            Ok(if is_text && !text.is_empty() { delta(text, None, None) } else { StreamEvent::Ignore })
        }
        "message_delta" => {
            let output = usage(chunk.get("usage")).map(|u| u.output_tokens);
            let stop = chunk.get("delta").and_then(|d| d.get("stop_reason")).and_then(Value::as_str).map(finish_reason);
            Ok(if output.is_none() && stop.is_none() {
                StreamEvent::Ignore
            } else {
                delta("", output.map(|n| Usage { input_tokens: 0, output_tokens: n }), stop)
            })
        }
        "message_stop" => Ok(StreamEvent::Done),
        "error" => {
            Err(upstream(format!("stream error: {}", provider_error(&chunk).unwrap_or_else(|| http::quote(data)))))
        }
        _ => Ok(StreamEvent::Ignore),
    }
}

struct AnthropicMessages;

impl Guest for AnthropicMessages {
    fn auth() -> AuthScheme {
        AuthScheme::Header("x-api-key".into())
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

export!(AnthropicMessages);

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard::plugin::types::ChatMessage;

    fn msg(role: &str, content: &str) -> ChatMessage {
        ChatMessage { role: role.into(), content: content.into() }
    }

    fn request(streaming: bool) -> ChatRequest {
        ChatRequest {
            model: "claude-3-5-haiku-20241022".into(),
            messages: vec![
                msg("system", "Be brief."),
                msg("user", "Who wrote Dune?"),
                msg("system", "Answer in English."),
            ],
            max_tokens: Some(256),
            temperature: Some(0.2),
            top_p: Some(0.9),
            stop: vec!["</answer>".into()],
            streaming,
        }
    }

    fn minimal() -> ChatRequest {
        ChatRequest {
            model: "claude-sonnet-4-20250514".into(),
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

    fn delta_of(e: StreamEvent) -> StreamDelta {
        match e {
            StreamEvent::Delta(d) => d,
            StreamEvent::Done => panic!("expected a delta, got done"),
            StreamEvent::Ignore => panic!("expected a delta, got ignore"),
        }
    }

    #[test]
    fn auth_is_x_api_key_header() {
        assert!(matches!(AnthropicMessages::auth(), AuthScheme::Header(h) if h == "x-api-key"));
    }

    #[test]
    fn builds_full_request_with_system_hoisted() {
        let req = build(&request(false), "https://api.anthropic.com/v1").unwrap();
        assert_eq!(req.method, "POST");
        assert_eq!(req.url, "https://api.anthropic.com/v1/messages");
        assert_eq!(header(&req, "content-type"), Some("application/json"));
        assert_eq!(header(&req, "anthropic-version"), Some("2023-06-01"));
        assert_eq!(header(&req, "accept"), Some("application/json"));
        assert_eq!(
            body_of(&req),
            json!({
                "model": "claude-3-5-haiku-20241022",
                "system": "Be brief.\n\nAnswer in English.",
                "messages": [{ "role": "user", "content": "Who wrote Dune?" }],
                "max_tokens": 256,
                "temperature": 0.2,
                "top_p": 0.9,
                "stop_sequences": ["</answer>"],
                "stream": false
            })
        );
    }

    #[test]
    fn minimal_request_defaults_max_tokens_and_omits_optionals() {
        let req = build(&minimal(), "https://api.anthropic.com/v1/").unwrap();
        assert_eq!(req.url, "https://api.anthropic.com/v1/messages");
        assert_eq!(
            body_of(&req),
            json!({
                "model": "claude-sonnet-4-20250514",
                "messages": [{ "role": "user", "content": "hi" }],
                "max_tokens": 1024,
                "stream": false
            })
        );
    }

    #[test]
    fn streaming_request() {
        let req = build(&request(true), "http://localhost:9000").unwrap();
        assert_eq!(header(&req, "accept"), Some("text/event-stream"));
        assert_eq!(body_of(&req)["stream"], json!(true));
        assert!(body_of(&req).get("stream_options").is_none());
    }

    #[test]
    fn keeps_conversation_order() {
        let mut r = minimal();
        r.messages = vec![msg("user", "a"), msg("assistant", "b"), msg("user", "c")];
        let body = body_of(&build(&r, "https://x").unwrap());
        assert_eq!(
            body["messages"],
            json!([{ "role": "user", "content": "a" }, { "role": "assistant", "content": "b" }, { "role": "user", "content": "c" }])
        );
        assert!(body.get("system").is_none());
    }

    #[test]
    fn rejects_bad_base_urls_and_requests() {
        for base in ["", "api.anthropic.com", "ws://x", "https://", "https://x/v1#frag", "https://x\n/v1"] {
            assert_eq!(build(&minimal(), base).unwrap_err().kind, ErrorKind::InvalidInput, "{base:?}");
        }
        let mut r = minimal();
        r.messages = vec![msg("system", "only a system prompt")];
        assert_eq!(build(&r, "https://x").unwrap_err().kind, ErrorKind::InvalidInput);
        let mut r = minimal();
        r.messages.push(msg("tool", "{}"));
        assert!(build(&r, "https://x").unwrap_err().message.contains("`tool`"));
        let mut r = minimal();
        r.top_p = Some(f64::INFINITY);
        assert_eq!(build(&r, "https://x").unwrap_err().kind, ErrorKind::InvalidInput);
        let mut r = minimal();
        r.model.clear();
        assert_eq!(build(&r, "https://x").unwrap_err().kind, ErrorKind::InvalidInput);
    }

    #[test]
    fn parses_success() {
        let body = r#"{
          "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
          "type": "message",
          "role": "assistant",
          "model": "claude-3-5-haiku-20241022",
          "content": [
            { "type": "thinking", "thinking": "Dune... Herbert.", "signature": "abc" },
            { "type": "text", "text": "Frank " },
            { "type": "tool_use", "id": "t1", "name": "x", "input": {} },
            { "type": "text", "text": "Herbert." }
          ],
          "stop_reason": "end_turn",
          "stop_sequence": null,
          "usage": { "input_tokens": 14, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 7, "service_tier": "standard" }
        }"#;
        let c = parse(&response(200, body)).unwrap();
        assert_eq!(c.text, "Frank Herbert.");
        let u = c.usage.unwrap();
        assert_eq!((u.input_tokens, u.output_tokens), (14, 7));
        assert_eq!(c.finish_reason.as_deref(), Some("stop"));
        assert_eq!(c.model.as_deref(), Some("claude-3-5-haiku-20241022"));
    }

    #[test]
    fn maps_stop_reasons() {
        for (raw, mapped) in [
            ("end_turn", "stop"),
            ("stop_sequence", "stop"),
            ("max_tokens", "length"),
            ("tool_use", "tool_use"),
            ("refusal", "refusal"),
        ] {
            let body = format!(r#"{{"content":[],"stop_reason":"{raw}"}}"#);
            let c = parse(&response(200, &body)).unwrap();
            assert_eq!(c.finish_reason.as_deref(), Some(mapped));
            assert_eq!(c.text, "");
            assert!(c.usage.is_none() && c.model.is_none());
        }
    }

    #[test]
    fn bad_success_bodies_are_upstream_errors() {
        for body in
            ["", "{", r#"{"id":"msg"}"#, r#"{"content":"text"}"#, r#"{"content":[{"type":"text","text":"Fra"#, "null"]
        {
            assert_eq!(parse(&response(200, body)).unwrap_err().kind, ErrorKind::Upstream, "{body:?}");
        }
        let err =
            parse(&response(200, r#"{"type":"error","error":{"type":"api_error","message":"Internal"}}"#)).unwrap_err();
        assert!(err.message.contains("Internal (api_error)"), "{}", err.message);
    }

    #[test]
    fn error_statuses() {
        let overloaded = r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_011CSHoEeqs5C35K2UUqR7Fy"}"#;
        let err = parse(&response(529, overloaded)).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Upstream);
        assert!(
            err.message.contains("529") && err.message.contains("Overloaded (overloaded_error)"),
            "{}",
            err.message
        );

        let bad_model = r#"{"type":"error","error":{"type":"not_found_error","message":"model: claude-9"}}"#;
        assert!(parse(&response(404, bad_model)).unwrap_err().message.contains("model: claude-9"));

        let err = parse(&response(502, "<html><body>Bad gateway</body></html>\n")).unwrap_err();
        assert!(err.message.contains("502") && err.message.contains("Bad gateway"), "{}", err.message);

        let err =
            parse(&response(400, r#"{"type":"error","error":{"type":"invalid_request_error","message":"max_tok"#))
                .unwrap_err();
        assert!(err.message.contains("400") && err.message.contains("invalid_request_error"), "{}", err.message);

        assert!(parse(&response(500, "")).unwrap_err().message.contains("empty body"));
        let binary = HttpResponse { status: 401, headers: vec![], body: vec![0x80, 0x00, 0xff] };
        assert!(parse(&binary).unwrap_err().message.contains("401"));
    }

    #[test]
    fn stream_event_kinds() {
        let start = r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"claude-3-5-haiku-20241022","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":25,"output_tokens":1}}}"#;
        let d = delta_of(parse_event("message_start", start).unwrap());
        let u = d.usage.unwrap();
        assert_eq!((d.text.as_str(), u.input_tokens, u.output_tokens), ("", 25, 0));

        let text = r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}"#;
        assert_eq!(delta_of(parse_event("content_block_delta", text).unwrap()).text, "Hello");
        let thinking = r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hmm"}}"#;
        assert!(matches!(parse_event("content_block_delta", thinking).unwrap(), StreamEvent::Ignore));
        let json_delta =
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"a\""}}"#;
        assert!(matches!(parse_event("content_block_delta", json_delta).unwrap(), StreamEvent::Ignore));

        let md = r#"{"type":"message_delta","delta":{"stop_reason":"max_tokens","stop_sequence":null},"usage":{"output_tokens":15}}"#;
        let d = delta_of(parse_event("message_delta", md).unwrap());
        let u = d.usage.unwrap();
        assert_eq!((u.input_tokens, u.output_tokens), (0, 15));
        assert_eq!(d.finish_reason.as_deref(), Some("length"));

        assert!(matches!(parse_event("message_stop", r#"{"type":"message_stop"}"#).unwrap(), StreamEvent::Done));
        assert!(matches!(parse_event("ping", r#"{"type": "ping"}"#).unwrap(), StreamEvent::Ignore));
        let cbs = r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#;
        assert!(matches!(parse_event("content_block_start", cbs).unwrap(), StreamEvent::Ignore));
        assert!(matches!(
            parse_event("content_block_stop", r#"{"type":"content_block_stop","index":0}"#).unwrap(),
            StreamEvent::Ignore
        ));
        assert!(matches!(
            parse_event("some_future_event", r#"{"type":"some_future_event"}"#).unwrap(),
            StreamEvent::Ignore
        ));
        assert!(matches!(parse_event("", "").unwrap(), StreamEvent::Ignore));
        // A message_start without usage carries nothing.
        assert!(matches!(
            parse_event("message_start", r#"{"type":"message_start","message":{}}"#).unwrap(),
            StreamEvent::Ignore
        ));
    }

    #[test]
    fn falls_back_to_json_type_without_event_name() {
        let text = r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}"#;
        assert_eq!(delta_of(parse_event("", text).unwrap()).text, "Hi");
        assert!(matches!(parse_event("", r#"{"type":"message_stop"}"#).unwrap(), StreamEvent::Done));
        assert!(matches!(parse_event("", r#"{"type":"ping"}"#).unwrap(), StreamEvent::Ignore));
        assert!(matches!(parse_event("", r#"{"no":"type"}"#).unwrap(), StreamEvent::Ignore));
        let err = parse_event("", r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#)
            .unwrap_err();
        assert!(err.message.contains("Overloaded"));
    }

    #[test]
    fn stream_errors() {
        let err =
            parse_event("error", r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#)
                .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Upstream);
        assert!(err.message.contains("Overloaded (overloaded_error)"), "{}", err.message);
        assert_eq!(parse_event("error", "oops").unwrap_err().kind, ErrorKind::Upstream);
        for (event, data) in [
            ("content_block_delta", r#"{"type":"content_block_delta","delta":{"type":"text_del"#),
            ("message_delta", ""),
            ("", "{"),
        ] {
            assert_eq!(parse_event(event, data).unwrap_err().kind, ErrorKind::Upstream, "{event} {data:?}");
        }
    }

    /// A stream as the Messages API sends it (recorded, ids shortened), fed
    /// through the parser event by event; usage sums across deltas.
    #[test]
    fn recorded_anthropic_stream() {
        let sse = r#"event: message_start
data: {"type":"message_start","message":{"id":"msg_01Vj","type":"message","role":"assistant","model":"claude-3-5-haiku-20241022","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":14,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1,"service_tier":"standard"}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

event: ping
data: {"type": "ping"}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Frank"}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" Herbert wrote *Dune*"}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" (1965)."}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":16}}

event: message_stop
data: {"type":"message_stop"}
"#;
        let (mut text, mut input, mut output, mut finish, mut done, mut ignored) =
            (String::new(), 0, 0, None, false, 0);
        let mut event = "";
        for line in sse.lines() {
            if let Some(name) = line.strip_prefix("event: ") {
                event = name;
            } else if let Some(data) = line.strip_prefix("data: ") {
                assert!(!done, "nothing after message_stop");
                match parse_event(event, data).unwrap() {
                    StreamEvent::Delta(d) => {
                        text.push_str(&d.text);
                        if let Some(u) = d.usage {
                            input += u.input_tokens;
                            output += u.output_tokens;
                        }
                        finish = d.finish_reason.or(finish);
                    }
                    StreamEvent::Done => done = true,
                    StreamEvent::Ignore => ignored += 1,
                }
            }
        }
        assert!(done);
        assert_eq!(ignored, 3, "content_block_start, ping, content_block_stop");
        assert_eq!(text, "Frank Herbert wrote *Dune* (1965).");
        assert_eq!((input, output), (14, 16));
        assert_eq!(finish.as_deref(), Some("stop"));
    }
}
