//! The environment a router is trained in: questions with gold answers, a pool of models to
//! call, the prompt that presents them, and the reward component that scores a trajectory.
//!
//! By default it is the simulated world, its models served in-process through the host's
//! own pool (the same adapter components and HTTP requests as `switchyard serve`, without a
//! socket); with a host config it calls real OpenAI-compatible backends over HTTP. The reward
//! is the `router-r1` component run by the host's plugin runtime: the same .wasm the server
//! scores with.
//!
//! Invariants: the pool an episode sees is a pure function of (options, seed, episode), so a
//! rollout step is reproducible; descriptor noise never changes which model answers, only
//! what the prompt says about it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use switchyard::backend::Pool;
use switchyard::config::{Config, EngineConfig};
use switchyard::plugin::types::{
    CostBounds, Metric, ModelDescriptor, RewardBreakdown, RewardParams, ScoringInput, Trajectory,
};
use switchyard::plugin::{Plugin, Reward, Runtime};
use switchyard::policy::{ChatMessage, ChatTemplate, RouterPrompt};
use switchyard::sim::embedded;
use switchyard::sim::questions::{self, Question, Split};
use switchyard::sim::world::World;

/// How the reward scores a trajectory (ROUTER_R1.md §3).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RewardOptions {
    /// Cost coefficient: 0 rewards accuracy only.
    pub alpha: f64,
    /// Bounds on sqrt(raw cost in dollars) that map to cost scores 1 (cheapest) .. 0.
    pub cost_bounds: (f64, f64),
    /// `exact-match` or `f1`.
    pub metric: String,
}

impl Default for RewardOptions {
    fn default() -> Self {
        RewardOptions { alpha: 0.0, cost_bounds: (0.0, 0.03), metric: "exact-match".into() }
    }
}

impl RewardOptions {
    fn params(&self) -> anyhow::Result<RewardParams> {
        let metric = match self.metric.as_str() {
            "exact-match" => Metric::ExactMatch,
            "f1" => Metric::F1,
            other => anyhow::bail!("reward metric must be exact-match or f1, not `{other}`"),
        };
        Ok(RewardParams { alpha: self.alpha, metric, cost_bounds: CostBounds::Fixed(self.cost_bounds) })
    }
}

/// Which questions and which pool.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EnvOptions {
    /// Questions generated from the simulated world before the 80/10/10 split.
    pub questions: usize,
    /// A host config naming real backends; the simulated pool in-process when absent.
    pub backends: Option<PathBuf>,
    /// Per episode, show the router a random subset of at least this many pool models
    /// (0 = always the whole pool).
    pub pool_subset_min: usize,
    /// Per episode, scale each descriptor's prices and scores by a random factor in
    /// [1 - noise, 1 + noise] (0 = exact descriptors).
    pub descriptor_noise: f64,
    pub reward: RewardOptions,
}

impl Default for EnvOptions {
    fn default() -> Self {
        EnvOptions {
            questions: 20_000,
            backends: None,
            pool_subset_min: 0,
            descriptor_noise: 0.0,
            reward: RewardOptions::default(),
        }
    }
}

pub struct Environment {
    pub options: EnvOptions,
    pub tokio: tokio::runtime::Runtime,
    pub engine: EngineConfig,
    pub world: Arc<World>,
    pool: Arc<Pool>,
    config: Config,
    runtime: Arc<Runtime>,
    in_process: Option<axum::Router>,
    reward: Plugin<Reward>,
    params: RewardParams,
    questions: Vec<Question>,
    prompt: RouterPrompt,
    chat: ChatTemplate,
}

