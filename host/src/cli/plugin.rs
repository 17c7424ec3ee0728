//! `switchyard plugin build | check | call`: the plugin author's tools.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde::Deserialize;
use serde_json::Value;

use crate::plugin::types::*;
use crate::plugin::{self, Kind, Plugin, PluginInfo, Runtime, RuntimeConfig};

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Build a plugin crate (or a workspace of them) into components.
    Build {
        /// Folder with the plugin's (or workspace's) Cargo.toml.
        dir: PathBuf,
        /// Where to write `<crate-name>.wasm` components.
        #[arg(long, default_value = "plugins/dist")]
        out: PathBuf,
        /// Cargo target directory for the wasm build.
        #[arg(long, default_value = "target/wasm")]
        target_dir: PathBuf,
    },
    /// Load a component and report its world, version, exports, size and compile time.
    Check(CheckArgs),
    /// Run a component once on a JSON input and print its JSON result.
    Call(CallArgs),
    /// Call latency of one component on a JSON input (`plugin call`'s shapes): loaded fresh for
    /// every call, and pre-instantiated once (each call in a fresh store, as the server runs it).
    Bench(BenchArgs),
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    file: PathBuf,
    /// JSON input, as for `plugin call`: a file path, `-` for stdin, or inline JSON.
    #[arg(long)]
    input: String,
    /// Calls on the pre-instantiated component (after one warm-up call).
    #[arg(long, default_value_t = 1000)]
    calls: usize,
    /// Calls that each load the component first.
    #[arg(long, default_value_t = 50)]
    fresh_calls: usize,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    file: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct CallArgs {
    file: PathBuf,
    /// JSON input: a file path, `-` for stdin, or inline JSON. Shapes:
    /// reward `{"input": {...}, "params": {...}}` (or `"inputs": [...]`);
    /// cost `{"model", "usage", "latency_ms", "settings"}`;
    /// adapter `{"auth": {}}`, `{"build_request": {"request", "base_url"}}`,
    /// `{"parse_response": {"status", "body"}}`, `{"parse_stream_event": {"event", "data"}}`;
    /// strategy `{"state": {...}, "settings": [...]}`.
    #[arg(long)]
    input: String,
}

impl PluginCommand {
    pub fn run(self) -> anyhow::Result<()> {
        match self {
            PluginCommand::Build { dir, out, target_dir } => {
                let built = plugin::build::build(&dir, &out, &target_dir)
                    .with_context(|| format!("building plugins in {}", dir.display()))?;
                for b in built {
                    println!("{:<24} {:>8} bytes  {}", b.name, b.size_bytes, b.path.display());
                }
                Ok(())
            }
            PluginCommand::Check(args) => check(&args),
            PluginCommand::Call(args) => call(&args),
            PluginCommand::Bench(args) => bench(&args),
        }
    }
}

/// Load `path` as `kind`, type-checking every export against the world.
fn load_as(runtime: &Arc<Runtime>, kind: Kind, path: &Path) -> Result<(), plugin::Error> {
    match kind {
        Kind::Reward => Plugin::<plugin::Reward>::load(runtime, path).map(drop),
        Kind::Cost => Plugin::<plugin::Cost>::load(runtime, path).map(drop),
        Kind::Adapter => Plugin::<plugin::Adapter>::load(runtime, path).map(drop),
        Kind::Strategy => Plugin::<plugin::Strategy>::load(runtime, path).map(drop),
        Kind::LearnedStrategy => Plugin::<plugin::LearnedStrategy>::load(runtime, path).map(drop),
    }
}

/// The world a component implements: the first whose exports it has and whose
/// signatures it matches (`strategy` and `learned-strategy` share the export name).
fn detect_kind(runtime: &Arc<Runtime>, path: &Path) -> anyhow::Result<(Kind, PluginInfo)> {
    let bytes = plugin::loader::read(path)?;
    let name = plugin::loader::plugin_name(path);
    let inspected = plugin::loader::inspect(runtime, &name, &bytes, Kind::Reward)?;
    let mut info = inspected.info;
    let candidates: Vec<Kind> = Kind::ALL
        .into_iter()
        .filter(|k| k.required_exports().iter().all(|e| info.exports.iter().any(|x| x == e)))
        .collect();
    let mut first_error = None;
    for kind in &candidates {
        match load_as(runtime, *kind, path) {
            Ok(()) => {
                info.kind = *kind;
                return Ok((*kind, info));
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e.into());
    }
    let worlds: Vec<&str> = Kind::ALL.iter().map(|k| k.world()).collect();
    bail!(
        "plugin `{name}` implements none of the worlds {}; it exports: {}",
        worlds.join(", "),
        if info.exports.is_empty() { "nothing".to_string() } else { info.exports.join(", ") }
    )
}

fn check(args: &CheckArgs) -> anyhow::Result<()> {
    // No disk cache, so the reported compile time is a real compile.
    let runtime = Runtime::new(RuntimeConfig { cache_dir: None, ..RuntimeConfig::default() })?;
    // Detection loads (and so type-checks) the component as its world.
    let (kind, info) = detect_kind(&runtime, &args.file)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&info)?);
    } else {
        println!("plugin:       {}", info.name);
        println!("world:        {} (switchyard:plugin@{})", kind, info.version);
        println!("exports:      {}", info.exports.join(", "));
        println!(
            "imports:      {}",
            if info.imports.is_empty() { "none".to_string() } else { info.imports.join(", ") }
        );
        println!("size:         {} bytes", info.size_bytes);
        println!("sha256:       {}", info.sha256);
        println!("compile time: {:.1} ms", info.compile_time.as_secs_f64() * 1e3);
        let limits = runtime.limits(kind);
        println!(
            "limits:       deadline {} ms, memory {} MiB, output {} bytes",
            limits.deadline.as_millis(),
            limits.memory_bytes >> 20,
            limits.output_bytes
        );
        println!("ok");
    }
    Ok(())
}

