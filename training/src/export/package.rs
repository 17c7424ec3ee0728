//! A policy directory for the host: `model.onnx` (+ `model.onnx_data`), `config.json`,
//! `tokenizer.json`, `tokenizer_config.json` (with the chat template) and
//! `generation_config.json`, and the router prompt when the model was trained on its own
//! (`router_prompt.jinja`), copied from the trained model's directory.

use std::path::Path;

use anyhow::Context;

use super::onnx::{ExportOptions, export};
use crate::model::Transformer;

/// Files copied next to the graph, when the source directory has them.
const SIDE_FILES: [&str; 5] =
    ["config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json", "router_prompt.jinja"];

/// Export `model` (loaded from `source`) into `out`.
pub fn export_dir(model: &Transformer, source: &Path, out: &Path, external_data: bool) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    export(model, &out.join("model.onnx"), &ExportOptions { external_data })?;
    for f in SIDE_FILES {
        let from = source.join(f);
        if from.is_file() {
            std::fs::copy(&from, out.join(f)).with_context(|| format!("copying {}", from.display()))?;
        }
    }
    anyhow::ensure!(
        out.join("tokenizer.json").is_file(),
        "{}: no tokenizer.json to ship with the model",
        source.display()
    );
    Ok(())
}
