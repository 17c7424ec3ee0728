//! Operations endpoints: health, metrics, reload, and the 404 fallback.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Request, State};
use axum::response::IntoResponse;
use serde_json::json;

use super::auth::{bearer, constant_time_eq};
use super::{ApiError, AppState};

pub async fn healthz(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let s = state.snapshot();
    Json(json!({ "status": "ok", "models": s.pool.backends().len(), "policies": s.policies.len() }))
}

pub async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    ([("content-type", "text/plain; version=0.0.4")], state.metrics.render())
}

/// `POST /admin/reload` with `Authorization: Bearer <admin key>`.
pub async fn reload(State(state): State<Arc<AppState>>, request: Request) -> Result<Json<serde_json::Value>, ApiError> {
    let Some(admin) = state.snapshot().admin_key.clone() else {
        return Err(ApiError::unauthorized("Reload over HTTP is disabled: set the admin key environment variable."));
    };
    match bearer(&request) {
        Some(key) if constant_time_eq(key.as_bytes(), admin.as_bytes()) => {}
        _ => return Err(ApiError::unauthorized("The admin key is missing or wrong.")),
    }
    let state2 = state.clone();
    // Loading compiles components: keep it off the async workers.
    let result = tokio::task::spawn_blocking(move || state2.reload())
        .await
        .map_err(|e| ApiError::internal(format!("reload task failed: {e}")))?;
    match result {
        Ok(s) => Ok(Json(json!({
            "status": "reloaded",
            "models": s.pool.backends().iter().map(|b| b.name().to_string()).collect::<Vec<_>>(),
            "policies": s.policies.keys().collect::<Vec<_>>(),
        }))),
        Err(e) => Err(ApiError {
            message: format!("reload failed; still serving the previous configuration: {e:#}"),
            ..ApiError::bad_request("")
        }),
    }
}

pub async fn not_found() -> ApiError {
    ApiError {
        status: axum::http::StatusCode::NOT_FOUND,
        kind: "invalid_request_error",
        code: Some("not_found"),
        param: None,
        message: "No such route.".into(),
    }
}
