//! Run directories and checkpoints.
//!
//! ```text
//! runs/<name>/config.toml          the run's full configuration (written once, checked on resume)
//! runs/<name>/metrics.jsonl        one line per step
//! runs/<name>/plots/*.png          curves of the metrics
//! runs/<name>/checkpoints/step-N/  a loadable model directory (config.json, model.safetensors,
//!                                  tokenizer.json, tokenizer_config.json, generation_config.json;
//!                                  a LoRA run writes its adapter instead of the weights:
//!                                  adapter_config.json, adapter_model.safetensors, base.json)
//!                                  plus optimizer.safetensors, value_head.safetensors, state.json
//! runs/<name>/final -> the last checkpoint's model files
//! ```
//! A run trained on a router prompt other than the shipped one also writes it into every
//! checkpoint and `final/` (`router_prompt.jinja`), so its exports read listings as it did.
//! Invariants: a checkpoint directory is written under a temporary name and renamed into
//! place, so a crash never leaves a half-written checkpoint that resume would pick up.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::lora;
use crate::model::Transformer;
use crate::tokenizer::{END_OF_TURN, PAD_TOKEN, RouterTokenizer};
use switchyard::engine::protocol;
use switchyard::policy::chat_template::CHATML;
use switchyard::policy::model_dir::ROUTER_PROMPT_FILE;

/// What a resumed run needs besides the weights.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct State {
    pub step: u64,
}

/// Write the model files every policy directory has: weights, config, tokenizer, chat
/// template, generation settings.
pub fn write_model_dir(dir: &Path, model: &Transformer, tokenizer: &RouterTokenizer) -> anyhow::Result<()> {
    model.save(dir)?;
    tokenizer.save(&dir.join("tokenizer.json"))?;
    let tokenizer_config = json!({
        "chat_template": CHATML,
        "bos_token": null,
        "eos_token": END_OF_TURN,
        "pad_token": PAD_TOKEN,
        "add_bos_token": false,
        "model_max_length": model.config.max_position_embeddings,
        "tokenizer_class": "PreTrainedTokenizerFast",
    });
    write_json(&dir.join("tokenizer_config.json"), &tokenizer_config)?;
    let generation = json!({
        "eos_token_id": tokenizer.stop_ids,
        "pad_token_id": tokenizer.pad_id,
        "stop_strings": protocol::STOP_STRINGS,
        "do_sample": true,
        "temperature": 1.0,
        "top_p": 0.95,
        // A turn that reads an eight-model listing before its search (the teacher's scan of
        // the qualifying models) runs to ~180 tokens; 128 cut such turns short.
        "max_new_tokens": 256,
    });
    write_json(&dir.join("generation_config.json"), &generation)
}

fn write_json(path: &Path, value: &serde_json::Value) -> anyhow::Result<()> {
    std::fs::write(path, serde_json::to_string_pretty(value)?).with_context(|| format!("writing {}", path.display()))
}

pub struct RunDir {
    pub root: PathBuf,
    /// The router prompt template the run trains on, when not the shipped one.
    router_prompt: Option<String>,
}

impl RunDir {
    /// Open `root`, writing `config` there when new; an existing run must have been started
    /// with the same configuration (resume) unless `fresh`, which is refused when the
    /// directory already has checkpoints.
    pub fn open<C: Serialize>(root: &Path, config: &C, resume: bool) -> anyhow::Result<RunDir> {
        let text = toml::to_string_pretty(config).context("serialising the run config")?;
        let path = root.join("config.toml");
        if path.exists() {
            let old = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            if !resume {
                anyhow::bail!(
                    "{} already holds a run; pass --resume to continue it or choose another --run",
                    root.display()
                );
            }
            anyhow::ensure!(
                old == text,
                "{}: the run was started with a different configuration; resume it with the same flags",
                path.display()
            );
        } else {
            std::fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))?;
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(RunDir { root: root.to_path_buf(), router_prompt: None })
    }

    /// Write `template` (the router prompt the run trains on, `None` for the shipped one)
    /// into every checkpoint.
    pub fn with_router_prompt(self, template: Option<&str>) -> RunDir {
        RunDir { router_prompt: template.map(str::to_owned), ..self }
    }

    pub fn metrics_path(&self) -> PathBuf {
        self.root.join("metrics.jsonl")
    }

    /// The newest complete checkpoint, if any.
    pub fn latest(&self) -> Option<(PathBuf, State)> {
        let dir = self.root.join("checkpoints");
        let mut found: Vec<(PathBuf, State)> = std::fs::read_dir(&dir)
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter_map(|p| {
                let state: State = serde_json::from_str(&std::fs::read_to_string(p.join("state.json")).ok()?).ok()?;
                Some((p, state))
            })
            .collect();
        found.sort_by_key(|(_, s)| s.step);
        found.pop()
    }

    /// Save a checkpoint: model directory plus training state.
    pub fn save(
        &self,
        state: &State,
        model: &Transformer,
        tokenizer: &RouterTokenizer,
        // Writes the training state files (optimiser moments, value head) into the directory.
        extra: &dyn Fn(&Path) -> anyhow::Result<()>,
    ) -> anyhow::Result<PathBuf> {
        let parent = self.root.join("checkpoints");
        let dir = parent.join(format!("step-{:06}", state.step));
        let tmp = parent.join(format!(".step-{:06}.partial", state.step));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        write_model_dir(&tmp, model, tokenizer)?;
        if let Some(template) = &self.router_prompt {
            let path = tmp.join(ROUTER_PROMPT_FILE);
            std::fs::write(&path, template).with_context(|| format!("writing {}", path.display()))?;
        }
        extra(&tmp).with_context(|| format!("writing the training state into {}", tmp.display()))?;
        write_json(&tmp.join("state.json"), &serde_json::to_value(state)?)?;
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::rename(&tmp, &dir).with_context(|| format!("moving the checkpoint into {}", dir.display()))?;
        Ok(dir)
    }

    /// Copy a checkpoint's model files to `final/`.
    pub fn publish_final(&self, checkpoint: &Path) -> anyhow::Result<PathBuf> {
        let out = self.root.join("final");
        let _ = std::fs::remove_dir_all(&out);
        std::fs::create_dir_all(&out)?;
        // A fully fine-tuned model's weights, or a LoRA run's adapter.
        let weights: &[&str] = if checkpoint.join(lora::CONFIG_FILE).is_file() {
            &[lora::CONFIG_FILE, lora::WEIGHTS_FILE, lora::BASE_FILE]
        } else {
            &["config.json", "model.safetensors"]
        };
        let always = ["tokenizer.json", "tokenizer_config.json", "generation_config.json"];
        for f in weights.iter().chain(&always).chain(&[ROUTER_PROMPT_FILE]) {
            let from = checkpoint.join(f);
            // base.json and the router prompt are optional; the rest must be there.
            if !from.is_file() && (*f == lora::BASE_FILE || *f == ROUTER_PROMPT_FILE) {
                continue;
            }
            std::fs::copy(&from, out.join(f)).with_context(|| format!("copying {f} to {}", out.display()))?;
        }
        Ok(out)
    }
}
