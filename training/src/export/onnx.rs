//! The decoder as a float32 ONNX graph (opset 17, IR version 8) in Hugging Face optimum's
//! decoder-with-past layout.
//!
//! Interface (symbolic axes named as optimum names them):
//! - in: `input_ids` int64 `[batch_size, sequence_length]`, `attention_mask` int64
//!   `[batch_size, past_sequence_length + sequence_length]`, `position_ids` int64
//!   `[batch_size, sequence_length]`, and per layer `past_key_values.{i}.key|value` float
//!   `[batch_size, num_key_value_heads, past_sequence_length, head_dim]` (length 0 on the first
//!   pass);
//! - out: `logits` float `[batch_size, sequence_length, vocab_size]` and per layer
//!   `present.{i}.key|value` float `[batch_size, num_key_value_heads,
//!   past_sequence_length + sequence_length, head_dim]`.
//!
//! Invariants:
//! - the graph is `Transformer::forward` written out op by op, in the same order and with the
//!   same constants (the rotary inverse frequencies are computed as `Rotary::new` computes them,
//!   the masked score is `MASK_VALUE`), so the two agree to float32 rounding; one function here
//!   per block of `model.rs`;
//! - a present key is taken after rotary and before the grouped heads are repeated, as in
//!   `Output::present`, so presents feed back as the next pass's past unchanged;
//! - every weight the model holds is read from its variable store under its Hugging Face name; a
//!   linear layer's `[out, in]` weight is stored transposed, as `[in, out]` under `<name>.T`, so
//!   `MatMul(x, W.T)` needs no Transpose node. The tied LM head reuses
//!   `model.embed_tokens.weight` through a Transpose node (ONNX Runtime folds it at load) rather
//!   than storing the embedding twice;
//! - weights are little-endian float32 `raw_data`, inline or (with
//!   [`ExportOptions::external_data`]) in `<file name>_data` next to the model at 4096-byte
//!   aligned offsets, the layout optimum uses past protobuf's 2 GiB limit. Small constants
//!   (shapes, axes, scalars, the rotary frequencies) always stay inline.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use prost::Message;
use tch::{Device, Kind, Tensor};

use super::proto::{
    AttributeProto, AttributeType, DataLocation, DataType, GraphProto, ModelProto, NodeProto, OperatorSetIdProto,
    StringStringEntryProto, TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
    tensor_shape_proto::{Dimension, dimension},
    type_proto,
};
use crate::model::{Config, MASK_VALUE, ModelError, Transformer};

/// The default-domain opset the graph targets. At 17, `ReduceMean` still takes `axes` as an
/// attribute (it became an input at 18).
pub const OPSET_VERSION: i64 = 17;
/// ONNX IR version 8, which every ONNX Runtime since 1.10 reads.
pub const IR_VERSION: i64 = 8;
/// External tensors start at multiples of this, so a reader may memory-map them.
const EXTERNAL_DATA_ALIGNMENT: u64 = 4096;
/// protobuf refuses to parse a message of 2 GiB or more.
const PROTOBUF_LIMIT: usize = i32::MAX as usize;

/// How to write the model.
#[derive(Clone, Debug, Default)]
pub struct ExportOptions {
    /// Write the weights to `<file name>_data` next to the model instead of inside it (needed
    /// past 2 GiB of weights).
    pub external_data: bool,
}

/// What an export wrote.
#[derive(Clone, Debug)]
pub struct ExportSummary {
    pub model_path: PathBuf,
    /// The external weights file, when [`ExportOptions::external_data`] was set.
    pub data_path: Option<PathBuf>,
    /// Operator nodes in the graph.
    pub nodes: usize,
    /// Initializers (weights and constants).
    pub initializers: usize,
    /// Bytes of initializer data, inline and external together.
    pub initializer_bytes: u64,
    /// Graph inputs, in order.
    pub inputs: Vec<String>,
    /// Graph outputs, in order.
    pub outputs: Vec<String>,
}

/// Why an export failed; each names the file being written.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{path}: cannot export an invalid model: {source}")]
    Config { path: String, source: ModelError },
    #[error("{path}: the model has no weight `{name}`")]
    MissingWeight { path: String, name: String },
    #[error("{path}: weight `{name}` has shape {found:?}, the config implies {expected:?}")]
    WeightShape { path: String, name: String, expected: Vec<i64>, found: Vec<i64> },
    #[error("{path}: reading weight `{name}`: {source}")]
    Weight { path: String, name: String, source: tch::TchError },
    #[error("{path}: serialising the model config into the metadata: {source}")]
    Metadata { path: String, source: serde_json::Error },
    #[error("{path}: external data needs a UTF-8 file name to derive `<file name>_data` from")]
    FileName { path: String },
    #[error("{path}: the model would be {bytes} bytes, past protobuf's 2 GiB limit; export with external data")]
    TooLarge { path: String, bytes: usize },
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
}

