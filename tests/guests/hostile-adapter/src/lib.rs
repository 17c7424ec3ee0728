//! An adapter that attacks the host on request. The last message of the
//! chat request names the attack (`mode:<name>`); replies are read the same
//! way (the test backend echoes the message back). Without a mode it is a
//! plain OpenAI-compatible adapter, so one component shows both a contained
//! attack and a normal call.
//!
//! `build-request` attacks (credentials off the pinned endpoint):
//! - "dotdot", "pct-dotdot", "dot-pct", "backslash", "tab", "pct-slash":
//!   the path escapes `base-url` by dot-segments in their disguises;
//! - "other-port", "other-host", "userinfo": another authority;
//! - "trace": method TRACE (a server that honours it echoes the key back);
//! - "headers": sets hop-by-hop, framing and credential headers;
//! - "spin": spins until the deadline stops it (guest code on the workers);
//! - "huge-error": refuses with a 40 MiB message;
//! - "aliased-headers": 2,500 header names that all point at one 1 MiB buffer;
//! - "empty-headers": 500,000 empty headers.
//!
//! `parse-response` attacks, chosen by the reply body:
//! - "usage-max": reports u32::MAX input and output tokens;
//! - "garbled": calls a 2xx reply unreadable (`upstream`), as a truncated
//!   JSON body would be.

wit_bindgen::generate!({ world: "adapter", path: "../../../wit" });

use std::hint::black_box;
use switchyard::plugin::types::{ErrorKind, StreamDelta, Usage};

struct Hostile;

fn mode(request: &ChatRequest) -> &str {
    request.messages.last().map(|m| m.content.as_str()).and_then(|c| c.strip_prefix("mode:")).unwrap_or("")
}

/// `n` strings sharing one buffer of `len` bytes; never freed (see
/// misbehaving-reward: the host refuses the value before post-return).
fn aliased(n: usize, len: usize) -> Vec<(String, String)> {
    let buffer = std::mem::ManuallyDrop::new("h".repeat(len));
    let ptr = buffer.as_ptr() as *mut u8;
    (0..n).map(|_| (unsafe { String::from_raw_parts(ptr, len, len) }, String::new())).collect()
}

/// `base-url` with its port plus one (a valid port, so only the comparison
/// with the endpoint can refuse it).
fn other_port(base_url: &str) -> String {
    let authority_end = base_url[7..].find('/').map_or(base_url.len(), |i| i + 7);
    let (authority, path) = base_url.split_at(authority_end);
    let (host, port) = authority.rsplit_once(':').unwrap_or((authority, "80"));
    let port: u16 = port.parse().unwrap_or(80);
    format!("{host}:{}{path}", port.wrapping_add(1).max(1))
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

impl Guest for Hostile {
    fn auth() -> AuthScheme {
        AuthScheme::Bearer
    }

    fn build_request(request: ChatRequest, base_url: String) -> Result<HttpRequest, PluginError> {
        let content = request.messages.last().map(|m| escape(&m.content)).unwrap_or_default();
        let body = format!(
            r#"{{"model":"{}","messages":[{{"role":"user","content":"{content}"}}],"stream":{}}}"#,
            escape(&request.model),
            request.streaming
        );
        let mut method = "POST".to_string();
        let mut url = format!("{base_url}/chat/completions");
        let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
        match mode(&request) {
            "dotdot" => url = format!("{base_url}/../admin/keys"),
            "pct-dotdot" => url = format!("{base_url}/%2e%2e/admin/keys"),
            "dot-pct" => url = format!("{base_url}/.%2E/admin/keys"),
            "backslash" => url = format!("{base_url}\\..\\admin\\keys"),
            "tab" => url = format!("{base_url}/\t../admin/keys"),
            "pct-slash" => url = format!("{base_url}/chat%2f..%2f..%2fadmin%2fkeys"),
            "other-port" => url = other_port(&base_url) + "/chat/completions",
            "other-host" => url = base_url.replacen("127.0.0.1", "127.0.0.2", 1) + "/chat/completions",
            "userinfo" => url = base_url.replacen("http://", "http://evil:pw@", 1) + "/chat/completions",
            "trace" => method = "TRACE".into(),
            "headers" => {
                for (name, value) in [
                    ("Connection", "close, x-smuggle"),
                    ("Transfer-Encoding", "chunked"),
                    ("Host", "evil.example"),
                    ("Authorization", "Bearer stolen"),
                    ("X-Api-Key", "stolen"),
                    ("Proxy-Authorization", "stolen"),
                    ("Upgrade", "h2c"),
                    ("TE", "trailers"),
                    ("Content-Length", "1"),
                    ("x-custom", "kept"),
                ] {
                    headers.push((name.into(), value.into()));
                }
            }
            "spin" => {
                let mut n: u64 = 0;
                loop {
                    n = black_box(n.wrapping_add(1));
                }
            }
            "huge-error" => {
                return Err(PluginError { kind: ErrorKind::InvalidInput, message: "e".repeat(40 << 20) });
            }
            "aliased-headers" => headers = aliased(2_500, 1 << 20),
            "empty-headers" => headers = vec![(String::new(), String::new()); 500_000],
            _ => {}
        }
        Ok(HttpRequest { method, url, headers, body: body.into_bytes() })
    }

    fn parse_response(response: HttpResponse) -> Result<Completion, PluginError> {
        let body = String::from_utf8_lossy(&response.body);
        if !(200..300).contains(&response.status) {
            return Err(PluginError {
                kind: ErrorKind::Upstream,
                message: format!("HTTP {}: {body}", response.status),
            });
        }
        if body.contains("mode:garbled") {
            return Err(PluginError { kind: ErrorKind::Upstream, message: "the reply is not JSON".into() });
        }
        let usage = if body.contains("mode:usage-max") {
            Usage { input_tokens: u32::MAX, output_tokens: u32::MAX }
        } else {
            Usage { input_tokens: 10, output_tokens: 5 }
        };
        Ok(Completion { text: "fine".into(), usage: Some(usage), finish_reason: Some("stop".into()), model: None })
    }

    /// Stream attacks, chosen by the event's data (the test backend streams
    /// the message back word by word): "mode:stream-spin" spins in the
    /// parser; "mode:stream-usage-max" reports u32::MAX tokens.
    fn parse_stream_event(_event: String, data: String) -> Result<StreamEvent, PluginError> {
        if data.trim() == "[DONE]" {
            return Ok(StreamEvent::Done);
        }
        if data.contains("mode:stream-spin") {
            let mut n: u64 = 0;
            loop {
                n = black_box(n.wrapping_add(1));
            }
        }
        let usage =
            data.contains("mode:stream-usage-max").then_some(Usage { input_tokens: u32::MAX, output_tokens: u32::MAX });
        Ok(StreamEvent::Delta(StreamDelta { text: "x".into(), usage, finish_reason: None }))
    }
}

export!(Hostile);
