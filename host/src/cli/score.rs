//! `switchyard score`: score raw trajectories offline with a reward
//! component. Each input line: `{"id"?, "trajectory": "<think>...", "golden_answers": [...],
//! "question"?, "pool"?: [names], "calls"?: [...]}`; each output line: id,
//! format, answer, em, f1, reward (and the format errors).

use std::io::{BufRead, BufWriter, Write};
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use serde::Deserialize;
use serde_json::json;

use crate::config::RewardConfig;
use crate::engine::protocol;
use crate::plugin::types::*;
use crate::plugin::{Plugin, Reward, Runtime};

#[derive(Debug, Args)]
pub struct ScoreArgs {
    /// JSONL input (`-` for stdin).
    #[arg(long)]
    input: String,
    /// Reward component (.wasm).
    #[arg(long, default_value = "plugins/dist/router-r1.wasm")]
    reward: PathBuf,
    /// Cost coefficient.
    #[arg(long, default_value_t = 0.0)]
    alpha: f64,
    /// Metric: exact-match or f1.
    #[arg(long, default_value = "exact-match")]
    metric: String,
    /// Models the router may name (comma-separated), for lines that carry no `pool`.
    #[arg(long, value_delimiter = ',')]
    pool: Vec<String>,
    /// Output JSONL (default stdout).
    #[arg(long)]
    output: Option<PathBuf>,
}

#[derive(Deserialize)]
struct Line {
    #[serde(default)]
    id: Option<serde_json::Value>,
    #[serde(default)]
    question: String,
    trajectory: String,
    golden_answers: Vec<String>,
    #[serde(default)]
    pool: Option<Vec<String>>,
    #[serde(default)]
    calls: Vec<RoutedCall>,
}

fn descriptor(name: &str) -> ModelDescriptor {
    ModelDescriptor {
        name: name.to_string(),
        aliases: vec![],
        price_in_per_mtok: 0.0,
        price_out_per_mtok: 0.0,
        latency_ms: 0,
        context_tokens: 0,
        size_b: None,
        strengths: vec![],
        example_scores: vec![],
    }
}

impl ScoreArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let metric = match self.metric.as_str() {
            "exact-match" | "em" => Metric::ExactMatch,
            "f1" => Metric::F1,
            other => anyhow::bail!("--metric must be exact-match or f1, not `{other}`"),
        };
        anyhow::ensure!((0.0..=1.0).contains(&self.alpha), "--alpha must be in [0, 1]");
        let params = RewardParams { alpha: self.alpha, metric, cost_bounds: RewardConfig::default().cost_bounds };
        let runtime = Runtime::with_defaults()?;
        let reward = Plugin::<Reward>::load(&runtime, &self.reward)?;
        let mut warm = reward.warm();
        let reader: Box<dyn BufRead> = if self.input == "-" {
            Box::new(std::io::stdin().lock())
        } else {
            Box::new(std::io::BufReader::new(
                std::fs::File::open(&self.input).with_context(|| format!("opening {}", self.input))?,
            ))
        };
        let mut out: Box<dyn Write> = match &self.output {
            Some(p) => {
                Box::new(BufWriter::new(std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?))
            }
            None => Box::new(BufWriter::new(std::io::stdout().lock())),
        };
        let (mut scored, mut failed) = (0usize, 0usize);
        for (n, line) in reader.lines().enumerate() {
            let line = line.with_context(|| format!("{}: reading line {}", self.input, n + 1))?;
            if line.trim().is_empty() {
                continue;
            }
            let parsed: Line =
                serde_json::from_str(&line).with_context(|| format!("{}: line {}", self.input, n + 1))?;
            let names = parsed.pool.clone().unwrap_or_else(|| self.pool.clone());
            let input = ScoringInput {
                trajectory: Trajectory {
                    question: parsed.question,
                    segments: protocol::segments(&parsed.trajectory),
                    calls: parsed.calls,
                    pool: names.iter().map(|n| descriptor(n)).collect(),
                },
                golden_answers: parsed.golden_answers,
            };
            let id = parsed.id.unwrap_or(json!(n + 1));
            let row = match warm.score(&input, &params) {
                Ok(r) => json!({
                    "id": id, "format": r.format, "answer": r.answer, "em": r.exact_match, "f1": r.f1,
                    "reward": r.total, "cost": r.raw_cost, "format_errors": r.format_errors,
                }),
                Err(e) => {
                    failed += 1;
                    json!({ "id": id, "error": e.to_string() })
                }
            };
            scored += 1;
            writeln!(out, "{row}")?;
        }
        out.flush()?;
        // Every line was written (a failed one with its error); a reward
        // that could not be computed still fails the command.
        anyhow::ensure!(failed == 0, "{failed} of {scored} lines could not be scored (see their `error` fields)");
        Ok(())
    }
}
