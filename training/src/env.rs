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
//! rollout step is reproducible; descriptor noise and made-up names never change which model
//! answers, only what the prompt says about it (a renamed model keeps its backend id); a
//! made-up name is never a name of the configured pool, of the world's held-out models or of
//! the synthetic models; a synthetic model is only ever listed under a made-up name.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use switchyard::backend::Pool;
use switchyard::config::{Config, EngineConfig, ModelConfig};
use switchyard::plugin::types::{
    CostBounds, Metric, ModelDescriptor, RewardBreakdown, RewardParams, ScoringInput, Trajectory,
};
use switchyard::plugin::{Plugin, Reward, Runtime};
use switchyard::policy::{ChatMessage, ChatTemplate, RouterPrompt};
use switchyard::sim::embedded;
use switchyard::sim::questions::{self, Question, Split};
use switchyard::sim::synthetic;
use switchyard::sim::world::World;

use crate::model_names;

/// The seed synthetic model profiles are drawn from (fixed: a run's configuration says how
/// many, and which they are follows).
const SYNTHETIC_SEED: u64 = 0x5157;

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
    /// Per episode, list each model under a made-up name with this probability (0 = never);
    /// its backend id is kept, so it answers as before. A router trained so cannot route by
    /// names it has memorised, only by what the descriptors say — the skill the unseen-model
    /// experiment asks for.
    pub rename_models: f64,
    /// Per episode, list up to this many models (0 = at most the pool): past the pool's size,
    /// copies of random pool models under made-up names (one model behind two endpoints), so
    /// training sees listings as long as an unseen-model pool's.
    pub pool_size_max: usize,
    /// Synthetic models the simulated world serves besides its pool
    /// (`switchyard::sim::synthetic`: random coverage, multi-hop ability and price per model);
    /// 0 = none. Only with the simulated pool (no `backends`).
    pub synthetic_models: usize,
    /// Per episode, up to this many listing entries (a uniform count from 0) are synthetic
    /// models instead, drawn from the `synthetic_models`, always under made-up names: so the
    /// model that is good and cheap for a domain differs between episodes, and only its
    /// descriptor says which it is.
    pub synthetic_per_episode: usize,
    /// The least number of synthetic entries per episode (the count is uniform from this up
    /// to `synthetic_per_episode`, capped by the listing's length). At least the listing's
    /// length makes every entry synthetic: no listed model is one the router could have
    /// memorised, so the listing is all it has to route by.
    pub synthetic_min_per_episode: usize,
    /// A router prompt template (a file) in place of the shipped one, e.g.
    /// `host/src/policy/router_prompt_by_domain.jinja`; checkpoints and exports carry it.
    pub prompt_template: Option<PathBuf>,
    pub reward: RewardOptions,
}

impl EnvOptions {
    /// Options no episode could be drawn under are errors that name the option.
    pub fn validate(&self) -> anyhow::Result<()> {
        if !(0.0..=1.0).contains(&self.rename_models) {
            anyhow::bail!("env.rename_models is a probability in [0, 1], not {}", self.rename_models);
        }
        if !(0.0..1.0).contains(&self.descriptor_noise) {
            anyhow::bail!("env.descriptor_noise must be in [0, 1), not {}", self.descriptor_noise);
        }
        if self.synthetic_per_episode > 0 && self.synthetic_models == 0 {
            anyhow::bail!("env.synthetic_per_episode needs env.synthetic_models > 0 to draw from");
        }
        if self.synthetic_min_per_episode > self.synthetic_per_episode {
            anyhow::bail!(
                "env.synthetic_min_per_episode ({}) is above env.synthetic_per_episode ({})",
                self.synthetic_min_per_episode,
                self.synthetic_per_episode
            );
        }
        if self.synthetic_models > 0 && self.backends.is_some() {
            anyhow::bail!("env.synthetic_models are simulated models: they cannot be used with env.backends");
        }
        if self.pool_size_max > 0 && self.pool_subset_min > self.pool_size_max {
            anyhow::bail!(
                "env.pool_subset_min ({}) is above env.pool_size_max ({})",
                self.pool_subset_min,
                self.pool_size_max
            );
        }
        Ok(())
    }
}

