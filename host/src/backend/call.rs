//! One provider call: adapter builds the request, the host adds credentials
//! and sends it, reads the reply (capped), the adapter parses it. Around it:
//! per-model timeout, concurrency limit, retries with exponential backoff on
//! 429 / 5xx / timeouts / connection errors, then the fallback model.

use std::collections::HashSet;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{Stream, StreamExt};
use tokio::sync::OwnedSemaphorePermit;

use super::pool::{Backend, Pool, estimate_tokens};
use super::sse::SseParser;
use crate::plugin::types::{
    AuthScheme, ChatRequest, Completion, HttpRequest, HttpResponse, StreamDelta, StreamEvent, Usage,
};
use crate::plugin::{self, Warm};

/// Why a call to a model failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BackendError {
    #[error("no model named `{0}` in the pool")]
    UnknownModel(String),
    #[error("model `{model}` timed out after {after:?}")]
    Timeout { model: String, after: Duration },
    #[error("model `{model}` answered HTTP {status}: {message}")]
    Http { model: String, status: u16, message: String },
    #[error("model `{model}`: connection failed: {message}")]
    Transport { model: String, message: String },
    #[error("model `{model}`: adapter: {message}")]
    Adapter { model: String, message: String },
    #[error("model `{model}`: cost component: {message}")]
    Cost { model: String, message: String },
    #[error("model `{model}`: reply larger than {limit} bytes")]
    TooLarge { model: String, limit: usize },
    #[error("model `{model}`: the stream ended before it finished")]
    StreamCut { model: String },
}

