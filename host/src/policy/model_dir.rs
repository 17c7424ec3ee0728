//! A policy model directory, as our exporter and Hugging Face optimum write it:
//!
//! ```text
//! model.onnx  (+ model.onnx_data)   the decoder with past key values
//! tokenizer.json                     the tokenizer
//! tokenizer_config.json              chat_template, bos/eos/pad tokens     (optional)
//! chat_template.jinja                the chat template, newer HF layout    (optional)
//! generation_config.json             eos_token_id, pad_token_id, stop_strings, max_new_tokens (optional)
//! config.json                        max_position_embeddings, heads, head_dim (optional)
//! router_prompt.jinja                the router prompt it was trained on (optional; the
//!                                    shipped one otherwise)
//! ```
//!
//! Invariants: reading a directory checks every file it reads (JSON syntax, field types,
//! token ids inside the vocabulary, the chat template compiles) and names the file in every
//! error; nothing read here is re-parsed at request time.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use super::chat_template::ChatTemplate;
use super::error::LoadError;
use super::tokenizer::Tokenizer;

pub const MODEL_FILE: &str = "model.onnx";
pub const TOKENIZER_FILE: &str = "tokenizer.json";
pub const TOKENIZER_CONFIG_FILE: &str = "tokenizer_config.json";
pub const CHAT_TEMPLATE_FILE: &str = "chat_template.jinja";
pub const GENERATION_CONFIG_FILE: &str = "generation_config.json";
pub const CONFIG_FILE: &str = "config.json";
/// The router prompt template a router was trained on, when not the shipped one: a router
/// reads the listing laid out as in training, so the template travels with the weights.
pub const ROUTER_PROMPT_FILE: &str = "router_prompt.jinja";
/// What a policy merged from a base and a LoRA adapter was built from (written by
/// `switchyard-train export --adapter`): each part's path and the SHA-256 of its weights, and
/// the base hash the adapter was trained on. `switchyard policy check` reports it and refuses
/// a model whose adapter was trained on another base.
pub const PROVENANCE_FILE: &str = "provenance.json";

/// The special tokens a chat template may refer to.
#[derive(Clone, Debug, Default)]
pub struct SpecialTokens {
    pub bos: Option<String>,
    pub eos: Option<String>,
    pub pad: Option<String>,
}

/// What `generation_config.json` (or, lacking it, the tokenizer config) says about stopping.
#[derive(Clone, Debug, Default)]
pub struct GenerationDefaults {
    /// Tokens that end a generation.
    pub stop_ids: Vec<u32>,
    pub pad_id: Option<u32>,
    pub stop_strings: Vec<String>,
    pub max_new_tokens: Option<usize>,
}

/// Shape facts from `config.json`, used where the graph leaves a dimension symbolic.
#[derive(Clone, Debug, Default)]
pub struct Architecture {
    pub max_position_embeddings: Option<usize>,
    pub num_key_value_heads: Option<usize>,
    pub head_dim: Option<usize>,
}

pub struct ModelDir {
    pub dir: PathBuf,
    /// `model.onnx` (checked to exist; ONNX Runtime reads it).
    pub model: PathBuf,
    pub tokenizer: Tokenizer,
    pub special: SpecialTokens,
    /// The chat template source, when the directory has one (compiled once at load to check it).
    pub chat_template: Option<String>,
    /// The file it came from.
    pub chat_template_file: Option<&'static str>,
    pub generation: GenerationDefaults,
    pub architecture: Architecture,
}

