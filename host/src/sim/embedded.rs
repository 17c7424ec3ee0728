//! The embedded default: `switchyard serve` with no config starts the
//! simulated pool in-process on a loopback port and serves routing over it,
//! so a new user can ask a question with no API keys and no setup beyond
//! the build. When a trained router has been shipped into `models/router-r1/`
//! it is served too, as `switchyard/router-r1`, and so are the learned
//! single-round routers shipped in `models/learned/` (`switchyard/knn`,
//! `switchyard/mlp`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::models::{Profile, default_profiles};
use super::serve::{SimConfig, descriptors, spawn};
use crate::config::{Config, DescriptorConfig, ModelConfig, PolicyConfig};
use crate::plugin::types::ModelDescriptor;

/// Where the built plugins are: `./plugins/dist`, or next to the binary's
/// checkout (`target/<profile>/switchyard` -> `plugins/dist`).
pub fn find_plugins_dir() -> anyhow::Result<PathBuf> {
    let mut candidates = vec![PathBuf::from("plugins/dist")];
    if let Ok(exe) = std::env::current_exe() {
        candidates.extend(exe.ancestors().skip(1).map(|a| a.join("plugins/dist")));
    }
    candidates
        .into_iter()
        .find(|c| c.join("router-r1.wasm").is_file())
        .map(|c| std::path::absolute(&c).unwrap_or(c))
        .context("the built plugins (plugins/dist/*.wasm) were not found: run `make setup` (scripts/setup) first")
}

/// Where the embedded default looks for a trained router, relative to the working directory
/// and to each folder above the binary.
pub const ROUTER_DIR: &str = "models/router-r1";

/// The name the embedded default serves the trained router under.
pub const ROUTER_POLICY: &str = "switchyard/router-r1";

/// The router fine-tuned from the pretrained SmolLM2-135M-Instruct base: built by
/// `scripts/setup` from the shipped LoRA adapter (`models/router-r1-135m-adapter/`) and the
/// imported base, and served beside [`ROUTER_POLICY`] under its own name.
pub const ROUTER_135M_POLICY: &str = "switchyard/router-r1-135m";
pub const ROUTER_135M_DIR: &str = "models/router-r1-135m";

/// The learned single-round routers the embedded default serves when shipped: policy name
/// and parameter file (relative like [`ROUTER_DIR`]).
pub const LEARNED_ROUTERS: [(&str, &str); 2] =
    [("switchyard/knn", "models/learned/knn.safetensors"), ("switchyard/mlp", "models/learned/mlp.safetensors")];

/// `relative` in the working directory, or in a folder above the binary, where `present`
/// holds; else the places looked at.
fn find_shipped(relative: &str, present: impl Fn(&Path) -> bool) -> Result<PathBuf, Vec<PathBuf>> {
    let mut candidates = vec![std::path::absolute(relative).unwrap_or_else(|_| PathBuf::from(relative))];
    if let Ok(exe) = std::env::current_exe() {
        candidates.extend(exe.ancestors().skip(1).map(|a| a.join(relative)));
    }
    candidates.dedup();
    match candidates.iter().find(|c| present(c)) {
        Some(found) => Ok(found.clone()),
        None => Err(candidates),
    }
}

/// The trained router's model directory (`./models/router-r1`, or next to the binary's
/// checkout), or the places looked at when there is none.
pub fn find_router_dir() -> Result<PathBuf, Vec<PathBuf>> {
    find_shipped(ROUTER_DIR, |c| c.join(crate::policy::model_dir::MODEL_FILE).is_file())
}

/// The exported 135M router, if setup has built one (see [`ROUTER_135M_DIR`]).
pub fn find_router_135m_dir() -> Option<PathBuf> {
    find_shipped(ROUTER_135M_DIR, |c| c.join(crate::policy::model_dir::MODEL_FILE).is_file()).ok()
}

/// A shipped learned router's parameter file (see [`LEARNED_ROUTERS`]), if there is one.
pub fn find_learned(relative: &str) -> Option<PathBuf> {
    find_shipped(relative, Path::is_file).ok()
}

/// Which simulated models the embedded pool offers. The held-out models are served by the
/// simulated endpoint either way; only the pool (and so the router's prompt) differs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HeldOut {
    /// The six models the router is trained with.
    #[default]
    Excluded,
    /// Those six plus the held-out models, known only by their descriptors (the
    /// unseen-model experiment).
    Included,
}

