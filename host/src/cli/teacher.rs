//! `switchyard sim teacher`: run the teacher over a split of the simulated
//! world, score every trajectory with the reward component, report EM and
//! cost, and optionally write the trajectories (supervised warm-up data).

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use futures_util::StreamExt;
use serde_json::json;

use crate::backend::Pool;
use crate::engine;
use crate::plugin::types::{CostBounds, Metric, RewardParams, ScoringInput};
use crate::plugin::{Plugin, Reward, Runtime};
use crate::sim::embedded;
use crate::sim::questions::{self, Split};
use crate::sim::teacher::{TeacherPolicy, TeacherRouting};

#[derive(Debug, Args)]
pub struct TeacherArgs {
    /// Questions to generate before splitting (80/10/10).
    #[arg(long, default_value_t = 5000)]
    questions: usize,
    /// Which split to run: train, dev or test.
    #[arg(long, default_value = "test")]
    split: String,
    /// Write one JSON line per trajectory here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Episodes run at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// How the teacher picks models: by their descriptors, or uniformly at random (the
    /// routing-blind teacher of a protocol-only warm-up).
    #[arg(long, value_enum, default_value_t = TeacherRouting::Descriptors)]
    routing: TeacherRouting,
}

impl TeacherArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let split = match self.split.as_str() {
            "train" => Split::Train,
            "dev" => Split::Dev,
            "test" => Split::Test,
            other => anyhow::bail!("--split must be train, dev or test, not `{other}`"),
        };
        let runtime = Runtime::with_defaults()?;
        let tokio = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
        tokio.block_on(async move {
            let plugins = embedded::find_plugins_dir()?;
            let config = embedded::start(&plugins, embedded::HeldOut::Excluded).await?;
            let pool = Arc::new(Pool::from_config(&config, &runtime)?);
            let reward = Plugin::<Reward>::load(&runtime, &plugins.join("router-r1.wasm"))?;
            let world = Arc::new(crate::sim::world::World::generate(&Default::default()));
            let teacher = Arc::new(
                TeacherPolicy::new("switchyard/teacher", world.clone()).with_routing(self.routing, world.config.seed),
            );
            let qs: Vec<_> = questions::generate(&world, self.questions, world.config.seed)
                .into_iter()
                .filter(|q| q.split == split)
                .collect();
            let engine_config = config.engine.clone();
            let traces = futures_util::stream::iter(qs.into_iter().map(|q| {
                let (teacher, pool, engine_config) = (teacher.clone(), pool.clone(), engine_config.clone());
                async move {
                    let trace = engine::run(&engine_config, teacher.as_ref(), &pool, &q.question).await;
                    (q, trace)
                }
            }))
            .buffer_unordered(self.concurrency.max(1))
            .collect::<Vec<_>>()
            .await;

            let params =
                RewardParams { alpha: 0.0, metric: Metric::ExactMatch, cost_bounds: CostBounds::Fixed((0.0, 0.03)) };
            let mut out = match &self.out {
                Some(p) => Some(std::io::BufWriter::new(
                    std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
                )),
                None => None,
            };
            let (mut n, mut em, mut format_fail, mut cost, mut calls) = (0usize, 0.0, 0usize, 0.0, 0usize);
            let mut by_kind: std::collections::BTreeMap<String, (f64, usize)> = Default::default();
            let mut warm = reward.warm();
            for (q, trace) in traces {
                let trace = trace?;
                let scored = warm.score(
                    &ScoringInput { trajectory: trace.trajectory.clone(), golden_answers: q.golden_answers.clone() },
                    &params,
                )?;
                n += 1;
                em += scored.exact_match;
                format_fail += usize::from(scored.format < 0.0);
                cost += trace.cost;
                calls += trace.trajectory.calls.len();
                let k = by_kind.entry(q.kind.clone()).or_default();
                k.0 += scored.exact_match;
                k.1 += 1;
                if let Some(out) = out.as_mut() {
                    let line = json!({
                        "id": q.id, "question": q.question, "golden_answers": q.golden_answers, "kind": q.kind,
                        "domain": q.domain, "hops": q.hops, "trajectory": trace.text(), "calls": trace.trajectory.calls,
                        "em": scored.exact_match, "format": scored.format, "cost": trace.cost,
                    });
                    writeln!(out, "{line}")?;
                }
            }
            anyhow::ensure!(n > 0, "no questions in the {} split", self.split);
            let nf = n as f64;
            println!("teacher ({} routing) on the {} split: {n} questions", self.routing, self.split);
            println!(
                "  EM {:.3}   format failures {:.2}%   avg cost ${:.7}   avg calls {:.2}",
                em / nf,
                100.0 * format_fail as f64 / nf,
                cost / nf,
                calls as f64 / nf
            );
            for (kind, (e, k)) in by_kind {
                println!("  {kind:<11} EM {:.3}  (n={k})", e / k as f64);
            }
            Ok(())
        })
    }
}