impl Environment {
    /// Build the environment; `plugins` is the directory of built components (found like
    /// `switchyard serve` does when `None`).
    pub fn new(options: EnvOptions, plugins: Option<&Path>) -> anyhow::Result<Environment> {
        let params = options.reward.params()?;
        let plugins = match plugins {
            Some(p) => p.to_path_buf(),
            None => embedded::find_plugins_dir()?,
        };
        let runtime = Runtime::with_defaults().context("starting the plugin runtime")?;
        let tokio = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .context("starting the async runtime")?;
        let (config, in_process) = match &options.backends {
            Some(path) => (Config::load(path).with_context(|| format!("loading {}", path.display()))?, None),
            None => {
                let (config, router) = embedded::in_process(&plugins)?;
                (config, Some(router))
            }
        };
        let pool = Arc::new(build_pool(&config, &runtime, in_process.as_ref())?);
        let reward_path = plugins.join("router-r1.wasm");
        let reward = Plugin::<Reward>::load(&runtime, &reward_path)
            .with_context(|| format!("loading the reward component {}", reward_path.display()))?;
        let world = Arc::new(World::generate(&Default::default()));
        let questions = questions::generate(&world, options.questions, world.config.seed);
        Ok(Environment {
            engine: config.engine.clone(),
            options,
            tokio,
            world,
            pool,
            config,
            runtime,
            in_process,
            reward,
            params,
            questions,
            prompt: RouterPrompt::new(),
            chat: ChatTemplate::new(switchyard::policy::chat_template::CHATML, "", crate::tokenizer::END_OF_TURN)?,
        })
    }

    pub fn split(&self, split: Split) -> Vec<Question> {
        self.questions.iter().filter(|q| q.split == split).cloned().collect()
    }

    /// The whole pool, as configured.
    pub fn pool(&self) -> Arc<Pool> {
        self.pool.clone()
    }

    /// The pool episode `episode` of a step seeded `seed` sees: the whole pool, or a random
    /// subset with noisy descriptors when the options ask for it.
    pub fn episode_pool(&self, seed: u64, episode: usize) -> anyhow::Result<Arc<Pool>> {
        let o = &self.options;
        if o.pool_subset_min == 0 && o.descriptor_noise == 0.0 {
            return Ok(self.pool.clone());
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (episode as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut config = self.config.clone();
        if o.pool_subset_min > 0 && o.pool_subset_min < config.models.len() {
            let keep = rng.random_range(o.pool_subset_min..=config.models.len());
            config.models.shuffle(&mut rng);
            config.models.truncate(keep);
            config.models.sort_by(|a, b| a.name.cmp(&b.name));
        }
        if o.descriptor_noise > 0.0 {
            for m in &mut config.models {
                let mut jitter = |x: &mut f64| *x *= 1.0 + rng.random_range(-o.descriptor_noise..=o.descriptor_noise);
                jitter(&mut m.descriptor.price_in_per_mtok);
                jitter(&mut m.descriptor.price_out_per_mtok);
                for score in m.descriptor.example_scores.values_mut() {
                    jitter(score);
                    *score = score.clamp(0.0, 1.0);
                }
            }
        }
        Ok(Arc::new(build_pool(&config, &self.runtime, self.in_process.as_ref())?))
    }

    /// The prompt text the router reads for `question` over `pool`, up to the assistant turn.
    pub fn prompt_text(&self, question: &str, pool: &[ModelDescriptor]) -> anyhow::Result<String> {
        let messages: Vec<ChatMessage> = self.prompt.messages(question, pool)?;
        Ok(self.chat.render(&messages, true)?)
    }

    /// Score trajectories with the reward component.
    pub fn score(&self, items: &[(Trajectory, Vec<String>)]) -> anyhow::Result<Vec<RewardBreakdown>> {
        let mut warm = self.reward.warm();
        items
            .iter()
            .map(|(trajectory, golden)| {
                let input = ScoringInput { trajectory: trajectory.clone(), golden_answers: golden.clone() };
                warm.score(&input, &self.params).context("the reward component failed")
            })
            .collect()
    }
}

fn build_pool(config: &Config, runtime: &Arc<Runtime>, in_process: Option<&axum::Router>) -> anyhow::Result<Pool> {
    let pool = Pool::from_config(config, runtime)
        .with_context(|| format!("building the pool of {}", config.path.display()))?;
    Ok(match in_process {
        Some(router) => pool.with_in_process(router.clone()),
        None => pool,
    })
}
