//! OpenAI chat-completions wire types (the subset Switchyard reads and
//! writes; unknown request fields are accepted and ignored, as OpenAI-style
//! servers do), and a JSON extractor whose rejections are OpenAI errors.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use serde::{Deserialize, Serialize};

use super::ApiError;
use crate::plugin::types::ChatMessage;

/// `axum::Json` with OpenAI-shaped errors: malformed JSON and missing or
/// mistyped fields are 400, an oversize body 413.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let limit = request.extensions().get::<BodyLimit>().map(|l| l.0);
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            Err(JsonRejection::JsonSyntaxError(e)) => {
                Err(ApiError::bad_request(format!("Malformed JSON: {}", e.body_text())))
            }
            Err(JsonRejection::JsonDataError(e)) => {
                Err(ApiError::bad_request(format!("Invalid request: {}", e.body_text())))
            }
            Err(JsonRejection::MissingJsonContentType(_)) => {
                Err(ApiError::bad_request("Send the body as JSON with `Content-Type: application/json`."))
            }
            Err(JsonRejection::BytesRejection(e)) if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE => {
                Err(ApiError::too_large(limit.unwrap_or(0)))
            }
            Err(e) => Err(ApiError::bad_request(e.body_text())),
        }
    }
}

/// The configured body limit, put in request extensions for error messages.
#[derive(Clone, Copy)]
pub struct BodyLimit(pub usize);

#[derive(Debug, Deserialize)]
pub struct ChatCompletionRequest {
    pub model: String,
    pub messages: Vec<InMessage>,
    #[serde(default)]
    pub stream: bool,
    #[serde(default)]
    pub max_tokens: Option<u32>,
    #[serde(default)]
    pub max_completion_tokens: Option<u32>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub top_p: Option<f64>,
    #[serde(default)]
    pub stop: Option<Stop>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
pub struct InMessage {
    pub role: String,
    #[serde(default)]
    pub content: Option<Content>,
}

/// Message content: a string, or a list of parts of which text parts count.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<Part>),
}

#[derive(Debug, Deserialize)]
pub struct Part {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub text: Option<String>,
}

impl InMessage {
    pub fn text(&self) -> String {
        match &self.content {
            None => String::new(),
            Some(Content::Text(t)) => t.clone(),
            Some(Content::Parts(parts)) => parts
                .iter()
                .filter(|p| p.kind == "text")
                .filter_map(|p| p.text.as_deref())
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }
}

impl ChatCompletionRequest {
    /// Validated messages for a pass-through call.
    pub fn messages(&self) -> Result<Vec<ChatMessage>, ApiError> {
        if self.messages.is_empty() {
            return Err(ApiError::bad_request("`messages` must not be empty.").param("messages"));
        }
        self.messages
            .iter()
            .enumerate()
            .map(|(i, m)| match m.role.as_str() {
                "system" | "developer" | "user" | "assistant" => {
                    let role = if m.role == "developer" { "system" } else { m.role.as_str() };
                    Ok(ChatMessage { role: role.to_string(), content: m.text() })
                }
                other => Err(ApiError::bad_request(format!("messages[{i}].role `{other}` is not supported"))
                    .param(&format!("messages[{i}].role"))),
            })
            .collect()
    }

    /// The question a routing policy answers: the last user message.
    pub fn question(&self) -> Result<String, ApiError> {
        let question = self.messages.iter().rev().find(|m| m.role == "user").map(InMessage::text).unwrap_or_default();
        if question.trim().is_empty() {
            return Err(ApiError::bad_request("A routing policy needs a non-empty user message.").param("messages"));
        }
        Ok(question)
    }

    pub fn stop(&self) -> Vec<String> {
        match &self.stop {
            None => vec![],
            Some(Stop::One(s)) => vec![s.clone()],
            Some(Stop::Many(v)) => v.clone(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, Clone, Copy, Default)]
pub struct OutUsage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
}

impl OutUsage {
    pub fn new(prompt: u64, completion: u64) -> Self {
        OutUsage { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion }
    }
}

/// `chatcmpl-...` ids: unique per process, no randomness needed.
pub fn completion_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("chatcmpl-{nanos:x}{:04x}", COUNTER.fetch_add(1, Ordering::Relaxed) & 0xffff)
}

pub fn unix_time() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