/// Write `model` to `path` as ONNX (and its weights to `<file name>_data` when
/// `options.external_data`). Existing files are overwritten.
pub fn export(model: &Transformer, path: &Path, options: &ExportOptions) -> Result<ExportSummary, ExportError> {
    let shown = path.display().to_string();
    let config = &model.config;
    config.validate().map_err(|source| ExportError::Config { path: shown.clone(), source })?;

    let (store, data_path) = if options.external_data {
        let file_name =
            path.file_name().and_then(|n| n.to_str()).ok_or(ExportError::FileName { path: shown.clone() })?;
        let location = format!("{file_name}_data");
        let data_path = path.with_file_name(&location);
        let file = File::create(&data_path).map_err(|source| io_error(&data_path, source))?;
        let store =
            WeightStore::External { writer: BufWriter::new(file), path: data_path.clone(), location, offset: 0 };
        (store, Some(data_path))
    } else {
        (WeightStore::Inline, None)
    };

    let weights = Weights { vars: model.vs.variables(), path: shown.clone() };
    let mut g = GraphBuilder::new(store);
    decoder(&mut g, &weights, config)?;
    let inputs = graph_inputs(config);
    let outputs = graph_outputs(config);
    let input_names: Vec<String> = inputs.iter().filter_map(|v| v.name.clone()).collect();
    let output_names: Vec<String> = outputs.iter().filter_map(|v| v.name.clone()).collect();
    let (nodes, initializers, initializer_bytes) = g.finish()?;

    let config_json =
        serde_json::to_string(config).map_err(|source| ExportError::Metadata { path: shown.clone(), source })?;
    let summary = ExportSummary {
        model_path: path.to_path_buf(),
        data_path,
        nodes: nodes.len(),
        initializers: initializers.len(),
        initializer_bytes,
        inputs: input_names,
        outputs: output_names,
    };
    let proto = ModelProto {
        ir_version: Some(IR_VERSION),
        producer_name: Some("switchyard-train".into()),
        producer_version: Some(env!("CARGO_PKG_VERSION").into()),
        domain: None,
        model_version: Some(1),
        doc_string: Some(format!("Switchyard router policy ({} decoder)", config.model_type)),
        graph: Some(GraphProto {
            node: nodes,
            name: Some("switchyard_policy".into()),
            initializer: initializers,
            doc_string: None,
            input: inputs,
            output: outputs,
            value_info: Vec::new(),
        }),
        opset_import: vec![OperatorSetIdProto { domain: Some(String::new()), version: Some(OPSET_VERSION) }],
        metadata_props: vec![
            entry("model_type", &config.model_type),
            // The whole config.json, so a reader can find e.g. the eos token without the snapshot.
            entry("config", &config_json),
        ],
    };
    let bytes = proto.encoded_len();
    if bytes > PROTOBUF_LIMIT {
        return Err(ExportError::TooLarge { path: shown, bytes });
    }
    std::fs::write(path, proto.encode_to_vec()).map_err(|source| io_error(path, source))?;
    Ok(summary)
}

fn io_error(path: &Path, source: std::io::Error) -> ExportError {
    ExportError::Io { path: path.display().to_string(), source }
}

fn entry(key: &str, value: &str) -> StringStringEntryProto {
    StringStringEntryProto { key: Some(key.into()), value: Some(value.into()) }
}

// ---------------------------------------------------------------------------------------------
// The graph interface.

/// An axis of a graph input or output: fixed, or named so that equal names mean equal sizes.
enum Dim {
    Fixed(i64),
    Named(&'static str),
}

const BATCH: Dim = Dim::Named("batch_size");
const SEQUENCE: Dim = Dim::Named("sequence_length");
const PAST: Dim = Dim::Named("past_sequence_length");
const TOTAL: Dim = Dim::Named("past_sequence_length + sequence_length");

fn value_info(name: String, elem_type: DataType, dims: Vec<Dim>) -> ValueInfoProto {
    let dim = dims
        .into_iter()
        .map(|d| Dimension {
            value: Some(match d {
                Dim::Fixed(n) => dimension::Value::DimValue(n),
                Dim::Named(s) => dimension::Value::DimParam(s.into()),
            }),
        })
        .collect();
    ValueInfoProto {
        name: Some(name),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(elem_type as i32),
                shape: Some(TensorShapeProto { dim }),
            })),
        }),
    }
}

fn graph_inputs(c: &Config) -> Vec<ValueInfoProto> {
    let mut inputs = vec![
        value_info("input_ids".into(), DataType::Int64, vec![BATCH, SEQUENCE]),
        value_info("attention_mask".into(), DataType::Int64, vec![BATCH, TOTAL]),
        value_info("position_ids".into(), DataType::Int64, vec![BATCH, SEQUENCE]),
    ];
    for i in 0..c.num_hidden_layers {
        for kind in ["key", "value"] {
            let dims = vec![BATCH, Dim::Fixed(c.num_key_value_heads), PAST, Dim::Fixed(c.head_dim())];
            inputs.push(value_info(format!("past_key_values.{i}.{kind}"), DataType::Float, dims));
        }
    }
    inputs
}