fn read_input(input: &str) -> anyhow::Result<Value> {
    let text = if input == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).context("reading input from stdin")?;
        s
    } else if input.trim_start().starts_with('{') {
        input.to_string()
    } else {
        std::fs::read_to_string(input).with_context(|| format!("reading input file {input}"))?
    };
    serde_json::from_str(&text).context("input is not valid JSON")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RewardCall {
    input: Option<ScoringInput>,
    inputs: Option<Vec<ScoringInput>>,
    params: RewardParams,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CostCall {
    model: ModelDescriptor,
    usage: Usage,
    #[serde(default)]
    latency_ms: u32,
    #[serde(default)]
    settings: Vec<Setting>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum AdapterCall {
    Auth {},
    BuildRequest {
        request: ChatRequest,
        base_url: String,
    },
    ParseResponse(HttpResponse),
    ParseStreamEvent {
        #[serde(default)]
        event: String,
        data: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StrategyCall {
    state: RoutingState,
    #[serde(default)]
    settings: Vec<Setting>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LearnedStrategyCall {
    state: RoutingState,
    /// The parameter file, relative to the working directory.
    parameters: PathBuf,
    #[serde(default)]
    settings: Vec<Setting>,
}

fn call(args: &CallArgs) -> anyhow::Result<()> {
    let runtime = Runtime::with_defaults()?;
    let (kind, _) = detect_kind(&runtime, &args.file)?;
    let call = Call::parse(kind, read_input(&args.input)?)?;
    let output = Handle::load(&runtime, &args.file, kind)
        .and_then(|handle| handle.call(&call))
        .with_context(|| format!("calling {} as a {kind} plugin", args.file.display()))?;
    println!("{}", serde_json::to_string_pretty(&output)?);
    Ok(())
}

/// One call's input, parsed into its world's shape (before any component is loaded).
enum Call {
    Reward(RewardCall),
    Cost(CostCall),
    Adapter(AdapterCall),
    Strategy(StrategyCall),
    /// With the parameter file's bytes, read once.
    LearnedStrategy(LearnedStrategyCall, Vec<u8>),
}

impl Call {
    fn parse(kind: Kind, input: Value) -> anyhow::Result<Call> {
        let shape = |e: serde_json::Error| anyhow::anyhow!("input does not fit the {kind} world's call shape: {e}");
        Ok(match kind {
            Kind::Reward => {
                let c: RewardCall = serde_json::from_value(input).map_err(shape)?;
                anyhow::ensure!(
                    c.input.is_some() != c.inputs.is_some(),
                    "a reward call needs exactly one of `input` or `inputs`"
                );
                Call::Reward(c)
            }
            Kind::Cost => Call::Cost(serde_json::from_value(input).map_err(shape)?),
            Kind::Adapter => Call::Adapter(serde_json::from_value(input).map_err(shape)?),
            Kind::Strategy => Call::Strategy(serde_json::from_value(input).map_err(shape)?),
            Kind::LearnedStrategy => {
                let c: LearnedStrategyCall = serde_json::from_value(input).map_err(shape)?;
                let parameters = plugin::loader::read_bounded(&c.parameters, plugin::loader::MAX_PARAMETERS_BYTES)
                    .with_context(|| format!("reading {}", c.parameters.display()))?;
                Call::LearnedStrategy(c, parameters)
            }
        })
    }
}

/// A loaded (compiled, linked and pre-instantiated) component of one world: each call runs in
/// a fresh store instantiated from it, as on the request path.
enum Handle {
    Reward(Plugin<plugin::Reward>),
    Cost(Plugin<plugin::Cost>),
    Adapter(Plugin<plugin::Adapter>),
    Strategy(Plugin<plugin::Strategy>),
    LearnedStrategy(Plugin<plugin::LearnedStrategy>),
}

impl Handle {
    fn load(runtime: &Arc<Runtime>, file: &Path, kind: Kind) -> anyhow::Result<Handle> {
        Ok(match kind {
            Kind::Reward => Handle::Reward(Plugin::load(runtime, file)?),
            Kind::Cost => Handle::Cost(Plugin::load(runtime, file)?),
            Kind::Adapter => Handle::Adapter(Plugin::load(runtime, file)?),
            Kind::Strategy => Handle::Strategy(Plugin::load(runtime, file)?),
            Kind::LearnedStrategy => Handle::LearnedStrategy(Plugin::load(runtime, file)?),
        })
    }

    fn call(&self, call: &Call) -> anyhow::Result<Value> {
        Ok(match (self, call) {
            (Handle::Reward(p), Call::Reward(c)) => match (&c.input, &c.inputs) {
                (Some(one), _) => serde_json::to_value(p.score(one, &c.params)?)?,
                (None, Some(many)) => serde_json::to_value(p.score_batch(many, &c.params)?)?,
                (None, None) => bail!("a reward call needs exactly one of `input` or `inputs`"),
            },
            (Handle::Cost(p), Call::Cost(c)) => {
                serde_json::json!({ "cost": p.cost(&c.model, c.usage, c.latency_ms, &c.settings)? })
            }
            (Handle::Adapter(p), Call::Adapter(c)) => match c {
                AdapterCall::Auth {} => serde_json::to_value(p.auth()?)?,
                AdapterCall::BuildRequest { request, base_url } => {
                    serde_json::to_value(p.build_request(request, base_url)?)?
                }
                AdapterCall::ParseResponse(response) => serde_json::to_value(p.parse_response(response)?)?,
                AdapterCall::ParseStreamEvent { event, data } => {
                    serde_json::to_value(p.parse_stream_event(event, data)?)?
                }
            },
            (Handle::Strategy(p), Call::Strategy(c)) => serde_json::to_value(p.decide(&c.state, &c.settings)?)?,
            (Handle::LearnedStrategy(p), Call::LearnedStrategy(c, parameters)) => {
                serde_json::to_value(p.decide(&c.state, parameters, &c.settings)?)?
            }
            _ => bail!("the input was parsed for another world than the component's"),
        })
    }
}

/// Latency percentiles of `samples` (seconds), in microseconds.
fn percentiles(mut samples: Vec<f64>) -> Value {
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize] * 1e6;
    serde_json::json!({
        "calls": samples.len(),
        "p50_us": at(0.5),
        "p90_us": at(0.9),
        "p99_us": at(0.99),
        "max_us": at(1.0),
        "mean_us": samples.iter().sum::<f64>() / samples.len() as f64 * 1e6,
    })
}

fn bench(args: &BenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.calls > 0 && args.fresh_calls > 0, "--calls and --fresh-calls must be at least 1");
    let runtime = Runtime::with_defaults()?;
    let (kind, _) = detect_kind(&runtime, &args.file)?;
    let call = Call::parse(kind, read_input(&args.input)?)?;
    let what = || format!("calling {} as a {kind} plugin", args.file.display());
    // Fresh: what the first call after a load or reload costs (the compiled code comes from
    // the runtime's cache, as in the server).
    let mut fresh = Vec::with_capacity(args.fresh_calls);
    for _ in 0..args.fresh_calls {
        let started = std::time::Instant::now();
        Handle::load(&runtime, &args.file, kind).and_then(|h| h.call(&call)).with_context(what)?;
        fresh.push(started.elapsed().as_secs_f64());
    }
    // Pre-instantiated: loaded once, each call in a fresh store (the request path).
    let handle = Handle::load(&runtime, &args.file, kind).with_context(what)?;
    handle.call(&call).with_context(what)?;
    let mut pre = Vec::with_capacity(args.calls);
    for _ in 0..args.calls {
        let started = std::time::Instant::now();
        handle.call(&call).with_context(what)?;
        pre.push(started.elapsed().as_secs_f64());
    }
    let report = serde_json::json!({
        "plugin": args.file.display().to_string(),
        "world": kind.to_string(),
        "fresh": percentiles(fresh),
        "pre_instantiated": percentiles(pre),
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!("{} ({kind})", args.file.display());
    for (label, key) in [("load + call (fresh)", "fresh"), ("call (pre-instantiated)", "pre_instantiated")] {
        let r = &report[key];
        let us = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
        println!(
            "  {label:<26} {:>5} calls  p50 {:>9.1} us  p90 {:>9.1} us  p99 {:>9.1} us  max {:>9.1} us",
            r["calls"].as_u64().unwrap_or(0),
            us("p50_us"),
            us("p90_us"),
            us("p99_us"),
            us("max_us")
        );
    }
    Ok(())
}
