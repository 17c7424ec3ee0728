//! `switchyard-train import-gguf`: a llama.cpp GGUF file (Llama architecture)
//! becomes a standard Hugging Face snapshot that the rest of the pipeline
//! loads like any other: `config.json` (LlamaForCausalLM), `model.safetensors`
//! (float32), `tokenizer.json`, `tokenizer_config.json` (with the chat
//! template) and `generation_config.json`.
//!
//! The format is read, and its blocks dequantised, by `candle-core`'s GGUF
//! reader (Hugging Face's ML crate), not by hand here.
//!
//! Invariants:
//! - Only F32, F16, Q8_0, Q4_0 and Q4_1 tensors are imported; any other type
//!   is an error naming the tensor and its type.
//! - llama.cpp's converter permutes the rows of the query and key projections
//!   for its rotary layout (pairs interleaved); they are permuted back, so the
//!   weights are the Hugging Face layout (halves rotated).
//! - The tokenizer is byte-level BPE over the GGUF's tokens and merges, with
//!   the pre-tokenisation llama.cpp names in `tokenizer.ggml.pre` (`smollm`:
//!   digits one by one, then the GPT-2 split); control tokens are special.
//! - An import is written to a temporary directory beside `out` and renamed
//!   into place, so a finished directory is always whole.

use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use candle_core::quantized::GgmlDType;
use candle_core::quantized::gguf_file::{Content, Value};
use serde_json::{Value as Json, json};

use crate::model::Config;

/// Why an import failed; every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("{path}: tensor `{tensor}` has type {dtype}; only F32, F16, Q8_0, Q4_0 and Q4_1 are imported")]
    UnsupportedType { path: PathBuf, tensor: String, dtype: String },
    #[error("{path}: {message}")]
    Format { path: PathBuf, message: String },
    #[error("{path}: cannot write: {message}")]
    Write { path: PathBuf, message: String },
}

/// What an import produced.
#[derive(Debug)]
pub struct Imported {
    pub config: Config,
    pub tensors: usize,
    pub parameters: usize,
    pub vocab: usize,
}

const SUPPORTED: [GgmlDType; 5] = [GgmlDType::F32, GgmlDType::F16, GgmlDType::Q8_0, GgmlDType::Q4_0, GgmlDType::Q4_1];

/// Read `gguf` and write a Hugging Face snapshot into `out` (replacing it).
pub fn import(gguf: &Path, out: &Path) -> Result<Imported, ImportError> {
    let read = |message: String| ImportError::Read { path: gguf.to_path_buf(), message };
    let format = |message: String| ImportError::Format { path: gguf.to_path_buf(), message };
    let mut reader = BufReader::new(File::open(gguf).map_err(|e| read(e.to_string()))?);
    let content = Content::read(&mut reader).map_err(|e| read(e.to_string()))?;
    let meta = Metadata { map: &content.metadata, path: gguf };

    let arch = meta.string("general.architecture")?;
    if arch != "llama" {
        return Err(format(format!("architecture `{arch}` is not supported (only `llama`)")));
    }
    for (name, info) in &content.tensor_infos {
        if !SUPPORTED.contains(&info.ggml_dtype) {
            return Err(ImportError::UnsupportedType {
                path: gguf.to_path_buf(),
                tensor: name.clone(),
                dtype: format!("{:?}", info.ggml_dtype),
            });
        }
    }
    let tokens = meta.strings("tokenizer.ggml.tokens")?;
    let config = config(&meta, tokens.len(), content.tensor_infos.contains_key("output.weight"))?;

    // Tensors, dequantised to f32 and renamed; q/k rows permuted back.
    let mut names: Vec<&String> = content.tensor_infos.keys().collect();
    names.sort();
    let mut tensors = Vec::with_capacity(names.len());
    let mut parameters = 0;
    for name in names {
        let hf = hf_name(name).ok_or_else(|| format(format!("tensor `{name}` has no Llama equivalent")))?;
        let q =
            content.tensor(&mut reader, name, &candle_core::Device::Cpu).map_err(|e| read(format!("{name}: {e}")))?;
        let dims: Vec<i64> = q.shape().dims().iter().map(|&d| d as i64).collect();
        let values = q
            .dequantize(&candle_core::Device::Cpu)
            .and_then(|t| t.to_dtype(candle_core::DType::F32))
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(|e| read(format!("{name}: {e}")))?;
        let values = if name.ends_with("attn_q.weight") {
            unpermute(&values, &dims, config.num_attention_heads).map_err(format)?
        } else if name.ends_with("attn_k.weight") {
            unpermute(&values, &dims, config.num_key_value_heads).map_err(format)?
        } else {
            values
        };
        parameters += values.len();
        tensors.push((hf, tch::Tensor::from_slice(&values).reshape(&dims)));
    }

    let staging = out.with_extension("importing");
    let write = |path: &Path, message: String| ImportError::Write { path: path.to_path_buf(), message };
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).map_err(|e| write(&staging, e.to_string()))?;
    let weights = staging.join("model.safetensors");
    tch::Tensor::write_safetensors(&tensors, &weights).map_err(|e| write(&weights, e.to_string()))?;
    let files = [
        ("config.json", config_json(&config)),
        ("tokenizer.json", tokenizer_json(&meta, &tokens)?),
        ("tokenizer_config.json", tokenizer_config_json(&meta, &tokens)?),
        ("generation_config.json", generation_config_json(&config)),
    ];
    for (file, value) in files {
        let path = staging.join(file);
        let text = serde_json::to_string_pretty(&value).map_err(|e| write(&path, e.to_string()))?;
        std::fs::write(&path, text + "\n").map_err(|e| write(&path, e.to_string()))?;
    }
    if out.exists() {
        std::fs::remove_dir_all(out).map_err(|e| write(out, e.to_string()))?;
    }
    std::fs::rename(&staging, out).map_err(|e| write(out, e.to_string()))?;
    Ok(Imported { config, tensors: tensors.len(), parameters, vocab: tokens.len() })
}