impl Default for EnvOptions {
    fn default() -> Self {
        EnvOptions {
            questions: 20_000,
            backends: None,
            pool_subset_min: 0,
            descriptor_noise: 0.0,
            rename_models: 0.0,
            pool_size_max: 0,
            synthetic_models: 0,
            synthetic_per_episode: 0,
            synthetic_min_per_episode: 0,
            prompt_template: None,
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
    /// The synthetic models the simulated world serves, for episodes to list.
    synthetic: Vec<ModelConfig>,
    runtime: Arc<Runtime>,
    in_process: Option<axum::Router>,
    reward: Plugin<Reward>,
    params: RewardParams,
    questions: Vec<Question>,
    /// Lower-cased names a made-up name must not take: the pool's and the world's models'.
    reserved_names: Vec<String>,
    prompt: RouterPrompt,
    /// The template `prompt` renders, when not the shipped one.
    prompt_source: Option<String>,
    chat: ChatTemplate,
}

impl Environment {
    /// Build the environment; `plugins` is the directory of built components (found like
    /// `switchyard serve` does when `None`).
    pub fn new(options: EnvOptions, plugins: Option<&Path>) -> anyhow::Result<Environment> {
        options.validate()?;
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
        let (config, in_process, synthetic) = match &options.backends {
            Some(path) => (Config::load(path).with_context(|| format!("loading {}", path.display()))?, None, vec![]),
            None => {
                let extra = synthetic::profiles(options.synthetic_models, SYNTHETIC_SEED);
                let (config, router, synthetic) = embedded::in_process_with(&plugins, extra)?;
                (config, Some(router), synthetic)
            }
        };
        let pool = Arc::new(build_pool(&config, &runtime, in_process.as_ref())?);
        let (prompt, prompt_source) = match &options.prompt_template {
            Some(path) => {
                let source = std::fs::read_to_string(path)
                    .with_context(|| format!("env.prompt_template: reading {}", path.display()))?;
                let prompt = RouterPrompt::from_template(source.clone())
                    .with_context(|| format!("env.prompt_template: {}", path.display()))?;
                (prompt, Some(source))
            }
            None => (RouterPrompt::new(), None),
        };
        let reward_path = plugins.join("router-r1.wasm");
        let reward = Plugin::<Reward>::load(&runtime, &reward_path)
            .with_context(|| format!("loading the reward component {}", reward_path.display()))?;
        let world = Arc::new(World::generate(&Default::default()));
        let questions = questions::generate(&world, options.questions, world.config.seed);
        let reserved_names = config
            .models
            .iter()
            .flat_map(|m| std::iter::once(&m.name).chain(&m.aliases).cloned())
            .chain(switchyard::sim::models::default_profiles().into_iter().map(|p| p.name))
            .chain(synthetic.iter().map(|m| m.name.clone()))
            .map(|n| n.to_lowercase())
            .collect();
        Ok(Environment {
            engine: config.engine.clone(),
            options,
            tokio,
            world,
            pool,
            config,
            synthetic,
            runtime,
            in_process,
            reward,
            params,
            questions,
            reserved_names,
            prompt,
            prompt_source,
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
    /// subset (or superset of renamed copies), with noisy descriptors and made-up names, when
    /// the options ask for it.
    pub fn episode_pool(&self, seed: u64, episode: usize) -> anyhow::Result<Arc<Pool>> {
        let o = &self.options;
        if o.pool_subset_min == 0
            && o.descriptor_noise == 0.0
            && o.rename_models == 0.0
            && o.pool_size_max == 0
            && o.synthetic_per_episode == 0
        {
            return Ok(self.pool.clone());
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (episode as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut config = self.config.clone();
        let size = config.models.len();
        let mut copies = Vec::new();
        // (Draws in the order of the options' introduction, so older runs replay unchanged.)
        let drawn = (o.pool_subset_min > 0 && o.pool_subset_min < size) || o.pool_size_max > size;
        if drawn {
            let min = if o.pool_subset_min == 0 { size } else { o.pool_subset_min.min(size) };
            let keep = rng.random_range(min..=o.pool_size_max.max(size));
            config.models.shuffle(&mut rng);
            copies = (size..keep).map(|_| config.models[rng.random_range(0..size)].clone()).collect();
            config.models.truncate(keep);
        }
        // Synthetic models take random places of the listing (of copies or pool models alike).
        let mut synthetic_at = Vec::new();
        if o.synthetic_per_episode > 0 && !self.synthetic.is_empty() {
            let listed = config.models.len() + copies.len();
            let most = o.synthetic_per_episode.min(listed).min(self.synthetic.len());
            // (A range from 0 draws as before the minimum existed, so older runs replay.)
            let count = rng.random_range(o.synthetic_min_per_episode.min(most)..=most);
            synthetic_at = rand::seq::index::sample(&mut rng, listed, count).into_vec();
            let drawn = rand::seq::index::sample(&mut rng, self.synthetic.len(), count);
            let in_pool = config.models.len();
            for (&at, from) in synthetic_at.iter().zip(drawn) {
                let entry = if at < in_pool { &mut config.models[at] } else { &mut copies[at - in_pool] };
                *entry = self.synthetic[from].clone();
            }
        }
        let kept = config.models.len();
        let mut taken = self.reserved_names.clone();
        let mut renamed = false;
        for (i, m) in config.models.iter_mut().chain(copies.iter_mut()).enumerate() {
            // Copies and synthetic models always need a new name; pool models get one with
            // probability rename_models.
            if i >= kept
                || synthetic_at.contains(&i)
                || (o.rename_models > 0.0 && rng.random_bool(o.rename_models.min(1.0)))
            {
                let name = model_names::made_up(&mut rng, m.descriptor.size_b, &taken);
                taken.push(name.to_lowercase());
                m.remote_model = Some(m.remote_model().to_string());
                m.name = name;
                m.aliases.clear();
                renamed = true;
            }
        }
        config.models.extend(copies);
        // A drawn or renamed listing is in name order, so its order says nothing about which
        // model an entry is; an untouched one keeps the configured order.
        if drawn || renamed {
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

    /// The router prompt template episodes are rendered with, when not the shipped one.
    pub fn router_prompt_source(&self) -> Option<&str> {
        self.prompt_source.as_deref()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_no_episode_could_be_drawn_under_are_refused_by_name() {
        assert!(EnvOptions::default().validate().is_ok());
        let refused = |o: EnvOptions| o.validate().unwrap_err().to_string();
        assert!(refused(EnvOptions { rename_models: 1.5, ..Default::default() }).contains("env.rename_models"));
        assert!(refused(EnvOptions { rename_models: f64::NAN, ..Default::default() }).contains("env.rename_models"));
        assert!(refused(EnvOptions { descriptor_noise: -0.1, ..Default::default() }).contains("env.descriptor_noise"));
        let e = refused(EnvOptions { pool_subset_min: 5, pool_size_max: 4, ..Default::default() });
        assert!(e.contains("pool_subset_min") && e.contains("pool_size_max"), "{e}");
        assert!(
            EnvOptions { pool_subset_min: 3, pool_size_max: 8, rename_models: 0.5, ..Default::default() }
                .validate()
                .is_ok()
        );
    }
}
