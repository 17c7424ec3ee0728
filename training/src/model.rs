//! The router policy: a decoder-only transformer of the Llama / Qwen2 family,
//! readable top to bottom.
//!
//! embed -> N x [RMSNorm -> grouped-query attention with rotary positions -> residual,
//!               RMSNorm -> SwiGLU MLP -> residual] -> RMSNorm -> LM head (optionally tied)
//!
//! Weights carry Hugging Face names (`model.layers.3.self_attn.q_proj.weight`), so a local
//! snapshot of Qwen2 or Llama loads into it unchanged and a checkpoint of ours is a valid
//! snapshot. The forward pass has the signature of the ONNX export (`export::onnx`): token ids,
//! a 0/1 attention mask over past + current tokens, position ids and the per-layer key/value
//! cache in, logits and the grown cache out — so the two can be compared logit for logit.
//!
//! A LoRA adapter ([`crate::lora`]) may be attached: each targeted projection then adds
//! `alpha / r * x A^T B^T` to its output, the base weights frozen. `merge_adapter` folds it
//! into the weights, which is how an adapted model is exported.
//!
//! Invariants:
//! - a masked key position contributes exactly nothing to an attended query (its score is
//!   `MASK_VALUE`, so its softmax weight underflows to zero); a fully masked query row (left
//!   padding) attends uniformly and is never read;
//! - the cache holds keys after rotary embedding, before grouped heads are repeated: one entry
//!   per layer of shape `[batch, kv_heads, past_len, head_dim]`, the optimum layout.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};

use crate::lora::LoraOptions;

/// Added to the attention score of a masked key (as Hugging Face does: the dtype's minimum,
/// finite, so a fully masked row stays finite).
pub const MASK_VALUE: f64 = f32::MIN as f64;

/// The architecture, in the field names of Hugging Face's `config.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// `qwen2` or `llama`; Qwen2 puts biases on the q/k/v projections.
    pub model_type: String,
    pub vocab_size: i64,
    pub hidden_size: i64,
    pub intermediate_size: i64,
    pub num_hidden_layers: i64,
    pub num_attention_heads: i64,
    pub num_key_value_heads: i64,
    /// Defaults to `hidden_size / num_attention_heads`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_dim: Option<i64>,
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    #[serde(default = "default_theta")]
    pub rope_theta: f64,
    #[serde(default = "default_max_positions")]
    pub max_position_embeddings: i64,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// Llama's switch for q/k/v/o biases; absent for Qwen2 (which has q/k/v biases).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attention_bias: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bos_token_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eos_token_id: Option<i64>,
}

fn default_eps() -> f64 {
    1e-6
}
fn default_theta() -> f64 {
    10_000.0
}
fn default_max_positions() -> i64 {
    4096
}

/// Why a model could not be built or loaded.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error("invalid model config: {0}")]
    Config(String),
    #[error("{path}: weight `{name}` has shape {found:?}, the config implies {expected:?}")]
    Shape { path: String, name: String, expected: Vec<i64>, found: Vec<i64> },
    #[error("{dir}: weights missing from the snapshot: {names}")]
    Missing { dir: String, names: String },
    #[error(transparent)]
    Torch(#[from] tch::TchError),
}

impl Config {
    /// The tiny configuration trained from scratch on the simulated world.
    pub fn tiny(vocab_size: i64) -> Config {
        Config {
            model_type: "qwen2".into(),
            vocab_size,
            hidden_size: 128,
            intermediate_size: 384,
            num_hidden_layers: 4,
            num_attention_heads: 4,
            num_key_value_heads: 2,
            head_dim: None,
            rms_norm_eps: 1e-6,
            rope_theta: 10_000.0,
            max_position_embeddings: 2048,
            tie_word_embeddings: true,
            attention_bias: None,
            bos_token_id: None,
            eos_token_id: None,
        }
    }

    pub fn head_dim(&self) -> i64 {
        self.head_dim.unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }

    pub fn qkv_bias(&self) -> bool {
        self.attention_bias.unwrap_or(self.model_type == "qwen2")
    }

    pub fn validate(&self) -> Result<(), ModelError> {
        let bad = |m: String| Err(ModelError::Config(m));
        if !matches!(self.model_type.as_str(), "qwen2" | "llama") {
            return bad(format!("model_type `{}` is not supported (qwen2 or llama)", self.model_type));
        }
        for (name, v) in [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("num_key_value_heads", self.num_key_value_heads),
            ("head_dim", self.head_dim()),
        ] {
            if v <= 0 {
                return bad(format!("{name} must be positive, got {v}"));
            }
        }
        if self.num_attention_heads % self.num_key_value_heads != 0 {
            return bad(format!(
                "num_attention_heads ({}) must be a multiple of num_key_value_heads ({})",
                self.num_attention_heads, self.num_key_value_heads
            ));
        }
        if self.head_dim() % 2 != 0 {
            return bad(format!("head_dim must be even for rotary embeddings, got {}", self.head_dim()));
        }
        Ok(())
    }

    /// Parameter count (tied embeddings counted once).
    pub fn parameters(&self) -> i64 {
        let (h, d, kv) = (self.hidden_size, self.head_dim(), self.num_key_value_heads);
        let q = self.num_attention_heads * d;
        let bias = if self.qkv_bias() { q + 2 * kv * d } else { 0 };
        let layer = h * q + 2 * h * kv * d + q * h + bias + 3 * h * self.intermediate_size + 2 * h;
        let embed = self.vocab_size * h;
        embed + self.num_hidden_layers * layer + h + if self.tie_word_embeddings { 0 } else { embed }
    }
}