/// Typed access to GGUF metadata, with errors naming the key and the file.
struct Metadata<'a> {
    map: &'a HashMap<String, Value>,
    path: &'a Path,
}

impl Metadata<'_> {
    fn error(&self, key: &str, what: &str) -> ImportError {
        ImportError::Format { path: self.path.to_path_buf(), message: format!("metadata `{key}`: {what}") }
    }

    fn get(&self, key: &str) -> Result<&Value, ImportError> {
        self.map.get(key).ok_or_else(|| self.error(key, "missing"))
    }

    fn string(&self, key: &str) -> Result<String, ImportError> {
        self.get(key)?.to_string().cloned().map_err(|_| self.error(key, "not a string"))
    }

    fn optional_string(&self, key: &str) -> Option<String> {
        self.map.get(key).and_then(|v| v.to_string().ok().cloned())
    }

    fn integer(&self, key: &str) -> Result<i64, ImportError> {
        let v = self.get(key)?;
        v.to_u32()
            .map(i64::from)
            .or_else(|_| v.to_i32().map(i64::from))
            .or_else(|_| v.to_u64().map(|x| x as i64))
            .or_else(|_| v.to_i64())
            .map_err(|_| self.error(key, "not an integer"))
    }

    fn float(&self, key: &str) -> Result<f64, ImportError> {
        let v = self.get(key)?;
        // An f32 is read as the decimal it prints as (1e-5, not 9.99999974738e-6).
        v.to_f32()
            .map(|x| x.to_string().parse().unwrap_or(f64::from(x)))
            .or_else(|_| v.to_f64())
            .map_err(|_| self.error(key, "not a number"))
    }

    fn strings(&self, key: &str) -> Result<Vec<String>, ImportError> {
        let list = self.get(key)?.to_vec().map_err(|_| self.error(key, "not an array"))?;
        list.iter().map(|v| v.to_string().cloned().map_err(|_| self.error(key, "not an array of strings"))).collect()
    }

    fn integers(&self, key: &str) -> Result<Vec<i64>, ImportError> {
        let list = self.get(key)?.to_vec().map_err(|_| self.error(key, "not an array"))?;
        list.iter()
            .map(|v| v.to_i32().map(i64::from).or_else(|_| v.to_u32().map(i64::from)))
            .collect::<Result<_, _>>()
            .map_err(|_| self.error(key, "not an array of integers"))
    }
}

