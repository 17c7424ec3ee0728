//! The shared `types` interface of `switchyard:plugin@0.1.0` (wit/types.wit),
//! written once in Rust and used by both the bindings (via `bindgen!`'s
//! `with`) and the rest of the host, so the engine, the server's JSON and
//! the plugins all speak the same types with no conversion layer.
//!
//! Invariant: field and case order here matches the WIT exactly; the
//! component-model type check at plugin load enforces it (a mismatch is a
//! load error in every test that loads a plugin).
//!
//! JSON form (CLI input, traces): field names in snake_case, enum and variant
//! cases in kebab-case, variants externally tagged (`{"fixed": [0, 0.1]}`).

use serde::{Deserialize, Serialize};
use wasmtime::component::{ComponentType, Lift, Lower};

/// See `plugin-error` in wit/types.wit.
#[derive(ComponentType, Lift, Lower, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[component(record)]
pub struct PluginError {
    pub kind: ErrorKind,
    pub message: String,
}

#[derive(ComponentType, Lift, Lower, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[component(enum)]
#[repr(u8)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    #[component(name = "invalid-input")]
    InvalidInput,
    #[component(name = "unsupported")]
    Unsupported,
    #[component(name = "upstream")]
    Upstream,
}

#[derive(ComponentType, Lift, Lower, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[component(record)]
pub struct Setting {
    pub name: String,
    pub value: f64,
}

#[derive(ComponentType, Lift, Lower, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[component(record)]
pub struct ExampleScore {
    pub benchmark: String,
    pub score: f64,
}

#[derive(ComponentType, Lift, Lower, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[component(record)]
pub struct ModelDescriptor {
    pub name: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    #[component(name = "price-in-per-mtok")]
    pub price_in_per_mtok: f64,
    #[component(name = "price-out-per-mtok")]
    pub price_out_per_mtok: f64,
    #[component(name = "latency-ms")]
    pub latency_ms: u32,
    #[component(name = "context-tokens")]
    pub context_tokens: u32,
    #[component(name = "size-b")]
    #[serde(default)]
    pub size_b: Option<f64>,
    #[serde(default)]
    pub strengths: Vec<String>,
    #[component(name = "example-scores")]
    #[serde(default)]
    pub example_scores: Vec<ExampleScore>,
}

#[derive(ComponentType, Lift, Lower, Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[component(record)]
pub struct Usage {
    #[component(name = "input-tokens")]
    pub input_tokens: u32,
    #[component(name = "output-tokens")]
    pub output_tokens: u32,
}

#[derive(ComponentType, Lift, Lower, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[component(record)]
pub struct RoutedCall {
    pub model: String,
    pub query: String,
    pub reply: String,
    pub usage: Usage,
    pub cost: f64,
    #[component(name = "latency-ms")]
    pub latency_ms: u32,
    #[serde(default)]
    pub error: Option<String>,
}

#[derive(ComponentType, Lift, Lower, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[component(enum)]
#[repr(u8)]
#[serde(rename_all = "kebab-case")]
pub enum Author {
    #[component(name = "router")]
    Router,
    #[component(name = "host")]
    Host,
}

#[derive(ComponentType, Lift, Lower, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[component(record)]
pub struct Segment {
    pub author: Author,
    pub text: String,
}

#[derive(ComponentType, Lift, Lower, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[component(record)]
pub struct Trajectory {
    pub question: String,
    pub segments: Vec<Segment>,
    #[serde(default)]
    pub calls: Vec<RoutedCall>,
    #[serde(default)]
    pub pool: Vec<ModelDescriptor>,
}

#[derive(ComponentType, Lift, Lower, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[component(enum)]
#[repr(u8)]
#[serde(rename_all = "kebab-case")]
pub enum Metric {
    #[component(name = "exact-match")]
    ExactMatch,
    #[component(name = "f1")]
    F1,
}

#[derive(ComponentType, Lift, Lower, Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[component(variant)]
#[serde(rename_all = "kebab-case")]
pub enum CostBounds {
    #[component(name = "fixed")]
    Fixed((f64, f64)),
    #[component(name = "batch-percentiles")]
    BatchPercentiles((f64, f64)),
}

#[derive(ComponentType, Lift, Lower, Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[component(record)]
pub struct RewardParams {
    pub alpha: f64,
    pub metric: Metric,
    #[component(name = "cost-bounds")]
    pub cost_bounds: CostBounds,
}

#[derive(ComponentType, Lift, Lower, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[component(record)]
pub struct ScoringInput {
    pub trajectory: Trajectory,
    #[component(name = "golden-answers")]
    pub golden_answers: Vec<String>,
}

