//! `switchyard learned train`: fit the single-round learned routers (KNN, MLP)
//! served by the `learned` strategy component, from single-model evaluation
//! traces of the train split.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};

use crate::learned::mlp::{self, MlpOptions};
use crate::learned::{Labels, choice_quality};

#[derive(Debug, Subcommand)]
pub enum LearnedCommand {
    /// Fit a router and write its parameter file (safetensors).
    Train(TrainArgs),
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum RouterKind {
    Knn,
    Mlp,
}

#[derive(Debug, Args)]
pub struct TrainArgs {
    #[arg(long, value_enum)]
    kind: RouterKind,
    /// Traces of `switchyard eval --policy switchyard/only/<model>` on the train split, one
    /// file per model (the label order is the file order); repeatable.
    #[arg(long, required = true)]
    traces: Vec<PathBuf>,
    /// The parameter file to write.
    #[arg(long)]
    out: PathBuf,
    /// Hold out every N-th question to report validation numbers (0: none).
    #[arg(long, default_value_t = 10)]
    validate_every: usize,
    /// KNN: neighbours used for the validation numbers (the served `k` is a policy setting).
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// MLP: hidden units.
    #[arg(long, default_value_t = 64)]
    hidden: usize,
    /// MLP: passes over the training questions (on the simulated world's labels the
    /// validation loss bottoms out around 7-8; more overfits).
    #[arg(long, default_value_t = 8)]
    epochs: usize,
    /// MLP: learning rate (Adam).
    #[arg(long, default_value_t = 3e-3)]
    lr: f32,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

impl LearnedCommand {
    pub fn run(self) -> anyhow::Result<()> {
        match self {
            LearnedCommand::Train(args) => args.run(),
        }
    }
}

impl TrainArgs {
    fn run(self) -> anyhow::Result<()> {
        let labels = Labels::from_traces(&self.traces)?;
        let (train, valid) = labels.split(self.validate_every);
        anyhow::ensure!(
            !train.examples.is_empty(),
            "{} question(s) are too few to hold out every {}th: give more or --validate-every 0",
            labels.examples.len(),
            self.validate_every
        );
        eprintln!(
            "{} questions run on all of {} models: {} to train, {} to validate",
            labels.examples.len(),
            labels.models.len(),
            train.examples.len(),
            valid.examples.len()
        );
        let opts = MlpOptions {
            hidden: self.hidden,
            epochs: self.epochs,
            lr: self.lr,
            seed: self.seed,
            ..MlpOptions::default()
        };
        let params = match self.kind {
            RouterKind::Knn => train.knn(),
            RouterKind::Mlp => mlp::train(&train, &opts, |epoch, p| {
                let valid_loss = if valid.examples.is_empty() { f64::NAN } else { mlp::loss(p, &valid) };
                eprintln!(
                    "epoch {:>3}: train loss {:.4}  validation loss {valid_loss:.4}",
                    epoch + 1,
                    mlp::loss(p, &train)
                );
            }),
        };
        if !valid.examples.is_empty() {
            let (em, cost) = choice_quality(&params, &valid, self.k, 0.0);
            let best = (0..labels.models.len())
                .map(|m| valid.examples.iter().map(|e| f64::from(e.em[m])).sum::<f64>() / valid.examples.len() as f64)
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .expect("at least one model");
            let oracle = valid.examples.iter().filter(|e| e.em.iter().any(|v| *v >= 1.0)).count() as f64
                / valid.examples.len() as f64;
            eprintln!(
                "validation: EM {em:.3} at ${cost:.7}/question; best single model {} EM {:.3}; oracle EM {oracle:.3}",
                labels.models[best.0], best.1
            );
        }
        // The file serves the whole set: validation only informs the numbers above.
        let params = match self.kind {
            RouterKind::Knn => labels.knn(),
            RouterKind::Mlp if valid.examples.is_empty() => params,
            RouterKind::Mlp => mlp::train(&labels, &opts, |_, _| {}),
        };
        let bytes = params.to_bytes().map_err(|e| anyhow::anyhow!("encoding the parameters: {e}"))?;
        if let Some(dir) = self.out.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(&self.out, &bytes).with_context(|| format!("writing {}", self.out.display()))?;
        eprintln!("wrote {} ({} bytes; models {})", self.out.display(), bytes.len(), labels.models.join(", "));
        Ok(())
    }
}