fn graph_outputs(c: &Config) -> Vec<ValueInfoProto> {
    let mut outputs =
        vec![value_info("logits".into(), DataType::Float, vec![BATCH, SEQUENCE, Dim::Fixed(c.vocab_size)])];
    for i in 0..c.num_hidden_layers {
        for kind in ["key", "value"] {
            let dims = vec![BATCH, Dim::Fixed(c.num_key_value_heads), TOTAL, Dim::Fixed(c.head_dim())];
            outputs.push(value_info(format!("present.{i}.{kind}"), DataType::Float, dims));
        }
    }
    outputs
}

// ---------------------------------------------------------------------------------------------
// The decoder, one function per block of model.rs.

/// `Transformer::forward`: embed -> layers -> norm -> LM head.
fn decoder(g: &mut GraphBuilder, w: &Weights, c: &Config) -> Result<(), ExportError> {
    let (vocab, hidden) = (c.vocab_size, c.hidden_size);
    let embed = w.initializer(g, "model.embed_tokens.weight", &[vocab, hidden])?;
    let mut x = g.node("/model/embed_tokens", "Gather", &[&embed, "input_ids"], vec![attr_int("axis", 0)]);
    let bias = attention_bias(g);
    let rotary = rotary(g, c);
    for layer in 0..c.num_hidden_layers {
        x = block(g, w, c, layer, &x, &rotary, &bias)?;
    }
    let x = rms_norm(g, w, c, "/model/norm", "model.norm.weight", &x)?;
    // As in model.rs: a separate head exactly when the embeddings are untied.
    let head = if c.tie_word_embeddings {
        g.node("/lm_head", "Transpose", &[&embed], vec![attr_ints("perm", &[1, 0])])
    } else {
        w.transposed_initializer(g, "lm_head.weight", vocab, hidden)?
    };
    g.node_into("/lm_head", "MatMul", &[&x, &head], vec![], "logits");
    Ok(())
}

/// `attention_bias`: `[batch, 1, seq, past + seq]`, 0 where query i (at absolute index
/// past + i) may see key j — j <= past + i and `attention_mask[b, j] != 0` — else `MASK_VALUE`.
/// Built once and shared by every layer.
fn attention_bias(g: &mut GraphBuilder) -> String {
    let scope = "/model/attention_bias";
    let one = g.const_i64(&[], &[1]);
    let zero = g.const_i64(&[], &[0]);
    let ids_shape = g.node(scope, "Shape", &["input_ids"], vec![]);
    let seq = g.node(scope, "Gather", &[&ids_shape, &one], vec![attr_int("axis", 0)]);
    let mask_shape = g.node(scope, "Shape", &["attention_mask"], vec![]);
    let total = g.node(scope, "Gather", &[&mask_shape, &one], vec![attr_int("axis", 0)]);
    let past = g.node(scope, "Sub", &[&total, &seq], vec![]);
    let query = g.node(scope, "Range", &[&past, &total, &one], vec![]);
    let key = g.node(scope, "Range", &[&zero, &total, &one], vec![]);
    let axis_1 = g.const_i64(&[1], &[1]);
    let axis_0 = g.const_i64(&[1], &[0]);
    let query = g.node(scope, "Unsqueeze", &[&query, &axis_1], vec![]);
    let key = g.node(scope, "Unsqueeze", &[&key, &axis_0], vec![]);
    let causal = g.node(scope, "LessOrEqual", &[&key, &query], vec![]);
    let axes_0_1 = g.const_i64(&[2], &[0, 1]);
    let causal = g.node(scope, "Unsqueeze", &[&causal, &axes_0_1], vec![]);
    let padding = g.node(scope, "Equal", &["attention_mask", &zero], vec![]);
    let visible = g.node(scope, "Not", &[&padding], vec![]);
    let axes_1_2 = g.const_i64(&[2], &[1, 2]);
    let visible = g.node(scope, "Unsqueeze", &[&visible, &axes_1_2], vec![]);
    let allowed = g.node(scope, "And", &[&causal, &visible], vec![]);
    let open = g.const_f32("zero", &[], &[0.0]);
    let masked = g.const_f32("mask_value", &[], &[MASK_VALUE as f32]);
    g.node(scope, "Where", &[&allowed, &open, &masked], vec![])
}

/// The cos and sin tables `[batch, 1, seq, head_dim]` for `position_ids`.
struct Rotary {
    cos: String,
    sin: String,
}