fn config(meta: &Metadata, vocab: usize, has_output: bool) -> Result<Config, ImportError> {
    let heads = meta.integer("llama.attention.head_count")?;
    let hidden = meta.integer("llama.embedding_length")?;
    let head_dim = meta.integer("llama.rope.dimension_count").unwrap_or(hidden / heads.max(1));
    Ok(Config {
        model_type: "llama".into(),
        vocab_size: vocab as i64,
        hidden_size: hidden,
        intermediate_size: meta.integer("llama.feed_forward_length")?,
        num_hidden_layers: meta.integer("llama.block_count")?,
        num_attention_heads: heads,
        num_key_value_heads: meta.integer("llama.attention.head_count_kv").unwrap_or(heads),
        head_dim: (head_dim * heads != hidden).then_some(head_dim),
        rms_norm_eps: meta.float("llama.attention.layer_norm_rms_epsilon")?,
        rope_theta: meta.float("llama.rope.freq_base").unwrap_or(10_000.0),
        max_position_embeddings: meta.integer("llama.context_length")?,
        tie_word_embeddings: !has_output,
        attention_bias: Some(false),
        bos_token_id: meta.integer("tokenizer.ggml.bos_token_id").ok(),
        eos_token_id: meta.integer("tokenizer.ggml.eos_token_id").ok(),
    })
}

/// The Hugging Face name of a llama.cpp tensor.
fn hf_name(name: &str) -> Option<String> {
    let fixed = match name {
        "token_embd.weight" => Some("model.embed_tokens.weight"),
        "output_norm.weight" => Some("model.norm.weight"),
        "output.weight" => Some("lm_head.weight"),
        _ => None,
    };
    if let Some(fixed) = fixed {
        return Some(fixed.to_string());
    }
    let rest = name.strip_prefix("blk.")?;
    let (layer, part) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let hf = match part {
        "attn_q.weight" => "self_attn.q_proj.weight",
        "attn_k.weight" => "self_attn.k_proj.weight",
        "attn_v.weight" => "self_attn.v_proj.weight",
        "attn_output.weight" => "self_attn.o_proj.weight",
        "ffn_gate.weight" => "mlp.gate_proj.weight",
        "ffn_up.weight" => "mlp.up_proj.weight",
        "ffn_down.weight" => "mlp.down_proj.weight",
        "attn_norm.weight" => "input_layernorm.weight",
        "ffn_norm.weight" => "post_attention_layernorm.weight",
        _ => return None,
    };
    Some(format!("model.layers.{layer}.{hf}"))
}

/// Undo llama.cpp's rotary permutation of a q or k projection (`rows` =
/// heads x head_dim, row-major): within each head, GGUF row `2i + j` is
/// Hugging Face row `j * head_dim / 2 + i`.
pub fn unpermute(values: &[f32], dims: &[i64], heads: i64) -> Result<Vec<f32>, String> {
    let [rows, cols] = dims else { return Err(format!("a q/k projection must be a matrix, got shape {dims:?}")) };
    let (rows, cols, heads) = (*rows as usize, *cols as usize, heads as usize);
    if heads == 0 || rows % heads != 0 || (rows / heads) % 2 != 0 || values.len() != rows * cols {
        return Err(format!("a q/k projection of shape {dims:?} does not split into {heads} heads of even size"));
    }
    let (head_dim, half) = (rows / heads, rows / heads / 2);
    let mut out = vec![0.0; values.len()];
    for h in 0..heads {
        for i in 0..half {
            for j in 0..2 {
                let src = (h * head_dim + 2 * i + j) * cols;
                let dst = (h * head_dim + j * half + i) * cols;
                out[dst..dst + cols].copy_from_slice(&values[src..src + cols]);
            }
        }
    }
    Ok(out)
}

fn config_json(config: &Config) -> Json {
    let mut value = serde_json::to_value(config).unwrap_or_else(|_| json!({}));
    if let Some(map) = value.as_object_mut() {
        map.insert("architectures".into(), json!(["LlamaForCausalLM"]));
        map.insert("hidden_act".into(), json!("silu"));
        map.insert("torch_dtype".into(), json!("float32"));
        map.insert("mlp_bias".into(), json!(false));
    }
    value
}

/// Token type 3 in `tokenizer.ggml.token_type` marks a control token.
const CONTROL: i64 = 3;

fn special_tokens(meta: &Metadata, tokens: &[String]) -> Result<Vec<(usize, String)>, ImportError> {
    let types = meta.integers("tokenizer.ggml.token_type").unwrap_or_default();
    // A malformed file may list more types than tokens: those have no token to mark.
    Ok(types
        .iter()
        .zip(tokens)
        .enumerate()
        .filter(|(_, (t, _))| **t == CONTROL)
        .map(|(i, (_, token))| (i, token.clone()))
        .collect())
}

