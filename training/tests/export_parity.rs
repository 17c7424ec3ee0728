//! The ONNX export computes what the tch model computes: each test exports a small random
//! model, runs the file through ONNX Runtime (loaded from `ORT_DYLIB_PATH`, which
//! `.cargo/config.toml` points at `.venv/libonnxruntime.so`) and compares logits and presents
//! with `Transformer::forward` to 1e-4, on the first pass and on cached passes.
//!
//! Weights are perturbed away from their initial values (norm scales of 1, biases of 0) so a
//! dropped norm weight or bias would show; the embedding is scaled up so the logits are O(1)
//! and the tolerance means something. Every test builds its own model and session.

use std::path::Path;
use std::sync::OnceLock;

use ort::environment::Environment;
use ort::session::Session;
use ort::value::{DynValue, Tensor as OrtTensor};
use switchyard_train::export::onnx::{ExportOptions, ExportSummary, export};
use switchyard_train::model::{Config, LayerCache, Transformer, position_ids};
use tch::{Device, Kind, Tensor};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const TOLERANCE: f32 = 1e-4;

/// The process-wide ONNX Runtime environment, loaded once from `ORT_DYLIB_PATH`.
fn environment() -> &'static Environment {
    static ENVIRONMENT: OnceLock<Environment> = OnceLock::new();
    ENVIRONMENT.get_or_init(|| {
        let Some(path) = std::env::var_os("ORT_DYLIB_PATH") else {
            panic!("ORT_DYLIB_PATH is not set; run scripts/setup, or point it at libonnxruntime.so (>= 1.30)")
        };
        let path = Path::new(&path);
        assert!(
            path.exists(),
            "ORT_DYLIB_PATH={} does not exist; run scripts/setup to install ONNX Runtime",
            path.display()
        );
        let builder =
            ort::init_from(path).unwrap_or_else(|e| panic!("loading ONNX Runtime from {}: {e}", path.display()));
        builder.build().unwrap_or_else(|e| panic!("creating the ONNX Runtime environment: {e}"))
    })
}

fn session(path: &Path) -> Result<Session, Box<dyn std::error::Error>> {
    Ok(Session::builder(environment())?.with_intra_threads(1)?.commit_from_file(path)?)
}

// ---------------------------------------------------------------------------------------------
// Models.

/// Qwen2: grouped-query attention (4 heads, 2 kv heads), q/k/v biases, tied embeddings.
pub fn qwen2() -> Config {
    Config {
        hidden_size: 32,
        intermediate_size: 64,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        num_key_value_heads: 2,
        ..Config::tiny(50)
    }
}

/// Llama: no biases, untied LM head.
fn llama() -> Config {
    Config { model_type: "llama".into(), tie_word_embeddings: false, ..qwen2() }
}

/// Llama with `attention_bias` (q/k/v and o_proj biases), one kv head for all four query heads,
/// and a head_dim that is not hidden / heads.
fn llama_biased_multi_query() -> Config {
    Config { attention_bias: Some(true), num_key_value_heads: 1, head_dim: Some(16), ..llama() }
}

/// Llama with as many kv heads as query heads (no repetition).
fn llama_multi_head() -> Config {
    Config { num_key_value_heads: 4, ..llama() }
}

/// A model with seeded random weights, moved off the values a missing op would reproduce.
fn model(config: Config, seed: i64) -> Result<Transformer, Box<dyn std::error::Error>> {
    tch::manual_seed(seed);
    let model = Transformer::new(config, Device::Cpu)?;
    switchyard_train::model::perturb(&model, 1.0);
    Ok(model)
}

fn export_to(
    model: &Transformer,
    dir: &tempfile::TempDir,
    external_data: bool,
) -> Result<(std::path::PathBuf, ExportSummary), Box<dyn std::error::Error>> {
    let path = dir.path().join("model.onnx");
    let summary = export(model, &path, &ExportOptions { external_data })?;
    Ok((path, summary))
}

// ---------------------------------------------------------------------------------------------
// Running both sides.

/// A float tensor on the host: shape and row-major values.
#[derive(Clone, Debug)]
struct Array {
    shape: Vec<i64>,
    data: Vec<f32>,
}

impl Array {
    fn from_tch(t: &Tensor) -> Result<Array, tch::TchError> {
        let data = Vec::<f32>::try_from(&t.f_to_kind(Kind::Float)?.f_contiguous()?.f_reshape([-1])?)?;
        Ok(Array { shape: t.size(), data })
    }

    fn to_ort(&self) -> Result<DynValue, ort::Error> {
        Ok(OrtTensor::from_array((self.shape.clone(), self.data.clone()))?.into_dyn())
    }
}

