//! `switchyard demo`: the reference plugins end to end on recorded routing
//! episodes (host/demo/trajectories.json): every call is priced by the cost
//! plugin, every episode scored by the reward plugin at several alphas, and
//! each strategy's first decision shown: a look at the plugins alone,
//! without a server or backends.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use serde::Deserialize;

use crate::plugin::types::*;
use crate::plugin::{Cost, Plugin, Reward, Runtime, Strategy};

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Folder holding the built reference plugins.
    #[arg(long, default_value = "plugins/dist")]
    plugins: PathBuf,
    /// Recorded episodes to score.
    #[arg(long, default_value = "host/demo/trajectories.json")]
    episodes: PathBuf,
    /// Cost plugin used to price every call.
    #[arg(long, default_value = "token-price")]
    cost: String,
}

#[derive(Deserialize)]
struct Demo {
    pool: Vec<ModelDescriptor>,
    episodes: Vec<Episode>,
}

#[derive(Deserialize)]
struct Episode {
    question: String,
    golden_answers: Vec<String>,
    segments: Vec<Segment>,
    calls: Vec<RecordedCall>,
}

#[derive(Deserialize)]
struct RecordedCall {
    model: String,
    query: String,
    usage: Usage,
    latency_ms: u32,
    #[serde(default)]
    error: Option<String>,
}

impl DemoArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let demo: Demo = serde_json::from_str(
            &std::fs::read_to_string(&self.episodes).with_context(|| format!("reading {}", self.episodes.display()))?,
        )
        .with_context(|| format!("parsing {}", self.episodes.display()))?;
        let runtime = Runtime::with_defaults()?;
        let component = |name: &str| -> PathBuf { self.plugins.join(format!("{name}.wasm")) };
        let need = |p: &Path| -> anyhow::Result<()> {
            anyhow::ensure!(
                p.exists(),
                "{} is missing: run `make setup` (or `scripts/setup`) to build the plugins",
                p.display()
            );
            Ok(())
        };
        for p in [component("router-r1"), component(&self.cost)] {
            need(&p)?;
        }
        let reward = Plugin::<Reward>::load(&runtime, &component("router-r1"))?;
        let cost = Plugin::<Cost>::load(&runtime, &component(&self.cost))?;

        println!(
            "Scoring {} recorded episodes; calls priced by `{}`, rewards by `router-r1`.\n",
            demo.episodes.len(),
            self.cost
        );
        println!(
            "{:<3} {:<22} {:>5} {:>6} {:>11} {:>9} {:>9} {:>9}",
            "#", "answer", "fmt", "EM", "cost $", "r(a=0)", "r(a=0.5)", "r(a=0.9)"
        );
        for (i, episode) in demo.episodes.iter().enumerate() {
            let mut calls = Vec::new();
            for c in &episode.calls {
                // Failed calls (unknown model) cost nothing; the rest are priced by the plugin.
                let price = match demo.pool.iter().find(|m| m.name == c.model) {
                    Some(model) if c.error.is_none() => cost.cost(model, c.usage, c.latency_ms, &[])?,
                    _ => 0.0,
                };
                calls.push(RoutedCall {
                    model: c.model.clone(),
                    query: c.query.clone(),
                    reply: String::new(),
                    usage: c.usage,
                    cost: price,
                    latency_ms: c.latency_ms,
                    error: c.error.clone(),
                });
            }
            let input = ScoringInput {
                trajectory: Trajectory {
                    question: episode.question.clone(),
                    segments: episode.segments.clone(),
                    calls,
                    pool: demo.pool.clone(),
                },
                golden_answers: episode.golden_answers.clone(),
            };
            let score = |alpha| {
                reward.score(
                    &input,
                    &RewardParams { alpha, metric: Metric::ExactMatch, cost_bounds: CostBounds::Fixed((0.0, 0.03)) },
                )
            };
            let (r0, r5, r9) = (score(0.0)?, score(0.5)?, score(0.9)?);
            println!(
                "{:<3} {:<22} {:>5} {:>6} {:>11.7} {:>9.3} {:>9.3} {:>9.3}",
                i + 1,
                r0.answer.as_deref().unwrap_or("-"),
                if r0.format == 0.0 { "ok" } else { "FAIL" },
                r0.exact_match,
                r0.raw_cost,
                r0.total,
                r5.total,
                r9.total
            );
            for e in &r0.format_errors {
                println!("      format: {e}");
            }
        }

        println!("\nFirst decision of each strategy on: {}", demo.episodes[0].question);
        let state = RoutingState {
            question: demo.episodes[0].question.clone(),
            pool: demo.pool.clone(),
            calls: vec![],
            turn: 0,
            max_turns: 4,
        };
        for name in ["largest", "cheapest", "cascade"] {
            let path = component(name);
            need(&path)?;
            let action = Plugin::<Strategy>::load(&runtime, &path)?.decide(&state, &[])?;
            println!("  {name:<9} -> {}", serde_json::to_string(&action)?);
        }
        Ok(())
    }
}
