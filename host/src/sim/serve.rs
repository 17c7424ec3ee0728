//! Serving the simulated models as one OpenAI-compatible endpoint
//! (`POST /v1/chat/completions`, model chosen by the `model` field, usage in
//! every reply, streaming), with optional injected faults. The in-process
//! path (`SimModels::reply`) is the same code the endpoint calls.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::models::{Profile, SimModels, default_profiles};
use super::questions::{self, Split};
use super::world::{Domain, World, WorldConfig};
use crate::plugin::types::{ChatMessage, ModelDescriptor};

/// Faults to inject, each decided per request by a deterministic draw.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Faults {
    /// Share of requests answered with HTTP 503.
    pub error_rate: f64,
    /// Latency added to every request, in milliseconds.
    pub extra_latency_ms: u64,
    /// Share of replies cut short: a stream ends without `[DONE]`, a plain
    /// reply is a truncated JSON body.
    pub truncate_rate: f64,
}

/// `switchyard sim serve --world <file>`: the world, the pool and the endpoint.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimConfig {
    pub world: WorldConfig,
    pub serve: ServeConfig,
    pub faults: Faults,
    /// The pool; the default mirrors Router-R1's six models plus two held out.
    pub models: Option<Vec<Profile>>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServeConfig {
    pub listen: String,
    /// Multiplies each profile's latency (0 = answer at once, 1 = as profiled).
    pub latency_scale: f64,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig { listen: "127.0.0.1:9100".into(), latency_scale: 0.0 }
    }
}

impl SimConfig {
    pub fn load(path: &std::path::Path) -> anyhow::Result<SimConfig> {
        let text =
            std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: cannot read: {e}", path.display()))?;
        let config: SimConfig = toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        for (field, rate) in
            [("faults.error_rate", config.faults.error_rate), ("faults.truncate_rate", config.faults.truncate_rate)]
        {
            anyhow::ensure!((0.0..=1.0).contains(&rate), "{}: {field}: must be in [0, 1], got {rate}", path.display());
        }
        anyhow::ensure!(config.serve.latency_scale >= 0.0, "{}: serve.latency_scale: must be >= 0", path.display());
        Ok(config)
    }

    pub fn build(&self) -> Arc<SimModels> {
        let world = Arc::new(World::generate(&self.world));
        Arc::new(SimModels::new(world, self.models.clone().unwrap_or_else(default_profiles)))
    }
}

/// Descriptors for every model, with example scores measured on 300
/// one-hop questions from the dev split.
pub fn descriptors(models: &SimModels) -> BTreeMap<String, ModelDescriptor> {
    let calibration: Vec<(String, Vec<String>, Domain)> = questions::generate(&models.world, 1500, 11)
        .into_iter()
        .filter(|q| q.split == Split::Dev && q.hops == 1)
        .take(300)
        .map(|q| (q.question, q.golden_answers, q.domain))
        .collect();
    models.profiles().iter().map(|p| (p.name.clone(), models.descriptor(p, &calibration))).collect()
}

struct SimState {
    models: Arc<SimModels>,
    faults: Faults,
    latency_scale: f64,
    requests: AtomicU64,
}

/// The endpoint's routes.
pub fn router(models: Arc<SimModels>, faults: Faults, latency_scale: f64) -> axum::Router {
    let state = Arc::new(SimState { models, faults, latency_scale, requests: AtomicU64::new(0) });
    axum::Router::new().route("/v1/chat/completions", post(completions)).with_state(state)
}

/// Serve on `listener` in the background; returns its address.
pub fn spawn(listener: tokio::net::TcpListener, models: Arc<SimModels>, config: &SimConfig) -> SocketAddr {
    let addr = listener.local_addr().unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)));
    let app = router(models, config.faults.clone(), config.serve.latency_scale);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("simulated pool stopped: {e}");
        }
    });
    addr
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": { "message": message, "type": "sim_error" } }))).into_response()
}

/// A deterministic draw in [0, 1) for request number `n` and a fault name.
fn draw(n: u64, what: &str) -> f64 {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(format!("{what}/{n}").as_bytes());
    (u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]) >> 11) as f64 / (1u64 << 53) as f64
}

async fn completions(State(state): State<Arc<SimState>>, body: axum::body::Bytes) -> Response {
    let n = state.requests.fetch_add(1, Ordering::Relaxed);
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "malformed JSON");
    };
    let model = body["model"].as_str().unwrap_or("").to_string();
    let messages: Vec<ChatMessage> = body["messages"]
        .as_array()
        .map(|m| {
            m.iter()
                .map(|m| ChatMessage {
                    role: m["role"].as_str().unwrap_or("").into(),
                    content: m["content"].as_str().unwrap_or("").into(),
                })
                .collect()
        })
        .unwrap_or_default();
    let Some(profile) = state.models.profile(&model).cloned() else {
        return error(StatusCode::NOT_FOUND, &format!("no simulated model named `{model}`"));
    };
    let delay = Duration::from_millis(state.faults.extra_latency_ms)
        + Duration::from_secs_f64(f64::from(profile.latency_ms) / 1000.0 * state.latency_scale);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if draw(n, "error") < state.faults.error_rate {
        return error(StatusCode::SERVICE_UNAVAILABLE, "injected fault: service unavailable");
    }
    let Some(reply) = state.models.reply(&model, &messages) else {
        return error(StatusCode::NOT_FOUND, &format!("no simulated model named `{model}`"));
    };
    let truncate = draw(n, "truncate") < state.faults.truncate_rate;
    let usage = json!({ "prompt_tokens": reply.usage.input_tokens, "completion_tokens": reply.usage.output_tokens,
                        "total_tokens": reply.usage.input_tokens + reply.usage.output_tokens });
    if !body["stream"].as_bool().unwrap_or(false) {
        let full = json!({
            "id": format!("sim-{n}"), "object": "chat.completion", "model": profile.name,
            "choices": [{ "index": 0, "message": { "role": "assistant", "content": reply.text }, "finish_reason": "stop" }],
            "usage": usage,
        })
        .to_string();
        let text = if truncate { full[..full.len() / 2].to_string() } else { full };
        return Response::builder()
            .header("content-type", "application/json")
            .body(Body::from(text))
            .unwrap_or_default();
    }
    let mut events: Vec<String> =
        vec![json!({ "choices": [{ "index": 0, "delta": { "role": "assistant" } }] }).to_string()];
    for piece in reply.text.split_inclusive(' ') {
        events.push(json!({ "choices": [{ "index": 0, "delta": { "content": piece } }] }).to_string());
    }
    if truncate {
        events.truncate(events.len().div_ceil(2).max(2));
    } else {
        events.push(json!({ "choices": [{ "index": 0, "delta": {}, "finish_reason": "stop" }] }).to_string());
        events.push(json!({ "choices": [], "usage": usage }).to_string());
        events.push("[DONE]".into());
    }
    use futures_util::StreamExt;
    let chunks =
        futures_util::stream::iter(events.into_iter().map(|e| Ok::<_, std::io::Error>(format!("data: {e}\n\n"))));
    // A truncated stream breaks the connection after what was sent has left
    // (a short pause first, so the client sees the start, then the cut).
    let cut = futures_util::stream::iter(truncate.then_some(())).then(|()| async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        Err(std::io::Error::other("injected fault: stream truncated"))
    });
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(chunks.chain(cut)))
        .unwrap_or_default()
}
