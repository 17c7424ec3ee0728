//! `switchyard-train`: trains the Switchyard router policy with tch and exports it to ONNX.
//!
//! Data flows top to bottom through the modules: `tokenizer` (byte-level BPE with the
//! protocol's tags as tokens) -> `model` (the Llama/Qwen2 decoder) -> `env` (questions, pool,
//! prompt, reward component) -> `generate` (batched sampling with the KV cache) -> `rollout`
//! (multi-turn episodes through the host's turn loop) -> `sft` / `rl` (supervised warm-up;
//! PPO and GRPO) with `batch` and `optim` -> `checkpoint` and `metrics` (run directories,
//! JSONL, plots) -> `export` (ONNX in the optimum decoder layout); `compare` reads eval files
//! back for paired comparisons and `sweep` for the alpha sweep plot.

pub mod batch;
pub mod checkpoint;
pub mod compare;
pub mod config;
pub mod env;
pub mod export;
pub mod generate;
pub mod import_gguf;
pub mod lora;
pub mod metrics;
pub mod model;
pub mod model_names;
pub mod optim;
pub mod rl;
pub mod rollout;
pub mod sft;
pub mod sweep;
pub mod tokenizer;

/// A progress bar on stderr, hidden when `visible` is false (tests, pipes).
pub fn progress_bar(total: u64, visible: bool) -> indicatif::ProgressBar {
    if !visible {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} eta {eta} {msg}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}
