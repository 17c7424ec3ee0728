//! Reading an exported policy directory back into a trainable model directory: the weights
//! come out of the graph's initializers, so a shipped `models/<name>/` (ONNX and tokenizer, no
//! safetensors) can be trained further or evaluated with tch.
//!
//! Invariants:
//! - only the naming of [`super::onnx`] is understood: a weight is the initializer of its Hugging
//!   Face name, or its transpose stored as `<name>.T`; every variable the config's architecture
//!   has must be found, with the shape the config implies, or nothing is written;
//! - the config comes from the graph's `config` metadata (what the exporter serialised from the
//!   model itself), not from a side file that could have been edited since;
//! - import is exact: float32 bytes are copied, so exporting the imported model gives the same
//!   initializers (a test checks the logits agree bit for bit with the model that was exported).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use prost::Message;
use tch::{Device, Kind, Tensor};

use super::proto::{DataLocation, DataType, ModelProto, TensorProto};
use crate::model::{Config, ModelError, Transformer};

/// Files copied from the policy directory to the model directory, when present.
const SIDE_FILES: [&str; 3] = ["tokenizer.json", "tokenizer_config.json", "generation_config.json"];

/// Why an import failed; each names the file involved.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path}: not an ONNX model: {source}")]
    Decode { path: String, source: prost::DecodeError },
    #[error("{path}: the model has no `config` metadata (was it written by switchyard-train export?)")]
    NoConfig { path: String },
    #[error("{path}: the `config` metadata is not a model config: {source}")]
    Config { path: String, source: serde_json::Error },
    #[error("{path}: {source}")]
    Model { path: String, source: ModelError },
    #[error("{path}: no initializer `{name}` (or `{name}.T`) for the model's weight")]
    MissingWeight { path: String, name: String },
    #[error("{path}: initializer `{name}` has shape {found:?}, the config implies {expected:?}")]
    WeightShape { path: String, name: String, expected: Vec<i64>, found: Vec<i64> },
    #[error("{path}: initializer `{name}`: {message}")]
    WeightData { path: String, name: String, message: String },
    #[error("{path}: no tokenizer.json next to the model")]
    NoTokenizer { path: String },
}

/// Read `<dir>/model.onnx` (and `model.onnx_data` when the weights are external) into a model
/// on `device`.
pub fn import(dir: &Path, device: Device) -> Result<Transformer, ImportError> {
    let path = dir.join("model.onnx");
    let shown = path.display().to_string();
    let bytes = std::fs::read(&path).map_err(|source| ImportError::Io { path: shown.clone(), source })?;
    let proto =
        ModelProto::decode(bytes.as_slice()).map_err(|source| ImportError::Decode { path: shown.clone(), source })?;
    let config_json = proto
        .metadata_props
        .iter()
        .find(|e| e.key.as_deref() == Some("config"))
        .and_then(|e| e.value.as_deref())
        .ok_or_else(|| ImportError::NoConfig { path: shown.clone() })?;
    let config: Config =
        serde_json::from_str(config_json).map_err(|source| ImportError::Config { path: shown.clone(), source })?;
    let model =
        Transformer::new(config, device).map_err(|source| ImportError::Model { path: shown.clone(), source })?;

    let graph = proto.graph.unwrap_or_default();
    let initializers: HashMap<&str, &TensorProto> =
        graph.initializer.iter().filter_map(|t| t.name.as_deref().map(|n| (n, t))).collect();
    let mut external = ExternalData { dir: dir.to_path_buf(), files: HashMap::new() };
    let mut vars: Vec<(String, Tensor)> = model.vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, mut var) in vars {
        let expected = var.size();
        let (tensor, transposed) =
            match (initializers.get(name.as_str()), initializers.get(format!("{name}.T").as_str())) {
                (Some(t), _) => (*t, false),
                (None, Some(t)) if expected.len() == 2 => (*t, true),
                _ => return Err(ImportError::MissingWeight { path: shown.clone(), name }),
            };
        let stored: Vec<i64> = if transposed { vec![expected[1], expected[0]] } else { expected.clone() };
        if tensor.dims != stored {
            return Err(ImportError::WeightShape {
                path: shown.clone(),
                name: tensor.name.clone().unwrap_or_default(),
                expected: stored,
                found: tensor.dims.clone(),
            });
        }
        let values = external.float_values(tensor, &stored).map_err(|message| ImportError::WeightData {
            path: shown.clone(),
            name: name.clone(),
            message,
        })?;
        let t = Tensor::from_slice(&values).reshape(&stored);
        let t = if transposed { t.transpose(0, 1) } else { t };
        tch::no_grad(|| var.copy_(&t.to_kind(Kind::Float).to_device(device)));
    }
    Ok(model)
}

