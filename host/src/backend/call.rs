//! One provider call: adapter builds the request, the host checks it
//! (`outbound`), adds credentials and sends it, reads the reply (capped), the
//! adapter parses it and the cost component prices it. Around it: per-model
//! timeout, concurrency limit, retries with exponential backoff on 429 / 5xx /
//! timeouts / connection errors / malformed replies, then the fallback model.
//!
//! Guest code (the adapter, the cost component) always runs on the blocking
//! pool and holds the call's concurrency slot until it returns; every error
//! and text handed back has the model's key redacted.

use std::collections::HashSet;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{Stream, StreamExt};
use tokio::sync::OwnedSemaphorePermit;

use super::outbound;
use super::pool::{Backend, Pool, estimate_tokens};
use super::sse::SseParser;
use crate::plugin::types::{
    AuthScheme, ChatRequest, Completion, ErrorKind, HttpRequest, HttpResponse, StreamDelta, StreamEvent, Usage,
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
    /// A success status whose body the adapter could not read (cut short,
    /// not JSON): a faulty reply, worth another attempt like a 5xx.
    #[error("model `{model}`: malformed reply: {message}")]
    BadReply { model: String, message: String },
}

impl BackendError {
    /// Worth another attempt (or the fallback model).
    pub fn retryable(&self) -> bool {
        match self {
            BackendError::Timeout { .. }
            | BackendError::Transport { .. }
            | BackendError::StreamCut { .. }
            | BackendError::BadReply { .. } => true,
            BackendError::Http { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }

    /// The same error with `key` redacted from its message: messages quote
    /// upstream bodies and adapter text, which may echo the key.
    pub fn redact(self, key: Option<&str>) -> BackendError {
        let r = |message: String| outbound::redact(&message, key);
        match self {
            BackendError::Http { model, status, message } => BackendError::Http { model, status, message: r(message) },
            BackendError::Transport { model, message } => BackendError::Transport { model, message: r(message) },
            BackendError::Adapter { model, message } => BackendError::Adapter { model, message: r(message) },
            BackendError::Cost { model, message } => BackendError::Cost { model, message: r(message) },
            BackendError::BadReply { model, message } => BackendError::BadReply { model, message: r(message) },
            other => other,
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

/// An adapter's failure to read part of a reply: an `upstream` refusal means
/// the reply itself was garbled (retryable); anything else is the adapter's.
fn reply_error(model: &str, e: plugin::Error) -> BackendError {
    match e {
        plugin::Error::Rejected { error, .. } if error.kind == ErrorKind::Upstream => {
            BackendError::BadReply { model: model.to_string(), message: error.message }
        }
        e => adapter_error(model, e),
    }
}

/// A failed attempt, with the provider's `Retry-After` when it sent one.
type Failure = (BackendError, Option<Duration>);

/// A model's concurrency slot for one attempt, shared by the attempt and the
/// blocking tasks running its guest code: released when the last lets go.
pub(super) type Permit = Arc<OwnedSemaphorePermit>;

/// A reply as received, before the adapter reads it.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    retry_after: Option<Duration>,
    latency: Duration,
}

/// A successful attempt: the completion, its (checked or estimated) usage and its price.
struct Answered {
    completion: Completion,
    usage: Usage,
    cost: f64,
    latency: Duration,
}

/// The cost component and its settings, cloned for a blocking task.
pub(super) struct Pricer {
    pub(super) cost: plugin::Plugin<plugin::Cost>,
    pub(super) settings: Vec<crate::plugin::types::Setting>,
}

impl Pricer {
    pub(super) fn price(&self, backend: &Backend, usage: Usage, latency: Duration) -> Result<f64, BackendError> {
        let latency_ms = latency.as_millis().try_into().unwrap_or(u32::MAX);
        self.cost
            .cost(&backend.descriptor, usage, latency_ms, &self.settings)
            .map_err(|e| BackendError::Cost { model: backend.name().to_string(), message: e.to_string() })
    }
}

/// Guest code of one attempt after the reply arrived, run on the blocking
/// pool in one hop: the adapter reads the reply, the host checks the usage
/// it reports (or estimates usage when it reports none), the cost component
/// prices the call. Keys quoted by the provider are redacted.
fn read_and_price(
    pricer: &Pricer,
    backend: &Backend,
    request: &ChatRequest,
    reply: Reply,
) -> Result<Answered, Failure> {
    let model = backend.name();
    let key = backend.api_key.as_deref();
    let Reply { status, headers, body, retry_after, latency } = reply;
    let success = (200..300).contains(&status);
    let mut completion = match backend.adapter.parse_response(&HttpResponse { status, headers, body }) {
        Ok(c) if success => c,
        Ok(_) => {
            return Err((
                BackendError::Http { model: model.into(), status, message: "error status".into() },
                retry_after,
            ));
        }
        // The provider's own message (redacted with every error, in `with_retries`).
        Err(plugin::Error::Rejected { error, .. }) if !success => {
            return Err((BackendError::Http { model: model.into(), status, message: error.message }, retry_after));
        }
        // A success status with a body the adapter cannot read: the reply
        // was cut or garbled on the way, so another attempt may succeed.
        Err(e) => return Err((reply_error(model, e), None)),
    };
    completion.text = outbound::redact(&completion.text, key);
    completion.finish_reason = completion.finish_reason.map(|r| outbound::redact(&r, key));
    completion.model = completion.model.map(|m| outbound::redact(&m, key));
    let usage = match completion.usage {
        Some(usage) => check_usage(backend, request, usage).map_err(|e| (e, None))?,
        None => Usage {
            input_tokens: request.messages.iter().map(|m| estimate_tokens(&m.content)).sum(),
            output_tokens: estimate_tokens(&completion.text),
        },
    };
    let cost = pricer.price(backend, usage, latency).map_err(|e| (e, None))?;
    Ok(Answered { completion, usage, cost, latency })
}

/// Run guest code on the blocking pool: a component that spins up to its
/// deadline must not hold one of the async workers that serve `/healthz`
/// and every other request. The task holds `slot` (the call's concurrency
/// slot) until the guest returns, even if the request is dropped meanwhile,
/// so a model's `max_concurrency` bounds its guest calls, not only its
/// requests.
pub(super) async fn on_blocking_pool<T: Send + 'static>(
    model: &str,
    slot: Option<Permit>,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, BackendError> {
    let task = move || {
        let _slot = slot;
        f()
    };
    tokio::task::spawn_blocking(task)
        .await
        .map_err(|e| BackendError::Adapter { model: model.to_string(), message: format!("the guest task failed: {e}") })
}

/// Usage an adapter reports must fit the call: no more output than the
/// request allowed, no more input or total than the model's context holds.
/// A misreport (or a hostile adapter) would otherwise be billed as is.
fn check_usage(backend: &Backend, request: &ChatRequest, usage: Usage) -> Result<Usage, BackendError> {
    let context = u64::from(backend.descriptor.context_tokens);
    let (input, output) = (u64::from(usage.input_tokens), u64::from(usage.output_tokens));
    let limit_output = request.max_tokens.map(u64::from);
    let problem = if limit_output.is_some_and(|max| output > max) {
        Some(format!("{output} output tokens, over the request's max_tokens of {}", limit_output.unwrap_or(0)))
    } else if context > 0 && input + output > context {
        Some(format!("{input} input + {output} output tokens, over the model's context of {context}"))
    } else {
        None
    };
    match problem {
        None => Ok(usage),
        Some(problem) => Err(BackendError::Adapter {
            model: backend.name().to_string(),
            message: format!("reported usage is impossible for this call: {problem}"),
        }),
    }
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

    /// Turn the adapter's request into a reqwest request with credentials,
    /// after the checks of `outbound`: the host is about to attach this
    /// model's key, so the request may only go where the configuration says.
    fn prepare(
        &self,
        backend: &Backend,
        http: HttpRequest,
        streaming: bool,
    ) -> Result<reqwest::RequestBuilder, BackendError> {
        let refuse = |message: String| BackendError::Adapter { model: backend.name().to_string(), message };
        let url = outbound::check_url(&backend.endpoint, &http.url).map_err(refuse)?;
        let method = outbound::check_method(&http.method).map_err(refuse)?;
        let credential_header = match &backend.auth {
            AuthScheme::Header(name) => Some(name.as_str()),
            _ => None,
        };
        let headers = outbound::forwarded_headers(&http.headers, credential_header).map_err(refuse)?;
        let mut request = self.client.request(method, url).body(http.body);
        for (name, value) in headers {
            request = request.header(name, value);
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

    /// The adapter's HTTP request for `request`, built on the blocking pool.
    async fn build_request(
        &self,
        backend: &Backend,
        request: &ChatRequest,
        permit: &Permit,
    ) -> Result<HttpRequest, BackendError> {
        let (adapter, request, base) = (backend.adapter.clone(), request.clone(), backend.config.endpoint.clone());
        on_blocking_pool(backend.name(), Some(permit.clone()), move || adapter.build_request(&request, &base))
            .await?
            .map_err(|e| adapter_error(backend.name(), e))
    }

    /// One attempt: build (blocking pool), send, read the capped body, then
    /// read and price the reply in one more hop to the blocking pool.
    async fn attempt(
        &self,
        backend: &Arc<Backend>,
        request: &ChatRequest,
        permit: &Permit,
    ) -> Result<Answered, Failure> {
        let model = backend.name().to_string();
        let http = self.build_request(backend, request, permit).await.map_err(|e| (e, None))?;
        let started = Instant::now();
        let response = self
            .send(backend, self.prepare(backend, http, false).map_err(|e| (e, None))?)
            .await
            .map_err(|e| (e, None))?;
        let status = response.status().as_u16();
        let retry_after = retry_after(response.headers());
        let headers = header_pairs(response.headers());
        let body = self.read_body(backend, response).await.map_err(|e| (e, None))?;
        let latency = started.elapsed();
        let reply = Reply { status, headers, body, retry_after, latency };
        let (pricer, backend, request) = (self.pricer(), backend.clone(), request.clone());
        on_blocking_pool(&model, Some(permit.clone()), move || read_and_price(&pricer, &backend, &request, reply))
            .await
            .map_err(|e| (e, None))?
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
        mut attempt: impl FnMut(Arc<Backend>, ChatRequest, Permit) -> Fut,
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
                match attempt(backend.clone(), request.clone(), Arc::new(permit)).await {
                    Ok(value) => {
                        metrics::counter!("switchyard_backend_calls_total", "model" => model, "outcome" => "ok")
                            .increment(1);
                        return Ok((value, attempts));
                    }
                    Err((error, retry_after)) => {
                        let error = error.redact(backend.api_key.as_deref());
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
                let Answered { completion, usage, cost, latency } = self.attempt(&backend, &request, &permit).await?;
                drop(permit);
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
        permit: Permit,
    ) -> Result<ItemStream, (BackendError, Option<Duration>)> {
        let model = backend.name().to_string();
        let http = self.build_request(backend, request, &permit).await.map_err(|e| (e, None))?;
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
            let adapter = backend.adapter.clone();
            let response = HttpResponse { status, headers, body };
            let parsed = on_blocking_pool(&model, Some(permit.clone()), move || adapter.parse_response(&response))
                .await
                .map_err(|e| (e, None))?;
            // The provider's own message (redacted with every error, in `with_retries`).
            let message = match parsed {
                Err(plugin::Error::Rejected { error, .. }) => error.message,
                _ => "error status".into(),
            };
            return Err((BackendError::Http { model, status, message }, retry_after));
        }
        let mut state = StreamState {
            pool: self.clone(),
            backend: backend.clone(),
            adapter: Some(backend.adapter.warm()),
            request: request.clone(),
            bytes: Box::pin(response.bytes_stream()),
            parser: SseParser::new(),
            parsed: std::collections::VecDeque::new(),
            usage: Usage::default(),
            text_chars: 0,
            prompt_tokens: request.messages.iter().map(|m| estimate_tokens(&m.content)).sum(),
            started,
            finished: false,
            progress: started,
            permit,
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
                            let e = e.redact(state.backend.api_key.as_deref());
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
    /// The stream's adapter instance; `None` only while it parses on the
    /// blocking pool (or after that task failed).
    adapter: Option<Warm<crate::plugin::bindings::v0_1_0::adapter::Adapter>>,
    request: ChatRequest,
    bytes: Pin<Box<dyn Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    parser: SseParser,
    /// Events the adapter has read, in order; an error ends the list.
    parsed: std::collections::VecDeque<Result<StreamEvent, BackendError>>,
    usage: Usage,
    text_chars: usize,
    prompt_tokens: u32,
    started: Instant,
    finished: bool,
    /// When the stream last produced an item (its start, at first): the
    /// idle deadline runs from here, so keep-alive comments and empty events
    /// cannot hold the stream (and its slot) open for ever.
    progress: Instant,
    /// The call's concurrency slot, shared with the adapter's parse tasks.
    permit: Permit,
}

impl StreamState {
    /// The next delta or the final `Done`; an error if the stream breaks.
    async fn next_item(&mut self) -> Result<StreamItem, BackendError> {
        let model = self.backend.name().to_string();
        loop {
            while let Some(event) = self.parsed.pop_front() {
                match event? {
                    StreamEvent::Ignore => {}
                    StreamEvent::Done => return self.done().await,
                    StreamEvent::Delta(mut delta) => {
                        if let Some(u) = delta.usage {
                            // Per-field maximum: see `stream-delta.usage` in the WIT.
                            self.usage.input_tokens = self.usage.input_tokens.max(u.input_tokens);
                            self.usage.output_tokens = self.usage.output_tokens.max(u.output_tokens);
                        }
                        self.text_chars += delta.text.chars().count();
                        if !delta.text.is_empty() || delta.finish_reason.is_some() {
                            let key = self.backend.api_key.as_deref();
                            delta.text = outbound::redact(&delta.text, key);
                            delta.finish_reason = delta.finish_reason.map(|r| outbound::redact(&r, key));
                            self.progress = Instant::now();
                            return Ok(StreamItem::Delta(delta));
                        }
                    }
                }
            }
            // Idle deadline: the model's timeout without a new item.
            let timeout = self.backend.config.timeout();
            let idle = timeout.saturating_sub(self.progress.elapsed());
            match tokio::time::timeout(idle, self.bytes.next()).await {
                Err(_) => return Err(BackendError::Timeout { model, after: timeout }),
                Ok(Some(Ok(chunk))) => {
                    let events = self.parser.push(&chunk);
                    if self.parser.buffered() > self.pool.max_body_bytes {
                        return Err(BackendError::TooLarge { model, limit: self.pool.max_body_bytes });
                    }
                    if !events.is_empty() {
                        self.parse(events).await;
                    }
                }
                Ok(Some(Err(e))) if e.is_timeout() => return Err(BackendError::Timeout { model, after: timeout }),
                Ok(Some(Err(_)) | None) => return Err(BackendError::StreamCut { model }),
            }
        }
    }

    /// Have the adapter read `events` on the blocking pool, in one task,
    /// stopping at its first error.
    async fn parse(&mut self, events: Vec<(String, String)>) {
        let model = self.backend.name().to_string();
        let Some(mut adapter) = self.adapter.take() else {
            self.parsed
                .push_back(Err(BackendError::Adapter { model, message: "the adapter instance was lost".into() }));
            return;
        };
        let task = on_blocking_pool(&model, Some(self.permit.clone()), move || {
            let mut parsed = Vec::with_capacity(events.len());
            for (event, data) in &events {
                let result = adapter.parse_stream_event(event, data);
                let failed = result.is_err();
                parsed.push(result);
                if failed {
                    break;
                }
            }
            (adapter, parsed)
        });
        match task.await {
            Ok((adapter, parsed)) => {
                self.adapter = Some(adapter);
                self.parsed.extend(parsed.into_iter().map(|r| r.map_err(|e| reply_error(&model, e))));
            }
            Err(e) => self.parsed.push_back(Err(e)),
        }
    }

    async fn done(&mut self) -> Result<StreamItem, BackendError> {
        // What the provider reported must fit the call; estimates always do.
        let mut usage = check_usage(&self.backend, &self.request, self.usage)?;
        if usage.input_tokens == 0 {
            usage.input_tokens = self.prompt_tokens;
        }
        if usage.output_tokens == 0 {
            usage.output_tokens = u32::try_from(self.text_chars.div_ceil(4)).unwrap_or(u32::MAX);
        }
        let cost = self.pool.price(&self.backend, usage, self.started.elapsed()).await?;
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