/// `Rotary::new` + `Rotary::cos_sin`.
fn rotary(g: &mut GraphBuilder, c: &Config) -> Rotary {
    let scope = "/model/rotary_emb";
    let d = c.head_dim();
    // Exactly Rotary::new: f64 arithmetic, then rounded to f32.
    let inv_freq: Vec<f32> = (0..d / 2).map(|i| (1.0 / c.rope_theta.powf(2.0 * i as f64 / d as f64)) as f32).collect();
    let inv_freq = g.const_f32("rotary_inv_freq", &[d / 2], &inv_freq);
    let positions = g.node(scope, "Cast", &["position_ids"], vec![attr_int("to", DataType::Float as i64)]);
    let last = g.const_i64(&[1], &[-1]);
    let positions = g.node(scope, "Unsqueeze", &[&positions, &last], vec![]);
    let angles = g.node(scope, "Mul", &[&positions, &inv_freq], vec![]);
    let angles = g.node(scope, "Concat", &[&angles, &angles], vec![attr_int("axis", -1)]);
    let heads_axis = g.const_i64(&[1], &[1]);
    let angles = g.node(scope, "Unsqueeze", &[&angles, &heads_axis], vec![]);
    Rotary { cos: g.node(scope, "Cos", &[&angles], vec![]), sin: g.node(scope, "Sin", &[&angles], vec![]) }
}

/// `Block::forward`: pre-norm attention and MLP, each with a residual connection.
fn block(
    g: &mut GraphBuilder,
    w: &Weights,
    c: &Config,
    layer: i64,
    x: &str,
    rotary: &Rotary,
    bias: &str,
) -> Result<String, ExportError> {
    let scope = format!("/model/layers.{layer}");
    let prefix = format!("model.layers.{layer}");
    let normed =
        rms_norm(g, w, c, &format!("{scope}/input_layernorm"), &format!("{prefix}.input_layernorm.weight"), x)?;
    let attended = attention(g, w, c, layer, &normed, rotary, bias)?;
    let x = g.node(&scope, "Add", &[x, &attended], vec![]);
    let normed = rms_norm(
        g,
        w,
        c,
        &format!("{scope}/post_attention_layernorm"),
        &format!("{prefix}.post_attention_layernorm.weight"),
        &x,
    )?;
    let mlp = mlp(g, w, c, layer, &normed)?;
    Ok(g.node(&scope, "Add", &[&x, &mlp], vec![]))
}

/// `RmsNorm::forward`: x * 1/sqrt(mean(x^2) + eps) * weight.
fn rms_norm(
    g: &mut GraphBuilder,
    w: &Weights,
    c: &Config,
    scope: &str,
    weight: &str,
    x: &str,
) -> Result<String, ExportError> {
    let weight = w.initializer(g, weight, &[c.hidden_size])?;
    let squared = g.node(scope, "Mul", &[x, x], vec![]);
    let variance = g.node(scope, "ReduceMean", &[&squared], vec![attr_ints("axes", &[-1]), attr_int("keepdims", 1)]);
    let eps = g.const_f32("rms_norm_eps", &[], &[c.rms_norm_eps as f32]);
    let variance = g.node(scope, "Add", &[&variance, &eps], vec![]);
    let root = g.node(scope, "Sqrt", &[&variance], vec![]);
    let inverse = g.node(scope, "Reciprocal", &[&root], vec![]);
    let x = g.node(scope, "Mul", &[x, &inverse], vec![]);
    Ok(g.node(scope, "Mul", &[&x, &weight], vec![]))
}

/// `nn::Linear`: x W^T (+ b). The bias is exported exactly when the model holds one: the
/// variable store has a variable iff the model's forward pass uses it.
fn linear(
    g: &mut GraphBuilder,
    w: &Weights,
    scope: &str,
    prefix: &str,
    x: &str,
    input: i64,
    output: i64,
) -> Result<String, ExportError> {
    let weight = w.transposed_initializer(g, &format!("{prefix}.weight"), output, input)?;
    let y = g.node(scope, "MatMul", &[x, &weight], vec![]);
    let bias = format!("{prefix}.bias");
    if !w.has(&bias) {
        return Ok(y);
    }
    let bias = w.initializer(g, &bias, &[output])?;
    Ok(g.node(scope, "Add", &[&y, &bias], vec![]))
}

