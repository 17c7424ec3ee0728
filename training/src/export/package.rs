//! A policy directory for the host: `model.onnx` (+ `model.onnx_data`), `config.json`,
//! `tokenizer.json`, `tokenizer_config.json` (with the chat template) and
//! `generation_config.json`, and the router prompt when the model was trained on its own
//! (`router_prompt.jinja`), copied from the trained model's directory.

use std::path::Path;

use anyhow::Context;

use super::onnx::{ExportOptions, export};
use crate::lora;
use crate::model::Transformer;

/// Files copied next to the graph, when the source directory has them.
const SIDE_FILES: [&str; 5] =
    ["config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json", "router_prompt.jinja"];

/// Export `model` into `out`, each side file copied from the first of `sources` that has it
/// (an adapter's directory, then its base's; or the one model directory).
pub fn export_dir(model: &Transformer, sources: &[&Path], out: &Path, external_data: bool) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    export(model, &out.join("model.onnx"), &ExportOptions { external_data })?;
    for f in SIDE_FILES {
        if let Some(from) = sources.iter().map(|s| s.join(f)).find(|p| p.is_file()) {
            std::fs::copy(&from, out.join(f)).with_context(|| format!("copying {}", from.display()))?;
        }
    }
    anyhow::ensure!(
        out.join("tokenizer.json").is_file(),
        "{}: no tokenizer.json to ship with the model",
        sources.iter().map(|s| s.display().to_string()).collect::<Vec<_>>().join(", ")
    );
    Ok(())
}

/// What a merged export was built from (`provenance.json`, read by `switchyard policy
/// check`): the base snapshot and the adapter, each with the SHA-256 of its weights, and the
/// base hash the adapter was trained on.
/// `record` is the base's (as [`crate::model::Transformer::base_record`] gives it: hashed when
/// the adapter was checked against it).
pub fn provenance(base: &Path, record: &lora::BaseRecord, adapter: &Path) -> anyhow::Result<serde_json::Value> {
    let (config, trained_on) = lora::read_config(adapter)?;
    let adapter_sha = lora::sha256_file(&adapter.join(lora::WEIGHTS_FILE))?;
    Ok(serde_json::json!({
        "base": {
            "path": base.display().to_string(),
            "package": record.package,
            "version": record.version,
            "weights_sha256": record.weights_sha256,
        },
        "adapter": {
            "path": adapter.display().to_string(),
            "weights_sha256": adapter_sha,
            "base_weights_sha256": trained_on.map(|b| b.weights_sha256),
            "r": config.r,
            "lora_alpha": config.lora_alpha,
            "target_modules": config.target_modules,
            "layers_to_transform": config.layers_to_transform,
        },
    }))
}