/// The pre-tokeniser llama.cpp names in `tokenizer.ggml.pre`, as Hugging
/// Face's `tokenizers` writes it.
fn pre_tokenizer(pre: &str) -> Result<Json, String> {
    let byte_level = json!({ "type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true });
    match pre {
        // SmolLM: every digit is its own pre-token, then the GPT-2 split.
        "smollm" => Ok(json!({ "type": "Sequence", "pretokenizers": [
            { "type": "Digits", "individual_digits": true }, byte_level,
        ] })),
        "gpt2" | "default" => Ok(byte_level),
        other => Err(format!("pre-tokeniser `{other}` is not supported (smollm, gpt2)")),
    }
}

fn tokenizer_json(meta: &Metadata, tokens: &[String]) -> Result<Json, ImportError> {
    let model = meta.string("tokenizer.ggml.model")?;
    if model != "gpt2" {
        return Err(
            meta.error("tokenizer.ggml.model", &format!("`{model}` is not supported (only byte-level BPE, `gpt2`)"))
        );
    }
    let pre = meta.optional_string("tokenizer.ggml.pre").unwrap_or_else(|| "gpt2".into());
    let pre = pre_tokenizer(&pre).map_err(|e| meta.error("tokenizer.ggml.pre", &e))?;
    let merges = meta.strings("tokenizer.ggml.merges")?;
    let vocab: serde_json::Map<String, Json> = tokens.iter().enumerate().map(|(i, t)| (t.clone(), json!(i))).collect();
    let added: Vec<Json> = special_tokens(meta, tokens)?
        .into_iter()
        .map(|(id, content)| {
            json!({ "id": id, "content": content, "single_word": false, "lstrip": false, "rstrip": false,
                    "normalized": false, "special": true })
        })
        .collect();
    Ok(json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": pre,
        "post_processor": { "type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true },
        "decoder": { "type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true },
        "model": {
            "type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
            "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
            "vocab": vocab, "merges": merges,
        },
    }))
}

fn tokenizer_config_json(meta: &Metadata, tokens: &[String]) -> Result<Json, ImportError> {
    let token = |key: &str| meta.integer(key).ok().and_then(|id| tokens.get(id as usize)).cloned();
    let mut config = json!({
        "tokenizer_class": "GPT2Tokenizer",
        "add_bos_token": false,
        "add_prefix_space": false,
        "clean_up_tokenization_spaces": false,
        "model_max_length": meta.integer("llama.context_length")?,
        "additional_special_tokens": special_tokens(meta, tokens)?.into_iter().map(|(_, t)| t).collect::<Vec<_>>(),
    });
    for (field, key) in [
        ("bos_token", "tokenizer.ggml.bos_token_id"),
        ("eos_token", "tokenizer.ggml.eos_token_id"),
        ("pad_token", "tokenizer.ggml.padding_token_id"),
        ("unk_token", "tokenizer.ggml.unknown_token_id"),
    ] {
        if let Some(t) = token(key) {
            config[field] = json!(t);
        }
    }
    if let Some(template) = meta.optional_string("tokenizer.chat_template") {
        config["chat_template"] = json!(template);
    }
    Ok(config)
}

fn generation_config_json(config: &Config) -> Json {
    json!({ "bos_token_id": config.bos_token_id, "eos_token_id": config.eos_token_id,
            "pad_token_id": config.eos_token_id, "do_sample": false })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpermute_inverts_llama_cpp_permutation() {
        // llama.cpp: w.reshape(heads, 2, half, cols).swapaxes(1, 2): row (h, j, i) -> (h, i, j).
        let (heads, head_dim, cols) = (3usize, 4usize, 2usize);
        let rows = heads * head_dim;
        let hf: Vec<f32> = (0..rows * cols).map(|x| x as f32).collect();
        let mut gguf = vec![0.0; hf.len()];
        for h in 0..heads {
            for j in 0..2 {
                for i in 0..head_dim / 2 {
                    let src = (h * head_dim + j * head_dim / 2 + i) * cols;
                    let dst = (h * head_dim + 2 * i + j) * cols;
                    gguf[dst..dst + cols].copy_from_slice(&hf[src..src + cols]);
                }
            }
        }
        assert_ne!(gguf, hf);
        assert_eq!(unpermute(&gguf, &[rows as i64, cols as i64], heads as i64).unwrap(), hf);
        assert!(unpermute(&gguf, &[rows as i64, cols as i64], 5).is_err());
        assert!(unpermute(&gguf, &[rows as i64 * cols as i64], 3).is_err());
    }

    use candle_core::quantized::QTensor;
    use candle_core::{Device, Tensor};

    /// A tiny Llama in GGUF, written here: 2 layers, hidden 32, 2 query heads
    /// and 1 key/value head of 16, FFN 64, a vocabulary of 4 bytes and 2
    /// control tokens; the projections stored as `types` cycles through.
    fn tiny_gguf(
        path: &Path,
        types: &[GgmlDType],
        extra: Option<(&str, GgmlDType)>,
    ) -> Vec<(String, Vec<f32>, Vec<usize>)> {
        let (hidden, ffn, heads, kv, head_dim, vocab) = (32usize, 64usize, 2usize, 1usize, 16usize, 6usize);
        let mut shapes: Vec<(String, Vec<usize>)> =
            vec![("token_embd.weight".into(), vec![vocab, hidden]), ("output_norm.weight".into(), vec![hidden])];
        for l in 0..2 {
            for (part, shape) in [
                ("attn_q", vec![heads * head_dim, hidden]),
                ("attn_k", vec![kv * head_dim, hidden]),
                ("attn_v", vec![kv * head_dim, hidden]),
                ("attn_output", vec![hidden, heads * head_dim]),
                ("ffn_gate", vec![ffn, hidden]),
                ("ffn_up", vec![ffn, hidden]),
                ("ffn_down", vec![hidden, ffn]),
                ("attn_norm", vec![hidden]),
                ("ffn_norm", vec![hidden]),
            ] {
                shapes.push((format!("blk.{l}.{part}.weight"), shape));
            }
        }
        if let Some((name, _)) = extra {
            shapes.push((name.to_string(), vec![4, 32]));
        }
        let mut qtensors = Vec::new();
        let mut expected = Vec::new();
        for (i, (name, shape)) in shapes.iter().enumerate() {
            let n: usize = shape.iter().product();
            let values: Vec<f32> = (0..n).map(|k| ((k * 7 + i * 13) % 23) as f32 / 11.0 - 1.0).collect();
            let dtype = match extra {
                Some((extra_name, dtype)) if extra_name == name => dtype,
                _ if shape.len() == 1 => GgmlDType::F32,
                _ => types[i % types.len()],
            };
            let tensor = Tensor::from_vec(values, shape.as_slice(), &Device::Cpu).unwrap();
            let q = QTensor::quantize(&tensor, dtype).unwrap();
            // What the file holds, as the format defines it (dequantised independently of the import).
            let stored = q.dequantize(&Device::Cpu).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            expected.push((name.clone(), stored, shape.clone()));
            qtensors.push((name.clone(), q));
        }
        let s = |x: &str| Value::String(x.into());
        let tokens = ["<|endoftext|>", "<|im_start|>", "a", "b", "ab", "\u{120}"];
        let metadata = vec![
            ("general.architecture", s("llama")),
            ("llama.block_count", Value::U32(2)),
            ("llama.context_length", Value::U32(256)),
            ("llama.embedding_length", Value::U32(hidden as u32)),
            ("llama.feed_forward_length", Value::U32(ffn as u32)),
            ("llama.attention.head_count", Value::U32(heads as u32)),
            ("llama.attention.head_count_kv", Value::U32(kv as u32)),
            ("llama.rope.freq_base", Value::F32(100000.0)),
            ("llama.rope.dimension_count", Value::U32(head_dim as u32)),
            ("llama.attention.layer_norm_rms_epsilon", Value::F32(1e-5)),
            ("tokenizer.ggml.model", s("gpt2")),
            ("tokenizer.ggml.pre", s("smollm")),
            ("tokenizer.ggml.tokens", Value::Array(tokens.iter().map(|t| s(t)).collect())),
            ("tokenizer.ggml.token_type", Value::Array([3, 3, 1, 1, 1, 1].iter().map(|&t| Value::I32(t)).collect())),
            ("tokenizer.ggml.merges", Value::Array(vec![s("a b")])),
            ("tokenizer.ggml.bos_token_id", Value::U32(1)),
            ("tokenizer.ggml.eos_token_id", Value::U32(0)),
            ("tokenizer.chat_template", s("{% for m in messages %}{{ m['content'] }}{% endfor %}")),
        ];
        let metadata: Vec<(&str, &Value)> = metadata.iter().map(|(k, v)| (*k, v)).collect();
        let tensors: Vec<(&str, &QTensor)> = qtensors.iter().map(|(n, q)| (n.as_str(), q)).collect();
        let mut file = std::fs::File::create(path).unwrap();
        candle_core::quantized::gguf_file::write(&mut file, &metadata, &tensors).unwrap();
        expected
    }

    #[test]
    fn every_supported_type_comes_back_as_the_stored_tensor_in_hugging_face_layout() {
        let dir = tempfile::tempdir().unwrap();
        let gguf = dir.path().join("tiny.gguf");
        let types = [GgmlDType::F32, GgmlDType::F16, GgmlDType::Q8_0, GgmlDType::Q4_0, GgmlDType::Q4_1];
        let expected = tiny_gguf(&gguf, &types, None);
        let out = dir.path().join("hf");
        let imported = import(&gguf, &out).unwrap();
        assert_eq!((imported.tensors, imported.vocab), (expected.len(), 6));
        assert!(imported.config.tie_word_embeddings, "no output.weight: the head is the embedding");
        assert_eq!((imported.config.num_attention_heads, imported.config.num_key_value_heads), (2, 1));
        assert_eq!(imported.config.rms_norm_eps, 1e-5);

        let weights: HashMap<String, tch::Tensor> =
            tch::Tensor::read_safetensors(out.join("model.safetensors")).unwrap().into_iter().collect();
        for (name, stored, shape) in &expected {
            let hf = hf_name(name).unwrap();
            let got = &weights[&hf];
            assert_eq!(got.size(), shape.iter().map(|&d| d as i64).collect::<Vec<_>>(), "{name}");
            let got: Vec<f32> = Vec::try_from(got.flatten(0, -1)).unwrap();
            let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
            let want = match name.as_str() {
                n if n.ends_with("attn_q.weight") => unpermute(stored, &dims, 2).unwrap(),
                n if n.ends_with("attn_k.weight") => unpermute(stored, &dims, 1).unwrap(),
                _ => stored.clone(),
            };
            assert_eq!(got, want, "{name} -> {hf}");
        }
        let config: Config = serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
        assert_eq!(config, imported.config);
        let tokenizer = tokenizers::Tokenizer::from_file(out.join("tokenizer.json")).unwrap();
        assert_eq!(tokenizer.get_vocab_size(true), 6);
        let ids = tokenizer.encode("<|im_start|>ab", false).unwrap().get_ids().to_vec();
        assert_eq!(ids, vec![1, 4], "control tokens are whole, `a b` merges");
        let tokenizer_config: Json =
            serde_json::from_str(&std::fs::read_to_string(out.join("tokenizer_config.json")).unwrap()).unwrap();
        assert_eq!(
            (tokenizer_config["bos_token"].as_str(), tokenizer_config["eos_token"].as_str()),
            (Some("<|im_start|>"), Some("<|endoftext|>"))
        );
        assert!(tokenizer_config["chat_template"].as_str().unwrap().contains("messages"));
        // Importing again replaces the snapshot whole.
        import(&gguf, &out).unwrap();
        assert!(!out.with_extension("importing").exists());
    }

    #[test]
    fn an_unsupported_type_is_an_error_naming_the_tensor_and_its_type() {
        let dir = tempfile::tempdir().unwrap();
        let gguf = dir.path().join("q5.gguf");
        tiny_gguf(&gguf, &[GgmlDType::F32], Some(("blk.0.extra.weight", GgmlDType::Q5_0)));
        let err = import(&gguf, &dir.path().join("hf")).unwrap_err().to_string();
        assert!(err.contains("blk.0.extra.weight") && err.contains("Q5_0"), "{err}");
        assert!(err.contains("q5.gguf"), "names the file: {err}");
        assert!(!dir.path().join("hf").exists(), "nothing is written");
    }

    #[test]
    fn names_map_to_llama() {
        assert_eq!(hf_name("blk.12.attn_q.weight").unwrap(), "model.layers.12.self_attn.q_proj.weight");
        assert_eq!(hf_name("blk.0.ffn_down.weight").unwrap(), "model.layers.0.mlp.down_proj.weight");
        assert_eq!(hf_name("token_embd.weight").unwrap(), "model.embed_tokens.weight");
        assert_eq!(hf_name("blk.x.attn_q.weight"), None);
        assert_eq!(hf_name("rope_freqs.weight"), None);
    }
}