impl ModelDir {
    pub fn read(dir: &Path) -> Result<ModelDir, LoadError> {
        if !dir.is_dir() {
            return Err(LoadError::file(
                dir,
                "not a directory (a policy model directory holds model.onnx and tokenizer.json)",
            ));
        }
        let model = dir.join(MODEL_FILE);
        if !model.is_file() {
            return Err(LoadError::file(&model, "missing (export the policy with `switchyard-train export`)"));
        }
        let tokenizer = Tokenizer::load(&dir.join(TOKENIZER_FILE))?;

        let config_path = dir.join(TOKENIZER_CONFIG_FILE);
        let tokenizer_config = read_json::<TokenizerConfig>(&config_path)?.unwrap_or_default();
        let special = SpecialTokens {
            bos: token_field(&config_path, "bos_token", &tokenizer_config.bos_token)?,
            eos: token_field(&config_path, "eos_token", &tokenizer_config.eos_token)?,
            pad: token_field(&config_path, "pad_token", &tokenizer_config.pad_token)?,
        };
        let mut chat_template = chat_template_field(&config_path, &tokenizer_config.chat_template)?;
        let mut chat_template_file = chat_template.as_ref().map(|_| TOKENIZER_CONFIG_FILE);
        if chat_template.is_none() {
            let path = dir.join(CHAT_TEMPLATE_FILE);
            if path.is_file() {
                let text =
                    std::fs::read_to_string(&path).map_err(|e| LoadError::file(&path, format!("cannot read: {e}")))?;
                chat_template = Some(text);
                chat_template_file = Some(CHAT_TEMPLATE_FILE);
            }
        }
        if let Some(source) = &chat_template {
            ChatTemplate::new(source, special.bos.as_deref().unwrap_or(""), special.eos.as_deref().unwrap_or(""))
                .map_err(|e| LoadError::file(&config_path, format!("chat_template does not compile: {e}")))?;
        }

        let generation_path = dir.join(GENERATION_CONFIG_FILE);
        let generation = match read_json::<GenerationConfig>(&generation_path)? {
            Some(g) => generation_defaults(&generation_path, g, &tokenizer)?,
            None => GenerationDefaults {
                // Without a generation config, the tokenizer's end-of-sequence token stops.
                stop_ids: special.eos.as_deref().and_then(|t| tokenizer.token_to_id(t)).into_iter().collect(),
                pad_id: special.pad.as_deref().and_then(|t| tokenizer.token_to_id(t)),
                ..GenerationDefaults::default()
            },
        };

        let architecture_path = dir.join(CONFIG_FILE);
        let architecture = read_json::<ArchitectureConfig>(&architecture_path)?
            .map(|c| Architecture {
                max_position_embeddings: c.max_position_embeddings,
                num_key_value_heads: c.num_key_value_heads,
                head_dim: c.head_dim.or(match (c.hidden_size, c.num_attention_heads) {
                    (Some(h), Some(n)) if n > 0 => Some(h / n),
                    _ => None,
                }),
            })
            .unwrap_or_default();

        Ok(ModelDir {
            dir: dir.to_path_buf(),
            model,
            tokenizer,
            special,
            chat_template,
            chat_template_file,
            generation,
            architecture,
        })
    }
}

#[derive(Default, Deserialize)]
struct TokenizerConfig {
    #[serde(default)]
    chat_template: Value,
    #[serde(default)]
    bos_token: Value,
    #[serde(default)]
    eos_token: Value,
    #[serde(default)]
    pad_token: Value,
}

#[derive(Deserialize)]
struct GenerationConfig {
    #[serde(default)]
    eos_token_id: Value,
    #[serde(default)]
    pad_token_id: Value,
    #[serde(default)]
    stop_strings: Value,
    #[serde(default)]
    max_new_tokens: Value,
}

#[derive(Deserialize)]
struct ArchitectureConfig {
    max_position_embeddings: Option<usize>,
    num_key_value_heads: Option<usize>,
    num_attention_heads: Option<usize>,
    hidden_size: Option<usize>,
    head_dim: Option<usize>,
}

/// Parse `path` as `T`; `None` when the file does not exist.
fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, LoadError> {
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).map_err(|e| LoadError::file(path, format!("cannot read: {e}")))?;
    serde_json::from_str(&text).map(Some).map_err(|e| LoadError::file(path, format!("invalid JSON: {e}")))
}