/// One layer's cached keys and values, `[batch, kv_heads, len, head_dim]` each.
pub type LayerCache = (Tensor, Tensor);

fn linear(vs: nn::Path, input: i64, output: i64, bias: bool) -> nn::Linear {
    nn::linear(vs, input, output, nn::LinearConfig { bias, ..Default::default() })
}

/// What every layer of one forward pass shares.
struct Pass {
    /// cos and sin of the positions, in the compute dtype.
    rotary: (Tensor, Tensor),
    /// The additive attention bias, in the compute dtype; `None`: causal attention over every
    /// key (no padding before a real token), which libtorch runs in its fused causal kernel.
    bias: Option<Tensor>,
    /// Training (LoRA dropout on) rather than generating or scoring.
    train: bool,
}

/// A LoRA update of one projection: `scale * dropout(x) A^T B^T` (see [`crate::lora`]).
#[derive(Debug)]
struct LoraPair {
    /// `[rank, in]`
    a: Tensor,
    /// `[out, rank]`
    b: Tensor,
    scale: f64,
    dropout: f64,
}

/// A linear projection with an optional LoRA update. `name` is its Hugging Face module path
/// (`model.layers.3.self_attn.q_proj`), the stem of its adapter tensors' names.
#[derive(Debug)]
struct Proj {
    linear: nn::Linear,
    name: String,
    lora: Option<LoraPair>,
}

impl Proj {
    fn new(vs: nn::Path, name: String, input: i64, output: i64, bias: bool) -> Proj {
        Proj { linear: linear(vs, input, output, bias), name, lora: None }
    }

    fn forward(&self, x: &Tensor, pass: &Pass) -> Tensor {
        let y = self.linear.forward(x);
        match &self.lora {
            None => y,
            Some(l) => {
                let x = if pass.train && l.dropout > 0.0 { x.dropout(l.dropout, true) } else { x.shallow_clone() };
                let kind = x.kind();
                // f32 adapter weights, cast to the compute dtype (autocast's rule); the cast's
                // backward hands their gradients back in f32.
                y + x.matmul(&l.a.to_kind(kind).tr()).matmul(&l.b.to_kind(kind).tr()) * l.scale
            }
        }
    }

    /// The projection's module name (`q_proj`), as LoRA's `target_modules` lists it.
    fn module(&self) -> &str {
        self.name.rsplit('.').next().unwrap_or("")
    }
}

/// Root-mean-square normalisation with a learned scale (no mean subtraction, no bias).
#[derive(Debug)]
struct RmsNorm {
    weight: Tensor,
    eps: f64,
}

impl RmsNorm {
    fn new(vs: nn::Path, size: i64, eps: f64) -> RmsNorm {
        RmsNorm { weight: vs.ones("weight", &[size]), eps }
    }

    /// Computed in float32 whatever the input's dtype (as Hugging Face does), then cast back.
    fn forward(&self, x: &Tensor) -> Tensor {
        let kind = x.kind();
        let x = x.to_kind(Kind::Float);
        let variance = x.pow_tensor_scalar(2).mean_dim(-1, true, Kind::Float);
        (x * (variance + self.eps).rsqrt()).to_kind(kind) * &self.weight
    }
}

/// Rotary position embedding (the "rotate half" form Llama and Qwen2 use).
#[derive(Debug)]
struct Rotary {
    /// `[head_dim / 2]`: theta^(-2i/d).
    inv_freq: Tensor,
}

impl Rotary {
    fn new(config: &Config, device: Device) -> Rotary {
        let d = config.head_dim();
        let inv_freq: Vec<f32> =
            (0..d / 2).map(|i| (1.0 / config.rope_theta.powf(2.0 * i as f64 / d as f64)) as f32).collect();
        let inv_freq = Tensor::from_slice(&inv_freq).to_device(device);
        Rotary { inv_freq }
    }

    /// cos and sin for `position_ids` `[batch, seq]`, shaped `[batch, 1, seq, head_dim]`.
    fn cos_sin(&self, position_ids: &Tensor) -> (Tensor, Tensor) {
        let angles = position_ids.to_kind(Kind::Float).unsqueeze(-1) * &self.inv_freq;
        let angles = Tensor::cat(&[&angles, &angles], -1).unsqueeze(1);
        (angles.cos(), angles.sin())
    }
}

fn rotate_half(x: &Tensor) -> Tensor {
    let half = x.size().last().copied().unwrap_or(0) / 2;
    Tensor::cat(&[-x.narrow(-1, half, half), x.narrow(-1, 0, half)], -1)
}