/// Start the simulated pool and return a validated config routing over it.
/// Must run inside a tokio runtime (the pool is served on it).
pub async fn start(plugins_dir: &Path, held_out: HeldOut) -> anyhow::Result<Config> {
    let sim = SimConfig::default();
    let models = sim.build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.context("binding the simulated pool")?;
    let addr = spawn(listener, models.clone(), &sim);
    let pool: Vec<&Profile> =
        models.profiles().iter().filter(|p| held_out == HeldOut::Included || !p.held_out).collect();
    pool_config(plugins_dir, &format!("http://{addr}/v1"), &pool, &descriptors(&models))
}

/// The same pool without a socket, for fast rollouts: a config and the
/// simulated pool's router, to give to `Pool::with_in_process`.
pub fn in_process(plugins_dir: &Path) -> anyhow::Result<(Config, axum::Router)> {
    let (config, router, _) = in_process_with(plugins_dir, Vec::new())?;
    Ok((config, router))
}

/// [`in_process`] with `extra` profiles served as well (e.g. synthetic ones for training):
/// the config lists only the default pool, and each extra profile comes back as a model
/// entry, with its measured descriptor, for a caller to list where it wants.
pub fn in_process_with(
    plugins_dir: &Path,
    extra: Vec<Profile>,
) -> anyhow::Result<(Config, axum::Router, Vec<ModelConfig>)> {
    let defaults = default_profiles();
    if let Some(clash) = extra.iter().find(|e| defaults.iter().any(|d| d.name.eq_ignore_ascii_case(&e.name))) {
        anyhow::bail!("an extra simulated model is named like a default one: `{}`", clash.name);
    }
    let listed = defaults.len();
    let sim = SimConfig { models: Some(defaults.into_iter().chain(extra).collect()), ..SimConfig::default() };
    let models = sim.build();
    let descriptors = descriptors(&models);
    let (pool, extra) = models.profiles().split_at(listed);
    let pool: Vec<&Profile> = pool.iter().filter(|p| !p.held_out).collect();
    let config = pool_config(plugins_dir, IN_PROCESS_ENDPOINT, &pool, &descriptors)?;
    let extra = extra.iter().map(|p| model_config(p, &descriptors[&p.name], IN_PROCESS_ENDPOINT)).collect();
    Ok((config, super::serve::router(models, sim.faults.clone(), sim.serve.latency_scale), extra))
}

/// The endpoint in-process configs name (never resolved: no socket is opened).
pub const IN_PROCESS_ENDPOINT: &str = "http://sim.in-process.invalid/v1";

/// A pool entry for simulated model `p` on `endpoint`, described by `d`.
fn model_config(p: &Profile, d: &ModelDescriptor, endpoint: &str) -> ModelConfig {
    ModelConfig {
        name: p.name.clone(),
        aliases: vec![],
        adapter: "openai-chat".into(),
        endpoint: endpoint.to_string(),
        remote_model: None,
        api_key_env: None,
        max_tokens: 512,
        timeout_ms: 10_000,
        retries: 1,
        fallback: None,
        max_concurrency: 64,
        descriptor: DescriptorConfig::from(d),
    }
}

/// The embedded config listing `pool` (with the baselines that route over it).
fn pool_config(
    plugins_dir: &Path,
    endpoint: &str,
    pool: &[&Profile],
    descriptors: &BTreeMap<String, ModelDescriptor>,
) -> anyhow::Result<Config> {
    let mut config: Config = toml::from_str("").context("default configuration")?;
    config.path = PathBuf::from("(embedded default)");
    config.plugins.dir = plugins_dir.to_path_buf();
    config.policies = ["cheapest", "largest", "cascade"]
        .iter()
        .map(|s| PolicyConfig::strategy(&format!("switchyard/{s}"), s))
        .collect();
    config.models = pool.iter().map(|p| model_config(p, &descriptors[&p.name], endpoint)).collect();
    // Baselines for `switchyard eval`: chance, and each model alone (by pool position).
    config.policies.push(PolicyConfig::strategy("switchyard/random", "random"));
    let alone: Vec<PolicyConfig> = config
        .models
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let mut policy = PolicyConfig::strategy(&format!("switchyard/only/{}", m.name), "fixed");
            policy.settings.insert("model".into(), i as f64);
            policy
        })
        .collect();
    config.policies.extend(alone);
    Ok(config.validated()?)
}
