//! Switchyard: a Router-R1 LLM router with sandboxed WebAssembly plugins.
//!
//! Modules, in the direction data flows: `cli` (the binary's commands) ->
//! `server` (the OpenAI-compatible HTTP API) -> `engine` (the Router-R1 turn
//! loop and its policies) -> `policy` (the trained router: its prompt, chat
//! template and ONNX Runtime decoder) -> `backend` (the model pool over adapter
//! components) -> `plugin` (the sandboxed component runtime that rewards,
//! costs, adapters and strategies run in). `eval` runs datasets through the
//! engine's policies offline and scores them, beside `server`. `config` describes all of it;
//! `sim` is the simulated world (knowledge graph, questions, simulated LLMs
//! served as a backend, the teacher policy) that stands in for real data
//! and providers offline.

pub mod backend;
pub mod cli;
pub mod config;
pub mod engine;
pub mod eval;
#[doc(hidden)]
pub mod fuzzing;
pub mod learned;
pub mod plugin;
pub mod policy;
pub mod server;
pub mod sim;
