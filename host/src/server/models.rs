//! `GET /v1/models`: policies and pool models, OpenAI's list shape plus
//! each model's descriptor.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::AppState;
use super::openai::unix_time;
use crate::config::PolicyKind;

pub async fn list(State(state): State<Arc<AppState>>) -> Json<Value> {
    let snapshot = state.snapshot();
    let created = unix_time();
    // Configured policies in config order, then any built in (e.g. the teacher).
    let configured = snapshot.config.policies.iter().map(|p| {
        let detail = match p.kind() {
            PolicyKind::Strategy(strategy) => json!({ "kind": "policy", "strategy": strategy }),
            PolicyKind::Onnx(dir) => json!({ "kind": "policy", "strategy": null, "onnx": dir }),
        };
        (p.name.clone(), detail)
    });
    let builtin = snapshot
        .policies
        .keys()
        .filter(|name| !snapshot.config.policies.iter().any(|p| &p.name == *name))
        .map(|name| (name.clone(), json!({ "kind": "policy", "strategy": null })));
    let policies = configured.chain(builtin).map(|(name, detail)| {
        json!({ "id": name, "object": "model", "created": created, "owned_by": "switchyard", "switchyard": detail })
    });
    let models = snapshot.pool.backends().iter().map(|b| {
        json!({ "id": b.name(), "object": "model", "created": created, "owned_by": "pool",
                "switchyard": { "kind": "model", "adapter": b.config.adapter, "descriptor": b.descriptor } })
    });
    Json(json!({ "object": "list", "data": policies.chain(models).collect::<Vec<_>>() }))
}