/// `Attention::forward`: grouped-query self-attention with rotary positions and the cache.
fn attention(
    g: &mut GraphBuilder,
    w: &Weights,
    c: &Config,
    layer: i64,
    x: &str,
    rotary: &Rotary,
    bias: &str,
) -> Result<String, ExportError> {
    let scope = format!("/model/layers.{layer}/self_attn");
    let prefix = format!("model.layers.{layer}.self_attn");
    let (h, d, heads, kv_heads) = (c.hidden_size, c.head_dim(), c.num_attention_heads, c.num_key_value_heads);
    let project = |g: &mut GraphBuilder, name: &str, heads: i64| -> Result<String, ExportError> {
        let scope = format!("{scope}/{name}");
        let y = linear(g, w, &scope, &format!("{prefix}.{name}"), x, h, heads * d)?;
        Ok(split_heads(g, &scope, &y, heads, d))
    };
    let q = project(g, "q_proj", heads)?;
    let k = project(g, "k_proj", kv_heads)?;
    let v = project(g, "v_proj", kv_heads)?;
    let q = apply_rotary(g, &format!("{scope}/q_rotary"), &q, rotary, d);
    let k = apply_rotary(g, &format!("{scope}/k_rotary"), &k, rotary, d);
    let concat_past = vec![attr_int("axis", 2)];
    let k = g.node_into(
        &format!("{scope}/key_cache"),
        "Concat",
        &[&format!("past_key_values.{layer}.key"), &k],
        concat_past.clone(),
        &format!("present.{layer}.key"),
    );
    let v = g.node_into(
        &format!("{scope}/value_cache"),
        "Concat",
        &[&format!("past_key_values.{layer}.value"), &v],
        concat_past,
        &format!("present.{layer}.value"),
    );
    let k = repeat_kv(g, &format!("{scope}/repeat_key"), &k, c);
    let v = repeat_kv(g, &format!("{scope}/repeat_value"), &v, c);
    let k = g.node(&scope, "Transpose", &[&k], vec![attr_ints("perm", &[0, 1, 3, 2])]);
    let scores = g.node(&scope, "MatMul", &[&q, &k], vec![]);
    // Divide (not multiply by the reciprocal), as model.rs does.
    let scale = g.const_f32("sqrt_head_dim", &[], &[(d as f64).sqrt() as f32]);
    let scores = g.node(&scope, "Div", &[&scores, &scale], vec![]);
    let scores = g.node(&scope, "Add", &[&scores, bias], vec![]);
    let weights = g.node(&scope, "Softmax", &[&scores], vec![attr_int("axis", -1)]);
    let y = g.node(&scope, "MatMul", &[&weights, &v], vec![]);
    let y = g.node(&scope, "Transpose", &[&y], vec![attr_ints("perm", &[0, 2, 1, 3])]);
    let merged = g.const_i64(&[3], &[0, 0, heads * d]);
    let y = g.node(&scope, "Reshape", &[&y, &merged], vec![]);
    linear(g, w, &format!("{scope}/o_proj"), &format!("{prefix}.o_proj"), &y, heads * d, h)
}

/// `[batch, seq, heads * head_dim]` -> `[batch, heads, seq, head_dim]`.
fn split_heads(g: &mut GraphBuilder, scope: &str, x: &str, heads: i64, head_dim: i64) -> String {
    // 0 copies the input's size on that axis (batch, seq).
    let shape = g.const_i64(&[4], &[0, 0, heads, head_dim]);
    let x = g.node(scope, "Reshape", &[x, &shape], vec![]);
    g.node(scope, "Transpose", &[&x], vec![attr_ints("perm", &[0, 2, 1, 3])])
}

/// `apply_rotary`: x * cos + rotate_half(x) * sin, where rotate_half(x) = [-x2, x1] for the two
/// halves x1, x2 of the last axis.
fn apply_rotary(g: &mut GraphBuilder, scope: &str, x: &str, rotary: &Rotary, head_dim: i64) -> String {
    let half = head_dim / 2;
    let last = g.const_i64(&[1], &[-1]);
    let start = g.const_i64(&[1], &[0]);
    let middle = g.const_i64(&[1], &[half]);
    let end = g.const_i64(&[1], &[head_dim]);
    let first = g.node(scope, "Slice", &[x, &start, &middle, &last], vec![]);
    let second = g.node(scope, "Slice", &[x, &middle, &end, &last], vec![]);
    let second = g.node(scope, "Neg", &[&second], vec![]);
    let rotated = g.node(scope, "Concat", &[&second, &first], vec![attr_int("axis", -1)]);
    let x = g.node(scope, "Mul", &[x, &rotary.cos], vec![]);
    let rotated = g.node(scope, "Mul", &[&rotated, &rotary.sin], vec![]);
    g.node(scope, "Add", &[&x, &rotated], vec![])
}

/// The `repeat` closure of `Attention::forward`: each key/value head serves
/// `heads / kv_heads` consecutive query heads. `[b, kv, s, d]` -> `[b, heads, s, d]`.
fn repeat_kv(g: &mut GraphBuilder, scope: &str, x: &str, c: &Config) -> String {
    let (heads, kv_heads) = (c.num_attention_heads, c.num_key_value_heads);
    if heads == kv_heads {
        return x.to_string();
    }
    let axis = g.const_i64(&[1], &[2]);
    let x = g.node(scope, "Unsqueeze", &[x, &axis], vec![]);
    // Expand broadcasts: the 1s keep batch, kv heads, length and head_dim as they are.
    let groups = g.const_i64(&[5], &[1, 1, heads / kv_heads, 1, 1]);
    let x = g.node(scope, "Expand", &[&x, &groups], vec![]);
    let shape = g.const_i64(&[4], &[0, heads, -1, c.head_dim()]);
    g.node(scope, "Reshape", &[&x, &shape], vec![])
}

