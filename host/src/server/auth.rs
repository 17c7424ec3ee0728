//! Bearer API-key authentication for the `/v1` routes, when keys are configured.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState};

pub async fn require_api_key(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let snapshot = state.snapshot();
    if snapshot.api_keys.is_empty() {
        return next.run(request).await;
    }
    match bearer(&request) {
        Some(key) if snapshot.api_keys.iter().any(|k| constant_time_eq(k.as_bytes(), key.as_bytes())) => {
            next.run(request).await
        }
        Some(_) => ApiError::unauthorized("Incorrect API key provided.").into_response(),
        None => ApiError::unauthorized("Missing API key: send `Authorization: Bearer <key>`.").into_response(),
    }
}

pub fn bearer(request: &Request) -> Option<&str> {
    request.headers().get(AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ").map(str::trim)
}

/// Compare keys without an early exit on the first differing byte.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
