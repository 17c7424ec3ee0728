//! The router as a language model: the prompt it reads, the chat template that frames it, and
//! the ONNX Runtime decoder that serves it.
//!
//! Data flows top to bottom: `model_dir` (read and check a model directory: tokenizer, chat
//! template, generation settings) -> `runtime` (the ONNX Runtime library, once per process,
//! and sessions on a device) -> `graph` (the optimum decoder-with-past interface) ->
//! `decoder` (one batched forward pass) -> `cohort` (left-padded batched KV caches) ->
//! `sampler`, `stop`, `sequence` (one generation's choices and end) -> `generator` (the
//! decoder thread batching concurrent requests) -> `model` (all of it, loaded) -> `router`
//! (the model as the engine's [`Policy`](crate::engine::Policy)). The training crate renders
//! the same prompt through `prompt` and `chat_template`, so a policy is trained on exactly the
//! text it is served.

pub mod chat_template;
pub mod cohort;
pub mod decoder;
pub mod error;
pub mod generator;
pub mod graph;
pub mod model;
pub mod model_dir;
pub mod prompt;
pub mod router;
pub mod runtime;
pub mod sampler;
pub mod sequence;
pub mod stop;
pub mod tokenizer;

pub use chat_template::{ChatMessage, ChatTemplate};
pub use error::{GenerateError, LoadError};
pub use generator::{Generator, GeneratorStats};
pub use model::{Model, ModelOptions};
pub use prompt::RouterPrompt;
pub use router::{OnnxPolicy, RouterOptions};
pub use runtime::{Device, SessionOptions};
pub use sampler::Sampling;
pub use sequence::{GenerateOptions, Generation};
pub use stop::{Finish, StopSet};