/// Import the policy directory `dir` into the model directory `out` (config.json,
/// model.safetensors and the tokenizer files), loadable by [`Transformer::load`] and `--init`.
pub fn import_dir(dir: &Path, out: &Path) -> Result<Transformer, ImportError> {
    let tokenizer = dir.join("tokenizer.json");
    if !tokenizer.is_file() {
        return Err(ImportError::NoTokenizer { path: dir.display().to_string() });
    }
    let model = import(dir, Device::Cpu)?;
    model.save(out).map_err(|source| ImportError::Model { path: out.display().to_string(), source })?;
    for f in SIDE_FILES {
        let from = dir.join(f);
        if from.is_file() {
            std::fs::copy(&from, out.join(f))
                .map_err(|source| ImportError::Io { path: from.display().to_string(), source })?;
        }
    }
    Ok(model)
}

/// External weight files, read once each.
struct ExternalData {
    dir: PathBuf,
    files: HashMap<String, Vec<u8>>,
}

impl ExternalData {
    /// The float32 values of `tensor` (`dims` already checked), from `raw_data`, `float_data`
    /// or the external file its `external_data` names.
    fn float_values(&mut self, tensor: &TensorProto, dims: &[i64]) -> Result<Vec<f32>, String> {
        if tensor.data_type != Some(DataType::Float as i32) {
            return Err(format!("element type {:?} is not float32", tensor.data_type));
        }
        let count: i64 = dims.iter().product();
        let count = usize::try_from(count).map_err(|_| format!("bad element count {count}"))?;
        if tensor.data_location == Some(DataLocation::External as i32) {
            let bytes = self.external_bytes(tensor)?;
            return le_floats(bytes, count);
        }
        if let Some(raw) = &tensor.raw_data {
            return le_floats(raw, count);
        }
        if tensor.float_data.len() == count {
            return Ok(tensor.float_data.clone());
        }
        Err(format!("holds {} values, its shape needs {count}", tensor.float_data.len()))
    }

    fn external_bytes(&mut self, tensor: &TensorProto) -> Result<&[u8], String> {
        let field = |key: &str| {
            tensor.external_data.iter().find(|e| e.key.as_deref() == Some(key)).and_then(|e| e.value.clone())
        };
        let location = field("location").ok_or("external data without a location")?;
        // The location is a file name next to the model, never a path out of its directory.
        if location.contains('/') || location.contains('\\') || location == ".." {
            return Err(format!("external data location `{location}` is not a file name"));
        }
        let offset: usize = field("offset").map_or(Ok(0), |v| v.parse()).map_err(|e| format!("offset: {e}"))?;
        if !self.files.contains_key(&location) {
            let path = self.dir.join(&location);
            let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            self.files.insert(location.clone(), bytes);
        }
        let file = &self.files[&location];
        let length: usize = match field("length") {
            Some(v) => v.parse().map_err(|e| format!("length: {e}"))?,
            None => file.len().saturating_sub(offset),
        };
        file.get(offset..offset.saturating_add(length))
            .ok_or_else(|| format!("{location}: bytes {offset}..{} past its end ({})", offset + length, file.len()))
    }
}

fn le_floats(bytes: &[u8], count: usize) -> Result<Vec<f32>, String> {
    if bytes.len() != count * 4 {
        return Err(format!("holds {} bytes, its shape needs {}", bytes.len(), count * 4));
    }
    Ok(bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
}
