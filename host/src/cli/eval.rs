//! `switchyard eval`: run datasets through policies, score every trajectory
//! with the reward component, write per-question traces and summaries.
//! Resumable: rerun the same command and it continues where it stopped.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::eval::{self, EvalRun, Summary};
use crate::plugin::Runtime;
use crate::plugin::types::RewardParams;
use crate::server::Snapshot;
use crate::sim::embedded::HeldOut;

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Questions, JSONL in the FlashRAG layout (`switchyard sim export` writes them); repeatable.
    #[arg(long, required = true)]
    dataset: Vec<PathBuf>,
    /// Policy to evaluate, as served (e.g. `switchyard/router-r1`); repeatable.
    #[arg(long, required = true)]
    policy: Vec<String>,
    /// Configuration file; without it, the embedded default (the simulated pool).
    #[arg(long)]
    config: Option<PathBuf>,
    /// With the embedded default, add the simulated world's held-out models to the pool, known
    /// to the policies only by their descriptors (the unseen-model experiment).
    #[arg(long, conflicts_with = "config")]
    held_out_models: bool,
    /// Output folder: `<policy>.jsonl` traces, `<policy>.summary.json`, `report.md`.
    #[arg(long, default_value = "eval")]
    out: PathBuf,
    /// Questions in flight at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Only the first N questions of each dataset.
    #[arg(long)]
    limit: Option<usize>,
    /// Cost coefficient of the reward (default: the configuration's).
    #[arg(long)]
    alpha: Option<f64>,
    /// Per-question time limit in seconds (default: the server's request timeout).
    #[arg(long)]
    timeout_s: Option<u64>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    #[command(flatten)]
    router: super::serve::EmbeddedRouter,
}

/// Plot which models each routing policy (one that calls more than one model) calls, overall
/// and per domain; false when no policy routes between models.
fn model_use_plot(summaries: &[Summary], stem: &std::path::Path) -> Result<bool, eval::plot::PlotError> {
    let mut rows = Vec::new();
    for s in summaries.iter().filter(|s| s.overall.model_use.len() > 1) {
        let slices = std::iter::once(("all".to_string(), &s.overall))
            .chain(s.by_domain.iter().filter(|_| s.by_domain.len() > 1).map(|(d, m)| (d.clone(), m)));
        rows.extend(slices.map(|(slice, m)| eval::plot::UseRow {
            label: format!("{} · {slice}", s.policy),
            model_use: m.model_use.iter().map(|(k, v)| (k.clone(), *v)).collect(),
        }));
    }
    if rows.is_empty() {
        return Ok(false);
    }
    eval::plot::model_use(&rows, "Which models each policy calls, by domain", stem)?;
    Ok(true)
}

/// A policy name as a file name: `switchyard/router-r1` -> `switchyard_router-r1`.
fn slug(policy: &str) -> String {
    policy.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect()
}

impl EvalArgs {
    pub fn run(self) -> anyhow::Result<()> {
        if let Some(alpha) = self.alpha {
            anyhow::ensure!((0.0..=1.0).contains(&alpha), "--alpha must be in [0, 1], got {alpha}");
        }
        let mut items = Vec::new();
        for path in &self.dataset {
            let mut loaded = eval::dataset::load(path)?;
            loaded.truncate(self.limit.unwrap_or(usize::MAX));
            items.extend(loaded);
        }
        let mut ids = std::collections::BTreeSet::new();
        if let Some(dup) = items.iter().find(|i| !ids.insert(i.id.as_str())) {
            anyhow::bail!("question id `{}` appears in more than one dataset; ids must be unique across them", dup.id);
        }
        let runtime = Runtime::with_defaults()?;
        let tokio = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting tokio")?;
        tokio.block_on(async move {
            let snapshot = Arc::new(match &self.config {
                Some(path) => Snapshot::load(path, &runtime)?,
                None => {
                    let held_out = if self.held_out_models { HeldOut::Included } else { HeldOut::Excluded };
                    super::serve::embedded_snapshot(&runtime, held_out, &self.router).await?
                }
            });
            let r = &snapshot.config.reward;
            let params =
                RewardParams { alpha: self.alpha.unwrap_or(r.alpha), metric: r.metric, cost_bounds: r.cost_bounds };
            let timeout =
                Duration::from_secs(self.timeout_s.unwrap_or(snapshot.config.server.request_timeout_ms / 1000));
            let mut sections = String::new();
            let mut summaries = Vec::new();
            for policy in &self.policy {
                let traces = self.out.join(format!("{}.jsonl", slug(policy)));
                let bar = if self.quiet { ProgressBar::hidden() } else { ProgressBar::new(items.len() as u64) };
                bar.set_style(
                    ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {elapsed} ETA {eta} {msg}")
                        .expect("valid template")
                        .progress_chars("=> "),
                );
                bar.set_prefix(policy.clone());
                let run =
                    EvalRun { snapshot: snapshot.clone(), policy, params, concurrency: self.concurrency, timeout };
                let records = eval::runner::run(&run, &items, &traces, &|r| {
                    bar.inc(1);
                    if let Some(e) = &r.error {
                        bar.set_message(format!("last error: {e}"));
                    }
                })
                .await?;
                bar.finish_and_clear();
                let summary = Summary::of(policy, &records);
                let path = self.out.join(format!("{}.summary.json", slug(policy)));
                std::fs::write(&path, serde_json::to_string_pretty(&summary)? + "\n")
                    .with_context(|| format!("writing {}", path.display()))?;
                let section = summary.markdown();
                println!("{section}");
                sections.push_str(&section);
                sections.push('\n');
                summaries.push(summary);
            }
            let comparison = eval::summary::comparison(&summaries);
            println!("{comparison}");
            let points: Vec<eval::plot::Point> = summaries
                .iter()
                .map(|s| eval::plot::Point { label: s.policy.clone(), cost: s.overall.cost, accuracy: s.overall.em })
                .collect();
            // A missing font costs the plot, not the evaluation.
            let plot = match eval::plot::frontier(&points, "Exact match against cost", "EM", &self.out.join("frontier"))
            {
                Ok(_) => "![EM against cost](frontier.svg)\n\n".to_string(),
                Err(e) => {
                    eprintln!("switchyard eval: no frontier plot: {e}");
                    String::new()
                }
            };
            let calls = match model_use_plot(&summaries, &self.out.join("models")) {
                Ok(true) => {
                    "## Which models the routing policies call\n\n![model calls by domain](models.svg)\n\n".into()
                }
                Ok(false) => String::new(),
                Err(e) => {
                    eprintln!("switchyard eval: no model-use plot: {e}");
                    String::new()
                }
            };
            let report =
                format!("# Evaluation\n\n## All policies\n\n{plot}{comparison}\n{calls}## Per policy\n\n{sections}");
            let path = self.out.join("report.md");
            std::fs::write(&path, report).with_context(|| format!("writing {}", path.display()))?;
            eprintln!("traces, summaries and report in {}", self.out.display());
            Ok(())
        })
    }
}
