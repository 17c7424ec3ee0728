//! Configuration: one TOML file describing the server, the plugins, the
//! engine limits, the exposed policies and the model pool.
//!
//! Invariants: a `Config` that loaded is valid — every name resolves, every
//! component file exists, every number is in range. Errors name the file,
//! the field and the reason. Relative paths are relative to the file.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::plugin::types::{CostBounds, ExampleScore, Metric, ModelDescriptor};
use crate::policy::Device;

/// A configuration problem, naming where it is.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {field}: {reason}")]
pub struct ConfigError {
    pub file: PathBuf,
    pub field: String,
    pub reason: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub plugins: PluginsConfig,
    #[serde(default)]
    pub reward: RewardConfig,
    #[serde(default)]
    pub engine: EngineConfig,
    #[serde(default)]
    pub policies: Vec<PolicyConfig>,
    #[serde(default)]
    pub models: Vec<ModelConfig>,
    #[serde(default)]
    pub onnxruntime: OnnxRuntimeConfig,
    /// The file this was loaded from (set by `load`).
    #[serde(skip)]
    pub path: PathBuf,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub listen: String,
    /// Environment variable holding comma-separated client API keys; unset
    /// or empty means no authentication.
    pub api_keys_env: String,
    /// Environment variable holding the admin key for `POST /admin/reload`;
    /// unset means the endpoint is disabled.
    pub admin_key_env: String,
    pub body_limit_bytes: usize,
    /// Whole-request deadline.
    pub request_timeout_ms: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8080".into(),
            api_keys_env: "SWITCHYARD_API_KEYS".into(),
            admin_key_env: "SWITCHYARD_ADMIN_KEY".into(),
            body_limit_bytes: 1 << 20,
            request_timeout_ms: 120_000,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginsConfig {
    /// Folder of built components; a component named `x` is `<dir>/x.wasm`.
    pub dir: PathBuf,
    /// The cost component every routed call is priced by.
    pub cost: String,
    /// Settings passed to the cost component.
    pub cost_settings: BTreeMap<String, f64>,
}

impl Default for PluginsConfig {
    fn default() -> Self {
        PluginsConfig { dir: PathBuf::from("plugins/dist"), cost: "token-price".into(), cost_settings: BTreeMap::new() }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RewardConfig {
    pub component: String,
    pub alpha: f64,
    pub metric: Metric,
    pub cost_bounds: CostBounds,
}

impl Default for RewardConfig {
    fn default() -> Self {
        RewardConfig {
            component: "router-r1".into(),
            alpha: 0.0,
            metric: Metric::ExactMatch,
            cost_bounds: CostBounds::Fixed((0.0, 0.03)),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// Routed turns before the final, routing-free generation.
    pub max_turns: u32,
    /// Cap on one inserted reply, in characters (the closing tag is extra).
    pub observation_cap_chars: usize,
    /// Cap on the trajectory text; the episode stops when it is exceeded.
    pub max_context_chars: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig { max_turns: 4, observation_cap_chars: 2400, max_context_chars: 16_384 }
    }
}

/// A routing policy exposed as a `model` name, e.g. `switchyard/cheapest`: a strategy
/// component (`strategy`, `settings`) or a trained router (`onnx` and the fields after it).
/// Exactly one of `strategy` and `onnx`; the other kind's fields are refused.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    pub name: String,
    /// A strategy component (name in the plugins dir, or a path).
    #[serde(default)]
    pub strategy: Option<String>,
    #[serde(default)]
    pub settings: BTreeMap<String, f64>,
    /// A parameter file for a learned strategy (e.g. the `learned` KNN/MLP router, written by
    /// `switchyard learned train`), relative to the config file. With it the component is
    /// loaded as a `learned-strategy`; the file is read once, at load.
    #[serde(default)]
    pub parameters: Option<PathBuf>,
    /// A trained router: a model directory (model.onnx, tokenizer.json, tokenizer_config.json,
    /// generation_config.json), relative to the config file.
    #[serde(default)]
    pub onnx: Option<PathBuf>,
    /// `cpu` (default), `cuda` (fails when CUDA cannot be used) or `auto` (CUDA, else CPU).
    #[serde(default)]
    pub device: Option<Device>,
    /// Sampling temperature; absent or 0 decodes greedily.
    #[serde(default)]
    pub temperature: Option<f32>,
    /// Nucleus sampling mass in (0, 1] (with a temperature).
    #[serde(default)]
    pub top_p: Option<f32>,
    /// Cap on one turn's tokens (default: the model's generation_config.json, else 256).
    #[serde(default)]
    pub max_new_tokens: Option<usize>,
    /// A router prompt template file (minijinja) replacing the shipped one, relative to the
    /// config file.
    #[serde(default)]
    pub prompt_template: Option<PathBuf>,
    /// Base seed of the per-turn sampling seeds (default 0).
    #[serde(default)]
    pub seed: Option<u64>,
    /// Threads ONNX Runtime uses inside one operator (default: one per core).
    #[serde(default)]
    pub threads: Option<usize>,
    /// Requests decoded together in one batch at most (default 32; 1 disables batching).
    #[serde(default)]
    pub max_batch: Option<usize>,
    /// Decode under the protocol's tag grammar (`engine::grammar`): tags the grammar forbids
    /// are never written (default false: a config decodes a router freely unless told).
    #[serde(default)]
    pub tag_grammar: Option<bool>,
    /// Decode under the whole protocol grammar (`engine::protocol_grammar`): the tag grammar,
    /// whitespace between blocks, pool names in searches, and the turn's token budget kept for
    /// its action (default false, as for `tag_grammar`).
    #[serde(default)]
    pub protocol_grammar: Option<bool>,
    /// Extractive answers (`engine::answer_spans`; implies `protocol_grammar`): an answer is
    /// a span of the question and the models' replies, copied, never retyped (default false).
    #[serde(default)]
    pub extractive_answers: Option<bool>,
}

/// What a policy entry runs.
pub enum PolicyKind<'a> {
    Strategy(&'a str),
    Onnx(&'a Path),
}

impl PolicyConfig {
    /// A strategy policy with default settings.
    pub fn strategy(name: &str, strategy: &str) -> PolicyConfig {
        PolicyConfig { strategy: Some(strategy.to_string()), ..PolicyConfig::named(name) }
    }

    /// A trained router with default generation settings.
    pub fn onnx(name: &str, dir: &Path) -> PolicyConfig {
        PolicyConfig { onnx: Some(dir.to_path_buf()), ..PolicyConfig::named(name) }
    }

    fn named(name: &str) -> PolicyConfig {
        PolicyConfig {
            name: name.to_string(),
            strategy: None,
            settings: BTreeMap::new(),
            parameters: None,
            onnx: None,
            device: None,
            temperature: None,
            top_p: None,
            max_new_tokens: None,
            prompt_template: None,
            seed: None,
            threads: None,
            max_batch: None,
            tag_grammar: None,
            protocol_grammar: None,
            extractive_answers: None,
        }
    }

    /// Validated configs have exactly one kind; an unvalidated one without either reads as
    /// an empty strategy name (which no component has).
    pub fn kind(&self) -> PolicyKind<'_> {
        match (&self.strategy, &self.onnx) {
            (_, Some(dir)) => PolicyKind::Onnx(dir),
            (Some(strategy), None) => PolicyKind::Strategy(strategy),
            (None, None) => PolicyKind::Strategy(""),
        }
    }
}

/// Where ONNX Runtime comes from, for `onnx` policies.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OnnxRuntimeConfig {
    /// The libonnxruntime.so to load (relative to the config file). Default: ORT_DYLIB_PATH,
    /// then `.venv/libonnxruntime.so` in the working directory or above the executable.
    pub library: Option<PathBuf>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub name: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Adapter component (name in the plugins dir, or a path).
    pub adapter: String,
    /// Base URL, e.g. `https://api.openai.com/v1`.
    pub endpoint: String,
    /// The provider's id for the model (defaults to `name`).
    #[serde(default)]
    pub remote_model: Option<String>,
    /// Environment variable holding this model's API key.
    #[serde(default)]
    pub api_key_env: Option<String>,
    #[serde(default = "default_max_tokens")]
    pub max_tokens: u32,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default = "default_retries")]
    pub retries: u32,
    #[serde(default)]
    pub fallback: Option<String>,
    #[serde(default = "default_concurrency")]
    pub max_concurrency: usize,
    pub descriptor: DescriptorConfig,
}