#[derive(ComponentType, Lift, Lower, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[component(record)]
pub struct RewardBreakdown {
    pub format: f64,
    #[component(name = "format-errors")]
    pub format_errors: Vec<String>,
    pub answer: Option<String>,
    #[component(name = "exact-match")]
    pub exact_match: f64,
    pub f1: f64,
    pub outcome: f64,
    #[component(name = "raw-cost")]
    pub raw_cost: f64,
    #[component(name = "cost-score")]
    pub cost_score: f64,
    pub total: f64,
}

#[derive(ComponentType, Lift, Lower, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[component(record)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

#[derive(ComponentType, Lift, Lower, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[component(record)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<ChatMessage>,
    #[component(name = "max-tokens")]
    #[serde(default)]
    pub max_tokens: Option<u32>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[component(name = "top-p")]
    #[serde(default)]
    pub top_p: Option<f64>,
    #[serde(default)]
    pub stop: Vec<String>,
    #[serde(default)]
    pub streaming: bool,
}

#[derive(ComponentType, Lift, Lower, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[component(record)]
pub struct HttpRequest {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    #[serde(with = "body_text")]
    pub body: Vec<u8>,
}

#[derive(ComponentType, Lift, Lower, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[component(record)]
pub struct HttpResponse {
    pub status: u16,
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    #[serde(with = "body_text")]
    pub body: Vec<u8>,
}

#[derive(ComponentType, Lift, Lower, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[component(record)]
pub struct Completion {
    pub text: String,
    pub usage: Option<Usage>,
    #[component(name = "finish-reason")]
    pub finish_reason: Option<String>,
    pub model: Option<String>,
}

#[derive(ComponentType, Lift, Lower, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[component(variant)]
#[serde(rename_all = "kebab-case")]
pub enum StreamEvent {
    #[component(name = "delta")]
    Delta(StreamDelta),
    #[component(name = "done")]
    Done,
    #[component(name = "ignore")]
    Ignore,
}

#[derive(ComponentType, Lift, Lower, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[component(record)]
pub struct StreamDelta {
    pub text: String,
    pub usage: Option<Usage>,
    #[component(name = "finish-reason")]
    pub finish_reason: Option<String>,
}

#[derive(ComponentType, Lift, Lower, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[component(variant)]
#[serde(rename_all = "kebab-case")]
pub enum AuthScheme {
    #[component(name = "bearer")]
    Bearer,
    #[component(name = "header")]
    Header(String),
    #[component(name = "none")]
    None,
}

#[derive(ComponentType, Lift, Lower, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[component(record)]
pub struct RoutingState {
    pub question: String,
    pub pool: Vec<ModelDescriptor>,
    #[serde(default)]
    pub calls: Vec<RoutedCall>,
    #[serde(default)]
    pub turn: u32,
    #[component(name = "max-turns")]
    pub max_turns: u32,
}

#[derive(ComponentType, Lift, Lower, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[component(record)]
pub struct Route {
    pub model: String,
    pub query: String,
}

#[derive(ComponentType, Lift, Lower, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[component(variant)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    #[component(name = "route")]
    Route(Route),
    #[component(name = "answer")]
    Answer(String),
}

/// HTTP bodies as text in JSON (lossy for non-UTF-8 bodies, which only the
/// CLI and traces show; the plugin boundary itself carries raw bytes).
mod body_text {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(body: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&String::from_utf8_lossy(body))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        Ok(String::deserialize(d)?.into_bytes())
    }
}

/// What the host checks of every value a plugin returns, before anyone uses
/// it: its size against the kind's output cap, and its contents against the
/// WIT's documented ranges.
///
/// Invariant: `output_size` counts every list element at least
/// [`ELEMENT_BYTES`] (its canonical-ABI slot), so a list of millions of empty
/// strings is as large as it is, not "a few bytes". The copy itself is bounded
/// earlier, by wasmtime's hostcall fuel (see `sandbox::new_store`); this count
/// is the cap a plugin author reads.
pub trait GuestOutput {
    fn output_size(&self) -> usize;
    /// `Err(reason)` when a field is outside its documented range.
    fn validate(&self) -> Result<(), String> {
        Ok(())
    }
}

/// The least a list element counts towards the output cap, in bytes: a
/// string's (pointer, length) slot in the canonical ABI.
pub const ELEMENT_BYTES: usize = 8;

/// The most one call may cost, in US dollars. A cost component that prices a
/// single call above this is broken (a runaway unit or usage), and refusing
/// it keeps any sum of per-call costs finite.
pub const MAX_CALL_COST_USD: f64 = 1.0e6;

/// The most a trajectory's calls may cost together, in US dollars: a
/// thousand calls at `MAX_CALL_COST_USD`. Bounded so that sums and means of
/// rewards over any batch stay finite.
pub const MAX_RAW_COST_USD: f64 = 1.0e9;

impl GuestOutput for String {
    fn output_size(&self) -> usize {
        self.len()
    }
}

