//! `switchyard-train`: the command line of the training crate.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Parser, Subcommand};

use switchyard::sim::questions::Split;
use switchyard::sim::teacher::TeacherRouting;
use switchyard_train::checkpoint::RunDir;
use switchyard_train::compare::{
    EvalFile, RESAMPLES, call_share_table, difference_table, kind_table, labelled, read_all, summary_table,
};
use switchyard_train::config::{Precision, TrainConfig};
use switchyard_train::env::Environment;
use switchyard_train::model::Transformer;
use switchyard_train::rl::{self, Algorithm};
use switchyard_train::tokenizer::RouterTokenizer;
use switchyard_train::{lora, metrics, sft};

/// Train the Switchyard router policy (supervised warm-up, PPO, GRPO) and export it to ONNX.
#[derive(Debug, Parser)]
#[command(name = "switchyard-train", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Args)]
struct Common {
    /// A TOML file with the run's settings (see TRAINING.md); flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// cpu, cuda or auto (cuda needs a build with the `cuda` feature).
    #[arg(long, default_value = "cpu")]
    device: String,
    #[arg(long)]
    seed: Option<u64>,
    /// Directory of built plugin components (default: plugins/dist, found like `switchyard serve`).
    #[arg(long)]
    plugins: Option<PathBuf>,
    /// Hide the progress bar.
    #[arg(long)]
    quiet: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Convert a llama.cpp GGUF file (Llama architecture; F32, F16, Q8_0, Q4_0, Q4_1 tensors)
    /// into a Hugging Face snapshot: config.json, model.safetensors (f32), tokenizer files.
    ImportGguf {
        /// The .gguf file.
        gguf: PathBuf,
        /// The snapshot directory to write (replaced if it exists).
        #[arg(long)]
        out: PathBuf,
    },
    /// Train a byte-level BPE tokenizer on the simulated world's corpus.
    Tokenizer {
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 2048)]
        vocab_size: usize,
        #[command(flatten)]
        common: Common,
    },
    /// Supervised warm-up on teacher trajectories.
    Sft {
        /// The run directory (config, metrics, checkpoints, final model).
        #[arg(long)]
        run: PathBuf,
        /// tokenizer.json for a model trained from scratch.
        #[arg(long, required_unless_present = "init")]
        tokenizer: Option<PathBuf>,
        /// Start from this model directory (ours or a Hugging Face snapshot) instead of scratch.
        #[arg(long)]
        init: Option<PathBuf>,
        #[arg(long)]
        epochs: Option<usize>,
        #[arg(long)]
        max_examples: Option<usize>,
        /// Skip this many train-split questions first (see `sft.skip_examples`).
        #[arg(long)]
        skip_examples: Option<usize>,
        /// Copy sequences per step (see `sft.copy_batch_size`).
        #[arg(long)]
        copy_batch_size: Option<usize>,
        /// Train on copy sequences only (a copy curriculum before or between warm-ups).
        #[arg(long)]
        copy_only: bool,
        #[arg(long)]
        batch_size: Option<usize>,
        #[arg(long)]
        lr: Option<f64>,
        /// Train a LoRA adapter on the frozen --init model (the config's `[lora]`, else rank 8,
        /// alpha 16, no dropout, every projection of every layer).
        #[arg(long)]
        lora: bool,
        /// Continue the run in --run from its latest checkpoint.
        #[arg(long)]
        resume: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Reinforcement learning (PPO or GRPO) from a warmed-up model.
    Rl {
        #[arg(long)]
        run: PathBuf,
        /// The starting policy, also the frozen KL reference.
        #[arg(long)]
        init: PathBuf,
        #[arg(long, value_enum)]
        algorithm: Option<Algorithm>,
        /// Train a LoRA adapter (see `sft --lora`) unless --init already is one.
        #[arg(long)]
        lora: bool,
        #[arg(long)]
        steps: Option<u64>,
        /// Cost coefficient of the reward.
        #[arg(long)]
        alpha: Option<f64>,
        /// Distinct questions per step (GRPO rolls each out `group_size` times).
        #[arg(long)]
        questions_per_step: Option<usize>,
        #[arg(long)]
        resume: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Greedy evaluation of a model directory on held-out test questions.
    Eval {
        #[arg(long)]
        model: PathBuf,
        #[arg(long, default_value_t = 500)]
        questions: usize,
        /// Which questions: the first `--questions` of the test split, or of the dev split (to
        /// pick among checkpoints without looking at the test split).
        #[arg(long, value_enum, default_value_t = EvalSplit::Test)]
        split: EvalSplit,
        #[arg(long)]
        alpha: Option<f64>,
        /// Write each trajectory and its reward as a JSON line here.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Decode under the protocol's tag grammar (`rl.sampling.tag_grammar`), whatever the
        /// config says.
        #[arg(long)]
        tag_grammar: bool,
        /// Decode under the whole protocol grammar, tags, text and turn budget
        /// (`rl.sampling.protocol_grammar`), whatever the config says.
        #[arg(long)]
        protocol_grammar: bool,
        /// Answers copied from the question and the replies (`rl.sampling.extractive_answers`;
        /// implies the protocol grammar), whatever the config says.
        #[arg(long)]
        extractive_answers: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Export a model directory to ONNX (optimum decoder layout) with its tokenizer files.
    Export {
        /// A model directory, or a LoRA adapter directory on the base it names.
        #[arg(long)]
        model: PathBuf,
        /// Merge this LoRA adapter into --model (its base) first; it is refused unless it was
        /// trained on that base (base.json's hash).
        #[arg(long)]
        adapter: Option<PathBuf>,
        #[arg(long)]
        out: PathBuf,
        /// Weights in model.onnx_data next to the graph (for models over 2 GB).
        #[arg(long)]
        external_data: bool,
    },
    /// Read an exported policy directory (model.onnx + tokenizer files) back into a model
    /// directory that `--init`, `eval` and `export` take: the weights come from the graph.
    Import {
        /// The exported directory, e.g. models/router-r1.
        #[arg(long)]
        policy: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// Print the router prompt for a question (and its length in tokens, given a tokenizer).
    Prompt {
        #[arg(long, default_value = "Who founded the company that makes the Zephyr 3?")]
        question: String,
        #[arg(long)]
        tokenizer: Option<PathBuf>,
        #[command(flatten)]
        common: Common,
    },
    /// Training throughput: forward + backward tokens/s of a model size on random batches.
    Bench {
        /// Measure this model directory's shape and weights (e.g. the imported base) instead of
        /// the config's size.
        #[arg(long)]
        model: Option<PathBuf>,
        /// Train a LoRA adapter (the config's `[lora]`, else the default) on the frozen model.
        #[arg(long)]
        lora: bool,
        #[arg(long, value_enum, default_value_t = Precision::Auto)]
        precision: Precision,
        /// Share of each sequence's tokens that carry loss (a warm-up's router-written share).
        #[arg(long, default_value_t = 1.0)]
        loss_fraction: f64,
        /// First measure the anchor in the same process: full fine-tuning in float32 with the
        /// loss on every token.
        #[arg(long)]
        anchor: bool,
        #[arg(long, default_value_t = 16)]
        batch: i64,
        #[arg(long, default_value_t = 512)]
        seq: i64,
        #[arg(long, default_value_t = 2048)]
        vocab: i64,
        #[arg(long, default_value_t = 5)]
        iters: usize,
        #[command(flatten)]
        common: Common,
    },
    /// Rollout throughput: episodes per minute of a model routing train questions over the
    /// environment's pool (the RL step's sampling), with the shared prompt prefix encoded once.
    BenchRollouts {
        #[arg(long)]
        model: PathBuf,
        /// Episodes (one batch, as an RL step rolls them out).
        #[arg(long, default_value_t = 32)]
        questions: usize,
        /// First measure the anchor in the same process: every turn encodes its whole context.
        #[arg(long)]
        anchor: bool,
        #[command(flatten)]
        common: Common,
    },
    /// The alpha sweep: EM against cost of models trained at several alphas, from their
    /// `eval --out` files (same questions), as <out>.png and <out>.svg and a markdown table.
    Sweep {
        /// ALPHA=FILE: the eval file of a model trained with that alpha; repeatable.
        #[arg(long = "point", required = true)]
        points: Vec<String>,
        /// LABEL=FILE: a model drawn for reference (e.g. the warm-up), not joined; repeatable.
        #[arg(long = "reference")]
        references: Vec<String>,
        /// Output path without extension.
        #[arg(long)]
        out: PathBuf,
    },
    /// Policies against a baseline on the same questions, from their `eval --out` files: means,
    /// paired differences with bootstrap intervals, and the share of questions calling each model.
    Compare {
        /// LABEL=FILE: the policy the others are compared with.
        #[arg(long)]
        baseline: String,
        /// LABEL=FILE: a policy evaluated on the same questions; repeatable.
        #[arg(long = "policy", required = true)]
        policies: Vec<String>,
    },
    /// Draw PNG curves of a run's metrics into <run>/plots.
    Plot {
        #[arg(long)]
        run: PathBuf,
    },
    /// Means of runs' per-step metrics over windows of steps, as markdown tables (one per
    /// metric, one row per run): the figures TRAINING.md quotes per window.
    Window {
        /// LABEL=RUN (or RUN): a run directory (or its metrics.jsonl); repeatable.
        #[arg(long = "run", required = true)]
        runs: Vec<String>,
        /// A metric to average (e.g. reward, kl, format_failure_rate); repeatable.
        #[arg(long = "key", required = true)]
        keys: Vec<String>,
        #[arg(long, default_value_t = 20)]
        every: u64,
    },
}

fn device(name: &str) -> anyhow::Result<tch::Device> {
    match name {
        "cpu" => Ok(tch::Device::Cpu),
        "cuda" => {
            anyhow::ensure!(
                tch::Cuda::is_available(),
                "--device cuda: no CUDA device is visible to libtorch (build with --features cuda on a GPU machine)"
            );
            Ok(tch::Device::Cuda(0))
        }
        "auto" => Ok(tch::Device::cuda_if_available()),
        other => anyhow::bail!("--device must be cpu, cuda or auto, not `{other}`"),
    }
}

/// A model directory (a snapshot, a checkpoint, or a LoRA adapter on the base it names) and
/// its tokenizer (an adapter's own, else its base's).
fn load_model(dir: &Path, device: tch::Device) -> anyhow::Result<(Transformer, RouterTokenizer)> {
    let model = Transformer::load(dir, device).with_context(|| format!("loading the model in {}", dir.display()))?;
    let mut tokenizer_path = dir.join("tokenizer.json");
    if !tokenizer_path.is_file() && lora::is_adapter_dir(dir) {
        tokenizer_path = lora::resolve_base(dir)?.join("tokenizer.json");
    }
    let tokenizer = RouterTokenizer::load(&tokenizer_path)?;
    Ok((model, tokenizer))
}

/// Attach the run's LoRA adapter (unless the model already carries one, which then trains on)
/// and set the compute dtype.
fn prepare(model: &mut Transformer, config: &TrainConfig, device: tch::Device) -> anyhow::Result<()> {
    match (&config.lora, model.lora()) {
        (Some(options), None) => model.attach_lora(options)?,
        (Some(options), Some(found)) if options != found => {
            tracing::warn!("the starting model's adapter ({found:?}) trains on; the config's [lora] is not used")
        }
        _ => {}
    }
    if config.precision.bf16(device, model.lora().is_some())? {
        model.use_bf16()?;
    }
    tracing::info!(
        "training {} of {} parameters in {:?}",
        model.trainable().values().map(|t| t.numel()).sum::<usize>(),
        model.config.parameters(),
        model.compute_kind()
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    // Every command here is a job; none serves.
    switchyard::cli::end_on_closed_pipe();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,wasmtime=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::ImportGguf { gguf, out } => {
            let imported = switchyard_train::import_gguf::import(&gguf, &out)?;
            println!(
                "{}: {} tensors, {} parameters, vocabulary {} -> {}",
                gguf.display(),
                imported.tensors,
                imported.parameters,
                imported.vocab,
                out.display()
            );
        }
        Command::Tokenizer { out, vocab_size, common } => {
            let config = TrainConfig::load(common.config.as_deref())?;
            let env = Environment::new(config.env.clone(), common.plugins.as_deref())?;
            let corpus = sft::corpus(&env)?;
            let tokenizer = RouterTokenizer::train(corpus.into_iter(), vocab_size)?;
            if let Some(parent) = out.parent() {
                std::fs::create_dir_all(parent)?;
            }
            tokenizer.save(&out)?;
            println!("tokenizer with {} entries written to {}", tokenizer.vocab_size(), out.display());
        }
        Command::Sft {
            run,
            tokenizer,
            init,
            epochs,
            max_examples,
            skip_examples,
            copy_batch_size,
            copy_only,
            batch_size,
            lr,
            lora: lora_flag,
            resume,
            common,
        } => {
            let mut config = TrainConfig::load(common.config.as_deref())?;
            config.seed = common.seed.unwrap_or(config.seed);
            config.sft.epochs = epochs.unwrap_or(config.sft.epochs);
            config.sft.max_examples = max_examples.unwrap_or(config.sft.max_examples);
            config.sft.skip_examples = skip_examples.unwrap_or(config.sft.skip_examples);
            config.sft.copy_batch_size = copy_batch_size.unwrap_or(config.sft.copy_batch_size);
            config.sft.batch_size = batch_size.unwrap_or(config.sft.batch_size);
            config.sft.lr = lr.unwrap_or(config.sft.lr);
            config.sft.copy_only |= copy_only;
            config.init = init.clone();
            let device = device(&common.device)?;
            tch::manual_seed(config.seed as i64);
            config.lora_if(lora_flag);
            let (mut model, tokenizer) = match (&init, &tokenizer) {
                (Some(dir), _) => load_model(dir, device)?,
                (None, Some(path)) => {
                    let tokenizer = RouterTokenizer::load(path)?;
                    let model = Transformer::new(config.model.config(tokenizer.vocab_size() as i64), device)?;
                    (model, tokenizer)
                }
                (None, None) => anyhow::bail!("pass --tokenizer (train from scratch) or --init (start from a model)"),
            };
            prepare(&mut model, &config, device)?;
            let env = Environment::new(config.env.clone(), common.plugins.as_deref())?;
            let run_dir = RunDir::open(&run, &config, resume)?.with_router_prompt(env.router_prompt_source());
            let train = sft::select_questions(env.split(Split::Train), &config.sft)?;
            if config.sft.teacher_routing == TeacherRouting::Uniform && config.sft.only_correct {
                // Keeping only right answers would keep the lucky routes: routing taught after all.
                tracing::warn!(
                    "sft.teacher_routing = \"uniform\" with sft.only_correct = true selects the routes that happened to work; set only_correct = false for a protocol-only warm-up"
                );
            }
            let examples = if config.sft.copy_only {
                sft::copy_examples(&tokenizer, &train)?
            } else {
                sft::teacher_examples(&env, &tokenizer, &train, &config.sft, config.seed)?
            };
            let tokens: usize = examples.iter().map(|e| e.tokens.len()).sum();
            let written: usize = examples.iter().map(|e| e.loss_mask.iter().filter(|m| **m).count()).sum();
            println!(
                "supervised warm-up: {} examples ({:.0} tokens each, {:.0}% router-written), {} parameters, {} epochs",
                examples.len(),
                tokens as f64 / examples.len().max(1) as f64,
                100.0 * written as f64 / tokens.max(1) as f64,
                model.config.parameters(),
                config.sft.epochs
            );
            let copies =
                if config.sft.copy_batch_size > 0 { sft::copy_examples(&tokenizer, &train)? } else { Vec::new() };
            let out =
                sft::train(&model, &tokenizer, &examples, &copies, &config.sft, config.seed, &run_dir, !common.quiet)?;
            plot(&run_dir, "supervised warm-up");
            let eval =
                rl::evaluate(&model, &tokenizer, &env, Split::Dev, config.rl.eval_questions, &config.rl.sampling)?;
            print_eval("after warm-up", &rl::summarise(&eval, ""));
            println!("model written to {}", out.display());
        }
        Command::Rl { run, init, algorithm, lora: lora_flag, steps, alpha, questions_per_step, resume, common } => {
            let mut config = TrainConfig::load(common.config.as_deref())?;
            config.lora_if(lora_flag);
            config.seed = common.seed.unwrap_or(config.seed);
            config.rl.algorithm = algorithm.unwrap_or(config.rl.algorithm);
            config.rl.steps = steps.unwrap_or(config.rl.steps);
            config.env.reward.alpha = alpha.unwrap_or(config.env.reward.alpha);
            config.rl.questions_per_step = questions_per_step.unwrap_or(config.rl.questions_per_step);
            if config.rl.algorithm == Algorithm::Grpo && config.rl.group_size < 2 {
                config.rl.group_size = 4;
            }
            let device = device(&common.device)?;
            tch::manual_seed(config.seed as i64);
            let (mut policy, tokenizer) = load_model(&init, device)?;
            prepare(&mut policy, &config, device)?;
            // The reference is the starting policy, frozen (an adapter merged into it).
            let (mut reference, _) = load_model(&init, device)?;
            if reference.lora().is_some() {
                reference.merge_adapter()?;
            }
            reference.freeze();
            if policy.compute_kind() == tch::Kind::BFloat16 {
                reference.vs.bfloat16();
            }
            config.init = Some(init.clone());
            let env = Environment::new(config.env.clone(), common.plugins.as_deref())?;
            let run_dir = RunDir::open(&run, &config, resume)?.with_router_prompt(env.router_prompt_source());
            let out =
                rl::train(&policy, &reference, &tokenizer, &env, &config.rl, config.seed, &run_dir, !common.quiet)?;
            plot(&run_dir, &format!("{:?}", config.rl.algorithm).to_uppercase());
            println!("model written to {}", out.display());
        }
        Command::Eval {
            model,
            questions,
            split,
            alpha,
            out,
            tag_grammar,
            protocol_grammar,
            extractive_answers,
            common,
        } => {
            let mut config = TrainConfig::load(common.config.as_deref())?;
            config.env.reward.alpha = alpha.unwrap_or(config.env.reward.alpha);
            config.rl.sampling.tag_grammar |= tag_grammar;
            config.rl.sampling.protocol_grammar |= protocol_grammar;
            config.rl.sampling.extractive_answers |= extractive_answers;
            let (policy, tokenizer) = load_model(&model, device(&common.device)?)?;
            let env = Environment::new(config.env.clone(), common.plugins.as_deref())?;
            let eval = rl::evaluate(&policy, &tokenizer, &env, split.into(), questions, &config.rl.sampling)?;
            let name = format!("{split:?}").to_lowercase();
            print_eval(&format!("{} on {} {name} questions", model.display(), eval.len()), &rl::summarise(&eval, ""));
            if let Some(out) = out {
                let mut lines = String::new();
                for r in &eval {
                    let line = serde_json::json!({
                        "id": r.question.id, "question": r.question.question, "golden_answers": r.question.golden_answers,
                        "kind": r.question.kind, "trajectory": r.trace.text(), "reward": r.reward,
                        "cost": r.trace.cost, "calls": r.trace.trajectory.calls.len(),
                    });
                    lines.push_str(&line.to_string());
                    lines.push('\n');
                }
                std::fs::write(&out, lines).with_context(|| format!("writing {}", out.display()))?;
            }
        }
        Command::Export { model, adapter, out, external_data } => {
            let (base, adapter) = match adapter {
                Some(adapter) => (model, Some(adapter)),
                None if lora::is_adapter_dir(&model) => (lora::resolve_base(&model)?, Some(model)),
                None => (model, None),
            };
            match adapter {
                None => {
                    let (policy, _) = load_model(&base, tch::Device::Cpu)?;
                    switchyard_train::export::export_dir(&policy, &[&base], &out, external_data)?;
                }
                Some(adapter) => {
                    let mut policy = Transformer::load_with_adapter(&base, &adapter, tch::Device::Cpu)
                        .with_context(|| format!("applying {} to {}", adapter.display(), base.display()))?;
                    policy.merge_adapter()?;
                    switchyard_train::export::export_dir(&policy, &[&adapter, &base], &out, external_data)?;
                    let record = policy.base_record()?.context("the base's record")?;
                    let provenance = switchyard_train::export::provenance(&base, &record, &adapter)?;
                    let path = out.join(switchyard::policy::model_dir::PROVENANCE_FILE);
                    std::fs::write(&path, serde_json::to_string_pretty(&provenance)?)
                        .with_context(|| format!("writing {}", path.display()))?;
                }
            }
            println!("ONNX model written to {}", out.display());
        }
        Command::Import { policy, out } => {
            let model = switchyard_train::export::import_dir(&policy, &out)?;
            println!(
                "{} ({} parameters) imported from {} into {}",
                model.config.model_type,
                model.config.parameters(),
                policy.display(),
                out.display()
            );
        }
        Command::Prompt { question, tokenizer, common } => {
            let config = TrainConfig::load(common.config.as_deref())?;
            let env = Environment::new(config.env.clone(), common.plugins.as_deref())?;
            let text = env.prompt_text(&question, &env.pool().descriptors())?;
            println!("{text}");
            if let Some(path) = tokenizer {
                let tokens = RouterTokenizer::load(&path)?.encode(&text)?;
                eprintln!("{} characters, {} tokens", text.chars().count(), tokens.len());
            }
        }
        Command::Bench {
            model,
            lora: lora_flag,
            precision,
            loss_fraction,
            anchor,
            batch,
            seq,
            vocab,
            iters,
            common,
        } => {
            let mut config = TrainConfig::load(common.config.as_deref())?;
            let device = device(&common.device)?;
            config.precision = precision;
            config.lora_if(lora_flag);
            let load = || -> anyhow::Result<Transformer> {
                tch::manual_seed(config.seed as i64);
                Ok(match &model {
                    Some(dir) => load_model(dir, device)?.0,
                    None => Transformer::new(config.model.config(vocab), device)?,
                })
            };
            let report = |what: &str, m: &Transformer, fraction: f64| {
                let t = sft::throughput(m, batch, seq, iters, fraction);
                println!(
                    "{what}: {:.0} tokens/s forward+backward ({:.3} s per batch of {batch}x{seq}: forward {:.3} s, backward {:.3} s; loss on {:.0}% of tokens, {} of {} parameters trained, {:?}, {} threads)",
                    t.tokens_per_s,
                    t.seconds,
                    t.forward_s,
                    t.backward_s,
                    100.0 * fraction,
                    m.trainable().values().map(|t| t.numel()).sum::<usize>(),
                    m.config.parameters(),
                    m.compute_kind(),
                    tch::get_num_threads()
                );
            };
            if anchor {
                report("anchor: full fine-tuning, f32, loss on every token", &load()?, 1.0);
            }
            let mut m = load()?;
            prepare(&mut m, &config, device)?;
            let what = match m.lora() {
                Some(l) => format!(
                    "LoRA r {} on {}, {}",
                    l.rank,
                    l.target_modules.join(","),
                    match &l.layers {
                        Some(layers) => format!("layers {layers:?}"),
                        None => "every layer".into(),
                    }
                ),
                None => "full fine-tuning".into(),
            };
            report(&what, &m, loss_fraction);
        }
        Command::BenchRollouts { model, questions, anchor, common } => {
            use switchyard_train::rollout::{ModelWriter, run_episodes};
            let config = TrainConfig::load(common.config.as_deref())?;
            let (policy, tokenizer) = load_model(&model, device(&common.device)?)?;
            let env = Environment::new(config.env.clone(), common.plugins.as_deref())?;
            let train: Vec<_> = env.split(Split::Train).into_iter().take(questions).collect();
            let sampling = &config.rl.sampling;
            let measure = |what: &str, writer: ModelWriter| -> anyhow::Result<()> {
                tch::manual_seed(config.seed as i64);
                let started = std::time::Instant::now();
                let episodes = run_episodes(&writer, &tokenizer, &env, &train, config.seed)?;
                let seconds = started.elapsed().as_secs_f64();
                let generated: usize = episodes.iter().map(|r| r.generated_tokens()).sum();
                let tokens: usize = episodes.iter().map(|r| r.tokens.len()).sum();
                let calls: usize = episodes.iter().map(|r| r.trace.trajectory.calls.len()).sum();
                println!(
                    "{what}: {:.1} episodes/min ({} episodes in {seconds:.1} s; {:.1} generated tokens/s; {:.0} tokens and {:.2} calls per episode; pool of {} models, {} threads)",
                    60.0 * episodes.len() as f64 / seconds,
                    episodes.len(),
                    generated as f64 / seconds,
                    tokens as f64 / episodes.len().max(1) as f64,
                    calls as f64 / episodes.len().max(1) as f64,
                    env.pool().descriptors().len(),
                    tch::get_num_threads()
                );
                Ok(())
            };
            if anchor {
                measure(
                    "anchor: each turn encodes its whole context",
                    ModelWriter::new(&policy, &tokenizer, sampling).without_shared_prefix(),
                )?;
            }
            measure("shared prompt prefix encoded once per step", ModelWriter::new(&policy, &tokenizer, sampling))?;
        }
        Command::Sweep { points, references, out } => sweep(&points, &references, &out)?,
        Command::Compare { baseline, policies } => {
            print_comparison(&labelled_files(&[vec![baseline], policies].concat())?)
        }
        Command::Window { runs, keys, every } => {
            let mut read = Vec::new();
            for spec in &runs {
                let (label, path) = labelled(spec).unwrap_or_else(|_| (spec.clone(), PathBuf::from(spec)));
                let metrics = if path.is_dir() { path.join("metrics.jsonl") } else { path };
                read.push((label, metrics::read_series(&metrics)?));
            }
            print!("{}", metrics::window_tables(&read, &keys, every));
        }
        Command::Plot { run } => {
            for p in metrics::plot(&run.join("metrics.jsonl"), &run.join("plots"), &run.display().to_string(), &[])? {
                println!("{}", p.display());
            }
        }
    }
    Ok(())
}

/// The held-out splits a model is evaluated on.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum EvalSplit {
    Dev,
    Test,
}

impl From<EvalSplit> for Split {
    fn from(s: EvalSplit) -> Split {
        match s {
            EvalSplit::Dev => Split::Dev,
            EvalSplit::Test => Split::Test,
        }
    }
}

/// Labelled eval files (`LABEL=FILE` each), read and checked to cover the same questions.
fn labelled_files(args: &[String]) -> anyhow::Result<Vec<(String, EvalFile)>> {
    let mut labels = Vec::new();
    let mut paths = Vec::new();
    for arg in args {
        let (label, path) = labelled(arg)?;
        labels.push(label);
        paths.push(path);
    }
    Ok(labels.into_iter().zip(read_all(&paths)?).collect())
}

/// The comparison tables of labelled files (means, paired differences against the first, EM per
/// kind, model call shares).
fn print_comparison(files: &[(String, EvalFile)]) {
    let rows: Vec<(String, &EvalFile)> = files.iter().map(|(l, f)| (l.clone(), f)).collect();
    println!("{}", summary_table(&rows));
    if rows.len() > 1 {
        println!("Paired differences over the same questions (bootstrap, {RESAMPLES} resamples):\n");
        println!("{}", difference_table(&rows));
    }
    let kinds = kind_table(&rows);
    if !kinds.is_empty() {
        println!("EM per question kind (questions):\n");
        println!("{kinds}");
    }
    println!("Questions calling each model:\n");
    print!("{}", call_share_table(&rows));
}

fn sweep(points: &[String], references: &[String], out: &Path) -> anyhow::Result<()> {
    use switchyard::eval::plot::{Point, alpha_sweep};
    let mut files = labelled_files(&[points, references].concat())?;
    let mut sweep = Vec::new();
    for (label, file) in &files[..points.len()] {
        sweep.push(switchyard_train::sweep::point(label, file)?);
    }
    let refs: Vec<Point> = files[points.len()..]
        .iter()
        .map(|(label, f)| {
            let s = f.summary();
            Point { label: label.clone(), cost: s.cost, accuracy: s.em }
        })
        .collect();
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let title = format!("Alpha sweep: exact match against cost ({} test questions)", files[0].1.ids.len());
    for path in alpha_sweep(&sweep, &refs, &title, "EM", out)? {
        eprintln!("{}", path.display());
    }
    for (label, _) in &mut files[..points.len()] {
        *label = format!("alpha = {label}");
    }
    print_comparison(&files);
    Ok(())
}

/// Curves of a finished run; a missing font must not fail a run that trained fine.
fn plot(run: &RunDir, title: &str) {
    if let Err(e) = metrics::plot(&run.metrics_path(), &run.root.join("plots"), title, &[]) {
        tracing::warn!("plots skipped: {e:#}");
    }
}

fn print_eval(what: &str, m: &serde_json::Map<String, serde_json::Value>) {
    let get = |k: &str| m.get(k).and_then(serde_json::Value::as_f64).unwrap_or(f64::NAN);
    println!(
        "{what}: EM {:.3}  format failures {:.1}%  cost ${:.7}/question  calls {:.2}  reward {:.3}  response tokens {:.0}",
        get("em"),
        100.0 * get("format_failure_rate"),
        get("cost"),
        get("calls"),
        get("reward"),
        get("response_tokens")
    );
}