/// One pass's outputs: logits and one (key, value) per layer.
struct Pass {
    logits: Array,
    present: Vec<(Array, Array)>,
}

fn tch_pass(
    model: &Transformer,
    ids: &Tensor,
    mask: &Tensor,
    positions: &Tensor,
    past: &[LayerCache],
) -> Result<(Pass, Vec<LayerCache>), tch::TchError> {
    let out = model.forward(ids, mask, positions, past);
    let present = out
        .present
        .iter()
        .map(|(k, v)| Ok((Array::from_tch(k)?, Array::from_tch(v)?)))
        .collect::<Result<_, tch::TchError>>()?;
    Ok((Pass { logits: Array::from_tch(&out.logits)?, present }, out.present))
}

fn int64_input(t: &Tensor) -> Result<DynValue, Box<dyn std::error::Error>> {
    let data = Vec::<i64>::try_from(&t.f_contiguous()?.f_reshape([-1])?)?;
    Ok(OrtTensor::from_array((t.size(), data))?.into_dyn())
}

/// Run the exported model; an empty `past` means a first pass (past tensors of length 0).
fn ort_pass(
    session: &mut Session,
    config: &Config,
    ids: &Tensor,
    mask: &Tensor,
    positions: &Tensor,
    past: &[(Array, Array)],
) -> Result<Pass, Box<dyn std::error::Error>> {
    let batch = ids.size()[0];
    let layers = config.num_hidden_layers as usize;
    let empty = Array { shape: vec![batch, config.num_key_value_heads, 0, config.head_dim()], data: Vec::new() };
    let mut inputs: Vec<(String, DynValue)> = vec![
        ("input_ids".into(), int64_input(ids)?),
        ("attention_mask".into(), int64_input(mask)?),
        ("position_ids".into(), int64_input(positions)?),
    ];
    for i in 0..layers {
        let (key, value) = past.get(i).map_or((&empty, &empty), |(k, v)| (k, v));
        inputs.push((format!("past_key_values.{i}.key"), key.to_ort()?));
        inputs.push((format!("past_key_values.{i}.value"), value.to_ort()?));
    }
    let outputs = session.run(inputs)?;
    let array = |name: &str| -> Result<Array, Box<dyn std::error::Error>> {
        let value = outputs.get(name).ok_or_else(|| format!("the model has no output `{name}`"))?;
        let (shape, data) = value.try_extract_tensor::<f32>()?;
        Ok(Array { shape: shape.to_vec(), data: data.to_vec() })
    };
    let logits = array("logits")?;
    let present = (0..layers)
        .map(|i| Ok((array(&format!("present.{i}.key"))?, array(&format!("present.{i}.value"))?)))
        .collect::<Result<_, Box<dyn std::error::Error>>>()?;
    Ok(Pass { logits, present })
}

fn assert_close(what: &str, onnx: &Array, torch: &Array) {
    assert_eq!(onnx.shape, torch.shape, "{what}: shapes differ");
    let worst = onnx.data.iter().zip(&torch.data).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(
        worst <= TOLERANCE && onnx.data.iter().all(|v| v.is_finite()),
        "{what}: ONNX Runtime and tch differ by up to {worst} (tolerance {TOLERANCE})"
    );
}

fn assert_pass_close(what: &str, onnx: &Pass, torch: &Pass) {
    assert_close(&format!("{what} logits"), &onnx.logits, &torch.logits);
    assert_eq!(onnx.present.len(), torch.present.len(), "{what}: number of presents");
    for (i, ((ok, ov), (tk, tv))) in onnx.present.iter().zip(&torch.present).enumerate() {
        assert_close(&format!("{what} present.{i}.key"), ok, tk);
        assert_close(&format!("{what} present.{i}.value"), ov, tv);
    }
}

fn ones(batch: i64, len: i64) -> Tensor {
    Tensor::ones([batch, len], (Kind::Int64, Device::Cpu))
}

