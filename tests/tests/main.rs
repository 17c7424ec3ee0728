//! The end-to-end tests, one module per subject, linked into one binary.

mod adapter;
mod compile_cache;
mod config;
mod engine;
mod eval;
mod faults;
mod hostile;
mod learned;
mod onnx_policy;
mod openai_client;
mod pretrained;
mod reference_plugins;
mod sandbox;
mod server;
mod sim;