/// `Mlp::forward`: down(silu(gate(x)) * up(x)), silu(z) = z * sigmoid(z).
fn mlp(g: &mut GraphBuilder, w: &Weights, c: &Config, layer: i64, x: &str) -> Result<String, ExportError> {
    let scope = format!("/model/layers.{layer}/mlp");
    let prefix = format!("model.layers.{layer}.mlp");
    let (h, i) = (c.hidden_size, c.intermediate_size);
    let gate = linear(g, w, &format!("{scope}/gate_proj"), &format!("{prefix}.gate_proj"), x, h, i)?;
    let sigmoid = g.node(&format!("{scope}/act_fn"), "Sigmoid", &[&gate], vec![]);
    let gate = g.node(&format!("{scope}/act_fn"), "Mul", &[&gate, &sigmoid], vec![]);
    let up = linear(g, w, &format!("{scope}/up_proj"), &format!("{prefix}.up_proj"), x, h, i)?;
    let y = g.node(&scope, "Mul", &[&gate, &up], vec![]);
    linear(g, w, &format!("{scope}/down_proj"), &format!("{prefix}.down_proj"), &y, i, h)
}

// ---------------------------------------------------------------------------------------------
// Weights.

/// The model's variables by Hugging Face name.
struct Weights {
    vars: HashMap<String, Tensor>,
    /// The model file, for errors.
    path: String,
}

impl Weights {
    fn has(&self, name: &str) -> bool {
        self.vars.contains_key(name)
    }

    /// The weight `name`, checked against the shape the config implies, as an initializer of
    /// the same name.
    fn initializer(&self, g: &mut GraphBuilder, name: &str, shape: &[i64]) -> Result<String, ExportError> {
        let data = self.data(name, shape, false)?;
        g.initializer_f32(name, shape, &data)
    }

    /// The linear weight `name` (`[output, input]`) transposed, as the initializer `<name>.T`
    /// of shape `[input, output]`.
    fn transposed_initializer(
        &self,
        g: &mut GraphBuilder,
        name: &str,
        output: i64,
        input: i64,
    ) -> Result<String, ExportError> {
        let data = self.data(name, &[output, input], true)?;
        g.initializer_f32(&format!("{name}.T"), &[input, output], &data)
    }

    /// Row-major float32 values of `name` (of its transpose when `transpose`).
    fn data(&self, name: &str, shape: &[i64], transpose: bool) -> Result<Vec<f32>, ExportError> {
        let tensor = self
            .vars
            .get(name)
            .ok_or_else(|| ExportError::MissingWeight { path: self.path.clone(), name: name.into() })?;
        if tensor.size() != shape {
            return Err(ExportError::WeightShape {
                path: self.path.clone(),
                name: name.into(),
                expected: shape.to_vec(),
                found: tensor.size(),
            });
        }
        let flat = || -> Result<Vec<f32>, tch::TchError> {
            let t = tensor.f_detach()?.f_to_device(Device::Cpu)?.f_to_kind(Kind::Float)?;
            let t = if transpose { t.f_transpose(0, 1)? } else { t };
            Vec::<f32>::try_from(&t.f_contiguous()?.f_reshape([-1])?)
        };
        flat().map_err(|source| ExportError::Weight { path: self.path.clone(), name: name.into(), source })
    }
}

// ---------------------------------------------------------------------------------------------
// The graph builder.

/// Where weight initializers' bytes go.
enum WeightStore {
    /// Into `raw_data`.
    Inline,
    /// Appended to the external data file at `path`, which the model names `location`.
    External { writer: BufWriter<File>, path: PathBuf, location: String, offset: u64 },
}

/// Accumulates nodes and initializers in topological order (each node is added after the nodes
/// producing its inputs, which is the order ONNX requires).
struct GraphBuilder {
    nodes: Vec<NodeProto>,
    /// How many nodes took each `scope/op` name, to number repeats (`Add`, `Add_1`, ...).
    names: HashMap<String, usize>,
    initializers: Vec<TensorProto>,
    /// Constants by content, so a shape or axis used by every layer is stored once.
    constants: HashMap<(i32, Vec<i64>, Vec<u8>), String>,
    initializer_bytes: u64,
    store: WeightStore,
}

impl GraphBuilder {
    fn new(store: WeightStore) -> GraphBuilder {
        GraphBuilder {
            nodes: Vec::new(),
            names: HashMap::new(),
            initializers: Vec::new(),
            constants: HashMap::new(),
            initializer_bytes: 0,
            store,
        }
    }

    /// Add `op` applied to `inputs`, named `<scope>/<op>` (numbered if repeated); returns the
    /// name of its single output, `<node name>_output_0` as torch.onnx names them.
    fn node(&mut self, scope: &str, op: &str, inputs: &[&str], attrs: Vec<AttributeProto>) -> String {
        let name = self.unique_name(scope, op);
        let output = format!("{name}_output_0");
        self.push(name, op, inputs, attrs, output.clone());
        output
    }