/// A prefill of `prompt` tokens, then a cached pass of `step` more, on both sides; ONNX
/// Runtime is fed its own presents and tch its own.
fn check_prefill_then_step(
    config: Config,
    seed: i64,
    external_data: bool,
    batch: i64,
    prompt: i64,
    step: i64,
) -> TestResult {
    let model = model(config.clone(), seed)?;
    let dir = tempfile::tempdir()?;
    let (path, _) = export_to(&model, &dir, external_data)?;
    let mut session = session(&path)?;
    let ids = Tensor::randint(config.vocab_size, [batch, prompt + step], (Kind::Int64, Device::Cpu));
    let mask = ones(batch, prompt + step);
    let positions = position_ids(&mask);

    let (first_ids, first_mask) = (ids.narrow(1, 0, prompt), mask.narrow(1, 0, prompt));
    let first_positions = positions.narrow(1, 0, prompt);
    let (torch, cache) = tch_pass(&model, &first_ids, &first_mask, &first_positions, &[])?;
    let onnx = ort_pass(&mut session, &config, &first_ids, &first_mask, &first_positions, &[])?;
    assert_pass_close(&format!("{} prefill", config.model_type), &onnx, &torch);

    let (next_ids, next_positions) = (ids.narrow(1, prompt, step), positions.narrow(1, prompt, step));
    let (torch, _) = tch_pass(&model, &next_ids, &mask, &next_positions, &cache)?;
    let onnx = ort_pass(&mut session, &config, &next_ids, &mask, &next_positions, &onnx.present)?;
    assert_eq!(onnx.present[0].0.shape[2], prompt + step, "the presents grow by the step");
    assert_pass_close(&format!("{} cached step", config.model_type), &onnx, &torch);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Tests.

#[test]
fn logits_and_presents_match_torch_without_past() -> TestResult {
    let config = qwen2();
    let model = model(config.clone(), 11)?;
    let dir = tempfile::tempdir()?;
    let (path, summary) = export_to(&model, &dir, false)?;
    let mut session = session(&path)?;

    // The interface is optimum's, in order.
    let mut expected_inputs = vec!["input_ids".to_string(), "attention_mask".into(), "position_ids".into()];
    let mut expected_outputs = vec!["logits".to_string()];
    for i in 0..config.num_hidden_layers {
        expected_inputs.extend([format!("past_key_values.{i}.key"), format!("past_key_values.{i}.value")]);
        expected_outputs.extend([format!("present.{i}.key"), format!("present.{i}.value")]);
    }
    let names = |outlets: &[ort::value::Outlet]| outlets.iter().map(|o| o.name().to_string()).collect::<Vec<_>>();
    assert_eq!(names(session.inputs()), expected_inputs);
    assert_eq!(names(session.outputs()), expected_outputs);
    assert_eq!(summary.inputs, expected_inputs);
    assert_eq!(summary.outputs, expected_outputs);
    assert!(summary.nodes > 0 && summary.data_path.is_none());
    let weight_bytes = 4 * config.parameters() as u64;
    assert!(summary.initializer_bytes >= weight_bytes, "{summary:?} holds fewer bytes than the weights");

    let ids = Tensor::randint(config.vocab_size, [2, 7], (Kind::Int64, Device::Cpu));
    let mask = ones(2, 7);
    let positions = position_ids(&mask);
    let (torch, _) = tch_pass(&model, &ids, &mask, &positions, &[])?;
    let onnx = ort_pass(&mut session, &config, &ids, &mask, &positions, &[])?;
    assert_eq!(onnx.logits.shape, vec![2, 7, config.vocab_size]);
    assert_eq!(onnx.present[0].0.shape, vec![2, config.num_key_value_heads, 7, config.head_dim()]);
    assert_pass_close("first pass", &onnx, &torch);
    Ok(())
}

#[test]
fn cached_decoding_matches_torch() -> TestResult {
    check_prefill_then_step(qwen2(), 12, false, 2, 5, 3)
}

#[test]
fn left_padded_batch_matches_torch() -> TestResult {
    let config = qwen2();
    let model = model(config.clone(), 13)?;
    let dir = tempfile::tempdir()?;
    let (path, _) = export_to(&model, &dir, false)?;
    let mut session = session(&path)?;

    // Row 0 is two tokens shorter, padded on the left.
    let ids = Tensor::randint(config.vocab_size, [2, 6], (Kind::Int64, Device::Cpu));
    let mask = Tensor::from_slice(&[0i64, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]).view([2, 6]);
    let positions = position_ids(&mask);
    let (torch, cache) = tch_pass(&model, &ids, &mask, &positions, &[])?;
    let onnx = ort_pass(&mut session, &config, &ids, &mask, &positions, &[])?;
    // Padding rows included: a fully masked row attends uniformly on both sides.
    assert_pass_close("padded prefill", &onnx, &torch);

    // One decoding step: the mask grows by a real token, positions continue per row.
    let next = Tensor::randint(config.vocab_size, [2, 1], (Kind::Int64, Device::Cpu));
    let mask = Tensor::cat(&[&mask, &ones(2, 1)], 1);
    let next_positions = position_ids(&mask).narrow(1, 6, 1);
    assert_eq!(Vec::<i64>::try_from(&next_positions.reshape([-1]))?, vec![4, 6]);
    let (torch, _) = tch_pass(&model, &next, &mask, &next_positions, &cache)?;
    let onnx = ort_pass(&mut session, &config, &next, &mask, &next_positions, &onnx.present)?;
    assert_pass_close("padded step", &onnx, &torch);
    Ok(())
}

#[test]
fn qwen2_and_llama_variants_match_torch() -> TestResult {
    for (seed, config) in [(21, qwen2()), (22, llama()), (23, llama_biased_multi_query()), (24, llama_multi_head())] {
        check_prefill_then_step(config, seed, false, 2, 4, 2)?;
    }
    Ok(())
}

#[test]
fn external_data_export_loads_and_matches() -> TestResult {
    let config = llama();
    let model = model(config.clone(), 31)?;
    let dir = tempfile::tempdir()?;
    let (path, summary) = export_to(&model, &dir, true)?;
    let data_path = dir.path().join("model.onnx_data");
    assert_eq!(summary.data_path.as_deref(), Some(data_path.as_path()));
    let weight_bytes = 4 * config.parameters() as u64;
    assert!(std::fs::metadata(&data_path)?.len() >= weight_bytes, "the weights are in model.onnx_data");
    // The model file is the inline export less the weights (give or take the location entries
    // that replace them; the unit tests in export::onnx check the layout exactly).
    let inline = tempfile::tempdir()?;
    let (inline_path, _) = export_to(&model, &inline, false)?;
    let moved = std::fs::metadata(&inline_path)?.len().saturating_sub(std::fs::metadata(&path)?.len());
    assert!(moved >= weight_bytes * 9 / 10, "only {moved} of {weight_bytes} weight bytes left the model file");

    let mut session = session(&path)?;
    let ids = Tensor::randint(config.vocab_size, [2, 5], (Kind::Int64, Device::Cpu));
    let mask = ones(2, 5);
    let positions = position_ids(&mask);
    let (torch, _) = tch_pass(&model, &ids, &mask, &positions, &[])?;
    let onnx = ort_pass(&mut session, &config, &ids, &mask, &positions, &[])?;
    assert_pass_close("external data", &onnx, &torch);
    Ok(())
}

#[test]
fn external_data_export_runs_cached_passes() -> TestResult {
    check_prefill_then_step(qwen2(), 32, true, 1, 3, 2)
}

#[test]
fn export_errors_name_the_file() -> TestResult {
    let model = model(qwen2(), 41)?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("missing-dir").join("model.onnx");
    for external_data in [false, true] {
        let err = export(&model, &path, &ExportOptions { external_data }).err().ok_or("export should fail")?;
        assert!(err.to_string().contains("missing-dir"), "{err}");
    }
    Ok(())
}

/// `export --adapter`: the base with the adapter merged exports to a graph whose logits are
/// those of tch running the base with the adapter applied (unmerged).
#[test]
fn an_adapter_merged_at_export_gives_the_logits_of_the_adapted_model() -> TestResult {
    let config = llama();
    let base = model(config.clone(), 21)?;
    let base_dir = tempfile::tempdir()?;
    base.save(base_dir.path())?;
    let mut tuned = Transformer::load(base_dir.path(), Device::Cpu)?;
    let options = switchyard_train::lora::LoraOptions { rank: 4, dropout: 0.0, ..Default::default() };
    tuned.attach_lora(&options)?;
    tch::no_grad(|| {
        for (_, mut t) in tuned.trainable() {
            let noise = t.randn_like() * 0.2;
            t.copy_(&noise);
        }
    });
    let adapter_dir = tempfile::tempdir()?;
    tuned.save(adapter_dir.path())?;

    let mut merged = Transformer::load_with_adapter(base_dir.path(), adapter_dir.path(), Device::Cpu)?;
    merged.merge_adapter()?;
    let dir = tempfile::tempdir()?;
    let (path, _) = export_to(&merged, &dir, false)?;
    let mut session = session(&path)?;
    let ids = Tensor::randint(config.vocab_size, [2, 6], (Kind::Int64, Device::Cpu));
    let mask = ones(2, 6);
    let positions = position_ids(&mask);
    let (torch, _) = tch::no_grad(|| tch_pass(&tuned, &ids, &mask, &positions, &[]))?;
    let onnx = ort_pass(&mut session, &config, &ids, &mask, &positions, &[])?;
    assert_pass_close("merged adapter", &onnx, &torch);
    // The adapter is not a no-op: the base alone differs.
    let (plain, _) = tch::no_grad(|| tch_pass(&base, &ids, &mask, &positions, &[]))?;
    let moved = plain.logits.data.iter().zip(&torch.logits.data).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(moved > 1e-2, "the adapter moved the logits by only {moved}");
    Ok(())
}
