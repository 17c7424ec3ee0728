//! What a request runs against: the configuration with its loaded pool,
//! policies (strategy components and trained routers on ONNX Runtime) and reward. Reload builds a new snapshot and swaps it in;
//! requests hold the `Arc` they started with, so in-flight requests finish
//! on the old set, and a broken new config or component leaves the old
//! snapshot serving.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;

use crate::backend::Pool;
use crate::config::{Config, PolicyConfig, PolicyKind};
use crate::engine::{Decider, Policy, StrategyPolicy};
use crate::plugin::types::Setting;
use crate::plugin::{LearnedStrategy, Plugin, Reward, Runtime, Strategy};
use crate::policy::OnnxPolicy;

pub struct Snapshot {
    pub config: Config,
    pub pool: Arc<Pool>,
    pub policies: BTreeMap<String, Arc<dyn Policy>>,
    pub reward: Plugin<Reward>,
    /// Client API keys (empty: no authentication).
    pub api_keys: Vec<String>,
    /// Admin key for `/admin/reload` (None: the endpoint is disabled).
    pub admin_key: Option<String>,
}

impl Snapshot {
    /// Load `path` and every component it names.
    pub fn load(path: &Path, runtime: &Arc<Runtime>) -> anyhow::Result<Snapshot> {
        let config = Config::load(path)?;
        Snapshot::from_config(config, runtime)
    }

    pub fn from_config(config: Config, runtime: &Arc<Runtime>) -> anyhow::Result<Snapshot> {
        let file = config.path.display().to_string();
        let pool =
            Arc::new(Pool::from_config(&config, runtime).with_context(|| format!("{file}: loading the model pool"))?);
        let mut policies: BTreeMap<String, Arc<dyn Policy>> = BTreeMap::new();
        for p in &config.policies {
            let context = || format!("{file}: policy `{}`", p.name);
            let policy: Arc<dyn Policy> = match p.kind() {
                PolicyKind::Strategy(strategy) => {
                    Arc::new(strategy_policy(&config, p, strategy, runtime, &pool).with_context(context)?)
                }
                PolicyKind::Onnx(dir) => {
                    let options = config.router_options(p)?;
                    Arc::new(OnnxPolicy::load(&p.name, &config.relative_path(dir), &options).with_context(context)?)
                }
            };
            policies.insert(p.name.clone(), policy);
        }
        let reward = Plugin::<Reward>::load(runtime, &config.component_path(&config.reward.component))
            .with_context(|| format!("{file}: reward component"))?;
        let api_keys = std::env::var(&config.server.api_keys_env)
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(String::from)
            .collect();
        let admin_key = std::env::var(&config.server.admin_key_env).ok().filter(|k| !k.is_empty());
        Ok(Snapshot { config, pool, policies, reward, api_keys, admin_key })
    }
}

/// A strategy policy from its configuration entry. With `parameters` the component is
/// loaded as a learned strategy, its parameter file read once and probed with one decision
/// over `pool`, so a bad file or one for another pool fails at load, not on a request.
pub fn strategy_policy(
    config: &Config,
    p: &PolicyConfig,
    strategy: &str,
    runtime: &Arc<Runtime>,
    pool: &Pool,
) -> anyhow::Result<StrategyPolicy> {
    let component = config.component_path(strategy);
    let settings: Vec<Setting> =
        p.settings.iter().map(|(name, value)| Setting { name: name.clone(), value: *value }).collect();
    let decider = match &p.parameters {
        None => Decider::Plain(Plugin::<Strategy>::load(runtime, &component)?),
        Some(file) => {
            let file = config.relative_path(file);
            let parameters = crate::plugin::loader::read_bounded(&file, crate::plugin::loader::MAX_PARAMETERS_BYTES)
                .with_context(|| format!("reading the parameters {}", file.display()))?;
            let plugin = Plugin::<LearnedStrategy>::load(runtime, &component)?;
            let decider = Decider::Learned { plugin, parameters: parameters.into() };
            decider.probe(&pool.descriptors(), &settings).with_context(|| format!("parameters {}", file.display()))?;
            decider
        }
    };
    Ok(StrategyPolicy::new(p.name.clone(), decider, settings))
}
