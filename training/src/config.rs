//! A training run's configuration: one TOML file (every field has a default), overridden by
//! command-line flags, saved into the run directory.

use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::env::EnvOptions;
use crate::lora::LoraOptions;
use crate::model::Config as ModelConfig;
use crate::rl::RlOptions;
use crate::sft::SftOptions;

/// Size of a model trained from scratch (the vocabulary comes from the tokenizer).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSize {
    pub hidden_size: i64,
    pub intermediate_size: i64,
    pub layers: i64,
    pub heads: i64,
    pub kv_heads: i64,
}

impl Default for ModelSize {
    fn default() -> Self {
        let tiny = ModelConfig::tiny(0);
        ModelSize {
            hidden_size: tiny.hidden_size,
            intermediate_size: tiny.intermediate_size,
            layers: tiny.num_hidden_layers,
            heads: tiny.num_attention_heads,
            kv_heads: tiny.num_key_value_heads,
        }
    }
}

impl ModelSize {
    pub fn config(&self, vocab_size: i64) -> ModelConfig {
        ModelConfig {
            hidden_size: self.hidden_size,
            intermediate_size: self.intermediate_size,
            num_hidden_layers: self.layers,
            num_attention_heads: self.heads,
            num_key_value_heads: self.kv_heads,
            ..ModelConfig::tiny(vocab_size)
        }
    }
}

/// The dtype the trunk computes in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// bfloat16 where the device computes it natively (a CUDA GPU, or a CPU with AVX-512 BF16
    /// or AMX) and the base is frozen (LoRA); float32 otherwise.
    #[default]
    Auto,
    Bf16,
    F32,
}

impl Precision {
    /// Whether to compute in bfloat16 on `device`, for a model with (`lora`) or without a
    /// frozen base.
    pub fn bf16(self, device: tch::Device, lora: bool) -> anyhow::Result<bool> {
        match self {
            Precision::F32 => Ok(false),
            Precision::Bf16 => {
                anyhow::ensure!(lora, "precision = \"bf16\" needs LoRA (a frozen base); full fine-tuning stays f32");
                Ok(true)
            }
            Precision::Auto => Ok(lora && (device.is_cuda() || cpu_has_native_bf16())),
        }
    }
}

/// Does this CPU compute bfloat16 natively (AVX-512 BF16 or AMX)? Without it libtorch emulates
/// bfloat16 and is slower than float32.
pub fn cpu_has_native_bf16() -> bool {
    std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|info| {
        info.lines()
            .find(|l| l.starts_with("flags"))
            .is_some_and(|l| l.split_whitespace().any(|f| f == "avx512_bf16" || f == "amx_bf16"))
    })
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    pub seed: u64,
    /// The model the run starts from (and, for RL, the frozen KL reference); none = scratch.
    pub init: Option<std::path::PathBuf>,
    pub model: ModelSize,
    /// Train a LoRA adapter on a frozen base instead of every weight (`[lora]`; absent = full
    /// fine-tuning).
    pub lora: Option<LoraOptions>,
    pub precision: Precision,
    pub env: EnvOptions,
    pub sft: SftOptions,
    pub rl: RlOptions,
}

impl TrainConfig {
    /// Apply a `--lora` flag: the config's `[lora]`, else the default settings.
    pub fn lora_if(&mut self, flag: bool) {
        if flag && self.lora.is_none() {
            self.lora = Some(LoraOptions::default());
        }
    }

    pub fn load(path: Option<&Path>) -> anyhow::Result<TrainConfig> {
        match path {
            None => Ok(TrainConfig::default()),
            Some(p) => {
                let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
                toml::from_str(&text).with_context(|| format!("parsing {}", p.display()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_committed_run_config_loads() {
        // The configs TRAINING.md's commands name must keep parsing as the options evolve
        // (unknown keys are errors).
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
        let mut loaded = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                TrainConfig::load(Some(&path)).unwrap_or_else(|e| panic!("{e:#}"));
                loaded += 1;
            }
        }
        assert!(loaded >= 10, "only {loaded} configs in {}", dir.display());
        let e = toml::from_str::<TrainConfig>("[rl]\nkl_coeff = 0.05\n").unwrap_err();
        assert!(e.to_string().contains("kl_coeff"), "{e}");
    }
}
