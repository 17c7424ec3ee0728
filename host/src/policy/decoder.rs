//! One forward pass of the decoder graph over a batch, through ONNX Runtime.
//!
//! A pass takes `input_ids` `[batch, seq]`, the attention mask over past and new positions,
//! position ids and the past caches (or none: past tensors of length 0 on a first pass), and
//! returns the last position's logits per row plus the present caches, which are kept as
//! ONNX Runtime values so the next pass reads them without a copy.
//!
//! Invariants: a [`Decoder`] exists only for a graph whose [`Signature`] checked out and
//! whose probe pass (one token, no past) returned the shapes the signature promises, so a
//! pass fails at request time only for reasons outside the files (memory, a runtime error);
//! `Session::run` takes `&mut self` in ort rc.15, so a decoder is owned by one thread.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use ort::session::{Session, SessionInputValue};
use ort::value::{DynValue, Tensor};

use super::error::LoadError;
use super::graph::{Port, Signature};
use super::model_dir::Architecture;
use super::runtime::{Device, SessionOptions, open_session};

/// A batch's caches: `2 * layers` values (`key`, `value` per layer), each
/// `[batch, kv_heads, len, head_dim]`.
pub type Caches = Vec<DynValue>;

pub struct Decoder {
    session: Session,
    pub signature: Signature,
    /// The logits' vocabulary size (from the graph, or from the probe pass).
    pub vocab: usize,
    pub device: Device,
    pub model: PathBuf,
}

/// The inputs of one pass, row-major.
pub struct Pass<'a> {
    pub batch: usize,
    pub seq: usize,
    pub input_ids: &'a [i64],
    /// `[batch, past + seq]`.
    pub attention_mask: &'a [i64],
    pub position_ids: &'a [i64],
    /// None: a first pass (past of length 0).
    pub past: Option<&'a Caches>,
}

pub struct PassOutput {
    /// `[batch, vocab]`: each row's logits at the last position.
    pub logits: Vec<f32>,
    pub present: Caches,
}

impl Decoder {
    /// Open `model`, check its interface and run the probe pass.
    pub fn open(model: &Path, options: &SessionOptions, fallback: &Architecture) -> Result<Decoder, LoadError> {
        let (session, device) = open_session(model, options)?;
        let inputs = session.inputs().iter().map(Port::from_outlet).collect();
        let outputs = session.outputs().iter().map(Port::from_outlet).collect();
        let signature =
            Signature::inspect(inputs, outputs, fallback).map_err(|reason| LoadError::file(model, reason))?;
        let mut decoder =
            Decoder { session, vocab: signature.vocab.unwrap_or(0), signature, device, model: model.into() };
        decoder.probe()?;
        Ok(decoder)
    }

    /// One token through the graph: proves the weights load and run, and fixes the vocabulary
    /// size and cache shapes from real outputs.
    fn probe(&mut self) -> Result<(), LoadError> {
        let fail = |reason: String| LoadError::file(self.model.clone(), format!("the probe pass failed: {reason}"));
        let (kv, hd) = (self.signature.kv_heads as i64, self.signature.head_dim as i64);
        let mut inputs: Vec<(Cow<'static, str>, SessionInputValue<'static>)> = vec![
            ("input_ids".into(), int64(vec![1, 1], vec![0]).map_err(&fail)?),
            ("attention_mask".into(), int64(vec![1, 1], vec![1]).map_err(&fail)?),
        ];
        if self.signature.position_ids {
            inputs.push(("position_ids".into(), int64(vec![1, 1], vec![0]).map_err(&fail)?));
        }
        for name in &self.signature.past_names {
            inputs.push((name.clone().into(), empty_cache(1, kv, hd).map_err(&fail)?));
        }
        let outputs = self.session.run(inputs).map_err(|e| fail(e.to_string()))?;
        let shape = |name: &str| -> Result<Vec<i64>, String> {
            let value = outputs.get(name).ok_or_else(|| format!("no output `{name}`"))?;
            let (shape, _) = value.try_extract_tensor::<f32>().map_err(|e| format!("output `{name}`: {e}"))?;
            Ok(shape.to_vec())
        };
        let logits = shape("logits").map_err(&fail)?;
        let vocab = match logits.as_slice() {
            [1, 1, v] if *v > 0 => *v as usize,
            other => return Err(fail(format!("logits have shape {other:?}, expected [1, 1, vocab]"))),
        };
        for name in &self.signature.present_names {
            let s = shape(name).map_err(&fail)?;
            if s != [1, kv, 1, hd] {
                return Err(fail(format!("`{name}` has shape {s:?}, expected [1, {kv}, 1, {hd}]")));
            }
        }
        drop(outputs);
        self.vocab = vocab;
        Ok(())
    }

    /// Run one pass. `Err` is ONNX Runtime's message.
    pub fn run(&mut self, pass: Pass<'_>) -> Result<PassOutput, String> {
        let Pass { batch, seq, input_ids, attention_mask, position_ids, past } = pass;
        let total = attention_mask.len() / batch.max(1);
        let mut inputs: Vec<(Cow<'_, str>, SessionInputValue<'_>)> = vec![
            ("input_ids".into(), int64(vec![batch as i64, seq as i64], input_ids.to_vec())?),
            ("attention_mask".into(), int64(vec![batch as i64, total as i64], attention_mask.to_vec())?),
        ];
        if self.signature.position_ids {
            inputs.push(("position_ids".into(), int64(vec![batch as i64, seq as i64], position_ids.to_vec())?));
        }
        let (kv, hd) = (self.signature.kv_heads as i64, self.signature.head_dim as i64);
        for (i, name) in self.signature.past_names.iter().enumerate() {
            let value = match past {
                Some(caches) => SessionInputValue::from(&caches[i]),
                None => empty_cache(batch as i64, kv, hd)?,
            };
            inputs.push((name.as_str().into(), value));
        }
        let mut outputs = self.session.run(inputs).map_err(|e| e.to_string())?;
        let (shape, data) =
            outputs["logits"].try_extract_tensor::<f32>().map_err(|e| format!("reading the logits: {e}"))?;
        let vocab = *shape.last().unwrap_or(&0) as usize;
        if shape.len() != 3 || shape[0] as usize != batch || shape[1] as usize != seq || vocab != self.vocab {
            return Err(format!("logits have shape {shape:?}, expected [{batch}, {seq}, {}]", self.vocab));
        }
        let mut logits = Vec::with_capacity(batch * vocab);
        for row in 0..batch {
            let start = (row * seq + seq - 1) * vocab;
            logits.extend_from_slice(&data[start..start + vocab]);
        }
        let present = self
            .signature
            .present_names
            .iter()
            .map(|name| outputs.remove(name).ok_or_else(|| format!("no output `{name}`")))
            .collect::<Result<_, _>>()?;
        Ok(PassOutput { logits, present })
    }
}

fn int64(shape: Vec<i64>, data: Vec<i64>) -> Result<SessionInputValue<'static>, String> {
    Ok(Tensor::from_array((shape, data)).map_err(|e| e.to_string())?.into_dyn().into())
}

fn empty_cache(batch: i64, kv: i64, hd: i64) -> Result<SessionInputValue<'static>, String> {
    Ok(Tensor::from_array((vec![batch, kv, 0, hd], Vec::<f32>::new())).map_err(|e| e.to_string())?.into_dyn().into())
}
