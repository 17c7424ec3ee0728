//! Export of a trained policy for the host: the ONNX graph ([`onnx`]) plus the tokenizer
//! files ([`package`]), in the directory layout the host's policy runtime and Hugging Face
//! optimum read.
//!
//! [`onnx::export`] writes the decoder of [`crate::model`] as a float32 ONNX graph in the layout
//! optimum gives decoder-with-past models (`input_ids`, `attention_mask`, `position_ids`,
//! `past_key_values.{i}.key|value` in; `logits`, `present.{i}.key|value` out). The graph
//! computes what `Transformer::forward` computes, operation for operation;
//! `tests/export_parity.rs` holds the two to 1e-4 on logits and caches through ONNX Runtime.
//! The protobuf messages are hand-written (`proto`), covering only what the exporter emits.
//! [`import`] reads such a graph's weights back, so a shipped policy can be trained further.

pub mod import;
pub mod onnx;
pub mod package;
mod proto;

pub use import::import_dir;
pub use package::{export_dir, provenance};