impl GuestOutput for f64 {
    fn output_size(&self) -> usize {
        8
    }
    /// A cost in US dollars (the only f64 a world returns alone).
    fn validate(&self) -> Result<(), String> {
        if self.is_finite() && (0.0..=MAX_CALL_COST_USD).contains(self) {
            Ok(())
        } else {
            Err(format!("a cost must be finite and in [0, {MAX_CALL_COST_USD}] US dollars, got {self}"))
        }
    }
}

impl<T: GuestOutput> GuestOutput for Option<T> {
    fn output_size(&self) -> usize {
        self.as_ref().map_or(1, GuestOutput::output_size)
    }
    fn validate(&self) -> Result<(), String> {
        self.as_ref().map_or(Ok(()), GuestOutput::validate)
    }
}

impl<T: GuestOutput> GuestOutput for Vec<T> {
    fn output_size(&self) -> usize {
        self.iter().map(|x| ELEMENT_BYTES + x.output_size()).sum::<usize>() + 8
    }
    fn validate(&self) -> Result<(), String> {
        self.iter().enumerate().try_for_each(|(i, x)| x.validate().map_err(|e| format!("item {i}: {e}")))
    }
}

impl GuestOutput for RewardBreakdown {
    fn output_size(&self) -> usize {
        64 + self.format_errors.output_size() + self.answer.output_size()
    }
    /// The ranges of `reward-breakdown` in wit/types.wit. A NaN or an
    /// out-of-range field is an error here, so no consumer (server, `score`,
    /// eval, training advantages) ever sees one; every field is bounded, so
    /// sums and means over a batch cannot overflow either.
    fn validate(&self) -> Result<(), String> {
        let unit = |x: f64| (0.0..=1.0).contains(&x);
        let checks = [
            ("format", self.format, (-1.0..=0.0).contains(&self.format), "in [-1, 0]"),
            ("exact-match", self.exact_match, self.exact_match == 0.0 || self.exact_match == 1.0, "0 or 1"),
            ("f1", self.f1, unit(self.f1), "in [0, 1]"),
            ("outcome", self.outcome, unit(self.outcome), "in [0, 1]"),
            ("raw-cost", self.raw_cost, (0.0..=MAX_RAW_COST_USD).contains(&self.raw_cost), "in [0, 1e9]"),
            ("cost-score", self.cost_score, unit(self.cost_score), "in [0, 1]"),
            ("total", self.total, (-1.0..=1.0).contains(&self.total), "in [-1, 1]"),
        ];
        if let Some((field, value, _, range)) = checks.iter().find(|(_, _, ok, _)| !ok) {
            return Err(format!("`{field}` must be {range}, got {value}"));
        }
        if self.format == 0.0 && !self.format_errors.is_empty() {
            return Err("`format-errors` must be empty when `format` is 0".into());
        }
        Ok(())
    }
}

impl GuestOutput for HttpRequest {
    fn output_size(&self) -> usize {
        let headers: usize = self.headers.iter().map(|(k, v)| 2 * ELEMENT_BYTES + k.len() + v.len()).sum();
        self.method.len() + self.url.len() + headers + self.body.len()
    }
}

impl GuestOutput for Completion {
    fn output_size(&self) -> usize {
        16 + self.text.len() + self.finish_reason.output_size() + self.model.output_size()
    }
}

impl GuestOutput for StreamEvent {
    fn output_size(&self) -> usize {
        match self {
            StreamEvent::Delta(d) => 16 + d.text.len() + d.finish_reason.output_size(),
            StreamEvent::Done | StreamEvent::Ignore => 1,
        }
    }
}

impl GuestOutput for AuthScheme {
    fn output_size(&self) -> usize {
        match self {
            AuthScheme::Header(h) => h.len(),
            AuthScheme::Bearer | AuthScheme::None => 1,
        }
    }
}

impl GuestOutput for Action {
    fn output_size(&self) -> usize {
        match self {
            Action::Route(r) => r.model.len() + r.query.len(),
            Action::Answer(a) => a.len(),
        }
    }
}

// What `bindgen!` expects of a module named in its `with` map for an
// imported interface. `types` has no functions, so the host traits are empty
// and linking only declares the (type-only) instance.

/// Host side of the `types` interface: nothing to implement.
pub trait Host {}
impl<H: ?Sized> Host for H {}

/// Host side of the `types` interface with store access: nothing to implement.
pub trait HostWithStore<T>: wasmtime::component::HasData {}
impl<T, D: wasmtime::component::HasData + ?Sized> HostWithStore<T> for D {}

/// Declare the type-only `types` instance in `linker`.
pub fn add_to_linker<T, D>(
    linker: &mut wasmtime::component::Linker<T>,
    _host_getter: fn(&mut T) -> D::Data<'_>,
) -> wasmtime::Result<()>
where
    D: HostWithStore<T>,
    for<'a> D::Data<'a>: Host,
    T: 'static,
{
    linker.instance(super::bindings::v0_1_0::TYPES_INTERFACE)?;
    Ok(())
}