fn default_max_tokens() -> u32 {
    512
}
fn default_timeout_ms() -> u64 {
    30_000
}
fn default_retries() -> u32 {
    2
}
fn default_concurrency() -> usize {
    32
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DescriptorConfig {
    pub price_in_per_mtok: f64,
    pub price_out_per_mtok: f64,
    pub latency_ms: u32,
    pub context_tokens: u32,
    #[serde(default)]
    pub size_b: Option<f64>,
    #[serde(default)]
    pub strengths: Vec<String>,
    #[serde(default)]
    pub example_scores: BTreeMap<String, f64>,
}

/// A descriptor as a config states it (name and aliases belong to the model entry); the
/// inverse of [`ModelConfig::descriptor`].
impl From<&ModelDescriptor> for DescriptorConfig {
    fn from(d: &ModelDescriptor) -> Self {
        DescriptorConfig {
            price_in_per_mtok: d.price_in_per_mtok,
            price_out_per_mtok: d.price_out_per_mtok,
            latency_ms: d.latency_ms,
            context_tokens: d.context_tokens,
            size_b: d.size_b,
            strengths: d.strengths.clone(),
            example_scores: d.example_scores.iter().map(|s| (s.benchmark.clone(), s.score)).collect(),
        }
    }
}

impl ModelConfig {
    pub fn descriptor(&self) -> ModelDescriptor {
        let d = &self.descriptor;
        ModelDescriptor {
            name: self.name.clone(),
            aliases: self.aliases.clone(),
            price_in_per_mtok: d.price_in_per_mtok,
            price_out_per_mtok: d.price_out_per_mtok,
            latency_ms: d.latency_ms,
            context_tokens: d.context_tokens,
            size_b: d.size_b,
            strengths: d.strengths.clone(),
            example_scores: d
                .example_scores
                .iter()
                .map(|(benchmark, score)| ExampleScore { benchmark: benchmark.clone(), score: *score })
                .collect(),
        }
    }

    pub fn remote_model(&self) -> &str {
        self.remote_model.as_deref().unwrap_or(&self.name)
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

impl Config {
    /// Read, parse and validate `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            field: "(file)".into(),
            reason: format!("cannot read: {e}"),
        })?;
        Config::parse(&text, path)
    }

    /// Parse and validate `text` as if read from `path`.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            field: e.span().map_or("(syntax)".into(), |s| locate(text, s.start)),
            reason: e.message().to_string(),
        })?;
        config.path = path.to_path_buf();
        config.validate()?;
        Ok(config)
    }

    fn err(&self, field: impl Into<String>, reason: impl Into<String>) -> ConfigError {
        ConfigError { file: self.path.clone(), field: field.into(), reason: reason.into() }
    }

    /// Where a component named in this config lives: a path (contains `/`
    /// or ends in `.wasm`), relative to the config file, or a name in `plugins.dir`.
    pub fn component_path(&self, name: &str) -> PathBuf {
        let base = self.path.parent().unwrap_or(Path::new("."));
        if name.contains('/') || name.ends_with(".wasm") {
            base.join(name)
        } else {
            base.join(&self.plugins.dir).join(format!("{name}.wasm"))
        }
    }

    /// A file or directory named in this config, relative to the config file.
    pub fn relative_path(&self, path: &Path) -> PathBuf {
        self.path.parent().unwrap_or(Path::new(".")).join(path)
    }

    pub fn listen_addr(&self) -> SocketAddr {
        // Validated in `validate`.
        self.server.listen.parse().unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 8080)))
    }

    /// Validate a configuration built in code (as `parse` does for files).
    pub fn validated(self) -> Result<Config, ConfigError> {
        self.validate()?;
        Ok(self)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.server.listen.parse::<SocketAddr>().is_err() {
            return Err(
                self.err("server.listen", format!("`{}` is not an address like 127.0.0.1:8080", self.server.listen))
            );
        }
        if self.server.body_limit_bytes == 0 {
            return Err(self.err("server.body_limit_bytes", "must be positive"));
        }
        if self.server.request_timeout_ms == 0 {
            return Err(self.err("server.request_timeout_ms", "must be positive"));
        }
        self.check_component("plugins.cost", &self.plugins.cost)?;
        self.check_component("reward.component", &self.reward.component)?;
        if !(0.0..=1.0).contains(&self.reward.alpha) {
            return Err(self.err("reward.alpha", format!("must be in [0, 1], got {}", self.reward.alpha)));
        }
        if !(1..=64).contains(&self.engine.max_turns) {
            return Err(self.err("engine.max_turns", "must be between 1 and 64"));
        }
        if self.engine.observation_cap_chars == 0 || self.engine.max_context_chars == 0 {
            return Err(self.err("engine", "observation_cap_chars and max_context_chars must be positive"));
        }

        let mut names = HashSet::new();
        for (i, m) in self.models.iter().enumerate() {
            let field = |f: &str| format!("models[{i}].{f}");
            if std::iter::once(&m.name).chain(&m.aliases).any(|n| n.trim().is_empty() || n.contains(':')) {
                return Err(self.err(
                    field("name"),
                    "names and aliases must be non-empty and contain no colon (it is split on in `name: query`)",
                ));
            }
            for n in std::iter::once(&m.name).chain(&m.aliases) {
                if !names.insert(n.trim().to_lowercase()) {
                    return Err(self.err(
                        field("name"),
                        format!("`{n}` is used by more than one model (names and aliases are case-insensitive)"),
                    ));
                }
            }
            self.check_component(&field("adapter"), &m.adapter)?;
            match reqwest::Url::parse(&m.endpoint) {
                Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {}
                _ => return Err(self.err(field("endpoint"), format!("`{}` is not an http(s) URL", m.endpoint))),
            }
            let d = &m.descriptor;
            if !(d.price_in_per_mtok >= 0.0
                && d.price_out_per_mtok >= 0.0
                && d.price_in_per_mtok.is_finite()
                && d.price_out_per_mtok.is_finite())
            {
                return Err(self.err(field("descriptor"), "prices must be finite and non-negative"));
            }
            if d.context_tokens > 0 && d.context_tokens < m.max_tokens {
                return Err(self.err(
                    field("descriptor.context_tokens"),
                    format!(
                        "{} is smaller than max_tokens ({}); the host refuses reported usage beyond the \
                         context, so set the model's real context window (or 0 if unknown)",
                        d.context_tokens, m.max_tokens
                    ),
                ));
            }
            if m.max_concurrency == 0 {
                return Err(self.err(field("max_concurrency"), "must be at least 1"));
            }
            if m.timeout_ms == 0 {
                return Err(self.err(field("timeout_ms"), "must be positive"));
            }
        }
        for (i, m) in self.models.iter().enumerate() {
            if let Some(fallback) = &m.fallback {
                match self.model(fallback) {
                    None => {
                        return Err(self
                            .err(format!("models[{i}].fallback"), format!("`{fallback}` is not a model in the pool")));
                    }
                    Some(f) if f.name == m.name => {
                        return Err(self.err(format!("models[{i}].fallback"), "a model cannot fall back to itself"));
                    }
                    _ => {}
                }
            }
        }

        let mut policy_names = HashSet::new();
        for (i, p) in self.policies.iter().enumerate() {
            if !policy_names.insert(p.name.as_str()) {
                return Err(self.err(format!("policies[{i}].name"), format!("`{}` is defined twice", p.name)));
            }
            if self.model(&p.name).is_some() {
                return Err(self.err(format!("policies[{i}].name"), format!("`{}` is also a model name", p.name)));
            }
            self.check_policy(i, p)?;
        }
        if let Some(library) = &self.onnxruntime.library {
            let path = self.relative_path(library);
            if !path.is_file() {
                return Err(self.err("onnxruntime.library", format!("{} does not exist", path.display())));
            }
        }
        Ok(())
    }

    fn check_policy(&self, i: usize, p: &PolicyConfig) -> Result<(), ConfigError> {
        let field = |f: &str| format!("policies[{i}].{f}");
        let dir = match (&p.strategy, &p.onnx) {
            (Some(strategy), None) => {
                let onnx_only = [
                    ("device", p.device.is_some()),
                    ("temperature", p.temperature.is_some()),
                    ("top_p", p.top_p.is_some()),
                    ("max_new_tokens", p.max_new_tokens.is_some()),
                    ("prompt_template", p.prompt_template.is_some()),
                    ("seed", p.seed.is_some()),
                    ("threads", p.threads.is_some()),
                    ("max_batch", p.max_batch.is_some()),
                    ("tag_grammar", p.tag_grammar.is_some()),
                    ("protocol_grammar", p.protocol_grammar.is_some()),
                    ("extractive_answers", p.extractive_answers.is_some()),
                ];
                if let Some((name, _)) = onnx_only.iter().find(|(_, set)| *set) {
                    return Err(self.err(field(name), "applies to `onnx` policies only, not to a strategy"));
                }
                if let Some(parameters) = &p.parameters {
                    let path = self.relative_path(parameters);
                    if !path.is_file() {
                        return Err(self.err(field("parameters"), format!("{} is not a file", path.display())));
                    }
                }
                return self.check_component(&field("strategy"), strategy);
            }
            (None, Some(dir)) => dir,
            (Some(_), Some(_)) => {
                return Err(self.err(field("onnx"), "a policy is a `strategy` or an `onnx` model directory, not both"));
            }
            (None, None) => {
                return Err(self.err(
                    field("strategy"),
                    "missing: give a strategy component (`strategy`) or a trained router (`onnx`)",
                ));
            }
        };
        if !p.settings.is_empty() {
            return Err(self.err(field("settings"), "applies to strategy policies only; an `onnx` policy has none"));
        }
        if p.parameters.is_some() {
            return Err(self.err(field("parameters"), "applies to strategy policies only; an `onnx` policy has none"));
        }
        let path = self.relative_path(dir);
        if !path.join("model.onnx").is_file() {
            return Err(
                self.err(field("onnx"), format!("{} is not a policy model directory (no model.onnx)", path.display()))
            );
        }
        if let Some(t) = p.temperature
            && !(t.is_finite() && t >= 0.0)
        {
            return Err(self.err(field("temperature"), format!("must be finite and >= 0, got {t}")));
        }
        if let Some(top_p) = p.top_p
            && !(top_p > 0.0 && top_p <= 1.0)
        {
            return Err(self.err(field("top_p"), format!("must be in (0, 1], got {top_p}")));
        }
        if p.max_new_tokens.is_some_and(|n| !(1..=32_768).contains(&n)) {
            return Err(self.err(field("max_new_tokens"), "must be between 1 and 32768"));
        }
        if p.threads == Some(0) {
            return Err(self.err(field("threads"), "must be at least 1"));
        }
        if p.max_batch.is_some_and(|n| !(1..=1024).contains(&n)) {
            return Err(self.err(field("max_batch"), "must be between 1 and 1024"));
        }
        if let Some(template) = &p.prompt_template {
            let path = self.relative_path(template);
            let source = std::fs::read_to_string(&path)
                .map_err(|e| self.err(field("prompt_template"), format!("cannot read {}: {e}", path.display())))?;
            crate::policy::RouterPrompt::from_template(source)
                .map_err(|e| self.err(field("prompt_template"), format!("{}: {e}", path.display())))?;
        }
        Ok(())
    }

    /// How to load the `onnx` policy `p`: its config fields, its prompt template read, and the
    /// config's ONNX Runtime library.
    pub fn router_options(&self, p: &PolicyConfig) -> Result<crate::policy::RouterOptions, ConfigError> {
        let i = self.policies.iter().position(|q| q.name == p.name).unwrap_or(0);
        let prompt_template = match &p.prompt_template {
            Some(template) => {
                let path = self.relative_path(template);
                Some(std::fs::read_to_string(&path).map_err(|e| {
                    self.err(format!("policies[{i}].prompt_template"), format!("cannot read {}: {e}", path.display()))
                })?)
            }
            None => None,
        };
        Ok(crate::policy::RouterOptions {
            model: crate::policy::ModelOptions {
                session: crate::policy::SessionOptions {
                    device: p.device.unwrap_or_default(),
                    intra_threads: p.threads,
                    library: self.onnxruntime.library.as_ref().map(|l| self.relative_path(l)),
                },
                max_batch: p.max_batch.unwrap_or(crate::policy::generator::DEFAULT_MAX_BATCH),
                label: p.name.clone(),
            },
            temperature: p.temperature,
            top_p: p.top_p,
            max_new_tokens: p.max_new_tokens,
            prompt_template,
            seed: p.seed.unwrap_or(0),
            tag_grammar: p.tag_grammar.unwrap_or(false),
            protocol_grammar: p.protocol_grammar.unwrap_or(false),
            extractive_answers: p.extractive_answers.unwrap_or(false),
        })
    }

    fn check_component(&self, field: &str, name: &str) -> Result<(), ConfigError> {
        let path = self.component_path(name);
        if path.is_file() {
            Ok(())
        } else {
            Err(self.err(
                field,
                format!("component `{name}` not found at {} (run scripts/setup to build the plugins)", path.display()),
            ))
        }
    }

    /// The model with this name or alias (exact, case-insensitive).
    pub fn model(&self, name: &str) -> Option<&ModelConfig> {
        let wanted = name.trim().to_lowercase();
        self.models
            .iter()
            .find(|m| std::iter::once(&m.name).chain(&m.aliases).any(|n| n.trim().to_lowercase() == wanted))
    }
}

/// `line L, column C` of a byte offset, for syntax errors.
fn locate(text: &str, offset: usize) -> String {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    // The line itself names the key, which toml's message does not.
    let source = text.lines().nth(line - 1).map(str::trim).unwrap_or_default();
    if source.is_empty() || source.chars().count() > 80 {
        format!("line {line}, column {column}")
    } else {
        format!("line {line}, column {column} (`{source}`)")
    }
}
