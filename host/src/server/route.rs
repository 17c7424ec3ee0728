//! `POST /v1/route`: a question in, the full trajectory trace out —
//! optionally scored against gold answers with the configured reward.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use super::openai::ApiJson;
use super::{ApiError, AppState};
use crate::plugin::types::{RewardParams, ScoringInput};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteRequest {
    question: String,
    /// A policy name; defaults to the first configured policy.
    #[serde(default)]
    policy: Option<String>,
    /// When given, the trace is scored with the reward component.
    #[serde(default)]
    golden_answers: Option<Vec<String>>,
}

pub async fn route(
    State(state): State<Arc<AppState>>,
    ApiJson(request): ApiJson<RouteRequest>,
) -> Result<Json<Value>, ApiError> {
    let snapshot = state.snapshot();
    if request.question.trim().is_empty() {
        return Err(ApiError::bad_request("`question` must not be empty.").param("question"));
    }
    let policy = match &request.policy {
        Some(p) => p.clone(),
        None => snapshot
            .config
            .policies
            .first()
            .map(|p| p.name.clone())
            .ok_or_else(|| ApiError::bad_request("No policies are configured."))?,
    };
    let trace = super::chat::run_policy(&snapshot, &policy, &request.question).await?;
    let mut body = json!({ "trace": trace, "text": trace.text() });
    if let Some(golden_answers) = request.golden_answers {
        let r = &snapshot.config.reward;
        let params = RewardParams { alpha: r.alpha, metric: r.metric, cost_bounds: r.cost_bounds };
        let input = ScoringInput { trajectory: trace.trajectory.clone(), golden_answers };
        // Guest code runs off the async workers (it may take up to its deadline).
        let reward = snapshot.reward.clone();
        let scored = tokio::task::spawn_blocking(move || reward.score(&input, &params))
            .await
            .map_err(|e| ApiError::internal(format!("reward task failed: {e}")))?
            .map_err(|e| ApiError::internal(e.to_string()))?;
        body["reward"] = json!(scored);
    }
    Ok(Json(body))
}
