//! The model pool: backends built from configuration, name resolution, and
//! the routed call the engine makes for every `<search>`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use super::call::{BackendError, CallOutcome};
use super::outbound;
use crate::config::{Config, ModelConfig};
use crate::plugin::types::{AuthScheme, ChatMessage, ChatRequest, ModelDescriptor, RoutedCall, Setting, Usage};
use crate::plugin::{self, Adapter, Cost, Plugin, Runtime};

/// What a called model is told around the router's sub-query (Router-R1
/// gives candidates the sub-query only, no history).
pub const ROUTED_CALL_SYSTEM_PROMPT: &str =
    "Answer the question concisely, with the answer first. If you do not know the answer, say that you cannot answer.";

/// One model of the pool.
pub struct Backend {
    pub config: ModelConfig,
    pub descriptor: ModelDescriptor,
    pub(super) adapter: Plugin<Adapter>,
    pub(super) auth: AuthScheme,
    /// `config.endpoint`, parsed and checked (see `outbound::check_endpoint`).
    pub(super) endpoint: reqwest::Url,
    pub(super) api_key: Option<String>,
    pub(super) permits: Arc<Semaphore>,
}

impl Backend {
    pub fn name(&self) -> &str {
        &self.config.name
    }
}

/// Why a pool could not be built.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("model `{model}`: adapter: {source}")]
    Adapter {
        model: String,
        #[source]
        source: plugin::Error,
    },
    #[error("model `{model}`: {reason}")]
    Unsafe { model: String, reason: String },
    #[error("cost component: {0}")]
    Cost(#[source] plugin::Error),
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// The candidate models, shared by every request (cheap to clone via `Arc`).
pub struct Pool {
    backends: Vec<Arc<Backend>>,
    index: HashMap<String, usize>,
    pub(super) client: reqwest::Client,
    pub(super) cost: Plugin<Cost>,
    pub(super) cost_settings: Vec<Setting>,
    /// Cap on a provider reply body, in bytes.
    pub(super) max_body_bytes: usize,
    /// When set, requests are handed to this router instead of the network
    /// (the simulated pool for training rollouts): the same adapters, the
    /// same HTTP request and reply, no socket.
    pub(super) in_process: Option<axum::Router>,
}

impl Pool {
    /// Load every adapter and the cost component named in `config`.
    pub fn from_config(config: &Config, runtime: &Arc<Runtime>) -> Result<Pool, PoolError> {
        let cost =
            Plugin::<Cost>::load(runtime, &config.component_path(&config.plugins.cost)).map_err(PoolError::Cost)?;
        let mut adapters: HashMap<String, (Plugin<Adapter>, AuthScheme)> = HashMap::new();
        let mut backends = Vec::new();
        let mut index = HashMap::new();
        for m in &config.models {
            let path = config.component_path(&m.adapter);
            let (adapter, auth) = match adapters.get(&m.adapter) {
                Some(loaded) => loaded.clone(),
                None => {
                    let wrap = |source| PoolError::Adapter { model: m.name.clone(), source };
                    let adapter = Plugin::<Adapter>::load(runtime, &path).map_err(wrap)?;
                    let auth = adapter.auth().map_err(wrap)?;
                    if let AuthScheme::Header(name) = &auth {
                        outbound::check_credential_header(name).map_err(|reason| PoolError::Unsafe {
                            model: m.name.clone(),
                            reason: format!("adapter `{}`: {reason}", m.adapter),
                        })?;
                    }
                    adapters.insert(m.adapter.clone(), (adapter.clone(), auth.clone()));
                    (adapter, auth)
                }
            };
            let endpoint = outbound::check_endpoint(&m.endpoint)
                .map_err(|reason| PoolError::Unsafe { model: m.name.clone(), reason: format!("endpoint: {reason}") })?;
            let api_key = m.api_key_env.as_ref().and_then(|var| std::env::var(var).ok()).filter(|k| !k.is_empty());
            for name in std::iter::once(&m.name).chain(&m.aliases) {
                index.insert(name.trim().to_lowercase(), backends.len());
            }
            backends.push(Arc::new(Backend {
                config: m.clone(),
                descriptor: m.descriptor(),
                adapter,
                auth,
                endpoint,
                api_key,
                permits: Arc::new(Semaphore::new(m.max_concurrency)),
            }));
        }
        let client = reqwest::Client::builder()
            // A redirect could carry a model's credential header to another host.
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(64)
            .tcp_nodelay(true)
            .build()
            .map_err(|e| PoolError::Client(e.to_string()))?;
        let cost_settings = config
            .plugins
            .cost_settings
            .iter()
            .map(|(name, value)| Setting { name: name.clone(), value: *value })
            .collect();
        Ok(Pool { backends, index, client, cost, cost_settings, max_body_bytes: 8 << 20, in_process: None })
    }

    /// Serve every request with `router` in-process instead of over HTTP.
    pub fn with_in_process(mut self, router: axum::Router) -> Pool {
        self.in_process = Some(router);
        self
    }

    /// The model with this name or alias (exact, case-insensitive).
    pub fn resolve(&self, name: &str) -> Option<&Arc<Backend>> {
        self.index.get(&name.trim().to_lowercase()).map(|&i| &self.backends[i])
    }

    pub fn backends(&self) -> &[Arc<Backend>] {
        &self.backends
    }

    pub fn descriptors(&self) -> Vec<ModelDescriptor> {
        self.backends.iter().map(|b| b.descriptor.clone()).collect()
    }

    /// The cost component and its settings, for pricing on a blocking task.
    pub(super) fn pricer(&self) -> super::call::Pricer {
        super::call::Pricer { cost: self.cost.clone(), settings: self.cost_settings.clone() }
    }

    /// Price a call with the configured cost component, on the blocking
    /// pool (guest code never runs on the server's async workers). The
    /// sandbox has checked the value: finite, in [0, `MAX_CALL_COST_USD`].
    pub async fn price(&self, backend: &Arc<Backend>, usage: Usage, latency: Duration) -> Result<f64, BackendError> {
        let (pricer, priced) = (self.pricer(), backend.clone());
        super::call::on_blocking_pool(backend.name(), None, move || pricer.price(&priced, usage, latency)).await?
    }

    /// Ask model `name` the router's sub-query `query`. Never fails: a
    /// failure is recorded in the returned call's `error`.
    pub async fn route(&self, name: &str, query: &str) -> RoutedCall {
        let started = Instant::now();
        let failed = |model: &str, error: String| RoutedCall {
            model: model.to_string(),
            query: query.to_string(),
            reply: String::new(),
            usage: Usage::default(),
            cost: 0.0,
            latency_ms: started.elapsed().as_millis().try_into().unwrap_or(u32::MAX),
            error: Some(error),
        };
        let Some(backend) = self.resolve(name) else {
            return failed(name.trim(), format!("no model named `{}` in the pool", name.trim()));
        };
        let request = ChatRequest {
            model: backend.config.remote_model().to_string(),
            messages: vec![
                ChatMessage { role: "system".into(), content: ROUTED_CALL_SYSTEM_PROMPT.into() },
                ChatMessage { role: "user".into(), content: query.to_string() },
            ],
            max_tokens: Some(backend.config.max_tokens),
            temperature: Some(0.0),
            top_p: None,
            stop: vec![],
            streaming: false,
        };
        match self.complete(backend.name(), &request).await {
            Ok(CallOutcome { model, completion, usage, cost, latency, .. }) => RoutedCall {
                model,
                query: query.to_string(),
                reply: completion.text,
                usage,
                cost,
                latency_ms: latency.as_millis().try_into().unwrap_or(u32::MAX),
                error: None,
            },
            Err(e) => failed(backend.name(), e.to_string()),
        }
    }
}

/// Token counts when a provider reports none: about four characters per
/// token, the usual rule of thumb for English BPE vocabularies.
pub fn estimate_tokens(text: &str) -> u32 {
    u32::try_from(text.chars().count().div_ceil(4)).unwrap_or(u32::MAX)
}
