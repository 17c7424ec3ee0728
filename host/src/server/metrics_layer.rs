//! Request count and latency histogram per route and status.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;

pub async fn record(request: Request, next: Next) -> Response {
    let route =
        request.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("switchyard_requests_total", "route" => route.clone(), "status" => status).increment(1);
    metrics::histogram!("switchyard_request_duration_seconds", "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}