fn apply_rotary(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Tensor {
    x * cos + rotate_half(x) * sin
}

/// Grouped-query self-attention: `num_key_value_heads` key/value heads shared by groups of
/// query heads.
#[derive(Debug)]
struct Attention {
    q_proj: Proj,
    k_proj: Proj,
    v_proj: Proj,
    o_proj: Proj,
    heads: i64,
    kv_heads: i64,
    head_dim: i64,
}

impl Attention {
    fn new(vs: nn::Path, name: &str, c: &Config) -> Attention {
        let (h, d) = (c.hidden_size, c.head_dim());
        let bias = c.qkv_bias();
        let o_bias = c.model_type == "llama" && c.attention_bias == Some(true);
        let proj = |m: &str, input, output, bias| Proj::new(&vs / m, format!("{name}.{m}"), input, output, bias);
        Attention {
            q_proj: proj("q_proj", h, c.num_attention_heads * d, bias),
            k_proj: proj("k_proj", h, c.num_key_value_heads * d, bias),
            v_proj: proj("v_proj", h, c.num_key_value_heads * d, bias),
            o_proj: proj("o_proj", c.num_attention_heads * d, h, o_bias),
            heads: c.num_attention_heads,
            kv_heads: c.num_key_value_heads,
            head_dim: d,
        }
    }

    fn forward(&self, x: &Tensor, pass: &Pass, past: Option<&LayerCache>) -> (Tensor, LayerCache) {
        let (b, t, _) = x.size3().unwrap_or((0, 0, 0));
        let split = |y: Tensor, heads: i64| y.view([b, t, heads, self.head_dim]).transpose(1, 2);
        let q = split(self.q_proj.forward(x, pass), self.heads);
        let k = split(self.k_proj.forward(x, pass), self.kv_heads);
        let v = split(self.v_proj.forward(x, pass), self.kv_heads);
        let (cos, sin) = &pass.rotary;
        let q = apply_rotary(&q, cos, sin);
        let k = apply_rotary(&k, cos, sin);
        let (k, v) = match past {
            Some((pk, pv)) => (Tensor::cat(&[pk, &k], 2), Tensor::cat(&[pv, &v], 2)),
            None => (k, v),
        };
        let present = (k.shallow_clone(), v.shallow_clone());
        // softmax(q k^T / sqrt(d) + bias) v, each key/value head serving `heads / kv_heads`
        // consecutive query heads.
        let y = match &pass.bias {
            // Training batches: libtorch's fused causal kernel.
            None => Tensor::scaled_dot_product_attention(&q, &k, &v, None::<Tensor>, 0.0, true, None, true),
            // With a mask libtorch falls back to its reference kernel, which copies every key
            // and value head once per query head it serves — at each decoding step, the whole
            // cache (measured: most of a 135M router's decoding time). Grouping the query heads
            // by the key/value head they share reads the cache as it is.
            Some(bias) => {
                let group = self.heads / self.kv_heads;
                let (past_len, d) = (k.size()[2], self.head_dim);
                let q = q.reshape([b, self.kv_heads, group * t, d]);
                let scores = q.matmul(&k.transpose(-1, -2)) / (d as f64).sqrt();
                let scores = scores.view([b, self.kv_heads, group, t, past_len]) + bias.unsqueeze(2);
                let weights = scores.softmax(-1, scores.kind()).view([b, self.kv_heads, group * t, past_len]);
                weights.matmul(&v).view([b, self.heads, t, d])
            }
        };
        let y = y.transpose(1, 2).reshape([b, t, self.heads * self.head_dim]);
        (self.o_proj.forward(&y, pass), present)
    }

    fn projections_mut(&mut self) -> [&mut Proj; 4] {
        [&mut self.q_proj, &mut self.k_proj, &mut self.v_proj, &mut self.o_proj]
    }
}

/// The SwiGLU feed-forward block: down(silu(gate(x)) * up(x)).
#[derive(Debug)]
struct Mlp {
    gate_proj: Proj,
    up_proj: Proj,
    down_proj: Proj,
}

impl Mlp {
    fn new(vs: nn::Path, name: &str, c: &Config) -> Mlp {
        let (h, i) = (c.hidden_size, c.intermediate_size);
        let proj = |m: &str, input, output| Proj::new(&vs / m, format!("{name}.{m}"), input, output, false);
        Mlp { gate_proj: proj("gate_proj", h, i), up_proj: proj("up_proj", h, i), down_proj: proj("down_proj", i, h) }
    }

    fn forward(&self, x: &Tensor, pass: &Pass) -> Tensor {
        self.down_proj.forward(&(self.gate_proj.forward(x, pass).silu() * self.up_proj.forward(x, pass)), pass)
    }

    fn projections_mut(&mut self) -> [&mut Proj; 3] {
        [&mut self.gate_proj, &mut self.up_proj, &mut self.down_proj]
    }
}

#[derive(Debug)]
struct Block {
    input_layernorm: RmsNorm,
    self_attn: Attention,
    post_attention_layernorm: RmsNorm,
    mlp: Mlp,
}

impl Block {
    fn new(vs: nn::Path, name: &str, c: &Config) -> Block {
        Block {
            input_layernorm: RmsNorm::new(&vs / "input_layernorm", c.hidden_size, c.rms_norm_eps),
            self_attn: Attention::new(&vs / "self_attn", &format!("{name}.self_attn"), c),
            post_attention_layernorm: RmsNorm::new(&vs / "post_attention_layernorm", c.hidden_size, c.rms_norm_eps),
            mlp: Mlp::new(&vs / "mlp", &format!("{name}.mlp"), c),
        }
    }

    fn forward(&self, x: &Tensor, pass: &Pass, past: Option<&LayerCache>) -> (Tensor, LayerCache) {
        let (attended, present) = self.self_attn.forward(&self.input_layernorm.forward(x), pass, past);
        let x = x + attended;
        let x = &x + self.mlp.forward(&self.post_attention_layernorm.forward(&x), pass);
        (x, present)
    }

    fn projections_mut(&mut self) -> impl Iterator<Item = &mut Proj> {
        let Block { self_attn, mlp, .. } = self;
        self_attn.projections_mut().into_iter().chain(mlp.projections_mut())
    }
}

/// The decoder. Owns its variables' store.
#[derive(Debug)]
pub struct Transformer {
    pub config: Config,
    pub vs: nn::VarStore,
    embed_tokens: Tensor,
    layers: Vec<Block>,
    norm: RmsNorm,
    /// `None` when tied to the embedding.
    lm_head: Option<nn::Linear>,
    rotary: Rotary,
    /// The LoRA adapter, when one is attached: its own store, its settings.
    adapter: Option<(nn::VarStore, LoraOptions)>,
    /// Training (LoRA dropout on); set by the trainers around their updates.
    training: std::cell::Cell<bool>,
    /// The snapshot directory the weights were loaded from (an adapter's base).
    source: Option<std::path::PathBuf>,
    /// That snapshot's record, hashed once, at the first adapter save.
    base_record: std::cell::OnceCell<crate::lora::BaseRecord>,
}

/// What one forward pass returns.
pub struct Output {
    /// `[batch, seq, vocab]`, float32.
    pub logits: Tensor,
    /// The cache grown by this pass's tokens, one entry per layer.
    pub present: Vec<LayerCache>,
}

impl Transformer {
    /// A model with freshly initialised weights (seeded through `tch::manual_seed`).
    pub fn new(config: Config, device: Device) -> Result<Transformer, ModelError> {
        config.validate()?;
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let model = &root / "model";
        let embed_tokens = (&model / "embed_tokens").var(
            "weight",
            &[config.vocab_size, config.hidden_size],
            nn::Init::Randn { mean: 0.0, stdev: 0.02 },
        );
        let layers = (0..config.num_hidden_layers)
            .map(|i| Block::new(&model / "layers" / i, &format!("model.layers.{i}"), &config))
            .collect();
        let norm = RmsNorm::new(&model / "norm", config.hidden_size, config.rms_norm_eps);
        let lm_head = (!config.tie_word_embeddings)
            .then(|| linear(&root / "lm_head", config.hidden_size, config.vocab_size, false));
        let rotary = Rotary::new(&config, device);
        Ok(Transformer {
            config,
            vs,
            embed_tokens,
            layers,
            norm,
            lm_head,
            rotary,
            adapter: None,
            training: std::cell::Cell::new(false),
            source: None,
            base_record: std::cell::OnceCell::new(),
        })
    }

    /// Load a model directory: a Hugging Face snapshot (config.json + *.safetensors), one of
    /// our checkpoints (the same layout), or a LoRA adapter directory (PEFT's layout, see
    /// [`crate::lora`]) applied to the local snapshot its `base_model_name_or_path` names. Every
    /// weight the architecture needs must be present with the right shape; extra tensors
    /// (e.g. rotary caches) are ignored. Weights of any float dtype are converted to float32.
    pub fn load(dir: &Path, device: Device) -> Result<Transformer, ModelError> {
        if crate::lora::is_adapter_dir(dir) {
            let base = crate::lora::resolve_base(dir).map_err(|e| ModelError::Config(e.to_string()))?;
            return Transformer::load_with_adapter(&base, dir, device);
        }
        Transformer::load_snapshot(dir, device)
    }

    /// The snapshot in `base` with the adapter in `adapter` attached, after checking that the
    /// adapter was trained on this base (its `base.json` hash; an adapter without one, e.g.
    /// from `peft`, is taken as it is).
    pub fn load_with_adapter(base: &Path, adapter: &Path, device: Device) -> Result<Transformer, ModelError> {
        let lora_error = |e: crate::lora::LoraError| ModelError::Config(e.to_string());
        let (_, trained_on) = crate::lora::read_config(adapter).map_err(lora_error)?;
        // Hashed once: checked here, kept for the adapter's saves and an export's provenance.
        let found = crate::lora::base_record(base).map_err(lora_error)?;
        if let Some(trained_on) = &trained_on {
            crate::lora::check_base(adapter, trained_on, base, &found).map_err(lora_error)?;
        }
        let mut model = Transformer::load_snapshot(base, device)?;
        let _ = model.base_record.set(found);
        model.load_adapter(adapter)?;
        Ok(model)
    }

    /// The record of the snapshot the weights were loaded from (hashed once, then kept), or
    /// `None` for a model built in memory.
    pub fn base_record(&self) -> Result<Option<crate::lora::BaseRecord>, ModelError> {
        let Some(source) = &self.source else { return Ok(None) };
        if let Some(record) = self.base_record.get() {
            return Ok(Some(record.clone()));
        }
        let record = crate::lora::base_record(source).map_err(|e| ModelError::Config(e.to_string()))?;
        Ok(Some(self.base_record.get_or_init(|| record).clone()))
    }

    fn load_snapshot(dir: &Path, device: Device) -> Result<Transformer, ModelError> {
        let config_path = dir.join("config.json");
        let file_error = |path: &Path, message: String| ModelError::File { path: path.display().to_string(), message };
        let text = std::fs::read_to_string(&config_path).map_err(|e| file_error(&config_path, e.to_string()))?;
        let config: Config = serde_json::from_str(&text).map_err(|e| file_error(&config_path, e.to_string()))?;
        let mut model = Transformer::new(config, device)?;
        let mut shards: Vec<_> = std::fs::read_dir(dir)
            .map_err(|e| file_error(dir, e.to_string()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
            .collect();
        shards.sort();
        if shards.is_empty() {
            return Err(file_error(dir, "no *.safetensors weights in the directory".into()));
        }
        let mut vars = model.vs.variables();
        let mut loaded = std::collections::BTreeSet::new();
        for shard in &shards {
            let tensors = Tensor::read_safetensors(shard).map_err(|e| file_error(shard, e.to_string()))?;
            for (name, tensor) in tensors {
                let Some(var) = vars.get_mut(&name) else { continue };
                if var.size() != tensor.size() {
                    return Err(ModelError::Shape {
                        path: shard.display().to_string(),
                        name,
                        expected: var.size(),
                        found: tensor.size(),
                    });
                }
                tch::no_grad(|| var.copy_(&tensor.to_kind(Kind::Float)));
                loaded.insert(name);
            }
        }
        let mut missing: Vec<_> = vars.keys().filter(|k| !loaded.contains(*k)).cloned().collect();
        if !missing.is_empty() {
            missing.sort();
            return Err(ModelError::Missing { dir: dir.display().to_string(), names: missing.join(", ") });
        }
        model.source = Some(dir.to_path_buf());
        Ok(model)
    }

    /// Write the model into `dir` (created if needed): `config.json` and `model.safetensors`,
    /// or, with an adapter attached, the adapter alone (PEFT's files and `base.json`, naming
    /// the snapshot the model was loaded from).
    pub fn save(&self, dir: &Path) -> Result<(), ModelError> {
        if self.adapter.is_some() {
            let name = self.source.as_ref().map(|s| s.display().to_string());
            return self.save_adapter(dir, name, self.base_record()?.as_ref());
        }
        let file_error = |path: &Path, e: &dyn std::fmt::Display| ModelError::File {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        std::fs::create_dir_all(dir).map_err(|e| file_error(dir, &e))?;
        let config_path = dir.join("config.json");
        let json = serde_json::to_string_pretty(&self.config).map_err(|e| file_error(&config_path, &e))?;
        std::fs::write(&config_path, json).map_err(|e| file_error(&config_path, &e))?;
        self.vs.save(dir.join("model.safetensors"))?;
        Ok(())
    }

    /// Put back the trained weights of a checkpoint this model's run wrote (resume): the
    /// adapter's, or every weight of a fully fine-tuned model.
    pub fn restore(&self, checkpoint: &Path) -> Result<(), ModelError> {
        if self.adapter.is_some() {
            let adapter = crate::lora::read(checkpoint).map_err(|e| ModelError::Config(e.to_string()))?;
            return self.copy_adapter_weights(checkpoint, &adapter.tensors);
        }
        let loaded = Transformer::load_snapshot(checkpoint, self.device())?;
        let from = loaded.vs.variables();
        tch::no_grad(|| {
            for (name, mut var) in self.vs.variables() {
                if let Some(src) = from.get(&name) {
                    var.copy_(src);
                }
            }
        });
        Ok(())
    }

    pub fn device(&self) -> Device {
        self.vs.device()
    }

    /// One forward pass.
    ///
    /// - `input_ids`: `[batch, seq]` int64, the new tokens;
    /// - `attention_mask`: `[batch, past + seq]`, 1 for real tokens, 0 for padding;
    /// - `position_ids`: `[batch, seq]` int64;
    /// - `past`: empty, or one cache entry per layer holding `past` positions.
    pub fn forward(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        position_ids: &Tensor,
        past: &[LayerCache],
    ) -> Output {
        let (hidden, present) = self.hidden_states(input_ids, attention_mask, position_ids, past);
        Output { logits: self.lm_head(&hidden), present }
    }

    /// The final normalised hidden states `[batch, seq, hidden]` (what a value head reads)
    /// and the grown cache.
    pub fn hidden_states(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        position_ids: &Tensor,
        past: &[LayerCache],
    ) -> (Tensor, Vec<LayerCache>) {
        let kind = self.compute_kind();
        // f32::MIN has no bfloat16 twin (it would round to -inf, and a fully masked row to
        // NaN): the bias is clamped to bfloat16's finite range first.
        let bias = attention_bias(attention_mask, input_ids.size()[1]).clamp_min(-3.38e38).to_kind(kind);
        self.run_layers(input_ids, position_ids, Some(bias), past)
    }

    /// [`Transformer::hidden_states`] of right-padded sequences without a cache (a training
    /// batch): causal attention needs no mask there, since a real token never sees a later
    /// (padding) position. Rows' real positions come out as with the mask; padding positions
    /// hold values no loss may read.
    pub fn causal_hidden_states(&self, input_ids: &Tensor, position_ids: &Tensor) -> Tensor {
        self.run_layers(input_ids, position_ids, None, &[]).0
    }

    fn run_layers(
        &self,
        input_ids: &Tensor,
        position_ids: &Tensor,
        bias: Option<Tensor>,
        past: &[LayerCache],
    ) -> (Tensor, Vec<LayerCache>) {
        let mut x = self.embed_tokens.embedding_lookup(input_ids);
        let kind = self.compute_kind();
        let (cos, sin) = self.rotary.cos_sin(position_ids);
        let pass = Pass { rotary: (cos.to_kind(kind), sin.to_kind(kind)), bias, train: self.training.get() };
        let mut present = Vec::with_capacity(self.layers.len());
        for (i, layer) in self.layers.iter().enumerate() {
            let (y, cache) = layer.forward(&x, &pass, past.get(i));
            x = y;
            present.push(cache);
        }
        (self.norm.forward(&x), present)
    }

    /// Float32 logits from final hidden states (of any rows and positions: `[..., hidden]`).
    pub fn lm_head(&self, hidden: &Tensor) -> Tensor {
        let logits = match &self.lm_head {
            Some(head) => head.forward(hidden),
            None => hidden.matmul(&self.embed_tokens.tr()),
        };
        logits.to_kind(Kind::Float)
    }

    /// The dtype the trunk computes in: the embedding's (float32 unless [`Transformer::use_bf16`]).
    pub fn compute_kind(&self) -> Kind {
        self.embed_tokens.kind()
    }

    /// Stop every base weight from taking gradients (a frozen reference, a LoRA base).
    pub fn freeze(&self) {
        for (_, mut var) in self.vs.variables() {
            let _ = var.requires_grad_(false);
        }
    }

    /// Switch LoRA dropout on (training) or off (generation, scoring).
    pub fn set_training(&self, on: bool) {
        self.training.set(on);
    }

    /// The adapter's settings, when one is attached.
    pub fn lora(&self) -> Option<&LoraOptions> {
        self.adapter.as_ref().map(|(_, o)| o)
    }

    /// The variables an optimiser trains, by name: the adapter's when one is attached (the
    /// base frozen), else every weight of the model.
    pub fn trainable(&self) -> BTreeMap<String, Tensor> {
        match &self.adapter {
            Some((vs, _)) => vs.variables().into_iter().collect(),
            None => self.vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect(),
        }
    }

    /// Freeze the base and attach a fresh LoRA adapter (A drawn like a linear layer's weight
    /// with the current torch seed, B zero: the model's outputs are unchanged).
    pub fn attach_lora(&mut self, options: &LoraOptions) -> Result<(), ModelError> {
        options.validate().map_err(|e| ModelError::Config(e.to_string()))?;
        let layers = self.config.num_hidden_layers;
        if let Some(l) = options.layers.iter().flatten().find(|l| **l >= layers) {
            return Err(ModelError::Config(format!("LoRA layer {l} does not exist: the model has {layers} layers")));
        }
        if self.adapter.is_some() {
            return Err(ModelError::Config("a LoRA adapter is already attached".into()));
        }
        self.freeze();
        let store = nn::VarStore::new(self.device());
        let root = store.root();
        let scale = options.scale();
        for (i, layer) in self.layers.iter_mut().enumerate() {
            for proj in layer.projections_mut().filter(|p| options.targets(i as i64, p.module())) {
                let (output, input) = proj.linear.ws.size2()?;
                let bound = 1.0 / (input as f64).sqrt();
                let path = |which: char| {
                    crate::lora::tensor_name(&proj.name, which)
                        .trim_end_matches(".weight")
                        .split('.')
                        .fold(root.clone(), |p, part| &p / part)
                };
                let a = path('A').var("weight", &[options.rank, input], nn::Init::Uniform { lo: -bound, up: bound });
                let b = path('B').var("weight", &[output, options.rank], nn::Init::Const(0.0));
                proj.lora = Some(LoraPair { a, b, scale, dropout: options.dropout });
            }
        }
        self.adapter = Some((store, options.clone()));
        Ok(())
    }

    /// Attach the adapter in `dir` (PEFT's layout; see [`crate::lora`]). The adapter must
    /// target this architecture: every tensor present, with the right shape.
    pub fn load_adapter(&mut self, dir: &Path) -> Result<(), ModelError> {
        let lora_error = |e: crate::lora::LoraError| ModelError::Config(e.to_string());
        let adapter = crate::lora::read(dir).map_err(lora_error)?;
        let options = adapter.config.options().map_err(|e| ModelError::Config(format!("{}: {e}", dir.display())))?;
        self.attach_lora(&options)?;
        self.copy_adapter_weights(dir, &adapter.tensors)
    }

    /// Overwrite the attached adapter's weights with `tensors` (PEFT names); every adapter
    /// tensor must be there, nothing else may be.
    pub fn copy_adapter_weights(&self, dir: &Path, tensors: &BTreeMap<String, Tensor>) -> Result<(), ModelError> {
        let Some((store, _)) = &self.adapter else {
            return Err(ModelError::Config("no LoRA adapter is attached".into()));
        };
        let path = dir.join(crate::lora::WEIGHTS_FILE).display().to_string();
        let mut vars = store.variables();
        if let Some(extra) = tensors.keys().find(|k| !vars.contains_key(*k)) {
            return Err(ModelError::File {
                path,
                message: format!("`{extra}` is not a tensor of this adapter's targets on this model"),
            });
        }
        let mut missing: Vec<&String> = vars.keys().filter(|k| !tensors.contains_key(*k)).collect();
        if !missing.is_empty() {
            missing.sort();
            let names = missing.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ");
            return Err(ModelError::Missing { dir: dir.display().to_string(), names });
        }
        for (name, var) in vars.iter_mut() {
            let t = &tensors[name];
            if var.size() != t.size() {
                return Err(ModelError::Shape { path, name: name.clone(), expected: var.size(), found: t.size() });
            }
            if t.to_kind(Kind::Float).isfinite().all().int64_value(&[]) == 0 {
                return Err(ModelError::File { path, message: format!("`{name}` holds NaN or infinite values") });
            }
            tch::no_grad(|| var.copy_(&t.to_kind(Kind::Float)));
        }
        Ok(())
    }

    /// Write the attached adapter as PEFT does (`adapter_config.json`,
    /// `adapter_model.safetensors`), with `base` as `base.json` when given.
    pub fn save_adapter(
        &self,
        dir: &Path,
        base_name: Option<String>,
        base: Option<&crate::lora::BaseRecord>,
    ) -> Result<(), ModelError> {
        let Some((store, options)) = &self.adapter else {
            return Err(ModelError::Config("no LoRA adapter is attached".into()));
        };
        let file_error = |path: &Path, e: &dyn std::fmt::Display| ModelError::File {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        std::fs::create_dir_all(dir).map_err(|e| file_error(dir, &e))?;
        let config = crate::lora::AdapterConfig::new(options, base_name);
        let path = dir.join(crate::lora::CONFIG_FILE);
        let json = serde_json::to_string_pretty(&config).map_err(|e| file_error(&path, &e))?;
        std::fs::write(&path, json).map_err(|e| file_error(&path, &e))?;
        if let Some(base) = base {
            let path = dir.join(crate::lora::BASE_FILE);
            let json = serde_json::to_string_pretty(base).map_err(|e| file_error(&path, &e))?;
            std::fs::write(&path, json).map_err(|e| file_error(&path, &e))?;
        }
        store.save(dir.join(crate::lora::WEIGHTS_FILE))?;
        Ok(())
    }

    /// Fold the adapter into the base weights (`W += scale * B @ A`, in float32) and drop it:
    /// the model then computes what it computed with the adapter, as a plain model that saves
    /// and exports like any other.
    pub fn merge_adapter(&mut self) -> Result<(), ModelError> {
        if self.adapter.take().is_none() {
            return Err(ModelError::Config("no LoRA adapter is attached".into()));
        }
        for layer in &mut self.layers {
            for proj in layer.projections_mut() {
                if let Some(l) = proj.lora.take() {
                    let w = &mut proj.linear.ws;
                    let delta = l.b.matmul(&l.a) * l.scale;
                    tch::no_grad(|| w.copy_(&(w.to_kind(Kind::Float) + delta).to_kind(w.kind())));
                }
            }
        }
        Ok(())
    }

    /// Compute in bfloat16: the frozen base weights are stored in bfloat16 and the trunk runs
    /// in it (norms and softmax inputs in float32); a LoRA adapter's weights, its gradients and
    /// the optimiser state stay float32. Only a frozen base may be cast (full fine-tuning keeps
    /// float32 master weights).
    pub fn use_bf16(&mut self) -> Result<(), ModelError> {
        if self.adapter.is_none() {
            return Err(ModelError::Config(
                "bfloat16 compute needs a LoRA adapter (a frozen base); full fine-tuning stays float32".into(),
            ));
        }
        self.vs.bfloat16();
        Ok(())
    }
}

/// Move freshly initialised weights off their initial values with the current torch seed, for
/// fixtures and benchmarks: norm scales around 1, biases around 0, a unit-scale embedding (tied
/// to the LM head, so logits are O(1)), projections scaled by `layer_scale`. A parity test on
/// such weights cannot pass by an op that a default initialisation would make a no-op.
pub fn perturb(model: &Transformer, layer_scale: f64) {
    let mut vars: Vec<_> = model.vs.variables().into_iter().collect();
    // Sorted, so the random draws do not depend on HashMap order.
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    tch::no_grad(|| {
        for (name, var) in &mut vars {
            let noise = var.randn_like();
            if name.ends_with("norm.weight") {
                var.copy_(&(noise * 0.2 + 1.0));
            } else if name.ends_with(".bias") {
                var.copy_(&(noise * 0.1));
            } else if name == "model.embed_tokens.weight" {
                var.copy_(&noise);
            } else if name.ends_with("proj.weight") {
                var.copy_(&(&*var * layer_scale));
            }
        }
    });
}

trait EmbeddingLookup {
    fn embedding_lookup(&self, ids: &Tensor) -> Tensor;
}

impl EmbeddingLookup for Tensor {
    fn embedding_lookup(&self, ids: &Tensor) -> Tensor {
        Tensor::embedding(self, ids, -1, false, false)
    }
}

/// The additive attention bias `[batch, 1, seq, past + seq]`: 0 where query i (at absolute
/// index past + i) may see key j — j <= past + i and the key is not padding — else
/// [`MASK_VALUE`].
pub fn attention_bias(attention_mask: &Tensor, seq: i64) -> Tensor {
    let device = attention_mask.device();
    let total = attention_mask.size()[1];
    let past = total - seq;
    let query = Tensor::arange_start(past, total, (Kind::Int64, device)).unsqueeze(1);
    let key = Tensor::arange(total, (Kind::Int64, device)).unsqueeze(0);
    let causal = key.le_tensor(&query).unsqueeze(0).unsqueeze(0);
    let visible = attention_mask.ne(0).unsqueeze(1).unsqueeze(1);
    let allowed = causal.logical_and(&visible);
    Tensor::zeros([1], (Kind::Float, device))
        .where_self(&allowed, &Tensor::full([1], MASK_VALUE, (Kind::Float, device)))
}

/// Position ids for a left-padded batch: 0 at each row's first real token, counting real
/// tokens only (padding gets 0; it is never attended).
pub fn position_ids(attention_mask: &Tensor) -> Tensor {
    (attention_mask.cumsum(-1, Kind::Int64) - 1).clamp_min(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> Config {
        Config { hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, ..Config::tiny(50) }
    }

    #[test]
    fn cached_decoding_matches_a_full_forward_pass() {
        tch::manual_seed(1);
        let m = Transformer::new(small(), Device::Cpu).unwrap();
        let ids = Tensor::from_slice(&[3i64, 7, 9, 11, 2, 5]).view([1, 6]);
        let mask = Tensor::ones([1, 6], (Kind::Int64, Device::Cpu));
        let full = m.forward(&ids, &mask, &position_ids(&mask), &[]).logits;
        let head = m.forward(&ids.narrow(1, 0, 4), &mask.narrow(1, 0, 4), &position_ids(&mask.narrow(1, 0, 4)), &[]);
        let tail = m.forward(&ids.narrow(1, 4, 2), &mask, &position_ids(&mask).narrow(1, 4, 2), &head.present);
        let diff = (full.narrow(1, 4, 2) - tail.logits).abs().max().double_value(&[]);
        assert!(diff < 1e-5, "cached and uncached logits differ by {diff}");
        assert_eq!(tail.present[0].0.size(), vec![1, 2, 6, 8]);
    }

    #[test]
    fn left_padding_does_not_change_a_rows_logits() {
        tch::manual_seed(2);
        let m = Transformer::new(small(), Device::Cpu).unwrap();
        let ids = Tensor::from_slice(&[4i64, 8, 15]).view([1, 3]);
        let mask = Tensor::ones([1, 3], (Kind::Int64, Device::Cpu));
        let alone = m.forward(&ids, &mask, &position_ids(&mask), &[]).logits;
        let padded_ids = Tensor::from_slice(&[0i64, 0, 4, 8, 15]).view([1, 5]);
        let padded_mask = Tensor::from_slice(&[0i64, 0, 1, 1, 1]).view([1, 5]);
        let padded = m.forward(&padded_ids, &padded_mask, &position_ids(&padded_mask), &[]).logits;
        let diff = (alone - padded.narrow(1, 2, 3)).abs().max().double_value(&[]);
        assert!(diff < 1e-5, "padding changed logits by {diff}");
    }

    #[test]
    fn causal_attention_without_a_mask_matches_the_masked_pass_on_right_padded_rows() {
        tch::manual_seed(4);
        let m = Transformer::new(small(), Device::Cpu).unwrap();
        perturb(&m, 1.0);
        let ids = Tensor::from_slice(&[4i64, 8, 15, 16, 23, 7, 9, 0, 0, 0]).view([2, 5]);
        let mask = Tensor::from_slice(&[1i64, 1, 1, 1, 1, 1, 1, 0, 0, 0]).view([2, 5]);
        let positions = position_ids(&mask);
        let (masked, _) = m.hidden_states(&ids, &mask, &positions, &[]);
        let causal = m.causal_hidden_states(&ids, &positions);
        let real = mask.unsqueeze(-1).to_kind(Kind::Float);
        let diff = ((masked - causal) * real).abs().max().double_value(&[]);
        assert!(diff < 1e-5, "real positions differ by {diff}");
    }

    #[test]
    fn parameter_count_matches_the_variables() {
        for tie in [true, false] {
            let c = Config { tie_word_embeddings: tie, ..small() };
            let m = Transformer::new(c.clone(), Device::Cpu).unwrap();
            let n: i64 = m.vs.trainable_variables().iter().map(|t| t.numel() as i64).sum();
            assert_eq!(n, c.parameters());
        }
    }

    #[test]
    fn save_then_load_round_trips_and_bad_snapshots_are_clear_errors() {
        tch::manual_seed(3);
        let m = Transformer::new(small(), Device::Cpu).unwrap();
        let dir = tempfile::tempdir().unwrap();
        m.save(dir.path()).unwrap();
        let back = Transformer::load(dir.path(), Device::Cpu).unwrap();
        let ids = Tensor::from_slice(&[1i64, 2, 3]).view([1, 3]);
        let mask = Tensor::ones([1, 3], (Kind::Int64, Device::Cpu));
        let a = m.forward(&ids, &mask, &position_ids(&mask), &[]).logits;
        let b = back.forward(&ids, &mask, &position_ids(&mask), &[]).logits;
        assert_eq!(a.abs().sum(Kind::Float).double_value(&[]), b.abs().sum(Kind::Float).double_value(&[]));

        // A config whose shapes disagree with the weights.
        let wrong = Config { intermediate_size: 65, ..small() };
        std::fs::write(dir.path().join("config.json"), serde_json::to_string(&wrong).unwrap()).unwrap();
        let err = Transformer::load(dir.path(), Device::Cpu).unwrap_err().to_string();
        assert!(err.contains("mlp") && err.contains("shape"), "{err}");
        // Corrupt weights.
        std::fs::write(dir.path().join("config.json"), serde_json::to_string(&small()).unwrap()).unwrap();
        std::fs::write(dir.path().join("model.safetensors"), b"not safetensors").unwrap();
        let err = Transformer::load(dir.path(), Device::Cpu).unwrap_err().to_string();
        assert!(err.contains("model.safetensors"), "{err}");
        // An unsupported architecture.
        let other = Config { model_type: "gpt2".into(), ..small() };
        std::fs::write(dir.path().join("config.json"), serde_json::to_string(&other).unwrap()).unwrap();
        assert!(Transformer::load(dir.path(), Device::Cpu).unwrap_err().to_string().contains("gpt2"));
    }
}
