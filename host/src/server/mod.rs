//! The HTTP server (axum): an OpenAI-compatible API in front of the engine.
//!
//! Routes: `POST /v1/chat/completions` (a policy or a pool model, streaming
//! or not), `POST /v1/route` (question in, full trace out), `GET /v1/models`,
//! `GET /healthz`, `GET /metrics` (Prometheus), `POST /admin/reload`.
//! Handlers are small; errors are [`ApiError`]s in OpenAI's shape.

mod auth;
mod chat;
pub mod error;
mod metrics_layer;
mod models;
pub mod openai;
mod ops;
mod route;
pub mod snapshot;

use std::path::PathBuf;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

pub use error::ApiError;
pub use snapshot::Snapshot;

use crate::plugin::Runtime;

/// Shared by every handler.
pub struct AppState {
    snapshot: RwLock<Arc<Snapshot>>,
    runtime: Arc<Runtime>,
    config_path: Option<PathBuf>,
    metrics: PrometheusHandle,
}

impl AppState {
    pub fn new(snapshot: Snapshot, runtime: Arc<Runtime>, config_path: Option<PathBuf>) -> Arc<AppState> {
        Arc::new(AppState {
            snapshot: RwLock::new(Arc::new(snapshot)),
            runtime,
            config_path,
            metrics: metrics_handle(),
        })
    }

    /// The snapshot a request runs against, for its whole duration.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Reload the config file and components; on error the old set keeps serving.
    pub fn reload(&self) -> anyhow::Result<Arc<Snapshot>> {
        let path =
            self.config_path.as_deref().ok_or_else(|| anyhow::anyhow!("this server has no config file to reload"))?;
        let result = Snapshot::load(path, &self.runtime);
        metrics::counter!("switchyard_reloads_total", "outcome" => if result.is_ok() { "ok" } else { "error" })
            .increment(1);
        let fresh = Arc::new(result?);
        *self.snapshot.write().unwrap_or_else(|e| e.into_inner()) = fresh.clone();
        Ok(fresh)
    }
}

/// One Prometheus recorder per process (tests start many servers).
fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                ])
                .expect("static buckets are valid");
            match builder.install_recorder() {
                Ok(handle) => handle,
                // Another recorder is installed (embedding program): render our own, unattached.
                Err(_) => PrometheusBuilder::new().build_recorder().handle(),
            }
        })
        .clone()
}

/// The application's routes.
pub fn router(state: Arc<AppState>) -> Router {
    let body_limit = state.snapshot().config.server.body_limit_bytes;
    let api = Router::new()
        .route("/v1/chat/completions", post(chat::completions))
        .route("/v1/route", post(route::route))
        .route("/v1/models", get(models::list))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), auth::require_api_key));
    Router::new()
        .merge(api)
        .route("/admin/reload", post(ops::reload))
        .route("/healthz", get(ops::healthz))
        .route("/metrics", get(ops::metrics))
        .fallback(ops::not_found)
        .layer(axum::middleware::from_fn(metrics_layer::record))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::Extension(openai::BodyLimit(body_limit)))
        .with_state(state)
}

/// Serve `state` on `listener` until `shutdown` resolves; in-flight requests finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await
}

/// Reload on SIGHUP for as long as the process runs.
pub fn reload_on_sighup(state: Arc<AppState>) {
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hup) = signal(SignalKind::hangup()) else { return };
        while hup.recv().await.is_some() {
            // Loading compiles components: keep it off the async workers.
            let state = state.clone();
            let reloaded = tokio::task::spawn_blocking(move || state.reload()).await;
            match reloaded.unwrap_or_else(|e| Err(anyhow::anyhow!("reload task failed: {e}"))) {
                Ok(s) => tracing::info!("reloaded {} ({} models)", s.config.path.display(), s.pool.backends().len()),
                Err(e) => tracing::error!("reload failed, still serving the previous configuration: {e:#}"),
            }
        }
    });
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

/// The whole-request deadline of the current snapshot.
pub(crate) fn request_timeout(snapshot: &Snapshot) -> Duration {
    Duration::from_millis(snapshot.config.server.request_timeout_ms)
}