    /// As [`GraphBuilder::node`], writing to the given output name (a graph output).
    fn node_into(
        &mut self,
        scope: &str,
        op: &str,
        inputs: &[&str],
        attrs: Vec<AttributeProto>,
        output: &str,
    ) -> String {
        let name = self.unique_name(scope, op);
        self.push(name, op, inputs, attrs, output.to_string());
        output.to_string()
    }

    fn unique_name(&mut self, scope: &str, op: &str) -> String {
        let base = format!("{scope}/{op}");
        let count = self.names.entry(base.clone()).or_insert(0);
        let name = if *count == 0 { base } else { format!("{base}_{count}") };
        *count += 1;
        name
    }

    fn push(&mut self, name: String, op: &str, inputs: &[&str], attrs: Vec<AttributeProto>, output: String) {
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output],
            name: Some(name),
            op_type: Some(op.into()),
            attribute: attrs,
            doc_string: None,
            domain: None,
        });
    }

    /// A float32 weight, inline or in the external data file.
    fn initializer_f32(&mut self, name: &str, dims: &[i64], data: &[f32]) -> Result<String, ExportError> {
        let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.initializer_bytes += bytes.len() as u64;
        let mut tensor = TensorProto {
            dims: dims.to_vec(),
            data_type: Some(DataType::Float as i32),
            name: Some(name.into()),
            ..Default::default()
        };
        match &mut self.store {
            WeightStore::Inline => tensor.raw_data = Some(bytes),
            WeightStore::External { writer, path, location, offset } => {
                let start = offset.next_multiple_of(EXTERNAL_DATA_ALIGNMENT);
                let padding = vec![0u8; (start - *offset) as usize];
                writer.write_all(&padding).and_then(|()| writer.write_all(&bytes)).map_err(|e| io_error(path, e))?;
                *offset = start + bytes.len() as u64;
                tensor.data_location = Some(DataLocation::External as i32);
                tensor.external_data = vec![
                    entry("location", location),
                    entry("offset", &start.to_string()),
                    entry("length", &bytes.len().to_string()),
                ];
            }
        }
        self.initializers.push(tensor);
        Ok(name.to_string())
    }

    /// An int64 constant (a shape, axes, or a scalar when `dims` is empty), always inline.
    fn const_i64(&mut self, dims: &[i64], values: &[i64]) -> String {
        let shown: Vec<String> = values.iter().map(|v| v.to_string()).collect();
        let hint = if dims.is_empty() {
            format!("int64_scalar_{}", shown.join("_"))
        } else {
            format!("int64_{}", shown.join("_"))
        };
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.constant(&hint, DataType::Int64, dims, bytes)
    }

    /// A small float32 constant, always inline.
    fn const_f32(&mut self, hint: &str, dims: &[i64], values: &[f32]) -> String {
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.constant(hint, DataType::Float, dims, bytes)
    }

    fn constant(&mut self, hint: &str, data_type: DataType, dims: &[i64], bytes: Vec<u8>) -> String {
        let key = (data_type as i32, dims.to_vec(), bytes);
        if let Some(name) = self.constants.get(&key) {
            return name.clone();
        }
        let name = self.unique_name("/model/constants", hint);
        self.initializer_bytes += key.2.len() as u64;
        self.initializers.push(TensorProto {
            dims: dims.to_vec(),
            data_type: Some(data_type as i32),
            name: Some(name.clone()),
            raw_data: Some(key.2.clone()),
            ..Default::default()
        });
        self.constants.insert(key, name.clone());
        name
    }

    /// The nodes, the initializers and their total bytes; flushes the external data file.
    fn finish(self) -> Result<(Vec<NodeProto>, Vec<TensorProto>, u64), ExportError> {
        if let WeightStore::External { mut writer, path, .. } = self.store {
            writer.flush().and_then(|()| writer.get_ref().sync_all()).map_err(|e| io_error(&path, e))?;
        }
        Ok((self.nodes, self.initializers, self.initializer_bytes))
    }
}

fn attr_int(name: &str, value: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        i: Some(value),
        r#type: Some(AttributeType::Int as i32),
        ..Default::default()
    }
}

