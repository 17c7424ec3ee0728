//! `switchyard sim serve | export`: the simulated world from the command line.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;

use crate::sim::questions::{self, Split};
use crate::sim::serve::{SimConfig, spawn};

#[derive(Debug, Subcommand)]
pub enum SimCommand {
    /// Serve every simulated model as one OpenAI-compatible endpoint.
    Serve {
        /// World config (TOML: [world], [serve], [faults], [[models]]); defaults if omitted.
        #[arg(long)]
        world: Option<PathBuf>,
        /// Override `serve.listen`.
        #[arg(long)]
        listen: Option<String>,
    },
    /// Run the teacher over a split: EM, cost, and optionally its trajectories.
    Teacher(super::teacher::TeacherArgs),
    /// Write train/dev/test question splits as JSONL (FlashRAG layout).
    Export {
        #[arg(long)]
        world: Option<PathBuf>,
        /// Questions to generate (before splitting 80/10/10).
        #[arg(long, default_value_t = 5000)]
        questions: usize,
        #[arg(long, default_value = "data/sim")]
        out: PathBuf,
    },
}

fn load(world: &Option<PathBuf>) -> anyhow::Result<SimConfig> {
    world.as_deref().map_or_else(|| Ok(SimConfig::default()), SimConfig::load)
}

impl SimCommand {
    pub fn run(self) -> anyhow::Result<()> {
        match self {
            SimCommand::Serve { world, listen } => {
                let mut config = load(&world)?;
                if let Some(l) = listen {
                    config.serve.listen = l;
                }
                let models = config.build();
                let tokio = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
                tokio.block_on(async move {
                    let listener = tokio::net::TcpListener::bind(&config.serve.listen)
                        .await
                        .with_context(|| format!("cannot listen on {}", config.serve.listen))?;
                    let addr = spawn(listener, models.clone(), &config);
                    println!("listening on http://{addr}/v1");
                    let names: Vec<&str> = models.profiles().iter().map(|p| p.name.as_str()).collect();
                    eprintln!("simulated models: {}", names.join(", "));
                    crate::server::shutdown_signal().await;
                    Ok(())
                })
            }
            SimCommand::Teacher(args) => args.run(),
            SimCommand::Export { world, questions: n, out } => {
                let config = load(&world)?;
                let models = config.build();
                std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
                let all = questions::generate(&models.world, n, config.world.seed);
                for (split, file) in
                    [(Split::Train, "train.jsonl"), (Split::Dev, "dev.jsonl"), (Split::Test, "test.jsonl")]
                {
                    let lines: Vec<String> =
                        all.iter().filter(|q| q.split == split).map(serde_json::to_string).collect::<Result<_, _>>()?;
                    let path = out.join(file);
                    std::fs::write(&path, lines.join("\n") + "\n")
                        .with_context(|| format!("writing {}", path.display()))?;
                    println!("{:<5} {:>6} questions  {}", file.trim_end_matches(".jsonl"), lines.len(), path.display());
                }
                Ok(())
            }
        }
    }
}