impl BackendError {
    /// Worth another attempt (or the fallback model).
    pub fn retryable(&self) -> bool {
        match self {
            BackendError::Timeout { .. } | BackendError::Transport { .. } | BackendError::StreamCut { .. } => true,
            BackendError::Http { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }

    /// Caused by the request itself (the provider refused its content):
    /// another model would refuse it too, so no fallback.
    pub fn client_caused(&self) -> bool {
        matches!(self, BackendError::UnknownModel(_) | BackendError::Http { status: 400 | 413 | 422, .. })
    }

    /// The HTTP status a client of the server should see for this failure.
    pub fn client_status(&self) -> u16 {
        match self {
            BackendError::UnknownModel(_) => 404,
            BackendError::Timeout { .. } => 504,
            BackendError::Http { status: 429, .. } => 429,
            // The provider refused the request's content (e.g. too long).
            BackendError::Http { status: 400 | 413 | 422, .. } => 400,
            _ => 502,
        }
    }
}

/// A successful non-streaming call.
#[derive(Debug, Clone)]
pub struct CallOutcome {
    /// The model that answered (the fallback, if it was used).
    pub model: String,
    pub completion: Completion,
    /// Reported usage, or an estimate when the provider reported none.
    pub usage: Usage,
    pub cost: f64,
    pub latency: Duration,
    /// Attempts made in total, across retries and fallback.
    pub attempts: u32,
}

/// An item of a streaming pass-through call.
#[derive(Debug, Clone)]
pub enum StreamItem {
    Delta(StreamDelta),
    /// The stream finished; usage is the per-field maximum reported (or an
    /// estimate), cost from the cost component.
    Done {
        model: String,
        usage: Usage,
        cost: f64,
    },
}

pub type ItemStream = Pin<Box<dyn Stream<Item = Result<StreamItem, BackendError>> + Send>>;

const BACKOFF_BASE: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
const RETRY_AFTER_MAX: Duration = Duration::from_secs(5);

fn backoff(attempt: u32, retry_after: Option<Duration>) -> Duration {
    retry_after
        .map(|d| d.min(RETRY_AFTER_MAX))
        .unwrap_or_else(|| (BACKOFF_BASE * 2u32.saturating_pow(attempt)).min(BACKOFF_MAX))
}

fn adapter_error(model: &str, e: plugin::Error) -> BackendError {
    BackendError::Adapter { model: model.to_string(), message: e.to_string() }
}

impl Pool {
    /// The backends to try for `name`: it, then its fallback chain (no repeats).
    fn chain(&self, name: &str) -> Result<Vec<Arc<Backend>>, BackendError> {
        let first = self.resolve(name).ok_or_else(|| BackendError::UnknownModel(name.trim().to_string()))?.clone();
        let mut seen = HashSet::from([first.name().to_string()]);
        let mut chain = vec![first];
        while let Some(next) = chain.last().and_then(|b| b.config.fallback.as_deref()).and_then(|f| self.resolve(f)) {
            if !seen.insert(next.name().to_string()) {
                break;
            }
            chain.push(next.clone());
        }
        Ok(chain)
    }

    /// Turn the adapter's request into a reqwest request with credentials.
    fn prepare(
        &self,
        backend: &Backend,
        http: HttpRequest,
        streaming: bool,
    ) -> Result<reqwest::RequestBuilder, BackendError> {
        let model = backend.name();
        let endpoint = backend.config.endpoint.trim_end_matches('/');
        // The adapter may only address the configured endpoint: the host is
        // about to attach this model's credentials.
        if !(http.url == endpoint || http.url.starts_with(&format!("{endpoint}/"))) {
            return Err(BackendError::Adapter {
                model: model.to_string(),
                message: format!("request URL `{}` is outside the configured endpoint `{endpoint}`", http.url),
            });
        }
        let method = reqwest::Method::from_bytes(http.method.as_bytes()).map_err(|_| BackendError::Adapter {
            model: model.to_string(),
            message: format!("bad method `{}`", http.method),
        })?;
        let mut request = self.client.request(method, &http.url).body(http.body);

        let credential_header = match &backend.auth {
            AuthScheme::Header(name) => name.as_str(),
            _ => "authorization",
        };
        for (k, v) in &http.headers {
            // Credentials are the host's business, and the adapter may not
            // steer the connection (virtual host, framing).
            let reserved =
                ["authorization", "x-api-key", "host", "content-length", "transfer-encoding", credential_header];
            if reserved.iter().any(|r| k.eq_ignore_ascii_case(r)) {
                continue;
            }
            request = request.header(k, v);
        }
        if let Some(key) = &backend.api_key {
            request = match &backend.auth {
                AuthScheme::Bearer => request.bearer_auth(key),
                AuthScheme::Header(name) => request.header(name.as_str(), key.as_str()),
                AuthScheme::None => request,
            };
        }

        // A whole-request timeout would cut long streams; streams get a
        // first-event deadline and an idle deadline per chunk instead.
        Ok(if streaming { request } else { request.timeout(backend.config.timeout()) })
    }

    async fn acquire(&self, backend: &Backend) -> Result<OwnedSemaphorePermit, BackendError> {
        let timeout = backend.config.timeout();
        match tokio::time::timeout(timeout, backend.permits.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(BackendError::Timeout { model: backend.name().to_string(), after: timeout }),
        }
    }

    /// Send (response headers within the model's timeout), mapping transport failures.
    async fn send(
        &self,
        backend: &Backend,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, BackendError> {
        let model = backend.name().to_string();
        let timeout = backend.config.timeout();
        if let Some(router) = &self.in_process {
            return match tokio::time::timeout(timeout, self.send_in_process(router, request)).await {
                Err(_) => Err(BackendError::Timeout { model, after: timeout }),
                Ok(result) => result.map_err(|message| BackendError::Transport { model, message }),
            };
        }
        match tokio::time::timeout(timeout, request.send()).await {
            Err(_) => Err(BackendError::Timeout { model, after: timeout }),
            Ok(Err(e)) if e.is_timeout() => Err(BackendError::Timeout { model, after: timeout }),
            Ok(Err(e)) => Err(BackendError::Transport { model, message: e.to_string() }),
            Ok(Ok(response)) => Ok(response),
        }
    }

    /// Hand the request to an in-process router; the reply body is read
    /// whole (capped), so a cut stream is a transport error here.
    async fn send_in_process(
        &self,
        router: &axum::Router,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, String> {
        use tower::ServiceExt;
        let request = request.build().map_err(|e| e.to_string())?;
        let request: axum::http::Request<reqwest::Body> =
            request.try_into().map_err(|e: reqwest::Error| e.to_string())?;
        let (parts, body) = request.into_parts();
        let body = axum::body::Body::from(body.as_bytes().map(<[u8]>::to_vec).unwrap_or_default());
        let response =
            router.clone().oneshot(axum::http::Request::from_parts(parts, body)).await.map_err(|e| e.to_string())?;
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, self.max_body_bytes).await.map_err(|e| e.to_string())?;
        Ok(reqwest::Response::from(axum::http::Response::from_parts(parts, bytes)))
    }

    /// Read a whole body, refusing more than `max_body_bytes`.
    async fn read_body(&self, backend: &Backend, response: reqwest::Response) -> Result<Vec<u8>, BackendError> {
        let model = backend.name();
        let mut body = Vec::new();
        let mut chunks = response.bytes_stream();
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(|e| {
                if e.is_timeout() {
                    BackendError::Timeout { model: model.to_string(), after: backend.config.timeout() }
                } else {
                    BackendError::Transport { model: model.to_string(), message: e.to_string() }
                }
            })?;
            if body.len() + chunk.len() > self.max_body_bytes {
                return Err(BackendError::TooLarge { model: model.to_string(), limit: self.max_body_bytes });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    async fn attempt(
        &self,
        backend: &Backend,
        request: &ChatRequest,
    ) -> Result<(Completion, Duration), (BackendError, Option<Duration>)> {
        let model = backend.name();
        let http = backend
            .adapter
            .build_request(request, &backend.config.endpoint)
            .map_err(|e| (adapter_error(model, e), None))?;
        let started = Instant::now();
        let response = self
            .send(backend, self.prepare(backend, http, false).map_err(|e| (e, None))?)
            .await
            .map_err(|e| (e, None))?;
        let status = response.status().as_u16();
        let retry_after = retry_after(response.headers());
        let headers = header_pairs(response.headers());
        let body = self.read_body(backend, response).await.map_err(|e| (e, None))?;
        let completion = backend.adapter.parse_response(&HttpResponse { status, headers, body });
        match completion {
            Ok(c) if (200..300).contains(&status) => Ok((c, started.elapsed())),
            Ok(_) => {
                Err((BackendError::Http { model: model.into(), status, message: "error status".into() }, retry_after))
            }
            Err(plugin::Error::Rejected { error, .. }) if !(200..300).contains(&status) => {
                Err((BackendError::Http { model: model.into(), status, message: error.message }, retry_after))
            }
            Err(e) => Err((adapter_error(model, e), None)),
        }
    }

    /// Try `name`, then its fallback chain: per backend up to `1 + retries`
    /// attempts, each holding one concurrency slot (none while sleeping in
    /// backoff); retry only retryable failures; move to the fallback on any
    /// failure but the request's own fault. Returns the first success and the
    /// number of attempts made.
    async fn with_retries<T, Fut>(
        &self,
        name: &str,
        request: &ChatRequest,
        mut attempt: impl FnMut(Arc<Backend>, ChatRequest, OwnedSemaphorePermit) -> Fut,
    ) -> Result<(T, u32), BackendError>
    where
        Fut: std::future::Future<Output = Result<T, (BackendError, Option<Duration>)>>,
    {
        let mut attempts = 0;
        let mut last = None;
        for backend in self.chain(name)? {
            let mut request = request.clone();
            if backend.name() != name {
                request.model = backend.config.remote_model().to_string();
            }
            for n in 0..=backend.config.retries {
                let permit = match self.acquire(&backend).await {
                    Ok(p) => p,
                    Err(e) => {
                        last = Some(e);
                        break; // saturated: try the fallback
                    }
                };
                attempts += 1;
                let model = backend.name().to_string();
                match attempt(backend.clone(), request.clone(), permit).await {
                    Ok(value) => {
                        metrics::counter!("switchyard_backend_calls_total", "model" => model, "outcome" => "ok")
                            .increment(1);
                        return Ok((value, attempts));
                    }
                    Err((error, retry_after)) => {
                        metrics::counter!("switchyard_backend_calls_total", "model" => model.clone(), "outcome" => "error")
                            .increment(1);
                        tracing::debug!(model, attempt = n, %error, "backend call failed");
                        let retry = error.retryable();
                        last = Some(error);
                        if !retry {
                            break;
                        }
                        if n < backend.config.retries {
                            tokio::time::sleep(backoff(n, retry_after)).await;
                        }
                    }
                }
            }
            // The fallback gets every failure except the request's own fault.
            if last.as_ref().is_some_and(BackendError::client_caused) {
                break;
            }
        }
        Err(last.unwrap_or_else(|| BackendError::UnknownModel(name.to_string())))
    }

    /// A complete (non-streaming) call to `name`, with retries and fallback.
    pub async fn complete(&self, name: &str, request: &ChatRequest) -> Result<CallOutcome, BackendError> {
        let ((model, completion, usage, cost, latency), attempts) = self
            .with_retries(name, request, |backend, request, permit| async move {
                let (completion, latency) = self.attempt(&backend, &request).await?;
                drop(permit);
                let usage = completion.usage.unwrap_or_else(|| Usage {
                    input_tokens: request.messages.iter().map(|m| estimate_tokens(&m.content)).sum(),
                    output_tokens: estimate_tokens(&completion.text),
                });
                let latency_ms = latency.as_millis().try_into().unwrap_or(u32::MAX);
                let cost = self.price(&backend, usage, latency_ms).map_err(|e| (e, None))?;
                Ok((backend.name().to_string(), completion, usage, cost, latency))
            })
            .await?;
        Ok(CallOutcome { model, completion, usage, cost, latency, attempts })
    }

    /// A streaming call to `name`. Failures before the first event retry and
    /// fall back like `complete`; once an event has been yielded, a failure
    /// ends the stream with an error item, never a silent clean end.
    pub async fn stream(self: &Arc<Self>, name: &str, request: &ChatRequest) -> Result<ItemStream, BackendError> {
        let mut request = request.clone();
        request.streaming = true;
        let (stream, _) = self
            .with_retries(name, &request, |backend, request, permit| async move {
                self.open_stream(&backend, &request, permit).await
            })
            .await?;
        Ok(stream)
    }

    /// Open one stream and read up to its first event, so that failures up
    /// to there can still be retried.
    async fn open_stream(
        self: &Arc<Self>,
        backend: &Arc<Backend>,
        request: &ChatRequest,
        permit: OwnedSemaphorePermit,
    ) -> Result<ItemStream, (BackendError, Option<Duration>)> {
        let model = backend.name().to_string();
        let http = backend
            .adapter
            .build_request(request, &backend.config.endpoint)
            .map_err(|e| (adapter_error(&model, e), None))?;
        let started = Instant::now();
        let response = self
            .send(backend, self.prepare(backend, http, true).map_err(|e| (e, None))?)
            .await
            .map_err(|e| (e, None))?;
        let status = response.status().as_u16();
        let retry_after = retry_after(response.headers());
        if !(200..300).contains(&status) {
            let headers = header_pairs(response.headers());
            let body = self.read_body(backend, response).await.map_err(|e| (e, None))?;
            let message = match backend.adapter.parse_response(&HttpResponse { status, headers, body }) {
                Err(plugin::Error::Rejected { error, .. }) => error.message,
                _ => "error status".into(),
            };
            return Err((BackendError::Http { model, status, message }, retry_after));
        }
        let mut state = StreamState {
            pool: self.clone(),
            backend: backend.clone(),
            adapter: backend.adapter.warm(),
            bytes: Box::pin(response.bytes_stream()),
            parser: SseParser::new(),
            pending: std::collections::VecDeque::new(),
            usage: Usage::default(),
            text_chars: 0,
            prompt_tokens: request.messages.iter().map(|m| estimate_tokens(&m.content)).sum(),
            started,
            finished: false,
            _permit: permit,
        };
        // Read until the first meaningful event; errors here are retryable.
        let first = state.next_item().await.map_err(|e| (e, None))?;
        let stream = futures_util::stream::unfold((state, Some(first)), |(mut state, first)| async move {
            let item = match first {
                Some(item) => item,
                None => {
                    if state.finished {
                        return None;
                    }
                    match state.next_item().await {
                        Ok(item) => item,
                        Err(e) => {
                            state.finished = true;
                            return Some((Err(e), (state, None)));
                        }
                    }
                }
            };
            if matches!(item, StreamItem::Done { .. }) {
                state.finished = true;
            }
            Some((Ok(item), (state, None)))
        });
        Ok(Box::pin(stream))
    }
}

struct StreamState {
    pool: Arc<Pool>,
    backend: Arc<Backend>,
    adapter: Warm<crate::plugin::bindings::v0_1_0::adapter::Adapter>,
    bytes: Pin<Box<dyn Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    parser: SseParser,
    pending: std::collections::VecDeque<(String, String)>,
    usage: Usage,
    text_chars: usize,
    prompt_tokens: u32,
    started: Instant,
    finished: bool,
    _permit: OwnedSemaphorePermit,
}

impl StreamState {
    /// The next delta or the final `Done`; an error if the stream breaks.
    async fn next_item(&mut self) -> Result<StreamItem, BackendError> {
        let model = self.backend.name().to_string();
        loop {
            while let Some((event, data)) = self.pending.pop_front() {
                match self.adapter.parse_stream_event(&event, &data).map_err(|e| adapter_error(&model, e))? {
                    StreamEvent::Ignore => {}
                    StreamEvent::Done => return self.done(),
                    StreamEvent::Delta(delta) => {
                        if let Some(u) = delta.usage {
                            // Per-field maximum: see `stream-delta.usage` in the WIT.
                            self.usage.input_tokens = self.usage.input_tokens.max(u.input_tokens);
                            self.usage.output_tokens = self.usage.output_tokens.max(u.output_tokens);
                        }
                        self.text_chars += delta.text.chars().count();
                        if !delta.text.is_empty() || delta.finish_reason.is_some() {
                            return Ok(StreamItem::Delta(delta));
                        }
                    }
                }
            }
            // Idle deadline: the model's timeout between two chunks.
            let timeout = self.backend.config.timeout();
            match tokio::time::timeout(timeout, self.bytes.next()).await {
                Err(_) => return Err(BackendError::Timeout { model, after: timeout }),
                Ok(Some(Ok(chunk))) => {
                    let events = self.parser.push(&chunk);
                    if self.parser.buffered() > self.pool.max_body_bytes {
                        return Err(BackendError::TooLarge { model, limit: self.pool.max_body_bytes });
                    }
                    self.pending.extend(events);
                }
                Ok(Some(Err(e))) if e.is_timeout() => return Err(BackendError::Timeout { model, after: timeout }),
                Ok(Some(Err(_)) | None) => return Err(BackendError::StreamCut { model }),
            }
        }
    }

    fn done(&mut self) -> Result<StreamItem, BackendError> {
        let mut usage = self.usage;
        if usage.input_tokens == 0 {
            usage.input_tokens = self.prompt_tokens;
        }
        if usage.output_tokens == 0 {
            usage.output_tokens = u32::try_from(self.text_chars.div_ceil(4)).unwrap_or(u32::MAX);
        }
        let latency_ms = self.started.elapsed().as_millis().try_into().unwrap_or(u32::MAX);
        let cost = self.pool.price(&self.backend, usage, latency_ms)?;
        Ok(StreamItem::Done { model: self.backend.name().to_string(), usage, cost })
    }
}

fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

fn header_pairs(headers: &reqwest::header::HeaderMap) -> Vec<(String, String)> {
    headers.iter().filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string()))).collect()
}