fn attr_ints(name: &str, values: &[i64]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        ints: values.to_vec(),
        r#type: Some(AttributeType::Ints as i32),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn small(model_type: &str, tie: bool) -> Transformer {
        let config = Config {
            model_type: model_type.into(),
            hidden_size: 32,
            intermediate_size: 64,
            num_hidden_layers: 2,
            tie_word_embeddings: tie,
            ..Config::tiny(50)
        };
        Transformer::new(config, Device::Cpu).unwrap()
    }

    fn read(path: &Path) -> ModelProto {
        ModelProto::decode(std::fs::read(path).unwrap().as_slice()).unwrap()
    }

    #[test]
    fn builder_numbers_repeated_node_names_and_shares_constants() {
        let mut g = GraphBuilder::new(WeightStore::Inline);
        let a = g.node("/model/layers.0", "Add", &["x", "y"], vec![]);
        let b = g.node("/model/layers.0", "Add", &[&a, "y"], vec![]);
        assert_eq!(a, "/model/layers.0/Add_output_0");
        assert_eq!(b, "/model/layers.0/Add_1_output_0");
        let s1 = g.const_i64(&[3], &[0, 0, -1]);
        let s2 = g.const_i64(&[3], &[0, 0, -1]);
        let s3 = g.const_i64(&[], &[1]);
        assert_eq!(s1, s2);
        assert_ne!(s1, s3);
        let (nodes, initializers, bytes) = g.finish().unwrap();
        assert_eq!((nodes.len(), initializers.len(), bytes), (2, 2, 32));
    }

    /// Every node reads only graph inputs, initializers and earlier outputs; names are unique;
    /// every graph output is produced. Tied models keep one copy of the embedding.
    #[test]
    fn the_graph_is_well_formed() {
        for (model_type, tie) in [("qwen2", true), ("llama", false)] {
            let model = small(model_type, tie);
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("model.onnx");
            let summary = export(&model, &path, &ExportOptions::default()).unwrap();
            let proto = read(&path);
            assert_eq!((proto.ir_version, proto.opset_import[0].version), (Some(IR_VERSION), Some(OPSET_VERSION)));
            let graph = proto.graph.unwrap();
            assert_eq!(graph.node.len(), summary.nodes);
            assert_eq!(graph.initializer.len(), summary.initializers);
            let mut defined: HashSet<String> = graph.input.iter().filter_map(|v| v.name.clone()).collect();
            for tensor in &graph.initializer {
                assert!(tensor.raw_data.is_some() && tensor.external_data.is_empty());
                assert!(defined.insert(tensor.name.clone().unwrap()), "duplicate {:?}", tensor.name);
            }
            let mut names = HashSet::new();
            for node in &graph.node {
                assert!(names.insert(node.name.clone().unwrap()), "duplicate node {:?}", node.name);
                for input in &node.input {
                    assert!(defined.contains(input), "{:?} reads {input} before it is defined", node.name);
                }
                for output in &node.output {
                    assert!(defined.insert(output.clone()), "{output} is produced twice");
                }
            }
            for output in &graph.output {
                assert!(defined.contains(output.name.as_deref().unwrap()), "{:?} is never produced", output.name);
            }
            let initializers: HashSet<_> = graph.initializer.iter().filter_map(|t| t.name.as_deref()).collect();
            assert_eq!(initializers.contains("lm_head.weight.T"), !tie);
            let weight_bytes: u64 =
                graph.initializer.iter().map(|t| t.raw_data.as_ref().map_or(0, |d| d.len() as u64)).sum();
            assert_eq!(weight_bytes, summary.initializer_bytes);
            assert!(weight_bytes >= 4 * model.config.parameters() as u64);
        }
    }

    /// External tensors sit at aligned, non-overlapping offsets of `<file name>_data`, and hold
    /// the model's values (transposed for linear weights).
    #[test]
    fn external_data_is_aligned_and_holds_the_weights() {
        let model = small("llama", false);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.onnx");
        let summary = export(&model, &path, &ExportOptions { external_data: true }).unwrap();
        assert_eq!(summary.data_path, Some(dir.path().join("policy.onnx_data")));
        let data = std::fs::read(dir.path().join("policy.onnx_data")).unwrap();
        let graph = read(&path).graph.unwrap();
        let vars = model.vs.variables();
        let mut end = 0;
        let mut external = 0;
        for tensor in &graph.initializer {
            if tensor.data_location != Some(DataLocation::External as i32) {
                continue;
            }
            external += 1;
            assert!(tensor.raw_data.is_none());
            let field = |key: &str| {
                let entry = tensor.external_data.iter().find(|e| e.key.as_deref() == Some(key)).unwrap();
                entry.value.clone().unwrap()
            };
            assert_eq!(field("location"), "policy.onnx_data");
            let offset: usize = field("offset").parse().unwrap();
            let length: usize = field("length").parse().unwrap();
            assert_eq!(offset % EXTERNAL_DATA_ALIGNMENT as usize, 0);
            assert!(offset >= end, "tensors overlap");
            end = offset + length;
            assert_eq!(length, 4 * tensor.dims.iter().product::<i64>() as usize);
            let values: Vec<f32> =
                data[offset..end].chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
            let name = tensor.name.as_deref().unwrap();
            let expected = match name.strip_suffix(".T") {
                Some(original) => vars[original].transpose(0, 1),
                None => vars[name].shallow_clone(),
            };
            let expected = Vec::<f32>::try_from(&expected.contiguous().reshape([-1])).unwrap();
            assert_eq!(values, expected, "{name}");
        }
        assert_eq!(external, vars.len(), "every weight is external");
    }
}