/// A special token field: a string, `{"content": "..."}` (an AddedToken), or null.
fn token_field(path: &Path, field: &str, value: &Value) -> Result<Option<String>, LoadError> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        Value::Object(o) => match o.get("content") {
            Some(Value::String(s)) => Ok(Some(s.clone())),
            _ => Err(LoadError::file(path, format!("{field}: an object token needs a string `content`"))),
        },
        other => Err(LoadError::file(path, format!("{field}: expected a string or {{\"content\": ...}}, got {other}"))),
    }
}

/// `chat_template`: a string, or a list of `{"name", "template"}` (the one named `default`).
fn chat_template_field(path: &Path, value: &Value) -> Result<Option<String>, LoadError> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        Value::Array(items) => {
            let named = |name: &str| {
                items.iter().find(|t| t.get("name").and_then(Value::as_str) == Some(name))?.get("template")?.as_str()
            };
            match named("default") {
                Some(t) => Ok(Some(t.to_string())),
                None => Err(LoadError::file(path, "chat_template: a list of templates needs one named `default`")),
            }
        }
        other => Err(LoadError::file(path, format!("chat_template: expected a string, got {other}"))),
    }
}

fn generation_defaults(
    path: &Path,
    config: GenerationConfig,
    tokenizer: &Tokenizer,
) -> Result<GenerationDefaults, LoadError> {
    let vocab = tokenizer.vocab_size();
    let id = |field: &str, v: &Value| -> Result<u32, LoadError> {
        v.as_u64().and_then(|i| u32::try_from(i).ok()).filter(|&i| (i as usize) < vocab).ok_or_else(|| {
            LoadError::file(path, format!("{field}: {v} is not a token id of this vocabulary ({vocab} tokens)"))
        })
    };
    let stop_ids = match &config.eos_token_id {
        Value::Null => Vec::new(),
        Value::Array(ids) => ids.iter().map(|v| id("eos_token_id", v)).collect::<Result<_, _>>()?,
        v => vec![id("eos_token_id", v)?],
    };
    let pad_id = match &config.pad_token_id {
        Value::Null => None,
        v => Some(id("pad_token_id", v)?),
    };
    let stop_strings = match &config.stop_strings {
        Value::Null => Vec::new(),
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .map(|v| v.as_str().filter(|s| !s.is_empty()).map(String::from))
            .collect::<Option<_>>()
            .ok_or_else(|| LoadError::file(path, "stop_strings: expected non-empty strings"))?,
        other => return Err(LoadError::file(path, format!("stop_strings: expected a list of strings, got {other}"))),
    };
    let max_new_tokens =
        match &config.max_new_tokens {
            Value::Null => None,
            v => Some(v.as_u64().filter(|&n| n > 0).map(|n| n as usize).ok_or_else(|| {
                LoadError::file(path, format!("max_new_tokens: expected a positive integer, got {v}"))
            })?),
        };
    Ok(GenerationDefaults { stop_ids, pad_id, stop_strings, max_new_tokens })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn token_fields_are_strings_objects_or_null() {
        let p = Path::new("tokenizer_config.json");
        assert_eq!(token_field(p, "eos_token", &json!("<|im_end|>")).unwrap().as_deref(), Some("<|im_end|>"));
        assert_eq!(
            token_field(p, "eos_token", &json!({"content": "</s>", "lstrip": false})).unwrap().as_deref(),
            Some("</s>")
        );
        assert_eq!(token_field(p, "bos_token", &Value::Null).unwrap(), None);
        let err = token_field(p, "pad_token", &json!(7)).unwrap_err().to_string();
        assert!(err.contains("tokenizer_config.json") && err.contains("pad_token"), "{err}");
    }

    #[test]
    fn a_template_list_uses_the_default_one() {
        let p = Path::new("tokenizer_config.json");
        let list = json!([{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}]);
        assert_eq!(chat_template_field(p, &list).unwrap().as_deref(), Some("D"));
        assert!(chat_template_field(p, &json!([{"name": "tool_use", "template": "T"}])).is_err());
    }
}
